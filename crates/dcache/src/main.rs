//! `dcache`: the command line.
//!
//! * `dcache launch` runs a local cluster (three nodes on ports 5000-5002 by default).
//! * `dcache cli [COMMAND]` is a redis-cli-like shell that routes through the client library.
//! * `dcache cluster status|leave|rebalance` shows the cluster or changes it.
//! * `dcache node [PORT]` runs one node in the foreground until Ctrl-C or SIGTERM.
//! * `dcache sim --trace FILE` replays a cache trace through the policies and Belady's optimum.
//! * `dcache bench` generates load against a node, a Redis or memcached server, or a cluster.

mod bench;
mod cli;
mod cli_hints;
mod cluster_cmd;
mod launch;
mod node;
mod random;
mod sim;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options, chosen so that resident memory follows `maxmemory`
/// (docs/PERFORMANCE.md, "Resident memory against the limit"):
/// - no transparent huge pages: they cut TLB misses (about 7 % less CPU per GET at pipeline 16
///   over a million keys) but a partly used 2 MB page is resident whole, which put resident
///   memory 1.4-1.8 times over the limit under eviction;
/// - freed pages go back to the kernel at once, so that evicting large values lowers resident
///   memory as it happens (with a 100 ms decay the peak under a stream of 100 KB - 20 MB values
///   was 1.7-1.8 times the limit; at once, under 1.0). Small values live in slabs that are rarely
///   emptied, so this costs them nothing.
///
/// `_RJEM_MALLOC_CONF` in the environment still overrides these.
// SAFETY: jemalloc reads this symbol once, as a NUL-terminated `const char *`; a reference to a
// static byte array has exactly that representation, and nothing writes it.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 66] =
    b"thp:never,metadata_thp:disabled,dirty_decay_ms:0,muzzy_decay_ms:0\0";

#[derive(Debug, Parser)]
#[command(
    name = "dcache",
    version,
    about = "A distributed in-memory cache that speaks the Redis protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local cluster of nodes as child processes, until Ctrl-C.
    Launch(launch::LaunchArgs),
    /// A redis-cli-like shell over the cluster: one command, or one per line from standard input.
    Cli(cli::CliArgs),
    /// Look at the cluster, or change it: status, leave, rebalance.
    Cluster(cluster_cmd::ClusterArgs),
    /// Run one cache node in the foreground.
    Node(node::NodeArgs),
    /// Replay a cache trace through the eviction policies and Belady's optimum.
    Sim(sim::SimArgs),
    /// Generate load against a server or a cluster and report throughput, latency and hit ratio.
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Launch(args) => launch::run(args),
        Command::Cli(args) => cli::run(args),
        Command::Cluster(args) => cluster_cmd::run(args),
        Command::Node(args) => node::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dcache: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
