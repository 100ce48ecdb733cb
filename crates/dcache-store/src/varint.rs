//! LEB128 varints (7 bits a byte, low bits first, the top bit set on every byte but the last):
//! the lengths and counts of the compact forms of sets, sorted sets and hashes, and of the
//! inline header, written and read here only.

/// The bytes of the varint for `n`.
pub(crate) fn len(n: usize) -> usize {
    ((usize::BITS - n.leading_zeros()) as usize)
        .div_ceil(7)
        .max(1)
}

/// Reads a varint forwards from `at`: `(value, where it ends)`.
pub(crate) fn read(buf: &[u8], mut at: usize) -> (usize, usize) {
    let (mut n, mut shift) = (0usize, 0);
    loop {
        let b = buf[at];
        at += 1;
        n |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return (n, at);
        }
        shift += 7;
    }
}

/// Appends the varint for `n`.
pub(crate) fn push(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_width_round_trips_in_the_length_it_says() {
        for n in [0, 1, 127, 128, 16_383, 16_384, usize::MAX >> 1, usize::MAX] {
            let mut out = Vec::new();
            super::push(&mut out, n);
            assert_eq!(out.len(), super::len(n), "{n}");
            assert_eq!(super::read(&out, 0), (n, out.len()), "{n}");
        }
    }
}
