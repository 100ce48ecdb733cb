//! Feeds arbitrary bytes to the request parser, as a server would receive them, and checks:
//! * a complete request never claims more bytes than it was given, and its arguments lie inside
//!   the input (or the parser's scratch space);
//! * re-encoding the arguments as a multibulk request parses back to the same arguments;
//! * feeding the same bytes in two pieces gives the same result as feeding them whole;
//! * a parser for a client that has not authenticated never completes a multibulk request past
//!   Redis's unauthenticated limits (10 arguments of 16 KiB).
#![no_main]

use dcache_protocol::reply::encode_command;
use dcache_protocol::request::{UNAUTHENTICATED_MAX_ARGS, UNAUTHENTICATED_MAX_BULK_LEN};
use dcache_protocol::{RequestParser, Status};
use libfuzzer_sys::fuzz_target;

fn parse_all(input: &[u8], split: usize) -> Result<Vec<Vec<Vec<u8>>>, String> {
    parse_all_as(input, split, false)
}

fn parse_all_as(
    input: &[u8],
    split: usize,
    unauthenticated: bool,
) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let mut parser = RequestParser::default();
    parser.set_unauthenticated(unauthenticated);
    let mut requests = Vec::new();
    let mut buffer = input[..split.min(input.len())].to_vec();
    let mut rest = &input[split.min(input.len())..];
    loop {
        match parser.parse(&buffer) {
            Ok(Status::Complete(n)) => {
                assert!(n > 0 && n <= buffer.len(), "consumed {n} of {}", buffer.len());
                let args: Vec<Vec<u8>> = parser.args(&buffer).iter().map(<[u8]>::to_vec).collect();
                if unauthenticated && buffer.first() == Some(&b'*') {
                    assert!(args.len() <= UNAUTHENTICATED_MAX_ARGS, "{} arguments", args.len());
                    assert!(args.iter().all(|a| a.len() <= UNAUTHENTICATED_MAX_BULK_LEN));
                }
                requests.push(args);
                buffer.drain(..n);
            }
            Ok(Status::Incomplete) if !rest.is_empty() => {
                buffer.extend_from_slice(rest);
                rest = &[];
            }
            Ok(Status::Incomplete) => return Ok(requests),
            Err(e) => return Err(e.to_string()),
        }
        if buffer.is_empty() && rest.is_empty() {
            return Ok(requests);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| b as usize);
    let whole = parse_all(data, data.len());
    let pieces = parse_all(data, split);
    assert_eq!(whole, pieces, "splitting the input changed the result");
    let _ = parse_all_as(data, split, true);
    if let Ok(requests) = whole {
        for args in requests.into_iter().filter(|a| !a.is_empty()) {
            let mut encoded = Vec::new();
            encode_command(&args, &mut encoded);
            let again = parse_all(&encoded, encoded.len()).expect("an encoded request parses");
            assert_eq!(again, vec![args]);
        }
    }
});
