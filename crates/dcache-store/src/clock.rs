//! Versions: a hybrid logical clock (HLC) timestamp and the writer's node id, packed in a `u64`.
//!
//! ```text
//!   63                       20 19          10 9        0
//!   [ physical ms since 2020 ] [ logical     ] [ node id ]
//!          44 bits (557 years)     10 bits       10 bits
//! ```
//!
//! Comparing two versions as integers orders them by time, then by the logical counter, then by
//! node id: a total order, so "last writer wins" needs no tie-break of its own. The clock never
//! goes backwards; when more than 1,024 writes land in one millisecond, the physical part runs
//! ahead of the wall clock until real time catches up, as HLC allows.

/// Milliseconds from the Unix epoch to 2020-01-01T00:00:00Z.
const EPOCH_MS: u64 = 1_577_836_800_000;
const NODE_BITS: u32 = 10;
const LOGICAL_BITS: u32 = 10;

/// A write's version. `Version(0)` is older than every real write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

impl Version {
    /// The node id that made this version.
    #[must_use]
    pub fn node(self) -> u16 {
        (self.0 & ((1 << NODE_BITS) - 1)) as u16
    }

    /// The physical part, in Unix milliseconds.
    #[must_use]
    pub fn unix_ms(self) -> u64 {
        (self.0 >> (NODE_BITS + LOGICAL_BITS)) + EPOCH_MS
    }
}

/// One node's hybrid logical clock. Each shard keeps its own: a key's versions only need to be
/// ordered within its shard, and a per-shard clock needs no atomics.
#[derive(Debug, Clone)]
pub struct Hlc {
    node: u64,
    /// The last timestamp issued or observed, without the node bits.
    last: u64,
}

impl Hlc {
    /// # Panics
    /// When `node` does not fit in 10 bits.
    #[must_use]
    pub fn new(node: u16) -> Self {
        assert!(
            u32::from(node) < (1 << NODE_BITS),
            "node id {node} needs more than 10 bits"
        );
        Self {
            node: u64::from(node),
            last: 0,
        }
    }

    /// A new version for a local write at wall-clock time `now_ms`, greater than every version this
    /// clock has issued or observed.
    pub fn tick(&mut self, now_ms: u64) -> Version {
        let physical = now_ms.saturating_sub(EPOCH_MS) << LOGICAL_BITS;
        self.last = physical.max(self.last + 1);
        Version(self.last << NODE_BITS | self.node)
    }

    /// Takes note of a version from another node, so that later local writes order after it.
    pub fn observe(&mut self, version: Version) {
        self.last = self.last.max(version.0 >> NODE_BITS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_carry_node_and_time() {
        let mut clock = Hlc::new(7);
        let now = 1_800_000_000_000;
        let a = clock.tick(now);
        let b = clock.tick(now);
        let c = clock.tick(now - 5_000);
        assert!(a < b && b < c, "a clock never goes backwards");
        assert_eq!(a.node(), 7);
        assert_eq!(a.unix_ms(), now);
        assert!(clock.tick(now + 1) > c);
    }

    #[test]
    fn observing_a_remote_version_orders_later_writes_after_it() {
        let mut here = Hlc::new(1);
        let mut there = Hlc::new(2);
        let remote = there.tick(1_900_000_000_000);
        here.observe(remote);
        let local = here.tick(1_800_000_000_000);
        assert!(local > remote);
        assert_eq!(local.node(), 1);
    }

    #[test]
    fn a_burst_beyond_the_logical_counter_stays_ordered() {
        let mut clock = Hlc::new(0);
        let mut prev = Version(0);
        for _ in 0..5_000 {
            let v = clock.tick(1_800_000_000_000);
            assert!(v > prev);
            prev = v;
        }
    }
}
