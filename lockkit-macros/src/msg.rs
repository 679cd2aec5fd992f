//! Every error message this crate emits, in one place (serde_derive keeps its attribute names
//! in `internals/symbol.rs` the same way). `tests/ui_messages.rs` checks that each one has a
//! case under `tests/ui/` whose `.stderr` shows it, so a message cannot be added without a
//! test that reads it.
//!
//! Messages say what is wrong and what to write instead. Placeholders (`{name}`) are filled
//! in with `fill`.

/// `text` with each `{key}` replaced by its value.
pub(crate) fn fill(text: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    let mut s = text.to_owned();
    for (k, v) in args {
        s = s.replace(&format!("{{{k}}}"), &v.to_string());
    }
    s
}

// Shared by the three macros.
pub(crate) const CRATE_PATH: &str =
    "crate = \"..\" takes the path lockkit is known by in this crate, e.g. crate = \"lk\"";
pub(crate) const CRATE_TWICE: &str = "crate = \"..\" is given twice";
pub(crate) const CRATE_NOT_A_CRATE: &str = "crate = \"..\" takes the name of the crate lockkit is \
     renamed to in Cargo.toml (one identifier, e.g. crate = \"lk\"), not a module path: the \
     generated unsafe impls rely on the checks reached through it";

// locked!
pub(crate) const LOCKED_ARROW: &str =
    "expected `=>` and a block: locked!(lock => { .. }) or locked!(g = lock => { .. })";
pub(crate) const LOCKED_CRATE_SEMI: &str =
    "expected `;` after the crate path: locked!(crate = \"lk\"; lock => { .. })";
pub(crate) const LOCKED_TRY_ELSE: &str = "locked!(try ..) needs an else block for when the lock \
     is busy: locked!(try lock => { .. } else { .. })";
pub(crate) const LOCKED_MUT: &str = "no `mut` here: the block is lent the data as `&mut T` \
     already (`*g += 1` works); write locked!(g = lock => { .. })";
pub(crate) const LOCKED_TRAILING: &str = "unexpected tokens after the block of locked!";
pub(crate) const LOCKED_TRY_MANY: &str = "locked!(try ..) and locked!(try_for(..) ..) take one \
     lock: taking several without waiting could leave some taken and others not; nest one \
     locked!(try ..) per lock";
pub(crate) const LOCKED_AWAIT: &str = "`.await` inside locked! would suspend this task while it \
     holds the lock, and another task on this thread that takes the lock would panic (the \
     thread already holds it): finish the locked work, leave the block, then await";

// #[shared_locked]
pub(crate) const SL_ARG: &str = "unknown argument: #[shared_locked] takes `crate = \"path\"` \
     (lockkit under another name) and `no_new` (generate no `new`)";
pub(crate) const SL_UNION: &str = "#[shared_locked] applies to structs, not unions: a union \
     cannot say which of its fields a lock guards";
pub(crate) const SL_ENUM: &str = "#[shared_locked] applies to structs, not enums: a lock cannot \
     guard a variant that may not exist; put the enum inside a guarded field";
pub(crate) const SL_TUPLE: &str = "#[shared_locked] needs a struct with named fields: the locks \
     and the fields they guard refer to each other by name";
pub(crate) const SL_GENERIC: &str = "#[shared_locked] does not support generic parameters: \
     every process must agree on one layout; write the struct with concrete types";
pub(crate) const SL_REPR: &str = "#[shared_locked] lays the struct out as #[repr(C)]; \
     `repr({repr})` cannot be combined with it (locks must stay aligned and in place): remove \
     it, or use repr(align(N))";
pub(crate) const SL_TWICE: &str = "#[shared_locked] is applied twice: remove one";
pub(crate) const SL_DERIVE_SHM_SAFE: &str = "#[shared_locked] implements ShmSafe (and \
     ShmZeroable) itself: remove ShmSafe from this derive";
pub(crate) const SL_MARKER_WITH_PATH: &str = "#[{marker}] is a marker that #[shared_locked] \
     reads by its name, not an attribute of its own: write #[{marker}(..)] without a path";
pub(crate) const SL_ACCESSOR_CLASH: &str = "`{a}` and `{b}` would both have an accessor \
     named `{name}`: rename one of them";
pub(crate) const SL_MARKER_ARG: &str =
    "expected #[{marker}(field)], naming the lock field of this struct";
pub(crate) const SL_MARKER_PATH: &str = "#[{marker}] takes no arguments";
pub(crate) const SL_TWO_ROLES: &str = "a field is guarded by one lock: remove the second \
     #[guarded_by]/#[striped_by]";
pub(crate) const SL_MARKER_TWICE: &str = "#[{marker}] is given twice";
pub(crate) const SL_CFG_ATTR: &str = "#[shared_locked] reads its markers before cfg_attr is \
     applied, so #[{marker}] under cfg_attr would be ignored: write #[{marker}(..)] directly, \
     and put #[cfg(..)] on the field if it exists only under a condition";
pub(crate) const SL_CFG_LOCK: &str = "a lock field cannot be conditional: its accessors and the \
     fields it guards would be left without it; make the fields it guards #[cfg] instead";
pub(crate) const SL_GUARD_MISSING: &str = "no field named `{lock}` in this struct: #[guarded_by] \
     names the GenLock field that guards `{field}`";
pub(crate) const SL_GUARD_SET: &str = "`{lock}` is a lock set: a field guarded by a set's \
     stripes is marked #[striped_by({lock})] and must be an array";
pub(crate) const SL_GUARD_NOT_LOCK: &str = "`{lock}` is not a lock (its type is `{ty}`): \
     #[guarded_by] names a field of type GenLock (or GenRwLock); if `{ty}` is one under another \
     name, mark the field #[lock] (or #[rw_lock])";
pub(crate) const SL_GUARD_SELF: &str = "`{field}` cannot guard itself: #[guarded_by] names \
     another field, a GenLock";
pub(crate) const SL_GUARD_GUARDED: &str = "`{lock}` is itself guarded by `{outer}`, so it \
     would be reachable only through `{outer}`'s guard and the fields it guards would \
     disappear: guard `{field}` with `{outer}`, or make `{lock}` a lock of its own";
pub(crate) const SL_STRIPE_MISSING: &str = "no field named `{set}` in this struct: \
     #[striped_by] names the GenLockSet field whose stripes guard `{field}`";
pub(crate) const SL_STRIPE_LOCK: &str = "`{set}` is a single lock: a field it guards is marked \
     #[guarded_by({set})]; #[striped_by] names a GenLockSet (or GenRwLockSet)";
pub(crate) const SL_STRIPE_NOT_SET: &str = "`{set}` is not a lock set (its type is `{ty}`): \
     #[striped_by] names a field of type GenLockSet<N> (or GenRwLockSet<N>); if `{ty}` is one \
     under another name, mark the field #[lock_set] (or #[rw_lock_set])";
pub(crate) const SL_STRIPE_ARRAY: &str = "a #[striped_by] field must be an array `[T; M]`: \
     element i is guarded by stripe i % N";
pub(crate) const SL_STANDALONE_GUARDED: &str =
    "#[standalone] marks a lock, not a guarded field: remove it";
pub(crate) const SL_STANDALONE_NOT_LOCK: &str = "#[standalone] marks a lock that guards no \
     field, and `{field}` is not a lock (its type is `{ty}`): remove #[standalone], or, if \
     `{ty}` is a GenLock under another name, mark the field #[lock] as well";
pub(crate) const SL_KIND_GUARDED: &str = "#[{marker}] marks a lock, and `{field}` is guarded by \
     another lock: a lock cannot be guarded";
pub(crate) const SL_LOCK_UNUSED: &str = "lock `{lock}` guards no field: mark the fields it \
     guards with #[{kind}({lock})], or mark it #[standalone] if it is used on its own";
pub(crate) const SL_STANDALONE_USED: &str =
    "lock `{lock}` is marked #[standalone] but guards fields: remove #[standalone]";
pub(crate) const SL_NAME_CLASH: &str = "locks `{a}` and `{b}` would both name their fields' \
     struct `{name}`: rename one of them";
pub(crate) const SL_REFERENCE: &str = "a reference points into this process's memory and \
     cannot live in shared memory: store a ShmPtr to a shared object instead";
pub(crate) const SL_POINTER: &str = "a raw pointer means nothing in another process, which \
     maps the region at another address, and cannot live in shared memory: store a ShmPtr \
     instead";

// #[derive(ShmSafe)]
pub(crate) const SD_ARG: &str = "unknown argument: #[shm_safe(..)] takes `crate = \"path\"` \
     (lockkit under another name)";
pub(crate) const SD_UNION: &str = "#[derive(ShmSafe)] applies to #[repr(C)] structs and \
     fieldless enums, not unions: no process could tell which field another one wrote last";
pub(crate) const SD_STRUCT_REPR: &str = "#[derive(ShmSafe)] needs #[repr(C)] on the struct: \
     Rust may lay a repr(Rust) struct out differently in another build, and every program \
     that maps the region must agree on where each field is";
pub(crate) const SD_PACKED: &str = "a repr(packed) struct cannot live in shared memory: its \
     fields may be unaligned, so atomics and locks in it could not be used; remove `packed` \
     (reorder the fields to save padding)";
pub(crate) const SD_ENUM_FIELDS: &str = "#[derive(ShmSafe)] applies to fieldless enums, and \
     variant `{variant}` holds data, which Rust lays out as it likes: use a #[repr(C)] struct \
     with a #[repr(u8)] enum for the kind and the data in fields beside it";
pub(crate) const SD_ENUM_REPR: &str = "#[derive(ShmSafe)] needs an integer repr on an enum \
     (#[repr(u8)], #[repr(u16)], #[repr(u32)], ..): its size must be the same in every \
     program that maps the region";

// #[grp_member]
pub(crate) const GM_ARG: &str = "unknown argument: #[grp_member] takes `on_destroy = method` \
     (or nothing, to rely on the struct's Drop) and `crate = \"path\"`";
pub(crate) const GM_HOOK_PATH: &str =
    "on_destroy names a method of this struct: #[grp_member(on_destroy = finish)]";
pub(crate) const GM_HOOK_TWICE: &str = "on_destroy is given twice";
pub(crate) const GM_NOT_STRUCT: &str =
    "#[grp_member] applies to structs with named fields, one of them marked #[grp]";
pub(crate) const GM_GRP_TWICE: &str = "a member belongs to one group, and `{first}` is already \
     marked #[grp]: remove one of the two";
pub(crate) const GM_GRP_PATH: &str = "#[grp] takes no arguments";
pub(crate) const GM_OWNS_GROUP: &str = "a member must not own a GrpLock of its group: the group \
     owns the member (through its destroy handler), so the member's reference would keep the \
     group alive forever; declare the field as `WeakGrpLock`";
pub(crate) const GM_STRONG_FIELD: &str = "`{field}` holds a GrpLock: if it is this member's \
     own group, the group owns the member (through its destroy handler) and the member owns the \
     group, so neither is ever destroyed and on_destroy never runs; reach the own group through \
     the #[grp] field (a WeakGrpLock), or, if `{field}` holds another group, mark it \
     #[other_group]";
pub(crate) const GM_LIFETIME: &str = "a member cannot borrow: its group owns it and destroys \
     it when the group's last reference goes, which may be after any borrow ends; hold owned \
     data (or an Arc) instead of references";
pub(crate) const GM_GRP_TYPE: &str =
    "the #[grp] field must be a `WeakGrpLock` (found `{ty}`); `join` fills it in";
pub(crate) const GM_NO_GRP: &str = "`{name}` has no #[grp] field: mark the field that reaches \
     the group, `#[grp] group: WeakGrpLock`";
