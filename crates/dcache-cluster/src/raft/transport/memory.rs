//! An in-process cluster bus for tests: every node's [`MemoryTransport`] comes from one
//! [`MemoryNetwork`], which can lose, delay and partition messages. Its randomness comes from a
//! seed, so a failing run can be replayed (given the same scheduling, which tokio's paused,
//! single-threaded test runtime provides).
//!
//! Each message goes through JSON on the way in and out, as on TCP, so a type that would not
//! cross the real bus fails here too.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{BoxFuture, Handler, Rpc, RpcReply, Transport, TransportError};

/// The network shared by the nodes of one test.
#[derive(Clone)]
pub struct MemoryNetwork {
    inner: Arc<Mutex<Net>>,
}

struct Net {
    nodes: HashMap<String, Arc<dyn Handler>>,
    /// Nodes cut off from everyone else.
    isolated: BTreeSet<String>,
    /// Chance, in percent, that a request (or separately, its reply) is lost.
    loss_percent: u64,
    /// Chance, in percent, that a reply is lost after its request was handled.
    reply_loss_percent: u64,
    /// Each delivery takes a uniform time in this range.
    delay: (Duration, Duration),
    rng: u64,
}

impl Net {
    /// xorshift64*: small and seedable.
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn lose(&mut self) -> bool {
        self.next() % 100 < self.loss_percent
    }

    fn delay(&mut self) -> Duration {
        let (low, high) = self.delay;
        let span = (high.saturating_sub(low)).as_micros() as u64;
        low + Duration::from_micros(if span == 0 { 0 } else { self.next() % span })
    }

    fn cut(&self, from: &str, to: &str) -> bool {
        self.isolated.contains(from) || self.isolated.contains(to)
    }
}

impl MemoryNetwork {
    /// A network that delivers every message at once; `seed` drives loss and delay.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Net {
                nodes: HashMap::new(),
                isolated: BTreeSet::new(),
                loss_percent: 0,
                reply_loss_percent: 0,
                delay: (Duration::ZERO, Duration::ZERO),
                // xorshift must not start at zero.
                rng: seed | 1,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Net> {
        self.inner.lock().expect("network lock")
    }

    /// A transport for one node.
    #[must_use]
    pub fn transport(&self) -> Arc<MemoryTransport> {
        Arc::new(MemoryTransport {
            net: self.clone(),
            me: Mutex::new(None),
        })
    }

    /// Loses each request, and each reply, with this chance (in percent).
    pub fn set_loss(&self, percent: u64) {
        self.lock().loss_percent = percent.min(100);
    }

    /// Loses each reply with this chance (in percent), its request having been handled: the
    /// caller cannot tell whether what it asked for was done.
    pub fn set_reply_loss(&self, percent: u64) {
        self.lock().reply_loss_percent = percent.min(100);
    }

    /// Delays each delivery by a uniform time in `low..high`.
    pub fn set_delay(&self, low: Duration, high: Duration) {
        self.lock().delay = (low, high.max(low));
    }

    /// Cuts the node at bus address `addr` off from every other node.
    pub fn isolate(&self, addr: &str) {
        self.lock().isolated.insert(addr.to_owned());
    }

    /// Reconnects every isolated node.
    pub fn heal(&self) {
        self.lock().isolated.clear();
    }
}

/// One node's end of a [`MemoryNetwork`].
pub struct MemoryTransport {
    net: MemoryNetwork,
    /// The address this node listens at (messages from it are cut when it is isolated).
    me: Mutex<Option<String>>,
}

impl MemoryTransport {
    fn me(&self) -> String {
        self.me.lock().expect("lock").clone().unwrap_or_default()
    }

    async fn deliver(&self, to: &str, rpc: Rpc) -> Result<RpcReply, TransportError> {
        let unreachable = |why: &str| Err(TransportError::Unreachable(to.to_owned(), why.into()));
        let lost = |why: &str| Err(TransportError::Lost(to.to_owned(), why.into()));
        let me = self.me();
        let (handler, delay, lose_request, lose_reply) = {
            let mut net = self.net.lock();
            if net.cut(&me, to) {
                return unreachable("partitioned");
            }
            let Some(handler) = net.nodes.get(to).cloned() else {
                return unreachable("no such node");
            };
            let delay = net.delay();
            let lose_request = net.lose();
            // Drawn only when set, so that a seed replays as it did before reply loss existed.
            let lose_reply = net.lose()
                || (net.reply_loss_percent > 0 && net.next() % 100 < net.reply_loss_percent);
            (handler, delay, lose_request, lose_reply)
        };
        tokio::time::sleep(delay).await;
        if lose_request {
            return unreachable("request lost");
        }
        let rpc: Rpc = round_trip(&rpc).map_err(|e| TransportError::Lost(to.into(), e))?;
        let reply = handler.handle(rpc).await;
        if lose_reply || self.net.lock().cut(&me, to) {
            return lost("reply lost");
        }
        round_trip(&reply).map_err(|e| TransportError::Lost(to.into(), e))
    }
}

/// `value` after a trip through JSON, as on the wire.
fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> Result<T, String> {
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

impl Transport for MemoryTransport {
    fn listen<'a>(
        &'a self,
        host: &'a str,
        port: u16,
        handler: Arc<dyn Handler>,
    ) -> BoxFuture<'a, io::Result<u16>> {
        Box::pin(async move {
            let addr = super::super::types::bus_node(host, port).addr;
            let mut net = self.net.lock();
            if net.nodes.contains_key(&addr) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{addr} is taken"),
                ));
            }
            net.nodes.insert(addr.clone(), handler);
            *self.me.lock().expect("lock") = Some(addr);
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
            tokio::time::timeout(timeout, self.deliver(to, rpc))
                .await
                .unwrap_or_else(|_| Err(TransportError::Lost(to.to_owned(), "timed out".into())))
        })
    }

    fn close(&self) {
        if let Some(addr) = self.me.lock().expect("lock").take() {
            self.net.lock().nodes.remove(&addr);
        }
    }
}
