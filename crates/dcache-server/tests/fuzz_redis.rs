//! The command fuzzer's differential mode: seeded random sequences, restricted to the commands
//! whose replies are deterministic (`fuzz/differential.rs` lists the others and why), sent to an
//! in-process node and to a real `redis-server`; the first reply that differs fails the test
//! with the seed and the sequence that led to it.
//!
//! `redis-server` comes from the system (`apt-get install redis-server`). Without it the test
//! says it skipped, except under CI (`CI=true`), where it fails: CI installs it (`.ci/run`).
//! The seed and the environment variables are those of `fuzz_commands.rs`.

mod common;

mod fuzz;

use common::{start, test_config};
use dcache_protocol::Frame;
use dcache_server::ByteSize;
use fuzz::differential::{RedisServer, Transaction, Verdict, compare, normalise};
use fuzz::{Conn, Mode, Rng, Settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_match_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let settings = Settings::from_env(30, 150);
    settings.announce("replies_match_redis");
    // Only commands this redis-server has: a command dcache adds is compared once Redis has it.
    let mut probe = Conn::connect(redis.addr).await;
    let list = probe
        .call(&[b"COMMAND".to_vec(), b"LIST".to_vec()])
        .await
        .expect("redis answers COMMAND LIST");
    let redis_commands: Vec<String> = match list {
        Frame::Array(names) | Frame::Set(names) => names
            .iter()
            .filter_map(|n| n.as_bytes())
            .map(|n| String::from_utf8_lossy(n).to_ascii_lowercase())
            .collect(),
        other => panic!("COMMAND LIST gave {other:?}"),
    };
    let compared: Vec<&str> = dcache_server::command::table()
        .iter()
        .map(|c| c.name)
        .filter(|n| fuzz::compared(n) && redis_commands.iter().any(|c| c == n))
        .collect();
    fuzz::say(&format!(
        "replies_match_redis: {} commands compared: {}",
        compared.len(),
        compared.join(" ")
    ));
    let mut config = test_config();
    // Small limits keep the in-process node small. No generated request comes near them (nor
    // near Redis's 512 MB), so both servers answer such requests alike.
    config.proto_max_bulk_len = ByteSize(1024 * 1024);
    config.maxmemory = ByteSize(64 * 1024 * 1024);
    let node = start(config).await;
    let mut rng = Rng::new(settings.seed);
    for sequence in 0..settings.sequences {
        let mut ours = Conn::connect(node.addr).await;
        let mut theirs = Conn::connect(redis.addr).await;
        for request in fuzz::reset().into_iter().chain(fuzz::setup(&mut rng)) {
            ours.call(&request)
                .await
                .expect("dcache answers the set-up");
            theirs
                .call(&request)
                .await
                .expect("redis answers the set-up");
        }
        let mut sent = Vec::new();
        let mut transaction = Transaction::default();
        for _ in 0..settings.commands {
            let request = fuzz::command_among(&mut rng, Mode::Differential, |name| {
                redis_commands.iter().any(|c| c == name)
            });
            sent.push(fuzz::show(&request));
            let a = ours.call(&request).await;
            let b = theirs.call(&request).await;
            let (a, b) = match (a, b) {
                (Ok(a), Ok(b)) => (normalise(&request, a), normalise(&request, b)),
                (a, b) => panic!(
                    "seed {} sequence {sequence}: dcache {a:?}, redis {b:?}\nafter:\n{}",
                    settings.seed,
                    sent.join("\n")
                ),
            };
            match transaction.compare(&request, &a, &b) {
                Verdict::Same => {}
                Verdict::Tolerated(resync) => {
                    theirs.call(&resync).await.expect("redis answers");
                }
                Verdict::Discard => {
                    let discard = [b"DISCARD".to_vec()];
                    ours.call(&discard).await.expect("dcache answers");
                    theirs.call(&discard).await.expect("redis answers");
                }
                Verdict::Different => panic!(
                    "seed {} sequence {sequence}: replies differ\n  dcache: {a:?}\n  redis:  {b:?}\nafter (replay with DCACHE_FUZZ_SEED={}):\n{}",
                    settings.seed,
                    settings.seed,
                    sent.join("\n")
                ),
            }
        }
    }
}

/// Seeded sequences of well-formed commands over the data types (`fuzz/types.rs`), sent to a node
/// and to `redis-server`: every reply must match, so that hashes, lists, sets, sorted sets,
/// bitmaps, HyperLogLogs and geo sets build up alike on both and every later reply reads that
/// state. A hash that Redis keeps as a listpack must have dcache's encoding too and list its
/// fields in the same order (insertion order); a hash table's are compared sorted. Only
/// commands both servers have are sent (a family not built yet is skipped, and says so); the
/// differences `compare` knows (Redis 7.0's older behaviour) are tolerated as in
/// `replies_match_redis`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_types_match_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let settings = Settings::from_env(20, 200);
    settings.announce("data_types_match_redis");
    let mut probe = Conn::connect(redis.addr).await;
    let redis_commands: Vec<String> = match probe
        .call(&[b"COMMAND".to_vec(), b"LIST".to_vec()])
        .await
        .expect("redis answers COMMAND LIST")
    {
        Frame::Array(names) | Frame::Set(names) => names
            .iter()
            .filter_map(|n| n.as_bytes())
            .map(|n| String::from_utf8_lossy(n).to_ascii_lowercase())
            .collect(),
        other => panic!("COMMAND LIST gave {other:?}"),
    };
    let both = |request: &[Vec<u8>]| {
        let name = String::from_utf8_lossy(&request[0]).to_ascii_lowercase();
        dcache_server::command::lookup(name.as_bytes()).is_some() && redis_commands.contains(&name)
    };
    let mut config = test_config();
    // Redis's limits in `RedisServer::start`.
    config.proto_max_bulk_len = ByteSize(1024 * 1024);
    config.maxmemory = ByteSize(64 * 1024 * 1024);
    let node = start(config).await;
    let mut rng = Rng::new(settings.seed);
    let mut skipped = std::collections::BTreeSet::new();
    let mut compared = 0usize;
    // Hash listings compared in a listpack's order.
    let mut in_order = 0usize;
    for sequence in 0..settings.sequences {
        let mut ours = Conn::connect(node.addr).await;
        let mut theirs = Conn::connect(redis.addr).await;
        let mut start = vec![vec![b"FLUSHALL".to_vec()]];
        if rng.below(2) == 0 {
            start.push(vec![b"HELLO".to_vec(), b"3".to_vec()]);
        }
        // Hashes meet the listpack limits in a few commands under small settings, and Redis's
        // 128 fields and 64 bytes otherwise.
        let (entries, value) = *rng.pick(&[("128", "64"), ("128", "64"), ("3", "64"), ("8", "3")]);
        start.push(
            [
                "CONFIG",
                "SET",
                "hash-max-listpack-entries",
                entries,
                "hash-max-listpack-value",
                value,
            ]
            .map(|w| w.as_bytes().to_vec())
            .to_vec(),
        );
        for request in start {
            ours.call(&request)
                .await
                .expect("dcache answers the set-up");
            theirs
                .call(&request)
                .await
                .expect("redis answers the set-up");
        }
        let mut sent = Vec::new();
        for _ in 0..settings.commands {
            let request = fuzz::types::command(&mut rng);
            if !both(&request) {
                skipped.insert(String::from_utf8_lossy(&request[0]).to_ascii_uppercase());
                continue;
            }
            sent.push(fuzz::show(&request));
            let order = match fuzz::types::hash_listing(&request) {
                Some(key) => hash_order(key, &mut ours, &mut theirs)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "seed {} sequence {sequence}: {e}\nafter (replay with DCACHE_FUZZ_SEED={}):\n{}",
                            settings.seed,
                            settings.seed,
                            sent.join("\n")
                        )
                    }),
                None => Order::Unknown,
            };
            let (a, b) = match (ours.call(&request).await, theirs.call(&request).await) {
                // A listpack's fields come in insertion order on both.
                (Ok(a), Ok(b)) if order == Order::Listpack => {
                    in_order += 1;
                    (a, b)
                }
                // A hash table's HSCAN pages by Redis's own cursor: nothing to compare.
                (Ok(_), Ok(_))
                    if request[0].eq_ignore_ascii_case(b"HSCAN") && order == Order::Table =>
                {
                    continue;
                }
                (Ok(a), Ok(b)) => (
                    fuzz::types::normalise(&request, normalise(&request, a)),
                    fuzz::types::normalise(&request, normalise(&request, b)),
                ),
                (a, b) => panic!(
                    "seed {} sequence {sequence}: dcache {a:?}, redis {b:?}\nafter:\n{}",
                    settings.seed,
                    sent.join("\n")
                ),
            };
            match compare(&request, &a, &b) {
                Verdict::Same => {}
                Verdict::Tolerated(resync) => {
                    theirs.call(&resync).await.expect("redis answers");
                }
                Verdict::Discard => unreachable!("compare alone never asks for DISCARD"),
                Verdict::Different => panic!(
                    "seed {} sequence {sequence}: replies differ\n  dcache: {a:?}\n  redis:  {b:?}\nafter (replay with DCACHE_FUZZ_SEED={}):\n{}",
                    settings.seed,
                    settings.seed,
                    sent.join("\n")
                ),
            }
            after_pfcount(&request, &mut ours, &mut theirs).await;
            compared += 1;
        }
    }
    fuzz::say(&format!(
        "data_types_match_redis: {compared} replies compared ({in_order} hash listings in listpack order); not sent (a server lacks them): {}",
        skipped.into_iter().collect::<Vec<_>>().join(" ")
    ));
    assert!(compared > 0, "some commands were compared");
}

/// How a hash lists its fields, as Redis says (`OBJECT ENCODING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// A listpack: insertion order, to match exactly.
    Listpack,
    /// A hash table: each server's own order.
    Table,
    /// No hash there (missing, or another type: a set's encodings have the same names).
    Unknown,
}

/// The encoding of the hash at `key` on Redis, which dcache's must equal (the two convert at
/// the same writes): an error that says how they differ otherwise.
async fn hash_order(key: &[u8], ours: &mut Conn, theirs: &mut Conn) -> Result<Order, String> {
    let kind = theirs
        .call(&[b"TYPE".to_vec(), key.to_vec()])
        .await
        .expect("redis answers");
    if !matches!(&kind, Frame::Simple(t) if t == "hash") {
        return Ok(Order::Unknown);
    }
    let request = [b"OBJECT".to_vec(), b"ENCODING".to_vec(), key.to_vec()];
    let redis = theirs.call(&request).await.expect("redis answers");
    let order = match redis.as_bytes() {
        Some(b"listpack") => Order::Listpack,
        Some(b"hashtable") => Order::Table,
        _ => return Ok(Order::Unknown),
    };
    let dcache = ours.call(&request).await.expect("dcache answers");
    if dcache != redis {
        return Err(format!(
            "OBJECT ENCODING {}: dcache {dcache:?}, redis {redis:?}",
            String::from_utf8_lossy(key)
        ));
    }
    Ok(order)
}

/// Redis's PFCOUNT writes the count it computed into the HyperLogLog's header; dcache's does not
/// (a read never writes: see command/hll.rs). Left alone, that header would differ in whatever
/// later reads the value's bytes (GET, GETRANGE, BITFIELD, a copy made by RENAME or COPY), so
/// after a PFCOUNT Redis is given dcache's bytes of the keys it counted.
async fn after_pfcount(request: &[Vec<u8>], ours: &mut Conn, theirs: &mut Conn) {
    if !request[0].eq_ignore_ascii_case(b"PFCOUNT") {
        return;
    }
    for key in &request[1..] {
        if let Ok(Frame::Bulk(bytes)) = ours.call(&[b"GET".to_vec(), key.clone()]).await {
            let set = [
                b"SET".to_vec(),
                key.clone(),
                bytes.to_vec(),
                b"KEEPTTL".to_vec(),
            ];
            theirs.call(&set).await.expect("redis answers");
        }
    }
}

/// Who sends a step of [`PUBSUB_SCRIPT`]: the subscriber or the publisher.
#[derive(Clone, Copy, Debug)]
enum Side {
    Sub,
    Pub,
}

/// A scripted pub/sub exchange: (connection, request, frames it produces on that connection,
/// whether to compare them). A request of `None` only reads what the subscriber is owed. No
/// step depends on a set's order (each mass unsubscribe leaves one name).
const PUBSUB_SCRIPT: &[(Side, Option<&[&str]>, usize, bool)] = &[
    (Side::Sub, Some(&["UNSUBSCRIBE"]), 1, true),
    (Side::Sub, Some(&["PUNSUBSCRIBE"]), 1, true),
    (Side::Sub, Some(&["SUNSUBSCRIBE"]), 1, true),
    (Side::Sub, Some(&["SUBSCRIBE"]), 1, true),
    (
        Side::Sub,
        Some(&["SUBSCRIBE", "news", "sport", "news"]),
        3,
        true,
    ),
    (Side::Sub, Some(&["PSUBSCRIBE", "n[aeiou]w?"]), 1, true),
    (Side::Pub, Some(&["PUBLISH", "news", "hello"]), 1, true),
    (Side::Sub, None, 2, true),
    (Side::Pub, Some(&["PUBLISH", "nowhere", "x"]), 1, true),
    (Side::Sub, Some(&["GET", "x"]), 1, true),
    (Side::Sub, Some(&["client", "id"]), 1, true),
    (Side::Sub, Some(&["PING"]), 1, true),
    (Side::Sub, Some(&["PING", "hi"]), 1, true),
    (Side::Sub, Some(&["PING", "a", "b"]), 1, true),
    (
        Side::Pub,
        Some(&["PUBSUB", "NUMSUB", "news", "sport", "none"]),
        1,
        true,
    ),
    (Side::Pub, Some(&["PUBSUB", "NUMPAT"]), 1, true),
    (Side::Pub, Some(&["PUBSUB", "CHANNELS", "s*"]), 1, true),
    (Side::Pub, Some(&["PUBSUB", "CHANNELS", "x", "y"]), 1, true),
    (Side::Pub, Some(&["PUBSUB", "NUMPAT", "x"]), 1, true),
    (Side::Pub, Some(&["PUBSUB", "nope"]), 1, true),
    (Side::Pub, Some(&["PUBSUB", "HELP"]), 1, true),
    (Side::Pub, Some(&["PUBLISH", "a"]), 1, true),
    (Side::Sub, Some(&["UNSUBSCRIBE", "sport", "never"]), 2, true),
    (Side::Pub, Some(&["PUBLISH", "sport", "x"]), 1, true),
    (Side::Pub, Some(&["PUBLISH", "news", "again"]), 1, true),
    (Side::Sub, None, 2, true),
    (Side::Sub, Some(&["PUNSUBSCRIBE"]), 1, true),
    (Side::Sub, Some(&["UNSUBSCRIBE"]), 1, true),
    (Side::Sub, Some(&["UNSUBSCRIBE"]), 1, true),
    (Side::Sub, Some(&["GET", "x"]), 1, true),
    (Side::Sub, Some(&["SSUBSCRIBE", "s1"]), 1, true),
    (Side::Pub, Some(&["SPUBLISH", "s1", "m"]), 1, true),
    (Side::Sub, None, 1, true),
    (Side::Pub, Some(&["PUBSUB", "SHARDCHANNELS"]), 1, true),
    (
        Side::Pub,
        Some(&["PUBSUB", "SHARDNUMSUB", "s1", "s2"]),
        1,
        true,
    ),
    (Side::Sub, Some(&["SUNSUBSCRIBE", "s1"]), 1, true),
    // RESP3: pushes, any command, a message to oneself before PUBLISH's reply.
    (Side::Sub, Some(&["HELLO", "3"]), 1, false),
    (Side::Sub, Some(&["UNSUBSCRIBE"]), 1, true),
    (Side::Sub, Some(&["SUBSCRIBE", "c"]), 1, true),
    (Side::Sub, Some(&["GET", "x"]), 1, true),
    (Side::Sub, Some(&["PING"]), 1, true),
    (Side::Sub, Some(&["PUBLISH", "c", "self"]), 2, true),
    (Side::Pub, Some(&["PUBLISH", "c", "other"]), 1, true),
    (Side::Sub, None, 1, true),
    (Side::Sub, Some(&["PSUBSCRIBE", "*"]), 1, true),
    (Side::Sub, Some(&["SSUBSCRIBE", "c"]), 1, true),
    (Side::Sub, Some(&["SPUBLISH", "c", "s"]), 2, true),
    (Side::Pub, Some(&["PUBLISH", "c", "both"]), 1, true),
    (Side::Sub, None, 2, true),
    // Back to RESP2 while subscribed: the subscribed mode again.
    (Side::Sub, Some(&["HELLO", "2"]), 1, false),
    (Side::Sub, Some(&["GET", "x"]), 1, true),
    (Side::Sub, Some(&["PING"]), 1, true),
    (Side::Sub, Some(&["UNSUBSCRIBE"]), 1, true),
    (Side::Sub, Some(&["PUNSUBSCRIBE"]), 1, true),
    (Side::Sub, Some(&["SUNSUBSCRIBE"]), 1, true),
    (Side::Sub, Some(&["PING"]), 1, true),
];

/// A scripted pub/sub exchange, a subscriber and a publisher on each side, compared frame for
/// frame with `redis-server`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_exchange_matches_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let node = start(test_config()).await;
    let mut ours = [
        Conn::connect(node.addr).await,
        Conn::connect(node.addr).await,
    ];
    let mut theirs = [
        Conn::connect(redis.addr).await,
        Conn::connect(redis.addr).await,
    ];
    for (step, &(side, request, frames, checked)) in PUBSUB_SCRIPT.iter().enumerate() {
        let i = side as usize;
        let request: Option<Vec<Vec<u8>>> =
            request.map(|r| r.iter().map(|a| a.as_bytes().to_vec()).collect());
        let (a, b) = match &request {
            Some(request) => {
                let a = ours[i].pipeline(std::slice::from_ref(request)).await;
                let b = theirs[i].pipeline(std::slice::from_ref(request)).await;
                let more_a = ours[i].replies(frames - 1).await;
                let more_b = theirs[i].replies(frames - 1).await;
                (
                    a.and_then(|mut a| {
                        more_a.map(|m| {
                            a.extend(m);
                            a
                        })
                    }),
                    b.and_then(|mut b| {
                        more_b.map(|m| {
                            b.extend(m);
                            b
                        })
                    }),
                )
            }
            None => (
                ours[i].replies(frames).await,
                theirs[i].replies(frames).await,
            ),
        };
        let a = a.unwrap_or_else(|e| panic!("step {step} {side:?} {request:?}: dcache: {e}"));
        let b = b.unwrap_or_else(|e| panic!("step {step} {side:?} {request:?}: redis: {e}"));
        if checked {
            assert_eq!(
                a,
                b,
                "step {step} {side:?} {:?}: dcache (left) and redis (right) differ",
                request.map(|r| fuzz::show(&r))
            );
        }
    }
}

/// A list of scripts, each `EVAL`ed (or otherwise sent) on a node and on `redis-server`, in
/// order, on one connection each: every reply must be the same, errors word for word (their
/// `script: <sha>, on @user_script:<line>.` report included). The list covers the conversions
/// both ways, `redis.call` against `redis.pcall`, a script failing half way, the sandbox,
/// Redis's library functions, `math.random`'s sequence and the script cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_matches_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let node = start(test_config()).await;
    let mut ours = Conn::connect(node.addr).await;
    let mut theirs = Conn::connect(redis.addr).await;
    let eval = |script: &str, rest: &[&str]| -> Vec<Vec<u8>> {
        let numkeys = rest.len().min(
            rest.iter()
                .position(|a| a.starts_with('@'))
                .unwrap_or(rest.len()),
        );
        let mut request = vec![
            b"EVAL".to_vec(),
            script.as_bytes().to_vec(),
            numkeys.to_string().into_bytes(),
        ];
        request.extend(
            rest.iter()
                .map(|a| a.trim_start_matches('@').as_bytes().to_vec()),
        );
        request
    };
    // Arguments starting with '@' are ARGV; the others before them are KEYS.
    let scripts: &[(&str, &[&str])] = &[
        ("return 3.99", &[]),
        ("return -3.99", &[]),
        ("return 1e20", &[]),
        ("return 0/0", &[]),
        ("return 2^53", &[]),
        ("return 'str'", &[]),
        ("return true", &[]),
        ("return false", &[]),
        ("return nil", &[]),
        ("return {1, 2, 3.7, 'x', nil, 5}", &[]),
        ("return {'a', b='c'}", &[]),
        ("local t = {} t[2] = 1 return t", &[]),
        ("return {true, false, {ok='fine'}, {err='bad'}}", &[]),
        ("return {ok='x'}", &[]),
        ("return {err='bare'}", &[]),
        ("return {ok=1}", &[]),
        ("return redis.status_reply('PONG')", &[]),
        ("return redis.error_reply('X y')", &[]),
        ("return redis.error_reply('nocode')", &[]),
        ("return redis.error_reply('-CODE with dash')", &[]),
        ("return redis.status_reply()", &[]),
        ("return redis.error_reply()", &[]),
        (
            "return {KEYS[1], KEYS[2], ARGV[1], #KEYS, #ARGV}",
            &["k1", "k2", "@a1"],
        ),
        ("return redis.call('set', KEYS[1], ARGV[1])", &["s", "@v"]),
        ("return redis.call('get', KEYS[1])", &["s"]),
        ("return redis.call('get', 'nokey')", &[]),
        ("return type(redis.call('get', 'nokey'))", &[]),
        ("return redis.call('set', 'a', 'b')", &[]),
        ("return redis.call('set', 'a', 'b').ok", &[]),
        ("return redis.call('ping')", &[]),
        ("return redis.call('incr', 'counter')", &[]),
        ("return redis.call('incrbyfloat', 'fl', '1.5')", &[]),
        (
            "redis.call('set', 'n', 1/3) return redis.call('get', 'n')",
            &[],
        ),
        (
            "redis.call('set', 'n', 1e20) return redis.call('get', 'n')",
            &[],
        ),
        (
            "redis.call('set', 'n', 2^60) return redis.call('get', 'n')",
            &[],
        ),
        (
            "redis.call('set', 'n', -0.0) return redis.call('get', 'n')",
            &[],
        ),
        (
            "redis.call('rpush', 'l', 'a', 'b', 'c') return redis.call('lrange', 'l', 0, -1)",
            &[],
        ),
        ("return redis.call('hgetall', 'nohash')", &[]),
        (
            "redis.call('zadd', 'z', 1, 'a', 2.5, 'b') return redis.call('zrange', 'z', 0, -1, 'WITHSCORES')",
            &[],
        ),
        ("return redis.call('incr', 's')", &[]),
        ("return redis.pcall('incr', 's')", &[]),
        ("local t = redis.pcall('incr', 's') return t.err", &[]),
        ("return redis.pcall('lpush', 's', 'x')", &[]),
        (
            "redis.call('set', 'half', 1)\nredis.call('lpush', 'half', 'x')\nredis.call('set', 'never', 1)",
            &[],
        ),
        (
            "return {redis.call('get', 'half'), redis.call('exists', 'never')}",
            &[],
        ),
        ("error('boom')", &[]),
        ("error({err='MY thing'})", &[]),
        ("\n\nerror('on line three')", &[]),
        ("return redis.call('nosuch')", &[]),
        ("return redis.call('get')", &[]),
        ("return redis.call()", &[]),
        ("return redis.call({})", &[]),
        ("return redis.call('set', 'k', {})", &[]),
        ("return redis.call('wait', 0, 0)", &[]),
        ("return redis.call('eval', 'return 1', 0)", &[]),
        ("return redis.call('auth', 'x')", &[]),
        ("return end", &[]),
        ("retur 1", &[]),
        ("x = 1", &[]),
        ("return y", &[]),
        ("return os", &[]),
        ("return io", &[]),
        ("return require", &[]),
        ("return loadfile", &[]),
        ("return print", &[]),
        ("string.foo = 1", &[]),
        ("rawset(_G, 'zz', 1)", &[]),
        ("setmetatable(_G, nil)", &[]),
        ("return loadstring('q = 5')()", &[]),
        ("return getmetatable(_G)", &[]),
        ("return _VERSION", &[]),
        ("return ('x'):rep(3)", &[]),
        ("return string.format('%d %s %5.2f', 5, 'a', 3.14159)", &[]),
        ("return redis.sha1hex('')", &[]),
        ("return redis.sha1hex(12)", &[]),
        ("return redis.sha1hex()", &[]),
        ("return redis.log(redis.LOG_WARNING, 'hi')", &[]),
        ("return redis.log()", &[]),
        (
            "return redis.LOG_DEBUG .. redis.LOG_VERBOSE .. redis.LOG_NOTICE .. redis.LOG_WARNING",
            &[],
        ),
        ("return redis.setresp(4)", &[]),
        ("return redis.set_repl(9)", &[]),
        ("return redis.replicate_commands()", &[]),
        (
            "return {bit.band(5, 3), bit.bor(1, 2, 4), bit.bxor(255, 15), bit.bnot(0)}",
            &[],
        ),
        (
            "return {bit.lshift(1, 31), bit.rshift(-1, 28), bit.arshift(-256, 4), bit.tobit(2^32 + 5)}",
            &[],
        ),
        (
            "return {bit.tohex(255, 4), bit.tohex(-1, -8), bit.rol(1, 33), bit.bswap(1)}",
            &[],
        ),
        ("return math.random(100)", &[]),
        ("return math.random(100)", &[]),
        ("return math.random(5, 10)", &[]),
        ("return tostring(math.random())", &[]),
        (
            "math.randomseed(7) return {math.random(1000), math.random(1000)}",
            &[],
        ),
        ("return tonumber('12') + 1", &[]),
        (
            "return cjson.encode({1, 2, 'a/b', {x=1}, true, false})",
            &[],
        ),
        ("return cjson.encode({})", &[]),
        ("return cjson.encode({a=1.5, b='x\"y\n', c={}})", &[]),
        ("return cjson.encode({a=1, b=2, c=3, d=4, e=5})", &[]),
        (
            "return {cjson.encode(0.1), cjson.encode(1e20), cjson.encode(1/3), cjson.encode(-0.0)}",
            &[],
        ),
        (
            "return {cjson.encode(123456789012345), cjson.encode('\\1\\127'), cjson.encode(cjson.null)}",
            &[],
        ),
        ("return cjson.encode({[1]=1, [3]=3})", &[]),
        ("return cjson.encode({[1]=1, [20]=3})", &[]),
        ("return cjson.encode({[1.5]=1})", &[]),
        ("return cjson.encode(function() end)", &[]),
        ("return cjson.encode(0/0)", &[]),
        (
            "local t = cjson.decode('{\"a\":[1,2,null,\"x\"],\"b\":true,\"c\":1.5}') return {t.a[1], t.a[4], tostring(t.b), tostring(t.c), type(t.a[3]), #t.a}",
            &[],
        ),
        ("return cjson.decode('\"\\u00e9\"')", &[]),
        ("return tostring(cjson.decode('12345678901234567890'))", &[]),
        (
            "return cjson.encode(cjson.decode('[1,{\"k\":[true,null]}]'))",
            &[],
        ),
        ("return {pcall(error, 'x')}", &[]),
        ("return #KEYS", &["a", "b", "c"]),
    ];
    let mut requests: Vec<Vec<Vec<u8>>> = scripts.iter().map(|(s, rest)| eval(s, rest)).collect();
    let words = |w: &[&str]| w.iter().map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>();
    let hi = "2f31ba2bb6d6a0f42cc159d2e2dad55440778de3";
    requests.extend([
        words(&["EVAL", "return 1", "-1"]),
        words(&["EVAL", "return 1", "2", "a"]),
        words(&["EVAL", "return 1", "x"]),
        words(&["SCRIPT", "LOAD", "return 'hi'"]),
        words(&["EVALSHA", hi, "0"]),
        words(&["EVALSHA", &hi.to_uppercase(), "0"]),
        words(&["EVALSHA_RO", hi, "0"]),
        words(&["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"]),
        words(&["EVALSHA", "abc", "0"]),
        words(&["SCRIPT", "EXISTS", hi, "nope"]),
        words(&["SCRIPT", "LOAD", "return end"]),
        words(&["SCRIPT", "FLUSH", "now"]),
        words(&["SCRIPT", "FLUSH", "SYNC"]),
        words(&["SCRIPT", "EXISTS", hi]),
        words(&["SCRIPT", "KILL"]),
        words(&["SCRIPT", "KILL", "x"]),
        words(&["SCRIPT", "NOPE"]),
        words(&["EVAL_RO", "return redis.call('set', 'k', 'v')", "0"]),
        words(&["EVAL_RO", "return redis.call('get', 's')", "0"]),
    ]);
    for request in &requests {
        let a = ours.call(request).await.expect("dcache answers");
        let b = theirs.call(request).await.expect("redis answers");
        assert_eq!(a, b, "{}", fuzz::show(request));
    }
    fuzz::say(&format!(
        "eval_matches_redis: {} requests compared",
        requests.len()
    ));
}
