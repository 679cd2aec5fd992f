//! Who holds what (issue 13): `region.report()` and the `lockkit-top` inspector name the
//! holder of a lock held by another process, where the lock is, whether the holder is alive
//! and whether others wait; the inspector takes no lock and survives a region damaged under
//! it.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::time::{Duration, Instant};

use common::{wait_for, Rng};
use lockkit::report::Inspector;
use lockkit::{shared_locked, GenLock, GenLockSet, RecLock, RwLock, ShmRegion};

#[shared_locked]
struct Registrar {
    calls: GenLock,
    #[guarded_by(calls)]
    active: u64,
    stripes: GenLockSet<8>,
    #[striped_by(stripes)]
    per_aor: [u32; 64],
    routes: RwLock<[u32; 4]>,
    #[standalone]
    app: GenLock,
    /// Test choreography: 1 = the child holds its locks, 2 = release them.
    step: AtomicU32,
}

/// The function the child holds the locks in (a report with `lock-debug` would name it).
fn hold_calls_and_stripe(reg: &Registrar) -> i32 {
    let _calls = reg.lock_calls();
    let _stripe = reg.lock_per_aor(11); // stripe 11 % 8 = 3
    let _routes = reg.routes.write();
    reg.step.store(1, Release);
    wait_for(&reg.step, 2);
    0
}

fn named_region(tag: &str) -> (String, ShmRegion) {
    let name = common::unique_name(tag);
    let region = ShmRegion::create(&name, 1 << 20).unwrap();
    (name, region)
}

#[test]
fn the_report_names_the_holder_the_place_and_the_waiters() {
    let (_name, region) = named_region("report");
    let reg = region.alloc_zeroed::<Registrar>().unwrap();
    region.publish("registrar", &reg).unwrap();
    assert!(region.report().locks.is_empty(), "nothing held yet");

    let holder = common::fork(|| hold_calls_and_stripe(&reg));
    wait_for(&reg.step, 1);
    // A second process waits for `calls`.
    let waiter = common::fork(|| {
        drop(reg.lock_calls());
        0
    });
    let t0 = Instant::now();
    let report = loop {
        let r = region.report();
        if r.locks.iter().any(|l| l.field == "calls" && l.waiters) {
            break r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the waiter never showed: {r}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let places: Vec<String> = report.locks.iter().map(|l| l.place()).collect();
    assert_eq!(
        places,
        [
            "registrar.calls",
            "registrar.stripes[3]",
            "registrar.routes"
        ],
        "{report}"
    );
    for l in &report.locks {
        let h = l.holder.expect("a holder");
        assert_eq!((h.pid, h.alive), (holder.pid(), true), "{report}");
        assert!(!l.inconsistent);
    }
    assert_eq!(report.locks[0].kind, "GenLock<futex>");
    assert_eq!(report.locks[2].kind, "RwLock");
    assert!(report.locks[0].waiters, "{report}");
    let text = report.to_string();
    assert!(
        text.contains(&format!("pid {} tid", holder.pid())) && text.contains("alive"),
        "{text}"
    );
    reg.step.store(2, Release);
    holder.join();
    waiter.join();
    assert!(region.report().locks.is_empty(), "{}", region.report());
}

#[test]
fn a_dead_holder_is_reported_dead_and_its_lock_inconsistent_after_recovery() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let app = region.alloc(RecLock::new()).unwrap();
    let set = region.alloc_lock_set(4).unwrap();
    region.publish("app", &app).unwrap();
    region.publish_lock_set("slots", &set).unwrap();
    let step = region.alloc(AtomicU32::new(0)).unwrap();
    let doomed = common::fork(|| {
        std::mem::forget(app.lock());
        std::mem::forget(set.lock(2));
        step.store(1, Release);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    wait_for(&step, 1);
    let pid = doomed.pid();
    let report = region.report();
    let places: Vec<_> = report.locks.iter().map(|l| l.place()).collect();
    assert_eq!(places, ["app", "slots[2]"], "{report}");
    assert_eq!(report.locks[0].kind, "RecLock");
    assert_eq!(
        report.locks[1].kind, "GenLock<futex>",
        "an entry of the set"
    );
    assert!(report.locks.iter().all(|l| l.holder.unwrap().pid == pid));
    doomed.kill();
    let report = region.report();
    assert!(
        report.locks.iter().all(|l| !l.holder.unwrap().alive),
        "{report}"
    );
    assert!(report.to_string().contains("DEAD"), "{report}");
    // The next user recovers the set's lock; until it marks it consistent, the report says
    // so.
    let g = set.lock(2);
    let report = region.report();
    let slot = report.locks.iter().find(|l| l.field == "[2]").unwrap();
    assert!(slot.inconsistent && slot.holder.unwrap().alive, "{report}");
    assert!(report.to_string().contains("holder died"), "{report}");
    drop(g);
}

#[test]
fn a_sysv_semaphore_lock_is_reported_with_its_holder_and_its_waiter() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let lock = region
        .alloc_zeroed::<GenLock<lockkit::raw::SysvSem>>()
        .unwrap();
    region.publish("sysv", &lock).unwrap();
    let step = region.alloc(AtomicU32::new(0)).unwrap();
    let holder = common::fork(|| {
        let _g = lock.lock();
        step.store(1, Release);
        wait_for(&step, 2);
        0
    });
    wait_for(&step, 1);
    let waiter = common::fork(|| {
        drop(lock.lock());
        0
    });
    let t0 = Instant::now();
    let report = loop {
        let r = region.report();
        if r.locks.iter().any(|l| l.waiters) {
            break r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the waiter never showed: {r}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(report.locks.len(), 1, "{report}");
    assert_eq!(report.locks[0].kind, "GenLock<sysv-sem>", "{report}");
    assert_eq!(
        report.locks[0].holder.map(|h| (h.pid, h.alive)),
        Some((holder.pid(), true)),
        "{report}"
    );
    step.store(2, Release);
    let late = || "the lock was not handed on".to_string();
    assert_eq!(holder.join_within(Duration::from_secs(10), late), 0);
    assert_eq!(waiter.join_within(Duration::from_secs(10), late), 0);
    // SAFETY: both processes that used the lock have exited.
    unsafe { lock.destroy() };
}

/// The `lockkit-top` binary of this source tree, built (into this test's own target
/// directory, so it is never a stale one from another build) on first use.
fn lockkit_top() -> PathBuf {
    static BUILT: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = &*built {
        return p.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lockkit-top");
    let out = Command::new(cargo)
        .args([
            "build",
            "-p",
            "lockkit",
            "--bin",
            "lockkit-top",
            "--target-dir",
        ])
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = target.join("debug").join("lockkit-top");
    *built = Some(path.clone());
    path
}

fn run_top(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(lockkit_top())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            return (status.success(), text);
        }
        if t0.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "lockkit-top {args:?} did not finish: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_inspector_shows_who_holds_what_and_for_how_long() {
    let (name, region) = named_region("top");
    let reg = region.alloc_zeroed::<Registrar>().unwrap();
    region.publish("registrar", &reg).unwrap();
    let holder = common::fork(|| hold_calls_and_stripe(&reg));
    wait_for(&reg.step, 1);

    let (ok, text) = run_top(&[&name]);
    assert!(ok, "{text}");
    assert!(text.contains("registrar.calls"), "{text}");
    assert!(
        text.contains(&format!("pid {} tid", holder.pid())),
        "{text}"
    );

    let (ok, text) = run_top(&["--json", "--count", "3", "--interval", "300", &name]);
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let seen = |line: &str| -> u64 {
        let at = line.find("\"seen_held_ms\":").expect(line) + "\"seen_held_ms\":".len();
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        seen(lines[2]) >= seen(lines[0]) + 400,
        "the hold time grows: {text}"
    );
    assert!(
        lines[0].contains(&format!("\"pid\":{}", holder.pid())),
        "{text}"
    );
    assert!(lines[0].contains("\"place\":\"registrar.calls\""), "{text}");
    // The whole report, not just its locks: the inversions and groups arrays are there too.
    assert!(
        lines[0].ends_with(",\"inversions\":[],\"groups\":[]}"),
        "{text}"
    );

    let (ok, text) = run_top(&[
        "--watch",
        "--count",
        "2",
        "--interval",
        "200",
        "--threshold",
        "0.1",
        &name,
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("held too long"), "{text}");

    reg.step.store(2, Release);
    holder.join();
    let (ok, text) = run_top(&[&name]);
    assert!(ok && text.contains("no lock held"), "{text}");
    let (ok, text) = run_top(&["/lockkit-no-such-region"]);
    assert!(!ok && text.contains("lockkit-no-such-region"), "{text}");
}

#[test]
fn the_inspector_survives_a_region_damaged_under_it() {
    let (name, region) = named_region("topfuzz");
    let reg = region.alloc_zeroed::<Registrar>().unwrap();
    region.publish("registrar", &reg).unwrap();
    for i in 0..50u64 {
        region.alloc([i; 12]).unwrap();
    }
    let _held = reg.lock_calls();
    const REPORTS: usize = 200;
    let top = Inspector::open(&name).unwrap();
    let len = region.size();
    let path = common::shm_path(&name);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let reports = std::thread::scope(|s| {
        s.spawn(|| {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let mut rng = Rng::new(7);
            while !stop.load(Relaxed) {
                // Anything but the first page (the header: damage there is refused at open,
                // and the inspector is already open) and the regions' size.
                let at = 4096 + rng.below(len as u64 - 4096 - 8);
                let word = match rng.below(3) {
                    0 => rng.next(),
                    1 => rng.below(len as u64),
                    _ => 0,
                };
                f.write_all_at(&word.to_ne_bytes(), at & !7).unwrap();
            }
        });
        // A count of reports, not a time: a busy machine makes the test slower, not weaker.
        for _ in 0..REPORTS {
            // Torn or damaged, the report is only ever a report.
            let _ = top.report().unwrap().to_string();
        }
        stop.store(true, Relaxed);
        REPORTS
    });
    assert_eq!(reports, REPORTS);
}

/// With `lock-debug`, the report says where the holder took each lock and for how long
/// (`cargo test --test report --features lock-debug`).
#[cfg(feature = "lock-debug")]
#[test]
fn with_lock_debug_the_report_names_the_site_and_a_growing_hold_time() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let reg = region.alloc_zeroed::<Registrar>().unwrap();
    region.publish("registrar", &reg).unwrap();
    let holder = common::fork(|| hold_calls_and_stripe(&reg));
    wait_for(&reg.step, 1);
    let first = region.report();
    std::thread::sleep(Duration::from_millis(300));
    let second = region.report();
    let calls = |r: &lockkit::report::LockReport| {
        r.locks
            .iter()
            .find(|l| l.field == "calls")
            .cloned()
            .unwrap_or_else(|| panic!("{r}"))
    };
    let (a, b) = (calls(&first), calls(&second));
    // Where `hold_calls_and_stripe` calls the accessors (track_caller points at the method).
    let site_of = |call: &str| {
        let src = include_str!("report.rs");
        let (n, text) = src
            .lines()
            .enumerate()
            .find(|(_, l)| l.contains(&format!("= reg.{call}(")))
            .unwrap();
        format!("tests/report.rs:{}:{}", n + 1, text.find(call).unwrap() + 1)
    };
    assert_eq!(a.site, Some(site_of("lock_calls")), "{first}");
    let stripe = first
        .locks
        .iter()
        .find(|l| l.field == "stripes[3]")
        .unwrap();
    assert_eq!(stripe.site, Some(site_of("lock_per_aor")), "{first}");
    let (ha, hb) = (a.held_for.unwrap(), b.held_for.unwrap());
    assert!(hb >= ha + Duration::from_millis(250), "{ha:?} then {hb:?}");
    assert!(first.to_string().contains("tests/report.rs:"), "{first}");
    assert!(
        first.to_json().contains("\"held_ms\":"),
        "{}",
        first.to_json()
    );
    reg.step.store(2, Release);
    holder.join();
}

#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct Victim {
    a_long_field_name_that_leaves_room_for_the_hostile_text: u64,
}

/// Rewrites the type registry's description of `Victim` in the region's file with `text`.
fn rewrite_victims_description(name: &str, text: &[u8]) {
    use std::os::unix::fs::FileExt;
    let path = common::shm_path(name);
    let all = std::fs::read(&path).unwrap();
    let fp = <Victim as lockkit::ShmSafe>::LAYOUT
        .fingerprint()
        .to_le_bytes();
    // A registry entry is [fingerprint, length, digest (32 bytes), text], and a description
    // starts with a tab.
    let entry = (0..all.len() - 49)
        .find(|&p| all[p..p + 8] == fp && all[p + 48] == b'\t')
        .expect("the description is in the registry");
    let old_len = u64::from_le_bytes(all[entry + 8..entry + 16].try_into().unwrap());
    assert!(text.len() as u64 <= old_len, "the hostile text must fit");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&(text.len() as u64).to_le_bytes(), entry as u64 + 8)
        .unwrap();
    f.write_all_at(text, entry as u64 + 48).unwrap();
}

#[test]
fn a_description_damaged_to_claim_huge_or_far_locks_costs_a_bounded_report() {
    let (name, region) = named_region("hostile");
    let victims: Vec<_> = (0..200)
        .map(|_| {
            region
                .alloc(Victim {
                    a_long_field_name_that_leaves_room_for_the_hostile_text: 1,
                })
                .unwrap()
        })
        .collect();
    // A million locks in an 8-byte object (the scan used to expand them for every object
    // of the type: minutes), then a lock set at an offset near 2^64 (an overflow panic).
    let huge = b"\t0\t8\t8\tstruct\nx\t0\t8\t8\tarray of 1000000\nx[i]\t0\t8\t8\tlockkit::GenLock/1<futex>\n";
    let far = b"\t18446744073709551600\t64\t64\tlockkit::LockSetHead/1<futex>\n";
    for text in [&huge[..], &far[..]] {
        rewrite_victims_description(&name, text);
        let t0 = Instant::now();
        let report = region.report();
        assert_eq!(report.objects, 200, "{report}");
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the report took {:?}",
            t0.elapsed()
        );
    }
    drop(victims);
}
