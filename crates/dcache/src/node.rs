//! `dcache node`: one node, configured from a file and the command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use dcache_server::{ByteSize, LogFormat, NodeConfig, Server};

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
    /// Memory budget for the data set, e.g. 256mb or 2gb (0: no limit).
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
    fn config(&self) -> anyhow::Result<NodeConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                NodeConfig::from_toml(&text)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("invalid config in {}", path.display()))?
            }
            None => NodeConfig::default(),
        };
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
        Ok(config)
    }
}

/// Logs go to standard error, one write per event (never held in a buffer until exit), with
/// colours only when standard error is a terminal: a log file gets plain text.
fn init_logging(config: &NodeConfig) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
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
    let config = args.config()?;
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
        let maxmemory = match config.maxmemory.0 {
            0 => "no limit".to_owned(),
            n => ByteSize(n).to_string(),
        };
        let policy = config.policy().map_err(anyhow::Error::msg)?;
        println!(
            "dcache node listening on {} (policy {policy}, maxmemory {maxmemory}{admin})",
            server.local_addr(),
        );
        // The same in the log, which may be all an operator has (`dcache launch` keeps one per
        // node).
        tracing::info!(
            addr = %server.local_addr(),
            %policy,
            maxmemory,
            node_id = config.node_id,
            "node started"
        );
        server.run(stop).await
    })
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
