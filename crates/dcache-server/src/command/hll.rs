//! hll commands.
