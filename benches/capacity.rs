//! Capacity: what one token request costs a gate process and its store, and
//! what a live code, refresh token or device code costs in memory, on each
//! store. BENCHMARKS.md's capacity model is built on these figures.
//!
//! ```text
//! cargo build --release --example server
//! cargo bench --bench capacity
//! CAPACITY_STORES="memory redis://127.0.0.1:6379" CAPACITY_REQUESTS=5000 cargo bench --bench capacity
//! ```
//!
//! It uses the release demo binary (`target/release/examples/server`, built
//! only when missing, as `benches/http_load.rs` does: rebuild it after
//! changing the crate) and starts it once per store, on `127.0.0.1:0`, in the
//! RFC 6749 dialect, with the gate's defaults (two-phase redemption, the
//! lockout on and kept in the store). For each store it drives, over
//! keep-alive HTTP/1.1 on loopback:
//!
//! - `code`: authorization-code exchanges (client secret in the body, PKCE
//!   S256, bound redirect URI), each answered with an access token and a
//!   refresh token; the codes are minted through the authorize endpoint
//!   before the window;
//! - `refresh`: one rotation of each refresh token the exchanges gave;
//! - `client_credentials`: client-credentials grants;
//! - `device`: one poll of each device code, approved beforehand through the
//!   demo's device page (its session cookie and confirmation token, as a
//!   browser would) after a device authorization request.
//!
//! Each grant gets two measured runs: a sample of `CAPACITY_SAMPLE` requests
//! on one connection, one at a time (store round trips are counted there,
//! where nothing overlaps), then a window of `CAPACITY_REQUESTS` requests
//! (`CAPACITY_DEVICES` for the device grant) on `CAPACITY_CONNECTIONS`
//! connections. Preparing the requests (minting codes, getting refresh
//! tokens, approving devices) happens outside both. Around each run it
//! reads:
//!
//! - the demo process's CPU time, `utime + stime` from `/proc/PID/stat`
//!   (and, finer, the sum of its threads' `schedstat`): gate CPU per request,
//!   whatever else the machine runs;
//! - the store server's CPU: Redis `INFO cpu` (and `INFO commandstats`); for
//!   PostgreSQL, `utime + stime` from `/proc` of the backends serving the
//!   demo (found by their client ports in `pg_stat_activity`) and of every
//!   `postgres` process (with the children they reaped), and the WAL written
//!   (`pg_current_wal_lsn`);
//! - the bytes each way and the request-to-answer turns (a turn is the
//!   client writing after having read) between the demo and its store, at
//!   a TCP relay this benchmark puts in between: the demo gets the relay's
//!   address in its `--store` URL.
//!
//! Memory per live value: the store's size before and after each step of
//! preparation and each window: Redis `INFO memory` `used_memory` (and
//! `MEMORY USAGE` of a sample of the keys of each kind), PostgreSQL
//! `pg_relation_size` and `pg_indexes_size` of the `tokengate_*` tables (as
//! written: the dead row versions of updates are in it; `VACUUM` runs at the
//! end and the tables' live and dead row counts are printed), the demo's
//! resident set for the memory store; and, for the memory store, the heap a
//! `MemoryStore` behind the same gate keeps per value in this process,
//! counted by a counting allocator (as `benches/scale.rs` does), with the
//! records the demo makes.
//!
//! Environment:
//!
//! - `CAPACITY_STORES`: the stores, separated by spaces or `;`, each as the
//!   demo's `--store` takes it: `memory`, `redis://HOST:PORT`,
//!   `postgres://USER@HOST:PORT/DB`, and any other URL whose scheme starts
//!   with `redis` (such as `redis+cluster://H:P,H:P`) or `postgres`. Default:
//!   `memory redis://127.0.0.1:6379 postgres://postgres@127.0.0.1:5432/test`.
//!   Every `HOST:PORT` of a URL gets its own relay and its own `INFO` reads;
//!   a Redis Cluster's nodes announce their own addresses, so traffic after
//!   the first redirection may go around the relays (the counts then say so).
//! - `CAPACITY_GRANTS`: which of `code,refresh,client_credentials,device`
//!   (default all); `refresh` runs the code exchanges too, for its tokens.
//! - `CAPACITY_REQUESTS` (default 20,000): requests per window, and so the
//!   number of codes and refresh tokens whose memory is measured.
//! - `CAPACITY_DEVICES` (default 5,000), `CAPACITY_SAMPLE` (default 200),
//!   `CAPACITY_CONNECTIONS` (default 16).
//!
//! It checks every answer on the way: each exchange, refresh, grant and
//! poll is `200` with exactly one access token, all distinct (and a refresh
//! token where one is due, all distinct), no 5xx, no broken connection; a
//! correctness failure makes it exit with code 1 after cleaning up. It
//! removes what it put in Redis or PostgreSQL (the codes, refresh tokens,
//! families and device codes it was given, by their keys: nothing else of
//! the demo's prefix is touched; the demo client's registration stays, as
//! every demo start writes it), kills the demo processes and the relays,
//! on a panic too. Key names are those of `crates/tokengate-redis` today;
//! if they change, the memory sample and the clean-up say so.
//!
//! Without `--bench` among its arguments (as under `cargo test
//! --all-targets`) it only prints how to run it.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    convert::Infallible,
    io::{self, BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, ExitCode, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use http::{Request, Response, header::CONTENT_TYPE};
use sqlx::{Row, postgres::PgPoolOptions};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::{call, now_or_never};
use tokengate::{
    Client, Dialect, GrantType, MemoryStore, RequestBody, TokenGateLayer, ValidatedGrant,
    client::RedirectPolicy, store::CodeKey,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinSet,
    time::timeout,
};
use tower::{Layer, service_fn};

#[path = "support/mod.rs"]
mod support;

/// Counts the heap, for the memory store's bytes per value.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// RFC 7636, appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// `http://127.0.0.1:4567/callback`: the demo client's loopback redirect
/// URI, on a port of our choosing.
const REDIRECT: &str = "http%3A%2F%2F127.0.0.1%3A4567%2Fcallback";
const CLIENT_ID: &str = "demo-client";
const CLIENT_SECRET: &str = "demo-secret";
/// The user the demo approves every request for.
const DEMO_USER: &str = "demo-user";
const TOKEN_PATH: &str = "/login/oauth/access_token";
const DEVICE_PATH: &str = "/login/device/code";
const DEVICE_PAGE: &str = "/login/device";
const DEVICE_GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code";
/// The demo's Redis key prefix (`RedisStore::connect`), and the key kinds
/// of `crates/tokengate-redis/src/lib.rs` (read there, never written from
/// here but for the clean-up of this run's own keys).
const REDIS_PREFIX: &str = "tokengate";
/// The PostgreSQL store's tables (`crates/tokengate-postgres/migrations`).
const PG_TABLES: [&str; 5] = [
    "tokengate_codes",
    "tokengate_refresh_tokens",
    "tokengate_devices",
    "tokengate_revoked_families",
    "tokengate_lockout",
];

const DEFAULT_STORES: &str =
    "memory redis://127.0.0.1:6379 postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_REQUESTS: usize = 20_000;
const DEFAULT_DEVICES: usize = 5_000;
const DEFAULT_SAMPLE: usize = 200;
const DEFAULT_CONNECTIONS: usize = 16;
/// Codes live 10 minutes and device codes 15: a run per store must fit well
/// inside, so the counts are bounded.
const MAX_REQUESTS: usize = 200_000;
const MAX_CONNECTIONS: usize = 256;
/// Warm-up per store: connections opened, scripts loaded, statements
/// prepared on every pooled connection.
const WARMUP: usize = 400;
const WARMUP_DEVICES: usize = 50;
/// Keys sampled per kind for Redis `MEMORY USAGE`.
const KEY_SAMPLE: usize = 200;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;
/// Failure descriptions kept per check (the count is always complete).
const MAX_SAMPLES: usize = 5;

fn main() -> ExitCode {
    if !std::env::args().any(|a| a == "--bench") {
        println!("capacity: a capacity benchmark; run it with `cargo bench --bench capacity`");
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("capacity: {error}");
            return ExitCode::from(2);
        }
    };
    let binary = binary();
    let clk_tck = clock_ticks();
    println!("capacity: demo binary {}", binary.display());
    println!(
        "capacity: stores {:?}; grants {}; {} requests per window ({} device polls), samples of {} on one connection, {} connections",
        config.stores,
        config.grants.join(","),
        config.requests,
        config.devices,
        config.sample,
        config.connections
    );
    println!(
        "capacity: {} CPUs shared by this client, the demo and the stores; {clk_tck} clock ticks per second; load average before: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );

    // In process, before anything else runs: the heap is this process's alone.
    let heap = if config.stores.iter().any(|s| s == "memory") {
        memory_store_heap(config.requests, config.devices)
    } else {
        Vec::new()
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for url in &config.stores {
        let spec = match StoreSpec::parse(url) {
            Ok(spec) => spec,
            Err(error) => {
                failures.push(error);
                continue;
            }
        };
        println!("\n== store {url} (load average {})", load_average());
        // What the run put in the store, kept outside its task so that a
        // panic inside still leaves it to clean up.
        let created = Arc::new(Mutex::new(Created::default()));
        let run = {
            let (spec, config, binary, created) = (
                spec.clone(),
                config.clone(),
                binary.clone(),
                created.clone(),
            );
            runtime
                .spawn(async move { run_store(&spec, &config, &binary, clk_tck, &created).await })
        };
        match runtime.block_on(run) {
            Ok(report) => {
                failures.extend(report.failures.iter().map(|f| format!("{url}: {f}")));
                reports.push(report);
            }
            Err(error) => failures.push(format!("{url}: the run failed: {error}")),
        }
        let created = std::mem::take(&mut *created.lock().expect("not poisoned"));
        if let Err(error) = runtime.block_on(clean_up(&spec, created)) {
            failures.push(format!("{url}: clean-up: {error}"));
        }
    }
    drop(runtime);
    print_report(&config, &heap, &reports);
    println!("\ncapacity: load average after: {}", load_average());
    if failures.is_empty() {
        println!(
            "correctness: ok (every answer 200 with one distinct token, no 5xx, no broken connection)"
        );
        ExitCode::SUCCESS
    } else {
        println!("correctness: FAILED");
        for failure in &failures {
            println!("  {failure}");
        }
        ExitCode::FAILURE
    }
}

// ---------------------------------------------------------------------------
// Configuration

#[derive(Clone)]
struct Config {
    stores: Vec<String>,
    grants: Vec<String>,
    requests: usize,
    devices: usize,
    sample: usize,
    connections: usize,
}

const GRANTS: [&str; 4] = ["code", "refresh", "client_credentials", "device"];

impl Config {
    fn from_env() -> Result<Self, String> {
        let stores: Vec<String> = std::env::var("CAPACITY_STORES")
            .unwrap_or_else(|_| DEFAULT_STORES.to_owned())
            .split(|c: char| c.is_whitespace() || c == ';')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if stores.is_empty() {
            return Err("CAPACITY_STORES names no store".to_owned());
        }
        let grants: Vec<String> = match std::env::var("CAPACITY_GRANTS") {
            Ok(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Err(_) => GRANTS.iter().map(|&g| g.to_owned()).collect(),
        };
        if let Some(unknown) = grants.iter().find(|g| !GRANTS.contains(&g.as_str())) {
            return Err(format!(
                "CAPACITY_GRANTS: {unknown:?} is not one of {}",
                GRANTS.join(",")
            ));
        }
        let count = |name: &str, default: usize, low: usize, high: usize| {
            let value = std::env::var(name).map_or(Ok(default), |v| {
                v.trim()
                    .replace('_', "")
                    .parse::<usize>()
                    .map_err(|_| format!("{name}={v:?} is not a whole number"))
            })?;
            if (low..=high).contains(&value) {
                Ok(value)
            } else {
                Err(format!("{name}={value} is not in [{low}, {high}]"))
            }
        };
        Ok(Self {
            stores,
            grants,
            requests: count("CAPACITY_REQUESTS", DEFAULT_REQUESTS, 100, MAX_REQUESTS)?,
            devices: count("CAPACITY_DEVICES", DEFAULT_DEVICES, 100, MAX_REQUESTS)?,
            sample: count("CAPACITY_SAMPLE", DEFAULT_SAMPLE, 10, 10_000)?,
            connections: count(
                "CAPACITY_CONNECTIONS",
                DEFAULT_CONNECTIONS,
                1,
                MAX_CONNECTIONS,
            )?,
        })
    }

    fn wants(&self, grant: &str) -> bool {
        self.grants.iter().any(|g| g == grant)
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

/// `USER_HZ`, the unit of `/proc/PID/stat`'s times (100 on every common
/// Linux; asked of `getconf` in case).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|&ticks| ticks > 0.0)
        .unwrap_or(100.0)
}

/// The release demo binary next to this benchmark's own target directory,
/// built if it is missing.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    // target/release/deps/capacity-HASH -> target/release
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the benchmark runs from target/<profile>/deps");
    let path = profile.join("examples").join("server");
    if !path.exists() {
        println!("capacity: {} is missing; building it", path.display());
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

// ---------------------------------------------------------------------------
// Stores and their URLs

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Memory,
    Redis,
    Postgres,
}

/// A `--store` value taken apart: `scheme://[userinfo@]host:port[,host:port..][/rest]`.
#[derive(Clone, Debug)]
struct StoreSpec {
    url: String,
    backend: Backend,
    scheme: String,
    userinfo: Option<String>,
    hosts: Vec<String>,
    rest: String,
}

impl StoreSpec {
    fn parse(url: &str) -> Result<Self, String> {
        if url == "memory" {
            return Ok(Self {
                url: url.to_owned(),
                backend: Backend::Memory,
                scheme: String::new(),
                userinfo: None,
                hosts: Vec::new(),
                rest: String::new(),
            });
        }
        let (scheme, after) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not memory or a URL"))?;
        let backend = if scheme.starts_with("redis") {
            Backend::Redis
        } else if scheme.starts_with("postgres") {
            Backend::Postgres
        } else {
            return Err(format!(
                "{url:?}: the scheme is neither redis.. nor postgres.."
            ));
        };
        let split = after.find(['/', '?']).unwrap_or(after.len());
        let (authority, rest) = after.split_at(split);
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo.to_owned()), hosts),
            None => (None, authority),
        };
        let default_port = if backend == Backend::Redis {
            6379
        } else {
            5432
        };
        let hosts: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| {
                if h.rsplit_once(':')
                    .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
                {
                    h.to_owned()
                } else {
                    format!("{h}:{default_port}")
                }
            })
            .collect();
        if hosts.is_empty() {
            return Err(format!("{url:?} names no host"));
        }
        Ok(Self {
            url: url.to_owned(),
            backend,
            scheme: scheme.to_owned(),
            userinfo,
            hosts,
            rest: rest.to_owned(),
        })
    }

    /// The same URL with other hosts (the relays').
    fn with_hosts(&self, hosts: &[String]) -> String {
        if self.backend == Backend::Memory {
            return self.url.clone();
        }
        let userinfo = self
            .userinfo
            .as_ref()
            .map_or(String::new(), |u| format!("{u}@"));
        format!(
            "{}://{userinfo}{}{}",
            self.scheme,
            hosts.join(","),
            self.rest
        )
    }

    /// The URL sqlx takes for the benchmark's own connection (a scheme of
    /// `postgres` or `postgresql`, the first host).
    fn postgres_url(&self) -> String {
        let userinfo = self
            .userinfo
            .as_ref()
            .map_or(String::new(), |u| format!("{u}@"));
        format!("postgres://{userinfo}{}{}", self.hosts[0], self.rest)
    }
}

// ---------------------------------------------------------------------------
// The counting relay

/// What crossed one relay, both ways.
#[derive(Default)]
struct RelayCounters {
    /// Bytes the demo sent to the store.
    up: AtomicU64,
    /// Bytes the store sent to the demo.
    down: AtomicU64,
    /// Request-to-answer turns: the demo writing after having read.
    turns: AtomicU64,
    /// Turns that were a PostgreSQL `Sync` message alone: the pool's test of
    /// a connection before handing it out (sqlx's `test_before_acquire`).
    lone_syncs: AtomicU64,
    connections: AtomicU64,
    /// The local ports of the relay's connections to the store (PostgreSQL
    /// names its backends' clients by them).
    upstream_ports: Mutex<Vec<u16>>,
}

impl RelayCounters {
    fn read(&self) -> (u64, u64, u64, u64, u64) {
        (
            self.up.load(Ordering::Relaxed),
            self.down.load(Ordering::Relaxed),
            self.turns.load(Ordering::Relaxed),
            self.lone_syncs.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed),
        )
    }
}

/// A TCP relay on loopback in front of one store address; stopped (with
/// every connection through it) when dropped.
struct Relay {
    addr: SocketAddr,
    counters: Arc<RelayCounters>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    async fn start(upstream: String) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(RelayCounters::default());
        let shared = counters.clone();
        // The connections live in the accept task's set: aborting the task
        // drops the set, which aborts them.
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    // Out of descriptors, say: try again shortly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                while connections.try_join_next().is_some() {}
                let (upstream, counters) = (upstream.clone(), shared.clone());
                connections.spawn(async move {
                    let Ok(Ok(outbound)) =
                        timeout(CONNECT_TIMEOUT, TcpStream::connect(&upstream)).await
                    else {
                        return;
                    };
                    if let Ok(local) = outbound.local_addr() {
                        counters
                            .upstream_ports
                            .lock()
                            .expect("not poisoned")
                            .push(local.port());
                    }
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    pump(inbound, outbound, &counters).await;
                });
            }
        });
        Ok(Self {
            addr,
            counters,
            task,
        })
    }
}

/// Copies both ways until either side closes, counting bytes and turns.
async fn pump(client: TcpStream, server: TcpStream, counters: &RelayCounters) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Set by the demo's writes, cleared by the store's answers: a write
    // that finds it clear starts a turn.
    let asking = AtomicBool::new(false);
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !asking.swap(true, Ordering::Relaxed) {
                        counters.turns.fetch_add(1, Ordering::Relaxed);
                        if buf[..n] == *b"S\0\0\0\x04" {
                            counters.lone_syncs.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    counters.up.fetch_add(n as u64, Ordering::Relaxed);
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = server_write.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    asking.store(false, Ordering::Relaxed);
                    counters.down.fetch_add(n as u64, Ordering::Relaxed);
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}

// ---------------------------------------------------------------------------
// A small Redis client: INFO, MEMORY USAGE, HGET and the clean-up's UNLINK,
// straight to each server (not through the relay).

#[derive(Debug)]
enum Resp {
    Nil,
    Int(i64),
    Text(Vec<u8>),
    Error(String),
    /// An array, read whole; its items are not needed here.
    Array,
}

impl Resp {
    fn text(&self) -> Option<String> {
        match self {
            Self::Text(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

struct RedisConn {
    reader: tokio::io::BufReader<TcpStream>,
}

impl RedisConn {
    async fn open(addr: &str) -> io::Result<Self> {
        let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: tokio::io::BufReader::new(stream),
        })
    }

    fn encode(args: &[&str], into: &mut Vec<u8>) {
        into.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            into.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            into.extend_from_slice(arg.as_bytes());
            into.extend_from_slice(b"\r\n");
        }
    }

    /// Sends every command, then reads every answer (a pipeline).
    async fn pipeline(&mut self, commands: &[Vec<&str>]) -> io::Result<Vec<Resp>> {
        let mut out = Vec::new();
        for command in commands {
            Self::encode(command, &mut out);
        }
        timeout(REQUEST_TIMEOUT, async {
            self.reader.get_mut().write_all(&out).await?;
            let mut answers = Vec::with_capacity(commands.len());
            for _ in commands {
                answers.push(self.read().await?);
            }
            Ok(answers)
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "Redis did not answer in time"))?
    }

    async fn command(&mut self, args: &[&str]) -> io::Result<Resp> {
        let mut answers = self.pipeline(&[args.to_vec()]).await?;
        Ok(answers.pop().unwrap_or(Resp::Nil))
    }

    async fn info(&mut self, section: &str) -> io::Result<HashMap<String, String>> {
        let text = match self.command(&["INFO", section]).await? {
            Resp::Text(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Resp::Error(error) => return Err(io::Error::other(error)),
            other => return Err(io::Error::other(format!("INFO answered {other:?}"))),
        };
        Ok(text
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect())
    }

    async fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).await?;
        if !line.ends_with(b"\r\n") {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "Redis closed the connection",
            ));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    fn read(&mut self) -> std::pin::Pin<Box<dyn Future<Output = io::Result<Resp>> + Send + '_>> {
        Box::pin(async move {
            let line = self.line().await?;
            let (kind, rest) = line
                .split_first()
                .ok_or_else(|| invalid("empty RESP line"))?;
            let rest = String::from_utf8_lossy(rest).into_owned();
            let number = || rest.parse::<i64>().map_err(|_| invalid("bad RESP length"));
            Ok(match kind {
                b'+' => Resp::Text(rest.into_bytes()),
                b'-' => Resp::Error(rest),
                b':' => Resp::Int(number()?),
                b'$' => {
                    let len = number()?;
                    if len < 0 {
                        Resp::Nil
                    } else {
                        let mut data = vec![0u8; usize::try_from(len).unwrap_or(0) + 2];
                        self.reader.read_exact(&mut data).await?;
                        data.truncate(data.len() - 2);
                        Resp::Text(data)
                    }
                }
                b'*' => {
                    let len = number()?;
                    if len < 0 {
                        Resp::Nil
                    } else {
                        for _ in 0..len {
                            self.read().await?;
                        }
                        Resp::Array
                    }
                }
                _ => return Err(invalid("unknown RESP type")),
            })
        })
    }
}

/// The Redis servers of a store URL, and those a Cluster redirects to.
struct RedisNodes {
    seeds: Vec<String>,
    conns: HashMap<String, RedisConn>,
}

impl RedisNodes {
    async fn open(seeds: &[String]) -> io::Result<Self> {
        let mut conns = HashMap::new();
        for seed in seeds {
            conns.insert(seed.clone(), RedisConn::open(seed).await?);
        }
        Ok(Self {
            seeds: seeds.to_vec(),
            conns,
        })
    }

    async fn conn(&mut self, addr: &str) -> io::Result<&mut RedisConn> {
        if !self.conns.contains_key(addr) {
            let conn = RedisConn::open(addr).await?;
            self.conns.insert(addr.to_owned(), conn);
        }
        Ok(self.conns.get_mut(addr).expect("just inserted"))
    }

    /// Commands about one key each, pipelined to the first seed; those a
    /// Cluster answers `MOVED` are sent again to the node it names.
    async fn keyed(&mut self, commands: &[Vec<&str>]) -> io::Result<Vec<Resp>> {
        let first = self.seeds[0].clone();
        let mut answers = Vec::with_capacity(commands.len());
        for chunk in commands.chunks(1000) {
            answers.extend(self.conn(&first).await?.pipeline(chunk).await?);
        }
        for (i, answer) in answers.iter_mut().enumerate() {
            let moved = match answer {
                Resp::Error(error) if error.starts_with("MOVED ") => {
                    error.split_whitespace().nth(2).map(str::to_owned)
                }
                _ => None,
            };
            if let Some(node) = moved {
                *answer = self.conn(&node).await?.command(&commands[i]).await?;
            }
        }
        Ok(answers)
    }

    /// One `INFO` section of every seed.
    async fn info(&mut self, section: &str) -> io::Result<Vec<HashMap<String, String>>> {
        let mut all = Vec::new();
        for seed in self.seeds.clone() {
            all.push(self.conn(&seed).await?.info(section).await?);
        }
        Ok(all)
    }
}

fn redis_key(kind: &str, id: &str) -> String {
    format!("{REDIS_PREFIX}:{kind}:{id}")
}

fn code_hex(value: &str) -> String {
    CodeKey::of(value).to_hex()
}

// ---------------------------------------------------------------------------
// /proc

/// `utime + stime` and `cutime + cstime` of a process, in clock ticks, and
/// its command name.
fn proc_times(pid: u32) -> Option<(u64, u64, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    // Fields after the command: state (3), ppid (4), ..., utime (14),
    // stime (15), cutime (16), cstime (17).
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some((field(14)? + field(15)?, field(16)? + field(17)?, comm))
}

/// The nanoseconds on CPU of every thread of a process (`schedstat`).
fn sched_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Resident set size in bytes.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Every local `postgres` process: pid -> ticks of its own and of the
/// children it reaped (backends gone since are in the postmaster's).
fn postgres_processes() -> HashMap<u32, u64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (own, children, comm) = proc_times(pid)?;
            (comm == "postgres").then_some((pid, own + children))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The demo server

/// A running demo server, killed when dropped.
struct Server {
    child: Child,
    addr: String,
    pid: u32,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(binary: &PathBuf, store: &str) -> Self {
        let child = Command::new(binary)
            .args(["--addr", "127.0.0.1:0", "--dialect", "rfc6749"])
            .args(["--store", store])
            // A caller's RUST_LOG=debug would turn the run into a logging
            // benchmark.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the demo server starts");
        let pid = child.id();
        // Owned by the guard at once, so every path below kills it.
        let mut server = Self {
            child,
            addr: String::new(),
            pid,
        };
        let stderr = server.child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[demo] {line}");
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
                    "the demo did not print `listening on` within {START_TIMEOUT:?} (exit: {status:?})"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP/1.1 client

/// One answer, read whole.
struct Reply {
    status: u16,
    close: bool,
    location: Option<String>,
    cookie: Option<String>,
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
        let status = lines
            .next()
            .and_then(|line| line.strip_prefix("HTTP/1.1 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid("bad status line"))?;
        let (mut length, mut close, mut location, mut cookie) = (None, false, None, None);
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
                return Err(invalid("a chunked answer: the demo sends none"));
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("location") {
                location = Some(value.to_owned());
            } else if name.eq_ignore_ascii_case("set-cookie") {
                cookie = value.split(';').next().map(str::to_owned);
            }
        }
        self.buf.drain(..head_end);
        let length = length.unwrap_or(0);
        if length > MAX_BODY {
            return Err(invalid("response body too long"));
        }
        while self.buf.len() < length {
            self.fill().await?;
        }
        let body = self.buf.drain(..length).collect();
        Ok(Reply {
            status,
            close,
            location,
            cookie,
            body,
        })
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

/// The request bytes for one demo server.
struct Requests {
    host: String,
}

impl Requests {
    fn authorize(&self) -> Vec<u8> {
        format!(
            "GET /login/oauth/authorize?response_type=code&client_id={CLIENT_ID}&redirect_uri={REDIRECT}&state=st&scope=repo&code_challenge={CHALLENGE}&code_challenge_method=S256 HTTP/1.1\r\nHost: {}\r\n\r\n",
            self.host
        )
        .into_bytes()
    }

    fn post(&self, path: &str, body: &str, cookie: Option<&str>) -> Vec<u8> {
        let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\n{cookie}Content-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        )
        .into_bytes()
    }

    fn exchange(&self, code: &str) -> Vec<u8> {
        self.post(
            TOKEN_PATH,
            &format!(
                "grant_type=authorization_code&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&code={code}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}"
            ),
            None,
        )
    }

    fn refresh(&self, token: &str) -> Vec<u8> {
        self.post(
            TOKEN_PATH,
            &format!(
                "grant_type=refresh_token&refresh_token={token}&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
            ),
            None,
        )
    }

    fn client_credentials(&self) -> Vec<u8> {
        self.post(
            TOKEN_PATH,
            &format!(
                "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&scope=repo"
            ),
            None,
        )
    }

    fn device_authorization(&self) -> Vec<u8> {
        self.post(
            DEVICE_PATH,
            &format!("client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&scope=repo"),
            None,
        )
    }

    fn device_poll(&self, device_code: &str) -> Vec<u8> {
        self.post(
            TOKEN_PATH,
            &format!(
                "grant_type={DEVICE_GRANT}&device_code={device_code}&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
            ),
            None,
        )
    }
}

/// Opens `n` connections to `addr`.
async fn connect(addr: &str, n: usize) -> Vec<Conn> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::open(addr).await.expect("connect to the demo"));
    }
    conns
}

/// Sends every request once over `conns`, each connection taking the next
/// one as it is free; the answers in the requests' order, and the time
/// taken.
async fn run_on(
    addr: &str,
    conns: Vec<Conn>,
    requests: Arc<Vec<Vec<u8>>>,
) -> (Vec<Result<Reply, String>>, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(conns.len());
    for mut conn in conns {
        let (next, requests, addr) = (next.clone(), requests.clone(), addr.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(i) else {
                    break;
                };
                let (answer, reconnect) = match conn.send(request).await {
                    Ok(reply) => {
                        let close = reply.close;
                        (Ok(reply), close)
                    }
                    Err(error) => (Err(error.to_string()), true),
                };
                out.push((i, answer));
                if reconnect {
                    match Conn::open(&addr).await {
                        Ok(fresh) => conn = fresh,
                        Err(_) => break,
                    }
                }
            }
            out
        }));
    }
    let mut all: Vec<Option<Result<Reply, String>>> = (0..requests.len()).map(|_| None).collect();
    for task in tasks {
        for (i, answer) in task.await.expect("a load task") {
            all[i] = Some(answer);
        }
    }
    let elapsed = started.elapsed();
    let answers = all
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err("never sent: no connection left".to_owned())))
        .collect();
    (answers, elapsed)
}

/// Sends every request, unmeasured (preparation).
async fn prepare(
    addr: &str,
    requests: Vec<Vec<u8>>,
    connections: usize,
) -> Vec<Result<Reply, String>> {
    let n = connections.min(requests.len()).max(1);
    let conns = connect(addr, n).await;
    run_on(addr, conns, Arc::new(requests)).await.0
}

// ---------------------------------------------------------------------------
// Measurements

/// Everything read around a measured run.
struct Probe {
    demo_pid: u32,
    clk_tck: f64,
    relays: Vec<Arc<RelayCounters>>,
    redis: Option<RedisNodes>,
    pg: Option<sqlx::PgPool>,
}

#[derive(Default, Clone)]
struct Snapshot {
    gate_ticks: u64,
    gate_ns: u64,
    up: u64,
    down: u64,
    turns: u64,
    lone_syncs: u64,
    connections: u64,
    /// Redis: `used_cpu_user + used_cpu_sys`, and the main thread's.
    redis_cpu: Option<(f64, f64)>,
    /// Redis: command -> (calls, usec).
    redis_commands: BTreeMap<String, (u64, u64)>,
    /// Redis: `total_net_input_bytes`, `total_net_output_bytes`.
    redis_net: Option<(u64, u64)>,
    /// PostgreSQL: pid -> ticks of every local `postgres` process.
    pg_procs: HashMap<u32, u64>,
    pg_wal: Option<u64>,
}

/// What one measured run cost, per request.
#[derive(Default, Clone)]
struct Cost {
    requests: usize,
    wall: Duration,
    gate_us: f64,
    gate_sched_us: f64,
    /// Redis: the whole server's CPU; PostgreSQL: the demo's backends'.
    store_us: Option<f64>,
    /// Redis: the main thread's; PostgreSQL: every postgres process's.
    store_other_us: Option<f64>,
    up: f64,
    down: f64,
    turns: f64,
    lone_syncs: f64,
    connections: u64,
    /// Redis: command -> (calls per request, usec per request).
    commands: Vec<(String, f64, f64)>,
    redis_net: Option<(f64, f64)>,
    wal: Option<f64>,
}

impl Probe {
    async fn snapshot(&mut self) -> Snapshot {
        let mut snap = Snapshot::default();
        if let Some(pg) = &self.pg {
            snap.pg_wal = pg_wal(pg).await;
            snap.pg_procs = postgres_processes();
        }
        if let Some(redis) = &mut self.redis {
            snap.redis_cpu = redis_cpu(redis).await;
            snap.redis_commands = redis_commands(redis).await;
            snap.redis_net = redis_net(redis).await;
        }
        for relay in &self.relays {
            let (up, down, turns, syncs, connections) = relay.read();
            snap.up += up;
            snap.down += down;
            snap.turns += turns;
            snap.lone_syncs += syncs;
            snap.connections += connections;
        }
        snap.gate_ticks = proc_times(self.demo_pid).map_or(0, |(own, _, _)| own);
        snap.gate_ns = sched_ns(self.demo_pid);
        snap
    }

    /// The snapshot after a run: read in the opposite order, so the run's
    /// own work is inside both pairs of reads.
    async fn snapshot_after(&mut self) -> Snapshot {
        let gate_ticks = proc_times(self.demo_pid).map_or(0, |(own, _, _)| own);
        let gate_ns = sched_ns(self.demo_pid);
        let mut snap = Snapshot {
            gate_ticks,
            gate_ns,
            ..Snapshot::default()
        };
        for relay in &self.relays {
            let (up, down, turns, syncs, connections) = relay.read();
            snap.up += up;
            snap.down += down;
            snap.turns += turns;
            snap.lone_syncs += syncs;
            snap.connections += connections;
        }
        if let Some(redis) = &mut self.redis {
            snap.redis_cpu = redis_cpu(redis).await;
            snap.redis_commands = redis_commands(redis).await;
            snap.redis_net = redis_net(redis).await;
        }
        if let Some(pg) = &self.pg {
            snap.pg_procs = postgres_processes();
            snap.pg_wal = pg_wal(pg).await;
        }
        snap
    }

    /// The cost per request of `n` requests between `before` and `after`.
    async fn cost(&self, before: &Snapshot, after: &Snapshot, n: usize, wall: Duration) -> Cost {
        let per = |delta: f64| delta / n as f64;
        let mut cost = Cost {
            requests: n,
            wall,
            gate_us: per((after.gate_ticks - before.gate_ticks) as f64 / self.clk_tck * 1e6),
            gate_sched_us: per((after.gate_ns - before.gate_ns) as f64 / 1e3),
            up: per((after.up - before.up) as f64),
            down: per((after.down - before.down) as f64),
            turns: per((after.turns - before.turns) as f64),
            lone_syncs: per((after.lone_syncs - before.lone_syncs) as f64),
            connections: after.connections,
            ..Cost::default()
        };
        if let (Some(b), Some(a)) = (before.redis_cpu, after.redis_cpu) {
            cost.store_us = Some(per((a.0 - b.0) * 1e6));
            cost.store_other_us = Some(per((a.1 - b.1) * 1e6));
            cost.commands = after
                .redis_commands
                .iter()
                .filter_map(|(name, &(calls, usec))| {
                    let (calls0, usec0) =
                        before.redis_commands.get(name).copied().unwrap_or((0, 0));
                    (calls > calls0).then(|| {
                        (
                            name.clone(),
                            per((calls - calls0) as f64),
                            per((usec - usec0) as f64),
                        )
                    })
                })
                .collect();
        }
        if let (Some(b), Some(a)) = (before.redis_net, after.redis_net) {
            cost.redis_net = Some((per((a.0 - b.0) as f64), per((a.1 - b.1) as f64)));
        }
        if let (Some(b), Some(a)) = (before.pg_wal, after.pg_wal) {
            cost.wal = Some(per(a.saturating_sub(b) as f64));
        }
        if let Some(pg) = &self.pg
            && !after.pg_procs.is_empty()
        {
            let ticks_us = |ticks: u64| ticks as f64 / self.clk_tck * 1e6;
            let backends = demo_backends(pg, &self.relays).await;
            let delta = |pid: &u32| {
                after.pg_procs.get(pid).copied().unwrap_or(0)
                    - before
                        .pg_procs
                        .get(pid)
                        .copied()
                        .unwrap_or(0)
                        .min(after.pg_procs.get(pid).copied().unwrap_or(0))
            };
            let demo: u64 = backends.iter().map(delta).sum();
            let all: u64 = after.pg_procs.values().sum::<u64>().saturating_sub(
                before
                    .pg_procs
                    .iter()
                    .filter(|(pid, _)| after.pg_procs.contains_key(pid))
                    .map(|(_, t)| t)
                    .sum::<u64>(),
            );
            cost.store_us = Some(per(ticks_us(demo)));
            cost.store_other_us = Some(per(ticks_us(all)));
        }
        cost
    }
}

async fn redis_cpu(redis: &mut RedisNodes) -> Option<(f64, f64)> {
    let infos = redis.info("cpu").await.ok()?;
    let mut total = (0.0, 0.0);
    for info in infos {
        let get = |k: &str| info.get(k).and_then(|v| v.parse::<f64>().ok());
        total.0 += get("used_cpu_user")? + get("used_cpu_sys")?;
        total.1 += get("used_cpu_user_main_thread").unwrap_or(0.0)
            + get("used_cpu_sys_main_thread").unwrap_or(0.0);
    }
    Some(total)
}

async fn redis_commands(redis: &mut RedisNodes) -> BTreeMap<String, (u64, u64)> {
    let mut all = BTreeMap::new();
    let Ok(infos) = redis.info("commandstats").await else {
        return all;
    };
    for info in infos {
        for (key, value) in info {
            let Some(name) = key.strip_prefix("cmdstat_") else {
                continue;
            };
            let field = |f: &str| {
                value
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(f)?.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let entry = all.entry(name.to_owned()).or_insert((0, 0));
            entry.0 += field("calls=");
            entry.1 += field("usec=");
        }
    }
    all
}

async fn redis_net(redis: &mut RedisNodes) -> Option<(u64, u64)> {
    let infos = redis.info("stats").await.ok()?;
    let mut total = (0, 0);
    for info in infos {
        let get = |k: &str| info.get(k).and_then(|v| v.parse::<u64>().ok());
        total.0 += get("total_net_input_bytes")?;
        total.1 += get("total_net_output_bytes")?;
    }
    Some(total)
}

async fn redis_used_memory(redis: &mut RedisNodes) -> Option<u64> {
    let infos = redis.info("memory").await.ok()?;
    infos
        .iter()
        .map(|info| info.get("used_memory").and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

async fn pg_wal(pg: &sqlx::PgPool) -> Option<u64> {
    sqlx::query_scalar::<_, i64>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
        .fetch_one(pg)
        .await
        .ok()
        .and_then(|lsn| u64::try_from(lsn).ok())
}

/// The backends whose clients are the relay's connections: the demo's.
async fn demo_backends(pg: &sqlx::PgPool, relays: &[Arc<RelayCounters>]) -> Vec<u32> {
    let ports: Vec<i32> = relays
        .iter()
        .flat_map(|r| {
            r.upstream_ports
                .lock()
                .expect("not poisoned")
                .iter()
                .map(|&p| i32::from(p))
                .collect::<Vec<_>>()
        })
        .collect();
    sqlx::query_scalar::<_, i32>("SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1)")
        .bind(&ports)
        .fetch_all(pg)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| u32::try_from(pid).ok())
        .collect()
}

/// Sizes of the store's tables, or of the whole Redis data set, or of the
/// demo's resident set.
#[derive(Default, Clone)]
struct MemSnap {
    rss: Option<u64>,
    redis_used: Option<u64>,
    /// Table -> (heap, indexes), bytes.
    pg: BTreeMap<String, (i64, i64)>,
}

async fn mem_snapshot(probe: &mut Probe) -> MemSnap {
    let mut snap = MemSnap {
        rss: rss_bytes(probe.demo_pid),
        ..MemSnap::default()
    };
    if let Some(redis) = &mut probe.redis {
        snap.redis_used = redis_used_memory(redis).await;
    }
    if let Some(pg) = &probe.pg {
        snap.pg = pg_sizes(pg).await;
    }
    snap
}

async fn pg_sizes(pg: &sqlx::PgPool) -> BTreeMap<String, (i64, i64)> {
    let tables: Vec<String> = PG_TABLES.iter().map(|&t| t.to_owned()).collect();
    sqlx::query(
        "SELECT c.relname::text, pg_relation_size(c.oid) + COALESCE(pg_relation_size(c.reltoastrelid), 0), pg_indexes_size(c.oid)
         FROM pg_class c WHERE c.relname = ANY($1) AND c.relkind = 'r' AND pg_table_is_visible(c.oid)",
    )
    .bind(&tables)
    .fetch_all(pg)
    .await
    .unwrap_or_default()
    .iter()
    .filter_map(|row| Some((row.try_get(0).ok()?, (row.try_get(1).ok()?, row.try_get(2).ok()?))))
    .collect()
}

/// One step's growth of the store, per value.
struct MemStep {
    label: &'static str,
    values: usize,
    before: MemSnap,
    after: MemSnap,
}

impl MemStep {
    fn rss(&self) -> Option<f64> {
        Some((self.after.rss? as f64 - self.before.rss? as f64) / self.values as f64)
    }

    fn redis(&self) -> Option<f64> {
        Some((self.after.redis_used? as f64 - self.before.redis_used? as f64) / self.values as f64)
    }

    /// (heap, indexes) bytes per value, over every `tokengate_*` table.
    fn pg(&self) -> Option<(f64, f64)> {
        if self.after.pg.is_empty() {
            return None;
        }
        let (mut heap, mut index) = (0i64, 0i64);
        for (table, (h, i)) in &self.after.pg {
            let (h0, i0) = self.before.pg.get(table).copied().unwrap_or((0, 0));
            heap += h - h0;
            index += i - i0;
        }
        Some((
            heap as f64 / self.values as f64,
            index as f64 / self.values as f64,
        ))
    }
}

// ---------------------------------------------------------------------------
// A run on one store

/// What a run put in a shared store, for the clean-up.
#[derive(Default)]
struct Created {
    codes: Vec<String>,
    refresh: Vec<String>,
    devices: Vec<(String, String)>,
}

struct GrantRun {
    grant: &'static str,
    sample: Cost,
    window: Cost,
}

struct StoreReport {
    url: String,
    backend: Backend,
    grants: Vec<GrantRun>,
    memory: Vec<MemStep>,
    /// Redis `MEMORY USAGE`: (kind of key, mean bytes, keys sampled).
    key_sizes: Vec<(String, f64, usize)>,
    /// PostgreSQL: (table and rows, mean `pg_column_size` of a row, rows).
    row_widths: Vec<(String, f64, i64)>,
    /// PostgreSQL after `VACUUM`: (table, live rows, dead rows, heap, indexes).
    vacuumed: Vec<(String, i64, i64, i64, i64)>,
    failures: Vec<String>,
    load: String,
}

/// Checks answers that must each be `200` with one access token (and a
/// refresh token when `refresh`), all distinct across the run; returns the
/// refresh tokens (empty where none is due).
fn check(
    what: &str,
    answers: &[Result<Reply, String>],
    refresh: bool,
    seen: &mut HashSet<String>,
    failures: &mut Vec<String>,
) -> Vec<String> {
    let mut wrong = 0usize;
    let mut samples = Vec::new();
    let mut tokens = Vec::with_capacity(answers.len());
    for answer in answers {
        let problem = match answer {
            Err(error) => Some(format!("no answer: {error}")),
            Ok(reply) => {
                let access = json_string(&reply.body, "access_token");
                let next = json_string(&reply.body, "refresh_token");
                if reply.status != 200
                    || count(&reply.body, b"\"access_token\":") != 1
                    || access.is_none_or(str::is_empty)
                {
                    Some(format!(
                        "{} {}",
                        reply.status,
                        String::from_utf8_lossy(&reply.body)
                    ))
                } else if refresh && next.is_none_or(str::is_empty) {
                    Some(format!(
                        "no refresh token: {}",
                        String::from_utf8_lossy(&reply.body)
                    ))
                } else if !seen.insert(access.unwrap_or_default().to_owned())
                    || next.is_some_and(|t| !seen.insert(t.to_owned()))
                {
                    Some("a token given twice".to_owned())
                } else {
                    if let Some(next) = next {
                        tokens.push(next.to_owned());
                    }
                    None
                }
            }
        };
        if let Some(problem) = problem {
            wrong += 1;
            if samples.len() < MAX_SAMPLES {
                samples.push(problem);
            }
        }
    }
    if wrong > 0 {
        failures.push(format!(
            "{what}: {wrong} of {} answers wrong",
            answers.len()
        ));
        failures.extend(samples.into_iter().map(|s| format!("{what}: e.g. {s}")));
    }
    tokens
}

/// The codes of authorize answers (`302` to the redirect URI with `code`).
fn codes_of(answers: Vec<Result<Reply, String>>, failures: &mut Vec<String>) -> Vec<String> {
    let mut codes = Vec::with_capacity(answers.len());
    for answer in answers {
        let code = answer.ok().filter(|r| r.status == 302).and_then(|r| {
            let location = r.location?;
            let query = location.split_once('?')?.1.to_owned();
            form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "code")
                .map(|(_, code)| code.into_owned())
        });
        match code {
            Some(code) => codes.push(code),
            None => {
                failures.push("authorize: an answer without a code".to_owned());
            }
        }
    }
    codes
}

/// Device authorizations: (device code, user code) of each answer.
fn devices_of(
    answers: Vec<Result<Reply, String>>,
    failures: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut devices = Vec::with_capacity(answers.len());
    for answer in answers {
        let pair = answer.ok().filter(|r| r.status == 200).and_then(|r| {
            Some((
                json_string(&r.body, "device_code")?.to_owned(),
                json_string(&r.body, "user_code")?.to_owned(),
            ))
        });
        match pair {
            Some(pair) => devices.push(pair),
            None => failures.push("device authorization: an answer without codes".to_owned()),
        }
    }
    devices
}

/// Approves each user code on the demo's device page, as a browser would:
/// the page's session cookie, the code typed (answered with the
/// confirmation page and its token), then the decision with that token.
async fn approve_devices(
    addr: &str,
    requests: &Requests,
    user_codes: &[String],
    connections: usize,
) -> Result<(), String> {
    let mut conn = Conn::open(addr).await.map_err(|e| e.to_string())?;
    let page = format!(
        "GET {DEVICE_PAGE} HTTP/1.1\r\nHost: {}\r\n\r\n",
        requests.host
    );
    let reply = conn
        .send(page.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let cookie = reply
        .cookie
        .ok_or("the device page set no session cookie")?;
    let next = Arc::new(AtomicUsize::new(0));
    let codes = Arc::new(user_codes.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..connections.min(user_codes.len()).max(1) {
        let (next, codes, cookie, addr) =
            (next.clone(), codes.clone(), cookie.clone(), addr.to_owned());
        let requests = Requests {
            host: requests.host.clone(),
        };
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr).await.map_err(|e| e.to_string())?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(user_code) = codes.get(i) else {
                    return Ok::<(), String>(());
                };
                let typed = requests.post(
                    DEVICE_PAGE,
                    &format!("user_code={user_code}"),
                    Some(&cookie),
                );
                let page = conn.send(&typed).await.map_err(|e| e.to_string())?;
                let confirm = find(&page.body, b"name=\"confirm\" value=\"")
                    .and_then(|at| {
                        let start = at + b"name=\"confirm\" value=\"".len();
                        let len = page.body[start..].iter().position(|&b| b == b'"')?;
                        std::str::from_utf8(&page.body[start..start + len]).ok()
                    })
                    .ok_or_else(|| {
                        format!(
                            "device page for {user_code}: {} without a confirmation token",
                            page.status
                        )
                    })?
                    .to_owned();
                let decide = requests.post(
                    DEVICE_PAGE,
                    &format!("user_code={user_code}&confirm={confirm}&decision=approve"),
                    Some(&cookie),
                );
                let done = conn.send(&decide).await.map_err(|e| e.to_string())?;
                if done.status != 200 {
                    return Err(format!("approving {user_code}: {}", done.status));
                }
                if page.close || done.close {
                    conn = Conn::open(&addr).await.map_err(|e| e.to_string())?;
                }
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// A grant measured twice: `sample` requests on one connection, one at a
/// time, then the rest on `connections`.
async fn measure(
    probe: &mut Probe,
    addr: &str,
    requests: Vec<Vec<u8>>,
    sample: usize,
    connections: usize,
) -> (Vec<Result<Reply, String>>, Cost, Cost) {
    let mut requests = requests;
    let rest = requests.split_off(sample.min(requests.len()));
    let conns = connect(addr, 1).await;
    let before = probe.snapshot().await;
    let (mut answers, wall) = run_on(addr, conns, Arc::new(requests)).await;
    let after = probe.snapshot_after().await;
    let sampled = probe.cost(&before, &after, answers.len(), wall).await;
    let conns = connect(addr, connections.min(rest.len()).max(1)).await;
    let n = rest.len();
    let before = probe.snapshot().await;
    let (more, wall) = run_on(addr, conns, Arc::new(rest)).await;
    let after = probe.snapshot_after().await;
    let window = probe.cost(&before, &after, n, wall).await;
    answers.extend(more);
    (answers, sampled, window)
}

fn print_cost(grant: &str, label: &str, cost: &Cost) {
    let store = match (cost.store_us, cost.store_other_us) {
        (Some(a), Some(b)) => format!(", store {a:.1} us CPU/request ({b:.1})"),
        _ => String::new(),
    };
    println!(
        "  {grant:<18} {label:<6} {:>6} requests in {:>6.2} s ({:>6.0}/s wall): gate {:.1} us CPU/request (schedstat {:.1}){store}; to store {:.0} B, from store {:.0} B, {:.2} turns per request ({:.2} a lone Sync; {} store connections)",
        cost.requests,
        cost.wall.as_secs_f64(),
        cost.requests as f64 / cost.wall.as_secs_f64().max(1e-9),
        cost.gate_us,
        cost.gate_sched_us,
        cost.up,
        cost.down,
        cost.turns,
        cost.lone_syncs,
        cost.connections,
    );
    if !cost.commands.is_empty() {
        println!(
            "  {grant:<18} {label:<6} Redis commands per request: {}",
            cost.commands
                .iter()
                .map(|(name, calls, usec)| format!("{name} {calls:.2} ({usec:.1} us)"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some((input, output)) = cost.redis_net {
        println!(
            "  {grant:<18} {label:<6} Redis's own count: {input:.0} B in, {output:.0} B out per request (every client's)"
        );
    }
    if let Some(wal) = cost.wal {
        println!("  {grant:<18} {label:<6} WAL {wal:.0} B per request (the whole server's)");
    }
}

async fn run_store(
    spec: &StoreSpec,
    config: &Config,
    binary: &PathBuf,
    clk_tck: f64,
    created: &Mutex<Created>,
) -> StoreReport {
    let mut failures = Vec::new();
    let mut relays = Vec::new();
    for host in &spec.hosts {
        relays.push(
            Relay::start(host.clone())
                .await
                .expect("a relay on loopback"),
        );
    }
    let relayed: Vec<String> = relays.iter().map(|r| r.addr.to_string()).collect();
    if spec.scheme.contains("cluster") {
        println!(
            "note: a Redis Cluster's nodes announce their own addresses: the relays count only what reaches the listed ones, and INFO is read from those (list every master)"
        );
    }
    let demo_store = spec.with_hosts(&relayed);
    let redis = if spec.backend == Backend::Redis {
        Some(
            RedisNodes::open(&spec.hosts)
                .await
                .expect("Redis answers at the store's address"),
        )
    } else {
        None
    };
    let pg = if spec.backend == Backend::Postgres {
        Some(
            PgPoolOptions::new()
                .max_connections(1)
                .connect(&spec.postgres_url())
                .await
                .expect("PostgreSQL answers at the store's address"),
        )
    } else {
        None
    };
    // Waiting for the banner blocks: the relays' tasks move to the other
    // workers meanwhile (the demo registers its client through them).
    let server = tokio::task::block_in_place(|| Server::start(binary, &demo_store));
    println!(
        "demo pid {} at http://{} with --store {demo_store}",
        server.pid, server.addr
    );
    let addr = server.addr.clone();
    let requests = Requests { host: addr.clone() };
    let mut probe = Probe {
        demo_pid: server.pid,
        clk_tck,
        relays: relays.iter().map(|r| r.counters.clone()).collect(),
        redis,
        pg,
    };
    let (n, s, c) = (config.requests, config.sample, config.connections);
    let mut seen = HashSet::new();
    let mut grants = Vec::new();
    let mut memory = Vec::new();
    let mut key_sizes = Vec::new();

    // Warm-up, unmeasured: every pooled store connection opened, scripts
    // loaded, statements prepared.
    {
        let mut warm = Vec::new();
        let codes = codes_of(
            prepare(&addr, vec![requests.authorize(); WARMUP], c).await,
            &mut warm,
        );
        created
            .lock()
            .expect("not poisoned")
            .codes
            .extend(codes.iter().cloned());
        let answers = prepare(
            &addr,
            codes.iter().map(|k| requests.exchange(k)).collect(),
            c,
        )
        .await;
        let tokens = check("warm-up exchange", &answers, true, &mut seen, &mut warm);
        created
            .lock()
            .expect("not poisoned")
            .refresh
            .extend(tokens.iter().cloned());
        let answers = prepare(
            &addr,
            tokens.iter().map(|t| requests.refresh(t)).collect(),
            c,
        )
        .await;
        let tokens = check("warm-up refresh", &answers, true, &mut seen, &mut warm);
        created.lock().expect("not poisoned").refresh.extend(tokens);
        let answers = prepare(&addr, vec![requests.client_credentials(); WARMUP], c).await;
        check(
            "warm-up client credentials",
            &answers,
            false,
            &mut seen,
            &mut warm,
        );
        if config.wants("device") {
            let devices = devices_of(
                prepare(
                    &addr,
                    vec![requests.device_authorization(); WARMUP_DEVICES],
                    c,
                )
                .await,
                &mut warm,
            );
            created
                .lock()
                .expect("not poisoned")
                .devices
                .extend(devices.iter().cloned());
            let users: Vec<String> = devices.iter().map(|(_, u)| u.clone()).collect();
            if let Err(error) = approve_devices(&addr, &requests, &users, c).await {
                warm.push(format!("warm-up device approval: {error}"));
            }
            let answers = prepare(
                &addr,
                devices
                    .iter()
                    .map(|(d, _)| requests.device_poll(d))
                    .collect(),
                c,
            )
            .await;
            let tokens = check("warm-up device poll", &answers, true, &mut seen, &mut warm);
            created.lock().expect("not poisoned").refresh.extend(tokens);
        }
        failures.extend(warm);
    }

    let mut fresh_tokens = Vec::new();
    if config.wants("code") || config.wants("refresh") {
        // Codes, minted before the window.
        let before = mem_snapshot(&mut probe).await;
        let codes = codes_of(
            prepare(&addr, vec![requests.authorize(); n + s], c).await,
            &mut failures,
        );
        created
            .lock()
            .expect("not poisoned")
            .codes
            .extend(codes.iter().cloned());
        let after = mem_snapshot(&mut probe).await;
        memory.push(MemStep {
            label: "live code (minted)",
            values: codes.len().max(1),
            before,
            after: after.clone(),
        });
        if let Some(redis) = &mut probe.redis {
            let keys: Vec<String> = codes
                .iter()
                .take(KEY_SAMPLE)
                .map(|k| redis_key("code", &code_hex(k)))
                .collect();
            key_sizes.push(key_size(redis, "code, live", &keys).await);
        }

        // The exchanges.
        let (answers, sample, window) = measure(
            &mut probe,
            &addr,
            codes.iter().map(|k| requests.exchange(k)).collect(),
            s,
            c,
        )
        .await;
        let tokens = check("code exchange", &answers, true, &mut seen, &mut failures);
        created
            .lock()
            .expect("not poisoned")
            .refresh
            .extend(tokens.iter().cloned());
        print_cost("code", "sample", &sample);
        print_cost("code", "window", &window);
        grants.push(GrantRun {
            grant: "authorization_code",
            sample,
            window,
        });
        let after_exchange = mem_snapshot(&mut probe).await;
        memory.push(MemStep {
            label: "exchange (refresh token + used code)",
            values: answers.len().max(1),
            before: after,
            after: after_exchange.clone(),
        });
        if let Some(redis) = &mut probe.redis {
            let used: Vec<String> = codes
                .iter()
                .take(KEY_SAMPLE)
                .map(|k| redis_key("code", &code_hex(k)))
                .collect();
            key_sizes.push(key_size(redis, "code, used (replay marker)", &used).await);
            let live: Vec<String> = tokens
                .iter()
                .take(KEY_SAMPLE)
                .map(|t| redis_key("refresh", &code_hex(t)))
                .collect();
            key_sizes.push(key_size(redis, "refresh token, live", &live).await);
            let families = redis_families(redis, &live).await;
            key_sizes.push(key_size(redis, "family set, one member", &families).await);
        }

        if config.wants("refresh") {
            let (answers, sample, window) = measure(
                &mut probe,
                &addr,
                tokens.iter().map(|t| requests.refresh(t)).collect(),
                s,
                c,
            )
            .await;
            let next = check("refresh", &answers, true, &mut seen, &mut failures);
            created
                .lock()
                .expect("not poisoned")
                .refresh
                .extend(next.iter().cloned());
            print_cost("refresh", "sample", &sample);
            print_cost("refresh", "window", &window);
            grants.push(GrantRun {
                grant: "refresh_token",
                sample,
                window,
            });
            let after_refresh = mem_snapshot(&mut probe).await;
            memory.push(MemStep {
                label: "rotation (new refresh token + rotated marker)",
                values: answers.len().max(1),
                before: after_exchange,
                after: after_refresh,
            });
            if let Some(redis) = &mut probe.redis {
                let rotated: Vec<String> = tokens
                    .iter()
                    .take(KEY_SAMPLE)
                    .map(|t| redis_key("refresh", &code_hex(t)))
                    .collect();
                key_sizes.push(
                    key_size(redis, "refresh token, rotated (replay marker)", &rotated).await,
                );
                let live: Vec<String> = next
                    .iter()
                    .take(KEY_SAMPLE)
                    .map(|t| redis_key("refresh", &code_hex(t)))
                    .collect();
                key_sizes.push(key_size(redis, "refresh token, live (rotated once)", &live).await);
                let families = redis_families(redis, &live).await;
                key_sizes.push(key_size(redis, "family set, two members", &families).await);
            }
            fresh_tokens = next;
        }
    }

    if config.wants("client_credentials") {
        let before = mem_snapshot(&mut probe).await;
        let (answers, sample, window) = measure(
            &mut probe,
            &addr,
            vec![requests.client_credentials(); n + s],
            s,
            c,
        )
        .await;
        check(
            "client credentials",
            &answers,
            false,
            &mut seen,
            &mut failures,
        );
        print_cost("client_credentials", "sample", &sample);
        print_cost("client_credentials", "window", &window);
        grants.push(GrantRun {
            grant: "client_credentials",
            sample,
            window,
        });
        let after = mem_snapshot(&mut probe).await;
        memory.push(MemStep {
            label: "client credentials (nothing kept)",
            values: answers.len().max(1),
            before,
            after,
        });
    }

    if config.wants("device") {
        let m = config.devices;
        let before = mem_snapshot(&mut probe).await;
        let devices = devices_of(
            prepare(&addr, vec![requests.device_authorization(); m + s], c).await,
            &mut failures,
        );
        created
            .lock()
            .expect("not poisoned")
            .devices
            .extend(devices.iter().cloned());
        let after = mem_snapshot(&mut probe).await;
        memory.push(MemStep {
            label: "device code (pending)",
            values: devices.len().max(1),
            before,
            after: after.clone(),
        });
        if let Some(redis) = &mut probe.redis {
            let device_keys: Vec<String> = devices
                .iter()
                .take(KEY_SAMPLE)
                .map(|(d, _)| redis_key("device", &code_hex(d)))
                .collect();
            key_sizes.push(key_size(redis, "device code, pending", &device_keys).await);
            let user_keys: Vec<String> = devices
                .iter()
                .take(KEY_SAMPLE)
                .map(|(_, u)| redis_key("user", u))
                .collect();
            key_sizes.push(key_size(redis, "user code", &user_keys).await);
        }
        let users: Vec<String> = devices.iter().map(|(_, u)| u.clone()).collect();
        let started = Instant::now();
        if let Err(error) = approve_devices(&addr, &requests, &users, c).await {
            failures.push(format!("device approval: {error}"));
        }
        println!(
            "  device: {} devices approved through the device page in {:.2} s (unmeasured)",
            users.len(),
            started.elapsed().as_secs_f64()
        );
        let approved = mem_snapshot(&mut probe).await;
        let (answers, sample, window) = measure(
            &mut probe,
            &addr,
            devices
                .iter()
                .map(|(d, _)| requests.device_poll(d))
                .collect(),
            s,
            c,
        )
        .await;
        let tokens = check("device poll", &answers, true, &mut seen, &mut failures);
        created.lock().expect("not poisoned").refresh.extend(tokens);
        print_cost("device", "sample", &sample);
        print_cost("device", "window", &window);
        grants.push(GrantRun {
            grant: "device_code",
            sample,
            window,
        });
        let polled = mem_snapshot(&mut probe).await;
        memory.push(MemStep {
            label: "device poll (code redeemed, refresh token issued)",
            values: answers.len().max(1),
            before: approved,
            after: polled,
        });
    }

    let mut row_widths = Vec::new();
    let mut vacuumed = Vec::new();
    if let Some(pg) = &probe.pg {
        let (codes, refresh) = {
            let created = created.lock().expect("not poisoned");
            (created.codes.clone(), created.refresh.clone())
        };
        for (label, table, values) in [
            ("tokengate_codes, used codes", "tokengate_codes", &codes),
            (
                "tokengate_refresh_tokens, live and rotated",
                "tokengate_refresh_tokens",
                &refresh,
            ),
        ] {
            let keys: Vec<Vec<u8>> = values
                .iter()
                .map(|v| CodeKey::of(v).as_bytes().to_vec())
                .collect();
            let row = sqlx::query(&format!(
                "SELECT count(*), COALESCE(avg(pg_column_size(t.*)), 0)::float8 FROM {table} t WHERE key = ANY($1)"
            ))
            .bind(&keys)
            .fetch_one(pg)
            .await;
            if let Ok(row) = row {
                row_widths.push((
                    label.to_owned(),
                    row.try_get::<f64, _>(1).unwrap_or(0.0),
                    row.try_get::<i64, _>(0).unwrap_or(0),
                ));
            }
        }
        let tables = PG_TABLES.join(", ");
        if let Err(error) = sqlx::raw_sql(&format!("VACUUM {tables}")).execute(pg).await {
            println!("  VACUUM failed: {error}");
        }
        let names: Vec<String> = PG_TABLES.iter().map(|&t| t.to_owned()).collect();
        let rows = sqlx::query(
            "SELECT s.relname::text, s.n_live_tup, s.n_dead_tup, pg_relation_size(s.relid), pg_indexes_size(s.relid)
             FROM pg_stat_user_tables s WHERE s.relname = ANY($1) ORDER BY 1",
        )
        .bind(&names)
        .fetch_all(pg)
        .await
        .unwrap_or_default();
        for row in rows {
            vacuumed.push((
                row.try_get(0).unwrap_or_default(),
                row.try_get(1).unwrap_or(0),
                row.try_get(2).unwrap_or(0),
                row.try_get(3).unwrap_or(0),
                row.try_get(4).unwrap_or(0),
            ));
        }
    }
    drop(fresh_tokens);
    let load = load_average();
    drop(server);
    drop(relays);
    StoreReport {
        url: spec.url.clone(),
        backend: spec.backend,
        grants,
        memory,
        key_sizes,
        row_widths,
        vacuumed,
        failures,
        load,
    }
}

/// Mean `MEMORY USAGE` of `keys` (those that exist).
async fn key_size(redis: &mut RedisNodes, label: &str, keys: &[String]) -> (String, f64, usize) {
    let commands: Vec<Vec<&str>> = keys
        .iter()
        .map(|k| vec!["MEMORY", "USAGE", k.as_str(), "SAMPLES", "0"])
        .collect();
    let answers = redis.keyed(&commands).await.unwrap_or_default();
    let sizes: Vec<i64> = answers
        .iter()
        .filter_map(|a| match a {
            Resp::Int(n) => Some(*n),
            _ => None,
        })
        .collect();
    if sizes.len() < keys.len() {
        println!(
            "  Redis: {} of {} keys of kind {label:?} not found (expired, or crates/tokengate-redis names its keys otherwise now)",
            keys.len() - sizes.len(),
            keys.len()
        );
    }
    let mean = if sizes.is_empty() {
        0.0
    } else {
        sizes.iter().sum::<i64>() as f64 / sizes.len() as f64
    };
    (label.to_owned(), mean, sizes.len())
}

/// The family keys of refresh token keys (their `family` field).
async fn redis_families(redis: &mut RedisNodes, refresh_keys: &[String]) -> Vec<String> {
    let commands: Vec<Vec<&str>> = refresh_keys
        .iter()
        .map(|k| vec!["HGET", k.as_str(), "family"])
        .collect();
    redis
        .keyed(&commands)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(Resp::text)
        .map(|family| redis_key("family", &family))
        .collect()
}

/// Removes what the run put in a shared store, by its keys.
async fn clean_up(spec: &StoreSpec, created: Created) -> Result<(), String> {
    if created.codes.is_empty() && created.refresh.is_empty() && created.devices.is_empty() {
        return Ok(());
    }
    match spec.backend {
        Backend::Memory => Ok(()),
        Backend::Redis => {
            let mut redis = RedisNodes::open(&spec.hosts)
                .await
                .map_err(|e| e.to_string())?;
            let refresh_keys: Vec<String> = created
                .refresh
                .iter()
                .map(|t| redis_key("refresh", &code_hex(t)))
                .collect();
            let families: HashSet<String> = redis_families(&mut redis, &refresh_keys)
                .await
                .into_iter()
                .collect();
            let mut keys: Vec<String> = refresh_keys;
            keys.extend(
                created
                    .codes
                    .iter()
                    .map(|k| redis_key("code", &code_hex(k))),
            );
            for family in families {
                let name = family
                    .strip_prefix(&format!("{REDIS_PREFIX}:family:"))
                    .unwrap_or_default()
                    .to_owned();
                keys.push(family);
                keys.push(redis_key("revoked", &name));
            }
            for (device, user) in &created.devices {
                keys.push(redis_key("device", &code_hex(device)));
                keys.push(redis_key("user", user));
            }
            let commands: Vec<Vec<&str>> =
                keys.iter().map(|k| vec!["UNLINK", k.as_str()]).collect();
            let answers = redis.keyed(&commands).await.map_err(|e| e.to_string())?;
            let removed: i64 = answers
                .iter()
                .map(|a| if let Resp::Int(n) = a { *n } else { 0 })
                .sum();
            println!(
                "clean-up {}: removed {removed} of the run's {} Redis keys (the rest had gone: redeemed device codes, user codes)",
                spec.url,
                keys.len()
            );
            Ok(())
        }
        Backend::Postgres => {
            let pg = PgPoolOptions::new()
                .max_connections(1)
                .connect(&spec.postgres_url())
                .await
                .map_err(|e| e.to_string())?;
            let keys = |values: &mut dyn Iterator<Item = &String>| -> Vec<Vec<u8>> {
                values.map(|v| CodeKey::of(v).as_bytes().to_vec()).collect()
            };
            let refresh = keys(&mut created.refresh.iter());
            let codes = keys(&mut created.codes.iter());
            let devices = keys(&mut created.devices.iter().map(|(d, _)| d));
            let families: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT family FROM tokengate_refresh_tokens WHERE key = ANY($1)",
            )
            .bind(&refresh)
            .fetch_all(&pg)
            .await
            .map_err(|e| e.to_string())?;
            let mut removed = 0;
            for (sql, families_or_keys) in [
                (
                    "DELETE FROM tokengate_refresh_tokens WHERE family = ANY($1)",
                    None,
                ),
                (
                    "DELETE FROM tokengate_revoked_families WHERE family = ANY($1)",
                    None,
                ),
                (
                    "DELETE FROM tokengate_codes WHERE key = ANY($1)",
                    Some(&codes),
                ),
                (
                    "DELETE FROM tokengate_devices WHERE key = ANY($1)",
                    Some(&devices),
                ),
            ] {
                let query = sqlx::query(sql);
                let query = match families_or_keys {
                    None => query.bind(&families),
                    Some(keys) => query.bind(keys),
                };
                removed += query
                    .execute(&pg)
                    .await
                    .map_err(|e| e.to_string())?
                    .rows_affected();
            }
            let tables = PG_TABLES.join(", ");
            sqlx::raw_sql(&format!("VACUUM {tables}"))
                .execute(&pg)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "clean-up {}: removed {removed} rows of the run ({} families), then VACUUM",
                spec.url,
                families.len()
            );
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// The memory store's heap, in process

/// Heap bytes per value kept by a `MemoryStore` behind the gate, with the
/// demo's client and records: (label, values, bytes per value).
fn memory_store_heap(n: usize, devices: usize) -> Vec<(&'static str, usize, f64)> {
    let store = MemoryStore::new();
    store.insert_client(
        Client::confidential(CLIENT_ID)
            .with_secret(CLIENT_SECRET)
            .with_redirect_uri("http://127.0.0.1/callback")
            .with_redirect_policy(RedirectPolicy::Loopback)
            .with_grant_types(GrantType::ALL)
            .with_introspection(true),
    );
    let layer = TokenGateLayer::builder()
        .store(store)
        .dialect(Dialect::Rfc6749)
        .issuer("http://127.0.0.1:8080")
        .github_client_credentials(true)
        .build();
    let authorizer = layer.authorizer();
    let tokens = layer.refresh_tokens();
    // The demo's handler, but for its access-token registry: a refresh
    // token for a user's grant, in the body.
    let mut gate = layer.layer(service_fn(move |request: Request<RequestBody<String>>| {
        let tokens = tokens.clone();
        async move {
            let grant = request.extensions().get::<ValidatedGrant>().cloned();
            let body = match grant {
                Some(grant) if grant.subject().is_some() => tokens
                    .issue(&grant)
                    .await
                    .expect("the memory store issues refresh tokens"),
                _ => String::new(),
            };
            Ok::<_, Infallible>(Response::new(body))
        }
    }));
    let mut post = |path: &str, body: String| -> String {
        let request = Request::post(path)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .expect("a valid request");
        let response = call(&mut gate, request);
        assert_eq!(response.status(), 200, "in-process request to {path}");
        let body = now_or_never(http_body_util::BodyExt::collect(response.into_body()))
            .expect("a buffered body")
            .to_bytes();
        String::from_utf8(body.to_vec()).expect("UTF-8")
    };
    let query = format!(
        "response_type=code&client_id={CLIENT_ID}&redirect_uri={REDIRECT}&state=st&scope=repo&code_challenge={CHALLENGE}&code_challenge_method=S256"
    );
    let request = now_or_never(authorizer.validate(&query)).expect("a valid authorization");
    // What this function keeps itself is subtracted: its vectors are sized
    // beforehand, and the strings it holds are counted.
    let held = |values: &[String]| values.iter().map(String::capacity).sum::<usize>() as f64;
    let mut out = Vec::new();

    let mut codes = Vec::with_capacity(n);
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        let approval =
            now_or_never(authorizer.approve(&request, DEMO_USER)).expect("a code is issued");
        codes.push(approval.code().to_owned());
    }
    let change = region.change();
    let kept = change.bytes_allocated as f64 - change.bytes_deallocated as f64 - held(&codes);
    out.push(("live code (minted)", n, kept / n as f64));

    let mut refresh = Vec::with_capacity(n);
    let region = Region::new(GLOBAL);
    for code in &codes {
        refresh.push(post(
            TOKEN_PATH,
            format!(
                "grant_type=authorization_code&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&code={code}&redirect_uri={REDIRECT}&code_verifier={VERIFIER}"
            ),
        ));
    }
    let change = region.change();
    let kept = change.bytes_allocated as f64 - change.bytes_deallocated as f64 - held(&refresh);
    out.push(("exchange (refresh token + used code)", n, kept / n as f64));

    let mut rotated = Vec::with_capacity(n);
    let region = Region::new(GLOBAL);
    for token in &refresh {
        rotated.push(post(
            TOKEN_PATH,
            format!(
                "grant_type=refresh_token&refresh_token={token}&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
            ),
        ));
    }
    let change = region.change();
    let kept = change.bytes_allocated as f64 - change.bytes_deallocated as f64 - held(&rotated);
    out.push((
        "rotation (new refresh token + rotated marker)",
        n,
        kept / n as f64,
    ));

    let mut answers = Vec::with_capacity(devices);
    let region = Region::new(GLOBAL);
    for _ in 0..devices {
        answers.push(post(
            DEVICE_PATH,
            format!("client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&scope=repo"),
        ));
    }
    let change = region.change();
    let kept = change.bytes_allocated as f64 - change.bytes_deallocated as f64 - held(&answers);
    out.push(("device code (pending)", devices, kept / devices as f64));
    assert!(
        answers
            .iter()
            .all(|a| json_string(a.as_bytes(), "user_code").is_some()),
        "every in-process device authorization has a user code"
    );
    println!(
        "memory store, in process (heap kept per value, counting allocator): {}",
        out.iter()
            .map(|(label, _, bytes)| format!("{label}: {bytes:.0} B"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    out
}

// ---------------------------------------------------------------------------
// The report

fn print_report(config: &Config, heap: &[(&str, usize, f64)], reports: &[StoreReport]) {
    println!("\n== CPU, round trips and bytes per request");
    println!(
        "(gate: the demo process's utime+stime over the window of {} requests ({} device polls) on {} connections; round trips: the sample of {} one at a time; bytes: the window)\n",
        config.requests, config.devices, config.connections, config.sample
    );
    println!(
        "| store | grant | window req/s (wall) | gate us CPU/request | req/s per gate core | store us CPU/request | round trips/request | bytes to store | bytes from store |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for report in reports {
        for run in &report.grants {
            let w = &run.window;
            let store = match (report.backend, w.store_us, w.store_other_us) {
                (Backend::Redis, Some(all), Some(main)) => {
                    format!("{all:.1} (main thread {main:.1})")
                }
                (Backend::Postgres, Some(backends), Some(all)) => {
                    format!("{backends:.1} (all postgres {all:.1})")
                }
                _ => "-".to_owned(),
            };
            let rt = match report.backend {
                Backend::Memory => "0".to_owned(),
                Backend::Redis => format!("{:.2}", run.sample.turns),
                Backend::Postgres => format!(
                    "{:.2} ({:.2} pool tests)",
                    run.sample.turns, run.sample.lone_syncs
                ),
            };
            println!(
                "| {} | {} | {:.0} | {:.1} | {:.0} | {store} | {rt} | {:.0} | {:.0} |",
                report.url,
                run.grant,
                w.requests as f64 / w.wall.as_secs_f64().max(1e-9),
                w.gate_us,
                1e6 / w.gate_us.max(1e-9),
                w.up,
                w.down
            );
        }
    }

    for report in reports.iter().filter(|r| r.backend == Backend::Redis) {
        println!(
            "\n{}: the relay against Redis's own counters (INFO commandstats, INFO stats; those count every client, and commands run inside scripts too)\n",
            report.url
        );
        println!(
            "| grant | relay turns/request (sample) | EVALSHA + EVAL/request (sample) | every command/request, scripts' own included (sample) | relay bytes to/from Redis (window) | Redis total_net_input/output per request (window) |"
        );
        println!("|---|---|---|---|---|---|");
        for run in &report.grants {
            let calls = |name: &str| {
                run.sample
                    .commands
                    .iter()
                    .filter(|(n, _, _)| n == name)
                    .map(|(_, calls, _)| calls)
                    .sum::<f64>()
            };
            let all: f64 = run
                .sample
                .commands
                .iter()
                .filter(|(n, _, _)| n != "info")
                .map(|(_, calls, _)| calls)
                .sum();
            let net = run
                .window
                .redis_net
                .map_or("-".to_owned(), |(i, o)| format!("{i:.0} / {o:.0}"));
            println!(
                "| {} | {:.2} | {:.2} | {all:.2} | {:.0} / {:.0} | {net} |",
                run.grant,
                run.sample.turns,
                calls("evalsha") + calls("eval"),
                run.window.up,
                run.window.down
            );
        }
    }

    println!("\n== Memory per value");
    if !heap.is_empty() {
        println!("\nmemory store, in process (heap bytes kept, counting allocator):\n");
        println!("| step | values | bytes per value |");
        println!("|---|---|---|");
        for (label, n, bytes) in heap {
            println!("| {label} | {n} | {bytes:.0} |");
        }
    }
    for report in reports {
        println!(
            "\n{} (load average at the end: {}):\n",
            report.url, report.load
        );
        match report.backend {
            Backend::Memory => {
                println!(
                    "| step | values | demo RSS growth per value (includes its access-token registry) |"
                );
                println!("|---|---|---|");
                for step in &report.memory {
                    println!(
                        "| {} | {} | {} |",
                        step.label,
                        step.values,
                        step.rss().map_or("-".to_owned(), |b| format!("{b:.0}"))
                    );
                }
            }
            Backend::Redis => {
                println!("| step | values | used_memory growth per value |");
                println!("|---|---|---|");
                for step in &report.memory {
                    println!(
                        "| {} | {} | {} |",
                        step.label,
                        step.values,
                        step.redis().map_or("-".to_owned(), |b| format!("{b:.0}"))
                    );
                }
                println!("\n| key | keys sampled | MEMORY USAGE, mean bytes |");
                println!("|---|---|---|");
                for (label, mean, n) in &report.key_sizes {
                    println!("| {label} | {n} | {mean:.0} |");
                }
            }
            Backend::Postgres => {
                println!("| step | values | heap growth per value | index growth per value |");
                println!("|---|---|---|---|");
                for step in &report.memory {
                    let (heap, index) = step
                        .pg()
                        .map_or(("-".to_owned(), "-".to_owned()), |(h, i)| {
                            (format!("{h:.0}"), format!("{i:.0}"))
                        });
                    println!("| {} | {} | {heap} | {index} |", step.label, step.values);
                }
                println!("\n| rows of this run | rows | mean pg_column_size |");
                println!("|---|---|---|");
                for (label, width, rows) in &report.row_widths {
                    println!("| {label} | {rows} | {width:.0} |");
                }
                println!(
                    "\nafter VACUUM, before the clean-up (whole tables: other runs' rows too):\n"
                );
                println!("| table | live rows | dead rows | heap bytes | index bytes |");
                println!("|---|---|---|---|---|");
                for (table, live, dead, heap, index) in &report.vacuumed {
                    println!("| {table} | {live} | {dead} | {heap} | {index} |");
                }
            }
        }
    }
}
