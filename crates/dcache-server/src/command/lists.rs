//! lists commands.
