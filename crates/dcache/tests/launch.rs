//! End-to-end: `dcache launch` starts a local cluster, `dcache cli` writes through the client
//! library, keys spread evenly, and everything stops on SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

fn dbsize(addr: &str) -> usize {
    let mut c = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("DBSIZE").query(&mut c).unwrap()
}

#[test]
fn launch_then_cli_spreads_keys_over_three_nodes_and_stops_cleanly() {
    let log_dir = std::env::temp_dir().join(format!("dcache-launch-test-{}", std::process::id()));
    let mut launch = Command::new(env!("CARGO_BIN_EXE_dcache"))
        .args(["launch", "--nodes", "3", "--base-port", "0", "--log-dir"])
        .arg(&log_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut addrs = Vec::new();
    let mut table = String::new();
    for line in BufReader::new(launch.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        table.push_str(&line);
        table.push('\n');
        if line.starts_with("Connect with:") {
            break;
        }
        if let Some(addr) = line
            .split_whitespace()
            .find(|w| w.starts_with("127.0.0.1:"))
        {
            addrs.push(addr.to_owned());
        }
    }
    assert_eq!(addrs.len(), 3, "launch printed:\n{table}");
    for i in 1..=3 {
        assert!(
            log_dir.join(format!("node-{i}.log")).exists(),
            "each node has its own log"
        );
    }
    let nodes = addrs.join(",");

    // 30,000 SETs, one per line, through the client library.
    let mut cli = Command::new(env!("CARGO_BIN_EXE_dcache"))
        .args(["cli", "--nodes", &nodes])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = cli.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..30_000 {
            writeln!(stdin, "SET key:{i} value-{i}").unwrap();
        }
    });
    let out = cli.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    let replies = String::from_utf8(out.stdout).unwrap();
    assert_eq!(replies.lines().filter(|l| *l == "OK").count(), 30_000);

    for addr in &addrs {
        let keys = dbsize(addr);
        assert!(
            (9_500..=10_500).contains(&keys),
            "{addr} holds {keys} of 30,000 keys"
        );
    }
    let one = Command::new(env!("CARGO_BIN_EXE_dcache"))
        .args(["cli", "--nodes", &nodes, "GET", "key:7"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&one.stdout), "value-7\n");

    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", launch.id())])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(launch.wait().unwrap().success());
    for addr in &addrs {
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{addr} still listens after stop"
        );
    }
    let _ = std::fs::remove_dir_all(&log_dir);
}

#[test]
fn a_port_in_use_is_named_and_nothing_is_left_running() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_dcache"))
        .args(["launch", "--base-port", &port.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("port {port} is already in use")),
        "{stderr}"
    );
    for p in [port + 1, port + 2] {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", p)) {
            // Something unrelated may own the port; it must not be a dcache node.
            let _ = s.write_all(b"PING\r\n");
            let mut line = String::new();
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(200)));
            let _ = BufReader::new(s).read_line(&mut line);
            assert_ne!(line, "+PONG\r\n", "a node was left running on {p}");
        }
    }
}

#[test]
fn restart_brings_a_dead_node_back_on_its_address() {
    let log_dir = std::env::temp_dir().join(format!("dcache-restart-test-{}", std::process::id()));
    let mut launch = Command::new(env!("CARGO_BIN_EXE_dcache"))
        .args([
            "launch",
            "--nodes",
            "2",
            "--base-port",
            "0",
            "--restart",
            "--log-dir",
        ])
        .arg(&log_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut nodes = Vec::new();
    for line in BufReader::new(launch.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with("Connect with:") {
            break;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [_, addr, pid, _] = words[..]
            && addr.starts_with("127.0.0.1:")
        {
            nodes.push((addr.to_owned(), pid.to_owned()));
        }
    }
    assert_eq!(nodes.len(), 2);
    let (addr, pid) = nodes[0].clone();
    assert!(
        Command::new("sh")
            .args(["-c", &format!("kill -KILL {pid}")])
            .status()
            .unwrap()
            .success()
    );
    let mut stderr = BufReader::new(launch.stderr.take().unwrap()).lines();
    let mut said = String::new();
    for line in stderr.by_ref() {
        let line = line.unwrap();
        said.push_str(&line);
        said.push('\n');
        if line.contains("restarted") {
            break;
        }
    }
    assert!(said.contains("node 1") && said.contains("exited"), "{said}");
    assert!(said.contains("restarted"), "{said}");
    // Back on the same address, serving.
    let mut c = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", launch.id())])
        .status();
    assert!(launch.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&log_dir);
}
