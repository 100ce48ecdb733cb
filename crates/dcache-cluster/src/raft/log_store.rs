//! The Raft log and vote, kept in the node's directory.
//!
//! ```text
//!   raft-log        records, each [u32 little-endian length][JSON]:
//!                     Entry(entry) | Truncate(from index) | Purged(log id)
//!                   appended and fsynced before Raft is told the entries are stored;
//!                   rewritten whole (atomically) when a snapshot lets the head be purged
//!   vote.json       the vote, replaced atomically (a node must never vote twice in a term)
//!   committed.json  the commit point, so a restarted node applies what it knows is committed
//!                   before it hears from a leader (losing it is harmless: Raft re-learns it)
//! ```
//!
//! Topology changes are rare and small, so everything is kept in memory too, and the file is
//! replayed at start. A torn last record (a crash in the middle of an append) is cut off: Raft
//! never acknowledged it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};

use super::files::{read_json, sync_dir, write_atomic, write_json};
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const LOG: &str = "raft-log";
const VOTE: &str = "vote.json";
const COMMITTED: &str = "committed.json";
/// A record longer than this is corruption, not a topology change.
const MAX_RECORD: usize = 256 << 20;

#[derive(Serialize, Deserialize)]
enum Record {
    Entry(Entry),
    Truncate(u64),
    Purged(LogId),
}

/// The log store; clones share it (openraft takes one as the store and others as readers).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry>,
    purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir` and replays it.
    ///
    /// # Errors
    /// The directory cannot be read or written, or a file in it is not ours.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let path = dir.join(LOG);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut entries = BTreeMap::new();
        let mut purged = None;
        let good = replay(&bytes, &mut entries, &mut purged);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if good < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                kept = good,
                dropped = bytes.len() - good,
                "cutting off a torn record at the end of the Raft log"
            );
            file.set_len(good as u64)?;
        }
        sync_dir(&path)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_owned(),
                file,
                entries,
                purged,
                vote: read_json(&dir.join(VOTE))?,
                committed: read_json(&dir.join(COMMITTED))?,
            })),
        })
    }

    /// Whether this node has been part of a cluster: it has log entries (or purged some).
    #[must_use]
    pub fn has_state(&self) -> bool {
        let inner = self.lock();
        !inner.entries.is_empty() || inner.purged.is_some()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the in-memory copy possibly ahead of the file;
        // the file is the truth, and Raft stops on the panic anyway.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Applies the records in `bytes`; returns how many bytes held whole records.
fn replay(bytes: &[u8], entries: &mut BTreeMap<u64, Entry>, purged: &mut Option<LogId>) -> usize {
    let mut at = 0;
    while let Some(len_bytes) = bytes.get(at..at + 4) {
        let len = u32::from_le_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
        let Some(body) = bytes
            .get(at + 4..at + 4 + len)
            .filter(|_| len <= MAX_RECORD)
        else {
            break;
        };
        match serde_json::from_slice(body) {
            Ok(Record::Entry(entry)) => {
                entries.insert(entry.log_id.index, entry);
            }
            Ok(Record::Truncate(from)) => {
                entries.split_off(&from);
            }
            Ok(Record::Purged(log_id)) => {
                *entries = entries.split_off(&(log_id.index + 1));
                *purged = Some(log_id);
            }
            Err(_) => break,
        }
        at += 4 + len;
    }
    at
}

fn encode(record: &Record, out: &mut Vec<u8>) -> io::Result<()> {
    let body = serde_json::to_vec(record).map_err(io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

impl Inner {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.file.sync_data()
    }

    /// Rewrites the log as the purge point and the entries after it, atomically.
    fn compact(&mut self) -> io::Result<()> {
        let mut out = Vec::new();
        if let Some(purged) = self.purged {
            encode(&Record::Purged(purged), &mut out)?;
        }
        for entry in self.entries.values() {
            encode(&Record::Entry(entry.clone()), &mut out)?;
        }
        let path = self.dir.join(LOG);
        write_atomic(&path, &out)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        Ok(self
            .lock()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

// Every method does its (small, rare) file I/O in place rather than on a blocking thread: a
// topology change is a few hundred bytes, and staying on the task keeps tests with paused time
// deterministic.
impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last.or(inner.purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.lock();
        write_json(&inner.dir.join(VOTE), vote).map_err(|e| StorageIOError::write_vote(&e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        if inner.committed != committed {
            write_json(&inner.dir.join(COMMITTED), &committed)
                .map_err(|e| StorageIOError::write(&e))?;
            inner.committed = committed;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock();
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut out = Vec::new();
        let written = entries
            .iter()
            .try_for_each(|e| encode(&Record::Entry(e.clone()), &mut out))
            .and_then(|()| inner.write(&out));
        match written {
            Ok(()) => {
                for entry in entries {
                    inner.entries.insert(entry.log_id.index, entry);
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = StorageIOError::write_logs(&e);
                callback.log_io_completed(Err(e));
                Err(err.into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let mut out = Vec::new();
        encode(&Record::Truncate(log_id.index), &mut out)
            .and_then(|()| inner.write(&out))
            .map_err(|e| StorageIOError::write_logs(&e))?;
        inner.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.entries = inner.entries.split_off(&(log_id.index + 1));
        inner.purged = Some(log_id);
        inner
            .compact()
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::topology::Change;

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 7), index),
            payload: EntryPayload::Normal(Change::Rebalance),
        }
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.lock().entries.keys().copied().collect()
    }

    #[test]
    fn replay_applies_truncations_and_purges_and_cuts_a_torn_tail() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut bytes = Vec::new();
        for i in 1..=5 {
            encode(&Record::Entry(entry(i)), &mut bytes).unwrap();
        }
        encode(&Record::Truncate(4), &mut bytes).unwrap();
        encode(&Record::Entry(entry(4)), &mut bytes).unwrap();
        encode(&Record::Purged(entry(1).log_id), &mut bytes).unwrap();
        let whole = bytes.len();
        // A crash in the middle of the next append: its length made it, its body did not.
        encode(&Record::Entry(entry(5)), &mut bytes).unwrap();
        bytes.truncate(whole + 10);
        std::fs::write(dir.path().join(LOG), &bytes).unwrap();

        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), vec![2, 3, 4]);
        assert_eq!(store.lock().purged, Some(entry(1).log_id));
        assert_eq!(
            std::fs::metadata(dir.path().join(LOG)).unwrap().len(),
            whole as u64,
            "the torn record is cut off"
        );
        drop(store);
        assert_eq!(indexes(&LogStore::open(dir.path()).unwrap()), vec![2, 3, 4]);
    }

    #[tokio::test]
    async fn a_purge_rewrites_the_file_with_what_is_left() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut bytes = Vec::new();
        for i in 1..=6 {
            encode(&Record::Entry(entry(i)), &mut bytes).unwrap();
        }
        std::fs::write(dir.path().join(LOG), &bytes).unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store.purge(entry(4).log_id).await.unwrap();
        store.truncate(entry(6).log_id).await.unwrap();
        let smaller = std::fs::metadata(dir.path().join(LOG)).unwrap().len();
        assert!(smaller < bytes.len() as u64);

        let mut back = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&back), vec![5]);
        let state = back.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry(4).log_id));
        assert_eq!(state.last_log_id, Some(entry(5).log_id));
    }
}
