//! The Redis serialization protocol (RESP2 and RESP3), with no I/O.
//!
//! ```text
//!   socket bytes ──► request::parse ──► Args (borrowed spans) ──► command handler
//!                                                                      │
//!   socket bytes ◄──────────────── ReplyWriter (RESP2 or RESP3) ◄──────┘
//! ```
//!
//! * [`request`] parses what a client sends: multibulk arrays (`*2\r\n$3\r\nGET\r\n…`) and inline
//!   commands (`PING\r\n`), incrementally. "Not enough bytes yet" is [`request::Status::Incomplete`],
//!   never an error; a malformed frame is a [`ProtocolError`] whose text is Redis's own wording.
//!   Arguments are spans into the caller's buffer, so a request allocates nothing.
//! * [`reply`] writes replies. One writer serves both protocol versions: a map is a map in RESP3
//!   and a flat array in RESP2, a null is `_` or `$-1`, and so on.
//! * [`commands`] is the command table: names, arity, flags, key positions, docs. The server
//!   pairs its rows with handlers; clients route by its key positions.
//! * [`frame`] is a generic RESP value with a parser and encoder, for clients and tests.

pub mod commands;
pub mod frame;
pub mod reply;
pub mod request;

mod error;

pub use error::ProtocolError;
pub use frame::Frame;
pub use reply::ReplyWriter;
pub use request::{Args, Limits, RequestParser, Status};
