//! `dcache`: the command line.
//!
//! * `dcache node [PORT]` runs one node in the foreground until Ctrl-C or SIGTERM.

mod node;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Run one cache node in the foreground.
    Node(node::NodeArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Node(args) => node::run(args),
    }
}
