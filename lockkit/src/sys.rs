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

pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

thread_local! {
    /// `pid << 32 | tid` of this thread, 0 until first asked for (and again after `fork`).
    static IDS: Cell<u64> = const { Cell::new(0) };
}

static ATFORK: Once = Once::new();

extern "C" fn reset_ids_in_child() {
    // Runs in the child's only thread, which inherited the forking thread's cache.
    let _ = IDS.try_with(|c| c.set(0));
}

#[cold]
fn fill_ids() -> u64 {
    ATFORK.call_once(|| {
        // SAFETY: registering a handler that only touches this thread's TLS cell; it is
        // async-signal-safe and valid for the life of the process (a plain `extern "C" fn`).
        unsafe {
            libc::pthread_atfork(None, None, Some(reset_ids_in_child));
        }
    });
    // SAFETY: getpid and gettid take no arguments and cannot fail.
    let (pid, tid) = unsafe { (libc::getpid() as u32, libc::gettid() as u32) };
    let ids = (u64::from(pid) << 32) | u64::from(tid);
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

/// The calling thread's kernel thread id (unique across processes of one pid namespace).
#[inline]
pub(crate) fn tid() -> u32 {
    ids() as u32
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
        let (p, t) = unsafe { (libc::getpid() as u32, libc::gettid() as u32) };
        assert_eq!((ids() >> 32) as u32, p);
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
