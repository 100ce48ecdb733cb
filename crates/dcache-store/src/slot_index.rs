//! A shard's index from cluster slot to the cells of its keys, so that counting, listing,
//! streaming and deleting one slot touch that slot's keys only.
//!
//! ```text
//!   SlotLists:  lists: [local slot] → Vec<cell>   (the slot's keys, in no order)
//!               each cell's position in its list:  kept by the owner of the cells
//!                                                  (the shard: `Entry::slot_pos`)
//!   SlotIndex:  SlotLists + pos: [cell] → position (pages beside the cells: for tombstones,
//!                                                  which have no room of their own for it)
//! ```
//!
//! A key's shard is a function of its slot (`slot % shards`), so a shard holds
//! `16384 / shards` slots, and `slot / shards` is the slot's place here. Adding a key pushes its
//! cell onto its slot's list and hands back its position there; removing one moves the list's
//! last cell into its place (`swap_remove`) and hands back the moved cell, whose position the
//! owner updates: O(1) both ways, 4 bytes a key in the list, and a few instructions: a push and a
//! store on insert; on removal the key's CRC16 (to find its slot), a swap and a store. The shard
//! keeps each position in its entry, in bytes the entry had spare (see `crate::entry`), so that
//! its keys cost the index 4 bytes each (and the lists' spare room), not 8. A standalone node
//! needs none of it: its shards build the lists only if a slot is ever asked for
//! ([`crate::StoreConfig::slot_index`]).
//!
//! Walking a list from its end towards its start, with the cursor as "positions below this are
//! not yet visited", visits every cell that stays in the list the whole time even when others
//! are removed meanwhile: a removal moves the last cell, which was either visited already (and
//! may be visited again) or lies below the cursor and stays there. Cells added meanwhile go to
//! the end and are not visited.

/// The cluster slots of one shard and the cells of each; the cells' positions in their lists
/// are kept by the caller.
#[derive(Debug)]
pub(crate) struct SlotLists {
    lists: Box<[Vec<u32>]>,
    /// log2 of the number of shards: a slot's place in `lists` is `slot >> shift`.
    shift: u32,
}

/// Lists shrink once they are a quarter full (and at least this long), so that deleting a slot
/// gives its memory back without reallocating at every removal.
const SHRINK_FROM: usize = 64;

impl SlotLists {
    pub(crate) fn new(shard_bits: u32) -> Self {
        let slots = dcache_placement::SLOTS >> shard_bits;
        Self {
            lists: (0..slots).map(|_| Vec::new()).collect(),
            shift: shard_bits,
        }
    }

    fn list(&self, slot: u16) -> &Vec<u32> {
        &self.lists[usize::from(slot) >> self.shift]
    }

    /// Records that `cell` now holds a key of `slot`; returns its position in the slot's list,
    /// for [`SlotLists::remove`].
    #[must_use]
    pub(crate) fn insert(&mut self, slot: u16, cell: u32) -> u32 {
        let list = &mut self.lists[usize::from(slot) >> self.shift];
        let at = u32::try_from(list.len()).expect("fewer than 2^32 entries per shard");
        list.push(cell);
        at
    }

    /// Forgets `cell`, which held a key of `slot` at position `at`. Returns the cell that moved
    /// into position `at` (the list's last one), if any: the caller records its new position.
    #[must_use]
    pub(crate) fn remove(&mut self, slot: u16, cell: u32, at: u32) -> Option<u32> {
        let list = &mut self.lists[usize::from(slot) >> self.shift];
        let at = at as usize;
        debug_assert_eq!(list[at], cell, "the cell is where its owner says");
        list.swap_remove(at);
        let moved = list.get(at).copied();
        if list.is_empty() {
            *list = Vec::new();
        } else if list.capacity() >= SHRINK_FROM && list.len() < list.capacity() / 4 {
            list.shrink_to(list.capacity() / 2);
        }
        moved
    }

    /// How many keys `slot` has here.
    pub(crate) fn len(&self, slot: u16) -> usize {
        self.list(slot).len()
    }

    /// The cells of `slot`'s keys.
    pub(crate) fn cells(&self, slot: u16) -> &[u32] {
        self.list(slot)
    }

    /// Forgets every key and gives the lists' memory back.
    pub(crate) fn clear(&mut self) {
        for list in &mut self.lists {
            *list = Vec::new();
        }
    }

    /// For tests: `slot`'s place among this shard's lists.
    #[cfg(test)]
    pub(crate) fn local(&self, slot: u16) -> usize {
        usize::from(slot) >> self.shift
    }

    /// For tests: every list, by its place.
    #[cfg(test)]
    pub(crate) fn each(&self) -> impl Iterator<Item = (usize, &[u32])> {
        self.lists.iter().map(Vec::as_slice).enumerate()
    }
}

/// [`SlotLists`] that keeps the cells' positions itself, for owners with no room for them.
#[derive(Debug)]
pub(crate) struct SlotIndex {
    lists: SlotLists,
    /// Each cell's position in its slot's list, in pages that never move: a `Vec<u32>` that
    /// grew by doubling would leave its old buffers to the allocator at every step, and a node
    /// filled with small values then grew its resident memory by that much again.
    pos: Vec<Box<[u32; PAGE]>>,
}

/// Positions per page of `pos` (4 KiB).
const PAGE: usize = 1024;

impl SlotIndex {
    pub(crate) fn new(shard_bits: u32) -> Self {
        Self {
            lists: SlotLists::new(shard_bits),
            pos: Vec::new(),
        }
    }

    /// Records that `cell` now holds a key of `slot`.
    pub(crate) fn insert(&mut self, slot: u16, cell: u32) {
        let at = self.lists.insert(slot, cell);
        let cell = cell as usize;
        while self.pos.len() <= cell / PAGE {
            self.pos.push(Box::new([0; PAGE]));
        }
        self.pos[cell / PAGE][cell % PAGE] = at;
    }

    /// Forgets `cell`, which held a key of `slot`.
    pub(crate) fn remove(&mut self, slot: u16, cell: u32) {
        let at = self.pos[cell as usize / PAGE][cell as usize % PAGE];
        if let Some(moved) = self.lists.remove(slot, cell, at) {
            self.pos[moved as usize / PAGE][moved as usize % PAGE] = at;
        }
    }

    /// The cells of `slot`'s keys.
    pub(crate) fn cells(&self, slot: u16) -> &[u32] {
        self.lists.cells(slot)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{SlotIndex, SlotLists};

    #[test]
    fn removal_keeps_positions_in_step() {
        let mut index = SlotIndex::new(2);
        for cell in 0..100 {
            index.insert(if cell % 2 == 0 { 4 } else { 8 }, cell);
        }
        // With four shards, this shard holds slots 0, 4, 8, 12, …
        let lens = |index: &SlotIndex| (index.cells(4).len(), index.cells(8).len());
        assert_eq!((lens(&index), index.cells(12).len()), ((50, 50), 0));
        for cell in (0..100).step_by(4) {
            index.remove(4, cell);
        }
        let mut left: Vec<u32> = index.cells(4).to_vec();
        left.sort_unstable();
        let expected: Vec<u32> = (0..100).filter(|c| c % 4 == 2).collect();
        assert_eq!(left, expected);
        for &cell in &expected {
            index.remove(4, cell);
        }
        assert_eq!(lens(&index), (0, 50));
    }

    /// Positions kept by the caller, as the shard keeps them in its entries, stay right through
    /// many random inserts and removals across slots: checked against a model after every step.
    #[test]
    fn positions_held_by_the_owner_follow_every_swap_remove() {
        let seed = 0x5107_1157_u64;
        println!("seed {seed:#x}");
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Eight shards: this one holds slots 3, 11, 19, …; use a few of them.
        let slots: Vec<u16> = (0..6).map(|i| 3 + 8 * i).collect();
        let mut lists = SlotLists::new(3);
        // The owner's side: cell → (slot, position), as the entries hold it.
        let mut owner: Vec<Option<(u16, u32)>> = vec![None; 400];
        let mut model: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); slots.len()];
        for step in 0..20_000 {
            let cell = (next() % owner.len() as u64) as u32;
            match owner[cell as usize] {
                None => {
                    let which = (next() % slots.len() as u64) as usize;
                    let at = lists.insert(slots[which], cell);
                    owner[cell as usize] = Some((slots[which], at));
                    model[which].insert(cell);
                }
                Some((slot, at)) => {
                    if let Some(moved) = lists.remove(slot, cell, at) {
                        let entry = owner[moved as usize].as_mut().expect("a listed cell");
                        assert_eq!(entry.0, slot, "moved within its own slot");
                        entry.1 = at;
                    }
                    owner[cell as usize] = None;
                    let which = slots.iter().position(|&s| s == slot).expect("a used slot");
                    model[which].remove(&cell);
                }
            }
            if step % 97 == 0 || step > 19_900 {
                for (which, &slot) in slots.iter().enumerate() {
                    let listed = lists.cells(slot);
                    assert_eq!(lists.len(slot), model[which].len(), "step {step}");
                    assert_eq!(
                        listed.iter().copied().collect::<BTreeSet<u32>>(),
                        model[which],
                        "step {step}"
                    );
                    for (at, &cell) in listed.iter().enumerate() {
                        assert_eq!(owner[cell as usize], Some((slot, at as u32)), "step {step}");
                    }
                }
            }
        }
        lists.clear();
        assert!(slots.iter().all(|&s| lists.len(s) == 0));
    }
}
