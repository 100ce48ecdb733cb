//! Compatibility with clients other than the `redis` crate: redis-py drives the built binary.
//! CI installs redis-py (`.ci/run`) and the test fails there without it; elsewhere it skips and
//! says so straight on standard error, which cargo shows even for a passing test (it captures
//! `println!` and `eprintln!`).

mod common;

use std::io::Write;
use std::process::Command;

use common::Node;

#[test]
fn redis_py_works_in_resp2_and_resp3() {
    let has_redis_py = Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_redis_py {
        assert!(
            !std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0"),
            "CI must install redis-py (python3 -m pip install redis)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: redis-py is not installed (python3 -m pip install redis)"
        );
        return;
    }
    // A plain Redis client: the node runs as an independent node (a cluster rejects multi-key
    // commands across slots, which this script uses as any redis-py user would).
    let node = Node::start(&["--maxmemory", "64mb", "--cluster-enabled", "no"]);
    let port = node.port.to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/redis_py.py");
    let out = Command::new("python3")
        .args([script, &port])
        .output()
        .unwrap();
    drop(node);
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "redis-py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
