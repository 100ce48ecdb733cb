//! Uniformly random eviction (`allkeys-random`, `volatile-random`): a dense array of live cells and
//! each cell's position in it, so that insert, remove and a uniform pick are all O(1).

use super::list::per_entry;
use super::{EvictionPolicy, MAX_VICTIM_SCAN};

const ABSENT: u32 = u32::MAX;

#[derive(Debug)]
pub struct RandomPolicy {
    live: Vec<u32>,
    position: Vec<u32>,
    rng: u64,
}

impl RandomPolicy {
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            live: Vec::new(),
            position: Vec::new(),
            rng: seed | 1,
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: small, fast, and good enough to pick victims.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl EvictionPolicy for RandomPolicy {
    fn insert(&mut self, cell: u32, _hash: u64) {
        if self.position.len() <= cell as usize {
            self.position.resize(cell as usize + 1, ABSENT);
        }
        self.position[cell as usize] = self.live.len() as u32;
        self.live.push(cell);
    }

    fn access(&mut self, _cell: u32) {}

    fn remove(&mut self, cell: u32, _hash: u64) {
        let at = std::mem::replace(&mut self.position[cell as usize], ABSENT) as usize;
        let last = self.live.pop().expect("a removed cell was live");
        if last != cell {
            self.live[at] = last;
            self.position[last as usize] = at as u32;
        }
    }

    fn victim(&mut self, eligible: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        if self.live.is_empty() {
            return None;
        }
        (0..MAX_VICTIM_SCAN).find_map(|_| {
            let at = (self.next() % self.live.len() as u64) as usize;
            let cell = self.live[at];
            eligible(cell).then_some(cell)
        })
    }

    fn clear(&mut self) {
        self.live = Vec::new();
        self.position = Vec::new();
    }

    fn memory(&self, entries: usize) -> usize {
        per_entry(entries, 2 * size_of::<u32>())
    }
}
