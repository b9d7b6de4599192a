//! The issuing side: authorization requests validated and codes minted.

mod common;

use std::collections::HashMap;

use common::*;
use tokengate::{Client, Dialect, authorize::AuthorizationError};

fn query_of(location: &str) -> HashMap<String, String> {
    let query = location.split_once('?').expect("a query").1;
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

async fn refuse(h: &Harness, query: &str) -> AuthorizationError {
    h.layer.authorizer().validate(query).await.unwrap_err()
}

fn encoded(uri: &str) -> String {
    form_urlencoded::byte_serialize(uri.as_bytes()).collect()
}

#[tokio::test]
async fn a_valid_request_mints_a_bound_code() {
    let h = Harness::new(Dialect::Rfc6749);
    let authorizer = h.layer.authorizer();
    let request = authorizer
        .validate(&format!(
            "response_type=code&client_id=app&redirect_uri={CB_ENC}&state=a%26b&scope=read+write&code_challenge={CHALLENGE}&code_challenge_method=S256"
        ))
        .await
        .unwrap();
    assert_eq!(request.client().client_id(), "app");
    assert_eq!(request.scopes(), ["read", "write"]);
    assert_eq!(request.state(), Some("a&b"));
    let approval = authorizer.approve(&request, "alice").await.unwrap();
    assert_eq!(format!("{approval:?}"), "Approval(<redacted>)");
    let location = approval.location().to_owned();
    assert!(location.starts_with(&format!("{CB}?code=")));
    let params = query_of(&location);
    assert_eq!(params["state"], "a&b");
    // 256 random bits, base64url.
    assert_eq!(params["code"].len(), 43);
    let response = approval.into_http_response();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], location.as_str());
    assert_eq!(response.headers()["cache-control"], "no-store");
    // Two approvals never share a code.
    let other = authorizer.approve(&request, "alice").await.unwrap();
    assert_ne!(query_of(other.location())["code"], params["code"]);
}

#[tokio::test]
async fn unknown_or_missing_clients_are_never_redirected() {
    let h = Harness::new(Dialect::Rfc6749);
    let e = refuse(
        &h,
        &format!("response_type=code&client_id=nobody&redirect_uri={CB_ENC}"),
    )
    .await;
    assert_eq!((e.error(), e.location()), ("invalid_request", None));
    assert_eq!(e.into_http_response().status(), 400);
    let e = refuse(&h, &format!("response_type=code&redirect_uri={CB_ENC}")).await;
    assert_eq!(e.location(), None);
    // GitHub answers an unknown client with a 404 page.
    let g = Harness::new(Dialect::GitHub);
    let e = refuse(&g, &format!("client_id=nobody&redirect_uri={CB_ENC}")).await;
    assert_eq!(e.location(), None);
    assert_eq!(e.into_http_response().status(), 404);
}

#[tokio::test]
async fn redirect_uri_mismatch_by_dialect() {
    let h = Harness::new(Dialect::Rfc6749);
    let e = refuse(
        &h,
        "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fevil.example%2F&state=s",
    )
    .await;
    assert_eq!(e.error(), "invalid_request");
    assert_eq!(e.location(), None, "never redirect to an unregistered URI");

    // GitHub sends the user back to the registered callback with the error.
    let g = Harness::new(Dialect::GitHub);
    let e = refuse(
        &g,
        "client_id=app&redirect_uri=https%3A%2F%2Fevil.example%2F&state=s",
    )
    .await;
    assert_eq!(e.error(), "redirect_uri_mismatch");
    let location = e.location().unwrap();
    assert!(location.starts_with(&format!("{CB}?")));
    let params = query_of(location);
    assert_eq!(params["error"], "redirect_uri_mismatch");
    assert_eq!(
        params["error_description"],
        "The redirect_uri MUST match the registered callback URL for this application."
    );
    assert_eq!(
        params["error_uri"],
        "/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch"
    );
    assert_eq!(params["state"], "s");
}

#[tokio::test]
async fn the_registered_uri_is_used_when_none_is_sent() {
    let h = Harness::new(Dialect::Rfc6749);
    let authorizer = h.layer.authorizer();
    let request = authorizer
        .validate("response_type=code&client_id=app")
        .await
        .unwrap();
    assert_eq!(request.redirect_uri(), CB);
    let approval = authorizer.approve(&request, "alice").await.unwrap();
    assert!(approval.location().starts_with(CB));
}

#[tokio::test]
async fn errors_after_the_redirect_is_trusted_go_back_with_state() {
    let h = Harness::new(Dialect::Rfc6749);
    for (query, error) in [
        (
            format!("client_id=app&redirect_uri={CB_ENC}&state=s"),
            "invalid_request",
        ),
        (
            format!("response_type=token&client_id=app&redirect_uri={CB_ENC}&state=s"),
            "unsupported_response_type",
        ),
        (
            format!(
                "response_type=code&client_id=app&redirect_uri={CB_ENC}&state=s&code_challenge=short&code_challenge_method=S256"
            ),
            "invalid_request",
        ),
        (
            format!(
                "response_type=code&client_id=app&redirect_uri={CB_ENC}&state=s&code_challenge={CHALLENGE}&code_challenge_method=S512"
            ),
            "invalid_request",
        ),
        (
            format!(
                "response_type=code&client_id=app&redirect_uri={CB_ENC}&state=s&code_challenge_method=S256"
            ),
            "invalid_request",
        ),
        (
            format!("response_type=code&client_id=no-code&redirect_uri={CB_ENC}&state=s"),
            "unauthorized_client",
        ),
    ] {
        let e = refuse(&h, &query).await;
        assert_eq!(e.error(), error, "{query}");
        let params = query_of(e.location().expect("redirected"));
        assert_eq!(params["error"], error);
        assert_eq!(params["state"], "s");
        assert_eq!(e.into_http_response().status(), 302);
    }
}

#[tokio::test]
async fn a_repeated_parameter_is_refused_without_redirect() {
    let h = Harness::new(Dialect::Rfc6749);
    let e = refuse(
        &h,
        &format!("response_type=code&client_id=app&client_id=other&redirect_uri={CB_ENC}"),
    )
    .await;
    assert_eq!((e.error(), e.location()), ("invalid_request", None));
}

#[tokio::test]
async fn denial_goes_back_as_access_denied() {
    let h = Harness::new(Dialect::Rfc6749);
    let request = h
        .layer
        .authorizer()
        .validate(&format!(
            "response_type=code&client_id=app&redirect_uri={CB_ENC}&state=s"
        ))
        .await
        .unwrap();
    let response = request.deny();
    assert_eq!(response.status(), 302);
    let params = query_of(response.headers()["location"].to_str().unwrap());
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "s");
}

#[tokio::test]
async fn github_scopes_may_be_comma_separated() {
    let g = Harness::new(Dialect::GitHub);
    let request = g
        .layer
        .authorizer()
        .validate("client_id=app&scope=repo,user%20gist")
        .await
        .unwrap();
    assert_eq!(request.scopes(), ["repo", "user", "gist"]);
}

/// RFC 7636 §4.3: a missing method means `plain`. With `plain` off (the
/// default), the client is told that `plain` is the problem and `S256` the
/// fix, in the redirect's `error_description` too; an unknown method is
/// told to use S256.
#[tokio::test]
async fn plain_pkce_is_refused_by_name_when_off() {
    let h = Harness::new(Dialect::Rfc6749);
    let plain = "a-plain-verifier-that-is-long-enough-to-be-valid-0123";
    for method in ["&code_challenge_method=plain", ""] {
        let e = refuse(
            &h,
            &format!(
                "response_type=code&client_id=app&redirect_uri={CB_ENC}&state=s&code_challenge={plain}{method}"
            ),
        )
        .await;
        assert_eq!(e.error(), "invalid_request", "{method}");
        assert_eq!(
            e.description(),
            "code_challenge_method plain is not allowed, use S256",
            "{method}"
        );
        let params = query_of(e.location().expect("redirected"));
        assert_eq!(
            params["error_description"],
            "code_challenge_method plain is not allowed, use S256"
        );
    }
    let e = refuse(
        &h,
        &format!(
            "response_type=code&client_id=app&redirect_uri={CB_ENC}&code_challenge={CHALLENGE}&code_challenge_method=S512"
        ),
    )
    .await;
    assert_eq!(e.description(), "code_challenge_method must be S256");
    // With plain on, the same requests are accepted as plain.
    let h = Harness::with(Dialect::Rfc6749, |b| b.allow_plain_pkce(true));
    for method in ["&code_challenge_method=plain", ""] {
        h.layer
            .authorizer()
            .validate(&format!(
                "response_type=code&client_id=app&redirect_uri={CB_ENC}&code_challenge={plain}{method}"
            ))
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
    }
}

/// Issue 12: GitHub's policy let `..;` and double-encoded dots through
/// (Tomcat-style servers and proxies that decode twice resolve them outside
/// the registered path), and let a query be added that already named `code`
/// or `state`, so the redirect carried two. Neither gets a code, in either
/// dialect; GitHub sends the error to the registered callback instead.
#[tokio::test]
async fn a_path_escape_or_a_planted_response_parameter_is_never_issued_a_code() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        for forged in [
            "http://example.com/path/..;/other",
            "http://example.com/path;x/../other",
            "http://example.com/path/%252e%252e/other",
            "http://example.com/path/.%2e/other",
            "http://example.com/path/..%3b/other",
            "http://example.com/path?code=planted",
            "http://example.com/path/sub?x=1&%73tate=planted",
            "http://oauth.example.com/path?x=1;error=access_denied",
        ] {
            let e = refuse(
                &h,
                &format!(
                    "response_type=code&client_id=gh&redirect_uri={}&state=s",
                    encoded(forged)
                ),
            )
            .await;
            match dialect {
                Dialect::Rfc6749 => {
                    assert_eq!(
                        (e.error(), e.location()),
                        ("invalid_request", None),
                        "{forged}"
                    );
                    assert_eq!(e.into_http_response().status(), 400);
                }
                _ => {
                    assert_eq!(e.error(), "redirect_uri_mismatch", "{forged}");
                    let location = e.location().expect("sent to the callback");
                    assert!(
                        location.starts_with("http://example.com/path?error="),
                        "{location}"
                    );
                    let params = query_of(location);
                    assert_eq!(params["error"], "redirect_uri_mismatch");
                    assert_eq!(params["state"], "s");
                    assert!(!params.contains_key("code"), "{location}");
                }
            }
        }
        // A sub-path with a query of its own is still fine.
        let sub = encoded("http://example.com/path/sub?x=1");
        let code = h.code(&format!("client_id=gh&redirect_uri={sub}")).await;
        assert_eq!(code.len(), 43);
    }
}

/// A client built in code can register a URI the clients file would refuse
/// (a query that already names a response parameter, a fragment). The
/// authorizer never redirects there: not when it is requested, not as the
/// fallback when no redirect_uri is sent, not as GitHub's error callback.
#[tokio::test]
async fn a_registered_uri_that_cannot_take_the_response_is_never_redirected_to() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        for (id, unusable) in [
            ("planted-code", "https://planted.example/cb?code=planted"),
            (
                "planted-state",
                "https://planted.example/cb?x=1&STATE=planted",
            ),
            ("fragment", "https://planted.example/cb#x"),
        ] {
            h.store.insert_client(
                Client::confidential(id)
                    .with_secret("s")
                    .with_redirect_uri(unusable),
            );
            let requested = format!(
                "response_type=code&client_id={id}&redirect_uri={}&state=s",
                encoded(unusable)
            );
            let fallback = format!("response_type=code&client_id={id}&state=s");
            for query in [requested, fallback] {
                let e = refuse(&h, &query).await;
                assert_eq!(e.location(), None, "{query}");
                assert_eq!(e.error(), "invalid_request", "{query}");
                let response = e.into_http_response();
                assert_eq!(response.status(), 400, "{query}");
                assert_eq!(response.headers().get("location"), None, "{query}");
            }
        }
        // The fallback's refusal says why.
        let e = refuse(&h, "response_type=code&client_id=planted-code").await;
        assert!(
            e.description()
                .contains("already names code, state or error"),
            "{e}"
        );
        // GitHub picks the first registered URI: when it is unusable, a
        // later good one is no fallback either, but can still be requested.
        h.store.insert_client(
            Client::confidential("first-planted")
                .with_secret("s")
                .with_redirect_uri("https://planted.example/cb?error=x")
                .with_redirect_uri(CB),
        );
        if dialect == Dialect::GitHub {
            let e = refuse(&h, "client_id=first-planted&state=s").await;
            assert_eq!(e.location(), None);
        }
        let e = refuse(
            &h,
            "response_type=code&client_id=first-planted&redirect_uri=https%3A%2F%2Fevil.example%2F",
        )
        .await;
        assert_eq!(e.location(), None);
        h.code(&format!("client_id=first-planted&redirect_uri={CB_ENC}"))
            .await;
    }
}
