//! The registry's behaviour through its public API: local changes, deltas, ownership,
//! misbehaviour, bounds, reconciliation, expiry, restarts and persistence.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dawn_crypto::SigningKey;
use dawn_identity::{AgentAddr, AgentId, NodeId};
use dawn_registry::{
    AgentRecord, Event, MAX_DESCRIPTION_LEN, MessageError, MessageKind, MisbehaviourKind,
    RecordError, Registry, RegistryConfig, RegistryError, StateError, ToolSummary, Transmit,
};

const UNIX_MS: u64 = 1_700_000_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn registry(seed: u8, now: Instant) -> Registry {
    registry_with(seed, now, UNIX_MS, RegistryConfig::default())
}

fn registry_with(seed: u8, now: Instant, unix_ms: u64, config: RegistryConfig) -> Registry {
    Registry::new(key(seed), config, u64::from(seed), now, unix_ms).unwrap()
}

fn agent(id: &str) -> AgentId {
    id.parse().unwrap()
}

fn record(id: &str, description: &str) -> AgentRecord {
    let mut r = AgentRecord::new(agent(id), id.to_uppercase());
    r.description = description.into();
    r.tools.push(ToolSummary {
        name: "run".into(),
        description: "runs it".into(),
    });
    r
}

fn addr(owner: &Registry, id: &str) -> AgentAddr {
    AgentAddr::new(*owner.node_id(), agent(id))
}

fn broadcasts(r: &mut Registry) -> Vec<bytes::Bytes> {
    let mut out = Vec::new();
    while let Some(t) = r.poll_transmit() {
        if let Transmit::Broadcast { payload } = t {
            out.push(payload);
        }
    }
    out
}

fn events(r: &mut Registry) -> Vec<Event> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

fn misbehaviours(r: &mut Registry) -> Vec<(NodeId, MisbehaviourKind)> {
    events(r)
        .into_iter()
        .filter_map(|e| match e {
            Event::Misbehaviour { peer, kind } => Some((peer, kind)),
            _ => None,
        })
        .collect()
}

fn deliver_all(from: &mut Registry, to: &mut Registry, now: Instant) {
    let id = *from.node_id();
    for payload in broadcasts(from) {
        to.handle_message(now, id, &payload).unwrap();
    }
}

/// Carries messages between registries until none is left: sends to their peer,
/// broadcasts to every other registry given. Returns the bytes sent point to point.
fn shuttle(nodes: &mut [&mut Registry], now: Instant) -> usize {
    let mut bytes = 0;
    for _ in 0..100 {
        let mut moved = false;
        for i in 0..nodes.len() {
            let from = *nodes[i].node_id();
            let mut out = Vec::new();
            while let Some(t) = nodes[i].poll_transmit() {
                match t {
                    Transmit::Send { to, payload } => {
                        bytes += payload.len();
                        out.push((Some(to), payload));
                    }
                    Transmit::Broadcast { payload } => out.push((None, payload)),
                    _ => {}
                }
            }
            for (to, payload) in out {
                moved = true;
                for (j, target) in nodes.iter_mut().enumerate() {
                    if to.map_or(j != i, |to| *target.node_id() == to) {
                        let _ = target.handle_message(now, from, &payload);
                    }
                }
            }
        }
        if !moved {
            return bytes;
        }
    }
    panic!("reconciliation did not finish");
}

/// The node drives the registry from an async task.
const _: fn() = || {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Registry>();
    send_and_sync::<Transmit>();
    send_and_sync::<Event>();
};

#[test]
fn local_changes_are_visible_at_once_and_broadcast_once() {
    let now = Instant::now();
    let mut a = registry(1, now);
    a.upsert_local(now, record("echo", "one")).unwrap();
    assert_eq!(a.get(&addr(&a, "echo")).unwrap().description, "one");
    assert_eq!(a.len(), 1);
    let sent = broadcasts(&mut a);
    assert_eq!(sent.len(), 1);
    assert_eq!(MessageKind::of(&sent[0]), Some(MessageKind::Delta));
    assert_eq!(
        events(&mut a),
        [Event::Changed {
            owner: *a.node_id()
        }]
    );

    // The same record again changes nothing and sends nothing.
    a.upsert_local(now, record("echo", "one")).unwrap();
    assert!(broadcasts(&mut a).is_empty());

    a.upsert_local(now, record("echo", "two")).unwrap();
    assert_eq!(a.get(&addr(&a, "echo")).unwrap().description, "two");
    assert_eq!(broadcasts(&mut a).len(), 1);

    assert!(a.remove_local(now, &agent("echo")).unwrap());
    assert!(a.get(&addr(&a, "echo")).is_none());
    assert!(a.is_empty());
    assert_eq!(broadcasts(&mut a).len(), 1);
    assert!(!a.remove_local(now, &agent("echo")).unwrap());
    assert!(broadcasts(&mut a).is_empty());
}

#[test]
fn deltas_reach_peers_and_report_changes() {
    let now = Instant::now();
    let mut a = registry(1, now);
    let mut b = registry(2, now);
    a.upsert_local(now, record("echo", "x")).unwrap();
    a.upsert_local(now, record("weather", "y")).unwrap();
    deliver_all(&mut a, &mut b, now);
    assert_eq!(b.len(), 2);
    let owners: Vec<NodeId> = b.owners().collect();
    assert_eq!(owners, [*a.node_id()]);
    assert_eq!(
        events(&mut b),
        [Event::Changed {
            owner: *a.node_id()
        }]
    );
    let listed: Vec<(NodeId, String)> = b
        .agents()
        .map(|(owner, r)| (owner, r.agent_id.to_string()))
        .collect();
    assert_eq!(
        listed,
        [
            (*a.node_id(), "echo".to_owned()),
            (*a.node_id(), "weather".to_owned())
        ]
    );
    assert_eq!(a.state_digest(), b.state_digest());
}

#[test]
fn a_delta_forwarded_by_another_node_is_refused_as_misbehaviour() {
    let now = Instant::now();
    let mut a = registry(1, now);
    let c = registry(3, now);
    let mut b = registry(2, now);
    a.upsert_local(now, record("echo", "x")).unwrap();
    let delta = broadcasts(&mut a).remove(0);
    let err = b.handle_message(now, *c.node_id(), &delta).unwrap_err();
    assert_eq!(err, MessageError::NotOwner);
    assert_eq!(
        misbehaviours(&mut b),
        [(*c.node_id(), MisbehaviourKind::NotOwner)]
    );
    assert!(b.is_empty());
}

/// Every single-byte corruption of a delta is refused: the manifest signature covers the
/// manifest, the manifest covers the entries' hashes, and the rest is strict framing.
#[test]
fn every_corrupted_byte_of_a_delta_is_refused() {
    let now = Instant::now();
    let mut a = registry(1, now);
    a.upsert_local(now, record("echo", "x")).unwrap();
    let delta = broadcasts(&mut a).remove(0);
    let mut kinds = BTreeSet::new();
    for i in 0..delta.len() {
        let mut bad = delta.to_vec();
        bad[i] ^= 0x01;
        let mut b = registry(2, now);
        let result = b.handle_message(now, *a.node_id(), &bad);
        assert!(b.is_empty(), "byte {i} flipped added an agent");
        // A flip in the timestamp that dates the manifest past its owner's expiry is
        // ignored without checking the signature, the only corruption that is not an error.
        assert!(
            result.is_err() || b.stats().expired_ignored == 1,
            "byte {i} flipped was accepted"
        );
        for (peer, kind) in misbehaviours(&mut b) {
            assert_eq!(peer, *a.node_id());
            kinds.insert(format!("{kind:?}"));
        }
    }
    // Forgeries of every kind were caught by the check meant for them.
    for kind in ["Malformed", "InvalidSignature", "InvalidEntry"] {
        assert!(kinds.contains(kind), "{kinds:?}");
    }
}

#[test]
fn garbage_gets_a_typed_error_and_a_misbehaviour_event() {
    let now = Instant::now();
    let mut b = registry(2, now);
    let peer = *registry(3, now).node_id();
    for bytes in [
        &b""[..],
        &b"\x01"[..],
        &b"\x01\x02\x00"[..],
        &b"\x01\x02\x01\xff\xff\xff"[..],
        &b"\x01\x01\x00"[..],
        &b"\x02\x02\x00"[..],
        &[0xff; 64][..],
    ] {
        assert!(matches!(
            b.handle_message(now, peer, bytes),
            Err(MessageError::Decode(_))
        ));
    }
    assert_eq!(
        misbehaviours(&mut b),
        vec![(peer, MisbehaviourKind::Malformed); 7]
    );
    let huge = vec![1u8; dawn_wire::MAX_MESSAGE_LEN + 1];
    assert!(b.handle_message(now, peer, &huge).is_err());
}

#[test]
fn records_and_agent_counts_are_bounded() {
    let now = Instant::now();
    let config = RegistryConfig {
        max_agents_per_owner: 2,
        ..RegistryConfig::default()
    };
    let mut a = registry_with(1, now, UNIX_MS, config);
    let long = "d".repeat(MAX_DESCRIPTION_LEN + 1);
    assert!(matches!(
        a.upsert_local(now, record("echo", &long)),
        Err(RegistryError::Record(RecordError::FieldTooLong { .. }))
    ));
    a.upsert_local(now, record("one", "")).unwrap();
    a.upsert_local(now, record("two", "")).unwrap();
    assert_eq!(
        a.upsert_local(now, record("three", "")),
        Err(RegistryError::TooManyAgents { max: 2 })
    );
    // Replacing an existing agent is still allowed.
    a.upsert_local(now, record("two", "new")).unwrap();

    // A peer allowing fewer agents per owner refuses the manifest and blames the owner.
    let mut strict = registry_with(
        2,
        now,
        UNIX_MS,
        RegistryConfig {
            max_agents_per_owner: 1,
            ..RegistryConfig::default()
        },
    );
    for payload in broadcasts(&mut a) {
        let _ = strict.handle_message(now, *a.node_id(), &payload);
    }
    assert_eq!(strict.len(), 1, "the first delta listed one agent");
    assert!(
        misbehaviours(&mut strict)
            .iter()
            .all(|(peer, kind)| *peer == *a.node_id() && *kind == MisbehaviourKind::OverLimit)
    );
}

#[test]
fn directory_size_is_bounded_by_max_owners() {
    let now = Instant::now();
    let mut b = registry_with(
        9,
        now,
        UNIX_MS,
        RegistryConfig {
            max_owners: 2,
            ..RegistryConfig::default()
        },
    );
    for seed in 1..=3 {
        let mut owner = registry(seed, now);
        owner.upsert_local(now, record("echo", "")).unwrap();
        deliver_all(&mut owner, &mut b, now);
    }
    assert_eq!(b.owner_count(), 2);
    assert_eq!(b.stats().refused_owners, 1);
}

/// A node that missed deltas (and one that missed a removal) catches up by reconciliation.
#[test]
fn reconciliation_repairs_missed_adds_and_removals() {
    let now = Instant::now();
    let mut a = registry(1, now);
    let mut b = registry(2, now);
    let mut c = registry(3, now);
    a.upsert_local(now, record("one", "")).unwrap();
    a.upsert_local(now, record("two", "")).unwrap();
    deliver_all(&mut a, &mut c, now);
    assert_eq!(c.len(), 2);
    a.remove_local(now, &agent("one")).unwrap();
    a.upsert_local(now, record("three", "")).unwrap();
    let _lost = broadcasts(&mut a);

    b.peer_up(now, *a.node_id());
    c.peer_up(now, *a.node_id());
    shuttle(&mut [&mut a, &mut b, &mut c], now);
    for r in [&b, &c] {
        let ids: Vec<String> = r.agents().map(|(_, r)| r.agent_id.to_string()).collect();
        assert_eq!(ids, ["three", "two"]);
        assert_eq!(r.state_digest(), a.state_digest());
    }
    // c never saw "three"'s delta and held "one": a removal under reconciliation is not lost.
    assert!(c.get(&addr(&a, "one")).is_none());
}

/// A removal learned by reconciliation from a third node, before the add ever arrives,
/// stays removed when the old add turns up (the `crdts` crate's issue 160).
#[test]
fn a_removal_learned_before_its_add_is_not_lost() {
    let now = Instant::now();
    let mut a = registry(1, now);
    let mut b = registry(2, now);
    let mut c = registry(3, now);
    a.upsert_local(now, record("echo", "")).unwrap();
    let add = broadcasts(&mut a).remove(0);
    a.remove_local(now, &agent("echo")).unwrap();
    let remove = broadcasts(&mut a).remove(0);
    b.handle_message(now, *a.node_id(), &remove).unwrap();
    // c learns the removal from b (not from a), then the stale add arrives late.
    c.peer_up(now, *b.node_id());
    shuttle(&mut [&mut b, &mut c], now);
    c.handle_message(now, *a.node_id(), &add).unwrap();
    assert!(c.get(&addr(&a, "echo")).is_none());
    assert_eq!(c.state_digest(), b.state_digest());
}

#[test]
fn silent_owners_expire_and_heartbeats_keep_owners_alive() {
    let t0 = Instant::now();
    let config = RegistryConfig {
        refresh_interval: Duration::from_secs(60),
        owner_ttl: Duration::from_secs(300),
        ..RegistryConfig::default()
    };
    let mut a = registry_with(1, t0, UNIX_MS, config.clone());
    let mut b = registry_with(2, t0, UNIX_MS, config.clone());
    let mut c = registry_with(3, t0, UNIX_MS, config);
    a.upsert_local(t0, record("echo", "")).unwrap();
    c.upsert_local(t0, record("gone", "")).unwrap();
    let old_delta = broadcasts(&mut c).remove(0);
    b.handle_message(t0, *c.node_id(), &old_delta).unwrap();
    deliver_all(&mut a, &mut b, t0);
    events(&mut b);

    // a heartbeats every minute and b hears it; c falls silent.
    let mut now = t0;
    while now < t0 + Duration::from_secs(400) {
        let next = a.poll_timeout().unwrap();
        assert!(next <= now + Duration::from_secs(60));
        now = next;
        a.handle_timeout(now);
        deliver_all(&mut a, &mut b, now);
        if b.poll_timeout().is_some_and(|t| t <= now) {
            b.handle_timeout(now);
        }
    }
    b.handle_timeout(now);
    assert!(b.get(&addr(&a, "echo")).is_some(), "a heartbeats");
    assert!(b.get(&addr(&c, "gone")).is_none(), "c expired");
    assert!(events(&mut b).contains(&Event::Expired {
        owner: *c.node_id()
    }));
    assert_eq!(b.stats().expired, 1);
    // Its old delta is refused from now on instead of bringing it back.
    b.handle_message(now, *c.node_id(), &old_delta).unwrap();
    assert!(b.get(&addr(&c, "gone")).is_none());
    assert_eq!(b.stats().expired_ignored, 1);
}

#[test]
fn an_expiry_deadline_is_exact_on_the_fake_clock() {
    let t0 = Instant::now();
    let config = RegistryConfig {
        refresh_interval: Duration::from_secs(10),
        owner_ttl: Duration::from_secs(30),
        ..RegistryConfig::default()
    };
    let mut c = registry_with(3, t0, UNIX_MS, config.clone());
    let mut b = registry_with(2, t0, UNIX_MS, config);
    c.upsert_local(t0, record("gone", "")).unwrap();
    deliver_all(&mut c, &mut b, t0);
    assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    b.handle_timeout(t0 + Duration::from_millis(29_999));
    assert_eq!(b.len(), 1);
    b.handle_timeout(t0 + Duration::from_secs(30));
    assert_eq!(b.len(), 0);
    assert_eq!(
        b.poll_timeout(),
        None,
        "no peers, no agents: nothing to wake for"
    );
}

#[test]
fn future_dated_manifests_are_refused_and_reported() {
    let now = Instant::now();
    let mut skewed = registry_with(1, now, UNIX_MS + 3_600_000, RegistryConfig::default());
    let mut b = registry(2, now);
    skewed.upsert_local(now, record("echo", "")).unwrap();
    for payload in broadcasts(&mut skewed) {
        b.handle_message(now, *skewed.node_id(), &payload).unwrap();
    }
    assert!(b.is_empty());
    assert_eq!(
        misbehaviours(&mut b),
        [(*skewed.node_id(), MisbehaviourKind::Future)]
    );
}

/// A node restarted without its state (and with its clock set back) signs manifests below
/// the one the mesh holds; it learns its old manifest from a peer, moves past it, and the
/// mesh takes its current agents.
#[test]
fn a_restarted_node_without_state_supersedes_its_old_manifest() {
    let now = Instant::now();
    let mut a = registry(1, now);
    let mut b = registry(2, now);
    a.upsert_local(now, record("old", "")).unwrap();
    deliver_all(&mut a, &mut b, now);

    let mut a2 = registry_with(1, now, UNIX_MS - 60_000, RegistryConfig::default());
    a2.upsert_local(now, record("new", "")).unwrap();
    deliver_all(&mut a2, &mut b, now);
    assert!(
        b.get(&addr(&a2, "old")).is_some(),
        "b keeps the higher version"
    );

    a2.peer_up(now, *b.node_id());
    shuttle(&mut [&mut a2, &mut b], now);
    assert_eq!(a2.stats().self_heals, 1);
    let ids: Vec<String> = b.agents().map(|(_, r)| r.agent_id.to_string()).collect();
    assert_eq!(ids, ["new"]);
    assert_eq!(a2.state_digest(), b.state_digest());
}

/// An owner that signs two manifests of one version: every node keeps the same one and
/// reports the owner.
#[test]
fn equivocation_is_reported_and_resolved_the_same_everywhere() {
    let now = Instant::now();
    let mut twin1 = registry(1, now);
    let mut twin2 = registry(1, now);
    twin1.upsert_local(now, record("left", "")).unwrap();
    twin2.upsert_local(now, record("right", "")).unwrap();
    let d1 = broadcasts(&mut twin1).remove(0);
    let d2 = broadcasts(&mut twin2).remove(0);
    let owner = *twin1.node_id();
    let mut b = registry(2, now);
    let mut c = registry(3, now);
    b.handle_message(now, owner, &d1).unwrap();
    b.handle_message(now, owner, &d2).unwrap();
    c.handle_message(now, owner, &d2).unwrap();
    c.handle_message(now, owner, &d1).unwrap();
    assert_eq!(b.state_digest(), c.state_digest());
    assert_eq!(b.len(), 1);
    for r in [&mut b, &mut c] {
        assert_eq!(misbehaviours(r), [(owner, MisbehaviourKind::Equivocation)]);
    }
}

#[test]
fn state_survives_a_restart_and_imports_check_every_signature() {
    let now = Instant::now();
    let mut a = registry(1, now);
    let mut b = registry(2, now);
    b.upsert_local(now, record("remote", "")).unwrap();
    deliver_all(&mut b, &mut a, now);
    a.upsert_local(now, record("mine", "")).unwrap();
    a.upsert_local(now, record("also-mine", "")).unwrap();
    let state = a.export_state().unwrap();

    // The same node, restarted: its agents are local again and re-published.
    let later = now + Duration::from_secs(5);
    let mut a2 = registry_with(1, later, UNIX_MS + 5_000, RegistryConfig::default());
    let report = a2.import_state(later, &state).unwrap();
    assert_eq!((report.owners, report.entries), (2, 3));
    assert_eq!(a2.len(), 3);
    let mine: Vec<String> = a2.local_agents().map(|r| r.agent_id.to_string()).collect();
    assert_eq!(mine, ["also-mine", "mine"]);
    let republished = broadcasts(&mut a2);
    assert_eq!(republished.len(), 1);
    a2.upsert_local(later, record("third", "")).unwrap();
    assert_eq!(a2.local_agents().count(), 3);

    // Importing it twice changes nothing.
    let again = a2.import_state(later, &state).unwrap();
    assert_eq!((again.owners, again.entries), (0, 0));

    // Another node can import it too: everything is signed by its owners.
    let mut c = registry(3, now);
    c.import_state(now, &state).unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(c.local_agents().count(), 0);

    // A corrupted state never imports altered content: whatever is imported is exactly
    // what its owners signed, and something is always left out.
    let original: Vec<(NodeId, AgentRecord)> = c.agents().map(|(o, r)| (o, r.clone())).collect();
    let mut refused = 0;
    for i in 1..state.len() {
        let mut bad = state.clone();
        bad[i] ^= 0x20;
        let mut d = registry(4, now);
        match d.import_state(now, &bad) {
            Err(_) => refused += 1,
            Ok(_) => {
                assert!(d.len() < 3, "byte {i}");
                for (owner, r) in d.agents() {
                    assert!(original.contains(&(owner, r.clone())), "byte {i}: {r:?}");
                }
            }
        }
    }
    assert!(refused > 0);
    let mut d = registry(4, now);
    assert_eq!(d.import_state(now, &[]), Err(StateError::Empty));
    assert_eq!(
        d.import_state(now, &[2, 0]),
        Err(StateError::UnknownVersion(2))
    );

    // Owners that expired while the node was down are skipped.
    let much_later = now + Duration::from_secs(2 * 3600);
    let mut e = registry_with(
        5,
        much_later,
        UNIX_MS + 2 * 3_600_000,
        RegistryConfig::default(),
    );
    let report = e.import_state(much_later, &state).unwrap();
    assert_eq!((report.owners, report.expired), (0, 2));
}

#[test]
fn without_peers_or_agents_nothing_is_scheduled() {
    let now = Instant::now();
    let mut a = registry(1, now);
    assert_eq!(a.poll_timeout(), None);
    a.upsert_local(now, record("echo", "")).unwrap();
    let refresh = a.poll_timeout().unwrap();
    assert_eq!(refresh, now + RegistryConfig::default().refresh_interval);
    let peer = *registry(2, now).node_id();
    a.peer_up(now, peer);
    assert!(a.poll_timeout().unwrap() < refresh);
    a.peer_down(&peer);
    assert_eq!(a.poll_timeout(), Some(refresh));
    a.remove_local(now, &agent("echo")).unwrap();
    // The empty manifest is kept until it expires, so removals reach late nodes.
    assert_eq!(
        a.poll_timeout(),
        Some(now + RegistryConfig::default().owner_ttl)
    );
}
