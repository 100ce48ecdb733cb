//! SIEVE: one FIFO queue, one "visited" bit per entry and a hand that sweeps from the oldest entry
//! towards the newest.
//!
//! Yazhuo Zhang, Juncheng Yang, Yao Yue, Ymir Vigfusson and K. V. Rashmi, "SIEVE is Simpler than
//! LRU: an Efficient Turn-Key Eviction Algorithm for Web Caches", NSDI 2024.
//!
//! New entries go to the head; a hit only sets the entry's bit (no list update, which is what makes
//! SIEVE cheaper than LRU). To find a victim the hand clears set bits as it passes and stops at the
//! first entry whose bit is clear. Unlike CLOCK, survivors stay where they are instead of moving to
//! the head, so old popular entries sit behind the hand while new ones are sifted out quickly.

use super::list::{Link, List, NIL, ensure, per_entry};
use super::{EvictionPolicy, MAX_VICTIM_SCAN};

#[derive(Debug)]
pub struct Sieve {
    links: Vec<Link>,
    visited: Vec<bool>,
    queue: List,
    /// Where the next search starts; `NIL` means at the tail.
    hand: u32,
}

impl Default for Sieve {
    fn default() -> Self {
        Sieve {
            links: Vec::new(),
            visited: Vec::new(),
            queue: List::default(),
            hand: NIL,
        }
    }
}

impl EvictionPolicy for Sieve {
    fn insert(&mut self, cell: u32, _hash: u64) {
        ensure(&mut self.links, cell);
        if self.visited.len() <= cell as usize {
            self.visited.resize(cell as usize + 1, false);
        }
        self.visited[cell as usize] = false;
        self.queue.push_front(&mut self.links, cell);
    }

    fn access(&mut self, cell: u32) {
        self.visited[cell as usize] = true;
    }

    fn remove(&mut self, cell: u32, _hash: u64) {
        if self.hand == cell {
            self.hand = self.links[cell as usize].prev;
        }
        self.queue.unlink(&mut self.links, cell);
    }

    fn victim(&mut self, eligible: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        let mut at = self.hand;
        let mut skipped = 0;
        // Every step either clears a bit (at most `len` of them) or skips an ineligible entry.
        while skipped < MAX_VICTIM_SCAN.min(self.queue.len()) {
            if at == NIL {
                at = self.queue.tail;
            }
            let visited = &mut self.visited[at as usize];
            if *visited {
                *visited = false;
            } else if eligible(at) {
                self.hand = at;
                return Some(at);
            } else {
                skipped += 1;
            }
            at = self.links[at as usize].prev;
        }
        None
    }

    fn clear(&mut self) {
        *self = Sieve::default();
    }

    fn memory(&self, entries: usize) -> usize {
        per_entry(entries, size_of::<Link>() + 1)
    }

    fn frequency(&self, cell: u32) -> Option<u32> {
        self.visited.get(cell as usize).map(|&v| u32::from(v))
    }
}
