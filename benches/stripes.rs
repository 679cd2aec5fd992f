//! Where striping pays (issue 14): 4 forked processes on this machine's 2 cores, random keys,
//! one `GenLock` against a `GenLockSet<16>`, for critical sections of a few lengths and
//! with the guarded counter on its own cache line or on its lock's line.
//!
//! ```text
//! cargo bench --bench stripes                 # 5 interleaved rounds of 300 ms per variant
//! LOCKKIT_BENCH_ROUNDS=9 cargo bench --bench stripes
//! ```
//!
//! Prints a markdown table of medians (Mops/s) and the set/one ratio per variant, with a
//! lost-update check on every round.

use std::sync::atomic::{AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use lockkit::{GenLock, GenLockSet, ShmRegion};

const STRIPES: usize = 16;

/// What a worker does once: its index and a random key.
type Op<'a> = dyn Fn(usize, u64) + 'a;
const WORKERS: usize = 4;

#[repr(C, align(64))]
#[derive(lockkit::ShmSafe)]
struct Line(AtomicU64);

/// A lock with its counter on the same cache line.
#[repr(C, align(64))]
#[derive(lockkit::ShmSafe)]
struct LockAndCounter {
    lock: GenLock,
    count: AtomicU64,
}

#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct Shared {
    ready: Line,
    start: Line,
    stop: Line,
    ops: [Line; WORKERS],
    /// Counters on lines of their own.
    apart: [Line; STRIPES],
    /// Locks with their counters.
    together: [LockAndCounter; STRIPES],
    one: LockAndCounter,
    set: GenLockSet<16>,
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
fn round(s: &Shared, run_for: Duration, op: &Op<'_>) -> f64 {
    let before = counted(s);
    for l in [&s.ready, &s.start, &s.stop] {
        l.0.store(0, SeqCst);
    }
    for o in &s.ops {
        o.0.store(0, SeqCst);
    }
    let pids: Vec<libc::pid_t> = (0..WORKERS)
        .map(|w| {
            // SAFETY: the bench is single-threaded; the child only works on shared memory
            // and `_exit`s.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                s.ready.0.fetch_add(1, SeqCst);
                while s.start.0.load(Acquire) == 0 {
                    std::hint::spin_loop();
                }
                let mut rng = 0x2545_f491_4f6c_dd1du64 ^ ((w as u64 + 1) << 20);
                let mut n = 0u64;
                while s.stop.0.load(Relaxed) == 0 {
                    for _ in 0..64 {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        op(w, rng);
                    }
                    n += 64;
                }
                s.ops[w].0.store(n, SeqCst);
                // SAFETY: leave without the parent's exit handlers.
                unsafe { libc::_exit(0) };
            }
            pid
        })
        .collect();
    while s.ready.0.load(SeqCst) < WORKERS as u64 {
        std::thread::yield_now();
    }
    let t0 = Instant::now();
    s.start.0.store(1, Release);
    std::thread::sleep(run_for);
    s.stop.0.store(1, Release);
    for pid in pids {
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let ops: u64 = s.ops.iter().map(|o| o.0.load(SeqCst)).sum();
    assert_eq!(counted(s) - before, ops, "lost updates");
    ops as f64 / elapsed / 1e6
}

fn counted(s: &Shared) -> u64 {
    s.apart.iter().map(|c| c.0.load(SeqCst)).sum::<u64>()
        + s.together.iter().map(|c| c.count.load(SeqCst)).sum::<u64>()
        + s.one.count.load(SeqCst)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let rounds = if quick {
        1
    } else {
        env("LOCKKIT_BENCH_ROUNDS", 5)
    } as usize;
    let run_for = Duration::from_millis(if quick {
        20
    } else {
        env("LOCKKIT_BENCH_MS", 300)
    });
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let s = region.alloc_zeroed::<Shared>().unwrap();
    let s: &Shared = &s;
    println!(
        "| critical section | counter | one lock Mops/s | 16 locks Mops/s | ratio | no lock \
         (each worker its own counter) Mops/s | ceiling |"
    );
    println!("|---|---|---|---|---|---|---|");
    for cs in [0u32, 50, 200] {
        // (one lock, 16 locks), counters apart; then counters on the lock's line.
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
        // The ceiling: the same work with no lock at all, each worker on a counter of its
        // own, so no cache line moves: what the machine can do in parallel.
        let alone = |w: usize, k: u64| {
            std::hint::black_box(work(cs, k));
            let c = &s.apart[w].0;
            c.store(c.load(Relaxed) + 1, Relaxed);
        };
        let variants: [(&str, &Op<'_>, &Op<'_>); 2] = [
            ("on its own line", &apart_one, &apart_set),
            ("on its lock's line", &together_one, &together_set),
        ];
        for (what, one, set) in variants {
            let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                a.push(round(s, run_for, one));
                b.push(round(s, run_for, set));
                c.push(round(s, run_for, &alone));
            }
            let (a, b, c) = (median(a), median(b), median(c));
            println!(
                "| {cs} multiply-adds | {what} | {a:.2} | {b:.2} | **{:.2}x** | {c:.2} | {:.2}x |",
                b / a,
                c / a
            );
        }
    }
}
