//! What identity operations cost, each beside the primitive that bounds it in the same run:
//! parsing an address against parsing its node id, opening a key file against the bare AEAD,
//! verifying a rotation against one Ed25519 verification. The README records the ratios.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dawn_crypto::{Aead, AeadKey, AeadSuite, SigningKey};
use dawn_identity::{
    AgentAddr, KdfParams, KeyFile, NodeId, Passphrase, RotationStatement, SealOptions, Unlock,
    follow_rotations,
};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn text_forms(c: &mut Criterion) {
    let node = NodeId::from(key(1).verifying_key());
    let node_text = node.to_string();
    let addr_text = format!("{node}:weather-eu.west_2");
    let mut group = c.benchmark_group("text");
    group.bench_function("node_id::parse (baseline)", |b| {
        b.iter(|| black_box(&node_text).parse::<NodeId>().unwrap());
    });
    group.bench_function("agent_addr::parse", |b| {
        b.iter(|| black_box(&addr_text).parse::<AgentAddr>().unwrap());
    });
    group.finish();
}

fn keyfile(c: &mut Criterion) {
    let secret = key(2);
    let passphrase = Passphrase::new("correct horse battery staple").unwrap();
    let unlock = Unlock::Passphrase(passphrase.clone());
    let mut group = c.benchmark_group("keyfile");
    let fast = SealOptions::new(KdfParams::insecure_fast(), AeadSuite::default());
    let bytes = KeyFile::seal(&secret, &passphrase, &fast).unwrap().encode();
    group.bench_function("decode", |b| {
        b.iter(|| KeyFile::decode(black_box(&bytes)).unwrap());
    });
    let aead = Aead::new(AeadSuite::default(), &AeadKey::from_array([7; 32]));
    let sealed_seed = aead.encrypt(&[0; 12], &bytes[..83], &[1; 32]).unwrap();
    group.bench_function("aead::decrypt seed (baseline)", |b| {
        b.iter(|| {
            aead.decrypt(&[0; 12], &bytes[..83], black_box(&sealed_seed))
                .unwrap()
        });
    });
    let file = KeyFile::decode(&bytes).unwrap();
    group.bench_function(BenchmarkId::new("open", "kdf=insecure_fast"), |b| {
        b.iter(|| file.open(black_box(&unlock)).unwrap());
    });
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let real = KeyFile::seal(&secret, &passphrase, &SealOptions::default()).unwrap();
    group.bench_function(BenchmarkId::new("open", "kdf=rfc9106_second"), |b| {
        b.iter(|| real.open(black_box(&unlock)).unwrap());
    });
    group.finish();
}

fn rotation(c: &mut Criterion) {
    let statement = RotationStatement::sign(&key(1), &key(2), 1, 0, Some("scheduled")).unwrap();
    let signer = key(3);
    let signature = signer.sign(b"dawn/key-rotation/v1 and about a hundred bytes of fields");
    let mut group = c.benchmark_group("rotation");
    group.bench_function("ed25519::verify (baseline)", |b| {
        b.iter(|| {
            signer
                .verifying_key()
                .verify(
                    black_box(b"dawn/key-rotation/v1 and about a hundred bytes of fields"),
                    &signature,
                )
                .unwrap();
        });
    });
    group.bench_function("verify", |b| {
        b.iter(|| black_box(&statement).verify().unwrap())
    });
    let chain: Vec<_> = (1..=100u8)
        .map(|i| RotationStatement::sign(&key(i), &key(i + 1), u64::from(i), 0, None).unwrap())
        .collect();
    let first = NodeId::from(key(1).verifying_key());
    group.bench_function(BenchmarkId::new("follow", "n=100"), |b| {
        b.iter(|| follow_rotations(first, black_box(&chain)).unwrap());
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = text_forms, keyfile, rotation
}
criterion_main!(benches);
