//! The futex lock behind [`GenLock`](crate::GenLock): a process-shared mutex whose word names
//! its owner, and which hands a dead owner's lock to the next acquirer.
//!
//! # The lock word
//!
//! ```text
//!  31        30             29   28 .. 0
//! [WAITERS] [INCONSISTENT] [0]  [owner id]
//! ```
//!
//! - owner id `0`: unlocked. All-zero memory is therefore an unlocked lock, which is what
//!   makes a zeroed shared-memory allocation ready to use.
//! - owner id = the holder's id (`crate::liveness`): one thread of one process incarnation,
//!   never handed out twice, written by the compare-exchange that takes the lock.
//! - `WAITERS`: somebody may be sleeping in `FUTEX_WAIT`; the unlocker must wake one.
//! - `INCONSISTENT`: a holder's process died holding the lock; the data it guards may be
//!   half-updated. It stays set, through releases, until a holder calls `mark_consistent`:
//!   every acquisition meanwhile is told [`Acquired::OwnerDied`], so the signal cannot be
//!   missed by code that ignores it once.
//!
//! Transitions: `lock` moves `0 → me` with one compare-exchange (the fast path). When the
//! word is taken, it spins a bounded number of times, then sets `WAITERS` and sleeps. A thread
//! that acquires after sleeping takes the word as `me | WAITERS`, because it cannot know
//! whether others still sleep (the same reasoning as the "contended" state of a three-state
//! futex mutex). `unlock` swaps the word to `0` (or to `INCONSISTENT`, keeping the flag) and
//! wakes one sleeper if `WAITERS` was set: one read-modify-write, the least a sleeping lock
//! can pay.
//!
//! # Owner death: the kernel's word, asked after a bounded sleep
//! The owner is a *process*: a lock changes hands without a release only when the kernel says
//! the holder's process is gone (it died, however it was killed, or called `exec`): the OFD
//! lock it held on its id's byte of the region's file is released (`crate::liveness`). A
//! thread that exits while a guard it leaked lives leaves the lock held for ever, as `std`'s
//! `Mutex` does (glibc's robust mutexes differ: they hand on a lock whose holding *thread*
//! exited, with `EOWNERDEAD`). Locks in process memory are never taken over: their holder is
//! a thread of the caller's own process.
//!
//! A waiter never sleeps longer than a probe interval (50 µs at first, doubling to 1 ms
//! while the same holder holds on). When it wakes to find the same holder in the word, it asks
//! the kernel (one `fcntl`) and, if the holder's process is gone, takes the word over with
//! one compare-exchange that expects exactly the word it judged: `me | WAITERS |
//! INCONSISTENT`, reporting [`Acquired::OwnerDied`]. A failed `try_lock` asks too, so a dead
//! holder's lock is taken by `try_lock` as by `lock`. Measured hand-over: `BENCHMARKS.md`.
//!
//! A guard that `fork` copied into a child does not release its parent's lock: the guards
//! check their fork generation before they call `unlock`.
//!
//! Who wakes a sleeper: a waiter sleeps only on a word with `WAITERS` set and a holder in it;
//! the holder's `unlock` changes the word and, seeing `WAITERS`, wakes one. A woken thread
//! that takes the lock sets `WAITERS` again (others may still sleep), so each release wakes
//! the next sleeper; a timed waiter that gives up leaves `WAITERS` set, which costs at most
//! one spurious wake-up later, never a lost one. A holder that dies wakes nobody: its
//! waiters' own probes, at most a probe interval later, find it gone.
//!
//! The word lives in memory that other processes can write, so every loop here tolerates any
//! value in it: a garbage word can make a waiter wait (or take over an id whose process the
//! kernel says is gone), never make it misbehave.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
#[cfg(feature = "lock-api")]
use std::time::Instant;

use super::naps::Naps;
use super::{Acquired, RawLock};
use crate::deadline::Deadline;
use crate::liveness::{self, ID_MASK as OWNER_MASK};
use crate::sys::{self, Wake};

/// Set while some thread may be asleep on the word.
const WAITERS: u32 = 1 << 31;
/// Set from an owner's death until `mark_consistent`.
const INCONSISTENT: u32 = 1 << 30;
/// Looks at the word this many times before sleeping. Short: with 40, contended processes
/// handed the lock to each other on every operation and ran at 40 Mops/s; with 5, at 68
/// (`cargo bench --bench contended`, BENCHMARKS.md).
const SPIN_LIMIT: u32 = 5;

/// A process-shared futex mutex with owner tracking and owner-death hand-over. Zero bytes
/// are an unlocked lock.
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

    #[inline]
    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// Takes the lock, sleeping while another thread or process holds it. If the holder
    /// died, the lock is taken over and stays marked inconsistent ([`Futex::is_inconsistent`])
    /// until [`Futex::mark_consistent`].
    ///
    /// # Panics
    /// If the calling thread already holds the lock: the lock is not recursive, and waiting
    /// would never end.
    #[inline]
    #[track_caller]
    pub fn lock(&self) {
        let _ = self.acquire();
    }

    /// Takes the lock if nobody holds it (or its holder's process is gone).
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.try_acquire().is_some()
    }

    /// Takes the lock, giving up after `timeout` (at once if the calling thread holds it).
    pub fn try_lock_for(&self, timeout: Duration) -> bool {
        self.try_acquire_for(timeout).is_some()
    }

    /// [`lock`](Futex::lock), telling whether a previous owner died.
    #[inline]
    #[track_caller]
    pub(crate) fn acquire(&self) -> Acquired {
        let me = liveness::id_at(self.addr());
        match self
            .word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Acquired::Clean,
            Err(_) => match self.lock_contended(me, None) {
                Some(how) => how,
                None => unreachable!("an untimed wait does not give up"),
            },
        }
    }

    /// [`try_lock`](Futex::try_lock), telling whether a previous owner died.
    #[inline]
    pub(crate) fn try_acquire(&self) -> Option<Acquired> {
        let me = liveness::id_at(self.addr());
        match self
            .word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Some(Acquired::Clean),
            Err(w) => self.try_taken(w, me),
        }
    }

    /// A word `try_lock` found taken: free but inconsistent (taken, and reported), or held by
    /// an owner whose process the kernel says is gone (taken over).
    #[cold]
    fn try_taken(&self, w: u32, me: u32) -> Option<Acquired> {
        let owner = w & OWNER_MASK;
        if owner == 0 {
            return self
                .word
                .compare_exchange(w, w | me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
                .then(|| how(w));
        }
        if owner != me && liveness::holder_gone(self.addr(), owner) {
            return self.take_over(owner, me);
        }
        None
    }

    /// [`try_lock_for`](Futex::try_lock_for), telling whether a previous owner died.
    pub(crate) fn try_acquire_for(&self, timeout: Duration) -> Option<Acquired> {
        let me = liveness::id_at(self.addr());
        match self
            .word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Some(Acquired::Clean),
            Err(_) => self.lock_contended(me, Some(Deadline::after(timeout))),
        }
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The calling thread holds the lock (took it with `lock` or a successful `try_*`).
    #[inline]
    pub unsafe fn unlock(&self) {
        // One swap: the least a lock that can sleep pays, since it must learn whether
        // anyone waits. The owner check that keeps a fork child's copied guard from
        // releasing lives in the guards (their fork generation), not here, where it would
        // cost the uncontended path a thread-local read feeding a compare-exchange (+8%,
        // BENCHMARKS.md).
        // Only the holder sets or clears INCONSISTENT while it holds the lock, so this
        // plain load is exact, and the release below keeps the flag in the same swap (a
        // waiter that takes the lock at once is told, too).
        let keep = self.word.load(Ordering::Relaxed) & INCONSISTENT;
        if self.word.swap(keep, Ordering::Release) & WAITERS != 0 {
            sys::futex_wake(&self.word, 1);
        }
    }

    /// [`unlock`](Futex::unlock) of a lock taken clean ([`Acquired::Clean`]: no owner-died
    /// flag then) by a holder that has not been told otherwise since: the swap alone, without
    /// reading the flag first. That read, feeding the swap, cost the uncontended path 3.5 ns
    /// on this project's Intel machine (1.3x the compare-exchange + swap floor; BENCHMARKS.md).
    ///
    /// # Safety
    /// As for `unlock`; and the holder took the lock clean. Only a take-over sets the flag,
    /// and a take-over happens only once the kernel says the holder's process is gone, so
    /// the flag is still clear.
    #[inline]
    pub(crate) unsafe fn unlock_clean(&self) {
        if self.word.swap(0, Ordering::Release) & WAITERS != 0 {
            sys::futex_wake(&self.word, 1);
        }
    }

    /// Declares the data the lock guards repaired after an owner's death: later
    /// acquisitions are no longer told [`Acquired::OwnerDied`].
    ///
    /// # Safety
    /// The calling thread holds the lock.
    pub unsafe fn mark_consistent(&self) {
        self.word.fetch_and(!INCONSISTENT, Ordering::Relaxed);
    }

    /// Whether a holder died holding the lock and nobody has marked it consistent since.
    pub fn is_inconsistent(&self) -> bool {
        self.word.load(Ordering::Relaxed) & INCONSISTENT != 0
    }

    /// Whether the calling thread holds the lock (owner ids are never reused, so a thread is
    /// never taken for an earlier holder).
    pub fn is_held_by_current_thread(&self) -> bool {
        self.word.load(Ordering::Relaxed) & OWNER_MASK == liveness::id_at(self.addr())
    }

    /// Whether some thread holds the lock at this instant.
    pub fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & OWNER_MASK != 0
    }

    /// The holder at this instant, or `None` when unlocked.
    ///
    /// The owner id is read from the lock word; pid and tid are what the holder recorded when
    /// it took its id (0 when a later id's record replaced it); `alive` is the kernel's word
    /// on whether the holder's process still exists. A system call: for diagnostics, not for
    /// hot paths.
    pub fn owner(&self) -> Option<crate::liveness::Owner> {
        let owner = self.word.load(Ordering::Acquire) & OWNER_MASK;
        (owner != 0).then(|| liveness::describe(self.addr(), owner))
    }

    /// The slow path: spin, then sleep in naps that end with a check of the owner's
    /// liveness. Returns `None` only when a timed attempt (`deadline` is `Some`) gave up.
    #[cold]
    #[track_caller]
    fn lock_contended(&self, me: u32, deadline: Option<Deadline>) -> Option<Acquired> {
        let mut spins = 0;
        let mut naps = Naps::new();
        // Whether this waiter has asked about the holder before its first sleep.
        let mut asked_first = false;
        loop {
            let w = self.word.load(Ordering::Relaxed);
            let owner = w & OWNER_MASK;
            if owner == 0 {
                // Free. Whoever sleeps must still be woken by our unlock, so keep WAITERS if
                // it was set; after we have slept ourselves we cannot know, so set it.
                let waiters = (w & WAITERS) | if spins > SPIN_LIMIT { WAITERS } else { 0 };
                let new = me | waiters | (w & INCONSISTENT);
                if self
                    .word
                    .compare_exchange_weak(w, new, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return Some(how(w));
                }
                continue;
            }
            if owner == me {
                if deadline.is_some() {
                    // A timed wait for a lock this thread holds can only time out.
                    return None;
                }
                relock();
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
            let left = match deadline.map(|d| d.left()) {
                None => None,
                Some(Ok(left)) => left,
                Some(Err(_)) => return None,
            };
            if !asked_first {
                // Once per acquisition, before the first sleep: a waiter that comes after
                // the holder died takes the lock now instead of after a nap (which the
                // kernel's timer slack stretches to ~0.1 ms).
                asked_first = true;
                if liveness::holder_gone(self.addr(), owner) {
                    if let Some(how) = self.take_over(owner, me) {
                        return Some(how);
                    }
                    continue;
                }
            }
            if sys::futex_wait(&self.word, w | WAITERS, Some(naps.next(left))) != Wake::TimedOut {
                continue;
            }
            if deadline.is_some_and(|d| d.expired()) {
                return None;
            }
            // A whole nap and still taken: by the same owner, who may be dead?
            if self.word.load(Ordering::Relaxed) & OWNER_MASK != owner {
                naps.restart();
                continue;
            }
            if !liveness::holder_gone(self.addr(), owner) {
                naps.found_alive(owner);
                continue;
            }
            if let Some(how) = self.take_over(owner, me) {
                return Some(how);
            }
        }
    }

    /// Takes the lock from `dead`, whose process the kernel says is gone (checked by the
    /// caller): only while the word still names it, whatever its flag bits do meanwhile. Ids
    /// are never reused, so a word that still names `dead` is still the dead holder's.
    #[cold]
    fn take_over(&self, dead: u32, me: u32) -> Option<Acquired> {
        let mut w = self.word.load(Ordering::Relaxed);
        while w & OWNER_MASK == dead {
            // WAITERS: others may sleep behind the dead owner, and our release must wake
            // them.
            match self.word.compare_exchange_weak(
                w,
                me | WAITERS | INCONSISTENT,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Acquired::OwnerDied),
                Err(now) => w = now,
            }
        }
        None
    }
}

/// How an acquisition went, from the word it replaced.
fn how(w: u32) -> Acquired {
    if w & INCONSISTENT != 0 {
        Acquired::OwnerDied
    } else {
        Acquired::Clean
    }
}

#[cold]
#[track_caller]
fn relock() -> ! {
    panic!(
        "GenLock::lock: this thread already holds this lock; GenLock is not recursive, so \
         waiting for it would never end"
    )
}

// SAFETY: a futex mutex over one atomic word; zero bytes are unlocked; the shared (not
// private) futex calls work between processes; mutual exclusion per the state machine
// above (a take-over happens only from an owner whose process the kernel says is gone, by an
// exact-value CAS; ids are never reused).
unsafe impl RawLock for Futex {
    const INIT: Self = Futex::new();
    const NAME: &'static str = "futex";

    #[inline]
    #[track_caller]
    fn lock(&self) -> Acquired {
        self.acquire()
    }
    #[inline]
    fn try_lock(&self) -> Option<Acquired> {
        self.try_acquire()
    }
    fn try_lock_for(&self, timeout: Duration) -> Option<Acquired> {
        self.try_acquire_for(timeout)
    }
    #[inline]
    unsafe fn unlock(&self) {
        // SAFETY: forwarded contract.
        unsafe { Futex::unlock(self) }
    }
    #[inline]
    unsafe fn unlock_clean(&self) {
        // SAFETY: forwarded contract.
        unsafe { Futex::unlock_clean(self) }
    }
    fn is_locked(&self) -> bool {
        Futex::is_locked(self)
    }
    fn owner(&self) -> Option<crate::liveness::Owner> {
        Futex::owner(self)
    }
    fn has_waiters(&self) -> bool {
        self.word.load(Ordering::Relaxed) & WAITERS != 0
    }
    fn is_inconsistent(&self) -> bool {
        Futex::is_inconsistent(self)
    }
    unsafe fn mark_consistent(&self) {
        // SAFETY: forwarded contract.
        unsafe { Futex::mark_consistent(self) }
    }
}

// SAFETY: the same algorithm as RawLock above; `lock_api`'s guards are !Send, matching the
// rule that the locking thread unlocks.
#[cfg(feature = "lock-api")]
#[cfg_attr(docsrs, doc(cfg(feature = "lock-api")))]
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
#[cfg_attr(docsrs, doc(cfg(feature = "lock-api")))]
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
    fn the_word_names_the_holding_thread() {
        let l = Futex::new();
        l.lock();
        let o = l.owner().unwrap();
        assert_eq!(
            (o.pid, o.tid, o.alive),
            (std::process::id(), sys::tid(), true)
        );
        assert!(l.is_held_by_current_thread());
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
