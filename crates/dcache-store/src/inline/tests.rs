//! Inline aggregates through the shard: every step reads back as the owned value it mirrors, and
//! the accounted bytes equal a recount of the entries.

use crate::memory::{ENTRY_OVERHEAD, VOLATILE_OVERHEAD, alloc_size};
use crate::{Kind, ListValue, Lookup, SetValue, Store, StoreConfig, Value, ZSetValue};

const NOW: u64 = 1_800_000_000_000;

fn store() -> Store {
    Store::new(StoreConfig::default().shards(1))
}

/// `(used == recount, side-table cells)`, asserting the first.
fn side_cells(store: &Store) -> usize {
    let key = store.key(b"any");
    let (used, recount, side) = store.lock(&key).accounting();
    assert_eq!(used, recount, "accounted bytes equal a recount");
    side
}

/// The value at `key`, owned.
fn owned(store: &Store, key: &[u8]) -> Option<crate::OwnedValue> {
    let key = store.key(key);
    let mut shard = store.lock(&key);
    shard
        .get(&key, NOW, Lookup::Peek)
        .map(|e| e.value().into_owned())
}

#[test]
fn a_list_lives_inline_while_packed_and_in_the_side_table_past_the_limit() {
    let store = store();
    let key = store.key(b"l");
    let mut model = ListValue::default();
    let element = [b'x'; 100];
    // 100 elements of 100 bytes pass the default 8 KB listpack limit.
    for i in 0..100 {
        {
            let mut shard = store.lock(&key);
            let mut m = shard.modify(&key, NOW, Some(Kind::List)).unwrap();
            m.list_mut().unwrap().push_back(&element);
            // The handle shows the value being changed.
            assert_eq!(m.value().elements(), i + 1);
        }
        model.push_back(&element);
        assert_eq!(
            owned(&store, b"l"),
            Some(crate::OwnedValue::List(Box::new(model.clone())))
        );
        let side = side_cells(&store);
        assert_eq!(side, usize::from(model.encoding() == "quicklist"), "{i}");
    }
    assert_eq!(model.encoding(), "quicklist");
    // Popped back down to half the limit, it is packed again, and inline.
    while model.encoding() == "quicklist" {
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, None).unwrap();
        assert!(m.list_mut().unwrap().pop_front().is_some());
        model.pop_front();
        drop(m);
        drop(shard);
        side_cells(&store);
    }
    assert_eq!(side_cells(&store), 0);
    let mut shard = store.lock(&key);
    let entry = shard.get(&key, NOW, Lookup::Peek).unwrap();
    assert_eq!(entry.value(), Value::List(model.view()));
    assert_eq!(
        entry.value().into_owned().as_value(),
        Value::List(model.view())
    );
}

#[test]
fn a_ttl_set_and_cleared_keeps_an_inline_value() {
    let store = store();
    for (name, kind) in [
        (&b"l"[..], Kind::List),
        (b"s", Kind::Set),
        (b"t", Kind::Set),
        (b"z", Kind::ZSet),
    ] {
        let key = store.key(name);
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, Some(kind)).unwrap();
        for i in 0..5 {
            let member = match name {
                b"t" => format!("{i}"),
                _ => format!("member:{i}"),
            };
            match kind {
                Kind::List => m.list_mut().unwrap().push_back(member.as_bytes()),
                Kind::Set => assert!(m.set_mut().unwrap().insert(member.as_bytes())),
                _ => assert!(
                    m.zset_mut()
                        .unwrap()
                        .insert(member.as_bytes(), f64::from(i))
                ),
            }
        }
    }
    assert_eq!(side_cells(&store), 0, "all four are inline");
    let before: Vec<_> = [b"l", b"s", b"t", b"z"]
        .iter()
        .map(|k| owned(&store, &k[..]))
        .collect();
    for at in [Some(NOW + 10_000), Some(NOW + 20_000), None] {
        for name in [b"l", b"s", b"t", b"z"] {
            let key = store.key(name);
            let mut shard = store.lock(&key);
            assert!(shard.set_expire(&key, at, NOW));
            assert_eq!(shard.get(&key, NOW, Lookup::Peek).unwrap().expire_at(), at);
        }
        assert_eq!(side_cells(&store), 0);
        let now: Vec<_> = [b"l", b"s", b"t", b"z"]
            .iter()
            .map(|k| owned(&store, &k[..]))
            .collect();
        assert_eq!(now, before);
    }
    // A TTL set through a write handle, with a change in the same handle.
    let key = store.key(b"l");
    {
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, None).unwrap();
        m.list_mut().unwrap().push_front(b"head");
        m.set_expire(Some(NOW + 5_000));
        m.list_mut().unwrap().push_back(b"tail");
    }
    side_cells(&store);
    let mut shard = store.lock(&key);
    let entry = shard.get(&key, NOW, Lookup::Peek).unwrap();
    assert_eq!(entry.expire_at(), Some(NOW + 5_000));
    let Value::List(l) = entry.value() else {
        panic!("a list")
    };
    assert_eq!(l.len(), 7);
    assert_eq!(
        (l.get(0), l.get(6)),
        (Some(&b"head"[..]), Some(&b"tail"[..]))
    );
    // Expired, the inline value goes with its key.
    drop(shard);
    assert!(
        store
            .lock(&key)
            .get(&key, NOW + 5_000, Lookup::Read)
            .is_none()
    );
    side_cells(&store);
}

#[test]
fn sets_and_sorted_sets_move_to_the_side_table_when_they_grow_and_read_the_same() {
    let store = store();
    let (s, z) = (store.key(b"s"), store.key(b"z"));
    let (mut set, mut zset) = (SetValue::default(), ZSetValue::default());
    for i in 0..200 {
        // Integers first (intset), then text (listpack), then past 128 members (hashtable).
        let member = if i < 20 {
            format!("{i}")
        } else {
            format!("m{i}")
        };
        set.insert(member.as_bytes());
        zset.insert(member.as_bytes(), f64::from(i % 7) - 2.5);
        {
            let mut shard = store.lock(&s);
            let mut m = shard.modify(&s, NOW, Some(Kind::Set)).unwrap();
            m.set_mut().unwrap().insert(member.as_bytes());
        }
        {
            let mut shard = store.lock(&z);
            let mut m = shard.modify(&z, NOW, Some(Kind::ZSet)).unwrap();
            m.zset_mut()
                .unwrap()
                .insert(member.as_bytes(), f64::from(i % 7) - 2.5);
        }
        let side = side_cells(&store);
        let expected = usize::from(set.encoding() == crate::SetEncoding::Hashtable)
            + usize::from(!zset.is_listpack());
        assert_eq!(side, expected, "{i}");
        let mut shard = store.lock(&s);
        let value = shard.get(&s, NOW, Lookup::Peek).unwrap().value();
        assert_eq!(value, Value::Set(set.view()));
        let Value::Set(view) = value else { panic!() };
        assert_eq!(view.encoding(), set.encoding());
        drop(shard);
        let mut shard = store.lock(&z);
        let value = shard.get(&z, NOW, Lookup::Peek).unwrap().value();
        assert_eq!(value, Value::ZSet(zset.view()));
    }
    // Removed member by member, both go, and nothing stays accounted.
    for i in 0..200 {
        let member = if i < 20 {
            format!("{i}")
        } else {
            format!("m{i}")
        };
        for key in [&s, &z] {
            let mut shard = store.lock(key);
            let mut m = shard.modify(key, NOW, None).unwrap();
            match m.value() {
                Value::Set(_) => assert!(m.set_mut().unwrap().remove(member.as_bytes())),
                _ => assert!(m.zset_mut().unwrap().remove(member.as_bytes())),
            }
        }
        side_cells(&store);
    }
    assert_eq!((store.used_memory(), store.len()), (0, 0));
}

#[test]
fn an_inline_aggregate_costs_its_entry_and_nothing_beside() {
    let store = store();
    let key = store.key(b"k:0000000000");
    {
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, Some(Kind::List)).unwrap();
        for i in 0..5 {
            m.list_mut()
                .unwrap()
                .push_back(format!("member:{i}").as_bytes());
        }
    }
    let mut shard = store.lock(&key);
    let entry = shard.get(&key, NOW, Lookup::Peek).unwrap();
    // Key, tag and header (3 bytes), five packed elements of 8 bytes with a length byte at each
    // end: one allocation, no side-table cell, no second allocation.
    let data = key.bytes.len() + 3 + 5 * (8 + 2);
    assert_eq!(entry.memory_usage(), ENTRY_OVERHEAD + alloc_size(data));
    drop(shard);
    assert_eq!(side_cells(&store), 0);
    assert!(store.lock(&key).set_expire(&key, Some(NOW + 1000), NOW));
    let mut shard = store.lock(&key);
    let entry = shard.get(&key, NOW, Lookup::Peek).unwrap();
    assert_eq!(
        entry.memory_usage(),
        ENTRY_OVERHEAD + alloc_size(data + 8) + VOLATILE_OVERHEAD
    );
}

#[test]
fn a_removed_or_replaced_inline_value_comes_out_whole() {
    let store = store();
    let key = store.key(b"z");
    let mut model = ZSetValue::default();
    {
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, Some(Kind::ZSet)).unwrap();
        for (i, score) in [1.5, -0.0, f64::INFINITY, 3.0, -7.0]
            .into_iter()
            .enumerate()
        {
            let member = format!("m{i}");
            m.zset_mut().unwrap().insert(member.as_bytes(), score);
            model.insert(member.as_bytes(), score);
        }
    }
    let removed = store.lock(&key).remove(&key, NOW).unwrap();
    assert_eq!(
        removed.value,
        crate::OwnedValue::ZSet(Box::new(model.clone()))
    );
    assert_eq!(side_cells(&store), 0);
    // Put back through `set` (as RENAME does), inline again; then replaced by a string.
    store
        .lock(&key)
        .set(&key, removed.value.as_value(), None, false, NOW);
    assert_eq!(side_cells(&store), 0);
    assert_eq!(owned(&store, b"z"), Some(removed.value));
    {
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, None).unwrap();
        assert!(m.str_mut().is_none());
        m.zset_mut().unwrap().insert(b"new", 2.0);
        m.set_str(b"now a string");
    }
    side_cells(&store);
    assert_eq!(
        owned(&store, b"z"),
        Some(crate::OwnedValue::Str(b"now a string"[..].into()))
    );
}

#[test]
fn a_hash_lives_inline_while_compact_and_streams_whole() {
    let store = store();
    let key = store.key(b"session:1");
    let mut model = crate::HashValue::default();
    // Five fields of a web session: one allocation, no side-table cell.
    for i in 0..5 {
        let (field, value) = (format!("field:{i}"), format!("value:{i:010}"));
        {
            let mut shard = store.lock(&key);
            let mut m = shard.modify(&key, NOW, Some(Kind::Hash)).unwrap();
            assert!(
                m.hash_mut()
                    .unwrap()
                    .insert(field.as_bytes(), value.as_bytes())
            );
        }
        model.insert(field.as_bytes(), value.as_bytes());
        assert_eq!(side_cells(&store), 0, "{i}");
    }
    {
        let mut shard = store.lock(&key);
        let entry = shard.get(&key, NOW, Lookup::Peek).unwrap();
        // Key, tag and count (2 bytes), five pairs of 7 + 16 bytes with a length byte each.
        let data = key.bytes.len() + 2 + 5 * (1 + 7 + 1 + 16);
        assert_eq!(entry.memory_usage(), ENTRY_OVERHEAD + alloc_size(data));
        let Value::Hash(h) = entry.value() else {
            panic!("a hash")
        };
        assert!(h.is_listpack());
        let fields: Vec<_> = h.iter().map(|(f, _)| f.to_vec()).collect();
        let want: Vec<_> = model.iter().map(|(f, _)| f.to_vec()).collect();
        assert_eq!(fields, want, "insertion order, read from the entry");
    }
    // A slot stream with a budget of one byte still carries the compact hash whole, in one Put.
    let slot = key.slot;
    let (mut effects, mut cursor) = (Vec::new(), Some(crate::DumpCursor::default()));
    for _ in 0..100 {
        let Some(from) = cursor else { break };
        let (more, next) = store.dump_slot(slot, from, 1, NOW);
        effects.extend(more);
        cursor = next;
    }
    assert!(cursor.is_none(), "the stream ends");
    let changes: Vec<_> = effects.iter().map(|e| e.change.clone()).collect();
    assert_eq!(
        changes,
        [crate::Change::Put {
            value: crate::OwnedValue::Hash(Box::new(model.clone())),
            expire_at: None
        }]
    );
    let copy = Store::new(StoreConfig::default().shards(1));
    for effect in effects {
        copy.restore(effect, NOW).unwrap();
    }
    assert_eq!(
        owned(&copy, b"session:1"),
        Some(crate::OwnedValue::Hash(Box::new(model.clone())))
    );
    assert_eq!(side_cells(&copy), 0, "inline on the copy too");
    let order = |store: &Store| -> Vec<Vec<u8>> {
        let key = store.key(b"session:1");
        let mut shard = store.lock(&key);
        let entry = shard.get(&key, NOW, Lookup::Peek).unwrap();
        let Value::Hash(h) = entry.value() else {
            panic!("a hash")
        };
        h.iter().map(|(f, _)| f.to_vec()).collect()
    };
    assert_eq!(
        order(&copy),
        order(&store),
        "the copy keeps the fields' order"
    );
    // A TTL keeps it inline; a long value moves it to the side table, for good.
    assert!(store.lock(&key).set_expire(&key, Some(NOW + 1000), NOW));
    assert_eq!(side_cells(&store), 0);
    for (field, value) in [(&b"long"[..], &[b'v'; 65][..]), (b"long", b"short")] {
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, None).unwrap();
        m.hash_mut().unwrap().insert(field, value);
        model.insert(field, value);
        drop(m);
        drop(shard);
        assert_eq!(side_cells(&store), 1);
        assert_eq!(
            owned(&store, b"session:1"),
            Some(crate::OwnedValue::Hash(Box::new(model.clone())))
        );
    }
    // Emptied field by field, the key goes and nothing stays accounted.
    let fields: Vec<Vec<u8>> = model.iter().map(|(f, _)| f.to_vec()).collect();
    for field in fields {
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, None).unwrap();
        assert!(m.hash_mut().unwrap().remove(&field));
        drop(m);
        drop(shard);
        side_cells(&store);
    }
    assert_eq!((store.used_memory(), store.len()), (0, 0));
}
