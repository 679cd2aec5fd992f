//! A valid region file damaged at random places, then used: `open`, `lookup`, `get`, `alloc`,
//! `free`, `stats` and `check` must each give `Ok` or a clear error, never a crash, a hang,
//! a panic, or an allocation that overlaps another object.
//!
//! The damage is aimed as well as random: block-start bits, block sizes, block headers copied
//! into an object's data or anywhere in the heap, free-list heads, root offsets and type
//! registry bytes. Every granule is asked for an object of each type; no two objects the
//! region vouches for may overlap, nor may a fresh allocation overlap one.
//!
//! A few hundred cases run in `cargo test` (fixed seed, so failures replay);
//! `LOCKKIT_FUZZ_CASES=35000 cargo test --release --test region_fuzz` runs more, and
//! `LOCKKIT_FUZZ_SEED` picks another seed. Each case runs in a forked child, so a crash is
//! a failed case (with its number) rather than a dead test binary.

mod common;

use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::Rng;
use lockkit::{ShmMutex, ShmPtr, ShmRegion};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const ROOTS: [&str; 3] = ["table", "counter", "stripes"];

/// The block granule and header size (`shm/heap.rs`).
const GRAN: u64 = 32;

/// A pristine region's bytes and what the damage aims at.
struct Pristine {
    bytes: Vec<u8>,
    /// Payload offsets of every object ever allocated (some freed since).
    offsets: Vec<u64>,
    /// Where the heap, the block-start bitmap and the type registry are.
    heap: (u64, u64),
    bitmap: u64,
    registry: (u64, u64),
    /// Header words (offsets) that hold a root's offset, and those that hold a free block's.
    root_words: Vec<u64>,
    free_head_words: Vec<u64>,
    /// The table's payload: data the program writes through safe code.
    table: u64,
}

/// A region with objects and roots in it, as bytes, and where its parts are.
fn pristine() -> Pristine {
    let name = common::unique_name("fuzz-src");
    let r = ShmRegion::create(&name, 1 << 16).unwrap();
    let table = r.alloc(ShmMutex::new([7u64; 32])).unwrap();
    let counter = r.alloc(ShmMutex::new(0u64)).unwrap();
    let stripes = r.alloc_lock_set(8).unwrap();
    let mut offsets = vec![table.ptr().offset(), counter.ptr().offset()];
    let mut freed = Vec::new();
    for i in 0..10u64 {
        let b = r.alloc(ShmMutex::new([i; 4])).unwrap();
        offsets.push(b.ptr().offset());
        if i % 3 == 0 {
            freed.push(b.ptr().offset() - GRAN);
            // SAFETY: nothing uses `b` afterwards.
            unsafe { r.free(b).unwrap() };
        }
    }
    r.publish(ROOTS[0], &table).unwrap();
    r.publish(ROOTS[1], &counter).unwrap();
    r.publish_lock_set(ROOTS[2], &stripes).unwrap();
    let stats = r.stats().unwrap();
    let (heap_start, heap_end) = (
        stats.heap_start as u64,
        (stats.heap_start + stats.heap_size) as u64,
    );
    // The bitmap ends where the heap starts; its start is the one 64-byte boundary whose
    // size rule (one bit per granule of the rest of the region, in cache lines) ends there.
    let total = stats.size as u64;
    let bitmap = (0..heap_start)
        .step_by(64)
        .find(|&b| ((total - b) / GRAN).div_ceil(8).next_multiple_of(64) == heap_start - b)
        .expect("the block-start bitmap is where its size rule puts it");
    let bytes = std::fs::read(common::shm_path(&name)).unwrap();
    let word =
        |at: u64| u64::from_ne_bytes(bytes[at as usize..at as usize + 8].try_into().unwrap());
    let roots = [table.ptr().offset(), counter.ptr().offset()];
    let header_words = (0..bitmap).step_by(8);
    let root_words = header_words
        .clone()
        .filter(|&w| roots.contains(&word(w)))
        .collect();
    let free_head_words = header_words
        .filter(|&w| word(w) >= heap_start && freed.contains(&word(w)))
        .collect();
    Pristine {
        offsets,
        heap: (heap_start, heap_end),
        bitmap,
        registry: (heap_end, heap_end + stats.type_registry.0 as u64),
        root_words,
        free_head_words,
        table: table.ptr().offset(),
        bytes,
    }
}

/// What the damage of one case does to the bytes.
fn damage(p: &Pristine, rng: &mut Rng) -> Vec<u8> {
    let mut d = p.bytes.clone();
    let (heap_start, heap_end) = p.heap;
    let granule = |rng: &mut Rng| heap_start + rng.below((heap_end - heap_start) / GRAN) * GRAN;
    let put = |d: &mut Vec<u8>, at: u64, v: u64| {
        d[at as usize..at as usize + 8].copy_from_slice(&v.to_ne_bytes());
    };
    let get =
        |d: &[u8], at: u64| u64::from_ne_bytes(d[at as usize..at as usize + 8].try_into().unwrap());
    let flip_bit = |d: &mut Vec<u8>, unit: u64| {
        let at = (p.bitmap + unit / 8) as usize;
        d[at] ^= 1 << (unit % 8);
    };
    for _ in 0..1 + rng.below(4) {
        match rng.below(9) {
            // Scribbles anywhere: single bytes, words of random or small values.
            0 => {
                let at = rng.below(d.len() as u64 - 8) as usize;
                d[at] = rng.next() as u8;
            }
            1 => {
                let at = rng.below(d.len() as u64 - 8) & !7;
                put(&mut d, at, rng.next());
            }
            2 => {
                let at = rng.below(d.len() as u64 - 8) & !7;
                put(&mut d, at, rng.below(1 << 17));
            }
            // A block-start bit set or cleared.
            3 => flip_bit(&mut d, rng.below((heap_end - heap_start) / GRAN)),
            // A block's size word changed by a few granules, its used flag kept or flipped.
            4 => {
                let b = p.offsets[rng.below(p.offsets.len() as u64) as usize] - GRAN;
                let old = get(&d, b);
                let delta = (rng.below(9) * GRAN) as i64 - 4 * GRAN as i64;
                let new = (old as i64 + delta) as u64 ^ rng.below(2);
                put(&mut d, b, new);
            }
            // A real block's header copied into the table's data (safe code can write those
            // bytes), or anywhere in the heap, with its bitmap bit set or not.
            5 => {
                let from = p.offsets[rng.below(p.offsets.len() as u64) as usize] - GRAN;
                let to = if rng.below(2) == 0 {
                    let inside = 1 + rng.below(6);
                    (p.table + inside * GRAN).next_multiple_of(GRAN)
                } else {
                    granule(rng)
                };
                for w in 0..4 {
                    let v = get(&d, from + w * 8);
                    put(&mut d, to + w * 8, v);
                }
                if rng.below(4) != 0 {
                    flip_bit(&mut d, (to - heap_start) / GRAN);
                }
            }
            // A free-list head pointed at another granule.
            6 if !p.free_head_words.is_empty() => {
                let w = p.free_head_words[rng.below(p.free_head_words.len() as u64) as usize];
                let to = granule(rng);
                put(&mut d, w, to);
            }
            // A root's offset pointed at another granule's payload.
            7 if !p.root_words.is_empty() => {
                let w = p.root_words[rng.below(p.root_words.len() as u64) as usize];
                let to = granule(rng) + GRAN;
                put(&mut d, w, to);
            }
            // Bytes of the type registry.
            _ => {
                let (start, end) = p.registry;
                let at = start + rng.below((end - start).min(2048));
                d[at as usize] = rng.next() as u8;
            }
        }
    }
    d
}

/// A fresh allocation: its address range and its handle.
type Fresh = (usize, usize, lockkit::ShmBox<ShmMutex<[u64; 16]>>);

/// The address range of a value (a DST's included).
fn span<T: ?Sized>(v: &T) -> (usize, usize) {
    let start = v as *const T as *const u8 as usize;
    (start, start + std::mem::size_of_val(v))
}

/// Uses a damaged region every way the API allows; returns normally unless something is
/// wrong in a way the API must never show (a panic, an overlap).
fn exercise(name: &str, p: &Pristine) {
    let Ok(r) = ShmRegion::open(name) else {
        return; // a clear error: fine
    };
    let _ = r.stats();
    let _ = r.check();
    // Every object the region vouches for, by any way of asking, at every granule.
    let mut vouched: Vec<(usize, usize, String)> = Vec::new();
    if let Ok(t) = r.lookup::<ShmMutex<[u64; 32]>>(ROOTS[0]) {
        let _ = t.try_lock().map(|g| g[31]);
        vouched.push((span(t).0, span(t).1, "lookup table".into()));
    }
    if let Ok(c) = r.lookup::<ShmMutex<u64>>(ROOTS[1]) {
        let _ = c.try_lock().map(|mut g| *g += 1);
        vouched.push((span(c).0, span(c).1, "lookup counter".into()));
    }
    if let Ok(s) = r.lookup_lock_set(ROOTS[2]) {
        let _ = s.try_lock(1).is_some();
        vouched.push((span(s).0, span(s).1, "lookup stripes".into()));
    }
    let (heap_start, heap_end) = p.heap;
    let mut at = heap_start + GRAN;
    while at < heap_end {
        if let Ok(m) = r.get(ShmPtr::<ShmMutex<[u64; 4]>>::from_offset(at)) {
            let _ = m.try_lock().map(|g| g[0]);
            vouched.push((span(m).0, span(m).1, format!("get [u64; 4] at {at:#x}")));
        }
        if let Ok(m) = r.get(ShmPtr::<ShmMutex<[u64; 32]>>::from_offset(at)) {
            vouched.push((span(m).0, span(m).1, format!("get [u64; 32] at {at:#x}")));
        }
        if let Ok(m) = r.get(ShmPtr::<ShmMutex<u64>>::from_offset(at)) {
            vouched.push((span(m).0, span(m).1, format!("get u64 at {at:#x}")));
        }
        at += GRAN;
    }
    // Lookups and gets of one object agree on its place; two objects never overlap.
    vouched.sort();
    vouched.dedup_by(|b, a| (a.0, a.1) == (b.0, b.1));
    for pair in vouched.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "two objects vouched for overlap: {} ({:#x}..{:#x}) and {} ({:#x}..{:#x})",
            pair[0].2,
            pair[0].0,
            pair[0].1,
            pair[1].2,
            pair[1].0,
            pair[1].1
        );
    }
    // Fresh allocations must not overlap each other or any object vouched for.
    let mut fresh: Vec<Fresh> = Vec::new();
    for i in 0..8u64 {
        if let Ok(b) = r.alloc(ShmMutex::new([i; 16])) {
            let (start, end) = span(&*b);
            let taken = vouched
                .iter()
                .map(|v| (v.0, v.1))
                .chain(fresh.iter().map(|&(s, e, _)| (s, e)));
            for (s, e) in taken {
                assert!(
                    end <= s || start >= e,
                    "allocation {start:#x}..{end:#x} overlaps {s:#x}..{e:#x}"
                );
            }
            *b.lock() = [i; 16]; // touch every byte of it
            fresh.push((start, end, b));
        }
    }
    for (_, _, b) in fresh {
        // SAFETY: nothing else knows these objects.
        let _ = unsafe { r.free(b) };
    }
    let _ = r.check();
    let _ = r.stats();
}

#[test]
fn a_damaged_region_gives_errors_never_crashes_hangs_or_overlaps() {
    let _s = common::serial();
    let cases = env("LOCKKIT_FUZZ_CASES", 300);
    let mut rng = Rng(env("LOCKKIT_FUZZ_SEED", 0x5eed_1ee7) | 1);
    let pristine = pristine();
    assert!(
        !pristine.root_words.is_empty() && !pristine.free_head_words.is_empty(),
        "the fuzz test no longer finds the roots or free-list heads it aims at"
    );
    let name = common::unique_name("fuzz");
    let path = common::shm_path(&name);
    let _cleanup = scopeguard::guard((), |()| {
        let _ = std::fs::remove_file(&path);
    });
    let mut opened = 0;
    for case in 0..cases {
        let damaged = damage(&pristine, &mut rng);
        std::fs::write(&path, &damaged).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&damaged, 0).unwrap();
        opened += usize::from(ShmRegion::open(&name).is_ok());
        let child = common::fork(|| {
            exercise(&name, &pristine);
            0
        });
        let code = child.join_within(Duration::from_secs(60), || format!("fuzz case {case}"));
        assert_eq!(
            code, 0,
            "fuzz case {case} failed (exit {code}: 101 is a panic, >128 a signal)"
        );
    }
    assert!(
        opened > cases as usize / 2,
        "only {opened} of {cases} damaged regions opened: the damage is too coarse to test much"
    );
}
