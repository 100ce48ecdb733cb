//! Pub/sub: who listens to what on this node, delivery through the clients' mailboxes, and the
//! forwarding of messages to the other nodes of the cluster.
//!
//! ```text
//!   SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE ──► the client's Subscriptions + the node's Registry
//!
//!   PUBLISH ch msg ──► Registry: subscribers of ch, patterns that match ch
//!        │                 └─► ClientInfo::push (each subscriber's mailbox; never waits)
//!        └─► one Link per other member ── CLUSTER PUBLISH ch msg ──► its Registry (not sent on)
//!
//!   SPUBLISH ch msg (routed to a copy of ch's slot) ──► local subscribers
//!        └─► the slot's other copies ── CLUSTER SPUBLISH ch msg ──► theirs
//! ```
//!
//! Messages between nodes are best-effort, as on Redis Cluster's bus: each peer has a queue
//! of at most [`LINK_QUEUE`] bytes and one connection to its client port (authenticated with
//! the node's `requirepass`, as replication's are); what arrives while the queue is full, or is
//! queued while the peer cannot be reached, is dropped and counted. Messages from one node
//! reach each other node in the order they were published there.
//!
//! A shard channel belongs to its key slot: it is subscribed and published on a copy of the
//! slot, and when the slot leaves this node its subscribers receive `sunsubscribe`, as in
//! Redis 7.
//!
//! Lock order: a client's [`Subscriptions`], then the [`Registry`], then a mailbox. Publishing
//! takes only the registry (read) and the mailboxes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use dcache_protocol::ReplyWriter;
use hashbrown::HashSet;
use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};

use crate::state::{ClientInfo, Shared};

/// Bytes of messages queued for one peer before more are dropped.
pub const LINK_QUEUE: usize = 32 << 20;
/// Wait before connecting to a peer again.
const RECONNECT: Duration = Duration::from_millis(200);
/// A link with nothing to send for this long closes (a new message opens it again).
const LINK_IDLE: Duration = Duration::from_secs(60);

/// What a subscription is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn index(self) -> usize {
        self as usize
    }

    fn subscribed(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
            Kind::Shard => b"ssubscribe",
        }
    }

    fn unsubscribed(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
            Kind::Shard => b"sunsubscribe",
        }
    }
}

/// One client's subscriptions ([`ClientInfo::subscriptions`]).
#[derive(Debug, Default)]
pub struct Subscriptions {
    /// Channels, patterns, shard channels ([`Kind::index`]).
    sets: Mutex<[HashSet<Vec<u8>>; 3]>,
    /// How many in all, read on every request (subscribed mode, the output limit's class).
    total: AtomicUsize,
}

impl Subscriptions {
    /// Whether the client is subscribed to anything.
    #[must_use]
    pub fn active(&self) -> bool {
        self.total.load(Relaxed) > 0
    }

    /// Channels, patterns and shard channels (`CLIENT LIST`'s sub, psub, ssub).
    #[must_use]
    pub fn counts(&self) -> [usize; 3] {
        let sets = self.sets.lock();
        [sets[0].len(), sets[1].len(), sets[2].len()]
    }

    /// Whether every subscription passes `allowed(name, is_pattern)` (shard channels as
    /// channels).
    pub fn all(&self, allowed: impl Fn(&[u8], bool) -> bool) -> bool {
        let sets = self.sets.lock();
        sets.iter().enumerate().all(|(i, set)| {
            set.iter()
                .all(|name| allowed(name, i == Kind::Pattern.index()))
        })
    }

    /// The count a (un)subscribe reply carries: channels and patterns together, or the shard
    /// channels, as Redis counts them.
    fn reported(sets: &[HashSet<Vec<u8>>; 3], kind: Kind) -> usize {
        match kind {
            Kind::Channel | Kind::Pattern => sets[0].len() + sets[1].len(),
            Kind::Shard => sets[2].len(),
        }
    }
}

type Subscribers = HashMap<u64, Arc<ClientInfo>>;

/// The node's subscriptions, by channel, pattern and shard channel.
#[derive(Debug, Default)]
struct Registry {
    maps: [HashMap<Vec<u8>, Subscribers>; 3],
}

/// One peer's queue of `CLUSTER PUBLISH` requests and the task that sends them.
#[derive(Debug, Default)]
struct Link {
    queue: Mutex<Queue>,
    notify: Notify,
}

/// Encoded requests waiting for a link's connection, and how many.
#[derive(Debug, Default)]
struct Queue {
    bytes: Vec<u8>,
    messages: u64,
}

impl Queue {
    fn take(&mut self) -> Queue {
        std::mem::take(self)
    }
}

/// A peer (its node id) whose link needs a task.
type NewLink = (String, Arc<Link>);

/// Pub/sub state of the node ([`Shared::pubsub`]).
#[derive(Debug)]
pub struct PubSub {
    registry: RwLock<Registry>,
    links: Mutex<HashMap<String, Arc<Link>>>,
    /// Peers that need a link task; [`run`] starts them.
    spawn_tx: mpsc::UnboundedSender<NewLink>,
    spawn_rx: Mutex<Option<mpsc::UnboundedReceiver<NewLink>>>,
    /// Messages written to peers' connections, and those dropped on the way (a full queue, a
    /// peer that cannot be reached or refuses them).
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
}

impl Default for PubSub {
    fn default() -> Self {
        let (spawn_tx, spawn_rx) = mpsc::unbounded_channel();
        PubSub {
            registry: RwLock::default(),
            links: Mutex::default(),
            spawn_tx,
            spawn_rx: Mutex::new(Some(spawn_rx)),
            forwarded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

/// Writes a message frame: `message`/`smessage` `channel` `payload`, or `pmessage` `pattern`
/// `channel` `payload`.
fn write_message(
    w: &mut ReplyWriter<'_>,
    kind: Kind,
    pattern: Option<&[u8]>,
    channel: &[u8],
    message: &[u8],
) {
    match pattern {
        Some(pattern) => {
            w.push(4);
            w.bulk(b"pmessage");
            w.bulk(pattern);
        }
        None => {
            w.push(3);
            w.bulk(if kind == Kind::Shard {
                b"smessage"
            } else {
                b"message"
            });
        }
    }
    w.bulk(channel);
    w.bulk(message);
}

/// Writes a (un)subscribe confirmation: `kind` `name` (null for "nothing to unsubscribe
/// from") `count`.
fn write_confirmation(w: &mut ReplyWriter<'_>, word: &[u8], name: Option<&[u8]>, count: usize) {
    w.push(3);
    w.bulk(word);
    match name {
        Some(name) => w.bulk(name),
        None => w.null(),
    }
    w.int(count as i64);
}

impl PubSub {
    /// Subscribes `client` to `name` and writes the confirmation to `out`.
    pub fn subscribe(
        &self,
        client: &Arc<ClientInfo>,
        kind: Kind,
        name: &[u8],
        out: &mut ReplyWriter<'_>,
    ) {
        let mut sets = client.subscriptions.sets.lock();
        if sets[kind.index()].insert(name.to_vec()) {
            client.subscriptions.total.fetch_add(1, Relaxed);
            self.registry.write().maps[kind.index()]
                .entry(name.to_vec())
                .or_default()
                .insert(client.id, Arc::clone(client));
        }
        write_confirmation(
            out,
            kind.subscribed(),
            Some(name),
            Subscriptions::reported(&sets, kind),
        );
    }

    /// Unsubscribes `client` from `names`, or from every subscription of `kind` when `names`
    /// is empty, writing one confirmation per name (one with a null name when there was
    /// nothing to unsubscribe from).
    pub fn unsubscribe(
        &self,
        client: &ClientInfo,
        kind: Kind,
        names: &[&[u8]],
        out: &mut ReplyWriter<'_>,
    ) {
        let mut sets = client.subscriptions.sets.lock();
        let all: Vec<Vec<u8>>;
        let names: Vec<&[u8]> = if names.is_empty() {
            all = sets[kind.index()].iter().cloned().collect();
            if all.is_empty() {
                write_confirmation(out, kind.unsubscribed(), None, 0);
                return;
            }
            all.iter().map(Vec::as_slice).collect()
        } else {
            names.to_vec()
        };
        for name in names {
            if sets[kind.index()].remove(name) {
                client.subscriptions.total.fetch_sub(1, Relaxed);
                self.leave(client.id, kind, name);
            }
            write_confirmation(
                out,
                kind.unsubscribed(),
                Some(name),
                Subscriptions::reported(&sets, kind),
            );
        }
    }

    /// Takes `client` out of the registry's entry for `name`.
    fn leave(&self, id: u64, kind: Kind, name: &[u8]) {
        let mut registry = self.registry.write();
        let map = &mut registry.maps[kind.index()];
        if let Some(subscribers) = map.get_mut(name) {
            subscribers.remove(&id);
            if subscribers.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Forgets every subscription of a client that is gone.
    pub fn forget(&self, client: &ClientInfo) {
        let mut sets = client.subscriptions.sets.lock();
        if client.subscriptions.total.swap(0, Relaxed) == 0 {
            return;
        }
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for name in std::mem::take(&mut sets[kind.index()]) {
                self.leave(client.id, kind, &name);
            }
        }
    }

    /// Delivers a message to this node's subscribers of `channel` (and, unless it is a shard
    /// message, of the patterns that match it); how many received it. A message for
    /// `me` (the publishing client itself, in RESP3) is written to `own`, before the reply,
    /// as Redis does; the others go to mailboxes.
    pub fn deliver(
        &self,
        kind: Kind,
        channel: &[u8],
        message: &[u8],
        mut own: Option<(u64, &mut ReplyWriter<'_>)>,
    ) -> usize {
        let registry = self.registry.read();
        let mut receivers = 0;
        let mut send = |client: &ClientInfo, pattern: Option<&[u8]>| {
            receivers += 1;
            match &mut own {
                Some((me, out)) if *me == client.id => {
                    write_message(out, kind, pattern, channel, message);
                }
                _ => {
                    client.push(|w| write_message(w, kind, pattern, channel, message));
                }
            }
        };
        if let Some(subscribers) = registry.maps[kind.index()].get(channel) {
            for client in subscribers.values() {
                send(client, None);
            }
        }
        if kind == Kind::Channel {
            for (pattern, subscribers) in &registry.maps[Kind::Pattern.index()] {
                if dcache_store::glob_match(pattern, channel) {
                    for client in subscribers.values() {
                        send(client, Some(pattern));
                    }
                }
            }
        }
        receivers
    }

    /// Active channels (with a subscriber) of `kind`, those matching `pattern` if given.
    #[must_use]
    pub fn channels(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.registry.read().maps[kind.index()]
            .keys()
            .filter(|c| pattern.is_none_or(|p| dcache_store::glob_match(p, c)))
            .cloned()
            .collect()
    }

    /// Subscribers of one channel of `kind`.
    #[must_use]
    pub fn numsub(&self, kind: Kind, name: &[u8]) -> usize {
        self.registry.read().maps[kind.index()]
            .get(name)
            .map_or(0, HashMap::len)
    }

    /// Channels, patterns and shard channels with at least one subscriber (INFO).
    #[must_use]
    pub fn sizes(&self) -> [usize; 3] {
        let registry = self.registry.read();
        [
            registry.maps[0].len(),
            registry.maps[1].len(),
            registry.maps[2].len(),
        ]
    }

    /// Unsubscribes every client of a shard channel whose slot fails `keep`, each with a
    /// `sunsubscribe` push (Redis 7 does so when a slot leaves the node).
    pub fn drop_shard_channels(&self, keep: impl Fn(u16) -> bool) {
        let lost: Vec<(Vec<u8>, Vec<Arc<ClientInfo>>)> = self.registry.read().maps
            [Kind::Shard.index()]
        .iter()
        .filter(|(channel, _)| !keep(dcache_placement::slot(channel)))
        .map(|(channel, subscribers)| (channel.clone(), subscribers.values().cloned().collect()))
        .collect();
        for (channel, clients) in lost {
            for client in clients {
                let mut sets = client.subscriptions.sets.lock();
                if !sets[Kind::Shard.index()].remove(&channel) {
                    continue;
                }
                client.subscriptions.total.fetch_sub(1, Relaxed);
                self.leave(client.id, Kind::Shard, &channel);
                let count = sets[Kind::Shard.index()].len();
                client.push(|w| {
                    write_confirmation(w, Kind::Shard.unsubscribed(), Some(&channel), count);
                });
            }
        }
    }

    /// Queues `CLUSTER <sub> channel message` for each of `peers` (node ids), best-effort.
    pub fn forward(
        &self,
        peers: impl Iterator<Item = String>,
        sub: &[u8],
        channel: &[u8],
        message: &[u8],
    ) {
        let mut request = Vec::with_capacity(channel.len() + message.len() + 64);
        dcache_protocol::reply::encode_command(
            [&b"CLUSTER"[..], sub, channel, message],
            &mut request,
        );
        let mut links = self.links.lock();
        for peer in peers {
            let link = match links.get(&peer) {
                Some(link) => Arc::clone(link),
                None => {
                    let link = Arc::new(Link::default());
                    links.insert(peer.clone(), Arc::clone(&link));
                    let _ = self.spawn_tx.send((peer, Arc::clone(&link)));
                    link
                }
            };
            let mut queue = link.queue.lock();
            if queue.bytes.len() + request.len() > LINK_QUEUE {
                self.dropped.fetch_add(1, Relaxed);
                continue;
            }
            queue.bytes.extend_from_slice(&request);
            queue.messages += 1;
            drop(queue);
            link.notify.notify_one();
        }
    }
}

/// PUBLISH: delivers here, then sends the message to every other member of the cluster.
pub fn publish(
    shared: &Shared,
    channel: &[u8],
    message: &[u8],
    own: Option<(u64, &mut ReplyWriter<'_>)>,
) -> usize {
    let receivers = shared.pubsub.deliver(Kind::Channel, channel, message, own);
    if let Some(cluster) = &shared.cluster {
        let view = cluster.view();
        let peers = view
            .topology
            .nodes
            .values()
            .filter(|n| n.id != view.me && n.state != dcache_cluster::NodeState::Failed)
            .map(|n| n.id.clone());
        shared.pubsub.forward(peers, b"PUBLISH", channel, message);
    }
    receivers
}

/// SPUBLISH: delivers here, then sends the message to the other copies of the channel's slot.
pub fn spublish(
    shared: &Shared,
    channel: &[u8],
    message: &[u8],
    own: Option<(u64, &mut ReplyWriter<'_>)>,
) -> usize {
    let receivers = shared.pubsub.deliver(Kind::Shard, channel, message, own);
    if let Some(cluster) = &shared.cluster {
        let view = cluster.view();
        let slot = dcache_placement::slot(channel);
        let peers: Vec<String> = view
            .copies(slot)
            .map(|i| &view.nodes[i])
            .filter(|n| n.id != view.me && n.state != dcache_cluster::NodeState::Failed)
            .map(|n| n.id.clone())
            .collect();
        shared
            .pubsub
            .forward(peers.into_iter(), b"SPUBLISH", channel, message);
    }
    receivers
}

/// Starts the links to peers as messages need them, and unsubscribes shard channels whose slot
/// left this node, until the node stops.
pub async fn run(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(cluster) = shared.cluster.clone() else {
        return;
    };
    let Some(mut spawn) = shared.pubsub.spawn_rx.lock().take() else {
        return;
    };
    let mut epoch = cluster.view().topology.epoch;
    loop {
        tokio::select! {
            link = spawn.recv() => {
                let Some((peer, link)) = link else { return };
                tokio::spawn(link_task(Arc::clone(&shared), peer, link, stop.clone()));
            }
            () = cluster.wait_for_epoch(epoch + 1) => {
                let view = cluster.view();
                epoch = view.topology.epoch;
                shared.pubsub.drop_shard_channels(|slot| view.holds(slot));
            }
            _ = stop.changed() => return,
        }
    }
}

/// Sends one peer its queued messages until the node stops, the peer leaves the topology, or
/// nothing was sent for [`LINK_IDLE`].
async fn link_task(
    shared: Arc<Shared>,
    peer: String,
    link: Arc<Link>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let cluster = shared.cluster.clone().expect("links run in a cluster");
    let pubsub = &shared.pubsub;
    loop {
        let address = {
            let view = cluster.view();
            view.topology
                .nodes
                .get(&peer)
                .filter(|n| n.state != dcache_cluster::NodeState::Failed)
                .map(|n| (n.host.clone(), n.port))
        };
        let outcome = match address {
            None => Err("not in the topology, or failed".to_owned()),
            Some((host, port)) => {
                let password = shared.config().requirepass;
                tokio::select! {
                    outcome = send_to(&host, port, &password, &link, &pubsub.forwarded) => outcome,
                    _ = stop.changed() => return,
                }
            }
        };
        if let Err(e) = outcome {
            // What waited for this connection is dropped (best-effort).
            tracing::debug!("pub/sub link to {peer}: {e}");
            let lost = link.queue.lock().take();
            pubsub.dropped.fetch_add(lost.messages, Relaxed);
        }
        {
            // Gone, idle, or broken with nothing new to send: the link closes. Under the map's
            // lock, which `forward` holds while it queues, so that nothing is queued on a
            // link that has stopped.
            let mut links = pubsub.links.lock();
            if link.queue.lock().messages == 0 {
                if links.get(&peer).is_some_and(|l| Arc::ptr_eq(l, &link)) {
                    links.remove(&peer);
                }
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One connection's life: writes what is queued, reads and discards the replies (each the
/// peer's receiver count). `Ok` when idle for [`LINK_IDLE`].
async fn send_to(
    host: &str,
    port: u16,
    password: &str,
    link: &Link,
    forwarded: &AtomicU64,
) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot reach {host}:{port}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut reader, mut writer) = stream.into_split();
    if !password.is_empty() {
        let mut auth = Vec::new();
        dcache_protocol::reply::encode_command([&b"AUTH"[..], password.as_bytes()], &mut auth);
        writer.write_all(&auth).await.map_err(|e| e.to_string())?;
    }
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let batch = link.queue.lock().take();
        if batch.messages > 0 {
            writer
                .write_all(&batch.bytes)
                .await
                .map_err(|e| e.to_string())?;
            forwarded.fetch_add(batch.messages, Relaxed);
            continue;
        }
        tokio::select! {
            () = link.notify.notified() => {}
            read = reader.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return Err("closed".into()),
                Ok(n) => {
                    // Each reply is the peer's receiver count; an error means it refuses them.
                    if chunk[..n].starts_with(b"-") || chunk[..n].windows(2).any(|w| w == b"\n-") {
                        return Err(String::from_utf8_lossy(&chunk[..n]).trim_end().to_owned());
                    }
                }
            },
            () = tokio::time::sleep(LINK_IDLE) => return Ok(()),
        }
    }
}
