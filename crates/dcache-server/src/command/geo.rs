//! geo commands.
