//! A small seeded random number generator: the core has no randomness of its own, so runs
//! are reproducible from the seed given at construction.

use std::time::Duration;

/// SplitMix64 (Steele, Lea and Flood, 2014): one `u64` of state, passes BigCrush, and is
/// plenty for choosing peers and jittering timers. Not for anything secret.
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

    /// A uniform number in `0..n` (0 when `n` is 0), by Lemire's multiply-shift; the bias
    /// is below 2^-32 for every `n` this crate uses.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        let wide = u128::from(self.next_u64()) * u128::from(n);
        usize::try_from(wide >> 64).unwrap_or(0)
    }

    /// A uniform float in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        // 53 random bits, the precision of an f64.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `d` scaled by a uniform factor in `[1 - spread, 1 + spread)`: keeps periodic work of
    /// many nodes from running in lockstep.
    pub(crate) fn jitter(&mut self, d: Duration, spread: f64) -> Duration {
        let factor = 1.0 - spread + 2.0 * spread * self.unit();
        d.mul_f64(factor.max(0.0))
    }

    /// A uniformly chosen element.
    pub(crate) fn choose<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        items.get(self.below(items.len())).copied()
    }

    /// Up to `k` distinct elements, uniformly chosen, in random order.
    pub(crate) fn sample<T: Copy>(&mut self, items: &[T], k: usize) -> Vec<T> {
        let mut all = items.to_vec();
        // A partial Fisher-Yates: only the first k positions are settled.
        let k = k.min(all.len());
        for i in 0..k {
            let j = i + self.below(all.len() - i);
            all.swap(i, j);
        }
        all.truncate(k);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut c = Rng::new(8);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(1);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let x = rng.below(7);
            assert!(x < 7);
            seen[x] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn sample_is_distinct_and_bounded() {
        let mut rng = Rng::new(2);
        let items: Vec<u32> = (0..10).collect();
        for k in 0..12 {
            let mut s = rng.sample(&items, k);
            assert_eq!(s.len(), k.min(10));
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), k.min(10));
        }
    }

    #[test]
    fn jitter_stays_within_spread() {
        let mut rng = Rng::new(3);
        let base = Duration::from_secs(10);
        for _ in 0..100 {
            let d = rng.jitter(base, 0.25);
            assert!(d >= Duration::from_millis(7500) && d < Duration::from_millis(12_500));
        }
    }
}
