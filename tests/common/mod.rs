//! Helpers for tests that run real processes.
//!
//! The test harness runs tests on several threads. A forked child inherits only the forking
//! thread, so it must not touch locks that another test thread might hold at fork time (the
//! stdout lock, for one): children here only do their work and `_exit`, and the tests of one
//! binary that fork take `SERIAL` so that their children never overlap.
//!
//! No wait here is unbounded. A child that does not exit by its deadline is a failure: the
//! test panics with what every stalled thread of the child was doing (its system call with
//! arguments, which for a futex wait names the word's address, and its kernel wait channel),
//! after killing it, so that a lost wake-up fails one test instead of hanging the run.

#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub static SERIAL: Mutex<()> = Mutex::new(());

/// How long a child may take unless the test says otherwise: long enough for a loaded
/// 2-core machine running a debug build, far shorter than a hung CI job.
pub const CHILD_DEADLINE: Duration = Duration::from_secs(60);

/// Takes `SERIAL`, ignoring poisoning from a test that failed.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A forked child process. Joined with a deadline; killed and reaped if dropped unjoined (a
/// failed assertion in the parent must not leave children behind).
pub struct Child {
    pid: libc::pid_t,
    reaped: bool,
}

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
    Child { pid, reaped: false }
}

fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// What every thread of `pid` is doing: its state, system call and kernel wait channel.
pub fn describe_process(pid: u32) -> String {
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|e| format!("<{e}>"))
    };
    let mut out = format!("process {pid}:");
    let tasks = std::path::PathBuf::from(format!("/proc/{pid}/task"));
    match std::fs::read_dir(&tasks) {
        Err(e) => out.push_str(&format!(" <{e}>")),
        Ok(entries) => {
            for t in entries.flatten() {
                let dir = t.path();
                let stat = read(&dir.join("stat"));
                // The state letter follows the parenthesised command name.
                let state = stat
                    .rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split(' ').next())
                    .unwrap_or("?")
                    .to_owned();
                out.push_str(&format!(
                    "\n  tid {}: state {state}, syscall [{}] (202 = futex: nr, word address, op, \
                     expected value ...), wchan {}",
                    t.file_name().to_string_lossy(),
                    read(&dir.join("syscall")),
                    read(&dir.join("wchan")),
                ));
            }
        }
    }
    out
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Whether the child has exited (without reaping it).
    pub fn has_exited(&self) -> bool {
        if self.reaped {
            return true;
        }
        // SAFETY: siginfo_t is plain integers, for which zero bytes are valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: polling our own child; WNOWAIT leaves it to be reaped by `try_join`.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled `info`; si_pid is 0 while the child runs.
        r == 0 && unsafe { info.si_pid() } != 0
    }

    /// The exit code if the child has exited (reaping it), `None` if it still runs.
    pub fn try_join(&mut self) -> Option<i32> {
        if self.reaped {
            return None;
        }
        let mut status = 0;
        // SAFETY: polling our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if r == self.pid {
            self.reaped = true;
            return Some(exit_code(status));
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EINTR), "waitpid: {e}");
        }
        None
    }

    /// Kills the child with SIGKILL and reaps it; returns its exit code (or 128 + signal).
    pub fn kill(mut self) -> i32 {
        self.kill_and_reap()
    }

    fn kill_and_reap(&mut self) -> i32 {
        // SAFETY: signalling our own, not yet reaped, child.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child with a valid status pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                self.reaped = true;
                return exit_code(status);
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                self.reaped = true;
                return -1;
            }
        }
    }

    /// Waits for the child, at most [`CHILD_DEADLINE`], and returns its exit code (or 128 +
    /// signal).
    ///
    /// # Panics
    /// At the deadline, after killing the child, with what its threads were blocked in.
    pub fn join(self) -> i32 {
        self.join_within(CHILD_DEADLINE, String::new)
    }

    /// Waits at most `limit`; on expiry the panic message also carries `context()` (the lock
    /// words involved, say).
    pub fn join_within(mut self, limit: Duration, context: impl FnOnce() -> String) -> i32 {
        let t0 = Instant::now();
        loop {
            if let Some(code) = self.try_join() {
                return code;
            }
            if t0.elapsed() >= limit {
                let seen = describe_process(self.pid());
                let ctx = context();
                self.kill_and_reap();
                panic!("child did not exit within {limit:?} (killed); it was stuck here:\n{seen}\n{ctx}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_and_reap();
        }
    }
}

/// Joins every child within one shared `limit`, asserting that each exits with 0. If any is
/// still running at the deadline, all survivors are described, killed, and the test fails
/// with their state and `context()`.
pub fn join_all(children: Vec<Child>, limit: Duration, context: impl FnOnce() -> String) {
    let t0 = Instant::now();
    let mut pending: Vec<(usize, Child)> = children.into_iter().enumerate().collect();
    let mut failed = Vec::new();
    while !pending.is_empty() {
        pending.retain_mut(|(i, c)| match c.try_join() {
            Some(0) => false,
            Some(code) => {
                failed.push(format!("child {i} (pid {}) exited with {code}", c.pid()));
                false
            }
            None => true,
        });
        if pending.is_empty() {
            break;
        }
        if t0.elapsed() >= limit {
            let seen: Vec<String> = pending
                .iter()
                .map(|(i, c)| format!("child {i}: {}", describe_process(c.pid())))
                .collect();
            let ctx = context();
            drop(pending); // kills and reaps
            panic!(
                "{} children did not exit within {limit:?} (killed); {failed:?}\n{}\n{ctx}",
                seen.len(),
                seen.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(failed.is_empty(), "{}", failed.join("; "));
}

/// Forks `n` children running `work(i)` and asserts that each exits with 0 within
/// [`CHILD_DEADLINE`].
pub fn run_children(n: usize, work: impl Fn(usize) -> i32) {
    let children: Vec<Child> = (0..n).map(|i| fork(|| work(i))).collect();
    join_all(children, CHILD_DEADLINE, String::new);
}

/// A region name no other test or run uses.
pub fn unique_name(tag: &str) -> String {
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
pub fn wait_for(step: &AtomicU32, at_least: u32) {
    let t0 = Instant::now();
    while step.load(Ordering::Acquire) < at_least {
        let seen = step.load(Ordering::Acquire);
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the other process stalled: step is {seen}, waited for {at_least}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A lock and a step counter that a test and one child process use to take turns.
pub type Handshake<R = lockkit::raw::Futex> = (lockkit::GenLock<R>, AtomicU32);

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

/// A small deterministic generator (xorshift), so a failing case replays from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// A generator for worker or case `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_add(1).wrapping_mul(0xBF58_476D_1CE4_E5B9))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Up to `max` microseconds.
    pub fn micros(&mut self, max: u64) -> Duration {
        Duration::from_micros(self.below(max + 1))
    }
}

/// How a program run by [`run_program`] ended, and what it printed.
pub struct Program {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// The processes `pid` forked that still run (its threads' `children` lists).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Runs the program `exe` with `args` and waits for it at most `limit`. A program still
/// running then fails the test: it and every process it forked are described (each thread's
/// system call and wait channel), it is killed (workers it forked with `lockkit::workers`
/// die with it), and the panic shows what it had printed.
pub fn run_program(exe: &str, args: &[&str], limit: Duration) -> Program {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{exe}: {e}"));
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = pipe(Box::new(child.stdout.take().unwrap()));
    let err = pipe(Box::new(child.stderr.take().unwrap()));
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() >= limit {
            let pid = child.id();
            let mut seen = describe_process(pid);
            for k in children_of(pid) {
                seen.push('\n');
                seen.push_str(&describe_process(k));
            }
            let _ = child.kill();
            let status = child.wait().unwrap();
            let p = Program {
                status,
                stdout: out.join().unwrap(),
                stderr: err.join().unwrap(),
            };
            panic!("{exe} {args:?} still ran after {limit:?} (killed):\n{seen}\n{p}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Program {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}
