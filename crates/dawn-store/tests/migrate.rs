//! Upgrading databases written at every older schema version: the data they hold survives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{at, db_path, node, raw};
use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_store::{SCHEMA_VERSION, SealPurpose, Sealer, Store};
use dawn_trust::{AuditChain, AuditKind, PeerSnapshot, Subject, verify_chain};

/// Every migration, in order, exactly as the store applies them. Adding one to the store
/// without adding it here fails `the_list_here_is_complete`.
const MIGRATIONS: &[&str] = &[
    include_str!("../src/migrations/0001_peers.sql"),
    include_str!("../src/migrations/0002_audit.sql"),
    include_str!("../src/migrations/0003_trust_settings.sql"),
    include_str!("../src/migrations/0004_agent_data_registry.sql"),
];

#[test]
fn the_list_here_is_complete() {
    assert_eq!(MIGRATIONS.len(), usize::try_from(SCHEMA_VERSION).unwrap());
}

fn sealer() -> Sealer {
    Sealer::from_secret(&[9; 32])
}

fn snapshot() -> PeerSnapshot {
    PeerSnapshot {
        peer: node(2),
        score: 0.75,
        updated_ms: 10,
        gain_tokens: 1.0,
        last_seen_ms: 11,
        handshake: true,
        assigned: None,
        auto_untrusted: false,
        verified: false,
        recommended_by: vec![],
    }
}

/// A closed database at schema `version`, holding a peer, from version 2 an audit entry, and
/// from version 3 a sealed trust record and a setting.
fn database_at(path: &std::path::Path, version: usize) -> Option<Vec<u8>> {
    let mut conn = raw(path);
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    let tx = conn.transaction().unwrap();
    for sql in &MIGRATIONS[..version] {
        tx.execute_batch(sql).unwrap();
    }
    tx.pragma_update(None, "user_version", i64::try_from(version).unwrap())
        .unwrap();
    tx.execute(
        "INSERT INTO peers (id, addrs, first_seen, failures) VALUES (?1, '192.0.2.1:7', 5, 2)",
        [node(1).as_bytes().as_slice()],
    )
    .unwrap();
    let mut entry = None;
    if version >= 2 {
        let key = SigningKey::from_bytes(&[9; 32]);
        let e = AuditChain::new().append(&key, 77, AuditKind::NodeStarted, Subject::none(), "v");
        tx.execute(
            "INSERT INTO audit_log (seq, timestamp_ms, kind, peer, entry) VALUES (0, 77, 1, NULL, ?1)",
            [e.encode()],
        )
        .unwrap();
        entry = Some(e.encode());
    }
    if version >= 3 {
        let record = sealer()
            .seal(
                SealPurpose::Trust,
                "trust_records",
                node(2).as_bytes(),
                &snapshot().encode().unwrap(),
            )
            .unwrap();
        tx.execute(
            "INSERT INTO trust_records (peer, record) VALUES (?1, ?2)",
            rusqlite::params![node(2).as_bytes().as_slice(), record],
        )
        .unwrap();
        tx.execute("INSERT INTO settings (key, value) VALUES ('k', x'01')", [])
            .unwrap();
    }
    tx.commit().unwrap();
    entry
}

#[test]
fn every_older_version_upgrades_with_its_data_intact() {
    for version in 1..usize::try_from(SCHEMA_VERSION).unwrap() {
        let (_dir, path) = db_path();
        let entry = database_at(&path, version);
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            SCHEMA_VERSION,
            "from {version}"
        );

        let peer = store.peers().get(&node(1)).unwrap().unwrap();
        assert_eq!(peer.failures, 2);
        assert_eq!(peer.first_seen, at(5));
        assert_eq!(peer.addrs, vec!["192.0.2.1:7".parse().unwrap()]);

        let signer = NodeId::from(SigningKey::from_bytes(&[9; 32]).verifying_key());
        let stored: Vec<Vec<u8>> = store.audit().iter_all().collect();
        assert_eq!(stored, entry.into_iter().collect::<Vec<_>>());
        verify_chain(&signer, store.audit().iter_all()).unwrap();

        // Sealed rows do not depend on the schema version: they open after any upgrade.
        if version >= 3 {
            assert_eq!(
                store.trust(&sealer()).get(&node(2)).unwrap(),
                Some(snapshot())
            );
            assert_eq!(store.settings().get("k").unwrap(), Some(vec![1]));
        }
    }
}
