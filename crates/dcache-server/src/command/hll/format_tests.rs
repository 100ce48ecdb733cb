//! The HLL format against a model (one byte per register): sparse updates, promotion, the
//! estimator's error bound, and corrupted values.

use super::*;

/// xorshift64*, seeded and printed so that a failure replays.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        eprintln!("seed {seed}");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn empty_dense() -> Vec<u8> {
    let mut hll = new_sparse();
    to_dense(&mut hll).unwrap();
    hll
}

/// Checks that every sparse opcode is one Redis writes: no VAL run past 4, values 1-32.
fn opcodes(hll: &[u8]) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut p = HDR;
    while p < hll.len() {
        let op = Op::at(hll, p);
        ops.push(op);
        p += op.width();
    }
    ops
}

#[test]
fn an_empty_hll_is_sparse_valid_and_counts_zero() {
    let hll = new_sparse();
    assert!(is_hll(&hll));
    assert!(!is_dense(&hll));
    assert_eq!(opcodes(&hll), [Op::XZero(REGISTERS)]);
    assert_eq!(estimate(&histogram(&hll).unwrap()), 0);
    assert_eq!(cached(&hll), Some(0));
    let dense = empty_dense();
    assert_eq!(dense.len(), DENSE_SIZE);
    assert!(is_hll(&dense));
    assert_eq!(estimate(&histogram(&dense).unwrap()), 0);
}

#[test]
fn the_cache_bit_marks_the_count_stale() {
    let mut hll = new_sparse();
    set_cached(&mut hll, 1234);
    assert_eq!(cached(&hll), Some(1234));
    invalidate(&mut hll);
    assert_eq!(cached(&hll), None);
}

#[test]
fn the_header_is_checked_as_redis_checks_it() {
    let hll = new_sparse();
    assert!(!is_hll(&hll[..HDR - 1]));
    let mut bad = hll.clone();
    bad[0] = b'h';
    assert!(!is_hll(&bad));
    let mut bad = hll.clone();
    bad[4] = 2;
    assert!(!is_hll(&bad));
    // A dense value must have the exact size; a sparse one only the header.
    let mut dense = empty_dense();
    dense.push(0);
    assert!(!is_hll(&dense));
    assert!(is_hll(&hll[..HDR]));
}

#[test]
fn sparse_updates_decode_to_the_model_and_match_dense() {
    let mut rng = Rng::new(0x5eed_0001);
    for round in 0..20 {
        let mut sparse = new_sparse();
        let mut dense = empty_dense();
        let mut model = vec![0u8; REGISTERS];
        // Registers close together, so that runs split and merge.
        let base = rng.below(REGISTERS - 64);
        for _ in 0..200 {
            let index = if rng.below(2) == 0 {
                base + rng.below(64)
            } else {
                rng.below(REGISTERS)
            };
            let value = 1 + rng.below(8) as u8;
            let rose = set(&mut sparse, index, value, usize::MAX).unwrap();
            assert_eq!(rose, value > model[index], "round {round}");
            assert_eq!(set(&mut dense, index, value, usize::MAX).unwrap(), rose);
            model[index] = model[index].max(value);
        }
        assert!(!is_dense(&sparse));
        assert_eq!(registers(&sparse).unwrap(), model, "round {round}");
        assert_eq!(registers(&dense).unwrap(), model);
        assert_eq!(histogram(&sparse), histogram(&dense));
        for op in opcodes(&sparse) {
            if let Op::Val(v, n) = op {
                assert!((1..=32).contains(&v) && (1..=4).contains(&n), "{op:?}");
            }
        }
        let mut promoted = sparse.clone();
        to_dense(&mut promoted).unwrap();
        assert_eq!(promoted[5..HDR], sparse[5..HDR], "the header is kept");
        assert_eq!(promoted, dense);
    }
}

#[test]
fn a_sparse_value_turns_dense_at_the_size_limit_or_a_large_register() {
    let mut rng = Rng::new(0x5eed_0002);
    let max = 300;
    let mut hll = new_sparse();
    let mut model = vec![0u8; REGISTERS];
    let mut turned = false;
    for _ in 0..2000 {
        let index = rng.below(REGISTERS);
        let value = 1 + rng.below(20) as u8;
        set(&mut hll, index, value, max).unwrap();
        model[index] = model[index].max(value);
        if is_dense(&hll) {
            turned = true;
            break;
        }
        assert!(hll.len() <= max, "a sparse value stays within the limit");
    }
    assert!(turned);
    assert_eq!(hll.len(), DENSE_SIZE);
    assert_eq!(registers(&hll).unwrap(), model);

    let mut hll = new_sparse();
    set(&mut hll, 5, 32, usize::MAX).unwrap();
    assert!(!is_dense(&hll), "32 fits a VAL opcode");
    set(&mut hll, 6, 33, usize::MAX).unwrap();
    assert!(is_dense(&hll), "33 does not");
    assert_eq!(registers(&hll).unwrap()[5..7], [32, 33]);
}

#[test]
fn dense_registers_do_not_disturb_their_neighbours() {
    let mut rng = Rng::new(0x5eed_0003);
    let mut hll = empty_dense();
    let mut model = vec![0u8; REGISTERS];
    for _ in 0..20000 {
        let index = rng.below(REGISTERS);
        let value = rng.below(64) as u8;
        set(&mut hll, index, value, 0).unwrap();
        model[index] = model[index].max(value);
    }
    // The last register's bits end the string exactly.
    set(&mut hll, REGISTERS - 1, 63, 0).unwrap();
    model[REGISTERS - 1] = 63;
    assert_eq!(hll.len(), DENSE_SIZE);
    assert_eq!(registers(&hll).unwrap(), model);
}

#[test]
fn the_estimate_is_within_redis_s_self_test_bound() {
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let mut sparse = new_sparse();
    let mut dense = empty_dense();
    let mut checkpoint = 1;
    for n in 1..=100_000u64 {
        let element = n.to_le_bytes();
        add(&mut sparse, &element, 3000).unwrap();
        add(&mut dense, &element, 3000).unwrap();
        if n == checkpoint {
            let count = estimate(&histogram(&dense).unwrap());
            assert_eq!(estimate(&histogram(&sparse).unwrap()), count, "at {n}");
            let max_err = if n == 10 {
                1
            } else {
                (relerr * 6.0 * n as f64).ceil() as u64
            };
            assert!(count.abs_diff(n) <= max_err, "{count} for {n}");
            checkpoint *= 10;
        }
    }
    assert!(is_dense(&sparse), "100000 elements do not fit 3000 bytes");
}

#[test]
fn the_pattern_takes_14_bits_of_index_and_counts_to_51() {
    let mut rng = Rng::new(0x5eed_0004);
    for _ in 0..1000 {
        let element = rng.next().to_le_bytes();
        let hash = murmur64a(&element, SEED);
        let (index, count) = pattern(&element);
        assert_eq!(index as u64, hash & 0x3fff);
        assert!((1..=51).contains(&count));
        // `count - 1` zeros above the index bits, then a one (or the 50 bits ran out).
        let rest = hash >> 14;
        assert_eq!(rest & ((1 << (count - 1)) - 1), 0);
        assert!(count == 51 || rest >> (count - 1) & 1 == 1);
    }
    // Different lengths take different tails.
    assert_ne!(murmur64a(b"abcdefgh", SEED), murmur64a(b"abcdefgh\0", SEED));
}

#[test]
fn corrupted_values_are_refused_and_never_panic() {
    let mut rng = Rng::new(0x5eed_0005);
    let mut sparse = new_sparse();
    for n in 0..300u32 {
        add(&mut sparse, &n.to_le_bytes(), 3000).unwrap();
    }
    let mut dense = sparse.clone();
    to_dense(&mut dense).unwrap();
    // A sparse value that covers too few or too many registers.
    let mut short = new_sparse();
    short.pop();
    assert_eq!(histogram(&short), Err(Corrupt));
    let mut long = new_sparse();
    long.push(0x00);
    assert_eq!(histogram(&long), Err(Corrupt));
    assert_eq!(registers(&long), Err(Corrupt));
    // An update finds its register before the bad part, as Redis's does; none is found in a
    // value without opcodes.
    assert_eq!(add(&mut long.clone(), b"x", 3000), Ok(true));
    assert_eq!(add(&mut sparse[..HDR].to_vec(), b"x", 3000), Err(Corrupt));
    assert_eq!(to_dense(&mut long.clone()), Err(Corrupt));
    assert_eq!(histogram(&sparse[..HDR]), Err(Corrupt));
    for _ in 0..3000 {
        let mut bytes = if rng.below(2) == 0 {
            sparse.clone()
        } else {
            dense.clone()
        };
        for _ in 0..1 + rng.below(4) {
            match if bytes.len() == HDR { 2 } else { rng.below(3) } {
                0 => {
                    let at = HDR + rng.below(bytes.len() - HDR);
                    bytes[at] = rng.next() as u8;
                }
                1 => bytes.truncate(HDR + rng.below(bytes.len() - HDR)),
                _ => bytes.push(rng.next() as u8),
            }
        }
        if !is_hll(&bytes) {
            continue;
        }
        let decoded = registers(&bytes);
        assert_eq!(histogram(&bytes).is_ok(), decoded.is_ok());
        if let Ok(h) = histogram(&bytes) {
            let _ = estimate(&h);
        }
        let mut copy = bytes.clone();
        for n in 0..20u32 {
            if add(&mut copy, &n.to_be_bytes(), 3000).is_err() {
                assert!(decoded.is_err(), "only a value that does not decode fails");
                break;
            }
        }
        let _ = to_dense(&mut bytes.clone());
    }
}
