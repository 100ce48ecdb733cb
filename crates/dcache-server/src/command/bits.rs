//! bits commands.
