//! Failure detection: SWIM through the `foca` crate, over UDP on the cluster-bus port.
//!
//! ```text
//!            set_members(topology)          MemberEvent::{Up, Suspect, Down}
//!                  │                                     ▲
//!   Detector ──────┼─────────────── driver task ─────────┼──────────────────────────
//!                  ▼                                     │ (coalesced per node while
//!   ┌─────────── SwimCore (no I/O) ───────────┐          │  the receiver lags)
//!   │ foca::Foca<SwimId>  ── membership diff ─┼──────────┘
//!   └──┬──────────────▲────────────▲──────────┘
//!      │ datagrams    │ datagrams  │ timers due
//!      ▼              │            │
//!   UdpSocket (bind host:bus_port)    timer heap (tokio::time::sleep_until)
//! ```
//!
//! [`SwimCore`] is a state machine: a datagram, a timer or a member list goes in, [`Effects`]
//! (datagrams to send, timers to arm, events) come out. [`Detector`] is the thin tokio task that
//! owns the socket and the timers. Tests drive cores through an in-memory network with
//! simulated time (`tests/swim_sim.rs`); one test runs detectors over real UDP.
//!
//! # Identity
//!
//! A member is a [`SwimId`]: node id, bus address and a generation. foca keeps one entry per
//! node id (its `Identity::Addr`), and the higher generation wins when two identities share a
//! node id. A process starts with its wall-clock time in milliseconds as its generation, so a
//! restarted node (same id, maybe a new address) replaces its previous life at once; a node
//! that learns it was declared down renews itself (generation + 1) and rejoins.
//!
//! # Timing
//!
//! Everything derives from the node timeout `T` (default 2 s), so that a node that stops
//! answering is declared down within `T` ([`Timing::from_node_timeout`]):
//!
//! | knob | value | default |
//! |---|---|---|
//! | probe period `P` | `T / 10` | 200 ms |
//! | direct-ack wait (`probe_rtt`) | `P / 3` | 66 ms |
//! | suspicion, suspect → down `S` | `T / 4` | 500 ms |
//! | gossip `G` (to 3 members) | `T / 20` | 100 ms |
//! | re-announce to listed members not alive | `T` | 2 s |
//!
//! A member `X` dies at time 0. Each survivor probes the members it knows in a shuffled
//! round-robin, so with `m` other members it probes `X` at least once every `2m - 1` periods
//! (`X` first in one round, last in the next). The probe that gets no answer, direct or
//! indirect, makes `X` suspect at the prober's next period; `S` later the prober declares it
//! down and gossips that within `G`:
//!
//! ```text
//!   worst case = (2m - 1)·P  +  P  +  S  +  G
//!   3 or 4 nodes (m ≤ 3):  5·200 + 200 + 500 + 100 = 1800 ms ≤ T = 2000 ms
//! ```
//!
//! Beyond 4 nodes the bound is probabilistic, as SWIM is: any of the `n - 1` survivors may be
//! the first to probe `X`, and the chance that none has within 5 periods is about `e^-5`
//! (< 1 %); the expected wait is one to two periods. Suspicion lasts `S = 5·G`, enough for the
//! suspect to hear of it and refute it over a lossy link (10 % loss is tested).
//!
//! In the simulation of `tests/swim_sim.rs` (default timing, 0.2–3 ms latency, no loss), from
//! a kill to `Down` at each survivor: 3 nodes, 199 seeds: mean 0.77 s, worst 1.10 s; 4 nodes:
//! 0.78 s, 1.30 s; 8 nodes: 0.81 s, 1.40 s; 64 nodes, 29 seeds: 0.98 s, 1.60 s.
//!
//! A member that leaves ([`Detector::shutdown`]) says so, and is reported down within a
//! gossip round instead.
//!
//! # Wiring
//!
//! ```no_run
//! # async fn wire(id: String, bus: std::net::SocketAddr, topology: dcache_cluster::Topology)
//! # -> std::io::Result<()> {
//! use dcache_cluster::swim::{bus_members, Detector, DetectorConfig, MemberEvent};
//!
//! let (detector, mut events) = Detector::start(DetectorConfig::new(id, bus)).await?;
//! // At start and after every applied change: SWIM follows the agreed topology.
//! detector.set_members(bus_members(&topology));
//! while let Some(event) = events.recv().await {
//!     if let MemberEvent::Down(node) = event {
//!         // The Raft leader proposes Change::Fail(node).
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod driver;
mod machine;

use std::net::{SocketAddr, ToSocketAddrs};
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use foca::Identity;
use serde::{Deserialize, Serialize};

pub use self::driver::{DEFAULT_NODE_TIMEOUT, Detector, DetectorConfig};
pub use self::machine::{Effects, SwimCore, Timer};
use crate::topology::{NodeId, Topology};

/// The bus address of every member of `topology`, failed ones included (that is how they are
/// found again when they come back), for [`Detector::set_members`]. An IP literal is taken as
/// it is; a host name goes through the system resolver (blocking), and a member whose name
/// does not resolve is left out until the next call.
#[must_use]
pub fn bus_members(topology: &Topology) -> Vec<(NodeId, SocketAddr)> {
    topology
        .nodes
        .values()
        .filter_map(|node| {
            let bus = (node.host.as_str(), node.bus_port).to_socket_addrs();
            match bus.map(|mut found| found.next()) {
                Ok(Some(bus)) => Some((node.id.clone(), bus)),
                Ok(None) | Err(_) => {
                    tracing::warn!(node = %node.id, host = %node.host, "swim: bus host does not resolve");
                    None
                }
            }
        })
        .collect()
}

/// What the detector learned about another member. Events for one node come in the order they
/// happened; a consumer that lags sees only the latest one per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEvent {
    /// The node answers: first contact, back after `Down` (a restart, a healed partition), or a
    /// suspicion it refuted.
    Up(NodeId),
    /// The node missed a probe, directly and through others; `Down` follows unless it refutes.
    /// Redis Cluster's `PFAIL`.
    Suspect(NodeId),
    /// The node stayed unreachable through the suspicion, or left. Redis Cluster's `FAIL`.
    Down(NodeId),
}

impl MemberEvent {
    /// The node the event is about.
    #[must_use]
    pub fn node(&self) -> &NodeId {
        match self {
            Self::Up(id) | Self::Suspect(id) | Self::Down(id) => id,
        }
    }
}

/// A member's SWIM identity: who it is, where its bus is, and which life of it this is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwimId {
    pub node: NodeId,
    pub bus: SocketAddr,
    /// Higher wins: a restart or a rejoin after being declared down takes a higher one.
    pub generation: u64,
}

impl Identity for SwimId {
    type Addr = NodeId;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> NodeId {
        self.node.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // Same generation and another address means two processes claim one id; comparing the
        // address too keeps every member's choice the same.
        (self.generation, self.bus) > (adversary.generation, adversary.bus)
    }
}

/// The SWIM periods derived from the node timeout; see the module docs for the arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub node_timeout: Duration,
    pub probe_period: Duration,
    pub probe_rtt: Duration,
    pub suspect_to_down: Duration,
    pub gossip_every: Duration,
    pub announce_every: Duration,
}

/// Members asked to ping a probed member that did not answer directly.
const INDIRECT_PROBES: usize = 3;
/// Members each periodic gossip goes to.
const GOSSIP_FANOUT: usize = 3;
/// Times each update is piggybacked: memberlist's `4·log10(n + 1)` for the 64 members a
/// cluster may have is 7.3; one more for lossy links.
const MAX_TRANSMISSIONS: u8 = 8;
/// Fits a UDP datagram in a 1500-byte MTU without fragmenting.
const MAX_PACKET: usize = 1400;
/// How long a down identity is remembered, so that late datagrams from it are recognised as
/// stale. Memory is bounded by node ids anyway (one entry per id).
const REMOVE_DOWN_AFTER: Duration = Duration::from_secs(3600);

/// Below this the probe cycle rounds to nothing.
pub const MIN_NODE_TIMEOUT: Duration = Duration::from_millis(20);

impl Timing {
    /// # Panics
    /// If `node_timeout` is under [`MIN_NODE_TIMEOUT`].
    #[must_use]
    pub fn from_node_timeout(node_timeout: Duration) -> Self {
        assert!(
            node_timeout >= MIN_NODE_TIMEOUT,
            "node timeout {node_timeout:?} is too short for SWIM"
        );
        let probe_period = node_timeout / 10;
        Self {
            node_timeout,
            probe_period,
            probe_rtt: probe_period / 3,
            suspect_to_down: node_timeout / 4,
            gossip_every: node_timeout / 20,
            announce_every: node_timeout,
        }
    }

    /// Worst-case time from a member's death to its `Down` at every survivor, for a cluster
    /// of `nodes` members when that is deterministic (see the module docs).
    #[must_use]
    pub fn worst_case_detection(&self, nodes: u32) -> Duration {
        let others = nodes.saturating_sub(1).max(1);
        self.probe_period * (2 * others - 1)
            + self.probe_period
            + self.suspect_to_down
            + self.gossip_every
    }

    /// foca's configuration for these periods.
    #[must_use]
    pub fn foca_config(&self) -> foca::Config {
        let nonzero = |n| NonZeroUsize::new(n).expect("constant is not zero");
        foca::Config {
            probe_period: self.probe_period,
            probe_rtt: self.probe_rtt,
            num_indirect_probes: nonzero(INDIRECT_PROBES),
            max_transmissions: NonZeroU8::new(MAX_TRANSMISSIONS).expect("constant is not zero"),
            suspect_to_down_after: self.suspect_to_down,
            remove_down_after: Some(REMOVE_DOWN_AFTER),
            max_packet_size: nonzero(MAX_PACKET),
            // A member declared down hears it and renews itself, instead of talking to peers
            // that ignore it until someone restarts it.
            notify_down_members: true,
            // Discovery of members the topology does not list yet (the core announces to the
            // listed ones itself, see `SwimCore::announce_missing`).
            periodic_announce: Some(foca::PeriodicParams {
                frequency: self.announce_every * 15,
                num_members: nonzero(1),
            }),
            // The core's own re-announce covers listed members that are down, and keeps going
            // when foca is idle (a node cut off from everyone), which foca's timers do not.
            periodic_announce_to_down_members: None,
            periodic_gossip: Some(foca::PeriodicParams {
                frequency: self.gossip_every,
                num_members: nonzero(GOSSIP_FANOUT),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timing_detects_within_the_node_timeout_up_to_four_nodes() {
        let timing = Timing::from_node_timeout(DEFAULT_NODE_TIMEOUT);
        assert_eq!(timing.probe_period, Duration::from_millis(200));
        assert_eq!(timing.suspect_to_down, Duration::from_millis(500));
        assert_eq!(timing.gossip_every, Duration::from_millis(100));
        assert_eq!(timing.worst_case_detection(3), Duration::from_millis(1400));
        assert_eq!(timing.worst_case_detection(4), Duration::from_millis(1800));
        assert!(timing.worst_case_detection(4) <= timing.node_timeout);
        assert!(timing.worst_case_detection(5) > timing.node_timeout);
        // foca wants the indirect cycle to fit in the period.
        assert!(timing.probe_rtt * 2 < timing.probe_period);
    }

    #[test]
    fn bus_members_lists_every_member_at_its_bus_port() {
        use crate::topology::{Change, Node, NodeState};
        let mut topology = Topology::default();
        for (id, host, bus_port) in [("a", "127.0.0.1", 17000), ("b", "::1", 17001)] {
            let node = Node {
                id: id.repeat(40),
                host: host.to_owned(),
                port: bus_port - 10000,
                bus_port,
                state: NodeState::Online,
            };
            topology.apply(&Change::Join(node)).unwrap();
        }
        topology.apply(&Change::Fail("b".repeat(40))).unwrap();
        assert_eq!(
            bus_members(&topology),
            vec![
                ("a".repeat(40), "127.0.0.1:17000".parse().unwrap()),
                ("b".repeat(40), "[::1]:17001".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn a_renewed_or_restarted_identity_wins_over_the_old_one() {
        let old = SwimId {
            node: "a".repeat(40),
            bus: "127.0.0.1:17000".parse().unwrap(),
            generation: 5,
        };
        let renewed = old.renew().unwrap();
        assert!(renewed.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&renewed));
        let moved = SwimId {
            bus: "127.0.0.1:17001".parse().unwrap(),
            generation: 9,
            ..old.clone()
        };
        assert_eq!(moved.addr(), old.addr());
        assert!(moved.win_addr_conflict(&old));
    }
}
