use lockkit::grp::{GrpLock, WeakGrpLock};
use lockkit::{grp_member, locked, GenLock};

#[grp_member]
struct Tsx {
    #[grp]
    group: WeakGrpLock,
    n: u32,
}

fn main() {
    let g = GrpLock::new();
    let t = Tsx { group: WeakGrpLock::new(), n: 0 }.join(&g);
    let a = GenLock::new();
    locked!(x = t, a => { x.n += 1 });
}
