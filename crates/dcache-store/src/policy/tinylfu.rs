//! W-TinyLFU: a small LRU window in front of a segmented LRU main space, with admission to the main
//! space decided by an approximate frequency history of recently seen keys.
//!
//! Gil Einziger, Roy Friedman and Ben Manes, "TinyLFU: A Highly Efficient Cache Admission Policy",
//! ACM Transactions on Storage 13(4), 2017.
//!
//! - The frequency history is a count-min sketch of 4-bit counters (four rows) behind a
//!   doorkeeper, a Bloom filter that absorbs each key's first occurrence so that one-hit wonders
//!   never reach the counters. Every insert and hit is recorded. After ten times as many records as
//!   the sketch has counters per row, every counter is halved and the doorkeeper is cleared (the
//!   paper's reset), so the history follows changes in popularity.
//! - New entries enter the window, an LRU holding 1 % of the entries. The window's oldest entry
//!   leaves it for the main space's probation segment as a *candidate*.
//! - The main space is a segmented LRU: a hit in probation promotes the entry to the protected
//!   segment (80 % of the main space), whose overflow is demoted back to probation's head.
//! - When a victim is needed and a candidate is waiting, the candidate and probation's oldest entry
//!   are compared by estimated frequency; the candidate is admitted only if it is more frequent,
//!   otherwise it is the victim. With no candidate, probation's oldest entry is the victim.
//!
//! Sizes are reckoned against the most entries the shard has held, since its budget is in bytes.

use super::list::{Link, List, NIL, ensure, per_entry};
use super::{EvictionPolicy, MAX_VICTIM_SCAN, fingerprint};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Region {
    #[default]
    None,
    Window,
    Probation,
    Protected,
}

#[derive(Debug, Clone, Copy, Default)]
struct CellState {
    /// 32 bits of the key's hash: enough to address the sketch.
    hash: u32,
    region: Region,
}

#[derive(Debug)]
pub struct WTinyLfu {
    links: Vec<Link>,
    state: Vec<CellState>,
    window: List,
    probation: List,
    protected: List,
    len: usize,
    /// The most entries held at once: the cache's size in entries, as far as the policy can tell.
    capacity: usize,
    /// The last entry moved from the window to probation that has not yet faced a victim.
    candidate: u32,
    sketch: FrequencySketch,
}

impl Default for WTinyLfu {
    fn default() -> Self {
        WTinyLfu {
            links: Vec::new(),
            state: Vec::new(),
            window: List::default(),
            probation: List::default(),
            protected: List::default(),
            len: 0,
            capacity: 0,
            candidate: NIL,
            sketch: FrequencySketch::new(64),
        }
    }
}

impl WTinyLfu {
    fn push(&mut self, cell: u32, region: Region) {
        let list = match region {
            Region::Window => &mut self.window,
            Region::Probation => &mut self.probation,
            Region::Protected => &mut self.protected,
            Region::None => unreachable!("a cell is pushed into a region"),
        };
        list.push_front(&mut self.links, cell);
        self.state[cell as usize].region = region;
    }

    fn unlink(&mut self, cell: u32) {
        match self.state[cell as usize].region {
            Region::Window => self.window.unlink(&mut self.links, cell),
            Region::Probation => self.probation.unlink(&mut self.links, cell),
            Region::Protected => self.protected.unlink(&mut self.links, cell),
            Region::None => {}
        }
        self.state[cell as usize].region = Region::None;
        if self.candidate == cell {
            self.candidate = NIL;
        }
    }

    fn move_to(&mut self, cell: u32, region: Region) {
        self.unlink(cell);
        self.push(cell, region);
    }

    fn window_target(&self) -> usize {
        (self.capacity / 100).max(1)
    }

    fn protected_target(&self) -> usize {
        (self.capacity - self.window_target().min(self.capacity)) * 4 / 5
    }

    fn estimate(&self, cell: u32) -> u32 {
        self.sketch.estimate(self.state[cell as usize].hash)
    }

    /// The main space's next victim: probation's oldest entry other than `not`, else protected's.
    fn main_victim(&self, not: u32) -> Option<u32> {
        let mut probation = self.probation.iter_from_tail(&self.links);
        probation
            .find(|&cell| cell != not)
            .or_else(|| (self.protected.tail != NIL).then_some(self.protected.tail))
    }

    /// Oldest first: window, probation, protected; the first eligible within the scan limit.
    fn any_eligible(&self, eligible: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        let links = &self.links;
        self.window
            .iter_from_tail(links)
            .chain(self.probation.iter_from_tail(links))
            .chain(self.protected.iter_from_tail(links))
            .take(MAX_VICTIM_SCAN)
            .find(|&cell| eligible(cell))
    }
}

impl EvictionPolicy for WTinyLfu {
    fn insert(&mut self, cell: u32, hash: u64) {
        ensure(&mut self.links, cell);
        if self.state.len() <= cell as usize {
            self.state.resize(cell as usize + 1, CellState::default());
        }
        let hash = fingerprint(hash);
        self.state[cell as usize] = CellState {
            hash,
            region: Region::None,
        };
        self.len += 1;
        if self.len > self.capacity {
            self.capacity = self.len;
            self.sketch.ensure_width(self.capacity);
        }
        self.sketch.record(hash);
        self.push(cell, Region::Window);
        while self.window.len() > self.window_target() {
            let oldest = self.window.tail;
            self.move_to(oldest, Region::Probation);
            self.candidate = oldest;
        }
    }

    fn access(&mut self, cell: u32) {
        self.sketch.record(self.state[cell as usize].hash);
        match self.state[cell as usize].region {
            Region::Window => self.move_to(cell, Region::Window),
            Region::Probation | Region::Protected => {
                self.move_to(cell, Region::Protected);
                if self.protected.len() > self.protected_target() {
                    let demoted = self.protected.tail;
                    self.move_to(demoted, Region::Probation);
                }
            }
            Region::None => {}
        }
    }

    fn remove(&mut self, cell: u32, _hash: u64) {
        self.unlink(cell);
        self.len -= 1;
    }

    fn victim(&mut self, eligible: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        let candidate = std::mem::replace(&mut self.candidate, NIL);
        let chosen = match (candidate, self.main_victim(candidate)) {
            (NIL, victim) => victim.or((self.window.tail != NIL).then_some(self.window.tail)),
            (candidate, None) => Some(candidate),
            (candidate, Some(victim)) => {
                if self.estimate(candidate) > self.estimate(victim) {
                    Some(victim)
                } else {
                    Some(candidate)
                }
            }
        };
        match chosen {
            Some(cell) if eligible(cell) => Some(cell),
            _ => self.any_eligible(eligible),
        }
    }

    fn clear(&mut self) {
        *self = WTinyLfu::default();
    }

    fn memory(&self, entries: usize) -> usize {
        per_entry(entries, size_of::<Link>() + size_of::<CellState>())
            + size_of_val(self.sketch.counters.as_slice())
            + size_of_val(self.sketch.doorkeeper.as_slice())
    }

    fn frequency(&self, cell: u32) -> Option<u32> {
        match self.state.get(cell as usize) {
            Some(state) if state.region != Region::None => Some(self.estimate(cell)),
            _ => None,
        }
    }
}

/// A count-min sketch of 4-bit counters behind a doorkeeper Bloom filter.
#[derive(Debug)]
struct FrequencySketch {
    /// `ROWS` rows of `width` counters, sixteen to a word.
    counters: Vec<u64>,
    doorkeeper: Vec<u64>,
    width: usize,
    records: usize,
}

const ROWS: usize = 4;
const COUNTER_MAX: u64 = 15;

impl FrequencySketch {
    /// A sketch for a cache of `capacity` entries (rounded up to a power of two): four counters
    /// per entry in each row, and a doorkeeper of 32 bits per entry.
    fn new(capacity: usize) -> Self {
        let width = 4 * capacity.next_power_of_two().max(16);
        FrequencySketch {
            counters: vec![0; ROWS * width / 16],
            doorkeeper: vec![0; 8 * width / 64],
            width,
            records: 0,
        }
    }

    /// Grows the sketch to fit a cache of `capacity` entries, keeping every estimate: indices are
    /// hash bits under a power-of-two mask, so a counter at column `c` of the old width belongs at
    /// every column of the new width whose low bits are `c`. The same holds for the doorkeeper.
    fn ensure_width(&mut self, capacity: usize) {
        let grown = FrequencySketch::new(capacity);
        if grown.width <= self.width {
            return;
        }
        let old = std::mem::replace(self, grown);
        for row in 0..ROWS {
            for column in 0..self.width {
                let value = old.counter(row * old.width + column % old.width);
                let index = row * self.width + column;
                self.counters[index / 16] |= value << ((index % 16) * 4);
            }
        }
        let old_bits = old.doorkeeper.len() * 64;
        for bit in 0..self.doorkeeper.len() * 64 {
            let from = bit % old_bits;
            if old.doorkeeper[from / 64] & (1 << (from % 64)) != 0 {
                self.doorkeeper[bit / 64] |= 1 << (bit % 64);
            }
        }
        self.records = old.records;
    }

    /// SplitMix64's finaliser: every output bit depends on every input bit. Shards pick entries by
    /// some bits of the key's hash, so those bits are equal for every key a shard's policy sees;
    /// each row and each doorkeeper probe hashes the key's hash again with its own constant, so
    /// that two keys that meet in one row are unlikely to meet in another.
    fn mix(hash: u32, salt: u64) -> u64 {
        let mut z = u64::from(hash) ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn counter_index(&self, row: usize, hash: u32) -> usize {
        let column = Self::mix(hash, row as u64 + 1) as usize & (self.width - 1);
        row * self.width + column
    }

    fn counter(&self, index: usize) -> u64 {
        (self.counters[index / 16] >> ((index % 16) * 4)) & 0xf
    }

    fn doorkeeper_bits(&self, hash: u32) -> [usize; 2] {
        let mask = self.doorkeeper.len() * 64 - 1;
        [
            Self::mix(hash, 101) as usize & mask,
            Self::mix(hash, 102) as usize & mask,
        ]
    }

    fn in_doorkeeper(&self, hash: u32) -> bool {
        self.doorkeeper_bits(hash)
            .iter()
            .all(|&bit| self.doorkeeper[bit / 64] & (1 << (bit % 64)) != 0)
    }

    fn record(&mut self, hash: u32) {
        if self.in_doorkeeper(hash) {
            for row in 0..ROWS {
                let index = self.counter_index(row, hash);
                if self.counter(index) < COUNTER_MAX {
                    self.counters[index / 16] += 1 << ((index % 16) * 4);
                }
            }
        } else {
            for bit in self.doorkeeper_bits(hash) {
                self.doorkeeper[bit / 64] |= 1 << (bit % 64);
            }
        }
        self.records += 1;
        if self.records >= 10 * self.width / 4 {
            self.reset();
        }
    }

    fn estimate(&self, hash: u32) -> u32 {
        let counted = (0..ROWS)
            .map(|row| self.counter(self.counter_index(row, hash)))
            .min()
            .unwrap_or(0);
        counted as u32 + u32::from(self.in_doorkeeper(hash))
    }

    /// Halves every counter and clears the doorkeeper.
    fn reset(&mut self) {
        for word in &mut self.counters {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.doorkeeper.fill(0);
        self.records /= 2;
    }
}
