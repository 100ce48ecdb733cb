//! One node's connections: pipelined, many requests in flight on each, replies matched in order.
//!
//! A node starts with one connection and opens more, up to a small pool, when every open one has
//! many requests in flight; each request goes to the least busy. A new connection asks for RESP3
//! with `HELLO 3` (`HELLO 3 AUTH user password` when the client has a password) and stays on
//! RESP2 when the node refuses, authenticating then with `AUTH`.
//!
//! One task owns each socket. It takes requests from a channel, appends them to its write buffer
//! and to its queue of requests in flight, writes whatever the socket accepts, and parses replies
//! as they arrive, completing requests in order. Reading and writing never wait on each other, so
//! a long pipeline cannot deadlock against a node that is busy answering it. The task also keeps
//! the one timer of the connection: the deadline of the oldest request in flight; a request that
//! passes it fails with [`Error::Timeout`] and its reply, when it comes, is dropped.
//!
//! When a socket fails, every request in flight on it fails with [`Error::Unavailable`] and the
//! node's connections are dropped. The node is then down: its requests fail fast while a
//! background probe reconnects after a back-off that grows while the node keeps failing (50 ms
//! doubling to 5 s), so that the first request after it comes back finds a connection open.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use dcache_protocol::Frame;
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
    /// A near-cache miss: the reply fills the cache for this key, with this token.
    fill: Option<(Box<[u8]>, u64)>,
}

/// Credentials every new connection presents.
#[derive(Debug)]
pub(crate) struct Auth {
    /// `None`: the default user (`AUTH password`, `HELLO 3 AUTH default password`).
    pub username: Option<String>,
    pub password: Password,
}

/// A password that `{:?}` does not print, so that debug output of a client cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// The most connections to one node.
    pub max_connections: usize,
    /// Ask for RESP3 (`HELLO 3`) on every new connection.
    pub resp3: bool,
    pub auth: Option<Arc<Auth>>,
    /// The near cache: every connection speaks RESP3 with `CLIENT TRACKING ON`.
    pub near: Option<Arc<crate::near_cache::NearCache>>,
}

/// One open connection: the way to its task, and how many requests it has in flight.
#[derive(Clone)]
struct Lane {
    sender: mpsc::Sender<Request>,
    load: Arc<AtomicUsize>,
}

struct State {
    lanes: Vec<Lane>,
    /// Bumped whenever the connections are dropped, so that a failure reported by a connection
    /// of an older generation does not drop newer ones.
    generation: u64,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
    /// A probe task is waiting to reconnect.
    probing: bool,
}

pub(crate) struct Connection {
    addr: String,
    settings: Settings,
    state: Mutex<State>,
    /// Serialises connecting so that a burst of requests opens one socket, not many.
    connecting: tokio::sync::Mutex<()>,
    /// The protocol the last connection agreed on (2 or 3).
    protocol: AtomicUsize,
}

/// A connection with this many requests in flight is busy: when every open one is, the next
/// request opens another (up to `max_connections`). One connection carries 64 in flight at
/// twice the `redis` crate's rate (docs/PERFORMANCE.md), so a pool only helps beyond that.
const BUSY: usize = 128;

const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Connection {
    pub(crate) fn new(addr: String, settings: Settings) -> Arc<Self> {
        Arc::new(Self {
            addr,
            settings,
            state: Mutex::new(State {
                lanes: Vec::new(),
                generation: 0,
                failures: 0,
                retry_at: None,
                last_error: String::new(),
                probing: false,
            }),
            connecting: tokio::sync::Mutex::new(()),
            protocol: AtomicUsize::new(2),
        })
    }

    /// Whether the node is in back-off after failures (requests fail fast until it ends).
    pub(crate) fn is_down(&self) -> bool {
        let state = self.state.lock().expect("not poisoned");
        state.lanes.is_empty() && state.retry_at.is_some_and(|t| Instant::now() < t)
    }

    /// Open connections.
    pub(crate) fn open_connections(&self) -> usize {
        self.state.lock().expect("not poisoned").lanes.len()
    }

    /// The protocol version the newest connection speaks (2 or 3).
    pub(crate) fn protocol(&self) -> usize {
        self.protocol.load(Ordering::Relaxed)
    }

    fn unavailable(&self, reason: impl Into<String>) -> Error {
        Error::Unavailable {
            node: self.addr.clone(),
            reason: reason.into(),
        }
    }

    /// A connection of `generation` failed: drop the node's connections, back off, and probe
    /// the node in the background until it answers again.
    fn record_failure(self: &Arc<Self>, generation: u64, reason: &str) {
        let mut state = self.state.lock().expect("not poisoned");
        if generation != state.generation {
            return;
        }
        state.lanes.clear();
        state.generation += 1;
        state.failures += 1;
        let backoff = Duration::from_millis(50 << state.failures.min(7)).min(MAX_BACKOFF);
        state.retry_at = Some(Instant::now() + backoff);
        state.last_error = reason.to_owned();
        if !state.probing {
            state.probing = true;
            tokio::spawn(probe(Arc::downgrade(self)));
        }
    }

    /// The least busy open connection, or a new one when there is none or all are busy.
    async fn lane(self: &Arc<Self>) -> Result<Lane, Error> {
        let least_busy = {
            let state = self.state.lock().expect("not poisoned");
            let best = state
                .lanes
                .iter()
                .min_by_key(|l| l.load.load(Ordering::Relaxed))
                .cloned();
            match best {
                Some(lane)
                    if lane.load.load(Ordering::Relaxed) < BUSY
                        || state.lanes.len() >= self.settings.max_connections =>
                {
                    return Ok(lane);
                }
                None if state.retry_at.is_some_and(|t| Instant::now() < t) => {
                    return Err(
                        self.unavailable(format!("marked down after: {}", state.last_error))
                    );
                }
                other => other,
            }
        };
        // Only one task connects at a time; while it does, the others use what is open.
        let _guard = match (&least_busy, self.connecting.try_lock()) {
            (_, Ok(guard)) => guard,
            (Some(lane), Err(_)) => return Ok(lane.clone()),
            (None, Err(_)) => self.connecting.lock().await,
        };
        if least_busy.is_none()
            && let Some(lane) = self.state.lock().expect("not poisoned").lanes.first()
        {
            return Ok(lane.clone());
        }
        let generation = self.state.lock().expect("not poisoned").generation;
        match self.open().await {
            Ok((stream, protocol, tracked)) => {
                self.protocol.store(protocol, Ordering::Relaxed);
                let (tx, rx) = mpsc::channel::<Request>(1024);
                let lane = Lane {
                    sender: tx,
                    load: Arc::new(AtomicUsize::new(0)),
                };
                // Only a tracked connection fills the near cache; whatever it filled goes when
                // it closes, for whatever reason: the node forgets what it tracked for it.
                let near = self
                    .settings
                    .near
                    .as_ref()
                    .filter(|_| tracked)
                    .map(|cache| (Arc::clone(cache), cache.lane_id()));
                let conn = Arc::clone(self);
                tokio::spawn(async move {
                    run(conn, stream, rx, generation, near.as_ref()).await;
                    if let Some((cache, lane)) = near {
                        cache.flush_lane(lane);
                    }
                });
                let mut state = self.state.lock().expect("not poisoned");
                state.lanes.push(lane.clone());
                state.failures = 0;
                state.retry_at = None;
                Ok(lane)
            }
            // A failure to add a connection beside working ones is not the node failing.
            Err(_) if least_busy.is_some() => Ok(least_busy.expect("checked")),
            Err(e) => {
                let reason = match &e {
                    Error::Unavailable { reason, .. } => reason.clone(),
                    other => other.to_string(),
                };
                self.record_failure(generation, &reason);
                Err(e)
            }
        }
    }

    /// Connects (within the connect timeout), and asks for RESP3 when so configured (a request
    /// like any other, within the request timeout): the stream, the protocol agreed, and
    /// whether tracking is on (for the near cache).
    async fn open(&self) -> Result<(TcpStream, usize, bool), Error> {
        let connect = tokio::time::timeout(
            self.settings.connect_timeout,
            TcpStream::connect(&self.addr),
        );
        let mut stream = match connect.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(self.unavailable(e.to_string())),
            Err(_) => return Err(self.unavailable("connect timed out")),
        };
        let _ = stream.set_nodelay(true);
        if !self.settings.resp3 && self.settings.auth.is_none() {
            return Ok((stream, 2, false));
        }
        let near = self.settings.near.is_some();
        let handshake = async {
            let protocol = handshake(
                &mut stream,
                self.settings.resp3,
                self.settings.auth.as_deref(),
            )
            .await?;
            // Invalidations come as pushes on this connection: RESP3 only. A node that refuses
            // tracking is still served, without the near cache.
            let tracked = near
                && protocol == 3
                && roundtrip(&mut stream, &["CLIENT", "TRACKING", "ON"]).await?
                    == Frame::Simple("OK".into());
            Ok::<_, Refused>((protocol, tracked))
        };
        match tokio::time::timeout(self.settings.request_timeout, handshake).await {
            Ok(Ok((protocol, tracked))) => Ok((stream, protocol, tracked)),
            Ok(Err(Refused(reason))) => Err(self.unavailable(reason)),
            Err(_) => Err(Error::Timeout {
                node: self.addr.clone(),
            }),
        }
    }

    /// Sends already-encoded commands and waits for their `replies` replies.
    pub(crate) async fn send(
        self: &Arc<Self>,
        bytes: Vec<u8>,
        replies: usize,
    ) -> Result<Vec<Frame>, Error> {
        self.send_request(bytes, replies, None).await
    }

    /// Sends one GET that fills the near cache with its reply, if the connection is tracked and
    /// the key's marker (`token`) is still in place when the reply arrives.
    pub(crate) async fn send_fill(
        self: &Arc<Self>,
        bytes: Vec<u8>,
        key: &[u8],
        token: u64,
    ) -> Result<Frame, Error> {
        let mut frames = self
            .send_request(bytes, 1, Some((key.into(), token)))
            .await?;
        Ok(frames.pop().expect("one reply"))
    }

    async fn send_request(
        self: &Arc<Self>,
        bytes: Vec<u8>,
        replies: usize,
        fill: Option<(Box<[u8]>, u64)>,
    ) -> Result<Vec<Frame>, Error> {
        let lane = self.lane().await?;
        let (reply, wait) = oneshot::channel();
        lane.load.fetch_add(1, Ordering::Relaxed);
        let sent = lane
            .sender
            .send(Request {
                bytes,
                replies,
                reply,
                fill,
            })
            .await;
        // The connection task answers every request: with replies, a timeout, or a failure.
        let result = match sent {
            Ok(()) => wait
                .await
                .unwrap_or_else(|_| Err(self.unavailable("connection closed"))),
            Err(_) => Err(self.unavailable("connection closed")),
        };
        lane.load.fetch_sub(1, Ordering::Relaxed);
        result
    }
}

/// A request in flight: how many replies it waits for, those received so far, where to send
/// them (taken when the request times out), and its deadline.
struct InFlight {
    replies: usize,
    frames: Vec<Frame>,
    reply: Option<Reply>,
    deadline: Instant,
    fill: Option<(Box<[u8]>, u64)>,
}

/// Stop taking new requests while this much is waiting to be written.
const WRITE_HIGH_WATER: usize = 1 << 20;

/// Reconnects to a down node when its back-off ends, again after each failure, until it answers or
/// the client is dropped.
async fn probe(conn: std::sync::Weak<Connection>) {
    loop {
        let retry_at = {
            let Some(c) = conn.upgrade() else { return };
            let mut state = c.state.lock().expect("not poisoned");
            match state.retry_at {
                Some(at) if state.lanes.is_empty() => at,
                // Connected again (by this probe or by a request), or nothing to wait for.
                _ => {
                    state.probing = false;
                    return;
                }
            }
        };
        tokio::time::sleep_until(retry_at).await;
        let Some(c) = conn.upgrade() else { return };
        // On failure `lane` backs off again, and the next turn waits for that.
        let _ = c.lane().await;
    }
}

/// Why a handshake failed: the node's error (`WRONGPASS …`) or what went wrong on the socket.
struct Refused(String);

/// The start of a fresh connection: `HELLO 3` (with `AUTH` when there is a password) when
/// `resp3`, then, if the node does not speak RESP3, `AUTH` on its own. The protocol agreed: 3 when
/// the node accepted `HELLO 3`, else 2.
async fn handshake(
    stream: &mut TcpStream,
    resp3: bool,
    auth: Option<&Auth>,
) -> Result<usize, Refused> {
    let user = auth.map(|a| a.username.as_deref().unwrap_or("default"));
    if resp3 {
        let mut hello = vec!["HELLO", "3"];
        if let (Some(auth), Some(user)) = (auth, user) {
            hello.extend(["AUTH", user, auth.password.0.as_str()]);
        }
        match roundtrip(stream, &hello).await? {
            Frame::Map(_) => return Ok(3),
            // No RESP3 (a node without HELLO, or an older protocol): RESP2, and AUTH below.
            Frame::Error(e) if e.starts_with("NOPROTO") || e.starts_with("ERR unknown command") => {
            }
            // Without a password, any refusal (NOAUTH: the node wants one) leaves RESP2, and
            // the node's NOAUTH answers to each command say what is missing.
            Frame::Error(_) if auth.is_none() => return Ok(2),
            Frame::Error(e) => return Err(Refused(e)),
            other => return Err(Refused(format!("unexpected reply to HELLO: {other:?}"))),
        }
    }
    if let Some(auth) = auth {
        let command = match &auth.username {
            Some(user) => vec!["AUTH", user.as_str(), auth.password.0.as_str()],
            None => vec!["AUTH", auth.password.0.as_str()],
        };
        match roundtrip(stream, &command).await? {
            Frame::Simple(ok) if ok == "OK" => {}
            Frame::Error(e) => return Err(Refused(e)),
            other => return Err(Refused(format!("unexpected reply to AUTH: {other:?}"))),
        }
    }
    Ok(2)
}

/// Sends one command on a connection that has nothing else in flight and reads its one reply.
async fn roundtrip(stream: &mut TcpStream, command: &[&str]) -> Result<Frame, Refused> {
    let mut request = Vec::new();
    dcache_protocol::reply::encode_command(command.iter(), &mut request);
    stream
        .write_all(&request)
        .await
        .map_err(|e| Refused(e.to_string()))?;
    let mut input = Vec::with_capacity(512);
    loop {
        if stream
            .read_buf(&mut input)
            .await
            .map_err(|e| Refused(e.to_string()))?
            == 0
        {
            return Err(Refused(format!(
                "connection closed by the node during {}",
                command[0]
            )));
        }
        match Frame::parse(&input).map_err(|e| Refused(format!("protocol error: {e}")))? {
            None => {}
            Some((frame, used)) if used == input.len() => return Ok(frame),
            Some((other, _)) => {
                return Err(Refused(format!(
                    "more than one reply to {}: {other:?}",
                    command[0]
                )));
            }
        }
    }
}

async fn run(
    conn: Arc<Connection>,
    stream: TcpStream,
    mut requests: mpsc::Receiver<Request>,
    generation: u64,
    near: Option<&(Arc<crate::near_cache::NearCache>, u64)>,
) {
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut output: Vec<u8> = Vec::new();
    let mut written = 0;
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut open = true;
    // One timer for the connection, moved only when the oldest waiting request changes.
    let timer = tokio::time::sleep(conn.settings.request_timeout);
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
                                    deadline: now + conn.settings.request_timeout,
                                    fill: match (near, request.fill) {
                                        (None, Some((key, token))) => {
                                            // An untracked connection never fills.
                                            if let Some(cache) = &conn.settings.near {
                                                cache.abandon(&key, token);
                                            }
                                            None
                                        }
                                        (_, fill) => fill,
                                    },
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
                        if let Err(e) = complete(&mut input, &mut in_flight, near) {
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
    conn.record_failure(generation, &reason);
    if let Some((cache, _)) = near {
        for request in &in_flight {
            if let Some((key, token)) = &request.fill {
                cache.abandon(key, *token);
            }
        }
    }
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

/// Parses every complete reply in `input` and hands each request its replies, in order. Pushes
/// (invalidations) go to the near cache, in the same order, so that an invalidation the node
/// sent after a reply is applied after that reply filled the cache.
fn complete(
    input: &mut BytesMut,
    in_flight: &mut VecDeque<InFlight>,
    near: Option<&(Arc<crate::near_cache::NearCache>, u64)>,
) -> Result<(), String> {
    loop {
        let Some((frame, used)) =
            Frame::parse(input).map_err(|e| format!("protocol error: {e}"))?
        else {
            return Ok(());
        };
        input.advance(used);
        if let Frame::Push(items) = &frame {
            if let Some((cache, lane)) = near {
                cache.on_push(*lane, items);
            }
            continue;
        }
        let Some(request) = in_flight.front_mut() else {
            return Err("a reply arrived that nothing asked for".into());
        };
        request.frames.push(frame);
        if request.frames.len() == request.replies {
            let done = in_flight.pop_front().expect("checked");
            if let (Some((cache, lane)), Some((key, token))) = (near, &done.fill) {
                match done.frames.first() {
                    Some(Frame::Bulk(value)) => cache.fill(key, *token, *lane, Some(value.clone())),
                    Some(Frame::Null) => cache.fill(key, *token, *lane, None),
                    _ => cache.abandon(key, *token),
                }
            }
            if let Some(reply) = done.reply {
                let _ = reply.send(Ok(done.frames));
            }
        }
    }
}
