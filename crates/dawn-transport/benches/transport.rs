//! Request/response over Dawn's transport against raw quinn with the same TLS configuration,
//! in the same run, on loopback.
//!
//! Baseline: a bare quinn endpoint pair built from `quic_server_config`/`quic_client_config`
//! (same raw-key TLS 1.3) and the same quinn transport parameters, one bidirectional stream per
//! request: `write_all`, `finish`, `read_to_end` on the client; `read_to_end`, `write_all`,
//! `finish` on the server, which spawns a task per stream like the transport does.
//!
//! Besides the criterion groups, `cargo bench` ends with interleaved measurements (one Dawn
//! request or batch, one raw one, and so on, alternating who goes first) and prints p50/p99
//! latency and throughput ratios: on a shared machine, interleaving is what makes the ratio
//! trustworthy. `DAWN_BENCH_REPORT_ONLY=1` skips the criterion groups.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use dawn_crypto::SigningKey;
use dawn_transport::{
    Connection, Transport, TransportConfig, quic_client_config, quic_server_config,
};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

const SIZES: [usize; 3] = [64, 1024, 64 * 1024];
/// Requests in flight at once in the throughput benchmark.
const IN_FLIGHT: usize = 32;
const LIMIT: usize = 1 << 20;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct Dawn {
    _server: Transport,
    _client: Transport,
    connection: Connection,
}

async fn dawn() -> Dawn {
    let server = Transport::bind(
        SigningKey::generate().unwrap(),
        loopback(),
        TransportConfig::default(),
    )
    .unwrap();
    server
        .register_request_handler("echo/1", |_, body: Bytes| async move { Ok(body) })
        .unwrap();
    let client = Transport::bind(
        SigningKey::generate().unwrap(),
        loopback(),
        TransportConfig::default(),
    )
    .unwrap();
    let connection = client
        .connect(server.node_id(), &[server.local_addr().unwrap()])
        .await
        .unwrap();
    Dawn {
        _server: server,
        _client: client,
        connection,
    }
}

struct Raw {
    _server: quinn::Endpoint,
    _client: quinn::Endpoint,
    connection: quinn::Connection,
}

/// The quinn transport parameters `TransportConfig::default()` implies, so the baseline
/// differs from Dawn only in what Dawn adds on top of quinn.
fn quinn_transport() -> Arc<quinn::TransportConfig> {
    let mut quic = quinn::TransportConfig::default();
    quic.max_idle_timeout(Some(Duration::from_secs(30).try_into().unwrap()))
        .keep_alive_interval(Some(Duration::from_secs(10)))
        .max_concurrent_bidi_streams(256u32.into())
        .max_concurrent_uni_streams(0u32.into())
        .datagram_receive_buffer_size(None)
        .receive_window((8u32 << 20).into());
    Arc::new(quic)
}

async fn raw() -> Raw {
    let server_key = SigningKey::generate().unwrap();
    let client_key = SigningKey::generate().unwrap();
    let mut server_config =
        quinn::ServerConfig::with_crypto(Arc::new(quic_server_config(&server_key).unwrap()));
    server_config.transport_config(quinn_transport());
    let server = quinn::Endpoint::server(server_config, loopback()).unwrap();
    let accepting = server.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accepting.accept().await {
            tokio::spawn(async move {
                let Ok(connection) = incoming.await else {
                    return;
                };
                while let Ok((mut send, mut recv)) = connection.accept_bi().await {
                    tokio::spawn(async move {
                        let Ok(body) = recv.read_to_end(LIMIT).await else {
                            return;
                        };
                        if send.write_all(&body).await.is_ok() {
                            let _ = send.finish();
                        }
                    });
                }
            });
        }
    });
    let client = quinn::Endpoint::client(loopback()).unwrap();
    let crypto = quic_client_config(&client_key, server_key.verifying_key().into()).unwrap();
    let mut client_config = quinn::ClientConfig::new(Arc::new(crypto));
    client_config.transport_config(quinn_transport());
    let connection = client
        .connect_with(client_config, server.local_addr().unwrap(), "dawn")
        .unwrap()
        .await
        .unwrap();
    Raw {
        _server: server,
        _client: client,
        connection,
    }
}

async fn dawn_request(connection: &Connection, payload: &Bytes) {
    let reply = connection.request("echo/1", payload.clone()).await.unwrap();
    assert_eq!(reply.len(), payload.len());
}

async fn raw_request(connection: &quinn::Connection, payload: &Bytes) {
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(payload).await.unwrap();
    send.finish().unwrap();
    let reply = recv.read_to_end(LIMIT).await.unwrap();
    assert_eq!(reply.len(), payload.len());
}

fn payload(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn latency(c: &mut Criterion, rt: &Runtime, dawn: &Dawn, raw: &Raw) {
    let mut group = c.benchmark_group("transport::request");
    for size in SIZES {
        let body = payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("raw_quinn", format!("size={size}")),
            &body,
            |b, body| {
                b.to_async(rt).iter(|| raw_request(&raw.connection, body));
            },
        );
        group.bench_with_input(
            BenchmarkId::new("dawn", format!("size={size}")),
            &body,
            |b, body| {
                b.to_async(rt).iter(|| dawn_request(&dawn.connection, body));
            },
        );
    }
    group.finish();
}

fn throughput(c: &mut Criterion, rt: &Runtime, dawn: &Dawn, raw: &Raw) {
    let mut group = c.benchmark_group("transport::request_concurrent");
    for size in SIZES {
        let body = payload(size);
        group.throughput(Throughput::Bytes((size * IN_FLIGHT) as u64));
        group.bench_with_input(
            BenchmarkId::new("raw_quinn", format!("size={size}/in_flight={IN_FLIGHT}")),
            &body,
            |b, body| {
                b.to_async(rt).iter(|| async {
                    let mut set = JoinSet::new();
                    for _ in 0..IN_FLIGHT {
                        let connection = raw.connection.clone();
                        let body = body.clone();
                        set.spawn(async move { raw_request(&connection, &body).await });
                    }
                    while set.join_next().await.is_some() {}
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("dawn", format!("size={size}/in_flight={IN_FLIGHT}")),
            &body,
            |b, body| {
                b.to_async(rt).iter(|| async {
                    let mut set = JoinSet::new();
                    for _ in 0..IN_FLIGHT {
                        let connection = dawn.connection.clone();
                        let body = body.clone();
                        set.spawn(async move { dawn_request(&connection, &body).await });
                    }
                    while set.join_next().await.is_some() {}
                });
            },
        );
    }
    group.finish();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Interleaved sequential requests: the fairest latency comparison on a noisy machine.
fn p50_report(rt: &Runtime, dawn: &Dawn, raw: &Raw) {
    const ROUNDS: usize = 5000;
    println!();
    println!("interleaved latency, {ROUNDS} sequential requests each (p50 / p99):");
    println!("| size | raw quinn p50 | Dawn p50 | p50 ratio | raw quinn p99 | Dawn p99 |");
    println!("|------|---------------|----------|-----------|---------------|----------|");
    for size in SIZES {
        let body = payload(size);
        let (mut raw_times, mut dawn_times) = rt.block_on(async {
            for _ in 0..200 {
                raw_request(&raw.connection, &body).await;
                dawn_request(&dawn.connection, &body).await;
            }
            let mut raw_times = Vec::with_capacity(ROUNDS);
            let mut dawn_times = Vec::with_capacity(ROUNDS);
            for round in 0..ROUNDS {
                // Alternate who goes first so neither always runs on the other's warm caches.
                for turn in 0..2 {
                    let start = Instant::now();
                    if (round + turn) % 2 == 0 {
                        raw_request(&raw.connection, &body).await;
                        raw_times.push(start.elapsed());
                    } else {
                        dawn_request(&dawn.connection, &body).await;
                        dawn_times.push(start.elapsed());
                    }
                }
            }
            (raw_times, dawn_times)
        });
        raw_times.sort();
        dawn_times.sort();
        let (raw_p50, dawn_p50) = (percentile(&raw_times, 0.5), percentile(&dawn_times, 0.5));
        println!(
            "| {size} B | {:.1} µs | {:.1} µs | {:.3} | {:.1} µs | {:.1} µs |",
            raw_p50.as_secs_f64() * 1e6,
            dawn_p50.as_secs_f64() * 1e6,
            dawn_p50.as_secs_f64() / raw_p50.as_secs_f64(),
            percentile(&raw_times, 0.99).as_secs_f64() * 1e6,
            percentile(&dawn_times, 0.99).as_secs_f64() * 1e6,
        );
    }
}

/// Interleaved batches of concurrent requests: throughput under load, fairly compared.
fn throughput_report(rt: &Runtime, dawn: &Dawn, raw: &Raw) {
    const BATCHES: usize = 300;
    println!();
    println!(
        "interleaved throughput, {BATCHES} batches of {IN_FLIGHT} concurrent requests each (median batch):"
    );
    println!("| size | raw quinn | Dawn | Dawn / raw throughput |");
    println!("|------|-----------|------|-----------------------|");
    for size in SIZES {
        let body = payload(size);
        let batch = |dawn_turn: bool| {
            let body = body.clone();
            let dawn = dawn.connection.clone();
            let raw = raw.connection.clone();
            async move {
                let start = Instant::now();
                let mut set = JoinSet::new();
                for _ in 0..IN_FLIGHT {
                    let (dawn, raw, body) = (dawn.clone(), raw.clone(), body.clone());
                    set.spawn(async move {
                        if dawn_turn {
                            dawn_request(&dawn, &body).await;
                        } else {
                            raw_request(&raw, &body).await;
                        }
                    });
                }
                while set.join_next().await.is_some() {}
                start.elapsed()
            }
        };
        let (mut raw_times, mut dawn_times) = rt.block_on(async {
            for round in 0..20 {
                batch(round % 2 == 0).await;
            }
            let mut raw_times = Vec::with_capacity(BATCHES);
            let mut dawn_times = Vec::with_capacity(BATCHES);
            for round in 0..BATCHES {
                for turn in 0..2 {
                    if (round + turn) % 2 == 0 {
                        raw_times.push(batch(false).await);
                    } else {
                        dawn_times.push(batch(true).await);
                    }
                }
            }
            (raw_times, dawn_times)
        });
        raw_times.sort();
        dawn_times.sort();
        let (raw_p50, dawn_p50) = (percentile(&raw_times, 0.5), percentile(&dawn_times, 0.5));
        let bytes = (size * IN_FLIGHT) as f64;
        let mib = |d: Duration| bytes / d.as_secs_f64() / (1024.0 * 1024.0);
        println!(
            "| {size} B | {:.1} MiB/s ({:.0} req/s) | {:.1} MiB/s ({:.0} req/s) | {:.3} |",
            mib(raw_p50),
            IN_FLIGHT as f64 / raw_p50.as_secs_f64(),
            mib(dawn_p50),
            IN_FLIGHT as f64 / dawn_p50.as_secs_f64(),
            raw_p50.as_secs_f64() / dawn_p50.as_secs_f64(),
        );
    }
}

fn main() {
    let rt = runtime();
    let (dawn, raw) = rt.block_on(async { (dawn().await, raw().await) });
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    if std::env::var_os("DAWN_BENCH_REPORT_ONLY").is_none() {
        latency(&mut c, &rt, &dawn, &raw);
        throughput(&mut c, &rt, &dawn, &raw);
        c.final_summary();
    }
    if std::env::args().any(|arg| arg == "--bench") {
        p50_report(&rt, &dawn, &raw);
        throughput_report(&rt, &dawn, &raw);
    }
}
