//! Helpers for tests that run real processes.
//!
//! The test harness runs tests on several threads. A forked child inherits only the forking
//! thread, so it must not touch locks that another test thread might hold at fork time (the
//! stdout lock, for one): children here only do their work and `_exit`, and the tests of one
//! binary that fork take `SERIAL` so that their children never overlap.

#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

pub static SERIAL: Mutex<()> = Mutex::new(());

/// Takes `SERIAL`, ignoring poisoning from a test that failed.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A forked child process, waited for by `join`.
pub struct Child(libc::pid_t);

/// Forks a child that runs `work` and exits with its code (101 if it panicked).
pub fn fork(work: impl FnOnce() -> i32) -> Child {
    // SAFETY: the child runs only `work` and then `_exit`s, without returning into the
    // harness, unwinding across the fork, or running atexit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = catch_unwind(AssertUnwindSafe(work)).unwrap_or(101);
        // SAFETY: _exit ends the child at once; nothing of the parent's is released twice.
        unsafe { libc::_exit(code) };
    }
    Child(pid)
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.0 as u32
    }

    /// Waits for the child and returns its exit code (or 128 + signal).
    pub fn join(self) -> i32 {
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child with a valid status pointer.
            let r = unsafe { libc::waitpid(self.0, &mut status, 0) };
            if r == self.0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EINTR), "waitpid: {e}");
        }
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        }
    }
}

/// Forks `n` children running `work(i)` and asserts that each exits with 0.
pub fn run_children(n: usize, work: impl Fn(usize) -> i32) {
    let children: Vec<Child> = (0..n).map(|i| fork(|| work(i))).collect();
    for (i, c) in children.into_iter().enumerate() {
        assert_eq!(c.join(), 0, "child {i} failed");
    }
}

/// A region name no other test or run uses.
pub fn unique_name(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "/lockkit-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The file behind a POSIX shm name on Linux.
pub fn shm_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new("/dev/shm").join(name.trim_start_matches('/'))
}

/// Waits until `step` reaches `at_least`: how a test and its child processes take turns.
///
/// # Panics
/// After 20 seconds, naming the stall, rather than hanging the test run.
pub fn wait_for(step: &std::sync::atomic::AtomicU32, at_least: u32) {
    let t0 = std::time::Instant::now();
    while step.load(std::sync::atomic::Ordering::Acquire) < at_least {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "the other process stalled"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A lock and a step counter that a test and one child process use to take turns.
pub type Handshake<R = lockkit::raw::Futex> = (lockkit::GenLock<R>, std::sync::atomic::AtomicU32);

/// Forks a child that takes `hs`'s lock, sets the step to 1, holds the lock until the step
/// reaches 2, then releases it and sets the step to 3.
pub fn holder<R: lockkit::raw::RawLock>(hs: &Handshake<R>) -> Child {
    use std::sync::atomic::Ordering::Release;
    fork(|| {
        let g = hs.0.lock();
        hs.1.store(1, Release);
        wait_for(&hs.1, 2);
        drop(g);
        hs.1.store(3, Release);
        0
    })
}
