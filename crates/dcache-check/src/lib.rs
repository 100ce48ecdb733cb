//! Test support: does a recorded history of reads, writes and deletes on keys look as if every
//! operation took effect at one instant between its invocation and its reply? That is
//! linearizability for a map of registers, the guarantee the replication strategies promise.
//!
//! ```text
//!   clients ──► History (key, client, write/delete/read, invoked, outcome)
//!                  │  split by key (each key is an independent register)
//!                  ▼
//!   per key:   events (calls and returns, by time) ──► search ──► Ok / Violation
//!                                                    (Wing & Gong, memoized as Lowe does)
//! ```
//!
//! * `history.rs` records what clients did: [`History`]'s builder takes invocations and
//!   completions as a test sees them; an operation that never completes has an unknown outcome.
//! * `check.rs` ([`check`]) splits the history by key and checks each key's register, returning
//!   a [`Violation`] that names the key and explains where the search got stuck.
//! * `search.rs` is the search for one register.
//!
//! # Using it from a test
//!
//! ```
//! use dcache_check::History;
//!
//! let mut h: History<&str, &str> = History::new();
//! // Client 1 writes, client 2 reads concurrently and sees the new value: fine.
//! let w = h.write(1, "user:7", "alice", 100);
//! let r = h.read(2, "user:7", 105);
//! h.ok(w, 110);
//! h.read_ok(r, Some("alice"), 112);
//! assert!(h.check().is_ok());
//!
//! // A read that starts after the write was acknowledged and misses it: not linearizable.
//! let late = h.read(3, "user:7", 200);
//! h.read_ok(late, None, 210);
//! let violation = h.check().unwrap_err();
//! assert_eq!(violation.key, "user:7");
//! assert_eq!(violation.blocker, late);
//! println!("{violation}"); // the longest linearizable prefix, and why nothing extends it
//! ```
//!
//! Record times from one clock (for example `Instant` elapsed since the test began, in
//! nanoseconds), the invocation just before sending and the completion just after the reply.
//! Intervals that touch (one completes at the tick another is invoked) count as concurrent, which
//! only makes the checker more forgiving of a coarse clock. A request that timed out or whose
//! connection broke is simply left uncompleted; one that the server rejected before applying it
//! (`-MOVED`, `-OOM`) is marked [`History::fail`]ed.
//!
//! # The algorithm
//!
//! Wing and Gong's search ("Testing and verifying concurrent objects", 1993) looks for a
//! linearization by trying, at each point, every operation that could take effect next (one
//! invoked before the earliest pending completion), backtracking when an operation's completion
//! is reached before it took effect. Lowe ("Testing for linearizability", 2017) made it
//! practical by memoizing each explored configuration (the set of operations already linearized,
//! and the register's value) so that no configuration is explored twice; Porcupine (Anish
//! Athalye) and Knossos (Kyle Kingsbury, for Jepsen) check histories this way, and both also split
//! the history by key first. Herlihy and Wing's locality theorem is what allows that: a history
//! of independent objects is linearizable exactly when each object's sub-history is.
//!
//! An operation whose outcome is unknown may take effect at any instant after its invocation, or
//! never; it is checked as if it completed after every other operation (never taking effect and
//! taking effect after everything are then the same thing, since nothing observes it). A read with
//! unknown outcome observed nothing and is dropped.
//!
//! # Cost
//!
//! Per key with `n` operations, at most `w` of them pending at any instant, and every explored
//! configuration remembered: the linearized set is always "everything completed before some
//! point, plus a subset of the operations pending then", so there are at most about `n · 2^w`
//! sets, each with at most `w + 1` register values worth trying, and each costs O(w) list steps
//! plus an O(n / 64) word comparison in the memo. With a handful of concurrent clients that is
//! linear in practice. An operation with unknown outcome stays pending until the end of its key's
//! history, so each one adds one to `w` for everything after it: a key with dozens of timed-out
//! writes can take exponential time and memory. Keep timeouts per key few, or spread the
//! workload over more keys.
//!
//! Measured (debug build, this crate's `thousands_of_operations_over_many_keys` test): 4,000
//! operations over 40 keys from 5 clients with overlapping intervals, about 3% of them timed out,
//! check in a few milliseconds.

mod check;
mod history;
mod search;

pub use check::{Violation, check};
pub use history::{ClientId, History, Kind, OpId, Operation, Outcome, Time};
