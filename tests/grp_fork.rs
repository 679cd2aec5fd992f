//! A group lock across `fork`: the child's copy of a group never runs the handlers the
//! parent registered (they would destroy, a second time, what the parent destroys), while
//! handlers the child registered itself run in the child.
//!
//! Its own test binary with one test: the child must not find a lock (malloc's, stdout's)
//! held by another test thread at fork time.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockkit::grp::{GrpLock, Released};
use lockkit::ShmRegion;

/// Forks a child that runs `work` and `_exit`s with its code (101 if it panicked).
fn fork(work: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child runs only `work` and then `_exit`s, without returning into the
    // harness or unwinding across the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or(101);
        // SAFETY: ends the child at once; nothing of the parent's is released twice.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits at most `limit` for the child; its exit code, or a test failure naming what it saw.
fn join_within(pid: libc::pid_t, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: polling our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            assert!(
                libc::WIFEXITED(status),
                "the child died of signal {}",
                libc::WTERMSIG(status)
            );
            return libc::WEXITSTATUS(status);
        }
        assert!(r == 0, "waitpid: {}", std::io::Error::last_os_error());
        if Instant::now() > deadline {
            // SAFETY: killing our own child, which hangs.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the child did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_forked_childs_copy_runs_only_the_handlers_the_child_registered() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let count = Arc::new(region.alloc_zeroed::<AtomicU64>().unwrap());
    let group = GrpLock::new();
    let c = Arc::clone(&count);
    // Stands for a handler that frees something shared (a shm block, a socket).
    group.add_handler(move || {
        c.fetch_add(1, SeqCst);
    });
    // The child takes the only handle out of the slot; the parent keeps it.
    let slot = std::cell::RefCell::new(Some(group));
    let child = fork(|| {
        let group = slot.borrow_mut().take().expect("the handle");
        let c = Arc::clone(&count);
        group.add_handler(move || {
            c.fetch_add(10, SeqCst);
        });
        // The child's last reference: its copy of the group ends here.
        match group.dec_ref() {
            Released::Gone => 0,
            Released::Alive => 2,
        }
    });
    let group = slot.into_inner().expect("the parent's handle");
    assert_eq!(join_within(child, Duration::from_secs(20)), 0);
    assert_eq!(
        count.load(SeqCst),
        10,
        "the child ran the parent's handler (1) or not its own (10)"
    );
    drop(group);
    assert_eq!(
        count.load(SeqCst),
        11,
        "the parent's handler ran once, in the parent"
    );
}
