//! The packed form of a small list: its elements in one allocation, each as
//! `[length as LEB128 | bytes | the same LEB128 bytes reversed]`, so that the first element is
//! read from the front and the last from the back without an index. Every operation but those
//! at the ends walks the bytes, which the limits keep small (8 KB by default).

use crate::memory::alloc_size;

/// A packed list: the bytes and the number of elements.
#[derive(Clone, Default)]
pub(super) struct Packed {
    bytes: Vec<u8>,
    len: usize,
}

fn write_leb(out: &mut [u8], mut n: usize) {
    for byte in out.iter_mut() {
        *byte = (n & 0x7f) as u8;
        n >>= 7;
        if n != 0 {
            *byte |= 0x80;
        }
    }
}

/// Reads a length forwards from `bytes[at..]`: `(length, bytes it took)`.
fn read_leb(bytes: &[u8], at: usize) -> (usize, usize) {
    let (mut n, mut shift, mut i) = (0usize, 0, at);
    loop {
        let b = bytes[i];
        n |= usize::from(b & 0x7f) << shift;
        i += 1;
        if b & 0x80 == 0 {
            return (n, i - at);
        }
        shift += 7;
    }
}

/// Reads a length backwards from the trailer that ends at `end`: `(length, bytes it took)`.
fn read_leb_back(bytes: &[u8], end: usize) -> (usize, usize) {
    let (mut n, mut shift, mut i) = (0usize, 0, end);
    loop {
        i -= 1;
        let b = bytes[i];
        n |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return (n, end - i);
        }
        shift += 7;
    }
}

/// Bytes one element takes.
fn entry_size(len: usize) -> usize {
    2 * crate::varint::len(len) + len
}

/// Writes `element`'s entry into `out`, which is [`entry_size`] bytes long.
fn encode_into(out: &mut [u8], element: &[u8]) {
    let l = crate::varint::len(element.len());
    write_leb(&mut out[..l], element.len());
    out[l..l + element.len()].copy_from_slice(element);
    let (head, tail) = out.split_at_mut(l + element.len());
    tail.copy_from_slice(&head[..l]);
    tail.reverse();
}

/// A packed list's bytes, borrowed: from an owned [`Packed`] or from an entry that holds its
/// list inline. Every read of the packed form is written here, once.
#[derive(Clone, Copy)]
pub(crate) struct PackedRef<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) len: usize,
}

impl<'a> PackedRef<'a> {
    /// The element starting at byte `at`: `(its bytes, where the next starts)`.
    fn at(self, at: usize) -> (&'a [u8], usize) {
        let (len, l) = read_leb(self.bytes, at);
        let start = at + l;
        (&self.bytes[start..start + len], start + len + l)
    }

    /// Where element `index` starts (`index` may be the length: the end).
    fn offset(self, index: usize) -> usize {
        if index >= self.len {
            return self.bytes.len();
        }
        if index <= self.len / 2 {
            let mut at = 0;
            for _ in 0..index {
                at = self.at(at).1;
            }
            at
        } else {
            let mut end = self.bytes.len();
            for _ in index..self.len {
                let (len, l) = read_leb_back(self.bytes, end);
                end -= len + 2 * l;
            }
            end
        }
    }

    pub(crate) fn get(self, index: usize) -> Option<&'a [u8]> {
        (index < self.len).then(|| self.at(self.offset(index)).0)
    }

    pub(crate) fn iter(self) -> Iter<'a> {
        Iter {
            bytes: self.bytes,
            front: 0,
            back: self.bytes.len(),
            left: self.len,
        }
    }
}

impl Packed {
    /// A packed list of `len` elements whose encoding is `bytes` (as [`Packed::bytes`] gave).
    pub(super) fn from_bytes(bytes: &[u8], len: usize) -> Self {
        Self {
            bytes: bytes.to_vec(),
            len,
        }
    }

    pub(super) fn as_ref(&self) -> PackedRef<'_> {
        PackedRef {
            bytes: &self.bytes,
            len: self.len,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn mem(&self) -> usize {
        if self.bytes.capacity() == 0 {
            0
        } else {
            alloc_size(self.bytes.capacity())
        }
    }

    pub(super) fn insert(&mut self, index: usize, element: &[u8]) {
        let at = self.as_ref().offset(index);
        self.make_room(at, at, entry_size(element.len()));
        encode_into(&mut self.bytes[at..at + entry_size(element.len())], element);
        self.len += 1;
    }

    /// Makes `bytes[at..end]` `size` bytes long, moving what follows, without a temporary
    /// buffer; growth is exact, as a listpack reallocates: a packed list holds no spare room to
    /// count. The new bytes are to be written by the caller.
    fn make_room(&mut self, at: usize, end: usize, size: usize) {
        let old = self.bytes.len();
        let new = old - (end - at) + size;
        if new > old {
            self.bytes.reserve_exact(new - old);
            self.bytes.resize(new, 0);
        }
        self.bytes.copy_within(end..old, at + size);
        self.bytes.truncate(new);
    }

    pub(super) fn remove(&mut self, index: usize) -> Option<Box<[u8]>> {
        if index >= self.len {
            return None;
        }
        let at = self.as_ref().offset(index);
        let (element, next) = self.as_ref().at(at);
        let element: Box<[u8]> = element.into();
        self.bytes.drain(at..next);
        self.len -= 1;
        Some(element)
    }

    pub(super) fn replace(&mut self, index: usize, element: &[u8]) {
        let at = self.as_ref().offset(index);
        let next = self.as_ref().at(at).1;
        let size = entry_size(element.len());
        self.make_room(at, next, size);
        encode_into(&mut self.bytes[at..at + size], element);
    }

    /// Gives spare room back once a quarter of the allocation is unused.
    pub(super) fn shrink(&mut self) {
        if self.bytes.capacity() - self.bytes.len() > self.bytes.capacity() / 4 {
            self.bytes.shrink_to_fit();
        }
    }

    pub(super) fn iter(&self) -> Iter<'_> {
        self.as_ref().iter()
    }
}

/// Head to tail over a packed list, from either end.
pub(crate) struct Iter<'a> {
    bytes: &'a [u8],
    front: usize,
    back: usize,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let (len, l) = read_leb(self.bytes, self.front);
        let start = self.front + l;
        self.front = start + len + l;
        self.left -= 1;
        Some(&self.bytes[start..start + len])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let (len, l) = read_leb_back(self.bytes, self.back);
        let end = self.back - l;
        self.back = end - len - l;
        self.left -= 1;
        Some(&self.bytes[end - len..end])
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_of_every_size_read_back_from_both_ends() {
        let mut p = Packed::default();
        let sizes = [0, 1, 127, 128, 300, 16383, 16384, 70000];
        for &n in &sizes {
            p.insert(p.len(), &vec![b'x'; n]);
        }
        let forward: Vec<usize> = p.iter().map(<[u8]>::len).collect();
        let backward: Vec<usize> = p.iter().rev().map(<[u8]>::len).collect();
        assert_eq!(forward, sizes);
        assert_eq!(backward, sizes.iter().rev().copied().collect::<Vec<_>>());
        for (i, &n) in sizes.iter().enumerate() {
            assert_eq!(p.as_ref().get(i).map(<[u8]>::len), Some(n));
        }
    }
}
