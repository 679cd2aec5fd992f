//! Lock algorithms: process-shared lock words and the code that takes and releases them.
//!
//! These are the building blocks behind [`GenLock`](crate::GenLock) and the other user-facing
//! locks, which add guards and data; use them directly only to build new lock types.

mod futex;

pub use futex::RawFutex;
