//! Where clients, codes, refresh tokens and device authorizations live: the
//! store contract, and the embedded [`MemoryStore`].
//!
//! Four traits, one per kind of value, with the same verbs on each:
//! `issue` a new value, `find` one without using it, `claim` it while the
//! inner service mints a token, then `confirm` (use it up) or `release`
//! (hand it back). A layer needs a [`ClientStore`] and a [`CodeStore`]; a
//! [`RefreshStore`] enables the refresh grant and a [`DeviceStore`] the
//! device flow. The trait docs say everything a backend must guarantee; the
//! conformance suite (`tokengate::testing::conformance`, feature `testing`)
//! checks it in one call.
//!
//! A store answers `Ok(None)` (or [`Redemption::Unknown`], [`Lookup::Unknown`])
//! for something absent and keeps [`StoreError`] for a store that could not
//! answer; the gate turns every store error into a `500 server_error` and
//! never forwards the request (fail closed).
//!
//! Values are keyed by [`CodeKey`], the SHA-256 of the code or token: a store
//! never sees a live secret, and a dump of it reveals none.
//!
//! # Plugging in your own store
//!
//! ```
//! use std::{collections::HashMap, sync::Arc};
//! use tokengate::{Client, store::{ClientStore, StoreError}};
//!
//! /// Clients fixed at start-up.
//! struct StaticClients(HashMap<String, Arc<Client>>);
//!
//! impl ClientStore for StaticClients {
//!     async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
//!         Ok(self.0.get(client_id).cloned())
//!     }
//! }
//! ```

mod claim;
mod clients_file;
mod counters;
mod expiry;
mod memory;
mod replays;

use std::{
    error::Error as StdError,
    fmt,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use sha2::{Digest, Sha256};

/// A boxed future, where a trait object must return one.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub(crate) use self::replays::{DynReplayStore, Replays};
pub use self::{
    claim::Claim,
    clients_file::{ClientsFileError, parse_clients},
    counters::{DEFAULT_COUNTERS_CAPACITY, MemoryCounters},
    memory::MemoryStore,
    replays::{DEFAULT_REPLAYS_CAPACITY, MemoryReplays},
};
pub use crate::secret::CodeKey;

use crate::{
    client::Client,
    record::{
        code::CodeRecord,
        device::{DeviceDecision, DeviceRecord, PollOutcome},
        refresh::RefreshRecord,
    },
};

/// Looks up registered clients.
pub trait ClientStore: Send + Sync + 'static {
    /// The client registered as `client_id`, or `Ok(None)`.
    fn client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<Arc<Client>>, StoreError>> + Send;
}

/// Keeps authorization codes, each under the digest of its value.
///
/// A code is redeemed in two steps (two-phase redemption): [`claim`] takes
/// it for one request while the inner service mints the token, then
/// [`confirm`] uses it up (the token went out) or [`release`] hands it back
/// (the inner service failed; the client's retry works). What every backend
/// must guarantee:
///
/// - **Single use.** Of any number of concurrent [`claim`]s of one code, at
///   most one answers [`Redemption::Claimed`] while its claim is live, and
///   once a claim is confirmed no later call ever answers `Claimed` again.
/// - **Claims lapse.** A claim whose [`Claim::ttl`] ran out counts as none:
///   the next `claim` may take the code over (a process that died holding
///   it does not lose the code for good).
/// - **Stale holders change nothing.** `confirm` and `release` act only if
///   the given claim is still the code's claim (same [`Claim::id`]), even
///   past its ttl when nobody took it over.
/// - **Replays are told.** After a confirmed use, `claim` answers
///   [`Redemption::Used`] with the record for as long as the store
///   remembers the code (at least until it expires), then
///   [`Redemption::Unknown`].
/// - **Expiry.** A code past its record's `expires_at` is `Unknown`.
///
/// [`claim`]: CodeStore::claim
/// [`confirm`]: CodeStore::confirm
/// [`release`]: CodeStore::release
pub trait CodeStore: Send + Sync + 'static {
    /// Stores a freshly minted code. The record's `expires_at` says how long
    /// it must stay redeemable. Fails if the key is already in use: reusing
    /// a key would revive a used code.
    fn issue(
        &self,
        key: CodeKey,
        record: CodeRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims the code for `claim`, in one atomic step: [`Redemption::Claimed`]
    /// when this call took it, [`Redemption::Busy`] while another live claim
    /// holds it, [`Redemption::Used`] once it is used, and
    /// [`Redemption::Unknown`] for no such live code. The record comes in an
    /// `Arc`, so a store that keeps it in memory hands it out without a copy.
    fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> impl Future<Output = Result<Redemption<Arc<CodeRecord>>, StoreError>> + Send;

    /// Uses the code up if `claim` is still its claim. Answers `false` when
    /// the claim was lost (another request took the code over after it
    /// lapsed): the token minted meanwhile must not be handed out.
    fn confirm(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Hands the code back, unused, if `claim` is still its claim; otherwise
    /// does nothing.
    fn release(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What [`CodeStore::claim`] or [`RefreshStore::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Redemption<T> {
    /// This call claimed it.
    Claimed(T),
    /// It had already been used: a replay (RFC 6749 §4.1.2, RFC 9700
    /// §4.14.2).
    Used(T),
    /// Another request holds a live claim on it; nothing changed.
    Busy,
    /// No such live value (never issued, expired, revoked, or forgotten).
    Unknown,
}

impl<T> Redemption<T> {
    /// The same outcome with the record transformed (`Arc::new`, say).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Redemption<U> {
        match self {
            Self::Claimed(record) => Redemption::Claimed(f(record)),
            Self::Used(record) => Redemption::Used(f(record)),
            Self::Busy => Redemption::Busy,
            Self::Unknown => Redemption::Unknown,
        }
    }
}

/// What [`RefreshStore::find`] found, without using anything up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lookup<T> {
    /// Live and not used yet.
    Unused(T),
    /// Already used: presenting it again is a replay.
    Used(T),
    /// No such live value (never issued, expired, revoked, or forgotten).
    Unknown,
}

impl<T> Lookup<T> {
    /// What a read found, from the value's use counter (0: unused).
    pub fn from_uses(record: T, uses: i64) -> Self {
        if uses == 0 {
            Self::Unused(record)
        } else {
            Self::Used(record)
        }
    }
}

/// Keeps refresh tokens, each under the digest of its value, with rotation
/// and family revocation (RFC 9700 §4.14.2).
///
/// A token is rotated with the same two steps as a code ([`claim`], then
/// [`confirm`] or [`release`]), with every guarantee of [`CodeStore`], plus:
///
/// - **Read before use.** [`find`] reads a token without using it, so every
///   check can run before it is claimed.
/// - **Revocation wins.** Once [`revoke_family`] returned, every token of
///   that family is [`Lookup::Unknown`] / [`Redemption::Unknown`], a
///   `confirm` of a claim on one answers `false`, and `issue` into that
///   family fails, so a successor minted in a race with a replay never
///   becomes valid. The revocation lasts as long as any member would have,
///   and an hour at least, also for a family without members yet: a
///   replayed authorization code revokes its family (derived from the code)
///   before the application may have issued into it.
///
/// A layer without a refresh store answers `unsupported_grant_type` to the
/// refresh grant.
///
/// [`find`]: RefreshStore::find
/// [`claim`]: RefreshStore::claim
/// [`confirm`]: RefreshStore::confirm
/// [`release`]: RefreshStore::release
/// [`revoke_family`]: RefreshStore::revoke_family
pub trait RefreshStore: Send + Sync + 'static {
    /// Stores a new refresh token. Fails if its family was revoked or the
    /// key is already in use.
    fn issue(
        &self,
        key: CodeKey,
        record: RefreshRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Reads a token without using it up.
    fn find(
        &self,
        key: &CodeKey,
    ) -> impl Future<Output = Result<Lookup<RefreshRecord>, StoreError>> + Send;

    /// Claims the token for `claim`, with the rules of [`CodeStore::claim`].
    fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> impl Future<Output = Result<Redemption<RefreshRecord>, StoreError>> + Send;

    /// Rotates the token away if `claim` is still its claim and its family
    /// was not revoked, as [`CodeStore::confirm`] does for codes.
    fn confirm(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Hands the token back, unused, if `claim` is still its claim.
    fn release(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Revokes every token of `family`, used or not.
    fn revoke_family(&self, family: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Grants one more use of a token already rotated away, or being
    /// rotated (claimed by a request still in flight): the reuse window of
    /// [`Builder::refresh_reuse`](crate::Builder::refresh_reuse), for
    /// clients whose refresh answer was lost or that refresh from two
    /// places at once. In one atomic step:
    ///
    /// - [`Reuse::Granted`] when the token was rotated less than
    ///   `window.within` ago (by the store's clock, from the `confirm` that
    ///   used it up) or is claimed by a live claim, its family is not
    ///   revoked, and it was granted fewer than `window.limit` reuses
    ///   before; the reuse is counted.
    /// - [`Reuse::Refused`] when it was used and its reuses are spent or
    ///   the window has passed: a replay.
    /// - [`Reuse::Held`] when it is claimed by a live claim (not used yet)
    ///   and its reuses are spent: nothing changes. Not a replay: the
    ///   rotation in flight may still fail and hand the token back, and a
    ///   client's burst of retries must not end its own session.
    /// - [`Reuse::NotRotated`] when it is neither used nor claimed (a claim
    ///   was released or lapsed meanwhile): nothing changes.
    /// - [`Reuse::Unknown`] for no such live token.
    ///
    /// Of any number of concurrent calls, from any number of processes, at
    /// most `window.limit` answer `Granted` for one token, ever.
    fn reuse(
        &self,
        key: &CodeKey,
        window: ReuseWindow,
    ) -> impl Future<Output = Result<Reuse<RefreshRecord>, StoreError>> + Send;
}

/// How long, and how many times, a rotated refresh token may be presented
/// again without being taken for a replay (see
/// [`Builder::refresh_reuse`](crate::Builder::refresh_reuse)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReuseWindow {
    /// How long after its rotation a token may be reused.
    pub within: Duration,
    /// How many reuses one token is granted at most.
    pub limit: u32,
}

/// What [`RefreshStore::reuse`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reuse<T> {
    /// Within the window and the limit: this call was granted a reuse, and
    /// it was counted.
    Granted(T),
    /// Used, and past the limit or outside the window: a replay.
    Refused(T),
    /// Being rotated by a request in flight, and past the limit: refused
    /// for now, and nothing changes.
    Held,
    /// Neither used nor claimed: not a rotated token (any more).
    NotRotated,
    /// No such live token (never issued, expired, revoked, or forgotten).
    Unknown,
}

/// Keeps device authorizations (RFC 8628), by the digest of the device code
/// and by user code.
///
/// The polling rules are [`DeviceRecord::poll`] and [`DeviceRecord::decide`]:
/// a backend applies them to the stored record under its own atomicity (a
/// lock, a transaction, a compare-and-set) and saves the result, so every
/// store follows one definition. What every backend must guarantee:
///
/// - **One change at a time.** A poll's interval bookkeeping (`last_poll`,
///   `slow_down`) and a user's decision never race with another poll or
///   decision of the same code: none of them is lost to another's write
///   (a poll that read the pending record must not write it back over the
///   user's approval).
/// - **Single redemption.** A poll that answers [`PollOutcome::Approved`]
///   removes the authorization (and frees its user code) in the same atomic
///   step: of concurrent polls, at most one is approved.
/// - **Expired codes keep answering.** An expired authorization answers
///   [`PollOutcome::Expired`] for at least
///   [`DEVICE_TOMBSTONE`](crate::device::DEVICE_TOMBSTONE) after expiry.
///
/// A layer without a device store neither serves the device authorization
/// endpoint nor accepts the device grant.
pub trait DeviceStore: Send + Sync + 'static {
    /// Stores a device authorization as `record` says (status, interval and
    /// last poll included): a new one, or an approved one put back after
    /// its grant failed in the inner service. Answers `Ok(false)` when the
    /// user code (of a live authorization) or the key is already in use, so
    /// the caller can draw another.
    fn issue(
        &self,
        key: CodeKey,
        record: DeviceRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// One token poll by `client_id` at `now`, applied atomically with
    /// [`DeviceRecord::poll`]; [`PollOutcome::Unknown`] for no such code.
    /// [`PollOutcome::Approved`] carries the record as that poll left it:
    /// the gate puts exactly that back with [`issue`](Self::issue) should
    /// the grant fail in the inner service.
    fn poll(
        &self,
        key: &CodeKey,
        client_id: &str,
        now: SystemTime,
    ) -> impl Future<Output = Result<PollOutcome, StoreError>> + Send;

    /// The live, undecided authorization with this (normalized) user code.
    fn find(
        &self,
        user_code: &str,
        now: SystemTime,
    ) -> impl Future<Output = Result<Option<DeviceRecord>, StoreError>> + Send;

    /// Records the user's decision with [`DeviceRecord::decide`]. Answers
    /// whether a live, undecided authorization took it.
    fn decide(
        &self,
        user_code: &str,
        decision: DeviceDecision,
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// What one failure counter counts against. Peers are kept by their
/// address (an IPv6 peer by its /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CounterKey<'a> {
    /// Failed token requests from one peer, whatever client id they named.
    Peer(IpAddr),
    /// Failed token requests from one peer that named one client id.
    PeerClient(IpAddr, &'a str),
    /// Failed token requests that named one client id, from every peer
    /// (the opt-in ceiling of [`Lockout::client_ceiling`]).
    ///
    /// [`Lockout::client_ceiling`]: crate::lockout::Lockout::client_ceiling
    Client(&'a str),
    /// Failed user-code look-ups from one peer.
    UserCodePeer(IpAddr),
    /// Failed user-code look-ups from every peer.
    UserCodes,
}

impl CounterKey<'_> {
    /// A stable name for the key, the same in every process: the kind, the
    /// peer address and the SHA-256 of the client id (an id is the
    /// requester's to choose, so it never reaches a store's key as typed).
    pub fn name(&self) -> String {
        let id = |id: &str| hex::encode(&Sha256::digest(id.as_bytes())[..16]);
        match self {
            Self::Peer(ip) => format!("peer:{ip}"),
            Self::PeerClient(ip, client_id) => format!("peer-client:{ip}:{}", id(client_id)),
            Self::Client(client_id) => format!("client:{}", id(client_id)),
            Self::UserCodePeer(ip) => format!("user-code-peer:{ip}"),
            Self::UserCodes => "user-codes".to_owned(),
        }
    }
}

/// One counter a check or a failure touches: its key, how many failures
/// lock it, and how long its window lasts from its first failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter<'a> {
    /// What it counts against.
    pub key: CounterKey<'a>,
    /// Failures within the window that lock the key out.
    pub limit: u32,
    /// How long a window lasts, from the failure that opened it.
    pub window: Duration,
}

/// Keeps the brute-force defences' failure counters, so that every gate
/// process that shares the store enforces one threshold.
///
/// The default is in-process ([`MemoryCounters`]); a shared store (Redis,
/// PostgreSQL) makes N processes count as one. What every backend must
/// guarantee:
///
/// - **Fixed windows.** A counter's window opens with its first failure and
///   lasts [`Counter::window`]; when it ends, the counter is gone: no check
///   sees it, the next failure starts from nothing, and the store forgets
///   it by itself (an expiry, a sweep of its own), never asked to by the
///   gate.
/// - **Atomic counting.** Concurrent [`fail`](Self::fail)s on one key are
///   all counted.
/// - **One round trip.** Each call touches every counter it is given at
///   once, not one call per counter.
pub trait LockoutStore: Send + Sync + 'static {
    /// How long until the longest-locked of `counters` opens again: among
    /// those with at least [`Counter::limit`] failures in their live
    /// window, the longest time left. `Ok(None)` when none is locked.
    fn locked(
        &self,
        counters: &[Counter<'_>],
        now: SystemTime,
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + Send;

    /// Counts one failure on each of `counters`, opening a window for a
    /// counter that has none.
    fn fail(
        &self,
        counters: &[Counter<'_>],
        now: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where signed requests' one-time values live: the `jti` of client
/// assertions and DPoP proofs (single use until they expire), and the
/// server's DPoP nonces. Shared by every process that checks proofs, so
/// that a replay sent to another process is caught and a nonce issued by
/// one process is accepted by the others.
///
/// Set it with [`Builder::replay_store`](crate::Builder::replay_store); the
/// default is [`MemoryReplays`], in this process. Checked in one call by
/// `tokengate::testing::conformance::replay_store_contract`.
pub trait ReplayStore: Send + Sync + 'static {
    /// Records the use of the one-time value whose key is `key` (the digest
    /// of its kind, issuer and `jti`), remembered until `until` (`now` is
    /// the gate's clock, for a store that measures time-to-live). Answers
    /// `true` for its first use and `false` when it was recorded before and
    /// has not expired: a replay.
    ///
    /// Atomic: of any number of concurrent calls with one key, from any
    /// number of processes, exactly one answers `true`. A value may be
    /// forgotten once `until` has passed, never before; a store that
    /// cannot record it fails (the gate answers `500`), never answers
    /// `true` without recording.
    fn first_use(
        &self,
        key: &CodeKey,
        until: SystemTime,
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The DPoP nonce of time slot `slot`: the one stored for it, or, when
    /// there is none, `candidate`, stored until `until`.
    ///
    /// Atomic: every caller asking for one slot, in any process, gets the
    /// same nonce while it is stored.
    fn nonce(
        &self,
        slot: u64,
        candidate: &str,
        until: SystemTime,
        now: SystemTime,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// A store could not answer. The gate answers `500 server_error`.
///
/// The message must never contain a secret or a code: it is logged.
#[derive(Debug)]
pub struct StoreError {
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl StoreError {
    /// An error described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by `source` (a connection error, a timeout, ...).
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}
