//! The dcache client: finds the node of every key and talks to it directly.
//!
//! ```text
//!   Client ── Topology (placement of 16,384 slots over the nodes) ── key → slot → node
//!      │
//!      └─ one Connection per node: requests go down an mpsc channel to a writer task that
//!         pipelines them onto the socket; a reader task matches replies in order (RESP replies
//!         come back in request order) and completes each request's oneshot.
//! ```
//!
//! Two modes, one API:
//! * static (the default): the node list given to the builder, each node an independent cache,
//!   slots placed over them with `dcache-placement` ([`Topology`]);
//! * cluster ([`ClientBuilder::cluster`]): the nodes are seeds of one cluster speaking the Redis
//!   Cluster protocol; the client learns the slot map from `CLUSTER SLOTS`, follows `-MOVED`
//!   and `-ASK`, retries `-TRYAGAIN`/`-CLUSTERDOWN`, and splits multi-key commands by slot
//!   (`cluster.rs`, `slots.rs`).
//!
//! With [`ClientBuilder::near_cache`], GET is answered from a bounded local cache that the
//! nodes keep coherent with client-side caching (`CLIENT TRACKING`): `near_cache.rs`.
//!
//! Where a command's keys are comes from the command table in `dcache_protocol::commands`, the
//! one the server dispatches by.

mod client;
mod cluster;
mod connection;
mod error;
mod near_cache;
mod slots;
mod topology;

pub use client::{Client, ClientBuilder, RateLimit, SetOptions, Throttle};
pub use dcache_protocol::Frame;
pub use error::Error;
pub use near_cache::NearCacheStats;
pub use topology::Topology;
