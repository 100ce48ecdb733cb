//! What every connection shares: the store, the live configuration, counters and the client list.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use dcache_protocol::Limits;
use dcache_store::{Store, StoreConfig};
use parking_lot::{Mutex, RwLock};

use crate::clock::Clock;
use crate::config::NodeConfig;
use crate::stats::{OpsSampler, Stats};

/// One connected client, as `CLIENT LIST` shows it.
#[derive(Debug)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub local_addr: SocketAddr,
    pub created_ms: u64,
    pub name: Mutex<String>,
    pub lib_name: Mutex<String>,
    pub lib_ver: Mutex<String>,
    /// Index of the last command in the command table (`u16::MAX` before the first).
    pub last_command: std::sync::atomic::AtomicU16,
    pub last_active_ms: AtomicU64,
    pub resp: AtomicU8,
    pub query_buffer: AtomicUsize,
    /// Replies produced and not yet taken by the socket.
    pub output_buffer: AtomicUsize,
    /// What the connection's input and output buffers hold from the allocator (their capacity),
    /// which memory calibration leaves out of the data's share.
    pub buffer_capacity: AtomicUsize,
    /// The ACL user the client runs as: `default` until `AUTH user pass` names another.
    pub user: Mutex<String>,
    /// Set by `CLIENT KILL`, which also wakes the connection through `kill`.
    pub killed: AtomicBool,
    pub kill: tokio::sync::Notify,
    /// Out-of-band frames for this client (pub/sub messages, invalidations): [`ClientInfo::push`].
    pub mailbox: Mailbox,
    /// Its channels, patterns and shard channels.
    pub subscriptions: crate::pubsub::Subscriptions,
    /// Commands queued in its transaction, or -1 outside `MULTI` (`CLIENT LIST`'s `multi=`).
    pub multi: std::sync::atomic::AtomicI64,
}

/// Frames any part of the node sends a client outside the replies to its own requests: pub/sub
/// messages, client-side caching invalidations. Each is encoded whole, in the client's protocol,
/// and the connection moves them into its output between two replies (never inside one), in the
/// order they were pushed.
///
/// The mailbox counts toward the client's `client-output-buffer-limit`: a push that would take
/// the client's unsent bytes (output and mailbox) past the hard limit in force for it is dropped
/// and the client is closed, as Redis closes a subscriber that does not read; the soft limit is
/// checked by the connection. So a publisher never waits for a slow reader, and a reader that
/// never reads costs the node at most its limit.
#[derive(Debug, Default)]
pub struct Mailbox {
    frames: Mutex<Vec<u8>>,
    /// `frames.len()`, read without the lock.
    bytes: AtomicUsize,
    /// The hard output limit in force for the client (0: none), kept by its connection, which
    /// knows its class (normal or pubsub).
    limit: AtomicUsize,
    notify: tokio::sync::Notify,
}

impl Mailbox {
    /// Bytes waiting in the mailbox.
    #[must_use]
    pub fn len(&self) -> usize {
        self.bytes.load(Relaxed)
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves every waiting frame to the end of `out`; how many bytes.
    pub(crate) fn take_into(&self, out: &mut Vec<u8>) -> usize {
        if self.is_empty() {
            return 0;
        }
        let mut frames = self.frames.lock();
        let n = frames.len();
        if out.is_empty() {
            std::mem::swap(out, &mut frames);
        } else {
            out.extend_from_slice(&frames);
            frames.clear();
        }
        if frames.capacity() > 1 << 20 {
            *frames = Vec::new();
        }
        self.bytes.store(0, Relaxed);
        n
    }

    /// Completes when a frame was pushed since the last time it completed (a frame pushed
    /// before the first poll counts: the permit is kept).
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Sets the hard output limit in force for the client (0: none).
    pub fn set_limit(&self, hard: usize) {
        self.limit.store(hard, Relaxed);
    }
}

impl ClientInfo {
    /// Queues one frame for this client, written by `write` in the client's protocol; use
    /// [`ReplyWriter::push`](dcache_protocol::ReplyWriter::push) for its header (`>` in RESP3, an
    /// array in RESP2). Never blocks on the client. Returns `false` when the frame was not
    /// queued: the client is closing, or the frame would take it past its output limit (then
    /// it is closed, with a log line).
    pub fn push(&self, write: impl FnOnce(&mut dcache_protocol::ReplyWriter<'_>)) -> bool {
        if self.killed.load(Relaxed) {
            return false;
        }
        let resp3 = self.resp.load(Relaxed) == 3;
        let mailbox = &self.mailbox;
        let mut frames = mailbox.frames.lock();
        let start = frames.len();
        write(&mut dcache_protocol::ReplyWriter::new(&mut frames, resp3));
        let limit = mailbox.limit.load(Relaxed);
        let pending = frames.len() + self.output_buffer.load(Relaxed);
        if limit != 0 && pending > limit {
            frames.truncate(start);
            drop(frames);
            if !self.killed.swap(true, Relaxed) {
                tracing::warn!(
                    client = self.id,
                    addr = %self.addr,
                    "closing client over the hard client-output-buffer-limit ({pending} bytes of replies and pushes unread; limit {limit})"
                );
                self.kill.notify_one();
            }
            return false;
        }
        mailbox.bytes.store(frames.len(), Relaxed);
        drop(frames);
        mailbox.notify.notify_one();
        true
    }
}

/// The node's shared state.
#[derive(Debug)]
pub struct Shared {
    pub store: Store,
    config: RwLock<NodeConfig>,
    /// Bumped on every `CONFIG SET`, so that connections re-read their limits only then.
    config_epoch: AtomicU64,
    pub clock: Arc<dyn Clock>,
    pub stats: Stats,
    /// ACL users.
    pub acl: crate::acl::Acl,
    pub ops: Mutex<OpsSampler>,
    /// The cluster state, when `cluster-enabled` is on.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Clients blocked on keys (BLPOP and friends), and the wake-ups for them.
    pub blocking: crate::blocking::Blocking,
    /// Lets one connection run commands with no other client's between them (`EXEC`, scripts).
    pub gate: crate::exclusive::Gate,
    /// Who is subscribed to what, and the links that carry messages to the other members.
    pub pubsub: crate::pubsub::PubSub,
    /// Client-side caching: who read what, and their invalidations.
    pub tracking: crate::tracking::Tracking,
    /// Lua scripts: the script cache, idle Lua states, the scripts running now.
    pub scripts: crate::scripting::Scripts,
    clients: Mutex<hashbrown::HashMap<u64, Arc<ClientInfo>>>,
    connected: AtomicUsize,
    next_client_id: AtomicU64,
    pub started: Instant,
    pub started_ms: u64,
    /// The address the node really listens on (its port may have been 0 in the config).
    pub local_addr: SocketAddr,
    pub config_file: Option<String>,
    /// What the allocator had handed out when the node started, before any data: the part of
    /// its count that calibration leaves out.
    pub base_allocated: usize,
    /// The allocator's count beyond the data at the last calibration (see `server::calibrate`).
    pub(crate) last_calibration_sample: AtomicUsize,
    /// When the last cross-protocol attack was logged (Unix ms), so that a flood of them writes
    /// one line a minute, not one per connection.
    pub(crate) attack_logged_ms: AtomicU64,
    /// Background cycles run so far, and a wake-up for each, so that tests wait for a cycle
    /// instead of sleeping.
    background_cycles: AtomicU64,
    background_tick: tokio::sync::Notify,
    /// Set when the node has left its cluster and must stop.
    exit: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(
        config: NodeConfig,
        clock: Arc<dyn Clock>,
        local_addr: SocketAddr,
        config_file: Option<String>,
        cluster: Option<Arc<crate::cluster::Cluster>>,
    ) -> Result<Self, String> {
        config.validate()?;
        let store = Store::new(
            StoreConfig::default()
                .shards(config.shards)
                .maxmemory(config.maxmemory.0)
                .policy(config.policy()?)
                .node_id(config.node_id)
                // Only a cluster node counts, lists and moves its keys by slot.
                .slot_index(config.cluster_enabled.0)
                .seed(seed()),
        );
        store.set_set_limits(dcache_store::SetLimits {
            max_intset_entries: config.set_max_intset_entries,
            max_listpack_entries: config.set_max_listpack_entries,
            max_listpack_value: config.set_max_listpack_value,
        });
        let started_ms = clock.now_ms();
        let tracking = crate::tracking::Tracking::default();
        tracking.set_max_keys(config.tracking_table_max_keys);
        // Process-wide (one node per process outside tests): a node with the default leaves it
        // alone, so that nodes started in one test process do not undo another's CONFIG SET.
        if config.list_max_listpack_size != NodeConfig::default().list_max_listpack_size {
            dcache_store::set_max_listpack_size(config.list_max_listpack_size);
        }
        Ok(Self {
            store,
            config: RwLock::new(config),
            config_epoch: AtomicU64::new(0),
            clock,
            stats: Stats::default(),
            acl: crate::acl::Acl::default(),
            ops: Mutex::default(),
            cluster,
            blocking: crate::blocking::Blocking::default(),
            gate: crate::exclusive::Gate::default(),
            pubsub: crate::pubsub::PubSub::default(),
            tracking,
            scripts: crate::scripting::Scripts::default(),
            clients: Mutex::default(),
            connected: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            started_ms,
            local_addr,
            config_file,
            base_allocated: crate::info::allocator_stats().0,
            last_calibration_sample: AtomicUsize::new(0),
            attack_logged_ms: AtomicU64::new(0),
            background_cycles: AtomicU64::new(0),
            background_tick: tokio::sync::Notify::new(),
            exit: tokio::sync::watch::Sender::new(false),
        })
    }

    /// A copy of the configuration in force.
    #[must_use]
    pub fn config(&self) -> NodeConfig {
        self.config.read().clone()
    }

    /// Reads the configuration in force without copying it, for a setting read per request.
    pub fn read_config<R>(&self, read: impl FnOnce(&NodeConfig) -> R) -> R {
        read(&self.config.read())
    }

    /// Changes the configuration with `change`, which validates and applies the new values.
    pub fn update_config<R>(&self, change: impl FnOnce(&mut NodeConfig) -> R) -> R {
        let mut config = self.config.write();
        let result = change(&mut config);
        self.config_epoch.fetch_add(1, Relaxed);
        result
    }

    /// When hashes leave their compact form (`hash-max-listpack-*`), read without copying the
    /// whole configuration.
    #[must_use]
    pub fn hash_limits(&self) -> dcache_store::HashLimits {
        let config = self.config.read();
        dcache_store::HashLimits {
            entries: config.hash_max_listpack_entries,
            value: config.hash_max_listpack_value,
        }
    }

    /// When sorted sets leave their compact form (`zset-max-listpack-*`), read without copying
    /// the whole configuration.
    #[must_use]
    pub fn zset_limits(&self) -> dcache_store::ZSetLimits {
        let config = self.config.read();
        dcache_store::ZSetLimits {
            entries: config.zset_max_listpack_entries,
            value: config.zset_max_listpack_value,
        }
    }

    #[must_use]
    pub fn config_epoch(&self) -> u64 {
        self.config_epoch.load(Relaxed)
    }

    /// The addresses the node's client listeners are bound to, for protected mode.
    #[must_use]
    pub fn bound_ips(&self) -> Vec<std::net::IpAddr> {
        vec![self.local_addr.ip()]
    }

    /// Marks the end of one background cycle.
    pub(crate) fn background_cycle_done(&self) {
        self.background_cycles.fetch_add(1, Relaxed);
        self.background_tick.notify_waiters();
    }

    /// Waits until `n` more background cycles (expiry, idle clients, calibration) have run.
    pub async fn wait_background_cycles(&self, n: u64) {
        let target = self.background_cycles.load(Relaxed) + n;
        loop {
            let tick = self.background_tick.notified();
            if self.background_cycles.load(Relaxed) >= target {
                return;
            }
            tick.await;
        }
    }

    /// Asks the node to stop, as its shutdown signal would.
    pub fn request_exit(&self) {
        self.exit.send_replace(true);
    }

    /// Completes once [`Shared::request_exit`] was called.
    pub async fn exit_requested(&self) {
        let mut exit = self.exit.subscribe();
        let _ = exit.wait_for(|&e| e).await;
    }

    /// Request limits from the configuration.
    #[must_use]
    pub fn limits(&self) -> Limits {
        let config = self.config.read();
        Limits {
            max_bulk_len: config.proto_max_bulk_len.0,
            max_args: config.max_args,
            ..Limits::default()
        }
    }

    /// Registers a new client unless `maxclients` are already connected.
    pub(crate) fn register_client(
        &self,
        addr: SocketAddr,
        local_addr: SocketAddr,
    ) -> Option<Arc<ClientInfo>> {
        let max = self.config.read().maxclients;
        if self.connected.fetch_add(1, Relaxed) >= max {
            self.connected.fetch_sub(1, Relaxed);
            return None;
        }
        let now = self.clock.now_ms();
        let info = Arc::new(ClientInfo {
            id: self.next_client_id.fetch_add(1, Relaxed),
            addr,
            local_addr,
            created_ms: now,
            name: Mutex::default(),
            lib_name: Mutex::default(),
            lib_ver: Mutex::default(),
            last_command: u16::MAX.into(),
            last_active_ms: AtomicU64::new(now),
            resp: AtomicU8::new(2),
            query_buffer: AtomicUsize::new(0),
            output_buffer: AtomicUsize::new(0),
            buffer_capacity: AtomicUsize::new(0),
            user: Mutex::new("default".into()),
            killed: AtomicBool::new(false),
            kill: tokio::sync::Notify::new(),
            mailbox: Mailbox::default(),
            subscriptions: crate::pubsub::Subscriptions::default(),
            multi: (-1).into(),
        });
        self.clients.lock().insert(info.id, Arc::clone(&info));
        Some(info)
    }

    pub(crate) fn unregister_client(&self, id: u64) {
        let gone = self.clients.lock().remove(&id);
        if let Some(client) = gone {
            self.connected.fetch_sub(1, Relaxed);
            self.pubsub.forget(&client);
        }
        self.tracking.disable(self, id);
    }

    /// The connected client with this id.
    #[must_use]
    pub fn client(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.clients.lock().get(&id).cloned()
    }

    /// Queues a frame for client `id` ([`ClientInfo::push`]); `false` when there is no such
    /// client or the frame was not queued.
    pub fn push_to(
        &self,
        id: u64,
        write: impl FnOnce(&mut dcache_protocol::ReplyWriter<'_>),
    ) -> bool {
        self.client(id).is_some_and(|c| c.push(write))
    }

    #[must_use]
    pub fn connected_clients(&self) -> usize {
        self.connected.load(Relaxed)
    }

    /// The connected clients, oldest first.
    #[must_use]
    pub fn clients(&self) -> Vec<Arc<ClientInfo>> {
        let mut list: Vec<_> = self.clients.lock().values().cloned().collect();
        list.sort_by_key(|c| c.id);
        list
    }
}

/// A per-process random seed for the key hash, without a dependency: std's `RandomState` is
/// seeded from the OS.
fn seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
}
