//! Death beacons: a wake-up from the kernel when a lock holder's thread ends, so that a
//! waiter asleep on the lock asks at once whether the holder's process is gone, instead of
//! at its next nap's end.
//!
//! A beacon is a robust, process-shared glibc mutex that one thread locks when it first takes
//! an owner id in a region and never unlocks. When the thread ends (its process killed, its
//! own exit, or `exec`), the kernel walks the thread's robust list (glibc's), sets
//! `FUTEX_OWNER_DIED` in the mutex's futex word and wakes one waiter of that word if its
//! `FUTEX_WAITERS` bit is set. A waiter for a lock sleeps on both the lock word and its
//! holder's beacon word at once (`futex_waitv`), with `FUTEX_WAITERS` set on the beacon.
//!
//! A beacon is a hint and nothing more: a waiter woken by one still asks the kernel's proof
//! (`liveness::holder_gone`, an `F_GETLK` on the holder's byte), and a beacon that fires for a
//! thread whose process lives on (the thread exited with a guard leaked) changes nothing but
//! one early question. Whatever goes wrong with a beacon (no table, a full table, another
//! uid's holder, a slot reused, an old kernel without `futex_waitv`), the waiter falls back
//! to its naps, which end with the same question: a beacon can make a hand-over sooner,
//! never make a live holder look dead. That is why the tid written beside it may be compared
//! here (to skip a slot some other thread took since): no decision about a holder rests on it.
//!
//! The beacons live in one file per user in `/dev/shm` (`lockkit-beacons.<uid>`), mapped once
//! per process and never unmapped: glibc's robust list points into it for as long as the
//! thread lives, and an unmapped entry would make glibc fault when it links or unlinks a
//! neighbour. Slots are claimed with `pthread_mutex_trylock` (a slot whose thread ended says
//! `EOWNERDEAD` and is taken over), so the table needs no other bookkeeping.
//!
//! Only with glibc, whose `pthread_mutex_t` begins with its futex word.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::OnceLock;
use std::time::Duration;

/// Slots in a user's table: threads of all of the user's processes that lock in regions at
/// once. More find no slot and wait without a beacon.
const SLOTS: usize = 4096;
/// Slots a thread tries before it goes without (from a place chosen by its tid).
const PROBES: usize = 64;
/// The kernel's bits in a robust futex word.
const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

const UNINIT: u32 = 0;
const INITIALISING: u32 = 1;
const READY: u32 = 2;

#[repr(C)]
struct Slot {
    mutex: libc::pthread_mutex_t,
    state: AtomicU32,
}

/// What a thread writes beside its owner id so that waiters can find its beacon (0: none).
pub(crate) type Code = u32;

/// The beacon word of a holder, as a waiter found it.
pub(crate) enum Watch {
    /// Asleep on `word` while it holds `armed` (`FUTEX_WAITERS` set): the kernel changes it
    /// and wakes a sleeper when the holder's thread ends.
    Armed {
        word: &'static AtomicU32,
        armed: u32,
    },
    /// The holder's thread has ended already: ask at once.
    Fired { word: &'static AtomicU32 },
}

fn table() -> Option<&'static [Slot]> {
    static TABLE: OnceLock<Option<&'static [Slot]>> = OnceLock::new();
    *TABLE.get_or_init(map_table)
}

#[cfg(target_env = "gnu")]
fn map_table() -> Option<&'static [Slot]> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let path = format!("/dev/shm/lockkit-beacons.{uid}\0");
    let bytes = std::ffi::OsStr::new(&path).as_bytes();
    let len = SLOTS * std::mem::size_of::<Slot>();
    // SAFETY: a NUL-terminated path; O_NOFOLLOW so a planted link is refused, O_CLOEXEC so
    // no program this one execs inherits it (it is closed below anyway).
    let fd = unsafe {
        libc::open(
            bytes.as_ptr().cast(),
            libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
            0o600,
        )
    };
    if fd < 0 {
        return None;
    }
    let _close = scopeguard::guard(fd, |fd| {
        // SAFETY: our own descriptor, closed once; the mapping stays.
        unsafe { libc::close(fd) };
    });
    // SAFETY: stat is plain data filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and out pointer.
    if unsafe { libc::fstat(fd, &mut st) } != 0
        || st.st_mode & libc::S_IFMT != libc::S_IFREG
        || st.st_uid != uid
    {
        return None;
    }
    // Reserve every page, so that touching a slot never raises SIGBUS on a full /dev/shm.
    // SAFETY: a valid descriptor; the range is the table's.
    if unsafe { libc::posix_fallocate(fd, 0, len as libc::off_t) } != 0 {
        return None;
    }
    // SAFETY: a fresh shared mapping of the file's first `len` bytes (allocated above);
    // nothing else in this process maps it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: the mapping is `len` bytes, page-aligned, never unmapped (so `'static`), and
    // zero or slots written by this code: a pthread_mutex_t is plain bytes to Rust, and the
    // state is an atomic. Other processes write it concurrently only through atomics and
    // glibc's mutex calls.
    Some(unsafe { std::slice::from_raw_parts(base as *const Slot, SLOTS) })
}

#[cfg(not(target_env = "gnu"))]
fn map_table() -> Option<&'static [Slot]> {
    None
}

/// The futex word at the start of a slot's mutex.
fn word(slot: &'static Slot) -> &'static AtomicU32 {
    // SAFETY: glibc's pthread_mutex_t begins with its int futex word (`__lock`), 4-aligned
    // inside a repr(C) slot; the kernel and glibc change it only atomically.
    unsafe { &*(std::ptr::addr_of!(slot.mutex) as *const AtomicU32) }
}

thread_local! {
    /// This thread's beacon and the fork generation it was claimed in (a fork child's thread
    /// does not hold its parent's).
    static MINE: Cell<Option<(u32, Code)>> = const { Cell::new(None) };
}

/// The calling thread's beacon, claiming one the first time (0 when none could be had).
pub(crate) fn mine(fork_generation: u32) -> Code {
    if let Some((generation, code)) = MINE.with(Cell::get) {
        if generation == fork_generation {
            return code;
        }
    }
    let code = table().map_or(0, claim);
    MINE.with(|m| m.set(Some((fork_generation, code))));
    code
}

fn claim(table: &'static [Slot]) -> Code {
    let start = crate::sys::tid() as usize;
    for k in 0..PROBES {
        let i = (start + k * 97) % SLOTS;
        let slot = &table[i];
        if !ready(slot) {
            continue;
        }
        let m = std::ptr::addr_of!(slot.mutex) as *mut libc::pthread_mutex_t;
        // SAFETY: an initialised robust, process-shared mutex in a mapping that outlives
        // every thread of this process.
        match unsafe { libc::pthread_mutex_trylock(m) } {
            0 => return i as Code + 1,
            libc::EOWNERDEAD => {
                // SAFETY: this thread holds it now (EOWNERDEAD means taken over).
                unsafe { libc::pthread_mutex_consistent(m) };
                return i as Code + 1;
            }
            _ => {}
        }
    }
    0
}

/// Whether the slot's mutex is initialised, initialising it if nobody has.
fn ready(slot: &'static Slot) -> bool {
    match slot
        .state
        .compare_exchange(UNINIT, INITIALISING, Acquire, Acquire)
    {
        Ok(_) => {}
        Err(state) => return state == READY,
    }
    let m = std::ptr::addr_of!(slot.mutex) as *mut libc::pthread_mutex_t;
    // SAFETY: attr is initialised before use and destroyed after; this thread alone
    // initialises the slot (it won the state word), and nobody uses it before READY.
    let ok = unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
        let r = libc::pthread_mutex_init(m, &attr);
        libc::pthread_mutexattr_destroy(&mut attr);
        r == 0
    };
    if ok {
        slot.state.store(READY, Release);
    }
    // A slot whose initialiser failed or died stays INITIALISING and is skipped for ever.
    ok
}

/// The beacon of the holder that wrote `code` and `tid`, armed so that its end wakes a
/// sleeper; `None` when there is none to watch.
pub(crate) fn watch(code: Code, tid: u32) -> Option<Watch> {
    let i = (code as usize).checked_sub(1).filter(|&i| i < SLOTS)?;
    let slot = &table()?[i];
    if slot.state.load(Acquire) != READY {
        return None;
    }
    let word = word(slot);
    if tid == 0 {
        return None;
    }
    let mut v = word.load(Acquire);
    loop {
        // The holder took this slot before it wrote its record and keeps it until its thread
        // ends; only then does the kernel mark it (clearing the tid), and only after that can
        // another thread take it. So a mark, or another thread's tid, says the holder's
        // thread has ended.
        if v & FUTEX_OWNER_DIED != 0 || v & FUTEX_TID_MASK != tid & FUTEX_TID_MASK {
            return Some(Watch::Fired { word });
        }
        if v & FUTEX_WAITERS != 0 {
            return Some(Watch::Armed { word, armed: v });
        }
        match word.compare_exchange_weak(v, v | FUTEX_WAITERS, Relaxed, Acquire) {
            Ok(_) => {
                return Some(Watch::Armed {
                    word,
                    armed: v | FUTEX_WAITERS,
                })
            }
            Err(now) => v = now,
        }
    }
}

impl Watch {
    /// Wakes every other sleeper on a fired beacon: the kernel woke one.
    pub(crate) fn spread(&self) {
        let word = match self {
            Watch::Armed { word, .. } | Watch::Fired { word } => word,
        };
        crate::sys::futex_wake(word, i32::MAX);
    }
}

/// Whether `futex_waitv` is missing (a kernel older than 5.16, or a filter): then waiters
/// sleep on the lock word alone.
static NO_WAITV: AtomicU32 = AtomicU32::new(0);

/// How a sleep beside a beacon ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Woken {
    /// Woken on the lock word, a signal, or a word had changed already.
    Retry,
    /// The timeout passed.
    TimedOut,
    /// The beacon changed: the holder's thread has ended.
    Beacon,
}

/// Sleeps while `*lock == expected` and the beacon holds `armed`, at most `timeout`.
pub(crate) fn sleep(
    lock: &AtomicU32,
    expected: u32,
    beacon: &'static AtomicU32,
    armed: u32,
    timeout: Duration,
) -> Woken {
    if NO_WAITV.load(Relaxed) != 0 {
        return plain(lock, expected, beacon, armed, timeout);
    }
    #[repr(C)]
    struct FutexWaitv {
        val: u64,
        uaddr: u64,
        flags: u32,
        reserved: u32,
    }
    const FUTEX2_SIZE_U32: u32 = 0x02;
    let waiters = [
        FutexWaitv {
            val: u64::from(expected),
            uaddr: lock.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        },
        FutexWaitv {
            val: u64::from(armed),
            uaddr: beacon.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        },
    ];
    let deadline = crate::sys::monotonic_ns().saturating_add(timeout.as_nanos() as u64);
    let ts = libc::timespec {
        tv_sec: (deadline / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: two valid futex_waitv entries for live, 4-aligned words (shared: no
    // FUTEX2_PRIVATE), and an absolute CLOCK_MONOTONIC timeout on this stack frame; the
    // kernel only reads them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            waiters.as_ptr(),
            2u32,
            0u32,
            &ts as *const libc::timespec,
            libc::CLOCK_MONOTONIC,
        )
    };
    match r {
        1 => return Woken::Beacon,
        0 => return Woken::Retry,
        _ => {}
    }
    match crate::sys::errno() {
        libc::ETIMEDOUT => Woken::TimedOut,
        libc::EAGAIN | libc::EINTR => {
            if beacon.load(Relaxed) != armed {
                Woken::Beacon
            } else {
                Woken::Retry
            }
        }
        _ => {
            // ENOSYS, EINVAL (no futex2) or a seccomp refusal: sleep on the lock alone from
            // now on; the naps still end with the proof's question.
            NO_WAITV.store(1, Relaxed);
            plain(lock, expected, beacon, armed, timeout)
        }
    }
}

fn plain(
    lock: &AtomicU32,
    expected: u32,
    beacon: &AtomicU32,
    armed: u32,
    timeout: Duration,
) -> Woken {
    match crate::sys::futex_wait(lock, expected, Some(timeout)) {
        crate::sys::Wake::TimedOut if beacon.load(Relaxed) != armed => Woken::Beacon,
        crate::sys::Wake::TimedOut => Woken::TimedOut,
        crate::sys::Wake::Retry => Woken::Retry,
    }
}
