mod table {
    use lockkit::{shared_locked, GenLock};

    #[shared_locked]
    pub struct Table {
        lock: GenLock,
        #[guarded_by(lock)]
        hits: u64,
    }
}

fn main() {
    // `new` has the visibility of the most private field: outside code cannot build a
    // Table with values of its choosing.
    let _ = table::Table::new(5);
}
