//! One notion of "how long may this wait": every timed acquisition in lockkit goes through
//! [`Deadline`], so they all behave alike.
//!
//! - A timeout is turned into a deadline on the monotonic clock once, at the start, so a
//!   wait that is interrupted and resumed (signals, spurious wake-ups, lost races) never
//!   waits longer in total than asked.
//! - A timeout too large to represent as an instant (`Duration::MAX`, say) means "no
//!   deadline": the wait behaves like the untimed one, for ever if need be.
//! - The protocols model-checked with loom take their deadline from `crate::model`, which
//!   under `--cfg loom` swaps in a model where time does not pass.

use std::time::{Duration, Instant};

/// The time a timed acquisition had was used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expired;

/// When a wait must give up, if ever.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Option<Instant>,
}

impl Deadline {
    /// No deadline: wait as long as it takes.
    pub(crate) const NEVER: Deadline = Deadline { at: None };

    /// `timeout` from now; unrepresentably far means never.
    pub(crate) fn after(timeout: Duration) -> Deadline {
        Deadline {
            at: Instant::now().checked_add(timeout),
        }
    }

    /// How long a wait may still sleep: `Ok(None)` for no limit, `Ok(Some(left))` with
    /// `left > 0`, or `Err(Expired)` once the deadline has passed.
    pub(crate) fn left(&self) -> Result<Option<Duration>, Expired> {
        match self.at {
            None => Ok(None),
            Some(at) => match at.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(Expired),
            },
        }
    }

    /// Whether the deadline has passed.
    pub(crate) fn expired(&self) -> bool {
        self.left().is_err()
    }

    /// The deadline as an absolute `CLOCK_MONOTONIC` time, for the C calls that take one
    /// (`pthread_mutex_clocklock`, `sem_clockwait`); `None` for no deadline.
    pub(crate) fn monotonic_timespec(&self) -> Option<libc::timespec> {
        let left = self.left().unwrap_or(Some(Duration::ZERO))?;
        let now = crate::sys::monotonic_ns();
        let nanos = now % 1_000_000_000 + u64::from(left.subsec_nanos());
        let secs = (now / 1_000_000_000)
            .saturating_add(left.as_secs())
            .saturating_add(nanos / 1_000_000_000)
            .min(i64::MAX as u64);
        Some(libc::timespec {
            tv_sec: secs as libc::time_t,
            tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unrepresentable_timeout_is_no_deadline() {
        let d = Deadline::after(Duration::MAX);
        assert_eq!(d.left(), Ok(None));
    }

    #[test]
    fn a_deadline_counts_down_and_then_expires() {
        let d = Deadline::after(Duration::from_millis(30));
        let left = d.left().unwrap().unwrap();
        assert!(left <= Duration::from_millis(30) && !left.is_zero());
        std::thread::sleep(Duration::from_millis(35));
        assert_eq!(d.left(), Err(Expired));
        assert!(d.expired());
    }

    #[test]
    fn a_monotonic_timespec_lies_ahead_of_the_clock_by_the_time_left() {
        let d = Deadline::after(Duration::from_secs(3));
        let ts = d.monotonic_timespec().unwrap();
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and out pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let ahead = (ts.tv_sec - now.tv_sec) as f64 + (ts.tv_nsec - now.tv_nsec) as f64 * 1e-9;
        assert!((2.5..=3.0).contains(&ahead), "{ahead}");
        assert!(Deadline::NEVER.monotonic_timespec().is_none());
    }
}
