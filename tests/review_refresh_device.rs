//! Refresh and device corners found by review: each of these failed before
//! the fix it names.

mod common;

use std::time::Duration;

use common::*;
use tokengate::{Dialect, ErrorCode, policy::PolicyError, policy::PolicyRequest};

fn refresh(token: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret")
}

// Finding 1: a token presented under ANOTHER client id (any public client
// needs no secret) is consumed before the binding check; the owner's next
// refresh then counts as a replay and revokes the family.
#[tokio::test]
async fn another_clients_presentation_does_not_consume_the_token() {
    let h = Harness::new(Dialect::Rfc6749);
    let token = h.app_refresh_token().await;
    h.refused(post(&format!(
        "grant_type=refresh_token&refresh_token={token}&client_id=native"
    )))
    .await
    .assert_rfc(400, "invalid_grant");
    let (answer, _) = h.forwarded(post(&refresh(&token))).await;
    assert_eq!(answer.status, 200);
    assert!(h.refresh_replays.lock().unwrap().is_empty());
}

// Finding 2: an invalid_scope refusal consumes the token; the retry without
// the extra scope revokes the family.
#[tokio::test]
async fn an_invalid_scope_refusal_does_not_consume_the_token() {
    let h = Harness::new(Dialect::Rfc6749);
    let token = h.app_refresh_token().await;
    h.refused(post(&format!("{}&scope=read+admin", refresh(&token))))
        .await
        .assert_rfc(400, "invalid_scope");
    assert_eq!(h.forwarded(post(&refresh(&token))).await.0.status, 200);
}

// Finding 3: a policy refusal consumes the token (e.g. unverified email,
// disabled client); the retry after the user/admin fixes it revokes the family.
#[tokio::test]
async fn a_policy_refusal_does_not_consume_the_token() {
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.policy(|r: PolicyRequest| async move {
            if r.headers().contains_key("x-block") {
                return Err(PolicyError::standard(ErrorCode::InvalidGrant, "blocked").unwrap());
            }
            Ok(())
        })
    });
    let token = h.app_refresh_token().await;
    let mut blocked = post(&refresh(&token));
    blocked
        .headers_mut()
        .insert("x-block", "1".parse().unwrap());
    assert_eq!(h.refused(blocked).await.status, 400);
    assert_eq!(h.forwarded(post(&refresh(&token))).await.0.status, 200);
}

// Finding 4: RFC 6749 §6 — the new refresh token's scope MUST be identical to
// the old one's; a down-scoped access token must not shrink the refresh token.
#[tokio::test]
async fn the_successor_keeps_the_original_refresh_scope() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h
        .code(&format!(
            "client_id=app&redirect_uri={CB_ENC}&code_challenge={CHALLENGE}&code_challenge_method=S256&scope=read+write"
        ))
        .await;
    let (_, seen) = h.forwarded(post(&exchange(&code))).await;
    let token = h
        .layer
        .refresh_tokens()
        .issue(&seen.grant.unwrap())
        .await
        .unwrap();
    let (_, seen) = h
        .forwarded(post(&format!("{}&scope=read", refresh(&token))))
        .await;
    let successor = h
        .layer
        .refresh_tokens()
        .issue(&seen.grant.unwrap())
        .await
        .unwrap();
    let (_, seen) = h.forwarded(post(&refresh(&successor))).await;
    assert_eq!(seen.grant.unwrap().scopes(), ["read", "write"]);
}

// Finding 10: expired_token is answered once; the next poll of the same
// expired code says invalid_grant / incorrect_device_code.
#[tokio::test]
async fn an_expired_device_code_stays_expired() {
    let h = Harness::new(Dialect::Rfc6749);
    let answer = h.refused(post_device("client_id=tv")).await;
    let device_code = answer.json()["device_code"].as_str().unwrap().to_owned();
    h.clock.advance(Duration::from_secs(900));
    let poll = format!("grant_type={DEVICE_GRANT}&client_id=tv&device_code={device_code}");
    h.refused(post(&poll))
        .await
        .assert_rfc(400, "expired_token");
    h.clock.advance(Duration::from_secs(10));
    h.refused(post(&poll))
        .await
        .assert_rfc(400, "expired_token");
}
