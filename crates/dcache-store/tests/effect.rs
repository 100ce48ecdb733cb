//! The effect encoding: round trips, framing, and errors (never panics) on bad input.

use dcache_store::{
    Change, DecodeError, EFFECT_FORMAT, Effect, HashValue, ListValue, MAX_EFFECT_LEN, OwnedValue,
    SetValue, Version, ZSetValue,
};
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn value() -> impl Strategy<Value = OwnedValue> {
    prop_oneof![
        bytes(300).prop_map(|s| OwnedValue::Str(s.into())),
        proptest::collection::vec((bytes(20), bytes(200)), 0..30).prop_map(|fields| {
            let mut h = HashValue::default();
            for (f, v) in fields {
                h.insert(&f, &v);
            }
            OwnedValue::Hash(Box::new(h))
        }),
        proptest::collection::vec(bytes(40), 0..30).prop_map(|elements| {
            let mut l = ListValue::default();
            elements.iter().for_each(|e| l.push_back(e));
            OwnedValue::List(Box::new(l))
        }),
        proptest::collection::vec(bytes(40), 0..30).prop_map(|members| {
            let mut s = SetValue::default();
            members.iter().for_each(|m| {
                s.insert(m);
            });
            OwnedValue::Set(Box::new(s))
        }),
        proptest::collection::vec(
            (
                bytes(40),
                any::<f64>().prop_filter("not NaN", |f| !f.is_nan())
            ),
            0..30
        )
        .prop_map(|members| {
            let mut z = ZSetValue::default();
            for (m, score) in members {
                z.insert(&m, score);
            }
            OwnedValue::ZSet(Box::new(z))
        }),
    ]
}

fn effect() -> impl Strategy<Value = Effect> {
    let change = prop_oneof![
        Just(Change::Delete),
        (value(), proptest::option::of(1..u64::MAX))
            .prop_map(|(value, expire_at)| Change::Put { value, expire_at }),
        value().prop_map(Change::Append),
    ];
    (bytes(64), any::<u64>(), change).prop_map(|(key, v, change)| Effect {
        key: key.into(),
        version: Version(v),
        change,
    })
}

proptest! {
    #[test]
    fn every_effect_round_trips(effects in proptest::collection::vec(effect(), 1..5)) {
        let mut buf = Vec::new();
        for e in &effects {
            let before = buf.len();
            e.encode(&mut buf);
            prop_assert_eq!(buf.len() - before, e.encoded_len());
        }
        // A stream of effects decodes back one by one, each saying where the next begins.
        let mut at = 0;
        for e in &effects {
            let (decoded, used) = Effect::decode(&buf[at..]).unwrap().unwrap();
            prop_assert_eq!(&decoded, e);
            at += used;
        }
        prop_assert_eq!(at, buf.len());
    }

    #[test]
    fn a_partial_effect_is_incomplete_not_an_error(e in effect(), cut in any::<prop::sample::Index>()) {
        let mut buf = Vec::new();
        e.encode(&mut buf);
        let cut = cut.index(buf.len());
        prop_assert_eq!(Effect::decode(&buf[..cut]), Ok(None));
    }

    #[test]
    fn corrupted_bytes_give_an_error_or_an_effect_never_a_panic(
        e in effect(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut buf = Vec::new();
        e.encode(&mut buf);
        for (at, byte) in flips {
            let i = at.index(buf.len());
            buf[i] = byte;
        }
        if let Ok(Some((decoded, used))) = Effect::decode(&buf) {
            prop_assert!(used <= buf.len());
            // Whatever decodes is an effect that encodes again.
            let mut again = Vec::new();
            decoded.encode(&mut again);
            prop_assert!(matches!(Effect::decode(&again), Ok(Some(_))));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(buf in bytes(200)) {
        let _ = Effect::decode(&buf);
    }
}

/// A body framed with its length.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut buf = (body.len() as u32).to_le_bytes().to_vec();
    buf.extend_from_slice(body);
    buf
}

#[test]
fn malformed_effects_are_named_errors() {
    let delete = Effect {
        key: b"k"[..].into(),
        version: Version(7),
        change: Change::Delete,
    };
    let mut good = Vec::new();
    delete.encode(&mut good);
    let body = &good[4..];
    assert_eq!(body[0], EFFECT_FORMAT);

    let mut other_format = body.to_vec();
    other_format[0] = 9;
    assert_eq!(
        Effect::decode(&framed(&other_format)),
        Err(DecodeError::Format(9))
    );
    let mut bad_tag = body.to_vec();
    bad_tag[1] = 0x31;
    assert_eq!(
        Effect::decode(&framed(&bad_tag)),
        Err(DecodeError::Tag(0x31))
    );
    let mut trailing = body.to_vec();
    trailing.push(0);
    assert_eq!(
        Effect::decode(&framed(&trailing)),
        Err(DecodeError::Trailing(1))
    );
    let mut long_key = body[..10].to_vec();
    long_key.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(
        Effect::decode(&framed(&long_key)),
        Err(DecodeError::KeyTooLong(_))
    ));
    let mut past_end = body[..10].to_vec();
    past_end.push(5);
    assert_eq!(
        Effect::decode(&framed(&past_end)),
        Err(DecodeError::Truncated)
    );
    let mut endless_varint = body[..10].to_vec();
    endless_varint.extend_from_slice(&[0x80; 11]);
    assert_eq!(
        Effect::decode(&framed(&endless_varint)),
        Err(DecodeError::Varint)
    );
    let too_long = ((MAX_EFFECT_LEN + 1) as u32).to_le_bytes();
    assert_eq!(
        Effect::decode(&too_long),
        Err(DecodeError::TooLong(MAX_EFFECT_LEN as u64 + 1))
    );
    // A hash whose count promises more fields than the bytes hold.
    let mut huge_count = body[..10].to_vec();
    huge_count.extend_from_slice(&[1, b'k', 0]);
    huge_count[1] = 0x11;
    huge_count.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert_eq!(
        Effect::decode(&framed(&huge_count)),
        Err(DecodeError::Truncated)
    );
}

#[test]
fn a_nan_score_is_an_error() {
    let mut z = ZSetValue::default();
    z.insert(b"m", 1.5);
    let effect = Effect {
        key: b"z"[..].into(),
        version: Version(1),
        change: Change::Put {
            value: OwnedValue::ZSet(Box::new(z)),
            expire_at: None,
        },
    };
    let mut buf = Vec::new();
    effect.encode(&mut buf);
    // The score is the body's last eight bytes.
    let at = buf.len() - 8;
    buf[at..].copy_from_slice(&f64::NAN.to_bits().to_le_bytes());
    assert_eq!(Effect::decode(&buf), Err(DecodeError::Score));
}
