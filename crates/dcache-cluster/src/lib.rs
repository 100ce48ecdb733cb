//! The cluster: who is in it, who serves which slot, and how slots move.
//!
//! ```text
//!   Change (join, leave, fail, moved, …) ──Raft log──► Topology::apply on every node, in order
//!                                                         │
//!   Topology { epoch, nodes, slots, target, settings } ◄──┘
//!        slots:    each slot's replica set now, primary first (redirects follow the primary)
//!        target:   where slots are moving (migration drives `slots` towards it, batch by batch)
//!        settings: replicas per slot and the replication strategy
//! ```
//!
//! [`Topology`] is a pure state machine: the same changes in the same order give the same
//! topology on every node, so the Raft log is all a node needs to agree with the others.

pub mod raft;
pub mod replication;
mod settings;
pub mod swim;
pub mod topology;

pub use raft::{Cluster, ClusterConfig, Error, random_node_id};
pub use settings::{MAX_REPLICAS, Settings, SettingsError, Strategy, UnknownStrategy};
pub use topology::{Change, ChangeError, Node, NodeId, NodeState, Topology};
