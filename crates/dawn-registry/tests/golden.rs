//! Golden encodings: every registry message type's wire bytes (header and body) and the
//! stored state are pinned in `tests/golden/*.hex`.
//!
//! A failure here means an encoding changed. If that is deliberate (a protocol change: a new
//! type number or state version, since numbers are never reused), regenerate the files with
//! `DAWN_BLESS=1 cargo test -p dawn-registry --test golden` and commit them.
//!
//! Every message comes from real registries with fixed keys, clock and seeds: Ed25519
//! signatures are deterministic, so the bytes are too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Instant;

use bytes::Bytes;
use dawn_crypto::SigningKey;
use dawn_registry::{
    AgentRecord, MessageKind, PromptSummary, Registry, RegistryConfig, ResourceSummary,
    STATE_FORMAT_VERSION, ToolSummary, Transmit,
};

const UNIX_MS: u64 = 1_700_000_000_000;

fn registry(seed: u8, now: Instant, config: RegistryConfig) -> Registry {
    Registry::new(
        SigningKey::from_bytes(&[seed; 32]),
        config,
        u64::from(seed),
        now,
        UNIX_MS,
    )
    .unwrap()
}

fn echo() -> AgentRecord {
    let mut r = AgentRecord::new("echo".parse().unwrap(), "Echo");
    r.description = "Says it back".into();
    r.tools.push(ToolSummary {
        name: "echo".into(),
        description: "Returns its input".into(),
    });
    r.resources.push(ResourceSummary {
        uri: "file:///echo.log".into(),
        name: "log".into(),
    });
    r.prompts.push(PromptSummary {
        name: "greet".into(),
        description: "Say hello".into(),
    });
    r.version = 3;
    r
}

fn one(r: &mut Registry) -> Bytes {
    let t = r.poll_transmit().expect("a transmit");
    t.payload().clone()
}

fn sends(r: &mut Registry) -> Vec<Bytes> {
    std::iter::from_fn(|| r.poll_transmit())
        .map(|t| match t {
            Transmit::Send { payload, .. } => payload,
            other => panic!("expected a send, got {other:?}"),
        })
        .collect()
}

#[test]
fn encodings_match_the_golden_files() {
    let now = Instant::now();
    let dir = env!("CARGO_MANIFEST_DIR");
    let mut cases: Vec<(&str, &str, Vec<u8>)> = Vec::new();

    // Deltas.
    let mut a = registry(1, now, RegistryConfig::default());
    a.upsert_local(now, echo()).unwrap();
    let delta_upsert = one(&mut a);
    cases.push((
        "delta_upsert",
        "Delta (0x0200): key [1; 32] registers agent echo (one tool, resource, prompt)",
        delta_upsert.to_vec(),
    ));
    let mut b = registry(2, now, RegistryConfig::default());
    b.upsert_local(now, AgentRecord::new("weather".parse().unwrap(), "Weather"))
        .unwrap();
    let b_delta = one(&mut b);
    b.upsert_local(now, AgentRecord::new("extra".parse().unwrap(), "Extra"))
        .unwrap();
    b.remove_local(now, &"extra".parse().unwrap()).unwrap();
    let _added = one(&mut b);
    cases.push((
        "delta_remove",
        "Delta (0x0200): key [2; 32] removes agent extra, keeps weather, no entries",
        one(&mut b).to_vec(),
    ));

    // Reconciliation between a (owns echo) and b (owns weather).
    a.peer_up(now, *b.node_id());
    let round0 = sends(&mut a);
    assert_eq!(round0.len(), 1);
    cases.push((
        "reconcile_fingerprint",
        "Reconcile (0x0201): round 0, the whole key space, fingerprint of one owner",
        round0[0].to_vec(),
    ));
    b.handle_bytes(now, *a.node_id(), &round0[0]).unwrap();
    let items = sends(&mut b);
    assert_eq!(items.len(), 1);
    assert_eq!(MessageKind::of(&items[0]), Some(MessageKind::Reconcile));
    cases.push((
        "reconcile_items",
        "Reconcile (0x0201): round 1, the whole key space listed: one owner (b itself)",
        items[0].to_vec(),
    ));
    a.handle_bytes(now, *b.node_id(), &items[0]).unwrap();
    let answer = sends(&mut a);
    let kinds: Vec<_> = answer.iter().map(|p| MessageKind::of(p)).collect();
    assert_eq!(
        kinds,
        [Some(MessageKind::Updates), Some(MessageKind::Reconcile)]
    );
    cases.push((
        "updates",
        "Updates (0x0202): a's manifest and its one entry, pushed to b",
        answer[0].to_vec(),
    ));
    cases.push((
        "reconcile_needs",
        "Reconcile (0x0201): round 2, no ranges, a need for b's owner (a has no version)",
        answer[1].to_vec(),
    ));

    // A split: c knows three owners and lists at most one per range.
    let mut c = registry(
        3,
        now,
        RegistryConfig {
            reconcile_leaf: 1,
            ..RegistryConfig::default()
        },
    );
    c.upsert_local(now, AgentRecord::new("clock".parse().unwrap(), "Clock"))
        .unwrap();
    let _ = one(&mut c);
    c.handle_bytes(now, *a.node_id(), &delta_upsert).unwrap();
    c.handle_bytes(now, *b.node_id(), &b_delta).unwrap();
    let mut d = registry(4, now, RegistryConfig::default());
    d.upsert_local(now, AgentRecord::new("dice".parse().unwrap(), "Dice"))
        .unwrap();
    let _ = one(&mut d);
    d.peer_up(now, *c.node_id());
    let d_round0 = sends(&mut d);
    c.handle_bytes(now, *d.node_id(), &d_round0[0]).unwrap();
    let split = sends(&mut c);
    assert_eq!(split.len(), 1);
    assert_eq!(MessageKind::of(&split[0]), Some(MessageKind::Reconcile));
    cases.push((
        "reconcile_split",
        "Reconcile (0x0201): round 1, c's three owners split into three fingerprinted ranges",
        split[0].to_vec(),
    ));

    // The stored state.
    let state = c.export_state().unwrap();
    assert_eq!(state[0], STATE_FORMAT_VERSION);
    cases.push((
        "state",
        "State (format 1): c's directory: its own clock, a's echo, b's first weather manifest",
        state,
    ));

    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, description, bytes)| dawn_golden::check(dir, name, description, bytes))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
