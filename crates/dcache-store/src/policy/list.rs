//! Doubly linked lists threaded through a vector indexed by cell: the building block of the
//! LRU and LFU policies. Safe code, O(1) per operation, 8 bytes per cell.

pub(crate) const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    pub prev: u32,
    pub next: u32,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            prev: NIL,
            next: NIL,
        }
    }
}

/// One list's ends. Several lists may share one `links` vector (LFU keeps one per frequency).
#[derive(Debug, Clone, Copy)]
pub(crate) struct List {
    pub head: u32,
    pub tail: u32,
    count: u32,
}

impl Default for List {
    fn default() -> Self {
        List {
            head: NIL,
            tail: NIL,
            count: 0,
        }
    }
}

impl List {
    /// Cells in the list.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.head == NIL
    }

    pub fn push_front(&mut self, links: &mut [Link], cell: u32) {
        links[cell as usize] = Link {
            prev: NIL,
            next: self.head,
        };
        if self.head != NIL {
            links[self.head as usize].prev = cell;
        } else {
            self.tail = cell;
        }
        self.head = cell;
        self.count += 1;
    }

    pub fn unlink(&mut self, links: &mut [Link], cell: u32) {
        let Link { prev, next } = links[cell as usize];
        if prev != NIL {
            links[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            links[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
        links[cell as usize] = Link::default();
        self.count -= 1;
    }

    /// Walks from the tail (the oldest) towards the head.
    pub fn iter_from_tail<'a>(&self, links: &'a [Link]) -> impl Iterator<Item = u32> + 'a {
        let mut at = self.tail;
        std::iter::from_fn(move || {
            (at != NIL).then(|| {
                let cell = at;
                at = links[cell as usize].prev;
                cell
            })
        })
    }
}

/// Grows `links` so that `cell` is a valid index.
pub(crate) fn ensure(links: &mut Vec<Link>, cell: u32) {
    if links.len() <= cell as usize {
        links.resize(cell as usize + 1, Link::default());
    }
}

/// What `bytes` of per-cell state cost for `entries` live entries, the way the shard counts its
/// slab (`memory::ENTRY_OVERHEAD`): cell-indexed arrays grow by doubling, so on average a third
/// again as much as in use.
pub(crate) fn per_entry(entries: usize, bytes: usize) -> usize {
    entries * bytes * 4 / 3
}
