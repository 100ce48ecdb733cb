//! One dcache node: a Redis-protocol server over the `dcache-store` engine.
//!
//! ```text
//!   TcpListener (plain) ─┬─ accept ──► one task per connection (connection.rs)
//!   TcpListener (TLS) ───┘             (TLS: tls.rs's handshake first)
//!        │                      read ► parse every complete request ► execute ► write once
//!        │                                                   │
//!        │                command table (command/): arity, flags, ACL check (acl.rs), handler
//!        │                                                   │
//!        │                                        Store: lock one shard, no I/O under it
//!        │
//!        ├── background task (server.rs): active expiry, ops/s sampling, `hz` times a second
//!        └── admin HTTP (metrics.rs): /metrics (Prometheus), /health
//!
//!   pubsub.rs:   channels and patterns; messages go to subscribers' mailboxes (state.rs) and,
//!                in a cluster, to every other member over one link each
//!   blocking.rs: clients blocked on keys (BLPOP, BLMOVE, ...), per-key FIFO queues woken by
//!                key; a woken request runs again through the table like any other
//!   security.rs: cross-protocol detection, protected mode, the admin token check
//!   exclusive.rs: the gate a connection takes to run commands with no other client's between
//!                 them (EXEC; scripts); every batch of requests holds a share of it
//! ```
//!
//! The runtime is tokio's multi-threaded one; the binary sets the number of workers. Time comes
//! from an injected [`Clock`], so TTL behaviour is tested by moving a clock, not by sleeping.

pub mod acl;
pub mod blocking;
pub mod clock;
pub mod cluster;
pub mod command;
pub mod config;
pub mod connection;
pub mod exclusive;
pub mod info;
pub mod membership;
pub mod metrics;
pub mod migrate;
pub mod pubsub;
pub mod replicate;
pub mod scripting;
pub mod security;
pub mod server;
pub mod state;
pub mod stats;
pub mod tls;
pub mod tracking;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{ByteSize, LogFormat, NodeConfig, TlsAuthClients, YesNo};
pub use server::{ClusterLink, Server, ServerBuilder, active_expire};
pub use state::Shared;
