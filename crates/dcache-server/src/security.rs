//! Defences for a node that faces a real network: what Redis does, in one place.
//!
//! * Cross-protocol scripting: a browser tricked into posting to the node sends
//!   `POST / HTTP/1.1` and `Host: …` lines, which an inline-command parser would otherwise skip
//!   over on its way to the commands hidden in the body. A request named `POST` or `Host:` closes
//!   the connection before anything after it runs (Redis's `securityWarningCommand`).
//! * Protected mode: a node that listens beyond loopback with no password answers clients from
//!   other hosts with [`DENIED`] and closes, so that a node exposed by mistake is not an open
//!   store. The decision is [`protected_mode_refuses`], a pure function.
//! * Admin HTTP: with a password, `/metrics` and `/health` want `Authorization: Bearer
//!   <password>` ([`admin_authorized`], compared in constant time); without one, the admin
//!   listener binds only to loopback ([`check_admin_bind`]).

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

/// Compares a secret with what a client sent in time that depends only on their lengths, so that
/// response times do not reveal how much of a guess was right.
#[must_use]
pub fn constant_time_eq(given: &[u8], secret: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != secret.len());
    for (i, &s) in secret.iter().enumerate() {
        diff |= s ^ given.get(i).copied().unwrap_or(!s);
    }
    // Keeps the optimiser from turning the loop into an early exit.
    std::hint::black_box(diff) == 0
}

/// Whether an admin HTTP request may be answered. `authorization` is its `Authorization` header;
/// `password` the node's `requirepass`; `loopback_only` whether the admin listener is on
/// loopback. Without a password only a loopback listener answers: a password cleared with
/// `CONFIG SET` must not leave an exposed listener open.
#[must_use]
pub fn admin_authorized(authorization: Option<&[u8]>, password: &str, loopback_only: bool) -> bool {
    if password.is_empty() {
        return loopback_only;
    }
    let Some(value) = authorization else {
        return false;
    };
    // The scheme is case-insensitive (RFC 9110 section 11.1); one space separates it from the token.
    match value.split_at_checked(7) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case(b"bearer ") => {
            constant_time_eq(token, password.as_bytes())
        }
        _ => false,
    }
}

/// Checks where admin HTTP is about to listen: anywhere with a password, only loopback without.
///
/// # Errors
/// A non-loopback address with no password set, explained.
pub fn check_admin_bind(addrs: &[std::net::SocketAddr], password_set: bool) -> Result<(), String> {
    match addrs.iter().find(|a| !is_loopback(a.ip())) {
        Some(addr) if !password_set => Err(format!(
            "refusing to serve admin HTTP on {addr} without a password: anyone who reaches it \
             could read the node's metrics. Set requirepass (scrapers then send \
             'Authorization: Bearer <password>') or put admin HTTP on a loopback address"
        )),
        _ => Ok(()),
    }
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
        let config = crate::NodeConfig {
            bind: "0.0.0.0".into(),
            ..crate::NodeConfig::default()
        };
        // Not bound: only the address the decision reads.
        let shared = Shared::new(
            config,
            std::sync::Arc::new(crate::SystemClock),
            "0.0.0.0:6379".parse().unwrap(),
            None,
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
    fn constant_time_eq_is_plain_equality() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(constant_time_eq(b"", b""));
        for given in [&b"s3cre"[..], b"s3crex", b"s3cret!", b"", b"S3cret"] {
            assert!(!constant_time_eq(given, b"s3cret"), "{given:?}");
        }
        // A byte that XORs to zero against the missing position must not pass.
        assert!(!constant_time_eq(b"ab", b"ab\0"));
        assert!(!constant_time_eq(b"x", b""));
    }

    #[test]
    fn admin_requests_need_the_bearer_password_when_one_is_set() {
        let ok = |h: Option<&str>| admin_authorized(h.map(str::as_bytes), "pw", false);
        assert!(ok(Some("Bearer pw")));
        assert!(ok(Some("bearer pw")));
        assert!(!ok(None));
        assert!(!ok(Some("Bearer")));
        assert!(!ok(Some("Bearer  pw")));
        assert!(!ok(Some("Bearer pw2")));
        assert!(!ok(Some("Basic cHc=")));
        assert!(!ok(Some("pw")));
        // No password: only a loopback listener answers, whatever the header says.
        assert!(admin_authorized(None, "", true));
        assert!(!admin_authorized(Some(b"Bearer x"), "", false));
    }

    #[test]
    fn admin_http_binds_beyond_loopback_only_with_a_password() {
        let at = |s: &str| [s.parse::<std::net::SocketAddr>().unwrap()];
        assert!(check_admin_bind(&at("127.0.0.1:9100"), false).is_ok());
        assert!(check_admin_bind(&at("[::1]:9100"), false).is_ok());
        let err = check_admin_bind(&at("0.0.0.0:9100"), false).unwrap_err();
        assert!(
            err.contains("0.0.0.0:9100") && err.contains("requirepass"),
            "{err}"
        );
        assert!(check_admin_bind(&at("[::]:9100"), false).is_err());
        assert!(check_admin_bind(&at("0.0.0.0:9100"), true).is_ok());
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
