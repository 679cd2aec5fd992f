//! One test per defect of issue 11 (the group lock's review): each failed on the code before
//! the fix (by assertion or by deadline, never by hanging) and passes after it.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use lockkit::grp::{ChainLock, GrpLock, GrpMember, Member, WeakGrpLock};
use lockkit::GenLock;

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn dyn_lock(l: &Arc<GenLock>) -> Arc<dyn ChainLock> {
    l.clone()
}

fn group_link(g: &GrpLock) -> Arc<dyn ChainLock> {
    Arc::new(g.clone())
}

/// Runs `f` on its own thread and returns its result, failing the test if it is not done
/// within `secs` seconds (a hung thread is left behind; the test fails instead of hanging).
fn within<T: Send + 'static>(what: &str, secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => resume_unwind(p),
        Err(_) => panic!("{what}: not done after {secs} s: it hangs"),
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Whether another thread can take `group` right now (a probe that never blocks).
fn free_for_others(group: &GrpLock) -> bool {
    let g = group.clone();
    within("probe", 10, move || g.try_lock().is_some())
}

// ---- 1. force_destroy while the caller holds the group -------------------------------------

#[test]
fn force_destroy_is_refused_while_the_calling_thread_holds_the_group() {
    let ran = counter();
    let group = GrpLock::new();
    let r = ran.clone();
    group.add_handler(move || {
        r.fetch_add(1, SeqCst);
    });
    let g = group.lock();
    let refused = catch_unwind(AssertUnwindSafe(|| group.force_destroy()));
    assert_eq!(
        ran.load(SeqCst),
        0,
        "the handlers ran under the caller's feet"
    );
    assert!(!group.is_destroyed());
    assert!(group.is_held_by_current_thread(), "{refused:?}");
    drop(g);
    drop(group);
    assert_eq!(ran.load(SeqCst), 1);
}

struct Tsx {
    group: WeakGrpLock,
    branch: Vec<u8>,
}
impl GrpMember for Tsx {
    fn set_group(&mut self, g: WeakGrpLock) {
        self.group = g;
    }
}

#[test]
fn force_destroy_is_refused_while_a_member_is_lent_and_the_member_stays_usable() {
    let dialog = GrpLock::new();
    let tsx = Member::join(
        &dialog,
        Tsx {
            group: WeakGrpLock::new(),
            branch: vec![1, 2, 3],
        },
    );
    let mut t = tsx.lock();
    let _ = catch_unwind(AssertUnwindSafe(|| dialog.force_destroy()));
    // Before the fix the member was dropped here, and this was a use-after-free.
    assert_eq!(
        t.branch,
        vec![1, 2, 3],
        "the member was destroyed while lent"
    );
    t.branch.push(4);
    assert!(t.group.upgrade().is_some());
    drop(t);
    assert_eq!(tsx.lock().branch, vec![1, 2, 3, 4]);
}

/// The issue's own reproduction: `force_destroy` inside `locked!` on a `#[grp_member]`,
/// then a use of the member. It was `free(): invalid next size` (the member dropped under
/// the block); the destroy is refused now and the member is intact.
#[lockkit::grp_member]
struct Branchy {
    #[grp]
    dialog: WeakGrpLock,
    branch: Vec<u8>,
}

#[test]
fn force_destroy_inside_locked_on_a_member_is_refused_and_the_member_stays_valid() {
    let dialog = GrpLock::new();
    let tsx = Branchy {
        dialog: WeakGrpLock::new(),
        branch: vec![1, 2, 3],
    }
    .join(&dialog);
    let destroyed = lockkit::locked!(t = tsx => {
        let _ = catch_unwind(AssertUnwindSafe(|| dialog.force_destroy()));
        let destroyed = dialog.is_destroyed();
        if !destroyed {
            // Before the fix, this was the use-after-free.
            t.branch.push(4);
        }
        destroyed
    });
    assert!(
        !destroyed,
        "force_destroy went ahead while a member was lent"
    );
    assert_eq!(tsx.lock().branch, vec![1, 2, 3, 4]);
    assert!(!dialog.is_destroyed());
}

// ---- 2. &mut Hold kept across a re-entrant acquire -----------------------------------------

#[test]
fn chaining_a_group_that_chains_the_holder_changes_nothing_and_leaves_nothing_held() {
    let a = GrpLock::new();
    let b = GrpLock::new();
    b.chain_lock(group_link(&a), 1).unwrap();
    let g = a.lock();
    let r = a.chain_lock(group_link(&b), 1);
    assert!(r.is_err(), "a chain b -> a -> b was accepted");
    assert_eq!(a.depth(), 1, "the refused chain_lock left a level held");
    drop(g);
    assert!(
        !a.is_held_by_current_thread(),
        "a stays held after its guard"
    );
    assert!(free_for_others(&a) && free_for_others(&b));
}

// ---- 3. cycles -------------------------------------------------------------------------------

#[test]
fn chaining_groups_into_a_cycle_is_refused_and_both_still_lock_and_die() {
    let ran = counter();
    let (a, b, c) = (GrpLock::new(), GrpLock::new(), GrpLock::new());
    for g in [&a, &b, &c] {
        let r = ran.clone();
        g.add_handler(move || {
            r.fetch_add(1, SeqCst);
        });
    }
    a.chain_lock(group_link(&b), 1).unwrap();
    assert!(b.chain_lock(group_link(&a), 1).is_err(), "a <-> b accepted");
    b.chain_lock(group_link(&c), -1).unwrap();
    assert!(
        c.chain_lock(group_link(&a), 2).is_err(),
        "a -> b -> c -> a accepted"
    );
    let g = a.lock();
    assert!(b.is_held_by_current_thread() && c.is_held_by_current_thread());
    drop(g);
    drop((a, b, c));
    assert_eq!(ran.load(SeqCst), 3, "a group of the cycle leaked");
}

#[test]
fn two_threads_chaining_two_groups_to_each_other_at_once_make_no_cycle() {
    for _ in 0..200 {
        let (a, b) = (GrpLock::new(), GrpLock::new());
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let t = {
            let (a, b, barrier) = (a.clone(), b.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                b.chain_lock(group_link(&a), 1).is_ok()
            })
        };
        barrier.wait();
        let mine = a.chain_lock(group_link(&b), 1).is_ok();
        let theirs = t.join().unwrap();
        assert!(mine != theirs, "exactly one of the two may succeed");
        // And locking either terminates.
        drop(a.lock());
        drop(b.lock());
    }
}

// ---- 4. a destroyed group in a chain; panic safety -------------------------------------------

#[test]
fn a_force_destroyed_group_in_a_chain_is_dropped_and_its_parent_still_locks() {
    let a = GrpLock::new();
    let l = Arc::new(GenLock::new());
    let b = GrpLock::new();
    a.chain_lock(dyn_lock(&l), -1).unwrap();
    let b_link = group_link(&b);
    a.chain_lock(b_link.clone(), 1).unwrap();
    let _ = b.force_destroy();
    assert!(b.is_destroyed());
    let locked = catch_unwind(AssertUnwindSafe(|| {
        let g = a.lock();
        assert!(l.is_locked());
        drop(g);
    }));
    assert!(locked.is_ok(), "locking the parent panicked");
    assert!(!l.is_locked(), "the chained GenLock was left locked");
    let tried = catch_unwind(AssertUnwindSafe(|| a.try_lock().is_some()));
    assert!(matches!(tried, Ok(true)), "try_lock: {tried:?}");
    let unchained = catch_unwind(AssertUnwindSafe(|| a.unchain_lock(&b_link)));
    assert!(unchained.is_ok(), "unchain_lock panicked");
    assert_eq!(
        a.chain_order(),
        vec![-1, 0],
        "the dead group is out of the chain"
    );
    assert!(free_for_others(&a));
}

#[test]
fn a_replaced_group_in_a_chain_is_followed_to_its_replacement() {
    let a = GrpLock::new();
    let l = Arc::new(GenLock::new());
    let b = GrpLock::new();
    let b2 = GrpLock::new();
    a.chain_lock(dyn_lock(&l), -1).unwrap();
    let b_link = group_link(&b);
    a.chain_lock(b_link.clone(), 1).unwrap();
    GrpLock::replace(&b, &b2).unwrap();
    let locked = catch_unwind(AssertUnwindSafe(|| {
        let g = a.lock();
        let both = l.is_locked() && b2.is_held_by_current_thread();
        drop(g);
        both
    }));
    assert!(matches!(locked, Ok(true)), "{locked:?}");
    assert!(!l.is_locked() && !b2.is_held_by_current_thread());
    assert!(free_for_others(&b2));
    assert!(catch_unwind(AssertUnwindSafe(|| a.unchain_lock(&b_link))).is_ok());
}

/// A chained lock whose acquisition panics while armed.
struct Bomb(AtomicBool);
// SAFETY: takes nothing, so releases nothing.
unsafe impl ChainLock for Bomb {
    fn chain_acquire(&self) {
        assert!(!self.0.load(SeqCst), "bomb");
    }
    fn chain_try_acquire(&self) -> bool {
        assert!(!self.0.load(SeqCst), "bomb");
        true
    }
    unsafe fn chain_release(&self) {}
}

#[test]
fn a_panic_inside_the_chain_walk_releases_every_lock_taken_so_far() {
    let group = GrpLock::new();
    let early = Arc::new(GenLock::new());
    let late = Arc::new(GenLock::new());
    let bomb = Arc::new(Bomb(AtomicBool::new(false)));
    group.chain_lock(dyn_lock(&early), -1).unwrap();
    group.chain_lock(dyn_lock(&late), 1).unwrap();
    group.chain_lock(bomb.clone(), 2).unwrap();
    bomb.0.store(true, SeqCst);
    assert!(catch_unwind(AssertUnwindSafe(|| group.lock())).is_err());
    assert!(
        !early.is_locked() && !late.is_locked(),
        "a lock stayed held"
    );
    assert!(!group.is_held_by_current_thread());
    assert!(catch_unwind(AssertUnwindSafe(|| group.try_lock())).is_err());
    assert!(
        !early.is_locked() && !late.is_locked(),
        "a lock stayed held"
    );
    bomb.0.store(false, SeqCst);
    assert!(free_for_others(&group), "the group's own lock stayed held");
}

// ---- 5. chain_lock while holding -------------------------------------------------------------

#[test]
fn chain_lock_by_the_holder_never_waits_for_a_lock_whose_holder_waits_for_the_group() {
    let group = GrpLock::new();
    let l = Arc::new(GenLock::new());
    let (held_tx, held_rx) = mpsc::channel();
    // The holder: takes the group, lets another thread take L and wait for the group,
    // then chains L.
    let holder = {
        let (group, l) = (group.clone(), l.clone());
        std::thread::spawn(move || {
            let g = group.lock();
            let waiter = {
                let (group, l) = (group.clone(), l.clone());
                std::thread::spawn(move || {
                    let _l = l.lock();
                    held_tx.send(()).unwrap();
                    drop(group.lock());
                })
            };
            held_rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(50));
            // Chaining L now must not wait for it: its holder waits for us.
            let chained = group.chain_lock(l as Arc<dyn ChainLock>, 1).is_ok();
            let order = group.chain_order();
            drop(g);
            (chained, order, waiter)
        })
    };
    let (chained, order, waiter) = within("chain_lock while holding", 10, move || {
        holder.join().unwrap()
    });
    assert!(
        !chained,
        "chained a lock held by a thread that waits for the group"
    );
    assert_eq!(order, vec![0], "nothing changed");
    within("the waiter", 10, move || waiter.join().unwrap());
    group.chain_lock(dyn_lock(&l), 1).unwrap();
    drop(group.lock());
}

// ---- 6. replace and force_destroy with waiters and members -----------------------------------

#[test]
fn threads_waiting_in_lock_when_the_group_is_replaced_get_the_new_group() {
    let old = GrpLock::new();
    let new = GrpLock::new();
    let l = Arc::new(GenLock::new());
    old.chain_lock(dyn_lock(&l), -1).unwrap();
    let held = l.lock();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (old, new) = (old.clone(), new.clone());
            std::thread::spawn(move || {
                catch_unwind(AssertUnwindSafe(|| {
                    let _g = old.lock();
                    new.is_held_by_current_thread()
                }))
                .map_err(|p| panic_text(&*p))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    GrpLock::replace(&old, &new).unwrap();
    drop(held);
    for w in waiters {
        let r = within("a waiter", 10, move || w.join().unwrap());
        assert_eq!(r, Ok(true), "a waiter did not get the new group");
    }
}

#[test]
fn members_follow_their_group_into_a_replacement() {
    let ran = counter();
    struct Call {
        group: WeakGrpLock,
        n: u32,
        ran: Arc<AtomicUsize>,
    }
    impl GrpMember for Call {
        fn on_destroy(&mut self) {
            // Records the count it saw (10 + n); asserting here would panic in a destructor.
            self.ran.store(10 + self.n as usize, SeqCst);
        }
        fn set_group(&mut self, g: WeakGrpLock) {
            self.group = g;
        }
    }
    let old = GrpLock::new();
    let new = GrpLock::new();
    let call = Member::join(
        &old,
        Call {
            group: WeakGrpLock::new(),
            n: 0,
            ran: ran.clone(),
        },
    );
    call.lock().n += 1;
    GrpLock::replace(&old, &new).unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        let mut c = call.lock();
        c.n += 1;
        assert!(
            new.is_held_by_current_thread(),
            "the member locked the old group"
        );
        assert!(c.group.upgrade().is_some());
    }));
    assert!(r.is_ok(), "the member could not be locked after replace");

    drop(old);
    drop(call);
    assert_eq!(ran.load(SeqCst), 0, "destroyed while the new group lives");
    drop(new);
    assert_eq!(ran.load(SeqCst), 12, "destroyed once, with both increments");
}

#[test]
fn a_member_of_a_replaced_group_can_still_leave_early() {
    let old = GrpLock::new();
    let new = GrpLock::new();
    let tsx = Member::join(
        &old,
        Tsx {
            group: WeakGrpLock::new(),
            branch: vec![7],
        },
    );
    GrpLock::replace(&old, &new).unwrap();
    assert_eq!(
        new.handler_count(),
        1,
        "the member's handler moved to the new group"
    );
    let left = catch_unwind(AssertUnwindSafe(move || tsx.leave().branch));
    assert_eq!(left.ok(), Some(vec![7]), "leave failed after replace");
    assert_eq!(
        new.handler_count(),
        0,
        "its handler was removed from the new group"
    );
}

#[test]
fn threads_waiting_in_lock_when_the_group_is_force_destroyed_get_a_clear_answer() {
    let group = GrpLock::new();
    let l = Arc::new(GenLock::new());
    group.chain_lock(dyn_lock(&l), -1).unwrap();
    // The waiters wait for the chained lock; meanwhile the group is destroyed.
    let held = l.lock();
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let group = group.clone();
            std::thread::spawn(move || {
                catch_unwind(AssertUnwindSafe(|| drop(group.lock()))).map_err(|p| panic_text(&*p))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let g = group.clone();
    within("force_destroy", 10, move || {
        let _ = g.force_destroy();
    });
    drop(held);
    for w in waiters {
        let text = within("a waiter", 10, move || w.join().unwrap())
            .expect_err("a waiter locked a destroyed group");
        assert!(
            text.contains("force_destroy") && text.contains("lock_alive"),
            "unclear panic for a waiter: {text}"
        );
    }
    assert!(!l.is_locked());
}

// ---- 7. a panicking destroy handler ----------------------------------------------------------

#[test]
fn every_destroy_handler_runs_even_when_one_panics_and_the_first_panic_comes_out() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let group = GrpLock::new();
    for i in 0..4 {
        let order = order.clone();
        group.add_handler(move || {
            order.lock().unwrap().push(i);
            if i == 1 || i == 2 {
                panic!("handler {i} failed");
            }
        });
    }
    let r = catch_unwind(AssertUnwindSafe(move || drop(group)));
    let text = panic_text(&*r.expect_err("the handler's panic was swallowed"));
    assert_eq!(text, "handler 1 failed");
    assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);
}
