//! The network model: latency, jitter, loss, bandwidth and unknown destinations.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Probe, assert_conservation};
use dawn_sim::{LatencyModel, Sim, SimConfig, node_id};

const MS: Duration = Duration::from_millis(1);

fn sim_with(config: SimConfig, n: u64) -> Sim<Probe> {
    let mut sim = Sim::new(config).unwrap();
    for i in 0..n {
        sim.add_node(node_id(i), Probe::echoing()).unwrap();
    }
    sim
}

#[test]
fn fixed_latency_delivers_exactly_on_time() {
    let config = SimConfig {
        latency: LatencyModel::Fixed(10 * MS),
        ..SimConfig::default()
    };
    let mut sim = sim_with(config, 2);
    let (a, b) = (node_id(0), node_id(1));
    sim.run_for(3 * MS);
    let sent_at = sim.now();
    sim.with_node(a, |p, _| p.send(b, 1, 100)).unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    let events: Vec<_> = sim.drain_events().collect();
    assert_eq!(events.len(), 2, "ping and echo");
    assert_eq!(events[0].0, sent_at + 10 * MS);
    assert_eq!(events[0].1, b);
    assert_eq!(events[1].0, sent_at + 20 * MS);
    assert_eq!(events[1].1, a);
    assert!(events[1].2.reply);
    assert_eq!(sim.link_latency(&a, &b).unwrap(), 10 * MS);
    assert_eq!(sim.elapsed(), 23 * MS);
}

#[test]
fn each_link_keeps_one_latency_both_ways_within_the_model() {
    let config = SimConfig {
        seed: 11,
        latency: LatencyModel::Uniform {
            min: 10 * MS,
            max: 50 * MS,
        },
        ..SimConfig::default()
    };
    let n = 20;
    let mut sim = sim_with(config, n);
    let mut latencies = std::collections::BTreeSet::new();
    for round in 0..3 {
        for i in 1..n {
            let start = sim.now();
            sim.with_node(node_id(0), |p, _| p.send(node_id(i), round, 10))
                .unwrap();
            assert!(sim.run_until_idle(Duration::from_secs(1)));
            let events: Vec<_> = sim.drain_events().collect();
            let link = sim.link_latency(&node_id(0), &node_id(i)).unwrap();
            assert_eq!(link, sim.link_latency(&node_id(i), &node_id(0)).unwrap());
            assert!((10 * MS..=50 * MS).contains(&link), "{link:?}");
            // There and back over the same link.
            assert_eq!(events[0].0 - start, link);
            assert_eq!(events[1].0 - start, 2 * link);
            latencies.insert(link);
        }
    }
    assert!(latencies.len() > 15, "links differ: {latencies:?}");
}

#[test]
fn jitter_varies_each_message_within_bounds() {
    let config = SimConfig {
        latency: LatencyModel::Fixed(10 * MS),
        jitter: 5 * MS,
        ..SimConfig::default()
    };
    let mut sim = sim_with(config, 2);
    let (a, b) = (node_id(0), node_id(1));
    sim.with_node(a, |p, _| {
        for seq in 0..200 {
            p.send(b, seq, 10);
        }
    })
    .unwrap();
    sim.run_for(100 * MS);
    let arrivals: Vec<_> = sim
        .node(&b)
        .unwrap()
        .received
        .iter()
        .map(|g| g.at)
        .collect();
    assert_eq!(arrivals.len(), 200);
    let start = sim.epoch();
    let delays: Vec<Duration> = arrivals.iter().map(|at| *at - start).collect();
    assert!(delays.iter().all(|d| (10 * MS..=15 * MS).contains(d)));
    let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
    assert!(distinct.len() > 150);
    // Datagrams overtake each other: arrival order is not send order.
    let seqs: Vec<u64> = sim
        .node(&b)
        .unwrap()
        .received
        .iter()
        .map(|g| g.seq)
        .collect();
    assert!(seqs.windows(2).any(|w| w[0] > w[1]));
}

#[test]
fn loss_drops_the_configured_fraction_and_counts_it() {
    let config = SimConfig {
        loss: 0.25,
        ..SimConfig::default()
    };
    let mut sim = sim_with(config, 2);
    let (a, b) = (node_id(0), node_id(1));
    // Echo off on b would be simpler, but echoes are lost at the same rate: count both.
    sim.with_node(a, |p, _| {
        for seq in 0..20_000 {
            p.send(b, seq, 50);
        }
    })
    .unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(10)));
    let stats = *sim.stats();
    let lost = stats.dropped_loss.messages as f64 / stats.sent.messages as f64;
    assert!((0.24..0.26).contains(&lost), "{lost}");
    assert_eq!(
        stats.sent.messages,
        stats.delivered.messages + stats.dropped_loss.messages
    );
    assert_eq!(stats.dropped_loss.bytes, stats.dropped_loss.messages * 50);
    let a_stats = sim.node_stats(&a).unwrap();
    assert_eq!(a_stats.sent.messages, 20_000);
    assert_eq!(
        a_stats.dropped_loss.messages + sim.node_stats(&b).unwrap().delivered.messages,
        20_000
    );
    assert_conservation(&sim);

    sim.set_loss(1.0).unwrap();
    let delivered = sim.stats().delivered.messages;
    sim.with_node(a, |p, _| p.send(b, 0, 50)).unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    assert_eq!(sim.stats().delivered.messages, delivered);
    sim.set_loss(0.0).unwrap();
    sim.with_node(a, |p, _| p.send(b, 0, 50)).unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    assert_eq!(sim.stats().delivered.messages, delivered + 2);
    assert!(sim.set_loss(1.5).is_err());
    assert_eq!(sim.config().loss, 0.0);
}

#[test]
fn bandwidth_serialises_a_nodes_messages() {
    let config = SimConfig {
        latency: LatencyModel::Fixed(10 * MS),
        bandwidth: Some(10_000),
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config).unwrap();
    let (a, b, c) = (node_id(0), node_id(1), node_id(2));
    for id in [a, b, c] {
        sim.add_node(id, Probe::new()).unwrap();
    }
    // Five 1000-byte messages at 10 kB/s leave 100 ms apart, then cross a 10 ms link.
    sim.with_node(a, |p, _| {
        for seq in 0..5 {
            p.send(b, seq, 1000);
        }
    })
    .unwrap();
    // c's link is its own: its message is not queued behind a's.
    sim.with_node(c, |p, _| p.send(b, 99, 1000)).unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(5)));
    let received = &sim.node(&b).unwrap().received;
    let epoch = sim.epoch();
    let from_a: Vec<Duration> = received
        .iter()
        .filter(|g| g.from == a)
        .map(|g| g.at - epoch)
        .collect();
    assert_eq!(
        from_a,
        (1..=5).map(|k| k * 100 * MS + 10 * MS).collect::<Vec<_>>()
    );
    let from_c: Vec<Duration> = received
        .iter()
        .filter(|g| g.from == c)
        .map(|g| g.at - epoch)
        .collect();
    assert_eq!(from_c, vec![110 * MS]);

    // An idle link starts fresh; a per-node override lifts the limit.
    sim.set_bandwidth(a, None).unwrap();
    let start = sim.now();
    sim.with_node(a, |p, _| {
        for seq in 10..13 {
            p.send(b, seq, 1000);
        }
    })
    .unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    let late: Vec<_> = sim.node(&b).unwrap().received[6..]
        .iter()
        .map(|g| g.at - start)
        .collect();
    assert_eq!(late, vec![10 * MS; 3]);
    assert!(sim.set_bandwidth(a, Some(0)).is_err());
}

#[test]
fn messages_to_unknown_nodes_are_counted_not_fatal() {
    let mut sim = sim_with(SimConfig::default(), 1);
    sim.with_node(node_id(0), |p, _| p.send(node_id(77), 1, 33))
        .unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    let stats = sim.stats();
    assert_eq!(stats.dropped_unknown.messages, 1);
    assert_eq!(stats.dropped_unknown.bytes, 33);
    assert_eq!(stats.delivered.messages, 0);
    assert_conservation(&sim);
}

#[test]
fn log_normal_and_normal_links_stay_in_their_models() {
    for latency in [
        LatencyModel::Normal {
            mean: 40 * MS,
            std_dev: 5 * MS,
        },
        LatencyModel::LogNormal {
            median: 30 * MS,
            sigma: 0.5,
        },
    ] {
        let config = SimConfig {
            latency: latency.clone(),
            ..SimConfig::default()
        };
        let sim = sim_with(config, 200);
        let mut values: Vec<Duration> = (1..200)
            .map(|i| sim.link_latency(&node_id(0), &node_id(i)).unwrap())
            .collect();
        values.sort_unstable();
        let median = values[values.len() / 2];
        assert!(
            median > 25 * MS && median < 45 * MS,
            "{latency:?}: {median:?}"
        );
        assert!(values[0] < values[values.len() - 1]);
    }
}

#[test]
fn run_until_quiet_waits_for_messages_in_flight_only() {
    let config = SimConfig {
        latency: LatencyModel::Fixed(10 * MS),
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config).unwrap();
    let (a, b) = (node_id(0), node_id(1));
    sim.add_node(a, Probe::new()).unwrap();
    sim.add_node(b, Probe::new()).unwrap();
    sim.with_node(a, |p, _| p.send(b, 1, 10)).unwrap();
    assert_eq!(sim.in_flight(), 1);
    assert!(!sim.run_until_quiet(5 * MS));
    assert_eq!(sim.elapsed(), 5 * MS);
    assert!(sim.run_until_quiet(10 * MS));
    assert_eq!(sim.elapsed(), 10 * MS, "stops at the delivery");
    assert_eq!(sim.in_flight(), 0);
}

#[test]
fn events_are_not_kept_when_recording_is_off() {
    let config = SimConfig {
        record_events: false,
        ..SimConfig::default()
    };
    let mut sim = sim_with(config, 2);
    sim.with_node(node_id(0), |p, _| p.send(node_id(1), 1, 10))
        .unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    assert_eq!(sim.stats().delivered.messages, 2);
    assert_eq!(sim.drain_events().count(), 0);
}
