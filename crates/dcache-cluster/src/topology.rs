//! The topology: epoch, members, replication settings and the slot table, changed only by
//! [`Change`]s applied in the order the Raft log gives them.
//!
//! Two tables: `slots` says who serves each slot now, as an ordered replica set (primary first);
//! `target` (when some slots are to move) says where they are going. A join or a leave computes
//! a new target with [`Placement::rebalance`] from the current table, so a join takes exactly
//! the newcomer's quota and a leave gives away exactly the leaver's slots. Migration then moves
//! slots batch by batch and commits each batch with [`Change::Moved`], which makes `slots` take
//! the target's sets for that batch.
//!
//! A set has `settings.replicas + 1` positions; those no member fills are vacant and come last
//! (fewer online members than copies, or a failed member cut out). A failure does not wait for a
//! migration: the failed node is cut out of every set at once, the survivors move up (the first
//! replica of a slot whose primary failed becomes its primary: that is the failover), and the
//! plan refills the vacancies by migration from the new primaries. A slot with no survivor goes
//! to the online members at once, empty (a cache prefers misses to errors).
//!
//! `apply` is deterministic and either changes the topology and bumps the epoch, or leaves it as
//! it was and says why: nodes that apply the same log agree.

use std::collections::BTreeMap;

use dcache_placement::{Member, Placement, SLOTS};
use serde::{Deserialize, Serialize};

pub use crate::settings::{MAX_REPLICAS, Settings, SettingsError, Strategy, UnknownStrategy};

/// A node's id: 40 lowercase hex characters, as Redis Cluster's node ids.
pub type NodeId = String;

/// A member of the cluster as everyone sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    /// The address clients use (an IP address or a host name).
    pub host: String,
    /// The client (Redis protocol) port.
    pub port: u16,
    /// The cluster-bus port (failure detection and Raft).
    pub bus_port: u16,
    pub state: NodeState,
}

/// Where a node is in its life in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeState {
    /// Serves its slots and takes its share of new ones.
    Online,
    /// Handing its slots off before it goes; takes no new ones.
    Leaving,
    /// Declared failed: holds no slots; listed until it comes back or is forgotten.
    Failed,
}

/// One committed change to the topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A node joins, or a known node comes back (same id, maybe a new address). The first node
    /// of an empty cluster takes every slot.
    Join(Node),
    /// A node hands off its slots and then leaves: it is removed when it holds none.
    Leave(NodeId),
    /// A node is declared failed: it is cut out of every replica set at once (its replicas take
    /// over), and the slots it held alone go to the survivors, empty.
    Fail(NodeId),
    /// A node that holds no slots is removed from the member list.
    Forget(NodeId),
    /// These slots have their target replica set now: `to`, their primary in the target, serves
    /// them, and the target's new members have been given a copy.
    Moved { to: NodeId, slots: Vec<u16> },
    /// Recompute the target from the current table (after members changed weight, say, or to
    /// finish a plan that was interrupted).
    Rebalance,
    /// New replication settings. A new replica count widens every set with vacant positions or
    /// cuts the last replicas off, and plans a target that fills the vacancies.
    Set(Settings),
}

/// Why a change was not applied. The topology is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ChangeError {
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    #[error("node {0} still serves slots")]
    StillServing(NodeId),
    #[error("slot {slot} is not moving to {to}")]
    NotMoving { slot: u16, to: NodeId },
    #[error("slot {0} is out of range")]
    BadSlot(u16),
    #[error("no node is online to take the slots")]
    NoSurvivor,
    #[error("{0}")]
    Settings(#[from] SettingsError),
}

/// Epoch, members, settings and slot tables.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Topology {
    /// Bumped by every applied change.
    pub epoch: u64,
    pub nodes: BTreeMap<NodeId, Node>,
    /// Who serves each slot now, primary first; `None` before the first node joins. Every set
    /// has at least one member, none of them failed.
    pub slots: Option<Placement>,
    /// Where slots are moving; `None` when every slot is where it should be.
    pub target: Option<Placement>,
    /// Snapshots from before replication have none: they get the defaults (no replicas).
    #[serde(default)]
    pub settings: Settings,
    /// Slots that a failure gave to a new primary with no surviving copy, with the epoch of that
    /// change. What the new primary holds there is at most part of a move that never committed,
    /// to be dropped before it serves the slot. A node can skip epochs (it follows the newest
    /// topology, and may be sent a snapshot), so it tells such a rescue from a move committed in
    /// an epoch it did not see by this record, not by comparing with the last topology it saw.
    /// A committed move of the slot clears its entry.
    #[serde(default)]
    pub rescued: BTreeMap<u16, u64>,
}

impl Topology {
    /// Applies `change` and bumps the epoch, or explains why not and changes nothing.
    ///
    /// # Errors
    /// See [`ChangeError`].
    pub fn apply(&mut self, change: &Change) -> Result<(), ChangeError> {
        let mut next = self.clone();
        next.apply_in_place(change)?;
        next.epoch = self.epoch + 1;
        *self = next;
        Ok(())
    }

    fn apply_in_place(&mut self, change: &Change) -> Result<(), ChangeError> {
        match change {
            Change::Join(node) => {
                let mut node = node.clone();
                node.state = NodeState::Online;
                self.nodes.insert(node.id.clone(), node.clone());
                if self.slots.is_none() {
                    let only = [Member::new(node.id, 1)];
                    self.slots =
                        Some(Placement::compute(&only, self.rf()).expect("one member places"));
                } else {
                    self.plan();
                }
            }
            Change::Leave(id) => {
                self.node_mut(id)?.state = NodeState::Leaving;
                self.plan();
                self.remove_drained();
            }
            Change::Fail(id) => self.fail(id)?,
            Change::Forget(id) => {
                self.node_mut(id)?;
                if self.serves_any(id) {
                    return Err(ChangeError::StillServing(id.clone()));
                }
                self.nodes.remove(id);
                self.plan();
            }
            Change::Moved { to, slots } => self.moved(to, slots)?,
            Change::Rebalance => self.plan(),
            Change::Set(settings) => {
                settings.validate()?;
                let resized = settings.replicas != self.settings.replicas;
                self.settings = *settings;
                if resized {
                    if let Some(slots) = &self.slots {
                        self.slots = Some(slots.with_rf(self.rf()).expect("rf is at least 1"));
                    }
                    self.plan();
                    self.remove_drained();
                }
            }
        }
        Ok(())
    }

    /// Positions of every replica set: the primary and `settings.replicas` replicas.
    #[must_use]
    pub fn rf(&self) -> usize {
        self.settings.copies()
    }

    fn node_mut(&mut self, id: &str) -> Result<&mut Node, ChangeError> {
        self.nodes
            .get_mut(id)
            .ok_or_else(|| ChangeError::UnknownNode(id.to_owned()))
    }

    /// The members in `state`, as placement sees them.
    fn members_in(&self, state: NodeState) -> Vec<Member> {
        self.nodes
            .values()
            .filter(|n| n.state == state)
            .map(|n| Member::new(n.id.clone(), 1))
            .collect()
    }

    /// Sets `target` to where the online members should hold the slots, from the current table.
    fn plan(&mut self) {
        let Some(slots) = &self.slots else { return };
        let online = self.members_in(NodeState::Online);
        self.target = match slots.rebalance(&online, self.rf()) {
            Ok(target) if (0..SLOTS as u16).any(|s| !slots.same_set(&target, s)) => Some(target),
            // Settled, or no one online to move slots to.
            _ => None,
        };
    }

    fn fail(&mut self, id: &str) -> Result<(), ChangeError> {
        self.node_mut(id)?.state = NodeState::Failed;
        if self.serves_any(id) {
            let slots = self.slots.as_ref().expect("a node serves slots");
            // The survivors of each set move up: a replica of a slot whose primary failed
            // becomes its primary, and keeps serving what it holds.
            let cut = slots.without(id);
            let orphaned = |s: u16| cut.try_primary(s).is_none();
            if (0..SLOTS as u16).any(orphaned) {
                let mut online = self.members_in(NodeState::Online);
                if online.is_empty() {
                    // Only leaving nodes are left: they take the slots back rather than let
                    // them point at a dead node (they hand them on when another node joins).
                    online = self.members_in(NodeState::Leaving);
                }
                if online.is_empty() {
                    return Err(ChangeError::NoSurvivor);
                }
                let rescue = cut
                    .rebalance(&online, self.rf())
                    .expect("online members are valid");
                let epoch = self.epoch + 1;
                for slot in (0..SLOTS as u16).filter(|&s| orphaned(s)) {
                    self.rescued.insert(slot, epoch);
                }
                // Only the slots left with no copy change hands now; the rest of the plan
                // migrates.
                self.slots = Some(cut.merge(&rescue, orphaned));
            } else {
                self.slots = Some(cut);
            }
        }
        self.plan();
        Ok(())
    }

    fn moved(&mut self, to: &str, batch: &[u16]) -> Result<(), ChangeError> {
        let (Some(slots), Some(target)) = (&self.slots, &self.target) else {
            let slot = batch.first().copied().unwrap_or(0);
            return Err(ChangeError::NotMoving {
                slot,
                to: to.to_owned(),
            });
        };
        for &slot in batch {
            if usize::from(slot) >= SLOTS {
                return Err(ChangeError::BadSlot(slot));
            }
            if target.primary(slot).id != to || slots.same_set(target, slot) {
                return Err(ChangeError::NotMoving {
                    slot,
                    to: to.to_owned(),
                });
            }
        }
        let mut take = vec![false; SLOTS];
        for &slot in batch {
            take[usize::from(slot)] = true;
            self.rescued.remove(&slot);
        }
        let merged = slots.merge(target, |s| take[usize::from(s)]);
        self.target = (0..SLOTS as u16)
            .any(|s| !merged.same_set(target, s))
            .then(|| target.clone());
        self.slots = Some(merged);
        self.remove_drained();
        Ok(())
    }

    /// Leaving nodes that hold no slots any more are gone.
    fn remove_drained(&mut self) {
        let drained: Vec<NodeId> = self
            .nodes
            .values()
            .filter(|n| n.state == NodeState::Leaving && !self.serves_any(&n.id))
            .map(|n| n.id.clone())
            .collect();
        for id in drained {
            self.nodes.remove(&id);
        }
    }

    /// Whether a failure gave `slot` to its primary with no surviving copy after `epoch` (see
    /// [`Topology::rescued`]), and no committed move of it followed.
    #[must_use]
    pub fn rescued_after(&self, slot: u16, epoch: u64) -> bool {
        self.rescued.get(&slot).is_some_and(|&e| e > epoch)
    }

    /// Whether `id` holds any slot now, as primary or replica.
    #[must_use]
    pub fn serves_any(&self, id: &str) -> bool {
        self.slots
            .as_ref()
            .is_some_and(|p| (0..SLOTS as u16).any(|s| p.replicas(s).any(|m| m.id == id)))
    }

    /// The node that serves `slot` now (its primary), if any.
    #[must_use]
    pub fn owner(&self, slot: u16) -> Option<&Node> {
        let id = &self.slots.as_ref()?.try_primary(slot)?.id;
        self.nodes.get(id)
    }

    /// The replica set of `slot` now, primary first (vacant positions left out).
    #[must_use]
    pub fn replicas_of(&self, slot: u16) -> Vec<&Node> {
        self.slots.as_ref().map_or_else(Vec::new, |p| {
            p.replicas(slot)
                .filter_map(|m| self.nodes.get(&m.id))
                .collect()
        })
    }

    /// The position of `id` in `slot`'s replica set now (0: primary), if it is in it.
    #[must_use]
    pub fn role_of(&self, id: &str, slot: u16) -> Option<usize> {
        self.slots.as_ref()?.replicas(slot).position(|m| m.id == id)
    }

    /// The position of `id` in `slot`'s target set (0: primary), if the slot is moving and `id`
    /// is in its target set. A node keeps its copy of a slot while it is in either set.
    #[must_use]
    pub fn target_role_of(&self, id: &str, slot: u16) -> Option<usize> {
        self.target
            .as_ref()?
            .replicas(slot)
            .position(|m| m.id == id)
    }

    /// The members of `slot`'s target set that are not in its set now: each needs a copy of the
    /// slot, streamed by its current primary, before the move commits. Empty when the slot does
    /// not move, or moves only by dropping or reordering copies.
    #[must_use]
    pub fn copies_needed(&self, slot: u16) -> Vec<&Node> {
        let (Some(slots), Some(target)) = (&self.slots, &self.target) else {
            return Vec::new();
        };
        target
            .replicas(slot)
            .filter(|m| !slots.replicas(slot).any(|n| n.id == m.id))
            .filter_map(|m| self.nodes.get(&m.id))
            .collect()
    }

    /// Each slot's owner now, as an index into [`Topology::nodes`]'s order (`None`: no one).
    /// What a server builds its routing table from.
    #[must_use]
    pub fn owners(&self) -> Vec<Option<u16>> {
        let index: BTreeMap<&str, u16> = self
            .nodes
            .keys()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i as u16))
            .collect();
        (0..SLOTS as u16)
            .map(|s| {
                self.slots
                    .as_ref()
                    .and_then(|p| p.try_primary(s))
                    .and_then(|m| index.get(m.id.as_str()).copied())
            })
            .collect()
    }

    /// The slots that `from` serves now as primary and whose replica set is to change (by
    /// member or order), with their primary in the target (which may be `from` itself when only
    /// replicas change). `from` drives their move and commits it with [`Change::Moved`].
    #[must_use]
    pub fn moving_from(&self, from: &str) -> Vec<(u16, NodeId)> {
        let (Some(slots), Some(target)) = (&self.slots, &self.target) else {
            return Vec::new();
        };
        (0..SLOTS as u16)
            .filter(|&s| {
                slots.try_primary(s).is_some_and(|m| m.id == from) && !slots.same_set(target, s)
            })
            .map(|s| (s, target.primary(s).id.clone()))
            .collect()
    }

    /// How many slots are to move (their replica set now is not their set in the target).
    #[must_use]
    pub fn moving_count(&self) -> usize {
        let (Some(slots), Some(target)) = (&self.slots, &self.target) else {
            return 0;
        };
        (0..SLOTS as u16)
            .filter(|&s| !slots.same_set(target, s))
            .count()
    }

    /// Whether every slot is served by a node that is not failed.
    #[must_use]
    pub fn all_served(&self) -> bool {
        self.owners().iter().all(|o| {
            o.and_then(|i| self.nodes.values().nth(usize::from(i)))
                .is_some_and(|n| n.state != NodeState::Failed)
        })
    }

    /// How many slots each node serves now as primary, by id.
    #[must_use]
    pub fn slot_counts(&self) -> BTreeMap<NodeId, usize> {
        self.copy_counts(0)
    }

    /// How many slots each node holds now at `position` of their sets (0: primary), by id.
    #[must_use]
    pub fn copy_counts(&self, position: usize) -> BTreeMap<NodeId, usize> {
        let mut counts: BTreeMap<NodeId, usize> =
            self.nodes.keys().map(|id| (id.clone(), 0)).collect();
        if let Some(p) = &self.slots {
            for (member, n) in p.members().iter().zip(p.counts(position)) {
                if n > 0 {
                    *counts.entry(member.id.clone()).or_default() += n;
                }
            }
        }
        counts
    }
}
