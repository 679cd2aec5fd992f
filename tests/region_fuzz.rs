//! A valid region file damaged at random places, then used: `open`, `lookup`, `get`, `alloc`,
//! `free`, `stats` and `check` must each give `Ok` or a clear error, never a crash, a hang,
//! a panic, or an allocation that overlaps another object.
//!
//! A few hundred cases run in `cargo test` (fixed seed, so failures replay);
//! `LOCKKIT_FUZZ_CASES=5000 cargo test --release --test region_fuzz` runs more, and
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

/// A region with objects and roots in it, as bytes, and the offsets of its objects.
fn pristine() -> (Vec<u8>, Vec<u64>) {
    let name = common::unique_name("fuzz-src");
    let r = ShmRegion::create(&name, 1 << 16).unwrap();
    let table = r.alloc(ShmMutex::new([7u64; 32])).unwrap();
    let counter = r.alloc(ShmMutex::new(0u64)).unwrap();
    let stripes = r.alloc_lock_set(8).unwrap();
    let mut offsets = vec![table.ptr().offset(), counter.ptr().offset()];
    for i in 0..10u64 {
        let b = r.alloc(ShmMutex::new([i; 4])).unwrap();
        offsets.push(b.ptr().offset());
        if i % 3 == 0 {
            // SAFETY: nothing uses `b` afterwards.
            unsafe { r.free(b).unwrap() };
        }
    }
    r.publish(ROOTS[0], &table).unwrap();
    r.publish(ROOTS[1], &counter).unwrap();
    r.publish_lock_set(ROOTS[2], &stripes).unwrap();
    let bytes = std::fs::read(common::shm_path(&name)).unwrap();
    (bytes, offsets)
}

/// Uses a damaged region every way the API allows; returns normally unless something is
/// wrong in a way the API must never show (a panic, an overlap).
fn exercise(name: &str, offsets: &[u64]) {
    let Ok(r) = ShmRegion::open(name) else {
        return; // a clear error: fine
    };
    let _ = r.stats();
    let _ = r.check();
    let mut objects: Vec<(u64, u64)> = Vec::new();
    if let Ok(t) = r.lookup::<ShmMutex<[u64; 32]>>(ROOTS[0]) {
        let _ = t.try_lock().map(|g| g[31]);
    }
    let _ = r
        .lookup::<ShmMutex<u64>>(ROOTS[1])
        .map(|c| c.try_lock().map(|mut g| *g += 1));
    let _ = r.lookup_lock_set(ROOTS[2]).map(|s| s.try_lock(1).is_some());
    for &off in offsets {
        if let Ok(m) = r.get(ShmPtr::<ShmMutex<[u64; 4]>>::from_offset(off)) {
            objects.push((off, off + std::mem::size_of::<ShmMutex<[u64; 4]>>() as u64));
            let _ = m.try_lock().map(|g| g[0]);
        }
    }
    // Fresh allocations must not overlap each other or any object `get` vouched for.
    let mut fresh = Vec::new();
    for i in 0..8u64 {
        if let Ok(b) = r.alloc(ShmMutex::new([i; 16])) {
            let start = b.ptr().offset();
            let end = start + std::mem::size_of::<ShmMutex<[u64; 16]>>() as u64;
            let taken = objects
                .iter()
                .copied()
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
    let (bytes, offsets) = pristine();
    let name = common::unique_name("fuzz");
    let path = common::shm_path(&name);
    let _cleanup = scopeguard::guard((), |()| {
        let _ = std::fs::remove_file(&path);
    });
    let mut opened = 0;
    for case in 0..cases {
        let mut damaged = bytes.clone();
        // A few scribbles: single bytes, whole words of random or small values, aimed at the
        // header, the bitmap and the heap alike.
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(damaged.len() as u64 - 8) as usize;
            match rng.below(3) {
                0 => damaged[at] = rng.next() as u8,
                1 => damaged[at & !7..(at & !7) + 8].copy_from_slice(&rng.next().to_ne_bytes()),
                _ => damaged[at & !7..(at & !7) + 8]
                    .copy_from_slice(&rng.below(1 << 17).to_ne_bytes()),
            }
        }
        std::fs::write(&path, &damaged).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&damaged, 0).unwrap();
        opened += usize::from(ShmRegion::open(&name).is_ok());
        let child = common::fork(|| {
            exercise(&name, &offsets);
            0
        });
        let code = child.join_within(Duration::from_secs(20), || format!("fuzz case {case}"));
        assert_eq!(
            code, 0,
            "fuzz case {case} failed (exit {code}: 101 is a panic, >128 a signal)"
        );
    }
    assert!(
        opened > 0,
        "no damaged region even opened: the damage is too coarse to test much"
    );
}
