//! A small seeded random number generator: the core has no randomness of its own, so runs
//! are reproducible from the seed given at construction.

use std::time::Duration;

/// SplitMix64 (Steele, Lea and Flood, 2014): plenty for choosing peers and jittering timers.
/// Not for anything secret.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    pub(crate) const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) const fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `0..n` (0 when `n` is 0), by Lemire's multiply-shift.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        let wide = u128::from(self.next_u64()) * (n as u128);
        usize::try_from(wide >> 64).unwrap_or(0)
    }

    /// `d` scaled by a uniform factor in `[1 - spread, 1 + spread)`, so that the periodic work
    /// of many nodes does not run in lockstep.
    pub(crate) fn jitter(&mut self, d: Duration, spread: f64) -> Duration {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64((1.0 - spread + 2.0 * spread * unit).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_and_jitter_stay_in_range() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            assert!(rng.below(7) < 7);
            let d = rng.jitter(Duration::from_secs(1), 0.25);
            assert!(d >= Duration::from_millis(750) && d < Duration::from_millis(1250));
        }
        assert_eq!(rng.below(0), 0);
    }
}
