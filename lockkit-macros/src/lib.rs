//! Procedural macros for [`lockkit`](https://docs.rs/lockkit): lock discipline checked by
//! the compiler. Use them through `lockkit`, which re-exports them and provides the runtime
//! items the generated code calls (`lockkit::__private`).
//!
//! - [`macro@shared_locked`]: a shared-memory struct whose guarded fields are reachable only
//!   through their lock's guard.
//! - [`macro@grp_member`]: a member of a group lock, destroyed only by its group.
//! - [`locked!`]: a block run under one or more locks, released on every way out.

mod ctxt;
mod grp_member;
mod layout;
mod locked;
mod msg;
mod shared_locked;
mod shm_safe_derive;
mod types;

use proc_macro::TokenStream;

/// Places locks and the data they guard in one `#[repr(C)]`, shared-memory-safe struct, and
/// makes the guarded data reachable only through its lock.
///
/// ```
/// use lockkit::{shared_locked, GenLock, GenLockSet, ShmRegion};
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// #[shared_locked]
/// pub struct Registrar {
///     calls: GenLock,
///     #[guarded_by(calls)]
///     active: u64,
///     #[guarded_by(calls)]
///     last_code: u16,
///     stripes: GenLockSet<4>,
///     #[striped_by(stripes)]
///     per_user: [u32; 64],
///     max_calls: AtomicU32, // unguarded: atomics and other Sync shared data
/// }
///
/// let region = ShmRegion::anonymous(1 << 20)?;
/// let reg = region.alloc_zeroed::<Registrar>()?;
/// {
///     let mut calls = reg.lock_calls(); // a guard that derefs to { active, last_code }
///     calls.active += 1;
///     calls.last_code = 200;
/// }
/// *reg.lock_per_user(17) += 1; // locks stripe 17 % 4, lends element 17
/// reg.max_calls.store(100, Ordering::Relaxed);
/// assert_eq!(reg.lock_calls().active, 1);
/// # Ok::<(), lockkit::Error>(())
/// ```
///
/// What it does:
/// - adds `#[repr(C)]` and implements `ShmSafe` (and `ShmZeroable` when every field can be
///   zeroed, so `region.alloc_zeroed::<T>()` works); a field that cannot live in shared
///   memory (`String`, `Vec`, `Box`, references, `Rc`, `Arc`, cells, raw pointers, any type
///   that is not `ShmSafe`) is a compile error at that field, whose message says what to use
///   instead;
/// - for each `GenLock` field `l`, gathers the fields marked `#[guarded_by(l)]` into a struct
///   `<Struct><L>Fields` and stores them with the lock (the field becomes a
///   `ShmMutex<<Struct><L>Fields>`); generates `lock_l()`, `try_lock_l()` and
///   `try_lock_l_for(timeout)`, whose guards deref to those fields: `s.active` without the
///   lock does not compile, because the struct has no such field. Accessors are always
///   `lock_` and the field's name, so name a lock after what it guards (`calls` gives
///   `lock_calls()`); a lock field called `lock` gets `lock_lock()`, `try_lock_lock()` and
///   `try_lock_lock_for(timeout)`;
/// - for each `GenLockSet<N>` field `s`, a field `#[striped_by(s)] f: [T; M]` is reachable
///   one stripe at a time: `lock_f(i)` locks stripe `i % N` and lends element `i`
///   (`try_lock_f(i)` does not wait, `try_lock_f_for(i, timeout)` waits at most `timeout`);
///   `i >= M` panics naming both, at the caller's line. The guard also lends every other
///   element of its stripe (`get_mut(j)` for `j % N == i % N`, `iter_mut()`), so a stripe
///   left half-updated by a holder that died is repaired under one hold;
/// - fields with no marker stay as declared (they must be `ShmSafe`, hence `Sync`);
/// - generates `const fn new(..)` taking every non-lock field in order, with the visibility
///   of the most private field (so code that cannot see a field cannot choose its value).
///
/// Markers on fields: `#[guarded_by(lock)]`, `#[striped_by(set)]`, `#[standalone]` (a lock
/// used on its own, with `locked!` or chained to a group lock; a lock that guards nothing is
/// an error otherwise), and `#[lock]` / `#[lock_set]` for a lock whose type is written
/// through an alias (`type Lock = GenLock;`, `use GenLock as Lock`), which the macro cannot
/// recognise by name. `#[cfg(..)]` works on data fields; markers under `cfg_attr` are an
/// error (the macro sees them before `cfg_attr` is applied).
///
/// Arguments: `crate = "lk"` when lockkit is a renamed dependency
/// (`lk = { package = "lockkit", .. }`), as serde's `#[serde(crate = "..")]`; `no_new` to
/// generate no `new` (write your own, or allocate zeroed and fill the fields in through their
/// accessors, which is what large structs want).
///
/// Generic structs, enums, unions, tuple structs, `repr(packed)`, `ShmSafe` in a derive (the
/// macro implements it), a second `#[shared_locked]`, markers written with a path
/// (`#[lockkit::guarded_by(..)]`) and two fields whose accessors would share a name are
/// rejected with an error saying why. Write `#[shared_locked]` above any `#[derive(..)]`: a
/// derive above it sees the fields before they move into their lock. After any error the macro still emits the struct, its impls and its
/// accessors (with `unreachable!()` bodies), so the error is the only one reported.
#[proc_macro_attribute]
pub fn shared_locked(args: TokenStream, input: TokenStream) -> TokenStream {
    shared_locked::expand(args.into(), input.into()).into()
}

/// Implements `ShmSafe` (and `ShmZeroable` where zero bytes are a value) for a plain
/// `#[repr(C)]` struct or a fieldless enum with an integer `repr`, with the structural
/// [`LAYOUT`](https://docs.rs/lockkit/latest/lockkit/layout/index.html) that lets two
/// programs check that they agree on it.
///
/// ```
/// use lockkit::{ShmRegion, ShmSafe};
///
/// #[derive(ShmSafe, Clone, Copy, PartialEq, Debug)]
/// #[repr(u8)]
/// enum State { Idle, Ringing, Talking }
///
/// #[derive(ShmSafe)]
/// #[repr(C)]
/// struct Call { id: u64, state: State, peer: Option<u32> }
///
/// let region = ShmRegion::anonymous(1 << 16)?;
/// region.publish("call", &region.alloc(Call { id: 7, state: State::Ringing, peer: None })?)?;
/// let call = region.lookup::<Call>("call")?;
/// assert_eq!(call.state, State::Ringing);
/// # Ok::<(), lockkit::Error>(())
/// ```
///
/// - Structs: `#[repr(C)]` (or `repr(transparent)`) is required and `repr(packed)` refused;
///   every field must be `ShmSafe` (a field that is not is an error at the field, saying
///   what to use instead). Generic structs get an impl bounded by their fields. `ShmZeroable`
///   holds when every field is.
/// - Enums: fieldless, with `#[repr(u8)]`, `u16`, `u32`, `u64` or a signed one.
///   `ShmZeroable` when a variant's discriminant is 0 (the first one, unless it says
///   otherwise). A value in shared memory is trusted to be a variant: as with `bool`, a
///   process that writes other bytes there with `unsafe` code breaks every reader.
/// - `#[shm_safe(crate = "lk")]` when lockkit is a renamed dependency.
///
/// Fields are mutated through `&mut` (a lock's guard) or are atomics: the derive adds no
/// locking of its own. For a struct with locks and the fields they guard, use
/// [`shared_locked`].
#[proc_macro_derive(ShmSafe, attributes(shm_safe))]
pub fn derive_shm_safe(input: TokenStream) -> TokenStream {
    shm_safe_derive::derive(input.into()).into()
}

/// Makes a struct a member of a group lock: registered with the group's destroy handlers, so
/// it is destroyed when the group's reference count reaches zero and not before, and reached
/// only while holding the group lock.
///
/// ```
/// use lockkit::grp::{GrpLock, WeakGrpLock};
/// use lockkit::grp_member;
///
/// #[grp_member(on_destroy = finish)]
/// struct Transaction {
///     #[grp]
///     dialog: WeakGrpLock, // filled in by `join`; weak, so it does not keep the group alive
///     retries: u32,
/// }
///
/// impl Transaction {
///     fn finish(&mut self) {
///         println!("transaction done after {} retries", self.retries);
///     }
/// }
///
/// let dialog = GrpLock::new();
/// let tsx = Transaction { dialog: WeakGrpLock::new(), retries: 0 }.join(&dialog);
/// tsx.lock().retries += 1; // under the group lock
/// let early = Transaction { dialog: WeakGrpLock::new(), retries: 9 }.join(&dialog);
/// let back = early.leave(); // leaves early: handler removed, reference dropped
/// assert_eq!(back.retries, 9);
/// drop(tsx);
/// drop(dialog); // the last reference: `finish` runs, once
/// ```
///
/// Generated: `impl GrpMember` (the `on_destroy` hook, or nothing if the struct relies on its
/// `Drop`) and `fn join(self, group: &GrpLock) -> Member<Self>`. The hook must be a method
/// `fn(&mut self)`. A generic struct gets them where it is `Send + 'static` (what a member
/// must be); lifetime parameters are an error. Errors: no `#[grp]` field, two of them, a `#[grp]` field that is not a
/// `WeakGrpLock`, a hook that does not exist or has another signature, and another field
/// whose type names `GrpLock` (`Option<GrpLock>`, `Arc<GrpLock>`, ..): a strong reference
/// to the member's own group keeps the group alive for ever, so its `on_destroy` never runs.
/// A field that holds another group is marked `#[other_group]`. (Only names are seen: a
/// type of the user's that holds a `GrpLock` inside is not.)
#[proc_macro_attribute]
pub fn grp_member(args: TokenStream, input: TokenStream) -> TokenStream {
    grp_member::expand(args.into(), input.into()).into()
}

/// Runs a block while holding one or more locks, and releases them on every way out of it:
/// the end of the block, `return`, `?`, `break` or `continue` of an enclosing loop, a panic.
///
/// ```
/// use lockkit::{locked, GenLock, GenLockSet, ShmMutex};
/// use lockkit::grp::GrpLock;
///
/// let m = ShmMutex::new(0u64);
/// let a = GenLock::new();
/// let b = GenLock::new();
/// let set = GenLockSet::<8>::new();
/// let group = GrpLock::new();
///
/// locked!(a => { /* under a */ });
/// let doubled = locked!(g = m => { *g += 1; *g * 2 }); // g: &mut u64, the block's value
/// assert_eq!(doubled, 2);
/// locked!(set[3] => { /* under lock 3 of the set */ });
/// locked!(b, a => { /* a and b, taken in one global order */ });
/// let got = locked!(try g = m => { *g } else { u64::MAX });
/// assert_eq!(got, 1);
/// locked!(group => { /* the group and its chained locks */ });
/// ```
///
/// More forms:
///
/// ```
/// use lockkit::{locked, GenLock, RecLock, RwLock, ShmMutex};
/// use std::time::Duration;
///
/// let calls = ShmMutex::new(0u64);
/// let bytes = ShmMutex::new(0u64);
/// let admin = GenLock::new();
/// // Several locks, each named one lending its data (`&mut T` for a ShmMutex).
/// locked!(c = calls, admin, b = bytes => { *c += 1; *b += 512 });
///
/// let routes = RwLock::new([0u32; 4]);
/// locked!(write r = routes => { r[0] = 7 });
/// let first = locked!(read r = routes => { r[0] });
/// assert_eq!(first, 7);
///
/// let rec = RecLock::new();
/// locked!(rec => { locked!(rec => { /* its holder takes it again */ }) });
///
/// let n = locked!(try_for(Duration::from_millis(5)) c = calls => { *c } else { 0 });
/// assert_eq!(n, 1);
/// ```
///
/// `locked!(crate = "lk"; ..)` names lockkit when it is a renamed dependency.
///
/// The macro owns the guard and lends the block only the data (`&mut T` for a `ShmMutex`, a
/// striped element or a group member, `&T` for a read lock) or a shared reference to the
/// guard (for `GenLock`, `RecLock` and `GrpLock`): the guard cannot be moved out, forgotten
/// or released early, and nothing borrowed from it outlives the block.
///
/// # Several locks
/// They are taken in one global order whatever order they are written in, each held as
/// soon as it is taken (a panic taking the next one releases those already taken). Locks in
/// shared regions are ordered by the region's identity (the device and inode of the memfd or
/// shm object behind it) and their offset in it, which every process agrees on however it
/// mapped the region; locks in process-local memory come after them, by address. A lock
/// named twice (even through two mappings) panics at the caller's line rather than
/// deadlocking.
///
/// # Panics and poisoning
/// There is no poisoning (as in `parking_lot`, unlike `std::sync::Mutex`): a panic inside the
/// block releases every lock it holds, and whatever the block wrote before the panic stays
/// written for the next holder. Write multi-step updates so that each step leaves the data
/// consistent. A process that dies (or calls `exec`) holding a lock is not a panic: the
/// kernel says its process is gone, the next acquirer takes the lock over, and the lock stays
/// marked inconsistent until a holder repairs the data and marks it consistent. Inside the
/// block, ask the lock: `is_inconsistent()` on `GenLock`, `ShmMutex`, `RecLock` and `RwLock`
/// (the default futex lock hands a dead holder's lock on within about a millisecond:
/// `BENCHMARKS.md`). A *thread* that exits while a guard it leaked lives is not a death: its
/// process lives, and the lock stays held, as `std`'s `Mutex` does.
///
/// # Async
/// `.await` inside the block is a compile error: the task would hold the lock while
/// suspended, and another task on the same thread that took it would find the thread
/// already holding it. Finish the locked work, leave the block, then await. (An `async`
/// block written inside is its own future and may await.)
///
/// This holds by construction: the block runs in a closure called on the spot, which is not
/// `async`, so an `.await` that a macro writes is an error too (E0728; one written in the
/// block itself gets lockkit's message). `return`, `?` (on `Result`, `Option`,
/// `ControlFlow` and `Poll` of them), `break` and `continue`, labelled or not, written in
/// the block or in the arguments of a macro called there (`vec![x?]`) or in a nested
/// `locked!`, leave the block as they would without the macro. Two things a plain block
/// allows do not compile in it: a jump that a macro writes from tokens of its own
/// (anyhow's `bail!` is a type mismatch; write `return Err(..)`), and assigning a variable
/// declared before the block without a value (E0381; write `let x = locked!(..)`).
#[proc_macro]
pub fn locked(input: TokenStream) -> TokenStream {
    locked::expand(input.into()).into()
}
