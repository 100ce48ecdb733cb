//! Starts the built `dcache` binary as a node on a free port, or as a `dcache launch` cluster.

#![allow(dead_code, reason = "each test file uses its own part of this helper")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Node {
    pub child: Child,
    pub port: u16,
    /// The start-up line the node printed.
    pub line: String,
}

impl Node {
    /// Starts `dcache node --port 0 …` and reads the port from its start-up line.
    pub fn start(args: &[&str]) -> Node {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_dcache")), args)
    }

    /// Starts the node under `prlimit --as=<bytes>`: an allocation past the address-space limit
    /// fails, and the node aborts rather than take the machine's memory. `prlimit` execs the
    /// node, so the child is the node itself.
    pub fn start_limited(address_space: u64, args: &[&str]) -> Node {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--as={address_space}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_dcache"));
        Self::spawn(command, args)
    }

    /// Whether `prlimit` (util-linux) can be run here.
    pub fn can_limit() -> bool {
        Command::new("prlimit")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn spawn(mut command: Command, args: &[&str]) -> Node {
        let mut child = command
            .args(["node", "--port", "0", "--log-level", "warn"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in start-up line {line:?}"));
        Node { child, port, line }
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// Sends SIGTERM and waits.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        terminate(&mut self.child)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SIGTERM to `child` (through the shell's own `kill`, so no extra package is needed) and
/// waits for it.
pub fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap()
}

/// A running `dcache launch` with its own log folder; stopped (with its nodes) when dropped.
pub struct Launch {
    pub child: Child,
    pub log_dir: PathBuf,
    /// Each node's address and pid, from the table launch prints.
    pub nodes: Vec<(String, String)>,
    /// The slots each node serves, from the same table ("-" for independent nodes: 0).
    pub slots: Vec<usize>,
    pub table: String,
    /// Kept open: launch writes more after the table.
    pub _stdout: Box<dyn BufRead>,
}

impl Launch {
    /// Starts `dcache launch --base-port 0 --log-dir <temp>/dcache-<name>-<pid> <args>` and reads
    /// its table, which launch prints once every node has started (or exits on failure).
    pub fn start(name: &str, args: &[&str]) -> Launch {
        let log_dir = std::env::temp_dir().join(format!("dcache-{name}-{}", std::process::id()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_dcache"))
            .args(["launch", "--base-port", "0", "--log-dir"])
            .arg(&log_dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut nodes = Vec::new();
        let mut slots = Vec::new();
        let mut table = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut read = String::new();
        while stdout.read_line(&mut read).unwrap() > 0 {
            let text = std::mem::take(&mut read);
            let line = text.trim_end();
            table.push_str(line);
            table.push('\n');
            if line.starts_with("Connect with:") {
                break;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [_, addr, pid, served, _] = words[..]
                && addr.starts_with("127.0.0.1:")
            {
                nodes.push((addr.to_owned(), pid.to_owned()));
                slots.push(served.parse().unwrap_or(0));
            }
        }
        Launch {
            child,
            log_dir,
            nodes,
            slots,
            table,
            _stdout: Box::new(stdout),
        }
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|(a, _)| a.clone()).collect()
    }

    /// The cluster-bus port of node `n` (1-based), from the start-up line launch copies into the
    /// node's log before it prints its table ("…, cluster bus 45609)").
    pub fn bus_port(&self, n: usize) -> u16 {
        let log = std::fs::read_to_string(self.log_dir.join(format!("node-{n}.log"))).unwrap();
        log.lines()
            .filter(|l| l.starts_with("dcache node listening on "))
            .find_map(|l| l.split("cluster bus ").nth(1))
            .and_then(|rest| rest.trim_end_matches(')').parse().ok())
            .unwrap_or_else(|| panic!("no cluster bus port in node-{n}.log:\n{log}"))
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        terminate(&mut self.child)
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SIGTERM so that launch stops its nodes too; a SIGKILL would orphan them.
            let _ = Command::new("sh")
                .args(["-c", &format!("kill -TERM {}", self.child.id())])
                .status();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}

/// The lines of `stderr`, read on a thread so that a test can wait for one with a deadline.
pub fn lines_of(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    rx
}

/// Collects lines until one contains `word`; panics with what came if none does within `limit`.
pub fn wait_for_line(lines: &mpsc::Receiver<String>, word: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut said = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                said.push_str(&line);
                said.push('\n');
                if line.contains(word) {
                    return said;
                }
            }
            Err(_) => panic!("no line with {word:?} within {limit:?}; got:\n{said}"),
        }
    }
}

/// Runs `command` to its end, its output captured; kills it and panics if it takes longer than
/// `limit` (a client that hangs must fail the test, not hang it).
pub fn output_within(mut command: Command, limit: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("sh")
                .args(["-c", &format!("kill -KILL {pid}")])
                .status();
            panic!("{command:?} still runs after {limit:?}");
        }
    }
}

/// The lines `read` gives (a child's stdout, say), read on a thread so that a test can wait for
/// one with a deadline (`wait_for_line`).
pub fn lines_from(read: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(read).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    rx
}

/// `kill -9 pid` (through the shell's own `kill`): the process gets no chance to say goodbye.
pub fn kill_9(pid: &str) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -KILL {pid}")])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}: {status}");
}

/// The key's cluster slot, as Redis computes it: CRC16 (XMODEM) of the key, or of its hash tag
/// (the part between the first `{` and the next `}`, when not empty), modulo 16384.
pub fn slot_of(key: &str) -> usize {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    let mut crc: u16 = 0;
    for &b in hashed {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    usize::from(crc) % 16384
}
