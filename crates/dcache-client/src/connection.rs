//! One node's connection: pipelined, many requests in flight, replies matched in order.
//!
//! A writer task takes requests from a channel, tells the reader how many replies to expect and
//! where to send them, and writes every request waiting in the channel with one syscall. The
//! reader parses replies as they arrive and completes requests in order. When either side fails,
//! every request in flight fails with [`Error::Unavailable`], the connection is dropped, and the
//! next request reconnects, after a back-off that grows while the node keeps failing.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use dcache_protocol::Frame;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::Error;

type Reply = oneshot::Sender<Result<Vec<Frame>, Error>>;

struct Request {
    bytes: Vec<u8>,
    replies: usize,
    reply: Reply,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
}

struct State {
    sender: Option<mpsc::Sender<Request>>,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

pub(crate) struct Connection {
    addr: String,
    timeouts: Timeouts,
    state: Mutex<State>,
    /// Serialises reconnection so that a burst of requests opens one socket, not many.
    connecting: tokio::sync::Mutex<()>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Connection {
    pub(crate) fn new(addr: String, timeouts: Timeouts) -> Arc<Self> {
        Arc::new(Self {
            addr,
            timeouts,
            state: Mutex::new(State {
                sender: None,
                failures: 0,
                retry_at: None,
                last_error: String::new(),
            }),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether the node is in back-off after failures (requests fail fast until it ends).
    pub(crate) fn is_down(&self) -> bool {
        let state = self.state.lock().expect("not poisoned");
        state.sender.is_none() && state.retry_at.is_some_and(|t| Instant::now() < t)
    }

    fn unavailable(&self, reason: impl Into<String>) -> Error {
        Error::Unavailable {
            node: self.addr.clone(),
            reason: reason.into(),
        }
    }

    fn record_failure(&self, reason: &str) {
        let mut state = self.state.lock().expect("not poisoned");
        state.sender = None;
        state.failures += 1;
        let backoff = Duration::from_millis(50 << state.failures.min(7)).min(MAX_BACKOFF);
        state.retry_at = Some(Instant::now() + backoff);
        state.last_error = reason.to_owned();
    }

    async fn sender(self: &Arc<Self>) -> Result<mpsc::Sender<Request>, Error> {
        {
            let state = self.state.lock().expect("not poisoned");
            if let Some(sender) = &state.sender {
                return Ok(sender.clone());
            }
            if state.retry_at.is_some_and(|t| Instant::now() < t) {
                return Err(self.unavailable(format!("marked down after: {}", state.last_error)));
            }
        }
        let _guard = self.connecting.lock().await;
        if let Some(sender) = &self.state.lock().expect("not poisoned").sender {
            return Ok(sender.clone());
        }
        let connect = tokio::time::timeout(self.timeouts.connect, TcpStream::connect(&self.addr));
        let stream = match connect.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                self.record_failure(&e.to_string());
                return Err(self.unavailable(e.to_string()));
            }
            Err(_) => {
                self.record_failure("connect timed out");
                return Err(self.unavailable("connect timed out"));
            }
        };
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::channel::<Request>(1024);
        let (pending_tx, pending_rx) = mpsc::unbounded_channel::<(usize, Reply)>();
        tokio::spawn(write_loop(Arc::clone(self), writer, rx, pending_tx));
        tokio::spawn(read_loop(Arc::clone(self), reader, pending_rx));
        let mut state = self.state.lock().expect("not poisoned");
        state.sender = Some(tx.clone());
        state.failures = 0;
        state.retry_at = None;
        Ok(tx)
    }

    /// Sends already-encoded commands and waits for their `replies` replies.
    pub(crate) async fn send(
        self: &Arc<Self>,
        bytes: Vec<u8>,
        replies: usize,
    ) -> Result<Vec<Frame>, Error> {
        let sender = self.sender().await?;
        let (reply, wait) = oneshot::channel();
        sender
            .send(Request {
                bytes,
                replies,
                reply,
            })
            .await
            .map_err(|_| self.unavailable("connection closed"))?;
        match tokio::time::timeout(self.timeouts.request, wait).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.unavailable("connection closed")),
            Err(_) => Err(Error::Timeout {
                node: self.addr.clone(),
            }),
        }
    }
}

async fn write_loop(
    conn: Arc<Connection>,
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    mut requests: mpsc::Receiver<Request>,
    pending: mpsc::UnboundedSender<(usize, Reply)>,
) {
    let mut buf = Vec::new();
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = requests.try_recv() {
            batch.push(more);
            if batch.len() >= 256 {
                break;
            }
        }
        buf.clear();
        for request in batch {
            buf.extend_from_slice(&request.bytes);
            if pending.send((request.replies, request.reply)).is_err() {
                return;
            }
        }
        if let Err(e) = writer.write_all(&buf).await {
            conn.record_failure(&e.to_string());
            return;
        }
    }
}

async fn read_loop(
    conn: Arc<Connection>,
    mut reader: tokio::net::tcp::OwnedReadHalf,
    mut pending: mpsc::UnboundedReceiver<(usize, Reply)>,
) {
    let mut input = BytesMut::with_capacity(16 * 1024);
    let reason = 'outer: loop {
        let Some((count, reply)) = pending.recv().await else {
            break "connection dropped".to_owned();
        };
        let mut frames = Vec::with_capacity(count);
        while frames.len() < count {
            match Frame::parse(&input) {
                Ok(Some((frame, used))) => {
                    input.advance(used);
                    frames.push(frame);
                }
                Ok(None) => match reader.read_buf(&mut input).await {
                    Ok(0) => {
                        let _ = reply.send(Err(conn.unavailable("connection closed by the node")));
                        break 'outer "connection closed by the node".to_owned();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = reply.send(Err(conn.unavailable(e.to_string())));
                        break 'outer e.to_string();
                    }
                },
                Err(e) => {
                    let _ = reply.send(Err(conn.unavailable(format!("protocol error: {e}"))));
                    break 'outer format!("protocol error: {e}");
                }
            }
        }
        // The caller may have given up (timeout); its reply is dropped, order is kept.
        let _ = reply.send(Ok(frames));
    };
    conn.record_failure(&reason);
    pending.close();
    while let Some((_, reply)) = pending.recv().await {
        let _ = reply.send(Err(conn.unavailable(reason.clone())));
    }
}
