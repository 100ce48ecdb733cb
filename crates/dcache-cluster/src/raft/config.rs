//! How a node takes part in the cluster: addresses, directory and timeouts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use openraft::SnapshotPolicy;

use super::Error;
use crate::topology::NodeId;

/// How a node takes part in the cluster. [`ClusterConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Where the node id, Raft vote, log and snapshot live.
    pub dir: PathBuf,
    /// The address others reach this node at (clients and the bus); also the one bound.
    pub host: String,
    /// The client (Redis protocol) port, as published in the topology.
    pub port: u16,
    /// The cluster-bus port (Raft over TCP; 0 binds any free port).
    pub bus_port: u16,
    /// A member's bus address to join through; `None` starts a cluster (or rejoins one from
    /// saved state).
    pub join: Option<SocketAddr>,
    /// The id to take when `dir` holds none (tests want fixed ids); `None` makes a random one.
    pub id: Option<NodeId>,
    /// The leader's heartbeat.
    pub heartbeat: Duration,
    /// `E`: a follower that hears no leader for its lease (`2E`, during which it refuses to
    /// vote for anyone else) and then `E` to `2E` more (drawn once per process) stands for
    /// election: 2.4-3.2 s of silence by default. Kept long so that a busy machine does not
    /// depose a live leader; failure detection starts an election sooner when the leader is
    /// really gone (`Cluster::detected_down`).
    pub election_timeout: Duration,
    /// How long a proposal may wait to be committed (including finding a leader).
    pub propose_timeout: Duration,
    /// How long `start` waits to be part of the cluster (joining, or rejoining from saved state).
    pub join_timeout: Duration,
    /// A snapshot is taken after this many entries; the log keeps the last few after it.
    pub snapshot_every: u64,
}

impl ClusterConfig {
    /// Defaults: a heartbeat every 100 ms, `E` = 800 ms (elections after 2.4–3.2 s of
    /// silence), 10 s to commit a proposal and 30 s to join.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>, host: impl Into<String>, port: u16, bus_port: u16) -> Self {
        Self {
            dir: dir.into(),
            host: host.into(),
            port,
            bus_port,
            join: None,
            id: None,
            heartbeat: Duration::from_millis(100),
            election_timeout: Duration::from_millis(800),
            propose_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(30),
            snapshot_every: 500,
        }
    }

    /// Joins the cluster through the member whose bus address is `seed`.
    #[must_use]
    pub fn join(mut self, seed: SocketAddr) -> Self {
        self.join = Some(seed);
        self
    }

    /// Takes this id if the directory holds none.
    #[must_use]
    pub fn id(mut self, id: impl Into<NodeId>) -> Self {
        self.id = Some(id.into());
        self
    }

    pub(super) fn raft_config(&self) -> Result<openraft::Config, Error> {
        let ms = |d: Duration| d.as_millis().max(1) as u64;
        let config = openraft::Config {
            cluster_name: "dcache".into(),
            heartbeat_interval: ms(self.heartbeat),
            election_timeout_min: ms(self.election_timeout),
            election_timeout_max: ms(self.election_timeout) * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.snapshot_every / 5,
            ..Default::default()
        };
        config.validate().map_err(|e| Error::Config(e.to_string()))
    }
}
