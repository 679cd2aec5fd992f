//! Procedural macros for `lockkit`. The macros arrive with their own issue; this crate
//! exports nothing yet.
