//! No secret leaks: every scenario the gate serves (all grants, both
//! dialects and every response format, refusals, replays, lockouts,
//! two-phase failures, store failures, policies, hostile framing) runs with
//! all `tracing` output captured at TRACE level and every response kept;
//! no client secret, code, refresh token, device code, user code or PKCE
//! verifier may appear in either, nor in the `Debug` output of anything
//! that holds one. Alone in its binary: tracing's per-callsite interest
//! cache races with other tests' threads.

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::*;
use http::{Request, StatusCode};
use tokengate::{
    Client, Dialect, StoreError, TokenGateLayer, policy::PolicyError, policy::PolicyRequest,
    store::Claim, store::ClientStore, store::CodeStore,
};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything a scenario showed the outside: responses (status, headers,
/// body) and `Debug` renderings.
#[derive(Default)]
struct Seen {
    text: String,
    /// Values that must appear nowhere.
    secrets: Vec<String>,
}

impl Seen {
    fn answer(&mut self, answer: &Answer) {
        self.text.push_str(&format!(
            "{} {:?} {}\n",
            answer.status,
            answer.headers,
            answer.text()
        ));
    }

    fn debug(&mut self, value: &dyn std::fmt::Debug) {
        self.text.push_str(&format!("{value:?}\n{value:#?}\n"));
    }

    fn secret(&mut self, value: &str) {
        self.secrets.push(value.to_owned());
    }
}

async fn code_scenarios(h: &Harness, seen: &mut Seen) {
    seen.secret("s3cret");
    seen.secret(VERIFIER);
    seen.secret(&basic("app", "s3cret").replace("Basic ", ""));
    let code = h.app_code().await;
    seen.secret(&code);
    for accept in ["application/json", "application/xml", "text/html"] {
        let wrong = exchange(&code).replace("s3cret", "WRONG-SECRET-x");
        seen.answer(&h.refused(with_accept(post(&wrong), accept)).await);
        let bad_verifier = exchange(&code).replace(VERIFIER, &"Q".repeat(43));
        seen.answer(&h.refused(with_accept(post(&bad_verifier), accept)).await);
    }
    seen.secret("WRONG-SECRET-x");
    seen.secret(&"Q".repeat(43));
    // Basic credentials, right and wrong, and a Basic header that is not
    // base64 but carries the secret.
    let code = h.app_code().await;
    seen.secret(&code);
    let body = exchange(&code).replace("&client_id=app&client_secret=s3cret", "");
    let mut request = post(&body);
    request
        .headers_mut()
        .insert("authorization", basic("app", "s3cret").parse().unwrap());
    let (answer, grant) = h.forwarded(request).await;
    seen.answer(&answer);
    seen.debug(&grant.grant);
    let mut request = post(&body);
    request
        .headers_mut()
        .insert("authorization", "Basic app:s3cret".parse().unwrap());
    seen.answer(&h.refused(request).await);
    // A replay (the hook fires), a code of another client, a wrong redirect.
    seen.answer(&h.refused(post(&exchange(&code))).await);
    let other = h.app_code().await;
    seen.secret(&other);
    let theirs = exchange(&other).replace(
        "client_id=app&client_secret=s3cret",
        "client_id=other&client_secret=other-s3cret",
    );
    seen.secret("other-s3cret");
    seen.answer(&h.refused(post(&theirs)).await);
    // Secrets in the query and repeated, in a JSON body.
    let query = Request::post(format!("{TOKEN}?client_secret=s3cret&code={other}"))
        .header("content-type", FORM)
        .body(exchange(&other))
        .unwrap();
    seen.answer(&h.refused(query).await);
    seen.answer(
        &h.refused(post(&format!("{}&client_secret=s3cret", exchange(&other))))
            .await,
    );
    let json = Request::post(TOKEN)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"client_id":"app","client_secret":"s3cret","code":"{other}"}}"#
        ))
        .unwrap();
    seen.answer(&h.refused(json).await);
    // Two-phase: the inner service fails, the retry succeeds.
    let code = h.app_code().await;
    seen.secret(&code);
    seen.answer(
        &h.answered_by(StatusCode::SERVICE_UNAVAILABLE, post(&exchange(&code)))
            .await,
    );
    seen.answer(&h.answered_by(StatusCode::OK, post(&exchange(&code))).await);
}

async fn refresh_and_device_scenarios(h: &Harness, seen: &mut Seen) {
    let refresh = h.app_refresh_token().await;
    seen.secret(&refresh);
    let body = format!(
        "grant_type=refresh_token&refresh_token={refresh}&client_id=app&client_secret=s3cret"
    );
    let (answer, grant) = h.forwarded(post(&body)).await;
    seen.answer(&answer);
    seen.debug(&grant.grant);
    let successor = h
        .layer
        .refresh_tokens()
        .issue(grant.grant.as_ref().unwrap())
        .await
        .unwrap();
    seen.secret(&successor);
    seen.answer(&h.refused(post(&body)).await); // the replay revokes the family
    let wider = format!(
        "grant_type=refresh_token&refresh_token={successor}&client_id=app&client_secret=s3cret&scope=admin"
    );
    seen.answer(&h.refused(post(&wider)).await);

    // Device flow: the authorization response carries the device and user
    // codes by design; nothing after it may.
    let answer = h
        .refused(with_accept(post_device("client_id=tv"), "application/json"))
        .await;
    let device = answer.json();
    let device_code = device["device_code"].as_str().unwrap().to_owned();
    let user_code = device["user_code"].as_str().unwrap().to_owned();
    seen.secret(&device_code);
    seen.secret(&user_code);
    let poll = format!("grant_type={DEVICE_GRANT}&client_id=tv&device_code={device_code}");
    seen.answer(&h.refused(post(&poll)).await);
    seen.answer(&h.refused(post(&poll)).await); // slow_down
    let devices = h.layer.devices();
    seen.debug(&devices);
    assert!(devices.approve(&user_code, "user-1", None).await.unwrap());
    h.clock.advance(Duration::from_secs(60));
    let (answer, grant) = h.forwarded(post(&poll)).await;
    seen.answer(&answer);
    seen.debug(&grant.grant);
    seen.debug(grant.grant.as_ref().unwrap().device().unwrap());
    seen.answer(&h.refused(post(&poll)).await);
    // Client credentials.
    let answer = h
        .refused_or_forwarded(post(
            "grant_type=client_credentials&client_id=app&client_secret=WRONG-cc",
        ))
        .await;
    seen.text.push_str(&answer);
    seen.secret("WRONG-cc");
}

/// The revocation and introspection endpoints: their tokens and the
/// callers' secrets, right and wrong, in the body, the query, JSON and a
/// Basic header; a token the application gets (its `TokenAction`'s `Debug`).
async fn lifecycle_scenarios(h: &Harness, seen: &mut Seen) {
    const REVOKE: &str = "/login/oauth/revoke";
    const INTROSPECT: &str = "/login/oauth/introspect";
    h.store.insert_client(
        Client::confidential("rs")
            .with_secret("rs-lifecycle-s3cret")
            .with_introspection(true),
    );
    seen.secret("rs-lifecycle-s3cret");
    seen.secret(&basic("rs", "rs-lifecycle-s3cret").replace("Basic ", ""));
    let with_basic = |mut request: Request<String>, id: &str, secret: &str| {
        request
            .headers_mut()
            .insert("authorization", basic(id, secret).parse().unwrap());
        request
    };
    let refresh = h.app_refresh_token().await;
    seen.secret(&refresh);
    for path in [REVOKE, INTROSPECT] {
        let body = format!("token={refresh}");
        // Wrong secrets, the refresh token itself as one, and a Basic header
        // that is not base64 but carries the secret.
        for secret in ["WRONG-lifecycle-secret", refresh.as_str()] {
            let request = with_basic(post_to(path, &body), "rs", secret);
            seen.answer(&h.refused(request).await);
            let request = post_to(
                path,
                &format!("{body}&client_id=app&client_secret={secret}"),
            );
            seen.answer(&h.refused(request).await);
        }
        let mut request = post_to(path, &body);
        request.headers_mut().insert(
            "authorization",
            "Basic rs:rs-lifecycle-s3cret".parse().unwrap(),
        );
        seen.answer(&h.refused(request).await);
        // The token in the query, repeated, with a hint of no known kind,
        // with a control character, and in JSON.
        let mut request = with_basic(post_to(path, &body), "rs", "rs-lifecycle-s3cret");
        *request.uri_mut() = format!("{path}?token={refresh}").parse().unwrap();
        seen.answer(&h.refused(request).await);
        for body in [
            format!("token={refresh}&token={refresh}"),
            format!("token={refresh}&token_type_hint=id_token"),
            format!("token={refresh}%00"),
        ] {
            let request = with_basic(post_to(path, &body), "rs", "rs-lifecycle-s3cret");
            seen.answer(&h.answered_by(StatusCode::OK, request).await);
        }
        let json = Request::post(path)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"token":"{refresh}","client_id":"rs","client_secret":"rs-lifecycle-s3cret"}}"#
            ))
            .unwrap();
        seen.answer(&h.answered_by(StatusCode::OK, json).await);
        // A token the gate does not keep goes on; its action's Debug hides it.
        let access = "gho_lifecycle_access_token";
        seen.secret(access);
        let request = with_basic(
            post_to(path, &format!("token={access}")),
            "rs",
            "rs-lifecycle-s3cret",
        );
        let (answer, handed) = h.forwarded(request).await;
        seen.answer(&answer);
        seen.debug(&handed.action);
    }
    seen.secret("WRONG-lifecycle-secret");
    // Introspected live, then revoked by its client (the log says so).
    let request = with_basic(
        post_to(INTROSPECT, &format!("token={refresh}")),
        "rs",
        "rs-lifecycle-s3cret",
    );
    let answer = h.refused(request).await;
    assert_eq!(answer.json()["active"], true);
    seen.answer(&answer);
    let body = format!("token={refresh}&client_id=app&client_secret=s3cret");
    seen.answer(&h.refused(post_to(REVOKE, &body)).await);
}

/// A device grant whose inner service fails is put back for the device's
/// retry; should its user code have gone to another device meanwhile, that
/// is logged (once, here).
async fn device_put_back_scenarios(seen: &mut Seen, buf: &Buf) {
    use std::convert::Infallible;
    use tokengate::{
        RequestBody,
        device::{DeviceRecord, DeviceStatus},
        store::{CodeKey, DeviceStore},
    };
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    let h = Harness::with(Dialect::Rfc6749, |b| b.lockout(None));
    for user_code_taken in [false, true] {
        let answer = h
            .refused(with_accept(post_device("client_id=tv"), "application/json"))
            .await;
        let device = answer.json();
        let device_code = device["device_code"].as_str().unwrap().to_owned();
        let user_code = device["user_code"].as_str().unwrap().to_owned();
        seen.secret(&device_code);
        seen.secret(&user_code);
        assert!(
            h.layer
                .devices()
                .approve(&user_code, "user-1", None)
                .await
                .unwrap()
        );
        let (store, clock) = (h.store.clone(), h.clock.clone());
        let failing = ServiceBuilder::new()
            .layer(h.layer.clone())
            .service(service_fn(move |_: Request<RequestBody<String>>| {
                let (store, clock, user_code) = (store.clone(), clock.clone(), user_code.clone());
                async move {
                    if user_code_taken {
                        let now = tokengate::clock::Clock::now(&clock);
                        let other = DeviceRecord {
                            client_id: "tv".into(),
                            scopes: vec![],
                            user_code,
                            status: DeviceStatus::Pending,
                            interval: 5,
                            last_poll: None,
                            issued_at: now,
                            expires_at: now + Duration::from_secs(900),
                        };
                        let key = CodeKey::of("another device's code");
                        assert!(DeviceStore::issue(&store, key, other).await.unwrap());
                    }
                    let mut response = http::Response::new(String::new());
                    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    Ok::<_, Infallible>(response)
                }
            }));
        let poll = format!("grant_type={DEVICE_GRANT}&client_id=tv&device_code={device_code}");
        let answer = Answer::read(failing.oneshot(post(&poll)).await.unwrap()).await;
        assert_eq!(answer.status, 503);
        h.clock.advance(Duration::from_secs(60));
        let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let warned = logs.contains("a failed device grant could not be put back");
        assert_eq!(warned, user_code_taken, "{logs}");
        if user_code_taken {
            seen.answer(&h.refused(post(&poll)).await);
        } else {
            let (answer, _) = h.forwarded(post(&poll)).await;
            assert_eq!(answer.status, 200, "put back: {}", answer.text());
        }
    }
}

/// A store whose every call fails.
#[derive(Clone)]
struct Broken;

impl ClientStore for Broken {
    async fn client(&self, _: &str) -> Result<Option<Arc<Client>>, StoreError> {
        Err(StoreError::new("connection refused"))
    }
}

impl CodeStore for Broken {
    async fn issue(
        &self,
        _: tokengate::store::CodeKey,
        _: tokengate::authorize::CodeRecord,
    ) -> Result<(), StoreError> {
        Err(StoreError::new("connection refused"))
    }
    async fn claim(
        &self,
        _: &tokengate::store::CodeKey,
        _: &tokengate::store::Claim,
    ) -> Result<tokengate::store::Redemption<Arc<tokengate::authorize::CodeRecord>>, StoreError>
    {
        Err(StoreError::new("connection refused"))
    }
    async fn confirm(
        &self,
        _: &tokengate::store::CodeKey,
        _: &tokengate::store::Claim,
    ) -> Result<bool, StoreError> {
        Err(StoreError::new("connection refused"))
    }
    async fn release(
        &self,
        _: &tokengate::store::CodeKey,
        _: &tokengate::store::Claim,
    ) -> Result<(), StoreError> {
        Err(StoreError::new("connection refused"))
    }
}

async fn failure_scenarios(seen: &mut Seen) {
    // A failing store: 500, and the log names the failure, not the values.
    let broken = TokenGateLayer::builder()
        .client_store(Broken)
        .code_store(Broken)
        .build();
    let h = Harness {
        layer: broken,
        ..Harness::new(Dialect::Rfc6749)
    };
    seen.answer(
        &h.refused(post(&exchange("store-down-code-1234567890")))
            .await,
    );
    seen.secret("store-down-code-1234567890");
    // A policy refusal.
    let h = Harness::with(Dialect::GitHub, |b| {
        b.policy(|_: PolicyRequest| async {
            Err(PolicyError::new("access_denied", "No.").unwrap())
        })
    });
    let code = h.app_code().await;
    seen.secret(&code);
    seen.answer(
        &h.refused(with_accept(post(&exchange(&code)), "application/xml"))
            .await,
    );
    // The lockout, and what is left in Debug afterwards.
    let h = Harness::new(Dialect::Rfc6749);
    for i in 0..11 {
        let guess = format!("guessed-secret-{i}");
        seen.secret(&guess);
        seen.answer(
            &h.refused(post(&exchange("x").replace("s3cret", &guess)))
                .await,
        );
    }
    seen.debug(&h.layer);
    seen.debug(&h.store);
    seen.debug(&Claim::new(Duration::from_secs(1)).unwrap());
    let authorizer = h.layer.authorizer();
    let request = authorizer
        .validate(&format!("response_type=code&client_id=app&redirect_uri={CB_ENC}&code_challenge={CHALLENGE}&code_challenge_method=S256"))
        .await
        .unwrap();
    let approval = authorizer.approve(&request, "user-1").await.unwrap();
    seen.secret(approval.code());
    seen.debug(&approval);
    seen.debug(&request);
    seen.debug(&authorizer);
    seen.debug(&h.layer.refresh_tokens());
}

#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_a_log_a_response_or_debug_output() {
    let buf = Buf::default();
    let w = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || w.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut seen = Seen::default();
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::with(dialect, |b| b.lockout(None));
        code_scenarios(&h, &mut seen).await;
        refresh_and_device_scenarios(&h, &mut seen).await;
        lifecycle_scenarios(&h, &mut seen).await;
        seen.debug(&h.replays.lock().unwrap());
        seen.debug(&h.refresh_replays.lock().unwrap());
    }
    failure_scenarios(&mut seen).await;
    device_put_back_scenarios(&mut seen, &buf).await;

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    // The logs did capture the scenarios.
    for expected in [
        "invalid_client",
        "authorization code replayed",
        "refresh token replayed",
        "store failed",
        "token request refused by a policy",
        "temporarily_unavailable",
        "refresh token family revoked on request",
    ] {
        assert!(logs.contains(expected), "{expected} not logged: {logs}");
    }
    assert_eq!(
        logs.matches("a failed device grant could not be put back")
            .count(),
        1,
        "{logs}"
    );
    assert!(seen.secrets.len() > 20);
    for secret in &seen.secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "{secret} leaked into the logs:\n{logs}"
        );
        assert!(
            !seen.text.contains(secret.as_str()),
            "{secret} leaked into a response or Debug output:\n{}",
            seen.text
        );
    }
}
