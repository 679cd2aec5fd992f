//! Lock algorithms: process-shared lock words and the code that takes and releases them,
//! one backend per file, behind one trait.
//!
//! Kamailio picks its lock implementation at build time; lockkit picks it by type
//! parameter, with the futex as the default: `GenLock` is `GenLock<Futex>`, and
//! `GenLock<Spin>`, `GenLock<PthreadMutex>`, `GenLock<PosixSem>` or `GenLock<SysvSem>` are
//! the same API over another algorithm.
//!
//! The owner is a *process*. A lock changes hands without a release only when the kernel says
//! the holder's process is gone: it died, however it was killed, or it called `exec` (each
//! process holds an open-file-description lock on a byte per owner id of the region's file,
//! and the kernel drops it then and only then; see `liveness.rs`). No backend judges death
//! from `/proc`, thread ids, start times or `kill(pid, 0)`, so no namespace, `/proc` mount
//! option, descriptor limit or id reuse can make a live holder look dead. A thread that exits
//! while a guard it leaked lives leaves the lock held for ever, as `std`'s `Mutex` does.
//! Locks in process memory (not in a region) are never taken over: their holder is a thread
//! of the caller's own process.
//!
//! | backend | zero bytes | init / destroy | holder's process dies or calls `exec` | notes |
//! |---|---|---|---|---|
//! | [`Futex`] | unlocked | none | the next acquirer (`lock`, `try_lock` or a timed wait) takes it over, told [`Acquired::OwnerDied`]; a waiter asks the kernel before its first sleep and after each nap (50 µs, doubling to 250 µs for the first 100 ms behind one holder, then to 1 ms) | the default: one CAS to take, one swap to release, sleeps in the kernel; the owner id is written by the CAS that takes it |
//! | [`Spin`] | unlocked | none | the same, asked by a spinning waiter every 50 µs to 1 ms | Kamailio's fast lock: spins, then `sched_yield`; wrong when more processes are runnable than there are cores |
//! | [`PthreadMutex`] | uninitialised, set up in place on first use | `pthread_mutex_init` (process-shared, robust) on first use | the kernel hands it on ([`Acquired::OwnerDied`]) | glibc's robust mutex, whose robust list is per *thread*: a lock glibc hands on because its holding thread exited while its process lives (a leaked guard) is kept held by lockkit. **Not covered**: a holder that unmapped the region (dropped every handle) with a guard leaked, then died: the kernel walks its robust list through a mapping that is gone, and the lock stays held |
//! | [`PosixSem`] | uninitialised, set up in place on first use | `sem_init(.., 1, 1)` on first use | a waiter or `try_lock` finds the recorded holder's process gone and takes its place, told [`Acquired::OwnerDied`] | **Not covered**: the holder is recorded just *after* `sem_wait` returns and cleared just before `sem_post`; a holder killed in between loses the token and the lock stays held. Measured: 111 of 1,330 random SIGKILLs (8%) of processes looping lock/unlock wedged it (debug build, an adversarial review); choose another backend where processes are killed |
//! | [`SysvSem`] | unlocked, semaphore not created yet | `semget` on first use; **`destroy` required** (`IPC_RMID`) | as [`Futex`]: the next acquirer takes it over, told [`Acquired::OwnerDied`]; a waiter asks before its first sleep and after each nap on the semaphore (the same schedule) | the portable fallback Kamailio names: the futex lock's word, with waiters asleep on a SysV semaphore (one per lock, one set per lock set) instead of the futex; no `SEM_UNDO` |

mod futex;
mod holder;
mod init_once;
mod naps;
mod posix_sem;
mod pthread;
mod spin;
mod sysv_sem;

use std::time::Duration;

pub use futex::Futex;
pub use posix_sem::PosixSem;
pub use pthread::PthreadMutex;
pub use spin::Spin;
pub use sysv_sem::SysvSem;

/// The futex lock under the name `lock_api` users expect.
pub type RawFutex = Futex;

/// How an acquisition went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Acquired {
    /// The lock was free or released normally.
    Clean,
    /// The previous owner died holding the lock: the data it guards may be half-updated.
    /// Repair it, then mark the lock consistent; a robust backend refuses to be taken again
    /// otherwise.
    OwnerDied,
}

/// A process-shared lock algorithm.
///
/// # Safety
/// Implementations promise that:
/// - `lock`/`try_lock`/`try_lock_for` returning success means the calling thread holds the
///   lock, and no other thread of any process that maps it holds it until `unlock`;
/// - all-zero bytes are the value `INIT`, an unlocked lock, and the lock works wherever it
///   is placed in memory shared between processes, provided it is not moved after first use;
/// - the type holds no process-local pointer.
pub unsafe trait RawLock: Send + Sync + Sized {
    /// An unlocked lock: all-zero bytes.
    const INIT: Self;
    /// The backend's name, for messages and benchmarks.
    const NAME: &'static str;
    /// The backend as a region's type descriptions name it (the parameter of a lock's
    /// layout, `lockkit::GenLock/1<futex>`): its name, with a version added whenever its
    /// layout or protocol changes, so that a region made by older code is refused instead of
    /// misread.
    const LAYOUT_NAME: &'static str = Self::NAME;

    /// Takes the lock, waiting as long as needed; signals (`EINTR`) never end the wait.
    #[track_caller]
    fn lock(&self) -> Acquired;
    /// Takes the lock if it is free.
    fn try_lock(&self) -> Option<Acquired>;
    /// Takes the lock, waiting at most `timeout`.
    fn try_lock_for(&self, timeout: Duration) -> Option<Acquired>;
    /// Releases the lock.
    ///
    /// # Safety
    /// The calling thread holds the lock.
    unsafe fn unlock(&self);
    /// Releases a lock this thread took with [`Acquired::Clean`] and has not been told
    /// otherwise about since: a backend whose release keeps an owner-died flag may skip
    /// reading it. The default is [`unlock`](RawLock::unlock).
    ///
    /// # Safety
    /// As for `unlock`, and the acquisition that this releases returned `Acquired::Clean`.
    #[inline]
    #[doc(hidden)]
    unsafe fn unlock_clean(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.unlock() }
    }
    /// Whether some thread holds the lock at this instant (a snapshot, for diagnostics).
    fn is_locked(&self) -> bool;
    /// Whether a holder died holding the lock and nobody has called `mark_consistent`
    /// since (a snapshot). Backends that cannot detect a death say `false`.
    fn is_inconsistent(&self) -> bool {
        false
    }
    /// The holder, where the backend records it.
    fn owner(&self) -> Option<crate::liveness::Owner> {
        None
    }
    /// Whether a thread may be asleep waiting for the lock (a snapshot, for diagnostics;
    /// a waiter that gave up may leave it set until the next release). Backends that cannot
    /// tell say `false`.
    fn has_waiters(&self) -> bool {
        false
    }
    /// After [`Acquired::OwnerDied`]: declares the guarded data repaired, so the lock can be
    /// used again.
    ///
    /// # Safety
    /// The calling thread holds the lock.
    unsafe fn mark_consistent(&self) {}
    /// Releases the backend's kernel object, if it has one (Kamailio's `lock_destroy`; only
    /// [`SysvSem`] has one: its semaphore set outlives every process otherwise).
    ///
    /// # Safety
    /// Nobody, in any process, uses the lock afterwards.
    unsafe fn destroy(&self) {}
    /// Called by a lock set before it uses one of its locks, with every lock of the set, for
    /// backends that set up a whole set at once (Kamailio's one SysV semaphore set per lock
    /// set). With a `timeout` (a `try_lock`'s zero, a `try_lock_for`'s), gives up when
    /// another thread or process (a stopped one, say) is still setting the set up after
    /// it: `false` then. The default does nothing and costs nothing.
    #[inline(always)]
    fn init_set<'a>(
        locks: impl ExactSizeIterator<Item = &'a Self>,
        timeout: Option<Duration>,
    ) -> bool
    where
        Self: 'a,
    {
        let _ = (locks, timeout);
        true
    }
}
