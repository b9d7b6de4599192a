//! The store conformance suite against Redis, plus an outage through a
//! relay that is cut and restored.
//!
//! Needs a Redis server (`TOKENGATE_REDIS_URL`, default
//! `redis://127.0.0.1:6379`): without one these tests fail, they never skip.
//! Every run uses a key prefix of its own, so runs never mix data.

use std::time::Duration;

use tokengate::{
    Client,
    client::{AuthMethod, ClientRecord, Jwks},
    clock::ManualClock,
    store::ClientStore,
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

/// The fields a client registers beyond the first ones (its method, keys,
/// JWT secret, DPoP binding, whether it may introspect) survive the store:
/// a client reads back equal, and registering it again without them clears
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_clients_round_trip() {
    let store = store(&url(), Duration::from_secs(2)).await;

    for client in signed_clients() {
        let written = ClientRecord::from(&client);
        assert!(
            written.token_endpoint_auth_method.is_some()
                || written.dpop_bound_access_tokens
                || written.introspect,
            "each client sets a new field: {written:?}"
        );
        store.insert_client(&client).await.expect("Redis is up");
        let read = store
            .client(client.client_id())
            .await
            .expect("Redis is up")
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
        store.insert_client(&client).await.expect("Redis is up");
        let plain = Client::confidential(&id).with_secret("s3cret");
        store.insert_client(&plain).await.expect("Redis is up");
        let read = store
            .client(&id)
            .await
            .expect("Redis is up")
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
        Client::confidential(unique_id("keys"))
            .with_redirect_uri("https://client.example.com/cb")
            .with_jwks(jwks)
            .with_dpop_bound_access_tokens(true),
        Client::confidential(unique_id("hmac")).with_jwt_secret("a shared secret of some length"),
        Client::confidential(unique_id("post"))
            .with_secret("s3cret")
            .with_auth_method(AuthMethod::ClientSecretPost),
        Client::public(unique_id("dpop")).with_dpop_bound_access_tokens(true),
        Client::confidential(unique_id("introspect"))
            .with_secret("s3cret")
            .with_introspection(true),
    ]
}

/// A client id no other run shares.
fn unique_id(name: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("randomness");
    format!("{name}-{}", hex::encode(bytes))
}

/// A call sent again after its reply was lost (a client library's retry
/// over a new connection: the cluster client does this) answers as the
/// first did: a claim sent twice is still this claim's, not `Busy` (which
/// consume-on-read mode would take for a replay and revoke a family for),
/// and a confirmation sent twice still `true`. Another claim is refused all
/// along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_sent_again_answers_as_the_first() {
    use std::time::SystemTime;
    use tokengate::{
        refresh::RefreshRecord,
        store::{Claim, CodeKey, Redemption, RefreshStore},
    };

    let store = store(&url(), Duration::from_secs(2)).await;
    let now = SystemTime::now();
    let key = CodeKey::of(&unique_id("token"));
    let record = RefreshRecord {
        client_id: "app".into(),
        subject: "alice".into(),
        scopes: vec![],
        family: unique_id("family"),
        issued_at: now,
        expires_at: now + Duration::from_secs(600),
        dpop_jkt: None,
    };
    store.issue(key, record).await.expect("Redis is up");
    let claim = Claim::new(Duration::from_secs(30)).unwrap();
    let other = Claim::new(Duration::from_secs(30)).unwrap();
    for _ in 0..2 {
        assert!(matches!(
            store.claim(&key, &claim).await,
            Ok(Redemption::Claimed(_))
        ));
        assert!(matches!(
            store.claim(&key, &other).await,
            Ok(Redemption::Busy)
        ));
    }
    for _ in 0..2 {
        assert!(store.confirm(&key, &claim).await.expect("Redis is up"));
        assert!(!store.confirm(&key, &other).await.expect("Redis is up"));
    }
    assert!(matches!(
        store.claim(&key, &claim).await,
        Ok(Redemption::Used(_))
    ));
}

/// A server that forgot the scripts (`SCRIPT FLUSH`, a restart, a failover
/// to a node that never loaded them) answers `NOSCRIPT`: the store loads
/// the script and runs the call again, and the caller never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_the_server_forgot_are_loaded_again() {
    use tokengate::store::{CodeKey, Lookup, RefreshStore};

    let store = store(&url(), Duration::from_secs(2)).await;
    let key = CodeKey::of(&unique_id("token"));
    let mut direct = redis::Client::open(url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis is up");
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut direct)
        .await
        .unwrap();
    assert_eq!(
        store.find(&key).await.expect("loaded again"),
        Lookup::Unknown
    );
}
