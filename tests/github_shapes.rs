//! GitHub's shapes in the GitHub dialect (issue 16), in process: refresh
//! tokens `ghr_` and 64 hex digits, their 15,897,600 s lifetime, device
//! codes of 40 hex digits, and the `error_uri` of `bad_refresh_token` and
//! `incorrect_code_verifier`; the RFC 6749 dialect keeps its own shapes;
//! `Builder::token_shape` and `Builder::refresh_lifetime` win over the
//! dialect's defaults whatever the order of the builder's calls.

mod common;

use std::time::Duration;

use common::*;
use regex::Regex;
use tokengate::{
    Dialect, GrantType,
    builder::{DEFAULT_REFRESH_LIFETIME, GITHUB_REFRESH_LIFETIME, TokenShape},
    store::{CodeKey, Lookup, RefreshStore},
};

/// GitHub's refresh token: `ghr_`, then 256 bits as lowercase hex.
const GITHUB_REFRESH: &str = "^ghr_[0-9a-f]{64}$";
/// GitHub's device code: 160 bits as lowercase hex.
const GITHUB_DEVICE_CODE: &str = "^[0-9a-f]{40}$";
/// The RFC 6749 dialect's values: 256 bits, base64url without padding.
const OPAQUE: &str = "^[A-Za-z0-9_-]{43}$";

const TOKEN_ERRORS: &str =
    "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/";

fn assert_shape(value: &str, pattern: &str) {
    assert!(
        Regex::new(pattern).unwrap().is_match(value),
        "{value:?} does not match {pattern}"
    );
}

fn refresh(token: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret")
}

fn poll(client_id: &str, device_code: &str) -> String {
    format!("grant_type={DEVICE_GRANT}&client_id={client_id}&device_code={device_code}")
}

/// Starts a device authorization for `gh-tv` (its `client_id` alone in the
/// GitHub dialect, its secret too in RFC 6749's): (device_code, user_code).
async fn start_device(h: &Harness, dialect: Dialect) -> (String, String) {
    let body = match dialect {
        Dialect::GitHub => "client_id=gh-tv",
        _ => "client_id=gh-tv&client_secret=gh-tv-s3cret",
    };
    let answer = h
        .refused(with_accept(post_device(body), "application/json"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let json = answer.json();
    (
        json["device_code"].as_str().unwrap().to_owned(),
        json["user_code"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn refresh_tokens_take_the_dialects_shape_and_are_stored_by_digest() {
    for (dialect, shape) in [
        (Dialect::GitHub, GITHUB_REFRESH),
        (Dialect::Rfc6749, OPAQUE),
    ] {
        let h = Harness::new(dialect);
        let grant = h.exchanged_grant().await;
        let token = h.layer.refresh_tokens().issue(&grant).await.unwrap();
        assert_shape(&token, shape);
        // Kept under the SHA-256 of the whole token, prefix included.
        match h.store.find(&CodeKey::of(&token)).await.unwrap() {
            Lookup::Unused(record) => assert_eq!(record.client_id, "app"),
            other => panic!("{dialect:?}: not stored by its digest: {other:?}"),
        }
        let bare = token.strip_prefix("ghr_").unwrap_or(&token);
        if bare != token {
            assert!(matches!(
                h.store.find(&CodeKey::of(bare)).await.unwrap(),
                Lookup::Unknown
            ));
        }
        // It works, and its successor has the same shape.
        let (answer, seen) = h.forwarded(post(&refresh(&token))).await;
        assert_eq!(answer.status, 200, "{dialect:?}: {}", answer.text());
        let next = h
            .layer
            .refresh_tokens()
            .issue(&seen.grant.unwrap())
            .await
            .unwrap();
        assert_shape(&next, shape);
        assert_ne!(next, token);
    }
}

#[tokio::test]
async fn the_shape_set_on_the_builder_wins_in_either_order() {
    for (dialect, set, shape) in [
        (Dialect::GitHub, TokenShape::Opaque, OPAQUE),
        (Dialect::Rfc6749, TokenShape::GitHub, GITHUB_REFRESH),
    ] {
        // Set after the dialect (the harness sets it first), then before.
        let after = Harness::with(dialect, |b| b.token_shape(set));
        let before = Harness::with(Dialect::default(), |b| b.token_shape(set).dialect(dialect));
        for h in [after, before] {
            let token = h.app_refresh_token().await;
            assert_shape(&token, shape);
            let (answer, _) = h.forwarded(post(&refresh(&token))).await;
            assert_eq!(answer.status, 200, "{}", answer.text());
            let (device_code, _) = start_device(&h, dialect).await;
            match set {
                TokenShape::GitHub => assert_shape(&device_code, GITHUB_DEVICE_CODE),
                _ => assert_shape(&device_code, OPAQUE),
            }
        }
    }
}

#[tokio::test]
async fn the_refresh_lifetime_follows_the_dialect() {
    assert_eq!(GITHUB_REFRESH_LIFETIME, Duration::from_secs(15_897_600));
    assert_eq!(
        DEFAULT_REFRESH_LIFETIME,
        Duration::from_secs(30 * 24 * 3600)
    );
    for (dialect, lifetime) in [
        (Dialect::GitHub, GITHUB_REFRESH_LIFETIME),
        (Dialect::Rfc6749, DEFAULT_REFRESH_LIFETIME),
    ] {
        let h = Harness::new(dialect);
        assert_eq!(h.layer.refresh_tokens().lifetime(), lifetime, "{dialect:?}");
        let token = h.app_refresh_token().await;
        let Lookup::Unused(record) = h.store.find(&CodeKey::of(&token)).await.unwrap() else {
            panic!("{dialect:?}: the token is not stored");
        };
        assert_eq!(
            record.expires_at.duration_since(record.issued_at).unwrap(),
            lifetime
        );
        // Accepted a second before the end of its lifetime, refused after.
        let late = h.app_refresh_token().await;
        h.clock.advance(lifetime - Duration::from_secs(1));
        let (answer, _) = h.forwarded(post(&refresh(&token))).await;
        assert_eq!(answer.status, 200, "{dialect:?}: {}", answer.text());
        h.clock.advance(Duration::from_secs(2));
        let answer = h.refused(post(&refresh(&late))).await;
        match dialect {
            Dialect::GitHub => answer.assert_github("bad_refresh_token"),
            _ => answer.assert_rfc(400, "invalid_grant"),
        }
    }
}

#[tokio::test]
async fn an_explicit_refresh_lifetime_wins_in_either_order() {
    let hour = Duration::from_secs(3600);
    for dialect in [Dialect::GitHub, Dialect::Rfc6749] {
        // After the dialect (the harness sets it first).
        let after = Harness::with(dialect, |b| b.refresh_lifetime(hour));
        // Before it: the dialect, set last, does not reset it.
        let before = Harness::with(Dialect::default(), |b| {
            b.refresh_lifetime(hour).dialect(dialect)
        });
        for h in [after, before] {
            assert_eq!(h.layer.refresh_tokens().lifetime(), hour, "{dialect:?}");
            let token = h.app_refresh_token().await;
            h.clock.advance(hour + Duration::from_secs(1));
            let answer = h.refused(post(&refresh(&token))).await;
            assert_eq!(
                answer.rejection.unwrap().code().as_str(),
                match dialect {
                    Dialect::GitHub => "bad_refresh_token",
                    _ => "invalid_grant",
                }
            );
        }
    }
    // A dialect changed twice keeps the last one's default.
    let h = Harness::with(Dialect::GitHub, |b| {
        b.dialect(Dialect::Rfc6749).dialect(Dialect::GitHub)
    });
    assert_eq!(h.layer.refresh_tokens().lifetime(), GITHUB_REFRESH_LIFETIME);
    let h = Harness::with(Dialect::GitHub, |b| b.dialect(Dialect::Rfc6749));
    assert_eq!(
        h.layer.refresh_tokens().lifetime(),
        DEFAULT_REFRESH_LIFETIME
    );
}

#[tokio::test]
async fn device_codes_take_the_dialects_shape() {
    for (dialect, shape) in [
        (Dialect::GitHub, GITHUB_DEVICE_CODE),
        (Dialect::Rfc6749, OPAQUE),
    ] {
        let h = Harness::new(dialect);
        let (a, _) = start_device(&h, dialect).await;
        let (b, _) = start_device(&h, dialect).await;
        assert_shape(&a, shape);
        assert_shape(&b, shape);
        assert_ne!(a, b);
    }
    // GitHub's default body, form-encoded, carries the same shape.
    let h = Harness::new(Dialect::GitHub);
    let answer = h.refused(post_device("client_id=gh-tv")).await;
    assert_eq!(answer.status, 200);
    assert_shape(&answer.form()["device_code"], GITHUB_DEVICE_CODE);
}

#[tokio::test]
async fn a_40_hex_device_code_polls_and_redeems_end_to_end() {
    let h = Harness::new(Dialect::GitHub);
    let (device_code, user_code) = start_device(&h, Dialect::GitHub).await;
    assert_shape(&device_code, GITHUB_DEVICE_CODE);
    let body = poll("gh-tv", &device_code);
    // Pending, in GitHub's words, until the user decides.
    let answer = h
        .refused(with_accept(post(&body), "application/json"))
        .await;
    assert_eq!(answer.status, 200);
    let json = answer.json();
    assert_eq!(json["error"], "authorization_pending", "{json}");
    assert!(
        h.layer
            .devices()
            .approve(&user_code, "alice", None)
            .await
            .unwrap()
    );
    h.clock.advance(Duration::from_secs(5));
    let (answer, seen) = h.forwarded(post(&body)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(&seen.body[..], body.as_bytes());
    let grant = seen.grant.unwrap();
    assert_eq!(grant.grant_type(), GrantType::DeviceCode);
    assert_eq!(grant.subject(), Some("alice"));
    assert_eq!(grant.device().unwrap().user_code, user_code);
    // Redeemed once: the same code again, or one hex digit off, is unknown.
    h.clock.advance(Duration::from_secs(5));
    h.refused(post(&body))
        .await
        .assert_github("incorrect_device_code");
    let last = if device_code.ends_with('0') { "1" } else { "0" };
    let other = format!("{}{last}", &device_code[..39]);
    h.refused(post(&poll("gh-tv", &other)))
        .await
        .assert_github("incorrect_device_code");
}

/// The JSON error body of `answer`, checked for GitHub's status and the
/// no-store headers.
fn github_json(answer: &Answer, error: &str) -> serde_json::Value {
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    answer.assert_no_store();
    let json = answer.json();
    assert_eq!(json["error"], error, "{json}");
    json
}

#[tokio::test]
async fn bad_refresh_token_and_incorrect_code_verifier_carry_error_uris() {
    for base in [None, Some("https://docs.github.com")] {
        let h = Harness::with(Dialect::GitHub, |b| match base {
            Some(base) => b.error_uri_base(base),
            None => b,
        });
        let prefix = base.unwrap_or("");
        // bad_refresh_token: an unknown token, and a rotated one (a replay).
        let token = h.app_refresh_token().await;
        h.forwarded(post(&refresh(&token))).await;
        for presented in ["ghr_0000", token.as_str()] {
            let answer = h
                .refused(with_accept(post(&refresh(presented)), "application/json"))
                .await;
            let uri = format!("{prefix}{TOKEN_ERRORS}#bad-refresh-token");
            assert_eq!(
                answer.text(),
                format!(
                    r#"{{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired.","error_uri":"{uri}"}}"#
                )
            );
            github_json(&answer, "bad_refresh_token");
            assert_eq!(answer.rejection.unwrap().uri(), Some(uri.as_str()));
        }
        // incorrect_code_verifier: a wrong verifier, and none.
        for verifier in [format!("&code_verifier={}", "A".repeat(43)), String::new()] {
            let code = h.app_code().await;
            let body = exchange(&code).replace(&format!("&code_verifier={VERIFIER}"), &verifier);
            let answer = h
                .refused(with_accept(post(&body), "application/json"))
                .await;
            let json = github_json(&answer, "incorrect_code_verifier");
            let uri = format!("{prefix}{TOKEN_ERRORS}#incorrect-code-verifier");
            assert_eq!(json["error_uri"], uri.as_str(), "{json}");
            assert_eq!(
                json["error_description"],
                "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE."
            );
            assert_eq!(answer.rejection.unwrap().uri(), Some(uri.as_str()));
        }
        // The form body, GitHub's default, carries it too.
        let answer = h.refused(post(&refresh("ghr_0000"))).await;
        answer.assert_github("bad_refresh_token");
        assert_eq!(
            answer.form()["error_uri"],
            format!("{prefix}{TOKEN_ERRORS}#bad-refresh-token")
        );
    }
}

#[tokio::test]
async fn the_rfc_dialect_keeps_its_error_uris() {
    // No base: no error_uri. A base: BASE#error, GitHub's paths never.
    for base in [None, Some("https://auth.example/errors")] {
        let h = Harness::with(Dialect::Rfc6749, |b| match base {
            Some(base) => b.error_uri_base(base),
            None => b,
        });
        let answer = h.refused(post(&refresh("unknown"))).await;
        answer.assert_rfc(400, "invalid_grant");
        let code = h.app_code().await;
        let wrong = exchange(&code).replace(VERIFIER, &"A".repeat(43));
        let verifier = h.refused(post(&wrong)).await;
        verifier.assert_rfc(400, "invalid_grant");
        for answer in [answer, verifier] {
            let json = answer.json();
            match base {
                None => assert_eq!(json.get("error_uri"), None, "{json}"),
                Some(base) => assert_eq!(
                    json["error_uri"],
                    format!("{base}#invalid_grant").as_str(),
                    "{json}"
                ),
            }
        }
    }
}
