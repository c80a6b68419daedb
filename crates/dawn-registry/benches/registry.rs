//! dawn-registry benchmarks, each against a baseline in the same run:
//!
//! - `reconcile::session/owners=N,changed=D`: a node that missed `D` changes among `N`
//!   owners reconciles with a peer that has them (every message both ways, signatures of the
//!   changed manifests checked); baseline `reconcile::whole_state`: the peer exports its
//!   whole state and the node imports it (what a protocol without digests would do).
//! - `merge::delta/owners=N`: one owner's new delta merged into a directory of `N` owners
//!   (decode, signature, merge); baseline `merge::verify_only`: checking that delta's manifest
//!   signature alone, the part no registry can skip.
//!
//! Run with `cargo bench -p dawn-registry --bench registry -- --warm-up-time 1 --measurement-time 3`.
//! Under `cargo bench` it also prints the bytes each reconciliation moved.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use dawn_registry::{AgentRecord, Registry, RegistryConfig, ToolSummary, Transmit};
use dawn_wire::SignedEnvelope;

const UNIX_MS: u64 = 1_700_000_000_000;

fn record(version: u64) -> AgentRecord {
    let mut r = AgentRecord::new("agent".parse().unwrap(), "An agent");
    r.description = format!("an agent of the mesh, version {version}");
    r.tools.push(ToolSummary {
        name: "run".into(),
        description: "does its job".into(),
    });
    r.version = version;
    r
}

fn node(seed: u8, now: Instant) -> Registry {
    Registry::new(
        dawn_crypto::SigningKey::from_bytes(&[seed; 32]),
        RegistryConfig::default(),
        u64::from(seed),
        now,
        UNIX_MS,
    )
    .unwrap()
}

fn delta(owner: &mut Registry, now: Instant, version: u64) -> Bytes {
    owner.upsert_local(now, record(version)).unwrap();
    match owner.poll_transmit() {
        Some(Transmit::Broadcast { payload }) => payload,
        other => panic!("expected a broadcast, got {other:?}"),
    }
}

/// `a` holds `n` owners; `b` holds them with `d` of them changed since; `extra` is one more
/// change of an owner both hold, not yet delivered to either.
struct Setup {
    a: Registry,
    b: Registry,
    extra: Bytes,
    extra_owner: dawn_identity::NodeId,
}

fn setup(n: usize, d: usize, now: Instant) -> Setup {
    let mut a = node(1, now);
    let mut b = node(2, now);
    let mut owners: Vec<Registry> = (0..n as u64)
        .map(|i| {
            Registry::new(
                dawn_sim::signing_key(i),
                RegistryConfig::default(),
                i,
                now,
                UNIX_MS,
            )
            .unwrap()
        })
        .collect();
    let deltas: Vec<(dawn_identity::NodeId, Bytes)> = owners
        .iter_mut()
        .map(|o| (*o.node_id(), delta(o, now, 1)))
        .collect();
    for (id, bytes) in &deltas {
        a.handle_bytes(now, *id, bytes).unwrap();
        b.handle_bytes(now, *id, bytes).unwrap();
    }
    for owner in owners.iter_mut().step_by((n / d.max(1)).max(1)).take(d) {
        let bytes = delta(owner, now, 2);
        b.handle_bytes(now, *owner.node_id(), &bytes).unwrap();
    }
    let last = owners.last_mut().unwrap();
    let extra = delta(last, now, 3);
    Setup {
        a,
        b,
        extra,
        extra_owner: *last.node_id(),
    }
}

/// Delivers what `from` has to send to `to`; returns the bytes moved.
fn pump(from: &mut Registry, to: &mut Registry, now: Instant) -> usize {
    let id = *from.node_id();
    let mut bytes = 0;
    while let Some(t) = from.poll_transmit() {
        if let Transmit::Send { payload, .. } = t {
            bytes += payload.len();
            to.handle_bytes(now, id, &payload).unwrap();
        }
    }
    bytes
}

/// One reconciliation started by `a`; returns the bytes moved.
fn reconcile(a: &mut Registry, b: &mut Registry, now: Instant) -> usize {
    a.peer_up(now, *b.node_id());
    let mut total = 0;
    loop {
        let moved = pump(a, b, now) + pump(b, a, now);
        if moved == 0 {
            return total;
        }
        total += moved;
    }
}

/// The manifest envelope inside an encoded delta: after the 3-byte header, a varint length
/// and the envelope.
fn manifest_of(delta: &[u8]) -> &[u8] {
    let body = &delta[3..];
    let (mut len, mut i) = (0usize, 0);
    loop {
        let byte = body[i];
        len |= usize::from(byte & 0x7f) << (7 * i);
        i += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    &body[i..i + len]
}

fn reconcile_benches(c: &mut Criterion) {
    let now = Instant::now();
    let under_bench = std::env::args().any(|arg| arg == "--bench");
    for (n, d) in [(1000, 10), (10_000, 10)] {
        let s = setup(n, d, now);
        if under_bench {
            let (mut a, mut b) = (s.a.clone(), s.b.clone());
            let moved = reconcile(&mut a, &mut b, now);
            let whole = s.b.export_state().unwrap().len();
            println!(
                "owners={n} changed={d}: reconciliation moved {moved} bytes, the whole state is \
                 {whole} bytes ({:.1}x)",
                whole as f64 / moved as f64
            );
        }
        let id = format!("owners={n},changed={d}");
        let mut group = c.benchmark_group("reconcile");
        group.sample_size(10);
        group.bench_function(BenchmarkId::new("session", &id), |bench| {
            bench.iter_batched(
                || (s.a.clone(), s.b.clone()),
                |(mut a, mut b)| {
                    let moved = reconcile(&mut a, &mut b, now);
                    assert_eq!(a.state_digest(), b.state_digest());
                    black_box(moved);
                    // Returned so that dropping them is not timed.
                    (a, b)
                },
                BatchSize::LargeInput,
            );
        });
        group.bench_function(BenchmarkId::new("whole_state", &id), |bench| {
            bench.iter_batched(
                || s.a.clone(),
                |mut a| {
                    let state = s.b.export_state().unwrap();
                    a.import_state(now, &state).unwrap();
                    assert_eq!(a.state_digest(), s.b.state_digest());
                    (a, state)
                },
                BatchSize::LargeInput,
            );
        });
        group.finish();
    }
}

fn merge_benches(c: &mut Criterion) {
    let now = Instant::now();
    let n = 10_000;
    let s = setup(n, 1, now);
    let mut group = c.benchmark_group("merge");
    group.bench_function(BenchmarkId::new("delta", format!("owners={n}")), |bench| {
        bench.iter_batched(
            || s.a.clone(),
            |mut a| {
                a.handle_bytes(now, s.extra_owner, &s.extra).unwrap();
                a
            },
            BatchSize::LargeInput,
        );
    });
    // Checking the manifest's signature is the floor of any merge.
    let envelope = manifest_of(&s.extra);
    SignedEnvelope::decode(envelope).unwrap().verify().unwrap();
    group.bench_function("verify_only", |bench| {
        bench.iter(|| {
            let e = SignedEnvelope::decode(black_box(envelope)).unwrap();
            black_box(e.verify().is_ok())
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = reconcile_benches, merge_benches
}
criterion_main!(benches);
