//! Lock-order checking (cargo feature `lock-debug`): an AB/BA inversion is reported with
//! both call sites *before* the threads deadlock, also when the two orders were taken in
//! two processes.
//!
//! Every thread keeps the locks it holds, each with the `#[track_caller]` site that took
//! it. When a thread takes lock B by waiting for it while it holds A, the checker records
//! the edge "B after A" with both sites; before a thread waits for B while holding A, it
//! looks for the edge "A after B". Finding it means some thread (in any process that maps
//! the region) took the two in the other order: two threads doing both can deadlock.
//! Then, as [`set_on_inversion`] (or the environment variable `LOCKKIT_LOCK_ORDER` =
//! `panic` | `log` | `off`, read once) says: panic in the thread about to wait (the default:
//! its guards unwind, nothing stays held), print the inversion to standard error once, or
//! only record it. Either way [`inversions`] lists it and, for locks in a region,
//! `region.report()` and `lockkit-top` show it.
//!
//! ```
//! # #[cfg(feature = "lock-debug")] {
//! use lockkit::lock_order::{set_on_inversion, OnInversion};
//! use lockkit::{GenLock, ShmRegion};
//!
//! set_on_inversion(OnInversion::Panic);
//! let region = ShmRegion::anonymous(1 << 20)?;
//! let (a, b) = (region.alloc(GenLock::new())?, region.alloc(GenLock::new())?);
//! {
//!     let _a = a.lock();
//!     let _b = b.lock(); // recorded: b after a
//! }
//! let _b = b.lock();
//! let inverted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
//!     let _a = a.lock(); // a after b: reported before it waits
//! }));
//! assert!(inverted.is_err());
//! # }
//! # Ok::<(), lockkit::Error>(())
//! ```
//!
//! What takes part: [`GenLock`](crate::GenLock) and everything built on it (`ShmMutex`,
//! lock-set entries, `#[shared_locked]` accessors, every `locked!` form) and group locks
//! ([`GrpLock`](crate::grp::GrpLock), as one lock taken where `lock()` was called, with
//! its chained locks held beside it). `RecLock`, `RwLock` and `ShmSemaphore` do not. As in
//! Linux's lockdep, a `try_lock` (and `try_lock_for`, which cannot wait for ever) records no
//! edge and is never reported, since it cannot deadlock, but the locks it took count as
//! held for the locks taken after them; so a group's chained locks, which the group only
//! tries, never count as taken in the wrong order.
//!
//! Locks in a region are named by the region (device and inode) and their offset, which
//! every process agrees on, and their edges live in a table in the region; freeing an
//! object forgets the edges of the locks in it. Locks outside every region (and group
//! locks) are named by their address, and their edges live in a table of this process; a
//! group's edges are forgotten when it is destroyed, but a plain `GenLock` in process
//! memory that is dropped and another made at its address share their edges. So are the
//! edges between locks of two *different* regions: an AB/BA pair split between two regions
//! is caught within one process, not across processes. The check is for pairs (A after B,
//! then B after A), not for longer cycles, and, as in lockdep, it does not know that a
//! third lock taken first by both threads (a gate) already keeps them apart: such a pair
//! is reported too, though it cannot deadlock while the gate is always taken. A full table
//! records nothing more (1/128 of a region, up to 4096 live pairs; 4096 in the process;
//! the entries of freed objects are used again). A thread's first 32 held locks are
//! tracked; locks taken while it holds more are not checked.

use std::cell::Cell;
use std::fmt;
use std::hash::Hasher;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::*};
use std::sync::Mutex;

use crate::lock_hooks::What;
use crate::shm::order_table::{Edge, EdgeTable, RegionWords, Words, ENTRY_WORDS, INVERTED};
use crate::shm::view::View;

/// What the checker does when a thread is about to take two locks in the order opposite
/// to one seen before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnInversion {
    /// Panic in the thread about to wait, before it waits (the default).
    Panic,
    /// Print the inversion to standard error (once per pair of locks) and go on.
    Log,
    /// Only record it (see [`inversions`] and the region's report).
    Ignore,
}

static ACTION: AtomicU8 = AtomicU8::new(0);

/// Sets what happens when an inversion is found, for the whole process.
pub fn set_on_inversion(action: OnInversion) {
    ACTION.store(action as u8 + 1, Relaxed);
}

/// What happens when an inversion is found: as last set, else as `LOCKKIT_LOCK_ORDER`
/// says (`panic`, `log`, `off`), else [`OnInversion::Panic`].
pub fn on_inversion() -> OnInversion {
    let mut a = ACTION.load(Relaxed);
    if a == 0 {
        let from_env = match std::env::var("LOCKKIT_LOCK_ORDER").as_deref() {
            Ok("log") => OnInversion::Log,
            Ok("off") | Ok("ignore") => OnInversion::Ignore,
            _ => OnInversion::Panic,
        };
        a = from_env as u8 + 1;
        let _ = ACTION.compare_exchange(0, a, Relaxed, Relaxed);
        a = ACTION.load(Relaxed);
    }
    match a {
        2 => OnInversion::Log,
        3 => OnInversion::Ignore,
        _ => OnInversion::Panic,
    }
}

/// Two locks about to be taken in the order opposite to one taken before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inversion {
    /// The lock the thread holds (A): in a region, `object.field`, or `offset 0x..` when
    /// the report cannot name it; else its address.
    pub held: String,
    /// Where this thread took A (`file:line:column`).
    pub held_at: String,
    /// The lock it is about to wait for (B).
    pub taking: String,
    /// Where it is taking B.
    pub taking_at: String,
    /// Where the earlier thread took B, which it held while taking A (if recorded).
    pub earlier_held_at: Option<String>,
    /// Where the earlier thread took A while holding B (if recorded).
    pub earlier_taken_at: Option<String>,
    /// The process and thread that took them the other way round.
    pub earlier_pid: u32,
    /// See `earlier_pid`.
    pub earlier_tid: u32,
}

impl fmt::Display for Inversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_unknown = |s: &Option<String>| s.clone().unwrap_or_else(|| "?".into());
        write!(
            f,
            "lock order inversion: this thread holds {} (taken at {}) and is about to wait \
             for {} (at {}), but pid {} tid {} took {} (at {}) while holding {} (taken at {}): \
             two threads doing both can deadlock (unless another lock both always hold first \
             keeps them apart); take them in one order",
            self.held,
            self.held_at,
            self.taking,
            self.taking_at,
            self.earlier_pid,
            self.earlier_tid,
            self.held,
            or_unknown(&self.earlier_taken_at),
            self.taking,
            or_unknown(&self.earlier_held_at),
        )
    }
}

static FOUND: Mutex<Vec<Inversion>> = Mutex::new(Vec::new());

/// The inversions this process has found so far, oldest first.
pub fn inversions() -> Vec<Inversion> {
    FOUND.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The listener of the locks' hooks (`crate::lock_hooks`), bound at the crate root: the
/// checker here, and the site recorder of `crate::lock_debug`.
pub(crate) struct Checker;

impl crate::lock_hooks::Observer for Checker {
    type Held = Snapshot;

    #[inline]
    fn before_wait(addr: usize, what: What, site: &'static Location<'static>) -> Option<Snapshot> {
        before_wait(addr, what, site)
    }

    #[inline]
    fn acquired(
        addr: usize,
        what: What,
        site: &'static Location<'static>,
        before: Option<Snapshot>,
    ) {
        acquired(addr, what, site, before)
    }

    #[inline]
    fn released(addr: usize) {
        pop(addr);
    }

    fn group_gone(addr: usize) {
        EdgeTable(LocalWords).forget(|code| code == addr as u64);
    }

    fn freed(start: usize, end: usize) {
        let Some(region) = crate::regions::region_of(start) else {
            return;
        };
        let (base, len, ..) = region;
        View::with_registered(start, region, |view| {
            let (from, to) = ((start - base) as u64, (end.min(base + len) - base) as u64);
            EdgeTable(RegionWords::of(view)).forget(|off| (from..to).contains(&off));
        });
    }

    fn site_index(addr: usize, site: &'static Location<'static>) -> Option<u32> {
        crate::lock_debug::site_index(addr, site)
    }
}

/// A lock as the checker names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Id {
    /// In a region: its identity, this process's mapping of it, and the lock's offset.
    Shm {
        dev: u64,
        ino: u64,
        base: usize,
        len: usize,
        off: u64,
    },
    /// In this process's memory, by address.
    Local(usize),
}

impl Id {
    fn of(addr: usize) -> Id {
        match crate::regions::region_of(addr) {
            Some((base, len, dev, ino)) => Id::Shm {
                dev,
                ino,
                base,
                len,
                off: (addr - base) as u64,
            },
            None => Id::Local(addr),
        }
    }

    /// The id in the process's table: an address, or a hash of a region lock's identity
    /// with the top bit set (addresses never have it).
    fn code(&self) -> u64 {
        match *self {
            Id::Local(a) => a as u64,
            Id::Shm { dev, ino, off, .. } => {
                let mut h = crate::lock_set::StableHasher::new();
                h.write_u64(dev);
                h.write_u64(ino);
                h.write_u64(off);
                h.finish() | 1 << 63
            }
        }
    }

    fn same_region(&self, other: &Id) -> bool {
        matches!((self, other),
            (Id::Shm { dev, ino, .. }, Id::Shm { dev: d2, ino: i2, .. }) if (dev, ino) == (d2, i2))
    }
}

/// A lock the thread holds. Small (it is pushed and popped on every acquisition); its
/// [`Id`] is worked out only when another lock is involved.
#[derive(Clone, Copy)]
struct Held {
    addr: usize,
    what: What,
    site: &'static Location<'static>,
}

impl Held {
    fn id(&self) -> Id {
        Id::of(self.addr)
    }
}

/// The most locks one thread's stack records at once; locks taken beyond that are not
/// checked (nor is anything taken while they are held, against them).
const MAX_HELD: usize = 32;

/// The locks a thread holds: a fixed array of cells, so the lock path touches no heap, no
/// borrow flag and no thread-local destructor.
struct Stack {
    fork_generation: Cell<u32>,
    len: Cell<usize>,
    slots: [Cell<Option<Held>>; MAX_HELD],
}

thread_local! {
    static HELD: Stack = const {
        Stack {
            fork_generation: Cell::new(0),
            len: Cell::new(0),
            slots: [const { Cell::new(None) }; MAX_HELD],
        }
    };
}

impl Stack {
    /// The stack as this process sees it: empty in a fork child (its copies of guards hold
    /// nothing).
    #[inline]
    fn current(&self) -> usize {
        let generation = crate::liveness::fork_generation();
        if self.fork_generation.get() != generation {
            self.fork_generation.set(generation);
            self.len.set(0);
        }
        self.len.get()
    }

    fn snapshot(&self, len: usize) -> Snapshot {
        let mut out = Snapshot {
            held: [None; MAX_HELD],
        };
        for (o, s) in out.held.iter_mut().zip(&self.slots[..len]) {
            *o = s.get();
        }
        out
    }
}

/// The locks a thread held at one moment: a copy on the stack (the lock path allocates
/// nothing, which `tests/grp_alloc.rs` checks for group locks).
#[derive(Clone, Copy)]
pub(crate) struct Snapshot {
    held: [Option<Held>; MAX_HELD],
}

impl Snapshot {
    fn iter(&self) -> impl Iterator<Item = &Held> {
        self.held.iter().flatten()
    }
}

/// The locks this thread holds, oldest first (`None` when it holds none: the common case).
#[inline]
fn held_now() -> Option<Snapshot> {
    HELD.try_with(|s| {
        let len = s.current();
        (len > 0).then(|| s.snapshot(len))
    })
    .ok()
    .flatten()
}

/// Records that this thread holds `h`.
#[inline]
fn push(h: Held) {
    let _ = HELD.try_with(|s| {
        let len = s.current();
        if len < MAX_HELD {
            s.slots[len].set(Some(h));
            s.len.set(len + 1);
        }
    });
}

/// Forgets the latest entry for the lock at `addr`.
#[inline]
fn pop(addr: usize) {
    let _ = HELD.try_with(|s| {
        let len = s.current();
        let Some(i) = (0..len)
            .rev()
            .find(|&i| s.slots[i].get().is_some_and(|h| h.addr == addr))
        else {
            return;
        };
        for j in i..len - 1 {
            s.slots[j].set(s.slots[j + 1].get());
        }
        s.len.set(len - 1);
    });
}

/// The process's own table, for edges that involve a lock outside every region, or locks
/// of two regions.
const LOCAL_ENTRIES: usize = 4096;
static LOCAL: [AtomicU64; LOCAL_ENTRIES * ENTRY_WORDS as usize] =
    [const { AtomicU64::new(0) }; LOCAL_ENTRIES * ENTRY_WORDS as usize];

struct LocalWords;

impl Words for LocalWords {
    fn word(&self, i: u64) -> Option<&AtomicU64> {
        LOCAL.get(usize::try_from(i).ok()?)
    }
    fn words(&self) -> u64 {
        LOCAL.len() as u64
    }
}

/// Runs `f` on the view of the region a `Shm` id is in, while it stays mapped (a held lock
/// whose guard was leaked keeps no handle that would keep it so); `None` if that region is
/// no longer mapped where the id saw it.
fn with_view<T>(id: &Id, f: impl FnOnce(&View<'_>) -> T) -> Option<T> {
    let Id::Shm {
        base,
        len,
        dev,
        ino,
        ..
    } = *id
    else {
        return None;
    };
    View::with_registered(base, (base, len, dev, ino), f)
}

/// A site as stored in a table: its index in the region's site table + 1 (region tables,
/// which other processes read), or the `Location`'s address (the process's table).
fn site_code(h: &Held, region: bool) -> u64 {
    if region {
        crate::lock_debug::site_index(h.addr, h.site).map_or(0, |i| u64::from(i) + 1)
    } else {
        h.site as *const Location<'static> as u64
    }
}

fn site_text(code: u64, region: Option<&View<'_>>) -> Option<String> {
    if code == 0 {
        return None;
    }
    match region {
        Some(view) => view.site(u32::try_from(code - 1).ok()?),
        None => {
            // SAFETY: codes in the process's table are addresses of `&'static Location`s
            // this process stored (its table is never shared: a fork child's copy holds its
            // parent's, which are mapped at the same addresses in the child).
            let at = unsafe { &*(code as *const Location<'static>) };
            Some(at.to_string())
        }
    }
}

/// The recorded edge `from -> to`, if any, with its entry; run `f` on it in its table.
fn with_edge<T>(from: &Id, to: &Id, f: impl FnOnce(Edge, Option<&View<'_>>) -> T) -> Option<T> {
    if from.same_region(to) {
        let (Id::Shm { off: a, .. }, Id::Shm { off: b, .. }) = (from, to) else {
            return None;
        };
        with_view(from, |view| {
            let t = EdgeTable(RegionWords::of(view));
            let (entry, edge) = t.find(*a, *b)?;
            let out = f(edge, Some(view));
            t.flag(entry, INVERTED);
            Some(out)
        })
        .flatten()
    } else {
        let t = EdgeTable(LocalWords);
        let (entry, edge) = t.find(from.code(), to.code())?;
        let out = f(edge, None);
        t.flag(entry, INVERTED);
        Some(out)
    }
}

/// Records "`to` was taken while `from` was held"; returns the flags the edge had.
fn record(from: &Held, to: &Held, flags: u64) -> u64 {
    let (from_id, to_id) = (from.id(), to.id());
    let edge = |a: u64, b: u64, region: bool| Edge {
        from: a,
        to: b,
        held_site: site_code(from, region),
        taken_site: site_code(to, region),
        pid: u64::from(std::process::id()),
        tid: u64::from(crate::sys::tid()),
        flags,
    };
    if from_id.same_region(&to_id) {
        let (Id::Shm { off: a, .. }, Id::Shm { off: b, .. }) = (from_id, to_id) else {
            return 0;
        };
        with_view(&from_id, |view| {
            let t = EdgeTable(RegionWords::of(view));
            if let Some((e, old)) = t.find(a, b) {
                return t.flag(e, flags) | old.flags;
            }
            t.insert(edge(a, b, true));
            0
        })
        .unwrap_or(0)
    } else {
        let t = EdgeTable(LocalWords);
        let (a, b) = (from_id.code(), to_id.code());
        if let Some((e, old)) = t.find(a, b) {
            return t.flag(e, flags) | old.flags;
        }
        t.insert(edge(a, b, false));
        0
    }
}

fn describe(h: &Held) -> String {
    let id = h.id();
    match id {
        Id::Shm { off, .. } => with_view(&id, |view| crate::report::scan::place_of(view, off))
            .flatten()
            .unwrap_or_else(|| format!("the lock at offset {off:#x} of its region")),
        Id::Local(a) => match h.what {
            What::Group => format!("the group lock at {a:#x}"),
            What::Lock => format!("the lock at {a:#x} (process memory)"),
        },
    }
}

/// Before the calling thread waits for the lock at `addr`: reports an inversion with any
/// lock it holds. Returns what it holds, for [`acquired`] to record the edges from: taken
/// now, before the lock's own acquisition takes more (a group's chained locks).
#[inline]
fn before_wait(addr: usize, what: What, site: &'static Location<'static>) -> Option<Snapshot> {
    let held = held_now()?;
    let taking = Held { addr, what, site };
    let taking_id = taking.id();
    for h in held.iter().filter(|h| h.addr != addr) {
        let found = with_edge(&taking_id, &h.id(), |edge, view| {
            (
                site_text(edge.held_site, view),
                site_text(edge.taken_site, view),
                edge.pid as u32,
                edge.tid as u32,
            )
        });
        let Some((earlier_held_at, earlier_taken_at, pid, tid)) = found else {
            continue;
        };
        // This thread's order is recorded too (flagged), so the report shows both sides.
        let seen = record(h, &taking, INVERTED) & INVERTED != 0;
        let inv = Inversion {
            held: describe(h),
            held_at: h.site.to_string(),
            taking: describe(&taking),
            taking_at: site.to_string(),
            earlier_held_at,
            earlier_taken_at,
            earlier_pid: pid,
            earlier_tid: tid,
        };
        FOUND
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(inv.clone());
        match on_inversion() {
            OnInversion::Panic => panic!("{inv}"),
            OnInversion::Log if !seen => eprintln!("lockkit: {inv}"),
            _ => {}
        }
    }
    Some(held)
}

/// The calling thread took the lock at `addr`: by waiting, with `before` what
/// [`before_wait`] saw it hold (edges are recorded from those), or by a try (`None`: a try
/// records no edge).
#[inline]
fn acquired(addr: usize, what: What, site: &'static Location<'static>, before: Option<Snapshot>) {
    let taken = Held { addr, what, site };
    push(taken);
    for h in before
        .iter()
        .flat_map(Snapshot::iter)
        .filter(|h| h.addr != addr)
    {
        record(h, &taken, 0);
    }
}
