//! The comparison with a real `redis-server`: which commands are compared, how replies are made
//! comparable, the differences left on purpose, and the server itself as a child process.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dcache_protocol::Frame;

use super::say;

/// Makes replies comparable: orders whatever either server returns in its own order.
pub fn normalise(request: &[Vec<u8>], reply: Frame) -> Frame {
    let reply = without_hll_cache(reply);
    let name = request[0].to_ascii_lowercase();
    let sort = |mut items: Vec<Frame>| {
        items.sort_by_key(|f| format!("{f:?}"));
        items
    };
    match (name.as_slice(), reply) {
        (b"keys" | b"hkeys" | b"hvals", Frame::Array(items)) => Frame::Array(sort(items)),
        (b"smembers" | b"sinter" | b"sunion" | b"sdiff", Frame::Array(items)) => {
            Frame::Array(sort(items))
        }
        (b"smembers" | b"sinter" | b"sunion" | b"sdiff", Frame::Set(items)) => {
            Frame::Set(sort(items))
        }
        (b"hgetall", Frame::Array(items)) => {
            let mut pairs: Vec<Frame> = items
                .chunks(2)
                .map(|pair| Frame::Array(pair.to_vec()))
                .collect();
            pairs = sort(pairs);
            Frame::Array(pairs)
        }
        (b"hgetall", Frame::Map(mut pairs)) => {
            pairs.sort_by_key(|pair| format!("{pair:?}"));
            Frame::Map(pairs)
        }
        // Scores: Redis 7.0 prints them with `%.17g` (0.1 as 0.10000000000000001), 7.2 (and
        // dcache) in the shortest form that reads back the same: compared as numbers. A member
        // that is a numeral in another spelling ("1.0" for "1") would pass too, a small blind
        // spot in return for comparing against either version.
        (name, reply) if name.starts_with(b"z") => canonical_numbers(reply),
        // Redis formats names into errors with `%s`, which stops at a NUL byte, and then trims
        // the CR or LF the cut may leave at the end (dcache has made it a space): both sides are
        // cut at the NUL and trimmed.
        (_, Frame::Error(text)) => {
            let cut = text.find('\0').map_or(text.as_str(), |nul| &text[..nul]);
            Frame::Error(cut.trim_end().to_owned())
        }
        (_, reply) => reply,
    }
}

/// Redis's PFCOUNT stores the count it computed in the HLL's header; dcache's reads never write
/// (see command/hll.rs): the header's cache bytes are left out of the comparison, wherever an
/// HLL value shows (GET, MGET, ...).
fn without_hll_cache(reply: Frame) -> Frame {
    match reply {
        Frame::Bulk(bytes) if bytes.len() >= 16 && bytes.starts_with(b"HYLL") => {
            let mut bytes = bytes.to_vec();
            bytes[8..16].fill(0);
            Frame::Bulk(bytes.into())
        }
        Frame::Array(items) => Frame::Array(items.into_iter().map(without_hll_cache).collect()),
        other => other,
    }
}

/// Rewrites every bulk string that reads as a float in one spelling.
fn canonical_numbers(reply: Frame) -> Frame {
    match reply {
        Frame::Bulk(b) => match std::str::from_utf8(&b)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
        {
            Some(v) if !v.is_nan() => Frame::Bulk(format!("{v:e}").into_bytes().into()),
            _ => Frame::Bulk(b),
        },
        Frame::Array(items) => Frame::Array(items.into_iter().map(canonical_numbers).collect()),
        Frame::Error(text) => normalise(&[b"error".to_vec()], Frame::Error(text)),
        other => other,
    }
}

/// What the comparison makes of two replies.
#[derive(Debug)]
pub enum Verdict {
    Same,
    /// A difference known and left, with the request that brings Redis to dcache's state so
    /// that what follows stays comparable.
    Tolerated(Vec<Vec<u8>>),
    /// A known difference in a command queued inside MULTI: one server queued it and the other
    /// refused it, so their EXECs cannot agree. Both connections DISCARD and go on.
    Discard,
    Different,
}

/// Follows MULTI on the two connections, so that a transaction is compared as its parts are:
/// each queued command's known differences are tolerated as outside one, and EXEC's arrays are
/// normalised and compared element by element with the requests that were queued.
#[derive(Debug, Default)]
pub struct Transaction {
    /// The requests queued since MULTI, when both servers are in one.
    queued: Option<Vec<Vec<Vec<u8>>>>,
}

impl Transaction {
    pub fn compare(&mut self, request: &[Vec<u8>], ours: &Frame, theirs: &Frame) -> Verdict {
        let name = request[0].to_ascii_lowercase();
        let immediate = matches!(
            name.as_slice(),
            b"multi" | b"exec" | b"discard" | b"watch" | b"quit" | b"reset"
        );
        if let Some(queued) = &mut self.queued
            && !immediate
        {
            if ours == theirs {
                if matches!(ours, Frame::Simple(s) if s == "QUEUED") {
                    queued.push(request.to_vec());
                }
                return Verdict::Same;
            }
            return match compare(request, ours, theirs) {
                Verdict::Different => Verdict::Different,
                _ => {
                    self.queued = None;
                    Verdict::Discard
                }
            };
        }
        match name.as_slice() {
            b"multi" if self.queued.is_none() => {
                if ours == theirs && matches!(ours, Frame::Simple(s) if s == "OK") {
                    self.queued = Some(Vec::new());
                }
                compare(request, ours, theirs)
            }
            b"exec" | b"discard" => {
                let queued = self.queued.take();
                match (name.as_slice(), queued, ours, theirs) {
                    (b"exec", Some(queued), Frame::Array(a), Frame::Array(b))
                        if a.len() == b.len() && a.len() == queued.len() =>
                    {
                        let mut verdict = Verdict::Same;
                        for ((request, a), b) in queued.iter().zip(a).zip(b) {
                            let a = normalise(request, a.clone());
                            let b = normalise(request, b.clone());
                            match compare(request, &a, &b) {
                                Verdict::Same => {}
                                Verdict::Different => return Verdict::Different,
                                // The resync of the last tolerated difference: such commands
                                // write one key each, and the test goes on from dcache's state.
                                other => verdict = other,
                            }
                        }
                        verdict
                    }
                    _ => compare(request, ours, theirs),
                }
            }
            _ => compare(request, ours, theirs),
        }
    }
}

/// Compares two normalised replies. The one difference left on purpose: INCRBYFLOAT and
/// HINCRBYFLOAT compute in `f64` where Redis uses the x87 `long double`, so past 2^53 (or with
/// decimals an `f64` cannot hold) the last digits differ, within a few `f64` rounding steps of
/// the operands.
pub fn compare(request: &[Vec<u8>], ours: &Frame, theirs: &Frame) -> Verdict {
    if ours == theirs {
        return Verdict::Same;
    }
    let name = request[0].to_ascii_lowercase();
    // Redis 7.2 checks BITCOUNT's and BITPOS's arguments before it looks the key up (#11734),
    // as dcache does; Redis 7.0 answers a missing key's 0 (or -1) whatever follows it.
    // A key of another type likewise gives 7.0's WRONGTYPE before the argument's error.
    if let (b"bitcount" | b"bitpos", Frame::Error(e), Frame::Integer(0 | -1) | Frame::Error(_)) =
        (name.as_slice(), ours, theirs)
        && !e.starts_with("WRONGTYPE")
        && (matches!(theirs, Frame::Integer(_))
            || matches!(theirs, Frame::Error(t) if t.starts_with("WRONGTYPE")))
    {
        return Verdict::Tolerated(vec![b"PING".to_vec()]);
    }
    // WITHSCORE came with Redis 7.2; an older server refuses the argument.
    if matches!(name.as_slice(), b"zrank" | b"zrevrank")
        && request.len() >= 4
        && matches!(theirs, Frame::Error(e) if e.contains("wrong number of arguments"))
    {
        return Verdict::Same;
    }
    let float = |f: &Frame| {
        f.as_bytes()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|t| t.parse::<f64>().ok())
    };
    if let (b"incrbyfloat" | b"hincrbyfloat", Some(a), Some(b)) =
        (name.as_slice(), float(ours), float(theirs))
    {
        // Cancellation (a huge increment undoing a huge value) makes the error relative to the
        // operands rather than the result.
        let increment = std::str::from_utf8(request.last().map_or(&[][..], Vec::as_slice))
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .map_or(0.0, f64::abs);
        if (a - b).abs() <= a.abs().max(b.abs()).max(increment) * 4.0 * f64::EPSILON {
            let value = ours.as_bytes().unwrap_or_default().to_vec();
            let resync = if name == b"incrbyfloat" {
                vec![
                    b"SET".to_vec(),
                    request[1].clone(),
                    value,
                    b"KEEPTTL".to_vec(),
                ]
            } else {
                vec![
                    b"HSET".to_vec(),
                    request[1].clone(),
                    request[2].clone(),
                    value,
                ]
            };
            return Verdict::Tolerated(resync);
        }
    }
    // Redis 7.2 refuses LPOS RANK -2^63 (its negation overflows); 7.0 takes it as the last
    // match. dcache answers as 7.2; the key is unchanged either way.
    let rank_min = request
        .windows(2)
        .any(|w| w[0].eq_ignore_ascii_case(b"RANK") && w[1] == b"-9223372036854775808");
    if name == b"lpos"
        && rank_min
        && matches!(ours, Frame::Error(e) if e.starts_with("ERR value is out of range"))
    {
        return Verdict::Tolerated(vec![b"PING".to_vec()]);
    }
    Verdict::Different
}

/// A `redis-server` child process on a free loopback port, stopped when dropped.
pub struct RedisServer {
    child: Child,
    pub addr: SocketAddr,
}

impl RedisServer {
    /// Starts one, or returns None (after saying so) when `redis-server` is not installed. Under
    /// CI (`CI=true`) a missing `redis-server` fails the test instead: CI installs it.
    pub fn start() -> Option<RedisServer> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "CI must install redis-server (apt-get install -y redis-server)"
            );
            say(
                "replies_match_redis skipped: redis-server is not installed (apt-get install redis-server)",
            );
            return None;
        }
        // A free port: bind, read it, release it for redis-server.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory",
                "64mb",
                "--maxmemory-policy",
                "allkeys-lru",
                // The node's limit in these tests: SETBIT, BITFIELD and LCS then refuse the
                // same offsets and tables on both sides.
                "--proto-max-bulk-len",
                "1mb",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = RedisServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(server.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {}",
                server.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
