//! Writes replies in RESP2 or RESP3.
//!
//! Handlers describe a reply by its meaning (a map, a null, a double) and the writer picks the
//! wire form for the connection's protocol version, so no handler branches on the version.

/// Appends replies to an output buffer.
#[derive(Debug)]
pub struct ReplyWriter<'a> {
    out: &'a mut Vec<u8>,
    resp3: bool,
}

impl<'a> ReplyWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>, resp3: bool) -> Self {
        Self { out, resp3 }
    }

    #[must_use]
    pub fn resp3(&self) -> bool {
        self.resp3
    }

    /// Switches protocol version for the replies that follow (`HELLO`).
    pub fn set_resp3(&mut self, resp3: bool) {
        self.resp3 = resp3;
    }

    /// Bytes written so far, across all replies in the buffer.
    #[must_use]
    pub fn len(&self) -> usize {
        self.out.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Drops everything written after `len` (to replace a partly written reply with an error).
    pub fn truncate(&mut self, len: usize) {
        self.out.truncate(len);
    }

    pub fn ok(&mut self) {
        self.out.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string. It must not contain CR or LF.
    pub fn simple(&mut self, s: &str) {
        debug_assert!(!s.contains(['\r', '\n']));
        self.out.push(b'+');
        self.out.extend_from_slice(s.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// An error reply. `msg` starts with its code, e.g. `ERR syntax error` or `WRONGTYPE …`.
    pub fn error(&mut self, msg: &str) {
        self.out.push(b'-');
        // An error line cannot carry CR or LF. Redis trims them from both ends of the message
        // and replaces the ones inside with spaces; so does this.
        self.out.extend(
            msg.trim_matches(['\r', '\n'])
                .bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.out.extend_from_slice(b"\r\n");
    }

    pub fn int(&mut self, value: i64) {
        self.out.push(b':');
        self.number(value);
    }

    pub fn bulk(&mut self, data: &[u8]) {
        self.out.push(b'$');
        self.number(data.len() as i64);
        self.out.extend_from_slice(data);
        self.out.extend_from_slice(b"\r\n");
    }

    /// A bulk string holding the decimal form of `value`.
    pub fn bulk_int(&mut self, value: i64) {
        let mut buf = itoa::Buffer::new();
        self.bulk(buf.format(value).as_bytes());
    }

    /// A missing value: `_` in RESP3, a null bulk string in RESP2.
    pub fn null(&mut self) {
        self.out
            .extend_from_slice(if self.resp3 { b"_\r\n" } else { b"$-1\r\n" });
    }

    /// A missing array: `_` in RESP3, a null array in RESP2.
    pub fn null_array(&mut self) {
        self.out
            .extend_from_slice(if self.resp3 { b"_\r\n" } else { b"*-1\r\n" });
    }

    /// An optional bulk string.
    pub fn bulk_or_null(&mut self, data: Option<&[u8]>) {
        match data {
            Some(data) => self.bulk(data),
            None => self.null(),
        }
    }

    pub fn array(&mut self, len: usize) {
        self.out.push(b'*');
        self.number(len as i64);
    }

    /// The header of an out-of-band frame of `len` elements (a pub/sub message, an
    /// invalidation): a push (`>`) in RESP3, an array in RESP2, as Redis sends them.
    pub fn push(&mut self, len: usize) {
        if self.resp3 {
            self.out.push(b'>');
            self.number(len as i64);
        } else {
            self.array(len);
        }
    }

    /// A map of `pairs` key/value pairs: `%` in RESP3, a flat array in RESP2.
    pub fn map(&mut self, pairs: usize) {
        if self.resp3 {
            self.out.push(b'%');
            self.number(pairs as i64);
        } else {
            self.array(pairs * 2);
        }
    }

    /// A set: `~` in RESP3, an array in RESP2.
    pub fn set(&mut self, len: usize) {
        if self.resp3 {
            self.out.push(b'~');
            self.number(len as i64);
        } else {
            self.array(len);
        }
    }

    /// A double: `,` in RESP3, a bulk string in RESP2, printed as Redis 7.2 prints doubles
    /// ([`format_redis_double`]: `1.5`, `3`, `inf`, `1e+20`).
    pub fn double(&mut self, value: f64) {
        let text = format_redis_double(value);
        if self.resp3 {
            self.out.push(b',');
            self.out.extend_from_slice(text.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }

    /// A double that the command formats itself (GEOPOS prints 17 decimals, as Redis does for
    /// coordinates): `,` in RESP3, a bulk string in RESP2.
    pub fn double_text(&mut self, text: &str) {
        if self.resp3 {
            self.out.push(b',');
            self.out.extend_from_slice(text.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }

    /// A boolean: `#t`/`#f` in RESP3, the integer 1 or 0 in RESP2.
    pub fn boolean(&mut self, value: bool) {
        if self.resp3 {
            self.out
                .extend_from_slice(if value { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(i64::from(value));
        }
    }

    /// Text meant for humans (INFO, CLIENT LIST): verbatim `txt` in RESP3, bulk in RESP2.
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3 {
            self.out.push(b'=');
            self.number(text.len() as i64 + 4);
            self.out.extend_from_slice(b"txt:");
            self.out.extend_from_slice(text);
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    fn number(&mut self, value: i64) {
        let mut buf = itoa::Buffer::new();
        self.out.extend_from_slice(buf.format(value).as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Formats a double the way Redis prints a float value: the shortest decimal that reads back to
/// the same number, without an exponent, `inf`/`-inf` for infinities.
#[must_use]
pub fn format_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value == 0.0 {
        return "0".to_owned();
    }
    format!("{value}")
}

/// Formats a double as Redis 7.2 replies with one (a sorted set's score, say): integral values
/// within ±2^62 as integers, others in the shortest form that reads back the same, with an
/// exponent (`1e+20`, `1.5e-7`) when the plain form would need more than six zeros to pad it
/// (fpconv's rule, which Redis took); `-0` keeps its sign.
#[must_use]
pub fn format_redis_double(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    const LIMIT: f64 = 4_611_686_018_427_387_904.0; // 2^62, Redis's LLONG_MAX / 2 as a double
    if (-LIMIT..=LIMIT).contains(&value) && value.fract() == 0.0 {
        return format!("{}", value as i64);
    }
    // The shortest digits and their exponent, from Rust's shortest round-trip formatting.
    let sci = format!("{:e}", value.abs());
    let (mantissa, exp) = sci.split_once('e').expect("an exponent");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().expect("a decimal exponent");
    let n = digits.len() as i32;
    // value = digits × 10^k
    let k = exp - (n - 1);
    let mut out = String::with_capacity(24);
    if value < 0.0 {
        out.push('-');
    }
    if k >= 0 && exp < n + 7 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', k as usize));
    } else if k < 0 && (k > -7 || exp.abs() < 4) {
        let point = n + k;
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(&digits);
        } else {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&exp.abs().to_string());
    }
    out
}

/// Encodes a command as a RESP array of bulk strings, as clients send it.
pub fn encode_command<I, A>(args: I, out: &mut Vec<u8>)
where
    I: IntoIterator<Item = A>,
    I::IntoIter: ExactSizeIterator,
    A: AsRef<[u8]>,
{
    let args = args.into_iter();
    let mut w = ReplyWriter::new(out, false);
    w.array(args.len());
    for arg in args {
        w.bulk(arg.as_ref());
    }
}
