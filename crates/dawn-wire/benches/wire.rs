//! dawn-wire benchmarks, each beside a baseline in the same run:
//!
//! - `frame::decode/stream=1MiB,frame=…` against `baseline::memcpy/1MiB` (copying the same
//!   bytes once): the cost of framing over touching the data;
//! - `message::{encode,decode}/…` for the core messages;
//! - `envelope::verify/payload=…` against `baseline::ed25519_verify/payload=…` (raw strict
//!   Ed25519 over the same payload): the cost of the envelope's signing input;
//! - `envelope::verify_batch/n=64` against `envelope::verify_each/n=64`;
//! - `chunk::reassemble/1MiB,chunk=16KiB` against `baseline::memcpy/1MiB`;
//! - `replay::accept/origins=…`.
//!
//! Run with `cargo bench -p dawn-wire -- --warm-up-time 1 --measurement-time 3`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_wire::{
    Capabilities, FrameDecoder, Hello, MAX_FRAME_LEN, Message, Ping, Reassembler, ReassemblyLimits,
    ReplayConfig, ReplayGuard, SignedEnvelope, encode_frame, split,
};

const MIB: usize = 1 << 20;

fn key(i: u64) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&i.to_le_bytes());
    seed[31] = 0x5a;
    SigningKey::from_bytes(&seed)
}

fn baseline(c: &mut Criterion) {
    let data = vec![0xa5u8; MIB];
    let mut group = c.benchmark_group("baseline::memcpy");
    group.throughput(Throughput::Bytes(MIB as u64));
    group.bench_function("1MiB", |b| b.iter(|| black_box(&data).to_vec()));
    group.finish();
}

fn frames(c: &mut Criterion) {
    for frame_len in [64usize, 1024, 16 * 1024] {
        let mut stream = Vec::with_capacity(MIB + MIB / 8);
        let payload = vec![0x5au8; frame_len];
        while stream.len() < MIB {
            encode_frame(&payload, MAX_FRAME_LEN, &mut stream).unwrap();
        }
        let mut group = c.benchmark_group("frame::decode");
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_function(format!("stream=1MiB,frame={frame_len}B"), |b| {
            b.iter(|| {
                let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
                let mut frames = 0usize;
                // 64 KiB reads, as from a QUIC stream.
                for piece in stream.chunks(64 * 1024) {
                    decoder.push(piece).unwrap();
                    while let Some(frame) = decoder.next_frame().unwrap() {
                        frames += black_box(frame).len();
                    }
                }
                frames
            });
        });
        group.finish();
    }
}

fn messages(c: &mut Criterion) {
    let hello = Message::Hello(Hello::new(
        key(1).verifying_key().into(),
        Capabilities::GOSSIP | Capabilities::MCP,
    ));
    let ping = Message::Ping(Ping { nonce: u64::MAX });
    let protocol = Message::Protocol {
        kind: 0x0100,
        payload: Bytes::from(vec![1u8; 16 * 1024]),
    };
    for (name, message) in [
        ("hello", hello),
        ("ping", ping),
        ("protocol_16KiB", protocol),
    ] {
        let bytes = message.encode().unwrap();
        let mut group = c.benchmark_group("message::encode");
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| b.iter(|| black_box(&message).encode().unwrap()));
        group.finish();
        let mut group = c.benchmark_group("message::decode");
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| Message::decode(black_box(&bytes)).unwrap());
        });
        group.finish();
    }
}

fn envelopes(c: &mut Criterion) {
    let signer = key(2);
    for (len, label) in [(64usize, "64B"), (16 * 1024, "16KiB")] {
        let payload = vec![3u8; len];
        let envelope =
            SignedEnvelope::sign(&signer, "dawn/bench", 1_700_000_000_000, 1, payload.clone())
                .unwrap();
        let bytes = envelope.encode().unwrap();
        let public = signer.verifying_key();
        let raw_signature = signer.sign(&payload);

        let mut group = c.benchmark_group("envelope::sign");
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("payload={label}"), |b| {
            b.iter(|| {
                SignedEnvelope::sign(
                    &signer,
                    "dawn/bench",
                    1,
                    1,
                    black_box(&payload[..]).to_vec(),
                )
                .unwrap()
            });
        });
        group.finish();

        let mut group = c.benchmark_group("envelope::verify");
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("payload={label}"), |b| {
            b.iter(|| black_box(&envelope).verify().unwrap());
        });
        group.finish();
        let mut group = c.benchmark_group("baseline::ed25519_verify");
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("payload={label}"), |b| {
            b.iter(|| public.verify(black_box(&payload), &raw_signature).unwrap());
        });
        group.finish();

        let mut group = c.benchmark_group("envelope::decode");
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("payload={label}"), |b| {
            b.iter(|| SignedEnvelope::decode(black_box(&bytes)).unwrap());
        });
        group.finish();
    }

    let batch: Vec<SignedEnvelope> = (0..64u64)
        .map(|i| {
            SignedEnvelope::sign(&key(100 + i), "dawn/bench", 1, i, vec![i as u8; 64]).unwrap()
        })
        .collect();
    let mut group = c.benchmark_group("envelope::verify_batch");
    group.throughput(Throughput::Elements(64));
    group.sample_size(20);
    group.bench_function("n=64", |b| {
        b.iter(|| SignedEnvelope::verify_batch(black_box(&batch)).unwrap());
    });
    group.finish();
    let mut group = c.benchmark_group("envelope::verify_each");
    group.throughput(Throughput::Elements(64));
    group.sample_size(20);
    group.bench_function("n=64", |b| {
        b.iter(|| {
            for envelope in black_box(&batch) {
                envelope.verify().unwrap();
            }
        });
    });
    group.finish();
}

fn chunks(c: &mut Criterion) {
    let data = Bytes::from(vec![9u8; MIB]);
    let chunks = split(1, data, 16 * 1024).unwrap();
    let mut group = c.benchmark_group("chunk::reassemble");
    group.throughput(Throughput::Bytes(MIB as u64));
    group.bench_function("1MiB,chunk=16KiB", |b| {
        b.iter(|| {
            let mut reassembler = Reassembler::new(ReassemblyLimits::default());
            let mut whole = None;
            for chunk in black_box(&chunks) {
                whole = reassembler.push(0, chunk.clone()).unwrap();
            }
            whole.unwrap()
        });
    });
    group.finish();
}

fn replay(c: &mut Criterion) {
    for origins in [10u64, 10_000] {
        let ids: Vec<NodeId> = (0..origins)
            .map(|i| key(i).verifying_key().into())
            .collect();
        let mut guard = ReplayGuard::new(ReplayConfig::default());
        let now = 1_700_000_000_000u64;
        let mut sequence = 0u64;
        let mut group = c.benchmark_group("replay::accept");
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("origins={origins}"), |b| {
            b.iter(|| {
                sequence += 1;
                let origin = &ids[(sequence % origins) as usize];
                guard.accept_parts(now, black_box(origin), now, sequence)
            });
        });
        group.finish();
    }
}

criterion_group!(
    benches, baseline, frames, messages, envelopes, chunks, replay
);
criterion_main!(benches);
