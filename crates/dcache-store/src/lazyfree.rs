//! Freeing large values in the background, as Redis's lazyfree: deleting, evicting or expiring a
//! collection of a million elements must not hold its shard (and every client of it) while a
//! million allocations are returned.

use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

use crate::entry::Aggregate;

/// Aggregates with more elements than this are freed by the background thread; smaller ones
/// cost less to free than to hand over.
pub(crate) const LAZYFREE_THRESHOLD: usize = 64;

/// Frees `aggregate`: at once if it is small, else on the background thread.
pub(crate) fn drop_aggregate(aggregate: Aggregate) {
    if aggregate.len() <= LAZYFREE_THRESHOLD {
        return;
    }
    static FREER: OnceLock<Option<Sender<Aggregate>>> = OnceLock::new();
    let freer = FREER.get_or_init(|| {
        let (tx, rx) = channel::<Aggregate>();
        std::thread::Builder::new()
            .name("dcache-lazyfree".into())
            .spawn(move || rx.into_iter().for_each(drop))
            .ok()
            .map(|_| tx)
    });
    // Without the thread (it could not be started), or should it be gone, the value is freed
    // here when the send hands it back.
    if let Some(tx) = freer {
        let _ = tx.send(aggregate);
    }
}
