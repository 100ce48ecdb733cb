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

/// The values within which a node stays usable, for the settings `CONFIG SET` can change. A
/// config file and `CONFIG SET` hold to the same ranges, so that no setting can lock every client
/// out (`max-args 1` would refuse every request, `CONFIG SET` included) or stall the node.
pub mod ranges {
    use std::ops::RangeInclusive;

    /// Redis's minimum: a request argument can always be a megabyte. The top is the largest key
    /// the store takes.
    pub const PROTO_MAX_BULK_LEN: RangeInclusive<u64> =
        1024 * 1024..=dcache_store::MAX_KEY_LEN as u64;
    /// Redis's range.
    pub const CLIENT_QUERY_BUFFER_LIMIT: RangeInclusive<u64> = 1024 * 1024..=i64::MAX as u64;
    /// Enough for `CONFIG SET` with several pairs, `MSET` of hundreds of keys and every other
    /// ordinary request; the top is the largest multibulk count the parser reads.
    pub const MAX_ARGS: RangeInclusive<u64> = 1024..=i32::MAX as u64;
    /// Redis's range.
    pub const MAXCLIENTS: RangeInclusive<u64> = 1..=u32::MAX as u64;
    /// Redis clamps `hz` to 1-500 silently; dcache refuses what it would not use.
    pub const HZ: RangeInclusive<u64> = 1..=500;
    /// Redis's range.
    pub const TRACKING_TABLE_MAX_KEYS: RangeInclusive<u64> = 0..=i64::MAX as u64;
    /// Redis's range. A sparse value past the dense size (12304 bytes) only costs time.
    pub const HLL_SPARSE_MAX_BYTES: RangeInclusive<u64> = 0..=i64::MAX as u64;
    /// Redis's range for the compact encodings' limits.
    pub const LISTPACK: RangeInclusive<u64> = 0..=i64::MAX as u64;
    /// Redis's range.
    pub const TIMEOUT: RangeInclusive<u64> = 0..=i32::MAX as u64;
    /// Redis's range (a C `long`).
    pub const BUSY_REPLY_THRESHOLD: RangeInclusive<u64> = 0..=i64::MAX as u64;
    /// Redis's range (a C int).
    pub const LIST_MAX_LISTPACK_SIZE: RangeInclusive<i64> = i32::MIN as i64..=i32::MAX as i64;
    /// At least two failure-detection rounds of a loopback network; at most an hour.
    pub const CLUSTER_NODE_TIMEOUT: RangeInclusive<u64> = 100..=3_600_000;
    /// A hard or soft `client-output-buffer-limit` is 0 (off) or in this range. The node checks
    /// the limit with a batch's replies still unsent, so a limit of a few bytes would disconnect
    /// every client after its first command, `CONFIG SET` included.
    pub const OUTPUT_BUFFER_LIMIT: RangeInclusive<u64> = 1024 * 1024..=i64::MAX as u64;

    /// Checks both limits of a `client-output-buffer-limit`.
    ///
    /// # Errors
    /// Which limit is out of range, and the range.
    pub fn check_output_buffer_limit(limit: &super::OutputBufferLimit) -> Result<(), String> {
        for (which, bytes) in [("hard", limit.hard), ("soft", limit.soft)] {
            if bytes != 0 && !OUTPUT_BUFFER_LIMIT.contains(&(bytes as u64)) {
                return Err(format!(
                    "the {which} limit must be 0 or between {} and {} inclusive",
                    OUTPUT_BUFFER_LIMIT.start(),
                    OUTPUT_BUFFER_LIMIT.end()
                ));
            }
        }
        Ok(())
    }

    /// Redis's wording for a value outside `range`.
    #[must_use]
    pub fn message(range: &RangeInclusive<u64>) -> String {
        format!(
            "argument must be between {} and {} inclusive",
            range.start(),
            range.end()
        )
    }
}

/// A Redis `yes`/`no` setting. TOML takes `"yes"`/`"no"` or `true`/`false`; it prints as
/// `"yes"`/`"no"`, the way `CONFIG GET` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YesNo(pub bool);

impl FromStr for YesNo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "yes" => Ok(YesNo(true)),
            "no" => Ok(YesNo(false)),
            _ => Err("argument must be 'yes' or 'no'".into()),
        }
    }
}

impl fmt::Display for YesNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "yes" } else { "no" })
    }
}

impl Serialize for YesNo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for YesNo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(b) => Ok(YesNo(b)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Redis's `tls-auth-clients`: whether TLS clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsAuthClients {
    #[default]
    Yes,
    No,
    Optional,
}

impl FromStr for TlsAuthClients {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "yes" => Ok(Self::Yes),
            "no" => Ok(Self::No),
            "optional" => Ok(Self::Optional),
            _ => Err("argument(s) must be one of the following: no, yes, optional".into()),
        }
    }
}

impl fmt::Display for TlsAuthClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Yes => "yes",
            Self::No => "no",
            Self::Optional => "optional",
        })
    }
}

/// One class of `client-output-buffer-limit`: unsent replies past `hard` bytes, or past `soft`
/// bytes for `soft_seconds` in a row, disconnect the client. 0 turns a limit off. Written
/// `hard soft seconds`, as in one class of Redis's setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputBufferLimit {
    pub hard: usize,
    pub soft: usize,
    pub soft_seconds: u64,
}

impl OutputBufferLimit {
    fn parse(hard: &str, soft: &str, seconds: &str) -> Result<Self, String> {
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
            "{} {} {}",
            ByteSize(self.hard),
            ByteSize(self.soft),
            self.soft_seconds
        )
    }
}

/// `client-output-buffer-limit`, by class as Redis has it: `normal` for ordinary clients,
/// `pubsub` for a client subscribed to any channel, pattern or shard channel (its unsent replies
/// are mostly messages it did not ask for, so its default is far smaller). Written as Redis
/// writes it: `normal 1gb 256mb 60 pubsub 32mb 8mb 60`. Redis's `replica` class has no clients
/// here (nodes replicate among themselves by another path) and is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputBufferLimits {
    pub normal: OutputBufferLimit,
    pub pubsub: OutputBufferLimit,
}

impl Default for OutputBufferLimits {
    fn default() -> Self {
        Self {
            // Large enough for any single reply (proto-max-bulk-len is 512 MB), small enough that
            // a client that never reads cannot grow the node without bound.
            normal: OutputBufferLimit {
                hard: 1 << 30,
                soft: 256 << 20,
                soft_seconds: 60,
            },
            // Redis's default.
            pubsub: OutputBufferLimit {
                hard: 32 << 20,
                soft: 8 << 20,
                soft_seconds: 60,
            },
        }
    }
}

impl OutputBufferLimits {
    /// These limits with the classes that `text` names changed, as `CONFIG SET` changes them
    /// (`pubsub 1mb 0 0` leaves `normal` alone). Three words without a class name the
    /// `normal` class.
    ///
    /// # Errors
    /// Redis's wording for a malformed setting; a limit outside its range.
    pub fn with(mut self, text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if let [hard, soft, seconds] = words.as_slice()
            && hard.parse::<ByteSize>().is_ok()
        {
            self.normal = OutputBufferLimit::parse(hard, soft, seconds)?;
            ranges::check_output_buffer_limit(&self.normal)?;
            return Ok(self);
        }
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.".into());
        }
        for group in words.chunks(4) {
            let limit = OutputBufferLimit::parse(group[1], group[2], group[3])?;
            ranges::check_output_buffer_limit(&limit)?;
            match group[0].to_ascii_lowercase().as_str() {
                "normal" => self.normal = limit,
                "pubsub" => self.pubsub = limit,
                class => {
                    return Err(format!(
                        "Invalid client class specified in buffer limit configuration ('{class}'; only 'normal' and 'pubsub' are supported)"
                    ));
                }
            }
        }
        Ok(self)
    }

    /// The class of a client: `pubsub` while it is subscribed to anything.
    #[must_use]
    pub fn for_client(&self, subscribed: bool) -> &OutputBufferLimit {
        if subscribed {
            &self.pubsub
        } else {
            &self.normal
        }
    }
}

impl FromStr for OutputBufferLimits {
    type Err = String;

    /// The named classes over the defaults.
    fn from_str(s: &str) -> Result<Self, String> {
        Self::default().with(s)
    }
}

impl fmt::Display for OutputBufferLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "normal {} pubsub {}", self.normal, self.pubsub)
    }
}

impl Serialize for OutputBufferLimits {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for OutputBufferLimits {
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
    /// Refuse clients from other hosts while the node listens beyond loopback without a password.
    pub protected_mode: YesNo,
    /// Port for TLS clients, beside the plain port; 0 means no TLS. With a TLS port set, port 0
    /// turns the plain listener off (as in Redis).
    pub tls_port: u16,
    /// The node's certificate chain (PEM), required with `tls-port`.
    pub tls_cert_file: String,
    /// The private key of `tls-cert-file` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key_file: String,
    /// CA certificates (PEM) that client certificates must chain to; empty asks for none.
    pub tls_ca_cert_file: String,
    /// With `tls-ca-cert-file`: whether clients must present a certificate (`yes`), may
    /// (`optional`: verified when presented) or are not asked (`no`).
    pub tls_auth_clients: TlsAuthClients,
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
    /// Unsent replies one client may hold before it is disconnected, by class:
    /// `normal hard soft seconds pubsub hard soft seconds`. The node keeps reading a client's
    /// requests while their replies wait, and publishers never wait for a subscriber, so this,
    /// not the client's reading, is what bounds them.
    pub client_output_buffer_limit: OutputBufferLimits,
    /// Seconds a client may stay idle before it is closed; 0 never closes one.
    pub timeout: u64,
    /// Milliseconds a Lua script runs before other clients are answered `-BUSY` and it may be
    /// stopped with `SCRIPT KILL` (Redis's setting, also read as `lua-time-limit` by CONFIG).
    pub busy_reply_threshold: u64,
    /// How large a list stays in its packed form (Redis's `list-max-listpack-size`, also read as
    /// `list-max-ziplist-size` by CONFIG): -1 to -5, up to 4 to 64 KB; positive, up to that many
    /// elements (and 8 KB).
    pub list_max_listpack_size: i64,
    /// Most simultaneous clients.
    pub maxclients: usize,
    /// Background cycles per second (active expiry, ops/s sampling).
    pub hz: u32,
    /// Most keys client-side caching remembers readers of; past it, keys are forgotten and
    /// their readers told, as if the keys changed. 0: no bound.
    pub tracking_table_max_keys: usize,
    /// Largest sparse HyperLogLog, header included, before it turns dense (Redis's setting).
    pub hll_sparse_max_bytes: ByteSize,
    /// A hash keeps its compact form (`listpack`) up to this many fields…
    pub hash_max_listpack_entries: usize,
    /// … each field and value at most this many bytes long.
    pub hash_max_listpack_value: usize,
    /// A sorted set keeps its compact form (`listpack`) up to this many members…
    pub zset_max_listpack_entries: usize,
    /// … each at most this many bytes long.
    pub zset_max_listpack_value: usize,
    /// A set of integers only keeps its compact form (`intset`) up to this many members…
    pub set_max_intset_entries: usize,
    /// … and any other set its `listpack` form up to this many members…
    pub set_max_listpack_entries: usize,
    /// … each at most this many bytes long.
    pub set_max_listpack_value: usize,
    /// This node's id in versions (0-1023).
    pub node_id: u16,
    /// Whether the node is a cluster member (Redis Cluster protocol: redirects, `CLUSTER`). A
    /// node started alone is a one-node cluster serving every slot.
    pub cluster_enabled: YesNo,
    /// The cluster-bus port (failure detection, topology agreement); 0 means `port` + 10000.
    pub cluster_port: u16,
    /// Milliseconds without an answer before a node is declared failed.
    pub cluster_node_timeout: u64,
    /// A member to join at start-up (`host:port`, its client port; `host:port@busport` when
    /// its bus port is not port + 10000). Empty: start a cluster of one, or rejoin as before.
    pub join: String,
    /// Where the node keeps its id and its share of the topology log; empty means
    /// `dcache-data/<port>`. The cached data is never written there.
    pub dir: String,
    /// Bytes per second a migration may send; 0 means no limit.
    pub migration_rate: ByteSize,
    /// Copies of each slot besides its primary. A cluster-wide setting: the node that starts a
    /// cluster (no `join`) proposes its own; `dcache cluster set` changes it later.
    pub replicas: u8,
    /// How writes reach the copies: `primary`, `quorum` or `chain` (cluster-wide, as `replicas`).
    pub replication: String,
    /// `primary`: replicas that hold a write before it is acknowledged; unset: 1 with replicas.
    pub sync_replicas: Option<u8>,
    /// `quorum`: copies that hold a write before it is acknowledged; unset: a majority.
    pub write_quorum: Option<u8>,
    /// `quorum`: copies a read asks; unset: a majority.
    pub read_quorum: Option<u8>,
    /// Whether a write to a large hash, set or sorted set sends its copies only the elements
    /// it changed (a delta; the key's whole state when a copy cannot apply it), rather than
    /// the key's whole state. This node's own choice: every node reads deltas.
    pub replication_deltas: YesNo,
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
            protected_mode: YesNo(true),
            tls_port: 0,
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            tls_ca_cert_file: String::new(),
            tls_auth_clients: TlsAuthClients::Yes,
            admin_port: 0,
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            proto_max_bulk_len: ByteSize(512 * 1024 * 1024),
            max_args: 1024 * 1024,
            client_query_buffer_limit: ByteSize(1024 * 1024 * 1024),
            client_output_buffer_limit: OutputBufferLimits::default(),
            timeout: 0,
            busy_reply_threshold: 5000,
            list_max_listpack_size: -2,
            maxclients: 10_000,
            hz: 10,
            tracking_table_max_keys: crate::tracking::DEFAULT_MAX_KEYS,
            hll_sparse_max_bytes: ByteSize(3000),
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            node_id: 0,
            cluster_enabled: YesNo(false),
            cluster_port: 0,
            cluster_node_timeout: 2000,
            join: String::new(),
            dir: String::new(),
            migration_rate: ByteSize(0),
            replicas: 0,
            replication: "primary".into(),
            sync_replicas: None,
            write_quorum: None,
            read_quorum: None,
            replication_deltas: YesNo(true),
        }
    }
}

impl NodeConfig {
    /// The cluster-bus port: `cluster-port`, or `port` + 10000 as in Redis.
    #[must_use]
    pub fn bus_port(&self) -> u16 {
        if self.cluster_port != 0 {
            self.cluster_port
        } else {
            self.port.wrapping_add(10000)
        }
    }

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
        let checks = [
            (
                "proto-max-bulk-len",
                self.proto_max_bulk_len.0 as u64,
                ranges::PROTO_MAX_BULK_LEN,
            ),
            (
                "client-query-buffer-limit",
                self.client_query_buffer_limit.0 as u64,
                ranges::CLIENT_QUERY_BUFFER_LIMIT,
            ),
            ("max-args", self.max_args as u64, ranges::MAX_ARGS),
            ("maxclients", self.maxclients as u64, ranges::MAXCLIENTS),
            ("hz", u64::from(self.hz), ranges::HZ),
            (
                "tracking-table-max-keys",
                self.tracking_table_max_keys as u64,
                ranges::TRACKING_TABLE_MAX_KEYS,
            ),
            (
                "hll-sparse-max-bytes",
                self.hll_sparse_max_bytes.0 as u64,
                ranges::HLL_SPARSE_MAX_BYTES,
            ),
            ("timeout", self.timeout, ranges::TIMEOUT),
            (
                "busy-reply-threshold",
                self.busy_reply_threshold,
                ranges::BUSY_REPLY_THRESHOLD,
            ),
            (
                "cluster-node-timeout",
                self.cluster_node_timeout,
                ranges::CLUSTER_NODE_TIMEOUT,
            ),
        ];
        for limit in [
            &self.client_output_buffer_limit.normal,
            &self.client_output_buffer_limit.pubsub,
        ] {
            ranges::check_output_buffer_limit(limit)
                .map_err(|e| format!("client-output-buffer-limit: {e}"))?;
        }
        if !ranges::LIST_MAX_LISTPACK_SIZE.contains(&self.list_max_listpack_size) {
            return Err(format!(
                "list-max-listpack-size {} is out of range",
                self.list_max_listpack_size
            ));
        }
        for (name, value, range) in checks {
            if !range.contains(&value) {
                return Err(format!(
                    "{name} {value} is out of range ({}-{})",
                    range.start(),
                    range.end()
                ));
            }
        }
        self.replication_settings()?;
        if self.tls_port != 0 && (self.tls_cert_file.is_empty() || self.tls_key_file.is_empty()) {
            return Err("tls-port needs tls-cert-file and tls-key-file".into());
        }
        Ok(())
    }

    /// The replication settings this node proposes when it starts a cluster.
    ///
    /// # Errors
    /// An unknown strategy, or knobs out of range for the number of replicas.
    pub fn replication_settings(&self) -> Result<dcache_cluster::Settings, String> {
        let strategy: dcache_cluster::Strategy = self
            .replication
            .parse()
            .map_err(|e: dcache_cluster::UnknownStrategy| e.to_string())?;
        let mut settings = dcache_cluster::Settings::new(self.replicas, strategy);
        if let Some(k) = self.sync_replicas {
            settings.sync_replicas = k;
        }
        if let Some(w) = self.write_quorum {
            settings.write_quorum = w;
        }
        if let Some(r) = self.read_quorum {
            settings.read_quorum = r;
        }
        settings.validate().map_err(|e| e.to_string())?;
        Ok(settings)
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
    fn yes_no_settings_take_words_or_booleans() {
        for (text, on) in [
            ("protected-mode = \"yes\"", true),
            ("protected-mode = \"NO\"", false),
            ("protected-mode = false", false),
            ("protected-mode = true", true),
        ] {
            assert_eq!(
                NodeConfig::from_toml(text).unwrap().protected_mode,
                YesNo(on),
                "{text}"
            );
        }
        assert!(
            NodeConfig::from_toml("protected-mode = \"maybe\"")
                .unwrap_err()
                .contains("argument must be 'yes' or 'no'")
        );
        assert!(
            NodeConfig::default()
                .to_toml()
                .contains("protected-mode = \"yes\"")
        );
    }

    #[test]
    fn tls_settings_are_checked() {
        let config = NodeConfig::from_toml(
            "tls-port = 6380\ntls-cert-file = \"node.crt\"\ntls-key-file = \"node.key\"\n\
             tls-auth-clients = \"optional\"\n",
        )
        .unwrap();
        assert_eq!(config.tls_auth_clients, TlsAuthClients::Optional);
        assert_eq!(
            NodeConfig::from_toml("tls-port = 6380\ntls-cert-file = \"node.crt\"\n").unwrap_err(),
            "tls-port needs tls-cert-file and tls-key-file"
        );
        assert!(NodeConfig::from_toml("tls-auth-clients = \"maybe\"").is_err());
        assert_eq!("OPTIONAL".parse(), Ok(TlsAuthClients::Optional));
    }

    #[test]
    fn output_buffer_limits_parse_like_redis() {
        let limits: OutputBufferLimits = "normal 64mb 16mb 30".parse().unwrap();
        assert_eq!(
            limits.normal,
            OutputBufferLimit {
                hard: 64 << 20,
                soft: 16 << 20,
                soft_seconds: 30
            }
        );
        assert_eq!(limits.pubsub, OutputBufferLimits::default().pubsub);
        assert_eq!(limits.to_string().parse::<OutputBufferLimits>(), Ok(limits));
        assert_eq!(
            "0 0 0".parse::<OutputBufferLimits>().unwrap().normal.hard,
            0
        );
        // A class named alone changes only that class; both may be named at once.
        let pubsub = limits.with("PUBSUB 2mb 1mb 5").unwrap();
        assert_eq!(
            (pubsub.normal, pubsub.pubsub.hard),
            (limits.normal, 2 << 20)
        );
        let both: OutputBufferLimits = "normal 0 0 0 pubsub 1mb 0 0".parse().unwrap();
        assert_eq!((both.normal.hard, both.pubsub.hard), (0, 1 << 20));
        assert!("replica 32mb 8mb 60".parse::<OutputBufferLimits>().is_err());
        assert!("normal 1mb".parse::<OutputBufferLimits>().is_err());
        assert!("normal 1mb 1xb 3".parse::<OutputBufferLimits>().is_err());
        assert!("pubsub 1 0 0".parse::<OutputBufferLimits>().is_err());
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
    fn settings_outside_their_usable_range_are_refused() {
        for (text, ok) in [
            ("max-args = 1023", false),
            ("max-args = 1024", true),
            ("max-args = 2147483647", true),
            ("max-args = 2147483648", false),
            ("proto-max-bulk-len = 1048575", false),
            ("proto-max-bulk-len = \"1mb\"", true),
            ("client-query-buffer-limit = 1048575", false),
            ("client-query-buffer-limit = \"1mb\"", true),
            ("maxclients = 0", false),
            ("maxclients = 1", true),
            ("maxclients = 4294967295", true),
            ("maxclients = 4294967296", false),
            ("hz = 0", false),
            ("hz = 1", true),
            ("hz = 500", true),
            ("hz = 501", false),
            ("timeout = 2147483647", true),
            ("timeout = 2147483648", false),
            ("client-output-buffer-limit = \"normal 1mb 0 0\"", true),
            ("client-output-buffer-limit = \"normal 0 0 0\"", true),
            ("client-output-buffer-limit = \"normal 1 0 0\"", false),
            ("client-output-buffer-limit = \"normal 0 1kb 10\"", false),
        ] {
            let result = NodeConfig::from_toml(text);
            assert_eq!(result.is_ok(), ok, "{text}: {result:?}");
            if let Err(e) = result {
                assert!(
                    e.contains("out of range") || e.contains("limit must be 0 or between"),
                    "{text}: {e}"
                );
            }
        }
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
