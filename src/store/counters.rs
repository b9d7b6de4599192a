//! In-process failure counters: the lockout's and the user-code limits'
//! default store, for a gate that runs as one process.
//!
//! Why not a rate-limiting crate: `governor` and its kin count requests
//! and consume a cell on every check. The gate must ask "is this key locked
//! out?" without counting the request, count only the failures, and hold
//! its memory to a fixed bound under a flood of made-up keys; the table
//! below does exactly that.

use std::{
    fmt,
    hash::{BuildHasher, RandomState},
    sync::{Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use hashbrown::{HashTable, hash_table::Entry};

use super::{Counter, CounterKey, LockoutStore, StoreError};

/// The default bound on the keys tracked at once.
pub const DEFAULT_COUNTERS_CAPACITY: usize = 65_536;

/// Failure counters in this process's memory, in fixed windows.
///
/// Keys are kept as keyed 64-bit hashes: an id of any length costs the same
/// few bytes, and nobody can aim collisions at a chosen key without the
/// process's random key. The table is placed by that hash too, so a check
/// hashes each key once. At most `capacity` keys are tracked; when the
/// table is full, ended windows go first, then the keys with the fewest
/// failures, so a flood of made-up keys costs an attacker many requests
/// before it frees a real one.
pub struct MemoryCounters {
    hasher: RandomState,
    capacity: usize,
    windows: Mutex<HashTable<Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    /// The key's keyed hash, which is also its place in the table.
    key: u64,
    ends: SystemTime,
    failures: u32,
}

impl MemoryCounters {
    /// Counters for at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            capacity: capacity.max(1),
            windows: Mutex::new(HashTable::new()),
        }
    }

    fn key(&self, key: &CounterKey<'_>) -> u64 {
        self.hasher.hash_one(key)
    }

    /// [`LockoutStore::locked`], at once.
    pub(crate) fn locked_now(&self, counters: &[Counter<'_>], now: SystemTime) -> Option<Duration> {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        counters
            .iter()
            .filter_map(|counter| {
                let key = self.key(&counter.key);
                let window = windows.find(key, |window| window.key == key)?;
                (window.failures >= counter.limit && now < window.ends)
                    .then(|| window.ends.duration_since(now).unwrap_or_default())
            })
            .max()
    }

    /// [`LockoutStore::fail`], at once.
    pub(crate) fn fail_now(&self, counters: &[Counter<'_>], now: SystemTime) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        for counter in counters {
            let key = self.key(&counter.key);
            let fresh = Window {
                key,
                ends: now.checked_add(counter.window).unwrap_or(now),
                failures: 0,
            };
            if windows.find(key, |window| window.key == key).is_none()
                && windows.len() >= self.capacity
            {
                make_room(&mut windows, now, self.capacity);
            }
            let window = match windows.entry(key, |window| window.key == key, |window| window.key) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => entry.insert(fresh).into_mut(),
            };
            // An ended window starts anew. One whose start lies after `now`
            // is not ended: concurrent failures read the clock before the
            // lock and arrive out of order, and each must count.
            if now >= window.ends {
                *window = fresh;
            }
            window.failures = window.failures.saturating_add(1);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Default for MemoryCounters {
    fn default() -> Self {
        Self::new(DEFAULT_COUNTERS_CAPACITY)
    }
}

impl fmt::Debug for MemoryCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCounters")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl LockoutStore for MemoryCounters {
    async fn locked(
        &self,
        counters: &[Counter<'_>],
        now: SystemTime,
    ) -> Result<Option<Duration>, StoreError> {
        Ok(self.locked_now(counters, now))
    }

    async fn fail(&self, counters: &[Counter<'_>], now: SystemTime) -> Result<(), StoreError> {
        self.fail_now(counters, now);
        Ok(())
    }
}

/// Frees at least a quarter of a full table: ended windows first, then the
/// keys with the fewest failures, one failure level at a time.
fn make_room(windows: &mut HashTable<Window>, now: SystemTime, capacity: usize) {
    let target = capacity - capacity / 4 - 1;
    windows.retain(|window| now < window.ends);
    while windows.len() > target {
        let Some(fewest) = windows.iter().map(|window| window.failures).min() else {
            break;
        };
        windows.retain(|window| window.failures > fewest);
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    fn id(name: &str, limit: u32) -> Counter<'_> {
        Counter {
            key: CounterKey::Client(name),
            limit,
            window: MINUTE,
        }
    }

    fn fail_times(counters: &MemoryCounters, counter: Counter<'_>, times: u32, at: SystemTime) {
        for _ in 0..times {
            counters.fail_now(&[counter], at);
        }
    }

    #[test]
    fn locks_out_at_the_limit_until_the_window_ends() {
        let counters = MemoryCounters::default();
        let app = id("app", 3);
        fail_times(&counters, app, 2, t0());
        assert_eq!(counters.locked_now(&[app], t0()), None);
        counters.fail_now(&[app], t0() + Duration::from_secs(10));
        assert_eq!(
            counters.locked_now(&[app], t0() + Duration::from_secs(15)),
            Some(Duration::from_secs(45))
        );
        assert_eq!(counters.locked_now(&[id("other", 3)], t0()), None);
        assert_eq!(counters.locked_now(&[], t0()), None);
        assert_eq!(counters.locked_now(&[app], t0() + MINUTE), None);
        // A new window starts from nothing, and can lock again.
        let t1 = t0() + Duration::from_secs(61);
        counters.fail_now(&[app], t1);
        assert_eq!(counters.locked_now(&[app], t1), None);
        fail_times(&counters, app, 2, t1 + Duration::from_secs(5));
        assert_eq!(
            counters.locked_now(&[app], t1 + Duration::from_secs(5)),
            Some(Duration::from_secs(55))
        );
    }

    #[test]
    fn the_longest_wait_of_several_keys_wins_and_limits_are_per_counter() {
        let counters = MemoryCounters::default();
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let by_peer = Counter {
            key: CounterKey::Peer(peer),
            limit: 2,
            window: Duration::from_secs(600),
        };
        let by_id = Counter {
            key: CounterKey::PeerClient(peer, "app"),
            limit: 1,
            window: MINUTE,
        };
        counters.fail_now(&[by_peer, by_id], t0());
        assert_eq!(counters.locked_now(&[by_peer], t0()), None);
        assert_eq!(counters.locked_now(&[by_peer, by_id], t0()), Some(MINUTE));
        counters.fail_now(&[by_peer], t0());
        assert_eq!(
            counters.locked_now(&[by_peer, by_id], t0()),
            Some(Duration::from_secs(600))
        );
        // The same key under another limit is the same count.
        let stricter = Counter {
            limit: 1,
            ..by_peer
        };
        assert!(counters.locked_now(&[stricter], t0()).is_some());
    }

    #[test]
    fn failures_that_arrive_out_of_clock_order_all_count() {
        // Concurrent failures read the clock before taking the lock: a
        // later one may arrive first. Neither resets the other's window.
        let counters = MemoryCounters::default();
        let app = id("app", 2);
        counters.fail_now(&[app], t0());
        let earlier = t0() - Duration::from_millis(5);
        counters.fail_now(&[app], earlier);
        assert_eq!(
            counters.locked_now(&[app], earlier),
            Some(MINUTE + Duration::from_millis(5))
        );
        assert_eq!(counters.locked_now(&[app], t0()), Some(MINUTE));
    }

    #[test]
    fn a_full_table_forgets_the_fewest_failures_first() {
        let counters = MemoryCounters::new(4);
        let locked = |c: &MemoryCounters, name| c.locked_now(&[id(name, 3)], t0()).is_some();
        fail_times(&counters, id("a", 3), 2, t0());
        fail_times(&counters, id("b", 3), 2, t0());
        fail_times(&counters, id("c", 3), 1, t0());
        fail_times(&counters, id("d", 3), 1, t0());
        fail_times(&counters, id("e", 3), 1, t0());
        assert!(counters.len() <= 4);
        fail_times(&counters, id("a", 3), 1, t0());
        assert!(locked(&counters, "a"), "a kept its two failures");
        fail_times(&counters, id("c", 3), 2, t0());
        assert!(!locked(&counters, "c"), "c was forgotten");

        // Another failure of a key the full table holds makes no room.
        let counters = MemoryCounters::new(4);
        for name in ["a", "b", "c", "d"] {
            fail_times(&counters, id(name, 2), 1, t0());
        }
        fail_times(&counters, id("a", 2), 1, t0());
        assert!(counters.locked_now(&[id("a", 2)], t0()).is_some());
        assert_eq!(counters.len(), 4);
    }

    #[test]
    fn a_full_table_forgets_ended_windows_before_live_ones() {
        let counters = MemoryCounters::new(4);
        for name in ["old-1", "old-2", "old-3"] {
            fail_times(&counters, id(name, 2), 5, t0());
        }
        let now = t0() + MINUTE;
        fail_times(&counters, id("live", 2), 1, now);
        fail_times(&counters, id("new", 2), 1, now);
        assert!(counters.len() <= 4);
        fail_times(&counters, id("live", 2), 1, now);
        assert!(counters.locked_now(&[id("live", 2)], now).is_some());
    }

    #[test]
    fn a_flood_of_keys_stays_bounded_and_spares_the_busiest() {
        let counters = MemoryCounters::new(1000);
        fail_times(&counters, id("victim", 10), 5, t0());
        for i in 0..100_000 {
            let name = format!("junk-{i}");
            counters.fail_now(&[id(&name, 10)], t0());
            assert!(counters.len() <= 1000);
        }
        fail_times(&counters, id("victim", 10), 5, t0());
        assert!(counters.locked_now(&[id("victim", 10)], t0()).is_some());
    }

    /// The bound is exact: a full table of eight frees down to
    /// 8 - 8/4 - 1 = 5 keys, the five with the most failures, so that with
    /// the new key it is three quarters full. Eight distinct failure counts
    /// make every level visible.
    #[test]
    fn a_full_table_keeps_the_busiest_and_ends_three_quarters_full() {
        let counters = MemoryCounters::new(8);
        let names = ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"];
        for (failures, name) in (1..).zip(names) {
            fail_times(&counters, id(name, 100), failures, t0());
        }
        assert_eq!(counters.len(), 8);
        counters.fail_now(&[id("new", 100)], t0());
        assert_eq!(counters.len(), 6);
        // A key kept still has all its failures; a forgotten one is not
        // locked at any limit it reached.
        for (failures, name) in (1..).zip(names) {
            let kept = counters.locked_now(&[id(name, failures)], t0()).is_some();
            assert_eq!(kept, failures >= 4, "{name}");
        }
        assert!(counters.locked_now(&[id("new", 1)], t0()).is_some());
    }
}
