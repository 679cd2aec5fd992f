//! A lock report stays bounded on a type of arrays nested as deep as a description may go
//! (62 levels, 2^19 GenLocks), with and without an inverted edge in the lock-order table
//! (which makes the report walk the region twice): each array level of each lock counts
//! against the scan's path budget. At most 1 s per report in an optimised build
//! (`cargo test --release --test report_bounds_deep -- --nocapture`); an adversarial review
//! measured 1.8-2.1 s before paths were counted by their levels.
#![forbid(unsafe_code)]

use std::os::unix::fs::FileExt;
use std::time::Instant;

use lockkit::report::Inspector;
use lockkit::ShmRegion;

type L0 = lockkit::GenLock;
type L1 = [L0; 2];
type L2 = [L1; 2];
type L3 = [L2; 2];
type L4 = [L3; 2];
type L5 = [L4; 2];
type L6 = [L5; 2];
type L7 = [L6; 2];
type L8 = [L7; 2];
type L9 = [L8; 2];
type L10 = [L9; 2];
type L11 = [L10; 2];
type L12 = [L11; 2];
type L13 = [L12; 2];
type L14 = [L13; 2];
type L15 = [L14; 2];
type L16 = [L15; 2];
type L17 = [L16; 2];
type L18 = [L17; 2];
type L19 = [L18; 2];
type L20 = [L19; 1];
type L21 = [L20; 1];
type L22 = [L21; 1];
type L23 = [L22; 1];
type L24 = [L23; 1];
type L25 = [L24; 1];
type L26 = [L25; 1];
type L27 = [L26; 1];
type L28 = [L27; 1];
type L29 = [L28; 1];
type L30 = [L29; 1];
type L31 = [L30; 1];
type L32 = [L31; 1];
type L33 = [L32; 1];
type L34 = [L33; 1];
type L35 = [L34; 1];
type L36 = [L35; 1];
type L37 = [L36; 1];
type L38 = [L37; 1];
type L39 = [L38; 1];
type L40 = [L39; 1];
type L41 = [L40; 1];
type L42 = [L41; 1];
type L43 = [L42; 1];
type L44 = [L43; 1];
type L45 = [L44; 1];
type L46 = [L45; 1];
type L47 = [L46; 1];
type L48 = [L47; 1];
type L49 = [L48; 1];
type L50 = [L49; 1];
type L51 = [L50; 1];
type L52 = [L51; 1];
type L53 = [L52; 1];
type L54 = [L53; 1];
type L55 = [L54; 1];
type L56 = [L55; 1];
type L57 = [L56; 1];
type L58 = [L57; 1];
type L59 = [L58; 1];
type L60 = [L59; 1];
type L61 = [L60; 1];
type L62 = [L61; 1];

#[test]
fn a_deeply_nested_array_of_locks() {
    // 0.87-1.29 s per report (6 runs of report() and the inspector over 2 runs; load-
    // dependent: borderline).
    case(false, "deep");
}

#[test]
fn a_deeply_nested_array_of_locks_and_one_inverted_edge() {
    // 1.8-2.1 s per report (3/3 runs, both report() and the inspector's): over the limit.
    case(true, "deep-inv");
}

fn case(inversion: bool, tag: &str) {
    let name = format!("/lockkit-adv2-{tag}-{}", std::process::id());
    let region = ShmRegion::create(&name, 32 << 20).unwrap();
    let obj = region.alloc_zeroed::<L62>().unwrap();
    if inversion {
        // One inverted edge in the lock-order table (as report_bounds writes them): the
        // report then walks every description a second time to name its two ends.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/dev/shm{name}"))
            .unwrap();
        let stats = region.stats().unwrap();
        let at = (stats.heap_start + stats.heap_size + stats.type_registry.0) as u64;
        let from = obj.ptr().offset();
        for (k, v) in [1, from, from + 4, 0, 0, 1, 1, 1].into_iter().enumerate() {
            file.write_all_at(&u64::to_ne_bytes(v), at + 8 * k as u64)
                .unwrap();
        }
    }
    let mut worst = std::time::Duration::ZERO;
    for _ in 0..3 {
        let t = Instant::now();
        let r = region.report();
        let own = t.elapsed();
        let t = Instant::now();
        let _ = Inspector::open(&name).unwrap().report();
        let other = t.elapsed();
        println!(
            "report() {own:?}, inspector {other:?}, {} objects, {} inversions",
            r.objects,
            r.inversions.len()
        );
        worst = worst.max(own).max(other);
    }
    let _ = std::fs::remove_file(format!("/dev/shm{name}"));
    assert!(
        cfg!(debug_assertions) || worst <= std::time::Duration::from_secs(1),
        "a report took {worst:?} (limit 1 s)"
    );
}
