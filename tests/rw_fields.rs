//! Read-mostly tables (issue 24.3): fields guarded by a `GenRwLock` or striped by a
//! `GenRwLockSet` are read by many processes at once and written by one, through
//! `read_*` / `write_*` accessors and `locked!(read .., write ..)`.
//!
//! Every wait across processes has a deadline (`try_*_for`, `join_within`, `wait_for`), and
//! nothing here measures time: a reader that shares is proven by taking the lock while
//! another process holds it, a writer that excludes by a `try` that fails meanwhile.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{fork, serial, wait_for, CHILD_DEADLINE};
use lockkit::{
    locked, shared_locked, GenLock, GenRwLock, GenRwLockSet, ReadGuard, ShmRegion, StripeReadGuard,
    StripeWriteGuard, WriteGuard,
};

/// Long enough for a loaded 2-core machine, short of a hung run.
const WAIT: Duration = Duration::from_secs(20);

#[shared_locked]
pub struct Locations {
    routes_lock: GenRwLock,
    /// A pair that a writer keeps equal: it writes `.0`, then `.1`.
    #[guarded_by(routes_lock)]
    routes: [(u32, u32); 8],
    #[guarded_by(routes_lock)]
    version: u64,
    stripes: GenRwLockSet<4>,
    #[striped_by(stripes)]
    contacts: [(u64, u64); 16],
    other: GenLock,
    #[guarded_by(other)]
    hits: u64,
    /// How the test and its children take turns.
    step: AtomicU32,
}

fn step(t: &Locations, to: u32) {
    t.step.store(to, Ordering::Release);
}

#[test]
fn read_and_write_accessors_lend_the_guarded_fields() {
    let t = Locations::new([(0, 0); 8], 0, [(0, 0); 16], 0, AtomicU32::new(0));
    {
        let mut w = t.write_routes_lock();
        w.routes[2] = (7, 7);
        w.version += 1;
        assert!(t.try_read_routes_lock().is_none(), "a writer is alone");
        assert!(t.try_write_routes_lock().is_none());
    }
    let a = t.read_routes_lock();
    let b = t.try_read_routes_lock().expect("readers share");
    let c = t
        .try_read_routes_lock_for(Duration::from_millis(1))
        .expect("readers share");
    assert_eq!((a.routes[2], b.version, c.version), ((7, 7), 1, 1));
    assert!(
        t.try_write_routes_lock().is_none(),
        "no writer while they read"
    );
    assert!(t
        .try_write_routes_lock_for(Duration::from_millis(1))
        .is_none());
    drop((a, b, c));
    assert!(t.try_write_routes_lock().is_some());

    // Striped: readers of one stripe share it; a writer holds its stripe only.
    *t.write_contacts(5) = (50, 50);
    let r1 = t.read_contacts(1);
    let r2 = t.try_read_contacts(9).expect("readers share a stripe");
    assert_eq!(r1.get(5), Some(&(50, 50)));
    assert_eq!(r2.iter().map(|(i, _)| i).collect::<Vec<_>>(), [1, 5, 9, 13]);
    assert!(r1.get(2).is_none(), "stripe 2 is not held");
    assert!(t.try_write_contacts(13).is_none());
    let mut w = t.try_write_contacts(2).expect("another stripe");
    *w.get_mut(6).expect("same stripe") = (6, 6);
    assert_eq!((w.stripe(), w.stripes(), w.index()), (2, 4, 2));
    drop((r1, r2, w));
    assert_eq!(*t.read_contacts(6), (6, 6));
    assert!(t
        .try_write_contacts_for(6, Duration::from_millis(1))
        .is_some());
    assert!(t
        .try_read_contacts_for(6, Duration::from_millis(1))
        .is_some());
}

#[test]
fn an_index_out_of_range_names_the_field() {
    let t = Locations::new([(0, 0); 8], 0, [(0, 0); 16], 0, AtomicU32::new(0));
    let err = catch_unwind(AssertUnwindSafe(|| drop(t.read_contacts(16)))).unwrap_err();
    let text = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("contacts: index out of range"), "{text}");
}

#[test]
fn two_processes_read_a_guarded_field_at_once() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let t = region.alloc_zeroed::<Locations>().unwrap();
    t.write_routes_lock().routes[1] = (4, 4);
    let mine = t.read_routes_lock();
    // The child reads while this process holds its read lock: it gets in only if readers
    // share, across processes.
    let child = fork(|| {
        let Some(r) = t.try_read_routes_lock_for(WAIT) else {
            return 1;
        };
        if r.routes[1] != (4, 4) {
            return 2;
        }
        // Two readers inside, in two processes: no writer gets in.
        if t.try_write_routes_lock().is_some() {
            return 3;
        }
        step(&t, 1);
        0
    });
    assert_eq!(child.join_within(CHILD_DEADLINE, String::new), 0);
    assert_eq!(t.step.load(Ordering::Acquire), 1);
    assert_eq!(mine.routes[1], (4, 4));
    drop(mine);
    assert!(t.try_write_routes_lock().is_some(), "both readers left");
}

#[test]
fn a_writer_in_one_process_keeps_readers_and_writers_of_another_out() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let t = region.alloc_zeroed::<Locations>().unwrap();
    let child = fork(|| {
        wait_for(&t.step, 1);
        // The parent writes: nobody else gets in, reader or writer, waiting or not.
        let shut_out = t.try_read_routes_lock().is_none()
            && t.try_write_routes_lock().is_none()
            && t.try_read_routes_lock_for(Duration::from_millis(1))
                .is_none()
            && t.try_write_routes_lock_for(Duration::from_millis(1))
                .is_none()
            && t.try_read_contacts(3).is_none()
            && t.try_write_contacts(7).is_none();
        if !shut_out {
            return 1;
        }
        // Another stripe is free.
        if t.try_write_contacts(4).is_none() {
            return 2;
        }
        step(&t, 2);
        // Once the parent lets go, the child reads what it wrote.
        match t.try_read_routes_lock_for(WAIT) {
            Some(r) if r.routes[0] == (9, 9) && r.version == 1 => {}
            _ => return 3,
        }
        match t.try_read_contacts_for(3, WAIT) {
            Some(c) if *c == (3, 3) => 0,
            _ => 4,
        }
    });
    {
        let mut w = t.write_routes_lock();
        let mut s = t.write_contacts(3);
        w.routes[0] = (9, 9);
        w.version = 1;
        *s = (3, 3);
        step(&t, 1);
        wait_for(&t.step, 2);
    }
    assert_eq!(child.join_within(CHILD_DEADLINE, String::new), 0);
}

#[test]
fn a_writer_killed_inside_is_reported_to_the_next_writer_and_to_readers() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let t = region.alloc_zeroed::<Locations>().unwrap();
    let writer = fork(|| {
        let mut w = t.write_routes_lock();
        w.routes[3].0 = 5; // the first half of an update
        let mut s = t.write_contacts(1);
        s.get_mut(9).expect("same stripe").0 = 9;
        // SAFETY: ends the child at once, inside both locks (the kernel proves the death).
        unsafe { libc::_exit(0) }
    });
    assert_eq!(writer.join_within(CHILD_DEADLINE, String::new), 0);

    {
        let r = t
            .try_read_routes_lock_for(WAIT)
            .expect("recovered from the dead writer");
        assert!(
            ReadGuard::owner_died(&r),
            "a reader is told the data may be half-updated"
        );
    }
    let mut w = t.try_write_routes_lock_for(WAIT).expect("recovered");
    assert!(WriteGuard::owner_died(&w));
    let (a, _) = w.routes[3];
    w.routes[3] = (a, a);
    WriteGuard::mark_consistent(&mut w);
    drop(w);
    assert!(!WriteGuard::owner_died(&t.write_routes_lock()));
    assert_eq!(t.read_routes_lock().routes[3], (5, 5));

    // The stripe, taken for an element the writer never touched, is still reported.
    let r = t.try_read_contacts_for(13, WAIT).expect("recovered");
    assert!(StripeReadGuard::owner_died(&r));
    drop(r);
    let mut s = t.try_write_contacts_for(5, WAIT).expect("recovered");
    assert!(StripeWriteGuard::owner_died(&s));
    let repaired: Vec<usize> = s
        .iter_mut()
        .filter(|(_, p)| p.0 != p.1)
        .map(|(i, p)| {
            p.1 = p.0;
            i
        })
        .collect();
    assert_eq!(repaired, [9]);
    StripeWriteGuard::mark_consistent(&mut s);
    drop(s);
    let s = t.read_contacts(9);
    assert!(!StripeReadGuard::owner_died(&s));
    assert_eq!(*s, (9, 9));
}

#[test]
fn locked_reads_one_table_and_writes_another_releasing_on_every_path() {
    let a = Locations::new([(1, 1); 8], 0, [(0, 0); 16], 0, AtomicU32::new(0));
    let b = Locations::new([(0, 0); 8], 0, [(0, 0); 16], 0, AtomicU32::new(0));
    let copied = locked!(read from = a.routes_lock, write to = b.routes_lock, h = a.other => {
        to.routes = from.routes;
        to.version = from.version + 1;
        h.hits += 1;
        to.version
    });
    assert_eq!(copied, 1);
    assert_eq!(b.read_routes_lock().routes[7], (1, 1));
    assert_eq!(a.lock_other().hits, 1);

    // Written in the other order: the same locks, taken in the same global order.
    locked!(write to = b.routes_lock, read from = a.routes_lock => {
        to.version += from.routes[0].0 as u64;
    });
    assert_eq!(b.read_routes_lock().version, 2);

    // An early return, a `?` and a panic each leave every lock free.
    fn early(a: &Locations, b: &Locations) -> Option<u64> {
        locked!(read x = a.routes_lock, write y = b.routes_lock => {
            if x.version == 0 {
                return None;
            }
            y.version += 1;
            Some(y.version)
        })
    }
    assert_eq!(early(&a, &b), None);
    fn question(a: &Locations, b: &Locations) -> Result<(), String> {
        locked!(write y = b.routes_lock, read x = a.routes_lock => {
            Err(format!("{}", x.version + y.version))?;
            Ok(())
        })
    }
    assert_eq!(question(&a, &b), Err("2".into()));
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        locked!(read _x = a.routes_lock, write y = b.routes_lock => {
            y.version = 99;
            panic!("inside");
        })
    }));
    assert!(panicked.is_err());
    assert!(
        a.try_write_routes_lock().is_some(),
        "the read side was released"
    );
    assert_eq!(b.try_write_routes_lock().expect("released").version, 99);

    // The single forms too.
    let v = locked!(read r = a.routes_lock => { r.routes[0].1 });
    assert_eq!(v, 1);
    locked!(write w = a.routes_lock => { w.version = 5 });
    assert_eq!(a.read_routes_lock().version, 5);
    // An entry of a set of reader-writer locks.
    locked!(read a.stripes[1], write b.stripes[1] => {
        assert!(a.try_write_contacts(1).is_none());
        assert!(b.try_read_contacts(1).is_none());
        assert!(a.try_read_contacts(1).is_some(), "readers share");
    });
    assert!(a.try_write_contacts(1).is_some() && b.try_write_contacts(1).is_some());
}

#[test]
fn reading_and_writing_one_lock_in_one_locked_panics_as_named_twice() {
    let a = Locations::new([(0, 0); 8], 0, [(0, 0); 16], 0, AtomicU32::new(0));
    let err = catch_unwind(AssertUnwindSafe(
        || locked!(read a.routes_lock, write a.routes_lock => {}),
    ))
    .unwrap_err();
    let text = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("named twice"), "{text}");
    assert!(a.try_write_routes_lock().is_some(), "nothing left held");
}

/// Two processes name the same read and write locks in opposite orders, many times: both
/// finish (the order is one, whatever was written), each within its deadline.
#[test]
fn processes_naming_read_and_write_locks_in_opposite_orders_do_not_deadlock() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let a = region.alloc_zeroed::<Locations>().unwrap();
    let b = region.alloc_zeroed::<Locations>().unwrap();
    const ROUNDS: u64 = 2_000;
    let forward = fork(|| {
        for _ in 0..ROUNDS {
            locked!(read x = a.routes_lock, write y = b.routes_lock => {
                assert!(x.version <= ROUNDS);
                y.version += 1;
            });
        }
        0
    });
    let backward = fork(|| {
        for _ in 0..ROUNDS {
            locked!(write y = a.routes_lock, read x = b.routes_lock => {
                assert!(x.version <= ROUNDS);
                y.version += 1;
            });
        }
        0
    });
    assert_eq!(forward.join_within(CHILD_DEADLINE, String::new), 0);
    assert_eq!(backward.join_within(CHILD_DEADLINE, String::new), 0);
    assert_eq!(a.read_routes_lock().version, ROUNDS);
    assert_eq!(b.read_routes_lock().version, ROUNDS);
}

/// A `GenRwLock` chains to a group as its write side: while the group is held, no reader
/// gets in, and after it, readers do.
#[test]
fn a_gen_rw_lock_chained_to_a_group_is_taken_for_writing_with_it() {
    let region = lockkit::ShmRegion::anonymous(1 << 16).unwrap();
    let rw = std::sync::Arc::new(region.alloc(lockkit::GenRwLock::new()).unwrap());
    let group = lockkit::grp::GrpLock::new();
    group.chain_lock(rw.clone(), 1).unwrap();
    let g = group.lock();
    let reader = {
        let rw = rw.clone();
        std::thread::spawn(move || rw.try_read().is_some())
    };
    assert!(
        !reader.join().unwrap(),
        "a reader got in while the group held the write side"
    );
    drop(g);
    assert!(
        rw.try_read().is_some(),
        "the group did not give the write side back"
    );
}

/// What `locked!` calls, called by hand (adversary round 5): a guard holding a lock's read
/// side does not lend its write side, though both have the lock's `chain_id`; the write
/// side lends the read side's `&T`.
#[test]
fn a_held_read_side_never_lends_the_write_sides_data() {
    use lockkit::__private::{lock_all, read_side, write_side, ChainLock};
    let region = lockkit::ShmRegion::anonymous(1 << 16).unwrap();
    let lock = region.alloc(lockkit::RwLock::new(0u64)).unwrap();
    let (rs, ws) = (read_side(&*lock), write_side(&*lock));
    {
        let g = lock_all([&rs as &dyn ChainLock]);
        let lent = catch_unwind(AssertUnwindSafe(|| {
            let m = g.lend(&ws);
            *m += 1;
        }));
        assert!(lent.is_err(), "a read lock lent `&mut`");
    }
    let g = lock_all([&ws as &dyn ChainLock]);
    assert_eq!(*g.lend(&rs), 0);
}
