//! The reader-writer protocol behind [`RwLock`](super::RwLock): two words in shared memory.
//!
//! # The words
//!
//! ```text
//! state:   31               30               29 .. 0
//!          [WRITERS_WAITING] [READERS_WAITING] [count]
//! ```
//! - `count`: the number of readers inside (`0 ..= MAX_READERS`), or, while a writer is
//!   inside, `WRITE_BIT` (bit 29) with the writer's owner id (`crate::liveness`, 29 bits) below
//!   it: the compare-exchange that lets a writer in records who it is, in the same step.
//! - `READERS_WAITING`: some reader may be asleep on `state`.
//! - `WRITERS_WAITING`: some writer may be asleep on `writer_notify`. While it is set, new
//!   readers wait, so a stream of readers cannot keep a writer out.
//! - `writer_notify`: a counter bumped by every wake-up meant for a writer; writers sleep on
//!   it, having read it before they last looked at `state`.
//! - `writer_waiters`: how many writers are registered as waiting. The last one to give up
//!   clears `WRITERS_WAITING`, so a writer that tried and left does not hold new readers
//!   back behind the readers already inside.
//! - The writer's id in `count` refuses a relock by that thread, and lets waiters recover the
//!   lock from a writer whose process the kernel says is gone (died or called `exec`): no kill
//!   can land between taking the lock and recording the writer, nor between forgetting the
//!   writer and releasing, because each is one atomic operation.
//! - `inconsistent`: set when a dead writer's lock was recovered, until a writer calls
//!   `mark_consistent`; every guard meanwhile reports the owner died.
//!
//! Zero bytes are an unlocked lock with nobody waiting.
//!
//! # Who wakes each sleeper (the liveness argument)
//! - A **reader** sleeps on `state` only after setting `READERS_WAITING`, and only with that
//!   bit in the value it expects. Whoever clears the bit wakes every sleeper on `state`, and
//!   only a transition that makes the lock free of writers clears it: `write_unlock` and the
//!   last `read_unlock` (through `wake_writer_or_readers`), or a writer that gives up while
//!   the lock is free. So a reader can never sleep on a value that no one will change: if the
//!   bit was cleared and set again (by another reader) between its look and its sleep, the
//!   bit is still set when it sleeps, and the next clearing wakes it too. Readers held back
//!   only by the reader limit are woken by the `read_unlock` that leaves the limit.
//! - A **writer** sleeps on `writer_notify` only while `WRITERS_WAITING` is set and the lock
//!   is taken; it read `writer_notify` before it looked, so any wake-up after that look
//!   changes the word and the sleep returns at once. Every release that leaves the lock free
//!   with `WRITERS_WAITING` set clears the bit and wakes one writer.
//! - A writer that does not take the lock (its deadline passed) may have swallowed the
//!   wake-up another writer needed, and may have left readers behind a bit it set: when it
//!   gives up (`writer_gave_up`) it clears `WRITERS_WAITING` if it was the last writer
//!   registered (waking the readers that slept behind it), then passes one writer wake-up on
//!   (so a writer that read `writer_notify` before the bit was cleared does not sleep), and,
//!   if the lock is free, wakes whoever waits. If `wake_writer_or_readers` woke no writer at all (the last one gave
//!   up, or was killed, before sleeping), it wakes the readers instead.
//! - A waiting writer killed while asleep leaves `WRITERS_WAITING` set (and stays counted in
//!   `writer_waiters` for good, so no writer that gives up later clears the bit); the next
//!   release finds no writer to wake and lets the readers in, and a reader that has napped
//!   five times (about 1.5 ms) behind the bit while readers are inside and no writer is
//!   clears it and wakes every writer (`ask_writers_again`): live waiting writers set it
//!   again at once, and the dead one holds nobody out. (A writer killed *inside* is recovered
//!   by its waiters: `recover_dead_writer`.)
//!
//! The protocol is model-checked with loom (`RUSTFLAGS="--cfg loom" cargo test -p lockkit
//! --lib --release rw_lock`), over the model futex in `crate::model`.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

use std::time::Duration;

use crate::deadline::Expired;
use crate::model::{self, futex_wait, futex_wake, AtomicU32, Deadline};
use crate::sys::Wake;

/// A waiter's sleep limit, so it wakes now and then to ask whether a writer inside is gone:
/// 50 µs at first, doubling to 1 ms. Under loom there is no time and no death: no limit.
struct Nap(Duration);

impl Nap {
    fn new() -> Nap {
        Nap(Duration::from_micros(50))
    }

    /// The timeout for the next sleep, given the time left before the caller's deadline.
    fn limit(&self, left: Option<Duration>) -> Option<Duration> {
        if cfg!(loom) {
            return left;
        }
        Some(left.map_or(self.0, |l| l.min(self.0)))
    }

    /// After a sleep that timed out: whether it was a nap that ended (time to check the
    /// writer) rather than the caller's deadline; lengthens the next nap.
    fn ended(&mut self, left: Option<Duration>) -> bool {
        if cfg!(loom) || left.is_some_and(|l| l <= self.0) {
            return false;
        }
        self.0 = (self.0 * 2).min(Duration::from_millis(1));
        true
    }
}

const COUNT_MASK: u32 = (1 << 30) - 1;
/// Set in `count` while a writer is inside; the writer's owner id is below it.
const WRITE_BIT: u32 = 1 << 29;
const WRITER_ID: u32 = WRITE_BIT - 1;
const _: () = assert!(crate::liveness::ID_MASK <= WRITER_ID);
/// The most readers inside at once: `count` stays below `WRITE_BIT`.
pub(crate) const MAX_READERS: u32 = WRITE_BIT - 1;
const READERS_WAITING: u32 = 1 << 30;
const WRITERS_WAITING: u32 = 1 << 31;
/// Looks at a taken lock this many times before sleeping.
const SPIN_LIMIT: u32 = 20;
/// Naps a reader takes behind `WRITERS_WAITING` (readers inside, no writer) before it asks
/// the writers to say again that they wait (`ask_writers_again`): about 1.5 ms.
const STALE_WRITERS_NAPS: u32 = 5;

fn count(s: u32) -> u32 {
    s & COUNT_MASK
}
fn is_unlocked(s: u32) -> bool {
    count(s) == 0
}
fn is_write_locked(s: u32) -> bool {
    s & WRITE_BIT != 0
}
/// The owner id of the writer inside (0 if none).
fn writer_of(s: u32) -> u32 {
    if is_write_locked(s) {
        s & WRITER_ID
    } else {
        0
    }
}
/// A new reader may enter: no writer inside or waiting, and room under the limit.
/// (`READERS_WAITING` does not hold a reader back: it only tells releasers to wake.)
fn is_read_lockable(s: u32) -> bool {
    count(s) < MAX_READERS && s & WRITERS_WAITING == 0
}

/// How a lock attempt ended for the calling thread, when it did not get the lock.
pub(crate) enum Refused {
    /// The deadline passed.
    TimedOut,
    /// The calling thread holds the write lock itself: waiting could never end.
    OwnWriteLock,
}

/// The words of the protocol.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct RawRwLock {
    state: AtomicU32,
    writer_notify: AtomicU32,
    writer_waiters: AtomicU32,
    _reserved: AtomicU32,
    inconsistent: AtomicU32,
}

impl RawRwLock {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        RawRwLock {
            state: AtomicU32::new(0),
            writer_notify: AtomicU32::new(0),
            writer_waiters: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
            inconsistent: AtomicU32::new(0),
        }
    }
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        RawRwLock {
            state: AtomicU32::new(0),
            writer_notify: AtomicU32::new(0),
            writer_waiters: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
            inconsistent: AtomicU32::new(0),
        }
    }

    #[inline]
    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// Whether the calling thread is the writer inside.
    fn own_write_lock(&self, s: u32) -> bool {
        if !is_write_locked(s) {
            return false;
        }
        writer_of(s) == model::id_at(self.addr())
    }

    // ----- readers -----

    /// One attempt at shared access; never waits.
    pub(crate) fn try_read(&self) -> bool {
        if self.try_read_once() {
            return true;
        }
        // A writer whose process is gone: released on its behalf, as a waiting reader would.
        let s = self.state.load(Relaxed);
        if writer_of(s) != 0 && !self.own_write_lock(s) {
            self.recover_dead_writer(false);
            return self.try_read_once();
        }
        false
    }

    fn try_read_once(&self) -> bool {
        let mut s = self.state.load(Relaxed);
        while is_read_lockable(s) {
            match self.state.compare_exchange_weak(s, s + 1, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    /// Shared access, waiting until `deadline`.
    pub(crate) fn read(&self, deadline: Deadline) -> Result<(), Refused> {
        if self.try_read_once() {
            return Ok(());
        }
        self.read_contended(deadline)
    }

    #[cold]
    fn read_contended(&self, deadline: Deadline) -> Result<(), Refused> {
        let mut nap = Nap::new();
        let mut naps_behind_writers = 0;
        let mut s = self.spin(|s| is_read_lockable(s) || s & READERS_WAITING != 0);
        loop {
            if is_read_lockable(s) {
                match self.state.compare_exchange_weak(s, s + 1, Acquire, Relaxed) {
                    Ok(_) => return Ok(()),
                    Err(now) => {
                        s = now;
                        continue;
                    }
                }
            }
            if self.own_write_lock(s) {
                return Err(Refused::OwnWriteLock);
            }
            // Make sure whoever lets readers in will know to wake us.
            if s & READERS_WAITING == 0 {
                if let Err(now) =
                    self.state
                        .compare_exchange(s, s | READERS_WAITING, Relaxed, Relaxed)
                {
                    s = now;
                    continue;
                }
                s |= READERS_WAITING;
            }
            let left = deadline.left().map_err(|Expired| Refused::TimedOut)?;
            if futex_wait(&self.state, s, nap.limit(left)) == Wake::TimedOut && nap.ended(left) {
                self.recover_dead_writer(false);
                let now = self.state.load(Relaxed);
                if count(now) != 0 && !is_write_locked(now) && now & WRITERS_WAITING != 0 {
                    naps_behind_writers += 1;
                    if naps_behind_writers >= STALE_WRITERS_NAPS {
                        naps_behind_writers = 0;
                        self.ask_writers_again(now);
                    }
                }
            }
            s = self.state.load(Relaxed);
        }
    }

    /// A reader that has napped a while behind `WRITERS_WAITING`, with readers inside and no
    /// writer: the bit may be a dead writer's (a writer killed while it waited stays counted
    /// in `writer_waiters`, so no writer that gives up ever clears it again). Clear it and
    /// wake every writer: a live waiting writer sets it again as soon as it looks (its sleep
    /// on `writer_notify` returns), and the readers behind it get in meanwhile.
    #[cold]
    fn ask_writers_again(&self, s: u32) {
        if self
            .state
            .compare_exchange(
                s,
                s & !(WRITERS_WAITING | READERS_WAITING),
                Relaxed,
                Relaxed,
            )
            .is_err()
        {
            return;
        }
        self.writer_notify.fetch_add(1, Release);
        futex_wake(&self.writer_notify, i32::MAX);
        if s & READERS_WAITING != 0 {
            futex_wake(&self.state, i32::MAX);
        }
    }

    /// Leaves shared access.
    ///
    /// # Safety
    /// The calling thread counted itself in with `try_read`/`read`.
    pub(crate) unsafe fn read_unlock(&self) {
        let s = self.state.fetch_sub(1, Release) - 1;
        if is_unlocked(s) && s & (READERS_WAITING | WRITERS_WAITING) != 0 {
            // The last reader out: a writer waits (readers wait only behind one).
            self.wake_writer_or_readers(s);
        } else if count(s) == MAX_READERS - 1 && s & READERS_WAITING != 0 {
            // Readers may be waiting for room under the limit. The bit stays: the next
            // release that frees the lock clears it.
            futex_wake(&self.state, i32::MAX);
        }
    }

    // ----- writers -----

    /// One attempt at exclusive access; never waits and never registers as a waiter.
    pub(crate) fn try_write(&self) -> bool {
        let mut s = self.state.load(Relaxed);
        while is_unlocked(s) {
            match self
                .state
                .compare_exchange_weak(s, s | self.write_locked(), Acquire, Relaxed)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        // A writer whose process is gone: taken over, as a waiting writer would.
        writer_of(s) != 0 && !self.own_write_lock(s) && self.recover_dead_writer(true)
    }

    /// Exclusive access, waiting until `deadline`.
    pub(crate) fn write(&self, deadline: Deadline) -> Result<(), Refused> {
        if self
            .state
            .compare_exchange(0, self.write_locked(), Acquire, Relaxed)
            .is_ok()
        {
            return Ok(());
        }
        self.write_contended(deadline)
    }

    #[cold]
    fn write_contended(&self, deadline: Deadline) -> Result<(), Refused> {
        // Once this writer has set WRITERS_WAITING, others may be sleeping behind the same
        // bit: keep it set when taking the lock, so our release wakes them.
        let mut keep = 0;
        let mut nap = Nap::new();
        let mut s = self.spin(|s| is_unlocked(s) || s & WRITERS_WAITING != 0);
        let locked = self.write_locked();
        loop {
            if is_unlocked(s) {
                match self
                    .state
                    .compare_exchange_weak(s, s | locked | keep, Acquire, Relaxed)
                {
                    Ok(_) => {
                        if keep != 0 {
                            self.writer_waiters.fetch_sub(1, SeqCst);
                        }
                        return Ok(());
                    }
                    Err(now) => {
                        s = now;
                        continue;
                    }
                }
            }
            if self.own_write_lock(s) {
                if keep != 0 {
                    self.writer_gave_up();
                }
                return Err(Refused::OwnWriteLock);
            }
            if keep == 0 {
                // Registered before the bit is set, so whoever sees the bit and counts 0
                // knows no writer is behind it.
                self.writer_waiters.fetch_add(1, SeqCst);
                keep = WRITERS_WAITING;
            }
            if s & WRITERS_WAITING == 0 {
                if let Err(now) =
                    self.state
                        .compare_exchange(s, s | WRITERS_WAITING, Relaxed, Relaxed)
                {
                    s = now;
                    continue;
                }
            }
            // Read the counter before the last look at `state`: a wake-up after that look
            // changes the counter, and the sleep below returns at once.
            let seq = self.writer_notify.load(Acquire);
            s = self.state.load(Relaxed);
            if is_unlocked(s) || s & WRITERS_WAITING == 0 {
                continue;
            }
            let Ok(left) = deadline.left() else {
                self.writer_gave_up();
                return Err(Refused::TimedOut);
            };
            if futex_wait(&self.writer_notify, seq, nap.limit(left)) == Wake::TimedOut
                && nap.ended(left)
                && self.recover_dead_writer(true)
            {
                self.writer_waiters.fetch_sub(1, SeqCst);
                return Ok(());
            }
            s = self.spin(|s| is_unlocked(s) || s & WRITERS_WAITING != 0);
        }
    }

    /// A writer that registered as waiting is leaving without the lock.
    #[cold]
    fn writer_gave_up(&self) {
        if self.writer_waiters.fetch_sub(1, SeqCst) == 1 {
            // The last writer registered: readers must not go on waiting behind our bit.
            let mut s = self.state.load(SeqCst);
            while s & WRITERS_WAITING != 0 && !is_unlocked(s) {
                let clear = s & !(WRITERS_WAITING | READERS_WAITING);
                match self.state.compare_exchange(s, clear, SeqCst, SeqCst) {
                    Ok(_) => {
                        if s & READERS_WAITING != 0 {
                            futex_wake(&self.state, i32::MAX);
                        }
                        break;
                    }
                    Err(now) => s = now,
                }
            }
        }
        // A release may have spent its one writer wake-up on us, and a writer that read
        // `writer_notify` before the bit was cleared must not sleep: pass one on.
        self.wake_writer();
        // And if the lock is free, nobody else may be left to wake the others.
        let s = self.state.load(Relaxed);
        if is_unlocked(s) && s & (READERS_WAITING | WRITERS_WAITING) != 0 {
            self.wake_writer_or_readers(s);
        }
    }

    /// Leaves exclusive access.
    ///
    /// # Safety
    /// The calling thread holds the write lock.
    pub(crate) unsafe fn write_unlock(&self) {
        // Exactly what the caller's own compare-exchange put in: readers cannot change
        // `count` while a writer is inside, so only the flags are left.
        let locked = self.write_locked();
        let s = self.state.fetch_sub(locked, Release) - locked;
        if s & (READERS_WAITING | WRITERS_WAITING) != 0 {
            self.wake_writer_or_readers(s);
        }
    }

    /// After a nap: if a writer holds the lock and is dead, recovers it (see the module
    /// docs). A waiting writer (`become_writer`) takes the dead writer's place and gets
    /// `true`; a waiting reader releases the lock on its behalf. One waiter wins.
    #[cold]
    fn recover_dead_writer(&self, become_writer: bool) -> bool {
        let mut s = self.state.load(Relaxed);
        let dead = writer_of(s);
        let me = model::id_at(self.addr());
        if dead == 0 || dead == me || !model::holder_gone(self.addr(), dead) {
            return false;
        }
        // Whoever wins below, the dead writer's data may be half-written: flagged first, so
        // that no kill of the recoverer can leave the lock handed on without the flag.
        self.inconsistent.store(1, Relaxed);
        // Ids are never reused: while `count` names `dead`, the dead writer is inside.
        while writer_of(s) == dead {
            let flags = s & !COUNT_MASK;
            let new = if become_writer {
                flags | self.write_locked()
            } else {
                flags
            };
            match self.state.compare_exchange(s, new, Acquire, Relaxed) {
                Ok(_) if become_writer => return true,
                Ok(_) => {
                    // The dead writer's release, as `write_unlock` does it.
                    if new & (READERS_WAITING | WRITERS_WAITING) != 0 {
                        self.wake_writer_or_readers(new);
                    }
                    return false;
                }
                Err(now) => s = now,
            }
        }
        false
    }

    /// The `count` of this lock held for writing by the calling thread.
    #[inline]
    fn write_locked(&self) -> u32 {
        WRITE_BIT | model::id_at(self.addr())
    }

    /// Whether a dead writer's lock was recovered and no writer has marked the data
    /// consistent since.
    pub(crate) fn is_inconsistent(&self) -> bool {
        self.inconsistent.load(Relaxed) != 0
    }

    /// Clears the flag; the caller holds the write lock.
    pub(crate) fn mark_consistent(&self) {
        self.inconsistent.store(0, Relaxed);
    }

    // ----- waking -----

    /// Bumps `writer_notify` and wakes one writer; whether a sleeping writer was woken.
    fn wake_writer(&self) -> bool {
        self.writer_notify.fetch_add(1, Release);
        futex_wake(&self.writer_notify, 1) > 0
    }

    /// The lock was seen free with waiters flagged in `s`: wake one writer, or, if none is
    /// waiting (or none was asleep to be woken), every reader.
    fn wake_writer_or_readers(&self, mut s: u32) {
        debug_assert!(is_unlocked(s));
        if s == WRITERS_WAITING {
            match self.state.compare_exchange(s, 0, Relaxed, Relaxed) {
                Ok(_) => {
                    self.wake_writer();
                    return;
                }
                // Readers flagged themselves meanwhile, or the lock was taken.
                Err(now) => s = now,
            }
        }
        if s == READERS_WAITING | WRITERS_WAITING {
            if self
                .state
                .compare_exchange(s, READERS_WAITING, Relaxed, Relaxed)
                .is_err()
            {
                // Taken meanwhile: its holder's release will wake the waiters.
                return;
            }
            if self.wake_writer() {
                return;
            }
            // No writer was asleep (it gave up, or died, before sleeping): let the readers
            // in rather than leave them waiting for a writer that will never come.
            s = READERS_WAITING;
        }
        if s == READERS_WAITING && self.state.compare_exchange(s, 0, Relaxed, Relaxed).is_ok() {
            futex_wake(&self.state, i32::MAX);
        }
    }

    /// Spins briefly while the lock is taken and nobody sleeps, returning the last state.
    fn spin(&self, done: impl Fn(u32) -> bool) -> u32 {
        let mut s = self.state.load(Relaxed);
        for _ in 0..SPIN_LIMIT {
            if done(s) {
                break;
            }
            std::hint::spin_loop();
            s = self.state.load(Relaxed);
        }
        s
    }

    /// The number of readers inside, or `None` while a writer is.
    pub(crate) fn readers(&self) -> Option<u32> {
        let s = self.state.load(Relaxed);
        (!is_write_locked(s)).then_some(count(s))
    }

    /// A snapshot for the lock report: readers inside (or `None` while a writer is), the
    /// writer's owner id (0 if none), whether anyone waits, and the inconsistent flag.
    pub(crate) fn snapshot(&self) -> (Option<u32>, u32, bool, bool) {
        let s = self.state.load(Relaxed);
        let writer = writer_of(s);
        (
            (!is_write_locked(s)).then_some(count(s)),
            writer,
            s & (READERS_WAITING | WRITERS_WAITING) != 0,
            self.is_inconsistent(),
        )
    }

    /// The writer named by owner id `writer` (from [`snapshot`](Self::snapshot)), for
    /// diagnostics.
    pub(crate) fn describe_writer(&self, writer: u32) -> crate::liveness::Owner {
        crate::liveness::describe(self.addr(), writer)
    }

    /// Whether a writer waits (a snapshot).
    pub(crate) fn writers_waiting(&self) -> bool {
        self.state.load(Relaxed) & WRITERS_WAITING != 0
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! `RUSTFLAGS="--cfg loom" cargo test -p lockkit --lib --release rw_lock`
    //!
    //! Each model runs the real protocol above over the model futex; loom explores every
    //! interleaving (bounded by preemptions) and fails on a thread left asleep for good
    //! ("deadlock") or a broken exclusion.

    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::thread;

    struct Shared {
        lock: RawRwLock,
        data: UnsafeCell<u32>,
    }

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            lock: RawRwLock::new(),
            data: UnsafeCell::new(0),
        })
    }

    fn write_once(s: &Shared) {
        s.lock.write(Deadline::NEVER).ok().unwrap();
        s.data.with_mut(|d| unsafe { *d += 1 });
        // SAFETY: taken just above.
        unsafe { s.lock.write_unlock() };
    }

    fn read_once(s: &Shared) -> u32 {
        s.lock.read(Deadline::NEVER).ok().unwrap();
        let v = s.data.with(|d| unsafe { *d });
        // SAFETY: taken just above.
        unsafe { s.lock.read_unlock() };
        v
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(f);
    }

    #[test]
    fn a_reader_and_two_writers_all_finish() {
        model(|| {
            let s = shared();
            let (a, b) = (Arc::clone(&s), Arc::clone(&s));
            let w1 = thread::spawn(move || write_once(&a));
            let w2 = thread::spawn(move || write_once(&b));
            let seen = read_once(&s);
            assert!(seen <= 2);
            w1.join().unwrap();
            w2.join().unwrap();
            assert_eq!(read_once(&s), 2);
        });
    }

    #[test]
    fn two_readers_and_a_writer_all_finish() {
        model(|| {
            let s = shared();
            let (a, b) = (Arc::clone(&s), Arc::clone(&s));
            let r1 = thread::spawn(move || read_once(&a));
            let r2 = thread::spawn(move || read_once(&b));
            write_once(&s);
            r1.join().unwrap();
            r2.join().unwrap();
            assert_eq!(read_once(&s), 1);
        });
    }

    #[test]
    fn a_writer_that_gives_up_strands_nobody() {
        model(|| {
            let s = shared();
            // A reader inside for a while, a writer that registers and gives up, and a
            // reader arriving meanwhile.
            s.lock.read(Deadline::NEVER).ok().unwrap();
            let (a, b) = (Arc::clone(&s), Arc::clone(&s));
            let giver = thread::spawn(move || {
                let got = a.lock.write(Deadline::after(Default::default())).is_ok();
                if got {
                    // SAFETY: taken just above.
                    unsafe { a.lock.write_unlock() };
                }
            });
            let reader = thread::spawn(move || read_once(&b));
            // SAFETY: counted in above.
            unsafe { s.lock.read_unlock() };
            giver.join().unwrap();
            reader.join().unwrap();
            assert!(s.lock.try_write());
        });
    }

    #[test]
    fn a_reader_gets_in_beside_a_reader_once_the_only_writer_gave_up() {
        model(|| {
            let s = shared();
            s.lock.read(Deadline::NEVER).ok().unwrap();
            let (a, b) = (Arc::clone(&s), Arc::clone(&s));
            let giver = thread::spawn(move || {
                assert!(a.lock.write(Deadline::after(Default::default())).is_err());
            });
            let reader = thread::spawn(move || read_once(&b));
            // The arriving reader finishes while the first is still inside.
            giver.join().unwrap();
            reader.join().unwrap();
            // SAFETY: counted in above.
            unsafe { s.lock.read_unlock() };
        });
    }

    #[test]
    fn a_woken_writer_that_gives_up_passes_the_wake_up_on() {
        model(|| {
            let s = shared();
            s.lock.write(Deadline::NEVER).ok().unwrap();
            let (a, b) = (Arc::clone(&s), Arc::clone(&s));
            let giver = thread::spawn(move || {
                if a.lock.write(Deadline::after(Default::default())).is_ok() {
                    // SAFETY: taken just above.
                    unsafe { a.lock.write_unlock() };
                }
            });
            let waiter = thread::spawn(move || write_once(&b));
            // SAFETY: taken above.
            unsafe { s.lock.write_unlock() };
            giver.join().unwrap();
            waiter.join().unwrap();
        });
    }

    #[test]
    fn try_write_failing_beside_readers_strands_nobody() {
        model(|| {
            let s = shared();
            s.lock.read(Deadline::NEVER).ok().unwrap();
            let (a, b) = (Arc::clone(&s), Arc::clone(&s));
            let trier = thread::spawn(move || {
                if a.lock.try_write() {
                    // SAFETY: taken just above.
                    unsafe { a.lock.write_unlock() };
                }
            });
            let reader = thread::spawn(move || read_once(&b));
            // SAFETY: counted in above.
            unsafe { s.lock.read_unlock() };
            trier.join().unwrap();
            reader.join().unwrap();
        });
    }
}
