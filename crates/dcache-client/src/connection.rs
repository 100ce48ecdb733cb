//! One node's connection: pipelined, many requests in flight, replies matched in order.
//!
//! One task owns the socket. It takes requests from a channel, appends them to its write buffer
//! and to its queue of requests in flight, writes whatever the socket accepts, and parses replies
//! as they arrive, completing requests in order. Reading and writing never wait on each other, so
//! a long pipeline cannot deadlock against a node that is busy answering it. The task also keeps
//! the one timer of the connection: the deadline of the oldest request in flight; a request that
//! passes it fails with [`Error::Timeout`] and its reply, when it comes, is dropped.
//!
//! When the socket fails, every request in flight fails with [`Error::Unavailable`], the
//! connection is dropped, and the next request reconnects, after a back-off that grows while the
//! node keeps failing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use dcache_protocol::Frame;
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
        let (tx, rx) = mpsc::channel::<Request>(1024);
        tokio::spawn(run(Arc::clone(self), stream, rx));
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
        // The connection task answers every request: with replies, a timeout, or a failure.
        wait.await
            .unwrap_or_else(|_| Err(self.unavailable("connection closed")))
    }
}

/// A request in flight: how many replies it waits for, those received so far, where to send
/// them (taken when the request times out), and its deadline.
struct InFlight {
    replies: usize,
    frames: Vec<Frame>,
    reply: Option<Reply>,
    deadline: Instant,
}

/// Stop taking new requests while this much is waiting to be written.
const WRITE_HIGH_WATER: usize = 1 << 20;

async fn run(conn: Arc<Connection>, stream: TcpStream, mut requests: mpsc::Receiver<Request>) {
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut output: Vec<u8> = Vec::new();
    let mut written = 0;
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut open = true;
    // One timer for the connection, moved only when the oldest waiting request changes.
    let timer = tokio::time::sleep(conn.timeouts.request);
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    let reason = loop {
        // Requests time out in the order they were sent; skip those that already have.
        let deadline = in_flight
            .iter()
            .find(|r| r.reply.is_some())
            .map(|r| r.deadline);
        if let Some(at) = deadline
            && armed != Some(at)
        {
            timer.as_mut().reset(at);
            armed = Some(at);
        }
        // Write what we can now; wait for the socket only when it is full.
        if written < output.len() {
            match stream.try_write(&output[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => break e.to_string(),
            }
            if written == output.len() {
                output.clear();
                written = 0;
            }
        }
        let pending_write = written < output.len();
        tokio::select! {
            biased;
            request = requests.recv(), if open && output.len() - written < WRITE_HIGH_WATER => {
                match request {
                    Some(first) => {
                        let now = Instant::now();
                        let mut next = Some(first);
                        let mut yielded = false;
                        loop {
                            while let Some(request) = next {
                                output.extend_from_slice(&request.bytes);
                                in_flight.push_back(InFlight {
                                    replies: request.replies,
                                    frames: Vec::with_capacity(request.replies),
                                    reply: Some(request.reply),
                                    deadline: now + conn.timeouts.request,
                                });
                                next = requests.try_recv().ok();
                            }
                            // Let the tasks that are ready to send do so, so that their
                            // requests leave in this write rather than one write each.
                            if yielded {
                                break;
                            }
                            tokio::task::yield_now().await;
                            yielded = true;
                            next = requests.try_recv().ok();
                        }
                    }
                    // Every handle is gone: finish what is in flight, then stop.
                    None => open = false,
                }
            }
            ready = stream.writable(), if pending_write => {
                if let Err(e) = ready {
                    break e.to_string();
                }
                match stream.try_write(&output[written..]) {
                    Ok(n) => {
                        written += n;
                        if written == output.len() {
                            output.clear();
                            written = 0;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => break e.to_string(),
                }
            }
            ready = stream.readable() => {
                if let Err(e) = ready {
                    break e.to_string();
                }
                match stream.try_read_buf(&mut input) {
                    Ok(0) => break "connection closed by the node".to_owned(),
                    Ok(_) => {
                        if let Err(e) = complete(&mut input, &mut in_flight) {
                            break e;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => break e.to_string(),
                }
            }
            () = &mut timer, if deadline.is_some() => {
                armed = None;
                let now = Instant::now();
                // Their replies will still come, in order; they are dropped on arrival.
                for request in in_flight.iter_mut().take_while(|r| r.deadline <= now) {
                    if let Some(reply) = request.reply.take() {
                        let _ = reply.send(Err(Error::Timeout { node: conn.addr.clone() }));
                    }
                }
            }
        }
        if !open && in_flight.is_empty() && written == output.len() {
            return;
        }
    };
    conn.record_failure(&reason);
    for request in in_flight {
        if let Some(reply) = request.reply {
            let _ = reply.send(Err(conn.unavailable(reason.clone())));
        }
    }
    requests.close();
    while let Ok(request) = requests.try_recv() {
        let _ = request.reply.send(Err(conn.unavailable(reason.clone())));
    }
}

/// Parses every complete reply in `input` and hands each request its replies, in order.
fn complete(input: &mut BytesMut, in_flight: &mut VecDeque<InFlight>) -> Result<(), String> {
    loop {
        let Some((frame, used)) =
            Frame::parse(input).map_err(|e| format!("protocol error: {e}"))?
        else {
            return Ok(());
        };
        input.advance(used);
        let Some(request) = in_flight.front_mut() else {
            return Err("a reply arrived that nothing asked for".into());
        };
        request.frames.push(frame);
        if request.frames.len() == request.replies {
            let done = in_flight.pop_front().expect("checked");
            if let Some(reply) = done.reply {
                let _ = reply.send(Ok(done.frames));
            }
        }
    }
}
