//! The store conformance suite: everything the [store traits](crate::store)
//! promise, checked against your backend in one call.
//!
//! ```no_run
//! use tokengate::clock::ManualClock;
//! # type MyStore = tokengate::MemoryStore;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn conformance() {
//!     let clock = ManualClock::new();
//!     tokengate::testing::conformance::run(MyStore::with_clock(clock.clone()), clock).await;
//! }
//! # // Outside `cargo test` a `#[test]` function is dropped unchecked; this
//! # // keeps the call above compiling.
//! # fn main() {
//! #     let clock = ManualClock::new();
//! #     let _ = tokengate::testing::conformance::run(MyStore::with_clock(clock.clone()), clock);
//! # }
//! ```
//!
//! `clock` is the clock the store reads time from, if it takes one. The
//! suite moves it, and also waits real time (a few hundred milliseconds)
//! for claims to lapse and reuse windows to pass, so a store that keeps time by its server's clock
//! passes too. Client ids, codes, tokens and user codes are random per run,
//! so a networked backend shared between runs is fine. Clients come from a
//! [`MemoryStore`] inside the suite; check your [`ClientStore`] with
//! [`run_clients`]. A failure is a panic that says, in words, what broke.
//! The whole suite takes about three and a half seconds against an
//! in-memory store.
//!
//! Each case is also a function of its own, so you can run one alone.
//!
//! # What it checks
//!
//! Through the gate (in process, RFC 6749 dialect), with the trait-doc
//! guarantee each case stands for:
//!
//! - [`single_use_and_replay`]: a code is redeemed once, then its replay is
//!   refused and reported once (*single use*, *replays are told*).
//! - [`expiry_and_wrong_client`]: an expired code is refused, and another
//!   client's attempt burns a code (*expiry*; a failed check confirms).
//! - [`concurrent_redemption`]: 200 requests on 20 codes at once forward
//!   exactly 20 (*single use*, under contention).
//! - [`refresh_rotation_and_revocation`]: a refresh token rotates once; its
//!   replay revokes the family, no new member joins it, and a refresh may
//!   narrow the scope but never widen it (*read before use*, *revocation
//!   wins*).
//! - [`refresh_reuse_window`]: with a reuse window, a lost answer's retry
//!   gets a fresh pair in the same family and both successors work; the
//!   limit plus one concurrent refreshes all get tokens without a replay;
//!   one more, or one after the window, is a replay that revokes the family
//!   ([`RefreshStore::reuse`], *revocation wins*).
//! - [`code_replay_revokes_its_refresh_tokens`]: a code replayed by its own
//!   client revokes the refresh tokens issued from it, also one the
//!   application issues only after the replay (*revocation wins*, for a
//!   family revoked before its first member).
//! - [`device_flow`]: RFC 8628's interval vector, approval redeemed once,
//!   denial, expiry (*one poll at a time*, *single redemption*, *expired
//!   codes keep answering*).
//! - [`claims_survive_failures`]: an inner service that answers 503, fails,
//!   panics or hangs until the client gives up hands the code, the refresh
//!   token and the approved device code back, and each is redeemed exactly
//!   once afterwards (`release` hands the value back; *single use*).
//! - [`lapsed_claim_frees_the_code`]: a claim whose holder died lapses, and
//!   its late confirm fails (*claims lapse*).
//! - [`lost_claim_withholds_the_token`]: a token minted under a claim that
//!   lapsed and was taken over is withheld (`500`) (*stale holders change
//!   nothing*).
//! - [`consume_on_read`]: with two-phase redemption off (a claim confirmed
//!   at once), single use under concurrency, the replay told, and a refresh
//!   token presented twice revoking its family.
//!
//! Straight on the store:
//!
//! - [`code_claim_contract`] and [`refresh_claim_contract`]: `claim`,
//!   `confirm` and `release` of [`CodeStore`] and [`RefreshStore`] step by
//!   step, 32 concurrent claims, and for refresh tokens `find` and
//!   `revoke_family` (of a family with members, and of one without).
//! - [`refresh_reuse_contract`]: [`RefreshStore::reuse`] of a rotated token
//!   up to its limit and past it, inside its window and after it, of one
//!   in flight, of one neither used nor claimed (also after a released or
//!   lapsed claim), of a revoked, an expired and an unknown one, and 32
//!   concurrent reuses of one token granted exactly up to the limit.
//! - [`device_store_contract`]: [`DeviceStore`]'s `issue`, `find`, `decide`
//!   and concurrent `poll`s.
//! - [`lockout_store_contract`], run on its own (a store may keep failure
//!   counters without keeping codes, and the other way round):
//!   [`LockoutStore`]'s limits per counter, the longest wait of several,
//!   windows that end by themselves in real time, and 64 concurrent
//!   failures all counted.
//! - [`replay_store_contract`], on its own too: [`ReplayStore`]'s single
//!   use of one-time values (32 concurrent first uses, one wins), values
//!   that are forgotten once their `until` passed in real time, and DPoP
//!   nonces shared per slot (16 concurrent askers get one nonce) until
//!   they expire.
//!
//! Not checked: that a store forgets what expired (memory use), and expiry
//! on the store's side for codes and refresh tokens (the gate checks it
//! too, and a store on its server's clock cannot be moved past it), and
//! how the gate behaves while the store is unreachable (that needs a way to
//! cut the connection, which only the backend's own tests have).

use std::{
    future::{Future, poll_fn},
    io,
    pin::{Pin, pin},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use serde_json::Value;
use tokio::sync::{Barrier, Notify, oneshot};
use tower_layer::Layer;
use tower_service::Service;

use super::{TokenRequest, pkce_pair};
use crate::{
    body::{RequestBody, ResponseBody},
    builder::DEFAULT_CODE_LIFETIME,
    client::{Client, GrantType, RedirectPolicy},
    clock::{Clock, ManualClock},
    dialect::Dialect,
    grant::ValidatedGrant,
    layer::TokenGateLayer,
    record::{
        code::CodeRecord,
        device::{
            DEVICE_TOMBSTONE, DeviceDecision, DeviceRecord, DeviceStatus, PollOutcome,
            SLOW_DOWN_STEP, random_user_code,
        },
        refresh::RefreshRecord,
    },
    secret::{CodeKey, random_code},
    store::{
        Claim, ClientStore, CodeStore, Counter, CounterKey, DeviceStore, LockoutStore, Lookup,
        MemoryStore, Redemption, RefreshStore, ReplayStore, Reuse, ReuseWindow, StoreError,
    },
};

/// The redirect URI the suite's client registers.
const CB: &str = "https://client.example.com/cb";
/// The user who approves every code and device code.
const SUBJECT: &str = "conformance-user";
const SECRET: &str = "s3cret";
/// The confidential client's second secret (a rotation in progress).
const ROTATED: &str = "rotated-s3cret";
const OTHER_SECRET: &str = "other-s3cret";
/// A claim that outlives every case.
const LONG_TTL: Duration = Duration::from_secs(3600);
/// A claim the cases wait out, in real time too: short, to keep them fast.
const SHORT_TTL: Duration = Duration::from_millis(300);
/// A little more than [`SHORT_TTL`].
const PAST_SHORT_TTL: Duration = Duration::from_millis(400);
/// The reuse window the reuse cases wait out, in real time too: short, to
/// keep them fast, yet long enough for the steps that must land inside it
/// on a store on its server's clock.
const REUSE_WITHIN: Duration = Duration::from_millis(400);
/// A little more than [`REUSE_WITHIN`] (and than [`SHORT_TTL`]).
const PAST_REUSE_WITHIN: Duration = Duration::from_millis(500);
/// The gate's device settings, which the device cases count on.
const DEVICE_LIFETIME: Duration = Duration::from_secs(900);
const DEVICE_INTERVAL: u64 = 5;

/// Runs every case of the suite against `store`, in the order of the
/// [module docs](self).
///
/// `clock` is the clock `store` reads time from, if it takes one (see the
/// module docs for stores on their server's clock).
///
/// # Panics
///
/// On the first broken guarantee, saying which.
pub async fn run<S>(store: S, clock: ManualClock)
where
    S: CodeStore + RefreshStore + DeviceStore + Clone,
{
    single_use_and_replay(store.clone(), clock.clone()).await;
    expiry_and_wrong_client(store.clone(), clock.clone()).await;
    concurrent_redemption(store.clone(), clock.clone()).await;
    refresh_rotation_and_revocation(store.clone(), clock.clone()).await;
    refresh_reuse_window(store.clone(), clock.clone()).await;
    code_replay_revokes_its_refresh_tokens(store.clone(), clock.clone()).await;
    device_flow(store.clone(), clock.clone()).await;
    claims_survive_failures(store.clone(), clock.clone()).await;
    lapsed_claim_frees_the_code(store.clone(), clock.clone()).await;
    lost_claim_withholds_the_token(store.clone(), clock.clone()).await;
    consume_on_read(store.clone(), clock.clone()).await;
    code_claim_contract(store.clone(), clock.clone()).await;
    refresh_claim_contract(store.clone(), clock.clone()).await;
    refresh_reuse_contract(store.clone(), clock.clone()).await;
    device_store_contract(store, clock).await;
}

/// Checks that `store` gives back the clients registered through `insert`
/// faithfully: secrets (two rotated ones, and a wrong one refused), redirect
/// URIs under each [`RedirectPolicy`], scopes, grant types, and whether the
/// client is public; and `Ok(None)` for an id never registered.
///
/// `insert` registers one client in the store (an `insert_client` of your
/// backend, or a write to its database).
///
/// ```no_run
/// # async fn example() {
/// let store = tokengate::MemoryStore::new();
/// tokengate::testing::conformance::run_clients(&store, |client| {
///     store.insert_client(client);
///     std::future::ready(())
/// })
/// .await;
/// # }
/// ```
///
/// # Panics
///
/// When a client comes back different, or the store fails.
pub async fn run_clients<S, F, Fut>(store: &S, insert: F)
where
    S: ClientStore,
    F: Fn(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let web = Client::confidential(unique("web"))
        .with_secret("first-s3cret")
        .with_secret("second-s3cret")
        .with_redirect_uri(CB)
        .with_scopes(["read", "write"])
        .with_grant_types([
            GrantType::AuthorizationCode,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ]);
    let github = Client::confidential(unique("github"))
        .with_secret("gh-s3cret")
        .with_redirect_uri("http://example.com/path")
        .with_redirect_policy(RedirectPolicy::GitHub)
        .with_device_flow(true);
    let native = Client::public(unique("native"))
        .with_redirect_uri("http://127.0.0.1/cb")
        .with_redirect_policy(RedirectPolicy::Loopback)
        .with_grant_types([GrantType::AuthorizationCode, GrantType::DeviceCode])
        .with_scopes(["repo"]);
    for client in [&web, &github, &native] {
        insert(client.clone()).await;
    }
    // Requested URIs that each policy answers differently, so a client
    // that comes back under another policy is caught.
    let uris = [
        CB,
        "https://client.example.com/cb/",
        "http://example.com/path",
        "http://example.com/path/sub",
        "http://oauth.example.com/path",
        "http://example.com/other",
        "http://127.0.0.1/cb",
        "http://127.0.0.1:51004/cb",
        "http://127.0.0.1:51004/other",
    ];
    let secrets = ["first-s3cret", "second-s3cret", "gh-s3cret", "wrong", ""];
    for original in [&web, &github, &native] {
        let id = original.client_id();
        let fetched = store
            .client(id)
            .await
            .unwrap_or_else(|e| panic!("ClientStore::client({id:?}) failed: {e}"))
            .unwrap_or_else(|| panic!("ClientStore::client({id:?}) lost a registered client"));
        let fetched = &*fetched;
        assert_eq!(
            fetched.client_id(),
            id,
            "ClientStore::client answered another client"
        );
        assert_eq!(
            fetched.is_public(),
            original.is_public(),
            "{id}: public and confidential were mixed up"
        );
        assert_eq!(
            fetched.allowed_scopes(),
            original.allowed_scopes(),
            "{id}: the allowed scopes changed"
        );
        for grant in GrantType::ALL {
            assert_eq!(
                fetched.allows_grant(grant),
                original.allows_grant(grant),
                "{id}: whether {} is allowed changed",
                grant.as_str()
            );
        }
        for uri in uris {
            assert_eq!(
                fetched.allows_redirect_uri(uri),
                original.allows_redirect_uri(uri),
                "{id}: whether the redirect URI {uri} is allowed changed (policy {:?} stored as {:?})",
                original.redirect_policy(),
                fetched.redirect_policy()
            );
        }
        for secret in secrets {
            assert_eq!(
                fetched.verify_secret(secret),
                original.verify_secret(secret),
                "{id}: whether the secret {secret:?} is valid changed"
            );
        }
    }
    // Equal answers would prove little if the originals refused every
    // probe: spell out what the confidential client must accept.
    let fetched = store.client(web.client_id()).await.ok().flatten();
    let fetched = fetched.expect("the confidential client was fetched above");
    assert!(
        fetched.verify_secret("first-s3cret") && fetched.verify_secret("second-s3cret"),
        "both rotated secrets of a client must stay valid"
    );
    let unknown = unique("never-registered");
    let answer = store
        .client(&unknown)
        .await
        .unwrap_or_else(|e| panic!("ClientStore::client of an unknown id failed: {e}"));
    assert!(
        answer.is_none(),
        "ClientStore::client must answer Ok(None) for an id never registered"
    );
}

/// A code is redeemed once; presented again it is refused and the replay
/// hook fires once. A second secret of the client works, and a code never
/// issued is refused without firing the hook.
///
/// Covers [`CodeStore`]'s *single use* and *replays are told*.
///
/// # Panics
///
/// When the store breaks either guarantee.
pub async fn single_use_and_replay<S>(store: S, clock: ManualClock)
where
    S: CodeStore + RefreshStore + DeviceStore + Clone,
{
    let gate = Gate::new(store, clock, LONG_TTL);
    let code = gate.code("read").await;
    let answer = gate.post(gate.exchange(&code)).await;
    let grant = answer.expect_forwarded("a fresh code");
    assert_eq!(
        grant.subject(),
        Some(SUBJECT),
        "the code's record lost its user"
    );
    assert_eq!(
        grant.scopes(),
        ["read"],
        "the code's record lost its scopes"
    );
    let pkce = grant.code().and_then(|record| record.pkce.as_ref());
    assert_eq!(
        pkce.map(|pkce| pkce.challenge.as_str()),
        Some(gate.challenge.as_str()),
        "the code's record lost its PKCE challenge"
    );
    gate.post(gate.exchange(&code)).await.expect_refused(
        400,
        "invalid_grant",
        "a code presented a second time",
    );
    assert_eq!(
        gate.replays(),
        1,
        "a replay must be told (CodeStore::claim answering Used) exactly once"
    );
    let code = gate.code("read").await;
    let with_rotated = TokenRequest::authorization_code(&code)
        .client_secret_post(&gate.app, ROTATED)
        .redirect_uri(CB)
        .code_verifier(&gate.verifier);
    gate.post(with_rotated)
        .await
        .expect_forwarded("a code exchanged with the client's second secret");
    gate.post(gate.exchange("never-issued"))
        .await
        .expect_refused(400, "invalid_grant", "a code never issued");
    assert_eq!(gate.replays(), 1, "a code never issued is no replay");
}

/// A code past its lifetime is refused; a code presented by another client
/// is refused and burnt, so its own client's exchange fails after.
///
/// Covers [`CodeStore`]'s *expiry* (as the gate sees it) and that a
/// confirmed code stays used.
///
/// # Panics
///
/// When an expired or burnt code is forwarded.
pub async fn expiry_and_wrong_client<S>(store: S, clock: ManualClock)
where
    S: CodeStore + RefreshStore + DeviceStore + Clone,
{
    let gate = Gate::new(store, clock, LONG_TTL);
    let code = gate.code("read").await;
    gate.clock
        .advance(DEFAULT_CODE_LIFETIME + Duration::from_secs(1));
    gate.post(gate.exchange(&code)).await.expect_refused(
        400,
        "invalid_grant",
        "a code past its lifetime",
    );
    let code = gate.code("read").await;
    let by_other = TokenRequest::authorization_code(&code)
        .client_secret_post(&gate.other, OTHER_SECRET)
        .redirect_uri(CB)
        .code_verifier(&gate.verifier);
    gate.post(by_other).await.expect_refused(
        400,
        "invalid_grant",
        "a code presented by another client",
    );
    gate.post(gate.exchange(&code)).await.expect_refused(
        400,
        "invalid_grant",
        "a code another client presented first (its failed attempt uses the code up)",
    );
}

/// 200 requests at once on 20 codes, ten each: exactly 20 are forwarded,
/// the others refused with `invalid_grant`.
///
/// Covers [`CodeStore`]'s *single use* under contention.
///
/// # Panics
///
/// When the count is not 20.
pub async fn concurrent_redemption<S>(store: S, clock: ManualClock)
where
    S: CodeStore + RefreshStore + DeviceStore + Clone,
{
    let gate = Gate::new(store, clock, LONG_TTL);
    let forwarded = gate.redeem_concurrently(20, 10).await;
    assert_eq!(
        forwarded, 20,
        "200 concurrent requests on 20 codes must forward exactly 20: one per code"
    );
}

/// A refresh token rotates once: the replay of the rotated-away token is
/// refused and revokes its family (the successor too), no new token joins
/// the revoked family, and a refresh may narrow the scope but never widen
/// it (a refused widening leaves the token usable).
///
/// Covers [`RefreshStore`]'s *read before use* and *revocation wins*, and
/// [`CodeStore`]'s guarantees for the token's rotation.
///
/// # Panics
///
/// When a revoked or rotated-away token is forwarded, or a family accepts
/// a new member after its revocation.
pub async fn refresh_rotation_and_revocation<S>(store: S, clock: ManualClock)
where
    S: CodeStore + RefreshStore + DeviceStore + Clone,
{
    let gate = Gate::new(store, clock, LONG_TTL);
    let tokens = gate.layer.refresh_tokens();
    let first = gate.refresh_token("read write").await;
    let rotated = gate
        .post(gate.refresh(&first))
        .await
        .expect_forwarded("a fresh refresh token");
    let successor = tokens
        .issue(&rotated)
        .await
        .unwrap_or_else(|e| panic!("RefreshStore::issue of a successor failed: {e}"));
    gate.post(gate.refresh(&first)).await.expect_refused(
        400,
        "invalid_grant",
        "a refresh token presented again after its rotation",
    );
    gate.post(gate.refresh(&successor)).await.expect_refused(
        400,
        "invalid_grant",
        "the successor of a replayed refresh token (its family must be revoked)",
    );
    assert!(
        tokens.issue(&rotated).await.is_err(),
        "RefreshStore::issue must refuse a new member of a revoked family"
    );

    // Narrowing: a token for "read write" refreshed for "read".
    let wide = gate.refresh_token("read write").await;
    let narrowed = gate
        .post(gate.refresh(&wide).scope("read"))
        .await
        .expect_forwarded("a refresh narrowing the scope");
    assert_eq!(
        narrowed.scopes(),
        ["read"],
        "the narrowed refresh lost its scope"
    );
    // Widening: a token for "read" asking for "read write", which the
    // client may have but this token was not granted.
    let narrow = gate.refresh_token("read").await;
    gate.post(gate.refresh(&narrow).scope("read write"))
        .await
        .expect_refused(400, "invalid_scope", "a refresh widening the scope");
    gate.post(gate.refresh(&narrow)).await.expect_forwarded(
        "a refresh token after a refused widening (RefreshStore::find must not use it up)",
    );
}

/// The reuse window through the gate (`Builder::refresh_reuse`, a window of
/// a few hundred milliseconds, two reuses): a client whose answer was lost
/// retries within the window and gets a fresh pair in the same family, and
/// both successors work; three concurrent refreshes of one token (the
/// limit plus one) all get tokens, one rotation and two reuses granted
/// while the rotation is in flight, and the family survives; one more presentation past the limit is a replay that
/// revokes the family, so one token never has more than `1 + limit`
/// successors; and a presentation after the window is a replay that
/// revokes the family, the successors' successors with it. Takes about
/// half a second.
///
/// Covers [`RefreshStore::reuse`] as the gate uses it: `Granted` after a
/// rotation and while one is in flight, `Refused` past the limit and the
/// window once rotated, and *revocation wins* after a refusal.
///
/// # Panics
///
/// When a reuse inside the window is refused or revokes the family, or a
/// token gets more successors than the limit allows, or a presentation
/// after the window is forwarded or leaves its family standing.
pub async fn refresh_reuse_window<S>(store: S, clock: ManualClock)
where
    S: CodeStore + RefreshStore + DeviceStore + Clone,
{
    let limit = 2;
    let window = ReuseWindow {
        within: REUSE_WITHIN,
        limit,
    };
    let gate = Gate::reusing(store, clock, window);

    // The answer to the first refresh is lost; the client retries.
    let old = gate.refresh_token("read").await;
    let first = gate
        .post(gate.refresh(&old))
        .await
        .expect_forwarded("a fresh refresh token");
    assert!(
        !first.is_refresh_reuse(),
        "the first refresh of a token is a rotation, not a reuse"
    );
    let lost = gate.successor(&first).await;
    let retry = gate.post(gate.refresh(&old)).await.expect_forwarded(
        "a refresh token presented again within the reuse window (a lost answer's retry)",
    );
    assert!(
        retry.is_refresh_reuse(),
        "a retry within the window must be granted as a reuse (RefreshStore::reuse answering Granted)"
    );
    assert!(
        retry.family().is_some() && retry.family() == first.family(),
        "a reuse stays in the token's family: {:?}, not {:?}",
        first.family(),
        retry.family()
    );
    let kept = gate.successor(&retry).await;
    assert_eq!(
        gate.refresh_replays(),
        0,
        "a reuse within the window is no replay"
    );
    // Both successors work, each rotated once; their own successors keep
    // the family going until the replay below.
    let mut next = Vec::new();
    for (token, what) in [
        (&kept, "the retry's successor"),
        (&lost, "the lost successor"),
    ] {
        let grant = gate
            .post(gate.refresh(token))
            .await
            .expect_forwarded(&format!("{what}, its family standing"));
        next.push(gate.successor(&grant).await);
    }

    // The limit plus one at once, all held in the inner service until the
    // last is in: one rotates, and the others are reuses granted while that
    // rotation is in flight (its claim live, not yet confirmed).
    let shared = gate.refresh_token("read").await;
    let requests = usize::try_from(limit).expect("a small limit") + 1;
    let inner = Inner::minting_together(requests);
    let tasks: Vec<_> = (0..requests)
        .map(|_| tokio::spawn(send(&gate.layer, inner.clone(), gate.refresh(&shared))))
        .collect();
    let mut grants = Vec::new();
    for task in tasks {
        let answer = task
            .await
            .expect("a request task panicked")
            .expect("the minting inner service never fails");
        grants.push(answer.expect_forwarded(&format!(
            "one of {requests} concurrent refreshes of one token, with {limit} reuses allowed"
        )));
    }
    let reuses = grants.iter().filter(|g| g.is_refresh_reuse()).count();
    assert_eq!(
        reuses,
        requests - 1,
        "of {requests} concurrent refreshes of one token, one rotates it and the others reuse \
         it while the rotation is in flight"
    );
    assert_eq!(
        gate.refresh_replays(),
        0,
        "concurrent refreshes within the window and the limit are no replay"
    );
    let mut successors = Vec::new();
    for grant in &grants {
        successors.push(gate.successor(grant).await);
    }
    gate.post(gate.refresh(&shared)).await.expect_refused(
        400,
        "invalid_grant",
        "a refresh token presented once more than its reuses allow",
    );
    assert_eq!(
        gate.refresh_replays(),
        1,
        "a presentation past the limit is a replay, told once"
    );
    for successor in &successors {
        gate.post(gate.refresh(successor)).await.expect_refused(
            400,
            "invalid_grant",
            "a successor of a token presented past its limit (its family must be revoked)",
        );
    }

    // After the window, the old token is a replay (one reuse of two left:
    // the window refuses it, not the limit).
    let_pass(&gate.clock, PAST_REUSE_WITHIN).await;
    gate.post(gate.refresh(&old)).await.expect_refused(
        400,
        "invalid_grant",
        "a rotated refresh token presented after the reuse window",
    );
    assert_eq!(
        gate.refresh_replays(),
        2,
        "a presentation after the window is a replay, told once"
    );
    for token in &next {
        gate.post(gate.refresh(token)).await.expect_refused(
            400,
            "invalid_grant",
            "a token of the family of a token presented after the window (it must be revoked)",
        );
    }
}

/// A code replayed by its own client, in an otherwise valid request,
/// revokes the refresh tokens issued from it (RFC 6749 §4.1.2): the token
/// issued before the replay is refused after it, and a token the
/// application issues only after the replay (the replay overtook it) is
/// refused at issue, even a minute later. Another code's token is
/// untouched, and the replay hook fires once per replay.
///
/// Covers [`RefreshStore`]'s *revocation wins*, for a family revoked before
/// its first member.
///
/// # Panics
///
/// When a refresh token from a replayed code still works or can still be
/// issued.
pub async fn code_replay_revokes_its_refresh_tokens<S>(store: S, clock: ManualClock)
where
    S: CodeStore + RefreshStore + DeviceStore + Clone,
{
    let gate = Gate::new(store, clock, LONG_TTL);
    let tokens = gate.layer.refresh_tokens();
    let bystander = gate.refresh_token("read").await;

    // Issued, then the code replayed.
    let code = gate.code("read").await;
    let grant = gate
        .post(gate.exchange(&code))
        .await
        .expect_forwarded("a fresh code");
    let issued = tokens
        .issue(&grant)
        .await
        .unwrap_or_else(|e| panic!("RefreshStore::issue of a new token failed: {e}"));
    gate.post(gate.exchange(&code)).await.expect_refused(
        400,
        "invalid_grant",
        "a code presented a second time",
    );
    assert_eq!(gate.replays(), 1, "the replay must be told");
    gate.post(gate.refresh(&issued)).await.expect_refused(
        400,
        "invalid_grant",
        "a refresh token issued from a replayed code (RefreshStore::revoke_family must revoke it)",
    );

    // The replay overtakes the application: nothing issued yet.
    let code = gate.code("read").await;
    let grant = gate
        .post(gate.exchange(&code))
        .await
        .expect_forwarded("a fresh code");
    gate.post(gate.exchange(&code)).await.expect_refused(
        400,
        "invalid_grant",
        "a code presented a second time",
    );
    assert_eq!(gate.replays(), 2, "the replay must be told");
    assert!(
        tokens.issue(&grant).await.is_err(),
        "RefreshStore::issue must refuse a token into the family of a code replayed before it"
    );
    gate.clock.advance(Duration::from_secs(60));
    assert!(
        tokens.issue(&grant).await.is_err(),
        "RefreshStore::issue a minute later: a revocation of a family without members must last (an hour at least)"
    );

    gate.post(gate.refresh(&bystander)).await.expect_forwarded(
        "another code's refresh token (a replay must revoke only its own code's family)",
    );
}

/// The device flow through the gate: RFC 8628's interval vector (polls at
/// t = 0, 2, 8, 24 s answer pending, slow_down, slow_down, pending), the
/// user's approval redeemed by exactly one poll, a denial, and an expired
/// code answering `expired_token` until its tombstone ends.
///
/// Covers [`DeviceStore`]'s *one poll at a time*, *single redemption* and
/// *expired codes keep answering*.
///
/// # Panics
///
/// When a poll gets another answer.
pub async fn device_flow<S>(store: S, clock: ManualClock)
where
    S: CodeStore + RefreshStore + DeviceStore + Clone,
{
    let gate = Gate::new(store, clock, LONG_TTL);
    let (device_code, user_code) = gate.device_authorization().await;
    let poll = || gate.post(gate.poll(&device_code));
    let second = Duration::from_secs;
    poll()
        .await
        .expect_refused(400, "authorization_pending", "the first poll (t=0)");
    gate.clock.advance(second(2));
    poll()
        .await
        .expect_refused(400, "slow_down", "a poll 2 s after the last (t=2)");
    gate.clock.advance(second(6));
    poll().await.expect_refused(
        400,
        "slow_down",
        "a poll 6 s after the last, the interval being 10 s (t=8)",
    );
    gate.clock.advance(second(16));
    poll().await.expect_refused(
        400,
        "authorization_pending",
        "a poll 16 s after the last, the interval being 15 s (t=24)",
    );
    let devices = gate.layer.devices();
    let pending = devices
        .lookup(&user_code.to_lowercase(), None)
        .await
        .unwrap_or_else(|e| panic!("DeviceStore::find failed: {e}"))
        .expect("DeviceStore::find must find a live, undecided authorization by its user code");
    assert_eq!(
        pending.client_id, gate.tv,
        "DeviceStore::find answered another record"
    );
    let approved = devices.approve(&user_code, "alice", None).await;
    assert!(
        approved.unwrap_or_else(|e| panic!("DeviceStore::decide failed: {e}")),
        "DeviceStore::decide must take the first decision"
    );
    let denied = devices.deny(&user_code, None).await;
    assert!(
        !denied.unwrap_or_else(|e| panic!("DeviceStore::decide failed: {e}")),
        "DeviceStore::decide must refuse a second decision"
    );
    gate.clock.advance(second(15));
    let grant = poll()
        .await
        .expect_forwarded("the first poll after approval");
    assert_eq!(grant.subject(), Some("alice"), "the approval lost its user");
    gate.clock.advance(second(15));
    poll().await.expect_refused(
        400,
        "invalid_grant",
        "a poll after the approval was redeemed",
    );

    let (device_code, user_code) = gate.device_authorization().await;
    let poll = || gate.post(gate.poll(&device_code));
    let denied = devices.deny(&user_code, None).await;
    assert!(
        denied.unwrap_or_else(|e| panic!("DeviceStore::decide failed: {e}")),
        "DeviceStore::decide must take a denial"
    );
    poll()
        .await
        .expect_refused(400, "access_denied", "a poll after the user declined");
    gate.clock.advance(DEVICE_LIFETIME);
    poll()
        .await
        .expect_refused(400, "expired_token", "a poll once the device code expired");
    gate.clock.advance(DEVICE_TOMBSTONE - second(2));
    poll().await.expect_refused(
        400,
        "expired_token",
        "a poll just before the expired device code's tombstone ends",
    );
}

/// Two-phase redemption survives every failure of the inner service: an
/// answer of 503, an error, a panic, and a hang the client gives up on
/// (the gate's future is dropped). After each, the code, the refresh token
/// and the approved device code come back; then each is redeemed exactly
/// once.
///
/// Covers `release` of [`CodeStore`] and [`RefreshStore`] (and the device
/// code put back with [`DeviceStore::issue`]), and *single use* after them.
///
/// # Panics
///
/// When a failure loses the value, or the value is redeemed twice.
pub async fn claims_survive_failures<S>(store: S, clock: ManualClock)
where
    S: CodeStore + RefreshStore + DeviceStore + Clone,
{
    let gate = Gate::new(store, clock, LONG_TTL);
    let code = gate.code("read").await;
    gate.survives("an authorization code", || gate.exchange(&code))
        .await;
    assert_eq!(
        gate.replays(),
        1,
        "the code presented after its redemption is one replay"
    );
    let token = gate.refresh_token("read").await;
    gate.survives("a refresh token", || gate.refresh(&token))
        .await;
    let (device_code, user_code) = gate.device_authorization().await;
    let approved = gate
        .layer
        .devices()
        .approve(&user_code, SUBJECT, None)
        .await;
    assert!(
        approved.unwrap_or_else(|e| panic!("DeviceStore::decide failed: {e}")),
        "DeviceStore::decide must take an approval"
    );
    gate.survives("an approved device code", || gate.poll(&device_code))
        .await;
}

/// A claim whose holder died (taken straight on the store, never ended)
/// keeps the code from other requests until it lapses, without counting as
/// a replay; after that the code is redeemed exactly once, and the dead
/// holder's late confirm and release change nothing.
///
/// Covers [`CodeStore`]'s *claims lapse* and *stale holders change
/// nothing*.
///
/// # Panics
///
/// When the code stays held past the claim's ttl, or is freed early, or
/// the stale holder's confirm succeeds.
pub async fn lapsed_claim_frees_the_code<S>(store: S, clock: ManualClock)
where
    S: CodeStore + RefreshStore + DeviceStore + Clone,
{
    let gate = Gate::new(store.clone(), clock, SHORT_TTL);
    let code = gate.code("read").await;
    let key = CodeKey::of(&code);
    let dead = new_claim(SHORT_TTL);
    let taken = CodeStore::claim(&store, &key, &dead).await;
    assert!(
        matches!(taken, Ok(Redemption::Claimed(_))),
        "CodeStore::claim of a fresh code must answer Claimed, not {taken:?}"
    );
    gate.post(gate.exchange(&code)).await.expect_refused(
        400,
        "invalid_grant",
        "a code another request holds a live claim on",
    );
    assert_eq!(gate.replays(), 0, "a code held by a claim is no replay");
    let_pass(&gate.clock, PAST_SHORT_TTL).await;
    gate.post(gate.exchange(&code))
        .await
        .expect_forwarded("a code whose only claim lapsed");
    let late = CodeStore::confirm(&store, &key, &dead).await;
    assert!(
        matches!(late, Ok(false)),
        "CodeStore::confirm of a lapsed claim taken over since must answer false, not {late:?}"
    );
    let released = CodeStore::release(&store, &key, &dead).await;
    assert!(
        released.is_ok(),
        "CodeStore::release of a lost claim failed: {released:?}"
    );
    gate.post(gate.exchange(&code)).await.expect_refused(
        400,
        "invalid_grant",
        "a used code after a stale holder's release",
    );
    assert_eq!(
        gate.replays(),
        1,
        "the code presented after its redemption is one replay"
    );
}

/// An inner service slower than the claim: another request takes the code
/// over meanwhile and gets the token, so the slow request's 2xx becomes a
/// `500 server_error` and one code never hands out two tokens.
///
/// Covers [`CodeStore`]'s *stale holders change nothing* (`confirm` of a
/// lost claim answers `false`).
///
/// # Panics
///
/// When the slow request's token is handed out, or the code is not freed
/// when the claim lapsed.
pub async fn lost_claim_withholds_the_token<S>(store: S, clock: ManualClock)
where
    S: CodeStore + RefreshStore + DeviceStore + Clone,
{
    let gate = Gate::new(store, clock, SHORT_TTL);
    let code = gate.code("read").await;
    let (entered_tx, entered) = oneshot::channel::<()>();
    let (leave, leave_rx) = oneshot::channel::<()>();
    // `Inner` is a `Fn`: the one call it gets takes the channels out.
    let channels = Mutex::new(Some((entered_tx, leave_rx)));
    let slow = Inner::new(move |_| {
        let taken = channels.lock().ok().and_then(|mut slot| slot.take());
        let (entered, leave) = taken.expect("the slow inner service is called once");
        async move {
            let _ = entered.send(());
            let _ = leave.await;
            Ok(Response::new("slow token".to_owned()))
        }
    });
    let slow = tokio::spawn(send(&gate.layer, slow, gate.exchange(&code)));
    entered
        .await
        .expect("the slow request was refused: it never reached the inner service");
    let_pass(&gate.clock, PAST_SHORT_TTL).await;
    gate.post(gate.exchange(&code))
        .await
        .expect_forwarded("a code whose claim lapsed while the inner service worked");
    let _ = leave.send(());
    let answer = slow
        .await
        .expect("the slow request panicked")
        .expect("the slow inner service never fails");
    answer.expect_refused(
        500,
        "server_error",
        "a token minted under a claim that was lost (CodeStore::confirm must answer false)",
    );
    gate.post(gate.exchange(&code)).await.expect_refused(
        400,
        "invalid_grant",
        "a code redeemed by the second request",
    );
}

/// [`CodeStore`]'s claim contract, straight on the store: see
/// [`refresh_claim_contract`] for the steps, which are the same.
///
/// # Panics
///
/// On the first step that goes otherwise.
pub async fn code_claim_contract<S>(store: S, clock: ManualClock)
where
    S: CodeStore + Clone,
{
    claim_contract(Codes { store, clock }).await;
}

/// [`RefreshStore`]'s claim contract, straight on the store, the same as
/// [`CodeStore`]'s: of two claims the second is `Busy`; a confirm or
/// release by a claim that does not hold the token changes nothing; after a
/// release another claim wins; a confirm makes it `Used` and `issue` under its key fails; unknown keys are
/// `Unknown`; a claim that lapsed is taken over and its confirm then
/// fails, while one that lapsed untouched still confirms; of 32 concurrent
/// claims exactly one wins.
///
/// Then what only refresh tokens have: `find` answers `Unused` (also while
/// claimed), `Used` and `Unknown`; after `revoke_family` every member is
/// `Unknown` to `find` and `claim`, a live claim on one no longer confirms,
/// `issue` into the family fails, and other families are untouched.
///
/// # Panics
///
/// On the first step that goes otherwise.
pub async fn refresh_claim_contract<S>(store: S, clock: ManualClock)
where
    S: RefreshStore + Clone,
{
    let family = unique("family");
    let tokens = Refresh {
        store: store.clone(),
        clock: clock.clone(),
        family: family.clone(),
    };
    claim_contract(tokens.clone()).await;

    let find = |key: CodeKey| {
        let store = store.clone();
        async move {
            let found = store.find(&key).await;
            found
                .map(|lookup| match lookup {
                    Lookup::Unused(record) => Lookup::Unused(record.subject),
                    Lookup::Used(record) => Lookup::Used(record.subject),
                    Lookup::Unknown => Lookup::Unknown,
                })
                .unwrap_or_else(|e| panic!("RefreshStore::find failed: {e}"))
        }
    };
    let used = tokens.issue("used").await;
    let claimed = tokens.issue("claimed").await;
    let unused = tokens.issue("unused").await;
    let holder = new_claim(LONG_TTL);
    assert_eq!(
        find(used).await,
        Lookup::Unused("used".to_owned()),
        "RefreshStore::find of a fresh token"
    );
    let spent = new_claim(LONG_TTL);
    assert_eq!(
        tokens.claim(&used, &spent).await,
        Redemption::Claimed("used".to_owned())
    );
    assert!(
        tokens.confirm(&used, &spent).await,
        "RefreshStore::confirm by the holder"
    );
    assert_eq!(
        find(used).await,
        Lookup::Used("used".to_owned()),
        "RefreshStore::find of a rotated-away token"
    );
    assert_eq!(
        tokens.claim(&claimed, &holder).await,
        Redemption::Claimed("claimed".to_owned())
    );
    assert_eq!(
        find(claimed).await,
        Lookup::Unused("claimed".to_owned()),
        "RefreshStore::find of a claimed token: not used yet (answering Used would revoke its family)"
    );
    assert_eq!(
        find(fresh_key()).await,
        Lookup::Unknown,
        "RefreshStore::find of a token never issued"
    );

    let bystander = Refresh {
        family: unique("family"),
        ..tokens.clone()
    };
    let other = bystander.issue("other family").await;
    store
        .revoke_family(&family)
        .await
        .unwrap_or_else(|e| panic!("RefreshStore::revoke_family failed: {e}"));
    for key in [used, claimed, unused] {
        assert_eq!(
            find(key).await,
            Lookup::Unknown,
            "RefreshStore::find of a token of a revoked family"
        );
        assert_eq!(
            tokens.claim(&key, &new_claim(LONG_TTL)).await,
            Redemption::Unknown,
            "RefreshStore::claim of a token of a revoked family"
        );
    }
    assert!(
        !tokens.confirm(&claimed, &holder).await,
        "RefreshStore::confirm of a live claim must answer false once its family was revoked"
    );
    let joined = store
        .issue(fresh_key(), tokens.record("late member", &family))
        .await;
    assert!(
        joined.is_err(),
        "RefreshStore::issue must refuse a member of a revoked family"
    );
    assert_eq!(
        find(other).await,
        Lookup::Unused("other family".to_owned()),
        "RefreshStore::revoke_family must leave other families alone"
    );

    // A family revoked before its first member (a replayed code's, before
    // the application issued) stays revoked past a store's sweeps.
    let empty = unique("family");
    store
        .revoke_family(&empty)
        .await
        .unwrap_or_else(|e| panic!("RefreshStore::revoke_family of an empty family failed: {e}"));
    clock.advance(Duration::from_secs(60));
    let joined = store
        .issue(fresh_key(), tokens.record("first member", &empty))
        .await;
    assert!(
        joined.is_err(),
        "RefreshStore::issue must refuse a member of a family revoked while empty (for an hour at least)"
    );
}

/// [`RefreshStore::reuse`]'s contract, straight on the store, with a window
/// of a few hundred milliseconds waited out in real time too: a rotated
/// token is `Granted` (with its record) up to the limit, then `Refused`,
/// and `Refused` once the window passed; a token claimed by a live claim
/// (a rotation in flight) is `Granted`, counted against the same limit; an
/// unused token is `NotRotated` and nothing is counted, also once a claim
/// on it was released or lapsed; a token of a revoked family, an expired
/// one and a key never issued are `Unknown`; of 32 concurrent reuses of one
/// rotated token with a limit of 5, exactly 5 are `Granted`. A reuse
/// revives nothing: the token stays used. Takes about half a second.
///
/// # Panics
///
/// On the first step that goes otherwise.
pub async fn refresh_reuse_contract<S>(store: S, clock: ManualClock)
where
    S: RefreshStore + Clone,
{
    let tokens = Refresh {
        store: store.clone(),
        clock: clock.clone(),
        family: unique("family"),
    };
    let window = |limit| ReuseWindow {
        within: REUSE_WITHIN,
        limit,
    };
    let granted = |tag: &str| Reuse::Granted(tag.to_owned());
    let refused = |tag: &str| Reuse::Refused(tag.to_owned());

    // Rotated: granted up to the limit, then refused; the whole record
    // comes back, and the token stays used.
    let rotated = fresh_key();
    let record = tokens.record("rotated", &tokens.family);
    store
        .issue(rotated, record.clone())
        .await
        .unwrap_or_else(|e| panic!("RefreshStore::issue failed: {e}"));
    tokens.rotate(&rotated).await;
    let first = store.reuse(&rotated, window(2)).await;
    assert_eq!(
        first.unwrap_or_else(|e| panic!("RefreshStore::reuse failed: {e}")),
        Reuse::Granted(record),
        "RefreshStore::reuse of a token rotated a moment ago must answer Granted with its record"
    );
    assert_eq!(
        tokens.reuse(&rotated, window(2)).await,
        granted("rotated"),
        "RefreshStore::reuse: the second of a limit of two"
    );
    assert_eq!(
        tokens.reuse(&rotated, window(2)).await,
        refused("rotated"),
        "RefreshStore::reuse past the limit, inside the window, must answer Refused"
    );
    assert_eq!(
        tokens.claim(&rotated, &new_claim(LONG_TTL)).await,
        Redemption::Used("rotated".to_owned()),
        "RefreshStore::claim of a reused token: a reuse must not make it unused again"
    );

    // In flight: claimed by a live claim, granted from the same count, which
    // the confirmation that follows keeps.
    let flight = tokens.issue("in flight").await;
    let holder = new_claim(LONG_TTL);
    assert_eq!(
        tokens.claim(&flight, &holder).await,
        Redemption::Claimed("in flight".to_owned()),
        "RefreshStore::claim of a fresh token"
    );
    for nth in ["first", "second"] {
        assert_eq!(
            tokens.reuse(&flight, window(2)).await,
            granted("in flight"),
            "RefreshStore::reuse of a token claimed by a live claim (the {nth} of a limit of two)"
        );
    }
    assert_eq!(
        tokens.reuse(&flight, window(2)).await,
        Reuse::Held,
        "RefreshStore::reuse of a claimed (unused) token past the limit must answer Held"
    );
    assert!(
        tokens.confirm(&flight, &holder).await,
        "RefreshStore::confirm by the holder, after reuses"
    );
    assert_eq!(
        tokens.reuse(&flight, window(2)).await,
        refused("in flight"),
        "RefreshStore::reuse once the claim was confirmed: the reuses granted while it was \
         in flight count against the same limit"
    );

    // Neither used nor claimed: nothing changes, nothing is counted.
    let unused = tokens.issue("unused").await;
    for _ in 0..3 {
        assert_eq!(
            tokens.reuse(&unused, window(2)).await,
            Reuse::NotRotated,
            "RefreshStore::reuse of a token neither used nor claimed"
        );
    }
    let released = tokens.issue("released").await;
    let dropped = new_claim(LONG_TTL);
    assert_eq!(
        tokens.claim(&released, &dropped).await,
        Redemption::Claimed("released".to_owned()),
        "RefreshStore::claim of a fresh token"
    );
    tokens.release(&released, &dropped).await;
    assert_eq!(
        tokens.reuse(&released, window(2)).await,
        Reuse::NotRotated,
        "RefreshStore::reuse of a token whose claim was released"
    );
    let later = new_claim(LONG_TTL);
    assert_eq!(
        tokens.claim(&unused, &later).await,
        Redemption::Claimed("unused".to_owned()),
        "RefreshStore::claim after NotRotated reuses: they must leave the token as it was"
    );
    for nth in ["first", "second"] {
        assert_eq!(
            tokens.reuse(&unused, window(2)).await,
            granted("unused"),
            "RefreshStore::reuse of a claimed token after NotRotated answers, which must not \
             count (the {nth} of a limit of two)"
        );
    }

    // Unknown: a revoked family's tokens (rotated, in flight), and a key
    // never issued.
    let doomed = Refresh {
        family: unique("family"),
        ..tokens.clone()
    };
    let (doomed_rotated, doomed_flight) =
        (doomed.issue("doomed").await, doomed.issue("doomed").await);
    doomed.rotate(&doomed_rotated).await;
    assert_eq!(
        doomed.claim(&doomed_flight, &new_claim(LONG_TTL)).await,
        Redemption::Claimed("doomed".to_owned()),
        "RefreshStore::claim of a fresh token"
    );
    store
        .revoke_family(&doomed.family)
        .await
        .unwrap_or_else(|e| panic!("RefreshStore::revoke_family failed: {e}"));
    for (key, what) in [(doomed_rotated, "rotated"), (doomed_flight, "claimed")] {
        assert_eq!(
            tokens.reuse(&key, window(2)).await,
            Reuse::Unknown,
            "RefreshStore::reuse of a {what} token of a revoked family"
        );
    }
    assert_eq!(
        tokens.reuse(&fresh_key(), window(2)).await,
        Reuse::Unknown,
        "RefreshStore::reuse of a key never issued"
    );

    // Of concurrent reuses, exactly `limit` are granted.
    let contended = tokens.issue("contended").await;
    tokens.rotate(&contended).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.reuse(&contended, window(5)).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("a reuse task panicked"));
    }
    let won = outcomes
        .iter()
        .filter(|o| **o == granted("contended"))
        .count();
    let lost = outcomes
        .iter()
        .filter(|o| **o == refused("contended"))
        .count();
    assert!(
        won == 5 && lost == 27,
        "of 32 concurrent RefreshStore::reuses of one rotated token with a limit of 5, exactly \
         5 must answer Granted and the others Refused, not {outcomes:?}"
    );

    // Waited out together: the window (for a token reused once, and one
    // never reused), a claim, and a token's lifetime.
    let late = tokens.issue("late").await;
    let idle = tokens.issue("idle").await;
    tokens.rotate(&late).await;
    tokens.rotate(&idle).await;
    assert_eq!(
        tokens.reuse(&late, window(2)).await,
        granted("late"),
        "RefreshStore::reuse of a token rotated a moment ago"
    );
    let lapsing = tokens.issue("lapsing").await;
    assert_eq!(
        tokens.claim(&lapsing, &new_claim(SHORT_TTL)).await,
        Redemption::Claimed("lapsing".to_owned()),
        "RefreshStore::claim of a fresh token"
    );
    // Lives as long as the window; reused under a window ten seconds long,
    // so only its expiry can refuse it below.
    let expiring = fresh_key();
    let mut record = tokens.record("expiring", &tokens.family);
    record.expires_at = record.issued_at + REUSE_WITHIN;
    store
        .issue(expiring, record)
        .await
        .unwrap_or_else(|e| panic!("RefreshStore::issue failed: {e}"));
    tokens.rotate(&expiring).await;
    let long_window = ReuseWindow {
        within: Duration::from_secs(10),
        limit: 2,
    };
    assert_eq!(
        tokens.reuse(&expiring, long_window).await,
        granted("expiring"),
        "RefreshStore::reuse of a live token rotated a moment ago"
    );
    let_pass(&clock, PAST_REUSE_WITHIN).await;
    assert_eq!(
        tokens.reuse(&late, window(2)).await,
        refused("late"),
        "RefreshStore::reuse once the window passed (one reuse of two left) must answer Refused"
    );
    assert_eq!(
        tokens.reuse(&idle, window(2)).await,
        refused("idle"),
        "RefreshStore::reuse once the window passed, never reused before, must answer Refused"
    );
    assert_eq!(
        tokens.reuse(&lapsing, window(2)).await,
        Reuse::NotRotated,
        "RefreshStore::reuse of a token whose claim lapsed"
    );
    assert_eq!(
        tokens.reuse(&expiring, long_window).await,
        Reuse::Unknown,
        "RefreshStore::reuse of an expired token, inside its window and under its limit"
    );
}

/// [`DeviceStore`]'s contract, straight on the store: `issue` refuses a
/// user code of a live authorization and a key in use; `find` answers only
/// live, undecided authorizations; `decide` takes one decision; of 16
/// concurrent polls of a pending code one is `Pending` and the others
/// `SlowDown` with every interval step once (no poll races another); of 16
/// concurrent polls of an approved code exactly one is `Approved`, and the
/// user code is free again after; an expired code answers `Expired` until
/// its tombstone ends.
///
/// Covers *one poll at a time*, *single redemption* and *expired codes keep
/// answering*.
///
/// # Panics
///
/// On the first step that goes otherwise.
pub async fn device_store_contract<S>(store: S, clock: ManualClock)
where
    S: DeviceStore + Clone,
{
    let now = clock.now();
    let client_id = unique("device-client");
    let record = |user_code: &str| DeviceRecord {
        client_id: client_id.clone(),
        scopes: vec!["read".to_owned()],
        user_code: user_code.to_owned(),
        status: DeviceStatus::Pending,
        interval: DEVICE_INTERVAL,
        last_poll: None,
        issued_at: now,
        expires_at: now + DEVICE_LIFETIME,
    };
    let issue = |key: CodeKey, record: DeviceRecord| {
        let store = store.clone();
        async move {
            store
                .issue(key, record)
                .await
                .unwrap_or_else(|e| panic!("DeviceStore::issue failed: {e}"))
        }
    };
    let find = |user_code: String, at: SystemTime| {
        let store = store.clone();
        async move {
            store
                .find(&user_code, at)
                .await
                .unwrap_or_else(|e| panic!("DeviceStore::find failed: {e}"))
        }
    };
    let decide = |user_code: String, decision: DeviceDecision| {
        let store = store.clone();
        async move {
            store
                .decide(&user_code, decision, now)
                .await
                .unwrap_or_else(|e| panic!("DeviceStore::decide failed: {e}"))
        }
    };
    let approve = || DeviceDecision::Approve {
        subject: SUBJECT.to_owned(),
    };

    let (pending, pending_code) = (fresh_key(), fresh_user_code());
    assert!(
        issue(pending, record(&pending_code)).await,
        "DeviceStore::issue of a new authorization"
    );
    assert!(
        !issue(fresh_key(), record(&pending_code)).await,
        "DeviceStore::issue must answer false for the user code of a live authorization"
    );
    assert!(
        !issue(pending, record(&fresh_user_code())).await,
        "DeviceStore::issue must answer false for a key in use"
    );
    let found = find(pending_code.clone(), now).await;
    assert_eq!(
        found.map(|found| (found.client_id, found.user_code, found.scopes)),
        Some((
            client_id.clone(),
            pending_code.clone(),
            vec!["read".to_owned()]
        )),
        "DeviceStore::find of a live, undecided authorization"
    );
    assert!(
        find(pending_code.clone(), now + DEVICE_LIFETIME)
            .await
            .is_none(),
        "DeviceStore::find must not answer an expired authorization"
    );
    assert!(
        find(fresh_user_code(), now).await.is_none(),
        "DeviceStore::find of a user code never issued"
    );
    let stranger = store.poll(&pending, "another-client", now).await;
    assert!(
        matches!(stranger, Ok(PollOutcome::Unknown)),
        "DeviceStore::poll by another client must answer Unknown, not {stranger:?}"
    );

    // All at one instant: the first poll is on time and every later one too
    // soon, each adding one step to the interval. A lost update shows as
    // two `Pending`s or a repeated interval.
    let outcomes = concurrent_polls(&store, pending, &client_id, now).await;
    let mut intervals: Vec<u64> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            PollOutcome::SlowDown { interval } => Some(*interval),
            _ => None,
        })
        .collect();
    intervals.sort_unstable();
    let steps: Vec<u64> = (1..16)
        .map(|n| DEVICE_INTERVAL + n * SLOW_DOWN_STEP)
        .collect();
    assert!(
        outcomes
            .iter()
            .filter(|o| **o == PollOutcome::Pending)
            .count()
            == 1
            && intervals == steps,
        "16 concurrent DeviceStore::polls of a pending code must answer Pending once and \
         SlowDown with each interval {steps:?} once (polls must not race), not {outcomes:?}"
    );

    assert!(
        decide(pending_code.clone(), approve()).await,
        "DeviceStore::decide of a pending authorization"
    );
    assert!(
        !decide(pending_code.clone(), DeviceDecision::Deny).await,
        "DeviceStore::decide must refuse a second decision"
    );
    assert!(
        find(pending_code.clone(), now).await.is_none(),
        "DeviceStore::find must not answer a decided authorization"
    );
    assert!(
        !decide(fresh_user_code(), approve()).await,
        "DeviceStore::decide of a user code never issued"
    );

    let (approved, approved_code) = (fresh_key(), fresh_user_code());
    assert!(
        issue(approved, record(&approved_code)).await,
        "DeviceStore::issue"
    );
    assert!(
        decide(approved_code.clone(), approve()).await,
        "DeviceStore::decide"
    );
    let outcomes = concurrent_polls(&store, approved, &client_id, now).await;
    let winners: Vec<_> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            PollOutcome::Approved(record) => Some(record.subject()),
            _ => None,
        })
        .collect();
    assert_eq!(
        winners,
        [Some(SUBJECT)],
        "of 16 concurrent DeviceStore::polls of an approved code exactly one must answer \
         Approved (with the approval), not {outcomes:?}"
    );
    assert!(
        issue(fresh_key(), record(&approved_code)).await,
        "DeviceStore::issue must accept the user code of an authorization redeemed by a poll"
    );

    let (expiring, expiring_code) = (fresh_key(), fresh_user_code());
    assert!(
        issue(expiring, record(&expiring_code)).await,
        "DeviceStore::issue"
    );
    let expired = store
        .decide(&expiring_code, approve(), now + DEVICE_LIFETIME)
        .await;
    assert!(
        matches!(expired, Ok(false)),
        "DeviceStore::decide must refuse an expired authorization, not {expired:?}"
    );
    for (after, when) in [
        (DEVICE_LIFETIME, "at its expiry"),
        (
            DEVICE_LIFETIME + DEVICE_TOMBSTONE - Duration::from_secs(1),
            "just before its tombstone ends",
        ),
    ] {
        let outcome = store.poll(&expiring, &client_id, now + after).await;
        assert!(
            matches!(outcome, Ok(PollOutcome::Expired)),
            "DeviceStore::poll of an expired code {when} must answer Expired, not {outcome:?}"
        );
    }
}

/// The claim contract shared by codes and refresh tokens; see
/// [`refresh_claim_contract`].
async fn claim_contract<C: Claims>(claims: C) {
    let name = C::NAME;
    let claimed = |tag: &str| Redemption::Claimed(tag.to_owned());
    let used = |tag: &str| Redemption::Used(tag.to_owned());
    let key = claims.issue("first").await;
    let (a, b) = (new_claim(LONG_TTL), new_claim(LONG_TTL));
    assert_eq!(
        claims.claim(&key, &a).await,
        claimed("first"),
        "{name}::claim of a fresh value"
    );
    assert_eq!(
        claims.claim(&key, &b).await,
        Redemption::Busy,
        "{name}::claim while another live claim holds the value"
    );
    assert!(
        !claims.confirm(&key, &b).await,
        "{name}::confirm by a claim that does not hold the value must answer false"
    );
    claims.release(&key, &b).await;
    assert_eq!(
        claims.claim(&key, &b).await,
        Redemption::Busy,
        "{name}::release by a claim that does not hold the value must change nothing"
    );
    claims.release(&key, &a).await;
    assert_eq!(
        claims.claim(&key, &b).await,
        claimed("first"),
        "{name}::claim after the holder released the value"
    );
    assert!(
        !claims.confirm(&key, &a).await,
        "{name}::confirm by a claim that released the value must answer false"
    );
    claims.release(&key, &a).await;
    assert!(
        claims.confirm(&key, &b).await,
        "{name}::confirm by the holder must answer true"
    );
    assert_eq!(
        claims.claim(&key, &a).await,
        used("first"),
        "{name}::claim of a used value must answer Used with its record"
    );
    assert_eq!(
        claims.claim(&key, &new_claim(LONG_TTL)).await,
        used("first"),
        "{name}::claim of a used value, by a new claim"
    );
    assert!(
        claims.issue_at(key, "revived").await.is_err(),
        "{name}::issue must fail for a key in use (it would revive a used value)"
    );
    assert_eq!(
        claims.claim(&key, &new_claim(LONG_TTL)).await,
        used("first"),
        "{name}::claim of a used value after a refused issue under its key"
    );
    let unknown = fresh_key();
    assert_eq!(
        claims.claim(&unknown, &a).await,
        Redemption::Unknown,
        "{name}::claim of a key never issued"
    );
    assert!(
        !claims.confirm(&unknown, &a).await,
        "{name}::confirm of a key never issued"
    );
    claims.release(&unknown, &a).await;

    // Two short claims, waited out together: one is taken over, the other
    // left alone.
    let (taken, untouched) = (claims.issue("taken").await, claims.issue("untouched").await);
    let (dead, slow) = (new_claim(SHORT_TTL), new_claim(SHORT_TTL));
    assert_eq!(
        claims.claim(&taken, &dead).await,
        claimed("taken"),
        "{name}::claim"
    );
    assert_eq!(
        claims.claim(&untouched, &slow).await,
        claimed("untouched"),
        "{name}::claim"
    );
    let_pass(claims.clock(), PAST_SHORT_TTL).await;
    let taker = new_claim(LONG_TTL);
    assert_eq!(
        claims.claim(&taken, &taker).await,
        claimed("taken"),
        "{name}::claim must take over a value whose claim lapsed"
    );
    assert!(
        !claims.confirm(&taken, &dead).await,
        "{name}::confirm of a lapsed claim taken over since must answer false"
    );
    claims.release(&taken, &dead).await;
    assert_eq!(
        claims.claim(&taken, &new_claim(LONG_TTL)).await,
        Redemption::Busy,
        "{name}::release of a lapsed claim must not free the value for its new holder"
    );
    assert!(
        claims.confirm(&taken, &taker).await,
        "{name}::confirm by the new holder"
    );
    assert!(
        claims.confirm(&untouched, &slow).await,
        "{name}::confirm of a claim past its ttl that nobody took over must still answer true"
    );
    assert_eq!(
        claims.claim(&untouched, &a).await,
        used("untouched"),
        "{name}::claim"
    );

    let key = claims.issue("contended").await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let claims = claims.clone();
            tokio::spawn(async move { claims.claim(&key, &new_claim(LONG_TTL)).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("a claim task panicked"));
    }
    let won = outcomes
        .iter()
        .filter(|o| **o == claimed("contended"))
        .count();
    let busy = outcomes.iter().filter(|o| **o == Redemption::Busy).count();
    assert!(
        won == 1 && busy == 31,
        "of 32 concurrent {name}::claims exactly one must answer Claimed and the others Busy, \
         not {outcomes:?}"
    );
}

/// One kind of value a store claims (codes or refresh tokens), seen
/// through the same four verbs so one contract checks both. Records are
/// reduced to a tag (their subject) naming which one came back; a store
/// failure is a panic.
trait Claims: Clone + Send + Sync + 'static {
    /// The trait under test, for messages.
    const NAME: &'static str;

    /// The clock the store reads, if any.
    fn clock(&self) -> &ManualClock;

    /// Stores a value tagged `tag` under `key`.
    fn issue_at(
        &self,
        key: CodeKey,
        tag: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Issues a fresh value tagged `tag`; its key.
    fn issue(&self, tag: &str) -> impl Future<Output = CodeKey> + Send {
        async move {
            let key = fresh_key();
            let issued = self.issue_at(key, tag).await;
            issued.unwrap_or_else(|e| panic!("{}::issue failed: {e}", Self::NAME));
            key
        }
    }

    fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> impl Future<Output = Redemption<String>> + Send;

    fn confirm(&self, key: &CodeKey, claim: &Claim) -> impl Future<Output = bool> + Send;

    fn release(&self, key: &CodeKey, claim: &Claim) -> impl Future<Output = ()> + Send;
}

/// A code store under the claim contract.
#[derive(Clone)]
struct Codes<S> {
    store: S,
    clock: ManualClock,
}

impl<S: CodeStore + Clone> Claims for Codes<S> {
    const NAME: &'static str = "CodeStore";

    fn clock(&self) -> &ManualClock {
        &self.clock
    }

    async fn issue_at(&self, key: CodeKey, tag: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        let record = CodeRecord {
            client_id: "conformance".to_owned(),
            subject: tag.to_owned(),
            scopes: vec!["read".to_owned()],
            redirect_uri: Some(CB.to_owned()),
            pkce: None,
            issued_at: now,
            expires_at: now + LONG_TTL,
            dpop_jkt: None,
        };
        self.store.issue(key, record).await
    }

    async fn claim(&self, key: &CodeKey, claim: &Claim) -> Redemption<String> {
        let redemption = self.store.claim(key, claim).await;
        tagged(
            redemption.unwrap_or_else(|e| panic!("CodeStore::claim failed: {e}")),
            |r| &r.subject,
        )
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> bool {
        let confirmed = self.store.confirm(key, claim).await;
        confirmed.unwrap_or_else(|e| panic!("CodeStore::confirm failed: {e}"))
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) {
        let released = self.store.release(key, claim).await;
        released.unwrap_or_else(|e| panic!("CodeStore::release failed: {e}"));
    }
}

/// A refresh store under the claim contract, issuing into `family`.
#[derive(Clone)]
struct Refresh<S> {
    store: S,
    clock: ManualClock,
    family: String,
}

impl<S> Refresh<S> {
    fn record(&self, tag: &str, family: &str) -> RefreshRecord {
        let now = self.clock.now();
        RefreshRecord {
            client_id: "conformance".to_owned(),
            subject: tag.to_owned(),
            scopes: vec!["read".to_owned()],
            family: family.to_owned(),
            issued_at: now,
            expires_at: now + LONG_TTL,
            dpop_jkt: None,
        }
    }
}

impl<S: RefreshStore + Clone> Refresh<S> {
    /// Rotates the token away: claims and confirms it.
    async fn rotate(&self, key: &CodeKey) {
        let claim = new_claim(LONG_TTL);
        let claimed = Claims::claim(self, key, &claim).await;
        assert!(
            matches!(claimed, Redemption::Claimed(_)),
            "RefreshStore::claim of a fresh token must answer Claimed, not {claimed:?}"
        );
        assert!(
            Claims::confirm(self, key, &claim).await,
            "RefreshStore::confirm by the holder must answer true"
        );
    }

    /// A reuse of the token under `window`, its record reduced to its tag.
    async fn reuse(&self, key: &CodeKey, window: ReuseWindow) -> Reuse<String> {
        let reuse = self.store.reuse(key, window).await;
        match reuse.unwrap_or_else(|e| panic!("RefreshStore::reuse failed: {e}")) {
            Reuse::Granted(record) => Reuse::Granted(record.subject),
            Reuse::Refused(record) => Reuse::Refused(record.subject),
            Reuse::NotRotated => Reuse::NotRotated,
            Reuse::Held => Reuse::Held,
            Reuse::Unknown => Reuse::Unknown,
        }
    }
}

impl<S: RefreshStore + Clone> Claims for Refresh<S> {
    const NAME: &'static str = "RefreshStore";

    fn clock(&self) -> &ManualClock {
        &self.clock
    }

    async fn issue_at(&self, key: CodeKey, tag: &str) -> Result<(), StoreError> {
        self.store.issue(key, self.record(tag, &self.family)).await
    }

    async fn claim(&self, key: &CodeKey, claim: &Claim) -> Redemption<String> {
        let redemption = self.store.claim(key, claim).await;
        tagged(
            redemption.unwrap_or_else(|e| panic!("RefreshStore::claim failed: {e}")),
            |r| &r.subject,
        )
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> bool {
        let confirmed = self.store.confirm(key, claim).await;
        confirmed.unwrap_or_else(|e| panic!("RefreshStore::confirm failed: {e}"))
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) {
        let released = self.store.release(key, claim).await;
        released.unwrap_or_else(|e| panic!("RefreshStore::release failed: {e}"));
    }
}

/// `redemption` with its record reduced to its tag.
fn tagged<T>(redemption: Redemption<T>, tag: impl Fn(&T) -> &str) -> Redemption<String> {
    match redemption {
        Redemption::Claimed(record) => Redemption::Claimed(tag(&record).to_owned()),
        Redemption::Used(record) => Redemption::Used(tag(&record).to_owned()),
        Redemption::Busy => Redemption::Busy,
        Redemption::Unknown => Redemption::Unknown,
    }
}

/// 16 polls of `key` at once, all at `now`; their outcomes.
async fn concurrent_polls<S: DeviceStore + Clone>(
    store: &S,
    key: CodeKey,
    client_id: &str,
    now: SystemTime,
) -> Vec<PollOutcome> {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, client_id) = (store.clone(), client_id.to_owned());
            tokio::spawn(async move { store.poll(&key, &client_id, now).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        let outcome = task.await.expect("a poll task panicked");
        outcomes.push(outcome.unwrap_or_else(|e| panic!("DeviceStore::poll failed: {e}")));
    }
    outcomes
}

/// With two-phase redemption off, a value is used up before the inner
/// service runs (a claim confirmed at once): a code is redeemed once under
/// concurrency and its replay is told; a refresh token rotates at most
/// once, and presenting it again, even racing its own rotation, revokes the
/// family.
///
/// Covers [`CodeStore`]'s and [`RefreshStore`]'s *single use* when `claim`
/// and `confirm` follow each other at once.
pub async fn consume_on_read<S>(store: S, clock: ManualClock)
where
    S: CodeStore + RefreshStore + DeviceStore + Clone,
{
    let gate = Gate::with(store, clock, None);
    let code = gate.code("read").await;
    let grant = gate
        .post(gate.exchange(&code))
        .await
        .expect_forwarded("a fresh code, two-phase redemption off");
    gate.post(gate.exchange(&code)).await.expect_refused(
        400,
        "invalid_grant",
        "a code presented again, two-phase redemption off",
    );
    assert_eq!(
        gate.replays(),
        1,
        "the valid replay must reach the hook once"
    );

    // Concurrent presentations of a few codes: one token each.
    let forwarded = gate.redeem_concurrently(4, 10).await;
    assert_eq!(
        forwarded, 4,
        "40 concurrent requests on 4 codes, two-phase redemption off, must forward exactly 4"
    );

    // A refresh token: concurrent presentations rotate it once, and the
    // others are replays that revoke the family.
    // One refresh alone rotates the token: the race below must not pass
    // for a store on which no rotation ever succeeds.
    let tokens = gate.layer.refresh_tokens();
    let issued = |issued: Result<String, StoreError>| {
        issued.unwrap_or_else(|e| panic!("RefreshStore::issue of a new token failed: {e}"))
    };
    assert!(
        tokens.issue(&grant).await.is_err(),
        "the code above was replayed: no refresh token may be issued from it"
    );
    let code = gate.code("read").await;
    let grant = gate
        .post(gate.exchange(&code))
        .await
        .expect_forwarded("a fresh code, two-phase redemption off");
    let alone = issued(tokens.issue(&grant).await);
    let rotated_alone = gate
        .post(gate.refresh(&alone))
        .await
        .expect_forwarded("a refresh token presented once, two-phase redemption off");
    gate.post(gate.refresh(&alone)).await.expect_refused(
        400,
        "invalid_grant",
        "a refresh token presented after its rotation, two-phase redemption off",
    );
    assert!(
        tokens.issue(&rotated_alone).await.is_err(),
        "a rotated-away token presented again must revoke its family"
    );
    let code = gate.code("read").await;
    let grant = gate
        .post(gate.exchange(&code))
        .await
        .expect_forwarded("a fresh code, two-phase redemption off");
    let first = issued(tokens.issue(&grant).await);
    let tasks: Vec<_> = (0..8)
        .map(|_| tokio::spawn(send(&gate.layer, Inner::minting(), gate.refresh(&first))))
        .collect();
    let mut rotated = Vec::new();
    for task in tasks {
        let answer = task
            .await
            .expect("a request task panicked")
            .expect("the minting inner service never fails");
        if let Some(grant) = answer.grant.filter(|_| answer.status.is_success()) {
            rotated.push(grant);
        }
    }
    // The race itself is a replay: the family is revoked, so the winner's
    // confirmation may fail too (then nobody rotated it). Never two.
    assert!(
        rotated.len() <= 1,
        "8 concurrent refreshes of one token, two-phase redemption off, rotated it {} times",
        rotated.len()
    );
    gate.post(gate.refresh(&first)).await.expect_refused(
        400,
        "invalid_grant",
        "a refresh token presented again after a race, two-phase redemption off",
    );
    if let Some(rotated) = rotated.first() {
        assert!(
            tokens.issue(rotated).await.is_err(),
            "the others replayed the token: its family must be revoked, no new member may join it"
        );
    }
}

/// A TCP relay on loopback in front of a networked store's server, that
/// can be cut and restored: [`outage_and_recovery`] takes the store away
/// without touching the server other tests share.
///
/// Point the store at [`Relay::addr`] instead of the server.
#[derive(Debug)]
pub struct Relay {
    addr: String,
    down: Arc<AtomicBool>,
}

impl Relay {
    /// A relay on a free loopback port to `target` (`host:port`).
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port for the relay");
        let addr = listener
            .local_addr()
            .expect("the relay's own address")
            .to_string();
        let down = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&down);
        let target = target.to_owned();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped at once: connection refused, in effect
                }
                let (target, flag) = (target.clone(), Arc::clone(&flag));
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    // Live connections are cut when the relay goes down.
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = async {
                            while !flag.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        } => {}
                    }
                });
            }
        });
        Self { addr, down }
    }

    /// Where the store must connect: `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Cuts every connection and refuses new ones, until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
    }

    /// Relays again.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

/// Fail closed, then recover: with the store's connection cut, every
/// exchange is answered `500 server_error` within about twice `timeout`
/// (the store's own bound on a call) and nothing is forwarded; once the
/// connection is back, the same gate redeems the same code.
///
/// `store` must reach its server through `relay`. Not part of [`run`]: only
/// a networked store can be cut off.
pub async fn outage_and_recovery<S>(store: S, clock: ManualClock, relay: &Relay, timeout: Duration)
where
    S: CodeStore + RefreshStore + DeviceStore + Clone,
{
    // A claim whose answer was lost on a slow connection (the store took
    // it, the gate timed out) holds the code until it lapses: short, so the
    // recovery below does not wait for it.
    let gate = Gate::new(store, clock, Duration::from_secs(2));
    let code = gate.code("read").await;
    relay.cut();
    // Give the relay a moment to cut the live connections.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let answer = gate.post(gate.exchange(&code)).await;
        let elapsed = started.elapsed();
        answer.expect_refused(500, "server_error", "an exchange while the store is away");
        assert!(
            elapsed < timeout * 2 + Duration::from_millis(500),
            "with the store away, the answer took {elapsed:?}: the store's timeout ({timeout:?}) must bound every call"
        );
    }
    relay.restore();
    // The code was never touched while the store was away: once it is
    // back, the same gate redeems it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = tokio::time::timeout(Duration::from_secs(5), gate.post(gate.exchange(&code)))
            .await
            .map_or_else(
                |_| "no answer within 5 s".to_owned(),
                |answer| format!("{} {}", answer.status, answer.body),
            );
        if answer.starts_with("200 ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store did not come back within 10 s of its server; the last answer: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A gate in the RFC 6749 dialect over the store under test, with clients
/// of its own (ids unique to this run).
struct Gate {
    layer: TokenGateLayer,
    clock: ManualClock,
    /// A confidential client with two secrets, allowed `read` and `write`.
    app: String,
    /// Another confidential client.
    other: String,
    /// A public client of the device flow.
    tv: String,
    /// The PKCE pair every code is bound to.
    verifier: String,
    challenge: String,
    /// How many times the code replay hook fired.
    replays: Arc<AtomicUsize>,
    /// How many times the refresh token replay hook fired.
    refresh_replays: Arc<AtomicUsize>,
}

impl Gate {
    fn new<S>(store: S, clock: ManualClock, claim_ttl: Duration) -> Self
    where
        S: CodeStore + RefreshStore + DeviceStore + Clone,
    {
        Self::with(store, clock, Some(claim_ttl))
    }

    /// A gate whose claims are confirmed at once (two-phase redemption off)
    /// when `claim_ttl` is `None`.
    fn with<S>(store: S, clock: ManualClock, claim_ttl: Option<Duration>) -> Self
    where
        S: CodeStore + RefreshStore + DeviceStore + Clone,
    {
        Self::build(store, clock, claim_ttl, None)
    }

    /// A gate whose rotated refresh tokens may be reused within `window`.
    fn reusing<S>(store: S, clock: ManualClock, window: ReuseWindow) -> Self
    where
        S: CodeStore + RefreshStore + DeviceStore + Clone,
    {
        Self::build(store, clock, Some(LONG_TTL), Some(window))
    }

    fn build<S>(
        store: S,
        clock: ManualClock,
        claim_ttl: Option<Duration>,
        reuse: Option<ReuseWindow>,
    ) -> Self
    where
        S: CodeStore + RefreshStore + DeviceStore + Clone,
    {
        let (app, other, tv) = (unique("app"), unique("other"), unique("tv"));
        let clients = MemoryStore::with_clock(clock.clone());
        clients.insert_client(
            Client::confidential(app.clone())
                .with_secret(SECRET)
                .with_secret(ROTATED)
                .with_redirect_uri(CB)
                .with_scopes(["read", "write"]),
        );
        clients.insert_client(
            Client::confidential(other.clone())
                .with_secret(OTHER_SECRET)
                .with_redirect_uri(CB),
        );
        clients.insert_client(
            Client::public(tv.clone())
                .with_grant_types([GrantType::DeviceCode, GrantType::RefreshToken]),
        );
        let replays = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&replays);
        let refresh_replays = Arc::new(AtomicUsize::new(0));
        let refresh_counter = Arc::clone(&refresh_replays);
        let (within, limit) = reuse.map_or((Duration::ZERO, 0), |w| (w.within, w.limit));
        let layer = TokenGateLayer::builder()
            .client_store(clients)
            .code_store(store.clone())
            .refresh_store(store.clone())
            .device_store(store)
            .issuer("https://auth.example.com")
            .dialect(Dialect::Rfc6749)
            .clock(clock.clone())
            .two_phase_redemption(claim_ttl)
            .device_timing(DEVICE_LIFETIME, DEVICE_INTERVAL)
            // The cases hammer one client id on purpose.
            .lockout(None)
            .on_code_replay(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            })
            .on_refresh_replay(move |_| {
                refresh_counter.fetch_add(1, Ordering::SeqCst);
            })
            // A zero turns the window off: every other gate of the suite.
            .refresh_reuse(within, limit)
            .build();
        let (verifier, challenge) = pkce_pair();
        Self {
            layer,
            clock,
            app,
            other,
            tv,
            verifier,
            challenge,
            replays,
            refresh_replays,
        }
    }

    fn replays(&self) -> usize {
        self.replays.load(Ordering::SeqCst)
    }

    fn refresh_replays(&self) -> usize {
        self.refresh_replays.load(Ordering::SeqCst)
    }

    /// The successor the application issues after `grant`.
    async fn successor(&self, grant: &ValidatedGrant) -> String {
        let issued = self.layer.refresh_tokens().issue(grant).await;
        issued.unwrap_or_else(|e| panic!("RefreshStore::issue of a successor failed: {e}"))
    }

    /// A code for `app` and `scope`, minted through the issuing side.
    async fn code(&self, scope: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.app)
            .append_pair("redirect_uri", CB)
            .append_pair("scope", scope)
            .append_pair("code_challenge", &self.challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let authorizer = self.layer.authorizer();
        let request = authorizer
            .validate(&query)
            .await
            .unwrap_or_else(|e| panic!("the suite's authorization request was refused: {e}"));
        let approval = authorizer
            .approve(&request, SUBJECT)
            .await
            .unwrap_or_else(|e| panic!("minting a code failed (CodeStore::issue): {e}"));
        approval.code().to_owned()
    }

    /// A refresh token for `app` and `scope`, issued after a code exchange.
    async fn refresh_token(&self, scope: &str) -> String {
        let code = self.code(scope).await;
        let answer = self.post(self.exchange(&code)).await;
        let grant = answer.expect_forwarded("a fresh code");
        let issued = self.layer.refresh_tokens().issue(&grant).await;
        issued.unwrap_or_else(|e| panic!("RefreshStore::issue of a new token failed: {e}"))
    }

    /// A device authorization for `tv`: its device code and user code.
    async fn device_authorization(&self) -> (String, String) {
        let answer = self
            .post(TokenRequest::device_authorization(&self.tv))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "the device authorization endpoint refused (DeviceStore::issue): {}",
            answer.body
        );
        let body = answer.json();
        let field = |name: &str| {
            body[name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in {body}"))
                .to_owned()
        };
        (field("device_code"), field("user_code"))
    }

    /// Mints `codes` codes and presents each `times` times at once; how
    /// many were forwarded (every other answer must be `invalid_grant`).
    async fn redeem_concurrently(&self, codes: usize, times: usize) -> usize {
        let mut minted = Vec::new();
        for _ in 0..codes {
            minted.push(self.code("read").await);
        }
        let tasks: Vec<_> = (0..codes * times)
            .map(|i| {
                let request = self.exchange(&minted[i % codes]);
                tokio::spawn(send(&self.layer, Inner::minting(), request))
            })
            .collect();
        let mut forwarded = 0;
        for task in tasks {
            let answer = task
                .await
                .expect("a request task panicked")
                .expect("the minting inner service never fails");
            if answer.status.is_success() {
                forwarded += 1;
            } else {
                answer.expect_refused(400, "invalid_grant", "a code presented concurrently");
            }
        }
        forwarded
    }

    /// A valid exchange of `code` by `app`.
    fn exchange(&self, code: &str) -> TokenRequest {
        TokenRequest::authorization_code(code)
            .client_secret_post(&self.app, SECRET)
            .redirect_uri(CB)
            .code_verifier(&self.verifier)
    }

    /// A refresh of `token` by `app`.
    fn refresh(&self, token: &str) -> TokenRequest {
        TokenRequest::refresh_token(token).client_secret_post(&self.app, SECRET)
    }

    /// A poll of `device_code` by `tv`.
    fn poll(&self, device_code: &str) -> TokenRequest {
        TokenRequest::device_code(device_code).public_client(&self.tv)
    }

    /// Sends `request` through the gate to an inner service that mints a
    /// token.
    async fn post(&self, request: TokenRequest) -> Answer {
        send(&self.layer, Inner::minting(), request)
            .await
            .expect("the minting inner service never fails")
    }

    /// Sends `request` to an inner service failing each way in turn, then
    /// to a working one: after every failure the value must be back (the
    /// next request reaches the inner service again), then it is redeemed
    /// once and used up.
    async fn survives(&self, what: &str, request: impl Fn() -> TokenRequest) {
        // Each request waits out the device flow's polling interval. That
        // moves the clock by minutes, so this fixture's claims last an
        // hour: a claim a failure failed to release never lapses here.
        let tick = || self.clock.advance(Duration::from_secs(60));
        for fault in Fault::ALL {
            tick();
            let seen = self.send_faulty(request(), fault).await;
            assert_eq!(
                seen,
                fault.expected(),
                "{what} through an inner service that fails with {fault:?}: the request must \
                 reach it (if refused, an earlier failure did not hand the value back)"
            );
            if matches!(fault, Fault::Panic | Fault::Hang) {
                // A dropped claim is released by a task the gate spawns
                // when the store cannot answer at once: let it land.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tick();
        self.post(request())
            .await
            .expect_forwarded(&format!("{what} presented after four failures"));
        tick();
        self.post(request()).await.expect_refused(
            400,
            "invalid_grant",
            &format!("{what} presented again once it was redeemed"),
        );
    }

    /// Sends `request` to an inner service that fails with `fault`; what
    /// the client saw.
    async fn send_faulty(&self, request: TokenRequest, fault: Fault) -> Seen {
        let entered = Arc::new(Notify::new());
        let inner = fault.inner(Arc::clone(&entered));
        let task = tokio::spawn(send(&self.layer, inner, request));
        if let Fault::Hang = fault {
            // The client gives up once its request is in the inner service:
            // the gate's future is dropped holding the claim. A request the
            // gate refused never gets there; its answer then says why.
            let reached = tokio::time::timeout(Duration::from_secs(5), entered.notified()).await;
            if reached.is_ok() {
                task.abort();
            }
        }
        match task.await {
            Ok(Ok(answer)) => Seen::Status(answer.status),
            Ok(Err(_)) => Seen::Error,
            Err(join) if join.is_panic() => Seen::Panic,
            Err(_) => Seen::Dropped,
        }
    }
}

/// How the inner service fails.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// It answers 503.
    Unavailable,
    /// Its future fails.
    Error,
    /// It panics.
    Panic,
    /// It never answers, and the client gives up.
    Hang,
}

/// What a client saw of a request.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Status(StatusCode),
    Error,
    Panic,
    Dropped,
}

impl Fault {
    const ALL: [Self; 4] = [Self::Unavailable, Self::Error, Self::Panic, Self::Hang];

    fn expected(self) -> Seen {
        match self {
            Self::Unavailable => Seen::Status(StatusCode::SERVICE_UNAVAILABLE),
            Self::Error => Seen::Error,
            Self::Panic => Seen::Panic,
            Self::Hang => Seen::Dropped,
        }
    }

    /// An inner service failing this way, telling `entered` when a request
    /// reached it.
    fn inner(self, entered: Arc<Notify>) -> Inner {
        Inner::new(move |_| {
            entered.notify_one();
            async move {
                match self {
                    Self::Unavailable => {
                        let mut response = Response::new("busy".to_owned());
                        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                        Ok(response)
                    }
                    Self::Error => Err(io::Error::other("the token minter failed")),
                    Self::Panic => {
                        panic!("conformance suite: the inner service panics on purpose")
                    }
                    Self::Hang => std::future::pending().await,
                }
            }
        })
    }
}

/// The inner service's future.
type InnerFuture = Pin<Box<dyn Future<Output = Result<Response<String>, io::Error>> + Send>>;

/// The inner service behind the gate, as a closure (the crate depends on
/// `tower-service` only, so no `service_fn`).
#[derive(Clone)]
struct Inner(Arc<dyn Fn(Request<RequestBody<String>>) -> InnerFuture + Send + Sync>);

impl Inner {
    fn new<F, Fut>(call: F) -> Self
    where
        F: Fn(Request<RequestBody<String>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<String>, io::Error>> + Send + 'static,
    {
        Self(Arc::new(move |request| Box::pin(call(request))))
    }

    /// Mints as [`minting`](Self::minting), each call only once `calls`
    /// calls are in, so every request that reaches it overlaps the others.
    /// After five seconds it mints anyway: a request the gate refused never
    /// comes, and the case must fail on that answer rather than hang.
    fn minting_together(calls: usize) -> Self {
        let together = Arc::new(Barrier::new(calls));
        Self::new(move |request| {
            let grant = request.extensions().get::<ValidatedGrant>().cloned();
            let together = Arc::clone(&together);
            async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), together.wait()).await;
                let mut response = Response::new("token".to_owned());
                if let Some(grant) = grant {
                    response.extensions_mut().insert(grant);
                }
                Ok(response)
            }
        })
    }

    /// Mints a token: `200`, with the grant it received in the response's
    /// extensions for the case to read.
    fn minting() -> Self {
        Self::new(|request| {
            let grant = request.extensions().get::<ValidatedGrant>().cloned();
            async move {
                let mut response = Response::new("token".to_owned());
                if let Some(grant) = grant {
                    response.extensions_mut().insert(grant);
                }
                Ok(response)
            }
        })
    }
}

impl Service<Request<RequestBody<String>>> for Inner {
    type Response = Response<String>;
    type Error = io::Error;
    type Future = InnerFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<RequestBody<String>>) -> InnerFuture {
        (self.0)(request)
    }
}

/// Sends `request` through `layer` to `inner` and reads the whole answer,
/// as a server would. The future owns everything, so it can be spawned.
fn send(
    layer: &TokenGateLayer,
    inner: Inner,
    request: TokenRequest,
) -> impl Future<Output = Result<Answer, io::Error>> + Send + 'static {
    let mut gate = Layer::layer(layer, inner);
    let request = request.build();
    async move {
        poll_fn(|cx| gate.poll_ready(cx)).await?;
        let response = gate.call(request).await?;
        Ok(Answer::read(response).await)
    }
}

/// A response, read whole.
struct Answer {
    status: StatusCode,
    body: String,
    /// The grant the minting inner service received, if it ran.
    grant: Option<ValidatedGrant>,
}

impl Answer {
    async fn read(response: Response<ResponseBody<String>>) -> Self {
        let (parts, body) = response.into_parts();
        let body = match collect(body).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(never) => match never {},
        };
        Self {
            status: parts.status,
            body,
            grant: parts.extensions.get::<ValidatedGrant>().cloned(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts the gate forwarded the request (`what`) and the token came
    /// back; the grant the inner service received.
    #[track_caller]
    fn expect_forwarded(&self, what: &str) -> ValidatedGrant {
        match &self.grant {
            Some(grant) if self.status == StatusCode::OK => grant.clone(),
            _ => panic!(
                "{what}: must be forwarded and answered with a token, but the gate answered {} {}",
                self.status, self.body
            ),
        }
    }

    /// Asserts the gate refused the request (`what`) with `status` and
    /// `error`.
    #[track_caller]
    fn expect_refused(&self, status: u16, error: &str, what: &str) {
        let sent = serde_json::from_str::<Value>(&self.body).ok();
        let sent = sent.as_ref().and_then(|body| body["error"].as_str());
        assert!(
            self.status.as_u16() == status && sent == Some(error),
            "{what}: must be refused with {status} {error}, but the answer was {} {}",
            self.status,
            self.body
        );
    }
}

/// Reads a body to its end.
async fn collect<B: Body<Data = Bytes>>(body: B) -> Result<Vec<u8>, B::Error> {
    let mut body = pin!(body);
    let mut bytes = Vec::new();
    while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        // Trailers carry nothing the suite reads.
        if let Ok(data) = frame?.into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// Lets `by` pass on both clocks: the suite's, for stores that read it, and
/// the real one, for stores on their server's clock.
async fn let_pass(clock: &ManualClock, by: Duration) {
    clock.advance(by);
    tokio::time::sleep(by).await;
}

/// `name` with a random suffix: a networked store is shared between runs.
fn unique(name: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    format!("{name}-{}", hex::encode(bytes))
}

/// The key of a random code: never issued before, in this run or another.
fn fresh_key() -> CodeKey {
    CodeKey::of(&random_code().expect("the operating system's random source"))
}

/// A random user code (34 bits: unique enough among one run's handful).
fn fresh_user_code() -> String {
    random_user_code().expect("the operating system's random source")
}

fn new_claim(ttl: Duration) -> Claim {
    Claim::new(ttl).expect("the operating system's random source")
}

/// [`LockoutStore`]'s guarantees, straight on the store, in real time (a
/// store on its server's clock cannot be moved): limits per counter, the
/// longest wait of several counters, a window that ends by itself, and
/// concurrent failures all counted. Keys are random per run. Takes about
/// a second.
///
/// # Panics
///
/// On the first broken guarantee, saying which.
pub async fn lockout_store_contract<S: LockoutStore>(store: S) {
    let store = Arc::new(store);
    let id = random_code().expect("randomness");
    let other = random_code().expect("randomness");
    let counter = |client_id, limit, window| Counter {
        key: CounterKey::Client(client_id),
        limit,
        window,
    };
    let long = Duration::from_secs(600);
    let short = Duration::from_millis(700);
    let locked = |counters: Vec<Counter<'static>>| {
        let store = Arc::clone(&store);
        async move {
            store
                .locked(&counters, SystemTime::now())
                .await
                .expect("the lockout store answers")
        }
    };
    let id: &'static str = Box::leak(id.into_boxed_str());
    let other: &'static str = Box::leak(other.into_boxed_str());

    assert_eq!(locked(vec![]).await, None, "no counters, no lockout");
    assert_eq!(
        locked(vec![counter(id, 1, long)]).await,
        None,
        "a fresh key is open"
    );
    for _ in 0..2 {
        store
            .fail(&[counter(id, 3, long)], SystemTime::now())
            .await
            .expect("the lockout store counts");
    }
    assert_eq!(
        locked(vec![counter(id, 3, long)]).await,
        None,
        "two failures of three lock nothing"
    );
    let wait = locked(vec![counter(id, 2, long)])
        .await
        .expect("two failures reach a limit of two");
    assert!(
        wait > Duration::from_secs(590) && wait <= long,
        "the wait is what is left of the window, not {wait:?}"
    );
    assert_eq!(
        locked(vec![counter(other, 1, long)]).await,
        None,
        "keys are counted apart"
    );

    // Several counters: the longest wait among the locked ones.
    store
        .fail(&[counter(other, 1, short)], SystemTime::now())
        .await
        .expect("the lockout store counts");
    let both = locked(vec![counter(other, 1, short), counter(id, 2, long)])
        .await
        .expect("both are locked");
    assert!(both > short, "the longest wait wins, not {both:?}");
    let wait = locked(vec![counter(other, 1, short), counter(id, 3, long)])
        .await
        .expect("the short counter is locked");
    assert!(wait <= short, "an open counter adds no wait: {wait:?}");

    // The short window ends by itself; the next failure opens a new one.
    tokio::time::sleep(short + Duration::from_millis(300)).await;
    assert_eq!(
        locked(vec![counter(other, 1, short)]).await,
        None,
        "a window ends by itself"
    );
    store
        .fail(&[counter(other, 2, short)], SystemTime::now())
        .await
        .expect("the lockout store counts");
    assert_eq!(
        locked(vec![counter(other, 2, short)]).await,
        None,
        "a new window starts from nothing"
    );

    // Concurrent failures are all counted.
    let crowd = random_code().expect("randomness");
    let crowd: &'static str = Box::leak(crowd.into_boxed_str());
    let failures = (0..64).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .fail(&[counter(crowd, 64, long)], SystemTime::now())
                .await
                .expect("the lockout store counts");
        })
    });
    for failure in failures.collect::<Vec<_>>() {
        failure.await.expect("no panic");
    }
    assert!(
        locked(vec![counter(crowd, 64, long)]).await.is_some(),
        "64 concurrent failures count as 64"
    );
    assert_eq!(
        locked(vec![counter(crowd, 65, long)]).await,
        None,
        "and not as more"
    );
}

/// [`ReplayStore`]'s guarantees, straight on the store, in real time (a
/// store on its server's clock cannot be moved, so every `now` is
/// [`SystemTime::now`]): a one-time value's first use answers `true` and
/// its replay `false`; of 32 concurrent first uses of one value exactly
/// one wins; a value is remembered until its `until` and forgotten after;
/// a DPoP slot keeps its first nonce, 16 concurrent askers all get the
/// same one, and it gives way to a new one once its `until` passed. Keys
/// and slots are random per run. Takes about a second and a half.
///
/// # Panics
///
/// On the first broken guarantee, saying which.
pub async fn replay_store_contract<S: ReplayStore>(store: S) {
    let store = Arc::new(store);
    let long = Duration::from_secs(600);
    let short = Duration::from_millis(700);
    let first_use = |key: CodeKey, lasts: Duration| {
        let store = Arc::clone(&store);
        async move {
            let now = SystemTime::now();
            store
                .first_use(&key, now + lasts, now)
                .await
                .expect("the replay store answers")
        }
    };
    let nonce = |slot: u64, candidate: String, lasts: Duration| {
        let store = Arc::clone(&store);
        async move {
            let now = SystemTime::now();
            store
                .nonce(slot, &candidate, now + lasts, now)
                .await
                .expect("the replay store answers")
        }
    };

    // Single use.
    let (key, other) = (fresh_key(), fresh_key());
    assert!(first_use(key, long).await, "a first use answers true");
    assert!(!first_use(key, long).await, "a second use is a replay");
    assert!(!first_use(key, long).await, "and so is a third");
    assert!(first_use(other, long).await, "keys are remembered apart");

    // Of concurrent first uses, exactly one wins.
    let crowd = fresh_key();
    let uses = (0..32)
        .map(|_| tokio::spawn(first_use(crowd, long)))
        .collect::<Vec<_>>();
    let mut firsts = 0;
    for used in uses {
        firsts += usize::from(used.await.expect("no panic"));
    }
    assert_eq!(firsts, 1, "of 32 concurrent first uses, exactly one wins");

    // Nonces: one per slot, the first candidate's.
    let (slot, another) = (fresh_slot(), fresh_slot());
    assert_eq!(
        nonce(slot, "a".into(), long).await,
        "a",
        "a fresh slot takes the candidate"
    );
    assert_eq!(
        nonce(slot, "b".into(), long).await,
        "a",
        "a slot keeps its nonce"
    );
    assert_eq!(
        nonce(another, "c".into(), long).await,
        "c",
        "slots are kept apart"
    );
    let crowd = fresh_slot();
    let askers = (0..16)
        .map(|i| tokio::spawn(nonce(crowd, format!("n{i}"), long)))
        .collect::<Vec<_>>();
    let mut answers = Vec::new();
    for asker in askers {
        answers.push(asker.await.expect("no panic"));
    }
    assert!(
        answers.iter().all(|answer| *answer == answers[0]),
        "16 concurrent askers of one slot get one nonce: {answers:?}"
    );
    assert!(
        (0..16).any(|i| answers[0] == format!("n{i}")),
        "and it is one of their candidates: {}",
        answers[0]
    );

    // Expiry, in real time: a value and a nonce stored for 700 ms.
    let brief = fresh_key();
    let brief_slot = fresh_slot();
    assert!(first_use(brief, short).await, "a first use answers true");
    assert_eq!(nonce(brief_slot, "x".into(), short).await, "x");
    assert!(
        !first_use(brief, long).await,
        "a value is remembered until its `until`"
    );
    assert_eq!(
        nonce(brief_slot, "y".into(), short).await,
        "x",
        "a nonce is kept until its `until`"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        first_use(brief, long).await,
        "a value whose `until` passed is forgotten: its next use is a first use"
    );
    assert!(
        !first_use(brief, long).await,
        "and that use is remembered again"
    );
    assert_eq!(
        nonce(brief_slot, "y".into(), long).await,
        "y",
        "a nonce whose `until` passed gives way to a new candidate"
    );
    assert_eq!(
        nonce(brief_slot, "z".into(), long).await,
        "y",
        "which the slot then keeps"
    );
    assert!(
        !first_use(key, long).await,
        "a live value is still remembered after the others expired"
    );
}

/// A random DPoP slot: never used before, in this run or another.
fn fresh_slot() -> u64 {
    let key = fresh_key();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&key.as_bytes()[..8]);
    u64::from_le_bytes(bytes)
}
