//! What the node relies on when it wires the crate in: every state type can be shared
//! between tasks behind a lock, and every error carries a code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dawn_resilience::{
    Backoff, Breaker, BreakerEvent, BreakerOpen, Breakers, ConfigError, ErrorBody, HasErrorCode,
    Health, HealthError, HealthReport, RateLimited, RateLimiter, ResilienceConfig, Retry,
    RetryBudget, RetryError, TakeError, TokenBucket,
};

fn shareable<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}

fn coded<E: HasErrorCode + std::error::Error + Send + Sync + 'static>() {}

#[test]
fn state_types_are_send_sync_clone_and_debug() {
    shareable::<Backoff>();
    shareable::<Retry>();
    shareable::<RetryBudget>();
    shareable::<TokenBucket>();
    shareable::<RateLimiter<[u8; 32]>>();
    shareable::<Breaker>();
    shareable::<Breakers<[u8; 32]>>();
    shareable::<BreakerEvent<[u8; 32]>>();
    shareable::<Health>();
    shareable::<HealthReport>();
    shareable::<ResilienceConfig>();
    shareable::<ErrorBody>();
}

#[test]
fn every_error_has_a_code() {
    coded::<ConfigError>();
    coded::<TakeError>();
    coded::<RateLimited>();
    coded::<BreakerOpen>();
    coded::<RetryError>();
    coded::<HealthError>();
}
