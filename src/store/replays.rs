//! In-process memory of one-time values: the default [`ReplayStore`] of a
//! gate that runs as one process.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use super::{BoxFuture, CodeKey, ReplayStore, StoreError};

/// The default bound on the one-time values remembered at once.
pub const DEFAULT_REPLAYS_CAPACITY: usize = 1 << 20;

/// Used `jti`s and DPoP nonces in this process's memory.
///
/// At most `capacity` values are remembered. A full table first forgets
/// what has expired; if it is still full, the value is refused with a
/// [`StoreError`] (the gate answers `500`) rather than forgetting a live
/// one, which would let it be replayed. Only a request that passed client
/// authentication (an assertion) or its grant's checks (a DPoP proof)
/// records a value, so filling the table takes valid credentials.
pub struct MemoryReplays {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    used: HashMap<[u8; 32], SystemTime>,
    nonces: HashMap<u64, (String, SystemTime)>,
    /// When a full table was last swept: a sweep walks every entry, so a
    /// table full of live values is swept at most once a second, not on
    /// every refused request.
    swept: Option<SystemTime>,
}

impl MemoryReplays {
    /// A memory for at most `capacity` values (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn first_use_now(
        &self,
        key: &CodeKey,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(expires) = state.used.get(key.as_bytes()) {
            if now < *expires {
                return Ok(false);
            }
        } else if state.used.len() >= self.capacity {
            let due = state.swept.is_none_or(|swept| {
                now.duration_since(swept).unwrap_or_default() >= Duration::from_secs(1)
            });
            if due {
                state.used.retain(|_, expires| now < *expires);
                state.swept = Some(now);
            }
            if state.used.len() >= self.capacity {
                return Err(StoreError::new(
                    "the replay memory is full of live one-time values",
                ));
            }
        }
        state.used.insert(*key.as_bytes(), until);
        Ok(true)
    }

    pub(crate) fn nonce_now(
        &self,
        slot: u64,
        candidate: &str,
        until: SystemTime,
        now: SystemTime,
    ) -> String {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.nonces.retain(|_, (_, expires)| now < *expires);
        state
            .nonces
            .entry(slot)
            .or_insert_with(|| (candidate.to_owned(), until))
            .0
            .clone()
    }
}

impl Default for MemoryReplays {
    fn default() -> Self {
        Self::new(DEFAULT_REPLAYS_CAPACITY)
    }
}

impl fmt::Debug for MemoryReplays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplays")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl ReplayStore for MemoryReplays {
    async fn first_use(
        &self,
        key: &CodeKey,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        self.first_use_now(key, until, now)
    }

    async fn nonce(
        &self,
        slot: u64,
        candidate: &str,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<String, StoreError> {
        Ok(self.nonce_now(slot, candidate, until, now))
    }
}

/// Where a running gate keeps one-time values: in this process, or in a
/// store shared with other processes. (Without `jose`, nothing reads them.)
#[cfg_attr(not(feature = "jose"), allow(dead_code))]
pub(crate) enum Replays {
    Memory(MemoryReplays),
    Shared(Arc<dyn DynReplayStore>),
}

#[cfg_attr(not(feature = "jose"), allow(dead_code))]
impl Replays {
    /// [`ReplayStore::first_use`].
    pub(crate) async fn first_use(
        &self,
        key: &CodeKey,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Memory(memory) => memory.first_use_now(key, until, now),
            Self::Shared(store) => store.first_use(key, until, now).await,
        }
    }

    /// [`ReplayStore::nonce`].
    pub(crate) async fn nonce(
        &self,
        slot: u64,
        candidate: &str,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<String, StoreError> {
        match self {
            Self::Memory(memory) => Ok(memory.nonce_now(slot, candidate, until, now)),
            Self::Shared(store) => store.nonce(slot, candidate, until, now).await,
        }
    }
}

impl fmt::Debug for Replays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(memory) => memory.fmt(f),
            Self::Shared(_) => f.write_str("shared ReplayStore"),
        }
    }
}

/// [`ReplayStore`] with the store type erased.
#[cfg_attr(not(feature = "jose"), allow(dead_code))]
pub(crate) trait DynReplayStore: Send + Sync {
    fn first_use<'a>(
        &'a self,
        key: &'a CodeKey,
        until: SystemTime,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    fn nonce<'a>(
        &'a self,
        slot: u64,
        candidate: &'a str,
        until: SystemTime,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<String, StoreError>>;
}

impl<S: ReplayStore> DynReplayStore for S {
    fn first_use<'a>(
        &'a self,
        key: &'a CodeKey,
        until: SystemTime,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(ReplayStore::first_use(self, key, until, now))
    }

    fn nonce<'a>(
        &'a self,
        slot: u64,
        candidate: &'a str,
        until: SystemTime,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(ReplayStore::nonce(self, slot, candidate, until, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    #[test]
    fn a_full_table_refuses_until_its_values_expire() {
        let replays = MemoryReplays::new(2);
        let (a, b, c) = (CodeKey::of("a"), CodeKey::of("b"), CodeKey::of("c"));
        assert!(replays.first_use_now(&a, t0() + MINUTE, t0()).unwrap());
        assert!(replays.first_use_now(&b, t0() + MINUTE, t0()).unwrap());
        assert!(
            replays.first_use_now(&c, t0() + MINUTE, t0()).is_err(),
            "a third live value does not fit, and no live one is forgotten"
        );
        assert!(
            !replays.first_use_now(&a, t0() + MINUTE, t0()).unwrap(),
            "a full table still tells a replay"
        );
        // Both expired, and the last sweep (of the refusal) is over a
        // second ago: the sweep frees the table.
        let later = t0() + MINUTE + Duration::from_secs(1);
        assert!(replays.first_use_now(&c, later + MINUTE, later).unwrap());
        assert!(
            replays.first_use_now(&a, later + MINUTE, later).unwrap(),
            "an expired value is forgotten"
        );
        assert!(
            replays.first_use_now(&b, later + MINUTE, later).is_err(),
            "and the table is full again"
        );
    }
}
