//! Delta effects: the codec (format 3, errors on malformed input) and the rule a copy applies
//! them by (only at exactly their base, else stale).

mod common;

use common::shape;
use dcache_store::{
    Applied, Change, DELTA_FORMAT, DecodeError, Delta, EFFECT_FORMAT, Effect, HashLimits,
    HashValue, KeyVersion, Lookup, OwnedValue, SetLimits, SetValue, Store, StoreConfig, Version,
    ZSetLimits, ZSetValue,
};

const NOW: u64 = 1_800_000_000_000;

/// Limits under which every aggregate is in its large form.
const LARGE_HASH: HashLimits = HashLimits {
    entries: 0,
    value: 0,
};
const LARGE_ZSET: ZSetLimits = ZSetLimits {
    entries: 0,
    value: 0,
};

fn large_set_limits() -> SetLimits {
    SetLimits {
        max_intset_entries: 0,
        max_listpack_entries: 0,
        max_listpack_value: 0,
    }
}

fn zset(members: impl IntoIterator<Item = (String, f64)>) -> OwnedValue {
    let mut z = ZSetValue::default();
    for (m, s) in members {
        z.insert_with(m.as_bytes(), s, LARGE_ZSET);
    }
    OwnedValue::ZSet(Box::new(z))
}

fn hash(fields: impl IntoIterator<Item = (String, String)>) -> OwnedValue {
    let mut h = HashValue::default();
    for (f, v) in fields {
        h.insert_with(f.as_bytes(), v.as_bytes(), LARGE_HASH);
    }
    OwnedValue::Hash(Box::new(h))
}

fn set(members: impl IntoIterator<Item = String>) -> OwnedValue {
    let limits = large_set_limits();
    let mut s = SetValue::for_members(b"x", 100, &limits);
    for m in members {
        s.insert_with(m.as_bytes(), &limits);
    }
    OwnedValue::Set(Box::new(s))
}

fn put(key: &[u8], version: u64, value: OwnedValue, expire_at: Option<u64>) -> Effect {
    Effect {
        key: key.into(),
        version: Version(version),
        change: Change::Put { value, expire_at },
    }
}

/// The form code of the large form of `value`'s type (see the effect encoding).
fn large_form(value: &OwnedValue) -> u8 {
    match value {
        OwnedValue::Set(_) => 2,
        _ => 1,
    }
}

fn delta(
    key: &[u8],
    version: u64,
    base: u64,
    base_len: u64,
    put: OwnedValue,
    removed: &[&str],
) -> Effect {
    Effect {
        key: key.into(),
        version: Version(version),
        change: Change::Delta(Box::new(Delta {
            base: Version(base),
            base_len,
            expire_at: None,
            form: large_form(&put),
            put,
            removed: removed.iter().map(|r| r.as_bytes().into()).collect(),
        })),
    }
}

fn round_trip(e: &Effect) -> Effect {
    let mut buf = Vec::new();
    e.encode(&mut buf);
    assert_eq!(buf.len(), e.encoded_len());
    let (decoded, used) = Effect::decode(&buf).unwrap().unwrap();
    assert_eq!(used, buf.len());
    decoded
}

fn value_of(store: &Store, key: &[u8]) -> Option<(OwnedValue, Version, Option<u64>)> {
    let k = store.key(key);
    let mut shard = store.lock(&k);
    let e = shard.get(&k, NOW, Lookup::Peek)?;
    Some((e.value().into_owned(), e.version(), e.expire_at()))
}

#[test]
fn a_delta_round_trips_in_format_3_and_other_effects_stay_in_format_2() {
    let cases = [
        delta(b"z", 20, 10, 3, zset([("a".into(), 1.5)]), &["b", "c"]),
        delta(b"h", 20, 10, 3, hash([("f".into(), "v".into())]), &["g"]),
        delta(b"s", 20, 10, 3, set(["m".to_string()]), &[]),
    ];
    for e in &cases {
        let mut buf = Vec::new();
        e.encode(&mut buf);
        assert_eq!(buf[4], DELTA_FORMAT);
        assert_eq!(&round_trip(e), e);
    }
    let mut buf = Vec::new();
    put(b"k", 1, zset([("a".into(), 1.0)]), None).encode(&mut buf);
    assert_eq!(
        buf[4], EFFECT_FORMAT,
        "a Put is still readable by a format 2 node"
    );
}

/// A delta's body with `tag`, base 10, base_len 1, no expiry, form `form`, then `rest` (its
/// value and its removed names).
fn raw_delta(format: u8, tag: u8, form: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = vec![format, tag];
    body.extend_from_slice(&20u64.to_le_bytes());
    body.extend_from_slice(&[1, b'k']);
    body.extend_from_slice(&10u64.to_le_bytes());
    body.extend_from_slice(&[1, 0, form]);
    body.extend_from_slice(rest);
    let mut buf = (body.len() as u32).to_le_bytes().to_vec();
    buf.extend_from_slice(&body);
    buf
}

#[test]
fn malformed_deltas_are_named_errors() {
    // A sorted set delta: member "a" at 1.0 put, then `removed`.
    let zset_delta = |format, form, removed: &[u8]| {
        let mut rest = vec![1, 1, 1, b'a'];
        rest.extend_from_slice(&1f64.to_bits().to_le_bytes());
        rest.extend_from_slice(removed);
        raw_delta(format, 0x34, form, &rest)
    };
    let ok = Effect::decode(&zset_delta(DELTA_FORMAT, 1, &[1, 1, b'b']))
        .unwrap()
        .unwrap()
        .0;
    let Change::Delta(d) = ok.change else {
        panic!("{ok:?}")
    };
    assert_eq!((d.base, d.base_len, d.form), (Version(10), 1, 1));
    assert_eq!(d.removed, vec![Box::from(&b"b"[..])]);

    // Format 2 has no delta: a node that reads it refuses the tag.
    assert_eq!(
        Effect::decode(&zset_delta(EFFECT_FORMAT, 1, &[0])),
        Err(DecodeError::Tag(0x34))
    );
    // A name both put and removed, or removed twice.
    assert_eq!(
        Effect::decode(&zset_delta(DELTA_FORMAT, 1, &[1, 1, b'a'])),
        Err(DecodeError::Duplicate)
    );
    assert_eq!(
        Effect::decode(&zset_delta(DELTA_FORMAT, 1, &[2, 1, b'b', 1, b'b'])),
        Err(DecodeError::Duplicate)
    );
    // A form the type does not have.
    assert_eq!(
        Effect::decode(&zset_delta(DELTA_FORMAT, 2, &[0])),
        Err(DecodeError::DeltaKind)
    );
    // A removed count past the end.
    assert_eq!(
        Effect::decode(&zset_delta(DELTA_FORMAT, 1, &[3, 1, b'b'])),
        Err(DecodeError::Truncated)
    );
    // Strings and lists have no delta.
    for tag in [0x30, 0x32] {
        assert_eq!(
            Effect::decode(&raw_delta(DELTA_FORMAT, tag, 1, &[0, 0])),
            Err(DecodeError::DeltaKind)
        );
    }
}

fn members(n: usize) -> impl Iterator<Item = (String, f64)> {
    (0..n).map(|i| (format!("member{i}"), i as f64))
}

#[test]
fn a_delta_applies_at_its_base_once_and_is_stale_anywhere_else() {
    let store = Store::new(StoreConfig::default());
    store
        .restore(put(b"z", 10, zset(members(200)), None), NOW)
        .unwrap();
    let d = delta(
        b"z",
        20,
        10,
        200,
        zset([("new".into(), 7.0), ("member3".into(), -1.0)]),
        &["member5"],
    );
    // The base's element count, form or version not matching: stale, nothing changed.
    let wrong_len = delta(b"z", 20, 10, 199, zset([("new".into(), 7.0)]), &[]);
    let wrong_base = delta(b"z", 20, 9, 200, zset([("new".into(), 7.0)]), &[]);
    let mut wrong_form = d.clone();
    if let Change::Delta(x) = &mut wrong_form.change {
        x.form = 0;
    }
    let wrong_type = delta(b"z", 20, 10, 200, hash([("f".into(), "v".into())]), &[]);
    for stale in [&wrong_len, &wrong_base, &wrong_form, &wrong_type] {
        assert_eq!(
            store.restore_checked(stale.clone(), NOW).unwrap(),
            Applied::Stale,
            "{stale:?}"
        );
    }
    assert_eq!(value_of(&store, b"z").unwrap().1, Version(10));

    assert_eq!(
        store.restore_checked(d.clone(), NOW).unwrap(),
        Applied::Changed
    );
    let mut want = members(200)
        .filter(|(m, _)| m != "member5")
        .map(|(m, s)| if m == "member3" { (m, -1.0) } else { (m, s) })
        .collect::<Vec<_>>();
    want.push(("new".into(), 7.0));
    let (got, version, _) = value_of(&store, b"z").unwrap();
    assert_eq!(version, Version(20));
    assert_eq!(got, zset(want));
    // A duplicate, and a delta older than the key, do nothing and are not stale.
    assert_eq!(store.restore_checked(d, NOW).unwrap(), Applied::Unchanged);
    let older = delta(b"z", 15, 10, 200, zset([("x".into(), 1.0)]), &[]);
    assert_eq!(
        store.restore_checked(older, NOW).unwrap(),
        Applied::Unchanged
    );
    // A missing key: stale (a delta never creates one).
    let missing = delta(b"nothing", 20, 10, 0, zset([("x".into(), 1.0)]), &[]);
    assert_eq!(store.restore_checked(missing, NOW).unwrap(), Applied::Stale);
    assert!(value_of(&store, b"nothing").is_none());
}

#[test]
fn a_copy_holding_part_of_a_value_is_not_at_the_base() {
    // The Put of a streamed value arrived, its Append did not: same version, fewer elements.
    let store = Store::new(StoreConfig::default());
    store
        .restore(
            put(
                b"h",
                10,
                hash((0..50).map(|i| (format!("f{i}"), "v".into()))),
                None,
            ),
            NOW,
        )
        .unwrap();
    let d = delta(b"h", 20, 10, 100, hash([("f1".into(), "w".into())]), &[]);
    assert_eq!(store.restore_checked(d, NOW).unwrap(), Applied::Stale);
}

#[test]
fn a_delta_sets_the_expiry_and_a_past_one_or_an_emptied_value_leaves_a_tombstone() {
    let store = Store::new(StoreConfig::default());
    store.set_tombstone_ms(60_000);
    for key in [&b"a"[..], b"b", b"c"] {
        store
            .restore(
                put(key, 10, set((0..3).map(|i| format!("m{i}"))), None),
                NOW,
            )
            .unwrap();
    }
    let with_expiry = |key: &[u8], at: u64, removed: &[&str]| {
        let mut d = delta(key, 20, 10, 3, set(["n".to_string()]), removed);
        if let Change::Delta(x) = &mut d.change {
            x.expire_at = Some(at);
        }
        d
    };
    let later = NOW + 5_000;
    assert_eq!(
        store
            .restore_checked(with_expiry(b"a", later, &[]), NOW)
            .unwrap(),
        Applied::Changed
    );
    let (value, _, expire_at) = value_of(&store, b"a").unwrap();
    assert_eq!(expire_at, Some(later));
    assert_eq!(shape(value.as_value()).elements.len(), 4);

    assert_eq!(
        store
            .restore_checked(with_expiry(b"b", NOW - 1, &[]), NOW)
            .unwrap(),
        Applied::Changed
    );
    assert!(value_of(&store, b"b").is_none());
    assert_eq!(
        store.version_of(b"b", NOW),
        Some(KeyVersion::Deleted(Version(20)))
    );

    let empties = delta(
        b"c",
        20,
        10,
        3,
        set(Vec::<String>::new()),
        &["m0", "m1", "m2"],
    );
    assert_eq!(
        store.restore_checked(empties, NOW).unwrap(),
        Applied::Changed
    );
    assert!(value_of(&store, b"c").is_none());
    assert_eq!(
        store.version_of(b"c", NOW),
        Some(KeyVersion::Deleted(Version(20)))
    );
}

#[test]
fn a_value_changed_by_deltas_counts_the_memory_of_the_same_value_put() {
    let by_delta = Store::new(StoreConfig::default());
    let by_put = Store::new(StoreConfig::default());
    let base = (0..300).map(|i| (format!("field{i}"), format!("value{i}")));
    by_delta
        .restore(put(b"h", 10, hash(base), None), NOW)
        .unwrap();
    let d = delta(
        b"h",
        20,
        10,
        300,
        hash([
            ("field1".into(), "a much longer value than before".into()),
            ("extra".into(), "x".into()),
        ]),
        &["field2", "field3"],
    );
    assert_eq!(by_delta.restore_checked(d, NOW).unwrap(), Applied::Changed);
    let (value, version, _) = value_of(&by_delta, b"h").unwrap();
    by_put
        .restore(put(b"h", 20, value.clone(), None), NOW)
        .unwrap();
    let (copy, ..) = value_of(&by_put, b"h").unwrap();
    assert_eq!(version, Version(20));
    assert_eq!(shape(copy.as_value()), shape(value.as_value()));
    assert_eq!(by_delta.used_memory(), by_put.used_memory());
}

/// Adds `member` at `score` to the sorted set `key` (created when absent, under the default
/// limits), as ZADD does.
fn zadd(store: &Store, key: &[u8], members: &[(&str, f64)]) {
    let k = store.key(key);
    let mut shard = store.lock(&k);
    let mut m = shard
        .modify(&k, NOW, Some(dcache_store::Kind::ZSet))
        .unwrap();
    let mut z = m.zset_mut().unwrap();
    for (member, score) in members {
        z.insert_with(member.as_bytes(), *score, ZSetLimits::default());
    }
}

fn zrem(store: &Store, key: &[u8], member: &str) {
    let k = store.key(key);
    let mut shard = store.lock(&k);
    let mut m = shard.modify(&k, NOW, None).unwrap();
    m.zset_mut().unwrap().remove(member.as_bytes());
}

/// `store`'s effect for a write of `key`, applied to `copy`: what it was, and the copies equal
/// after.
fn replicate(store: &Store, copy: &Store, key: &[u8]) -> Effect {
    let effect = store.replication_effect(key, NOW);
    copy.restore(effect.clone(), NOW).unwrap();
    assert_eq!(value_of(copy, key), value_of(store, key));
    effect
}

#[test]
fn a_write_to_a_large_value_replicates_as_a_delta_and_others_go_whole() {
    let (store, copy) = (
        Store::new(StoreConfig::default()),
        Store::new(StoreConfig::default()),
    );
    store.set_record_deltas(true);
    let is_delta = |e: &Effect| matches!(e.change, Change::Delta(_));
    // Created by the write, and compact: whole.
    zadd(&store, b"z", &[("a", 1.0)]);
    assert!(!is_delta(&replicate(&store, &copy, b"z")));
    // Grown past the compact form by one write: the form changed, so whole.
    let many: Vec<(String, f64)> = members(300).collect();
    let many: Vec<(&str, f64)> = many.iter().map(|(m, s)| (m.as_str(), *s)).collect();
    zadd(&store, b"z", &many);
    assert!(!is_delta(&replicate(&store, &copy, b"z")));
    // Large now: one member added, one removed, each a small delta.
    zadd(&store, b"z", &[("new", 0.5)]);
    let added = replicate(&store, &copy, b"z");
    assert!(is_delta(&added), "{added:?}");
    assert!(added.encoded_len() < 100, "{}", added.encoded_len());
    zrem(&store, b"z", "member7");
    assert!(is_delta(&replicate(&store, &copy, b"z")));
    // Taken once: the same write asked again goes whole.
    assert!(!is_delta(&store.replication_effect(b"z", NOW)));
    // Two writes before either is taken: both whole, so that the copy never gets a delta
    // whose base it has not seen.
    zadd(&store, b"z", &[("x", 1.0)]);
    zadd(&store, b"z", &[("y", 2.0)]);
    assert!(!is_delta(&replicate(&store, &copy, b"z")));
    assert!(!is_delta(&replicate(&store, &copy, b"z")));
    // Emptying the key goes as a Delete.
    let k = store.key(b"z");
    {
        let mut shard = store.lock(&k);
        let mut m = shard.modify(&k, NOW, None).unwrap();
        let dcache_store::Value::ZSet(z) = m.value() else {
            unreachable!()
        };
        let names: Vec<Vec<u8>> = z.iter().map(|(n, _)| n.to_vec()).collect();
        let mut z = m.zset_mut().unwrap();
        names.iter().for_each(|n| {
            z.remove(n);
        });
    }
    assert!(matches!(
        replicate(&store, &copy, b"z").change,
        Change::Delete
    ));
    // With recording off, nothing is recorded.
    store.set_record_deltas(false);
    zadd(&store, b"w", &many);
    zadd(&store, b"w", &[("new", 0.5)]);
    assert!(!is_delta(&replicate(&store, &copy, b"w")));
}

#[test]
fn hash_and_set_writes_replicate_as_deltas() {
    let (store, copy) = (
        Store::new(StoreConfig::default()),
        Store::new(StoreConfig::default()),
    );
    store.set_record_deltas(true);
    for key in [&b"h"[..], b"s"] {
        let value = if key == b"h" {
            hash((0..300).map(|i| (format!("f{i}"), format!("v{i}"))))
        } else {
            set((0..300).map(|i| format!("m{i}")))
        };
        store
            .restore(put(key, 10, value.clone(), None), NOW)
            .unwrap();
        copy.restore(put(key, 10, value, None), NOW).unwrap();
        let k = store.key(key);
        {
            let mut shard = store.lock(&k);
            let mut m = shard.modify(&k, NOW, None).unwrap();
            if key == b"h" {
                let mut h = m.hash_mut().unwrap();
                h.insert(b"f1", b"changed");
                h.insert(b"fresh", b"x");
                h.remove(b"f2");
            } else {
                let mut s = m.set_mut().unwrap();
                s.insert(b"fresh");
                s.remove(b"m2");
            }
        }
        let effect = replicate(&store, &copy, key);
        assert!(matches!(effect.change, Change::Delta(_)), "{effect:?}");
    }
}

/// A delta applied to a copy counts as an access for eviction, as a whole copy's replacement
/// would: a key kept up to date by deltas alone must not look cold and go first.
#[test]
fn a_delta_is_an_access_for_eviction() {
    let store = Store::new(
        StoreConfig::default()
            .shards(1)
            .max_entries(2)
            .policy("allkeys-lru".parse().unwrap()),
    );
    store
        .restore(put(b"z", 10, zset(members(200)), None), NOW)
        .unwrap();
    store
        .restore(
            put(b"s", 11, OwnedValue::Str(b"v".as_slice().into()), None),
            NOW,
        )
        .unwrap();
    let d = delta(b"z", 20, 10, 200, zset([("new".into(), 7.0)]), &[]);
    assert_eq!(store.restore_checked(d, NOW).unwrap(), Applied::Changed);
    // A third key: one of the two goes, the one used least recently.
    store
        .restore(
            put(b"t", 30, OwnedValue::Str(b"v".as_slice().into()), None),
            NOW,
        )
        .unwrap();
    assert!(
        value_of(&store, b"z").is_some(),
        "the key the delta reached stays"
    );
    assert!(value_of(&store, b"s").is_none(), "the colder key goes");
}
