//! The list value against a `VecDeque` model, through both encodings and the conversions
//! between them (the default limit, 8 KB of listpack, is crossed by the larger elements).

use std::collections::VecDeque;

use dcache_store::{End, ListValue};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Push(End, Vec<u8>),
    PushAll(End, Vec<Vec<u8>>),
    Pop(End),
    Set(usize, Vec<u8>),
    Insert(usize, Vec<u8>),
    Remove(Vec<u8>, i64),
    Trim(usize, usize),
}

fn element() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Few distinct small values, so that LREM finds matches.
        prop::sample::select(vec![
            b"a".to_vec(),
            b"b".to_vec(),
            b"12".to_vec(),
            Vec::new()
        ]),
        (0..700usize, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
        (0..20000usize).prop_map(|n| vec![b'z'; n]),
    ]
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![Just(End::Head), Just(End::Tail)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (end(), element()).prop_map(|(e, v)| Op::Push(e, v)),
        1 => (end(), prop::collection::vec(element(), 0..20)).prop_map(|(e, v)| Op::PushAll(e, v)),
        3 => end().prop_map(Op::Pop),
        1 => (0..40usize, element()).prop_map(|(i, v)| Op::Set(i, v)),
        1 => (0..40usize, element()).prop_map(|(i, v)| Op::Insert(i, v)),
        1 => (element(), -3..3i64).prop_map(|(v, c)| Op::Remove(v, c)),
        1 => (0..40usize, 0..40usize).prop_map(|(a, b)| Op::Trim(a, b)),
    ]
}

fn apply(list: &mut ListValue, model: &mut VecDeque<Vec<u8>>, op: Op) {
    match op {
        Op::Push(End::Head, v) => {
            list.push_front(&v);
            model.push_front(v);
        }
        Op::Push(End::Tail, v) => {
            list.push_back(&v);
            model.push_back(v);
        }
        Op::PushAll(end, vs) => {
            list.push_all(end, vs.iter().map(Vec::as_slice));
            for v in vs {
                match end {
                    End::Head => model.push_front(v),
                    End::Tail => model.push_back(v),
                }
            }
        }
        Op::Pop(End::Head) => {
            assert_eq!(list.pop_front().map(Vec::from), model.pop_front());
        }
        Op::Pop(End::Tail) => {
            assert_eq!(list.pop_back().map(Vec::from), model.pop_back());
        }
        Op::Set(i, v) => {
            let ok = i < model.len();
            assert_eq!(list.set(i, &v), ok);
            if ok {
                model[i] = v;
            }
        }
        Op::Insert(i, v) => {
            let i = i.min(model.len());
            list.insert(i, &v);
            model.insert(i, v);
        }
        Op::Remove(v, count) => {
            let limit = if count == 0 {
                usize::MAX
            } else {
                count.unsigned_abs() as usize
            };
            let mut hits: Vec<usize> = (0..model.len()).filter(|&i| model[i] == v).collect();
            if count < 0 {
                hits.reverse();
            }
            hits.truncate(limit);
            hits.sort_unstable();
            for &i in hits.iter().rev() {
                model.remove(i);
            }
            assert_eq!(list.remove_matching(&v, count), hits.len());
        }
        Op::Trim(a, b) => {
            if a <= b && a < model.len() {
                let b = b.min(model.len() - 1);
                list.trim(Some((a, b)));
                *model = model.iter().skip(a).take(b - a + 1).cloned().collect();
            } else {
                list.trim(None);
                model.clear();
            }
        }
    }
}

fn check(list: &ListValue, model: &VecDeque<Vec<u8>>) {
    assert_eq!(list.len(), model.len());
    assert!(list.iter().eq(model.iter().map(Vec::as_slice)));
    assert!(list.iter().rev().eq(model.iter().rev().map(Vec::as_slice)));
    for (i, e) in model.iter().enumerate() {
        assert_eq!(list.get(i), Some(e.as_slice()));
    }
    assert_eq!(list.get(model.len()), None);
    let payload: usize = model.iter().map(Vec::len).sum();
    if payload > 8192 {
        assert_eq!(list.encoding(), "quicklist", "past the 8 KB limit");
    }
    if payload + 3 * model.len() < 2048 {
        assert_eq!(list.encoding(), "listpack", "well within half the limit");
    }
    assert!(list.mem() >= payload, "every element counts");
    if model.is_empty() {
        assert_eq!(list.mem(), 0, "an emptied list holds nothing");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_list_behaves_as_a_deque(ops in prop::collection::vec(op(), 0..80)) {
        let mut list = ListValue::default();
        let mut model = VecDeque::new();
        for op in ops {
            apply(&mut list, &mut model, op);
            check(&list, &model);
        }
        // Equality ignores the encoding: a rebuilt copy is equal.
        let mut copy = ListValue::default();
        model.iter().for_each(|e| copy.push_back(e));
        prop_assert_eq!(&copy, &list);
    }
}

#[test]
fn a_list_turns_into_a_ring_buffer_past_the_limit_and_back_at_half() {
    let mut list = ListValue::default();
    let element = vec![b'x'; 100];
    while list.encoding() == "listpack" {
        list.push_back(&element);
        assert!(list.len() < 100, "converted by 8 KB");
    }
    // 8 KB / 103 bytes per entry: the 80th element crosses it.
    assert_eq!(list.len(), 80);
    while list.encoding() == "quicklist" {
        list.pop_front();
    }
    assert_eq!(list.len(), 39, "back to packed at half the limit");
    while list.pop_back().is_some() {}
    assert_eq!(list.mem(), 0);
}

/// Through the store: a list that grows past the packed limit, shrinks back into it and is
/// emptied leaves nothing accounted, whatever encoding each change happened in.
#[test]
fn the_store_accounts_a_list_through_both_encodings_back_to_zero() {
    use dcache_store::{Kind, Store, StoreConfig};
    const NOW: u64 = 1_780_272_000_000;
    let store = Store::new(StoreConfig::default().shards(2));
    let key = store.key(b"queue");
    let change = |f: &dyn Fn(&mut ListValue)| {
        let mut shard = store.lock(&key);
        let mut m = shard.modify(&key, NOW, Some(Kind::List)).unwrap();
        f(m.list_mut().unwrap());
    };
    change(&|l| l.push_all(End::Tail, (0..200).map(|_| &[b'x'; 100][..])));
    let ring = store.used_memory();
    assert!(ring > 200 * 100, "every element counts: {ring}");
    change(&|l| {
        assert_eq!(l.encoding(), "quicklist");
        l.trim(Some((0, 9)));
        assert_eq!(l.encoding(), "listpack");
    });
    assert!(store.used_memory() < ring / 10);
    change(&|l| l.push_front(b"1"));
    change(&|l| assert_eq!(l.remove_matching(&[b'x'; 100], 0), 10));
    change(&|l| assert_eq!(l.pop_back().as_deref(), Some(&b"1"[..])));
    assert_eq!((store.used_memory(), store.len()), (0, 0));
}
