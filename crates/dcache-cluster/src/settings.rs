//! Cluster-wide replication settings: how many copies each slot has and how writes reach them.
//! They live in the [`Topology`](crate::Topology) and change only by a committed
//! [`Change::Set`](crate::Change::Set), so every node agrees on them epoch by epoch.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The most copies of a slot besides its primary.
pub const MAX_REPLICAS: u8 = 4;

/// How a write reaches a slot's copies (`docs/REPLICATION.md` says what each promises).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The primary applies a write and acknowledges it once `sync_replicas` replicas hold it.
    Primary,
    /// Any copy coordinates: a write is acknowledged by `write_quorum` copies, a read asks
    /// `read_quorum` and answers the newest version.
    Quorum,
    /// Writes enter at the head (the primary) and flow down the set; the tail acknowledges them
    /// and serves reads.
    Chain,
}

impl Strategy {
    /// The name used in configuration and commands.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Primary => "primary",
            Strategy::Quorum => "quorum",
            Strategy::Chain => "chain",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A strategy name that is none of `primary`, `quorum`, `chain`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown replication strategy '{0}' (expected primary, quorum or chain)")]
pub struct UnknownStrategy(pub String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    /// Case-insensitive, as Redis reads enumerated configuration values.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Strategy::Primary, Strategy::Quorum, Strategy::Chain]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownStrategy(s.to_owned()))
    }
}

/// The replication settings of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Copies of each slot besides the primary (0 ..= [`MAX_REPLICAS`]).
    pub replicas: u8,
    pub strategy: Strategy,
    /// `primary`: replicas that must hold a write before it is acknowledged (0: asynchronous).
    pub sync_replicas: u8,
    /// `quorum`: copies (the coordinator's included) that must hold a write before it is
    /// acknowledged.
    pub write_quorum: u8,
    /// `quorum`: copies a read asks.
    pub read_quorum: u8,
}

/// Why settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SettingsError {
    #[error("replicas must be at most {MAX_REPLICAS}, not {0}")]
    TooManyReplicas(u8),
    #[error("sync-replicas ({sync}) must be at most replicas ({replicas})")]
    SyncReplicas { sync: u8, replicas: u8 },
    #[error("write-quorum ({0}) must be between 1 and replicas + 1 ({1})")]
    WriteQuorum(u8, u8),
    #[error("read-quorum ({0}) must be between 1 and replicas + 1 ({1})")]
    ReadQuorum(u8, u8),
}

impl Default for Settings {
    /// No replicas: one copy per slot, as a cluster without replication.
    fn default() -> Self {
        Settings::new(0, Strategy::Primary)
    }
}

impl Settings {
    /// `replicas` copies besides the primary under `strategy`, with the defaults of the other
    /// knobs: one synchronous replica when there is any, and majorities of the copies as quorums.
    #[must_use]
    pub fn new(replicas: u8, strategy: Strategy) -> Settings {
        let majority = (replicas.saturating_add(1)) / 2 + 1;
        Settings {
            replicas,
            strategy,
            sync_replicas: replicas.min(1),
            write_quorum: majority,
            read_quorum: majority,
        }
    }

    /// Copies of each slot, the primary included: the replica sets' length.
    #[must_use]
    pub fn copies(&self) -> usize {
        usize::from(self.replicas) + 1
    }

    /// Checks every knob against `replicas`, whatever the strategy (a knob another strategy
    /// reads must still make sense when the operator switches to it).
    ///
    /// # Errors
    /// The first knob out of range.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.replicas > MAX_REPLICAS {
            return Err(SettingsError::TooManyReplicas(self.replicas));
        }
        if self.sync_replicas > self.replicas {
            return Err(SettingsError::SyncReplicas {
                sync: self.sync_replicas,
                replicas: self.replicas,
            });
        }
        let copies = self.replicas + 1;
        if !(1..=copies).contains(&self.write_quorum) {
            return Err(SettingsError::WriteQuorum(self.write_quorum, copies));
        }
        if !(1..=copies).contains(&self.read_quorum) {
            return Err(SettingsError::ReadQuorum(self.read_quorum, copies));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_replica_count() {
        assert_eq!(
            Settings::default(),
            Settings {
                replicas: 0,
                strategy: Strategy::Primary,
                sync_replicas: 0,
                write_quorum: 1,
                read_quorum: 1,
            }
        );
        let cases = [(0, 0, 1), (1, 1, 2), (2, 1, 2), (3, 1, 3), (4, 1, 3)];
        for (replicas, sync, majority) in cases {
            let s = Settings::new(replicas, Strategy::Quorum);
            assert_eq!(
                (s.sync_replicas, s.write_quorum, s.read_quorum),
                (sync, majority, majority),
                "{replicas} replicas"
            );
            assert_eq!(s.validate(), Ok(()));
        }
    }

    #[test]
    fn knobs_out_of_range_are_refused() {
        let ok = Settings::new(2, Strategy::Primary);
        let refused = [
            (
                Settings {
                    replicas: 5,
                    ..Settings::new(4, Strategy::Chain)
                },
                SettingsError::TooManyReplicas(5),
            ),
            (
                Settings {
                    sync_replicas: 3,
                    ..ok
                },
                SettingsError::SyncReplicas {
                    sync: 3,
                    replicas: 2,
                },
            ),
            (
                Settings {
                    write_quorum: 0,
                    ..ok
                },
                SettingsError::WriteQuorum(0, 3),
            ),
            (
                Settings {
                    write_quorum: 4,
                    ..ok
                },
                SettingsError::WriteQuorum(4, 3),
            ),
            (
                Settings {
                    read_quorum: 0,
                    ..ok
                },
                SettingsError::ReadQuorum(0, 3),
            ),
            (
                Settings {
                    read_quorum: 4,
                    ..ok
                },
                SettingsError::ReadQuorum(4, 3),
            ),
        ];
        for (settings, error) in refused {
            assert_eq!(settings.validate(), Err(error), "{settings:?}");
        }
    }

    #[test]
    fn strategies_parse_and_print_their_names() {
        for s in [Strategy::Primary, Strategy::Quorum, Strategy::Chain] {
            assert_eq!(s.to_string().parse::<Strategy>(), Ok(s));
            assert_eq!(s.to_string().to_uppercase().parse::<Strategy>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(
            "raft".parse::<Strategy>(),
            Err(UnknownStrategy("raft".into()))
        );
    }
}
