//! Several gate processes, one store: two demo servers share Redis (then
//! PostgreSQL); codes issued through one are redeemed through both at once,
//! and each code gives exactly one token.
//!
//! Needs the `redis` / `postgres` features and their servers (see
//! `tests/store_suite.rs` for the URLs); `.ci/run` runs it.

#![cfg(any(feature = "redis", feature = "postgres"))]

mod common;

use std::sync::Arc;

use common::demo::*;

/// The demo binary with the backends compiled in (`cargo test --test ..`
/// does not build examples, and a plain `cargo test` builds them without
/// features).
fn build_demo_with_backends() {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--example", "server", "--all-features"])
            .status()
            .unwrap();
        assert!(status.success(), "cannot build the demo server");
    });
}

async fn one_token_per_code(store: &str) {
    build_demo_with_backends();
    let a = start(&["--store", store, "--dialect", "rfc6749"]);
    let b = start(&["--store", store, "--dialect", "rfc6749"]);
    let mut codes = Vec::new();
    for _ in 0..20 {
        codes.push(authorize(&a.addr, "demo-client").await);
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
    for task in tasks {
        let reply = task.await.unwrap();
        let json = reply.json();
        if json.get("access_token").is_some() {
            assert_eq!(reply.status, 200);
            tokens += 1;
        } else {
            assert_eq!(json["error"], "invalid_grant", "{json}");
        }
    }
    assert_eq!(tokens, codes.len(), "exactly one token per code");
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

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_redis() {
    let url = std::env::var("TOKENGATE_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    one_token_per_code(&url).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_postgres() {
    let url = std::env::var("TOKENGATE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    one_token_per_code(&url).await;
}
