//! The replication core ([`Replicator`]) under faults, in a deterministic simulation: simulated
//! time, a simulated network and one seeded generator, so a failing run replays from its seed
//! (`DCACHE_SEED=<n>` runs that seed alone, in every test).
//!
//! ```text
//!   clients ── write/read ──► the slot's primary (head), as their view of the topology says;
//!                             under quorum a write goes to any copy (every copy coordinates)
//!                                │ submit(origin) ─► core ─► take ─► Apply{epoch, offsets, items}
//!   controller: the Topology     ▼                                      │ FIFO per link, delay,
//!   (Join, Set, Fail, Moved),   store (key → version, value)            │ loss, partitions
//!   sent to each node late  ◄──── Ack{offset} / Refuse ◄── peer: same epoch? apply, submit(relay)
//! ```
//!
//! The nodes do what the server does (`dcache-server`'s `replicate.rs`): one ordered stream per
//! peer; a receiver applies a batch only when its epoch is the sender's (else it refuses and the
//! sender rewinds and sends again later); a chain link submits what it applied (origin = false)
//! and answers upstream once its successor did, replies in order per connection; a lost message
//! breaks the connection (the sender rewinds and resends); the head answers a client's write when
//! the core completes it, and holds a read of a slot until the slot's last write completed
//! (CRAQ's clean reads). A node's versions come from a hybrid clock (skewed physical time, raised
//! past every version it received), so a promoted replica writes above what it holds.
//!
//! Faults, a few per seed: a crash of a slot's primary/head, middle link or tail (declared failed
//! after a while: `Change::Fail` cuts it out), a crash and restart (it comes back empty and
//! rejoins with `Change::Join`), a partition isolating one node (primary or not) from every other
//! node and from the controller, message loss, delay spikes. The plan then refills vacancies by
//! migration (`Change::Moved`), during the writes; a new copy gets its slot from the primary at
//! the commit (a state transfer, the slot paused meanwhile), and the primary takes the new
//! topology at once, as the node that drives the move. Under quorum the move waits until every
//! other copy knows the slot moves (it then sends the slot's writes to the primary), and the
//! primary first takes their copy of the slot and what their streams to it still hold (the
//! server's `CLUSTER PUSH` and `CLUSTER DRAIN`).
//!
//! Checks (which ones a test asserts is in its `Promises`): every acknowledged write is seen by a
//! read at the end (held by the slot's primary; under quorum, by enough copies that any
//! `read_quorum` of them include one that holds it); no node acknowledges a write after it lost
//! the slot unless such a read would see it; copies agree once the cluster settled; chain
//! histories are linearizable (`dcache-check`). For an asynchronous primary the losses are counted
//! and printed, not asserted. `DCACHE_TRACE=1` prints every event of a run, `DCACHE_LOSS=<p>`
//! replays a seed at another message loss rate.
//!
//! Under quorum a client sends each write to a random copy of the slot in its view: every copy
//! coordinates, sends the write to every other copy and takes theirs (`Layout::sends_to`).
//!
//! Not modelled: quorum reads and read repair (clients read the primary), deletes and expiry,
//! the server's write pausing during a migration (the state transfer is instantaneous).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use dcache_check::History;
use dcache_cluster::replication::{Layout, Mode, Outcome, Replicator, Submitted};
use dcache_cluster::{Change, Node, NodeState, Settings, Strategy, Topology};
use dcache_placement::SLOTS;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Simulated time in microseconds.
type Time = u64;
const MS: Time = 1000;

/// Seeds each test runs (unless `DCACHE_SEED` names one).
const SEEDS: u64 = 50;
/// Client operations per run.
const OPS: usize = 300;
const CLIENTS: usize = 3;
/// Keys, spread over `USED` slots (key `k` is in slot `k % USED`).
const KEYS: u8 = 6;
const USED: usize = 3;
/// Items per `Apply` and requests in flight per connection (small, to exercise both limits).
const BATCH: usize = 4;
const WINDOW: usize = 3;
/// Wait before sending again after a refusal or a broken connection (the server's `RETRY`).
const RETRY: Time = 20 * MS;
/// How long a node's write (or relay) waits for its copies before it fails.
const WRITE_TIMEOUT: Time = 1200 * MS;
/// How long a client waits for a reply before it counts the outcome as unknown.
const OP_TIMEOUT: Time = 2000 * MS;
/// Simulated time after the last client operation for the cluster to settle.
const SETTLE: Time = 10_000 * MS;

fn seeds() -> Vec<u64> {
    match std::env::var("DCACHE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (1..=SEEDS).collect(),
    }
}

fn id(n: usize) -> String {
    format!("{:040x}", n + 1)
}

fn member(n: usize) -> Node {
    Node {
        id: id(n),
        host: "10.0.0.1".into(),
        port: 7000 + n as u16,
        bus_port: 17000 + n as u16,
        state: NodeState::Online,
    }
}

/// The core's mode for the settings (as the server's `mode_of`).
fn mode_of(s: &Settings) -> Mode {
    match s.strategy {
        Strategy::Primary => Mode::Primary {
            sync: usize::from(s.sync_replicas),
        },
        Strategy::Quorum => Mode::Quorum {
            write: usize::from(s.write_quorum),
        },
        Strategy::Chain => Mode::Chain,
    }
}

/// One write's effect on one key: what a stream carries.
#[derive(Debug, Clone)]
struct Item {
    key: u8,
    version: u64,
    value: u64,
}

/// What a node submits to its core: a client's write, or a batch received from upstream.
#[derive(Debug)]
enum Token {
    Write(u64),
    Relay(u64),
}

#[derive(Debug)]
enum Msg {
    /// A batch of the stream from the connection's owner (the sender).
    Apply {
        link: u64,
        epoch: u64,
        last: u64,
        items: Vec<Item>,
    },
    /// The receiver holds the stream up to `last` (and so do its successors, in a chain).
    Ack { link: u64, last: u64 },
    /// Another epoch, or the batch could not reach the copies it needs: send again later.
    Refuse { link: u64 },
}

impl Msg {
    fn link(&self) -> u64 {
        match self {
            Msg::Apply { link, .. } | Msg::Ack { link, .. } | Msg::Refuse { link } => *link,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Written,
    Value(Option<u64>),
    Moved,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Head,
    Middle,
    Tail,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Crash(Role),
    CrashRestart(Role),
    Isolate(Role),
}

#[derive(Debug)]
enum Event {
    Net {
        from: usize,
        to: usize,
        msg: Msg,
    },
    /// The owner of a connection notices it broke (a lost message, a reset).
    Broken {
        node: usize,
        life: u32,
        peer: usize,
        link: u64,
    },
    Pump {
        node: usize,
        life: u32,
    },
    Topology {
        node: usize,
        epoch: u64,
    },
    Expire {
        node: usize,
        life: u32,
        waiter: u64,
    },
    Request {
        op: usize,
        node: usize,
    },
    Reply {
        op: usize,
        reply: Reply,
    },
    ClientNext {
        client: usize,
    },
    ClientTimeout {
        op: usize,
    },
    Refresh {
        client: usize,
    },
    Fault(Fault),
    Detect {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Heal {
        node: usize,
    },
    Rejoin {
        node: usize,
    },
    Migrate,
}

/// An outgoing connection, as its owner (the sender) sees it.
#[derive(Debug)]
struct Conn {
    link: u64,
    unanswered: usize,
    retry_at: Time,
}

#[derive(Debug)]
enum HeldState {
    Waiting(u64),
    Ok,
    Err,
}

/// A reply on an incoming connection, held until it can be sent in order.
#[derive(Debug)]
struct Held {
    last: u64,
    state: HeldState,
}

#[derive(Debug)]
struct PendingWrite {
    op: usize,
    slot: u16,
    item: Item,
}

struct SimNode {
    id: String,
    alive: bool,
    /// Bumped by a crash: events of an earlier life are stale.
    life: u32,
    epoch: u64,
    core: Replicator<Item, Token>,
    store: BTreeMap<u8, (u64, u64)>,
    clock: u64,
    skew: u64,
    conns: BTreeMap<usize, Conn>,
    /// Replies per incoming connection (sender, link), in order.
    held: BTreeMap<(usize, u64), VecDeque<Held>>,
    relays: BTreeMap<u64, (usize, u64)>,
    writes: BTreeMap<u64, PendingWrite>,
    /// Per slot, a chain head's last write (reads wait for it).
    chain_last: [Option<u64>; USED],
    reads: BTreeMap<u64, Vec<(usize, Option<u64>)>>,
    next_id: u64,
}

impl SimNode {
    fn new(n: usize, skew: u64) -> Self {
        SimNode {
            id: id(n),
            alive: true,
            life: 0,
            epoch: 0,
            core: Replicator::new(id(n), empty_layout()),
            store: BTreeMap::new(),
            clock: 0,
            skew,
            conns: BTreeMap::new(),
            held: BTreeMap::new(),
            relays: BTreeMap::new(),
            writes: BTreeMap::new(),
            chain_last: [None; USED],
            reads: BTreeMap::new(),
            next_id: 0,
        }
    }

    /// A crash loses everything but the identity.
    fn crash(&mut self) {
        let (id, life, skew) = (self.id.clone(), self.life + 1, self.skew);
        *self = SimNode {
            alive: false,
            life,
            ..SimNode::new(0, skew)
        };
        self.core = Replicator::new(id.clone(), empty_layout());
        self.id = id;
    }

    /// A hybrid clock: physical time (skewed) or one past the last version seen.
    fn next_version(&mut self, now: Time, me: usize) -> u64 {
        self.clock = (self.clock + 1).max(now + self.skew);
        self.clock << 8 | me as u64
    }

    fn observe(&mut self, version: u64) {
        self.clock = self.clock.max(version >> 8);
    }

    fn apply(&mut self, item: &Item) {
        self.observe(item.version);
        let e = self.store.entry(item.key).or_insert((0, 0));
        if item.version > e.0 {
            *e = (item.version, item.value);
        }
    }
}

fn slot_of(key: u8) -> u16 {
    u16::from(key) % USED as u16
}

fn empty_layout() -> Layout {
    Layout::new(Mode::Primary { sync: 0 }, 0, |_| std::iter::empty())
}

#[derive(Debug)]
struct OpRec {
    client: usize,
    key: u8,
    value: Option<u64>,
    history: dcache_check::OpId,
    done: bool,
    /// The version a node gave the write.
    version: Option<u64>,
}

struct Client {
    view: u64,
    busy: bool,
}

/// What a run found: each kind of broken promise, as lines naming the seed.
#[derive(Debug, Default)]
struct Report {
    /// Acknowledged writes whose slot's primary holds neither them nor anything newer at the end.
    lost: Vec<String>,
    /// Writes a node acknowledged after it lost the slot, which the slot's primary lacks.
    late: Vec<String>,
    /// Copies that disagree with their primary once the cluster settled.
    diverged: Vec<String>,
    /// The history is not linearizable (checked for chains only).
    nonlinear: Option<String>,
    /// The cluster did not settle (a plan unfinished, a copy down or behind).
    unsettled: Vec<String>,
    acked: usize,
    /// Writes a copy other than the primary coordinated (quorum).
    at_replicas: usize,
    unknown: usize,
    faults: Vec<String>,
    /// Everything observable, to compare two runs of one seed.
    digest: String,
}

struct Sim {
    seed: u64,
    settings: Settings,
    rng: StdRng,
    now: Time,
    seq: u64,
    queue: BTreeMap<(Time, u64), Event>,
    nodes: Vec<SimNode>,
    index: BTreeMap<String, usize>,
    topo: Topology,
    /// The real slots the simulated slots stand for.
    real: [u16; USED],
    layouts: BTreeMap<u64, Layout>,
    /// Per epoch, whether each slot's copies are about to change (a move planned).
    moving: BTreeMap<u64, [bool; USED]>,
    isolated: BTreeSet<usize>,
    link_last: BTreeMap<(usize, usize), Time>,
    /// Connections that lost a message: nothing more goes through them.
    dead: BTreeSet<u64>,
    loss: f64,
    next_gen: u64,
    clients: Vec<Client>,
    ops: Vec<OpRec>,
    history: History<u8, u64>,
    issued: usize,
    next_value: u64,
    settling: bool,
    report: Report,
    /// `DCACHE_TRACE=1`: print every event (with `DCACHE_SEED`, to see one run).
    trace: bool,
}

impl Sim {
    fn new(seed: u64, settings: Settings) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let count = rng.random_range(3..=5usize);
        let nodes = (0..count)
            .map(|n| SimNode::new(n, rng.random_range(0..50 * MS)))
            .collect();
        let mut sim = Sim {
            seed,
            settings,
            rng,
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            nodes,
            index: (0..count).map(|n| (id(n), n)).collect(),
            topo: Topology::default(),
            real: [0; USED],
            layouts: BTreeMap::new(),
            moving: BTreeMap::new(),
            isolated: BTreeSet::new(),
            link_last: BTreeMap::new(),
            dead: BTreeSet::new(),
            loss: 0.0,
            next_gen: 0,
            clients: (0..CLIENTS)
                .map(|_| Client {
                    view: 0,
                    busy: false,
                })
                .collect(),
            ops: Vec::new(),
            history: History::new(),
            issued: 0,
            next_value: 0,
            settling: false,
            report: Report::default(),
            trace: std::env::var_os("DCACHE_TRACE").is_some(),
        };
        // The cluster forms before any write: members join, settings are set, slots settle.
        for n in 0..count {
            sim.topo.apply(&Change::Join(member(n))).expect("join");
            sim.settle_now();
        }
        sim.topo.apply(&Change::Set(settings)).expect("settings");
        sim.settle_now();
        sim.real = sim.pick_slots();
        sim.commit_layout();
        for n in 0..count {
            sim.deliver(n, sim.topo.epoch, 0);
        }
        for c in &mut sim.clients {
            c.view = sim.topo.epoch;
        }
        sim
    }

    /// Moves every planned slot at once (no data yet).
    fn settle_now(&mut self) {
        while let Some((to, slots)) = self.next_move() {
            self.topo.apply(&Change::Moved { to, slots }).expect("move");
        }
    }

    /// The next batch the plan moves: the slots going to one destination.
    fn next_move(&self) -> Option<(String, Vec<u16>)> {
        self.topo.target.as_ref()?;
        let mut by_dest: BTreeMap<String, Vec<u16>> = BTreeMap::new();
        for from in self.topo.nodes.keys() {
            for (slot, to) in self.topo.moving_from(from) {
                by_dest.entry(to).or_default().push(slot);
            }
        }
        by_dest.into_iter().next()
    }

    /// Slots with different primaries where there are enough nodes, so that faults hit each role.
    fn pick_slots(&self) -> [u16; USED] {
        let mut picked: Vec<u16> = Vec::new();
        let mut primaries: Vec<String> = Vec::new();
        for s in (0..SLOTS as u16).step_by(61) {
            let primary = self.topo.owner(s).expect("served").id.clone();
            if !primaries.contains(&primary) {
                primaries.push(primary);
                picked.push(s);
            }
            if picked.len() == USED {
                break;
            }
        }
        let mut s = 1;
        while picked.len() < USED {
            if !picked.contains(&s) {
                picked.push(s);
            }
            s += 1;
        }
        [picked[0], picked[1], picked[2]]
    }

    fn commit_layout(&mut self) {
        let layout = Layout::new(mode_of(&self.topo.settings), USED, |s| {
            self.topo
                .replicas_of(self.real[usize::from(s)])
                .into_iter()
                .map(|n| n.id.as_str())
        });
        self.layouts.insert(self.topo.epoch, layout);
        let moving = self
            .real
            .map(|real| match (&self.topo.slots, &self.topo.target) {
                (Some(now), Some(target)) => !now.same_set(target, real),
                _ => false,
            });
        self.moving.insert(self.topo.epoch, moving);
    }

    fn copies(&self, epoch: u64, slot: u16) -> Vec<usize> {
        self.layouts[&epoch]
            .copies(slot)
            .map(|m| self.index[m])
            .collect()
    }

    fn schedule(&mut self, at: Time, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    fn delay(&mut self) -> Time {
        let base = self.rng.random_range(100..2000);
        if self.rng.random_bool(0.01) {
            base + self.rng.random_range(5 * MS..50 * MS)
        } else {
            base
        }
    }

    fn cut(&self, a: usize, b: usize) -> bool {
        self.isolated.contains(&a) != self.isolated.contains(&b)
    }

    fn new_link(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    // ---- the network ----

    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        if self.dead.contains(&msg.link()) {
            return;
        }
        if self.cut(from, to) || (self.loss > 0.0 && self.rng.random_bool(self.loss)) {
            self.lose(from, to, &msg);
            return;
        }
        let at =
            (self.now + self.delay()).max(self.link_last.get(&(from, to)).copied().unwrap_or(0));
        self.link_last.insert((from, to), at);
        self.schedule(at, Event::Net { from, to, msg });
    }

    /// A lost message breaks its connection (nothing after it arrives, as on TCP); its owner
    /// notices a little later.
    fn lose(&mut self, from: usize, to: usize, msg: &Msg) {
        if !self.dead.insert(msg.link()) {
            return;
        }
        let (owner, peer, link) = match msg {
            Msg::Apply { link, .. } => (from, to, *link),
            Msg::Ack { link, .. } | Msg::Refuse { link } => (to, from, *link),
        };
        let life = self.nodes[owner].life;
        let at = self.now + self.rng.random_range(10 * MS..100 * MS);
        self.schedule(
            at,
            Event::Broken {
                node: owner,
                life,
                peer,
                link,
            },
        );
    }

    fn break_conn(&mut self, n: usize, peer: usize) {
        let link = self.new_link();
        let retry_at = self.now + RETRY;
        let node = &mut self.nodes[n];
        let conn = node.conns.entry(peer).or_insert(Conn {
            link,
            unanswered: 0,
            retry_at,
        });
        conn.link = link;
        conn.unanswered = 0;
        conn.retry_at = retry_at;
        let peer_id = id(peer);
        node.core.rewind(&peer_id);
        let life = node.life;
        self.schedule(retry_at, Event::Pump { node: n, life });
    }

    /// Sends what the core has for each peer, within the window.
    fn pump(&mut self, n: usize) {
        if !self.nodes[n].alive {
            return;
        }
        let ready: Vec<usize> = self.nodes[n].core.ready().map(|p| self.index[p]).collect();
        for peer in ready {
            if !self.nodes[n].conns.contains_key(&peer) {
                let link = self.new_link();
                self.nodes[n].conns.insert(
                    peer,
                    Conn {
                        link,
                        unanswered: 0,
                        retry_at: 0,
                    },
                );
            }
            loop {
                let node = &mut self.nodes[n];
                let conn = &node.conns[&peer];
                if conn.retry_at > self.now || conn.unanswered >= WINDOW {
                    break;
                }
                let link = conn.link;
                let Some((first, items)) = node.core.take(&id(peer), BATCH) else {
                    break;
                };
                node.conns.get_mut(&peer).expect("present").unanswered += 1;
                let msg = Msg::Apply {
                    link,
                    epoch: node.epoch,
                    last: first + items.len() as u64 - 1,
                    items,
                };
                self.send(n, peer, msg);
            }
        }
    }

    fn on_apply(&mut self, r: usize, s: usize, link: u64, epoch: u64, last: u64, items: Vec<Item>) {
        let node = &mut self.nodes[r];
        // A new connection from `s` replaces the old one: its unsent replies are gone.
        node.held.retain(|&(from, g), _| from != s || g == link);
        let state = if node.epoch != epoch {
            HeldState::Err
        } else {
            let me = node.id.clone();
            let sender = self.nodes[s].id.clone();
            let node = &mut self.nodes[r];
            let mine: Vec<(u16, Item)> = items
                .into_iter()
                .map(|item| (slot_of(item.key), item))
                .filter(|(slot, _)| node.core.layout().sends_to(*slot, &sender, &me))
                .collect();
            for (_, item) in &mine {
                node.apply(item);
            }
            if mine.is_empty() {
                HeldState::Ok
            } else {
                node.next_id += 1;
                let rid = node.next_id;
                match node.core.submit(Token::Relay(rid), mine, false) {
                    Submitted::Done(_) => HeldState::Ok,
                    Submitted::NotHere(_) => HeldState::Err,
                    Submitted::Waiting(w) => {
                        node.relays.insert(rid, (s, link));
                        let life = node.life;
                        self.schedule(
                            self.now + WRITE_TIMEOUT,
                            Event::Expire {
                                node: r,
                                life,
                                waiter: w,
                            },
                        );
                        HeldState::Waiting(rid)
                    }
                }
            }
        };
        self.nodes[r]
            .held
            .entry((s, link))
            .or_default()
            .push_back(Held { last, state });
        self.flush(r, s, link);
        self.pump(r);
    }

    /// Sends the replies of an incoming connection that are ready, in order.
    fn flush(&mut self, r: usize, s: usize, link: u64) {
        loop {
            let Some(queue) = self.nodes[r].held.get_mut(&(s, link)) else {
                return;
            };
            let msg = match queue.front() {
                Some(Held {
                    state: HeldState::Ok,
                    last,
                }) => Msg::Ack { link, last: *last },
                Some(Held {
                    state: HeldState::Err,
                    ..
                }) => Msg::Refuse { link },
                _ => return,
            };
            queue.pop_front();
            self.send(r, s, msg);
        }
    }

    /// Writes and relays the core completed (or that failed: timed out, not here).
    fn dispatch(&mut self, n: usize, done: Vec<(Token, bool)>) {
        for (token, ok) in done {
            match token {
                Token::Write(wid) => self.complete_write(n, wid, ok),
                Token::Relay(rid) => {
                    let Some((s, link)) = self.nodes[n].relays.remove(&rid) else {
                        continue;
                    };
                    if let Some(queue) = self.nodes[n].held.get_mut(&(s, link)) {
                        for held in queue.iter_mut() {
                            if matches!(held.state, HeldState::Waiting(x) if x == rid) {
                                held.state = if ok { HeldState::Ok } else { HeldState::Err };
                            }
                        }
                    }
                    self.flush(n, s, link);
                }
            }
        }
        self.pump(n);
    }

    fn outcomes(done: Vec<(Token, Outcome)>) -> Vec<(Token, bool)> {
        done.into_iter()
            .map(|(t, o)| (t, o == Outcome::Done))
            .collect()
    }

    fn complete_write(&mut self, n: usize, wid: u64, ok: bool) {
        let Some(write) = self.nodes[n].writes.remove(&wid) else {
            return;
        };
        if ok {
            self.check_late_ack(n, &write);
        }
        let reply = if ok { Reply::Written } else { Reply::Error };
        self.reply(write.op, reply);
        for (op, value) in self.nodes[n].reads.remove(&wid).unwrap_or_default() {
            let reply = if ok {
                Reply::Value(value)
            } else {
                Reply::Error
            };
            self.reply(op, reply);
        }
    }

    /// Whether a read of `key` from `copies` (primary first) sees `version` or a newer one: the
    /// primary's copy, or under quorum the newest of any `read_quorum` copies.
    fn visible(&self, copies: &[usize], key: u8, version: u64) -> bool {
        let holds = |c: &usize| {
            self.nodes[*c]
                .store
                .get(&key)
                .is_some_and(|&(v, _)| v >= version)
        };
        match self.settings.strategy {
            Strategy::Quorum => {
                let n = copies.len();
                let r = usize::from(self.settings.read_quorum).min(n);
                copies.iter().filter(|c| holds(c)).count() > n - r
            }
            _ => copies.first().is_some_and(holds),
        }
    }

    /// A node that is no longer the slot's primary in the agreed topology acknowledges a write
    /// (under quorum, any copy but the primary, which coordinates writes too): only fine if a
    /// read would see it.
    fn check_late_ack(&mut self, n: usize, write: &PendingWrite) {
        let epoch = self.topo.epoch;
        let copies = self.copies(epoch, write.slot);
        if copies.first() == Some(&n) {
            return;
        }
        let live: Vec<usize> = copies
            .iter()
            .copied()
            .filter(|&c| self.nodes[c].alive)
            .collect();
        let Some(&primary) = live.first() else {
            return;
        };
        let held = self.visible(&live, write.item.key, write.item.version);
        if !held {
            self.report.late.push(format!(
                "seed {}: node {n} acknowledged {:?} at {}µs after it lost slot {} (epoch {epoch}, copies {copies:?}); primary {primary} lacks it",
                self.seed, write.item, self.now, write.slot
            ));
        }
    }

    // ---- clients ----

    fn reply(&mut self, op: usize, reply: Reply) {
        let at = self.now + self.rng.random_range(100..1000);
        self.schedule(at, Event::Reply { op, reply });
    }

    fn primary_in_view(&self, client: usize, slot: u16) -> Option<usize> {
        self.copies(self.clients[client].view, slot)
            .first()
            .copied()
    }

    /// A random copy of the slot in the client's view (which has one): under quorum each
    /// coordinates the writes sent to it.
    fn any_copy_in_view(&mut self, client: usize, slot: u16) -> usize {
        let copies = self.copies(self.clients[client].view, slot);
        copies[self.rng.random_range(0..copies.len())]
    }

    fn client_next(&mut self, client: usize) {
        if self.issued >= OPS || self.clients[client].busy {
            return;
        }
        let key = self.rng.random_range(0..KEYS);
        let slot = slot_of(key);
        let Some(primary) = self.primary_in_view(client, slot) else {
            self.clients[client].view = self.topo.epoch;
            let at = self.now + 10 * MS;
            self.schedule(at, Event::ClientNext { client });
            return;
        };
        self.issued += 1;
        let write = self.rng.random_bool(0.5);
        let node = if write && self.settings.strategy == Strategy::Quorum {
            self.any_copy_in_view(client, slot)
        } else {
            primary
        };
        let (value, history) = if write {
            self.next_value += 1;
            let v = self.next_value;
            (Some(v), self.history.write(client as u64, key, v, self.now))
        } else {
            (None, self.history.read(client as u64, key, self.now))
        };
        let op = self.ops.len();
        self.ops.push(OpRec {
            client,
            key,
            value,
            history,
            done: false,
            version: None,
        });
        self.clients[client].busy = true;
        let at = self.now + self.rng.random_range(100..1000);
        self.schedule(at, Event::Request { op, node });
        self.schedule(self.now + OP_TIMEOUT, Event::ClientTimeout { op });
    }

    fn on_request(&mut self, op: usize, n: usize) {
        if !self.nodes[n].alive {
            return;
        }
        let (key, value) = (self.ops[op].key, self.ops[op].value);
        let slot = slot_of(key);
        let node = &self.nodes[n];
        // Under quorum a replica coordinates writes, except those of a slot about to move (as
        // the server: only the primary, which drives the move, accounts for them).
        let primary = node.core.layout().position(slot, &node.id) == Some(0);
        let here = primary
            || (value.is_some()
                && node.core.layout().coordinates(slot, &node.id)
                && !self.moving[&node.epoch][usize::from(slot)]);
        if !here {
            self.reply(op, Reply::Moved);
            return;
        }
        if !primary {
            self.report.at_replicas += 1;
        }
        let node = &mut self.nodes[n];
        let chain = node.core.layout().mode == Mode::Chain;
        let Some(value) = value else {
            let current = node.store.get(&key).map(|&(_, v)| v);
            match node.chain_last[usize::from(slot)] {
                Some(wid) if chain && node.writes.contains_key(&wid) => {
                    node.reads.entry(wid).or_default().push((op, current));
                }
                _ => self.reply(op, Reply::Value(current)),
            }
            return;
        };
        let version = node.next_version(self.now, n);
        let item = Item {
            key,
            version,
            value,
        };
        node.apply(&item);
        self.ops[op].version = Some(version);
        node.next_id += 1;
        let wid = node.next_id;
        if chain {
            node.chain_last[usize::from(slot)] = Some(wid);
        }
        node.writes.insert(
            wid,
            PendingWrite {
                op,
                slot,
                item: item.clone(),
            },
        );
        match node
            .core
            .submit(Token::Write(wid), vec![(slot, item)], true)
        {
            Submitted::Done(_) => self.complete_write(n, wid, true),
            Submitted::NotHere(_) => self.complete_write(n, wid, false),
            Submitted::Waiting(w) => {
                let life = node.life;
                self.schedule(
                    self.now + WRITE_TIMEOUT,
                    Event::Expire {
                        node: n,
                        life,
                        waiter: w,
                    },
                );
            }
        }
        self.pump(n);
    }

    fn on_reply(&mut self, op: usize, reply: Reply) {
        let rec = &mut self.ops[op];
        if rec.done {
            return;
        }
        rec.done = true;
        let (client, hid) = (rec.client, rec.history);
        match reply {
            Reply::Written => {
                self.history.ok(hid, self.now);
                self.report.acked += 1;
            }
            Reply::Value(v) => self.history.read_ok(hid, v, self.now),
            // Refused before it ran.
            Reply::Moved => self.history.fail(hid),
            // A write that failed after it ran (timed out, moved away) may still take effect.
            Reply::Error => {
                if rec.value.is_none() {
                    self.history.fail(hid);
                } else {
                    self.report.unknown += 1;
                }
            }
        }
        if reply != Reply::Written && !matches!(reply, Reply::Value(_)) {
            self.clients[client].view = self.topo.epoch;
        }
        self.client_done(client);
    }

    fn client_done(&mut self, client: usize) {
        self.clients[client].busy = false;
        let at = self.now + self.rng.random_range(2 * MS..20 * MS);
        self.schedule(at, Event::ClientNext { client });
        if self.issued >= OPS && self.clients.iter().all(|c| !c.busy) && !self.settling {
            self.settle();
        }
    }

    // ---- the controller ----

    /// Applies a change to the agreed topology and sends it to the nodes, each a little late.
    fn change(&mut self, change: Change) -> bool {
        if self.topo.apply(&change).is_err() {
            return false;
        }
        self.commit_layout();
        let epoch = self.topo.epoch;
        for n in 0..self.nodes.len() {
            let delay = self.rng.random_range(MS..200 * MS);
            self.deliver(n, epoch, delay);
        }
        true
    }

    fn deliver(&mut self, n: usize, epoch: u64, delay: Time) {
        self.schedule(self.now + delay, Event::Topology { node: n, epoch });
    }

    fn on_topology(&mut self, n: usize, epoch: u64) {
        let node = &mut self.nodes[n];
        if !node.alive || self.isolated.contains(&n) || epoch <= node.epoch {
            return;
        }
        node.epoch = epoch;
        let done = node.core.set_layout(self.layouts[&epoch].clone());
        self.dispatch(n, Self::outcomes(done));
    }

    /// The node holding `role` in the set of a random slot, now.
    fn holder(&mut self, role: Role) -> Option<usize> {
        let slot = self.rng.random_range(0..USED as u16);
        let copies: Vec<usize> = self
            .copies(self.topo.epoch, slot)
            .into_iter()
            .filter(|&c| self.nodes[c].alive && !self.isolated.contains(&c))
            .collect();
        match (role, copies.len()) {
            (_, 0) | (Role::Middle, 1 | 2) => None,
            (Role::Head, _) => Some(copies[0]),
            (Role::Middle, _) => Some(copies[1]),
            (Role::Tail, n) => Some(copies[n - 1]),
        }
    }

    fn on_fault(&mut self, fault: Fault) {
        if self.settling {
            return;
        }
        // One node out at a time: faults are about single failures.
        if self.nodes.iter().any(|n| !n.alive) || !self.isolated.is_empty() {
            return;
        }
        let role = match fault {
            Fault::Crash(r) | Fault::CrashRestart(r) | Fault::Isolate(r) => r,
        };
        let Some(n) = self.holder(role) else { return };
        self.report
            .faults
            .push(format!("{:?} node {n} at {}ms", fault, self.now / MS));
        let detect = self.now + self.rng.random_range(200 * MS..600 * MS);
        match fault {
            Fault::Crash(_) | Fault::CrashRestart(_) => {
                self.nodes[n].crash();
                if matches!(fault, Fault::CrashRestart(_)) {
                    let at = detect + self.rng.random_range(100 * MS..800 * MS);
                    self.schedule(at, Event::Restart { node: n });
                }
            }
            Fault::Isolate(_) => {
                self.isolated.insert(n);
                let at = detect + self.rng.random_range(100 * MS..800 * MS);
                self.schedule(at, Event::Heal { node: n });
            }
        }
        self.schedule(detect, Event::Detect { node: n });
    }

    fn on_detect(&mut self, n: usize) {
        let id = id(n);
        if self.topo.nodes[&id].state != NodeState::Failed {
            self.change(Change::Fail(id));
            let at = self.now + self.rng.random_range(50 * MS..300 * MS);
            self.schedule(at, Event::Migrate);
        }
    }

    fn on_rejoin(&mut self, n: usize) {
        if self.topo.nodes[&id(n)].state == NodeState::Failed && self.nodes[n].alive {
            self.change(Change::Join(member(n)));
            let at = self.now + self.rng.random_range(50 * MS..300 * MS);
            self.schedule(at, Event::Migrate);
        }
    }

    /// One batch of the plan: new copies get the slot from its primary, the move commits, and
    /// the primary (which drove it) takes the new topology at once.
    fn on_migrate(&mut self) {
        let Some((to, slots)) = self.next_move() else {
            return;
        };
        let up = |sim: &Sim, n: usize| sim.nodes[n].alive && !sim.isolated.contains(&n);
        let mut transfers = Vec::new();
        let mut flushes = Vec::new();
        let mut drivers = BTreeSet::from([self.index[&to]]);
        for (s, &real) in self.real.iter().enumerate() {
            if !slots.contains(&real) {
                continue;
            }
            let source = self.index[&self.topo.owner(real).expect("served").id];
            let needed: Vec<usize> = self
                .topo
                .copies_needed(real)
                .iter()
                .map(|m| self.index[&m.id])
                .collect();
            if !up(self, source) || needed.iter().any(|&m| !up(self, m)) {
                // Wait for the failure detector, or the return.
                let at = self.now + 100 * MS;
                self.schedule(at, Event::Migrate);
                return;
            }
            if self.settings.strategy == Strategy::Quorum {
                // Every copy coordinates writes: the source has the others flush their streams
                // to it first, once they know the slot moves (they then send its writes to the
                // source), as the server's `CLUSTER DRAIN`.
                let others: Vec<usize> = self
                    .copies(self.topo.epoch, s as u16)
                    .into_iter()
                    .filter(|&c| c != source)
                    .collect();
                if others
                    .iter()
                    .any(|&c| !up(self, c) || !self.moving[&self.nodes[c].epoch][s])
                {
                    let at = self.now + 100 * MS;
                    self.schedule(at, Event::Migrate);
                    return;
                }
                flushes.push((s as u16, source, others));
            }
            drivers.insert(source);
            for m in needed {
                transfers.push((s as u8, source, m));
            }
        }
        for (slot, source, others) in flushes {
            let to = id(source);
            for c in others {
                // The copy's own state of the slot first (the server's `CLUSTER PUSH`, before
                // the snapshot): the source may lack a write that W other copies hold.
                let mut items: Vec<Item> = self.nodes[c]
                    .store
                    .iter()
                    .filter(|(k, _)| slot_of(**k) == slot)
                    .map(|(&key, &(version, value))| Item {
                        key,
                        version,
                        value,
                    })
                    .collect();
                items.extend(
                    self.nodes[c]
                        .core
                        .unacked(&to)
                        .filter(|item| slot_of(item.key) == slot)
                        .cloned(),
                );
                for item in &items {
                    self.nodes[source].apply(item);
                }
            }
        }
        for (s, source, m) in transfers {
            // The new copy drops what it had of the slot and takes the primary's.
            let keys: Vec<u8> = (0..KEYS).filter(|k| k % USED as u8 == s).collect();
            for k in keys {
                let entry = self.nodes[source].store.get(&k).copied();
                let dest = &mut self.nodes[m];
                match entry {
                    Some(e) => {
                        dest.observe(e.0);
                        dest.store.insert(k, e);
                    }
                    None => {
                        dest.store.remove(&k);
                    }
                }
            }
        }
        if !self.change(Change::Moved { to, slots }) {
            return;
        }
        let epoch = self.topo.epoch;
        for n in drivers {
            self.on_topology(n, epoch);
        }
        let at = self.now + self.rng.random_range(20 * MS..200 * MS);
        self.schedule(at, Event::Migrate);
    }

    /// The clients are done: heal everything, stop losing messages, let the plan finish.
    fn settle(&mut self) {
        self.settling = true;
        self.loss = 0.0;
        let isolated: Vec<usize> = self.isolated.iter().copied().collect();
        for n in isolated {
            self.on_heal(n);
        }
        self.schedule(self.now, Event::Migrate);
    }

    fn on_heal(&mut self, n: usize) {
        if !self.isolated.remove(&n) {
            return;
        }
        let epoch = self.topo.epoch;
        let delay = self.rng.random_range(MS..100 * MS);
        self.deliver(n, epoch, delay);
        let at = self.now + delay + self.rng.random_range(50 * MS..300 * MS);
        self.schedule(at, Event::Rejoin { node: n });
    }

    fn step(&mut self, event: Event) {
        if self.trace {
            println!("{:>8}µs {event:?}", self.now);
        }
        match event {
            Event::Net { from, to, msg } => {
                if self.dead.contains(&msg.link()) {
                    return;
                }
                if !self.nodes[to].alive || self.cut(from, to) {
                    self.lose(from, to, &msg);
                    return;
                }
                match msg {
                    Msg::Apply {
                        link,
                        epoch,
                        last,
                        items,
                    } => self.on_apply(to, from, link, epoch, last, items),
                    Msg::Ack { link, last } => {
                        let node = &mut self.nodes[to];
                        let Some(conn) = node.conns.get_mut(&from) else {
                            return;
                        };
                        if conn.link != link {
                            return;
                        }
                        conn.unanswered = conn.unanswered.saturating_sub(1);
                        let done = node.core.acked(&id(from), last);
                        self.dispatch(to, Self::outcomes(done));
                    }
                    Msg::Refuse { link } => {
                        if self.nodes[to]
                            .conns
                            .get(&from)
                            .is_some_and(|c| c.link == link)
                        {
                            self.break_conn(to, from);
                        }
                    }
                }
            }
            Event::Broken {
                node,
                life,
                peer,
                link,
            } => {
                let n = &self.nodes[node];
                if n.alive && n.life == life && n.conns.get(&peer).is_some_and(|c| c.link == link) {
                    self.break_conn(node, peer);
                }
            }
            Event::Pump { node, life } => {
                if self.nodes[node].life == life {
                    self.pump(node);
                }
            }
            Event::Topology { node, epoch } => self.on_topology(node, epoch),
            Event::Expire { node, life, waiter } => {
                let n = &mut self.nodes[node];
                if n.alive
                    && n.life == life
                    && let Some(token) = n.core.cancel(waiter)
                {
                    self.dispatch(node, vec![(token, false)]);
                }
            }
            Event::Request { op, node } => self.on_request(op, node),
            Event::Reply { op, reply } => self.on_reply(op, reply),
            Event::ClientNext { client } => self.client_next(client),
            Event::ClientTimeout { op } => {
                if !self.ops[op].done {
                    self.ops[op].done = true;
                    let client = self.ops[op].client;
                    if self.ops[op].value.is_some() {
                        self.report.unknown += 1;
                    }
                    self.clients[client].view = self.topo.epoch;
                    self.client_done(client);
                }
            }
            Event::Refresh { client } => {
                self.clients[client].view = self.topo.epoch;
                let at = self.now + self.rng.random_range(200 * MS..1000 * MS);
                if !self.settling {
                    self.schedule(at, Event::Refresh { client });
                }
            }
            Event::Fault(fault) => self.on_fault(fault),
            Event::Detect { node } => self.on_detect(node),
            Event::Restart { node } => {
                self.nodes[node].alive = true;
                let at = self.now + self.rng.random_range(10 * MS..100 * MS);
                self.schedule(at, Event::Rejoin { node });
            }
            Event::Heal { node } => self.on_heal(node),
            Event::Rejoin { node } => self.on_rejoin(node),
            Event::Migrate => self.on_migrate(),
        }
    }

    /// Runs the workload with `faults` at random times, then settles and checks.
    fn run(mut self, faults: &[Fault], loss: f64) -> Report {
        self.loss = loss;
        let mut at = 0;
        for &fault in faults {
            at += self.rng.random_range(100 * MS..1500 * MS);
            self.schedule(at, Event::Fault(fault));
        }
        for client in 0..CLIENTS {
            self.schedule(0, Event::ClientNext { client });
            let at = self.rng.random_range(200 * MS..1000 * MS);
            self.schedule(at, Event::Refresh { client });
        }
        let mut deadline = Time::MAX;
        while let Some(((time, _), event)) = self.queue.pop_first() {
            if time > deadline {
                break;
            }
            self.now = time;
            self.step(event);
            if self.settling && deadline == Time::MAX {
                deadline = self.now + SETTLE;
            }
        }
        self.finish()
    }

    fn finish(mut self) -> Report {
        let seed = self.seed;
        let epoch = self.topo.epoch;
        let mut digest = String::new();
        if self.topo.target.is_some() {
            self.report
                .unsettled
                .push(format!("seed {seed}: the plan did not finish"));
        }
        // Acknowledged writes: (key, version, value).
        let acked: Vec<(u8, u64, u64)> = self
            .ops
            .iter()
            .filter(|op| {
                matches!(
                    self.history.get(op.history).outcome,
                    dcache_check::Outcome::Ok(_)
                )
            })
            .filter_map(|op| Some((op.key, op.version?, op.value?)))
            .collect();
        for slot in 0..USED as u16 {
            let copies = self.copies(epoch, slot);
            for &c in &copies {
                if !self.nodes[c].alive || self.nodes[c].epoch != epoch {
                    self.report.unsettled.push(format!(
                        "seed {seed}: copy {c} of slot {slot} is down or behind ({} < {epoch})",
                        self.nodes[c].epoch
                    ));
                }
            }
            let primary = copies[0];
            for key in (0..KEYS).filter(|&k| slot_of(k) == slot) {
                let at_primary = self.nodes[primary].store.get(&key).copied();
                let _ = write!(digest, "{key}:{at_primary:?} ");
                for &(_, version, value) in acked.iter().filter(|w| w.0 == key) {
                    if !self.visible(&copies, key, version) {
                        self.report.lost.push(format!(
                            "seed {seed}: key {key}: primary {primary} holds {at_primary:?}, a read misses the acknowledged write of {value} (version {version})"
                        ));
                    }
                }
                for &c in &copies[1..] {
                    let here = self.nodes[c].store.get(&key).copied();
                    if here != at_primary {
                        self.report.diverged.push(format!(
                            "seed {seed}: key {key}: copy {c} holds {here:?}, primary {primary} {at_primary:?}"
                        ));
                    }
                }
            }
        }
        let _ = write!(digest, "{:?}", self.history.operations());
        self.report.digest = digest;
        if self.settings.strategy == Strategy::Chain
            && let Err(v) = self.history.check()
        {
            self.report.nonlinear = Some(format!("seed {seed}: not linearizable: {v}"));
        }
        self.report
    }
}

fn settings(strategy: Strategy, replicas: u8) -> Settings {
    Settings::new(replicas, strategy)
}

/// Which faults a test injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Faults {
    /// Crashes (and restarts) of each role, message loss, delay spikes.
    Crashes,
    /// Partitions isolating one node (of each role) from the others and the controller.
    Partitions,
}

/// The faults of one seed: one or two, at random roles, with message loss on some seeds.
fn plan(seed: u64, kind: Faults) -> (Vec<Fault>, f64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xfa17);
    let roles = [Role::Head, Role::Middle, Role::Tail];
    let mut faults = Vec::new();
    for _ in 0..rng.random_range(1..=2) {
        let role = roles[rng.random_range(0..roles.len())];
        faults.push(match (kind, rng.random_bool(0.5)) {
            (Faults::Crashes, true) => Fault::Crash(role),
            (Faults::Crashes, false) => Fault::CrashRestart(role),
            (Faults::Partitions, _) => Fault::Isolate(role),
        });
    }
    let loss = [0.0, 0.0, 0.002, 0.005][rng.random_range(0..4)];
    // `DCACHE_LOSS=<p>` replays a seed with another loss rate.
    let loss = std::env::var("DCACHE_LOSS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(loss);
    (faults, loss)
}

/// The promises a test holds a strategy to.
#[derive(Debug, Clone, Copy)]
struct Promises {
    /// No acknowledged write is lost, none is acknowledged by a node that lost the slot.
    durable: bool,
    /// Copies agree once the cluster settled.
    converge: bool,
    /// Chain histories are linearizable.
    linearizable: bool,
}

const ALL: Promises = Promises {
    durable: true,
    converge: true,
    linearizable: true,
};

/// Runs every seed; fails naming each seed that broke a promise (and how to replay it).
fn run_seeds(settings: Settings, kind: Faults, promises: Promises) -> Vec<Report> {
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for seed in seeds() {
        let (faults, loss) = plan(seed, kind);
        let r = Sim::new(seed, settings).run(&faults, loss);
        println!(
            "seed {seed}: {:?}, loss {loss}: {} acknowledged, {} written at replicas, {} unknown, {} lost, {} late, {} diverged{}",
            r.faults,
            r.acked,
            r.at_replicas,
            r.unknown,
            r.lost.len(),
            r.late.len(),
            r.diverged.len(),
            if r.nonlinear.is_some() {
                ", not linearizable"
            } else {
                ""
            }
        );
        let mut broken: Vec<&String> = r.unsettled.iter().collect();
        if promises.durable {
            broken.extend(&r.lost);
            broken.extend(&r.late);
        }
        if promises.converge {
            broken.extend(&r.diverged);
        }
        if promises.linearizable {
            broken.extend(&r.nonlinear);
        }
        for line in &broken {
            println!("  {line}");
        }
        // What is counted but not promised: the first of each kind, to follow up.
        for (promised, lines) in [
            (promises.durable, r.lost.first().or(r.late.first())),
            (promises.converge, r.diverged.first()),
            (promises.linearizable, r.nonlinear.as_ref()),
        ] {
            if let (false, Some(line)) = (promised, lines) {
                println!("  (not asserted) {line}");
            }
        }
        if let Some(first) = broken.first() {
            failures.push(format!("DCACHE_SEED={seed}: {first}"));
        }
        reports.push(r);
    }
    assert!(
        failures.is_empty(),
        "{} seeds failed (replay one with DCACHE_SEED=<seed>, DCACHE_TRACE=1 prints its events):\n{}",
        failures.len(),
        failures.join("\n")
    );
    reports
}

#[test]
fn chain_under_crashes_is_linearizable_and_loses_no_acknowledged_write() {
    run_seeds(settings(Strategy::Chain, 2), Faults::Crashes, ALL);
}

#[test]
fn primary_with_a_synchronous_replica_under_crashes_loses_no_acknowledged_write() {
    run_seeds(settings(Strategy::Primary, 1), Faults::Crashes, ALL);
}

#[test]
fn quorum_of_two_under_crashes_loses_no_acknowledged_write() {
    // Copies of a quorum may disagree on writes that never reached a quorum (read repair, which
    // would fix them, is not modelled): their convergence is not a promise here.
    let promises = Promises {
        converge: false,
        ..ALL
    };
    let reports = run_seeds(settings(Strategy::Quorum, 2), Faults::Crashes, promises);
    // Writes enter at any copy: the replicas coordinated some.
    assert!(reports.iter().all(|r| r.at_replicas > 0));
}

#[test]
fn asynchronous_primary_counts_what_it_loses() {
    let s = Settings {
        sync_replicas: 0,
        ..settings(Strategy::Primary, 1)
    };
    let none = Promises {
        durable: false,
        converge: false,
        linearizable: false,
    };
    for kind in [Faults::Crashes, Faults::Partitions] {
        let reports = run_seeds(s, kind, none);
        let lost: usize = reports.iter().map(|r| r.lost.len()).sum();
        let late: usize = reports.iter().map(|r| r.late.len()).sum();
        let acked: usize = reports.iter().map(|r| r.acked).sum();
        println!(
            "asynchronous primary, {kind:?}: {lost} of {acked} acknowledged writes lost, {late} acknowledged by a primary that had lost the slot"
        );
    }
}

#[test]
fn a_seed_replays_the_same_run() {
    let seed = seeds()[0];
    let (faults, loss) = plan(seed, Faults::Crashes);
    let s = settings(Strategy::Chain, 2);
    let a = Sim::new(seed, s).run(&faults, loss);
    let b = Sim::new(seed, s).run(&faults, loss);
    assert_eq!(a.digest, b.digest, "seed {seed}");
    assert!(a.acked > 0, "seed {seed}: no write was acknowledged");
}

/// A partition leaves a deposed primary (or link) up. What holds under every synchronous
/// strategy: the isolated side acknowledges nothing the slot's copies do not hold, and no
/// acknowledged write is lost. Two things do not hold yet; they are counted and printed (with the
/// seeds that show them), not asserted:
///
/// - Copies diverge after the partition heals (primary and quorum): the deposed node's stream
///   still holds the items it queued in the old epoch, and sends them stamped with its new epoch;
///   a copy that has that epoch and holds the slot applies them, although their sender is no
///   longer the slot's primary and the other copies never get them (e.g. primary seed 37).
/// - Chain reads are not linearizable: a deposed head that has no write in flight answers reads
///   from its own copy, while the new head acknowledges newer writes (e.g. chain seed 47).
#[test]
fn partitions_lose_no_acknowledged_write_under_synchronous_strategies() {
    let durable = Promises {
        durable: true,
        converge: false,
        linearizable: false,
    };
    for s in [
        settings(Strategy::Chain, 2),
        settings(Strategy::Primary, 1),
        settings(Strategy::Quorum, 2),
    ] {
        let reports = run_seeds(s, Faults::Partitions, durable);
        let diverged = reports.iter().filter(|r| !r.diverged.is_empty()).count();
        let nonlinear = reports.iter().filter(|r| r.nonlinear.is_some()).count();
        println!(
            "{} under partitions: {diverged} runs with diverged copies, {nonlinear} not linearizable",
            s.strategy
        );
    }
}
