//! The store conformance suite against PostgreSQL, plus an outage through a
//! relay that is cut and restored.
//!
//! Needs a PostgreSQL server (`TOKENGATE_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`): without one these tests
//! fail, they never skip. Every value the suite writes is random per run.

use std::time::Duration;

use tokio::sync::Mutex;

use tokengate::{
    clock::ManualClock,
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
/// tables, another test's live code included.
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
