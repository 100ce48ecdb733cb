//! `dcache node`: one node, configured from a file and the command line.

use std::path::PathBuf;
use std::sync::LazyLock;

use anyhow::Context;
use clap::Args;
use dcache_server::{ByteSize, LogFormat, NodeConfig, Server, TlsAuthClients, YesNo};

/// The settings a node takes when neither a file nor an option names them; `--help` shows them.
static DEFAULTS: LazyLock<NodeConfig> = LazyLock::new(NodeConfig::default);

/// Help text that ends with the value the option takes when not given. (clap's own
/// `default_value` would also apply it, over whatever `--config` says.)
fn with_default(text: &str, default: impl std::fmt::Display) -> String {
    format!("{text} [default: {default}]")
}

// The options are `Option`s so that only those given override `--config`; their help texts are
// built at run time from `NodeConfig::default()` so that they cannot drift from it.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Port to listen on (same as --port).
    #[arg(value_name = "PORT", conflicts_with = "port")]
    port_arg: Option<u16>,
    #[arg(long, help = with_default("Port to listen on", DEFAULTS.port))]
    port: Option<u16>,
    #[arg(long, help = with_default("Address to listen on", &DEFAULTS.bind))]
    bind: Option<String>,
    /// Read settings from this TOML file (see config/node.toml); options given here override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[arg(long, value_parser = parse_bytes, help =
        "Memory budget for the data set, e.g. 256mb or 2gb (0: no limit) [default: half of the \
         machine's memory, or of its cgroup's limit when that is lower]")]
    maxmemory: Option<ByteSize>,
    #[arg(long, help = with_default(
        "Eviction policy: allkeys-s3fifo, allkeys-lru, allkeys-lfu, allkeys-sieve, \
         allkeys-w-tinylfu, allkeys-random, volatile-lru, volatile-ttl, noeviction, … \
         (or lru, lfu, s3fifo, sieve, w-tinylfu)",
        &DEFAULTS.maxmemory_policy,
    ))]
    maxmemory_policy: Option<String>,
    #[arg(long, help = with_default("Worker threads (0: one per core)", DEFAULTS.threads))]
    threads: Option<usize>,
    #[arg(long, help = with_default(
        "Storage shards (rounded up to a power of two)",
        DEFAULTS.shards,
    ))]
    shards: Option<usize>,
    /// Password clients must give with AUTH [default: none].
    #[arg(long)]
    requirepass: Option<String>,
    /// yes: refuse clients from other hosts while listening beyond loopback without a password.
    #[arg(long, value_name = "yes|no")]
    protected_mode: Option<YesNo>,
    /// Port for TLS clients beside the plain port (0: no TLS; then --port 0 turns plain off).
    #[arg(long)]
    tls_port: Option<u16>,
    /// The node's certificate chain (PEM), for --tls-port.
    #[arg(long, value_name = "FILE")]
    tls_cert_file: Option<String>,
    /// The private key of --tls-cert-file (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key_file: Option<String>,
    /// CA certificates (PEM) that client certificates must chain to.
    #[arg(long, value_name = "FILE")]
    tls_ca_cert_file: Option<String>,
    /// With --tls-ca-cert-file: clients must (yes), may (optional) or need not (no) present a certificate.
    #[arg(long, value_name = "yes|no|optional")]
    tls_auth_clients: Option<TlsAuthClients>,
    #[arg(long, help = with_default(
        "Port for admin HTTP: /metrics and /health (0: none)",
        DEFAULTS.admin_port,
    ))]
    admin_port: Option<u16>,
    #[arg(long, help = with_default(
        "Log format: pretty or json",
        format!("{:?}", DEFAULTS.log_format).to_lowercase(),
    ))]
    log_format: Option<LogFormat>,
    #[arg(long, help = with_default(
        "Log level or tracing filter (RUST_LOG overrides it)",
        &DEFAULTS.log_level,
    ))]
    log_level: Option<String>,
    #[arg(long, help = with_default("Most simultaneous clients", DEFAULTS.maxclients))]
    maxclients: Option<usize>,
    #[arg(long, help = with_default(
        "This node's id, 0-1023. Every write is stamped with a version: a hybrid logical clock \
         time (milliseconds and a counter) and the id of the node that wrote it, which breaks \
         the tie between two nodes' writes at the same time. Give each node its own \
         (dcache launch does); with the cluster protocol it will also name the node in the \
         cluster",
        DEFAULTS.node_id,
    ))]
    node_id: Option<u16>,
    /// yes: a cluster member speaking the Redis Cluster protocol (alone, a one-node cluster
    /// serving every slot); no: an independent node, as a plain Redis [default: yes]
    #[arg(long, value_name = "yes|no")]
    cluster_enabled: Option<YesNo>,
    /// Join the cluster of this member: host:port (its client port), or host:port@busport.
    #[arg(long, value_name = "HOST:PORT")]
    join: Option<String>,
    /// Cluster-bus port: failure detection and topology agreement [default: port + 10000].
    #[arg(long)]
    cluster_port: Option<u16>,
    #[arg(long, value_name = "MS", help = with_default(
        "Milliseconds without an answer before a node is declared failed",
        DEFAULTS.cluster_node_timeout,
    ))]
    node_timeout: Option<u64>,
    /// Where the node keeps its cluster id and topology log (never the cached data)
    /// [default: dcache-data/<port>].
    #[arg(long, value_name = "DIR")]
    dir: Option<String>,
    /// Bytes per second a slot migration may send, e.g. 50mb (0: no limit) [default: 0].
    #[arg(long, value_parser = parse_bytes)]
    migration_rate: Option<ByteSize>,
    /// Copies of each slot besides its primary, for a cluster this node starts [default: 0].
    #[arg(long, value_name = "N")]
    replicas: Option<u8>,
    /// How writes reach the copies: primary, quorum or chain [default: primary].
    #[arg(long, value_name = "STRATEGY")]
    replication: Option<String>,
    /// primary: replicas that hold a write before it is acknowledged [default: 1 with replicas].
    #[arg(long, value_name = "K")]
    sync_replicas: Option<u8>,
    /// quorum: copies that hold a write before it is acknowledged [default: a majority].
    #[arg(long, value_name = "W")]
    write_quorum: Option<u8>,
    /// quorum: copies a read asks [default: a majority].
    #[arg(long, value_name = "R")]
    read_quorum: Option<u8>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn parse_bytes(s: &str) -> Result<ByteSize, String> {
    s.parse()
}

impl NodeArgs {
    /// The effective configuration, and whether `maxmemory` is the default share of the machine.
    fn config(&self) -> anyhow::Result<(NodeConfig, bool)> {
        let mut maxmemory_given = self.maxmemory.is_some();
        let mut cluster_given = self.cluster_enabled.is_some();
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let table = text.parse::<toml::Table>();
                maxmemory_given |= table.as_ref().is_ok_and(|t| t.contains_key("maxmemory"));
                cluster_given |= table.is_ok_and(|t| t.contains_key("cluster-enabled"));
                NodeConfig::from_toml(&text)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("invalid config in {}", path.display()))?
            }
            None => NodeConfig::default(),
        };
        // The binary's default differs from the library's (whose in-process nodes are plain):
        // `dcache node 5000` is a cluster of one.
        if !cluster_given {
            config.cluster_enabled = YesNo(true);
        }
        let mut share = false;
        if !maxmemory_given && let Some(memory) = available_memory() {
            config.maxmemory = ByteSize(memory / 2);
            share = true;
        }
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = &self.$field { config.$field = v.clone(); } )* };
        }
        set!(
            port,
            bind,
            maxmemory,
            maxmemory_policy,
            threads,
            shards,
            requirepass,
            protected_mode,
            tls_port,
            tls_cert_file,
            tls_key_file,
            tls_ca_cert_file,
            tls_auth_clients,
            admin_port,
            log_format,
            log_level,
            maxclients,
            node_id,
            cluster_enabled,
            join,
            cluster_port,
            dir,
            migration_rate,
            replicas,
            replication
        );
        for (field, value) in [
            (&mut config.sync_replicas, self.sync_replicas),
            (&mut config.write_quorum, self.write_quorum),
            (&mut config.read_quorum, self.read_quorum),
        ] {
            if value.is_some() {
                *field = value;
            }
        }
        if let Some(ms) = self.node_timeout {
            config.cluster_node_timeout = ms;
        }
        if let Some(port) = self.port_arg {
            config.port = port;
        }
        if config.cluster_enabled.0 && config.dir.is_empty() {
            config.dir = default_dir(config.port);
        }
        config.validate().map_err(anyhow::Error::msg)?;
        Ok((config, share))
    }
}

/// The memory this process may use: the machine's, or its cgroup's limit when that is lower.
/// `None` where neither can be read.
/// Where a node keeps its cluster id and log by default: `dcache-data/<port>`, so that a node
/// restarted on its port comes back as itself. A node on port 0 (any free port) has no identity
/// to come back to: it takes a fresh directory of its own, removed when it stops. One found
/// there already was left by a killed process that had the same process id (ids are reused):
/// it is removed first, or this node would come back as that one, a member of another cluster.
fn default_dir(port: u16) -> String {
    if port == 0 {
        let _ = std::fs::remove_dir_all(temporary_dir());
        temporary_dir().display().to_string()
    } else {
        format!("dcache-data/{port}")
    }
}

fn temporary_dir() -> PathBuf {
    std::env::temp_dir().join(format!("dcache-node-{}", std::process::id()))
}

pub fn available_memory() -> Option<usize> {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
                .map(|kb| kb * 1024)
        });
    // cgroup v2, then v1; "max" or a huge v1 number mean no limit.
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| {
        std::fs::read_to_string(path)
            .ok()?
            .trim()
            .parse::<usize>()
            .ok()
    });
    match (machine, cgroup) {
        (Some(m), Some(c)) => Some(m.min(c)),
        (m, c) => m.or(c),
    }
}

/// Logs go to standard error, one write per event (never held in a buffer until exit), with
/// colours only when standard error is a terminal: a log file gets plain text.
/// A plain level (`info`) also keeps openraft at `warn`: at `info` it logs every election step
/// and membership change in detail, which buries the node's own lines. A filter with directives
/// of its own is taken as it is.
fn quiet_dependencies(level: &str) -> String {
    if level.contains('=') || level.contains(',') {
        level.to_owned()
    } else {
        format!("{level},openraft=warn")
    }
}

fn init_logging(config: &NodeConfig) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(quiet_dependencies(&config.log_level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let (config, share) = args.config()?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    init_logging(&config);
    // One thread needs no work stealing: the single-threaded scheduler does less per wake-up.
    let mut runtime = if config.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if config.threads > 1 {
        runtime.worker_threads(config.threads);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        // Before the start-up line: whoever reads it may send SIGTERM at once, and that must
        // stop the node gracefully, not kill it.
        let stop = shutdown_signal()?;
        let mut builder = Server::builder(config.clone());
        if let Some(path) = &args.config {
            builder = builder.config_file(path.display().to_string());
        }
        let server = builder.bind().await?;
        let admin = server
            .admin_addr()
            .map(|a| format!(", admin http://{a}/metrics"))
            .unwrap_or_default();
        // With plain connections off, the address named first is the TLS one.
        let tls = match (server.plain_addr(), server.tls_addr()) {
            (Some(_), Some(tls)) => format!(", tls {tls}"),
            (None, Some(_)) => ", tls only".to_owned(),
            _ => String::new(),
        };
        let maxmemory = match config.maxmemory.0 {
            0 => "no limit".to_owned(),
            n if share => format!(
                "{}: half of the memory here; --maxmemory to change",
                human(n)
            ),
            n => human(n),
        };
        let policy = config.policy().map_err(anyhow::Error::msg)?;
        // The launcher reads the bus port here to have the other nodes join this one.
        let bus = server
            .shared()
            .cluster
            .as_ref()
            .and_then(|c| c.view().myself().map(|n| n.bus_port))
            .map(|p| format!(", cluster bus {p}"))
            .unwrap_or_default();
        // The same in the log, which may be all an operator has (`dcache launch` keeps one per
        // node), and written first: launch copies the start-up line into the same file once it
        // has read it, so the order in the file is fixed.
        tracing::info!(
            addr = %server.local_addr(),
            %policy,
            maxmemory,
            node_id = config.node_id,
            "node started"
        );
        println!(
            "dcache node listening on {} (policy {policy}, maxmemory {maxmemory}{tls}{admin}{bus})",
            server.local_addr(),
        );
        let result = server.run(stop).await;
        if config.dir == temporary_dir().display().to_string() {
            let _ = std::fs::remove_dir_all(temporary_dir());
        }
        result
    })
}

/// Bytes in the largest binary unit, rounded: `11.7gb`, `256mb`.
fn human(n: usize) -> String {
    match ByteSize(n).to_string() {
        exact if exact.len() <= 8 => exact,
        _ => dcache_server::config::human_bytes(n).to_ascii_lowercase() + "b",
    }
}

/// Resolves on Ctrl-C or SIGTERM; the handlers are in place as soon as this returns.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received, shutting down");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        node: NodeArgs,
    }

    /// A node on port 0 starts with no cluster state, even where a killed process that had the
    /// same process id left its directory behind.
    #[test]
    fn a_node_on_port_0_does_not_inherit_a_dead_process_state() {
        let stale = temporary_dir();
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(stale.join("node-id"), "an earlier node").unwrap();
        let dir = default_dir(0);
        assert_eq!(dir, stale.display().to_string());
        assert!(
            !stale.join("node-id").exists(),
            "the dead node's id is still in {dir}"
        );
        assert_eq!(default_dir(5000), "dcache-data/5000");
    }

    /// Every setting shows what it is when not given, and the default shown is the one applied.
    #[test]
    fn help_shows_every_default() {
        use clap::CommandFactory;
        let help = Wrap::command().render_help().to_string();
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for (option, default) in [
            ("--port", "5000"),
            ("--bind", "127.0.0.1"),
            (
                "--maxmemory",
                "half of the machine's memory, or of its cgroup's limit when that is lower",
            ),
            ("--maxmemory-policy", "allkeys-s3fifo"),
            ("--threads", "0"),
            ("--shards", "64"),
            ("--requirepass", "none"),
            ("--admin-port", "0"),
            ("--log-format", "pretty"),
            ("--log-level", "info"),
            ("--maxclients", "10000"),
            ("--node-id", "0"),
        ] {
            let from = flat
                .find(&format!("{option} <"))
                .unwrap_or_else(|| panic!("no {option} in:\n{help}"));
            let rest = &flat[from..];
            let end = rest[2..].find(" --").map_or(rest.len(), |i| i + 2);
            assert!(
                rest[..end].contains(&format!("[default: {default}]")),
                "{option}: {}",
                &rest[..end]
            );
        }
        assert!(flat.contains("hybrid logical clock"), "{help}");
        // The defaults shown are the ones a node takes.
        let (given, share) = <Wrap as clap::Parser>::parse_from(["node"])
            .node
            .config()
            .unwrap();
        // The machine's memory is readable here, so maxmemory is the share of it.
        assert!(share);
        assert_eq!(given.maxmemory.0, available_memory().unwrap() / 2);
        // So is the cluster: the binary's nodes are cluster members unless told otherwise.
        assert!(given.cluster_enabled.0);
        assert_eq!(given.dir, "dcache-data/5000");
        assert_eq!(
            NodeConfig {
                maxmemory: NodeConfig::default().maxmemory,
                cluster_enabled: NodeConfig::default().cluster_enabled,
                dir: NodeConfig::default().dir,
                ..given.clone()
            },
            NodeConfig::default()
        );
        assert_eq!(
            (given.port, given.shards, given.maxclients),
            (5000, 64, 10_000)
        );
    }
}
