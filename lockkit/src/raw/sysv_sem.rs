//! [`SysvSem`]: a System V semaphore used as a lock, the portable fallback Kamailio uses on
//! machines it has no fast lock for.
//!
//! A lock set gets one semaphore set with a semaphore per lock, as Kamailio does; a lock on
//! its own gets a set of one. Sets are created on first use (`semget(IPC_PRIVATE)`, mode
//! 0600, every semaphore at one) and removed by [`GenLock::destroy`](crate::GenLock::destroy)
//! or [`LockSet::destroy`](crate::LockSet::destroy).
//! SysV semaphores are kernel objects that outlive every process: a lock that is never
//! destroyed leaks its id until reboot (`ipcs -s` lists them). Operations use `SEM_UNDO`, so
//! the kernel gives the lock back when a process dies holding it; the holder word beside the
//! semaphore, which a live holder clears before it releases, is then still set, so the next
//! acquirer is told [`Acquired::OwnerDied`] (and every one after it, until
//! `mark_consistent`). Waits interrupted by signals (`EINTR`) are retried.
//!
//! A lock of a set used on its own (`set.get(i)`) before the set was used through its
//! index methods gets a set of its own; the set's later semaphore for it stays unused.
//!
//! Invariants kept here: a lock's id and semaphore number are written once (`InitOnce`),
//! before any operation uses them; the set-wide set is created once (`set_init` of the first
//! lock).

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use super::holder::{relock, Holder};
use super::init_once::InitOnce;
use super::{Acquired, RawLock};
use crate::deadline::Deadline;
use crate::sys::errno;

/// A lock backed by a SysV semaphore. Zero bytes are a lock whose semaphore is created on
/// first use.
#[repr(C)]
#[derive(Debug, Default)]
pub struct SysvSem {
    init: InitOnce,
    /// The semaphore set's id plus one (ids start at 0; 0 here means "not created").
    semid: AtomicI32,
    /// This lock's semaphore in the set.
    num: AtomicU32,
    /// On the first lock of a lock set: the set-wide semaphore set was created.
    set_init: InitOnce,
    /// The holding thread (a semaphore has no owner of its own).
    holder: Holder,
}

#[cold]
fn fail(what: &str, e: i32) -> ! {
    if e == libc::EINVAL || e == libc::EIDRM {
        panic!("SysvSem::{what}: the semaphore was destroyed (GenLock::destroy) while in use");
    }
    panic!(
        "SysvSem::{what} failed: {}",
        std::io::Error::from_raw_os_error(e)
    )
}

/// A new private semaphore set of `n` semaphores, every one at 1.
fn new_set(n: usize) -> i32 {
    let n = libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
    // SAFETY: plain syscalls on a new private set; no pointers are passed.
    let id = unsafe { libc::semget(libc::IPC_PRIVATE, n, libc::IPC_CREAT | 0o600) };
    if id < 0 {
        panic!(
            "SysvSem: semget of {n} semaphores failed ({}); the system's SysV semaphore \
             limits (/proc/sys/kernel/sem) may be exhausted",
            std::io::Error::last_os_error()
        );
    }
    for num in 0..n {
        // SAFETY: SETVAL takes an int as its variadic argument.
        if unsafe { libc::semctl(id, num, libc::SETVAL, 1 as libc::c_int) } != 0 {
            let e = errno();
            // SAFETY: removing the set we just created.
            unsafe { libc::semctl(id, 0, libc::IPC_RMID) };
            fail("init", e);
        }
    }
    id
}

impl SysvSem {
    fn assign(&self, id: i32, num: u32) {
        self.num.store(num, Ordering::Relaxed);
        self.semid.store(id + 1, Ordering::Release);
    }

    /// The set id and this lock's semaphore number, creating a set of one if needed; `None`
    /// if another process is still creating it at `deadline`.
    fn id_until(&self, deadline: Deadline) -> Option<(i32, u16)> {
        self.init
            .ensure_until(deadline, || self.assign(new_set(1), 0))
            .then(|| {
                (
                    self.semid.load(Ordering::Acquire) - 1,
                    self.num.load(Ordering::Relaxed) as u16,
                )
            })
    }

    /// The semaphore set's id once it was created (for diagnostics and `ipcs -s`).
    pub fn semid(&self) -> Option<i32> {
        match self.semid.load(Ordering::Acquire) {
            0 => None,
            id => Some(id - 1),
        }
    }

    /// One semaphore operation; `false` when it would block (`IPC_NOWAIT`) or timed out.
    fn op(&self, delta: i16, flags: i32, deadline: Deadline, what: &str) -> bool {
        // A call that must not wait does not wait for another process's set-up either.
        let setup = if flags & libc::IPC_NOWAIT != 0 {
            Deadline::after(Duration::ZERO)
        } else {
            deadline
        };
        let Some((id, num)) = self.id_until(setup) else {
            return false;
        };
        loop {
            let mut sop = libc::sembuf {
                sem_num: num,
                sem_op: delta,
                sem_flg: (libc::SEM_UNDO | flags) as libc::c_short,
            };
            let r = match deadline.left() {
                Err(_) => return false,
                Ok(None) => {
                    // SAFETY: one valid sembuf on this stack.
                    unsafe { libc::semop(id, &mut sop, 1) }
                }
                Ok(Some(left)) => {
                    let ts = libc::timespec {
                        tv_sec: left.as_secs() as libc::time_t,
                        tv_nsec: left.subsec_nanos() as libc::c_long,
                    };
                    // SAFETY: semtimedop with one valid sembuf and a timespec on this stack.
                    unsafe { libc::syscall(libc::SYS_semtimedop, id, &mut sop, 1usize, &ts) as i32 }
                }
            };
            if r == 0 {
                return true;
            }
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN => return false,
                e => fail(what, e),
            }
        }
    }
}

// SAFETY: a semaphore of value 1 admits one holder at a time across processes; zero bytes are
// INIT (the set is created on first use); the id is meaningful in every process.
unsafe impl RawLock for SysvSem {
    const INIT: Self = SysvSem {
        init: InitOnce::new(),
        semid: AtomicI32::new(0),
        num: AtomicU32::new(0),
        set_init: InitOnce::new(),
        holder: Holder::new(),
    };
    const NAME: &'static str = "sysv-sem";

    #[track_caller]
    fn lock(&self) -> Acquired {
        if self.holder.is_me() {
            relock("SysvSem::lock");
        }
        let me = self.holder.me();
        self.op(-1, 0, Deadline::NEVER, "lock");
        self.holder.set(me)
    }
    fn try_lock(&self) -> Option<Acquired> {
        let me = self.holder.me();
        let got = self.op(-1, libc::IPC_NOWAIT, Deadline::NEVER, "try_lock");
        got.then(|| self.holder.set(me))
    }
    fn try_lock_for(&self, timeout: Duration) -> Option<Acquired> {
        if self.holder.is_me() {
            return None;
        }
        let me = self.holder.me();
        let got = self.op(-1, 0, Deadline::after(timeout), "try_lock_for");
        got.then(|| self.holder.set(me))
    }
    unsafe fn unlock(&self) {
        if !self.holder.is_me_cached() {
            // A guard copied into a fork child: the parent's thread holds the semaphore.
            return;
        }
        self.holder.clear();
        self.op(1, 0, Deadline::NEVER, "unlock");
    }
    fn owner(&self) -> Option<crate::liveness::Owner> {
        self.holder.owner()
    }
    unsafe fn mark_consistent(&self) {
        self.holder.mark_consistent();
    }
    fn is_inconsistent(&self) -> bool {
        self.holder.acquired() == Acquired::OwnerDied
    }
    fn is_locked(&self) -> bool {
        // A snapshot: a semaphore another process is still creating counts as free.
        let Some((id, num)) = self.id_until(Deadline::after(Duration::ZERO)) else {
            return false;
        };
        // SAFETY: GETVAL takes no pointer.
        let v = unsafe { libc::semctl(id, libc::c_int::from(num), libc::GETVAL) };
        v == 0
    }
    unsafe fn destroy(&self) {
        if let Some(id) = self.semid() {
            // SAFETY: removing our own set; the caller promises nobody uses it any more.
            // The other locks of a set share the id: for them this fails (EINVAL), harmlessly.
            unsafe { libc::semctl(id, 0, libc::IPC_RMID) };
        }
    }

    fn init_set<'a>(locks: impl ExactSizeIterator<Item = &'a Self>) {
        let mut locks = locks.peekable();
        let Some(first) = locks.peek().copied() else {
            return;
        };
        let n = locks.len();
        first.set_init.ensure(|| {
            let id = new_set(n);
            for (num, l) in locks.enumerate() {
                l.init.ensure(|| l.assign(id, num as u32));
            }
        });
    }
}
