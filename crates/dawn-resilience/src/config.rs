//! `ConfigError`, the serde form of durations, and [`ResilienceConfig`], every parameter of the
//! crate in one section a node can read from its config file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::code::{ErrorCode, HasErrorCode};
use crate::health::HealthConfig;
use crate::limiter::{CallLimitConfig, RateLimitConfig};
use crate::retry::{RetryBudgetConfig, RetryPolicy};

/// A parameter was refused. Every variant names the parameter (`retry.cap_ms`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count, rate, size or duration that must be positive is zero.
    #[error("{0} must be positive")]
    Zero(&'static str),
    /// A value is above the largest one accepted.
    #[error("{name} is {value}, above the limit of {max}")]
    TooLarge {
        /// The parameter.
        name: &'static str,
        /// Its value (durations in milliseconds).
        value: u128,
        /// The largest accepted value, in the same unit.
        max: u128,
    },
    /// Two parameters contradict each other.
    #[error("inconsistent parameters: {0}")]
    Inconsistent(&'static str),
}

impl HasErrorCode for ConfigError {
    fn code(&self) -> ErrorCode {
        ErrorCode::ConfigInvalid
    }
}

/// Refuses zero.
pub(crate) fn positive(name: &'static str, value: u128) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::Zero(name));
    }
    Ok(())
}

/// Refuses values above `max`.
pub(crate) fn at_most(name: &'static str, value: u128, max: u128) -> Result<(), ConfigError> {
    if value > max {
        return Err(ConfigError::TooLarge { name, value, max });
    }
    Ok(())
}

/// Refuses a zero duration or one longer than `max`; both in milliseconds in the error.
pub(crate) fn duration(
    name: &'static str,
    value: Duration,
    max: Duration,
) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::Zero(name));
    }
    if value > max {
        return Err(ConfigError::TooLarge {
            name,
            value: value.as_millis(),
            max: max.as_millis(),
        });
    }
    Ok(())
}

/// Every parameter of the crate, as the `[resilience]` section of a node's configuration.
///
/// Durations are written in whole milliseconds (`base_ms = 250`). Missing keys take their
/// defaults and unknown keys are refused, so a typo is an error rather than a silent default.
///
/// ```
/// use dawn_resilience::ResilienceConfig;
///
/// let config: ResilienceConfig =
///     serde_json::from_str(r#"{"rate_limit": {"messages_per_sec": 50}}"#)?;
/// assert_eq!(config.rate_limit.messages_per_sec, 50);
/// assert_eq!(config.breaker, Default::default());
/// config.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResilienceConfig {
    /// Backoff between retries of one operation (a dial, a request).
    pub retry: RetryPolicy,
    /// The node-wide cap on retries, so that retries cannot amplify an outage.
    pub retry_budget: RetryBudgetConfig,
    /// Per-peer inbound limits on gossip.
    pub rate_limit: RateLimitConfig,
    /// Per-peer limit on requests to the node's agents.
    pub call_limit: CallLimitConfig,
    /// Per-peer circuit breakers.
    pub breaker: BreakerConfig,
    /// Health aggregation defaults.
    pub health: HealthConfig,
}

impl ResilienceConfig {
    /// Checks every section.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.retry.validate()?;
        self.retry_budget.validate()?;
        self.rate_limit.validate()?;
        self.call_limit.validate()?;
        self.breaker.validate()?;
        self.health.validate()
    }
}

/// `Duration` as whole milliseconds (`u64`) in serde.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// `Option<Duration>` as whole milliseconds or `null` in serde.
pub(crate) mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    // serde's `with` hands the field by reference, so the signature takes `&Option`.
    #[allow(clippy::ref_option)]
    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(d).map(|ms| ms.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let config = ResilienceConfig::default();
        config.validate().unwrap();
        let json = serde_json::to_string(&config).unwrap();
        let back: ResilienceConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_json::from_str::<ResilienceConfig>(r#"{"retry": {"bse_ms": 1}}"#);
        assert!(err.is_err());
        let err = serde_json::from_str::<ResilienceConfig>(r#"{"retries": {}}"#);
        assert!(err.is_err());
    }

    #[test]
    fn durations_are_milliseconds() {
        let config: ResilienceConfig =
            serde_json::from_str(r#"{"retry": {"base_ms": 100, "max_elapsed_ms": null}}"#).unwrap();
        assert_eq!(config.retry.base, Duration::from_millis(100));
        assert_eq!(config.retry.max_elapsed, None);
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["retry"]["base_ms"], 100);
    }

    #[test]
    fn duration_limits_count_nanoseconds() {
        let max = Duration::from_millis(10);
        duration("x", max, max).unwrap();
        assert_eq!(
            duration("x", max + Duration::from_nanos(1), max),
            Err(ConfigError::TooLarge {
                name: "x",
                value: 10,
                max: 10
            })
        );
        assert_eq!(
            duration("x", Duration::ZERO, max),
            Err(ConfigError::Zero("x"))
        );
    }
}
