//! Property tests through the public API: records survive the wire unchanged, lost deltas
//! are repaired by reconciliation so every replica converges to the owners' own agents, and
//! no input makes a decoder panic or break its promises.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use dawn_crypto::SigningKey;
use dawn_identity::{AgentId, NodeId};
use dawn_registry::{
    AgentRecord, MAX_DESCRIPTION_LEN, MAX_NAME_LEN, MAX_SUMMARY_DESCRIPTION_LEN,
    MAX_SUMMARY_NAME_LEN, MAX_URI_LEN, PromptSummary, Registry, RegistryConfig, ResourceSummary,
    ToolSummary, Transmit, fuzz_decode,
};
use proptest::prelude::*;

const UNIX_MS: u64 = 1_700_000_000_000;

fn registry(seed: u8, now: Instant) -> Registry {
    Registry::new(
        SigningKey::from_bytes(&[seed; 32]),
        RegistryConfig::default(),
        u64::from(seed),
        now,
        UNIX_MS,
    )
    .unwrap()
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::string::string_regex(&format!("(?s).{{0,{}}}", max.min(40)))
        .unwrap()
        .prop_filter("within bound", move |s| s.len() <= max)
}

fn record() -> impl Strategy<Value = AgentRecord> {
    let pair = |a, b| (text(a), text(b));
    (
        "[a-z0-9][a-z0-9._-]{0,20}",
        text(MAX_NAME_LEN),
        text(MAX_DESCRIPTION_LEN),
        prop::collection::vec(
            pair(MAX_SUMMARY_NAME_LEN, MAX_SUMMARY_DESCRIPTION_LEN),
            0..4,
        ),
        prop::collection::vec(pair(MAX_URI_LEN, MAX_SUMMARY_NAME_LEN), 0..4),
        prop::collection::vec(
            pair(MAX_SUMMARY_NAME_LEN, MAX_SUMMARY_DESCRIPTION_LEN),
            0..4,
        ),
        any::<u64>(),
    )
        .prop_map(
            |(id, name, description, tools, resources, prompts, version)| AgentRecord {
                agent_id: id.parse().unwrap(),
                name,
                description,
                tools: tools
                    .into_iter()
                    .map(|(name, description)| ToolSummary { name, description })
                    .collect(),
                resources: resources
                    .into_iter()
                    .map(|(uri, name)| ResourceSummary { uri, name })
                    .collect(),
                prompts: prompts
                    .into_iter()
                    .map(|(name, description)| PromptSummary { name, description })
                    .collect(),
                version,
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(usize, u8, u8),
    Remove(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 0..4u8, any::<u8>()).prop_map(|(o, a, v)| Op::Upsert(o, a, v)),
        2 => (0..3usize, 0..4u8).prop_map(|(o, a)| Op::Remove(o, a)),
    ]
}

fn agent(a: u8) -> AgentId {
    format!("agent{a}").parse().unwrap()
}

/// Carries sends between the registries until none is left; broadcasts are dropped.
fn reconcile_all(nodes: &mut [Registry], now: Instant) {
    for _ in 0..200 {
        let mut moved = false;
        for i in 0..nodes.len() {
            let from = *nodes[i].node_id();
            let out: Vec<(NodeId, Bytes)> = std::iter::from_fn(|| nodes[i].poll_transmit())
                .filter_map(|t| match t {
                    Transmit::Send { to, payload } => Some((to, payload)),
                    _ => None,
                })
                .collect();
            for (to, payload) in out {
                moved = true;
                let target = nodes.iter_mut().find(|n| *n.node_id() == to).unwrap();
                target.handle_bytes(now, from, &payload).unwrap();
            }
        }
        if !moved {
            return;
        }
    }
    panic!("reconciliation did not finish");
}

fn directory(r: &Registry) -> BTreeMap<(NodeId, String), AgentRecord> {
    r.agents()
        .map(|(owner, rec)| ((owner, rec.agent_id.to_string()), rec.clone()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any record within the bounds reaches a peer exactly as its owner wrote it.
    #[test]
    fn records_cross_the_wire_unchanged(record in record()) {
        let now = Instant::now();
        let mut a = registry(1, now);
        let mut b = registry(2, now);
        record.validate().unwrap();
        a.upsert_local(now, record.clone()).unwrap();
        while let Some(t) = a.poll_transmit() {
            b.handle_bytes(now, *a.node_id(), t.payload()).unwrap();
        }
        let addr = dawn_identity::AgentAddr::new(*a.node_id(), record.agent_id.clone());
        prop_assert_eq!(b.get(&addr), Some(&record));
        // And through a stored state.
        let mut c = registry(3, now);
        c.import_state(now, &b.export_state().unwrap()).unwrap();
        prop_assert_eq!(c.get(&addr), Some(&record));
    }

    /// Three owners change their agents; each of three other replicas hears an arbitrary
    /// subset of the broadcasts. After every node reconciles with one other, all six hold
    /// the same directory: exactly each owner's own agents.
    #[test]
    fn lost_deltas_are_repaired_and_everyone_converges(
        ops in prop::collection::vec(op(), 1..14),
        heard in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let now = Instant::now();
        let mut nodes: Vec<Registry> = (1..=6).map(|seed| registry(seed, now)).collect();
        let mut heard = heard.into_iter().cycle();
        for op in &ops {
            let (o, result) = match op {
                Op::Upsert(o, a, v) => {
                    let mut r = AgentRecord::new(agent(*a), "n");
                    r.description = format!("v{v}");
                    (*o, nodes[*o].upsert_local(now, r).map(drop))
                }
                Op::Remove(o, a) => (*o, nodes[*o].remove_local(now, &agent(*a)).map(drop)),
            };
            result.unwrap();
            let from = *nodes[o].node_id();
            let out: Vec<Bytes> = std::iter::from_fn(|| nodes[o].poll_transmit())
                .map(|t| t.payload().clone())
                .collect();
            for payload in out {
                for replica in &mut nodes[3..] {
                    if heard.next().unwrap_or(0) % 2 == 0 {
                        replica.handle_bytes(now, from, &payload).unwrap();
                    }
                }
            }
        }
        // A ring of reconciliation partners.
        for i in 0..6 {
            let next = *nodes[(i + 1) % 6].node_id();
            nodes[i].peer_up(now, next);
        }
        reconcile_all(&mut nodes, now);
        // One more pass: what node i learned from i + 1 reaches i - 1.
        for i in 0..6 {
            let next = *nodes[(i + 1) % 6].node_id();
            nodes[i].peer_up(now, next);
        }
        reconcile_all(&mut nodes, now);
        for _ in 0..4 {
            for i in 0..6 {
                let next = *nodes[(i + 1) % 6].node_id();
                nodes[i].peer_down(&next);
                nodes[i].peer_up(now, next);
            }
            reconcile_all(&mut nodes, now);
        }
        let mut truth = BTreeMap::new();
        for owner in &nodes[..3] {
            for rec in owner.local_agents() {
                truth.insert((*owner.node_id(), rec.agent_id.to_string()), rec.clone());
            }
        }
        for node in &nodes {
            prop_assert_eq!(directory(node), truth.clone());
            prop_assert_eq!(node.state_digest(), nodes[0].state_digest());
        }
    }

    /// Arbitrary bytes: the decoders never panic and keep their promises.
    #[test]
    fn arbitrary_bytes_never_break_a_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzz_decode(&bytes).unwrap();
        let mut framed = vec![1, 0x02, bytes.first().copied().unwrap_or(0) % 3];
        framed.extend_from_slice(&bytes);
        fuzz_decode(&framed).unwrap();
    }

    /// Valid messages with bytes changed, cut or appended: still no broken promise, and a
    /// registry never accepts an altered record.
    #[test]
    fn mutated_messages_never_break_a_decoder(
        which in 0..4usize,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let messages = sample_messages();
        let original = messages[which % messages.len()].clone();
        let mut bytes = original.to_vec();
        for (at, value) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *value;
        }
        fuzz_decode(&bytes).unwrap();
        fuzz_decode(&bytes[..cut.index(bytes.len() + 1)]).unwrap();
        let now = Instant::now();
        let owner = *registry(1, now).node_id();
        let mut b = registry(9, now);
        let _ = b.handle_bytes(now, owner, &Bytes::from(bytes));
        for (_, rec) in b.agents() {
            prop_assert_eq!(rec.description.as_str(), "original");
        }
    }
}

/// A delta, a reconciliation step, an update push and a stored state.
fn sample_messages() -> Vec<Bytes> {
    let now = Instant::now();
    let mut a = registry(1, now);
    let mut b = registry(2, now);
    let mut r = AgentRecord::new("echo".parse().unwrap(), "Echo");
    r.description = "original".into();
    a.upsert_local(now, r).unwrap();
    let delta = a.poll_transmit().unwrap().payload().clone();
    a.peer_up(now, *b.node_id());
    let round0 = a.poll_transmit().unwrap().payload().clone();
    b.handle_bytes(now, *a.node_id(), &round0).unwrap();
    let items = b.poll_transmit().unwrap().payload().clone();
    a.handle_bytes(now, *b.node_id(), &items).unwrap();
    let updates = a.poll_transmit().unwrap().payload().clone();
    vec![
        delta,
        round0,
        updates,
        Bytes::from(a.export_state().unwrap()),
    ]
}
