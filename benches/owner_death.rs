//! Owner-death hand-over: how long from the SIGKILL of a process holding a lock to the
//! moment a waiter in another process has it, per backend, over many kills.
//!
//! `cargo bench --bench owner_death` (add `-- 200` for 200 kills per lock); the table it
//! prints is in BENCHMARKS.md.
//!
//! Each kill: a holder process takes the lock and sleeps; a waiter process either blocks on
//! the lock and has been waiting for `WAITING` when the holder is killed (so the waiter is
//! asleep, as in a real server, and its probe schedule is wherever the wait has taken it), or
//! arrives after the death (it is released by a flag once the holder has been reaped).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

use lockkit::raw::{Futex, PosixSem, PthreadMutex, RawLock, Spin, SysvSem};
use lockkit::{GenLock, GenLockGuard, ShmRegion};

/// How long the waiter has been blocked when the holder dies.
const WAITING: Duration = Duration::from_millis(20);

#[repr(C)]
#[derive(Default, lockkit::ShmSafe)]
struct Board<R: RawLock> {
    lock: GenLock<R>,
    held: AtomicU32,
    waiting: AtomicU32,
    go: AtomicU32,
    killed_ns: AtomicU64,
    acquired_ns: AtomicU64,
    told: AtomicU32,
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn fork(work: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the child runs only `work` and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        work();
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

fn spin_until(flag: &AtomicU32) {
    let t0 = std::time::Instant::now();
    while flag.load(Acquire) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "a child stalled");
        std::thread::yield_now();
    }
}

/// One kill; the hand-over time in microseconds. `after`: the waiter comes after the death.
fn one_kill<R: RawLock + 'static>(region: &ShmRegion, after: bool) -> f64 {
    let b = region.alloc_zeroed::<Board<R>>().unwrap();
    let holder = fork(|| {
        std::mem::forget(b.lock.lock());
        b.held.store(1, Release);
        std::thread::sleep(Duration::from_secs(60));
    });
    spin_until(&b.held);
    let waiter = fork(|| {
        b.waiting.store(1, Release);
        if after {
            spin_until(&b.go);
        }
        let g = b.lock.lock();
        b.acquired_ns.store(now_ns(), Release);
        if GenLockGuard::owner_died(&g) {
            b.told.store(1, Release);
        }
    });
    spin_until(&b.waiting);
    // Plus up to a millisecond, so that the kill does not land at the same point of the
    // waiter's nap schedule every time.
    std::thread::sleep(WAITING + Duration::from_nanos(now_ns() % 1_000_000));
    b.killed_ns.store(now_ns(), Release);
    // SAFETY: killing our own child.
    unsafe { libc::kill(holder, libc::SIGKILL) };
    reap(holder);
    b.go.store(1, Release);
    reap(waiter);
    assert_eq!(b.told.load(Acquire), 1, "{}: the waiter was told", R::NAME);
    let us = (b.acquired_ns.load(Acquire) - b.killed_ns.load(Acquire)) as f64 / 1e3;
    // SAFETY: both processes that used the lock have exited.
    unsafe {
        b.lock.destroy();
        region.free(b).unwrap();
    }
    us
}

fn row<R: RawLock + 'static>(region: &ShmRegion, kills: usize, how: &str) {
    for after in [false, true] {
        one_row::<R>(region, kills, how, after);
    }
}

fn one_row<R: RawLock + 'static>(region: &ShmRegion, kills: usize, how: &str, after: bool) {
    let mut t: Vec<f64> = (0..kills).map(|_| one_kill::<R>(region, after)).collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| t[((t.len() - 1) as f64 * p).round() as usize];
    println!(
        "| `GenLock<{}>` | {how} | {} | {:.0} | {:.0} | {:.0} | {kills} |",
        std::any::type_name::<R>().rsplit("::").next().unwrap(),
        if after { "after" } else { "before (20 ms)" },
        pct(0.5),
        pct(0.9),
        t[t.len() - 1],
    );
}

/// CPU time of this process over `secs`, in seconds (user + system).
fn cpu_s() -> f64 {
    // SAFETY: rusage is plain data filled by getrusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// What waiting behind a live holder costs: the share of a core a `GenLock<R>` waiter uses
/// while a holder in another process keeps the lock for `secs` (the naps' wake-ups and
/// questions to the kernel).
fn waiting_cost<R: RawLock + 'static>(region: &ShmRegion, secs: f64) -> f64 {
    let b = region.alloc_zeroed::<Board<R>>().unwrap();
    let holder = fork(|| {
        std::mem::forget(b.lock.lock());
        b.held.store(1, Release);
        std::thread::sleep(Duration::from_secs(60));
    });
    spin_until(&b.held);
    let (c0, t0) = (cpu_s(), std::time::Instant::now());
    let got = b.lock.try_lock_for(Duration::from_secs_f64(secs));
    let share = (cpu_s() - c0) / t0.elapsed().as_secs_f64();
    assert!(got.is_none(), "the live holder's lock was taken");
    // SAFETY: killing and reaping our own child.
    unsafe { libc::kill(holder, libc::SIGKILL) };
    reap(holder);
    drop(got);
    // The dead holder's lock is taken over (and so can be destroyed).
    drop(b.lock.lock());
    // SAFETY: every process that used the lock has exited or released it.
    unsafe {
        b.lock.destroy();
        region.free(b).unwrap();
    }
    share
}

fn main() {
    let kills = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    println!(
        "| lock | how the death is found | waiter came | median µs | p90 µs | max µs | kills |"
    );
    println!("|---|---|---|---|---|---|---|");
    row::<PthreadMutex>(&region, kills, "kernel robust list (glibc)");
    row::<SysvSem>(
        &region,
        kills,
        "waiter asks the kernel (`F_GETLK`) after each nap on the semaphore (as `Futex`)",
    );
    row::<Futex>(
        &region,
        kills,
        "waiter asks the kernel (`F_GETLK`) after each nap (0.05-0.25 ms, 1 ms after 100 ms)",
    );
    row::<Spin>(&region, kills, "spinner asks the kernel (0.05-1 ms)");
    row::<PosixSem>(
        &region,
        kills,
        "waiter asks the kernel about the holder word's id (0.05-1 ms)",
    );
    println!();
    println!("| lock | waiting behind a live holder for | share of a core the waiter uses |");
    println!("|---|---|---|");
    for secs in [0.1, 1.0] {
        let share = waiting_cost::<Futex>(&region, secs);
        println!("| `GenLock<Futex>` | {secs} s | {:.1}% |", share * 100.0);
    }
    for secs in [0.1, 1.0] {
        let share = waiting_cost::<SysvSem>(&region, secs);
        println!("| `GenLock<SysvSem>` | {secs} s | {:.1}% |", share * 100.0);
    }
}
