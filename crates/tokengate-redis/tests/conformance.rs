//! The store conformance suite against Redis, plus an outage through a
//! relay that is cut and restored.
//!
//! Needs a Redis server (`TOKENGATE_REDIS_URL`, default
//! `redis://127.0.0.1:6379`): without one these tests fail, they never skip.
//! Every run uses a key prefix of its own, so runs never mix data.

use std::time::Duration;

use tokengate::{
    clock::ManualClock,
    testing::conformance::{self, Relay},
};
use tokengate_redis::RedisStore;

fn url() -> String {
    std::env::var("TOKENGATE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A prefix no other run shares.
fn prefix() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("randomness");
    format!("tokengate-test-{}", hex::encode(bytes))
}

async fn store(url: &str, timeout: Duration) -> RedisStore {
    RedisStore::connect_with(url, &prefix(), timeout)
        .await
        .expect("a valid Redis URL")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let store = store(&url(), Duration::from_secs(2)).await;
    conformance::run_clients(&store, |client| {
        let store = store.clone();
        async move { store.insert_client(&client).await.expect("Redis is up") }
    })
    .await;
    conformance::run(store, ManualClock::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_and_recovery() {
    let url = url();
    let authority = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let relay = Relay::start(authority.split('/').next().unwrap_or(authority)).await;
    let timeout = Duration::from_millis(500);
    let store = store(&format!("redis://{}", relay.addr()), timeout).await;
    conformance::outage_and_recovery(store, ManualClock::new(), &relay, timeout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_store() {
    conformance::lockout_store_contract(store(&url(), Duration::from_secs(2)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_store() {
    conformance::replay_store_contract(store(&url(), Duration::from_secs(2)).await).await;
}
