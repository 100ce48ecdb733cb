//! `dcache launch`: a local cluster of nodes as child processes, each with its own log, stopped
//! together on Ctrl-C or SIGTERM.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

/// `println!`/`eprintln!` that ignore a closed output: whoever read the table may have gone
/// (`dcache launch | head`), and that must not bring the launcher down and orphan its nodes.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! esay {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// The first node's port; the others follow it. 0 lets each node take any free port.
    #[arg(long, default_value_t = 5000)]
    base_port: u16,
    /// Restart a node that dies.
    #[arg(long)]
    restart: bool,
    /// Where the nodes' logs go [default: a folder in the system's temporary directory].
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Passed to every node [default: half of the machine's memory, shared by the nodes].
    #[arg(long)]
    maxmemory: Option<String>,
    /// Passed to every node.
    #[arg(long)]
    maxmemory_policy: Option<String>,
    /// Passed to every node.
    #[arg(long)]
    threads: Option<usize>,
    /// Passed to every node.
    #[arg(long)]
    requirepass: Option<String>,
    /// Copies of each slot besides its primary (the cluster's setting) [default: 0].
    #[arg(long)]
    replicas: Option<u8>,
    /// How writes reach the copies: primary, quorum or chain [default: primary].
    #[arg(long)]
    replication: Option<String>,
    /// primary: replicas that hold a write before it is acknowledged [default: 1 with replicas].
    #[arg(long)]
    sync_replicas: Option<u8>,
    /// quorum: copies that hold a write before it is acknowledged [default: a majority].
    #[arg(long)]
    write_quorum: Option<u8>,
    /// quorum: copies a read asks [default: a majority].
    #[arg(long)]
    read_quorum: Option<u8>,
    /// Further `dcache node` options, after `--`.
    #[arg(last = true)]
    node_args: Vec<String>,
}

/// One node the launcher runs.
#[derive(Clone)]
struct Spec {
    index: usize,
    port: u16,
    log: PathBuf,
    /// The node's cluster directory (id and topology log), beside its log.
    dir: PathBuf,
    args: Vec<String>,
}

struct Running {
    pid: u32,
    addr: String,
    /// The cluster-bus port, when the node is a cluster member.
    bus: Option<u16>,
}

impl LaunchArgs {
    fn node_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut pass = |flag: &str, value: Option<String>| {
            if let Some(v) = value {
                args.push(flag.to_owned());
                args.push(v);
            }
        };
        // The nodes share the machine: each takes its part of the half a lone node would take.
        let share = crate::node::available_memory()
            .map(|m| (m / 2 / usize::from(self.nodes.max(1))).to_string());
        let told = self.node_args.iter().any(|a| a.starts_with("--maxmemory="))
            || self.node_args.iter().any(|a| a == "--maxmemory");
        pass(
            "--maxmemory",
            self.maxmemory.clone().or(share.filter(|_| !told)),
        );
        pass("--maxmemory-policy", self.maxmemory_policy.clone());
        pass("--threads", self.threads.map(|t| t.to_string()));
        pass("--requirepass", self.requirepass.clone());
        // The first node gives the cluster its settings; the others take the cluster's, but
        // are told the same so that any of them can start it again alone.
        pass("--replicas", self.replicas.map(|n| n.to_string()));
        pass("--replication", self.replication.clone());
        pass("--sync-replicas", self.sync_replicas.map(|n| n.to_string()));
        pass("--write-quorum", self.write_quorum.map(|n| n.to_string()));
        pass("--read-quorum", self.read_quorum.map(|n| n.to_string()));
        args.extend(self.node_args.iter().cloned());
        args
    }
}

/// Starts one node and waits for the line that says it listens.
///
/// The node's standard error (its tracing log) goes straight to its log file; its standard output
/// comes here, so that the launcher learns the address from the start-up line, and is then copied
/// into the same file line by line as it arrives. Both share one open file (one offset), so
/// neither overwrites the other.
async fn start(spec: &Spec) -> anyhow::Result<(Child, Running)> {
    let exe = std::env::current_exe().context("cannot find the dcache executable")?;
    let mut log =
        File::create(&spec.log).with_context(|| format!("cannot write {}", spec.log.display()))?;
    let node_stderr = log
        .try_clone()
        .with_context(|| format!("cannot share {}", spec.log.display()))?;
    let mut child = Command::new(exe)
        .arg("node")
        .arg("--port")
        .arg(spec.port.to_string())
        .arg("--node-id")
        .arg(spec.index.to_string())
        .arg("--dir")
        .arg(&spec.dir)
        .args(&spec.args)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(node_stderr))
        .kill_on_drop(true)
        .spawn()
        .context("cannot start a node")?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line)).await;
    // A log the launcher cannot write is no reason to stop the node: the copy just ends.
    let _ = log.write_all(line.as_bytes());
    tokio::spawn(async move {
        let mut line = String::new();
        while matches!(stdout.read_line(&mut line).await, Ok(n) if n > 0) {
            if log.write_all(line.as_bytes()).is_err() {
                break;
            }
            line.clear();
        }
    });
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .map(str::to_owned);
    match (read, addr) {
        (Ok(Ok(_)), Some(addr)) => {
            let pid = child.id().unwrap_or_default();
            let bus = line
                .split("cluster bus ")
                .nth(1)
                .and_then(|rest| rest.trim_end().trim_end_matches(')').parse().ok());
            Ok((child, Running { pid, addr, bus }))
        }
        _ => {
            let _ = child.kill().await;
            let log = std::fs::read_to_string(&spec.log).unwrap_or_default();
            bail!(
                "node {} did not start; its log ({}) says:\n{}",
                spec.index + 1,
                spec.log.display(),
                log.trim()
            )
        }
    }
}

/// Waits until the nodes are one cluster with every slot served and none moving (at most a
/// minute), and returns how many slots each serves, in the order of `running`.
async fn ready(running: &[Running], password: Option<&str>) -> anyhow::Result<Vec<usize>> {
    let addrs: Vec<String> = running.iter().map(|n| n.addr.clone()).collect();
    let mut builder = dcache_client::Client::builder().nodes(addrs.clone());
    if let Some(password) = password {
        builder = builder.password(password.to_owned());
    }
    let client = builder.build().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        let mut settled = true;
        for addr in &addrs {
            let info = match client.node_cmd(addr, &["CLUSTER", "INFO"]).await {
                Ok(frame) => crate::cluster_cmd::text(frame).unwrap_or_else(|e| e.to_string()),
                Err(e) => e.to_string(),
            };
            let ok = info.contains("cluster_state:ok")
                && info.contains(&format!("cluster_known_nodes:{}\r\n", addrs.len()))
                && info.contains("cluster_slots_migrating:0\r\n");
            if !ok {
                settled = false;
                last = format!("{addr}: {}", info.replace("\r\n", " "));
                break;
            }
        }
        if settled {
            let text =
                crate::cluster_cmd::text(client.node_cmd(&addrs[0], &["CLUSTER", "NODES"]).await?)
                    .context("CLUSTER NODES")?;
            let lines = crate::cluster_cmd::parse_nodes(&text);
            return Ok(addrs
                .iter()
                .map(|a| lines.iter().find(|l| &l.addr == a).map_or(0, |l| l.slots))
                .collect());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the nodes did not form one cluster within a minute; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks a process to stop the way Ctrl-C would (SIGTERM), through the shell's own `kill`.
fn terminate(pid: u32) {
    let _ = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid} 2>/dev/null")])
        .status();
}

pub fn run(args: LaunchArgs) -> anyhow::Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    // Every port must be free before anything starts, so that a clash leaves nothing running.
    if args.base_port != 0 {
        for i in 0..args.nodes {
            let port = args
                .base_port
                .checked_add(i)
                .with_context(|| format!("port {} + {i} is past 65535", args.base_port))?;
            if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                bail!("port {port} is already in use ({e}); choose another --base-port");
            }
        }
    }
    let log_dir = args.log_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("dcache-launch-{}", std::process::id()))
    });
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create {}", log_dir.display()))?;
    let node_args = args.node_args();
    let specs: Vec<Spec> = (0..usize::from(args.nodes))
        .map(|i| {
            let port = if args.base_port == 0 {
                0
            } else {
                args.base_port + i as u16
            };
            Spec {
                index: i,
                port,
                log: log_dir.join(format!("node-{}.log", i + 1)),
                dir: log_dir.join(format!("node-{}", i + 1)),
                args: node_args.clone(),
            }
        })
        .collect();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(supervise(specs, args.restart, args.requirepass.clone()))
}

async fn supervise(
    mut specs: Vec<Spec>,
    restart: bool,
    password: Option<String>,
) -> anyhow::Result<()> {
    let has_password = password.is_some();
    use tokio::signal::unix::{SignalKind, signal};
    // Before any node starts: a SIGTERM that arrived between the table and the handler would
    // kill the launcher outright and leave its nodes running as orphans.
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut running: Vec<Running> = Vec::new();
    let mut waits = JoinSet::new();
    for spec in &mut specs {
        // The others join the first node's cluster (a restarted node rejoins from its directory).
        if let Some(first) = running.first()
            && let Some(bus) = first.bus
        {
            spec.args
                .extend(["--join".to_owned(), format!("{}@{bus}", first.addr)]);
        }
        let spec = &*spec;
        match start(spec).await {
            Ok((mut child, node)) => {
                let index = spec.index;
                waits.spawn(async move { (index, child.wait().await) });
                running.push(node);
            }
            Err(e) => {
                for node in &running {
                    terminate(node.pid);
                }
                while waits.join_next().await.is_some() {}
                return Err(e);
            }
        }
    }
    let slots = if running.iter().all(|n| n.bus.is_some()) {
        match ready(&running, password.as_deref()).await {
            Ok(slots) => slots,
            Err(e) => {
                for node in &running {
                    terminate(node.pid);
                }
                while waits.join_next().await.is_some() {}
                return Err(e);
            }
        }
    } else {
        Vec::new()
    };
    if slots.is_empty() {
        say!("dcache: {} nodes running", running.len());
    } else {
        say!(
            "dcache: {} nodes running as one cluster; every slot is served",
            running.len()
        );
    }
    say!(
        "  {:<5} {:<22} {:<8} {:<6} log",
        "node",
        "address",
        "pid",
        "slots"
    );
    for (i, (spec, node)) in specs.iter().zip(&running).enumerate() {
        let count = slots.get(i).map_or("-".to_owned(), ToString::to_string);
        say!(
            "  {:<5} {:<22} {:<8} {:<6} {}",
            spec.index + 1,
            node.addr,
            node.pid,
            count,
            spec.log.display()
        );
    }
    let nodes: Vec<&str> = running.iter().map(|n| n.addr.as_str()).collect();
    // The password is the caller's own (it is on their command line); the hint names it rather
    // than echoing it into logs and scrollback.
    let (cli_auth, redis_auth) = if has_password {
        (" -a PASSWORD", " -a PASSWORD")
    } else {
        ("", "")
    };
    say!(
        "Connect with: dcache cli --nodes {}{cli_auth}   (or redis-cli -c -p PORT{redis_auth})",
        nodes.join(",")
    );
    if has_password {
        say!(
            "  PASSWORD is the --requirepass value; DCACHE_PASSWORD=PASSWORD in the environment works too."
        );
    }
    say!("Ctrl-C stops them all.");

    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            Some(done) = waits.join_next() => {
                let (index, status) = done.expect("wait tasks do not panic");
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                esay!(
                    "dcache: node {} ({}) exited: {status}; log: {}",
                    index + 1,
                    running[index].addr,
                    specs[index].log.display()
                );
                if restart {
                    let mut spec = specs[index].clone();
                    // Come back on the same address.
                    if let Some(port) = running[index].addr.rsplit(':').next().and_then(|p| p.parse().ok()) {
                        spec.port = port;
                    }
                    match start(&spec).await {
                        Ok((mut child, node)) => {
                            esay!("dcache: node {} restarted (pid {})", index + 1, node.pid);
                            running[index] = node;
                            waits.spawn(async move { (index, child.wait().await) });
                        }
                        Err(e) => esay!("dcache: could not restart node {}: {e}", index + 1),
                    }
                }
            }
        }
    }
    esay!("dcache: stopping {} nodes", waits.len());
    for node in &running {
        terminate(node.pid);
    }
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while waits.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        esay!("dcache: some nodes did not stop within 10 s; killing them");
        waits.abort_all();
    }
    Ok(())
}
