//! The store's settings.

use std::fmt;
use std::str::FromStr;

/// Which eviction algorithm picks victims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Never evict: writes fail with `-OOM` when the budget is spent.
    NoEviction,
    /// Exact least-recently-used.
    Lru,
    /// Least-frequently-used with aging.
    Lfu,
    /// A uniformly random key.
    Random,
    /// The key closest to expiring (volatile keys only).
    Ttl,
    /// SIEVE (NSDI 2024).
    Sieve,
    /// S3-FIFO (SOSP 2023).
    S3Fifo,
    /// W-TinyLFU (ACM ToS 2017).
    WTinyLfu,
}

/// Which keys may be evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvictionScope {
    AllKeys,
    /// Only keys with a TTL.
    Volatile,
}

/// A `maxmemory-policy` value. Accepts Redis's names (`allkeys-lru`, `volatile-ttl`, …) and the
/// plain ones (`lru`, `lfu`, `random`, `sieve`, `s3fifo`, `w-tinylfu`), which mean the `allkeys-`
/// form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyName {
    pub kind: PolicyKind,
    pub scope: EvictionScope,
}

impl PolicyName {
    pub const NO_EVICTION: PolicyName = PolicyName {
        kind: PolicyKind::NoEviction,
        scope: EvictionScope::AllKeys,
    };

    /// Every accepted canonical name, for error messages and help.
    pub const ALL: &'static [&'static str] = &[
        "noeviction",
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
        "allkeys-sieve",
        "allkeys-s3fifo",
        "allkeys-w-tinylfu",
        "volatile-sieve",
        "volatile-s3fifo",
        "volatile-w-tinylfu",
    ];
}

impl FromStr for PolicyName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        use EvictionScope::{AllKeys, Volatile};
        use PolicyKind::{Lfu, Lru, NoEviction, Random, S3Fifo, Sieve, Ttl, WTinyLfu};
        let (kind, scope) = match s.to_ascii_lowercase().as_str() {
            "noeviction" => (NoEviction, AllKeys),
            "allkeys-lru" | "lru" => (Lru, AllKeys),
            "allkeys-lfu" | "lfu" => (Lfu, AllKeys),
            "allkeys-random" | "random" => (Random, AllKeys),
            "volatile-lru" => (Lru, Volatile),
            "volatile-lfu" => (Lfu, Volatile),
            "volatile-random" => (Random, Volatile),
            "volatile-ttl" => (Ttl, Volatile),
            "allkeys-sieve" | "sieve" => (Sieve, AllKeys),
            "allkeys-s3fifo" | "s3fifo" => (S3Fifo, AllKeys),
            "allkeys-w-tinylfu" | "w-tinylfu" => (WTinyLfu, AllKeys),
            "volatile-sieve" => (Sieve, Volatile),
            "volatile-s3fifo" => (S3Fifo, Volatile),
            "volatile-w-tinylfu" => (WTinyLfu, Volatile),
            _ => {
                return Err(format!(
                    "unknown eviction policy '{s}' (expected one of: {}, or a policy's name without its allkeys- prefix)",
                    PolicyName::ALL.join(", ")
                ));
            }
        };
        Ok(PolicyName { kind, scope })
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match self.scope {
            EvictionScope::AllKeys => "allkeys",
            EvictionScope::Volatile => "volatile",
        };
        match self.kind {
            PolicyKind::NoEviction => f.write_str("noeviction"),
            PolicyKind::Lru => write!(f, "{scope}-lru"),
            PolicyKind::Lfu => write!(f, "{scope}-lfu"),
            PolicyKind::Random => write!(f, "{scope}-random"),
            PolicyKind::Ttl => f.write_str("volatile-ttl"),
            PolicyKind::Sieve => write!(f, "{scope}-sieve"),
            PolicyKind::S3Fifo => write!(f, "{scope}-s3fifo"),
            PolicyKind::WTinyLfu => write!(f, "{scope}-w-tinylfu"),
        }
    }
}

/// How a store is built. Zero limits mean "no limit".
#[derive(Debug, Clone)]
#[must_use]
pub struct StoreConfig {
    /// Number of shards; rounded up to a power of two.
    pub shards: usize,
    /// The memory budget in bytes (0: unlimited).
    pub maxmemory: usize,
    /// The most entries the store holds (0: unlimited). Used by the hit-ratio tools and tests,
    /// where a cache's size is counted in entries.
    pub max_entries: usize,
    pub policy: PolicyName,
    /// This node's id, carried in every version it writes (10 bits).
    pub node_id: u16,
    /// Seed for the key hash and for random choices; fixed in tests for reproducibility.
    pub seed: u64,
    /// How long a deleted key's tombstone lives, in ms (0: deletes leave none). See
    /// [`crate::Store::set_tombstone_ms`].
    pub tombstone_ms: u64,
    /// Whether each shard indexes its keys by cluster slot from the start (the default), as a
    /// cluster node needs to count, list and move a slot's keys. Without it a shard builds the
    /// index the first time a slot is asked for: a standalone node saves its bytes a key (4 and
    /// the lists' spare room) and its work on every insert and removal.
    pub slot_index: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            shards: 64,
            maxmemory: 0,
            max_entries: 0,
            policy: PolicyName::NO_EVICTION,
            node_id: 0,
            seed: 0x5eed,
            tombstone_ms: 0,
            slot_index: true,
        }
    }
}

impl StoreConfig {
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    pub fn maxmemory(mut self, bytes: usize) -> Self {
        self.maxmemory = bytes;
        self
    }

    pub fn max_entries(mut self, entries: usize) -> Self {
        self.max_entries = entries;
        self
    }

    pub fn policy(mut self, policy: PolicyName) -> Self {
        self.policy = policy;
        self
    }

    pub fn node_id(mut self, node_id: u16) -> Self {
        self.node_id = node_id;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Deletes leave a tombstone that lives `ms` (0: none, the default). See
    /// [`crate::Store::set_tombstone_ms`].
    pub fn tombstones(mut self, ms: u64) -> Self {
        self.tombstone_ms = ms;
        self
    }

    /// Whether shards index their keys by cluster slot from the start (see
    /// [`StoreConfig::slot_index`]).
    pub fn slot_index(mut self, on: bool) -> Self {
        self.slot_index = on;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_and_plain_names_parse_and_print_canonically() {
        for name in PolicyName::ALL {
            assert_eq!(name.parse::<PolicyName>().unwrap().to_string(), *name);
        }
        assert_eq!(
            "LRU".parse::<PolicyName>().unwrap().to_string(),
            "allkeys-lru"
        );
        assert_eq!(
            "lfu".parse::<PolicyName>().unwrap().to_string(),
            "allkeys-lfu"
        );
        assert_eq!(
            "w-tinylfu".parse::<PolicyName>().unwrap().to_string(),
            "allkeys-w-tinylfu"
        );
        assert!("mru".parse::<PolicyName>().is_err());
    }
}
