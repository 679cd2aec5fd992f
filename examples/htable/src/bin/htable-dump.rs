//! Attaches to an htable region by name and prints the table (Kamailio's
//! `kamcmd htable.dump`): `htable-dump /lockkit-htable`.
//!
//! It maps the region, finds the table by its published name (`lookup` checks that the
//! region holds this program's `HTable` layout, field by field), and takes each stripe once
//! to read its buckets, so it can run while the workers do. A stripe whose last holder died
//! in an update is reported, not repaired: the workers repair it.

use std::process::ExitCode;

use htable::{HTable, BUCKETS, ROOT, STRIPES};
use lockkit::ShmRegion;

fn main() -> ExitCode {
    let Some(name) = std::env::args().nth(1) else {
        eprintln!("usage: htable-dump /NAME");
        return ExitCode::from(2);
    };
    let region = match ShmRegion::open(&name) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("htable-dump: {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let table = match region.lookup::<HTable>(ROOT) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("htable-dump: {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "htable {name}: {BUCKETS} buckets over {STRIPES} stripes, now = {}",
        table.now()
    );
    let mut cells = Vec::new();
    let mut died = Vec::new();
    table.for_each_cell(
        |b, c| cells.push((b, c.key.to_string(), c.value.to_string(), c.expires)),
        |stripe| died.push(stripe),
    );
    cells.sort();
    for (b, key, value, expires) in &cells {
        println!("bucket {b:4}: {key} = {value} (expires at {expires})");
    }
    for stripe in &died {
        println!("stripe {stripe}: its last holder died in an update, not repaired yet");
    }
    println!("entries: {}", cells.len());
    ExitCode::SUCCESS
}
