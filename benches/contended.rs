//! Contended throughput between processes: N forked workers released together hammer one
//! lock with a short critical section, for every lock kind, interleaved round by round.
//!
//! `cargo bench --bench contended` prints a Markdown table (the one in BENCHMARKS.md):
//! median Mops/s over the rounds, fairness (max/min operations per worker, median) and CPU
//! seconds per million operations (spinning locks look fast and burn the cores other workers
//! need). Lock sets against one lock: `benches/stripes.rs`.
//! `LOCKKIT_BENCH_ROUNDS` (default 5) and `LOCKKIT_BENCH_MS` (default 300) tune it.

use std::sync::atomic::{AtomicU32, Ordering::*};

use lockkit::raw::{Futex, PosixSem, PthreadMutex, RawLock, Spin, SysvSem};
use lockkit::{GenLock, ShmRegion};

mod common;
use common::forked::{median, round, rounds_and_length, Gate, Line, Round};
use common::{GlibcMutex, KamailioFutex};

/// The harness's words and the counter the critical section increments.
#[derive(Default, lockkit::ShmSafe)]
#[repr(C)]
struct Control {
    gate: Gate,
    /// Incremented inside the critical section with a plain load + store.
    counter: Line,
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

fn main() {
    let (rounds, run_for) = rounds_and_length(5);
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
    let kam = KamailioFutex::over(&kam[0]);
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
    let mut results: Vec<Vec<Vec<Round>>> = kinds
        .iter()
        .map(|_| procs.iter().map(|_| Vec::new()).collect())
        .collect();
    for _ in 0..rounds {
        for (pi, &n) in procs.iter().enumerate() {
            for (ki, (_, kind)) in kinds.iter().enumerate() {
                ctl.counter.0.store(0, SeqCst);
                let o = round(&ctl.gate, n, run_for, |_, _| {
                    kind.with(|| {
                        let c = &ctl.counter.0;
                        c.store(c.load(Relaxed) + 1, Relaxed);
                    })
                });
                assert_eq!(
                    ctl.counter.0.load(SeqCst),
                    o.total(),
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
        let m = |pi: usize, f: fn(&Round) -> f64| median(results[ki][pi].iter().map(f).collect());
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} / {:.2} / {:.2} | {:.3} / {:.3} / {:.3} |",
            m(0, Round::mops),
            m(1, Round::mops),
            m(2, Round::mops),
            m(0, Round::fairness),
            m(1, Round::fairness),
            m(2, Round::fairness),
            m(0, Round::cpu_per_mop),
            m(1, Round::cpu_per_mop),
            m(2, Round::cpu_per_mop),
        );
    }

    // SAFETY: every worker has exited; nothing uses the semaphore afterwards.
    unsafe { sysv.destroy() };
}
