//! Stress tests that drive each protocol's edge paths on purpose: give-ups (`try_*`, timed
//! waits that expire), signals landing in the middle of waits, readers and writers mixed,
//! and more processes than cores. A lost wake-up shows up as a stall: the parent watches
//! every worker's progress and fails the test, with what each worker was blocked in, as soon
//! as nobody has made progress for a few seconds. Nothing here can hang.
//!
//! Each test runs `LOCKKIT_STRESS_SECS` seconds (default 3, which keeps `cargo test` short);
//! for a long run: `LOCKKIT_STRESS_SECS=120 cargo test --release --test stress`.

mod common;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use common::{describe_process, fork, serial, Child, Rng};
use lockkit::{
    GenLock, GenLockSet, RecLock, RwLock, ShmCondvar, ShmMutex, ShmRegion, ShmSemaphore,
};

/// More processes than the machine's 2 cores, so holders get descheduled mid-section.
const WORKERS: usize = 6;
/// No progress by any worker for this long is a stall (a lost wake-up): far longer than a
/// busy machine deschedules a process.
const STALL: Duration = Duration::from_secs(20);
/// Operations a stress run does at least, however long that takes on a busy machine.
const MIN_OPS: u64 = 10_000;

fn stress_secs() -> u64 {
    std::env::var("LOCKKIT_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

/// Per-run bookkeeping in shared memory.
#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct Board {
    /// Operations completed, per worker: the progress the parent watches.
    ops: [AtomicU64; WORKERS],
    /// Workers that have installed their signal handler.
    ready: AtomicU32,
    /// Set by the parent when time is up.
    stop: AtomicU32,
    /// Signals sent while the target was inside a blocking system call (futex, semop).
    hits_in_wait: AtomicU64,
    /// Signals the workers' handlers ran.
    handled: AtomicU64,
}

static HANDLED: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    HANDLED.fetch_add(1, Relaxed);
}

/// SIGUSR1 without `SA_RESTART`: a blocking wait returns `EINTR` when it lands.
fn interruptible() {
    // SAFETY: a zeroed sigaction with a handler that only bumps an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

/// Whether `pid` is blocked in a futex or SysV semaphore system call right now.
fn in_blocking_wait(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .map(|s| {
            let nr = s.split(' ').next().unwrap_or("");
            // x86_64: 202 futex, 65 semop, 220 semtimedop.
            matches!(nr, "202" | "65" | "220")
        })
        .unwrap_or(false)
}

/// Runs `work(i, rng, board)` in `WORKERS` processes until the parent says stop (after the
/// run's time and at least [`MIN_OPS`] operations), with a sibling bombarding them with
/// signals, and watches progress. Returns total operations.
fn stress(board: &Board, work: impl Fn(usize, &mut Rng) + Sync) -> u64 {
    stress_with_shutdown(board, work, || {})
}

/// As [`stress`]; the parent calls `shutdown` over and over once it has said stop, until
/// every worker has exited (to release workers that wait for something only the test
/// provides).
fn stress_with_shutdown(
    board: &Board,
    work: impl Fn(usize, &mut Rng) + Sync,
    shutdown: impl Fn(),
) -> u64 {
    let secs = stress_secs();
    let workers: Vec<Child> = (0..WORKERS)
        .map(|i| {
            fork(|| {
                interruptible();
                board.ready.fetch_add(1, Release);
                let mut rng = Rng::new(i as u64);
                while board.stop.load(Relaxed) == 0 {
                    work(i, &mut rng);
                    board.ops[i].fetch_add(1, Relaxed);
                }
                board.handled.fetch_add(HANDLED.load(Relaxed), Relaxed);
                0
            })
        })
        .collect();
    let pids: Vec<u32> = workers.iter().map(Child::pid).collect();
    let bombarder = fork(|| {
        let t0 = Instant::now();
        while board.ready.load(Acquire) < WORKERS as u32 {
            if t0.elapsed() > Duration::from_secs(20) {
                return 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        while board.stop.load(Relaxed) == 0 && t0.elapsed() < Duration::from_secs(secs + 60) {
            for &p in &pids {
                if in_blocking_wait(p) {
                    board.hits_in_wait.fetch_add(1, Relaxed);
                }
                // SAFETY: signalling a sibling worker that handles SIGUSR1.
                unsafe { libc::kill(p as libc::pid_t, libc::SIGUSR1) };
            }
            std::thread::sleep(Duration::from_micros(300));
        }
        0
    });
    let total = |b: &Board| b.ops.iter().map(|o| o.load(Relaxed)).sum::<u64>();
    let t0 = Instant::now();
    let (mut last, mut last_change) = (0, Instant::now());
    let mut children: Vec<Child> = workers;
    children.push(bombarder);
    loop {
        let now = total(board);
        if now != last {
            (last, last_change) = (now, Instant::now());
        }
        if t0.elapsed() >= Duration::from_secs(secs) && now >= MIN_OPS {
            board.stop.store(1, Relaxed);
            // Each worker finishes its current operation; give them the stall time.
            let t1 = Instant::now();
            while t1.elapsed() < STALL && children.iter().any(|c| !c.has_exited()) {
                shutdown();
                std::thread::sleep(Duration::from_millis(1));
            }
            common::join_all(children, Duration::from_secs(5), || {
                format!("stopping after {now} operations")
            });
            break;
        }
        if last_change.elapsed() > STALL {
            let seen: Vec<String> = pids.iter().map(|&p| describe_process(p)).collect();
            drop(children); // kills and reaps
            panic!(
                "no progress for {STALL:?} after {now} operations (a lost wake-up?):\n{}",
                seen.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let ops = total(board);
    assert!(
        board.hits_in_wait.load(Relaxed) > 0,
        "no signal landed while a worker was blocked in a wait"
    );
    assert!(board.handled.load(Relaxed) > 0, "no signal was handled");
    ops
}

#[test]
fn a_reader_writer_lock_under_mixed_give_ups_and_signals_loses_nothing() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let shared = region
        .alloc_zeroed::<(Board, RwLock<(u64, u64)>, AtomicU64, AtomicU32)>()
        .unwrap();
    let (board, rw, writes, torn) = (&shared.0, &shared.1, &shared.2, &shared.3);
    let bump = |g: &mut (u64, u64)| {
        g.0 += 1;
        std::hint::spin_loop();
        g.1 += 1;
        writes.fetch_add(1, Relaxed);
    };
    let check = |g: &(u64, u64)| {
        if g.0 != g.1 {
            torn.store(1, Relaxed);
        }
    };
    stress(board, |_, rng| match rng.below(10) {
        0..=3 => check(&rw.read()),
        4 => bump(&mut rw.write()),
        5 => {
            if let Some(mut g) = rw.try_write() {
                bump(&mut g)
            }
        }
        6 | 7 => {
            if let Some(mut g) = rw.try_write_for(rng.micros(200)) {
                bump(&mut g)
            }
        }
        8 => {
            if let Some(g) = rw.try_read_for(rng.micros(200)) {
                check(&g)
            }
        }
        _ => {
            if let Some(g) = rw.try_read() {
                check(&g)
            }
        }
    });
    assert_eq!(torn.load(Relaxed), 0, "a reader saw a torn write");
    let n = writes.load(Relaxed);
    assert_eq!(*rw.read(), (n, n), "every completed write is there");
}

#[test]
fn a_semaphore_under_timed_waits_and_signals_delivers_every_token_once() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let shared = region
        .alloc_zeroed::<(Board, ShmSemaphore, AtomicU64, AtomicU64, AtomicU64)>()
        .unwrap();
    let (board, sem, posted, tickets, taken) =
        (&shared.0, &shared.1, &shared.2, &shared.3, &shared.4);
    // Producers post, slower than consumers take, so consumers block. A consumer first
    // claims a ticket (one token it will take, posted or not yet), then takes it by an
    // untimed wait, repeated timed waits (each expiry a give-up), or polling. A lost wake-up
    // leaves an untimed waiter asleep with a token there: a stall. At the end the test posts
    // the tokens still owed to claimed tickets.
    let post = || {
        sem.post();
        posted.fetch_add(1, Release);
    };
    stress_with_shutdown(
        board,
        |i, rng| {
            if i % 3 == 0 {
                post();
                std::thread::sleep(rng.micros(300));
                return;
            }
            tickets.fetch_add(1, AcqRel);
            match rng.below(3) {
                0 => sem.wait(),
                1 => while !sem.wait_for(rng.micros(150)) {},
                _ => {
                    while !sem.try_wait() {
                        std::thread::yield_now();
                    }
                }
            }
            taken.fetch_add(1, Relaxed);
        },
        || {
            if posted.load(Acquire) < tickets.load(Acquire) {
                post();
            }
        },
    );
    let (p, t) = (posted.load(Relaxed), taken.load(Relaxed));
    assert_eq!(sem.value() as u64, p - t, "posted {p}, taken {t}");
}

/// Tokens handed from producers to consumers through a condition variable.
#[derive(lockkit::ShmSafe, Default)]
#[repr(C)]
struct Tokens {
    /// Tokens consumers have asked for (each asks for one, then waits for it).
    want: u64,
    posted: u64,
    taken: u64,
}

#[test]
fn a_condition_variable_under_timed_waits_and_signals_wakes_every_owed_consumer() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let shared = region
        .alloc_zeroed::<(Board, ShmMutex<Tokens>, ShmCondvar, ShmCondvar)>()
        .unwrap();
    let (board, m, tokens, demand) = (&shared.0, &shared.1, &shared.2, &shared.3);
    // Producers post a token only when a consumer has asked for one, each post with one
    // notify (mostly notify_one). Consumers wait untimed, in repeated short timed waits (each
    // expiry a give-up), or in a bare `wait` loop, with signals landing in their sleeps. What
    // this checks: exact counts, and that the edge paths never stall the run. (Tokens are not
    // addressed, so a consumer that lost a wake-up is woken by the next post while others
    // take its token: one lost wake-up shows here only if it stalls everyone. The loom models
    // in `condvar::raw` and tests/condvar.rs's ring, where every wake-up is needed at the
    // end, are the tests for that.)
    stress_with_shutdown(
        board,
        |i, rng| {
            if i % 3 == 0 {
                let mut t = m.lock();
                let w = demand.wait_while_for(&mut t, rng.micros(500), |t| t.posted >= t.want);
                if !w.timed_out() {
                    t.posted += 1;
                    drop(t);
                    if rng.below(4) == 0 {
                        tokens.notify_all();
                    } else {
                        tokens.notify_one();
                    }
                }
                return;
            }
            let mut t = m.lock();
            t.want += 1;
            demand.notify_one();
            match rng.below(3) {
                0 => tokens.wait_while(&mut t, |t| t.posted == t.taken),
                1 => {
                    while tokens
                        .wait_while_for(&mut t, rng.micros(150), |t| t.posted == t.taken)
                        .timed_out()
                    {}
                }
                _ => {
                    while t.posted == t.taken {
                        tokens.wait(&mut t);
                    }
                }
            }
            t.taken += 1;
        },
        || {
            let mut t = m.lock();
            if t.posted < t.want {
                t.posted += 1;
                drop(t);
                tokens.notify_one();
            }
        },
    );
    let t = m.lock();
    assert_eq!(
        (t.posted, t.taken),
        (t.want, t.want),
        "every token asked for was taken"
    );
    assert_eq!((tokens.waiters(), demand.waiters()), (0, 0));
}

#[test]
fn a_futex_lock_and_a_lock_set_under_timeouts_and_signals_stay_exclusive() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let shared = region
        .alloc_zeroed::<(
            Board,
            GenLock,
            GenLockSet<4>,
            AtomicU64,
            [AtomicU64; 4],
            AtomicU64,
        )>()
        .unwrap();
    let (board, lock, set, counter, per_key, done) = (
        &shared.0, &shared.1, &shared.2, &shared.3, &shared.4, &shared.5,
    );
    // Load-then-store increments: only mutual exclusion keeps them exact.
    let inc = |c: &AtomicU64| c.store(c.load(Relaxed) + 1, Relaxed);
    stress(board, |_, rng| {
        match rng.below(6) {
            0 | 1 => {
                let _g = lock.lock();
                inc(counter);
            }
            2 => {
                if let Some(_g) = lock.try_lock() {
                    inc(counter)
                } else {
                    return;
                }
            }
            3 => {
                if let Some(_g) = lock.try_lock_for(rng.micros(100)) {
                    inc(counter)
                } else {
                    return;
                }
            }
            _ => {
                let k = rng.below(4) as usize;
                let _g = set.lock(k);
                inc(&per_key[k]);
                done.fetch_add(1, Relaxed);
                return;
            }
        }
        done.fetch_add(1, Relaxed);
    });
    let keyed: u64 = per_key.iter().map(|c| c.load(Relaxed)).sum();
    assert_eq!(
        counter.load(Relaxed) + keyed,
        done.load(Relaxed),
        "an increment was lost"
    );
}

#[test]
fn a_recursive_lock_under_timeouts_and_signals_stays_exclusive() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let shared = region
        .alloc_zeroed::<(Board, RecLock, AtomicU64, AtomicU64)>()
        .unwrap();
    let (board, lock, counter, done) = (&shared.0, &shared.1, &shared.2, &shared.3);
    stress(board, |_, rng| {
        let outer = match rng.below(3) {
            0 => Some(lock.lock()),
            1 => lock.try_lock(),
            _ => lock.try_lock_for(rng.micros(100)),
        };
        if let Some(_outer) = outer {
            let _inner = lock.lock();
            counter.store(counter.load(Relaxed) + 1, Relaxed);
            done.fetch_add(1, Relaxed);
        }
    });
    assert_eq!(counter.load(Relaxed), done.load(Relaxed));
    assert!(!lock.is_locked());
}
