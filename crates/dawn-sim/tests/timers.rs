//! Timers: exact firing, moving deadlines, past deadlines, idleness.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::Probe;
use dawn_sim::{Sim, SimConfig, node_id};

const MS: Duration = Duration::from_millis(1);

fn one(probe: Probe) -> Sim<Probe> {
    let mut sim = Sim::new(SimConfig::default()).unwrap();
    sim.add_node(node_id(0), probe).unwrap();
    sim
}

#[test]
fn a_periodic_timer_fires_exactly_on_its_deadlines() {
    let mut sim = one(Probe::new());
    let t0 = sim.now();
    sim.with_node(node_id(0), |p, now| {
        p.timer = Some(now + 100 * MS);
        p.period = Some(100 * MS);
    })
    .unwrap();
    sim.run_for(Duration::from_secs(1));
    let fired = &sim.node(&node_id(0)).unwrap().fired;
    assert_eq!(
        fired,
        &(1..=10).map(|k| t0 + k * 100 * MS).collect::<Vec<_>>()
    );
    assert_eq!(sim.stats().timeouts, 10);
    assert_eq!(
        sim.node_stats(&node_id(0)).unwrap().timeouts,
        10,
        "per-node count"
    );
    assert!(
        !sim.run_until_idle(Duration::from_secs(1)),
        "periodic never idles"
    );
    assert!(
        sim.run_until_quiet(Duration::from_secs(1)),
        "but nothing is in flight"
    );
}

#[test]
fn moving_a_deadline_earlier_fires_early_and_later_does_not_fire_early() {
    let mut sim = one(Probe::new());
    let a = node_id(0);
    let t0 = sim.now();
    sim.with_node(a, |p, now| p.timer = Some(now + Duration::from_secs(1)))
        .unwrap();
    sim.with_node(a, |p, now| p.timer = Some(now + 100 * MS))
        .unwrap();
    sim.run_for(200 * MS);
    assert_eq!(sim.node(&a).unwrap().fired, vec![t0 + 100 * MS]);

    let t1 = sim.now();
    sim.with_node(a, |p, now| p.timer = Some(now + 100 * MS))
        .unwrap();
    sim.with_node(a, |p, now| p.timer = Some(now + 500 * MS))
        .unwrap();
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        sim.node(&a).unwrap().fired,
        vec![t0 + 100 * MS, t1 + 500 * MS]
    );
    assert_eq!(sim.stats().timeouts, 2);
}

#[test]
fn clearing_a_deadline_cancels_it() {
    let mut sim = one(Probe::new());
    let a = node_id(0);
    sim.with_node(a, |p, now| p.timer = Some(now + 100 * MS))
        .unwrap();
    sim.with_node(a, |p, _| p.timer = None).unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    assert!(sim.node(&a).unwrap().fired.is_empty());
    assert_eq!(sim.stats().timeouts, 0);
}

#[test]
fn a_deadline_in_the_past_fires_at_once() {
    let mut sim = one(Probe::new());
    let a = node_id(0);
    sim.run_for(50 * MS);
    let now = sim.now();
    sim.with_node(a, |p, _| p.timer = Some(now - 30 * MS))
        .unwrap();
    assert!(sim.step());
    assert_eq!(sim.node(&a).unwrap().fired, vec![now]);
    assert_eq!(sim.now(), now);
}

#[test]
fn a_node_added_with_a_deadline_gets_its_timer() {
    let mut sim: Sim<Probe> = Sim::new(SimConfig::default()).unwrap();
    let first = sim.now() + 10 * MS;
    sim.add_node(node_id(0), Probe::periodic(first, 10 * MS))
        .unwrap();
    sim.run_for(35 * MS);
    assert_eq!(sim.node(&node_id(0)).unwrap().fired.len(), 3);
}

#[test]
fn idle_and_step_report_an_empty_queue() {
    let mut sim = one(Probe::new());
    assert!(!sim.step());
    assert_eq!(sim.next_event_at(), None);
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    assert_eq!(
        sim.elapsed(),
        Duration::ZERO,
        "idle at once: the clock did not move"
    );
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sim.elapsed(), Duration::from_secs(3));
}
