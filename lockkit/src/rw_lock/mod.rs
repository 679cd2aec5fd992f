//! [`RwLock`]: a process-shared reader-writer lock that does not starve writers (PJLIB's
//! `pj_rwmutex_t`, `pthread_rwlock_t` with writer preference).
//!
//! The protocol, its words and who wakes each sleeper are in `raw.rs`; this file is the
//! typed lock and its guards.

pub(crate) mod raw;
mod set;

pub use set::{GenRwLock, GenRwLockSet, PaddedRwLock};

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::model::Deadline;
use crate::{ShmSafe, ShmZeroable};
use raw::{RawRwLock, Refused};

/// Many readers or one writer, across processes, guarding a `T`.
///
/// A writer that arrives while readers are inside waits for them to leave, and readers
/// that arrive after it wait behind it, so a stream of readers cannot keep a writer out.
/// Zero bytes are an unlocked lock.
///
/// Not recursive: a thread that holds the write lock and asks for it again, or for a read
/// lock, gets a panic (or `None` from the `try_*_for` forms) instead of waiting forever. A
/// thread that holds a read lock and asks for another can deadlock if a writer arrived in
/// between (the writer waits for the first read lock, the second waits for the writer), as
/// with every writer-preferring lock: do not nest read locks.
///
/// A writer whose process dies inside (or calls `exec`) is recovered: the next writer is told
/// the owner died ([`WriteGuard::owner_died`]). A *reader* whose process dies inside is not:
/// readers are counted, not named, so its count stays and writers wait for ever (timed writes
/// time out). Use a [`ShmMutex`](crate::ShmMutex) where readers can be killed and writers
/// must go on.
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
    raw: RawRwLock,
    data: UnsafeCell<T>,
}

// SAFETY: readers share `&T` (so T: Sync through ShmSafe), a writer is alone with `&mut T`.
unsafe impl<T: ShmSafe> Sync for RwLock<T> {}
// SAFETY: moving the lock moves the data; ShmSafe data carries no process-local state.
unsafe impl<T: ShmSafe> Send for RwLock<T> {}
// SAFETY: three atomic words and a ShmSafe value, repr(C).
unsafe impl<T: ShmSafe> ShmSafe for RwLock<T> {
    const LAYOUT: &'static crate::layout::TypeLayout = &crate::layout::TypeLayout::of_fields::<Self>(
        "RwLock",
        &[
            crate::layout::FieldLayout {
                name: "lock",
                offset: std::mem::offset_of!(Self, raw),
                layout: &crate::layout::TypeLayout::opaque::<RawRwLock>("lockkit::RwLock/2", ""),
            },
            crate::layout::FieldLayout {
                name: "data",
                offset: std::mem::offset_of!(Self, data),
                layout: T::LAYOUT,
            },
            crate::layout::FieldLayout::interior_mutable(std::mem::offset_of!(Self, data)),
        ],
    );
}
// SAFETY: zero words are an unlocked lock; the data is zeroable by `T: ShmZeroable`.
unsafe impl<T: ShmZeroable> ShmZeroable for RwLock<T> {}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

#[cold]
#[track_caller]
fn own_write_lock(what: &str) -> ! {
    panic!(
        "RwLock::{what}: this thread holds the write lock already; RwLock is not recursive, \
         so waiting for it would never end"
    )
}

impl<T> RwLock<T> {
    /// The most readers the lock admits at once (2^30 - 2). A reader arriving at the limit
    /// waits, like one arriving behind a writer, until a reader leaves.
    pub const MAX_READERS: u32 = raw::MAX_READERS;

    /// An unlocked lock around `value`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        RwLock {
            raw: RawRwLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// An unlocked lock around `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        RwLock {
            raw: RawRwLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Shared access; waits while a writer is inside or waiting.
    ///
    /// # Panics
    /// If the calling thread holds the write lock.
    #[track_caller]
    pub fn read(&self) -> ReadGuard<'_, T> {
        match self.raw.read(Deadline::NEVER) {
            Ok(()) => ReadGuard::new(self),
            Err(Refused::OwnWriteLock) => own_write_lock("read"),
            Err(Refused::TimedOut) => unreachable!("an untimed wait does not time out"),
        }
    }

    /// Shared access if no writer is inside or waiting.
    pub fn try_read(&self) -> Option<ReadGuard<'_, T>> {
        self.raw.try_read().then(|| ReadGuard::new(self))
    }

    /// Shared access, waiting at most `timeout`; `None` at once if the calling thread holds
    /// the write lock.
    pub fn try_read_for(&self, timeout: Duration) -> Option<ReadGuard<'_, T>> {
        self.raw
            .read(Deadline::after(timeout))
            .ok()
            .map(|()| ReadGuard::new(self))
    }

    /// Exclusive access; readers arriving meanwhile wait behind this writer.
    ///
    /// # Panics
    /// If the calling thread holds the write lock.
    #[track_caller]
    pub fn write(&self) -> WriteGuard<'_, T> {
        match self.raw.write(Deadline::NEVER) {
            Ok(()) => WriteGuard::new(self),
            Err(Refused::OwnWriteLock) => own_write_lock("write"),
            Err(Refused::TimedOut) => unreachable!("an untimed wait does not time out"),
        }
    }

    /// Exclusive access if nobody is inside. Never registers as a waiter, so a failed
    /// attempt leaves nothing behind for readers to wait on.
    pub fn try_write(&self) -> Option<WriteGuard<'_, T>> {
        self.raw.try_write().then(|| WriteGuard::new(self))
    }

    /// Exclusive access, waiting at most `timeout`; `None` at once if the calling thread
    /// holds the write lock.
    pub fn try_write_for(&self, timeout: Duration) -> Option<WriteGuard<'_, T>> {
        self.raw
            .write(Deadline::after(timeout))
            .ok()
            .map(|()| WriteGuard::new(self))
    }

    /// Releases the write lock without a guard, for holders that track it themselves (a
    /// group lock's chain).
    ///
    /// # Safety
    /// The calling thread holds the write lock through a `write` whose guard was forgotten.
    pub(crate) unsafe fn force_write_unlock(&self) {
        // SAFETY: per the contract.
        unsafe { self.raw.write_unlock() }
    }

    /// Declares the data repaired without a guard, for holders that track the write lock
    /// themselves (a group lock's chain).
    ///
    /// # Safety
    /// The calling thread holds the write lock.
    pub(crate) unsafe fn force_mark_consistent(&self) {
        self.raw.mark_consistent()
    }

    /// Releases a read lock without a guard, for holders that track it themselves
    /// (`locked!` over several locks).
    ///
    /// # Safety
    /// The calling thread holds a read lock through a `read` whose guard was forgotten.
    pub(crate) unsafe fn force_read_unlock(&self) {
        // SAFETY: per the contract.
        unsafe { self.raw.read_unlock() }
    }

    /// The data, for holders that track the lock themselves; reading or writing it is theirs
    /// to justify.
    pub(crate) fn data_ptr(&self) -> *mut T {
        self.data.get()
    }

    /// The number of readers inside at this instant, or `None` if a writer is.
    pub fn readers(&self) -> Option<u32> {
        self.raw.readers()
    }

    /// Whether a writer's process died inside and no writer has marked the data consistent
    /// since (a snapshot): for code that holds the lock through `locked!` and has no guard
    /// to ask.
    ///
    /// ```
    /// let lock = lockkit::RwLock::new(0u32);
    /// assert!(!lock.is_inconsistent());
    /// ```
    pub fn is_inconsistent(&self) -> bool {
        self.raw.is_inconsistent()
    }
}

impl<T> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock")
            .field("readers", &self.readers())
            .field("writers_waiting", &self.raw.writers_waiting())
            .finish_non_exhaustive()
    }
}

/// Shared access to an [`RwLock`]'s data.
#[must_use = "the read lock is released as soon as the guard is dropped"]
pub struct ReadGuard<'a, T> {
    lock: &'a RwLock<T>,
    fork_generation: u32,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T> ReadGuard<'a, T> {
    fn new(lock: &'a RwLock<T>) -> Self {
        ReadGuard {
            lock,
            fork_generation: crate::liveness::fork_generation(),
            _not_send: PhantomData,
        }
    }
}

impl<T> ReadGuard<'_, T> {
    /// Whether a writer died inside the lock and no writer has marked the data consistent
    /// since: what this reader sees may be half-updated.
    pub fn owner_died(guard: &Self) -> bool {
        guard.lock.raw.is_inconsistent()
    }
}

impl<T> WriteGuard<'_, T> {
    /// Whether a writer died inside the lock and no writer has marked the data consistent
    /// since: repair it, then call [`mark_consistent`](WriteGuard::mark_consistent).
    pub fn owner_died(guard: &Self) -> bool {
        guard.lock.raw.is_inconsistent()
    }

    /// Declares the data repaired after a writer's death.
    pub fn mark_consistent(guard: &mut Self) {
        guard.lock.raw.mark_consistent();
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
        if self.fork_generation != crate::liveness::fork_generation() {
            return; // a copy `fork` made: the parent's thread is the reader
        }
        // SAFETY: this guard counted its thread in as a reader.
        unsafe { self.lock.raw.read_unlock() };
    }
}

/// Exclusive access to an [`RwLock`]'s data.
#[must_use = "the write lock is released as soon as the guard is dropped"]
pub struct WriteGuard<'a, T> {
    lock: &'a RwLock<T>,
    fork_generation: u32,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T> WriteGuard<'a, T> {
    fn new(lock: &'a RwLock<T>) -> Self {
        WriteGuard {
            lock,
            fork_generation: crate::liveness::fork_generation(),
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
        if self.fork_generation != crate::liveness::fork_generation() {
            return; // a copy `fork` made: the parent's thread is the writer
        }
        // SAFETY: this guard's thread holds the write lock (guards are !Send).
        unsafe { self.lock.raw.write_unlock() };
    }
}
