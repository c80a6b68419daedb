//! The audit log: appending, reading back, resuming after a restart, and tampering found by
//! verification.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{db_path, node, raw};
use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_store::{MAX_AUDIT_RANGE, Store, StoreError, StoreOptions, Synchronous};
use dawn_trust::{
    AuditChain, AuditEntry, AuditKind, AuditVerifyError, ChainHead, Subject, verify_chain,
};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn me() -> NodeId {
    NodeId::from(key().verifying_key())
}

/// The `i`-th test entry: kinds and subjects vary so every column is exercised.
fn next(chain: &mut AuditChain, i: u64) -> AuditEntry {
    let subject = match i % 3 {
        0 => Subject::none(),
        1 => Subject::none().with_peer(node(i)),
        _ => Subject::none()
            .with_peer(node(i))
            .with_agent("memory".parse().unwrap())
            .with_tool("recall"),
    };
    // Every kind but KeyRotated, which would hand the chain to another key.
    let kinds = &AuditKind::ALL[..AuditKind::ALL.len() - 1];
    assert!(!kinds.contains(&AuditKind::KeyRotated));
    let kind = kinds[usize::try_from(i).unwrap() % kinds.len()];
    chain.append(
        &key(),
        1_700_000_000_000 + i * 1_000,
        kind,
        subject,
        &format!("entry {i}"),
    )
}

fn fill(store: &Store, n: u64) -> Vec<AuditEntry> {
    let mut chain = AuditChain::resume(store.audit().head().unwrap());
    let entries: Vec<_> = (0..n).map(|i| next(&mut chain, i)).collect();
    for entry in &entries {
        store.audit().append(entry).unwrap();
    }
    entries
}

#[test]
fn appended_entries_read_back_in_order_and_verify() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(store.audit().count().unwrap(), 0);
    assert_eq!(store.audit().last().unwrap(), None);
    assert_eq!(store.audit().head().unwrap(), ChainHead::GENESIS);
    assert_eq!(
        verify_chain(&me(), store.audit().iter_all())
            .unwrap()
            .entries,
        0
    );

    let entries = fill(&store, 10);
    assert_eq!(store.audit().count().unwrap(), 10);
    assert_eq!(store.audit().last().unwrap().as_ref(), entries.last());
    assert_eq!(
        store.audit().head().unwrap(),
        ChainHead::after(entries.last().unwrap())
    );
    assert_eq!(store.audit().range(0, 100).unwrap(), entries);
    assert_eq!(store.audit().range(4, 3).unwrap(), entries[4..7]);
    assert_eq!(store.audit().range(10, 3).unwrap(), vec![]);
    assert_eq!(store.audit().range(u64::MAX, 3).unwrap(), vec![]);
    assert_eq!(store.audit().get(7).unwrap().as_ref(), Some(&entries[7]));
    assert_eq!(store.audit().get(10).unwrap(), None);
    assert_eq!(store.audit().get(u64::MAX).unwrap(), None);

    let stored: Vec<Vec<u8>> = store.audit().iter_all().collect();
    let encoded: Vec<Vec<u8>> = entries.iter().map(AuditEntry::encode).collect();
    assert_eq!(stored, encoded);
    let verified = verify_chain(&me(), store.audit().iter_all()).unwrap();
    assert_eq!(verified.entries, 10);
    assert_eq!(verified.head, store.audit().head().unwrap());
}

#[test]
fn encoded_entries_are_stored_byte_for_byte() {
    let store = Store::open_in_memory().unwrap();
    let mut chain = AuditChain::new();
    let bytes = next(&mut chain, 2).encode();
    store.audit().append_encoded(&bytes).unwrap();
    assert_eq!(store.audit().iter_all().collect::<Vec<_>>(), vec![bytes]);

    for garbage in [&[][..], &[1, 2, 3], &[9; 200]] {
        assert!(matches!(
            store.audit().append_encoded(garbage),
            Err(StoreError::InvalidAuditEntry(_))
        ));
    }
    assert!(matches!(
        store.audit().append_encoded(&vec![1; 5_000]),
        Err(StoreError::InvalidAuditEntry(_))
    ));
    assert_eq!(store.audit().count().unwrap(), 1);
}

#[test]
fn entries_that_do_not_continue_the_log_are_refused() {
    let store = Store::open_in_memory().unwrap();
    fill(&store, 3);
    let head = store.audit().head().unwrap();

    // A gap: the caller's chain ran ahead of the store.
    let mut ahead = AuditChain::resume(ChainHead {
        next_seq: head.next_seq + 1,
        ..head
    });
    match store.audit().append(&next(&mut ahead, 4)) {
        Err(StoreError::AuditOutOfSequence { expected, found }) => {
            assert_eq!((expected, found), (3, 4));
        }
        other => panic!("expected AuditOutOfSequence, got {other:?}"),
    }
    // A duplicate of an existing seq.
    let mut behind = AuditChain::resume(ChainHead {
        next_seq: 1,
        ..head
    });
    assert!(matches!(
        store.audit().append(&next(&mut behind, 1)),
        Err(StoreError::AuditOutOfSequence {
            expected: 3,
            found: 1
        })
    ));
    // The right seq on another chain.
    let mut other = AuditChain::resume(ChainHead {
        next_seq: 3,
        last_hash: [7; 32],
    });
    assert!(matches!(
        store.audit().append(&next(&mut other, 3)),
        Err(StoreError::AuditBrokenLink { seq: 3 })
    ));

    // A batch is all or nothing: a bad entry in the middle leaves the log as it was.
    let mut chain = AuditChain::resume(head);
    let mut batch: Vec<_> = (3..6).map(|i| next(&mut chain, i)).collect();
    batch.swap(1, 2);
    assert!(store.audit().append_batch(&batch).is_err());
    assert_eq!(store.audit().count().unwrap(), 3);
    batch.swap(1, 2);
    store.audit().append_batch(&batch).unwrap();
    store.audit().append_batch(&[]).unwrap();
    assert_eq!(store.audit().count().unwrap(), 6);
    assert_eq!(
        verify_chain(&me(), store.audit().iter_all())
            .unwrap()
            .entries,
        6
    );
}

#[test]
fn the_chain_continues_after_reopening() {
    let (_dir, path) = db_path();
    {
        let store = Store::open(&path).unwrap();
        fill(&store, 5);
    }
    let store = Store::open(&path).unwrap();
    let last = store.audit().last().unwrap().unwrap();
    assert_eq!(last.seq(), 4);
    let mut chain = AuditChain::resume(ChainHead::after(&last));
    for i in 5..8 {
        store.audit().append(&next(&mut chain, i)).unwrap();
    }
    let verified = verify_chain(&me(), store.audit().iter_all()).unwrap();
    assert_eq!(verified.entries, 8);
}

#[test]
fn paging_covers_long_logs() {
    let store = Store::open_in_memory().unwrap();
    let n = u64::try_from(MAX_AUDIT_RANGE).unwrap() * 2 + 17;
    let mut chain = AuditChain::new();
    let entries: Vec<_> = (0..n).map(|i| next(&mut chain, i)).collect();
    store.audit().append_batch(&entries).unwrap();

    assert_eq!(
        store.audit().range(0, usize::MAX).unwrap().len(),
        MAX_AUDIT_RANGE
    );
    let tail = store.audit().range(n - 17, usize::MAX).unwrap();
    assert_eq!(tail, entries[entries.len() - 17..]);
    assert_eq!(store.audit().iter_all().count(), entries.len());
    assert_eq!(
        verify_chain(&me(), store.audit().iter_all())
            .unwrap()
            .entries,
        n
    );
}

#[test]
fn the_schema_refuses_updates_and_deletes() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    fill(&store, 3);
    let conn = raw(&path);
    for sql in [
        "UPDATE audit_log SET timestamp_ms = 0 WHERE seq = 1",
        "UPDATE audit_log SET entry = x'00' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 2",
        "DELETE FROM audit_log",
    ] {
        let error = conn.execute(sql, []).unwrap_err().to_string();
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(store.audit().count().unwrap(), 3);
}

/// A raw connection with the append-only triggers removed, as an attacker with file access
/// would have.
fn tamperer(path: &std::path::Path) -> rusqlite::Connection {
    let conn = raw(path);
    conn.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
        .unwrap();
    conn
}

fn first_fault(store: &Store) -> AuditVerifyError {
    verify_chain(&me(), store.audit().iter_all()).unwrap_err()
}

#[test]
fn changing_any_byte_of_an_entry_fails_verification_at_its_seq() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    let entries = fill(&store, 6);
    let conn = tamperer(&path);
    for target in [0u64, 2, 5] {
        let original = entries[usize::try_from(target).unwrap()].encode();
        for i in 0..original.len() {
            let mut bytes = original.clone();
            bytes[i] ^= 0x01;
            conn.execute(
                "UPDATE audit_log SET entry = ?1 WHERE seq = ?2",
                rusqlite::params![bytes, i64::try_from(target).unwrap()],
            )
            .unwrap();
            let fault = first_fault(&store);
            assert_eq!(
                fault.position(),
                target,
                "byte {i} of entry {target}: {fault}"
            );
        }
        conn.execute(
            "UPDATE audit_log SET entry = ?1 WHERE seq = ?2",
            rusqlite::params![original, i64::try_from(target).unwrap()],
        )
        .unwrap();
        assert_eq!(
            verify_chain(&me(), store.audit().iter_all())
                .unwrap()
                .entries,
            6
        );
    }
}

#[test]
fn changing_an_indexed_column_fails_verification_at_its_seq() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    fill(&store, 6);
    let conn = tamperer(&path);
    // Entry 4 names node(4) as its peer; entry 3 names none.
    for (sql, undo, seq) in [
        (
            "UPDATE audit_log SET timestamp_ms = timestamp_ms + 1 WHERE seq = 3",
            "UPDATE audit_log SET timestamp_ms = timestamp_ms - 1 WHERE seq = 3",
            3,
        ),
        (
            "UPDATE audit_log SET kind = kind + 1 WHERE seq = 4",
            "UPDATE audit_log SET kind = kind - 1 WHERE seq = 4",
            4,
        ),
        (
            "UPDATE audit_log SET peer = NULL WHERE seq = 4",
            "UPDATE audit_log SET peer = (SELECT peer FROM audit_log WHERE seq = 1) WHERE seq = 4",
            4,
        ),
        (
            "UPDATE audit_log SET peer = zeroblob(32) WHERE seq = 3",
            "UPDATE audit_log SET peer = NULL WHERE seq = 3",
            3,
        ),
        (
            "UPDATE audit_log SET seq = 1000 WHERE seq = 2",
            "UPDATE audit_log SET seq = 2 WHERE seq = 1000",
            2,
        ),
    ] {
        conn.execute(sql, []).unwrap();
        assert_eq!(first_fault(&store).position(), seq, "{sql}");
        if !sql.contains("seq = 1000") {
            assert!(
                matches!(store.audit().get(seq), Err(StoreError::InvalidRow { .. })),
                "{sql}"
            );
            assert!(matches!(
                store.audit().range(0, 10),
                Err(StoreError::InvalidRow { .. })
            ));
        }
        conn.execute(undo, []).unwrap();
        // The peer undo for seq 4 restores node(1), not node(4): put the right one back.
        if sql.contains("peer = NULL WHERE seq = 4") {
            conn.execute(
                "UPDATE audit_log SET peer = ?1 WHERE seq = 4",
                [node(4).as_bytes().as_slice()],
            )
            .unwrap();
        }
        assert_eq!(
            verify_chain(&me(), store.audit().iter_all())
                .unwrap()
                .entries,
            6,
            "{undo}"
        );
    }
}

#[test]
fn deleted_and_damaged_tails_are_found() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    fill(&store, 6);
    let conn = tamperer(&path);
    conn.execute("DELETE FROM audit_log WHERE seq = 2", [])
        .unwrap();
    assert!(matches!(
        first_fault(&store),
        AuditVerifyError::Missing {
            position: 2,
            expected_seq: 2,
            found_seq: 3
        }
    ));
    // The head is computed from the last row, so appends continue; verification still fails.
    conn.execute("UPDATE audit_log SET entry = x'01' WHERE seq = 5", [])
        .unwrap();
    assert!(matches!(
        store.audit().head(),
        Err(StoreError::InvalidRow { .. })
    ));
    assert!(matches!(
        store.audit().last(),
        Err(StoreError::InvalidRow { .. })
    ));
    let mut chain = AuditChain::resume(ChainHead {
        next_seq: 6,
        last_hash: [0; 32],
    });
    assert!(matches!(
        store.audit().append(&next(&mut chain, 6)),
        Err(StoreError::InvalidRow { .. })
    ));
}

#[test]
fn appends_are_durable_on_a_normal_sync_store_and_the_setting_is_kept() {
    let (_dir, path) = db_path();
    let options = StoreOptions::default().with_synchronous(Synchronous::Normal);
    let store = Store::open_with(&path, &options).unwrap();
    fill(&store, 3);
    // Other writes still work, and the audit log is whole after reopening.
    store.peers().upsert(&node(1), &[], common::at(1)).unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        verify_chain(&me(), store.audit().iter_all())
            .unwrap()
            .entries,
        3
    );
}

#[test]
fn iteration_can_run_on_another_thread() {
    let store = Store::open_in_memory().unwrap();
    fill(&store, 4);
    let iter = store.audit().iter_all();
    let n = std::thread::spawn(move || verify_chain(&me(), iter).unwrap().entries)
        .join()
        .unwrap();
    assert_eq!(n, 4);
}
