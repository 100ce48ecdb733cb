//! The fuzzer's parts: a seeded generator of requests over the command table and a raw RESP
//! connection that reads one reply with a deadline. `differential` compares with Redis.

#![allow(
    dead_code,
    reason = "each fuzz test file uses its own part of this module"
)]

pub mod differential;
pub mod types;

use std::net::SocketAddr;
use std::time::Duration;

use dcache_protocol::Frame;
use dcache_server::command::table;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one reply may take. Generous: a debug build on a loaded machine is slow, and a node
/// that is stuck never answers at all.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// How many sequences and commands a run makes, and from which seed.
pub struct Settings {
    pub seed: u64,
    pub sequences: usize,
    pub commands: usize,
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text} is not a number")),
    )
}

impl Settings {
    /// The defaults keep `cargo test` short; the environment lengthens or replays a run.
    pub fn from_env(sequences: usize, commands: usize) -> Self {
        let seed = env_number("DCACHE_FUZZ_SEED").unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        Self {
            seed,
            sequences: env_number("DCACHE_FUZZ_SEQUENCES").map_or(sequences, |n| n as usize),
            commands: env_number("DCACHE_FUZZ_COMMANDS").map_or(commands, |n| n as usize),
        }
    }

    pub fn announce(&self, test: &str) {
        say(&format!(
            "{test}: seed {} ({} sequences of {} commands; replay with DCACHE_FUZZ_SEED={})",
            self.seed, self.sequences, self.commands, self.seed
        ));
    }
}

/// Writes a line to the real stderr. The test harness captures `eprintln!` of passing tests;
/// the seed and a skip must show in `cargo test`'s output whatever the outcome.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// xorshift64*: small, fast and the same everywhere, so a seed replays exactly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What the generator may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything, with the most hostile arguments.
    Hostile,
    /// Only what both servers answer deterministically and alike by design.
    Differential,
}

/// Keys of every kind: `setup` gives them their types.
const KEYS: &[&str] = &[
    "s1", "s2", "h1", "h2", "n1", "f1", "missing", "", "{s1}x", "t1", "t2", "z1", "z2", "zl", "l1",
    "l2",
];
const HOSTILE_INTS: &[&str] = &[
    "0",
    "1",
    "2",
    "-1",
    "-2",
    "10",
    "-200000000",
    "200000000",
    "2147483647",
    "-2147483648",
    "4294967296",
    "536870911",
    "536870912",
    "1048575",
    "1048576",
    "4611686018427387903",
    "4611686018427387904",
    "-4611686018427387904",
    "9223372036854775807",
    "-9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615",
    "-0",
    "+1",
    "01",
    "1.0",
    "",
];
/// No small positive numbers: an expiry of a few milliseconds would race the two servers.
const DIFFERENTIAL_INTS: &[&str] = &[
    "0",
    "-1",
    "-3",
    "100000",
    "-100000",
    "2147483647",
    "4294967296",
    "4611686018427387904",
    "9223372036854775807",
    "-9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "01",
    "1.0",
    "",
];
const HOSTILE_FLOATS: &[&str] = &[
    "1.5", "-2.25", "0.1", "inf", "-inf", "+inf", "nan", "1e308", "-1e308", "1e-320", " 1", "1.5x",
    "0x10", "",
];
/// Floats whose sums both servers print the same way: dyadic fractions of modest size (Redis
/// adds in `long double`, dcache in `f64`, so 0.1 + 0.2 prints differently by design).
const DIFFERENTIAL_FLOATS: &[&str] = &[
    "1.5", "-2.25", "0.5", "4.0", "-8", "1e3", "inf", "-inf", "nan", " 1", "1.5x", "",
];
const WORDS: &[&str] = &[
    "NX",
    "XX",
    "GT",
    "LT",
    "EX",
    "PX",
    "EXAT",
    "PXAT",
    "KEEPTTL",
    "GET",
    "PERSIST",
    "WITHVALUES",
    "NOVALUES",
    "MATCH",
    "COUNT",
    "TYPE",
    "REPLACE",
    "DB",
    "SAMPLES",
    "ID",
    "ADDR",
    "LADDR",
    "SKIPME",
    "USER",
    "SETNAME",
    "AUTH",
    "HELP",
    "LIST",
    "INFO",
    "DOCS",
    "SET",
    "RESETSTAT",
    "USAGE",
    "ENCODING",
    "FREQ",
    "IDLETIME",
    "REFCOUNT",
    "KEYSLOT",
    "SLOTS",
    "yes",
    "no",
    "normal",
    "string",
    "hash",
    "*",
    "h*",
    "[a-",
    "\\",
    "SYNC",
    "ASYNC",
    "default",
    // sets, bitmaps, LCS
    "LIMIT",
    "BIT",
    "BYTE",
    "AND",
    "OR",
    "XOR",
    "NOT",
    "u8",
    "i5",
    "i64",
    "u63",
    "u64",
    "#3",
    "OVERFLOW",
    "WRAP",
    "SAT",
    "FAIL",
    "INCRBY",
    "IDX",
    "LEN",
    "MINMATCHLEN",
    "WITHMATCHLEN",
    "WITHSCORES",
    "WITHSCORE",
    "BYSCORE",
    "BYLEX",
    "REV",
    "LIMIT",
    "MIN",
    "MAX",
    "CH",
    "INCR",
    "WEIGHTS",
    "AGGREGATE",
    "SUM",
    "(1",
    "(-inf",
    "[a",
    "(b",
    "-",
    "+",
    "a",
    "b",
    "LEFT",
    "RIGHT",
    "BEFORE",
    "AFTER",
    "RANK",
    "MAXLEN",
    "a",
];
/// Settings the fuzzer may change. Not `requirepass`, `maxclients` or `timeout` (they lock out or
/// close the checking connections by design) and not the request limits, which guard the test
/// process itself. `client-output-buffer-limit` only ever gets one word here, so its parser sees
/// garbage but no limit is ever set from the generator.
const CONFIG_NAMES: &[&str] = &[
    "client-output-buffer-limit",
    "hz",
    "max-args",
    "maxmemory-policy",
    "maxmemory",
    "port",
    "nonsense",
    "*",
];
const SUBCOMMANDS: &[(&str, &[&str])] = &[
    (
        "client",
        &[
            "ID", "GETNAME", "SETNAME", "SETINFO", "INFO", "LIST", "KILL", "HELP", "NOPE",
        ],
    ),
    (
        "command",
        &["COUNT", "LIST", "INFO", "DOCS", "HELP", "NOPE"],
    ),
    ("config", &["GET", "SET", "RESETSTAT", "HELP", "NOPE"]),
    ("memory", &["USAGE", "HELP", "NOPE"]),
    (
        "object",
        &["ENCODING", "FREQ", "IDLETIME", "REFCOUNT", "HELP", "NOPE"],
    ),
    ("cluster", &["KEYSLOT", "INFO", "SLOTS", "HELP", "NOPE"]),
];

/// Commands left out of the comparison with Redis, and why.
pub const NOT_COMPARED: &[(&str, &str)] = &[
    ("time", "the clock"),
    (
        "wait",
        "a Redis without replicas blocks until the timeout (for ever with 0); tests/replication.rs checks it",
    ),
    ("randomkey", "random"),
    ("hrandfield", "random"),
    ("zrandmember", "random"),
    ("zscan", "order and cursors are the engine's own"),
    ("scan", "cursors and order are the store's own"),
    ("hscan", "order; Redis 7.0 has no NOVALUES"),
    ("spop", "random"),
    ("srandmember", "random"),
    (
        "sscan",
        "Redis pages a hash table set by its own cursor, dcache answers in one round",
    ),
    ("info", "server-specific text"),
    ("client", "connection ids, addresses and ages"),
    (
        "object",
        "encodings and policy counters are the engine's own",
    ),
    ("memory", "byte counts are the engine's own"),
    ("config", "different parameter sets"),
    (
        "acl",
        "subcommand sets and help differ (no DRYRUN, GENPASS, LOG, LOAD, SAVE); tests/acl.rs checks the wire",
    ),
    ("command", "different command tables"),
    ("hello", "server name and version"),
    ("cluster", "Redis answers only in cluster mode"),
    ("select", "Redis has 16 databases, dcache one"),
    ("quit", "closes the connection"),
    (
        "subscribe",
        "several frames per request and a subscribed mode; fuzz_redis.rs compares a scripted exchange",
    ),
    (
        "unsubscribe",
        "as SUBSCRIBE; without arguments, in each server's set order",
    ),
    ("psubscribe", "as SUBSCRIBE"),
    ("punsubscribe", "as UNSUBSCRIBE"),
    ("ssubscribe", "as SUBSCRIBE"),
    ("sunsubscribe", "as UNSUBSCRIBE"),
    ("ttl", "a millisecond apart, rounding can differ"),
    ("pttl", "the clock"),
    ("expiretime", "a millisecond apart, rounding can differ"),
    ("pexpiretime", "the clock"),
    (
        "blpop",
        "blocks on empty keys until the random timeout (for ever with 0); tests/lists.rs checks it",
    ),
    ("brpop", "blocks, as BLPOP"),
    ("blmove", "blocks, as BLPOP"),
    ("brpoplpush", "blocks, as BLPOP"),
    ("blmpop", "blocks, as BLPOP"),
    ("bzpopmin", "blocks, as BLPOP; tests/zsets.rs checks it"),
    ("bzpopmax", "blocks, as BLPOP"),
    ("bzmpop", "blocks, as BLPOP"),
];

/// Blocking commands and where their timeout is (an index, or from the end when negative): the
/// hostile fuzzer bounds it, so that a command on empty keys answers (a null array) rather than
/// waiting for ever on a connection that expects a reply.
pub const BLOCKING: &[(&str, isize)] = &[
    ("blpop", -1),
    ("brpop", -1),
    ("blmove", 5),
    ("brpoplpush", 3),
    ("blmpop", 1),
    ("bzpopmin", -1),
    ("bzpopmax", -1),
    ("bzmpop", 1),
];

/// Gives a blocking command a short timeout (10 ms), whatever the generator chose: a valid one
/// where the generator put anything that parses as a timeout, so that every path still runs.
fn bound_blocking(request: &mut [Vec<u8>]) {
    let name = String::from_utf8_lossy(&request[0]).to_ascii_lowercase();
    let Some(&(_, at)) = BLOCKING.iter().find(|(n, _)| *n == name) else {
        return;
    };
    let at = if at < 0 {
        request.len() as isize + at
    } else {
        at
    };
    if at < 1 || at as usize >= request.len() {
        return;
    }
    let timeout = &mut request[at as usize];
    let parses = std::str::from_utf8(timeout)
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
        .is_some_and(|t| t.is_finite() && t >= 0.0);
    if parses {
        *timeout = b"0.01".to_vec();
    }
}

pub fn compared(name: &str) -> bool {
    !NOT_COMPARED.iter().any(|(n, _)| *n == name)
}

fn arg(rng: &mut Rng, mode: Mode) -> Vec<u8> {
    let (ints, floats) = match mode {
        Mode::Hostile => (HOSTILE_INTS, HOSTILE_FLOATS),
        Mode::Differential => (DIFFERENTIAL_INTS, DIFFERENTIAL_FLOATS),
    };
    match rng.below(12) {
        0..=3 => rng.pick(KEYS).as_bytes().to_vec(),
        4..=5 => rng.pick(ints).as_bytes().to_vec(),
        6 => rng.pick(floats).as_bytes().to_vec(),
        7..=8 => rng.pick(WORDS).as_bytes().to_vec(),
        // Random bytes; in the comparison never a bare number (a small one is a racing expiry).
        9 => {
            let mut bytes: Vec<u8> = (0..rng.below(12)).map(|_| rng.next() as u8).collect();
            if mode == Mode::Differential && bytes.iter().all(u8::is_ascii_digit) {
                bytes.insert(0, b'r');
            }
            bytes
        }
        10 => vec![b'v'; rng.below(3000)],
        // Small numbers make small expiries, which would race the two servers' clocks.
        _ if mode == Mode::Differential => rng.pick(ints).as_bytes().to_vec(),
        _ => rng.below(100).to_string().into_bytes(),
    }
}

/// One request: a command from the table, its name in random case, and arguments that mostly
/// fit its arity, sometimes not, sometimes far too many.
pub fn command(rng: &mut Rng, mode: Mode) -> Vec<Vec<u8>> {
    command_among(rng, mode, |_| true)
}

/// As [`command`], among the table's commands that `known` accepts (the differential mode passes
/// the other server's command list).
pub fn command_among(rng: &mut Rng, mode: Mode, known: impl Fn(&str) -> bool) -> Vec<Vec<u8>> {
    let commands: Vec<_> = table()
        .iter()
        .filter(|c| mode == Mode::Hostile || (compared(c.name) && known(c.name)))
        .collect();
    let cmd = rng.pick(&commands);
    let name: Vec<u8> = cmd
        .name
        .bytes()
        .map(|b| {
            if rng.below(4) == 0 {
                b.to_ascii_uppercase()
            } else {
                b
            }
        })
        .collect();
    let fixed = cmd.arity.unsigned_abs() as usize - 1;
    let wanted = if cmd.arity > 0 {
        fixed
    } else {
        fixed + rng.below(5)
    };
    let count = match rng.below(25) {
        0 => rng.below(fixed + 3),
        1 if mode == Mode::Hostile => 100 + rng.below(400),
        _ => wanted,
    };
    let mut request = vec![name];
    let subcommands = SUBCOMMANDS.iter().find(|(n, _)| *n == cmd.name);
    for i in 0..count {
        let next = match (subcommands, i) {
            (Some((_, subs)), 0) if rng.below(8) != 0 => rng.pick(subs).as_bytes().to_vec(),
            // CONFIG SET <name> <value> ...: names from the safe list.
            (Some(("config", _)), i)
                if i % 2 == 1
                    && request
                        .get(1)
                        .is_some_and(|s| s.eq_ignore_ascii_case(b"SET")) =>
            {
                rng.pick(CONFIG_NAMES).as_bytes().to_vec()
            }
            _ => arg(rng, mode),
        };
        request.push(next);
    }
    bound_blocking(&mut request);
    request
}

/// Gives the keys their types, the same on every server. Half the sequences speak RESP3 (HELLO 3
/// first), so that maps, sets, doubles and nulls take their RESP3 forms.
pub fn setup(rng: &mut Rng) -> Vec<Vec<Vec<u8>>> {
    let hello: &[&[&str]] = if rng.below(2) == 0 {
        &[&["HELLO", "3"]]
    } else {
        &[]
    };
    hello
        .iter()
        .copied()
        .chain([
            &["SET", "s1", "hello world"][..],
            &["SET", "s1", "hello world"][..],
            &["SET", "s2", "v"],
            &["SET", "n1", "42"],
            &["SET", "f1", "1.5"],
            &["HSET", "h1", "a", "1", "b", "2", "c", "x"],
            &["HSET", "h2", "f", "10"],
            &["SADD", "t1", "a", "b", "c", "1"],
            &["SADD", "t2", "1", "2", "3", "-100000"],
            &[
                "ZADD", "z1", "1", "a", "2", "b", "2", "c", "-1.5", "d", "inf", "e",
            ],
            &["ZADD", "z2", "3", "a", "0.5", "c", "7", "x"],
            &[
                "ZADD", "zl", "0", "a", "0", "b", "0", "c", "0", "d", "0", "e",
            ],
            &["RPUSH", "l1", "a", "b", "c", "a", "10", "hello world"],
            &["RPUSH", "l2", "x"],
        ])
        .map(|args| args.iter().map(|a| a.as_bytes().to_vec()).collect())
        .collect()
}

/// Puts back what a sequence may have changed.
pub fn reset() -> Vec<Vec<Vec<u8>>> {
    [
        &["FLUSHALL"][..],
        &[
            "CONFIG",
            "SET",
            "hz",
            "10",
            "maxmemory",
            "64mb",
            "maxmemory-policy",
            "allkeys-lru",
        ],
        &[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "normal 1gb 256mb 60",
        ],
    ]
    .iter()
    .map(|args| args.iter().map(|a| a.as_bytes().to_vec()).collect())
    .collect()
}

/// Requests after which the connection may rightly be gone.
pub fn may_close(request: &[Vec<u8>]) -> bool {
    request[0].eq_ignore_ascii_case(b"quit")
        || (request[0].eq_ignore_ascii_case(b"client")
            && request
                .get(1)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"kill")))
}

/// A request as redis-cli would take it, for replaying a failure by hand.
pub fn show(request: &[Vec<u8>]) -> String {
    request
        .iter()
        .map(|a| {
            let text: String = a
                .iter()
                .flat_map(|&b| std::ascii::escape_default(b))
                .map(char::from)
                .collect();
            let text = if text.len() > 60 {
                format!("{}...({} bytes)", &text[..60], a.len())
            } else {
                text
            };
            format!("\"{}\"", text.replace('"', "\\\""))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A raw RESP connection: writes one request, reads exactly one reply.
pub struct Conn {
    socket: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Conn {
        let socket = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Conn {
            socket,
            buf: Vec::new(),
        }
    }

    /// Sends `request` and returns its reply.
    ///
    /// # Errors
    /// The connection closed or broke, the reply did not parse, or it took too long.
    pub async fn call(&mut self, request: &[Vec<u8>]) -> Result<Frame, String> {
        let mut replies = self
            .pipeline(std::slice::from_ref(&request.to_vec()))
            .await?;
        Ok(replies.remove(0))
    }

    /// Sends every request in one write, as a pipelining client does, and reads one reply for
    /// each.
    ///
    /// # Errors
    /// As [`Conn::call`], for any of the replies.
    pub async fn pipeline(&mut self, requests: &[Vec<Vec<u8>>]) -> Result<Vec<Frame>, String> {
        let mut out = Vec::new();
        for request in requests {
            dcache_protocol::reply::encode_command(request.iter(), &mut out);
        }
        self.socket
            .write_all(&out)
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        self.replies(requests.len()).await
    }

    /// Reads `n` frames without sending anything (the messages a subscriber is owed).
    ///
    /// # Errors
    /// As [`Conn::call`].
    pub async fn replies(&mut self, n: usize) -> Result<Vec<Frame>, String> {
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        let mut replies = Vec::with_capacity(n);
        while replies.len() < n {
            if let Some((frame, used)) =
                Frame::parse(&self.buf).map_err(|e| format!("bad reply: {e}"))?
            {
                self.buf.drain(..used);
                replies.push(frame);
                continue;
            }
            let mut chunk = [0u8; 64 * 1024];
            match tokio::time::timeout_at(deadline, self.socket.read(&mut chunk)).await {
                Err(_) => {
                    return Err(format!(
                        "reply {} of {n} did not come within {REPLY_TIMEOUT:?}",
                        replies.len() + 1,
                    ));
                }
                Ok(Ok(0)) => {
                    return Err(format!(
                        "connection closed after {} of {n} replies",
                        replies.len(),
                    ));
                }
                Ok(Err(e)) => return Err(format!("read failed: {e}")),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        Ok(replies)
    }

    pub async fn ping(&mut self) -> bool {
        matches!(self.call(&[b"PING".to_vec()]).await, Ok(Frame::Simple(s)) if s == "PONG")
    }
}
