//! Incremental parser for client requests: RESP multibulk arrays and inline commands.
//!
//! A request's arguments are spans into the caller's buffer (multibulk) or into the parser's own
//! scratch space (inline commands, whose quoting can change bytes), so parsing allocates nothing
//! once the parser's vectors have grown to the size of the largest request.
//!
//! The parser is resumable: when a large request arrives over many reads it remembers how far it
//! got, so each read costs only the new bytes. The caller keeps the unfinished request at the start
//! of the buffer it passes next time, which is what a read buffer naturally does.

use crate::ProtocolError;

/// Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline request, and the longest length line.
pub const INLINE_MAX: usize = 64 * 1024;

/// Most arguments in one request from a client that has not authenticated (Redis's figure).
pub const UNAUTHENTICATED_MAX_ARGS: usize = 10;
/// Largest argument from a client that has not authenticated (Redis's figure).
pub const UNAUTHENTICATED_MAX_BULK_LEN: usize = 16 * 1024;

/// Limits on what one request may hold. The defaults are Redis's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `proto-max-bulk-len`: the largest single argument.
    pub max_bulk_len: usize,
    /// The most arguments in one multibulk request.
    pub max_args: usize,
    /// The longest inline request line.
    pub max_inline: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk_len: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline: INLINE_MAX,
        }
    }
}

/// What one call to [`RequestParser::parse`] found at the start of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A whole request of this many bytes; its arguments are in [`RequestParser::args`]. A request
    /// may have no arguments (an empty inline line, `*0`): the caller just skips it.
    Complete(usize),
    /// More bytes are needed. Call again with the same request at the start of the input.
    Incomplete,
}

/// A multibulk request that arrived only in part.
#[derive(Debug, Clone, Copy)]
struct Partial {
    argc: usize,
    pos: usize,
}

/// Where the current request's argument spans point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Input,
    Scratch,
}

/// Parses requests one at a time. Reuse one parser per connection.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    spans: Vec<(usize, usize)>,
    scratch: Vec<u8>,
    source: Source,
    partial: Option<Partial>,
    /// The client has not authenticated yet, so the tighter `UNAUTHENTICATED_*` limits apply on
    /// top of `limits`: a stranger who has not given the password cannot make the node buffer
    /// more than a few hundred kilobytes for it.
    unauthenticated: bool,
}

/// The arguments of one request, borrowed from the input or from the parser.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    data: &'a [u8],
    spans: &'a [(usize, usize)],
}

impl<'a> Args<'a> {
    /// Arguments over `data` at the given spans. Mostly for tests and tools.
    #[must_use]
    pub fn new(data: &'a [u8], spans: &'a [(usize, usize)]) -> Self {
        Self { data, spans }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Argument `i`.
    ///
    /// # Panics
    /// When `i >= self.len()`; handlers check arity first.
    #[must_use]
    pub fn get(&self, i: usize) -> &'a [u8] {
        let (start, end) = self.spans[i];
        &self.data[start..end]
    }

    /// Iterates over the arguments from `from` on.
    pub fn iter_from(&self, from: usize) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let data = self.data;
        self.spans[from.min(self.spans.len())..]
            .iter()
            .map(move |&(s, e)| &data[s..e])
    }

    /// Iterates over all arguments.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        self.iter_from(0)
    }
}

impl Default for RequestParser {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl RequestParser {
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            spans: Vec::new(),
            scratch: Vec::new(),
            source: Source::Input,
            partial: None,
            unauthenticated: false,
        }
    }

    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Applies, or lifts once the client has authenticated, Redis's limits for clients that have
    /// not: at most [`UNAUTHENTICATED_MAX_ARGS`] arguments of at most
    /// [`UNAUTHENTICATED_MAX_BULK_LEN`] bytes, refused with their own errors. Call it between
    /// requests.
    pub fn set_unauthenticated(&mut self, unauthenticated: bool) {
        self.unauthenticated = unauthenticated;
    }

    #[must_use]
    pub fn is_unauthenticated(&self) -> bool {
        self.unauthenticated
    }

    /// True while a multibulk request is known to be only partly received.
    #[must_use]
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// Parses the request at the start of `input`.
    ///
    /// # Errors
    /// A malformed request. The connection cannot be resynchronised after one, so the caller replies
    /// with the error and closes, as Redis does.
    pub fn parse(&mut self, input: &[u8]) -> Result<Status, ProtocolError> {
        let result = match (self.partial, input.first()) {
            (Some(partial), _) => self.resume_multibulk(input, partial),
            (None, None) => return Ok(Status::Incomplete),
            (None, Some(b'*')) => self.start_multibulk(input),
            (None, Some(_)) => self.parse_inline(input),
        };
        if !matches!(result, Ok(Status::Incomplete)) {
            self.partial = None;
        }
        result
    }

    /// The arguments of the request that the last [`Status::Complete`] reported.
    #[must_use]
    pub fn args<'a>(&'a self, input: &'a [u8]) -> Args<'a> {
        let data = match self.source {
            Source::Input => input,
            Source::Scratch => &self.scratch,
        };
        Args {
            data,
            spans: &self.spans,
        }
    }

    fn start_multibulk(&mut self, input: &[u8]) -> Result<Status, ProtocolError> {
        let Some((count, pos)) = length_line(input, 1, ProtocolError::TooBigMultibulkCount)? else {
            return Ok(Status::Incomplete);
        };
        if count > i64::from(i32::MAX) {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        if self.unauthenticated && count > UNAUTHENTICATED_MAX_ARGS as i64 {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        self.spans.clear();
        self.source = Source::Input;
        if count <= 0 {
            return Ok(Status::Complete(pos));
        }
        let argc = usize::try_from(count).map_err(|_| ProtocolError::InvalidMultibulkLength)?;
        if argc > self.limits.max_args {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        // Reserve for the common case without trusting a huge count.
        self.spans.reserve(argc.min(1024));
        self.resume_multibulk(input, Partial { argc, pos })
    }

    fn resume_multibulk(
        &mut self,
        input: &[u8],
        mut partial: Partial,
    ) -> Result<Status, ProtocolError> {
        while self.spans.len() < partial.argc {
            let pos = partial.pos;
            let Some(&first) = input.get(pos) else {
                self.partial = Some(partial);
                return Ok(Status::Incomplete);
            };
            if first != b'$' {
                return Err(ProtocolError::ExpectedBulk(first));
            }
            let Some((len, data_start)) =
                length_line(input, pos + 1, ProtocolError::TooBigBulkCount)?
            else {
                self.partial = Some(partial);
                return Ok(Status::Incomplete);
            };
            let len = usize::try_from(len).map_err(|_| ProtocolError::InvalidBulkLength)?;
            if len > self.limits.max_bulk_len {
                return Err(ProtocolError::InvalidBulkLength);
            }
            if self.unauthenticated && len > UNAUTHENTICATED_MAX_BULK_LEN {
                return Err(ProtocolError::UnauthenticatedBulkLength);
            }
            let data_end = data_start + len;
            if input.len() < data_end + 2 {
                self.partial = Some(partial);
                return Ok(Status::Incomplete);
            }
            if &input[data_end..data_end + 2] != b"\r\n" {
                return Err(ProtocolError::MissingCrlf);
            }
            self.spans.push((data_start, data_end));
            partial.pos = data_end + 2;
        }
        Ok(Status::Complete(partial.pos))
    }

    fn parse_inline(&mut self, input: &[u8]) -> Result<Status, ProtocolError> {
        let Some(newline) = memchr::memchr(b'\n', input) else {
            if input.len() > self.limits.max_inline {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(Status::Incomplete);
        };
        let mut line = &input[..newline];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        self.spans.clear();
        self.scratch.clear();
        self.source = Source::Scratch;
        split_inline(line, &mut self.scratch, &mut self.spans)?;
        Ok(Status::Complete(newline + 1))
    }
}

/// Reads `<integer>\r\n` starting at `start`. Returns the value and the position after the CRLF.
fn length_line(
    input: &[u8],
    start: usize,
    too_big: ProtocolError,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let rest = input.get(start..).unwrap_or_default();
    let Some(cr) = memchr::memchr(b'\r', rest) else {
        if rest.len() > INLINE_MAX {
            return Err(too_big);
        }
        return Ok(None);
    };
    if cr > INLINE_MAX {
        return Err(too_big);
    }
    if rest.len() < cr + 2 {
        return Ok(None);
    }
    let invalid = match too_big {
        ProtocolError::TooBigMultibulkCount => ProtocolError::InvalidMultibulkLength,
        _ => ProtocolError::InvalidBulkLength,
    };
    if rest[cr + 1] != b'\n' {
        return Err(invalid);
    }
    let value = parse_i64(&rest[..cr]).ok_or(invalid)?;
    Ok(Some((value, start + cr + 2)))
}

/// Parses a decimal integer the way Redis's `string2ll` does: an optional minus sign, digits, no
/// leading zeros (other than "0" itself), no spaces, no plus sign, no overflow.
#[must_use]
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] => return (!negative).then_some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        if value == 1u64 << 63 {
            Some(i64::MIN)
        } else {
            i64::try_from(value).ok().map(|v| -v)
        }
    } else {
        i64::try_from(value).ok()
    }
}

/// Splits a command line into arguments with Redis's quoting rules, as `redis-cli` and inline
/// requests do.
///
/// # Errors
/// [`ProtocolError::UnbalancedQuotes`].
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let (mut out, mut spans) = (Vec::new(), Vec::new());
    split_inline(line, &mut out, &mut spans)?;
    Ok(spans.iter().map(|&(s, e)| out[s..e].to_vec()).collect())
}

/// Splits an inline line into arguments with Redis's quoting rules (`sdssplitargs`): double quotes
/// with `\n \r \t \b \a \xHH` escapes, single quotes with `\'`, and a closing quote that must be
/// followed by a space or the end of the line.
fn split_inline(
    line: &[u8],
    out: &mut Vec<u8>,
    spans: &mut Vec<(usize, usize)>,
) -> Result<(), ProtocolError> {
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(());
        }
        let start = out.len();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            if in_double {
                let Some(&c) = line.get(i) else {
                    return Err(ProtocolError::UnbalancedQuotes);
                };
                let escaped_hex = (c == b'\\' && line.get(i + 1) == Some(&b'x'))
                    .then(|| Some(hex(*line.get(i + 2)?)? * 16 + hex(*line.get(i + 3)?)?))
                    .flatten();
                if let Some(byte) = escaped_hex {
                    out.push(byte);
                    i += 4;
                    continue;
                }
                if c == b'\\' && i + 1 < line.len() {
                    out.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    if line.get(i + 1).is_some_and(|&b| !is_space(b)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                    i += 1;
                }
            } else if in_single {
                let Some(&c) = line.get(i) else {
                    return Err(ProtocolError::UnbalancedQuotes);
                };
                if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                    out.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if line.get(i + 1).is_some_and(|&b| !is_space(b)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                    i += 1;
                }
            } else {
                match line.get(i) {
                    None => break,
                    Some(&c) if is_space(c) => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(&c) => out.push(c),
                }
                i += 1;
            }
        }
        spans.push((start, out.len()));
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}
