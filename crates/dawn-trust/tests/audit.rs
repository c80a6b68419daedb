//! The audit chain: appending, verifying, and every kind of tampering reported at the entry
//! where it happened.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_trust::{
    AuditChain, AuditDecodeError, AuditEntry, AuditJsonError, AuditKind, AuditVerifyError,
    ChainHead, GENESIS_HASH, Subject, verify_chain, verify_chain_from, verify_chain_one_by_one,
};

const T0: u64 = 1_700_000_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn node(seed: u8) -> NodeId {
    key(seed).verifying_key().into()
}

/// An entry of every shape, in turn.
fn append_varied(chain: &mut AuditChain, signer: &SigningKey, i: u64) -> AuditEntry {
    let kinds = AuditKind::ALL;
    let kind = kinds[(i as usize) % (kinds.len() - 1)]; // never KeyRotated
    let subject = match i % 4 {
        0 => Subject::none(),
        1 => Subject::none().with_peer(node((i % 200) as u8 + 10)),
        2 => Subject::none()
            .with_peer(node(3))
            .with_agent("weather".parse().unwrap()),
        _ => Subject::none()
            .with_peer(node(4))
            .with_agent("shell".parse().unwrap())
            .with_tool("exec"),
    };
    let details = match i % 3 {
        0 => String::new(),
        1 => format!("entry {i}: peer moved from unknown to verified (score 0.61)"),
        _ => "ü".repeat((i % 40) as usize),
    };
    chain.append(signer, T0 + i * 1000, kind, subject, &details)
}

fn log(n: u64) -> (NodeId, Vec<AuditEntry>) {
    let signer = key(7);
    let mut chain = AuditChain::new();
    let entries = (0..n)
        .map(|i| append_varied(&mut chain, &signer, i))
        .collect();
    (node(7), entries)
}

fn encoded(entries: &[AuditEntry]) -> Vec<Vec<u8>> {
    entries.iter().map(AuditEntry::encode).collect()
}

/// Verifies both ways and checks they agree.
fn verify_both(node: &NodeId, log: &[Vec<u8>]) -> Result<u64, AuditVerifyError> {
    let batched = verify_chain(node, log);
    let single = verify_chain_one_by_one(node, log);
    assert_eq!(batched, single);
    batched.map(|v| v.entries)
}

#[test]
fn a_thousand_entries_verify() {
    let (node, entries) = log(1000);
    assert_eq!(entries[0].seq(), 0);
    assert_eq!(entries[0].prev_hash(), &GENESIS_HASH);
    for pair in entries.windows(2) {
        assert_eq!(pair[1].seq(), pair[0].seq() + 1);
        assert_eq!(pair[1].prev_hash(), &pair[0].hash());
    }
    let bytes = encoded(&entries);
    let verified = verify_chain(&node, &bytes).unwrap();
    assert_eq!(verified.entries, 1000);
    assert_eq!(verified.head, ChainHead::after(&entries[999]));
    assert_eq!(verified.signer, node);
    // From decoded entries, owned or borrowed, and one by one: the same result.
    assert_eq!(verify_chain(&node, &entries).unwrap(), verified);
    assert_eq!(verify_chain(&node, entries.clone()).unwrap(), verified);
    assert_eq!(
        verify_chain(&node, bytes.iter().map(Vec::as_slice)).unwrap(),
        verified
    );
    assert_eq!(verify_chain_one_by_one(&node, &bytes).unwrap(), verified);
    // An empty log verifies.
    let empty: [Vec<u8>; 0] = [];
    assert_eq!(verify_chain(&node, empty).unwrap().entries, 0);
}

#[test]
fn every_single_byte_change_is_caught_at_that_entry() {
    let (node, entries) = log(8);
    let log = encoded(&entries);
    let mut checked = 0;
    for (target, entry) in log.iter().enumerate() {
        for offset in 0..entry.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut tampered = log.clone();
                tampered[target][offset] ^= mask;
                let err = verify_both(&node, &tampered).unwrap_err();
                assert_eq!(
                    err.position(),
                    target as u64,
                    "entry {target}, byte {offset}, mask {mask:#x}: {err}"
                );
                assert!(
                    matches!(
                        err,
                        AuditVerifyError::BadSignature { .. } | AuditVerifyError::Malformed { .. }
                    ),
                    "entry {target}, byte {offset}: {err:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn byte_changes_in_a_long_chain_are_caught_at_that_entry_across_batches() {
    let (node, entries) = log(2100);
    let log = encoded(&entries);
    for target in [0usize, 1, 1022, 1023, 1024, 1025, 2047, 2048, 2099] {
        for offset in [0, 3, log[target].len() / 2, log[target].len() - 1] {
            let mut tampered = log.clone();
            tampered[target][offset] ^= 0x10;
            let err = verify_chain(&node, &tampered).unwrap_err();
            assert_eq!(err.position(), target as u64, "{target}/{offset}: {err}");
        }
    }
}

#[test]
fn a_deleted_entry_is_reported_as_missing() {
    let (node, entries) = log(50);
    let mut log = encoded(&entries);
    log.remove(20);
    let err = verify_both(&node, &log).unwrap_err();
    assert_eq!(
        err,
        AuditVerifyError::Missing {
            position: 20,
            expected_seq: 20,
            found_seq: 21
        }
    );
    // Deleting several, or the first.
    let mut log = encoded(&entries);
    log.drain(10..13);
    assert_eq!(
        verify_both(&node, &log).unwrap_err(),
        AuditVerifyError::Missing {
            position: 10,
            expected_seq: 10,
            found_seq: 13
        }
    );
    let mut log = encoded(&entries);
    log.remove(0);
    assert!(matches!(
        verify_both(&node, &log).unwrap_err(),
        AuditVerifyError::Missing {
            position: 0,
            expected_seq: 0,
            ..
        }
    ));
}

#[test]
fn a_cut_off_tail_shows_only_against_the_expected_head() {
    let (node, entries) = log(50);
    let mut log = encoded(&entries);
    log.truncate(45);
    // The chain alone cannot tell: every remaining entry is intact.
    let verified = verify_chain(&node, &log).unwrap();
    // The head the node keeps elsewhere can.
    assert_ne!(verified.head, ChainHead::after(&entries[49]));
    assert_eq!(verified.head.next_seq, 45);
}

#[test]
fn swapped_and_duplicated_entries_are_reported_as_reordered() {
    let (node, entries) = log(50);
    let mut swapped = encoded(&entries);
    swapped.swap(30, 31);
    assert_eq!(
        verify_both(&node, &swapped).unwrap_err(),
        AuditVerifyError::Reordered {
            position: 30,
            expected_seq: 30,
            found_seq: 31
        }
    );
    let mut far = encoded(&entries);
    far.swap(5, 40);
    assert_eq!(
        verify_both(&node, &far).unwrap_err(),
        AuditVerifyError::Reordered {
            position: 5,
            expected_seq: 5,
            found_seq: 40
        }
    );
    let mut duplicated = encoded(&entries);
    duplicated.insert(12, duplicated[11].clone());
    assert_eq!(
        verify_both(&node, &duplicated).unwrap_err(),
        AuditVerifyError::Reordered {
            position: 12,
            expected_seq: 12,
            found_seq: 11
        }
    );
}

#[test]
fn a_re_signed_entry_is_caught() {
    let (node, entries) = log(20);
    let log = encoded(&entries);
    // Re-signed with the node's own key: the entry verifies, its successor's link breaks.
    let mut forger = AuditChain::resume(ChainHead::after(&entries[9]));
    let forged = forger.append(
        &key(7),
        T0,
        AuditKind::ToolCallAllowed,
        Subject::none(),
        "nothing to see",
    );
    assert_eq!(forged.seq(), 10);
    let mut tampered = log.clone();
    tampered[10] = forged.encode();
    assert_eq!(
        verify_both(&node, &tampered).unwrap_err(),
        AuditVerifyError::BrokenLink {
            position: 11,
            seq: 11
        }
    );
    // Re-signed with another key: the entry's own signature fails.
    let mut other = AuditChain::resume(ChainHead::after(&entries[9]));
    let foreign = other.append(&key(8), T0, AuditKind::ToolCallAllowed, Subject::none(), "");
    let mut tampered = log.clone();
    tampered[10] = foreign.encode();
    assert_eq!(
        verify_both(&node, &tampered).unwrap_err(),
        AuditVerifyError::BadSignature {
            position: 10,
            seq: 10
        }
    );
    // The whole log under the wrong key fails at once.
    assert_eq!(verify_both(&self::node(8), &log).unwrap_err().position(), 0);
}

#[test]
fn a_malformed_entry_is_reported_with_its_decoding_error() {
    let (node, entries) = log(10);
    let mut log = encoded(&entries);
    log[4].truncate(20);
    assert!(matches!(
        verify_both(&node, &log).unwrap_err(),
        AuditVerifyError::Malformed { position: 4, .. }
    ));
    log[4] = Vec::new();
    assert_eq!(
        verify_both(&node, &log).unwrap_err(),
        AuditVerifyError::Malformed {
            position: 4,
            source: AuditDecodeError::Empty
        }
    );
    log[4] = vec![2; 100];
    assert_eq!(
        verify_both(&node, &log).unwrap_err(),
        AuditVerifyError::Malformed {
            position: 4,
            source: AuditDecodeError::UnknownVersion(2)
        }
    );
}

#[test]
fn key_rotation_hands_the_chain_to_the_new_key() {
    let (old, new) = (key(7), key(8));
    let mut chain = AuditChain::new();
    let mut entries: Vec<AuditEntry> = (0..5).map(|i| append_varied(&mut chain, &old, i)).collect();
    entries.push(chain.append(
        &old,
        T0,
        AuditKind::KeyRotated,
        Subject::none().with_peer(node(8)),
        "scheduled rotation",
    ));
    entries.extend((0..5).map(|i| append_varied(&mut chain, &new, i)));
    let verified = verify_chain(&node(7), &entries).unwrap();
    assert_eq!(verified.entries, 11);
    assert_eq!(verified.signer, node(8));
    assert_eq!(
        verify_chain_one_by_one(&node(7), &entries).unwrap(),
        verified
    );

    // After the rotation, the old key's signatures no longer count.
    let mut chain = AuditChain::resume(ChainHead::after(&entries[5]));
    let mut stale = entries[..6].to_vec();
    stale.push(chain.append(&old, T0, AuditKind::NodeStopped, Subject::none(), ""));
    assert_eq!(
        verify_chain(&node(7), &stale).unwrap_err(),
        AuditVerifyError::BadSignature {
            position: 6,
            seq: 6
        }
    );
}

#[test]
fn verification_resumes_from_a_head() {
    let (node, entries) = log(300);
    let log = encoded(&entries);
    let first = verify_chain(&node, &log[..120]).unwrap();
    let rest = verify_chain_from(&node, first.head, &log[120..]).unwrap();
    assert_eq!(rest.entries, 180);
    assert_eq!(rest.head, ChainHead::after(&entries[299]));
    // Positions count from the first entry given.
    let mut tampered = log[120..].to_vec();
    tampered[7][10] ^= 1;
    assert_eq!(
        verify_chain_from(&node, first.head, &tampered)
            .unwrap_err()
            .position(),
        7
    );
    // The chain resumes from the same head.
    let mut chain = AuditChain::resume(rest.head);
    let next = chain.append(&key(7), T0, AuditKind::NodeStarted, Subject::none(), "");
    assert_eq!(next.seq(), 300);
    let mut extended = log.clone();
    extended.push(next.encode());
    assert_eq!(verify_chain(&node, &extended).unwrap().entries, 301);
}

#[test]
fn json_lines_export_round_trips_and_stays_verifiable() {
    let (node, entries) = log(40);
    let lines: Vec<String> = entries.iter().map(|e| e.to_json_line().unwrap()).collect();
    assert!(lines.iter().all(|l| !l.contains('\n')));
    let first: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
    assert_eq!(first["seq"], 3);
    assert_eq!(first["kind"], "connection_refused");
    assert_eq!(first["peer"], node_text(4));
    assert_eq!(first["agent"], "shell");
    assert_eq!(first["tool"], "exec");
    assert_eq!(first["prev_hash"].as_str().unwrap().len(), 64);
    assert_eq!(first["signature"].as_str().unwrap().len(), 128);
    let back: Vec<AuditEntry> = lines
        .iter()
        .map(|l| AuditEntry::from_json_line(l).unwrap())
        .collect();
    assert_eq!(back, entries);
    verify_chain(&node, &back).unwrap();

    // Editing the export is caught like editing the log.
    let mut value: serde_json::Value = serde_json::from_str(&lines[17]).unwrap();
    value["details"] = "edited".into();
    let mut edited = back.clone();
    edited[17] = AuditEntry::from_json_line(&value.to_string()).unwrap();
    assert_eq!(
        verify_chain(&node, &edited).unwrap_err(),
        AuditVerifyError::BadSignature {
            position: 17,
            seq: 17
        }
    );
}

fn node_text(seed: u8) -> String {
    node(seed).to_string()
}

#[test]
fn json_lines_errors_are_typed() {
    let (_, entries) = log(2);
    let line = entries[1].to_json_line().unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&line).unwrap();
    value["extra"] = 1.into();
    assert!(matches!(
        AuditEntry::from_json_line(&value.to_string()),
        Err(AuditJsonError::Json(e)) if e.contains("extra")
    ));
    let mut value: serde_json::Value = serde_json::from_str(&line).unwrap();
    value["prev_hash"] = "ABCD".into();
    assert_eq!(
        AuditEntry::from_json_line(&value.to_string()),
        Err(AuditJsonError::Hex {
            field: "prev_hash",
            len: 64
        })
    );
    let mut value: serde_json::Value = serde_json::from_str(&line).unwrap();
    value["signature"] = "AB".repeat(64).into();
    assert_eq!(
        AuditEntry::from_json_line(&value.to_string()),
        Err(AuditJsonError::Hex {
            field: "signature",
            len: 128
        })
    );
    let mut value: serde_json::Value = serde_json::from_str(&line).unwrap();
    value["details"] = "x".repeat(2000).into();
    assert_eq!(
        AuditEntry::from_json_line(&value.to_string()),
        Err(AuditJsonError::Entry(AuditDecodeError::DetailsTooLong {
            len: 2000
        }))
    );
    let mut value: serde_json::Value = serde_json::from_str(&line).unwrap();
    value["kind"] = "tool_call_approved".into();
    assert!(AuditEntry::from_json_line(&value.to_string()).is_err());
    assert!(matches!(
        AuditEntry::from_json_line(&" ".repeat(20_000)),
        Err(AuditJsonError::TooLong { len: 20_000 })
    ));
    assert!(AuditEntry::from_json_line("").is_err());
}

#[test]
fn long_details_and_tool_names_are_cut_not_refused() {
    let mut chain = AuditChain::new();
    let entry = chain.append(
        &key(1),
        T0,
        AuditKind::ToolCallDenied,
        Subject::none().with_tool(&"é".repeat(100)),
        &"ж".repeat(1000),
    );
    assert_eq!(entry.subject().tool().unwrap().len(), 128);
    assert_eq!(entry.details().len(), 1024);
    verify_chain(&node(1), [entry]).unwrap();
}
