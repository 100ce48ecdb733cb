//! Blocking commands (BLPOP, BLMOVE, BLMPOP, …; BZPOPMIN and friends can use the same): a
//! client whose keys are all empty waits, at no cost, until a write makes one of them ready.
//!
//! ```text
//!   handler finds nothing ──► ctx.block(keys, timeout) ──► the connection keeps the request
//!                                                          unconsumed and registers a Waiter
//!                                                          at the back of each key's queue
//!   a write to key K ──► Blocking::ready(K) ──► wakes the waiter at the front of K's queue
//!   woken connection ──► runs the same request again through ordinary dispatch (routing,
//!                        ACL, replication all apply: the pop is an ordinary write)
//!        ├─ served or failed ──► leaves every queue; the next waiter of each key it headed is
//!        │                       woken in turn (the key may still hold more)
//!        └─ nothing there (someone else took it) ──► waits again, keeping its place
//!   timeout, CLIENT UNBLOCK ──► null array (or -UNBLOCKED), request consumed
//!   disconnect ──► leaves every queue (waking the next, so no wake-up is lost)
//!   new topology ──► every blocked client runs again: one whose slot moved gets -MOVED
//! ```
//!
//! Only the front of a key's queue is woken, so that clients are served in the order they
//! blocked (FIFO, as in Redis). What is not as in Redis: Redis serves blocked clients before any
//! other command runs, so a non-blocked client can never take an element a push made for a
//! blocked one; here connections run in parallel and one may, in which case the woken client
//! finds nothing and waits again in its place.
//!
//! The notification is by key and knows nothing of types: a handler that writes something a
//! blocked command could take calls [`Blocking::ready`] (lists after a push, sorted sets after
//! ZADD). A woken command whose keys hold the wrong type blocks again rather than failing, as
//! Redis only wakes a client for a key of the type it waits for ([`Ctx::woken`]).
//!
//! [`Ctx::woken`]: crate::command::Ctx::woken

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use parking_lot::Mutex;

/// What woke a waiter.
const WAITING: u8 = 0;
const READY: u8 = 1;
const UNBLOCK_TIMEOUT: u8 = 2;
const UNBLOCK_ERROR: u8 = 3;

/// Why a blocked client must stop waiting without running its command again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unblocked {
    /// As if it timed out (`CLIENT UNBLOCK id TIMEOUT`, or the timeout itself).
    Timeout,
    /// `-UNBLOCKED` (`CLIENT UNBLOCK id ERROR`).
    Error,
}

/// One blocked client.
#[derive(Debug)]
pub struct Waiter {
    client: u64,
    keys: Vec<Vec<u8>>,
    state: AtomicU8,
    notify: tokio::sync::Notify,
}

impl Waiter {
    fn wake(&self, why: u8) {
        // An unblock is not overwritten by a readiness that comes after it.
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s == WAITING || s == READY).then_some(why.max(s))
            });
        self.notify.notify_one();
    }

    /// Waits to be woken (a wake-up that came before this is not lost).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }

    /// Whether CLIENT UNBLOCK ended the wait.
    #[must_use]
    pub fn unblocked(&self) -> Option<Unblocked> {
        match self.state.load(Ordering::Acquire) {
            UNBLOCK_TIMEOUT => Some(Unblocked::Timeout),
            UNBLOCK_ERROR => Some(Unblocked::Error),
            _ => None,
        }
    }

    /// The keys it waits on.
    #[must_use]
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }
}

#[derive(Debug, Default)]
struct Queues {
    by_key: hashbrown::HashMap<Vec<u8>, VecDeque<Arc<Waiter>>>,
    by_client: hashbrown::HashMap<u64, Arc<Waiter>>,
}

/// The node's blocked clients, by key and by client id.
#[derive(Debug, Default)]
pub struct Blocking {
    /// Blocked clients; a write reads only this while no one is blocked.
    count: AtomicUsize,
    queues: Mutex<Queues>,
}

impl Blocking {
    /// Clients blocked now (INFO's `blocked_clients`).
    #[must_use]
    pub fn blocked(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether `client` is blocked (CLIENT LIST's `b` flag).
    #[must_use]
    pub fn is_blocked(&self, client: u64) -> bool {
        self.blocked() != 0 && self.queues.lock().by_client.contains_key(&client)
    }

    /// Says that `key` may now hold what a blocked client waits for: the first client blocked
    /// on it is woken. Cheap when no one is blocked.
    pub fn ready(&self, key: &[u8]) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let queues = self.queues.lock();
        if let Some(front) = queues.by_key.get(key).and_then(VecDeque::front) {
            front.wake(READY);
        }
    }

    /// Blocks `client` on `keys`, behind the clients already blocked on them.
    pub fn block(&self, client: u64, keys: Vec<Vec<u8>>) -> Arc<Waiter> {
        let waiter = Arc::new(Waiter {
            client,
            keys,
            state: AtomicU8::new(WAITING),
            notify: tokio::sync::Notify::new(),
        });
        let mut queues = self.queues.lock();
        for key in &waiter.keys {
            let queue = queues.by_key.entry(key.clone()).or_default();
            // BLPOP k k: one place in the queue.
            if !queue.iter().any(|w| Arc::ptr_eq(w, &waiter)) {
                queue.push_back(Arc::clone(&waiter));
            }
        }
        queues.by_client.insert(client, Arc::clone(&waiter));
        self.count.fetch_add(1, Ordering::AcqRel);
        waiter
    }

    /// The woken client found nothing and waits again, in the same place.
    pub fn rearm(&self, waiter: &Waiter) {
        let _ = waiter
            .state
            .compare_exchange(READY, WAITING, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The client stops waiting (served, timed out, gone). Each key it was first in line for
    /// wakes its next client: the key may hold more than this one took, or a wake-up meant for
    /// this one may have come too late for it.
    pub fn unblock(&self, waiter: &Arc<Waiter>) {
        let mut queues = self.queues.lock();
        if queues
            .by_client
            .get(&waiter.client)
            .is_some_and(|w| Arc::ptr_eq(w, waiter))
        {
            queues.by_client.remove(&waiter.client);
        }
        let mut removed = false;
        for key in &waiter.keys {
            let Some(queue) = queues.by_key.get_mut(key) else {
                continue;
            };
            let Some(at) = queue.iter().position(|w| Arc::ptr_eq(w, waiter)) else {
                continue;
            };
            removed = true;
            queue.remove(at);
            if at == 0
                && let Some(next) = queue.front()
            {
                next.wake(READY);
            }
            if queue.is_empty() {
                queues.by_key.remove(key);
            }
        }
        if removed {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// CLIENT UNBLOCK: ends `client`'s wait; `false` when it is not blocked.
    pub fn unblock_client(&self, client: u64, how: Unblocked) -> bool {
        let queues = self.queues.lock();
        let Some(waiter) = queues.by_client.get(&client) else {
            return false;
        };
        waiter.wake(match how {
            Unblocked::Timeout => UNBLOCK_TIMEOUT,
            Unblocked::Error => UNBLOCK_ERROR,
        });
        true
    }
}

/// What a handler asks for when it found nothing to take: wait on `keys` until `deadline`
/// (`None`: for ever).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub keys: Vec<Vec<u8>>,
    pub deadline: Option<std::time::Instant>,
}

/// Parses a blocking command's timeout (seconds, a float; 0 waits for ever) into a deadline, as
/// Redis does (rounded up to the millisecond).
///
/// # Errors
/// Redis's wording for a timeout that is not a number, negative, or too large.
pub fn timeout_arg(arg: &[u8]) -> Result<Option<std::time::Duration>, crate::command::Error> {
    let seconds = std::str::from_utf8(arg)
        .ok()
        .filter(|t| !t.is_empty() && !t.starts_with(char::is_whitespace))
        .filter(|t| !t.to_ascii_lowercase().contains("nan"))
        .and_then(|t| t.parse::<f64>().ok())
        .ok_or("ERR timeout is not a float or out of range")?;
    let ms = (seconds * 1000.0).ceil();
    if ms > i64::MAX as f64 {
        return Err("ERR timeout is out of range".into());
    }
    if ms < 0.0 {
        return Err("ERR timeout is negative".into());
    }
    Ok((ms > 0.0).then(|| std::time::Duration::from_millis(ms as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_in_line_is_woken_and_it_hands_on_when_it_leaves() {
        let blocking = Blocking::default();
        let a = blocking.block(1, vec![b"k".to_vec()]);
        let b = blocking.block(2, vec![b"k".to_vec(), b"j".to_vec()]);
        assert_eq!(blocking.blocked(), 2);
        blocking.ready(b"k");
        assert_eq!(a.state.load(Ordering::Acquire), READY);
        assert_eq!(b.state.load(Ordering::Acquire), WAITING);
        blocking.unblock(&a);
        assert_eq!(b.state.load(Ordering::Acquire), READY, "handed on");
        blocking.rearm(&b);
        assert!(blocking.unblock_client(2, Unblocked::Error));
        assert_eq!(b.unblocked(), Some(Unblocked::Error));
        blocking.ready(b"j");
        assert_eq!(
            b.unblocked(),
            Some(Unblocked::Error),
            "kept over a readiness"
        );
        blocking.unblock(&b);
        assert_eq!(blocking.blocked(), 0);
        assert!(!blocking.unblock_client(2, Unblocked::Timeout));
        assert!(blocking.queues.lock().by_key.is_empty());
    }

    #[test]
    fn timeouts_parse_as_redis_reads_them() {
        use std::time::Duration;
        assert_eq!(timeout_arg(b"0").unwrap(), None);
        assert_eq!(
            timeout_arg(b"0.0001").unwrap(),
            Some(Duration::from_millis(1))
        );
        assert_eq!(
            timeout_arg(b"1.5").unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(timeout_arg(b"-0.0001").unwrap(), None, "rounds up to 0");
        assert_eq!(timeout_arg(b"-1").unwrap_err().0, "ERR timeout is negative");
        assert_eq!(
            timeout_arg(b"x").unwrap_err().0,
            "ERR timeout is not a float or out of range"
        );
        assert_eq!(
            timeout_arg(b"inf").unwrap_err().0,
            "ERR timeout is out of range"
        );
    }
}
