//! The token lifecycle: the refresh reuse window, revocation (RFC 7009) and
//! introspection (RFC 7662), in process, in both dialects.

mod common;

use std::time::Duration;

use common::*;
use tokengate::{
    Client, Dialect, TokenGateLayer,
    lifecycle::{TokenActionKind, TokenTypeHint},
};

const REVOKE: &str = "/login/oauth/revoke";
const INTROSPECT: &str = "/login/oauth/introspect";

fn refresh(token: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret")
}

/// A harness whose gate grants `limit` reuses within `within`, with a
/// resource server `rs` registered to introspect.
fn with_reuse(dialect: Dialect, within: Duration, limit: u32) -> Harness {
    let h = Harness::with(dialect, |b| b.refresh_reuse(within, limit));
    h.store.insert_client(
        Client::confidential("rs")
            .with_secret("rs-s3cret")
            .with_introspection(true),
    );
    h
}

fn harness(dialect: Dialect) -> Harness {
    with_reuse(dialect, Duration::ZERO, 0)
}

/// Rotates `token` once through the gate: the grant the inner service saw,
/// and the successor it issued.
async fn rotate(h: &Harness, token: &str) -> (tokengate::ValidatedGrant, String) {
    let (answer, seen) = h.forwarded(post(&refresh(token))).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let grant = seen.grant.unwrap();
    let next = h.layer.refresh_tokens().issue(&grant).await.unwrap();
    (grant, next)
}

#[tokio::test]
async fn a_lost_answer_is_retried_within_the_window() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = with_reuse(dialect, Duration::from_secs(10), 2);
        let old = h.app_refresh_token().await;
        // The first answer is lost: its successor never reaches the client.
        let (first, lost) = rotate(&h, &old).await;
        assert!(!first.is_refresh_reuse());
        h.clock.advance(Duration::from_secs(5));
        // The retry gets a fresh pair in the same family.
        let (retry, kept) = rotate(&h, &old).await;
        assert!(retry.is_refresh_reuse());
        assert_eq!(retry.family(), first.family());
        assert!(h.refresh_replays.lock().unwrap().is_empty());
        // Both successors work (each once), so the family lives on.
        rotate(&h, &kept).await;
        rotate(&h, &lost).await;
    }
}

#[tokio::test]
async fn past_the_window_a_return_is_a_replay_and_revokes_the_family() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = with_reuse(dialect, Duration::from_secs(10), 2);
        let old = h.app_refresh_token().await;
        let (_, successor) = rotate(&h, &old).await;
        h.clock.advance(Duration::from_secs(10));
        let answer = h.refused(post(&refresh(&old))).await;
        match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "invalid_grant"),
            _ => answer.assert_github("bad_refresh_token"),
        }
        assert_eq!(h.refresh_replays.lock().unwrap().len(), 1);
        // The successor died with its family.
        h.refused(post(&refresh(&successor))).await;
    }
}

#[tokio::test]
async fn the_count_bounds_the_reuses_then_the_family_is_revoked() {
    let h = with_reuse(Dialect::Rfc6749, Duration::from_secs(60), 2);
    let old = h.app_refresh_token().await;
    let (_, a) = rotate(&h, &old).await;
    let (_, b) = rotate(&h, &old).await;
    let (_, c) = rotate(&h, &old).await;
    // 1 + 2 successors; the fourth presentation is a replay.
    h.refused(post(&refresh(&old)))
        .await
        .assert_rfc(400, "invalid_grant");
    assert_eq!(h.refresh_replays.lock().unwrap().len(), 1);
    for token in [a, b, c] {
        h.refused(post(&refresh(&token)))
            .await
            .assert_rfc(400, "invalid_grant");
    }
}

#[tokio::test]
async fn without_a_window_every_return_is_a_replay() {
    let h = harness(Dialect::Rfc6749);
    let old = h.app_refresh_token().await;
    rotate(&h, &old).await;
    h.refused(post(&refresh(&old)))
        .await
        .assert_rfc(400, "invalid_grant");
    assert_eq!(h.refresh_replays.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn another_client_never_reuses_nor_revokes() {
    let h = with_reuse(Dialect::Rfc6749, Duration::from_secs(60), 3);
    let old = h.app_refresh_token().await;
    let (_, successor) = rotate(&h, &old).await;
    let body = format!(
        "grant_type=refresh_token&refresh_token={old}&client_id=other&client_secret=other-s3cret"
    );
    h.refused(post(&body))
        .await
        .assert_rfc(400, "invalid_grant");
    assert!(h.refresh_replays.lock().unwrap().is_empty());
    rotate(&h, &successor).await;
}

#[tokio::test]
async fn concurrent_refreshes_inside_the_window_all_get_tokens() {
    let h = with_reuse(Dialect::Rfc6749, Duration::from_secs(30), 3);
    let old = h.app_refresh_token().await;
    // Four at once: one rotates (or holds the claim), three are reuses.
    let request = || h.forwarded(post(&refresh(&old)));
    let (a, b, c, d) = tokio::join!(request(), request(), request(), request());
    let mut reuses = 0;
    for (answer, seen) in [a, b, c, d] {
        assert_eq!(answer.status, 200, "{}", answer.text());
        reuses += usize::from(seen.grant.unwrap().is_refresh_reuse());
    }
    assert_eq!(reuses, 3);
    assert!(h.refresh_replays.lock().unwrap().is_empty());
}

fn revoke(token: &str, client: &str, secret: &str) -> String {
    format!("token={token}&client_id={client}&client_secret={secret}")
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = harness(dialect);
        let old = h.app_refresh_token().await;
        let (_, successor) = rotate(&h, &old).await;
        let answer = h
            .refused(post_to(REVOKE, &revoke(&successor, "app", "s3cret")))
            .await;
        assert_eq!(answer.status, 200);
        assert!(answer.body.is_empty());
        answer.assert_no_store();
        let refused = h.refused(post(&refresh(&successor))).await;
        assert!(refused.rejection.is_some());
        // A revocation is not a replay.
        assert!(h.refresh_replays.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn another_clients_refresh_token_is_left_alone_with_a_200() {
    let h = harness(Dialect::Rfc6749);
    let token = h.app_refresh_token().await;
    let answer = h
        .refused(post_to(REVOKE, &revoke(&token, "other", "other-s3cret")))
        .await;
    assert_eq!(answer.status, 200);
    rotate(&h, &token).await;
}

#[tokio::test]
async fn any_other_token_goes_to_the_application_with_the_client() {
    let h = harness(Dialect::Rfc6749);
    let body = format!(
        "{}&token_type_hint=access_token",
        revoke("gho_abc", "app", "s3cret")
    );
    let (_, seen) = h.forwarded(post_to(REVOKE, &body)).await;
    let action = seen.action.unwrap();
    assert_eq!(action.kind(), TokenActionKind::Revocation);
    assert_eq!(action.client().client_id(), "app");
    assert_eq!(action.token(), "gho_abc");
    assert_eq!(action.token_type_hint(), Some(TokenTypeHint::AccessToken));
    assert!(seen.grant.is_none());
    assert!(!format!("{action:?}").contains("gho_abc"));
    // A refresh hint on an unknown token: looked for, then handed on too.
    let body = format!(
        "{}&token_type_hint=refresh_token",
        revoke("nope", "app", "s3cret")
    );
    let (_, seen) = h.forwarded(post_to(REVOKE, &body)).await;
    assert_eq!(seen.action.unwrap().token(), "nope");
}

#[tokio::test]
async fn a_wrong_hint_still_finds_the_refresh_token() {
    let h = harness(Dialect::Rfc6749);
    let token = h.app_refresh_token().await;
    let body = format!(
        "{}&token_type_hint=access_token",
        revoke(&token, "app", "s3cret")
    );
    assert_eq!(h.refused(post_to(REVOKE, &body)).await.status, 200);
    assert!(h.refused(post(&refresh(&token))).await.rejection.is_some());
}

#[tokio::test]
async fn a_refresh_token_is_revoked_whatever_its_hint_says() {
    let h = harness(Dialect::Rfc6749);
    let token = h.app_refresh_token().await;
    // A hint nobody knows (a typo) does not save a live refresh token.
    let body = format!(
        "{}&token_type_hint=refresh",
        revoke(&token, "app", "s3cret")
    );
    let answer = h.refused(post_to(REVOKE, &body)).await;
    assert_eq!(answer.status, 200);
    assert!(h.refused(post(&refresh(&token))).await.rejection.is_some());
}

#[tokio::test]
async fn revocation_refusals_are_rfc_7009_in_both_dialects() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = harness(dialect);
        h.refused(post_to(REVOKE, &revoke("x", "app", "wrong")))
            .await
            .assert_rfc(401, "invalid_client");
        h.refused(post_to(REVOKE, "client_id=app&client_secret=s3cret"))
            .await
            .assert_rfc(400, "invalid_request");
        let body = format!("{}&token_type_hint=id_token", revoke("x", "app", "s3cret"));
        h.refused(post_to(REVOKE, &body))
            .await
            .assert_rfc(400, "unsupported_token_type");
        let body = format!("{}&token=y", revoke("x", "app", "s3cret"));
        h.refused(post_to(REVOKE, &body))
            .await
            .assert_rfc(400, "invalid_request");
        let mut get = post_to(REVOKE, "");
        *get.method_mut() = http::Method::GET;
        assert_eq!(h.refused(get).await.status, 405);
    }
}

#[tokio::test]
async fn failed_authentications_at_revocation_count_for_the_lockout() {
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.lockout(Some(tokengate::lockout::Lockout::new(
            2,
            Duration::from_secs(60),
        )))
    });
    for _ in 0..2 {
        h.refused(post_to(REVOKE, &revoke("x", "app", "wrong")))
            .await
            .assert_rfc(401, "invalid_client");
    }
    let answer = h
        .refused(post_to(REVOKE, &revoke("x", "app", "s3cret")))
        .await;
    answer.assert_rfc(429, "temporarily_unavailable");
    // The same count guards the token endpoint.
    let answer = h.refused(post(&refresh("x"))).await;
    assert_eq!(answer.status, 429);
}

#[tokio::test]
async fn a_public_client_revokes_its_own_tokens_by_its_id() {
    let h = harness(Dialect::Rfc6749);
    let (answer, seen) = h
        .forwarded(post_to(REVOKE, "token=t&client_id=native"))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(seen.action.unwrap().client().client_id(), "native");
    // But not with a secret it does not have.
    h.refused(post_to(REVOKE, "token=t&client_id=native&client_secret=x"))
        .await
        .assert_rfc(401, "invalid_client");
}

fn introspect(token: &str) -> http::Request<String> {
    post_basic_to(INTROSPECT, "rs", "rs-s3cret", &format!("token={token}"))
}

fn post_basic_to(path: &str, id: &str, secret: &str, body: &str) -> http::Request<String> {
    let mut request = post_to(path, body);
    request
        .headers_mut()
        .insert("authorization", basic(id, secret).parse().unwrap());
    request
}

#[tokio::test]
async fn introspection_describes_a_live_refresh_token() {
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let h = harness(dialect);
        let token = h.app_refresh_token().await;
        let answer = h.refused(introspect(&token)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        answer.assert_no_store();
        let json = answer.json();
        assert_eq!(json["active"], true);
        assert_eq!(json["client_id"], "app");
        assert_eq!(json["sub"], "user-1");
        assert_eq!(json["scope"], "read");
        assert_eq!(json["token_type"], "refresh_token");
        assert_eq!(json["iss"], "https://auth.example.com");
        assert!(json["exp"].as_u64().unwrap() > json["iat"].as_u64().unwrap());
        assert!(json.get("cnf").is_none());
    }
}

#[tokio::test]
async fn introspection_of_a_rotated_expired_or_revoked_token_is_inactive() {
    let h = harness(Dialect::Rfc6749);
    let old = h.app_refresh_token().await;
    let (_, successor) = rotate(&h, &old).await;
    assert_eq!(
        h.refused(introspect(&old)).await.text(),
        r#"{"active":false}"#
    );
    assert_eq!(
        h.refused(introspect(&successor)).await.json()["active"],
        true
    );
    h.refused(post_to(REVOKE, &revoke(&successor, "app", "s3cret")))
        .await;
    // Revoked: unknown to the store, so the application is asked (and the
    // harness's inner service would answer); the gate hands it on.
    let (_, seen) = h.forwarded(introspect(&successor)).await;
    assert_eq!(seen.action.unwrap().kind(), TokenActionKind::Introspection);
    let other = h.app_refresh_token().await;
    h.clock
        .advance(tokengate::builder::DEFAULT_REFRESH_LIFETIME);
    let (_, seen) = h.forwarded(introspect(&other)).await;
    assert!(seen.action.is_some());
}

#[tokio::test]
async fn only_registered_confidential_clients_introspect() {
    let h = harness(Dialect::Rfc6749);
    let token = h.app_refresh_token().await;
    let answer = h
        .refused(post_basic_to(
            INTROSPECT,
            "app",
            "s3cret",
            &format!("token={token}"),
        ))
        .await;
    answer.assert_rfc(403, "unauthorized_client");
    h.refused(post_to(
        INTROSPECT,
        &format!("token={token}&client_id=native"),
    ))
    .await
    .assert_rfc(403, "unauthorized_client");
    h.refused(post_basic_to(
        INTROSPECT,
        "rs",
        "wrong",
        &format!("token={token}"),
    ))
    .await
    .assert_rfc(401, "invalid_client");
    // A public client can never be registered to.
    assert!(
        !Client::public("p")
            .with_introspection(true)
            .may_introspect()
    );
}

#[tokio::test]
async fn an_unknown_hint_at_introspection_is_only_a_hint() {
    let h = harness(Dialect::Rfc6749);
    let token = h.app_refresh_token().await;
    let request = post_basic_to(
        INTROSPECT,
        "rs",
        "rs-s3cret",
        &format!("token={token}&token_type_hint=id_token"),
    );
    assert_eq!(h.refused(request).await.json()["active"], true);
}

#[tokio::test]
async fn metadata_lists_both_endpoints() {
    let h = harness(Dialect::Rfc6749);
    let json = serde_json::to_value(h.layer.metadata("https://auth.example.com")).unwrap();
    assert_eq!(
        json["revocation_endpoint"],
        "https://auth.example.com/login/oauth/revoke"
    );
    assert_eq!(
        json["introspection_endpoint"],
        "https://auth.example.com/login/oauth/introspect"
    );
    let methods = json["revocation_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(methods.iter().any(|m| m == "none"));
    assert!(methods.iter().any(|m| m == "private_key_jwt"));
    let methods = json["introspection_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(!methods.iter().any(|m| m == "none"));
    // Turned off, they are neither listed nor guarded.
    let layer = TokenGateLayer::builder()
        .store(tokengate::MemoryStore::new())
        .issuer("https://a.example")
        .revocation_path(None)
        .introspection_path(None)
        .build();
    let json = serde_json::to_value(layer.metadata("https://a.example")).unwrap();
    assert!(json.get("revocation_endpoint").is_none());
    assert!(json.get("introspection_endpoint").is_none());
}

#[tokio::test]
async fn the_builder_bounds_the_window_and_keeps_paths_apart() {
    type Memory = tokengate::Builder<Store, Store, Store, Store>;
    let build = |configure: fn(Memory) -> Memory| {
        configure(
            TokenGateLayer::builder()
                .store(tokengate::MemoryStore::new())
                .issuer("https://a.example"),
        )
        .try_build()
    };
    assert!(build(|b| b.refresh_reuse(Duration::from_secs(301), 1)).is_err());
    assert!(build(|b| b.refresh_reuse(Duration::from_secs(300), 11)).is_err());
    assert!(build(|b| b.refresh_reuse(Duration::from_secs(300), 10)).is_ok());
    assert!(build(|b| b.revocation_path(Some(TOKEN))).is_err());
    assert!(build(|b| b.introspection_path(Some(REVOKE))).is_err());
    assert!(build(|b| b.revocation_path(Some("revoke"))).is_err());
}

#[tokio::test]
async fn a_token_the_store_still_keeps_past_the_gates_expiry_is_inactive() {
    // The store reads the system clock, the gate a manual one moved past
    // the token's expiry: the store still answers it, the gate must not
    // call it active (a store on a server clock can lag the gate's).
    let clock = tokengate::clock::ManualClock::new();
    let store = tokengate::MemoryStore::new();
    store.insert_client(
        Client::confidential("app")
            .with_secret("s3cret")
            .with_redirect_uri(CB),
    );
    store.insert_client(
        Client::confidential("rs")
            .with_secret("rs-s3cret")
            .with_introspection(true),
    );
    let layer = TokenGateLayer::builder()
        .store(store)
        .issuer("https://auth.example.com")
        .clock(clock.clone())
        .build();
    let grant = {
        let h = harness(Dialect::Rfc6749);
        h.exchanged_grant().await
    };
    let token = layer.refresh_tokens().issue(&grant).await.unwrap();
    let introspect = || post_basic_to(INTROSPECT, "rs", "rs-s3cret", &format!("token={token}"));
    let answer = |layer: &TokenGateLayer, request| {
        let layer = layer.clone();
        async move {
            let service = tower::ServiceBuilder::new()
                .layer(layer)
                .service(tower::service_fn(|_: http::Request<_>| async {
                    panic!("the gate answers for its own refresh tokens");
                    #[allow(unreachable_code)]
                    Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
                }));
            Answer::read(tower::ServiceExt::oneshot(service, request).await.unwrap()).await
        }
    };
    assert_eq!(answer(&layer, introspect()).await.json()["active"], true);
    clock.advance(tokengate::builder::DEFAULT_REFRESH_LIFETIME);
    assert_eq!(
        answer(&layer, introspect()).await.text(),
        r#"{"active":false}"#
    );
}
