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
