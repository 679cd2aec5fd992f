//! A wedged server to practise on (README, "Troubleshooting"): a parent creates the named
//! region `/lockkit-stuck`, forks a worker that takes the registrar's lock in
//! `handle_register` and never gives it back (it "hangs" for `--seconds`), and a second
//! worker that waits for the same lock. Attach the inspector meanwhile:
//!
//! ```text
//! cargo run --example stuck --features lock-debug -- --seconds 30 &
//! cargo run --bin lockkit-top -- /lockkit-stuck
//! ```
//!
//! With `--inversion` it also takes two locks in both orders (one order per process) and
//! prints what the lock-order checker says (needs `--features lock-debug`).

use std::time::Duration;

use lockkit::{shared_locked, GenLock, ShmRegion};

#[shared_locked]
struct Registrar {
    table: GenLock,
    #[guarded_by(table)]
    bindings: u64,
    stats: GenLock,
    #[guarded_by(stats)]
    registers: u64,
}

const NAME: &str = "/lockkit-stuck";

/// The bug: an early return that keeps the guard alive (here: the worker sleeps inside).
fn handle_register(reg: &Registrar, hold: Duration) {
    let mut t = reg.lock_table();
    t.bindings += 1;
    std::thread::sleep(hold);
}

fn fork(work: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the parent is single-threaded; the child runs `work` and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        work();
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn wait(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut seconds = 10u64;
    let mut inversion = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seconds takes a whole number")?
            }
            "--inversion" => inversion = true,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let _ = ShmRegion::unlink(NAME);
    let region = ShmRegion::create(NAME, 1 << 20)?;
    let reg = region.alloc_zeroed::<Registrar>()?;
    region.publish("registrar", &reg)?;
    println!("region {NAME} ready (pid {})", std::process::id());

    if inversion {
        run_inversion(&reg);
    }
    let hold = Duration::from_secs(seconds);
    let stuck = fork(|| handle_register(&reg, hold));
    std::thread::sleep(Duration::from_millis(200));
    let waiter = fork(|| drop(reg.lock_table()));
    std::thread::sleep(Duration::from_millis(500));
    print!("{}", region.report());
    wait(stuck);
    wait(waiter);
    Ok(())
}

#[cfg(feature = "lock-debug")]
fn run_inversion(reg: &Registrar) {
    use lockkit::lock_order::{set_on_inversion, OnInversion};
    // One process takes table, then stats.
    wait(fork(|| {
        let _t = reg.lock_table();
        let _s = reg.lock_stats();
    }));
    // Another takes stats, then table: told before it waits.
    wait(fork(|| {
        set_on_inversion(OnInversion::Log);
        let _s = reg.lock_stats();
        let _t = reg.lock_table();
    }));
}

#[cfg(not(feature = "lock-debug"))]
fn run_inversion(_: &Registrar) {
    eprintln!("--inversion needs --features lock-debug");
}
