//! The demo server's token lifecycle, driven from the outside over plain
//! HTTP: `POST /login/oauth/revoke` (RFC 7009) and
//! `POST /login/oauth/introspect` (RFC 7662) for the access tokens the
//! demo mints and the refresh tokens the gate keeps, in both dialects; the
//! clients file's `introspect`; `--refresh-reuse` (a retry of a rotated
//! refresh token within the window gets tokens, without the flag it is a
//! replay); and the demo's access-token registry itself (its bound, its
//! families), compiled from `examples/server/tokens.rs`.

mod common;

use std::process::Command;

use common::{VERIFIER, demo::*};
use serde_json::{Value, json};

/// The registry of the demo's access tokens, as the demo compiles it.
#[allow(dead_code)]
#[path = "../examples/server/tokens.rs"]
mod tokens;

const DIALECTS: [&str; 2] = ["github", "rfc6749"];
const ACCEPT: &str = "Accept: application/json";

/// `app` and `other` get tokens; `rs`, a resource server, introspects.
fn clients() -> (std::path::PathBuf, String) {
    let loopback = |id: &str| {
        json!({"client_id": id, "client_secret": format!("{id}-secret"),
            "redirect_uris": ["http://127.0.0.1/callback"], "redirect_policy": "loopback"})
    };
    let dir = std::env::temp_dir().join(format!(
        "tokengate-lifecycle-{}-{}",
        std::process::id(),
        unique()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("clients.json");
    let document = json!({"clients": [
        loopback("app"),
        loopback("other"),
        {"client_id": "rs", "client_secret": "rs-secret", "introspect": true},
    ]});
    std::fs::write(&file, document.to_string()).unwrap();
    let path = file.to_str().unwrap().to_owned();
    (dir, path)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A code exchange by `id` (client_secret_post): the access and refresh
/// tokens.
async fn tokens_for(addr: &str, id: &str) -> (String, String) {
    let code = authorize(addr, id).await;
    let body = format!(
        "grant_type=authorization_code&client_id={id}&client_secret={id}-secret&code={code}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}"
    );
    pair(&token(addr, ACCEPT, &body).await)
}

/// The access and refresh tokens of a successful token answer (JSON).
fn pair(reply: &Reply) -> (String, String) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let json = reply.json();
    let field = |name: &str| {
        json[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name}: {json}"))
            .to_owned()
    };
    (field("access_token"), field("refresh_token"))
}

/// A refresh of `refresh` by `id`.
async fn refresh(addr: &str, id: &str, refresh: &str) -> Reply {
    token(
        addr,
        ACCEPT,
        &refresh_body(id, &format!("{id}-secret"), refresh),
    )
    .await
}

/// A refresh grant refused as a bad refresh token, in `dialect`: RFC
/// 6749's `400 invalid_grant`, or GitHub's `200 bad_refresh_token`.
fn assert_refresh_refused(reply: &Reply, dialect: &str) {
    let json = reply.json();
    match dialect {
        "rfc6749" => {
            assert_eq!(reply.status, 400, "{}", reply.body);
            assert_eq!(json["error"], "invalid_grant", "{json}");
        }
        _ => {
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert_eq!(json["error"], "bad_refresh_token", "{json}");
        }
    }
    assert!(json.get("access_token").is_none(), "{json}");
}

/// `{"active":false}`, and nothing else, uncached.
fn assert_inactive(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, r#"{"active":false}"#);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.headers["cache-control"], "no-store");
}

/// An active introspection answer's JSON.
fn active(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.headers["cache-control"], "no-store");
    let json = reply.json();
    assert_eq!(json["active"], true, "{json}");
    json
}

/// RFC 7009 §2.2: `200`, an empty body, uncached.
fn assert_revoked(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, "");
    assert_eq!(reply.headers["cache-control"], "no-store");
}

/// An RFC 6749 error in JSON (the lifecycle endpoints' form in both
/// dialects).
fn assert_error(reply: &Reply, status: u16, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/json");
    let json = reply.json();
    assert_eq!(json["error"], error, "{json}");
    assert!(json.get("active").is_none(), "{json}");
}

#[tokio::test]
async fn access_tokens_are_introspected_and_revoked_by_their_client_only() {
    for dialect in DIALECTS {
        let (dir, file) = clients();
        let server = start(&["--clients", &file, "--dialect", dialect]);
        let addr = server.addr.as_str();
        let (access, refresh_token) = tokens_for(addr, "app").await;

        let json = active(&introspect(addr, "rs", "rs-secret", &access).await);
        assert_eq!(json["client_id"], "app", "{json}");
        assert_eq!(json["sub"], "demo-user", "{json}");
        assert_eq!(json["scope"], "repo", "{json}");
        assert_eq!(json["token_type"], "Bearer", "{json}");
        assert_eq!(json["iss"], format!("http://{addr}"), "{json}");
        let (iat, exp) = (json["iat"].as_u64().unwrap(), json["exp"].as_u64().unwrap());
        assert_eq!(exp - iat, 8 * 3600, "{json}");
        assert!(json.get("cnf").is_none(), "{json}");

        // client_secret_post at the introspection endpoint too.
        let reply = form_post(
            addr,
            INTROSPECT,
            "",
            &format!("token={access}&client_id=rs&client_secret=rs-secret"),
        )
        .await;
        assert_eq!(active(&reply)["client_id"], "app");

        // Another client's revocation: 200, and nothing revoked.
        assert_revoked(&revoke(addr, "other", "other-secret", &access, "").await);
        active(&introspect(addr, "rs", "rs-secret", &access).await);

        // Its own client's: revoked.
        let hint = "&token_type_hint=access_token";
        assert_revoked(&revoke(addr, "app", "app-secret", &access, hint).await);
        assert_inactive(&introspect(addr, "rs", "rs-secret", &access).await);
        // Again, or a token nobody issued: 200 all the same.
        assert_revoked(&revoke(addr, "app", "app-secret", &access, "").await);
        assert_revoked(&revoke(addr, "app", "app-secret", "gho_unknown", "").await);
        assert_inactive(&introspect(addr, "rs", "rs-secret", "gho_unknown").await);

        // The refresh token issued with it was not revoked.
        let (next, _) = pair(&refresh(addr, "app", &refresh_token).await);
        active(&introspect(addr, "rs", "rs-secret", &next).await);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family_and_the_access_tokens_issued_from_it() {
    for dialect in DIALECTS {
        let (dir, file) = clients();
        let server = start(&["--clients", &file, "--dialect", dialect]);
        let addr = server.addr.as_str();
        let (first_access, first_refresh) = tokens_for(addr, "app").await;
        let (access, refresh_token) = pair(&refresh(addr, "app", &first_refresh).await);

        // The gate describes its own refresh tokens.
        let json = active(&introspect(addr, "rs", "rs-secret", &refresh_token).await);
        assert_eq!(json["token_type"], "refresh_token", "{json}");
        assert_eq!(json["client_id"], "app", "{json}");
        assert_eq!(json["sub"], "demo-user", "{json}");
        assert_eq!(json["iss"], format!("http://{addr}"), "{json}");
        // The rotated one is no longer usable.
        assert_inactive(&introspect(addr, "rs", "rs-secret", &first_refresh).await);

        // Another client cannot revoke it.
        let hint = "&token_type_hint=refresh_token";
        assert_revoked(&revoke(addr, "other", "other-secret", &refresh_token, hint).await);
        active(&introspect(addr, "rs", "rs-secret", &refresh_token).await);

        // Its client can, with a wrong hint even (RFC 7009 §2.1).
        let wrong_hint = "&token_type_hint=access_token";
        assert_revoked(&revoke(addr, "app", "app-secret", &refresh_token, wrong_hint).await);
        assert_refresh_refused(&refresh(addr, "app", &refresh_token).await, dialect);
        assert_inactive(&introspect(addr, "rs", "rs-secret", &refresh_token).await);
        // The family's access tokens went with it: the refresh grant's
        // (dropped by the revocation hook) and the code's (whose refresh
        // token is gone from the store).
        assert_inactive(&introspect(addr, "rs", "rs-secret", &access).await);
        assert_inactive(&introspect(addr, "rs", "rs-secret", &first_access).await);

        // Another grant of the same client is untouched.
        let (other_access, other_refresh) = tokens_for(addr, "app").await;
        active(&introspect(addr, "rs", "rs-secret", &other_access).await);
        active(&introspect(addr, "rs", "rs-secret", &other_refresh).await);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[tokio::test]
async fn lifecycle_refusals_are_rfc_json_in_both_dialects() {
    for dialect in DIALECTS {
        let (dir, file) = clients();
        let server = start(&["--clients", &file, "--dialect", dialect]);
        let addr = server.addr.as_str();
        let (access, refresh_token) = tokens_for(addr, "app").await;

        // A client not registered to introspect, even about its own tokens.
        for token in [&access, &refresh_token] {
            let reply = introspect(addr, "app", "app-secret", token).await;
            assert_error(&reply, 403, "unauthorized_client");
        }
        // A wrong secret, at either endpoint.
        assert_error(
            &introspect(addr, "rs", "guess", &access).await,
            401,
            "invalid_client",
        );
        assert_error(
            &revoke(addr, "app", "guess", &access, "").await,
            401,
            "invalid_client",
        );
        // No client at all.
        let reply = form_post(addr, REVOKE, "", &format!("token={access}")).await;
        assert_error(&reply, 401, "invalid_client");
        // No token.
        let auth = format!("Authorization: {}", common::basic("rs", "rs-secret"));
        assert_error(
            &form_post(addr, INTROSPECT, &auth, "").await,
            400,
            "invalid_request",
        );
        // A kind of token nobody here revokes (RFC 7009 §2.2.1).
        let reply = revoke(
            addr,
            "app",
            "app-secret",
            &access,
            "&token_type_hint=id_token",
        )
        .await;
        assert_error(&reply, 400, "unsupported_token_type");
        // Only POST.
        let reply = send(
            addr,
            &format!("GET {INTROSPECT}?token={access} HTTP/1.1"),
            "",
        )
        .await;
        assert_eq!(reply.status, 405, "{}", reply.body);
        // None of the refusals touched the tokens.
        active(&introspect(addr, "rs", "rs-secret", &access).await);
        active(&introspect(addr, "rs", "rs-secret", &refresh_token).await);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[tokio::test]
async fn the_demo_client_introspects_and_a_dpop_token_shows_its_key() {
    use tokengate::testing::jose::{DpopProof, TestKey};

    let server = start(&[]);
    let addr = server.addr.as_str();
    let key = TestKey::es256();
    let code = authorize(addr, "demo-client").await;
    let proof =
        DpopProof::new("POST", &format!("http://{addr}/login/oauth/access_token")).sign(&key);
    let reply = token(
        addr,
        &format!("{ACCEPT}\r\nDPoP: {proof}"),
        &demo_exchange(&code),
    )
    .await;
    let (access, _) = pair(&reply);
    assert_eq!(reply.json()["token_type"], "DPoP");
    let json = active(&introspect(addr, "demo-client", "demo-secret", &access).await);
    assert_eq!(json["token_type"], "DPoP", "{json}");
    assert_eq!(json["cnf"]["jkt"], key.thumbprint(), "{json}");
    assert_eq!(json["client_id"], "demo-client", "{json}");
    // Revoked by the demo client, which holds it.
    assert_revoked(&revoke(addr, "demo-client", "demo-secret", &access, "").await);
    assert_inactive(&introspect(addr, "demo-client", "demo-secret", &access).await);
}

#[tokio::test]
async fn the_metadata_lists_both_endpoints() {
    let server = start(&[]);
    let reply = send(
        &server.addr,
        "GET /.well-known/oauth-authorization-server HTTP/1.1",
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    let json = reply.json();
    let base = format!("http://{}", server.addr);
    assert_eq!(json["revocation_endpoint"], format!("{base}{REVOKE}"));
    assert_eq!(
        json["introspection_endpoint"],
        format!("{base}{INTROSPECT}")
    );
    let methods = |name: &str| -> Vec<String> {
        serde_json::from_value(json[name].clone()).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let revocation = methods("revocation_endpoint_auth_methods_supported");
    for method in [
        "client_secret_basic",
        "client_secret_post",
        "none",
        "private_key_jwt",
    ] {
        assert!(revocation.iter().any(|m| m == method), "{method}: {json}");
    }
    // Only confidential clients introspect.
    let introspection = methods("introspection_endpoint_auth_methods_supported");
    assert!(
        introspection.iter().any(|m| m == "client_secret_basic"),
        "{json}"
    );
    assert!(!introspection.iter().any(|m| m == "none"), "{json}");
}

#[tokio::test]
async fn a_retry_within_the_reuse_window_gets_tokens() {
    for dialect in DIALECTS {
        let (dir, file) = clients();
        let server = start(&[
            "--clients",
            &file,
            "--dialect",
            dialect,
            "--refresh-reuse",
            "30",
        ]);
        let addr = server.addr.as_str();
        let (_, original) = tokens_for(addr, "app").await;
        let (lost_access, lost) = pair(&refresh(addr, "app", &original).await);
        // The answer was lost; the client retries with the same token.
        let (access, kept) = pair(&refresh(addr, "app", &original).await);
        assert_ne!(kept, lost);
        assert_ne!(access, lost_access);
        active(&introspect(addr, "rs", "rs-secret", &access).await);
        // Another client presenting it is refused, and revokes nothing.
        let reply = token(
            addr,
            ACCEPT,
            &refresh_body("other", "other-secret", &original),
        )
        .await;
        assert_refresh_refused(&reply, dialect);
        // Two more reuses (three in all), then a replay: the family goes.
        for _ in 0..2 {
            pair(&refresh(addr, "app", &original).await);
        }
        assert_refresh_refused(&refresh(addr, "app", &original).await, dialect);
        assert_refresh_refused(&refresh(addr, "app", &kept).await, dialect);
        assert_refresh_refused(&refresh(addr, "app", &lost).await, dialect);
        assert_inactive(&introspect(addr, "rs", "rs-secret", &access).await);
        assert_inactive(&introspect(addr, "rs", "rs-secret", &lost_access).await);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[tokio::test]
async fn without_the_reuse_window_a_retry_is_a_replay() {
    for dialect in DIALECTS {
        let (dir, file) = clients();
        // The default, and an explicit 0.
        for flags in [&[][..], &["--refresh-reuse", "0"][..]] {
            let mut args = vec!["--clients", file.as_str(), "--dialect", dialect];
            args.extend_from_slice(flags);
            let server = start(&args);
            let addr = server.addr.as_str();
            let (_, original) = tokens_for(addr, "app").await;
            let (access, successor) = pair(&refresh(addr, "app", &original).await);
            assert_refresh_refused(&refresh(addr, "app", &original).await, dialect);
            // The replay revoked the family: the successor, and the access
            // token issued with it (the replay hook).
            assert_refresh_refused(&refresh(addr, "app", &successor).await, dialect);
            assert_inactive(&introspect(addr, "rs", "rs-secret", &access).await);
            assert_inactive(&introspect(addr, "rs", "rs-secret", &successor).await);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// The hooks at work, seen in the demo's logs (the family's access tokens
/// dropped on a revocation and on a replay), and no token or secret in
/// them at any level.
#[tokio::test]
async fn the_logs_tell_of_dropped_families_and_never_show_a_token() {
    let (dir, file) = clients();
    let log = dir.join("stderr.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let server = try_spawn_with(&binary(), &["--clients", &file], |command| {
        command
            .env("RUST_LOG", "tokengate=trace,server=trace")
            .env("NO_COLOR", "1")
            .stderr(stderr);
    })
    .unwrap();
    let addr = server.addr.as_str();
    let mut secrets = vec!["app-secret".to_owned(), "rs-secret".to_owned()];
    // A revocation: the refresh grant's access token goes with its family.
    let (first_access, first_refresh) = tokens_for(addr, "app").await;
    let (access, refresh_token) = pair(&refresh(addr, "app", &first_refresh).await);
    active(&introspect(addr, "rs", "rs-secret", &access).await);
    assert_revoked(&revoke(addr, "app", "app-secret", &refresh_token, "").await);
    secrets.extend([first_access, first_refresh, access, refresh_token]);
    // A replay: the same.
    let (first_access, first_refresh) = tokens_for(addr, "app").await;
    let (access, refresh_token) = pair(&refresh(addr, "app", &first_refresh).await);
    assert_refresh_refused(&refresh(addr, "app", &first_refresh).await, "github");
    assert_inactive(&introspect(addr, "rs", "rs-secret", &access).await);
    secrets.extend([first_access, first_refresh, access, refresh_token]);
    // An access token revoked by its client.
    let (access, refresh_token) = tokens_for(addr, "app").await;
    assert_revoked(&revoke(addr, "app", "app-secret", &access, "").await);
    secrets.extend([access, refresh_token]);
    drop(server);

    let logs = std::fs::read_to_string(&log).unwrap();
    let dropped = logs
        .lines()
        .filter(|line| line.contains("access tokens of a revoked refresh family dropped"))
        .collect::<Vec<_>>();
    assert_eq!(dropped.len(), 2, "{logs}");
    assert!(
        dropped.iter().all(|line| line.contains("dropped=1")),
        "{logs}"
    );
    assert!(logs.contains("access token revoked on request"), "{logs}");
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "{secret} in the logs:\n{logs}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn without_the_gate_the_lifecycle_endpoints_are_not_served() {
    let server = start(&["--no-gate"]);
    for path in [REVOKE, INTROSPECT] {
        let reply = form_post(&server.addr, path, "", "token=gho_x&client_id=demo-client").await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
    }
}

#[test]
fn bad_reuse_windows_and_public_introspectors_exit_2() {
    let dir = std::env::temp_dir().join(format!("tokengate-bad-lifecycle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let public = dir.join("public.json");
    std::fs::write(
        &public,
        r#"{"clients":[{"client_id":"p","public":true,"introspect":true}]}"#,
    )
    .unwrap();
    let not_a_bool = dir.join("string.json");
    std::fs::write(
        &not_a_bool,
        r#"{"clients":[{"client_id":"c","client_secret":"s","introspect":"yes"}]}"#,
    )
    .unwrap();
    for (args, needle) in [
        (vec!["--refresh-reuse", "301"], "--refresh-reuse"),
        (vec!["--refresh-reuse", "-1"], "--refresh-reuse"),
        (vec!["--refresh-reuse", "3s"], "--refresh-reuse"),
        (vec!["--refresh-reuse"], "needs a value"),
        (vec!["--clients", public.to_str().unwrap()], "introspect"),
        (
            vec!["--clients", not_a_bool.to_str().unwrap()],
            "invalid clients file",
        ),
    ] {
        let output = Command::new(binary()).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let help = Command::new(binary()).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    let usage = String::from_utf8_lossy(&help.stdout).into_owned();
    for needle in [
        "--refresh-reuse SECS",
        "\"introspect\":false",
        REVOKE,
        INTROSPECT,
    ] {
        assert!(usage.contains(needle), "{needle}: {usage}");
    }
    // The widest window starts.
    drop(start(&["--refresh-reuse", "300"]));
    std::fs::remove_dir_all(dir).unwrap();
}

// ------------------------------------------------- the registry itself

mod registry {
    use std::time::{Duration, SystemTime};

    use super::tokens::{Issued, Registry};

    const HOUR: Duration = Duration::from_secs(3600);

    fn issued<'a>(client_id: &'a str, family: Option<&'a str>) -> Issued<'a> {
        Issued {
            client_id,
            subject: Some("user"),
            scopes: &[],
            dpop_jkt: None,
            family,
            refresh_token: None,
        }
    }

    fn start() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000)
    }

    #[test]
    fn full_it_forgets_the_oldest_live_token_and_expired_ones_go_first() {
        let registry = Registry::new(4, 8 * HOUR);
        let t0 = start();
        for i in 0..4 {
            registry.insert(&format!("t{i}"), issued("app", None), t0 + HOUR * i);
        }
        assert_eq!(registry.len(), 4);
        // Full of live tokens: the oldest makes room.
        let now = t0 + 4 * HOUR;
        registry.insert("t4", issued("app", None), now);
        assert_eq!(registry.len(), 4);
        assert!(registry.describe("t0", now).is_none());
        for live in ["t1", "t2", "t3", "t4"] {
            assert!(registry.describe(live, now).is_some(), "{live}");
        }
        // Two have expired by then: they go, and nothing live does.
        let later = t0 + 10 * HOUR;
        assert!(registry.describe("t1", later).is_none());
        assert!(registry.describe("t2", later).is_none());
        registry.insert("t5", issued("app", None), later);
        assert_eq!(registry.len(), 3);
        for live in ["t3", "t4", "t5"] {
            assert!(registry.describe(live, later).is_some(), "{live}");
        }
    }

    #[test]
    fn it_never_holds_more_than_its_capacity_however_many_are_minted_or_revoked() {
        let registry = Registry::new(1000, 8 * HOUR);
        let now = start();
        for i in 0..20_000 {
            let family = format!("f{}", i % 7);
            registry.insert(&format!("t{i}"), issued("app", Some(&family)), now);
            // Every other token revoked at once, out of order.
            if i % 2 == 1 {
                assert!(registry.revoke(&format!("t{}", i - 1), "app"));
            }
            assert!(registry.len() <= 1000);
            assert!(
                registry.queued() <= 2 * 1000 + 1024,
                "{}",
                registry.queued()
            );
        }
        assert!(registry.families() <= 7);
        let held = registry.len();
        let dropped: usize = (0..7)
            .map(|f| registry.revoke_family(&format!("f{f}")))
            .sum();
        assert_eq!(dropped, held);
        assert_eq!(registry.len(), 0);
        assert_eq!(registry.families(), 0);
    }

    #[test]
    fn a_family_revoked_takes_only_its_own_tokens() {
        let registry = Registry::new(100, 8 * HOUR);
        let now = start();
        registry.insert("a1", issued("app", Some("fa")), now);
        registry.insert("a2", issued("app", Some("fa")), now);
        registry.insert("b1", issued("app", Some("fb")), now);
        registry.insert("c1", issued("app", None), now);
        assert_eq!(registry.revoke_family("fa"), 2);
        assert_eq!(registry.revoke_family("fa"), 0);
        assert!(registry.describe("a1", now).is_none());
        assert!(registry.describe("a2", now).is_none());
        assert!(registry.describe("b1", now).is_some());
        assert!(registry.describe("c1", now).is_some());
        // A token revoked alone leaves its family's index with it.
        assert!(registry.revoke("b1", "app"));
        assert_eq!(registry.families(), 0);
    }

    #[test]
    fn only_its_client_revokes_a_token() {
        let registry = Registry::new(100, 8 * HOUR);
        let now = start();
        registry.insert("t", issued("app", None), now);
        assert!(!registry.revoke("t", "other"));
        assert!(registry.describe("t", now).is_some());
        assert!(registry.revoke("t", "app"));
        assert!(!registry.revoke("t", "app"));
        assert!(registry.describe("t", now).is_none());
    }

    #[test]
    fn an_introspection_says_what_the_token_was_issued_for() {
        let registry = Registry::new(100, 8 * HOUR);
        let now = start();
        let scopes = ["repo".to_owned(), "user".to_owned()];
        registry.insert(
            "t",
            Issued {
                client_id: "app",
                subject: Some("octocat"),
                scopes: &scopes,
                dpop_jkt: Some("jkt-1"),
                family: Some("f"),
                refresh_token: Some("r"),
            },
            now,
        );
        let described = registry.describe("t", now).unwrap();
        assert!(described.refresh().is_some());
        let json: serde_json::Value =
            serde_json::from_str(&described.introspection("https://as.example").to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"active": true, "client_id": "app", "sub": "octocat",
                "scope": "repo user", "token_type": "DPoP", "cnf": {"jkt": "jkt-1"},
                "iss": "https://as.example", "iat": 2_000_000_000u64,
                "exp": 2_000_000_000u64 + 8 * 3600})
        );
        // Expired at its `exp`.
        assert!(registry.describe("t", now + 8 * HOUR).is_none());
    }
}
