//! One conformance suite, run for every lock backend: the backends are interchangeable.
//!
//! Each check is a generic function over the backend; `conformance!` instantiates the set
//! for one backend as a module of tests.

mod common;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use common::{fork, holder, run_children, serial, wait_for, Child, Handshake};
use lockkit::raw::{Futex, PosixSem, PthreadMutex, RawLock, Spin, SysvSem};
use lockkit::{GenLock, GenLockSet, ShmMutex, ShmRegion};

const WORKERS: usize = 4;
const ROUNDS: u64 = 40_000;
const SIGNAL_ROUNDS: u64 = 3_000;

fn mutual_exclusion_across_forked_processes<R: RawLock + 'static>() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let counter = region.alloc_zeroed::<ShmMutex<u64, R>>().unwrap();
    run_children(WORKERS, |_| {
        for _ in 0..ROUNDS {
            *counter.lock() += 1;
        }
        0
    });
    assert_eq!(
        *counter.lock(),
        WORKERS as u64 * ROUNDS,
        "backend {}",
        R::NAME
    );
    assert!(!counter.is_locked());
    // SAFETY: every process that used it has exited.
    unsafe { counter.destroy() };
}

fn try_lock_fails_while_another_process_holds_it<R: RawLock + 'static>() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let hs = region.alloc_zeroed::<Handshake<R>>().unwrap();
    let child = holder(&hs);
    wait_for(&hs.1, 1);
    assert!(hs.0.try_lock().is_none(), "backend {}", R::NAME);
    assert!(hs.0.is_locked());
    hs.1.store(2, Release);
    wait_for(&hs.1, 3);
    assert!(hs.0.try_lock().is_some(), "backend {}", R::NAME);
    assert_eq!(child.join(), 0);
    // SAFETY: the child has exited and the guards above are gone.
    unsafe { hs.0.destroy() };
}

fn try_lock_for_gives_up_near_the_deadline<R: RawLock + 'static>() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let hs = region.alloc_zeroed::<Handshake<R>>().unwrap();
    let child = holder(&hs);
    wait_for(&hs.1, 1);
    let asked = Duration::from_millis(120);
    let t0 = Instant::now();
    let got = hs.0.try_lock_for(asked);
    let waited = t0.elapsed();
    assert!(got.is_none(), "backend {}", R::NAME);
    assert!(waited >= asked, "{}: gave up early: {waited:?}", R::NAME);
    assert!(
        waited < asked + Duration::from_secs(1),
        "{}: overslept: {waited:?}",
        R::NAME
    );
    hs.1.store(2, Release);
    assert!(hs.0.try_lock_for(Duration::from_secs(10)).is_some());
    assert_eq!(child.join(), 0);
    // SAFETY: the child has exited and the guards above are gone.
    unsafe { hs.0.destroy() };
}

fn a_lock_set_excludes_per_index_across_processes<R: RawLock + 'static>() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let table = region
        .alloc_zeroed::<(GenLockSet<4, R>, [AtomicU64; 4])>()
        .unwrap();
    run_children(WORKERS, |w| {
        for k in 0..ROUNDS / 2 {
            let i = (k as usize + w) % 4;
            let _g = table.0.lock(i);
            // Load, then store: only the lock keeps this exact.
            table.1[i].store(table.1[i].load(Relaxed) + 1, Relaxed);
        }
        0
    });
    let total: u64 = table.1.iter().map(|c| c.load(Relaxed)).sum();
    assert_eq!(total, WORKERS as u64 * ROUNDS / 2, "backend {}", R::NAME);
    // SAFETY: every process that used it has exited.
    unsafe { table.0.destroy() };
}

static SIGNALS: AtomicU64 = AtomicU64::new(0);

/// Whether `pid` is blocked in the kernel in a lock's wait at this instant: a futex (202 on
/// x86_64: the futex, pthread and POSIX semaphore backends) or a SysV semaphore operation
/// (65 semop, 220 semtimedop).
fn blocked_in_a_wait(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .map(|s| matches!(s.split(' ').next(), Some("202" | "65" | "220")))
        .unwrap_or(false)
}

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Relaxed);
}

/// Installs a SIGUSR1 handler without `SA_RESTART`, so blocking calls return `EINTR`.
fn interruptible_handler() {
    // SAFETY: a zeroed sigaction with a plain handler that only bumps an atomic (which is
    // async-signal-safe); the pointers are valid for the call.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = count_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

fn waiters_bombarded_with_signals_keep_mutual_exclusion<R: RawLock + 'static>() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let shared = region
        .alloc_zeroed::<(ShmMutex<u64, R>, AtomicU32, AtomicU64, AtomicU32, AtomicU64)>()
        .unwrap();
    let (counter, done, received, ready, in_wait) =
        (&shared.0, &shared.1, &shared.2, &shared.3, &shared.4);
    let workers: Vec<Child> = (0..3)
        .map(|_| {
            fork(|| {
                interruptible_handler();
                ready.fetch_add(1, Release);
                wait_for(ready, 3);
                for _ in 0..SIGNAL_ROUNDS {
                    let mut g = counter.lock();
                    let v = *g;
                    // Hold the lock a while, so the others wait in the kernel, where the
                    // signals land, rather than in the fast path.
                    std::thread::sleep(Duration::from_micros(20));
                    *g = v + 1;
                }
                received.fetch_add(SIGNALS.load(Relaxed), Relaxed);
                done.fetch_add(1, Release);
                0
            })
        })
        .collect();
    let pids: Vec<libc::pid_t> = workers.iter().map(|c| c.pid() as libc::pid_t).collect();
    let bombarder = fork(|| {
        // Bounded in time, so it cannot outlive a failed test.
        let t0 = Instant::now();
        // No signal before every worker has its handler: the default action kills.
        wait_for(ready, 3);
        while done.load(Acquire) < 3 && t0.elapsed() < Duration::from_secs(60) {
            for &p in &pids {
                if blocked_in_a_wait(p) {
                    in_wait.fetch_add(1, Relaxed);
                }
                // SAFETY: signalling our sibling workers, which handle SIGUSR1.
                unsafe { libc::kill(p, libc::SIGUSR1) };
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        0
    });
    for w in workers {
        assert_eq!(w.join(), 0);
    }
    assert_eq!(bombarder.join(), 0);
    assert_eq!(*counter.lock(), 3 * SIGNAL_ROUNDS, "backend {}", R::NAME);
    assert!(
        received.load(Relaxed) > 0,
        "the workers were interrupted at all"
    );
    // The spin backend never sleeps in the kernel: nothing of it to interrupt.
    assert!(
        in_wait.load(Relaxed) > 0 || R::NAME == "spin",
        "backend {}: no signal was sent while a worker was blocked in the lock's wait",
        R::NAME
    );
    // SAFETY: every process that used it has exited.
    unsafe { counter.destroy() };
}

fn zeroed_memory_is_an_unlocked_lock_of_every_backend<R: RawLock + 'static>() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let lock = region.alloc_zeroed::<GenLock<R>>().unwrap();
    assert!(!lock.is_locked(), "backend {}", R::NAME);
    let g = lock.lock();
    assert!(lock.is_locked());
    assert!(lock.try_lock().is_none());
    drop(g);
    assert!(lock.try_lock().is_some());
    // SAFETY: the guards above are gone and nothing else knows the lock.
    unsafe { lock.destroy() };
}

macro_rules! conformance {
    ($name:ident, $backend:ty) => {
        mod $name {
            use super::*;

            #[test]
            fn mutual_exclusion_across_four_forked_processes() {
                mutual_exclusion_across_forked_processes::<$backend>();
            }
            #[test]
            fn try_lock_fails_while_another_process_holds_it() {
                super::try_lock_fails_while_another_process_holds_it::<$backend>();
            }
            #[test]
            fn try_lock_for_gives_up_near_the_deadline() {
                super::try_lock_for_gives_up_near_the_deadline::<$backend>();
            }
            #[test]
            fn a_lock_set_excludes_per_index_across_processes() {
                super::a_lock_set_excludes_per_index_across_processes::<$backend>();
            }
            #[test]
            fn waiters_bombarded_with_signals_keep_mutual_exclusion() {
                super::waiters_bombarded_with_signals_keep_mutual_exclusion::<$backend>();
            }
            #[test]
            fn zeroed_memory_is_an_unlocked_lock() {
                zeroed_memory_is_an_unlocked_lock_of_every_backend::<$backend>();
            }
        }
    };
}

conformance!(futex, Futex);
conformance!(spin, Spin);
conformance!(pthread_mutex, PthreadMutex);
conformance!(posix_sem, PosixSem);
conformance!(sysv_sem, SysvSem);

/// Whether a SysV semaphore set with this id exists.
fn sysv_id_exists(id: i32) -> bool {
    // SAFETY: GETVAL passes no pointer; on a removed id it fails with EINVAL.
    unsafe { libc::semctl(id, 0, libc::GETVAL) >= 0 }
}

#[test]
fn a_destroyed_sysv_lock_leaves_no_ipc_id_behind() {
    let lock = GenLock::<SysvSem>::with_backend();
    assert_eq!(lock.raw().semid(), None, "created on first use, not before");
    drop(lock.lock());
    let id = lock.raw().semid().expect("created by the first lock");
    assert!(sysv_id_exists(id));
    // SAFETY: nothing uses the lock afterwards.
    unsafe { lock.destroy() };
    assert!(!sysv_id_exists(id), "semctl still finds id {id}");
}

#[test]
fn a_process_killed_holding_a_sysv_lock_leaves_nothing_once_the_owner_cleans_up() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let hs = region.alloc_zeroed::<Handshake<SysvSem>>().unwrap();
    let child = fork(|| {
        let _g = hs.0.lock();
        hs.1.store(1, Release);
        std::thread::sleep(Duration::from_secs(30));
        0
    });
    wait_for(&hs.1, 1);
    assert!(hs.0.try_lock().is_none(), "the child holds it");
    // SAFETY: killing our own child.
    unsafe { libc::kill(child.pid() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(child.join(), 128 + libc::SIGKILL);
    // The next acquirer asks the kernel, finds the holder's process gone and takes over.
    assert!(hs.0.try_lock_for(Duration::from_secs(5)).is_some());
    let id = hs.0.raw().semid().unwrap();
    // SAFETY: the only other user is dead.
    unsafe { hs.0.destroy() };
    assert!(!sysv_id_exists(id), "the owner's cleanup removed the set");
}

#[test]
fn a_robust_pthread_mutex_tells_the_next_owner_that_the_last_one_died() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let m = region
        .alloc_zeroed::<ShmMutex<u64, PthreadMutex>>()
        .unwrap();
    *m.lock() = 1;
    let child = fork(|| {
        let mut g = m.lock();
        *g = 2; // half-way through an update...
        std::mem::forget(g);
        // SAFETY: exits at once, still holding the lock, as a crashing worker would.
        unsafe { libc::_exit(0) }
    });
    assert_eq!(child.join(), 0);
    let mut g = m.lock();
    assert!(
        lockkit::ShmMutexGuard::owner_died(&g),
        "EOWNERDEAD was passed on"
    );
    assert_eq!(*g, 2, "the half-done update is visible for repair");
    *g = 1;
    lockkit::ShmMutexGuard::mark_consistent(&mut g);
    drop(g);
    let g = m.lock();
    assert!(!lockkit::ShmMutexGuard::owner_died(&g));
    assert_eq!(*g, 1);
}

#[test]
fn a_sysv_lock_set_uses_one_semaphore_set_for_all_its_locks() {
    let set = GenLockSet::<8, SysvSem>::with_backend();
    drop(set.lock(5));
    let ids: Vec<_> = set.iter().map(|l| l.raw().semid()).collect();
    let first = ids[0].expect("the set was created when the set was first used");
    assert!(ids.iter().all(|&id| id == Some(first)), "{ids:?}");
    // Different semaphores of the one set: two locks are held at once.
    let a = set.lock(0);
    assert!(set.try_lock(1).is_some());
    drop(a);
    // SAFETY: nothing uses the set afterwards.
    unsafe { set.destroy() };
    assert!(!sysv_id_exists(first));
}

#[test]
fn a_runtime_sized_lock_set_of_another_backend_is_found_only_as_that_backend() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let set = region.alloc_lock_set_with::<SysvSem>(6).unwrap();
    region.publish_lock_set("sysv-stripes", &set).unwrap();
    let found = region
        .lookup_lock_set_with::<SysvSem>("sysv-stripes")
        .unwrap();
    assert_eq!(found.len(), 6);
    let g = set.lock(2);
    assert!(found.try_lock(2).is_none(), "the same locks");
    drop(g);
    let e = region.lookup_lock_set("sysv-stripes").unwrap_err();
    assert!(matches!(e, lockkit::Error::TypeMismatch { .. }), "{e}");
    assert!(e.to_string().contains("sysv-sem"), "{e}");
    let id = set.get(0).unwrap().raw().semid().unwrap();
    // SAFETY: nothing uses the set afterwards.
    unsafe {
        set.destroy();
        region.free_lock_set(set).unwrap();
    }
    assert!(!sysv_id_exists(id));
}
