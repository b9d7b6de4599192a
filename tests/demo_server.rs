//! The demo server driven from the outside over plain HTTP, as a real
//! client would: its flags, its `listening on` line, the authorize redirect,
//! SPEC.md's rows, and 100 concurrent redemptions of one code.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "http%3A%2F%2F127.0.0.1%3A4567%2Fcallback";

/// The example binary cargo built for this test run.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap();
    let path = target.join("examples").join("server");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "server"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

struct Server {
    child: Child,
    addr: String,
    banner: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let child = Command::new(binary())
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Owned by `Server` at once, so the process is killed on every path.
    let mut server = Server {
        child,
        addr: String::new(),
        banner: Vec::new(),
    };
    let mut lines = BufReader::new(server.child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(addr) = line.strip_prefix("listening on http://") {
            server.addr = addr.to_owned();
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return server;
        }
        server.banner.push(line);
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn form(&self) -> HashMap<String, String> {
        form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }
}

/// One HTTP/1.1 exchange over a fresh connection.
async fn send(addr: &str, head: &str, body: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{head}\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn token(addr: &str, extra_headers: &str, body: &str) -> Reply {
    let mut head = "POST /login/oauth/access_token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded".to_owned();
    if !extra_headers.is_empty() {
        head = format!("{head}\r\n{extra_headers}");
    }
    send(addr, &head, body).await
}

/// Runs the authorize endpoint and returns the code from its redirect.
async fn authorize(addr: &str, client_id: &str) -> String {
    let reply = send(
        addr,
        &format!(
            "GET /login/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&state=st&scope=repo&code_challenge={CHALLENGE}&code_challenge_method=S256 HTTP/1.1"
        ),
        "",
    )
    .await;
    assert_eq!(reply.status, 302, "{}", reply.body);
    let location = &reply.headers["location"];
    assert!(
        location.starts_with("http://127.0.0.1:4567/callback?code="),
        "{location}"
    );
    let query = location.split_once('?').unwrap().1;
    let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(params["state"], "st");
    params["code"].clone()
}

fn exchange(code: &str) -> String {
    format!(
        "grant_type=authorization_code&client_id=demo-client&client_secret=demo-secret&code={code}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}"
    )
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
    let github = start(&["--dialect", "github"]);
    let rfc = start(&["--dialect", "rfc6749"]);
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
    let mut tokens = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, 200);
        let json = reply.json();
        if json.get("access_token").is_some() {
            tokens += 1;
        } else {
            assert_eq!(json["error"], "bad_verification_code");
        }
    }
    assert_eq!(tokens, 1);
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

async fn form_post(addr: &str, path: &str, extra_headers: &str, body: &str) -> Reply {
    let mut head =
        format!("POST {path} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded");
    if !extra_headers.is_empty() {
        head = format!("{head}\r\n{extra_headers}");
    }
    send(addr, &head, body).await
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
        let (device_code, user_code) = start_device().await;
        let typed: String =
            form_urlencoded::byte_serialize(user_code.to_lowercase().as_bytes()).collect();
        let decided = form_post(
            &server.addr,
            "/login/device",
            "",
            &format!("user_code={typed}&decision=approve"),
        )
        .await;
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
        form_post(
            &server.addr,
            "/login/device",
            "",
            &format!("user_code={user_code}&decision=deny"),
        )
        .await;
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
