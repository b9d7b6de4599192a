//! One Redis server or a Redis Cluster, behind one connection type; one
//! call, a script or a command; and the writes that must outlive a
//! failover, which wait for the replicas of the master that took them.

use std::time::Duration;

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

    /// A connection made now: a cluster's client connects to its seeds and
    /// reads the layout before it answers (the background rebuild waits
    /// for it, bounded by the caller); a single server's is made lazily.
    pub(crate) async fn connect_now(&self) -> Result<Connection, StoreError> {
        match self {
            Self::Single(..) => self.connect(),
            Self::Cluster(client, config) => client
                .get_async_connection_with_config(config.clone())
                .await
                .map(Connection::Cluster)
                .map_err(|e| StoreError::with_source("cannot connect to the Redis Cluster", e)),
        }
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
}

/// Writes that must survive a failover wait until `replicas` replicas of
/// the master that took them have them too (`WAIT`, in the same round
/// trip), before the gate answers: Redis replicates asynchronously, and a
/// replica promoted without a write the gate already acted on would let a
/// code be redeemed twice. Fewer acknowledgements within `within` fail the
/// call (closed).
///
/// Never fewer than asked for, whatever the master has connected: a replica
/// whose link dropped a moment ago can still be promoted, with what it had.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Replicas {
    pub(crate) count: u32,
    pub(crate) within: Duration,
}

/// Runs `call`, and with `replicas` (at least one) waits for them. One
/// round trip.
pub(crate) async fn invoke(
    connection: &mut Connection,
    call: &Call,
    replicas: Option<Replicas>,
) -> RedisResult<Value> {
    let Some(replicas) = replicas else {
        return match call.evalsha().query_async(connection).await {
            Err(error) if no_script(&error) => {
                call.load(connection).await?;
                call.evalsha().query_async(connection).await
            }
            other => other,
        };
    };
    let within = u64::try_from(replicas.within.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let mut pipe = redis::pipe();
    pipe.add_command(call.evalsha());
    pipe.cmd("WAIT").arg(replicas.count).arg(within);
    let (reply, acknowledged): (Value, u32) = match pipe.query_async(connection).await {
        Err(error) if no_script(&error) => {
            call.load(connection).await?;
            pipe.query_async(connection).await?
        }
        other => other?,
    };
    if acknowledged >= replicas.count {
        Ok(reply)
    } else {
        Err(not_replicated(acknowledged, replicas.count))
    }
}

/// Whether `error` says the connection or the cluster's layout is in
/// trouble (a broken or refused connection, a timeout, the cluster down), as
/// opposed to an answer a new connection would only repeat (`OOM`,
/// `NOPERM`, a script's error) or a replica's silence ([`invoke`]'s own
/// error, of the client kind, which none of these is).
pub(crate) fn is_connection_trouble(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.kind() == ErrorKind::Server(ServerErrorKind::ClusterDown)
}

fn no_script(error: &redis::RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

fn not_replicated(acknowledged: u32, needed: u32) -> redis::RedisError {
    redis::RedisError::from((
        ErrorKind::Client,
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
