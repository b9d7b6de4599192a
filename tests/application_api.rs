//! GitHub's REST endpoints for OAuth apps, guarded by the gate
//! (`Builder::application_api`): the client authenticated with HTTP Basic
//! and named by the path, every refusal GitHub's REST answer, with the
//! inner service panicking on each; and what a valid request hands on.

mod common;

use common::*;
use http::{Method, Request, StatusCode};
use tokengate::{Dialect, lifecycle::TokenActionKind};

const TOKEN_PATH: &str = "/api/v3/applications/app/token";
const GRANT_PATH: &str = "/api/v3/applications/app/grant";

fn harness(dialect: Dialect) -> Harness {
    Harness::with(dialect, |b| b.application_api(Some("/api/v3")))
}

/// `method` on `path` with `authorization` (a whole header value, or none)
/// and `body`, from [`PEER`].
fn call(method: Method, path: &str, authorization: Option<&str>, body: &str) -> Request<String> {
    let mut request = post_to(path, body);
    *request.method_mut() = method;
    request
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    if let Some(authorization) = authorization {
        request
            .headers_mut()
            .insert("authorization", authorization.parse().unwrap());
    }
    request
}

fn token_body(token: &str) -> String {
    serde_json::json!({ "access_token": token }).to_string()
}

/// A refusal in GitHub's REST form: the status, `message`, its
/// documentation link and `status` as text.
fn assert_rest(answer: &Answer, status: u16, message: &str) {
    assert_eq!(
        answer.status,
        StatusCode::from_u16(status).unwrap(),
        "{}",
        answer.text()
    );
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        answer.headers
    );
    let json: serde_json::Value = serde_json::from_str(answer.text()).unwrap();
    assert_eq!(json["message"], message, "{json}");
    assert_eq!(json["status"], status.to_string(), "{json}");
    assert!(
        json["documentation_url"]
            .as_str()
            .is_some_and(|url| url.starts_with("https://docs.github.com/rest/apps/")),
        "{json}"
    );
}

#[tokio::test]
async fn each_route_hands_the_token_on_with_its_kind_and_client() {
    for dialect in [Dialect::GitHub, Dialect::Rfc6749] {
        let h = harness(dialect);
        let credentials = basic("app", "s3cret");
        for (method, path, kind) in [
            (Method::POST, TOKEN_PATH, TokenActionKind::CheckToken),
            (Method::PATCH, TOKEN_PATH, TokenActionKind::ResetToken),
            (Method::DELETE, TOKEN_PATH, TokenActionKind::DeleteToken),
            (Method::DELETE, GRANT_PATH, TokenActionKind::DeleteGrant),
        ] {
            let request = call(
                method.clone(),
                path,
                Some(&credentials),
                &token_body("gho_abc"),
            );
            let (answer, seen) = h.forwarded(request).await;
            assert_eq!(answer.status, 200, "{method} {path}");
            let action = seen.action.expect("a TokenAction");
            assert_eq!(action.kind(), kind, "{method} {path}");
            assert_eq!(action.client().client_id(), "app");
            assert_eq!(action.token(), "gho_abc");
            assert!(seen.grant.is_none());
        }
    }
}

#[tokio::test]
async fn credentials_that_do_not_authenticate_the_named_client_are_not_found() {
    let h = harness(Dialect::GitHub);
    let body = token_body("gho_abc");
    for (path, authorization) in [
        // No credentials at all, a wrong secret, an unknown client.
        (TOKEN_PATH, None),
        (TOKEN_PATH, Some(basic("app", "wrong"))),
        (TOKEN_PATH, Some(basic("ghost", "s3cret"))),
        // Another client's valid credentials: the path names `app`.
        (TOKEN_PATH, Some(basic("other", "other-s3cret"))),
        // The path names a client the credentials do not.
        (
            "/api/v3/applications/other/token",
            Some(basic("app", "s3cret")),
        ),
        // A public client has no secret to present.
        (
            "/api/v3/applications/native/token",
            Some(basic("native", "")),
        ),
        // Not Basic.
        (TOKEN_PATH, Some("Bearer gho_abc".to_owned())),
        (TOKEN_PATH, Some("Basic !!!".to_owned())),
    ] {
        let answer = h
            .refused(call(Method::POST, path, authorization.as_deref(), &body))
            .await;
        assert_rest(&answer, 404, "Not Found");
    }
    // The client id and secret in the body authenticate nothing here.
    let in_body = serde_json::json!({
        "access_token": "gho_abc", "client_id": "app", "client_secret": "s3cret"
    })
    .to_string();
    assert_rest(
        &h.refused(call(Method::POST, TOKEN_PATH, None, &in_body))
            .await,
        404,
        "Not Found",
    );
}

#[tokio::test]
async fn other_routes_and_methods_under_the_prefix_are_not_found() {
    let h = harness(Dialect::GitHub);
    let credentials = basic("app", "s3cret");
    let body = token_body("gho_abc");
    for (method, path) in [
        (Method::GET, TOKEN_PATH),
        (Method::PUT, TOKEN_PATH),
        (Method::POST, GRANT_PATH),
        (Method::PATCH, GRANT_PATH),
        (Method::POST, "/api/v3/applications/app/tokens"),
        (Method::POST, "/api/v3/applications/app"),
        (Method::POST, "/api/v3/applications//token"),
        (Method::POST, "/api/v3/applications/app/token/extra"),
    ] {
        let answer = h
            .refused(call(method.clone(), path, Some(&credentials), &body))
            .await;
        assert_rest(&answer, 404, "Not Found");
    }
}

#[tokio::test]
async fn a_missing_or_malformed_token_is_refused_before_the_application() {
    let h = harness(Dialect::GitHub);
    let credentials = basic("app", "s3cret");
    for body in [
        "",
        "{}",
        r#"{"access_token":""}"#,
        r#"{"access_token":null}"#,
    ] {
        let answer = h
            .refused(call(Method::POST, TOKEN_PATH, Some(&credentials), body))
            .await;
        assert_rest(
            &answer,
            422,
            "Invalid request.\n\n\"access_token\" wasn't supplied.",
        );
    }
    for body in ["not json", "[]", r#"{"access_token":5}"#] {
        let answer = h
            .refused(call(Method::POST, TOKEN_PATH, Some(&credentials), body))
            .await;
        assert_rest(&answer, 400, "Problems parsing JSON");
    }
    // A control character is in no token: unknown here, never handed on.
    let answer = h
        .refused(call(
            Method::DELETE,
            TOKEN_PATH,
            Some(&credentials),
            &token_body("gho_a\nb"),
        ))
        .await;
    assert_rest(&answer, 404, "Not Found");
}

#[tokio::test]
async fn wrong_secrets_here_count_toward_the_same_lockout() {
    let h = harness(Dialect::GitHub);
    let body = token_body("gho_abc");
    // The default lockout: ten failures a minute per client and address.
    for _ in 0..10 {
        let answer = h
            .refused(call(
                Method::POST,
                TOKEN_PATH,
                Some(&basic("app", "wrong")),
                &body,
            ))
            .await;
        assert_rest(&answer, 404, "Not Found");
    }
    let answer = h
        .refused(call(
            Method::POST,
            TOKEN_PATH,
            Some(&basic("app", "s3cret")),
            &body,
        ))
        .await;
    assert_eq!(answer.status, 429, "{}", answer.text());
    assert!(answer.headers.contains_key("retry-after"));
    // And the token endpoint sees the same lockout.
    let code = h.app_code().await;
    let refused = h.refused(post(&exchange(&code))).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
}

#[tokio::test]
async fn off_by_default_and_never_over_the_gates_own_paths() {
    // Without `application_api`, the paths are the application's own.
    let h = Harness::with(Dialect::GitHub, |b| b);
    let (answer, seen) = h
        .forwarded(call(Method::POST, TOKEN_PATH, None, "{}"))
        .await;
    assert_eq!(answer.status, 200);
    assert!(seen.action.is_none());
    // A prefix that would put the token endpoint under it is refused.
    let clash = tokengate::TokenGateLayer::builder()
        .store(tokengate::MemoryStore::new())
        .token_path("/x/applications/y/token")
        .application_api(Some("/x"))
        .try_build();
    assert!(clash.is_err());
    for prefix in ["api", "/api/"] {
        let bad = tokengate::TokenGateLayer::builder()
            .store(tokengate::MemoryStore::new())
            .application_api(Some(prefix))
            .try_build();
        assert!(bad.is_err(), "{prefix:?}");
    }
    // github.com's own paths: the empty prefix.
    let root = Harness::with(Dialect::GitHub, |b| b.application_api(Some("")));
    let (_, seen) = root
        .forwarded(call(
            Method::POST,
            "/applications/app/token",
            Some(&basic("app", "s3cret")),
            &token_body("gho_abc"),
        ))
        .await;
    assert_eq!(seen.action.unwrap().kind(), TokenActionKind::CheckToken);
}

#[tokio::test]
async fn a_body_larger_than_the_limit_is_refused_unread() {
    let h = harness(Dialect::GitHub);
    let huge = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(64 * 1024));
    let mut request = call(
        Method::POST,
        TOKEN_PATH,
        Some(&basic("app", "s3cret")),
        &huge,
    );
    request
        .headers_mut()
        .insert("content-length", huge.len().to_string().parse().unwrap());
    let answer = h.refused(request).await;
    assert_rest(&answer, 413, "Request body too large");
}
