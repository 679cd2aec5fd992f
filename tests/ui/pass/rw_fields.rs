//! Every form of reader-writer field locks, compiled together.

use lockkit::{
    locked, shared_locked, GenLock, GenRwLock, GenRwLockSet, ReadGuard, RwLock, StripeReadGuard,
    StripeWriteGuard, WriteGuard,
};

type Lock = GenRwLock;
type Stripes = GenRwLockSet<2>;

#[shared_locked]
pub struct Locations {
    routes_lock: GenRwLock,
    #[guarded_by(routes_lock)]
    pub routes: [u32; 4],
    #[cfg(any())]
    #[guarded_by(routes_lock)]
    never: u8,
    #[rw_lock]
    aliased: Lock,
    #[guarded_by(aliased)]
    version: u64,
    stripes: GenRwLockSet<4>,
    #[striped_by(stripes)]
    contacts: [u64; 16],
    #[rw_lock_set]
    more: Stripes,
    #[striped_by(more)]
    #[cfg(all())]
    pairs: [(u8, u8); 4],
    #[standalone]
    admin: GenRwLock,
    other: GenLock,
    #[guarded_by(other)]
    hits: u64,
}

fn main() {
    let t = Locations::new([0; 4], 0, [0; 16], [(0, 0); 4], 0);
    t.write_routes_lock().routes[0] = 1;
    let _: [u32; 4] = t.read_routes_lock().routes;
    let _ = t.try_read_routes_lock().map(|g| ReadGuard::owner_died(&g));
    let _ = t.try_read_routes_lock_for(std::time::Duration::ZERO);
    if let Some(mut w) = t.try_write_routes_lock() {
        if WriteGuard::owner_died(&w) {
            WriteGuard::mark_consistent(&mut w);
        }
    }
    let _ = t.try_write_routes_lock_for(std::time::Duration::ZERO);
    t.write_aliased().version += 1;
    *t.write_contacts(3) += 1;
    let r: StripeReadGuard<'_, u64> = t.read_contacts(3);
    drop(r);
    let mut w: StripeWriteGuard<'_, (u8, u8)> = t.write_pairs(1);
    w.0 = 1;
    drop(w);
    let _ = t.try_read_pairs(1).is_some() && t.try_write_pairs_for(2, Default::default()).is_some();
    let _ = t.try_read_contacts_for(1, Default::default());
    let _ = t.try_write_contacts(1);
    drop(t.admin.read());
    locked!(read r = t.routes_lock => { let _: &[u32; 4] = &r.routes; });
    locked!(write w = t.routes_lock => { w.routes[1] = 2; });
    locked!(try read r = t.routes_lock => { let _ = r.routes; } else {});
    locked!(try_for(Default::default()) write w = t.aliased => { w.version = 0; } else {});
    locked!(read r = t.routes_lock, write w = t.aliased, h = t.other, read t.admin => {
        w.version = r.routes[0] as u64 + h.hits;
    });
    locked!(read t.stripes[0], write t.more[1] => {});
    let plain = RwLock::new(0u32);
    locked!(read a = plain, write b = t.aliased => { b.version = *a as u64 });
}
