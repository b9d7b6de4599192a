//! How many Redis round trips the lockout costs a token request, counted by
//! the server itself (`INFO commandstats`): one script per check, one more
//! per counted failure. Alone in its test binary, so no other test's commands mix in
//! (cargo runs test binaries one after another).
//!
//! And how many the replay store costs: one command per first use of a
//! one-time value, one per DPoP nonce, counted by a relay between the store
//! and the server (so the server's other clients never count), which can
//! also stall to show each call bounded by the store's timeout. A reuse of
//! a rotated refresh token is counted the same way: one command.
//!
//! Needs a Redis server (`TOKENGATE_REDIS_URL`, default
//! `redis://127.0.0.1:6379`): without one this test fails, it never skips.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use tokengate::{
    Client, Dialect, MemoryStore, TokenGateLayer,
    refresh::RefreshRecord,
    store::{Claim, CodeKey, Redemption, RefreshStore, ReplayStore, Reuse, ReuseWindow},
    testing::{TokenRequest, pkce_pair},
};
use tokengate_redis::RedisStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, ServiceExt, service_fn};

fn url() -> String {
    std::env::var("TOKENGATE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Scripts the server has run so far at a client's request (`EVALSHA` and
/// `EVAL`: each is one round trip; the commands a script runs inside are
/// not).
async fn processed(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .expect("Redis answers INFO");
    info.lines()
        .filter_map(|line| {
            let rest = line
                .strip_prefix("cmdstat_evalsha:")
                .or_else(|| line.strip_prefix("cmdstat_eval:"))?;
            rest.strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Held by every test of this binary that runs scripts: the lockout's
/// count is of every script the server runs, so another test's scripts
/// must not run meanwhile.
static SCRIPTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_trip_per_check_and_one_per_failure() {
    let _alone = SCRIPTS.lock().await;
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("randomness");
    let prefix = format!("tokengate-test-{}", hex::encode(bytes));
    let counters = RedisStore::connect_with(&url(), &prefix, Duration::from_secs(2))
        .await
        .expect("a valid Redis URL");
    let store = MemoryStore::new();
    store.insert_client(
        Client::confidential("app")
            .with_secret("s3cret")
            .with_redirect_uri("https://app.example/cb"),
    );
    let layer = TokenGateLayer::builder()
        .store(store)
        .dialect(Dialect::Rfc6749)
        .issuer("https://auth.example.com")
        .lockout_store(counters)
        .build();
    let gate = layer.layer(service_fn(|_request: http::Request<_>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::from("minted")))
    }));
    let authorizer = layer.authorizer();
    let peer = SocketAddr::from(([192, 0, 2, 77], 40_000));
    let exchange = |code: String, verifier: String, secret: &str| {
        TokenRequest::authorization_code(&code)
            .client_secret_post("app", secret)
            .redirect_uri("https://app.example/cb")
            .code_verifier(&verifier)
            .from(peer)
            .build()
    };
    let mint = || async {
        let (verifier, challenge) = pkce_pair();
        let query = format!(
            "response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_challenge={challenge}&code_challenge_method=S256"
        );
        let request = authorizer
            .validate(&query)
            .await
            .expect("a valid authorization request");
        let approval = authorizer.approve(&request, "alice").await.expect("issued");
        (approval.code().to_owned(), verifier)
    };

    let client = redis::Client::open(url()).expect("a valid Redis URL");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis is up");
    // Warm up: the scripts are loaded once (EVALSHA's first miss).
    let (code, verifier) = mint().await;
    let answer = gate
        .clone()
        .oneshot(exchange(code, verifier, "s3cret"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let (code, verifier) = mint().await;
    let answer = gate
        .clone()
        .oneshot(exchange(code, verifier, "guess"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    // Reading the figure (INFO) runs no script, so it adds nothing.

    let before = processed(&mut redis).await;
    for _ in 0..20 {
        let (code, verifier) = mint().await;
        let answer = gate
            .clone()
            .oneshot(exchange(code, verifier, "s3cret"))
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let after = processed(&mut redis).await;
    assert_eq!(after - before, 20, "one command (script) per check");

    let before = processed(&mut redis).await;
    for _ in 0..5 {
        let (code, verifier) = mint().await;
        let answer = gate
            .clone()
            .oneshot(exchange(code, verifier, "guess"))
            .await
            .unwrap();
        assert_eq!(answer.status(), 401);
    }
    let after = processed(&mut redis).await;
    assert_eq!(
        after - before,
        10,
        "a failure costs its check and one count"
    );
}

/// A first use of a one-time value is one command, its replay too, and a
/// DPoP nonce is one command whether it stores the candidate or finds one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_trip_per_first_use_and_per_nonce() {
    let relay = CountingRelay::start(&authority(&url())).await;
    let store = RedisStore::connect_with(
        &format!("redis://{}", relay.addr),
        &prefix(),
        Duration::from_secs(2),
    )
    .await
    .expect("a valid Redis URL");
    let long = Duration::from_secs(600);
    let first_use = |key: CodeKey| {
        let store = &store;
        async move {
            let now = SystemTime::now();
            store.first_use(&key, now + long, now).await
        }
    };
    let nonce = |slot: u64, candidate: &'static str| {
        let now = SystemTime::now();
        store.nonce(slot, candidate, now + long, now)
    };
    // Warm up: the connection is made (and its hello sent) on first use.
    assert!(first_use(fresh_key()).await.expect("Redis is up"));

    let before = relay.commands();
    for _ in 0..10 {
        let key = fresh_key();
        assert!(first_use(key).await.expect("Redis is up"));
        assert!(!first_use(key).await.expect("Redis is up"));
    }
    assert_eq!(
        relay.commands() - before,
        20,
        "one command per first use, and one per replay"
    );

    let before = relay.commands();
    for slot in 0..10 {
        let slot = slot_of(&fresh_key()) ^ slot;
        assert_eq!(nonce(slot, "a").await.expect("Redis is up"), "a");
        assert_eq!(nonce(slot, "b").await.expect("Redis is up"), "a");
    }
    assert_eq!(
        relay.commands() - before,
        20,
        "one command per nonce, stored or found"
    );
}

/// A reuse of a rotated refresh token is one command (one script), whatever
/// it answers: granted, refused past the limit, not rotated, or unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_trip_per_reuse() {
    let _alone = SCRIPTS.lock().await;
    let (relay, store) = relayed().await;
    let record = refresh_record(&hex::encode(fresh_key().as_bytes()));
    let (rotated, unused) = (fresh_key(), fresh_key());
    for key in [rotated, unused] {
        store.issue(key, record.clone()).await.expect("Redis is up");
    }
    let claim = Claim::new(Duration::from_secs(600)).expect("randomness");
    assert!(matches!(
        store.claim(&rotated, &claim).await,
        Ok(Redemption::Claimed(_))
    ));
    assert!(store.confirm(&rotated, &claim).await.expect("Redis is up"));
    let window = ReuseWindow {
        within: Duration::from_secs(60),
        limit: 2,
    };
    // Warm up: the script is loaded once (EVALSHA's first miss).
    let reuse = |key: CodeKey| {
        let store = &store;
        async move { store.reuse(&key, window).await.expect("Redis is up") }
    };
    assert_eq!(reuse(fresh_key()).await, Reuse::Unknown);

    let before = relay.commands();
    let granted = Reuse::Granted(record.clone());
    assert_eq!(reuse(rotated).await, granted);
    assert_eq!(reuse(rotated).await, granted);
    assert_eq!(reuse(rotated).await, Reuse::Refused(record));
    assert_eq!(reuse(unused).await, Reuse::NotRotated);
    assert_eq!(reuse(fresh_key()).await, Reuse::Unknown);
    assert_eq!(
        relay.commands() - before,
        5,
        "one command per reuse, whatever it answers"
    );
}

/// Revoking a family is one command whatever its size: a marker every use
/// of its tokens reads, not a write per token (which a client could make
/// as costly as it likes by rotating before replaying). Every token of it
/// is unknown after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_trip_per_revocation_whatever_the_family() {
    let _alone = SCRIPTS.lock().await;
    let (relay, store) = relayed().await;
    let family = hex::encode(fresh_key().as_bytes());
    let record = refresh_record(&family);
    let tokens: Vec<CodeKey> = (0..200).map(|_| fresh_key()).collect();
    for key in &tokens {
        store
            .issue(*key, record.clone())
            .await
            .expect("Redis is up");
    }
    // Warm up: the script is loaded once (EVALSHA's first miss).
    store
        .revoke_family(&hex::encode(fresh_key().as_bytes()))
        .await
        .expect("Redis is up");
    let before = relay.commands();
    store.revoke_family(&family).await.expect("Redis is up");
    assert_eq!(relay.commands() - before, 1, "one command for 200 tokens");
    for key in &tokens {
        assert_eq!(
            store.find(key).await.expect("Redis is up"),
            tokengate::store::Lookup::Unknown
        );
    }
}

/// With the server hung (connection open, no answer), a first use and a
/// nonce each answer an error (the gate fails closed on it) within the
/// store's timeout instead of waiting for it; once the server answers
/// again, so do they.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_calls_are_bounded_by_the_timeout() {
    let relay = CountingRelay::start(&authority(&url())).await;
    let timeout = Duration::from_millis(500);
    let store = RedisStore::connect_with(&format!("redis://{}", relay.addr), &prefix(), timeout)
        .await
        .expect("a valid Redis URL");
    let long = Duration::from_secs(600);
    let key = fresh_key();
    let slot = slot_of(&fresh_key());
    let now = SystemTime::now();
    assert!(
        store
            .first_use(&fresh_key(), now + long, now)
            .await
            .expect("Redis is up")
    );

    relay.stall(true).await;
    let bound = timeout + Duration::from_millis(400);
    for _ in 0..2 {
        let now = SystemTime::now();
        let started = Instant::now();
        let used = tokio::time::timeout(bound * 4, store.first_use(&key, now + long, now))
            .await
            .expect("a first use with the server hung must not hang");
        assert!(used.is_err(), "a first use with the server hung: {used:?}");
        assert!(
            started.elapsed() < bound,
            "the first use took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        let nonce = tokio::time::timeout(bound * 4, store.nonce(slot, "a", now + long, now))
            .await
            .expect("a nonce with the server hung must not hang");
        assert!(nonce.is_err(), "a nonce with the server hung: {nonce:?}");
        assert!(
            started.elapsed() < bound,
            "the nonce took {:?}",
            started.elapsed()
        );
    }

    relay.stall(false).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = SystemTime::now();
        match store.nonce(slot, "b", now + long, now).await {
            Ok(nonce) => {
                assert!(nonce == "a" || nonce == "b", "a nonce of the slot: {nonce}");
                break;
            }
            Err(error) => assert!(
                Instant::now() < deadline,
                "the store did not come back within 10 s: {error}: {:?}",
                std::error::Error::source(&error)
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A key prefix no other run shares.
/// A store behind a relay that counts the commands it carries.
async fn relayed() -> (CountingRelay, RedisStore) {
    let relay = CountingRelay::start(&authority(&url())).await;
    let store = RedisStore::connect_with(
        &format!("redis://{}", relay.addr),
        &prefix(),
        Duration::from_secs(2),
    )
    .await
    .expect("a valid Redis URL");
    (relay, store)
}

/// A refresh token of `family`, live for ten minutes.
fn refresh_record(family: &str) -> RefreshRecord {
    let now = SystemTime::now();
    RefreshRecord {
        client_id: "app".to_owned(),
        subject: "alice".to_owned(),
        scopes: vec!["read".to_owned()],
        family: family.to_owned(),
        issued_at: now,
        expires_at: now + Duration::from_secs(600),
        dpop_jkt: None,
    }
}

fn prefix() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("randomness");
    format!("tokengate-test-{}", hex::encode(bytes))
}

fn fresh_key() -> CodeKey {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("randomness");
    CodeKey::of(&hex::encode(bytes))
}

fn slot_of(key: &CodeKey) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&key.as_bytes()[..8]);
    u64::from_le_bytes(bytes)
}

/// `host:port` of a `redis://[user@]host:port[/db]` URL.
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// A TCP relay in front of the server that counts the commands its clients
/// send (RESP arrays, parsed as they pass), and can stall: while stalled,
/// no byte goes either way and connections stay open, as with a server
/// that hangs. Stalled connections stay stalled; new ones relay again once
/// the stall ends.
struct CountingRelay {
    addr: String,
    commands: Arc<AtomicU64>,
    stalled: Arc<AtomicBool>,
}

impl CountingRelay {
    async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let addr = listener.local_addr().expect("its address").to_string();
        let commands = Arc::new(AtomicU64::new(0));
        let stalled = Arc::new(AtomicBool::new(false));
        let (counted, flag, target) = (
            Arc::clone(&commands),
            Arc::clone(&stalled),
            target.to_owned(),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (counted, flag, target) =
                    (Arc::clone(&counted), Arc::clone(&flag), target.clone());
                tokio::spawn(async move {
                    if flag.load(Ordering::SeqCst) {
                        // Accepted, never answered.
                        std::future::pending::<()>().await;
                    }
                    let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    let up = async {
                        let (mut pending, mut buffer) = (Vec::new(), [0u8; 16 * 1024]);
                        loop {
                            let read = from_client.read(&mut buffer).await?;
                            if read == 0 {
                                return to_server.shutdown().await;
                            }
                            // Counted before the server sees them, so the
                            // count is complete once the answer is back.
                            pending.extend_from_slice(&buffer[..read]);
                            while let Some(length) = command_length(&pending) {
                                counted.fetch_add(1, Ordering::SeqCst);
                                pending.drain(..length);
                            }
                            to_server.write_all(&buffer[..read]).await?;
                        }
                    };
                    let down = tokio::io::copy(&mut from_server, &mut to_client);
                    tokio::select! {
                        _ = async { tokio::join!(up, down) } => {}
                        () = async {
                            while !flag.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        } => std::future::pending::<()>().await,
                    }
                });
            }
        });
        Self {
            addr,
            commands,
            stalled,
        }
    }

    fn commands(&self) -> u64 {
        self.commands.load(Ordering::SeqCst)
    }

    async fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
        // Let the relay's tasks see it.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The length of the first whole command in `bytes` (a RESP array of bulk
/// strings, as every client library sends), or `None` until it is whole.
fn command_length(bytes: &[u8]) -> Option<usize> {
    fn line(bytes: &[u8], at: usize, marker: u8) -> Option<(usize, usize)> {
        if *bytes.get(at)? != marker {
            panic!("not a RESP command: {:?}", String::from_utf8_lossy(bytes));
        }
        let end = at + bytes[at..].windows(2).position(|pair| pair == b"\r\n")?;
        let number = std::str::from_utf8(&bytes[at + 1..end])
            .ok()
            .and_then(|digits| digits.parse().ok())
            .expect("a length in a RESP header");
        Some((number, end + 2))
    }
    let (items, mut at) = line(bytes, 0, b'*')?;
    for _ in 0..items {
        let (length, data) = line(bytes, at, b'$')?;
        at = data + length + 2;
        if bytes.len() < at {
            return None;
        }
    }
    Some(at)
}
