//! Integer time arithmetic that saturates instead of overflowing.

use std::time::{Duration, Instant};

/// Nanoseconds per second.
pub(crate) const NANOS_PER_SEC: u128 = 1_000_000_000;

/// `nanos` as a `Duration`, saturating at `Duration::MAX`.
pub(crate) fn from_nanos(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    if secs == u64::MAX {
        return Duration::MAX;
    }
    // The remainder is below 10^9, so it fits a u32.
    let sub = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(secs, sub)
}

/// Time from `earlier` to `now`; zero if `now` is not later (callers may pass instants out of
/// order, and a state machine must not go back in time).
pub(crate) fn since(earlier: Instant, now: Instant) -> Duration {
    now.saturating_duration_since(earlier)
}

/// `at + d`, or `None` if that is beyond what `Instant` can represent.
pub(crate) fn add(at: Instant, d: Duration) -> Option<Instant> {
    at.checked_add(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_nanos_saturates() {
        assert_eq!(from_nanos(1_500_000_000), Duration::from_millis(1500));
        assert_eq!(from_nanos(u128::MAX), Duration::MAX);
        assert_eq!(from_nanos(Duration::MAX.as_nanos()), Duration::MAX);
        let near = Duration::new(u64::MAX - 1, 999_999_999);
        assert_eq!(from_nanos(near.as_nanos()), near);
    }
}
