//! dawn-trust benchmarks:
//!
//! - `audit::verify_chain/batched/n=10000` against `audit::verify_chain/one_by_one/n=10000`
//!   (the same encoded log, signatures checked one at a time), alternating, with the ratio
//!   measured again by hand at the end and printed;
//! - `audit::append`: making and signing one entry;
//! - `trust::record/*`: score updates (an observation of one of 1000 peers, time moving on);
//! - `trust::score`, `trust::handle_timeout/peers=10000` (a full sweep);
//! - `policy::decide/rules=*`.
//!
//! Run with `cargo bench -p dawn-trust --bench trust -- --warm-up-time 1 --measurement-time 3`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use dawn_crypto::SigningKey;
use dawn_identity::{AgentId, NodeId};
use dawn_trust::{
    Assignment, AuditChain, AuditKind, Observation, Permission, Policy, PolicyConfig, Request,
    RuleConfig, Subject, TrustConfig, TrustLevel, TrustTable, verify_chain,
    verify_chain_one_by_one,
};

const T0: u64 = 1_700_000_000_000;
const CHAIN: usize = 10_000;

fn node(i: u32) -> NodeId {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    SigningKey::from_bytes(&seed).verifying_key().into()
}

/// A log of `n` entries shaped like a node's: mostly tool calls and connections.
fn log(n: usize) -> (NodeId, Vec<Vec<u8>>) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let peers: Vec<NodeId> = (0..64).map(node).collect();
    let agent: AgentId = "weather".parse().unwrap();
    let mut chain = AuditChain::new();
    let entries = (0..n)
        .map(|i| {
            let peer = peers[i % peers.len()];
            let (kind, subject) = if i % 3 == 0 {
                (
                    AuditKind::ConnectionAccepted,
                    Subject::none().with_peer(peer),
                )
            } else {
                (
                    AuditKind::ToolCallAllowed,
                    Subject::none()
                        .with_peer(peer)
                        .with_agent(agent.clone())
                        .with_tool("forecast"),
                )
            };
            chain
                .append(&key, T0 + i as u64, kind, subject, "allowed by allow[0]")
                .encode()
        })
        .collect();
    (key.verifying_key().into(), entries)
}

fn audit(c: &mut Criterion) {
    let (node, entries) = log(CHAIN);
    for batched in [true, false] {
        let name = if batched { "batched" } else { "one_by_one" };
        let mut group = c.benchmark_group("audit::verify_chain");
        group.throughput(Throughput::Elements(CHAIN as u64));
        group.sampling_mode(SamplingMode::Flat).sample_size(10);
        group.bench_function(BenchmarkId::new(name, format!("n={CHAIN}")), |b| {
            b.iter(|| {
                if batched {
                    verify_chain(black_box(&node), black_box(&entries)).unwrap()
                } else {
                    verify_chain_one_by_one(black_box(&node), black_box(&entries)).unwrap()
                }
            });
        });
        group.finish();
    }

    // The ratio, measured again with the two interleaved so that both see the same load. Only
    // under `cargo bench`: listing (`--list`) and test mode print nothing of their own.
    if std::env::args().any(|arg| arg == "--bench") {
        let mut batched = Vec::new();
        let mut single = Vec::new();
        for _ in 0..3 {
            let start = Instant::now();
            verify_chain(&node, &entries).unwrap();
            batched.push(start.elapsed());
            let start = Instant::now();
            verify_chain_one_by_one(&node, &entries).unwrap();
            single.push(start.elapsed());
        }
        batched.sort();
        single.sort();
        println!(
            "audit::verify_chain n={CHAIN}: batched {:?}, one by one {:?}, ratio {:.2}x (medians of 3, interleaved)",
            batched[1],
            single[1],
            single[1].as_secs_f64() / batched[1].as_secs_f64()
        );
    }

    let key = SigningKey::from_bytes(&[7; 32]);
    let peer = node;
    let mut chain = AuditChain::new();
    let mut group = c.benchmark_group("audit::append");
    group.throughput(Throughput::Elements(1));
    group.bench_function("tool_call", |b| {
        b.iter(|| {
            chain.append(
                &key,
                T0,
                AuditKind::ToolCallDenied,
                Subject::none().with_peer(peer).with_tool("forecast"),
                black_box("denied: not granted to unknown peers by default"),
            )
        });
    });
    group.finish();
}

fn trust(c: &mut Criterion) {
    let peers: Vec<NodeId> = (0..1000).map(node).collect();
    for (name, observation) in [
        ("valid_message", Observation::ValidMessage),
        ("invalid_signature", Observation::InvalidSignature),
    ] {
        let mut table = TrustTable::new(TrustConfig::default()).unwrap();
        for (i, p) in peers.iter().enumerate() {
            table.record(T0, p, Observation::HandshakeCompleted);
            if i % 10 == 0 {
                table.assign(T0, p, Some(Assignment::Trusted)).unwrap();
            }
        }
        let mut now = T0;
        let mut i = 0usize;
        let mut group = c.benchmark_group("trust::record");
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new(name, "peers=1000"), |b| {
            b.iter(|| {
                now += 1;
                i = (i + 1) % peers.len();
                let level = table.record(now, black_box(&peers[i]), observation);
                while table.poll_event().is_some() {}
                level
            });
        });
        group.finish();
    }

    let mut table = TrustTable::new(TrustConfig::default()).unwrap();
    let many: Vec<NodeId> = (0..10_000).map(node).collect();
    for (i, p) in many.iter().enumerate() {
        table.record(T0, p, Observation::HandshakeCompleted);
        if i % 3 == 0 {
            table.record(T0, p, Observation::InvalidSignature);
        }
    }
    for p in many.iter().take(20) {
        table.assign(T0, p, Some(Assignment::Trusted)).unwrap();
    }
    for (i, p) in many.iter().enumerate().skip(20).take(1000) {
        let _ = table.recommend(T0, &many[i % 20], p);
    }
    while table.poll_event().is_some() {}
    let mut group = c.benchmark_group("trust::score");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("peers=10000", |b| {
        b.iter(|| {
            i = (i + 1) % many.len();
            table.score(T0 + 3_600_000, black_box(&many[i]))
        });
    });
    group.finish();

    let mut group = c.benchmark_group("trust::handle_timeout");
    group.sampling_mode(SamplingMode::Flat).sample_size(20);
    group.throughput(Throughput::Elements(many.len() as u64));
    let mut now = T0;
    group.bench_function("peers=10000", |b| {
        b.iter(|| {
            now += 60_000;
            table.handle_timeout(now);
            while table.poll_event().is_some() {}
        });
    });
    group.finish();
}

fn policy(c: &mut Criterion) {
    let peer = node(5000);
    let agent: AgentId = "weather".parse().unwrap();
    for rules in [0usize, 10, 100] {
        let allow = (0..rules as u32)
            .map(|i| {
                let mut rule = RuleConfig::new([Permission::CallTools]);
                rule.peers = Some(vec![node(i)]);
                rule.tools = Some(vec![format!("tool{i}")]);
                rule
            })
            .collect();
        let policy = Policy::from_config(PolicyConfig {
            allow,
            ..PolicyConfig::default()
        })
        .unwrap();
        let request = Request::new(&peer, TrustLevel::Verified, Permission::CallTools)
            .with_agent(&agent)
            .with_tool("forecast");
        let mut group = c.benchmark_group("policy::decide");
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("rules={rules}"), |b| {
            b.iter(|| policy.decide(black_box(&request)));
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = audit, trust, policy
}
criterion_main!(benches);
