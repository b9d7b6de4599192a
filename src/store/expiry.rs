//! Expiry for the memory store without stalls: keys queue up in the order
//! they were issued, and every store call pops a few of the expired ones,
//! so no request ever waits for a scan of the whole store.

use std::{
    collections::VecDeque,
    time::{SystemTime, UNIX_EPOCH},
};

/// How many expired keys one store call removes at most. Each call adds at
/// most one key, so the queue keeps up while no call waits long.
pub(super) const SWEEP_BATCH: usize = 64;

/// Keys with their expiry, oldest first.
///
/// With one lifetime per kind of value (the layer's setting) issue order is
/// expiry order. Should lifetimes differ, a long-lived key at the front only
/// delays the ones behind it until it expires itself: memory stays bounded
/// by what one longest lifetime can hold.
pub(super) struct ExpiryQueue<K> {
    queue: VecDeque<(u64, K)>,
}

impl<K> Default for ExpiryQueue<K> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
        }
    }
}

/// Milliseconds since the epoch, rounded down.
fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Milliseconds since the epoch, rounded up: a key leaves the queue only
/// once its record has surely expired. Rounded down, a key popped within
/// its expiry's millisecond found its record still live, was skipped, and
/// stayed in the store for good (the soak run found it: memory grew by
/// every code issued).
fn millis_up(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| {
        let whole = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        whole.saturating_add(u64::from(d.subsec_nanos() % 1_000_000 != 0))
    })
}

impl<K> ExpiryQueue<K> {
    /// Remembers that `key` expires at `expires_at`.
    pub(super) fn push(&mut self, expires_at: SystemTime, key: K) {
        self.queue.push_back((millis_up(expires_at), key));
    }

    /// Hands `remove` up to [`SWEEP_BATCH`] keys whose time has passed.
    /// `remove` checks the store's own record, which may have gone already
    /// (redeemed after expiry) or, for an unusual key, live longer.
    pub(super) fn sweep(&mut self, now: SystemTime, mut remove: impl FnMut(K)) {
        let now = millis(now);
        for _ in 0..SWEEP_BATCH {
            match self.queue.front() {
                Some((expires_at, _)) if *expires_at <= now => {
                    if let Some((_, key)) = self.queue.pop_front() {
                        remove(key);
                    }
                }
                _ => return,
            }
        }
    }

    /// The number of keys queued.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn never_pops_a_key_within_its_expirys_millisecond() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000);
        let mut queue = ExpiryQueue::default();
        queue.push(t0 + Duration::from_micros(500), 1);
        let mut removed = Vec::new();
        queue.sweep(t0 + Duration::from_micros(700), |k| removed.push(k));
        queue.sweep(t0 + Duration::from_micros(999), |k| removed.push(k));
        assert!(removed.is_empty(), "popped before the record expired");
        queue.sweep(t0 + Duration::from_millis(1), |k| removed.push(k));
        assert_eq!(removed, [1]);
    }

    #[test]
    fn pops_only_expired_keys_a_batch_at_a_time() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000);
        let mut queue = ExpiryQueue::default();
        for i in 0..200u32 {
            queue.push(t0 + Duration::from_secs(u64::from(i)), i);
        }
        let mut removed = Vec::new();
        queue.sweep(t0 + Duration::from_secs(9), |k| removed.push(k));
        assert_eq!(removed, (0..10).collect::<Vec<_>>());
        removed.clear();
        queue.sweep(t0 + Duration::from_secs(1_000), |k| removed.push(k));
        assert_eq!(removed.len(), SWEEP_BATCH);
        assert_eq!(queue.len(), 200 - 10 - SWEEP_BATCH);
    }
}
