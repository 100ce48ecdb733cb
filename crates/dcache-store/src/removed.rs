//! Keys the store removes on its own: expired (lazily on access, or by the active cycle),
//! evicted, or dropped with their slot. A server that must tell someone of every change to a key
//! (client-side caching's invalidations) switches the sink on and drains it after each command
//! and each background cycle; writes it sees itself, in its command handlers.
//!
//! Off (the default), a removal costs one relaxed atomic load, and removals are never on the
//! read path of a live key.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use parking_lot::Mutex;

#[derive(Debug, Default)]
pub struct RemovedKeys {
    on: AtomicBool,
    /// Whether `keys` may hold something, read without the lock.
    pending: AtomicBool,
    keys: Mutex<Vec<Box<[u8]>>>,
}

impl RemovedKeys {
    /// Starts or stops collecting; stopping forgets what was collected.
    pub fn set_on(&self, on: bool) {
        self.on.store(on, Relaxed);
        if !on {
            self.keys.lock().clear();
            self.pending.store(false, Relaxed);
        }
    }

    #[must_use]
    pub fn is_on(&self) -> bool {
        self.on.load(Relaxed)
    }

    pub(crate) fn note(&self, key: &[u8]) {
        if self.on.load(Relaxed) {
            self.keys.lock().push(key.into());
            self.pending.store(true, Relaxed);
        }
    }

    /// Every key removed since the last call, oldest first.
    #[must_use]
    pub fn take(&self) -> Vec<Box<[u8]>> {
        if !self.pending.load(Relaxed) {
            return Vec::new();
        }
        self.pending.store(false, Relaxed);
        std::mem::take(&mut *self.keys.lock())
    }
}
