//! Properties over random networks and send scripts: every delivery respects the latency
//! model, time never runs backwards, no message is unaccounted for, and a seed reproduces
//! its run.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Probe, assert_conservation};
use dawn_sim::{LatencyModel, Sim, SimConfig, node_id};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Script {
    seed: u64,
    nodes: u64,
    min_ms: u64,
    span_ms: u64,
    jitter_ms: u64,
    loss: f64,
    sends: Vec<(u64, u64, usize)>,
}

fn script() -> impl Strategy<Value = Script> {
    (
        any::<u64>(),
        2u64..12,
        0u64..50,
        0u64..50,
        0u64..5,
        prop_oneof![Just(0.0), 0.0..0.5],
        prop::collection::vec((0u64..12, 0u64..12, 0usize..2000), 1..60),
    )
        .prop_map(
            |(seed, nodes, min_ms, span_ms, jitter_ms, loss, sends)| Script {
                seed,
                nodes,
                min_ms,
                span_ms,
                jitter_ms,
                loss,
                sends: sends
                    .into_iter()
                    .map(|(a, b, size)| (a % nodes, b % nodes, size))
                    .collect(),
            },
        )
}

fn run(script: &Script) -> Sim<Probe> {
    let config = SimConfig {
        seed: script.seed,
        latency: LatencyModel::Uniform {
            min: Duration::from_millis(script.min_ms),
            max: Duration::from_millis(script.min_ms + script.span_ms),
        },
        jitter: Duration::from_millis(script.jitter_ms),
        loss: script.loss,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config).unwrap();
    for i in 0..script.nodes {
        sim.add_node(node_id(i), Probe::new()).unwrap();
    }
    for (seq, &(from, to, size)) in script.sends.iter().enumerate() {
        sim.with_node(node_id(from), |p, _| p.send(node_id(to), seq as u64, size))
            .unwrap();
    }
    assert!(sim.run_until_idle(Duration::from_secs(10)));
    sim
}

proptest! {
    #[test]
    fn deliveries_respect_the_model_and_every_message_is_accounted_for(script in script()) {
        let mut sim = run(&script);
        assert_conservation(&sim);
        let epoch = sim.epoch();
        let mut last = epoch;
        let mut deliveries = 0;
        let jitter = Duration::from_millis(script.jitter_ms);
        let events: Vec<_> = sim.drain_events().collect();
        for (at, to, got) in events {
            prop_assert!(at >= last, "time ran backwards");
            last = at;
            let link = sim.link_latency(&got.from, &to).unwrap();
            let min = Duration::from_millis(script.min_ms);
            let max = Duration::from_millis(script.min_ms + script.span_ms);
            prop_assert!(link >= min && link <= max);
            let took = at - epoch;
            prop_assert!(took >= link && took <= link + jitter, "{took:?} vs {link:?}");
            let (from, expected_to, _) = script.sends[usize::try_from(got.seq).unwrap()];
            prop_assert_eq!(got.from, node_id(from));
            prop_assert_eq!(to, node_id(expected_to));
            deliveries += 1;
        }
        let stats = sim.stats();
        prop_assert_eq!(stats.delivered.messages, deliveries);
        prop_assert_eq!(stats.sent.messages, script.sends.len() as u64);
        let bytes: usize = script.sends.iter().map(|s| s.2).sum();
        prop_assert_eq!(stats.sent.bytes, bytes as u64);
        if script.loss == 0.0 {
            prop_assert_eq!(deliveries, script.sends.len() as u64);
        }
    }

    #[test]
    fn a_seed_reproduces_its_run(script in script()) {
        let a = run(&script);
        let b = run(&script);
        prop_assert_eq!(a.trace_digest(), b.trace_digest());
        prop_assert_eq!(a.stats(), b.stats());
        prop_assert_eq!(a.elapsed(), b.elapsed());
    }
}
