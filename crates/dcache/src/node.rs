//! `dcache node`: one node, configured from a file and the command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use dcache_server::{ByteSize, LogFormat, NodeConfig, Server, TlsAuthClients, YesNo};

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Port to listen on (same as --port).
    #[arg(value_name = "PORT", conflicts_with = "port")]
    port_arg: Option<u16>,
    /// Port to listen on [default: 5000].
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long)]
    bind: Option<String>,
    /// Read settings from this TOML file (see config/node.toml); options given here override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Memory budget for the data set, e.g. 256mb or 2gb (0: no limit) [default: half of the
    /// machine's memory, or of its cgroup's limit when that is lower].
    #[arg(long, value_parser = parse_bytes)]
    maxmemory: Option<ByteSize>,
    /// Eviction policy (default allkeys-s3fifo): allkeys-lru, allkeys-lfu, allkeys-sieve, allkeys-w-tinylfu,
    /// noeviction, volatile-ttl, … (or lru, lfu, s3fifo, sieve, w-tinylfu).
    #[arg(long)]
    maxmemory_policy: Option<String>,
    /// Worker threads (0: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Storage shards (rounded up to a power of two).
    #[arg(long)]
    shards: Option<usize>,
    /// Password clients must give with AUTH.
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
    /// Port for admin HTTP: /metrics and /health (0: none).
    #[arg(long)]
    admin_port: Option<u16>,
    /// Log format: pretty or json.
    #[arg(long)]
    log_format: Option<LogFormat>,
    /// Log level or tracing filter (RUST_LOG overrides it).
    #[arg(long)]
    log_level: Option<String>,
    /// Most simultaneous clients.
    #[arg(long)]
    maxclients: Option<usize>,
    /// This node's id in entry versions (0-1023).
    #[arg(long)]
    node_id: Option<u16>,
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
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                maxmemory_given |= text
                    .parse::<toml::Table>()
                    .is_ok_and(|t| t.contains_key("maxmemory"));
                NodeConfig::from_toml(&text)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("invalid config in {}", path.display()))?
            }
            None => NodeConfig::default(),
        };
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
            node_id
        );
        if let Some(port) = self.port_arg {
            config.port = port;
        }
        config.validate().map_err(anyhow::Error::msg)?;
        Ok((config, share))
    }
}

/// The memory this process may use: the machine's, or its cgroup's limit when that is lower.
/// `None` where neither can be read.
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

fn init_logging(config: &NodeConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
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
        println!(
            "dcache node listening on {} (policy {}, maxmemory {maxmemory}{tls}{admin})",
            server.local_addr(),
            config.policy().map_err(anyhow::Error::msg)?,
        );
        server.run(shutdown_signal()).await
    })
}

/// Bytes in the largest binary unit, rounded: `11.7gb`, `256mb`.
fn human(n: usize) -> String {
    match ByteSize(n).to_string() {
        exact if exact.len() <= 8 => exact,
        _ => dcache_server::config::human_bytes(n).to_ascii_lowercase() + "b",
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("signal received, shutting down");
}
