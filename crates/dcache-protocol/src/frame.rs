//! A generic RESP2/RESP3 value, its parser and its encoder.
//!
//! Servers read requests through [`crate::request`] and write replies through
//! [`crate::ReplyWriter`]; this type is for the other direction (a client reading replies) and
//! for tests that check replies byte for byte.

use bytes::Bytes;

use crate::ProtocolError;
use crate::request::parse_i64;

/// How deep arrays and maps may nest before the parser refuses the frame.
const MAX_DEPTH: usize = 128;

/// One RESP value.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    /// RESP3 `_`, and RESP2's null bulk string and null array.
    Null,
    Array(Vec<Frame>),
    Map(Vec<(Frame, Frame)>),
    Set(Vec<Frame>),
    Double(f64),
    Boolean(bool),
    BigNumber(String),
    Verbatim {
        format: String,
        text: Bytes,
    },
    Push(Vec<Frame>),
}

impl Frame {
    /// Parses one frame from the start of `input`: `Ok(None)` when it is not complete yet,
    /// otherwise the frame and the number of bytes it took. RESP3 attributes are skipped.
    ///
    /// # Errors
    /// A malformed frame.
    pub fn parse(input: &[u8]) -> Result<Option<(Frame, usize)>, ProtocolError> {
        let mut pos = 0;
        match parse_at(input, &mut pos, 0)? {
            Some(frame) => Ok(Some((frame, pos))),
            None => Ok(None),
        }
    }

    /// Encodes the frame as RESP (RESP3 types where the frame is one).
    pub fn encode(&self, out: &mut Vec<u8>) {
        fn line(out: &mut Vec<u8>, prefix: u8, body: &[u8]) {
            out.push(prefix);
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
        }
        fn len(out: &mut Vec<u8>, prefix: u8, n: usize) {
            line(out, prefix, itoa::Buffer::new().format(n).as_bytes());
        }
        match self {
            // A line cannot hold CR LF: such text goes out as a bulk string or a blob error.
            Frame::Simple(s) if s.contains("\r\n") => {
                Frame::Bulk(Bytes::copy_from_slice(s.as_bytes())).encode(out);
            }
            Frame::Error(s) if s.contains("\r\n") => {
                len(out, b'!', s.len());
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Frame::Simple(s) => line(out, b'+', s.as_bytes()),
            Frame::Error(s) => line(out, b'-', s.as_bytes()),
            Frame::Integer(i) => line(out, b':', itoa::Buffer::new().format(*i).as_bytes()),
            Frame::Bulk(b) => {
                len(out, b'$', b.len());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Frame::Null => out.extend_from_slice(b"_\r\n"),
            Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
                let prefix = match self {
                    Frame::Array(_) => b'*',
                    Frame::Set(_) => b'~',
                    _ => b'>',
                };
                len(out, prefix, items.len());
                for item in items {
                    item.encode(out);
                }
            }
            Frame::Map(pairs) => {
                len(out, b'%', pairs.len());
                for (k, v) in pairs {
                    k.encode(out);
                    v.encode(out);
                }
            }
            Frame::Double(d) => line(out, b',', crate::reply::format_double(*d).as_bytes()),
            Frame::Boolean(b) => line(out, b'#', if *b { b"t" } else { b"f" }),
            Frame::BigNumber(s) => line(out, b'(', s.as_bytes()),
            Frame::Verbatim { format, text } => {
                len(out, b'=', format.len() + 1 + text.len());
                out.extend_from_slice(format.as_bytes());
                out.push(b':');
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// The bytes of a bulk, simple or verbatim string.
    #[must_use]
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Frame::Bulk(b) => Some(b),
            Frame::Simple(s) => Some(s.as_bytes()),
            Frame::Verbatim { text, .. } => Some(text),
            _ => None,
        }
    }
}

fn read_line<'a>(input: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let rest = &input[*pos..];
    let cr = memchr::memmem::find(rest, b"\r\n")?;
    *pos += cr + 2;
    Some(&rest[..cr])
}

fn read_len(input: &[u8], pos: &mut usize) -> Result<Option<Option<usize>>, ProtocolError> {
    let Some(line) = read_line(input, pos) else {
        return Ok(None);
    };
    let n = parse_i64(line).ok_or(ProtocolError::InvalidMultibulkLength)?;
    if n == -1 {
        return Ok(Some(None));
    }
    usize::try_from(n)
        .map(|n| Some(Some(n)))
        .map_err(|_| ProtocolError::InvalidMultibulkLength)
}

fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

fn parse_items(
    input: &[u8],
    pos: &mut usize,
    n: usize,
    depth: usize,
) -> Result<Option<Vec<Frame>>, ProtocolError> {
    let mut items = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        match parse_at(input, pos, depth + 1)? {
            Some(f) => items.push(f),
            None => return Ok(None),
        }
    }
    Ok(Some(items))
}

fn parse_at(input: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Frame>, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(ProtocolError::TooDeep);
    }
    let Some(&kind) = input.get(*pos) else {
        return Ok(None);
    };
    *pos += 1;
    let frame = match kind {
        b'+' | b'-' | b':' | b',' | b'#' | b'(' | b'_' => {
            let Some(line) = read_line(input, pos) else {
                return Ok(None);
            };
            match kind {
                b'+' => Frame::Simple(text(line)),
                b'-' => Frame::Error(text(line)),
                b':' => Frame::Integer(parse_i64(line).ok_or(ProtocolError::InvalidInteger)?),
                b',' => Frame::Double(parse_double(line)?),
                b'#' => match line {
                    b"t" => Frame::Boolean(true),
                    b"f" => Frame::Boolean(false),
                    _ => return Err(ProtocolError::InvalidType(b'#')),
                },
                b'(' => Frame::BigNumber(text(line)),
                _ => Frame::Null,
            }
        }
        b'$' | b'=' | b'!' => {
            let Some(len) = read_len(input, pos)? else {
                return Ok(None);
            };
            let Some(len) = len else {
                return Ok(Some(Frame::Null));
            };
            if input.len() < *pos + len + 2 {
                return Ok(None);
            }
            let data = &input[*pos..*pos + len];
            if &input[*pos + len..*pos + len + 2] != b"\r\n" {
                return Err(ProtocolError::MissingCrlf);
            }
            *pos += len + 2;
            match kind {
                b'$' => Frame::Bulk(Bytes::copy_from_slice(data)),
                b'!' => Frame::Error(text(data)),
                _ => {
                    if data.len() < 4 || data[3] != b':' {
                        return Err(ProtocolError::InvalidType(b'='));
                    }
                    Frame::Verbatim {
                        format: text(&data[..3]),
                        text: Bytes::copy_from_slice(&data[4..]),
                    }
                }
            }
        }
        b'*' | b'~' | b'>' => {
            let Some(len) = read_len(input, pos)? else {
                return Ok(None);
            };
            let Some(len) = len else {
                return Ok(Some(Frame::Null));
            };
            let Some(items) = parse_items(input, pos, len, depth)? else {
                return Ok(None);
            };
            match kind {
                b'*' => Frame::Array(items),
                b'~' => Frame::Set(items),
                _ => Frame::Push(items),
            }
        }
        b'%' | b'|' => {
            let Some(Some(len)) = read_len(input, pos)? else {
                return Ok(None);
            };
            let Some(flat) = parse_items(input, pos, len.saturating_mul(2), depth)? else {
                return Ok(None);
            };
            if kind == b'|' {
                // An attribute describes the frame that follows it; we keep only that frame.
                return parse_at(input, pos, depth);
            }
            let mut pairs = Vec::with_capacity(len);
            let mut it = flat.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Frame::Map(pairs)
        }
        other => return Err(ProtocolError::InvalidType(other)),
    };
    Ok(Some(frame))
}

fn parse_double(line: &[u8]) -> Result<f64, ProtocolError> {
    match line {
        b"inf" => Ok(f64::INFINITY),
        b"-inf" => Ok(f64::NEG_INFINITY),
        b"nan" => Ok(f64::NAN),
        _ => std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(ProtocolError::InvalidDouble),
    }
}
