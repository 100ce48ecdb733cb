//! SWIM cores on an in-memory network with simulated time: seeded loss, latency, partitions,
//! kills and restarts. Each test runs several seeds; a failure names its seed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::time::Duration;

use dcache_cluster::NodeId;
use dcache_cluster::swim::{
    DEFAULT_NODE_TIMEOUT, Effects, MemberEvent, SwimCore, SwimId, Timer, Timing,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const SEEDS: std::ops::Range<u64> = 1..11;

fn node_id(index: usize) -> NodeId {
    format!("{index:040x}")
}

fn bus(index: usize, port_base: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port_base + u16::try_from(index).unwrap()))
}

enum Ev {
    Deliver {
        to: SocketAddr,
        data: Vec<u8>,
    },
    Timer {
        node: usize,
        life: u32,
        timer: Timer,
    },
    Announce {
        node: usize,
        life: u32,
    },
}

struct Slot {
    core: Option<SwimCore>,
    /// Bumped by every kill, so the timers of a previous life are dropped.
    life: u32,
    bus: SocketAddr,
}

struct Sim {
    seed: u64,
    timing: Timing,
    now: Duration,
    queue: BinaryHeap<Reverse<(Duration, u64)>>,
    pending: BTreeMap<u64, Ev>,
    next_seq: u64,
    rng: StdRng,
    loss: f64,
    nodes: Vec<Slot>,
    /// Node pairs (low, high) that cannot reach each other.
    cut: BTreeSet<(usize, usize)>,
    /// (time, observer, event), in order.
    log: Vec<(Duration, usize, MemberEvent)>,
}

impl Sim {
    /// `count` nodes that all know the full member list, as the topology would give it.
    fn new(count: usize, seed: u64) -> Self {
        let mut sim = Self {
            seed,
            timing: Timing::from_node_timeout(DEFAULT_NODE_TIMEOUT),
            now: Duration::ZERO,
            queue: BinaryHeap::new(),
            pending: BTreeMap::new(),
            next_seq: 0,
            rng: StdRng::seed_from_u64(seed),
            loss: 0.0,
            nodes: (0..count)
                .map(|index| Slot {
                    core: None,
                    life: 0,
                    bus: bus(index, 17000),
                })
                .collect(),
            cut: BTreeSet::new(),
            log: Vec::new(),
        };
        for index in 0..count {
            sim.start(index);
        }
        sim
    }

    fn members(&self) -> Vec<(NodeId, SocketAddr)> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(index, slot)| (node_id(index), slot.bus))
            .collect()
    }

    /// Starts (or restarts) a node: a new life with a higher generation, as after a restart.
    fn start(&mut self, index: usize) {
        let me = SwimId {
            node: node_id(index),
            bus: self.nodes[index].bus,
            generation: 1000 * (u64::from(self.nodes[index].life) + 1),
        };
        let seed = self.seed * 1000 + index as u64 + 100 * u64::from(self.nodes[index].life);
        let mut core = SwimCore::new(me, &self.timing, seed);
        let effects = core.set_members(self.members());
        self.nodes[index].core = Some(core);
        self.apply(index, effects);
        let life = self.nodes[index].life;
        self.schedule(
            self.timing.announce_every,
            Ev::Announce { node: index, life },
        );
    }

    fn kill(&mut self, index: usize) {
        self.nodes[index].core = None;
        self.nodes[index].life += 1;
    }

    fn partition(&mut self, side: &[usize]) {
        for &a in side {
            for b in (0..self.nodes.len()).filter(|b| !side.contains(b)) {
                self.cut.insert((a.min(b), a.max(b)));
            }
        }
    }

    fn schedule(&mut self, after: Duration, ev: Ev) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Reverse((self.now + after, seq)));
        self.pending.insert(seq, ev);
    }

    fn apply(&mut self, from: usize, effects: Effects) {
        for (after, timer) in effects.timers {
            let life = self.nodes[from].life;
            self.schedule(
                after,
                Ev::Timer {
                    node: from,
                    life,
                    timer,
                },
            );
        }
        for (to, data) in effects.datagrams {
            let dst = self.nodes.iter().position(|slot| slot.bus == to);
            let cut = dst.is_some_and(|dst| self.cut.contains(&(from.min(dst), from.max(dst))));
            let lost = self.loss > 0.0 && self.rng.random_bool(self.loss);
            if !cut && !lost {
                let latency = Duration::from_micros(self.rng.random_range(200..3000));
                self.schedule(latency, Ev::Deliver { to, data });
            }
        }
        for event in effects.events {
            self.log.push((self.now, from, event));
        }
    }

    fn run_for(&mut self, span: Duration) {
        let end = self.now + span;
        while let Some(&Reverse((at, seq))) = self.queue.peek() {
            if at > end {
                break;
            }
            self.queue.pop();
            self.now = at;
            let ev = self.pending.remove(&seq).expect("scheduled");
            match ev {
                Ev::Deliver { to, data } => {
                    let Some(index) = self.nodes.iter().position(|slot| slot.bus == to) else {
                        continue;
                    };
                    if let Some(core) = self.nodes[index].core.as_mut() {
                        let effects = core.handle_datagram(&data);
                        self.apply(index, effects);
                    }
                }
                Ev::Timer { node, life, timer } => {
                    if self.nodes[node].life == life
                        && let Some(core) = self.nodes[node].core.as_mut()
                    {
                        let effects = core.handle_timer(timer);
                        self.apply(node, effects);
                    }
                }
                Ev::Announce { node, life } => {
                    if self.nodes[node].life == life
                        && let Some(core) = self.nodes[node].core.as_mut()
                    {
                        let effects = core.announce_missing();
                        self.apply(node, effects);
                        self.schedule(self.timing.announce_every, Ev::Announce { node, life });
                    }
                }
            }
        }
        self.now = end;
    }

    /// When `observer` first reported `event` at or after `since`.
    fn first(&self, observer: usize, event: &MemberEvent, since: Duration) -> Option<Duration> {
        self.log
            .iter()
            .find(|(at, who, seen)| *at >= since && *who == observer && seen == event)
            .map(|(at, _, _)| *at)
    }

    /// The last event `observer` reported about `about`.
    fn last(&self, observer: usize, about: usize) -> Option<&MemberEvent> {
        self.log
            .iter()
            .rev()
            .find(|(_, who, event)| *who == observer && *event.node() == node_id(about))
            .map(|(_, _, event)| event)
    }

    fn downs(&self) -> usize {
        self.log
            .iter()
            .filter(|(_, _, event)| matches!(event, MemberEvent::Down(_)))
            .count()
    }

    /// Every pair of live nodes sees the other up.
    fn assert_converged(&self, live: &[usize]) {
        for &observer in live {
            for &about in live.iter().filter(|&&about| about != observer) {
                assert_eq!(
                    self.last(observer, about),
                    Some(&MemberEvent::Up(node_id(about))),
                    "seed {}: node {observer} does not see node {about} up",
                    self.seed
                );
            }
        }
    }
}

#[test]
fn members_listed_by_the_topology_find_each_other() {
    for seed in SEEDS {
        let mut sim = Sim::new(5, seed);
        sim.run_for(sim.timing.node_timeout);
        sim.assert_converged(&[0, 1, 2, 3, 4]);
        assert_eq!(sim.downs(), 0, "seed {seed}");
    }
}

#[test]
fn a_killed_member_is_reported_down_by_every_survivor_within_the_node_timeout() {
    // Deterministic up to four nodes (module docs); larger clusters are probabilistic, and
    // these seeds show the common case.
    for (count, seeds) in [(3, SEEDS), (4, SEEDS), (8, 1..4), (16, 1..3)] {
        for seed in seeds {
            let mut sim = Sim::new(count, seed);
            sim.run_for(3 * sim.timing.node_timeout);
            sim.assert_converged(&(0..count).collect::<Vec<_>>());
            let killed_at = sim.now;
            sim.kill(0);
            sim.run_for(sim.timing.node_timeout);
            for survivor in 1..count {
                let down = sim.first(survivor, &MemberEvent::Down(node_id(0)), killed_at);
                assert!(
                    down.is_some(),
                    "seed {seed}, {count} nodes: node {survivor} did not report node 0 down within {:?}",
                    sim.timing.node_timeout
                );
            }
            // Nobody else was harmed.
            assert_eq!(sim.downs(), count - 1, "seed {seed}, {count} nodes");
        }
    }
}

#[test]
fn an_isolated_member_is_reported_down_by_the_majority_and_sees_the_others_down() {
    for seed in SEEDS {
        let mut sim = Sim::new(5, seed);
        sim.run_for(3 * sim.timing.node_timeout);
        sim.assert_converged(&[0, 1, 2, 3, 4]);
        let cut_at = sim.now;
        sim.partition(&[4]);
        sim.run_for(sim.timing.node_timeout);
        for survivor in 0..4 {
            assert!(
                sim.first(survivor, &MemberEvent::Down(node_id(4)), cut_at)
                    .is_some(),
                "seed {seed}: node {survivor} did not report the isolated node down"
            );
        }
        // The isolated node hears no gossip: it must probe each of the four itself, one per
        // period, so it gets a second node timeout.
        sim.run_for(sim.timing.node_timeout);
        for other in 0..4 {
            assert!(
                sim.first(4, &MemberEvent::Down(node_id(other)), cut_at)
                    .is_some(),
                "seed {seed}: the isolated node did not report node {other} down"
            );
            // The majority kept each other.
            for observer in (0..4).filter(|&observer| observer != other) {
                assert_eq!(
                    sim.last(observer, other),
                    Some(&MemberEvent::Up(node_id(other))),
                    "seed {seed}: node {observer} lost node {other} in the majority"
                );
            }
        }
        // Healed: the re-announce to listed members brings everyone back.
        sim.cut.clear();
        sim.run_for(3 * sim.timing.node_timeout);
        sim.assert_converged(&[0, 1, 2, 3, 4]);
    }
}

#[test]
fn a_member_that_leaves_is_reported_down_before_suspicion_could() {
    for seed in SEEDS {
        let mut sim = Sim::new(3, seed);
        sim.run_for(3 * sim.timing.node_timeout);
        let left_at = sim.now;
        let effects = sim.nodes[2].core.as_mut().unwrap().leave();
        sim.apply(2, effects);
        sim.kill(2);
        // A suspicion takes a probe period and the suspicion time at least.
        sim.run_for(sim.timing.probe_period);
        for survivor in 0..2 {
            assert!(
                sim.first(survivor, &MemberEvent::Down(node_id(2)), left_at)
                    .is_some(),
                "seed {seed}: node {survivor} did not hear that node 2 left"
            );
        }
        assert_eq!(
            sim.log
                .iter()
                .filter(|(_, _, e)| matches!(e, MemberEvent::Suspect(_)))
                .count(),
            0
        );
    }
}

#[test]
fn ten_percent_loss_causes_no_false_down() {
    for seed in SEEDS {
        let mut sim = Sim::new(5, seed);
        sim.loss = 0.1;
        // 300 probe periods per node.
        sim.run_for(60 * sim.timing.node_timeout / 2);
        let suspicions = sim
            .log
            .iter()
            .filter(|(_, _, event)| matches!(event, MemberEvent::Suspect(_)))
            .count();
        // Loss does make suspects (about 35 a run); suspicion is what keeps them from going down.
        assert!(suspicions > 0, "seed {seed}: the loss did not bite");
        assert_eq!(sim.downs(), 0, "seed {seed}: {:?}", sim.log);
        // At the end of a lossy run someone may be suspect; once the loss stops, all are up.
        sim.loss = 0.0;
        sim.run_for(sim.timing.node_timeout);
        sim.assert_converged(&[0, 1, 2, 3, 4]);
    }
}

#[test]
fn a_restarted_member_is_reported_up_again() {
    for seed in SEEDS {
        let mut sim = Sim::new(3, seed);
        sim.run_for(3 * sim.timing.node_timeout);
        let killed_at = sim.now;
        sim.kill(2);
        sim.run_for(sim.timing.node_timeout);
        for survivor in 0..2 {
            assert!(
                sim.first(survivor, &MemberEvent::Down(node_id(2)), killed_at)
                    .is_some()
            );
        }
        // Same id, same address, a higher generation: back within an announce period or two.
        let restarted_at = sim.now;
        sim.start(2);
        sim.run_for(2 * sim.timing.node_timeout);
        for survivor in 0..2 {
            assert!(
                sim.first(survivor, &MemberEvent::Up(node_id(2)), restarted_at)
                    .is_some(),
                "seed {seed}: node {survivor} did not see node 2 come back"
            );
        }
        sim.assert_converged(&[0, 1, 2]);
    }
}

#[test]
fn a_member_restarted_on_another_address_replaces_its_old_life() {
    for seed in SEEDS {
        let mut sim = Sim::new(3, seed);
        sim.run_for(3 * sim.timing.node_timeout);
        sim.kill(2);
        // Restarted before anyone noticed, somewhere else: the topology lists the new address.
        sim.nodes[2].bus = bus(2, 18000);
        let members = sim.members();
        sim.start(2);
        for survivor in 0..2 {
            let effects = sim.nodes[survivor]
                .core
                .as_mut()
                .unwrap()
                .set_members(members.clone());
            sim.apply(survivor, effects);
        }
        sim.run_for(2 * sim.timing.node_timeout);
        sim.assert_converged(&[0, 1, 2]);
        for survivor in 0..2 {
            let core = sim.nodes[survivor].core.as_ref().unwrap();
            let known = core.active().find(|id| id.node == node_id(2));
            assert_eq!(known.map(|id| id.bus), Some(bus(2, 18000)), "seed {seed}");
        }
    }
}
