//! Every form of the macros in an edition-2015 crate.

#[macro_use]
extern crate lockkit;

use lockkit::grp::{GrpLock, WeakGrpLock};
use lockkit::{GenLock, GenLockSet, RwLock, ShmMutex};
use std::time::Duration;

#[shared_locked]
struct Table {
    calls: GenLock,
    #[guarded_by(calls)]
    active: u32,
    stripes: GenLockSet<4>,
    #[striped_by(stripes)]
    per: [u32; 8],
}

#[grp_member(on_destroy = ended)]
struct Dialog {
    #[grp]
    group: WeakGrpLock,
    requests: u32,
}

impl Dialog {
    fn ended(&mut self) {}
}

fn parse_under(m: &ShmMutex<u32>, s: &str) -> Result<u32, std::num::ParseIntError> {
    locked!(g = m => {
        *g += s.parse::<u32>()?;
        Ok(*g)
    })
}

fn main() {
    let m = ShmMutex::new(1u32);
    let a = GenLock::new();
    let t = Table::new(0, [0; 8]);
    locked!(g = m => { *g += 1 });
    locked!(x = m, a => { *x += 1 });
    let tried = locked!(try g = m => { *g } else { 0 });
    let timed = locked!(try_for(Duration::from_millis(5)) g = m => { *g } else { 0 });
    assert_eq!((tried, timed), (3, 3));
    let rw = RwLock::new(0u32);
    locked!(write w = rw => { *w += 1 });
    assert_eq!(locked!(try read r = rw => { *r } else { 0 }), 1);
    locked!(t.stripes[1] => {});
    t.lock_calls().active += 1;
    *t.lock_per(3) += 1;
    for i in 0..3 {
        locked!(m => {
            if i == 1 {
                continue;
            }
            if i == 2 {
                break;
            }
        });
    }
    assert_eq!(parse_under(&m, "1"), Ok(4));
    assert!(parse_under(&m, "x").is_err());
    let group = GrpLock::new();
    let d = Dialog { group: WeakGrpLock::new(), requests: 0 }.join(&group);
    locked!(d = d => { d.requests += 1 });
    assert!(!m.is_locked() && !a.is_locked());
    println!("edition 2015: OK");
}
