//! The group lock under traffic in PJSIP's shapes, with chain edits, replace and
//! force_destroy going on meanwhile. Every wait has a deadline; counts must be exact.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use lockkit::grp::{ChainLock, Destroyed, GrpLock, GrpMember, Member, SetEntry, WeakGrpLock};
use lockkit::{GenLock, RecLock, RwLock, ShmRegion};

/// Joins `handles`, failing the test if they are not all done within `secs` seconds.
fn join_all<T: Send + 'static>(
    what: &str,
    secs: u64,
    handles: Vec<std::thread::JoinHandle<T>>,
) -> Vec<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        let _ = tx.send(r);
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(results) => results
            .into_iter()
            .map(|r| r.unwrap_or_else(|p| resume_unwind(p)))
            .collect(),
        Err(_) => panic!("{what}: threads still running after {secs} s: a hang"),
    }
}

/// A counter only the group's holder touches: a plain load and store, so a lost
/// exclusion loses counts.
struct Unguarded(AtomicU64);
impl Unguarded {
    fn bump(&self) {
        self.0.store(self.0.load(Relaxed) + 1, Relaxed);
    }
}

fn probe_free(l: &dyn ChainLock) -> bool {
    let ok = l.chain_try_acquire();
    if ok {
        // SAFETY: taken just above by this thread.
        unsafe { l.chain_release() };
    }
    ok
}

#[test]
fn lockers_try_lockers_and_a_chain_editor_count_exactly() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let group = GrpLock::new();
    let other = GrpLock::new();
    let locks: Vec<Arc<dyn ChainLock>> = vec![
        Arc::new(region.alloc(GenLock::new()).unwrap()),
        Arc::new(SetEntry::new(
            Arc::new(region.alloc_lock_set(4).unwrap()),
            2,
        )),
        Arc::new(other.clone()),
        Arc::new(RecLock::new()),
        Arc::new(RwLock::new(0u32)),
    ];
    let n = Arc::new(Unguarded(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for i in 0..4 {
        let (group, other, n, stop) = (group.clone(), other.clone(), n.clone(), stop.clone());
        handles.push(std::thread::spawn(move || {
            let mut mine = 0u64;
            while !stop.load(Relaxed) {
                match i {
                    // Plain and recursive lockers.
                    0 | 1 => {
                        let g = group.lock();
                        if matches!(mine % 7, 0) {
                            let _again = group.lock();
                            n.bump();
                        } else {
                            n.bump();
                        }
                        drop(g);
                    }
                    // A try-locker.
                    2 => {
                        let g = if matches!(mine % 2, 0) {
                            group.try_lock()
                        } else {
                            group.try_lock_for(Duration::from_micros(200))
                        };
                        match g {
                            Some(_g) => n.bump(),
                            None => continue,
                        }
                    }
                    // Takes the other group first (sometimes chained to this one), then this.
                    _ => {
                        let _o = other.lock();
                        let _g = group.lock();
                        n.bump();
                    }
                }
                mine += 1;
            }
            mine
        }));
    }
    // The chain editor: chains and unchains every lock at changing positions.
    let editor = {
        let (group, stop) = (group.clone(), stop.clone());
        let locks = locks.clone();
        std::thread::spawn(move || {
            let mut round = 0i32;
            while !stop.load(Relaxed) {
                for (k, l) in locks.iter().enumerate() {
                    let pos = if (round + k as i32) % 2 == 0 {
                        -1 - k as i32
                    } else {
                        1 + k as i32
                    };
                    group.chain_lock(l.clone(), pos).unwrap();
                }
                for l in locks.iter().rev() {
                    assert!(group.unchain_lock(l));
                }
                round += 1;
            }
            0
        })
    };
    handles.push(editor);
    std::thread::sleep(Duration::from_millis(1500));
    // And until the lockers got through at least once (a busy machine may not have run them
    // yet); the deadline only catches a hang.
    let t0 = Instant::now();
    while n.0.load(Relaxed) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no locker got through in 60 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Relaxed);
    let counts = join_all("lockers", 30, handles);
    let total: u64 = counts.iter().sum();
    assert!(total > 0);
    assert_eq!(
        n.0.load(Relaxed),
        total,
        "a count was lost: exclusion failed"
    );
    assert_eq!(group.chain_order(), vec![0]);
    for l in &locks {
        assert!(probe_free(&**l), "a chained lock was left held");
    }
    assert!(group.try_lock().is_some() && other.try_lock().is_some());
}

struct Call {
    group: WeakGrpLock,
    n: u64,
    destroyed: Arc<AtomicUsize>,
}
impl GrpMember for Call {
    fn on_destroy(&mut self) {
        self.destroyed.fetch_add(1, SeqCst);
    }
    fn set_group(&mut self, g: WeakGrpLock) {
        self.group = g;
    }
}

#[test]
fn members_keep_counting_exactly_while_their_group_is_replaced_again_and_again() {
    let destroyed = Arc::new(AtomicUsize::new(0));
    let first = GrpLock::new();
    let call = Arc::new(Member::join(
        &first,
        Call {
            group: WeakGrpLock::new(),
            n: 0,
            destroyed: destroyed.clone(),
        },
    ));
    let app = Arc::new(GenLock::new());
    first.chain_lock(app.clone(), -1).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (call, stop) = (call.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut mine = 0u64;
                while !stop.load(Relaxed) {
                    call.lock().n += 1;
                    mine += 1;
                }
                mine
            })
        })
        .collect();
    // Replace the group behind the member, over and over; each new group chains the app lock.
    let mut current = first;
    let mut replaced = 0;
    // For a while, and until at least one replacement went through (a busy machine may keep
    // the old group held for all of the while); the hang deadline is generous.
    let (t0, hang) = (Instant::now(), Duration::from_secs(60));
    while t0.elapsed() < Duration::from_millis(1500) || replaced == 0 {
        assert!(
            t0.elapsed() < hang,
            "no replacement went through in {hang:?}"
        );
        let next = GrpLock::new();
        next.chain_lock(app.clone(), -1).unwrap();
        match GrpLock::replace(&current, &next) {
            Ok(()) => {
                replaced += 1;
                current = next;
            }
            Err(lockkit::grp::ReplaceError::OldGroupHeld) => std::thread::yield_now(),
            Err(e) => panic!("replace: {e}"),
        }
    }
    stop.store(true, Relaxed);
    let total: u64 = join_all("members", 30, workers).iter().sum();
    assert!(replaced > 0, "never replaced");
    assert_eq!(
        call.lock().n,
        total,
        "an increment was lost across a replace"
    );
    assert!(!app.is_locked());
    drop(call);
    assert_eq!(
        destroyed.load(SeqCst),
        0,
        "destroyed while a group still holds it"
    );
    drop(current);
    assert_eq!(destroyed.load(SeqCst), 1);
}

#[test]
fn force_destroy_under_traffic_ends_every_locker_and_leaves_no_lock_held() {
    for _ in 0..20 {
        let ran = Arc::new(AtomicUsize::new(0));
        let group = GrpLock::new();
        let r = ran.clone();
        group.add_handler(move || {
            r.fetch_add(1, SeqCst);
        });
        let before = Arc::new(GenLock::new());
        let after = Arc::new(GenLock::new());
        group.chain_lock(before.clone(), -1).unwrap();
        group.chain_lock(after.clone(), 1).unwrap();
        let n = Arc::new(Unguarded(AtomicU64::new(0)));
        let lockers: Vec<_> = (0..4)
            .map(|i| {
                let (group, n) = (group.clone(), n.clone());
                std::thread::spawn(move || {
                    let mut mine = 0u64;
                    loop {
                        let got = if i == 0 {
                            // `lock` tells a destroyed group with its documented panic.
                            catch_unwind(AssertUnwindSafe(|| {
                                let _g = group.lock();
                                n.bump();
                            }))
                            .map_err(|_| Destroyed)
                        } else {
                            group.lock_alive().map(|_g| n.bump())
                        };
                        match got {
                            Ok(()) => mine += 1,
                            Err(Destroyed) => return mine,
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(5));
        group.force_destroy().unwrap();
        let total: u64 = join_all("lockers", 30, lockers).iter().sum();
        assert_eq!(n.0.load(Relaxed), total);
        assert_eq!(ran.load(SeqCst), 1);
        assert!(!before.is_locked() && !after.is_locked());
    }
}
