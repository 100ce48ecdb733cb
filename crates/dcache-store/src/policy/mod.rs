//! Eviction policies. Each one lives in its own file, implements [`EvictionPolicy`] and passes the
//! shared suite in `tests/policy_suite.rs`.
//!
//! A policy sees only cell indices: the shard tells it when a cell is filled, read or written,
//! and emptied, and asks it for a victim. It never sees keys or values, so one policy serves every
//! value type, and the shard alone owns memory accounting.
//!
//! | policy | exact or approximate | state per entry | victim |
//! |---|---|---|---|
//! | [`Lru`] | exact | 8 bytes (list links) | least recently used |
//! | [`Lfu`] | exact counts up to 255, halved as they age | 9 bytes | least frequently used, the least recent among equals |
//! | [`RandomPolicy`] | uniform | 4 bytes | any entry |
//! | [`Sieve`] | approximate | 9 bytes | the first unvisited entry at or after the hand |
//! | [`S3Fifo`] | approximate | 9 bytes, and 12-24 per ghost key (as many as entries) | the small queue's oldest entry not hit twice, else the main queue's oldest not hit since its last turn |
//! | [`WTinyLfu`] | approximate | 16 bytes, and 12-24 of sketch and doorkeeper per entry | the less frequent of the window's oldest and probation's oldest |

mod lfu;
pub(crate) mod list;
mod lru;
mod random;
mod s3fifo;
mod sieve;
mod tinylfu;

pub use lfu::Lfu;
pub use lru::Lru;
pub use random::RandomPolicy;
pub use s3fifo::S3Fifo;
pub use sieve::Sieve;
pub use tinylfu::WTinyLfu;

use crate::config::PolicyKind;

/// How many candidates a victim search may look at before giving up. Reached only when most
/// entries are not eligible (a volatile policy over mostly persistent keys).
pub const MAX_VICTIM_SCAN: usize = 1024;

/// An eviction policy's bookkeeping for one shard.
pub trait EvictionPolicy: Send + std::fmt::Debug {
    /// A cell was filled with a new entry.
    fn insert(&mut self, cell: u32, hash: u64);
    /// An entry was read or written.
    fn access(&mut self, cell: u32);
    /// A cell was emptied (deleted, expired or evicted); `hash` is its key's hash, as given to
    /// `insert`.
    fn remove(&mut self, cell: u32, hash: u64);
    /// The entry to evict next among those for which `eligible` holds, without removing it.
    /// `None` when no eligible entry was found within [`MAX_VICTIM_SCAN`] candidates.
    fn victim(&mut self, eligible: &mut dyn FnMut(u32) -> bool) -> Option<u32>;
    /// Forgets every cell and frees what it held.
    fn clear(&mut self);
    /// Bytes of bookkeeping for `entries` live entries, counted against `maxmemory` with them:
    /// per-cell state the way the shard counts its slab ([`list::per_entry`]), plus whatever the
    /// policy keeps beside it (ghost keys, sketches) as allocated.
    fn memory(&self, entries: usize) -> usize;
    /// The access frequency the policy keeps for a cell, where it keeps one (`OBJECT FREQ`).
    fn frequency(&self, _cell: u32) -> Option<u32> {
        None
    }
}

/// 32 bits of a key's hash, for policies that remember keys compactly (S3-FIFO's ghost, W-TinyLFU's
/// sketch): two keys share one with probability 2^-32, which at worst lends one key the other's
/// history.
pub(crate) fn fingerprint(hash: u64) -> u32 {
    ((hash >> 32) ^ hash) as u32
}

/// Which bookkeeping a kind of policy keeps; kinds with the same one can switch without losing
/// what it learned.
#[must_use]
pub fn bookkeeping(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Lru | PolicyKind::NoEviction | PolicyKind::Ttl => "lru",
        PolicyKind::Lfu => "lfu",
        PolicyKind::Random => "random",
        PolicyKind::Sieve => "sieve",
        PolicyKind::S3Fifo => "s3fifo",
        PolicyKind::WTinyLfu => "w-tinylfu",
    }
}

/// The policy state for a kind of policy. `NoEviction` and `Ttl` need none of their own; they
/// keep an LRU order so that switching policy at run time has something to start from.
#[must_use]
pub fn for_kind(kind: PolicyKind, seed: u64) -> Box<dyn EvictionPolicy> {
    match kind {
        PolicyKind::Lru | PolicyKind::NoEviction | PolicyKind::Ttl => Box::new(Lru::default()),
        PolicyKind::Lfu => Box::new(Lfu::default()),
        PolicyKind::Random => Box::new(RandomPolicy::new(seed)),
        PolicyKind::Sieve => Box::new(Sieve::default()),
        PolicyKind::S3Fifo => Box::new(S3Fifo::default()),
        PolicyKind::WTinyLfu => Box::new(WTinyLfu::default()),
    }
}
