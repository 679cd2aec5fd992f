//! Which groups chain which, so that no chain of groups becomes a cycle (taking a group of
//! a cycle would take itself, forever).
//!
//! Each group lists the groups chained to it (`Inner::subgroups`, weak references, following
//! `replace` forwards when read). The lists are changed, and searched, only under one
//! process-wide lock, so two threads chaining two groups to each other at once cannot both
//! succeed. Lock order: a group's own lock, then the graph lock, then a `subgroups` mutex;
//! nothing here takes a group's own lock (`replace` only tries it), and nothing runs user
//! code under the graph lock: the references a search takes are handed back to the caller,
//! to be dropped holding nothing (dropping the last one runs destroy handlers).

use std::sync::{Arc, Weak};

use super::inner::Inner;
use super::sync::{lock_mutex, Mutex, MutexGuard};

#[cfg(not(loom))]
static GRAPH: Mutex<()> = Mutex::new(());

#[cfg(loom)]
loom::lazy_static! {
    static ref GRAPH: Mutex<()> = Mutex::new(());
}

/// Takes the graph lock.
pub(crate) fn lock() -> MutexGuard<'static, ()> {
    lock_mutex(&GRAPH)
}

/// Whether `target` (a resolved group) can be reached from `from` by following chained
/// groups. The graph lock is held. References taken on the way go to `keep`.
pub(crate) fn reaches(from: &Inner, target: &Inner, keep: &mut Vec<Arc<Inner>>) -> bool {
    let mut stack: Vec<*const Inner> = vec![from];
    let mut seen: Vec<*const Inner> = Vec::new();
    while let Some(p) = stack.pop() {
        // SAFETY: `from` is borrowed for the whole search, and every other pointer on the
        // stack comes from an `Arc` pushed to `keep`, which outlives the search.
        let node = unsafe { &*p }.resolve();
        if std::ptr::eq(node, target) {
            return true;
        }
        if seen.contains(&(node as *const Inner)) {
            continue;
        }
        seen.push(node);
        let subs: Vec<Arc<Inner>> = lock_mutex(&node.subgroups)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for s in subs {
            stack.push(Arc::as_ptr(&s));
            keep.push(s);
        }
    }
    false
}

/// Records that `parent` chains `child` (the handle's group, before forwards). The graph
/// lock is held. Drops entries of groups that died.
pub(crate) fn add_edge(parent: &Inner, child: &Arc<Inner>) {
    let mut subs = lock_mutex(&parent.subgroups);
    subs.retain(|w| w.strong_count() > 0);
    subs.push(Arc::downgrade(child));
}

/// Forgets one record that `parent` chains `child`. The graph lock is held.
pub(crate) fn remove_edge(parent: &Inner, child: &Arc<Inner>) {
    let mut subs = lock_mutex(&parent.subgroups);
    if let Some(i) = subs
        .iter()
        .position(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(child)))
    {
        subs.swap_remove(i);
    }
}
