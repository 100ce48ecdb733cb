//! Following the agreed topology, and moving slots to their new owners.

use std::sync::Arc;

use dcache_cluster::Topology;
use tokio::sync::watch;

use crate::state::Shared;

/// Takes every new topology into the node's routing until `stop`.
pub async fn follow(
    shared: Arc<Shared>,
    mut topology: watch::Receiver<Arc<Topology>>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(cluster) = shared.cluster.clone() else {
        return;
    };
    loop {
        tokio::select! {
            changed = topology.changed() => {
                if changed.is_err() {
                    return;
                }
                let next = Arc::clone(&topology.borrow_and_update());
                cluster.set_topology(next);
            }
            _ = stop.changed() => return,
        }
    }
}
