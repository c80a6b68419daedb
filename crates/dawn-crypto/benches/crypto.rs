//! dawn-crypto benchmarks, each beside its baseline in the same run:
//!
//! - `ed25519::verify_batch/n=…` against `ed25519::verify_each/n=…` (the same signatures
//!   verified one at a time), both reported per signature;
//! - `sealed_box::{seal,open}` against `aead::{seal,open}` at the same sizes and suites, so the
//!   difference is the cost of the key agreement and key schedule.
//!
//! Run with `cargo bench -p dawn-crypto -- --warm-up-time 1 --measurement-time 3`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use dawn_crypto::{
    Aead, AeadKey, AeadSuite, NONCE_LEN, Signature, SigningKey, VerifyingKey, X25519SecretKey,
    open, seal, verify_batch,
};

const SIZES: &[(usize, &str)] = &[
    (64, "64B"),
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];

const BATCHES: &[usize] = &[64, 256, 1024];

/// A 64-byte message, about the size of what Dawn signs (a header and a digest).
fn message(i: usize) -> Vec<u8> {
    let mut m = format!("dawn bench message {i:08}").into_bytes();
    m.resize(64, 0x2e);
    m
}

fn ed25519(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = key.verifying_key();
    let m = message(0);
    let signature = key.sign(&m);

    let mut group = c.benchmark_group("ed25519::sign");
    group.throughput(Throughput::Elements(1));
    group.bench_function("msg=64B", |b| b.iter(|| key.sign(black_box(&m))));
    group.finish();

    let mut group = c.benchmark_group("ed25519::verify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("msg=64B", |b| {
        b.iter(|| public.verify(black_box(&m), black_box(&signature)).unwrap());
    });
    group.finish();

    let largest = BATCHES.iter().copied().max().unwrap_or(0);
    let signers: Vec<SigningKey> = (0..largest)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    let messages: Vec<Vec<u8>> = (0..largest).map(message).collect();
    let signatures: Vec<Signature> = signers
        .iter()
        .zip(&messages)
        .map(|(k, m)| k.sign(m))
        .collect();
    let keys: Vec<VerifyingKey> = signers.iter().map(SigningKey::verifying_key).collect();
    let items: Vec<(&[u8], &Signature, &VerifyingKey)> = (0..largest)
        .map(|i| (messages[i].as_slice(), &signatures[i], &keys[i]))
        .collect();

    // Batch and baseline alternate per size so that both see the same machine load.
    for &n in BATCHES {
        let batch = &items[..n];
        let mut group = c.benchmark_group("ed25519::verify_batch");
        group.throughput(Throughput::Elements(n as u64));
        group.sampling_mode(SamplingMode::Flat).sample_size(20);
        group.bench_function(BenchmarkId::from_parameter(format!("n={n}")), |b| {
            b.iter(|| verify_batch(black_box(batch)).unwrap());
        });
        group.finish();

        let mut group = c.benchmark_group("ed25519::verify_each");
        group.throughput(Throughput::Elements(n as u64));
        group.sampling_mode(SamplingMode::Flat).sample_size(20);
        group.bench_function(BenchmarkId::from_parameter(format!("n={n}")), |b| {
            b.iter(|| {
                for (m, s, k) in black_box(batch) {
                    k.verify(m, s).unwrap();
                }
            });
        });
        group.finish();
    }
}

fn aead_and_sealed_box(c: &mut Criterion) {
    let key = AeadKey::from_array([9; 32]);
    let nonce = [3u8; NONCE_LEN];
    let sender = X25519SecretKey::from_bytes(&[5; 32]);
    let recipient = X25519SecretKey::from_bytes(&[6; 32]);
    let recipient_public = recipient.public_key();
    let sender_public = sender.public_key();
    let purpose = b"dawn/bench/v1";

    for suite in AeadSuite::ALL {
        let aead = Aead::new(suite, &key);
        for &(size, label) in SIZES {
            let plaintext = vec![0xa7u8; size];
            let id =
                || BenchmarkId::new(format!("suite={}", suite.name()), format!("size={label}"));
            let sealed_aead = aead.encrypt(&nonce, purpose, &plaintext).unwrap();
            let sealed_box = seal(&sender, &recipient_public, purpose, suite, &plaintext).unwrap();

            let mut group = c.benchmark_group("aead::seal");
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(id(), |b| {
                b.iter(|| {
                    aead.encrypt(&nonce, purpose, black_box(&plaintext))
                        .unwrap()
                });
            });
            group.finish();

            let mut group = c.benchmark_group("aead::open");
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(id(), |b| {
                b.iter(|| {
                    aead.decrypt(&nonce, purpose, black_box(&sealed_aead))
                        .unwrap()
                });
            });
            group.finish();

            let mut group = c.benchmark_group("sealed_box::seal");
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(id(), |b| {
                b.iter(|| {
                    seal(
                        &sender,
                        &recipient_public,
                        purpose,
                        suite,
                        black_box(&plaintext),
                    )
                    .unwrap()
                });
            });
            group.finish();

            let mut group = c.benchmark_group("sealed_box::open");
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(id(), |b| {
                b.iter(|| {
                    open(&recipient, &sender_public, purpose, black_box(&sealed_box)).unwrap()
                });
            });
            group.finish();
        }
    }
}

criterion_group!(benches, ed25519, aead_and_sealed_box);
criterion_main!(benches);
