//! [`ShmCondvar`]: a process-shared condition variable for lockkit's mutex guards.
//!
//! The protocol (two words, who wakes whom, what a killed waiter leaves behind) is in
//! `raw.rs`; this file is the API: which guards it takes, how a wait releases and retakes
//! their lock, and what the retaken guard reports.

mod raw;

use std::fmt;
use std::time::Duration;

use crate::model::Deadline;
use crate::raw::RawLock;
use crate::{GenLockGuard, ShmMutexGuard, ShmSafe, ShmZeroable};
use raw::{RawCondvar, Woke};

/// A condition variable that works across processes: `pthread_cond_t` with
/// `PTHREAD_PROCESS_SHARED`, for lockkit's guards ([`ShmMutexGuard`], [`GenLockGuard`]).
///
/// A thread that holds a lock waits for a condition on the data the lock guards: the wait
/// releases the lock, sleeps until another thread or process notifies, and takes the lock
/// again before it returns. Zero bytes are a condition variable nobody waits on, so one
/// inside a zeroed allocation (or a `#[shared_locked]` struct) needs no initialisation.
///
/// ```
/// use lockkit::{ShmCondvar, ShmMutex, ShmRegion};
/// use std::time::Duration;
///
/// let region = ShmRegion::anonymous(1 << 20)?;
/// let queue = region.alloc(ShmMutex::new(0u32))?; // items waiting
/// let ready = region.alloc(ShmCondvar::new())?;
///
/// // A producer (in any process that maps the region):
/// *queue.lock() += 1;
/// ready.notify_one();
///
/// // A consumer:
/// let mut items = queue.lock();
/// let waited = ready.wait_while_for(&mut items, Duration::from_secs(5), |n| *n == 0);
/// assert!(!waited.timed_out());
/// *items -= 1;
/// # Ok::<(), lockkit::Error>(())
/// ```
///
/// # What a wait guarantees
/// - **Notify under the lock.** Change the condition while holding the lock, then notify
///   (holding it or after releasing it): a waiter that saw the old condition has registered
///   before it released the lock, so the notify cannot miss it. A condition changed without
///   the lock can lose a wake-up, as with every condition variable.
/// - **Spurious wake-ups.** A wait may return although nobody notified *for it*: a
///   `notify_one` may also release a waiter that was about to sleep, and the condition may
///   have changed back before the waiter retook the lock. Wait in a loop, or with
///   [`wait_while`](ShmCondvar::wait_while), which does.
/// - **No syscall without waiters.** A notify when nobody waits is one load.
/// - **Several locks.** Nothing ties a condition variable to one lock (unlike
///   `pthread_cond_t`, where that is undefined behaviour): each wait releases the lock of the
///   guard it is given.
///
/// # Owner death
/// The lock is retaken as [`lock`](crate::GenLock::lock) takes it, so the guard a wait
/// returns with reports what that acquisition found: if a holder of the lock died holding it
/// while the waiter slept, [`ShmMutexGuard::owner_died`] (or [`GenLockGuard::owner_died`]) is
/// true on the returned guard, and the waiter repairs the data and calls `mark_consistent`,
/// as after any acquisition. A holder's death does not wake waiters by itself: they wake on
/// a notify (the dead holder may have sent one before it died), a deadline, or spuriously.
/// [`wait_while`](ShmCondvar::wait_while) checks its condition on the data as the dead holder
/// left it; a condition that half-updated data could fool also asks
/// [`ShmMutex::is_inconsistent`](crate::ShmMutex::is_inconsistent).
///
/// # Killed and forked waiters
/// A waiter killed while it sleeps holds no lock and breaks nobody: it stays counted, so
/// every later notify makes one system call (waking nobody extra). A waiter killed after a
/// `notify_one` woke it, before it retook the lock, takes that notification with it (as with
/// `pthread_cond_signal`): where waiters may be killed, use `notify_all` or timed waits.
/// Waiting with a guard that `fork` copied into a child panics (the lock is the parent's).
#[repr(C)]
#[derive(Default)]
pub struct ShmCondvar {
    raw: RawCondvar,
}

// SAFETY: two atomic words, no pointers; used through `&Self` only.
unsafe impl ShmSafe for ShmCondvar {
    const LAYOUT: &'static crate::layout::TypeLayout =
        &crate::layout::TypeLayout::opaque::<Self>("lockkit::ShmCondvar/1", "");
}
// SAFETY: zero bytes are sequence 0 with no registered waiters.
unsafe impl ShmZeroable for ShmCondvar {}

/// Whether a timed wait ran out of time ([`ShmCondvar::wait_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait ended because its time was up: for
    /// [`wait_while_for`](ShmCondvar::wait_while_for), the condition still held at the
    /// deadline.
    ///
    /// ```
    /// use lockkit::{GenLock, ShmCondvar};
    /// use std::time::Duration;
    ///
    /// let (lock, cv) = (GenLock::new(), ShmCondvar::new());
    /// let mut g = lock.lock();
    /// assert!(cv.wait_for(&mut g, Duration::from_millis(1)).timed_out());
    /// ```
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A guard a [`ShmCondvar`] can wait with: [`ShmMutexGuard`] and [`GenLockGuard`], over any
/// backend. Sealed: a wait must release and retake the guard's lock, which only lockkit's
/// own guards know how to do.
///
/// The guards `#[shared_locked]` accessors return for `#[guarded_by]` fields are
/// `ShmMutexGuard`s, so a condition on a guarded field is waited for with them. A
/// [`StripeGuard`](crate::StripeGuard) (a stripe of a `#[striped_by]` field) is not a
/// `CondvarGuard`: keep what workers wait for (a queue, a count) in a `#[guarded_by]` field
/// of its own, as `examples/htable` does.
pub trait CondvarGuard: sealed::Release {
    /// What the condition of [`ShmCondvar::wait_while`] looks at: the guarded data for a
    /// [`ShmMutexGuard`], `()` for a [`GenLockGuard`] (whose data lives elsewhere).
    type Data: ?Sized;

    #[doc(hidden)]
    fn condvar_data(&mut self) -> &mut Self::Data;
}

mod sealed {
    /// Releases a guard's lock for the length of a sleep (see
    /// `GenLockGuard::release_while`); not nameable outside the crate, so not callable.
    pub trait Release {
        #[track_caller]
        fn release_while<P, U>(
            &mut self,
            prepare: impl FnOnce() -> P,
            sleep: impl FnOnce(P) -> U,
        ) -> U;
    }
}

impl<R: RawLock> sealed::Release for GenLockGuard<'_, R> {
    #[track_caller]
    fn release_while<P, U>(
        &mut self,
        prepare: impl FnOnce() -> P,
        sleep: impl FnOnce(P) -> U,
    ) -> U {
        GenLockGuard::release_while(self, prepare, sleep)
    }
}

impl<R: RawLock> CondvarGuard for GenLockGuard<'_, R> {
    type Data = ();
    fn condvar_data(&mut self) -> &mut () {
        // A zero-sized box allocates nothing; leaking it yields a `&mut ()` of any lifetime.
        Box::leak(Box::new(()))
    }
}

impl<T, R: RawLock> sealed::Release for ShmMutexGuard<'_, T, R> {
    #[track_caller]
    fn release_while<P, U>(
        &mut self,
        prepare: impl FnOnce() -> P,
        sleep: impl FnOnce(P) -> U,
    ) -> U {
        GenLockGuard::release_while(ShmMutexGuard::lock_guard(self), prepare, sleep)
    }
}

impl<T, R: RawLock> CondvarGuard for ShmMutexGuard<'_, T, R> {
    type Data = T;
    fn condvar_data(&mut self) -> &mut T {
        self
    }
}

impl ShmCondvar {
    /// A condition variable nobody waits on (the same as zeroed memory).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        ShmCondvar {
            raw: RawCondvar::new(),
        }
    }

    /// A condition variable nobody waits on.
    #[cfg(loom)]
    pub fn new() -> Self {
        ShmCondvar {
            raw: RawCondvar::new(),
        }
    }

    /// Releases the guard's lock, sleeps until a notify, and takes the lock again. May return
    /// spuriously: check the condition in a loop, or use
    /// [`wait_while`](ShmCondvar::wait_while).
    ///
    /// ```
    /// use lockkit::{ShmCondvar, ShmMutex};
    /// use std::sync::Arc;
    ///
    /// let shared = Arc::new((ShmMutex::new(false), ShmCondvar::new()));
    /// let s = Arc::clone(&shared);
    /// let t = std::thread::spawn(move || {
    ///     *s.0.lock() = true;
    ///     s.1.notify_all();
    /// });
    /// let mut done = shared.0.lock();
    /// while !*done {
    ///     shared.1.wait(&mut done);
    /// }
    /// t.join().unwrap();
    /// ```
    ///
    /// # Panics
    /// If `fork` copied the guard into this process (its lock is the parent's).
    #[track_caller]
    pub fn wait<G: CondvarGuard>(&self, guard: &mut G) {
        let _ = self.wait_until(guard, Deadline::NEVER);
    }

    /// [`wait`](ShmCondvar::wait), giving up after `timeout` (the lock is retaken either
    /// way). A notify that arrives as the time runs out counts as a notify: `timed_out` is
    /// false whenever the wait was notified, so the notification is not lost to a caller
    /// that gives up on a timeout.
    ///
    /// ```
    /// use lockkit::{ShmCondvar, ShmMutex};
    /// use std::time::Duration;
    ///
    /// let (m, cv) = (ShmMutex::new(0u8), ShmCondvar::new());
    /// let mut g = m.lock();
    /// let r = cv.wait_for(&mut g, Duration::from_millis(5)); // nobody notifies
    /// assert!(r.timed_out());
    /// *g += 1; // still held
    /// ```
    #[track_caller]
    pub fn wait_for<G: CondvarGuard>(&self, guard: &mut G, timeout: Duration) -> WaitTimeoutResult {
        WaitTimeoutResult(self.wait_until(guard, Deadline::after(timeout)) == Woke::TimedOut)
    }

    /// Waits for as long as `condition` holds: checks it under the lock, and after every
    /// wake-up (spurious ones included), so it returns holding the lock with the condition
    /// false.
    ///
    /// ```
    /// use lockkit::{ShmCondvar, ShmMutex};
    /// use std::sync::Arc;
    ///
    /// let shared = Arc::new((ShmMutex::new([0u32; 4]), ShmCondvar::new()));
    /// let s = Arc::clone(&shared);
    /// let producer = std::thread::spawn(move || {
    ///     for i in 1..4 {
    ///         s.0.lock()[i] = i as u32; // slot i filled
    ///         s.1.notify_one();
    ///     }
    /// });
    /// let mut slots = shared.0.lock();
    /// shared.1.wait_while(&mut slots, |s| s.iter().filter(|&&v| v != 0).count() < 3);
    /// assert_eq!(*slots, [0, 1, 2, 3]);
    /// # drop(slots);
    /// # producer.join().unwrap();
    /// ```
    #[track_caller]
    pub fn wait_while<G: CondvarGuard>(
        &self,
        guard: &mut G,
        mut condition: impl FnMut(&mut G::Data) -> bool,
    ) {
        while condition(guard.condvar_data()) {
            self.wait(guard);
        }
    }

    /// [`wait_while`](ShmCondvar::wait_while) for at most `timeout` in all: `timed_out` is
    /// true if the condition still held at the deadline.
    ///
    /// ```
    /// use lockkit::{ShmCondvar, ShmMutex};
    /// use std::time::Duration;
    ///
    /// let (m, cv) = (ShmMutex::new(0u32), ShmCondvar::new());
    /// let mut g = m.lock();
    /// assert!(cv.wait_while_for(&mut g, Duration::from_millis(5), |n| *n == 0).timed_out());
    /// *g = 1;
    /// assert!(!cv.wait_while_for(&mut g, Duration::from_millis(5), |n| *n == 0).timed_out());
    /// ```
    #[track_caller]
    pub fn wait_while_for<G: CondvarGuard>(
        &self,
        guard: &mut G,
        timeout: Duration,
        mut condition: impl FnMut(&mut G::Data) -> bool,
    ) -> WaitTimeoutResult {
        let deadline = Deadline::after(timeout);
        while condition(guard.condvar_data()) {
            if deadline.left().is_err() {
                return WaitTimeoutResult(true);
            }
            let _ = self.wait_until(guard, deadline);
        }
        WaitTimeoutResult(false)
    }

    /// Wakes one waiting thread, in any process (if any waits: with nobody waiting this is
    /// one load, no system call).
    ///
    /// ```
    /// let cv = lockkit::ShmCondvar::new();
    /// cv.notify_one(); // nobody waits: nothing happens, and nothing is remembered
    /// ```
    pub fn notify_one(&self) {
        self.raw.notify(1);
    }

    /// Wakes every waiting thread, in every process. They retake the lock one at a time.
    ///
    /// ```
    /// let cv = lockkit::ShmCondvar::new();
    /// cv.notify_all();
    /// ```
    pub fn notify_all(&self) {
        self.raw.notify(i32::MAX);
    }

    /// How many threads are registered as waiting at this instant, in all processes: a
    /// snapshot for diagnostics and tests. Waiters killed while waiting stay counted.
    ///
    /// ```
    /// assert_eq!(lockkit::ShmCondvar::new().waiters(), 0);
    /// ```
    pub fn waiters(&self) -> u32 {
        self.raw.waiters()
    }

    #[track_caller]
    fn wait_until<G: CondvarGuard>(&self, guard: &mut G, deadline: Deadline) -> Woke {
        guard.release_while(
            || self.raw.register(),
            |ticket| self.raw.sleep(ticket, deadline),
        )
    }
}

impl fmt::Debug for ShmCondvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmCondvar")
            .field("waiters", &self.waiters())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{GenLock, ShmMutex};
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn zeroed_memory_is_a_condvar_nobody_waits_on() {
        // SAFETY: ShmCondvar is ShmZeroable: two atomic words.
        let cv: ShmCondvar = unsafe { std::mem::zeroed() };
        assert_eq!(cv.waiters(), 0);
        let lock = GenLock::new();
        let mut g = lock.lock();
        assert!(cv.wait_for(&mut g, Duration::from_millis(1)).timed_out());
        assert_eq!(cv.waiters(), 0, "a waiter that gave up unregisters");
    }

    #[test]
    fn a_notify_with_nobody_waiting_touches_nothing() {
        let cv = ShmCondvar::new();
        cv.notify_one();
        cv.notify_all();
        // The sequence number moves only on the path that makes the wake-up system call.
        assert_eq!(cv.raw.seq(), 0);
        assert_eq!(cv.waiters(), 0);
    }

    #[test]
    fn a_wait_releases_the_lock_and_returns_holding_it() {
        let shared = Arc::new((ShmMutex::new(0u32), ShmCondvar::new()));
        let s = Arc::clone(&shared);
        let mut g = shared.0.lock();
        let t = std::thread::spawn(move || {
            // Only possible while the waiter is asleep: it released the lock.
            *s.0.lock() = 7;
            s.1.notify_one();
        });
        shared.1.wait_while(&mut g, |n| *n != 7);
        assert!(shared.0.is_locked());
        assert!(shared.0.try_lock().is_none(), "the waiter holds it again");
        assert!(!ShmMutexGuard::owner_died(&g));
        drop(g);
        t.join().unwrap();
        assert_eq!(shared.1.waiters(), 0);
    }

    #[test]
    fn a_timed_wait_gives_up_no_earlier_than_asked() {
        let (lock, cv) = (GenLock::new(), ShmCondvar::new());
        let mut g = lock.lock();
        let t0 = Instant::now();
        let r = cv.wait_while_for(&mut g, Duration::from_millis(30), |()| true);
        assert!(r.timed_out());
        assert!(t0.elapsed() >= Duration::from_millis(30));
        assert!(lock.is_locked());
    }

    #[test]
    fn threads_hand_exact_counts_through_two_condvars() {
        // A one-slot mailbox: `full` is signalled by the producer, `empty` by the consumer.
        const N: u64 = 2_000;
        let shared = Arc::new((
            ShmMutex::new((false, 0u64)),
            ShmCondvar::new(),
            ShmCondvar::new(),
        ));
        let s = Arc::clone(&shared);
        let producer = std::thread::spawn(move || {
            for i in 1..=N {
                let mut g = s.0.lock();
                s.2.wait_while(&mut g, |(full, _)| *full);
                *g = (true, i);
                s.1.notify_one();
            }
        });
        let mut sum = 0;
        for _ in 0..N {
            let mut g = shared.0.lock();
            shared.1.wait_while(&mut g, |(full, _)| !*full);
            sum += g.1;
            g.0 = false;
            shared.2.notify_one();
        }
        producer.join().unwrap();
        assert_eq!(sum, N * (N + 1) / 2);
    }

    #[test]
    fn a_panic_after_a_wait_releases_the_retaken_lock_once() {
        let m = ShmMutex::new(0u32);
        let cv = ShmCondvar::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut g = m.lock();
            let mut calls = 0;
            // The first look waits (and retakes the lock); the second panics.
            let _ = cv.wait_while_for(&mut g, Duration::from_millis(1), |_| {
                calls += 1;
                assert!(calls < 2, "condition panicked");
                true
            });
        }));
        assert!(r.is_err());
        assert!(!m.is_locked(), "the guard's drop released it");
        assert!(m.try_lock().is_some());
    }
}
