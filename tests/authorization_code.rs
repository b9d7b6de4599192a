//! docs/contract.md check 5 for the authorization-code grant: the code, the redirect
//! URI and PKCE, in both dialects.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use tokengate::{Dialect, GrantType, ResponseFormat};

#[tokio::test]
async fn a_valid_exchange_is_forwarded_with_the_grant() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    let body = exchange(&code);
    let (answer, seen) = h.forwarded(post(&body)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "inner");
    // The body arrives byte for byte, headers untouched.
    assert_eq!(&seen.body[..], body.as_bytes());
    assert_eq!(seen.headers.get("content-type").unwrap(), FORM);
    let grant = seen.grant.unwrap();
    assert_eq!(grant.grant_type(), GrantType::AuthorizationCode);
    assert_eq!(grant.client().client_id(), "app");
    assert_eq!(grant.subject(), Some("user-1"));
    assert_eq!(grant.scopes(), ["read"]);
    let record = grant.code().unwrap();
    assert_eq!(record.redirect_uri.as_deref(), Some(CB));
    assert_eq!(record.pkce.as_ref().unwrap().challenge, CHALLENGE);
    assert_eq!(seen.format, Some(ResponseFormat::Json));
    // The inner service left Cache-Control out; the gate adds it.
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("pragma"), Some("no-cache"));
}

#[tokio::test]
async fn code_missing() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    let body = "grant_type=authorization_code&client_id=app&client_secret=s3cret";
    h.refused(post(body))
        .await
        .assert_rfc(400, "invalid_request");
    g.refused(post(body))
        .await
        .assert_github("bad_verification_code");
}

#[tokio::test]
async fn code_unknown() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    let body = exchange("never-issued");
    h.refused(post(&body))
        .await
        .assert_rfc(400, "invalid_grant");
    g.refused(post(&body))
        .await
        .assert_github("bad_verification_code");
}

#[tokio::test]
async fn code_expired() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let code = h.app_code().await;
        h.clock.advance(Duration::from_secs(600));
        let answer = h.refused(post(&exchange(&code))).await;
        match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "invalid_grant"),
            _ => answer.assert_github("bad_verification_code"),
        }
    }
    // One second before the default lifetime ends it still works.
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    h.clock.advance(Duration::from_secs(599));
    assert_eq!(h.forwarded(post(&exchange(&code))).await.0.status, 200);
}

#[tokio::test]
async fn code_lifetime_is_configurable() {
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.code_lifetime(Duration::from_secs(30))
    });
    let code = h.app_code().await;
    h.clock.advance(Duration::from_secs(31));
    h.refused(post(&exchange(&code)))
        .await
        .assert_rfc(400, "invalid_grant");
}

#[tokio::test]
async fn code_used_twice_is_refused_and_reported() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let code = h.app_code().await;
        assert_eq!(h.forwarded(post(&exchange(&code))).await.0.status, 200);
        assert!(h.replays.lock().unwrap().is_empty());
        let answer = h.refused(post(&exchange(&code))).await;
        match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "invalid_grant"),
            _ => answer.assert_github("bad_verification_code"),
        }
        let replays = h.replays.lock().unwrap();
        assert_eq!(replays.len(), 1);
        assert_eq!(replays[0].client_id, "app");
        assert_eq!(replays[0].subject, "user-1");
    }
}

#[tokio::test]
async fn a_replay_with_bad_credentials_or_verifier_does_not_fire_the_hook() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    assert_eq!(h.forwarded(post(&exchange(&code))).await.0.status, 200);
    let wrong_secret = exchange(&code).replace("client_secret=s3cret", "client_secret=nope");
    h.refused(post(&wrong_secret))
        .await
        .assert_rfc(401, "invalid_client");
    let wrong_verifier = exchange(&code).replace(VERIFIER, &"x".repeat(43));
    h.refused(post(&wrong_verifier))
        .await
        .assert_rfc(400, "invalid_grant");
    let other_client = exchange(&code).replace(
        "client_id=app&client_secret=s3cret",
        "client_id=other&client_secret=other-s3cret",
    );
    h.refused(post(&other_client))
        .await
        .assert_rfc(400, "invalid_grant");
    assert!(h.replays.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_code_issued_to_another_client() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    for (harness, github) in [(&h, false), (&g, true)] {
        let code = harness.app_code().await;
        let body = exchange(&code).replace(
            "client_id=app&client_secret=s3cret",
            "client_id=other&client_secret=other-s3cret",
        );
        let answer = harness.refused(post(&body)).await;
        if github {
            answer.assert_github("bad_verification_code");
        } else {
            answer.assert_rfc(400, "invalid_grant");
        }
    }
}

#[tokio::test]
async fn redirect_uri_not_registered() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    for (harness, github) in [(&h, false), (&g, true)] {
        let code = harness.app_code().await;
        for other in [
            "https://client.example.com/cb/",
            "https://client.example.com/CB",
            "https://client.example.com:443/cb",
            "https://client.example.com/cb?x=1",
            "https://evil.example/cb",
        ] {
            let enc: String = form_urlencoded::byte_serialize(other.as_bytes()).collect();
            let body = exchange(&code).replace(CB_ENC, &enc);
            let answer = harness.refused(post(&body)).await;
            if github {
                answer.assert_github("redirect_uri_mismatch");
            } else {
                answer.assert_rfc(400, "invalid_grant");
            }
        }
        // The registration check does not burn the code.
        assert_eq!(
            harness.forwarded(post(&exchange(&code))).await.0.status,
            200
        );
    }
}

#[tokio::test]
async fn redirect_uri_differs_from_the_bound_one() {
    // `gh` uses GitHub's policy, so a sub-path is registered-valid but still
    // differs from the URI the code was issued for.
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let code = h
            .code("client_id=gh&redirect_uri=http%3A%2F%2Fexample.com%2Fpath%2Fa")
            .await;
        let body = format!(
            "grant_type=authorization_code&code={code}&client_id=gh&client_secret=gh-s3cret&redirect_uri=http%3A%2F%2Fexample.com%2Fpath%2Fb"
        );
        let answer = h.refused(post(&body)).await;
        match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "invalid_grant"),
            _ => answer.assert_github("redirect_uri_mismatch"),
        }
    }
}

#[tokio::test]
async fn redirect_uri_missing_but_bound() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    let body = exchange(&code).replace(&format!("&redirect_uri={CB_ENC}"), "");
    h.refused(post(&body))
        .await
        .assert_rfc(400, "invalid_request");
    // GitHub: optional.
    let g = Harness::new(Dialect::GitHub);
    let code = g.app_code().await;
    let body = exchange(&code).replace(&format!("&redirect_uri={CB_ENC}"), "");
    assert_eq!(g.forwarded(post(&body)).await.0.status, 200);
}

#[tokio::test]
async fn redirect_uri_not_bound_may_be_omitted_or_repeat_a_registered_one() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.code("client_id=app").await;
    let body =
        format!("grant_type=authorization_code&code={code}&client_id=app&client_secret=s3cret");
    assert_eq!(h.forwarded(post(&body)).await.0.status, 200);
    let code = h.code("client_id=app").await;
    let body = format!(
        "grant_type=authorization_code&code={code}&client_id=app&client_secret=s3cret&redirect_uri={CB_ENC}"
    );
    assert_eq!(h.forwarded(post(&body)).await.0.status, 200);
}

#[tokio::test]
async fn pkce_verifier_wrong() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    for (harness, github) in [(&h, false), (&g, true)] {
        let code = harness.app_code().await;
        let body = exchange(&code).replace(VERIFIER, &"A".repeat(43));
        let answer = harness.refused(post(&body)).await;
        if github {
            answer.assert_github("incorrect_code_verifier");
        } else {
            answer.assert_rfc(400, "invalid_grant");
        }
        // The failed attempt consumed the code: no second guess.
        let answer = harness.refused(post(&exchange(&code))).await;
        if github {
            answer.assert_github("bad_verification_code");
        } else {
            answer.assert_rfc(400, "invalid_grant");
        }
    }
}

#[tokio::test]
async fn pkce_verifier_missing() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    for (harness, github) in [(&h, false), (&g, true)] {
        let code = harness.app_code().await;
        let body = exchange(&code).replace(&format!("&code_verifier={VERIFIER}"), "");
        let answer = harness.refused(post(&body)).await;
        if github {
            answer.assert_github("incorrect_code_verifier");
        } else {
            answer.assert_rfc(400, "invalid_request");
        }
    }
}

#[tokio::test]
async fn pkce_downgrade_is_refused() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    for (harness, github) in [(&h, false), (&g, true)] {
        // Issued without a challenge; redeemed with a verifier.
        let code = harness
            .code(&format!("client_id=app&redirect_uri={CB_ENC}"))
            .await;
        let answer = harness.refused(post(&exchange(&code))).await;
        if github {
            answer.assert_github("incorrect_code_verifier");
        } else {
            answer.assert_rfc(400, "invalid_request");
        }
    }
}

#[tokio::test]
async fn pkce_verifier_syntax() {
    let h = Harness::new(Dialect::Rfc6749);
    let g = Harness::new(Dialect::GitHub);
    for bad in [
        "short".to_owned(),
        "a".repeat(42),
        "a".repeat(129),
        format!("{}%21", &VERIFIER[..42]),
        format!("{}+", &VERIFIER[..42]),
    ] {
        for (harness, github) in [(&h, false), (&g, true)] {
            let code = harness.app_code().await;
            let body = exchange(&code).replace(VERIFIER, &bad);
            let answer = harness.refused(post(&body)).await;
            if github {
                answer.assert_github("incorrect_code_verifier");
            } else {
                answer.assert_rfc(400, "invalid_grant");
            }
        }
    }
}

#[tokio::test]
async fn pkce_plain_only_when_enabled() {
    let plain = "a-plain-verifier-that-is-long-enough-to-be-valid-0123";
    let h = Harness::new(Dialect::Rfc6749);
    let refused = h
        .layer
        .authorizer()
        .validate(&format!(
            "response_type=code&client_id=app&redirect_uri={CB_ENC}&code_challenge={plain}&code_challenge_method=plain"
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.error(), "invalid_request");

    let h = Harness::with(Dialect::Rfc6749, |b| b.allow_plain_pkce(true));
    let code = h
        .code(&format!(
            "client_id=app&redirect_uri={CB_ENC}&code_challenge={plain}&code_challenge_method=plain"
        ))
        .await;
    let body = exchange(&code).replace(VERIFIER, plain);
    assert_eq!(h.forwarded(post(&body)).await.0.status, 200);
}

#[tokio::test]
async fn public_clients_must_use_pkce() {
    let h = Harness::new(Dialect::Rfc6749);
    let refused = h
        .layer
        .authorizer()
        .validate(
            "response_type=code&client_id=native&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb",
        )
        .await
        .unwrap_err();
    assert_eq!(refused.error(), "invalid_request");
    assert!(
        refused
            .location()
            .unwrap()
            .starts_with("http://127.0.0.1:5000/cb?error=invalid_request")
    );
}

#[tokio::test]
async fn one_hundred_concurrent_redemptions_forward_exactly_one() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        // 99 replays by one client would lock it out after ten; this test is
        // about atomicity, so the lockout is off.
        let h = Arc::new(Harness::with(dialect, |b| b.lockout(None)));
        let code = h.app_code().await;
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let h = Arc::clone(&h);
            let body = exchange(&code);
            tasks.push(tokio::spawn(async move {
                use tower::{ServiceBuilder, ServiceExt, service_fn};
                let service = ServiceBuilder::new()
                    .layer(h.layer.clone())
                    .service(service_fn(
                        |_: http::Request<tokengate::RequestBody<String>>| async {
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                "token".to_owned(),
                            ))
                        },
                    ));
                let response = service.oneshot(post(&body)).await.unwrap();
                Answer::read(response).await
            }));
        }
        let mut forwarded = 0;
        for task in tasks {
            let answer = task.await.unwrap();
            if answer.rejection.is_none() {
                assert_eq!(answer.text(), "token");
                forwarded += 1;
            } else {
                assert_eq!(
                    answer.status,
                    if dialect == Dialect::GitHub { 200 } else { 400 }
                );
            }
        }
        assert_eq!(forwarded, 1, "{dialect:?}");
        assert_eq!(h.replays.lock().unwrap().len(), 99);
    }
}

fn refresh(token: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret")
}

/// Issue 12, item 6 (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3): a code replayed by
/// its own client revokes the refresh tokens issued from it, the successors
/// of their rotations included, before the replay hook is told.
#[tokio::test]
async fn a_replayed_code_revokes_the_refresh_tokens_issued_from_it() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = Harness::new(dialect);
        let tokens = h.layer.refresh_tokens();
        let code = h.app_code().await;
        let (answer, seen) = h.forwarded(post(&exchange(&code))).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let first = tokens.issue(&seen.grant.unwrap()).await.unwrap();
        // Rotated once: the family now has a live successor.
        let (answer, seen) = h.forwarded(post(&refresh(&first))).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let successor = tokens.issue(&seen.grant.unwrap()).await.unwrap();
        // Another code's token, which the replay must leave alone.
        let bystander = h.app_refresh_token().await;

        let answer = h.refused(post(&exchange(&code))).await;
        match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "invalid_grant"),
            _ => answer.assert_github("bad_verification_code"),
        }
        assert_eq!(h.replays.lock().unwrap().len(), 1, "the hook still fires");

        let answer = h.refused(post(&refresh(&successor))).await;
        match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "invalid_grant"),
            _ => answer.assert_github("bad_refresh_token"),
        }
        // Revoked, not replayed: the refresh replay hook stays quiet.
        assert!(h.refresh_replays.lock().unwrap().is_empty());
        let (answer, _) = h.forwarded(post(&refresh(&bystander))).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
}

/// The replay may overtake the application (with two-phase redemption off,
/// the code is used up before the inner service runs): a refresh token the
/// application issues from the grant after the replay is refused at issue.
#[tokio::test]
async fn a_refresh_token_from_a_code_replayed_before_issuing_is_refused() {
    for claim in [None, Some(Duration::from_secs(30))] {
        let h = Harness::with(Dialect::Rfc6749, |b| b.two_phase_redemption(claim));
        let code = h.app_code().await;
        let (answer, seen) = h.forwarded(post(&exchange(&code))).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let grant = seen.grant.unwrap();
        h.refused(post(&exchange(&code)))
            .await
            .assert_rfc(400, "invalid_grant");
        let issued = h.layer.refresh_tokens().issue(&grant).await;
        assert!(issued.is_err(), "{claim:?}: a token from a replayed code");
        // A fresh code still gets one.
        let fresh = h.exchanged_grant().await;
        h.layer.refresh_tokens().issue(&fresh).await.unwrap();
    }
}

/// Only a replay that would otherwise have succeeded revokes: a stranger
/// holding the code, or its client with the wrong verifier, revokes nothing.
#[tokio::test]
async fn a_replay_that_fails_another_check_revokes_nothing() {
    let h = Harness::new(Dialect::Rfc6749);
    let code = h.app_code().await;
    let (answer, seen) = h.forwarded(post(&exchange(&code))).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let token = h
        .layer
        .refresh_tokens()
        .issue(&seen.grant.unwrap())
        .await
        .unwrap();
    let other_client = exchange(&code).replace(
        "client_id=app&client_secret=s3cret",
        "client_id=other&client_secret=other-s3cret",
    );
    let wrong_verifier = exchange(&code).replace(VERIFIER, &"x".repeat(43));
    for body in [other_client, wrong_verifier] {
        h.refused(post(&body))
            .await
            .assert_rfc(400, "invalid_grant");
    }
    assert!(h.replays.lock().unwrap().is_empty());
    let (answer, _) = h.forwarded(post(&refresh(&token))).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// Without a refresh store there is nothing to revoke: the replay is
/// refused and told, as before.
#[tokio::test]
async fn without_a_refresh_store_a_replay_is_refused_and_told() {
    let base = Harness::new(Dialect::Rfc6749);
    let replays = Arc::new(std::sync::Mutex::new(0));
    let seen = Arc::clone(&replays);
    let layer = tokengate::TokenGateLayer::builder()
        .client_store(base.store.clone())
        .code_store(base.store.clone())
        .clock(base.clock.clone())
        .on_code_replay(move |_| *seen.lock().unwrap() += 1)
        .build();
    let h = Harness { layer, ..base };
    let code = h.app_code().await;
    assert_eq!(h.forwarded(post(&exchange(&code))).await.0.status, 200);
    h.refused(post(&exchange(&code)))
        .await
        .assert_rfc(400, "invalid_grant");
    assert_eq!(*replays.lock().unwrap(), 1);
}
