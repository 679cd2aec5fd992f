//! How often a waiter asks the kernel whether the holder it waits behind is gone
//! (`liveness::holder_gone`): the naps between two questions, one schedule for every backend.
//! The futex and SysV-semaphore locks sleep a nap at a time ([`Naps`]); the spin and POSIX
//! semaphore locks space their questions from [`PROBE_FIRST`] to [`PROBE_MAX`].

use std::time::Duration;

/// A waiter's first nap before it asks whether the owner's process is gone. Short, so that a
/// waiter that comes after a death asks soon; it costs nothing when the holder is alive and
/// quick (its unlock wakes the waiter first), and one more wake-up per long wait otherwise.
pub(crate) const PROBE_FIRST: Duration = Duration::from_micros(50);
/// The longest nap between two checks of one owner for the first [`BRISK_FOR`] of a wait
/// behind it: bounds the hand-over after a death (median ~0.1 ms of nap on top of the
/// kernel's teardown of the dead process), at one `fcntl` and one wake-up per interval
/// (~4,000 a second, 5-6% of a core per waiting thread, `cargo bench --bench owner_death`)
/// while a live holder holds on.
const PROBE_BRISK_MAX: Duration = Duration::from_micros(250);
/// How long a waiter asks at the brisk rate behind one holder. A lock held this long by a live
/// holder is held for a reason (a slow operation, a stopped process), and a waiter that keeps
/// asking four times a millisecond wastes a core between many such waiters.
const BRISK_FOR: Duration = Duration::from_millis(100);
/// The longest nap between two checks of one owner after that: the hand-over after a death
/// takes up to a millisecond more, and a waiter wakes once a millisecond.
pub(crate) const PROBE_MAX: Duration = Duration::from_millis(1);

/// One waiter's naps: [`PROBE_FIRST`], doubling to 250 µs for the first 100 ms behind one
/// holder, then to [`PROBE_MAX`].
pub(crate) struct Naps {
    nap: Duration,
    /// The holder last found alive, and since when (monotonic ns).
    behind: Option<(u32, u64)>,
}

impl Naps {
    pub(crate) const fn new() -> Naps {
        Naps {
            nap: PROBE_FIRST,
            behind: None,
        }
    }

    /// The nap to take now, no longer than what is `left` before a deadline.
    pub(crate) fn next(&self, left: Option<Duration>) -> Duration {
        left.map_or(self.nap, |l| l.min(self.nap))
    }

    /// Another holder (or none) since the last nap: the next nap is the first again.
    pub(crate) fn restart(&mut self) {
        self.nap = PROBE_FIRST;
    }

    /// `owner` was found alive at a nap's end: the next nap is longer.
    pub(crate) fn found_alive(&mut self, owner: u32) {
        let now = crate::sys::monotonic_ns();
        let since = match self.behind {
            Some((o, since)) if o == owner => since,
            _ => {
                self.behind = Some((owner, now));
                now
            }
        };
        let brisk = now.saturating_sub(since) < BRISK_FOR.as_nanos() as u64;
        self.nap = (self.nap * 2).min(if brisk { PROBE_BRISK_MAX } else { PROBE_MAX });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naps_double_to_the_brisk_cap_and_start_again_for_another_holder() {
        let mut n = Naps::new();
        assert_eq!(n.next(None), PROBE_FIRST);
        for _ in 0..10 {
            n.found_alive(7);
        }
        assert_eq!(n.next(None), PROBE_BRISK_MAX);
        assert_eq!(
            n.next(Some(Duration::from_micros(10))),
            Duration::from_micros(10)
        );
        n.restart();
        assert_eq!(n.next(None), PROBE_FIRST);
        // Behind another holder, the brisk time starts again.
        n.found_alive(8);
        assert_eq!(n.next(None), 2 * PROBE_FIRST);
    }
}
