//! How nodes reach each other on the cluster bus: a [`Transport`] carries one request ([`Rpc`])
//! to a node's bus address and brings back its reply ([`RpcReply`]); a [`Handler`] answers the
//! requests a node receives.
//!
//! ```text
//!   node A                                   node B
//!   openraft ─► RaftNetwork ─► Transport ═══► listener ─► Handler ─► openraft / propose
//!   propose (follower) ─────► Transport ═══►                       (forwarded to the leader)
//! ```
//!
//! Two implementations: [`TcpTransport`] (length-prefixed JSON frames on the bus port, one
//! listener task, connections pooled and reused) and [`MemoryNetwork`] (in-process, for tests:
//! drops, delays and partitions messages, driven by a seed).

mod memory;
mod tcp;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::InstallSnapshotError;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

pub use memory::{MemoryNetwork, MemoryTransport};
pub use tcp::TcpTransport;

use super::types::{RaftError, RaftId, TypeConfig};
use crate::topology::{Change, ChangeError, Topology};

/// A boxed future, so that transports can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A request on the cluster bus.
#[derive(Debug, Serialize, Deserialize)]
pub enum Rpc {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<RaftId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// Commit `change` (the receiver forwards it to its leader, at most `hops` more times).
    Propose {
        change: Change,
        hops: u8,
    },
}

/// The reply to an [`Rpc`] of the same name.
#[derive(Debug, Serialize, Deserialize)]
pub enum RpcReply {
    Append(Result<AppendEntriesResponse<RaftId>, RaftError>),
    Vote(Result<VoteResponse<RaftId>, RaftError>),
    Snapshot(Result<InstallSnapshotResponse<RaftId>, RaftError<InstallSnapshotError>>),
    /// The topology right after the change was applied, or why it was not.
    Propose(Result<Topology, Refused>),
}

/// Why a forwarded proposal was not committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refused {
    /// Committed, and refused by [`Topology::apply`].
    #[error(transparent)]
    Change(ChangeError),
    /// Not committed (no leader, a timeout, a shutdown): the proposal may be retried.
    #[error("{0}")]
    Unavailable(String),
}

/// Why a request got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The request was not delivered (no connection, no such node, a cut link).
    #[error("{0} is unreachable: {1}")]
    Unreachable(String, String),
    /// The request may have been delivered, but the reply did not come back in time.
    #[error("no reply from {0}: {1}")]
    Lost(String, String),
}

/// Answers the requests a node receives.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, rpc: Rpc) -> BoxFuture<'_, RpcReply>;
}

/// Carries requests between nodes. One per node.
pub trait Transport: Send + Sync + 'static {
    /// Starts delivering requests sent to `host:port` to `handler`; returns the port actually
    /// served (the one bound, when `port` is 0).
    ///
    /// # Errors
    /// The address cannot be bound.
    fn listen<'a>(
        &'a self,
        host: &'a str,
        port: u16,
        handler: Arc<dyn Handler>,
    ) -> BoxFuture<'a, io::Result<u16>>;

    /// Sends `rpc` to the node at bus address `to` and waits at most `timeout` for the reply.
    fn call<'a>(
        &'a self,
        to: &'a str,
        rpc: Rpc,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<RpcReply, TransportError>>;

    /// Stops delivering requests to this node (what was in flight may still finish).
    fn close(&self);
}
