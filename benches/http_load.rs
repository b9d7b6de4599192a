//! HTTP load: the demo server driven over loopback, with and without the gate.
//!
//! ```text
//! cargo build --release --example server
//! cargo bench --bench http_load
//! HTTP_LOAD_SECONDS=2 cargo bench --bench http_load      # a quick run
//! ```
//!
//! It uses the release demo binary (`target/release/examples/server`; built
//! with `cargo build --release --example server` only when it is missing, so
//! rebuild it yourself after changing the crate) and starts it twice on
//! `127.0.0.1:0` in the RFC 6749 dialect: once gated, once with `--no-gate`.
//! Each server gets a short warm-up, then a timed window of
//! `HTTP_LOAD_SECONDS` (default 10) with `HTTP_LOAD_CONNECTIONS` (default 32)
//! keep-alive HTTP/1.1 connections sending a fixed mix:
//!
//! - 50% authorization-code exchanges (client secret, PKCE S256, bound
//!   redirect URI), each with a fresh code from a pool minted through the
//!   authorize endpoint before the window (outside the measurement);
//! - 25% the same request with a wrong client secret;
//! - 25% malformed bodies, in turn: bad percent-encoding, a repeated
//!   parameter, bytes that are not UTF-8.
//!
//! `--no-gate` gets the same request shapes (with codes minted on it).
//! `HTTP_LOAD_ROUNDS` (default 1) repeats the pair of windows, alternating
//! which server goes first. `HTTP_LOAD_CLIENTS=FILE` passes `--clients FILE`
//! to both servers (it must register `demo-client` with secret
//! `demo-secret` and a loopback redirect policy), e.g. to leave out the
//! refresh token the gated handler otherwise issues with every exchange.
//!
//! It prints requests/s, p50 and p99 latency per server, the ratio of gated
//! to ungated throughput (the issue's target: at least 0.90), and checks the
//! gated server's answers: every exchange gets `200` and exactly one access
//! token (all distinct, and a redeemed code replayed afterwards is refused
//! with `invalid_grant`), every other request a 4xx with an OAuth `error`,
//! no 5xx, no broken connection. A correctness failure makes it exit with
//! code 1; the throughput ratio is reported, never enforced.
//!
//! All traffic stays on 127.0.0.1; every loop is bounded in time; both
//! servers are killed at the end, on a panic too. Client and servers share
//! the machine's cores, so the figures are relative ones: compare the two
//! rows of one run, not runs on different machines.
//!
//! Without `--bench` among its arguments (as under `cargo test
//! --all-targets`) it only prints how to run it.

use std::{
    collections::{BTreeMap, HashSet},
    io::{self, BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, ExitCode, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

/// RFC 7636, appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// `http://127.0.0.1:4567/callback`: the demo client's loopback redirect
/// URI, on a port of our choosing.
const REDIRECT: &str = "http%3A%2F%2F127.0.0.1%3A4567%2Fcallback";
const TOKEN_PATH: &str = "/login/oauth/access_token";
/// A stand-in of a real code's length (43 base64url characters) for the
/// requests the gate rejects before looking at the code.
const FAKE_CODE: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

const DEFAULT_SECONDS: f64 = 10.0;
const DEFAULT_CONNECTIONS: usize = 32;
/// Codes live 10 minutes: minting plus the window must fit well inside.
const MAX_SECONDS: f64 = 120.0;
const MAX_CONNECTIONS: usize = 1024;
const MAX_ROUNDS: usize = 10;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The warm-up: codes are minted for this long, then the mix runs until
/// they are spent or for `WARMUP_RUN`, whichever comes first.
const WARMUP_MINT: Duration = Duration::from_millis(500);
const WARMUP_RUN: Duration = Duration::from_secs(1);
/// How many codes beyond the estimate the pool gets (factor, then per
/// connection).
const POOL_MARGIN: f64 = 2.0;
const POOL_EXTRA_PER_CONNECTION: usize = 64;
const MAX_POOL: usize = 4_000_000;
/// Redeemed codes replayed after a gated window.
const REPLAYS: usize = 16;
/// Failure descriptions kept per window (the count is always complete).
const MAX_SAMPLES: usize = 10;
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        println!("http_load: a load benchmark; run it with `cargo bench --bench http_load`");
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("http_load: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let binary = binary();
    println!("http_load: demo binary {}", binary.display());
    // Both guards live until the end of `main`: the servers are killed when
    // it returns and when it unwinds.
    let clients = config.clients.as_deref();
    let ungated = Server::start(&binary, Mode::Ungated, clients);
    let gated = Server::start(&binary, Mode::Gated, clients);
    println!(
        "http_load: {} s windows, {} keep-alive connections, {} round(s); mix 50% code exchange, 25% wrong secret, 25% malformed; dialect rfc6749; clients: {}",
        config.seconds,
        config.connections,
        config.rounds,
        config.clients.as_deref().unwrap_or("the demo client")
    );
    println!(
        "http_load: {} at http://{}, {} at http://{}",
        ungated.mode.name(),
        ungated.addr,
        gated.mode.name(),
        gated.addr
    );
    println!(
        "http_load: {} CPUs shared by the client and both servers; load average before: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    let code = runtime.block_on(run(&config, [&ungated, &gated]));
    println!("http_load: load average after:  {}", load_average());
    drop(runtime);
    drop(gated);
    drop(ungated);
    code
}

async fn run(config: &Config, servers: [&Server; 2]) -> ExitCode {
    let mut failures = Vec::new();
    // Throughput estimate per server: sizes the code pools.
    let mut estimates = [0.0f64; 2];
    for (server, estimate) in servers.iter().zip(&mut estimates) {
        let pool = mint(server, config.connections, WARMUP_MINT, usize::MAX).await;
        let stats = window(server, config.connections, pool, WARMUP_RUN).await;
        *estimate = stats.rps();
        println!(
            "warm-up {:<8} {:>8} requests in {:.2} s ({:.0} req/s)",
            server.mode.name(),
            stats.requests(),
            stats.elapsed.as_secs_f64(),
            stats.rps()
        );
        failures.extend(stats.verdict(server.mode, "warm-up"));
    }

    let mut results: [Vec<Stats>; 2] = [Vec::new(), Vec::new()];
    for round in 0..config.rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let server = servers[which];
            let wanted = (estimates[which] * config.seconds * 0.5 * POOL_MARGIN) as usize
                + POOL_EXTRA_PER_CONNECTION * config.connections;
            let mint_limit = Duration::from_secs_f64(30.0 + 2.0 * config.seconds);
            let started = Instant::now();
            let pool = mint(server, config.connections, mint_limit, wanted.min(MAX_POOL)).await;
            println!(
                "round {} {:<8} minted {} codes in {:.2} s",
                round + 1,
                server.mode.name(),
                pool.codes.len(),
                started.elapsed().as_secs_f64()
            );
            let stats = window(
                server,
                config.connections,
                pool,
                Duration::from_secs_f64(config.seconds),
            )
            .await;
            estimates[which] = estimates[which].max(stats.rps());
            println!(
                "round {} {:<8} {:>8} requests in {:.2} s: {:.0} req/s, p50 {}, p99 {}{}",
                round + 1,
                server.mode.name(),
                stats.requests(),
                stats.elapsed.as_secs_f64(),
                stats.rps(),
                micros(stats.all().percentile(0.50)),
                micros(stats.all().percentile(0.99)),
                if stats.exhausted {
                    " (window cut short: code pool spent)"
                } else {
                    ""
                }
            );
            failures.extend(stats.verdict(server.mode, &format!("round {}", round + 1)));
            results[which].push(stats);
        }
    }

    // Each round's two windows ran back to back: their ratio is the least
    // sensitive to the machine's load drifting.
    let mut ratios: Vec<f64> = results[0]
        .iter()
        .zip(&results[1])
        .map(|(ungated, gated)| gated.rps() / ungated.rps())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let [ungated, gated] = results.map(Stats::merge);
    println!();
    println!(
        "{:<8} {:>9} {:>8} {:>10} {:>9} {:>9} {:>9} {:>6} {:>6} {:>6}",
        "server", "requests", "secs", "req/s", "p50", "p99", "max", "5xx", "broken", "reconn"
    );
    for (server, stats) in servers.iter().zip([&ungated, &gated]) {
        let all = stats.all();
        println!(
            "{:<8} {:>9} {:>8.2} {:>10.0} {:>9} {:>9} {:>9} {:>6} {:>6} {:>6}",
            server.mode.name(),
            stats.requests(),
            stats.elapsed.as_secs_f64(),
            stats.rps(),
            micros(all.percentile(0.50)),
            micros(all.percentile(0.99)),
            micros(all.percentile(1.0)),
            stats.server_errors,
            stats.transport_errors,
            stats.reconnects
        );
    }
    let ratio = gated.rps() / ungated.rps();
    println!(
        "throughput gate/no-gate: {ratio:.3} (target >= 0.90: {})",
        if ratio >= 0.90 { "met" } else { "missed" }
    );
    if ratios.len() > 1 {
        println!(
            "per-round ratios: {} (median {:.3})",
            ratios
                .iter()
                .map(|r| format!("{r:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
            ratios[ratios.len() / 2]
        );
    }
    for (server, stats) in servers.iter().zip([&ungated, &gated]) {
        println!("\n{} per request kind:", server.mode.name());
        for kind in Kind::ALL {
            let latencies = &stats.latencies[kind as usize];
            println!(
                "  {:<14} {:>9} p50 {:>9} p99 {:>9}  {}",
                kind.name(),
                latencies.len(),
                micros(latencies.percentile(0.50)),
                micros(latencies.percentile(0.99)),
                stats
                    .outcomes
                    .iter()
                    .filter(|((k, _, _), _)| *k == kind)
                    .map(|((_, status, what), n)| format!("{status} {what} x{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    println!();
    if failures.is_empty() {
        println!(
            "correctness ({}): ok: {} exchanges, {} distinct tokens, {} replays refused, no 5xx, no broken connection",
            Mode::Gated.name(),
            gated.latencies[Kind::Exchange as usize].len(),
            gated.tokens.len(),
            gated.replays
        );
        println!(
            "the gate server logged {} code-replay warnings (the replay check's)",
            servers[1].replay_warnings.load(Ordering::Relaxed)
        );
        ExitCode::SUCCESS
    } else {
        println!("correctness ({}): FAILED", Mode::Gated.name());
        for failure in &failures {
            println!("  {failure}");
        }
        ExitCode::FAILURE
    }
}

struct Config {
    seconds: f64,
    connections: usize,
    rounds: usize,
    clients: Option<String>,
}

impl Config {
    fn from_env() -> Result<Self, String> {
        let seconds = env_number("HTTP_LOAD_SECONDS", DEFAULT_SECONDS)?;
        if !(seconds > 0.0 && seconds <= MAX_SECONDS) {
            return Err(format!(
                "HTTP_LOAD_SECONDS={seconds} is not in (0, {MAX_SECONDS}]"
            ));
        }
        let connections = env_number("HTTP_LOAD_CONNECTIONS", DEFAULT_CONNECTIONS as f64)?;
        if !(1.0..=MAX_CONNECTIONS as f64).contains(&connections) || connections.fract() != 0.0 {
            return Err(format!(
                "HTTP_LOAD_CONNECTIONS={connections} is not a whole number in [1, {MAX_CONNECTIONS}]"
            ));
        }
        let rounds = env_number("HTTP_LOAD_ROUNDS", 1.0)?;
        if !(1.0..=MAX_ROUNDS as f64).contains(&rounds) || rounds.fract() != 0.0 {
            return Err(format!(
                "HTTP_LOAD_ROUNDS={rounds} is not a whole number in [1, {MAX_ROUNDS}]"
            ));
        }
        Ok(Self {
            seconds,
            connections: connections as usize,
            rounds: rounds as usize,
            clients: std::env::var("HTTP_LOAD_CLIENTS").ok(),
        })
    }
}

fn env_number(name: &str, default: f64) -> Result<f64, String> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .map_err(|_| format!("{name}={value:?} is not a number")),
        Err(_) => Ok(default),
    }
}

/// The machine's load averages (1, 5, 15 minutes), where Linux tells them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

/// The release demo binary next to this benchmark's own target directory,
/// built if it is missing.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    // target/release/deps/http_load-HASH -> target/release
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the benchmark runs from target/<profile>/deps");
    let path = profile.join("examples").join("server");
    if !path.exists() {
        println!("http_load: {} is missing; building it", path.display());
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--example", "server"])
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "cargo build --release --example server failed"
        );
        assert!(path.exists(), "{} is still missing", path.display());
    }
    path
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Gated,
    Ungated,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Gated => "gate",
            Self::Ungated => "no-gate",
        }
    }
}

/// A running demo server, killed when dropped.
struct Server {
    child: Child,
    addr: String,
    mode: Mode,
    /// The gate's "authorization code replayed" warnings on stderr (the
    /// replay check's doing); every other line is passed on.
    replay_warnings: Arc<AtomicUsize>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(binary: &PathBuf, mode: Mode, clients: Option<&str>) -> Self {
        let mut command = Command::new(binary);
        command
            .args(["--addr", "127.0.0.1:0", "--dialect", "rfc6749"])
            // The mix repeats wrong secrets for one client: measured as
            // such, not as lockout answers.
            .args(["--lockout", "off"])
            // A caller's RUST_LOG=debug would turn the run into a logging
            // benchmark.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if mode == Mode::Ungated {
            command.arg("--no-gate");
        }
        if let Some(clients) = clients {
            command.args(["--clients", clients]);
        }
        let child = command.spawn().expect("the demo server starts");
        // Owned by the guard at once, so every path below kills it.
        let mut server = Self {
            child,
            addr: String::new(),
            mode,
            replay_warnings: Arc::default(),
        };
        let stderr = server.child.stderr.take().expect("piped stderr");
        let replay_warnings = server.replay_warnings.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("authorization code replayed") {
                    replay_warnings.fetch_add(1, Ordering::Relaxed);
                } else {
                    eprintln!("[{} server] {line}", mode.name());
                }
            }
        });
        let stdout = server.child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        // Reads the banner, then keeps draining stdout so the server never
        // blocks on a full pipe; ends when the server exits.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    let _ = sender.send(addr.to_owned());
                }
            }
        });
        match receiver.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                assert!(
                    addr.starts_with("127.0.0.1:"),
                    "the server listens on {addr}, not on loopback"
                );
                server.addr = addr;
                server
            }
            Err(_) => {
                let status = server.child.try_wait().ok().flatten();
                panic!(
                    "the {} server did not print `listening on` within {START_TIMEOUT:?} (exit: {status:?})",
                    mode.name()
                );
            }
        }
    }
}

/// What a request of the mix is.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Exchange,
    WrongSecret,
    BadPercent,
    Repeated,
    NotUtf8,
}

impl Kind {
    const ALL: [Self; 5] = [
        Self::Exchange,
        Self::WrongSecret,
        Self::BadPercent,
        Self::Repeated,
        Self::NotUtf8,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Exchange => "exchange",
            Self::WrongSecret => "wrong secret",
            Self::BadPercent => "bad %-encoding",
            Self::Repeated => "repeated param",
            Self::NotUtf8 => "not UTF-8",
        }
    }

    /// The `n`th request of a connection: 4 in 8 exchanges, 2 in 8 wrong
    /// secrets, 2 in 8 malformed (the three shapes in turn).
    fn nth(n: usize) -> Self {
        match n % 8 {
            0 | 2 | 4 | 6 => Self::Exchange,
            1 | 5 => Self::WrongSecret,
            _ => [Self::BadPercent, Self::Repeated, Self::NotUtf8][(n / 4) % 3],
        }
    }
}

/// The request bytes for one server.
struct Requests {
    host: String,
    wrong_secret: Vec<u8>,
    bad_percent: Vec<u8>,
    repeated: Vec<u8>,
    not_utf8: Vec<u8>,
}

impl Requests {
    fn new(addr: &str) -> Self {
        let host = addr.to_owned();
        let wrong_secret = token_request(
            &host,
            format!(
                "grant_type=authorization_code&client_id=demo-client&client_secret=wrong-secret&code={FAKE_CODE}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}"
            )
            .as_bytes(),
        );
        let bad_percent = token_request(
            &host,
            format!(
                "grant_type=authorization_code&client_id=demo-client&client_secret=demo-secret&code=%ZZ{}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}",
                &FAKE_CODE[3..]
            )
            .as_bytes(),
        );
        let repeated = token_request(
            &host,
            format!(
                "grant_type=authorization_code&client_id=demo-client&client_secret=demo-secret&code={FAKE_CODE}&code={FAKE_CODE}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}"
            )
            .as_bytes(),
        );
        let mut garbage =
            b"grant_type=authorization_code&\x00\xff\xfe&&==%%&client_id=demo-client&".to_vec();
        garbage.extend_from_slice(&[0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1]);
        let not_utf8 = token_request(&host, &garbage);
        Self {
            host,
            wrong_secret,
            bad_percent,
            repeated,
            not_utf8,
        }
    }

    fn exchange(&self, code: &str) -> Vec<u8> {
        token_request(&self.host, exchange_body(code).as_bytes())
    }

    fn fixed(&self, kind: Kind) -> &[u8] {
        match kind {
            Kind::WrongSecret => &self.wrong_secret,
            Kind::BadPercent => &self.bad_percent,
            Kind::Repeated => &self.repeated,
            Kind::NotUtf8 => &self.not_utf8,
            Kind::Exchange => unreachable!("exchanges carry their own code"),
        }
    }

    fn authorize(&self) -> Vec<u8> {
        format!(
            "GET /login/oauth/authorize?response_type=code&client_id=demo-client&redirect_uri={REDIRECT}&state=st&scope=repo&code_challenge={CHALLENGE}&code_challenge_method=S256 HTTP/1.1\r\nHost: {}\r\n\r\n",
            self.host
        )
        .into_bytes()
    }
}

fn exchange_body(code: &str) -> String {
    format!(
        "grant_type=authorization_code&client_id=demo-client&client_secret=demo-secret&code={code}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}"
    )
}

fn token_request(host: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {TOKEN_PATH} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// One answer, read whole.
struct Reply {
    status: u16,
    close: bool,
    location: Option<String>,
    body: Vec<u8>,
}

/// A keep-alive HTTP/1.1 connection (one request at a time).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> io::Result<Self> {
        let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        assert!(stream.peer_addr()?.ip().is_loopback());
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(8192),
        })
    }

    /// Sends `request` and reads its answer, within `REQUEST_TIMEOUT`.
    async fn send(&mut self, request: &[u8]) -> io::Result<Reply> {
        timeout(REQUEST_TIMEOUT, self.exchange(request))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))?
    }

    async fn exchange(&mut self, request: &[u8]) -> io::Result<Reply> {
        self.stream.write_all(request).await?;
        let head_end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("response head too long"));
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| invalid("response head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid("bad status line"))?;
        let (mut length, mut chunked, mut close, mut location) = (None, false, false, None);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| invalid("bad content-length"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("location") {
                location = Some(value.to_owned());
            }
        }
        self.buf.drain(..head_end);
        let body = if chunked {
            self.chunked().await?
        } else {
            let length = length.unwrap_or(0);
            if length > MAX_BODY {
                return Err(invalid("response body too long"));
            }
            while self.buf.len() < length {
                self.fill().await?;
            }
            self.buf.drain(..length).collect()
        };
        Ok(Reply {
            status,
            close,
            location,
            body,
        })
    }

    async fn chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = self.line().await?;
            let size_text = std::str::from_utf8(&self.buf[..line_end])
                .map_err(|_| invalid("bad chunk size"))?;
            let size_text = size_text.split(';').next().unwrap_or_default().trim();
            let size =
                usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let end = self.line().await?;
                    self.buf.drain(..end + 2);
                    if end == 0 {
                        return Ok(body);
                    }
                }
            }
            if body.len() + size > MAX_BODY {
                return Err(invalid("response body too long"));
            }
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    /// Where the next CRLF starts, reading until there is one.
    async fn line(&mut self) -> io::Result<usize> {
        loop {
            if let Some(at) = find(&self.buf, b"\r\n") {
                return Ok(at);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("line too long"));
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        self.buf.reserve(8192);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(())
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// The value of a JSON string field (`"name":"value"`), as the demo
/// writes it (no spaces, no escapes in the values looked at).
fn json_string<'a>(body: &'a [u8], name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = find(body, key.as_bytes())? + key.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&body[start..start + len]).ok()
}

/// Codes minted before a window, handed out once each.
struct Pool {
    codes: Vec<String>,
    next: AtomicUsize,
}

impl Pool {
    fn take(&self) -> Option<&str> {
        let at = self.next.fetch_add(1, Ordering::Relaxed);
        self.codes.get(at).map(String::as_str)
    }
}

/// Mints up to `wanted` codes through the authorize endpoint with
/// `connections` connections, for at most `limit`.
async fn mint(server: &Server, connections: usize, limit: Duration, wanted: usize) -> Arc<Pool> {
    let deadline = Instant::now() + limit;
    let requests = Arc::new(Requests::new(&server.addr));
    let minted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (requests, minted, addr) = (requests.clone(), minted.clone(), server.addr.clone());
        tasks.push(tokio::spawn(async move {
            let request = requests.authorize();
            let mut conn = Conn::open(&addr).await.expect("connect to mint codes");
            let mut codes = Vec::new();
            while Instant::now() < deadline && minted.fetch_add(1, Ordering::Relaxed) < wanted {
                let reply = conn.send(&request).await.expect("the authorize endpoint");
                assert_eq!(
                    reply.status,
                    302,
                    "authorize: {}",
                    String::from_utf8_lossy(&reply.body)
                );
                let location = reply.location.expect("a Location header");
                let query = location.split_once('?').map_or("", |(_, q)| q);
                let code = form_urlencoded::parse(query.as_bytes())
                    .find(|(name, _)| name == "code")
                    .expect("a code in the redirect")
                    .1
                    .into_owned();
                codes.push(code);
                if reply.close {
                    conn = Conn::open(&addr).await.expect("reconnect to mint codes");
                }
            }
            codes
        }));
    }
    let mut codes = Vec::new();
    for task in tasks {
        codes.extend(task.await.expect("a minting task"));
    }
    Arc::new(Pool {
        codes,
        next: AtomicUsize::new(0),
    })
}

/// Latencies in microseconds.
#[derive(Default, Clone)]
struct Latencies(Vec<u32>);

impl Latencies {
    fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest rank; `self` must be sorted.
    fn percentile(&self, q: f64) -> Option<u32> {
        if self.0.is_empty() {
            return None;
        }
        let rank = ((self.0.len() - 1) as f64 * q).round() as usize;
        Some(self.0[rank])
    }
}

fn micros(value: Option<u32>) -> String {
    match value {
        None => "-".to_owned(),
        Some(us) if us < 10_000 => format!("{us} us"),
        Some(us) => format!("{:.1} ms", f64::from(us) / 1000.0),
    }
}

/// What one window (or one connection of it) saw.
#[derive(Default)]
struct Stats {
    latencies: [Latencies; 5],
    /// (kind, status, token or OAuth error) -> count.
    outcomes: BTreeMap<(Kind, u16, String), u64>,
    tokens: Vec<String>,
    /// A few codes that got a token, to replay afterwards.
    redeemed: Vec<String>,
    /// Answers the gated server must not give, counted and sampled.
    wrong: u64,
    samples: Vec<String>,
    server_errors: u64,
    transport_errors: u64,
    reconnects: u64,
    /// Redeemed codes replayed and refused (`invalid_grant`).
    replays: usize,
    /// Some connection found the code pool empty.
    exhausted: bool,
    elapsed: Duration,
}

impl Stats {
    fn requests(&self) -> usize {
        self.latencies.iter().map(Latencies::len).sum()
    }

    fn rps(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn all(&self) -> Latencies {
        let mut all: Vec<u32> = self.latencies.iter().flat_map(|l| l.0.clone()).collect();
        all.sort_unstable();
        Latencies(all)
    }

    fn sample(&mut self, what: String) {
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(what);
        }
    }

    /// Counts an answer; `judge`: hold it to what the gate must answer.
    fn record(&mut self, kind: Kind, micros: u32, reply: &Reply, code: Option<&str>, judge: bool) {
        self.latencies[kind as usize].0.push(micros);
        let token = json_string(&reply.body, "access_token");
        let what = match (token, json_string(&reply.body, "error")) {
            (Some(_), _) => "token",
            (None, Some(error)) => error,
            (None, None) => "other",
        };
        *self
            .outcomes
            .entry((kind, reply.status, what.to_owned()))
            .or_default() += 1;
        if reply.status >= 500 {
            self.server_errors += 1;
            self.sample(format!(
                "{}: {} {}",
                kind.name(),
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
        // Judged on the gated server only, but computed on both so the client
        // does the same work for each.
        let right = if kind == Kind::Exchange {
            reply.status == 200
                && count(&reply.body, b"\"access_token\":") == 1
                && json_string(&reply.body, "token_type") == Some("bearer")
                && token.is_some_and(|t| !t.is_empty())
        } else {
            (400..500).contains(&reply.status) && what != "token" && what != "other"
        };
        if judge && !right {
            self.wrong += 1;
            self.sample(format!(
                "{}: {} {}",
                kind.name(),
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
        if let (Some(token), Some(code)) = (token, code) {
            self.tokens.push(token.to_owned());
            if reply.status == 200 && self.redeemed.len() < REPLAYS {
                self.redeemed.push(code.to_owned());
            }
        }
    }

    fn merge(all: Vec<Self>) -> Self {
        let mut merged = Self::default();
        for stats in all {
            for (into, from) in merged.latencies.iter_mut().zip(stats.latencies) {
                into.0.extend(from.0);
            }
            for (key, n) in stats.outcomes {
                *merged.outcomes.entry(key).or_default() += n;
            }
            merged.tokens.extend(stats.tokens);
            merged.redeemed.extend(stats.redeemed);
            merged.wrong += stats.wrong;
            for sample in stats.samples {
                merged.sample(sample);
            }
            merged.server_errors += stats.server_errors;
            merged.transport_errors += stats.transport_errors;
            merged.reconnects += stats.reconnects;
            merged.replays += stats.replays;
            merged.exhausted |= stats.exhausted;
            merged.elapsed += stats.elapsed;
        }
        for latencies in &mut merged.latencies {
            latencies.0.sort_unstable();
        }
        merged
    }

    /// The failures of this window: for the gated server, every rule; for
    /// the baseline, only 5xx and broken connections (it hands a token to
    /// anyone by design).
    fn verdict(&self, mode: Mode, label: &str) -> Vec<String> {
        let name = mode.name();
        let mut failures = Vec::new();
        if self.server_errors > 0 {
            failures.push(format!(
                "{label} {name}: {} 5xx answers",
                self.server_errors
            ));
        }
        if self.transport_errors > 0 {
            failures.push(format!(
                "{label} {name}: {} requests without an answer (broken connection or timeout)",
                self.transport_errors
            ));
        }
        if mode == Mode::Gated {
            if self.wrong > 0 {
                failures.push(format!("{label} {name}: {} wrong answers", self.wrong));
            }
            let distinct: HashSet<&String> = self.tokens.iter().collect();
            if distinct.len() != self.tokens.len() {
                failures.push(format!(
                    "{label} {name}: {} tokens, only {} distinct",
                    self.tokens.len(),
                    distinct.len()
                ));
            }
            let exchanges = self.latencies[Kind::Exchange as usize].len();
            if self.tokens.len() != exchanges {
                failures.push(format!(
                    "{label} {name}: {exchanges} exchanges answered, {} tokens",
                    self.tokens.len()
                ));
            }
            if self.replays != self.redeemed.len() {
                failures.push(format!(
                    "{label} {name}: only {} of {} replayed codes refused",
                    self.replays,
                    self.redeemed.len()
                ));
            }
        }
        if !failures.is_empty() {
            failures.extend(
                self.samples
                    .iter()
                    .map(|s| format!("{label} {name}: e.g. {s}")),
            );
        }
        failures
    }
}

/// What the connections of a window share.
struct Shared {
    addr: String,
    requests: Requests,
    pool: Arc<Pool>,
    /// Set when the pool is spent: every connection stops.
    stop: AtomicBool,
    deadline: Instant,
    /// Hold the answers to what the gate must answer.
    judge: bool,
}

/// Drives the mix on `connections` connections for `duration`, or until the
/// code pool is spent.
async fn window(server: &Server, connections: usize, pool: Arc<Pool>, duration: Duration) -> Stats {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(
            Conn::open(&server.addr)
                .await
                .expect("connect for the window"),
        );
    }
    let started = Instant::now();
    let shared = Arc::new(Shared {
        addr: server.addr.clone(),
        requests: Requests::new(&server.addr),
        pool,
        stop: AtomicBool::new(false),
        deadline: started + duration,
        judge: server.mode == Mode::Gated,
    });
    let mut tasks = Vec::with_capacity(connections);
    for (id, conn) in conns.into_iter().enumerate() {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let stats = drive(conn, id, &shared).await;
            (stats, Instant::now())
        }));
    }
    let mut all = Vec::with_capacity(connections);
    let mut last = started;
    for task in tasks {
        let (stats, finished) = task.await.expect("a load task");
        last = last.max(finished);
        all.push(stats);
    }
    let mut stats = Stats::merge(all);
    stats.elapsed = last - started;
    // Outside the measurement: a redeemed code gives no second token.
    stats.redeemed.truncate(REPLAYS);
    if server.mode == Mode::Gated {
        stats.replays = replay(server, &stats.redeemed).await;
    }
    stats
}

/// One connection's loop: ends at the deadline, when the pool is spent, or
/// when it cannot reconnect.
async fn drive(mut conn: Conn, id: usize, shared: &Shared) -> Stats {
    let mut stats = Stats::default();
    // Connections start at different places in the mix.
    let mut n = id;
    while Instant::now() < shared.deadline && !shared.stop.load(Ordering::Relaxed) {
        let kind = Kind::nth(n);
        n += 1;
        let exchange;
        let (request, code): (&[u8], _) = if kind == Kind::Exchange {
            let Some(code) = shared.pool.take() else {
                stats.exhausted = true;
                shared.stop.store(true, Ordering::Relaxed);
                break;
            };
            exchange = shared.requests.exchange(code);
            (&exchange, Some(code))
        } else {
            (shared.requests.fixed(kind), None)
        };
        let started = Instant::now();
        let reply = conn.send(request).await;
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        let reconnect = match reply {
            Ok(reply) => {
                stats.record(kind, micros, &reply, code, shared.judge);
                reply.close
            }
            Err(error) => {
                stats.transport_errors += 1;
                stats.sample(format!("{}: {error}", kind.name()));
                true
            }
        };
        if reconnect {
            stats.reconnects += 1;
            match Conn::open(&shared.addr).await {
                Ok(fresh) => conn = fresh,
                Err(error) => {
                    stats.transport_errors += 1;
                    stats.sample(format!("reconnect: {error}"));
                    break;
                }
            }
        }
    }
    stats
}

/// Sends each redeemed code again, with the right credentials; returns how
/// many were refused with `invalid_grant`.
async fn replay(server: &Server, codes: &[String]) -> usize {
    let requests = Requests::new(&server.addr);
    let mut conn = Conn::open(&server.addr).await.expect("connect to replay");
    let mut refused = 0;
    for code in codes {
        let reply = conn.send(&requests.exchange(code)).await.expect("a replay");
        if reply.status == 400 && json_string(&reply.body, "error") == Some("invalid_grant") {
            refused += 1;
        }
        if reply.close {
            conn = Conn::open(&server.addr).await.expect("reconnect to replay");
        }
    }
    refused
}
