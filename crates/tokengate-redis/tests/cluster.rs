//! The store conformance suite against a Redis Cluster: three masters with
//! one replica each, which `.ci/redis-cluster start` runs on 127.0.0.1
//! ports 7000 to 7005.
//!
//! Ignored by a plain `cargo test` (they need the cluster); `.ci/run` starts
//! the cluster and runs them with `-- --ignored`, and they fail, never
//! skip, when it is unreachable. `TOKENGATE_REDIS_CLUSTER_URL` names another
//! cluster (`redis+cluster://HOST:PORT,HOST:PORT,...`). Every run uses a key
//! prefix of its own.

use std::time::Duration;

use tokengate::{clock::ManualClock, testing::conformance};
use tokengate_redis::RedisStore;

fn url() -> String {
    std::env::var("TOKENGATE_REDIS_CLUSTER_URL").unwrap_or_else(|_| {
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002".to_owned()
    })
}

fn prefix() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("randomness");
    format!("tokengate-test-{}", hex::encode(bytes))
}

async fn store() -> RedisStore {
    let store = RedisStore::connect_with(&url(), &prefix(), Duration::from_secs(2))
        .await
        .expect("a valid Redis Cluster URL");
    // Fail, never skip: the cluster must be there.
    let probe = tokengate::Client::confidential("probe").with_secret("s3cret");
    store
        .insert_client(&probe)
        .await
        .expect("the Redis Cluster is reachable (.ci/redis-cluster start)");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster: .ci/redis-cluster start"]
async fn conformance_on_a_cluster() {
    let store = store().await;
    conformance::run_clients(&store, |client| {
        let store = store.clone();
        async move {
            store
                .insert_client(&client)
                .await
                .expect("the cluster is up");
        }
    })
    .await;
    conformance::run(store, ManualClock::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster: .ci/redis-cluster start"]
async fn lockout_store_on_a_cluster() {
    conformance::lockout_store_contract(store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster: .ci/redis-cluster start"]
async fn replay_store_on_a_cluster() {
    conformance::replay_store_contract(store().await).await;
}

/// A key prefix with a hash tag would pin every key to one slot: refused.
#[tokio::test]
async fn a_prefix_with_a_hash_tag_is_refused() {
    for prefix in ["{tg}", "a{b", "c}"] {
        let error = RedisStore::connect_with(&url(), prefix, Duration::from_secs(1))
            .await
            .expect_err("a prefix with a brace");
        assert!(error.to_string().contains("hash tag"), "{error}");
    }
    for url in [
        "redis+cluster://",
        "redis+cluster://h:1,,h:2",
        "redis+cluster://h:1/0",
    ] {
        let error = RedisStore::connect(url).await.expect_err(url);
        assert!(
            error.to_string().contains("Redis Cluster URL"),
            "{url}: {error}"
        );
    }
}

/// A code of `app` for `alice`, live for ten minutes.
fn code_record() -> tokengate::authorize::CodeRecord {
    let now = std::time::SystemTime::now();
    tokengate::authorize::CodeRecord {
        client_id: "app".into(),
        subject: "alice".into(),
        scopes: vec![],
        redirect_uri: None,
        pkce: None,
        issued_at: now,
        expires_at: now + Duration::from_secs(600),
        dpop_jkt: None,
    }
}

/// A node of the cluster, addressed alone (no cluster client): to move a
/// slot under the store's feet.
async fn node(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .expect("a node URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the cluster's node answers")
}

/// The masters: (port, node id, slot ranges), from `CLUSTER NODES`.
async fn masters() -> Vec<(u16, String, Vec<(u16, u16)>)> {
    let port = seed_port();
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut node(port).await)
        .await
        .expect("CLUSTER NODES");
    text.lines()
        .filter(|line| line.contains("master") && !line.contains("fail"))
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let port = fields[1].split([':', '@']).nth(1).unwrap().parse().unwrap();
            let ranges = fields[8..]
                .iter()
                .filter(|range| !range.starts_with('['))
                .map(|range| match range.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                    None => (range.parse().unwrap(), range.parse().unwrap()),
                })
                .collect();
            (port, fields[0].to_owned(), ranges)
        })
        .collect()
}

fn seed_port() -> u16 {
    url()
        .trim_start_matches("redis+cluster://")
        .split(',')
        .next()
        .and_then(|seed| seed.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .expect("a seed with a port")
}

/// Redis Cluster's slot of a key (no hash tag in code keys).
fn slot(key: &str) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(key.as_bytes()) % 16384
}

/// A slot moved from one master to another while codes in it are issued
/// and redeemed: mid-move, the source answers `ASK` for the codes already
/// moved; after it, `MOVED` for all. The store follows both, and every
/// code still redeems exactly once, with its claim and confirmation
/// replicated on the node that holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster: .ci/redis-cluster start"]
async fn a_slot_moved_under_the_store_is_followed() {
    use tokengate::store::{Claim, CodeKey, CodeStore, Redemption};

    let prefix = prefix();
    let store = RedisStore::connect_with(&url(), &prefix, Duration::from_secs(2))
        .await
        .expect("a valid Redis Cluster URL");
    let key_of = |code: &str| format!("{prefix}:code:{}", CodeKey::of(code).to_hex());
    // Ten codes in one slot: the first code's.
    let target_slot = slot(&key_of("code-0"));
    let mut codes = vec!["code-0".to_owned()];
    let mut n = 1u64;
    while codes.len() < 10 {
        let code = format!("code-{n}");
        if slot(&key_of(&code)) == target_slot {
            codes.push(code);
        }
        n += 1;
    }
    let record = code_record();
    for code in &codes {
        CodeStore::issue(&store, CodeKey::of(code), record.clone())
            .await
            .expect("the cluster is up");
    }
    let masters = masters().await;
    let (source_port, source_id, _) = masters
        .iter()
        .find(|(_, _, ranges)| ranges.iter().any(|&(a, b)| (a..=b).contains(&target_slot)))
        .cloned()
        .expect("a master serves the slot");
    let (target_port, target_id, _) = masters
        .iter()
        .find(|(port, _, _)| *port != source_port)
        .cloned()
        .expect("another master");
    begin_move(
        target_slot,
        (source_port, &source_id),
        (target_port, &target_id),
    )
    .await;
    let keys: Vec<String> = codes.iter().map(|code| key_of(code)).collect();

    let redeem = |code: String| {
        let store = store.clone();
        async move {
            let claim = Claim::new(Duration::from_secs(30)).unwrap();
            let key = CodeKey::of(&code);
            let claimed = store.claim(&key, &claim).await.expect("claimed");
            assert!(matches!(claimed, Redemption::Claimed(_)), "{code}");
            assert!(
                store.confirm(&key, &claim).await.expect("confirmed"),
                "{code}"
            );
            let again = store
                .claim(&key, &Claim::new(Duration::from_secs(30)).unwrap())
                .await
                .expect("read again");
            assert!(matches!(again, Redemption::Used(_)), "{code}: once only");
        }
    };
    // Mid-move: codes 0 to 2 moved (ASK from the source), 3 and 4 not yet.
    let _: () = migrate(target_port, &keys[..3])
        .query_async(&mut node(source_port).await)
        .await
        .unwrap();
    for code in &codes[..5] {
        redeem(code.clone()).await;
    }
    // The move completes: every master learns the slot's new owner; the
    // store, still holding the old layout, gets `MOVED`.
    end_move(target_slot, source_port, (target_port, &target_id)).await;
    for code in &codes[5..] {
        redeem(code.clone()).await;
    }
    // Codes redeemed before the move stay used after it.
    for code in &codes[..5] {
        let again = store
            .claim(
                &CodeKey::of(code),
                &Claim::new(Duration::from_secs(30)).unwrap(),
            )
            .await
            .expect("read again");
        assert!(
            matches!(again, Redemption::Used(_)),
            "{code}: used before the move"
        );
    }
    // Put the slot back where it was, for the next run.
    begin_move(
        target_slot,
        (target_port, &target_id),
        (source_port, &source_id),
    )
    .await;
    end_move(target_slot, target_port, (source_port, &source_id)).await;
}

fn setslot(slot: u16, state: &str, id: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SETSLOT").arg(slot).arg(state).arg(id);
    cmd
}

fn migrate(to_port: u16, keys: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd("MIGRATE");
    cmd.arg("127.0.0.1")
        .arg(to_port)
        .arg("")
        .arg(0)
        .arg(5000)
        .arg("KEYS")
        .arg(keys);
    cmd
}

/// Marks `slot` as moving from one master (port, id) to another.
async fn begin_move(slot: u16, (from, from_id): (u16, &str), (to, to_id): (u16, &str)) {
    let _: () = setslot(slot, "IMPORTING", from_id)
        .query_async(&mut node(to).await)
        .await
        .unwrap();
    let _: () = setslot(slot, "MIGRATING", to_id)
        .query_async(&mut node(from).await)
        .await
        .unwrap();
}

/// Moves every key left in `slot` (any run's) to the new master, then tells
/// every master who owns it now.
async fn end_move(slot: u16, from: u16, (to, to_id): (u16, &str)) {
    let mut source = node(from).await;
    loop {
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(100)
            .query_async(&mut source)
            .await
            .unwrap();
        if keys.is_empty() {
            break;
        }
        let _: () = migrate(to, &keys).query_async(&mut source).await.unwrap();
    }
    for (port, _, _) in masters().await {
        let _: () = setslot(slot, "NODE", to_id)
            .query_async(&mut node(port).await)
            .await
            .unwrap();
    }
}

/// On a cluster too, and for a write that waits for replicas (a pipeline of
/// the script and `WAIT`): nodes that forgot the scripts get them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Redis Cluster: .ci/redis-cluster start"]
async fn scripts_a_cluster_forgot_are_loaded_again() {
    use tokengate::store::{CodeKey, CodeStore};

    let store = store().await;
    for (port, _, _) in masters().await {
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut node(port).await)
            .await
            .unwrap();
    }
    let record = code_record();
    for n in 0..12 {
        CodeStore::issue(
            &store,
            CodeKey::of(&format!("flushed-{n}-{}", prefix())),
            record.clone(),
        )
        .await
        .expect("issued, the script loaded again");
    }
}
