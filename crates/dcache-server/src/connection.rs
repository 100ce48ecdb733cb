//! One client connection: read what arrived, answer every complete request in it, write.
//!
//! The connection never stops reading while its replies wait to be written: a client may send a
//! whole pipeline before it reads anything (Redis allows it, and a client that writes 4 MB of
//! requests before reading would otherwise wait forever on a node waiting for it). Unsent replies
//! are bounded instead, by `client-output-buffer-limit`: past the hard limit, or past the soft
//! limit for longer than its seconds, the client is disconnected with a log line, as Redis does.
//!
//! When the node stops, the connection answers what the client had sent: it goes on reading and
//! writing until every reply is written and nothing more has arrived for [`LINGER`] (the server
//! bounds the whole drain). Breaking at once would reset requests already in the kernel's buffer,
//! which tokio learns of only when its driver next runs.
//!
//! ```text
//!   select (biased) ── kill ──► close;  stop ──► answer what arrived, then close
//!        ├── write what is pending (when there is some)
//!        └── read into `input` ──► parse every complete request ──► execute ──► `output`
//! ```
//!
//! Writing comes before reading in the select, so that a plain request/response client costs the
//! same system calls as a loop that writes after every batch: one read, one write.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use dcache_protocol::{ReplyWriter, RequestParser, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::command::{self, Ctx};
use crate::config::OutputBufferLimits;
use crate::state::{ClientInfo, Shared};
use crate::stats::LocalStats;

/// A batch stops executing requests once this much output waits, and goes back to writing: a
/// pipeline of large values is answered as the client reads it rather than all at once.
const EXECUTE_UNTIL: usize = 1 << 20;
/// Buffers that grew past this for one large request are given back afterwards.
const SHRINK_ABOVE: usize = 1 << 20;
const READ_CHUNK: usize = 16 * 1024;
/// After the node stops, a connection with no replies left to write closes once nothing has
/// arrived for this long: ample for requests already sent to be seen, short beside the drain.
const LINGER: std::time::Duration = std::time::Duration::from_millis(100);

/// A quorum read asking the other copies (`crate::replicate::quorum_read`).
type QuorumReadFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), &'static str>> + Send>>;

/// Per-connection state that commands may change.
#[derive(Debug)]
pub struct ConnState {
    pub info: Arc<ClientInfo>,
    pub resp3: bool,
    pub authenticated: bool,
    /// Set by QUIT: close once the reply is written.
    pub quit: bool,
    /// `proto-max-bulk-len`, refreshed when the configuration changes.
    pub max_bulk_len: usize,
    /// Counts for the batch in hand.
    pub stats: LocalStats,
    /// The cluster view this connection routes by, and the generation it was taken at.
    pub cluster_view: Option<(u64, Arc<crate::cluster::View>)>,
    /// READONLY: reads of a slot this node holds a copy of are served here.
    pub readonly: bool,
    /// Replies written but held back until their write's copies acknowledge it, in order.
    pub holds: std::collections::VecDeque<Hold>,
    /// Set by a command whose reply must wait for this ack; dispatch turns it into a [`Hold`].
    pub hold: Option<crate::replicate::Ack>,
    /// Set by dispatch for a read that asks the other copies first: the connection runs it,
    /// then the same request again (nothing after it runs meanwhile).
    pub defer: Option<crate::replicate::QuorumRead>,
    /// The outcome of the quorum read of the request about to run again.
    pub quorum: Option<Result<(), &'static str>>,
    /// Where this connection's writes are on each peer's stream: what `WAIT` waits for.
    pub marks: Vec<(String, u64)>,
    /// Set by a blocking command that found nothing: the connection keeps the request and runs
    /// it again when a key is ready (nothing after it runs meanwhile).
    pub block: Option<crate::blocking::Block>,
    /// Set while the request runs again after a wake-up ([`Ctx::woken`]).
    pub woken: bool,
    /// CLIENT TRACKING as this connection needs it per command ([`crate::tracking`]).
    pub tracking: crate::tracking::ConnTracking,
    /// MULTI's queue and the WATCHed keys (`crate::command::Txn`).
    pub txn: crate::command::Txn,
    /// Whether a request asked for, or holds, the exclusive gate ([`Ctx::exclusive`]).
    pub exclusive: crate::exclusive::Turn,
    /// Set while a batch runs without a share of the gate because a script has held it past
    /// `busy-reply-threshold`: its requests are answered `-BUSY` (`crate::scripting`).
    pub busy: bool,
}

/// A reply in the output that may not be sent before `ack` completes: the bytes
/// `start..end` of the output buffer. If the ack fails, they are replaced by its error.
#[derive(Debug)]
pub struct Hold {
    pub start: usize,
    pub end: usize,
    pub ack: crate::replicate::Ack,
}

impl ConnState {
    /// The cluster view to route by, renewed when the topology changed.
    pub fn view(&mut self, cluster: &crate::cluster::Cluster) -> Arc<crate::cluster::View> {
        let generation = cluster.generation();
        match &self.cluster_view {
            Some((g, view)) if *g == generation => Arc::clone(view),
            _ => {
                let view = cluster.view();
                self.cluster_view = Some((generation, Arc::clone(&view)));
                view
            }
        }
    }
}

/// Replies produced but not yet taken by the socket.
struct Output {
    buf: Vec<u8>,
    /// How much of `buf` is already written.
    sent: usize,
    /// When the pending bytes first went over the soft limit, if they still are.
    over_soft_since: Option<Instant>,
}

impl Output {
    fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Bytes that may be written now: up to the first held reply.
    fn writable(&self, holds: &std::collections::VecDeque<Hold>) -> usize {
        holds.front().map_or(self.buf.len(), |h| h.start) - self.sent
    }

    /// Releases the held replies whose acks completed, from the front; a failed one has its
    /// reply replaced by the error.
    fn release(&mut self, holds: &mut std::collections::VecDeque<Hold>) {
        while let Some(result) = holds.front().and_then(|h| h.ack.result()) {
            let hold = holds.pop_front().expect("front");
            let line = match (result, hold.ack.int()) {
                (Err(msg), _) => Some(format!("-{msg}\r\n")),
                (Ok(()), Some(n)) => Some(format!(":{n}\r\n")),
                (Ok(()), None) => None,
            };
            if let Some(line) = line {
                let delta = line.len() as isize - (hold.end - hold.start) as isize;
                self.buf.splice(hold.start..hold.end, line.into_bytes());
                for later in holds.iter_mut() {
                    later.start = (later.start as isize + delta) as usize;
                    later.end = (later.end as isize + delta) as usize;
                }
            }
        }
    }

    fn advance(&mut self, n: usize) {
        self.sent += n;
        if self.sent == self.buf.len() {
            self.buf.clear();
            self.sent = 0;
            if self.buf.capacity() > SHRINK_ABOVE {
                self.buf = Vec::with_capacity(READ_CHUNK);
            }
        }
    }

    /// Whether the client must go because its unsent replies and pushes broke its limit; says
    /// why in the log when it must.
    fn must_close(&mut self, limits: &OutputBufferLimits, info: &ClientInfo) -> bool {
        let Some(which) = self.over_limit(limits, info) else {
            return false;
        };
        tracing::warn!(
            client = info.id,
            addr = %info.addr,
            "closing client over the {which} client-output-buffer-limit ({} bytes of replies and pushes unread; limit {limits})",
            self.pending()
        );
        true
    }

    /// Why the client must go, if its unsent replies broke the limit.
    fn over_limit(
        &mut self,
        limits: &OutputBufferLimits,
        info: &ClientInfo,
    ) -> Option<&'static str> {
        let limit = limits.for_client(info.subscriptions.active());
        let pending = self.pending();
        if limit.hard != 0 && pending > limit.hard {
            return Some("hard");
        }
        if limit.soft != 0 && pending > limit.soft {
            let since = *self.over_soft_since.get_or_insert_with(Instant::now);
            if since.elapsed().as_secs() >= limit.soft_seconds {
                return Some("soft");
            }
        } else {
            self.over_soft_since = None;
        }
        None
    }
}

/// Serves one client until it leaves, breaks the protocol, is killed, or the node shuts down.
pub(crate) async fn serve<S>(
    shared: Arc<Shared>,
    socket: S,
    info: Arc<ClientInfo>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut reader, mut writer) = tokio::io::split(socket);
    let mut state = ConnState {
        info: Arc::clone(&info),
        resp3: false,
        authenticated: shared.config().requirepass.is_empty(),
        quit: false,
        max_bulk_len: shared.config().proto_max_bulk_len.0,
        stats: LocalStats::default(),
        cluster_view: None,
        readonly: false,
        holds: std::collections::VecDeque::new(),
        hold: None,
        defer: None,
        quorum: None,
        marks: Vec::new(),
        block: None,
        woken: false,
        tracking: crate::tracking::ConnTracking::default(),
        txn: crate::command::Txn::default(),
        exclusive: crate::exclusive::Turn::Shared,
        busy: false,
    };
    let mut parser = RequestParser::new(shared.limits());
    parser.set_unauthenticated(!state.authenticated);
    let mut epoch = shared.config_epoch();
    let mut query_limit = shared.config().client_query_buffer_limit.0;
    let mut output_limit = shared.config().client_output_buffer_limit;
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = Output {
        buf: Vec::with_capacity(READ_CHUNK),
        sent: 0,
        over_soft_since: None,
    };
    // Set when the client must go once its pending replies are written (QUIT, a protocol error).
    let mut closing = false;
    // Set when the node stops: answer what arrived, then go.
    let mut stopping = false;
    // Set when the client has closed its side: what it sent is still run and answered.
    let mut eof = false;
    // A quorum read in progress: the request stays unparsed until it is done.
    let mut deferred: Option<QuorumReadFuture> = None;
    // A blocking command waiting for a key: the request stays unparsed until it is woken.
    let mut blocked: Option<Blocked> = None;
    // The exclusive gate, taken for the one request that asked for it (`crate::exclusive`).
    let mut exclusive: Option<crate::exclusive::Exclusive<'_>> = None;
    // Created once: both register their waker on the first poll and stay registered.
    let stop = shutdown.changed();
    let killed = info.kill.notified();
    // Re-armed each time it completes; a push made meanwhile leaves a permit, so none is missed.
    let mail = info.mailbox.notified();
    tokio::pin!(stop, killed, mail);
    // On one worker thread (`--threads 1`) every connection takes turns on it, and a yield
    // before sending lets the turn's replies go out together. With several workers a yielded
    // task may be taken by another worker instead, which cost more than it saved (GET at
    // pipeline 1 up to 12 % more CPU, LPUSH at pipeline 16 no better; docs/PERFORMANCE.md).
    let gather_replies = matches!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::CurrentThread
    );
    info.mailbox.set_limit(output_limit.normal.hard);

    loop {
        if input.capacity() - input.len() < READ_CHUNK / 4 {
            input.reserve(READ_CHUNK);
        }
        output.release(&mut state.holds);
        // Pushes (pub/sub messages, invalidations) go out between replies: every reply in
        // `output` is whole here. A closing client is sent nothing more.
        if !closing && info.mailbox.take_into(&mut output.buf) > 0 {
            info.output_buffer.store(output.pending(), Relaxed);
            // A subscriber that only reads runs no batch, where the limits are re-read.
            if shared.config_epoch() != epoch {
                output_limit = shared.read_config(|c| c.client_output_buffer_limit);
                info.mailbox
                    .set_limit(output_limit.for_client(info.subscriptions.active()).hard);
            }
            if output.must_close(&output_limit, &info) {
                break;
            }
        }
        let pending = output.pending() > 0;
        // A closing client is sent what it is owed and read no further.
        if !pending && (closing || (eof && input.is_empty())) {
            break;
        }
        // A blocked client that hangs up is gone at once, as in Redis: it takes nothing.
        if eof && blocked.is_some() && !state.woken {
            break;
        }
        let writable = output.writable(&state.holds) > 0;
        let held = state.holds.front().map(|h| h.ack.clone());
        let waiting = blocked
            .as_ref()
            .filter(|_| !state.woken)
            .map(|b| (Arc::clone(&b.waiter), b.deadline, b.epoch));
        let n = tokio::select! {
            biased;
            _ = &mut stop, if !stopping => {
                stopping = true;
                0
            }
            () = &mut killed => break,
            // Holding the gate: run the request that asked for it now, not after some I/O.
            () = std::future::ready(()), if exclusive.is_some() => 0,
            () = &mut mail => {
                mail.set(info.mailbox.notified());
                0
            }
            wrote = writer.write(&output.buf[output.sent..output.sent + output.writable(&state.holds)]), if writable => {
                match wrote {
                    Ok(0) | Err(_) => return finish(&shared, &info),
                    Ok(n) => {
                        output.advance(n);
                        shared.stats.net(info.id, 0, n);
                        // A client reading a long reply is not idle, and what its buffers hold
                        // is what memory calibration leaves out.
                        info.last_active_ms.store(shared.clock.now_ms(), Relaxed);
                        info.output_buffer.store(output.pending(), Relaxed);
                        info.buffer_capacity
                            .store(input.capacity() + output.buf.capacity(), Relaxed);
                    }
                }
                // More requests may be waiting for room in the output.
                0
            }
            read = reader.read_buf(&mut input), if !closing && !eof => match read {
                Err(_) => break,
                // Redis runs every request it has read before acting on the close.
                Ok(0) => {
                    eof = true;
                    0
                }
                Ok(n) => n,
            },
            // The other copies answered a quorum read: run the request again.
            result = async { deferred.as_mut().expect("guarded").await }, if deferred.is_some() => {
                deferred = None;
                state.quorum = Some(result);
                0
            }
            // A held reply's write was acknowledged (or failed): `release` sends it on.
            _ = async { held.as_ref().expect("guarded").wait().await }, if held.is_some() => 0,
            // A key of the blocked request is ready, or CLIENT UNBLOCK: run it again, or answer.
            () = async { waiting.as_ref().expect("guarded").0.woken().await }, if waiting.is_some() => {
                let b = blocked.take().expect("blocked");
                match b.waiter.unblocked() {
                    None => {
                        state.woken = true;
                        blocked = Some(b);
                    }
                    Some(how) => b.answer(how, &mut output.buf, &mut input, state.resp3),
                }
                0
            }
            () = async {
                match waiting.as_ref().and_then(|w| w.1) {
                    Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                    None => std::future::pending().await,
                }
            }, if waiting.is_some() => {
                let b = blocked.take().expect("blocked");
                b.answer(crate::blocking::Unblocked::Timeout, &mut output.buf, &mut input, state.resp3);
                0
            }
            // A new topology: the request runs again, and is redirected if its slot moved.
            () = async {
                match (&shared.cluster, waiting.as_ref().and_then(|w| w.2)) {
                    (Some(cluster), Some(epoch)) => cluster.wait_for_epoch(epoch + 1).await,
                    _ => std::future::pending().await,
                }
            }, if waiting.is_some() => {
                state.woken = true;
                0
            }
            // An async block, so that no timer is made unless it is polled.
            () = async { tokio::time::sleep(LINGER).await }, if stopping && !pending => break,
        };
        if n == 0 && exclusive.is_none() && (input.is_empty() || output.pending() >= EXECUTE_UNTIL)
        {
            continue;
        }
        // Every batch runs on a share of the gate, unless it holds the gate whole, or a script
        // has held the gate too long: then it runs on none, answering -BUSY.
        let share = match exclusive {
            Some(_) => None,
            None => match shared.gate.try_share() {
                Some(share) => Some(share),
                None => crate::scripting::share_or_busy(&shared).await,
            },
        };
        state.busy = exclusive.is_none() && share.is_none();
        if shared.config_epoch() != epoch {
            epoch = shared.config_epoch();
            parser.set_limits(shared.limits());
            let config = shared.config();
            query_limit = config.client_query_buffer_limit.0;
            output_limit = config.client_output_buffer_limit;
            state.max_bulk_len = config.proto_max_bulk_len.0;
        }
        let now = shared.clock.now_ms();
        if n > 0 {
            info.last_active_ms.store(now, Relaxed);
        }
        let mut clock = Instant::now();

        let mut offset = 0;
        let mut wants_gate = false;
        // Whether a request ran holding the gate in this batch: the gate then covers the
        // requests right after it that need it too (a pipeline of scripts), and no others.
        let mut ran_alone = false;
        while offset < input.len()
            && !closing
            && (output.pending() < EXECUTE_UNTIL || (exclusive.is_some() && !ran_alone))
            && deferred.is_none()
            && (blocked.is_none() || state.woken)
        {
            match parser.parse(&input[offset..]) {
                Ok(Status::Complete(used)) => {
                    let args = parser.args(&input[offset..]);
                    if !args.is_empty() {
                        let alone = command::runs_alone(&shared, &state, args.get(0));
                        if exclusive.is_none() && alone && !state.busy {
                            // Not run yet: it runs holding the gate.
                            wants_gate = true;
                            break;
                        }
                        if exclusive.is_some() && ran_alone && !alone {
                            // Left for the next batch, on a share.
                            break;
                        }
                        let resp3 = state.resp3;
                        let mut ctx = Ctx {
                            shared: &shared,
                            conn: &mut state,
                            out: ReplyWriter::new(&mut output.buf, resp3),
                            now,
                        };
                        command::execute(&mut ctx, args, &mut clock);
                        if state.exclusive == crate::exclusive::Turn::Wanted {
                            // Not consumed: it runs again holding the gate.
                            wants_gate = true;
                            break;
                        }
                        if let Some(block) = state.block.take() {
                            // Not consumed: it runs again when a key is ready.
                            state.woken = false;
                            match &blocked {
                                Some(b) => shared.blocking.rearm(&b.waiter),
                                None => {
                                    blocked = Some(Blocked {
                                        waiter: shared.blocking.block(info.id, block.keys),
                                        deadline: block.deadline,
                                        epoch: state
                                            .cluster_view
                                            .as_ref()
                                            .map(|(_, v)| v.topology.epoch),
                                        used,
                                        shared: Arc::clone(&shared),
                                    });
                                }
                            }
                            break;
                        }
                        if state.woken {
                            // Served (or failed): it leaves the queues.
                            state.woken = false;
                            blocked = None;
                        }
                        closing = state.quit;
                        parser.set_unauthenticated(!state.authenticated);
                        if let Some(read) = state.defer.take() {
                            // Not consumed: it runs again when the copies have answered.
                            deferred = Some(Box::pin(crate::replicate::quorum_read(
                                Arc::clone(&shared),
                                read,
                            )));
                            break;
                        }
                    }
                    offset += used;
                    if exclusive.is_some() {
                        ran_alone = true;
                    }
                }
                Ok(Status::Incomplete) => break,
                Err(e) => {
                    ReplyWriter::new(&mut output.buf, false).error(&format!("ERR {e}"));
                    tracing::debug!(client = info.id, addr = %info.addr, "protocol error: {e}");
                    closing = true;
                }
            }
        }
        input.advance(offset);
        drop(share);
        if exclusive.take().is_some() {
            state.exclusive = crate::exclusive::Turn::Shared;
        }
        if wants_gate {
            // The share is given back first: the gate waits for every share, this one too.
            exclusive = Some(shared.gate.exclusive().await);
            state.exclusive = crate::exclusive::Turn::Held;
        }
        // After the close nothing more arrives: what is left unparsed can never complete.
        if eof && output.pending() < EXECUTE_UNTIL {
            closing = true;
        }
        shared.stats.flush(info.id, &mut state.stats);
        shared.stats.net(info.id, n, 0);
        if input.len() + state.txn.queued_bytes() > query_limit {
            tracing::warn!(
                client = info.id,
                addr = %info.addr,
                "closing client that reached max query buffer length ({} bytes)",
                input.len()
            );
            break;
        }
        // A subscriber's class is `pubsub`, and its pushes are checked against it on the way in.
        info.mailbox
            .set_limit(output_limit.for_client(info.subscriptions.active()).hard);
        if output.must_close(&output_limit, &info) {
            break;
        }
        if input.capacity() > SHRINK_ABOVE && input.len() < READ_CHUNK {
            let mut fresh = BytesMut::with_capacity(READ_CHUNK);
            fresh.extend_from_slice(&input);
            input = fresh;
        }
        info.query_buffer.store(input.len(), Relaxed);
        info.output_buffer.store(output.pending(), Relaxed);
        info.buffer_capacity
            .store(input.capacity() + output.buf.capacity(), Relaxed);
        if gather_replies && exclusive.is_none() && output.writable(&state.holds) > 0 {
            // The other connections that have requests ready run theirs before this reply is
            // sent, so that the replies of one round go out together (as Redis writes them all
            // before it sleeps): a client then wakes once for many of them, where a reply sent
            // alone to a client that has drained the others wakes it on its core each time.
            tokio::task::yield_now().await;
        }
    }
    drop(exclusive);
    // Gone from the client list before the peer can see the close.
    finish(&shared, &info);
    let mut socket = reader.unsplit(writer);
    let _ = socket.shutdown().await;
}

/// A request blocked on keys (`crate::blocking`): it stays at the front of the input. Dropping
/// this takes the client out of the queues, whatever ended the wait.
struct Blocked {
    waiter: Arc<crate::blocking::Waiter>,
    deadline: Option<Instant>,
    /// The topology the request was routed by: a newer one runs it again.
    epoch: Option<u64>,
    /// The request's length in the input.
    used: usize,
    shared: Arc<Shared>,
}

impl Blocked {
    /// Ends the wait without running the request again: a null array for a timeout, as Redis
    /// answers every list and sorted-set blocking command, or `-UNBLOCKED`.
    fn answer(
        self,
        how: crate::blocking::Unblocked,
        out: &mut Vec<u8>,
        input: &mut BytesMut,
        resp3: bool,
    ) {
        let mut reply = ReplyWriter::new(out, resp3);
        match how {
            crate::blocking::Unblocked::Timeout => reply.null_array(),
            crate::blocking::Unblocked::Error => {
                reply.error("UNBLOCKED client unblocked via CLIENT UNBLOCK");
            }
        }
        input.advance(self.used);
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        self.shared.blocking.unblock(&self.waiter);
    }
}

fn finish(shared: &Shared, info: &ClientInfo) {
    shared.unregister_client(info.id);
}
