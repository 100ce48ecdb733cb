//! The comparison with a real `redis-server`: which commands are compared, how replies are made
//! comparable, the differences left on purpose, and the server itself as a child process.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dcache_protocol::Frame;

use super::say;

/// Makes replies comparable: orders whatever either server returns in its own order.
pub fn normalise(request: &[Vec<u8>], reply: Frame) -> Frame {
    let name = request[0].to_ascii_lowercase();
    let sort = |mut items: Vec<Frame>| {
        items.sort_by_key(|f| format!("{f:?}"));
        items
    };
    match (name.as_slice(), reply) {
        (b"keys" | b"hkeys" | b"hvals", Frame::Array(items)) => Frame::Array(sort(items)),
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
    Different,
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
