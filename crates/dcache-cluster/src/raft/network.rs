//! openraft's network, over a [`Transport`]: each Raft RPC is one [`Rpc`] to the target's bus
//! address.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, network::Backoff};

use super::transport::{Rpc, RpcReply, Transport, TransportError};
use super::types::{RaftError, RaftId, TypeConfig};

/// Makes a connection per target; they all share the node's transport.
pub struct Network {
    pub transport: Arc<dyn Transport>,
    /// How long openraft waits before trying an unreachable node again.
    pub backoff: Duration,
}

pub struct Connection {
    transport: Arc<dyn Transport>,
    target: RaftId,
    addr: String,
    backoff: Duration,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: RaftId, node: &BasicNode) -> Connection {
        Connection {
            transport: self.transport.clone(),
            target,
            addr: node.addr.clone(),
            backoff: self.backoff,
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<RaftId, BasicNode, RaftError<E>>>;

impl Connection {
    async fn send(&self, rpc: Rpc, timeout: Duration) -> Result<RpcReply, TransportError> {
        self.transport.call(&self.addr, rpc, timeout).await
    }

    fn failed<E: std::error::Error>(&self, e: &TransportError) -> RPCError<RaftId, BasicNode, E> {
        match e {
            // openraft backs off before trying a node it could not reach.
            TransportError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(e)),
            TransportError::Lost(..) => RPCError::Network(NetworkError::new(e)),
        }
    }

    #[expect(
        clippy::result_large_err,
        reason = "openraft's RaftNetwork returns this error type by value"
    )]
    fn remote<T, E: std::error::Error>(
        &self,
        result: Result<T, E>,
    ) -> Result<T, RPCError<RaftId, BasicNode, E>> {
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    fn mismatch<E: std::error::Error>(&self, reply: &RpcReply) -> RPCError<RaftId, BasicNode, E> {
        let e = std::io::Error::other(format!("unexpected reply {reply:?}"));
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<RaftId>> {
        match self.send(Rpc::Append(rpc), option.hard_ttl()).await {
            Ok(RpcReply::Append(result)) => self.remote(result),
            Ok(other) => Err(self.mismatch(&other)),
            Err(e) => Err(self.failed(&e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<RaftId>, InstallSnapshotError> {
        match self.send(Rpc::Snapshot(rpc), option.hard_ttl()).await {
            Ok(RpcReply::Snapshot(result)) => self.remote(result),
            Ok(other) => Err(self.mismatch(&other)),
            Err(e) => Err(self.failed(&e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<RaftId>> {
        match self.send(Rpc::Vote(rpc), option.hard_ttl()).await {
            Ok(RpcReply::Vote(result)) => self.remote(result),
            Ok(other) => Err(self.mismatch(&other)),
            Err(e) => Err(self.failed(&e)),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.backoff))
    }
}
