//! Replication: which copies a write must reach before it is acknowledged, as a state machine
//! without I/O.
//!
//! A node keeps one ordered stream of effects per peer. Every item on a stream has an offset (1,
//! 2, 3, … per stream, as Redis's replication offset counts bytes); a peer acknowledges a prefix
//! of its stream by the offset of the last item it applied (and, in a chain, that its successors
//! hold). A write waits on the offsets of its items in the streams its strategy names:
//!
//! ```text
//!   strategy  origin (the slot's primary / head)          a copy that receives an item
//!   primary   every other copy; done when K have it       applies it, acknowledges at once
//!   quorum    every other copy; done when W-1 have it     applies it, acknowledges at once
//!             (any copy is an origin: it coordinates)
//!   chain     its successor; done when it acknowledges    applies it, sends it on to its own
//!                                                         successor, acknowledges when that did
//!                                                         (the tail at once)
//! ```
//!
//! Under `quorum` every copy of a slot coordinates the writes sent to it: its items go to every
//! other copy, the primary included, and a copy takes items of the slot from any other copy
//! ([`Layout::sends_to`]). Versions carry the writing node's id, so two coordinators' concurrent
//! writes of a key end the same on every copy: the higher version wins.
//!
//! The driver (the server) owns the sockets and the timers: it [`Replicator::submit`]s writes,
//! [`Replicator::take`]s items to send, feeds acknowledgements to [`Replicator::acked`], and tells
//! of new layouts with [`Replicator::set_layout`]. Each of them returns the writes that completed,
//! as the tokens they were submitted with.
//!
//! When the layout changes (a failover, a copy cut out of a chain), every waiting write is looked
//! at again: a copy that is gone is no longer waited for (a primary's K shrinks to the copies
//! left), and in a chain the items sent to a successor that was cut out are sent again to the new
//! successor, which may lack them. Under `quorum` a waiting write's items also go to the copies
//! the new layout adds: a new copy was filled from the slot's primary, which may lack a write
//! another copy coordinated (its items had not reached the primary before the move). Items carry
//! versions, so a copy that gets one twice keeps one.
//!
//! A stream keeps what its peer has not acknowledged, so that a broken connection resends from
//! [`Replicator::rewind`]. It keeps at most [`MAX_BACKLOG`] items: past that the oldest are
//! dropped and counted (a peer that far behind is about to be declared failed, and a returning
//! node catches up by copying whole slots).

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::topology::NodeId;

/// Items a stream keeps for a peer that has not acknowledged them.
pub const MAX_BACKLOG: usize = 1 << 20;

/// Which copies a write waits for, from the cluster's replication settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The primary acknowledges after `sync` other copies hold the write (0: at once).
    Primary { sync: usize },
    /// The coordinator (any copy) acknowledges after `write - 1` other copies hold it.
    Quorum { write: usize },
    /// The tail acknowledges, and each link after its successor did.
    Chain,
}

/// Who holds each slot: the ordered copies (primary or head first) and the strategy.
#[derive(Debug, Clone)]
pub struct Layout {
    pub mode: Mode,
    members: Vec<NodeId>,
    width: usize,
    /// `width` member indices per slot, `u16::MAX` for a vacant place (at the end of a set).
    sets: Vec<u16>,
}

const VACANT: u16 = u16::MAX;

impl Layout {
    /// A layout of `slots` slots, each with the copies `copies(slot)` returns, primary first.
    pub fn new<'a, I>(mode: Mode, slots: usize, mut copies: impl FnMut(u16) -> I) -> Layout
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut members: Vec<NodeId> = Vec::new();
        let mut index: HashMap<String, u16> = HashMap::new();
        let mut per_slot: Vec<Vec<u16>> = Vec::with_capacity(slots);
        for slot in 0..slots {
            let set = copies(slot as u16)
                .into_iter()
                .map(|id| {
                    *index.entry(id.to_owned()).or_insert_with(|| {
                        members.push(id.to_owned());
                        (members.len() - 1) as u16
                    })
                })
                .collect();
            per_slot.push(set);
        }
        let width = per_slot.iter().map(Vec::len).max().unwrap_or(0);
        let mut sets = vec![VACANT; slots * width];
        for (slot, set) in per_slot.iter().enumerate() {
            sets[slot * width..slot * width + set.len()].copy_from_slice(set);
        }
        Layout {
            mode,
            members,
            width,
            sets,
        }
    }

    /// The copies of `slot`, primary (head) first.
    pub fn copies(&self, slot: u16) -> impl Iterator<Item = &str> + '_ {
        let s = usize::from(slot) * self.width;
        self.sets
            .get(s..s + self.width)
            .unwrap_or(&[])
            .iter()
            .take_while(|&&m| m != VACANT)
            .map(|&m| self.members[usize::from(m)].as_str())
    }

    /// `id`'s place in the copies of `slot` (0: primary or head).
    #[must_use]
    pub fn position(&self, slot: u16, id: &str) -> Option<usize> {
        self.copies(slot).position(|m| m == id)
    }

    /// The copy after `id` in the chain of `slot`.
    #[must_use]
    pub fn successor(&self, slot: u16, id: &str) -> Option<&str> {
        let mut copies = self.copies(slot);
        copies.by_ref().find(|&m| m == id)?;
        copies.next()
    }

    /// Whether `from` is who sends `to` the writes of `slot`: its primary (primary), any other
    /// copy (quorum: every copy coordinates), or its predecessor in the chain. A copy applies a
    /// peer's items only from such a sender, so that a node that lost the slot (a deposed
    /// primary back from a partition, a link cut out of a chain) cannot make the copies diverge
    /// with what it queued before.
    #[must_use]
    pub fn sends_to(&self, slot: u16, from: &str, to: &str) -> bool {
        match self.mode {
            Mode::Chain => self.successor(slot, from) == Some(to),
            Mode::Primary { .. } => {
                self.position(slot, from) == Some(0) && self.position(slot, to).is_some()
            }
            Mode::Quorum { .. } => {
                from != to
                    && self.position(slot, from).is_some()
                    && self.position(slot, to).is_some()
            }
        }
    }

    /// Whether `id` coordinates client writes of `slot`: its primary (head), or under `quorum`
    /// any of its copies.
    #[must_use]
    pub fn coordinates(&self, slot: u16, id: &str) -> bool {
        match self.mode {
            Mode::Quorum { .. } => self.position(slot, id).is_some(),
            Mode::Primary { .. } | Mode::Chain => self.position(slot, id) == Some(0),
        }
    }

    /// Every member that holds a copy of some slot.
    #[must_use]
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }
}

/// How a submitted write ended, for its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every copy the strategy asks for holds it.
    Done,
    /// This node no longer holds the slot (the layout moved on): the write cannot be
    /// acknowledged from here.
    NotHere,
}

/// What [`Replicator::submit`] did with a write.
#[derive(Debug, PartialEq, Eq)]
pub enum Submitted<T> {
    /// Nothing to wait for (asynchronous, a tail, no other copies): here is the token back.
    Done(T),
    /// Waiting for acknowledgements; the id cancels it ([`Replicator::cancel`]).
    Waiting(u64),
    /// This node holds no copy of a slot of the write.
    NotHere(T),
}

/// One item a write waits for on one stream.
#[derive(Debug)]
struct Part<E> {
    peer: NodeId,
    offset: u64,
    done: bool,
    slot: u16,
    item: E,
}

/// The items of one slot of a write, and which of their peers must have them: the `required`
/// peers when named (a primary's first K replicas, a chain's successor), else any `need`.
#[derive(Debug)]
struct Group<E> {
    slot: u16,
    parts: Vec<Part<E>>,
    /// The write's items of this slot (under `quorum`, sent to copies a new layout adds).
    items: Vec<E>,
    need: usize,
    required: Option<Vec<NodeId>>,
}

impl<E> Group<E> {
    /// Whether `peer` was sent every item of the group and acknowledged them all.
    fn holds(&self, peer: &str) -> bool {
        self.parts.iter().any(|p| p.peer == peer)
            && self.parts.iter().all(|p| p.peer != peer || p.done)
    }

    fn satisfied(&self) -> bool {
        if let Some(required) = &self.required {
            return required.iter().all(|peer| self.holds(peer));
        }
        let mut peers: Vec<&str> = self
            .parts
            .iter()
            .filter(|p| p.done)
            .map(|p| p.peer.as_str())
            .collect();
        peers.sort_unstable();
        peers.dedup();
        // A peer counts once it holds every item of the group.
        let holding = peers
            .iter()
            .filter(|&&peer| self.parts.iter().all(|p| p.peer != peer || p.done))
            .count();
        holding >= self.need
    }
}

#[derive(Debug)]
struct Waiter<E, T> {
    token: T,
    groups: Vec<Group<E>>,
}

/// One peer's stream.
#[derive(Debug)]
struct Stream<E> {
    /// Offset of the last item queued.
    queued: u64,
    /// Offset of the last item handed to the driver to send.
    sent: u64,
    /// Offset of the last item the peer acknowledged.
    acked: u64,
    /// Items after `acked`: `backlog[0]` has offset `acked + 1 + dropped_since`.
    backlog: VecDeque<E>,
    /// Offset of `backlog[0]`.
    first: u64,
    /// Writes waiting on this stream: (offset, waiter id), by offset.
    watchers: VecDeque<(u64, u64)>,
    /// The last offset dropped from a full backlog: the peer never got it, so an
    /// acknowledgement past it does not count for the writes at or below it.
    dropped_upto: u64,
}

impl<E> Default for Stream<E> {
    fn default() -> Self {
        Stream {
            queued: 0,
            sent: 0,
            acked: 0,
            backlog: VecDeque::new(),
            first: 1,
            watchers: VecDeque::new(),
            dropped_upto: 0,
        }
    }
}

/// A peer's stream as [`Replicator::streams`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    pub peer: NodeId,
    /// Items queued for the peer so far.
    pub queued: u64,
    /// Items the peer acknowledged.
    pub acked: u64,
}

/// One node's replication state. `E` is an item (an encoded effect); `T` is the token a
/// submitted write is completed with.
#[derive(Debug)]
pub struct Replicator<E, T> {
    me: NodeId,
    layout: Layout,
    streams: BTreeMap<NodeId, Stream<E>>,
    waiters: BTreeMap<u64, Waiter<E, T>>,
    next_waiter: u64,
    /// Items dropped from full backlogs.
    pub dropped: u64,
}

impl<E: Clone, T> Replicator<E, T> {
    #[must_use]
    pub fn new(me: NodeId, layout: Layout) -> Self {
        Replicator {
            me,
            layout,
            streams: BTreeMap::new(),
            waiters: BTreeMap::new(),
            next_waiter: 0,
            dropped: 0,
        }
    }

    #[must_use]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// A write applied here: `items` (each with its slot) go to the copies the strategy names.
    /// `origin` is true for a client's write (this node is the slot's primary, head or
    /// coordinator) and false for items received from another copy (a chain's link sends them
    /// on; other strategies' copies only apply them).
    pub fn submit(&mut self, token: T, items: Vec<(u16, E)>, origin: bool) -> Submitted<T> {
        self.submit_marked(token, items, origin, &mut Vec::new())
    }

    /// [`Replicator::submit`], also noting in `marks` each peer the items were queued for, with
    /// the offset of the last one (an entry per peer, updated in place).
    pub fn submit_marked(
        &mut self,
        token: T,
        items: Vec<(u16, E)>,
        origin: bool,
        marks: &mut Vec<(NodeId, u64)>,
    ) -> Submitted<T> {
        let mut groups: Vec<Group<E>> = Vec::new();
        for (slot, item) in items {
            let Some(position) = self.layout.position(slot, &self.me) else {
                return Submitted::NotHere(token);
            };
            let (peers, need): (Vec<NodeId>, usize) = match self.layout.mode {
                Mode::Chain => match self.layout.successor(slot, &self.me) {
                    Some(next) => (vec![next.to_owned()], 1),
                    None => (Vec::new(), 0),
                },
                Mode::Primary { .. } | Mode::Quorum { .. } if !origin => (Vec::new(), 0),
                Mode::Primary { sync } => (self.others(slot, position), sync),
                Mode::Quorum { write } => (self.others(slot, position), write.saturating_sub(1)),
            };
            let need = need.min(peers.len());
            // A primary waits for its first K replicas, in order, not any K: the first surviving
            // replica, which a failover promotes, then holds every acknowledged write. A chain
            // waits for its successor. A quorum takes any W - 1.
            let required = match self.layout.mode {
                Mode::Quorum { .. } => None,
                Mode::Primary { .. } | Mode::Chain => Some(peers[..need].to_vec()),
            };
            let group = match groups.iter_mut().find(|g| g.slot == slot) {
                Some(group) => group,
                None => {
                    groups.push(Group {
                        slot,
                        parts: Vec::new(),
                        items: Vec::new(),
                        need,
                        required,
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            if matches!(self.layout.mode, Mode::Quorum { .. }) {
                group.items.push(item.clone());
            }
            for peer in peers {
                let offset = self.queue(&peer, item.clone());
                match marks.iter_mut().find(|(p, _)| *p == peer) {
                    Some(mark) => mark.1 = offset,
                    None => marks.push((peer.clone(), offset)),
                }
                group.parts.push(Part {
                    peer,
                    offset,
                    done: false,
                    slot,
                    item: item.clone(),
                });
            }
        }
        groups.retain(|g| g.need > 0);
        if groups.is_empty() {
            return Submitted::Done(token);
        }
        let id = self.next_waiter;
        self.next_waiter += 1;
        for group in &groups {
            for part in &group.parts {
                self.watch(&part.peer, part.offset, id);
            }
        }
        self.waiters.insert(id, Waiter { token, groups });
        Submitted::Waiting(id)
    }

    /// The other copies of `slot`, in order, for a write made at `position`.
    fn others(&self, slot: u16, position: usize) -> Vec<NodeId> {
        self.layout
            .copies(slot)
            .enumerate()
            .filter(|&(i, _)| i != position)
            .map(|(_, m)| m.to_owned())
            .collect()
    }

    /// Appends `item` to `peer`'s stream; returns its offset.
    fn queue(&mut self, peer: &str, item: E) -> u64 {
        let stream = self.streams.entry(peer.to_owned()).or_default();
        stream.queued += 1;
        stream.backlog.push_back(item);
        if stream.backlog.len() > MAX_BACKLOG {
            stream.backlog.pop_front();
            stream.dropped_upto = stream.first;
            stream.first += 1;
            stream.sent = stream.sent.max(stream.first - 1);
            self.dropped += 1;
        }
        stream.queued
    }

    fn watch(&mut self, peer: &str, offset: u64, waiter: u64) {
        let stream = self.streams.entry(peer.to_owned()).or_default();
        // Offsets grow per stream, except for re-sent items after a layout change, which are
        // new items with new offsets too: the queue stays sorted.
        stream.watchers.push_back((offset, waiter));
    }

    /// Up to `max` items for `peer` that were not handed out yet, with the offset of the first;
    /// `None` when there is nothing to send.
    pub fn take(&mut self, peer: &str, max: usize) -> Option<(u64, Vec<E>)> {
        let stream = self.streams.get_mut(peer)?;
        if stream.sent >= stream.queued {
            return None;
        }
        let from = stream.sent + 1;
        let skip = (from - stream.first) as usize;
        let items: Vec<E> = stream
            .backlog
            .iter()
            .skip(skip)
            .take(max)
            .cloned()
            .collect();
        stream.sent += items.len() as u64;
        Some((from, items))
    }

    /// Takes back the items handed out after `offset` (they did not fit in one request): the
    /// next [`Replicator::take`] starts after `offset`.
    pub fn rewind_to(&mut self, peer: &str, offset: u64) {
        if let Some(stream) = self.streams.get_mut(peer) {
            stream.sent = offset.clamp(stream.acked.max(stream.first - 1), stream.sent);
        }
    }

    /// The item at `offset` of `peer`'s stream, while it is unacknowledged and in the backlog.
    #[must_use]
    pub fn item(&self, peer: &str, offset: u64) -> Option<&E> {
        let stream = self.streams.get(peer)?;
        if offset <= stream.acked || offset < stream.first || offset > stream.queued {
            return None;
        }
        stream.backlog.get((offset - stream.first) as usize)
    }

    /// Puts `item` in place of the item at `offset` of `peer`'s stream (one the peer could not
    /// apply: a delta whose base it does not hold, replaced by the key's whole state). The
    /// offset stays, so every write waiting on it (and every `WAIT` mark) waits for the new
    /// item. False when the item is acknowledged or no longer in the backlog.
    pub fn replace(&mut self, peer: &str, offset: u64, item: E) -> bool {
        let Some(stream) = self.streams.get_mut(peer) else {
            return false;
        };
        if offset <= stream.acked || offset < stream.first || offset > stream.queued {
            return false;
        }
        let Some(slot) = stream.backlog.get_mut((offset - stream.first) as usize) else {
            return false;
        };
        *slot = item.clone();
        // A waiting write keeps its items to send to copies a new layout adds: the newest.
        for waiter in self.waiters.values_mut() {
            for group in &mut waiter.groups {
                for part in &mut group.parts {
                    if part.peer == peer && part.offset == offset {
                        part.item = item.clone();
                    }
                }
            }
        }
        true
    }

    /// The peers whose streams hold items not handed out yet.
    pub fn ready(&self) -> impl Iterator<Item = &str> + '_ {
        self.streams
            .iter()
            .filter(|(p, s)| s.sent < s.queued && self.layout.members.contains(*p))
            .map(|(p, _)| p.as_str())
    }

    /// After a broken connection: hand out again everything `peer` has not acknowledged.
    pub fn rewind(&mut self, peer: &str) {
        if let Some(stream) = self.streams.get_mut(peer) {
            stream.sent = stream.acked.max(stream.first - 1);
        }
    }

    /// `peer` acknowledged every item of its stream up to `offset`. Returns the writes that
    /// completed.
    pub fn acked(&mut self, peer: &str, offset: u64) -> Vec<(T, Outcome)> {
        let mut woken = Vec::new();
        if let Some(stream) = self.streams.get_mut(peer) {
            let offset = offset.min(stream.queued);
            if offset > stream.acked {
                stream.acked = offset;
                while stream.first <= offset && !stream.backlog.is_empty() {
                    stream.backlog.pop_front();
                    stream.first += 1;
                }
                stream.sent = stream.sent.max(offset);
            }
            while let Some(&(at, waiter)) = stream.watchers.front() {
                if at > stream.acked {
                    break;
                }
                stream.watchers.pop_front();
                // A write whose item was dropped before the peer got it stays waiting (until
                // its deadline, or until the layout no longer asks this peer for it).
                if at > stream.dropped_upto {
                    woken.push((at, waiter));
                }
            }
        }
        let mut done = Vec::new();
        for (at, id) in woken {
            let Some(waiter) = self.waiters.get_mut(&id) else {
                continue;
            };
            for group in &mut waiter.groups {
                for part in &mut group.parts {
                    if part.peer == peer && part.offset == at {
                        part.done = true;
                    }
                }
            }
            if waiter.groups.iter().all(Group::satisfied) {
                let waiter = self.waiters.remove(&id).expect("present");
                done.push((waiter.token, Outcome::Done));
            }
        }
        done
    }

    /// A new layout: every waiting write is looked at again (see the module docs). Returns the
    /// writes that completed or can no longer complete here.
    pub fn set_layout(&mut self, layout: Layout) -> Vec<(T, Outcome)> {
        self.layout = layout;
        let ids: Vec<u64> = self.waiters.keys().copied().collect();
        let mut done = Vec::new();
        for id in ids {
            let mut waiter = self.waiters.remove(&id).expect("listed");
            let mut lost = false;
            let mut resend: Vec<(NodeId, u16, E)> = Vec::new();
            for group in &mut waiter.groups {
                let slot = group.slot;
                let Some(position) = self.layout.position(slot, &self.me) else {
                    lost = true;
                    break;
                };
                match self.layout.mode {
                    Mode::Chain => {
                        let next = self.layout.successor(slot, &self.me).map(str::to_owned);
                        let mut kept = Vec::new();
                        for part in group.parts.drain(..) {
                            if Some(&part.peer) == next.as_ref() {
                                kept.push(part);
                            } else if let Some(next) = &next {
                                // A new successor may lack what the old one had (it was cut out
                                // before sending it on): send it again; a copy that has it
                                // keeps one.
                                resend.push((next.clone(), part.slot, part.item));
                            }
                        }
                        group.parts = kept;
                        group.need = usize::from(next.is_some());
                        group.required = Some(next.into_iter().collect());
                    }
                    Mode::Primary { sync } => {
                        // The first K replicas of the new set among those that were sent the
                        // write (a copy made since got it by migration).
                        let copies: Vec<NodeId> = self.others(slot, position);
                        group.parts.retain(|p| copies.contains(&p.peer));
                        let sent: Vec<NodeId> = copies
                            .into_iter()
                            .filter(|c| group.parts.iter().any(|p| p.peer == *c))
                            .take(sync)
                            .collect();
                        group.need = sent.len();
                        group.required = Some(sent);
                    }
                    Mode::Quorum { .. } => {
                        let copies: Vec<NodeId> = self.others(slot, position);
                        group.parts.retain(|p| copies.contains(&p.peer));
                        // A copy the layout added was filled from the primary, which may lack
                        // this write (coordinated here, its items still on their way to the
                        // primary when the move committed): send it there too.
                        for copy in &copies {
                            if !group.parts.iter().any(|p| p.peer == *copy) {
                                for item in &group.items {
                                    resend.push((copy.clone(), slot, item.clone()));
                                }
                            }
                        }
                        group.need = group.need.min(copies.len());
                        group.required = None;
                    }
                }
            }
            if lost {
                done.push((waiter.token, Outcome::NotHere));
                continue;
            }
            for (peer, slot, item) in resend {
                let offset = self.queue(&peer, item.clone());
                self.watch(&peer, offset, id);
                let group = waiter
                    .groups
                    .iter_mut()
                    .find(|g| g.slot == slot)
                    .expect("the item's group");
                group.parts.push(Part {
                    peer,
                    offset,
                    done: false,
                    slot,
                    item,
                });
            }
            if waiter.groups.iter().all(Group::satisfied) {
                done.push((waiter.token, Outcome::Done));
            } else {
                self.waiters.insert(id, waiter);
            }
        }
        // A stream to a node that holds no copy of anything keeps what it has not acknowledged
        // (and its offsets, so that a late answer from an old connection never counts for
        // items queued later), but is not sent on (`ready`) until the node holds a copy again.
        let members = self.layout.members.clone();
        self.streams
            .retain(|peer, s| members.contains(peer) || !s.watchers.is_empty());
        done
    }

    /// Gives up waiting for a write (its deadline passed); `None` when it already completed.
    pub fn cancel(&mut self, id: u64) -> Option<T> {
        self.waiters.remove(&id).map(|w| w.token)
    }

    /// Every stream's offsets.
    #[must_use]
    pub fn streams(&self) -> Vec<StreamState> {
        self.streams
            .iter()
            .map(|(peer, s)| StreamState {
                peer: peer.clone(),
                queued: s.queued,
                acked: s.acked,
            })
            .collect()
    }

    /// The offset of the last item queued for `peer` (0 if none).
    #[must_use]
    pub fn queued(&self, peer: &str) -> u64 {
        self.streams.get(peer).map_or(0, |s| s.queued)
    }

    /// The items queued for `peer` that it has not acknowledged, oldest first: what flushing the
    /// stream to it delivers (a `quorum` move waits for that at every copy).
    pub fn unacked(&self, peer: &str) -> impl Iterator<Item = &E> + '_ {
        self.streams
            .get(peer)
            .into_iter()
            .flat_map(|s| s.backlog.iter())
    }

    /// The offset `peer` acknowledged (0 if none).
    #[must_use]
    pub fn acked_offset(&self, peer: &str) -> u64 {
        self.streams.get(peer).map_or(0, |s| s.acked)
    }

    /// Writes waiting for acknowledgements.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }
}

#[cfg(test)]
mod tests;
