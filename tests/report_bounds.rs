//! A lock report takes bounded time on any region, hostile or not. Each case builds a 32 MiB
//! region, damages its file as any process allowed to write it could, and times
//! `region.report()` and the inspector's report: at most 1 s each in an optimised build
//! (`cargo test --release --test report_bounds -- --nocapture` prints the times;
//! BENCHMARKS.md records them), at most 30 s in a debug build, where only a blow-up is
//! caught (a busy machine must not fail it).
//!
//! Two hostile writes (a registry entry claiming a million locks, a full lock-order table)
//! once made one report take 105 s on a 1 MiB region.

mod common;

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use lockkit::report::Inspector;
use lockkit::{GenLock, ShmMutex, ShmRegion};

const SIZE: usize = 32 << 20;
const GRAN: u64 = 32;

fn limit() -> Duration {
    if cfg!(debug_assertions) {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(1)
    }
}

/// A region of `SIZE` bytes under a fresh name, and its file.
struct Hostile {
    name: String,
    region: ShmRegion,
    file: std::fs::File,
}

impl Hostile {
    fn new(tag: &str) -> Hostile {
        let name = common::unique_name(tag);
        let region = ShmRegion::create(&name, SIZE).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(common::shm_path(&name))
            .unwrap();
        Hostile { name, region, file }
    }

    fn word(&self, at: u64) -> u64 {
        let mut b = [0u8; 8];
        self.file.read_exact_at(&mut b, at).unwrap();
        u64::from_ne_bytes(b)
    }

    fn put(&self, at: u64, v: u64) {
        self.file.write_all_at(&v.to_ne_bytes(), at).unwrap();
    }

    /// Every block header of the heap: (offset, size, used).
    fn blocks(&self) -> Vec<(u64, u64, bool)> {
        let stats = self.region.stats().unwrap();
        let (start, end) = (
            stats.heap_start as u64,
            (stats.heap_start + stats.heap_size) as u64,
        );
        let bytes = {
            let mut v = vec![0u8; (end - start) as usize];
            self.file.read_exact_at(&mut v, start).unwrap();
            v
        };
        let mut out = Vec::new();
        let mut b = 0u64;
        while b < end - start {
            let w = u64::from_ne_bytes(bytes[b as usize..b as usize + 8].try_into().unwrap());
            let size = w & !(GRAN - 1);
            assert!(size >= GRAN, "the heap does not tile at {:#x}", start + b);
            out.push((start + b, size, w & 1 != 0));
            b += size;
        }
        out
    }

    /// Where the lock-order table lies: after the type registry, before the site table
    /// (1/128 of the region each, at most 256 KiB).
    fn order_area(&self) -> (u64, u64) {
        let stats = self.region.stats().unwrap();
        let start = (stats.heap_start + stats.heap_size + stats.type_registry.0) as u64;
        let sites = (SIZE as u64 / 128).min(1 << 18);
        (start, SIZE as u64 - sites)
    }

    /// Times both reports; returns how many locks the region's own listed.
    fn report_within_limit(&self, case: &str) -> usize {
        let t = Instant::now();
        let report = self.region.report();
        let own = t.elapsed();
        let t = Instant::now();
        let inspected = Inspector::open(&self.name).unwrap().report();
        let other = t.elapsed();
        println!(
            "{case}: report() {own:?}, inspector {other:?}, {} locks, {} inversions",
            report.locks.len(),
            report.inversions.len()
        );
        assert!(inspected.is_ok(), "{case}: {inspected:?}");
        for (what, took) in [("report()", own), ("the inspector's report", other)] {
            assert!(
                took <= limit(),
                "{case}: {what} took {took:?} (limit {:?})",
                limit()
            );
        }
        report.locks.len()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(common::shm_path(&self.name));
    }
}

#[test]
fn every_lock_of_a_full_region_held() {
    let _s = common::serial();
    let h = Hostile::new("bounds-held");
    let mut n = 0;
    while let Ok(m) = h.region.alloc(ShmMutex::new(0u64)) {
        std::mem::forget(m.lock());
        std::mem::forget(m);
        n += 1;
    }
    assert!(
        n > 100_000,
        "the region held {n} objects; the case needs over 100 000"
    );
    let listed = h.report_within_limit("every lock held");
    assert!(listed > 0);
}

#[test]
fn a_type_claiming_a_million_locks_over_every_block() {
    let _s = common::serial();
    let h = Hostile::new("bounds-million");
    // A real object of a million locks, each word scribbled to look held by its own owner.
    let big = h.region.alloc_zeroed::<[GenLock; 1 << 20]>().unwrap();
    let big_at = big.ptr().offset();
    let words: Vec<u8> = (0..1u32 << 20)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761) | 1).to_ne_bytes())
        .collect();
    let lock_bytes = std::mem::size_of::<GenLock>();
    if lock_bytes == 4 {
        h.file.write_all_at(&words, big_at).unwrap();
    }
    let tag = h.word(big_at - GRAN + 16);
    // And every other block of the heap claims to be one too.
    while let Ok(b) = h.region.alloc([0u64; 1]) {
        std::mem::forget(b);
    }
    for (b, _, used) in h.blocks() {
        if used {
            h.put(b + 16, tag);
        }
    }
    h.report_within_limit("a million locks over every block");
}

#[test]
fn every_block_of_its_own_type_and_a_full_lock_order_table() {
    let _s = common::serial();
    let h = Hostile::new("bounds-tags");
    let locks: Vec<_> = (0..64)
        .map(|_| h.region.alloc(ShmMutex::new(0u64)).unwrap())
        .collect();
    while let Ok(b) = h.region.alloc([0u64; 1]) {
        std::mem::forget(b);
    }
    for (i, (b, _, used)) in h.blocks().into_iter().enumerate() {
        if used && i >= locks.len() {
            h.put(b + 16, (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        }
    }
    // Every entry of the lock-order table an inverted edge, between locks that exist and
    // offsets that do not.
    let (start, end) = h.order_area();
    let mut at = start;
    let mut i = 0u64;
    while at + 64 <= end {
        let from = locks[(i % 64) as usize].ptr().offset();
        let to = if i.is_multiple_of(2) {
            locks[((i / 64) % 64) as usize].ptr().offset()
        } else {
            0x100_0000 + i * 8
        };
        for (k, v) in [i + 1, from, to, 0, 0, 1, 1, 1].into_iter().enumerate() {
            h.put(at + 8 * k as u64, v);
        }
        at += 64;
        i += 1;
    }
    assert!(i >= 4096, "the table has {i} entries");
    h.report_within_limit("distinct tags and a full lock-order table");
}

type Eight = (u8, u8, u8, u8, u8, u8, u8, u8);
type Wide2 = (Eight, Eight, Eight, Eight, Eight, Eight, Eight, Eight);
type Wide3 = (Wide2, Wide2, Wide2, Wide2, Wide2, Wide2, Wide2, Wide2);

/// Thousands of description lines before a million locks.
#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct WideThenLocks {
    wide: (Wide3, Wide3, Wide3, Wide3),
    m: [ShmMutex<u8>; 1 << 20],
}

#[test]
fn a_million_held_locks_after_a_wide_description() {
    // An adversarial review measured 2.0-2.9 s here: each listed lock searched the whole
    // description (2341 lines) for its `data` sibling.
    let _s = common::serial();
    let h = Hostile::new("bounds-wide");
    let w = h.region.alloc_zeroed::<WideThenLocks>().unwrap();
    for m in w.m.iter() {
        std::mem::forget(m.lock());
    }
    let listed = h.report_within_limit("a million held locks after a wide description");
    assert!(listed >= 1 << 19, "only {listed} held locks listed");
}
