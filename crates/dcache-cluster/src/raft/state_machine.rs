//! The Raft state machine: the [`Topology`], changed by applying each committed [`Change`] with
//! [`Topology::apply`]; its snapshot is the serialised topology, kept in `snapshot.json`.
//!
//! Only the snapshot is on disk: at start the machine is the last snapshot, and Raft applies the
//! committed entries after it again (applying the same changes in the same order gives the same
//! topology, so this is safe).
//!
//! [`Change`]: crate::topology::Change

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::files::{read_json, write_json};
use super::types::{
    Applied, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::topology::Topology;

const SNAPSHOT: &str = "snapshot.json";

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    topology: Topology,
}

/// The topology as Raft's state machine. Everyone else reads it through the watch channel.
pub struct StateMachine {
    snapshots: SnapshotFile,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    topology: Arc<Topology>,
    tx: watch::Sender<Arc<Topology>>,
}

/// The snapshot file; the lock keeps a snapshot being built and one being installed from
/// writing it at the same time (and an older one from replacing a newer one).
#[derive(Clone)]
struct SnapshotFile {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl SnapshotFile {
    fn read(&self) -> io::Result<Option<StoredSnapshot>> {
        read_json(&self.path)
    }

    fn write(&self, snapshot: &StoredSnapshot) -> io::Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let newer = match self.read()? {
            Some(old) => old.meta.last_log_id <= snapshot.meta.last_log_id,
            None => true,
        };
        if newer {
            write_json(&self.path, snapshot)?;
        }
        Ok(())
    }
}

impl StateMachine {
    /// The state machine as of the last snapshot in `dir`; every topology it applies from now on
    /// is sent on `tx`.
    ///
    /// # Errors
    /// The snapshot file cannot be read.
    pub fn open(dir: &Path, tx: watch::Sender<Arc<Topology>>) -> io::Result<Self> {
        let snapshots = SnapshotFile {
            path: dir.join(SNAPSHOT),
            lock: Arc::default(),
        };
        let mut machine = Self {
            snapshots,
            last_applied: None,
            membership: StoredMembership::default(),
            topology: Arc::default(),
            tx,
        };
        if let Some(stored) = machine.snapshots.read()? {
            machine.last_applied = stored.meta.last_log_id;
            machine.membership = stored.meta.last_membership;
            machine.topology = Arc::new(stored.topology);
        }
        machine.tx.send_replace(machine.topology.clone());
        Ok(machine)
    }

    /// Whether a snapshot was loaded (this node has been part of a cluster).
    #[must_use]
    pub fn has_state(&self) -> bool {
        self.last_applied.is_some()
    }

    fn set_topology(&mut self, topology: Topology) {
        self.topology = Arc::new(topology);
        self.tx.send_replace(self.topology.clone());
    }
}

/// Builds a snapshot from a copy of the state taken when the build was asked for.
pub struct Builder {
    snapshots: SnapshotFile,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    topology: Arc<Topology>,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let data = serde_json::to_vec(&*self.topology)
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        let snapshot_id = match self.last_applied {
            Some(last) => format!("{}-{}", last.leader_id, last.index),
            None => "empty".to_owned(),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            topology: (*self.topology).clone(),
        };
        self.snapshots
            .write(&stored)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut replies = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let result = match entry.payload {
                EntryPayload::Blank => Ok(()),
                EntryPayload::Normal(change) => {
                    let mut next = (*self.topology).clone();
                    let result = next.apply(&change);
                    if result.is_ok() {
                        self.set_topology(next);
                    } else {
                        tracing::debug!(?change, ?result, "topology change refused");
                    }
                    result
                }
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Ok(())
                }
            };
            replies.push(Applied {
                result,
                topology: Some(self.topology.clone()),
            });
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Builder {
        Builder {
            snapshots: self.snapshots.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            topology: self.topology.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let topology: Topology = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            topology,
        };
        self.snapshots
            .write(&stored)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.set_topology(stored.topology);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored = self
            .snapshots
            .read()
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(stored.map(|s| Snapshot {
            snapshot: Box::new(Cursor::new(
                serde_json::to_vec(&s.topology).expect("a topology serialises"),
            )),
            meta: s.meta,
        }))
    }
}
