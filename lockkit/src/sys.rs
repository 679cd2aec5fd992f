//! The few system calls the locks need: futex wait/wake and the caller's (pid, tid).
//!
//! Invariants kept here:
//! - `futex_wait`/`futex_wake` are only given pointers derived from a live `&AtomicU32`, so the
//!   kernel reads a valid, aligned word. They use the shared (not `FUTEX_PRIVATE_FLAG`) form,
//!   because the word may live in memory mapped by several processes.
//! - The (pid, tid) cache is per thread and is reset in a `fork` child by a `pthread_atfork`
//!   handler, so a child never names itself with its parent's ids.

use std::cell::Cell;
use std::sync::atomic::AtomicU32;
use std::sync::Once;
use std::time::Duration;

/// How a futex wait ended. Every outcome sends the caller back to re-read the lock word; the
/// distinction only matters for deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Woken, interrupted by a signal (`EINTR`), or the word had already changed (`EAGAIN`).
    Retry,
    /// The timeout passed.
    TimedOut,
}

/// Sleeps while `*word == expected`, at most `timeout` (forever when `None`).
///
/// # Panics
/// If the kernel refuses the call for any reason other than a wake-up, a signal, a changed
/// word or a timeout (`ENOSYS` or `EPERM` under a seccomp filter, say). Retrying would be a
/// busy loop that looks like a hang; the panic names the error instead.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, 4-byte aligned atomic for the duration of the call; `ts_ptr` is
    // null or points at a timespec on this stack frame. FUTEX_WAIT only reads both.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r == 0 {
        return Wake::Retry;
    }
    match errno() {
        libc::EAGAIN | libc::EINTR => Wake::Retry,
        libc::ETIMEDOUT => Wake::TimedOut,
        e => futex_failed("FUTEX_WAIT", e),
    }
}

/// Wakes at most `n` threads (in any process) sleeping on `word`; returns how many it woke.
///
/// # Panics
/// If the kernel refuses the call (see [`futex_wait`]).
pub(crate) fn futex_wake(word: &AtomicU32, n: i32) -> usize {
    // SAFETY: `word` is a live, aligned atomic; FUTEX_WAKE does not access user memory beyond
    // using the address as a key.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
    if r < 0 {
        futex_failed("FUTEX_WAKE", errno());
    }
    r as usize
}

#[cold]
#[inline(never)]
fn futex_failed(op: &str, e: i32) -> ! {
    let name = match e {
        libc::ENOSYS => "ENOSYS",
        libc::EPERM => "EPERM",
        libc::EFAULT => "EFAULT",
        libc::EINVAL => "EINVAL",
        libc::EACCES => "EACCES",
        _ => "errno",
    };
    panic!(
        "lockkit: the futex system call ({op}) failed with {name} ({}); a lock cannot wait \
         without it (a seccomp sandbox that forbids futex causes this)",
        std::io::Error::from_raw_os_error(e)
    )
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock every process on the machine shares.
pub(crate) fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// `CLOCK_MONOTONIC_COARSE` now, in nanoseconds: the same clock at the kernel tick's
/// resolution (1 to 10 ms), read in a few nanoseconds. For lock hold times (`lock-debug`),
/// written in the lock path by one process and read by another.
pub(crate) fn coarse_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out pointer.
    unsafe { libc::clock_gettime(clock, &mut now) };
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

thread_local! {
    /// `owner_id << 32 | tid` of this thread, 0 until first asked for (and again after
    /// `fork`).
    static IDS: Cell<u64> = const { Cell::new(0) };
}

/// Bits of an owner id that hold the thread id: Linux caps thread ids below 2^22
/// (`pid_max` is at most 4,194,304).
pub(crate) const OWNER_TID_BITS: u32 = 22;
const OWNER_TID_MASK: u32 = (1 << OWNER_TID_BITS) - 1;
/// An owner id: the tid, and above it 8 bits derived from the thread's start time.
pub(crate) const OWNER_MASK: u32 = (1 << 30) - 1;

/// 8 bits of a thread's start time (clock ticks since boot), spread by a multiplicative
/// hash, in `1..=255`. Two threads that share a tid (one dead, one that reused the id)
/// almost surely started at different ticks, so they differ here with probability 254/255.
/// Tag 0 means "unknown" (no `/proc` when the thread asked): such an owner is never judged
/// by its start time.
fn start_tag(start_ticks: u64) -> u32 {
    ((start_ticks.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 255) as u32 + 1
}

/// A thread's state letter and start time, from `/proc/<tid>/stat` (`thread-self` for the
/// caller); `None` if there is no such thread.
fn thread_stat(tid: Option<u32>) -> Option<(u8, u64)> {
    let path = match tid {
        Some(t) => format!("/proc/{t}/stat"),
        None => "/proc/thread-self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name is parenthesised and may hold anything, so parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.bytes().next()?;
    // Field 22 of the file, starttime; `rest` starts at field 3.
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start))
}

/// Whether the thread that wrote `owner` (an [`owner_id`]) into a lock word still exists.
/// False when no thread has its tid, when that thread is a zombie (its process exited and
/// was not yet reaped), or when the thread with that tid started at another time (the
/// owner died and its tid was reused).
///
/// When `/proc` cannot be read at all (not mounted in a sandbox), every owner counts as
/// alive: without evidence, a lock is never taken from its holder.
pub(crate) fn owner_alive(owner: u32) -> bool {
    let tid = owner & OWNER_TID_MASK;
    let tag = owner >> OWNER_TID_BITS;
    match thread_stat(Some(tid)) {
        None => thread_stat(None).is_none(),
        Some((b'Z' | b'X' | b'x', _)) => false,
        Some((_, start)) => tag == 0 || start_tag(start) == tag,
    }
}

/// The thread id inside an owner id.
pub(crate) fn owner_tid(owner: u32) -> u32 {
    owner & OWNER_TID_MASK
}

static ATFORK: Once = Once::new();

/// Bumped in every `fork` child: guards taken before the fork carry the old value, so the
/// child's copies of them know they hold nothing (see `crate::gen_lock`).
static FORK_GENERATION: AtomicU32 = AtomicU32::new(0);

extern "C" fn reset_ids_in_child() {
    // Runs in the child's only thread, which inherited the forking thread's cache.
    let _ = IDS.try_with(|c| c.set(0));
    FORK_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::__private::regions::after_fork_in_child();
}

/// How many `fork`s separate this process from the first lockkit user in its line: a guard
/// whose generation differs was copied into this process by `fork` and holds nothing here.
///
/// The counting starts when the atfork handler is registered, which the first lock
/// acquisition of the process does (every lock asks for its thread's ids before it hands out
/// a guard); until then no guard exists that a fork could copy.
#[inline]
pub(crate) fn fork_generation() -> u32 {
    FORK_GENERATION.load(std::sync::atomic::Ordering::Relaxed)
}

/// Makes sure the fork handler is registered (the first lock, or the first mapping, does).
#[cold]
pub(crate) fn register_atfork() {
    ATFORK.call_once(|| {
        // SAFETY: registering a handler that only touches this thread's TLS cell and an
        // atomic; it is async-signal-safe and valid for the life of the process (a plain
        // `extern "C" fn`).
        unsafe {
            libc::pthread_atfork(None, None, Some(reset_ids_in_child));
        }
    });
}

#[cold]
fn fill_ids() -> u64 {
    register_atfork();
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() } as u32;
    // /proc is how lockkit tells a live owner from a dead one; without it (an unusual
    // sandbox), tag 0 still gives a working lock, only without reuse detection.
    let tag = thread_stat(None).map_or(0, |(_, start)| start_tag(start));
    let owner = (tid & OWNER_TID_MASK) | (tag << OWNER_TID_BITS);
    let ids = (u64::from(owner) << 32) | u64::from(tid);
    IDS.with(|c| c.set(ids));
    ids
}

#[inline]
fn ids() -> u64 {
    let ids = IDS.with(Cell::get);
    if ids != 0 {
        ids
    } else {
        fill_ids()
    }
}

/// Forgets the cached ids of the calling thread, so the next lock asks the kernel again.
///
/// `fork` (glibc's, and so `libc::fork` and `std::process::Command`) resets the cache in the
/// child by itself. A child made by a raw `clone(2)` system call or by glibc's `_Fork` does
/// not run fork handlers: until it calls this, it would take locks under its parent's thread
/// id (and a recursive lock would count it as its parent).
pub fn refresh_thread_ids() {
    let _ = IDS.try_with(|c| c.set(0));
}

/// Whether the cached thread id is still the kernel's, refreshing it if not. A system call:
/// for the rare paths where believing a stale id would be wrong (a lock that names this
/// thread as its holder).
pub(crate) fn tid_confirmed(cached: u32) -> bool {
    // SAFETY: gettid takes no arguments and cannot fail.
    let real = unsafe { libc::gettid() } as u32;
    if real != cached {
        refresh_thread_ids();
    }
    real == cached
}

/// The calling thread's owner id, what the futex, spin and reader-writer locks write into
/// their words: its tid, and 8 bits of its start time (see [`owner_alive`]).
#[inline]
pub(crate) fn owner_id() -> u32 {
    (ids() >> 32) as u32
}

/// Whether the cached owner id is still the calling thread's (see [`tid_confirmed`]).
pub(crate) fn owner_id_confirmed(cached: u32) -> bool {
    tid_confirmed(cached & OWNER_TID_MASK)
}

/// The calling thread's kernel thread id (unique across processes of one pid namespace).
#[inline]
pub(crate) fn tid() -> u32 {
    ids() as u32
}

/// The calling process's id (a system call: glibc no longer caches it, so a fork child never
/// sees its parent's).
#[inline]
pub(crate) fn pid() -> u32 {
    std::process::id()
}

/// This process's pid namespace: the inode of `/proc/self/ns/pid` (0 if unknown). Not
/// cached: a fork child in a new namespace would inherit its parent's answer.
pub(crate) fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// Whether a waiter may judge the owner of the lock at `addr` by its thread id. Not in a
/// region that processes of several pid namespaces share: a tid written by one of them
/// names another thread, or none, in the others' `/proc`, and a live owner could be judged
/// dead. Locks outside every registered region (process memory) are always judged.
pub(crate) fn may_judge_owner(addr: usize) -> bool {
    match crate::__private::regions::region_base(addr) {
        None => true,
        // SAFETY: `base` starts a live region mapping: the lock at `addr`, inside it, is in
        // use by the caller, so the mapping cannot be gone.
        Some(base) => !unsafe { crate::shm::mixed_pid_ns_at(base) },
    }
}

/// Whether process `pid` exists (a zombie counts as gone; a pid that was reused counts as
/// existing: callers only wait longer).
pub(crate) fn process_exists(pid: u32) -> bool {
    match thread_stat(Some(pid)) {
        Some((state, _)) => !matches!(state, b'Z' | b'X' | b'x'),
        None => thread_stat(None).is_none(), // no /proc: no evidence of death
    }
}

/// The process (thread group) that thread `tid` belongs to, from `/proc/<tid>/status`;
/// `None` if no such thread exists (in this pid namespace).
pub(crate) fn pid_of_tid(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_kernel() {
        // SAFETY: see fill_ids.
        let t = unsafe { libc::gettid() as u32 };
        assert_eq!(owner_tid(owner_id()), t);
        assert_eq!(tid(), t);
        let other = std::thread::spawn(tid).join().unwrap();
        assert_ne!(other, t);
    }

    #[test]
    fn a_threads_process_is_found_from_its_tid() {
        let me = std::process::id();
        let other = std::thread::spawn(tid).join().unwrap();
        assert_eq!(pid_of_tid(tid()), Some(me));
        assert_eq!(pid_of_tid(other), None, "that thread has exited");
    }

    #[test]
    fn a_live_thread_is_alive_and_an_exited_one_or_a_reused_id_is_not() {
        assert!(owner_alive(owner_id()));
        let gone = std::thread::spawn(owner_id).join().unwrap();
        assert!(!owner_alive(gone), "that thread has exited");
        // This thread's tid with another start time: what a dead owner whose tid this
        // thread reused looks like.
        let me = owner_id();
        let tag = me >> OWNER_TID_BITS;
        let other = if tag == 255 { 1 } else { tag + 1 };
        let impostor = owner_tid(me) | (other << OWNER_TID_BITS);
        assert!(!owner_alive(impostor));
    }

    #[test]
    fn futex_wait_times_out_when_nobody_wakes() {
        let w = AtomicU32::new(7);
        let r = futex_wait(&w, 7, Some(Duration::from_millis(20)));
        assert_eq!(r, Wake::TimedOut);
    }

    #[test]
    fn futex_wait_returns_at_once_when_the_word_differs() {
        let w = AtomicU32::new(7);
        assert_eq!(futex_wait(&w, 8, Some(Duration::from_secs(5))), Wake::Retry);
    }
}
