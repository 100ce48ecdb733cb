//! Replication, driven: the core ([`dcache_cluster::replication::Replicator`]) decides which
//! copies a write waits for; this module feeds it writes, sends its streams to the peers and
//! takes their acknowledgements.
//!
//! ```text
//!   client write ──► handler ──► effect of each key ──► submit ──► Ack ──► the connection holds
//!                                                          │              the reply (in order)
//!                       one task per peer ◄── items ───────┘              until it completes
//!                       CLUSTER APPLY <me> <epoch> <offset> <effects> ──► peer: restore each,
//!                       ◄──────────────── :<last offset> ──────────  (a chain link sends them on
//!                       acked(peer, offset) ──► completed Acks        and answers when that did)
//! ```
//!
//! A peer applies a batch only when it has the sender's epoch: with another epoch the two may
//! disagree on who is whose successor, and an acknowledgement from a node that no longer holds
//! the slot would count for a copy that does not exist. It answers `-TRYAGAIN` instead, and the
//! sender sends again shortly (by then one of them has caught up).
//!
//! One connection per peer carries every slot's items, in batches: a busy node sends one request
//! for many writes, and the peer's reply acknowledges all of them.
//!
//! Under `quorum` every copy of a slot coordinates the writes and reads sent to it (the others
//! redirect to the primary): a replica's write is applied there and sent to every other copy,
//! the primary included, which records it for the move while it moves the slot. While a slot's
//! copies are about to change, its replicas send its writes to the primary (`-MOVED`), and the
//! primary gathers the other copies' state and has them flush what they coordinated before the
//! move commits (`moves`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dcache_cluster::replication::{Layout, Mode, Outcome, Replicator, Submitted};
use dcache_cluster::{NodeId, Topology};
use dcache_placement::SLOTS;
use dcache_protocol::Frame;
use dcache_store::Applied;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::state::Shared;

mod moves;

pub use moves::{drain_to, flush_copies, gather_copies, push_to};

/// Items in one `CLUSTER APPLY` request.
const BATCH_ITEMS: usize = 1024;
/// Bytes of effects in one request (a batch stops at whichever limit comes first).
const BATCH_BYTES: usize = 256 * 1024;
/// Requests sent before their replies are read.
const WINDOW: usize = 16;
/// Wait before sending again after a refusal or a broken connection.
const RETRY: Duration = Duration::from_millis(20);

const PENDING: u8 = 0;
const DONE: u8 = 1;
const NOT_HERE: u8 = 2;
const TIMED_OUT: u8 = 3;
const INT: u8 = 4;

/// The reply of a write whose copies did not all acknowledge it in time (Redis's wording for
/// `min-replicas-to-write`).
pub const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";
/// The reply of a write whose slot left this node while it waited for its copies.
pub const MOVED_AWAY: &str = "TRYAGAIN The slot moved while the write waited for its copies";

/// A write's acknowledgement: pending until the copies its strategy asks for hold it.
#[derive(Debug, Clone)]
pub struct Ack(Arc<AckState>);

#[derive(Debug)]
struct AckState {
    state: AtomicU8,
    notify: Notify,
    /// For a reply that is a number known only at the end (WAIT's count).
    value: std::sync::atomic::AtomicI64,
}

impl Default for Ack {
    fn default() -> Self {
        Ack(Arc::new(AckState {
            state: AtomicU8::new(PENDING),
            notify: Notify::new(),
            value: std::sync::atomic::AtomicI64::new(0),
        }))
    }
}

impl Ack {
    /// Completes it with a number that replaces the held reply.
    pub fn complete_int(&self, value: i64) {
        self.0.value.store(value, Ordering::Release);
        self.complete(INT);
    }

    /// The number of [`Ack::complete_int`], once complete.
    #[must_use]
    pub fn int(&self) -> Option<i64> {
        (self.0.state.load(Ordering::Acquire) == INT).then(|| self.0.value.load(Ordering::Acquire))
    }

    fn complete(&self, state: u8) {
        if self
            .0
            .state
            .compare_exchange(PENDING, state, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.0.notify.notify_waiters();
        }
    }

    /// The outcome once known: `Ok`, or the error line (without `-`) to answer instead.
    #[must_use]
    pub fn result(&self) -> Option<Result<(), &'static str>> {
        match self.0.state.load(Ordering::Acquire) {
            PENDING => None,
            DONE | INT => Some(Ok(())),
            NOT_HERE => Some(Err(MOVED_AWAY)),
            _ => Some(Err(NOREPLICAS)),
        }
    }

    /// Waits for the outcome.
    pub async fn wait(&self) -> Result<(), &'static str> {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(result) = self.result() {
                return result;
            }
            notified.await;
        }
    }
}

/// A node's replication: the core, the layout's epoch, and the wake-ups of the peer tasks.
pub struct Replication {
    me: NodeId,
    core: Mutex<Replicator<Bytes, Ack>>,
    /// The epoch of the core's layout; 0 before the first.
    epoch: AtomicU64,
    /// Whether any slot has more than one copy (else nothing is submitted).
    active: std::sync::atomic::AtomicBool,
    /// Whether the strategy is chain replication.
    chain: std::sync::atomic::AtomicBool,
    /// Whether reads ask other copies (quorum with a read quorum above 1).
    quorum_reads: std::sync::atomic::AtomicBool,
    /// Per peer: the wake-up of its task.
    peers: Mutex<HashMap<NodeId, Arc<Notify>>>,
    /// Peers that need a task; the manager ([`run`]) starts them.
    spawn: tokio::sync::mpsc::UnboundedSender<NodeId>,
    spawn_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<NodeId>>>,
    /// `CLUSTER PUSH` requests ([`push_to`]); the manager ([`run`]) carries them out.
    pushes: tokio::sync::mpsc::UnboundedSender<moves::Push>,
    pushes_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<moves::Push>>>,
    /// Waiting writes by deadline: (deadline, waiter id).
    deadlines: Mutex<VecDeque<(Instant, u64)>>,
    /// Wakes WAIT and `INFO` readers when acknowledgements arrive.
    pub progress: Notify,
    /// Counters for INFO.
    pub applied_items: AtomicU64,
    pub timed_out: AtomicU64,
    /// Encoded bytes of the effects writes sent (once per write, whatever the copies).
    pub effect_bytes: AtomicU64,
    /// How many of those effects were deltas.
    pub delta_effects: AtomicU64,
    /// Items a copy answered `STALE` for, replaced by their key's whole state.
    pub stale_resends: AtomicU64,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The core's mode for a topology's settings.
#[must_use]
pub fn mode_of(topology: &Topology) -> Mode {
    use dcache_cluster::Strategy;
    let s = &topology.settings;
    match s.strategy {
        Strategy::Primary => Mode::Primary {
            sync: usize::from(s.sync_replicas),
        },
        Strategy::Quorum => Mode::Quorum {
            write: usize::from(s.write_quorum),
        },
        Strategy::Chain => Mode::Chain,
    }
}

/// The core's layout of a topology: each slot's copies, primary first.
#[must_use]
pub fn layout_of(topology: &Topology) -> Layout {
    let mode = mode_of(topology);
    match &topology.slots {
        Some(slots) => Layout::new(mode, SLOTS, |slot| {
            slots.replicas(slot).map(|m| m.id.as_str())
        }),
        None => Layout::new(mode, 0, |_| std::iter::empty()),
    }
}

impl Replication {
    #[must_use]
    pub fn new(me: &str) -> Replication {
        let (spawn, spawn_rx) = tokio::sync::mpsc::unbounded_channel();
        let (pushes, pushes_rx) = tokio::sync::mpsc::unbounded_channel();
        Replication {
            me: me.to_owned(),
            core: Mutex::new(Replicator::new(
                me.to_owned(),
                Layout::new(Mode::Primary { sync: 0 }, 0, |_| std::iter::empty()),
            )),
            epoch: AtomicU64::new(0),
            active: std::sync::atomic::AtomicBool::new(false),
            chain: std::sync::atomic::AtomicBool::new(false),
            quorum_reads: std::sync::atomic::AtomicBool::new(false),
            peers: Mutex::default(),
            spawn,
            spawn_rx: Mutex::new(Some(spawn_rx)),
            pushes,
            pushes_rx: Mutex::new(Some(pushes_rx)),
            deadlines: Mutex::default(),
            progress: Notify::new(),
            applied_items: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            effect_bytes: AtomicU64::new(0),
            delta_effects: AtomicU64::new(0),
            stale_resends: AtomicU64::new(0),
        }
    }

    /// Whether writes are replicated at all (some slot has a copy besides its primary).
    #[must_use]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// The epoch of the layout in use.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Takes a new topology: writes waiting on copies that are gone are looked at again.
    pub fn set_topology(&self, topology: &Topology) {
        let layout = layout_of(topology);
        let active = (0..SLOTS as u16).any(|s| layout.copies(s).nth(1).is_some());
        let done = {
            let mut core = self.core.lock();
            let done = core.set_layout(layout);
            self.epoch.store(topology.epoch, Ordering::Release);
            done
        };
        self.active.store(active, Ordering::Relaxed);
        self.chain
            .store(mode_of(topology) == Mode::Chain, Ordering::Relaxed);
        let settings = topology.settings;
        self.quorum_reads.store(
            settings.strategy == dcache_cluster::Strategy::Quorum && settings.read_quorum > 1,
            Ordering::Relaxed,
        );
        complete(done);
        self.wake_ready();
        self.progress.notify_waiters();
    }

    /// A write applied here, to send to the copies its strategy names; `origin` for a client's
    /// write, not for items received from another copy. `ack` completes when the copies hold
    /// it (at once when there is nothing to wait for); returns whether it is still pending.
    pub fn submit(
        &self,
        ack: &Ack,
        items: Vec<(u16, Bytes)>,
        origin: bool,
        timeout: Duration,
    ) -> bool {
        self.submit_marked(ack, items, origin, timeout, &mut Vec::new())
    }

    /// [`Replication::submit`], adding to `marks` the peers the write was queued for, with the
    /// offset of its last item on each stream: what `WAIT` waits for.
    pub fn submit_marked(
        &self,
        ack: &Ack,
        items: Vec<(u16, Bytes)>,
        origin: bool,
        timeout: Duration,
        marks: &mut Vec<(NodeId, u64)>,
    ) -> bool {
        let submitted = self
            .core
            .lock()
            .submit_marked(ack.clone(), items, origin, marks);
        self.wake_ready();
        match submitted {
            Submitted::Done(ack) => {
                ack.complete(DONE);
                false
            }
            Submitted::NotHere(ack) => {
                ack.complete(NOT_HERE);
                false
            }
            Submitted::Waiting(id) => {
                self.deadlines
                    .lock()
                    .push_back((Instant::now() + timeout, id));
                true
            }
        }
    }

    /// Wakes the task of every peer with items to send (starting it if there is none).
    fn wake_ready(&self) {
        let ready: Vec<NodeId> = self.core.lock().ready().map(str::to_owned).collect();
        if ready.is_empty() {
            return;
        }
        let mut peers = self.peers.lock();
        for peer in ready {
            match peers.get(&peer) {
                Some(notify) => notify.notify_one(),
                None => {
                    peers.insert(peer.clone(), Arc::new(Notify::new()));
                    let _ = self.spawn.send(peer);
                }
            }
        }
    }

    /// Fails the writes whose deadline passed.
    fn expire(&self, now: Instant) {
        let mut expired = Vec::new();
        {
            let mut deadlines = self.deadlines.lock();
            while let Some(&(at, id)) = deadlines.front() {
                if at > now {
                    break;
                }
                deadlines.pop_front();
                expired.push(id);
            }
        }
        if expired.is_empty() {
            return;
        }
        let mut core = self.core.lock();
        for id in expired {
            if let Some(ack) = core.cancel(id) {
                self.timed_out.fetch_add(1, Ordering::Relaxed);
                ack.complete(TIMED_OUT);
            }
        }
    }

    fn acked(&self, peer: &str, offset: u64) {
        let done = self.core.lock().acked(peer, offset);
        complete(done);
        self.progress.notify_waiters();
    }

    /// Each peer's stream: (peer, items queued, items acknowledged).
    #[must_use]
    pub fn streams(&self) -> Vec<(NodeId, u64, u64)> {
        self.core
            .lock()
            .streams()
            .into_iter()
            .map(|s| (s.peer, s.queued, s.acked))
            .collect()
    }

    /// Waits until each of `peers` acknowledged everything queued for it so far: before a move
    /// that makes another copy a slot's primary (or changes a chain's order) commits, with the
    /// slot's writes paused, the copies must hold every write that reached this one.
    ///
    /// # Errors
    /// A peer did not catch up within `timeout`.
    pub async fn drain(&self, peers: &[NodeId], timeout: Duration) -> Result<(), String> {
        let marks: Vec<(NodeId, u64)> = {
            let core = self.core.lock();
            peers.iter().map(|p| (p.clone(), core.queued(p))).collect()
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progress = self.progress.notified();
            if self.reached(&marks) == marks.len() {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                return Err("the other copies did not catch up before the move".into());
            }
        }
    }

    /// How many of `marks` their peers acknowledged.
    #[must_use]
    pub fn reached(&self, marks: &[(NodeId, u64)]) -> usize {
        let core = self.core.lock();
        marks
            .iter()
            .filter(|(peer, offset)| core.acked_offset(peer) >= *offset)
            .count()
    }

    /// Items dropped from full backlogs.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.core.lock().dropped
    }

    /// Writes waiting for their copies.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.core.lock().waiting()
    }

    /// This node's id.
    #[must_use]
    pub fn me(&self) -> &str {
        &self.me
    }
}

fn complete(done: Vec<(Ack, Outcome)>) {
    for (ack, outcome) in done {
        ack.complete(match outcome {
            Outcome::Done => DONE,
            Outcome::NotHere => NOT_HERE,
        });
    }
}

/// Before a write to `slot` (served here) runs: its ack, when writes are replicated. At a
/// chain's head the ack is also the slot's last write, which reads of the slot wait for.
#[must_use]
pub fn before_write(shared: &Shared, slot: u16) -> Option<(u16, Ack)> {
    let cluster = shared.cluster.as_ref()?;
    let replication = &cluster.replication;
    if !replication.active() {
        return None;
    }
    let ack = Ack::default();
    if replication.chain.load(Ordering::Relaxed) {
        let mut pending = cluster.chain_pending[usize::from(slot)].lock();
        pending.retain(|a| a.result().is_none());
        pending.push(ack.clone());
    }
    Some((slot, ack))
}

/// After the write ran: sends the effects of its keys to the copies, and notes in `marks` where
/// they are on each peer's stream (for `WAIT`). Returns whether its reply must be held (the ack
/// is pending, or failed at once).
pub fn after_write<'k>(
    shared: &Shared,
    slot: u16,
    ack: &Ack,
    keys: impl Iterator<Item = &'k [u8]>,
    now: u64,
    marks: &mut Vec<(NodeId, u64)>,
) -> bool {
    let cluster = shared
        .cluster
        .as_ref()
        .expect("a replicated write is in a cluster");
    let items: Vec<(u16, Bytes)> = keys.map(|k| item_of(shared, k, now)).collect();
    debug_assert!(items.iter().all(|(s, _)| *s == slot), "one slot per write");
    cluster
        .replication
        .submit_marked(ack, items, true, write_timeout(shared), marks);
    ack.result() != Some(Ok(()))
}

/// Before a read of `slot` at a chain's head: an ack that completes when every write to the
/// slot still on its way to the tail is there (the read's answer waits for it, so that no one
/// reads a write that a failure could still undo); `None` when there is none. Writes register
/// before they run and complete in any order, so the read waits for all of them. If one of them
/// fails (`-NOREPLICAS`), so does the read (`-TRYAGAIN`).
#[must_use]
pub fn before_read(shared: &Shared, slot: u16) -> Option<Ack> {
    let cluster = shared.cluster.as_ref()?;
    if !cluster.replication.chain.load(Ordering::Relaxed) || !cluster.replication.active() {
        return None;
    }
    let pending: Vec<Ack> = {
        let mut pending = cluster.chain_pending[usize::from(slot)].lock();
        pending.retain(|a| a.result().is_none());
        pending.clone()
    };
    match pending.len() {
        0 => None,
        1 => pending.into_iter().next(),
        _ => {
            let all = Ack::default();
            let done = all.clone();
            tokio::spawn(async move {
                for ack in pending {
                    if ack.wait().await.is_err() {
                        done.complete(NOT_HERE);
                        return;
                    }
                }
                done.complete(DONE);
            });
            Some(all)
        }
    }
}

/// What a write of `key` sends to the copies, with its slot: the write's delta when the store
/// recorded one (a large hash, set or sorted set: see [`follow_deltas`]), else the key's
/// whole state as it is now.
#[must_use]
pub fn item_of(shared: &Shared, key: &[u8], now: u64) -> (u16, Bytes) {
    let effect = shared.store.replication_effect(key, now);
    let item = Bytes::from(encoded(&effect));
    if let Some(cluster) = &shared.cluster {
        let replication = &cluster.replication;
        replication
            .effect_bytes
            .fetch_add(item.len() as u64, Ordering::Relaxed);
        if matches!(effect.change, dcache_store::Change::Delta(_)) {
            replication.delta_effects.fetch_add(1, Ordering::Relaxed);
        }
    }
    (dcache_placement::slot(key), item)
}

/// Turns the store's delta recording on when writes replicate and `replication-deltas` is
/// on, off otherwise (so that no write pays for it with nothing to send). Called on every new
/// topology and on `CONFIG SET replication-deltas`.
pub fn follow_deltas(shared: &Shared) {
    // Not under `chain`: a middle link that must replace a stale delta has only its own copy to
    // send, which may lack the write (evicted there) or carry a version from its own clock, and
    // the items it applied before the stale one would not be sent on. Whole states there.
    let active = shared
        .cluster
        .as_ref()
        .is_some_and(|c| c.replication.active() && !c.replication.chain.load(Ordering::Relaxed));
    let on = active && shared.config().replication_deltas.0;
    if shared.store.records_deltas() != on {
        shared.store.set_record_deltas(on);
    }
}

fn encoded(effect: &dcache_store::Effect) -> Vec<u8> {
    let mut buf = Vec::with_capacity(effect.encoded_len());
    effect.encode(&mut buf);
    buf
}

/// `CLUSTER APPLY epoch offset effects`: applies a batch from a peer, whose last item is at
/// `last` of the peer's stream. `Ok(None)` when it may be acknowledged at once, `Ok(Some(ack))`
/// for the acknowledgement of this node's successors (a chain; complete at once otherwise).
///
/// A delta whose base this copy does not hold stops the batch: `STALE <offset>` names it, and
/// nothing of the batch is acknowledged or sent on (the sender puts the key's whole state at
/// that offset and sends again from its last acknowledged one; the items before it applied
/// here come again as harmless duplicates).
///
/// # Errors
/// `TRYAGAIN` when this node has another epoch than the sender's; bad effects; `STALE`.
pub fn apply(
    shared: &Shared,
    from: &str,
    epoch: u64,
    last: u64,
    body: &[u8],
    now: u64,
) -> Result<Option<Ack>, String> {
    let cluster = shared
        .cluster
        .as_ref()
        .ok_or("ERR This instance has cluster support disabled")?;
    let replication = &cluster.replication;
    if replication.epoch() != epoch {
        return Err(format!(
            "TRYAGAIN epoch {} here, {epoch} at the sender",
            replication.epoch()
        ));
    }
    // Items of a slot this node holds no copy of, or from a node that does not send it that
    // slot's writes in this epoch, are skipped (and acknowledged: the sender, in the same epoch,
    // does not wait for them here). Under `quorum` this node may be the slot's primary, taking a
    // write another copy coordinated.
    let roles = |slot: u16| {
        let core = replication.core.lock();
        let layout = core.layout();
        (
            layout.sends_to(slot, from, &replication.me),
            layout.position(slot, &replication.me) == Some(0),
        )
    };
    // Decoded whole first: an item's offset counts from the end of the batch.
    let mut decoded = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (effect, used) = dcache_store::Effect::decode(rest)
            .map_err(|e| format!("ERR bad effect: {e}"))?
            .ok_or("ERR bad effect: truncated")?;
        decoded.push((effect, Bytes::copy_from_slice(&rest[..used])));
        rest = &rest[used..];
    }
    let first = (last + 1).saturating_sub(decoded.len() as u64);
    let mut items = Vec::new();
    let mut held: Option<(u16, (bool, bool))> = None;
    for (at, (effect, raw)) in decoded.into_iter().enumerate() {
        let slot = dcache_placement::slot(&effect.key);
        let (mine, primary) = match held {
            Some((s, roles)) if s == slot => roles,
            _ => {
                let found = roles(slot);
                held = Some((slot, found));
                found
            }
        };
        // Both sides have one epoch: a slot this node holds no copy of in it is not waited for
        // by the sender either.
        if !mine {
            continue;
        }
        let key = shared.tracking.active().then(|| effect.key.clone());
        if restore_from_copy(shared, primary, effect, now) == Applied::Stale {
            replication
                .applied_items
                .fetch_add(items.len() as u64, Ordering::Relaxed);
            return Err(format!("STALE {}", first + at as u64));
        }
        if let Some(key) = key {
            // A write made elsewhere: the clients that read the key here are told.
            shared
                .tracking
                .invalidate(shared, std::iter::once(&key[..]), None);
        }
        items.push((slot, raw));
    }
    replication
        .applied_items
        .fetch_add(items.len() as u64, Ordering::Relaxed);
    if items.is_empty() {
        return Ok(None);
    }
    let ack = Ack::default();
    replication.submit(&ack, items, false, write_timeout(shared));
    Ok(Some(ack))
}

/// Takes the state of a key that another copy wrote (its stream, or a quorum read's repair):
/// restored by version. At the slot's primary (`quorum`, where any copy coordinates) it counts as
/// a write to the slot: while the primary moves the slot away the key is recorded for the move
/// to copy again, paused or not (the other copies flush what they coordinated to the primary
/// while it holds the slot paused: [`flush_copies`]). Returns what it did (a copy that has no
/// room for it evicts on its own: the key is a miss later, not an error, and `Unchanged`).
fn restore_from_copy(
    shared: &Shared,
    primary: bool,
    effect: dcache_store::Effect,
    now: u64,
) -> Applied {
    // A client blocked on the key here (under `quorum`, where any copy takes writes) may take
    // what another copy pushed.
    let wake = (shared.blocking.blocked() != 0).then(|| effect.key.clone());
    let changed = match &shared.cluster {
        Some(cluster) if primary => {
            let slot = dcache_placement::slot(&effect.key);
            let watched = cluster.enter_effect(slot);
            let key = watched.then(|| effect.key.clone());
            let applied = restore_checked(shared, effect, now);
            cluster.leave(slot, watched, key.as_deref().into_iter());
            applied
        }
        _ => restore_checked(shared, effect, now),
    };
    if changed == Applied::Changed
        && let Some(key) = wake
    {
        shared.blocking.ready(&key);
    }
    changed
}

fn restore_checked(shared: &Shared, effect: dcache_store::Effect, now: u64) -> Applied {
    shared
        .store
        .restore_checked(effect, now)
        .unwrap_or(Applied::Unchanged)
}

/// How long a write waits for its copies before it is answered `-NOREPLICAS`: past the time a
/// failed copy takes to be declared failed (then it is no longer waited for).
#[must_use]
pub fn write_timeout(shared: &Shared) -> Duration {
    Duration::from_millis(shared.config().cluster_node_timeout.max(1000) * 3)
}

/// Starts a task per peer as writes need them, and fails writes past their deadline, until the
/// node stops.
pub async fn run(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(cluster) = shared.cluster.clone() else {
        return;
    };
    let Some(mut spawn) = cluster.replication.spawn_rx.lock().take() else {
        return;
    };
    let Some(mut pushes) = cluster.replication.pushes_rx.lock().take() else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            peer = spawn.recv() => {
                let Some(peer) = peer else { return };
                let notify = cluster.replication.peers.lock().get(&peer).cloned();
                if let Some(notify) = notify {
                    tokio::spawn(peer_task(Arc::clone(&shared), peer, notify, stop.clone()));
                }
            }
            push = pushes.recv() => {
                let Some(push) = push else { return };
                tokio::spawn(moves::push_slots(Arc::clone(&shared), push));
            }
            _ = tick.tick() => cluster.replication.expire(Instant::now()),
            _ = stop.changed() => return,
        }
    }
}

/// Sends `peer` its stream, reconnecting as needed, until the node stops or the peer leaves
/// the topology with nothing left to send.
async fn peer_task(
    shared: Arc<Shared>,
    peer: NodeId,
    notify: Arc<Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let cluster = shared
        .cluster
        .clone()
        .expect("replication runs in a cluster");
    let replication = &cluster.replication;
    loop {
        if *stop.borrow() {
            return;
        }
        let address = {
            let view = cluster.view();
            view.topology
                .nodes
                .get(&peer)
                .filter(|n| n.state != dcache_cluster::NodeState::Failed)
                .map(|n| (n.host.clone(), n.port))
        };
        let Some((host, port)) = address else {
            // Gone from the topology, or declared failed: nothing to send it until it holds a
            // copy again (then a write wakes a new task).
            replication.peers.lock().remove(&peer);
            return;
        };
        match stream_to(&shared, &peer, &host, port, &notify, &mut stop).await {
            // Stopping, or the peer left: the top of the loop tells which.
            Ok(()) => {}
            // The peer could not apply a delta: the key's whole state goes in its place, and
            // the stream goes again from the last acknowledged item, without a pause.
            Err(Broken::Stale(offset)) => {
                let replaced = replace_stale(&shared, &peer, offset);
                replication.core.lock().rewind(&peer);
                // Nothing to put in its place (acknowledged or dropped meanwhile, or not an
                // effect this node reads): the next try may find it so again, so not at once.
                if !replaced {
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
            Err(Broken::Other(e)) => {
                tracing::debug!("replication to {host}:{port}: {e}");
                replication.core.lock().rewind(&peer);
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Puts the whole state of the key of `peer`'s item at `offset` in its place: the item is a
/// delta the peer answered `STALE` for. This node holds the write (or a newer state of the
/// key), so the replacement is at least as new as the delta: holding it means holding the
/// write (under `primary` and `quorum`, the only strategies that send deltas, this node ran
/// it). Nothing to do when the item left the backlog (acknowledged, or dropped from a full
/// one); returns whether it replaced the item.
fn replace_stale(shared: &Shared, peer: &str, offset: u64) -> bool {
    let cluster = shared.cluster.as_ref().expect("in a cluster");
    let replication = &cluster.replication;
    let item = replication.core.lock().item(peer, offset).cloned();
    let Some(item) = item else {
        return false;
    };
    let Ok(Some((effect, _))) = dcache_store::Effect::decode(&item) else {
        return false;
    };
    // Read without the core's lock: a write takes the shard's lock, then the core's.
    let now = shared.clock.now_ms();
    let whole = Bytes::from(encoded(&shared.store.effect_of(&effect.key, now)));
    let replaced = replication.core.lock().replace(peer, offset, whole);
    if replaced {
        replication.stale_resends.fetch_add(1, Ordering::Relaxed);
    }
    replaced
}

/// Why a connection to a peer ended.
#[derive(Debug)]
enum Broken {
    /// The peer answered `STALE` for the item at this offset.
    Stale(u64),
    Other(String),
}

impl From<String> for Broken {
    fn from(e: String) -> Self {
        Broken::Other(e)
    }
}

impl From<&str> for Broken {
    fn from(e: &str) -> Self {
        Broken::Other(e.to_owned())
    }
}

/// One connection's life: send batches (at most [`WINDOW`] unanswered), read acknowledgements.
async fn stream_to(
    shared: &Shared,
    peer: &str,
    host: &str,
    port: u16,
    notify: &Notify,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), Broken> {
    let cluster = shared.cluster.as_ref().expect("in a cluster");
    let replication = &cluster.replication;
    let addr: SocketAddr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot reach {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut reader, mut writer) = stream.into_split();
    let password = shared.config().requirepass.clone();
    // Offsets of the last item of each request sent and not answered; `None` for AUTH.
    let mut unanswered: VecDeque<Option<u64>> = VecDeque::new();
    let mut out = Vec::new();
    if !password.is_empty() {
        dcache_protocol::reply::encode_command([&b"AUTH"[..], password.as_bytes()], &mut out);
        unanswered.push_back(None);
    }
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // Send what there is, within the window.
        while unanswered.len() < WINDOW {
            let batch = replication.core.lock().take(peer, BATCH_ITEMS);
            let Some((first, items)) = batch else { break };
            let mut body = Vec::new();
            let mut last = first - 1;
            for item in &items {
                body.extend_from_slice(item);
                last += 1;
                if body.len() >= BATCH_BYTES {
                    break;
                }
            }
            if last < first + items.len() as u64 - 1 {
                // The rest goes in the next request.
                replication.core.lock().rewind_to(peer, last);
            }
            let epoch = replication.epoch().to_string();
            let offset = last.to_string();
            dcache_protocol::reply::encode_command(
                [
                    &b"CLUSTER"[..],
                    b"APPLY",
                    replication.me.as_bytes(),
                    epoch.as_bytes(),
                    offset.as_bytes(),
                    &body,
                ],
                &mut out,
            );
            unanswered.push_back(Some(last));
        }
        if !out.is_empty() {
            writer.write_all(&out).await.map_err(|e| e.to_string())?;
            out.clear();
        }
        // Read what has been answered.
        while let Some((frame, used)) = Frame::parse(&input).map_err(|e| e.to_string())? {
            input.drain(..used);
            let offset = unanswered.pop_front().ok_or("an answer to nothing")?;
            match (frame, offset) {
                (Frame::Error(e), _) => {
                    return Err(match e.strip_prefix("STALE ").map(str::parse) {
                        Some(Ok(offset)) => Broken::Stale(offset),
                        _ => Broken::Other(format!("refused: {e}")),
                    });
                }
                (_, Some(offset)) => replication.acked(peer, offset),
                (_, None) => {}
            }
        }
        let idle = unanswered.is_empty();
        tokio::select! {
            read = reader.read(&mut chunk) => {
                let n = read.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("closed".into());
                }
                input.extend_from_slice(&chunk[..n]);
            }
            () = notify.notified(), if unanswered.len() < WINDOW => {}
            _ = stop.changed() => return Ok(()),
            // Nothing in flight and nothing to send for a while: is the peer still wanted?
            () = tokio::time::sleep(Duration::from_secs(5)), if idle => {
                let view = cluster.view();
                if !view.topology.nodes.contains_key(peer) {
                    return Ok(());
                }
            }
        }
    }
}

/// A read that asks other copies first (quorum strategy, `read-quorum` above 1): its slot and
/// keys. Set by dispatch; the connection runs [`quorum_read`], then the read again.
#[derive(Debug)]
pub struct QuorumRead {
    pub slot: u16,
    pub keys: Vec<Vec<u8>>,
}

/// How long a quorum read waits for the other copies' answers.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether a read of a slot this node holds a copy of asks other copies first (two atomic
/// loads: every read asks).
#[must_use]
pub fn quorum_reads(shared: &Shared) -> bool {
    shared.cluster.as_ref().is_some_and(|c| {
        c.replication.active() && c.replication.quorum_reads.load(Ordering::Relaxed)
    })
}

/// The reply to `CLUSTER VERSIONS key …`: each key's state here as an encoded effect (its value
/// or its tombstone, with its version), nil where this node knows nothing of it.
#[must_use]
pub fn versions(shared: &Shared, keys: &[&[u8]], now: u64) -> Vec<Option<Vec<u8>>> {
    keys.iter()
        .map(|key| {
            shared.store.version_of(key, now)?;
            Some(encoded(&shared.store.effect_of(key, now)))
        })
        .collect()
}

/// Asks the slot's other copies for the keys' versions until `read-quorum` copies (this one
/// included) have answered; takes any newer state here, and sends the newest to the copies that
/// answered with an older one (read repair). The read then runs here and sees the newest of the
/// quorum.
///
/// Any copy of the slot runs it (under `quorum` every copy coordinates).
///
/// # Errors
/// Fewer copies than the read quorum answered in time.
pub async fn quorum_read(shared: Arc<Shared>, read: QuorumRead) -> Result<(), &'static str> {
    const TOO_FEW: &str = "TRYAGAIN Not enough copies answered the quorum read";
    let cluster = shared.cluster.clone().ok_or(TOO_FEW)?;
    let view = cluster.view();
    let peers: Vec<(NodeId, String, u16)> = view
        .topology
        .replicas_of(read.slot)
        .into_iter()
        .filter(|n| n.id != view.me)
        .map(|n| (n.id.clone(), n.host.clone(), n.port))
        .collect();
    // As writes wait for at most the copies left, a read asks at most those: a slot whose set
    // lost a copy (until it is refilled) still answers.
    let need = usize::from(view.topology.settings.read_quorum)
        .saturating_sub(1)
        .min(peers.len());
    let primary = view.mine(read.slot);
    drop(view);
    let password = shared.config().requirepass.clone();
    let mut asks: tokio::task::JoinSet<Option<(usize, Vec<Option<dcache_store::Effect>>)>> =
        tokio::task::JoinSet::new();
    for (i, (_, host, port)) in peers.iter().cloned().enumerate() {
        let keys = read.keys.clone();
        let password = password.clone();
        asks.spawn(async move {
            let mut args: Vec<&[u8]> = vec![b"CLUSTER", b"VERSIONS"];
            args.extend(keys.iter().map(Vec::as_slice));
            let reply = tokio::time::timeout(
                READ_TIMEOUT,
                crate::migrate::ask((host.as_str(), port), &password, &args),
            )
            .await
            .ok()?
            .ok()?;
            let Frame::Array(items) = reply else {
                return None;
            };
            let effects = items
                .into_iter()
                .map(|item| match item {
                    Frame::Bulk(bytes) => dcache_store::Effect::decode(&bytes)
                        .ok()
                        .flatten()
                        .map(|(e, _)| e),
                    _ => None,
                })
                .collect();
            Some((i, effects))
        });
    }
    let mut answers = Vec::new();
    while answers.len() < need {
        match asks.join_next().await {
            Some(Ok(Some(answer))) => answers.push(answer),
            Some(_) => {}
            None => return Err(TOO_FEW),
        }
    }
    asks.abort_all();
    let now = shared.clock.now_ms();
    for (k, key) in read.keys.iter().enumerate() {
        let local = shared.store.version_of(key, now).map(|v| v.version());
        let newest = answers
            .iter()
            .filter_map(|(_, effects)| effects.get(k).cloned().flatten())
            .max_by_key(|e| e.version);
        let Some(newest) = newest.filter(|e| Some(e.version) > local) else {
            // This copy is the newest: repair the answers that were older.
            if local.is_some() {
                let mine = shared.store.effect_of(key, now);
                for (i, effects) in &answers {
                    if effects.get(k).cloned().flatten().map(|e| e.version) < Some(mine.version) {
                        repair(&shared, &peers[*i], &mine);
                    }
                }
            }
            continue;
        };
        restore_from_copy(&shared, primary, newest.clone(), now);
        for (i, effects) in &answers {
            if effects.get(k).cloned().flatten().map(|e| e.version) < Some(newest.version) {
                repair(&shared, &peers[*i], &newest);
            }
        }
    }
    Ok(())
}

/// `CLUSTER REPAIR effects`: takes the newer state a quorum read found elsewhere, by version.
/// Returns how many effects changed anything.
///
/// # Errors
/// Bytes that are not effects.
pub fn take_repair(shared: &Shared, mut body: &[u8], now: u64) -> Result<usize, String> {
    let view = shared.cluster.as_ref().map(|c| c.view());
    let mut applied = 0;
    while !body.is_empty() {
        let (effect, used) = dcache_store::Effect::decode(body)
            .map_err(|e| format!("ERR bad effect: {e}"))?
            .ok_or("ERR bad effect: truncated")?;
        body = &body[used..];
        // Any copy reads and repairs under `quorum`: the slot's primary may be repaired too.
        let primary = view
            .as_ref()
            .is_some_and(|v| v.mine(dcache_placement::slot(&effect.key)));
        if restore_from_copy(shared, primary, effect, now) == Applied::Changed {
            applied += 1;
        }
    }
    Ok(applied)
}

/// Sends `effect` to a copy that answered a quorum read with an older state, in the background.
fn repair(shared: &Shared, peer: &(NodeId, String, u16), effect: &dcache_store::Effect) {
    let body = encoded(effect);
    let (_, host, port) = peer.clone();
    let password = shared.config().requirepass.clone();
    tokio::spawn(async move {
        let args: [&[u8]; 3] = [b"CLUSTER", b"REPAIR", &body];
        if let Err(e) = crate::migrate::ask((host.as_str(), port), &password, &args).await {
            tracing::debug!("read repair of {host}:{port}: {e}");
        }
    });
}
