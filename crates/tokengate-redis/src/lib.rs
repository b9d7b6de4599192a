//! A Redis store for [`tokengate`]: clients, codes, refresh tokens and device
//! authorizations on a Redis server, or a Redis Cluster, shared by every
//! gate process.
//!
//! Built on `tokengate`'s public store contract ([`tokengate::store`])
//! alone. Every value is keyed by the SHA-256 of the secret it stands for,
//! so a dump of Redis reveals no live code or token. Lifetimes are Redis
//! expirations. Each claim, confirmation and release is one Lua script: one
//! round trip, atomic on the server. A device poll reads the record, applies
//! the core's own rules ([`DeviceRecord::poll`]) and writes the result back
//! with a compare-and-set script, retried when another poll got there first:
//! the rules live in one place, the core.
//!
//! As a [`ReplayStore`], it remembers the one-time values (`jti`) of signed
//! client assertions and DPoP proofs, and the DPoP nonces, for every gate
//! process on the server: each call is one native `SET`, one round trip,
//! atomic on the server, and lifetimes are Redis expirations. Nonces need
//! Redis 7.0 or later (`SET .. NX GET`); an older server answers an error,
//! and the gate answers `500` (fail closed).
//!
//! # Redis Cluster
//!
//! `redis+cluster://HOST:PORT,HOST:PORT,...` names a cluster by some of its
//! nodes. Every script touches one hash slot: a code, a refresh token and a
//! device record are each one key (a claim lives in its value's hash), and a
//! refresh family's token list and revocation marker share the family's
//! hash tag (`{family}`). Values are spread over the slots by their hashes.
//! What a single server does in one script and a cluster cannot (a key
//! looked up by another secret lives in that secret's slot) takes two steps,
//! ordered so that a step lost to a failure or a race fails closed:
//!
//! - issuing a refresh token joins its family first (refused once the
//!   family is revoked), then stores the token;
//! - revoking a family marks it first (no token joins it again), then marks
//!   each of its tokens revoked on its own slot (a token not stored yet is
//!   marked too, so its issuing fails);
//! - a device authorization takes its user code first, then stores the
//!   record; a redeemed one frees its user code after.
//!
//! Redis replicates asynchronously. On a cluster, the writes a failover must
//! not lose (a confirmed claim, a reuse, a revocation, an issued code or
//! token, a device's redemption, a one-time value) wait until the master's
//! replicas have them (`WAIT`, in the same round trip) before the gate
//! answers; see [`RedisStore::wait_for_replicas`]. A call that cannot be
//! answered within the store's timeout fails closed: the gate answers
//! `500 server_error`, and a code whose claim was not confirmed can be
//! redeemed again, once, after the claim lapses.
//!
//! ```no_run
//! # async fn run() -> Result<(), tokengate::StoreError> {
//! use tokengate::TokenGateLayer;
//! use tokengate_redis::RedisStore;
//!
//! let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
//! let layer = TokenGateLayer::new(store);
//! # Ok(()) }
//! ```

mod connection;
mod scripts;

use std::{
    fmt,
    future::Future,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use futures_util::future::try_join_all;
use redis::{AsyncCommands, FromRedisValue, Value};

use tokengate::{
    Client,
    authorize::CodeRecord,
    device::{DEVICE_TOMBSTONE, DeviceDecision, DeviceRecord, DeviceStatus, PollOutcome},
    refresh::RefreshRecord,
    store::{
        Claim, ClientStore, CodeKey, CodeStore, Counter, DeviceStore, LockoutStore, Lookup,
        Redemption, RefreshStore, ReplayStore, Reuse, ReuseWindow, StoreError,
    },
};

use connection::{Call, Connection, Connector, Replicas};
use scripts::SCRIPTS;

/// The default bound on every call; past it the gate answers
/// `500 server_error`.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// How many replicas a write on a Redis Cluster waits for by default (see
/// [`RedisStore::wait_for_replicas`]); none on a single server.
pub const DEFAULT_CLUSTER_REPLICAS: u32 = 1;

/// How long a write waits for a connected replica's acknowledgement
/// before it fails (closed). A healthy replica on the same network answers
/// in well under a millisecond. `WAIT` holds the gate process's connection
/// to that master meanwhile, so the calls queued behind it wait too: the
/// bound is short, so that a replica that died costs a master's queue
/// little before the store learns it is gone.
pub const REPLICA_ACK_WITHIN: Duration = Duration::from_millis(100);

/// Clients, codes, refresh tokens and device codes on Redis.
///
/// The connection is made lazily and re-made by itself after an outage; each
/// call is bounded by a timeout ([`DEFAULT_STORE_TIMEOUT`]), after which the
/// gate answers `500 server_error`.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Replaced after a timeout: a connection that went silent (a dead
    /// host, lost NAT state) is not one either client ever drops by
    /// itself.
    connection: RwLock<Connection>,
    connector: Connector,
    prefix: String,
    timeout: Duration,
    replicas: Replicas,
    /// When the connection was last re-made (ms since `started`).
    reconnected: AtomicU64,
    started: Instant,
}

/// What a write waits for: replicas ([`RedisStore::wait_for_replicas`]) or
/// not (a claim, a release, a lockout count, a nonce: losing one to a
/// failover only makes a request try again, or counts a failure less).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    Replicated,
    Local,
}

impl RedisStore {
    /// A store on the Redis server or cluster at `url`, with the default key
    /// prefix (`tokengate`) and timeout. `url` is `redis://HOST:PORT` (or
    /// `rediss://`, `unix://`), or `redis+cluster://HOST:PORT,HOST:PORT,...`
    /// for a Redis Cluster given by some of its nodes. Fails only for a
    /// malformed URL: the server may be down now and come up later.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, "tokengate", DEFAULT_STORE_TIMEOUT).await
    }

    /// A store with its own key prefix (several gates, or tests, on one
    /// server) and per-call timeout. The prefix may not hold `{` or `}`: on
    /// a cluster, those would pin every key to one hash slot.
    pub async fn connect_with(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        if prefix.contains(['{', '}']) {
            return Err(StoreError::new(
                "a Redis key prefix may not hold '{' or '}' (hash tags)",
            ));
        }
        let connector = Connector::parse(url, timeout)?;
        let connection = connector.connect()?;
        let replicas = if connector.is_cluster() {
            DEFAULT_CLUSTER_REPLICAS
        } else {
            0
        };
        Ok(Self {
            inner: Arc::new(Inner {
                connection: RwLock::new(connection),
                connector,
                prefix: prefix.to_owned(),
                timeout,
                replicas: Replicas::new(replicas, REPLICA_ACK_WITHIN.min(timeout / 2)),
                reconnected: AtomicU64::new(0),
                started: Instant::now(),
            }),
        })
    }

    /// How many replicas of a master must have a write that a failover must
    /// not lose before the gate answers: [`DEFAULT_CLUSTER_REPLICAS`] on a
    /// cluster, none on a single server (set it when a single server has
    /// replicas that Sentinel may promote).
    ///
    /// A master is never waited on for more replicas than it has connected
    /// at the time: one whose replica died goes on serving, since no older
    /// copy of its slots is left to be promoted. A replica that is connected
    /// but does not acknowledge within [`REPLICA_ACK_WITHIN`] fails the
    /// call (the gate answers `500`): the write may be lost by a failover,
    /// so nothing is answered on it. `0` answers as soon as the master has
    /// a write, at the risk that a failover right after loses it: a code
    /// could then be redeemed twice.
    #[must_use]
    pub fn wait_for_replicas(self, replicas: u32) -> Self {
        self.inner.replicas.set(replicas);
        self
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}:{kind}:{id}", self.inner.prefix)
    }

    /// A key in the hash slot of `tag`: a refresh family's keys.
    fn tagged_key(&self, kind: &str, tag: &str) -> String {
        format!("{}:{kind}:{{{tag}}}", self.inner.prefix)
    }

    /// Runs `op` on a connection, bounded by the timeout.
    async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self
            .inner
            .connection
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match tokio::time::timeout(self.inner.timeout, op(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                // The connection's own response timeout (set to the same
                // bound) often fires first; the client does not drop the
                // connection for it, so without this a hung connection
                // would fail every later call for good.
                if error.is_timeout() || self.inner.connector.is_cluster() {
                    self.reconnect();
                }
                Err(StoreError::with_source(
                    format!("redis: {what} failed"),
                    error,
                ))
            }
            Err(_) => {
                self.reconnect();
                Err(StoreError::new(format!("redis: {what} timed out")))
            }
        }
    }

    /// Runs a script, bounded by the timeout; a [`Durability::Replicated`]
    /// write waits for the master's replicas in the same round trip.
    async fn script<T: FromRedisValue>(
        &self,
        what: &'static str,
        call: Call,
        durability: Durability,
    ) -> Result<T, StoreError> {
        let replicas = (durability == Durability::Replicated).then_some(&self.inner.replicas);
        let value = self
            .run(what, |mut c| async move {
                connection::invoke(&mut c, &call, replicas).await
            })
            .await?;
        redis::from_redis_value(value)
            .map_err(|e| StoreError::with_source("unexpected Redis reply", e))
    }

    /// Drops the connection after a timeout: the next call makes a new one.
    /// On a cluster, after any failed call too, at most twice a second: a
    /// fresh client reads the cluster's layout anew from the seed nodes,
    /// which after a failover is the quickest way to the new master.
    fn reconnect(&self) {
        if self.inner.connector.is_cluster() {
            let now = u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let last = self.inner.reconnected.load(Ordering::Relaxed);
            if now < last.saturating_add(500)
                || self
                    .inner
                    .reconnected
                    .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                return;
            }
        }
        if let Ok(fresh) = self.inner.connector.connect() {
            *self
                .inner
                .connection
                .write()
                .unwrap_or_else(PoisonError::into_inner) = fresh;
        }
    }

    /// Registers `client`, replacing one with the same id.
    pub async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        let json = serde_json::to_string(client)
            .map_err(|e| StoreError::with_source("cannot encode a client", e))?;
        let key = self.key("client", client.client_id());
        self.run("insert client", |mut c| async move {
            c.set::<_, _, ()>(key, json).await
        })
        .await
    }

    /// Removes the client `client_id`.
    pub async fn remove_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let key = self.key("client", client_id);
        self.run("remove client", |mut c| async move {
            c.del::<_, u64>(key).await
        })
        .await
        .map(|n| n > 0)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("cluster", &self.inner.connector.is_cluster())
            .field("wait_for_replicas", &self.inner.replicas.wanted())
            .finish_non_exhaustive()
    }
}

/// Milliseconds from `now` until `until`, at least 1 (Redis refuses 0).
fn ttl(now: SystemTime, until: SystemTime) -> i64 {
    until.duration_since(now).map_or(1, |d| {
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::with_source("cannot encode a record", e))
}

fn decode<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::with_source("cannot decode a stored record", e))
}

/// A script's reply of a tag and, maybe, a record: `{'claimed', json}`.
fn tagged_reply(value: Value) -> Result<Option<(String, Option<String>)>, StoreError> {
    if value == Value::Nil {
        return Ok(None);
    }
    let mut reply: Vec<String> = redis::from_redis_value(value)
        .map_err(|e| StoreError::with_source("unexpected Redis reply", e))?;
    let json = if reply.len() == 2 { reply.pop() } else { None };
    let tag = reply
        .pop()
        .ok_or_else(|| StoreError::new("unexpected empty Redis reply"))?;
    Ok(Some((tag, json)))
}

impl RedisStore {
    /// Claims a code or refresh token (two-phase redemption).
    async fn claim_value<T: serde::de::DeserializeOwned>(
        &self,
        key: String,
        claim: &Claim,
    ) -> Result<Redemption<T>, StoreError> {
        let call = Call::new(&SCRIPTS.claim)
            .key(key)
            .arg(claim.id_hex())
            .arg(millis_of(claim.ttl()));
        let value: Value = self.script("claim", call, Durability::Local).await?;
        let Some((tag, json)) = tagged_reply(value)? else {
            return Ok(Redemption::Unknown);
        };
        Ok(match (tag.as_str(), json) {
            ("claimed", Some(json)) => Redemption::Claimed(decode(&json)?),
            ("used", Some(json)) => Redemption::Used(decode(&json)?),
            ("busy", None) => Redemption::Busy,
            _ => return Err(StoreError::new("unexpected Redis reply to a claim")),
        })
    }

    /// Confirms a claim (the value is used up: replicated before the gate
    /// answers), or releases it.
    async fn end_claim(
        &self,
        key: String,
        claim: &Claim,
        confirm: bool,
    ) -> Result<bool, StoreError> {
        let (script, what, durability) = if confirm {
            (&SCRIPTS.confirm, "confirm claim", Durability::Replicated)
        } else {
            (&SCRIPTS.release, "release claim", Durability::Local)
        };
        let call = Call::new(script).key(key).arg(claim.id_hex());
        let settled: i64 = self.script(what, call, durability).await?;
        Ok(settled == 1)
    }
}

fn millis_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

impl ClientStore for RedisStore {
    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        let key = self.key("client", client_id);
        let json: Option<String> = self
            .run("client look-up", |mut c| async move { c.get(key).await })
            .await?;
        json.map(|json| decode::<Client>(&json).map(Arc::new))
            .transpose()
    }
}

impl CodeStore for RedisStore {
    async fn issue(&self, key: CodeKey, record: CodeRecord) -> Result<(), StoreError> {
        let call = Call::new(&SCRIPTS.issue)
            .key(self.key("code", &key.to_hex()))
            .arg(encode(&record)?)
            .arg(ttl(record.issued_at, record.expires_at));
        let stored: i64 = self
            .script("issue code", call, Durability::Replicated)
            .await?;
        if stored == 1 {
            Ok(())
        } else {
            Err(StoreError::new("a code with this key already exists"))
        }
    }

    async fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> Result<Redemption<Arc<CodeRecord>>, StoreError> {
        self.claim_value::<CodeRecord>(self.key("code", &key.to_hex()), claim)
            .await
            .map(|redemption| redemption.map(Arc::new))
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        self.end_claim(self.key("code", &key.to_hex()), claim, true)
            .await
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        self.end_claim(self.key("code", &key.to_hex()), claim, false)
            .await
            .map(drop)
    }
}

/// How long a family's revocation marker lives at least, and a token of it
/// marked before it was stored: past any issuing still in flight.
const REVOKED_AT_LEAST: Duration = Duration::from_secs(3600);

impl RefreshStore for RedisStore {
    async fn issue(&self, key: CodeKey, record: RefreshRecord) -> Result<(), StoreError> {
        let json = encode(&record)?;
        let ttl = ttl(record.issued_at, record.expires_at);
        let hex = key.to_hex();
        // Joins the family first: once it is revoked, nothing joins, and a
        // revocation between the two steps marks this token before it is
        // stored, so the second step refuses it.
        let join = Call::new(&SCRIPTS.join_family)
            .key(self.tagged_key("family", &record.family))
            .key(self.tagged_key("revoked", &record.family))
            .arg(&hex)
            .arg(ttl);
        let joined: i64 = self
            .script("join refresh family", join, Durability::Replicated)
            .await?;
        if joined == -1 {
            return Err(StoreError::new("the refresh token family was revoked"));
        }
        let store = Call::new(&SCRIPTS.issue_refresh)
            .key(self.key("refresh", &hex))
            .arg(json)
            .arg(ttl)
            .arg(&record.family);
        let stored: i64 = self
            .script("issue refresh token", store, Durability::Replicated)
            .await?;
        match stored {
            1 => Ok(()),
            -1 => Err(StoreError::new("the refresh token family was revoked")),
            _ => Err(StoreError::new(
                "a refresh token with this key already exists",
            )),
        }
    }

    async fn find(&self, key: &CodeKey) -> Result<Lookup<RefreshRecord>, StoreError> {
        let call = Call::new(&SCRIPTS.peek_refresh).key(self.key("refresh", &key.to_hex()));
        let value: Value = self
            .script("find refresh token", call, Durability::Local)
            .await?;
        let (json, uses): (String, i64) = match value {
            Value::Nil => return Ok(Lookup::Unknown),
            other => redis::from_redis_value(other)
                .map_err(|e| StoreError::with_source("unexpected Redis reply", e))?,
        };
        Ok(Lookup::from_uses(decode(&json)?, uses))
    }

    async fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> Result<Redemption<RefreshRecord>, StoreError> {
        self.claim_value(self.key("refresh", &key.to_hex()), claim)
            .await
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        self.end_claim(self.key("refresh", &key.to_hex()), claim, true)
            .await
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        self.end_claim(self.key("refresh", &key.to_hex()), claim, false)
            .await
            .map(drop)
    }

    async fn reuse(
        &self,
        key: &CodeKey,
        window: ReuseWindow,
    ) -> Result<Reuse<RefreshRecord>, StoreError> {
        let call = Call::new(&SCRIPTS.reuse)
            .key(self.key("refresh", &key.to_hex()))
            .arg(millis_of(window.within))
            .arg(window.limit);
        let value: Value = self
            .script("reuse refresh token", call, Durability::Replicated)
            .await?;
        let Some((tag, json)) = tagged_reply(value)? else {
            return Ok(Reuse::Unknown);
        };
        Ok(match (tag.as_str(), json) {
            ("granted", Some(json)) => Reuse::Granted(decode(&json)?),
            ("refused", Some(json)) => Reuse::Refused(decode(&json)?),
            ("free", None) => Reuse::NotRotated,
            ("held", None) => Reuse::Held,
            _ => return Err(StoreError::new("unexpected Redis reply to a reuse")),
        })
    }

    async fn revoke_family(&self, family: &str) -> Result<(), StoreError> {
        let call = Call::new(&SCRIPTS.revoke_family)
            .key(self.tagged_key("family", family))
            .key(self.tagged_key("revoked", family))
            .arg(millis_of(REVOKED_AT_LEAST));
        let (ttl, members): (i64, Vec<String>) = self
            .script("revoke family", call, Durability::Replicated)
            .await?;
        // Each token on its own slot, all at once. A failure leaves the
        // call failed (the gate answers `500`) and some tokens unmarked:
        // the marker already stops the family from growing, so none of
        // them can be rotated into a new token, and the next revocation
        // marks them.
        try_join_all(members.iter().map(|hex| {
            let call = Call::new(&SCRIPTS.mark_revoked)
                .key(self.key("refresh", hex))
                .arg(ttl);
            self.script::<i64>("revoke refresh token", call, Durability::Replicated)
        }))
        .await
        .map(drop)
    }
}

impl RedisStore {
    /// The device key's JSON record, if any.
    async fn device_record(&self, device_key: &str) -> Result<Option<String>, StoreError> {
        let device_key = device_key.to_owned();
        self.run("read device code", |mut c| async move {
            c.get(device_key).await
        })
        .await
    }

    /// Writes `next` over `read` (or deletes the record and frees its user
    /// code when `next` is `None`), if nobody changed it meanwhile.
    async fn swap_device(
        &self,
        device_key: &str,
        record: &DeviceRecord,
        read: String,
        next: Option<&DeviceRecord>,
    ) -> Result<bool, StoreError> {
        let redeemed = next.is_none();
        let call = Call::new(&SCRIPTS.swap_device)
            .key(device_key)
            .arg(read)
            .arg(next.map(encode).transpose()?.unwrap_or_default());
        let swapped: i64 = self
            .script("write device code", call, Durability::Replicated)
            .await?;
        if swapped == 1 && redeemed {
            // The user code is free again, unless it names another device
            // by now. On its own slot, after the redemption: if this step
            // fails, the redemption stands, and the user code stays taken
            // (and useless: it finds no record) until it expires.
            let hex = device_key.rsplit(':').next().unwrap_or_default();
            let free = Call::new(&SCRIPTS.delete_if)
                .key(self.key("user", &record.user_code))
                .arg(hex);
            let _freed: Result<i64, _> =
                self.script("free user code", free, Durability::Local).await;
        }
        Ok(swapped == 1)
    }
}

impl DeviceStore for RedisStore {
    async fn issue(&self, key: CodeKey, record: DeviceRecord) -> Result<bool, StoreError> {
        let json = encode(&record)?;
        let ttl = ttl(record.issued_at, record.expires_at);
        let hex = key.to_hex();
        let device_key = self.key("device", &hex);
        let user_key = self.key("user", &record.user_code);
        let tombstone = millis_of(DEVICE_TOMBSTONE);
        // The user code first, on its own slot: taken, it refuses this
        // authorization (the gate draws another user code). The record
        // outlives the code by the tombstone, so late polls still hear
        // `expired_token`; the user code is freed at expiry.
        let take = Call::new(&SCRIPTS.set_new).key(user_key).arg(&hex).arg(ttl);
        let taken: i64 = self
            .script("take user code", take, Durability::Replicated)
            .await?;
        if taken != 1 {
            return Ok(false);
        }
        let store = Call::new(&SCRIPTS.set_new)
            .key(device_key)
            .arg(json)
            .arg(ttl.saturating_add(tombstone));
        let stored: i64 = self
            .script("issue device code", store, Durability::Replicated)
            .await?;
        Ok(stored == 1)
    }

    async fn poll(
        &self,
        key: &CodeKey,
        client_id: &str,
        now: SystemTime,
    ) -> Result<PollOutcome, StoreError> {
        let device_key = self.key("device", &key.to_hex());
        // Polls of one code race only when its device polls too fast: each
        // loser reads the winner's record and writes its own slow_down. Try
        // again until one write lands, within the store's bound on a call
        // (the device code is the device's secret, so nobody else can make
        // it race).
        let polled = async {
            loop {
                let Some(read) = self.device_record(&device_key).await? else {
                    return Ok(PollOutcome::Unknown);
                };
                let mut record: DeviceRecord = decode(&read)?;
                let before = record.clone();
                let outcome = record.poll(client_id, now);
                let next = match &outcome {
                    // Redeemed: gone, in the same step.
                    PollOutcome::Approved(_) => None,
                    // Nothing changed (another client, or expired: the
                    // record stays for its tombstone).
                    _ if record == before => return Ok(outcome),
                    _ => Some(&record),
                };
                if self.swap_device(&device_key, &before, read, next).await? {
                    return Ok(outcome);
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(self.inner.timeout, polled)
            .await
            .unwrap_or_else(|_| Err(StoreError::new("redis: poll device code timed out")))
    }

    async fn find(
        &self,
        user_code: &str,
        now: SystemTime,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let user_key = self.key("user", user_code);
        let device: Option<String> = self
            .run(
                "find user code",
                |mut c| async move { c.get(user_key).await },
            )
            .await?;
        let Some(device) = device else {
            return Ok(None);
        };
        let Some(json) = self.device_record(&self.key("device", &device)).await? else {
            return Ok(None);
        };
        let record: DeviceRecord = decode(&json)?;
        let live = record.status == DeviceStatus::Pending && now < record.expires_at;
        Ok(live.then_some(record))
    }

    async fn decide(
        &self,
        user_code: &str,
        decision: DeviceDecision,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let user_key = self.key("user", user_code);
        // As in `poll`: the compare-and-set is tried again when a poll wrote
        // in between, within the store's bound on a call.
        let decided = async {
            loop {
                let user_key = user_key.clone();
                let device: Option<String> = self
                    .run(
                        "find user code",
                        |mut c| async move { c.get(user_key).await },
                    )
                    .await?;
                let Some(device) = device else {
                    return Ok(false);
                };
                let device_key = self.key("device", &device);
                let Some(read) = self.device_record(&device_key).await? else {
                    return Ok(false);
                };
                let mut record: DeviceRecord = decode(&read)?;
                let before = record.clone();
                if !record.decide(decision.clone(), now) {
                    return Ok(false);
                }
                if self
                    .swap_device(&device_key, &before, read, Some(&record))
                    .await?
                {
                    return Ok(true);
                }
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(self.inner.timeout, decided)
            .await
            .unwrap_or_else(|_| Err(StoreError::new("redis: decide user code timed out")))
    }
}

/// The lockout's and the user-code limits' counters, shared by every gate
/// process on this Redis: each check and each failure is one script, one
/// round trip, atomic on the server, and windows are Redis expirations
/// (Redis's clock, not the gate's). On a cluster, each counter is its own
/// key in its own slot (a client's, an address's): one script per counter,
/// all sent at once.
impl LockoutStore for RedisStore {
    async fn locked(
        &self,
        counters: &[Counter<'_>],
        _now: SystemTime,
    ) -> Result<Option<Duration>, StoreError> {
        let waits = try_join_all(self.per_slot(counters).into_iter().map(|group| {
            let call = group
                .iter()
                .fold(Call::new(&SCRIPTS.locked), |call, counter| {
                    call.key(self.key("lockout", &counter.key.name()))
                        .arg(counter.limit)
                });
            self.script::<u64>("lockout check", call, Durability::Local)
        }))
        .await?;
        let wait = waits.into_iter().max().unwrap_or(0);
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }

    async fn fail(&self, counters: &[Counter<'_>], _now: SystemTime) -> Result<(), StoreError> {
        try_join_all(self.per_slot(counters).into_iter().map(|group| {
            let call = group
                .iter()
                .fold(Call::new(&SCRIPTS.fail), |call, counter| {
                    let window = u64::try_from(counter.window.as_millis()).unwrap_or(u64::MAX);
                    call.key(self.key("lockout", &counter.key.name()))
                        .arg(window.max(1))
                });
            self.script::<()>("lockout count", call, Durability::Local)
        }))
        .await
        .map(drop)
    }
}

impl RedisStore {
    /// The counters as one group on a single server (one script), one group
    /// each on a cluster; no group for no counter.
    fn per_slot<'c, 'k>(&self, counters: &'c [Counter<'k>]) -> Vec<&'c [Counter<'k>]> {
        if counters.is_empty() {
            Vec::new()
        } else if self.inner.connector.is_cluster() {
            counters.chunks(1).collect()
        } else {
            vec![counters]
        }
    }
}

/// One-time values and DPoP nonces, shared by every gate process on this
/// Redis. Each call is one plain `SET` (no script: nothing to load, so the
/// first call after a restart costs one round trip too), atomic on the
/// server, and bounded by the store's timeout like every other call: a
/// timeout is a [`StoreError`], and the gate answers `500` (fail closed).
///
/// Lifetimes are Redis expirations of `until - now` milliseconds (at least
/// one), counted from when the server runs the command: a value is never
/// forgotten before its `until`, only possibly a little after.
impl ReplayStore for RedisStore {
    async fn first_use(
        &self,
        key: &CodeKey,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let key = self.key("replay", &key.to_hex());
        let ttl = ttl(now, until);
        // SET NX: of concurrent first uses, in any number of processes,
        // the server lets exactly one create the key (`OK`); the others
        // find it and get nil. The key expires by itself at `until`.
        // Replicated: a failover that lost it would let the value be
        // used once more.
        let call = Call::command("SET")
            .key(key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl);
        let reply: Value = self
            .script("record one-time value", call, Durability::Replicated)
            .await?;
        match reply {
            Value::Okay => Ok(true),
            Value::Nil => Ok(false),
            _ => Err(StoreError::new(
                "unexpected Redis reply to recording a one-time value",
            )),
        }
    }

    async fn nonce(
        &self,
        slot: u64,
        candidate: &str,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<String, StoreError> {
        let key = self.key("nonce", &slot.to_string());
        let ttl = ttl(now, until);
        // Get-or-set in one native command: `SET .. NX GET` stores the
        // candidate only if the slot has no nonce and answers the nonce it
        // found (nil when it stored ours), atomically. Chosen over a Lua
        // script doing the same: one plain command, no script to load (an
        // EVALSHA that misses costs a second round trip), and nothing for
        // the server to interpret. It needs Redis 7.0 (NX and GET together;
        // 6.2 refuses the pair), which then fails closed with an error.
        let found: Option<String> = self
            .run("DPoP nonce", |mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(candidate)
                    .arg("NX")
                    .arg("GET")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(found.unwrap_or_else(|| candidate.to_owned()))
    }
}
