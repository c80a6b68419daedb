//! dawn-resilience benchmarks, each beside a baseline in the same run:
//!
//! - `rate_limiter::check/keys=10000` against `hashmap::get_mut/keys=10000` (a bare
//!   `HashMap` lookup and increment over the same 32-byte keys in the same order), so the
//!   ratio is the cost of two lazily refilled buckets on top of the lookup every limiter needs;
//! - `rate_limiter::check_new_key/keys=10000`: a stream of new keys at the cap, which
//!   exercises eviction (amortised);
//! - `breakers::allow_record/keys=10000` against the same `hashmap::get_mut` baseline;
//! - `breaker::allow_record` and `token_bucket::try_take` on a single instance, and
//!   `backoff::next_delay`.
//!
//! Run with `cargo bench -p dawn-resilience --bench resilience -- --warm-up-time 1
//! --measurement-time 3`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dawn_resilience::{
    Backoff, Breaker, BreakerConfig, Breakers, Rate, RateLimitConfig, RateLimiter, RetryPolicy,
    TokenBucket,
};

const KEYS: usize = 10_000;

/// 32-byte keys, like a `NodeId`, derived from an index.
fn key(i: u64) -> [u8; 32] {
    let mut k = [0u8; 32];
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03;
    for chunk in k.chunks_mut(8) {
        x ^= x >> 29;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    k
}

/// The keys in a scrambled visiting order, so consecutive lookups hit unrelated buckets.
fn order() -> Vec<[u8; 32]> {
    let mut idx: Vec<u64> = (0..KEYS as u64).collect();
    // A fixed Fisher-Yates shuffle with an inline LCG (reproducible, no RNG crate).
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for i in (1..idx.len()).rev() {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let j = usize::try_from((s >> 33) % (i as u64 + 1)).unwrap();
        idx.swap(i, j);
    }
    idx.into_iter().map(key).collect()
}

fn rate_limiter(c: &mut Criterion) {
    let keys = order();
    let config = RateLimitConfig {
        max_keys: 16_384,
        ..RateLimitConfig::default()
    };
    let t0 = Instant::now();

    let mut group = c.benchmark_group("hashmap::get_mut");
    group.throughput(Throughput::Elements(1));
    let mut map: HashMap<[u8; 32], u64> = keys.iter().map(|k| (*k, 0)).collect();
    let mut i = 0usize;
    group.bench_function("keys=10000", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            if let Some(v) = map.get_mut(black_box(&keys[i])) {
                *v += 1;
            }
        });
    });
    group.finish();

    let mut group = c.benchmark_group("rate_limiter::check");
    group.throughput(Throughput::Elements(1));
    let mut limiter = RateLimiter::new(config.clone()).unwrap();
    for k in &keys {
        limiter.check(t0, *k, 1).unwrap();
    }
    let mut now = t0;
    let mut i = 0usize;
    group.bench_function("keys=10000", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            now += Duration::from_micros(1);
            black_box(limiter.check(now, black_box(keys[i]), 1_200)).ok()
        });
    });
    group.finish();

    let mut group = c.benchmark_group("rate_limiter::check_new_key");
    group.throughput(Throughput::Elements(1));
    let mut limiter = RateLimiter::new(RateLimitConfig {
        max_keys: KEYS,
        ..RateLimitConfig::default()
    })
    .unwrap();
    let mut now = t0;
    let mut n = 0u64;
    group.bench_function("keys=10000", |b| {
        b.iter(|| {
            n += 1;
            // Every key is new and sends a large frame, so no bucket is full when the cap is
            // reached: eviction falls back to least-recently-used batches.
            now += Duration::from_nanos(100);
            black_box(limiter.check(now, key(n), 1 << 20)).ok()
        });
    });
    group.finish();
}

fn breakers(c: &mut Criterion) {
    let keys = order();
    let t0 = Instant::now();

    let mut group = c.benchmark_group("breakers::allow_record");
    group.throughput(Throughput::Elements(1));
    let mut breakers = Breakers::new(BreakerConfig {
        max_keys: 16_384,
        ..BreakerConfig::default()
    })
    .unwrap();
    for k in &keys {
        breakers.record_success(t0, k);
    }
    let mut now = t0;
    let mut n = 0usize;
    group.bench_function("keys=10000", |b| {
        b.iter(|| {
            n += 1;
            now += Duration::from_micros(1);
            let key = &keys[n % KEYS];
            if breakers.allow(now, black_box(key)).is_ok() {
                // One call in seven fails, spread so that no key ever fails twice in a row
                // (10,000 is not a multiple of 7): the window stays busy, nothing trips.
                if n.is_multiple_of(7) {
                    breakers.record_failure(now, key);
                } else {
                    breakers.record_success(now, key);
                }
            }
        });
    });
    group.finish();
    assert_eq!(breakers.tripped(), 0, "the mix is meant to never trip");

    let mut group = c.benchmark_group("breaker::allow_record");
    group.throughput(Throughput::Elements(1));
    let mut breaker = Breaker::new(BreakerConfig::default()).unwrap();
    let mut now = t0;
    group.bench_function("single", |b| {
        b.iter(|| {
            now += Duration::from_micros(1);
            if black_box(breaker.allow(now)).is_ok() {
                breaker.record_success(now);
            }
        });
    });
    group.finish();
}

fn primitives(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut group = c.benchmark_group("token_bucket::try_take");
    group.throughput(Throughput::Elements(1));
    let mut bucket = TokenBucket::new(Rate::per_second(1_000_000), 1_000).unwrap();
    let mut now = t0;
    group.bench_function("single", |b| {
        b.iter(|| {
            now += Duration::from_micros(1);
            black_box(bucket.try_take(now, 1)).ok()
        });
    });
    group.finish();

    let mut group = c.benchmark_group("backoff::next_delay");
    group.throughput(Throughput::Elements(1));
    let mut backoff = Backoff::new(RetryPolicy::default(), 7).unwrap();
    let mut attempt = 0u32;
    group.bench_function("default", |b| {
        b.iter(|| {
            attempt = (attempt + 1) % 16;
            black_box(backoff.next_delay(attempt))
        });
    });
    group.finish();
}

criterion_group!(benches, rate_limiter, breakers, primitives);
criterion_main!(benches);
