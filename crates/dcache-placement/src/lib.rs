//! Placement: which nodes hold a key. Specified in `docs/HASHING.md` so that a client in any
//! language can compute the same answer. Key → slot is final and pinned by test vectors that Redis
//! itself produced (`crates/dcache-placement/tests/vectors.json`); slot → replica set is a draft.
//!
//! ```text
//!   key ──CRC16/XMODEM of the key, or of its {hash tag}──► slot (0..16384)
//!   members (id, weight) ──balanced rendezvous──► slot → [primary, replica, …]
//! ```
//!
//! * [`slot`] follows Redis Cluster exactly, so `CLUSTER KEYSLOT` agrees with Redis.
//! * [`Placement::compute`] gives every slot an ordered replica set. Each member has a quota of
//!   slots proportional to its weight; slots and members are matched by deferred acceptance on
//!   rendezvous scores, one round per replica position. The result depends on the member list
//!   only and balances within one slot of the quotas; when a member joins or leaves it moves more
//!   than the ideal share (up to 1.39× on a join at 64 members, see `docs/HASHING.md`), which is
//!   the open problem of this crate.
//! * [`Placement::rebalance`] derives the next epoch's placement from the last one instead: a
//!   join moves exactly the newcomer's quota, a leave exactly the leaver's slots, balance stays
//!   within one slot of the quotas; it depends on history, so it needs an epoch-numbered topology.
//! * A set has `rf` positions, the primary first; those that no member fills are vacant and come
//!   last: positions beyond the number of members, and the places of members cut out by
//!   [`Placement::without`] (a failure: the survivors move up, the first replica becomes the
//!   primary). [`Placement::rebalance`] fills vacancies as it fills freed slots.

mod crc16;
mod rendezvous;

pub use crc16::crc16;
pub use rendezvous::{Member, Placement, PlacementError, id_hash, score};

/// Number of slots.
pub const SLOTS: usize = 16384;

/// The version of the placement specification this crate implements.
pub const SPEC_VERSION: u32 = 2;

/// The slot of a key: CRC16/XMODEM of the key — or of its hash tag, the bytes between the first
/// `{` and the first `}` after it, when there is at least one such byte — modulo 16384.
#[must_use]
pub fn slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS as u16
}

/// The part of `key` that is hashed: its `{hash tag}` if it has a non-empty one, else all of it.
#[must_use]
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(len) if len > 0 => &key[open + 1..open + 1 + len],
        _ => key,
    }
}
