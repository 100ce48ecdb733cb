//! The near cache: values of GET kept in the client, bounded in bytes, kept coherent by the
//! nodes' client-side caching (`CLIENT TRACKING`).
//!
//! ```text
//!   get(k) ── hit ──► the value, no round trip
//!      └── miss ──► begin(k): an in-flight marker (token) ──► GET on a tracked connection
//!                     reader task, in wire order: reply ──► fill(k, token, lane) if the marker
//!                                                          is still k's
//!                                          `invalidate [k…]` ──► drop k, and k's marker
//!                                          `invalidate null` ──► drop what that lane filled
//!                     the lane closes (any reason) ──► drop what that lane filled
//! ```
//!
//! Each connection ("lane") that may fill the cache speaks RESP3 and turned tracking on in its
//! handshake, in the default mode: the node remembers every key read on it and pushes one
//! invalidation, on that connection, when the key next changes. Default mode rather than OPTIN:
//! OPTIN would need `CLIENT CACHING YES` before each cacheable GET (pipelined, but a second
//! command for the node to run on every miss), while default mode costs nothing per read; its
//! price is that keys read by other commands on the same connections are tracked too, and their
//! invalidations arrive for keys the cache does not hold (ignored).
//!
//! Coherence, and the classic race. A reply is filled by the connection's reader task itself, in
//! the order frames arrive, so an invalidation that the node sent after serving the read is
//! always seen after the fill. What the reader task cannot see is an invalidation that came on
//! another connection, or a write this client made itself: each miss therefore takes a marker
//! (a token) first, and every invalidation, local write and flush removes the key's marker, so a
//! reply that might be stale is not filled (it is still returned to its caller, which asked
//! before the change). A lane that closes, for whatever reason, takes its fills with it: the node
//! forgot what it tracked for that connection.
//!
//! Eviction uses `dcache-store`'s S3-FIFO (the store's default policy, `docs/EVICTION.md`),
//! over a slab of entries; an entry costs its key, its value and [`ENTRY_OVERHEAD`] bytes.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;
use dcache_store::policy::{EvictionPolicy, S3Fifo};

/// What an entry costs beyond its key and value: the slab cell, the map's share and the
/// policy's state, roughly.
pub const ENTRY_OVERHEAD: usize = 96;

/// Counters of a near cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NearCacheStats {
    /// GETs answered from the cache.
    pub hits: u64,
    /// GETs sent to a node.
    pub misses: u64,
    /// Entries dropped because the node said their key changed (or all of a lane's, on a null
    /// invalidation or a lost connection).
    pub invalidations: u64,
    /// Entries dropped to stay within the size.
    pub evictions: u64,
    /// Entries held now.
    pub entries: usize,
    /// Bytes held now, as counted against the size.
    pub bytes: usize,
}

struct Entry {
    key: Box<[u8]>,
    /// `None`: the key does not exist (a GET's null, cached as well).
    value: Option<Bytes>,
    /// The connection it was filled from.
    lane: u64,
    hash: u64,
}

impl Entry {
    fn cost(&self) -> usize {
        self.key.len() + self.value.as_ref().map_or(0, Bytes::len) + ENTRY_OVERHEAD
    }
}

#[derive(Default)]
struct Inner {
    map: HashMap<Box<[u8]>, u32>,
    cells: Vec<Option<Entry>>,
    free: Vec<u32>,
    policy: S3Fifo,
    used: usize,
    /// Key → the token of the latest miss in flight for it.
    pending: HashMap<Box<[u8]>, u64>,
}

pub(crate) struct NearCache {
    capacity: usize,
    inner: Mutex<Inner>,
    hasher: std::collections::hash_map::RandomState,
    next_token: AtomicU64,
    next_lane: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    evictions: AtomicU64,
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("capacity", &self.capacity)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl NearCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::default(),
            hasher: std::collections::hash_map::RandomState::new(),
            next_token: AtomicU64::new(1),
            next_lane: AtomicU64::new(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("not poisoned")
    }

    /// A new id for a connection that may fill the cache.
    pub(crate) fn lane_id(&self) -> u64 {
        self.next_lane.fetch_add(1, Relaxed)
    }

    /// The cached value of `key` (`Some(None)`: cached as absent), counted as a hit; or a
    /// miss, with the token to fill it with.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Bytes>, u64> {
        let mut inner = self.lock();
        if let Some(&cell) = inner.map.get(key) {
            inner.policy.access(cell);
            let value = inner.cells[cell as usize]
                .as_ref()
                .expect("a mapped cell is live")
                .value
                .clone();
            drop(inner);
            self.hits.fetch_add(1, Relaxed);
            return Ok(value);
        }
        let token = self.next_token.fetch_add(1, Relaxed);
        inner.pending.insert(key.into(), token);
        drop(inner);
        self.misses.fetch_add(1, Relaxed);
        Err(token)
    }

    /// A miss's reply arrived on `lane`: kept if nothing touched the key since the miss began.
    pub(crate) fn fill(&self, key: &[u8], token: u64, lane: u64, value: Option<Bytes>) {
        let hash = self.hasher.hash_one(key);
        let mut inner = self.lock();
        if inner.pending.get(key) != Some(&token) {
            return;
        }
        inner.pending.remove(key);
        let entry = Entry {
            key: key.into(),
            value,
            lane,
            hash,
        };
        let cost = entry.cost();
        if cost > self.capacity {
            return;
        }
        if let Some(cell) = inner.map.get(key).copied() {
            remove_cell(&mut inner, cell);
        }
        let cell = match inner.free.pop() {
            Some(cell) => cell,
            None => {
                inner.cells.push(None);
                (inner.cells.len() - 1) as u32
            }
        };
        inner.cells[cell as usize] = Some(entry);
        inner.map.insert(key.into(), cell);
        inner.policy.insert(cell, hash);
        inner.used += cost;
        let mut evicted = 0;
        while inner.used > self.capacity {
            let Some(victim) = inner.policy.victim(&mut |c| c != cell) else {
                break;
            };
            remove_cell(&mut inner, victim);
            evicted += 1;
        }
        drop(inner);
        if evicted > 0 {
            self.evictions.fetch_add(evicted, Relaxed);
        }
    }

    /// A miss ended without a value to fill (an error, a timeout): its marker goes.
    pub(crate) fn abandon(&self, key: &[u8], token: u64) {
        let mut inner = self.lock();
        if inner.pending.get(key) == Some(&token) {
            inner.pending.remove(key);
        }
    }

    /// These keys changed: the node said so, or this client wrote them.
    pub(crate) fn invalidate<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) {
        let mut inner = self.lock();
        let mut dropped = 0;
        for key in keys {
            inner.pending.remove(key);
            if let Some(cell) = inner.map.get(key).copied() {
                remove_cell(&mut inner, cell);
                dropped += 1;
            }
        }
        drop(inner);
        if dropped > 0 {
            self.invalidations.fetch_add(dropped, Relaxed);
        }
    }

    /// Drops what `lane` filled (its connection closed, or the node invalidated everything),
    /// and every miss in flight: it may be on that lane.
    pub(crate) fn flush_lane(&self, lane: u64) {
        self.flush_where(|e| e.lane == lane);
    }

    /// Drops everything.
    pub(crate) fn flush(&self) {
        self.flush_where(|_| true);
    }

    fn flush_where(&self, drop_it: impl Fn(&Entry) -> bool) {
        let mut inner = self.lock();
        inner.pending.clear();
        let cells: Vec<u32> = inner
            .cells
            .iter()
            .enumerate()
            .filter(|(_, e)| e.as_ref().is_some_and(&drop_it))
            .map(|(i, _)| i as u32)
            .collect();
        for &cell in &cells {
            remove_cell(&mut inner, cell);
        }
        drop(inner);
        self.invalidations.fetch_add(cells.len() as u64, Relaxed);
    }

    pub(crate) fn stats(&self) -> NearCacheStats {
        let inner = self.lock();
        NearCacheStats {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            entries: inner.map.len(),
            bytes: inner.used,
        }
    }

    /// Whether `key` is cached now (without counting a hit).
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.lock().map.contains_key(key)
    }

    /// An invalidation pushed by the node on `lane` (`>2 invalidate [keys]`, or a null for
    /// every key); other pushes are not the cache's.
    pub(crate) fn on_push(&self, lane: u64, items: &[dcache_protocol::Frame]) {
        use dcache_protocol::Frame;
        match items {
            [Frame::Bulk(kind), keys] if &kind[..] == b"invalidate" => match keys {
                Frame::Array(keys) => self.invalidate(keys.iter().filter_map(|k| match k {
                    Frame::Bulk(k) => Some(&k[..]),
                    _ => None,
                })),
                _ => self.flush_lane(lane),
            },
            // Only with REDIRECT, which the client does not use; drop everything to be safe.
            [Frame::Bulk(kind), ..] if &kind[..] == b"tracking-redir-broken" => {
                self.flush_lane(lane);
            }
            _ => {}
        }
    }
}

fn remove_cell(inner: &mut Inner, cell: u32) {
    let entry = inner.cells[cell as usize].take().expect("a live cell");
    inner.map.remove(&entry.key);
    inner.policy.remove(cell, entry.hash);
    inner.used -= entry.cost();
    inner.free.push(cell);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: usize) -> Option<Bytes> {
        Some(Bytes::from(vec![b'v'; n]))
    }

    #[test]
    fn a_fill_after_an_invalidation_of_its_key_is_dropped() {
        let cache = NearCache::new(1 << 20);
        let token = cache.get(b"k").unwrap_err();
        cache.invalidate([&b"k"[..]].into_iter());
        cache.fill(b"k", token, 1, value(1));
        assert!(!cache.contains(b"k"));
        // A newer miss supersedes an older one: the older's reply is not kept.
        let old = cache.get(b"k").unwrap_err();
        let new = cache.get(b"k").unwrap_err();
        cache.fill(b"k", old, 1, value(1));
        assert!(!cache.contains(b"k"));
        cache.fill(b"k", new, 1, value(2));
        assert_eq!(cache.get(b"k"), Ok(value(2)));
        assert_eq!(cache.stats().hits, 1);
        assert_eq!(cache.stats().misses, 3);
    }

    #[test]
    fn stays_within_its_size_and_a_lane_takes_its_fills_with_it() {
        let cache = NearCache::new(10 * (ENTRY_OVERHEAD + 100));
        for i in 0..100u32 {
            let key = i.to_be_bytes();
            let token = cache.get(&key).unwrap_err();
            cache.fill(&key, token, u64::from(i % 2), value(96));
            assert!(cache.stats().bytes <= 10 * (ENTRY_OVERHEAD + 100));
        }
        let stats = cache.stats();
        assert_eq!(stats.entries, 10);
        assert_eq!(stats.evictions, 90);
        cache.flush_lane(0);
        assert!(cache.stats().entries < 10);
        cache.flush_lane(1);
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(cache.stats().bytes, 0);
        // Larger than the whole cache: never kept.
        let token = cache.get(b"big").unwrap_err();
        cache.fill(b"big", token, 0, value(1 << 20));
        assert!(!cache.contains(b"big"));
    }
}
