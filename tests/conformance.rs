//! The store conformance suite (`tokengate::testing::conformance`) against
//! the memory store, and against a minimal store written from the trait
//! docs alone: proof that the docs are enough to write a backend.

#![cfg(feature = "testing")]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::SystemTime,
};

use tokengate::{
    Client, MemoryStore, StoreError,
    authorize::CodeRecord,
    clock::{Clock, ManualClock},
    device::{DeviceDecision, DeviceRecord, DeviceStatus, PollOutcome},
    refresh::RefreshRecord,
    store::{
        Claim, ClientStore, CodeKey, CodeStore, DeviceStore, Lookup, Redemption, RefreshStore,
        Reuse, ReuseWindow,
    },
    testing::conformance,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store() {
    let clock = ManualClock::new();
    let store = MemoryStore::with_clock(clock.clone());
    conformance::run_clients(&store, |client| {
        store.insert_client(client);
        std::future::ready(())
    })
    .await;
    conformance::run(store, clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_store() {
    let clock = ManualClock::new();
    let store = MapStore::with_clock(clock.clone());
    conformance::run_clients(&store, |client| {
        let id = client.client_id().to_owned();
        lock(&store.0.clients).insert(id, Arc::new(client));
        std::future::ready(())
    })
    .await;
    conformance::run(store, clock).await;
}

/// One map per kind of value, each behind a mutex, and time from the clock.
/// Nothing is ever forgotten: the contract only asks that what expired
/// answers as gone.
#[derive(Clone)]
struct MapStore(Arc<Maps>);

struct Maps {
    clock: ManualClock,
    clients: Mutex<HashMap<String, Arc<Client>>>,
    codes: Mutex<HashMap<CodeKey, Held<Arc<CodeRecord>>>>,
    refresh: Mutex<HashMap<CodeKey, Held<RefreshRecord>>>,
    /// Revoked families, for good.
    revoked: Mutex<Vec<String>>,
    devices: Mutex<HashMap<CodeKey, DeviceRecord>>,
}

impl MapStore {
    fn with_clock(clock: ManualClock) -> Self {
        Self(Arc::new(Maps {
            clock,
            clients: Mutex::default(),
            codes: Mutex::default(),
            refresh: Mutex::default(),
            revoked: Mutex::default(),
            devices: Mutex::default(),
        }))
    }

    fn now(&self) -> SystemTime {
        self.0.clock.now()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().expect("no panic while a map is locked")
}

/// A code or refresh token: its record, whether it was used (and when),
/// the claim on it with when that lapses, and the reuses granted since its
/// use.
struct Held<T> {
    record: T,
    used: bool,
    used_at: Option<SystemTime>,
    claim: Option<(Claim, SystemTime)>,
    reuses: u32,
}

impl<T: Clone> Held<T> {
    fn new(record: T) -> Self {
        Self {
            record,
            used: false,
            used_at: None,
            claim: None,
            reuses: 0,
        }
    }

    fn claim(&mut self, claim: &Claim, now: SystemTime) -> Redemption<T> {
        if self.used {
            return Redemption::Used(self.record.clone());
        }
        if self.claim.is_some_and(|(_, until)| now < until) {
            return Redemption::Busy;
        }
        self.claim = Some((*claim, now + claim.ttl()));
        Redemption::Claimed(self.record.clone())
    }

    /// Confirms (`used`) or releases the claim if `claim` still holds it.
    fn end(&mut self, claim: &Claim, used: bool, now: SystemTime) -> bool {
        let holds = !self.used && self.claim.is_some_and(|(held, _)| held.id() == claim.id());
        if holds {
            self.claim = None;
            self.used = used;
            self.used_at = used.then_some(now);
        }
        holds
    }
}

impl ClientStore for MapStore {
    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        Ok(lock(&self.0.clients).get(client_id).cloned())
    }
}

impl CodeStore for MapStore {
    async fn issue(&self, key: CodeKey, record: CodeRecord) -> Result<(), StoreError> {
        let mut codes = lock(&self.0.codes);
        if codes.contains_key(&key) {
            return Err(StoreError::new("key in use"));
        }
        codes.insert(key, Held::new(Arc::new(record)));
        Ok(())
    }

    async fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> Result<Redemption<Arc<CodeRecord>>, StoreError> {
        let now = self.now();
        Ok(match lock(&self.0.codes).get_mut(key) {
            Some(held) if !held.record.is_expired(now) => held.claim(claim, now),
            _ => Redemption::Unknown,
        })
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        let now = self.now();
        let mut codes = lock(&self.0.codes);
        Ok(codes
            .get_mut(key)
            .is_some_and(|held| held.end(claim, true, now)))
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        let now = self.now();
        if let Some(held) = lock(&self.0.codes).get_mut(key) {
            held.end(claim, false, now);
        }
        Ok(())
    }
}

impl RefreshStore for MapStore {
    async fn issue(&self, key: CodeKey, record: RefreshRecord) -> Result<(), StoreError> {
        // The revocation lock is held while inserting, so a token cannot
        // slip into a family being revoked.
        let revoked = lock(&self.0.revoked);
        let mut tokens = lock(&self.0.refresh);
        if revoked.contains(&record.family) || tokens.contains_key(&key) {
            return Err(StoreError::new("family revoked or key in use"));
        }
        tokens.insert(key, Held::new(record));
        Ok(())
    }

    async fn find(&self, key: &CodeKey) -> Result<Lookup<RefreshRecord>, StoreError> {
        let now = self.now();
        Ok(match lock(&self.0.refresh).get(key) {
            Some(held) if !held.record.is_expired(now) => {
                Lookup::from_uses(held.record.clone(), i64::from(held.used))
            }
            _ => Lookup::Unknown,
        })
    }

    async fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> Result<Redemption<RefreshRecord>, StoreError> {
        let now = self.now();
        Ok(match lock(&self.0.refresh).get_mut(key) {
            Some(held) if !held.record.is_expired(now) => held.claim(claim, now),
            _ => Redemption::Unknown,
        })
    }

    // A revoked family's tokens are gone, so their claims confirm nothing.
    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        let now = self.now();
        let mut tokens = lock(&self.0.refresh);
        Ok(tokens
            .get_mut(key)
            .is_some_and(|held| held.end(claim, true, now)))
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        let now = self.now();
        if let Some(held) = lock(&self.0.refresh).get_mut(key) {
            held.end(claim, false, now);
        }
        Ok(())
    }

    async fn revoke_family(&self, family: &str) -> Result<(), StoreError> {
        let mut revoked = lock(&self.0.revoked);
        revoked.push(family.to_owned());
        lock(&self.0.refresh).retain(|_, held| held.record.family != family);
        Ok(())
    }

    async fn reuse(
        &self,
        key: &CodeKey,
        window: ReuseWindow,
    ) -> Result<Reuse<RefreshRecord>, StoreError> {
        let now = self.now();
        let mut tokens = lock(&self.0.refresh);
        let Some(held) = tokens.get_mut(key).filter(|h| !h.record.is_expired(now)) else {
            return Ok(Reuse::Unknown);
        };
        let in_flight = held.claim.is_some_and(|(_, until)| now < until);
        let in_window = match held.used_at {
            Some(at) => now < at + window.within,
            None if in_flight => true,
            None => return Ok(Reuse::NotRotated),
        };
        if in_window && held.reuses < window.limit {
            held.reuses += 1;
            return Ok(Reuse::Granted(held.record.clone()));
        }
        if held.used_at.is_none() {
            return Ok(Reuse::Held);
        }
        Ok(Reuse::Refused(held.record.clone()))
    }
}

impl DeviceStore for MapStore {
    async fn issue(&self, key: CodeKey, record: DeviceRecord) -> Result<bool, StoreError> {
        let now = self.now();
        let mut devices = lock(&self.0.devices);
        let taken = devices
            .values()
            .any(|live| live.user_code == record.user_code && now < live.expires_at);
        if taken || devices.contains_key(&key) {
            return Ok(false);
        }
        devices.insert(key, record);
        Ok(true)
    }

    async fn poll(
        &self,
        key: &CodeKey,
        client_id: &str,
        now: SystemTime,
    ) -> Result<PollOutcome, StoreError> {
        let mut devices = lock(&self.0.devices);
        let Some(record) = devices.get_mut(key) else {
            return Ok(PollOutcome::Unknown);
        };
        let outcome = record.poll(client_id, now);
        if let PollOutcome::Approved(_) = outcome {
            devices.remove(key);
        }
        Ok(outcome)
    }

    async fn find(
        &self,
        user_code: &str,
        now: SystemTime,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let devices = lock(&self.0.devices);
        Ok(devices
            .values()
            .find(|record| {
                record.user_code == user_code
                    && now < record.expires_at
                    && record.status == DeviceStatus::Pending
            })
            .cloned())
    }

    async fn decide(
        &self,
        user_code: &str,
        decision: DeviceDecision,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let mut devices = lock(&self.0.devices);
        let live = devices
            .values_mut()
            .find(|record| record.user_code == user_code && now < record.expires_at);
        Ok(live.is_some_and(|record| record.decide(decision, now)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_counters_keep_the_lockout_store_contract() {
    tokengate::testing::conformance::lockout_store_contract(
        tokengate::store::MemoryCounters::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_replays_keep_the_replay_store_contract() {
    tokengate::testing::conformance::replay_store_contract(
        tokengate::store::MemoryReplays::default(),
    )
    .await;
}
