//! Balanced rendezvous placement: quotas proportional to weight, filled by deferred acceptance.
//!
//! Every (slot, member) pair has a rendezvous [`score`]. Pairs are ordered by score (highest
//! first), then by slot, then by member id. For each replica position in turn, the placement is
//! what this greedy gives: walk the pairs in that order and give the slot to the member when the
//! slot still lacks a member for this position, the member is not yet in the slot's set, and the
//! member has quota left for this position. Slots left over (every member with quota already
//! holds them) take their best-scoring member not yet in their set, over quota.
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

/// Every slot's ordered replica set for one member list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    members: Vec<Member>,
    rf: usize,
    /// `rf` member indices per slot, primary first.
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

impl Placement {
    /// The placement of every slot over `members` with `rf` replicas per slot (at most the number
    /// of members). The order of `members` does not matter.
    ///
    /// # Errors
    /// No members, a member of weight 0, two members with one id, or `rf` of 0.
    pub fn compute(members: &[Member], rf: usize) -> Result<Placement, PlacementError> {
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
        let rf = rf.min(members.len());
        let n = members.len();
        let hashes: Vec<u64> = members.iter().map(|m| id_hash(m.id.as_bytes())).collect();
        let quotas = quotas(&members);

        // Each slot's ranking of the members: score descending, then id ascending (members are
        // sorted by id, so the index breaks ties).
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

        let mut sets = vec![u16::MAX; SLOTS * rf];
        for position in 0..rf {
            let mut next = vec![0usize; SLOTS];
            // Per member: the slots it holds for this position, worst first.
            let mut held: Vec<Held> = (0..n).map(|_| BinaryHeap::new()).collect();
            let mut free: Vec<u16> = (0..SLOTS as u16).rev().collect();
            let mut leftover = Vec::new();
            while let Some(slot) = free.pop() {
                let s = slot as usize;
                let taken = &sets[s * rf..s * rf + position];
                let mut placed = false;
                while next[s] < n {
                    let m = ranking[s * n + next[s]] as usize;
                    next[s] += 1;
                    if taken.contains(&(m as u16)) || quotas[m] == 0 {
                        continue;
                    }
                    // A pair beats another for a member by score, then by the smaller slot.
                    let offer = Reverse((score(slot, hashes[m]), Reverse(slot)));
                    let heap = &mut held[m];
                    if heap.len() < quotas[m] {
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
                    .map(|k| ranking[s * n + k])
                    .find(|m| !sets[s * rf..s * rf + position].contains(m))
                    .expect("rf is at most the number of members");
                sets[s * rf + position] = best;
            }
        }
        Ok(Placement { members, rf, sets })
    }

    /// The members, sorted by id.
    #[must_use]
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Replicas per slot (the requested factor, capped at the number of members).
    #[must_use]
    pub fn rf(&self) -> usize {
        self.rf
    }

    /// The replica set of `slot`, primary first.
    pub fn replicas(&self, slot: u16) -> impl ExactSizeIterator<Item = &Member> + '_ {
        let s = usize::from(slot) * self.rf;
        self.sets[s..s + self.rf]
            .iter()
            .map(|&m| &self.members[m as usize])
    }

    /// The primary of `slot`.
    #[must_use]
    pub fn primary(&self, slot: u16) -> &Member {
        &self.members[self.sets[usize::from(slot) * self.rf] as usize]
    }

    /// How many slots each member holds at `position` (0: primary), in member order.
    #[must_use]
    pub fn counts(&self, position: usize) -> Vec<usize> {
        let mut counts = vec![0; self.members.len()];
        for slot in 0..SLOTS {
            counts[self.sets[slot * self.rf + position] as usize] += 1;
        }
        counts
    }
}
