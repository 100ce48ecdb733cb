use thiserror::Error;

/// A malformed request. The `Display` text is what Redis sends after `-ERR `, so a server can reply
/// with it verbatim and then close the connection, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedBulk(u8),
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: bulk string not terminated by CRLF")]
    MissingCrlf,
    #[error("Protocol error: invalid frame type byte '{}'", char::from(*.0))]
    InvalidType(u8),
    #[error("Protocol error: invalid integer")]
    InvalidInteger,
    #[error("Protocol error: invalid double")]
    InvalidDouble,
    #[error("Protocol error: frame nested too deep")]
    TooDeep,
}
