use thiserror::Error;

/// What a request can fail with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The node answered with an error reply (`-ERR …`, `-WRONGTYPE …`).
    #[error("{0}")]
    Server(String),
    /// No reply within the request timeout.
    #[error("request to {node} timed out")]
    Timeout { node: String },
    /// The node could not be reached (it is marked down and retried later).
    #[error("node {node} is unavailable: {reason}")]
    Unavailable { node: String, reason: String },
    /// The reply was not what the command returns.
    #[error("unexpected reply from {node}: {reply}")]
    UnexpectedReply { node: String, reply: String },
    /// The request itself is invalid (no arguments, no nodes).
    #[error("{0}")]
    Invalid(String),
}
