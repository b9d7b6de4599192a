//! The store conformance suite against PostgreSQL, plus an outage through a
//! relay that is cut and restored.
//!
//! Needs a PostgreSQL server (`TOKENGATE_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`): without one these tests
//! fail, they never skip. Every value the suite writes is random per run.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Mutex;

use tokengate::{
    Client,
    client::{AuthMethod, ClientRecord, Jwks},
    clock::{Clock, ManualClock},
    store::{ClientStore, CodeKey, Counter, CounterKey, LockoutStore, ReplayStore},
    testing::conformance::{self, Relay},
};
use tokengate_postgres::PostgresStore;

fn url() -> String {
    std::env::var("TOKENGATE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `host:port` of a `postgres://[user@]host:port/db` URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('/').next().unwrap_or(rest)
}

/// One test at a time: the suite moves its store's clock hours ahead, and
/// that store sweeps what it takes for expired rows out of the shared
/// tables, another test's live code or failure counter included.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

async fn store(url: &str, timeout: Duration, clock: &ManualClock) -> PostgresStore {
    PostgresStore::connect_with(url, timeout, clock.clone())
        .await
        .expect("a valid PostgreSQL URL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let clock = ManualClock::new();
    let store = store(&url(), Duration::from_secs(5), &clock).await;
    store
        .migrate()
        .await
        .expect("PostgreSQL must be reachable for this suite");
    conformance::run_clients(&store, |client| {
        let store = store.clone();
        async move {
            store
                .insert_client(&client)
                .await
                .expect("PostgreSQL is up")
        }
    })
    .await;
    conformance::run(store, clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_and_recovery() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let url = url();
    let clock = ManualClock::new();
    // Migrate through the real address first, then run through the relay.
    store(&url, Duration::from_secs(5), &clock)
        .await
        .migrate()
        .await
        .expect("PostgreSQL must be reachable for this suite");
    let relay = Relay::start(authority(&url)).await;
    let timeout = Duration::from_millis(500);
    let relayed = url.replacen(authority(&url), relay.addr(), 1);
    let store = store(&relayed, timeout, &clock).await;
    conformance::outage_and_recovery(store, clock, &relay, timeout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_store() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let store = migrated(&ManualClock::new()).await;
    conformance::lockout_store_contract(store).await;
}

/// The fields a client registers beyond the first schema (its method,
/// keys, JWT secret, DPoP binding, whether it may introspect) survive their
/// columns: a client reads back equal, and registering it again without
/// them clears them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_clients_round_trip() {
    let store = migrated(&ManualClock::new()).await;

    for client in signed_clients() {
        let written = ClientRecord::from(&client);
        assert!(
            written.token_endpoint_auth_method.is_some()
                || written.dpop_bound_access_tokens
                || written.introspect,
            "each client sets a new field: {written:?}"
        );
        store
            .insert_client(&client)
            .await
            .expect("PostgreSQL is up");
        let read = store
            .client(client.client_id())
            .await
            .expect("PostgreSQL is up")
            .expect("the client was stored");
        assert_eq!(
            ClientRecord::from(&*read),
            written,
            "a client reads back as it was written"
        );
    }
    // Registered again without them: the fields are cleared, not kept.
    for client in signed_clients() {
        let id = client.client_id().to_owned();
        store
            .insert_client(&client)
            .await
            .expect("PostgreSQL is up");
        let plain = Client::confidential(&id).with_secret("s3cret");
        store.insert_client(&plain).await.expect("PostgreSQL is up");
        let read = store
            .client(&id)
            .await
            .expect("PostgreSQL is up")
            .expect("the client was stored");
        assert_eq!(
            ClientRecord::from(&*read),
            ClientRecord::from(&plain),
            "a client registered again without its fields reads back without them"
        );
    }
}

/// Clients registered for signed requests, one per new `ClientRecord`
/// field: keys for `private_key_jwt` with DPoP-bound tokens, the secret of
/// a `client_secret_jwt` client, a method named for a secret client, and a
/// resource server that may introspect (RFC 7662).
fn signed_clients() -> Vec<Client> {
    let jwks = Jwks::from_json(&serde_json::json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "kid": "k1",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    }]}))
    .expect("a valid public JWK set");
    vec![
        Client::confidential(fresh_client_id("keys"))
            .with_redirect_uri("https://client.example.com/cb")
            .with_jwks(jwks)
            .with_dpop_bound_access_tokens(true),
        Client::confidential(fresh_client_id("hmac"))
            .with_jwt_secret("a shared secret of some length"),
        Client::confidential(fresh_client_id("post"))
            .with_secret("s3cret")
            .with_auth_method(AuthMethod::ClientSecretPost),
        Client::public(fresh_client_id("dpop")).with_dpop_bound_access_tokens(true),
        Client::confidential(fresh_client_id("introspect"))
            .with_secret("s3cret")
            .with_introspection(true),
    ]
}

/// A client id no other run shares.
fn fresh_client_id(name: &str) -> String {
    format!("{name}-{}", fresh_id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_store() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let store = migrated(&ManualClock::new()).await;
    conformance::replay_store_contract(store).await;
}

/// Expired one-time values and nonces do not pile up: the sweep deletes
/// their rows and leaves live ones alone, which still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_deletes_expired_replays_and_nonces() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let clock = ManualClock::new();
    let store = migrated(&clock).await;
    let (brief, lasting) = (fresh_key(), fresh_key());
    let (brief_slot, lasting_slot) = (fresh_slot(), fresh_slot());
    let now = clock.now();
    let (soon, later) = (now + Duration::from_secs(1), now + Duration::from_secs(600));
    for (key, until) in [(brief, soon), (lasting, later)] {
        assert!(store.first_use(&key, until, now).await.expect("up"));
    }
    for (slot, until) in [(brief_slot, soon), (lasting_slot, later)] {
        assert_eq!(store.nonce(slot, "n", until, now).await.expect("up"), "n");
    }
    assert_eq!(replay_rows(&[brief, lasting]).await, 2, "one row per value");
    assert_eq!(nonce_rows(&[brief_slot, lasting_slot]).await, 2);

    clock.advance(Duration::from_secs(2));
    store.sweep().await.expect("PostgreSQL is up");
    assert_eq!(replay_rows(&[brief]).await, 0, "the expired value is swept");
    assert_eq!(nonce_rows(&[brief_slot]).await, 0, "the expired nonce too");
    assert_eq!(replay_rows(&[lasting]).await, 1, "the live value stays");
    assert_eq!(nonce_rows(&[lasting_slot]).await, 1, "the live nonce too");
    let now = clock.now();
    assert!(
        !store
            .first_use(&lasting, now + Duration::from_secs(600), now)
            .await
            .expect("up"),
        "and is still a replay"
    );
    assert_eq!(
        store
            .nonce(lasting_slot, "m", now + Duration::from_secs(600), now)
            .await
            .expect("up"),
        "n",
        "and the slot keeps its nonce"
    );
}

/// With the server hung, a first use and a nonce each answer an error (the
/// gate fails closed on it) within the store's timeout; once the server
/// answers again, so do they.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_calls_are_bounded_by_the_timeout() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let url = url();
    let clock = ManualClock::new();
    migrated(&clock).await;
    let relay = StallingRelay::start(authority(&url)).await;
    let timeout = Duration::from_millis(500);
    let relayed = url.replacen(authority(&url), &relay.addr, 1);
    let store = store(&relayed, timeout, &clock).await;
    let (key, slot) = (fresh_key(), fresh_slot());
    let long = Duration::from_secs(600);
    // Connected, and the sweep this first use runs is done: each call
    // below waits on its own statement alone.
    let now = clock.now();
    assert!(
        store
            .first_use(&fresh_key(), now + long, now)
            .await
            .expect("PostgreSQL is up")
    );
    relay.stall(true).await;
    let bound = timeout + Duration::from_millis(400);
    for _ in 0..2 {
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
        match store.nonce(slot, "b", now + long, now).await {
            Ok(nonce) => {
                assert!(nonce == "a" || nonce == "b", "a nonce of the slot: {nonce}");
                break;
            }
            Err(error) => assert!(
                Instant::now() < deadline,
                "the store did not come back within 10 s: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ended windows do not pile up: the sweep deletes their rows, and leaves
/// a live window (and its lockout) alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_deletes_ended_counters() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let clock = ManualClock::new();
    let store = migrated(&clock).await;
    let (ended, live) = (fresh_id(), fresh_id());
    let ended = Counter {
        key: CounterKey::Client(&ended),
        limit: 1,
        window: Duration::from_secs(1),
    };
    let live = Counter {
        key: CounterKey::Client(&live),
        limit: 1,
        window: Duration::from_secs(600),
    };
    store
        .fail(&[ended, live], clock.now())
        .await
        .expect("PostgreSQL is up");
    assert_eq!(rows(&[ended, live]).await, 2, "one row per counter");

    clock.advance(Duration::from_secs(2));
    assert_eq!(
        store.locked(&[ended], clock.now()).await.expect("up"),
        None,
        "an ended window locks nothing, swept or not"
    );
    store.sweep().await.expect("PostgreSQL is up");
    assert_eq!(rows(&[ended]).await, 0, "the ended counter is swept");
    assert_eq!(rows(&[live]).await, 1, "the live one stays");
    assert!(
        store
            .locked(&[live], clock.now())
            .await
            .expect("up")
            .is_some(),
        "and still locks"
    );
}

/// A key given twice in one call counts twice (as on the memory and Redis
/// stores) instead of failing the statement; failures naming the same keys
/// in opposite orders, all at once, neither deadlock nor lose a count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_and_crossed_orders() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let clock = ManualClock::new();
    let store = migrated(&clock).await;
    fn counter(id: &str, limit: u32) -> Counter<'_> {
        Counter {
            key: CounterKey::Client(id),
            limit,
            window: Duration::from_secs(600),
        }
    }
    let twice = fresh_id();
    store
        .fail(&[counter(&twice, 1), counter(&twice, 1)], clock.now())
        .await
        .expect("a key given twice is no error");
    let locked = async |id: &str, limit| {
        store
            .locked(&[counter(id, limit)], clock.now())
            .await
            .expect("PostgreSQL is up")
    };
    assert!(locked(&twice, 2).await.is_some(), "two counted");
    assert_eq!(locked(&twice, 3).await, None, "not three");

    let (a, b): (Arc<str>, Arc<str>) = (fresh_id().into(), fresh_id().into());
    let failures = (0..64).map(|i| {
        let (store, a, b, now) = (store.clone(), a.clone(), b.clone(), clock.now());
        tokio::spawn(async move {
            let (a, b) = (counter(&a, 1), counter(&b, 1));
            let counters = if i % 2 == 0 { [a, b] } else { [b, a] };
            store.fail(&counters, now).await
        })
    });
    for failure in failures.collect::<Vec<_>>() {
        failure
            .await
            .expect("no panic")
            .expect("no deadlock, no error");
    }
    for id in [&a, &b] {
        assert!(locked(id, 64).await.is_some(), "64 counted");
        assert_eq!(locked(id, 65).await, None, "not 65");
    }
}

/// Failures reach the row out of the order of their `now` (concurrent
/// requests, processes whose clocks differ by a little): each counts, and
/// none restarts the window as if the clock had gone back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_out_of_clock_order_all_count() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let clock = ManualClock::new();
    let store = migrated(&clock).await;
    let id = fresh_id();
    let counter = |limit| Counter {
        key: CounterKey::Client(&id),
        limit,
        window: Duration::from_secs(600),
    };
    let now = clock.now();
    for at in [
        now + Duration::from_millis(5),
        now,
        now + Duration::from_millis(2),
    ] {
        store
            .fail(&[counter(3)], at)
            .await
            .expect("PostgreSQL is up");
    }
    let wait = store
        .locked(&[counter(3)], now)
        .await
        .expect("PostgreSQL is up")
        .expect("three failures reach a limit of three");
    assert_eq!(
        wait,
        Duration::from_secs(600) + Duration::from_millis(5),
        "the window the first failure to arrive opened"
    );
}

/// With the server hung (connections open, no answer), a check and a
/// failure each answer an error (the gate fails closed on it) within the
/// store's timeout instead of waiting for it; once the server answers
/// again, so do they.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_calls_are_bounded_by_the_timeout() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let url = url();
    let clock = ManualClock::new();
    migrated(&clock).await;
    let relay = StallingRelay::start(authority(&url)).await;
    let timeout = Duration::from_millis(500);
    let relayed = url.replacen(authority(&url), &relay.addr, 1);
    let store = store(&relayed, timeout, &clock).await;
    let id = fresh_id();
    let counters = [Counter {
        key: CounterKey::Client(&id),
        limit: 1,
        window: Duration::from_secs(600),
    }];
    // Connected, and the sweep this first failure runs is done: each call
    // below waits on its own statement alone.
    store
        .fail(&counters, clock.now())
        .await
        .expect("PostgreSQL is up");
    relay.stall(true).await;
    let bound = timeout + Duration::from_millis(400);
    for _ in 0..2 {
        let started = Instant::now();
        let locked = tokio::time::timeout(bound * 4, store.locked(&counters, clock.now()))
            .await
            .expect("a check with the server hung must not hang");
        assert!(locked.is_err(), "a check with the server hung: {locked:?}");
        assert!(
            started.elapsed() < bound,
            "the check took {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        let failed = tokio::time::timeout(bound * 4, store.fail(&counters, clock.now()))
            .await
            .expect("a failure with the server hung must not hang");
        assert!(
            failed.is_err(),
            "a failure with the server hung: {failed:?}"
        );
        assert!(
            started.elapsed() < bound,
            "the failure took {:?}",
            started.elapsed()
        );
    }
    relay.stall(false).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.locked(&counters, clock.now()).await {
            Ok(wait) => {
                assert!(wait.is_some(), "the failure before the stall still counts");
                break;
            }
            Err(error) => assert!(
                Instant::now() < deadline,
                "the store did not come back within 10 s: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TCP relay in front of the server that can stall: while stalled, no
/// byte goes either way and connections stay open, as with a server that
/// hangs (a cut connection fails at once and proves no timeout). Stalled
/// connections stay stalled; new ones relay again once the stall ends.
struct StallingRelay {
    addr: String,
    stalled: Arc<AtomicBool>,
}

impl StallingRelay {
    async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let addr = listener.local_addr().expect("its address").to_string();
        let stalled = Arc::new(AtomicBool::new(false));
        let (flag, target) = (Arc::clone(&stalled), target.to_owned());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (flag, target) = (Arc::clone(&flag), target.clone());
                tokio::spawn(async move {
                    if flag.load(Ordering::SeqCst) {
                        // Accepted, never answered.
                        std::future::pending::<()>().await;
                    }
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = async {
                            while !flag.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        } => std::future::pending::<()>().await,
                    }
                });
            }
        });
        Self { addr, stalled }
    }

    async fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
        // Let the relay's tasks see it.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn migrated(clock: &ManualClock) -> PostgresStore {
    let store = store(&url(), Duration::from_secs(5), clock).await;
    store
        .migrate()
        .await
        .expect("PostgreSQL must be reachable for this suite");
    store
}

/// A client id no other run shares.
fn fresh_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("randomness");
    hex::encode(bytes)
}

/// How many of `counters` have a row, read straight from the table.
async fn rows(counters: &[Counter<'_>]) -> i64 {
    let pool = sqlx::PgPool::connect(&url())
        .await
        .expect("PostgreSQL is up");
    let names: Vec<String> = counters.iter().map(|c| c.key.name()).collect();
    sqlx::query_scalar("SELECT count(*) FROM tokengate_lockout WHERE key = ANY($1)")
        .bind(&names)
        .fetch_one(&pool)
        .await
        .expect("the lockout table exists")
}

/// The key of a value no other run uses.
fn fresh_key() -> CodeKey {
    CodeKey::of(&fresh_id())
}

/// A DPoP slot no other run uses.
fn fresh_slot() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("randomness");
    u64::from_le_bytes(bytes)
}

/// How many of `keys` have a row in `tokengate_replays`.
async fn replay_rows(keys: &[CodeKey]) -> i64 {
    let pool = sqlx::PgPool::connect(&url())
        .await
        .expect("PostgreSQL is up");
    let keys: Vec<Vec<u8>> = keys.iter().map(|key| key.as_bytes().to_vec()).collect();
    sqlx::query_scalar("SELECT count(*) FROM tokengate_replays WHERE key = ANY($1)")
        .bind(&keys)
        .fetch_one(&pool)
        .await
        .expect("the replays table exists")
}

/// How many of `slots` have a row in `tokengate_nonces`.
async fn nonce_rows(slots: &[u64]) -> i64 {
    let pool = sqlx::PgPool::connect(&url())
        .await
        .expect("PostgreSQL is up");
    let slots: Vec<i64> = slots.iter().map(|slot| slot.cast_signed()).collect();
    sqlx::query_scalar("SELECT count(*) FROM tokengate_nonces WHERE slot = ANY($1)")
        .bind(&slots)
        .fetch_one(&pool)
        .await
        .expect("the nonces table exists")
}
