//! Loom models of the group lock's own protocol: acquire (own lock, then the chain, tried),
//! the give-back-and-wait retry on a busy chained lock, release, chain and unchain under
//! traffic, replace and force_destroy racing acquirers, and the re-entrant chain of issue 11's
//! defect 2.
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p lockkit --lib --release grp::
//! ```
//!
//! Under `--cfg loom` the group runs on `sync.rs`'s model primitives: its own lock is a spin
//! lock on a loom atomic, its holder-only state (depth, chain) lives in loom's tracked cells,
//! so loom fails a model on any access to them that the own lock does not order, or that is
//! nested in another access (two `&mut` to one value, defect 2). The chained locks here are
//! [`ModelLock`]s: recursive spin locks on loom atomics, like a `RecLock`. Data "under the
//! group" is a loom cell too: a lost exclusion fails the model.

use std::sync::Arc;
use std::time::Duration;

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicU32;
use loom::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use loom::thread;

use super::sync::tid;
use super::{ChainError, ChainLock, Destroyed, GrpLock};

/// A recursive spin lock on loom atomics (what PJSUA's application lock is).
struct ModelLock {
    owner: AtomicU32,
    depth: AtomicU32,
}

impl ModelLock {
    fn new() -> Self {
        ModelLock {
            owner: AtomicU32::new(0),
            depth: AtomicU32::new(0),
        }
    }
    fn is_locked(&self) -> bool {
        self.owner.load(Acquire) != 0
    }
}

// SAFETY: a recursive lock; the holder's release gives back one level.
unsafe impl ChainLock for ModelLock {
    fn chain_acquire(&self) {
        while !self.chain_try_acquire() {
            thread::yield_now();
        }
    }
    fn chain_try_acquire(&self) -> bool {
        let me = tid();
        if self.owner.load(Relaxed) == me {
            self.depth.fetch_add(1, Relaxed);
            return true;
        }
        if self.owner.compare_exchange(0, me, Acquire, Relaxed).is_ok() {
            self.depth.store(1, Relaxed);
            return true;
        }
        false
    }
    fn chain_try_acquire_for(&self, _: Duration) -> bool {
        self.chain_try_acquire() || {
            thread::yield_now();
            self.chain_try_acquire()
        }
    }
    unsafe fn chain_release(&self) {
        if self.depth.fetch_sub(1, Relaxed) == 1 {
            self.owner.store(0, Release);
        }
    }
}

/// Data that only a holder of the group may touch.
struct Guarded(UnsafeCell<u32>);

// SAFETY: touched only under the group lock (which is what the models check).
unsafe impl Sync for Guarded {}
// SAFETY: a u32.
unsafe impl Send for Guarded {}

impl Guarded {
    fn bump(&self) {
        // SAFETY: the caller holds the group; loom checks that the accesses are ordered.
        self.0.with_mut(|p| unsafe { *p += 1 });
    }
    fn get(&self) -> u32 {
        // SAFETY: as above.
        self.0.with(|p| unsafe { *p })
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

#[test]
fn two_acquirers_of_a_group_chained_before_and_after_exclude_each_other() {
    model(|| {
        let group = GrpLock::new();
        let before = Arc::new(ModelLock::new());
        let after = Arc::new(ModelLock::new());
        group.chain_lock(before.clone(), -1).unwrap();
        group.chain_lock(after.clone(), 1).unwrap();
        let data = Arc::new(Guarded(UnsafeCell::new(0)));
        let t = {
            let (group, data) = (group.clone(), data.clone());
            thread::spawn(move || {
                let _g = group.lock();
                data.bump();
            })
        };
        {
            let _g = group.lock();
            assert!(before.is_locked() && after.is_locked());
            data.bump();
        }
        t.join().unwrap();
        let _g = group.lock();
        assert_eq!(data.get(), 2);
        drop(_g);
        assert!(!before.is_locked() && !after.is_locked());
    });
}

/// The lock order PJSIP relies on: one thread takes the application lock, then the group
/// (which chains it at -1); another takes the group. The group's acquirer must not wait
/// for the application lock while holding its own lock.
#[test]
fn a_thread_holding_a_chained_lock_and_one_taking_the_group_both_get_through() {
    model(|| {
        let group = GrpLock::new();
        let app = Arc::new(ModelLock::new());
        group.chain_lock(app.clone(), -1).unwrap();
        let data = Arc::new(Guarded(UnsafeCell::new(0)));
        let t = {
            let (group, app, data) = (group.clone(), app.clone(), data.clone());
            thread::spawn(move || {
                app.chain_acquire();
                {
                    let _g = group.lock();
                    data.bump();
                }
                // SAFETY: taken above by this thread.
                unsafe { app.chain_release() };
            })
        };
        {
            let _g = group.lock();
            data.bump();
        }
        t.join().unwrap();
        assert!(!app.is_locked());
        let _g = group.lock();
        assert_eq!(data.get(), 2);
    });
}

/// Chain edits under traffic, the case that hangs PJLIB: a lock unchained at -1 and chained
/// again at +1 while another thread takes the group.
#[test]
fn chaining_and_unchaining_while_another_thread_takes_the_group_never_hangs_or_leaks() {
    model(|| {
        let group = GrpLock::new();
        let l = Arc::new(ModelLock::new());
        let dyn_l: Arc<dyn ChainLock> = l.clone();
        group.chain_lock(dyn_l.clone(), -1).unwrap();
        let t = {
            let (group, l) = (group.clone(), l.clone());
            thread::spawn(move || {
                let g = group.lock();
                // Every lock in the chain at the time it took the group is held.
                let chained = group.chain_order().len() == 2;
                assert!(!chained || l.owner.load(Relaxed) == tid());
                drop(g);
            })
        };
        assert!(group.unchain_lock(&dyn_l));
        group.chain_lock(dyn_l.clone(), 1).unwrap();
        t.join().unwrap();
        assert!(!l.is_locked());
        assert!(group.try_lock().is_some());
    });
}

#[test]
fn a_thread_taking_a_group_while_it_is_replaced_ends_up_holding_one_of_them_alone() {
    model(|| {
        let old = GrpLock::new();
        let new = GrpLock::new();
        let data = Arc::new(Guarded(UnsafeCell::new(0)));
        let t = {
            let (old, data) = (old.clone(), data.clone());
            thread::spawn(move || {
                let _g = old.lock();
                data.bump();
            })
        };
        let replaced = GrpLock::replace(&old, &new);
        {
            // Whatever happened, locking through either handle excludes the other thread
            // for the data, which lives in whichever group the old handle stands for.
            let _g = old.lock();
            data.bump();
        }
        t.join().unwrap();
        if replaced.is_ok() {
            let _g = new.lock();
            assert!(old.is_held_by_current_thread());
            assert_eq!(data.get(), 2);
        }
    });
}

#[test]
fn force_destroy_racing_an_acquirer_runs_the_handler_after_the_holder_is_done() {
    model(|| {
        let group = GrpLock::new();
        let data = Arc::new(Guarded(UnsafeCell::new(0)));
        {
            let data = data.clone();
            // The "member": the handler touches the data, as a destroy handler frees it.
            group.add_handler(move || data.bump()).unwrap();
        }
        let t = {
            let (group, data) = (group.clone(), data.clone());
            thread::spawn(move || match group.lock_alive() {
                Ok(_g) => {
                    data.bump();
                    true
                }
                Err(Destroyed) => false,
            })
        };
        group.force_destroy().unwrap();
        let got_it = t.join().unwrap();
        assert_eq!(data.get(), 1 + u32::from(got_it));
    });
}

/// Issue 11, defect 2: B chains A; the thread holds A and chains B to A. The old code kept
/// `&mut` to A's holder state across B's acquisition, which re-entered A (loom: "currently
/// writing to cell"); A's depth became 2 and A stayed held after its guard. Now the cycle
/// is refused and nothing is held after the guard.
#[test]
fn chaining_a_group_that_chains_the_holder_is_refused_and_leaves_nothing_held() {
    model(|| {
        let a = GrpLock::new();
        let b = GrpLock::new();
        b.chain_lock(Arc::new(a.clone()), 1).unwrap();
        let t = {
            let b = b.clone();
            thread::spawn(move || drop(b.lock()))
        };
        let g = a.lock();
        assert_eq!(a.chain_lock(Arc::new(b.clone()), 1), Err(ChainError::Cycle));
        assert_eq!(a.depth(), 1);
        drop(g);
        assert!(!a.is_held_by_current_thread());
        t.join().unwrap();
        assert!(a.try_lock().is_some() && b.try_lock().is_some());
    });
}

/// A holder that takes a group which chains it (B chains A, the thread holds A, then locks
/// B): B's chain walk re-enters A recursively, in short accesses.
#[test]
fn a_holder_locking_a_group_that_chains_it_reenters_recursively() {
    model(|| {
        let a = GrpLock::new();
        let b = GrpLock::new();
        b.chain_lock(Arc::new(a.clone()), -1).unwrap();
        let t = {
            let a = a.clone();
            thread::spawn(move || drop(a.lock()))
        };
        {
            let _ga = a.lock();
            let _gb = b.lock();
            assert_eq!(a.depth(), 2);
        }
        assert_eq!(a.depth(), 0);
        t.join().unwrap();
    });
}

#[test]
fn two_acquirers_of_an_unchained_group_exclude_each_other() {
    model(|| {
        let group = GrpLock::new();
        let data = Arc::new(Guarded(UnsafeCell::new(0)));
        let t = {
            let (group, data) = (group.clone(), data.clone());
            thread::spawn(move || {
                let _g = group.lock();
                let _again = group.try_lock().expect("recursive");
                data.bump();
            })
        };
        {
            let _g = group.lock();
            data.bump();
        }
        t.join().unwrap();
        let _g = group.lock();
        assert_eq!(data.get(), 2);
    });
}

/// Issue 22.1: P chains L; one thread chains L to S while another chains S to P. Together
/// they would make P reach L twice (P would take L, find S busy for want of L, give back,
/// find S free, and start again, for ever): exactly one of the two is refused, whichever
/// lands last, and a third thread taking P meanwhile always gets through.
#[test]
fn chain_edits_that_together_share_a_lock_are_refused_once_and_the_parent_still_locks() {
    model(|| {
        let p = GrpLock::new();
        let s = GrpLock::new();
        let l = Arc::new(ModelLock::new());
        p.chain_lock(l.clone(), -1).unwrap();
        let t = {
            let (s, l) = (s.clone(), l.clone());
            thread::spawn(move || s.chain_lock(l, -1))
        };
        let taker = {
            let p = p.clone();
            thread::spawn(move || drop(p.lock()))
        };
        let mine = p.chain_lock(Arc::new(s.clone()), 1);
        let theirs = t.join().unwrap();
        let refused = [mine, theirs]
            .iter()
            .filter(|r| **r == Err(ChainError::SharedLock))
            .count();
        assert_eq!(refused, 1, "{mine:?} {theirs:?}");
        assert!(mine.is_ok() || theirs.is_ok());
        taker.join().unwrap();
        let g = p.lock();
        assert!(l.owner.load(Relaxed) == tid());
        drop(g);
        assert!(!l.is_locked());
    });
}

/// Issue 22.3: a thread taking A meets a dead group in A's chain (and drops it from the
/// chain), then waits for a busy chained lock holding nothing, while another thread
/// replaces A. The taker ends up holding A's replacement, alone, with the dead link let
/// go of holding nothing, and nothing stays held after its guard.
#[test]
fn a_taker_that_dropped_dead_links_while_its_group_was_replaced_leaves_nothing_held() {
    model(|| {
        let a = GrpLock::new();
        let a2 = GrpLock::new();
        let dead = GrpLock::new();
        let l = Arc::new(ModelLock::new());
        a.chain_lock(Arc::new(dead.clone()), -2).unwrap();
        a.chain_lock(l.clone(), -1).unwrap();
        dead.force_destroy().unwrap();
        drop(dead);
        let data = Arc::new(Guarded(UnsafeCell::new(0)));
        l.chain_acquire();
        let t = {
            let (a, data) = (a.clone(), data.clone());
            thread::spawn(move || {
                let _g = a.lock();
                data.bump();
            })
        };
        let replaced = GrpLock::replace(&a, &a2);
        // SAFETY: taken above by this thread.
        unsafe { l.chain_release() };
        {
            let _g = a.lock();
            data.bump();
        }
        t.join().unwrap();
        assert!(!l.is_locked());
        assert!(a2.try_lock().is_some() && a.try_lock().is_some());
        if replaced.is_ok() {
            let _g = a2.lock();
            assert_eq!(data.get(), 2);
        }
    });
}
