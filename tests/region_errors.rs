//! Every way opening a named region can fail, each produced for real, each its own error.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{shm_path, unique_name};
use lockkit::{Error, ShmRegion};

const SIZE: usize = 1 << 16;

/// A region's bytes, copied out of its file so that tests can damage a copy.
fn region_bytes() -> Vec<u8> {
    let name = unique_name("src");
    let r = ShmRegion::create(&name, SIZE).unwrap();
    let bytes = std::fs::read(shm_path(&name)).unwrap();
    drop(r);
    bytes
}

/// Writes `bytes` as the shm object `name`, removed again when the guard drops.
fn plant<'a>(name: &'a str, bytes: &[u8]) -> impl Drop + 'a {
    std::fs::write(shm_path(name), bytes).unwrap();
    scopeguard::guard(name, |n| {
        let _ = std::fs::remove_file(shm_path(n));
    })
}

#[test]
fn a_missing_name_is_not_found() {
    let e = ShmRegion::open(&unique_name("missing")).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("no shared-memory region named"));
}

#[test]
fn an_invalid_name_is_rejected_before_the_system_sees_it() {
    for bad in ["", "/", "a/b", "..", "x\0y"] {
        let e = ShmRegion::open(bad).unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{bad:?}: {e}");
        let e = ShmRegion::create(bad, SIZE).unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{bad:?}: {e}");
    }
}

#[test]
fn the_leading_slash_is_optional() {
    let name = unique_name("slash");
    let r = ShmRegion::create(&name, SIZE).unwrap();
    let bare = name.trim_start_matches('/');
    let o = ShmRegion::open(bare).unwrap();
    assert_eq!(o.name(), r.name());
}

#[test]
fn creating_a_name_twice_fails_without_harming_the_first() {
    let name = unique_name("twice");
    let r = ShmRegion::create(&name, SIZE).unwrap();
    let b = r.alloc(42u64).unwrap();
    r.publish("answer", &b).unwrap();
    let e = ShmRegion::create(&name, SIZE).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    let o = ShmRegion::open(&name).unwrap();
    assert_eq!(*o.lookup::<u64>("answer").unwrap(), 42);
}

#[test]
fn a_region_too_small_for_its_header_is_refused() {
    let e = ShmRegion::anonymous(100).unwrap_err();
    assert!(matches!(e, Error::RegionTooSmall { .. }), "{e}");
    let name = unique_name("small");
    let e = ShmRegion::create(&name, 100).unwrap_err();
    assert!(matches!(e, Error::RegionTooSmall { .. }), "{e}");
    assert!(
        !shm_path(&name).exists(),
        "a failed create leaves no object behind"
    );
}

#[test]
fn a_file_of_garbage_is_not_a_lockkit_region() {
    let name = unique_name("garbage");
    let mut x = 0x1234_5678_9abc_def0u64;
    let bytes: Vec<u8> = (0..SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let _g = plant(&name, &bytes);
    let e = ShmRegion::open(&name).unwrap_err();
    assert!(matches!(e, Error::NotLockkitRegion { .. }), "{e}");
    let _g2 = plant(&name, b"hello");
    let e = ShmRegion::open(&name).unwrap_err();
    assert!(matches!(e, Error::NotLockkitRegion { .. }), "{e}");
}

#[test]
fn an_empty_object_is_not_a_lockkit_region() {
    let name = unique_name("empty");
    let _g = plant(&name, b"");
    let e = ShmRegion::open(&name).unwrap_err();
    assert!(matches!(e, Error::NotLockkitRegion { .. }), "{e}");
}

#[test]
fn a_truncated_region_is_reported_with_both_sizes() {
    let bytes = region_bytes();
    let name = unique_name("trunc");
    // Past the header (about 8 KiB), short of the region.
    let _g = plant(&name, &bytes[..16384]);
    match ShmRegion::open(&name).unwrap_err() {
        Error::Truncated {
            expected, actual, ..
        } => {
            assert_eq!(expected, SIZE as u64);
            assert_eq!(actual, 16384);
        }
        e => panic!("expected Truncated, got {e}"),
    }
    let _g = plant(&name, &bytes[..1000]);
    let e = ShmRegion::open(&name).unwrap_err();
    assert!(matches!(e, Error::Truncated { .. }), "{e}");
}

#[test]
fn a_region_of_another_layout_version_is_refused() {
    let mut bytes = region_bytes();
    bytes[8..12].copy_from_slice(&99u32.to_ne_bytes());
    let name = unique_name("version");
    let _g = plant(&name, &bytes);
    match ShmRegion::open(&name).unwrap_err() {
        Error::VersionMismatch {
            found, expected, ..
        } => assert!(found == 99 && expected != 99, "{found} {expected}"),
        e => panic!("expected VersionMismatch, got {e}"),
    }
}

#[test]
fn a_header_whose_sizes_disagree_with_its_checksum_is_corrupt() {
    let mut bytes = region_bytes();
    // total_size sits at offset 16: claim a smaller region than the file.
    bytes[17] ^= 0x01;
    let name = unique_name("corrupt");
    let _g = plant(&name, &bytes);
    let e = ShmRegion::open(&name).unwrap_err();
    assert!(matches!(e, Error::CorruptHeader { .. }), "{e}");
}

#[test]
fn a_header_that_never_became_ready_is_corrupt() {
    let mut bytes = region_bytes();
    // `state` sits at offset 48.
    bytes[48..52].fill(0);
    let name = unique_name("unready");
    let _g = plant(&name, &bytes);
    let t0 = std::time::Instant::now();
    let e = ShmRegion::open(&name).unwrap_err();
    assert!(matches!(e, Error::CorruptHeader { .. }), "{e}");
    assert!(e.to_string().contains("never finished"), "{e}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_process_without_permission_is_denied() {
    let _s = common::serial();
    let name = unique_name("perm");
    let r = ShmRegion::create(&name, SIZE).unwrap();
    let mode = std::fs::metadata(shm_path(&name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Root ignores file modes: drop to an unprivileged user in a child and try there.
        let child = common::fork(|| {
            // SAFETY: changing this child's own ids; it exits right after.
            if unsafe { libc::setgid(65534) } != 0 || unsafe { libc::setuid(65534) } != 0 {
                return 2;
            }
            match ShmRegion::open(&name) {
                Err(Error::PermissionDenied { .. }) => 0,
                _ => 1,
            }
        });
        assert_eq!(child.join(), 0, "an unprivileged child was not denied");
    } else {
        std::fs::set_permissions(shm_path(&name), std::fs::Permissions::from_mode(0o000)).unwrap();
        let e = ShmRegion::open(&name).unwrap_err();
        assert!(matches!(e, Error::PermissionDenied { .. }), "{e}");
    }
    drop(r);
}

#[test]
fn the_creator_chooses_the_mode_whatever_the_umask() {
    let name = unique_name("mode");
    let _r = ShmRegion::create_with_mode(&name, SIZE, 0o660).unwrap();
    let mode = std::fs::metadata(shm_path(&name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
}

#[test]
fn unlink_removes_the_name_but_not_the_mapping() {
    let name = unique_name("unlink");
    let r = ShmRegion::create(&name, SIZE).unwrap();
    let b = r.alloc(5u32).unwrap();
    ShmRegion::unlink(&name).unwrap();
    assert!(matches!(
        ShmRegion::open(&name),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(*b, 5);
    let e = ShmRegion::unlink(&name).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}

#[test]
fn keep_name_leaves_the_region_for_later_openers() {
    let name = unique_name("keep");
    {
        let r = ShmRegion::create(&name, SIZE).unwrap();
        let b = r.alloc(77u64).unwrap();
        r.publish("seventy-seven", &b).unwrap();
        r.keep_name();
    }
    let o = ShmRegion::open(&name).unwrap();
    assert_eq!(*o.lookup::<u64>("seventy-seven").unwrap(), 77);
    ShmRegion::unlink(&name).unwrap();
}

/// In a child with a mount namespace of its own, puts a 4 MiB tmpfs over /dev/shm, as a
/// container's small /dev/shm; `false` if this machine does not allow it.
fn small_dev_shm() -> bool {
    // SAFETY: plain syscalls in a single-threaded forked child; the strings are valid C
    // strings that outlive the calls.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return false;
        }
        if libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return false;
        }
        libc::mount(
            c"tmpfs".as_ptr(),
            c"/dev/shm".as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"size=4m".as_ptr().cast(),
        ) == 0
    }
}

#[test]
fn a_region_larger_than_the_free_space_is_refused_at_create_instead_of_crashing_later() {
    let _s = common::serial();
    let child = common::fork(|| {
        if !small_dev_shm() {
            return 77; // the test fails below: it could not set up
        }
        let name = "/lockkit-test-full";
        match ShmRegion::create(name, 16 << 20) {
            Err(Error::NoSpace { requested, .. }) if requested == 16 << 20 => {}
            Err(_) => return 2,
            Ok(r) => {
                // The old behaviour: created; the first touch past the space is SIGBUS.
                let big = r.alloc_zeroed::<[u64; (8 << 20) / 8]>();
                let _ = big.map(|b| std::hint::black_box(b[b.len() - 1]));
                return 3;
            }
        }
        // A region that fits is created and fully usable.
        let Ok(r) = ShmRegion::create(name, 2 << 20) else {
            return 4;
        };
        let Ok(b) = r.alloc_zeroed::<[u64; (1 << 20) / 8]>() else {
            return 5;
        };
        i32::from(b[b.len() - 1] != 0) * 6
    });
    match child.join() {
        77 => panic!("cannot mount a small tmpfs over /dev/shm in a mount namespace (needs root)"),
        code => assert_eq!(code, 0, "child failed at step {code}"),
    }
}

#[test]
fn an_old_instance_going_away_does_not_unlink_the_name_of_the_one_that_replaced_it() {
    let name = unique_name("replaced");
    let old = ShmRegion::create(&name, 1 << 16).unwrap();
    ShmRegion::unlink(&name).unwrap();
    let new = ShmRegion::create(&name, 1 << 16).unwrap();
    drop(old); // the old creator's last handle: its name now belongs to `new`
    assert!(
        shm_path(&name).exists(),
        "the old instance unlinked the new instance's name"
    );
    assert!(ShmRegion::open(&name).is_ok());
    drop(new);
    assert!(
        !shm_path(&name).exists(),
        "the new instance unlinks its own name"
    );
}

#[test]
fn a_directory_at_the_name_is_reported_as_what_it_is() {
    let name = unique_name("dir");
    std::fs::create_dir(shm_path(&name)).unwrap();
    let _cleanup = scopeguard::guard((), |()| {
        let _ = std::fs::remove_dir(shm_path(&name));
    });
    let e = ShmRegion::open(&name).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("directory"), "{text}");
}

#[test]
fn a_region_others_may_write_is_opened_only_when_asked_for() {
    let name = unique_name("shared-write");
    let _r = ShmRegion::create_with_mode(&name, SIZE, 0o660).unwrap();
    let e = ShmRegion::open(&name).unwrap_err();
    assert!(matches!(e, Error::Untrusted { .. }), "{e}");
    assert!(e.to_string().contains("660"), "{e}");
    let r = lockkit::RegionOptions::new()
        .allow_shared_write(true)
        .open(&name)
        .unwrap();
    assert_eq!(r.size(), SIZE);
}

#[test]
fn a_region_owned_by_another_user_is_opened_only_when_asked_for() {
    let name = unique_name("foreign");
    let _r = ShmRegion::create(&name, SIZE).unwrap();
    // SAFETY: a valid path; chown of our own file (as root; skipped otherwise).
    let path = std::ffi::CString::new(shm_path(&name).to_str().unwrap()).unwrap();
    if unsafe { libc::chown(path.as_ptr(), 65534, 65534) } != 0 {
        eprintln!("skipped: cannot chown here (not root)");
        return;
    }
    let e = ShmRegion::open(&name).unwrap_err();
    assert!(matches!(e, Error::Untrusted { .. }), "{e}");
    assert!(e.to_string().contains("65534"), "{e}");
    assert!(lockkit::RegionOptions::new()
        .allow_foreign_owner(true)
        .open(&name)
        .is_ok());
}

#[test]
fn world_writable_and_set_id_modes_are_refused_at_create_unless_asked_for() {
    for mode in [0o666, 0o4600, 0o1600] {
        let name = unique_name("mode");
        let e = ShmRegion::create_with_mode(&name, SIZE, mode).unwrap_err();
        assert!(matches!(e, Error::UnsafeMode { .. }), "{mode:o}: {e}");
        assert!(!shm_path(&name).exists(), "nothing was created");
    }
    let name = unique_name("mode-ok");
    let r = lockkit::RegionOptions::new()
        .mode(0o666)
        .allow_unsafe_mode(true)
        .create(&name, SIZE)
        .unwrap();
    let mode = std::fs::metadata(shm_path(&name))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o666);
    drop(r);
}

#[test]
fn a_half_written_header_at_a_name_is_neither_waited_for_nor_removed() {
    let mut bytes = region_bytes();
    // As an older lockkit's creator, killed half-way, left it: no magic, not ready, a pid
    // that no process has. Regions are now named only once complete, so this is not one:
    // nothing judges its maker by its pid, nobody waits for it, and nothing removes it.
    bytes[0..8].fill(0);
    bytes[48..52].fill(0);
    bytes[52..56].copy_from_slice(&u32::MAX.to_ne_bytes());
    let name = unique_name("half-written");
    let _g = plant(&name, &bytes);
    let t0 = std::time::Instant::now();
    let e = ShmRegion::open(&name).unwrap_err();
    assert!(matches!(e, Error::NotLockkitRegion { .. }), "{e}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(1),
        "nothing to wait for"
    );
    let e = lockkit::RegionOptions::new()
        .replace_abandoned(true)
        .create(&name, SIZE)
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    assert_eq!(
        std::fs::read(shm_path(&name)).unwrap(),
        bytes,
        "left as it was"
    );
}

#[test]
fn opens_racing_a_create_and_unlink_loop_wait_instead_of_misreading_the_header() {
    let _s = common::serial();
    let name = unique_name("race");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let creator = {
        let (name, stop) = (name.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut made = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(r) = ShmRegion::create(&name, 1 << 20) {
                    made += 1;
                    drop(r); // unlinks
                }
            }
            made
        })
    };
    let t0 = std::time::Instant::now();
    let (mut opened, mut bad) = (0, Vec::new());
    while t0.elapsed() < std::time::Duration::from_millis(1500) {
        match ShmRegion::open(&name) {
            Ok(_) => opened += 1,
            // The name was unlinked between the create and our open: fine.
            Err(Error::NotFound { .. }) => {}
            Err(e) => bad.push(e.to_string()),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let made = creator.join().unwrap();
    assert!(made > 10, "the creator made only {made} regions");
    assert!(
        bad.is_empty(),
        "{} of the opens misread a region being made: {:?}",
        bad.len(),
        &bad[..bad.len().min(3)]
    );
    eprintln!("{opened} opens succeeded against {made} creates");
}

#[test]
fn a_fifo_at_the_name_is_reported_without_blocking() {
    let _s = common::serial();
    let name = unique_name("fifo");
    let path = std::ffi::CString::new(shm_path(&name).to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let _cleanup = scopeguard::guard((), |()| {
        let _ = std::fs::remove_file(shm_path(&name));
    });
    // In a child: the old inspector blocked in open(2) for ever.
    let child = common::fork(|| {
        let fifo = |e: &Error| {
            matches!(
                e,
                Error::NotAnObject {
                    found: "a FIFO",
                    ..
                }
            )
        };
        match lockkit::report::Inspector::open(&name) {
            Err(e) if fifo(&e) => {}
            _ => return 1,
        }
        match ShmRegion::open(&name) {
            Err(e) if fifo(&e) => {}
            _ => return 2,
        }
        match ShmRegion::create(&name, SIZE) {
            Err(e) if fifo(&e) => {}
            _ => return 3,
        }
        0
    });
    let code = child.join_within(std::time::Duration::from_secs(20), String::new);
    assert_eq!(
        code, 0,
        "step {code} did not report the FIFO as NotAnObject"
    );
}

/// A copy of a region's bytes with holes wherever a page is all zeros, as
/// `cp --sparse=always` makes it.
fn write_sparse(path: &std::path::Path, bytes: &[u8]) {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.set_len(bytes.len() as u64).unwrap();
    for (i, page) in bytes.chunks(4096).enumerate() {
        if page.iter().any(|&b| b != 0) {
            f.write_all_at(page, (i * 4096) as u64).unwrap();
        }
    }
}

/// Writes a file into /dev/shm until it is full.
fn fill_dev_shm() -> std::path::PathBuf {
    use std::io::Write;
    let path = std::path::PathBuf::from("/dev/shm/lockkit-test-filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let page = [0xa5u8; 4096];
    while f.write_all(&page).is_ok() {}
    path
}

#[test]
fn a_sparse_copy_on_a_full_dev_shm_is_refused_at_open_instead_of_crashing_later() {
    let _s = common::serial();
    let child = common::fork(|| {
        if !small_dev_shm() {
            return 77;
        }
        let (src, copy) = ("/lockkit-test-sparse-src", "/lockkit-test-sparse");
        let bytes = {
            let Ok(_r) = ShmRegion::create(src, 2 << 20) else {
                return 1;
            };
            std::fs::read(shm_path(src)).unwrap()
        };
        write_sparse(&shm_path(copy), &bytes);
        let filler = fill_dev_shm();
        match ShmRegion::open(copy) {
            Err(Error::NoSpace { .. }) => {}
            Ok(r) => {
                // The old behaviour: opened; reading a hole is a SIGBUS.
                let _ = r.check();
                return 2;
            }
            Err(_) => return 3,
        }
        match lockkit::report::Inspector::open(copy) {
            Err(Error::NoSpace { .. }) => {}
            Ok(i) => {
                let _ = i.report();
                return 4;
            }
            Err(_) => return 5,
        }
        // With room again, the same copy opens and is whole.
        std::fs::remove_file(filler).unwrap();
        let Ok(r) = ShmRegion::open(copy) else {
            return 6;
        };
        if r.check().is_err() || lockkit::report::Inspector::open(copy).is_err() {
            return 7;
        }
        0
    });
    match child.join() {
        0 => {}
        77 => panic!("cannot mount a small tmpfs over /dev/shm in a mount namespace (needs root)"),
        135 => panic!("the child was killed by SIGBUS reading the region"),
        code => panic!("the child failed at step {code}"),
    }
}
