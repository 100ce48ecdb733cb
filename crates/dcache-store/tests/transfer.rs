//! Streaming a slot out of one store and into another: contents, versions and expiries arrive
//! intact, a large hash goes in bounded parts, effects apply by version, and the memory budget
//! holds on the receiving side.

mod common;

use std::collections::BTreeMap;

use common::{Shape, shape};

use dcache_placement::slot;
use dcache_store::{
    Change, DumpCursor, Effect, HashLimits, HashValue, Kind, Lookup, OwnedValue, PolicyName,
    SetLimits, Store, StoreConfig, StoreError, Value, Version, ZSetLimits,
};

/// Fills `key` with `n` elements of about 100 bytes, as a list, a set or a sorted set.
fn fill(store: &Store, key: &[u8], kind: Kind, n: usize) {
    let key = store.key(key);
    let mut shard = store.lock(&key);
    let mut m = shard.modify(&key, NOW, Some(kind)).unwrap();
    for i in 0..n {
        let element = format!("element{i:0>93}");
        match kind {
            Kind::List => m.list_mut().unwrap().push_back(element.as_bytes()),
            Kind::Set => assert!(m.set_mut().unwrap().insert(element.as_bytes())),
            Kind::ZSet => assert!(
                m.zset_mut()
                    .unwrap()
                    .insert(element.as_bytes(), (i % 100) as f64)
            ),
            _ => unreachable!("an aggregate"),
        }
    }
}

const NOW: u64 = 1_800_000_000_000;

fn set(store: &Store, key: &[u8], value: &[u8], expire_at: Option<u64>) {
    let key = store.key(key);
    store
        .lock(&key)
        .set(&key, Value::Str(value), expire_at, false, NOW);
}

fn set_fields(store: &Store, key: &[u8], fields: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) {
    let key = store.key(key);
    let mut shard = store.lock(&key);
    let mut m = shard.modify(&key, NOW, Some(Kind::Hash)).unwrap();
    let mut h = m.hash_mut().unwrap();
    for (f, v) in fields {
        h.insert(&f, &v);
    }
}

/// Every live key of `slot` with its value, version and expiry.
type Contents = BTreeMap<Vec<u8>, (OwnedValue, Version, Option<u64>)>;

fn contents(store: &Store, slot_of: u16, now: u64) -> Contents {
    let mut out = BTreeMap::new();
    for key in store.keys_in_slot(slot_of, usize::MAX) {
        let k = store.key(&key);
        if let Some(e) = store.lock(&k).get(&k, now, Lookup::Peek) {
            out.insert(
                key.to_vec(),
                (e.value().into_owned(), e.version(), e.expire_at()),
            );
        }
    }
    out
}

/// Every live key of `slot` with its value's form, order and memory count.
fn shapes(store: &Store, slot_of: u16) -> BTreeMap<Vec<u8>, Shape> {
    let mut out = BTreeMap::new();
    for key in store.keys_in_slot(slot_of, usize::MAX) {
        let k = store.key(&key);
        if let Some(e) = store.lock(&k).get(&k, NOW, Lookup::Peek) {
            out.insert(key.to_vec(), shape(e.value()));
        }
    }
    out
}

/// Dumps `slot` in calls of `max_bytes`, through the wire encoding, and returns the effects
/// decoded and the number of calls.
fn dump(store: &Store, slot_of: u16, max_bytes: usize) -> (Vec<Effect>, usize) {
    let mut cursor = Some(DumpCursor::default());
    let (mut effects, mut calls) = (Vec::new(), 0);
    while let Some(at) = cursor {
        let (batch, next) = store.dump_slot(slot_of, at, max_bytes, NOW);
        calls += 1;
        assert!(calls < 100_000, "a dump ends");
        assert!(
            !batch.is_empty() || next.is_none(),
            "every call makes progress"
        );
        let mut wire = Vec::new();
        for e in &batch {
            e.encode(&mut wire);
        }
        let largest = batch.iter().map(Effect::encoded_len).max().unwrap_or(0);
        assert!(
            wire.len() <= max_bytes + largest,
            "a call stops once past its budget: {} bytes for {max_bytes}",
            wire.len()
        );
        let mut at = 0;
        while let Some((e, used)) = Effect::decode(&wire[at..]).unwrap() {
            effects.push(e);
            at += used;
        }
        assert_eq!(at, wire.len());
        cursor = next;
    }
    (effects, calls)
}

fn restore_all(store: &Store, effects: Vec<Effect>) {
    for e in effects {
        store.restore(e, NOW).unwrap();
    }
}

fn big_fields(n: usize, tag: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    (0..n).map(move |i| {
        (
            format!("field{i}").into_bytes(),
            format!("{tag}{i:0>90}").into_bytes(),
        )
    })
}

#[test]
fn a_slot_dumped_and_restored_is_the_same_slot() {
    let source = Store::new(StoreConfig::default().shards(4));
    let s = slot(b"t");
    for i in 0..300 {
        let expire = (i % 4 == 0).then_some(NOW + 60_000);
        set(
            &source,
            format!("{{t}}s{i}").as_bytes(),
            &vec![b'x'; i],
            expire,
        );
    }
    for i in 0..20 {
        set_fields(
            &source,
            format!("{{t}}h{i}").as_bytes(),
            big_fields(i + 1, "small"),
        );
    }
    // One large hash (about 2.4 MB), and keys that must not travel: expired ones, other slots.
    set_fields(&source, b"{t}big", big_fields(20_000, "big"));
    {
        let k = source.key(b"{t}big");
        source.lock(&k).set_expire(&k, Some(NOW + 90_000), NOW);
    }
    set(&source, b"{t}expired", b"v", Some(NOW - 1));
    set(&source, b"elsewhere", b"v", None);
    let expected = contents(&source, s, NOW);
    assert_eq!(expected.len(), 300 + 20 + 1);

    let (effects, calls) = dump(&source, s, 64 * 1024);
    let big_parts = effects.iter().filter(|e| &*e.key == b"{t}big").count();
    assert!(
        big_parts > 20,
        "the large hash goes in parts, {big_parts} here"
    );
    assert!(calls > big_parts / 2);
    assert!(effects.iter().all(|e| slot(&e.key) == s));
    assert!(!effects.iter().any(|e| &*e.key == b"{t}expired"));

    let target = Store::new(StoreConfig::default().shards(8));
    restore_all(&target, effects.clone());
    assert_eq!(contents(&target, s, NOW), expected);
    assert_eq!(target.len(), expected.len());

    // Duplicates do nothing: the whole stream again leaves the same contents.
    for e in effects {
        assert!(!target.restore(e, NOW).unwrap(), "a duplicate is a no-op");
    }
    assert_eq!(contents(&target, s, NOW), expected);

    // A write on the target after the move orders after the versions it received.
    let newest = expected.values().map(|(_, v, _)| *v).max().unwrap();
    set(&target, b"{t}s1", b"new", None);
    let k = target.key(b"{t}s1");
    assert!(
        target
            .lock(&k)
            .get(&k, NOW, Lookup::Peek)
            .unwrap()
            .version()
            > newest
    );
}

#[test]
fn a_large_hash_changed_between_calls_arrives_whole_with_the_writes_that_follow() {
    let source = Store::new(StoreConfig::default().shards(2));
    let s = slot(b"big");
    set_fields(&source, b"big", big_fields(5_000, "a"));
    let mut cursor = DumpCursor::default();
    let mut effects = Vec::new();
    // The first two parts, then writes to the hash: new fields (enough to rebuild its table),
    // changed fields and removed fields.
    for _ in 0..2 {
        let (batch, next) = source.dump_slot(s, cursor, 16 * 1024, NOW);
        effects.extend(batch);
        cursor = next.expect("more to come");
    }
    set_fields(&source, b"big", big_fields(12_000, "b"));
    {
        let k = source.key(b"big");
        let mut shard = source.lock(&k);
        let mut m = shard.modify(&k, NOW, None).unwrap();
        let mut h = m.hash_mut().unwrap();
        for i in (0..12_000).step_by(7) {
            h.remove(format!("field{i}").as_bytes());
        }
    }
    let mut next = Some(cursor);
    while let Some(at) = next {
        let (batch, n) = source.dump_slot(s, at, 16 * 1024, NOW);
        effects.extend(batch);
        next = n;
    }
    let target = Store::new(StoreConfig::default());
    restore_all(&target, effects);
    // What the stream alone guarantees: every field present throughout is there.
    let k = target.key(b"big");
    let got = match target.lock(&k).get(&k, NOW, Lookup::Peek).unwrap().value() {
        Value::Hash(h) => h.into_owned(),
        other => panic!("a hash, not {other:?}"),
    };
    for i in (0..5_000).filter(|i| i % 7 != 0) {
        assert!(
            got.get(format!("field{i}").as_bytes()).is_some(),
            "field{i}"
        );
    }
    // With the write's effect after it, as migration sends it, the copies are equal.
    target.restore(source.effect_of(b"big", NOW), NOW).unwrap();
    assert_eq!(contents(&target, s, NOW), contents(&source, s, NOW));
}

fn put(key: &[u8], value: &[u8], version: u64, expire_at: Option<u64>) -> Effect {
    Effect {
        key: key.into(),
        version: Version(version),
        change: Change::Put {
            value: OwnedValue::Str(value.into()),
            expire_at,
        },
    }
}

fn value_of(store: &Store, key: &[u8]) -> Option<(Vec<u8>, Version)> {
    let k = store.key(key);
    let mut shard = store.lock(&k);
    let e = shard.get(&k, NOW, Lookup::Peek)?;
    match e.value() {
        Value::Str(s) => Some((s.to_vec(), e.version())),
        Value::Hash(h) => Some((format!("{} fields", h.len()).into_bytes(), e.version())),
        other => panic!("a string or a hash, not {other:?}"),
    }
}

#[test]
fn effects_apply_by_version_only() {
    let store = Store::new(StoreConfig::default());
    assert!(store.restore(put(b"k", b"two", 20, None), NOW).unwrap());
    assert!(!store.restore(put(b"k", b"one", 10, None), NOW).unwrap());
    assert!(!store.restore(put(b"k", b"again", 20, None), NOW).unwrap());
    assert_eq!(value_of(&store, b"k"), Some((b"two".to_vec(), Version(20))));
    let delete = |v| Effect {
        key: b"k"[..].into(),
        version: Version(v),
        change: Change::Delete,
    };
    assert!(!store.restore(delete(15), NOW).unwrap(), "an older delete");
    assert!(store.restore(delete(25), NOW).unwrap());
    assert_eq!(value_of(&store, b"k"), None);

    // Appends join only the value of their own version.
    let mut first = HashValue::default();
    first.insert(b"a", b"1");
    let mut more = HashValue::default();
    more.insert(b"b", b"2");
    let hash_put = Effect {
        key: b"h"[..].into(),
        version: Version(30),
        change: Change::Put {
            value: OwnedValue::Hash(Box::new(first)),
            expire_at: None,
        },
    };
    let append = |v| Effect {
        key: b"h"[..].into(),
        version: Version(v),
        change: Change::Append(OwnedValue::Hash(Box::new(more.clone()))),
    };
    assert!(
        !store.restore(append(30), NOW).unwrap(),
        "no value to join yet"
    );
    assert!(store.restore(hash_put, NOW).unwrap());
    assert!(
        !store.restore(append(31), NOW).unwrap(),
        "another version's part"
    );
    assert!(store.restore(append(30), NOW).unwrap());
    assert_eq!(
        value_of(&store, b"h"),
        Some((b"2 fields".to_vec(), Version(30)))
    );
    assert!(!store.restore(append(30), NOW).unwrap(), "a duplicate part");
    // Strings travel whole: a part of one applies to nothing (applied twice, it would not be
    // harmless).
    store.restore(put(b"s", b"abc", 40, None), NOW).unwrap();
    let more_bytes = Effect {
        key: b"s"[..].into(),
        version: Version(40),
        change: Change::Append(OwnedValue::Str(b"def"[..].into())),
    };
    assert!(!store.restore(more_bytes, NOW).unwrap());
    assert_eq!(value_of(&store, b"s"), Some((b"abc".to_vec(), Version(40))));

    // A put whose expiry has passed removes the key, as the expiry did on the source.
    assert!(
        store
            .restore(put(b"s", b"x", 50, Some(NOW - 1)), NOW)
            .unwrap()
    );
    assert_eq!(value_of(&store, b"s"), None);
    store
        .restore(put(b"t", b"x", 60, Some(NOW + 5)), NOW)
        .unwrap();
    let k = store.key(b"t");
    assert_eq!(
        store
            .lock(&k)
            .get(&k, NOW, Lookup::Peek)
            .unwrap()
            .expire_at(),
        Some(NOW + 5)
    );
}

#[test]
fn restoring_keeps_to_the_memory_budget() {
    let budget = 256 * 1024;
    let source = Store::new(StoreConfig::default());
    for i in 0..2_000 {
        set(&source, format!("{{m}}{i}").as_bytes(), &[b'v'; 1000], None);
    }
    let (effects, _) = dump(&source, slot(b"m"), 64 * 1024);
    assert_eq!(effects.len(), 2_000);

    let lru = Store::new(
        StoreConfig::default()
            .maxmemory(budget)
            .policy("allkeys-lru".parse::<PolicyName>().unwrap()),
    );
    for e in effects.clone() {
        lru.restore(e, NOW).unwrap();
        assert!(lru.used_memory() <= budget);
    }
    assert!(lru.stats().evicted > 0);
    assert!(lru.len() > 100, "what fits stays");

    let strict = Store::new(
        StoreConfig::default()
            .maxmemory(budget)
            .policy("noeviction".parse::<PolicyName>().unwrap()),
    );
    let refused = effects
        .into_iter()
        .map(|e| strict.restore(e, NOW))
        .filter(|r| *r == Err(StoreError::OutOfMemory))
        .count();
    assert!(refused > 0, "a full store refuses, as writes get -OOM");
    assert!(strict.used_memory() <= budget);
    assert_eq!(strict.len() + refused, 2_000);
}

#[test]
fn a_written_key_follows_in_parts_and_a_deleted_one_as_a_delete() {
    let source = Store::new(StoreConfig::default().shards(2));
    let target = Store::new(StoreConfig::default());
    let s = slot(b"{w}");
    set_fields(&source, b"{w}big", big_fields(3_000, "a"));
    set(&source, b"{w}gone", b"v", None);
    let (effects, _) = dump(&source, s, 1 << 20);
    restore_all(&target, effects);
    assert_eq!(contents(&target, s, NOW), contents(&source, s, NOW));

    // Writes after the snapshot: a large hash rewritten, a key deleted.
    set_fields(&source, b"{w}big", big_fields(6_000, "b"));
    {
        let k = source.key(b"{w}gone");
        assert!(source.lock(&k).delete(&k, NOW));
    }
    for key in [&b"{w}big"[..], b"{w}gone"] {
        let mut cursor = Some(DumpCursor::default());
        let mut calls = 0;
        while let Some(at) = cursor {
            let (batch, next) = source.dump_key(key, at, 16 * 1024, NOW);
            calls += 1;
            let bytes: usize = batch.iter().map(Effect::encoded_len).sum();
            let largest = batch.iter().map(Effect::encoded_len).max().unwrap_or(0);
            assert!(bytes <= 16 * 1024 + largest, "bounded per call");
            restore_all(&target, batch);
            cursor = next;
        }
        assert!(
            calls > 1 || key == b"{w}gone",
            "the large hash goes in parts"
        );
    }
    assert_eq!(contents(&target, s, NOW), contents(&source, s, NOW));
    assert_eq!(target.count_in_slot(s), 1);
}

#[test]
fn large_lists_sets_and_sorted_sets_stream_in_parts_and_arrive_whole() {
    let source = Store::new(StoreConfig::default().shards(2));
    let s = slot(b"t");
    for (name, kind) in [
        (&b"{t}l"[..], Kind::List),
        (b"{t}s", Kind::Set),
        (b"{t}z", Kind::ZSet),
    ] {
        fill(&source, name, kind, 20_000);
        fill(&source, &[name, b"small"].concat(), kind, 5);
    }
    let expected = contents(&source, s, NOW);
    assert_eq!(expected.len(), 6);

    let (effects, _) = dump(&source, s, 64 * 1024);
    for name in [&b"{t}l"[..], b"{t}s", b"{t}z"] {
        let parts = effects.iter().filter(|e| *e.key == *name).count();
        assert!(
            parts > 20,
            "{} goes in parts, {parts} here",
            String::from_utf8_lossy(name)
        );
    }
    let target = Store::new(StoreConfig::default().shards(4));
    restore_all(&target, effects.clone());
    assert_eq!(contents(&target, s, NOW), expected);

    // The stream again (a migration that started over): the list is rebuilt from its first
    // part, not appended to twice, and the rest takes the duplicates as no-ops.
    restore_all(&target, effects);
    assert_eq!(contents(&target, s, NOW), expected);
    assert_eq!(target.used_memory(), source.used_memory());
}

#[test]
fn a_list_changed_mid_stream_stops_and_the_write_that_changed_it_follows() {
    let source = Store::new(StoreConfig::default().shards(2));
    let s = slot(b"big");
    fill(&source, b"big", Kind::List, 10_000);
    let mut cursor = DumpCursor::default();
    let mut effects = Vec::new();
    for _ in 0..2 {
        let (batch, next) = source.dump_slot(s, cursor, 16 * 1024, NOW);
        effects.extend(batch);
        cursor = next.expect("more to come");
    }
    {
        let k = source.key(b"big");
        let mut shard = source.lock(&k);
        let mut m = shard.modify(&k, NOW, None).unwrap();
        let l = m.list_mut().unwrap();
        l.push_front(b"new head");
        l.pop_back();
    }
    let before = effects.len();
    let (batch, next) = source.dump_slot(s, cursor, 16 * 1024, NOW);
    assert!(
        next.is_none() && batch.iter().all(|e| *e.key != *b"big"),
        "the list's stream stopped"
    );
    effects.extend(batch);
    assert_eq!(effects.len(), before);

    let target = Store::new(StoreConfig::default());
    restore_all(&target, effects);
    target.restore(source.effect_of(b"big", NOW), NOW).unwrap();
    assert_eq!(contents(&target, s, NOW), contents(&source, s, NOW));
}

/// Small lists, sets and sorted sets (held inline in their entries) go whole, in their form,
/// even when the budget is smaller than they are, and arrive as they were.
#[test]
fn small_aggregates_go_whole_in_their_form() {
    let source = Store::new(StoreConfig::default().shards(2));
    let s = slot(b"t");
    for (name, kind) in [
        (&b"{t}list"[..], Kind::List),
        (b"{t}ints", Kind::Set),
        (b"{t}set", Kind::Set),
        (b"{t}zset", Kind::ZSet),
    ] {
        let key = source.key(name);
        let mut shard = source.lock(&key);
        let mut m = shard.modify(&key, NOW, Some(kind)).unwrap();
        for i in 0..40 {
            let member = match name {
                b"{t}ints" => format!("{}", i * 1000 - 7),
                _ => format!("m{i:03}"),
            };
            match kind {
                Kind::List => m.list_mut().unwrap().push_front(member.as_bytes()),
                Kind::Set => assert!(m.set_mut().unwrap().insert(member.as_bytes())),
                _ => assert!(m.zset_mut().unwrap().insert(
                    member.as_bytes(),
                    if i % 3 == 0 {
                        f64::from(i) / 7.0
                    } else {
                        f64::from(i - 20)
                    }
                )),
            }
        }
        if name == b"{t}zset" {
            m.set_expire(Some(NOW + 60_000));
        }
    }
    let expected = contents(&source, s, NOW);
    assert_eq!(expected.len(), 4);
    let (effects, _) = dump(&source, s, 64);
    assert_eq!(effects.len(), 4, "one whole Put each");
    assert!(
        effects
            .iter()
            .all(|e| matches!(e.change, Change::Put { .. }))
    );
    let target = Store::new(StoreConfig::default().shards(4));
    restore_all(&target, effects);
    assert_eq!(contents(&target, s, NOW), expected);
    assert_eq!(shapes(&target, s), shapes(&source, s));
}

/// A migration moves every form of every type as it is, whatever the target's limits would pick
/// for its size (the target here has only the defaults): a table hash of a few fields, a compact
/// hash, set or sorted set larger than the defaults allow (in its order), an intset, small
/// large-form sets, a ring-buffer list. Large values go in parts of their large form and the
/// rest is added in the target's form; compact ones go whole whatever the budget.
#[test]
fn a_migration_keeps_every_form() {
    let source = Store::new(StoreConfig::default().shards(2));
    let s = slot(b"f");
    let with = |name: &[u8], kind: Kind, f: &mut dyn FnMut(&mut dcache_store::Modify<'_>)| {
        let key = source.key(name);
        let mut shard = source.lock(&key);
        f(&mut shard.modify(&key, NOW, Some(kind)).unwrap());
    };
    let wide_hash = HashLimits {
        entries: 1024,
        value: 64,
    };
    with(b"{f}shrunk", Kind::Hash, &mut |m| {
        let mut h = m.hash_mut().unwrap();
        for i in 0..200 {
            h.insert(format!("f{i}").as_bytes(), b"v");
        }
        for i in 10..200 {
            h.remove(format!("f{i}").as_bytes());
        }
    });
    with(b"{f}widehash", Kind::Hash, &mut |m| {
        let mut h = m.hash_mut().unwrap();
        for i in (0..300).rev() {
            h.insert_with(format!("f{i}").as_bytes(), b"v", wide_hash);
        }
    });
    with(b"{f}bighash", Kind::Hash, &mut |m| {
        let mut h = m.hash_mut().unwrap();
        for (f, v) in big_fields(2000, "x") {
            h.insert(&f, &v);
        }
    });
    with(b"{f}ints", Kind::Set, &mut |m| {
        let mut s = m.set_mut().unwrap();
        for i in 0..400 {
            s.insert(((i * 7919) % 1000 - 500).to_string().as_bytes());
        }
    });
    with(b"{f}wideset", Kind::Set, &mut |m| {
        let mut s = m.set_mut().unwrap();
        let limits = SetLimits {
            max_listpack_entries: 1000,
            ..SetLimits::default()
        };
        for i in 0..300 {
            s.insert_with(format!("m{}", (i * 37) % 300).as_bytes(), &limits);
        }
    });
    with(b"{f}smallsettable", Kind::Set, &mut |m| {
        let mut s = m.set_mut().unwrap();
        for i in 0..2000 {
            s.insert(format!("member{i:0>60}").as_bytes());
        }
        for i in 5..2000 {
            s.remove(format!("member{i:0>60}").as_bytes());
        }
    });
    with(b"{f}wide_z", Kind::ZSet, &mut |m| {
        let mut z = m.zset_mut().unwrap();
        for i in 0..300 {
            let limits = ZSetLimits {
                entries: 1000,
                value: 64,
            };
            z.insert_with(format!("m{i}").as_bytes(), f64::from(i % 13), limits);
        }
    });
    with(b"{f}bigz", Kind::ZSet, &mut |m| {
        let mut z = m.zset_mut().unwrap();
        for i in 0..3000 {
            z.insert(format!("member{i:0>60}").as_bytes(), f64::from(i % 100));
        }
    });
    with(b"{f}ring", Kind::List, &mut |m| {
        let l = m.list_mut().unwrap();
        for i in 0..3000 {
            l.push_back(format!("element{i:0>40}").as_bytes());
        }
    });
    with(b"{f}packed", Kind::List, &mut |m| {
        let l = m.list_mut().unwrap();
        for i in 0..50 {
            l.push_front(format!("e{i}").as_bytes());
        }
    });
    let want = shapes(&source, s);
    let forms: Vec<&str> = want.values().map(|v| v.form).collect();
    assert_eq!(
        forms,
        [
            "hashtable",
            "skiplist",
            "intset",
            "listpack",
            "quicklist",
            "hashtable",
            "hashtable",
            "listpack",
            "listpack",
            "listpack"
        ],
        "{:?}",
        want.keys()
            .map(|k| String::from_utf8_lossy(k))
            .collect::<Vec<_>>()
    );
    let (effects, _) = dump(&source, s, 16 * 1024);
    for name in [&b"{f}bighash"[..], b"{f}bigz", b"{f}ring"] {
        let appends = effects
            .iter()
            .filter(|e| *e.key == *name && matches!(e.change, Change::Append(_)))
            .count();
        assert!(
            appends > 2,
            "{}: {appends} parts",
            String::from_utf8_lossy(name)
        );
    }
    let target = Store::new(StoreConfig::default().shards(4));
    restore_all(&target, effects);
    assert_eq!(shapes(&target, s), want);
    assert_eq!(target.used_memory(), source.used_memory());
}

/// An `Append` adds to the key in the key's own form, not under the defaults: a compact hash
/// past the default limits stays compact, its new fields last; a table stays a table.
#[test]
fn an_append_keeps_the_form_of_its_key() {
    let wide = HashLimits {
        entries: 1024,
        value: 64,
    };
    let hash = |fields: std::ops::Range<usize>, limits: HashLimits| {
        let mut h = HashValue::default();
        for i in fields {
            h.insert_with(format!("f{i}").as_bytes(), b"v", limits);
        }
        OwnedValue::Hash(Box::new(h))
    };
    let target = Store::new(StoreConfig::default());
    let at = |key: &[u8], change| Effect {
        key: key.into(),
        version: Version(9),
        change,
    };
    let put = |value| Change::Put {
        value,
        expire_at: None,
    };
    target
        .restore(at(b"pack", put(hash(0..200, wide))), NOW)
        .unwrap();
    let mut table = HashValue::default();
    for i in 0..200 {
        table.insert(format!("f{i}").as_bytes(), b"v");
    }
    for i in 3..200 {
        table.remove(format!("f{i}").as_bytes());
    }
    target
        .restore(at(b"table", put(OwnedValue::Hash(Box::new(table)))), NOW)
        .unwrap();
    for key in [&b"pack"[..], b"table"] {
        let more = Change::Append(hash(200..260, HashLimits::default()));
        assert!(target.restore(at(key, more), NOW).unwrap());
    }
    let k = target.key(b"pack");
    let got = shape(target.lock(&k).get(&k, NOW, Lookup::Peek).unwrap().value());
    let want: Vec<Vec<u8>> = (0..260).map(|i| format!("f{i}=v").into_bytes()).collect();
    assert_eq!((got.form, got.elements), ("listpack", want));
    let k = target.key(b"table");
    let got = shape(target.lock(&k).get(&k, NOW, Lookup::Peek).unwrap().value());
    assert_eq!((got.form, got.elements.len()), ("hashtable", 63));
}
