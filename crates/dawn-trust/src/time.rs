//! The crate's unit of time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Converts a wall-clock time to whole milliseconds since the Unix epoch (rounding down), the
/// `now_ms` every input of this crate takes. Times before 1970 give 0; times beyond
/// `u64::MAX` milliseconds give `u64::MAX`.
///
/// The crate never reads the clock itself: the node calls `unix_ms(SystemTime::now())`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
///
/// assert_eq!(dawn_trust::unix_ms(UNIX_EPOCH + Duration::from_micros(1_500)), 1);
/// ```
#[must_use]
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn converts_and_clamps() {
        assert_eq!(unix_ms(UNIX_EPOCH), 0);
        assert_eq!(
            unix_ms(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            1_700_000_000_123
        );
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
