//! The demo's GitHub REST side, from the outside: `GET /api/v3/user` (what
//! an application calls first with the token it got), `--user` and
//! `--unverified-email`.

mod common;

use std::process::Command;

use common::demo::*;

/// `GET /api/v3/user` with `authorization` (a whole header line, or none).
async fn user(addr: &str, authorization: &str) -> Reply {
    let head = if authorization.is_empty() {
        "GET /api/v3/user HTTP/1.1".to_owned()
    } else {
        format!("GET /api/v3/user HTTP/1.1\r\nAuthorization: {authorization}")
    };
    send(addr, &head, "").await
}

/// An access token for the demo client, through the web flow.
async fn access_token(addr: &str) -> String {
    let code = authorize(addr, "demo-client").await;
    let reply = token(addr, "Accept: application/json", &demo_exchange(&code)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["access_token"].as_str().unwrap().to_owned()
}

fn assert_bad_credentials(reply: &Reply) {
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        reply.headers["content-type"].starts_with("application/json"),
        "{:?}",
        reply.headers
    );
    let json = reply.json();
    assert_eq!(json["message"], "Bad credentials", "{json}");
    assert!(
        json["documentation_url"]
            .as_str()
            .is_some_and(|url| url.starts_with("https://docs.github.com/")),
        "{json}"
    );
    assert_eq!(json["status"], "401", "{json}");
}

#[tokio::test]
async fn the_user_of_a_live_token_in_githubs_shape() {
    let demo = start(&[]);
    let token = access_token(&demo.addr).await;
    for scheme in ["token", "Bearer", "bearer", "TOKEN"] {
        let reply = user(&demo.addr, &format!("{scheme} {token}")).await;
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.body);
        assert_eq!(reply.headers["x-oauth-scopes"], "repo");
        assert!(reply.headers["content-type"].starts_with("application/json"));
        assert_eq!(reply.headers["cache-control"], "private, no-store");
        let json = reply.json();
        assert_eq!(json["login"], "demo-user");
        assert_eq!(json["type"], "User");
        assert!(json["id"].as_u64().is_some_and(|id| id > 0), "{json}");
        for field in ["name", "email", "avatar_url", "html_url", "url", "node_id"] {
            assert!(json[field].is_string(), "{field}: {json}");
        }
        assert!(
            json["url"]
                .as_str()
                .unwrap()
                .ends_with("/api/v3/users/demo-user"),
            "{json}"
        );
    }
}

#[tokio::test]
async fn unknown_revoked_and_missing_tokens_are_refused() {
    let demo = start(&[]);
    assert_bad_credentials(
        &user(
            &demo.addr,
            "token gho_0000000000000000000000000000000000000000",
        )
        .await,
    );
    assert_bad_credentials(&user(&demo.addr, "Bearer not-a-token").await);
    // Another scheme, or none: no token was presented.
    for authorization in [
        "",
        "Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=",
        "token",
        "token a b",
    ] {
        let reply = user(&demo.addr, authorization).await;
        assert_eq!(reply.status, 401, "{authorization:?}: {}", reply.body);
        assert_eq!(reply.json()["message"], "Requires authentication");
    }
    // Revoked by its client (RFC 7009): dead at once.
    let token = access_token(&demo.addr).await;
    assert_eq!(
        user(&demo.addr, &format!("token {token}")).await.status,
        200
    );
    let revoked = revoke(&demo.addr, "demo-client", "demo-secret", &token, "").await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_bad_credentials(&user(&demo.addr, &format!("token {token}")).await);
}

#[tokio::test]
async fn a_replayed_refresh_token_kills_the_access_tokens_of_its_family() {
    let demo = start(&[]);
    let code = authorize(&demo.addr, "demo-client").await;
    let first = token(
        &demo.addr,
        "Accept: application/json",
        &demo_exchange(&code),
    )
    .await
    .json();
    let access = first["access_token"].as_str().unwrap();
    let refresh = first["refresh_token"].as_str().unwrap();
    let body = refresh_body("demo-client", "demo-secret", refresh);
    let second = token(&demo.addr, "Accept: application/json", &body)
        .await
        .json();
    let renewed = second["access_token"].as_str().unwrap();
    assert_eq!(
        user(&demo.addr, &format!("token {renewed}")).await.status,
        200
    );
    // The rotated token comes back: its family is revoked, and with it
    // every access token issued in it.
    let replay = token(&demo.addr, "Accept: application/json", &body)
        .await
        .json();
    assert_eq!(replay["error"], "bad_refresh_token", "{replay}");
    assert_bad_credentials(&user(&demo.addr, &format!("token {access}")).await);
    assert_bad_credentials(&user(&demo.addr, &format!("token {renewed}")).await);
}

#[tokio::test]
async fn the_user_is_configurable_and_the_same_in_every_process() {
    let a = start(&["--user", "octo-cat"]);
    let b = start(&["--user", "octo-cat"]);
    let mut ids = Vec::new();
    for demo in [&a, &b] {
        let token = access_token(&demo.addr).await;
        let json = user(&demo.addr, &format!("token {token}")).await.json();
        assert_eq!(json["login"], "octo-cat", "{json}");
        ids.push(json["id"].clone());
    }
    assert_eq!(ids[0], ids[1], "one login, one id");
    let c = start(&[]);
    let token = access_token(&c.addr).await;
    let other = user(&c.addr, &format!("token {token}")).await.json();
    assert_ne!(other["id"], ids[0], "another login, another id");
}

#[tokio::test]
async fn an_unverified_email_refuses_the_token_as_github_does() {
    let demo = start(&["--unverified-email"]);
    let code = authorize(&demo.addr, "demo-client").await;
    let reply = token(
        &demo.addr,
        "Accept: application/json",
        &demo_exchange(&code),
    )
    .await;
    assert_eq!(reply.status, 200, "GitHub answers its errors with 200");
    let json = reply.json();
    assert_eq!(json["error"], "unverified_user_email", "{json}");
    assert!(json["access_token"].is_null(), "{json}");
    assert!(
        json["error_uri"]
            .as_str()
            .is_some_and(|uri| uri.ends_with("#unverified_user_email")),
        "{json}"
    );
}

#[test]
fn a_login_github_would_refuse_is_refused() {
    for login in [
        "",
        "-lead",
        "trail-",
        "two--hyphens",
        "under_score",
        "a b",
        &"x".repeat(40),
    ] {
        let output = Command::new(binary())
            .args(["--user", login])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{login:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--user"), "{login:?}: {stderr}");
    }
    let help = Command::new(binary()).arg("--help").output().unwrap();
    let usage = String::from_utf8_lossy(&help.stdout);
    assert!(usage.contains("--user LOGIN"), "{usage}");
    assert!(usage.contains("--unverified-email"), "{usage}");
}
