//! Which groups chain which, and which other locks each group chains, so that no chain of
//! groups becomes a cycle (taking a group of a cycle would take itself, forever) and no group
//! reaches one lock twice (issue 22.1: a group P that chains lock L and a group S that chains
//! L too takes L, finds S busy because S needs L, gives everything back, finds S free, and
//! starts again, for ever).
//!
//! Each group keeps its [`Edges`]: the groups chained to it (weak references, following
//! `replace` forwards when read), the groups that chain it (the same edges seen from below,
//! for finding every group that reaches it), and the `chain_id`s of its other chained locks.
//! They are changed, and searched, only under one process-wide lock, so two threads editing
//! two chains at once cannot both succeed where together they make a cycle or a shared lock.
//! Lock order: a group's own lock, then the graph lock, then an `edges` mutex; nothing here
//! takes a group's own lock (`replace` only tries it), and nothing runs user code under the
//! graph lock (`chain_id`s are read when a link is made): the references a search takes are
//! handed back to the caller, to be dropped holding nothing (dropping the last one runs
//! destroy handlers).
//!
//! A group reached twice is fine (it is recursive: the second acquisition is one more
//! level); a lock of any other kind reached twice is refused, even a recursive one, because
//! only groups tell the chain walk who holds them.

use std::sync::{Arc, Weak};

use super::inner::Inner;
use super::sync::{lock_mutex, Mutex, MutexGuard};

#[cfg(not(loom))]
static GRAPH: Mutex<()> = Mutex::new(());

#[cfg(loom)]
loom::lazy_static! {
    static ref GRAPH: Mutex<()> = Mutex::new(());
}

/// One group's place in the graph.
#[derive(Default)]
pub(crate) struct Edges {
    /// The groups chained to this one (the handle's group, before forwards).
    subgroups: Vec<Weak<Inner>>,
    /// The groups that chain this one, once per link (resolved when read).
    parents: Vec<Weak<Inner>>,
    /// The `chain_id`s of this group's chained locks that are not groups.
    leaves: Vec<usize>,
}

/// Takes the graph lock.
pub(crate) fn lock() -> MutexGuard<'static, ()> {
    lock_mutex(&GRAPH)
}

fn edges(g: &Inner) -> MutexGuard<'_, Edges> {
    lock_mutex(&g.edges)
}

/// `node`'s live subgroups (or, `up`, the groups that chain it), upgraded; the references
/// go to `keep`, and the pointers stay valid while `keep` lives.
fn neighbours(
    node: &Inner,
    up: bool,
    keep: &mut Vec<Arc<Inner>>,
) -> impl Iterator<Item = *const Inner> {
    let e = edges(node);
    let list = if up { &e.parents } else { &e.subgroups };
    let found: Vec<Arc<Inner>> = list.iter().filter_map(Weak::upgrade).collect();
    drop(e);
    let ptrs: Vec<*const Inner> = found.iter().map(Arc::as_ptr).collect();
    keep.extend(found);
    ptrs.into_iter()
}

/// Every group reachable from `from` by following chained groups (or, `up`, the groups that
/// chain it), resolved, `from` included. With `subst` = `(old, new)`, a group that resolves
/// to `old` is taken to be `new` (what `replace` is about to make it). The graph lock is
/// held; references taken on the way go to `keep`.
fn walk(
    from: &Inner,
    up: bool,
    subst: Option<(&Inner, &Inner)>,
    keep: &mut Vec<Arc<Inner>>,
) -> Vec<*const Inner> {
    let mut stack: Vec<*const Inner> = vec![from];
    let mut seen: Vec<*const Inner> = Vec::new();
    while let Some(p) = stack.pop() {
        // SAFETY: `from` is borrowed for the whole search, `subst`'s groups too, and every
        // other pointer on the stack comes from an `Arc` pushed to `keep`, which outlives
        // the search.
        let mut node = unsafe { &*p }.resolve();
        if let Some((old, new)) = subst {
            if std::ptr::eq(node, old) {
                node = new.resolve();
            }
        }
        if seen.contains(&(node as *const Inner)) {
            continue;
        }
        seen.push(node);
        stack.extend(neighbours(node, up, keep));
    }
    seen
}

/// Whether `target` (a resolved group) can be reached from `from` by following chained
/// groups. The graph lock is held. References taken on the way go to `keep`.
pub(crate) fn reaches(from: &Inner, target: &Inner, keep: &mut Vec<Arc<Inner>>) -> bool {
    walk(from, false, None, keep)
        .iter()
        .any(|&g| std::ptr::eq(g, target))
}

/// Whether some group would reach one lock (not a group) twice if `g` (resolved) chained
/// `add`: a group (`Ok`) or another lock, by its `chain_id` (`Err`). The graph lock is held.
pub(crate) fn would_share(
    g: &Inner,
    add: Result<&Inner, usize>,
    keep: &mut Vec<Arc<Inner>>,
) -> bool {
    let below: Vec<*const Inner> = match add {
        Ok(s) => walk(s, false, None, keep),
        Err(_) => Vec::new(),
    };
    let extra = add.err();
    walk(g, true, None, keep).into_iter().any(|a| {
        // SAFETY: `walk` returns `g` or groups kept alive by `keep`.
        let mut groups = walk(unsafe { &*a }, false, None, keep);
        for &b in &below {
            if !groups.contains(&b) {
                groups.push(b);
            }
        }
        shares(&groups, extra)
    })
}

/// Whether some group that reaches `old` would reach one lock twice once `old` stands for
/// `new` (`replace`). The graph lock is held.
pub(crate) fn would_share_after_replace(
    old: &Inner,
    new: &Inner,
    keep: &mut Vec<Arc<Inner>>,
) -> bool {
    walk(old, true, None, keep).into_iter().any(|a| {
        // SAFETY: as in `would_share`.
        let groups = walk(unsafe { &*a }, false, Some((old, new)), keep);
        shares(&groups, None)
    })
}

/// The `chain_id`s of every lock (not a group) that taking `g` takes, once per group that
/// chains it. The graph lock is held; references taken go to `keep`.
pub(crate) fn locks_reached(g: &Inner, keep: &mut Vec<Arc<Inner>>) -> Vec<usize> {
    let mut ids = Vec::new();
    for p in walk(g, false, None, keep) {
        // SAFETY: `walk` returns `g` or groups kept alive by `keep`.
        ids.extend_from_slice(&edges(unsafe { &*p }).leaves);
    }
    ids
}

/// Whether the other locks chained by `groups` (distinct, resolved), plus `extra`, name one
/// lock twice.
fn shares(groups: &[*const Inner], extra: Option<usize>) -> bool {
    let mut ids: Vec<usize> = extra.into_iter().collect();
    for &g in groups {
        // SAFETY: the caller's `keep` (or borrow) keeps every group of `groups` alive.
        ids.extend_from_slice(&edges(unsafe { &*g }).leaves);
    }
    ids.sort_unstable();
    ids.windows(2).any(|w| w[0] == w[1])
}

/// Records that `parent` (a resolved group) chains `child` (the handle's group, before
/// forwards). The graph lock is held. Drops entries of groups that died.
pub(crate) fn add_edge(parent: &Arc<Inner>, child: &Arc<Inner>) {
    {
        let mut e = edges(parent);
        e.subgroups.retain(|w| w.strong_count() > 0);
        e.subgroups.push(Arc::downgrade(child));
    }
    let mut e = edges(child.resolve());
    e.parents.retain(|w| w.strong_count() > 0);
    e.parents.push(Arc::downgrade(parent));
}

/// Forgets one record that `parent` chains `child`. The graph lock is held.
pub(crate) fn remove_edge(parent: &Inner, child: &Inner) {
    {
        let mut e = edges(parent);
        if let Some(i) = e
            .subgroups
            .iter()
            .position(|w| std::ptr::eq(w.as_ptr(), child))
        {
            e.subgroups.swap_remove(i);
        }
    }
    unlink_parent(child, parent);
}

/// Forgets one record, on `child` or on a group `child` was replaced by, that `parent`
/// chains it.
fn unlink_parent(child: &Inner, parent: &Inner) {
    let mut g = child;
    loop {
        {
            let mut e = edges(g);
            if let Some(i) = e
                .parents
                .iter()
                .position(|w| std::ptr::eq(w.as_ptr(), parent))
            {
                e.parents.swap_remove(i);
                return;
            }
        }
        match g.forward() {
            Some(f) => g = &f.inner,
            None => return,
        }
    }
}

/// Records that `g` chains the lock `id` (not a group). The graph lock is held.
pub(crate) fn add_leaf(g: &Inner, id: usize) {
    edges(g).leaves.push(id);
}

/// Forgets that `g` chains the lock `id`. The graph lock is held.
pub(crate) fn remove_leaf(g: &Inner, id: usize) {
    let mut e = edges(g);
    if let Some(i) = e.leaves.iter().position(|&l| l == id) {
        e.leaves.swap_remove(i);
    }
}

/// `g` ended (destroyed, or replaced by `new`): it chains nothing any more, and the groups
/// that chained it chain `new` now. The graph lock is held; references taken go to `keep`.
pub(crate) fn end(g: &Inner, new: Option<&Inner>, keep: &mut Vec<Arc<Inner>>) {
    let (subgroups, parents) = {
        let mut e = edges(g);
        e.leaves.clear();
        (
            std::mem::take(&mut e.subgroups),
            std::mem::take(&mut e.parents),
        )
    };
    for s in subgroups.iter().filter_map(Weak::upgrade) {
        unlink_parent(&s, g);
        keep.push(s);
    }
    match new {
        Some(n) => edges(n).parents.extend(parents),
        None => edges(g).parents = parents,
    }
}
