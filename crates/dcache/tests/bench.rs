//! End-to-end: `dcache bench` against a node, a cluster of three, and a memcached stand-in, read
//! back through its `--json` report.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;

use common::Node;

fn bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_dcache"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The report carries every percentile as a number. (What they are, for known samples, is
/// checked in `bench::tests`; measured ones depend on the machine.)
fn check_latencies(report: &serde_json::Value) {
    let l = &report["latency_ms"];
    for name in ["p50", "p90", "p99", "p99_9", "max"] {
        assert!(
            l[name].as_f64().is_some_and(f64::is_finite),
            "{name} in {report}"
        );
    }
}

#[test]
fn bench_preloads_then_reads_every_key_back_from_a_node() {
    let node = Node::start(&[]);
    let server = format!("127.0.0.1:{}", node.port);
    let report = bench(&[
        "--server",
        &server,
        "--preload",
        "--keys",
        "2000",
        "--requests",
        "6000",
        "--reads",
        "1",
        "--pipeline",
        "8",
        "--connections",
        "4",
        "--distribution",
        "zipf:0.99",
        "--value-size",
        "10-100",
    ]);
    assert_eq!(report["requests"], 6000);
    assert_eq!(report["gets"], 6000);
    assert_eq!(report["hit_ratio"], 1.0, "{report}");
    assert_eq!(report["errors"], 0);
    check_latencies(&report);
    let mut c = node.client();
    let keys: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(keys, 2000, "the preload wrote every key once");
    let value: Vec<u8> = redis::cmd("GET")
        .arg("key:000000001999")
        .query(&mut c)
        .unwrap();
    assert!((10..=100).contains(&value.len()), "{}", value.len());
}

/// Empty values go out and come back as hits, not as misses or a confused reader.
#[test]
fn bench_reads_empty_values_back_as_hits() {
    let node = Node::start(&[]);
    let server = format!("127.0.0.1:{}", node.port);
    let report = bench(&[
        "--server",
        &server,
        "--preload",
        "--keys",
        "300",
        "--requests",
        "1200",
        "--reads",
        "1",
        "--pipeline",
        "16",
        "--connections",
        "2",
        "--value-size",
        "0",
    ]);
    assert_eq!(report["gets"], 1200, "{report}");
    assert_eq!(report["hit_ratio"], 1.0, "{report}");
    assert_eq!(report["errors"], 0);
    let mut c = node.client();
    let value: Vec<u8> = redis::cmd("GET")
        .arg("key:000000000299")
        .query(&mut c)
        .unwrap();
    assert!(value.is_empty());
    let keys: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(keys, 300);
}

#[test]
fn bench_without_preload_counts_misses_and_writes() {
    let node = Node::start(&[]);
    let server = format!("127.0.0.1:{}", node.port);
    let report = bench(&[
        "--server",
        &server,
        "--keys",
        "1000000",
        "--requests",
        "4000",
        "--reads",
        "0.5",
        "--key-size",
        "20-30",
    ]);
    assert_eq!(report["requests"], 4000);
    let gets = report["gets"].as_u64().unwrap();
    assert!((1600..=2400).contains(&gets), "{gets} GETs of 4000 at 50 %");
    // A million keys and at most 2,000 writes: almost every GET misses.
    assert!(report["hit_ratio"].as_f64().unwrap() < 0.05, "{report}");
    let mut c = node.client();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    assert!(keys.len() > 1000);
    assert!(
        keys.iter()
            .all(|k| (20..=30).contains(&k.len()) && k.starts_with("key:"))
    );
    let lengths: std::collections::HashSet<usize> = keys.iter().map(String::len).collect();
    assert!(
        lengths.len() > 5,
        "lengths spread over the range: {lengths:?}"
    );
}

#[test]
fn bench_drives_a_cluster_through_the_client() {
    // Independent nodes: the client places keys over them itself (its static mode); a real
    // cluster is driven in tests/cluster.rs.
    let nodes: Vec<Node> = (0..3)
        .map(|_| Node::start(&["--cluster-enabled", "no"]))
        .collect();
    let cluster: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let report = bench(&[
        "--cluster",
        &cluster.join(","),
        "--preload",
        "--keys",
        "3000",
        "--requests",
        "3000",
        "--reads",
        "1",
        "--pipeline",
        "4",
    ]);
    assert_eq!(report["hit_ratio"], 1.0, "{report}");
    let sizes: Vec<usize> = nodes
        .iter()
        .map(|n| redis::cmd("DBSIZE").query(&mut n.client()).unwrap())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 3000);
    assert!(sizes.iter().all(|&s| s > 800), "{sizes:?}");
}

/// A memcached stand-in: `get` and `set` in the text protocol, one thread per connection.
fn fake_memcached() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let store = std::sync::Arc::new(std::sync::Mutex::new(HashMap::new()));
        for conn in listener.incoming() {
            let (conn, store) = (conn.unwrap(), store.clone());
            std::thread::spawn(move || {
                let mut out = conn.try_clone().unwrap();
                let mut reader = BufReader::new(conn);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
                    line.clear();
                    let reply = match words.first().map(String::as_str) {
                        Some("set") => {
                            let len: usize = words[4].parse().unwrap();
                            let mut data = vec![0; len + 2];
                            reader.read_exact(&mut data).unwrap();
                            data.truncate(len);
                            store.lock().unwrap().insert(words[1].clone(), data);
                            b"STORED\r\n".to_vec()
                        }
                        Some("get") => match store.lock().unwrap().get(&words[1]) {
                            Some(data) => {
                                let mut r =
                                    format!("VALUE {} 0 {}\r\n", words[1], data.len()).into_bytes();
                                r.extend_from_slice(data);
                                r.extend_from_slice(b"\r\nEND\r\n");
                                r
                            }
                            None => b"END\r\n".to_vec(),
                        },
                        _ => b"ERROR\r\n".to_vec(),
                    };
                    if out.write_all(&reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn bench_speaks_memcached_text_protocol() {
    let port = fake_memcached();
    let server = format!("127.0.0.1:{port}");
    let report = bench(&[
        "--server",
        &server,
        "--protocol",
        "memcache",
        "--preload",
        "--keys",
        "500",
        "--requests",
        "2000",
        "--reads",
        "0.8",
        "--pipeline",
        "4",
        "--connections",
        "2",
    ]);
    assert_eq!(report["requests"], 2000);
    assert_eq!(report["hit_ratio"], 1.0, "{report}");
    assert_eq!(report["errors"], 0);
    check_latencies(&report);
}

#[test]
fn bench_rejects_bad_options_clearly() {
    for (args, expect) in [
        (&["--distribution", "pareto:1"][..], "unknown distribution"),
        (&["--value-size", "9-3"][..], "--value-size"),
        (&["--reads", "1.5"][..], "--reads"),
        (&["--connections", "0"][..], "at least 1"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_dcache"))
            .arg("bench")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}
