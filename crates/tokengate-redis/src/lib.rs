//! A Redis store for [`tokengate`]: clients, codes, refresh tokens and device
//! authorizations on a Redis server shared by every gate process.
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
//! ```no_run
//! # async fn run() -> Result<(), tokengate::StoreError> {
//! use tokengate::TokenGateLayer;
//! use tokengate_redis::RedisStore;
//!
//! let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
//! let layer = TokenGateLayer::new(store);
//! # Ok(()) }
//! ```

use std::{
    fmt,
    future::Future,
    sync::{Arc, LazyLock, PoisonError, RwLock},
    time::{Duration, SystemTime},
};

use redis::{
    AsyncCommands, Client as RedisClient, Script, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

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

/// The default bound on every call; past it the gate answers
/// `500 server_error`.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// host, lost NAT state) is not one the manager ever reconnects by
    /// itself.
    connection: RwLock<ConnectionManager>,
    client: RedisClient,
    config: ConnectionManagerConfig,
    prefix: String,
    timeout: Duration,
}

impl RedisStore {
    /// A store on the Redis server at `url`, with the default key prefix
    /// (`tokengate`) and timeout. Fails only for a malformed URL: the server
    /// may be down now and come up later.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, "tokengate", DEFAULT_STORE_TIMEOUT).await
    }

    /// A store with its own key prefix (several gates, or tests, on one
    /// server) and per-call timeout.
    pub async fn connect_with(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let client =
            RedisClient::open(url).map_err(|e| StoreError::with_source("invalid Redis URL", e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|e| StoreError::with_source("cannot set up the Redis connection", e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                connection: RwLock::new(connection),
                client,
                config,
                prefix: prefix.to_owned(),
                timeout,
            }),
        })
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}:{kind}:{id}", self.inner.prefix)
    }

    /// Runs `op` on a connection, bounded by the timeout.
    async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
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
                // bound) often fires first; the manager does not drop the
                // connection for it, so without this a hung connection
                // would fail every later call for good.
                if error.is_timeout() {
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

    /// Drops the connection after a timeout: the next call makes a new one.
    fn reconnect(&self) {
        if let Ok(fresh) = ConnectionManager::new_lazy_with_config(
            self.inner.client.clone(),
            self.inner.config.clone(),
        ) {
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

/// Stores a record under a key that must not exist yet.
const ISSUE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'uses', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Claims an unused code or refresh token for ARGV[2] (the claim's id) for
/// ARGV[3] ms: `claimed` and the record; `used` and the record; `busy`
/// while another live claim has it; nothing for no such value, or one of a
/// revoked family (ARGV[1] the revoked-marker prefix, or ''). Claims lapse
/// by the server's clock.
const CLAIM: &str = r"
local f = redis.call('HMGET', KEYS[1], 'rec', 'uses', 'family', 'held_until')
if not f[1] then return false end
if ARGV[1] ~= '' and f[3] and redis.call('EXISTS', ARGV[1] .. f[3]) == 1 then return false end
if tonumber(f[2]) > 0 then return {'used', f[1]} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if f[4] and tonumber(f[4]) > now then return {'busy'} end
redis.call('HSET', KEYS[1], 'holder', ARGV[2], 'held_until', now + tonumber(ARGV[3]))
return {'claimed', f[1]}
";

/// Uses up a value claimed by ARGV[1]: 1, or 0 if the claim was lost (to
/// another claim after it lapsed, or, for a refresh token, to its family's
/// revocation; ARGV[2] the revoked-marker prefix or ''). Notes when, by the
/// server's clock: a refresh token's reuse window starts there.
const CONFIRM: &str = r"
local f = redis.call('HMGET', KEYS[1], 'holder', 'uses', 'family')
if f[1] ~= ARGV[1] or tonumber(f[2]) ~= 0 then return 0 end
if ARGV[2] ~= '' and f[3] and redis.call('EXISTS', ARGV[2] .. f[3]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HINCRBY', KEYS[1], 'uses', 1)
redis.call('HSET', KEYS[1], 'used_at', now)
redis.call('HDEL', KEYS[1], 'holder', 'held_until')
return 1
";

/// One more use of a rotated refresh token (ARGV[1] the revoked-marker
/// prefix): `granted` and the record when it was used less than ARGV[2] ms
/// ago (or is claimed by a live claim) and granted fewer than ARGV[3]
/// reuses, counted here; `refused` and the record when used otherwise;
/// `held` when claimed past the limit; `free` when neither used nor
/// claimed; nothing for no live token.
const REUSE: &str = r"
local f = redis.call('HMGET', KEYS[1], 'rec', 'uses', 'family', 'held_until', 'used_at', 'reuses')
if not f[1] then return false end
if f[3] and redis.call('EXISTS', ARGV[1] .. f[3]) == 1 then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local in_window = false
if tonumber(f[2]) > 0 then
  in_window = f[5] ~= false and tonumber(f[5]) + tonumber(ARGV[2]) > now
elseif f[4] and tonumber(f[4]) > now then
  in_window = true
else
  return {'free'}
end
if in_window and tonumber(f[6] or '0') < tonumber(ARGV[3]) then
  redis.call('HINCRBY', KEYS[1], 'reuses', 1)
  return {'granted', f[1]}
end
if tonumber(f[2]) == 0 then return {'held'} end
return {'refused', f[1]}
";

/// Hands back a value claimed by ARGV[1], unused; a lost claim is left be.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'holder', 'held_until')
end
return 1
";

/// Reads a refresh token without using it: the record and its use count;
/// nothing for a token of a revoked family.
const PEEK_REFRESH: &str = r"
local f = redis.call('HMGET', KEYS[1], 'rec', 'uses', 'family')
if not f[1] then return false end
if f[3] and redis.call('EXISTS', ARGV[1] .. f[3]) == 1 then return false end
return {f[1], tonumber(f[2])}
";

/// Stores a refresh token and adds it to its family, unless the family was
/// revoked (-1) or the key exists (0).
const ISSUE_REFRESH: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'uses', 0, 'family', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1
";

/// Marks a family revoked for as long as any of its tokens would live (at
/// least ARGV[1] ms): one write, whatever the family's size. Redemption and
/// issuing check the marker; the members expire by themselves.
const REVOKE_FAMILY: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[1]) then ttl = tonumber(ARGV[1]) end
redis.call('SET', KEYS[2], '1', 'PX', ttl)
return 1
";

/// Stores a device authorization (ARGV[1], its JSON) and its user code,
/// unless either exists. The record outlives the code by ARGV[3] ms, so late
/// polls still hear `expired_token`; the user code (mapped to ARGV[4], the
/// device key) is freed at expiry, after ARGV[2] ms.
const ISSUE_DEVICE: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]) + tonumber(ARGV[3]))
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[2])
return 1
";

/// Compare-and-set of a device record: if KEYS[1] still holds ARGV[1] (the
/// JSON read before the core's rules ran), writes ARGV[2] keeping its
/// expiry, or, when ARGV[2] is empty, deletes it (redeemed) and frees its
/// user code KEYS[2] if that still names this device (ARGV[3]). 1 when
/// written, 0 when another poll or decision changed it first.
const SWAP_DEVICE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
else
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
end
return 1
";

/// The scripts, hashed once; `invoke_async` sends EVALSHA and falls back to
/// EVAL when the server has not seen a script yet.
struct Scripts {
    issue: Script,
    claim: Script,
    confirm: Script,
    release: Script,
    issue_refresh: Script,
    peek_refresh: Script,
    revoke_family: Script,
    reuse: Script,
    issue_device: Script,
    swap_device: Script,
    locked: Script,
    fail: Script,
}

/// The lockout's check: KEYS are failure counters, ARGV[i] the limit of
/// KEYS[i]. Answers the longest time left (ms) among the counters at or past
/// their limit, 0 when none is.
const LOCKED: &str = r"
local wait = 0
for i, key in ipairs(KEYS) do
  local failures = tonumber(redis.call('GET', key) or '0')
  if failures >= tonumber(ARGV[i]) then
    local left = redis.call('PTTL', key)
    if left > wait then wait = left end
  end
end
return wait
";

/// Counts a failure on each counter: KEYS are the counters, ARGV[i] the
/// window of KEYS[i] in ms. The first failure opens the window, which then
/// expires by itself; a counter found without an expiry gets one, so no
/// key can lock anyone out for good.
const FAIL: &str = r"
for i, key in ipairs(KEYS) do
  local failures = redis.call('INCR', key)
  if failures == 1 or redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, ARGV[i])
  end
end
return 1
";

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    issue: Script::new(ISSUE),
    claim: Script::new(CLAIM),
    confirm: Script::new(CONFIRM),
    release: Script::new(RELEASE),
    issue_refresh: Script::new(ISSUE_REFRESH),
    peek_refresh: Script::new(PEEK_REFRESH),
    revoke_family: Script::new(REVOKE_FAMILY),
    reuse: Script::new(REUSE),
    issue_device: Script::new(ISSUE_DEVICE),
    swap_device: Script::new(SWAP_DEVICE),
    locked: Script::new(LOCKED),
    fail: Script::new(FAIL),
});

impl RedisStore {
    /// Claims a code or refresh token (two-phase redemption).
    async fn claim_value<T: serde::de::DeserializeOwned>(
        &self,
        key: String,
        revoked_prefix: String,
        claim: &Claim,
    ) -> Result<Redemption<T>, StoreError> {
        let (id, ttl) = (claim.id_hex(), millis_of(claim.ttl()));
        let value: Value = self
            .run("claim", |mut c| async move {
                SCRIPTS
                    .claim
                    .key(key)
                    .arg(revoked_prefix)
                    .arg(id)
                    .arg(ttl)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if value == Value::Nil {
            return Ok(Redemption::Unknown);
        }
        let mut reply: Vec<String> = redis::from_redis_value(value)
            .map_err(|e| StoreError::with_source("unexpected Redis reply", e))?;
        let json = if reply.len() == 2 { reply.pop() } else { None };
        Ok(match (reply.first().map(String::as_str), json) {
            (Some("claimed"), Some(json)) => Redemption::Claimed(decode(&json)?),
            (Some("used"), Some(json)) => Redemption::Used(decode(&json)?),
            (Some("busy"), None) => Redemption::Busy,
            _ => return Err(StoreError::new("unexpected Redis reply to a claim")),
        })
    }

    /// Confirms (`confirm`) or releases a claim. `revoked_prefix` as in
    /// [`Self::claim_value`].
    async fn end_claim(
        &self,
        key: String,
        revoked_prefix: String,
        claim: &Claim,
        confirm: bool,
    ) -> Result<bool, StoreError> {
        let id = claim.id_hex();
        let (script, what) = if confirm {
            (&SCRIPTS.confirm, "confirm claim")
        } else {
            (&SCRIPTS.release, "release claim")
        };
        let settled: i64 = self
            .run(what, |mut c| async move {
                script
                    .key(key)
                    .arg(id)
                    .arg(revoked_prefix)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
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
        let json = encode(&record)?;
        let ttl = ttl(record.issued_at, record.expires_at);
        let key = self.key("code", &key.to_hex());
        let stored: i64 = self
            .run("issue code", |mut c| async move {
                SCRIPTS
                    .issue
                    .key(key)
                    .arg(json)
                    .arg(ttl)
                    .invoke_async(&mut c)
                    .await
            })
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
        self.claim_value::<CodeRecord>(self.key("code", &key.to_hex()), String::new(), claim)
            .await
            .map(|redemption| redemption.map(Arc::new))
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        self.end_claim(self.key("code", &key.to_hex()), String::new(), claim, true)
            .await
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        self.end_claim(self.key("code", &key.to_hex()), String::new(), claim, false)
            .await
            .map(drop)
    }
}

impl RefreshStore for RedisStore {
    async fn issue(&self, key: CodeKey, record: RefreshRecord) -> Result<(), StoreError> {
        let json = encode(&record)?;
        let ttl = ttl(record.issued_at, record.expires_at);
        let hex = key.to_hex();
        let token_key = self.key("refresh", &hex);
        let family_key = self.key("family", &record.family);
        let revoked_key = self.key("revoked", &record.family);
        let family = record.family.clone();
        let stored: i64 = self
            .run("issue refresh token", |mut c| async move {
                SCRIPTS
                    .issue_refresh
                    .key(token_key)
                    .key(family_key)
                    .key(revoked_key)
                    .arg(json)
                    .arg(ttl)
                    .arg(family)
                    .arg(hex)
                    .invoke_async(&mut c)
                    .await
            })
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
        let token_key = self.key("refresh", &key.to_hex());
        let revoked_prefix = self.key("revoked", "");
        let value: Value = self
            .run("find refresh token", |mut c| async move {
                SCRIPTS
                    .peek_refresh
                    .key(token_key)
                    .arg(revoked_prefix)
                    .invoke_async(&mut c)
                    .await
            })
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
        let revoked_prefix = self.key("revoked", "");
        self.claim_value(self.key("refresh", &key.to_hex()), revoked_prefix, claim)
            .await
    }

    async fn confirm(&self, key: &CodeKey, claim: &Claim) -> Result<bool, StoreError> {
        let revoked_prefix = self.key("revoked", "");
        let key = self.key("refresh", &key.to_hex());
        self.end_claim(key, revoked_prefix, claim, true).await
    }

    async fn release(&self, key: &CodeKey, claim: &Claim) -> Result<(), StoreError> {
        let key = self.key("refresh", &key.to_hex());
        self.end_claim(key, String::new(), claim, false)
            .await
            .map(drop)
    }

    async fn reuse(
        &self,
        key: &CodeKey,
        window: ReuseWindow,
    ) -> Result<Reuse<RefreshRecord>, StoreError> {
        let token_key = self.key("refresh", &key.to_hex());
        let revoked_prefix = self.key("revoked", "");
        let value: Value = self
            .run("reuse refresh token", |mut c| async move {
                SCRIPTS
                    .reuse
                    .key(token_key)
                    .arg(revoked_prefix)
                    .arg(millis_of(window.within))
                    .arg(window.limit)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if value == Value::Nil {
            return Ok(Reuse::Unknown);
        }
        let mut reply: Vec<String> = redis::from_redis_value(value)
            .map_err(|e| StoreError::with_source("unexpected Redis reply", e))?;
        let json = if reply.len() == 2 { reply.pop() } else { None };
        Ok(match (reply.first().map(String::as_str), json) {
            (Some("granted"), Some(json)) => Reuse::Granted(decode(&json)?),
            (Some("refused"), Some(json)) => Reuse::Refused(decode(&json)?),
            (Some("free"), None) => Reuse::NotRotated,
            (Some("held"), None) => Reuse::Held,
            _ => return Err(StoreError::new("unexpected Redis reply to a reuse")),
        })
    }

    async fn revoke_family(&self, family: &str) -> Result<(), StoreError> {
        let family_key = self.key("family", family);
        let revoked_key = self.key("revoked", family);
        self.run("revoke family", |mut c| async move {
            SCRIPTS
                .revoke_family
                .key(family_key)
                .key(revoked_key)
                .arg(3_600_000)
                .invoke_async::<i64>(&mut c)
                .await
        })
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
        let next = next.map(encode).transpose()?.unwrap_or_default();
        let device_key = device_key.to_owned();
        let user_key = self.key("user", &record.user_code);
        let hex = device_key.rsplit(':').next().unwrap_or_default().to_owned();
        let swapped: i64 = self
            .run("write device code", |mut c| async move {
                SCRIPTS
                    .swap_device
                    .key(device_key)
                    .key(user_key)
                    .arg(read)
                    .arg(next)
                    .arg(hex)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
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
        let tombstone = i64::try_from(DEVICE_TOMBSTONE.as_millis()).unwrap_or(0);
        let stored: i64 = self
            .run("issue device code", |mut c| async move {
                SCRIPTS
                    .issue_device
                    .key(device_key)
                    .key(user_key)
                    .arg(json)
                    .arg(ttl)
                    .arg(tombstone)
                    .arg(hex)
                    .invoke_async(&mut c)
                    .await
            })
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
/// (Redis's clock, not the gate's).
impl LockoutStore for RedisStore {
    async fn locked(
        &self,
        counters: &[Counter<'_>],
        _now: SystemTime,
    ) -> Result<Option<Duration>, StoreError> {
        if counters.is_empty() {
            return Ok(None);
        }
        let mut invocation = SCRIPTS.locked.prepare_invoke();
        for counter in counters {
            invocation
                .key(self.key("lockout", &counter.key.name()))
                .arg(counter.limit);
        }
        let wait: u64 = self
            .run("lockout check", |mut c| async move {
                invocation.invoke_async(&mut c).await
            })
            .await?;
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }

    async fn fail(&self, counters: &[Counter<'_>], _now: SystemTime) -> Result<(), StoreError> {
        if counters.is_empty() {
            return Ok(());
        }
        let mut invocation = SCRIPTS.fail.prepare_invoke();
        for counter in counters {
            let window = u64::try_from(counter.window.as_millis()).unwrap_or(u64::MAX);
            invocation
                .key(self.key("lockout", &counter.key.name()))
                .arg(window.max(1));
        }
        self.run("lockout count", |mut c| async move {
            invocation.invoke_async::<()>(&mut c).await
        })
        .await
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
        let reply: Value = self
            .run("record one-time value", |mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut c)
                    .await
            })
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
