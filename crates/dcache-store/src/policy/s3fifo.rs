//! S3-FIFO: a small FIFO queue that filters out one-hit wonders, a main FIFO queue with
//! reinsertion, and a ghost queue of recently filtered keys.
//!
//! Juncheng Yang, Yazhuo Zhang, Ziyue Qiu, Yao Yue and K. V. Rashmi, "FIFO Queues are All You Need
//! for Cache Eviction", SOSP 2023.
//!
//! - New entries enter the small queue, or the main queue when their key is in the ghost queue
//!   (it was filtered out recently and came back, so it is not a one-hit wonder).
//! - A hit raises the entry's 2-bit counter (at most 3); nothing moves.
//! - While the small queue holds at least 10 % of the entries, victims come from its tail: an entry
//!   that was hit at least twice there moves to the main queue with its counter cleared, any other
//!   is evicted and its key remembered in the ghost queue. Otherwise victims come from the main
//!   queue's tail: an entry whose counter is above zero goes back to the head with the counter
//!   lowered by one.
//! - The ghost queue remembers as many keys as the cache holds entries, by 32-bit fingerprint,
//!   in 12 to 24 bytes a key.
//!
//! Two of those are tunables of the paper that we set by measurement (`docs/EVICTION.md`): the
//! small-to-main threshold (the paper's figures use 1 or 2 hits; 2 hits is 0.6 points better on
//! OLTP at 1,000 entries and equal elsewhere) and the ghost's size (the paper sizes it like the main
//! queue, 90 % of the cache; the whole cache is 0.1 points better on OLTP and equal elsewhere).
//! The small queue's share is reckoned against the entries present when a victim is needed, since
//! the shard's budget is in bytes, not entries.

use super::list::{Link, List, ensure, per_entry};
use super::{EvictionPolicy, MAX_VICTIM_SCAN, fingerprint};

/// The counter's ceiling: two bits.
const MAX_FREQ: u8 = 3;
/// Hits in the small queue that earn an entry its move to the main queue.
const MOVE_TO_MAIN: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Queue {
    None = 0,
    Small = 1,
    Main = 2,
}

#[derive(Debug, Default)]
pub struct S3Fifo {
    links: Vec<Link>,
    state: Vec<CellState>,
    small: List,
    main: List,
    ghost: Ghost,
    /// The victim last chosen from the small queue: its key joins the ghost when it is removed.
    to_ghost: Option<u32>,
}

/// A cell's queue (bits 0-1) and counter (bits 2-3) in one byte, a byte a key less than two
/// fields would take. The key's fingerprint is not kept: the shard gives the key's hash back when
/// it removes the victim, which is when the ghost needs it.
#[derive(Debug, Clone, Copy, Default)]
struct CellState(u8);

impl CellState {
    fn queue(self) -> Queue {
        match self.0 & 0b11 {
            1 => Queue::Small,
            2 => Queue::Main,
            _ => Queue::None,
        }
    }

    fn freq(self) -> u8 {
        self.0 >> 2
    }

    fn set_queue(&mut self, queue: Queue) {
        self.0 = (self.0 & !0b11) | queue as u8;
    }

    fn set_freq(&mut self, freq: u8) {
        debug_assert!(freq <= MAX_FREQ);
        self.0 = (self.0 & 0b11) | (freq << 2);
    }
}

impl S3Fifo {
    fn push(&mut self, cell: u32, queue: Queue) {
        let list = match queue {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
            Queue::None => unreachable!("a cell is pushed onto a queue"),
        };
        list.push_front(&mut self.links, cell);
        self.state[cell as usize].set_queue(queue);
    }

    fn unlink(&mut self, cell: u32) {
        match self.state[cell as usize].queue() {
            Queue::Small => self.small.unlink(&mut self.links, cell),
            Queue::Main => self.main.unlink(&mut self.links, cell),
            Queue::None => {}
        }
        self.state[cell as usize].set_queue(Queue::None);
    }

    fn move_to(&mut self, cell: u32, queue: Queue) {
        self.unlink(cell);
        self.push(cell, queue);
    }
}

impl EvictionPolicy for S3Fifo {
    fn insert(&mut self, cell: u32, hash: u64) {
        ensure(&mut self.links, cell);
        if self.to_ghost == Some(cell) {
            self.to_ghost = None;
        }
        if self.state.len() <= cell as usize {
            self.state.resize(cell as usize + 1, CellState::default());
        }
        self.state[cell as usize] = CellState::default();
        let queue = if self.ghost.take(fingerprint(hash)) {
            Queue::Main
        } else {
            Queue::Small
        };
        self.push(cell, queue);
    }

    fn access(&mut self, cell: u32) {
        let state = &mut self.state[cell as usize];
        state.set_freq((state.freq() + 1).min(MAX_FREQ));
    }

    fn remove(&mut self, cell: u32, hash: u64) {
        self.unlink(cell);
        if self.to_ghost == Some(cell) {
            self.to_ghost = None;
            self.ghost
                .add(fingerprint(hash), self.small.len() + self.main.len() + 1);
        }
    }

    fn victim(&mut self, eligible: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        // Each step moves an entry from small to main (once per entry) or lowers a counter (at most
        // three times per entry) until it reaches an entry to evict.
        for _ in 0..4 * (self.small.len() + self.main.len()) {
            let from_small =
                self.main.is_empty() || self.small.len() * 10 >= self.small.len() + self.main.len();
            let cell = if from_small {
                self.small.tail
            } else {
                self.main.tail
            };
            let state = &mut self.state[cell as usize];
            let earned = if from_small { MOVE_TO_MAIN } else { 1 };
            if state.freq() < earned {
                if !eligible(cell) {
                    break;
                }
                self.to_ghost = from_small.then_some(cell);
                return Some(cell);
            }
            // Enough hits in the small queue earn the move to main with the counter cleared; in the
            // main queue a hit earns another turn with the counter lowered.
            state.set_freq(if from_small { 0 } else { state.freq() - 1 });
            self.move_to(cell, Queue::Main);
        }
        // The algorithm's victim may not be evicted (a volatile policy, or the entry just
        // written): take the oldest eligible entry instead, small queue first.
        let links = &self.links;
        let cell = self
            .small
            .iter_from_tail(links)
            .chain(self.main.iter_from_tail(links))
            .take(MAX_VICTIM_SCAN)
            .find(|&cell| eligible(cell))?;
        self.to_ghost = (self.state[cell as usize].queue() == Queue::Small).then_some(cell);
        Some(cell)
    }

    fn clear(&mut self) {
        *self = S3Fifo::default();
    }

    fn memory(&self, entries: usize) -> usize {
        per_entry(entries, size_of::<Link>() + size_of::<CellState>())
            + size_of_val(self.ghost.cells.as_slice())
    }

    fn frequency(&self, cell: u32) -> Option<u32> {
        self.state.get(cell as usize).map(|s| u32::from(s.freq()))
    }
}

/// Recently evicted keys: the last `capacity` fingerprints added, in an open-addressing table of
/// `(fingerprint, sequence number)` pairs, 8 bytes each. An entry is live while fewer than
/// `capacity` keys have been added after it; stale entries are simply overwritten, so the table
/// needs no queue beside it (the layout the S3-FIFO authors suggest for a ghost in an index).
#[derive(Debug, Default)]
struct Ghost {
    /// `fingerprint << 32 | sequence`; 0 is an empty cell (fingerprint 0 is stored as 1).
    cells: Vec<u64>,
    capacity: u32,
    next_seq: u32,
}

/// Cells probed from a fingerprint's home cell.
const PROBES: usize = 16;

impl Ghost {
    fn live(&self, cell: u64) -> bool {
        cell != 0 && self.next_seq.wrapping_sub(cell as u32) < self.capacity
    }

    fn home(&self, fingerprint: u32) -> usize {
        // Fibonacci hashing spreads fingerprints that differ in their low bits.
        (u64::from(fingerprint).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize
            & (self.cells.len() - 1)
    }

    /// Remembers `capacity` keys from now on, resizing the table when it has fewer than 1.5
    /// cells per key, or more than twice what that needs (so that a capacity that wavers about a
    /// boundary does not rebuild the table at every step), keeping the live cells.
    fn resize(&mut self, capacity: usize) {
        let capacity = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX);
        let cells = (capacity as usize * 3 / 2).next_power_of_two().max(PROBES);
        self.capacity = capacity;
        if cells > self.cells.len() || cells * 2 < self.cells.len() {
            let old = std::mem::replace(&mut self.cells, vec![0; cells]);
            for cell in old {
                if self.live(cell) {
                    self.put(cell);
                }
            }
        }
    }

    fn add(&mut self, fingerprint: u32, capacity: usize) {
        if capacity != self.capacity as usize || self.cells.is_empty() {
            self.resize(capacity);
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        self.put(u64::from(fingerprint.max(1)) << 32 | u64::from(self.next_seq));
    }

    /// Writes a cell at the first free, stale or same-key cell of its probe run, or over the
    /// oldest cell of the run when all are live.
    fn put(&mut self, cell: u64) {
        let fingerprint = (cell >> 32) as u32;
        let (home, mask) = (self.home(fingerprint), self.cells.len() - 1);
        let mut target = home;
        for i in 0..PROBES {
            let at = (home + i) & mask;
            let old = self.cells[at];
            if !self.live(old) || (old >> 32) as u32 == fingerprint {
                target = at;
                break;
            }
            let age = |c: u64| self.next_seq.wrapping_sub(c as u32);
            if age(old) > age(self.cells[target]) {
                target = at;
            }
        }
        self.cells[target] = cell;
    }

    /// Whether `fingerprint` is remembered; forgets it if so.
    fn take(&mut self, fingerprint: u32) -> bool {
        if self.cells.is_empty() {
            return false;
        }
        let fingerprint = fingerprint.max(1);
        let (home, mask) = (self.home(fingerprint), self.cells.len() - 1);
        for i in 0..PROBES {
            let at = (home + i) & mask;
            let cell = self.cells[at];
            if self.live(cell) && (cell >> 32) as u32 == fingerprint {
                self.cells[at] = 0;
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::{CellState, Ghost, MAX_FREQ, Queue};

    #[test]
    fn a_cells_queue_and_counter_share_a_byte_without_touching_each_other() {
        assert_eq!(size_of::<CellState>(), 1);
        let fresh = CellState::default();
        assert_eq!((fresh.queue(), fresh.freq()), (Queue::None, 0));
        for queue in [Queue::None, Queue::Small, Queue::Main] {
            for freq in 0..=MAX_FREQ {
                let mut state = CellState::default();
                state.set_freq(freq);
                state.set_queue(queue);
                assert_eq!((state.queue(), state.freq()), (queue, freq));
                state.set_freq(MAX_FREQ - freq);
                assert_eq!((state.queue(), state.freq()), (queue, MAX_FREQ - freq));
                state.set_queue(Queue::Main);
                assert_eq!(
                    (state.queue(), state.freq()),
                    (Queue::Main, MAX_FREQ - freq)
                );
            }
        }
    }

    #[test]
    fn ghost_remembers_the_last_keys_up_to_its_capacity() {
        let mut ghost = Ghost::default();
        let fp = |i: u32| i.wrapping_mul(0x9e37_79b9) | 1;
        for i in 0..10_000 {
            ghost.add(fp(i), 1_000);
        }
        let remembered: Vec<u32> = (0..10_000).filter(|&i| ghost.take(fp(i))).collect();
        // The newest thousand, all of them (a key is taken once).
        assert_eq!(remembered.len(), 1_000);
        assert_eq!((remembered[0], remembered[999]), (9_000, 9_999));
        assert!(!ghost.take(fp(9_999)), "taken keys are forgotten");
        // The table stays within 1.5-3 cells a key (8 bytes a cell).
        assert!(
            (1_500..=3_000).contains(&ghost.cells.len()),
            "{}",
            ghost.cells.len()
        );
        // A smaller capacity shrinks the table and keeps the newest keys.
        for i in 20_000..20_100 {
            ghost.add(fp(i), 100);
        }
        assert!(ghost.cells.len() <= 300, "{}", ghost.cells.len());
        assert!(ghost.take(fp(20_099)));
        assert!(!ghost.take(fp(19_999)));
    }
}
