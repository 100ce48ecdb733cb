//! The Raft log store and state machine pass openraft's own storage suite (vote, log,
//! truncation, purge, membership, snapshots), each case on a fresh directory.

use dcache_cluster::raft::log_store::LogStore;
use dcache_cluster::raft::state_machine::StateMachine;
use dcache_cluster::raft::types::{StorageError, TypeConfig};
use openraft::StorageIOError;
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

struct Fresh;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Fresh {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let io = |e: std::io::Error| StorageError::from(StorageIOError::write(&e));
        let dir = TempDir::new().map_err(io)?;
        let log = LogStore::open(dir.path()).map_err(io)?;
        let (tx, _) = tokio::sync::watch::channel(Default::default());
        let machine = StateMachine::open(dir.path(), tx).map_err(io)?;
        // The directory lives as long as the stores: the suite drops the guard last.
        Ok((dir, log, machine))
    }
}

#[test]
fn the_stores_pass_openrafts_storage_suite() {
    Suite::test_all(Fresh).expect("every case passes");
}
