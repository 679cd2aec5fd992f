//! The destroy handlers of a group and the "runs exactly once" protocol.
//!
//! The handler list is an `Option`: `Some` while the group lives, `None` once destroy (or
//! replace) took it. Whoever takes it out runs the handlers, outside the mutex, in
//! registration order; everybody else finds `None` and does nothing. So destroy runs once,
//! whatever the handlers do (drop handles to the group, take and drop references, register
//! more handlers, which are refused).
//!
//! Built on `crate::grp::sync` so that `loom` can model-check it (`--cfg loom`).

use super::sync::{AtomicU64, Mutex, Ordering};

/// A destroy handler, as registered.
pub(crate) type Handler = Box<dyn FnOnce() + Send>;

/// Identifies one registration, for [`GrpLock::del_handler`](super::GrpLock::del_handler).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandlerId {
    group: usize,
    seq: u64,
}

pub(crate) struct Life {
    handlers: Mutex<Option<Vec<(u64, Handler)>>>,
    next: AtomicU64,
}

impl Life {
    pub(crate) fn new() -> Self {
        Life {
            handlers: Mutex::new(Some(Vec::new())),
            next: AtomicU64::new(0),
        }
    }

    fn list(&self) -> super::sync::MutexGuard<'_, Option<Vec<(u64, Handler)>>> {
        // A handler never runs under this mutex, so poisoning can only come from a panic in
        // Vec bookkeeping; the list is still consistent then.
        self.handlers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `h`; `Err(h)` if the group is already destroyed.
    pub(crate) fn add(&self, group: usize, h: Handler) -> Result<HandlerId, Handler> {
        let mut list = self.list();
        match list.as_mut() {
            Some(v) => {
                let seq = self.next.fetch_add(1, Ordering::Relaxed);
                v.push((seq, h));
                Ok(HandlerId { group, seq })
            }
            None => Err(h),
        }
    }

    /// Unregisters; false if `id` is not registered here (any more).
    pub(crate) fn remove(&self, group: usize, id: HandlerId) -> bool {
        if id.group != group {
            return false;
        }
        let removed = {
            let mut list = self.list();
            let Some(v) = list.as_mut() else {
                return false;
            };
            let Some(i) = v.iter().position(|(s, _)| *s == id.seq) else {
                return false;
            };
            v.remove(i)
        };
        // Dropped outside the mutex: the closure's captures may have their own Drop.
        drop(removed);
        true
    }

    /// Takes the handlers out, ending the group's life; `None` if already ended.
    pub(crate) fn end(&self) -> Option<Vec<Handler>> {
        let taken = self.list().take();
        taken.map(|v| v.into_iter().map(|(_, h)| h).collect())
    }

    /// Ends the group's life and runs its handlers; false if it had already ended.
    ///
    /// Every handler runs even if one panics (each member must get its chance to release
    /// what it holds); the first panic is resumed after the last handler.
    pub(crate) fn destroy(&self) -> bool {
        match self.end() {
            Some(handlers) => {
                let mut first_panic = None;
                for h in handlers {
                    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(h)) {
                        first_panic.get_or_insert(p);
                    }
                }
                if let Some(p) = first_panic {
                    std::panic::resume_unwind(p);
                }
                true
            }
            None => false,
        }
    }

    /// Appends handlers taken from another group (replace). `Err` gives them back if this
    /// group has ended.
    pub(crate) fn adopt(&self, handlers: Vec<Handler>) -> Result<(), Vec<Handler>> {
        let mut list = self.list();
        match list.as_mut() {
            Some(v) => {
                for h in handlers {
                    let seq = self.next.fetch_add(1, Ordering::Relaxed);
                    v.push((seq, h));
                }
                Ok(())
            }
            None => Err(handlers),
        }
    }

    pub(crate) fn len(&self) -> Option<usize> {
        self.list().as_ref().map(Vec::len)
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
                        hs.into_iter().for_each(|h| h());
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
