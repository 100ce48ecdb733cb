//! End-to-end: `dcache cli` reading commands from standard input, as a script would feed it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::Node;

fn cli(node: &Node) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dcache"));
    cmd.args(["cli", "--nodes", &format!("127.0.0.1:{}", node.port)])
        .env_remove("DCACHE_PASSWORD");
    cmd
}

/// redis-cli's quoting, one reply per command (blank lines are none), errors as the node's
/// text, and a bad line said and skipped without ending the session.
#[test]
fn stdin_commands_with_quoting_and_errors() {
    let node = Node::start(&[]);
    let script = concat!(
        "SET \"a key\" \"hello world\"\n",
        "GET \"a key\"\n",
        "\n",
        "SET q 'it\\'s'\n",
        "GET q\n",
        "SET bin \"\\x41\\tB\"\n",
        "STRLEN bin\n",
        "GET \"unterminated\n",
        "INCR \"a key\"\n",
        "NOSUCH x\n",
        "MGET \"a key\" nope q\n",
    );
    let mut child = cli(&node)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let want = [
        "OK",
        "hello world",
        "OK",
        "it's",
        "OK",
        "3",
        "Invalid argument(s)",
        "ERR value is not an integer or out of range",
        "ERR unknown command 'NOSUCH', with args beginning with: 'x' ",
        "hello world",
        "",
        "it's",
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want, "{stdout}");
    // The bytes themselves, through another client.
    let value: Vec<u8> = redis::cmd("GET")
        .arg("bin")
        .query(&mut node.client())
        .unwrap();
    assert_eq!(value, b"A\tB");
}

/// The node dies between two commands: the next one reports why and the cli exits non-zero
/// instead of hanging or carrying on silently.
#[test]
fn a_node_dying_mid_stream_ends_the_session_with_an_error() {
    let mut node = Node::start(&[]);
    let mut child = cli(&node)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a reply")
    };
    writeln!(stdin, "SET k v").unwrap();
    assert_eq!(next(), "OK");
    writeln!(stdin, "GET k").unwrap();
    assert_eq!(next(), "v");

    node.child.kill().unwrap();
    node.child.wait().unwrap();
    writeln!(stdin, "GET k").unwrap();
    let said = next();
    assert!(
        said.starts_with("Could not complete the command:") && said.contains("unavailable"),
        "{said}"
    );
    // Whatever else is written, the session is over.
    let _ = writeln!(stdin, "GET k");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dcache: error:"), "{stderr}");
}
