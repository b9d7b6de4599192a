//! Brute-force defence: failed client authentications and failed
//! redemptions are counted per client id (and per peer address, when the
//! application says how to find it); past the threshold within the window,
//! the gate refuses at once, `429` with `Retry-After`, without asking a
//! store.
//!
//! Why not a rate-limiting crate: `governor` and its kin count requests
//! and consume a cell on every check. The gate must ask "is this id locked
//! out?" without counting the request, count only the failures, and hold
//! its memory to a fixed bound under a flood of made-up ids; the counter
//! below does exactly that, in one small map.

use std::{
    collections::HashMap,
    fmt,
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use http::request::Parts;

/// Finds the peer address of a request (from `ConnectInfo`, a trusted
/// `X-Forwarded-For`, ...).
pub(crate) type PeerFn = Arc<dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync>;

/// The default: 10 failures per client id per minute.
pub const DEFAULT_LOCKOUT_FAILURES: u32 = 10;
/// The default window: one minute.
pub const DEFAULT_LOCKOUT_WINDOW: Duration = Duration::from_secs(60);
/// The default bound on the ids (and addresses) tracked at once.
pub const DEFAULT_LOCKOUT_CAPACITY: usize = 65_536;

/// The brute-force defence's settings, for
/// [`Builder::lockout`](crate::Builder::lockout).
///
/// Failed client authentication (`invalid_client`) and failed redemptions
/// (an unknown, used or foreign code, refresh token or device code, a wrong
/// verifier or redirect URI) count against the client id the request
/// claimed and, with [`peer`](Self::peer), against its address. Once
/// `failures` have been counted within `window`, requests from that id (or
/// address) are refused until the window ends: `429 Too Many Requests`,
/// `temporarily_unavailable`, `Retry-After` in seconds, in both dialects.
///
/// Windows are fixed (they start at the first failure), so at most
/// `2 × failures - 1` attempts fit in any `window`-long span. At most
/// `capacity` ids and as many addresses are tracked; when the table is full,
/// ids with the fewest failures are forgotten first, so a flood of made-up
/// ids costs an attacker many requests before it frees a real one.
///
/// ```
/// use std::{net::IpAddr, time::Duration};
/// use tokengate::lockout::Lockout;
///
/// let lockout = Lockout::new(5, Duration::from_secs(300)).peer(|parts| {
///     parts.extensions.get::<std::net::SocketAddr>().map(|addr| addr.ip())
/// });
/// # let _ = lockout;
/// ```
#[derive(Clone)]
pub struct Lockout {
    failures: u32,
    window: Duration,
    capacity: usize,
    peer: Option<PeerFn>,
}

impl Lockout {
    /// `failures` failures within `window` lock an id out until the window
    /// ends.
    pub fn new(failures: u32, window: Duration) -> Self {
        Self {
            failures,
            window,
            capacity: DEFAULT_LOCKOUT_CAPACITY,
            peer: None,
        }
    }

    /// Also counts failures per peer address, as `peer` finds it.
    #[must_use]
    pub fn peer(mut self, peer: impl Fn(&Parts) -> Option<IpAddr> + Send + Sync + 'static) -> Self {
        self.peer = Some(Arc::new(peer));
        self
    }

    /// How many ids (and addresses) are tracked at most (default
    /// [`DEFAULT_LOCKOUT_CAPACITY`]).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// At least one failure, a window of at most ten years (so window ends
    /// stay representable), room for one id.
    pub(crate) fn is_valid(&self) -> bool {
        const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
        self.failures > 0 && !self.window.is_zero() && self.window <= TEN_YEARS && self.capacity > 0
    }
}

impl Default for Lockout {
    fn default() -> Self {
        Self::new(DEFAULT_LOCKOUT_FAILURES, DEFAULT_LOCKOUT_WINDOW)
    }
}

impl fmt::Debug for Lockout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lockout")
            .field("failures", &self.failures)
            .field("window", &self.window)
            .field("capacity", &self.capacity)
            .field("peer", &self.peer.is_some())
            .finish()
    }
}

/// The counters of a running gate.
pub(crate) struct Lockouts {
    settings: Lockout,
    ids: Counters,
    peers: Counters,
}

impl Lockouts {
    pub(crate) fn new(settings: Lockout) -> Self {
        let capacity = settings.capacity;
        Self {
            settings,
            ids: Counters::new(capacity),
            peers: Counters::new(capacity),
        }
    }

    /// How long the request's client id or address stays locked out, if it
    /// is.
    pub(crate) fn locked(
        &self,
        client_id: Option<&str>,
        parts: &Parts,
        now: SystemTime,
    ) -> Option<Duration> {
        let by_id = client_id.and_then(|id| self.ids.locked(id, &self.settings, now));
        let by_peer = self
            .peer(parts)
            .and_then(|peer| self.peers.locked(&peer, &self.settings, now));
        by_id.max(by_peer)
    }

    /// Counts a failure against the request's client id and address.
    pub(crate) fn fail(&self, client_id: Option<&str>, parts: &Parts, now: SystemTime) {
        if let Some(id) = client_id {
            self.ids.fail(id, &self.settings, now);
        }
        if let Some(peer) = self.peer(parts) {
            self.peers.fail(&peer, &self.settings, now);
        }
    }

    fn peer(&self, parts: &Parts) -> Option<IpAddr> {
        self.settings.peer.as_ref().and_then(|peer| peer(parts))
    }
}

impl fmt::Debug for Lockouts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.settings.fmt(f)
    }
}

/// Failures per key in fixed windows. Keys are kept as keyed 64-bit hashes:
/// an id of any length costs the same few bytes, and nobody can aim
/// collisions at a chosen id without the process's random key.
struct Counters {
    hasher: RandomState,
    capacity: usize,
    windows: Mutex<HashMap<u64, Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    started: SystemTime,
    failures: u32,
}

impl Counters {
    fn new(capacity: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            capacity,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, value: &(impl std::hash::Hash + ?Sized)) -> u64 {
        self.hasher.hash_one(value)
    }

    fn locked(
        &self,
        value: &(impl std::hash::Hash + ?Sized),
        settings: &Lockout,
        now: SystemTime,
    ) -> Option<Duration> {
        let key = self.key(value);
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let window = windows.get(&key)?;
        let ends = window.started + settings.window;
        (window.failures >= settings.failures && now < ends)
            .then(|| ends.duration_since(now).unwrap_or_default())
    }

    fn fail(&self, value: &(impl std::hash::Hash + ?Sized), settings: &Lockout, now: SystemTime) {
        let key = self.key(value);
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if !windows.contains_key(&key) && windows.len() >= self.capacity {
            make_room(&mut windows, settings, now, self.capacity);
        }
        let window = windows.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now >= window.started + settings.window || now < window.started {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Frees at least a quarter of a full table: ended windows first, then the
/// ids with the fewest failures. One pass per failure level (at most the
/// threshold's worth), and run once per quarter of the capacity at most.
fn make_room(
    windows: &mut HashMap<u64, Window>,
    settings: &Lockout,
    now: SystemTime,
    capacity: usize,
) {
    let target = capacity - capacity / 4 - 1;
    windows.retain(|_, window| now < window.started + settings.window);
    let mut fewest = 1;
    while windows.len() > target {
        windows.retain(|_, window| window.failures > fewest);
        fewest += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> Parts {
        http::Request::new(()).into_parts().0
    }

    #[test]
    fn locks_out_at_the_threshold_until_the_window_ends() {
        let lockouts = Lockouts::new(Lockout::new(3, Duration::from_secs(60)));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let parts = parts();
        for _ in 0..2 {
            lockouts.fail(Some("app"), &parts, t0);
        }
        assert_eq!(lockouts.locked(Some("app"), &parts, t0), None);
        lockouts.fail(Some("app"), &parts, t0 + Duration::from_secs(10));
        assert_eq!(
            lockouts.locked(Some("app"), &parts, t0 + Duration::from_secs(15)),
            Some(Duration::from_secs(45))
        );
        assert_eq!(lockouts.locked(Some("other"), &parts, t0), None);
        assert_eq!(lockouts.locked(None, &parts, t0), None);
        assert_eq!(
            lockouts.locked(Some("app"), &parts, t0 + Duration::from_secs(60)),
            None
        );
        // A new window starts from nothing.
        lockouts.fail(Some("app"), &parts, t0 + Duration::from_secs(61));
        assert_eq!(
            lockouts.locked(Some("app"), &parts, t0 + Duration::from_secs(61)),
            None
        );
    }

    #[test]
    fn a_new_window_can_lock_out_again() {
        let lockouts = Lockouts::new(Lockout::new(2, Duration::from_secs(60)));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let parts = parts();
        lockouts.fail(Some("app"), &parts, t0);
        lockouts.fail(Some("app"), &parts, t0);
        assert!(lockouts.locked(Some("app"), &parts, t0).is_some());
        // The window ends; two more failures in the next one lock it again,
        // for the whole of that window.
        let t1 = t0 + Duration::from_secs(90);
        lockouts.fail(Some("app"), &parts, t1);
        assert_eq!(lockouts.locked(Some("app"), &parts, t1), None);
        lockouts.fail(Some("app"), &parts, t1 + Duration::from_secs(5));
        assert_eq!(
            lockouts.locked(Some("app"), &parts, t1 + Duration::from_secs(5)),
            Some(Duration::from_secs(55))
        );
    }

    /// Fails `id` `times` times at `at`.
    fn fail_times(lockouts: &Lockouts, id: &str, times: u32, at: SystemTime) {
        for _ in 0..times {
            lockouts.fail(Some(id), &parts(), at);
        }
    }

    #[test]
    fn a_full_table_forgets_the_fewest_failures_first() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let locked = |lockouts: &Lockouts, id| lockouts.locked(Some(id), &parts(), t0).is_some();
        // Room for four ids; a fifth forgets the ids with one failure, and
        // keeps the others' counts.
        let lockouts = Lockouts::new(Lockout::new(3, Duration::from_secs(60)).capacity(4));
        fail_times(&lockouts, "a", 2, t0);
        fail_times(&lockouts, "b", 2, t0);
        fail_times(&lockouts, "c", 1, t0);
        fail_times(&lockouts, "d", 1, t0);
        fail_times(&lockouts, "e", 1, t0);
        assert!(lockouts.ids.len() <= 4);
        fail_times(&lockouts, "a", 1, t0);
        assert!(locked(&lockouts, "a"), "a kept its two failures");
        fail_times(&lockouts, "c", 2, t0);
        assert!(!locked(&lockouts, "c"), "c was forgotten");

        // When forgetting the ids with one failure leaves more than three
        // quarters of the table, the ids with two go too; a locked-out id
        // stays.
        let lockouts = Lockouts::new(Lockout::new(3, Duration::from_secs(60)).capacity(4));
        fail_times(&lockouts, "a", 2, t0);
        fail_times(&lockouts, "b", 2, t0);
        fail_times(&lockouts, "c", 3, t0);
        fail_times(&lockouts, "d", 1, t0);
        fail_times(&lockouts, "e", 1, t0);
        assert!(lockouts.ids.len() <= 4);
        assert!(locked(&lockouts, "c"), "the locked-out id is kept");
        fail_times(&lockouts, "a", 1, t0);
        assert!(!locked(&lockouts, "a"), "a was forgotten");

        // Another failure of an id the full table already holds counts on
        // it, and makes no room.
        let lockouts = Lockouts::new(Lockout::new(2, Duration::from_secs(60)).capacity(4));
        for id in ["a", "b", "c", "d"] {
            fail_times(&lockouts, id, 1, t0);
        }
        fail_times(&lockouts, "a", 1, t0);
        assert!(locked(&lockouts, "a"));
        assert_eq!(lockouts.ids.len(), 4);
    }

    #[test]
    fn a_full_table_forgets_ended_windows_before_live_ones() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let window = Duration::from_secs(60);
        let lockouts = Lockouts::new(Lockout::new(2, window).capacity(4));
        for id in ["old-1", "old-2", "old-3"] {
            fail_times(&lockouts, id, 5, t0);
        }
        // The old windows end exactly now; "live" has one failure in a
        // window of its own, and a new id fills the table.
        let now = t0 + window;
        fail_times(&lockouts, "live", 1, now);
        fail_times(&lockouts, "new", 1, now);
        assert!(lockouts.ids.len() <= 4);
        fail_times(&lockouts, "live", 1, now);
        assert!(
            lockouts.locked(Some("live"), &parts(), now).is_some(),
            "the ended windows went first: live kept its failure"
        );
    }

    #[test]
    fn counts_peers_when_asked() {
        let lockouts = Lockouts::new(
            Lockout::new(2, Duration::from_secs(60))
                .peer(|parts| parts.headers.get("x-peer")?.to_str().ok()?.parse().ok()),
        );
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut parts = parts();
        parts.headers.insert("x-peer", "192.0.2.7".parse().unwrap());
        lockouts.fail(Some("a"), &parts, t0);
        lockouts.fail(Some("b"), &parts, t0);
        // Two ids, one address: the address is locked out for every id.
        assert!(lockouts.locked(Some("c"), &parts, t0).is_some());
        let elsewhere = super::tests::parts();
        assert_eq!(lockouts.locked(Some("c"), &elsewhere, t0), None);
    }

    #[test]
    fn a_flood_of_ids_stays_bounded_and_spares_the_busiest() {
        let settings = Lockout::new(10, Duration::from_secs(60)).capacity(1000);
        let lockouts = Lockouts::new(settings);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let parts = parts();
        for _ in 0..5 {
            lockouts.fail(Some("victim"), &parts, t0);
        }
        for i in 0..100_000 {
            lockouts.fail(Some(&format!("junk-{i}")), &parts, t0);
            assert!(lockouts.ids.len() <= 1000);
        }
        for _ in 0..5 {
            lockouts.fail(Some("victim"), &parts, t0);
        }
        assert!(lockouts.locked(Some("victim"), &parts, t0).is_some());
    }
}
