//! The demo server driven from the outside over plain HTTP, as a real
//! client would: its flags, its `listening on` line, the authorize redirect,
//! docs/contract.md's rows, and 100 concurrent redemptions of one code.

mod common;

use std::{process::Command, sync::Arc};

use common::{VERIFIER, demo::*};

fn exchange(code: &str) -> String {
    demo_exchange(code)
}

#[tokio::test]
async fn prints_the_demo_client_and_a_full_exchange_works() {
    let server = start(&[]);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("client_id=demo-client")
                && l.contains("client_secret=demo-secret")
                && l.contains("redirect_uri=http://127.0.0.1/callback"))
    );
    let code = authorize(&server.addr, "demo-client").await;
    // GitHub dialect by default: form answer.
    let reply = token(&server.addr, "", &exchange(&code)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["cache-control"], "no-store");
    let form = reply.form();
    assert!(form["access_token"].starts_with("gho_"));
    assert_eq!(form["token_type"], "bearer");
    assert_eq!(form["scope"], "repo");
    // The same code again: GitHub's bad_verification_code, with status 200.
    let reply = token(&server.addr, "Accept: application/json", &exchange(&code)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired.","error_uri":"/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"}"#
    );
}

#[tokio::test]
async fn answers_each_row_in_both_dialects() {
    // Every row fails for demo-client, more than ten times a minute: the
    // lockout (its own test below) would answer 429 to the later rows.
    let github = start(&["--dialect", "github", "--lockout", "off"]);
    let rfc = start(&["--dialect", "rfc6749", "--lockout", "off"]);
    // (body transform, rfc status, rfc error, github error)
    type Row = (
        &'static str,
        fn(&str) -> String,
        u16,
        &'static str,
        &'static str,
    );
    let rows: &[Row] = &[
        (
            "unknown grant type",
            |c| exchange(c).replace("authorization_code", "password"),
            400,
            "unsupported_grant_type",
            "unsupported_grant_type",
        ),
        (
            "wrong secret",
            |c| exchange(c).replace("demo-secret", "nope"),
            401,
            "invalid_client",
            "incorrect_client_credentials",
        ),
        (
            "unknown client",
            |c| exchange(c).replace("client_id=demo-client", "client_id=ghost"),
            401,
            "invalid_client",
            "incorrect_client_credentials",
        ),
        (
            "repeated parameter",
            |c| format!("{}&code={c}", exchange(c)),
            400,
            "invalid_request",
            "invalid_request",
        ),
        (
            "bad percent-encoding",
            |c| format!("{}&x=%zz", exchange(c)),
            400,
            "invalid_request",
            "invalid_request",
        ),
        (
            "code missing",
            |c| exchange(c).replace(&format!("code={c}&"), ""),
            400,
            "invalid_request",
            "bad_verification_code",
        ),
        (
            "code unknown",
            |c| exchange(c).replace(c, "forged"),
            400,
            "invalid_grant",
            "bad_verification_code",
        ),
        (
            "redirect not registered",
            |c| exchange(c).replace(REDIRECT, "https%3A%2F%2Fevil.example%2F"),
            400,
            "invalid_grant",
            "redirect_uri_mismatch",
        ),
        (
            "redirect differs from the bound one",
            |c| exchange(c).replace("4567", "4568"),
            400,
            "invalid_grant",
            "redirect_uri_mismatch",
        ),
        (
            "verifier wrong",
            |c| exchange(c).replace(VERIFIER, &"x".repeat(43)),
            400,
            "invalid_grant",
            "incorrect_code_verifier",
        ),
        (
            "verifier missing",
            |c| exchange(c).replace(&format!("&code_verifier={VERIFIER}"), ""),
            400,
            "invalid_request",
            "incorrect_code_verifier",
        ),
        (
            "verifier malformed",
            |c| exchange(c).replace(VERIFIER, "short"),
            400,
            "invalid_grant",
            "incorrect_code_verifier",
        ),
    ];
    for (name, body, status, rfc_error, github_error) in rows {
        let code = authorize(&rfc.addr, "demo-client").await;
        let reply = token(&rfc.addr, "", &body(&code)).await;
        assert_eq!(reply.status, *status, "{name}: {}", reply.body);
        assert_eq!(reply.json()["error"], *rfc_error, "{name}");
        assert_eq!(reply.headers["cache-control"], "no-store", "{name}");
        assert_eq!(reply.headers["pragma"], "no-cache", "{name}");
        if *status == 401 {
            assert_eq!(reply.headers["www-authenticate"], "Basic realm=\"token\"");
        }
        let code = authorize(&github.addr, "demo-client").await;
        let reply = token(&github.addr, "", &body(&code)).await;
        assert_eq!(reply.status, 200, "{name}");
        assert_eq!(reply.form()["error"], *github_error, "{name}");
        let reply = token(&github.addr, "Accept: application/xml", &body(&code)).await;
        assert!(
            reply.body.starts_with("<OAuth><error>"),
            "{name}: {}",
            reply.body
        );
    }
    // Framing rows.
    for server in [&rfc, &github] {
        let reply = send(&server.addr, "GET /login/oauth/access_token HTTP/1.1", "").await;
        assert_eq!(reply.status, 405);
        assert_eq!(reply.headers["allow"], "POST");
        let reply = token(&server.addr, "", &"a".repeat(20_000)).await;
        assert_eq!(reply.status, 413);
        let reply = send(
            &server.addr,
            "POST /login/oauth/access_token HTTP/1.1\r\nContent-Type: text/plain",
            "code=x",
        )
        .await;
        assert_eq!(
            reply.status,
            if std::ptr::eq(server, &rfc) { 400 } else { 200 }
        );
    }
    // grant_type missing: RFC 6749 refuses, GitHub reads authorization_code.
    let code_rfc = authorize(&rfc.addr, "demo-client").await;
    let body = exchange(&code_rfc).replace("grant_type=authorization_code&", "");
    assert_eq!(
        token(&rfc.addr, "", &body).await.json()["error"],
        "invalid_request"
    );
    let code_gh = authorize(&github.addr, "demo-client").await;
    let body = exchange(&code_gh).replace("grant_type=authorization_code&", "");
    assert!(
        token(&github.addr, "", &body)
            .await
            .form()
            .contains_key("access_token")
    );
}

#[tokio::test]
async fn one_hundred_concurrent_redemptions_give_one_token() {
    let server = start(&[]);
    let addr = Arc::new(server.addr.clone());
    let code = authorize(&addr, "demo-client").await;
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let addr = Arc::clone(&addr);
            let body = exchange(&code);
            tokio::spawn(async move { token(&addr, "Accept: application/json", &body).await })
        })
        .collect();
    let (mut tokens, mut locked) = (0, 0);
    for task in tasks {
        let reply = task.await.unwrap();
        let json = reply.json();
        if reply.status == 429 {
            // Ten replays lock the client out (the demo runs the defaults).
            assert_eq!(json["error"], "temporarily_unavailable");
            locked += 1;
            continue;
        }
        assert_eq!(reply.status, 200);
        if json.get("access_token").is_some() {
            tokens += 1;
        } else {
            assert_eq!(json["error"], "bad_verification_code");
        }
    }
    assert_eq!(tokens, 1);
    assert!(
        locked <= 89,
        "at least ten replays were counted before the lockout"
    );
}

#[tokio::test]
async fn locks_a_client_out_after_ten_failures_by_default() {
    let server = start(&["--dialect", "rfc6749"]);
    let wrong = |code: &str| exchange(code).replace("demo-secret", "guess");
    for attempt in 1..=10 {
        let code = authorize(&server.addr, "demo-client").await;
        let reply = token(&server.addr, "", &wrong(&code)).await;
        assert_eq!(reply.status, 401, "attempt {attempt}");
    }
    // Now even the right secret is refused until the minute is over.
    let code = authorize(&server.addr, "demo-client").await;
    let reply = token(&server.addr, "", &exchange(&code)).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.json()["error"], "temporarily_unavailable");
    let wait: u64 = reply.headers["retry-after"].parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(reply.headers["cache-control"], "no-store");
    // Another client id is not affected.
    let reply = token(
        &server.addr,
        "",
        &exchange(&code).replace("client_id=demo-client", "client_id=ghost"),
    )
    .await;
    assert_eq!(reply.status, 401);
}

#[tokio::test]
async fn loads_a_clients_file() {
    let dir = std::env::temp_dir().join(format!("tokengate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("clients.json");
    std::fs::write(
        &file,
        r#"{"clients":[
            {"client_id":"cli","public":true,"redirect_uris":["http://127.0.0.1/callback"],"redirect_policy":"loopback"},
            {"client_id":"web","client_secret":"web-secret","redirect_uris":["http://127.0.0.1:4567/callback"],"public":false,"redirect_policy":"exact"}
        ]}"#,
    )
    .unwrap();
    let server = start(&["--clients", file.to_str().unwrap(), "--dialect", "rfc6749"]);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("loaded 2 client(s)"))
    );
    // The public client: no secret, PKCE, any loopback port.
    let code = authorize(&server.addr, "cli").await;
    let body = format!(
        "grant_type=authorization_code&client_id=cli&code={code}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}"
    );
    let reply = token(&server.addr, "", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["token_type"], "bearer");
    // The demo client is not registered when a file is given.
    let reply = token(&server.addr, "", &exchange("x")).await;
    assert_eq!(reply.status, 401);
    // Basic auth for the confidential client.
    let code = authorize(&server.addr, "web").await;
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}"
    );
    let reply = token(
        &server.addr,
        "Authorization: Basic d2ViOndlYi1zZWNyZXQ=",
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn serves_its_metadata() {
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
    assert_eq!(json["issuer"], base);
    assert_eq!(
        json["token_endpoint"],
        format!("{base}/login/oauth/access_token")
    );
    assert_eq!(
        json["authorization_endpoint"],
        format!("{base}/login/oauth/authorize")
    );
    assert_eq!(
        json["device_authorization_endpoint"],
        format!("{base}/login/device/code")
    );
    assert_eq!(
        json["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "client_credentials"
        ])
    );
}

#[tokio::test]
async fn serves_prometheus_metrics() {
    let server = start(&["--dialect", "rfc6749"]);
    let code = authorize(&server.addr, "demo-client").await;
    token(&server.addr, "", &exchange(&code)).await;
    token(&server.addr, "", &exchange(&code)).await;
    let reply = send(&server.addr, "GET /metrics HTTP/1.1", "").await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers["content-type"].starts_with("text/plain"));
    let counts = |needle: &str| {
        reply.body.lines().any(|l| {
            l.starts_with("tokengate_requests_total{") && l.contains(needle) && l.ends_with(" 1")
        })
    };
    assert!(counts(r#"outcome="forwarded""#), "{}", reply.body);
    assert!(counts(r#"error="invalid_grant""#), "{}", reply.body);
    assert!(
        reply.body.contains("tokengate_check_duration_seconds"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn no_gate_is_an_unchecked_baseline() {
    let server = start(&["--no-gate"]);
    let reply = token(&server.addr, "", "code=anything").await;
    assert_eq!(reply.status, 200);
    assert!(reply.form()["access_token"].starts_with("gho_"));
}

#[test]
fn bad_flags_and_bad_files_exit_2_with_a_message() {
    let dir = std::env::temp_dir().join(format!("tokengate-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"clients":[{"client_id":"a","public":false}]}"#).unwrap();
    for (args, needle) in [
        (vec!["--dialect", "oauth3"], "--dialect"),
        (vec!["--addr", "nowhere"], "--addr"),
        (vec!["--addr"], "needs a value"),
        (vec!["--frobnicate"], "unknown argument"),
        (vec!["--lockout", "ten"], "--lockout"),
        (vec!["--lockout", "0/60"], "--lockout"),
        (vec!["--code-lifetime", "0"], "--code-lifetime"),
        (
            vec!["--clients", "/nonexistent/clients.json"],
            "cannot read clients file",
        ),
        (
            vec!["--clients", bad.to_str().unwrap()],
            "needs client_secret",
        ),
    ] {
        let output = Command::new(binary()).args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let help = Command::new(binary()).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--no-gate"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replay_revokes_the_family() {
    for (dialect, error) in [
        ("github", "bad_refresh_token"),
        ("rfc6749", "invalid_grant"),
    ] {
        let server = start(&["--dialect", dialect]);
        let accept = "Accept: application/json";
        let code = authorize(&server.addr, "demo-client").await;
        let first = token(&server.addr, accept, &exchange(&code)).await.json();
        let refresh = first["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .to_owned();
        assert!(first["expires_in"].as_u64().is_some());
        assert!(first["refresh_token_expires_in"].as_u64().is_some());
        let body = |t: &str| {
            format!(
                "grant_type=refresh_token&refresh_token={t}&client_id=demo-client&client_secret=demo-secret"
            )
        };
        let second = token(&server.addr, accept, &body(&refresh)).await.json();
        let successor = second["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(successor, refresh);
        assert_eq!(second["scope"], "repo");
        // Wider scope is refused.
        let wider = token(
            &server.addr,
            accept,
            &format!("{}&scope=repo+admin", body(&successor)),
        )
        .await;
        assert!(
            wider.json()["error"] == "invalid_scope"
                || wider.json()["error"] == "bad_refresh_token"
        );
        // The rotated-away token again: refused, and the family with it.
        let code = authorize(&server.addr, "demo-client").await;
        let fresh = token(&server.addr, accept, &exchange(&code)).await.json();
        let fresh_refresh = fresh["refresh_token"].as_str().unwrap().to_owned();
        let next = token(&server.addr, accept, &body(&fresh_refresh))
            .await
            .json();
        let next_refresh = next["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(
            token(&server.addr, accept, &body(&fresh_refresh))
                .await
                .json()["error"],
            error
        );
        assert_eq!(
            token(&server.addr, accept, &body(&next_refresh))
                .await
                .json()["error"],
            error
        );
    }
}

#[tokio::test]
async fn the_device_flow_end_to_end() {
    for (dialect, accept) in [("github", "Accept: application/json"), ("rfc6749", "")] {
        let server = start(&["--dialect", dialect]);
        let start_device = || async {
            let reply = form_post(
                &server.addr,
                "/login/device/code",
                "Accept: application/json",
                "client_id=demo-client&client_secret=demo-secret&scope=repo",
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            let json = reply.json();
            assert_eq!(json["expires_in"], 900);
            assert_eq!(json["interval"], 5);
            assert_eq!(
                json["verification_uri"],
                format!("http://{}/login/device", server.addr)
            );
            (
                json["device_code"].as_str().unwrap().to_owned(),
                json["user_code"].as_str().unwrap().to_owned(),
            )
        };
        let poll = |device_code: &str| {
            format!(
                "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=demo-client&client_secret=demo-secret&device_code={device_code}"
            )
        };
        // Pending, then polled too fast.
        let (device_code, _) = start_device().await;
        let reply = token(&server.addr, accept, &poll(&device_code)).await;
        assert_eq!(reply.json()["error"], "authorization_pending");
        let reply = token(&server.addr, accept, &poll(&device_code)).await;
        let json = reply.json();
        assert_eq!(json["error"], "slow_down");
        if dialect == "github" {
            assert_eq!(json["interval"], 10);
            assert_eq!(reply.status, 200);
        } else {
            assert_eq!(reply.status, 400);
        }
        // A person opens the page and approves.
        let page = send(&server.addr, "GET /login/device HTTP/1.1", "").await;
        assert_eq!(page.status, 200);
        assert!(
            page.body
                .contains("<form method=\"post\" action=\"/login/device\">")
        );
        assert_eq!(page.headers["x-frame-options"], "DENY");
        let (device_code, user_code) = start_device().await;
        let typed: String =
            form_urlencoded::byte_serialize(user_code.to_lowercase().as_bytes()).collect();
        // A decision without the confirmation page (CSRF, or a person who
        // never saw who asks) is refused.
        let forged = form_post(
            &server.addr,
            "/login/device",
            "",
            &format!("user_code={typed}&decision=approve"),
        )
        .await;
        assert_eq!(forged.status, 403, "{}", forged.body);
        let decided = decide(&server.addr, &typed, "approve").await;
        assert_eq!(decided.status, 200, "{}", decided.body);
        assert!(decided.body.contains("You approved <b>demo-client</b>"));
        let reply = token(&server.addr, accept, &poll(&device_code)).await;
        let json = reply.json();
        assert!(
            json["access_token"].as_str().unwrap().starts_with("gho_"),
            "{json}"
        );
        assert!(json["refresh_token"].is_string());
        // Redeemed once.
        let reply = token(&server.addr, accept, &poll(&device_code)).await;
        let expected = if dialect == "github" {
            "incorrect_device_code"
        } else {
            "invalid_grant"
        };
        assert_eq!(reply.json()["error"], expected);
        // Denied.
        let (device_code, user_code) = start_device().await;
        decide(&server.addr, &user_code, "deny").await;
        assert_eq!(
            token(&server.addr, accept, &poll(&device_code))
                .await
                .json()["error"],
            "access_denied"
        );
        // Unknown code on the page: no HTML injection.
        let reply = form_post(
            &server.addr,
            "/login/device",
            "",
            "user_code=%3Cscript%3E&decision=approve",
        )
        .await;
        assert_eq!(reply.status, 404);
        assert!(reply.body.contains("&lt;script&gt;") && !reply.body.contains("<script>"));
    }
}

/// Looks the code up, reads the confirmation page, and decides on it.
async fn decide(addr: &str, typed: &str, decision: &str) -> Reply {
    let confirm_page = form_post(addr, "/login/device", "", &format!("user_code={typed}")).await;
    assert_eq!(confirm_page.status, 200, "{}", confirm_page.body);
    assert!(
        confirm_page
            .body
            .contains("<b>demo-client</b> asks to act as <b>demo-user</b> with repo.")
    );
    let confirm = confirm_page
        .body
        .split("name=\"confirm\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a confirmation token")
        .to_owned();
    form_post(
        addr,
        "/login/device",
        "",
        &format!("user_code={typed}&confirm={confirm}&decision={decision}"),
    )
    .await
}

#[tokio::test]
async fn client_credentials_and_a_disabled_device_flow() {
    let dir = std::env::temp_dir().join(format!("tokengate-cc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("clients.json");
    std::fs::write(
        &file,
        r#"{"clients":[
            {"client_id":"svc","client_secret":"svc-secret","grant_types":["client_credentials"],"scopes":["read","write"]},
            {"client_id":"web","client_secret":"web-secret","redirect_uris":["http://127.0.0.1:4567/callback"]}
        ]}"#,
    )
    .unwrap();
    for dialect in ["github", "rfc6749"] {
        let server = start(&["--clients", file.to_str().unwrap(), "--dialect", dialect]);
        let accept = "Accept: application/json";
        let reply = token(
            &server.addr,
            accept,
            "grant_type=client_credentials&client_id=svc&client_secret=svc-secret&scope=read",
        )
        .await;
        let json = reply.json();
        assert_eq!(json["scope"], "read");
        assert!(json.get("refresh_token").is_none(), "{json}");
        let reply = token(
            &server.addr,
            accept,
            "grant_type=client_credentials&client_id=svc&client_secret=svc-secret&scope=admin",
        )
        .await;
        assert_eq!(reply.json()["error"], "invalid_scope");
        let reply = token(
            &server.addr,
            accept,
            "grant_type=client_credentials&client_id=web&client_secret=web-secret",
        )
        .await;
        let expected = if dialect == "github" {
            "unsupported_grant_type"
        } else {
            "unauthorized_client"
        };
        assert_eq!(reply.json()["error"], expected);
        let reply = form_post(
            &server.addr,
            "/login/device/code",
            accept,
            "client_id=web&client_secret=web-secret",
        )
        .await;
        let expected = if dialect == "github" {
            "device_flow_disabled"
        } else {
            "unauthorized_client"
        };
        assert_eq!(reply.json()["error"], expected);
        let poll = "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=web&client_secret=web-secret&device_code=x";
        assert_eq!(
            token(&server.addr, accept, poll).await.json()["error"],
            expected
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
