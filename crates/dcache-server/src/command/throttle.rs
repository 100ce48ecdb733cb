//! throttle commands.
