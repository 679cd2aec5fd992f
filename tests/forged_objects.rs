//! Safe code cannot forge, alias or outlive a shared object: a block header written into an
//! object's own data, or one left behind when a freed block merged into its neighbour, is
//! never taken for a live object, and a second free is refused without changing anything.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use lockkit::{Error, ShmMutex, ShmPtr, ShmRegion};

/// The 32 bytes in front of a payload: the block header the allocator wrote.
fn header_of<T>(obj: &T) -> [u64; 4] {
    let p = obj as *const T as *const u64;
    // SAFETY: every payload follows a 32-byte block header inside the same live mapping;
    // reading it (as a test, to copy it) touches memory the region owns.
    unsafe { [*p.sub(4), *p.sub(3), *p.sub(2), *p.sub(1)] }
}

#[test]
fn a_block_header_forged_inside_an_objects_data_is_not_an_object() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    // A real lock over four words, to copy its header from.
    let real = region.alloc(ShmMutex::new([0u64; 4])).unwrap();
    let forged_header = header_of(&*real);
    // Another object whose data the program controls entirely through safe code.
    let data = region.alloc([const { AtomicU64::new(0) }; 64]).unwrap();
    let base = data.ptr().offset();
    // A forged header at a block-aligned spot inside `data`.
    let heap_start = {
        let s = region.stats().unwrap();
        s.heap_start as u64
    };
    let first = (8..64)
        .map(|i| base + i * 8)
        .find(|off| (off - heap_start) % 32 == 0)
        .unwrap();
    let i = ((first - base) / 8) as usize;
    for (k, w) in forged_header.iter().enumerate() {
        data[i + k].store(*w, Relaxed);
    }
    let forged = ShmPtr::<ShmMutex<[u64; 4]>>::from_offset(first + 32);
    match region.get(forged) {
        Err(Error::InvalidPtr { .. }) => {}
        Ok(_) => panic!("a header forged inside another object's data was taken for a lock"),
        Err(e) => panic!("expected InvalidPtr, got {e}"),
    }
    assert!(
        region.get(real.ptr()).is_ok(),
        "the real one is still found"
    );
}

#[test]
fn a_freed_block_merged_into_its_neighbour_is_not_an_object_and_a_second_free_is_stale() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let a = region.alloc(ShmMutex::new(1u64)).unwrap();
    let b = region.alloc(ShmMutex::new(2u64)).unwrap();
    let _keep = region.alloc(ShmMutex::new(3u64)).unwrap();
    let b_ptr = b.ptr();
    // SAFETY: a bitwise copy of the handle, as a forked child would hold; only one of the
    // two frees can succeed. The copy shares the handle's reference to the region, so one
    // more reference is leaked to balance the second drop.
    let b_copy = unsafe { std::ptr::read(&b) };
    std::mem::forget(region.clone());
    // SAFETY: nothing uses `a` or `b` after these frees (the test only probes them by
    // offset, through the checked API).
    unsafe {
        region.free(a).unwrap();
        region.free(b).unwrap(); // merges into the free block `a` left
    }
    assert!(
        region.get(b_ptr).is_err(),
        "a stale pointer into a merged block resolved"
    );
    let before = region.stats().unwrap();
    // SAFETY: as above; this second free must be refused.
    let again = unsafe { region.free(b_copy) };
    assert!(matches!(again, Err(Error::StaleHandle)), "{again:?}");
    assert_eq!(
        region.stats().unwrap(),
        before,
        "a refused free changed nothing"
    );
}

#[test]
fn publishing_a_handle_whose_object_was_freed_is_refused() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let a = region.alloc(ShmMutex::new(1u64)).unwrap();
    // SAFETY: a bitwise copy, as a forked child would hold (one leaked region reference
    // balances its drop).
    let copy = unsafe { std::ptr::read(&a) };
    std::mem::forget(region.clone());
    // SAFETY: nothing uses the object afterwards; the copy is only published, which must
    // fail.
    unsafe { region.free(a).unwrap() };
    let e = region.publish("gone", &copy).unwrap_err();
    assert!(matches!(e, Error::StaleHandle), "{e}");
    assert!(region.lookup::<ShmMutex<u64>>("gone").is_err());
}

#[test]
fn a_refused_free_leaves_the_name_of_the_object_now_at_that_offset() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let old = region.alloc(ShmMutex::new(1u64)).unwrap();
    // SAFETY: a bitwise copy, as a forked child would hold (one leaked region reference
    // balances its drop); the copy is only freed again, which must be refused.
    let stale = unsafe { std::ptr::read(&old) };
    std::mem::forget(region.clone());
    let offset = old.ptr().offset();
    // SAFETY: nothing uses the object afterwards.
    unsafe { region.free(old).unwrap() };
    // The block is handed out again, to an object published under a name.
    let new = region.alloc(ShmMutex::new(2u64)).unwrap();
    assert_eq!(new.ptr().offset(), offset, "the allocator reused the block");
    region.publish("new", &new).unwrap();
    // SAFETY: the stale copy's free must be refused and change nothing.
    let again = unsafe { region.free(stale) };
    assert!(matches!(again, Err(Error::StaleHandle)), "{again:?}");
    let found = region.lookup::<ShmMutex<u64>>("new");
    assert!(
        found.as_ref().is_ok_and(|m| *m.lock() == 2),
        "the refused free unpublished the new object: {:?}",
        found.err()
    );
}
