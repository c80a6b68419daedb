//! What reconciliation costs: two nodes share a directory of `n` owners (one agent each);
//! `d` owners then change while only one of the two hears about it. The other catches up by
//! reconciliation alone, and the bytes it takes grow with `d` (and slowly with `n`), far below
//! a whole-state transfer.
//!
//! `cargo test -p dawn-registry --test reconcile -- --nocapture` prints the table that the
//! README quotes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Instant;

use bytes::Bytes;
use dawn_identity::NodeId;
use dawn_registry::{
    AgentRecord, MessageKind, Registry, RegistryConfig, ToolSummary, Transmit, VerifyMemo,
};

const UNIX_MS: u64 = 1_700_000_000_000;

fn record(version: u64) -> AgentRecord {
    let mut r = AgentRecord::new("agent".parse().unwrap(), "An agent");
    r.description = format!("an agent of the mesh, version {version}");
    r.tools.push(ToolSummary {
        name: "run".into(),
        description: "does its job".into(),
    });
    r.version = version;
    r
}

/// The broadcast of one owner's new record.
fn delta(owner: &mut Registry, now: Instant, version: u64) -> Bytes {
    owner.upsert_local(now, record(version)).unwrap();
    match owner.poll_transmit() {
        Some(Transmit::Broadcast { payload }) => payload,
        other => panic!("expected a broadcast, got {other:?}"),
    }
}

/// What one reconciliation moved.
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    messages: usize,
    reconcile_bytes: usize,
    update_bytes: usize,
}

impl Cost {
    const fn total(self) -> usize {
        self.reconcile_bytes + self.update_bytes
    }
}

/// Delivers what `from` has to send to `to`; returns whether anything moved.
fn pump(from: &mut Registry, to: &mut Registry, now: Instant, cost: &mut Cost) -> bool {
    let id: NodeId = *from.node_id();
    let mut moved = false;
    while let Some(t) = from.poll_transmit() {
        let Transmit::Send { payload, .. } = t else {
            continue;
        };
        moved = true;
        cost.messages += 1;
        match MessageKind::of(&payload) {
            Some(MessageKind::Updates) => cost.update_bytes += payload.len(),
            _ => cost.reconcile_bytes += payload.len(),
        }
        to.handle_bytes(now, id, &payload).unwrap();
    }
    moved
}

/// One reconciliation started by `a`, carried until nothing is left to send.
fn reconcile(a: &mut Registry, b: &mut Registry, now: Instant) -> Cost {
    let mut cost = Cost::default();
    a.peer_up(now, *b.node_id());
    while pump(a, b, now, &mut cost) | pump(b, a, now, &mut cost) {}
    cost
}

/// Runs the experiment for `n` owners of which `d` change; returns the cost and the size of
/// a whole-state transfer.
fn measure(n: usize, d: usize) -> (Cost, usize) {
    let now = Instant::now();
    let memo = VerifyMemo::new(1 << 20);
    let node = |seed: u8| {
        Registry::new(
            dawn_crypto::SigningKey::from_bytes(&[seed; 32]),
            RegistryConfig::default(),
            u64::from(seed),
            now,
            UNIX_MS,
        )
        .unwrap()
        .with_verify_memo(memo.clone())
    };
    let mut a = node(1);
    let mut b = node(2);
    let mut owners: Vec<Registry> = (0..n as u64)
        .map(|i| {
            Registry::new(
                dawn_sim::signing_key(i),
                RegistryConfig::default(),
                i,
                now,
                UNIX_MS,
            )
            .unwrap()
        })
        .collect();
    for owner in &mut owners {
        let bytes = delta(owner, now, 1);
        let id = *owner.node_id();
        a.handle_bytes(now, id, &bytes).unwrap();
        b.handle_bytes(now, id, &bytes).unwrap();
    }
    assert_eq!(a.state_digest(), b.state_digest());
    // `d` owners, spread over the key space, change; only b hears of it.
    for owner in owners.iter_mut().step_by(n / d).take(d) {
        let bytes = delta(owner, now, 2);
        b.handle_bytes(now, *owner.node_id(), &bytes).unwrap();
    }
    assert_ne!(a.state_digest(), b.state_digest());
    let whole = b.export_state().unwrap().len();
    let cost = reconcile(&mut a, &mut b, now);
    assert_eq!(
        a.state_digest(),
        b.state_digest(),
        "n={n} d={d}: not converged"
    );
    (cost, whole)
}

#[test]
fn reconciliation_bytes_follow_the_difference_not_the_directory() {
    let mut rows = Vec::new();
    for (n, d) in [
        (1000, 1),
        (1000, 10),
        (1000, 100),
        (10_000, 1),
        (10_000, 10),
        (10_000, 100),
    ] {
        let (cost, whole) = measure(n, d);
        println!(
            "owners={n:>6} changed={d:>3} messages={:>3} reconcile_bytes={:>6} update_bytes={:>6} \
             total={:>6} per_change={:>5} whole_state={:>8} ratio={:.4}",
            cost.messages,
            cost.reconcile_bytes,
            cost.update_bytes,
            cost.total(),
            cost.total() / d,
            whole,
            cost.total() as f64 / whole as f64,
        );
        rows.push((n, d, cost, whole));
    }
    let total = |n, d| {
        rows.iter()
            .find(|r| r.0 == n && r.1 == d)
            .map(|r| r.2.total())
            .unwrap()
    };
    for n in [1000, 10_000] {
        // A hundred times the difference costs well under a hundred times the bytes (the
        // fingerprints are shared), and at least ten times (every change is sent).
        let ratio = total(n, 100) as f64 / total(n, 1) as f64;
        assert!((10.0..100.0).contains(&ratio), "n={n}: ratio {ratio}");
    }
    for d in [1, 10, 100] {
        // Ten times the directory costs at most about twice the bytes (one more level of
        // fingerprints), not ten times.
        let ratio = total(10_000, d) as f64 / total(1000, d) as f64;
        assert!(ratio < 2.5, "d={d}: ratio {ratio}");
    }
    for (n, d, cost, whole) in &rows {
        assert!(
            cost.total() < whole / 4,
            "n={n} d={d}: {} of {whole}",
            cost.total()
        );
    }
}
