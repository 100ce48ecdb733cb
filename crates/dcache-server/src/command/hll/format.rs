//! Redis's HyperLogLog string format, byte for byte, so that a key moves between Redis and dcache
//! with GET and SET and counts the same on both.
//!
//! ```text
//!  0    4    5     8               16
//!  HYLL enc  0 0 0 card (u64 LE, bit 63: cache invalid)  registers…
//!       enc 0: dense, 16384 registers of 6 bits, LSB first: 12288 bytes
//!       enc 1: sparse, run-length opcodes:
//!              00xxxxxx            ZERO   1-64 registers at 0
//!              01xxxxxx yyyyyyyy   XZERO  1-16384 registers at 0
//!              1vvvvvxx            VAL    1-4 registers at 1-32
//! ```
//!
//! An element is hashed with MurmurHash64A (seed `0xadc83b19`): the low 14 bits pick the
//! register, the position of the lowest set bit among the other 50 (plus one) is its value.
//! The count is Ertl's improved estimator, as Redis 5 and later compute it. A sparse value is
//! updated in place as Redis updates it (the same splits and merges of opcodes), and turns dense
//! when a register passes 32 or the value would pass `hll-sparse-max-bytes`: the bytes are then
//! the same as Redis's after the same commands.
//!
//! Every function takes any bytes: a corrupted value gives [`Corrupt`], never a panic.

/// Header bytes: magic, encoding, three unused bytes, the cached cardinality.
pub const HDR: usize = 16;
pub const REGISTERS: usize = 1 << P;
/// A dense value's exact length.
pub const DENSE_SIZE: usize = HDR + (REGISTERS * BITS).div_ceil(8);

const P: usize = 14;
/// Hash bits left after the index; a register holds at most `Q + 1`.
const Q: usize = 64 - P;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const SEED: u64 = 0xadc8_3b19;
/// 0.5 / ln(2).
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;

/// A value with the HLL header whose registers do not decode (Redis's `INVALIDOBJ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// Whether `bytes` is an HLL as Redis checks it: the header, a known encoding, and a dense
/// value's exact length. A sparse value's opcodes are checked only when read.
#[must_use]
pub fn is_hll(bytes: &[u8]) -> bool {
    bytes.len() >= HDR
        && &bytes[..4] == b"HYLL"
        && bytes[4] <= SPARSE
        && (bytes[4] != DENSE || bytes.len() == DENSE_SIZE)
}

/// An empty HLL, sparse: XZERO opcodes for every register. Its cache reads 0, valid.
#[must_use]
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 2 * REGISTERS.div_ceil(XZERO_MAX_LEN));
    v.extend_from_slice(b"HYLL");
    v.push(SPARSE);
    v.extend_from_slice(&[0; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(XZERO_MAX_LEN);
        push_xzero(&mut v, run);
        left -= run;
    }
    v
}

/// Whether the value is dense (otherwise sparse).
#[must_use]
pub fn is_dense(hll: &[u8]) -> bool {
    hll[4] == DENSE
}

/// The cached cardinality, when valid.
#[must_use]
pub fn cached(hll: &[u8]) -> Option<u64> {
    let card = u64::from_le_bytes(hll[8..16].try_into().expect("8 bytes"));
    (card >> 63 == 0).then_some(card)
}

/// Marks the cached cardinality stale.
pub fn invalidate(hll: &mut [u8]) {
    hll[15] |= 0x80;
}

/// Stores `card` as the cached cardinality (valid).
#[cfg(test)]
pub fn set_cached(hll: &mut [u8], card: u64) {
    hll[8..16].copy_from_slice(&card.to_le_bytes());
}

/// MurmurHash2, 64-bit, reading the input as little-endian words on every platform, as Redis's
/// copy of it does.
#[must_use]
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element updates and the value it offers: the low 14 bits of its hash, and
/// one more than the number of zeros above them before the first one (at most `Q + 1`).
#[must_use]
pub fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, SEED);
    let index = (hash as usize) & (REGISTERS - 1);
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

fn dense_get(registers: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = u16::from(registers[byte]);
    // The last register's next byte is past the end; Redis reads the string's terminating zero.
    let b1 = u16::from(registers.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) & u16::from(REGISTER_MAX)) as u8
}

fn dense_put(registers: &mut [u8], i: usize, value: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let v = u16::from(value);
    let max = u16::from(REGISTER_MAX);
    registers[byte] = ((u16::from(registers[byte]) & !(max << fb)) | (v << fb)) as u8;
    if let Some(next) = registers.get_mut(byte + 1) {
        *next = ((u16::from(*next) & !(max >> (8 - fb))) | (v >> (8 - fb))) as u8;
    }
}

/// Raises dense register `i` to `value`; true when it rose.
fn dense_set(hll: &mut [u8], i: usize, value: u8) -> bool {
    let registers = &mut hll[HDR..];
    if value > dense_get(registers, i) {
        dense_put(registers, i, value);
        true
    } else {
        false
    }
}

/// One sparse opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Zero(usize),
    XZero(usize),
    Val(u8, usize),
}

impl Op {
    /// The opcode at `at`. An XZERO's second byte past the end reads as 0, as Redis reads the
    /// string's terminating zero.
    fn at(bytes: &[u8], at: usize) -> Op {
        let b = bytes[at];
        if b & 0xc0 == 0 {
            Op::Zero(usize::from(b & 0x3f) + 1)
        } else if b & 0x80 == 0 {
            let low = bytes.get(at + 1).copied().unwrap_or(0);
            Op::XZero((usize::from(b & 0x3f) << 8 | usize::from(low)) + 1)
        } else {
            Op::Val(((b >> 2) & 0x1f) + 1, usize::from(b & 0x3) + 1)
        }
    }

    fn span(self) -> usize {
        match self {
            Op::Zero(n) | Op::XZero(n) | Op::Val(_, n) => n,
        }
    }

    fn width(self) -> usize {
        if matches!(self, Op::XZero(_)) { 2 } else { 1 }
    }
}

fn val_byte(value: u8, len: usize) -> u8 {
    0x80 | ((value - 1) << 2) | (len as u8 - 1)
}

fn push_xzero(out: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    out.push(0x40 | (l >> 8) as u8);
    out.push((l & 0xff) as u8);
}

/// A run of zeros as Redis writes it: ZERO up to 64, XZERO beyond.
fn push_zeros(out: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX_LEN {
        push_xzero(out, len);
    } else {
        out.push((len - 1) as u8);
    }
}

/// Decodes a sparse value's opcodes into one byte per register, or [`Corrupt`] when they do not
/// cover exactly the registers. `visit` gets each register run that is not zero.
fn sparse_runs(hll: &[u8], mut visit: impl FnMut(usize, usize, u8)) -> Result<(), Corrupt> {
    let mut idx = 0;
    let mut p = HDR;
    while p < hll.len() {
        let op = Op::at(hll, p);
        if let Op::Val(value, len) = op {
            if idx + len > REGISTERS {
                return Err(Corrupt);
            }
            visit(idx, len, value);
        }
        idx += op.span();
        p += op.width();
    }
    if idx == REGISTERS {
        Ok(())
    } else {
        Err(Corrupt)
    }
}

/// Turns a sparse value dense (the header, cache included, is kept).
///
/// # Errors
/// [`Corrupt`] when the opcodes do not decode; the value is left as it was.
pub fn to_dense(hll: &mut Vec<u8>) -> Result<(), Corrupt> {
    if is_dense(hll) {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR].copy_from_slice(&hll[..HDR]);
    dense[4] = DENSE;
    let registers = &mut dense[HDR..];
    sparse_runs(hll, |from, len, value| {
        for i in from..from + len {
            dense_put(registers, i, value);
        }
    })?;
    *hll = dense;
    Ok(())
}

/// Raises register `index` to `count`; true when it rose (the cache is then stale, which the
/// caller marks). A sparse value may turn dense.
///
/// # Errors
/// [`Corrupt`] for a sparse value whose opcodes do not decode.
pub fn set(hll: &mut Vec<u8>, index: usize, count: u8, max_sparse: usize) -> Result<bool, Corrupt> {
    if is_dense(hll) {
        Ok(dense_set(hll, index, count))
    } else {
        sparse_set(hll, index, count, max_sparse)
    }
}

/// Adds an element: [`set`] with its register and value.
///
/// # Errors
/// As [`set`].
pub fn add(hll: &mut Vec<u8>, element: &[u8], max_sparse: usize) -> Result<bool, Corrupt> {
    let (index, count) = pattern(element);
    set(hll, index, count, max_sparse)
}

fn promote(hll: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(hll)?;
    dense_set(hll, index, count);
    // Promotion happens only for a register that must rise: the value changed.
    Ok(true)
}

/// Redis's `hllSparseSet`, step for step: find the opcode that covers `index`; leave it, or
/// rewrite it as up to three opcodes; then merge equal VAL neighbours within five opcodes.
fn sparse_set(
    hll: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_sparse: usize,
) -> Result<bool, Corrupt> {
    if count > VAL_MAX_VALUE {
        return promote(hll, index, count);
    }
    let mut end = hll.len();
    let mut p = HDR;
    let mut first = 0;
    let mut prev = None;
    let mut found = None;
    while p < end {
        let op = Op::at(hll, p);
        if index < first + op.span() {
            found = Some(op);
            break;
        }
        prev = Some(p);
        p += op.width();
        first += op.span();
    }
    let Some(op) = found else {
        return Err(Corrupt);
    };
    let last = first + op.span() - 1;
    // A working copy with room past the end, zeroed as Redis's string terminator reads.
    let mut buf = std::mem::take(hll);
    buf.resize(end + 8, 0);
    let in_place = match op {
        Op::Val(old, _) if old >= count => {
            buf.truncate(end);
            *hll = buf;
            return Ok(false);
        }
        Op::Val(_, 1) | Op::Zero(1) => {
            buf[p] = val_byte(count, 1);
            true
        }
        _ => false,
    };
    if !in_place {
        let mut seq = Vec::with_capacity(5);
        match op {
            Op::Zero(_) | Op::XZero(_) => {
                if index != first {
                    push_zeros(&mut seq, index - first);
                }
                seq.push(val_byte(count, 1));
                if index != last {
                    push_zeros(&mut seq, last - index);
                }
            }
            Op::Val(current, _) => {
                if index != first {
                    seq.push(val_byte(current, index - first));
                }
                seq.push(val_byte(count, 1));
                if index != last {
                    seq.push(val_byte(current, last - index));
                }
            }
        }
        let old_len = op.width();
        let delta = seq.len() as isize - old_len as isize;
        if delta > 0 && end + delta as usize > max_sparse {
            buf.truncate(end);
            *hll = buf;
            return promote(hll, index, count);
        }
        let next = p + old_len;
        if delta != 0 && next < end {
            let moved = buf[next..end].to_vec();
            let to = (next as isize + delta) as usize;
            if buf.len() < to + moved.len() + 1 {
                buf.resize(to + moved.len() + 1, 0);
            }
            buf[to..to + moved.len()].copy_from_slice(&moved);
        }
        end = (end as isize + delta) as usize;
        if buf.len() < (p + seq.len()).max(end) + 1 {
            buf.resize((p + seq.len()).max(end) + 1, 0);
        }
        buf[end] = 0;
        buf[p..p + seq.len()].copy_from_slice(&seq);
    }
    // Merge adjacent VAL opcodes of the same value, scanning five opcodes from the one before.
    let mut p = prev.unwrap_or(HDR);
    let mut scan = 5;
    while p < end && scan > 0 {
        scan -= 1;
        match Op::at(&buf, p) {
            Op::XZero(_) => {
                p += 2;
                continue;
            }
            Op::Zero(_) => {
                p += 1;
                continue;
            }
            Op::Val(v1, l1) => {
                if p + 1 < end
                    && let Op::Val(v2, l2) = Op::at(&buf, p + 1)
                    && v1 == v2
                    && l1 + l2 <= VAL_MAX_LEN
                {
                    buf[p + 1] = val_byte(v1, l1 + l2);
                    buf.copy_within(p + 1..=end, p);
                    end -= 1;
                    buf[end] = 0;
                    continue;
                }
            }
        }
        p += 1;
    }
    buf.truncate(end);
    *hll = buf;
    Ok(true)
}

/// How many registers hold each value, for a single value.
///
/// # Errors
/// [`Corrupt`] for a sparse value whose opcodes do not cover exactly the registers.
pub fn histogram(hll: &[u8]) -> Result<[u32; 64], Corrupt> {
    let mut histo = [0u32; 64];
    if is_dense(hll) {
        for i in 0..REGISTERS {
            histo[usize::from(dense_get(&hll[HDR..], i))] += 1;
        }
        return Ok(histo);
    }
    // Redis counts every run, then checks the total: the histogram of a bad value is not used.
    let mut idx = 0;
    let mut p = HDR;
    while p < hll.len() {
        let op = Op::at(hll, p);
        match op {
            Op::Zero(n) | Op::XZero(n) => histo[0] = histo[0].wrapping_add(n as u32),
            Op::Val(v, n) => histo[usize::from(v)] = histo[usize::from(v)].wrapping_add(n as u32),
        }
        idx += op.span();
        p += op.width();
    }
    if idx == REGISTERS {
        Ok(histo)
    } else {
        Err(Corrupt)
    }
}

/// Raises each of `max` (one byte per register) to the value's register.
///
/// # Errors
/// [`Corrupt`] for a sparse value whose opcodes do not decode (`max` may be partly raised).
pub fn merge_into(max: &mut [u8], hll: &[u8]) -> Result<(), Corrupt> {
    if is_dense(hll) {
        for (i, m) in max.iter_mut().enumerate().take(REGISTERS) {
            *m = (*m).max(dense_get(&hll[HDR..], i));
        }
        return Ok(());
    }
    sparse_runs(hll, |from, len, value| {
        for m in &mut max[from..from + len] {
            *m = (*m).max(value);
        }
    })
}

/// The histogram of registers held one byte each.
#[must_use]
pub fn raw_histogram(max: &[u8]) -> [u32; 64] {
    let mut histo = [0u32; 64];
    for &v in max {
        histo[usize::from(v & 63)] += 1;
    }
    histo
}

/// Ertl's sigma (arXiv:1702.01284).
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

/// Ertl's tau (arXiv:1702.01284).
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if before == z {
            return z / 3.0;
        }
    }
}

/// The cardinality estimate from a register histogram, as Redis computes it (the same
/// operations in the same order, so the same rounding).
#[must_use]
pub fn estimate(histo: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(histo[Q + 1])) / m);
    for j in (1..=Q).rev() {
        z += f64::from(histo[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histo[0]) / m);
    (ALPHA_INF * m * m / z).round() as i64 as u64
}

/// The registers of a value, one byte each.
///
/// # Errors
/// As [`merge_into`].
#[cfg(test)]
pub fn registers(hll: &[u8]) -> Result<Vec<u8>, Corrupt> {
    let mut max = vec![0u8; REGISTERS];
    merge_into(&mut max, hll)?;
    Ok(max)
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
