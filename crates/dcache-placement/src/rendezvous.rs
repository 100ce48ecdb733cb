//! Balanced rendezvous placement: quotas proportional to weight, filled by deferred acceptance.
//!
//! Every (slot, member) pair has a rendezvous [`score`]. Pairs are ordered by score (highest
//! first), then by slot, then by member id. For each replica position in turn, the placement is
//! what this greedy gives: walk the pairs in that order and give the slot to the member when the
//! slot still lacks a member for this position, the member is not yet in the slot's set, and the
//! member has quota left for this position. Slots left over (every member with quota already
//! holds them) take their best-scoring member not yet in their set, over quota.
//!
//! A replica set may have vacant positions, always at its end: positions beyond the number of
//! members (`rf` is not capped), and, in a cluster's table, the places of failed members that
//! were cut out of a set ([`Placement::without`]) until a rebalance fills them again.
//!
//! That greedy is the unique stable matching between slots and members under those scores, so it
//! is computed here by deferred acceptance (slots propose down their ranking, members keep their
//! best-scoring slots up to their quota), which gives the same answer without sorting every pair.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use crate::SLOTS;

/// The slots a member holds in one round, worst first: a pair beats another for a member by
/// score, then by the smaller slot.
type Held = BinaryHeap<Reverse<(u64, Reverse<u16>)>>;

/// A cluster member as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Member {
    /// A stable, unique identifier (e.g. `node-1`); addresses may change, ids should not.
    pub id: String,
    /// Relative capacity; a member of weight 2 gets twice the slots of a member of weight 1.
    pub weight: u32,
}

impl Member {
    pub fn new(id: impl Into<String>, weight: u32) -> Self {
        Self {
            id: id.into(),
            weight,
        }
    }
}

/// A member list that cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    NoMembers,
    ZeroWeight(String),
    DuplicateId(String),
    ZeroReplicationFactor,
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlacementError::NoMembers => f.write_str("a placement needs at least one member"),
            PlacementError::ZeroWeight(id) => write!(f, "member '{id}' has weight 0"),
            PlacementError::DuplicateId(id) => write!(f, "member id '{id}' appears twice"),
            PlacementError::ZeroReplicationFactor => {
                f.write_str("the replication factor must be at least 1")
            }
        }
    }
}

impl std::error::Error for PlacementError {}

/// FNV-1a, 64 bits: the hash of a member id.
#[must_use]
pub fn id_hash(id: &[u8]) -> u64 {
    id.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rendezvous score of a slot for a member (given the hash of its id).
#[must_use]
pub fn score(slot: u16, member_hash: u64) -> u64 {
    mix(member_hash ^ u64::from(slot).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// A position of a replica set that no member fills (always after the filled ones). No member
/// has this index: there are at most `u16::MAX` members, numbered from 0.
const VACANT: u16 = u16::MAX;

/// Every slot's ordered replica set for one member list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Placement {
    members: Vec<Member>,
    rf: usize,
    /// `rf` member indices per slot, primary first, then [`VACANT`] positions if any.
    sets: Vec<u16>,
}

/// Each member's share of `SLOTS` in proportion to its weight: the floor of the exact share,
/// plus one for the members with the largest remainders (ties to the smaller id) until the
/// shares add up to `SLOTS`.
fn quotas(members: &[Member]) -> Vec<usize> {
    let total: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
    let exact: Vec<(u64, u64)> = members
        .iter()
        .map(|m| {
            let share = SLOTS as u64 * u64::from(m.weight);
            (share / total, share % total)
        })
        .collect();
    let mut quotas: Vec<usize> = exact.iter().map(|&(q, _)| q as usize).collect();
    let short = SLOTS - quotas.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| {
        exact[b]
            .1
            .cmp(&exact[a].1)
            .then_with(|| members[a].id.cmp(&members[b].id))
    });
    for &i in order.iter().take(short) {
        quotas[i] += 1;
    }
    quotas
}

/// The checked, id-sorted member list. Positions of a set beyond its length stay vacant.
fn validate(members: &[Member], rf: usize) -> Result<Vec<Member>, PlacementError> {
    if members.is_empty() {
        return Err(PlacementError::NoMembers);
    }
    if rf == 0 {
        return Err(PlacementError::ZeroReplicationFactor);
    }
    let mut members = members.to_vec();
    members.sort_by(|a, b| a.id.cmp(&b.id));
    for pair in members.windows(2) {
        if pair[0].id == pair[1].id {
            return Err(PlacementError::DuplicateId(pair[0].id.clone()));
        }
    }
    if let Some(m) = members.iter().find(|m| m.weight == 0) {
        return Err(PlacementError::ZeroWeight(m.id.clone()));
    }
    assert!(
        members.len() <= usize::from(u16::MAX),
        "at most 65,535 members"
    );
    Ok(members)
}

/// What the matching needs to know about the members.
struct Scores {
    n: usize,
    hashes: Vec<u64>,
    /// Each slot's ranking of the members: score descending, then id ascending (members are
    /// sorted by id, so the index breaks ties). `n` entries per slot.
    ranking: Vec<u16>,
}

impl Scores {
    fn new(members: &[Member]) -> Scores {
        let n = members.len();
        let hashes: Vec<u64> = members.iter().map(|m| id_hash(m.id.as_bytes())).collect();
        let mut ranking = vec![0u16; SLOTS * n];
        let mut scored: Vec<(u64, u16)> = Vec::with_capacity(n);
        for slot in 0..SLOTS {
            scored.clear();
            scored.extend(
                hashes
                    .iter()
                    .enumerate()
                    .map(|(i, &h)| (score(slot as u16, h), i as u16)),
            );
            scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            for (k, &(_, i)) in scored.iter().enumerate() {
                ranking[slot * n + k] = i;
            }
        }
        Scores { n, hashes, ranking }
    }

    /// Gives each slot of `free` a member for `position`: the stable matching of those slots
    /// with the members, each taking at most `capacity[m]` of them, then slots left over to their
    /// best-ranked member not yet in their set, over capacity.
    fn fill(
        &self,
        mut free: Vec<u16>,
        capacity: &[usize],
        sets: &mut [u16],
        rf: usize,
        position: usize,
    ) {
        let n = self.n;
        let mut next = vec![0usize; SLOTS];
        // Per member: the slots it holds for this position, worst first.
        let mut held: Vec<Held> = (0..n).map(|_| BinaryHeap::new()).collect();
        // Slots propose in ascending order (popped from the end).
        free.sort_unstable_by(|a, b| b.cmp(a));
        let mut leftover = Vec::new();
        while let Some(slot) = free.pop() {
            let s = slot as usize;
            let taken = &sets[s * rf..s * rf + position];
            let mut placed = false;
            while next[s] < n {
                let m = self.ranking[s * n + next[s]] as usize;
                next[s] += 1;
                if taken.contains(&(m as u16)) || capacity[m] == 0 {
                    continue;
                }
                // A pair beats another for a member by score, then by the smaller slot.
                let offer = Reverse((score(slot, self.hashes[m]), Reverse(slot)));
                let heap = &mut held[m];
                if heap.len() < capacity[m] {
                    heap.push(offer);
                    placed = true;
                    break;
                }
                let worst = heap.peek().expect("a full member holds slots");
                if offer < *worst {
                    let Reverse((_, Reverse(bumped))) = heap.pop().expect("checked");
                    heap.push(offer);
                    free.push(bumped);
                    placed = true;
                    break;
                }
            }
            if !placed {
                leftover.push(slot);
            }
        }
        for (m, heap) in held.iter().enumerate() {
            for Reverse((_, Reverse(slot))) in heap.iter() {
                sets[*slot as usize * rf + position] = m as u16;
            }
        }
        leftover.sort_unstable();
        for slot in leftover {
            let s = slot as usize;
            let best = (0..n)
                .map(|k| self.ranking[s * n + k])
                .find(|m| !sets[s * rf..s * rf + position].contains(m))
                .expect("only positions below the number of members are filled");
            sets[s * rf + position] = best;
        }
    }

    /// Moves slots at `position` from members above quota to members below it, as far as the
    /// sets' distinctness allows: each member below quota, in index order, takes slots whose
    /// set it is not yet in from members above quota, first those it holds a copy of already
    /// (`had`, nothing to copy), then by its score, highest first (ties: smaller slot).
    fn even_out(
        &self,
        quotas: &[usize],
        sets: &mut [u16],
        rf: usize,
        position: usize,
        had: impl Fn(usize, u16) -> bool,
    ) {
        let mut counts = vec![0usize; self.n];
        for slot in 0..SLOTS {
            counts[usize::from(sets[slot * rf + position])] += 1;
        }
        for u in 0..self.n {
            if counts[u] >= quotas[u] {
                continue;
            }
            let me = u as u16;
            let mut candidates: Vec<(bool, Reverse<u64>, usize)> = (0..SLOTS)
                .filter(|&slot| {
                    let o = usize::from(sets[slot * rf + position]);
                    counts[o] > quotas[o] && !sets[slot * rf..slot * rf + position].contains(&me)
                })
                .map(|slot| {
                    let s = slot as u16;
                    (!had(slot, me), Reverse(score(s, self.hashes[u])), slot)
                })
                .collect();
            candidates.sort_unstable();
            for (_, _, slot) in candidates {
                if counts[u] >= quotas[u] {
                    break;
                }
                let o = usize::from(sets[slot * rf + position]);
                if counts[o] > quotas[o] {
                    sets[slot * rf + position] = me;
                    counts[o] -= 1;
                    counts[u] += 1;
                }
            }
        }
    }
}

impl Placement {
    /// The placement of every slot over `members` with `rf` copies per slot (the primary
    /// included); positions beyond the number of members are vacant. The order of `members` does
    /// not matter.
    ///
    /// # Errors
    /// No members, a member of weight 0, two members with one id, or `rf` of 0.
    pub fn compute(members: &[Member], rf: usize) -> Result<Placement, PlacementError> {
        let members = validate(members, rf)?;
        let scores = Scores::new(&members);
        let quotas = quotas(&members);
        let mut sets = vec![VACANT; SLOTS * rf];
        for position in 0..rf.min(members.len()) {
            scores.fill(
                (0..SLOTS as u16).collect(),
                &quotas,
                &mut sets,
                rf,
                position,
            );
        }
        Ok(Placement { members, rf, sets })
    }

    /// The next epoch's placement, from this one: for a cluster that keeps its topology in
    /// numbered epochs, so that each placement can be derived from the one before.
    ///
    /// At every replica position, a slot keeps its member unless that member left, is already
    /// earlier in the slot's set, or holds more than its quota under `members` (it then gives up
    /// its lowest-scoring slots, down to its quota). The slots so freed, and the vacant
    /// positions, are matched with the members below quota, each taking up to its shortfall, as
    /// [`Placement::compute`] matches all slots. Where the sets' distinctness kept a member
    /// below quota at a replica position, the members above quota then hand it slots. So a
    /// member that joins takes exactly its quota, from the members whose quota shrank; a member
    /// that leaves moves only its own primaries (and at replica positions a few percent more, to
    /// keep the balance); and every member holds its quota exactly at every position where the
    /// sets' distinctness allows it. Positions beyond the number of members stay vacant.
    ///
    /// # Errors
    /// As [`Placement::compute`].
    pub fn rebalance(&self, members: &[Member], rf: usize) -> Result<Placement, PlacementError> {
        let members = validate(members, rf)?;
        let scores = Scores::new(&members);
        let quotas = quotas(&members);
        // This placement's member indices in the new list (None: gone).
        let new_index: Vec<Option<u16>> = self
            .members
            .iter()
            .map(|old| {
                members
                    .binary_search_by(|m| m.id.cmp(&old.id))
                    .ok()
                    .map(|i| i as u16)
            })
            .collect();
        let mut sets = vec![VACANT; SLOTS * rf];
        for position in 0..rf.min(members.len()) {
            let mut held: Vec<Vec<u16>> = vec![Vec::new(); members.len()];
            let mut free = Vec::new();
            for slot in 0..SLOTS {
                let kept = (position < self.rf)
                    .then(|| self.sets[slot * self.rf + position])
                    .filter(|&m| m != VACANT)
                    .and_then(|m| new_index[m as usize])
                    .filter(|m| !sets[slot * rf..slot * rf + position].contains(m));
                match kept {
                    Some(m) => held[m as usize].push(slot as u16),
                    None => free.push(slot as u16),
                }
            }
            // Members below quota; a slot is of use to them only if one of them is not yet in
            // its set.
            let short: Vec<u16> = (0..members.len() as u16)
                .filter(|&m| held[m as usize].len() < quotas[m as usize])
                .collect();
            let useful = |slot: u16, sets: &[u16]| {
                let s = slot as usize;
                short
                    .iter()
                    .any(|m| !sets[s * rf..s * rf + position].contains(m))
            };
            let mut shortfall = vec![0usize; members.len()];
            for (m, slots) in held.iter_mut().enumerate() {
                if slots.len() > quotas[m] {
                    // Give up the lowest-scoring slots (ties to the larger slot) that a member
                    // below quota can take; a slot none of them can take stays, over quota.
                    let h = scores.hashes[m];
                    slots.sort_unstable_by_key(|&s| (Reverse(score(s, h)), s));
                    let excess = slots.len() - quotas[m];
                    let mut release = Vec::with_capacity(excess);
                    for i in (0..slots.len()).rev() {
                        if release.len() == excess {
                            break;
                        }
                        if useful(slots[i], &sets) {
                            release.push(slots.remove(i));
                        }
                    }
                    free.extend(release);
                }
                shortfall[m] = quotas[m].saturating_sub(slots.len());
                for &slot in slots.iter() {
                    sets[slot as usize * rf + position] = m as u16;
                }
            }
            scores.fill(free, &shortfall, &mut sets, rf, position);
            // The matching cannot always respect quotas at a replica position: a member may be
            // already in the set of most slots freed here (after a failure or a leave, the
            // slots that lost their copy at this position are largely those whose primary is
            // the survivor that was promoted), so it ends below quota and the slots go over
            // quota elsewhere. Those members then hand it slots it can take.
            let had = |slot: usize, m: u16| {
                self.sets[slot * self.rf..(slot + 1) * self.rf]
                    .iter()
                    .any(|&old| old != VACANT && new_index[usize::from(old)] == Some(m))
            };
            scores.even_out(&quotas, &mut sets, rf, position, had);
        }
        Ok(Placement { members, rf, sets })
    }

    /// A placement where the slots for which `take` holds have their replica set from `next`
    /// and the others keep theirs: the table of a cluster whose slots move one batch at a time
    /// towards `next`. Its members are those of both (weights from `next`), so that
    /// [`Placement::rebalance`] can derive from it again.
    ///
    /// # Panics
    /// When the two placements have different replication factors.
    #[must_use]
    pub fn merge(&self, next: &Placement, take: impl Fn(u16) -> bool) -> Placement {
        assert_eq!(
            self.rf, next.rf,
            "placements to merge share their replication factor"
        );
        let mut members = next.members.clone();
        for m in &self.members {
            if members.binary_search_by(|n| n.id.cmp(&m.id)).is_err() {
                members.push(m.clone());
            }
        }
        members.sort_by(|a, b| a.id.cmp(&b.id));
        let index = |id: &str| {
            members
                .binary_search_by(|m| m.id.as_str().cmp(id))
                .expect("both member lists are in the union") as u16
        };
        let from_self: Vec<u16> = self.members.iter().map(|m| index(&m.id)).collect();
        let from_next: Vec<u16> = next.members.iter().map(|m| index(&m.id)).collect();
        let rf = self.rf;
        let mut sets = Vec::with_capacity(SLOTS * rf);
        for slot in 0..SLOTS {
            let (map, source) = if take(slot as u16) {
                (&from_next, &next.sets)
            } else {
                (&from_self, &self.sets)
            };
            sets.extend(
                source[slot * rf..(slot + 1) * rf]
                    .iter()
                    .map(|&m| if m == VACANT { VACANT } else { map[m as usize] }),
            );
        }
        Placement { members, rf, sets }
    }

    /// This placement with `id` cut out of every set: the members after it move up one position
    /// (so a slot's first replica becomes its primary when the primary is cut out) and the set
    /// ends with a vacancy. A slot whose only member was `id` is left with none; the member list
    /// no longer has `id`. The same placement when `id` is not a member.
    #[must_use]
    pub fn without(&self, id: &str) -> Placement {
        let Ok(gone) = self.members.binary_search_by(|m| m.id.as_str().cmp(id)) else {
            return self.clone();
        };
        let gone = gone as u16;
        let mut members = self.members.clone();
        members.remove(usize::from(gone));
        let rf = self.rf;
        let mut sets = Vec::with_capacity(SLOTS * rf);
        for set in self.sets.chunks_exact(rf) {
            let start = sets.len();
            sets.extend(
                set.iter()
                    .filter(|&&m| m != gone && m != VACANT)
                    .map(|&m| if m > gone { m - 1 } else { m }),
            );
            sets.resize(start + rf, VACANT);
        }
        Placement { members, rf, sets }
    }

    /// This placement with `rf` positions per set: longer sets end with vacancies (which
    /// [`Placement::rebalance`] fills), shorter ones lose their last replicas.
    ///
    /// # Errors
    /// `rf` of 0.
    pub fn with_rf(&self, rf: usize) -> Result<Placement, PlacementError> {
        if rf == 0 {
            return Err(PlacementError::ZeroReplicationFactor);
        }
        let mut sets = Vec::with_capacity(SLOTS * rf);
        for set in self.sets.chunks_exact(self.rf) {
            let start = sets.len();
            sets.extend(set.iter().take(rf));
            sets.resize(start + rf, VACANT);
        }
        Ok(Placement {
            members: self.members.clone(),
            rf,
            sets,
        })
    }

    /// Whether `slot` has the same replica set (by member id, in order, vacancies aside) here and
    /// in `other`.
    #[must_use]
    pub fn same_set(&self, other: &Placement, slot: u16) -> bool {
        self.replicas(slot)
            .map(|m| &m.id)
            .eq(other.replicas(slot).map(|m| &m.id))
    }

    /// The members, sorted by id.
    #[must_use]
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Positions per slot: copies of each slot, the primary included, when none is vacant.
    #[must_use]
    pub fn rf(&self) -> usize {
        self.rf
    }

    /// The filled part of `slot`'s set: member indices, primary first.
    fn set(&self, slot: u16) -> &[u16] {
        let s = usize::from(slot) * self.rf;
        let set = &self.sets[s..s + self.rf];
        let filled = set.iter().position(|&m| m == VACANT).unwrap_or(self.rf);
        &set[..filled]
    }

    /// The members of `slot`'s replica set, primary first; vacant positions are left out, so
    /// there may be fewer than [`Placement::rf`].
    pub fn replicas(&self, slot: u16) -> impl ExactSizeIterator<Item = &Member> + '_ {
        self.set(slot)
            .iter()
            .map(|&m| &self.members[usize::from(m)])
    }

    /// The primary of `slot`.
    ///
    /// # Panics
    /// When `slot` has no member at all, which only [`Placement::without`] can leave (a slot
    /// whose only copy was cut out); see [`Placement::try_primary`].
    #[must_use]
    pub fn primary(&self, slot: u16) -> &Member {
        self.try_primary(slot)
            .expect("the slot's replica set has a member")
    }

    /// The primary of `slot`, or `None` when its set is empty.
    #[must_use]
    pub fn try_primary(&self, slot: u16) -> Option<&Member> {
        self.replicas(slot).next()
    }

    /// How many slots each member holds at `position` (0: primary), in member order. Vacant
    /// positions count for no one.
    #[must_use]
    pub fn counts(&self, position: usize) -> Vec<usize> {
        let mut counts = vec![0; self.members.len()];
        if position < self.rf {
            for slot in 0..SLOTS {
                let m = self.sets[slot * self.rf + position];
                if m != VACANT {
                    counts[usize::from(m)] += 1;
                }
            }
        }
        counts
    }

    /// How many positions are vacant, over every slot's set.
    #[must_use]
    pub fn vacancies(&self) -> usize {
        self.sets.iter().filter(|&&m| m == VACANT).count()
    }
}
