//! Property tests: encodings round trip, decoders survive arbitrary bytes, any byte changed in
//! a long chain is found at its entry, the trust table's invariants hold under any sequence of
//! inputs, and deny rules always win.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use dawn_crypto::SigningKey;
use dawn_identity::{AgentId, NodeId};
use dawn_trust::{
    Assignment, AuditChain, AuditEntry, AuditKind, ChainHead, DecisionReason, MAX_AUDIT_ENTRY_LEN,
    Observation, PeerSnapshot, Permission, Policy, PolicyConfig, Request, RuleConfig, RuleList,
    Subject, TrustConfig, TrustLevel, TrustTable, verify_chain,
};
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn node(seed: u8) -> NodeId {
    key(seed).verifying_key().into()
}

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 32]>().prop_map(|seed| SigningKey::from_bytes(&seed).verifying_key().into())
}

fn agent_id() -> impl Strategy<Value = AgentId> {
    "[a-z0-9][a-z0-9._-]{0,63}".prop_map(|s| s.parse().unwrap())
}

fn subject() -> impl Strategy<Value = Subject> {
    (
        proptest::option::of(node_id()),
        proptest::option::of(agent_id()),
        proptest::option::of(".{0,150}"),
    )
        .prop_map(|(peer, agent, tool)| {
            let mut subject = Subject::none();
            if let Some(peer) = peer {
                subject = subject.with_peer(peer);
            }
            if let Some(agent) = agent {
                subject = subject.with_agent(agent);
            }
            if let Some(tool) = tool {
                subject = subject.with_tool(&tool);
            }
            subject
        })
}

fn entry() -> impl Strategy<Value = (AuditEntry, NodeId)> {
    (
        any::<u64>(),
        any::<[u8; 32]>(),
        any::<u64>(),
        proptest::sample::select(AuditKind::ALL.to_vec()),
        subject(),
        ".{0,1200}",
        any::<u8>(),
    )
        .prop_map(|(seq, prev, t, kind, subject, details, seed)| {
            let mut chain = AuditChain::resume(ChainHead {
                next_seq: seq,
                last_hash: prev,
            });
            (
                chain.append(&key(seed), t, kind, subject, &details),
                node(seed),
            )
        })
}

/// A 1000-entry log, encoded, built once.
fn long_log() -> &'static [Vec<u8>] {
    static LOG: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let mut chain = AuditChain::new();
        (0..1000u64)
            .map(|i| {
                let subject = match i % 3 {
                    0 => Subject::none(),
                    1 => Subject::none().with_peer(node(2)),
                    _ => Subject::none()
                        .with_peer(node(3))
                        .with_agent("weather".parse().unwrap())
                        .with_tool("forecast"),
                };
                chain
                    .append(
                        &key(7),
                        T0 + i,
                        AuditKind::ALL[(i % 11) as usize],
                        subject,
                        &format!("entry {i}"),
                    )
                    .encode()
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn audit_entries_round_trip((entry, signer) in entry()) {
        let bytes = entry.encode();
        prop_assert!(bytes.len() <= MAX_AUDIT_ENTRY_LEN);
        let decoded = AuditEntry::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &entry);
        prop_assert_eq!(decoded.encode(), bytes);
        let line = entry.to_json_line().unwrap();
        prop_assert_eq!(&AuditEntry::from_json_line(&line).unwrap(), &entry);
        prop_assert!(entry.verify_signature(&signer).is_ok());
        prop_assert!(entry.verify_signature(&node(0xee)).is_err() || signer == node(0xee));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        if let Ok(entry) = AuditEntry::decode(&bytes) {
            prop_assert_eq!(entry.encode(), bytes.clone());
        }
        if let Ok(snapshot) = PeerSnapshot::decode(&bytes) {
            prop_assert_eq!(snapshot.encode().unwrap(), bytes.clone());
        }
        let _ = AuditEntry::from_json_line(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn versioned_garbage_never_panics_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        // Past the version byte, so the body decoders run.
        let mut input = vec![1u8];
        input.extend_from_slice(&bytes);
        if let Ok(entry) = AuditEntry::decode(&input) {
            prop_assert_eq!(entry.encode(), input.clone());
        }
        if let Ok(snapshot) = PeerSnapshot::decode(&input) {
            prop_assert_eq!(snapshot.encode().unwrap(), input);
        }
    }

    #[test]
    fn mutated_entries_decode_canonically_or_not_at_all(
        (entry, _) in entry(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    ) {
        let mut bytes = entry.encode();
        for (at, value, op) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if !bytes.is_empty() => bytes[i] ^= value | 1,
                1 => bytes.insert(i.min(bytes.len()), value),
                _ if !bytes.is_empty() => { bytes.remove(i); }
                _ => {}
            }
        }
        if let Ok(decoded) = AuditEntry::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }

    #[test]
    fn json_lines_from_anything_never_panic(line in ".{0,400}") {
        let _ = AuditEntry::from_json_line(&line);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any single byte changed in any entry of a 1000-entry chain is reported at that entry.
    #[test]
    fn a_changed_byte_anywhere_in_a_long_chain_is_found_at_its_entry(
        target in 0..1000usize,
        offset in any::<prop::sample::Index>(),
        mask in 1..=255u8,
    ) {
        let mut log = long_log().to_vec();
        let entry = &mut log[target];
        let at = offset.index(entry.len());
        entry[at] ^= mask;
        let err = verify_chain(&node(7), &log).unwrap_err();
        prop_assert_eq!(err.position(), target as u64, "{}", err);
    }
}

/// One input to a trust table.
#[derive(Debug, Clone)]
enum Op {
    Observe(usize, usize),
    Assign(usize, Option<Assignment>),
    Recommend(usize, usize),
    Withdraw(usize, usize),
    Reset(usize),
    Forget(usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let peer = 0..8usize;
    prop_oneof![
        // Mostly good behaviour, so that peers climb to Verified as well as fall.
        6 => (peer.clone(), 0..2usize).prop_map(|(p, o)| Op::Observe(p, o)),
        3 => (peer.clone(), 0..Observation::ALL.len()).prop_map(|(p, o)| Op::Observe(p, o)),
        1 => (peer.clone(), proptest::option::of(proptest::sample::select(Assignment::ALL.to_vec())))
            .prop_map(|(p, a)| Op::Assign(p, a)),
        3 => (0..3usize, peer.clone()).prop_map(|(a, b)| Op::Recommend(a, b)),
        1 => (peer.clone(), peer.clone()).prop_map(|(a, b)| Op::Withdraw(a, b)),
        1 => peer.clone().prop_map(Op::Reset),
        1 => peer.prop_map(Op::Forget),
        2 => (0..6 * 3_600_000u64).prop_map(Op::Wait),
        1 => (0..4 * 86_400_000u64).prop_map(Op::Wait),
    ]
}

fn run(table: &mut TrustTable, ops: &[Op], history: &mut BTreeMap<NodeId, TrustLevel>) -> u64 {
    let mut now = T0;
    // Peers 0 and 1 start Trusted, so that recommendations happen.
    let start = [
        Op::Assign(0, Some(Assignment::Trusted)),
        Op::Assign(1, Some(Assignment::Trusted)),
    ];
    for op in start.iter().chain(ops) {
        match op {
            Op::Observe(p, o) => {
                table.record(now, &node(*p as u8), Observation::ALL[*o]);
            }
            Op::Assign(p, a) => {
                table.assign(now, &node(*p as u8), *a).unwrap();
            }
            Op::Recommend(a, b) => {
                let _ = table.recommend(now, &node(*a as u8), &node(*b as u8));
            }
            Op::Withdraw(a, b) => {
                table.withdraw(now, &node(*a as u8), &node(*b as u8));
            }
            Op::Reset(p) => {
                table.reset(now, &node(*p as u8));
            }
            Op::Forget(p) => {
                table.forget(now, &node(*p as u8));
            }
            Op::Wait(ms) => {
                now += ms;
                table.handle_timeout(now);
            }
        }
        while let Some(event) = table.poll_event() {
            let known = history
                .get(&event.peer)
                .copied()
                .unwrap_or(TrustLevel::Unknown);
            assert_eq!(event.old_level, known, "{event:?} after {op:?}");
            assert_ne!(event.old_level, event.new_level);
            assert!((0.0..=1.0).contains(&event.score));
            history.insert(event.peer, event.new_level);
        }
    }
    now
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Scores stay in [0, 1]; the level obeys the thresholds; the events tell the whole
    /// history of every level; snapshots restore the same state.
    #[test]
    fn the_trust_table_keeps_its_invariants(ops in proptest::collection::vec(op(), 1..200)) {
        let config = TrustConfig { max_peers: 5, ..TrustConfig::default() };
        let mut table = TrustTable::new(config.clone()).unwrap();
        let mut history = BTreeMap::new();
        let now = run(&mut table, &ops, &mut history);
        prop_assert!(table.stats().tracked <= 5 + table.stats().assigned);
        let mut restored = TrustTable::new(config).unwrap();
        for seed in 0..8u8 {
            let peer = node(seed);
            let score = table.score(now, &peer);
            let own = table.own_score(now, &peer);
            prop_assert!((0.0..=1.0).contains(&score) && (0.0..=1.0).contains(&own));
            prop_assert!(score >= own - 1e-12);
            let level = table.level(&peer);
            prop_assert_eq!(level, history.get(&peer).copied().unwrap_or(TrustLevel::Unknown));
            if own < 0.2 {
                prop_assert_eq!(level, TrustLevel::Untrusted);
            }
            match table.assignment(&peer) {
                Some(Assignment::Untrusted) => prop_assert_eq!(level, TrustLevel::Untrusted),
                Some(a) if own >= 0.25 => prop_assert_eq!(level, a.level()),
                Some(_) => {}
                None => prop_assert!(level != TrustLevel::Trusted && level != TrustLevel::Bootstrap),
            }
            if let Some(snapshot) = table.snapshot(&peer) {
                let bytes = snapshot.encode().unwrap();
                restored.restore(&PeerSnapshot::decode(&bytes).unwrap()).unwrap();
            }
        }
        for seed in 0..8u8 {
            let peer = node(seed);
            prop_assert_eq!(restored.level(&peer), table.level(&peer));
            let later = now + 3_600_000;
            prop_assert!((restored.score(later, &peer) - table.score(later, &peer)).abs() < 1e-12);
        }
    }

    /// Whatever the allow rules and level defaults, a matching deny rule decides.
    #[test]
    fn deny_rules_always_win(
        allows in proptest::collection::vec(
            (proptest::sample::subsequence(Permission::ALL.to_vec(), 1..=5),
             proptest::option::of(proptest::sample::subsequence(TrustLevel::ALL[1..].to_vec(), 1..=4))),
            0..6),
        denied in proptest::sample::select(Permission::ALL.to_vec()),
        deny_levels in proptest::sample::subsequence(TrustLevel::ALL.to_vec(), 1..=5),
        level in proptest::sample::select(TrustLevel::ALL.to_vec()),
        permission in proptest::sample::select(Permission::ALL.to_vec()),
        agent in proptest::option::of(agent_id()),
    ) {
        let allow = allows.into_iter().map(|(permissions, levels)| {
            let mut rule = RuleConfig::new(permissions);
            rule.levels = levels;
            rule
        }).collect();
        let mut deny = RuleConfig::new([denied]);
        deny.levels = Some(deny_levels.clone());
        let policy = Policy::from_config(PolicyConfig { deny: vec![deny], allow, ..PolicyConfig::default() }).unwrap();
        let peer = node(1);
        let mut request = Request::new(&peer, level, permission);
        request.agent = agent.as_ref();
        let decision = policy.decide(&request);
        if level == TrustLevel::Untrusted {
            prop_assert_eq!(decision.reason, DecisionReason::Untrusted);
        } else if permission == denied && deny_levels.contains(&level) {
            prop_assert!(!decision.allowed);
            let by_deny =
                matches!(&decision.reason, DecisionReason::Rule { rule, .. } if rule.list == RuleList::Deny);
            prop_assert!(by_deny, "{:?}", decision);
        } else if let DecisionReason::Rule { rule, .. } = &decision.reason {
            prop_assert_eq!(rule.list, RuleList::Allow);
            prop_assert!(decision.allowed);
        } else {
            prop_assert_eq!(decision.allowed, policy.level_default(level).contains(permission));
        }
    }
}
