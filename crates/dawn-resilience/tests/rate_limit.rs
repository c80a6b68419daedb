//! Token buckets and the per-peer limiter over simulated time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use dawn_resilience::{
    Limit, Rate, RateLimitConfig, RateLimited, RateLimiter, TakeError, TokenBucket,
};

const MS: Duration = Duration::from_millis(1);

#[test]
fn burst_then_steady_rate_counts_exactly() {
    // 10 tokens/s, burst 5, as many takes as possible every millisecond for 10 s
    // (t = 0 ..= 10 s): the burst at t = 0, then one token every 100 ms.
    let mut bucket = TokenBucket::new(Rate::per_second(10), 5).unwrap();
    let t0 = Instant::now();
    let mut taken_at = Vec::new();
    for ms in 0..=10_000u32 {
        while bucket.try_take(t0 + MS * ms, 1).is_ok() {
            taken_at.push(ms);
        }
    }
    assert_eq!(taken_at.len(), 5 + 100);
    assert_eq!(&taken_at[..5], &[0, 0, 0, 0, 0]);
    let steady: Vec<u32> = (1..=100).map(|i| i * 100).collect();
    assert_eq!(&taken_at[5..], &steady[..]);
}

#[test]
fn a_rate_that_does_not_divide_a_second_does_not_drift() {
    // 3 tokens/s for an hour, polled every 7 ms: a token is due every 333.33 ms and taken at
    // the next poll, and the fraction left over carries to the next one (the burst of 2
    // leaves room for it), so after the first token exactly 3 a second are taken. The last
    // poll is at 3599.995 s, before the token due at 3600 s.
    let mut bucket = TokenBucket::new(Rate::per_second(3), 2).unwrap();
    let t0 = Instant::now();
    bucket.try_take(t0, 1).unwrap();
    let mut count = 0u64;
    let mut t = Duration::ZERO;
    while t <= Duration::from_secs(3600) {
        if bucket.try_take(t0 + t, 1).is_ok() {
            count += 1;
        }
        t += 7 * MS;
    }
    assert_eq!(count, 1 + 3 * 3600 - 1);
    bucket.try_take(t0 + Duration::from_secs(3600), 1).unwrap();
    assert!(bucket.try_take(t0 + Duration::from_secs(3600), 1).is_err());
}

#[test]
fn the_burst_caps_what_an_idle_bucket_saves() {
    // With a burst of 1, a token that waits for a late poll cannot save up the fraction
    // beyond it: polled every 7 ms, 3 tokens/s yield one token per 336 ms, not 333.33 ms.
    let mut bucket = TokenBucket::new(Rate::per_second(3), 1).unwrap();
    let t0 = Instant::now();
    let mut taken = Vec::new();
    for poll in 0..=300u32 {
        if bucket.try_take(t0 + 7 * MS * poll, 1).is_ok() {
            taken.push(7 * poll);
        }
    }
    assert_eq!(taken, [0, 336, 672, 1008, 1344, 1680, 2016]);
}

#[test]
fn byte_budget_counts_exactly() {
    // 1,000 B/s with a 1,500 B burst, 100 B messages every millisecond for 10 s.
    let mut bucket = TokenBucket::new(Rate::per_second(1_000), 1_500).unwrap();
    let t0 = Instant::now();
    let mut bytes = 0;
    for ms in 0..=10_000u32 {
        if bucket.try_take(t0 + MS * ms, 100).is_ok() {
            bytes += 100;
        }
    }
    assert_eq!(bytes, 1_500 + 10_000);
}

#[test]
fn retry_after_is_exact() {
    for (rate, per, burst, n) in [
        (10, Duration::from_secs(1), 5, 1),
        (3, Duration::from_secs(1), 10, 7),
        (1, Duration::from_secs(7), 2, 2),
        (1_000_000_007, Duration::from_secs(1), 1_000, 999),
        (7, Duration::from_nanos(3), 100, 50),
    ] {
        let mut bucket = TokenBucket::new(Rate::new(rate, per), burst).unwrap();
        let t0 = Instant::now();
        bucket.try_take(t0, burst).unwrap();
        let Err(TakeError::Empty { retry_after }) = bucket.try_take(t0, n) else {
            panic!("an empty bucket gave {n} tokens");
        };
        assert!(retry_after > Duration::ZERO);
        let early = t0 + retry_after - Duration::from_nanos(1);
        assert!(
            bucket.clone().try_take(early, n).is_err(),
            "rate {rate}/{per:?}: {n} tokens 1 ns before {retry_after:?}"
        );
        bucket.try_take(t0 + retry_after, n).unwrap();
    }
}

#[test]
fn a_refusal_takes_nothing() {
    let mut bucket = TokenBucket::new(Rate::per_second(1), 10).unwrap();
    let t0 = Instant::now();
    bucket.try_take(t0, 6).unwrap();
    assert!(bucket.try_take(t0, 5).is_err());
    assert_eq!(bucket.available(t0), 4);
    bucket.try_take(t0, 4).unwrap();
    assert_eq!(
        bucket.try_take(t0, 11),
        Err(TakeError::ExceedsBurst {
            requested: 11,
            burst: 10
        })
    );
}

#[test]
fn huge_gaps_rates_and_requests_do_not_overflow() {
    let t0 = Instant::now();
    let century = Duration::from_secs(100 * 365 * 24 * 3600);

    let mut bucket = TokenBucket::new(Rate::per_second(u64::MAX), u64::MAX).unwrap();
    bucket.try_take(t0, u64::MAX).unwrap();
    assert_eq!(bucket.available(t0), 0);
    bucket.try_take(t0 + century, u64::MAX).unwrap();
    assert!(bucket.try_take(t0 + century, 1).is_err());
    bucket
        .try_take(t0 + century + Duration::from_secs(1), u64::MAX)
        .unwrap();

    // The slowest rate: one token every 584 years, and the largest burst.
    let slowest = Rate::new(1, Duration::from_nanos(u64::MAX));
    let mut bucket = TokenBucket::new(slowest, u64::MAX).unwrap();
    bucket.try_take(t0, u64::MAX).unwrap();
    let Err(TakeError::Empty { retry_after }) = bucket.try_take(t0, u64::MAX) else {
        panic!("empty bucket gave tokens");
    };
    assert_eq!(retry_after, Duration::MAX, "saturates instead of wrapping");
    assert!(bucket.try_take(t0 + century, 1).is_err());

    // A full bucket stays full however long it waits.
    let mut bucket = TokenBucket::new(Rate::per_second(5), 5).unwrap();
    assert_eq!(bucket.available(t0 + century), 5);
    bucket.try_take(t0 + century, 5).unwrap();
    assert!(bucket.is_full(t0 + century + Duration::from_secs(1)));
}

#[test]
fn instants_out_of_order_neither_refill_nor_rewind() {
    let mut bucket = TokenBucket::new(Rate::per_second(10), 10).unwrap();
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_secs(1);
    bucket.try_take(t1, 10).unwrap();
    // An earlier instant adds nothing...
    assert!(bucket.try_take(t0, 1).is_err());
    // ...and does not move the bucket back: at t1 + 100 ms exactly one token is back.
    bucket.try_take(t1 + 100 * MS, 1).unwrap();
    assert!(bucket.try_take(t1 + 100 * MS, 1).is_err());
}

fn limiter(keys: usize) -> RateLimiter<u32> {
    RateLimiter::new(RateLimitConfig {
        messages_per_sec: 10,
        message_burst: 10,
        bytes_per_sec: 1_000,
        byte_burst: 2_000,
        max_keys: keys,
    })
    .unwrap()
}

#[test]
fn each_peer_has_its_own_buckets() {
    let mut l = limiter(16);
    let t0 = Instant::now();
    for _ in 0..10 {
        l.check(t0, 1, 10).unwrap();
    }
    assert_eq!(
        l.check(t0, 1, 10),
        Err(RateLimited::Exceeded {
            which: Limit::Messages,
            retry_after: 100 * MS
        })
    );
    l.check(t0, 2, 10).unwrap();
    assert_eq!(l.available(t0, &1), (0, 1_900));
    assert_eq!(l.available(t0, &2), (9, 1_990));
    assert_eq!(l.available(t0, &3), (10, 2_000));
}

#[test]
fn the_byte_limit_refuses_atomically_and_names_itself() {
    let mut l = limiter(16);
    let t0 = Instant::now();
    l.check(t0, 1, 2_000).unwrap();
    let refused = l.check(t0, 1, 500).unwrap_err();
    assert_eq!(
        refused,
        RateLimited::Exceeded {
            which: Limit::Bytes,
            retry_after: 500 * MS
        }
    );
    // The refused call took no message token.
    assert_eq!(l.available(t0, &1), (9, 0));
    assert_eq!(
        l.check(t0, 1, 2_001),
        Err(RateLimited::TooLarge {
            requested: 2_001,
            burst: 2_000
        })
    );
    assert_eq!(refused.retry_after(), Some(500 * MS));
    l.check(t0 + 500 * MS, 1, 500).unwrap();
}

#[test]
fn when_both_limits_refuse_the_longer_wait_is_reported() {
    let mut l = limiter(16);
    let t0 = Instant::now();
    for _ in 0..10 {
        l.check(t0, 1, 200).unwrap();
    }
    // Messages need 100 ms, bytes (200 more) need 200 ms.
    assert_eq!(
        l.check(t0, 1, 200),
        Err(RateLimited::Exceeded {
            which: Limit::Bytes,
            retry_after: 200 * MS
        })
    );
}

#[test]
fn tracked_keys_are_capped_and_full_buckets_go_first() {
    let mut l = limiter(64);
    let t0 = Instant::now();
    // Key 0 is busy: its buckets are not full.
    for _ in 0..5 {
        l.check(t0, 0, 100).unwrap();
    }
    // 63 more keys send once each at t0: their buckets refill within 100 ms.
    for key in 1..64 {
        l.check(t0, key, 1).unwrap();
    }
    assert_eq!(l.len(), 64);
    // A second later every key but 0 is full again... (key 0 has 5 messages back too, so
    // keep it busy.)
    let t1 = t0 + Duration::from_secs(1);
    for _ in 0..10 {
        l.check(t1, 0, 100).unwrap();
    }
    // ...so a new key evicts the full ones, never key 0.
    l.check(t1, 1_000, 1).unwrap();
    assert!(l.len() <= 64);
    assert_eq!(l.available(t1, &0), (0, 1_000));
    assert_eq!(l.len(), 2, "every full bucket was forgotten");
}

#[test]
fn with_no_full_bucket_the_least_recently_active_go() {
    let mut l = limiter(32);
    let t0 = Instant::now();
    for key in 0..32u32 {
        // Drain every key at a distinct instant, so none refills before the end.
        let at = t0 + MS * key;
        for _ in 0..10 {
            l.check(at, key, 1).unwrap();
        }
    }
    let now = t0 + 40 * MS;
    l.check(now, 100, 1).unwrap();
    // cap / 16 = 2 slots freed: the two least recently active keys (0 and 1), which now
    // restart with a full burst.
    assert_eq!(l.len(), 31);
    assert_eq!(l.available(now, &0), (10, 2_000));
    assert_eq!(l.available(now, &1), (10, 2_000));
    assert_eq!(l.available(now, &2).0, 0);
    assert_eq!(l.available(now, &31).0, 0);
    for key in 2..32 {
        assert!(l.check(now, key, 1).is_err(), "key {key} kept its state");
    }
}

#[test]
fn many_keys_never_exceed_the_cap() {
    let mut l = limiter(100);
    let t0 = Instant::now();
    for key in 0..10_000u32 {
        let now = t0 + MS * (key / 7);
        l.check(now, key, 50).unwrap();
        assert!(l.len() <= l.max_keys());
    }
    assert!(!l.is_empty());
}

#[test]
fn sweep_and_remove_forget_keys() {
    let mut l = limiter(16);
    let t0 = Instant::now();
    l.check(t0, 1, 1).unwrap();
    l.check(t0, 2, 1_000).unwrap();
    l.sweep(t0 + 200 * MS); // key 1 is full again, key 2 is 800 bytes short
    assert_eq!(l.len(), 1);
    assert!(l.remove(&2));
    assert!(!l.remove(&2));
    assert!(l.is_empty());
}
