//! Simulation parameters and their validation.

use std::ops::RangeInclusive;
use std::time::Duration;

use dawn_identity::NodeId;

use crate::latency::{LatencyModel, MAX_LATENCY};

/// A configuration value is out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A probability (loss rate) is not in `[0, 1]`.
    #[error("a loss rate is a probability in [0, 1], got {0}")]
    Loss(f64),
    /// A uniform latency range has `min > max`.
    #[error("latency range is reversed: min {min:?} > max {max:?}")]
    LatencyRange {
        /// The configured minimum.
        min: Duration,
        /// The configured maximum.
        max: Duration,
    },
    /// A latency or jitter exceeds [`MAX_LATENCY`].
    #[error("latency {0:?} exceeds the one-hour maximum")]
    LatencyTooLarge(Duration),
    /// A log-normal `sigma` is not in `[0, 4]`.
    #[error("log-normal sigma must be in [0, 4], got {0}")]
    LogNormalSigma(f64),
    /// A bandwidth of zero bytes per second.
    #[error("bandwidth must be at least one byte per second")]
    ZeroBandwidth,
    /// A churn fraction is not in `[0, 1]`.
    #[error("a churn fraction is in [0, 1], got {0}")]
    ChurnFraction(f64),
    /// A churn downtime range has `start > end`.
    #[error("churn downtime range is reversed: {start:?} > {end:?}")]
    DowntimeRange {
        /// The configured shortest downtime.
        start: Duration,
        /// The configured longest downtime.
        end: Duration,
    },
}

/// Checks that `loss` is a probability.
pub(crate) fn check_loss(loss: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&loss) {
        Ok(())
    } else {
        Err(ConfigError::Loss(loss))
    }
}

/// Checks that a per-node egress rate is positive.
pub(crate) const fn check_bandwidth(bandwidth: Option<u64>) -> Result<(), ConfigError> {
    match bandwidth {
        Some(0) => Err(ConfigError::ZeroBandwidth),
        _ => Ok(()),
    }
}

/// How a [`Sim`](crate::Sim) models the network.
///
/// Build it with struct-update syntax over the default:
///
/// ```
/// use std::time::Duration;
/// use dawn_sim::{LatencyModel, SimConfig};
///
/// let config = SimConfig {
///     seed: 7,
///     latency: LatencyModel::Uniform {
///         min: Duration::from_millis(10),
///         max: Duration::from_millis(50),
///     },
///     loss: 0.01,
///     bandwidth: Some(1_000_000),
///     ..SimConfig::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The seed: the same seed and the same scenario give the same run, bit for bit.
    pub seed: u64,
    /// Base latency of each link, fixed for the run.
    pub latency: LatencyModel,
    /// Extra delay drawn uniformly from `[0, jitter]` for every message. Non-zero jitter lets
    /// messages on one link overtake each other, as datagrams do.
    pub jitter: Duration,
    /// Probability that a message is lost, independently per message, in `[0, 1]`.
    pub loss: f64,
    /// Egress bandwidth of every node in bytes per second (`None`: unlimited). A node's
    /// messages leave one after another, each taking `wire_size / bandwidth`.
    pub bandwidth: Option<u64>,
    /// Whether to keep protocol events for [`Sim::drain_events`](crate::Sim::drain_events).
    /// Turn off for large runs that only look at counters.
    pub record_events: bool,
}

impl Default for SimConfig {
    /// Seed 0, uniform 10 to 50 ms links, no jitter, no loss, unlimited bandwidth, events kept.
    fn default() -> Self {
        Self {
            seed: 0,
            latency: LatencyModel::default(),
            jitter: Duration::ZERO,
            loss: 0.0,
            bandwidth: None,
            record_events: true,
        }
    }
}

impl SimConfig {
    /// Checks every parameter.
    ///
    /// # Errors
    /// The first [`ConfigError`] found: a bad latency model, jitter above [`MAX_LATENCY`], a
    /// loss rate outside `[0, 1]` or a zero bandwidth.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.latency.validate()?;
        if self.jitter > MAX_LATENCY {
            return Err(ConfigError::LatencyTooLarge(self.jitter));
        }
        check_loss(self.loss)?;
        check_bandwidth(self.bandwidth)
    }
}

/// A churn scenario for [`Sim::schedule_churn`](crate::Sim::schedule_churn): a fraction of
/// the nodes crash at random times and come back after a random downtime.
#[derive(Debug, Clone, PartialEq)]
pub struct Churn {
    /// Fraction of the eligible nodes that crash, in `[0, 1]` (rounded to a whole number).
    pub fraction: f64,
    /// When the first crash may happen, counted from the simulation's current time.
    pub start: Duration,
    /// Crash times are uniform in `[start, start + span]`.
    pub span: Duration,
    /// Downtime, uniform in this range; `None` means crashed nodes never return.
    pub downtime: Option<RangeInclusive<Duration>>,
    /// Nodes that never crash (for example the node a test observes from).
    pub exclude: Vec<NodeId>,
}

impl Churn {
    /// Churn of `fraction` of all nodes over `span` from now, each down for a time in
    /// `downtime`.
    #[must_use]
    pub const fn new(fraction: f64, span: Duration, downtime: RangeInclusive<Duration>) -> Self {
        Self {
            fraction,
            start: Duration::ZERO,
            span,
            downtime: Some(downtime),
            exclude: Vec::new(),
        }
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ConfigError::ChurnFraction`] for a fraction outside `[0, 1]`,
    /// [`ConfigError::DowntimeRange`] for a reversed downtime range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.fraction) {
            return Err(ConfigError::ChurnFraction(self.fraction));
        }
        if let Some(range) = &self.downtime
            && range.start() > range.end()
        {
            return Err(ConfigError::DowntimeRange {
                start: *range.start(),
                end: *range.end(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_bad_values_are_refused() {
        assert_eq!(SimConfig::default().validate(), Ok(()));
        for loss in [-0.01, 1.01, f64::NAN] {
            let config = SimConfig {
                loss,
                ..SimConfig::default()
            };
            assert!(matches!(config.validate(), Err(ConfigError::Loss(_))));
        }
        let config = SimConfig {
            bandwidth: Some(0),
            ..SimConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::ZeroBandwidth));
        let jitter = MAX_LATENCY + Duration::from_nanos(1);
        let config = SimConfig {
            jitter,
            ..SimConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::LatencyTooLarge(jitter)));
    }

    #[test]
    fn churn_validation() {
        let s = Duration::from_secs;
        assert_eq!(Churn::new(0.5, s(10), s(1)..=s(2)).validate(), Ok(()));
        assert!(matches!(
            Churn::new(1.5, s(10), s(1)..=s(2)).validate(),
            Err(ConfigError::ChurnFraction(_))
        ));
        assert!(matches!(
            Churn::new(f64::NAN, s(10), s(1)..=s(2)).validate(),
            Err(ConfigError::ChurnFraction(_))
        ));
        let reversed = Churn::new(0.5, s(10), s(3)..=s(2));
        assert_eq!(
            reversed.validate(),
            Err(ConfigError::DowntimeRange {
                start: s(3),
                end: s(2)
            })
        );
    }
}
