//! The buffer's tests count this thread's allocations through a wrapper around the system
//! allocator (installed for this crate's unit tests only): every buffer made must be freed once,
//! with the size it was allocated with, and an empty one must allocate nothing. Counters are per
//! thread, so tests running in parallel do not see each other's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use super::{MAX_LEN, ThinBytes};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    allocs: usize,
    frees: usize,
    /// Bytes allocated and not yet freed (freed with the size they were allocated with, else
    /// this drifts).
    live_bytes: isize,
    last_size: usize,
    largest: usize,
}

thread_local! {
    static COUNTS: Cell<Counts> = const {
        Cell::new(Counts { allocs: 0, frees: 0, live_bytes: 0, last_size: 0, largest: 0 })
    };
}

fn count(change: impl FnOnce(&mut Counts)) {
    // `try_with`: the allocator is also called while a thread's locals are being torn down.
    let _ = COUNTS.try_with(|c| {
        let mut counts = c.get();
        change(&mut counts);
        c.set(counts);
    });
}

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged; the counting touches only a
// const-initialised thread-local `Cell`, which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(|c| {
            c.allocs += 1;
            c.live_bytes += layout.size() as isize;
            c.last_size = layout.size();
            c.largest = c.largest.max(layout.size());
        });
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(|c| {
            c.frees += 1;
            c.live_bytes -= layout.size() as isize;
        });
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(|c| {
            c.allocs += 1;
            c.frees += 1;
            c.live_bytes += new_size as isize - layout.size() as isize;
            c.last_size = new_size;
            c.largest = c.largest.max(new_size);
        });
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn counts() -> Counts {
    COUNTS.with(Cell::get)
}

/// What `f` allocated and freed on this thread (nothing else here allocates meanwhile).
fn delta(f: impl FnOnce()) -> Counts {
    let before = counts();
    f();
    let after = counts();
    Counts {
        allocs: after.allocs - before.allocs,
        frees: after.frees - before.frees,
        live_bytes: after.live_bytes - before.live_bytes,
        last_size: after.last_size,
        largest: after.largest,
    }
}

/// A seeded xorshift, printed by the tests that use it (STYLE 19).
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

#[test]
fn it_is_twelve_bytes_with_a_niche() {
    assert_eq!(std::mem::size_of::<ThinBytes>(), 12);
    assert_eq!(std::mem::size_of::<Option<ThinBytes>>(), 12);
    assert_eq!(std::mem::align_of::<ThinBytes>(), 4);
}

#[test]
fn an_empty_buffer_allocates_nothing() {
    let d = delta(|| {
        for b in [
            ThinBytes::empty(),
            ThinBytes::default(),
            ThinBytes::concat(&[]),
            ThinBytes::concat(&[b"", b"", b""]),
            ThinBytes::from(&b""[..]),
        ] {
            assert!(b.is_empty());
            assert_eq!(b.len(), 0);
            assert_eq!(&*b, b"");
            let mut c = b.clone();
            assert_eq!(&mut *c, b"");
            assert_eq!(c, b);
        }
    });
    assert_eq!((d.allocs, d.frees, d.live_bytes), (0, 0, 0));
}

#[test]
fn concat_makes_one_allocation_of_exactly_the_total() {
    let key = b"key:0001";
    for len in [1usize, 7, 8, 9, 16, 100, 4096, 100_000] {
        let value: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let ttl = 1234u64.to_le_bytes();
        let expected: Vec<u8> = [&key[..], &value, &ttl].concat();
        let d = delta(|| {
            let b = ThinBytes::concat(&[key, &value, &ttl]);
            assert_eq!(counts().last_size, expected.len(), "one exact allocation");
            assert_eq!((b.len(), &*b), (expected.len(), &expected[..]));
        });
        assert_eq!((d.allocs, d.frees, d.live_bytes), (1, 1, 0), "len {len}");
    }
}

#[test]
fn writes_through_deref_mut_stay_and_clones_are_independent() {
    let d = delta(|| {
        let mut a = ThinBytes::from(&b"hello world"[..]);
        a[0] = b'j';
        a[6..].copy_from_slice(b"there");
        assert_eq!(&*a, b"jello there");
        let mut b = a.clone();
        assert_eq!(b, a);
        b[0] = b'c';
        assert_eq!((&*a, &*b), (&b"jello there"[..], &b"cello there"[..]));
        assert_ne!(a, b);
        drop(a);
        assert_eq!(&*b, b"cello there", "a clone outlives its original");
    });
    assert_eq!((d.allocs, d.frees, d.live_bytes), (2, 2, 0));
    let b = ThinBytes::from(&b"cello"[..]);
    assert_eq!(format!("{b:?}"), format!("{:?}", &b"cello"[..]));
}

#[test]
fn every_buffer_is_freed_once_with_its_size() {
    let seed = 0x7469_6e79_6279_7465;
    println!("seed {seed:#x}");
    let mut next = rng(seed);
    let d = delta(|| {
        let mut slots: Vec<Option<ThinBytes>> = (0..64).map(|_| None).collect();
        let mut model: Vec<Option<Vec<u8>>> = vec![None; 64];
        for round in 0..5000u64 {
            let at = (next() % 64) as usize;
            match next() % 4 {
                0 => {
                    slots[at] = None;
                    model[at] = None;
                }
                1 => {
                    let from = (next() % 64) as usize;
                    slots[at] = slots[from].clone();
                    model[at] = model[from].clone();
                }
                _ => {
                    let len = match next() % 8 {
                        0 => 0,
                        1 => (next() % 20_000) as usize,
                        _ => (next() % 200) as usize,
                    };
                    let bytes: Vec<u8> = (0..len).map(|i| (i as u64 ^ round) as u8).collect();
                    let (head, tail) = bytes.split_at(len / 3);
                    slots[at] = Some(ThinBytes::concat(&[head, tail]));
                    model[at] = Some(bytes);
                }
            }
            if let Some(b) = slots[at].as_mut().filter(|b| !b.is_empty()) {
                b[0] ^= 0xff;
                model[at].as_mut().expect("in step")[0] ^= 0xff;
            }
        }
        for (slot, expected) in slots.iter().zip(&model) {
            assert_eq!(slot.as_ref().map(|b| &**b), expected.as_deref());
        }
        drop(slots);
        drop(model);
    });
    assert_eq!(d.allocs, d.frees, "as many frees as allocations");
    assert_eq!(d.live_bytes, 0, "every buffer freed with its own size");
}

#[test]
fn it_moves_and_is_shared_across_threads() {
    let a = ThinBytes::from(&b"sent away"[..]);
    let shared = ThinBytes::from(&b"shared"[..]);
    let back = std::thread::scope(|s| {
        let reader = s.spawn(|| shared.len());
        let mover = s.spawn(move || {
            assert_eq!(&*a, b"sent away");
            a
        });
        assert_eq!(reader.join().expect("reader"), 6);
        mover.join().expect("mover")
    });
    assert_eq!((&*back, &*shared), (&b"sent away"[..], &b"shared"[..]));
}

#[test]
fn a_buffer_over_u32_max_bytes_is_refused_before_allocating() {
    // 4097 borrows of one MiB: over 4 GiB in total without holding it.
    let mib = vec![0u8; 1 << 20];
    let parts: Vec<&[u8]> = vec![&mib; (MAX_LEN >> 20) + 2];
    let refused = std::panic::catch_unwind(|| ThinBytes::concat(&parts)).is_err();
    assert!(refused);
    assert!(
        counts().largest < 1 << 30,
        "no allocation of the total was tried"
    );
}
