//! `get` never hands out an object that `alloc` has not finished writing: the block becomes
//! an object (its bitmap bit is set, with `Release`) only after its bytes are written, under
//! the allocator lock. One thread allocates objects whose every valid value has a nonzero
//! byte at the end; others `get` at the offsets the next allocations will take, and fail if
//! they ever see the zero byte of a block not yet written. (An adversarial review found the
//! bit set before the write: thousands of invalid reads per run, 3/3.)
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockkit::{ShmPtr, ShmRegion, ShmSafe};

#[derive(ShmSafe, Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Never0 {
    One = 1,
}

#[derive(ShmSafe)]
#[repr(C)]
pub struct Big {
    data: [u64; 4096],
    e: Never0,
    pad: [u8; 7],
}

fn byte(e: &Never0) -> u8 {
    // SAFETY: reads the one byte behind a `&Never0`, as a `u8` (any byte is a valid `u8`),
    // to see whether it is a valid `Never0`, without relying on it being one.
    unsafe { *(e as *const Never0 as *const u8) }
}

#[test]
fn get_never_hands_out_an_object_before_alloc_has_written_it() {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = 0u64;
    let mut rounds = 0;
    while Instant::now() < deadline && seen == 0 && rounds < 10 {
        rounds += 1;
        let region = ShmRegion::anonymous(16 << 20).unwrap();
        let a = region
            .alloc(Big {
                data: [7; 4096],
                e: Never0::One,
                pad: [0; 7],
            })
            .unwrap();
        let b = region
            .alloc(Big {
                data: [7; 4096],
                e: Never0::One,
                pad: [0; 7],
            })
            .unwrap();
        let (o0, stride) = (a.ptr().offset(), b.ptr().offset() - a.ptr().offset());
        let next = Arc::new(AtomicU64::new(2));
        let stop = Arc::new(AtomicBool::new(false));
        let q = {
            let (region, next, stop) = (region.clone(), next.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut bad = 0u64;
                while !stop.load(Relaxed) {
                    let off = o0 + next.load(Relaxed) * stride;
                    if let Ok(big) = region.get(ShmPtr::<Big>::from_offset(off)) {
                        if byte(&big.e) != 1 {
                            bad += 1;
                        }
                    }
                }
                bad
            })
        };
        let mut k = 2;
        loop {
            next.store(k, Relaxed);
            if region
                .alloc(Big {
                    data: [7; 4096],
                    e: Never0::One,
                    pad: [0; 7],
                })
                .is_err()
            {
                break;
            }
            k += 1;
        }
        stop.store(true, Relaxed);
        seen += q.join().unwrap();
    }
    println!("invalid enum values observed through get: {seen} (in {rounds} regions)");
    assert_eq!(
        seen, 0,
        "get handed out a `Big` whose enum read 0 (not a variant)"
    );
}
