//! How many Redis round trips the lockout costs a token request, counted by
//! the server itself (`INFO commandstats`): one script per check, one more
//! per counted failure. Alone in its test binary, so no other test's commands mix in
//! (cargo runs test binaries one after another).
//!
//! Needs a Redis server (`TOKENGATE_REDIS_URL`, default
//! `redis://127.0.0.1:6379`): without one this test fails, it never skips.

use std::{net::SocketAddr, time::Duration};

use tokengate::{
    Client, Dialect, MemoryStore, TokenGateLayer,
    testing::{TokenRequest, pkce_pair},
};
use tokengate_redis::RedisStore;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_trip_per_check_and_one_per_failure() {
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
