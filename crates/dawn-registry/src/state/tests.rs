//! The CRDT laws, checked with proptest on deltas from real owners: join is commutative,
//! associative and idempotent; every delivery order of every delta converges to the state of
//! the owners' final agents; removals are never lost.

use std::collections::BTreeMap;
use std::time::Instant;

use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use proptest::prelude::*;

use super::{Directory, Limits};
use crate::message::{RegistryMessage, Update};
use crate::record::AgentRecord;
use crate::registry::Registry;
use crate::{RegistryConfig, Transmit};

const UNIX_MS: u64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// Owner, agent, a byte that changes the record.
    Upsert(usize, u8, u8),
    /// Owner, agent.
    Remove(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 0..4u8, any::<u8>()).prop_map(|(o, a, v)| Op::Upsert(o, a, v)),
        2 => (0..3usize, 0..4u8).prop_map(|(o, a)| Op::Remove(o, a)),
    ]
}

/// Runs the ops on three owners and returns every delta they broadcast, in order, and each
/// owner's final agents as `agent id -> description`.
fn run_owners(ops: &[Op]) -> (Vec<Update>, BTreeMap<NodeId, BTreeMap<String, String>>) {
    let now = Instant::now();
    let mut owners: Vec<Registry> = (0..3u8)
        .map(|i| {
            Registry::new(
                SigningKey::from_bytes(&[i + 1; 32]),
                RegistryConfig::default(),
                u64::from(i),
                now,
                UNIX_MS,
            )
            .unwrap()
        })
        .collect();
    let mut deltas = Vec::new();
    for op in ops {
        let (o, result) = match op {
            Op::Upsert(o, a, v) => {
                let mut record = AgentRecord::new(format!("agent{a}").parse().unwrap(), "n");
                record.description = format!("v{v}");
                (*o, owners[*o].upsert_local(now, record).map(drop))
            }
            Op::Remove(o, a) => (
                *o,
                owners[*o]
                    .remove_local(now, &format!("agent{a}").parse().unwrap())
                    .map(drop),
            ),
        };
        result.unwrap();
        while let Some(t) = owners[o].poll_transmit() {
            if let Transmit::Broadcast { payload } = t {
                match RegistryMessage::decode(&payload).unwrap() {
                    RegistryMessage::Delta(update) => deltas.push(*update),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }
    let finals = owners
        .iter()
        .map(|r| {
            let agents = r
                .local_agents()
                .map(|rec| (rec.agent_id.to_string(), rec.description.clone()))
                .collect();
            (*r.node_id(), agents)
        })
        .collect();
    (deltas, finals)
}

fn deliver(deltas: &[Update], order: &[usize]) -> Directory {
    let mut dir = Directory::default();
    for &i in order {
        let update = &deltas[i % deltas.len()];
        dir.merge(
            update.manifest.clone(),
            &update.entries,
            false,
            Limits::UNLIMITED,
        );
    }
    dir
}

fn join(a: &Directory, b: &Directory) -> Directory {
    let mut out = a.clone();
    out.join(b, Limits::UNLIMITED);
    out
}

/// The visible agents of every owner.
fn visible(dir: &Directory) -> BTreeMap<NodeId, BTreeMap<String, String>> {
    dir.owners()
        .values()
        .map(|s| {
            let agents = s
                .agents()
                .map(|r| (r.agent_id.to_string(), r.description.clone()))
                .collect();
            (*s.owner(), agents)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Three replicas, each given an arbitrary selection of the deltas in an arbitrary order
    /// (duplicates allowed): join is commutative, associative and idempotent.
    #[test]
    fn join_is_commutative_associative_idempotent(
        ops in prop::collection::vec(op(), 1..16),
        picks in prop::collection::vec(prop::collection::vec(any::<usize>(), 0..20), 3),
    ) {
        let (deltas, _) = run_owners(&ops);
        prop_assume!(!deltas.is_empty());
        let a = deliver(&deltas, &picks[0]);
        let b = deliver(&deltas, &picks[1]);
        let c = deliver(&deltas, &picks[2]);
        prop_assert_eq!(join(&a, &b), join(&b, &a));
        prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
        prop_assert_eq!(join(&a, &a), a.clone());
        // Joining a state into one that already includes it changes nothing.
        let ab = join(&a, &b);
        prop_assert_eq!(join(&ab, &a), ab);
    }

    /// Every delivery order of all the deltas (with duplicates) ends in the same state, and
    /// that state shows exactly each owner's final agents: no removal is lost and nothing
    /// removed comes back.
    #[test]
    fn every_delivery_order_converges_to_the_owners_state(
        ops in prop::collection::vec(op(), 1..20),
        shuffles in prop::collection::vec(any::<u64>(), 3),
        extra in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let (deltas, finals) = run_owners(&ops);
        prop_assume!(!deltas.is_empty());
        let mut states = Vec::new();
        for seed in &shuffles {
            let mut order: Vec<usize> = (0..deltas.len()).collect();
            order.extend(extra.iter().map(|e| e % deltas.len()));
            let mut rng = crate::rng::Rng::new(*seed);
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            states.push(deliver(&deltas, &order));
        }
        prop_assert_eq!(&states[0], &states[1]);
        prop_assert_eq!(&states[1], &states[2]);
        // Owners that never published anything are absent; the others show their agents.
        let expected: BTreeMap<_, _> = finals.into_iter().filter(|(_, m)| !m.is_empty()).collect();
        let got: BTreeMap<_, _> =
            visible(&states[0]).into_iter().filter(|(_, m)| !m.is_empty()).collect();
        prop_assert_eq!(got, expected);
        for state in states[0].owners().values() {
            prop_assert!(state.missing().is_empty());
        }
    }
}

/// The rust-crdt pitfall (issue 160): a removal that arrives before the add it removes must
/// not be lost when the add arrives later.
#[test]
fn removal_delivered_before_its_add_is_kept() {
    let ops = [Op::Upsert(0, 1, 7), Op::Remove(0, 1)];
    let (deltas, _) = run_owners(&ops);
    assert_eq!(deltas.len(), 2);
    let dir = deliver(&deltas, &[1, 0]);
    assert!(visible(&dir).values().all(BTreeMap::is_empty));
    // And the add's entry is not even kept: the removal's context covers it.
    let state = dir.owners().values().next().unwrap();
    assert_eq!(state.slots().count(), 0);
    assert!(state.missing().is_empty());
}

/// Re-adding a removed agent takes a fresh dot, so the re-add wins over the removal in any
/// order (add wins).
#[test]
fn re_add_after_remove_wins_in_any_order() {
    let ops = [Op::Upsert(0, 1, 1), Op::Remove(0, 1), Op::Upsert(0, 1, 2)];
    let (deltas, _) = run_owners(&ops);
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
        let dir = deliver(&deltas, &order);
        let v = visible(&dir);
        let agents = v.values().next().unwrap();
        assert_eq!(
            agents.get("agent1").map(String::as_str),
            Some("v2"),
            "{order:?}"
        );
    }
}
