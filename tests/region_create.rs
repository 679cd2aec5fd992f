//! Creating a named region while other processes create it too, open it, or die half-way:
//! a name only ever leads to a finished region, exactly one creator gets it, and a creator's
//! death leaves nothing that blocks the next one. Every process here is real (forked), and a
//! creator is killed with SIGKILL while it works.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::time::{Duration, Instant};

use common::{shm_path, unique_name, wait_for, Rng};
use lockkit::{Error, RegionOptions, ShmBox, ShmRegion};

/// Steps and results shared by the test and its children.
type Board = [AtomicU32; 16];

fn board() -> (ShmRegion, ShmBox<Board>) {
    let r = ShmRegion::anonymous(1 << 16).unwrap();
    let b = r.alloc_zeroed::<Board>().unwrap();
    (r, b)
}

/// The files under /dev/shm that process `pid` has open (fd number and target).
fn shm_fds(pid: u32) -> HashSet<(String, String)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            let target = target.to_string_lossy().into_owned();
            target
                .starts_with("/dev/shm/")
                .then(|| (e.file_name().to_string_lossy().into_owned(), target))
        })
        .collect()
}

/// Forks a creator of `name` (`size` bytes) and kills it once it has started building: when
/// it holds a file under /dev/shm open that it did not hold before it began, plus `delay`.
/// Returns `false` if it finished before the kill landed (the round proves nothing then):
/// it said so, or its region is under the name.
fn kill_a_creator_half_way(name: &str, size: usize, delay: Duration) -> bool {
    let (_r, b) = board();
    let creator = common::fork(|| {
        b[0].store(1, Release);
        wait_for(&b[0], 2);
        if ShmRegion::create(name, size).is_ok() {
            b[1].store(1, Release);
        }
        // Killed here (or before).
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    wait_for(&b[0], 1);
    let before = shm_fds(creator.pid());
    b[0].store(2, Release);
    let t0 = Instant::now();
    loop {
        let now = shm_fds(creator.pid());
        if now.difference(&before).next().is_some() || b[1].load(Acquire) == 1 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the creator opened no file under /dev/shm within 20 s; it holds {now:?}"
        );
        std::thread::yield_now();
    }
    std::thread::sleep(delay);
    creator.kill();
    // A creator killed after `create` named its region but before it said so finished too.
    b[1].load(Acquire) == 0 && !shm_path(name).exists()
}

/// Removes whatever is left at `name` when a test fails half-way.
fn cleanup(name: &str) -> impl Drop + '_ {
    scopeguard::guard(name, |n| {
        let _ = std::fs::remove_file(shm_path(n));
    })
}

#[test]
fn a_creator_killed_while_reserving_its_memory_leaves_the_name_free() {
    let _s = common::serial();
    const BIG: usize = 256 << 20;
    let mut tries = 0;
    loop {
        tries += 1;
        let name = unique_name("killed-creator");
        let _c = cleanup(&name);
        // At once: a region this large takes tens of milliseconds to reserve.
        if !kill_a_creator_half_way(&name, BIG, Duration::ZERO) {
            assert!(tries < 5, "the creator finished before every kill");
            continue;
        }
        match ShmRegion::open(&name) {
            Err(Error::NotFound { .. }) => {}
            Err(e) => panic!("a dead creator's unfinished region is visible: {e}"),
            Ok(_) => panic!("a dead creator's unfinished region opened"),
        }
        let r = RegionOptions::new()
            .replace_abandoned(true)
            .create(&name, 1 << 20)
            .unwrap_or_else(|e| panic!("the name is blocked after its creator died: {e}"));
        let e = ShmRegion::create(&name, 1 << 20).unwrap_err();
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
        assert!(ShmRegion::open(&name).is_ok());
        drop(r);
        break;
    }
}

#[test]
fn restarts_racing_after_a_creator_died_make_exactly_one_region() {
    let _s = common::serial();
    const ROUNDS: usize = 40;
    let mut rng = Rng::new(21);
    let (mut killed, mut failures) = (0, Vec::new());
    for round in 0..ROUNDS {
        let name = unique_name("restart");
        let _c = cleanup(&name);
        // Anywhere in a creation of a few milliseconds: reserving, formatting, publishing.
        let delay = rng.micros(6_000);
        if !kill_a_creator_half_way(&name, 32 << 20, delay) {
            continue;
        }
        killed += 1;
        // b[0]: go; b[1]: restarters that have an answer; b[2 + i]: restarter i won;
        // b[4]: the test has looked, restarters may exit (winners drop their regions).
        let (_r, b) = board();
        let restarters: Vec<_> = (0..2)
            .map(|i| {
                let (b, name) = (&b, &name);
                common::fork(move || {
                    wait_for(&b[0], 1);
                    match RegionOptions::new()
                        .replace_abandoned(true)
                        .create(name, 1 << 20)
                    {
                        Ok(r) => {
                            let mark = r.alloc(i as u64 + 1).unwrap();
                            r.publish("winner", &mark).unwrap();
                            b[2 + i].store(1, Release);
                            b[1].fetch_add(1, AcqRel);
                            wait_for(&b[4], 1);
                            0
                        }
                        Err(Error::AlreadyExists { .. }) => {
                            b[1].fetch_add(1, AcqRel);
                            // Stays until the test has looked, as a winner does: a loser
                            // that exited first ended the test's wait before the winner
                            // had said it won (a flake under load: "no winner").
                            wait_for(&b[4], 1);
                            0
                        }
                        Err(_) => 10,
                    }
                })
            })
            .collect();
        b[0].store(1, Release);
        let t0 = Instant::now();
        while b[1].load(Acquire) < 2 && restarters.iter().all(|c| !c.has_exited()) {
            assert!(t0.elapsed() < Duration::from_secs(20), "restarters stalled");
            std::thread::sleep(Duration::from_millis(1));
        }
        let won: Vec<usize> = (0..2).filter(|&i| b[2 + i].load(Acquire) == 1).collect();
        let named = ShmRegion::open(&name)
            .ok()
            .and_then(|r| r.lookup::<u64>("winner").ok().map(|w| *w as usize - 1));
        b[4].store(1, Release);
        common::join_all(restarters, common::CHILD_DEADLINE, String::new);
        if won.len() != 1 || named != Some(won[0]) {
            failures.push(format!(
                "round {round} (creator killed {delay:?} in): winners {won:?}, the name leads \
                 to {named:?}"
            ));
        }
    }
    eprintln!("{killed} of {ROUNDS} creators were killed before they finished");
    assert!(killed > 0, "no creator was killed before it finished");
    assert!(
        failures.is_empty(),
        "{} of {killed} rounds did not end with exactly one region under the name, the \
         winner's: {failures:#?}",
        failures.len()
    );
}

/// Puts the calling process into new pid and mount namespaces and forks the first process
/// of the new pid namespace, which mounts a /proc of its own (as in a container) and runs
/// `work`; returns its exit code. 70 to 72: the namespaces could not be set up.
fn in_another_pid_namespace(work: impl FnOnce() -> i32) -> i32 {
    // SAFETY: plain system calls in a single-threaded forked child; the strings are valid C
    // strings that outlive the calls; the grandchild only runs `work` and `_exit`s.
    unsafe {
        if libc::unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS) != 0 {
            return 70;
        }
        let none: *const libc::c_char = std::ptr::null();
        if libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            none.cast(),
        ) != 0
        {
            return 71;
        }
        let pid = libc::fork();
        if pid == 0 {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                0,
                none.cast(),
            ) != 0
            {
                libc::_exit(72);
            }
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or(101);
            libc::_exit(code);
        }
        if pid < 0 {
            return 70;
        }
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) != pid {}
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        }
    }
}

#[test]
fn a_live_creator_is_never_replaced_from_another_pid_namespace() {
    let _s = common::serial();
    let name = unique_name("pidns");
    let _c = cleanup(&name);
    // b[0]: the creator may start; b[1]: the creator's pid; b[2]: its answer (1 Ok, 2
    // AlreadyExists, 3 other); b[3]: the other's answer; b[4]: the other may start;
    // b[5]: the test has looked; b[6]: the other is set up (1) or sees the creator (2).
    let (_r, b) = board();
    let creator = common::fork(|| {
        b[1].store(std::process::id(), Release);
        wait_for(&b[0], 1);
        let (code, region) = match ShmRegion::create(&name, 128 << 20) {
            Ok(r) => {
                let mark = r.alloc(1u64).unwrap();
                r.publish("winner", &mark).unwrap();
                (1, Some(r))
            }
            Err(Error::AlreadyExists { .. }) => (2, None),
            Err(_) => (3, None),
        };
        b[2].store(code, Release);
        wait_for(&b[5], 1);
        drop(region);
        0
    });
    let other = common::fork(|| {
        in_another_pid_namespace(|| {
            // The creator's pid means nothing here: /proc shows this namespace only.
            let creator = b[1].load(Acquire);
            let alien = std::fs::metadata(format!("/proc/{creator}")).is_err();
            b[6].store(if alien { 1 } else { 2 }, Release);
            wait_for(&b[4], 1);
            loop {
                let done = b[2].load(Acquire) != 0;
                match RegionOptions::new()
                    .replace_abandoned(true)
                    .create(&name, 1 << 20)
                {
                    Ok(r) => {
                        let mark = r.alloc(2u64).unwrap();
                        r.publish("winner", &mark).unwrap();
                        b[3].store(1, Release);
                        wait_for(&b[5], 1);
                        return 0;
                    }
                    Err(Error::AlreadyExists { .. }) if done => {
                        b[3].store(2, Release);
                        return 0;
                    }
                    Err(Error::AlreadyExists { .. }) => {
                        std::thread::sleep(Duration::from_micros(200))
                    }
                    Err(_) => {
                        b[3].store(3, Release);
                        return 0;
                    }
                }
            }
        })
    });
    let t0 = Instant::now();
    while b[6].load(Acquire) == 0 || b[1].load(Acquire) == 0 {
        if other.has_exited() {
            let code = other.join();
            panic!("cannot set up a pid namespace with its own /proc (needs root): code {code}");
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "setup stalled");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        b[6].load(Acquire),
        1,
        "the other namespace's /proc shows the creator"
    );
    // The other starts once the creator is at work.
    let before = shm_fds(creator.pid());
    b[0].store(1, Release);
    while shm_fds(creator.pid()).difference(&before).next().is_none() && b[2].load(Acquire) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the creator never began"
        );
        std::thread::yield_now();
    }
    b[4].store(1, Release);
    while b[2].load(Acquire) == 0 || b[3].load(Acquire) == 0 {
        assert!(
            !other.has_exited() && !creator.has_exited(),
            "a child died: answers {} and {}",
            b[2].load(Acquire),
            b[3].load(Acquire)
        );
        assert!(t0.elapsed() < Duration::from_secs(30), "no answers");
        std::thread::sleep(Duration::from_millis(1));
    }
    let answers = (b[2].load(Acquire), b[3].load(Acquire));
    let named = ShmRegion::open(&name)
        .ok()
        .and_then(|r| r.lookup::<u64>("winner").ok().copied());
    b[5].store(1, Release);
    common::join_all(vec![creator, other], common::CHILD_DEADLINE, String::new);
    // (1, 2): the creator won; (2, 1): the other linked its region first. Either way one
    // region, under the name.
    match answers {
        (1, 2) => assert_eq!(named, Some(1), "the creator's region is not at the name"),
        (2, 1) => assert_eq!(named, Some(2), "the other's region is not at the name"),
        _ => panic!(
            "answers (creator, other) {answers:?} (1 Ok, 2 AlreadyExists, 3 another error); \
             the name leads to {named:?}"
        ),
    }
}
