//! The constants of the scoring model, with their defaults and limits.

use serde::{Deserialize, Serialize};

/// The longest half-life accepted: ten years.
const MAX_HALF_LIFE_SECS: u64 = 10 * 365 * 24 * 3600;

/// The most peers a table may be configured to track.
const MAX_PEERS_LIMIT: usize = 10_000_000;

/// The configuration of a [`TrustTable`](crate::TrustTable): the scoring model's constants and
/// the table's memory bounds.
///
/// Deserializes from a TOML table (unknown keys are refused, missing keys take the default),
/// so the node's configuration can embed it as `[trust]`. Build one with
/// `TrustConfig::default()` and adjust fields; [`TrustTable::new`](crate::TrustTable::new)
/// validates it.
///
/// Scores are in `[0, 1]`. The thresholds must satisfy
/// `0 <= untrusted_below <= untrusted_exit < baseline < verified_exit <= verified_at <= 1`, so
/// that decay alone always lifts an automatic Untrusted and always ends an idle Verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// The score of a peer nothing is known about, and where every score decays to.
    /// Default 0.5.
    pub baseline: f64,
    /// The half-life of the decay toward the baseline, in seconds: after this long without
    /// news, a score is half as far from the baseline. Also the half-life of a
    /// recommendation's weight. Default 86 400 (24 hours).
    pub half_life_secs: u64,
    /// A peer whose own score falls below this becomes Untrusted. Default 0.2.
    pub untrusted_below: f64,
    /// An automatically Untrusted peer is Unknown again once its own score is back at or above
    /// this (hysteresis, so a score near the line does not flap). Default 0.25.
    pub untrusted_exit: f64,
    /// A peer that completed a handshake becomes Verified at this score. Default 0.6.
    pub verified_at: f64,
    /// A Verified peer falls back to Unknown below this score. Default 0.55.
    pub verified_exit: f64,
    /// The gain budget's refill rate, in score per hour: rewards cannot raise a score faster
    /// than this (after the burst), however many valid messages a peer sends. Default 0.1.
    pub gain_per_hour: f64,
    /// The gain budget's capacity, in score. Default 0.05.
    pub gain_burst: f64,
    /// The most one recommendation adds, from a recommender whose own score is 1 (the weight is
    /// multiplied by the recommender's current own score). Default 0.1.
    pub recommendation_weight: f64,
    /// The most all recommendations for one peer add together. Default 0.15.
    pub recommendation_cap: f64,
    /// The most recommenders counted for one peer. Default 4.
    pub max_recommenders_per_peer: usize,
    /// The most peers one recommender may recommend at a time. Default 64.
    pub max_recommendations_by_peer: usize,
    /// The most peers tracked without an operator assignment; beyond it the least recently
    /// seen are evicted (Unknown first, then Verified, then Untrusted). Default 10 000.
    pub max_peers: usize,
    /// The most operator-assigned peers (these are never evicted). Default 4096.
    pub max_assigned: usize,
    /// The most undelivered events; the oldest are dropped beyond it and counted in
    /// [`TrustStats::events_dropped`](crate::TrustStats). Default 4096.
    pub max_events: usize,
    /// How often [`TrustTable::handle_timeout`](crate::TrustTable::handle_timeout)
    /// re-evaluates every peer's level against the decayed score, in seconds. Default 60.
    pub sweep_interval_secs: u64,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self {
            baseline: 0.5,
            half_life_secs: 24 * 3600,
            untrusted_below: 0.2,
            untrusted_exit: 0.25,
            verified_at: 0.6,
            verified_exit: 0.55,
            gain_per_hour: 0.1,
            gain_burst: 0.05,
            recommendation_weight: 0.1,
            recommendation_cap: 0.15,
            max_recommenders_per_peer: 4,
            max_recommendations_by_peer: 64,
            max_peers: 10_000,
            max_assigned: 4096,
            max_events: 4096,
            sweep_interval_secs: 60,
        }
    }
}

/// A [`TrustConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustConfigError {
    /// A field is outside its allowed range.
    #[error("trust config: `{field}` is {value}, expected {expected}")]
    OutOfRange {
        /// The field's name, as in the configuration file.
        field: &'static str,
        /// The value given, as text.
        value: String,
        /// The allowed range.
        expected: &'static str,
    },
    /// The score thresholds are not in the required order.
    #[error(
        "trust config: thresholds must satisfy 0 <= untrusted_below <= untrusted_exit < \
         baseline < verified_exit <= verified_at <= 1; `{field}` breaks the order"
    )]
    ThresholdOrder {
        /// The first field found out of order.
        field: &'static str,
    },
}

fn unit(field: &'static str, value: f64) -> Result<(), TrustConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(TrustConfigError::OutOfRange {
            field,
            value: value.to_string(),
            expected: "a number from 0 to 1",
        })
    }
}

fn count(
    field: &'static str,
    value: usize,
    min: usize,
    max: usize,
    expected: &'static str,
) -> Result<(), TrustConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(TrustConfigError::OutOfRange {
            field,
            value: value.to_string(),
            expected,
        })
    }
}

impl TrustConfig {
    /// Checks every field's range and the order of the thresholds.
    ///
    /// # Errors
    /// [`TrustConfigError::OutOfRange`] naming the first bad field, or
    /// [`TrustConfigError::ThresholdOrder`].
    pub fn validate(&self) -> Result<(), TrustConfigError> {
        unit("baseline", self.baseline)?;
        unit("untrusted_below", self.untrusted_below)?;
        unit("untrusted_exit", self.untrusted_exit)?;
        unit("verified_at", self.verified_at)?;
        unit("verified_exit", self.verified_exit)?;
        unit("gain_burst", self.gain_burst)?;
        unit("recommendation_weight", self.recommendation_weight)?;
        unit("recommendation_cap", self.recommendation_cap)?;
        if !(self.gain_per_hour.is_finite() && (0.0..=1000.0).contains(&self.gain_per_hour)) {
            return Err(TrustConfigError::OutOfRange {
                field: "gain_per_hour",
                value: self.gain_per_hour.to_string(),
                expected: "a number from 0 to 1000",
            });
        }
        if !(1..=MAX_HALF_LIFE_SECS).contains(&self.half_life_secs) {
            return Err(TrustConfigError::OutOfRange {
                field: "half_life_secs",
                value: self.half_life_secs.to_string(),
                expected: "1 second to 10 years",
            });
        }
        if !(1..=86_400).contains(&self.sweep_interval_secs) {
            return Err(TrustConfigError::OutOfRange {
                field: "sweep_interval_secs",
                value: self.sweep_interval_secs.to_string(),
                expected: "1 to 86400 seconds",
            });
        }
        count(
            "max_peers",
            self.max_peers,
            1,
            MAX_PEERS_LIMIT,
            "1 to 10000000",
        )?;
        count(
            "max_assigned",
            self.max_assigned,
            0,
            1_000_000,
            "0 to 1000000",
        )?;
        count("max_events", self.max_events, 1, 1_000_000, "1 to 1000000")?;
        count(
            "max_recommenders_per_peer",
            self.max_recommenders_per_peer,
            0,
            64,
            "0 to 64",
        )?;
        count(
            "max_recommendations_by_peer",
            self.max_recommendations_by_peer,
            0,
            65_536,
            "0 to 65536",
        )?;
        let order = [
            (
                "untrusted_exit",
                self.untrusted_below <= self.untrusted_exit,
            ),
            ("baseline", self.untrusted_exit < self.baseline),
            ("verified_exit", self.baseline < self.verified_exit),
            ("verified_at", self.verified_exit <= self.verified_at),
        ];
        if let Some((field, _)) = order.iter().find(|(_, ok)| !ok) {
            return Err(TrustConfigError::ThresholdOrder { field });
        }
        Ok(())
    }

    /// The half-life in milliseconds.
    pub(crate) fn half_life_ms(&self) -> f64 {
        self.half_life_secs as f64 * 1000.0
    }

    /// The sweep interval in milliseconds.
    pub(crate) fn sweep_interval_ms(&self) -> u64 {
        self.sweep_interval_secs.saturating_mul(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        TrustConfig::default().validate().unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let c = TrustConfig {
            baseline: f64::NAN,
            ..TrustConfig::default()
        };
        let err = c.validate().unwrap_err();
        assert!(
            matches!(
                err,
                TrustConfigError::OutOfRange {
                    field: "baseline",
                    ..
                }
            ),
            "{err}"
        );

        let c = TrustConfig {
            untrusted_exit: 0.6,
            ..TrustConfig::default()
        };
        assert_eq!(
            c.validate(),
            Err(TrustConfigError::ThresholdOrder { field: "baseline" })
        );

        let c = TrustConfig {
            verified_exit: 0.7,
            ..TrustConfig::default()
        };
        assert_eq!(
            c.validate(),
            Err(TrustConfigError::ThresholdOrder {
                field: "verified_at"
            })
        );

        let c = TrustConfig {
            max_peers: 0,
            ..TrustConfig::default()
        };
        let text = c.validate().unwrap_err().to_string();
        assert!(text.contains("`max_peers` is 0"), "{text}");

        let c = TrustConfig {
            half_life_secs: 0,
            ..TrustConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(TrustConfigError::OutOfRange {
                field: "half_life_secs",
                ..
            })
        ));
    }
}
