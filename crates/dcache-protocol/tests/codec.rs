//! Byte-level tables for the request parser and reply writer, and property tests for both.

use dcache_protocol::request::parse_i64;
use dcache_protocol::{Frame, Limits, ProtocolError, ReplyWriter, RequestParser, Status};
use proptest::prelude::*;

/// Parses every request in `input`, returning each one's arguments, or the first error.
fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut parser = RequestParser::default();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        match parser.parse(&input[pos..])? {
            Status::Complete(n) => {
                let args = parser.args(&input[pos..]);
                out.push(args.iter().map(<[u8]>::to_vec).collect());
                pos += n;
            }
            Status::Incomplete => break,
        }
    }
    Ok(out)
}

fn strs(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn multibulk_requests() {
    let table: &[(&[u8], &[&str])] = &[
        (b"*1\r\n$4\r\nPING\r\n", &["PING"]),
        (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", &["GET", "k"]),
        (
            b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$2\r\n\r\n\r\n",
            &["SET", "", "\r\n"],
        ),
        (b"*0\r\n", &[]),
        (b"*-1\r\n", &[]),
    ];
    for (input, expected) in table {
        let got = parse_all(input).unwrap();
        assert_eq!(
            got,
            vec![strs(expected)],
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn inline_requests() {
    let table: &[(&[u8], &[&str])] = &[
        (b"PING\r\n", &["PING"]),
        (b"PING\n", &["PING"]),
        (b"  set  a   b \r\n", &["set", "a", "b"]),
        (b"set \"a b\" 'c d'\r\n", &["set", "a b", "c d"]),
        (b"echo \"\\x41\\n\\t\"\r\n", &["echo", "A\n\t"]),
        (b"echo 'it\\'s'\r\n", &["echo", "it's"]),
        (b"echo foo\"bar baz\"\r\n", &["echo", "foobar baz"]),
        (b"\r\n", &[]),
    ];
    for (input, expected) in table {
        let got = parse_all(input).unwrap();
        assert_eq!(
            got,
            vec![strs(expected)],
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn pipelined_requests_parse_in_order() {
    let input = b"*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$4\r\nECHO\r\n$2\r\nyo\r\n";
    let got = parse_all(input).unwrap();
    assert_eq!(
        got,
        vec![
            strs(&["PING"]),
            strs(&["ECHO", "hi"]),
            strs(&["ECHO", "yo"])
        ]
    );
}

#[test]
fn malformed_requests_get_redis_wording() {
    let table: &[(&[u8], &str)] = &[
        (b"*x\r\n", "Protocol error: invalid multibulk length"),
        (
            b"*3000000000\r\n",
            "Protocol error: invalid multibulk length",
        ),
        (b"*1\r\n+PING\r\n", "Protocol error: expected '$', got '+'"),
        (b"*1\r\n$-5\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$abc\r\n", "Protocol error: invalid bulk length"),
        (
            b"*1\r\n$600000000\r\n",
            "Protocol error: invalid bulk length",
        ),
        (
            b"*1\r\n$2\r\nabcd\r\n",
            "Protocol error: bulk string not terminated by CRLF",
        ),
        (
            b"set \"a\r\n",
            "Protocol error: unbalanced quotes in request",
        ),
        (
            b"set \"a\"b\r\n",
            "Protocol error: unbalanced quotes in request",
        ),
        (
            b"set 'a\r\n",
            "Protocol error: unbalanced quotes in request",
        ),
    ];
    for (input, expected) in table {
        let err = parse_all(input).unwrap_err();
        assert_eq!(
            err.to_string(),
            *expected,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn oversized_lines_are_refused_before_they_end() {
    let long = vec![b'a'; 70 * 1024];
    assert_eq!(parse_all(&long).unwrap_err(), ProtocolError::TooBigInline);
    let mut count = b"*".to_vec();
    count.extend(std::iter::repeat_n(b'1', 70 * 1024));
    assert_eq!(
        parse_all(&count).unwrap_err(),
        ProtocolError::TooBigMultibulkCount
    );
    let mut bulk = b"*1\r\n$".to_vec();
    bulk.extend(std::iter::repeat_n(b'1', 70 * 1024));
    assert_eq!(
        parse_all(&bulk).unwrap_err(),
        ProtocolError::TooBigBulkCount
    );
}

#[test]
fn limits_are_configurable() {
    let limits = Limits {
        max_bulk_len: 4,
        max_args: 2,
        max_inline: 8,
    };
    let mut parser = RequestParser::new(limits);
    assert_eq!(
        parser.parse(b"*1\r\n$5\r\nhello\r\n"),
        Err(ProtocolError::InvalidBulkLength)
    );
    assert_eq!(
        parser.parse(b"*3\r\n"),
        Err(ProtocolError::InvalidMultibulkLength)
    );
    assert_eq!(parser.parse(b"123456789"), Err(ProtocolError::TooBigInline));
    assert_eq!(
        parser.parse(b"*1\r\n$4\r\nhell\r\n"),
        Ok(Status::Complete(14))
    );
}

#[test]
fn unauthenticated_clients_get_redis_limits_until_lifted() {
    let mut parser = RequestParser::default();
    parser.set_unauthenticated(true);
    let ten = "*10\r\n".to_owned() + &"$1\r\nx\r\n".repeat(10);
    assert_eq!(
        parser.parse(ten.as_bytes()),
        Ok(Status::Complete(ten.len()))
    );
    assert_eq!(
        parser.parse(b"*11\r\n"),
        Err(ProtocolError::UnauthenticatedMultibulkLength)
    );
    let mut exact = b"*1\r\n$16384\r\n".to_vec();
    exact.extend(std::iter::repeat_n(b'a', 16384));
    exact.extend_from_slice(b"\r\n");
    assert_eq!(parser.parse(&exact), Ok(Status::Complete(exact.len())));
    // Refused on the length line, before the bytes arrive.
    assert_eq!(
        parser.parse(b"*2\r\n$3\r\nGET\r\n$16385\r\n"),
        Err(ProtocolError::UnauthenticatedBulkLength)
    );
    assert_eq!(
        ProtocolError::UnauthenticatedBulkLength.to_string(),
        "Protocol error: unauthenticated bulk length"
    );
    assert_eq!(
        ProtocolError::UnauthenticatedMultibulkLength.to_string(),
        "Protocol error: unauthenticated multibulk length"
    );
    // The configured limits still come first: Redis checks them before the unauthenticated ones.
    assert_eq!(
        parser.parse(b"*2147483648\r\n"),
        Err(ProtocolError::InvalidMultibulkLength)
    );
    assert_eq!(
        parser.parse(b"*1\r\n$-1\r\n"),
        Err(ProtocolError::InvalidBulkLength)
    );
    parser.set_unauthenticated(false);
    let eleven = "*11\r\n".to_owned() + &"$1\r\nx\r\n".repeat(11);
    assert_eq!(
        parser.parse(eleven.as_bytes()),
        Ok(Status::Complete(eleven.len()))
    );
    let big = format!("*1\r\n$16385\r\n{}\r\n", "a".repeat(16385));
    assert_eq!(
        parser.parse(big.as_bytes()),
        Ok(Status::Complete(big.len()))
    );
}

#[test]
fn incomplete_requests_resume_byte_by_byte() {
    let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
    let mut parser = RequestParser::default();
    for end in 0..input.len() {
        assert_eq!(
            parser.parse(&input[..end]),
            Ok(Status::Incomplete),
            "prefix of {end} bytes"
        );
    }
    assert_eq!(parser.parse(input), Ok(Status::Complete(input.len())));
    let args: Vec<&[u8]> = parser.args(input).iter().collect();
    assert_eq!(args, [&b"SET"[..], b"key", b"value"]);
}

#[test]
fn strict_integers() {
    let table: &[(&[u8], Option<i64>)] = &[
        (b"0", Some(0)),
        (b"-1", Some(-1)),
        (b"9223372036854775807", Some(i64::MAX)),
        (b"-9223372036854775808", Some(i64::MIN)),
        (b"9223372036854775808", None),
        (b"+1", None),
        (b"01", None),
        (b"-0", None),
        (b"", None),
        (b" 1", None),
        (b"1a", None),
    ];
    for (input, expected) in table {
        assert_eq!(
            parse_i64(input),
            *expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn replies_in_both_protocol_versions() {
    type Case = (fn(&mut ReplyWriter), &'static [u8], &'static [u8]);
    let table: &[Case] = &[
        (|w| w.ok(), b"+OK\r\n", b"+OK\r\n"),
        (|w| w.int(-42), b":-42\r\n", b":-42\r\n"),
        (|w| w.bulk(b"hi"), b"$2\r\nhi\r\n", b"$2\r\nhi\r\n"),
        (|w| w.null(), b"$-1\r\n", b"_\r\n"),
        (|w| w.null_array(), b"*-1\r\n", b"_\r\n"),
        (|w| w.map(1), b"*2\r\n", b"%1\r\n"),
        (|w| w.set(3), b"*3\r\n", b"~3\r\n"),
        (|w| w.double(1.5), b"$3\r\n1.5\r\n", b",1.5\r\n"),
        (|w| w.double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n"),
        (|w| w.boolean(true), b":1\r\n", b"#t\r\n"),
        (|w| w.verbatim(b"ab"), b"$2\r\nab\r\n", b"=6\r\ntxt:ab\r\n"),
        (
            |w| w.error("ERR bad\r\nthing"),
            b"-ERR bad  thing\r\n",
            b"-ERR bad  thing\r\n",
        ),
        // Redis trims CR and LF from the ends before it replaces the ones inside.
        (
            |w| w.error("ERR Unsupported option \r"),
            b"-ERR Unsupported option \r\n",
            b"-ERR Unsupported option \r\n",
        ),
    ];
    for (write, resp2, resp3) in table {
        for (resp3_mode, expected) in [(false, resp2), (true, resp3)] {
            let mut out = Vec::new();
            write(&mut ReplyWriter::new(&mut out, resp3_mode));
            assert_eq!(out, *expected, "resp3={resp3_mode}");
        }
    }
}

#[test]
fn frames_parse_every_resp3_type() {
    let input = b"%2\r\n+a\r\n:1\r\n$1\r\nb\r\n*3\r\n,1.5\r\n#f\r\n_\r\n";
    let (frame, used) = Frame::parse(input).unwrap().unwrap();
    assert_eq!(used, input.len());
    assert_eq!(
        frame,
        Frame::Map(vec![
            (Frame::Simple("a".into()), Frame::Integer(1)),
            (
                Frame::Bulk("b".into()),
                Frame::Array(vec![Frame::Double(1.5), Frame::Boolean(false), Frame::Null])
            ),
        ])
    );
    assert_eq!(Frame::parse(b"$-1\r\n").unwrap(), Some((Frame::Null, 5)));
    assert_eq!(Frame::parse(b"*-1\r\n").unwrap(), Some((Frame::Null, 5)));
    assert_eq!(Frame::parse(b"*2\r\n:1\r\n").unwrap(), None);
    assert_eq!(
        Frame::parse(b"?\r\n"),
        Err(ProtocolError::InvalidType(b'?'))
    );
    // A blob error may hold CR LF; it is written back as a blob error, not a broken line.
    let (blob, _) = Frame::parse(b"!4\r\na\r\nb\r\n").unwrap().unwrap();
    let mut out = Vec::new();
    blob.encode(&mut out);
    assert_eq!(out, b"!4\r\na\r\nb\r\n");
    let deep = "*1\r\n".repeat(200);
    assert_eq!(Frame::parse(deep.as_bytes()), Err(ProtocolError::TooDeep));
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        "[a-zA-Z0-9 ]{0,16}".prop_map(Frame::Simple),
        "ERR [a-z ]{0,16}".prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|v| Frame::Bulk(v.into())),
        Just(Frame::Null),
        any::<bool>().prop_map(Frame::Boolean),
        (-1e12f64..1e12).prop_map(Frame::Double),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Frame::Set),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

proptest! {
    #[test]
    fn frames_round_trip(frame in arb_frame()) {
        let mut out = Vec::new();
        frame.encode(&mut out);
        let (parsed, used) = Frame::parse(&out).unwrap().unwrap();
        prop_assert_eq!(used, out.len());
        prop_assert_eq!(parsed, frame);
        // Every strict prefix is incomplete, never an error or a different frame.
        for end in 0..out.len() {
            prop_assert_eq!(Frame::parse(&out[..end]).unwrap(), None);
        }
    }

    #[test]
    fn commands_round_trip(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..10)) {
        let mut out = Vec::new();
        dcache_protocol::reply::encode_command(&args, &mut out);
        let parsed = parse_all(&out).unwrap();
        prop_assert_eq!(parsed, vec![args]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut parser = RequestParser::default();
        if let Ok(Status::Complete(n)) = parser.parse(&input) {
            prop_assert!(n <= input.len());
            for arg in parser.args(&input).iter() {
                prop_assert!(arg.len() <= input.len());
            }
        }
        if let Ok(Some((_, n))) = Frame::parse(&input) {
            prop_assert!(n <= input.len());
        }
    }
}
