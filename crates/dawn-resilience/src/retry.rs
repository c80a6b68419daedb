//! Retries: exponential backoff with full jitter, a per-operation [`Retry`] state, and a
//! shared [`RetryBudget`] that keeps retries from amplifying an outage.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bucket::{BucketParams, BucketState, Rate};
use crate::code::{ErrorCode, HasErrorCode};
use crate::config::{ConfigError, at_most, duration, millis, opt_millis, positive};
use crate::rng::SplitMix64;
use crate::time;

/// Longest backoff cap and `max_elapsed` accepted: one day.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

/// How an operation is retried: exponential backoff with full jitter, and when to stop.
///
/// The wait before retry number `attempt` (0 for the first retry) is drawn uniformly from
/// `[0, min(cap, base × 2^attempt)]`: the "full jitter" of Marc Brooker's *Exponential
/// Backoff And Jitter* (AWS Architecture Blog, 2015), which spreads competing clients out
/// best and finishes the work soonest of the schemes compared there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// The first retry waits up to this long. Default 250 ms (the node's first redial).
    #[serde(rename = "base_ms", with = "millis")]
    pub base: Duration,
    /// No wait is longer than this. Default 30 s (the node's longest redial wait).
    #[serde(rename = "cap_ms", with = "millis")]
    pub cap: Duration,
    /// Attempts in all, the first one included (so `1` means never retry); `None` for no
    /// limit. Default `None`: dials to a peer go on until the peer is dropped.
    pub max_attempts: Option<u32>,
    /// No attempt starts later than this after the first one; `None` for no limit. Default
    /// `None`.
    #[serde(rename = "max_elapsed_ms", with = "opt_millis")]
    pub max_elapsed: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            max_attempts: None,
            max_elapsed: None,
        }
    }
}

impl RetryPolicy {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ConfigError::Zero`] for a zero `base`, `cap`, `max_attempts` or `max_elapsed`;
    /// [`ConfigError::TooLarge`] for `cap` or `max_elapsed` above [`MAX_RETRY_DELAY`];
    /// [`ConfigError::Inconsistent`] if `base > cap`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        duration("retry.base_ms", self.base, MAX_RETRY_DELAY)?;
        duration("retry.cap_ms", self.cap, MAX_RETRY_DELAY)?;
        if self.base > self.cap {
            return Err(ConfigError::Inconsistent(
                "retry.base_ms is above retry.cap_ms",
            ));
        }
        if let Some(n) = self.max_attempts {
            positive("retry.max_attempts", u128::from(n))?;
        }
        if let Some(d) = self.max_elapsed {
            duration("retry.max_elapsed_ms", d, MAX_RETRY_DELAY)?;
        }
        Ok(())
    }

    /// The longest wait before retry number `attempt`: `min(cap, base × 2^attempt)`.
    #[must_use]
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u128.checked_shl(attempt).unwrap_or(u128::MAX);
        let nanos = self.base.as_nanos().saturating_mul(factor);
        time::from_nanos(nanos.min(self.cap.as_nanos()))
    }
}

/// Exponential backoff with full jitter, deterministic from a seed.
///
/// ```
/// use std::time::Duration;
/// use dawn_resilience::{Backoff, RetryPolicy};
///
/// let mut policy = RetryPolicy::default();
/// policy.max_attempts = Some(3);
/// let mut backoff = Backoff::new(policy, 42)?;
/// let first = backoff.next_delay(0).unwrap();
/// assert!(first <= Duration::from_millis(250));
/// assert!(backoff.next_delay(1).unwrap() <= Duration::from_millis(500));
/// assert_eq!(backoff.next_delay(2), None); // three attempts: the first and two retries
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    policy: RetryPolicy,
    rng: SplitMix64,
}

impl Backoff {
    /// Backoff following `policy`, with jitter drawn from a generator seeded with `seed`.
    ///
    /// The same seed and the same calls give the same delays on every platform. Give each
    /// independent caller its own seed (in a node: from the OS random source, or derived from
    /// the peer's id), or their retries fall into step.
    ///
    /// # Errors
    /// As [`RetryPolicy::validate`].
    pub fn new(policy: RetryPolicy, seed: u64) -> Result<Self, ConfigError> {
        policy.validate()?;
        Ok(Self {
            policy,
            rng: SplitMix64::new(seed),
        })
    }

    /// The wait before retry number `attempt` (0 for the first retry, after the first
    /// failure): uniform in `[0, min(cap, base × 2^attempt)]`, or `None` once the policy's
    /// `max_attempts` is used up. Does not look at `max_elapsed`; [`Retry`] does.
    pub fn next_delay(&mut self, attempt: u32) -> Option<Duration> {
        if let Some(max) = self.policy.max_attempts
            && u64::from(attempt) + 1 >= u64::from(max)
        {
            return None;
        }
        let ceiling = self.policy.ceiling(attempt);
        // The ceiling is at most one day, far below u64::MAX nanoseconds.
        let ceiling = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Some(Duration::from_nanos(self.rng.up_to(ceiling)))
    }

    /// The policy.
    #[must_use]
    pub const fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

/// A [`Retry`] gave up, or the [`RetryBudget`] refused a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetryError {
    /// Every attempt the policy allows has failed.
    #[error("gave up after {attempts} attempts")]
    Exhausted {
        /// Attempts made, the first one included.
        attempts: u32,
    },
    /// The policy's `max_elapsed` has passed since the first attempt.
    #[error("gave up after {elapsed:?} of retries")]
    Deadline {
        /// Time since the first attempt.
        elapsed: Duration,
    },
    /// The shared retry budget is spent: too many retries across all operations. The retry
    /// was not counted; a caller that must go on can wait `retry_after` and ask again.
    #[error("retry budget spent; one more retry is allowed in {retry_after:?}")]
    Budget {
        /// How long until the budget allows one retry.
        retry_after: Duration,
    },
}

impl HasErrorCode for RetryError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Exhausted { .. } => ErrorCode::RetryExhausted,
            Self::Deadline { .. } => ErrorCode::RetryDeadline,
            Self::Budget { .. } => ErrorCode::RetryBudget,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Budget { retry_after } => Some(*retry_after),
            Self::Exhausted { .. } | Self::Deadline { .. } => None,
        }
    }
}

/// The retry state of one operation (a dial, a request): counts failures, enforces the
/// policy's limits and hands out the wait before each retry.
///
/// ```
/// use std::time::{Duration, Instant};
/// use dawn_resilience::{Retry, RetryBudget, RetryBudgetConfig, RetryError, RetryPolicy};
///
/// let mut budget = RetryBudget::new(RetryBudgetConfig::default())?;
/// let mut policy = RetryPolicy::default();
/// policy.max_attempts = Some(3);
/// let mut now = Instant::now();
/// budget.deposit(now); // one new operation
/// let mut retry = Retry::new(policy, 7, now)?;
/// // The first attempt failed:
/// let wait = retry.next_delay_within(now, &mut budget)?;
/// now += wait;
/// // The retry failed too:
/// now += retry.next_delay_within(now, &mut budget)?;
/// // And the last one:
/// assert_eq!(
///     retry.next_delay_within(now, &mut budget),
///     Err(RetryError::Exhausted { attempts: 3 })
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    backoff: Backoff,
    started: Instant,
    failures: u32,
}

impl Retry {
    /// The state of an operation whose first attempt starts at `now`.
    ///
    /// # Errors
    /// As [`RetryPolicy::validate`].
    pub fn new(policy: RetryPolicy, seed: u64, now: Instant) -> Result<Self, ConfigError> {
        Ok(Self::from_backoff(Backoff::new(policy, seed)?, now))
    }

    /// The same, from a [`Backoff`] (keeping its generator's position).
    #[must_use]
    pub const fn from_backoff(backoff: Backoff, now: Instant) -> Self {
        Self {
            backoff,
            started: now,
            failures: 0,
        }
    }

    /// The last attempt failed at `now`: how long to wait before the next one.
    ///
    /// If the wait would carry the next attempt past `max_elapsed`, it is shortened so that
    /// the last attempt starts exactly at the deadline.
    ///
    /// # Errors
    /// [`RetryError::Exhausted`] or [`RetryError::Deadline`] when the policy says stop.
    pub fn next_delay(&mut self, now: Instant) -> Result<Duration, RetryError> {
        let delay = self.peek(now)?;
        self.failures = self.failures.saturating_add(1);
        Ok(delay)
    }

    /// As [`Retry::next_delay`], and the retry must also fit the shared `budget`.
    ///
    /// # Errors
    /// As [`Retry::next_delay`], and [`RetryError::Budget`] if the budget is spent; then the
    /// failure is not counted, so a caller that must go on (a bootstrap peer) can wait
    /// `retry_after` and call again.
    pub fn next_delay_within(
        &mut self,
        now: Instant,
        budget: &mut RetryBudget,
    ) -> Result<Duration, RetryError> {
        let delay = self.peek(now)?;
        budget.try_withdraw(now)?;
        self.failures = self.failures.saturating_add(1);
        Ok(delay)
    }

    fn peek(&mut self, now: Instant) -> Result<Duration, RetryError> {
        let elapsed = time::since(self.started, now);
        let max_elapsed = self.backoff.policy.max_elapsed;
        if let Some(max) = max_elapsed
            && elapsed >= max
        {
            return Err(RetryError::Deadline { elapsed });
        }
        let delay = self
            .backoff
            .next_delay(self.failures)
            .ok_or(RetryError::Exhausted {
                attempts: self.failures.saturating_add(1),
            })?;
        Ok(match max_elapsed {
            Some(max) => delay.min(max.saturating_sub(elapsed)),
            None => delay,
        })
    }

    /// Failures so far (retries handed out).
    #[must_use]
    pub const fn failures(&self) -> u32 {
        self.failures
    }

    /// When the first attempt started.
    #[must_use]
    pub const fn started(&self) -> Instant {
        self.started
    }

    /// Starts over for a new operation at `now` (after a success), keeping the generator.
    pub const fn reset(&mut self, now: Instant) {
        self.started = now;
        self.failures = 0;
    }
}

/// Parameters of a [`RetryBudget`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryBudgetConfig {
    /// Retries each new operation earns, in percent: 20 means one retry per five operations.
    /// Default 20, at most 1,000.
    pub retry_percent: u32,
    /// Retries allowed per second however few operations there are, so that a quiet node
    /// still reconnects. Default 10; at least 1.
    pub min_retries_per_sec: u32,
    /// Most retries saved up. The budget starts full. Default 100.
    pub max_tokens: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            retry_percent: 20,
            min_retries_per_sec: 10,
            max_tokens: 100,
        }
    }
}

impl RetryBudgetConfig {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ConfigError::Zero`] for a zero `min_retries_per_sec` or `max_tokens`;
    /// [`ConfigError::TooLarge`] for `retry_percent` above 1,000.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.params().map(|_| ())
    }

    fn params(&self) -> Result<BucketParams, ConfigError> {
        at_most(
            "retry_budget.retry_percent",
            u128::from(self.retry_percent),
            1000,
        )?;
        BucketParams::new(
            Rate::per_second(u64::from(self.min_retries_per_sec)),
            u64::from(self.max_tokens),
            "retry_budget.min_retries_per_sec",
            "retry_budget.max_tokens",
        )
    }
}

/// A budget shared by every retrying operation, so that retries cannot amplify an outage.
///
/// The scheme is Finagle's `RetryBudget` (gRPC's retry throttling is the same idea): each new
/// operation deposits `retry_percent / 100` of a token, each retry withdraws a whole one, and
/// `min_retries_per_sec` tokens trickle in regardless. Over any span `T`, retries are
/// therefore at most `max_tokens + min_retries_per_sec × T + retry_percent% × operations`,
/// however many operations fail. (Finagle's deposits expire after a window; here the
/// `max_tokens` cap bounds how much a past burst can save up instead.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryBudget {
    params: BucketParams,
    state: BucketState,
    deposit: u128,
}

impl RetryBudget {
    /// A full budget.
    ///
    /// # Errors
    /// As [`RetryBudgetConfig::validate`].
    pub fn new(config: RetryBudgetConfig) -> Result<Self, ConfigError> {
        let params = config.params()?;
        // One token is 10^9 units (the rate's period is one second), so a percent of a token
        // is exactly 10^7 units.
        let deposit = params.units(1) / 100 * u128::from(config.retry_percent);
        Ok(Self {
            params,
            state: BucketState::full(&params),
            deposit,
        })
    }

    /// A new operation started at `now`: it earns `retry_percent`% of a retry.
    pub fn deposit(&mut self, now: Instant) {
        self.state.refill(&self.params, now);
        self.state.deposit_units(&self.params, self.deposit);
    }

    /// Spends one retry at `now`.
    ///
    /// # Errors
    /// [`RetryError::Budget`] with how long until one is available, if none is now.
    pub fn try_withdraw(&mut self, now: Instant) -> Result<(), RetryError> {
        self.state
            .try_take(&self.params, now, 1)
            .map_err(|e| RetryError::Budget {
                // One token is within the burst (at least 1), so there is always a wait.
                retry_after: e.retry_after().unwrap_or(Duration::MAX),
            })
    }

    /// Whole retries available at `now`.
    #[must_use]
    pub fn available(&self, now: Instant) -> u64 {
        self.state.available(&self.params, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_policies_are_named() {
        let p = RetryPolicy {
            base: Duration::ZERO,
            ..RetryPolicy::default()
        };
        assert_eq!(p.validate(), Err(ConfigError::Zero("retry.base_ms")));
        let p = RetryPolicy {
            base: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        assert!(matches!(p.validate(), Err(ConfigError::Inconsistent(_))));
        let p = RetryPolicy {
            cap: MAX_RETRY_DELAY + Duration::from_nanos(1),
            ..RetryPolicy::default()
        };
        assert!(matches!(
            p.validate(),
            Err(ConfigError::TooLarge {
                name: "retry.cap_ms",
                ..
            })
        ));
        let p = RetryPolicy {
            max_attempts: Some(0),
            ..RetryPolicy::default()
        };
        assert_eq!(p.validate(), Err(ConfigError::Zero("retry.max_attempts")));
        let p = RetryPolicy {
            max_elapsed: Some(Duration::ZERO),
            ..RetryPolicy::default()
        };
        assert_eq!(p.validate(), Err(ConfigError::Zero("retry.max_elapsed_ms")));
        assert!(Backoff::new(p, 0).is_err());
    }

    #[test]
    fn bad_budgets_are_named() {
        let c = RetryBudgetConfig {
            retry_percent: 1001,
            ..RetryBudgetConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::TooLarge { .. })));
        let c = RetryBudgetConfig {
            min_retries_per_sec: 0,
            ..RetryBudgetConfig::default()
        };
        assert_eq!(
            c.validate(),
            Err(ConfigError::Zero("retry_budget.min_retries_per_sec"))
        );
        let c = RetryBudgetConfig {
            max_tokens: 0,
            ..RetryBudgetConfig::default()
        };
        assert_eq!(
            RetryBudget::new(c).err(),
            Some(ConfigError::Zero("retry_budget.max_tokens"))
        );
    }

    #[test]
    fn ceiling_doubles_then_caps_without_overflow() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(0), Duration::from_millis(250));
        assert_eq!(p.ceiling(1), Duration::from_millis(500));
        assert_eq!(p.ceiling(6), Duration::from_secs(16));
        assert_eq!(p.ceiling(7), Duration::from_secs(30));
        assert_eq!(p.ceiling(127), Duration::from_secs(30));
        assert_eq!(p.ceiling(128), Duration::from_secs(30));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn errors_carry_codes() {
        assert_eq!(
            RetryError::Exhausted { attempts: 3 }.code(),
            ErrorCode::RetryExhausted
        );
        assert_eq!(
            RetryError::Deadline {
                elapsed: Duration::ZERO
            }
            .code(),
            ErrorCode::RetryDeadline
        );
        let budget = RetryError::Budget {
            retry_after: Duration::from_millis(100),
        };
        assert_eq!(budget.code(), ErrorCode::RetryBudget);
        assert_eq!(budget.retry_after(), Some(Duration::from_millis(100)));
    }
}
