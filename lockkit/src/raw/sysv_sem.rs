//! [`SysvSem`]: a lock whose waiters sleep on a System V semaphore, the portable fallback
//! Kamailio uses on machines it has no fast lock for.
//!
//! # Ownership is a word, the semaphore is where waiters sleep
//!
//! ```text
//!  31        30             29   28 .. 0
//! [WAITERS] [INCONSISTENT] [0]  [owner id]
//! ```
//!
//! The word is the futex lock's (`futex.rs`): owner id `0` is unlocked (all-zero memory is an
//! unlocked lock); otherwise it is the holder's owner id (`crate::liveness`), written by the
//! compare-exchange that takes the lock, so taking the lock and recording its holder are one
//! step and no kill can land between them. `INCONSISTENT` is set from a holder's death until
//! `mark_consistent`, through releases: every acquisition meanwhile is told
//! [`Acquired::OwnerDied`]. `WAITERS`: somebody may be asleep on the lock's semaphore, and the
//! releaser must post it.
//!
//! Transitions: `lock` moves `0 → me` with one compare-exchange. When the word is taken, it
//! looks a few times more, then sets `WAITERS` and sleeps in `semtimedop(-1)` on the lock's
//! semaphore for a nap. A thread that takes the lock after sleeping takes it as
//! `me | WAITERS` (others may still sleep). `unlock` swaps the word to `0` (keeping
//! `INCONSISTENT`) and, if `WAITERS` was set, posts the semaphore (`semop(+1)`). No operation
//! uses `SEM_UNDO`: the kernel adjusts nothing when a process exits, and nothing it fails to
//! adjust at `exec`.
//!
//! # Why no wake-up is lost, and the extra ones are few
//! A semaphore counts: a post made before the waiter it is for has gone to sleep stays in the
//! semaphore, and that waiter's `semtimedop` takes it at once. A waiter sleeps only after it
//! saw (or set) `WAITERS` beside a holder in the word; that holder's release sees the flag and
//! posts once, and the one sleeper it wakes takes the lock with `WAITERS` set again, so its
//! own release posts for the next. A waiter woken to find the lock taken by a thread that
//! came in between sets `WAITERS` again before it sleeps.
//!
//! A post nobody takes (a waiter's nap ended and it took the lock without the post; a timed
//! waiter gave up and left `WAITERS` set; a woken taker set `WAITERS` and nobody else waited)
//! stays in the semaphore and costs the next sleeper one wake-up: it loops, finds the lock
//! taken, and sleeps again; one that finds the lock free takes it. Posts are made only by a
//! release that found `WAITERS`, so there is at most one per release. So any value the
//! semaphore has is safe (a new set's values are not even read), and a semaphore at the
//! system's maximum (`SEMVMX`, `ERANGE`) already wakes everyone: that post is dropped.
//!
//! The naps bound what the count cannot: a waiter killed after taking a post, before it took
//! the lock or set `WAITERS` again, leaves the others asleep with nobody to post for them;
//! every nap ends within 1 ms, and the waiter then looks at the word again.
//!
//! # Owner death and `exec`: the kernel's word, asked before the first sleep and after each nap
//! As for the futex lock: a waiter asks the kernel whether the holder's process is gone (it
//! died, however it was killed, or called `exec`: `crate::liveness`) once before its first
//! sleep, and again whenever a nap ends with the same holder in the word; a nap is 50 µs at
//! first, doubling to 250 µs for the first 100 ms behind one holder, then to 1 ms. If the
//! holder is gone, the waiter takes the word over with a compare-exchange that expects exactly
//! the dead holder's id, told [`Acquired::OwnerDied`]. A failed `try_lock` asks too. A
//! sleeping waiter learns of a death at its nap's end (nothing posts for a dead holder). A
//! thread that exits while a guard it leaked lives leaves the lock held for ever, as `std`'s
//! `Mutex` does.
//!
//! # The semaphore set
//! A lock set gets one semaphore set with a semaphore per lock, as Kamailio does; a lock on
//! its own gets a set of one. Sets are created on first use (`semget(IPC_PRIVATE)`, mode
//! 0600) and removed by [`GenLock::destroy`](crate::GenLock::destroy) or
//! [`LockSet::destroy`](crate::LockSet::destroy). SysV semaphores are kernel objects that
//! outlive every process: a lock that is never destroyed leaks its id until reboot
//! (`ipcs -s` lists them). Waits interrupted by signals (`EINTR`) are retried; a set removed
//! while in use (`EIDRM`, `EINVAL`) is a panic that says so.
//!
//! A waiter or releaser of another user than the set's maker (a region a group shares) is
//! refused the set (`EACCES`): it naps by the clock instead of sleeping on the semaphore, and
//! its release posts nothing, so its sleepers learn of the release at their nap's end (1 ms
//! at most). The set's id means something only in the IPC namespace that made it: processes
//! in other IPC namespaces (containers that share a region file but not SysV IPC) would sleep
//! on and post to whatever set has that id there, so they must not share `SysvSem` locks.
//!
//! A timed use of a lock set (`try_lock`, `try_lock_for`) gives up, as a timed wait does,
//! while another thread or process (a stopped one, say) is still setting the set up.
//!
//! A lock of a set reached without the set's index methods first (`set.iter()`) gets a set
//! of its own; the set's later semaphore for it stays unused, and `LockSet::destroy` cannot
//! remove that set of one (`GenLock::destroy` on the lock does).
//!
//! The word lives in memory that other processes can write, so every loop here tolerates any
//! value in it: a garbage word can make a waiter wait (or take over an id whose process the
//! kernel says is gone), never make it misbehave.
//!
//! Invariants kept here: a lock's id and semaphore number are written once (`InitOnce`),
//! before any operation uses them, and every acquisition makes sure of them before it
//! touches the word, so a holder that finds `WAITERS` at its release has the set to post;
//! the set-wide set is created once (`set_init` of the first lock).

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use super::holder::relock;
use super::init_once::InitOnce;
use super::naps::Naps;
use super::{Acquired, RawLock};
use crate::deadline::Deadline;
use crate::liveness::{self, ID_MASK as OWNER_MASK};
use crate::sys::errno;

/// Set while some thread may be asleep on the lock's semaphore.
const WAITERS: u32 = 1 << 31;
/// Set from an owner's death until `mark_consistent`.
const INCONSISTENT: u32 = 1 << 30;
/// Looks at the word this many times before sleeping (as the futex lock does).
const SPIN_LIMIT: u32 = 5;

/// A process-shared lock whose word names its owner and whose waiters sleep on a SysV
/// semaphore. Zero bytes are an unlocked lock whose semaphore is created on first use.
#[repr(C)]
#[derive(Debug, Default)]
pub struct SysvSem {
    /// The set-up of `semid` and `num` (first: the tests of a stalled set-up write it).
    init: InitOnce,
    /// The semaphore set's id plus one (ids start at 0; 0 here means "not created").
    semid: AtomicI32,
    /// This lock's semaphore in the set.
    num: AtomicU32,
    /// On the first lock of a lock set: the set-wide semaphore set was created.
    set_init: InitOnce,
    /// The lock word: owner id and flags (the module doc).
    word: AtomicU32,
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

/// A new private semaphore set of `n` semaphores. Their values are not set: Linux makes them
/// 0, and any other value would cost spurious wake-ups only (the module doc).
fn new_set(n: usize) -> i32 {
    let n = libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
    // SAFETY: a plain syscall creating a new private set; no pointers are passed.
    let id = unsafe { libc::semget(libc::IPC_PRIVATE, n, libc::IPC_CREAT | 0o600) };
    if id < 0 {
        panic!(
            "SysvSem: semget of {n} semaphores failed ({}); the system's SysV semaphore \
             limits (/proc/sys/kernel/sem) may be exhausted",
            std::io::Error::last_os_error()
        );
    }
    id
}

/// Where a lock's waiters sleep: its set's id and its semaphore's number.
#[derive(Clone, Copy)]
struct Queue {
    id: i32,
    num: u16,
}

/// How a nap on the semaphore ended.
enum Nap {
    /// A post was taken.
    Posted,
    /// The nap's time ran out (or a signal cut it short).
    Over,
}

impl Queue {
    /// Sleeps until a post or for `nap`.
    fn sleep(self, nap: Duration) -> Nap {
        let mut sop = libc::sembuf {
            sem_num: self.num,
            sem_op: -1,
            sem_flg: 0,
        };
        let ts = libc::timespec {
            tv_sec: nap.as_secs() as libc::time_t,
            tv_nsec: nap.subsec_nanos() as libc::c_long,
        };
        // SAFETY: semtimedop with one valid sembuf and a relative timespec on this stack.
        let r = unsafe { libc::syscall(libc::SYS_semtimedop, self.id, &mut sop, 1usize, &ts) };
        if r == 0 {
            return Nap::Posted;
        }
        match errno() {
            // The caller looks at the word again and sleeps again if it must: a signal
            // never ends the wait, nor makes it longer than its deadline.
            libc::EAGAIN | libc::EINTR => Nap::Over,
            // The set belongs to another user (it is made mode 0600 by whoever first waits),
            // as in a region a group shares: sleep the nap by the clock instead. The word,
            // not the semaphore, says who holds the lock, so only the wake-up is lost, and
            // the nap's end looks at the word again.
            libc::EACCES => {
                std::thread::sleep(nap);
                Nap::Over
            }
            e => fail("lock", e),
        }
    }

    /// Wakes one sleeper, or the next to sleep.
    fn post(self) {
        let mut sop = libc::sembuf {
            sem_num: self.num,
            sem_op: 1,
            sem_flg: 0,
        };
        loop {
            // SAFETY: semop with one valid sembuf on this stack; adding never blocks.
            if unsafe { libc::semop(self.id, &mut sop, 1) } == 0 {
                return;
            }
            match errno() {
                libc::EINTR => continue,
                // The semaphore is at SEMVMX: enough posts wait for sleepers already.
                libc::ERANGE => return,
                // Another user's set: its sleepers look again at their nap's end (above).
                libc::EACCES => return,
                e => fail("unlock", e),
            }
        }
    }
}

impl SysvSem {
    #[inline]
    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    fn assign(&self, id: i32, num: u32) {
        self.num.store(num, Ordering::Relaxed);
        self.semid.store(id + 1, Ordering::Release);
    }

    /// The lock's semaphore, creating a set of one if needed; `None` if another process is
    /// still creating it at `deadline`.
    #[inline]
    fn queue_until(&self, deadline: Deadline) -> Option<Queue> {
        self.init
            .ensure_until(deadline, || self.assign(new_set(1), 0))
            .then(|| Queue {
                id: self.semid.load(Ordering::Acquire) - 1,
                num: self.num.load(Ordering::Relaxed) as u16,
            })
    }

    /// The semaphore set's id once it was created (for diagnostics and `ipcs -s`).
    pub fn semid(&self) -> Option<i32> {
        match self.semid.load(Ordering::Acquire) {
            0 => None,
            id => Some(id - 1),
        }
    }

    /// Takes a free word: one compare-exchange.
    #[inline]
    fn take_free(&self, me: u32) -> bool {
        self.word
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// [`RawLock::lock`] and [`RawLock::try_lock_for`]: `None` only when a timed attempt
    /// (`deadline` is `Some`) gave up.
    #[inline]
    #[track_caller]
    fn acquire(&self, deadline: Option<Deadline>) -> Option<Acquired> {
        // Asked before the word is touched: it can panic (a region where this process cannot
        // take ids, a system out of semaphores), and a panic after taking would lose the lock.
        let me = liveness::id_at(self.addr());
        let queue = self.queue_until(deadline.unwrap_or(Deadline::NEVER))?;
        if self.take_free(me) {
            return Some(Acquired::Clean);
        }
        self.lock_contended(me, queue, deadline)
    }

    /// A word `try_lock` found taken: free but inconsistent (taken, and reported), or held by
    /// an owner whose process the kernel says is gone (taken over).
    #[cold]
    fn try_taken(&self, me: u32) -> Option<Acquired> {
        let w = self.word.load(Ordering::Relaxed);
        let owner = w & OWNER_MASK;
        if owner == 0 {
            return self
                .word
                .compare_exchange(w, w | me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
                .then(|| how(w));
        }
        if owner != me && liveness::holder_gone(self.addr(), owner) {
            return self.take_over(owner, me, 0);
        }
        None
    }

    /// The slow path: look, then sleep on the semaphore in naps that end with a check of the
    /// owner's liveness. Returns `None` only when a timed attempt gave up.
    #[cold]
    #[track_caller]
    fn lock_contended(
        &self,
        me: u32,
        queue: Queue,
        deadline: Option<Deadline>,
    ) -> Option<Acquired> {
        let mut spins = 0;
        let mut naps = Naps::new();
        // Whether this waiter has asked about the holder before its first sleep.
        let mut asked_first = false;
        // Once this thread has slept it cannot know whether others still sleep (the post it
        // took cleared WAITERS), so whatever it takes, it takes with WAITERS.
        let mut slept = 0;
        loop {
            let w = self.word.load(Ordering::Relaxed);
            let owner = w & OWNER_MASK;
            if owner == 0 {
                let new = me | (w & (WAITERS | INCONSISTENT)) | slept;
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
                relock("SysvSem::lock");
            }
            if spins < SPIN_LIMIT {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            // Before sleeping, and before a timed waiter gives up: the holder's release must
            // post, for this thread or for a sleeper whose post this thread took.
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
                // the holder died (or called exec) takes the lock now instead of after a nap.
                asked_first = true;
                if liveness::holder_gone(self.addr(), owner) {
                    if let Some(how) = self.take_over(owner, me, WAITERS) {
                        return Some(how);
                    }
                    continue;
                }
            }
            slept = WAITERS;
            match queue.sleep(naps.next(left)) {
                // Woken: the lock was released (or the post was an old one); look again.
                Nap::Posted => continue,
                Nap::Over => {}
            }
            if deadline.is_some_and(|d| d.expired()) {
                // One last look: a lock released just now is taken rather than given up.
                let w = self.word.load(Ordering::Relaxed);
                if w & OWNER_MASK == 0
                    && self
                        .word
                        .compare_exchange(w, w | me | WAITERS, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    return Some(how(w));
                }
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
            if let Some(how) = self.take_over(owner, me, WAITERS) {
                return Some(how);
            }
        }
    }

    /// Takes the lock from `dead`, whose process the kernel says is gone (checked by the
    /// caller): only while the word still names it, whatever its flag bits do meanwhile. Ids
    /// are never reused, so a word that still names `dead` is still the dead holder's. Keeps
    /// `WAITERS` (others may sleep behind the dead owner) and adds `extra`.
    #[cold]
    fn take_over(&self, dead: u32, me: u32, extra: u32) -> Option<Acquired> {
        let mut w = self.word.load(Ordering::Relaxed);
        while w & OWNER_MASK == dead {
            match self.word.compare_exchange_weak(
                w,
                me | (w & WAITERS) | extra | INCONSISTENT,
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

// SAFETY: mutual exclusion is the word's, as the futex lock's: a compare-exchange from a free
// word takes it, only the holder clears the owner back, and a take-over happens only from an
// owner whose process the kernel says is gone, by an exact-id compare-exchange (ids are
// never reused); the semaphore only decides when a waiter looks again. Zero bytes are INIT
// (the set is created on first use); the set's id is meaningful in every process.
unsafe impl RawLock for SysvSem {
    const INIT: Self = SysvSem {
        init: InitOnce::new(),
        semid: AtomicI32::new(0),
        num: AtomicU32::new(0),
        set_init: InitOnce::new(),
        word: AtomicU32::new(0),
    };
    const NAME: &'static str = "sysv-sem";
    /// Version 2: the lock word took the place of the holder record (two words) and of
    /// `SEM_UNDO`; the semaphore became a wait queue. A region made by version 1 is refused.
    const LAYOUT_NAME: &'static str = "sysv-sem/2";

    #[track_caller]
    fn lock(&self) -> Acquired {
        match self.acquire(None) {
            Some(how) => how,
            None => unreachable!("an untimed wait does not give up"),
        }
    }
    fn try_lock(&self) -> Option<Acquired> {
        let me = liveness::id_at(self.addr());
        // A call that must not wait does not wait for another process's set-up either.
        self.queue_until(Deadline::after(Duration::ZERO))?;
        if self.take_free(me) {
            return Some(Acquired::Clean);
        }
        self.try_taken(me)
    }
    fn try_lock_for(&self, timeout: Duration) -> Option<Acquired> {
        self.acquire(Some(Deadline::after(timeout)))
    }
    unsafe fn unlock(&self) {
        let w = self.word.load(Ordering::Relaxed);
        if w & OWNER_MASK != liveness::id_at(self.addr()) {
            // Not this thread's: a guard `fork` copied into a child (the guards check their
            // fork generation too); the parent's thread holds the lock.
            return;
        }
        // Only the holder sets or clears INCONSISTENT while it holds the lock, so the flag
        // read above is exact, and the release keeps it in the same swap.
        if self.word.swap(w & INCONSISTENT, Ordering::Release) & WAITERS != 0 {
            // This thread made sure of the set before it took the lock, so the queue is
            // there (a garbage word's WAITERS at worst creates a set of one).
            if let Some(queue) = self.queue_until(Deadline::NEVER) {
                queue.post();
            }
        }
    }
    fn is_locked(&self) -> bool {
        self.word.load(Ordering::Relaxed) & OWNER_MASK != 0
    }
    fn owner(&self) -> Option<crate::liveness::Owner> {
        let owner = self.word.load(Ordering::Acquire) & OWNER_MASK;
        (owner != 0).then(|| liveness::describe(self.addr(), owner))
    }
    fn has_waiters(&self) -> bool {
        self.word.load(Ordering::Relaxed) & WAITERS != 0
    }
    fn is_inconsistent(&self) -> bool {
        self.word.load(Ordering::Relaxed) & INCONSISTENT != 0
    }
    unsafe fn mark_consistent(&self) {
        self.word.fetch_and(!INCONSISTENT, Ordering::Relaxed);
    }
    unsafe fn destroy(&self) {
        if let Some(id) = self.semid() {
            // SAFETY: removing our own set; the caller promises nobody uses it any more.
            // The other locks of a set share the id: for them this fails (EINVAL), harmlessly.
            unsafe { libc::semctl(id, 0, libc::IPC_RMID) };
        }
    }

    fn init_set<'a>(
        locks: impl ExactSizeIterator<Item = &'a Self>,
        timeout: Option<Duration>,
    ) -> bool {
        let mut locks = locks.peekable();
        let Some(first) = locks.peek().copied() else {
            return true;
        };
        let n = locks.len();
        let deadline = timeout.map_or(Deadline::NEVER, Deadline::after);
        first.set_init.ensure_until(deadline, || {
            let id = new_set(n);
            for (num, l) in locks.enumerate() {
                l.init.ensure(|| l.assign(id, num as u32));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A set's set-up that another thread is still at (stopped, say) holds back an untimed
    /// use, never a timed one: `init_set` with a timeout gives up (adversarial review: a
    /// lock set's `try_lock` waited as long as a process stopped inside the set-up).
    #[test]
    fn a_timed_use_of_a_set_gives_up_on_a_set_up_still_in_progress() {
        let locks: Arc<[SysvSem; 3]> = Arc::new([SysvSem::INIT, SysvSem::INIT, SysvSem::INIT]);
        let (started_tx, started) = std::sync::mpsc::channel();
        let (finish, finish_rx) = std::sync::mpsc::channel::<()>();
        let setter = {
            let locks = Arc::clone(&locks);
            std::thread::spawn(move || {
                locks[0].set_init.ensure(|| {
                    started_tx.send(()).unwrap();
                    let _ = finish_rx.recv_timeout(Duration::from_secs(30));
                })
            })
        };
        started
            .recv_timeout(Duration::from_secs(30))
            .expect("the set-up started");
        let t0 = std::time::Instant::now();
        let ready = SysvSem::init_set(locks.iter(), Some(Duration::from_millis(20)));
        let waited = t0.elapsed();
        finish.send(()).unwrap();
        setter.join().unwrap();
        assert!(!ready, "a set-up still in progress was reported done");
        assert!(
            waited < Duration::from_secs(20),
            "init_set with a 20 ms timeout waited {waited:?}"
        );
    }

    /// Removes the lock's set when dropped, so a failing test leaks no SysV id.
    struct Removed<'a>(&'a SysvSem);
    impl Drop for Removed<'_> {
        fn drop(&mut self) {
            // SAFETY: the test is over; nothing uses the lock any more.
            unsafe { self.0.destroy() };
        }
    }

    #[test]
    fn the_word_names_the_holder_and_flags_its_waiters() {
        let l = Arc::new(SysvSem::INIT);
        let _rm = Removed(&l);
        assert_eq!(l.lock(), Acquired::Clean);
        assert!(l.is_locked() && !l.has_waiters());
        assert_eq!(l.owner().map(|o| o.pid), Some(std::process::id()));
        let l2 = Arc::clone(&l);
        let waiter = std::thread::spawn(move || l2.try_lock_for(Duration::from_secs(20)));
        let t0 = std::time::Instant::now();
        while !l.has_waiters() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the waiter never waited"
            );
            std::thread::yield_now();
        }
        // SAFETY: locked above by this thread.
        unsafe { l.unlock() };
        assert_eq!(waiter.join().unwrap(), Some(Acquired::Clean));
        assert!(l.is_locked(), "the waiter took it and did not release it");
    }

    #[test]
    fn old_posts_in_the_semaphore_cost_wake_ups_never_exclusion() {
        let l = Arc::new(SysvSem::INIT);
        let _rm = Removed(&l);
        assert_eq!(l.lock(), Acquired::Clean);
        let queue = l.queue_until(Deadline::NEVER).unwrap();
        for _ in 0..50 {
            queue.post();
        }
        let l2 = Arc::clone(&l);
        let got = std::thread::spawn(move || l2.try_lock_for(Duration::from_millis(50)))
            .join()
            .unwrap();
        assert_eq!(got, None, "a stale post let a waiter past a live holder");
        // SAFETY: locked above by this thread.
        unsafe { l.unlock() };
    }

    #[test]
    fn threads_exclude_each_other() {
        let l = Arc::new(SysvSem::INIT);
        let _rm = Removed(&l);
        let n = Arc::new(AtomicU32::new(0));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (l, n) = (Arc::clone(&l), Arc::clone(&n));
                std::thread::spawn(move || {
                    for _ in 0..5_000 {
                        let _ = l.lock();
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
        assert_eq!(n.load(Ordering::Relaxed), 20_000);
        assert!(!l.is_locked());
    }
}
