//! The built node with its default limits, under an address-space limit, against the counts and
//! lengths that once took a node down (`HRANDFIELD h -200000000` reserved 9.6 GB and aborted):
//! it must refuse them with Redis's errors and keep serving. The in-process fuzzer
//! (`crates/dcache-server/tests/fuzz_commands.rs`) lowers the node's limits to stay small; this
//! test keeps Redis's defaults (512 MB arguments, 1 GB query buffer) and lets the kernel refuse
//! any allocation past 1 GiB instead.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Node;

const ADDRESS_SPACE: u64 = 1 << 30;

fn error(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<redis::Value>(con) {
        Ok(v) => panic!("{args:?} should fail, got {v:?}"),
        Err(e) => format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
            .trim()
            .to_owned(),
    }
}

fn pong(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

#[test]
fn hostile_counts_and_lengths_leave_a_limited_node_serving() {
    if !Node::can_limit() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must provide prlimit (util-linux)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "skipped: prlimit (util-linux) is not installed"
        );
        return;
    }
    let mut node = Node::start_limited(ADDRESS_SPACE, &[]);
    let mut c = node.client();
    redis::cmd("HSET")
        .arg(&["h", "a", "1", "b", "2"][..])
        .query::<i64>(&mut c)
        .unwrap();
    let range = "ERR value is out of range";
    for args in [
        &["HRANDFIELD", "h", "-200000000"][..],
        &["HRANDFIELD", "h", "-9223372036854775807"],
        &["HRANDFIELD", "h", "-4611686018427387903", "WITHVALUES"],
        &["HRANDFIELD", "h", "-9223372036854775808"],
    ] {
        assert!(error(&mut c, args).starts_with(range), "{args:?}");
    }
    assert_eq!(
        error(&mut c, &["SETRANGE", "k", "536870912", "x"]),
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
    assert!(error(&mut c, &["CONFIG", "SET", "max-args", "1"]).contains("between 1024"));

    // Lengths promised and never sent: the node holds only what arrived.
    let mut waiting = Vec::new();
    for frame in [
        &b"*2\r\n$3\r\nGET\r\n$536870912\r\nabc"[..],
        b"*1048576\r\n$4\r\nPING\r\n",
        b"*1\r\n$536870911\r\n",
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
        s.write_all(frame).unwrap();
        waiting.push(s);
        assert!(pong(node.port), "no PONG beside {frame:?}");
    }
    assert!(node.child.try_wait().unwrap().is_none(), "the node exited");
    assert_eq!(redis::cmd("HLEN").arg("h").query::<i64>(&mut c).unwrap(), 2);
    drop(waiting);
    assert!(node.terminate().success());
}
