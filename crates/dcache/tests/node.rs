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

/// SIGTERM with requests in flight: a pipelined batch whose replies (50 MB) cannot fit in the
/// socket buffers is sent, SIGTERM follows before a byte is read, and every request is answered
/// in order before the connection closes and the node exits 0.
#[test]
fn sigterm_answers_the_requests_in_flight() {
    use std::io::{Read, Write};
    let mut node = Node::start(&[]);
    let addr = format!("127.0.0.1:{}", node.port);
    let mut raw = std::net::TcpStream::connect(&addr).unwrap();
    raw.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let big = vec![b'x'; 1 << 20];
    let mut set = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", big.len()).into_bytes();
    set.extend_from_slice(&big);
    set.extend_from_slice(b"\r\n");
    raw.write_all(&set).unwrap();
    let mut ok = [0u8; 5];
    raw.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");

    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..50 {
        batch.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
        expected.extend_from_slice(format!("${}\r\n", big.len()).as_bytes());
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"\r\n");
    }
    for i in 1..=1000 {
        batch.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n");
        expected.extend_from_slice(format!(":{i}\r\n").as_bytes());
    }
    raw.write_all(&batch).unwrap();
    assert!(
        Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", node.child.id())])
            .status()
            .unwrap()
            .success()
    );
    // The node stops accepting first; until then nothing is read, so the replies are in flight.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting");
        std::thread::yield_now();
    }
    let mut got = Vec::with_capacity(expected.len());
    raw.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), expected.len(), "replies cut short or extra");
    assert!(got == expected, "replies differ from the requests' answers");
    let status = node.child.wait().unwrap();
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

struct Filled {
    limit: usize,
    keys: usize,
    used: usize,
    /// Bytes the allocator handed out while the data arrived.
    allocated: usize,
    rss: usize,
    base_rss: usize,
}

/// Writes three times `maxmemory` through a node with `policy`, checks that it evicted and that
/// `used_memory` stayed at or under the limit, and returns the figures (also printed for
/// docs/PERFORMANCE.md).
fn fill_three_times(policy: &str, limit_mb: usize, value_len: usize) -> Filled {
    let limit = limit_mb * 1024 * 1024;
    let node = Node::start(&[
        "--maxmemory",
        &format!("{limit_mb}mb"),
        "--maxmemory-policy",
        policy,
    ]);
    let mut c = node.client();
    let info: String = redis::cmd("INFO").arg("memory").query(&mut c).unwrap();
    let base_rss = info_field(&info, "used_memory_rss");
    let base_allocated = info_field(&info, "allocator_allocated");
    let value = vec![b'x'; value_len];
    let per_key = value_len + 80;
    for batch in 0..(3 * limit / per_key / 1000) {
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
    let allocated = info_field(&info, "allocator_allocated") - base_allocated;
    let keys: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    let evicted = info_field(&info, "evicted_keys");
    println!(
        "{policy}, {value_len}-byte values, maxmemory {limit}: used_memory {used}, allocated since start {allocated}, rss {rss}, base rss {base_rss}, keys {keys}, evicted {evicted}"
    );
    assert!(evicted > 0, "{policy}: nothing was evicted");
    assert!(
        used <= limit,
        "{policy}: used_memory {used} > maxmemory {limit}"
    );
    Filled {
        limit,
        keys,
        used,
        allocated,
        rss,
        base_rss,
    }
}

/// In 1 KiB values: the process's resident memory grows by at most 1.15 × the limit, and the
/// allocator's count stays within 15 % of the store's.
#[test]
fn memory_stays_within_the_budget_after_three_times_the_limit() {
    let f = fill_three_times("allkeys-lru", 64, 1024);
    assert!(
        f.rss <= f.base_rss + f.limit + f.limit * 15 / 100,
        "rss {} > base {} + 1.15 × {}",
        f.rss,
        f.base_rss,
        f.limit
    );
    assert!(
        f.allocated <= f.used + f.used * 15 / 100,
        "allocated {} strays from the accounting {}",
        f.allocated,
        f.used
    );
}

/// The policies with state beside their entries (S3-FIFO's ghost keys, W-TinyLFU's sketch) count
/// it against the budget, so they hold fewer keys than LRU in the same budget; and in small
/// values, the worst case for per-entry overheads, the allocator's count stays within 35 % of the
/// store's under every policy (LRU about 17 %; the rest is slots freed by eviction and not yet
/// reused, which `used_memory` does not count, as Redis's does not).
#[test]
fn policy_bookkeeping_counts_against_the_budget() {
    let runs: Vec<(&str, Filled)> = ["allkeys-lru", "allkeys-s3fifo", "allkeys-w-tinylfu"]
        .into_iter()
        .map(|policy| (policy, fill_three_times(policy, 16, 32)))
        .collect();
    for (policy, f) in &runs {
        let ratio = f.allocated as f64 / f.used as f64;
        assert!(ratio <= 1.35, "{policy}: allocated/accounted {ratio:.3}");
    }
    let lru_keys = runs[0].1.keys;
    for (policy, f) in &runs[1..] {
        assert!(
            f.keys < lru_keys,
            "{policy}: {} keys, LRU {lru_keys}: its bookkeeping takes room",
            f.keys
        );
    }
}

#[test]
fn security_options_reach_the_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_dcache"))
        .args(["node", "--protected-mode", "no", "--print-config"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("protected-mode = \"no\""), "{text}");
    let bad = Command::new(env!("CARGO_BIN_EXE_dcache"))
        .args(["node", "--protected-mode", "maybe", "--print-config"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("argument must be 'yes' or 'no'"));
}
