//! `examples/gateway.rs` driven from the outside: the gate in front of an
//! upstream issuer it does not own.
//!
//! The upstream is the demo server with `--no-gate`, which hands a token to
//! anyone: a rejection that reached it would come back as a token. A second
//! upstream, a recorder in this process, proves what crosses the gateway
//! byte for byte, and that rejections never do.

mod common;

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::{
    VERIFIER,
    demo::{REDIRECT, Reply, Server, authorize, demo_exchange, send, spawn, token},
};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;

/// The longest any exchange or start-up may take.
const WAIT: Duration = Duration::from_secs(30);

/// The demo server and the gateway (see `common::demo::example`).
fn binaries() -> (PathBuf, PathBuf) {
    (
        common::demo::example("server"),
        common::demo::example("gateway"),
    )
}

/// A process expected to exit by itself, killed on drop if it does not.
struct Process {
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The public URL the upstream demo is given: in a deployment, the
/// gateway's, since clients reach the issuer through it. The demo renders
/// its URLs from it, never from `Host`.
const PUBLIC_URL: &str = "https://auth.example.com";

fn upstream_demo() -> Server {
    spawn(&binaries().0, &["--no-gate", "--issuer", PUBLIC_URL])
}

fn gateway(upstream: &str, args: &[&str]) -> Server {
    let mut all = vec!["--upstream", upstream];
    all.extend_from_slice(args);
    spawn(&binaries().1, &all)
}

/// Waits at most [`WAIT`] for `future`.
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("no answer in time")
}

async fn exchange(addr: &str, headers: &str, body: &str) -> Reply {
    within(token(addr, headers, body)).await
}

async fn code(addr: &str) -> String {
    within(authorize(addr, "demo-client")).await
}

/// A GitHub-dialect refusal from the gate: status 200, an `error`, no token.
fn assert_refused(reply: &Reply, error: &str) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let form = reply.form();
    assert_eq!(
        form.get("error").map(String::as_str),
        Some(error),
        "{form:?}"
    );
    assert!(!form.contains_key("access_token"), "{form:?}");
    assert_eq!(reply.headers["cache-control"], "no-store");
}

/// An address where nothing listens.
fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

#[tokio::test]
async fn valid_exchanges_reach_the_upstream_and_rejections_stay_at_the_gateway() {
    let upstream = upstream_demo();
    let gate = gateway(&format!("http://{}", upstream.addr), &[]);
    let addr = gate.addr.as_str();

    // Authorize at the gateway, redeem through it: the upstream mints.
    let first = code(addr).await;
    let reply = exchange(addr, "Accept: application/json", &demo_exchange(&first)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert!(
        body["access_token"].as_str().unwrap().starts_with("gho_"),
        "{body}"
    );
    assert_eq!(body["token_type"], "bearer");
    // The ungated upstream saw no grant: its empty scope shows the token is
    // its own, minted from the forwarded request (the `Accept` header too:
    // it answered JSON).
    assert_eq!(body["scope"], "", "{body}");
    assert_eq!(reply.headers["content-type"], "application/json");

    // Each of these would get a token from the upstream; the gateway
    // answers them itself.
    let second = code(addr).await;
    let bad_secret = demo_exchange(&second).replace("demo-secret", "nope");
    assert_refused(
        &exchange(addr, "", &bad_secret).await,
        "incorrect_client_credentials",
    );
    let replayed = exchange(addr, "", &demo_exchange(&first)).await;
    assert_refused(&replayed, "bad_verification_code");
    let malformed = format!("{}&scope=%zz", demo_exchange(&second));
    assert_refused(&exchange(addr, "", &malformed).await, "invalid_request");
    let wrong_verifier = demo_exchange(&code(addr).await).replace(VERIFIER, &"x".repeat(43));
    assert_refused(
        &exchange(addr, "", &wrong_verifier).await,
        "incorrect_code_verifier",
    );
    let unknown = demo_exchange("never-issued");
    assert_refused(&exchange(addr, "", &unknown).await, "bad_verification_code");
    // Not a POST: the gate's 405.
    let get = within(send(addr, "GET /login/oauth/access_token HTTP/1.1", "")).await;
    assert_eq!(get.status, 405, "{}", get.body);
    assert!(!get.body.contains("access_token"), "{}", get.body);
    // The refresh grant is not the gateway's (see the example's docs).
    let refresh =
        "grant_type=refresh_token&refresh_token=r&client_id=demo-client&client_secret=demo-secret";
    assert_refused(&exchange(addr, "", refresh).await, "unsupported_grant_type");

    // The bad secret left the second code unused: the corrected request
    // goes through, in GitHub's default form format.
    let reply = exchange(addr, "", &demo_exchange(&second)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.form()["access_token"].starts_with("gho_"));

    // An authorization request the gateway refuses never reaches the
    // upstream (which would approve anything it knows).
    let unknown_client = within(send(
        addr,
        &format!(
            "GET /login/oauth/authorize?response_type=code&client_id=ghost&redirect_uri={REDIRECT} HTTP/1.1"
        ),
        "",
    ))
    .await;
    assert_ne!(unknown_client.status, 302, "{}", unknown_client.body);
    assert!(!unknown_client.headers.contains_key("location"));

    // Every other path is the upstream's: its metadata as it renders it,
    // for the public URL it was given.
    let metadata = within(send(
        addr,
        "GET /.well-known/oauth-authorization-server HTTP/1.1",
        "",
    ))
    .await;
    assert_eq!(metadata.status, 200, "{}", metadata.body);
    assert_eq!(
        metadata.json()["token_endpoint"],
        format!("{PUBLIC_URL}/login/oauth/access_token")
    );
    let page = within(send(addr, "GET /login/device HTTP/1.1", "")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Activate a device"), "{}", page.body);

    // The upstream goes down: the gateway still mints codes (that part is
    // its own), but cannot get tokens: 502 and an OAuth server_error in the
    // negotiated format.
    drop(upstream);
    let json = exchange(
        addr,
        "Accept: application/json",
        &demo_exchange(&code(addr).await),
    )
    .await;
    assert_eq!(json.status, 502, "{}", json.body);
    assert_eq!(json.headers["content-type"], "application/json");
    assert_eq!(json.json()["error"], "server_error");
    assert_eq!(json.headers["cache-control"], "no-store");
    let form = exchange(addr, "", &demo_exchange(&code(addr).await)).await;
    assert_eq!(form.status, 502, "{}", form.body);
    assert_eq!(form.form()["error"], "server_error");
    // A rejection does not need the upstream.
    assert_refused(
        &exchange(addr, "", &demo_exchange(&first)).await,
        "bad_verification_code",
    );
    let other = within(send(addr, "GET /login/device HTTP/1.1", "")).await;
    assert_eq!(other.status, 502, "{}", other.body);
}

#[tokio::test]
async fn rfc6749_dialect_with_a_clients_file_and_no_upstream() {
    let dir = std::env::temp_dir().join(format!("tokengate-gateway-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("clients.json");
    std::fs::write(
        &file,
        r#"{"clients":[{"client_id":"demo-client","client_secret":"file-secret",
            "redirect_uris":["http://127.0.0.1:4567/callback"],"redirect_policy":"exact"}]}"#,
    )
    .unwrap();
    let gate = gateway(
        &format!("http://{}", dead_address()),
        &["--dialect", "rfc6749", "--clients", file.to_str().unwrap()],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let addr = gate.addr.as_str();

    // The file's secret, not the demo's.
    let demo_secret = exchange(addr, "", &demo_exchange(&code(addr).await)).await;
    assert_eq!(demo_secret.status, 401, "{}", demo_secret.body);
    assert_eq!(demo_secret.json()["error"], "invalid_client");
    assert!(demo_secret.headers.contains_key("www-authenticate"));
    let malformed = exchange(addr, "", "grant_type=authorization_code&code=%zz").await;
    assert_eq!(malformed.status, 400, "{}", malformed.body);
    assert_eq!(malformed.json()["error"], "invalid_request");

    // Valid, but nobody upstream: 502, JSON server_error.
    let valid = demo_exchange(&code(addr).await).replace("demo-secret", "file-secret");
    let reply = exchange(addr, "", &valid).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(reply.json()["error"], "server_error");
    assert!(reply.json()["error_description"].is_string());
}

/// What the recording upstream received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

/// An upstream in this process that records every request and answers a
/// token with a few headers, hop-by-hop ones among them.
async fn recorder() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let record = Arc::clone(&record);
            let service = service_fn(move |request: Request<Incoming>| {
                let record = Arc::clone(&record);
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes());
                    record.lock().unwrap().push(Seen {
                        method: parts.method.to_string(),
                        uri: parts.uri.to_string(),
                        headers: parts.headers,
                        body: body.unwrap_or_default(),
                    });
                    let response = Response::builder()
                        .status(201)
                        .header("content-type", "application/json")
                        .header("x-upstream", "recorder")
                        .header("connection", "x-upstream-private")
                        .header("x-upstream-private", "1")
                        .header("proxy-authenticate", "Basic")
                        .body(Full::new(Bytes::from_static(
                            br#"{"access_token":"from-upstream","token_type":"bearer"}"#,
                        )))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (addr, seen)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn what_crosses_the_gateway_is_the_request_as_sent() {
    let (upstream, seen) = recorder().await;
    let gate = gateway(&format!("http://{upstream}/prefix/"), &[]);
    let addr = gate.addr.as_str();

    // Rejections first: nothing reaches the upstream.
    let first = code(addr).await;
    let bad_secret = demo_exchange(&first).replace("demo-secret", "nope");
    assert_refused(
        &exchange(addr, "", &bad_secret).await,
        "incorrect_client_credentials",
    );
    assert_refused(
        &exchange(addr, "", "code=%zz&client_id=demo-client").await,
        "invalid_request",
    );
    assert_refused(
        &exchange(addr, "", &demo_exchange("never-issued")).await,
        "bad_verification_code",
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );

    // A valid request, with unusual but valid encoding, an unknown
    // parameter, hop-by-hop headers and forged grant headers.
    let body = format!(
        "{}&extra=a+b%20c%2B&scope=",
        demo_exchange(&first).replace("grant_type=authorization_code&", "")
    );
    let headers = "Accept: application/json\r\nX-Custom: kept\r\nConnection: x-hop\r\nX-Hop: dropped\r\n\
                   Keep-Alive: timeout=5\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nTE: trailers\r\n\
                   X-Tokengate-Subject: mallory\r\nX-Tokengate-Admin: yes";
    let reply = exchange(addr, headers, &body).await;
    // The upstream's answer, relayed; the gate adds no-store.
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.body,
        r#"{"access_token":"from-upstream","token_type":"bearer"}"#
    );
    assert_eq!(reply.headers["x-upstream"], "recorder");
    assert!(!reply.headers.contains_key("x-upstream-private"));
    assert!(!reply.headers.contains_key("proxy-authenticate"));
    assert_eq!(reply.headers["cache-control"], "no-store");

    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let forwarded = &requests[0];
    assert_eq!(forwarded.method, "POST");
    assert_eq!(forwarded.uri, "/prefix/login/oauth/access_token");
    assert_eq!(forwarded.body, body.as_bytes(), "the body, byte for byte");
    let h = &forwarded.headers;
    assert_eq!(header(h, "host"), Some(addr));
    assert_eq!(header(h, "accept"), Some("application/json"));
    assert_eq!(header(h, "x-custom"), Some("kept"));
    assert_eq!(
        header(h, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        header(h, "content-length"),
        Some(body.len().to_string().as_str())
    );
    for hop in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
    ] {
        assert!(!h.contains_key(hop), "{hop} was forwarded: {h:?}");
    }
    // What the gate validated, and nothing the client claimed.
    assert_eq!(header(h, "x-tokengate-client-id"), Some("demo-client"));
    assert_eq!(header(h, "x-tokengate-subject"), Some("demo-user"));
    assert_eq!(header(h, "x-tokengate-scope"), Some("repo"));
    assert!(!h.contains_key("x-tokengate-admin"));
    assert_eq!(h.get_all("x-tokengate-subject").iter().count(), 1);
    assert_eq!(header(h, "x-forwarded-for"), Some("127.0.0.1"));

    // Replayed: answered by the gateway, the upstream sees nothing more.
    assert_refused(
        &exchange(addr, "", &demo_exchange(&first)).await,
        "bad_verification_code",
    );
    assert_eq!(seen.lock().unwrap().len(), 1);

    // Other paths go up as they are, query and body included, with forged
    // grant headers removed there too.
    let api = within(send(
        addr,
        "POST /api/v1/items?page=2&q=a%20b HTTP/1.1\r\nContent-Type: text/plain\r\nX-Tokengate-Subject: mallory",
        "raw & unparsed %zz",
    ))
    .await;
    assert_eq!(api.status, 201, "{}", api.body);
    // Not a token answer: the gate adds nothing.
    assert!(
        !api.headers.contains_key("cache-control"),
        "{:?}",
        api.headers
    );
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let proxied = &requests[1];
    assert_eq!(proxied.method, "POST");
    assert_eq!(proxied.uri, "/prefix/api/v1/items?page=2&q=a%20b");
    assert_eq!(proxied.body, "raw & unparsed %zz".as_bytes());
    assert_eq!(header(&proxied.headers, "content-type"), Some("text/plain"));
    assert!(!proxied.headers.contains_key("x-tokengate-subject"));
    assert!(!proxied.headers.contains_key("x-tokengate-client-id"));

    // The authorize endpoint is the gateway's own.
    let _ = code(addr).await;
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn refuses_a_bad_upstream_flag() {
    let (_, gateway) = binaries();
    for args in [
        &["--addr", "127.0.0.1:0"][..],
        &["--upstream", "https://127.0.0.1:1"],
        &["--upstream", "not a url"],
        &["--upstream", "http://127.0.0.1:1", "--dialect", "oauth1"],
    ] {
        let child = Command::new(&gateway)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut process = Process { child };
        assert_eq!(
            wait(&mut process).code(),
            Some(2),
            "{args:?} was not refused"
        );
    }
}

/// The exit status, within [`WAIT`].
fn wait(process: &mut Process) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}
