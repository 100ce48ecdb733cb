//! The types openraft is instantiated with, and the mapping from our node ids to Raft's.

use std::io::Cursor;
use std::sync::Arc;

use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use crate::topology::{Change, ChangeError, Topology};

openraft::declare_raft_types!(
    /// Raft over topology changes: each log entry is one [`Change`], the state machine is the
    /// [`Topology`], and a member's Raft address is its cluster-bus address (`host:bus_port`).
    pub TypeConfig:
        D = Change,
        R = Applied,
);

/// Raft's id of a node (openraft wants a `Copy` id; ours is a 40-hex string).
pub type RaftId = u64;

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<RaftId>;
pub type Vote = openraft::Vote<RaftId>;
pub type StorageError = openraft::StorageError<RaftId>;
pub type StoredMembership = openraft::StoredMembership<RaftId, BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<RaftId, BasicNode>;
pub type Membership = openraft::Membership<RaftId, BasicNode>;
pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<RaftId, E>;

/// What applying one entry gave: the change's own result (a refused change is a result of the
/// entry, not a failure of the log) and the topology right after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    pub result: Result<(), ChangeError>,
    /// Only used on the node that applied it (a forwarded proposal sends the topology itself),
    /// so it is not serialised.
    #[serde(skip)]
    pub topology: Option<Arc<Topology>>,
}

/// Raft's id for `id`: a hash of the whole 40-hex id (FNV-1a, fixed so that every node and every
/// version computes the same). Ids are random, so a collision among at most 64 members is as
/// likely as a collision of two random 64-bit numbers among 64.
#[must_use]
pub fn raft_id(id: &str) -> RaftId {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A member's Raft address: its cluster-bus address (IPv6 literals in brackets).
#[must_use]
pub fn bus_node(host: &str, bus_port: u16) -> BasicNode {
    if host.contains(':') {
        BasicNode::new(format!("[{host}]:{bus_port}"))
    } else {
        BasicNode::new(format!("{host}:{bus_port}"))
    }
}
