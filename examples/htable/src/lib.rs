//! The table both programs of this package share: `htable` (the parent and its workers) and
//! `htable-dump` (attaches to the region by name and prints the table).
//!
//! Kamailio's `htable` module keeps `ht_entry_t` buckets, each with its own lock (or a lock of
//! a set), holding cells of a name, a value and an expiry. Here the buckets live in one
//! `#[shared_locked]` struct: 1024 buckets striped over 16 locks, so bucket `b` is guarded by
//! stripe `b % 16`, and the compiler refuses any access to a bucket that does not go through
//! its stripe's guard. Keys and values are [`ShmStr`]s (fixed capacity, inline), since a
//! `String` cannot live in shared memory.
//!
//! The same struct carries the work queue the parent fills and the workers drain: a
//! `#[guarded_by]` queue and two [`ShmCondvar`]s, one the workers sleep on until there is
//! work, one the parent sleeps on until the work is done.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use lockkit::{
    shared_locked, GenLock, GenRwLockSet, ShmCondvar, ShmSafe, ShmStr, StripeReadGuard,
    StripeWriteGuard,
};

/// Buckets in the table (Kamailio's `htable` `size` parameter, as a power of two: 2^10).
pub const BUCKETS: usize = 1024;
/// Locks the buckets are striped over.
pub const STRIPES: usize = 16;
/// Cells per bucket: a bucket is a fixed array here, not a linked list.
pub const SLOTS: usize = 8;
/// The most workers the table keeps statistics for.
pub const MAX_WORKERS: usize = 8;
/// Jobs the queue holds at once.
pub const QUEUE: usize = 64;
/// Key capacity in bytes.
pub const KEY: usize = 32;
/// Value capacity in bytes.
pub const VALUE: usize = 48;

/// The name the table is published under in its region.
pub const ROOT: &str = "htable";

// ---------------------------------------------------------------------------------------
// THE ONE PLACE where the table's lock type is chosen.
//
// The buckets are read far more often than written (lookups outnumber sets), so they are
// striped over reader-writer locks: lookups of one stripe share it (`read_buckets`), sets and
// expiry take it alone (`write_buckets`). For exclusive stripes, make this a `GenLockSet`
// (marked `#[lock_set]`) and both accessors `lock_buckets`.
/// The locks the buckets are striped over.
pub type Stripes = GenRwLockSet<STRIPES>;
/// The guard [`HTable::read_bucket`] returns: the stripe shared with other readers.
pub type ReadBuckets<'a> = StripeReadGuard<'a, Bucket>;
/// The guard [`HTable::write_bucket`] returns: the stripe alone.
pub type WriteBuckets<'a> = StripeWriteGuard<'a, Bucket>;
// ---------------------------------------------------------------------------------------

/// What a cell holds. Written before the cell's other fields when it is filled, so a writer
/// killed half-way leaves a cell that says so.
#[derive(ShmSafe, Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum CellState {
    /// Free (zero bytes).
    Free,
    /// Being written: its key, value or expiry may be missing.
    Writing,
    /// Holds a key, its value and its expiry.
    Live,
}

/// One key and its value (Kamailio's `ht_cell_t`).
#[derive(ShmSafe, Clone, Copy)]
#[repr(C)]
pub struct Cell {
    /// Whether the cell is in use.
    pub state: CellState,
    /// The key.
    pub key: ShmStr<KEY>,
    /// The value.
    pub value: ShmStr<VALUE>,
    /// The tick at which the cell expires ([`HTable::now`] >= this: gone).
    pub expires: u64,
}

/// A bucket: its cells and how many are live (Kamailio's `ht_entry_t` with `esize`).
#[derive(ShmSafe)]
#[repr(C)]
pub struct Bucket {
    /// Live cells (kept equal to the number of `Live` cells, repaired after an owner death).
    pub used: u32,
    /// The cells.
    pub cells: [Cell; SLOTS],
}

impl Bucket {
    /// The live cell holding `key`.
    pub fn find(&self, key: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.state == CellState::Live && c.key == *key)
    }

    /// Makes the bucket consistent after its writer died in the middle of an update: cells
    /// left half-written are freed and `used` is recounted. Returns the cells freed.
    pub fn repair(&mut self) -> usize {
        let mut freed = 0;
        for c in &mut self.cells {
            if c.state == CellState::Writing {
                *c = Cell::FREE;
                freed += 1;
            }
        }
        self.used = self
            .cells
            .iter()
            .filter(|c| c.state == CellState::Live)
            .count() as u32;
        freed
    }
}

impl Cell {
    /// A free cell.
    pub const FREE: Cell = Cell {
        state: CellState::Free,
        key: ShmStr::new(),
        value: ShmStr::new(),
        expires: 0,
    };
}

/// What a job asks a worker to do.
#[derive(ShmSafe, Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum JobKind {
    /// An empty queue slot (zero bytes).
    None,
    /// Set keys `first..first + count` to version `version` of their values.
    Set,
    /// Look keys `first..first + count` up.
    Lookup,
    /// Drop the expired cells of stripe `first`.
    Expire,
    /// Start a set and die in the middle of it (the parent kills the worker).
    SetAndDie,
    /// Exit.
    Stop,
}

/// A job in the queue.
#[derive(ShmSafe, Clone, Copy, Debug)]
#[repr(C)]
pub struct Job {
    /// What to do.
    pub kind: JobKind,
    /// The first key (or the stripe, for [`JobKind::Expire`]).
    pub first: u32,
    /// How many keys.
    pub count: u32,
    /// Which version of the values to set.
    pub version: u32,
}

/// The work queue: a ring of jobs, and what became of them.
#[derive(ShmSafe)]
#[repr(C)]
pub struct Queue {
    /// Jobs pushed so far (the next one goes to `pushed % QUEUE`).
    pub pushed: u32,
    /// Jobs taken so far.
    pub taken: u32,
    /// Jobs finished so far.
    pub finished: u32,
    /// 1 + the worker that holds a stripe and waits to be killed ([`JobKind::SetAndDie`]).
    pub doomed: u32,
    /// The stripe it holds.
    pub doomed_stripe: u32,
    /// The ring.
    pub jobs: [Job; QUEUE],
}

impl Queue {
    /// Jobs pushed and not taken yet.
    pub fn waiting(&self) -> u32 {
        self.pushed - self.taken
    }

    /// Pushes a job; `false` if the ring is full.
    pub fn push(&mut self, job: Job) -> bool {
        if self.waiting() as usize == QUEUE {
            return false;
        }
        self.jobs[self.pushed as usize % QUEUE] = job;
        self.pushed += 1;
        true
    }

    /// Takes the oldest job, if any.
    pub fn pop(&mut self) -> Option<Job> {
        if self.waiting() == 0 {
            return None;
        }
        let job = self.jobs[self.taken as usize % QUEUE];
        self.taken += 1;
        Some(job)
    }
}

/// What one worker did (written by that worker only, read by the parent at the end).
#[derive(ShmSafe, Default)]
#[repr(C)]
pub struct WorkerStats {
    /// Keys set that were not in the table.
    pub inserted: AtomicU64,
    /// Keys set that were (their value replaced).
    pub updated: AtomicU64,
    /// Sets refused because the bucket was full.
    pub full: AtomicU64,
    /// Lookups.
    pub lookups: AtomicU64,
    /// Lookups that found a live, unexpired cell with the expected value.
    pub hits: AtomicU64,
    /// Lookups that found the key with another value than expected.
    pub wrong: AtomicU64,
    /// Cells dropped because they expired.
    pub expired: AtomicU64,
    /// Stripes repaired after being told their last holder died.
    pub repairs: AtomicU64,
    /// Half-written cells those repairs freed.
    pub freed: AtomicU64,
}

/// The shared table.
#[shared_locked]
pub struct HTable {
    /// The bucket locks (see [`Stripes`]: the one place their type is chosen).
    #[rw_lock_set]
    stripes: Stripes,
    /// Bucket `b` is guarded by stripe `b % STRIPES`.
    #[striped_by(stripes)]
    buckets: [Bucket; BUCKETS],
    /// Guards the work queue.
    pub jobs: GenLock,
    /// The work queue.
    #[guarded_by(jobs)]
    pub queue: Queue,
    /// Workers wait here for a job.
    pub work: ShmCondvar,
    /// The parent waits here for jobs to finish (and for the doomed worker to hold its
    /// stripe).
    pub done: ShmCondvar,
    /// The table's clock, in ticks: set by the parent, so expiry does not depend on how fast
    /// the machine is.
    pub now: AtomicU64,
    /// What each worker did.
    pub stats: [WorkerStats; MAX_WORKERS],
}

/// Where a key goes: Kamailio hashes the name (`core_hash`); any hash that is the same in
/// every process will do. FNV-1a.
pub fn bucket_of(key: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h as usize % BUCKETS
}

/// The key of number `n`.
pub fn key(n: u32) -> String {
    format!("key-{n}")
}

/// Version `version` of key `n`'s value.
pub fn value(n: u32, version: u32) -> String {
    format!("value-{n}-v{version}")
}

/// What [`HTable::set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// A new cell.
    Inserted,
    /// The key's cell got the new value and expiry.
    Updated,
    /// The bucket had no free cell.
    Full,
}

impl HTable {
    /// Takes bucket `b`'s stripe to read it. See [`Stripes`].
    pub fn read_bucket(&self, b: usize) -> ReadBuckets<'_> {
        self.read_buckets(b)
    }

    /// Takes bucket `b`'s stripe to change it. See [`Stripes`].
    pub fn write_bucket(&self, b: usize) -> WriteBuckets<'_> {
        self.write_buckets(b)
    }

    /// The table's clock.
    pub fn now(&self) -> u64 {
        self.now.load(Relaxed)
    }

    /// Takes bucket `b`'s stripe for a worker: if its last holder died holding it, repairs
    /// every bucket of the stripe under this one hold, marks it consistent and counts the
    /// repair in `stats`.
    pub fn worker_bucket(&self, b: usize, stats: &WorkerStats) -> WriteBuckets<'_> {
        let mut g = self.write_bucket(b);
        if StripeWriteGuard::owner_died(&g) {
            let freed: usize = g.iter_mut().map(|(_, bucket)| bucket.repair()).sum();
            StripeWriteGuard::mark_consistent(&mut g);
            stats.repairs.fetch_add(1, Relaxed);
            stats.freed.fetch_add(freed as u64, Relaxed);
            eprintln!(
                "htable: pid {} was told the holder of stripe {} died: repaired its {} buckets \
                 under one hold ({freed} half-written cell(s) freed)",
                std::process::id(),
                g.stripe(),
                BUCKETS / STRIPES,
            );
        }
        g
    }

    /// Sets `key` to `value`, expiring at tick `expires` (Kamailio's `$sht(t=>key) = value`
    /// with `autoexpire`).
    pub fn set(&self, key: &str, value: &str, expires: u64, stats: &WorkerStats) -> SetOutcome {
        let mut g = self.worker_bucket(bucket_of(key), stats);
        let bucket = &mut *g;
        if let Some(c) = bucket
            .cells
            .iter_mut()
            .find(|c| c.state == CellState::Live && c.key == *key)
        {
            c.value = ShmStr::truncated(value);
            c.expires = expires;
            return SetOutcome::Updated;
        }
        let Some(c) = bucket.cells.iter_mut().find(|c| c.state == CellState::Free) else {
            return SetOutcome::Full;
        };
        // Marked first: a writer killed below leaves a cell the repair recognises.
        c.state = CellState::Writing;
        c.key = ShmStr::truncated(key);
        c.value = ShmStr::truncated(value);
        c.expires = expires;
        c.state = CellState::Live;
        bucket.used += 1;
        SetOutcome::Inserted
    }

    /// The value of `key`, if it is live and has not expired. Shares the bucket's stripe
    /// with other lookups; only a stripe whose last writer died is taken alone, to repair it.
    pub fn get(&self, key: &str, stats: &WorkerStats) -> Option<ShmStr<VALUE>> {
        let now = self.now();
        let b = bucket_of(key);
        let found = |bucket: &Bucket| {
            bucket
                .find(key)
                .filter(|c| c.expires > now)
                .map(|c| c.value)
        };
        let g = self.read_bucket(b);
        if !StripeReadGuard::owner_died(&g) {
            return found(&g);
        }
        drop(g);
        found(&self.worker_bucket(b, stats))
    }

    /// Drops the expired cells of every bucket of `stripe`, under one hold (Kamailio's
    /// `ht_timer` walks the buckets the same way). Returns how many it dropped.
    pub fn expire_stripe(&self, stripe: usize, stats: &WorkerStats) -> usize {
        let now = self.now();
        let mut g = self.worker_bucket(stripe, stats);
        let mut dropped = 0;
        for (_, bucket) in g.iter_mut() {
            for c in &mut bucket.cells {
                if c.state == CellState::Live && c.expires <= now {
                    *c = Cell::FREE;
                    bucket.used -= 1;
                    dropped += 1;
                }
            }
        }
        dropped
    }

    /// Every live cell with its bucket, stripe by stripe (each stripe taken once, and not
    /// repaired: a reader such as the dumper leaves that to the workers). `died` is called
    /// for a stripe whose last holder died in an update not repaired yet.
    pub fn for_each_cell(&self, mut f: impl FnMut(usize, &Cell), mut died: impl FnMut(usize)) {
        for stripe in 0..STRIPES {
            let g = self.read_bucket(stripe);
            if StripeReadGuard::owner_died(&g) {
                died(stripe);
            }
            for (b, bucket) in g.iter() {
                for c in bucket.cells.iter().filter(|c| c.state == CellState::Live) {
                    f(b, c);
                }
            }
        }
    }

    /// Waits for a job, without the queue's lock, at most `timeout`: `None` at the deadline.
    pub fn next_job(&self, timeout: Duration) -> Option<Job> {
        let mut q = self.lock_jobs();
        let waited = self
            .work
            .wait_while_for(&mut q, timeout, |q| q.queue.waiting() == 0);
        if waited.timed_out() {
            return None;
        }
        q.queue.pop()
    }

    /// Pushes jobs for the workers and wakes them; `false` if the queue had no room.
    pub fn push_jobs(&self, jobs: impl IntoIterator<Item = Job>) -> bool {
        let ok = {
            let mut q = self.lock_jobs();
            jobs.into_iter().all(|j| q.queue.push(j))
        };
        self.work.notify_all();
        ok
    }

    /// Counts a job finished and wakes the parent.
    pub fn job_finished(&self) {
        self.lock_jobs().queue.finished += 1;
        self.done.notify_all();
    }
}
