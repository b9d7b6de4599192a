//! Two-phase redemption at the gate: what a claimed code means to the
//! requests around it. The failure injections, on every store, are in the
//! conformance suite (`tokengate::testing::conformance`, run by
//! `tests/conformance.rs` and the backend crates).

mod common;

use std::{convert::Infallible, time::Duration};

use common::*;
use http::{Request, Response, StatusCode};
use tokengate::{Dialect, RequestBody, policy::PolicyError, policy::PolicyRequest};
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::test]
async fn opting_out_uses_the_code_up_before_the_inner_service() {
    let h = Harness::with(Dialect::Rfc6749, |b| b.two_phase_redemption(None));
    let code = h.app_code().await;
    let answer = h
        .answered_by(StatusCode::SERVICE_UNAVAILABLE, post(&exchange(&code)))
        .await;
    assert_eq!(answer.status, 503);
    h.refused(post(&exchange(&code)))
        .await
        .assert_rfc(400, "invalid_grant");
    // The retry of a code used up on read is a replay.
    assert_eq!(h.replays.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_timeout_or_rate_limit_inside_the_gate_hands_the_code_back() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    for status in [StatusCode::REQUEST_TIMEOUT, StatusCode::TOO_MANY_REQUESTS] {
        let answer = h.answered_by(status, post(&exchange(&code))).await;
        assert_eq!(answer.status, status);
    }
    let (answer, _) = h.forwarded(post(&exchange(&code))).await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn a_final_answer_other_than_2xx_uses_the_code_up() {
    let h = Harness::new(Dialect::Rfc6749);
    for status in [StatusCode::BAD_REQUEST, StatusCode::FOUND] {
        let code = h.app_code().await;
        let answer = h.answered_by(status, post(&exchange(&code))).await;
        assert_eq!(answer.status, status);
        h.refused(post(&exchange(&code)))
            .await
            .assert_rfc(400, "invalid_grant");
    }
}

#[tokio::test]
async fn a_5xx_hands_the_code_back_and_the_retry_succeeds_once() {
    let h = Harness::new(Dialect::GitHub);
    let code = h.app_code().await;
    for _ in 0..3 {
        let answer = h
            .answered_by(StatusCode::BAD_GATEWAY, post(&exchange(&code)))
            .await;
        assert_eq!(answer.status, 502);
    }
    let (answer, seen) = h.forwarded(post(&exchange(&code))).await;
    assert_eq!(answer.status, 200);
    assert_eq!(seen.grant.unwrap().subject(), Some("user-1"));
    h.refused(post(&exchange(&code)))
        .await
        .assert_github("bad_verification_code");
    assert!(h.replays.lock().unwrap().len() == 1);
}

#[tokio::test]
async fn a_policy_refusal_uses_the_code_up() {
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.policy(|_: PolicyRequest| async {
            Err(PolicyError::new("access_denied", "Not today.").unwrap())
        })
    });
    let code = h.app_code().await;
    h.refused(post(&exchange(&code)))
        .await
        .assert_rfc(400, "access_denied");
    let answer = h.refused(post(&exchange(&code))).await;
    answer.assert_rfc(400, "invalid_grant");
}

#[tokio::test]
async fn a_wrong_verifier_uses_the_code_up_at_once() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    let wrong = exchange(&code).replace(VERIFIER, &"x".repeat(43));
    h.refused(post(&wrong))
        .await
        .assert_rfc(400, "invalid_grant");
    h.refused(post(&exchange(&code)))
        .await
        .assert_rfc(400, "invalid_grant");
}

#[tokio::test]
async fn a_request_racing_a_claimed_code_is_refused_without_the_replay_hook() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    let (entered, inside) = tokio::sync::oneshot::channel::<()>();
    let (leave, go) = tokio::sync::oneshot::channel::<()>();
    let cell = std::sync::Arc::new(std::sync::Mutex::new(Some((entered, go))));
    let slow = ServiceBuilder::new()
        .layer(h.layer.clone())
        .service(service_fn(move |_: Request<RequestBody<String>>| {
            let (entered, go) = cell.lock().unwrap().take().unwrap();
            async move {
                entered.send(()).unwrap();
                go.await.unwrap();
                Ok::<_, Infallible>(Response::new("token".to_owned()))
            }
        }));
    let first = tokio::spawn(slow.oneshot(post(&exchange(&code))));
    inside.await.unwrap();
    h.refused(post(&exchange(&code)))
        .await
        .assert_rfc(400, "invalid_grant");
    assert!(
        h.replays.lock().unwrap().is_empty(),
        "a race is not a replay"
    );
    // Nor a guess: ten racing requests do not lock the client out.
    for _ in 0..10 {
        h.refused(post(&exchange(&code)))
            .await
            .assert_rfc(400, "invalid_grant");
    }
    leave.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    // Now it is used: the same request is a replay.
    h.refused(post(&exchange(&code)))
        .await
        .assert_rfc(400, "invalid_grant");
    assert_eq!(h.replays.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_refresh_token_handed_back_after_a_5xx_rotates_once() {
    let h = Harness::new(Dialect::Rfc6749);
    let token = h.app_refresh_token().await;
    let body = format!(
        "grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret"
    );
    let answer = h
        .answered_by(StatusCode::INTERNAL_SERVER_ERROR, post(&body))
        .await;
    assert_eq!(answer.status, 500);
    let (answer, _) = h.forwarded(post(&body)).await;
    assert_eq!(answer.status, 200);
    h.refused(post(&body))
        .await
        .assert_rfc(400, "invalid_grant");
    assert_eq!(
        h.refresh_replays.lock().unwrap().len(),
        1,
        "the second use is a replay"
    );
}

#[tokio::test]
async fn with_a_reuse_window_a_burst_past_the_count_during_a_rotation_revokes_nothing() {
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.refresh_reuse(Duration::from_secs(10), 1)
    });
    let token = h.app_refresh_token().await;
    let body = format!(
        "grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret"
    );
    let (first, leave) = held_then_503(&h, &body).await;
    // The one reuse is granted while the rotation is in flight...
    let (answer, seen) = h.forwarded(post(&body)).await;
    assert_eq!(answer.status, 200);
    assert!(seen.grant.unwrap().is_refresh_reuse());
    // ...and past it the burst is refused as a race, not a replay.
    for _ in 0..3 {
        h.refused(post(&body))
            .await
            .assert_rfc(400, "invalid_grant");
    }
    assert!(h.refresh_replays.lock().unwrap().is_empty());
    leave.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap().status(), 503);
    // The rotation failed and handed the token back: the retry rotates it.
    let (answer, seen) = h.forwarded(post(&body)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(!seen.grant.unwrap().is_refresh_reuse());
    assert!(h.refresh_replays.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_request_racing_a_claimed_refresh_token_is_refused_without_revoking() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let token = h.app_refresh_token().await;
        let body = format!(
            "grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret"
        );
        let (first, leave) = held_then_503(&h, &body).await;
        // Ten racing requests: refused like a used token, but not a guess
        // (the lockout, 10 a minute by default, does not close on them).
        for _ in 0..10 {
            let answer = h.refused(post(&body)).await;
            if dialect == Dialect::GitHub {
                answer.assert_github("bad_refresh_token");
                let form = answer.form();
                assert_eq!(
                    form["error_description"],
                    "The refresh token passed is incorrect or expired."
                );
                // Issue 16: GitHub sends its documentation's anchor with
                // bad_refresh_token, and so does the gate now (it sent none).
                assert_eq!(
                    form["error_uri"],
                    "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-refresh-token"
                );
            } else {
                answer.assert_rfc(400, "invalid_grant");
            }
        }
        assert!(
            h.refresh_replays.lock().unwrap().is_empty(),
            "a race is not a replay"
        );
        leave.send(()).unwrap();
        let first = first.await.unwrap().unwrap();
        assert_eq!(first.status(), 503);
        // Nothing was revoked: the retry gets the token, and its successor
        // can join the family.
        let (answer, seen) = h.forwarded(post(&body)).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let grant = seen.grant.unwrap();
        assert_eq!(grant.subject(), Some("user-1"));
        let successor = h.layer.refresh_tokens().issue(&grant).await.unwrap();
        let next = body.replace(&token, &successor);
        assert_eq!(h.forwarded(post(&next)).await.0.status, 200);
        assert!(h.refresh_replays.lock().unwrap().is_empty());
    }
}

#[test]
fn a_claim_must_last_a_positive_time() {
    let built = tokengate::TokenGateLayer::builder()
        .store(tokengate::MemoryStore::new())
        .issuer("https://auth.example.com")
        .two_phase_redemption(Some(Duration::ZERO))
        .try_build();
    assert!(built.is_err());
}

fn refresh_body(token: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret")
}

#[tokio::test]
async fn opting_out_uses_a_refresh_token_up_before_the_inner_service() {
    let h = Harness::with(Dialect::Rfc6749, |b| b.two_phase_redemption(None));
    let token = h.app_refresh_token().await;
    let answer = h
        .answered_by(StatusCode::SERVICE_UNAVAILABLE, post(&refresh_body(&token)))
        .await;
    assert_eq!(answer.status, 503);
    // Rotated on read: the retry is a replay, and revokes the family.
    h.refused(post(&refresh_body(&token)))
        .await
        .assert_rfc(400, "invalid_grant");
    assert_eq!(h.refresh_replays.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn opting_out_a_refresh_token_claimed_by_another_request_is_a_replay() {
    use tokengate::store::{Claim, CodeKey, Redemption, RefreshStore};
    let h = Harness::with(Dialect::Rfc6749, |b| b.two_phase_redemption(None));
    let token = h.app_refresh_token().await;
    // Another process rotating the same token, between its claim and its
    // confirmation (two-phase redemption off everywhere).
    let key = CodeKey::of(&token);
    let theirs = Claim::new(Duration::from_secs(30)).unwrap();
    let claimed = RefreshStore::claim(&h.store, &key, &theirs).await.unwrap();
    assert!(matches!(claimed, Redemption::Claimed(_)));
    h.refused(post(&refresh_body(&token)))
        .await
        .assert_rfc(400, "invalid_grant");
    assert_eq!(
        h.refresh_replays.lock().unwrap().len(),
        1,
        "the token presented twice at once is a replay"
    );
    // The family is revoked: the other process's rotation does not hold.
    assert!(
        !RefreshStore::confirm(&h.store, &key, &theirs)
            .await
            .unwrap()
    );
}

/// Sends `body` through the gate to an inner service that holds it (and
/// the claim on what it redeems) until told to go, then fails with 503, so
/// the claim is released. Returns once the request is inside.
async fn held_then_503(
    h: &Harness,
    body: &str,
) -> (
    tokio::task::JoinHandle<Result<Response<tokengate::ResponseBody<String>>, Infallible>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (entered, inside) = tokio::sync::oneshot::channel::<()>();
    let (leave, go) = tokio::sync::oneshot::channel::<()>();
    let cell = std::sync::Arc::new(std::sync::Mutex::new(Some((entered, go))));
    let slow = ServiceBuilder::new()
        .layer(h.layer.clone())
        .service(service_fn(move |_: Request<RequestBody<String>>| {
            let (entered, go) = cell.lock().unwrap().take().unwrap();
            async move {
                entered.send(()).unwrap();
                go.await.unwrap();
                let mut response = Response::new("try again".to_owned());
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                Ok::<_, Infallible>(response)
            }
        }));
    let first = tokio::spawn(slow.oneshot(post(body)));
    inside.await.unwrap();
    (first, leave)
}
