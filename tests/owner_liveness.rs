//! The owner is a process, and only the kernel says it is gone: a live holder is never robbed
//! (whatever its namespaces, the waiter's descriptor limit, `/proc`'s mount options, or a
//! thread that exited with its guard leaked), and a dead one never wedges its lock (killed
//! anywhere, or replaced by `exec`).
//!
//! Tests that need a namespace or a mount fail when they cannot set it up: CI runs as root.

mod common;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

use common::{fork, serial, wait_for, Child};
use lockkit::raw::{Futex, PosixSem, RawLock, Spin};
use lockkit::{GenLock, GenLockGuard, GenLockSet, RwLock, ShmMutex, ShmMutexGuard, ShmRegion};

/// How long a waiter tries a lock that a live process holds: long enough for several probes.
const TRY: Duration = Duration::from_millis(300);
/// How long an acquirer may take to get a dead holder's lock: far more than a probe interval.
const RECOVER: Duration = Duration::from_secs(10);

/// Every lock kind the tests hold, and a handshake word.
#[derive(lockkit::ShmSafe, Default)]
#[repr(C)]
struct Locks {
    futex: GenLock<Futex>,
    spin: GenLock<Spin>,
    sem: GenLock<PosixSem>,
    mutex: ShmMutex<u64>,
    rw: RwLock<u64>,
    set: GenLockSet<4>,
    step: AtomicU32,
}

fn region() -> (ShmRegion, lockkit::ShmBox<Locks>) {
    let region = ShmRegion::anonymous(1 << 20).expect("an anonymous region");
    let locks = region.alloc_zeroed::<Locks>().expect("room for the locks");
    (region, locks)
}

/// The kinds a holder can leave held, each as (name, take and forget a guard, try to take it
/// for `TRY` and say whether that worked, whether the holder is alive by `owner()`).
type Kind = (
    &'static str,
    fn(&Locks),
    fn(&Locks, Duration) -> Option<bool>,
);

fn kinds() -> Vec<Kind> {
    vec![
        (
            "GenLock<Futex>",
            |l| std::mem::forget(l.futex.lock()),
            |l, t| {
                l.futex
                    .try_lock_for(t)
                    .map(|g| GenLockGuard::owner_died(&g))
            },
        ),
        (
            "GenLock<Spin>",
            |l| std::mem::forget(l.spin.lock()),
            |l, t| l.spin.try_lock_for(t).map(|g| GenLockGuard::owner_died(&g)),
        ),
        (
            "GenLock<PosixSem>",
            |l| std::mem::forget(l.sem.lock()),
            |l, t| l.sem.try_lock_for(t).map(|g| GenLockGuard::owner_died(&g)),
        ),
        (
            "ShmMutex",
            |l| std::mem::forget(l.mutex.lock()),
            |l, t| {
                l.mutex
                    .try_lock_for(t)
                    .map(|g| ShmMutexGuard::owner_died(&g))
            },
        ),
        (
            "RwLock::write",
            |l| std::mem::forget(l.rw.write()),
            |l, t| {
                l.rw.try_write_for(t)
                    .map(|g| lockkit::WriteGuard::owner_died(&g))
            },
        ),
        (
            "GenLockSet entry",
            |l| std::mem::forget(l.set.lock(2)),
            |l, t| {
                l.set
                    .try_lock_for(2, t)
                    .map(|g| GenLockGuard::owner_died(&g))
            },
        ),
    ]
}

/// Forks a child that runs `setup`, then holds the lock `take` takes, alive, until killed.
fn live_holder(locks: &Locks, setup: impl FnOnce(), take: fn(&Locks)) -> Child {
    locks.step.store(0, Release);
    let child = fork(|| {
        setup();
        take(locks);
        locks.step.store(1, Release);
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    wait_for(&locks.step, 1);
    child
}

#[test]
fn a_guard_leaked_by_a_thread_that_exited_keeps_the_lock_held_while_its_process_lives() {
    let _s = serial();
    for (name, take, try_for) in kinds() {
        let (_region, locks) = region();
        std::thread::scope(|s| {
            s.spawn(|| take(&locks));
        });
        // The thread is gone, its guard lives (leaked): a second guard would be a second
        // `&mut` to the same data.
        assert_eq!(
            try_for(&locks, TRY),
            None,
            "{name}: the lock of a thread that exited with its guard leaked was handed on \
             while its process lives"
        );
        let fresh = std::thread::scope(|s| s.spawn(|| try_for(&locks, TRY)).join().unwrap());
        assert_eq!(fresh, None, "{name}: handed on to a new thread");
    }
}

#[test]
fn a_guard_leaked_in_process_memory_by_an_exited_thread_keeps_the_lock_held() {
    let lock: &'static GenLock = Box::leak(Box::new(GenLock::new()));
    let spin: &'static GenLock<Spin> = Box::leak(Box::new(GenLock::with_backend()));
    std::thread::spawn(move || {
        std::mem::forget(lock.lock());
        std::mem::forget(spin.lock());
    })
    .join()
    .unwrap();
    assert!(lock.try_lock_for(TRY).is_none(), "GenLock<Futex> robbed");
    assert!(spin.try_lock_for(TRY).is_none(), "GenLock<Spin> robbed");
    assert!(lock.owner().is_some_and(|o| o.alive));
}

/// For every kind: a live process (after `holder_setup`) holds the lock, and a waiter (after
/// `waiter_setup`, in its own process) tries it; the waiter exits 0 if it never got it, 3 if
/// it did, 4 if its setup failed.
fn never_robbed_from(what: &str, holder_setup: fn(), waiter_setup: fn()) {
    let _s = serial();
    for (name, take, try_for) in kinds() {
        let (_region, locks) = region();
        let holder = live_holder(&locks, holder_setup, take);
        let waiter = fork(|| {
            waiter_setup();
            match try_for(&locks, TRY) {
                None => 0,
                Some(_) => 3,
            }
        });
        match waiter.join() {
            0 => {}
            3 => panic!("{name}: a waiter {what} took the lock from its live holder"),
            4 => panic!("{name}: the waiter's namespace or limit could not be set up (see stderr)"),
            code => panic!("{name}: the waiter exited with {code}"),
        }
        assert!(
            try_for(&locks, TRY).is_none(),
            "{name}: the test process took the lock from a live holder {what}"
        );
        drop(holder);
    }
}

fn fail(what: &str) -> ! {
    let e = std::io::Error::last_os_error();
    eprintln!("could not set up the test: {what}: {e}");
    // SAFETY: ends the forked child at once.
    unsafe { libc::_exit(4) }
}

/// In a forked child: moves the child into a new pid namespace by forking again into it;
/// the grandchild (pid 1 there) goes on, the child waits for it and exits as it does.
fn into_new_pid_namespace() {
    // SAFETY: a plain system call in a single-threaded forked child.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        fail("unshare(CLONE_NEWPID)");
    }
    go_on_in_a_grandchild();
}

/// In a forked child: the same with a time namespace whose clocks are 10^6 s ahead (its
/// processes' start times read differently everywhere else).
fn into_new_time_namespace() {
    // SAFETY: a plain system call in a single-threaded forked child.
    if unsafe { libc::unshare(libc::CLONE_NEWTIME) } != 0 {
        fail("unshare(CLONE_NEWTIME)");
    }
    if std::fs::write(
        "/proc/self/timens_offsets",
        "monotonic 1000000 0\nboottime 1000000 0\n",
    )
    .is_err()
    {
        fail("writing /proc/self/timens_offsets");
    }
    go_on_in_a_grandchild();
}

fn go_on_in_a_grandchild() {
    // SAFETY: forking a single-threaded child.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail("fork");
    }
    if pid > 0 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {}
        // SAFETY: ends this middle process with its child's outcome.
        unsafe {
            libc::_exit(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                5
            })
        };
    }
}

#[test]
fn a_holder_in_a_new_pid_namespace_is_never_robbed() {
    never_robbed_from("in another pid namespace", into_new_pid_namespace, || {});
}

#[test]
fn a_waiter_in_a_new_pid_namespace_never_robs() {
    never_robbed_from(
        "whose holder is outside its pid namespace",
        || {},
        into_new_pid_namespace,
    );
}

#[test]
fn a_holder_in_another_time_namespace_is_never_robbed() {
    never_robbed_from("in another time namespace", into_new_time_namespace, || {});
}

#[test]
fn a_waiter_at_its_descriptor_limit_never_robs() {
    never_robbed_from("at its descriptor limit", || {}, use_up_descriptors);
}

fn use_up_descriptors() {
    let lim = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        fail("setrlimit(RLIMIT_NOFILE)");
    }
    let mut opened = 0;
    // SAFETY: opening /dev/null until the limit; the descriptors stay open on purpose.
    while unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) } >= 0 {
        opened += 1;
    }
    if crate::errno() != libc::EMFILE || opened == 0 {
        fail("filling the descriptor table");
    }
    // One descriptor comes and goes, as in a server that accepts and closes connections at
    // its limit: a check that opens a file fails now and then, and one right after it may
    // succeed.
    // SAFETY: closing one of the descriptors opened above.
    unsafe { libc::close(3) };
    std::thread::spawn(|| loop {
        // SAFETY: opening and closing /dev/null.
        unsafe {
            let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            if fd >= 0 {
                std::thread::yield_now();
                libc::close(fd);
            }
        }
    });
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[test]
fn a_waiter_of_another_uid_under_hidepid_never_robs() {
    never_robbed_from(
        "of another uid with /proc mounted hidepid=2",
        || {},
        || {
            // SAFETY: plain system calls in a single-threaded forked child; the mounts are made
            // in the child's own mount namespace.
            unsafe {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    fail("unshare(CLONE_NEWNS)");
                }
                if libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                {
                    fail("making / private");
                }
                if libc::mount(
                    c"proc".as_ptr(),
                    c"/proc".as_ptr(),
                    c"proc".as_ptr(),
                    0,
                    c"hidepid=2".as_ptr().cast(),
                ) != 0
                {
                    fail("mounting /proc with hidepid=2");
                }
                if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                    fail("becoming nobody");
                }
            }
        },
    );
}

#[test]
fn a_process_cannot_map_more_regions_than_it_can_judge_and_is_told_why() {
    let _s = serial();
    let mut held = Vec::new();
    let err = loop {
        match ShmRegion::anonymous(64 << 10) {
            Ok(r) => held.push(r),
            Err(e) => break e,
        }
        assert!(
            held.len() <= 64,
            "more regions mapped than the registry holds"
        );
    };
    assert!(
        err.to_string().contains("regions mapped"),
        "unclear error: {err}"
    );
    // Every region mapped is judged: a lock in the last one still works.
    let last = held.last().expect("some regions were mapped");
    let lock = last.alloc(GenLock::new()).unwrap();
    assert!(lock.try_lock().is_some());
    drop(held);
    assert!(ShmRegion::anonymous(64 << 10).is_ok(), "room again");
}

#[test]
fn a_holder_that_calls_exec_has_died_for_its_locks() {
    let _s = serial();
    for (name, take, try_for) in kinds() {
        let (_region, locks) = region();
        locks.step.store(0, Release);
        let holder = fork(|| {
            take(&locks);
            locks.step.store(1, Release);
            // Same pid, same start time, same thread: only the program is new.
            let argv = [c"sleep".as_ptr(), c"60".as_ptr(), std::ptr::null()];
            // SAFETY: a NUL-terminated argument vector of NUL-terminated strings.
            unsafe { libc::execv(c"/bin/sleep".as_ptr(), argv.as_ptr()) };
            7
        });
        wait_for(&locks.step, 1);
        let got = try_for(&locks, RECOVER);
        assert!(
            !holder.has_exited(),
            "{name}: the holder did not exec (it exited)"
        );
        assert_eq!(
            got,
            Some(true),
            "{name}: the lock of a holder that called exec was not handed on with the owner \
             told dead"
        );
        drop(holder);
    }
}

#[test]
fn try_lock_takes_a_dead_holders_lock_and_says_the_owner_died() {
    let _s = serial();
    let (_region, locks) = region();
    let holder = live_holder(
        &locks,
        || {},
        |l| {
            std::mem::forget(l.futex.lock());
            std::mem::forget(l.spin.lock());
            std::mem::forget(l.sem.lock());
        },
    );
    assert_eq!(holder.kill(), 128 + libc::SIGKILL);
    for (name, got) in [
        (
            "GenLock<Futex>",
            locks.futex.try_lock().map(|g| GenLockGuard::owner_died(&g)),
        ),
        (
            "GenLock<Spin>",
            locks.spin.try_lock().map(|g| GenLockGuard::owner_died(&g)),
        ),
        (
            "GenLock<PosixSem>",
            locks.sem.try_lock().map(|g| GenLockGuard::owner_died(&g)),
        ),
    ] {
        assert_eq!(
            got,
            Some(true),
            "{name}: try_lock after the holder was killed"
        );
    }
}

/// Random kills of processes that take and release one lock in a loop: after each kill the
/// lock is never wedged (the test takes it within `RECOVER`), never held by two live
/// processes at once (each worker checks an `inside` flag), and the increments of finished
/// sections are all there.
fn kill_soak<L: Sync>(
    name: &str,
    lock: &L,
    take: impl Fn(&L, Duration) -> Option<(Box<dyn FnOnce() + '_>, bool)> + Sync,
    kills: usize,
) {
    #[derive(lockkit::ShmSafe, Default)]
    #[repr(C)]
    struct Soak {
        inside: AtomicU32,
        robbed: AtomicU32,
        count: AtomicU64,
        told: AtomicU64,
        started: AtomicU32,
    }
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let soak = region.alloc_zeroed::<Soak>().unwrap();
    let mut rng = common::Rng::new(0x5eed ^ kills as u64);
    // Takes the lock once, repairing after a death: what every acquirer does.
    let section = |soak: &Soak| -> bool {
        let Some((release, died)) = take(lock, RECOVER) else {
            return false;
        };
        if died {
            soak.told.fetch_add(1, Relaxed);
            soak.inside.store(0, Relaxed); // the repair: the dead holder's mark
        }
        if soak.inside.swap(1, Relaxed) != 0 {
            soak.robbed.store(1, Relaxed);
        }
        soak.count.fetch_add(1, Relaxed);
        soak.inside.store(0, Relaxed);
        release();
        true
    };
    for round in 0..kills {
        soak.started.store(0, Relaxed);
        let worker = || {
            fork(|| {
                soak.started.fetch_add(1, Release);
                loop {
                    if !section(&soak) {
                        return 6; // wedged
                    }
                }
            })
        };
        let (a, b) = (worker(), worker());
        wait_for(&soak.started, 2);
        std::thread::sleep(rng.micros(2000));
        let code = a.kill();
        assert_eq!(
            code,
            128 + libc::SIGKILL,
            "{name}: round {round}: worker exited by itself ({code})"
        );
        assert!(
            section(&soak),
            "{name}: round {round}: the lock was wedged after a kill"
        );
        std::thread::sleep(rng.micros(500));
        let code = b.kill();
        assert_eq!(
            code,
            128 + libc::SIGKILL,
            "{name}: round {round}: worker exited by itself ({code})"
        );
        assert!(
            section(&soak),
            "{name}: round {round}: the lock was wedged after the second kill"
        );
        assert_eq!(
            soak.robbed.load(Relaxed),
            0,
            "{name}: round {round}: two live processes were inside at once"
        );
    }
    let told = soak.told.load(Relaxed);
    assert!(
        told <= 2 * kills as u64,
        "{name}: {told} acquisitions told of {} deaths",
        2 * kills
    );
}

fn soak_kills() -> usize {
    std::env::var("LOCKKIT_SOAK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25)
}

fn gen_take<R: RawLock>(l: &GenLock<R>, t: Duration) -> Option<(Box<dyn FnOnce() + '_>, bool)> {
    let mut g = l.try_lock_for(t)?;
    let died = GenLockGuard::owner_died(&g);
    if died {
        GenLockGuard::mark_consistent(&mut g);
    }
    Some((Box::new(move || drop(g)), died))
}

#[test]
fn random_kills_never_wedge_nor_rob_a_futex_lock() {
    let _s = serial();
    let (_r, locks) = region();
    kill_soak("GenLock<Futex>", &locks.futex, gen_take, soak_kills());
}

#[test]
fn random_kills_never_wedge_nor_rob_a_spin_lock() {
    let _s = serial();
    let (_r, locks) = region();
    kill_soak("GenLock<Spin>", &locks.spin, gen_take, soak_kills());
}

#[test]
fn random_kills_never_wedge_nor_rob_a_shm_mutex() {
    let _s = serial();
    let (_r, locks) = region();
    kill_soak(
        "ShmMutex",
        &locks.mutex,
        |m, t| {
            let mut g = m.try_lock_for(t)?;
            let died = ShmMutexGuard::owner_died(&g);
            if died {
                ShmMutexGuard::mark_consistent(&mut g);
            }
            Some((Box::new(move || drop(g)), died))
        },
        soak_kills(),
    );
}

#[test]
fn random_kills_never_wedge_nor_rob_a_lock_set_entry() {
    let _s = serial();
    let (_r, locks) = region();
    kill_soak(
        "GenLockSet entry",
        &locks.set,
        |s, t| {
            let mut g = s.try_lock_for(1, t)?;
            let died = GenLockGuard::owner_died(&g);
            if died {
                GenLockGuard::mark_consistent(&mut g);
            }
            Some((Box::new(move || drop(g)), died))
        },
        soak_kills(),
    );
}
