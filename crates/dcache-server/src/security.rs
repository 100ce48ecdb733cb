//! Defences for a node that faces a real network: what Redis does, in one place.
//!
//! * Cross-protocol scripting: a browser tricked into posting to the node sends
//!   `POST / HTTP/1.1` and `Host: …` lines, which an inline-command parser would otherwise skip
//!   over on its way to the commands hidden in the body. A request named `POST` or `Host:` closes
//!   the connection before anything after it runs (Redis's `securityWarningCommand`).
//! * Protected mode: a node that listens beyond loopback with no password answers clients from
//!   other hosts with [`DENIED`] and closes, so that a node exposed by mistake is not an open
//!   store. The decision is [`protected_mode_refuses`], a pure function.

use std::net::IpAddr;
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

/// Redis's protected-mode refusal, naming dcache and its own ways of making a change permanent.
pub const DENIED: &str = "-DENIED dcache is running in protected mode because protected mode is \
enabled and no password is set for the default user. In this mode connections are only accepted \
from the loopback interface. If you want to connect from external computers to dcache you may \
adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG \
SET protected-mode no' from the loopback interface by connecting to dcache from the same host the \
server is running, however MAKE SURE dcache is not publicly accessible from internet if you do so. \
Set protected-mode = \"no\" in the node's configuration file to make this change permanent. 2) \
Alternatively you can just disable the protected mode by editing the dcache configuration file, \
and setting the protected-mode option to 'no', and then restarting the server. 3) If you started \
the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up \
an authentication password for the default user. NOTE: You only need to do one of the above \
things in order for the server to start accepting connections from the outside.\r\n";

/// Whether protected mode refuses a client from `peer`: protected mode is on, no password is set,
/// the node listens on some address other than loopback (`bound`: the listeners' addresses, the
/// unspecified address for "all interfaces"), and the peer is not on loopback. A node bound only
/// to loopback needs no protection: only this host can reach it.
#[must_use]
pub fn protected_mode_refuses(
    protected_mode: bool,
    bound: &[IpAddr],
    password_set: bool,
    peer: IpAddr,
) -> bool {
    protected_mode
        && !password_set
        && bound.iter().any(|ip| !is_loopback(*ip))
        && !is_loopback(peer)
}

/// Loopback, including IPv4 loopback seen through a dual-stack IPv6 socket (`::ffff:127.0.0.1`).
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Protected mode's decision for a client from `peer` to this node, with its configuration now.
#[must_use]
pub fn refuses(shared: &Shared, peer: IpAddr) -> bool {
    let config = shared.config();
    protected_mode_refuses(
        config.protected_mode.0,
        &shared.bound_ips(),
        !config.requirepass.is_empty(),
        peer,
    )
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const LOOPBACK4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const LOOPBACK6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
    const ANY4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    const ANY6: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    /// Documentation ranges (RFC 5737, RFC 3849): nothing is ever sent to them.
    const REMOTE4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    const REMOTE6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7));

    #[test]
    fn protected_mode_refuses_only_remote_peers_of_an_exposed_node_without_a_password() {
        // (protected mode, bound, password set, peer, refused)
        let cases: &[(bool, &[IpAddr], bool, IpAddr, bool)] = &[
            // The case it exists for: all interfaces, no password, a remote peer.
            (true, &[ANY4], false, REMOTE4, true),
            (true, &[ANY6], false, REMOTE6, true),
            (true, &[REMOTE4], false, REMOTE4, true),
            (true, &[LOOPBACK4, ANY4], false, REMOTE4, true),
            // Loopback peers are always welcome, whatever the address form.
            (true, &[ANY4], false, LOOPBACK4, false),
            (true, &[ANY6], false, LOOPBACK6, false),
            (
                true,
                &[ANY6],
                false,
                "::ffff:127.0.0.1".parse().unwrap(),
                false,
            ),
            (true, &[ANY4], false, "127.0.0.2".parse().unwrap(), false),
            // A password, or protected mode off, lets everyone through.
            (true, &[ANY4], true, REMOTE4, false),
            (false, &[ANY4], false, REMOTE4, false),
            // Bound to loopback only: nothing to protect.
            (true, &[LOOPBACK4], false, REMOTE4, false),
            (true, &[LOOPBACK4, LOOPBACK6], false, REMOTE6, false),
        ];
        for &(on, bound, password, peer, refused) in cases {
            assert_eq!(
                protected_mode_refuses(on, bound, password, peer),
                refused,
                "protected={on} bound={bound:?} password={password} peer={peer}"
            );
        }
    }

    #[test]
    fn a_node_reads_protected_mode_from_its_live_configuration() {
        let mut config = crate::NodeConfig::default();
        config.bind = "0.0.0.0".into();
        // Not bound: only the address the decision reads.
        let shared = Shared::new(
            config,
            std::sync::Arc::new(crate::SystemClock),
            "0.0.0.0:6379".parse().unwrap(),
            None,
        )
        .unwrap();
        assert!(refuses(&shared, REMOTE4));
        assert!(!refuses(&shared, LOOPBACK4));
        shared.update_config(|c| c.requirepass = "pw".into());
        assert!(!refuses(&shared, REMOTE4));
        shared.update_config(|c| {
            c.requirepass.clear();
            c.protected_mode = crate::config::YesNo(false);
        });
        assert!(!refuses(&shared, REMOTE4));
    }

    #[test]
    fn the_denied_message_is_one_resp_error_line() {
        assert!(DENIED.starts_with("-DENIED dcache is running in protected mode"));
        assert!(DENIED.ends_with("from the outside.\r\n"));
        assert!(!DENIED[..DENIED.len() - 2].contains(['\r', '\n']));
        assert!(
            !DENIED.contains("  "),
            "line breaks in the source left double spaces"
        );
    }

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
