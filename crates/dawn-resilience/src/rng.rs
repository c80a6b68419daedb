//! A seeded SplitMix64 stream for jitter: small, fully specified and identical on every
//! platform, so a retry schedule depends on nothing but its seed.

/// The golden-ratio increment of SplitMix64.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64 (Steele, Lea, Flood 2014). Not cryptographic: jitter only has to decorrelate
/// callers, and a seed the caller controls makes tests reproducible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) const fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) const fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform integer in `[0, max]` (both ends included).
    ///
    /// Multiply-shift (Lemire 2019) without the rejection step: the bias is below
    /// `max / 2^64`, far under anything a retry schedule could notice.
    pub(crate) fn up_to(&mut self, max: u64) -> u64 {
        let range = u128::from(max) + 1;
        let product = u128::from(self.next_u64()) * range;
        // `product < 2^64 * range <= 2^128`, so the high half is at most `max`.
        u64::try_from(product >> 64).unwrap_or(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_outputs() {
        // The first outputs of SplitMix64 seeded with 0, from the reference C code.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(rng.next_u64(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn up_to_stays_in_range_and_reaches_both_ends() {
        let mut rng = SplitMix64::new(7);
        let (mut low, mut high) = (false, false);
        for _ in 0..10_000 {
            let x = rng.up_to(3);
            assert!(x <= 3);
            low |= x == 0;
            high |= x == 3;
        }
        assert!(low && high);
        assert_eq!(SplitMix64::new(1).up_to(0), 0);
        // The full range takes the high half of the product as is (no panic, no clamp).
        let mut a = SplitMix64::new(1);
        let mut b = SplitMix64::new(1);
        assert_eq!(a.up_to(u64::MAX), b.next_u64());
    }
}
