//! End-to-end tests of the built `dcache` binary: start-up line, graceful stop, errors, and the
//! memory budget measured on the node's own process.

mod common;

use std::process::Command;

use common::Node;

fn info_field(info: &str, name: &str) -> usize {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("INFO has no {name}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn prints_one_line_serves_and_stops_on_sigterm() {
    let mut node = Node::start(&["--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lfu"]);
    assert!(
        node.line.starts_with("dcache node listening on 127.0.0.1:"),
        "{}",
        node.line
    );
    assert!(
        node.line.contains("policy allkeys-lfu") && node.line.contains("maxmemory 256mb"),
        "{}",
        node.line
    );
    let mut c = node.client();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, "v");
    let status = node.terminate();
    assert!(status.success(), "graceful stop exits 0: {status:?}");
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_dcache"))
        .args(["node", &port])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn print_config_shows_the_effective_settings_as_toml() {
    let out = Command::new(env!("CARGO_BIN_EXE_dcache"))
        .args(["node", "6123", "--maxmemory", "1gb", "--print-config"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("port = 6123") && text.contains("maxmemory = \"1gb\""),
        "{text}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_dcache"))
        .args(["node", "--maxmemory-policy", "mru", "--print-config"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown eviction policy 'mru'"));
}

/// Writes three times `maxmemory` in 1 KiB values and checks both budgets: `used_memory` at or under
/// the limit, and the process's resident memory within 15 % of the limit above what it used before
/// any data arrived (its base). The figures are printed for docs/PERFORMANCE.md.
#[test]
fn memory_stays_within_the_budget_after_three_times_the_limit() {
    let limit = 64 * 1024 * 1024;
    let node = Node::start(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    let mut c = node.client();
    let info: String = redis::cmd("INFO").arg("memory").query(&mut c).unwrap();
    let base = info_field(&info, "used_memory_rss");
    let value = vec![b'x'; 1024];
    for batch in 0..(3 * limit / 1024 / 1000) {
        let mut pipe = redis::pipe();
        for i in 0..1000 {
            pipe.cmd("SET")
                .arg(format!("key:{batch}:{i}"))
                .arg(&value)
                .ignore();
        }
        let _: () = pipe.query(&mut c).unwrap();
    }
    let info: String = redis::cmd("INFO").arg("all").query(&mut c).unwrap();
    let used = info_field(&info, "used_memory");
    let rss = info_field(&info, "used_memory_rss");
    let allocated = info_field(&info, "allocator_allocated");
    let keys: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    println!(
        "maxmemory {limit}: used_memory {used}, allocator_allocated {allocated}, rss {rss}, base rss {base}, keys {keys}, evicted {}",
        info_field(&info, "evicted_keys")
    );
    assert!(used <= limit, "used_memory {used} > maxmemory {limit}");
    assert!(
        rss <= base + limit + limit * 15 / 100,
        "rss {rss} > base {base} + 1.15 × {limit}"
    );
    assert!(
        allocated <= limit + limit * 15 / 100 + base,
        "allocated {allocated} strays from the accounting"
    );
}
