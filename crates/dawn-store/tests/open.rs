//! Opening databases: fresh, existing, foreign, damaged and too new.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::io::Write as _;

use common::{at, db_path, node, raw, wal_path};
use dawn_store::{IntegrityCheck, SCHEMA_VERSION, Store, StoreError, StoreOptions};

/// "Dawn" in ASCII.
const APPLICATION_ID: i64 = 0x4461_776e;

fn pragma(conn: &rusqlite::Connection, name: &str) -> String {
    conn.query_row(&format!("PRAGMA {name}"), [], |row| {
        row.get::<_, rusqlite::types::Value>(0)
    })
    .map(|v| match v {
        rusqlite::types::Value::Integer(i) => i.to_string(),
        rusqlite::types::Value::Text(t) => t,
        other => format!("{other:?}"),
    })
    .unwrap()
}

/// A closed Dawn database holding `peers` peers.
fn populated(path: &std::path::Path, peers: u64) {
    let store = Store::open(path).unwrap();
    let rows: Vec<_> = (0..peers)
        .map(|i| {
            (
                node(i),
                vec![
                    format!("10.0.{}.{}:4433", i / 250, i % 250 + 1)
                        .parse()
                        .unwrap(),
                ],
            )
        })
        .collect();
    store.peers().upsert_many(&rows, at(1_000)).unwrap();
}

#[test]
fn fresh_database_is_created_in_wal_mode_at_the_newest_schema() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.path(), Some(path.as_path()));
    const { assert!(SCHEMA_VERSION >= 1) };

    let conn = raw(&path);
    assert_eq!(pragma(&conn, "journal_mode"), "wal");
    assert_eq!(pragma(&conn, "user_version"), SCHEMA_VERSION.to_string());
    assert_eq!(pragma(&conn, "application_id"), APPLICATION_ID.to_string());
}

#[test]
fn reopening_keeps_data_and_does_not_rerun_migrations() {
    let (_dir, path) = db_path();
    {
        let store = Store::open(&path).unwrap();
        store
            .peers()
            .upsert(&node(1), &["192.0.2.1:1".parse().unwrap()], at(5))
            .unwrap();
        store.peers().record_failure(&node(1), at(6)).unwrap();
    }
    for _ in 0..3 {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let peer = store.peers().get(&node(1)).unwrap().unwrap();
        assert_eq!(peer.failures, 1);
        assert_eq!(peer.first_seen, at(5));
        assert_eq!(store.peers().count().unwrap(), 1);
    }
}

#[test]
fn an_empty_file_becomes_a_database() {
    let (_dir, path) = db_path();
    fs::File::create(&path).unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn in_memory_store_is_at_the_newest_schema() {
    let store = Store::open_in_memory().unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.path(), None);
    store.integrity_check(IntegrityCheck::Full).unwrap();
}

#[test]
fn garbage_is_refused_and_left_untouched() {
    let (_dir, path) = db_path();
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    fs::write(&path, &garbage).unwrap();
    match Store::open(&path) {
        Err(StoreError::NotSqlite { path: p }) => assert_eq!(p, path),
        other => panic!("expected NotSqlite, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), garbage);
    assert!(!wal_path(&path).exists());

    // Short files too, including a lone prefix of the magic string.
    for bytes in [&b"x"[..], b"SQLite", b"SQLite format 4\0rest"] {
        fs::write(&path, bytes).unwrap();
        assert!(
            matches!(Store::open(&path), Err(StoreError::NotSqlite { .. })),
            "{bytes:?}"
        );
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }
}

#[test]
fn a_damaged_header_is_corruption() {
    let (_dir, path) = db_path();
    // The magic string but nothing after it.
    fs::write(&path, b"SQLite format 3\0\x10\x00").unwrap();
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::Corrupt { .. })
    ));

    // A real database whose page size field is nonsense.
    fs::remove_file(&path).unwrap();
    populated(&path, 10);
    let mut bytes = fs::read(&path).unwrap();
    bytes[16] = 0x03;
    bytes[17] = 0x00;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn another_applications_database_is_refused_and_left_untouched() {
    let (_dir, path) = db_path();
    {
        let conn = raw(&path);
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
            .unwrap();
    }
    let before = fs::read(&path).unwrap();
    match Store::open(&path) {
        Err(StoreError::ForeignDatabase { application_id, .. }) => assert_eq!(application_id, 0),
        other => panic!("expected ForeignDatabase, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), before);

    {
        let conn = raw(&path);
        conn.execute_batch("PRAGMA application_id = 42;").unwrap();
    }
    let before = fs::read(&path).unwrap();
    match Store::open(&path) {
        Err(StoreError::ForeignDatabase { application_id, .. }) => assert_eq!(application_id, 42),
        other => panic!("expected ForeignDatabase, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let (_dir, path) = db_path();
    populated(&path, 3);
    {
        // Rollback-journal mode, so that switching it to WAL would show in the header.
        let conn = raw(&path);
        conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
            .unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let before = fs::read(&path).unwrap();
    match Store::open(&path) {
        Err(StoreError::SchemaTooNew {
            found, supported, ..
        }) => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), before);
    assert!(!wal_path(&path).exists());
    // A later build that knows the version would still find every row.
    let conn = raw(&path);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM peers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
}

#[test]
fn a_database_left_in_rollback_journal_mode_is_switched_to_wal() {
    let (_dir, path) = db_path();
    populated(&path, 3);
    raw(&path)
        .query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.peers().count().unwrap(), 3);
    assert_eq!(pragma(&raw(&path), "journal_mode"), "wal");
}

/// Overwrites the page in the middle of the file with junk.
fn smash_middle_page(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = fs::read(path).unwrap();
    let page = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    let pages = bytes.len() / page;
    assert!(pages > 4, "database too small to damage: {pages} pages");
    let start = pages / 2 * page;
    for (i, b) in bytes[start..start + page].iter_mut().enumerate() {
        *b = (i * 31 % 256) as u8 ^ 0x5a;
    }
    fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn a_damaged_page_is_corruption_at_open() {
    let (_dir, path) = db_path();
    populated(&path, 2_000);
    let damaged = smash_middle_page(&path);
    for check in [IntegrityCheck::Quick, IntegrityCheck::Full] {
        let options = StoreOptions::default().with_integrity_check(check);
        match Store::open_with(&path, &options) {
            Err(StoreError::Corrupt { path: p, detail }) => {
                assert_eq!(p, path);
                assert!(!detail.is_empty());
            }
            other => panic!("expected Corrupt with {check:?}, got {other:?}"),
        }
        assert_eq!(fs::read(&path).unwrap(), damaged);
    }
}

#[test]
fn a_damaged_page_is_still_reported_when_the_open_check_is_skipped() {
    let (_dir, path) = db_path();
    populated(&path, 2_000);
    smash_middle_page(&path);
    let options = StoreOptions::default().with_integrity_check(IntegrityCheck::Skip);
    let store = Store::open_with(&path, &options).unwrap();
    assert!(matches!(
        store.peers().list(usize::MAX),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.integrity_check(IntegrityCheck::Quick),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn a_truncated_database_is_corruption() {
    let (_dir, path) = db_path();
    populated(&path, 2_000);
    let whole = fs::read(&path).unwrap();
    let page = usize::from(u16::from_be_bytes([whole[16], whole[17]]));

    // Cut at a page boundary: the header still counts the lost pages.
    let cut = &whole[..whole.len() / page / 2 * page];
    fs::write(&path, cut).unwrap();
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), cut);

    // Cut in the middle of a page.
    let cut = &whole[..whole.len() - page / 2];
    fs::write(&path, cut).unwrap();
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), cut);
}

#[test]
fn a_directory_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Io { .. })
    ));
}

#[test]
fn a_missing_directory_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("node.db");
    assert!(Store::open(&path).is_err());
    assert!(!dir.path().join("missing").exists());
}

#[test]
fn errors_name_the_problem_for_operators() {
    let (_dir, path) = db_path();
    fs::File::create(&path)
        .unwrap()
        .write_all(b"definitely not sqlite")
        .unwrap();
    let message = Store::open(&path).unwrap_err().to_string();
    assert!(message.contains("not an SQLite database"), "{message}");
    assert!(message.contains("node.db"), "{message}");
}

#[test]
fn handles_cross_threads_and_errors_are_boxable() {
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    assert_send_sync::<Store>();
    assert_error::<StoreError>();
}

/// The schema as SQLite records it, pinned so that it never changes by accident.
/// Regenerate with `DAWN_BLESS=1 cargo test -p dawn-store --test open` after adding a migration.
#[test]
fn schema_matches_golden_file() {
    let (_dir, path) = db_path();
    drop(Store::open(&path).unwrap());
    let conn = raw(&path);
    let mut dump = format!(
        "-- user_version = {}\n-- application_id = {}\n",
        pragma(&conn, "user_version"),
        pragma(&conn, "application_id")
    );
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name")
        .unwrap();
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (kind, name, sql) = row.unwrap();
        dump.push_str(&format!(
            "\n-- {kind} {name}\n{};\n",
            sql.unwrap_or_default()
        ));
    }
    let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/schema.sql");
    if std::env::var_os("DAWN_BLESS").is_some() {
        fs::write(golden, &dump).unwrap();
    }
    let expected = fs::read_to_string(golden).unwrap();
    assert_eq!(
        dump, expected,
        "schema drifted; if intended, re-bless the golden file"
    );
}
