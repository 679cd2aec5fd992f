//! With the `lock-api` feature, the futex lock drives `lock_api`'s generic mutex, so
//! ecosystem types built on `lock_api` work on lockkit's lock word.
#![cfg(feature = "lock-api")]

use std::sync::Arc;
use std::time::Duration;

use lockkit::lock_api::Mutex;
use lockkit::raw::RawFutex;

#[test]
fn a_lock_api_mutex_over_the_futex_counts_exactly_from_several_threads() {
    let m: Arc<Mutex<RawFutex, u64>> = Arc::new(Mutex::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for _ in 0..50_000 {
                    *m.lock() += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*m.lock(), 200_000);
    assert!(!m.is_locked());
}

#[test]
fn lock_api_timed_locking_gives_up_while_another_thread_holds_it() {
    let m: Arc<Mutex<RawFutex, ()>> = Arc::new(Mutex::new(()));
    let g = m.lock();
    let m2 = Arc::clone(&m);
    let got = std::thread::spawn(move || m2.try_lock_for(Duration::from_millis(50)).is_some())
        .join()
        .unwrap();
    assert!(!got);
    drop(g);
    assert!(m.try_lock_for(Duration::from_millis(50)).is_some());
}

#[test]
fn a_guard_leaked_through_lock_api_by_a_thread_that_exited_keeps_the_mutex_held() {
    let m: &'static Mutex<RawFutex, u64> = Box::leak(Box::new(Mutex::new(0)));
    // lock_api's safe `leak`: a `&mut u64` for ever, from a thread that then exits.
    std::thread::spawn(move || {
        let forever: &mut u64 = lockkit::lock_api::MutexGuard::leak(m.lock());
        *forever += 1;
    })
    .join()
    .unwrap();
    // Its process lives, so the lock stays held: a second `&mut` would alias the first.
    assert!(m.try_lock_for(Duration::from_millis(300)).is_none());
    assert!(m.try_lock().is_none());
    assert!(m.is_locked());
}

#[test]
fn a_lock_api_mutex_is_not_shm_safe_and_shm_mutex_stands_in_for_it() {
    // Documented at `lockkit::lock_api`: its layout is the compiler's choice and its lock
    // cannot report a dead owner, so it stays out of regions.
    // Whether a type is ShmSafe, asked at compile time: the inherent const applies only
    // when it is, the trait's otherwise.
    struct Probe<T>(std::marker::PhantomData<T>);
    impl<T: lockkit::ShmSafe> Probe<T> {
        const IS_SHM_SAFE: bool = true;
    }
    trait NotShmSafe {
        const IS_SHM_SAFE: bool = false;
    }
    impl<T> NotShmSafe for Probe<T> {}
    // Checked as the test compiles.
    const { assert!(!Probe::<Mutex<RawFutex, u64>>::IS_SHM_SAFE) };
    const { assert!(Probe::<lockkit::ShmMutex<u64>>::IS_SHM_SAFE) };
}
