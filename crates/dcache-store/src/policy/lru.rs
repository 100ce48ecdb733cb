//! Exact least-recently-used: one list in access order, most recent at the head.

use super::list::{Link, List, ensure, per_entry};
use super::{EvictionPolicy, MAX_VICTIM_SCAN};

#[derive(Debug, Default)]
pub struct Lru {
    links: Vec<Link>,
    order: List,
}

impl EvictionPolicy for Lru {
    fn insert(&mut self, slot: u32, _hash: u64) {
        ensure(&mut self.links, slot);
        self.order.push_front(&mut self.links, slot);
    }

    fn access(&mut self, slot: u32) {
        if self.order.head != slot {
            self.order.unlink(&mut self.links, slot);
            self.order.push_front(&mut self.links, slot);
        }
    }

    fn remove(&mut self, slot: u32, _hash: u64) {
        self.order.unlink(&mut self.links, slot);
    }

    fn victim(&mut self, eligible: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        self.order
            .iter_from_tail(&self.links)
            .take(MAX_VICTIM_SCAN)
            .find(|&slot| eligible(slot))
    }

    fn clear(&mut self) {
        *self = Lru::default();
    }

    fn memory(&self, entries: usize) -> usize {
        per_entry(entries, size_of::<Link>())
    }
}
