//! Exact least-recently-used: one list in access order, most recent at the head.

use super::list::{Link, List, ensure, per_entry};
use super::{EvictionPolicy, MAX_VICTIM_SCAN};

#[derive(Debug, Default)]
pub struct Lru {
    links: Vec<Link>,
    order: List,
}

impl EvictionPolicy for Lru {
    fn insert(&mut self, cell: u32, _hash: u64) {
        ensure(&mut self.links, cell);
        self.order.push_front(&mut self.links, cell);
    }

    fn access(&mut self, cell: u32) {
        if self.order.head != cell {
            self.order.unlink(&mut self.links, cell);
            self.order.push_front(&mut self.links, cell);
        }
    }

    fn remove(&mut self, cell: u32, _hash: u64) {
        self.order.unlink(&mut self.links, cell);
    }

    fn victim(&mut self, eligible: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        self.order
            .iter_from_tail(&self.links)
            .take(MAX_VICTIM_SCAN)
            .find(|&cell| eligible(cell))
    }

    fn clear(&mut self) {
        *self = Lru::default();
    }

    fn memory(&self, entries: usize) -> usize {
        per_entry(entries, size_of::<Link>())
    }
}
