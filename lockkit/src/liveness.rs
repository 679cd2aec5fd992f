//! Who holds a lock, and the kernel's word on whether the holder's process is gone.
//!
//! # Owner ids
//! Every lock word records its holder as a 29-bit *owner id*, written by the same atomic
//! operation that takes the lock. An id names one thread of one process *incarnation* (an
//! `exec` or a `fork` starts a new one), and is never handed out twice:
//! - in a lockkit region, ids come from a counter in the region's header, 64 at a time (a
//!   *block*) for each process that takes locks there, and each thread takes one from its
//!   process's block the first time it locks in that region. A region hands out 2^29 ids in
//!   its life; a process that cannot get one is told so by a panic, never by a wrong id;
//! - in process memory (a lock in a `Box`, a static, a group lock), ids come from a
//!   per-process counter: only threads of this process can reach such a lock.
//!
//! An id is never reused, so a thread can never be taken for a dead holder (or for a
//! holder's thread that exited with its guard leaked): relock detection and recursive locks
//! compare ids, and ids do not depend on thread ids, pid namespaces or start times.
//!
//! # The proof of death
//! Before a process writes an id of a region's block into any lock word, it takes an
//! open-file-description (OFD) write lock on the bytes `LIVE_BASE + id` of the region's file
//! through a description that only it holds (LMDB's reader table does the same with a byte
//! per reader). The kernel drops that lock when the last descriptor of the description
//! closes: when the process dies (however it is killed) or calls `exec` (the descriptor is
//! `O_CLOEXEC`), and at no other time. A waiter that finds the same holder in a word for a
//! while asks the kernel, with a classic `F_GETLK` on the holder's byte, whether any lock is
//! held there; none means the holder's process is gone, and the waiter may take the lock over
//! (with a compare-exchange that expects exactly the dead holder's word). `F_GETLK` reports the
//! caller's own OFD locks as conflicts (they belong to a description, not to the process), so
//! a probe by the holder's own process sees it alive.
//!
//! Nothing here reads `/proc` to judge, compares tids, asks `kill(pid, 0)` or reads start
//! times: pid and time namespaces, `hidepid`, descriptor limits (the probe opens nothing),
//! full tables, pid reuse and checkpoint/restore (which restores OFD locks) cannot make a live
//! holder look dead. What can make a dead one look alive: a copy of its description that
//! survives it. lockkit's descriptors are `O_CLOEXEC`, and a `fork` child closes its copy in
//! the `pthread_atfork` child handler and opens its own (through `/proc/self/fd`, the one way
//! to reopen a memfd; a child that cannot is refused region locks with a panic that says so).
//! A raw `clone(2)` runs no fork handler and must call [`crate::refresh_thread_ids`].
//!
//! Why not the kernel's robust-futex list: it is per *thread* (a thread that exits with a
//! leaked guard would hand the lock on while its process lives, and a second `&mut` would
//! exist), glibc owns each thread's list head, and an entry must be linked on every
//! acquisition, which the uncontended path cannot pay for.
//!
//! # Invariants kept here
//! - A region id is written into a lock word only after this process's OFD lock covers its
//!   byte, and that description is closed only when the last mapping of the file goes (no
//!   lock of the region is reachable then) or in a fork child (which takes new ids).
//! - The per-thread cache maps an address range to an id only while the global epoch is
//!   unchanged; every mapping registered or removed bumps it.
//! - The descriptors are used only while the file's entry is in use by a mapping that the
//!   caller's lock lies in.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Once;

/// Bits of a lock word that hold an owner id (29, so that a reader-writer lock's state word
/// can hold a writer's id beside its flags).
pub(crate) const ID_BITS: u32 = 29;
/// The owner id in a lock word.
pub(crate) const ID_MASK: u32 = (1 << ID_BITS) - 1;
/// Ids a process takes from a region at once: one `fcntl` covers them, and the kernel keeps
/// one lock record for them.
const BLOCK: u32 = 64;
/// Where owner id 0's byte would be in a region's file: far past any region's data. Record
/// locks may lie past the end of a file and do not touch its contents.
const LIVE_BASE: i64 = 1 << 48;
/// Diagnostic records per region (pid and tid of an id's thread, at a hash of the id: the
/// first ids of processes' blocks are 64 apart, and `id % RECORDS` put every other process's
/// first thread in one record).
pub(crate) const RECORDS: usize = 256;

/// The record of id `id`.
fn record_index(id: u32) -> usize {
    (id.wrapping_mul(0x9E37_79B9) >> 24) as usize % RECORDS
}
/// Regions (distinct files) one process can have mapped at once.
pub(crate) const FILES: usize = 64;

/// The part of a region's header that hands out owner ids and remembers, for diagnostics,
/// which process and thread took recent ones.
#[repr(C)]
pub(crate) struct Area {
    /// The start of the next block to hand out (0 is never an id).
    next: AtomicU32,
    _reserved: AtomicU32,
    records: [Record; RECORDS],
}

#[repr(C)]
struct Record {
    id: AtomicU32,
    pid: AtomicU32,
    tid: AtomicU32,
    _reserved: AtomicU32,
}

/// This process's view of one mapped region file.
struct FileEntry {
    dev: AtomicU64,
    ino: AtomicU64,
    /// Mappings of the file registered in this process; 0: the entry is free.
    maps: AtomicU32,
    /// The description only this process holds, with its id bytes locked; -1 if none (a
    /// fork child that could not open its own).
    fd: AtomicI32,
    /// Whether `fd` is open for writing (a read-only inspector's is not: it takes no ids).
    writable: AtomicBool,
    /// Changes whenever the entry is taken anew or reset by `fork`: a thread's cached id for
    /// this entry is valid only with the serial it was taken under.
    serial: AtomicU64,
    /// The unused part of this process's current block: `[next, end)`.
    next: AtomicU32,
    end: AtomicU32,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_ENTRY: FileEntry = FileEntry {
    dev: AtomicU64::new(0),
    ino: AtomicU64::new(0),
    maps: AtomicU32::new(0),
    fd: AtomicI32::new(-1),
    writable: AtomicBool::new(false),
    serial: AtomicU64::new(0),
    next: AtomicU32::new(0),
    end: AtomicU32::new(0),
};

static ENTRIES: [FileEntry; FILES] = [FREE_ENTRY; FILES];
/// Set while a thread changes `ENTRIES` or takes an id. A flag rather than a `Mutex`, so that
/// a fork child can release it.
static WRITING: AtomicBool = AtomicBool::new(false);
static SERIAL: AtomicU64 = AtomicU64::new(1);
/// Bumped whenever a mapping is registered or removed: per-thread caches check it.
static EPOCH: AtomicU64 = AtomicU64::new(1);
/// The next owner id for locks in process memory.
static PRIVATE_NEXT: AtomicU32 = AtomicU32::new(1);

/// Holds `WRITING` for its lifetime, with the calling thread's signals blocked: a handler
/// that forks (the prepare handler takes `WRITING`) or takes a first lock in a region would
/// otherwise wait for a flag its own thread holds.
struct Writing {
    mask: libc::sigset_t,
}

impl Writing {
    fn start() -> Writing {
        let mask = block_signals();
        while WRITING
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            // Held across an `open` or an `fcntl` at most: rare and short.
            std::thread::yield_now();
        }
        Writing { mask }
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        WRITING.store(false, Release);
        restore_signals(&self.mask);
    }
}

/// Blocks every signal in the calling thread; the mask before.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, filled by sigfillset / pthread_sigmask before use.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    }
}

fn restore_signals(mask: &libc::sigset_t) {
    // SAFETY: a mask returned by `block_signals` on this thread.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
}

thread_local! {
    /// The forking thread's signal mask before the prepare handler blocked them.
    static FORK_MASK: Cell<Option<libc::sigset_t>> = const { Cell::new(None) };
}

#[derive(Clone, Copy)]
struct Cached {
    base: usize,
    len: usize,
    epoch: u64,
    id: u32,
}

const NO_CACHE: Cached = Cached {
    base: 0,
    len: 0,
    epoch: 0,
    id: 0,
};

thread_local! {
    /// The id for the last address range this thread locked in.
    static CACHE: Cell<Cached> = const { Cell::new(NO_CACHE) };
    /// This thread's id for locks in process memory (0: none yet).
    static PRIVATE: Cell<u32> = const { Cell::new(0) };
    /// This thread's id in each file entry, with the entry's serial it was taken under.
    static IN_FILE: [Cell<(u64, u32)>; FILES] = const { [const { Cell::new((0, 0)) }; FILES] };
}

// ----- fork: the child is a new owner -----

static ATFORK: Once = Once::new();

/// Bumped in every `fork` child: guards taken before the fork carry the old value, so the
/// child's copies of them know they hold nothing (see `crate::gen_lock`).
static FORK_GENERATION: AtomicU32 = AtomicU32::new(0);

/// The process whose ids the owner-id tables hold (0 until the atfork handler is registered).
static IDS_PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn prepare_fork() {
    before_fork();
}

extern "C" fn parent_after_fork() {
    after_fork_in_parent();
}

extern "C" fn reset_ids_in_child() {
    // Runs in the child's only thread, which inherited the forking thread's cache.
    crate::sys::forget_tid();
    FORK_GENERATION.fetch_add(1, Relaxed);
    // SAFETY: getpid takes no arguments and cannot fail.
    IDS_PID.store(unsafe { libc::getpid() } as u32, Relaxed);
    crate::regions::after_fork_in_child();
    after_fork_in_child();
}

/// How many `fork`s separate this process from the first lockkit user in its line: a guard
/// whose generation differs was copied into this process by `fork` and holds nothing here.
///
/// The counting starts when the atfork handler is registered, which the first lock
/// acquisition of the process does (every lock asks for its thread's owner id before it hands
/// out a guard); until then no guard exists that a fork could copy.
#[inline]
pub(crate) fn fork_generation() -> u32 {
    FORK_GENERATION.load(Relaxed)
}

/// Makes sure the fork handler is registered (the first lock, or the first mapping, does).
#[cold]
pub(crate) fn register_atfork() {
    ATFORK.call_once(|| {
        IDS_PID.store(std::process::id(), Relaxed);
        // SAFETY: registering handlers that only touch this thread's TLS cells, atomics and
        // file descriptors with async-signal-safe calls; they are valid for the life of the
        // process (plain `extern "C" fn`s). The prepare handler takes a flag that is held
        // only for short, non-forking sections.
        unsafe {
            libc::pthread_atfork(
                Some(prepare_fork),
                Some(parent_after_fork),
                Some(reset_ids_in_child),
            );
        }
    });
}

/// Gives a process made without fork handlers its own owner ids.
///
/// `fork` (glibc's, and so `libc::fork` and `std::process::Command`) gives the child new
/// owner ids by itself. A child made by a raw `clone(2)` system call or by glibc's `_Fork`
/// runs no fork handlers: until it calls this, it would take locks under its parent's owner
/// ids, and its parent's death would go unseen while it lives. Called in such a child (a
/// process other than the one the ids were taken by), this does what the fork handler does.
/// Called anywhere else it changes nothing but a cached thread id: a thread's owner ids never
/// go stale in its own process, and a thread that holds a lock stays its holder.
pub fn refresh_thread_ids() {
    crate::sys::forget_tid();
    let mine = IDS_PID.load(Relaxed);
    if mine != 0 && mine != std::process::id() {
        reset_ids_in_child();
    }
}

/// The calling thread's owner id for a lock at `addr`: what it writes into the lock word when
/// it takes the lock.
///
/// # Panics
/// If the lock lies in a region where this process cannot take ids (a fork child without
/// `/proc`, a read-only inspector mapping, a region that handed out all its ids).
#[inline]
pub(crate) fn id_at(addr: usize) -> u32 {
    let c = CACHE.with(Cell::get);
    if addr.wrapping_sub(c.base) < c.len && c.epoch == EPOCH.load(Relaxed) {
        c.id
    } else {
        id_at_slow(addr)
    }
}

#[cold]
#[inline(never)]
fn id_at_slow(addr: usize) -> u32 {
    register_atfork();
    let epoch = EPOCH.load(Acquire);
    let (base, len, id) = match crate::regions::locate(addr) {
        None => (addr & !4095, 4096, private_id()),
        Some(m) => (m.base, m.len, region_id(m.file, m.area)),
    };
    CACHE.with(|c| {
        c.set(Cached {
            base,
            len,
            epoch,
            id,
        })
    });
    id
}

/// The calling thread's id for locks in process memory (group locks use it too).
pub(crate) fn private_id() -> u32 {
    let id = PRIVATE.with(Cell::get);
    if id != 0 {
        return id;
    }
    let id = PRIVATE_NEXT.fetch_add(1, Relaxed);
    if id > ID_MASK {
        PRIVATE_NEXT.store(ID_MASK + 1, Relaxed);
        panic!(
            "lockkit: this process has handed out all 2^29 owner ids for locks in process \
             memory (one per thread that locks); ids are never reused, so that no thread is \
             taken for another"
        );
    }
    PRIVATE.with(|c| c.set(id));
    id
}

/// The calling thread's id in file entry `file`, taking one (and a block, if the process's is
/// used up) the first time.
fn region_id(file: usize, area: usize) -> u32 {
    let entry = &ENTRIES[file];
    let serial = entry.serial.load(Acquire);
    let (s, id) = IN_FILE.with(|ids| ids[file].get());
    if s == serial && id != 0 {
        return id;
    }
    let _w = Writing::start();
    // SAFETY: `area` is the id area of a mapping that holds the caller's lock (the registry
    // found it there), so the mapping, and the area in its header, are live.
    let area = unsafe { &*(area as *const Area) };
    let serial = entry.serial.load(Relaxed);
    let id = take_id(entry, area);
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() } as u32;
    let r = &area.records[record_index(id)];
    r.id.store(0, Relaxed);
    r.pid.store(std::process::id(), Relaxed);
    r.tid.store(tid, Relaxed);
    r.id.store(id, Release);
    IN_FILE.with(|ids| ids[file].set((serial, id)));
    id
}

/// Takes the next id of this process's block in `entry`, locking a new block first if needed.
/// Called with `WRITING` held.
fn take_id(entry: &FileEntry, area: &Area) -> u32 {
    let fd = entry.fd.load(Relaxed);
    if fd < 0 || !entry.writable.load(Relaxed) {
        no_ids(
            "this process has no description of the region's file of its own to hold its \
             owner ids with (a fork child that could not reopen it through /proc/self/fd, or a \
             read-only mapping)",
        );
    }
    let (next, end) = (entry.next.load(Relaxed), entry.end.load(Relaxed));
    if next < end {
        entry.next.store(next + 1, Relaxed);
        return next;
    }
    loop {
        let raw = area.next.fetch_add(BLOCK, Relaxed);
        if raw >= ID_MASK - BLOCK {
            area.next.store(ID_MASK, Relaxed);
            no_ids("the region has handed out all 2^29 owner ids; create a new region");
        }
        // The block is `[raw, raw + BLOCK)`; 0 is never an id.
        let (start, end) = (raw.max(1), raw + BLOCK);
        // Anybody's lock on these bytes, this process's own included (the classic query
        // reports them): a counter set back by damage must not hand out ids a live process,
        // or this one, already holds. Taken blocks are skipped.
        if bytes_locked(fd, start, end - start) != Some(false) {
            continue;
        }
        match lock_bytes(fd, start, end - start) {
            Ok(()) => {
                entry.next.store(start + 1, Relaxed);
                entry.end.store(end, Relaxed);
                return start;
            }
            // Taken meanwhile by another description: somebody's ids; take the next block.
            Err(libc::EAGAIN | libc::EACCES) => continue,
            Err(e) => no_ids(&format!(
                "locking its owner ids' bytes failed: {}",
                std::io::Error::from_raw_os_error(e)
            )),
        }
    }
}

#[cold]
#[track_caller]
fn no_ids(why: &str) -> ! {
    panic!("lockkit: cannot take a lock in this region: {why}")
}

fn flock_for(kind: libc::c_int, start: u32, n: u32) -> libc::flock {
    // SAFETY: flock is plain data; all-zero is a valid value that is then filled in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = LIVE_BASE + i64::from(start);
    fl.l_len = i64::from(n);
    fl
}

/// Takes an OFD write lock on the bytes of ids `start..start + n`; the errno on failure.
fn lock_bytes(fd: i32, start: u32, n: u32) -> Result<(), i32> {
    let mut fl = flock_for(libc::F_WRLCK, start, n);
    loop {
        // SAFETY: a valid fd of this process and a valid flock; F_OFD_SETLK does not block.
        let r = unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &mut fl) };
        if r == 0 {
            return Ok(());
        }
        match crate::sys::errno() {
            libc::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Whether the kernel says the process that took owner id `id` is gone: no lock is held on
/// its byte. `None` when the kernel could not be asked (then nobody may act as if it were
/// gone).
fn id_released(fd: i32, id: u32) -> Option<bool> {
    bytes_locked(fd, id, 1).map(|locked| !locked)
}

/// Whether any lock, by any process or description (the caller's own included), covers the
/// bytes of ids `start..start + n`; `None` when the kernel could not be asked.
fn bytes_locked(fd: i32, start: u32, n: u32) -> Option<bool> {
    let mut fl = flock_for(libc::F_WRLCK, start, n);
    loop {
        // SAFETY: a valid fd and flock; F_GETLK only reads the lock table and writes `fl`.
        // The classic (process-associated) query reports OFD locks as conflicts even when
        // this process's own description holds them.
        let r = unsafe { libc::fcntl(fd, libc::F_GETLK, &mut fl) };
        if r == 0 {
            return Some(fl.l_type != libc::F_UNLCK as libc::c_short);
        }
        if crate::sys::errno() != libc::EINTR {
            return None;
        }
    }
}

/// Whether the holder `id` of the lock at `addr` is proven gone: its process died or called
/// `exec`. False for locks in process memory (their holder is a thread of this process, which
/// is alive; a lock `fork` copied while held stays held, as `std`'s do), for ids this
/// process took, and whenever the kernel cannot be asked.
pub(crate) fn holder_gone(addr: usize, id: u32) -> bool {
    let id = id & ID_MASK;
    if id == 0 {
        return false;
    }
    let Some(m) = crate::regions::locate(addr) else {
        return false;
    };
    // The entry stays in use, and its descriptor open, while the mapping that holds the
    // caller's lock is registered.
    let fd = ENTRIES[m.file].fd.load(Acquire);
    fd >= 0 && id_released(fd, id) == Some(true)
}

/// What diagnostics say about holder `id` of the lock at `addr`: its process and thread as
/// it recorded them (0 when the record was overwritten by a later id), and whether its
/// process is alive.
pub(crate) fn describe(addr: usize, id: u32) -> Owner {
    let id = id & ID_MASK;
    match crate::regions::locate(addr) {
        None => Owner {
            pid: std::process::id(),
            tid: private_tid(id),
            alive: true,
        },
        Some(m) => {
            // SAFETY: as in `region_id`: the area of a live mapping that holds `addr`.
            let area = unsafe { &*(m.area as *const Area) };
            let r = &area.records[record_index(id)];
            let (pid, tid) = (r.pid.load(Relaxed), r.tid.load(Relaxed));
            let known = r.id.load(Acquire) == id;
            Owner {
                pid: if known { pid } else { 0 },
                tid: if known { tid } else { 0 },
                alive: !holder_gone(addr, id),
            }
        }
    }
}

/// The tid of this process's thread with private id `id`, if it is the calling thread (other
/// threads' are not recorded).
fn private_tid(id: u32) -> u32 {
    if PRIVATE.with(Cell::get) == id {
        crate::sys::tid()
    } else {
        0
    }
}

/// Records a mapping of `len` bytes at `base` of a region's `file` (a memfd or a shm
/// object), whose owner-id area ([`Area`]) is at `area`: gives the file an entry here (this
/// process's own description of it) and the mapping a slot in `crate::regions`. Fails when
/// either cannot be had: a lock in an unrecorded mapping could not be judged, nor ordered,
/// so the caller does not map it.
pub(crate) fn register_mapping(
    base: *const u8,
    len: usize,
    file: &std::fs::File,
    area: usize,
    writable: bool,
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    let entry = attach(file, writable)?;
    let recorded = crate::regions::register(crate::regions::NewMapping {
        base,
        len,
        dev: meta.dev(),
        ino: meta.ino(),
        file: entry,
        area,
    });
    if let Err(full) = recorded {
        detach(entry);
        return Err(std::io::Error::other(full.to_string()));
    }
    // After the slot is visible: a thread that cached this address range as process memory
    // before it was must look again.
    mappings_changed();
    Ok(())
}

/// Forgets the mapping at `base` (see [`register_mapping`]); returns once nothing reads it,
/// so the caller may unmap it.
pub(crate) fn unregister_mapping(base: *const u8) {
    if let Some(entry) = crate::regions::unregister(base) {
        mappings_changed();
        detach(entry);
    }
}

/// Invalidates every thread's cached id, after a mapping was added or removed.
fn mappings_changed() {
    EPOCH.fetch_add(1, Release);
}

/// Registers a mapping of `file` for owner ids: finds or makes this process's entry for the
/// file (its own description of it, so that its id bytes are held by this process alone),
/// and returns the entry's index.
fn attach(file: &std::fs::File, writable: bool) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    register_atfork();
    let meta = file.metadata()?;
    // Held across the reopen and the store: the fork handlers take it too, so no fork can
    // copy the new description into a child before the entry knows it (and the child's
    // handler replaces it).
    let _w = Writing::start();
    EPOCH.fetch_add(1, Release);
    let same = |e: &FileEntry| {
        e.maps.load(Relaxed) != 0
            && e.dev.load(Relaxed) == meta.dev()
            && e.ino.load(Relaxed) == meta.ino()
    };
    if let Some(i) = ENTRIES.iter().position(same) {
        let e = &ENTRIES[i];
        if writable && !e.writable.load(Relaxed) {
            // Mapped read-only so far (an inspector): no id was taken through the old
            // description, so it is replaced by a writable one.
            let fd = own_description(file.as_raw_fd(), true, (meta.dev(), meta.ino()))?;
            let old = e.fd.swap(fd, AcqRel);
            if old >= 0 {
                // SAFETY: the entry owned `old`; nothing uses it after the swap (readers of
                // the entry's fd run under a mapping of this file, and probes through either
                // description answer alike).
                unsafe { libc::close(old) };
            }
            e.writable.store(true, Relaxed);
        }
        e.maps.fetch_add(1, Relaxed);
        return Ok(i);
    }
    let Some(i) = ENTRIES.iter().position(|e| e.maps.load(Relaxed) == 0) else {
        return Err(std::io::Error::other(format!(
            "this process has {FILES} regions mapped already"
        )));
    };
    let fd = own_description(file.as_raw_fd(), writable, (meta.dev(), meta.ino()))?;
    let e = &ENTRIES[i];
    e.dev.store(meta.dev(), Relaxed);
    e.ino.store(meta.ino(), Relaxed);
    e.fd.store(fd, Release);
    e.writable.store(writable, Relaxed);
    e.next.store(0, Relaxed);
    e.end.store(0, Relaxed);
    e.serial.store(SERIAL.fetch_add(1, Relaxed), Release);
    e.maps.store(1, Release);
    Ok(i)
}

/// A new open file description of the file open at `fd` (not a duplicate: a copy of the
/// caller's descriptor that a concurrent `fork` put into a child must not share the locks on
/// this process's ids), checked to be the file `id`.
fn own_description(fd: i32, writable: bool, id: (u64, u64)) -> std::io::Result<i32> {
    let own = reopen(fd, writable);
    if own < 0 {
        return Err(std::io::Error::other(format!(
            "cannot open a description of the region's file of this process's own through \
             /proc/self/fd (lockkit needs /proc to hold its owner ids): {}",
            std::io::Error::last_os_error()
        )));
    }
    if !is_file(own, id) {
        // SAFETY: our own fresh descriptor.
        unsafe { libc::close(own) };
        return Err(std::io::Error::other(
            "/proc/self/fd opened another file than the region's (is /proc the real procfs?)",
        ));
    }
    Ok(own)
}

/// Whether `fd` is open on the file with device and inode `id` (async-signal-safe).
fn is_file(fd: i32, id: (u64, u64)) -> bool {
    // SAFETY: stat is plain data; fstat fills it for a valid fd.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out pointer.
    unsafe { libc::fstat(fd, &mut st) == 0 && (st.st_dev, st.st_ino) == (id.0, id.1) }
}

/// Forgets one mapping of entry `i`; closing its description with the last one releases this
/// process's ids there (no lock of the region is reachable any more).
fn detach(i: usize) {
    let _w = Writing::start();
    EPOCH.fetch_add(1, Release);
    let e = &ENTRIES[i];
    if e.maps.fetch_sub(1, Relaxed) == 1 {
        let fd = e.fd.swap(-1, AcqRel);
        e.serial.store(SERIAL.fetch_add(1, Relaxed), Release);
        if fd >= 0 {
            // SAFETY: this entry owned `fd`, and nothing uses it after the swap above (the
            // last mapping is going, so no lock of the file is reachable).
            unsafe { libc::close(fd) };
        }
    }
}

/// In a fork child, from the atfork handler (async-signal-safe calls only): this process is a
/// new owner. Its inherited descriptions hold the parent's ids, so it closes them (or the
/// parent's death would go unseen while it lives) and opens its own; its threads take new
/// ids.
pub(crate) fn after_fork_in_child() {
    // Held by the forking thread since the prepare handler ([`before_fork`]); its signals
    // are unblocked once the inherited descriptions are replaced (at the end).
    WRITING.store(false, Relaxed);
    EPOCH.fetch_add(1, Relaxed);
    let _ = CACHE.try_with(|c| c.set(NO_CACHE));
    let _ = PRIVATE.try_with(|c| c.set(0));
    for e in &ENTRIES {
        e.serial.store(SERIAL.fetch_add(1, Relaxed), Relaxed);
        e.next.store(0, Relaxed);
        e.end.store(0, Relaxed);
        let fd = e.fd.load(Relaxed);
        if e.maps.load(Relaxed) == 0 || fd < 0 {
            continue;
        }
        let own = reopen(fd, e.writable.load(Relaxed));
        if own >= 0 && is_file(own, (e.dev.load(Relaxed), e.ino.load(Relaxed))) {
            // SAFETY: both are this process's fds; dup3 closes the inherited description's
            // descriptor and puts the new one in its place, in one step.
            unsafe {
                libc::dup3(own, fd, libc::O_CLOEXEC);
                libc::close(own);
            }
        } else {
            // SAFETY: `fd` is the inherited copy, `own` (if any) a wrong file's: nothing
            // else in the child uses either.
            unsafe {
                libc::close(fd);
                if own >= 0 {
                    libc::close(own);
                }
            }
            e.fd.store(-1, Relaxed);
        }
    }
    restore_fork_mask();
}

/// In the forking thread, before `fork` (the prepare handler): no entry is half made, and no
/// block half taken, while the child is copied.
pub(crate) fn before_fork() {
    let w = std::mem::ManuallyDrop::new(Writing::start());
    let _ = FORK_MASK.try_with(|m| m.set(Some(w.mask)));
}

/// In the parent, after `fork`: undoes [`before_fork`].
pub(crate) fn after_fork_in_parent() {
    WRITING.store(false, Release);
    restore_fork_mask();
}

fn restore_fork_mask() {
    if let Ok(Some(mask)) = FORK_MASK.try_with(|m| m.take()) {
        restore_signals(&mask);
    }
}

/// A new description of the file open at `fd`, through `/proc/self/fd` (async-signal-safe:
/// the path is built on the stack); -1 if it cannot be opened.
fn reopen(fd: i32, writable: bool) -> i32 {
    let mut path = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0\0";
    let mut digits = [0u8; 10];
    let (mut n, mut k) = (fd as u32, 0);
    loop {
        digits[k] = b'0' + (n % 10) as u8;
        k += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (j, d) in digits[..k].iter().rev().enumerate() {
        path[14 + j] = *d;
    }
    // SAFETY: a NUL-terminated path on the stack (at most 10 digits, then zeros).
    unsafe {
        libc::open(
            path.as_ptr() as *const libc::c_char,
            if writable {
                libc::O_RDWR
            } else {
                libc::O_RDONLY
            } | libc::O_CLOEXEC,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ids_differ_between_threads_and_are_never_zero() {
        let a = private_id();
        let b = std::thread::spawn(private_id).join().unwrap();
        assert_ne!(a, 0);
        assert_ne!(a, b);
        assert_eq!(private_id(), a);
    }

    #[test]
    fn the_first_threads_of_many_processes_keep_records_of_their_own() {
        // Each process's first id starts a block of 64: 1, 64, 128, ...
        let firsts: Vec<usize> = (0..32).map(|b| record_index((b * BLOCK).max(1))).collect();
        let distinct: std::collections::HashSet<_> = firsts.iter().collect();
        assert_eq!(distinct.len(), firsts.len(), "{firsts:?}");
    }

    #[test]
    fn reopen_builds_the_path_of_any_descriptor() {
        let f = std::fs::File::open("/dev/null").unwrap();
        use std::os::fd::AsRawFd;
        let fd = reopen(f.as_raw_fd(), false);
        assert!(fd >= 0);
        // SAFETY: our own fresh fd.
        unsafe { libc::close(fd) };
    }
}

/// The process and thread holding a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The holder's process id, as the holder saw it when it took its owner id (in its own
    /// pid namespace); 0 if it is not known (the record was reused by a later id).
    pub pid: u32,
    /// The holder's kernel thread id (as `gettid` returned it to the holder); 0 if not known.
    pub tid: u32,
    /// Whether the holder's process is alive, by the kernel's word (the lock it holds on its
    /// owner id). `false` means the process died or called `exec` holding the lock; the next
    /// acquirer takes it over. A thread that exited with its guard leaked still counts as
    /// alive while its process lives: the lock stays held.
    pub alive: bool,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} tid {}", self.pid, self.tid)?;
        if !self.alive {
            f.write_str(" (dead)")?;
        }
        Ok(())
    }
}
