//! The few system calls the locks need: futex wait/wake, clocks, and the caller's (pid, tid)
//! for diagnostics. Owner ids and the proof of a holder's death are in `crate::liveness`.
//!
//! Invariants kept here:
//! - `futex_wait`/`futex_wake` are only given pointers derived from a live `&AtomicU32`, so the
//!   kernel reads a valid, aligned word. They use the shared (not `FUTEX_PRIVATE_FLAG`) form,
//!   because the word may live in memory mapped by several processes.
//! - The tid cache is per thread and is reset in a `fork` child by the `pthread_atfork`
//!   handler that `crate::liveness` registers.

use std::cell::Cell;
use std::sync::atomic::AtomicU32;
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
    /// This thread's kernel id, 0 until first asked for (and again after `fork`).
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// Forgets the calling thread's cached tid (in a fork child, whose thread has a new one).
pub(crate) fn forget_tid() {
    let _ = TID.try_with(|c| c.set(0));
}

/// The calling thread's kernel thread id (unique across processes of one pid namespace;
/// for diagnostics only).
#[inline]
pub(crate) fn tid() -> u32 {
    let t = TID.with(Cell::get);
    if t != 0 {
        return t;
    }
    // SAFETY: gettid takes no arguments and cannot fail.
    let t = unsafe { libc::gettid() } as u32;
    TID.with(|c| c.set(t));
    t
}

/// The calling process's id (a system call: glibc no longer caches it, so a fork child never
/// sees its parent's).
#[inline]
pub(crate) fn pid() -> u32 {
    std::process::id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids_match_the_kernel() {
        // SAFETY: see tid.
        let t = unsafe { libc::gettid() as u32 };
        assert_eq!(tid(), t);
        let other = std::thread::spawn(tid).join().unwrap();
        assert_ne!(other, t);
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
