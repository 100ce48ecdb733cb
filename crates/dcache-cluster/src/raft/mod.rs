//! Topology agreement through Raft ([openraft]): every [`Change`] is a log entry, and every
//! node applies the committed entries, in order, to its own [`Topology`].
//!
//! ```text
//!              propose(change)                         bus (Transport)
//!   server ──► Cluster ──► leader? ──no──► Rpc::Propose ═══════════► the leader's Cluster
//!                │            │yes                                         │
//!                │            ▼                                            ▼
//!                │        openraft ══ append entries / vote / snapshot ══ openraft (others)
//!                │            │ committed, in log order                    │
//!                │            ▼                                            ▼
//!                │      StateMachine: Topology::apply ──► watch ──► server (routing, migration)
//!                │
//!                └── reconcile task (on the leader): Raft voters/learners follow the topology
//!
//!   failure detection ── detected_down(down) ──► the leader is down? stand for election now
//! ```
//!
//! Files in the node's directory: `node-id`, the Raft log and vote (see [`log_store`]) and the
//! last snapshot (see [`state_machine`]). Nothing else is persisted: cached data never is.
//!
//! Running it: [`Cluster::start`] inside a tokio runtime (any flavour) spawns everything it
//! needs: openraft's tasks, the bus listener (TCP on `host:bus_port`) with a task per
//! connection, the reconcile task and a watchdog that rejoins a node the cluster has lost.
//! The server keeps the `Cluster` (clones are cheap), follows [`Cluster::topology`] for routing,
//! commits changes with [`Cluster::propose`], and calls [`Cluster::shutdown`] on exit.
//!
//! [openraft]: https://docs.rs/openraft

mod config;
mod files;
pub mod log_store;
pub mod membership;
mod network;
pub mod state_machine;
mod succession;
mod tasks;
pub mod transport;
pub mod types;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::ServerState;
use openraft::error::{ClientWriteError, Fatal, InitializeError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use self::config::ClusterConfig;
use self::log_store::LogStore;
use self::network::Network;
use self::state_machine::StateMachine;
use self::succession::Succession;
use self::tasks::{reconcile, rejoin, watchdog};
use self::transport::{
    BoxFuture, Handler, Refused, Rpc, RpcReply, TcpTransport, Transport, TransportError,
};
use self::types::{Raft, RaftError, RaftId, bus_node, raft_id};
use crate::topology::{Change, ChangeError, Node, NodeId, NodeState, Topology};

/// How many times a proposal may be passed on to a node's idea of the leader (a leader that
/// just lost its place passes it on again).
const HOPS: u8 = 3;
const NODE_ID: &str = "node-id";

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The change was committed and [`Topology::apply`] refused it.
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// Not committed in time: no leader, or none reachable.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A forwarded proposal got no reply: it may or may not have been committed.
    #[error("cluster bus: {0}")]
    Transport(#[from] TransportError),
    /// Raft stopped, or refused the request for a reason of its own.
    #[error("raft: {0}")]
    Raft(String),
    #[error("bad cluster settings: {0}")]
    Config(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// This node's part in the cluster: its Raft node, its bus listener and the tasks around them.
/// Cheap to clone (clones share the node).
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    me: Node,
    core: Arc<Core>,
    topology: watch::Receiver<Arc<Topology>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// When to stand for election after failure detection reported the leader down.
    succession: Mutex<Succession>,
    /// Elections this node started because of it.
    elections_triggered: AtomicU64,
}

/// What the bus handler needs: Raft, and the way to the leader.
struct Core {
    raft: Raft,
    raft_id: RaftId,
    transport: Arc<dyn Transport>,
    /// How long to wait before asking again when there is no leader yet.
    retry: Duration,
    propose_timeout: Duration,
}

impl Cluster {
    /// Starts this node on the TCP cluster bus (see [`Cluster::start_with`]).
    ///
    /// # Errors
    /// See [`Cluster::start_with`].
    pub async fn start(config: ClusterConfig) -> Result<Cluster, Error> {
        Self::start_with(config, Arc::new(TcpTransport::new())).await
    }

    /// Loads this node's id (or makes a new random one) and Raft state from `config.dir`, starts
    /// serving the bus on `transport`, then:
    /// - with saved state, returns at once with the topology it had (replayed from its
    ///   snapshot and log), and rejoins as itself in the background (a `Join` with its id and
    ///   current address, committed when a majority is up);
    /// - else with `join`, asks that member to add it (the request goes on to the leader) and
    ///   returns once this node's own copy of the topology lists it;
    /// - else bootstraps a one-node cluster, which serves every slot, and returns when it does.
    ///
    /// # Errors
    /// The directory or the bus port cannot be used, or the node did not get into the cluster
    /// within `join_timeout`.
    pub async fn start_with(
        config: ClusterConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Cluster, Error> {
        std::fs::create_dir_all(&config.dir)?;
        let id = load_or_make_id(&config.dir, config.id.as_deref())?;
        let raft_id = raft_id(&id);
        let log = LogStore::open(&config.dir)?;
        let (tx, topology) = watch::channel(Arc::default());
        let machine = StateMachine::open(&config.dir, tx)?;
        let has_state = log.has_state() || machine.has_state();
        let network = Network {
            transport: transport.clone(),
            backoff: config.heartbeat * 5,
        };
        let raft = Raft::new(
            raft_id,
            Arc::new(config.raft_config()?),
            network,
            log,
            machine,
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
        let core = Arc::new(Core {
            raft,
            raft_id,
            transport,
            retry: config.heartbeat,
            propose_timeout: config.propose_timeout,
        });
        let handler = Arc::new(Endpoint(Arc::downgrade(&core)));
        let bus_port = match core
            .transport
            .listen(&config.host, config.bus_port, handler)
            .await
        {
            Ok(port) => port,
            Err(e) => {
                let _ = core.raft.shutdown().await;
                return Err(e.into());
            }
        };
        let me = Node {
            id,
            host: config.host.clone(),
            port: config.port,
            bus_port,
            state: NodeState::Online,
        };
        let reconciler = tokio::spawn(reconcile(
            core.clone(),
            topology.clone(),
            config.heartbeat * 2,
        ));
        let watchdog = tokio::spawn(watchdog(
            core.clone(),
            me.clone(),
            topology.clone(),
            config.election_timeout,
        ));
        let cluster = Cluster {
            inner: Arc::new(Inner {
                me,
                core,
                topology,
                tasks: Mutex::new(vec![reconciler, watchdog]),
                // A vote round trip takes far less than two heartbeats; after one election
                // timeout of attempts the others' leases have nearly run out and openraft's
                // timers do as well (see `succession`).
                succession: Mutex::new(Succession::new(
                    config.heartbeat * 2,
                    config.election_timeout,
                )),
                elections_triggered: AtomicU64::new(0),
            }),
        };
        let deadline = Instant::now() + config.join_timeout;
        let started = if has_state {
            // In the background: when a whole cluster restarts, no node can commit anything
            // until a majority is back, and a node's start must not wait for the others'.
            let task = tokio::spawn(rejoin(
                cluster.inner.core.clone(),
                cluster.inner.me.clone(),
                cluster.inner.topology.clone(),
                config.join,
            ));
            cluster.inner.tasks.lock().expect("tasks lock").push(task);
            Ok(())
        } else if let Some(seed) = config.join {
            let seed = seed.to_string();
            let joined = cluster.join(&seed, deadline).await;
            if joined.is_err() {
                cluster.withdraw(&seed).await;
            }
            joined
        } else {
            cluster.bootstrap(deadline).await
        };
        match started {
            Ok(()) => Ok(cluster),
            Err(e) => {
                cluster.shutdown().await;
                Err(e)
            }
        }
    }

    /// This node's 40-hex id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.inner.me.id
    }

    /// This node as it publishes itself in the topology (with the bus port actually bound).
    #[must_use]
    pub fn node(&self) -> &Node {
        &self.inner.me
    }

    /// The latest topology this node has applied; every change is sent on it.
    #[must_use]
    pub fn topology(&self) -> watch::Receiver<Arc<Topology>> {
        self.inner.topology.clone()
    }

    /// Commits `change` through the leader (forwarded from any node) and returns the topology
    /// right after it was applied.
    ///
    /// A proposal whose reply is lost may have been committed; one passed on after a lost
    /// connection may be committed twice (a second `Join` only bumps the epoch again; a second
    /// `Moved` is refused with [`ChangeError::NotMoving`]).
    ///
    /// # Errors
    /// [`Error::Change`] when the topology refused the change, or why it was not committed.
    pub async fn propose(&self, change: Change) -> Result<Arc<Topology>, Error> {
        let deadline = Instant::now() + self.inner.core.propose_timeout;
        self.inner.core.propose(change, HOPS, deadline).await
    }

    /// Whether this node is the Raft leader now.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        let metrics = self.inner.core.raft.metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader && metrics.current_leader == Some(metrics.id)
    }

    /// The leader as this node knows it (by id), if it knows one it can name.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        let leader = self.inner.core.raft.metrics().borrow().current_leader?;
        let topology = self.inner.topology.borrow();
        topology
            .nodes
            .keys()
            .find(|id| raft_id(id) == leader)
            .cloned()
    }

    /// The members whose votes count now, as this node knows them: during a membership change
    /// only those in both the old and the new set (members it cannot name from its topology are
    /// left out).
    #[must_use]
    pub fn voters(&self) -> BTreeSet<NodeId> {
        let metrics = self.inner.core.raft.metrics();
        let voters: BTreeSet<RaftId> = {
            let metrics = metrics.borrow();
            let mut configs = metrics
                .membership_config
                .membership()
                .get_joint_config()
                .iter();
            let first = configs.next().cloned().unwrap_or_default();
            configs.fold(first, |all, c| all.intersection(c).copied().collect())
        };
        self.inner
            .topology
            .borrow()
            .nodes
            .keys()
            .filter(|id| voters.contains(&raft_id(id)))
            .cloned()
            .collect()
    }

    /// Tells Raft which members failure detection reports down (call it on every report and
    /// regularly while any is down). When they include the leader this node follows, the node
    /// stands for election at once rather than after openraft's election timeout, so that a
    /// new leader can declare the old one failed sooner; see `raft/succession.rs` for who
    /// stands and when. Returns whether it stood now.
    pub async fn detected_down(&self, down: &HashSet<NodeId>) -> bool {
        let stand = {
            let leader = self.leader();
            let voters = self.voters();
            let mut succession = self.inner.succession.lock().expect("succession lock");
            succession.step(Instant::now(), self.id(), leader.as_deref(), &voters, down)
        };
        if !stand {
            return false;
        }
        match self.inner.core.raft.trigger().elect().await {
            Ok(()) => {
                self.inner
                    .elections_triggered
                    .fetch_add(1, Ordering::Relaxed);
                // Beside failure detection's own warnings: it explains the new leader.
                tracing::warn!("the Raft leader stopped answering: standing for election");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot stand for election");
                false
            }
        }
    }

    /// How many elections [`Cluster::detected_down`] started on this node.
    #[must_use]
    pub fn elections_triggered(&self) -> u64 {
        self.inner.elections_triggered.load(Ordering::Relaxed)
    }

    /// Stops Raft, the bus listener and the tasks around them. The directory keeps the state.
    pub async fn shutdown(&self) {
        for task in self.inner.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
        self.inner.core.transport.close();
        if let Err(e) = self.inner.core.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
    }

    async fn bootstrap(&self, deadline: Instant) -> Result<(), Error> {
        let me = &self.inner.me;
        let members = BTreeMap::from([(self.inner.core.raft_id, bus_node(&me.host, me.bus_port))]);
        match self.inner.core.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(Error::Raft(e.to_string())),
        }
        self.inner
            .core
            .propose(Change::Join(me.clone()), HOPS, deadline)
            .await?;
        self.wait_listed(deadline).await
    }

    /// Asks `seed` to commit our `Join` until it does (a join is idempotent, so asking again
    /// after a lost reply is harmless), then waits for our own copy of the log to list us.
    async fn join(&self, seed: &str, deadline: Instant) -> Result<(), Error> {
        let core = &self.inner.core;
        let join = Change::Join(self.inner.me.clone());
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(format!("joining through {seed}")));
            }
            let rpc = Rpc::Propose {
                change: join.clone(),
                hops: HOPS,
            };
            match core.transport.call(seed, rpc, left).await {
                Ok(RpcReply::Propose(Ok(_))) => break,
                Ok(RpcReply::Propose(Err(Refused::Change(e)))) => return Err(e.into()),
                Ok(other) => tracing::debug!(?other, seed, "join: no luck yet"),
                Err(e) => tracing::debug!(error = %e, seed, "join: no luck yet"),
            }
            sleep_until_or(deadline, core.retry).await;
        }
        self.wait_listed(deadline).await
    }

    /// Asks `seed` to take this node out again after a join that did not finish in time: the
    /// `Join` may have been committed all the same (its reply lost, or this node's copy of the
    /// log late), and a member that never arrives would be planned slots that it refuses for
    /// ever. `Forget` while it holds none, else `Fail`. Best effort: a seed that does not
    /// answer leaves the member listed, and then the failure detector declares it failed.
    async fn withdraw(&self, seed: &str) {
        let core = &self.inner.core;
        let id = self.inner.me.id.clone();
        let deadline = Instant::now() + core.propose_timeout;
        for change in [Change::Forget(id.clone()), Change::Fail(id)] {
            let left = deadline.saturating_duration_since(Instant::now());
            let rpc = Rpc::Propose { change, hops: HOPS };
            match core.transport.call(seed, rpc, left).await {
                Ok(RpcReply::Propose(Err(Refused::Change(ChangeError::StillServing(_))))) => {}
                other => {
                    tracing::debug!(?other, seed, "withdrawn after a join that did not finish");
                    return;
                }
            }
        }
    }

    /// Waits until our own topology lists us as we are now.
    async fn wait_listed(&self, deadline: Instant) -> Result<(), Error> {
        let mut topology = self.inner.topology.clone();
        let me = &self.inner.me;
        let listed = |t: &Topology| {
            t.nodes.get(&me.id).is_some_and(|n| {
                n.host == me.host && n.port == me.port && n.bus_port == me.bus_port
            })
        };
        tokio::time::timeout_at(deadline, topology.wait_for(|t| listed(t)))
            .await
            .map_err(|_| Error::Timeout("waiting for the topology to list this node".into()))?
            .map_err(|_| Error::Raft("the state machine stopped".into()))?;
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().expect("tasks lock").drain(..) {
            task.abort();
        }
        self.core.transport.close();
    }
}

impl Core {
    /// Commits `change` here if this node leads, or passes it on to the leader (at most `hops`
    /// times); waits for a leader when there is none, until `deadline`.
    fn propose(
        &self,
        change: Change,
        hops: u8,
        deadline: Instant,
    ) -> BoxFuture<'_, Result<Arc<Topology>, Error>> {
        // Boxed: a forwarded proposal makes the receiver call this again.
        Box::pin(async move {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Timeout("no leader committed the change".into()));
                }
                let written = tokio::time::timeout(left, self.raft.client_write(change.clone()))
                    .await
                    .map_err(|_| Error::Timeout("the change was not committed".into()))?;
                let forward = match written {
                    Ok(reply) => {
                        let applied = reply.data;
                        applied.result?;
                        return Ok(applied.topology.expect("set where applied"));
                    }
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to))) => to,
                    Err(RaftError::Fatal(Fatal::Stopped)) => {
                        return Err(Error::Raft("stopped".into()));
                    }
                    Err(e) => return Err(Error::Raft(e.to_string())),
                };
                if let (Some(leader), true) = (forward.leader_node, hops > 0) {
                    let rpc = Rpc::Propose {
                        change: change.clone(),
                        hops: hops - 1,
                    };
                    match self.transport.call(&leader.addr, rpc, left).await {
                        Ok(RpcReply::Propose(Ok(topology))) => return Ok(Arc::new(topology)),
                        Ok(RpcReply::Propose(Err(Refused::Change(e)))) => return Err(e.into()),
                        // Not committed there (it lost its place, say): ask again.
                        Ok(RpcReply::Propose(Err(Refused::Unavailable(_))))
                        | Err(TransportError::Unreachable(..)) => {}
                        Ok(other) => {
                            return Err(Error::Raft(format!("unexpected reply {other:?}")));
                        }
                        Err(e @ TransportError::Lost(..)) => return Err(e.into()),
                    }
                }
                // An election is under way (or the leader was unreachable): wait a beat.
                sleep_until_or(deadline, self.retry).await;
            }
        })
    }
}

/// Answers bus requests; holds the core weakly so that the transport (which holds the handler)
/// does not keep a stopped node alive.
struct Endpoint(Weak<Core>);

impl Handler for Endpoint {
    fn handle(&self, rpc: Rpc) -> BoxFuture<'_, RpcReply> {
        Box::pin(async move {
            let Some(core) = self.0.upgrade() else {
                return stopped_reply(rpc);
            };
            match rpc {
                Rpc::Append(req) => RpcReply::Append(core.raft.append_entries(req).await),
                Rpc::Vote(req) => RpcReply::Vote(core.raft.vote(req).await),
                Rpc::Snapshot(req) => RpcReply::Snapshot(core.raft.install_snapshot(req).await),
                Rpc::Propose { change, hops } => {
                    let deadline = Instant::now() + core.propose_timeout;
                    let result = core.propose(change, hops, deadline).await;
                    RpcReply::Propose(result.map(|t| (*t).clone()).map_err(|e| match e {
                        Error::Change(e) => Refused::Change(e),
                        other => Refused::Unavailable(other.to_string()),
                    }))
                }
            }
        })
    }
}

fn stopped_reply(rpc: Rpc) -> RpcReply {
    match rpc {
        Rpc::Append(_) => RpcReply::Append(Err(RaftError::Fatal(Fatal::Stopped))),
        Rpc::Vote(_) => RpcReply::Vote(Err(RaftError::Fatal(Fatal::Stopped))),
        Rpc::Snapshot(_) => RpcReply::Snapshot(Err(RaftError::Fatal(Fatal::Stopped))),
        Rpc::Propose { .. } => RpcReply::Propose(Err(Refused::Unavailable("stopped".into()))),
    }
}

async fn sleep_until_or(deadline: Instant, pause: Duration) {
    tokio::time::sleep_until(deadline.min(Instant::now() + pause)).await;
}

/// The id in `dir`, or a new one (`preset`, or random) saved there.
fn load_or_make_id(dir: &Path, preset: Option<&str>) -> Result<NodeId, Error> {
    let path = dir.join(NODE_ID);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_owned();
            if id.len() != 40 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(Error::Config(format!(
                    "{} does not hold a 40-hex node id",
                    path.display()
                )));
            }
            Ok(id)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let id = preset.map_or_else(random_node_id, str::to_owned);
            files::write_atomic(&path, format!("{id}\n").as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(e.into()),
    }
}

/// 40 random hex digits. `RandomState` is seeded from the operating system's randomness once
/// per thread and varies with each use, which is enough for an id (no crate needed).
#[must_use]
pub fn random_node_id() -> NodeId {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut id = String::with_capacity(48);
    for part in 0..3u32 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u32(part);
        hasher.write_u32(std::process::id());
        id.push_str(&format!("{:016x}", hasher.finish()));
    }
    id.truncate(40);
    id
}
