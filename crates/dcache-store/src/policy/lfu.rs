//! Least-frequently-used with aging.
//!
//! Every entry has an access count (1 on insert, +1 per access, saturating at 255) and sits in the list
//! for its count; within a count, lists are in recency order. The victim is the least recent entry
//! of the lowest non-empty count, found through a 256-bit occupancy map.
//!
//! Aging: after as many accesses as ten times the number of entries (at least 1,024), every count
//! is halved, so that a key that was popular long ago loses its protection against keys that are
//! popular now. Halving walks every entry once, which amortises to well under one step per access.

use super::list::{Link, List, NIL, ensure, per_entry};
use super::{EvictionPolicy, MAX_VICTIM_SCAN};

#[derive(Debug)]
pub struct Lfu {
    links: Vec<Link>,
    freq: Vec<u8>,
    lists: Box<[List; 256]>,
    /// Bit `f` is set when `lists[f]` is not empty.
    occupied: [u64; 4],
    len: usize,
    accesses_since_aging: usize,
}

impl Default for Lfu {
    fn default() -> Self {
        Self {
            links: Vec::new(),
            freq: Vec::new(),
            lists: Box::new([List::default(); 256]),
            occupied: [0; 4],
            len: 0,
            accesses_since_aging: 0,
        }
    }
}

impl Lfu {
    fn push(&mut self, cell: u32, freq: u8) {
        self.freq[cell as usize] = freq;
        self.lists[freq as usize].push_front(&mut self.links, cell);
        self.occupied[freq as usize / 64] |= 1 << (freq % 64);
    }

    fn unlink(&mut self, cell: u32) -> u8 {
        let freq = self.freq[cell as usize];
        let list = &mut self.lists[freq as usize];
        list.unlink(&mut self.links, cell);
        if list.is_empty() {
            self.occupied[freq as usize / 64] &= !(1 << (freq % 64));
        }
        freq
    }

    /// Non-empty counts, lowest first.
    fn counts(&self) -> impl Iterator<Item = usize> + '_ {
        (0..4).flat_map(move |word| {
            let mut bits = self.occupied[word];
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let bit = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    word * 64 + bit
                })
            })
        })
    }

    fn age(&mut self) {
        let old = std::mem::replace(&mut self.lists, Box::new([List::default(); 256]));
        self.occupied = [0; 4];
        // Oldest first within each count, pushing to the front, keeps recency order; going up the
        // counts puts the higher of each merged pair nearer the front.
        for list in old.iter() {
            let mut at = list.tail;
            while at != NIL {
                let prev = self.links[at as usize].prev;
                let halved = (self.freq[at as usize] / 2).max(1);
                self.push(at, halved);
                at = prev;
            }
        }
        self.accesses_since_aging = 0;
    }
}

impl EvictionPolicy for Lfu {
    fn insert(&mut self, cell: u32, _hash: u64) {
        ensure(&mut self.links, cell);
        if self.freq.len() <= cell as usize {
            self.freq.resize(cell as usize + 1, 0);
        }
        self.push(cell, 1);
        self.len += 1;
    }

    fn access(&mut self, cell: u32) {
        let freq = self.unlink(cell);
        self.push(cell, freq.saturating_add(1));
        self.accesses_since_aging += 1;
        if self.accesses_since_aging >= (self.len * 10).max(1024) {
            self.age();
        }
    }

    fn remove(&mut self, cell: u32, _hash: u64) {
        self.unlink(cell);
        self.len -= 1;
    }

    fn victim(&mut self, eligible: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        let links = &self.links;
        let lists = &self.lists;
        self.counts()
            .flat_map(|f| lists[f].iter_from_tail(links))
            .take(MAX_VICTIM_SCAN)
            .find(|&cell| eligible(cell))
    }

    fn clear(&mut self) {
        *self = Lfu::default();
    }

    fn memory(&self, entries: usize) -> usize {
        per_entry(entries, size_of::<Link>() + 1) + size_of::<[List; 256]>()
    }

    fn frequency(&self, cell: u32) -> Option<u32> {
        self.freq.get(cell as usize).map(|&f| u32::from(f))
    }
}
