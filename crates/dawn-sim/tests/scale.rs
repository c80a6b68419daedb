//! 10,000 nodes in one process.
//!
//! The default test floods one broadcast over 10,000 nodes. The ignored one is the heavy run
//! whose figures are in the README:
//! `cargo test -p dawn-sim --release --test scale -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use dawn_sim::{
    Action, Churn, Flood, LatencyModel, NodeId, Sim, SimConfig, node_id, ring_with_chords,
};

const MS: Duration = Duration::from_millis(1);
const NODES: usize = 10_000;

fn build(config: SimConfig, chords: usize) -> (Sim<Flood>, Vec<NodeId>, Vec<Vec<NodeId>>) {
    let mut sim = Sim::new(config).unwrap();
    let ids: Vec<NodeId> = (0..NODES as u64).map(node_id).collect();
    let graph = ring_with_chords(NODES, chords, sim.rng());
    let neighbours: Vec<Vec<NodeId>> = graph
        .iter()
        .map(|peers| peers.iter().map(|&p| ids[p]).collect())
        .collect();
    for (id, peers) in ids.iter().zip(&neighbours) {
        sim.add_node(*id, Flood::new(peers.clone())).unwrap();
    }
    (sim, ids, neighbours)
}

/// Peak resident memory of this process in kB, from `/proc/self/status` (Linux only).
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn ten_thousand_nodes_flood_to_completion() {
    let config = SimConfig {
        seed: 1,
        record_events: false,
        ..SimConfig::default()
    };
    let (mut sim, ids, _) = build(config, 3);
    sim.with_node(ids[0], |p, _| p.broadcast(1, 256)).unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(60)));
    assert!(ids.iter().all(|id| sim.node(id).unwrap().has_seen(1)));
    let stats = sim.stats();
    assert_eq!(stats.sent.messages, stats.delivered.messages);
    // Every node forwards to all neighbours but the one it heard from first.
    assert!(stats.delivered.messages > 5 * NODES as u64);
}

#[test]
#[ignore = "heavy: run with --release --ignored --nocapture for the README figures"]
fn ten_thousand_nodes_under_loss_churn_and_partition() {
    let before = peak_rss_kb();
    let started = Instant::now();
    let config = SimConfig {
        seed: 2024,
        latency: LatencyModel::LogNormal {
            median: 40 * MS,
            sigma: 0.5,
        },
        jitter: 2 * MS,
        loss: 0.01,
        bandwidth: Some(1_000_000),
        record_events: true,
    };
    let (mut sim, ids, neighbours) = build(config, 4);
    let built = started.elapsed();
    let t0 = sim.now();
    sim.schedule(
        t0 + Duration::from_secs(2),
        Action::Partition(vec![ids[..3000].to_vec()]),
    )
    .unwrap();
    sim.schedule(t0 + Duration::from_secs(4), Action::Heal)
        .unwrap();
    let churn = Churn {
        exclude: vec![ids[0]],
        ..Churn::new(0.05, Duration::from_secs(8), 500 * MS..=3000 * MS)
    };
    let by_id: std::collections::BTreeMap<NodeId, Vec<NodeId>> =
        ids.iter().copied().zip(neighbours).collect();
    sim.schedule_churn(&churn, move |id, _| Flood::new(by_id[&id].clone()))
        .unwrap();
    let broadcasts = 50u64;
    for b in 0..broadcasts {
        let origin = ids[sim.rng().index(NODES)];
        sim.schedule(
            t0 + b as u32 * 200 * MS,
            Action::input(origin, move |p: &mut Flood, _| p.broadcast(b, 1024)),
        )
        .unwrap();
    }
    let run_started = Instant::now();
    assert!(sim.run_until_idle(Duration::from_secs(600)));
    let ran = run_started.elapsed();
    let deliveries = sim.drain_events().count();
    let stats = *sim.stats();
    let events = sim.events_processed();
    println!("nodes: {NODES}, broadcasts: {broadcasts}");
    println!("build (keys, graph, add_node): {built:?}");
    println!(
        "run: {ran:?} wall for {:?} virtual; {events} events, {:.0} events/s",
        sim.elapsed(),
        events as f64 / ran.as_secs_f64()
    );
    println!("deliveries to the application: {deliveries}");
    println!("counters: {stats:#?}");
    println!(
        "peak RSS: {:?} kB before, {:?} kB after",
        before,
        peak_rss_kb()
    );
    assert!(deliveries as u64 > broadcasts * NODES as u64 * 8 / 10);
    assert_eq!(
        stats.sent.messages,
        stats.delivered.messages + stats.dropped().messages
    );
}

/// A protocol with no state, to measure what the simulator itself keeps per node.
struct Idle;

impl dawn_sim::Protocol for Idle {
    type Message = ();
    type Event = ();

    fn handle_message(&mut self, _: Instant, _: NodeId, (): ()) {}
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_transmit(&mut self) -> Option<(NodeId, ())> {
        None
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn wire_size((): &()) -> usize {
        0
    }
}

/// Current resident memory of this process in kB.
fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
#[ignore = "measures process memory: run alone with --release --ignored --nocapture"]
fn simulator_footprint_per_node() {
    let ids: Vec<NodeId> = (0..NODES as u64).map(node_id).collect();
    let before = rss_kb().unwrap();
    let mut sim: Sim<Idle> = Sim::new(SimConfig::default()).unwrap();
    for id in &ids {
        sim.add_node(*id, Idle).unwrap();
    }
    let after = rss_kb().unwrap();
    let per_node = (after - before) * 1024 / NODES as u64;
    println!(
        "simulator memory for {NODES} idle nodes: {} kB, {per_node} bytes per node",
        after - before
    );
    assert!(per_node < 1024, "{per_node} bytes per node");
    assert_eq!(sim.len(), NODES);
}
