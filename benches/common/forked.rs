//! A round of forked workers released together: what the contended and striping benches
//! measure with.

use std::sync::atomic::{AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

/// The most workers a round can fork.
pub const MAX_WORKERS: usize = 16;

/// A word alone on its cache line, so the harness's own words move no line a lock uses.
#[repr(C, align(64))]
#[derive(Default, lockkit::ShmSafe)]
pub struct Line(pub AtomicU64);

/// The words a round coordinates its workers through; place it in a region.
#[derive(Default, lockkit::ShmSafe)]
#[repr(C)]
pub struct Gate {
    ready: Line,
    start: Line,
    stop: Line,
    ops: [Line; MAX_WORKERS],
}

/// What one round measured.
pub struct Round {
    /// Operations done by each worker.
    pub per_worker: Vec<u64>,
    pub seconds: f64,
    /// CPU seconds (user + system) the workers used.
    pub cpu_seconds: f64,
    /// Of which in the kernel (futex waits and wakes, mostly).
    pub sys_seconds: f64,
}

impl Round {
    pub fn total(&self) -> u64 {
        self.per_worker.iter().sum()
    }

    pub fn mops(&self) -> f64 {
        self.total() as f64 / self.seconds / 1e6
    }

    /// Most operations by one worker over fewest.
    pub fn fairness(&self) -> f64 {
        let max = self.per_worker.iter().max().copied().unwrap_or(0);
        let min = self.per_worker.iter().min().copied().unwrap_or(0);
        max as f64 / min.max(1) as f64
    }

    pub fn cpu_per_mop(&self) -> f64 {
        self.cpu_seconds / (self.total() as f64 / 1e6)
    }
}

/// Forks `workers` processes, releases them together and lets each call `op(worker,
/// random key)` in a loop for `run_for`; a fork failure panics.
pub fn round(gate: &Gate, workers: usize, run_for: Duration, op: impl Fn(usize, u64)) -> Round {
    assert!(workers <= MAX_WORKERS, "at most {MAX_WORKERS} workers");
    for l in [&gate.ready, &gate.start, &gate.stop] {
        l.0.store(0, SeqCst);
    }
    for o in &gate.ops {
        o.0.store(0, SeqCst);
    }
    let before = children_usage();
    let pids: Vec<libc::pid_t> = (0..workers)
        .map(|w| {
            // SAFETY: the benches fork from one thread; the child only runs `op` on shared
            // memory and `_exit`s.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                gate.ready.0.fetch_add(1, SeqCst);
                while gate.start.0.load(Acquire) == 0 {
                    std::hint::spin_loop();
                }
                let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ ((w as u64 + 1) << 20);
                let mut n = 0u64;
                while gate.stop.0.load(Relaxed) == 0 {
                    for _ in 0..64 {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        op(w, rng);
                    }
                    n += 64;
                }
                gate.ops[w].0.store(n, SeqCst);
                // SAFETY: leave without running the parent's exit handlers.
                unsafe { libc::_exit(0) };
            }
            pid
        })
        .collect();
    while gate.ready.0.load(SeqCst) < workers as u64 {
        std::thread::yield_now();
    }
    let t0 = Instant::now();
    gate.start.0.store(1, Release);
    std::thread::sleep(run_for);
    gate.stop.0.store(1, Release);
    for pid in pids {
        let mut status = 0;
        // SAFETY: reaping our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            r == pid && status == 0,
            "worker {pid} ended with status {status}"
        );
    }
    let seconds = t0.elapsed().as_secs_f64();
    let after = children_usage();
    Round {
        per_worker: gate.ops[..workers]
            .iter()
            .map(|o| o.0.load(SeqCst))
            .collect(),
        seconds,
        cpu_seconds: (after.0 - before.0) + (after.1 - before.1),
        sys_seconds: after.1 - before.1,
    }
}

/// User and system CPU seconds of the reaped children.
fn children_usage() -> (f64, f64) {
    // SAFETY: a valid out pointer for getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

/// The middle value (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A number from the environment, or `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `cargo bench` passes `--bench`; `cargo test --benches` does not, and then a bench only
/// checks that it starts: one short round.
pub fn rounds_and_length(default_rounds: u64) -> (usize, Duration) {
    if std::env::args().any(|a| a == "--bench") {
        (
            env("LOCKKIT_BENCH_ROUNDS", default_rounds) as usize,
            Duration::from_millis(env("LOCKKIT_BENCH_MS", 300)),
        )
    } else {
        (1, Duration::from_millis(20))
    }
}
