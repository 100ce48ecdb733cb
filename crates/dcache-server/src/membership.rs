//! A node's membership: the Raft topology (`dcache_cluster::Cluster`) and SWIM failure
//! detection (`dcache_cluster::swim::Detector`), both on the cluster-bus port, wired together.
//!
//! ```text
//!   Detector (UDP) ── Down(id) ──► suspects ──(on the Raft leader, every tick)──► propose Fail(id)
//!        ▲                                                                        │
//!        └──── set_members(every member's bus address) ◄── topology (watch) ◄─────┘
//!   Up(id) of a member marked failed ──(on the leader)──► propose Join(id): it is back
//!   Down(the Raft leader) ──(on the others, at once)──► stand for election, so that a new
//!                                leader proposes Fail(it) without waiting for Raft's timers
//!   (a node that finds itself failed also asks to come back: dcache-cluster's watchdog)
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use dcache_cluster::swim::{Detector, DetectorConfig, MemberEvent, bus_members};
use dcache_cluster::{Change, Cluster, ClusterConfig, NodeState, Topology};
use tokio::sync::watch;

use crate::cluster::{BoxFuture, Control, ProposeError};
use crate::config::NodeConfig;
use crate::server::ClusterLink;

/// The agreement layer as the server's cluster commands and migrations see it.
#[derive(Clone)]
struct RaftControl(Cluster);

impl std::fmt::Debug for RaftControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RaftControl").field(&self.0.id()).finish()
    }
}

impl Control for RaftControl {
    fn propose(&self, change: Change) -> BoxFuture<'_, Result<Arc<Topology>, ProposeError>> {
        Box::pin(async move {
            self.0.propose(change).await.map_err(|e| match e {
                // Committed and refused by the topology: final.
                dcache_cluster::Error::Change(refused) => {
                    ProposeError::Refused(refused.to_string())
                }
                other => ProposeError::Uncertain(other.to_string()),
            })
        })
    }

    fn elections_triggered(&self) -> u64 {
        self.0.elections_triggered()
    }
}

/// The running membership of a node; stop it with [`Membership::shutdown`].
pub struct Membership {
    cluster: Cluster,
    detector: Arc<Detector>,
    task: tokio::task::JoinHandle<()>,
}

/// The bus address of the member named by `join`: `host:port` (its client port; the bus is
/// port + 10000) or `host:port@busport`.
///
/// # Errors
/// An address that does not parse or resolve.
pub async fn join_address(join: &str) -> anyhow::Result<SocketAddr> {
    let (client, bus) = match join.split_once('@') {
        Some((client, bus)) => (client, Some(bus)),
        None => (join, None),
    };
    let (host, port) = client
        .rsplit_once(':')
        .with_context(|| format!("--join {join}: expected host:port"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("--join {join}: bad port"))?;
    let bus: u16 = match bus {
        Some(bus) => bus
            .parse()
            .with_context(|| format!("--join {join}: bad bus port"))?,
        None => port
            .checked_add(10000)
            .with_context(|| format!("--join {join}: port + 10000 is past 65535"))?,
    };
    tokio::net::lookup_host((host, bus))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))
}

impl Membership {
    /// Joins (or starts, or rejoins) the cluster for a node whose clients reach it at `client`,
    /// and starts failure detection.
    ///
    /// # Errors
    /// The directory or the bus port cannot be used, the seed cannot be reached, or the node did
    /// not get into the cluster in time.
    pub async fn start(
        config: &NodeConfig,
        client: SocketAddr,
        minority: Arc<AtomicBool>,
    ) -> anyhow::Result<(Membership, ClusterLink)> {
        let host = if client.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            client.ip().to_string()
        };
        let bus_port = if config.cluster_port != 0 {
            config.cluster_port
        } else if config.port == 0 {
            // Any free port for clients, any free port for the bus.
            0
        } else {
            client.port().checked_add(10000).context(
                "the client port is too high for a bus port 10000 above it; set --cluster-port",
            )?
        };
        let mut settings = ClusterConfig::new(
            PathBuf::from(&config.dir),
            host.clone(),
            client.port(),
            bus_port,
        );
        if !config.join.is_empty() {
            settings = settings.join(join_address(&config.join).await?);
        }
        let cluster = Cluster::start(settings)
            .await
            .context("cannot join the cluster")?;
        // The node that starts a cluster gives it its replication settings; a node that joins
        // (or comes back to a cluster of several) takes the cluster's.
        let alone = cluster.topology().borrow().nodes.len() == 1;
        if config.join.is_empty() && alone {
            let wanted = config.replication_settings().map_err(anyhow::Error::msg)?;
            let current = cluster.topology().borrow().settings;
            if current != wanted {
                cluster
                    .propose(dcache_cluster::Change::Set(wanted))
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot set the replication settings: {e}"))?;
            }
        }
        let me = cluster.node().clone();
        let bus: SocketAddr = format!("{host}:{}", me.bus_port)
            .parse()
            .context("bad bus address")?;
        let node_timeout = Duration::from_millis(config.cluster_node_timeout);
        let (detector, events) =
            Detector::start(DetectorConfig::new(me.id.clone(), bus).node_timeout(node_timeout))
                .await
                .with_context(|| format!("cannot listen for failure detection on udp {bus}"))?;
        let detector = Arc::new(detector);
        let task = tokio::spawn(watch_members(
            cluster.clone(),
            Arc::clone(&detector),
            events,
            node_timeout,
            minority,
        ));
        let link = ClusterLink {
            me: me.id.clone(),
            control: Arc::new(RaftControl(cluster.clone())),
            topology: cluster.topology(),
        };
        Ok((
            Membership {
                cluster,
                detector,
                task,
            },
            link,
        ))
    }

    /// Stops detection (the others see this node go at once) and Raft.
    pub async fn shutdown(&self) {
        self.task.abort();
        self.detector.shutdown().await;
        self.cluster.shutdown().await;
    }
}

/// Runs the node's side of the cluster until `stop`: follows the topology (routing, migrations)
/// and, when `CLUSTER MEET` asks a node alone to join another cluster, leaves its cluster of one
/// and joins that one (same node id, fresh Raft state).
pub async fn supervise(
    shared: Arc<crate::state::Shared>,
    mut topology: watch::Receiver<Arc<Topology>>,
    mut membership: Option<Membership>,
    local_addr: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let Some(cluster) = shared.cluster.clone() else {
        return;
    };
    let mut requests = cluster.take_join_requests();
    loop {
        let mut follower = tokio::spawn(crate::migrate::follow(
            Arc::clone(&shared),
            topology.clone(),
            stop.clone(),
        ));
        let request = tokio::select! {
            // The follower ends when the node stops.
            _ = &mut follower => break,
            request = async {
                match requests.as_mut() {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            } => request,
        };
        let (Some(member), Some(current)) = (request, membership.take()) else {
            // Nothing to rejoin with (a cluster given by the builder): follow until the stop.
            let _ = follower.await;
            break;
        };
        follower.abort();
        tracing::info!("joining the cluster of {member}");
        // The same bus port as before (it may have been any free one): whoever named this node
        // by it still finds it.
        let bus_port = current.cluster.node().bus_port;
        current.shutdown().await;
        let mut config = shared.config();
        config.join = member;
        config.cluster_port = bus_port;
        let joined = async {
            forget_raft_state(&config.dir)?;
            Membership::start(&config, local_addr, Arc::clone(&cluster.minority)).await
        }
        .await;
        let started = match joined {
            Ok(started) => Ok(started),
            Err(e) => {
                // Alone again: start a cluster of one anew.
                tracing::warn!("could not join: {e:#}; staying alone");
                config.join.clear();
                Membership::start(&config, local_addr, Arc::clone(&cluster.minority)).await
            }
        };
        let (next, link) = match started {
            Ok(started) => started,
            Err(e) => {
                tracing::error!("cannot restart the cluster of one: {e:#}");
                return;
            }
        };
        cluster.set_control(link.control);
        topology = link.topology;
        membership = Some(next);
    }
    if let Some(membership) = membership {
        membership.shutdown().await;
    }
}

/// Removes the Raft vote, log and snapshot from `dir`, keeping the node id.
fn forget_raft_state(dir: &str) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {dir}"))? {
        let entry = entry?;
        if entry.file_name() != "node-id" {
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
}

/// Keeps the detector's member list on the topology's, and turns what it detects into changes:
/// the Raft leader declares members failed; a node that finds itself declared failed while
/// alive asks to come back.
async fn watch_members(
    cluster: Cluster,
    detector: Arc<Detector>,
    mut events: tokio::sync::mpsc::Receiver<MemberEvent>,
    node_timeout: Duration,
    minority: Arc<AtomicBool>,
) {
    let mut topology: watch::Receiver<Arc<Topology>> = cluster.topology();
    let fence = |t: &Topology, down: &HashSet<String>| {
        let fenced = in_minority(t, cluster.id(), down);
        if minority.swap(fenced, Ordering::Relaxed) != fenced {
            // Loud both ways: an operator reading the log must see when the node stopped.
            if fenced {
                tracing::warn!("this node sees only a minority of the cluster: refusing requests");
            } else {
                tracing::info!("this node sees a majority of the cluster again");
            }
        }
    };
    let mut down: HashSet<String> = HashSet::new();
    // Members heard from again; the leader brings back those the topology lists as failed (a
    // Raft learner cut off and dropped never notices by itself: it never misses a leader).
    let mut up: HashSet<String> = HashSet::new();
    // Often: a node reported down is declared failed at the next tick, and failover time is
    // detection plus this.
    let mut tick = tokio::time::interval((node_timeout / 20).max(Duration::from_millis(20)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    detector.set_members(members_but(&topology.borrow(), cluster.id()));
    loop {
        tokio::select! {
            changed = topology.changed() => {
                if changed.is_err() {
                    return;
                }
                let t = Arc::clone(&topology.borrow_and_update());
                detector.set_members(members_but(&t, cluster.id()));
                fence(&t, &down);
            }
            event = events.recv() => match event {
                Some(MemberEvent::Down(id)) => {
                    tracing::warn!("node {id} stopped answering");
                    down.insert(id);
                    fence(&topology.borrow(), &down);
                    // Not at the next tick: the leader's death is the slow failover case.
                    cluster.detected_down(&down).await;
                }
                Some(MemberEvent::Up(id)) => {
                    down.remove(&id);
                    up.insert(id);
                    fence(&topology.borrow(), &down);
                }
                Some(MemberEvent::Suspect(_)) => {}
                None => return,
            },
            _ = tick.tick() => {
                let t = Arc::clone(&topology.borrow());
                fence(&t, &down);
                if !down.is_empty() {
                    // One survivor stands again while the election is split.
                    cluster.detected_down(&down).await;
                }
                if cluster.is_leader() {
                    for id in &down {
                        if t.nodes.get(id).is_some_and(|n| n.state != NodeState::Failed) {
                            match cluster.propose(Change::Fail(id.clone())).await {
                                Ok(_) => tracing::warn!("node {id} declared failed; its slots go to the others"),
                                Err(e) => tracing::warn!("declaring {id} failed: {e}"),
                            }
                        }
                    }
                    for id in std::mem::take(&mut up) {
                        if let Some(node) = t.nodes.get(&id).filter(|n| n.state == NodeState::Failed) {
                            let mut node = node.clone();
                            node.state = NodeState::Online;
                            if let Err(e) = cluster.propose(Change::Join(node)).await {
                                tracing::debug!("bringing {id} back: {e}");
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Whether `me` sees fewer than half of the members that are not failed (itself included),
/// counting those failure detection reports down as unreachable. The others may then hold a
/// majority that declares this node failed and promotes its replicas: answering here meanwhile
/// would acknowledge writes the cluster is about to forget, so the node refuses requests, as a
/// Redis Cluster node in a minority does. An even split fences no one: neither side has the
/// majority that a failover needs.
#[must_use]
pub fn in_minority(topology: &Topology, me: &str, down: &HashSet<String>) -> bool {
    let live: Vec<&str> = topology
        .nodes
        .values()
        .filter(|n| n.state != NodeState::Failed)
        .map(|n| n.id.as_str())
        .collect();
    let reachable = live
        .iter()
        .filter(|&&id| id == me || !down.contains(id))
        .count();
    reachable * 2 < live.len()
}

/// Every member's bus address but this node's.
fn members_but(topology: &Topology, me: &str) -> Vec<(String, SocketAddr)> {
    bus_members(topology)
        .into_iter()
        .filter(|(id, _)| id != me)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcache_cluster::Node;

    fn topology(ids: &[&str], failed: &[&str]) -> Topology {
        let mut t = Topology::default();
        for (i, id) in ids.iter().enumerate() {
            t.apply(&Change::Join(Node {
                id: (*id).to_owned(),
                host: "127.0.0.1".into(),
                port: 7000 + i as u16,
                bus_port: 17000 + i as u16,
                state: NodeState::Online,
            }))
            .unwrap();
        }
        for id in failed {
            t.apply(&Change::Fail((*id).to_owned())).unwrap();
        }
        t
    }

    fn down(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_node_that_sees_fewer_than_half_is_in_a_minority() {
        let t = topology(&["a", "b", "c"], &[]);
        assert!(!in_minority(&t, "a", &down(&[])));
        assert!(!in_minority(&t, "a", &down(&["b"])), "two of three");
        assert!(in_minority(&t, "a", &down(&["b", "c"])), "one of three");
        let t = topology(&["a", "b", "c", "d", "e"], &[]);
        assert!(in_minority(&t, "a", &down(&["c", "d", "e"])), "two of five");
        assert!(!in_minority(&t, "a", &down(&["d", "e"])), "three of five");
    }

    #[test]
    fn an_even_split_fences_no_one_and_failed_nodes_do_not_count() {
        // Neither half of an even split has the majority a failover needs.
        let t = topology(&["a", "b"], &[]);
        assert!(!in_minority(&t, "a", &down(&["b"])));
        let t = topology(&["a", "b", "c", "d"], &[]);
        assert!(!in_minority(&t, "a", &down(&["c", "d"])));
        // Once the cluster has declared c and d failed, a and b are the cluster.
        let t = topology(&["a", "b", "c", "d", "e"], &["d", "e"]);
        assert!(!in_minority(&t, "a", &down(&["d", "e"])));
        assert!(in_minority(&t, "a", &down(&["b", "c", "d", "e"])));
    }
}
