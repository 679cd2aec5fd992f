//! Contended throughput between processes: N forked workers released together hammer one
//! lock with a short critical section, for every lock kind, interleaved round by round.
//!
//! `cargo bench --bench contended` prints a Markdown table (the one in BENCHMARKS.md):
//! median Mops/s over the rounds, fairness (max/min operations per worker, median) and CPU
//! seconds per million operations (spinning locks look fast and burn the cores other workers
//! need). A second table compares a 16-lock set with random keys against one lock.
//! `LOCKKIT_BENCH_ROUNDS` (default 5) and `LOCKKIT_BENCH_MS` (default 300) tune it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use lockkit::raw::{Futex, PosixSem, PthreadMutex, RawLock, Spin, SysvSem};
use lockkit::{GenLock, GenLockSet, ShmRegion};

mod common;
use common::{GlibcMutex, KamailioFutex};

/// Shared control words and results, each on its own cache line.
#[repr(C, align(64))]
#[derive(Default, lockkit::ShmSafe)]
struct Line(AtomicU64);

#[derive(Default, lockkit::ShmSafe)]
#[repr(C)]
struct Control {
    ready: Line,
    start: Line,
    stop: Line,
    /// Incremented inside the critical section with a plain load + store.
    counter: Line,
    ops: [Line; 16],
    stripes: [Line; 16],
}

/// The locks under test, each in the region.
enum Kind<'r> {
    Gen(&'r GenLock<Futex>),
    Spin(&'r GenLock<Spin>),
    Pthread(&'r GenLock<PthreadMutex>),
    Sem(&'r GenLock<PosixSem>),
    Sysv(&'r GenLock<SysvSem>),
    Kamailio(&'r KamailioFutex),
    Glibc(&'r GlibcMutex),
}

impl Kind<'_> {
    #[inline]
    fn with(&self, f: impl FnOnce()) {
        fn guarded<R: RawLock>(l: &GenLock<R>, f: impl FnOnce()) {
            let _g = l.lock();
            f();
        }
        match self {
            Kind::Gen(l) => guarded(l, f),
            Kind::Spin(l) => guarded(l, f),
            Kind::Pthread(l) => guarded(l, f),
            Kind::Sem(l) => guarded(l, f),
            Kind::Sysv(l) => guarded(l, f),
            Kind::Kamailio(l) => {
                l.lock();
                f();
                l.unlock();
            }
            Kind::Glibc(l) => {
                l.lock();
                f();
                l.unlock();
            }
        }
    }
}

struct Outcome {
    mops: f64,
    fairness: f64,
    cpu_per_mop: f64,
}

fn children_cpu() -> f64 {
    // SAFETY: a valid out pointer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// One round: `n` workers, released together, run `op` until told to stop.
fn round(ctl: &Control, n: usize, run_for: Duration, op: impl Fn(usize, u64)) -> Outcome {
    for l in [&ctl.ready, &ctl.start, &ctl.stop, &ctl.counter] {
        l.0.store(0, SeqCst);
    }
    for i in 0..16 {
        ctl.ops[i].0.store(0, SeqCst);
        ctl.stripes[i].0.store(0, SeqCst);
    }
    let cpu0 = children_cpu();
    let mut pids = Vec::new();
    for w in 0..n {
        // SAFETY: the bench is single-threaded here; the child only runs `op` on shared
        // memory and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            ctl.ready.0.fetch_add(1, SeqCst);
            while ctl.start.0.load(Acquire) == 0 {
                std::hint::spin_loop();
            }
            let mut ops = 0u64;
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (w as u64 + 1);
            while ctl.stop.0.load(Relaxed) == 0 {
                for _ in 0..64 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    op(w, rng);
                }
                ops += 64;
            }
            ctl.ops[w].0.store(ops, SeqCst);
            // SAFETY: leave without running the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        pids.push(pid);
    }
    while ctl.ready.0.load(SeqCst) < n as u64 {
        std::thread::yield_now();
    }
    let t0 = Instant::now();
    ctl.start.0.store(1, Release);
    std::thread::sleep(run_for);
    ctl.stop.0.store(1, Release);
    for pid in pids {
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let per: Vec<u64> = (0..n).map(|i| ctl.ops[i].0.load(SeqCst)).collect();
    let total: u64 = per.iter().sum();
    let min = *per.iter().min().unwrap();
    let max = *per.iter().max().unwrap();
    Outcome {
        mops: total as f64 / elapsed / 1e6,
        fairness: max as f64 / min.max(1) as f64,
        cpu_per_mop: (children_cpu() - cpu0) / (total as f64 / 1e6),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing we need. Running
    // under `cargo test` (no --bench) only checks that the harness starts.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick {
        1
    } else {
        env("LOCKKIT_BENCH_ROUNDS", 5) as usize
    };
    let run_for = Duration::from_millis(if quick {
        20
    } else {
        env("LOCKKIT_BENCH_MS", 300)
    });
    // glibc takes a single-thread fast path until the process has created a thread.
    std::thread::spawn(|| {}).join().unwrap();

    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let ctl = region.alloc_zeroed::<Control>().unwrap();
    let gen = region.alloc_zeroed::<GenLock<Futex>>().unwrap();
    let spin = region.alloc_zeroed::<GenLock<Spin>>().unwrap();
    let pthread = region.alloc_zeroed::<GenLock<PthreadMutex>>().unwrap();
    let sem = region.alloc_zeroed::<GenLock<PosixSem>>().unwrap();
    let sysv = region.alloc_zeroed::<GenLock<SysvSem>>().unwrap();
    let kam = region.alloc_zeroed::<[AtomicU32; 16]>().unwrap();
    // SAFETY: KamailioFutex is a repr(C) AtomicU32; the array outlives the reference.
    let kam: &KamailioFutex = unsafe { &*(&kam[0] as *const AtomicU32 as *const KamailioFutex) };
    let (glibc, _g) = GlibcMutex::new(&region, false);
    let (robust, _r) = GlibcMutex::new(&region, true);

    let kinds: Vec<(&str, Kind)> = vec![
        ("GenLock (futex)", Kind::Gen(&gen)),
        ("Kamailio-style futex", Kind::Kamailio(kam)),
        ("pthread pshared", Kind::Glibc(&glibc)),
        ("pthread pshared robust", Kind::Glibc(&robust)),
        ("GenLock<PthreadMutex>", Kind::Pthread(&pthread)),
        ("GenLock<Spin>", Kind::Spin(&spin)),
        ("GenLock<PosixSem>", Kind::Sem(&sem)),
        ("GenLock<SysvSem>", Kind::Sysv(&sysv)),
    ];
    let procs = [2usize, 4, 8];
    // results[kind][procs] = outcomes over rounds
    let mut results: Vec<Vec<Vec<Outcome>>> = kinds
        .iter()
        .map(|_| procs.iter().map(|_| Vec::new()).collect())
        .collect();
    for _ in 0..rounds {
        for (pi, &n) in procs.iter().enumerate() {
            for (ki, (_, kind)) in kinds.iter().enumerate() {
                let o = round(&ctl, n, run_for, |_, _| {
                    kind.with(|| {
                        let c = &ctl.counter.0;
                        c.store(c.load(Relaxed) + 1, Relaxed);
                    })
                });
                let total: u64 = (0..n).map(|i| ctl.ops[i].0.load(SeqCst)).sum();
                assert_eq!(
                    ctl.counter.0.load(SeqCst),
                    total,
                    "{}: lost updates",
                    kinds[ki].0
                );
                results[ki][pi].push(o);
            }
        }
    }
    println!(
        "\n### Contended: one lock, {rounds} interleaved rounds of {} ms, medians\n",
        run_for.as_millis()
    );
    println!("| lock | 2 procs Mops/s | 4 procs | 8 procs | fairness max/min (2/4/8) | CPU s per Mop (2/4/8) |");
    println!("|---|---|---|---|---|---|");
    for (ki, (name, _)) in kinds.iter().enumerate() {
        let m = |pi: usize, f: fn(&Outcome) -> f64| median(results[ki][pi].iter().map(f).collect());
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} / {:.2} | {:.3} / {:.3} / {:.3} |",
            m(0, |o| o.mops),
            m(1, |o| o.mops),
            m(2, |o| o.mops),
            m(0, |o| o.fairness),
            m(1, |o| o.fairness),
            m(2, |o| o.fairness),
            m(0, |o| o.cpu_per_mop),
            m(1, |o| o.cpu_per_mop),
            m(2, |o| o.cpu_per_mop),
        );
    }

    // A lock set of 16 against one lock, random keys, 4 processes.
    let set = region.alloc_zeroed::<GenLockSet<16>>().unwrap();
    let (mut one, mut sixteen) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        one.push(
            round(&ctl, 4, run_for, |_, key| {
                let i = (key % 16) as usize;
                let _g = gen.lock();
                let c = &ctl.stripes[i].0;
                c.store(c.load(Relaxed) + 1, Relaxed);
            })
            .mops,
        );
        sixteen.push(
            round(&ctl, 4, run_for, |_, key| {
                let i = (key % 16) as usize;
                let _g = set.lock(i);
                let c = &ctl.stripes[i].0;
                c.store(c.load(Relaxed) + 1, Relaxed);
            })
            .mops,
        );
    }
    let (one, sixteen) = (median(one), median(sixteen));
    println!("\n### Lock set: 4 processes, random keys over 16 counters, medians\n");
    println!("| lock | Mops/s | ratio |");
    println!("|---|---|---|");
    println!("| one GenLock | {one:.2} | 1.00 |");
    println!(
        "| GenLockSet<16> (a cache line per lock) | {sixteen:.2} | {:.2} |",
        sixteen / one
    );
    // SAFETY: every worker has exited; nothing uses the semaphore afterwards.
    unsafe { sysv.destroy() };
}
