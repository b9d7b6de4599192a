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

/// A sign-in of the demo user through the web flow: the token answer.
async fn sign_in(addr: &str) -> serde_json::Value {
    let code = authorize(addr, "demo-client").await;
    let reply = token(addr, "Accept: application/json", &demo_exchange(&code)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// An access token for the demo client, through the web flow.
async fn access_token(addr: &str) -> String {
    sign_in(addr).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
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
    let first = sign_in(&demo.addr).await;
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

/// `METHOD /api/v3/applications/{path_client}/RESOURCE` with Basic
/// credentials `id:secret` and `{"access_token": token}`.
async fn app_api(
    addr: &str,
    method: &str,
    path_client: &str,
    resource: &str,
    (id, secret): (&str, &str),
    token: &str,
) -> Reply {
    let head = format!(
        "{method} /api/v3/applications/{path_client}/{resource} HTTP/1.1\r\nAuthorization: {}\r\nContent-Type: application/json",
        common::basic(id, secret)
    );
    send(
        addr,
        &head,
        &serde_json::json!({ "access_token": token }).to_string(),
    )
    .await
}

const DEMO_CLIENT: (&str, &str) = ("demo-client", "demo-secret");

fn assert_not_found(reply: &Reply) {
    assert_eq!(reply.status, 404, "{}", reply.body);
    let json = reply.json();
    assert_eq!(json["message"], "Not Found", "{json}");
    assert_eq!(json["status"], "404", "{json}");
}

#[tokio::test]
async fn check_reset_and_delete_a_token_as_githubs_oauth_app_api() {
    let demo = start(&["--user", "octocat"]);
    let token = access_token(&demo.addr).await;

    let checked = app_api(
        &demo.addr,
        "POST",
        "demo-client",
        "token",
        DEMO_CLIENT,
        &token,
    )
    .await;
    assert_eq!(checked.status, 200, "{}", checked.body);
    let json = checked.json();
    assert_eq!(json["token"], token.as_str(), "{json}");
    assert_eq!(json["scopes"], serde_json::json!(["repo"]), "{json}");
    assert_eq!(json["app"]["client_id"], "demo-client", "{json}");
    assert_eq!(json["user"]["login"], "octocat", "{json}");
    assert_eq!(
        json["token_last_eight"],
        &token[token.len() - 8..],
        "{json}"
    );
    assert!(
        json["expires_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z')),
        "{json}"
    );

    // The gate refuses what does not authenticate the named client, as
    // GitHub does: 404, whatever was wrong.
    for (client, credentials) in [
        ("demo-client", ("demo-client", "wrong")),
        ("demo-client", ("nobody", "demo-secret")),
        ("someone-else", DEMO_CLIENT),
    ] {
        assert_not_found(&app_api(&demo.addr, "POST", client, "token", credentials, &token).await);
    }
    assert_not_found(
        &app_api(
            &demo.addr,
            "POST",
            "demo-client",
            "token",
            DEMO_CLIENT,
            "gho_unknown",
        )
        .await,
    );

    // Reset: a new token, the old one dead.
    let reset = app_api(
        &demo.addr,
        "PATCH",
        "demo-client",
        "token",
        DEMO_CLIENT,
        &token,
    )
    .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    let fresh = reset.json()["token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, token);
    assert!(fresh.starts_with("gho_"));
    assert_bad_credentials(&user(&demo.addr, &format!("token {token}")).await);
    assert_eq!(
        user(&demo.addr, &format!("token {fresh}")).await.status,
        200
    );

    // Delete: 204, then gone everywhere.
    let deleted = app_api(
        &demo.addr,
        "DELETE",
        "demo-client",
        "token",
        DEMO_CLIENT,
        &fresh,
    )
    .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_bad_credentials(&user(&demo.addr, &format!("token {fresh}")).await);
    assert_not_found(
        &app_api(
            &demo.addr,
            "POST",
            "demo-client",
            "token",
            DEMO_CLIENT,
            &fresh,
        )
        .await,
    );
    assert_not_found(
        &app_api(
            &demo.addr,
            "DELETE",
            "demo-client",
            "token",
            DEMO_CLIENT,
            &fresh,
        )
        .await,
    );
}

#[tokio::test]
async fn deleting_the_grant_ends_every_token_of_the_authorization() {
    let demo = start(&[]);
    // Two sign-ins of the same user: two refresh families. The first one's
    // access token is deleted before the grant goes, so only the grant's
    // own record can end its refresh token.
    let mut signed_in = Vec::new();
    for _ in 0..2 {
        let json = sign_in(&demo.addr).await;
        signed_in.push((
            json["access_token"].as_str().unwrap().to_owned(),
            json["refresh_token"].as_str().unwrap().to_owned(),
        ));
    }
    let (first_access, first_refresh) = &signed_in[0];
    let (second_access, second_refresh) = &signed_in[1];
    let deleted = app_api(
        &demo.addr,
        "DELETE",
        "demo-client",
        "token",
        DEMO_CLIENT,
        first_access,
    )
    .await;
    assert_eq!(deleted.status, 204);

    let revoked = app_api(
        &demo.addr,
        "DELETE",
        "demo-client",
        "grant",
        DEMO_CLIENT,
        second_access,
    )
    .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    assert_bad_credentials(&user(&demo.addr, &format!("token {second_access}")).await);
    for refresh in [first_refresh, second_refresh] {
        let body = refresh_body("demo-client", "demo-secret", refresh);
        let json = token(&demo.addr, "Accept: application/json", &body)
            .await
            .json();
        assert_eq!(json["error"], "bad_refresh_token", "{json}");
    }
    // A new sign-in after the revocation works.
    let fresh = access_token(&demo.addr).await;
    assert_eq!(
        user(&demo.addr, &format!("token {fresh}")).await.status,
        200
    );
}
