//! Online backup while the store is written to, and restoring from a backup.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use common::{at, db_path, node, raw, wal_path};
use dawn_crypto::SigningKey;
use dawn_identity::{AgentId, NodeId};
use dawn_store::{SCHEMA_VERSION, Sealer, Store, StoreError};
use dawn_trust::{AuditChain, AuditKind, PeerSnapshot, Subject, verify_chain};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[21; 32])
}

fn me() -> NodeId {
    NodeId::from(key().verifying_key())
}

fn sealer() -> Sealer {
    Sealer::from_signing_key(&key())
}

fn memory() -> AgentId {
    "memory".parse().unwrap()
}

fn snapshot(i: u64) -> PeerSnapshot {
    PeerSnapshot {
        peer: node(i),
        score: 0.5,
        updated_ms: i,
        gain_tokens: 0.5,
        last_seen_ms: i,
        handshake: true,
        assigned: None,
        auto_untrusted: false,
        verified: false,
        recommended_by: vec![],
    }
}

/// A store at `path` holding some of everything.
fn populated(path: &Path) -> Store {
    let store = Store::open(path).unwrap();
    let sealer = sealer();
    for i in 0..20 {
        store
            .peers()
            .upsert(&node(i), &["192.0.2.1:4433".parse().unwrap()], at(i))
            .unwrap();
        store.trust(&sealer).put(&snapshot(i)).unwrap();
    }
    let mut chain = AuditChain::new();
    for i in 0..10 {
        let entry = chain.append(&key(), i, AuditKind::NodeStarted, Subject::none(), "");
        store.audit().append(&entry).unwrap();
    }
    store
        .agent_data(&sealer)
        .put(&memory(), "plain", b"hello", false, at(1))
        .unwrap();
    store
        .agent_data(&sealer)
        .put(&memory(), "secret", b"s3cret", true, at(2))
        .unwrap();
    store.registry().save(b"registry v1").unwrap();
    store.settings().put("node/policy", b"{}").unwrap();
    store
}

/// Checks everything [`populated`] wrote, with a freshly derived sealer.
fn assert_populated(store: &Store, audit_at_least: u64) {
    let sealer = Sealer::from_secret(&[21; 32]);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(store.peers().count().unwrap() >= 20);
    assert_eq!(
        store.peers().get(&node(3)).unwrap().unwrap().first_seen,
        at(3)
    );
    let trust = store.trust(&sealer).all().unwrap();
    assert!(trust.len() >= 20);
    assert_eq!(
        store.trust(&sealer).get(&node(7)).unwrap(),
        Some(snapshot(7))
    );
    let verified = verify_chain(&me(), store.audit().iter_all()).unwrap();
    assert!(verified.entries >= audit_at_least, "{}", verified.entries);
    let data = store.agent_data(&sealer);
    assert_eq!(
        &data.get(&memory(), "plain").unwrap().unwrap().value[..],
        b"hello"
    );
    assert_eq!(
        &data.get(&memory(), "secret").unwrap().unwrap().value[..],
        b"s3cret"
    );
    assert_eq!(
        store.registry().load().unwrap(),
        Some(b"registry v1".to_vec())
    );
    assert_eq!(
        store.settings().get("node/policy").unwrap(),
        Some(b"{}".to_vec())
    );
}

#[test]
fn backup_while_another_thread_writes_then_restore() {
    let (dir, path) = db_path();
    let store = populated(&path);
    let backup = dir.path().join("backup.db");

    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let audited_before_backup = thread::scope(|s| {
        let writer = s.spawn(|| {
            let sealer = sealer();
            let mut chain = AuditChain::resume(store.audit().head().unwrap());
            let mut i = 1_000;
            while !stop.load(Ordering::Relaxed) {
                store.peers().upsert(&node(i), &[], at(i)).unwrap();
                store.trust(&sealer).put(&snapshot(i)).unwrap();
                let entry =
                    chain.append(&key(), i, AuditKind::ToolCallAllowed, Subject::none(), "");
                store.audit().append(&entry).unwrap();
                written.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        });
        // Let the writer get going, then back up in the middle of its writes.
        while written.load(Ordering::Relaxed) < 20 {
            thread::sleep(Duration::from_millis(1));
        }
        let audited = store.audit().count().unwrap();
        store.backup_to(&backup).unwrap();
        let after_backup = written.load(Ordering::Relaxed);
        thread::sleep(Duration::from_millis(20));
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        // The writer was never blocked for long: it kept writing during and after the backup.
        assert!(written.load(Ordering::Relaxed) > after_backup);
        audited
    });

    // The backup is one self-contained file in rollback-journal mode.
    let header = fs::read(&backup).unwrap();
    assert_eq!(&header[..16], b"SQLite format 3\0");
    assert_eq!((header[18], header[19]), (1, 1), "rollback journal");
    assert!(!wal_path(&backup).exists());

    // The backup holds a consistent state: a prefix of the audit chain that verifies,
    // and at least what was there when it started.
    let restored = dir.path().join("restored.db");
    Store::restore_from(&backup, &restored).unwrap();
    let copy = Store::open(&restored).unwrap();
    assert_populated(&copy, audited_before_backup);
    let copied = copy.audit().count().unwrap();
    assert!(copied <= store.audit().count().unwrap());
    // Everything the backup holds matches the live store.
    let live: Vec<Vec<u8>> = store.audit().iter_all().take(copied as usize).collect();
    assert_eq!(copy.audit().iter_all().collect::<Vec<_>>(), live);
    // The copy is one snapshot of the writer's history: it wrote a peer, then its trust
    // record, then an audit entry, each in its own transaction, so the copy holds n, n or
    // n - 1, and n or n - 1 of them.
    let peers = copy.peers().count().unwrap() - 20;
    let trust = copy.trust(&sealer()).count().unwrap() - 20;
    let audit = copied - 10;
    assert!(
        peers >= trust && trust >= audit && audit + 1 >= peers,
        "peers {peers}, trust {trust}, audit {audit}"
    );
}

#[test]
fn restoring_replaces_a_closed_database() {
    let (dir, path) = db_path();
    let backup = dir.path().join("backup.db");
    populated(&path).backup_to(&backup).unwrap();

    // The database moves on after the backup, then is restored to it.
    {
        let store = Store::open(&path).unwrap();
        store.registry().save(b"registry v2").unwrap();
        store.agent_data(&sealer()).clear(&memory()).unwrap();
        store.peers().upsert(&node(500), &[], at(1)).unwrap();
    }
    Store::restore_from(&backup, &path).unwrap();
    let store = Store::open(&path).unwrap();
    assert_populated(&store, 10);
    assert_eq!(store.peers().get(&node(500)).unwrap(), None);
    assert_eq!(store.peers().count().unwrap(), 20);
    store
        .integrity_check(dawn_store::IntegrityCheck::Full)
        .unwrap();
}

#[test]
fn restoring_refuses_an_open_target_and_leaves_it_alone() {
    let (dir, path) = db_path();
    let backup = dir.path().join("backup.db");
    populated(&path).backup_to(&backup).unwrap();

    let (_dir2, target) = db_path();
    let open = Store::open(&target).unwrap();
    open.registry().save(b"mine").unwrap();
    match Store::restore_from(&backup, &target) {
        Err(StoreError::RestoreTargetInUse { path }) => assert_eq!(path, target),
        other => panic!("expected RestoreTargetInUse, got {other:?}"),
    }
    // Still usable, still its own data.
    assert_eq!(open.registry().load().unwrap(), Some(b"mine".to_vec()));
    open.registry().save(b"still mine").unwrap();

    // A plain SQLite connection holding it open counts too.
    drop(open);
    let conn = raw(&target);
    conn.query_row("SELECT count(*) FROM peers", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert!(matches!(
        Store::restore_from(&backup, &target),
        Err(StoreError::RestoreTargetInUse { .. })
    ));
    drop(conn);
    Store::restore_from(&backup, &target).unwrap();
    assert_populated(&Store::open(&target).unwrap(), 10);
}

#[test]
fn bad_backups_are_refused_and_the_target_is_untouched() {
    let (dir, path) = db_path();
    let good = dir.path().join("good.db");
    populated(&path).backup_to(&good).unwrap();
    let target = dir.path().join("target.db");
    drop(Store::open(&target).unwrap());
    let target_before = fs::read(&target).unwrap();

    // Missing.
    assert!(matches!(
        Store::restore_from(dir.path().join("missing.db"), &target),
        Err(StoreError::Io { .. })
    ));
    // Not SQLite, or empty.
    let junk = dir.path().join("junk.db");
    fs::write(&junk, b"definitely not a database, just some text").unwrap();
    assert!(matches!(
        Store::restore_from(&junk, &target),
        Err(StoreError::NotSqlite { .. })
    ));
    fs::write(&junk, b"").unwrap();
    assert!(matches!(
        Store::restore_from(&junk, &target),
        Err(StoreError::NotSqlite { .. })
    ));
    // Another application's database.
    let foreign = dir.path().join("foreign.db");
    raw(&foreign)
        .execute_batch("PRAGMA application_id = 7; CREATE TABLE t (x);")
        .unwrap();
    match Store::restore_from(&foreign, &target) {
        Err(StoreError::ForeignDatabase {
            path,
            application_id,
        }) => {
            assert_eq!(path, foreign);
            assert_eq!(application_id, 7);
        }
        other => panic!("expected ForeignDatabase, got {other:?}"),
    }
    // A newer schema.
    let newer = dir.path().join("newer.db");
    fs::copy(&good, &newer).unwrap();
    raw(&newer)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    assert!(matches!(
        Store::restore_from(&newer, &target),
        Err(StoreError::SchemaTooNew { found, .. }) if found == SCHEMA_VERSION + 1
    ));
    // A damaged page.
    let damaged = dir.path().join("damaged.db");
    let mut bytes = fs::read(&good).unwrap();
    let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    let pages = bytes.len() / page;
    assert!(pages > 3, "{pages}");
    for b in &mut bytes[(pages - 2) * page..(pages - 1) * page] {
        *b = 0xa5;
    }
    fs::write(&damaged, &bytes).unwrap();
    match Store::restore_from(&damaged, &target) {
        Err(StoreError::Corrupt { path, .. }) => assert_eq!(path, damaged),
        other => panic!("expected Corrupt, got {other:?}"),
    }

    assert_eq!(fs::read(&target).unwrap(), target_before);
    // A target that does not exist is not created by a failed restore.
    let fresh = dir.path().join("fresh.db");
    assert!(Store::restore_from(&foreign, &fresh).is_err());
    assert!(!fresh.exists());
}

#[test]
fn restoring_over_another_applications_database_is_refused() {
    let (dir, path) = db_path();
    let backup = dir.path().join("backup.db");
    populated(&path).backup_to(&backup).unwrap();
    let theirs = dir.path().join("theirs.db");
    raw(&theirs)
        .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep');")
        .unwrap();
    let before = fs::read(&theirs).unwrap();
    assert!(matches!(
        Store::restore_from(&backup, &theirs),
        Err(StoreError::ForeignDatabase { .. })
    ));
    assert_eq!(fs::read(&theirs).unwrap(), before);
}

#[test]
fn a_backup_never_overwrites_a_file() {
    let (dir, path) = db_path();
    let store = populated(&path);
    let existing = dir.path().join("existing.db");
    fs::write(&existing, b"precious").unwrap();
    assert!(matches!(
        store.backup_to(&existing),
        Err(StoreError::BackupTargetExists { .. })
    ));
    assert_eq!(fs::read(&existing).unwrap(), b"precious");
    assert!(matches!(
        store.backup_to(&path),
        Err(StoreError::BackupTargetExists { .. })
    ));
    // Nothing is left behind by a failed backup.
    let missing_dir = dir.path().join("no-such-dir").join("b.db");
    assert!(matches!(
        store.backup_to(&missing_dir),
        Err(StoreError::Io { .. })
    ));
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_in_memory_store_can_be_backed_up() {
    let store = Store::open_in_memory().unwrap();
    store.registry().save(b"in memory").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("mem.db");
    store.backup_to(&backup).unwrap();
    let copy = dir.path().join("copy.db");
    Store::restore_from(&backup, &copy).unwrap();
    assert_eq!(
        Store::open(&copy).unwrap().registry().load().unwrap(),
        Some(b"in memory".to_vec())
    );
}
