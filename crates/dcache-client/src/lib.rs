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
//! Today the topology is static: the node list given to the builder, placed with
//! `dcache-placement` exactly as a cluster will place it. When nodes learn their topology from the
//! cluster, [`Topology`] is what changes; the `Client` API does not.

mod client;
mod connection;
mod error;
mod topology;

pub use client::{Client, ClientBuilder, SetOptions};
pub use dcache_protocol::Frame;
pub use error::Error;
pub use topology::Topology;
