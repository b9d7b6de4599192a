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
//! refresh family's keys (its list and its revocation marker) share the
//! family's hash tag (`{family}`). Values spread over the slots by their
//! hashes. What a single server does in one script and a cluster cannot,
//! since the keys are found by different secrets, takes two calls:
//!
//! - a refresh token's use (a look-up, a claim, a confirmation, a reuse)
//!   runs on the token's slot, then checks its family's revocation marker
//!   on the family's slot: a revoked family's tokens are unknown, and a
//!   confirmation that finds its family revoked is lost. Revoking a family
//!   stays one write, whatever its size;
//! - issuing a refresh token joins its family first (refused once it is
//!   revoked), then stores the token;
//! - a device authorization takes its user code first, then stores the
//!   record; a redeemed one frees its user code after.
//!
//! Redis replicates asynchronously. On a cluster, the writes a failover must
//! not lose (an issued code or token, a confirmed claim, a reuse, a
//! revocation, a device's redemption, a one-time value, a client) wait until
//! the master's replicas have them (`WAIT`, in the same round trip) before
//! the gate answers; see [`RedisStore::wait_for_replicas`]. A call that
//! cannot be answered within the store's timeout fails closed: the gate
//! answers `500 server_error`, and a code whose claim was not confirmed can
//! be redeemed again, once, after the claim lapses.
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
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use futures_util::future::try_join_all;
use redis::{FromRedisValue, Value};

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

/// How long a write waits for its replicas' acknowledgement before it
/// fails (closed). A healthy replica on the same network answers in well
/// under a millisecond; `WAIT` holds the connection meanwhile (the store
/// keeps one of its own for these writes), so the bound is short.
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
    /// itself. The first carries every call but the writes that wait for
    /// replicas, which have the second: a `WAIT` holds its connection, and
    /// a replica that stopped answering must not hold up claims, look-ups
    /// and lockout checks behind it.
    connections: [RwLock<Connection>; 2],
    connector: Connector,
    prefix: String,
    /// What [`RedisStore::revoked_prefix`] answers, made once: every
    /// refresh step sends it.
    revoked_prefix: String,
    timeout: Duration,
    replicas: AtomicU32,
    /// When the connections were last re-made (ms since `started`).
    reconnected: AtomicU64,
    /// Whether a background rebuild (a cluster's) is under way.
    rebuilding: AtomicBool,
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
    /// for a Redis Cluster given by some of its nodes (without TLS). Fails
    /// only for a malformed URL: the server may be down now and come up
    /// later.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, "tokengate", DEFAULT_STORE_TIMEOUT).await
    }

    /// A store with its own key prefix (several gates, or tests, on one
    /// server) and per-call timeout. On a cluster, the prefix may not hold
    /// `{` or `}`: those would pin every key to one hash slot.
    pub async fn connect_with(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let connector = Connector::parse(url, timeout)?;
        if connector.is_cluster() && prefix.contains(['{', '}']) {
            return Err(StoreError::new(
                "a Redis Cluster key prefix may not hold '{' or '}' (hash tags)",
            ));
        }
        let connections = [
            RwLock::new(connector.connect()?),
            RwLock::new(connector.connect()?),
        ];
        let replicas = if connector.is_cluster() {
            DEFAULT_CLUSTER_REPLICAS
        } else {
            0
        };
        let revoked_prefix = if connector.is_cluster() {
            String::new()
        } else {
            format!("{prefix}:revoked:")
        };
        Ok(Self {
            inner: Arc::new(Inner {
                connections,
                connector,
                prefix: prefix.to_owned(),
                revoked_prefix,
                timeout,
                replicas: AtomicU32::new(replicas),
                reconnected: AtomicU64::new(0),
                rebuilding: AtomicBool::new(false),
                started: Instant::now(),
            }),
        })
    }

    /// How many replicas of a master must have a write that a failover must
    /// not lose before the gate answers: [`DEFAULT_CLUSTER_REPLICAS`] on a
    /// cluster, none on a single server (set it when a single server has
    /// replicas that Sentinel may promote).
    ///
    /// Set it to the number of replicas each master has: Redis may promote
    /// any of them, the one that lags included. Fewer acknowledgements
    /// within [`REPLICA_ACK_WITHIN`] fail the call (the gate answers `500`),
    /// so a master that has lost a replica refuses these writes until the
    /// replica is back or replaced. `0` answers as soon as the master has a
    /// write, at the risk that a failover right after loses it: a code
    /// could then be redeemed twice.
    #[must_use]
    pub fn wait_for_replicas(self, replicas: u32) -> Self {
        self.inner.replicas.store(replicas, Ordering::Relaxed);
        self
    }

    fn is_cluster(&self) -> bool {
        self.inner.connector.is_cluster()
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}:{kind}:{id}", self.inner.prefix)
    }

    /// A refresh family's key: in its own hash slot on a cluster (its list
    /// and its marker together); as it always was on a single server.
    fn family_key(&self, kind: &str, family: &str) -> String {
        if self.is_cluster() {
            format!("{}:{kind}:{{{family}}}", self.inner.prefix)
        } else {
            self.key(kind, family)
        }
    }

    /// The prefix of the revocation markers a single server's scripts check
    /// themselves; on a cluster they cannot (another slot), and
    /// [`Self::family_revoked`] checks after them.
    fn revoked_prefix(&self) -> &str {
        &self.inner.revoked_prefix
    }

    fn replicas(&self, durability: Durability) -> Option<Replicas> {
        let count = self.inner.replicas.load(Ordering::Relaxed);
        (durability == Durability::Replicated && count > 0).then_some(Replicas {
            count,
            within: REPLICA_ACK_WITHIN.min(self.inner.timeout / 2),
        })
    }

    /// Runs `op` on a connection, bounded by the timeout.
    async fn run<T, F, Fut>(
        &self,
        what: &'static str,
        replicated: bool,
        op: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.inner.connections[usize::from(replicated)]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match tokio::time::timeout(self.inner.timeout, op(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                // The connection's own response timeout (set to the same
                // bound) often fires first; the client does not drop the
                // connection for it, so without this a hung connection
                // would fail every later call for good. On a cluster, any
                // failure of the connection or the layout (not a replica's
                // silence, nor an error a new connection cannot mend, such
                // as a full master's `OOM`): a fresh client reads the
                // layout anew, the quickest way to a new master.
                let broken = error.is_timeout()
                    || (self.is_cluster() && connection::is_connection_trouble(&error));
                if broken {
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

    /// Runs one call, bounded by the timeout; a [`Durability::Replicated`]
    /// write waits for the master's replicas in the same round trip.
    async fn call<T: FromRedisValue>(
        &self,
        what: &'static str,
        call: Call,
        durability: Durability,
    ) -> Result<T, StoreError> {
        let replicas = self.replicas(durability);
        let value = self
            .run(what, replicas.is_some(), |mut c| async move {
                connection::invoke(&mut c, &call, replicas).await
            })
            .await?;
        redis::from_redis_value(value)
            .map_err(|e| StoreError::with_source("unexpected Redis reply", e))
    }

    /// Drops the connections: the next call makes new ones.
    ///
    /// On a cluster, new clients are connected in the background and
    /// swapped in only once connected, at most one rebuild at a time and
    /// twice a second: a client connecting to a seed node that hangs
    /// (a host gone, a partition) would otherwise stall every call on it,
    /// each stall time out, and each timeout rebuild again, taking the
    /// healthy shards down with the hung one.
    fn reconnect(&self) {
        if !self.is_cluster() {
            for slot in &self.inner.connections {
                if let Ok(fresh) = self.inner.connector.connect() {
                    *slot.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                }
            }
            return;
        }
        let now = u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.inner.reconnected.load(Ordering::Relaxed);
        let due = now >= last.saturating_add(500)
            && self
                .inner
                .reconnected
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if !due || self.inner.rebuilding.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            for slot in &inner.connections {
                let connected =
                    tokio::time::timeout(inner.timeout, inner.connector.connect_now()).await;
                if let Ok(Ok(fresh)) = connected {
                    *slot.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                }
            }
            inner.rebuilding.store(false, Ordering::Release);
        });
    }

    /// Registers `client`, replacing one with the same id.
    pub async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        let json = serde_json::to_string(client)
            .map_err(|e| StoreError::with_source("cannot encode a client", e))?;
        let call = Call::command("SET")
            .key(self.key("client", client.client_id()))
            .arg(json);
        self.call::<()>("insert client", call, Durability::Replicated)
            .await
    }

    /// Removes the client `client_id`. Replicated: a client removed because
    /// it was compromised must not come back with a failover.
    pub async fn remove_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let call = Call::command("DEL").key(self.key("client", client_id));
        self.call::<u64>("remove client", call, Durability::Replicated)
            .await
            .map(|n| n > 0)
    }

    /// On a cluster, whether `family` was revoked (its marker, on its own
    /// slot); a single server's scripts check it themselves.
    async fn family_revoked(&self, family: &str) -> Result<bool, StoreError> {
        if !self.is_cluster() {
            return Ok(false);
        }
        let call = Call::command("EXISTS").key(self.family_key("revoked", family));
        self.call::<i64>("check family", call, Durability::Local)
            .await
            .map(|n| n > 0)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("cluster", &self.is_cluster())
            .field(
                "wait_for_replicas",
                &self.inner.replicas.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

/// Milliseconds from `now` until `until`, at least 1 (Redis refuses 0).
fn ttl(now: SystemTime, until: SystemTime) -> i64 {
    until.duration_since(now).map_or(1, |d| {
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
    })
}

fn millis_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
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
    /// Claims a code or refresh token (two-phase redemption): what the
    /// store answered, and the record (a busy value's too).
    async fn claim_value<T: serde::de::DeserializeOwned>(
        &self,
        key: String,
        revoked_prefix: &str,
        claim: &Claim,
    ) -> Result<(Redemption<T>, Option<T>), StoreError> {
        let call = Call::new(&SCRIPTS.claim)
            .key(key)
            .arg(revoked_prefix)
            .arg(claim.id_hex())
            .arg(millis_of(claim.ttl()));
        let value: Value = self.call("claim", call, Durability::Local).await?;
        let Some((tag, Some(json))) = tagged_reply(value)? else {
            return Ok((Redemption::Unknown, None));
        };
        Ok(match tag.as_str() {
            "claimed" => (Redemption::Claimed(decode(&json)?), None),
            "used" => (Redemption::Used(decode(&json)?), None),
            "busy" => (Redemption::Busy, Some(decode(&json)?)),
            _ => return Err(StoreError::new("unexpected Redis reply to a claim")),
        })
    }

    /// Confirms a claim (the value is used up: replicated before the gate
    /// answers): `None` when the claim was lost, else the refresh token's
    /// family (empty for a code).
    async fn confirm_claim(
        &self,
        key: String,
        revoked_prefix: &str,
        claim: &Claim,
    ) -> Result<Option<String>, StoreError> {
        let call = Call::new(&SCRIPTS.confirm)
            .key(key)
            .arg(claim.id_hex())
            .arg(revoked_prefix);
        let reply: Value = self
            .call("confirm claim", call, Durability::Replicated)
            .await?;
        Ok(match reply {
            Value::Int(0) => None,
            Value::Int(_) => Some(String::new()),
            other => Some(
                redis::from_redis_value(other)
                    .map_err(|e| StoreError::with_source("unexpected Redis reply", e))?,
            ),
        })
    }

    /// Hands a claim back, unused.
    async fn release_claim(&self, key: String, claim: &Claim) -> Result<(), StoreError> {
        let call = Call::new(&SCRIPTS.release).key(key).arg(claim.id_hex());
        self.call::<i64>("release claim", call, Durability::Local)
            .await
            .map(drop)
    }
}

impl ClientStore for RedisStore {
    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        let call = Call::command("GET").key(self.key("client", client_id));
        let json: Option<String> = self.call("client look-up", call, Durability::Local).await?;
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
            .call("issue code", call, Durability::Replicated)
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
        self.claim_value::<CodeRecord>(self.key("code", &key.to_hex()), "", claim)
            .await
            .map(|(redemption, _)| redemption.map(Arc::new))
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        self.confirm_claim(self.key("code", &key.to_hex()), "", claim)
            .await
            .map(|confirmed| confirmed.is_some())
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        self.release_claim(self.key("code", &key.to_hex()), claim)
            .await
    }
}

/// How long a family's revocation marker lives at least (a family whose
/// list has expired, or is not stored yet).
const REVOKED_AT_LEAST: Duration = Duration::from_secs(3600);

impl RefreshStore for RedisStore {
    async fn issue(&self, key: CodeKey, record: RefreshRecord) -> Result<(), StoreError> {
        let json = encode(&record)?;
        let ttl = ttl(record.issued_at, record.expires_at);
        let hex = key.to_hex();
        let token_key = self.key("refresh", &hex);
        let family_key = self.family_key("family", &record.family);
        let revoked_key = self.family_key("revoked", &record.family);
        let stored: i64 = if self.is_cluster() {
            // Joins the family first, on its slot: once it is revoked,
            // nothing joins. A revocation between the two calls is caught
            // where the token is used: its family's marker is read there.
            let join = Call::new(&SCRIPTS.join_family)
                .key(family_key)
                .key(revoked_key)
                .arg(ttl)
                .arg(&hex);
            let joined: i64 = self
                .call("join refresh family", join, Durability::Replicated)
                .await?;
            if joined == -1 {
                -1
            } else {
                let store = Call::new(&SCRIPTS.store_refresh)
                    .key(token_key)
                    .arg(json)
                    .arg(ttl)
                    .arg(&record.family);
                self.call("issue refresh token", store, Durability::Replicated)
                    .await?
            }
        } else {
            let call = Call::new(&SCRIPTS.issue_refresh)
                .key(token_key)
                .key(family_key)
                .key(revoked_key)
                .arg(json)
                .arg(ttl)
                .arg(&record.family)
                .arg(&hex);
            self.call("issue refresh token", call, Durability::Replicated)
                .await?
        };
        match stored {
            1 => Ok(()),
            -1 => Err(StoreError::new("the refresh token family was revoked")),
            _ => Err(StoreError::new(
                "a refresh token with this key already exists",
            )),
        }
    }

    async fn find(&self, key: &CodeKey) -> Result<Lookup<RefreshRecord>, StoreError> {
        let call = Call::new(&SCRIPTS.peek_refresh)
            .key(self.key("refresh", &key.to_hex()))
            .arg(self.revoked_prefix());
        let value: Value = self
            .call("find refresh token", call, Durability::Local)
            .await?;
        let (json, uses): (String, i64) = match value {
            Value::Nil => return Ok(Lookup::Unknown),
            other => redis::from_redis_value(other)
                .map_err(|e| StoreError::with_source("unexpected Redis reply", e))?,
        };
        let record: RefreshRecord = decode(&json)?;
        if self.family_revoked(&record.family).await? {
            return Ok(Lookup::Unknown);
        }
        Ok(Lookup::from_uses(record, uses))
    }

    async fn claim(
        &self,
        key: &CodeKey,
        claim: &Claim,
    ) -> Result<Redemption<RefreshRecord>, StoreError> {
        let token_key = self.key("refresh", &key.to_hex());
        let (redemption, busy) = self
            .claim_value::<RefreshRecord>(token_key.clone(), self.revoked_prefix(), claim)
            .await?;
        let family = match (&redemption, &busy) {
            (Redemption::Claimed(record) | Redemption::Used(record), _) | (_, Some(record)) => {
                &record.family
            }
            _ => return Ok(redemption),
        };
        if self.family_revoked(family).await? {
            // Revoked: unknown, as on a single server; a claim just taken
            // is handed back.
            if matches!(redemption, Redemption::Claimed(_)) {
                self.release_claim(token_key, claim).await?;
            }
            return Ok(Redemption::Unknown);
        }
        Ok(redemption)
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        let key = self.key("refresh", &key.to_hex());
        let Some(family) = self
            .confirm_claim(key, self.revoked_prefix(), claim)
            .await?
        else {
            return Ok(false);
        };
        // Revoked before this confirmation reads the marker: the claim is
        // lost to the revocation, as on a single server.
        Ok(!self.family_revoked(&family).await?)
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        self.release_claim(self.key("refresh", &key.to_hex()), claim)
            .await
    }

    async fn reuse(
        &self,
        key: &CodeKey,
        window: ReuseWindow,
    ) -> Result<Reuse<RefreshRecord>, StoreError> {
        let call = Call::new(&SCRIPTS.reuse)
            .key(self.key("refresh", &key.to_hex()))
            .arg(self.revoked_prefix())
            .arg(millis_of(window.within))
            .arg(window.limit);
        let value: Value = self
            .call("reuse refresh token", call, Durability::Replicated)
            .await?;
        let Some((tag, Some(json))) = tagged_reply(value)? else {
            return Ok(Reuse::Unknown);
        };
        let record: RefreshRecord = decode(&json)?;
        if self.family_revoked(&record.family).await? {
            return Ok(Reuse::Unknown);
        }
        Ok(match tag.as_str() {
            "granted" => Reuse::Granted(record),
            "refused" => Reuse::Refused(record),
            "free" => Reuse::NotRotated,
            "held" => Reuse::Held,
            _ => return Err(StoreError::new("unexpected Redis reply to a reuse")),
        })
    }

    async fn revoke_family(&self, family: &str) -> Result<(), StoreError> {
        // One write, whatever the family's size: every use of its tokens
        // reads the marker.
        let call = Call::new(&SCRIPTS.revoke_family)
            .key(self.family_key("family", family))
            .key(self.family_key("revoked", family))
            .arg(millis_of(REVOKED_AT_LEAST));
        self.call::<i64>("revoke family", call, Durability::Replicated)
            .await
            .map(drop)
    }
}

impl RedisStore {
    /// The device key's JSON record, if any.
    async fn device_record(&self, device_key: &str) -> Result<Option<String>, StoreError> {
        let call = Call::command("GET").key(device_key);
        self.call("read device code", call, Durability::Local).await
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
        let user_key = self.key("user", &record.user_code);
        let hex = device_key.rsplit(':').next().unwrap_or_default().to_owned();
        let mut call = Call::new(&SCRIPTS.swap_device).key(device_key);
        if !self.is_cluster() {
            // One script frees the user code too; on a cluster, it is on
            // another slot (below).
            call = call.key(&user_key);
        }
        let call = call
            .arg(read)
            .arg(next.map(encode).transpose()?.unwrap_or_default())
            .arg(&hex);
        // Only the redemption must outlive a failover (a device code
        // redeemed twice). A lost poll time or decision costs a retry or
        // a second approval, and every poll writes: waiting for replicas
        // on each would let a device polling in a hurry load the master's
        // replicated-write queue.
        let durability = if redeemed {
            Durability::Replicated
        } else {
            Durability::Local
        };
        let swapped: i64 = self.call("write device code", call, durability).await?;
        if swapped == 1 && redeemed && self.is_cluster() {
            // The user code is free again, unless it names another device
            // by now. After the redemption: if this fails, the redemption
            // stands, and the user code stays taken (and finds no record)
            // until it expires.
            let free = Call::new(&SCRIPTS.delete_if).key(user_key).arg(hex);
            let _freed: Result<i64, _> = self.call("free user code", free, Durability::Local).await;
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
        // The record outlives the code by the tombstone, so late polls
        // still hear `expired_token`; the user code is freed at expiry.
        let tombstone = millis_of(DEVICE_TOMBSTONE);
        if !self.is_cluster() {
            let call = Call::new(&SCRIPTS.issue_device)
                .key(device_key)
                .key(user_key)
                .arg(json)
                .arg(ttl)
                .arg(tombstone)
                .arg(hex);
            let stored: i64 = self
                .call("issue device code", call, Durability::Replicated)
                .await?;
            return Ok(stored == 1);
        }
        // On a cluster, the user code first, on its own slot: taken, it
        // refuses this authorization (the gate draws another user code).
        let take = Call::new(&SCRIPTS.set_new).key(user_key).arg(&hex).arg(ttl);
        let taken: i64 = self
            .call("take user code", take, Durability::Replicated)
            .await?;
        if taken != 1 {
            return Ok(false);
        }
        let store = Call::new(&SCRIPTS.set_new)
            .key(device_key)
            .arg(json)
            .arg(ttl.saturating_add(tombstone));
        let stored: i64 = self
            .call("issue device code", store, Durability::Replicated)
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
            .call(
                "find user code",
                Call::command("GET").key(user_key),
                Durability::Local,
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
                    .call(
                        "find user code",
                        Call::command("GET").key(user_key),
                        Durability::Local,
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
            self.call::<u64>("lockout check", call, Durability::Local)
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
            self.call::<()>("lockout count", call, Durability::Local)
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
            .call("record one-time value", call, Durability::Replicated)
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
        let call = Call::command("SET")
            .key(key)
            .arg(candidate)
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(ttl);
        let found: Option<String> = self.call("DPoP nonce", call, Durability::Local).await?;
        Ok(found.unwrap_or_else(|| candidate.to_owned()))
    }
}
