//! Dawn's resilience toolkit, a sans-IO protocol core (layer 3): what a node needs to fail
//! well.
//!
//! - **Error codes** ([`ErrorCode`], [`Family`], [`HasErrorCode`], [`ErrorBody`]): one stable
//!   vocabulary (`network.unreachable`, `rate_limit.exceeded`, `breaker.open`, ...) with a
//!   number, a family, whether to retry and the HTTP status, which every crate's typed errors
//!   map to for API responses, logs and metrics.
//! - **Retries** ([`RetryPolicy`], [`Backoff`], [`Retry`], [`RetryBudget`]): exponential
//!   backoff with full jitter, deterministic from a seed, limited by attempts and elapsed
//!   time, and a shared budget so that retries cannot amplify an outage.
//! - **Rate limits** ([`TokenBucket`], [`RateLimiter`]): exact integer token buckets, and a
//!   per-peer limiter of messages and bytes per second with a hard cap on tracked peers.
//! - **Circuit breakers** ([`Breaker`], [`Breakers`]): closed, open with a growing cool-down,
//!   half-open with a limited number of trial calls, with state-change events.
//! - **Health** ([`Health`], [`HealthReport`]): components report healthy, degraded or
//!   unhealthy; stale reports count against them; the result is shaped for `/healthz` and
//!   `/readyz`.
//!
//! Nothing here reads a clock, sleeps, spawns or touches a socket: every call takes `now`,
//! and randomness comes from a seed. A node drives it from its tasks; tests drive it with a
//! fake clock (an `Instant` plus offsets) and get the same answer every time.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use dawn_resilience::{
//!     Breakers, ErrorBody, ErrorCode, HasErrorCode, RateLimiter, ResilienceConfig, Retry,
//!     RetryBudget,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ResilienceConfig::default();
//! let mut limiter = RateLimiter::new(config.rate_limit.clone())?;
//! let mut breakers = Breakers::new(config.breaker.clone())?;
//! let mut budget = RetryBudget::new(config.retry_budget.clone())?;
//! let now = Instant::now();
//!
//! // An inbound frame of 1,200 bytes from a peer:
//! if let Err(limited) = limiter.check(now, "peer-a", 1_200) {
//!     let body = ErrorBody::from_error(&limited);
//!     assert_eq!(body.code, ErrorCode::RateLimitExceeded);
//! }
//!
//! // Dialling a peer, with the breaker and a retry schedule:
//! budget.deposit(now);
//! let mut retry = Retry::new(config.retry.clone(), 42, now)?;
//! match breakers.allow(now, &"peer-b") {
//!     Ok(_permit) => {
//!         // ... the dial failed:
//!         breakers.record_failure(now, &"peer-b");
//!         let wait = retry.next_delay_within(now, &mut budget)?;
//!         assert!(wait <= Duration::from_millis(250));
//!     }
//!     Err(open) => assert_eq!(open.code(), ErrorCode::BreakerOpen),
//! }
//! # Ok(()) }
//! ```
//!
//! # Status
//!
//! The string forms, numbers, families, retryability and HTTP statuses of [`ErrorCode`] are
//! API, pinned by `tests/codes.rs`; codes are only ever added.

mod breaker;
mod bucket;
mod code;
mod config;
mod evict;
mod health;
mod limiter;
mod retry;
mod rng;
mod time;

pub use crate::breaker::{
    Breaker, BreakerConfig, BreakerEvent, BreakerOpen, BreakerState, Breakers, Cause,
    MAX_BREAKER_EVENTS, Permit, StateChange,
};
pub use crate::bucket::{Rate, TakeError, TokenBucket};
pub use crate::code::{
    ErrorBody, ErrorCode, Family, HasErrorCode, MAX_MESSAGE_LEN, UnknownErrorCode,
};
pub use crate::config::{ConfigError, ResilienceConfig};
pub use crate::health::{
    ComponentReport, Health, HealthConfig, HealthError, HealthReport, Importance, MAX_COMPONENTS,
    MAX_NAME_LEN, MAX_REASON_LEN, Status,
};
pub use crate::limiter::{
    CallLimitConfig, Limit, MAX_TRACKED_KEYS, RateLimitConfig, RateLimited, RateLimiter,
};
pub use crate::retry::{
    Backoff, MAX_RETRY_DELAY, Retry, RetryBudget, RetryBudgetConfig, RetryError, RetryPolicy,
};
