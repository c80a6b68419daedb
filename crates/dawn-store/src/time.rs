//! Wall-clock times as stored: Unix milliseconds in an SQLite INTEGER.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::StoreError;

/// Converts a time to whole Unix milliseconds (rounding down).
///
/// # Errors
/// [`StoreError::TimeOutOfRange`] before 1970 or beyond `i64::MAX` milliseconds.
pub(crate) fn to_millis(time: SystemTime) -> Result<i64, StoreError> {
    let since = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| StoreError::TimeOutOfRange)?;
    i64::try_from(since.as_millis()).map_err(|_| StoreError::TimeOutOfRange)
}

/// Converts stored Unix milliseconds back to a time; `None` for a negative value, which the
/// schema's checks forbid and so only a damaged row can hold.
pub(crate) fn from_millis(millis: i64) -> Option<SystemTime> {
    let millis = u64::try_from(millis).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_millisecond_precision() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let ms = to_millis(t).unwrap();
        assert_eq!(ms, 1_700_000_000_123);
        assert_eq!(
            from_millis(ms),
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        );
        assert_eq!(from_millis(0), Some(UNIX_EPOCH));
    }

    #[test]
    fn out_of_range_times_are_rejected() {
        let before = UNIX_EPOCH - Duration::from_millis(1);
        assert!(matches!(to_millis(before), Err(StoreError::TimeOutOfRange)));
        assert_eq!(from_millis(-1), None);
    }
}
