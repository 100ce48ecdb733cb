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
//! use dcache_check::{History, RuledOut};
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
//! // The write cannot take effect without stranding the late read, and must before it completes.
//! assert_eq!(violation.blocker, w);
//! assert_eq!(violation.candidates[0], (w, RuledOut::Strands(late)));
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
//! and the register's value) so that no configuration is explored twice. Porcupine (Anish
//! Athalye) and Knossos (Kyle Kingsbury, for Jepsen) implement this search; Porcupine splits a
//! history by key first, as Jepsen does before handing keys to Knossos. Herlihy and Wing's
//! locality theorem is what allows that: a history of independent objects is linearizable
//! exactly when each object's sub-history is.
//!
//! An operation whose outcome is unknown may take effect at any instant after its invocation, or
//! never; it is checked as if it completed after every other operation (never taking effect and
//! taking effect after everything are then the same thing, since nothing observes it). A read with
//! unknown outcome observed nothing and is dropped, and so is a write or delete with unknown
//! outcome that no later read could have observed.
//!
//! Two refinements, both exact (they never change a verdict), keep registers cheap to search:
//! a read that observed the value the register holds is taken at once, without trying other
//! orders (moving a read earlier changes no state); and a configuration that strands a read (the
//! register no longer holds the value the read observed, and no remaining operation writes it)
//! is cut off when it arises rather than when that read completes. `search.rs` argues both.
//!
//! # Cost
//!
//! Per key with `n` operations and at most `w` of them pending at any instant: the linearized
//! set is always "everything completed before some point, plus a subset of the operations pending
//! then", so the memo holds at most about `n · 2^w` sets, each with a few register values; each
//! costs O(w) list steps and an O(n / 64) word copy and comparison. So time and memory can grow
//! exponentially with the number of clients contending for one key, and linearly with its
//! length. An operation with unknown outcome stays pending to the end of its key's history, so
//! every one a later read observed adds one to `w` from then on. What helps: spread the workload
//! over keys (each is searched alone), keep the clients per key few, and write a unique value
//! every time (then a read names the write it saw, and wrong orders are cut off at once).
//!
//! Measured on the 2-core development machine, debug build, timing `check` alone (an `Instant`
//! around it in a scratch copy of `tests/generated.rs`'s generator, the test binary run by
//! itself), each history generated from a real register with 3% of operations timed out:
//!
//! | operations | keys | clients | values per key | check |
//! |---|---|---|---|---|
//! | 4,000 | 40 | 5 | 4 | 7-10 ms (rejecting a corrupted copy: 2-3 ms) |
//! | 4,000 | 40 | 5 or 20 | unique | 10-18 ms |
//! | 4,000 | 1 | 5 | 4 / unique | 137 ms / 29 ms |
//! | 4,000 | 1 | 10 | 4 / unique | 1.1 s / 41 ms |
//! | 4,000 | 1 | 20 | 4 / unique | over 60 s (stopped) / 156 ms |
//!
//! Before the two refinements, one key with 20 clients and 4 values took 84 s, and with 10
//! clients and unique values more than 60 s.

mod check;
mod history;
mod search;

pub use check::{RuledOut, Violation, check};
pub use history::{ClientId, History, Kind, OpId, Operation, Outcome, Time};
