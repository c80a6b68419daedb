//! Link latency models.
//!
//! Every link's base latency is fixed for the whole run: it is a pure function of the seed and
//! the pair of nodes, so 10,000 nodes need no per-link storage (there are 10^8 links). Sampling
//! uses only exactly-rounded floating-point arithmetic (no platform `libm`), so a seed gives the
//! same latencies on every platform.

use std::time::Duration;

use crate::config::ConfigError;
use crate::rng::{SplitMix, duration_nanos, mix64};

/// The largest latency a model may produce or be configured with: one hour.
pub const MAX_LATENCY: Duration = Duration::from_secs(3600);

/// The largest `sigma` accepted by [`LatencyModel::LogNormal`].
pub const MAX_LOG_NORMAL_SIGMA: f64 = 4.0;

/// Domain separation for per-link hashes.
const LINK_DOMAIN: u64 = 0x6c69_6e6b_6c61_7465; // "linklate"

/// How the base latency of each link is drawn.
///
/// A link's latency is drawn once per run from this distribution (keyed by the seed and the
/// unordered pair of nodes, so a link has the same latency both ways) and then stays fixed;
/// [`SimConfig::jitter`](crate::SimConfig::jitter) adds per-message variation on top.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LatencyModel {
    /// Every link has the same latency.
    Fixed(Duration),
    /// Uniform in `[min, max]`.
    Uniform {
        /// The smallest latency.
        min: Duration,
        /// The largest latency.
        max: Duration,
    },
    /// Approximately normal (Irwin–Hall, the sum of 12 uniforms), so bounded at
    /// `mean ± 6 std_dev`, and never below zero.
    Normal {
        /// The mean latency.
        mean: Duration,
        /// The standard deviation.
        std_dev: Duration,
    },
    /// Log-normal: `median * e^(sigma * Z)` with `Z` the approximate normal above; the long
    /// tail that measured internet latencies show. Capped at [`MAX_LATENCY`].
    LogNormal {
        /// The median latency.
        median: Duration,
        /// The standard deviation of the logarithm, in `[0, 4]`.
        sigma: f64,
    },
}

impl Default for LatencyModel {
    /// Uniform 10 to 50 ms per link.
    fn default() -> Self {
        Self::Uniform {
            min: Duration::from_millis(10),
            max: Duration::from_millis(50),
        }
    }
}

impl LatencyModel {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ConfigError::LatencyRange`] if a uniform range is reversed,
    /// [`ConfigError::LatencyTooLarge`] if a duration exceeds [`MAX_LATENCY`],
    /// [`ConfigError::LogNormalSigma`] if `sigma` is not in `[0, 4]`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |d: Duration| {
            if d > MAX_LATENCY {
                Err(ConfigError::LatencyTooLarge(d))
            } else {
                Ok(())
            }
        };
        match *self {
            Self::Fixed(d) => check(d),
            Self::Uniform { min, max } => {
                check(min)?;
                check(max)?;
                if min > max {
                    return Err(ConfigError::LatencyRange { min, max });
                }
                Ok(())
            }
            Self::Normal { mean, std_dev } => {
                check(mean)?;
                check(std_dev)
            }
            Self::LogNormal { median, sigma } => {
                check(median)?;
                if !(0.0..=MAX_LOG_NORMAL_SIGMA).contains(&sigma) {
                    return Err(ConfigError::LogNormalSigma(sigma));
                }
                Ok(())
            }
        }
    }

    /// The base latency of the link between node indices `a` and `b` under `seed`, in
    /// nanoseconds. Symmetric in `a` and `b`; at most [`MAX_LATENCY`].
    pub(crate) fn link_nanos(&self, seed: u64, a: u32, b: u32) -> u64 {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let key = mix64(seed ^ LINK_DOMAIN) ^ (u64::from(lo) << 32 | u64::from(hi));
        let mut stream = SplitMix::new(mix64(key));
        let cap = duration_nanos(MAX_LATENCY);
        let nanos = match *self {
            Self::Fixed(d) => duration_nanos(d),
            Self::Uniform { min, max } => {
                let lo = duration_nanos(min);
                let span = duration_nanos(max).saturating_sub(lo);
                let offset =
                    (u128::from(stream.next_u64()) * u128::from(span.saturating_add(1))) >> 64;
                lo + offset as u64
            }
            Self::Normal { mean, std_dev } => {
                let z = standard_normal(&mut stream);
                let ns = duration_nanos(mean) as f64 + z * duration_nanos(std_dev) as f64;
                // `as` saturates: negative values become 0.
                ns as u64
            }
            Self::LogNormal { median, sigma } => {
                let z = standard_normal(&mut stream);
                (duration_nanos(median) as f64 * exp(sigma * z)) as u64
            }
        };
        nanos.min(cap)
    }
}

/// An approximately standard normal value in `[-6, 6]`: the Irwin–Hall sum of 12 uniforms,
/// taken 21 bits at a time from four 64-bit words (the sum keeps 24 bits of precision, far
/// finer than a nanosecond of latency needs).
fn standard_normal(stream: &mut SplitMix) -> f64 {
    const MASK: u64 = (1 << 21) - 1;
    let mut sum: u64 = 0;
    for _ in 0..4 {
        let word = stream.next_u64();
        sum += (word & MASK) + (word >> 21 & MASK) + (word >> 42 & MASK);
    }
    // Each term is uniform in [0, 2^21); the sum of 12 is exact in an f64.
    sum as f64 / (1u64 << 21) as f64 - 6.0
}

/// `e^x` from additions, multiplications and divisions only, so it rounds identically
/// everywhere (the platform `exp` may differ in the last bit between C libraries).
/// Relative error below 1e-15 for `|x| <= 700`; `x` is clamped to that range.
fn exp(x: f64) -> f64 {
    // fdlibm's split of ln 2: the high part has trailing zero bits, so k * LN2_HI is exact.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    let x = x.clamp(-700.0, 700.0);
    let k = (x * std::f64::consts::LOG2_E).round();
    // Cody–Waite reduction: r = x - k ln 2 with |r| <= ln(2)/2.
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..=18 {
        term = term * r / f64::from(n);
        sum += term;
    }
    // |k| <= 1010, so 1023 + k is a valid normal exponent.
    let exponent = (1023 + k as i64) as u64;
    sum * f64::from_bits(exponent << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_closely() {
        for i in -2000..=2000 {
            let x = f64::from(i) * 0.01;
            let ours = exp(x);
            let std = x.exp();
            assert!(
                ((ours - std) / std).abs() < 1e-14,
                "x={x} ours={ours} std={std}"
            );
        }
        assert!((exp(700.0) / 700f64.exp() - 1.0).abs() < 1e-13);
        assert!(exp(-1e9) > 0.0);
        assert!(exp(f64::INFINITY).is_finite());
    }

    #[test]
    fn links_are_symmetric_fixed_and_seeded() {
        let model = LatencyModel::default();
        assert_eq!(model.link_nanos(1, 3, 9), model.link_nanos(1, 9, 3));
        assert_eq!(model.link_nanos(1, 3, 9), model.link_nanos(1, 3, 9));
        let differs = (0..100).any(|b| model.link_nanos(1, 0, b) != model.link_nanos(2, 0, b));
        assert!(differs);
    }

    #[test]
    fn uniform_covers_its_range_and_no_more() {
        let min = Duration::from_millis(10);
        let max = Duration::from_millis(50);
        let model = LatencyModel::Uniform { min, max };
        let samples: Vec<u64> = (0..10_000).map(|b| model.link_nanos(5, 0, b)).collect();
        let lo = *samples.iter().min().unwrap();
        let hi = *samples.iter().max().unwrap();
        assert!(lo >= duration_nanos(min) && hi <= duration_nanos(max));
        // 10,000 draws over 40 ms: the extremes are within 0.1 ms of the ends.
        assert!(lo < duration_nanos(min) + 100_000);
        assert!(hi > duration_nanos(max) - 100_000);
        let point = LatencyModel::Uniform { min, max: min };
        assert_eq!(point.link_nanos(5, 0, 1), duration_nanos(min));
    }

    #[test]
    fn normal_has_its_mean_and_spread() {
        let model = LatencyModel::Normal {
            mean: Duration::from_millis(40),
            std_dev: Duration::from_millis(5),
        };
        let n = 20_000u32;
        let samples: Vec<f64> = (0..n)
            .map(|b| model.link_nanos(7, 1, b + 2) as f64)
            .collect();
        let mean = samples.iter().sum::<f64>() / f64::from(n);
        let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / f64::from(n);
        assert!((mean - 40e6).abs() < 0.2e6, "{mean}");
        assert!((var.sqrt() - 5e6).abs() < 0.2e6, "{}", var.sqrt());
        let wide = LatencyModel::Normal {
            mean: Duration::from_millis(1),
            std_dev: Duration::from_millis(10),
        };
        // Clamped at zero, never wrapped around.
        assert!((0..1000).all(|b| wide.link_nanos(1, 0, b) <= 61_000_000));
        assert!((0..1000).any(|b| wide.link_nanos(1, 0, b) == 0));
    }

    #[test]
    fn log_normal_has_its_median_and_a_cap() {
        let model = LatencyModel::LogNormal {
            median: Duration::from_millis(30),
            sigma: 0.5,
        };
        let mut samples: Vec<u64> = (0..10_001).map(|b| model.link_nanos(3, 0, b)).collect();
        samples.sort_unstable();
        let median = samples[samples.len() / 2] as f64;
        assert!((median - 30e6).abs() < 1.5e6, "{median}");
        let huge = LatencyModel::LogNormal {
            median: MAX_LATENCY,
            sigma: 4.0,
        };
        assert!((0..1000).all(|b| huge.link_nanos(1, 0, b) <= duration_nanos(MAX_LATENCY)));
    }

    #[test]
    fn validation_refuses_bad_parameters() {
        let ms = Duration::from_millis;
        assert!(LatencyModel::default().validate().is_ok());
        assert_eq!(
            LatencyModel::Uniform {
                min: ms(5),
                max: ms(1)
            }
            .validate(),
            Err(ConfigError::LatencyRange {
                min: ms(5),
                max: ms(1)
            })
        );
        let too_big = MAX_LATENCY + ms(1);
        assert_eq!(
            LatencyModel::Fixed(too_big).validate(),
            Err(ConfigError::LatencyTooLarge(too_big))
        );
        for sigma in [-0.1, 4.1, f64::NAN, f64::INFINITY] {
            let model = LatencyModel::LogNormal {
                median: ms(1),
                sigma,
            };
            assert!(matches!(
                model.validate(),
                Err(ConfigError::LogNormalSigma(_))
            ));
        }
    }
}
