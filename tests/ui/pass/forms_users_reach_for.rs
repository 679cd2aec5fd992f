//! The forms added for users: lending data over several locks, RwLock read/write, RecLock,
//! timed waits, striped timed accessors, #[lock] on an alias, cfg'd fields (guarded and
//! striped), raw identifiers, Debug on a struct with striped fields, no_new, and a user type
//! called `String`.

use std::time::Duration;

use lockkit::{locked, shared_locked, GenLock, RecLock, RwLock, ShmMutex};

type Lock = GenLock;
use lockkit::GenLockSet as Stripes;

mod user {
    /// A user type that happens to be called `String`: plain bytes, fine in shm.
    #[lockkit::shared_locked]
    #[derive(Debug)]
    pub struct String {
        pub bytes: [u8; 16],
    }
}

#[shared_locked]
#[derive(Debug)]
pub struct Table {
    #[lock]
    calls: Lock,
    #[guarded_by(calls)]
    r#loop: u64,
    #[cfg(unix)]
    #[guarded_by(calls)]
    only_unix: u32,
    #[lock_set]
    stripes: Stripes<4>,
    #[striped_by(stripes)]
    cells: [u32; 8],
    // A striped field that exists only under a condition: so do its accessors.
    #[cfg(any())]
    #[striped_by(stripes)]
    never: [u32; 8],
    #[cfg(unix)]
    #[striped_by(stripes)]
    unix_cells: [u32; 4],
    name: user::String,
}

#[shared_locked(no_new)]
pub struct Custom {
    lock: GenLock,
    #[guarded_by(lock)]
    n: u64,
}

impl Custom {
    /// A `new` of the user's own: `no_new` leaves the name free.
    pub fn new() -> Self {
        Custom {
            lock: ShmMutex::new(CustomLockFields { n: 7 }),
        }
    }
}

fn main() {
    let t = Table::new(0, 0, [0; 8], [0; 4], user::String::new([0; 16]));
    *t.lock_unix_cells(3) += 1;
    t.lock_calls().r#loop += 1;
    t.lock_calls().only_unix += 1;
    assert!(t.try_lock_cells_for(1, Duration::from_millis(1)).is_some());
    println!("{t:?}");

    let a = ShmMutex::new(1u32);
    let b = ShmMutex::new(2u64);
    let c = GenLock::new();
    let sum = locked!(x = a, c, y = b => { *x += 1; *y as u32 + *x });
    assert_eq!(sum, 4);

    let rw = RwLock::new(5u32);
    locked!(write w = rw => { *w += 1 });
    assert_eq!(locked!(read r = rw => { *r }), 6);
    assert_eq!(locked!(try read r = rw => { *r } else { 0 }), 6);
    assert_eq!(
        locked!(try_for(Duration::from_millis(5)) write w = rw => { *w } else { 0 }),
        6
    );

    let rec = RecLock::new();
    locked!(rec => { locked!(rec => {}) });
    let m = ShmMutex::new(3u32);
    assert_eq!(locked!(try_for(Duration::from_millis(5)) g = m => { *g } else { 0 }), 3);

    // A lock that is called `read` is still a lock.
    let read = GenLock::new();
    locked!(read => {});
    assert_eq!(Custom::new().lock_lock().n, 7);
}
