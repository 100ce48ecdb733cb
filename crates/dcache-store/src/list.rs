//! Lists: a sequence of elements, pushed and popped at both ends.
//!
//! Held as a ring buffer of boxed elements. Every change keeps `mem` (the bytes the elements
//! hold, in allocator size classes, with each slot's overhead) up to date, so that a list counts
//! in the memory budget element by element.

use std::collections::VecDeque;

use crate::memory::alloc_size;

/// Bytes that a list element costs beyond its own allocation: its slot in the ring buffer.
const ELEMENT_OVERHEAD: usize = 16;

/// A list value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ListValue {
    items: VecDeque<Box<[u8]>>,
    mem: usize,
}

fn element_mem(element: &[u8]) -> usize {
    alloc_size(element.len()) + ELEMENT_OVERHEAD
}

impl ListValue {
    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes the elements hold, in allocator size classes, with per-element overhead.
    #[must_use]
    pub fn mem(&self) -> usize {
        self.mem
    }

    /// The element at `index` (0 is the head).
    #[must_use]
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.items.get(index).map(|e| &**e)
    }

    /// Head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.items.iter().map(|e| &**e)
    }

    pub fn push_front(&mut self, element: &[u8]) {
        self.mem += element_mem(element);
        self.items.push_front(element.into());
    }

    pub fn push_back(&mut self, element: &[u8]) {
        self.mem += element_mem(element);
        self.items.push_back(element.into());
    }

    pub fn pop_front(&mut self) -> Option<Box<[u8]>> {
        let element = self.items.pop_front()?;
        self.mem -= element_mem(&element);
        Some(element)
    }

    pub fn pop_back(&mut self) -> Option<Box<[u8]>> {
        let element = self.items.pop_back()?;
        self.mem -= element_mem(&element);
        Some(element)
    }
}

impl std::fmt::Debug for ListValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(String::from_utf8_lossy))
            .finish()
    }
}
