//! How `redis.call` reaches the run in progress.
//!
//! `redis.call` and `redis.pcall` borrow the connection that runs the script. Made afresh for
//! each run as scoped functions (`Lua::scope`), they cost two callbacks created and destroyed
//! and four table writes per run: about a tenth of an `EVALSHA` of a small script in `perf`.
//! They are made once per Lua state instead, and each run *lends* them its `Caller`
//! (`super::run`) for as long as the script runs. mlua cannot express that loan (its functions
//! are `'static`), so it is a raw pointer, and this module is the one place that handles it:
//!
//! - the pointer is set only inside [`Loan::lend`], which holds the caller's `&mut` for the
//!   whole time and clears the pointer when it returns or unwinds;
//! - [`Loan::borrow`] takes the pointer out while it uses it (a nested borrow finds none, as a
//!   `RefCell` would refuse it), and its closure is generic over the caller's lifetime, so it
//!   can keep nothing borrowed from it;
//! - one thread at a time: a Lua state runs on the thread that took it from the pool, and mlua
//!   holds the state's lock for the whole call in which the functions run.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Names a type with a lifetime (the run's `Caller`) by a stand-in without it, so that a
/// [`Loan`] can be declared once and lend a different borrow on each run. `Send`, since a loan
/// is reachable from any thread (though only one uses it at a time, see the module docs).
pub(crate) trait Lendable {
    type Of<'a>: Send;
}

/// Where a run lends its caller to the Lua functions of its state (see the module docs).
pub(crate) struct Loan<T: Lendable>(AtomicPtr<()>, PhantomData<fn() -> T>);

impl<T: Lendable> Default for Loan<T> {
    fn default() -> Self {
        Self(AtomicPtr::default(), PhantomData)
    }
}

impl<T: Lendable> Loan<T> {
    /// Runs `f` with `caller` reachable through [`Loan::borrow`].
    pub(crate) fn lend<R>(&self, caller: &mut T::Of<'_>, f: impl FnOnce() -> R) -> R {
        let ptr = std::ptr::from_mut(caller).cast::<()>();
        let _restore = Restore {
            slot: &self.0,
            ptr: self.0.swap(ptr, Ordering::Acquire),
        };
        f()
    }

    /// Runs `f` on the caller lent now, if there is one and no other borrow holds it.
    pub(crate) fn borrow<R>(&self, f: impl FnOnce(&mut T::Of<'_>) -> R) -> Option<R> {
        let ptr = self.0.swap(std::ptr::null_mut(), Ordering::Acquire);
        if ptr.is_null() {
            return None;
        }
        let _restore = Restore { slot: &self.0, ptr };
        // SAFETY: a non-null pointer was set by `lend` from a `&mut T::Of` that `lend` holds
        // until it clears the pointer, after `f` there returned, so it points to a live value
        // that nothing else uses meanwhile: `lend`'s own code only waits for its `f`, and the
        // swap above leaves no pointer for a nested or concurrent `borrow` until this one puts
        // it back. The lifetime is made up, but `f` is generic over it and returns a type that
        // does not name it, so no reference outlives this call.
        let caller = unsafe { &mut *ptr.cast::<T::Of<'_>>() };
        Some(f(caller))
    }
}

/// Puts a pointer back into its slot when dropped, on return or unwind.
struct Restore<'a> {
    slot: &'a AtomicPtr<()>,
    ptr: *mut (),
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        self.slot.store(self.ptr, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pair;
    impl Lendable for Pair {
        type Of<'a> = (&'a mut Vec<u8>, &'a str);
    }

    #[test]
    fn a_borrow_reaches_the_lent_value_only_while_it_is_lent() {
        let loan = Loan::<Pair>::default();
        assert_eq!(loan.borrow(|_| ()), None);
        let mut out = Vec::new();
        let name = String::from("x");
        let mut lent = (&mut out, name.as_str());
        let seen = loan.lend(&mut lent, || {
            loan.borrow(|(out, name)| {
                out.extend_from_slice(name.as_bytes());
                out.len()
            })
        });
        assert_eq!(seen, Some(1));
        assert_eq!(loan.borrow(|_| ()), None);
        assert_eq!(out, b"x");
    }

    #[test]
    fn a_nested_borrow_finds_nothing_and_the_outer_one_keeps_its_value() {
        let loan = Loan::<Pair>::default();
        let mut out = Vec::new();
        let mut lent = (&mut out, "y");
        loan.lend(&mut lent, || {
            let nested = loan.borrow(|(out, _)| {
                out.push(1);
                loan.borrow(|(out, _)| out.push(2))
            });
            assert_eq!(nested, Some(None));
            // The outer borrow put the value back for the next one.
            assert_eq!(loan.borrow(|(out, _)| out.len()), Some(1));
        });
        assert_eq!(out, [1]);
    }

    #[test]
    fn a_panic_inside_ends_the_loan() {
        let loan = Loan::<Pair>::default();
        let mut out = Vec::new();
        let mut lent = (&mut out, "z");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            loan.lend(&mut lent, || {
                loan.borrow(|_| panic!("inside"));
            });
        }));
        assert!(caught.is_err());
        assert_eq!(loan.borrow(|_| ()), None);
    }
}
