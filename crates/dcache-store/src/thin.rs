//! A thin owned byte buffer: what `Box<[u8]>` is, in 12 bytes instead of 16.
//!
//! ```text
//!   ThinBytes (12 bytes, aligned to 4)
//!   ┌──────────────────┬──────────┐
//!   │ ptr: NonNull<u8> │ len: u32 │ ──► [ len bytes, from the global allocator ]
//!   └──────────────────┴──────────┘
//! ```
//!
//! Why it exists: an [`crate::entry::Entry`] is 32 bytes in the shard's slab, one per key, and
//! a boxed slice's 16-byte fat pointer left no room for the key's position in its cluster slot's
//! list. A 32-bit length (entries are bounded well below 4 GiB: keys and `proto-max-bulk-len`
//! both stop at 2^30) and packing to 4-byte alignment free those four bytes, so that the slot
//! index needs no position table beside the slab (4 bytes a key).
//!
//! Why `unsafe`: the standard library has no owned slice with a narrower length, so this module
//! allocates, reads and frees the bytes itself through `std::alloc` (the global allocator, so
//! sizes and size classes are those of a `Box<[u8]>` of the same length). The invariants, relied
//! on by every `unsafe` block below:
//!
//! - `len == 0`: `ptr` is dangling (never read through for more than zero bytes, never freed);
//! - `len > 0`: `ptr` is the start of a live allocation of exactly `len` bytes with alignment 1,
//!   owned by this value alone, every byte initialised.
//!
//! `ptr` is non-null either way, which leaves `Option<ThinBytes>` (and `Option<Entry>`) a niche.
//! The struct is packed, so no reference to its fields is ever taken: they are read by value.
//!
//! The tests (`thin/tests.rs`) count every allocation and free; they and the rest of the crate's
//! tests also pass under AddressSanitizer (`RUSTFLAGS=-Zsanitizer=address cargo +nightly test -p
//! dcache-store --tests --target x86_64-unknown-linux-gnu`), which catches a read past the end
//! or a double free here.

use std::alloc::{self, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// The longest buffer: its length is a `u32`.
pub(crate) const MAX_LEN: usize = u32::MAX as usize;

/// An owned, fixed-length byte buffer (see the module docs).
#[repr(C, packed(4))]
pub(crate) struct ThinBytes {
    ptr: NonNull<u8>,
    len: u32,
}

// SAFETY: a `ThinBytes` owns its allocation exclusively, as a `Box<[u8]>` does, and has no
// interior mutability: moving one to another thread moves the only owner, and a shared
// reference only reads. The same reasons make `Box<[u8]>` `Send` and `Sync`.
unsafe impl Send for ThinBytes {}
// SAFETY: see `Send` above.
unsafe impl Sync for ThinBytes {}

impl ThinBytes {
    /// An empty buffer; allocates nothing.
    pub(crate) const fn empty() -> Self {
        Self {
            ptr: NonNull::dangling(),
            len: 0,
        }
    }

    /// One buffer holding `parts` one after the other, in one allocation of exactly their total
    /// length (none when it is 0).
    ///
    /// # Panics
    ///
    /// When the total is over [`MAX_LEN`] (callers bound their parts far below it). An
    /// allocation failure aborts, as it does for a `Box`.
    pub(crate) fn concat(parts: &[&[u8]]) -> Self {
        let total = parts
            .iter()
            .try_fold(0usize, |sum, part| sum.checked_add(part.len()))
            .filter(|&total| total <= MAX_LEN)
            .expect("a buffer of at most u32::MAX bytes");
        if total == 0 {
            return Self::empty();
        }
        let layout = layout(total);
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        let mut at = 0;
        for part in parts {
            // SAFETY: the parts' lengths sum to `total`, so `at + part.len() <= total` stays in
            // the new allocation, which no borrowed part can overlap.
            unsafe {
                ptr.as_ptr()
                    .add(at)
                    .copy_from_nonoverlapping(part.as_ptr(), part.len());
            }
            at += part.len();
        }
        debug_assert_eq!(at, total);
        Self {
            ptr,
            len: total as u32,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }
}

/// The layout of a buffer of `len` bytes: what it was allocated with and is freed with.
fn layout(len: usize) -> Layout {
    Layout::array::<u8>(len).expect("at most u32::MAX bytes fit a layout")
}

impl Deref for ThinBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: by the invariants, `len` initialised bytes at `ptr` (or zero bytes at a
        // dangling, non-null, aligned pointer), borrowed for as long as `self` is.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len()) }
    }
}

impl DerefMut for ThinBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow exclusive, and the allocation is
        // owned by this value alone.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }
}

impl Drop for ThinBytes {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: a non-empty buffer's `ptr` came from `alloc::alloc` with this same layout
            // (its length never changes) and is freed only here, once.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), layout(self.len())) }
        }
    }
}

impl Clone for ThinBytes {
    fn clone(&self) -> Self {
        Self::concat(&[self])
    }
}

impl Default for ThinBytes {
    fn default() -> Self {
        Self::empty()
    }
}

impl From<&[u8]> for ThinBytes {
    fn from(bytes: &[u8]) -> Self {
        Self::concat(&[bytes])
    }
}

impl PartialEq for ThinBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for ThinBytes {}

impl std::fmt::Debug for ThinBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests;
