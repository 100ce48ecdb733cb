//! The effect encoding: round trips, framing, and errors (never panics) on bad input.

mod common;

use common::{Shape, shape};
use dcache_store::{
    Change, DecodeError, Delta, EFFECT_FORMAT, Effect, HashLimits, HashValue, ListValue,
    MAX_EFFECT_LEN, OwnedValue, SetLimits, SetValue, Version, ZSetLimits, ZSetValue,
};
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Set members: integers (as an intset holds them) or any bytes.
fn member() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (-40_000i64..40_000).prop_map(|i| i.to_string().into_bytes()),
        any::<i64>().prop_map(|i| i.to_string().into_bytes()),
        bytes(40),
    ]
}

fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-300i64..300).prop_map(|i| i as f64),
        any::<f64>().prop_filter("not NaN", |f| !f.is_nan()),
    ]
}

/// Values of every type in every form: built under limits of any size (so that a compact form
/// can be larger than the defaults allow, and a large one small), some elements then removed
/// (a form never goes back: a table can end up with a few fields).
fn value() -> impl Strategy<Value = OwnedValue> {
    let removed = || proptest::collection::vec(any::<prop::sample::Index>(), 0..30);
    prop_oneof![
        bytes(300).prop_map(|s| OwnedValue::Str(s.into())),
        (
            proptest::collection::vec((bytes(20), bytes(200)), 0..60),
            0..70usize,
            0..250usize,
            removed()
        )
            .prop_map(|(fields, entries, value, removed)| {
                let mut h = HashValue::default();
                let limits = HashLimits { entries, value };
                for (f, v) in &fields {
                    h.insert_with(f, v, limits);
                }
                for at in removed.iter().filter(|_| !fields.is_empty()) {
                    h.remove(&fields[at.index(fields.len())].0);
                }
                OwnedValue::Hash(Box::new(h))
            }),
        proptest::collection::vec(bytes(40), 0..30).prop_map(|elements| {
            let mut l = ListValue::default();
            elements.iter().for_each(|e| l.push_back(e));
            OwnedValue::List(Box::new(l))
        }),
        (
            proptest::collection::vec(member(), 0..60),
            (0..70usize, 0..70usize, 0..30usize),
            removed()
        )
            .prop_map(|(members, (ints, entries, value), removed)| {
                let limits = SetLimits {
                    max_intset_entries: ints,
                    max_listpack_entries: entries,
                    max_listpack_value: value,
                };
                let mut s = SetValue::default();
                for m in &members {
                    s.insert_with(m, &limits);
                }
                for at in removed.iter().filter(|_| !members.is_empty()) {
                    s.remove(&members[at.index(members.len())]);
                }
                OwnedValue::Set(Box::new(s))
            }),
        (
            proptest::collection::vec((bytes(40), score()), 0..60),
            0..70usize,
            0..40usize,
            removed()
        )
            .prop_map(|(members, entries, value, removed)| {
                let mut z = ZSetValue::default();
                for (m, score) in &members {
                    z.insert_with(m, *score, ZSetLimits { entries, value });
                }
                for at in removed.iter().filter(|_| !members.is_empty()) {
                    z.remove(&members[at.index(members.len())].0);
                }
                OwnedValue::ZSet(Box::new(z))
            }),
    ]
}

/// The shape of the value a change carries.
fn shape_of(change: &Change) -> Option<Shape> {
    match change {
        Change::Put { value, .. } | Change::Append(value) => Some(shape(value.as_value())),
        Change::Delta(d) => Some(shape(d.put.as_value())),
        Change::Delete => None,
    }
}

/// A delta of a hash, set or sorted set: its removed names are none of its value's.
fn delta() -> impl Strategy<Value = Change> {
    (
        value().prop_filter("an aggregate a delta carries", |v| {
            matches!(
                v,
                OwnedValue::Hash(_) | OwnedValue::Set(_) | OwnedValue::ZSet(_)
            )
        }),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(1..u64::MAX),
        0..2u8,
        proptest::collection::btree_set(bytes(20), 0..10),
    )
        .prop_map(|(put, base, base_len, expire_at, form, names)| {
            let present = |n: &[u8]| match &put {
                OwnedValue::Hash(h) => h.get(n).is_some(),
                OwnedValue::Set(s) => s.contains(n),
                OwnedValue::ZSet(z) => z.score(n).is_some(),
                _ => unreachable!(),
            };
            let removed = names
                .into_iter()
                .filter(|n| !present(n))
                .map(Into::into)
                .collect();
            Change::Delta(Box::new(Delta {
                base: Version(base),
                base_len,
                expire_at,
                form,
                put,
                removed,
            }))
        })
}

fn effect() -> impl Strategy<Value = Effect> {
    let change = prop_oneof![
        Just(Change::Delete),
        (value(), proptest::option::of(1..u64::MAX))
            .prop_map(|(value, expire_at)| Change::Put { value, expire_at }),
        value().prop_map(Change::Append),
        delta(),
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
            // In the same form, read in the same order, counting the same memory.
            prop_assert_eq!(shape_of(&decoded.change), shape_of(&e.change));
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
    huge_count.extend_from_slice(&[1, b'k', 0, 0]);
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

fn put(value: OwnedValue) -> Effect {
    Effect {
        key: b"k"[..].into(),
        version: Version(3),
        change: Change::Put {
            value,
            expire_at: None,
        },
    }
}

/// `effect` encoded and decoded again.
fn round_trip(effect: &Effect) -> Effect {
    let mut buf = Vec::new();
    effect.encode(&mut buf);
    assert_eq!(buf.len(), effect.encoded_len());
    let (decoded, used) = Effect::decode(&buf).unwrap().unwrap();
    assert_eq!(used, buf.len());
    decoded
}

/// Every form of every type comes back in that form, whatever the defaults would pick for its
/// size: the forms a copy used to lose (a table of a few fields, a compact value past the
/// default limits) included.
#[test]
fn every_form_round_trips_as_itself() {
    let wide = HashLimits {
        entries: 1024,
        value: 64,
    };
    let mut shrunk_table = HashValue::default();
    for i in 0..200 {
        shrunk_table.insert(format!("f{i}").as_bytes(), b"v");
    }
    for i in 10..200 {
        shrunk_table.remove(format!("f{i}").as_bytes());
    }
    let mut wide_pack = HashValue::default();
    for i in (0..300).rev() {
        wide_pack.insert_with(format!("f{i}").as_bytes(), b"v", wide);
    }
    let mut intset = SetValue::default();
    for i in [5i64, -3, 70_000, 1, 9_000_000_000] {
        intset.insert(i.to_string().as_bytes());
    }
    let set_limits = SetLimits {
        max_listpack_entries: 1000,
        ..SetLimits::default()
    };
    let mut wide_set_pack = SetValue::default();
    for i in 0..300 {
        wide_set_pack.insert_with(format!("m{}", 299 - i).as_bytes(), &set_limits);
    }
    let mut small_set_table = SetValue::default();
    for i in 0..200 {
        small_set_table.insert(format!("m{i}").as_bytes());
    }
    for i in 3..200 {
        small_set_table.remove(format!("m{i}").as_bytes());
    }
    let mut wide_zpack = ZSetValue::default();
    for i in 0..300 {
        wide_zpack.insert_with(
            format!("m{i}").as_bytes(),
            f64::from(i % 7) - 0.5,
            ZSetLimits {
                entries: 1000,
                value: 64,
            },
        );
    }
    let mut small_tree = ZSetValue::default();
    for i in 0..200 {
        small_tree.insert(format!("m{i}").as_bytes(), f64::from(i));
    }
    for i in 2..200 {
        small_tree.remove(format!("m{i}").as_bytes());
    }
    let mut packed_list = ListValue::default();
    let mut ring = ListValue::default();
    for i in 0..300 {
        packed_list.push_front(format!("e{i}").as_bytes());
        ring.push_back(&[b'x'; 40]);
    }
    // 12 KB took it past the 8 KB default; 5 KB is over the half that turns it back.
    while ring.len() > 120 {
        ring.pop_back();
    }
    let cases = [
        (OwnedValue::Hash(Box::new(shrunk_table)), "hashtable", 10),
        (OwnedValue::Hash(Box::new(wide_pack)), "listpack", 300),
        (OwnedValue::Set(Box::new(intset)), "intset", 5),
        (OwnedValue::Set(Box::new(wide_set_pack)), "listpack", 300),
        (OwnedValue::Set(Box::new(small_set_table)), "hashtable", 3),
        (OwnedValue::ZSet(Box::new(wide_zpack)), "listpack", 300),
        (OwnedValue::ZSet(Box::new(small_tree)), "skiplist", 2),
        (OwnedValue::List(Box::new(packed_list)), "listpack", 300),
        (OwnedValue::List(Box::new(ring)), "quicklist", 120),
    ];
    for (value, form, len) in cases {
        let want = shape(value.as_value());
        assert_eq!((want.form, want.elements.len()), (form, len));
        let effect = put(value);
        assert_eq!(shape_of(&round_trip(&effect).change), Some(want), "{form}");
        // An Append carries the form the same way.
        let Change::Put { value, .. } = effect.change else {
            unreachable!()
        };
        let append = Effect {
            change: Change::Append(value),
            ..effect
        };
        assert_eq!(
            shape_of(&round_trip(&append).change),
            shape_of(&append.change)
        );
    }
}

/// A hand-made `Put` body: key `k`, no expiry, an aggregate of type `kind` (1 hash, 2 list,
/// 3 set, 4 sorted set) in `form`, with `count` and the elements' bytes as given.
fn raw_put(kind: u8, form: u8, count: u8, elements: &[u8]) -> Vec<u8> {
    let mut body = vec![EFFECT_FORMAT, 0x10 | kind];
    body.extend_from_slice(&3u64.to_le_bytes());
    body.extend_from_slice(&[1, b'k', 0, form, count]);
    body.extend_from_slice(elements);
    framed(&body)
}

fn decoded_value(buf: &[u8]) -> Result<OwnedValue, DecodeError> {
    match Effect::decode(buf)?.expect("whole").0.change {
        Change::Put { value, .. } => Ok(value),
        other => panic!("{other:?}"),
    }
}

/// A field or member twice in one value is an error in every form (no sender writes one): a
/// compact copy, built without a search, would otherwise hold it twice.
#[test]
fn an_element_twice_in_one_value_is_an_error() {
    // Hash: field "a" twice, in the listpack and in the table.
    for form in [0, 1] {
        let twice = raw_put(1, form, 2, &[1, b'a', 1, b'1', 1, b'a', 1, b'2']);
        assert_eq!(decoded_value(&twice), Err(DecodeError::Duplicate));
    }
    // Set: "a" twice in a listpack and a table; 7 twice in an intset.
    for form in [1, 2] {
        let twice = raw_put(3, form, 3, &[1, b'a', 1, b'b', 1, b'a']);
        assert_eq!(decoded_value(&twice), Err(DecodeError::Duplicate));
    }
    let twice = raw_put(3, 0, 2, &[1, b'7', 1, b'7']);
    assert_eq!(decoded_value(&twice), Err(DecodeError::Duplicate));
    // Sorted set: "m" twice, with two scores, in either form.
    let mut members = vec![1, b'm'];
    members.extend_from_slice(&1f64.to_bits().to_le_bytes());
    members.extend_from_slice(&[1, b'm']);
    members.extend_from_slice(&2f64.to_bits().to_le_bytes());
    for form in [0, 1] {
        let twice = raw_put(4, form, 2, &members);
        assert_eq!(decoded_value(&twice), Err(DecodeError::Duplicate));
    }
    // A list holds what it is given, twice included.
    let list = decoded_value(&raw_put(2, 0, 2, &[1, b'a', 1, b'a'])).unwrap();
    assert_eq!(shape(list.as_value()).elements, [b"a", b"a"]);
}

#[test]
fn unknown_forms_and_bad_intset_members_are_errors() {
    for (kind, form) in [(1, 2), (2, 2), (3, 3), (4, 2), (1, 0xff)] {
        assert_eq!(
            decoded_value(&raw_put(kind, form, 0, &[])),
            Err(DecodeError::Form(form))
        );
    }
    for not_int in [&b"x"[..], b"07", b"-0", b"+1", b"99999999999999999999"] {
        let mut elements = vec![not_int.len() as u8];
        elements.extend_from_slice(not_int);
        assert_eq!(
            decoded_value(&raw_put(3, 0, 1, &elements)),
            Err(DecodeError::NotInteger),
            "{not_int:?}"
        );
    }
}

/// A sorted set's members in any order (and an intset's) make a correctly ordered copy.
#[test]
fn members_out_of_order_make_an_ordered_copy() {
    let mut members = Vec::new();
    for (m, s) in [(&b"c"[..], 2.0f64), (b"a", 3.0), (b"b", 2.0), (b"z", -1.5)] {
        members.push(1);
        members.extend_from_slice(m);
        members.extend_from_slice(&s.to_bits().to_le_bytes());
    }
    for form in [0, 1] {
        let OwnedValue::ZSet(z) = decoded_value(&raw_put(4, form, 4, &members)).unwrap() else {
            panic!("a sorted set");
        };
        assert_eq!(z.is_listpack(), form == 0);
        let order: Vec<(&[u8], f64)> = z.iter().collect();
        assert_eq!(
            order,
            [(&b"z"[..], -1.5), (b"b", 2.0), (b"c", 2.0), (b"a", 3.0)]
        );
        assert_eq!(z.rank(b"c"), Some(2));
        assert_eq!(z.score(b"a"), Some(3.0));
        // And it keeps working as a set: a change moves a member to its place.
        let mut z = *z;
        z.insert(b"a", -5.0);
        assert_eq!(z.get_by_rank(0), Some((&b"a"[..], -5.0)));
    }
    let ints = raw_put(
        3,
        0,
        4,
        &[
            2, b'4', b'0', 1, b'3', 2, b'-', b'9', 5, b'7', b'0', b'0', b'0', b'0',
        ],
    );
    let OwnedValue::Set(s) = decoded_value(&ints).unwrap() else {
        panic!("a set");
    };
    let got: Vec<Vec<u8>> = s.iter().map(|m| m.to_vec()).collect();
    assert_eq!(got, [&b"-9"[..], b"3", b"40", b"70000"]);
    assert_eq!(s.encoding().name(), "intset");
    assert!(s.contains(b"40") && !s.contains(b"41"));
}
