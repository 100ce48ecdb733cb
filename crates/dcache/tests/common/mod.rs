//! Starts the built `dcache` binary as a node on a free port.

#![allow(dead_code, reason = "each test file uses its own part of this helper")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

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
