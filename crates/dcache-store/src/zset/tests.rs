//! The sorted set against a plain model (a map from member to score, sorted on demand), in both
//! encodings and across conversions.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// The model's order: what `iter` must give.
fn sorted(model: &BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
    let mut all: Vec<_> = model.iter().map(|(m, s)| (m.clone(), *s)).collect();
    all.sort_by(|a, b| order((a.1, &a.0), (b.1, &b.0)));
    all
}

fn owned<'a>(it: impl Iterator<Item = (&'a [u8], f64)>) -> Vec<(Vec<u8>, f64)> {
    it.map(|(m, s)| (m.to_vec(), s)).collect()
}

/// Everything the value answers, compared with the model.
fn check(z: &ZSetValue, model: &BTreeMap<Vec<u8>, f64>) {
    let want = sorted(model);
    assert_eq!(z.len(), want.len());
    assert_eq!(owned(z.iter()), want);
    assert_eq!(
        owned(z.iter().rev()),
        want.iter().rev().cloned().collect::<Vec<_>>()
    );
    for (rank, (m, s)) in want.iter().enumerate() {
        assert_eq!(z.score(m), Some(*s));
        assert_eq!(z.rank(m), Some(rank));
        assert_eq!(
            z.get_by_rank(rank).map(|(m, s)| (m.to_vec(), s)),
            Some((m.clone(), *s))
        );
        let below = z.partition_point(|_, x| x < *s);
        assert_eq!(below, want.iter().filter(|(_, x)| x < s).count());
    }
    let expected_mem = if z.is_listpack() {
        alloc_size(want.iter().map(|(m, s)| packed_len(m.len(), *s)).sum())
    } else {
        want.iter()
            .map(|(m, _)| alloc_size(m.len()) + NODE_OVERHEAD)
            .sum()
    };
    assert_eq!(z.mem(), expected_mem);
    // Ranges both ways from any start (a few, to keep it quick).
    let n = want.len();
    for (a, b) in [
        (0, n),
        (n / 3, n / 2 + 1),
        (1, n.saturating_sub(1)),
        (n, n + 5),
    ] {
        let b = b.min(n);
        let a = a.min(b);
        assert_eq!(owned(z.range_by_rank(a, b)), want[a..b].to_vec());
        assert_eq!(
            owned(z.range_by_rank(a, b).rev()),
            want[a..b].iter().rev().cloned().collect::<Vec<_>>()
        );
        let mut both = z.range_by_rank(a, b);
        let mut front = Vec::new();
        let mut back = Vec::new();
        while let Some(x) = both.next() {
            front.push((x.0.to_vec(), x.1));
            match both.next_back() {
                Some(x) => back.push((x.0.to_vec(), x.1)),
                None => break,
            }
        }
        back.reverse();
        front.extend(back);
        assert_eq!(front, want[a..b].to_vec());
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, i8),
    Remove(u8),
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), -4i8..4).prop_map(|(m, s)| Op::Insert(m, s)),
        3 => any::<u8>().prop_map(Op::Remove),
        1 => Just(Op::Compact),
    ]
}

fn member(m: u8) -> Vec<u8> {
    // Some long members, so that the value limit moves sets into the large form too; some past
    // 255 bytes, whose lengths take five bytes in the small form (compacted without limits).
    if m.is_multiple_of(34) {
        vec![m; 300]
    } else if m.is_multiple_of(17) {
        vec![m; 70]
    } else {
        format!("m{}", m % 60).into_bytes()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn behaves_as_the_model(ops in proptest::collection::vec(op(), 1..300), entries in 0usize..40) {
        let limits = ZSetLimits { entries, value: 64 };
        let mut z = ZSetValue::default();
        let mut model = BTreeMap::new();
        for op in ops {
            match op {
                Op::Insert(m, s) => {
                    let m = member(m);
                    let new = z.insert_with(&m, f64::from(s) / 2.0, limits);
                    prop_assert_eq!(new, model.insert(m, f64::from(s) / 2.0).is_none());
                }
                Op::Remove(m) => {
                    let m = member(m);
                    prop_assert_eq!(z.remove(&m), model.remove(&m).is_some());
                }
                Op::Compact => z.compact(limits),
            }
            if z.is_listpack() {
                prop_assert!(z.len() <= entries.max(model.len().min(entries)));
            }
        }
        check(&z, &model);
        let mut copy = z.clone();
        copy.compact(ZSetLimits { entries: usize::MAX, value: usize::MAX });
        prop_assert!(copy.is_listpack());
        prop_assert_eq!(&copy, &z);
        check(&copy, &model);
    }
}

#[test]
fn grows_past_either_limit_and_compacts_only_when_asked() {
    let limits = ZSetLimits::default();
    let mut z = ZSetValue::default();
    for i in 0..128 {
        z.insert_with(format!("m{i}").as_bytes(), f64::from(i), limits);
    }
    assert!(z.is_listpack());
    z.insert_with(b"m0", -1.0, limits);
    assert!(z.is_listpack(), "a new score for a member is no new entry");
    z.insert_with(b"one more", 0.0, limits);
    assert!(!z.is_listpack());
    z.remove(b"one more");
    assert!(!z.is_listpack(), "removing never converts back");
    z.compact(limits);
    assert!(z.is_listpack());
    z.insert_with(&[b'x'; 65], 0.0, limits);
    assert!(!z.is_listpack(), "a long member");
    assert!(!ZSetValue::for_size(129, 1, limits).is_listpack());
    assert!(!ZSetValue::for_size(1, 65, limits).is_listpack());
    assert!(ZSetValue::for_size(128, 64, limits).is_listpack());
    while let Some((m, _)) = z.get_by_rank(0).map(|(m, s)| (m.to_vec(), s)) {
        z.remove(&m);
    }
    assert_eq!((z.len(), z.mem()), (0, 0));
}

#[test]
fn signed_zero_sorts_as_zero_and_keeps_its_sign_in_the_large_form_only() {
    let mut z = ZSetValue::default();
    z.insert(b"b", -0.0);
    z.insert(b"a", 0.0);
    assert_eq!(z.score(b"b").map(f64::to_bits), Some(0.0f64.to_bits()));
    assert_eq!(
        owned(z.iter()),
        vec![(b"a".to_vec(), 0.0), (b"b".to_vec(), 0.0)]
    );
    let mut large = ZSetValue::for_size(1000, 1, ZSetLimits::default());
    large.insert(b"b", -0.0);
    large.insert(b"a", 0.0);
    assert_eq!(
        large.score(b"b").map(f64::to_bits),
        Some((-0.0f64).to_bits())
    );
    assert_eq!(large.rank(b"a"), Some(0));
}

#[test]
fn compact_scores_read_back_bit_for_bit_both_ways_and_integers_take_few_bytes() {
    let scores = [
        0.0,
        1.0,
        -1.0,
        63.0,
        -64.0,
        64.0,
        4.0,
        1.5,
        0.1,
        -2.5e-300,
        f64::MIN_POSITIVE,
        9_007_199_254_740_993.0,
        (1u64 << 53) as f64,
        i64::MAX as f64,
        i64::MIN as f64,
        1e300,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    // Members of lengths whose varints (and whose entries' back-lengths) take 1, 2 and 3 bytes.
    let members: Vec<Vec<u8>> = [0usize, 8, 126, 127, 200, 16_400]
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut m = vec![b'a' + i as u8; n];
            m.push(b'0');
            m
        })
        .collect();
    let mut z = ZSetValue::default();
    let mut model = BTreeMap::new();
    let limits = ZSetLimits {
        entries: 1000,
        value: 1 << 20,
    };
    for (i, &score) in scores.iter().enumerate() {
        let mut member = members[i % members.len()].clone();
        member.extend_from_slice(i.to_string().as_bytes());
        z.insert_with(&member, score, limits);
        model.insert(member, score);
    }
    assert!(z.is_listpack());
    check(&z, &model);
    // -0 is stored as 0 in the compact form, as Redis's listpack does.
    z.insert(b"negzero", -0.0);
    assert_eq!(z.score(b"negzero").map(f64::to_bits), Some(0));
    // An integer score costs its tag and its zigzag bytes; any other score eight bytes more.
    for (score, bytes) in [
        (0.0, 1),
        (-0.0, 1),
        (4.0, 2),
        (127.0, 2),
        (-128.0, 2),
        (128.0, 3),
        (0.5, 9),
    ] {
        assert_eq!(packed_len(8, score), 1 + 8 + bytes + 1, "{score}");
    }
}
