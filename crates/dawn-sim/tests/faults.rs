//! Partitions, crashes, restarts, churn and scheduled actions.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use common::{Probe, assert_conservation};
use dawn_sim::{
    Action, Churn, Flood, LatencyModel, Sim, SimConfig, SimError, node_id, ring_with_chords,
};

const MS: Duration = Duration::from_millis(1);

fn fixed(n: u64) -> Sim<Probe> {
    let config = SimConfig {
        latency: LatencyModel::Fixed(10 * MS),
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config).unwrap();
    for i in 0..n {
        sim.add_node(node_id(i), Probe::labelled(i)).unwrap();
    }
    sim
}

fn received(sim: &Sim<Probe>, i: u64) -> Vec<u64> {
    sim.node(&node_id(i))
        .map(|p| p.received.iter().map(|g| g.seq).collect())
        .unwrap_or_default()
}

#[test]
fn partition_drops_across_groups_until_healed() {
    let mut sim = fixed(4);
    let [a, b, c, d] = [0, 1, 2, 3].map(node_id);
    sim.partition(&[vec![a, b], vec![c]]).unwrap();
    assert!(!sim.is_partitioned(&a, &b).unwrap());
    assert!(sim.is_partitioned(&a, &c).unwrap());
    assert!(
        sim.is_partitioned(&c, &d).unwrap(),
        "d is in the group of the unlisted"
    );
    sim.with_node(a, |p, _| {
        p.send(b, 1, 10);
        p.send(c, 2, 20);
        p.send(d, 3, 30);
    })
    .unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    assert_eq!(received(&sim, 1), vec![1]);
    assert!(received(&sim, 2).is_empty());
    assert!(received(&sim, 3).is_empty());
    let stats = sim.node_stats(&a).unwrap();
    assert_eq!(stats.dropped_partition.messages, 2);
    assert_eq!(stats.dropped_partition.bytes, 50);

    sim.heal();
    assert!(!sim.is_partitioned(&a, &c).unwrap());
    sim.with_node(a, |p, _| p.send(c, 4, 10)).unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    assert_eq!(received(&sim, 2), vec![4]);
    assert_conservation(&sim);
}

#[test]
fn a_partition_loses_messages_already_in_flight_across_it() {
    let mut sim = fixed(2);
    let [a, b] = [0, 1].map(node_id);
    sim.with_node(a, |p, _| p.send(b, 1, 10)).unwrap();
    let at = sim.now() + 5 * MS;
    sim.schedule(at, Action::Partition(vec![vec![a]])).unwrap();
    sim.schedule(at + 100 * MS, Action::Heal).unwrap();
    sim.run_for(50 * MS);
    assert!(received(&sim, 1).is_empty());
    assert_eq!(sim.stats().dropped_partition.messages, 1);
    sim.run_for(100 * MS);
    assert!(!sim.is_partitioned(&a, &b).unwrap());
}

#[test]
fn flood_during_a_partition_reaches_one_side_only() {
    let mut sim: Sim<Flood> = Sim::new(SimConfig::default()).unwrap();
    let n = 100;
    let ids: Vec<_> = (0..n).map(node_id).collect();
    let graph = ring_with_chords(ids.len(), 2, sim.rng());
    for (id, peers) in ids.iter().zip(&graph) {
        sim.add_node(*id, Flood::new(peers.iter().map(|&p| ids[p]).collect()))
            .unwrap();
    }
    // The ring keeps each half connected within itself.
    let (left, right) = ids.split_at(50);
    sim.partition(&[left, right]).unwrap();
    sim.with_node(ids[0], |p, _| p.broadcast(1, 100)).unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(10)));
    let seen = |sim: &Sim<Flood>, id: u64| {
        ids.iter()
            .filter(|n| sim.node(n).unwrap().has_seen(id))
            .count()
    };
    assert_eq!(seen(&sim, 1), 50);
    assert!(left.iter().all(|n| sim.node(n).unwrap().has_seen(1)));
    assert!(sim.stats().dropped_partition.messages > 0);

    sim.heal();
    sim.with_node(ids[99], |p, _| p.broadcast(2, 100)).unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(10)));
    assert_eq!(seen(&sim, 2), 100);
}

#[test]
fn partition_refuses_unknown_and_overlapping_nodes_and_changes_nothing() {
    let mut sim = fixed(3);
    let [a, b, c] = [0, 1, 2].map(node_id);
    sim.partition(&[vec![a]]).unwrap();
    let err = sim.partition(&[vec![b, c], vec![c]]).unwrap_err();
    assert_eq!(err, SimError::PartitionOverlap(Box::new(c)));
    let err = sim.partition(&[vec![node_id(9)]]).unwrap_err();
    assert_eq!(err, SimError::UnknownNode(Box::new(node_id(9))));
    // The earlier partition is still in force.
    assert!(sim.is_partitioned(&a, &b).unwrap());
    assert!(!sim.is_partitioned(&b, &c).unwrap());
    // Listing a node twice in the same group is harmless.
    sim.partition(&[vec![a, a]]).unwrap();
}

#[test]
fn crash_drops_state_and_loses_messages_in_flight_even_across_a_restart() {
    let mut sim = fixed(2);
    let [a, b] = [0, 1].map(node_id);
    sim.with_node(a, |p, _| p.send(b, 1, 10)).unwrap();
    sim.run_for(2 * MS);
    assert!(sim.crash(b).unwrap());
    assert!(!sim.crash(b).unwrap(), "already down");
    assert!(!sim.is_up(&b));
    assert!(sim.node(&b).is_none());
    assert!(matches!(
        sim.with_node(b, |_, _| ()),
        Err(SimError::NodeDown(id)) if *id == b
    ));
    // Sent while b is down: dropped at once.
    sim.with_node(a, |p, _| p.send(b, 2, 10)).unwrap();
    sim.run_for(2 * MS);
    sim.restart(b, Probe::labelled(100)).unwrap();
    assert!(sim.is_up(&b));
    assert_eq!(sim.node(&b).unwrap().label, 100);
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    // The first message was in flight to the old incarnation: lost.
    assert!(received(&sim, 1).is_empty());
    assert_eq!(sim.node_stats(&a).unwrap().dropped_down.messages, 2);
    sim.with_node(a, |p, _| p.send(b, 3, 10)).unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    assert_eq!(received(&sim, 1), vec![3]);
    assert_conservation(&sim);
}

#[test]
fn a_crashed_nodes_timer_never_fires_and_a_restarted_one_runs_its_own() {
    let mut sim = fixed(1);
    let a = node_id(0);
    let t0 = sim.now();
    sim.restart(a, Probe::periodic(t0 + 100 * MS, 100 * MS))
        .unwrap();
    sim.run_for(250 * MS);
    assert_eq!(sim.node(&a).unwrap().fired.len(), 2);
    sim.crash(a).unwrap();
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.stats().timeouts, 2);
    let restart_at = sim.now();
    sim.restart(a, Probe::periodic(restart_at + 30 * MS, 1000 * MS))
        .unwrap();
    sim.run_for(100 * MS);
    assert_eq!(sim.node(&a).unwrap().fired, vec![restart_at + 30 * MS]);
    assert_eq!(sim.stats().timeouts, 3);
}

#[test]
fn restarting_a_running_node_replaces_it() {
    let mut sim = fixed(2);
    let [a, b] = [0, 1].map(node_id);
    sim.with_node(a, |p, _| p.send(b, 1, 10)).unwrap();
    sim.restart(b, Probe::labelled(7)).unwrap();
    assert!(sim.run_until_idle(Duration::from_secs(1)));
    assert_eq!(sim.node(&b).unwrap().label, 7);
    assert!(
        received(&sim, 1).is_empty(),
        "the message was for the old instance"
    );
}

#[test]
fn scheduled_actions_run_at_their_time_in_order() {
    let mut sim = fixed(2);
    let [a, b] = [0, 1].map(node_id);
    let t0 = sim.now();
    sim.schedule(
        t0 + 100 * MS,
        Action::input(a, move |p: &mut Probe, _| p.send(b, 1, 10)),
    )
    .unwrap();
    sim.schedule(t0 + 200 * MS, Action::Crash(b)).unwrap();
    sim.schedule(
        t0 + 300 * MS,
        Action::restart_with(b, |_, now| Probe::periodic(now + 5 * MS, 1000 * MS)),
    )
    .unwrap();
    sim.schedule(t0 + 300 * MS, Action::SetLoss(1.0)).unwrap();
    sim.schedule(
        t0 + 400 * MS,
        Action::input(a, move |p: &mut Probe, _| p.send(b, 2, 10)),
    )
    .unwrap();
    sim.schedule(t0 + 500 * MS, Action::Restart(a, Probe::labelled(5)))
        .unwrap();
    // Input for a node that is down when its time comes is skipped.
    sim.schedule(
        t0 + 250 * MS,
        Action::input(b, |p: &mut Probe, _| p.label = 1),
    )
    .unwrap();

    sim.run_until(t0 + 150 * MS);
    assert_eq!(received(&sim, 1), vec![1]);
    assert_eq!(sim.node(&b).unwrap().received[0].at, t0 + 110 * MS);
    sim.run_until(t0 + 200 * MS);
    assert!(!sim.is_up(&b));
    sim.run_until(t0 + 350 * MS);
    assert!(sim.is_up(&b));
    assert_eq!(sim.node(&b).unwrap().fired, vec![t0 + 305 * MS]);
    assert_eq!(sim.node(&b).unwrap().label, 0);
    assert_eq!(sim.config().loss, 1.0);
    sim.run_until(t0 + 600 * MS);
    assert_eq!(sim.stats().dropped_loss.messages, 1);
    assert_eq!(sim.node(&a).unwrap().label, 5);
    assert_eq!(sim.now(), t0 + 600 * MS);
}

#[test]
fn schedule_validates_before_queueing() {
    let mut sim = fixed(1);
    let now = sim.now();
    let pending = sim.pending();
    assert!(matches!(
        sim.schedule(now, Action::Crash(node_id(5))),
        Err(SimError::UnknownNode(_))
    ));
    assert!(matches!(
        sim.schedule(now, Action::SetLoss(-1.0)),
        Err(SimError::Config(_))
    ));
    assert!(matches!(
        sim.schedule(
            now,
            Action::Partition(vec![vec![node_id(0)], vec![node_id(0)]])
        ),
        Err(SimError::PartitionOverlap(_))
    ));
    assert_eq!(sim.pending(), pending);
    // A time in the past runs now.
    sim.run_for(MS * 10);
    sim.schedule(now, Action::Crash(node_id(0))).unwrap();
    assert_eq!(sim.next_event_at(), Some(sim.now()));
    assert!(sim.step());
    assert!(!sim.is_up(&node_id(0)));
}

#[test]
fn churn_crashes_the_planned_nodes_and_restarts_them_from_the_factory() {
    let mut sim = fixed(100);
    let built = Rc::new(Cell::new(0u64));
    let counter = Rc::clone(&built);
    let churn = Churn {
        start: Duration::from_secs(1),
        exclude: vec![node_id(0)],
        ..Churn::new(
            0.3,
            Duration::from_secs(10),
            Duration::from_secs(1)..=Duration::from_secs(2),
        )
    };
    let t0 = sim.now();
    let plan = sim
        .schedule_churn(&churn, move |_, _| {
            counter.set(counter.get() + 1);
            Probe::labelled(1000)
        })
        .unwrap();
    // 30% of the 99 eligible nodes.
    assert_eq!(plan.len(), 30);
    assert!(plan.iter().all(|e| e.node != node_id(0)));
    let distinct: std::collections::BTreeSet<_> = plan.iter().map(|e| e.node).collect();
    assert_eq!(distinct.len(), 30);
    for event in &plan {
        assert!(event.crash_at >= t0 + Duration::from_secs(1));
        assert!(event.crash_at <= t0 + Duration::from_secs(11));
        let down = event.restart_at.unwrap() - event.crash_at;
        assert!((Duration::from_secs(1)..=Duration::from_secs(2)).contains(&down));
    }
    // Halfway through one node's downtime it is down; after all restarts everyone is up.
    let first = plan[0];
    sim.run_until(first.crash_at + (first.restart_at.unwrap() - first.crash_at) / 2);
    assert!(!sim.is_up(&first.node));
    sim.run_until(t0 + Duration::from_secs(14));
    assert_eq!(built.get(), 30);
    assert!(sim.node_ids().iter().all(|id| sim.is_up(id)));
    let restarted = sim
        .nodes()
        .filter(|(_, p)| p.is_some_and(|p| p.label == 1000))
        .count();
    assert_eq!(restarted, 30);
}

#[test]
fn churn_without_downtime_leaves_nodes_down_and_is_seeded() {
    let plan_for = |seed| {
        let config = SimConfig {
            seed,
            ..SimConfig::default()
        };
        let mut sim: Sim<Probe> = Sim::new(config).unwrap();
        for i in 0..50 {
            sim.add_node(node_id(i), Probe::new()).unwrap();
        }
        let churn = Churn {
            downtime: None,
            ..Churn::new(0.5, Duration::from_secs(5), Duration::ZERO..=Duration::ZERO)
        };
        let plan = sim.schedule_churn(&churn, |_, _| Probe::new()).unwrap();
        let epoch = sim.epoch();
        sim.run_for(Duration::from_secs(60));
        let down = sim.node_ids().iter().filter(|id| !sim.is_up(id)).count();
        assert_eq!(down, 25);
        assert!(plan.iter().all(|e| e.restart_at.is_none()));
        plan.iter()
            .map(|e| (e.node, e.crash_at - epoch))
            .collect::<Vec<_>>()
    };
    assert_eq!(plan_for(1), plan_for(1));
    assert_ne!(plan_for(1), plan_for(2));
}

#[test]
fn churn_refuses_bad_parameters() {
    let mut sim = fixed(2);
    let bad = Churn::new(2.0, Duration::ZERO, Duration::ZERO..=Duration::ZERO);
    assert!(matches!(
        sim.schedule_churn(&bad, |_, _| Probe::new()),
        Err(SimError::Config(_))
    ));
    let unknown = Churn {
        exclude: vec![node_id(3)],
        ..Churn::new(0.5, Duration::ZERO, Duration::ZERO..=Duration::ZERO)
    };
    assert!(matches!(
        sim.schedule_churn(&unknown, |_, _| Probe::new()),
        Err(SimError::UnknownNode(_))
    ));
    assert_eq!(sim.pending(), 0);
}
