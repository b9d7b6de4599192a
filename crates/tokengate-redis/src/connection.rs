//! One Redis server or a Redis Cluster, behind one connection type; the
//! per-call timeout; and the writes that must outlive a failover, which wait
//! for the replicas of the master that took them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    Client as RedisClient, Cmd, ErrorKind, RedisFuture, RedisResult, Script, ServerErrorKind,
    ToRedisArgs, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig},
    cluster_async::ClusterConnection,
};

use tokengate::store::StoreError;

/// The scheme of a Redis Cluster URL: `redis+cluster://HOST:PORT,HOST:PORT,...`,
/// a list of seed nodes (any of the cluster's nodes; the client learns the
/// rest from them).
pub(crate) const CLUSTER_SCHEME: &str = "redis+cluster://";

/// A connection to one server (re-made by itself after an outage) or to a
/// cluster (which follows `MOVED` and `ASK` redirections and learns the new
/// layout after a failover by itself).
#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// How to make a fresh [`Connection`]: after a timeout, the old one is
/// dropped (a connection that went silent, a dead host or lost NAT state,
/// is not one either client ever gives up on by itself).
pub(crate) enum Connector {
    Single(RedisClient, ConnectionManagerConfig),
    Cluster(ClusterClient, ClusterConfig),
}

impl Connector {
    /// Parses `url`: `redis://`, `rediss://`, `unix://`, or
    /// `redis+cluster://` with a comma-separated list of seed nodes.
    pub(crate) fn parse(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let Some(seeds) = url.strip_prefix(CLUSTER_SCHEME) else {
            let client = RedisClient::open(url)
                .map_err(|e| StoreError::with_source("invalid Redis URL", e))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            return Ok(Self::Single(client, config));
        };
        let nodes = cluster_seeds(seeds)?;
        let client = ClusterClientBuilder::new(nodes)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            // A few quick retries carry a request over a `MOVED` or a
            // failover's first moments; the store's own timeout bounds the
            // whole call, so a longer outage answers `500` in time.
            .retries(3)
            .min_retry_wait(20)
            .max_retry_wait(250)
            .build()
            .map_err(|e| StoreError::with_source("invalid Redis Cluster URL", e))?;
        let config = ClusterConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        Ok(Self::Cluster(client, config))
    }

    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(..))
    }

    /// A connection made in the background: a server or cluster that is
    /// down now may come up later, and the calls meanwhile fail (closed).
    pub(crate) fn connect(&self) -> Result<Connection, StoreError> {
        match self {
            Self::Single(client, config) => {
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                    .map(Connection::Single)
                    .map_err(|e| StoreError::with_source("cannot set up the Redis connection", e))
            }
            Self::Cluster(client, config) => Ok(Connection::Cluster(
                client.get_pending_async_connection_with_config(config.clone()),
            )),
        }
    }
}

/// `HOST:PORT,HOST:PORT,...` (with optional `USER:PASSWORD@` before the
/// first, applied to every node) as one `redis://` URL per node.
fn cluster_seeds(seeds: &str) -> Result<Vec<String>, StoreError> {
    let (credentials, hosts) = match seeds.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), seeds),
    };
    let hosts = hosts.trim_end_matches('/');
    let nodes: Vec<String> = hosts
        .split(',')
        .map(|host| format!("redis://{credentials}{}", host.trim()))
        .collect();
    let malformed = hosts.is_empty()
        || hosts
            .split(',')
            .any(|host| host.trim().is_empty() || host.contains(['/', '?', '#']));
    if malformed {
        return Err(StoreError::new(
            "invalid Redis Cluster URL: expected redis+cluster://HOST:PORT,HOST:PORT,...",
        ));
    }
    Ok(nodes)
}

/// One call: a Lua script, sent as `EVALSHA` (and loaded once with
/// `SCRIPT LOAD` when a server has not seen it: on a cluster, that goes to
/// every node), or a native command; its keys, then its arguments.
pub(crate) struct Call {
    run: Run,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

enum Run {
    Script(&'static Script),
    Command(&'static str),
}

impl Call {
    pub(crate) fn new(script: &'static Script) -> Self {
        Self {
            run: Run::Script(script),
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    /// A native command (`SET`): its key first, then its arguments.
    pub(crate) fn command(name: &'static str) -> Self {
        Self {
            run: Run::Command(name),
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    pub(crate) fn key(mut self, key: impl ToRedisArgs) -> Self {
        self.keys.extend(key.to_redis_args());
        self
    }

    pub(crate) fn arg(mut self, arg: impl ToRedisArgs) -> Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    fn evalsha(&self) -> Cmd {
        let mut cmd = match self.run {
            Run::Script(script) => {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(script.get_hash()).arg(self.keys.len());
                cmd
            }
            Run::Command(name) => redis::cmd(name),
        };
        cmd.arg(&self.keys).arg(&self.args);
        cmd
    }

    /// Loads the script after a `NOSCRIPT`; a native command has none.
    async fn load(&self, connection: &mut Connection) -> RedisResult<()> {
        match self.run {
            Run::Script(script) => script.load_async(connection).await.map(drop),
            Run::Command(_) => Err(redis_error("NOSCRIPT for a native command")),
        }
    }

    /// The hash slot of the call's first key: every key of one call shares
    /// it (hash tags), or the cluster refuses the call.
    fn slot(&self) -> u16 {
        self.keys.first().map_or(0, |key| slot_of(key))
    }
}

/// Redis Cluster's hash slot of `key`: CRC16 (XMODEM) of the hash tag (the
/// part between the first `{` and the next `}`, when not empty) or of the
/// whole key, modulo 16384.
pub(crate) fn slot_of(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16384
}

/// Writes that must survive a failover wait until the replicas of the
/// master that took them have them too (`WAIT`), before the gate answers:
/// Redis replicates asynchronously, and a replica promoted without a write
/// the gate already acted on would let a code be redeemed twice.
///
/// How many: the configured number, but never more than the master has
/// connected right now (`ROLE`, in the same round trip): a master whose
/// replica died goes on serving (once its slots have no other copy, a
/// failover cannot bring back an older one), where waiting for a replica
/// that is gone would refuse every write. What each slot's master had at
/// its last write is remembered, so such a master costs no wait per call.
pub(crate) struct Replicas {
    wanted: AtomicU32,
    within: Duration,
    /// Per hash slot: the replicas its master had connected at the last
    /// write (`u8::MAX`: not seen yet).
    seen: Arc<[AtomicU8]>,
    /// When the table was last read from the cluster (ms since `epoch`).
    refreshed: AtomicU64,
    epoch: Instant,
}

impl Replicas {
    pub(crate) fn new(wanted: u32, within: Duration) -> Self {
        Self {
            wanted: AtomicU32::new(wanted),
            within,
            seen: (0..16384).map(|_| AtomicU8::new(u8::MAX)).collect(),
            refreshed: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// After a master was seen with another number of replicas than the
    /// table said (a failover, a replica lost or back): the whole table
    /// from `CLUSTER SHARDS`, at most once a second, so that the other
    /// slots of that master do not each learn it by waiting. A failover
    /// moves all of a master's slots at once.
    async fn refresh(&self, connection: &mut Connection) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.refreshed.load(Ordering::Relaxed);
        if now < last.saturating_add(1000)
            || self
                .refreshed
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let Ok(shards) = redis::cmd("CLUSTER")
            .arg("SHARDS")
            .query_async::<Value>(connection)
            .await
        else {
            return;
        };
        for (ranges, online) in shard_replicas(shards) {
            let online = u8::try_from(online).unwrap_or(u8::MAX - 1);
            for (first, last) in ranges {
                for slot in first..=last.min(16383) {
                    self.seen[usize::from(slot)].store(online, Ordering::Relaxed);
                }
            }
        }
    }

    pub(crate) fn set(&self, wanted: u32) {
        self.wanted.store(wanted, Ordering::Relaxed);
    }

    pub(crate) fn wanted(&self) -> u32 {
        self.wanted.load(Ordering::Relaxed)
    }
}

/// Runs `call`, and with `replicas` waits for them as [`Replicas`] says.
/// One round trip, two when a master just gained a replica.
pub(crate) async fn invoke(
    connection: &mut Connection,
    call: &Call,
    replicas: Option<&Replicas>,
) -> RedisResult<Value> {
    let wanted = replicas.map_or(0, Replicas::wanted);
    if wanted == 0 {
        return match call.evalsha().query_async(connection).await {
            Err(error) if no_script(&error) => {
                call.load(connection).await?;
                call.evalsha().query_async(connection).await
            }
            other => other,
        };
    }
    let replicas = replicas.expect("wanted > 0 only with replicas");
    let slot = call.slot();
    let seen = &replicas.seen[usize::from(slot)];
    let wait_for = wanted.min(u32::from(seen.load(Ordering::Relaxed)));
    let within = u64::try_from(replicas.within.as_millis()).unwrap_or(u64::MAX);
    let pipeline = |wait_for: u32| {
        let mut pipe = redis::pipe();
        pipe.add_command(call.evalsha());
        if wait_for > 0 {
            pipe.cmd("WAIT").arg(wait_for).arg(within.max(1));
        }
        pipe.cmd("ROLE");
        pipe
    };
    let mut replies: Vec<Value> = match pipeline(wait_for).query_async(connection).await {
        Err(error) if no_script(&error) => {
            call.load(connection).await?;
            pipeline(wait_for).query_async(connection).await?
        }
        other => other?,
    };
    let connected = connected_replicas(replies.pop())?;
    let now = u8::try_from(connected).unwrap_or(u8::MAX - 1);
    let before = seen.load(Ordering::Relaxed);
    if before != u8::MAX && before != now && matches!(connection, Connection::Cluster(_)) {
        replicas.refresh(connection).await;
    }
    seen.store(now, Ordering::Relaxed);
    let acknowledged = if wait_for > 0 {
        replies
            .pop()
            .map(redis::from_redis_value::<u32>)
            .transpose()?
    } else {
        None
    };
    let reply = replies
        .pop()
        .ok_or_else(|| redis_error("no reply to a script"))?;
    let needed = wanted.min(connected);
    let acknowledged = acknowledged.unwrap_or(0);
    if acknowledged >= needed {
        return Ok(reply);
    }
    if wait_for >= needed {
        return Err(not_replicated(acknowledged, needed));
    }
    // The master gained a replica since its last write here: wait for it
    // now (`EXISTS` on the call's key only routes the `WAIT` to the same
    // master).
    let mut pipe = redis::pipe();
    pipe.cmd("EXISTS")
        .arg(call.keys.first().map_or(&[][..], Vec::as_slice));
    pipe.cmd("WAIT").arg(needed).arg(within.max(1));
    let (_, acknowledged): (i64, u32) = pipe.query_async(connection).await?;
    if acknowledged >= needed {
        Ok(reply)
    } else {
        Err(not_replicated(acknowledged, needed))
    }
}

/// Per shard of a `CLUSTER SHARDS` reply: its slot ranges and its replicas
/// that are online. Parts it cannot read are left out.
fn shard_replicas(shards: Value) -> Vec<(Vec<(u16, u16)>, u32)> {
    let Value::Array(shards) = shards else {
        return Vec::new();
    };
    shards
        .into_iter()
        .filter_map(|shard| {
            let shard = fields(shard)?;
            let slots = match shard.get("slots")? {
                Value::Array(slots) => slots
                    .chunks(2)
                    .filter_map(|pair| match pair {
                        [Value::Int(first), Value::Int(last)] => {
                            Some((u16::try_from(*first).ok()?, u16::try_from(*last).ok()?))
                        }
                        _ => None,
                    })
                    .collect(),
                _ => return None,
            };
            let Value::Array(nodes) = shard.get("nodes")? else {
                return None;
            };
            let online = nodes
                .iter()
                .filter_map(|node| fields(node.clone()))
                .filter(|node| {
                    text(node.get("role")) == Some("replica")
                        && text(node.get("health")) == Some("online")
                })
                .count();
            Some((slots, u32::try_from(online).unwrap_or(u32::MAX)))
        })
        .collect()
}

/// A reply's name/value pairs (a RESP2 flat array or a RESP3 map).
fn fields(value: Value) -> Option<std::collections::HashMap<String, Value>> {
    let pairs: Vec<(Value, Value)> = match value {
        Value::Map(pairs) => pairs,
        Value::Array(items) => {
            let mut items = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(name), Some(value)) = (items.next(), items.next()) {
                pairs.push((name, value));
            }
            pairs
        }
        _ => return None,
    };
    Some(
        pairs
            .into_iter()
            .filter_map(|(name, value)| Some((text(Some(&name))?.to_owned(), value)))
            .collect(),
    )
}

fn text(value: Option<&Value>) -> Option<&str> {
    match value? {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        _ => None,
    }
}

fn no_script(error: &redis::RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

/// The replicas a master's `ROLE` lists as connected.
fn connected_replicas(role: Option<Value>) -> RedisResult<u32> {
    let Some(Value::Array(role)) = role else {
        return Err(redis_error("unexpected reply to ROLE"));
    };
    match role.as_slice() {
        [Value::BulkString(kind), _, Value::Array(replicas), ..] if kind == b"master" => {
            Ok(u32::try_from(replicas.len()).unwrap_or(u32::MAX))
        }
        _ => Err(redis_error("a write reached a node that is not a master")),
    }
}

fn not_replicated(acknowledged: u32, needed: u32) -> redis::RedisError {
    redis::RedisError::from((
        ErrorKind::Io,
        "a write was not acknowledged by the master's replicas in time",
        format!("{acknowledged} of {needed}"),
    ))
}

fn redis_error(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((ErrorKind::Client, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_cluster_slots() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot_of(b"123456789"), 12739);
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(
            slot_of(b"{user1000}.followers"),
            slot_of(b"{user1000}.following")
        );
        // An empty tag hashes the whole key; only the first tag counts.
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
        assert_eq!(slot_of(b"foo{bar}{zap}"), slot_of(b"bar"));
    }

    #[test]
    fn shards_give_each_range_its_online_replicas() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let node = |role: &str, health: &str| {
            Value::Array(vec![
                bulk("id"),
                bulk("abc"),
                bulk("role"),
                bulk(role),
                bulk("health"),
                bulk(health),
            ])
        };
        let shard = |ranges: Vec<i64>, nodes: Vec<Value>| {
            Value::Array(vec![
                bulk("slots"),
                Value::Array(ranges.into_iter().map(Value::Int).collect()),
                bulk("nodes"),
                Value::Array(nodes),
            ])
        };
        let reply = Value::Array(vec![
            shard(
                vec![0, 5460],
                vec![node("master", "online"), node("replica", "online")],
            ),
            // Failed over: the old master failed, no replica left.
            shard(
                vec![5461, 10922, 12000, 12001],
                vec![node("master", "online"), node("master", "failed")],
            ),
            shard(
                vec![10923, 11999],
                vec![
                    node("master", "online"),
                    node("replica", "loading"),
                    node("replica", "online"),
                    node("replica", "online"),
                ],
            ),
        ]);
        assert_eq!(
            shard_replicas(reply),
            [
                (vec![(0, 5460)], 1),
                (vec![(5461, 10922), (12000, 12001)], 0),
                (vec![(10923, 11999)], 2),
            ]
        );
        assert!(shard_replicas(Value::Nil).is_empty());
    }

    #[test]
    fn cluster_urls_list_their_seeds() {
        assert_eq!(
            cluster_seeds("127.0.0.1:7000,127.0.0.1:7001").unwrap(),
            ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        );
        assert_eq!(
            cluster_seeds("user:pw@h1:7000,h2:7001/").unwrap(),
            ["redis://user:pw@h1:7000", "redis://user:pw@h2:7001"]
        );
        for bad in ["", ",", "h1:7000,", "h1:7000/0", "h1:7000?x=1"] {
            assert!(cluster_seeds(bad).is_err(), "{bad:?}");
        }
    }
}
