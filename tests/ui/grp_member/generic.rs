// A generic member: its impls require what a member must be (Send + 'static).
use lockkit::grp::{GrpLock, WeakGrpLock};
use lockkit::grp_member;
use std::rc::Rc;

#[grp_member]
struct Tsx<T> {
    #[grp]
    group: WeakGrpLock,
    value: T,
}

fn main() {
    let g = GrpLock::new();
    let _ok = Tsx { group: WeakGrpLock::new(), value: 1u32 }.join(&g);
    let _not_send = Tsx { group: WeakGrpLock::new(), value: Rc::new(1) }.join(&g);
}
