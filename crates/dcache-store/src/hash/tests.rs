//! The hash against a plain model (fields and values in insertion order, and whether the hash
//! has left its compact form), in both encodings and across the conversion at either limit.

use super::*;

/// What the hash must hold: pairs in insertion order, and whether it is in the table now.
#[derive(Default)]
struct Model {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    table: bool,
}

impl Model {
    /// Redis's listpack rules: a long field or value, or a new field past `entries`, converts;
    /// nothing converts back.
    fn insert(&mut self, field: &[u8], value: &[u8], limits: HashLimits) -> bool {
        if field.len() > limits.value || value.len() > limits.value {
            self.table = true;
        }
        if let Some(pair) = self.pairs.iter_mut().find(|(f, _)| f == field) {
            pair.1 = value.to_vec();
            return false;
        }
        self.pairs.push((field.to_vec(), value.to_vec()));
        if self.pairs.len() > limits.entries {
            self.table = true;
        }
        true
    }

    fn remove(&mut self, field: &[u8]) -> bool {
        let before = self.pairs.len();
        self.pairs.retain(|(f, _)| f != field);
        self.pairs.len() != before
    }

    fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, v)| &v[..])
    }
}

fn pairs(it: Iter<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|(f, v)| (f.to_vec(), v.to_vec())).collect()
}

/// Everything the value answers, through the owned value and a view of its packed bytes alone
/// (as an inline entry reads it), compared with the model.
fn check(h: &HashValue, model: &Model) {
    assert_eq!(h.len(), model.pairs.len());
    assert_eq!(h.is_listpack(), !model.table, "the encoding");
    let views = [h.view()]
        .into_iter()
        .chain(
            h.view()
                .packed_parts()
                .map(|(buf, len)| HashRef::packed(buf, len)),
        )
        .collect::<Vec<_>>();
    for view in views {
        assert_eq!(view.len(), model.pairs.len());
        for (f, v) in &model.pairs {
            assert_eq!(view.get(f), Some(&v[..]));
        }
        let mut got = pairs(view.iter());
        assert_eq!(view.iter().len(), got.len());
        if view.is_listpack() {
            // Insertion order, as Redis's listpack.
            assert_eq!(got, model.pairs);
        } else {
            let mut want = model.pairs.clone();
            got.sort();
            want.sort();
            assert_eq!(got, want);
        }
    }
    let expected_mem = if h.is_listpack() {
        alloc_size(
            model
                .pairs
                .iter()
                .map(|(f, v)| {
                    crate::varint::len(f.len()) + f.len() + crate::varint::len(v.len()) + v.len()
                })
                .sum(),
        )
    } else {
        model.pairs.iter().map(|(f, v)| field_mem(f, v)).sum()
    };
    assert_eq!(h.mem(), expected_mem, "mem is a recount");
    assert_eq!(h.view().into_owned(), *h);
    assert_eq!(h.view().into_owned().is_listpack(), h.is_listpack());
}

/// xorshift64*, seeded and printed, so that a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

fn seed() -> u64 {
    std::env::var("DCACHE_HASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1
}

/// A field or value: mostly short and repeating, sometimes empty, binary, at the value limit, past
/// it, or long enough for a two-byte length.
fn bytes(rng: &mut Rng, limits: HashLimits) -> Vec<u8> {
    match rng.below(12) {
        0 => Vec::new(),
        1 => vec![0, 0xff, b'\r', b'\n', 0x80],
        2 => vec![b'v'; limits.value],
        3 if rng.below(4) == 0 => vec![b'w'; limits.value + 1],
        4 if rng.below(8) == 0 => vec![b'x'; 200],
        5 => rng.below(1000).to_string().into_bytes(),
        _ => format!("f{}", rng.below(40)).into_bytes(),
    }
}

#[test]
fn random_writes_match_the_model_in_both_forms() {
    let seed = seed();
    eprintln!("seed {seed} (replay with DCACHE_HASH_SEED={seed})");
    let mut rng = Rng(seed);
    for round in 0..300 {
        let limits = match round % 4 {
            0 => HashLimits::default(),
            1 => HashLimits {
                entries: 8,
                value: 16,
            },
            2 => HashLimits {
                entries: 0,
                value: 64,
            },
            // Long fields and values stay compact: lengths past 127 take two bytes.
            _ => HashLimits {
                entries: 32,
                value: 300,
            },
        };
        let (mut h, mut model) = (HashValue::default(), Model::default());
        check(&h, &model);
        for step in 0..60 {
            let field = bytes(&mut rng, limits);
            match rng.below(10) {
                0..=4 => {
                    let value = bytes(&mut rng, limits);
                    assert_eq!(
                        h.insert_with(&field, &value, limits),
                        model.insert(&field, &value, limits),
                        "round {round} step {step}"
                    );
                }
                5..=6 => assert_eq!(h.remove(&field), model.remove(&field)),
                // HINCRBY's read-modify-write: a value that changes length in place.
                7..=8 => {
                    let current = model
                        .get(&field)
                        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok());
                    if let Some(n) = current.or(model.get(&field).is_none().then_some(0)) {
                        let next = (n * 97 - 5).to_string();
                        assert_eq!(
                            h.insert_with(&field, next.as_bytes(), limits),
                            model.insert(&field, next.as_bytes(), limits)
                        );
                    }
                }
                _ => assert_eq!(h.get(&field), model.get(&field)),
            }
            check(&h, &model);
        }
    }
}

#[test]
fn the_compact_form_converts_at_each_limit_and_never_back() {
    let limits = HashLimits::default();
    let mut h = HashValue::default();
    for i in 0..128 {
        assert!(h.insert_with(format!("f{i}").as_bytes(), b"v", limits));
    }
    assert!(h.is_listpack(), "128 fields fit");
    // Changing a field at the limit adds nothing: it stays.
    assert!(!h.insert_with(b"f0", &[b'x'; 64], limits));
    assert!(h.is_listpack(), "64 bytes fit");
    assert!(h.insert_with(b"f128", b"v", limits));
    assert!(!h.is_listpack(), "the 129th field converts");
    for i in 0..129 {
        assert!(h.remove(format!("f{i}").as_bytes()));
    }
    assert!(h.is_empty() && !h.is_listpack(), "no way back on removal");

    for (field, value) in [(&[b'f'; 65][..], &b"v"[..]), (b"f", &[b'v'; 65])] {
        let mut h = HashValue::default();
        h.insert_with(b"a", b"1", limits);
        assert!(h.insert_with(field, value, limits));
        assert!(!h.is_listpack(), "65 bytes convert");
        assert_eq!(h.get(b"a"), Some(&b"1"[..]));
    }
    // A long value for a field that is there converts too, as Redis checks lengths first.
    let mut h = HashValue::default();
    h.insert_with(b"a", b"1", limits);
    assert!(!h.insert_with(b"a", &[b'v'; 65], limits));
    assert!(!h.is_listpack());
    // The default limits are Redis's.
    let mut h = HashValue::default();
    h.insert(b"a", &[b'v'; 64]);
    assert!(h.is_listpack());
    h.insert(b"a", &[b'v'; 65]);
    assert!(!h.is_listpack());
}

#[test]
fn the_compact_form_keeps_insertion_order_through_changes() {
    let mut h = HashValue::default();
    for (f, v) in [("z", "1"), ("a", "2"), ("m", "3"), ("b", "4")] {
        h.insert(f.as_bytes(), v.as_bytes());
    }
    // A value changed in place (longer, shorter, equal length); a field removed and added again
    // goes last, as in Redis's listpack.
    h.insert(b"a", &[b'x'; 60]);
    h.insert(b"m", b"");
    h.insert(b"z", b"9");
    assert!(h.remove(b"a"));
    h.insert(b"a", b"back");
    let fields: Vec<&[u8]> = h.iter().map(|(f, _)| f).collect();
    assert_eq!(fields, [&b"z"[..], b"m", b"b", b"a"]);
    assert_eq!(h.get(b"m"), Some(&b""[..]));
    assert_eq!(h.get(b"z"), Some(&b"9"[..]));
}

/// Whatever the limits, a compact hash stays within `MAX_PACKED_LEN` bytes (so that it fits one
/// effect): a new field, or a longer value, that would take it past moves it into the table.
#[test]
fn a_compact_hash_stays_within_the_safety_cap() {
    let limits = HashLimits {
        entries: usize::MAX,
        value: usize::MAX,
    };
    let value = vec![b'v'; 1000];
    let mut h = HashValue::default();
    let mut n = 0;
    while h.is_listpack() {
        h.insert_with(format!("f{n}").as_bytes(), &value, limits);
        n += 1;
        if let Some((buf, _)) = h.view().packed_parts() {
            assert!(buf.len() <= MAX_PACKED_LEN);
        }
    }
    assert!(n > 10 && h.len() == n);
    assert_eq!(h.get(format!("f{}", n - 1).as_bytes()), Some(&value[..]));
    // A value grown in place past the cap.
    let mut h = HashValue::default();
    for i in 0..(MAX_PACKED_LEN / 1100) {
        h.insert_with(format!("f{i}").as_bytes(), &value, limits);
    }
    assert!(h.is_listpack());
    h.insert_with(b"f0", &vec![b'w'; MAX_PACKED_LEN / 5], limits);
    assert!(!h.is_listpack());
    assert_eq!(h.get(b"f0").map(<[u8]>::len), Some(MAX_PACKED_LEN / 5));
    assert_eq!(h.len(), MAX_PACKED_LEN / 1100);
}
