//! A small supervisor for pre-forked workers: fork N processes that die with their parent,
//! signal them, reap them with a deadline, say how each ended, and, given the region they
//! shared, which of its locks a dead worker held.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use lockkit::workers::Workers;
//! use lockkit::{ShmMutex, ShmRegion};
//!
//! let region = ShmRegion::anonymous(1 << 20)?;
//! let hits = Arc::new(region.alloc(ShmMutex::new(0u64))?);
//! let mut workers = Workers::new();
//! for _ in 0..4 {
//!     // Forks: the closure runs in the child, which exits with its return value. It owns
//!     // what it uses (a handle of its own here).
//!     let hits = Arc::clone(&hits);
//!     workers.spawn(move || {
//!         *hits.lock() += 1;
//!         0
//!     })?;
//! }
//! for ended in workers.wait_all(Duration::from_secs(30))? {
//!     assert!(ended.status.is_some_and(|s| s.success()), "{ended}");
//! }
//! assert_eq!(*hits.lock(), 4);
//! # Ok::<(), lockkit::Error>(())
//! ```
//!
//! Invariants kept here: a [`Workers`] signals and waits for only the children it forked
//! itself and has not reaped yet (a reaped child's pid may belong to another process by
//! then), and only in the process that forked them (a copy inherited by a child does
//! nothing); a child never returns into the caller's code: it runs its closure and `_exit`s.
//!
//! # Forking safely
//! A forked child has only the thread that called `fork`: a lock that another thread held at
//! that instant (a lockkit lock, the allocator's, Rust's stdout lock) stays held for ever in
//! the child, and POSIX lets the child of a multi-threaded process call only
//! async-signal-safe functions. So [`Workers::spawn`] forks only while this process has a
//! single thread (it counts them in `/proc/self/task`, which no other thread can change
//! meanwhile, there being none) and fails with [`Error::ForkWithThreads`] otherwise: fork
//! the workers first, then start threads. [`Workers::spawn_unchecked`] forks anyway, for a
//! caller who answers for what the child does. Rust's test harness runs each `#[test]` on a
//! thread of its own: fork from a test binary with `harness = false` (as lockkit's
//! `tests/workers.rs` does), or use `spawn_unchecked` with a child that touches no lock
//! another thread could hold.
//!
//! # What a worker may take along
//! `spawn`'s closure is `Send + 'static`: it owns what it uses (an `Arc` of a handle, a
//! region, numbers), and borrows nothing. `fork` copies the closure into the child, borrows
//! included, and the child then runs beside the parent for as long as it likes; a lock
//! guard (or a `&mut T` it lent) taken along would let the child write the data after the
//! parent had let the lock go and taken it again, two `&mut` to one value in two processes
//! (an adversarial review did exactly that with a borrowed closure). Guards are not `Send`,
//! and what they lend lives no longer than they do, so neither can be taken along.
//!
//! # Dying with the parent
//! Each child asks the kernel (`PR_SET_PDEATHSIG`) to kill it with `SIGKILL` when its parent
//! dies, so no worker runs on, unsupervised, holding the region. A parent that died between
//! the `fork` and that request would never trigger it: the child then sees that its parent
//! is no longer the process that forked it and exits (code 1) before running its closure.
//! Linux sends the signal when the *thread* that forked exits, which in the single-threaded
//! parent `spawn` requires is the process's exit.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::report::LockInfo;
use crate::{Error, Result, ShmRegion};

/// The exit code of a worker whose closure panicked (as the test harness uses).
pub const PANIC_EXIT_CODE: i32 = 101;

/// The exit code of a worker whose parent died before it could ask to die with it.
pub const ORPHAN_EXIT_CODE: i32 = 1;

/// Forks workers and supervises them; see the [module docs](self).
///
/// Dropping it kills (`SIGKILL`) and reaps every worker not yet reaped, so a failing parent
/// leaves no worker behind; [`wait_all`](Workers::wait_all) first to let them finish.
#[derive(Debug)]
pub struct Workers {
    workers: Vec<Worker>,
    /// The process that forked them: the only one that may signal or reap them.
    parent: u32,
    interrupts_to_parent: bool,
}

#[derive(Debug)]
struct Worker {
    pid: libc::pid_t,
    status: Option<ExitStatus>,
}

/// How one worker ended, from [`Workers::wait_all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// The worker's index (in the order it was spawned).
    pub index: usize,
    /// Its process id.
    pub pid: u32,
    /// How it ended (`code()` for an exit, `signal()` for a kill), or `None` if it was
    /// still running at the deadline.
    pub status: Option<ExitStatus>,
}

impl Ended {
    /// The code the worker exited with, if it exited (`None` if a signal ended it or it was
    /// still running).
    pub fn exit_code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// The signal that ended the worker, if one did (`Some(libc::SIGKILL)` for a kill).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let mut workers = lockkit::workers::Workers::new();
    /// let i = workers
    ///     .spawn(|| {
    ///         std::thread::sleep(Duration::from_secs(30));
    ///         0
    ///     })
    ///     .unwrap();
    /// workers.kill(i, libc::SIGKILL).unwrap();
    /// let ended = workers.wait_all(Duration::from_secs(30)).unwrap();
    /// assert_eq!(ended[0].killed_by(), Some(libc::SIGKILL));
    /// assert_eq!(ended[0].exit_code(), None);
    /// ```
    pub fn killed_by(&self) -> Option<i32> {
        self.status.and_then(|s| s.signal())
    }
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker {} (pid {}): ", self.index, self.pid)?;
        match self.status {
            Some(s) => write!(f, "{}", describe(s)),
            None => f.write_str("still running at the deadline"),
        }
    }
}

/// `exited with code 3`, `killed by signal 9 (SIGKILL)`.
fn describe(s: ExitStatus) -> String {
    if let Some(code) = s.code() {
        return format!("exited with code {code}");
    }
    let sig = s.signal().unwrap_or(0);
    let name = match sig {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGINT => " (SIGINT)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGBUS => " (SIGBUS)",
        _ => "",
    };
    let core = if s.core_dumped() { ", core dumped" } else { "" };
    format!("killed by signal {sig}{name}{core}")
}

impl Default for Workers {
    fn default() -> Self {
        Workers {
            workers: Vec::new(),
            parent: std::process::id(),
            interrupts_to_parent: false,
        }
    }
}

impl Workers {
    /// No workers yet.
    ///
    /// ```
    /// let workers = lockkit::workers::Workers::new();
    /// assert!(workers.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// For workers spawned from now on: `SIGINT` is ignored and `SIGTERM` takes its default
    /// action (death), whatever handlers the parent installed. Ctrl-C reaches the whole
    /// foreground process group; with this the parent alone decides how its workers stop
    /// (through shared memory, say, so none dies holding a lock).
    ///
    /// ```
    /// let mut workers = lockkit::workers::Workers::new();
    /// workers.interrupts_to_parent(true);
    /// ```
    pub fn interrupts_to_parent(&mut self, yes: bool) -> &mut Self {
        self.interrupts_to_parent = yes;
        self
    }

    /// Forks a worker that runs `work` and exits with its return value
    /// ([`PANIC_EXIT_CODE`] if it panics), without returning into the caller's code or
    /// running `atexit` handlers. Returns the worker's index.
    ///
    /// Fails with [`Error::ForkWithThreads`] if this process has more than one thread (see
    /// [Forking safely](self#forking-safely)), or [`Error::Os`] if `fork` fails. `work` owns
    /// what it uses ([What a worker may take along](self#what-a-worker-may-take-along)).
    ///
    /// ```
    /// let mut workers = lockkit::workers::Workers::new();
    /// let i = workers.spawn(|| 7)?;
    /// let status = workers.wait(i, std::time::Duration::from_secs(10))?;
    /// assert_eq!(status.and_then(|s| s.code()), Some(7));
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub fn spawn(&mut self, work: impl FnOnce() -> i32 + Send + 'static) -> Result<usize> {
        let mut threads = thread_count()?;
        // A thread just joined can still be listed for a moment (the kernel lets `join`
        // return before it removes the thread): look again, briefly, before refusing.
        for _ in 0..20 {
            if threads == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
            threads = thread_count()?;
        }
        if threads != 1 {
            return Err(Error::ForkWithThreads { threads });
        }
        // SAFETY: this process has one thread (counted just now; only a thread of this
        // process could start another, and there is none), so the child is a whole copy.
        unsafe { self.spawn_unchecked(work) }
    }

    /// [`spawn`](Workers::spawn) without the check that this process has one thread.
    ///
    /// # Safety
    /// If other threads exist, the child must do only what is sound in the child of a
    /// multi-threaded process (async-signal-safe calls; no lock that another thread may have
    /// held at the fork, the allocator's included, unless the C library makes it safe). And
    /// `work` may borrow, so the caller answers that nothing it takes along reaches data in
    /// shared memory through a lock the parent holds (a guard, or what a guard lent).
    ///
    /// ```
    /// let mut workers = lockkit::workers::Workers::new();
    /// // SAFETY: the child only returns a number.
    /// let i = unsafe { workers.spawn_unchecked(|| 0) }?;
    /// assert!(workers.wait(i, std::time::Duration::from_secs(10))?.is_some());
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    pub unsafe fn spawn_unchecked(&mut self, work: impl FnOnce() -> i32) -> Result<usize> {
        self.reject_copy()?;
        let parent = self.parent as libc::pid_t;
        let interrupts_to_parent = self.interrupts_to_parent;
        // SAFETY: the caller answers for the threads (the contract); the child below runs
        // only `work` and `_exit`s, never returning into the caller or unwinding past here.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Error::os("fork", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            child(parent, interrupts_to_parent, work);
        }
        self.workers.push(Worker { pid, status: None });
        Ok(self.workers.len() - 1)
    }

    /// The number of workers spawned (reaped ones included).
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether none was spawned.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Worker `index`'s process id.
    ///
    /// # Panics
    /// If `index` is not a worker's.
    pub fn pid(&self, index: usize) -> u32 {
        self.worker(index).pid as u32
    }

    /// How worker `index` ended, if it was reaped.
    pub fn status(&self, index: usize) -> Option<ExitStatus> {
        self.worker(index).status
    }

    /// Sends `signal` to worker `index`. A worker already reaped is not signalled (its pid
    /// may be another process's by now): `Ok(false)`. `Ok(true)` when the signal was sent
    /// (to a worker that may have exited, still unreaped).
    ///
    /// # Panics
    /// If `index` is not a worker's.
    pub fn kill(&self, index: usize, signal: i32) -> Result<bool> {
        self.reject_copy()?;
        let w = self.worker(index);
        if w.status.is_some() {
            return Ok(false);
        }
        // SAFETY: our own child, not yet reaped: the pid is still its.
        if unsafe { libc::kill(w.pid, signal) } != 0 {
            return Err(Error::os("kill", std::io::Error::last_os_error()));
        }
        Ok(true)
    }

    /// Reaps worker `index` if it has ended: its status, or `None` while it runs.
    ///
    /// # Panics
    /// If `index` is not a worker's.
    pub fn try_wait(&mut self, index: usize) -> Result<Option<ExitStatus>> {
        self.reject_copy()?;
        let w = &mut self.workers[index];
        if w.status.is_some() {
            return Ok(w.status);
        }
        let mut status = 0;
        loop {
            // SAFETY: our own child, with a valid status pointer; WNOHANG never blocks.
            let r = unsafe { libc::waitpid(w.pid, &mut status, libc::WNOHANG) };
            if r == w.pid {
                w.status = Some(ExitStatus::from_raw(status));
                return Ok(w.status);
            }
            if r == 0 {
                return Ok(None);
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::os("waitpid", e));
            }
        }
    }

    /// Waits at most `timeout` for worker `index` to end and reaps it: its status, or
    /// `None` if it still runs at the deadline (it is left running).
    ///
    /// # Panics
    /// If `index` is not a worker's.
    pub fn wait(&mut self, index: usize, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let mut nap = Duration::from_micros(100);
        loop {
            if let Some(s) = self.try_wait(index)? {
                return Ok(Some(s));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(nap.min(deadline - now));
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    /// Waits for every worker, all within one `timeout`, and says how each ended, in the
    /// order they were spawned (those still running at the deadline with `status: None`:
    /// they are left running; kill them, or drop the `Workers`, which does).
    pub fn wait_all(&mut self, timeout: Duration) -> Result<Vec<Ended>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::with_capacity(self.workers.len());
        for index in 0..self.workers.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            let status = self.wait(index, left)?;
            out.push(Ended {
                index,
                pid: self.pid(index),
                status,
            });
        }
        Ok(out)
    }

    /// The locks of `region` that worker `index` holds, or held when it died (each with
    /// [`holder`](LockInfo::holder)`.alive == false` then), from the region's lock report.
    /// Ask right after the worker was reaped: the next process to take such a lock takes it
    /// over (and is told the owner died), and it is then that process's.
    ///
    /// ```
    /// use std::time::Duration;
    /// use lockkit::{workers::Workers, GenLock, ShmRegion};
    ///
    /// let region = ShmRegion::anonymous(1 << 20)?;
    /// let lock = std::sync::Arc::new(region.alloc(GenLock::new())?);
    /// region.publish("lock", &lock)?;
    /// let mut workers = Workers::new();
    /// let held_by_worker = std::sync::Arc::clone(&lock);
    /// let i = workers.spawn(move || {
    ///     std::mem::forget(held_by_worker.lock()); // dies holding it
    ///     0
    /// })?;
    /// workers.wait(i, Duration::from_secs(10))?;
    /// let held = workers.held_by(i, &region);
    /// assert_eq!(held[0].place(), "lock");
    /// assert!(!held[0].holder.unwrap().alive);
    /// # Ok::<(), lockkit::Error>(())
    /// ```
    ///
    /// # Panics
    /// If `index` is not a worker's.
    pub fn held_by(&self, index: usize, region: &ShmRegion) -> Vec<LockInfo> {
        let pid = self.pid(index);
        region
            .report()
            .locks
            .into_iter()
            .filter(|l| l.holder.is_some_and(|h| h.pid == pid))
            .collect()
    }

    #[track_caller]
    fn worker(&self, index: usize) -> &Worker {
        match self.workers.get(index) {
            Some(w) => w,
            None => panic!("no worker {index}: {} were spawned", self.workers.len()),
        }
    }

    /// A copy inherited by a child of `fork` neither signals nor waits.
    fn reject_copy(&self) -> Result<()> {
        if std::process::id() == self.parent {
            Ok(())
        } else {
            Err(Error::os(
                "supervising workers",
                std::io::Error::other(
                    "this Workers was inherited from the parent that forked them",
                ),
            ))
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        if std::process::id() != self.parent {
            return;
        }
        for w in &mut self.workers {
            if w.status.is_some() {
                continue;
            }
            // SAFETY: our own child, not yet reaped.
            unsafe { libc::kill(w.pid, libc::SIGKILL) };
            let mut status = 0;
            loop {
                // SAFETY: waiting for our own child (killed: it ends promptly).
                let r = unsafe { libc::waitpid(w.pid, &mut status, 0) };
                if r == w.pid || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
                {
                    break;
                }
            }
        }
    }
}

/// This process's threads, from `/proc/self/task`.
fn thread_count() -> Result<usize> {
    let dir = std::fs::read_dir("/proc/self/task")
        .map_err(|e| Error::os("counting this process's threads (/proc/self/task)", e))?;
    Ok(dir.filter(|e| e.is_ok()).count())
}

/// The child's side of a spawn: never returns.
fn child(parent: libc::pid_t, interrupts_to_parent: bool, work: impl FnOnce() -> i32) -> ! {
    // SAFETY: prctl with integer arguments; getppid cannot fail.
    let orphaned = unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0
            || libc::getppid() != parent
    };
    if orphaned {
        // The parent died before the request could take effect (or it failed): leave now,
        // before running anything, as the kernel would have made us.
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(ORPHAN_EXIT_CODE) };
    }
    if interrupts_to_parent {
        // SAFETY: installs the default action and "ignore", no handler of ours.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
        }
    }
    let code = catch_unwind(AssertUnwindSafe(work)).unwrap_or(PANIC_EXIT_CODE);
    // SAFETY: ends the child without returning into the caller's code or running the
    // parent's exit handlers.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The race where the parent dies between `fork` and `PR_SET_PDEATHSIG`, made certain:
    /// the child is told its parent is a process that is not its parent (as after the
    /// parent's death, when it was re-parented), and must leave without running its work.
    #[test]
    fn a_child_whose_parent_died_before_it_asked_to_die_with_it_exits_without_working() {
        let not_our_parent = 1;
        // SAFETY: the child calls only `prctl`, `getppid` and `_exit` (all async-signal-safe,
        // so fine beside the harness's threads) on this path: it never runs its work.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            child(not_our_parent, false, || 0);
        }
        let mut status = 0;
        let t0 = Instant::now();
        loop {
            // SAFETY: our own child, with a valid status pointer; WNOHANG never blocks.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                // SAFETY: our own child, not reaped: the pid is still its.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("the orphaned child did not exit within 60 s (killed)");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(ExitStatus::from_raw(status).code(), Some(ORPHAN_EXIT_CODE));
    }

    #[test]
    fn an_end_is_described_as_a_code_or_a_named_signal() {
        assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "exited with code 3");
        assert_eq!(
            describe(ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe(ExitStatus::from_raw(6 | 0x80)),
            "killed by signal 6 (SIGABRT), core dumped"
        );
    }
}
