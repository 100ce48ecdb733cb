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
    // Members of lengths that fit the head (0, 8, 14), and longer ones whose varints take 1, 2
    // and 3 bytes.
    let members: Vec<Vec<u8>> = [0usize, 8, 13, 126, 127, 200, 16_400]
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
    // An entry is its head, its member and its score's bytes: none for an integer 0 to 7, then
    // the zigzag bytes (-128 to 127 in one, -32768 to 32767 in two, up to seven), eight for any
    // other score (an integer past seven zigzag bytes too).
    for (score, bytes) in [
        (0.0, 0),
        (-0.0, 0),
        (4.0, 0),
        (7.0, 0),
        (8.0, 1),
        (-1.0, 1),
        (127.0, 1),
        (-128.0, 1),
        (128.0, 2),
        (-32768.0, 2),
        (32768.0, 3),
        (2f64.powi(55) - 4.0, 7),
        (-(2f64.powi(55)), 7),
        (2f64.powi(55), 8),
        (-(2f64.powi(55)) - 8.0, 8),
        (0.5, 8),
    ] {
        assert_eq!(packed_len(8, score), 1 + 8 + bytes, "{score}");
    }
    // A member of 15 bytes or more has its length in a varint after the head.
    assert_eq!(packed_len(14, 1.0), 1 + 14);
    assert_eq!(packed_len(15, 1.0), 1 + 1 + 15);
    assert_eq!(packed_len(127, 1.0), 1 + 1 + 127);
    assert_eq!(packed_len(128, 1.0), 1 + 2 + 128);
}

/// The load issue 11 measures (a million sets of five 8-byte members scored 0 to 4, keys of 12
/// bytes): each entry is a head byte and the member, so the set is 5 × 9 = 45 bytes, and its
/// inline body (a tag and a one-byte count before them) 47. With the key that is 59 bytes of
/// entry data: the allocator's 64-byte class with five to spare (a score tag and a back-length
/// per entry, the format before, made it 73: the 80-byte class).
#[test]
fn five_short_members_with_small_scores_take_a_head_byte_each() {
    let mut z = ZSetValue::default();
    for i in 0..5u32 {
        z.insert(format!("m{i:07}").as_bytes(), f64::from(4 - i));
    }
    let (bytes, len) = z.view().packed_parts().expect("compact");
    assert_eq!((bytes.len(), len), (45, 5));
    assert_eq!(z.mem(), alloc_size(45));
    let (header, body) = crate::inline::body_of(crate::Value::ZSet(z.view())).expect("inline");
    let inline = header.bytes().len() + body.len();
    assert_eq!(inline, 47);
    assert_eq!(alloc_size(12 + inline), 64, "a 12-byte key's entry data");
    assert_eq!(
        owned(z.iter()),
        (0..5u32)
            .rev()
            .map(|i| (format!("m{i:07}").into_bytes(), f64::from(4 - i)))
            .collect::<Vec<_>>()
    );
}

/// Every range of ranks read forwards, backwards, and from both ends in turn.
fn check_every_range(z: &ZSetValue, want: &[(Vec<u8>, f64)]) {
    let n = want.len();
    for a in 0..=n {
        for b in a..=n + 1 {
            let part = &want[a..b.min(n)];
            assert_eq!(owned(z.range_by_rank(a, b)), part, "{a}..{b}");
            let mut back = owned(z.range_by_rank(a, b).rev());
            back.reverse();
            assert_eq!(back, part, "{a}..{b} reversed");
            // Alternating ends, starting from either.
            for from_back in [false, true] {
                let mut it = z.range_by_rank(a, b);
                let (mut front, mut tail) = (Vec::new(), Vec::new());
                let mut turn = from_back;
                loop {
                    assert_eq!(it.len(), part.len() - front.len() - tail.len());
                    let next = if turn { it.next_back() } else { it.next() };
                    let Some((m, s)) = next else { break };
                    if turn {
                        tail.push((m.to_vec(), s));
                    } else {
                        front.push((m.to_vec(), s));
                    }
                    turn = !turn;
                }
                assert!(it.next().is_none() && it.next_back().is_none());
                tail.reverse();
                front.extend(tail);
                assert_eq!(front, part, "{a}..{b} from both ends");
            }
        }
    }
    // Partition points by member within a score, and by a score between two.
    for (m, s) in want {
        let below = z.partition_point(|x, y| order((y, x), (*s, m.as_slice())) == Ordering::Less);
        assert_eq!(Some(below), z.rank(m));
        let at_most = z.partition_point(|_, y| y <= *s);
        assert_eq!(at_most, want.iter().filter(|(_, y)| y <= s).count());
    }
}

/// Members whose lengths sit on the head's edges: empty, one byte, the longest the head holds
/// (14), the first that needs a varint (15, 16), and a long one (200, past the default limit).
fn edge_member(i: u8) -> Vec<u8> {
    let len = [0, 1, 14, 15, 16, 200][usize::from(i % 6)];
    let fill = b'a' + i / 6 % 6;
    let mut m = vec![fill; len];
    if let Some(last) = m.last_mut() {
        // Members of a length differ in their last byte too, so that ties by member matter.
        *last = b'0' + i / 6 % 6;
    }
    m
}

fn edge_score() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-10i32..20).prop_map(f64::from),
        1 => Just(-0.0),
        2 => (-(1i64 << 40)..(1i64 << 40)).prop_map(|v| v as f64),
        1 => prop_oneof![
            Just(2f64.powi(55) - 4.0),
            Just(2f64.powi(55)),
            Just(-(2f64.powi(55))),
            Just(-(2f64.powi(55)) - 8.0),
            Just(i64::MAX as f64),
            Just(i64::MIN as f64),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MIN_POSITIVE),
            Just(1e300),
        ],
        2 => (-1e6f64..1e6).prop_map(|f| (f * 8.0).round() / 8.0 + 0.125),
    ]
}

#[derive(Debug, Clone)]
enum EdgeOp {
    Insert(u8, f64),
    Remove(u8),
    Compact,
}

fn edge_op() -> impl Strategy<Value = EdgeOp> {
    prop_oneof![
        6 => (0u8..36, edge_score()).prop_map(|(m, s)| EdgeOp::Insert(m, s)),
        2 => (0u8..36).prop_map(EdgeOp::Remove),
        1 => Just(EdgeOp::Compact),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Inserts, score updates and removals of members on the head's length edges, with scores
    /// in every code (small, zigzag of each width, float, -0), against the model: every range
    /// both ways, ranks, partition points, and the set moved into the large form and back.
    #[test]
    fn edge_members_and_scores_behave_as_the_model(
        ops in proptest::collection::vec(edge_op(), 1..120),
        entries in 0usize..40,
        value in prop_oneof![Just(14usize), Just(64), Just(300)],
    ) {
        let limits = ZSetLimits { entries, value };
        let mut z = ZSetValue::default();
        let mut model = BTreeMap::new();
        for op in ops {
            match op {
                EdgeOp::Insert(m, s) => {
                    let m = edge_member(m);
                    let new = z.insert_with(&m, s, limits);
                    prop_assert_eq!(new, model.insert(m, s).is_none());
                }
                EdgeOp::Remove(m) => {
                    let m = edge_member(m);
                    prop_assert_eq!(z.remove(&m), model.remove(&m).is_some());
                }
                EdgeOp::Compact => z.compact(limits),
            }
        }
        let want = sorted(&model);
        check(&z, &model);
        check_every_range(&z, &want);
        // Into the compact form whatever the sizes, and from it into the large form.
        let mut compact = z.clone();
        compact.compact(ZSetLimits { entries: usize::MAX, value: usize::MAX });
        prop_assert!(compact.is_listpack());
        check(&compact, &model);
        check_every_range(&compact, &want);
        let mut large = compact.clone();
        large.insert_with(b"extra", 0.0, ZSetLimits { entries: 0, value: 0 });
        prop_assert!(!large.is_listpack());
        prop_assert!(large.remove(b"extra"));
        check(&large, &model);
        check_every_range(&large, &want);
        // Through an owned copy of the borrowed compact bytes, as an inline body is read.
        let (bytes, len) = compact.view().packed_parts().expect("compact");
        prop_assert_eq!(ZSetRef::packed(bytes, len).into_owned(), compact);
    }
}

/// A range of a compact set, read either way, decodes no entry past its end (ZRANGE 0 9 of a
/// large set must not walk the rest): checked on bytes cut short right after the range, which
/// any walk further would run off.
#[test]
fn a_forward_range_reads_no_entry_past_its_end() {
    let mut z = ZSetValue::default();
    for i in 0..100u32 {
        z.insert(format!("m{i:03}").as_bytes(), f64::from(i));
    }
    let (bytes, len) = z.view().packed_parts().expect("compact");
    // Each entry is a head and 4 bytes of member, then none for scores 0-7 and one for 8 and 9.
    let cut = 8 * 5 + 2 * 6;
    let short = ZSetRef::packed(&bytes[..cut], len);
    let first: Vec<_> = short
        .range_by_rank(0, 10)
        .map(|(m, _)| m.to_vec())
        .collect();
    assert_eq!(first.len(), 10);
    assert_eq!(first[9], b"m009");
    let back: Vec<_> = short
        .range_by_rank(0, 10)
        .rev()
        .map(|(m, _)| m.to_vec())
        .collect();
    assert_eq!(back.first().map(Vec::as_slice), Some(&b"m009"[..]));
    assert_eq!(back.len(), 10);
}

/// ZPOPMAX and ZREVRANGE 0 0 of a packed set read one entry from the back: a walk, no
/// allocation. A longer reverse read then notes the starts once, and reads on correctly,
/// interleaved with forward reads.
#[test]
fn the_first_read_from_the_back_notes_nothing() {
    let mut z = ZSetValue::default();
    let limits = ZSetLimits {
        entries: 1000,
        value: 64,
    };
    for i in 0..300 {
        z.insert_with(format!("m{i:03}").as_bytes(), f64::from(i), limits);
    }
    let Iter::Packed(mut it) = z.iter() else {
        panic!("packed");
    };
    assert_eq!(it.next_back(), Some((&b"m299"[..], 299.0)));
    assert_eq!(it.starts.capacity(), 0, "nothing noted");
    assert_eq!(it.next(), Some((&b"m000"[..], 0.0)));
    assert_eq!(it.next_back(), Some((&b"m298"[..], 298.0)));
    assert_eq!(it.next(), Some((&b"m001"[..], 1.0)));
    let rest: Vec<f64> = it.rev().map(|(_, s)| s).collect();
    let want: Vec<f64> = (2..298).rev().map(f64::from).collect();
    assert_eq!(rest, want);
    let Iter::Packed(mut one) = z.range_by_rank(5, 6) else {
        panic!("packed");
    };
    assert_eq!(one.next_back(), Some((&b"m005"[..], 5.0)));
    assert_eq!(one.next_back(), None);
}

/// Whatever the limits, a packed set stays within `MAX_PACKED_LEN` bytes: the insert that would
/// pass it (a new member, or a score that takes more bytes) moves the set into the large form.
#[test]
fn a_packed_set_stays_within_the_safety_cap() {
    let limits = ZSetLimits {
        entries: usize::MAX,
        value: usize::MAX,
    };
    let member = |i: usize| format!("{i:0>1000}").into_bytes();
    let mut z = ZSetValue::default();
    let mut i = 0;
    while z.is_listpack() {
        let before = z.view().packed_parts().unwrap().0.len();
        z.insert_with(&member(i), 1.0, limits);
        if z.is_listpack() {
            assert!(z.view().packed_parts().unwrap().0.len() <= MAX_PACKED_LEN);
        } else {
            assert!(before + packed_len(1000, 1.0) > MAX_PACKED_LEN);
        }
        i += 1;
    }
    assert_eq!(z.len(), i);
    assert_eq!(z.score(&member(i - 1)), Some(1.0));
    // A score that needs more bytes, in a set at the cap.
    let mut z = ZSetValue::default();
    for i in 0.. {
        let len = z.view().packed_parts().unwrap().0.len();
        if len + packed_len(1000, 1.0) > MAX_PACKED_LEN {
            break;
        }
        z.insert_with(&member(i), 1.0, limits);
    }
    // Filled up with four-byte entries (a three-byte member, a score in its head).
    for i in 0.. {
        let len = z.view().packed_parts().unwrap().0.len();
        if len + 4 > MAX_PACKED_LEN {
            break;
        }
        z.insert_with(format!("{i:03}").as_bytes(), 1.0, limits);
    }
    assert!(z.is_listpack());
    let spare = MAX_PACKED_LEN - z.view().packed_parts().unwrap().0.len();
    assert!(spare < 8, "a float's eight bytes do not fit");
    z.insert_with(&member(0), 0.5, limits);
    assert!(!z.is_listpack());
    assert_eq!(z.score(&member(0)), Some(0.5));
    // Nor does a STORE command's result go compact past it.
    z.compact(limits);
    assert!(!z.is_listpack());
    z.remove(&member(0));
    z.remove(&member(1));
    z.compact(limits);
    assert!(z.is_listpack());
    assert!(z.view().packed_parts().unwrap().0.len() <= MAX_PACKED_LEN);
}
