//! The futex lock behind [`GenLock`](crate::GenLock): a process-shared mutex whose word names
//! its owner.
//!
//! # The lock word
//!
//! ```text
//!  31        30         29 .. 0
//! [WAITERS] [reserved] [owner TID]
//! ```
//!
//! - `0`: unlocked. All-zero memory is therefore an unlocked lock, which is what makes a
//!   zeroed shared-memory allocation ready to use.
//! - `tid`: locked by thread `tid`, nobody sleeps on it.
//! - `tid | WAITERS`: locked, and somebody may be sleeping in `FUTEX_WAIT`; the unlocker must
//!   issue a `FUTEX_WAKE`.
//!
//! Transitions: `lock` moves `0 → tid` with one compare-exchange (the fast path). When the
//! word is taken, it spins a bounded number of times, then sets `WAITERS` and sleeps. A thread
//! that acquires after sleeping takes the word as `tid | WAITERS`, because it cannot know
//! whether others still sleep (the same reasoning as the "contended" state of a three-state
//! futex mutex). `unlock` swaps the word to `0` and wakes one sleeper if `WAITERS` was set: one
//! read-modify-write, the least a sleeping lock can pay.
//!
//! The layout (TID in the low 30 bits, bit 31 for waiters, bit 30 kept clear) is the kernel's
//! robust-futex layout, so owner-death detection can build on it. The word is the only
//! record of the owner: [`Futex::owner`] reads the tid from it and asks the kernel which
//! process that thread belongs to, so it can never pair one holder's tid with another's pid.
//!
//! `unlock` releases only a word that names the calling thread: a guard that `fork` copied
//! into a child (whose thread has another tid) does not release its parent's lock.
//!
//! Who wakes a sleeper: a waiter sleeps only on a word with `WAITERS` set and a holder's tid
//! in it; the holder's `unlock` changes the word to 0 and, seeing `WAITERS`, wakes one. A
//! woken thread that takes the lock sets `WAITERS` again (others may still sleep), so each
//! release wakes the next sleeper; a timed waiter that gives up leaves `WAITERS` set, which
//! costs at most one spurious wake-up later, never a lost one.
//!
//! The word lives in memory that other processes can write, so every loop here tolerates any
//! value in it: a garbage word can make a waiter wait, never make it misbehave.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
#[cfg(feature = "lock-api")]
use std::time::Instant;

use super::{Acquired, RawLock};
use crate::deadline::Deadline;
use crate::sys::{self, Wake};

/// Set while some thread may be asleep on the word.
const WAITERS: u32 = 1 << 31;
/// The owner's thread id. Linux limits thread ids to 2^22, well inside these 30 bits.
const TID_MASK: u32 = (1 << 30) - 1;
/// Looks at the word this many times before sleeping. Short: with 40, contended processes
/// handed the lock to each other on every operation and ran at 40 Mops/s; with 5, at 68
/// (`cargo bench --bench contended`, BENCHMARKS.md).
const SPIN_LIMIT: u32 = 5;

/// A process-shared futex mutex with owner tracking. Zero bytes are an unlocked lock.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Futex {
    word: AtomicU32,
}

impl Futex {
    /// An unlocked lock.
    pub const fn new() -> Self {
        Futex {
            word: AtomicU32::new(0),
        }
    }

    /// Takes the lock, sleeping while another thread or process holds it.
    ///
    /// # Panics
    /// If the calling thread already holds the lock: the lock is not recursive, and waiting
    /// would never end.
    #[inline]
    #[track_caller]
    pub fn lock(&self) {
        let tid = sys::tid();
        if self
            .word
            .compare_exchange(0, tid, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended(tid, None);
        }
    }

    /// Takes the lock if nobody holds it.
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.word
            .compare_exchange(0, sys::tid(), Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes the lock, giving up after `timeout` (at once if the calling thread holds it).
    pub fn try_lock_for(&self, timeout: Duration) -> bool {
        let tid = sys::tid();
        self.word
            .compare_exchange(0, tid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            || self.lock_contended(tid, Some(Deadline::after(timeout)))
    }

    /// Releases the lock, if the calling thread holds it. A word naming another thread is
    /// left alone: that is a guard `fork` copied into a child, whose thread did not take the
    /// lock and must not release the parent's.
    ///
    /// # Safety
    /// The calling thread holds the lock (took it with `lock` or a successful `try_*`), or
    /// is a `fork` child holding a copy of the guard of the thread that does.
    #[inline]
    pub unsafe fn unlock(&self) {
        let tid = sys::tid();
        if self
            .word
            .compare_exchange(tid, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow(tid);
        }
    }

    #[cold]
    fn unlock_slow(&self, tid: u32) {
        let mut w = self.word.load(Ordering::Relaxed);
        while w & TID_MASK == tid {
            match self
                .word
                .compare_exchange_weak(w, 0, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    if w & WAITERS != 0 {
                        sys::futex_wake(&self.word, 1);
                    }
                    return;
                }
                Err(now) => w = now,
            }
        }
    }

    /// Whether the calling thread holds the lock. Confirms the thread id with the kernel
    /// when the word names it, so a raw `clone(2)` child is never taken for its parent.
    pub fn is_held_by_current_thread(&self) -> bool {
        let tid = sys::tid();
        self.word.load(Ordering::Relaxed) & TID_MASK == tid && sys::tid_confirmed(tid)
    }

    /// Whether some thread holds the lock at this instant.
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & TID_MASK != 0
    }

    /// `(pid, tid)` of the holder at this instant, or `None` when unlocked.
    ///
    /// The tid is read from the lock word; the pid is the process the kernel says that
    /// thread belongs to (`/proc/<tid>/status`, in the caller's pid namespace), or 0 when
    /// no such thread exists any more (the holder died, or released the lock meanwhile).
    /// Reads a file: for diagnostics, not for hot paths.
    pub fn owner(&self) -> Option<(u32, u32)> {
        let tid = self.word.load(Ordering::Acquire) & TID_MASK;
        if tid == 0 {
            return None;
        }
        Some((sys::pid_of_tid(tid).unwrap_or(0), tid))
    }

    /// The slow path: spin, then sleep. Returns false only when a timed attempt
    /// (`deadline` is `Some`) gave up.
    #[cold]
    #[track_caller]
    fn lock_contended(&self, mut tid: u32, deadline: Option<Deadline>) -> bool {
        let mut spins = 0;
        loop {
            let w = self.word.load(Ordering::Relaxed);
            if w & TID_MASK == 0 {
                // Free. Whoever sleeps must still be woken by our unlock, so keep WAITERS if
                // it was set; after we have slept ourselves we cannot know, so set it.
                let new = tid | (w & WAITERS) | if spins > SPIN_LIMIT { WAITERS } else { 0 };
                if self
                    .word
                    .compare_exchange_weak(w, new, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return true;
                }
                continue;
            }
            if w & TID_MASK == tid {
                if !sys::tid_confirmed(tid) {
                    // A stale cached id (a raw clone child): the word names another thread.
                    tid = sys::tid();
                    continue;
                }
                if deadline.is_some() {
                    // A timed wait for a lock this thread holds can only time out.
                    return false;
                }
                panic!(
                    "GenLock::lock: thread {tid} already holds this lock; GenLock is not \
                     recursive, so waiting for it would never end"
                );
            }
            if spins < SPIN_LIMIT {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            spins = SPIN_LIMIT + 1;
            if w & WAITERS == 0
                && self
                    .word
                    .compare_exchange_weak(w, w | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            let timeout = match deadline.map(|d| d.left()) {
                None => None,
                Some(Ok(left)) => left,
                Some(Err(_)) => return false,
            };
            if sys::futex_wait(&self.word, w | WAITERS, timeout) == Wake::TimedOut
                && deadline.is_some_and(|d| d.expired())
            {
                return false;
            }
        }
    }
}

// SAFETY: a futex mutex over two atomics; zero bytes are unlocked; the shared (not private)
// futex calls work between processes; mutual exclusion per the state machine above.
unsafe impl RawLock for Futex {
    const INIT: Self = Futex::new();
    const NAME: &'static str = "futex";

    #[inline]
    fn lock(&self) -> Acquired {
        Futex::lock(self);
        Acquired::Clean
    }
    #[inline]
    fn try_lock(&self) -> Option<Acquired> {
        Futex::try_lock(self).then_some(Acquired::Clean)
    }
    fn try_lock_for(&self, timeout: Duration) -> Option<Acquired> {
        Futex::try_lock_for(self, timeout).then_some(Acquired::Clean)
    }
    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: forwarded contract.
        unsafe { Futex::unlock(self) }
    }
    fn is_locked(&self) -> bool {
        Futex::is_locked(self)
    }
    fn owner(&self) -> Option<(u32, u32)> {
        Futex::owner(self)
    }
}

// SAFETY: the same algorithm as RawLock above; `lock_api`'s guards are !Send, matching the
// rule that the locking thread unlocks.
#[cfg(feature = "lock-api")]
unsafe impl lock_api::RawMutex for Futex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = Futex::new();
    type GuardMarker = lock_api::GuardNoSend;

    #[inline]
    fn lock(&self) {
        Futex::lock(self)
    }
    #[inline]
    fn try_lock(&self) -> bool {
        Futex::try_lock(self)
    }
    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: forwarded contract.
        unsafe { Futex::unlock(self) }
    }
    fn is_locked(&self) -> bool {
        Futex::is_locked(self)
    }
}

// SAFETY: as above; the timed waits give up at the deadline.
#[cfg(feature = "lock-api")]
unsafe impl lock_api::RawMutexTimed for Futex {
    type Duration = Duration;
    type Instant = Instant;

    fn try_lock_for(&self, timeout: Duration) -> bool {
        Futex::try_lock_for(self, timeout)
    }
    fn try_lock_until(&self, deadline: Instant) -> bool {
        Futex::try_lock_for(self, deadline.saturating_duration_since(Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn zeroed_memory_is_an_unlocked_lock() {
        // SAFETY: Futex is two AtomicU32, for which all-zero bytes are valid.
        let l: Futex = unsafe { std::mem::zeroed() };
        assert!(!l.is_locked());
        assert!(l.try_lock());
        assert!(l.is_locked());
    }

    #[test]
    fn unlock_leaves_a_lock_another_thread_holds_alone() {
        let l = Arc::new(Futex::new());
        l.lock();
        let l2 = Arc::clone(&l);
        // SAFETY: deliberately breaks the contract to show the owner check: another thread
        // "releases" (as a fork child's copied guard would).
        std::thread::spawn(move || unsafe { l2.unlock() })
            .join()
            .unwrap();
        assert!(l.is_held_by_current_thread(), "still held by its owner");
        // SAFETY: locked above by this thread.
        unsafe { l.unlock() };
        assert!(!l.is_locked());
    }

    #[test]
    fn the_word_names_the_holding_thread() {
        let l = Futex::new();
        l.lock();
        assert_eq!(l.owner(), Some((std::process::id(), sys::tid())));
        // SAFETY: locked just above by this thread.
        unsafe { l.unlock() };
        assert_eq!(l.owner(), None);
    }

    #[test]
    #[should_panic(expected = "not recursive")]
    fn locking_twice_from_one_thread_panics_instead_of_hanging() {
        let l = Futex::new();
        l.lock();
        l.lock();
    }

    #[test]
    fn try_lock_for_gives_up_near_the_deadline() {
        let l = Arc::new(Futex::new());
        l.lock();
        let l2 = Arc::clone(&l);
        let t0 = Instant::now();
        let got = std::thread::spawn(move || l2.try_lock_for(Duration::from_millis(80)))
            .join()
            .unwrap();
        let waited = t0.elapsed();
        assert!(!got);
        assert!(waited >= Duration::from_millis(80), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[test]
    fn threads_exclude_each_other() {
        let l = Arc::new(Futex::new());
        let n = Arc::new(AtomicU32::new(0));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (l, n) = (Arc::clone(&l), Arc::clone(&n));
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        l.lock();
                        // A read-modify-write that only the lock makes correct.
                        n.store(n.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                        // SAFETY: locked just above by this thread.
                        unsafe { l.unlock() };
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(n.load(Ordering::Relaxed), 80_000);
        assert!(!l.is_locked());
    }
}
