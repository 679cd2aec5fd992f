//! Type identity in a region is structural (issue 9.3): a lookup finds an object whose
//! layout matches, whatever path its type has in this program, refuses one whose layout
//! differs and names the first field that does; enums and `Option`s live in shared memory
//! without `unsafe`.

#![recursion_limit = "512"]

mod common;

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use lockkit::{shared_locked, Error, ShmPtr, ShmRegion, ShmSafe};

/// Two copies of one source, at two paths (as two binaries built from one crate would name
/// it differently, or one binary that vendors it twice).
mod pub_a {
    pub mod types {
        #[derive(lockkit::ShmSafe)]
        #[repr(C)]
        pub struct Table {
            pub enabled: bool,
            pub hits: u32,
            pub slots: [u16; 4],
        }
    }
}
mod look_b {
    pub mod types {
        #[derive(lockkit::ShmSafe)]
        #[repr(C)]
        pub struct Table {
            pub enabled: bool,
            pub hits: u32,
            pub slots: [u16; 4],
        }
    }
}
/// The next version of the crate: same path, one field changed.
mod v2 {
    pub mod types {
        #[derive(lockkit::ShmSafe)]
        #[repr(C)]
        pub struct Table {
            pub enabled: u32,
            pub hits: u32,
            pub slots: [u16; 4],
        }
    }
}
/// A field renamed.
mod renamed {
    #[derive(lockkit::ShmSafe)]
    #[repr(C)]
    pub struct Table {
        pub enabled: bool,
        pub calls: u32,
        pub slots: [u16; 4],
    }
}
/// An array grown.
mod grown {
    #[derive(lockkit::ShmSafe)]
    #[repr(C)]
    pub struct Table {
        pub enabled: bool,
        pub hits: u32,
        pub slots: [u16; 8],
    }
}

fn region_with_table() -> ShmRegion {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let t = region
        .alloc(pub_a::types::Table {
            enabled: true,
            hits: 7,
            slots: [1, 2, 3, 4],
        })
        .unwrap();
    region.publish("table", &t).unwrap();
    region
}

fn mismatch<T: ShmSafe>(region: &ShmRegion) -> String {
    match region.lookup::<T>("table") {
        Err(Error::TypeMismatch {
            difference,
            expected,
            found,
            ..
        }) => {
            assert!(expected.ends_with("Table") && found.ends_with("Table"));
            difference
        }
        Err(e) => panic!("expected TypeMismatch, got {e}"),
        Ok(_) => panic!("a different layout was accepted"),
    }
}

#[test]
fn the_same_struct_at_another_path_is_found() {
    let region = region_with_table();
    let t = region.lookup::<look_b::types::Table>("table").unwrap();
    assert!(t.enabled);
    assert_eq!((t.hits, t.slots), (7, [1, 2, 3, 4]));
}

#[test]
fn a_changed_field_is_refused_and_named() {
    let region = region_with_table();
    assert_eq!(
        mismatch::<v2::types::Table>(&region),
        "field `enabled` at offset 0: u32 here, bool in the region"
    );
    assert_eq!(
        mismatch::<renamed::Table>(&region),
        "field `calls` (u32 at offset 4) is not in the region's type"
    );
    assert_eq!(
        mismatch::<grown::Table>(&region),
        "field `slots` at offset 8: array of 8 here, array of 4 in the region"
    );
    let e = region.lookup::<v2::types::Table>("table").err().unwrap();
    assert!(
        e.to_string().contains("holds another layout") && e.to_string().contains("field `enabled`"),
        "{e}"
    );
}

#[test]
fn a_pointer_resolved_as_another_layout_is_refused() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let t = region
        .alloc(pub_a::types::Table {
            enabled: false,
            hits: 1,
            slots: [0; 4],
        })
        .unwrap();
    let same = ShmPtr::<look_b::types::Table>::from_offset(t.ptr().offset());
    assert_eq!(region.get(same).unwrap().hits, 1);
    let other = ShmPtr::<v2::types::Table>::from_offset(t.ptr().offset());
    assert!(matches!(region.get(other), Err(Error::InvalidPtr { .. })));
}

#[test]
fn descriptions_live_outside_the_heap() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let whole = region.stats().unwrap().heap;
    let first = region.alloc(7u64).unwrap();
    let second = region.alloc(pub_a::types::Table {
        enabled: true,
        hits: 0,
        slots: [0; 4],
    });
    region.publish("t", second.as_ref().unwrap()).unwrap();
    assert_eq!(
        region.stats().unwrap().heap.allocations,
        2,
        "the objects only"
    );
    // SAFETY: nobody uses them afterwards.
    unsafe {
        region.free(first).unwrap();
        region.free(second.unwrap()).unwrap();
    }
    let after = region.stats().unwrap().heap;
    assert_eq!(
        (after.allocations, after.free_blocks, after.free),
        (0, 1, whole.free),
        "the heap is whole again"
    );
    region.check().unwrap();
}

#[test]
fn a_type_the_full_registry_cannot_describe_is_refused_with_advice() {
    // A 64 KiB region has a 4 KiB registry; descriptions of arrays of distinct lengths
    // take ~90 bytes each, so some dozens of them fill it.
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let mut refused = None;
    macro_rules! alloc_each {
        ($($n:literal)*) => {$(
            match region.alloc([0u8; $n]) {
                Ok(_) => {}
                Err(e) => { refused.get_or_insert(e); }
            }
        )*};
    }
    alloc_each!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30
        31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59
        60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88
        89 90 91 92 93 94 95 96 97 98 99 100 101 102 103 104 105 106 107 108 109 110);
    // Before, the type was allocated undescribed, and only its fingerprint was checked.
    let e = refused.expect("the registry never filled");
    assert!(
        matches!(&e, Error::TypeNotDescribed { reason, .. } if reason.contains("registry is full")
            && reason.contains("create the region larger")),
        "{e}"
    );
    // A type described before the registry filled is still allocated and found.
    let t = region.alloc([0u8; 1]).unwrap();
    region.publish("early", &t).unwrap();
    assert!(region.lookup::<[u8; 1]>("early").is_ok());
    region.check().unwrap();
}

/// Eight times eight, four levels deep: 4681 lines of description, more than a region keeps.
type Wide1 = (u8, u8, u8, u8, u8, u8, u8, u8);
type Wide2 = (Wide1, Wide1, Wide1, Wide1, Wide1, Wide1, Wide1, Wide1);
type Wide3 = (Wide2, Wide2, Wide2, Wide2, Wide2, Wide2, Wide2, Wide2);
type Wide4 = (Wide3, Wide3, Wide3, Wide3, Wide3, Wide3, Wide3, Wide3);

/// A type nested deeper than a description goes, in two versions that differ only at the
/// bottom (`u8` against `bool`).
mod deep {
    macro_rules! nest {
        ($leaf:ty; $name:ident) => {
            #[derive(lockkit::ShmSafe)]
            #[repr(C)]
            pub struct $name {
                pub v: $leaf,
            }
        };
        ($leaf:ty; $name:ident $next:ident $($rest:ident)*) => {
            #[derive(lockkit::ShmSafe)]
            #[repr(C)]
            pub struct $name {
                pub v: $next,
            }
            nest!($leaf; $next $($rest)*);
        };
    }
    pub mod a {
        nest!(u8; L0 L1 L2 L3 L4 L5 L6 L7 L8 L9 L10 L11 L12 L13 L14 L15 L16 L17 L18 L19 L20 L21
            L22 L23 L24 L25 L26 L27 L28 L29 L30 L31 L32 L33 L34 L35 L36 L37 L38 L39 L40 L41 L42
            L43 L44 L45 L46 L47 L48 L49 L50 L51 L52 L53 L54 L55 L56 L57 L58 L59 L60 L61 L62 L63
            L64 L65 L66 L67 L68 L69 L70);
    }
    pub mod b {
        nest!(bool; L0 L1 L2 L3 L4 L5 L6 L7 L8 L9 L10 L11 L12 L13 L14 L15 L16 L17 L18 L19 L20
            L21 L22 L23 L24 L25 L26 L27 L28 L29 L30 L31 L32 L33 L34 L35 L36 L37 L38 L39 L40 L41
            L42 L43 L44 L45 L46 L47 L48 L49 L50 L51 L52 L53 L54 L55 L56 L57 L58 L59 L60 L61 L62
            L63 L64 L65 L66 L67 L68 L69 L70);
    }
}

#[test]
fn a_type_too_large_or_too_deep_to_describe_whole_is_refused_not_trusted() {
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let e = region.alloc_zeroed::<Wide4>().map(|_| ()).unwrap_err();
    assert!(
        matches!(&e, Error::TypeNotDescribed { reason, .. } if reason.contains("bytes, more than")),
        "{e}"
    );
    // Before, a description was cut at 32 levels: these two differ only below that, so a
    // `bool` holding 2 could be lent out. Now neither can be allocated.
    let e = region
        .alloc_zeroed::<deep::a::L0>()
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&e, Error::TypeNotDescribed { reason, .. } if reason.contains("levels deep")),
        "{e}"
    );
    assert!(region.alloc_zeroed::<deep::b::L0>().is_err());
}

/// A call's state, as a SIP proxy keeps it.
#[derive(ShmSafe, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum CallState {
    Idle,
    Ringing,
    Talking,
}

/// The same enum in a later version, with a variant added.
mod later {
    #[derive(lockkit::ShmSafe, Clone, Copy)]
    #[repr(u8)]
    pub enum CallState {
        Idle,
        Ringing,
        Talking,
        Held,
    }
}

#[derive(ShmSafe)]
#[repr(u16)]
enum Code {
    Ok = 200,
    NotFound = 404,
}

#[shared_locked]
struct Call {
    lock: lockkit::GenLock,
    #[guarded_by(lock)]
    state: CallState,
    #[guarded_by(lock)]
    peer: Option<u32>,
    #[guarded_by(lock)]
    last: Option<ShmPtr<u64>>,
    answered: AtomicU32,
}

#[test]
fn enums_and_options_live_in_shared_memory_across_fork() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    // Zero bytes are `Idle` (the first variant), so the struct is zeroable except for the
    // Options: allocate it by value.
    let call = region
        .alloc(Call::new(CallState::Idle, None, None, AtomicU32::new(0)))
        .unwrap();
    let leaf = region.alloc(42u64).unwrap();
    let leaf_ptr = leaf.ptr();
    let child = common::fork(|| {
        let mut g = call.lock_lock();
        assert_eq!(g.state, CallState::Idle);
        g.state = CallState::Talking;
        g.peer = Some(5060);
        g.last = Some(leaf_ptr);
        call.answered.store(1, Relaxed);
        0
    });
    child.join();
    let g = call.lock_lock();
    assert_eq!(g.state, CallState::Talking);
    assert_eq!(g.peer, Some(5060));
    assert_eq!(*region.get(g.last.unwrap()).unwrap(), 42);
    assert_eq!(call.answered.load(Relaxed), 1);
}

#[test]
fn an_enum_with_other_variants_is_another_layout() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    region
        .publish("state", &region.alloc(CallState::Ringing).unwrap())
        .unwrap();
    assert_eq!(
        *region.lookup::<CallState>("state").unwrap(),
        CallState::Ringing
    );
    let e = region.lookup::<later::CallState>("state").err().unwrap();
    let Error::TypeMismatch { difference, .. } = e else {
        panic!("expected TypeMismatch, got {e}")
    };
    assert_eq!(
        difference,
        "the type at offset 0: enum u8 { Idle = 0, Ringing = 1, Talking = 2, Held = 3 } here, \
         enum u8 { Idle = 0, Ringing = 1, Talking = 2 } in the region"
    );
    // Explicit discriminants are part of the layout too.
    let code = region.alloc(Code::NotFound).unwrap();
    assert!(matches!(*code, Code::NotFound));
    assert!(matches!(Code::Ok as u16, 200));
}

#[test]
fn zeroable_follows_the_fields() {
    fn zeroable<T: lockkit::ShmZeroable>() {}
    zeroable::<CallState>(); // the first variant is 0
    zeroable::<pub_a::types::Table>();
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let t = region.alloc_zeroed::<look_b::types::Table>().unwrap();
    assert!(!t.enabled && t.hits == 0);
}

#[test]
fn layouts_describe_fields_at_their_real_offsets() {
    use lockkit::layout::Shape;
    let l = <Call as ShmSafe>::LAYOUT;
    assert_eq!(l.name, "Call");
    assert_eq!(l.size, std::mem::size_of::<Call>());
    let Shape::Struct { fields } = &l.shape else {
        panic!("a struct")
    };
    let names: Vec<_> = fields.iter().map(|f| f.name).collect();
    assert_eq!(names, ["lock", "answered"]);
    assert_eq!(
        fields[1].offset,
        std::mem::offset_of!(Call, answered),
        "the offset is the compiler's"
    );
    // The guarded fields are inside the lock's ShmMutex, by name.
    let Shape::Struct { fields: mutex } = &fields[0].layout.shape else {
        panic!("a ShmMutex is a struct")
    };
    let Shape::Struct { fields: data } = &mutex[1].layout.shape else {
        panic!("its data is the guarded fields' struct")
    };
    let names: Vec<_> = data.iter().map(|f| f.name).collect();
    assert_eq!(names, ["state", "peer", "last"]);
    assert_eq!(
        <pub_a::types::Table as ShmSafe>::LAYOUT.fingerprint(),
        <look_b::types::Table as ShmSafe>::LAYOUT.fingerprint()
    );
    assert_ne!(
        <pub_a::types::Table as ShmSafe>::LAYOUT.fingerprint(),
        <renamed::Table as ShmSafe>::LAYOUT.fingerprint()
    );
}

/// A list node that links to its own type: the layout of `ShmPtr<Self>` records the
/// target's size, not its layout, so describing it does not recurse forever.
#[derive(ShmSafe)]
#[repr(C)]
struct Node {
    next: ShmPtr<Node>,
    value: u64,
}

#[test]
fn a_type_that_links_to_itself_has_a_layout() {
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let tail = region
        .alloc(Node {
            next: ShmPtr::null(),
            value: 2,
        })
        .unwrap();
    let head = region
        .alloc(Node {
            next: tail.ptr(),
            value: 1,
        })
        .unwrap();
    region.publish("head", &head).unwrap();
    let found = region.lookup::<Node>("head").unwrap();
    assert_eq!(region.get(found.next).unwrap().value, 2);
    assert_eq!(
        region
            .lookup::<pub_a::types::Table>("head")
            .err()
            .unwrap()
            .to_string(),
        "root \"head\" holds another layout: asked for \
         layout_fingerprint::pub_a::types::Table, published as layout_fingerprint::Node; \
         field `enabled` (bool at offset 0) is not in the region's type"
    );
}

/// A plain struct with a lock beside plain data: safe code reads `data` through `&`.
#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct LooksLikeAMutex {
    lock: lockkit::GenLock,
    data: u64,
}

#[test]
fn a_mutex_is_not_a_plain_struct_of_the_same_fields() {
    // Same fields, same offsets; but the mutex's data is written while `&` to the mutex
    // exist, so lending `&u64` to it would be undefined behaviour.
    assert_ne!(
        <lockkit::ShmMutex<u64> as ShmSafe>::LAYOUT.fingerprint(),
        <LooksLikeAMutex as ShmSafe>::LAYOUT.fingerprint()
    );
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let m = region.alloc(lockkit::ShmMutex::new(1u64)).unwrap();
    region.publish("m", &m).unwrap();
    match region.lookup::<LooksLikeAMutex>("m") {
        Err(Error::TypeMismatch { .. }) => {}
        other => panic!(
            "a mutex was looked up as a plain struct: {:?}",
            other.map(|_| ())
        ),
    }
    assert_eq!(
        *region.lookup::<lockkit::ShmMutex<u64>>("m").unwrap().lock(),
        1
    );
}

#[shared_locked]
struct StripedTable {
    stripes: lockkit::GenLockSet<4>,
    #[striped_by(stripes)]
    per_aor: [u32; 16],
}

/// The same field names and types, but plain: `&[u32; 16]` for anyone.
#[derive(lockkit::ShmSafe)]
#[repr(C)]
struct PlainTable {
    stripes: lockkit::GenLockSet<4>,
    per_aor: [u32; 16],
}

#[test]
fn a_striped_field_is_not_a_plain_array() {
    assert_ne!(
        <StripedTable as ShmSafe>::LAYOUT.fingerprint(),
        <PlainTable as ShmSafe>::LAYOUT.fingerprint()
    );
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let t = region.alloc_zeroed::<StripedTable>().unwrap();
    region.publish("t", &t).unwrap();
    assert!(matches!(
        region.lookup::<PlainTable>("t"),
        Err(Error::TypeMismatch { .. })
    ));
    *t.lock_per_aor(3) = 7;
    assert_eq!(
        *region.lookup::<StripedTable>("t").unwrap().lock_per_aor(3),
        7
    );
}

/// Two layouts that differ only in a `bool` where the other has a `u8` (field names a review's
/// search made collide under the 64-bit FNV fingerprint lockkit once had).
mod collide_u8 {
    #[derive(lockkit::ShmSafe)]
    #[repr(C)]
    pub struct Flags {
        pub f: u8,
        pub xslqbgrxooaeki: u8,
    }
}
mod collide_bool {
    #[derive(lockkit::ShmSafe)]
    #[repr(C)]
    pub struct Flags {
        pub f: bool,
        pub xsbzkahkov21fb: u8,
    }
}

/// Makes every word of `region`'s mapping that holds `from` hold `to`: with `from` and `to`
/// two fingerprints, the region then records the first layout under the second's
/// fingerprint, exactly as if the two collided (a 64-bit prefix of a digest can be made to
/// collide with enough work; a test cannot spend it).
fn retag(region: &ShmRegion, object_at: *const u8, object_offset: u64, from: u64, to: u64) {
    use std::sync::atomic::AtomicU64;
    let base = object_at as usize - object_offset as usize;
    let len = region.stats().unwrap().size;
    let mut hits = 0;
    for at in (0..len).step_by(8) {
        // SAFETY: inside this region's live mapping (from its base, found from an object in
        // it, for its size), 8-aligned; read and written as atomics, as lockkit does.
        let w = unsafe { &*((base + at) as *const AtomicU64) };
        if w.load(Relaxed) == from {
            w.store(to, Relaxed);
            hits += 1;
        }
    }
    assert!(
        hits >= 2,
        "the fingerprint was found {hits} times (a block and its registry)"
    );
}

#[test]
fn a_layout_recorded_under_another_layouts_fingerprint_is_refused() {
    let (a, b) = (
        <collide_u8::Flags as ShmSafe>::LAYOUT.fingerprint(),
        <collide_bool::Flags as ShmSafe>::LAYOUT.fingerprint(),
    );
    assert_ne!(a, b, "two layouts, two digests");
    let region = ShmRegion::anonymous(1 << 16).unwrap();
    let w = region
        .alloc(collide_u8::Flags {
            f: 2,
            xslqbgrxooaeki: 0,
        })
        .unwrap();
    region.publish("flags", &w).unwrap();
    retag(
        &region,
        &*w as *const _ as *const u8,
        w.ptr().offset(),
        a,
        b,
    );
    // Looked up or resolved as the other layout: refused (a `bool` holding 2 otherwise).
    let e = region
        .lookup::<collide_bool::Flags>("flags")
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, Error::LayoutCollision { .. }), "{e}");
    let p = ShmPtr::<collide_bool::Flags>::from_offset(w.ptr().offset());
    assert!(matches!(region.get(p), Err(Error::LayoutCollision { .. })));
    // Nor can the other layout be allocated in this region under the shared fingerprint.
    let e = region
        .alloc(collide_bool::Flags {
            f: true,
            xsbzkahkov21fb: 0,
        })
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, Error::LayoutCollision { .. }), "{e}");
}

#[test]
fn a_check_remembered_for_a_dropped_region_does_not_pass_a_new_one() {
    // Region after region, each dropped before the next is made: the allocator hands the
    // next region the memory of the last one, where a cache keyed by address would find
    // the first region's check and skip the second's.
    let (a, b) = (
        <collide_u8::Flags as ShmSafe>::LAYOUT.fingerprint(),
        <collide_bool::Flags as ShmSafe>::LAYOUT.fingerprint(),
    );
    for round in 0..32 {
        {
            let first = ShmRegion::anonymous(1 << 16).unwrap();
            let t = first
                .alloc(collide_bool::Flags {
                    f: true,
                    xsbzkahkov21fb: 0,
                })
                .unwrap();
            // Checked (and remembered) as the bool layout, in the first region.
            assert!(first.get(t.ptr()).unwrap().f);
        }
        let second = ShmRegion::anonymous(1 << 16).unwrap();
        let w = second
            .alloc(collide_u8::Flags {
                f: 2,
                xslqbgrxooaeki: 0,
            })
            .unwrap();
        retag(
            &second,
            &*w as *const _ as *const u8,
            w.ptr().offset(),
            a,
            b,
        );
        let p = ShmPtr::<collide_bool::Flags>::from_offset(w.ptr().offset());
        let got = second.get(p).map(|_| ());
        assert!(
            matches!(got, Err(Error::LayoutCollision { .. })),
            "round {round}: a u8 holding 2 was not refused as a bool: {got:?}"
        );
    }
}

/// Two tables with the same fields whose `x` is striped by another set (adversary round 4):
/// each would take another lock for the same element, so they are two layouts, and the
/// object published as one is refused as the other, naming the marker.
mod striped_by_s1 {
    #[lockkit::shared_locked]
    pub struct Table {
        pub s1: lockkit::GenLockSet<4>,
        #[standalone]
        pub s2: lockkit::GenLockSet<4>,
        #[striped_by(s1)]
        pub x: [u64; 4],
    }
}
mod striped_by_s2 {
    #[lockkit::shared_locked]
    pub struct Table {
        #[standalone]
        pub s1: lockkit::GenLockSet<4>,
        pub s2: lockkit::GenLockSet<4>,
        #[striped_by(s2)]
        pub x: [u64; 4],
    }
}

#[test]
fn which_set_stripes_a_field_is_part_of_its_layout() {
    assert_ne!(
        striped_by_s1::Table::LAYOUT.digest(),
        striped_by_s2::Table::LAYOUT.digest()
    );
    let region = ShmRegion::anonymous(1 << 20).unwrap();
    let t = region.alloc_zeroed::<striped_by_s1::Table>().unwrap();
    region.publish("table", &t).unwrap();
    assert!(region.lookup::<striped_by_s1::Table>("table").is_ok());
    match region.lookup::<striped_by_s2::Table>("table") {
        Err(Error::TypeMismatch { difference, .. }) => assert!(
            difference.contains("#striped-by"),
            "the difference does not name the marker: {difference}"
        ),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a table striped by s1 was handed out as one striped by s2"),
    }
}
