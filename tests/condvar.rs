//! The condition variable across forked processes: producers and consumers hand over exact
//! counts, a waiter killed in its sleep breaks nobody, a waiter is told when the mutex's
//! owner died while it slept, and a `#[shared_locked]` struct carries one as a field.
//!
//! Every wait here has a deadline (a lost wake-up fails a test with what it saw instead of
//! hanging it), and no test depends on how much fits in a time window.

mod common;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use common::{fork, join_all, serial, CHILD_DEADLINE};
use lockkit::{shared_locked, GenLock, ShmCondvar, ShmMutex, ShmMutexGuard, ShmRegion};

/// Far longer than any hand-over takes on a loaded machine: a wait that runs this long has
/// lost its wake-up.
const WAIT: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds, failing after 20 s with `what()`.
fn wait_until(mut cond: impl FnMut() -> bool, what: impl Fn() -> String) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "stalled: {}",
            what()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

const CAP: usize = 4;

/// A bounded queue of item values.
#[derive(lockkit::ShmSafe, Clone, Copy)]
#[repr(C)]
struct Ring {
    items: [u64; CAP],
    head: u32,
    len: u32,
    /// Items taken out so far, by all consumers.
    popped: u64,
}

/// What the consumers add up, each in its own slot, and how often their waits gave up.
#[derive(lockkit::ShmSafe, Default)]
#[repr(C)]
struct Tally {
    count: [AtomicU64; 3],
    sum: [AtomicU64; 3],
    gave_up: AtomicU64,
}

#[test]
fn producers_and_consumers_in_forked_processes_hand_over_exact_counts() {
    const PRODUCERS: u64 = 2;
    const PER_PRODUCER: u64 = 4_000;
    const TOTAL: u64 = PRODUCERS * PER_PRODUCER;
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let ring = region
        .alloc(ShmMutex::new(Ring {
            items: [0; CAP],
            head: 0,
            len: 0,
            popped: 0,
        }))
        .unwrap();
    let not_empty = region.alloc_zeroed::<ShmCondvar>().unwrap();
    let not_full = region.alloc_zeroed::<ShmCondvar>().unwrap();
    let tally = region.alloc_zeroed::<Tally>().unwrap();
    let (ring, not_empty, not_full, tally) = (&*ring, &*not_empty, &*not_full, &*tally);

    let producer = |p: u64| {
        move || {
            for i in 0..PER_PRODUCER {
                let mut r = ring.lock();
                let w = not_full.wait_while_for(&mut r, WAIT, |r| r.len as usize == CAP);
                if w.timed_out() {
                    return 10; // a lost wake-up: the queue stayed full
                }
                let at = (r.head as usize + r.len as usize) % CAP;
                r.items[at] = p * PER_PRODUCER + i + 1;
                r.len += 1;
                drop(r);
                not_empty.notify_one();
            }
            0
        }
    };
    // Consumer `c` waits `nap` at a time: the short naps of consumer 2 give up over and over,
    // which must never cost another waiter its wake-up.
    let consumer = |c: usize, nap: Duration| {
        move || {
            let t0 = Instant::now();
            loop {
                let mut r = ring.lock();
                let w = not_empty.wait_while_for(&mut r, nap, |r| r.len == 0 && r.popped < TOTAL);
                if w.timed_out() {
                    tally.gave_up.fetch_add(1, Relaxed);
                    if t0.elapsed() > CHILD_DEADLINE {
                        return 11;
                    }
                    if nap == WAIT {
                        return 12; // a lost wake-up
                    }
                    continue;
                }
                if r.popped == TOTAL {
                    drop(r);
                    not_empty.notify_all(); // the other consumers are done too
                    return 0;
                }
                let v = r.items[r.head as usize];
                r.head = (r.head + 1) % CAP as u32;
                r.len -= 1;
                r.popped += 1;
                let last = r.popped == TOTAL;
                drop(r);
                tally.count[c].fetch_add(1, Relaxed);
                tally.sum[c].fetch_add(v, Relaxed);
                not_full.notify_one();
                if last {
                    not_empty.notify_all();
                }
            }
        }
    };
    let children = vec![
        fork(consumer(0, WAIT)),
        fork(consumer(1, WAIT)),
        fork(consumer(2, Duration::from_micros(200))),
        fork(producer(0)),
        fork(producer(1)),
    ];
    join_all(children, CHILD_DEADLINE, || {
        let r = ring.try_lock_for(Duration::from_millis(100)).map(|r| *r);
        format!(
            "ring: {:?}, waiters: not_empty {} not_full {}",
            r.map(|r| (r.len, r.popped)),
            not_empty.waiters(),
            not_full.waiters()
        )
    });
    let count: u64 = tally.count.iter().map(|c| c.load(Relaxed)).sum();
    let sum: u64 = tally.sum.iter().map(|c| c.load(Relaxed)).sum();
    assert_eq!(count, TOTAL, "every item taken exactly once");
    assert_eq!(sum, TOTAL * (TOTAL + 1) / 2, "and each item once");
    assert_eq!(ring.lock().len, 0);
    assert_eq!(not_empty.waiters(), 0);
    assert_eq!(not_full.waiters(), 0);
}

/// A mutex, a condition variable and a step counter for the tests below.
#[derive(lockkit::ShmSafe, Default)]
#[repr(C)]
struct Scene {
    m: ShmMutex<u32>,
    cv: ShmCondvar,
    step: AtomicU32,
}

#[test]
fn a_waiter_killed_in_its_sleep_breaks_no_other_waiter() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let scene = region.alloc_zeroed::<Scene>().unwrap();
    let s = &*scene;
    let waiter = || {
        let mut g = s.m.lock();
        let w = s.cv.wait_while_for(&mut g, WAIT, |v| *v == 0);
        i32::from(w.timed_out())
    };
    let doomed = fork(waiter);
    // Registered, and past the release that follows the registration.
    wait_until(
        || s.cv.waiters() == 1 && !s.m.is_locked(),
        || format!("waiters {}, locked {}", s.cv.waiters(), s.m.is_locked()),
    );
    assert_eq!(doomed.kill(), 128 + libc::SIGKILL);
    assert!(!s.m.is_locked(), "a sleeping waiter holds no lock");
    assert!(!s.m.is_inconsistent());
    assert_eq!(s.cv.waiters(), 1, "the dead waiter stays counted");

    let survivor = fork(waiter);
    wait_until(
        || s.cv.waiters() == 2,
        || format!("waiters {}", s.cv.waiters()),
    );
    *s.m.lock() = 1;
    // One notification: the kernel dropped the dead sleeper from the futex's queue, so it
    // reaches the live one.
    s.cv.notify_one();
    assert_eq!(
        survivor.join(),
        0,
        "the live waiter was woken, not timed out"
    );
    assert_eq!(s.cv.waiters(), 1);
    let g = s.m.lock();
    assert!(!ShmMutexGuard::owner_died(&g));
}

#[test]
fn a_waiter_is_told_when_the_mutex_owner_died_after_notifying_it() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let scene = region.alloc_zeroed::<Scene>().unwrap();
    let s = &*scene;
    let mut g = s.m.lock();
    // Takes the lock (possible only once the parent's wait released it), writes, notifies,
    // and dies holding it.
    let doomed = fork(|| {
        let mut g = s.m.lock();
        *g = 42;
        s.cv.notify_one();
        std::mem::forget(g);
        // SAFETY: killing this very process; nothing runs after it.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        1
    });
    let w = s.cv.wait_while_for(&mut g, WAIT, |v| *v != 42);
    assert!(!w.timed_out(), "the dying owner's notify woke the waiter");
    assert!(
        ShmMutexGuard::owner_died(&g),
        "the retaken guard carries the death"
    );
    assert_eq!(*g, 42, "what the dead owner wrote is there to repair");
    ShmMutexGuard::mark_consistent(&mut g);
    drop(g);
    assert_eq!(doomed.join(), 128 + libc::SIGKILL);
    assert!(!ShmMutexGuard::owner_died(&s.m.lock()));
}

#[test]
fn a_timed_waiter_is_told_when_the_mutex_owner_died_without_notifying() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let scene = region.alloc_zeroed::<Scene>().unwrap();
    let s = &*scene;
    let mut g = s.m.lock();
    let doomed = fork(|| {
        let g = s.m.lock();
        s.step.store(1, Release);
        std::mem::forget(g);
        // SAFETY: killing this very process; nothing runs after it.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        1
    });
    // Nobody notifies: each timed wait lets the child in, until a retake finds it dead.
    let t0 = Instant::now();
    loop {
        let w = s.cv.wait_for(&mut g, Duration::from_millis(10));
        if ShmMutexGuard::owner_died(&g) {
            assert!(w.timed_out(), "nobody notified");
            break;
        }
        assert!(
            t0.elapsed() < WAIT,
            "never told; step {}",
            s.step.load(Acquire)
        );
    }
    assert_eq!(s.step.load(Acquire), 1);
    ShmMutexGuard::mark_consistent(&mut g);
    drop(g);
    assert_eq!(doomed.join(), 128 + libc::SIGKILL);
}

#[test]
fn a_genlock_guard_waits_for_data_kept_in_atomics() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let shared = region
        .alloc_zeroed::<(GenLock, ShmCondvar, AtomicU32)>()
        .unwrap();
    let (lock, cv, flag) = (&shared.0, &shared.1, &shared.2);
    let child = fork(|| {
        let mut g = lock.lock();
        let w = cv.wait_while_for(&mut g, WAIT, |()| flag.load(Relaxed) == 0);
        i32::from(w.timed_out())
    });
    wait_until(|| cv.waiters() == 1, || format!("waiters {}", cv.waiters()));
    {
        let _g = lock.lock();
        flag.store(1, Relaxed);
    }
    cv.notify_all();
    assert_eq!(child.join(), 0);
}

/// A job board: workers wait on `wake` for queued jobs.
#[shared_locked]
pub struct Jobs {
    state: GenLock,
    #[guarded_by(state)]
    queued: u32,
    #[guarded_by(state)]
    done: u32,
    wake: ShmCondvar,
}

#[test]
fn a_shared_locked_struct_carries_a_condvar_its_workers_wait_on() {
    const JOBS: u32 = 3_000;
    const WORKERS: usize = 3;
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    // The generated constructor is `const`, and takes `ShmCondvar::new()` as a value.
    static _IN_A_STATIC: Jobs = Jobs::new(0, 0, ShmCondvar::new());
    let jobs = region.alloc(Jobs::new(0, 0, ShmCondvar::new())).unwrap();
    let jobs = &*jobs;
    let worker = || loop {
        let mut g = jobs.lock_state();
        let w = jobs
            .wake
            .wait_while_for(&mut g, WAIT, |s| s.queued == 0 && s.done < JOBS);
        if w.timed_out() {
            return 1;
        }
        if g.done == JOBS {
            return 0;
        }
        g.queued -= 1;
        g.done += 1;
        if g.done == JOBS {
            drop(g);
            jobs.wake.notify_all();
        }
    };
    let children: Vec<_> = (0..WORKERS).map(|_| fork(worker)).collect();
    for _ in 0..JOBS {
        jobs.lock_state().queued += 1;
        jobs.wake.notify_one();
    }
    join_all(children, CHILD_DEADLINE, || {
        format!("waiters {}", jobs.wake.waiters())
    });
    let g = jobs.lock_state();
    assert_eq!((g.queued, g.done), (0, JOBS));
}

#[test]
fn a_guard_copied_into_a_fork_child_cannot_wait_there() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let scene = region.alloc_zeroed::<Scene>().unwrap();
    let s = &*scene;
    let mut g = s.m.lock();
    let g_ref = &mut g;
    let child = fork(move || {
        // The copy's lock is the parent's: waiting would release it behind the parent's back.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.cv.wait_for(g_ref, Duration::from_millis(1))
        }));
        i32::from(r.is_ok())
    });
    assert_eq!(child.join(), 0, "the wait panicked in the child");
    let owner = s.m.owner().expect("still held");
    assert_eq!(owner.pid, std::process::id(), "by the parent");
    assert_eq!(s.cv.waiters(), 0, "the refused wait never registered");
    drop(g);
    assert!(!s.m.is_locked());
}

/// A forked waiter on a `GenLock<R>` is woken by the parent's notify, for backend `R`.
fn waits_and_wakes_with<R: lockkit::raw::RawLock>() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let shared = region
        .alloc_zeroed::<(GenLock<R>, ShmCondvar, AtomicU32)>()
        .unwrap();
    let (lock, cv, flag) = (&shared.0, &shared.1, &shared.2);
    let child = fork(|| {
        let mut g = lock.lock();
        let w = cv.wait_while_for(&mut g, WAIT, |()| flag.load(Relaxed) == 0);
        drop(g);
        i32::from(w.timed_out())
    });
    wait_until(
        || cv.waiters() == 1,
        || format!("{}: waiters {}", R::NAME, cv.waiters()),
    );
    {
        let _g = lock.lock();
        flag.store(1, Relaxed);
    }
    cv.notify_one();
    assert_eq!(child.join(), 0, "{}", R::NAME);
    assert!(!lock.is_locked(), "{}", R::NAME);
    // SAFETY: nobody uses the lock any more (the child has exited).
    unsafe { lock.destroy() };
}

#[test]
fn every_lock_backend_can_be_waited_with() {
    use lockkit::raw::{Futex, PosixSem, PthreadMutex, Spin, SysvSem};
    let _s = serial();
    waits_and_wakes_with::<Futex>();
    waits_and_wakes_with::<Spin>();
    waits_and_wakes_with::<PthreadMutex>();
    waits_and_wakes_with::<PosixSem>();
    waits_and_wakes_with::<SysvSem>();
}
