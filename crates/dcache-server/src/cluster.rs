//! The node's side of the cluster: which slots are its own, where the others are, and the
//! writes to watch while a slot moves away.
//!
//! ```text
//!   agreed topology (watch channel) ──► View { slot → owner, my index } ──► dispatch's route()
//!                                                                         │
//!        Here (run it) · Copy (run it as a quorum copy) · MOVED slot host:port · CROSSSLOT ·
//!        CLUSTERDOWN · TRYAGAIN (paused)
//!
//!   migration (migrate.rs) marks slots Watched (writes recorded as dirty keys), then Paused
//!   (writes answered TRYAGAIN) for the moment the last writes are copied and the move commits.
//! ```
//!
//! Routing is a table lookup per key: each connection keeps the view it last used and takes the
//! new one only when the generation counter moved.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// A new random node id: 40 hex characters, as Redis Cluster's.
pub use dcache_cluster::random_node_id;
use dcache_cluster::{Change, Node, NodeState, Strategy, Topology};
use dcache_placement::SLOTS;
use parking_lot::{Mutex, RwLock};

/// What a node's cluster commands and migrations ask of the agreement layer.
pub trait Control: Send + Sync + fmt::Debug {
    /// Commits `change` and returns the topology right after it was applied.
    fn propose(&self, change: Change) -> BoxFuture<'_, Result<Arc<Topology>, ProposeError>>;

    /// Raft elections this node started because failure detection reported the leader down.
    fn elections_triggered(&self) -> u64 {
        0
    }
}

/// Why a proposal did not return a topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// It will not take effect: the topology refused it (or it never reached the log).
    #[error("{0}")]
    Refused(String),
    /// It may yet take effect (a timeout, a leader lost on the way): only a later topology tells.
    #[error("{0}")]
    Uncertain(String),
}

impl From<String> for ProposeError {
    fn from(reason: String) -> Self {
        ProposeError::Refused(reason)
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

const NO_OWNER: u16 = u16::MAX;

/// One topology, as dispatch reads it.
#[derive(Debug)]
pub struct View {
    pub topology: Arc<Topology>,
    /// This node's id.
    pub me: String,
    /// The topology's nodes, in id order.
    pub nodes: Vec<Node>,
    /// `host:port` of each node, ready for `-MOVED`.
    endpoints: Vec<String>,
    /// Each slot's owner, an index into `nodes`.
    owner: Box<[u16]>,
    /// Each slot's copies (primary first), `width` indices into `nodes` per slot, `NO_OWNER` in
    /// vacant places.
    copies: Box<[u16]>,
    width: usize,
    /// This node's index in `nodes`, or `NO_OWNER` while it is not a member.
    my_index: u16,
}

impl View {
    fn new(me: &str, topology: Arc<Topology>) -> View {
        let nodes: Vec<Node> = topology.nodes.values().cloned().collect();
        let endpoints = nodes
            .iter()
            .map(|n| format!("{}:{}", n.host, n.port))
            .collect();
        let owner = topology
            .owners()
            .into_iter()
            .map(|o| o.unwrap_or(NO_OWNER))
            .collect();
        let my_index = nodes
            .iter()
            .position(|n| n.id == me)
            .map_or(NO_OWNER, |i| i as u16);
        let index_of = |id: &str| {
            nodes
                .iter()
                .position(|n| n.id == id)
                .map_or(NO_OWNER, |i| i as u16)
        };
        let width = topology.slots.as_ref().map_or(0, |p| p.rf());
        let mut copies = vec![NO_OWNER; SLOTS * width];
        if let Some(slots) = &topology.slots {
            for slot in 0..SLOTS {
                for (i, m) in slots.replicas(slot as u16).enumerate().take(width) {
                    copies[slot * width + i] = index_of(&m.id);
                }
            }
        }
        View {
            topology,
            me: me.to_owned(),
            nodes,
            endpoints,
            owner,
            copies: copies.into(),
            width,
            my_index,
        }
    }

    /// The copies of `slot`, primary first, as indices into `nodes`.
    pub fn copies(&self, slot: u16) -> impl Iterator<Item = usize> + '_ {
        let s = usize::from(slot) * self.width;
        self.copies[s..s + self.width]
            .iter()
            .take_while(|&&i| i != NO_OWNER)
            .map(|&i| usize::from(i))
    }

    /// Whether this node holds a copy of `slot` (as its primary or a replica).
    #[must_use]
    pub fn holds(&self, slot: u16) -> bool {
        self.my_index != NO_OWNER && self.copies(slot).any(|i| i == usize::from(self.my_index))
    }

    /// The node serving `slot`, if any.
    #[must_use]
    pub fn owner(&self, slot: u16) -> Option<&Node> {
        match self.owner[usize::from(slot)] {
            NO_OWNER => None,
            i => Some(&self.nodes[usize::from(i)]),
        }
    }

    /// Whether this node serves `slot`.
    #[must_use]
    pub fn mine(&self, slot: u16) -> bool {
        self.my_index != NO_OWNER && self.owner[usize::from(slot)] == self.my_index
    }

    /// This node, as the topology lists it.
    #[must_use]
    pub fn myself(&self) -> Option<&Node> {
        self.nodes.get(usize::from(self.my_index))
    }

    /// Runs of consecutive slots with the same copies: (first, last, copies as indices into
    /// `nodes`, primary first).
    #[must_use]
    pub fn ranges(&self) -> Vec<(u16, u16, Vec<usize>)> {
        let mut out: Vec<(u16, u16, Vec<usize>)> = Vec::new();
        for slot in 0..SLOTS as u16 {
            if self.owner[usize::from(slot)] == NO_OWNER {
                continue;
            }
            match out.last_mut() {
                Some((_, last, set))
                    if *last + 1 == slot && set.iter().copied().eq(self.copies(slot)) =>
                {
                    *last = slot;
                }
                _ => out.push((slot, slot, self.copies(slot).collect())),
            }
        }
        out
    }

    /// Whether `slot`'s copies are about to change: a move of it is planned and not committed
    /// (its primary drives it, watching and then pausing its writes).
    #[must_use]
    pub fn moving(&self, slot: u16) -> bool {
        match (&self.topology.slots, &self.topology.target) {
            (Some(now), Some(target)) => !now.same_set(target, slot),
            _ => false,
        }
    }

    /// How many slots have a live owner.
    #[must_use]
    pub fn slots_ok(&self) -> usize {
        self.owner
            .iter()
            .filter(|&&o| o != NO_OWNER && self.nodes[usize::from(o)].state != NodeState::Failed)
            .count()
    }
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Run it here. `watched` when it writes to a slot being migrated, as it looked when routed;
    /// a write must still go through [`Cluster::enter`], which decides.
    Here { slot: Option<u16>, watched: bool },
    /// Run it here as a copy of `slot` that is not its primary: under `quorum` every copy
    /// coordinates the reads and writes sent to it. A write goes through
    /// [`Cluster::enter_copy`], not [`Cluster::enter`]: the primary drives the slot's
    /// migrations, and accounts for this copy's writes when their effects reach it
    /// (`crate::replicate::apply`).
    Copy { slot: u16 },
    /// Not an error Redis Cluster would give; the reply line.
    Refuse(String),
}

/// A slot's state while it moves away.
const SETTLED: u8 = 0;
const WATCHED: u8 = 1;
const PAUSED: u8 = 2;

/// The cluster state a node shares between its connections.
pub struct Cluster {
    view: RwLock<Arc<View>>,
    generation: AtomicU64,
    control: RwLock<Option<Arc<dyn Control>>>,
    /// `CLUSTER MEET` on a node alone asks to join another cluster: the member to join through.
    join_requests: tokio::sync::mpsc::UnboundedSender<String>,
    join_receiver: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
    /// Per slot: settled, watched (writes recorded) or paused (writes refused for a moment).
    moving: Box<[AtomicU8]>,
    /// Writes to watched slots that have passed the pause check and not finished.
    in_flight: AtomicUsize,
    /// Per slot: writes that found it settled and have not finished. [`Cluster::watch`] waits
    /// for them: they are not recorded as dirty, and one that lands after the snapshot read its
    /// key would be lost.
    settled_writes: Box<[AtomicU32]>,
    /// Keys written in watched slots since the migration last took them.
    dirty: Mutex<HashSet<Vec<u8>>>,
    /// Wakes whoever waits for a topology.
    changed: tokio::sync::Notify,
    /// Set by CLUSTER LEAVE: the node stops once the topology no longer lists it.
    pub leave_requested: std::sync::atomic::AtomicBool,
    /// Replication: streams to the other copies, and writes waiting for them.
    pub replication: crate::replicate::Replication,
    /// Set while failure detection sees only a minority of the cluster: keyed requests are
    /// refused (`membership::in_minority`).
    pub minority: Arc<std::sync::atomic::AtomicBool>,
    /// Per slot, at a chain's head: the writes on their way to the tail.
    pub(crate) chain_pending: Box<[Mutex<Vec<crate::replicate::Ack>>]>,
    /// Migration counters, for INFO and metrics.
    pub slots_moved_out: AtomicU64,
    pub migration_sent_bytes: AtomicU64,
    pub imported_records: AtomicU64,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("epoch", &self.view.read().topology.epoch)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The state of node `me` before it has a topology (every keyed command: CLUSTERDOWN).
    #[must_use]
    pub fn new(me: &str, control: Option<Arc<dyn Control>>) -> Cluster {
        let (join_requests, join_receiver) = tokio::sync::mpsc::unbounded_channel();
        Cluster {
            view: RwLock::new(Arc::new(View::new(me, Arc::default()))),
            generation: AtomicU64::new(0),
            control: RwLock::new(control),
            join_requests,
            join_receiver: Mutex::new(Some(join_receiver)),
            moving: (0..SLOTS).map(|_| AtomicU8::new(SETTLED)).collect(),
            in_flight: AtomicUsize::new(0),
            settled_writes: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            dirty: Mutex::default(),
            changed: tokio::sync::Notify::new(),
            leave_requested: std::sync::atomic::AtomicBool::new(false),
            replication: crate::replicate::Replication::new(me),
            minority: Arc::default(),
            chain_pending: (0..SLOTS).map(|_| Mutex::new(Vec::new())).collect(),
            slots_moved_out: AtomicU64::new(0),
            migration_sent_bytes: AtomicU64::new(0),
            imported_records: AtomicU64::new(0),
        }
    }

    /// Shares `flag` as the minority flag (set by failure detection).
    #[must_use]
    pub fn fenced_by(mut self, flag: Arc<std::sync::atomic::AtomicBool>) -> Cluster {
        self.minority = flag;
        self
    }

    /// The value of a `dcache_cluster_*` metric.
    #[must_use]
    pub fn metric(&self, name: &str) -> u64 {
        let view = self.view();
        let t = &view.topology;
        match name {
            "dcache_cluster_epoch" => t.epoch,
            "dcache_cluster_known_nodes" => t.nodes.len() as u64,
            "dcache_cluster_slots_served" => {
                (0..SLOTS as u16).filter(|&s| view.mine(s)).count() as u64
            }
            "dcache_cluster_slots_migrating_out" => t.moving_from(&view.me).len() as u64,
            "dcache_cluster_slots_moved_out" => self.slots_moved_out.load(Ordering::Relaxed),
            "dcache_cluster_migration_sent_bytes" => {
                self.migration_sent_bytes.load(Ordering::Relaxed)
            }
            "dcache_cluster_migration_imported_records" => {
                self.imported_records.load(Ordering::Relaxed)
            }
            "dcache_cluster_elections_triggered" => {
                self.control().map_or(0, |c| c.elections_triggered())
            }
            _ => 0,
        }
    }

    /// Waits until this node has taken a topology of at least `epoch`.
    pub async fn wait_for_epoch(&self, epoch: u64) {
        loop {
            let changed = self.changed.notified();
            if self.view.read().topology.epoch >= epoch {
                return;
            }
            changed.await;
        }
    }

    /// Takes a newly agreed topology.
    pub fn set_topology(&self, topology: Arc<Topology>) {
        let old = self.view();
        let view = View::new(&old.me, topology);
        // A slot that comes (back) to this node may still be paused from when it moved away
        // (see `settle`): writes to it run again from the moment the view says it is ours.
        for slot in 0..SLOTS as u16 {
            if view.mine(slot) && !old.mine(slot) {
                self.moving[usize::from(slot)].store(SETTLED, Ordering::SeqCst);
            }
        }
        self.replication.set_topology(&view.topology);
        *self.view.write() = Arc::new(view);
        self.generation.fetch_add(1, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// The current view.
    #[must_use]
    pub fn view(&self) -> Arc<View> {
        Arc::clone(&self.view.read())
    }

    /// Bumped by every new topology: a connection re-reads [`Cluster::view`] when it moved.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    #[must_use]
    pub fn control(&self) -> Option<Arc<dyn Control>> {
        self.control.read().clone()
    }

    /// The agreement layer of the cluster this node joined instead (after `CLUSTER MEET`).
    pub fn set_control(&self, control: Arc<dyn Control>) {
        *self.control.write() = Some(control);
    }

    /// Asks the node to leave its cluster of one and join the cluster of `member`
    /// (`host:port@busport`); the membership supervisor does it.
    pub fn request_join(&self, member: String) {
        let _ = self.join_requests.send(member);
    }

    /// The requests of [`Cluster::request_join`], for the one task that carries them out.
    pub fn take_join_requests(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<String>> {
        self.join_receiver.lock().take()
    }

    /// Routes a request whose keys are `keys`.
    pub fn route<'k>(
        &self,
        view: &View,
        keys: impl Iterator<Item = &'k [u8]>,
        writes: bool,
        readonly: bool,
    ) -> Route {
        let mut slot = None;
        for key in keys {
            let s = dcache_placement::slot(key);
            match slot {
                None => slot = Some(s),
                Some(first) if first != s => {
                    return Route::Refuse(
                        "CROSSSLOT Keys in request don't hash to the same slot".into(),
                    );
                }
                Some(_) => {}
            }
        }
        let Some(slot) = slot else {
            return Route::Here {
                slot: None,
                watched: false,
            };
        };
        if self.minority.load(Ordering::Relaxed) {
            return Route::Refuse("CLUSTERDOWN The cluster is down".into());
        }
        if !view.mine(slot) {
            // Under `quorum` any copy coordinates, except a write while the slot moves: only
            // the primary knows when the move watches or pauses the slot's writes, so the write
            // is sent there (`-MOVED`), where it is recorded for the move or refused as its own.
            if view.holds(slot)
                && view.topology.settings.strategy == Strategy::Quorum
                && !(writes && view.moving(slot))
            {
                return Route::Copy { slot };
            }
            if readonly && !writes && view.holds(slot) {
                return Route::Here {
                    slot: None,
                    watched: false,
                };
            }
            return Route::Refuse(redirect(view, slot));
        }
        let watched = writes && self.moving[usize::from(slot)].load(Ordering::Relaxed) != SETTLED;
        Route::Here {
            slot: Some(slot),
            watched,
        }
    }

    /// Before a write that this node coordinates as a replica of `slot` ([`Route::Copy`]) runs:
    /// counts it until [`Cluster::leave`] (not watched), so that [`Cluster::quiesce`] waits for
    /// it, and sends it to the primary (`-MOVED`) if the slot started moving since the
    /// connection routed it. Counting before looking at the newest view orders the two: once a
    /// node has a topology where the slot moves and `quiesce` returned, no write of the slot that
    /// it coordinates is on its way to the streams.
    ///
    /// # Errors
    /// `-MOVED` (or `-CLUSTERDOWN`) when the slot moves.
    pub fn enter_copy(&self, slot: u16) -> Result<(), String> {
        let s = usize::from(slot);
        self.settled_writes[s].fetch_add(1, Ordering::SeqCst);
        let view = self.view();
        if view.moving(slot) {
            self.settled_writes[s].fetch_sub(1, Ordering::SeqCst);
            return Err(redirect(&view, slot));
        }
        Ok(())
    }

    /// Waits until no write to `slots` that found them settled is running
    /// ([`Cluster::enter`], [`Cluster::enter_copy`]).
    pub async fn quiesce(&self, slots: &[u16]) {
        for &s in slots {
            while self.settled_writes[usize::from(s)].load(Ordering::SeqCst) != 0 {
                tokio::task::yield_now().await;
            }
        }
    }

    /// Before the effect of a write that another copy coordinated (`quorum`) is applied at the
    /// slot's primary: as [`Cluster::enter`], except that a paused slot takes it too (and
    /// records its key). The copies send what they coordinated to the primary while it holds
    /// the slot paused (`crate::replicate::flush_copies`), and it copies those keys to the new
    /// copies before the move commits. Returns whether the key is to be recorded.
    pub fn enter_effect(&self, slot: u16) -> bool {
        let s = usize::from(slot);
        self.settled_writes[s].fetch_add(1, Ordering::SeqCst);
        if self.moving[s].load(Ordering::SeqCst) == SETTLED {
            return false;
        }
        self.settled_writes[s].fetch_sub(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Before a write to a slot of this node runs (whatever [`Route::Here`]'s `watched` said: the
    /// slot may have been watched since): counts it until [`Cluster::leave`], and says whether it
    /// is watched (its keys are then recorded as dirty). Refuses it while the slot is paused. The
    /// states and these checks are ordered (`SeqCst` on both sides), so once [`Cluster::watch`]
    /// returns every write to the slot is recorded, and once [`Cluster::pause`] returns no write
    /// to the slot is running or will run.
    ///
    /// # Errors
    /// `TRYAGAIN` while the slot is paused.
    pub fn enter(&self, slot: u16) -> Result<bool, &'static str> {
        let s = usize::from(slot);
        self.settled_writes[s].fetch_add(1, Ordering::SeqCst);
        if self.moving[s].load(Ordering::SeqCst) == SETTLED {
            return Ok(false);
        }
        self.settled_writes[s].fetch_sub(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        if self.moving[s].load(Ordering::SeqCst) == PAUSED {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err("TRYAGAIN The slot is moving to another node; try again in a moment");
        }
        Ok(true)
    }

    /// After a write that [`Cluster::enter`] let in: when `watched`, records its keys for the
    /// migration to copy again.
    pub fn leave<'k>(&self, slot: u16, watched: bool, keys: impl Iterator<Item = &'k [u8]>) {
        if !watched {
            self.settled_writes[usize::from(slot)].fetch_sub(1, Ordering::SeqCst);
            return;
        }
        {
            let mut dirty = self.dirty.lock();
            for key in keys {
                dirty.insert(key.to_vec());
            }
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Starts recording writes to `slots`, and waits until the writes that found them settled
    /// (unrecorded) are done, so that what follows (the snapshot) sees them.
    pub async fn watch(&self, slots: &[u16]) {
        for &s in slots {
            self.moving[usize::from(s)].store(WATCHED, Ordering::SeqCst);
        }
        self.quiesce(slots).await;
    }

    /// Refuses writes to `slots` (already watched) and waits until none is running.
    pub async fn pause(&self, slots: &[u16]) {
        for &s in slots {
            self.moving[usize::from(s)].store(PAUSED, Ordering::SeqCst);
        }
        while self.in_flight.load(Ordering::SeqCst) != 0 {
            tokio::task::yield_now().await;
        }
    }

    /// Back to normal for `slots` (moved, or the move was abandoned). A slot that this node no
    /// longer serves stays paused: a connection may have taken the view from before the move just
    /// before it committed, and its write must get TRYAGAIN (then MOVED), not run on the copy
    /// that is about to be deleted. [`Cluster::set_topology`] settles it if it comes back.
    pub fn settle(&self, slots: &[u16]) {
        let view = self.view();
        for &s in slots {
            if view.mine(s) {
                self.moving[usize::from(s)].store(SETTLED, Ordering::SeqCst);
            }
        }
    }

    /// The keys written to watched slots since the last call.
    #[must_use]
    pub fn take_dirty(&self) -> HashSet<Vec<u8>> {
        std::mem::take(&mut self.dirty.lock())
    }
}

/// The reply that sends a request for `slot` to its primary: `-MOVED`, or `-CLUSTERDOWN` when
/// no live node serves it.
fn redirect(view: &View, slot: u16) -> String {
    match view.owner(slot) {
        Some(node) if node.state != NodeState::Failed => format!(
            "MOVED {slot} {}",
            view.endpoints[usize::from(view.owner[usize::from(slot)])]
        ),
        _ => "CLUSTERDOWN Hash slot not served".into(),
    }
}

/// A topology kept in memory and shared by the nodes of one process: agreement without Raft,
/// for tests of routing and migration and for a node that runs alone.
#[derive(Debug)]
pub struct LocalControl {
    topology: Mutex<Topology>,
    tx: tokio::sync::watch::Sender<Arc<Topology>>,
}

impl LocalControl {
    #[must_use]
    pub fn new() -> Arc<LocalControl> {
        let (tx, _) = tokio::sync::watch::channel(Arc::default());
        Arc::new(LocalControl {
            topology: Mutex::default(),
            tx,
        })
    }

    /// Follows the topology.
    #[must_use]
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Topology>> {
        self.tx.subscribe()
    }

    /// Applies `change` now.
    ///
    /// # Errors
    /// The change's own error.
    pub fn apply(&self, change: &Change) -> Result<Arc<Topology>, String> {
        self.apply_with_previous(change).map(|(_, next)| next)
    }

    /// Applies `change` now, and returns the topology it was applied to with the result: what a
    /// test compares with when nodes commit changes of their own meanwhile (a migration's
    /// batches), which a topology read before the call may have missed.
    ///
    /// # Errors
    /// The change's own error.
    pub fn apply_with_previous(
        &self,
        change: &Change,
    ) -> Result<(Arc<Topology>, Arc<Topology>), String> {
        let mut topology = self.topology.lock();
        // What was last sent is the topology: every change is sent under the lock.
        let previous = Arc::clone(&self.tx.borrow());
        topology.apply(change).map_err(|e| e.to_string())?;
        let next = Arc::new(topology.clone());
        self.tx.send_replace(Arc::clone(&next));
        Ok((previous, next))
    }
}

impl Control for LocalControl {
    fn propose(&self, change: Change) -> BoxFuture<'_, Result<Arc<Topology>, ProposeError>> {
        Box::pin(async move { Ok(self.apply(&change)?) })
    }
}
