//! Where striping pays (issue 14): forked processes (4 by default) on this machine's 2 cores,
//! random keys, one lock against 16, for critical sections of a few lengths. Rows:
//!
//! - `GenLockSet<16>` (128-byte entries on x86_64), each key's counter 128 bytes from the
//!   next: the workload `BENCHMARKS.md` first measured at 1.12x;
//! - 16 `GenLock`s and their counters 64 bytes apart: the set's layout before (adjacent lines
//!   travel between cores in pairs);
//! - the set with keys split by worker: each worker keeps to stripes of its own, so no line
//!   moves between cores: what the set costs without the coherence traffic of shared keys;
//! - a counter beside its lock, on the lock's line: one line moves per operation, not two;
//! - bare futex words (Kamailio's lock: no owner, no fork check) 64 bytes apart: the peer the
//!   design's 2.3x was measured with.
//!
//! "No lock" runs the same work with each worker on a counter of its own: the machine's
//! parallel capacity at that moment. "Kernel CPU" is the share of the workers' CPU time
//! spent in system calls (futex waits and wakes), one lock / 16.
//!
//! ```text
//! cargo bench --bench stripes                 # 5 interleaved rounds of 300 ms per variant
//! LOCKKIT_BENCH_ROUNDS=9 LOCKKIT_BENCH_WORKERS=2 LOCKKIT_BENCH_CS=0,50 cargo bench --bench stripes
//! ```
//!
//! Prints a markdown table of medians (Mops/s) and of the set/one ratio taken inside each
//! round (this machine's capacity swings between rounds), with a lost-update check on every
//! round.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

use lockkit::{GenLock, GenLockSet, ShmRegion};

mod common;
use common::forked::{env, median, round, rounds_and_length, Gate, Line, MAX_WORKERS};
use common::KamailioFutex;

const STRIPES: usize = 16;

/// What a worker does once: its index and a random key.
type Op<'a> = dyn Fn(usize, u64) + 'a;

/// A bare futex word (Kamailio's lock, no owner tracking) alone on its cache line.
#[repr(C, align(64))]
#[derive(lockkit::ShmSafe)]
struct PaddedWord(AtomicU32);

/// A lock alone on one 64-byte cache line: how `GenLockSet` padded its entries before.
#[repr(C, align(64))]
#[derive(lockkit::ShmSafe)]
struct Lock64(GenLock);

/// A lock with its counter in the same set-entry width.
#[repr(C, align(128))]
#[derive(lockkit::ShmSafe)]
struct LockAndCounter {
    lock: GenLock,
    count: AtomicU64,
}

/// A counter alone on a pair of cache lines (the unit the adjacent-line prefetcher moves).
#[repr(C, align(128))]
#[derive(lockkit::ShmSafe)]
struct Line128(AtomicU64);

#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct Shared {
    gate: Gate,
    /// Counters 128 bytes apart.
    apart: [Line128; STRIPES],
    /// Counters 64 bytes apart.
    apart64: [Line; STRIPES],
    /// Locks with their counters.
    together: [LockAndCounter; STRIPES],
    one: LockAndCounter,
    set: GenLockSet<16>,
    locks64: [Lock64; STRIPES],
    words: [PaddedWord; STRIPES],
    word: PaddedWord,
}

/// Work inside the critical section: `n` dependent multiply-adds (about 1 ns each).
#[inline(always)]
fn work(n: u32, seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..n {
        x = std::hint::black_box(x.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1));
    }
    x
}

/// One round; panics if an increment was lost (the counters must move by exactly the
/// operations done).
/// Returns (Mops/s, the share of the workers' CPU time spent in the kernel).
fn measure(s: &Shared, workers: usize, run_for: Duration, op: &Op<'_>) -> (f64, f64) {
    let before = counted(s);
    let r = round(&s.gate, workers, run_for, op);
    assert_eq!(counted(s) - before, r.total(), "lost updates");
    (r.mops(), r.sys_seconds / r.cpu_seconds.max(1e-9))
}

fn counted(s: &Shared) -> u64 {
    s.apart.iter().map(|c| c.0.load(SeqCst)).sum::<u64>()
        + s.apart64.iter().map(|c| c.0.load(SeqCst)).sum::<u64>()
        + s.together.iter().map(|c| c.count.load(SeqCst)).sum::<u64>()
        + s.one.count.load(SeqCst)
}

fn main() {
    let workers = (env("LOCKKIT_BENCH_WORKERS", 4) as usize).clamp(1, MAX_WORKERS);
    let (rounds, run_for) = rounds_and_length(5);
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let s = region.alloc_zeroed::<Shared>().unwrap();
    let s: &Shared = &s;
    println!("{workers} processes, {rounds} rounds of {run_for:?} per variant\n");
    println!(
        "| critical section | lock | counter | one lock Mops/s | 16 locks Mops/s | ratio (range) | \
         kernel CPU (one / 16) | no lock Mops/s | ceiling |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let sections: Vec<u32> = std::env::var("LOCKKIT_BENCH_CS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 50, 200]);
    for &cs in &sections {
        let apart_one = |_: usize, k: u64| {
            let _g = s.one.lock.lock();
            let c = &s.apart[(k % STRIPES as u64) as usize].0;
            std::hint::black_box(work(cs, k));
            c.store(c.load(Relaxed) + 1, Relaxed);
        };
        let apart_set = |_: usize, k: u64| {
            let i = (k % STRIPES as u64) as usize;
            let _g = s.set.lock(i);
            let c = &s.apart[i].0;
            std::hint::black_box(work(cs, k));
            c.store(c.load(Relaxed) + 1, Relaxed);
        };
        // The layout before: locks and counters 64 bytes apart.
        let line_one = |_: usize, k: u64| {
            let _g = s.one.lock.lock();
            let c = &s.apart64[(k % STRIPES as u64) as usize].0;
            std::hint::black_box(work(cs, k));
            c.store(c.load(Relaxed) + 1, Relaxed);
        };
        let line_set = |_: usize, k: u64| {
            let i = (k % STRIPES as u64) as usize;
            let _g = s.locks64[i].0.lock();
            let c = &s.apart64[i].0;
            std::hint::black_box(work(cs, k));
            c.store(c.load(Relaxed) + 1, Relaxed);
        };
        let together_one = |_: usize, k: u64| {
            let _g = s.one.lock.lock();
            let c = &s.one.count;
            std::hint::black_box(work(cs, k));
            c.store(c.load(Relaxed) + 1, Relaxed);
        };
        let together_set = |_: usize, k: u64| {
            let l = &s.together[(k % STRIPES as u64) as usize];
            let _g = l.lock.lock();
            std::hint::black_box(work(cs, k));
            l.count.store(l.count.load(Relaxed) + 1, Relaxed);
        };
        // What the set does when no line moves between cores: each worker keeps to stripes
        // of its own (w, w + workers, ...), so a lock and its counter stay in one cache.
        let split_set = |w: usize, k: u64| {
            let per = (STRIPES / workers).max(1) as u64;
            let i = ((k % per) as usize * workers + w) % STRIPES;
            let _g = s.set.lock(i);
            let c = &s.apart[i].0;
            std::hint::black_box(work(cs, k));
            c.store(c.load(Relaxed) + 1, Relaxed);
        };
        // The peer: bare futex words (Kamailio's lock, no owner, no fork check), each on its
        // own line, as the design's harness had them.
        let word_one = |_: usize, k: u64| {
            let l = KamailioFutex::over(&s.word.0);
            l.lock();
            let c = &s.apart64[(k % STRIPES as u64) as usize].0;
            std::hint::black_box(work(cs, k));
            c.store(c.load(Relaxed) + 1, Relaxed);
            l.unlock();
        };
        let word_set = |_: usize, k: u64| {
            let i = (k % STRIPES as u64) as usize;
            let l = KamailioFutex::over(&s.words[i].0);
            l.lock();
            let c = &s.apart64[i].0;
            std::hint::black_box(work(cs, k));
            c.store(c.load(Relaxed) + 1, Relaxed);
            l.unlock();
        };
        // The ceiling: the same work with no lock at all, each worker on a counter of its
        // own, so no cache line moves: what the machine can do in parallel.
        let alone = |w: usize, k: u64| {
            std::hint::black_box(work(cs, k));
            let c = &s.apart[w].0;
            c.store(c.load(Relaxed) + 1, Relaxed);
        };
        let variants: [(&str, &str, &Op<'_>, &Op<'_>); 5] = [
            ("GenLockSet<16>", "128 bytes apart", &apart_one, &apart_set),
            (
                "16 GenLocks 64 bytes apart",
                "64 bytes apart",
                &line_one,
                &line_set,
            ),
            (
                "GenLockSet<16>, keys split by worker",
                "128 bytes apart",
                &apart_one,
                &split_set,
            ),
            (
                "16 GenLocks, a counter beside each",
                "on its lock's line",
                &together_one,
                &together_set,
            ),
            (
                "bare futex words, 64 bytes apart",
                "64 bytes apart",
                &word_one,
                &word_set,
            ),
        ];
        for (lock, what, one, set) in variants {
            let (mut a, mut b, mut c, mut ratios) = (vec![], vec![], vec![], vec![]);
            let (mut ka, mut kb) = (vec![], vec![]);
            for _ in 0..rounds {
                let (x, kx) = measure(s, workers, run_for, one);
                let (y, ky) = measure(s, workers, run_for, set);
                // Within the round: one and 16 ran back to back, under the same conditions.
                ratios.push(y / x);
                a.push(x);
                b.push(y);
                ka.push(kx);
                kb.push(ky);
                c.push(measure(s, workers, run_for, &alone).0);
            }
            let (lo, hi) = (
                ratios.iter().copied().fold(f64::INFINITY, f64::min),
                ratios.iter().copied().fold(0.0, f64::max),
            );
            let (a, b, c, r) = (median(a), median(b), median(c), median(ratios));
            println!(
                "| {cs} multiply-adds | {lock} | {what} | {a:.2} | {b:.2} | **{r:.2}x** \
                 ({lo:.2}-{hi:.2}) | {:.0}% / {:.0}% | {c:.2} | {:.2}x |",
                100.0 * median(ka),
                100.0 * median(kb),
                c / a
            );
        }
    }
}
