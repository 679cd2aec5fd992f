//! glibc's robust-mutex tests (`nptl/tst-robust1..9`, `tst-robust-fork`), written again for
//! every lockkit lock kind, with lockkit's semantics where they differ on purpose: the owner
//! is a process (a thread that exits holding a lock does not hand it on), and a lock released
//! unrepaired is not made unusable ("not recoverable"): it goes on telling every acquirer
//! until one marks it consistent.
//!
//! | glibc test | what it checks | here |
//! |---|---|---|
//! | tst-robust1, 2 | a process dies holding two mutexes: each next locker is told | `a_process_dying_with_two_locks_tells_the_next_holder_of_each` |
//! | tst-robust3, 4 | the same through a timed lock that was already waiting | `a_timed_waiter_already_waiting_is_told` |
//! | tst-robust1 (`ENOTRECOVERABLE`) | unlocked without `consistent`: unusable | `released_unrepaired_the_lock_goes_on_telling_until_marked_consistent` |
//! | tst-robust7 | many waiters, one owner dies: exactly one is told | `of_several_waiting_processes_exactly_one_is_told` |
//! | tst-robust8 | random kills of many processes | `owner_liveness.rs`, `random_kills_*` |
//! | tst-robust9 | the owning *thread* exits: handed on (`EOWNERDEAD`) | the opposite, `owner_liveness.rs`, `a_guard_leaked_by_a_thread_that_exited_*` |
//! | tst-robust-fork | a fork child of the holder does not own the lock | `a_fork_child_of_the_holder_neither_holds_nor_releases_the_lock` |

mod common;

use std::sync::atomic::{AtomicU32, Ordering::*};
use std::time::Duration;

use common::{fork, join_all, serial, wait_for, Child};
use lockkit::raw::{Futex, PosixSem, PthreadMutex, RawLock, Spin, SysvSem};
use lockkit::{
    GenLock, GenLockGuard, GenLockSet, RecLock, RecLockGuard, RwLock, ShmMutex, ShmMutexGuard,
    ShmRegion, WriteGuard,
};

/// Long enough for any hand-over (a millisecond or so) on a loaded machine.
const RECOVER: Duration = Duration::from_secs(10);

/// One lock kind, as the scenarios use it.
trait Kind: Sync {
    const NAME: &'static str;
    /// Takes the lock and forgets the guard (the process keeps it until it dies).
    fn hold(&self);
    /// Takes the lock within `t`, marks it consistent if told and `repair`, releases it;
    /// `Some(told)` if it got it.
    fn visit(&self, t: Duration, repair: bool) -> Option<bool>;
    /// Releases what the kind's kernel object holds (SysV semaphores outlive processes).
    fn destroy(&self) {}
}

impl<R: RawLock> Kind for GenLock<R> {
    const NAME: &'static str = R::NAME;
    fn hold(&self) {
        std::mem::forget(self.lock());
    }
    fn visit(&self, t: Duration, repair: bool) -> Option<bool> {
        let mut g = self.try_lock_for(t)?;
        let told = GenLockGuard::owner_died(&g);
        if told && repair {
            GenLockGuard::mark_consistent(&mut g);
        }
        Some(told)
    }
    fn destroy(&self) {
        // SAFETY: every process that used the lock has exited (the scenarios join them).
        unsafe { self.raw().destroy() };
    }
}

impl Kind for ShmMutex<u64> {
    const NAME: &'static str = "ShmMutex";
    fn hold(&self) {
        std::mem::forget(self.lock());
    }
    fn visit(&self, t: Duration, repair: bool) -> Option<bool> {
        let mut g = self.try_lock_for(t)?;
        let told = ShmMutexGuard::owner_died(&g);
        if told && repair {
            ShmMutexGuard::mark_consistent(&mut g);
        }
        Some(told)
    }
}

impl Kind for RecLock {
    const NAME: &'static str = "RecLock";
    fn hold(&self) {
        std::mem::forget(self.lock());
    }
    fn visit(&self, t: Duration, repair: bool) -> Option<bool> {
        let mut g = self.try_lock_for(t)?;
        let told = RecLockGuard::owner_died(&g);
        if told && repair {
            RecLockGuard::mark_consistent(&mut g);
        }
        Some(told)
    }
}

impl Kind for RwLock<u64> {
    const NAME: &'static str = "RwLock (writer)";
    fn hold(&self) {
        std::mem::forget(self.write());
    }
    fn visit(&self, t: Duration, repair: bool) -> Option<bool> {
        let mut g = self.try_write_for(t)?;
        let told = WriteGuard::owner_died(&g);
        if told && repair {
            WriteGuard::mark_consistent(&mut g);
        }
        Some(told)
    }
}

/// A lock-set entry (the set's third lock).
#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct Entry(GenLockSet<4>);

impl Kind for Entry {
    const NAME: &'static str = "GenLockSet entry";
    fn hold(&self) {
        std::mem::forget(self.0.lock(2));
    }
    fn visit(&self, t: Duration, repair: bool) -> Option<bool> {
        let mut g = self.0.try_lock_for(2, t)?;
        let told = GenLockGuard::owner_died(&g);
        if told && repair {
            GenLockGuard::mark_consistent(&mut g);
        }
        Some(told)
    }
}

/// Two locks of a kind and the words the processes count on.
#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct Board<K: Kind + lockkit::ShmSafe> {
    a: K,
    b: K,
    step: AtomicU32,
    told: AtomicU32,
    clean: AtomicU32,
}

fn board<K: Kind + lockkit::ShmSafe>(region: &ShmRegion) -> lockkit::ShmBox<Board<K>>
where
    Board<K>: lockkit::ShmZeroable,
{
    region
        .alloc_zeroed::<Board<K>>()
        .expect("room for the board")
}

/// A child that holds both locks, says so, and waits to be killed.
fn holder_of_both<K: Kind + lockkit::ShmSafe>(b: &Board<K>) -> Child {
    b.step.store(0, Release);
    let c = fork(|| {
        b.a.hold();
        b.b.hold();
        b.step.store(1, Release);
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    wait_for(&b.step, 1);
    c
}

fn dying_with_two_locks<K: Kind + lockkit::ShmSafe>(b: &Board<K>) {
    let holder = holder_of_both(b);
    assert_eq!(holder.kill(), 128 + libc::SIGKILL);
    for (which, lock) in [("first", &b.a), ("second", &b.b)] {
        assert_eq!(
            lock.visit(RECOVER, true),
            Some(true),
            "{}: the next holder of the {which} lock was not told",
            K::NAME
        );
        assert_eq!(
            lock.visit(RECOVER, true),
            Some(false),
            "{}: told again after the repair",
            K::NAME
        );
    }
}

fn timed_waiter_already_waiting<K: Kind + lockkit::ShmSafe>(b: &Board<K>) {
    let holder = holder_of_both(b);
    let waiter = fork(|| {
        b.step.store(2, Release);
        match b.a.visit(RECOVER, true) {
            Some(true) => 0,
            Some(false) => 3,
            None => 4,
        }
    });
    wait_for(&b.step, 2);
    // The waiter is asleep in its timed attempt (or about to be) when the holder dies.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(holder.kill(), 128 + libc::SIGKILL);
    let code = waiter.join();
    assert_eq!(
        code,
        0,
        "{}: the timed waiter {}",
        K::NAME,
        if code == 3 { "was not told" } else { "gave up" }
    );
}

fn released_unrepaired<K: Kind + lockkit::ShmSafe>(b: &Board<K>) {
    let holder = holder_of_both(b);
    assert_eq!(holder.kill(), 128 + libc::SIGKILL);
    for round in 0..3 {
        assert_eq!(
            b.a.visit(RECOVER, false),
            Some(true),
            "{}: acquisition {round} after an unrepaired release was not told",
            K::NAME
        );
    }
    assert_eq!(b.a.visit(RECOVER, true), Some(true), "{}", K::NAME);
    assert_eq!(
        b.a.visit(RECOVER, true),
        Some(false),
        "{}: still told after a repair",
        K::NAME
    );
}

fn several_waiters<K: Kind + lockkit::ShmSafe>(b: &Board<K>) {
    const WAITERS: usize = 3;
    let holder = holder_of_both(b);
    let waiters: Vec<Child> = (0..WAITERS)
        .map(|_| {
            fork(|| {
                b.step.fetch_add(1, AcqRel);
                match b.a.visit(RECOVER, true) {
                    Some(true) => {
                        b.told.fetch_add(1, AcqRel);
                        0
                    }
                    Some(false) => {
                        b.clean.fetch_add(1, AcqRel);
                        0
                    }
                    None => 4,
                }
            })
        })
        .collect();
    wait_for(&b.step, 1 + WAITERS as u32);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(holder.kill(), 128 + libc::SIGKILL);
    join_all(waiters, Duration::from_secs(60), || {
        format!("{}: a waiter did not get the lock", K::NAME)
    });
    assert_eq!(
        (b.told.load(Acquire), b.clean.load(Acquire)),
        (1, WAITERS as u32 - 1),
        "{}: exactly one waiter is told, and repairs for the others",
        K::NAME
    );
}

fn fork_child_of_the_holder<K: Kind + lockkit::ShmSafe>(b: &Board<K>) {
    b.step.store(0, Release);
    // The holder takes the lock, forks, and releases it only after its child has tried.
    let holder = fork(|| {
        b.a.hold();
        let child = fork(|| match b.a.visit(Duration::from_millis(200), true) {
            // Its parent (alive) holds the lock: a copy of the parent's memory holds nothing.
            None => 0,
            Some(_) => 3,
        });
        let code = child.join();
        b.step.store(1, Release);
        std::thread::sleep(Duration::from_secs(60));
        code
    });
    wait_for(&b.step, 1);
    assert!(
        b.a.visit(Duration::from_millis(200), true).is_none(),
        "{}: the holder's lock was free after its fork child exited",
        K::NAME
    );
    assert_eq!(holder.kill(), 128 + libc::SIGKILL);
    assert_eq!(
        b.a.visit(RECOVER, true),
        Some(true),
        "{}: after the holder died",
        K::NAME
    );
}

/// Runs one scenario over a fresh board of every kind.
macro_rules! over_every_kind {
    ($test:ident, $scenario:ident) => {
        #[test]
        fn $test() {
            let _s = serial();
            fn run<K: Kind + lockkit::ShmSafe>(region: &ShmRegion)
            where
                Board<K>: lockkit::ShmZeroable,
            {
                let b = board::<K>(region);
                $scenario(&b);
                b.a.destroy();
                b.b.destroy();
            }
            let region = ShmRegion::anonymous(1 << 20).unwrap();
            run::<GenLock<Futex>>(&region);
            run::<GenLock<Spin>>(&region);
            run::<GenLock<PthreadMutex>>(&region);
            run::<GenLock<PosixSem>>(&region);
            run::<GenLock<SysvSem>>(&region);
            run::<ShmMutex<u64>>(&region);
            run::<RecLock>(&region);
            run::<RwLock<u64>>(&region);
            run::<Entry>(&region);
        }
    };
}

over_every_kind!(
    a_process_dying_with_two_locks_tells_the_next_holder_of_each,
    dying_with_two_locks
);
over_every_kind!(
    a_timed_waiter_already_waiting_is_told,
    timed_waiter_already_waiting
);
over_every_kind!(
    released_unrepaired_the_lock_goes_on_telling_until_marked_consistent,
    released_unrepaired
);
over_every_kind!(
    of_several_waiting_processes_exactly_one_is_told,
    several_waiters
);
over_every_kind!(
    a_fork_child_of_the_holder_neither_holds_nor_releases_the_lock,
    fork_child_of_the_holder
);
