//! Several gate processes, one store: two demo servers share Redis (then
//! PostgreSQL); codes issued through one are redeemed through both at once,
//! and each code gives exactly one token; failures counted through either
//! lock the address out of both; a DPoP nonce handed out by one is accepted
//! by the other, and a proof used at one is refused at the other; with
//! `--refresh-reuse`, one refresh token sent to both at once gets tokens
//! from both, and a later replay revokes the family as both see it.
//!
//! Needs the Redis and PostgreSQL servers (`TOKENGATE_REDIS_URL`, default
//! `redis://127.0.0.1:6379`; `TOKENGATE_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`), so the plain `cargo test`
//! leaves these tests out (ignored); `.ci/run` runs them with `--ignored`,
//! and there a server that is away fails them. The Redis Cluster variants
//! need `.ci/redis-cluster start` (or `TOKENGATE_REDIS_CLUSTER_URL`).

mod common;

use std::sync::Arc;

use common::demo::*;

async fn one_token_per_code(store: &str) {
    // Hundreds of deliberate replays by one client: the lockout (its own
    // tests) would answer the refresh below 429.
    let args = ["--store", store, "--dialect", "rfc6749", "--lockout", "off"];
    let a = start(&args);
    let b = start(&args);
    // Codes are issued through both processes, so each must redeem codes
    // the other issued.
    let mut codes = Vec::new();
    for i in 0..20 {
        let issuer = if i % 2 == 0 { &a.addr } else { &b.addr };
        codes.push(authorize(issuer, "demo-client").await);
    }
    let addrs = Arc::new([a.addr.clone(), b.addr.clone()]);
    let mut tasks = Vec::new();
    for code in &codes {
        // Each code is presented twice through each process, all at once.
        for i in 0..4 {
            let addrs = Arc::clone(&addrs);
            let body = demo_exchange(code);
            tasks.push(tokio::spawn(async move {
                token(&addrs[i % 2], "", &body).await
            }));
        }
    }
    let mut tokens = 0;
    // Codes redeemed by the process that did not issue them: proof that
    // both share one store (were they not, every winner would be the issuer).
    let mut crossed = 0;
    for (n, task) in tasks.into_iter().enumerate() {
        let reply = task.await.unwrap();
        let json = reply.json();
        if json.get("access_token").is_some() {
            assert_eq!(reply.status, 200);
            tokens += 1;
            let (code, redeemer) = (n / 4, n % 2);
            if code % 2 != redeemer {
                crossed += 1;
            }
        } else {
            assert_eq!(json["error"], "invalid_grant", "{json}");
        }
    }
    assert_eq!(tokens, codes.len(), "exactly one token per code");
    assert!(
        crossed > 0,
        "no code was redeemed by the process that did not issue it"
    );
    // A refresh token minted by one process rotates through the other.
    let code = authorize(&a.addr, "demo-client").await;
    let first = token(&a.addr, "", &demo_exchange(&code)).await.json();
    let refresh = first["refresh_token"].as_str().unwrap();
    let body = format!(
        "grant_type=refresh_token&refresh_token={refresh}&client_id=demo-client&client_secret=demo-secret"
    );
    assert!(token(&b.addr, "", &body).await.json()["access_token"].is_string());
    assert_eq!(
        token(&a.addr, "", &body).await.json()["error"],
        "invalid_grant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis; .ci/run runs it"]
async fn two_processes_share_redis() {
    let url = std::env::var("TOKENGATE_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    one_token_per_code(&url).await;
}

/// One lockout across processes: failures from one address spread over
/// two demo processes on one Redis trip the threshold once, at the tenth,
/// for both; other addresses are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis; .ci/run runs it"]
async fn two_processes_on_redis_share_one_lockout() {
    let url = std::env::var("TOKENGATE_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    one_lockout(&url).await;
}

/// The same on one PostgreSQL database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL; .ci/run runs it"]
async fn two_processes_on_postgres_share_one_lockout() {
    let url = std::env::var("TOKENGATE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    one_lockout(&url).await;
}

/// Ten failures from one address, alternating between two demo processes
/// on `store`, lock that address out of both; another address redeems.
async fn one_lockout(store: &str) {
    let args = ["--store", store, "--dialect", "rfc6749"];
    let (a, b) = (start(&args), start(&args));
    // Counters in a shared store outlive a run: an address of this run's
    // own.
    let mut bytes = [0u8; 3];
    getrandom::fill(&mut bytes).unwrap();
    let peer = format!("127.{}.{}.{}", bytes[0], bytes[1], bytes[2].max(2));
    let head = "POST /login/oauth/access_token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json";
    let wrong = |code: &str| demo_exchange(code).replace("demo-secret", "guess");
    for attempt in 0..10 {
        let server = if attempt % 2 == 0 { &a } else { &b };
        let reply = send_from(&peer, &server.addr, head, &wrong("x")).await;
        assert_eq!(reply.status, 401, "attempt {attempt}: {}", reply.body);
    }
    for server in [&a, &b] {
        let code = authorize(&server.addr, "demo-client").await;
        let reply = send_from(&peer, &server.addr, head, &demo_exchange(&code)).await;
        assert_eq!(reply.status, 429, "{}", reply.body);
        // From another address, the same code redeems.
        let reply = send_from("127.0.0.1", &server.addr, head, &demo_exchange(&code)).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL; .ci/run runs it"]
async fn two_processes_share_postgres() {
    let url = std::env::var("TOKENGATE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    one_token_per_code(&url).await;
}

/// Signed requests across processes: two demo processes on `store` with
/// one issuer (so a proof's `htu` is the same at both) and `--dpop-nonce`.
/// The nonce one hands out is accepted by the other, and a proof used at
/// one is refused at the other: both go through the store, the demo's
/// replay store.
async fn one_replay_store(store: &str) {
    use tokengate::testing::jose::{DpopProof, TestKey};

    let issuer = "http://gate.example";
    let args = [
        "--store",
        store,
        "--issuer",
        issuer,
        "--dpop-nonce",
        "--dialect",
        "rfc6749",
        "--lockout",
        "off",
    ];
    let a = start(&args);
    let b = start(&args);
    let htu = format!("{issuer}/login/oauth/access_token");
    let key = TestKey::es256();
    let dpop = |proof: &str| format!("DPoP: {proof}");
    // The nonce, from A.
    let code = authorize(&a.addr, "demo-client").await;
    let bare = DpopProof::new("POST", &htu).sign(&key);
    let reply = token(&a.addr, &dpop(&bare), &demo_exchange(&code)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"], "use_dpop_nonce");
    let nonce = reply.headers["dpop-nonce"].clone();
    // Accepted by B.
    let proof = DpopProof::new("POST", &htu).nonce(&nonce).sign(&key);
    let reply = token(&b.addr, &dpop(&proof), &demo_exchange(&code)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["token_type"], "DPoP");
    // That proof again, at A, with a code of its own: its jti was used.
    let code = authorize(&a.addr, "demo-client").await;
    let reply = token(&a.addr, &dpop(&proof), &demo_exchange(&code)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_dpop_proof");
    assert!(
        reply.json()["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("used before")),
        "{}",
        reply.body
    );
    // The code was not used up by the refusal.
    let fresh = DpopProof::new("POST", &htu).nonce(&nonce).sign(&key);
    let reply = token(&a.addr, &dpop(&fresh), &demo_exchange(&code)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis; .ci/run runs it"]
async fn two_processes_on_redis_share_one_replay_store() {
    let url = std::env::var("TOKENGATE_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    one_replay_store(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL; .ci/run runs it"]
async fn two_processes_on_postgres_share_one_replay_store() {
    let url = std::env::var("TOKENGATE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    one_replay_store(&url).await;
}

/// The refresh reuse window across processes: two demo processes on
/// `store` with `--refresh-reuse`. One refresh token sent to both at once
/// gets tokens from both (one rotates it, the other is granted a reuse,
/// whichever comes first); two more reuses spend the limit (3); the next
/// presentation is a replay, and the family it revokes is revoked as both
/// processes see it: every successor refused and introspected inactive at
/// both, and each process's access tokens of the family inactive there
/// (the one that saw the replay dropped its own; the other finds the
/// refresh tokens issued with its own gone from the shared store).
async fn one_reuse_window(store: &str) {
    let args = [
        "--store",
        store,
        "--dialect",
        "rfc6749",
        "--lockout",
        "off",
        "--refresh-reuse",
        "120",
    ];
    let (a, b) = (start(&args), start(&args));
    let code = authorize(&a.addr, "demo-client").await;
    let first = token(&a.addr, "", &demo_exchange(&code)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let original = first.json()["refresh_token"].as_str().unwrap().to_owned();
    let body = refresh_body("demo-client", "demo-secret", &original);
    // Per process: the access and refresh tokens it minted.
    let mut minted: [Vec<(String, String)>; 2] = [Vec::new(), Vec::new()];
    let pair = |reply: &Reply| {
        assert_eq!(reply.status, 200, "{}", reply.body);
        let json = reply.json();
        let field = |name: &str| {
            json[name]
                .as_str()
                .unwrap_or_else(|| panic!("{json}"))
                .to_owned()
        };
        (field("access_token"), field("refresh_token"))
    };
    let (at_a, at_b) = tokio::join!(token(&a.addr, "", &body), token(&b.addr, "", &body));
    minted[0].push(pair(&at_a));
    minted[1].push(pair(&at_b));
    assert_ne!(minted[0][0].1, minted[1][0].1);
    // Each successor is live, seen from either process (the gate answers
    // for refresh tokens from the shared store).
    for server in [&a, &b] {
        for (_, successor) in minted.iter().flatten() {
            let reply = introspect(&server.addr, "demo-client", "demo-secret", successor).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert_eq!(reply.json()["active"], true, "{}", reply.body);
        }
    }
    // Two more reuses, one through each process: the limit is spent.
    minted[0].push(pair(&token(&a.addr, "", &body).await));
    minted[1].push(pair(&token(&b.addr, "", &body).await));
    // Once more, through B: a replay, and the family is revoked.
    let replay = token(&b.addr, "", &body).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert_eq!(replay.json()["error"], "invalid_grant", "{}", replay.body);
    for (n, server) in [&a, &b].into_iter().enumerate() {
        for (_, successor) in minted.iter().flatten() {
            let refused = token(
                &server.addr,
                "",
                &refresh_body("demo-client", "demo-secret", successor),
            )
            .await;
            assert_eq!(refused.status, 400, "{}", refused.body);
            assert_eq!(refused.json()["error"], "invalid_grant");
            let reply = introspect(&server.addr, "demo-client", "demo-secret", successor).await;
            assert_eq!(reply.body, r#"{"active":false}"#);
        }
        for (access, _) in &minted[n] {
            let reply = introspect(&server.addr, "demo-client", "demo-secret", access).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert_eq!(reply.body, r#"{"active":false}"#, "process {n}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis; .ci/run runs it"]
async fn two_processes_on_redis_share_one_reuse_window() {
    let url = std::env::var("TOKENGATE_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    one_reuse_window(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL; .ci/run runs it"]
async fn two_processes_on_postgres_share_one_reuse_window() {
    let url = std::env::var("TOKENGATE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    one_reuse_window(&url).await;
}

/// A Redis server of the test's own, on a free port, so it can be stopped
/// and started without disturbing the shared one.
struct OwnRedis {
    child: Option<std::process::Child>,
}

impl OwnRedis {
    fn start(port: u16, dir: &std::path::Path) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            // Persistence, so the clients survive the restart as they would
            // on a real deployment.
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed for this test");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { child: Some(child) }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis; .ci/run runs it"]
async fn stopping_redis_is_a_500_and_restarting_it_restores_service() {
    use std::time::{Duration, Instant};

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("tokengate-redis-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut redis = OwnRedis::start(port, &dir);
    let url = format!("redis://127.0.0.1:{port}");
    let gate = start(&["--store", &url, "--dialect", "rfc6749"]);
    let code = authorize(&gate.addr, "demo-client").await;

    redis.stop();
    let started = Instant::now();
    let reply = token(&gate.addr, "", &demo_exchange(&code)).await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(reply.json()["error"], "server_error");
    // Within the store timeout (2 s), with room for a slow machine.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");

    let restarted = OwnRedis::start(port, &dir);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = token(&gate.addr, "", &demo_exchange(&code)).await;
        if reply.status == 200 {
            assert!(reply.json()["access_token"].is_string());
            break;
        }
        assert_eq!(reply.status, 500, "{}", reply.body);
        assert!(Instant::now() < deadline, "service did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(restarted);
    std::fs::remove_dir_all(dir).unwrap();
}

/// The Redis Cluster `.ci/redis-cluster start` runs (three masters with a
/// replica each), or `TOKENGATE_REDIS_CLUSTER_URL`.
fn cluster_url() -> String {
    std::env::var("TOKENGATE_REDIS_CLUSTER_URL").unwrap_or_else(|_| {
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002".to_owned()
    })
}

/// The same four, on a Redis Cluster: codes, the lockout's counters, the
/// one-time values and a refresh family spread over its slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster (.ci/redis-cluster start); .ci/run runs it"]
async fn two_processes_share_a_redis_cluster() {
    one_token_per_code(&cluster_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster (.ci/redis-cluster start); .ci/run runs it"]
async fn two_processes_on_a_redis_cluster_share_one_lockout() {
    one_lockout(&cluster_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster (.ci/redis-cluster start); .ci/run runs it"]
async fn two_processes_on_a_redis_cluster_share_one_replay_store() {
    one_replay_store(&cluster_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster (.ci/redis-cluster start); .ci/run runs it"]
async fn two_processes_on_a_redis_cluster_share_one_reuse_window() {
    one_reuse_window(&cluster_url()).await;
}
