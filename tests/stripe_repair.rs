//! A stripe guard lends every element of its stripe, so a stripe left half-updated by a
//! holder that died is repaired whole under one hold (issue 24.1).

mod common;

use std::time::Duration;

use common::{fork, serial};
use lockkit::{shared_locked, GenLockSet, ShmRegion, StripeGuard};

#[shared_locked]
pub struct Pairs {
    stripes: GenLockSet<4>,
    /// Each element is a pair that must stay equal: a holder writes `.0`, then `.1`.
    #[striped_by(stripes)]
    pairs: [(u64, u64); 18],
}

#[test]
fn a_stripe_guard_lends_exactly_the_elements_of_its_stripe() {
    let table = Pairs::new([(0, 0); 18]);
    let mut g = table.lock_pairs(6);
    assert_eq!((g.stripe(), g.stripes(), g.index()), (2, 4, 6));
    let indices: Vec<usize> = g.iter_mut().map(|(i, _)| i).collect();
    assert_eq!(indices, [2, 6, 10, 14]);
    assert_eq!(g.iter().map(|(i, _)| i).collect::<Vec<_>>(), indices);
    for i in [2, 10, 14] {
        g.get_mut(i).unwrap().0 = i as u64;
    }
    for i in [0, 1, 3, 5, 7, 11, 13, 16, 17, 18, 100] {
        assert!(g.get_mut(i).is_none(), "element {i} is not of stripe 2");
        assert!(g.get(i).is_none(), "element {i} is not of stripe 2");
    }
    assert_eq!(g.get(10).map(|p| p.0), Some(10));
    g.0 = 60;
    drop(g);
    // What the guard wrote landed in the elements, reached again through their own guards.
    assert_eq!(table.lock_pairs(10).0, 10);
    assert_eq!(table.lock_pairs(2).0, 2);
    assert_eq!(table.lock_pairs(6).0, 60);
    assert_eq!(table.lock_pairs(3).0, 0);
    // The last stripe with the uneven tail: 3, 7, 11, 15 (18 elements over 4 stripes).
    let mut g = table.lock_pairs(15);
    assert_eq!(
        g.iter_mut().map(|(i, _)| i).collect::<Vec<_>>(),
        [3, 7, 11, 15]
    );
    drop(g);
    let mut g = table.lock_pairs(17);
    assert_eq!(
        g.iter_mut().map(|(i, _)| i).collect::<Vec<_>>(),
        [1, 5, 9, 13, 17]
    );
}

#[test]
fn a_stripe_left_half_updated_by_a_dead_holder_is_repaired_under_one_hold() {
    let _s = serial();
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let table = region.alloc_zeroed::<Pairs>().unwrap();
    // The holder writes the first half of elements 1 and 9 (stripe 1) and dies holding it.
    let holder = fork(|| {
        let mut g = table.lock_pairs(1);
        g.0 = 7;
        g.get_mut(9).expect("same stripe").0 = 7;
        // SAFETY: ends the child at once, holding the stripe (the kernel proves the death).
        unsafe { libc::_exit(0) }
    });
    assert_eq!(holder.join(), 0);

    // Taken for element 5, which the holder never touched: the stripe is still reported.
    let mut g = table.lock_pairs(5);
    assert!(StripeGuard::owner_died(&g));
    let mut repaired = Vec::new();
    for (i, pair) in g.iter_mut() {
        if pair.0 != pair.1 {
            pair.1 = pair.0;
            repaired.push(i);
        }
    }
    assert_eq!(repaired, [1, 9]);
    // Still one hold: no other element of the stripe can be taken meanwhile.
    assert!(table.try_lock_pairs(13).is_none());
    assert!(table
        .try_lock_pairs_for(17, Duration::from_millis(1))
        .is_none());
    StripeGuard::mark_consistent(&mut g);
    drop(g);

    let g = table.lock_pairs(9);
    assert!(!StripeGuard::owner_died(&g), "marked consistent");
    assert_eq!(*g, (7, 7));
    drop(g);
    assert_eq!(*table.lock_pairs(1), (7, 7));
}
