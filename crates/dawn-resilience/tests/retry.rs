//! Backoff with full jitter, retry limits and the retry budget, on a fake clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use dawn_resilience::{
    Backoff, ConfigError, Retry, RetryBudget, RetryBudgetConfig, RetryError, RetryPolicy,
};

fn policy(base_ms: u64, cap_ms: u64) -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(base_ms),
        cap: Duration::from_millis(cap_ms),
        max_attempts: None,
        max_elapsed: None,
    }
}

#[test]
fn every_delay_is_within_zero_and_the_ceiling() {
    let p = policy(100, 10_000);
    let mut backoff = Backoff::new(p.clone(), 1).unwrap();
    for attempt in 0..200 {
        let ceiling = p.ceiling(attempt);
        assert_eq!(
            ceiling,
            Duration::from_millis(100u64.saturating_mul(2u64.saturating_pow(attempt))).min(p.cap)
        );
        for _ in 0..50 {
            let d = backoff.next_delay(attempt).unwrap();
            assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
        }
    }
}

#[test]
fn jitter_is_uniform_over_the_whole_range() {
    // 100,000 draws at the cap into 10 equal bins: each should hold 10,000 +- 4 % (the
    // standard deviation is 95, so this is a 4-sigma bound), and both ends are reached.
    let p = policy(1_000, 1_000);
    let mut backoff = Backoff::new(p, 2024).unwrap();
    let cap = 1_000_000_000u64; // 1 s in ns
    let mut bins = [0u32; 10];
    let (mut min, mut max, mut sum) = (u64::MAX, 0u64, 0u128);
    let n = 100_000;
    for _ in 0..n {
        let ns = u64::try_from(backoff.next_delay(5).unwrap().as_nanos()).unwrap();
        assert!(ns <= cap);
        min = min.min(ns);
        max = max.max(ns);
        sum += u128::from(ns);
        bins[usize::try_from((ns * 10 / (cap + 1)).min(9)).unwrap()] += 1;
    }
    for (i, &count) in bins.iter().enumerate() {
        assert!((9_600..=10_400).contains(&count), "bin {i}: {count}");
    }
    assert!(min < cap / 1000, "smallest draw {min} ns is not near 0");
    assert!(
        max > cap - cap / 1000,
        "largest draw {max} ns is not near the cap"
    );
    let mean = sum / n;
    assert!(
        (490_000_000..=510_000_000).contains(&mean),
        "mean {mean} ns"
    );
}

#[test]
fn the_same_seed_gives_the_same_schedule_and_another_seed_does_not() {
    let schedule = |seed| {
        let mut b = Backoff::new(policy(250, 30_000), seed).unwrap();
        (0..32)
            .map(|a| b.next_delay(a).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(schedule(7), schedule(7));
    assert_ne!(schedule(7), schedule(8));
    // Pinned: the schedule is a function of the seed alone, on every platform. A change here
    // changes every node's redial timing.
    let first: Vec<u128> = schedule(0).iter().take(4).map(Duration::as_nanos).collect();
    assert_eq!(first, PINNED_SEED_0);
}

/// The first four delays for seed 0 with base 250 ms and cap 30 s.
const PINNED_SEED_0: [u128; 4] = [220_827_702, 215_763_998, 26_433_771, 1_941_763_957];

#[test]
fn max_attempts_counts_the_first_attempt() {
    let p = RetryPolicy {
        max_attempts: Some(3),
        ..policy(10, 1_000)
    };
    let mut b = Backoff::new(p.clone(), 0).unwrap();
    assert!(b.next_delay(0).is_some());
    assert!(b.next_delay(1).is_some());
    assert_eq!(b.next_delay(2), None);
    assert_eq!(b.next_delay(u32::MAX), None);

    let once = RetryPolicy {
        max_attempts: Some(1),
        ..p
    };
    let t0 = Instant::now();
    let mut retry = Retry::new(once, 0, t0).unwrap();
    assert_eq!(
        retry.next_delay(t0),
        Err(RetryError::Exhausted { attempts: 1 })
    );
}

#[test]
fn retry_counts_failures_and_stops_at_the_limit() {
    let p = RetryPolicy {
        max_attempts: Some(4),
        ..policy(100, 1_000)
    };
    let mut now = Instant::now();
    let mut retry = Retry::new(p, 99, now).unwrap();
    for expected in 1..=3 {
        let wait = retry.next_delay(now).unwrap();
        assert!(wait <= Duration::from_millis(100 << (expected - 1)));
        assert_eq!(retry.failures(), expected);
        now += wait;
    }
    assert_eq!(
        retry.next_delay(now),
        Err(RetryError::Exhausted { attempts: 4 })
    );
    // A success starts over.
    retry.reset(now);
    assert_eq!(retry.failures(), 0);
    assert_eq!(retry.started(), now);
    assert!(retry.next_delay(now).is_ok());
}

#[test]
fn max_elapsed_moves_the_last_retry_to_the_deadline_then_stops() {
    let p = RetryPolicy {
        max_elapsed: Some(Duration::from_secs(10)),
        ..policy(1_000, 60_000)
    };
    let t0 = Instant::now();
    let mut retry = Retry::new(p, 3, t0).unwrap();
    let mut now = t0;
    let mut attempts = 1;
    loop {
        match retry.next_delay(now) {
            Ok(wait) => {
                now += wait;
                attempts += 1;
                assert!(
                    now <= t0 + Duration::from_secs(10),
                    "an attempt after the deadline"
                );
            }
            Err(RetryError::Deadline { elapsed }) => {
                assert_eq!(elapsed, now - t0);
                assert!(elapsed >= Duration::from_secs(10));
                break;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
        assert!(attempts < 1_000, "never gave up");
    }
    // A wait is never longer than what is left.
    let mut retry = Retry::new(
        RetryPolicy {
            max_elapsed: Some(Duration::from_millis(1)),
            ..policy(1_000, 1_000)
        },
        5,
        t0,
    )
    .unwrap();
    assert!(retry.next_delay(t0).unwrap() <= Duration::from_millis(1));
}

#[test]
fn a_fresh_budget_allows_its_tokens_then_the_floor_rate() {
    let config = RetryBudgetConfig {
        retry_percent: 0,
        min_retries_per_sec: 10,
        max_tokens: 5,
    };
    let mut budget = RetryBudget::new(config).unwrap();
    let t0 = Instant::now();
    for _ in 0..5 {
        budget.try_withdraw(t0).unwrap();
    }
    assert_eq!(
        budget.try_withdraw(t0),
        Err(RetryError::Budget {
            retry_after: Duration::from_millis(100)
        })
    );
    assert_eq!(budget.available(t0), 0);
    budget
        .try_withdraw(t0 + Duration::from_millis(100))
        .unwrap();
}

#[test]
fn deposits_earn_a_fraction_of_a_retry() {
    let config = RetryBudgetConfig {
        retry_percent: 20,
        min_retries_per_sec: 1,
        max_tokens: 10,
    };
    let mut budget = RetryBudget::new(config).unwrap();
    let t0 = Instant::now();
    for _ in 0..10 {
        budget.try_withdraw(t0).unwrap();
    }
    assert!(budget.try_withdraw(t0).is_err());
    // Four operations earn 0.8 of a retry: not enough. The fifth makes it one.
    for _ in 0..4 {
        budget.deposit(t0);
    }
    assert_eq!(
        budget.try_withdraw(t0),
        Err(RetryError::Budget {
            retry_after: Duration::from_millis(200)
        })
    );
    budget.deposit(t0);
    budget.try_withdraw(t0).unwrap();
    // Deposits never overfill.
    for _ in 0..1_000 {
        budget.deposit(t0);
    }
    assert_eq!(budget.available(t0), 10);
}

/// 1,000 operations start at once against a dead peer and each would retry every time the
/// backoff says (no attempt limit). Without a budget that is one retry per operation per
/// backoff period; with one, retries over 60 s stay within
/// `max_tokens + min_retries_per_sec × 60 + retry_percent % × operations`.
#[test]
fn the_budget_stops_retries_from_amplifying_an_outage() {
    let config = RetryBudgetConfig::default(); // 20 %, 10/s, 100 tokens
    let operations = 1_000u64;
    let span = Duration::from_secs(60);
    let t0 = Instant::now();

    let run = |budgeted: bool| -> u64 {
        let mut budget = RetryBudget::new(config.clone()).unwrap();
        let mut ops: Vec<Retry> = (0..operations)
            .map(|i| {
                budget.deposit(t0);
                Retry::new(policy(250, 5_000), i, t0).unwrap()
            })
            .collect();
        // Every operation's next attempt, earliest first; each attempt fails.
        let mut due: BinaryHeap<Reverse<(Instant, usize)>> =
            (0..ops.len()).map(|i| Reverse((t0, i))).collect();
        let mut retries = 0u64;
        while let Some(Reverse((at, i))) = due.pop() {
            if at >= t0 + span {
                break;
            }
            let retry = &mut ops[i];
            let result = if budgeted {
                retry.next_delay_within(at, &mut budget)
            } else {
                retry.next_delay(at)
            };
            match result {
                Ok(wait) => {
                    retries += 1;
                    due.push(Reverse((at + wait, i)));
                }
                Err(RetryError::Budget { retry_after }) => {
                    assert!(retry_after > Duration::ZERO);
                    due.push(Reverse((at + retry_after, i)));
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        retries
    };

    let unbounded = run(false);
    let bounded = run(true);
    let limit = u64::from(config.max_tokens)
        + u64::from(config.min_retries_per_sec) * span.as_secs()
        + u64::from(config.retry_percent) * operations / 100;
    println!("retries in 60 s: {unbounded} without a budget, {bounded} with (limit {limit})");
    assert!(bounded <= limit, "{bounded} retries, limit {limit}");
    // The floor rate is honoured: the budget does not starve retries entirely.
    assert!(bounded >= u64::from(config.min_retries_per_sec) * span.as_secs());
    // Without the budget, 1,000 operations retrying every ~2.5 s for a minute.
    assert!(
        unbounded > 20 * bounded,
        "unbounded {unbounded} vs bounded {bounded}"
    );
}

#[test]
fn a_refused_retry_is_not_counted() {
    let config = RetryBudgetConfig {
        retry_percent: 0,
        min_retries_per_sec: 1,
        max_tokens: 1,
    };
    let mut budget = RetryBudget::new(config).unwrap();
    let t0 = Instant::now();
    let mut retry = Retry::new(policy(10, 10), 0, t0).unwrap();
    retry.next_delay_within(t0, &mut budget).unwrap();
    assert_eq!(retry.failures(), 1);
    assert_eq!(
        retry.next_delay_within(t0, &mut budget),
        Err(RetryError::Budget {
            retry_after: Duration::from_secs(1)
        })
    );
    assert_eq!(retry.failures(), 1);
    retry
        .next_delay_within(t0 + Duration::from_secs(1), &mut budget)
        .unwrap();
    assert_eq!(retry.failures(), 2);
}

#[test]
fn invalid_policies_are_refused_before_use() {
    let bad = RetryPolicy {
        base: Duration::from_secs(2),
        cap: Duration::from_secs(1),
        ..RetryPolicy::default()
    };
    assert!(matches!(
        Retry::new(bad, 0, Instant::now()),
        Err(ConfigError::Inconsistent(_))
    ));
    let huge = RetryPolicy {
        cap: Duration::MAX,
        ..RetryPolicy::default()
    };
    assert!(matches!(
        Backoff::new(huge, 0),
        Err(ConfigError::TooLarge { .. })
    ));
}
