//! One client connection: read what arrived, answer every complete request in it, write once.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use dcache_protocol::{ReplyWriter, RequestParser, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::command::{self, Ctx};
use crate::state::{ClientInfo, Shared};
use crate::stats::LocalStats;

/// Replies are flushed early once this much is waiting, so that a long pipeline of large values
/// does not pile up in memory.
const FLUSH_AT: usize = 1 << 20;
/// Buffers that grew past this for one large request are given back afterwards.
const SHRINK_ABOVE: usize = 1 << 20;
const READ_CHUNK: usize = 16 * 1024;

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
}

/// Serves one client until it leaves, breaks the protocol, is killed, or the node shuts down.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    mut socket: TcpStream,
    info: Arc<ClientInfo>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    let mut state = ConnState {
        info: Arc::clone(&info),
        resp3: false,
        authenticated: shared.config().requirepass.is_empty(),
        quit: false,
        max_bulk_len: shared.config().proto_max_bulk_len.0,
        stats: LocalStats::default(),
    };
    let mut parser = RequestParser::new(shared.limits());
    let mut epoch = shared.config_epoch();
    let mut query_limit = shared.config().client_query_buffer_limit.0;
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    // Created once: both register their waker on the first poll and stay registered.
    let stop = shutdown.changed();
    let killed = info.kill.notified();
    tokio::pin!(stop, killed);
    // Set when the node stops: this turn answers what had arrived, and is the last.
    let mut stopping = false;

    loop {
        if input.capacity() - input.len() < READ_CHUNK / 4 {
            input.reserve(READ_CHUNK);
        }
        let read = tokio::select! {
            biased;
            read = socket.read_buf(&mut input) => read,
            _ = &mut stop => {
                stopping = true;
                match read_arrived(&socket, &mut input, query_limit) {
                    0 => break,
                    n => Ok(n),
                }
            }
            () = &mut killed => break,
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shared.config_epoch() != epoch {
            epoch = shared.config_epoch();
            parser.set_limits(shared.limits());
            query_limit = shared.config().client_query_buffer_limit.0;
            state.max_bulk_len = shared.config().proto_max_bulk_len.0;
        }
        let now = shared.clock.now_ms();
        info.last_active_ms.store(now, Relaxed);
        let mut clock = Instant::now();

        let mut offset = 0;
        let mut close = false;
        let mut written = 0;
        while offset < input.len() && !close {
            match parser.parse(&input[offset..]) {
                Ok(Status::Complete(used)) => {
                    let args = parser.args(&input[offset..]);
                    if !args.is_empty() {
                        let resp3 = state.resp3;
                        let mut ctx = Ctx {
                            shared: &shared,
                            conn: &mut state,
                            out: ReplyWriter::new(&mut output, resp3),
                            now,
                        };
                        command::execute(&mut ctx, args, &mut clock);
                        close = state.quit;
                    }
                    offset += used;
                    if output.len() >= FLUSH_AT {
                        if socket.write_all(&output).await.is_err() {
                            return finish(&shared, &info);
                        }
                        written += output.len();
                        output.clear();
                    }
                }
                Ok(Status::Incomplete) => break,
                Err(e) => {
                    ReplyWriter::new(&mut output, false).error(&format!("ERR {e}"));
                    tracing::debug!(client = info.id, addr = %info.addr, "protocol error: {e}");
                    close = true;
                }
            }
        }
        input.advance(offset);
        shared.stats.flush(info.id, &mut state.stats);
        if input.len() > query_limit {
            tracing::warn!(
                client = info.id,
                addr = %info.addr,
                "closing client that reached max query buffer length ({} bytes)",
                input.len()
            );
            close = true;
        }
        info.query_buffer.store(input.len(), Relaxed);
        if !output.is_empty() {
            if socket.write_all(&output).await.is_err() {
                break;
            }
            written += output.len();
            output.clear();
        }
        shared.stats.net(info.id, n, written);
        if close || stopping {
            break;
        }
        if input.capacity() > SHRINK_ABOVE && input.len() < READ_CHUNK {
            let mut fresh = BytesMut::with_capacity(READ_CHUNK);
            fresh.extend_from_slice(&input);
            input = fresh;
        }
        if output.capacity() > SHRINK_ABOVE {
            output = Vec::with_capacity(READ_CHUNK);
        }
    }
    let _ = socket.shutdown().await;
    finish(&shared, &info);
}

/// Whatever the client had sent when the node began to stop, read straight from the kernel
/// without waiting: the bytes returned. tokio reads a socket only once its driver has seen it
/// ready, which may come after the stop (it always does on a single-threaded runtime), and
/// requests already sent must be answered, not reset. A duplicate of the descriptor shares the
/// socket (and its non-blocking mode); closing it closes nothing else.
fn read_arrived(socket: &TcpStream, input: &mut BytesMut, limit: usize) -> usize {
    use std::io::Read;
    use std::os::fd::AsFd;
    let Ok(fd) = socket.as_fd().try_clone_to_owned() else {
        return 0;
    };
    let mut socket = std::net::TcpStream::from(fd);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut total = 0;
    while input.len() <= limit {
        match socket.read(&mut chunk) {
            Ok(n) if n > 0 => {
                input.extend_from_slice(&chunk[..n]);
                total += n;
            }
            // Nothing more now (WouldBlock), the client's end, or a failure: done.
            _ => break,
        }
    }
    total
}

fn finish(shared: &Shared, info: &ClientInfo) {
    shared.unregister_client(info.id);
}
