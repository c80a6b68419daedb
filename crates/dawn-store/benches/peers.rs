//! Peer repository throughput on a real file (WAL, `synchronous=NORMAL`).
//!
//! Each operation is measured two ways in the same run: batched (one transaction, one
//! query) and per statement, the baseline a naive caller would write. The README records the
//! ratio.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_store::Store;

const SIZES: [usize; 2] = [1_000, 10_000];

fn peers(n: usize) -> Vec<(NodeId, Vec<SocketAddr>)> {
    (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let id: NodeId = SigningKey::from_bytes(&seed).verifying_key().into();
            let octets = (i as u32).to_be_bytes();
            let addrs = vec![
                SocketAddr::from(([10, octets[1], octets[2], octets[3]], 4433)),
                SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, (i % 65_535 + 1) as u16], 4433)),
            ];
            (id, addrs)
        })
        .collect()
}

fn fresh_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("bench.db")).unwrap();
    (dir, store)
}

fn upsert(c: &mut Criterion) {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut group = c.benchmark_group("peers::upsert");
    group.sample_size(10);
    for n in SIZES {
        let rows = peers(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(
            BenchmarkId::new("batched", format!("n={n}")),
            &rows,
            |b, rows| {
                b.iter_batched(
                    fresh_store,
                    |(dir, store)| {
                        store.peers().upsert_many(rows, now).unwrap();
                        (dir, store)
                    },
                    BatchSize::PerIteration,
                );
            },
        );
        group.bench_with_input(
            BenchmarkId::new("per_statement", format!("n={n}")),
            &rows,
            |b, rows| {
                b.iter_batched(
                    fresh_store,
                    |(dir, store)| {
                        for (id, addrs) in rows {
                            store.peers().upsert(id, addrs, now).unwrap();
                        }
                        (dir, store)
                    },
                    BatchSize::PerIteration,
                );
            },
        );
    }
    group.finish();
}

fn list(c: &mut Criterion) {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut group = c.benchmark_group("peers::list");
    group.sample_size(10);
    for n in SIZES {
        let rows = peers(n);
        let (_dir, store) = fresh_store();
        store.peers().upsert_many(&rows, now).unwrap();
        for (i, (id, _)) in rows.iter().enumerate().step_by(3) {
            let at = now + Duration::from_millis(i as u64);
            store.peers().record_success(id, at).unwrap();
        }
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("one_query", format!("n={n}")), |b| {
            b.iter(|| {
                let listed = store.peers().list(n).unwrap();
                assert_eq!(listed.len(), n);
                black_box(listed)
            });
        });
        // Not a way to list: the cost of validating n stored ids alone, which every read pays.
        group.bench_function(
            BenchmarkId::new("node_id_from_bytes", format!("n={n}")),
            |b| {
                b.iter(|| {
                    for (id, _) in &rows {
                        black_box(NodeId::from_bytes(black_box(id.as_bytes())).unwrap());
                    }
                });
            },
        );
        group.bench_function(BenchmarkId::new("per_get", format!("n={n}")), |b| {
            b.iter(|| {
                for (id, _) in &rows {
                    black_box(store.peers().get(id).unwrap().unwrap());
                }
            });
        });
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut group = c.benchmark_group("store::open");
    group.sample_size(10);
    let (dir, store) = fresh_store();
    store.peers().upsert_many(&peers(10_000), now).unwrap();
    drop(store);
    let path = dir.path().join("bench.db");
    for (name, check) in [
        ("quick_check", dawn_store::IntegrityCheck::Quick),
        ("skip_check", dawn_store::IntegrityCheck::Skip),
    ] {
        let options = dawn_store::StoreOptions::default().with_integrity_check(check);
        group.bench_function(BenchmarkId::new(name, "peers=10000"), |b| {
            b.iter(|| black_box(Store::open_with(&path, &options).unwrap()));
        });
    }
    group.finish();
}

criterion_group!(benches, upsert, list, open);
criterion_main!(benches);
