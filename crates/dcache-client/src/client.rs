//! The client API: typed commands, a raw `cmd`, and multi-key commands split by node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use dcache_placement::slot;
use dcache_protocol::Frame;
use dcache_protocol::commands::{self, CommandSpec};
use dcache_protocol::reply::encode_command;
use tokio::task::JoinSet;

use crate::cluster::{ClusterState, unserved};
use crate::connection::{Auth, Connection, Password, Settings};
use crate::slots::SlotMap;
use crate::{Error, Topology};

/// Builds a [`Client`].
#[must_use]
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    nodes: Vec<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    fallback: bool,
    max_connections: usize,
    resp3: bool,
    username: Option<String>,
    password: Option<Password>,
    cluster: bool,
    near_cache: usize,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            fallback: false,
            max_connections: 4,
            resp3: true,
            username: None,
            password: None,
            cluster: false,
            near_cache: 0,
        }
    }
}

impl ClientBuilder {
    /// The nodes (`host:port`), each an independent cache: keys are spread over them by
    /// `dcache-placement`.
    pub fn nodes<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.nodes = nodes.into_iter().map(Into::into).collect();
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// When a key's node is unavailable, send its requests to the next node in the key's
    /// placement instead of failing: for a cache, a miss is better than an error.
    /// Static mode only: in cluster mode the cluster gives a failed node's slots to others and
    /// the client follows its map.
    pub fn fallback(mut self, fallback: bool) -> Self {
        self.fallback = fallback;
        self
    }

    /// The most connections to one node (default 4, at least 1). A node starts with one; another
    /// opens when every open one has many requests in flight.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Ask each node for RESP3 (`HELLO 3`) when connecting (default); a node that refuses is
    /// spoken to in RESP2. Replies are understood in either.
    pub fn resp3(mut self, resp3: bool) -> Self {
        self.resp3 = resp3;
        self
    }

    /// Authenticate every new connection with this password (the nodes' `requirepass`): in the
    /// `HELLO 3 AUTH` handshake, or with `AUTH` when speaking RESP2. A node that rejects it is
    /// unavailable, with its error (`WRONGPASS …`) as the reason.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(Password(password.into()));
        self
    }

    /// The user to authenticate as, with [`password`](Self::password) (default: `default`, the
    /// only user of a node configured by `requirepass`). Without a password it is not used.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Cluster mode: the nodes are seeds of one cluster that speaks the Redis Cluster protocol
    /// (dcache nodes, or Redis Cluster). The client learns which node serves each slot from
    /// `CLUSTER SLOTS`, follows `-MOVED` (and refreshes its map) and `-ASK`, retries
    /// `-TRYAGAIN` and `-CLUSTERDOWN` a few times, and splits multi-key commands by slot.
    /// Without it (the default), the nodes are independent caches placed by `dcache-placement`.
    pub fn cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// A near cache of `bytes` (0, the default: none): [`Client::get`] answers from a local copy
    /// when it has one, without a round trip, and the nodes keep the copies coherent by
    /// client-side caching. Every connection then speaks RESP3 with `CLIENT TRACKING ON`; a
    /// node that refuses either is served without the cache. Each entry costs its key, its
    /// value and about 100 bytes; the least useful go first (S3-FIFO). A lost connection drops
    /// what it brought in. Writes made through this client drop their keys at once; writes by
    /// others arrive as invalidations, so a read may see the old value for the time an
    /// invalidation takes to arrive, as with Redis's client-side caching.
    pub fn near_cache(mut self, bytes: usize) -> Self {
        self.near_cache = bytes;
        self
    }

    /// The client. Connections open on first use, so a node that is down now does not stop the
    /// client from serving the others. In cluster mode, the slot map is fetched now, from the
    /// first seed that answers.
    ///
    /// # Errors
    /// No nodes, or a node listed twice; in cluster mode, no seed answering `CLUSTER SLOTS`.
    pub async fn build(self) -> Result<Client, Error> {
        let settings = Settings {
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections,
            resp3: self.resp3 || self.near_cache > 0,
            near: (self.near_cache > 0)
                .then(|| Arc::new(crate::near_cache::NearCache::new(self.near_cache))),
            auth: self.password.map(|password| {
                Arc::new(Auth {
                    username: self.username,
                    password,
                })
            }),
        };
        if self.cluster {
            if self.nodes.is_empty() {
                return Err(Error::Invalid(
                    "a cluster needs at least one seed node".into(),
                ));
            }
            let client = Client {
                routing: Routing::Cluster(ClusterState {
                    seeds: self.nodes,
                    map: RwLock::new(
                        SlotMap::parse(&Frame::Array(Vec::new()), "").expect("an empty map parses"),
                    ),
                    stale: AtomicBool::new(false),
                    refreshing: tokio::sync::Mutex::new(()),
                    refreshes: AtomicU64::new(0),
                }),
                connections: RwLock::new(HashMap::new()),
                settings,
                fallback: self.fallback,
            };
            client.refresh().await?;
            return Ok(client);
        }
        let topology = Topology::from_nodes(&self.nodes)?;
        let connections = topology
            .nodes()
            .map(|n| {
                (
                    n.to_owned(),
                    Connection::new(n.to_owned(), settings.clone()),
                )
            })
            .collect();
        Ok(Client {
            routing: Routing::Static(topology),
            connections: RwLock::new(connections),
            settings,
            fallback: self.fallback,
        })
    }
}

/// Options of SET.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// Expire after this long (millisecond precision).
    pub ttl: Option<Duration>,
    /// Only if the key does not exist.
    pub nx: bool,
    /// Only if the key exists.
    pub xx: bool,
}

/// A dcache client. Cheap to share: wrap it in an `Arc`.
pub struct Client {
    pub(crate) routing: Routing,
    /// One pool per node; in cluster mode, nodes join as the slot map names them.
    connections: RwLock<HashMap<String, Arc<Connection>>>,
    pub(crate) settings: Settings,
    fallback: bool,
}

/// How keys find their node.
pub(crate) enum Routing {
    /// Independent nodes, slots placed over them by `dcache-placement`.
    Static(Topology),
    /// One cluster that says which node serves each slot.
    Cluster(ClusterState),
}

fn as_int(frame: &Frame, node: &str) -> Result<i64, Error> {
    match frame {
        Frame::Integer(i) => Ok(*i),
        other => Err(unexpected(other, node)),
    }
}

fn as_opt_bytes(frame: Frame, node: impl FnOnce() -> String) -> Result<Option<Bytes>, Error> {
    match frame {
        Frame::Bulk(b) => Ok(Some(b)),
        Frame::Null => Ok(None),
        other => Err(unexpected(&other, &node())),
    }
}

fn unexpected(frame: &Frame, node: &str) -> Error {
    Error::UnexpectedReply {
        node: node.to_owned(),
        reply: format!("{frame:?}"),
    }
}

pub(crate) fn check(frame: Frame) -> Result<Frame, Error> {
    match frame {
        Frame::Error(msg) => Err(Error::Server(msg)),
        other => Ok(other),
    }
}

/// A rate limit for [`Client::throttle`]: `count` requests per `period` (whole seconds, at least
/// one), and bursts of up to `max_burst + 1` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max_burst: u32,
    pub count: u32,
    pub period: Duration,
}

/// What [`Client::throttle`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub allowed: bool,
    /// Requests the bucket holds when full (`max_burst + 1`).
    pub limit: i64,
    /// Requests left now.
    pub remaining: i64,
    /// When a refused request may be tried again; `None` when allowed, or when the request is
    /// larger than the whole bucket.
    pub retry_after: Option<Duration>,
    /// When the bucket is full again.
    pub reset_after: Duration,
}

impl Client {
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The static placement, when the client is not in cluster mode.
    #[must_use]
    pub fn topology(&self) -> Option<&Topology> {
        match &self.routing {
            Routing::Static(topology) => Some(topology),
            Routing::Cluster(_) => None,
        }
    }

    /// Whether the client is in cluster mode.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.routing, Routing::Cluster(_))
    }

    /// The node that serves `key` now (in cluster mode, as far as the client knows).
    #[must_use]
    pub fn node_for(&self, key: &[u8]) -> Option<String> {
        match &self.routing {
            Routing::Static(topology) => Some(topology.node_for(key).to_owned()),
            Routing::Cluster(cluster) => cluster.node(slot(key)).map(|n| n.to_string()),
        }
    }

    /// The nodes that serve keys: every node in static mode, the slots' owners in cluster mode.
    #[must_use]
    pub fn nodes(&self) -> Vec<String> {
        match &self.routing {
            Routing::Static(topology) => topology.nodes().map(str::to_owned).collect(),
            Routing::Cluster(cluster) => cluster.map.read().expect("not poisoned").primaries(),
        }
    }

    /// How many connections are open to `node` (0 before its first request).
    #[must_use]
    pub fn open_connections(&self, node: &str) -> usize {
        self.pool(node).map_or(0, |c| c.open_connections())
    }

    /// The RESP version spoken with `node` (2 or 3), as its latest connection agreed.
    #[must_use]
    pub fn protocol(&self, node: &str) -> Option<usize> {
        self.pool(node).map(|c| c.protocol())
    }

    /// Whether `node` is marked down after failures (its requests fail fast until it is retried).
    #[must_use]
    pub fn node_is_down(&self, node: &str) -> bool {
        self.pool(node).is_some_and(|c| c.is_down())
    }

    fn pool(&self, node: &str) -> Option<Arc<Connection>> {
        self.connections
            .read()
            .expect("not poisoned")
            .get(node)
            .cloned()
    }

    /// The connections to `node`; in cluster mode a node the client has not met yet gets them.
    pub(crate) fn connection(&self, node: &str) -> Result<Arc<Connection>, Error> {
        if let Some(pool) = self.pool(node) {
            return Ok(pool);
        }
        match self.routing {
            Routing::Static(_) => Err(Error::Invalid(format!(
                "{node} is not one of the client's nodes"
            ))),
            Routing::Cluster(_) => Ok(Arc::clone(
                self.connections
                    .write()
                    .expect("not poisoned")
                    .entry(node.to_owned())
                    .or_insert_with(|| Connection::new(node.to_owned(), self.settings.clone())),
            )),
        }
    }

    /// Runs any command and returns the reply; error replies become [`Error::Server`].
    ///
    /// A command goes to the node that serves its first key (the command table in
    /// `dcache-protocol` says where the keys are). Multi-key commands are split by node (by slot
    /// in cluster mode, where a node refuses keys of several slots) and merged: MGET in the
    /// caller's order; DEL, UNLINK, EXISTS and TOUCH summed; MSET atomic per part only. Keyless
    /// commands that Redis tips as for all shards run on every node (DBSIZE summed, KEYS
    /// concatenated, FLUSHALL and PING on all); other keyless commands go to one node.
    ///
    /// # Errors
    /// The node's error reply, a timeout, or an unreachable node.
    pub async fn cmd<A: AsRef<[u8]>>(&self, args: &[A]) -> Result<Frame, Error> {
        let Some(name) = args.first() else {
            return Err(Error::Invalid("a command needs a name".into()));
        };
        let spec = commands::lookup(name.as_ref()).map(|(_, spec)| spec);
        self.forget_written(args);
        let rest = &args[1..];
        match spec.map(|s| s.name) {
            Some("mget") if !rest.is_empty() => {
                let values = self.mget(rest).await?;
                return Ok(Frame::Array(
                    values
                        .into_iter()
                        .map(|v| v.map_or(Frame::Null, Frame::Bulk))
                        .collect(),
                ));
            }
            Some(name @ ("del" | "unlink" | "exists" | "touch")) if !rest.is_empty() => {
                let count = self
                    .count_keys(name.to_ascii_uppercase().as_bytes(), rest)
                    .await?;
                return Ok(Frame::Integer(count as i64));
            }
            Some("mset") if !rest.is_empty() && rest.len().is_multiple_of(2) => {
                let pairs: Vec<(&[u8], &[u8])> = rest
                    .chunks(2)
                    .map(|p| (p[0].as_ref(), p[1].as_ref()))
                    .collect();
                self.mset(&pairs).await?;
                return Ok(Frame::Simple("OK".into()));
            }
            _ => {}
        }
        if let Some(spec) = spec.filter(|s| broadcast(s)) {
            return self.broadcast(spec, args).await;
        }
        let key = match spec {
            Some(spec) => commands::keys(spec, args).next().map(|i| args[i].as_ref()),
            // A command the table does not know: its first argument is the best guess.
            None => args.get(1).map(AsRef::as_ref),
        };
        match key {
            Some(key) => self.keyed(key, args).await,
            None => match &self.routing {
                Routing::Static(topology) => {
                    let first = topology
                        .nodes()
                        .next()
                        .expect("at least one node")
                        .to_owned();
                    self.node_cmd(&first, args).await
                }
                Routing::Cluster(_) => self.cluster_request(None, args).await,
            },
        }
    }

    /// Runs a command whose routing key is `key` on the node that serves it.
    async fn keyed<A: AsRef<[u8]>>(&self, key: &[u8], args: &[A]) -> Result<Frame, Error> {
        self.forget_written(args);
        let topology = match &self.routing {
            Routing::Static(topology) => topology,
            Routing::Cluster(_) => return self.cluster_request(Some(slot(key)), args).await,
        };
        let mut result = self.node_cmd(topology.node_for(key), args).await;
        if self.fallback {
            for next in topology.nodes_for(key).skip(1) {
                match result {
                    Err(Error::Unavailable { .. }) => result = self.node_cmd(next, args).await,
                    _ => break,
                }
            }
        }
        result
    }

    /// Runs a keyless command that Redis tips as for all shards on every node, and merges the
    /// replies as its response policy says: summed, the first when all succeeded, or arrays
    /// concatenated.
    async fn broadcast<A: AsRef<[u8]>>(
        &self,
        spec: &CommandSpec,
        args: &[A],
    ) -> Result<Frame, Error> {
        if let Routing::Cluster(_) = self.routing {
            self.refresh_if_stale().await;
        }
        let requests = self
            .nodes()
            .into_iter()
            .map(|n| (n, args.iter().map(|a| a.as_ref().to_vec()).collect()))
            .collect();
        let mut replies = self.fan_out(requests).await?;
        Ok(match spec.tip("response_policy") {
            Some("agg_sum") => Frame::Integer(
                replies
                    .iter()
                    .map(|(node, f)| as_int(f, node))
                    .sum::<Result<i64, Error>>()?,
            ),
            Some(_) => replies.swap_remove(0).1,
            None => Frame::Array(
                replies
                    .into_iter()
                    .flat_map(|(_, f)| match f {
                        Frame::Array(items) | Frame::Set(items) => items,
                        other => vec![other],
                    })
                    .collect(),
            ),
        })
    }

    /// Runs a command on one given node.
    ///
    /// # Errors
    /// As [`Client::cmd`], and [`Error::Invalid`] for a node the client does not know (in
    /// static mode; a cluster client talks to any node).
    pub async fn node_cmd<A: AsRef<[u8]>>(&self, node: &str, args: &[A]) -> Result<Frame, Error> {
        let mut bytes = Vec::new();
        encode_command(args.iter().map(AsRef::as_ref), &mut bytes);
        let mut frames = self.connection(node)?.send(bytes, 1).await?;
        check(frames.pop().expect("one reply per command"))
    }

    /// Sends several commands to the node of `key` in one write and returns every reply, errors
    /// included, in order. In cluster mode redirects are returned as they are, not followed.
    ///
    /// # Errors
    /// A timeout or an unreachable node; in cluster mode, no node serving the slot.
    pub async fn pipeline<A: AsRef<[u8]>>(
        &self,
        key: &[u8],
        commands: &[Vec<A>],
    ) -> Result<Vec<Frame>, Error> {
        let mut bytes = Vec::new();
        for args in commands {
            encode_command(args.iter().map(AsRef::as_ref), &mut bytes);
        }
        let node = self.node_for(key).ok_or_else(|| unserved(slot(key)))?;
        self.connection(&node)?.send(bytes, commands.len()).await
    }

    /// GET; from the near cache when it has the key ([`ClientBuilder::near_cache`]).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
        let key = key.as_ref();
        if let Some(cache) = &self.settings.near {
            let token = match cache.get(key) {
                Ok(value) => {
                    // A hit completes without waiting on anything: spend the task's
                    // cooperative budget, so that a loop of hits still lets the runtime run
                    // other tasks (the connections' readers, which apply invalidations).
                    tokio::task::consume_budget().await;
                    return Ok(value);
                }
                Err(token) => token,
            };
            // The key's node as the client knows it now; a redirect, a node down or an
            // error takes the ordinary path, without filling.
            if let Some(node) = self.node_for(key) {
                let mut bytes = Vec::new();
                encode_command([&b"GET"[..], key], &mut bytes);
                let reply = self.connection(&node)?.send_fill(bytes, key, token).await;
                match reply {
                    Ok(frame @ (Frame::Bulk(_) | Frame::Null)) => {
                        return as_opt_bytes(frame, || self.describe(key));
                    }
                    _ => cache.abandon(key, token),
                }
            } else {
                cache.abandon(key, token);
            }
        }
        let reply = self.keyed(key, &[b"GET".as_slice(), key]).await?;
        as_opt_bytes(reply, || self.describe(key))
    }

    /// The near cache's counters; `None` without one.
    #[must_use]
    pub fn near_cache_stats(&self) -> Option<crate::NearCacheStats> {
        self.settings.near.as_ref().map(|c| c.stats())
    }

    /// Whether the near cache holds `key` now (counts nothing); false without one.
    #[must_use]
    pub fn near_cache_contains(&self, key: impl AsRef<[u8]>) -> bool {
        self.settings
            .near
            .as_ref()
            .is_some_and(|c| c.contains(key.as_ref()))
    }

    /// A write made through this client drops its keys from the near cache before it is sent,
    /// so that this client reads its own writes (the node's invalidation may come later, and on
    /// another connection). FLUSHALL and FLUSHDB drop everything.
    fn forget_written<A: AsRef<[u8]>>(&self, args: &[A]) {
        let Some(cache) = &self.settings.near else {
            return;
        };
        let Some(spec) = args
            .first()
            .and_then(|name| commands::lookup(name.as_ref()))
            .map(|(_, spec)| spec)
        else {
            return;
        };
        if spec.flags & commands::WRITE == 0 {
            return;
        }
        if matches!(spec.name, "flushall" | "flushdb") {
            cache.flush();
        } else {
            cache.invalidate(commands::keys(spec, args).map(|i| args[i].as_ref()));
        }
    }

    pub async fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<(), Error> {
        self.set_with(key, value, SetOptions::default())
            .await
            .map(|_| ())
    }

    /// SET with options; false when NX or XX prevented the write.
    pub async fn set_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: SetOptions,
    ) -> Result<bool, Error> {
        let key = key.as_ref();
        let mut args: Vec<&[u8]> = vec![b"SET", key, value.as_ref()];
        let ttl;
        if let Some(t) = options.ttl {
            ttl = t.as_millis().max(1).to_string();
            args.push(b"PX");
            args.push(ttl.as_bytes());
        }
        if options.nx {
            args.push(b"NX");
        }
        if options.xx {
            args.push(b"XX");
        }
        Ok(!matches!(self.keyed(key, &args).await?, Frame::Null))
    }

    pub async fn incr_by(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64, Error> {
        let key = key.as_ref();
        let reply = self
            .keyed(
                key,
                &[b"INCRBY".as_slice(), key, delta.to_string().as_bytes()],
            )
            .await?;
        as_int(&reply, &self.describe(key))
    }

    pub async fn incr(&self, key: impl AsRef<[u8]>) -> Result<i64, Error> {
        self.incr_by(key, 1).await
    }

    /// Sets a TTL; false when the key does not exist.
    pub async fn expire(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Result<bool, Error> {
        let key = key.as_ref();
        let ms = ttl.as_millis().to_string();
        let reply = self
            .keyed(key, &[b"PEXPIRE".as_slice(), key, ms.as_bytes()])
            .await?;
        Ok(as_int(&reply, &self.describe(key))? == 1)
    }

    /// The remaining TTL: `None` when the key does not exist or has no TTL.
    pub async fn ttl(&self, key: impl AsRef<[u8]>) -> Result<Option<Duration>, Error> {
        let key = key.as_ref();
        let reply = self.keyed(key, &[b"PTTL".as_slice(), key]).await?;
        let ms = as_int(&reply, &self.describe(key))?;
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    /// Counts `quantity` requests against the rate limit at `key` (`CL.THROTTLE`, the generic
    /// cell rate algorithm): `count` per `period`, with bursts of `max_burst` more than one. The
    /// node decides under the key's lock, so concurrent callers are counted exactly.
    pub async fn throttle(
        &self,
        key: impl AsRef<[u8]>,
        limit: RateLimit,
        quantity: u32,
    ) -> Result<Throttle, Error> {
        let key = key.as_ref();
        let (burst, count, period, quantity) = (
            limit.max_burst.to_string(),
            limit.count.to_string(),
            limit.period.as_secs().max(1).to_string(),
            quantity.to_string(),
        );
        let reply = self
            .keyed(
                key,
                &[
                    b"CL.THROTTLE".as_slice(),
                    key,
                    burst.as_bytes(),
                    count.as_bytes(),
                    period.as_bytes(),
                    quantity.as_bytes(),
                ],
            )
            .await?;
        let node = self.describe(key);
        let ints = match &reply {
            Frame::Array(items) if items.len() == 5 => items
                .iter()
                .map(|f| as_int(f, &node))
                .collect::<Result<Vec<_>, _>>()?,
            other => return Err(unexpected(other, &node)),
        };
        let secs = |n: i64| u64::try_from(n).ok().map(Duration::from_secs);
        Ok(Throttle {
            allowed: ints[0] == 0,
            limit: ints[1],
            remaining: ints[2],
            retry_after: secs(ints[3]),
            reset_after: secs(ints[4]).unwrap_or_default(),
        })
    }

    pub async fn hset(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<bool, Error> {
        let key = key.as_ref();
        let reply = self
            .keyed(
                key,
                &[b"HSET".as_slice(), key, field.as_ref(), value.as_ref()],
            )
            .await?;
        Ok(as_int(&reply, &self.describe(key))? == 1)
    }

    pub async fn hget(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
    ) -> Result<Option<Bytes>, Error> {
        let key = key.as_ref();
        let reply = self
            .keyed(key, &[b"HGET".as_slice(), key, field.as_ref()])
            .await?;
        as_opt_bytes(reply, || self.describe(key))
    }

    pub async fn hgetall(&self, key: impl AsRef<[u8]>) -> Result<Vec<(Bytes, Bytes)>, Error> {
        let key = key.as_ref();
        match self.keyed(key, &[b"HGETALL".as_slice(), key]).await? {
            Frame::Array(items) => {
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(Frame::Bulk(f)), Some(Frame::Bulk(v))) = (it.next(), it.next()) {
                    pairs.push((f, v));
                }
                Ok(pairs)
            }
            Frame::Map(items) => Ok(items
                .into_iter()
                .filter_map(|(f, v)| match (f, v) {
                    (Frame::Bulk(f), Frame::Bulk(v)) => Some((f, v)),
                    _ => None,
                })
                .collect()),
            other => Err(unexpected(&other, &self.describe(key))),
        }
    }

    /// The node of `key` for an error message: only built when something went wrong.
    fn describe(&self, key: &[u8]) -> String {
        self.node_for(key)
            .unwrap_or_else(|| format!("slot {}", slot(key)))
    }

    /// Groups `keys` (with their positions) by node in static mode, by slot in cluster mode:
    /// each group is one request.
    fn groups<'k, K: AsRef<[u8]>>(&self, keys: &'k [K]) -> Vec<Group<'k>> {
        let mut groups: HashMap<GroupKey, Vec<(usize, &[u8])>> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let key = key.as_ref();
            let at = match &self.routing {
                Routing::Static(topology) => GroupKey::Node(topology.node_for(key).to_owned()),
                Routing::Cluster(_) => GroupKey::Slot(slot(key)),
            };
            groups.entry(at).or_default().push((i, key));
        }
        groups
            .into_iter()
            .map(|(at, keys)| Group { at, keys })
            .collect()
    }

    /// Runs one request per group (`requests[i]` for `groups[i]`) and returns the replies in
    /// the same order: in parallel over nodes, each node's share in one write; in cluster
    /// mode, a request that gets a redirect or whose node fails is run again alone, following
    /// redirects.
    async fn run_groups(
        &self,
        groups: &[Group<'_>],
        requests: Vec<Vec<Vec<u8>>>,
    ) -> Result<Vec<Frame>, Error> {
        let Routing::Cluster(cluster) = &self.routing else {
            let per_node = groups
                .iter()
                .zip(requests)
                .map(|(g, args)| match &g.at {
                    GroupKey::Node(node) => (node.clone(), args),
                    GroupKey::Slot(_) => unreachable!("static groups are by node"),
                })
                .collect();
            // Static groups are one per node, so the replies come back by node.
            let mut by_node: HashMap<String, Frame> =
                self.fan_out(per_node).await?.into_iter().collect();
            return Ok(groups
                .iter()
                .map(|g| match &g.at {
                    GroupKey::Node(node) => by_node.remove(node).expect("a reply per node"),
                    GroupKey::Slot(_) => unreachable!("static groups are by node"),
                })
                .collect());
        };
        self.run_slot_groups(cluster, groups, requests).await
    }

    /// Runs one command per node in parallel: `name` followed by that node's arguments.
    async fn fan_out(
        &self,
        requests: Vec<(String, Vec<Vec<u8>>)>,
    ) -> Result<Vec<(String, Frame)>, Error> {
        let mut tasks = JoinSet::new();
        for (node, args) in requests {
            let conn = self.connection(&node)?;
            tasks.spawn(async move {
                let mut bytes = Vec::new();
                encode_command(args.iter(), &mut bytes);
                let frame = conn
                    .send(bytes, 1)
                    .await
                    .map(|mut f| f.pop().expect("one reply"));
                (node, frame)
            });
        }
        let mut replies = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let (node, frame) = done.expect("request tasks do not panic");
            replies.push((node, check(frame?)?));
        }
        Ok(replies)
    }

    /// Deletes keys on whichever nodes hold them; returns how many existed.
    pub async fn del<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<u64, Error> {
        self.count_keys(b"DEL", keys).await
    }

    /// How many of the keys exist (a key named twice counts twice).
    pub async fn exists<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<u64, Error> {
        self.count_keys(b"EXISTS", keys).await
    }

    async fn count_keys<K: AsRef<[u8]>>(&self, name: &[u8], keys: &[K]) -> Result<u64, Error> {
        if let Some(cache) = &self.settings.near
            && (name.eq_ignore_ascii_case(b"DEL") || name.eq_ignore_ascii_case(b"UNLINK"))
        {
            cache.invalidate(keys.iter().map(AsRef::as_ref));
        }
        let groups = self.groups(keys);
        let requests = groups
            .iter()
            .map(|g| {
                let mut args = vec![name.to_vec()];
                args.extend(g.keys.iter().map(|(_, k)| k.to_vec()));
                args
            })
            .collect();
        let mut total = 0;
        for (g, frame) in groups.iter().zip(self.run_groups(&groups, requests).await?) {
            total += as_int(&frame, &g.at.to_string())? as u64;
        }
        Ok(total)
    }

    /// The values of `keys`, in the caller's order, fetched from every node in parallel.
    pub async fn mget<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Bytes>>, Error> {
        let groups = self.groups(keys);
        let requests = groups
            .iter()
            .map(|g| {
                let mut args = vec![b"MGET".to_vec()];
                args.extend(g.keys.iter().map(|(_, k)| k.to_vec()));
                args
            })
            .collect();
        let mut values = vec![None; keys.len()];
        for (g, frame) in groups.iter().zip(self.run_groups(&groups, requests).await?) {
            let Frame::Array(items) = frame else {
                return Err(unexpected(&frame, &g.at.to_string()));
            };
            for ((i, _), item) in g.keys.iter().zip(items) {
                values[*i] = as_opt_bytes(item, || g.at.to_string())?;
            }
        }
        Ok(values)
    }

    /// Sets every pair; each node's (in cluster mode, each slot's) share is set atomically, the
    /// whole is not.
    pub async fn mset<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        pairs: &[(K, V)],
    ) -> Result<(), Error> {
        let keys: Vec<&[u8]> = pairs.iter().map(|(k, _)| k.as_ref()).collect();
        if let Some(cache) = &self.settings.near {
            cache.invalidate(keys.iter().copied());
        }
        let groups = self.groups(&keys);
        let requests = groups
            .iter()
            .map(|g| {
                let mut args = vec![b"MSET".to_vec()];
                for &(i, key) in &g.keys {
                    args.push(key.to_vec());
                    args.push(pairs[i].1.as_ref().to_vec());
                }
                args
            })
            .collect();
        self.run_groups(&groups, requests).await.map(|_| ())
    }
}

/// Where one group of a multi-key command goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum GroupKey {
    Node(String),
    Slot(u16),
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupKey::Node(node) => f.write_str(node),
            GroupKey::Slot(s) => write!(f, "slot {s}"),
        }
    }
}

/// The keys of one request of a split multi-key command, with their positions in the
/// caller's list.
pub(crate) struct Group<'k> {
    pub(crate) at: GroupKey,
    pub(crate) keys: Vec<(usize, &'k [u8])>,
}

/// Whether a keyless command runs on every node: Redis tips it for all shards, with replies
/// a client can merge (summed, all succeeded, or arrays concatenated). INFO (a `special`
/// policy) and RANDOMKEY (one key, not a list) go to one node.
fn broadcast(spec: &CommandSpec) -> bool {
    spec.keys.is_empty()
        && spec.tip("request_policy") == Some("all_shards")
        && match spec.tip("response_policy") {
            Some(policy) => policy == "agg_sum" || policy == "all_succeeded",
            None => spec.tips.contains(&"nondeterministic_output_order"),
        }
}
