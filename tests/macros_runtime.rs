//! The macros at run time: a #[shared_locked] table shared by forked processes, locked!
//! releasing on every way out of its block, the multi-lock form in opposite orders, and
//! group members destroyed by their group.

mod common;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::*};
use std::sync::Arc;

use common::{run_children, serial};
use lockkit::grp::{GrpLock, WeakGrpLock};
use lockkit::{grp_member, locked, shared_locked, GenLock, GenLockSet, ShmMutex, ShmRegion};

#[shared_locked]
pub struct CallTable {
    calls: GenLock,
    #[guarded_by(calls)]
    active: u64,
    #[guarded_by(calls)]
    total: u64,
    stripes: GenLockSet<8>,
    #[striped_by(stripes)]
    per_user: [u64; 32],
    max_active: AtomicU32,
}

const WORKERS: usize = 4;
const ROUNDS: u64 = 50_000;

#[test]
fn a_shared_locked_table_counts_exactly_across_forked_processes() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let table = region.alloc_zeroed::<CallTable>().unwrap();
    table.max_active.store(WORKERS as u32, Relaxed);
    run_children(WORKERS, |w| {
        for k in 0..ROUNDS {
            {
                let mut calls = table.lock_calls();
                calls.active += 1;
                // Read-modify-writes on plain u64s: only the lock keeps them exact.
                calls.total += 1;
                calls.active -= 1;
            }
            let user = (k as usize * 7 + w) % 32;
            *table.lock_per_user(user) += 1;
        }
        0
    });
    let calls = table.lock_calls();
    assert_eq!(calls.total, WORKERS as u64 * ROUNDS);
    assert_eq!(calls.active, 0);
    drop(calls);
    let per_user: u64 = (0..32).map(|u| *table.lock_per_user(u)).sum();
    assert_eq!(per_user, WORKERS as u64 * ROUNDS);
}

#[test]
fn the_generated_constructor_and_try_accessors_work() {
    let table = CallTable::new(5, 6, [1; 32], AtomicU32::new(9));
    assert_eq!(table.lock_calls().total, 6);
    let held = table.lock_calls();
    assert!(table.try_lock_calls().is_none());
    assert!(table
        .try_lock_calls_for(std::time::Duration::from_millis(10))
        .is_none());
    drop(held);
    let stripe = table.lock_per_user(3);
    assert!(table.try_lock_per_user(3 + 8).is_none(), "same stripe");
    assert_eq!(*table.try_lock_per_user(4).unwrap(), 1);
    drop(stripe);
}

#[test]
#[should_panic(expected = "per_user: index out of range: the index is 32 but the field has 32")]
fn a_striped_index_out_of_range_panics_naming_both() {
    let table = CallTable::new(0, 0, [0; 32], AtomicU32::new(0));
    let _g = table.lock_per_user(32);
}

fn early_return(lock: &GenLock, bail: bool) -> u32 {
    locked!(lock => {
        if bail {
            return 1;
        }
    });
    2
}

fn question_mark(m: &ShmMutex<u32>, input: &str) -> Result<u32, std::num::ParseIntError> {
    locked!(g = m => {
        *g += input.parse::<u32>()?;
        Ok(*g)
    })
}

#[test]
fn locked_releases_on_every_way_out_of_its_block() {
    let lock = GenLock::new();
    assert_eq!(early_return(&lock, true), 1);
    assert!(!lock.is_locked(), "after return");
    assert_eq!(early_return(&lock, false), 2);
    assert!(!lock.is_locked(), "after fallthrough");

    let m = ShmMutex::new(0u32);
    assert!(question_mark(&m, "x").is_err());
    assert!(!m.is_locked(), "after ?");
    assert_eq!(question_mark(&m, "5"), Ok(5));

    for i in 0..10 {
        locked!(lock => {
            if i == 3 {
                break;
            }
            if i % 2 == 0 {
                continue;
            }
        });
    }
    assert!(!lock.is_locked(), "after break and continue");

    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        locked!(g = m => {
            *g = 99;
            panic!("inside the block");
        })
    }));
    assert!(r.is_err());
    assert!(!m.is_locked(), "after a panic");
    assert_eq!(locked!(g = m => { *g }), 99);
}

fn question_mark_on_an_option(m: &ShmMutex<u32>, x: Option<u32>) -> Option<u32> {
    let v = locked!(g = m => { *g += x?; *g });
    Some(v)
}

fn question_mark_in_macro_arguments(m: &ShmMutex<u32>, s: &str) -> Result<Vec<u32>, String> {
    locked!(g = m => {
        let v = vec![s.parse::<u32>().map_err(|e| e.to_string())?, *g];
        let mut twice = vec![s.parse::<u32>().map_err(|e| e.to_string())?; 2];
        twice.push(0);
        assert_eq!(twice.len(), 3);
        assert!(v.len() == 2, "{}", s.parse::<u32>().map_err(|e| e.to_string())?);
        Ok(v)
    })
}

fn return_from_nested_blocks(a: &GenLock, m: &ShmMutex<u32>, stop: bool) -> u32 {
    locked!(a => {
        locked!(g = m => {
            if stop {
                return *g + 100;
            }
        });
    });
    7
}

/// The block of `locked!` runs in a closure (so `.await` cannot be written in it); every
/// jump written in it still leaves the block, to the same place as without the macro.
#[test]
fn every_jump_out_of_a_locked_block_lands_where_it_would_without_the_macro() {
    let m = ShmMutex::new(0u32);
    let lock = GenLock::new();
    assert_eq!(question_mark_on_an_option(&m, None), None);
    assert_eq!(question_mark_on_an_option(&m, Some(2)), Some(2));
    assert!(question_mark_in_macro_arguments(&m, "x").is_err());
    assert_eq!(question_mark_in_macro_arguments(&m, "5"), Ok(vec![5, 2]));
    assert_eq!(return_from_nested_blocks(&lock, &m, true), 102);
    assert_eq!(return_from_nested_blocks(&lock, &m, false), 7);
    assert!(!lock.is_locked() && !m.is_locked());

    // Labelled `break`/`continue` out of the block, and loops inside it that keep theirs.
    let mut seen = Vec::new();
    'outer: for i in 0..4 {
        for j in 0..4 {
            locked!(g = m => {
                if j == 2 {
                    continue 'outer;
                }
                if i == 3 {
                    break 'outer;
                }
                for k in 0.. {
                    if k == 1 {
                        break;
                    }
                }
                *g += 1;
            });
            seen.push((i, j));
        }
    }
    assert_eq!(seen, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]);
    assert!(!m.is_locked(), "after labelled jumps");

    // `break` with a value out of a `loop`, and out of a labelled block.
    let mut rounds = 0;
    let doubled = loop {
        rounds += 1;
        locked!(g = m => {
            if rounds == 2 {
                break *g * 2;
            }
        });
    };
    assert_eq!(doubled, 16);
    let which = 'found: {
        locked!(m => {
            if doubled > 0 {
                break 'found "early";
            }
        });
        "late"
    };
    assert_eq!(which, "early");
    assert!(!m.is_locked(), "after break with a value");

    // A loop inside the block keeps its `break`, also from a nested `locked!`.
    let inner_rounds = locked!(lock => {
        let mut rounds = 0;
        for i in 0..5 {
            locked!(m => {
                if i == 2 {
                    break;
                }
            });
            rounds += 1;
        }
        rounds
    });
    assert_eq!(inner_rounds, 2);

    // The multi-lock and `try` forms carry jumps the same way.
    let multi = || -> Result<u32, String> {
        locked!(x = m, lock => {
            if *x > 100 {
                return Err("too big".into());
            }
            Ok(*x)
        })
    };
    assert_eq!(multi(), Ok(8));
    let tried = || -> Option<u32> {
        let v = locked!(try g = m => { Some(*g)? } else { return None });
        Some(v + 1)
    };
    assert_eq!(tried(), Some(9));
    assert!(!lock.is_locked() && !m.is_locked());
}

#[test]
fn locked_try_runs_the_else_block_while_the_lock_is_busy() {
    let m = ShmMutex::new(1u32);
    let held = m.lock();
    let v = std::thread::scope(|s| {
        s.spawn(|| locked!(try g = m => { *g } else { 0 }))
            .join()
            .unwrap()
    });
    assert_eq!(v, 0);
    drop(held);
    assert_eq!(locked!(try g = m => { *g + 1 } else { 0 }), 2);
    assert!(!m.is_locked());
}

#[test]
fn locked_takes_lock_set_entries_by_index() {
    let set = GenLockSet::<4>::new();
    locked!(set[2] => {
        assert!(set[2].is_locked());
        assert!(!set[1].is_locked());
    });
    assert!(!set[2].is_locked());
}

#[test]
fn many_locks_named_in_opposite_orders_do_not_deadlock() {
    let a = GenLock::new();
    let b = GenLock::new();
    let m = ShmMutex::new(0u64);
    let n = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..10_000 {
                locked!(a, b, m => {
                    n.store(n.load(Relaxed) + 1, Relaxed);
                });
            }
        });
        s.spawn(|| {
            for _ in 0..10_000 {
                locked!(m, b, a => {
                    assert!(a.is_locked() && b.is_locked() && m.is_locked());
                    n.store(n.load(Relaxed) + 1, Relaxed);
                });
            }
        });
    });
    assert_eq!(n.load(Relaxed), 20_000);
    assert!(!a.is_locked() && !b.is_locked() && !m.is_locked());
}

#[test]
#[should_panic(expected = "is named twice")]
fn naming_one_lock_twice_panics_instead_of_deadlocking() {
    let a = GenLock::new();
    locked!(a, a => {});
}

#[grp_member(on_destroy = finish)]
struct Transaction {
    #[grp]
    dialog: WeakGrpLock,
    retries: u32,
    finished: Arc<AtomicUsize>,
}

impl Transaction {
    fn finish(&mut self) {
        // The group is gone by now: the weak reference no longer upgrades.
        assert!(self.dialog.upgrade().is_none());
        self.finished.fetch_add(1, SeqCst);
    }
}

#[test]
fn a_member_is_destroyed_by_its_group_exactly_once_and_not_before() {
    let finished = Arc::new(AtomicUsize::new(0));
    let dialog = GrpLock::new();
    let tsx = Transaction {
        dialog: WeakGrpLock::new(),
        retries: 0,
        finished: finished.clone(),
    }
    .join(&dialog);
    assert_eq!(dialog.get_ref(), 2, "the member's handle holds a reference");
    locked!(t = tsx => { t.retries += 1 });
    assert_eq!(tsx.lock().retries, 1);
    assert!(
        tsx.lock().dialog.upgrade().is_some(),
        "join filled in the #[grp] field"
    );
    drop(tsx);
    assert_eq!(finished.load(SeqCst), 0, "the dialog still holds it");
    drop(dialog);
    assert_eq!(finished.load(SeqCst), 1);
}

#[test]
fn a_member_that_leaves_early_is_not_destroyed_by_the_group() {
    let finished = Arc::new(AtomicUsize::new(0));
    let dialog = GrpLock::new();
    let tsx = Transaction {
        dialog: WeakGrpLock::new(),
        retries: 7,
        finished: finished.clone(),
    }
    .join(&dialog);
    let back = tsx.leave();
    assert_eq!(back.retries, 7);
    assert_eq!(dialog.get_ref(), 1, "its reference was given back");
    assert_eq!(dialog.handler_count(), 0, "its handler was removed");
    drop(dialog);
    assert_eq!(finished.load(SeqCst), 0);
}

#[test]
fn member_state_is_reached_under_the_group_lock() {
    let dialog = GrpLock::new();
    let tsx = Transaction {
        dialog: WeakGrpLock::new(),
        retries: 0,
        finished: Arc::new(AtomicUsize::new(0)),
    }
    .join(&dialog);
    let g = tsx.lock();
    assert!(dialog.is_held_by_current_thread());
    let other = std::thread::scope(|s| s.spawn(|| tsx.try_lock().is_none()).join().unwrap());
    assert!(other, "another thread waits for the group");
    drop(g);
    locked!(dialog => {
        // The group lock is recursive; the member's guard nests inside it.
        tsx.lock().retries += 1;
    });
    assert_eq!(tsx.lock().retries, 1);
}

#[test]
fn locked_accepts_a_lock_returned_by_a_call() {
    let locks = [ShmMutex::new(1u32), ShmMutex::new(2u32)];
    let pick = |i: usize| &locks[i];
    assert_eq!(locked!(g = pick(1) => { *g }), 2);
    assert_eq!(locked!(try g = pick(0) => { *g } else { 0 }), 1);
    locked!(pick(0), pick(1) => {
        assert!(locks[0].is_locked() && locks[1].is_locked());
    });
}

#[shared_locked]
struct SpinTable {
    lock: GenLock<lockkit::raw::Spin>,
    #[guarded_by(lock)]
    n: u64,
    stripes: GenLockSet<2, lockkit::raw::PosixSem>,
    #[striped_by(stripes)]
    cells: [u32; 4],
}

#[test]
fn shared_locked_keeps_the_backend_its_locks_were_declared_with() {
    let t = SpinTable::new(1, [0; 4]);
    t.lock_lock().n += 1;
    *t.lock_cells(3) += 2;
    assert_eq!(t.lock_lock().n, 2);
    assert_eq!(*t.lock_cells(3), 2);
    let _: &lockkit::ShmMutex<SpinTableLockFields, lockkit::raw::Spin> = &t.lock;
}

#[test]
fn a_panic_taking_the_second_lock_releases_the_first() {
    let a = GenLock::new();
    let b = GenLock::new();
    // The locks are taken in address order: hold the later one, so the earlier one is taken
    // first and taking the later one panics ("already holds").
    let (first, second) = if (&a as *const GenLock) < (&b as *const GenLock) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let held = second.lock();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        locked!(a, b => {});
    }));
    assert!(r.is_err(), "taking a lock this thread holds panics");
    drop(held);
    assert!(
        !first.is_locked(),
        "the first lock was left held after the panic"
    );
    assert!(!second.is_locked());
}

#[test]
fn a_tail_temporary_borrowing_the_lent_data_ends_inside_the_block() {
    // Edition 2021: the temporary guard of `*o.lock()` must be dropped before the outer
    // guard, or this does not compile (E0716).
    let outer = ShmMutex::new(ShmMutex::new(7u64));
    let v = locked!(o = outer => { *o.lock() });
    assert_eq!(v, 7);
    assert!(!outer.is_locked());
}

/// The `file:line` a panic inside `f` reports (its `#[track_caller]` location).
fn panic_location(f: impl FnOnce() + Send + 'static) -> String {
    use std::sync::Mutex;
    type Hook = dyn Fn(&std::panic::PanicHookInfo<'_>) + Send + Sync;
    let prev: Arc<Hook> = Arc::from(std::panic::take_hook());
    let seen = Arc::new(Mutex::new(None::<String>));
    let (fwd, out) = (prev.clone(), seen.clone());
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("panic-location") {
            *out.lock().unwrap() = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()));
        } else {
            fwd(info);
        }
    }));
    let r = std::thread::Builder::new()
        .name("panic-location".into())
        .spawn(f)
        .unwrap()
        .join();
    drop(std::panic::take_hook());
    std::panic::set_hook(Box::new(move |info| prev(info)));
    assert!(r.is_err(), "expected a panic");
    let loc = seen.lock().unwrap().take();
    loc.expect("the hook saw the panic")
}

#[test]
fn a_lock_named_twice_panics_at_the_users_line() {
    let line = line!() + 3;
    let loc = panic_location(|| {
        let a = GenLock::new();
        locked!(a, a => {});
    });
    assert_eq!(loc, format!("tests/macros_runtime.rs:{line}"));
}

#[test]
fn a_striped_index_out_of_range_panics_at_the_users_line() {
    let line = line!() + 3;
    let loc = panic_location(|| {
        let table = CallTable::new(0, 0, [0; 32], AtomicU32::new(0));
        let _g = table.lock_per_user(32);
    });
    assert_eq!(loc, format!("tests/macros_runtime.rs:{line}"));
}

#[test]
fn several_locks_each_lend_their_data() {
    let a = ShmMutex::new(0u64);
    let b = ShmMutex::new(0u64);
    let table = CallTable::new(0, 0, [0; 32], AtomicU32::new(0));
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..5_000 {
                locked!(x = a, y = b, c = table.calls => {
                    *x += 1;
                    *y += 2;
                    c.total += 1;
                });
            }
        });
        s.spawn(|| {
            for _ in 0..5_000 {
                // The opposite order: the same global order is used.
                locked!(c = table.calls, y = b, x = a => {
                    *x += 1;
                    *y += 2;
                    c.total += 1;
                });
            }
        });
    });
    assert_eq!(*a.lock(), 10_000);
    assert_eq!(*b.lock(), 20_000);
    assert_eq!(table.lock_calls().total, 10_000);
    assert!(!a.is_locked() && !b.is_locked());
}

#[test]
fn read_and_write_forms_take_an_rwlock_as_written() {
    let rw = lockkit::RwLock::new(1u32);
    locked!(write w = rw => { *w += 1 });
    let r = locked!(read r = rw => {
        // Readers share: another reader gets in, a writer does not.
        let other_reader = locked!(try read o = rw => { *o } else { 0 });
        let writer = locked!(try write w = rw => { *w } else { 0 });
        (*r, other_reader, writer)
    });
    assert_eq!(r, (2, 2, 0));
    assert!(rw.try_write().is_some(), "every guard was released");
}

#[test]
fn try_for_runs_the_else_block_when_the_wait_runs_out() {
    use std::time::{Duration, Instant};
    let m = ShmMutex::new(5u32);
    let held = m.lock();
    let (v, waited) = std::thread::scope(|s| {
        s.spawn(|| {
            let t = Instant::now();
            let v = locked!(try_for(Duration::from_millis(30)) g = m => { *g } else { 0 });
            (v, t.elapsed())
        })
        .join()
        .unwrap()
    });
    assert_eq!(v, 0);
    assert!(
        waited >= Duration::from_millis(30),
        "gave up after {waited:?}"
    );
    drop(held);
    assert_eq!(
        locked!(try_for(Duration::from_millis(30)) g = m => { *g } else { 0 }),
        5
    );
}

#[test]
fn a_rec_lock_is_taken_again_by_its_holder() {
    let rec = lockkit::RecLock::new();
    let depth = locked!(g = rec => {
        let _ = g;
        locked!(rec => { rec.depth() })
    });
    assert_eq!(depth, 2);
    assert!(!rec.is_locked());
}

#[test]
fn a_striped_timed_accessor_gives_up_while_the_stripe_is_busy() {
    let table = CallTable::new(0, 0, [4; 32], AtomicU32::new(0));
    let held = table.lock_per_user(1);
    let busy = std::thread::scope(|s| {
        s.spawn(|| {
            table
                .try_lock_per_user_for(1 + 8, std::time::Duration::from_millis(10))
                .is_none()
        })
        .join()
        .unwrap()
    });
    assert!(busy, "element 9 shares stripe 1 with element 1");
    drop(held);
    assert_eq!(
        *table
            .try_lock_per_user_for(9, std::time::Duration::from_millis(10))
            .unwrap(),
        4
    );
}

#[shared_locked]
#[derive(Debug)]
struct Printable {
    stripes: GenLockSet<2>,
    #[striped_by(stripes)]
    cells: [u32; 4],
}

#[test]
fn a_struct_with_a_striped_field_derives_debug_without_taking_locks() {
    let p = Printable::new([1; 4]);
    let _held = p.lock_cells(0);
    let text = format!("{p:?}");
    assert!(text.contains("cells: Striped { .. }"), "{text}");
}

/// Waits for `children` until `deadline`; kills the ones still running then, and returns
/// each exit code (`None` for one that had to be killed).
fn join_by(children: Vec<common::Child>, deadline: std::time::Instant) -> Vec<Option<i32>> {
    let pids: Vec<libc::pid_t> = children.iter().map(|c| c.pid() as libc::pid_t).collect();
    // The handles are only pids; waiting is done here, with a deadline.
    std::mem::forget(children);
    let mut codes = vec![None; pids.len()];
    let mut done = vec![false; pids.len()];
    while done.iter().any(|d| !d) && std::time::Instant::now() < deadline {
        for (i, &pid) in pids.iter().enumerate() {
            if done[i] {
                continue;
            }
            let mut status = 0;
            // SAFETY: polling our own child with a valid status pointer.
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                done[i] = true;
                codes[i] = Some(if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                });
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for (i, &pid) in pids.iter().enumerate() {
        if !done[i] {
            // SAFETY: killing and reaping our own child, which is stuck.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
    codes
}

#[test]
fn processes_that_mapped_two_regions_in_opposite_orders_take_their_locks_in_one_order() {
    let _s = serial();
    let pid = std::process::id();
    let (n1, n2) = (
        format!("/lockkit-order-1-{pid}"),
        format!("/lockkit-order-2-{pid}"),
    );
    let r1 = ShmRegion::create(&n1, 1 << 16).unwrap();
    let r2 = ShmRegion::create(&n2, 1 << 16).unwrap();
    r1.publish("lock", &r1.alloc(GenLock::new()).unwrap())
        .unwrap();
    r2.publish("lock", &r2.alloc(GenLock::new()).unwrap())
        .unwrap();
    // Both children start together, or one may finish before the other begins.
    let shared = ShmRegion::anonymous(1 << 16).unwrap();
    let ready = shared.alloc(AtomicU32::new(0)).unwrap();
    let ready = &*ready;
    let work = |first: String, second: String| {
        move || {
            // Fresh mappings, in this child's order: mmap places the later one lower, so
            // the two children see the two locks' addresses in opposite orders.
            let a = ShmRegion::open(&first).unwrap();
            let b = ShmRegion::open(&second).unwrap();
            let la = a.lookup::<GenLock>("lock").unwrap();
            let lb = b.lookup::<GenLock>("lock").unwrap();
            ready.fetch_add(1, SeqCst);
            let t = std::time::Instant::now();
            while ready.load(SeqCst) < 2 {
                assert!(
                    t.elapsed() < std::time::Duration::from_secs(5),
                    "no partner"
                );
                std::hint::spin_loop();
            }
            for _ in 0..200_000 {
                locked!(la, lb => {});
            }
            std::mem::forget((a, b));
            0
        }
    };
    let children = vec![
        common::fork(work(n1.clone(), n2.clone())),
        common::fork(work(n2.clone(), n1.clone())),
    ];
    let codes = join_by(
        children,
        std::time::Instant::now() + std::time::Duration::from_secs(10),
    );
    drop((r1, r2));
    assert_eq!(
        codes,
        vec![Some(0), Some(0)],
        "the two processes deadlocked (None: killed after 10 s) or failed"
    );
}

#[test]
#[should_panic(expected = "is named twice")]
fn one_lock_reached_through_two_mappings_is_named_twice() {
    let name = format!("/lockkit-twice-{}", std::process::id());
    let created = ShmRegion::create(&name, 1 << 16).unwrap();
    created
        .publish("lock", &created.alloc(GenLock::new()).unwrap())
        .unwrap();
    let again = ShmRegion::open(&name).unwrap();
    let (a, b) = (
        created.lookup::<GenLock>("lock").unwrap(),
        again.lookup::<GenLock>("lock").unwrap(),
    );
    assert_ne!(a as *const GenLock, b as *const GenLock, "two mappings");
    locked!(a, b => {});
}

#[test]
fn a_destroyed_group_after_a_lock_leaves_that_lock_released() {
    // Locks in a region are taken before process-local ones (the group), so `a` is taken
    // first and taking the destroyed group then panics.
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let a = region.alloc(GenLock::new()).unwrap();
    let group = GrpLock::new();
    group.force_destroy().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        locked!(a, group => {});
    }));
    assert!(r.is_err(), "a destroyed group cannot be taken");
    assert!(
        !a.is_locked(),
        "the lock taken before the group was left held"
    );
}
