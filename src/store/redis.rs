//! The Redis store (feature `redis`): clients, codes, refresh tokens and
//! device authorizations on a Redis server shared by every gate process.
//!
//! Every value is keyed by the SHA-256 of the secret it stands for, so a
//! dump of Redis reveals no live code or token. Lifetimes are Redis
//! expirations. Each redemption, rotation and poll is one Lua script: one
//! round trip, atomic on the server, leaving the replay marker in the same
//! step.

use std::{
    fmt,
    future::Future,
    sync::{Arc, LazyLock, PoisonError, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use redis::{
    AsyncCommands, Client as RedisClient, Script, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use super::{
    CodeStore, CredentialStore, DEFAULT_STORE_TIMEOUT, DeviceStore, Hold, Lookup, Redemption,
    RefreshStore, StoreError,
};
use crate::{
    client::{Client, StoredClient},
    code::CodeRecord,
    device::{
        DEVICE_TOMBSTONE, DeviceDecision, DeviceRecord, DeviceStatus, PollOutcome, SLOW_DOWN_STEP,
    },
    refresh::RefreshRecord,
    secret::CodeKey,
};

/// Clients, codes, refresh tokens and device codes on Redis.
///
/// ```no_run
/// # async fn run() -> Result<(), tokengate::StoreError> {
/// use tokengate::{RedisStore, TokenGateLayer};
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let layer = TokenGateLayer::new(store);
/// # Ok(()) }
/// ```
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
            Ok(Err(error)) => Err(StoreError::with_source(
                format!("redis: {what} failed"),
                error,
            )),
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
        let json = serde_json::to_string(&client.to_stored())
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

fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
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

/// Takes a code or refresh token: the record and how many times it has now
/// been presented (1 = this call redeemed it; more = a replay), or `held`
/// while an unused one is claimed (two-phase redemption). A refresh token
/// of a revoked family (ARGV[1] the revoked-marker prefix) is gone. Claims
/// lapse by the server's clock.
const REDEEM: &str = r"
local f = redis.call('HMGET', KEYS[1], 'rec', 'uses', 'family', 'held_until')
if not f[1] then return false end
if ARGV[1] ~= '' and f[3] and redis.call('EXISTS', ARGV[1] .. f[3]) == 1 then return false end
if tonumber(f[2]) == 0 and f[4] then
  local t = redis.call('TIME')
  if tonumber(f[4]) > tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then return 'held' end
end
local uses = redis.call('HINCRBY', KEYS[1], 'uses', 1)
return {f[1], uses}
";

/// Claims an unused code or refresh token for ARGV[2] (the hold's id) for
/// ARGV[3] ms: `reserved` and the record; `used` and the record; `held`
/// while another live claim has it; nothing for no such value (or one of a
/// revoked family, ARGV[1] as in REDEEM).
const RESERVE: &str = r"
local f = redis.call('HMGET', KEYS[1], 'rec', 'uses', 'family', 'held_until')
if not f[1] then return false end
if ARGV[1] ~= '' and f[3] and redis.call('EXISTS', ARGV[1] .. f[3]) == 1 then return false end
if tonumber(f[2]) > 0 then return {'used', f[1]} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if f[4] and tonumber(f[4]) > now then return {'held'} end
redis.call('HSET', KEYS[1], 'holder', ARGV[2], 'held_until', now + tonumber(ARGV[3]))
return {'reserved', f[1]}
";

/// Uses up a value claimed by ARGV[1]: 1, or 0 if the claim was lost (to
/// another claim, to a consume-on-read redemption after it lapsed, or,
/// for a refresh token, to its family's revocation; ARGV[2] the
/// revoked-marker prefix or '').
const CONFIRM: &str = r"
local f = redis.call('HMGET', KEYS[1], 'holder', 'uses', 'family')
if f[1] ~= ARGV[1] or tonumber(f[2]) ~= 0 then return 0 end
if ARGV[2] ~= '' and f[3] and redis.call('EXISTS', ARGV[2] .. f[3]) == 1 then return 0 end
redis.call('HINCRBY', KEYS[1], 'uses', 1)
redis.call('HDEL', KEYS[1], 'holder', 'held_until')
return 1
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

/// Stores a device authorization and its user code, unless either exists.
/// The record outlives the code by ARGV[7] ms, so late polls still hear
/// `expired_token`; the user code is freed at expiry. ARGV[8..10] are the
/// status, subject and last poll: a new record is pending, one put back
/// after a failed grant is approved.
const ISSUE_DEVICE: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'client_id', ARGV[1], 'expires_at', ARGV[2], 'interval', ARGV[3],
  'rec', ARGV[4], 'status', ARGV[8], 'subject', ARGV[9], 'last_poll', ARGV[10], 'user_key', KEYS[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]) + tonumber(ARGV[7]))
redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[5])
return 1
";

/// One poll, the same rules as `DeviceRecord::poll`: another client's poll
/// changes nothing; expiry; polling before the interval passed slows the
/// device down by ARGV[3] seconds; an approved code is redeemed once.
const POLL_DEVICE: &str = r"
local f = redis.call('HMGET', KEYS[1], 'client_id', 'expires_at', 'last_poll', 'interval', 'status', 'subject', 'rec', 'user_key')
if not f[1] or f[1] ~= ARGV[1] then return {'unknown'} end
local now = tonumber(ARGV[2])
if now >= tonumber(f[2]) then return {'expired'} end
local interval = tonumber(f[4])
local too_soon = f[3] ~= '' and now < tonumber(f[3]) + interval * 1000
redis.call('HSET', KEYS[1], 'last_poll', ARGV[2])
if too_soon then
  interval = interval + tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'interval', interval)
  return {'slow_down', tostring(interval)}
end
if f[5] == 'pending' then return {'pending'} end
if f[5] == 'denied' then return {'denied'} end
redis.call('DEL', KEYS[1])
-- The user code may have expired by Redis's clock and been reused by
-- another device: free it only if it is still this one's.
if redis.call('GET', f[8]) == ARGV[4] then redis.call('DEL', f[8]) end
return {'approved', f[7], f[6], tostring(interval)}
";

/// Records a decision on a live, undecided authorization.
const DECIDE: &str = r"
local device = redis.call('GET', KEYS[1])
if not device then return 0 end
local key = ARGV[1] .. device
local f = redis.call('HMGET', key, 'status', 'expires_at')
if f[1] ~= 'pending' or tonumber(ARGV[2]) >= tonumber(f[2]) then return 0 end
redis.call('HSET', key, 'status', ARGV[3], 'subject', ARGV[4])
return 1
";

/// The scripts, hashed once; `invoke_async` sends EVALSHA and falls back to
/// EVAL when the server has not seen a script yet.
struct Scripts {
    issue: Script,
    redeem: Script,
    reserve: Script,
    confirm: Script,
    release: Script,
    issue_refresh: Script,
    peek_refresh: Script,
    revoke_family: Script,
    issue_device: Script,
    poll_device: Script,
    decide: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    issue: Script::new(ISSUE),
    redeem: Script::new(REDEEM),
    reserve: Script::new(RESERVE),
    confirm: Script::new(CONFIRM),
    release: Script::new(RELEASE),
    issue_refresh: Script::new(ISSUE_REFRESH),
    peek_refresh: Script::new(PEEK_REFRESH),
    revoke_family: Script::new(REVOKE_FAMILY),
    issue_device: Script::new(ISSUE_DEVICE),
    poll_device: Script::new(POLL_DEVICE),
    decide: Script::new(DECIDE),
});

impl RedisStore {
    async fn redeem_value<T: serde::de::DeserializeOwned>(
        &self,
        key: String,
        revoked_prefix: String,
        what: &'static str,
    ) -> Result<Redemption<T>, StoreError> {
        let value: Value = self
            .run(what, |mut c| async move {
                SCRIPTS
                    .redeem
                    .key(key)
                    .arg(revoked_prefix)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let (json, uses): (String, i64) = match value {
            Value::Nil => return Ok(Redemption::Unknown),
            Value::Array(_) => redis::from_redis_value(value)
                .map_err(|e| StoreError::with_source("unexpected Redis reply", e))?,
            _ => return Ok(Redemption::Held),
        };
        Ok(Redemption::from_uses(decode(&json)?, uses))
    }

    /// Claims a code or refresh token (two-phase redemption).
    async fn reserve_value<T: serde::de::DeserializeOwned>(
        &self,
        key: String,
        revoked_prefix: String,
        hold: &Hold,
    ) -> Result<Redemption<T>, StoreError> {
        let (id, ttl) = (hold.id_hex(), millis_of(hold.ttl()));
        let value: Value = self
            .run("reserve", |mut c| async move {
                SCRIPTS
                    .reserve
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
            (Some("reserved"), Some(json)) => Redemption::Redeemed(decode(&json)?),
            (Some("used"), Some(json)) => Redemption::Replayed(decode(&json)?),
            (Some("held"), None) => Redemption::Held,
            _ => return Err(StoreError::new("unexpected Redis reply to a reservation")),
        })
    }

    /// Confirms (`confirm`) or releases a claim. `revoked_prefix` as in
    /// [`Self::reserve_value`].
    async fn settle(
        &self,
        key: String,
        revoked_prefix: String,
        hold: &Hold,
        confirm: bool,
    ) -> Result<bool, StoreError> {
        let id = hold.id_hex();
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

impl CredentialStore for RedisStore {
    async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        let key = self.key("client", client_id);
        let json: Option<String> = self
            .run("client look-up", |mut c| async move { c.get(key).await })
            .await?;
        json.map(|json| {
            decode::<StoredClient>(&json)?
                .into_client()
                .map(Arc::new)
                .map_err(StoreError::new)
        })
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

    async fn redeem(&self, key: &CodeKey) -> Result<Redemption, StoreError> {
        self.redeem_value::<CodeRecord>(
            self.key("code", &key.to_hex()),
            String::new(),
            "redeem code",
        )
        .await
        .map(|redemption| redemption.map(Arc::new))
    }

    async fn reserve(&self, key: &CodeKey, hold: &Hold) -> Result<Redemption, StoreError> {
        self.reserve_value::<CodeRecord>(self.key("code", &key.to_hex()), String::new(), hold)
            .await
            .map(|redemption| redemption.map(Arc::new))
    }

    async fn confirm(&self, key: &CodeKey, hold: &Hold) -> Result<bool, StoreError> {
        self.settle(self.key("code", &key.to_hex()), String::new(), hold, true)
            .await
    }

    async fn release(&self, key: &CodeKey, hold: &Hold) -> Result<(), StoreError> {
        self.settle(self.key("code", &key.to_hex()), String::new(), hold, false)
            .await
            .map(drop)
    }
}

impl RefreshStore for RedisStore {
    async fn issue_refresh_token(
        &self,
        key: CodeKey,
        record: RefreshRecord,
    ) -> Result<(), StoreError> {
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

    async fn find_refresh_token(&self, key: &CodeKey) -> Result<Lookup<RefreshRecord>, StoreError> {
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

    async fn rotate_refresh_token(
        &self,
        key: &CodeKey,
    ) -> Result<Redemption<RefreshRecord>, StoreError> {
        let revoked_prefix = self.key("revoked", "");
        self.redeem_value(
            self.key("refresh", &key.to_hex()),
            revoked_prefix,
            "rotate refresh token",
        )
        .await
    }

    async fn reserve_refresh_token(
        &self,
        key: &CodeKey,
        hold: &Hold,
    ) -> Result<Redemption<RefreshRecord>, StoreError> {
        let revoked_prefix = self.key("revoked", "");
        self.reserve_value(self.key("refresh", &key.to_hex()), revoked_prefix, hold)
            .await
    }

    async fn confirm_refresh_token(&self, key: &CodeKey, hold: &Hold) -> Result<bool, StoreError> {
        let revoked_prefix = self.key("revoked", "");
        self.settle(
            self.key("refresh", &key.to_hex()),
            revoked_prefix,
            hold,
            true,
        )
        .await
    }

    async fn release_refresh_token(&self, key: &CodeKey, hold: &Hold) -> Result<(), StoreError> {
        self.settle(
            self.key("refresh", &key.to_hex()),
            String::new(),
            hold,
            false,
        )
        .await
        .map(drop)
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

impl DeviceStore for RedisStore {
    async fn issue_device_code(
        &self,
        key: CodeKey,
        record: DeviceRecord,
    ) -> Result<bool, StoreError> {
        let json = encode(&record)?;
        let ttl = ttl(record.issued_at, record.expires_at);
        let hex = key.to_hex();
        let device_key = self.key("device", &hex);
        let user_key = self.key("user", &record.user_code);
        let (status, subject) = match &record.status {
            DeviceStatus::Pending => ("pending", String::new()),
            DeviceStatus::Approved { subject } => ("approved", subject.clone()),
            DeviceStatus::Denied => ("denied", String::new()),
        };
        let last_poll = record
            .last_poll
            .map_or_else(String::new, |t| millis(t).to_string());
        let stored: i64 = self
            .run("issue device code", |mut c| async move {
                SCRIPTS
                    .issue_device
                    .key(device_key)
                    .key(user_key)
                    .arg(record.client_id)
                    .arg(millis(record.expires_at))
                    .arg(record.interval)
                    .arg(json)
                    .arg(ttl)
                    .arg(hex)
                    .arg(i64::try_from(DEVICE_TOMBSTONE.as_millis()).unwrap_or(0))
                    .arg(status)
                    .arg(subject)
                    .arg(last_poll)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(stored == 1)
    }

    async fn poll_device_code(
        &self,
        key: &CodeKey,
        client_id: &str,
        now: SystemTime,
    ) -> Result<PollOutcome, StoreError> {
        let hex = key.to_hex();
        let device_key = self.key("device", &hex);
        let client_id = client_id.to_owned();
        let reply: Vec<String> = self
            .run("poll device code", |mut c| async move {
                SCRIPTS
                    .poll_device
                    .key(device_key)
                    .arg(client_id)
                    .arg(millis(now))
                    .arg(SLOW_DOWN_STEP)
                    .arg(hex)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let unexpected = || StoreError::new("unexpected Redis reply to a device poll");
        Ok(match reply.first().map(String::as_str) {
            Some("unknown") => PollOutcome::Unknown,
            Some("expired") => PollOutcome::Expired,
            Some("pending") => PollOutcome::Pending,
            Some("denied") => PollOutcome::Denied,
            Some("slow_down") => PollOutcome::SlowDown {
                interval: reply
                    .get(1)
                    .and_then(|i| i.parse().ok())
                    .ok_or_else(unexpected)?,
            },
            Some("approved") => {
                let [_, json, subject, interval] = reply.as_slice() else {
                    return Err(unexpected());
                };
                let mut record: DeviceRecord = decode(json)?;
                record.status = DeviceStatus::Approved {
                    subject: subject.clone(),
                };
                record.interval = interval.parse().map_err(|_| unexpected())?;
                record.last_poll = Some(now);
                PollOutcome::Approved(record)
            }
            _ => return Err(unexpected()),
        })
    }

    async fn find_user_code(
        &self,
        user_code: &str,
        now: SystemTime,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let user_key = self.key("user", user_code);
        let device_prefix = self.key("device", "");
        let fields: Option<(String, String, String, String, String)> = self
            .run("find user code", |mut c| async move {
                let Some(device): Option<String> = c.get(user_key).await? else {
                    return Ok(None);
                };
                let key = format!("{device_prefix}{device}");
                let fields: Vec<Option<String>> = redis::cmd("HMGET")
                    .arg(key)
                    .arg(&["rec", "status", "expires_at", "interval", "last_poll"])
                    .query_async(&mut c)
                    .await?;
                Ok(match <[Option<String>; 5]>::try_from(fields) {
                    Ok([Some(a), Some(b), Some(d), Some(e), Some(f)]) => Some((a, b, d, e, f)),
                    _ => None,
                })
            })
            .await?;
        let Some((json, status, expires_at, interval, last_poll)) = fields else {
            return Ok(None);
        };
        let expires_at: i64 = expires_at
            .parse()
            .map_err(|_| StoreError::new("corrupt device record"))?;
        if status != "pending" || millis(now) >= expires_at {
            return Ok(None);
        }
        let mut record: DeviceRecord = decode(&json)?;
        record.interval = interval.parse().unwrap_or(record.interval);
        record.last_poll = last_poll.parse().ok().map(from_millis);
        Ok(Some(record))
    }

    async fn decide_user_code(
        &self,
        user_code: &str,
        decision: DeviceDecision,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let user_key = self.key("user", user_code);
        let device_prefix = self.key("device", "");
        let (status, subject) = match decision {
            DeviceDecision::Approve { subject } => ("approved", subject),
            DeviceDecision::Deny => ("denied", String::new()),
        };
        let decided: i64 = self
            .run("decide user code", |mut c| async move {
                SCRIPTS
                    .decide
                    .key(user_key)
                    .arg(device_prefix)
                    .arg(millis(now))
                    .arg(status)
                    .arg(subject)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(decided == 1)
    }
}
