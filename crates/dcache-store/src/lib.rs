//! dcache's storage engine. No networking: the server drives it through [`Store`] and [`Shard`].
//!
//! ```text
//!                    Store (N shards, N a power of two, at most 16384)
//!   key ──CRC16──► cluster slot ── slot mod N picks the shard ──► Mutex<Shard>
//!   key ──xxh3───► hash ─────────── probes the shard's table
//!
//!   Shard ┬ table:   hash → cell index          (hashbrown, no keys stored twice)
//!         ├ cells:   Vec<Option<Entry>>          (32 bytes each, stable indices, free list)
//!         ├ aggregates: cell → elements          (large hashes, lists, sets, sorted sets:
//!         │                                        small ones are inline in their entry)
//!         ├ policy:  eviction state by cell      (lru, lfu, random; see policy/)
//!         ├ expires: BTreeSet<(expire_ms, cell)> (active expiry, volatile-ttl)
//!         ├ by_slot: cluster slot → cells        (count, list, stream or delete one slot;
//!         │                                        a standalone node's on first use only)
//!         ├ tombs:   deleted key → version       (when replicating; see shard/tombstones.rs)
//!         └ clock:   hybrid logical clock        (a version for every write)
//! ```
//!
//! A key's slot and hash are computed once (the server, which routes by slot, passes the slot in:
//! [`Store::key_in_slot`]); the shard lock is held only while the caller touches the shard,
//! never across I/O. The memory budget is one for the whole store: each shard adds what it accounts
//! to a shared total as it changes. A write first asks [`Store::admit`] for room (eviction from
//! its own shard, then from the others in turn, or `-OOM`), then locks its shard; a shard that
//! goes over after a write evicts from itself, never the entry just written. The entry budget
//! (for the simulator) is per shard.
//!
//! Words: a *cell* is an entry's place in its shard's slab (a `u32` index that the table, the
//! policy and the expiry index refer to); a *slot* is always the cluster hash slot of a key
//! (`dcache_placement::slot`, 0..16384).
//!
//! Replication and migration move keys as effects (`effect`): a key's value or deletion with
//! its version, applied by version. With tombstones on ([`Store::set_tombstone_ms`]) a deleted
//! key's version is remembered for a while, so that a late older write cannot bring it back;
//! tombstones are never seen by reads and go first under memory pressure.
//!
//! Time is always passed in (`now`, Unix milliseconds), so that the engine never reads a clock
//! and every TTL path is testable without waiting.

mod clock;
mod config;
pub mod effect;
mod entry;
mod glob;
mod hash;
mod inline;
mod lazyfree;
mod list;
mod memory;
pub mod policy;
mod removed;
mod set;
mod shard;
mod slot_index;
mod store;
mod thin;
mod transfer;
mod varint;
mod zset;

pub use clock::{Hlc, Version};
pub use config::{EvictionScope, PolicyKind, PolicyName, StoreConfig};
pub use effect::{
    Applied, Change, DELTA_FORMAT, DecodeError, Delta, EFFECT_FORMAT, Effect, KeyVersion,
    MAX_EFFECT_LEN,
};
pub use entry::{EntryRef, Kind, MAX_KEY_LEN, OwnedEntry, OwnedValue, Value};
pub use glob::glob_match;
pub use hash::{HashLimits, HashRef, HashValue};
pub use list::{End, ListRef, ListValue, max_listpack_size, set_max_listpack_size};
pub use memory::{ENTRY_OVERHEAD, VOLATILE_OVERHEAD, alloc_size, write_cost};
pub use removed::RemovedKeys;
pub use set::{Member, SetEncoding, SetLimits, SetRef, SetValue, member_int};
pub use shard::{
    DumpCursor, HashMut, Lookup, Modify, SetMut, Shard, ShardStats, TOMBSTONE_OVERHEAD, ZSetMut,
};
pub use store::{Key, MultiLock, Room, ScanFilter, Stats, Store};
pub use zset::{ZSetLimits, ZSetRef, ZSetValue};

/// A write that the store refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The memory budget is spent and the policy may not evict (`noeviction`, or a volatile
    /// policy with no key that has a TTL).
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    OutOfMemory,
}
