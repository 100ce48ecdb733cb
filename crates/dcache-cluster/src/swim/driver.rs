//! The tokio task around [`SwimCore`]: one UDP socket, a timer heap, the member list from the
//! topology, and the event channel.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Effects, MIN_NODE_TIMEOUT, MemberEvent, SwimCore, SwimId, Timer, Timing};
use crate::topology::NodeId;

/// Redis Cluster's default is 15 s; a cache wants its slots served again sooner.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// Events the consumer has not taken yet stay in the task, one per node, so this is only the
/// channel's share.
const EVENT_CHANNEL: usize = 64;

/// Who this node is and where its bus listens.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    pub id: NodeId,
    /// Bound for UDP and advertised to the others, so not a wildcard address. Port 0 picks a
    /// free port (tests), and the bound one is advertised.
    pub bus: SocketAddr,
    /// A node silent for this long is reported down (see the module docs for the arithmetic).
    pub node_timeout: Duration,
}

impl DetectorConfig {
    #[must_use]
    pub fn new(id: NodeId, bus: SocketAddr) -> Self {
        Self {
            id,
            bus,
            node_timeout: DEFAULT_NODE_TIMEOUT,
        }
    }

    #[must_use]
    pub fn node_timeout(mut self, node_timeout: Duration) -> Self {
        self.node_timeout = node_timeout;
        self
    }
}

/// A running failure detector. Dropping it stops the task without a word to the others (as a
/// crash would); [`Detector::shutdown`] leaves the cluster first.
pub struct Detector {
    bus: SocketAddr,
    members: watch::Sender<Vec<(NodeId, SocketAddr)>>,
    stop: mpsc::Sender<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Detector {
    /// Binds the bus address (UDP) and starts the task.
    ///
    /// # Errors
    /// If the socket cannot be bound; `InvalidInput` if the node timeout is under
    /// [`MIN_NODE_TIMEOUT`] or the bus address is a wildcard (the others could not reply).
    pub async fn start(
        config: DetectorConfig,
    ) -> std::io::Result<(Self, mpsc::Receiver<MemberEvent>)> {
        let invalid = |why: String| Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, why));
        if config.node_timeout < MIN_NODE_TIMEOUT {
            return invalid(format!(
                "node timeout {:?} is under {MIN_NODE_TIMEOUT:?}",
                config.node_timeout
            ));
        }
        if config.bus.ip().is_unspecified() {
            return invalid(format!(
                "bus address {} is a wildcard: the others reply to the address it advertises",
                config.bus
            ));
        }
        let timing = Timing::from_node_timeout(config.node_timeout);
        let socket = UdpSocket::bind(config.bus).await?;
        let bus = socket.local_addr()?;
        // A restarted node must beat its previous life: the wall clock does, across restarts.
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let seed = std::collections::hash_map::RandomState::new().hash_one((&config.id, bus));
        tracing::debug!(node = %config.id, %bus, generation, seed, "swim: starting");
        let me = SwimId {
            node: config.id,
            bus,
            generation,
        };
        let (events_tx, events_rx) = mpsc::channel(EVENT_CHANNEL);
        let (members, members_rx) = watch::channel(Vec::new());
        let (stop, stop_rx) = mpsc::channel(1);
        let task = Task {
            core: SwimCore::new(me, &timing, seed),
            timing,
            socket,
            timers: BinaryHeap::new(),
            next_seq: 0,
            pending: Backlog::default(),
            events: Some(events_tx),
        };
        let task = tokio::spawn(task.run(members_rx, stop_rx));
        Ok((
            Self {
                bus,
                members,
                stop,
                task,
            },
            events_rx,
        ))
    }

    /// The bus address bound (with the real port when the config asked for port 0).
    #[must_use]
    pub fn bus(&self) -> SocketAddr {
        self.bus
    }

    /// The members the topology lists (id + bus address), this node included or not. The
    /// detector announces itself to those it does not see alive, now and every node timeout,
    /// so that SWIM finds new members, restarted ones and the far side of a healed partition.
    /// List failed members too: that is how they are found again.
    pub fn set_members(&self, members: Vec<(NodeId, SocketAddr)>) {
        // Only the latest list matters, so a watch channel: no backlog however often it moves.
        self.members.send_replace(members);
    }

    /// Leaves the cluster (the others report this node down at once) and stops the task.
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.stop.send(done).await.is_ok() {
            let _ = wait.await;
        }
    }
}

impl Drop for Detector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Task {
    core: SwimCore,
    timing: Timing,
    socket: UdpSocket,
    /// Due time and arming order (foca tolerates timers late, not lost).
    timers: BinaryHeap<Reverse<Due>>,
    next_seq: u64,
    /// Events not yet in the channel, at most one per node (the latest).
    pending: Backlog,
    /// `None` once the receiver is gone: detection goes on, nobody listens.
    events: Option<mpsc::Sender<MemberEvent>>,
}

struct Due {
    at: Instant,
    seq: u64,
    timer: Timer,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl Task {
    async fn run(
        mut self,
        mut members: watch::Receiver<Vec<(NodeId, SocketAddr)>>,
        mut stop: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        let mut buf = vec![0; 64 * 1024];
        let mut announce = tokio::time::interval(self.timing.announce_every);
        announce.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let next_timer = self.timers.peek().map(|Reverse(due)| due.at);
            // An owned sender, so the permit it yields borrows nothing from `self`.
            let listening = self.events.clone().filter(|_| !self.pending.is_empty());
            let wants_room = listening.is_some();
            tokio::select! {
                done = stop.recv() => {
                    if let Some(done) = done {
                        let effects = self.core.leave();
                        self.apply(effects).await;
                        let _ = done.send(());
                    }
                    return;
                }
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, _from)) => {
                        let effects = self.core.handle_datagram(&buf[..len]);
                        self.apply(effects).await;
                    }
                    // Some platforms report here that an earlier datagram was refused by a
                    // closed port; the socket stays usable.
                    Err(error) => tracing::debug!(%error, "swim: receive failed"),
                },
                () = sleep_until(next_timer) => self.fire_due().await,
                _ = announce.tick() => {
                    let effects = self.core.announce_missing();
                    self.apply(effects).await;
                }
                changed = members.changed() => {
                    if changed.is_err() {
                        return; // the Detector is gone
                    }
                    let list = members.borrow_and_update().clone();
                    let effects = self.core.set_members(list);
                    self.apply(effects).await;
                }
                permit = reserve(listening), if wants_room => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.pending.pop() {
                            permit.send(event);
                        }
                    }
                    Err(_) => {
                        self.events = None;
                        self.pending.clear();
                    }
                },
            }
        }
    }

    /// Every timer due now, in foca's order for timers that come together (late ones after a
    /// stall): an indirect probe before the next probe, so a probe cycle completes.
    async fn fire_due(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        while self
            .timers
            .peek()
            .is_some_and(|Reverse(next)| next.at <= now)
        {
            let Reverse(next) = self.timers.pop().expect("peeked");
            due.push(next.timer);
        }
        due.sort(); // stable: same-kind timers keep their order
        for timer in due {
            let effects = self.core.handle_timer(timer);
            self.apply(effects).await;
        }
    }

    async fn apply(&mut self, effects: Effects) {
        let now = Instant::now();
        for (after, timer) in effects.timers {
            self.timers.push(Reverse(Due {
                at: now + after,
                seq: self.next_seq,
                timer,
            }));
            self.next_seq += 1;
        }
        for (to, datagram) in effects.datagrams {
            if let Err(error) = self.socket.send_to(&datagram, to).await {
                tracing::debug!(%to, %error, "swim: send failed");
            }
        }
        if self.events.is_some() {
            for event in effects.events {
                tracing::info!(?event, "swim");
                self.pending.push(event);
            }
        }
    }
}

/// Events waiting for room in the channel. The latest state per node is what matters, so a
/// new event replaces the one waiting for its node: the backlog never outgrows the members.
#[derive(Default)]
struct Backlog(VecDeque<MemberEvent>);

impl Backlog {
    fn push(&mut self, event: MemberEvent) {
        self.0.retain(|queued| queued.node() != event.node());
        self.0.push_back(event);
    }

    fn pop(&mut self) -> Option<MemberEvent> {
        self.0.pop_front()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn reserve(
    events: Option<mpsc::Sender<MemberEvent>>,
) -> Result<mpsc::OwnedPermit<MemberEvent>, mpsc::error::SendError<()>> {
    match events {
        Some(events) => events.reserve_owned().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_keeps_the_latest_event_per_node_in_order() {
        let mut backlog = Backlog::default();
        let (a, b) = ("a".to_owned(), "b".to_owned());
        backlog.push(MemberEvent::Up(a.clone()));
        backlog.push(MemberEvent::Up(b.clone()));
        backlog.push(MemberEvent::Suspect(a.clone()));
        backlog.push(MemberEvent::Down(a.clone()));
        assert_eq!(backlog.pop(), Some(MemberEvent::Up(b)));
        assert_eq!(backlog.pop(), Some(MemberEvent::Down(a)));
        assert_eq!(backlog.pop(), None);
        assert!(backlog.is_empty());
    }
}
