//! `TokenBucket`: a lazily refilled token bucket in exact integer arithmetic.

use std::time::{Duration, Instant};

use crate::code::{ErrorCode, HasErrorCode};
use crate::config::{ConfigError, positive};
use crate::time;

/// A refill rate: `tokens` every `per`.
///
/// `Rate::per_second(100)` is 100 tokens a second; `Rate::new(1, Duration::from_secs(5))` is
/// one token every five seconds. Validated when a bucket is built from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    tokens: u64,
    per: Duration,
}

impl Rate {
    /// `tokens` every `per`.
    #[must_use]
    pub const fn new(tokens: u64, per: Duration) -> Self {
        Self { tokens, per }
    }

    /// `tokens` every second.
    #[must_use]
    pub const fn per_second(tokens: u64) -> Self {
        Self::new(tokens, Duration::from_secs(1))
    }

    /// The tokens added every [`Rate::period`].
    #[must_use]
    pub const fn tokens(&self) -> u64 {
        self.tokens
    }

    /// The period over which [`Rate::tokens`] are added.
    #[must_use]
    pub const fn period(&self) -> Duration {
        self.per
    }
}

/// A [`TokenBucket::try_take`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TakeError {
    /// Not enough tokens now; exactly `retry_after` from the call there will be.
    #[error("not enough tokens; retry in {retry_after:?}")]
    Empty {
        /// How long until the request would succeed, if nothing else takes tokens first.
        retry_after: Duration,
    },
    /// More tokens were asked for than the bucket ever holds, so waiting cannot help.
    #[error("asked for {requested} tokens, more than the burst of {burst}")]
    ExceedsBurst {
        /// Tokens asked for.
        requested: u64,
        /// The bucket's capacity.
        burst: u64,
    },
}

impl TakeError {
    /// How long to wait, or `None` if waiting cannot help.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Empty { retry_after } => Some(*retry_after),
            Self::ExceedsBurst { .. } => None,
        }
    }
}

impl HasErrorCode for TakeError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Empty { .. } => ErrorCode::RateLimitExceeded,
            Self::ExceedsBurst { .. } => ErrorCode::RateLimitTooLarge,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        Self::retry_after(self)
    }
}

/// The parameters of a bucket, shared by every bucket of a [`RateLimiter`](crate::RateLimiter).
///
/// Tokens are counted in *units*: one token is `period_ns` units and every nanosecond adds
/// `tokens` units, so any rational rate refills exactly with integers and never drifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BucketParams {
    /// Units added per nanosecond (the rate's token count).
    per_ns: u64,
    /// Units per token (the rate's period in nanoseconds).
    unit: u64,
    /// Burst in tokens.
    burst: u64,
    /// Burst in units, `burst * unit` (at most `(2^64 - 1)^2`, which fits a `u128`).
    capacity: u128,
}

impl BucketParams {
    pub(crate) fn new(
        rate: Rate,
        burst: u64,
        rate_name: &'static str,
        burst_name: &'static str,
    ) -> Result<Self, ConfigError> {
        positive(rate_name, u128::from(rate.tokens))?;
        let period = rate.per.as_nanos();
        positive(rate_name, period)?;
        let unit = u64::try_from(period).map_err(|_| ConfigError::TooLarge {
            name: rate_name,
            value: rate.per.as_millis(),
            max: u128::from(u64::MAX) / 1_000_000,
        })?;
        positive(burst_name, u128::from(burst))?;
        Ok(Self {
            per_ns: rate.tokens,
            unit,
            burst,
            capacity: u128::from(burst) * u128::from(unit),
        })
    }

    pub(crate) const fn burst(&self) -> u64 {
        self.burst
    }

    pub(crate) const fn rate(&self) -> Rate {
        Rate::new(self.per_ns, Duration::from_nanos(self.unit))
    }

    /// Units for `tokens` tokens (cannot overflow: both factors are below 2^64).
    pub(crate) fn units(&self, tokens: u64) -> u128 {
        u128::from(tokens) * u128::from(self.unit)
    }
}

/// The state of one bucket: its level and when it was last refilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BucketState {
    /// Level in units, `0..=capacity`.
    level: u128,
    /// The instant `level` is correct at; `None` until first used (a new bucket is full).
    last: Option<Instant>,
}

impl BucketState {
    /// A full bucket.
    pub(crate) const fn full(params: &BucketParams) -> Self {
        Self {
            level: params.capacity,
            last: None,
        }
    }

    /// The level at `now`, in units, without changing anything.
    fn level_at(&self, params: &BucketParams, now: Instant) -> u128 {
        let Some(last) = self.last else {
            return self.level;
        };
        let elapsed = time::since(last, now).as_nanos();
        let added = elapsed.saturating_mul(u128::from(params.per_ns));
        self.level.saturating_add(added).min(params.capacity)
    }

    /// Brings the level up to `now`. Instants earlier than the last one add nothing and do
    /// not move the bucket back in time.
    pub(crate) fn refill(&mut self, params: &BucketParams, now: Instant) {
        self.level = self.level_at(params, now);
        self.last = Some(match self.last {
            Some(last) if last > now => last,
            _ => now,
        });
    }

    /// The instant of the last refill, if any (for least-recently-used eviction).
    pub(crate) const fn last(&self) -> Option<Instant> {
        self.last
    }

    /// Whether the bucket is full at `now`: then it is indistinguishable from a new one.
    pub(crate) fn is_full(&self, params: &BucketParams, now: Instant) -> bool {
        self.level_at(params, now) >= params.capacity
    }

    /// Whole tokens available at `now`.
    pub(crate) fn available(&self, params: &BucketParams, now: Instant) -> u64 {
        let tokens = self.level_at(params, now) / u128::from(params.unit);
        u64::try_from(tokens).unwrap_or(u64::MAX)
    }

    /// Checks, after [`BucketState::refill`], whether `n` tokens are there, without taking
    /// them.
    pub(crate) fn check(&self, params: &BucketParams, n: u64) -> Result<u128, TakeError> {
        if n > params.burst {
            return Err(TakeError::ExceedsBurst {
                requested: n,
                burst: params.burst,
            });
        }
        self.wait(params, n)
            .map_err(|retry_after| TakeError::Empty { retry_after })
    }

    /// After [`BucketState::refill`]: the units for `n` tokens if they are there, or how long
    /// until they are (`Duration::MAX` if `n` exceeds the burst).
    pub(crate) fn wait(&self, params: &BucketParams, n: u64) -> Result<u128, Duration> {
        if n > params.burst {
            return Err(Duration::MAX);
        }
        let need = params.units(n);
        if self.level >= need {
            return Ok(need);
        }
        // Refill adds `per_ns` units per nanosecond: round up so that waiting exactly the
        // returned time is enough.
        let deficit = need - self.level;
        Err(time::from_nanos(
            deficit.div_ceil(u128::from(params.per_ns)),
        ))
    }

    /// Removes `units` that [`BucketState::check`] approved.
    pub(crate) fn take_units(&mut self, units: u128) {
        self.level = self.level.saturating_sub(units);
    }

    /// Adds `units`, up to the capacity (a retry budget's deposits).
    pub(crate) fn deposit_units(&mut self, params: &BucketParams, units: u128) {
        self.level = self.level.saturating_add(units).min(params.capacity);
    }

    /// Refills to `now`, then takes `n` tokens or says why not.
    pub(crate) fn try_take(
        &mut self,
        params: &BucketParams,
        now: Instant,
        n: u64,
    ) -> Result<(), TakeError> {
        self.refill(params, now);
        let units = self.check(params, n)?;
        self.take_units(units);
        Ok(())
    }
}

/// A token bucket: at most `burst` at once, refilled continuously at `rate`.
///
/// The bucket starts full and is refilled lazily from the `now` passed to each call, so it
/// needs no timer. Arithmetic is exact (integers in units of `1 / period_ns` token), so over
/// any span of simulated time exactly `burst + rate × span` tokens can be taken, and every
/// quantity saturates: a `now` centuries after the last call simply fills the bucket.
///
/// ```
/// use std::time::{Duration, Instant};
/// use dawn_resilience::{Rate, TakeError, TokenBucket};
///
/// let mut bucket = TokenBucket::new(Rate::per_second(10), 5)?;
/// let t0 = Instant::now();
/// for _ in 0..5 {
///     bucket.try_take(t0, 1)?; // the burst
/// }
/// assert_eq!(
///     bucket.try_take(t0, 1),
///     Err(TakeError::Empty { retry_after: Duration::from_millis(100) })
/// );
/// bucket.try_take(t0 + Duration::from_millis(100), 1)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    params: BucketParams,
    state: BucketState,
}

impl TokenBucket {
    /// A full bucket holding at most `burst` tokens, refilled at `rate`.
    ///
    /// # Errors
    /// [`ConfigError::Zero`] if the rate's tokens or period or the burst is zero;
    /// [`ConfigError::TooLarge`] if the period exceeds `u64::MAX` nanoseconds (584 years).
    pub fn new(rate: Rate, burst: u64) -> Result<Self, ConfigError> {
        let params = BucketParams::new(rate, burst, "rate", "burst")?;
        Ok(Self {
            params,
            state: BucketState::full(&params),
        })
    }

    /// Takes `n` tokens at `now`.
    ///
    /// # Errors
    /// [`TakeError::Empty`] with the exact wait if there are not enough tokens (nothing is
    /// taken); [`TakeError::ExceedsBurst`] if `n > burst`.
    pub fn try_take(&mut self, now: Instant, n: u64) -> Result<(), TakeError> {
        self.state.try_take(&self.params, now, n)
    }

    /// Whole tokens available at `now`.
    #[must_use]
    pub fn available(&self, now: Instant) -> u64 {
        self.state.available(&self.params, now)
    }

    /// Whether the bucket is full at `now`.
    #[must_use]
    pub fn is_full(&self, now: Instant) -> bool {
        self.state.is_full(&self.params, now)
    }

    /// The refill rate.
    #[must_use]
    pub const fn rate(&self) -> Rate {
        self.params.rate()
    }

    /// The capacity in tokens.
    #[must_use]
    pub const fn burst(&self) -> u64 {
        self.params.burst()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(
            TokenBucket::new(Rate::per_second(0), 1),
            Err(ConfigError::Zero("rate"))
        );
        assert_eq!(
            TokenBucket::new(Rate::new(1, Duration::ZERO), 1),
            Err(ConfigError::Zero("rate"))
        );
        assert_eq!(
            TokenBucket::new(Rate::per_second(1), 0),
            Err(ConfigError::Zero("burst"))
        );
        assert!(matches!(
            TokenBucket::new(Rate::new(1, Duration::MAX), 1),
            Err(ConfigError::TooLarge { name: "rate", .. })
        ));
    }

    #[test]
    fn fractional_rates_are_exact() {
        // One token every 3 seconds, i.e. 1/3 token per second.
        let mut bucket = TokenBucket::new(Rate::new(1, Duration::from_secs(3)), 1).unwrap();
        let t0 = Instant::now();
        bucket.try_take(t0, 1).unwrap();
        assert_eq!(
            bucket.try_take(t0, 1),
            Err(TakeError::Empty {
                retry_after: Duration::from_secs(3)
            })
        );
        assert!(
            bucket
                .try_take(t0 + Duration::from_nanos(2_999_999_999), 1)
                .is_err()
        );
        bucket.try_take(t0 + Duration::from_secs(3), 1).unwrap();
        assert_eq!(bucket.rate(), Rate::new(1, Duration::from_secs(3)));
        assert_eq!(bucket.burst(), 1);
    }

    #[test]
    fn errors_carry_codes() {
        let empty = TakeError::Empty {
            retry_after: Duration::from_millis(5),
        };
        assert_eq!(empty.code(), ErrorCode::RateLimitExceeded);
        assert_eq!(
            HasErrorCode::retry_after(&empty),
            Some(Duration::from_millis(5))
        );
        let large = TakeError::ExceedsBurst {
            requested: 2,
            burst: 1,
        };
        assert_eq!(large.code(), ErrorCode::RateLimitTooLarge);
        assert_eq!(large.retry_after(), None);
    }
}
