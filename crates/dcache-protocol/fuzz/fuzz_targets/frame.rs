//! Feeds arbitrary bytes to the generic frame parser (what a client reads) and checks that a
//! parsed frame never claims more bytes than given and survives an encode/parse round trip.
#![no_main]

use dcache_protocol::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((frame, used))) = Frame::parse(data) {
        assert!(used <= data.len());
        let mut encoded = Vec::new();
        frame.encode(&mut encoded);
        let (again, used_again) = Frame::parse(&encoded).unwrap().unwrap();
        assert_eq!(used_again, encoded.len());
        // NaN never equals itself; compare the encodings instead.
        let mut reencoded = Vec::new();
        again.encode(&mut reencoded);
        assert_eq!(reencoded, encoded);
    }
});
