//! Settings: named bytes and JSON values, bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::db_path;
use dawn_store::{MAX_SETTING_VALUE_LEN, MAX_SETTINGS, Store, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Policy {
    default: String,
    rules: Vec<String>,
}

#[test]
fn values_round_trip_and_survive_reopening() {
    let (_dir, path) = db_path();
    let policy = Policy {
        default: "deny".into(),
        rules: vec!["allow peer x".into()],
    };
    {
        let store = Store::open(&path).unwrap();
        let settings = store.settings();
        assert_eq!(settings.get("node/policy").unwrap(), None);
        settings.put_json("node/policy", &policy).unwrap();
        settings.put("a.raw_value-1", &[0, 1, 2, 255]).unwrap();
        settings.put("empty", &[]).unwrap();
        settings.put("a.raw_value-1", &[9]).unwrap();
    }
    let store = Store::open(&path).unwrap();
    let settings = store.settings();
    assert_eq!(
        settings.get_json::<Policy>("node/policy").unwrap(),
        Some(policy)
    );
    assert_eq!(settings.get("a.raw_value-1").unwrap(), Some(vec![9]));
    assert_eq!(settings.get("empty").unwrap(), Some(vec![]));
    assert_eq!(
        settings.keys().unwrap(),
        vec!["a.raw_value-1", "empty", "node/policy"]
    );
    assert!(settings.delete("empty").unwrap());
    assert!(!settings.delete("empty").unwrap());
    assert_eq!(settings.get("empty").unwrap(), None);
}

#[test]
fn json_of_the_wrong_shape_is_a_typed_error() {
    let store = Store::open_in_memory().unwrap();
    store.settings().put("node/policy", b"not json").unwrap();
    match store.settings().get_json::<Policy>("node/policy") {
        Err(StoreError::InvalidJson { key, .. }) => assert_eq!(key, "node/policy"),
        other => panic!("{other:?}"),
    }
    store.settings().put_json("n", &5).unwrap();
    assert!(matches!(
        store.settings().get_json::<Policy>("n"),
        Err(StoreError::InvalidJson { .. })
    ));
    assert_eq!(store.settings().get_json::<u32>("n").unwrap(), Some(5));
}

#[test]
fn bad_names_and_oversized_values_are_refused() {
    let store = Store::open_in_memory().unwrap();
    let long = "k".repeat(129);
    for key in [
        "",
        "has space",
        "ümlaut",
        "semi;colon",
        "new\nline",
        long.as_str(),
    ] {
        assert!(
            matches!(
                store.settings().put(key, b"v"),
                Err(StoreError::InvalidKey { .. })
            ),
            "{key:?}"
        );
        assert!(matches!(
            store.settings().get(key),
            Err(StoreError::InvalidKey { .. })
        ));
    }
    store.settings().put(&"k".repeat(128), b"v").unwrap();
    store
        .settings()
        .put("big", &vec![7; MAX_SETTING_VALUE_LEN])
        .unwrap();
    assert!(matches!(
        store
            .settings()
            .put("big", &vec![7; MAX_SETTING_VALUE_LEN + 1]),
        Err(StoreError::TooLarge { .. })
    ));
    assert_eq!(
        store.settings().get("big").unwrap().unwrap().len(),
        MAX_SETTING_VALUE_LEN
    );
}

#[test]
fn the_number_of_settings_is_bounded() {
    let store = Store::open_in_memory().unwrap();
    for i in 0..MAX_SETTINGS {
        store.settings().put(&format!("s{i}"), b"v").unwrap();
    }
    assert!(matches!(
        store.settings().put("one-more", b"v"),
        Err(StoreError::LimitReached { .. })
    ));
    // Replacing an existing one is still allowed.
    store.settings().put("s0", b"new").unwrap();
    assert_eq!(store.settings().get("s0").unwrap(), Some(b"new".to_vec()));
    assert_eq!(
        u64::try_from(store.settings().keys().unwrap().len()).unwrap(),
        MAX_SETTINGS
    );
}
