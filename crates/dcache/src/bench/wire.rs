//! What `dcache bench` writes and reads: GET and SET in RESP or in memcached's text protocol, and
//! an incremental reader of their replies that says only what the generator needs to know.

use std::io::Write;

/// The wire protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// RESP2 (Redis, dcache).
    Resp,
    /// memcached's text protocol.
    Memcache,
}

/// How a request came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A GET that found its key.
    Hit,
    /// A GET that did not.
    Miss,
    /// A SET that was stored.
    Stored,
    /// Anything the server refused.
    Error,
}

pub fn encode_get(protocol: Protocol, key: &[u8], out: &mut Vec<u8>) {
    match protocol {
        Protocol::Resp => {
            out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
            bulk(key, out);
        }
        Protocol::Memcache => {
            out.extend_from_slice(b"get ");
            out.extend_from_slice(key);
            out.extend_from_slice(b"\r\n");
        }
    }
}

pub fn encode_set(protocol: Protocol, key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    match protocol {
        Protocol::Resp => {
            out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
            bulk(key, out);
            bulk(value, out);
        }
        Protocol::Memcache => {
            out.extend_from_slice(b"set ");
            out.extend_from_slice(key);
            write!(out, " 0 0 {}\r\n", value.len()).expect("writing to a Vec");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
}

fn bulk(data: &[u8], out: &mut Vec<u8>) {
    write!(out, "${}\r\n", data.len()).expect("writing to a Vec");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Reads one reply from the front of `buf`: `Ok(Some((reply, bytes used)))`, `Ok(None)` when
/// more bytes are needed, or an error for bytes that are no reply of that protocol.
pub fn parse_reply(protocol: Protocol, buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let Some((line, after_line)) = first_line(buf) else {
        return Ok(None);
    };
    match protocol {
        Protocol::Resp => match line.first() {
            Some(b'+') => Ok(Some((Reply::Stored, after_line))),
            Some(b'-') => Ok(Some((Reply::Error, after_line))),
            Some(b'_') => Ok(Some((Reply::Miss, after_line))),
            Some(b'$') if line == b"$-1" => Ok(Some((Reply::Miss, after_line))),
            Some(b'$') => {
                let len = number(&line[1..])?;
                let end = after_line + len + 2;
                Ok((buf.len() >= end).then_some((Reply::Hit, end)))
            }
            _ => Err(format!(
                "unexpected RESP reply {:?}",
                String::from_utf8_lossy(line)
            )),
        },
        Protocol::Memcache => {
            if line == b"END" {
                Ok(Some((Reply::Miss, after_line)))
            } else if line == b"STORED" {
                Ok(Some((Reply::Stored, after_line)))
            } else if let Some(header) = line.strip_prefix(b"VALUE ") {
                // VALUE <key> <flags> <bytes>, the data, then END.
                let len = header
                    .rsplit(|&b| b == b' ')
                    .next()
                    .ok_or("a VALUE line without a length")?;
                let end = after_line + number(len)? + 2 + b"END\r\n".len();
                Ok((buf.len() >= end).then_some((Reply::Hit, end)))
            } else if line == b"ERROR"
                || line.starts_with(b"SERVER_ERROR")
                || line.starts_with(b"CLIENT_ERROR")
                || line == b"NOT_STORED"
            {
                Ok(Some((Reply::Error, after_line)))
            } else {
                Err(format!(
                    "unexpected memcached reply {:?}",
                    String::from_utf8_lossy(line)
                ))
            }
        }
    }
}

/// The first line without its line end (`\r\n`, or a bare `\n`), and where the next one starts.
fn first_line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let newline = memchr::memchr(b'\n', buf)?;
    let line = &buf[..newline];
    Some((line.strip_suffix(b"\r").unwrap_or(line), newline + 1))
}

fn number(digits: &[u8]) -> Result<usize, String> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad length {:?}", String::from_utf8_lossy(digits)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(protocol: Protocol, mut buf: &[u8]) -> Vec<Reply> {
        let mut out = Vec::new();
        while let Some((reply, used)) = parse_reply(protocol, buf).unwrap() {
            out.push(reply);
            buf = &buf[used..];
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        out
    }

    #[test]
    fn resp_replies() {
        let wire = b"+OK\r\n$3\r\nabc\r\n$-1\r\n_\r\n-ERR no\r\n$0\r\n\r\n";
        assert_eq!(
            all(Protocol::Resp, wire),
            [
                Reply::Stored,
                Reply::Hit,
                Reply::Miss,
                Reply::Miss,
                Reply::Error,
                Reply::Hit
            ]
        );
        // Incomplete replies wait for more bytes, whatever the cut.
        let whole = b"$5\r\nhello\r\n";
        for cut in 0..whole.len() {
            assert_eq!(
                parse_reply(Protocol::Resp, &whole[..cut]),
                Ok(None),
                "{cut}"
            );
        }
        assert!(parse_reply(Protocol::Resp, b"*2\r\n").is_err());
    }

    #[test]
    fn memcache_replies() {
        let wire = b"STORED\r\nVALUE k 0 3\r\nabc\r\nEND\r\nEND\r\nSERVER_ERROR out of memory\r\n";
        assert_eq!(
            all(Protocol::Memcache, wire),
            [Reply::Stored, Reply::Hit, Reply::Miss, Reply::Error]
        );
        let whole = b"VALUE key 0 5\r\nhello\r\nEND\r\n";
        for cut in 0..whole.len() {
            assert_eq!(
                parse_reply(Protocol::Memcache, &whole[..cut]),
                Ok(None),
                "{cut}"
            );
        }
    }

    /// Empty values come back as replies of their own, however the bytes are cut, and the
    /// reply after one is read from the right place.
    #[test]
    fn empty_values_are_hits_and_what_follows_is_read() {
        for (protocol, empty, next, want_next) in [
            (
                Protocol::Resp,
                &b"$0\r\n\r\n"[..],
                &b"+OK\r\n"[..],
                Reply::Stored,
            ),
            (
                Protocol::Memcache,
                &b"VALUE k 0 0\r\n\r\nEND\r\n"[..],
                &b"STORED\r\n"[..],
                Reply::Stored,
            ),
        ] {
            for cut in 0..empty.len() {
                assert_eq!(parse_reply(protocol, &empty[..cut]), Ok(None), "{cut}");
            }
            let wire = [empty, next].concat();
            assert_eq!(
                parse_reply(protocol, &wire),
                Ok(Some((Reply::Hit, empty.len()))),
                "{protocol:?}"
            );
            assert_eq!(
                all(protocol, &wire),
                [Reply::Hit, want_next],
                "{protocol:?}"
            );
        }
        // An empty value is written with its length (tests/bench.rs reads one back from a node).
        let mut out = Vec::new();
        encode_set(Protocol::Resp, b"k", b"", &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
        out.clear();
        encode_set(Protocol::Memcache, b"k", b"", &mut out);
        assert_eq!(out, b"set k 0 0 0\r\n\r\n");
    }

    #[test]
    fn requests_are_well_formed() {
        let mut out = Vec::new();
        encode_set(Protocol::Resp, b"k1", b"value", &mut out);
        encode_get(Protocol::Resp, b"k1", &mut out);
        assert_eq!(
            out,
            b"*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$2\r\nk1\r\n"
        );
        out.clear();
        encode_set(Protocol::Memcache, b"k1", b"value", &mut out);
        encode_get(Protocol::Memcache, b"k1", &mut out);
        assert_eq!(out, b"set k1 0 0 5\r\nvalue\r\nget k1\r\n");
    }
}
