//! Brute-force defences that no stranger can aim: failed token requests and
//! failed user-code look-ups are counted per peer address (and per client
//! id within a peer), so that one party's failures never lock another out.
//! Past a threshold within the window, the gate refuses at once, `429` with
//! `Retry-After`, without asking any other store.
//!
//! Where the counters live is a [`LockoutStore`]: this process's memory by
//! default, a shared store (Redis, PostgreSQL) when several processes must
//! enforce one threshold. Where the peer address comes from is a
//! [`PeerSource`](crate::peer::PeerSource).

use std::{
    fmt,
    future::Future,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use crate::{
    peer::bucket,
    store::{BoxFuture, Counter, CounterKey, LockoutStore, MemoryCounters, StoreError},
};

/// The default bound on the keys the in-process counters track at once.
pub const DEFAULT_LOCKOUT_CAPACITY: usize = crate::store::DEFAULT_COUNTERS_CAPACITY;
/// The default: 10 failures per client id per peer per window.
pub const DEFAULT_LOCKOUT_FAILURES: u32 = 10;
/// The default: 100 failures per peer per window, whatever the client ids.
pub const DEFAULT_PEER_FAILURES: u32 = 100;
/// The default window: one minute.
pub const DEFAULT_LOCKOUT_WINDOW: Duration = Duration::from_secs(60);
/// GitHub's limit on failed user codes: 50 an hour.
pub const DEFAULT_USER_CODE_FAILURES: u32 = 50;
/// The user-code limits' default window: one hour.
pub const DEFAULT_USER_CODE_WINDOW: Duration = Duration::from_secs(3600);

/// The brute-force defence at the token endpoint, for
/// [`Builder::lockout`](crate::Builder::lockout).
///
/// What counts as a failure: failed client authentication
/// (`invalid_client`) and guesses at a grant: an unknown code, refresh
/// token or device code, a code or refresh token of another client, a
/// wrong verifier or redirect URI. A code or refresh token that was valid
/// once (used, expired, rotated) is not a guess: its holder knew it.
///
/// Under which keys, within one `window` opened by the first failure:
///
/// - **per peer and client id**: `failures` failures from one address that
///   named one client id lock that pair out;
/// - **per peer**: [`per_peer`](Self::per_peer) failures from one address,
///   whatever the ids, lock the address out;
/// - **per client id, from everywhere** (off unless
///   [`client_ceiling`](Self::client_ceiling) is set): a ceiling for
///   deployments whose secrets are weak enough to guess.
///
/// Failures from one address therefore never refuse a request from
/// another address, however many there are: an attacker can lock out only
/// themself. What they can still do is spread guesses over many addresses;
/// with secrets and codes of 128 bits or more, that buys nothing. IPv6
/// peers are counted by their /64, which one subscriber usually holds
/// whole.
///
/// A request whose peer the [`PeerSource`](crate::peer::PeerSource)
/// cannot find is counted under the ceiling alone (when set), and the gate
/// logs a warning the first time: set the peer source.
///
/// ```
/// use std::time::Duration;
/// use tokengate::lockout::Lockout;
///
/// let lockout = Lockout::new(5, Duration::from_secs(300)).per_peer(50);
/// # let _ = lockout;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lockout {
    failures: u32,
    peer_failures: u32,
    client_ceiling: Option<u32>,
    window: Duration,
    capacity: usize,
}

impl Lockout {
    /// `failures` failures from one peer for one client id within
    /// `window` lock that pair out until the window ends.
    pub fn new(failures: u32, window: Duration) -> Self {
        Self {
            failures,
            peer_failures: DEFAULT_PEER_FAILURES.max(failures),
            client_ceiling: None,
            window,
            capacity: DEFAULT_LOCKOUT_CAPACITY,
        }
    }

    /// Failures from one peer, whatever the client ids, that lock the peer
    /// out (default [`DEFAULT_PEER_FAILURES`]).
    #[must_use]
    pub fn per_peer(mut self, failures: u32) -> Self {
        self.peer_failures = failures;
        self
    }

    /// Also locks a client id out for everyone once `failures` failures
    /// from all peers together named it.
    ///
    /// The trade-off: this lets anyone who knows a client id (ids are
    /// public; they travel in every authorization URL) deny that client
    /// service for a window at a time, with `failures` requests. Set it
    /// only when a client's secret is weak enough that guesses spread over
    /// many addresses could find it, and prefer a strong secret.
    #[must_use]
    pub fn client_ceiling(mut self, failures: u32) -> Self {
        self.client_ceiling = Some(failures);
        self
    }

    /// How many keys the in-process counters track at most (default
    /// [`DEFAULT_LOCKOUT_CAPACITY`]); a shared
    /// [`LockoutStore`] has bounds of its own.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// At least one failure per key, a window of at most ten years (so
    /// window ends stay representable), room for one key.
    pub(crate) fn is_valid(&self) -> bool {
        self.failures > 0
            && self.peer_failures > 0
            && self.client_ceiling != Some(0)
            && is_valid_window(self.window)
            && self.capacity > 0
    }

    pub(crate) fn capacity_of(&self) -> usize {
        self.capacity
    }

    /// The counters a token request touches.
    pub(crate) fn tally<'a>(&self, peer: Option<IpAddr>, client_id: Option<&'a str>) -> Tally<'a> {
        let mut tally = Tally::new();
        let window = self.window;
        if let Some(ip) = peer.map(bucket) {
            tally.push(CounterKey::Peer(ip), self.peer_failures, window);
            if let Some(id) = client_id {
                tally.push(CounterKey::PeerClient(ip, id), self.failures, window);
            }
        }
        if let (Some(limit), Some(id)) = (self.client_ceiling, client_id) {
            tally.push(CounterKey::Client(id), limit, window);
        }
        tally
    }
}

impl Default for Lockout {
    fn default() -> Self {
        Self::new(DEFAULT_LOCKOUT_FAILURES, DEFAULT_LOCKOUT_WINDOW)
    }
}

fn is_valid_window(window: Duration) -> bool {
    const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
    !window.is_zero() && window <= TEN_YEARS
}

/// Limits on failed user-code look-ups at the device flow's verification
/// side ([`Devices`](crate::device::Devices)), for
/// [`Builder::user_code_limits`](crate::Builder::user_code_limits).
///
/// RFC 8628 §5.1 asks the verification endpoint to rate-limit: a user code
/// holds about 34 bits. By default one peer may fail
/// [`DEFAULT_USER_CODE_FAILURES`] look-ups an hour, GitHub's figure; past
/// that, look-ups from that peer are refused until the window ends.
///
/// [`total`](Self::total) adds a ceiling over every peer together. It
/// bounds guessing spread over many addresses, at a price: anyone can then
/// close the verification page for everyone with that many bad codes. It
/// is off by default for that reason; set it high, well above honest
/// traffic, if you set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserCodeLimits {
    per_peer: u32,
    total: Option<u32>,
    window: Duration,
}

impl UserCodeLimits {
    /// `per_peer` failed look-ups from one peer within `window` refuse that
    /// peer's look-ups until the window ends.
    pub fn new(per_peer: u32, window: Duration) -> Self {
        Self {
            per_peer,
            total: None,
            window,
        }
    }

    /// Also refuses every look-up once `failures` failed look-ups from all
    /// peers together fell within one window.
    #[must_use]
    pub fn total(mut self, failures: u32) -> Self {
        self.total = Some(failures);
        self
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.per_peer > 0 && self.total != Some(0) && is_valid_window(self.window)
    }

    /// The counters a look-up touches.
    pub(crate) fn tally(&self, peer: Option<IpAddr>) -> Tally<'static> {
        let mut tally = Tally::new();
        if let Some(ip) = peer.map(bucket) {
            tally.push(CounterKey::UserCodePeer(ip), self.per_peer, self.window);
        }
        if let Some(limit) = self.total {
            tally.push(CounterKey::UserCodes, limit, self.window);
        }
        tally
    }
}

impl Default for UserCodeLimits {
    fn default() -> Self {
        Self::new(DEFAULT_USER_CODE_FAILURES, DEFAULT_USER_CODE_WINDOW)
    }
}

/// The few counters one check touches, on the stack.
#[derive(Clone, Copy)]
pub(crate) struct Tally<'a> {
    counters: [Counter<'a>; 3],
    len: usize,
}

impl<'a> Tally<'a> {
    fn new() -> Self {
        let unused = Counter {
            key: CounterKey::UserCodes,
            limit: 0,
            window: Duration::ZERO,
        };
        Self {
            counters: [unused; 3],
            len: 0,
        }
    }

    fn push(&mut self, key: CounterKey<'a>, limit: u32, window: Duration) {
        self.counters[self.len] = Counter { key, limit, window };
        self.len += 1;
    }

    pub(crate) fn as_slice(&self) -> &[Counter<'a>] {
        &self.counters[..self.len]
    }
}

/// Says once per process that a defence could not find the peer.
pub(crate) fn warn_no_peer() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "the lockout cannot find the peer address of a request, so it counts no failures per peer: \
             give the server's connection address to the gate (a SocketAddr or axum's ConnectInfo in \
             the request extensions) or set Builder::peer"
        );
    }
}

/// Where a running gate keeps its counters.
pub(crate) enum Counting {
    /// In this process: checked at once, without a future of its own.
    Memory(MemoryCounters),
    /// In a store shared with other processes.
    Shared(Arc<dyn DynLockoutStore>),
}

impl Counting {
    /// How long the tally's longest-locked counter stays locked, if any is.
    pub(crate) fn locked<'a>(
        &'a self,
        tally: Tally<'a>,
        now: SystemTime,
    ) -> Pending<'a, Result<Option<Duration>, StoreError>> {
        match self {
            Self::Memory(counters) => {
                Pending::Now(Some(Ok(counters.locked_now(tally.as_slice(), now))))
            }
            Self::Shared(store) => Pending::Later(Box::pin(async move {
                store.locked(tally.as_slice(), now).await
            })),
        }
    }

    /// Counts a failure on each of the tally's counters.
    pub(crate) fn fail<'a>(
        &'a self,
        tally: Tally<'a>,
        now: SystemTime,
    ) -> Pending<'a, Result<(), StoreError>> {
        match self {
            Self::Memory(counters) => {
                counters.fail_now(tally.as_slice(), now);
                Pending::Now(Some(Ok(())))
            }
            Self::Shared(store) => {
                Pending::Later(Box::pin(
                    async move { store.fail(tally.as_slice(), now).await },
                ))
            }
        }
    }
}

impl fmt::Debug for Counting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(counters) => counters.fmt(f),
            Self::Shared(_) => f.write_str("shared LockoutStore"),
        }
    }
}

/// A counter call's answer: at once for the in-process counters (no
/// allocation, a few bytes in the caller's future), boxed for a store.
pub(crate) enum Pending<'a, T> {
    Now(Option<T>),
    Later(BoxFuture<'a, T>),
}

impl<T: Unpin> Future for Pending<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            Self::Now(value) => match value.take() {
                Some(value) => Poll::Ready(value),
                None => Poll::Pending,
            },
            Self::Later(future) => future.as_mut().poll(cx),
        }
    }
}

/// [`LockoutStore`] with the store type erased.
pub(crate) trait DynLockoutStore: Send + Sync {
    fn locked<'a>(
        &'a self,
        counters: &'a [Counter<'a>],
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<Duration>, StoreError>>;

    fn fail<'a>(
        &'a self,
        counters: &'a [Counter<'a>],
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

impl<S: LockoutStore> DynLockoutStore for S {
    fn locked<'a>(
        &'a self,
        counters: &'a [Counter<'a>],
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Option<Duration>, StoreError>> {
        Box::pin(LockoutStore::locked(self, counters, now))
    }

    fn fail<'a>(
        &'a self,
        counters: &'a [Counter<'a>],
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(LockoutStore::fail(self, counters, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn a_token_request_counts_per_peer_and_per_client_within_the_peer() {
        let lockout = Lockout::new(3, Duration::from_secs(60)).per_peer(20);
        let tally = lockout.tally(ip("192.0.2.1"), Some("app"));
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            tally.as_slice(),
            [
                Counter {
                    key: CounterKey::Peer(peer),
                    limit: 20,
                    window: Duration::from_secs(60)
                },
                Counter {
                    key: CounterKey::PeerClient(peer, "app"),
                    limit: 3,
                    window: Duration::from_secs(60)
                },
            ]
        );
        // No client id: the peer alone. No peer: nothing, without a ceiling.
        assert_eq!(lockout.tally(ip("192.0.2.1"), None).as_slice().len(), 1);
        assert!(lockout.tally(None, Some("app")).as_slice().is_empty());
        // The ceiling counts the id from everywhere, peer or not.
        let ceiling = lockout.clone().client_ceiling(7);
        let tally = ceiling.tally(None, Some("app"));
        assert_eq!(
            tally.as_slice(),
            [Counter {
                key: CounterKey::Client("app"),
                limit: 7,
                window: Duration::from_secs(60)
            }]
        );
        assert_eq!(
            ceiling.tally(ip("192.0.2.1"), Some("app")).as_slice().len(),
            3
        );
        // IPv6 peers by their /64.
        let v6 = lockout.tally(ip("2001:db8::1"), None);
        assert_eq!(
            v6.as_slice()[0].key,
            CounterKey::Peer("2001:db8::".parse().unwrap())
        );
    }

    #[test]
    fn user_code_look_ups_count_per_peer_and_optionally_in_total() {
        let limits = UserCodeLimits::default();
        assert_eq!(
            limits.tally(ip("192.0.2.1")).as_slice(),
            [Counter {
                key: CounterKey::UserCodePeer("192.0.2.1".parse().unwrap()),
                limit: 50,
                window: Duration::from_secs(3600)
            }]
        );
        assert!(limits.tally(None).as_slice().is_empty());
        let total = limits.total(500);
        assert_eq!(total.tally(None).as_slice()[0].key, CounterKey::UserCodes);
        assert_eq!(total.tally(ip("192.0.2.1")).as_slice().len(), 2);
    }

    #[test]
    fn validity() {
        assert!(Lockout::default().is_valid());
        assert!(!Lockout::new(0, Duration::from_secs(60)).is_valid());
        assert!(!Lockout::default().per_peer(0).is_valid());
        assert!(!Lockout::default().client_ceiling(0).is_valid());
        assert!(Lockout::default().client_ceiling(1).is_valid());
        assert!(!Lockout::new(1, Duration::ZERO).is_valid());
        assert!(!Lockout::new(1, Duration::MAX).is_valid());
        assert!(!Lockout::default().capacity(0).is_valid());
        assert!(UserCodeLimits::default().is_valid());
        assert!(!UserCodeLimits::new(0, Duration::from_secs(1)).is_valid());
        assert!(!UserCodeLimits::default().total(0).is_valid());
        assert!(!UserCodeLimits::new(1, Duration::ZERO).is_valid());
        // The per-peer limit never starts below the per-pair one.
        assert_eq!(Lockout::new(500, Duration::from_secs(1)).peer_failures, 500);
    }
}
