//! The SWIM state machine without I/O: foca plus what dcache needs around it (member events,
//! announcing to the members the topology lists).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use foca::{Foca, NoCustomBroadcast, Notification, PostcardCodec, Runtime, State};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{MemberEvent, SwimId, Timing};
use crate::topology::NodeId;

/// A timer foca asked for; give it back to [`SwimCore::handle_timer`] when it is due.
pub type Timer = foca::Timer<SwimId>;

/// What one step of the core asks its driver to do.
#[derive(Debug, Default)]
pub struct Effects {
    /// Datagrams to send, in order.
    pub datagrams: Vec<(SocketAddr, Vec<u8>)>,
    /// Timers to arm: hand each back after its delay.
    pub timers: Vec<(Duration, Timer)>,
    /// What changed about other members, in order.
    pub events: Vec<MemberEvent>,
}

/// One member's SWIM state machine. Every method is one step: it returns what to send, what
/// timers to arm and what changed.
pub struct SwimCore {
    foca: Foca<SwimId, PostcardCodec, StdRng, NoCustomBroadcast>,
    out: Outbox,
    /// The members the topology lists (the latest `set_members`).
    listed: BTreeMap<NodeId, SocketAddr>,
    /// The state last reported per node, to turn foca's table into events.
    reported: BTreeMap<NodeId, State>,
}

impl SwimCore {
    /// A member that knows no one yet. `generation` must exceed the one of this node's previous
    /// life (the driver uses the wall clock); `seed` drives foca's random choices.
    #[must_use]
    pub fn new(me: SwimId, timing: &Timing, seed: u64) -> Self {
        Self {
            foca: Foca::new(
                me,
                timing.foca_config(),
                StdRng::seed_from_u64(seed),
                PostcardCodec,
            ),
            out: Outbox::default(),
            listed: BTreeMap::new(),
            reported: BTreeMap::new(),
        }
    }

    /// This member's current identity (its generation moves on when it rejoins).
    #[must_use]
    pub fn identity(&self) -> &SwimId {
        self.foca.identity()
    }

    /// The members foca counts as alive or suspect now.
    pub fn active(&self) -> impl Iterator<Item = &SwimId> {
        self.foca.iter_members().map(foca::Member::id)
    }

    /// A datagram from the bus. Garbage and stale datagrams are dropped (logged at debug).
    pub fn handle_datagram(&mut self, data: &[u8]) -> Effects {
        let result = self.foca.handle_data(data, &mut self.out);
        self.finish("datagram", result)
    }

    /// A timer from an earlier [`Effects::timers`] is due.
    pub fn handle_timer(&mut self, timer: Timer) -> Effects {
        let result = self.foca.handle_timer(timer, &mut self.out);
        self.finish("timer", result)
    }

    /// The members the topology lists: announce to those not alive in SWIM, so that the SWIM
    /// membership follows the agreed topology. Our own id may be in the list.
    pub fn set_members(&mut self, members: Vec<(NodeId, SocketAddr)>) -> Effects {
        self.listed = members.into_iter().collect();
        self.announce_missing()
    }

    /// Announce to every listed member that is not alive here (unknown, or down): how a new
    /// member is found, and how a healed partition or a restarted node is found again. The
    /// driver calls it every [`Timing::announce_every`].
    pub fn announce_missing(&mut self) -> Effects {
        let me = self.foca.identity().node.clone();
        let missing: Vec<SwimId> = self
            .listed
            .iter()
            .filter(|(id, _)| **id != me && !self.is_active(id))
            .map(|(id, bus)| SwimId {
                node: id.clone(),
                bus: *bus,
                // Any generation reaches the node: an announce is accepted by whoever holds
                // the node id, and its answer carries its real identity.
                generation: 0,
            })
            .collect();
        let mut result = Ok(());
        for dst in missing {
            result = result.and(self.foca.announce(dst, &mut self.out));
        }
        self.finish("announce", result)
    }

    /// Leave the cluster: tell a few members this identity is down, so they report it at once
    /// instead of after the node timeout. The core is inert afterwards.
    pub fn leave(&mut self) -> Effects {
        let result = self.foca.leave_cluster(&mut self.out);
        self.finish("leave", result)
    }

    fn is_active(&self, node: &str) -> bool {
        matches!(self.reported.get(node), Some(State::Alive | State::Suspect))
    }

    fn finish(&mut self, step: &str, result: Result<(), foca::Error>) -> Effects {
        if let Err(error) = result {
            tracing::debug!(step, %error, "swim step failed");
        }
        let mut effects = Effects {
            datagrams: std::mem::take(&mut self.out.datagrams),
            timers: std::mem::take(&mut self.out.timers),
            events: Vec::new(),
        };
        self.diff(&mut effects.events);
        effects
    }

    /// Events from the change in foca's table since the last step. foca notifies up and down
    /// but not suspicion, so the table is the one source for all three (a few dozen entries).
    fn diff(&mut self, events: &mut Vec<MemberEvent>) {
        let me = &self.foca.identity().node;
        let mut seen = BTreeMap::new();
        for member in self.foca.iter_membership_state() {
            let node = &member.id().node;
            // Our own previous identity appears here, down, after a rejoin.
            if node != me {
                seen.insert(node.clone(), member.state());
            }
        }
        for (node, &now) in &seen {
            let before = self.reported.get(node).copied();
            match (before, now) {
                (None | Some(State::Down), State::Alive) | (Some(State::Suspect), State::Alive) => {
                    events.push(MemberEvent::Up(node.clone()));
                }
                (None | Some(State::Down), State::Suspect) => {
                    events.push(MemberEvent::Up(node.clone()));
                    events.push(MemberEvent::Suspect(node.clone()));
                }
                (Some(State::Alive), State::Suspect) => {
                    events.push(MemberEvent::Suspect(node.clone()));
                }
                (Some(State::Alive | State::Suspect), State::Down) => {
                    events.push(MemberEvent::Down(node.clone()));
                }
                _ => {}
            }
        }
        // foca forgets only members that are down already; anything else vanishing is down too.
        for (node, before) in &self.reported {
            if !seen.contains_key(node) && *before != State::Down {
                events.push(MemberEvent::Down(node.clone()));
            }
        }
        self.reported = seen;
    }
}

/// foca's `Runtime`: collects what a step asks for.
#[derive(Default)]
struct Outbox {
    datagrams: Vec<(SocketAddr, Vec<u8>)>,
    timers: Vec<(Duration, Timer)>,
}

impl Runtime<SwimId> for Outbox {
    fn notify(&mut self, notification: Notification<'_, SwimId>) {
        // Member changes come from the table diff; these are about us.
        match notification {
            Notification::Defunct => tracing::warn!("swim: declared down, cannot rejoin"),
            Notification::Rejoin(id) => {
                tracing::info!(generation = id.generation, "swim: declared down, rejoined");
            }
            Notification::Idle => tracing::debug!("swim: no member alive"),
            Notification::Active => tracing::debug!("swim: known by the cluster"),
            _ => {}
        }
    }

    fn send_to(&mut self, to: SwimId, data: &[u8]) {
        self.datagrams.push((to.bus, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer, after: Duration) {
        self.timers.push((after, event));
    }
}
