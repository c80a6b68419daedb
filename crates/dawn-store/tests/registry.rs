//! The registry snapshot: one blob, replaced whole, bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::db_path;
use dawn_store::{MAX_REGISTRY_SNAPSHOT_LEN, Store, StoreError};

#[test]
fn the_latest_snapshot_is_kept_across_restarts() {
    let (_dir, path) = db_path();
    {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.registry().load().unwrap(), None);
        store.registry().save(b"\x01first").unwrap();
        store.registry().save(b"\x01second").unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.registry().load().unwrap(),
        Some(b"\x01second".to_vec())
    );
    store.registry().save(b"").unwrap();
    assert_eq!(store.registry().load().unwrap(), Some(Vec::new()));
    assert!(store.registry().clear().unwrap());
    assert!(!store.registry().clear().unwrap());
    assert_eq!(store.registry().load().unwrap(), None);
}

#[test]
fn oversized_snapshots_are_refused_and_the_old_one_stays() {
    let store = Store::open_in_memory().unwrap();
    store.registry().save(b"kept").unwrap();
    let big = vec![0u8; MAX_REGISTRY_SNAPSHOT_LEN + 1];
    assert!(matches!(
        store.registry().save(&big),
        Err(StoreError::TooLarge { .. })
    ));
    assert_eq!(store.registry().load().unwrap(), Some(b"kept".to_vec()));
    let max = vec![7u8; MAX_REGISTRY_SNAPSHOT_LEN];
    store.registry().save(&max).unwrap();
    assert_eq!(store.registry().load().unwrap().unwrap().len(), max.len());
}
