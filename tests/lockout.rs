//! The brute-force defence: failed authentications and redemptions per
//! client id (and per address), 429 with `Retry-After` past the threshold,
//! without touching a store.

mod common;

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::*;
use tokengate::{
    Client, Dialect, MemoryStore, StoreError, TokenGateLayer, clock::ManualClock, lockout::Lockout,
    store::ClientStore,
};

fn wrong_secret(code: &str) -> String {
    exchange(code).replace("client_secret=s3cret", "client_secret=guess")
}

#[tokio::test]
async fn ten_wrong_secrets_lock_the_client_id_out_for_the_window() {
    let h = Harness::new(Dialect::Rfc6749);
    for _ in 0..10 {
        let code = h.app_code().await;
        h.refused(post(&wrong_secret(&code)))
            .await
            .assert_rfc(401, "invalid_client");
    }
    // The right secret now: refused all the same, at once.
    let code = h.app_code().await;
    let answer = h.refused(post(&exchange(&code))).await;
    answer.assert_rfc(429, "temporarily_unavailable");
    assert_eq!(answer.header("retry-after"), Some("60"));
    assert_eq!(answer.rejection.as_ref().unwrap().retry_after(), Some(60));
    // Another client is not affected.
    let body = exchange("not-a-code").replace(
        "client_id=app&client_secret=s3cret",
        "client_id=other&client_secret=other-s3cret",
    );
    h.refused(post(&body))
        .await
        .assert_rfc(400, "invalid_grant");
    // The wait counts down with the clock, and ends with the window.
    h.clock.advance(Duration::from_secs(45));
    let answer = h.refused(post(&exchange(&code))).await;
    assert_eq!(answer.header("retry-after"), Some("15"));
    h.clock.advance(Duration::from_secs(15));
    let (answer, _) = h.forwarded(post(&exchange(&code))).await;
    assert_eq!(
        answer.status,
        200,
        "the code survived the lockout: {}",
        answer.text()
    );
}

/// client_secret_basic: the id the header names is the one counted and
/// locked out, not whatever the body says (here: nothing).
#[tokio::test]
async fn wrong_basic_secrets_lock_the_client_id_out_too() {
    let h = Harness::new(Dialect::Rfc6749);
    let basic_body = |code: &str| exchange(code).replace("&client_id=app&client_secret=s3cret", "");
    for _ in 0..10 {
        let code = h.app_code().await;
        h.refused(post_basic("app", "guess", &basic_body(&code)))
            .await
            .assert_rfc(401, "invalid_client");
    }
    // The right secret now, in the header or in the body: refused at once.
    let code = h.app_code().await;
    let answer = h
        .refused(post_basic("app", "s3cret", &basic_body(&code)))
        .await;
    answer.assert_rfc(429, "temporarily_unavailable");
    assert_eq!(answer.header("retry-after"), Some("60"));
    h.refused(post(&exchange(&code)))
        .await
        .assert_rfc(429, "temporarily_unavailable");
    // Another client's Basic credentials still work.
    let body = basic_body("not-a-code");
    h.refused(post_basic("other", "other-s3cret", &body))
        .await
        .assert_rfc(400, "invalid_grant");
    // And the window ends: the code survived.
    h.clock.advance(Duration::from_secs(60));
    let (answer, _) = h
        .forwarded(post_basic("app", "s3cret", &basic_body(&code)))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[tokio::test]
async fn github_dialect_answers_429_in_the_negotiated_format() {
    let h = Harness::new(Dialect::GitHub);
    for _ in 0..10 {
        h.refused(post(&wrong_secret("whatever")))
            .await
            .assert_github("incorrect_client_credentials");
    }
    let answer = h
        .refused(with_accept(post(&exchange("whatever")), "application/json"))
        .await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.json()["error"], "temporarily_unavailable");
    assert_eq!(answer.header("retry-after"), Some("60"));
    answer.assert_no_store();
}

#[tokio::test]
async fn failed_redemptions_count_too() {
    let h = Harness::new(Dialect::Rfc6749);
    for i in 0..10 {
        h.refused(post(&exchange(&format!("guessed-code-{i}"))))
            .await
            .assert_rfc(400, "invalid_grant");
    }
    h.refused(post(&exchange("one-more")))
        .await
        .assert_rfc(429, "temporarily_unavailable");
    let h = Harness::new(Dialect::Rfc6749);
    for _ in 0..10 {
        let code = h.app_code().await;
        h.refused(post(&exchange(&code).replace(VERIFIER, &"v".repeat(43))))
            .await
            .assert_rfc(400, "invalid_grant");
    }
    h.refused(post(&exchange("x")))
        .await
        .assert_rfc(429, "temporarily_unavailable");
}

#[tokio::test]
async fn mistakes_that_guess_nothing_do_not_count() {
    let h = Harness::new(Dialect::Rfc6749);
    for _ in 0..30 {
        let body = exchange("x").replace("grant_type=authorization_code&", "");
        h.refused(post(&body))
            .await
            .assert_rfc(400, "invalid_request");
        let body = exchange("x").replace("authorization_code", "password");
        h.refused(post(&body))
            .await
            .assert_rfc(400, "unsupported_grant_type");
    }
    let code = h.app_code().await;
    let (answer, _) = h.forwarded(post(&exchange(&code))).await;
    assert_eq!(answer.status, 200);
}

/// Counts look-ups, to show a locked-out request asks no store.
#[derive(Clone)]
struct Counting {
    inner: MemoryStore,
    lookups: Arc<AtomicUsize>,
}

impl ClientStore for Counting {
    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.client(client_id).await
    }
}

#[tokio::test]
async fn a_locked_out_request_touches_no_store() {
    let store = MemoryStore::new();
    store.insert_client(
        Client::confidential("app")
            .with_secret("s3cret")
            .with_redirect_uri(CB),
    );
    let lookups = Arc::new(AtomicUsize::new(0));
    let layer = TokenGateLayer::builder()
        .store(store.clone())
        .issuer("https://auth.example.com")
        .realm("tokengate-test")
        .client_store(Counting {
            inner: store,
            lookups: Arc::clone(&lookups),
        })
        .build();
    let h = Harness {
        layer,
        ..Harness::new(Dialect::Rfc6749)
    };
    for _ in 0..10 {
        h.refused(post(&wrong_secret("x")))
            .await
            .assert_rfc(401, "invalid_client");
    }
    assert_eq!(lookups.load(Ordering::SeqCst), 10);
    for _ in 0..100 {
        h.refused(post(&exchange("x")))
            .await
            .assert_rfc(429, "temporarily_unavailable");
    }
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        10,
        "no look-up while locked out"
    );
}

#[tokio::test]
async fn a_peer_extractor_locks_out_an_address_across_client_ids() {
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.lockout(Some(Lockout::new(5, Duration::from_secs(60)).peer(
            |parts| {
                parts
                    .headers
                    .get("x-peer")?
                    .to_str()
                    .ok()?
                    .parse::<IpAddr>()
                    .ok()
            },
        )))
    });
    let from = |body: &str, peer: &str| {
        let mut request = post(body);
        request
            .headers_mut()
            .insert("x-peer", peer.parse().unwrap());
        request
    };
    for i in 0..5 {
        // A different made-up client id each time: no id reaches five.
        let body = wrong_secret("x").replace("client_id=app", &format!("client_id=ghost-{i}"));
        h.refused(from(&body, "192.0.2.1"))
            .await
            .assert_rfc(401, "invalid_client");
    }
    h.refused(from(&exchange("x"), "192.0.2.1"))
        .await
        .assert_rfc(429, "temporarily_unavailable");
    // Another address, the same client: fine.
    let code = h.app_code().await;
    let (answer, _) = h.forwarded(from(&exchange(&code), "192.0.2.2")).await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn turned_off_it_never_answers_429() {
    let h = Harness::with(Dialect::Rfc6749, |b| b.lockout(None));
    for _ in 0..50 {
        h.refused(post(&wrong_secret("x")))
            .await
            .assert_rfc(401, "invalid_client");
    }
    let code = h.app_code().await;
    let (answer, _) = h.forwarded(post(&exchange(&code))).await;
    assert_eq!(answer.status, 200);
}

#[test]
fn a_lockout_needs_a_threshold_and_a_window() {
    for lockout in [
        Lockout::new(0, Duration::from_secs(60)),
        Lockout::new(10, Duration::ZERO),
        Lockout::default().capacity(0),
        Lockout::new(10, Duration::MAX),
    ] {
        let built = TokenGateLayer::builder()
            .store(MemoryStore::new())
            .issuer("https://auth.example.com")
            .lockout(Some(lockout))
            .try_build();
        assert!(built.is_err());
    }
}

#[test]
fn a_window_of_ten_years_is_the_longest() {
    const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
    let build = |window| {
        TokenGateLayer::builder()
            .store(MemoryStore::new())
            .issuer("https://auth.example.com")
            .lockout(Some(Lockout::new(10, window)))
            .try_build()
    };
    for window in [
        Duration::from_secs(1),
        Duration::from_secs(8 * 24 * 3600),
        Duration::from_secs(2 * 365 * 24 * 3600),
        TEN_YEARS,
    ] {
        assert!(build(window).is_ok(), "{window:?}");
    }
    assert!(build(TEN_YEARS + Duration::from_secs(1)).is_err());
}

/// What an operator sees of the lockout in the layer's Debug output (and
/// of a `Lockout` itself): the numbers in force, and whether addresses are
/// counted.
#[test]
fn the_lockout_settings_show_in_debug_output() {
    let lockout = Lockout::new(5, Duration::from_secs(300))
        .capacity(1000)
        .peer(|_| None);
    assert_eq!(
        format!("{lockout:?}"),
        "Lockout { failures: 5, window: 300s, capacity: 1000, peer: true }"
    );
    let layer = TokenGateLayer::builder()
        .store(MemoryStore::new())
        .issuer("https://auth.example.com")
        .lockout(Some(lockout))
        .build();
    let shown = format!("{layer:?}");
    assert!(
        shown.contains(
            "lockout: Some(Lockout { failures: 5, window: 300s, capacity: 1000, peer: true })"
        ),
        "{shown}"
    );
    assert_eq!(
        format!("{:?}", Lockout::default()),
        "Lockout { failures: 10, window: 60s, capacity: 65536, peer: false }"
    );
}

/// `Retry-After` is whole seconds, rounded up: never an invitation to retry
/// before the window ends.
#[tokio::test]
async fn a_wait_with_a_fraction_of_a_second_is_rounded_up() {
    let h = Harness::new(Dialect::Rfc6749);
    for _ in 0..10 {
        h.refused(post(&wrong_secret("x")))
            .await
            .assert_rfc(401, "invalid_client");
    }
    for (advance, retry_after) in [(44_500, "16"), (15_000, "1"), (400, "1")] {
        h.clock.advance(Duration::from_millis(advance));
        let answer = h.refused(post(&exchange("x"))).await;
        answer.assert_rfc(429, "temporarily_unavailable");
        assert_eq!(answer.header("retry-after"), Some(retry_after), "{advance}");
    }
    // 59.9 s in, and 0.1 s later the window is over.
    h.clock.advance(Duration::from_millis(100));
    h.refused(post(&exchange("x")))
        .await
        .assert_rfc(400, "invalid_grant");
}

/// The address the new per-peer lockout finds by default; harmless to the
/// per-id one.
fn from_peer(mut request: http::Request<String>) -> http::Request<String> {
    request
        .extensions_mut()
        .insert(std::net::SocketAddr::from(([192, 0, 2, 1], 1234)));
    request
}

/// Issue 12: a code or refresh token that was valid once for the client
/// presenting it (used, rotated, expired) is no guess. Its owner retrying
/// it, with the right credentials, is never locked out by that; an unknown
/// value, or another client's, still counts.
///
/// Expired here means expired by the gate's clock while the store, on its
/// own clock (a Redis TTL, say), still answers with the record. A store
/// that has forgotten a value (expired by its own clock, or revoked) answers
/// `Unknown`, which the gate cannot tell from a guess.
#[tokio::test]
async fn a_value_that_was_valid_once_is_not_counted_but_an_unknown_one_is() {
    const N: u32 = 3;
    for dialect in [Dialect::Rfc6749, Dialect::GitHub] {
        let gate_clock = ManualClock::new();
        let h = Harness::with(dialect, |b| {
            b.lockout(Some(Lockout::new(N, Duration::from_secs(60))))
                .clock(gate_clock.clone())
        });
        let refused = |answer: &Answer| match dialect {
            Dialect::Rfc6749 => answer.assert_rfc(400, "invalid_grant"),
            _ => {
                let error = answer.form()["error"].clone();
                assert!(
                    error == "bad_verification_code" || error == "bad_refresh_token",
                    "{}",
                    answer.text()
                );
            }
        };
        // A used code, presented N + 1 times by its own client.
        let code = h.app_code().await;
        let (answer, _) = h.forwarded(from_peer(post(&exchange(&code)))).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        for _ in 0..=N {
            refused(&h.refused(from_peer(post(&exchange(&code)))).await);
        }
        // A rotated-away refresh token, presented again: a replay, which
        // revokes its family.
        let token = h.app_refresh_token().await;
        let refresh = format!(
            "grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret"
        );
        let (answer, _) = h.forwarded(from_peer(post(&refresh))).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        refused(&h.refused(from_peer(post(&refresh))).await);
        // A code and a refresh token expired by the gate's clock.
        let expired_code = h.app_code().await;
        let expired_token = h.app_refresh_token().await;
        gate_clock.advance(Duration::from_secs(30 * 24 * 3600));
        let expired_refresh = format!(
            "grant_type=refresh_token&refresh_token={expired_token}&client_id=app&client_secret=s3cret"
        );
        for _ in 0..=N {
            refused(&h.refused(from_peer(post(&exchange(&expired_code)))).await);
            refused(&h.refused(from_peer(post(&expired_refresh))).await);
        }
        // None of that counted: the client still gets a token.
        let code = h.app_code().await;
        let (answer, _) = h.forwarded(from_peer(post(&exchange(&code)))).await;
        assert_eq!(answer.status, 200, "{dialect:?}: {}", answer.text());

        // N unknown codes do lock it out.
        for i in 0..N {
            refused(
                &h.refused(from_peer(post(&exchange(&format!("guess-{i}")))))
                    .await,
            );
        }
        let code = h.app_code().await;
        let answer = h.refused(from_peer(post(&exchange(&code)))).await;
        assert_eq!(answer.status, 429, "{dialect:?}: {}", answer.text());
    }
}

/// A used code presented by another client is a stranger's guess: counted
/// against that client.
#[tokio::test]
async fn another_clients_used_code_still_counts() {
    const N: u32 = 3;
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.lockout(Some(Lockout::new(N, Duration::from_secs(60))))
    });
    let code = h.app_code().await;
    let (answer, _) = h.forwarded(from_peer(post(&exchange(&code)))).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let stolen = exchange(&code).replace(
        "client_id=app&client_secret=s3cret",
        "client_id=other&client_secret=other-s3cret",
    );
    for _ in 0..N {
        h.refused(from_peer(post(&stolen)))
            .await
            .assert_rfc(400, "invalid_grant");
    }
    h.refused(from_peer(post(&stolen)))
        .await
        .assert_rfc(429, "temporarily_unavailable");
}

/// An expired device code answers `expired_token` during its tombstone: a
/// device polling on past expiry is late, not guessing.
#[tokio::test]
async fn polls_of_an_expired_device_code_are_not_counted() {
    const N: u32 = 3;
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.lockout(Some(Lockout::new(N, Duration::from_secs(600))))
    });
    let answer = h.refused(post_device("client_id=tv")).await;
    let device_code = answer.json()["device_code"].as_str().unwrap().to_owned();
    let poll = format!("grant_type={DEVICE_GRANT}&client_id=tv&device_code={device_code}");
    h.clock.advance(Duration::from_secs(900));
    for _ in 0..=N {
        h.clock.advance(Duration::from_secs(10));
        h.refused(from_peer(post(&poll)))
            .await
            .assert_rfc(400, "expired_token");
    }
    // Unknown device codes do count.
    for i in 0..N {
        let guess = format!("grant_type={DEVICE_GRANT}&client_id=tv&device_code=guess-{i}");
        h.refused(from_peer(post(&guess)))
            .await
            .assert_rfc(400, "invalid_grant");
    }
    h.refused(from_peer(post(&poll)))
        .await
        .assert_rfc(429, "temporarily_unavailable");
}
