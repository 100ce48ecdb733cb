//! The node's configuration: one serde struct with named defaults, loadable from TOML
//! (`config/node.toml` is a sample), overridable from the command line, printable.

use std::fmt;
use std::str::FromStr;

use dcache_store::PolicyName;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A byte count written the way Redis writes them: `1024`, `100k` (1000), `100kb` (1024),
/// `256mb`, `1gb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteSize(pub usize);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let split = lower
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(lower.len());
        let (digits, unit) = lower.split_at(split);
        let multiplier: usize = match unit {
            "" | "b" => 1,
            "k" => 1000,
            "kb" => 1024,
            "m" => 1000 * 1000,
            "mb" => 1024 * 1024,
            "g" => 1000 * 1000 * 1000,
            "gb" => 1024 * 1024 * 1024,
            _ => {
                return Err(format!(
                    "invalid memory size '{s}' (examples: 1048576, 100mb, 2gb)"
                ));
            }
        };
        digits
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
            .map(ByteSize)
            .ok_or_else(|| format!("invalid memory size '{s}' (examples: 1048576, 100mb, 2gb)"))
    }
}

/// The exact size in the largest unit that divides it: `512mb`, `1gb`, `1000`.
impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, usize); 3] = [("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)];
        let n = self.0;
        match UNITS
            .iter()
            .find(|(_, size)| n != 0 && n.is_multiple_of(*size))
        {
            Some((unit, size)) => write!(f, "{}{unit}", n / size),
            None => write!(f, "{n}"),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(usize),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Bytes in Redis's human form (`1.50M`), as INFO's `*_human` fields print them.
#[must_use]
pub fn human_bytes(n: usize) -> String {
    const UNITS: [(&str, f64); 4] = [
        ("T", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("G", 1024.0 * 1024.0 * 1024.0),
        ("M", 1024.0 * 1024.0),
        ("K", 1024.0),
    ];
    for (unit, size) in UNITS {
        if n as f64 >= size {
            return format!("{:.2}{unit}", n as f64 / size);
        }
    }
    format!("{n}B")
}

/// `client-output-buffer-limit` for ordinary clients: unsent replies past `hard` bytes, or past
/// `soft` bytes for `soft_seconds` in a row, disconnect the client. 0 turns a limit off. Written
/// as Redis writes one class: `normal 1gb 256mb 60`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputBufferLimit {
    pub hard: usize,
    pub soft: usize,
    pub soft_seconds: u64,
}

impl FromStr for OutputBufferLimit {
    type Err = String;

    /// Takes `[normal] hard soft seconds`; other classes are refused, since a node has no
    /// replica or pub/sub clients yet.
    fn from_str(s: &str) -> Result<Self, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let values = match words.as_slice() {
            [class, rest @ ..] if class.eq_ignore_ascii_case("normal") => rest,
            [class, ..] if class.parse::<ByteSize>().is_err() => {
                return Err(format!(
                    "Invalid client class specified in buffer limit configuration ('{class}'; only 'normal' is supported)"
                ));
            }
            all => all,
        };
        let [hard, soft, seconds] = values else {
            return Err("Wrong number of arguments in buffer limit configuration.".into());
        };
        Ok(Self {
            hard: hard.parse::<ByteSize>()?.0,
            soft: soft.parse::<ByteSize>()?.0,
            soft_seconds: seconds
                .parse()
                .map_err(|_| format!("invalid soft limit seconds '{seconds}'"))?,
        })
    }
}

impl fmt::Display for OutputBufferLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "normal {} {} {}",
            ByteSize(self.hard),
            ByteSize(self.soft),
            self.soft_seconds
        )
    }
}

impl Serialize for OutputBufferLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for OutputBufferLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "unknown log format '{s}' (expected pretty or json)"
            )),
        }
    }
}

/// Everything one node is configured with. Field names are the TOML keys and, where Redis has the
/// same setting, Redis's name for it (so `CONFIG GET maxmemory` finds it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    /// Address to listen on. Loopback unless told otherwise.
    pub bind: String,
    pub port: u16,
    /// Memory budget for the data set; 0 means no limit.
    pub maxmemory: ByteSize,
    pub maxmemory_policy: String,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Storage shards; rounded up to a power of two.
    pub shards: usize,
    /// Password for `AUTH`; empty means none.
    pub requirepass: String,
    /// Port for `/metrics` and `/health`; 0 means no admin listener.
    pub admin_port: u16,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Largest single argument of a request.
    pub proto_max_bulk_len: ByteSize,
    /// Most arguments in one request.
    pub max_args: usize,
    /// Largest unparsed input kept for one client before it is disconnected.
    pub client_query_buffer_limit: ByteSize,
    /// Unsent replies one client may hold before it is disconnected: `normal hard soft seconds`.
    /// The node keeps reading a client's requests while their replies wait, so this, not the
    /// client's reading, is what bounds them.
    pub client_output_buffer_limit: OutputBufferLimit,
    /// Seconds a client may stay idle before it is closed; 0 never closes one.
    pub timeout: u64,
    /// Most simultaneous clients.
    pub maxclients: usize,
    /// Background cycles per second (active expiry, ops/s sampling).
    pub hz: u32,
    /// This node's id in versions (0-1023).
    pub node_id: u16,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1".into(),
            port: 5000,
            maxmemory: ByteSize(0),
            maxmemory_policy: "allkeys-s3fifo".into(),
            threads: 0,
            shards: 64,
            requirepass: String::new(),
            admin_port: 0,
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            proto_max_bulk_len: ByteSize(512 * 1024 * 1024),
            max_args: 1024 * 1024,
            client_query_buffer_limit: ByteSize(1024 * 1024 * 1024),
            // Large enough for any single reply (proto-max-bulk-len is 512 MB), small enough that
            // a client that never reads cannot grow the node without bound.
            client_output_buffer_limit: OutputBufferLimit {
                hard: 1 << 30,
                soft: 256 << 20,
                soft_seconds: 60,
            },
            timeout: 0,
            maxclients: 10_000,
            hz: 10,
            node_id: 0,
        }
    }
}

impl NodeConfig {
    /// Reads a TOML file; keys it does not name keep their defaults.
    ///
    /// # Errors
    /// An unreadable file, bad TOML, an unknown key or an invalid value.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let config: NodeConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that serde cannot.
    ///
    /// # Errors
    /// The first invalid value, named.
    pub fn validate(&self) -> Result<(), String> {
        self.policy()?;
        if self.node_id >= 1024 {
            return Err(format!("node-id {} is out of range (0-1023)", self.node_id));
        }
        if self.proto_max_bulk_len.0 > dcache_store::MAX_KEY_LEN {
            return Err(format!(
                "proto-max-bulk-len {} is over the largest key the store takes ({} bytes)",
                self.proto_max_bulk_len.0,
                dcache_store::MAX_KEY_LEN
            ));
        }
        if self.hz == 0 || self.hz > 500 {
            return Err(format!("hz {} is out of range (1-500)", self.hz));
        }
        Ok(())
    }

    /// The eviction policy, parsed.
    ///
    /// # Errors
    /// An unknown policy name.
    pub fn policy(&self) -> Result<PolicyName, String> {
        self.maxmemory_policy.parse()
    }

    /// The effective configuration as TOML (`dcache node --print-config`).
    #[must_use]
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the config serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse_like_redis() {
        for (text, bytes) in [
            ("1024", 1024),
            ("100k", 100_000),
            ("100kb", 102_400),
            ("256mb", 256 << 20),
            ("1GB", 1 << 30),
            ("2g", 2_000_000_000),
        ] {
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)), "{text}");
        }
        assert!("12xb".parse::<ByteSize>().is_err());
        assert!("-1".parse::<ByteSize>().is_err());
        assert!("".parse::<ByteSize>().is_err());
    }

    #[test]
    fn output_buffer_limits_parse_like_redis() {
        let limit: OutputBufferLimit = "normal 64mb 16mb 30".parse().unwrap();
        assert_eq!(
            limit,
            OutputBufferLimit {
                hard: 64 << 20,
                soft: 16 << 20,
                soft_seconds: 30
            }
        );
        assert_eq!(limit.to_string().parse::<OutputBufferLimit>(), Ok(limit));
        assert_eq!("0 0 0".parse::<OutputBufferLimit>().unwrap().hard, 0);
        assert!("pubsub 32mb 8mb 60".parse::<OutputBufferLimit>().is_err());
        assert!("normal 1mb".parse::<OutputBufferLimit>().is_err());
        assert!("normal 1mb 1xb 3".parse::<OutputBufferLimit>().is_err());
    }

    #[test]
    fn toml_round_trips_and_rejects_unknown_keys() {
        let config = NodeConfig::from_toml("port = 6000\nmaxmemory = \"256mb\"\n").unwrap();
        assert_eq!(config.port, 6000);
        assert_eq!(config.maxmemory, ByteSize(256 << 20));
        assert_eq!(NodeConfig::from_toml(&config.to_toml()).unwrap(), config);
        assert!(
            NodeConfig::from_toml("prot = 1")
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(NodeConfig::from_toml("maxmemory-policy = \"mru\"").is_err());
        assert!(NodeConfig::from_toml("proto-max-bulk-len = \"1gb\"").is_err());
    }

    #[test]
    fn the_sample_config_is_valid_and_complete() {
        let sample = include_str!("../../../config/node.toml");
        let config = NodeConfig::from_toml(sample).unwrap();
        // The sample spells out every setting with its default value.
        assert_eq!(config, NodeConfig::default());
        let keys = toml::from_str::<toml::Table>(&NodeConfig::default().to_toml()).unwrap();
        let sample_keys = toml::from_str::<toml::Table>(sample).unwrap();
        assert_eq!(
            keys.keys().collect::<Vec<_>>(),
            sample_keys.keys().collect::<Vec<_>>()
        );
    }
}
