//! Golden encodings: the audit entry, its signing input, its JSON line and the peer snapshot
//! are pinned in `tests/golden/`.
//!
//! A failure here means an encoding changed. If that is deliberate (a format change, with a
//! version bump where old readers would misread the new bytes), regenerate the files with
//! `DAWN_BLESS=1 cargo test -p dawn-trust --test golden` and commit them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_trust::{
    Assignment, AuditChain, AuditEntry, AuditKind, ChainHead, PeerSnapshot, Recommendation,
    Subject, verify_chain_from,
};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn node(seed: u8) -> NodeId {
    key(seed).verifying_key().into()
}

fn bless() -> bool {
    dawn_golden::bless()
}

fn path(name: &str) -> PathBuf {
    dawn_golden::path(env!("CARGO_MANIFEST_DIR"), name)
}

fn parse(text: &str) -> Vec<u8> {
    dawn_golden::parse(text).unwrap()
}

/// Compares `bytes` with the golden file `name`, or rewrites it under `DAWN_BLESS=1`.
fn golden(name: &str, description: &str, bytes: &[u8]) -> Option<String> {
    dawn_golden::check(env!("CARGO_MANIFEST_DIR"), name, description, bytes)
}

/// The golden entry: seq 41 after a given head, every subject field set.
fn full_entry() -> AuditEntry {
    let mut chain = AuditChain::resume(ChainHead {
        next_seq: 41,
        last_hash: [0xab; 32],
    });
    chain.append(
        &key(7),
        1_700_000_000_000,
        AuditKind::ToolCallDenied,
        Subject::none()
            .with_peer(node(2))
            .with_agent("shell".parse().unwrap())
            .with_tool("exec"),
        "denied by deny[0]",
    )
}

/// The first entry of a chain, with no subject and no details.
fn minimal_entry() -> AuditEntry {
    AuditChain::new().append(&key(7), 0, AuditKind::NodeStarted, Subject::none(), "")
}

fn snapshot() -> PeerSnapshot {
    PeerSnapshot {
        peer: node(2),
        score: 0.625,
        updated_ms: 1_700_000_000_000,
        gain_tokens: 0.03125,
        last_seen_ms: 1_700_000_000_500,
        handshake: true,
        assigned: Some(Assignment::Bootstrap),
        auto_untrusted: false,
        verified: true,
        recommended_by: vec![Recommendation {
            recommender: node(3),
            at_ms: 1_699_999_999_000,
        }],
    }
}

#[test]
fn golden_encodings() {
    let full = full_entry();
    let minimal = minimal_entry();
    let snapshot = snapshot();
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "audit_entry",
            "AuditEntry: key [7; 32], seq 41, prev_hash [0xab; 32], t 1700000000000, \
             ToolCallDenied, peer key [2; 32], agent shell, tool exec, 'denied by deny[0]'",
            full.encode(),
        ),
        (
            "audit_entry_minimal",
            "AuditEntry: key [7; 32], seq 0, genesis, t 0, NodeStarted, no subject, no details",
            minimal.encode(),
        ),
        (
            "audit_signing_input",
            "the signing input of audit_entry.hex: 'dawn/audit/v1' || node id || entry less signature",
            full.signing_input(&node(7)),
        ),
        (
            "peer_snapshot",
            "PeerSnapshot v1: peer key [2; 32], score 0.625, tokens 0.03125, bootstrap, verified, \
             one recommendation by key [3; 32]",
            snapshot.encode().unwrap(),
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, description, bytes)| golden(name, description, bytes))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The golden bytes decode to the same values and still verify.
    let bytes = parse(&std::fs::read_to_string(path("audit_entry.hex")).unwrap());
    let decoded = AuditEntry::decode(&bytes).unwrap();
    assert_eq!(decoded, full);
    let head = ChainHead {
        next_seq: 41,
        last_hash: [0xab; 32],
    };
    verify_chain_from(&node(7), head, [bytes]).unwrap();
    let bytes = parse(&std::fs::read_to_string(path("peer_snapshot.hex")).unwrap());
    assert_eq!(PeerSnapshot::decode(&bytes).unwrap(), snapshot);
}

#[test]
fn golden_json_line() {
    let line = full_entry().to_json_line().unwrap();
    let path = path("audit_entry.jsonl");
    if bless() {
        std::fs::write(&path, format!("{line}\n")).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(want.trim_end(), line);
    assert_eq!(AuditEntry::from_json_line(&want).unwrap(), full_entry());
}

#[test]
fn layout_is_as_documented() {
    // Byte by byte, as in the README.
    let full = full_entry().encode();
    assert_eq!(full[0], 1, "version");
    assert_eq!(full[1], 41, "seq, varint");
    assert_eq!(
        &full[2..8],
        &[0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31],
        "timestamp, varint"
    );
    assert_eq!(full[8], 10, "kind ToolCallDenied");
    assert_eq!(full[9], 1, "peer present");
    assert_eq!(&full[10..42], node(2).as_bytes());
    assert_eq!(&full[42..49], b"\x01\x05shell", "agent");
    assert_eq!(&full[49..55], b"\x01\x04exec", "tool");
    assert_eq!(&full[55..73], b"\x11denied by deny[0]", "details");
    assert_eq!(&full[73..105], &[0xab; 32], "prev_hash");
    assert_eq!(full.len(), 105 + 64, "signature last");
    let input = full_entry().signing_input(&node(7));
    assert_eq!(&input[..13], b"dawn/audit/v1");
    assert_eq!(&input[13..45], node(7).as_bytes());
    assert_eq!(&input[45..], &full[..105]);

    let minimal = minimal_entry().encode();
    // version, seq 0, t 0, kind 1, no peer, agent or tool, empty details, genesis hash.
    assert_eq!(&minimal[..8], &[1, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(&minimal[8..40], &[0; 32]);
    assert_eq!(minimal.len(), 40 + 64);
}
