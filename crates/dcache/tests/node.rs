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
    used: usize,
    /// Bytes the allocator handed out while the data arrived.
    allocated: usize,
    /// The highest resident size seen after any batch of writes, less the size before them.
    peak_rss_growth: usize,
}

/// Writes three times `maxmemory` through a node with `policy` in `value_len`-byte values, checks
/// after every batch that `used_memory` is at or under the limit, checks that it evicted, and
/// returns the figures (also printed, for docs/PERFORMANCE.md).
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
    let keys_to_write = (3 * limit / per_key).max(8);
    // About a megabyte of values a batch.
    let batch = (1 << 20) / per_key + 1;
    let mut peak_rss_growth = 0;
    for start in (0..keys_to_write).step_by(batch) {
        let mut pipe = redis::pipe();
        for i in start..(start + batch).min(keys_to_write) {
            pipe.cmd("SET").arg(format!("key:{i}")).arg(&value).ignore();
        }
        let _: () = pipe.query(&mut c).unwrap();
        let info: String = redis::cmd("INFO").arg("memory").query(&mut c).unwrap();
        let used = info_field(&info, "used_memory");
        assert!(
            used <= limit,
            "{policy}, {value_len}-byte values: used_memory {used} > maxmemory {limit}"
        );
        peak_rss_growth =
            peak_rss_growth.max(info_field(&info, "used_memory_rss").saturating_sub(base_rss));
    }
    // The calibration runs ten times a second, so the allocator's count may lead used_memory by
    // what arrived since the last cycle; on a busy machine that can be more than the slack. Read
    // until the two agree within a tenth of the limit, for at most ten seconds: the calibration
    // must catch up.
    let slack = limit / 10;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (info, used, allocated) = loop {
        let info: String = redis::cmd("INFO").arg("all").query(&mut c).unwrap();
        let used = info_field(&info, "used_memory");
        let allocated = info_field(&info, "allocator_allocated").saturating_sub(base_allocated);
        let agree = allocated <= used + slack && used <= allocated + slack;
        if agree || std::time::Instant::now() >= deadline {
            break (info, used, allocated);
        }
        std::thread::yield_now();
    };
    let keys: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    let evicted = info_field(&info, "evicted_keys");
    println!(
        "{policy}, {value_len}-byte values, maxmemory {limit}: used_memory {used}, allocated since start {allocated}, peak rss growth {peak_rss_growth}, base rss {base_rss}, keys {keys}, evicted {evicted}"
    );
    assert!(evicted > 0, "{policy}: nothing was evicted");
    Filled {
        limit,
        used,
        allocated,
        peak_rss_growth,
    }
}

/// Every value size, from 10 bytes to 20 MB, under one policy or another (the store's own tests
/// run every policy at every size): `used_memory` never passes `maxmemory` (checked after every
/// batch), the process's resident memory never grows by more than 1.2 times the limit, and the
/// allocator's count agrees with `used_memory` both ways, so a store that over-counts fails as
/// surely as one that under-counts.
#[test]
fn memory_stays_within_the_budget_for_every_value_size() {
    for (policy, limit_mb, value_len) in [
        ("allkeys-lru", 16, 10),
        ("allkeys-s3fifo", 16, 32),
        ("allkeys-w-tinylfu", 16, 32),
        ("allkeys-lfu", 16, 1024),
        ("allkeys-s3fifo", 32, 100_000),
        ("allkeys-w-tinylfu", 32, 600_000),
        ("allkeys-lru", 64, 5_000_000),
        ("allkeys-sieve", 64, 20_000_000),
    ] {
        let f = fill_three_times(policy, limit_mb, value_len);
        // 1.2 x: measured alone, 32-byte values under s3fifo grow the process by 1.135-1.137 x
        // the limit (allocator pages and the per-entry overhead calibration folds in); with the
        // other tests of the workspace running beside it on two cores, calibration runs late and
        // the peak reached 1.156 x (CI, 2026-11-30).
        assert!(
            f.peak_rss_growth <= f.limit + f.limit / 5,
            "{policy} {value_len}: resident memory grew by {} > 1.2 x {}",
            f.peak_rss_growth,
            f.limit
        );
        // The allocator holds what used_memory says, within 10 % either way (a few hundred
        // kilobytes of client buffers and runtime sit on the allocator's side).
        let slack = f.limit / 10;
        assert!(
            f.allocated <= f.used + slack && f.used <= f.allocated + slack,
            "{policy} {value_len}: allocated {} against used_memory {}",
            f.allocated,
            f.used
        );
    }
}

/// `noeviction` refuses writes only once the node is full, whatever the value size, and a value
/// that can never fit is refused with Redis's error whatever the policy.
#[test]
fn noeviction_refuses_only_when_full_and_no_policy_takes_what_cannot_fit() {
    for (limit_mb, value_len) in [(16, 1000), (64, 600_000)] {
        let limit = limit_mb << 20;
        let node = Node::start(&[
            "--maxmemory",
            &format!("{limit_mb}mb"),
            "--maxmemory-policy",
            "noeviction",
        ]);
        let mut c = node.client();
        let value = vec![b'x'; value_len];
        let mut refused = None;
        for i in 0..(2 * limit / value_len) {
            if let Err(e) = redis::cmd("SET")
                .arg(format!("key:{i}"))
                .arg(&value)
                .query::<()>(&mut c)
            {
                refused = Some(e);
                break;
            }
        }
        let err = refused.expect("noeviction refuses at some point");
        assert_eq!(err.code(), Some("OOM"));
        let info: String = redis::cmd("INFO").arg("memory").query(&mut c).unwrap();
        let used = info_field(&info, "used_memory");
        // Full: the refused value would not have fitted (with its key and overheads), or the
        // node is within 1 % of the limit.
        assert!(
            used + value_len > limit || used >= limit / 100 * 99,
            "{value_len}-byte values refused with {used} of {limit} used"
        );
    }
    let node = Node::start(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    let mut c = node.client();
    let _: () = redis::cmd("SET")
        .arg("small")
        .arg("v")
        .query(&mut c)
        .unwrap();
    let err = redis::cmd("SET")
        .arg("huge")
        .arg(vec![b'x'; 100 << 20])
        .query::<()>(&mut c)
        .unwrap_err();
    assert_eq!(err.code(), Some("OOM"));
    let small: Option<String> = redis::cmd("GET").arg("small").query(&mut c).unwrap();
    assert_eq!(small.as_deref(), Some("v"), "nothing was evicted for it");
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
