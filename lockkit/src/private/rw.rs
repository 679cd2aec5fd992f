//! What generated code calls for reader-writer field locks ([`GenRwLock`],
//! [`GenRwLockSet`]): the proofs that a field marked or named as one is one, the `unsafe`
//! stripe accessors and their guards, and the sides of an `RwLock` that
//! `locked!(read a, write b => ..)` takes among other locks.
//!
//! Invariants kept here (with the module's own, in `private.rs`):
//! - a `Striped` cell of an RW-striped field is only reached through `read_stripe` /
//!   `write_stripe` and their `try` forms, which hold stripe `index % N` (as a reader or as
//!   the writer) for as long as the returned guard lives; a read guard lends only `&T`, a
//!   write guard `&mut T`, and either reaches only elements of its stripe;
//! - a [`ReadSide`] / [`WriteSide`] held by a `MultiGuard` holds its lock as a reader / the
//!   writer, and lends `&T` / `&mut T` only while the guard holds it.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use super::{elements, Checked, Element, LendHeld, RwOf, Striped};
use crate::grp::ChainLock;
use crate::{GenRwLock, GenRwLockSet, ReadGuard, RwLock, ShmSafe, WriteGuard};

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::GenRwLock {}
    impl<const N: usize> Sealed for crate::GenRwLockSet<N> {}
}

/// A reader-writer field lock, for `#[guarded_by]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a lockkit reader-writer lock",
    label = "not a GenRwLock",
    note = "#[shared_locked] treats a field as a reader-writer lock when its type is GenRwLock \
            or when it is marked #[rw_lock]; remove the marker if this field is data, or use \
            #[lock] for a GenLock"
)]
pub trait RwLockKind: sealed::Sealed {}
impl RwLockKind for GenRwLock {}

/// A fixed-size set of reader-writer locks, for `#[striped_by]`. Only lockkit's own: the
/// stripe accessors find stripe `i` through it on every access and rely on it being the
/// same lock each time.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a set of reader-writer locks",
    label = "not a GenRwLockSet",
    note = "#[rw_lock_set] marks a field whose type is a GenRwLockSet<N> under another name; \
            use #[lock_set] for a GenLockSet"
)]
pub trait RwLockSetKind: sealed::Sealed {
    /// The number of locks.
    const LEN: usize;
    /// Lock `i`, `i < LEN`.
    #[track_caller]
    fn stripe(&self, i: usize) -> &RwLock<()>;
}
impl<const N: usize> RwLockSetKind for GenRwLockSet<N> {
    const LEN: usize = N;
    #[inline]
    fn stripe(&self, i: usize) -> &RwLock<()> {
        self.at(i)
    }
}

/// No type is one: `lock_<lock>()` of a field lock that is a reader-writer lock.
#[diagnostic::on_unimplemented(
    message = "this lock is a reader-writer lock (GenRwLock): it has no lock_ accessor; take it \
               as a reader or as the writer",
    label = "lock_ of a reader-writer lock",
    note = "call read_<lock>() for shared access (readers hold it together, `&T`) or \
            write_<lock>() for exclusive access (`&mut T`); try_read_<lock>(), \
            try_write_<lock>() and their _for(timeout) forms do not wait"
)]
pub trait UseReadOrWriteLock {}

/// No type is one: `lock_<field>(i)` of a field striped by a set of reader-writer locks.
#[diagnostic::on_unimplemented(
    message = "this field is striped by reader-writer locks (GenRwLockSet): it has no lock_ \
               accessor; take its stripe as a reader or as the writer",
    label = "lock_ of a field striped by reader-writer locks",
    note = "call read_<field>(i) for shared access (readers hold the stripe together, `&T`) \
            or write_<field>(i) for exclusive access (`&mut T`); try_read_<field>(i), \
            try_write_<field>(i) and their _for(i, timeout) forms do not wait"
)]
pub trait UseReadOrWriteStripe {}

impl Checked {
    /// Names lockkit's `RwLock`, as [`Checked::is_shm_mutex`] does `ShmMutex`, for the
    /// `RwLock` generated code keeps fields guarded by a `GenRwLock` in.
    pub const fn is_rw_lock<T: ShmSafe>(_: &RwLock<T>) {}

    /// Checks, at compile time, that a field marked or named as a reader-writer lock is one.
    pub const fn assert_rw_lock<L: RwLockKind + ?Sized>() {}

    /// Checks, at compile time, that a field marked or named as a set of reader-writer locks
    /// is one, with at least one lock.
    pub const fn assert_rw_lock_set<L: RwLockSetKind + ?Sized>() {
        assert!(
            L::LEN > 0,
            "a GenRwLockSet needs at least one lock: GenRwLockSet<0> has no stripe to take"
        );
    }

    /// `read_<field>(index)` of a field striped by reader-writer locks: takes stripe
    /// `index % N` as a reader and lends element `index` (and the other elements of its
    /// stripe) to read.
    ///
    /// # Safety
    /// `set` is the set that guards `cells` (the field's `#[striped_by]` set), and every
    /// access to `cells` goes through this function and its siblings here with that set.
    #[track_caller]
    pub unsafe fn read_stripe<'a, S: RwLockSetKind, T, const M: usize>(
        set: &'a S,
        cells: &'a Striped<[T; M]>,
        index: usize,
        field: &str,
    ) -> StripeReadGuard<'a, T> {
        let elements = elements(cells, index, field);
        let stripe = set.stripe(index % S::LEN).read();
        StripeReadGuard {
            _stripe: stripe,
            held: Held::new(elements, index, S::LEN),
        }
    }

    /// `try_read_<field>(index)`: `None` if a writer holds or waits for the stripe.
    ///
    /// # Safety
    /// As for [`Checked::read_stripe`].
    #[track_caller]
    pub unsafe fn try_read_stripe<'a, S: RwLockSetKind, T, const M: usize>(
        set: &'a S,
        cells: &'a Striped<[T; M]>,
        index: usize,
        field: &str,
    ) -> Option<StripeReadGuard<'a, T>> {
        let elements = elements(cells, index, field);
        Some(StripeReadGuard {
            _stripe: set.stripe(index % S::LEN).try_read()?,
            held: Held::new(elements, index, S::LEN),
        })
    }

    /// `try_read_<field>_for(index, timeout)`: `None` if the stripe stays written for
    /// `timeout`.
    ///
    /// # Safety
    /// As for [`Checked::read_stripe`].
    #[track_caller]
    pub unsafe fn try_read_stripe_for<'a, S: RwLockSetKind, T, const M: usize>(
        set: &'a S,
        cells: &'a Striped<[T; M]>,
        index: usize,
        timeout: Duration,
        field: &str,
    ) -> Option<StripeReadGuard<'a, T>> {
        let elements = elements(cells, index, field);
        Some(StripeReadGuard {
            _stripe: set.stripe(index % S::LEN).try_read_for(timeout)?,
            held: Held::new(elements, index, S::LEN),
        })
    }

    /// `write_<field>(index)`: takes stripe `index % N` as its writer and lends element
    /// `index` (and the other elements of its stripe) to change.
    ///
    /// # Safety
    /// As for [`Checked::read_stripe`].
    #[track_caller]
    pub unsafe fn write_stripe<'a, S: RwLockSetKind, T, const M: usize>(
        set: &'a S,
        cells: &'a Striped<[T; M]>,
        index: usize,
        field: &str,
    ) -> StripeWriteGuard<'a, T> {
        let elements = elements(cells, index, field);
        let stripe = set.stripe(index % S::LEN).write();
        StripeWriteGuard {
            _stripe: stripe,
            held: Held::new(elements, index, S::LEN),
        }
    }

    /// `try_write_<field>(index)`: `None` if anyone is inside the stripe.
    ///
    /// # Safety
    /// As for [`Checked::read_stripe`].
    #[track_caller]
    pub unsafe fn try_write_stripe<'a, S: RwLockSetKind, T, const M: usize>(
        set: &'a S,
        cells: &'a Striped<[T; M]>,
        index: usize,
        field: &str,
    ) -> Option<StripeWriteGuard<'a, T>> {
        let elements = elements(cells, index, field);
        Some(StripeWriteGuard {
            _stripe: set.stripe(index % S::LEN).try_write()?,
            held: Held::new(elements, index, S::LEN),
        })
    }

    /// `try_write_<field>_for(index, timeout)`: `None` if the stripe stays busy for
    /// `timeout`.
    ///
    /// # Safety
    /// As for [`Checked::read_stripe`].
    #[track_caller]
    pub unsafe fn try_write_stripe_for<'a, S: RwLockSetKind, T, const M: usize>(
        set: &'a S,
        cells: &'a Striped<[T; M]>,
        index: usize,
        timeout: Duration,
        field: &str,
    ) -> Option<StripeWriteGuard<'a, T>> {
        let elements = elements(cells, index, field);
        Some(StripeWriteGuard {
            _stripe: set.stripe(index % S::LEN).try_write_for(timeout)?,
            held: Held::new(elements, index, S::LEN),
        })
    }
}

/// The elements a stripe guard reaches: those `i` with `i % stripes == index % stripes`.
struct Held<'a, T> {
    /// Every element of the field (only those of the held stripe are ever reached).
    elements: &'a [Element<T>],
    /// The element `Deref` lends: always `< elements.len()` (checked by `elements`).
    index: usize,
    /// The number of stripes (the set's length, at least 1).
    stripes: usize,
}

impl<'a, T> Held<'a, T> {
    fn new(elements: &'a [Element<T>], index: usize, stripes: usize) -> Self {
        Held {
            elements,
            index,
            stripes,
        }
    }

    fn stripe(&self) -> usize {
        self.index % self.stripes
    }

    /// Element `index`, if it is of the held stripe and in range.
    fn element(&self, index: usize) -> Option<&'a Element<T>> {
        if index % self.stripes != self.stripe() {
            return None;
        }
        self.elements.get(index)
    }

    /// The held stripe's elements with their indices, ascending.
    fn of_stripe(&self) -> impl Iterator<Item = (usize, &'a Element<T>)> {
        self.elements
            .iter()
            .enumerate()
            .skip(self.stripe())
            .step_by(self.stripes)
    }

    /// The element `Deref` lends.
    fn this(&self) -> &'a Element<T> {
        // SAFETY: `index < elements.len()`, checked when the guard was made (`elements`),
        // and neither changes.
        unsafe { self.elements.get_unchecked(self.index) }
    }
}

/// A read guard for one element of a field striped by a [`GenRwLockSet`]: holds the
/// element's stripe as a reader, with other readers of it (in this process or another),
/// and lends that element (through `Deref`) and every other element of the same stripe
/// (through [`get`](Self::get) and [`iter`](Self::iter)) to read.
///
/// Element `i` of a field striped over `N` locks belongs to stripe `i % N`.
///
/// ```
/// use lockkit::{shared_locked, GenRwLockSet, ShmRegion, StripeReadGuard};
///
/// #[shared_locked]
/// pub struct Locations {
///     stripes: GenRwLockSet<4>,
///     #[striped_by(stripes)]
///     contact: [u32; 16],
/// }
///
/// let region = ShmRegion::anonymous(1 << 20)?;
/// let table = region.alloc_zeroed::<Locations>()?;
/// *table.write_contact(5) = 50;
/// let a = table.read_contact(5); // stripe 1: elements 1, 5, 9 and 13
/// let b = table.read_contact(9); // another reader of stripe 1
/// assert_eq!((*a, *b), (50, 0));
/// assert!(table.try_write_contact(13).is_none()); // the writer waits for the readers
/// assert_eq!(a.get(5), Some(&50));
/// assert!(a.get(6).is_none()); // stripe 2: not held
/// assert!(!StripeReadGuard::owner_died(&a));
/// # Ok::<(), lockkit::Error>(())
/// ```
#[must_use = "the stripe is released as soon as the guard is dropped"]
pub struct StripeReadGuard<'a, T> {
    _stripe: ReadGuard<'a, ()>,
    held: Held<'a, T>,
}

impl<T> StripeReadGuard<'_, T> {
    /// Whether a writer of this element's stripe died inside and no writer has marked it
    /// consistent since: what this reader sees may be half-updated.
    pub fn owner_died(guard: &Self) -> bool {
        ReadGuard::owner_died(&guard._stripe)
    }

    /// The stripe this guard holds (every element `i` with `i % stripes() == stripe()`).
    pub fn stripe(&self) -> usize {
        self.held.stripe()
    }

    /// The number of stripes the field is spread over (its lock set's length).
    pub fn stripes(&self) -> usize {
        self.held.stripes
    }

    /// The index of the element `Deref` lends (the one the guard was taken for).
    pub fn index(&self) -> usize {
        self.held.index
    }

    /// Element `index` of the field, if it belongs to the held stripe and is in range;
    /// `None` otherwise (its stripe is not held).
    pub fn get(&self, index: usize) -> Option<&T> {
        let element = self.held.element(index)?;
        // SAFETY: the element belongs to the stripe this guard holds as a reader: no writer
        // is inside it while the guard lives, and read guards lend only `&T`.
        Some(unsafe { &*element.0.get() })
    }

    /// Every element of the held stripe with its index, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> + '_ {
        self.held
            .of_stripe()
            // SAFETY: as in `get`: each element belongs to the stripe held as a reader.
            .map(|(i, e)| (i, unsafe { &*e.0.get() }))
    }
}

impl<T> Deref for StripeReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the element's stripe is held as a reader while the guard lives (see `get`).
        unsafe { &*self.held.this().0.get() }
    }
}

/// A write guard for one element of a field striped by a [`GenRwLockSet`]: holds the
/// element's stripe as its only writer, and lends that element (through `Deref`) and every
/// other element of the same stripe (through [`get_mut`](Self::get_mut),
/// [`iter_mut`](Self::iter_mut)), so the whole stripe can be changed or repaired after a
/// writer's death under one hold.
///
/// ```
/// use lockkit::{shared_locked, GenRwLockSet, ShmRegion, StripeWriteGuard};
///
/// #[shared_locked]
/// pub struct Locations {
///     stripes: GenRwLockSet<4>,
///     #[striped_by(stripes)]
///     contact: [u32; 16],
/// }
///
/// let region = ShmRegion::anonymous(1 << 20)?;
/// let table = region.alloc_zeroed::<Locations>()?;
/// let mut g = table.write_contact(5); // stripe 1: elements 1, 5, 9 and 13
/// *g = 50;
/// *g.get_mut(9).unwrap() = 90; // another element of the same stripe, same hold
/// assert!(table.try_read_contact(1).is_none()); // readers wait for the writer
/// if StripeWriteGuard::owner_died(&g) {
///     // A writer died inside: repair the stripe, then say so.
///     StripeWriteGuard::mark_consistent(&mut g);
/// }
/// drop(g);
/// assert_eq!(*table.read_contact(9), 90);
/// # Ok::<(), lockkit::Error>(())
/// ```
#[must_use = "the stripe is released as soon as the guard is dropped"]
pub struct StripeWriteGuard<'a, T> {
    _stripe: WriteGuard<'a, ()>,
    held: Held<'a, T>,
}

impl<T> StripeWriteGuard<'_, T> {
    /// Whether a writer of this element's stripe died inside and no writer has marked it
    /// consistent since: repair the stripe's elements, then call
    /// [`mark_consistent`](Self::mark_consistent).
    pub fn owner_died(guard: &Self) -> bool {
        WriteGuard::owner_died(&guard._stripe)
    }

    /// Declares the stripe's data repaired after a writer's death.
    pub fn mark_consistent(guard: &mut Self) {
        WriteGuard::mark_consistent(&mut guard._stripe)
    }

    /// The stripe this guard holds (every element `i` with `i % stripes() == stripe()`).
    pub fn stripe(&self) -> usize {
        self.held.stripe()
    }

    /// The number of stripes the field is spread over (its lock set's length).
    pub fn stripes(&self) -> usize {
        self.held.stripes
    }

    /// The index of the element `Deref` lends (the one the guard was taken for).
    pub fn index(&self) -> usize {
        self.held.index
    }

    /// Element `index` of the field to read, if it belongs to the held stripe and is in
    /// range; `None` otherwise.
    pub fn get(&self, index: usize) -> Option<&T> {
        let element = self.held.element(index)?;
        // SAFETY: the element belongs to the stripe this guard holds as its writer; `&self`
        // rules out a `&mut` through the guard meanwhile.
        Some(unsafe { &*element.0.get() })
    }

    /// Element `index` of the field, if it belongs to the held stripe and is in range;
    /// `None` otherwise (its stripe is not held).
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        let element = self.held.element(index)?;
        // SAFETY: the element belongs to the stripe this guard holds as its only writer;
        // `&mut self` makes this the only access through the guard.
        Some(unsafe { &mut *element.0.get() })
    }

    /// Every element of the held stripe with its index, to read, in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> + '_ {
        self.held
            .of_stripe()
            // SAFETY: as in `get`.
            .map(|(i, e)| (i, unsafe { &*e.0.get() }))
    }

    /// Every element of the held stripe with its index, in ascending order: `stripe()`,
    /// `stripe() + stripes()`, ...
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut T)> + '_ {
        self.held
            .of_stripe()
            // SAFETY: each element belongs to the stripe held by this writer, the iterator
            // borrows the guard mutably, and it yields each element once.
            .map(|(i, e)| (i, unsafe { &mut *e.0.get() }))
    }
}

impl<T> Deref for StripeWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the element's stripe is held by this writer while the guard lives.
        unsafe { &*self.held.this().0.get() }
    }
}

impl<T> DerefMut for StripeWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.held.this().0.get() }
    }
}

/// `read x = rw` among several locks in `locked!(..)`: the lock's read side, a lock of its
/// own in the global order (at the `RwLock`'s place in it).
pub struct ReadSide<'a, T>(&'a RwLock<T>);

/// `write x = rw` among several locks in `locked!(..)`: the lock's write side.
pub struct WriteSide<'a, T>(&'a RwLock<T>);

/// `locked!(.., read x = rw, ..)`: the read side of `rw`.
#[inline(always)]
pub fn read_side<L: RwOf<D> + ?Sized, D: ShmSafe>(l: &L) -> ReadSide<'_, D> {
    ReadSide(l.rw_of())
}

/// `locked!(.., write x = rw, ..)`: the write side of `rw`.
#[inline(always)]
pub fn write_side<L: RwOf<D> + ?Sized, D: ShmSafe>(l: &L) -> WriteSide<'_, D> {
    WriteSide(l.rw_of())
}

// SAFETY: takes and releases a read lock on the calling thread (trait contract); the data
// is not touched here. Its id is the RwLock's, so naming one lock twice (read and write, or
// read twice, which can deadlock behind a writer) is caught as naming it twice.
unsafe impl<T: ShmSafe> ChainLock for ReadSide<'_, T> {
    fn chain_acquire(&self) {
        std::mem::forget(self.0.read());
    }
    fn chain_try_acquire(&self) -> bool {
        self.0.try_read().map(std::mem::forget).is_some()
    }
    fn chain_try_acquire_for(&self, timeout: Duration) -> bool {
        self.0.try_read_for(timeout).map(std::mem::forget).is_some()
    }
    unsafe fn chain_release(&self) {
        // SAFETY: the caller holds the read lock taken by chain_acquire (trait contract).
        unsafe { self.0.force_read_unlock() }
    }
    fn chain_id(&self) -> usize {
        self.0.chain_id()
    }
    fn chain_owner_died(&self) -> bool {
        self.0.is_inconsistent()
    }
    fn chain_shared(&self) -> bool {
        true
    }
}

// SAFETY: the RwLock's own write side, with its id.
unsafe impl<T: ShmSafe> ChainLock for WriteSide<'_, T> {
    fn chain_acquire(&self) {
        self.0.chain_acquire()
    }
    fn chain_try_acquire(&self) -> bool {
        self.0.chain_try_acquire()
    }
    fn chain_try_acquire_for(&self, timeout: Duration) -> bool {
        self.0.chain_try_acquire_for(timeout)
    }
    unsafe fn chain_release(&self) {
        // SAFETY: forwarded contract.
        unsafe { self.0.chain_release() }
    }
    fn chain_id(&self) -> usize {
        self.0.chain_id()
    }
    fn chain_owner_died(&self) -> bool {
        self.0.chain_owner_died()
    }
    unsafe fn chain_mark_consistent(&self) {
        // SAFETY: forwarded contract (the caller holds the write lock).
        unsafe { self.0.chain_mark_consistent() }
    }
}

// SAFETY: lends the data as `&T`, which a read lock allows (other readers get `&T` too).
unsafe impl<T: ShmSafe> LendHeld for ReadSide<'_, T> {
    type Lent<'g>
        = &'g T
    where
        Self: 'g;
    unsafe fn lend_held(&self) -> &T {
        // SAFETY: the caller holds the read lock for the borrow's lifetime (the contract),
        // so no writer is inside and nobody has `&mut T`.
        unsafe { &*self.0.data_ptr() }
    }
}

// SAFETY: lends the data as `&mut T`, which the write lock allows.
unsafe impl<T: ShmSafe> LendHeld for WriteSide<'_, T> {
    type Lent<'g>
        = &'g mut T
    where
        Self: 'g;
    unsafe fn lend_held(&self) -> &mut T {
        // SAFETY: the caller holds the write lock for the borrow's lifetime and nothing
        // else lent from it is alive (the contract): this is the only access.
        unsafe { &mut *self.0.data_ptr() }
    }
}

/// What `table.field[i]` is in `locked!` when `field` is striped: never a value (the index
/// that would make one is an error, `UseStripedAccessor`), but a lock of every kind
/// `locked!` takes, so that the error about the index is the only one.
pub struct NotIndexed<E>(
    std::convert::Infallible,
    std::marker::PhantomData<fn() -> E>,
);

impl<E> crate::Lockable for NotIndexed<E> {
    type Guard<'a>
        = crate::ShmMutexGuard<'a, E>
    where
        E: 'a;
    fn lock_guard(&self) -> crate::ShmMutexGuard<'_, E> {
        match self.0 {}
    }
    fn try_lock_guard(&self) -> Option<crate::ShmMutexGuard<'_, E>> {
        match self.0 {}
    }
}

impl<E> crate::lockable::TimedLockable for NotIndexed<E> {
    fn try_lock_guard_for(&self, _: Duration) -> Option<crate::ShmMutexGuard<'_, E>> {
        match self.0 {}
    }
}

impl<E> crate::lockable::RwLockable for NotIndexed<E> {
    type Data = E;
    fn rw(&self) -> &RwLock<E> {
        match self.0 {}
    }
}

// SAFETY: no value exists, so no method runs.
unsafe impl<E: ShmSafe> ChainLock for NotIndexed<E> {
    fn chain_acquire(&self) {
        match self.0 {}
    }
    fn chain_try_acquire(&self) -> bool {
        match self.0 {}
    }
    unsafe fn chain_release(&self) {
        match self.0 {}
    }
}

// SAFETY: no value exists, so nothing is lent.
unsafe impl<E: ShmSafe> LendHeld for NotIndexed<E> {
    type Lent<'g>
        = &'g mut E
    where
        Self: 'g;
    unsafe fn lend_held(&self) -> &mut E {
        match self.0 {}
    }
}
