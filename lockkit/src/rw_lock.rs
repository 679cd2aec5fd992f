//! [`RwLock`]: a process-shared reader-writer lock that does not starve writers (PJLIB's
//! `pj_rwmutex_t`, `pthread_rwlock_t` with writer preference).
//!
//! # The words
//! - `state`: the number of readers inside (low 31 bits), or `WRITER` when a writer is.
//!   Readers sleep on it.
//! - `writers`: writers waiting or inside. While it is non-zero, new readers wait: a stream
//!   of readers cannot keep a writer out.
//! - `writer_seq`: bumped whenever the lock may have become free for a writer; writers sleep
//!   on it (they read it before checking `state`, so a release in between is not missed).
//!
//! The store to `state` and load of `writers` on one side, and the increment of `writers` and
//! compare-exchange of `state` on the other, are sequentially consistent: each side must see
//! the other's write, or a writer sleeps with nobody left to wake it.
//!
//! Zero bytes are an unlocked lock.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::time::{Duration, Instant};

use crate::sys;
use crate::{ShmSafe, ShmZeroable};

const WRITER: u32 = 1 << 31;

/// Many readers or one writer, across processes, guarding a `T`.
///
/// ```
/// use lockkit::RwLock;
///
/// let routes = RwLock::new([0u32; 4]);
/// {
///     let a = routes.read();
///     let b = routes.read(); // readers share
///     assert_eq!(a[0] + b[0], 0);
/// }
/// routes.write()[0] = 7; // a writer is alone
/// assert_eq!(routes.read()[0], 7);
/// ```
#[repr(C)]
pub struct RwLock<T> {
    state: AtomicU32,
    writers: AtomicU32,
    writer_seq: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: readers share `&T` (so T: Sync through ShmSafe), a writer is alone with `&mut T`.
unsafe impl<T: ShmSafe> Sync for RwLock<T> {}
// SAFETY: moving the lock moves the data; ShmSafe data carries no process-local state.
unsafe impl<T: ShmSafe> Send for RwLock<T> {}
// SAFETY: three atomic words and a ShmSafe value, repr(C).
unsafe impl<T: ShmSafe> ShmSafe for RwLock<T> {}
// SAFETY: zero words are an unlocked lock; the data is zeroable by `T: ShmZeroable`.
unsafe impl<T: ShmZeroable> ShmZeroable for RwLock<T> {}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

fn remaining(deadline: Option<Instant>) -> Result<Option<Duration>, ()> {
    match deadline {
        None => Ok(None),
        Some(d) => match d.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(()),
        },
    }
}

impl<T> RwLock<T> {
    /// An unlocked lock around `value`.
    pub const fn new(value: T) -> Self {
        RwLock {
            state: AtomicU32::new(0),
            writers: AtomicU32::new(0),
            writer_seq: AtomicU32::new(0),
            data: UnsafeCell::new(value),
        }
    }

    fn try_read_once(&self) -> bool {
        let s = self.state.load(SeqCst);
        s & WRITER == 0
            && s < WRITER - 1
            && self.writers.load(SeqCst) == 0
            && self
                .state
                .compare_exchange(s, s + 1, Acquire, Relaxed)
                .is_ok()
    }

    fn read_until(&self, deadline: Option<Instant>) -> bool {
        loop {
            if self.try_read_once() {
                return true;
            }
            let s = self.state.load(SeqCst);
            if s & WRITER == 0 && self.writers.load(SeqCst) == 0 {
                continue; // lost a race with another reader: try again at once
            }
            let Ok(left) = remaining(deadline) else {
                return false;
            };
            // Woken when the writer leaves (or a waiting writer gives up).
            sys::futex_wait(&self.state, s, left);
        }
    }

    /// Shared access; waits while a writer is inside or waiting.
    pub fn read(&self) -> ReadGuard<'_, T> {
        self.read_until(None);
        ReadGuard::new(self)
    }

    /// Shared access if no writer is inside or waiting.
    pub fn try_read(&self) -> Option<ReadGuard<'_, T>> {
        self.try_read_once().then(|| ReadGuard::new(self))
    }

    /// Shared access, waiting at most `timeout`.
    pub fn try_read_for(&self, timeout: Duration) -> Option<ReadGuard<'_, T>> {
        let deadline = Instant::now().checked_add(timeout);
        self.read_until(deadline).then(|| ReadGuard::new(self))
    }

    fn write_until(&self, deadline: Option<Instant>) -> bool {
        self.writers.fetch_add(1, SeqCst);
        loop {
            let seq = self.writer_seq.load(SeqCst);
            if self
                .state
                .compare_exchange(0, WRITER, SeqCst, SeqCst)
                .is_ok()
            {
                return true;
            }
            let Ok(left) = remaining(deadline) else {
                // Readers held back for us would otherwise sleep until some other writer
                // leaves.
                self.writers.fetch_sub(1, SeqCst);
                sys::futex_wake(&self.state, i32::MAX);
                return false;
            };
            sys::futex_wait(&self.writer_seq, seq, left);
        }
    }

    /// Exclusive access; readers arriving meanwhile wait behind this writer.
    pub fn write(&self) -> WriteGuard<'_, T> {
        self.write_until(None);
        WriteGuard::new(self)
    }

    /// Exclusive access if nobody is inside.
    pub fn try_write(&self) -> Option<WriteGuard<'_, T>> {
        self.writers.fetch_add(1, SeqCst);
        let ok = self
            .state
            .compare_exchange(0, WRITER, SeqCst, SeqCst)
            .is_ok();
        if !ok {
            self.writers.fetch_sub(1, SeqCst);
            sys::futex_wake(&self.state, i32::MAX);
        }
        ok.then(|| WriteGuard::new(self))
    }

    /// Exclusive access, waiting at most `timeout`.
    pub fn try_write_for(&self, timeout: Duration) -> Option<WriteGuard<'_, T>> {
        let deadline = Instant::now().checked_add(timeout);
        self.write_until(deadline).then(|| WriteGuard::new(self))
    }

    fn wake_a_writer(&self) {
        self.writer_seq.fetch_add(1, SeqCst);
        sys::futex_wake(&self.writer_seq, 1);
    }

    fn read_unlock(&self) {
        let before = self.state.fetch_sub(1, SeqCst);
        if before == 1 && self.writers.load(SeqCst) > 0 {
            self.wake_a_writer();
        }
    }

    fn write_unlock(&self) {
        self.writers.fetch_sub(1, SeqCst);
        // SeqCst, not Release: this store and the load of `writers` below pair with a
        // writer's increment of `writers` and its compare-exchange of `state`. With a
        // release store the load could be satisfied before the store is visible (x86 store
        // buffer): the writer then sees the lock taken and sleeps, and this unlock sees no
        // writer and wakes none. That hung the mixed reader/writer test about once in a
        // hundred runs.
        self.state.store(0, SeqCst);
        if self.writers.load(SeqCst) > 0 {
            self.wake_a_writer();
        }
        // Readers that waited behind this writer.
        sys::futex_wake(&self.state, i32::MAX);
    }

    /// The number of readers inside at this instant, or `None` if a writer is.
    pub fn readers(&self) -> Option<u32> {
        let s = self.state.load(Relaxed);
        (s & WRITER == 0).then_some(s)
    }
}

impl<T> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock")
            .field("readers", &self.readers())
            .field("writers", &self.writers.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// Shared access to an [`RwLock`]'s data.
#[must_use = "the read lock is released as soon as the guard is dropped"]
pub struct ReadGuard<'a, T> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T> ReadGuard<'a, T> {
    fn new(lock: &'a RwLock<T>) -> Self {
        ReadGuard {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read guard exists only while the state counts it as a reader, so no
        // writer is inside.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.read_unlock();
    }
}

/// Exclusive access to an [`RwLock`]'s data.
#[must_use = "the write lock is released as soon as the guard is dropped"]
pub struct WriteGuard<'a, T> {
    lock: &'a RwLock<T>,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T> WriteGuard<'a, T> {
    /// A guard for the write lock the calling thread holds (also how the group lock gives
    /// back a write lock it took for its chain and forgot).
    pub(crate) fn new(lock: &'a RwLock<T>) -> Self {
        WriteGuard {
            lock,
            _not_send: PhantomData,
        }
    }
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the state holds WRITER for this guard: nobody else is inside.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.write_unlock();
    }
}
