//! Adversary round 3: `#[derive(ShmSafe)]` reads the struct's tokens, and an attribute macro
//! placed after it (here `adv3_pm::pointerise`, a safe proc macro) rewrites the struct rustc
//! compiles afterwards: `p: u64` becomes `p: &'static u64`. The derive's impl for a
//! non-generic struct has no per-field bounds (only `Self: Sync`), and its assertions name
//! the old `u64`, so lockkit's real `ShmSafe` holds for a struct with a process-local
//! reference. A second process (this binary, re-executed) looks the object up and reads
//! through the first process's address: it crashes (SIGSEGV) or reads another value.
#![forbid(unsafe_code)]
use lockkit::{ShmRegion, ShmSafe};

#[derive(ShmSafe)]
#[adv3_pm::pointerise]
#[repr(C)]
pub struct Holder {
    pub p: u64,
}

fn is_shm<T: lockkit::ShmSafe>() {}

fn main() {
    is_shm::<Holder>();
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "child" {
        let region = ShmRegion::open(&args[2]).unwrap();
        let h: &Holder = region.lookup::<Holder>("holder").unwrap();
        eprintln!("child: address {:p}", h.p);
        let v = *h.p; // the parent's heap address, meaningless here
        println!("child read {v:#x}");
        return;
    }
    let name = format!("adv3_attr_{}", std::process::id());
    let region = ShmRegion::create(&name, 1 << 20).unwrap();
    let leaked: &'static u64 = Box::leak(Box::new(0x5eed_u64));
    let b = region.alloc(Holder { p: leaked }).unwrap();
    region.publish("holder", &b).unwrap();
    println!("parent stored a reference to {:#x} at {:p}", *b.p, b.p);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child", &name])
        .output()
        .unwrap();
    println!("child: {} / {}", out.status, String::from_utf8_lossy(&out.stdout).trim());
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
    if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("0x5eed") {
        println!("child read the value (same address by chance)");
    } else {
        println!("UNSOUND: safe code put a process-local reference into shared memory");
    }
}
