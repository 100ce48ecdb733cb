//! The node's exclusive gate: lets one connection run a sequence of commands (a transaction's
//! `EXEC`, a script) while no other client command runs on the node.
//!
//! Every connection holds a *share* of the gate while it executes a batch of requests
//! ([`Gate::share`]); a command that must run alone asks for the gate *exclusively*
//! ([`Gate::exclusive`]), which waits until no share is held and keeps new ones out until it is
//! dropped. The normal path must stay nearly free (a node is measured on CPU per request), so a
//! share is not a global read lock, whose one counter would bounce between cores on every batch:
//!
//! ```text
//!   stripes: [CachePadded<AtomicUsize>; 32]   one per worker thread (round robin), shares held
//!   holder:  AtomicU64                         0, or when the exclusive holder took the gate
//!
//!   share:      stripes[mine] += 1; if holder != 0 { stripes[mine] -= 1; wait for `released` }
//!   exclusive:  holder: 0 → now (or wait for `released`); wait until every stripe is 0 (`drained`)
//! ```
//!
//! Taking a share is one uncontended atomic add on the thread's own cache line and one load of
//! a line that is only written when someone takes the gate exclusively; dropping it, the same.
//! The two sides order themselves as Dekker's algorithm does (`SeqCst` on the counter and the
//! flag, each side writes its own and then reads the other's): a share that saw no holder was
//! counted before the holder looked at the stripes, so the holder waits for it.
//!
//! Waiting is asynchronous: a connection that finds the gate taken awaits a [`tokio::sync::Notify`]
//! and never parks a worker thread. A connection never asks for the gate exclusively while it
//! holds a share (its batch gives its share back first, see `crate::connection`), so a holder
//! never waits for itself, and two connections that ask at once take turns (the second waits for
//! `released` without holding a share).
//!
//! # The protocol for commands
//!
//! A handler that must run alone calls [`crate::command::Ctx::exclusive`]: `true` means the
//! connection holds the gate now, go ahead; `false` means return at once without a reply: the
//! connection gives back its share, waits for the gate, and runs the same request again (then
//! holding it), then gives the gate back before the next request that does not need it. `EXEC`
//! and scripts (`EVAL`) ask this way; the connection also knows them by name
//! (`crate::command::runs_alone`) and takes the gate before running them, so that they run
//! once, and a pipeline of them shares one turn of the gate.
//!
//! # Busy holders
//!
//! [`Gate::held_for`] says how long the current holder has had the gate, so that a connection
//! about to wait can answer `-BUSY` instead once that passes `busy-reply-threshold` (as Redis
//! does for a long script), except for the commands that may end it.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Stripes of share counters. More than the worker threads a node runs in practice; threads
/// beyond it share stripes, which costs only some contention.
const STRIPES: usize = 32;

/// A counter alone on its cache line (128 bytes: adjacent-line prefetching pairs 64-byte lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicUsize);

/// The exclusive gate. See the module documentation.
#[derive(Debug)]
pub struct Gate {
    stripes: Box<[Padded]>,
    /// 0 when free; otherwise 1 + the nanoseconds from `base` to when the holder took it.
    holder: AtomicU64,
    base: Instant,
    /// Wakes the would-be holder when a share is given back while it waits.
    drained: Notify,
    /// Wakes everyone waiting for the gate when the holder gives it back.
    released: Notify,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Padded::default()).collect(),
            holder: AtomicU64::new(0),
            base: Instant::now(),
            drained: Notify::new(),
            released: Notify::new(),
        }
    }
}

thread_local! {
    /// This thread's stripe, given out round robin on first use.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

fn my_stripe() -> usize {
    STRIPE.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT_STRIPE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % STRIPES);
        }
        s.get()
    })
}

impl Gate {
    /// A share of the gate, if no one holds it exclusively: hold it while running requests.
    #[must_use]
    pub fn try_share(&self) -> Option<Share<'_>> {
        let stripe = my_stripe();
        self.stripes[stripe].0.fetch_add(1, SeqCst);
        let share = Share { gate: self, stripe };
        if self.holder.load(SeqCst) == 0 {
            Some(share)
        } else {
            // Dropping it tells the would-be holder, which may have counted it, that it is gone.
            drop(share);
            None
        }
    }

    /// A share of the gate, waiting while someone holds it exclusively.
    pub async fn share(&self) -> Share<'_> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(share) = self.try_share() {
                return share;
            }
            released.await;
        }
    }

    /// The gate for the caller alone: waits for another holder to give it back, then until no
    /// share is held. New shares wait meanwhile. Must not be called while holding a share
    /// (it would wait for itself). Dropping the future before it completes gives the gate back.
    pub async fn exclusive(&self) -> Exclusive<'_> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let stamp = 1 + self.base.elapsed().as_nanos() as u64;
            if self
                .holder
                .compare_exchange(0, stamp, SeqCst, SeqCst)
                .is_ok()
            {
                break;
            }
            released.await;
        }
        let held = Exclusive { gate: self };
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.stripes.iter().all(|s| s.0.load(SeqCst) == 0) {
                return held;
            }
            drained.await;
        }
    }

    /// Runs `f` with the gate held exclusively: for a task that is not a connection.
    pub async fn run_exclusive<R>(&self, f: impl FnOnce() -> R) -> R {
        let _held = self.exclusive().await;
        f()
    }

    /// How long the current exclusive holder has had the gate (counting its wait for the shares
    /// to drain), or `None` when it is free.
    #[must_use]
    pub fn held_for(&self) -> Option<Duration> {
        match self.holder.load(SeqCst) {
            0 => None,
            stamp => Some(
                self.base
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(stamp - 1)),
            ),
        }
    }
}

/// A share of the gate ([`Gate::try_share`]); given back when dropped.
#[derive(Debug)]
#[must_use = "the share is given back when dropped"]
pub struct Share<'a> {
    gate: &'a Gate,
    stripe: usize,
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        self.gate.stripes[self.stripe].0.fetch_sub(1, SeqCst);
        if self.gate.holder.load(SeqCst) != 0 {
            self.gate.drained.notify_one();
        }
    }
}

/// The gate held exclusively ([`Gate::exclusive`]); given back when dropped.
#[derive(Debug)]
#[must_use = "the gate is given back when dropped"]
pub struct Exclusive<'a> {
    gate: &'a Gate,
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        self.gate.holder.store(0, SeqCst);
        self.gate.released.notify_waiters();
    }
}

/// Where a connection stands with the gate, for [`crate::command::Ctx::exclusive`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Running on a share, as every request does.
    #[default]
    Shared,
    /// A command asked for the gate: the connection takes it and runs the request again.
    Wanted,
    /// The connection holds the gate for the request it runs.
    Held,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[tokio::test]
    async fn a_share_keeps_the_holder_out_until_dropped() {
        let gate = Arc::new(Gate::default());
        let share = gate.try_share().expect("free");
        let taken = Arc::new(AtomicBool::new(false));
        let holder = tokio::spawn({
            let (gate, taken) = (Arc::clone(&gate), Arc::clone(&taken));
            async move {
                let _held = gate.exclusive().await;
                taken.store(true, SeqCst);
            }
        });
        // The would-be holder has claimed the gate: new shares are refused, the old one holds.
        while gate.held_for().is_none() {
            tokio::task::yield_now().await;
        }
        assert!(gate.try_share().is_none());
        assert!(!taken.load(SeqCst));
        drop(share);
        holder.await.expect("holder");
        assert!(taken.load(SeqCst));
        assert!(gate.held_for().is_none());
        assert!(gate.try_share().is_some());
    }

    #[tokio::test]
    async fn waiting_shares_and_holders_take_turns() {
        let gate = Arc::new(Gate::default());
        let held = gate.exclusive().await;
        assert!(gate.held_for().is_some());
        let waiters: Vec<_> = (0..4)
            .map(|i| {
                let gate = Arc::clone(&gate);
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        drop(gate.share().await);
                    } else {
                        drop(gate.exclusive().await);
                    }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(waiters.iter().all(|w| !w.is_finished()));
        drop(held);
        for w in waiters {
            w.await.expect("waiter");
        }
        assert!(gate.held_for().is_none());
    }

    #[test]
    fn shares_and_holders_on_threads_never_overlap() {
        let gate = Arc::new(Gate::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|t| {
                    let (gate, inside) = (Arc::clone(&gate), Arc::clone(&inside));
                    tokio::spawn(async move {
                        for _ in 0..500 {
                            if t == 0 {
                                let _held = gate.exclusive().await;
                                // Alone: no share is counted in `inside`.
                                assert_eq!(inside.load(SeqCst), 0);
                            } else {
                                let _share = gate.share().await;
                                inside.fetch_add(1, SeqCst);
                                tokio::task::yield_now().await;
                                inside.fetch_sub(1, SeqCst);
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
        });
    }
}
