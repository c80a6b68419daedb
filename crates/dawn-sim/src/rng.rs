//! Seeded pseudo-random numbers: SplitMix64 to seed and hash, xoshiro256++ for streams.
//!
//! Both are small, fast and fully specified, so a run depends on nothing but its seed: no
//! operating-system randomness, no library whose output could change between versions.

use std::time::Duration;

/// The golden-ratio increment of SplitMix64.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Domain separation for [`derive_seed`].
const DERIVE_DOMAIN: u64 = 0x6461_776e_2d73_6565; // "dawn-see"

/// The SplitMix64 output function: a bijective 64-bit mixer.
pub(crate) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Folds `value` into a running 64-bit digest; the order of values matters.
pub(crate) const fn fold(digest: u64, value: u64) -> u64 {
    mix64(digest.rotate_left(23) ^ value.wrapping_add(GOLDEN))
}

/// A SplitMix64 stream: the `n`th output for the state `state`.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) const fn new(state: u64) -> Self {
        Self(state)
    }

    pub(crate) const fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }
}

/// The top 53 bits of `x` as a float in `[0, 1)`; exact, so identical on every platform.
fn to_unit(x: u64) -> f64 {
    (x >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Derives an independent 64-bit seed from a parent seed and an index.
///
/// Use it to give every simulated node its own protocol seed from the simulation's seed:
/// `derive_seed(sim.seed(), i)`. Different `(seed, index)` pairs give unrelated seeds.
#[must_use]
pub const fn derive_seed(seed: u64, index: u64) -> u64 {
    mix64(mix64(seed ^ DERIVE_DOMAIN).wrapping_add(mix64(index.wrapping_add(GOLDEN))))
}

/// A small, fast, seeded pseudo-random number generator (xoshiro256++).
///
/// Not cryptographic: it exists so that a simulation and its scenario are reproducible from one
/// `u64`. Two generators built from the same seed produce the same sequence on every platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRng {
    state: [u64; 4],
}

impl SimRng {
    /// A generator seeded from `seed` (expanded with SplitMix64, as xoshiro's authors advise).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut seeder = SplitMix::new(seed);
        // SplitMix64 is a bijection over consecutive states, so at most one of the four words
        // can be zero and the all-zero state (xoshiro's only fixed point) cannot occur.
        let state = [
            seeder.next_u64(),
            seeder.next_u64(),
            seeder.next_u64(),
            seeder.next_u64(),
        ];
        Self { state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = self.state;
        let result = s0.wrapping_add(s3).rotate_left(23).wrapping_add(s0);
        let t = s1 << 17;
        let mut s = [s0, s1, s2 ^ s0, s3 ^ s1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        self.state = s;
        result
    }

    /// A uniform integer in `[0, bound)`; 0 when `bound` is 0.
    ///
    /// Uses the multiply-high method without rejection: the bias is at most `bound / 2^64`,
    /// far below anything a simulation can observe, and every call draws exactly one word,
    /// which keeps streams aligned across runs.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A uniform index in `[0, len)`; 0 when `len` is 0.
    pub fn index(&mut self, len: usize) -> usize {
        // usize fits in u64 on every supported target and the result is below `len`.
        self.below(len as u64) as usize
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        to_unit(self.next_u64())
    }

    /// `true` with probability `p` (clamped to `[0, 1]`; NaN counts as 0).
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A uniform duration in `[low, high]` at nanosecond resolution; `low` if `high <= low`.
    pub fn duration_between(&mut self, low: Duration, high: Duration) -> Duration {
        let low_ns = duration_nanos(low);
        let high_ns = duration_nanos(high);
        let span = high_ns.saturating_sub(low_ns);
        let offset = if span == u64::MAX {
            self.next_u64()
        } else {
            self.below(span + 1)
        };
        Duration::from_nanos(low_ns + offset)
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let mut a = SimRng::new(7);
        let mut b = SimRng::new(7);
        let mut c = SimRng::new(8);
        let xs: Vec<u64> = (0..64).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..64).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..64).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn xoshiro_matches_reference_vector() {
        // Reference xoshiro256++ from state [1, 2, 3, 4] (the authors' C code).
        let mut rng = SimRng {
            state: [1, 2, 3, 4],
        };
        let expected = [
            41_943_041,
            58_720_359,
            3_588_806_011_781_223,
            3_591_011_842_654_386,
        ];
        for want in expected {
            assert_eq!(rng.next_u64(), want);
        }
    }

    #[test]
    fn splitmix_matches_reference_vector() {
        // SplitMix64 seeded with 1234567 (Vigna's reference outputs).
        let mut sm = SplitMix::new(1_234_567);
        assert_eq!(sm.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(sm.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn below_and_chance_stay_in_range() {
        let mut rng = SimRng::new(1);
        assert_eq!(rng.below(0), 0);
        for bound in [1u64, 2, 3, 10, 1_000_003] {
            for _ in 0..1000 {
                assert!(rng.below(bound) < bound);
            }
        }
        assert!((0..1000).all(|_| !rng.chance(0.0)));
        assert!((0..1000).all(|_| rng.chance(1.0)));
        assert!((0..1000).all(|_| !rng.chance(f64::NAN)));
        let hits = (0..100_000).filter(|_| rng.chance(0.25)).count();
        assert!((24_000..26_000).contains(&hits), "{hits}");
    }

    #[test]
    fn duration_between_is_inclusive_and_ordered() {
        let mut rng = SimRng::new(3);
        let lo = Duration::from_millis(10);
        let hi = Duration::from_millis(11);
        for _ in 0..1000 {
            let d = rng.duration_between(lo, hi);
            assert!(d >= lo && d <= hi);
        }
        assert_eq!(rng.duration_between(hi, lo), hi);
        assert_eq!(rng.duration_between(lo, lo), lo);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut rng = SimRng::new(9);
        let mut items: Vec<u32> = (0..100).collect();
        rng.shuffle(&mut items);
        assert_ne!(items, (0..100).collect::<Vec<_>>());
        items.sort_unstable();
        assert_eq!(items, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn derived_seeds_differ() {
        let seeds: std::collections::BTreeSet<u64> =
            (0..1000).map(|i| derive_seed(42, i)).collect();
        assert_eq!(seeds.len(), 1000);
        assert_ne!(derive_seed(1, 0), derive_seed(2, 0));
    }
}
