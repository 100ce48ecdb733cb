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
//! - The ghost queue remembers as many keys as the cache holds entries, by 64-bit hash.
//!
//! Two of those are tunables of the paper that we set by measurement (`docs/EVICTION.md`): the
//! small-to-main threshold (the paper's figures use 1 or 2 hits; 2 hits is 0.6 points better on
//! OLTP at 1,000 entries and equal elsewhere) and the ghost's size (the paper sizes it like the main
//! queue, 90 % of the cache; the whole cache is 0.1 points better on OLTP and equal elsewhere).
//! The small queue's share is reckoned against the entries present when a victim is needed, since
//! the shard's budget is in bytes, not entries.

use std::collections::VecDeque;

use hashbrown::HashMap;

use super::list::{Link, List, ensure};
use super::{EvictionPolicy, MAX_VICTIM_SCAN};

/// The counter's ceiling: two bits.
const MAX_FREQ: u8 = 3;
/// Hits in the small queue that earn an entry its move to the main queue.
const MOVE_TO_MAIN: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Queue {
    #[default]
    None,
    Small,
    Main,
}

#[derive(Debug, Default)]
pub struct S3Fifo {
    links: Vec<Link>,
    state: Vec<SlotState>,
    small: List,
    main: List,
    small_len: usize,
    main_len: usize,
    ghost: Ghost,
}

#[derive(Debug, Clone, Copy, Default)]
struct SlotState {
    hash: u64,
    queue: Queue,
    freq: u8,
}

impl S3Fifo {
    fn push(&mut self, slot: u32, queue: Queue) {
        let list = match queue {
            Queue::Small => {
                self.small_len += 1;
                &mut self.small
            }
            Queue::Main => {
                self.main_len += 1;
                &mut self.main
            }
            Queue::None => unreachable!("a slot is pushed onto a queue"),
        };
        list.push_front(&mut self.links, slot);
        self.state[slot as usize].queue = queue;
    }

    fn unlink(&mut self, slot: u32) {
        match self.state[slot as usize].queue {
            Queue::Small => {
                self.small.unlink(&mut self.links, slot);
                self.small_len -= 1;
            }
            Queue::Main => {
                self.main.unlink(&mut self.links, slot);
                self.main_len -= 1;
            }
            Queue::None => {}
        }
        self.state[slot as usize].queue = Queue::None;
    }

    fn move_to(&mut self, slot: u32, queue: Queue) {
        self.unlink(slot);
        self.push(slot, queue);
    }
}

impl EvictionPolicy for S3Fifo {
    fn insert(&mut self, slot: u32, hash: u64) {
        ensure(&mut self.links, slot);
        if self.state.len() <= slot as usize {
            self.state.resize(slot as usize + 1, SlotState::default());
        }
        self.state[slot as usize] = SlotState {
            hash,
            queue: Queue::None,
            freq: 0,
        };
        let queue = if self.ghost.take(hash) {
            Queue::Main
        } else {
            Queue::Small
        };
        self.push(slot, queue);
    }

    fn access(&mut self, slot: u32) {
        let freq = &mut self.state[slot as usize].freq;
        *freq = (*freq + 1).min(MAX_FREQ);
    }

    fn remove(&mut self, slot: u32) {
        self.unlink(slot);
    }

    fn victim(&mut self, eligible: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        // Each step moves an entry from small to main (once per entry) or lowers a counter (at most
        // three times per entry) until it reaches an entry to evict.
        for _ in 0..4 * (self.small_len + self.main_len) {
            let from_small =
                self.main_len == 0 || self.small_len * 10 >= self.small_len + self.main_len;
            let slot = if from_small {
                self.small.tail
            } else {
                self.main.tail
            };
            let state = &mut self.state[slot as usize];
            let earned = if from_small { MOVE_TO_MAIN } else { 1 };
            if state.freq < earned {
                if !eligible(slot) {
                    break;
                }
                if from_small {
                    self.ghost.add(state.hash, self.small_len + self.main_len);
                }
                return Some(slot);
            }
            // Enough hits in the small queue earn the move to main with the counter cleared; in the
            // main queue a hit earns another turn with the counter lowered.
            state.freq = if from_small { 0 } else { state.freq - 1 };
            self.move_to(slot, Queue::Main);
        }
        // The algorithm's victim may not be evicted (a volatile policy, or the entry just
        // written): take the oldest eligible entry instead, small queue first.
        let links = &self.links;
        let slot = self
            .small
            .iter_from_tail(links)
            .chain(self.main.iter_from_tail(links))
            .take(MAX_VICTIM_SCAN)
            .find(|&slot| eligible(slot))?;
        if self.state[slot as usize].queue == Queue::Small {
            self.ghost.add(
                self.state[slot as usize].hash,
                self.small_len + self.main_len,
            );
        }
        Some(slot)
    }

    fn clear(&mut self) {
        *self = S3Fifo::default();
    }

    fn frequency(&self, slot: u32) -> Option<u32> {
        self.state.get(slot as usize).map(|s| u32::from(s.freq))
    }
}

/// Recently evicted keys, by hash, oldest first. Each key maps to the sequence number of its latest
/// addition, so that an older copy leaving the queue does not forget a newer one.
#[derive(Debug, Default)]
struct Ghost {
    order: VecDeque<(u64, u64)>,
    latest: HashMap<u64, u64>,
    next_seq: u64,
}

impl Ghost {
    fn add(&mut self, hash: u64, capacity: usize) {
        self.order.push_back((hash, self.next_seq));
        self.latest.insert(hash, self.next_seq);
        self.next_seq += 1;
        while self.order.len() > capacity {
            let (old, seq) = self.order.pop_front().expect("not empty");
            if self.latest.get(&old) == Some(&seq) {
                self.latest.remove(&old);
            }
        }
    }

    /// Whether `hash` is remembered; forgets it if so.
    fn take(&mut self, hash: u64) -> bool {
        self.latest.remove(&hash).is_some()
    }
}
