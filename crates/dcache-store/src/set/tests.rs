//! The set against a model: a `BTreeSet` for the members, and Redis's conversion rules replayed
//! on the model for the encoding.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<u8>),
    Remove(Vec<u8>),
}

fn member() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Integers of every intset width, and text that only looks like one.
        (-40i64..40).prop_map(|v| v.to_string().into_bytes()),
        prop::sample::select(vec![
            "32767",
            "32768",
            "-32769",
            "2147483648",
            "-9223372036854775808",
            "9223372036854775807",
            "-0",
            "+1",
            "01",
            "1.5",
            "",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(b'a'..=b'e', 0..9),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => member().prop_map(Op::Insert),
        1 => member().prop_map(Op::Remove),
    ]
}

fn rank(e: SetEncoding) -> u8 {
    match e {
        SetEncoding::Intset => 0,
        SetEncoding::Listpack => 1,
        SetEncoding::Hashtable => 2,
    }
}

/// The encoding Redis 7.2 moves to when `member` is added to a set of `model` (which has not
/// got it) in `encoding`.
fn expected_after_insert(
    encoding: SetEncoding,
    model: &BTreeSet<Vec<u8>>,
    member: &[u8],
    limits: &SetLimits,
) -> SetEncoding {
    match encoding {
        SetEncoding::Intset if member_int(member).is_some() => {
            if model.len() + 1 > limits.max_intset_entries {
                SetEncoding::Hashtable
            } else {
                SetEncoding::Intset
            }
        }
        SetEncoding::Intset => {
            let longest = model.iter().map(Vec::len).max().unwrap_or(0);
            if model.len() < limits.max_listpack_entries
                && member.len() <= limits.max_listpack_value
                && longest <= limits.max_listpack_value
            {
                SetEncoding::Listpack
            } else {
                SetEncoding::Hashtable
            }
        }
        SetEncoding::Listpack => {
            if model.len() < limits.max_listpack_entries
                && member.len() <= limits.max_listpack_value
            {
                SetEncoding::Listpack
            } else {
                SetEncoding::Hashtable
            }
        }
        SetEncoding::Hashtable => SetEncoding::Hashtable,
    }
}

proptest! {
    #[test]
    fn behaves_like_a_set_and_converts_as_redis_does(
        ops in prop::collection::vec(op(), 0..200),
        intset in 0usize..12,
        entries in 0usize..10,
        value in 0usize..7,
    ) {
        let limits = SetLimits {
            max_intset_entries: intset,
            max_listpack_entries: entries,
            max_listpack_value: value,
        };
        let mut set = SetValue::default();
        let mut model = BTreeSet::new();
        // A listpack's order is insertion order: kept beside the model while it lasts.
        let mut order: Vec<Vec<u8>> = Vec::new();
        for op in ops {
            let before = set.encoding();
            match op {
                Op::Insert(m) => {
                    let expected = if model.contains(&m) {
                        before
                    } else {
                        expected_after_insert(before, &model, &m, &limits)
                    };
                    prop_assert_eq!(set.insert_with(&m, &limits), model.insert(m.clone()));
                    prop_assert_eq!(set.encoding(), expected);
                    if !order.contains(&m) {
                        order.push(m);
                    }
                }
                Op::Remove(m) => {
                    prop_assert_eq!(set.remove(&m), model.remove(&m));
                    prop_assert_eq!(set.encoding(), before);
                    order.retain(|o| *o != m);
                }
            }
            prop_assert!(rank(set.encoding()) >= rank(before), "never converts back");
            prop_assert_eq!(set.len(), model.len());
            let members: Vec<Vec<u8>> = set.iter().map(|m| m.to_vec()).collect();
            prop_assert_eq!(members.len(), set.iter().len());
            match set.encoding() {
                SetEncoding::Intset => {
                    let mut ints: Vec<i64> = model.iter().map(|m| member_int(m).unwrap()).collect();
                    ints.sort_unstable();
                    let want: Vec<Vec<u8>> = ints.iter().map(|v| v.to_string().into_bytes()).collect();
                    prop_assert_eq!(&members, &want);
                    prop_assert!(set.len() <= limits.max_intset_entries);
                }
                SetEncoding::Listpack => {
                    prop_assert_eq!(&members, &order);
                    prop_assert!(set.len() <= limits.max_listpack_entries);
                }
                SetEncoding::Hashtable => {
                    let got: BTreeSet<Vec<u8>> = members.iter().cloned().collect();
                    prop_assert_eq!(&got, &model);
                    let mem: usize = model.iter().map(|m| member_mem(m)).sum();
                    prop_assert_eq!(set.mem(), mem);
                }
            }
            if set.encoding() != SetEncoding::Hashtable {
                order.clone_from(&members);
            }
            for m in &model {
                prop_assert!(set.contains(m));
            }
            // Every position holds at most one member and together they hold them all.
            let streamed: BTreeSet<Vec<u8>> =
                (0..set.buckets()).filter_map(|i| set.bucket(i)).map(|m| m.to_vec()).collect();
            prop_assert_eq!(&streamed, &model);
        }
        if model.is_empty() {
            prop_assert_eq!(set.mem(), 0);
        }
    }
}

#[test]
fn intsets_widen_and_keep_their_order() {
    let mut set = SetValue::default();
    for v in ["5", "-3", "40000", "-3000000000", "7"] {
        assert!(set.insert(v.as_bytes()));
    }
    let members: Vec<String> = set
        .iter()
        .map(|m| String::from_utf8(m.to_vec()).unwrap())
        .collect();
    assert_eq!(members, ["-3000000000", "-3", "5", "7", "40000"]);
    assert_eq!(set.encoding(), SetEncoding::Intset);
    // Eight bytes each once one needs it.
    assert_eq!(set.mem(), alloc_size(5 * 8));
    assert!(set.contains(b"40000") && !set.contains(b"040000") && !set.contains(b"x"));
}

#[test]
fn creation_follows_the_first_member_and_the_hint() {
    let limits = SetLimits::default();
    let e = |first: &str, hint| SetValue::for_members(first.as_bytes(), hint, &limits).encoding();
    assert_eq!(e("1", 1), SetEncoding::Intset);
    assert_eq!(e("1", 512), SetEncoding::Intset);
    assert_eq!(e("1", 513), SetEncoding::Hashtable);
    assert_eq!(e("a", 128), SetEncoding::Listpack);
    assert_eq!(e("a", 129), SetEncoding::Hashtable);
    let mut set = SetValue::for_members(b"a", 3, &limits);
    set.insert_with(b"a", &limits);
    set.reserve(200, &limits);
    assert_eq!(set.encoding(), SetEncoding::Hashtable);
    assert!(set.contains(b"a"));
}

#[test]
fn members_print_like_redis_integers() {
    for v in [0, 1, -1, i64::MIN, i64::MAX, 10, -100] {
        assert_eq!(&*Member::int(v), v.to_string().as_bytes());
        assert_eq!(member_int(v.to_string().as_bytes()), Some(v));
    }
    for bad in ["-0", "+1", "01", "", "-", "1 ", "9223372036854775808"] {
        assert_eq!(member_int(bad.as_bytes()), None, "{bad}");
    }
}

/// Whatever the limits, a listpack or an intset stays within `MAX_PACKED_LEN` bytes (so that it
/// fits one effect): the member that would take it past moves the set into the table.
#[test]
fn packed_sets_stay_within_the_safety_cap() {
    let limits = SetLimits {
        max_intset_entries: usize::MAX,
        max_listpack_entries: usize::MAX,
        max_listpack_value: usize::MAX,
    };
    let mut s = SetValue::default();
    let mut n = 0;
    while s.encoding() != SetEncoding::Hashtable {
        s.insert_with(format!("{n:0>1000}").as_bytes(), &limits);
        n += 1;
        assert!(s.mem() <= alloc_size(MAX_PACKED_LEN) || s.encoding() == SetEncoding::Hashtable);
    }
    assert!(n > 10 && s.len() == n);
    assert!(s.contains(format!("{:0>1000}", n - 1).as_bytes()));
    // Eight-byte integers: the intset holds MAX_PACKED_LEN / 8 of them, then it is a table.
    let mut s = SetValue::default();
    let base = 1i64 << 40;
    for i in 0..(MAX_PACKED_LEN / 8) as i64 {
        s.insert_with((base + i).to_string().as_bytes(), &limits);
    }
    assert_eq!(s.encoding(), SetEncoding::Intset);
    s.insert_with(b"-1", &limits);
    assert_eq!(s.encoding(), SetEncoding::Hashtable);
    assert_eq!(s.len(), MAX_PACKED_LEN / 8 + 1);
}
