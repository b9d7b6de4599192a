//! How `MemoryStore` scales with the number of live codes.
//!
//! - `redeem/1k` vs `redeem/1m`: one redemption with 1,000 and with
//!   1,000,000 live codes in the store (target: flat).
//! - bytes per live code: the heap a realistic code record costs, counted
//!   with `stats_alloc` (target: at most 256).
//! - the worst latency of a request while 1,000,000 expired codes are swept
//!   (the sweep must never stall requests).

#[path = "support/mod.rs"]
mod support;

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use criterion::{BatchSize, Criterion, criterion_main};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::now_or_never;
use tokengate::{
    MemoryStore, authorize::CodeRecord, clock::Clock, clock::ManualClock, pkce::PkceChallenge,
    store::Claim, store::CodeKey, store::CodeStore, store::Redemption,
};

/// Counts the heap, for bytes per code.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const LIFETIME: Duration = Duration::from_secs(600);

/// A record as the issuing side makes it: client, user, one scope, the
/// redirect URI and an S256 challenge.
fn record(clock: &ManualClock) -> CodeRecord {
    let now = clock.now();
    CodeRecord {
        client_id: "my-application".to_owned(),
        subject: "user-1234567".to_owned(),
        scopes: vec!["repo".to_owned()],
        redirect_uri: Some("https://app.example.com/oauth/callback".to_owned()),
        pkce: Some(PkceChallenge::s256(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        )),
        issued_at: now,
        expires_at: now + LIFETIME,
        dpop_jkt: None,
    }
}

fn key(i: u64) -> CodeKey {
    CodeKey::of(&format!("code-{i}"))
}

fn filled(count: u64) -> (MemoryStore, ManualClock) {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let template = record(&clock);
    for i in 0..count {
        now_or_never(CodeStore::issue(&store, key(i), template.clone())).expect("issued");
    }
    (store, clock)
}

fn redeem(c: &mut Criterion) {
    let mut group = c.benchmark_group("redeem");
    for (name, live) in [("1k", 1_000u64), ("1m", 1_000_000)] {
        let (store, clock) = filled(live);
        let template = record(&clock);
        let claim = Claim::new(Duration::from_secs(30)).expect("randomness");
        let mut next = live;
        group.bench_function(name, |bencher| {
            bencher.iter_batched(
                || {
                    // A fresh code each time, so every redemption succeeds;
                    // the store keeps `live` codes plus the used ones.
                    next += 1;
                    let k = key(next);
                    now_or_never(CodeStore::issue(&store, k, template.clone())).expect("issued");
                    k
                },
                |k| {
                    // A whole redemption: the claim, then its confirmation.
                    let outcome =
                        now_or_never(CodeStore::claim(&store, &k, &claim)).expect("claimed");
                    assert!(matches!(outcome, Redemption::Claimed(_)));
                    let used =
                        now_or_never(CodeStore::confirm(&store, &k, &claim)).expect("confirmed");
                    assert!(used);
                    black_box(outcome)
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// Heap bytes per live code, measured over 100,000 codes: the table, the
/// expiry queue and each record's own heap.
fn bytes_per_code() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    let template = record(&clock);
    let keys: Vec<CodeKey> = (0..100_000).map(key).collect();
    let region = Region::new(GLOBAL);
    for k in &keys {
        now_or_never(CodeStore::issue(&store, *k, template.clone())).expect("issued");
    }
    let change = region.change();
    let live = change.bytes_allocated as f64 - change.bytes_deallocated as f64;
    println!("bytes per live code: {:.0}\n", live / 100_000.0);
    black_box(store);
}

/// The longest a request waits while 1,000,000 expired codes are swept:
/// requests keep coming (a redemption each) until the store is empty.
fn sweep_stall() {
    let (store, clock) = filled(1_000_000);
    clock.advance(LIFETIME + Duration::from_secs(60));
    let mut worst = Duration::ZERO;
    let mut times = Vec::new();
    let started = Instant::now();
    let mut calls = 0u64;
    let claim = Claim::new(Duration::from_secs(30)).expect("randomness");
    while store.code_count() > 0 && started.elapsed() < Duration::from_secs(30) {
        let t = Instant::now();
        let outcome =
            now_or_never(CodeStore::claim(&store, &key(calls), &claim)).expect("answered");
        let elapsed = t.elapsed();
        assert!(matches!(outcome, Redemption::Unknown));
        worst = worst.max(elapsed);
        times.push(elapsed);
        calls += 1;
    }
    times.sort_unstable();
    println!(
        "sweeping 1,000,000 expired codes: {calls} requests in {:?}; per request p50 {:?}, p99 {:?}, worst {worst:?}; {} codes left\n",
        started.elapsed(),
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        store.code_count()
    );
}

fn benches() {
    let mut criterion = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    redeem(&mut criterion);
    let bench_mode = std::env::args().any(|arg| arg == "--bench");
    if bench_mode {
        bytes_per_code();
        sweep_stall();
    }
}

criterion_main!(benches);
