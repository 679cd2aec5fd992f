//! Peers the benchmarks measure lockkit against, in the same run.
#![allow(dead_code)] // each bench uses the part it needs

pub mod forked;

use std::sync::atomic::{AtomicU32, Ordering};

use lockkit::ShmRegion;

/// A process-shared glibc mutex placed in a region.
pub struct GlibcMutex(*mut libc::pthread_mutex_t);

impl GlibcMutex {
    pub fn new(region: &ShmRegion, robust: bool) -> (Self, lockkit::ShmBox<[u64; 8]>) {
        assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= 64);
        let storage = region.alloc_zeroed::<[u64; 8]>().unwrap();
        let m = &*storage as *const [u64; 8] as *mut libc::pthread_mutex_t;
        // SAFETY: `m` points at 64 zeroed, 8-aligned bytes in the region that live as long
        // as `storage`; the attribute object is initialised before use and destroyed after.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            assert_eq!(libc::pthread_mutexattr_init(&mut attr), 0);
            assert_eq!(
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
                0
            );
            if robust {
                assert_eq!(
                    libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST),
                    0
                );
            }
            assert_eq!(libc::pthread_mutex_init(m, &attr), 0);
            libc::pthread_mutexattr_destroy(&mut attr);
        }
        (GlibcMutex(m), storage)
    }

    #[inline]
    pub fn lock_unlock(&self) {
        // SAFETY: initialised in `new`; locked and unlocked by this thread.
        unsafe {
            libc::pthread_mutex_lock(self.0);
            libc::pthread_mutex_unlock(self.0);
        }
    }
}

impl GlibcMutex {
    /// Takes the mutex.
    #[inline]
    pub fn lock(&self) {
        // SAFETY: initialised in `new`.
        unsafe { libc::pthread_mutex_lock(self.0) };
    }

    /// Releases the mutex taken by this thread.
    #[inline]
    pub fn unlock(&self) {
        // SAFETY: initialised in `new`; the caller took it.
        unsafe { libc::pthread_mutex_unlock(self.0) };
    }
}

/// Kamailio's futex lock (`futexlock.h`), re-written here from its published behaviour: a
/// three-state word (0 free, 1 taken, 2 taken with waiters) that records no owner.
#[repr(transparent)]
pub struct KamailioFutex(pub AtomicU32);

impl KamailioFutex {
    /// The lock over a word that lives in shared memory (zero: free).
    pub fn over(word: &AtomicU32) -> &KamailioFutex {
        // SAFETY: KamailioFutex is repr(transparent) over AtomicU32; the lifetime carries over.
        unsafe { &*(word as *const AtomicU32 as *const KamailioFutex) }
    }

    #[inline]
    pub fn lock(&self) {
        if self
            .0
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        while self.0.swap(2, Ordering::Acquire) != 0 {
            // SAFETY: FUTEX_WAIT on a live, aligned word; no timeout.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.0.as_ptr(),
                    libc::FUTEX_WAIT,
                    2u32,
                    std::ptr::null::<libc::timespec>(),
                )
            };
        }
    }

    #[inline]
    pub fn unlock(&self) {
        if self.0.fetch_sub(1, Ordering::Release) != 1 {
            self.0.store(0, Ordering::Release);
            // SAFETY: FUTEX_WAKE on a live, aligned word.
            unsafe { libc::syscall(libc::SYS_futex, self.0.as_ptr(), libc::FUTEX_WAKE, 1) };
        }
    }
}
