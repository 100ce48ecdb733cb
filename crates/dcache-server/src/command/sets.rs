//! sets commands.
