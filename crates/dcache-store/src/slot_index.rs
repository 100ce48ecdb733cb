//! A shard's index from cluster slot to the cells of its keys, so that counting, listing,
//! streaming and deleting one slot touch that slot's keys only.
//!
//! ```text
//!   lists: [local slot] → Vec<cell>      (the slot's keys, in no order)
//!   pos:   [cell]       → index in its slot's list
//! ```
//!
//! A key's shard is a function of its slot (`slot % shards`), so a shard holds
//! `16384 / shards` slots, and `slot / shards` is the slot's place here. Adding a key pushes its
//! cell onto its slot's list; removing one moves the list's last cell into its place
//! (`swap_remove`) and updates that cell's position: O(1) both ways, 8 bytes a key (4 in the
//! list, 4 in `pos`).
//!
//! Walking a list from its end towards its start, with the cursor as "positions below this are
//! not yet visited", visits every cell that stays in the list the whole time even when others
//! are removed meanwhile: a removal moves the last cell, which was either visited already (and
//! may be visited again) or lies below the cursor and stays there. Cells added meanwhile go to
//! the end and are not visited.

/// The cluster slots of one shard and the cells of each.
#[derive(Debug)]
pub(crate) struct SlotIndex {
    lists: Box<[Vec<u32>]>,
    pos: Vec<u32>,
    /// log2 of the number of shards: a slot's place in `lists` is `slot >> shift`.
    shift: u32,
}

/// Lists shrink once they are a quarter full (and at least this long), so that deleting a slot
/// gives its memory back without reallocating at every removal.
const SHRINK_FROM: usize = 64;

impl SlotIndex {
    pub(crate) fn new(shard_bits: u32) -> Self {
        let slots = dcache_placement::SLOTS >> shard_bits;
        Self {
            lists: (0..slots).map(|_| Vec::new()).collect(),
            pos: Vec::new(),
            shift: shard_bits,
        }
    }

    fn list(&self, slot: u16) -> &Vec<u32> {
        &self.lists[usize::from(slot) >> self.shift]
    }

    /// Records that `cell` now holds a key of `slot`.
    pub(crate) fn insert(&mut self, slot: u16, cell: u32) {
        let list = &mut self.lists[usize::from(slot) >> self.shift];
        let at = u32::try_from(list.len()).expect("fewer than 2^32 entries per shard");
        list.push(cell);
        let cell = cell as usize;
        if self.pos.len() <= cell {
            self.pos.resize(cell + 1, 0);
        }
        self.pos[cell] = at;
    }

    /// Forgets `cell`, which held a key of `slot`.
    pub(crate) fn remove(&mut self, slot: u16, cell: u32) {
        let list = &mut self.lists[usize::from(slot) >> self.shift];
        let at = self.pos[cell as usize] as usize;
        debug_assert_eq!(list[at], cell, "the cell is where the index says");
        list.swap_remove(at);
        if let Some(&moved) = list.get(at) {
            self.pos[moved as usize] = at as u32;
        }
        if list.is_empty() {
            *list = Vec::new();
        } else if list.capacity() >= SHRINK_FROM && list.len() < list.capacity() / 4 {
            list.shrink_to(list.capacity() / 2);
        }
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
        self.pos = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::SlotIndex;

    #[test]
    fn removal_keeps_positions_in_step() {
        let mut index = SlotIndex::new(2);
        for cell in 0..100 {
            index.insert(if cell % 2 == 0 { 4 } else { 8 }, cell);
        }
        // With four shards, this shard holds slots 0, 4, 8, 12, …
        assert_eq!((index.len(4), index.len(8), index.len(12)), (50, 50, 0));
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
        assert_eq!((index.len(4), index.len(8)), (0, 50));
    }
}
