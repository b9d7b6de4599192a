//! No secret, code or verifier reaches the logs. Alone in its binary:
//! tracing's per-callsite interest cache races with other tests' threads.
mod common;
use common::*;
use std::{
    io::Write,
    sync::{Arc, Mutex},
};
use tokengate::Dialect;

// M34: no secret, code or verifier ever reaches the logs.
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
#[tokio::test(flavor = "current_thread")]
async fn logs_name_the_error_and_client_but_never_a_secret_or_code() {
    let buf = Buf::default();
    let w = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || w.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    h.refused(post(&exchange(&code).replace("s3cret", "WRONG-SECRET-x")))
        .await
        .assert_rfc(401, "invalid_client");
    h.refused(post(&exchange(&code).replace(VERIFIER, &"Q".repeat(43))))
        .await
        .assert_rfc(400, "invalid_grant");
    let code2 = h.app_code().await;
    assert_eq!(h.forwarded(post(&exchange(&code2))).await.0.status, 200);
    // Refresh tokens: a rotation, then a replay that revokes the family.
    let refresh = h.app_refresh_token().await;
    let body = format!(
        "grant_type=refresh_token&refresh_token={refresh}&client_id=app&client_secret=s3cret"
    );
    assert_eq!(h.forwarded(post(&body)).await.0.status, 200);
    h.refused(post(&body))
        .await
        .assert_rfc(400, "invalid_grant");
    // Device codes: a poll that is too early, with the user code known.
    let answer = h.refused(post_device("client_id=tv")).await;
    let device = answer.json();
    let device_code = device["device_code"].as_str().unwrap().to_owned();
    let user_code = device["user_code"].as_str().unwrap().to_owned();
    let poll = format!("grant_type={DEVICE_GRANT}&client_id=tv&device_code={device_code}");
    h.refused(post(&poll))
        .await
        .assert_rfc(400, "authorization_pending");
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("refresh token replayed"), "{logs}");
    for secret in [refresh.as_str(), device_code.as_str(), user_code.as_str()] {
        assert!(!logs.contains(secret), "{secret} leaked: {logs}");
    }
    assert!(
        logs.contains("invalid_client") && logs.contains("app"),
        "{logs}"
    );
    for secret in [
        "WRONG-SECRET-x",
        "s3cret",
        code.as_str(),
        code2.as_str(),
        VERIFIER,
        &"Q".repeat(43),
    ] {
        assert!(!logs.contains(secret), "{secret} leaked: {logs}");
    }
}
