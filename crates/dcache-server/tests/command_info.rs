//! `COMMAND` in Redis 7's formats, checked against a real `redis-server`: the fields cluster
//! clients route by (arity, flags, key range, subcommands), `GETKEYS` and its errors.
//!
//! `redis-server` comes from the system; without it the comparisons are skipped (and the test
//! fails under CI, as `fuzz_redis.rs` does), the checks of our own table still run. The same
//! goes for redis-py (`python3 -m pip install redis`), whose cluster client parses `COMMAND`.

mod common;

mod fuzz;

use std::io::Write;

use common::{start, test_config};
use dcache_protocol::Frame;
use fuzz::Conn;
use fuzz::differential::RedisServer;

fn req(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

fn items(frame: Frame) -> Vec<Frame> {
    match frame {
        Frame::Array(items) | Frame::Set(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

/// The first six fields of a `COMMAND INFO` entry (name, arity, flags, first, last, step) with
/// the flags sorted, and the same for each subcommand.
fn routing_fields(entry: Frame) -> (Vec<Frame>, Vec<Vec<Frame>>) {
    let mut fields = items(entry);
    assert_eq!(fields.len(), 10, "Redis 7's ten fields");
    let subs = items(fields.pop().unwrap())
        .into_iter()
        .map(|s| routing_fields(s).0)
        .collect();
    fields.truncate(6);
    let mut flags = items(fields[2].clone());
    flags.sort_by_key(|f| format!("{f:?}"));
    fields[2] = Frame::Array(flags);
    (fields, subs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_counts_lists_and_documents_the_table() {
    let node = start(test_config()).await;
    let mut c = Conn::connect(node.addr).await;
    let count = dcache_server::command::table().len() as i64;
    assert_eq!(
        c.call(&req(&["COMMAND", "COUNT"])).await,
        Ok(Frame::Integer(count))
    );
    assert_eq!(
        items(c.call(&req(&["COMMAND", "LIST"])).await.unwrap()).len() as i64,
        count
    );
    assert_eq!(
        items(c.call(&req(&["COMMAND"])).await.unwrap()).len() as i64,
        count
    );
    let info = items(
        c.call(&req(&["COMMAND", "INFO", "get", "nosuch"]))
            .await
            .unwrap(),
    );
    assert_eq!(info[1], Frame::Null);
    // DOCS: a map (a flat array in RESP2) of name → summary, since, group, complexity.
    let docs = items(
        c.call(&req(&["COMMAND", "DOCS", "get", "nosuch"]))
            .await
            .unwrap(),
    );
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0], Frame::Bulk("get".into()));
    let doc = items(docs[1].clone());
    let keys: Vec<&Frame> = doc.iter().step_by(2).collect();
    assert_eq!(
        keys,
        ["summary", "since", "group", "complexity"]
            .map(|k| Frame::Bulk(k.into()))
            .iter()
            .collect::<Vec<_>>()
    );
    // A container documents its subcommands.
    let docs = items(c.call(&req(&["COMMAND", "DOCS", "memory"])).await.unwrap());
    let doc = items(docs[1].clone());
    assert_eq!(doc[8], Frame::Bulk("subcommands".into()));
    assert!(items(doc[9].clone()).contains(&Frame::Bulk("memory|usage".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_info_and_getkeys_match_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let node = start(test_config()).await;
    let mut ours = Conn::connect(node.addr).await;
    let mut theirs = Conn::connect(redis.addr).await;
    for name in [
        "get",
        "set",
        "mget",
        "mset",
        "del",
        "exists",
        "rename",
        "copy",
        "hset",
        "ping",
        "dbsize",
        "memory",
        "object",
        "keys",
        "scan",
        "sadd",
        "srem",
        "smembers",
        "sismember",
        "smismember",
        "scard",
        "spop",
        "srandmember",
        "smove",
        "sinter",
        "sintercard",
        "sinterstore",
        "sunion",
        "sunionstore",
        "sdiff",
        "sdiffstore",
        "sscan",
        "setbit",
        "getbit",
        "bitcount",
        "bitpos",
        "bitop",
        "bitfield",
        "bitfield_ro",
        "lcs",
    ] {
        let request = req(&["COMMAND", "INFO", name]);
        let a = items(ours.call(&request).await.unwrap()).remove(0);
        let b = items(theirs.call(&request).await.unwrap()).remove(0);
        let (a, a_subs) = routing_fields(a);
        let (b, b_subs) = routing_fields(b);
        assert_eq!(a, b, "COMMAND INFO {name}");
        // Every subcommand we serve is one Redis has, with the same arity and keys, and flags
        // among Redis's (Redis adds ones we have no use for: `loading`, `stale`, `noscript`).
        for sub in &a_subs {
            let theirs = b_subs
                .iter()
                .find(|b| b[0] == sub[0])
                .unwrap_or_else(|| panic!("{name}: Redis has {:?}", sub[0]));
            let (ours_flags, their_flags) = (items(sub[2].clone()), items(theirs[2].clone()));
            assert!(
                ours_flags.iter().all(|f| their_flags.contains(f)),
                "{name}: {sub:?} against {theirs:?}"
            );
            assert_eq!(
                (&sub[1], &sub[3..]),
                (&theirs[1], &theirs[3..]),
                "{name}: {:?}",
                sub[0]
            );
        }
    }
    for words in [
        &["COMMAND", "GETKEYS", "GET", "k"][..],
        &["COMMAND", "GETKEYS", "mset", "a", "1", "b", "2"],
        &["COMMAND", "GETKEYS", "mset", "a", "1", "b"],
        &["COMMAND", "GETKEYS", "mset", "a"],
        &["COMMAND", "GETKEYS", "rename", "a", "b"],
        &["COMMAND", "GETKEYS", "rename", "a"],
        &["COMMAND", "GETKEYS", "ping", "x"],
        &["COMMAND", "GETKEYS", "nosuch", "x"],
        &["COMMAND", "GETKEYS", "memory", "usage", "k"],
        &["COMMAND", "GETKEYS", "memory", "usage"],
        &["COMMAND", "GETKEYS", "memory", "nosuch", "k"],
        &["COMMAND", "GETKEYS", "object", "encoding", "k"],
        &["COMMAND", "GETKEYS", "object", "help"],
        &["COMMAND", "GETKEYS", "get"],
        &[
            "COMMAND",
            "GETKEYS",
            "sintercard",
            "2",
            "a",
            "b",
            "LIMIT",
            "1",
        ],
        &["COMMAND", "GETKEYS", "bitop", "and", "d", "a", "b"],
        &["COMMAND", "GETKEYS", "sunionstore", "d", "a", "b"],
        &["COMMAND", "GETKEYS", "smove", "a", "b", "m"],
        &["COMMAND", "GETKEYS"],
        &["COMMAND", "GETKEYSANDFLAGS", "get", "k"],
        &["COMMAND", "GETKEYSANDFLAGS", "nosuch", "k"],
        &["COMMAND", "COUNT", "x"],
    ] {
        let request = req(words);
        assert_eq!(
            ours.call(&request).await.unwrap(),
            theirs.call(&request).await.unwrap(),
            "{words:?}"
        );
    }
}

/// Whether the environment says this is CI, where every optional tool must be installed.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_parses_command_and_finds_keys() {
    let has_redis_py = std::process::Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_redis_py {
        assert!(
            !in_ci(),
            "CI must install redis-py (python3 -m pip install redis)"
        );
        // Straight to standard error: cargo shows it even for a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: redis-py is not installed (python3 -m pip install redis)"
        );
        return;
    }
    let node = start(test_config()).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/scripts/redis_py_command.py"
    );
    let port = node.addr.port().to_string();
    let out = tokio::process::Command::new("python3")
        .args([script, &port])
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "redis-py failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
