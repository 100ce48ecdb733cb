//! Defences for a node that faces a real network: what Redis does, in one place.
//!
//! * Cross-protocol scripting: a browser tricked into posting to the node sends
//!   `POST / HTTP/1.1` and `Host: …` lines, which an inline-command parser would otherwise skip
//!   over on its way to the commands hidden in the body. A request named `POST` or `Host:` closes
//!   the connection before anything after it runs (Redis's `securityWarningCommand`).

use std::sync::atomic::Ordering::Relaxed;

use crate::state::{ClientInfo, Shared};

/// How often a cross-protocol attack is logged at most, as Redis does: an attacker who can make
/// browsers connect should not be able to fill the log too.
const ATTACK_LOG_INTERVAL_MS: u64 = 60_000;

/// True for the command names that only an HTTP request would send: `POST` and `Host:`.
#[must_use]
pub fn is_http_request(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"post") || name.eq_ignore_ascii_case(b"host:")
}

/// Logs a cross-protocol attack from `client`, at most once a minute per node.
pub(crate) fn log_http_attack(shared: &Shared, client: &ClientInfo, now_ms: u64) {
    let last = shared.attack_logged_ms.load(Relaxed);
    if last != 0 && now_ms.abs_diff(last) <= ATTACK_LOG_INTERVAL_MS {
        return;
    }
    // Only the thread that moves the mark logs, when two attacks arrive at once.
    if shared
        .attack_logged_ms
        .compare_exchange(last, now_ms.max(1), Relaxed, Relaxed)
        .is_ok()
    {
        tracing::warn!(
            "Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: \
             commands to dcache. This is likely due to an attacker attempting to use Cross \
             Protocol Scripting to compromise your dcache instance. Connection from {} aborted.",
            client.addr
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_request_lines_are_recognised_in_any_case() {
        for name in ["POST", "post", "PoSt", "Host:", "HOST:", "host:"] {
            assert!(is_http_request(name.as_bytes()), "{name}");
        }
        for name in ["GET", "host", "posts", "Host", "HOST:x", ""] {
            assert!(!is_http_request(name.as_bytes()), "{name}");
        }
    }
}
