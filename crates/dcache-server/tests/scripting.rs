//! Lua scripts on the wire: conversions both ways, `KEYS`/`ARGV`, `redis.call` against
//! `redis.pcall`, what a failing script leaves applied, the script cache, the sandbox,
//! read-only scripts, `-BUSY` and `SCRIPT KILL`, slots in a cluster, and a rate limiter. The
//! expected replies are Redis 7.0's (`fuzz_redis.rs` compares a list of scripts with a real
//! `redis-server`).

mod common;

use std::time::{Duration, Instant};

use common::members::{cluster, enabled};
use common::{cmd, error_text, query, read_until, start, test_config};
use redis::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn status(s: &str) -> Value {
    Value::SimpleString(s.to_owned())
}

/// `EVAL` of a script with no keys.
async fn eval(con: &mut redis::aio::MultiplexedConnection, script: &str) -> Value {
    cmd(con, &["EVAL", script, "0"])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// The error line of a request that must fail, read off a raw connection: the `redis` crate
/// shortens error messages that name a script.
async fn raw_error(stream: &mut TcpStream, args: &[&str]) -> String {
    let mut request = Vec::new();
    dcache_protocol::reply::encode_command(args.iter(), &mut request);
    stream.write_all(&request).await.unwrap();
    let line = read_until(stream, b"\r\n").await;
    let text = String::from_utf8_lossy(&line);
    text.strip_prefix('-')
        .and_then(|t| t.strip_suffix("\r\n"))
        .unwrap_or_else(|| panic!("{args:?} should fail, got {text:?}"))
        .to_owned()
}

async fn eval_error(stream: &mut TcpStream, script: &str) -> String {
    raw_error(stream, &["EVAL", script, "0"]).await
}

/// Redis's report of a script error: the message, then the script and line.
fn report(msg: &str, script: &str, line: u32) -> String {
    let sha = sha1_smol::Sha1::from(script).digest().to_string();
    format!("{msg} script: {sha}, on @user_script:{line}.")
}

#[tokio::test]
async fn lua_values_become_replies_as_in_redis() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    let mut raw = node.raw().await;
    let cases: Vec<(&str, Value)> = vec![
        ("return 3.99", Value::Int(3)),
        ("return -3.99", Value::Int(-3)),
        ("return 2^53", Value::Int(1 << 53)),
        // C's cast of an out-of-range double on x86-64.
        ("return 1e20", Value::Int(i64::MIN)),
        ("return 'hi'", bulk("hi")),
        ("return true", Value::Int(1)),
        ("return false", Value::Nil),
        ("return nil", Value::Nil),
        ("return {ok='fine'}", status("fine")),
        ("return redis.status_reply('PONG')", status("PONG")),
        // An array stops at the first nil; a table's other keys are not shown.
        (
            "return {1, 2, 3.7, 'x', nil, 5}",
            Value::Array(vec![Value::Int(1), Value::Int(2), Value::Int(3), bulk("x")]),
        ),
        ("return {'a', b='c'}", Value::Array(vec![bulk("a")])),
        (
            "return {1, {2, {3}}}",
            Value::Array(vec![
                Value::Int(1),
                Value::Array(vec![Value::Int(2), Value::Array(vec![Value::Int(3)])]),
            ]),
        ),
        (
            "return {true, false, {ok='s'}}",
            Value::Array(vec![Value::Int(1), Value::Nil, status("s")]),
        ),
    ];
    for (script, expected) in cases {
        assert_eq!(eval(&mut con, script).await, expected, "{script}");
    }
    // Error tables are error replies, as written or with Redis's code added.
    assert_eq!(eval_error(&mut raw, "return {err='bare'}").await, "bare");
    assert_eq!(
        eval_error(&mut raw, "return redis.error_reply('MY thing')").await,
        "MY thing"
    );
    assert_eq!(
        eval_error(&mut raw, "return redis.error_reply('nocode')").await,
        "ERR nocode"
    );
    // A table that holds itself nests until Redis's limit, and the innermost element says so.
    let mut request = Vec::new();
    dcache_protocol::reply::encode_command(
        ["EVAL", "local t = {} t[1] = t return t", "0"],
        &mut request,
    );
    raw.write_all(&request).await.unwrap();
    let reply = read_until(&mut raw, b"-ERR reached lua stack limit\r\n").await;
    assert!(reply.starts_with(b"*1\r\n*1\r\n"), "{reply:?}");
    assert!(reply.ends_with(b"-ERR reached lua stack limit\r\n"));
}

#[tokio::test]
async fn replies_become_lua_values_as_in_redis() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    let _: () = query(&mut con, &["RPUSH", "l", "a", "b"]).await;
    let cases: Vec<(&str, Value)> = vec![
        // Integer → number, bulk → string, null → false, status → {ok=…}, array → table.
        ("return type(redis.call('incr', 'n'))", bulk("number")),
        ("return redis.call('incr', 'n') + 10", Value::Int(12)),
        ("return type(redis.call('get', 'n'))", bulk("string")),
        ("return redis.call('get', 'nokey') == false", Value::Int(1)),
        ("return redis.call('set', 'a', 'b').ok", bulk("OK")),
        ("return redis.call('ping')", status("PONG")),
        (
            "local t = redis.call('lrange', 'l', 0, -1) return {#t, t[1], t[2]}",
            Value::Array(vec![Value::Int(2), bulk("a"), bulk("b")]),
        ),
        (
            "return redis.call('hgetall', 'nohash')",
            Value::Array(vec![]),
        ),
        // Numbers go to commands as C's %.17g writes them.
        (
            "redis.call('set', 'f', 1/3) return redis.call('get', 'f')",
            bulk("0.33333333333333331"),
        ),
        (
            "redis.call('set', 'f', 100) return redis.call('get', 'f')",
            bulk("100"),
        ),
        (
            "redis.call('set', 'f', 1e20) return redis.call('get', 'f')",
            bulk("1e+20"),
        ),
        // A blocking command in a script does not wait: it answers as on a timeout.
        (
            "return redis.call('blmpop', 0, 1, 'empty', 'LEFT')",
            Value::Nil,
        ),
    ];
    for (script, expected) in cases {
        assert_eq!(eval(&mut con, script).await, expected, "{script}");
    }
}

#[tokio::test]
async fn keys_and_argv_are_tables_of_strings() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    let mut raw = node.raw().await;
    let script = "return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], #KEYS, #ARGV}";
    let v = cmd(&mut con, &["EVAL", script, "2", "k1", "k2", "a1", "a2"])
        .await
        .unwrap();
    assert_eq!(
        v,
        Value::Array(vec![
            bulk("k1"),
            bulk("k2"),
            bulk("a1"),
            bulk("a2"),
            Value::Int(2),
            Value::Int(2)
        ])
    );
    // The next script sees its own, not the last one's.
    let v = cmd(&mut con, &["EVAL", "return {#KEYS, #ARGV}", "0"])
        .await
        .unwrap();
    assert_eq!(v, Value::Array(vec![Value::Int(0), Value::Int(0)]));
    // Bytes that are not UTF-8 arrive as they are.
    let v: Value = redis::cmd("EVAL")
        .arg("return {KEYS[1], KEYS[2], ARGV[1], #KEYS, #ARGV}")
        .arg(2)
        .arg(&b"\xff\x00k"[..])
        .arg("k2")
        .arg(&b"a\xfe"[..])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        v,
        Value::Array(vec![
            Value::BulkString(b"\xff\x00k".to_vec()),
            bulk("k2"),
            Value::BulkString(b"a\xfe".to_vec()),
            Value::Int(2),
            Value::Int(1)
        ])
    );
    // However many there are.
    for args in [4000, 4001, 20_000] {
        let mut eval = redis::cmd("EVAL");
        eval.arg("return {#KEYS, #ARGV, KEYS[3], ARGV[1], ARGV[#ARGV]}")
            .arg(3);
        for i in 0..args {
            eval.arg(format!("v{i}"));
        }
        let v: Value = eval.query_async(&mut con).await.unwrap();
        assert_eq!(
            v,
            Value::Array(vec![
                Value::Int(3),
                Value::Int(args - 3),
                bulk("v2"),
                bulk("v3"),
                bulk(&format!("v{}", args - 1)),
            ]),
            "{args}"
        );
    }
    for (numkeys, error) in [
        ("-1", "ERR Number of keys can't be negative"),
        (
            "3",
            "ERR Number of keys can't be greater than number of args",
        ),
        ("x", "ERR value is not an integer or out of range"),
    ] {
        assert_eq!(
            raw_error(&mut raw, &["EVAL", "return 1", numkeys, "a", "b"]).await,
            error
        );
    }
}

/// `redis.call` is made once per Lua state and reaches the run in progress: it must serve every
/// run, after a run that failed inside it or ran out of memory, from a coroutine, and on any
/// connection.
#[tokio::test]
async fn redis_call_serves_each_run_whatever_the_last_one_did() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    let mut other = node.client().await;
    let mut raw = node.raw().await;
    let _: () = query(&mut con, &["SET", "foo", "bar"]).await;
    let incr = "return redis.call('incr', 'c')";
    assert_eq!(
        eval(
            &mut con,
            "return coroutine.wrap(function() return redis.call('incr', 'c') end)()"
        )
        .await,
        Value::Int(1)
    );
    let failing = "redis.call('incr', 'c') return redis.call('incr', 'foo')";
    assert_eq!(
        eval_error(&mut raw, failing).await,
        report("ERR value is not an integer or out of range", failing, 1)
    );
    assert_eq!(eval(&mut con, incr).await, Value::Int(3));
    assert_eq!(eval(&mut other, incr).await, Value::Int(4));
    let e = eval_error(
        &mut raw,
        "redis.call('incr', 'c') return #string.rep('x', 2^30)",
    )
    .await;
    assert!(e.contains("not enough memory"), "{e}");
    assert_eq!(eval(&mut other, incr).await, Value::Int(6));
    // The bound is back for every run, and KEYS and ARGV (set outside it) are whole.
    let e = eval_error(&mut raw, "return #string.rep('x', 2^30)").await;
    assert!(e.contains("not enough memory"), "{e}");
    let big = "x".repeat(1 << 20);
    let v: i64 = query(
        &mut con,
        &["EVAL", "return #ARGV[1] + #KEYS[1]", "1", "k", &big],
    )
    .await;
    assert_eq!(v, (1 << 20) + 1);
}

#[tokio::test]
async fn call_raises_errors_and_pcall_returns_them() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    let mut raw = node.raw().await;
    let _: () = query(&mut con, &["SET", "foo", "bar"]).await;
    let script = "return redis.call('incr', 'foo')";
    assert_eq!(
        eval_error(&mut raw, script).await,
        report("ERR value is not an integer or out of range", script, 1)
    );
    assert_eq!(
        eval_error(&mut raw, "return redis.pcall('incr', 'foo')").await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        eval(
            &mut con,
            "local t = redis.pcall('incr', 'foo') return t.err"
        )
        .await,
        bulk("ERR value is not an integer or out of range")
    );
    // The script's own errors and Redis's refusals, with the line they happened on.
    let cases = [
        ("error('boom')", "ERR user_script:1: boom"),
        ("error({err='MY thing'})", "MY thing"),
        (
            "\n\nredis.call('nosuch')",
            "ERR Unknown Redis command called from script",
        ),
        (
            "redis.call('get')",
            "ERR Wrong number of args calling Redis command from script",
        ),
        (
            "redis.call()",
            "ERR Please specify at least one argument for this redis lib call",
        ),
        (
            "redis.call('set', 'k', {})",
            "ERR Lua redis lib command arguments must be strings or integers",
        ),
        (
            "redis.call('wait', 0, 0)",
            "ERR This Redis command is not allowed from script",
        ),
        (
            "redis.call('blpop', 'l', 0)",
            "ERR This Redis command is not allowed from script",
        ),
        (
            "redis.call('config', 'get', 'hz')",
            "ERR This Redis command is not allowed from script",
        ),
        (
            "redis.call('eval', 'return 1', 0)",
            "ERR This Redis command is not allowed from script",
        ),
        ("return redis.sha1hex()", "ERR wrong number of arguments"),
    ];
    for (script, msg) in cases {
        let line = 1 + script.matches('\n').count() as u32;
        assert_eq!(
            eval_error(&mut raw, script).await,
            report(msg, script, line),
            "{script}"
        );
    }
    assert_eq!(
        eval_error(&mut raw, "return end").await,
        "ERR Error compiling script (new function): user_script:1: '<eof>' expected near 'end'"
    );
}

#[tokio::test]
async fn a_script_that_fails_half_way_keeps_what_it_wrote_before() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    let mut raw = node.raw().await;
    let script = "redis.call('set', KEYS[1], 'one')\n\
                  redis.call('rpush', KEYS[2], 'x')\n\
                  redis.call('incr', KEYS[2])\n\
                  redis.call('set', KEYS[3], 'three')";
    let e = raw_error(&mut raw, &["EVAL", script, "3", "a", "b", "c"]).await;
    assert_eq!(
        e,
        report(
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            script,
            3
        )
    );
    // Redis has no rollback: the writes before the error stay, the ones after never ran.
    let a: Option<String> = query(&mut con, &["GET", "a"]).await;
    let b: Vec<String> = query(&mut con, &["LRANGE", "b", "0", "-1"]).await;
    let c: Option<String> = query(&mut con, &["GET", "c"]).await;
    assert_eq!(
        (a.as_deref(), b, c),
        (Some("one"), vec!["x".to_owned()], None)
    );
    // With pcall the script goes on past the error.
    let script = "redis.pcall('incr', KEYS[1]) return redis.call('set', KEYS[2], 'after')";
    let v = cmd(&mut con, &["EVAL", script, "2", "b", "c"])
        .await
        .unwrap();
    assert_eq!(v, Value::Okay);
    let c: String = query(&mut con, &["GET", "c"]).await;
    assert_eq!(c, "after");
}

#[tokio::test]
async fn scripts_are_cached_by_sha1() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    let mut raw = node.raw().await;
    let body = "return 'hi'";
    let sha: String = query(&mut con, &["SCRIPT", "LOAD", body]).await;
    assert_eq!(sha, "2f31ba2bb6d6a0f42cc159d2e2dad55440778de3");
    let v: String = query(&mut con, &["EVALSHA", &sha, "0"]).await;
    assert_eq!(v, "hi");
    // Any case of hex digits.
    let v: String = query(&mut con, &["EVALSHA", &sha.to_uppercase(), "0"]).await;
    assert_eq!(v, "hi");
    // EVAL caches what it runs.
    let _: Value = cmd(&mut con, &["EVAL", "return 2", "0"]).await.unwrap();
    let two = sha1_smol::Sha1::from("return 2").digest().to_string();
    let exists: Vec<i64> = query(&mut con, &["SCRIPT", "EXISTS", &sha, &two, "nope"]).await;
    assert_eq!(exists, [1, 1, 0]);
    // Another connection sees the same cache.
    let mut other = node.client().await;
    let v: i64 = query(&mut other, &["EVALSHA", &two, "0"]).await;
    assert_eq!(v, 2);
    let nosha = "ffffffffffffffffffffffffffffffffffffffff";
    let not_hex = "gggggggggggggggggggggggggggggggggggggggg";
    for bad in [nosha, "abc", not_hex] {
        assert_eq!(
            raw_error(&mut raw, &["EVALSHA", bad, "0"]).await,
            "NOSCRIPT No matching script. Please use EVAL."
        );
    }
    assert_eq!(
        raw_error(&mut raw, &["SCRIPT", "LOAD", "return end"]).await,
        "ERR Error compiling script (new function): user_script:1: '<eof>' expected near 'end'"
    );
    assert_eq!(
        raw_error(&mut raw, &["SCRIPT", "FLUSH", "NOW"]).await,
        "ERR SCRIPT FLUSH only support SYNC|ASYNC option"
    );
    let _: () = query(&mut con, &["SCRIPT", "FLUSH", "ASYNC"]).await;
    let exists: Vec<i64> = query(&mut con, &["SCRIPT", "EXISTS", &sha, &two]).await;
    assert_eq!(exists, [0, 0]);
    // Flushed for every connection, including one whose Lua state had compiled it.
    assert_eq!(
        error_text(&mut other, &["EVALSHA", &two, "0"]).await,
        "NOSCRIPT No matching script. Please use EVAL."
    );
    assert_eq!(
        raw_error(&mut raw, &["SCRIPT", "NOPE"]).await,
        "ERR unknown subcommand 'NOPE'. Try SCRIPT HELP."
    );
    assert_eq!(
        raw_error(&mut raw, &["SCRIPT", "KILL", "x"]).await,
        "ERR wrong number of arguments for 'script|kill' command"
    );
    assert_eq!(
        error_text(&mut con, &["SCRIPT", "KILL"]).await,
        "NOTBUSY No scripts in execution right now."
    );
}

#[tokio::test]
async fn the_sandbox_hides_the_system_and_keeps_globals_read_only() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    let mut raw = node.raw().await;
    for name in [
        "os", "io", "require", "loadfile", "dofile", "print", "debug", "setfenv",
    ] {
        let script = format!("return type({name})");
        assert_eq!(
            eval_error(&mut raw, &script).await,
            report(
                &format!(
                    "ERR user_script:1: Script attempted to access nonexistent global variable '{name}'"
                ),
                &script,
                1
            )
        );
    }
    for name in [
        "string",
        "table",
        "math",
        "bit",
        "cjson",
        "redis",
        "coroutine",
    ] {
        assert_eq!(
            eval(&mut con, &format!("return type({name})")).await,
            bulk("table"),
            "{name}"
        );
    }
    let refused = [
        (
            "x = 1",
            "ERR user_script:1: Attempt to modify a readonly table",
        ),
        (
            "string.foo = 1",
            "ERR user_script:1: Attempt to modify a readonly table",
        ),
        (
            "redis.call = nil",
            "ERR user_script:1: Attempt to modify a readonly table",
        ),
        (
            "rawset(_G, 'zz', 1)",
            "ERR Attempt to modify a readonly table",
        ),
        (
            "setmetatable(_G, nil)",
            "ERR Attempt to modify a readonly table",
        ),
    ];
    for (script, msg) in refused {
        assert_eq!(
            eval_error(&mut raw, script).await,
            report(msg, script, 1),
            "{script}"
        );
    }
    // Chunks a script loads are sandboxed alike.
    let e = eval_error(&mut raw, "return loadstring('y = 5')()").await;
    assert!(
        e.starts_with("ERR [string \"y = 5\"]:1: Attempt to modify a readonly table"),
        "{e}"
    );
    // Nothing one script stores is seen by the next, whatever the way in.
    let _ = cmd(&mut con, &["EVAL", "table.insert(_G, 'leak')", "0"]).await;
    let _ = eval(&mut con, "local t = {} KEYS.extra = 1 return 1").await;
    let e = eval_error(&mut raw, "return _G[1]").await;
    assert!(e.contains("nonexistent global variable '1'"), "{e}");
    assert_eq!(eval(&mut con, "return KEYS.extra").await, Value::Nil);
    // A script cannot take the machine's memory: Lua's allocations are bounded.
    let e = eval_error(&mut raw, "return #string.rep('x', 2^30)").await;
    assert!(e.contains("not enough memory"), "{e}");
    // Strings keep their methods through the read-only string table.
    assert_eq!(eval(&mut con, "return ('x'):upper()").await, bulk("X"));
}

#[tokio::test]
async fn redis_library_functions_behave_as_in_redis() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    let mut raw = node.raw().await;
    let cases: Vec<(&str, Value)> = vec![
        (
            "return redis.sha1hex('')",
            bulk("da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ),
        (
            "return redis.sha1hex(12)",
            bulk("7b52009b64fd0a2a49e6d8a939753077792b0554"),
        ),
        (
            "return redis.log(redis.LOG_WARNING, 'from', 'a script')",
            Value::Nil,
        ),
        (
            "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
            Value::Array(vec![
                Value::Int(0),
                Value::Int(1),
                Value::Int(2),
                Value::Int(3),
            ]),
        ),
        ("return redis.status_reply()", Value::Nil),
        ("return bit.band(5, 3)", Value::Int(1)),
        ("return bit.bor(1, 2, 4)", Value::Int(7)),
        ("return bit.bxor(0xff, 0x0f)", Value::Int(0xf0)),
        ("return bit.lshift(1, 31)", Value::Int(i64::from(i32::MIN))),
        ("return bit.rshift(-1, 28)", Value::Int(15)),
        ("return bit.arshift(-256, 4)", Value::Int(-16)),
        ("return bit.bnot(0)", Value::Int(-1)),
        ("return bit.tohex(255, 4)", bulk("00ff")),
        ("return bit.tohex(-1, -8)", bulk("FFFFFFFF")),
        ("return bit.tobit(2^32 + 5)", Value::Int(5)),
        ("return string.format('%05.1f', 3.14159)", bulk("003.1")),
        ("return table.concat({'a', 'b'}, '-')", bulk("a-b")),
    ];
    for (script, expected) in cases {
        // status_reply() without arguments answers an error table, returned as the reply.
        if script == "return redis.status_reply()" {
            assert_eq!(
                eval_error(&mut raw, script).await,
                "ERR wrong number or type of arguments"
            );
            continue;
        }
        assert_eq!(eval(&mut con, script).await, expected, "{script}");
    }
    // math.random is Redis's lrand48: a fresh node draws what a fresh Redis draws, and a seed
    // makes it repeat.
    assert_eq!(
        eval(&mut con, "return math.random(100)").await,
        Value::Int(40)
    );
    assert_eq!(
        eval(&mut con, "return math.random(100)").await,
        Value::Int(85)
    );
    let seeded = "math.randomseed(1) return math.random(1000)";
    assert_eq!(eval(&mut con, seeded).await, Value::Int(42));
    assert_eq!(eval(&mut con, seeded).await, Value::Int(42));
}

#[tokio::test]
async fn read_only_scripts_refuse_writes() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    let mut raw = node.raw().await;
    let _: () = query(&mut con, &["SET", "k", "v"]).await;
    let script = "return redis.call('set', KEYS[1], 'w')";
    assert_eq!(
        raw_error(&mut raw, &["EVAL_RO", script, "1", "k"]).await,
        report(
            "ERR Write commands are not allowed from read-only scripts.",
            script,
            1
        )
    );
    let v: String = query(
        &mut con,
        &["EVAL_RO", "return redis.call('get', KEYS[1])", "1", "k"],
    )
    .await;
    assert_eq!(v, "v");
    let sha: String = query(&mut con, &["SCRIPT", "LOAD", script]).await;
    assert!(
        raw_error(&mut raw, &["EVALSHA_RO", &sha, "1", "k"])
            .await
            .starts_with("ERR Write commands are not allowed from read-only scripts.")
    );
    let v: String = query(&mut con, &["GET", "k"]).await;
    assert_eq!(v, "v");
    // The same script through EVALSHA writes.
    let _: () = query(&mut con, &["EVALSHA", &sha, "1", "k"]).await;
    let v: String = query(&mut con, &["GET", "k"]).await;
    assert_eq!(v, "w");
}

/// Sends `EVAL script 0` on a raw connection, without waiting for the reply.
async fn send_eval(stream: &mut tokio::net::TcpStream, script: &str) {
    let request = format!(
        "*3\r\n$4\r\nEVAL\r\n${}\r\n{script}\r\n$1\r\n0\r\n",
        script.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
}

/// Repeats `args` until the reply is not `-NOTBUSY`/`+PONG`-like `skip`, for at most 10 s.
async fn until_not(
    con: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
    skip: impl Fn(&redis::RedisResult<Value>) -> bool,
) -> redis::RedisResult<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = cmd(con, args).await;
        if !skip(&reply) {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} kept answering {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The tests whose scripts spin a worker run one at a time: two at once would leave this
/// machine's two cores to them, and the other clients of each test would wait.
static SPINNING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_kill_stops_a_busy_read_only_script() {
    let mut config = test_config();
    config.busy_reply_threshold = 10;
    let _alone = SPINNING.lock().await;
    let node = start(config).await;
    // Connected first: a node whose workers spin in scripts may take long to accept.
    let mut con = node.client().await;
    let mut runner = node.raw().await;
    // Spins until killed, or a minute at most: a script that outlived a failed assertion
    // would hold a worker of the test's runtime, and the runtime's shutdown would wait for it
    // for ever.
    let script = "local t = redis.call('time')[1] + 60 while redis.call('time')[1] + 0 < t do end";
    send_eval(&mut runner, script).await;
    // Other clients are answered -BUSY once the script has run past the threshold.
    let busy = until_not(&mut con, &["PING"], |r| r.is_ok()).await;
    let e = busy.unwrap_err();
    assert_eq!(e.code(), Some("BUSY"), "{e}");
    let _: () = query(&mut con, &["SCRIPT", "KILL"]).await;
    let reply = read_until(&mut runner, b"\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&reply),
        format!(
            "-{}\r\n",
            report("ERR Script killed by user with SCRIPT KILL...", script, 1)
        )
    );
    // The node serves everyone again, the killed script's client included.
    let pong: String = query(&mut con, &["PING"]).await;
    assert_eq!(pong, "PONG");
    assert_eq!(
        error_text(&mut con, &["SCRIPT", "KILL"]).await,
        "NOTBUSY No scripts in execution right now."
    );
    runner.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    assert_eq!(read_until(&mut runner, b"\r\n").await, b"+PONG\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_wrote_cannot_be_killed() {
    let _alone = SPINNING.lock().await;
    // Other clients are heard (answered -BUSY, or SCRIPT KILL run) past the threshold only.
    let mut config = test_config();
    config.busy_reply_threshold = 10;
    let node = start(config).await;
    let mut con = node.client().await;
    let mut runner = node.raw().await;
    // Writes, then runs for two seconds of the node's clock and ends by itself.
    let script = "redis.call('set', 'w', 'x')\n\
                  local t0 = tonumber(redis.call('time')[1])\n\
                  while tonumber(redis.call('time')[1]) < t0 + 2 do end\n\
                  return 'done'";
    send_eval(&mut runner, script).await;
    let reply = until_not(
        &mut con,
        &["SCRIPT", "KILL"],
        |r| matches!(r, Err(e) if e.code() == Some("NOTBUSY")),
    )
    .await;
    let e = reply.unwrap_err();
    assert_eq!(e.code(), Some("UNKILLABLE"), "{e}");
    assert_eq!(
        read_until(&mut runner, b"done\r\n").await,
        b"$4\r\ndone\r\n"
    );
    let w: String = query(&mut con, &["GET", "w"]).await;
    assert_eq!(w, "x");
}

#[tokio::test]
async fn busy_reply_threshold_is_a_setting_with_redis_alias() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    let mut raw = node.raw().await;
    let v: Vec<String> = query(&mut con, &["CONFIG", "GET", "busy-reply-threshold"]).await;
    assert_eq!(v, ["busy-reply-threshold", "5000"]);
    let _: () = query(&mut con, &["CONFIG", "SET", "lua-time-limit", "250"]).await;
    let v: Vec<String> = query(&mut con, &["CONFIG", "GET", "busy-reply-threshold"]).await;
    assert_eq!(v, ["busy-reply-threshold", "250"]);
    assert_eq!(
        raw_error(&mut raw, &["CONFIG", "SET", "busy-reply-threshold", "-1"]).await,
        "ERR CONFIG SET failed (possibly related to argument 'busy-reply-threshold') - argument must be between 0 and 9223372036854775807 inclusive"
    );
}

#[tokio::test]
async fn in_a_cluster_a_scripts_keys_share_one_slot_of_this_node() {
    // A node alone is a cluster serving every slot.
    let node = start(enabled()).await;
    let mut con = node.client().await;
    let mut raw = node.raw().await;
    assert_eq!(
        raw_error(&mut raw, &["EVAL", "return 1", "2", "a", "b"]).await,
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    let v: i64 = query(&mut con, &["EVAL", "return #KEYS", "2", "{u}a", "{u}b"]).await;
    assert_eq!(v, 2);
    let script = "redis.call('set', KEYS[1], 1) return redis.call('get', 'other')";
    assert_eq!(
        raw_error(&mut raw, &["EVAL", script, "1", "{u}a"]).await,
        report(
            "ERR Script attempted to access keys that do not hash to the same slot",
            script,
            1
        )
    );
    // Without declared keys, the first key touched sets the slot.
    let script = "redis.call('set', '{v}a', 1) return redis.call('incr', '{v}b')";
    let v: i64 = query(&mut con, &["EVAL", script, "0"]).await;
    assert_eq!(v, 1);

    let (control, nodes) = cluster(2).await;
    let t = control.subscribe().borrow().clone();
    let here = &nodes[0];
    let mut raw = here.raw().await;
    let elsewhere = (0..1000)
        .map(|i| format!("key{i}"))
        .find(|k| t.owner(dcache_placement::slot(k.as_bytes())).unwrap().port != here.addr.port())
        .unwrap();
    let slot = dcache_placement::slot(elsewhere.as_bytes());
    let owner = t.owner(slot).unwrap();
    assert_eq!(
        raw_error(&mut raw, &["EVAL", "return 1", "1", &elsewhere]).await,
        format!("MOVED {slot} 127.0.0.1:{}", owner.port)
    );
    let script = format!("return redis.call('get', '{elsewhere}')");
    assert_eq!(
        raw_error(&mut raw, &["EVAL", &script, "0"]).await,
        report(
            "ERR Script attempted to access a non local key in a cluster node",
            &script,
            1
        )
    );
}

#[tokio::test]
async fn rate_limiters_count_and_expire_atomically() {
    let node = start(test_config()).await;
    let mut con = node.client().await;
    // The classic fixed window: INCR, EXPIRE on the first hit, refuse past the limit.
    let fixed = "local n = redis.call('incr', KEYS[1])\n\
                 if n == 1 then redis.call('expire', KEYS[1], ARGV[2]) end\n\
                 if n > tonumber(ARGV[1]) then return 0 end\n\
                 return 1";
    let sha: String = query(&mut con, &["SCRIPT", "LOAD", fixed]).await;
    let mut allowed = Vec::new();
    for _ in 0..5 {
        let v: i64 = query(&mut con, &["EVALSHA", &sha, "1", "rl:user", "3", "60"]).await;
        allowed.push(v);
    }
    assert_eq!(allowed, [1, 1, 1, 0, 0]);
    let ttl: i64 = query(&mut con, &["TTL", "rl:user"]).await;
    assert!((1..=60).contains(&ttl), "{ttl}");

    // A sliding window on a sorted set: drop what is older than the window, count, add.
    let sliding = "local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n\
                   redis.call('zremrangebyscore', KEYS[1], '-inf', now - window)\n\
                   if redis.call('zcard', KEYS[1]) >= limit then return 0 end\n\
                   redis.call('zadd', KEYS[1], now, ARGV[4])\n\
                   redis.call('pexpire', KEYS[1], window)\n\
                   return 1";
    let mut allowed = Vec::new();
    for (i, now) in [1000, 1100, 1200, 1300, 2150, 2250].iter().enumerate() {
        let now = now.to_string();
        let id = format!("req{i}");
        let v: i64 = query(
            &mut con,
            &["EVAL", sliding, "1", "rl:window", &now, "1000", "3", &id],
        )
        .await;
        allowed.push(v);
    }
    // Three in the first second; at 2150 the hits of 1000 and 1100 have left the window.
    assert_eq!(allowed, [1, 1, 1, 0, 1, 1]);
}

/// Whether `node` holds `key` with `value`, read straight from its store.
fn holds_value(node: &common::TestNode, key: &str, value: &str) -> bool {
    let now = node.shared.clock.now_ms();
    let effect = node.shared.store.effect_of(key.as_bytes(), now);
    matches!(effect.change, dcache_store::Change::Put { value: dcache_store::OwnedValue::Str(v), .. } if &*v == value.as_bytes())
}

/// With replication, a script's writes replicate as its commands run, and its reply waits for
/// them: once a pipeline of scripts and plain commands is answered, in order, the replica holds
/// every write.
#[tokio::test]
async fn a_scripts_reply_waits_for_its_writes_copies() {
    use dcache_cluster::{Settings, Strategy};
    for strategy in [Strategy::Primary, Strategy::Chain] {
        let (control, nodes) =
            common::members::replicated(3, Settings::new(1, strategy), enabled()).await;
        let t = control.subscribe().borrow().clone();
        let slot = dcache_placement::slot(b"{s}");
        let copies = t.replicas_of(slot);
        let find = |i: usize| {
            nodes
                .iter()
                .find(|n| n.shared.cluster.as_ref().unwrap().view().me == copies[i].id)
                .expect("a live node")
        };
        let (primary, replica) = (find(0), find(1));
        let mut con = primary.client().await;
        let script = "redis.call('set', KEYS[1], ARGV[1])\n\
                      redis.call('set', KEYS[2], ARGV[1])\n\
                      return redis.call('incr', KEYS[3])";
        let mut pipe = redis::pipe();
        for i in 0..10 {
            let value = format!("v{i}");
            pipe.cmd("EVAL")
                .arg(script)
                .arg(3)
                .arg("{s}a")
                .arg("{s}b")
                .arg("{s}n")
                .arg(&value);
            pipe.cmd("GET").arg("{s}b");
        }
        let replies: Vec<Value> = pipe.query_async(&mut con).await.unwrap();
        for (i, pair) in replies.chunks(2).enumerate() {
            assert_eq!(pair[0], Value::Int(i as i64 + 1), "{strategy:?}");
            assert_eq!(pair[1], bulk(&format!("v{i}")), "{strategy:?}");
        }
        for key in ["{s}a", "{s}b"] {
            assert!(holds_value(replica, key, "v9"), "{strategy:?}: {key}");
        }
        assert!(holds_value(replica, "{s}n", "10"), "{strategy:?}");
    }
}

/// A script runs alone on the node: readers of a key that each run of the script increments
/// twice never see it odd, and a script that other clients' scripts race with loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_runs_with_no_other_clients_command_between_its_calls() {
    let node = start(test_config()).await;
    let mut writer = node.client().await;
    let _: () = query(&mut writer, &["SET", "x", "0"]).await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let twice = "redis.call('incr', KEYS[1]) return redis.call('incr', KEYS[1])";
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let done = std::sync::Arc::clone(&done);
            let url = node.url();
            tokio::spawn(async move {
                let mut con = redis::Client::open(url)
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                let mut n = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed)
                    && n < 20_000
                    && tokio::time::Instant::now() < deadline
                {
                    if i == 0 {
                        // Another client's scripts on another key, racing for the gate.
                        let _: i64 = query(&mut con, &["EVAL", twice, "1", "y"]).await;
                    } else {
                        let x: i64 = query(&mut con, &["GET", "x"]).await;
                        assert_eq!(x % 2, 0, "a reader saw half a script");
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    for i in 1..=300 {
        let x: i64 = query(&mut writer, &["EVAL", twice, "1", "x"]).await;
        assert_eq!(x, 2 * i);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut runs = Vec::new();
    for t in tasks {
        runs.push(t.await.expect("a client task"));
    }
    let y: i64 = query(&mut writer, &["GET", "y"]).await;
    assert_eq!(y, 2 * runs[0] as i64, "every other script counted twice");
    assert!(runs[1] + runs[2] > 0);
}

/// Under `quorum` reads, a script's declared keys are read by quorum before it runs and its own
/// reads are served from this copy: the script runs once and answers (it must not go back to
/// the copies once it holds the gate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_quorum_a_script_with_keys_runs_once_and_answers() {
    use dcache_cluster::{Settings, Strategy};
    let (_control, nodes) =
        common::members::replicated(3, Settings::new(2, Strategy::Quorum), enabled()).await;
    let client = redis::cluster::ClusterClient::new(vec![nodes[0].url()]).unwrap();
    let mut con = client.get_async_connection().await.unwrap();
    let script = "redis.call('incr', KEYS[1]) return redis.call('get', KEYS[1])";
    for i in 1..=5 {
        let v: i64 = redis::cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg("q:counter")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(v, i);
    }
}
