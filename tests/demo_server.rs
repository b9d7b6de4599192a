//! The demo server driven from the outside over plain HTTP, as a real
//! client would: its flags, its `listening on` line, the authorize redirect,
//! docs/contract.md's rows, and 100 concurrent redemptions of one code; its
//! device page attacked as a browser would be (cross-site forms, another
//! session's token), its metadata asked with a forged `Host`, and its
//! metrics looked for on the public listener. Signed clients and DPoP: the
//! metadata's methods and algorithms, `private_key_jwt` and
//! `client_secret_jwt` clients from a clients file, `token_type` `DPoP` for
//! a request with a proof, and `--dpop-nonce`'s `use_dpop_nonce` round trip.

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
    // Nor is the same client from another address: failures from one peer
    // never refuse another's valid credentials.
    let head = "POST /login/oauth/access_token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json";
    let reply = send_from("127.0.0.2", &server.addr, head, &exchange(&code)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.json()["access_token"].is_string());
}

/// The issue's attack, from outside: a stranger sends wrong secrets for a
/// known client id, and ten bogus refresh tokens, as fast as it likes; the
/// app's users, from other addresses, keep redeeming.
#[tokio::test]
async fn a_stranger_cannot_lock_the_demo_client_out() {
    let server = start(&["--dialect", "rfc6749"]);
    let head = "POST /login/oauth/access_token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json";
    let stranger = "127.0.0.66";
    for i in 0..40 {
        let wrong = exchange(&format!("x{i}")).replace("demo-secret", "guess");
        let reply = send_from(stranger, &server.addr, head, &wrong).await;
        assert!([401, 429].contains(&reply.status), "{}", reply.status);
        let bogus = format!(
            "grant_type=refresh_token&refresh_token=bogus{i}&client_id=demo-client&client_secret=demo-secret"
        );
        let reply = send_from(stranger, &server.addr, head, &bogus).await;
        assert!([400, 429].contains(&reply.status), "{}", reply.status);
    }
    let reply = send_from(stranger, &server.addr, head, &exchange("y")).await;
    assert_eq!(reply.status, 429, "the stranger locked itself out");
    for user in ["127.0.0.1", "127.0.0.3", "127.0.0.4"] {
        let code = authorize(&server.addr, "demo-client").await;
        let reply = send_from(user, &server.addr, head, &exchange(&code)).await;
        assert_eq!(reply.status, 200, "{user}: {}", reply.body);
    }
}

/// RFC 8628 §5.1: the device page refuses an address that typed 50 codes
/// matching nothing within the hour (429 with `Retry-After`), and only
/// that address.
#[tokio::test]
async fn the_device_page_limits_wrong_user_codes_per_address() {
    let server = start(&[]);
    let addr = &server.addr;
    let (_, user_code) = start_device_flow(addr).await;
    let browser = same_origin(addr, &open_device_page(addr).await);
    let head = format!(
        "POST /login/device HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n{browser}"
    );
    for i in 0..50 {
        let guess = format!("BCDF-{:04}", i);
        let reply = send_from("127.0.0.9", addr, &head, &format!("user_code={guess}")).await;
        assert_eq!(reply.status, 404, "guess {i}: {}", reply.body);
    }
    let reply = send_from("127.0.0.9", addr, &head, &format!("user_code={user_code}")).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    let wait: u64 = reply.headers["retry-after"].parse().unwrap();
    assert!((3500..=3600).contains(&wait), "{wait}");
    assert_page_headers(&reply, "the 429 page");
    // Another address finds the code, and approves it.
    let reply = decide(addr, &user_code, "approve").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
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
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.headers["cache-control"], "public, max-age=3600");
    let json = reply.json();
    // The default issuer: `http://` and the address it listens on.
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
    // Signed client authentication and DPoP: the issuer (here the default
    // one) is their audience and `htu`, so the gate serves them and says so.
    assert_eq!(
        json["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "none",
            "private_key_jwt",
            "client_secret_jwt"
        ])
    );
    let algs = |name: &str| -> Vec<String> {
        serde_json::from_value(json[name].clone()).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let assertion_algs = algs("token_endpoint_auth_signing_alg_values_supported");
    for alg in ["ES256", "EdDSA", "Ed25519", "RS256", "PS256", "HS256"] {
        assert!(assertion_algs.iter().any(|a| a == alg), "{alg}: {json}");
    }
    let dpop_algs = algs("dpop_signing_alg_values_supported");
    for alg in ["ES256", "EdDSA", "Ed25519", "RS256", "PS256"] {
        assert!(dpop_algs.iter().any(|a| a == alg), "{alg}: {json}");
    }
    // A proof must be signed by the key it carries: never a shared secret.
    assert!(!dpop_algs.iter().any(|a| a.starts_with("HS")), "{json}");
    // A forged `Host` steers nothing: a shared cache keeps this answer
    // for an hour, so one request must not poison it for everyone.
    let forged = send(
        &server.addr,
        "GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: evil.example",
        "",
    )
    .await;
    assert_eq!(forged.status, 200);
    assert_eq!(forged.headers["cache-control"], "public, max-age=3600");
    assert_eq!(forged.body, reply.body);
    assert!(!forged.body.contains("evil.example"), "{}", forged.body);
}

/// The address of the metrics listener, from the `metrics on` line.
fn metrics_addr(server: &Server) -> Option<String> {
    server.banner.iter().find_map(|line| {
        line.strip_prefix("metrics on http://")
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .map(str::to_owned)
    })
}

#[tokio::test]
async fn serves_prometheus_metrics_on_their_own_listener_only() {
    let server = start(&["--dialect", "rfc6749", "--metrics-addr", "127.0.0.1:0"]);
    let metrics = metrics_addr(&server).expect("a `metrics on` line before `listening on`");
    assert_ne!(metrics, server.addr);
    let code = authorize(&server.addr, "demo-client").await;
    token(&server.addr, "", &exchange(&code)).await;
    token(&server.addr, "", &exchange(&code)).await;
    // The public listener knows no /metrics.
    let public = send(&server.addr, "GET /metrics HTTP/1.1", "").await;
    assert_eq!(public.status, 404, "{}", public.body);
    assert!(!public.body.contains("tokengate_"), "{}", public.body);
    // And the metrics listener serves nothing else.
    let other = send(
        &metrics,
        "GET /.well-known/oauth-authorization-server HTTP/1.1",
        "",
    )
    .await;
    assert_eq!(other.status, 404, "{}", other.body);
    let reply = send(&metrics, "GET /metrics HTTP/1.1", "").await;
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
async fn serves_no_metrics_without_a_metrics_address() {
    let server = start(&[]);
    assert_eq!(metrics_addr(&server), None, "{:?}", server.banner);
    let code = authorize(&server.addr, "demo-client").await;
    token(&server.addr, "", &exchange(&code)).await;
    let reply = send(&server.addr, "GET /metrics HTTP/1.1", "").await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert!(!reply.body.contains("tokengate_"), "{}", reply.body);
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
        (vec!["--issuer"], "needs a value"),
        (vec!["--issuer", ""], "--issuer"),
        (vec!["--issuer", "auth.example.com"], "--issuer"),
        (vec!["--issuer", "/login"], "--issuer"),
        (vec!["--issuer", "ftp://auth.example.com"], "--issuer"),
        (
            vec!["--issuer", "https://auth.example.com/?a=b"],
            "--issuer",
        ),
        (
            vec!["--issuer", "https://auth.example.com/#top"],
            "--issuer",
        ),
        (
            vec!["--issuer", "https://user@auth.example.com"],
            "--issuer",
        ),
        (vec!["--issuer", "https://:443"], "--issuer"),
        (vec!["--issuer", "https://auth.example.com/a;b"], "--issuer"),
        (vec!["--metrics-addr", "nowhere"], "--metrics-addr"),
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
    let usage = String::from_utf8_lossy(&help.stdout).into_owned();
    for flag in [
        "--no-gate",
        "--issuer",
        "--metrics-addr",
        "--dpop-nonce",
        // The clients file's fields for signed clients and DPoP.
        "token_endpoint_auth_method",
        "private_key_jwt",
        "client_secret_jwt",
        "jwks",
        "dpop_bound_access_tokens",
    ] {
        assert!(usage.contains(flag), "{flag}: {usage}");
    }
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
        assert_page_headers(&page, "the device page");
        let (device_code, user_code) = start_device().await;
        let typed: String =
            form_urlencoded::byte_serialize(user_code.to_lowercase().as_bytes()).collect();
        // A decision without the confirmation page (CSRF, or a person who
        // never saw who asks) is refused, in a session and from the page's
        // own origin too.
        let browser = same_origin(&server.addr, &open_device_page(&server.addr).await);
        let forged = form_post(
            &server.addr,
            "/login/device",
            &browser,
            &format!("user_code={typed}&decision=approve"),
        )
        .await;
        assert_eq!(forged.status, 403, "{}", forged.body);
        assert_page_headers(&forged, "a decision without a token");
        let forged = form_post(
            &server.addr,
            "/login/device",
            &browser,
            &format!(
                "user_code={typed}&confirm={}&decision=approve",
                "0".repeat(64)
            ),
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
            &browser,
            "user_code=%3Cscript%3E&decision=approve",
        )
        .await;
        assert_eq!(reply.status, 404);
        assert_page_headers(&reply, "an unknown code");
        assert!(reply.body.contains("&lt;script&gt;") && !reply.body.contains("<script>"));
    }
}

/// As a browser: opens the device page, looks the code up from it, reads
/// the confirmation page, and decides on it.
async fn decide(addr: &str, typed: &str, decision: &str) -> Reply {
    let browser = same_origin(addr, &open_device_page(addr).await);
    let confirm = confirmation(addr, &browser, typed).await;
    form_post(
        addr,
        "/login/device",
        &browser,
        &format!("user_code={typed}&confirm={confirm}&decision={decision}"),
    )
    .await
}

/// A browser opening the device page: the `Cookie` header it sends back
/// afterwards, holding the session cookie the page set.
async fn open_device_page(addr: &str) -> String {
    let page = send(addr, "GET /login/device HTTP/1.1", "").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let set_cookie = page
        .headers
        .get("set-cookie")
        .unwrap_or_else(|| panic!("the device page sets no cookie: {:?}", page.headers));
    let pair = set_cookie.split(';').next().unwrap();
    assert!(pair.starts_with("tokengate_device="), "{set_cookie}");
    format!("Cookie: {pair}")
}

/// What a browser adds to a form posted from the device page itself.
fn same_origin(addr: &str, cookie: &str) -> String {
    format!("Origin: http://{addr}\r\n{cookie}")
}

/// Looks `typed` up on the device page with `headers`, and returns the
/// confirmation page's token.
async fn confirmation(addr: &str, headers: &str, typed: &str) -> String {
    let page = form_post(
        addr,
        "/login/device",
        headers,
        &format!("user_code={typed}"),
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_page_headers(&page, "the confirmation page");
    assert!(
        page.body
            .contains("<b>demo-client</b> asks to act as <b>demo-user</b> with repo."),
        "{}",
        page.body
    );
    page.body
        .split("name=\"confirm\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a confirmation token")
        .to_owned()
}

/// The headers every answer of the device page carries: no framing
/// (clickjacking), no caching.
#[track_caller]
fn assert_page_headers(reply: &Reply, what: &str) {
    assert_eq!(
        reply.headers.get("x-frame-options").map(String::as_str),
        Some("DENY"),
        "{what}: {:?}",
        reply.headers
    );
    let csp = reply
        .headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP: {:?}", reply.headers));
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(
        reply.headers.get("cache-control").map(String::as_str),
        Some("no-store"),
        "{what}"
    );
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

/// Starts a device authorization for the demo client; its JSON answer.
async fn device_authorization(addr: &str, headers: &str) -> serde_json::Value {
    let mut all = "Accept: application/json".to_owned();
    if !headers.is_empty() {
        all = format!("{all}\r\n{headers}");
    }
    let reply = form_post(
        addr,
        "/login/device/code",
        &all,
        "client_id=demo-client&client_secret=demo-secret&scope=repo",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// A device authorization: its device code and user code.
async fn start_device_flow(addr: &str) -> (String, String) {
    let json = device_authorization(addr, "").await;
    (
        json["device_code"].as_str().unwrap().to_owned(),
        json["user_code"].as_str().unwrap().to_owned(),
    )
}

/// The device's one poll for `device_code` (JSON, both dialects).
async fn poll_device(addr: &str, device_code: &str) -> serde_json::Value {
    token(
        addr,
        "Accept: application/json",
        &format!(
            "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=demo-client&client_secret=demo-secret&device_code={device_code}"
        ),
    )
    .await
    .json()
}

#[tokio::test]
async fn device_decisions_need_the_issuers_origin_and_the_sessions_token() {
    let server = start(&[]);
    let addr = server.addr.as_str();
    // Two browsers: the victim's (`mine`) and the attacker's (`theirs`).
    let mine = open_device_page(addr).await;
    let theirs = open_device_page(addr).await;
    assert_ne!(mine, theirs);
    let evil = "Origin: https://evil.example";
    let mine_value = mine.strip_prefix("Cookie: ").unwrap();
    let theirs_value = theirs.strip_prefix("Cookie: ").unwrap();
    // Each carries a token the victim's own confirmation page holds (or,
    // for the attacker's cookie, one fetched in the victim's session), and
    // would approve were it not for what the case changes.
    let refused: Vec<(&str, String)> = vec![
        (
            "a cross-site form (Origin: https://evil.example)",
            format!("{evil}\r\n{mine}"),
        ),
        (
            "Origin: null (a sandboxed frame)",
            format!("Origin: null\r\n{mine}"),
        ),
        (
            "the listener's host on another scheme",
            format!("Origin: https://{addr}\r\n{mine}"),
        ),
        (
            "two Origin headers, one of them the issuer's",
            format!("Origin: http://{addr}\r\n{evil}\r\n{mine}"),
        ),
        (
            "Sec-Fetch-Site: cross-site, no Origin",
            format!("Sec-Fetch-Site: cross-site\r\n{mine}"),
        ),
        (
            "Sec-Fetch-Site: same-site, no Origin",
            format!("Sec-Fetch-Site: same-site\r\n{mine}"),
        ),
        ("no session cookie", format!("Origin: http://{addr}")),
        (
            "no session cookie, not a browser (no Origin, no Sec-Fetch-Site)",
            String::new(),
        ),
        (
            "another session's cookie with this session's token",
            same_origin(addr, &theirs),
        ),
        (
            "a malformed session cookie",
            same_origin(addr, "Cookie: tokengate_device=not-hex"),
        ),
        (
            "two session cookies",
            same_origin(addr, &format!("Cookie: {mine_value}; {theirs_value}")),
        ),
    ];
    for (what, headers) in &refused {
        // A fresh authorization each time, so one poll shows nothing was
        // decided (a second poll would only be told to slow down).
        let (device_code, user_code) = start_device_flow(addr).await;
        let token = confirmation(addr, &same_origin(addr, &mine), &user_code).await;
        let reply = form_post(
            addr,
            "/login/device",
            headers,
            &format!("user_code={user_code}&confirm={token}&decision=approve"),
        )
        .await;
        assert_eq!(reply.status, 403, "{what}: {}", reply.body);
        assert_page_headers(&reply, what);
        assert!(
            !reply.body.contains("You approved"),
            "{what}: {}",
            reply.body
        );
        assert_eq!(
            poll_device(addr, &device_code).await["error"],
            "authorization_pending",
            "{what}"
        );
    }
    // The attacker's own token (fetched in their session, for their own
    // code) posted cross-site into the victim's session: the attack this
    // page must hold against.
    let (device_code, user_code) = start_device_flow(addr).await;
    let token = confirmation(addr, &same_origin(addr, &theirs), &user_code).await;
    for headers in [
        format!("{evil}\r\n{mine}"),
        same_origin(addr, &mine),
        mine.clone(),
    ] {
        let reply = form_post(
            addr,
            "/login/device",
            &headers,
            &format!("user_code={user_code}&confirm={token}&decision=approve"),
        )
        .await;
        assert_eq!(reply.status, 403, "{headers}: {}", reply.body);
    }
    assert_eq!(
        poll_device(addr, &device_code).await["error"],
        "authorization_pending"
    );
    // The look-up step too: a cross-site POST learns nothing of who asks.
    let (_, user_code) = start_device_flow(addr).await;
    let reply = form_post(
        addr,
        "/login/device",
        &format!("{evil}\r\n{mine}"),
        &format!("user_code={user_code}"),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_page_headers(&reply, "a cross-site look-up");
    assert!(!reply.body.contains("demo-client"), "{}", reply.body);
    assert!(!reply.body.contains("name=\"confirm\""), "{}", reply.body);

    // What a person's browser sends from the page itself, and a client
    // that is no browser but holds the session and its token, approve.
    let accepted: Vec<(&str, String)> = vec![
        ("the page's own form", same_origin(addr, &mine)),
        (
            "Sec-Fetch-Site: same-origin, no Origin",
            format!("Sec-Fetch-Site: same-origin\r\n{mine}"),
        ),
        (
            "Sec-Fetch-Site: none, no Origin",
            format!("Sec-Fetch-Site: none\r\n{mine}"),
        ),
        ("not a browser (no Origin, no Sec-Fetch-Site)", mine.clone()),
        (
            "the other session, with its own token",
            same_origin(addr, &theirs),
        ),
    ];
    for (what, headers) in &accepted {
        let (device_code, user_code) = start_device_flow(addr).await;
        let token = confirmation(addr, headers, &user_code).await;
        let reply = form_post(
            addr,
            "/login/device",
            headers,
            &format!("user_code={user_code}&confirm={token}&decision=approve"),
        )
        .await;
        assert_eq!(reply.status, 200, "{what}: {}", reply.body);
        assert!(
            reply.body.contains("You approved <b>demo-client</b>"),
            "{what}: {}",
            reply.body
        );
        assert_page_headers(&reply, what);
        let json = poll_device(addr, &device_code).await;
        assert!(
            json["access_token"]
                .as_str()
                .is_some_and(|t| t.starts_with("gho_")),
            "{what}: {json}"
        );
    }
}

#[tokio::test]
async fn the_device_page_sets_a_strict_session_cookie_and_never_lets_itself_be_framed() {
    let server = start(&[]);
    let addr = server.addr.as_str();
    let page = send(addr, "GET /login/device HTTP/1.1", "").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let set_cookie = &page.headers["set-cookie"];
    let mut parts = set_cookie.split("; ");
    let value = parts
        .next()
        .unwrap()
        .strip_prefix("tokengate_device=")
        .unwrap_or_else(|| panic!("{set_cookie}"));
    assert_eq!(value.len(), 64, "{set_cookie}");
    assert!(value.bytes().all(|b| b.is_ascii_hexdigit()), "{set_cookie}");
    let mut attributes: Vec<&str> = parts.collect();
    attributes.sort_unstable();
    // No `Secure` for a plain-HTTP issuer: the browser would drop it.
    assert_eq!(
        attributes,
        ["HttpOnly", "Path=/login/device", "SameSite=Strict"],
        "{set_cookie}"
    );
    // A browser that has a session keeps it; one that has none gets a new
    // one, never another browser's.
    let cookie = format!("Cookie: tokengate_device={value}");
    let again = send(addr, &format!("GET /login/device HTTP/1.1\r\n{cookie}"), "").await;
    assert_eq!(again.status, 200);
    assert!(
        !again.headers.contains_key("set-cookie"),
        "{:?}",
        again.headers
    );
    let other = send(addr, "GET /login/device HTTP/1.1", "").await;
    assert_ne!(other.headers["set-cookie"], *set_cookie);

    // Every answer on the page's path forbids framing and caching,
    // whatever produced it.
    let browser = same_origin(addr, &cookie);
    let (_, user_code) = start_device_flow(addr).await;
    let answers = [
        ("GET", page),
        (
            "GET with a prefilled code",
            send(
                addr,
                "GET /login/device?user_code=%22%3E%3Cscript%3E HTTP/1.1",
                "",
            )
            .await,
        ),
        ("HEAD", send(addr, "HEAD /login/device HTTP/1.1", "").await),
        (
            "PUT",
            send(addr, &format!("PUT /login/device HTTP/1.1\r\n{cookie}"), "").await,
        ),
        (
            "the confirmation page",
            form_post(
                addr,
                "/login/device",
                &browser,
                &format!("user_code={user_code}"),
            )
            .await,
        ),
        (
            "an unknown code",
            form_post(addr, "/login/device", &browser, "user_code=BCDF-GHJK").await,
        ),
        (
            "a form without user_code",
            form_post(addr, "/login/device", &browser, "decision=approve").await,
        ),
        (
            "a body that is no form",
            send(
                addr,
                &format!("POST /login/device HTTP/1.1\r\nContent-Type: text/plain\r\n{browser}"),
                "user_code=x",
            )
            .await,
        ),
        (
            "a cross-site POST",
            form_post(
                addr,
                "/login/device",
                &format!("Origin: https://evil.example\r\n{cookie}"),
                "user_code=x",
            )
            .await,
        ),
        (
            "a POST without a session",
            form_post(addr, "/login/device", "", "user_code=x").await,
        ),
    ];
    for (what, reply) in &answers {
        assert_page_headers(reply, what);
    }
    let statuses: Vec<u16> = answers.iter().map(|(_, reply)| reply.status).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 405, 200, 404, 422, 415, 403, 403],
        "{answers:#?}"
    );
    // The prefill is escaped.
    assert!(
        !answers[1].1.body.contains("<script>"),
        "{}",
        answers[1].1.body
    );
}

#[tokio::test]
async fn the_issuer_names_the_metadata_the_device_page_and_the_origin_it_accepts() {
    let server = start(&["--issuer", "https://auth.example.com"]);
    let addr = server.addr.as_str();
    let issuer = "https://auth.example.com";
    for host in ["", "\r\nHost: evil.example"] {
        let reply = send(
            addr,
            &format!("GET /.well-known/oauth-authorization-server HTTP/1.1{host}"),
            "",
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.headers["cache-control"], "public, max-age=3600");
        let json = reply.json();
        assert_eq!(json["issuer"], issuer, "{json}");
        assert_eq!(
            json["token_endpoint"],
            format!("{issuer}/login/oauth/access_token")
        );
        assert_eq!(
            json["authorization_endpoint"],
            format!("{issuer}/login/oauth/authorize")
        );
        assert_eq!(
            json["device_authorization_endpoint"],
            format!("{issuer}/login/device/code")
        );
        // The device endpoint sends people to the issuer's page, not to
        // the one the request's `Host` names.
        let json = device_authorization(addr, host.trim_start_matches("\r\n")).await;
        assert_eq!(
            json["verification_uri"],
            format!("{issuer}/login/device"),
            "{json}"
        );
    }
    // An `https` issuer: the session cookie is `Secure`.
    let page = send(addr, "GET /login/device HTTP/1.1", "").await;
    let set_cookie = &page.headers["set-cookie"];
    let attributes: Vec<&str> = set_cookie.split("; ").skip(1).collect();
    assert!(attributes.contains(&"Secure"), "{set_cookie}");
    assert!(attributes.contains(&"HttpOnly"), "{set_cookie}");
    assert!(attributes.contains(&"SameSite=Strict"), "{set_cookie}");
    assert!(attributes.contains(&"Path=/login/device"), "{set_cookie}");
    let cookie = format!("Cookie: {}", set_cookie.split(';').next().unwrap());
    // The origin a POST must come from is the issuer's, not the address
    // the listener happens to have.
    let (device_code, user_code) = start_device_flow(addr).await;
    let listener = format!("Origin: http://{addr}\r\n{cookie}");
    let reply = form_post(
        addr,
        "/login/device",
        &listener,
        &format!("user_code={user_code}"),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let browser = format!("Origin: {issuer}\r\n{cookie}");
    let token = confirmation(addr, &browser, &user_code).await;
    let reply = form_post(
        addr,
        "/login/device",
        &listener,
        &format!("user_code={user_code}&confirm={token}&decision=approve"),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(
        poll_device(addr, &device_code).await["error"],
        "authorization_pending"
    );
    let reply = form_post(
        addr,
        "/login/device",
        &browser,
        &format!("user_code={user_code}&confirm={token}&decision=approve"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn the_default_issuer_ignores_a_forged_host_on_the_device_endpoint() {
    let server = start(&["--dialect", "rfc6749"]);
    let json = device_authorization(&server.addr, "Host: evil.example").await;
    assert_eq!(
        json["verification_uri"],
        format!("http://{}/login/device", server.addr),
        "{json}"
    );
}

#[tokio::test]
async fn an_issuer_with_a_path_scopes_the_page_beneath_it() {
    // Behind a proxy that serves the demo under /auth: the browser sees
    // /auth/login/device, so that is where the cookie and the form point.
    let server = start(&["--issuer", "HTTP://Auth.Example.com:8443/auth/"]);
    let addr = server.addr.as_str();
    let reply = send(
        addr,
        "GET /.well-known/oauth-authorization-server HTTP/1.1",
        "",
    )
    .await;
    let json = reply.json();
    assert_eq!(
        json["issuer"], "http://auth.example.com:8443/auth",
        "{json}"
    );
    assert_eq!(
        json["token_endpoint"],
        "http://auth.example.com:8443/auth/login/oauth/access_token"
    );
    let page = send(addr, "GET /login/device HTTP/1.1", "").await;
    let set_cookie = &page.headers["set-cookie"];
    assert!(
        set_cookie.contains("; Path=/auth/login/device;"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    assert!(
        page.body
            .contains("<form method=\"post\" action=\"/auth/login/device\">"),
        "{}",
        page.body
    );
    // The origin keeps its port (not the scheme's default) and drops the
    // path.
    let cookie = format!("Cookie: {}", set_cookie.split(';').next().unwrap());
    let (device_code, user_code) = start_device_flow(addr).await;
    let browser = format!("Origin: http://auth.example.com:8443\r\n{cookie}");
    let token = confirmation(addr, &browser, &user_code).await;
    let reply = form_post(
        addr,
        "/login/device",
        &browser,
        &format!("user_code={user_code}&confirm={token}&decision=approve"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(poll_device(addr, &device_code).await["access_token"].is_string());
}

/// The token endpoint under the demo's default issuer (`http://` and its
/// address): the `htu` of every DPoP proof, and an assertion audience.
fn token_endpoint(server: &Server) -> String {
    format!("http://{}/login/oauth/access_token", server.addr)
}

/// A clients file in a directory of its own (removed by the caller).
fn clients_file(name: &str, document: &serde_json::Value) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("tokengate-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("clients.json");
    std::fs::write(&file, document.to_string()).unwrap();
    let path = file.to_str().unwrap().to_owned();
    (dir, path)
}

/// A code exchange authenticated by `assertion` (RFC 7523 §2.2).
fn signed_exchange(client_id: &str, code: &str, assertion: &str) -> String {
    format!(
        "grant_type=authorization_code&client_id={client_id}&code={code}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
    )
}

#[tokio::test]
async fn signed_clients_from_the_clients_file_redeem_codes_with_assertions() {
    use tokengate::testing::jose::{ClientAssertion, DpopProof, TestKey};

    let key = TestKey::es256();
    let loopback = |entry: serde_json::Value| {
        let mut entry = entry;
        entry["redirect_uris"] = serde_json::json!(["http://127.0.0.1/callback"]);
        entry["redirect_policy"] = "loopback".into();
        entry
    };
    let (dir, file) = clients_file(
        "signed",
        &serde_json::json!({"clients": [
            loopback(serde_json::json!({"client_id": "signed",
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": TestKey::jwks(&[&key])})),
            loopback(serde_json::json!({"client_id": "hmac",
                "token_endpoint_auth_method": "client_secret_jwt",
                "client_secret": "hmac-secret-of-at-least-32-bytes!"})),
            loopback(serde_json::json!({"client_id": "bound", "public": true,
                "dpop_bound_access_tokens": true})),
        ]}),
    );
    let server = start(&["--clients", &file, "--dialect", "rfc6749"]);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("loaded 3 client(s)")),
        "{:?}",
        server.banner
    );
    let addr = server.addr.as_str();
    let issuer = format!("http://{addr}");
    // private_key_jwt, for both audiences the gate accepts: the issuer and
    // the token endpoint.
    for audience in [issuer.clone(), token_endpoint(&server)] {
        let code = authorize(addr, "signed").await;
        let assertion = ClientAssertion::new("signed", &audience).sign(&key);
        let reply = token(addr, "", &signed_exchange("signed", &code, &assertion)).await;
        assert_eq!(reply.status, 200, "{audience}: {}", reply.body);
        let json = reply.json();
        assert_eq!(json["token_type"], "bearer", "{json}");
        assert!(json["refresh_token"].is_string(), "{json}");
        // The same assertion again, on a fresh code: its jti was used.
        let code = authorize(addr, "signed").await;
        let reply = token(addr, "", &signed_exchange("signed", &code, &assertion)).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(reply.json()["error"], "invalid_client");
    }
    let code = authorize(addr, "signed").await;
    // A key the client never registered.
    let stranger = ClientAssertion::new("signed", &issuer).sign(&TestKey::es256_other());
    let reply = token(addr, "", &signed_exchange("signed", &code, &stranger)).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    // Another audience: an assertion made for someone else.
    let elsewhere = ClientAssertion::new("signed", "https://elsewhere.example").sign(&key);
    let reply = token(addr, "", &signed_exchange("signed", &code, &elsewhere)).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    // The refusals did not use the code up.
    let assertion = ClientAssertion::new("signed", &issuer).sign(&key);
    let reply = token(addr, "", &signed_exchange("signed", &code, &assertion)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // client_secret_jwt: HS256 keyed by the registered secret; the secret
    // itself is not taken from this client.
    let code = authorize(addr, "hmac").await;
    let assertion =
        ClientAssertion::new("hmac", &issuer).sign_hs256("hmac-secret-of-at-least-32-bytes!");
    let reply = token(addr, "", &signed_exchange("hmac", &code, &assertion)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let code = authorize(addr, "hmac").await;
    let body = format!(
        "grant_type=authorization_code&client_id=hmac&client_secret=hmac-secret&code={code}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}"
    );
    let reply = token(addr, "", &body).await;
    assert_eq!(reply.status, 401, "{}", reply.body);

    // dpop_bound_access_tokens: no proof, no token; with one, a DPoP token.
    let code = authorize(addr, "bound").await;
    let body = format!(
        "grant_type=authorization_code&client_id=bound&code={code}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}"
    );
    let reply = token(addr, "", &body).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_dpop_proof");
    let proof = DpopProof::new("POST", &token_endpoint(&server)).sign(&TestKey::ed25519());
    let reply = token(addr, &format!("DPoP: {proof}"), &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["token_type"], "DPoP");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_dpop_proof_gets_a_dpop_token() {
    use tokengate::testing::jose::{DpopProof, TestKey};

    // The GitHub dialect: DPoP answers keep RFC 9449's form there too.
    let server = start(&[]);
    let addr = server.addr.as_str();
    let key = TestKey::es256();
    let code = authorize(addr, "demo-client").await;
    let proof = DpopProof::new("POST", &token_endpoint(&server)).sign(&key);
    let headers = format!("Accept: application/json\r\nDPoP: {proof}");
    let reply = token(addr, &headers, &exchange(&code)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let json = reply.json();
    assert_eq!(json["token_type"], "DPoP", "{json}");
    assert!(json["access_token"].is_string(), "{json}");
    // The same proof again: its jti was used (400 in GitHub's dialect too).
    let code = authorize(addr, "demo-client").await;
    let reply = token(addr, &headers, &exchange(&code)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_dpop_proof");
    // A proof for another URL (the issuer is the demo's own address).
    let elsewhere =
        DpopProof::new("POST", "https://elsewhere.example/login/oauth/access_token").sign(&key);
    let reply = token(
        addr,
        &format!("Accept: application/json\r\nDPoP: {elsewhere}"),
        &exchange(&code),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_dpop_proof");
    // Without a proof the same code still redeems, as a bearer token.
    let reply = token(addr, "Accept: application/json", &exchange(&code)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["token_type"], "bearer");
}

#[tokio::test]
async fn dpop_nonce_demands_the_servers_nonce_and_a_retry_with_it_succeeds() {
    use tokengate::testing::jose::{DpopProof, TestKey};

    let server = start(&["--dpop-nonce", "--dialect", "rfc6749"]);
    let addr = server.addr.as_str();
    let htu = token_endpoint(&server);
    let key = TestKey::ed25519();
    let code = authorize(addr, "demo-client").await;
    // No nonce: 400 use_dpop_nonce, and the nonce to use.
    let proof = DpopProof::new("POST", &htu).sign(&key);
    let reply = token(addr, &format!("DPoP: {proof}"), &exchange(&code)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"], "use_dpop_nonce");
    let nonce = reply
        .headers
        .get("dpop-nonce")
        .unwrap_or_else(|| panic!("no DPoP-Nonce header: {reply:?}"))
        .clone();
    assert!(!nonce.is_empty());
    // A nonce the server never gave is no better.
    let forged = DpopProof::new("POST", &htu).nonce("forged").sign(&key);
    let reply = token(addr, &format!("DPoP: {forged}"), &exchange(&code)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"], "use_dpop_nonce");
    assert_eq!(reply.headers["dpop-nonce"], nonce);
    // The retry with it: the refusals left the code unused.
    let retry = DpopProof::new("POST", &htu).nonce(&nonce).sign(&key);
    let reply = token(addr, &format!("DPoP: {retry}"), &exchange(&code)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["token_type"], "DPoP");
    // Nonces are for proofs: a bearer request needs none.
    let code = authorize(addr, "demo-client").await;
    let reply = token(addr, "", &exchange(&code)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["token_type"], "bearer");
}
