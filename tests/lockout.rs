//! The brute-force defence: failed authentications and redemptions per
//! peer and per client id within a peer, 429 with `Retry-After` past the
//! threshold, without touching a store; and nothing a stranger can aim at
//! another peer.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::*;
use tokengate::{
    Client, Dialect, MemoryStore, StoreError, TokenGateLayer,
    clock::ManualClock,
    lockout::Lockout,
    peer::PeerSource,
    store::{ClientStore, Counter, LockoutStore},
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
    // The same client from another address is not affected: failures from
    // one peer never refuse another's valid credentials.
    let elsewhere = h.app_code().await;
    let (answer, _) = h
        .forwarded(from_peer(post(&exchange(&elsewhere)), "198.51.100.7"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // Another client from the same address is not affected either.
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
async fn one_peer_is_locked_out_across_client_ids_past_its_own_limit() {
    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.lockout(Some(Lockout::new(5, Duration::from_secs(60)).per_peer(8)))
    });
    for i in 0..8 {
        // A different made-up client id each time: no id reaches five.
        let body = wrong_secret("x").replace("client_id=app", &format!("client_id=ghost-{i}"));
        h.refused(post(&body))
            .await
            .assert_rfc(401, "invalid_client");
    }
    h.refused(post(&exchange("x")))
        .await
        .assert_rfc(429, "temporarily_unavailable");
    // Another address, the same client: fine.
    let code = h.app_code().await;
    let (answer, _) = h
        .forwarded(from_peer(post(&exchange(&code)), "192.0.2.2"))
        .await;
    assert_eq!(answer.status, 200);
}

/// The attack of the issue: a stranger who knows a client id (ids are
/// public) sends wrong secrets, or bogus refresh tokens for a public
/// client, as fast as they like. The app's own requests, from anywhere
/// else, keep working.
#[tokio::test]
async fn a_stranger_cannot_lock_an_app_out() {
    let h = Harness::new(Dialect::Rfc6749);
    let attacker = "203.0.113.66";
    for i in 0..200 {
        let answer = h
            .refused(from_peer(post(&wrong_secret(&format!("x{i}"))), attacker))
            .await;
        assert!(
            answer.status == 401 || answer.status == 429,
            "{}",
            answer.status
        );
    }
    for i in 0..50 {
        let body = format!(
            "grant_type=refresh_token&refresh_token=bogus-{i}&client_id=app&client_secret=s3cret"
        );
        let _ = h.refused(from_peer(post(&body), attacker)).await;
    }
    // The attacker is locked out (10 per id, 100 per peer) ...
    h.refused(from_peer(post(&exchange("y")), attacker))
        .await
        .assert_rfc(429, "temporarily_unavailable");
    // ... and every other address redeems as usual, the attacker's
    // neighbours in an IPv4 /24 and an IPv6 /48 included.
    for peer in [
        "203.0.113.67",
        "192.0.2.1",
        "2001:db8:1:2::1",
        "2001:db8:1:3::1",
    ] {
        let code = h.app_code().await;
        let (answer, _) = h.forwarded(from_peer(post(&exchange(&code)), peer)).await;
        assert_eq!(answer.status, 200, "{peer}: {}", answer.text());
    }
}

/// One IPv6 subscriber holds a whole /64: rotating the low bits buys no
/// fresh budget.
#[tokio::test]
async fn an_ipv6_peer_is_counted_by_its_64() {
    let h = Harness::new(Dialect::Rfc6749);
    for i in 0..10 {
        let peer = format!("2001:db8:1:2::{:x}", i + 1);
        h.refused(from_peer(post(&wrong_secret("x")), &peer))
            .await
            .assert_rfc(401, "invalid_client");
    }
    h.refused(from_peer(post(&exchange("x")), "2001:db8:1:2:ffff::1"))
        .await
        .assert_rfc(429, "temporarily_unavailable");
}

/// An `X-Forwarded-For` the deployment did not say it trusts changes
/// nothing: the connection's address is counted, whatever the header says.
#[tokio::test]
async fn an_untrusted_forwarded_header_is_ignored() {
    let h = Harness::new(Dialect::Rfc6749);
    for i in 0..10 {
        let mut request = post(&wrong_secret("x"));
        request.headers_mut().insert(
            "x-forwarded-for",
            format!("198.51.100.{i}").parse().unwrap(),
        );
        h.refused(request).await.assert_rfc(401, "invalid_client");
    }
    let mut request = post(&exchange("x"));
    request
        .headers_mut()
        .insert("x-forwarded-for", "198.51.100.200".parse().unwrap());
    h.refused(request)
        .await
        .assert_rfc(429, "temporarily_unavailable");
}

/// Behind a trusted proxy, the clients it forwards are counted apart,
/// though they share its connection; what a client writes into the header
/// itself is not believed.
#[tokio::test]
async fn a_trusted_proxy_header_names_the_peer() {
    let h = Harness::with(Dialect::Rfc6749, |b| b.peer(PeerSource::x_forwarded_for(1)));
    let via_proxy = |body: &str, client_wrote: &str, proxy_saw: &str| {
        let mut request = post(body);
        request.headers_mut().insert(
            "x-forwarded-for",
            format!("{client_wrote}, {proxy_saw}").parse().unwrap(),
        );
        request
    };
    for i in 0..10 {
        // The attacker rotates the part of the header it writes itself.
        let forged = format!("10.0.0.{i}");
        h.refused(via_proxy(&wrong_secret("x"), &forged, "203.0.113.9"))
            .await
            .assert_rfc(401, "invalid_client");
    }
    h.refused(via_proxy(&exchange("x"), "10.9.9.9", "203.0.113.9"))
        .await
        .assert_rfc(429, "temporarily_unavailable");
    let code = h.app_code().await;
    let (answer, _) = h
        .forwarded(via_proxy(&exchange(&code), "203.0.113.9", "198.51.100.20"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// Without a peer address, nothing is counted per peer: a shared bucket
/// would let anyone lock everyone out. The opt-in ceiling per client id
/// still counts, as documented.
#[tokio::test]
async fn without_a_peer_only_the_opt_in_ceiling_counts() {
    let anonymous = |body: &str| {
        let mut request = post(body);
        request.extensions_mut().remove::<std::net::SocketAddr>();
        request
    };
    let h = Harness::new(Dialect::Rfc6749);
    for _ in 0..30 {
        h.refused(anonymous(&wrong_secret("x")))
            .await
            .assert_rfc(401, "invalid_client");
    }
    let code = h.app_code().await;
    let (answer, _) = h.forwarded(anonymous(&exchange(&code))).await;
    assert_eq!(answer.status, 200);

    let h = Harness::with(Dialect::Rfc6749, |b| {
        b.lockout(Some(Lockout::default().client_ceiling(20)))
    });
    for _ in 0..20 {
        h.refused(anonymous(&wrong_secret("x")))
            .await
            .assert_rfc(401, "invalid_client");
    }
    h.refused(anonymous(&exchange("x")))
        .await
        .assert_rfc(429, "temporarily_unavailable");
    // The ceiling is per client id from every peer: the trade-off it
    // documents.
    h.refused(from_peer(post(&exchange("x")), "198.51.100.1"))
        .await
        .assert_rfc(429, "temporarily_unavailable");
}

/// Counters that fail: the check fails closed (500, no inner service),
/// and a failure that cannot be counted is still refused as it was.
struct BrokenCounters;

impl LockoutStore for BrokenCounters {
    async fn locked(
        &self,
        _: &[Counter<'_>],
        _: std::time::SystemTime,
    ) -> Result<Option<Duration>, StoreError> {
        Err(StoreError::new("counters down"))
    }

    async fn fail(&self, _: &[Counter<'_>], _: std::time::SystemTime) -> Result<(), StoreError> {
        Err(StoreError::new("counters down"))
    }
}

#[tokio::test]
async fn a_lockout_store_that_fails_fails_closed() {
    let h = Harness::with(Dialect::Rfc6749, |b| b.lockout_store(BrokenCounters));
    let code = h.app_code().await;
    h.refused(post(&exchange(&code)))
        .await
        .assert_rfc(500, "server_error");
    // The code was not touched: with the lockout off (no check), it
    // redeems.
    let h = Harness {
        layer: TokenGateLayer::builder()
            .store(h.store.clone())
            .clock(h.clock.clone())
            .dialect(Dialect::Rfc6749)
            .realm("tokengate-test")
            .issuer("https://auth.example.com")
            .lockout_store(BrokenCounters)
            .lockout(None)
            .build(),
        ..h
    };
    let (answer, _) = h.forwarded(post(&exchange(&code))).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// A shared store (here the in-process counters behind the trait, as a
/// Redis store would be) enforces one threshold for two gates.
#[tokio::test]
async fn two_gates_on_one_lockout_store_share_the_threshold() {
    let counters = Arc::new(tokengate::store::MemoryCounters::default());
    let shared = SharedCounters(Arc::clone(&counters));
    let store = MemoryStore::new();
    store.insert_client(
        Client::confidential("app")
            .with_secret("s3cret")
            .with_redirect_uri(CB),
    );
    let gate = |counters: SharedCounters| {
        let layer = TokenGateLayer::builder()
            .store(store.clone())
            .dialect(Dialect::Rfc6749)
            .realm("tokengate-test")
            .issuer("https://auth.example.com")
            .lockout_store(counters)
            .build();
        Harness {
            layer,
            ..Harness::new(Dialect::Rfc6749)
        }
    };
    let (one, two) = (gate(shared.clone()), gate(shared));
    for i in 0..10 {
        let h = if i % 2 == 0 { &one } else { &two };
        h.refused(post(&wrong_secret("x")))
            .await
            .assert_rfc(401, "invalid_client");
    }
    for h in [&one, &two] {
        h.refused(post(&exchange("x")))
            .await
            .assert_rfc(429, "temporarily_unavailable");
    }
}

#[derive(Clone)]
struct SharedCounters(Arc<tokengate::store::MemoryCounters>);

impl LockoutStore for SharedCounters {
    async fn locked(
        &self,
        counters: &[Counter<'_>],
        now: std::time::SystemTime,
    ) -> Result<Option<Duration>, StoreError> {
        self.0.locked(counters, now).await
    }

    async fn fail(
        &self,
        counters: &[Counter<'_>],
        now: std::time::SystemTime,
    ) -> Result<(), StoreError> {
        self.0.fail(counters, now).await
    }
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
        Lockout::default().per_peer(0),
        Lockout::default().client_ceiling(0),
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
/// of a `Lockout` itself): the numbers in force, the peer source and where
/// the counters live.
#[test]
fn the_lockout_settings_show_in_debug_output() {
    let lockout = Lockout::new(5, Duration::from_secs(300))
        .per_peer(50)
        .client_ceiling(500)
        .capacity(1000);
    assert_eq!(
        format!("{lockout:?}"),
        "Lockout { failures: 5, peer_failures: 50, client_ceiling: Some(500), window: 300s, capacity: 1000 }"
    );
    let layer = TokenGateLayer::builder()
        .store(MemoryStore::new())
        .issuer("https://auth.example.com")
        .lockout(Some(lockout))
        .peer(PeerSource::forwarded(2))
        .build();
    let shown = format!("{layer:?}");
    for part in [
        "lockout: Some(Lockout { failures: 5, peer_failures: 50, client_ceiling: Some(500), window: 300s, capacity: 1000 })",
        "peer: PeerSource::forwarded(2)",
        "counting: MemoryCounters { capacity: 1000, .. }",
    ] {
        assert!(shown.contains(part), "{part} in {shown}");
    }
    assert_eq!(
        format!("{:?}", Lockout::default()),
        "Lockout { failures: 10, peer_failures: 100, client_ceiling: None, window: 60s, capacity: 65536 }"
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
        let (answer, _) = h.forwarded(post(&exchange(&code))).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        for _ in 0..=N {
            refused(&h.refused(post(&exchange(&code))).await);
        }
        // A rotated-away refresh token, presented again: a replay, which
        // revokes its family.
        let token = h.app_refresh_token().await;
        let refresh = format!(
            "grant_type=refresh_token&refresh_token={token}&client_id=app&client_secret=s3cret"
        );
        let (answer, _) = h.forwarded(post(&refresh)).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        refused(&h.refused(post(&refresh)).await);
        // A code and a refresh token expired by the gate's clock.
        let expired_code = h.app_code().await;
        let expired_token = h.app_refresh_token().await;
        // Past the refresh lifetime, which depends on the dialect (issue
        // 16: 184 days in GitHub's, 30 in RFC 6749's), not a fixed 30 days.
        gate_clock.advance(h.layer.refresh_tokens().lifetime());
        let expired_refresh = format!(
            "grant_type=refresh_token&refresh_token={expired_token}&client_id=app&client_secret=s3cret"
        );
        for _ in 0..=N {
            refused(&h.refused(post(&exchange(&expired_code))).await);
            refused(&h.refused(post(&expired_refresh)).await);
        }
        // None of that counted: the client still gets a token.
        let code = h.app_code().await;
        let (answer, _) = h.forwarded(post(&exchange(&code))).await;
        assert_eq!(answer.status, 200, "{dialect:?}: {}", answer.text());

        // N unknown codes do lock it out.
        for i in 0..N {
            refused(&h.refused(post(&exchange(&format!("guess-{i}")))).await);
        }
        let code = h.app_code().await;
        let answer = h.refused(post(&exchange(&code))).await;
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
    let (answer, _) = h.forwarded(post(&exchange(&code))).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let stolen = exchange(&code).replace(
        "client_id=app&client_secret=s3cret",
        "client_id=other&client_secret=other-s3cret",
    );
    for _ in 0..N {
        h.refused(post(&stolen))
            .await
            .assert_rfc(400, "invalid_grant");
    }
    h.refused(post(&stolen))
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
        h.refused(post(&poll))
            .await
            .assert_rfc(400, "expired_token");
    }
    // Unknown device codes do count.
    for i in 0..N {
        let guess = format!("grant_type={DEVICE_GRANT}&client_id=tv&device_code=guess-{i}");
        h.refused(post(&guess))
            .await
            .assert_rfc(400, "invalid_grant");
    }
    h.refused(post(&poll))
        .await
        .assert_rfc(429, "temporarily_unavailable");
}
