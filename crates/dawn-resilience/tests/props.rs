//! Property tests: invariants that must hold for any parameters and any sequence of calls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use dawn_resilience::{
    Backoff, Breaker, BreakerConfig, BreakerState, ErrorCode, Health, HealthConfig, Importance,
    Rate, RateLimitConfig, RateLimiter, RetryPolicy, Status, TakeError, TokenBucket,
};
use proptest::prelude::*;

/// One step of a token bucket scenario: wait, then take.
#[derive(Debug, Clone)]
struct Step {
    wait_ns: u64,
    take: u64,
}

fn steps(burst: u64) -> impl Strategy<Value = Vec<Step>> {
    let wait = prop_oneof![
        Just(0u64),
        0u64..1_000,
        0u64..10_000_000_000,
        Just(u64::MAX / 4),
    ];
    let take = prop_oneof![1u64..=burst, Just(burst), Just(burst.saturating_add(1))];
    prop::collection::vec(
        (wait, take).prop_map(|(wait_ns, take)| Step { wait_ns, take }),
        1..64,
    )
}

fn bucket_case() -> impl Strategy<Value = (u64, u64, u64, Vec<Step>)> {
    (
        prop_oneof![1u64..1_000, Just(u64::MAX)],
        prop_oneof![1u64..1_000_000_000, Just(1_000_000_000), Just(u64::MAX)],
        prop_oneof![1u64..100, Just(u64::MAX)],
    )
        .prop_flat_map(|(tokens, period_ns, burst)| {
            (Just(tokens), Just(period_ns), Just(burst), steps(burst))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The level stays within `[0, burst]`, a take succeeds exactly when the tokens are
    /// there, and over the whole run no more is taken than `burst + rate × elapsed`.
    #[test]
    fn bucket_never_exceeds_burst_nor_goes_negative((tokens, period_ns, burst, steps) in bucket_case()) {
        let rate = Rate::new(tokens, Duration::from_nanos(period_ns));
        let mut bucket = TokenBucket::new(rate, burst).unwrap();
        let t0 = Instant::now();
        // Time since t0 in nanoseconds, at most 584 years so that `Instant` can hold it.
        let mut elapsed: u64 = 0;
        let mut taken: u128 = 0;
        for step in steps {
            elapsed = elapsed.saturating_add(step.wait_ns);
            let now = t0 + Duration::from_nanos(elapsed);
            let before = bucket.available(now);
            prop_assert!(before <= burst);
            match bucket.try_take(now, step.take) {
                Ok(()) => {
                    prop_assert!(before >= step.take);
                    taken += u128::from(step.take);
                    prop_assert_eq!(bucket.available(now), before - step.take);
                }
                Err(TakeError::Empty { retry_after }) => {
                    prop_assert!(step.take <= burst);
                    prop_assert!(before < step.take);
                    prop_assert_eq!(bucket.available(now), before);
                    prop_assert!(retry_after > Duration::ZERO);
                    // Waiting exactly retry_after is enough (when representable).
                    if let Some(then) = now.checked_add(retry_after) {
                        prop_assert!(bucket.clone().try_take(then, step.take).is_ok());
                    }
                }
                Err(TakeError::ExceedsBurst { requested, burst: b }) => {
                    prop_assert!(requested > b);
                    prop_assert_eq!(b, burst);
                }
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
            prop_assert!(bucket.available(now) <= burst);
            // Conservation, in units of 1 / period_ns token.
            let supply = (u128::from(burst) * u128::from(period_ns))
                .saturating_add(u128::from(elapsed).saturating_mul(u128::from(tokens)));
            prop_assert!(taken.saturating_mul(u128::from(period_ns)) <= supply);
        }
    }

    /// Every jittered delay lies in `[0, min(cap, base × 2^attempt)]`, and the schedule is a
    /// function of the seed.
    #[test]
    fn backoff_stays_under_its_ceiling(
        base_ms in 1u64..10_000,
        extra_ms in 0u64..100_000,
        seed in any::<u64>(),
        attempts in prop::collection::vec(any::<u32>(), 1..32),
    ) {
        let policy = RetryPolicy {
            base: Duration::from_millis(base_ms),
            cap: Duration::from_millis(base_ms + extra_ms),
            max_attempts: None,
            max_elapsed: None,
        };
        let mut a = Backoff::new(policy.clone(), seed).unwrap();
        let mut b = Backoff::new(policy.clone(), seed).unwrap();
        for attempt in attempts {
            let d = a.next_delay(attempt).unwrap();
            prop_assert!(d <= policy.ceiling(attempt));
            prop_assert!(policy.ceiling(attempt) <= policy.cap);
            prop_assert_eq!(Some(d), b.next_delay(attempt));
        }
    }

    /// Parsing any string either fails or gives the code whose string it is.
    #[test]
    fn error_code_parsing_is_exact(text in "\\PC{0,40}") {
        if let Ok(code) = text.parse::<ErrorCode>() {
            prop_assert_eq!(code.as_str(), text.as_str());
        }
    }

    /// The limiter never tracks more than `max_keys`, and admits a call only if both of the
    /// key's buckets had room.
    #[test]
    fn limiter_is_bounded_and_consistent(
        max_keys in 1usize..32,
        calls in prop::collection::vec((0u16..64, 0u64..3_000, 0u64..50_000_000), 1..200),
    ) {
        let config = RateLimitConfig {
            messages_per_sec: 20,
            message_burst: 5,
            bytes_per_sec: 10_000,
            byte_burst: 2_000,
            max_keys,
        };
        let mut limiter = RateLimiter::new(config).unwrap();
        let mut now = Instant::now();
        for (key, bytes, wait_ns) in calls {
            now += Duration::from_nanos(wait_ns);
            let (messages, room) = limiter.available(now, &key);
            let result = limiter.check(now, key, bytes);
            prop_assert!(limiter.len() <= max_keys);
            match result {
                Ok(()) => prop_assert!(messages >= 1 && room >= bytes),
                Err(_) => prop_assert!(messages < 1 || room < bytes),
            }
        }
    }
}

/// One call on a breaker.
#[derive(Debug, Clone)]
enum Op {
    Wait(u64),
    Allow,
    Success,
    Failure,
    Timeout,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..20_000).prop_map(Op::Wait),
        Just(Op::Allow),
        Just(Op::Allow),
        Just(Op::Success),
        Just(Op::Failure),
        Just(Op::Timeout),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// However calls, outcomes and time interleave: an open breaker allows nothing, a
    /// half-open one hands out at most `half_open_trials` trials per half-open period, only
    /// a half-open breaker hands out trials, and every state change is reported, in order.
    #[test]
    fn breaker_never_allows_more_than_the_trial_limit(
        trials in 1u32..5,
        consecutive in 1u32..5,
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let config = BreakerConfig {
            consecutive_failures: consecutive,
            failure_percent: 50,
            min_calls: 4,
            window: Duration::from_secs(10),
            open: Duration::from_secs(5),
            max_open: Duration::from_secs(60),
            half_open_trials: trials,
            trial_timeout: Duration::from_secs(3),
            max_keys: 1,
        };
        let mut breaker = Breaker::new(config).unwrap();
        let mut now = Instant::now();
        let mut reported = BreakerState::Closed;
        let mut trials_this_period = 0u32;
        for op in ops {
            let before = breaker.state(now);
            let mut trial = false;
            match op {
                Op::Wait(ms) => now += Duration::from_millis(ms),
                Op::Allow => match breaker.allow(now) {
                    Ok(permit) => {
                        prop_assert_ne!(before, BreakerState::Open);
                        prop_assert_eq!(permit.is_trial(), before == BreakerState::HalfOpen);
                        trial = permit.is_trial();
                    }
                    Err(open) => {
                        prop_assert_ne!(before, BreakerState::Closed);
                        prop_assert!(open.retry_after > Duration::ZERO);
                    }
                },
                Op::Success => breaker.record_success(now),
                Op::Failure => breaker.record_failure(now),
                Op::Timeout => breaker.handle_timeout(now),
            }
            // Replay the reported changes; they must chain from the last known state. A
            // change into half-open starts a new trial period (before the permit that this
            // very call may have handed out in it).
            while let Some(change) = breaker.poll_event() {
                prop_assert_eq!(change.from, reported);
                prop_assert_ne!(change.from, change.to);
                reported = change.to;
                if change.to == BreakerState::HalfOpen {
                    trials_this_period = 0;
                }
            }
            if trial {
                prop_assert_eq!(reported, BreakerState::HalfOpen);
                trials_this_period += 1;
                prop_assert!(trials_this_period <= trials, "{} trials, limit {}", trials_this_period, trials);
            }
            // What `state` says and what was reported differ only by a transition that is due.
            prop_assert!(
                breaker.state(now) == reported || breaker.poll_timeout().is_some_and(|t| t <= now)
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The overall status is the worst required status, with optional ones capped at
    /// degraded; ready means no required component is unhealthy.
    #[test]
    fn health_is_the_capped_worst(
        components in prop::collection::vec(
            (any::<bool>(), prop::option::of(0u8..3), 0u64..60),
            0..10,
        ),
    ) {
        let mut health = Health::new(HealthConfig::default()).unwrap();
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(60);
        let mut expected = Status::Healthy;
        let mut ready = true;
        for (i, (required, status, age)) in components.into_iter().enumerate() {
            let name = format!("c{i}");
            let importance = if required { Importance::Required } else { Importance::Optional };
            health.register(&name, importance).unwrap();
            let effective = match status {
                Some(s) => {
                    let s = [Status::Healthy, Status::Degraded, Status::Unhealthy][usize::from(s)];
                    health.report(now - Duration::from_secs(age), &name, s, "").unwrap();
                    // Older than the 30 s TTL: stale, so unhealthy.
                    if age > 30 { Status::Unhealthy } else { s }
                }
                None => Status::Unhealthy,
            };
            if required {
                expected = expected.max(effective);
                ready &= effective != Status::Unhealthy;
            } else {
                expected = expected.max(effective.min(Status::Degraded));
            }
        }
        prop_assert_eq!(health.status(now), expected);
        prop_assert_eq!(health.is_ready(now), ready);
        prop_assert_eq!(health.snapshot(now).status, expected);
    }
}
