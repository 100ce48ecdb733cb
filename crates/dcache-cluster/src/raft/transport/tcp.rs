//! The cluster bus over TCP: each request and reply is one frame, a 4-byte big-endian length
//! and that many bytes of JSON. A connection carries one request at a time; the caller keeps
//! idle connections per peer and reuses them, so concurrent requests to one peer (replication
//! and a forwarded proposal, say) do not wait for each other.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::{BoxFuture, Handler, Rpc, RpcReply, Transport, TransportError};

/// A frame longer than this is refused: a topology of 64 members is a few megabytes at most.
const MAX_FRAME: usize = 64 << 20;
/// Idle connections kept per peer.
const POOL: usize = 4;

/// TCP on the bus port.
#[derive(Default)]
pub struct TcpTransport {
    idle: Mutex<HashMap<String, Vec<TcpStream>>>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl TcpTransport {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn take_idle(&self, to: &str) -> Option<TcpStream> {
        self.idle.lock().expect("pool lock").get_mut(to)?.pop()
    }

    fn put_idle(&self, to: &str, stream: TcpStream) {
        let mut idle = self.idle.lock().expect("pool lock");
        let streams = idle.entry(to.to_owned()).or_default();
        if streams.len() < POOL {
            streams.push(stream);
        }
    }

    async fn exchange(&self, to: &str, request: &[u8]) -> Result<RpcReply, TransportError> {
        let lost = |e: io::Error| TransportError::Lost(to.to_owned(), e.to_string());
        // A pooled connection may have been closed by the peer (it restarted, say): try it
        // once, then a fresh one. Requests are idempotent enough for this (Raft RPCs are, and
        // a repeated proposal is applied again; see `Cluster::propose`).
        if let Some(mut stream) = self.take_idle(to)
            && let Ok(reply) = round_trip(&mut stream, request).await
        {
            self.put_idle(to, stream);
            return decode(&reply).map_err(lost);
        }
        let mut stream = TcpStream::connect(to)
            .await
            .map_err(|e| TransportError::Unreachable(to.to_owned(), e.to_string()))?;
        // Frames are small and each waits for its reply: do not let Nagle hold them back.
        stream.set_nodelay(true).map_err(lost)?;
        let reply = round_trip(&mut stream, request).await.map_err(lost)?;
        self.put_idle(to, stream);
        decode(&reply).map_err(lost)
    }
}

async fn round_trip(stream: &mut TcpStream, request: &[u8]) -> io::Result<Vec<u8>> {
    write_frame(stream, request).await?;
    read_frame(stream)
        .await?
        .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
}

async fn write_frame(stream: &mut TcpStream, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).await
}

/// The next frame, or `None` at a clean end of stream.
async fn read_frame(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes"),
        ));
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    Ok(Some(body))
}

fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io::Error::other)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    serde_json::from_slice(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Answers the requests on one connection, in order, until the peer closes it or sends
/// something that is not a frame of ours.
async fn serve_connection(mut stream: TcpStream, handler: Arc<dyn Handler>) {
    let _ = stream.set_nodelay(true);
    loop {
        let request = match read_frame(&mut stream).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "cluster bus: dropping connection");
                return;
            }
        };
        let rpc: Rpc = match decode(&request) {
            Ok(rpc) => rpc,
            Err(e) => {
                tracing::warn!(error = %e, "cluster bus: not a request, dropping connection");
                return;
            }
        };
        let reply = handler.handle(rpc).await;
        let Ok(bytes) = encode(&reply) else { return };
        if write_frame(&mut stream, &bytes).await.is_err() {
            return;
        }
    }
}

impl Transport for TcpTransport {
    fn listen<'a>(
        &'a self,
        host: &'a str,
        port: u16,
        handler: Arc<dyn Handler>,
    ) -> BoxFuture<'a, io::Result<u16>> {
        Box::pin(async move {
            let listener = TcpListener::bind((host, port)).await?;
            let port = listener.local_addr()?.port();
            let task = tokio::spawn(async move {
                // Connections live in the set: aborting the listener task ends them all.
                let mut connections = JoinSet::new();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => {
                                connections.spawn(serve_connection(stream, handler.clone()));
                            }
                            Err(e) => {
                                // Out of descriptors, say: wait a little rather than spin.
                                tracing::warn!(error = %e, "cluster bus: accept failed");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        },
                        Some(_) = connections.join_next() => {}
                    }
                }
            });
            if let Some(old) = self.listener.lock().expect("listener lock").replace(task) {
                old.abort();
            }
            Ok(port)
        })
    }

    fn call<'a>(
        &'a self,
        to: &'a str,
        rpc: Rpc,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<RpcReply, TransportError>> {
        Box::pin(async move {
            let request = encode(&rpc)
                .map_err(|e| TransportError::Unreachable(to.to_owned(), e.to_string()))?;
            tokio::time::timeout(timeout, self.exchange(to, &request))
                .await
                .unwrap_or_else(|_| {
                    Err(TransportError::Lost(
                        to.to_owned(),
                        format!("timed out after {timeout:?}"),
                    ))
                })
        })
    }

    fn close(&self) {
        if let Some(task) = self.listener.lock().expect("listener lock").take() {
            task.abort();
        }
        self.idle.lock().expect("pool lock").clear();
    }
}
