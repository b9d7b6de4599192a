//! The refresh grant: rotation, family revocation on replay, scope that may
//! shrink and never grow, in both dialects.

mod common;

use std::time::Duration;

use common::*;
use tokengate::{Dialect, GrantType, MemoryStore, TokenGateLayer};

fn refresh(token: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret")
}

#[tokio::test]
async fn a_refresh_is_forwarded_with_the_old_record_and_rotates() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let first = h.exchanged_grant().await;
        let token = h.layer.refresh_tokens().issue(&first).await.unwrap();
        // Each dialect's shape (issue 16: GitHub's is `ghr_` and 64 hex
        // digits; it was 43 base64url characters in both). The shapes
        // themselves: tests/github_shapes.rs.
        match dialect {
            Dialect::GitHub => {
                assert_eq!(token.len(), 68);
                assert!(token.starts_with("ghr_"));
            }
            _ => assert_eq!(token.len(), 43),
        }
        let body = refresh(&token);
        let (answer, seen) = h.forwarded(post(&body)).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(&seen.body[..], body.as_bytes());
        let grant = seen.grant.unwrap();
        assert_eq!(grant.grant_type(), GrantType::RefreshToken);
        assert_eq!(grant.subject(), Some("user-1"));
        assert_eq!(grant.scopes(), ["read"]);
        let previous = grant.refresh().unwrap();
        assert_eq!(previous.client_id, "app");
        let family = grant.family().unwrap().to_owned();
        // The successor joins the same family and works once.
        let next = h.layer.refresh_tokens().issue(&grant).await.unwrap();
        let (answer, seen) = h.forwarded(post(&refresh(&next))).await;
        assert_eq!(answer.status, 200);
        assert_eq!(seen.grant.unwrap().family(), Some(family.as_str()));
    }
}

#[tokio::test]
async fn a_replayed_refresh_token_revokes_its_family() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let old = h.app_refresh_token().await;
        let (_, seen) = h.forwarded(post(&refresh(&old))).await;
        let rotated = seen.grant.unwrap();
        let successor = h.layer.refresh_tokens().issue(&rotated).await.unwrap();
        // The rotated-away token comes back: a replay.
        let answer = h.refused(post(&refresh(&old))).await;
        match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "invalid_grant"),
            _ => {
                answer.assert_github("bad_refresh_token");
                assert_eq!(
                    answer.form()["error_description"],
                    "The refresh token passed is incorrect or expired."
                );
            }
        }
        assert_eq!(h.refresh_replays.lock().unwrap().len(), 1);
        assert_eq!(h.refresh_replays.lock().unwrap()[0].subject, "user-1");
        // The successor, never used, dies with its family.
        let answer = h.refused(post(&refresh(&successor))).await;
        assert_eq!(
            answer.rejection.unwrap().code().as_str(),
            match dialect {
                Dialect::Rfc6749 => "invalid_grant",
                _ => "bad_refresh_token",
            }
        );
        // And no new member can join the revoked family (a successor minted
        // in a race with the replay never becomes valid).
        assert!(h.layer.refresh_tokens().issue(&rotated).await.is_err());
        // Other families are untouched.
        let fresh = h.app_refresh_token().await;
        assert_eq!(h.forwarded(post(&refresh(&fresh))).await.0.status, 200);
    }
}

#[tokio::test]
async fn a_replay_by_another_client_revokes_nothing() {
    let h = Harness::new(Dialect::Rfc6749);
    let old = h.app_refresh_token().await;
    let (_, seen) = h.forwarded(post(&refresh(&old))).await;
    let successor = h
        .layer
        .refresh_tokens()
        .issue(&seen.grant.unwrap())
        .await
        .unwrap();
    let stolen = refresh(&old).replace(
        "client_id=app&client_secret=s3cret",
        "client_id=other&client_secret=other-s3cret",
    );
    h.refused(post(&stolen))
        .await
        .assert_rfc(400, "invalid_grant");
    assert!(h.refresh_replays.lock().unwrap().is_empty());
    assert_eq!(h.forwarded(post(&refresh(&successor))).await.0.status, 200);
}

#[tokio::test]
async fn scope_may_shrink_never_grow() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h
        .code(&format!(
            "client_id=app&redirect_uri={CB_ENC}&code_challenge={CHALLENGE}&code_challenge_method=S256&scope=read+write"
        ))
        .await;
    let (_, seen) = h.forwarded(post(&exchange(&code))).await;
    let grant = seen.grant.unwrap();
    assert_eq!(grant.scopes(), ["read", "write"]);
    let token = h.layer.refresh_tokens().issue(&grant).await.unwrap();
    let (answer, seen) = h
        .forwarded(post(&format!("{}&scope=read", refresh(&token))))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(seen.grant.unwrap().scopes(), ["read"]);

    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let token = h.app_refresh_token().await;
        let answer = h
            .refused(post(&format!("{}&scope=read+admin", refresh(&token))))
            .await;
        match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "invalid_scope"),
            _ => answer.assert_github("bad_refresh_token"),
        }
    }
}

#[tokio::test]
async fn missing_unknown_expired_and_other_clients_tokens() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::with(dialect, |b| b.refresh_lifetime(Duration::from_secs(3600)));
        let check = |answer: Answer, rfc_status: u16, rfc: &str| match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(rfc_status, rfc),
            _ => answer.assert_github("bad_refresh_token"),
        };
        check(
            h.refused(post(
                "grant_type=refresh_token&client_id=app&client_secret=s3cret",
            ))
            .await,
            400,
            "invalid_request",
        );
        check(
            h.refused(post(&refresh("never-issued"))).await,
            400,
            "invalid_grant",
        );
        let token = h.app_refresh_token().await;
        h.clock.advance(Duration::from_secs(3600));
        check(
            h.refused(post(&refresh(&token))).await,
            400,
            "invalid_grant",
        );
        let token = h.app_refresh_token().await;
        let other = refresh(&token).replace(
            "client_id=app&client_secret=s3cret",
            "client_id=other&client_secret=other-s3cret",
        );
        check(h.refused(post(&other)).await, 400, "invalid_grant");
    }
}

/// A code exchange by the public client `client_id`; the grant.
async fn public_exchange(h: &Harness, client_id: &str) -> tokengate::ValidatedGrant {
    let redirect = "http%3A%2F%2F127.0.0.1%3A1%2Fcb";
    let code = h
        .code(&format!(
            "client_id={client_id}&redirect_uri={redirect}&code_challenge={CHALLENGE}&code_challenge_method=S256"
        ))
        .await;
    let body = format!(
        "grant_type=authorization_code&code={code}&client_id={client_id}&redirect_uri={redirect}&code_verifier={VERIFIER}"
    );
    let (answer, seen) = h.forwarded(post(&body)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    seen.grant.unwrap()
}

#[tokio::test]
async fn public_clients_refresh_only_when_registered_for_it() {
    let h = Harness::new(Dialect::Rfc6749);
    // `native-no-refresh` may only exchange codes.
    let grant = public_exchange(&h, "native-no-refresh").await;
    assert!(h.layer.refresh_tokens().issue(&grant).await.is_err());
    h.refused(post(
        "grant_type=refresh_token&refresh_token=x&client_id=native-no-refresh",
    ))
    .await
    .assert_rfc(400, "unauthorized_client");
    // `native` is public with the default grants: it may refresh, with its
    // client_id alone.
    let grant = public_exchange(&h, "native").await;
    let token = h.layer.refresh_tokens().issue(&grant).await.unwrap();
    let body = format!("grant_type=refresh_token&refresh_token={token}&client_id=native");
    assert_eq!(h.forwarded(post(&body)).await.0.status, 200);
}

#[tokio::test]
async fn without_a_refresh_store_the_grant_is_unsupported() {
    let store = MemoryStore::new();
    let layer = TokenGateLayer::builder()
        .client_store(store.clone())
        .code_store(store)
        .build();
    let h = Harness {
        layer,
        ..Harness::new(Dialect::Rfc6749)
    };
    h.refused(post(&refresh("x")))
        .await
        .assert_rfc(400, "unsupported_grant_type");
}

#[tokio::test]
async fn client_credentials_grants_get_no_refresh_token() {
    let h = Harness::new(Dialect::Rfc6749);
    let (_, seen) = h
        .forwarded(post(
            "grant_type=client_credentials&client_id=svc&client_secret=svc-s3cret",
        ))
        .await;
    assert!(
        h.layer
            .refresh_tokens()
            .issue(&seen.grant.unwrap())
            .await
            .is_err()
    );
}
