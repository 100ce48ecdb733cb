//! The client API: typed commands, a raw `cmd`, and multi-key commands split by node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dcache_protocol::Frame;
use dcache_protocol::reply::encode_command;
use tokio::task::JoinSet;

use crate::connection::{Auth, Connection, Password, Settings};
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

    /// The client. Connections open on first use, so a node that is down now does not stop the
    /// client from serving the others.
    ///
    /// # Errors
    /// No nodes, or a node listed twice.
    pub async fn build(self) -> Result<Client, Error> {
        let topology = Topology::from_nodes(&self.nodes)?;
        let settings = Settings {
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections,
            resp3: self.resp3,
            auth: self.password.map(|password| {
                Arc::new(Auth {
                    username: self.username,
                    password,
                })
            }),
        };
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
            topology,
            connections,
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
    topology: Topology,
    connections: HashMap<String, Arc<Connection>>,
    fallback: bool,
}

/// The key a command is routed by, if it has one: its first key argument, as the command table
/// says. A command the table does not know is routed by its first argument, a guess that holds
/// for most commands.
fn routing_key<A: AsRef<[u8]>>(args: &[A]) -> Option<&[u8]> {
    match dcache_protocol::commands::lookup(args.first()?.as_ref()) {
        Some((_, spec)) => dcache_protocol::commands::keys(spec, args)
            .next()
            .map(|i| args[i].as_ref()),
        None => args.get(1).map(AsRef::as_ref),
    }
}

fn as_int(frame: &Frame, node: &str) -> Result<i64, Error> {
    match frame {
        Frame::Integer(i) => Ok(*i),
        other => Err(unexpected(other, node)),
    }
}

fn as_opt_bytes(frame: Frame, node: &str) -> Result<Option<Bytes>, Error> {
    match frame {
        Frame::Bulk(b) => Ok(Some(b)),
        Frame::Null => Ok(None),
        other => Err(unexpected(&other, node)),
    }
}

fn unexpected(frame: &Frame, node: &str) -> Error {
    Error::UnexpectedReply {
        node: node.to_owned(),
        reply: format!("{frame:?}"),
    }
}

fn check(frame: Frame) -> Result<Frame, Error> {
    match frame {
        Frame::Error(msg) => Err(Error::Server(msg)),
        other => Ok(other),
    }
}

impl Client {
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    #[must_use]
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// How many connections are open to `node` (0 before its first request).
    #[must_use]
    pub fn open_connections(&self, node: &str) -> usize {
        self.connections
            .get(node)
            .map_or(0, |c| c.open_connections())
    }

    /// The RESP version spoken with `node` (2 or 3), as its latest connection agreed.
    #[must_use]
    pub fn protocol(&self, node: &str) -> Option<usize> {
        self.connections.get(node).map(|c| c.protocol())
    }

    /// Whether `node` is marked down after failures (its requests fail fast until it is retried).
    #[must_use]
    pub fn node_is_down(&self, node: &str) -> bool {
        self.connections.get(node).is_some_and(|c| c.is_down())
    }

    fn connection(&self, node: &str) -> Result<&Arc<Connection>, Error> {
        self.connections
            .get(node)
            .ok_or_else(|| Error::Invalid(format!("{node} is not one of the client's nodes")))
    }

    /// Runs any command and returns the reply; error replies become [`Error::Server`].
    ///
    /// A command goes to the node that owns its key. Multi-key commands are split by node and
    /// merged (MGET in the caller's order; DEL, UNLINK, EXISTS and TOUCH summed; MSET on every
    /// node, atomic per node only). DBSIZE is summed and KEYS concatenated over all nodes, and
    /// FLUSHDB/FLUSHALL run on all of them. Other keyless commands (PING, INFO, SCAN, …) go to
    /// the first node.
    ///
    /// # Errors
    /// The node's error reply, a timeout, or an unreachable node.
    pub async fn cmd<A: AsRef<[u8]>>(&self, args: &[A]) -> Result<Frame, Error> {
        let Some(name) = args.first() else {
            return Err(Error::Invalid("a command needs a name".into()));
        };
        let name = String::from_utf8_lossy(name.as_ref()).to_ascii_lowercase();
        let rest = &args[1..];
        match name.as_str() {
            "mget" if !rest.is_empty() => {
                let values = self.mget(rest).await?;
                return Ok(Frame::Array(
                    values
                        .into_iter()
                        .map(|v| v.map_or(Frame::Null, Frame::Bulk))
                        .collect(),
                ));
            }
            "del" | "unlink" | "exists" | "touch" if !rest.is_empty() => {
                let count = self
                    .count_keys(name.to_ascii_uppercase().as_bytes(), rest)
                    .await?;
                return Ok(Frame::Integer(count as i64));
            }
            "mset" if !rest.is_empty() && rest.len().is_multiple_of(2) => {
                let pairs: Vec<(&[u8], &[u8])> = rest
                    .chunks(2)
                    .map(|p| (p[0].as_ref(), p[1].as_ref()))
                    .collect();
                self.mset(&pairs).await?;
                return Ok(Frame::Simple("OK".into()));
            }
            "dbsize" | "keys" | "flushdb" | "flushall" => {
                let requests = self
                    .topology
                    .nodes()
                    .map(|n| {
                        (
                            n.to_owned(),
                            args.iter().map(|a| a.as_ref().to_vec()).collect(),
                        )
                    })
                    .collect();
                let replies = self.fan_out(requests).await?;
                return Ok(match name.as_str() {
                    "dbsize" => Frame::Integer(
                        replies
                            .iter()
                            .map(|(node, f)| as_int(f, node))
                            .sum::<Result<i64, Error>>()?,
                    ),
                    "keys" => Frame::Array(
                        replies
                            .into_iter()
                            .flat_map(|(_, f)| match f {
                                Frame::Array(items) => items,
                                other => vec![other],
                            })
                            .collect(),
                    ),
                    _ => Frame::Simple("OK".into()),
                });
            }
            _ => {}
        }
        let Some(key) = routing_key(args) else {
            let first = self
                .topology
                .nodes()
                .next()
                .expect("at least one node")
                .to_owned();
            return self.node_cmd(&first, args).await;
        };
        let mut result = self.node_cmd(self.topology.node_for(key), args).await;
        if self.fallback {
            for next in self.topology.nodes_for(key).skip(1) {
                match result {
                    Err(Error::Unavailable { .. }) => result = self.node_cmd(next, args).await,
                    _ => break,
                }
            }
        }
        result
    }

    /// Runs a command on one given node.
    ///
    /// # Errors
    /// As [`Client::cmd`], and [`Error::Invalid`] for a node the client does not know.
    pub async fn node_cmd<A: AsRef<[u8]>>(&self, node: &str, args: &[A]) -> Result<Frame, Error> {
        let mut bytes = Vec::new();
        encode_command(args.iter().map(AsRef::as_ref), &mut bytes);
        let mut frames = self.connection(node)?.send(bytes, 1).await?;
        check(frames.pop().expect("one reply per command"))
    }

    /// Sends several commands to the node of `key` in one write and returns every reply, errors
    /// included, in order.
    ///
    /// # Errors
    /// A timeout or an unreachable node.
    pub async fn pipeline<A: AsRef<[u8]>>(
        &self,
        key: &[u8],
        commands: &[Vec<A>],
    ) -> Result<Vec<Frame>, Error> {
        let mut bytes = Vec::new();
        for args in commands {
            encode_command(args.iter().map(AsRef::as_ref), &mut bytes);
        }
        let node = self.topology.node_for(key);
        self.connection(node)?.send(bytes, commands.len()).await
    }

    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>, Error> {
        let key = key.as_ref();
        let node = self.topology.node_for(key).to_owned();
        as_opt_bytes(self.cmd(&[b"GET".as_slice(), key]).await?, &node)
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
        let mut args: Vec<Vec<u8>> = vec![
            b"SET".to_vec(),
            key.as_ref().to_vec(),
            value.as_ref().to_vec(),
        ];
        if let Some(ttl) = options.ttl {
            args.push(b"PX".to_vec());
            args.push(ttl.as_millis().max(1).to_string().into_bytes());
        }
        if options.nx {
            args.push(b"NX".to_vec());
        }
        if options.xx {
            args.push(b"XX".to_vec());
        }
        Ok(!matches!(self.cmd(&args).await?, Frame::Null))
    }

    pub async fn incr_by(&self, key: impl AsRef<[u8]>, delta: i64) -> Result<i64, Error> {
        let key = key.as_ref();
        let reply = self
            .cmd(&[b"INCRBY".as_slice(), key, delta.to_string().as_bytes()])
            .await?;
        as_int(&reply, self.topology.node_for(key))
    }

    pub async fn incr(&self, key: impl AsRef<[u8]>) -> Result<i64, Error> {
        self.incr_by(key, 1).await
    }

    /// Sets a TTL; false when the key does not exist.
    pub async fn expire(&self, key: impl AsRef<[u8]>, ttl: Duration) -> Result<bool, Error> {
        let key = key.as_ref();
        let ms = ttl.as_millis().to_string();
        let reply = self
            .cmd(&[b"PEXPIRE".as_slice(), key, ms.as_bytes()])
            .await?;
        Ok(as_int(&reply, self.topology.node_for(key))? == 1)
    }

    /// The remaining TTL: `None` when the key does not exist or has no TTL.
    pub async fn ttl(&self, key: impl AsRef<[u8]>) -> Result<Option<Duration>, Error> {
        let key = key.as_ref();
        let reply = self.cmd(&[b"PTTL".as_slice(), key]).await?;
        let ms = as_int(&reply, self.topology.node_for(key))?;
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    pub async fn hset(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<bool, Error> {
        let key = key.as_ref();
        let reply = self
            .cmd(&[b"HSET".as_slice(), key, field.as_ref(), value.as_ref()])
            .await?;
        Ok(as_int(&reply, self.topology.node_for(key))? == 1)
    }

    pub async fn hget(
        &self,
        key: impl AsRef<[u8]>,
        field: impl AsRef<[u8]>,
    ) -> Result<Option<Bytes>, Error> {
        let key = key.as_ref();
        let node = self.topology.node_for(key).to_owned();
        as_opt_bytes(
            self.cmd(&[b"HGET".as_slice(), key, field.as_ref()]).await?,
            &node,
        )
    }

    pub async fn hgetall(&self, key: impl AsRef<[u8]>) -> Result<Vec<(Bytes, Bytes)>, Error> {
        let key = key.as_ref();
        let node = self.topology.node_for(key).to_owned();
        match self.cmd(&[b"HGETALL".as_slice(), key]).await? {
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
            other => Err(unexpected(&other, &node)),
        }
    }

    /// Groups `keys` (with their positions) by node.
    fn by_node<'k, K: AsRef<[u8]>>(
        &self,
        keys: &'k [K],
    ) -> HashMap<String, Vec<(usize, &'k [u8])>> {
        let mut groups: HashMap<String, Vec<(usize, &[u8])>> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let key = key.as_ref();
            groups
                .entry(self.topology.node_for(key).to_owned())
                .or_default()
                .push((i, key));
        }
        groups
    }

    /// Runs one command per node in parallel: `name` followed by that node's arguments.
    async fn fan_out(
        &self,
        requests: Vec<(String, Vec<Vec<u8>>)>,
    ) -> Result<Vec<(String, Frame)>, Error> {
        let mut tasks = JoinSet::new();
        for (node, args) in requests {
            let conn = Arc::clone(self.connection(&node)?);
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
        let requests = self
            .by_node(keys)
            .into_iter()
            .map(|(node, group)| {
                let mut args = vec![name.to_vec()];
                args.extend(group.iter().map(|(_, k)| k.to_vec()));
                (node, args)
            })
            .collect();
        let mut total = 0;
        for (node, frame) in self.fan_out(requests).await? {
            total += as_int(&frame, &node)? as u64;
        }
        Ok(total)
    }

    /// The values of `keys`, in the caller's order, fetched from every node in parallel.
    pub async fn mget<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Bytes>>, Error> {
        let groups = self.by_node(keys);
        let requests = groups
            .iter()
            .map(|(node, group)| {
                let mut args = vec![b"MGET".to_vec()];
                args.extend(group.iter().map(|(_, k)| k.to_vec()));
                (node.clone(), args)
            })
            .collect();
        let mut values = vec![None; keys.len()];
        for (node, frame) in self.fan_out(requests).await? {
            let Frame::Array(items) = frame else {
                return Err(unexpected(&frame, &node));
            };
            for ((i, _), item) in groups[&node].iter().zip(items) {
                values[*i] = as_opt_bytes(item, &node)?;
            }
        }
        Ok(values)
    }

    /// Sets every pair; each node's share is set atomically, the whole is not.
    pub async fn mset<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        pairs: &[(K, V)],
    ) -> Result<(), Error> {
        let keys: Vec<&[u8]> = pairs.iter().map(|(k, _)| k.as_ref()).collect();
        let requests = self
            .by_node(&keys)
            .into_iter()
            .map(|(node, group)| {
                let mut args = vec![b"MSET".to_vec()];
                for (i, key) in group {
                    args.push(key.to_vec());
                    args.push(pairs[i].1.as_ref().to_vec());
                }
                (node, args)
            })
            .collect();
        self.fan_out(requests).await.map(|_| ())
    }
}
