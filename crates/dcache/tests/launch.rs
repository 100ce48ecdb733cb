//! End-to-end: `dcache launch` starts a local cluster, `dcache cli` writes through the client
//! library, keys spread evenly, options reach the nodes, logs fill as the nodes run, and
//! everything stops on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Launch, lines_of, wait_for_line};

fn dbsize(addr: &str) -> usize {
    let mut c = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("DBSIZE").query(&mut c).unwrap()
}

#[test]
fn launch_then_cli_spreads_keys_over_three_nodes_and_stops_cleanly() {
    let mut launch = Launch::start("launch-test", &["--nodes", "3"]);
    let addrs = launch.addrs();
    assert_eq!(addrs.len(), 3, "launch printed:\n{}", launch.table);
    // One cluster: the table comes once every slot is served, a third to each node.
    assert_eq!(
        launch.slots.iter().sum::<usize>(),
        16384,
        "{}",
        launch.table
    );
    for share in &launch.slots {
        assert!((5461..=5462).contains(share), "{}", launch.table);
    }
    for i in 1..=3 {
        assert!(
            launch.log_dir.join(format!("node-{i}.log")).exists(),
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

    assert!(launch.stop().success());
    for addr in &addrs {
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{addr} still listens after stop"
        );
    }
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
    let mut launch = Launch::start("restart-test", &["--nodes", "2", "--restart"]);
    assert_eq!(launch.nodes.len(), 2, "launch printed:\n{}", launch.table);
    let (addr, pid) = launch.nodes[0].clone();
    let stderr = lines_of(launch.child.stderr.take().unwrap());
    assert!(
        Command::new("sh")
            .args(["-c", &format!("kill -KILL {pid}")])
            .status()
            .unwrap()
            .success()
    );
    // A restart that fails or hangs must fail the test, not hang it: the wait is bounded.
    let said = wait_for_line(&stderr, "restarted", Duration::from_secs(60));
    assert!(said.contains("node 1") && said.contains("exited"), "{said}");
    // Back on the same address, serving.
    let mut c = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    assert!(launch.stop().success());
}

/// Each node's log fills while it runs (not at exit): the node's own "node started" line, then
/// its start-up line as launch copied it, with no terminal colour codes, since it is a file.
#[test]
fn node_logs_fill_as_the_nodes_run_and_hold_no_colour_codes() {
    let launch = Launch::start("log-test", &["--nodes", "1"]);
    let (addr, _) = &launch.nodes[0];
    // Both lines are in the file by now: the node logs before it prints its start-up line, and
    // launch copies that line into the log before it prints its table.
    let log = std::fs::read(launch.log_dir.join("node-1.log")).unwrap();
    let text = String::from_utf8_lossy(&log);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2, "{text}");
    assert!(lines[0].contains("node started"), "{text}");
    assert!(
        lines[1].starts_with(&format!("dcache node listening on {addr} ")),
        "{text}"
    );
    assert!(!log.contains(&0x1b), "an ESC byte in the log:\n{text}");
}

fn config_get(addr: &str, name: &str) -> String {
    let mut c = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query(&mut c)
        .unwrap();
    assert_eq!(pair.len(), 2, "CONFIG GET {name}: {pair:?}");
    pair[1].clone()
}

/// The options launch names and anything after `--` reach every node.
#[test]
fn launch_passes_node_options_through() {
    let launch = Launch::start(
        "pass-test",
        &[
            "--nodes",
            "2",
            "--maxmemory-policy",
            "allkeys-lru",
            "--maxmemory",
            "64mb",
            "--",
            "--maxclients",
            "77",
        ],
    );
    assert_eq!(launch.nodes.len(), 2, "launch printed:\n{}", launch.table);
    for addr in launch.addrs() {
        assert_eq!(config_get(&addr, "maxmemory-policy"), "allkeys-lru");
        assert_eq!(config_get(&addr, "maxmemory"), (64 << 20).to_string());
        assert_eq!(config_get(&addr, "maxclients"), "77");
    }
}

/// Whoever reads launch's table may be gone (`dcache launch | head -1`): launch keeps running its
/// nodes and still stops them on SIGTERM.
#[test]
fn a_closed_standard_output_does_not_bring_launch_down() {
    let log_dir = std::env::temp_dir().join(format!("dcache-epipe-test-{}", std::process::id()));
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let launch = Command::new(env!("CARGO_BIN_EXE_dcache"))
        .args(["launch", "--nodes", "1", "--base-port", "0", "--log-dir"])
        .arg(&log_dir)
        .stdout(writer)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Stopped (with its node) however the test ends.
    let mut launch = Launch {
        child: launch,
        log_dir: log_dir.clone(),
        nodes: Vec::new(),
        slots: Vec::new(),
        table: String::new(),
        _stdout: Box::new(std::io::empty()),
    };
    // No table to read: the node's address comes from its log, which launch starts with the
    // node's start-up line. Nothing signals that moment, so poll, bounded.
    let log = log_dir.join("node-1.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .find_map(|l| l.strip_prefix("dcache node listening on "))
            .and_then(|rest| rest.split(' ').next())
        {
            break addr.to_owned();
        }
        assert!(Instant::now() < deadline, "no start-up line in the log");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut c = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: String = redis::cmd("PING").query(&mut c).unwrap();
    // Launch writes its table into the closed pipe right after this node started; dying of that
    // would show here or, at the latest, in its exit status below.
    assert!(
        launch.child.try_wait().unwrap().is_none(),
        "launch died when its output closed"
    );
    drop(c);
    assert!(launch.stop().success());
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "{addr} still listens after stop"
    );
}

/// With `--requirepass`, launch says how to connect with the password, and `dcache cli` gets in
/// with `-a` or `DCACHE_PASSWORD`, and not without.
#[test]
fn launch_with_a_password_says_how_to_connect_and_cli_uses_it() {
    let launch = Launch::start("auth-test", &["--nodes", "3", "--requirepass", "s3cret"]);
    assert_eq!(launch.nodes.len(), 3, "launch printed:\n{}", launch.table);
    let connect = launch
        .table
        .lines()
        .find(|l| l.starts_with("Connect with:"))
        .unwrap();
    assert!(connect.contains(" -a PASSWORD"), "{connect}");
    assert!(!launch.table.contains("s3cret"), "{}", launch.table);
    let nodes = launch.addrs().join(",");
    let cli = |args: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dcache"));
        cmd.args(["cli", "--nodes", &nodes]).args(args);
        cmd.env_remove("DCACHE_PASSWORD");
        if let Some(password) = env {
            cmd.env("DCACHE_PASSWORD", password);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(
        cli(&["SET", "greeting", "hello"], None),
        (true, "NOAUTH Authentication required.\n".to_owned())
    );
    assert_eq!(
        cli(&["-a", "s3cret", "SET", "greeting", "hello"], None),
        (true, "OK\n".to_owned())
    );
    assert_eq!(
        cli(&["GET", "greeting"], Some("s3cret")),
        (true, "hello\n".to_owned())
    );
    let (ok, said) = cli(&["--password", "wrong", "GET", "greeting"], None);
    assert!(!ok && said.contains("WRONGPASS"), "{said}");
}
