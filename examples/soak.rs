//! A bounded soak run against the demo server, on loopback only.
//!
//! ```text
//! cargo build --release --example server --example soak
//! target/release/examples/soak [--seconds 60] [--connections 64] [--server PATH] [-- SERVER ARGS]
//! ```
//!
//! It starts the demo server (the `server` example next to this binary, or
//! `--server PATH`) with a clients file of its own and a code lifetime of
//! 10 s (so used codes leave the store within the run), then drives it from
//! `--connections` keep-alive connections for `--seconds`, each looping over
//! a mix:
//!
//! - 7 in 10: a valid exchange (authorize, then redeem with PKCE), by the
//!   connection's own client;
//! - 1 in 10: a replay of a code this connection redeemed, by a client
//!   kept for replays (a valid replay by the code's own client is not a
//!   guess, so it is not locked out; 429s are allowed all the same);
//! - 2 in 10: garbage (bad percent-encoding, random bytes, a wrong method,
//!   a made-up client id, a repeated parameter, an oversized body), sent
//!   over a second connection from another loopback address (127.0.1.x), as
//!   an attacker's would come: the lockout counts per peer, and the guesses
//!   in the garbage lock that address out, not the valid traffic.
//!
//! It fails (exit 1) on any 5xx, on any code that yielded two tokens, or on
//! a transport error, and prints the figures: requests, answers by status,
//! tokens, throughput, and the server's resident memory every 5 s.

use std::{
    collections::{BTreeMap, HashMap},
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, ExitCode, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, client::conn::http1};
use hyper_util::rt::TokioIo;

/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const REDIRECT: &str = "http%3A%2F%2F127.0.0.1%3A4567%2Fcallback";
const TOKEN: &str = "/login/oauth/access_token";

struct Options {
    seconds: u64,
    connections: usize,
    server: PathBuf,
    server_args: Vec<String>,
}

fn options() -> Result<Options, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut options = Options {
        seconds: 60,
        connections: 64,
        server: exe.with_file_name("server"),
        server_args: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => options.seconds = value()?.parse().map_err(|_| "--seconds: a number")?,
            "--connections" => {
                options.connections = value()?.parse().map_err(|_| "--connections: a number")?;
            }
            "--server" => options.server = value()?.into(),
            "--" => options.server_args.extend(args.by_ref()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.connections == 0 || options.seconds == 0 {
        return Err("--seconds and --connections must be positive".to_owned());
    }
    Ok(options)
}

/// What every connection adds up.
#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, u64>,
    requests: u64,
    tokens: u64,
    /// Tokens per code: the one invariant that must never break.
    redeemed: HashMap<String, u32>,
    failures: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run(options: Options) -> Result<bool, String> {
    let clients = clients_file(options.connections)?;
    let mut child = Command::new(&options.server)
        .args([
            "--addr",
            "127.0.0.1:0",
            "--dialect",
            "rfc6749",
            "--code-lifetime",
            "10",
        ])
        .arg("--clients")
        .arg(&clients)
        .args(&options.server_args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {} ({e}); build it: cargo build --release --example server",
                options.server.display()
            )
        })?;
    let pid = child.id();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut addr = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(rest) = line.strip_prefix("listening on http://") {
            addr = Some(rest.to_owned());
            break;
        }
    }
    let addr = addr.ok_or("the server never said `listening on`")?;
    println!(
        "soak: {} connections for {} s against {addr} (pid {pid})",
        options.connections, options.seconds
    );

    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let workers: Vec<_> = (0..options.connections)
        .map(|i| {
            let (addr, tally) = (addr.clone(), Arc::clone(&tally));
            tokio::spawn(async move { worker(i, &addr, deadline, &tally).await })
        })
        .collect();
    let mut memory = Vec::new();
    while Instant::now() < deadline {
        memory.push((started.elapsed().as_secs(), resident_kib(pid)));
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    for worker in workers {
        worker.await.map_err(|e| e.to_string())?;
    }
    memory.push((started.elapsed().as_secs(), resident_kib(pid)));
    let elapsed = started.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&clients);

    let tally = tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let doubles = tally.redeemed.values().filter(|n| **n > 1).count();
    let server_errors: u64 = tally
        .statuses
        .iter()
        .filter(|(status, _)| **status >= 500)
        .map(|(_, n)| n)
        .sum();
    println!(
        "requests: {} in {elapsed:.1} s ({:.0}/s)",
        tally.requests,
        tally.requests as f64 / elapsed
    );
    println!("answers by status: {:?}", tally.statuses);
    println!(
        "tokens: {} for {} codes; codes redeemed twice: {doubles}; 5xx: {server_errors}",
        tally.tokens,
        tally.redeemed.len()
    );
    let rss: Vec<String> = memory
        .iter()
        .map(|(t, kib)| format!("{t}s={} MiB", kib.unwrap_or(0) / 1024))
        .collect();
    println!("server resident memory: {}", rss.join(" "));
    for failure in tally.failures.iter().take(10) {
        println!("failure: {failure}");
    }
    Ok(doubles == 0 && server_errors == 0 && tally.failures.is_empty())
}

/// One client per connection for valid exchanges, one per connection for
/// replays; exact redirect URI, code grant only (no refresh tokens to pile
/// up in the store).
fn clients_file(connections: usize) -> Result<PathBuf, String> {
    let mut clients = Vec::new();
    for i in 0..connections {
        for role in ["good", "replayer"] {
            clients.push(format!(
                r#"{{"client_id":"{role}-{i}","client_secret":"secret-{i}","redirect_uris":["http://127.0.0.1:4567/callback"],"grant_types":["authorization_code"],"scopes":["repo"]}}"#
            ));
        }
    }
    let path = std::env::temp_dir().join(format!("tokengate-soak-{}.json", std::process::id()));
    std::fs::write(&path, format!(r#"{{"clients":[{}]}}"#, clients.join(",")))
        .map_err(|e| e.to_string())?;
    Ok(path)
}

fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A keep-alive connection from a loopback address of its own, re-opened
/// when the server closes it.
struct Connection {
    addr: String,
    /// The local address: the server counts failures per peer.
    from: std::net::IpAddr,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

impl Connection {
    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(u16, String, String), String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let socket = tokio::net::TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
            socket
                .bind(std::net::SocketAddr::new(self.from, 0))
                .map_err(|e| format!("bind {}: {e}", self.from))?;
            let addr = self
                .addr
                .parse()
                .map_err(|e| format!("server address: {e}"))?;
            let stream = socket
                .connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().ok_or("no connection")?;
        sender.ready().await.map_err(|e| format!("ready: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((
            status,
            location,
            String::from_utf8_lossy(&body).into_owned(),
        ))
    }
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "127.0.0.1")
        .body(Full::new(Bytes::new()))
        .expect("a valid request")
}

fn post(method: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(TOKEN)
        .header("host", "127.0.0.1")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(Full::new(body.into()))
        .expect("a valid request")
}

fn exchange(client: &str, secret: &str, code: &str) -> String {
    format!(
        "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT}&client_id={client}&client_secret={secret}&code_verifier={VERIFIER}"
    )
}

/// A code for `client`, through the authorize endpoint.
async fn authorize(connection: &mut Connection, client: &str) -> Result<String, String> {
    let path = format!(
        "/login/oauth/authorize?response_type=code&client_id={client}&redirect_uri={REDIRECT}&state=s&scope=repo&code_challenge={CHALLENGE}&code_challenge_method=S256"
    );
    let (status, location, body) = connection.send(get(&path)).await?;
    if status != 302 {
        return Err(format!("authorize answered {status}: {body}"));
    }
    location
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("code="))
        .map(str::to_owned)
        .ok_or(format!("no code in {location:?}"))
}

async fn worker(i: usize, addr: &str, deadline: Instant, tally: &Mutex<Tally>) {
    let mut connection = Connection {
        addr: addr.to_owned(),
        from: std::net::Ipv4Addr::LOCALHOST.into(),
        sender: None,
    };
    // The garbage comes from elsewhere, as an attacker's would: the
    // lockout counts per peer, and an address that guesses may lock only
    // itself out (Linux routes all of 127.0.0.0/8 to loopback).
    let mut hostile = Connection {
        addr: addr.to_owned(),
        from: std::net::Ipv4Addr::new(127, 0, 1, (i % 250) as u8 + 1).into(),
        sender: None,
    };
    let (good, replayer, secret) = (
        format!("good-{i}"),
        format!("replayer-{i}"),
        format!("secret-{i}"),
    );
    let mut redeemed: Vec<String> = Vec::new();
    let mut replayer_code: Option<String> = None;
    let mut step: u64 = i as u64;
    while Instant::now() < deadline {
        step += 1;
        let outcome = match step % 10 {
            // A replay of a code the replay client redeemed once.
            0 => {
                replay(
                    &mut connection,
                    &replayer,
                    &secret,
                    &mut replayer_code,
                    tally,
                )
                .await
            }
            1 => garbage(&mut hostile, step)
                .await
                .map(|status| (status, None)),
            2 => garbage(&mut hostile, step / 10)
                .await
                .map(|status| (status, None)),
            _ => valid(&mut connection, &good, &secret).await,
        };
        let mut tally = tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match outcome {
            Ok((status, token_for)) => {
                tally.requests += 1;
                *tally.statuses.entry(status).or_default() += 1;
                if let Some(code) = token_for {
                    tally.tokens += 1;
                    *tally.redeemed.entry(code.clone()).or_default() += 1;
                    redeemed.push(code);
                }
            }
            Err(error) => tally.failures.push(format!("{good}: {error}")),
        }
    }
    // Every code this connection redeemed, once more, by its own client:
    // none may give a second token.
    for code in redeemed.iter().rev().take(20) {
        let answer = connection
            .send(post("POST", exchange(&good, &secret, code)))
            .await;
        let mut tally = tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match answer {
            Ok((status, _, body)) if body.contains("access_token") => {
                *tally.redeemed.entry(code.clone()).or_default() += 1;
                tally
                    .failures
                    .push(format!("{good}: a used code gave a token ({status})"));
            }
            Ok(_) => {}
            Err(error) => tally.failures.push(format!("{good}: {error}")),
        }
    }
}

/// Authorize and redeem: (status, the code when a token came back).
async fn valid(
    connection: &mut Connection,
    client: &str,
    secret: &str,
) -> Result<(u16, Option<String>), String> {
    let code = authorize(connection, client).await?;
    let (status, _, body) = connection
        .send(post("POST", exchange(client, secret, &code)))
        .await?;
    if status == 200 && body.contains("access_token") {
        Ok((status, Some(code)))
    } else {
        Err(format!("a valid exchange answered {status}: {body}"))
    }
}

async fn replay(
    connection: &mut Connection,
    client: &str,
    secret: &str,
    code: &mut Option<String>,
    tally: &Mutex<Tally>,
) -> Result<(u16, Option<String>), String> {
    let Some(used) = code.clone() else {
        // First: redeem one code for real (before the lockout starts).
        let fresh = authorize(connection, client).await?;
        let (status, _, body) = connection
            .send(post("POST", exchange(client, secret, &fresh)))
            .await?;
        if status == 200 && body.contains("access_token") {
            *code = Some(fresh.clone());
            return Ok((status, Some(fresh)));
        }
        return Err(format!(
            "the replay client's first exchange answered {status}: {body}"
        ));
    };
    let (status, _, body) = connection
        .send(post("POST", exchange(client, secret, &used)))
        .await?;
    if body.contains("access_token") {
        let mut tally = tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *tally.redeemed.entry(used).or_default() += 1;
        return Err(format!("a replay gave a token ({status})"));
    }
    match status {
        // invalid_grant, or the lockout after ten replays.
        400 | 429 => Ok((status, None)),
        other => Err(format!("a replay answered {other}: {body}")),
    }
}

/// One malformed or hostile request; any 4xx is right, a 5xx is not.
async fn garbage(connection: &mut Connection, n: u64) -> Result<u16, String> {
    let request = match n % 7 {
        0 => post(
            "POST",
            "grant_type=authorization_code&code=%zz&client_id=good-0",
        ),
        1 => post(
            "POST",
            (0..64)
                .map(|b: u64| (b * 37 + n) as u8)
                .collect::<Vec<u8>>(),
        ),
        2 => post("PUT", "grant_type=authorization_code"),
        3 => post(
            "POST",
            format!(
                "grant_type=authorization_code&code=guess-{n}&client_id=ghost-{n}&client_secret=x"
            ),
        ),
        4 => post("POST", "grant_type=authorization_code&code=a&code=b"),
        5 => post("POST", vec![b'a'; 20_000]),
        _ => post(
            "POST",
            format!("grant_type=refresh_token&refresh_token=r{n}&client_id=ghost&client_secret=y"),
        ),
    };
    let (status, _, body) = connection.send(request).await?;
    if (400..500).contains(&status) {
        Ok(status)
    } else {
        Err(format!("garbage answered {status}: {body}"))
    }
}
