//! The destroy handlers of a group and the "runs exactly once" protocol.
//!
//! The handler list is an `Option`: `Some` while the group lives, `None` once destroy (or
//! replace) took it. Whoever takes it out runs the handlers, outside the mutex, in
//! registration order; everybody else finds `None` and does nothing. So destroy runs once,
//! whatever the handlers do (drop handles to the group, take and drop references, register
//! more handlers, which are refused).
//!
//! - **Every handler runs**, even when one panics: the panics are caught, the remaining
//!   handlers run, then the first panic is resumed (unless the thread is already unwinding,
//!   where a second panic would abort: then the payloads are dropped).
//! - **Fork**: each registration remembers the process that made it, and a handler runs only
//!   in that process. A forked child holds a copy of every handler the parent registered;
//!   when the child's copy of the group dies, those copies are neither run nor dropped
//!   (running or dropping them would destroy, a second time, what the parent destroys: a
//!   shared block, a socket): they are leaked, in the child's memory.
//! - A registration keeps its [`HandlerId`] when [`replace`](super::GrpLock::replace) moves
//!   it to another group, so `del_handler` still finds it there.
//!
//! Built on `crate::grp::sync` so that `loom` can model-check it (`--cfg loom`).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use super::sync::{lock_mutex, pid, AtomicU64, Mutex, MutexGuard, Ordering};

/// A destroy handler, as registered.
pub(crate) type Handler = Box<dyn FnOnce() + Send>;

/// Identifies one registration, for [`GrpLock::del_handler`](super::GrpLock::del_handler).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandlerId {
    group: u64,
    seq: u64,
}

/// One registration: its id, the process that made it, the handler.
pub(crate) struct Entry {
    id: HandlerId,
    pid: u32,
    handler: Handler,
}

pub(crate) struct Life {
    handlers: Mutex<Option<Vec<Entry>>>,
    next: AtomicU64,
}

impl Life {
    pub(crate) fn new() -> Self {
        Life {
            handlers: Mutex::new(Some(Vec::new())),
            next: AtomicU64::new(0),
        }
    }

    fn list(&self) -> MutexGuard<'_, Option<Vec<Entry>>> {
        // A handler never runs under this mutex, so poisoning can only come from a panic in
        // Vec bookkeeping; the list is still consistent then.
        lock_mutex(&self.handlers)
    }

    /// Registers `h` for the group `group` (a number unique to the group); `Err(h)` if the
    /// group is already destroyed.
    pub(crate) fn add(&self, group: u64, h: Handler) -> Result<HandlerId, Handler> {
        let mut list = self.list();
        match list.as_mut() {
            Some(v) => {
                let seq = self.next.fetch_add(1, Ordering::Relaxed);
                let id = HandlerId { group, seq };
                v.push(Entry {
                    id,
                    pid: pid(),
                    handler: h,
                });
                Ok(id)
            }
            None => Err(h),
        }
    }

    /// Unregisters; false if `id` is not registered here (any more).
    pub(crate) fn remove(&self, id: HandlerId) -> bool {
        let removed = {
            let mut list = self.list();
            let Some(v) = list.as_mut() else {
                return false;
            };
            let Some(i) = v.iter().position(|e| e.id == id) else {
                return false;
            };
            v.remove(i)
        };
        // Dropped outside the mutex: the closure's captures may have their own Drop. A
        // registration made by another process (before a fork) is that process's: leaked.
        if removed.pid != pid() {
            std::mem::forget(removed);
        }
        true
    }

    /// Takes the handlers out, ending the group's life; `None` if already ended.
    pub(crate) fn end(&self) -> Option<Vec<Entry>> {
        self.list().take()
    }

    /// Ends the group's life and runs its handlers (see [`run`]); false if it had already
    /// ended.
    pub(crate) fn destroy(&self) -> bool {
        match self.end() {
            Some(entries) => {
                run(entries);
                true
            }
            None => false,
        }
    }

    /// Appends registrations taken from another group (replace), ids kept. `Err` gives them
    /// back if this group has ended.
    pub(crate) fn adopt(&self, entries: Vec<Entry>) -> Result<(), Vec<Entry>> {
        let mut list = self.list();
        match list.as_mut() {
            Some(v) => {
                v.extend(entries);
                Ok(())
            }
            None => Err(entries),
        }
    }

    pub(crate) fn len(&self) -> Option<usize> {
        self.list().as_ref().map(Vec::len)
    }
}

/// Runs every handler registered by this process, in order, even if some panic; then
/// resumes the first panic. Registrations of another process (inherited through `fork`)
/// are leaked, neither run nor dropped.
pub(crate) fn run(entries: Vec<Entry>) {
    let me = pid();
    let mut first = None;
    for e in entries {
        if e.pid != me {
            std::mem::forget(e);
            continue;
        }
        if let Err(p) = catch_unwind(AssertUnwindSafe(e.handler)) {
            first.get_or_insert(p);
        }
    }
    if let Some(p) = first {
        if !std::thread::panicking() {
            resume_unwind(p);
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    //! `RUSTFLAGS="--cfg loom" cargo test -p lockkit --lib --release grp::life`
    //!
    //! The model: a group is `Arc<Group>`; dropping the last `Arc` destroys (as `GrpLock`'s
    //! inner drop does); a forced destroy and a replace may race with it. In every
    //! interleaving, every handler runs exactly once, and none runs twice.

    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;

    struct Group(Life);
    impl Drop for Group {
        fn drop(&mut self) {
            self.0.destroy();
        }
    }

    fn counting(n: &Arc<AtomicUsize>) -> Handler {
        let n = Arc::clone(n);
        Box::new(move || {
            n.fetch_add(1, Ordering::SeqCst);
        })
    }

    #[test]
    fn references_racing_to_zero_run_the_handlers_once() {
        loom::model(|| {
            let ran = Arc::new(AtomicUsize::new(0));
            let g = Arc::new(Group(Life::new()));
            g.0.add(0, counting(&ran)).ok().unwrap();
            g.0.add(0, counting(&ran)).ok().unwrap();
            let g2 = Arc::clone(&g);
            let t = loom::thread::spawn(move || drop(g2));
            drop(g);
            t.join().unwrap();
            assert_eq!(ran.load(Ordering::SeqCst), 2);
        });
    }

    #[test]
    fn a_forced_destroy_racing_the_last_drop_runs_the_handlers_once() {
        loom::model(|| {
            let ran = Arc::new(AtomicUsize::new(0));
            let g = Arc::new(Group(Life::new()));
            g.0.add(0, counting(&ran)).ok().unwrap();
            let g2 = Arc::clone(&g);
            let t = loom::thread::spawn(move || {
                g2.0.destroy();
            });
            drop(g);
            t.join().unwrap();
            assert_eq!(ran.load(Ordering::SeqCst), 1);
        });
    }

    #[test]
    fn a_handler_that_drops_the_last_reference_does_not_destroy_twice() {
        loom::model(|| {
            let ran = Arc::new(AtomicUsize::new(0));
            let g = Arc::new(Group(Life::new()));
            let keep = loom::sync::Mutex::new(Some(Arc::clone(&g)));
            let keep = Arc::new(keep);
            let k2 = Arc::clone(&keep);
            g.0.add(0, counting(&ran)).ok().unwrap();
            // This handler drops a reference to its own group while destroy runs.
            g.0.add(
                0,
                Box::new(move || {
                    let last = k2.lock().unwrap().take();
                    drop(last);
                }),
            )
            .ok()
            .unwrap();
            let g2 = Arc::clone(&g);
            let t = loom::thread::spawn(move || {
                g2.0.destroy();
            });
            drop(g);
            t.join().unwrap();
            drop(keep.lock().unwrap().take());
            assert_eq!(ran.load(Ordering::SeqCst), 1);
        });
    }

    #[test]
    fn replace_racing_a_dec_ref_runs_each_handler_once_in_one_group() {
        loom::model(|| {
            let ran = Arc::new(AtomicUsize::new(0));
            let old = Arc::new(Group(Life::new()));
            let new = Arc::new(Group(Life::new()));
            old.0.add(0, counting(&ran)).ok().unwrap();
            let old2 = Arc::clone(&old);
            let new2 = Arc::clone(&new);
            let t = loom::thread::spawn(move || {
                // replace: take from old, adopt into new.
                if let Some(hs) = old2.0.end() {
                    if let Err(hs) = new2.0.adopt(hs) {
                        run(hs);
                    }
                }
            });
            drop(old);
            drop(new);
            t.join().unwrap();
            assert_eq!(ran.load(Ordering::SeqCst), 1);
        });
    }

    #[test]
    fn a_handler_added_while_destroying_is_refused_or_run() {
        loom::model(|| {
            let ran = Arc::new(AtomicUsize::new(0));
            let g = Arc::new(Group(Life::new()));
            let g2 = Arc::clone(&g);
            let r2 = Arc::clone(&ran);
            let t = loom::thread::spawn(move || g2.0.add(0, counting(&r2)).is_ok());
            g.0.destroy();
            let added = t.join().unwrap();
            drop(g);
            assert_eq!(ran.load(Ordering::SeqCst), usize::from(added));
        });
    }
}
