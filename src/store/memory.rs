//! The embedded store: clients, codes, refresh tokens and device
//! authorizations in this process's memory.

use std::{
    collections::HashMap,
    fmt,
    path::Path,
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, SystemTime},
};

use super::{
    Claim, ClientStore, ClientsFileError, CodeStore, DeviceStore, Lookup, Redemption, RefreshStore,
    Reuse, ReuseWindow, StoreError, clients_file, expiry::ExpiryQueue,
};
use crate::{
    client::Client,
    clock::{Clock, SystemClock},
    record::{
        code::CodeRecord,
        device::{DEVICE_TOMBSTONE, DeviceDecision, DeviceRecord, DeviceStatus, PollOutcome},
        refresh::RefreshRecord,
    },
    secret::CodeKey,
};

/// How often revoked families are forgotten, at most (they are few).
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The shortest a revocation lasts, as in the Redis and PostgreSQL stores: a
/// replayed code's family is revoked before the application may have issued
/// into it, and must still refuse that token when it comes.
const REVOCATION_FLOOR: Duration = Duration::from_secs(3600);

/// Clients and codes in memory: the default store, for one process.
///
/// Redemption is atomic (one lock, one map operation). A redeemed code stays
/// as a replay marker until it would have expired, then it is swept, so
/// memory is bounded by the codes issued within one code lifetime. Expired
/// values leave a few at a time with every call, in issue order, so no
/// request waits for a sweep of the whole store. Clones share the same
/// data.
///
/// ```
/// use tokengate::{Client, MemoryStore};
///
/// let store = MemoryStore::new();
/// store.insert_client(Client::confidential("app").with_secret("s3cret"));
/// store
///     .load_clients_json(r#"{"clients":[{"client_id":"cli","public":true,
///         "redirect_uris":["http://127.0.0.1/cb"],"redirect_policy":"loopback"}]}"#)
///     .unwrap();
/// assert_eq!(store.client_count(), 2);
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    clients: RwLock<HashMap<String, Arc<Client>>>,
    codes: Mutex<Codes>,
    refresh: Mutex<Refresh>,
    devices: Mutex<Devices>,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct Refresh {
    tokens: HashMap<CodeKey, Entry<RefreshRecord>>,
    /// Each family's tokens: a revocation, which comes with every logout at
    /// the revocation endpoint, removes them without scanning every token
    /// of every client under the lock that every refresh waits on.
    families: HashMap<String, Vec<CodeKey>>,
    expiry: ExpiryQueue<CodeKey>,
    /// Revoked families, until the last of their tokens would have expired
    /// (an hour at least).
    revoked: HashMap<String, SystemTime>,
    next_sweep: Option<SystemTime>,
}

#[derive(Default)]
struct Devices {
    by_key: HashMap<CodeKey, DeviceRecord>,
    by_user_code: HashMap<String, CodeKey>,
    expiry: ExpiryQueue<CodeKey>,
}

#[derive(Default)]
struct Codes {
    entries: HashMap<CodeKey, Entry<Arc<CodeRecord>>>,
    expiry: ExpiryQueue<CodeKey>,
}

struct Entry<T> {
    record: T,
    /// When it was used up (rotated away, for a refresh token).
    used: Option<SystemTime>,
    /// The two-phase claim on it: the claim's id and when it lapses.
    claim: Option<([u8; 16], SystemTime)>,
    /// Reuses granted after its rotation (refresh tokens).
    reuses: u32,
}

impl<T: Clone> Entry<T> {
    fn new(record: T) -> Self {
        Self {
            record,
            used: None,
            claim: None,
            reuses: 0,
        }
    }

    fn claim(&mut self, claim: &Claim, now: SystemTime) -> Redemption<T> {
        if self.used.is_some() {
            return Redemption::Used(self.record.clone());
        }
        if self.claim.is_some_and(|(_, until)| now < until) {
            return Redemption::Busy;
        }
        self.claim = Some((*claim.id(), now + claim.ttl()));
        Redemption::Claimed(self.record.clone())
    }

    fn holds(&self, claim: &Claim) -> bool {
        self.used.is_none() && self.claim.is_some_and(|(id, _)| id == *claim.id())
    }

    fn confirm(&mut self, claim: &Claim, now: SystemTime) -> bool {
        if !self.holds(claim) {
            return false;
        }
        self.used = Some(now);
        self.claim = None;
        true
    }

    fn release(&mut self, claim: &Claim) {
        if self.holds(claim) {
            self.claim = None;
        }
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }

    /// An empty store that reads time from `clock` (give it the same clock
    /// as the layer, so tests move both at once).
    pub fn with_clock(clock: impl Clock) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(clock);
        Self {
            inner: Arc::new(Inner {
                clients: RwLock::default(),
                codes: Mutex::default(),
                refresh: Mutex::default(),
                devices: Mutex::default(),
                clock,
            }),
        }
    }

    /// Registers `client`, replacing one with the same id.
    pub fn insert_client(&self, client: Client) {
        let mut clients = self
            .inner
            .clients
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        clients.insert(client.client_id().to_owned(), Arc::new(client));
    }

    /// Removes the client `client_id`; its codes can no longer be redeemed
    /// since no request can authenticate as it.
    pub fn remove_client(&self, client_id: &str) -> bool {
        let mut clients = self
            .inner
            .clients
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        clients.remove(client_id).is_some()
    }

    /// The number of registered clients.
    pub fn client_count(&self) -> usize {
        self.inner
            .clients
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Registers every client of a clients document (see the crate docs for
    /// its format). Nothing is registered if any entry is invalid.
    pub fn load_clients_json(&self, json: &str) -> Result<usize, ClientsFileError> {
        let clients = clients_file::parse(json)?;
        let count = clients.len();
        for client in clients {
            self.insert_client(client);
        }
        Ok(count)
    }

    /// Registers every client of the clients file at `path`.
    pub fn load_clients_file(&self, path: impl AsRef<Path>) -> Result<usize, ClientsFileError> {
        let json = std::fs::read_to_string(path.as_ref())
            .map_err(|e| ClientsFileError::read(path.as_ref(), e))?;
        self.load_clients_json(&json)
    }

    /// The number of codes held, live or kept as replay markers.
    pub fn code_count(&self) -> usize {
        self.codes().entries.len()
    }

    /// The number of refresh tokens held, live or kept as replay markers.
    pub fn refresh_token_count(&self) -> usize {
        lock(&self.inner.refresh).tokens.len()
    }

    /// The number of device authorizations held.
    pub fn device_count(&self) -> usize {
        lock(&self.inner.devices).by_key.len()
    }

    fn codes(&self) -> std::sync::MutexGuard<'_, Codes> {
        lock(&self.inner.codes)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a sweep is due at `now`; schedules the next one when it is.
fn sweep_due(next_sweep: &mut Option<SystemTime>, now: SystemTime) -> bool {
    match next_sweep {
        Some(next) if now < *next => false,
        _ => {
            *next_sweep = Some(now + SWEEP_EVERY);
            true
        }
    }
}

impl Codes {
    /// Drops a few codes past their expiry, used or not.
    fn sweep(&mut self, now: SystemTime) {
        let Self { entries, expiry } = self;
        expiry.sweep(now, |key| {
            if entries.get(&key).is_some_and(|e| e.record.is_expired(now)) {
                entries.remove(&key);
            }
        });
    }
}

impl Refresh {
    /// Drops a few tokens past their expiry, and, now and then, the
    /// revocations that outlived their families.
    fn sweep(&mut self, now: SystemTime) {
        let Self {
            tokens,
            families,
            expiry,
            ..
        } = self;
        expiry.sweep(now, |key| {
            if tokens.get(&key).is_some_and(|e| e.record.is_expired(now)) {
                forget(tokens, families, &key);
            }
        });
        if sweep_due(&mut self.next_sweep, now) {
            self.revoked.retain(|_, until| now < *until);
        }
    }
}

/// Removes the token at `key` and its place in its family's index.
fn forget(
    tokens: &mut HashMap<CodeKey, Entry<RefreshRecord>>,
    families: &mut HashMap<String, Vec<CodeKey>>,
    key: &CodeKey,
) {
    let Some(entry) = tokens.remove(key) else {
        return;
    };
    let family = &entry.record.family;
    if let Some(members) = families.get_mut(family) {
        members.retain(|member| member != key);
        if members.is_empty() {
            families.remove(family);
        }
    }
}

impl Devices {
    /// Drops a few device codes past their expiry and tombstone.
    fn sweep(&mut self, now: SystemTime) {
        let Self {
            by_key,
            by_user_code,
            expiry,
        } = self;
        expiry.sweep(now, |key| {
            let gone = by_key
                .get(&key)
                .is_some_and(|record| now >= record.expires_at + DEVICE_TOMBSTONE);
            if gone
                && let Some(record) = by_key.remove(&key)
                && by_user_code.get(&record.user_code) == Some(&key)
            {
                by_user_code.remove(&record.user_code);
            }
        });
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("clients", &self.client_count())
            .field("codes", &self.code_count())
            .finish()
    }
}

impl ClientStore for MemoryStore {
    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        let clients = self
            .inner
            .clients
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(clients.get(client_id).cloned())
    }
}

impl CodeStore for MemoryStore {
    async fn issue(&self, key: CodeKey, record: CodeRecord) -> Result<(), StoreError> {
        let now = self.inner.clock.now();
        let mut codes = self.codes();
        codes.sweep(now);
        if codes.entries.contains_key(&key) {
            // 256 random bits do not collide; a caller reusing a key would
            // silently revive a used code, so refuse.
            return Err(StoreError::new("a code with this key already exists"));
        }
        codes.expiry.push(record.expires_at, key);
        codes.entries.insert(key, Entry::new(Arc::new(record)));
        Ok(())
    }

    async fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> Result<Redemption<Arc<CodeRecord>>, StoreError> {
        let now = self.inner.clock.now();
        let mut codes = self.codes();
        codes.sweep(now);
        let Some(entry) = codes.entries.get_mut(key) else {
            return Ok(Redemption::Unknown);
        };
        if entry.record.is_expired(now) {
            // Forgotten now rather than at its turn in the sweep.
            codes.entries.remove(key);
            return Ok(Redemption::Unknown);
        }
        Ok(entry.claim(claim, now))
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        let now = self.inner.clock.now();
        Ok(self
            .codes()
            .entries
            .get_mut(key)
            .is_some_and(|entry| entry.confirm(claim, now)))
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        if let Some(entry) = self.codes().entries.get_mut(key) {
            entry.release(claim);
        }
        Ok(())
    }
}

impl RefreshStore for MemoryStore {
    async fn issue(&self, key: CodeKey, record: RefreshRecord) -> Result<(), StoreError> {
        let now = self.inner.clock.now();
        let mut refresh = lock(&self.inner.refresh);
        refresh.sweep(now);
        if refresh.revoked.contains_key(&record.family) {
            return Err(StoreError::new("the refresh token family was revoked"));
        }
        if refresh.tokens.contains_key(&key) {
            return Err(StoreError::new(
                "a refresh token with this key already exists",
            ));
        }
        refresh.expiry.push(record.expires_at, key);
        let members = refresh.families.entry(record.family.clone()).or_default();
        members.push(key);
        refresh.tokens.insert(key, Entry::new(record));
        Ok(())
    }

    async fn find(&self, key: &CodeKey) -> Result<Lookup<RefreshRecord>, StoreError> {
        let now = self.inner.clock.now();
        let refresh = lock(&self.inner.refresh);
        Ok(match refresh.tokens.get(key) {
            Some(entry) if entry.record.is_expired(now) => Lookup::Unknown,
            Some(entry) if entry.used.is_some() => Lookup::Used(entry.record.clone()),
            Some(entry) => Lookup::Unused(entry.record.clone()),
            None => Lookup::Unknown,
        })
    }

    async fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> Result<Redemption<RefreshRecord>, StoreError> {
        let now = self.inner.clock.now();
        let mut refresh = lock(&self.inner.refresh);
        refresh.sweep(now);
        let Some(entry) = refresh.tokens.get_mut(key) else {
            return Ok(Redemption::Unknown);
        };
        if entry.record.is_expired(now) {
            let Refresh {
                tokens, families, ..
            } = &mut *refresh;
            forget(tokens, families, key);
            return Ok(Redemption::Unknown);
        }
        Ok(entry.claim(claim, now))
    }

    // A revoked family's tokens are removed by `revoke_family`, so a claim
    // on one finds nothing to confirm.
    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        let now = self.inner.clock.now();
        Ok(lock(&self.inner.refresh)
            .tokens
            .get_mut(key)
            .is_some_and(|entry| entry.confirm(claim, now)))
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        if let Some(entry) = lock(&self.inner.refresh).tokens.get_mut(key) {
            entry.release(claim);
        }
        Ok(())
    }

    async fn revoke_family(&self, family: &str) -> Result<(), StoreError> {
        let now = self.inner.clock.now();
        let mut refresh = lock(&self.inner.refresh);
        let mut until = now + REVOCATION_FLOOR;
        for key in refresh.families.remove(family).unwrap_or_default() {
            if let Some(entry) = refresh.tokens.remove(&key) {
                until = until.max(entry.record.expires_at);
            }
        }
        let previous = refresh.revoked.get(family).copied().unwrap_or(now);
        refresh
            .revoked
            .insert(family.to_owned(), until.max(previous));
        Ok(())
    }

    async fn reuse(
        &self,
        key: &CodeKey,
        window: ReuseWindow,
    ) -> Result<Reuse<RefreshRecord>, StoreError> {
        let now = self.inner.clock.now();
        let mut refresh = lock(&self.inner.refresh);
        // Revoked families' tokens are removed by `revoke_family`.
        let Some(entry) = refresh.tokens.get_mut(key) else {
            return Ok(Reuse::Unknown);
        };
        if entry.record.is_expired(now) {
            return Ok(Reuse::Unknown);
        }
        let in_window = match entry.used {
            Some(used) => now < used + window.within,
            // Being rotated by a request still in flight.
            None if entry.claim.is_some_and(|(_, until)| now < until) => true,
            None => return Ok(Reuse::NotRotated),
        };
        if in_window && entry.reuses < window.limit {
            entry.reuses += 1;
            Ok(Reuse::Granted(entry.record.clone()))
        } else if entry.used.is_none() {
            // In flight, past the limit.
            Ok(Reuse::Held)
        } else {
            Ok(Reuse::Refused(entry.record.clone()))
        }
    }
}

impl DeviceStore for MemoryStore {
    async fn issue(&self, key: CodeKey, record: DeviceRecord) -> Result<bool, StoreError> {
        let now = self.inner.clock.now();
        let mut devices = lock(&self.inner.devices);
        devices.sweep(now);
        let live = devices
            .by_user_code
            .get(&record.user_code)
            .and_then(|key| devices.by_key.get(key))
            .is_some_and(|existing| now < existing.expires_at);
        if live || devices.by_key.contains_key(&key) {
            return Ok(false);
        }
        devices.by_user_code.insert(record.user_code.clone(), key);
        devices
            .expiry
            .push(record.expires_at + DEVICE_TOMBSTONE, key);
        devices.by_key.insert(key, record);
        Ok(true)
    }

    async fn poll(
        &self,
        key: &CodeKey,
        client_id: &str,
        now: SystemTime,
    ) -> Result<PollOutcome, StoreError> {
        let mut devices = lock(&self.inner.devices);
        let Some(record) = devices.by_key.get_mut(key) else {
            return Ok(PollOutcome::Unknown);
        };
        let outcome = record.poll(client_id, now);
        if matches!(outcome, PollOutcome::Approved(_))
            && let Some(record) = devices.by_key.remove(key)
        {
            devices.by_user_code.remove(&record.user_code);
        }
        Ok(outcome)
    }

    async fn find(
        &self,
        user_code: &str,
        now: SystemTime,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let devices = lock(&self.inner.devices);
        Ok(devices
            .by_user_code
            .get(user_code)
            .and_then(|key| devices.by_key.get(key))
            .filter(|record| now < record.expires_at && record.status == DeviceStatus::Pending)
            .cloned())
    }

    async fn decide(
        &self,
        user_code: &str,
        decision: DeviceDecision,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let mut devices = lock(&self.inner.devices);
        let Some(key) = devices.by_user_code.get(user_code).copied() else {
            return Ok(false);
        };
        Ok(devices
            .by_key
            .get_mut(&key)
            .is_some_and(|record| record.decide(decision, now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock::ManualClock, store::expiry::SWEEP_BATCH};

    fn record(clock: &ManualClock, lifetime: Duration) -> CodeRecord {
        CodeRecord {
            client_id: "c".into(),
            subject: "u".into(),
            scopes: vec![],
            redirect_uri: None,
            pkce: None,
            issued_at: clock.now(),
            expires_at: clock.now() + lifetime,
            dpop_jkt: None,
        }
    }

    #[tokio::test]
    async fn expired_codes_are_swept() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(clock.clone());
        for i in 0..100 {
            let key = CodeKey::of(&format!("code-{i}"));
            CodeStore::issue(&store, key, record(&clock, Duration::from_secs(600)))
                .await
                .unwrap();
        }
        assert_eq!(store.code_count(), 100);
        clock.advance(Duration::from_secs(601));
        // Each call sweeps a bounded batch: two calls clear 100 codes.
        CodeStore::issue(
            &store,
            CodeKey::of("fresh"),
            record(&clock, Duration::from_secs(600)),
        )
        .await
        .unwrap();
        assert_eq!(store.code_count(), 100 - SWEEP_BATCH + 1);
        let claim = Claim::new(Duration::from_secs(1)).unwrap();
        let _ = CodeStore::claim(&store, &CodeKey::of("nothing"), &claim)
            .await
            .unwrap();
        assert_eq!(store.code_count(), 1);
    }

    #[tokio::test]
    async fn a_claim_counts_as_a_rotation_in_flight_until_the_instant_it_lapses() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(clock.clone());
        let key = CodeKey::of("token");
        RefreshStore::issue(&store, key, refresh_record(&clock, "f"))
            .await
            .unwrap();
        let claim = Claim::new(Duration::from_secs(30)).unwrap();
        let taken = RefreshStore::claim(&store, &key, &claim).await.unwrap();
        assert!(matches!(taken, Redemption::Claimed(_)));
        let window = ReuseWindow {
            within: Duration::from_secs(10),
            limit: 5,
        };
        clock.advance(Duration::from_secs(29));
        let reused = store.reuse(&key, window).await.unwrap();
        assert!(matches!(reused, Reuse::Granted(_)));
        // At the claim's end it has lapsed, as `claim` sees it: the token
        // is no longer being rotated.
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.reuse(&key, window).await.unwrap(), Reuse::NotRotated);
    }

    fn refresh_record(clock: &ManualClock, family: &str) -> RefreshRecord {
        RefreshRecord {
            client_id: "c".into(),
            subject: "u".into(),
            scopes: vec![],
            family: family.into(),
            issued_at: clock.now(),
            expires_at: clock.now() + Duration::from_secs(3600),
            dpop_jkt: None,
        }
    }

    fn device_record(clock: &ManualClock, user_code: &str) -> DeviceRecord {
        DeviceRecord {
            client_id: "c".into(),
            scopes: vec![],
            user_code: user_code.into(),
            status: DeviceStatus::Pending,
            interval: 5,
            last_poll: None,
            issued_at: clock.now(),
            expires_at: clock.now() + Duration::from_secs(900),
        }
    }

    #[tokio::test]
    async fn clients_are_registered_replaced_and_removed() {
        let store = MemoryStore::new();
        assert_eq!(store.client_count(), 0);
        store.insert_client(Client::confidential("a").with_secret("s"));
        store.insert_client(Client::public("b"));
        store.insert_client(Client::confidential("b").with_secret("t"));
        assert_eq!(store.client_count(), 2);
        let b = store.client("b").await.unwrap().expect("b is registered");
        assert!(
            !b.is_public(),
            "the second registration of b replaced the first"
        );
        assert!(store.remove_client("a"));
        assert!(!store.remove_client("a"), "a was removed already");
        assert!(!store.remove_client("nobody"));
        assert_eq!(store.client_count(), 1);
        assert!(store.client("a").await.unwrap().is_none());
        assert_eq!(format!("{store:?}"), "MemoryStore { clients: 1, codes: 0 }");
    }

    #[test]
    fn a_clients_file_is_loaded_whole_or_not_at_all() {
        let dir = std::env::temp_dir().join(format!("tokengate-memory-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("clients.json");
        std::fs::write(
            &good,
            r#"{"clients":[{"client_id":"cli","public":true,
                "redirect_uris":["http://127.0.0.1/cb"],"redirect_policy":"loopback"},
                {"client_id":"svc","public":true}]}"#,
        )
        .unwrap();
        let store = MemoryStore::new();
        assert_eq!(store.load_clients_file(&good).unwrap(), 2);
        assert_eq!(store.client_count(), 2);
        let bad = dir.join("bad.json");
        std::fs::write(
            &bad,
            r#"{"clients":[{"client_id":"x","public":true},{"public":true}]}"#,
        )
        .unwrap();
        let other = MemoryStore::new();
        assert!(other.load_clients_file(&bad).is_err());
        assert!(other.load_clients_file(dir.join("missing.json")).is_err());
        assert_eq!(other.client_count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn the_counts_follow_what_is_held() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(clock.clone());
        assert_eq!(
            (
                store.code_count(),
                store.refresh_token_count(),
                store.device_count()
            ),
            (0, 0, 0)
        );
        for i in 0..2 {
            let key = CodeKey::of(&format!("code-{i}"));
            CodeStore::issue(&store, key, record(&clock, Duration::from_secs(60)))
                .await
                .unwrap();
            let key = CodeKey::of(&format!("refresh-{i}"));
            RefreshStore::issue(&store, key, refresh_record(&clock, "f"))
                .await
                .unwrap();
            let key = CodeKey::of(&format!("device-{i}"));
            let user_code = format!("BCDF-GHJ{i}");
            assert!(
                DeviceStore::issue(&store, key, device_record(&clock, &user_code))
                    .await
                    .unwrap()
            );
        }
        assert_eq!(
            (
                store.code_count(),
                store.refresh_token_count(),
                store.device_count()
            ),
            (2, 2, 2)
        );
        assert_eq!(format!("{store:?}"), "MemoryStore { clients: 0, codes: 2 }");
    }

    #[tokio::test]
    async fn a_claim_lapses_after_exactly_its_ttl() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(clock.clone());
        let key = CodeKey::of("code");
        CodeStore::issue(&store, key, record(&clock, Duration::from_secs(600)))
            .await
            .unwrap();
        let claim = |ttl| Claim::new(Duration::from_secs(ttl)).unwrap();
        let (first, second) = (claim(30), claim(30));
        let claimed = CodeStore::claim(&store, &key, &first).await.unwrap();
        assert!(matches!(claimed, Redemption::Claimed(_)));
        clock.advance(Duration::from_millis(29_999));
        let busy = CodeStore::claim(&store, &key, &second).await.unwrap();
        assert!(matches!(busy, Redemption::Busy), "held until the ttl is up");
        clock.advance(Duration::from_millis(1));
        let taken = CodeStore::claim(&store, &key, &second).await.unwrap();
        assert!(matches!(taken, Redemption::Claimed(_)), "lapsed at the ttl");
        // The first holder lost it: its confirmation uses nothing up.
        assert!(!CodeStore::confirm(&store, &key, &first).await.unwrap());
        assert!(CodeStore::confirm(&store, &key, &second).await.unwrap());
        let used = CodeStore::claim(&store, &key, &claim(30)).await.unwrap();
        assert!(matches!(used, Redemption::Used(_)));
    }

    #[tokio::test]
    async fn an_expired_refresh_token_is_unknown() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(clock.clone());
        let key = CodeKey::of("refresh");
        RefreshStore::issue(&store, key, refresh_record(&clock, "f"))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(3599));
        assert!(matches!(
            RefreshStore::find(&store, &key).await.unwrap(),
            Lookup::Unused(_)
        ));
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            RefreshStore::find(&store, &key).await.unwrap(),
            Lookup::Unknown
        );
    }

    #[tokio::test]
    async fn a_revocation_lasts_as_long_as_its_family_could_then_is_forgotten() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(clock.clone());
        // One member, valid for an hour; its family revoked at once.
        RefreshStore::issue(&store, CodeKey::of("r1"), refresh_record(&clock, "f"))
            .await
            .unwrap();
        RefreshStore::revoke_family(&store, "f").await.unwrap();
        clock.advance(Duration::from_secs(3599));
        let late = refresh_record(&clock, "f");
        assert!(
            RefreshStore::issue(&store, CodeKey::of("r2"), late)
                .await
                .is_err(),
            "no new member while a member could still be valid"
        );
        // Past the last member's expiry (and the sweep's cadence), the
        // revocation and the expired member are gone: memory stays bounded.
        clock.advance(Duration::from_secs(1) + SWEEP_EVERY + Duration::from_secs(1));
        RefreshStore::issue(&store, CodeKey::of("r3"), refresh_record(&clock, "f"))
            .await
            .expect("the revocation was forgotten");
        assert_eq!(store.refresh_token_count(), 1);
    }

    // Every logout at the revocation endpoint revokes a family: that must
    // cost the family's tokens, not every token of every client (a scan
    // under the lock that every refresh waits on). 100,000 other tokens
    // make a scan per revocation take seconds here; the family's own keys,
    // milliseconds.
    #[tokio::test]
    async fn revoking_a_family_does_not_scan_every_token() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(clock.clone());
        for i in 0..100_000 {
            let key = CodeKey::of(&format!("other-{i}"));
            RefreshStore::issue(&store, key, refresh_record(&clock, &format!("o{i}")))
                .await
                .unwrap();
        }
        let revoked: Vec<(CodeKey, String)> = (0..1_000)
            .map(|i| (CodeKey::of(&format!("mine-{i}")), format!("m{i}")))
            .collect();
        for (key, family) in &revoked {
            RefreshStore::issue(&store, *key, refresh_record(&clock, family))
                .await
                .unwrap();
        }
        let started = std::time::Instant::now();
        for (_, family) in &revoked {
            RefreshStore::revoke_family(&store, family).await.unwrap();
        }
        let took = started.elapsed();
        assert!(took < Duration::from_millis(250), "{took:?}");
        for (key, _) in &revoked {
            assert_eq!(
                RefreshStore::find(&store, key).await.unwrap(),
                Lookup::Unknown
            );
        }
        assert_eq!(store.refresh_token_count(), 100_000);
    }

    #[tokio::test]
    async fn a_familys_index_forgets_its_expired_tokens() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(clock.clone());
        for i in 0..10 {
            let key = CodeKey::of(&format!("r{i}"));
            RefreshStore::issue(&store, key, refresh_record(&clock, "f"))
                .await
                .unwrap();
        }
        // A second past their expiry (the queue rounds it up to the
        // millisecond): swept by the next calls, a batch at a time.
        clock.advance(Duration::from_secs(3601));
        for i in 0..20 {
            let key = CodeKey::of(&format!("later-{i}"));
            RefreshStore::issue(&store, key, refresh_record(&clock, "g"))
                .await
                .unwrap();
        }
        let refresh = lock(&store.inner.refresh);
        assert_eq!(refresh.tokens.len(), 20);
        assert!(
            !refresh.families.contains_key("f"),
            "an expired family kept"
        );
        assert_eq!(refresh.families["g"].len(), 20);
    }

    #[tokio::test]
    async fn a_family_revoked_before_its_first_member_stays_revoked() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(clock.clone());
        // A replayed code's family, revoked before the application issued.
        RefreshStore::revoke_family(&store, "f").await.unwrap();
        // Past the sweep's cadence: the revocation must not be swept yet.
        clock.advance(SWEEP_EVERY + Duration::from_secs(1));
        assert!(
            RefreshStore::issue(&store, CodeKey::of("r1"), refresh_record(&clock, "f"))
                .await
                .is_err(),
            "a late member of a family revoked while empty"
        );
        clock.advance(REVOCATION_FLOOR + SWEEP_EVERY);
        RefreshStore::issue(&store, CodeKey::of("r2"), refresh_record(&clock, "f"))
            .await
            .expect("the revocation was forgotten after its floor");
    }

    #[tokio::test]
    async fn device_codes_are_forgotten_after_their_tombstone() {
        // Whole milliseconds: the expiry queue rounds a sub-millisecond
        // expiry up.
        let clock = ManualClock::at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let store = MemoryStore::with_clock(clock.clone());
        let t0 = clock.now();
        let (old, new, other) = (
            CodeKey::of("d-old"),
            CodeKey::of("d-new"),
            CodeKey::of("d-x"),
        );
        assert!(
            DeviceStore::issue(&store, old, device_record(&clock, "BCDF-GHJK"))
                .await
                .unwrap()
        );
        // Expired: the user code is free for a new authorization, while the
        // old device code still hears `expired_token`.
        clock.advance(Duration::from_secs(900));
        assert!(
            DeviceStore::issue(&store, new, device_record(&clock, "BCDF-GHJK"))
                .await
                .unwrap()
        );
        assert_eq!(
            DeviceStore::poll(&store, &old, "c", clock.now())
                .await
                .unwrap(),
            PollOutcome::Expired
        );
        // The old code's tombstone ends: the next call forgets it, and
        // only it.
        clock.advance(DEVICE_TOMBSTONE);
        assert!(
            DeviceStore::issue(&store, other, device_record(&clock, "LMNP-QRST"))
                .await
                .unwrap()
        );
        assert_eq!(store.device_count(), 2);
        let now = clock.now();
        assert_eq!(
            DeviceStore::poll(&store, &old, "c", now).await.unwrap(),
            PollOutcome::Unknown
        );
        // The user code now names the new authorization, still.
        let found = DeviceStore::find(&store, "BCDF-GHJK", now).await.unwrap();
        assert_eq!(
            found.map(|record| record.issued_at),
            Some(t0 + Duration::from_secs(900))
        );
        let approve = DeviceDecision::Approve {
            subject: "u".into(),
        };
        assert!(
            DeviceStore::decide(&store, "BCDF-GHJK", approve, now)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_key_cannot_be_issued_twice() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(clock.clone());
        let key = CodeKey::of("x");
        CodeStore::issue(&store, key, record(&clock, Duration::from_secs(60)))
            .await
            .unwrap();
        assert!(
            CodeStore::issue(&store, key, record(&clock, Duration::from_secs(60)))
                .await
                .is_err()
        );
    }
}
