//! Regression tests for lost wake-ups and unbounded waits: each one drives a path where a
//! waiter could be left asleep (or spinning) with nobody to wake it, and fails by deadline
//! if it is. Every child runs under a deadline; a stall is reported with what the child was
//! blocked in.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use common::{fork, join_all, serial, wait_for};
use lockkit::raw::{Futex, PosixSem, PthreadMutex, RawLock, Spin, SysvSem};
use lockkit::{GenLock, RecLock, RwLock, ShmLockSet, ShmMutex, ShmRegion, ShmSemaphore};

const ROUND: Duration = Duration::from_secs(10);

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Views the first word of a `#[repr(C)]` lock, to forge a state another process could
/// write into shared memory.
fn first_word<T>(x: &T) -> &AtomicU32 {
    // SAFETY: every lock viewed here is `#[repr(C)]` with an `AtomicU32` first, and the
    // reference keeps the memory alive.
    unsafe { &*(x as *const T as *const AtomicU32) }
}

/// Runs `round` `rounds` times in a child process (so a round that never ends can be killed),
/// and fails if a round sees inconsistent data or the child hangs. Each round starts its
/// threads together, which is what makes narrow races show up. A count of rounds, not a
/// time: a busy machine makes the test slower, never weaker or failed.
fn rounds_in_a_child(rounds: u64, round: impl Fn() -> bool) {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let done = region.alloc_zeroed::<AtomicU64>().unwrap();
    let child = fork(|| {
        for _ in 0..rounds {
            if !round() {
                return 1;
            }
            done.fetch_add(1, Relaxed);
        }
        0
    });
    // Only a hang takes this long, however busy the machine.
    let code = child.join_within(Duration::from_secs(120), || {
        format!("after {} of {rounds} rounds", done.load(Relaxed))
    });
    assert_eq!(code, 0, "a round saw inconsistent data");
}

/// Spawns `n` threads that start `f(i)` at the same instant and joins them.
fn together(n: usize, f: impl Fn(usize) + Sync) {
    let ready = AtomicU32::new(0);
    std::thread::scope(|s| {
        for i in 0..n {
            let (ready, f) = (&ready, &f);
            s.spawn(move || {
                ready.fetch_add(1, SeqCst);
                while ready.load(SeqCst) < n as u32 {
                    std::hint::spin_loop();
                }
                f(i);
            });
        }
    });
}

#[test]
fn readers_are_not_left_asleep_when_a_writer_comes_and_goes_before_they_sleep() {
    // The ABA of the old RwLock: a reader reads the state while a writer is counted, the
    // writer enters and leaves (waking the state word) before the reader sleeps, and the
    // reader then sleeps on a word that already holds the value it expects.
    let _s = serial();
    rounds_in_a_child(1000, || {
        let rw = RwLock::new((0u64, 0u64));
        let torn = AtomicU32::new(0);
        together(3, |i| {
            for _ in 0..3 {
                if i == 0 {
                    let mut g = rw.write();
                    g.0 += 1;
                    g.1 += 1;
                } else {
                    let g = rw.read();
                    if g.0 != g.1 {
                        torn.store(1, Relaxed);
                    }
                }
            }
        });
        let end = *rw.read();
        torn.load(Relaxed) == 0 && end == (3, 3)
    });
}

#[test]
fn a_writer_that_gives_up_does_not_strand_an_arriving_reader() {
    // One reader inside, one arriving, one writer that tries and gives up: the arriving
    // reader, held back while the writer was counted, must not sleep through its leaving.
    let _s = serial();
    rounds_in_a_child(1000, || {
        let rw = RwLock::new(0u64);
        let inside = rw.read();
        together(2, |i| {
            if i == 0 {
                drop(rw.read());
            } else {
                let got = rw.try_write().is_some();
                assert!(!got, "a reader is inside");
            }
        });
        drop(inside);
        let free = rw.try_write().is_some();
        free
    });
}

#[test]
fn a_writer_that_times_out_does_not_strand_an_arriving_reader() {
    let _s = serial();
    rounds_in_a_child(1000, || {
        let rw = RwLock::new(0u64);
        let inside = rw.read();
        together(2, |i| {
            if i == 0 {
                drop(rw.read());
            } else {
                let got = rw.try_write_for(Duration::from_micros(20)).is_some();
                assert!(!got, "a reader is inside");
            }
        });
        drop(inside);
        let free = rw.try_write().is_some();
        free
    });
}

#[test]
fn a_timed_read_at_the_reader_limit_gives_up_at_its_deadline() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let rw = region.alloc_zeroed::<RwLock<u64>>().unwrap();
    // What 2^30 leaked read guards would leave: the reader count at its limit.
    first_word(&*rw).store(RwLock::<u64>::MAX_READERS, SeqCst);
    let child = fork(|| {
        let t0 = Instant::now();
        let got = rw.try_read_for(Duration::from_millis(50)).is_some();
        let waited = t0.elapsed();
        i32::from(got || waited > Duration::from_secs(1) || waited < Duration::from_millis(50))
    });
    assert_eq!(child.join_within(ROUND, String::new), 0);
    assert!(rw.try_read().is_none(), "no reader fits beyond the limit");
}

#[test]
fn a_reader_waiting_at_the_reader_limit_gets_in_when_one_leaves() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let shared = region.alloc_zeroed::<(RwLock<u64>, AtomicU32)>().unwrap();
    let (rw, step) = (&shared.0, &shared.1);
    let g = rw.read();
    first_word(rw).fetch_add(RwLock::<u64>::MAX_READERS - 1, SeqCst);
    let child = fork(|| {
        step.store(1, Release);
        drop(rw.read());
        0
    });
    wait_for(step, 1);
    std::thread::sleep(Duration::from_millis(20));
    drop(g); // one reader leaves: the waiting one fits now
    assert_eq!(child.join_within(ROUND, || format!("{:?}", *rw)), 0);
}

#[test]
fn a_semaphore_post_at_the_limit_panics_and_keeps_every_token() {
    let full = ShmSemaphore::MAX_TOKENS;
    let sem = ShmSemaphore::new(full);
    let r = catch_unwind(AssertUnwindSafe(|| sem.post()));
    let msg = panic_message(r.expect_err("posting past the limit must panic"));
    assert!(msg.contains("overflow"), "{msg}");
    assert_eq!(sem.value(), full, "no token was lost");
    assert!(sem.try_wait());
    assert_eq!(sem.value(), full - 1);
}

#[test]
fn a_recursive_lock_refuses_a_level_past_its_depth_limit() {
    let lock = RecLock::new();
    let g = lock.lock();
    // What 2^32 - 1 leaked guards would leave behind.
    let depth = {
        // SAFETY: RecLock is `#[repr(C)] { raw: Futex, depth: AtomicU32 }`.
        unsafe {
            &*((&lock as *const RecLock as *const u8).add(std::mem::size_of::<Futex>())
                as *const AtomicU32)
        }
    };
    depth.store(u32::MAX, SeqCst);
    let r = catch_unwind(AssertUnwindSafe(|| lock.lock()));
    assert!(r.is_err(), "a level past the limit must be refused");
    assert!(lock.try_lock().is_none(), "try_lock refuses it too");
    assert_eq!(lock.depth(), u32::MAX, "the depth did not wrap");
    assert!(lock.is_locked());
    depth.store(1, SeqCst);
    drop(g);
    assert!(!lock.is_locked());
}

#[test]
fn probing_a_robust_mutex_whose_owner_died_leaves_it_recoverable() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let m = region
        .alloc_zeroed::<ShmMutex<u64, PthreadMutex>>()
        .unwrap();
    let child = fork(|| {
        std::mem::forget(m.lock());
        0
    });
    assert_eq!(child.join(), 0);
    // A diagnostic probe must not consume the owner-died state.
    assert!(m.is_locked(), "the dead owner's lock counts as held");
    assert!(m.is_locked());
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut g = m.lock();
        let died = lockkit::ShmMutexGuard::owner_died(&g);
        lockkit::ShmMutexGuard::mark_consistent(&mut g);
        died
    }));
    assert_eq!(
        r.ok(),
        Some(true),
        "the next owner is told, and can recover"
    );
    assert!(!m.is_locked());
}

/// Relocking from the holding thread: `lock` panics, `try_lock` fails, and `try_lock_for`
/// returns `None` at once, for every backend (run in a child, as the old backends hang).
fn relocking_panics_and_timed_attempts_fail_at_once<R: RawLock + 'static>() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let lock = region.alloc_zeroed::<GenLock<R>>().unwrap();
    let child = fork(|| {
        let g = lock.lock();
        if lock.try_lock().is_some() {
            return 2;
        }
        let t0 = Instant::now();
        if lock.try_lock_for(Duration::from_secs(5)).is_some() {
            return 3;
        }
        if t0.elapsed() > Duration::from_secs(1) {
            return 4;
        }
        let again = catch_unwind(AssertUnwindSafe(|| drop(lock.lock())));
        if again.is_ok() {
            return 5;
        }
        if !lock.is_locked() {
            return 6;
        }
        drop(g);
        if lock.try_lock().is_none() {
            return 7;
        }
        0
    });
    let code = child.join_within(ROUND, String::new);
    // SAFETY: the child has exited; nothing else uses the lock.
    unsafe { lock.destroy() };
    assert_eq!(code, 0, "backend {}", R::NAME);
}

#[test]
fn relocking_a_futex_lock_panics_and_timed_attempts_fail_at_once() {
    relocking_panics_and_timed_attempts_fail_at_once::<Futex>();
}
#[test]
fn relocking_a_spin_lock_panics_and_timed_attempts_fail_at_once() {
    relocking_panics_and_timed_attempts_fail_at_once::<Spin>();
}
#[test]
fn relocking_a_pthread_mutex_panics_and_timed_attempts_fail_at_once() {
    relocking_panics_and_timed_attempts_fail_at_once::<PthreadMutex>();
}
#[test]
fn relocking_a_posix_semaphore_panics_and_timed_attempts_fail_at_once() {
    relocking_panics_and_timed_attempts_fail_at_once::<PosixSem>();
}
#[test]
fn relocking_a_sysv_semaphore_panics_and_timed_attempts_fail_at_once() {
    relocking_panics_and_timed_attempts_fail_at_once::<SysvSem>();
}

#[test]
fn a_lock_whose_first_use_failed_fails_again_for_the_next_user_instead_of_spinning() {
    let _s = serial();
    let region = ShmRegion::anonymous(8 << 20).unwrap();
    // More semaphores than SEMMSL (32,000 here) in one SysV set: semget fails on first use.
    let set = region.alloc_lock_set_with::<SysvSem>(40_000).unwrap();
    let child = fork(|| {
        let first = catch_unwind(AssertUnwindSafe(|| drop(set.lock(0))));
        let second = catch_unwind(AssertUnwindSafe(|| drop(set.lock(1))));
        i32::from(first.is_ok()) + 2 * i32::from(second.is_ok())
    });
    assert_eq!(child.join_within(ROUND, String::new), 0, "both uses fail");
    let other = fork(|| {
        let again = catch_unwind(AssertUnwindSafe(|| drop(set.lock(2))));
        i32::from(again.is_ok())
    });
    assert_eq!(
        other.join_within(ROUND, String::new),
        0,
        "another process fails the same way, without spinning"
    );
    let _: &ShmLockSet<SysvSem> = &set;
}

#[test]
fn owner_never_pairs_one_processs_pid_with_anothers_tid() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let shared = region.alloc_zeroed::<(GenLock, AtomicU32)>().unwrap();
    let (lock, stop) = (&shared.0, &shared.1);
    // Single-threaded children: each one's tid is its pid.
    let children: Vec<_> = (0..2)
        .map(|_| {
            fork(|| {
                let t0 = Instant::now();
                while stop.load(Relaxed) == 0 && t0.elapsed() < Duration::from_secs(20) {
                    let _g = lock.lock();
                    std::hint::spin_loop();
                }
                0
            })
        })
        .collect();
    let (mut seen, mut wrong) = (0u64, Vec::new());
    let t0 = Instant::now();
    // As many samples as the check needs; the deadline only catches children that stopped.
    while seen < 1000 && t0.elapsed() < Duration::from_secs(60) {
        if let Some(o) = lock.owner() {
            seen += 1;
            if o.pid != 0 && o.pid != o.tid && wrong.len() < 5 {
                wrong.push(o);
            }
        }
    }
    stop.store(1, Relaxed);
    join_all(children, ROUND, String::new);
    assert!(
        seen >= 1000,
        "the children stopped holding the lock: {seen} samples in 60 s"
    );
    assert!(wrong.is_empty(), "owners mixing two processes: {wrong:?}");
}

/// A seccomp filter that makes `futex` fail with ENOSYS, as a sandbox can.
fn forbid_futex() {
    use libc::{sock_filter, sock_fprog, BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let nr = libc::SYS_futex as u32;
    let filter = [
        // A = seccomp_data.nr
        sock_filter {
            code: (BPF_LD | BPF_W | BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        sock_filter {
            code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: nr,
        },
        sock_filter {
            code: (BPF_RET | BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        },
        sock_filter {
            code: (BPF_RET | BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let prog = sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: plain prctl calls; `prog` and `filter` outlive them and the kernel copies the
    // program.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const sock_fprog
            ),
            0
        );
    }
}

#[test]
fn a_futex_error_other_than_a_wake_up_fails_loudly_instead_of_spinning() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let shared = region
        .alloc_zeroed::<(GenLock, AtomicU32, AtomicU64)>()
        .unwrap();
    let (lock, step, said_enosys) = (&shared.0, &shared.1, &shared.2);
    let held = lock.lock();
    let child = fork(|| {
        // Record the panic's message first thing: once futex is forbidden, glibc itself may
        // abort later (its own locks need futex too), so the exit code proves nothing.
        let flag = said_enosys as *const AtomicU64 as usize;
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
            if msg.contains("ENOSYS") && msg.contains("futex") {
                // SAFETY: the region outlives this child, which exits right after the panic.
                unsafe { &*(flag as *const AtomicU64) }.store(1, Release);
            }
        }));
        forbid_futex();
        step.store(1, Release);
        drop(lock.lock());
        0
    });
    wait_for(step, 1);
    let code = child.join_within(ROUND, || format!("{:?}", lock));
    drop(held);
    assert_ne!(code, 0, "the lock cannot have been taken");
    assert_eq!(
        said_enosys.load(Acquire),
        1,
        "the panic names the error ({code})"
    );
}

#[test]
fn a_writer_killed_while_waiting_does_not_keep_readers_out() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let shared = region.alloc_zeroed::<(RwLock<u64>, AtomicU32)>().unwrap();
    let (rw, step) = (&shared.0, &shared.1);
    let inside = rw.read();
    let writer = fork(|| {
        step.store(1, Release);
        *rw.write() += 1;
        0
    });
    wait_for(step, 1);
    // Let the writer register and fall asleep, then kill it there.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(writer.kill(), 128 + libc::SIGKILL);
    let reader = fork(|| {
        let g = rw.read();
        i32::from(*g != 0)
    });
    std::thread::sleep(Duration::from_millis(20));
    drop(inside);
    assert_eq!(reader.join_within(ROUND, || format!("{:?}", *rw)), 0);
    assert!(rw.try_write().is_some(), "and a writer gets in afterwards");
}

/// Drops, in a forked child, a bitwise copy of a guard the parent holds (what `fork` does to
/// every guard on the forking thread's stack), and checks the lock is still the parent's.
fn a_fork_copy_of_a_guard<G>(guard: &G, still_held: impl Fn() -> bool) {
    let _s = serial();
    // SAFETY: a bitwise copy, as fork makes; the parent never drops it (ManuallyDrop), the
    // child drops it once.
    let copy = std::mem::ManuallyDrop::new(unsafe { std::ptr::read(guard) });
    let child = fork(move || {
        drop(std::mem::ManuallyDrop::into_inner(copy));
        0
    });
    assert_eq!(child.join_within(ROUND, String::new), 0);
    assert!(still_held(), "the child's copy released the parent's lock");
}

#[test]
fn a_guard_copied_into_a_fork_child_does_not_release_the_parents_lock() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let shared = region
        .alloc_zeroed::<(GenLock, ShmMutex<u64>, RecLock, RwLock<u64>, RwLock<u64>)>()
        .unwrap();
    let (lock, mutex, rec, rw_w, rw_r) = (&shared.0, &shared.1, &shared.2, &shared.3, &shared.4);
    let g = lock.lock();
    a_fork_copy_of_a_guard(&g, || lock.is_locked());
    drop(g);
    assert!(
        !lock.is_locked(),
        "and the parent's own guard still releases it"
    );
    let m = mutex.lock();
    a_fork_copy_of_a_guard(&m, || mutex.is_locked());
    drop(m);
    assert!(!mutex.is_locked());
    let r = rec.lock();
    a_fork_copy_of_a_guard(&r, || rec.depth() == 1);
    drop(r);
    assert!(!rec.is_locked());
    let w = rw_w.write();
    a_fork_copy_of_a_guard(&w, || rw_w.readers().is_none());
    drop(w);
    assert_eq!(rw_w.readers(), Some(0));
    let rd = rw_r.read();
    a_fork_copy_of_a_guard(&rd, || rw_r.readers() == Some(1));
    drop(rd);
    assert_eq!(rw_r.readers(), Some(0));
}
