//! Corners found by review and mutation testing: each test here failed
//! against a deliberately broken gate that the other tests let pass.
mod common;

use std::{convert::Infallible, time::Duration};

use common::*;
use http::{Request, Response};
use tokengate::{
    Client, Dialect, MemoryStore, RequestBody, TokenGateLayer, authorize::CodeRecord,
    client::RedirectPolicy, clock::Clock, clock::ManualClock, store::Claim, store::CodeKey,
    store::CodeStore, store::Redemption,
};
use tower::{ServiceBuilder, ServiceExt, service_fn};

// M01: the gate decides expiry with its own clock, whatever the store does.
#[tokio::test]
async fn the_gate_refuses_an_expired_code_even_if_the_store_still_returns_it() {
    let store = MemoryStore::new(); // system clock: never moves in this test
    store.insert_client(
        Client::confidential("app")
            .with_secret("s3cret")
            .with_redirect_uri(CB),
    );
    let clock = ManualClock::new();
    let layer = TokenGateLayer::builder()
        .store(store.clone())
        .issuer("https://auth.example.com")
        .clock(clock.clone())
        .realm("tokengate-test")
        .build();
    let h = Harness {
        store,
        clock: clock.clone(),
        layer,
        replays: Default::default(),
        refresh_replays: Default::default(),
    };
    let code = h.app_code().await;
    clock.advance(Duration::from_secs(601));
    h.refused(post(&exchange(&code)))
        .await
        .assert_rfc(400, "invalid_grant");
}

/// A code record for `client_id` with no redirect URI, scope or PKCE,
/// issued now by `clock` for `lifetime`.
fn bare_record(client_id: &str, clock: &ManualClock, lifetime: Duration) -> CodeRecord {
    let now = clock.now();
    CodeRecord {
        client_id: client_id.into(),
        subject: "u".into(),
        scopes: vec![],
        redirect_uri: None,
        pkce: None,
        issued_at: now,
        expires_at: now + lifetime,
        dpop_jkt: None,
    }
}

// M14: the memory store forgets expired codes on its own.
#[tokio::test]
async fn memory_store_answers_unknown_for_an_expired_code() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let record = bare_record("c", &clock, Duration::from_secs(60));
    CodeStore::issue(&store, CodeKey::of("x"), record)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    let claim = Claim::new(Duration::from_secs(30)).unwrap();
    assert_eq!(
        CodeStore::claim(&store, &CodeKey::of("x"), &claim)
            .await
            .unwrap(),
        Redemption::Unknown
    );
    assert_eq!(store.code_count(), 0);
}

// M31: replay markers are swept too, so memory stays bounded.
#[tokio::test]
async fn used_codes_are_swept_after_expiry() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let record = bare_record("c", &clock, Duration::from_secs(600));
    for i in 0..10 {
        let key = CodeKey::of(&format!("c{i}"));
        CodeStore::issue(&store, key, record.clone()).await.unwrap();
        let claim = Claim::new(Duration::from_secs(30)).unwrap();
        assert!(matches!(
            CodeStore::claim(&store, &key, &claim).await.unwrap(),
            Redemption::Claimed(_)
        ));
        assert!(CodeStore::confirm(&store, &key, &claim).await.unwrap());
    }
    clock.advance(Duration::from_secs(601));
    let fresh = bare_record("c", &clock, Duration::from_secs(600));
    CodeStore::issue(&store, CodeKey::of("fresh"), fresh)
        .await
        .unwrap();
    assert_eq!(store.code_count(), 1);
}

// M15: a public client's code without a challenge is refused at the gate,
// not only at issuance (a custom issuer or store may produce one).
#[tokio::test]
async fn a_public_client_cannot_redeem_a_code_without_pkce() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let record = bare_record("native", &h.clock, Duration::from_secs(600));
        CodeStore::issue(&h.store, CodeKey::of("no-pkce-code"), record)
            .await
            .unwrap();
        let answer = h
            .refused(post(
                "grant_type=authorization_code&code=no-pkce-code&client_id=native",
            ))
            .await;
        match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "invalid_grant"),
            _ => answer.assert_github("bad_verification_code"),
        }
    }
}

// M30: the bound redirect URI is compared exactly, even where the client's
// policy would allow a sub-path.
#[tokio::test]
async fn a_sub_path_of_the_bound_redirect_uri_is_a_mismatch() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let code = h
            .code("client_id=gh&redirect_uri=http%3A%2F%2Fexample.com%2Fpath")
            .await;
        let body = format!(
            "grant_type=authorization_code&code={code}&client_id=gh&client_secret=gh-s3cret&redirect_uri=http%3A%2F%2Fexample.com%2Fpath%2Fsub"
        );
        let answer = h.refused(post(&body)).await;
        match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "invalid_grant"),
            _ => answer.assert_github("redirect_uri_mismatch"),
        }
    }
}

// M32, M33, M36: redirect policy corners.
#[test]
fn redirect_policy_corners() {
    use RedirectPolicy::*;
    assert!(!Loopback.allows("http://127.0.0.1/", "http://127.0.0.1:5000"));
    assert!(!Loopback.allows("http://127.0.0.1", "http://127.0.0.1:5000/"));
    assert!(GitHub.allows(
        "http://example.com/path?tenant=a",
        "http://example.com/path/x?tenant=a"
    ));
    assert!(!GitHub.allows(
        "http://example.com/path?tenant=a",
        "http://example.com/path?tenant=b"
    ));
    assert!(!GitHub.allows(
        "http://example.com/path?tenant=a",
        "http://example.com/path"
    ));
    assert!(!GitHub.allows("http://example.com/path", "http://.example.com/path"));
}

// WHATWG URL parsers treat `\` as `/` in http(s) URLs, so `/path/..\evil`
// lands on `/evil`: the relaxed policies refuse backslashes, end to end.
#[test]
fn github_policy_refuses_backslashes() {
    for bad in [
        "http://example.com/path/..\\evil",
        "http://example.com/path\\..\\evil",
        "http://example.com/path/%5c..%5cevil",
    ] {
        assert!(
            !RedirectPolicy::GitHub.allows("http://example.com/path", bad),
            "{bad}"
        );
    }
}

// M40: a client with no registered redirect URI gets no redirect at all.
#[tokio::test]
async fn a_client_without_registered_uris_is_never_redirected() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        h.store
            .insert_client(Client::confidential("bare").with_secret("s"));
        let e = h.layer.authorizer().validate("response_type=code&client_id=bare&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&state=s").await.unwrap_err();
        assert_eq!(e.location(), None);
        assert_eq!(e.into_http_response().status(), 400);
    }
}

// M35: the gate adds Cache-Control only when the inner service left it out.
#[tokio::test]
async fn the_inner_cache_control_is_kept() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    let service = ServiceBuilder::new()
        .layer(h.layer.clone())
        .service(service_fn(|_: Request<RequestBody<String>>| async {
            let mut r = Response::new(String::new());
            r.headers_mut()
                .insert("cache-control", "no-store, private".parse().unwrap());
            Ok::<_, Infallible>(r)
        }));
    let answer = Answer::read(service.oneshot(post(&exchange(&code))).await.unwrap()).await;
    assert_eq!(answer.header("cache-control"), Some("no-store, private"));
    assert_eq!(answer.header("pragma"), None);
}

#[tokio::test]
async fn a_backslash_redirect_is_never_issued_a_code() {
    let g = Harness::new(Dialect::GitHub);
    let error = g
        .layer
        .authorizer()
        .validate(
            "client_id=gh&redirect_uri=http%3A%2F%2Fexample.com%2Fpath%2F..%5Cevil%2Fsteal&state=s",
        )
        .await
        .unwrap_err();
    assert_eq!(error.error(), "redirect_uri_mismatch");
    // GitHub sends the error to the registered callback, not the forged one.
    assert!(
        error
            .location()
            .unwrap()
            .starts_with("http://example.com/path?error=redirect_uri_mismatch")
    );
}

#[tokio::test]
async fn a_replay_answers_like_an_unknown_code_whatever_else_is_wrong() {
    let g = Harness::new(Dialect::GitHub);
    let code = g.app_code().await;
    assert_eq!(g.forwarded(post(&exchange(&code))).await.0.status, 200);
    // Replayed with a wrong verifier: not incorrect_code_verifier, which
    // would tell the sender the code existed.
    let body = exchange(&code).replace(VERIFIER, &"Z".repeat(43));
    g.refused(post(&body))
        .await
        .assert_github("bad_verification_code");
    assert!(g.replays.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_empty_then_repeated_authorization_parameter_is_refused() {
    let h = Harness::new(Dialect::Rfc6749);
    let error = h
        .layer
        .authorizer()
        .validate(&format!(
            "response_type=code&client_id=&client_id=app&redirect_uri={CB_ENC}"
        ))
        .await
        .unwrap_err();
    assert_eq!((error.error(), error.location()), ("invalid_request", None));
}

#[test]
fn unrepresentable_configurations_are_refused() {
    use http::StatusCode;
    type Full = tokengate::Builder<MemoryStore, MemoryStore, MemoryStore, MemoryStore>;
    let build = |f: fn(Full) -> Full| {
        f(TokenGateLayer::builder()
            .store(MemoryStore::new())
            .issuer("https://auth.example.com"))
        .try_build()
    };
    assert!(build(|b| b.code_lifetime(Duration::MAX)).is_err());
    assert!(build(|b| b.refresh_lifetime(Duration::MAX)).is_err());
    assert!(build(|b| b.github_error_status(StatusCode::NO_CONTENT)).is_err());
    assert!(build(|b| b.github_error_status(StatusCode::FOUND)).is_err());
    assert!(build(|b| b.error_uri_base("https://docs example.com")).is_err());
    assert!(build(|b| b.realm("a\"b")).is_err());
    assert!(build(|b| b.token_path("token")).is_err());
    assert!(build(|b| b.device_path("/login/oauth/access_token")).is_err());
    assert!(build(|b| b.body_limit(0)).is_err());
    assert!(build(|b| b.error_uri_base("https://docs.github.com/")).is_ok());
}

#[tokio::test]
async fn a_trailing_slash_on_the_error_uri_base_is_not_doubled() {
    let g = Harness::with(Dialect::GitHub, |b| {
        b.error_uri_base("https://docs.github.com/")
    });
    let answer = g
        .refused(with_accept(post(&exchange("nope")), "application/json"))
        .await;
    assert!(
        answer.json()["error_uri"]
            .as_str()
            .unwrap()
            .starts_with("https://docs.github.com/apps/")
    );
}

// Issue 12 at the token endpoint (row 21): a code bound to no redirect URI
// may be redeemed with any URI the registration allows, so a path escape
// (`..;`, double-encoded dots) or a query that already names a response
// parameter must not count as allowed. The code is not touched.
#[tokio::test]
async fn the_token_endpoint_refuses_a_path_escape_or_a_planted_response_parameter() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let code = h.code("client_id=gh").await;
        let redeem = |uri: &str| {
            let uri: String = form_urlencoded::byte_serialize(uri.as_bytes()).collect();
            format!(
                "grant_type=authorization_code&code={code}&client_id=gh&client_secret=gh-s3cret&redirect_uri={uri}"
            )
        };
        for forged in [
            "http://example.com/path/..;/other",
            "http://example.com/path/%252e%252e/other",
            "http://example.com/path/x%2F..%2F..%2Fother",
            "http://example.com/path?code=planted",
            "http://example.com/path/sub?%63ode=planted",
            "http://oauth.example.com/path?error_description=x",
        ] {
            let answer = h.refused(post(&redeem(forged))).await;
            match dialect {
                Dialect::Rfc6749 => answer.assert_rfc(400, "invalid_grant"),
                _ => answer.assert_github("redirect_uri_mismatch"),
            }
            assert_eq!(
                answer.rejection.unwrap().description(),
                match dialect {
                    Dialect::Rfc6749 => "the redirect_uri is not registered for this client",
                    _ =>
                        "The redirect_uri MUST match the registered callback URL for this application.",
                },
                "{forged}"
            );
        }
        let (answer, _) = h
            .forwarded(post(&redeem("http://example.com/path/sub?x=1")))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
}
