//! Simulator throughput: events per second while flooding broadcasts over 1,000 and 10,000
//! nodes, beside the bare cost of the same number of binary-heap pushes and pops in the same
//! run. The README records the ratio (simulator cost per event / heap cost per event).

#![allow(missing_docs, clippy::unwrap_used)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dawn_sim::{Flood, NodeId, Sim, SimConfig, SimRng, node_id, ring_with_chords};

const MAX_RUN: Duration = Duration::from_secs(600);

fn network(n: usize) -> (Sim<Flood>, Vec<NodeId>) {
    let config = SimConfig {
        seed: 1,
        record_events: false,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config).unwrap();
    let ids: Vec<NodeId> = (0..n as u64).map(node_id).collect();
    let graph = ring_with_chords(n, 4, sim.rng());
    for (id, peers) in ids.iter().zip(&graph) {
        sim.add_node(*id, Flood::new(peers.iter().map(|&p| ids[p]).collect()))
            .unwrap();
    }
    (sim, ids)
}

fn flood(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim::flood");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for n in [1_000usize, 10_000] {
        let (mut sim, ids) = network(n);
        // Every broadcast on this lossless graph costs the same number of events.
        let before = sim.events_processed();
        sim.with_node(ids[0], |p, _| p.broadcast(0, 256)).unwrap();
        let mut peak_pending = 0;
        while sim.step() {
            peak_pending = peak_pending.max(sim.pending());
        }
        let events = sim.events_processed() - before;
        eprintln!("nodes={n}: {events} events per broadcast, peak queue {peak_pending}");
        group.throughput(Throughput::Elements(events));

        let mut next = 1u64;
        group.bench_function(BenchmarkId::from_parameter(format!("nodes={n}")), |b| {
            b.iter(|| {
                let origin = ids[(next as usize * 7919) % n];
                sim.with_node(origin, |p, _| p.broadcast(next, 256))
                    .unwrap();
                next += 1;
                assert!(sim.run_until_idle(MAX_RUN));
            });
        });

        let count = usize::try_from(events).unwrap();
        let mut rng = SimRng::new(2);
        group.bench_function(
            BenchmarkId::new("heap::push_pop (baseline)", format!("nodes={n}")),
            |b| {
                b.iter(|| {
                    let mut heap = BinaryHeap::with_capacity(count);
                    for seq in 0..count as u64 {
                        heap.push(Reverse((rng.next_u64() >> 24, seq)));
                    }
                    while let Some(entry) = heap.pop() {
                        black_box(entry);
                    }
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, flood);
criterion_main!(benches);
