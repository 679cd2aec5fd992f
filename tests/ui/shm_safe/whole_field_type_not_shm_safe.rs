// A field whose type only contains a type named like a non-shm one (here a user type called
// `String`, which is ShmSafe) is still judged by its whole type: `Local<String>` is not
// ShmSafe, so the struct does not compile, even where it is never used.
use std::marker::PhantomData;

#[derive(lockkit::ShmSafe)]
#[repr(C)]
pub struct String {
    pub byte: u8,
}

pub struct Local<T>(pub &'static str, PhantomData<T>);

#[derive(lockkit::ShmSafe)]
#[repr(C)]
pub struct Rec {
    pub f: Local<String>,
}

#[lockkit::shared_locked]
pub struct Table {
    lock: lockkit::GenLock,
    #[guarded_by(lock)]
    name: Local<String>,
}

fn main() {}
