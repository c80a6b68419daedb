//! The cost of durability and of encryption at rest, each against its baseline in one run.
//!
//! - `audit::append`: one audit entry per transaction through the repository (always
//!   `synchronous = FULL`), against the identical `INSERT` on a raw connection with `FULL`
//!   and with `NORMAL`, on real files. `FULL / NORMAL` is the price of an fsync per commit.
//! - `agent_data::put` and `::get`: a sealed (sensitive) value against the same value in the
//!   clear, and `sealer::seal` / `::open` alone, to tell the cipher from the I/O.
//!
//! Under `cargo bench` (only), the FULL/NORMAL ratio is measured once more with the two
//! interleaved, so that both see the same load, and printed.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dawn_crypto::SigningKey;
use dawn_identity::AgentId;
use dawn_store::{SealPurpose, Sealer, Store};
use dawn_trust::{AuditChain, AuditEntry, AuditKind, Subject};
use rusqlite::{Connection, params};

fn entries(store: &Store, n: u64) -> Vec<AuditEntry> {
    let key = SigningKey::from_bytes(&[1; 32]);
    let mut chain = AuditChain::resume(store.audit().head().unwrap());
    (0..n)
        .map(|i| {
            chain.append(
                &key,
                1_700_000_000_000 + i,
                AuditKind::ToolCallDenied,
                Subject::none().with_tool("exec"),
                "denied by rule 'no-shell' (level Known)",
            )
        })
        .collect()
}

/// A raw connection to a store's file, committing with `synchronous`.
fn raw(path: &Path, synchronous: &str) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.pragma_update(None, "synchronous", synchronous)
        .unwrap();
    conn
}

/// Inserts `n` audit rows, one transaction each, with ids from `next`.
fn raw_appends(conn: &Connection, entry: &[u8], next: &mut i64, n: u64) -> Duration {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO audit_log (seq, timestamp_ms, kind, peer, entry) VALUES (?1, 1, 10, NULL, ?2)",
        )
        .unwrap();
    let start = Instant::now();
    for _ in 0..n {
        stmt.execute(params![*next, entry]).unwrap();
        *next += 1;
    }
    start.elapsed()
}

fn audit(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store.db")).unwrap();
    let full_path = dir.path().join("full.db");
    let normal_path = dir.path().join("normal.db");
    drop(Store::open(&full_path).unwrap());
    drop(Store::open(&normal_path).unwrap());
    let full = raw(&full_path, "FULL");
    let normal = raw(&normal_path, "NORMAL");
    let entry = entries(&store, 1).remove(0).encode();
    let (mut next_full, mut next_normal) = (0, 0);

    let mut group = c.benchmark_group("audit::append");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("store", "sync=full"), |b| {
        b.iter_custom(|iters| {
            let batch = entries(&store, iters);
            let start = Instant::now();
            for e in &batch {
                store.audit().append(e).unwrap();
            }
            start.elapsed()
        });
    });
    group.bench_function(BenchmarkId::new("raw_insert", "sync=full"), |b| {
        b.iter_custom(|iters| raw_appends(&full, &entry, &mut next_full, iters));
    });
    group.bench_function(BenchmarkId::new("raw_insert", "sync=normal"), |b| {
        b.iter_custom(|iters| raw_appends(&normal, &entry, &mut next_normal, iters));
    });
    group.throughput(Throughput::Elements(100));
    group.bench_function(BenchmarkId::new("store_batch", "n=100"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let batch = entries(&store, 100);
                let start = Instant::now();
                store.audit().append_batch(&batch).unwrap();
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();

    if std::env::args().any(|arg| arg == "--bench") {
        const N: u64 = 200;
        let mut ratios = Vec::new();
        let (mut full_total, mut normal_total) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..5 {
            let f = raw_appends(&full, &entry, &mut next_full, N);
            let n = raw_appends(&normal, &entry, &mut next_normal, N);
            ratios.push(f.as_secs_f64() / n.as_secs_f64());
            full_total += f;
            normal_total += n;
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "audit::append interleaved, 5 x {N} commits: FULL {:?}/commit, NORMAL {:?}/commit, \
             FULL/NORMAL median {:.1}x (min {:.1}x, max {:.1}x)",
            full_total / (5 * N as u32),
            normal_total / (5 * N as u32),
            ratios[2],
            ratios[0],
            ratios[4],
        );
    }
}

fn agent_data(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("agents.db")).unwrap();
    let sealer = Sealer::from_secret(&[2; 32]);
    let agent: AgentId = "memory".parse().unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);

    for len in [256usize, 16 * 1024] {
        let mut value = vec![0x5a_u8; len];
        let mut group = c.benchmark_group("agent_data::put");
        group.throughput(Throughput::Bytes(len as u64));
        for (name, sensitive) in [("sealed", true), ("plain", false)] {
            let key = format!("{name}-{len}");
            group.bench_function(BenchmarkId::new(name, format!("len={len}")), |b| {
                b.iter(|| {
                    // A new value every time, for both: SQLite skips writing pages whose
                    // content did not change, which would flatter an unchanged plain value
                    // against a sealed one (a fresh nonce changes every byte).
                    for byte in &mut value {
                        *byte = byte.wrapping_add(1);
                    }
                    store
                        .agent_data(&sealer)
                        .put(&agent, &key, black_box(&value), sensitive, now)
                        .unwrap();
                });
            });
        }
        group.finish();

        let mut group = c.benchmark_group("sealer");
        group.throughput(Throughput::Bytes(len as u64));
        let sealed = sealer
            .seal(SealPurpose::AgentData, "agent_data", b"key", &value)
            .unwrap();
        group.bench_function(BenchmarkId::new("seal", format!("len={len}")), |b| {
            b.iter(|| {
                black_box(
                    sealer
                        .seal(
                            SealPurpose::AgentData,
                            "agent_data",
                            b"key",
                            black_box(&value),
                        )
                        .unwrap(),
                )
            });
        });
        group.bench_function(BenchmarkId::new("open", format!("len={len}")), |b| {
            b.iter(|| {
                black_box(
                    sealer
                        .open(
                            SealPurpose::AgentData,
                            "agent_data",
                            b"key",
                            black_box(&sealed),
                        )
                        .unwrap(),
                )
            });
        });
        group.finish();

        let mut group = c.benchmark_group("agent_data::get");
        group.throughput(Throughput::Bytes(len as u64));
        for name in ["sealed", "plain"] {
            let key = format!("{name}-{len}");
            group.bench_function(BenchmarkId::new(name, format!("len={len}")), |b| {
                b.iter(|| black_box(store.agent_data(&sealer).get(&agent, &key).unwrap()));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, audit, agent_data);
criterion_main!(benches);
