//! Agent data: namespaced values, sealed when sensitive, listed, searched and bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{at, db_path, raw};
use dawn_identity::AgentId;
use dawn_store::{
    AgentUsage, MAX_AGENT_BYTES, MAX_AGENT_KEYS, MAX_AGENT_LIST, MAX_AGENT_VALUE_LEN,
    SEAL_OVERHEAD, Sealer, Store, StoreError,
};
use proptest::prelude::*;

fn sealer() -> Sealer {
    Sealer::from_secret(&[3; 32])
}

fn agent(name: &str) -> AgentId {
    name.parse().unwrap()
}

fn keys(records: &[dawn_store::AgentRecord]) -> Vec<&str> {
    records.iter().map(|r| r.key.as_str()).collect()
}

#[test]
fn values_round_trip_per_agent() {
    let store = Store::open_in_memory().unwrap();
    let sealer = sealer();
    let data = store.agent_data(&sealer);
    let (memory, other) = (agent("memory"), agent("other"));

    assert_eq!(data.get(&memory, "k").unwrap(), None);
    data.put(&memory, "k", b"plain", false, at(10)).unwrap();
    data.put(&memory, "secret", b"hunter2", true, at(11))
        .unwrap();
    data.put(&other, "k", b"theirs", false, at(12)).unwrap();

    let k = data.get(&memory, "k").unwrap().unwrap();
    assert_eq!(
        (k.key.as_str(), &k.value[..], k.sensitive),
        ("k", &b"plain"[..], false)
    );
    assert_eq!(k.updated_at, at(10));
    let secret = data.get(&memory, "secret").unwrap().unwrap();
    assert_eq!(
        (&secret.value[..], secret.sensitive),
        (&b"hunter2"[..], true)
    );
    assert_eq!(
        &data.get(&other, "k").unwrap().unwrap().value[..],
        b"theirs"
    );
    assert_eq!(data.get(&other, "secret").unwrap(), None);

    // Replacing changes the value, the sensitivity and the time.
    data.put(&memory, "k", b"now sealed", true, at(20)).unwrap();
    let k = data.get(&memory, "k").unwrap().unwrap();
    assert_eq!(
        (&k.value[..], k.sensitive, k.updated_at),
        (&b"now sealed"[..], true, at(20))
    );
    // Debug never shows a sensitive value.
    assert!(!format!("{k:?}").contains("now sealed"));
    assert!(format!("{k:?}").contains("redacted"));

    assert!(data.delete(&memory, "k").unwrap());
    assert!(!data.delete(&memory, "k").unwrap());
    assert_eq!(data.get(&memory, "k").unwrap(), None);
    assert_eq!(data.clear(&memory).unwrap(), 1);
    assert_eq!(data.get(&memory, "secret").unwrap(), None);
    assert_eq!(data.usage(&memory).unwrap(), AgentUsage::default());
    assert_eq!(data.get(&other, "k").unwrap().unwrap().key, "k");
}

#[test]
fn sensitive_values_are_sealed_on_disk_and_bound_to_their_row() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    let sealer = sealer();
    let data = store.agent_data(&sealer);
    let memory = agent("memory");
    data.put(&memory, "a", b"correct horse battery staple", true, at(1))
        .unwrap();
    data.put(&memory, "b", b"second secret value", true, at(1))
        .unwrap();
    data.put(&memory, "c", b"in the clear", false, at(1))
        .unwrap();

    let conn = raw(&path);
    let stored: Vec<u8> = conn
        .query_row("SELECT value FROM agent_data WHERE key = 'a'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored.len(), 28 + SEAL_OVERHEAD);
    assert!(!stored.windows(5).any(|w| w == b"horse"));

    // A sealed value copied to another key, or to another agent, does not open.
    conn.execute(
        "UPDATE agent_data SET value = (SELECT value FROM agent_data WHERE key = 'a') \
         WHERE key = 'b'",
        [],
    )
    .unwrap();
    match data.get(&memory, "b") {
        Err(StoreError::Decrypt { table, key }) => {
            assert_eq!(table, "agent_data");
            assert_eq!(key, "memory \"b\"");
        }
        other => panic!("expected Decrypt, got {other:?}"),
    }
    conn.execute("UPDATE agent_data SET agent = 'thief' WHERE key = 'a'", [])
        .unwrap();
    assert!(matches!(
        data.get(&agent("thief"), "a"),
        Err(StoreError::Decrypt { .. })
    ));
    // Another node's key cannot open them either.
    conn.execute("UPDATE agent_data SET agent = 'memory' WHERE key = 'a'", [])
        .unwrap();
    let stranger = Sealer::from_secret(&[4; 32]);
    assert!(matches!(
        store.agent_data(&stranger).get(&memory, "a"),
        Err(StoreError::Decrypt { .. })
    ));
    // A value in the clear needs no key.
    assert_eq!(
        &store
            .agent_data(&stranger)
            .get(&memory, "c")
            .unwrap()
            .unwrap()
            .value[..],
        b"in the clear"
    );
    drop(store);
    let file = std::fs::read(&path).unwrap();
    assert!(!file.windows(12).any(|w| w == b"second secre"));
}

#[test]
fn listing_by_prefix_pages_in_key_order() {
    let store = Store::open_in_memory().unwrap();
    let sealer = sealer();
    let data = store.agent_data(&sealer);
    let memory = agent("memory");
    for key in ["b", "a/2", "a/1", "a", "ab", "a/10", "é", "éa", "ê", "z"] {
        data.put(&memory, key, key.as_bytes(), key == "a/2", at(1))
            .unwrap();
    }
    data.put(&agent("other"), "a/3", b"x", false, at(1))
        .unwrap();

    let all = data.list(&memory, "", None, 100).unwrap();
    assert_eq!(
        keys(&all),
        ["a", "a/1", "a/10", "a/2", "ab", "b", "z", "é", "éa", "ê"]
    );
    assert_eq!(&all[3].value[..], b"a/2");
    assert_eq!(
        keys(&data.list(&memory, "a/", None, 100).unwrap()),
        ["a/1", "a/10", "a/2"]
    );
    assert_eq!(keys(&data.list(&memory, "a", None, 100).unwrap()).len(), 5);
    assert_eq!(
        keys(&data.list(&memory, "é", None, 100).unwrap()),
        ["é", "éa"]
    );
    assert_eq!(
        keys(&data.list(&memory, "q", None, 100).unwrap()),
        Vec::<&str>::new()
    );
    let page = data.list(&memory, "a", None, 2).unwrap();
    assert_eq!(keys(&page), ["a", "a/1"]);
    let next = data.list(&memory, "a", Some("a/1"), 2).unwrap();
    assert_eq!(keys(&next), ["a/10", "a/2"]);
    let last = data.list(&memory, "a", Some("a/2"), 2).unwrap();
    assert_eq!(keys(&last), ["ab"]);
    assert!(matches!(
        data.list(&memory, &"p".repeat(257), None, 1),
        Err(StoreError::InvalidKey { .. })
    ));
}

#[test]
fn listing_returns_at_most_the_page_limit() {
    let store = Store::open_in_memory().unwrap();
    let sealer = sealer();
    let data = store.agent_data(&sealer);
    let memory = agent("memory");
    for i in 0..150 {
        data.put(&memory, &format!("k{i:03}"), b"v", false, at(1))
            .unwrap();
    }
    assert_eq!(
        data.list(&memory, "", None, usize::MAX).unwrap().len(),
        MAX_AGENT_LIST
    );
    assert_eq!(
        data.search(&memory, "k", usize::MAX).unwrap().len(),
        MAX_AGENT_LIST
    );
    assert_eq!(data.list(&memory, "", None, 0).unwrap().len(), 0);
}

#[test]
fn search_matches_keys_and_values_in_the_clear_only() {
    let store = Store::open_in_memory().unwrap();
    let sealer = sealer();
    let data = store.agent_data(&sealer);
    let memory = agent("memory");
    data.put(&memory, "weather/paris", b"sunny, 21C", false, at(1))
        .unwrap();
    data.put(&memory, "weather/oslo", b"Rain all day", false, at(1))
        .unwrap();
    data.put(&memory, "diary", b"rain again, sadly", true, at(1))
        .unwrap();
    data.put(&memory, "rainbow-key", b"sealed", true, at(1))
        .unwrap();
    data.put(&agent("other"), "rain", b"rain", false, at(1))
        .unwrap();

    assert_eq!(
        keys(&data.search(&memory, "weather", 10).unwrap()),
        ["weather/oslo", "weather/paris"]
    );
    assert_eq!(
        keys(&data.search(&memory, "sunny", 10).unwrap()),
        ["weather/paris"]
    );
    // Case-sensitive; the sealed diary is not searched by value, but keys always are.
    assert_eq!(
        keys(&data.search(&memory, "rain", 10).unwrap()),
        ["rainbow-key"]
    );
    assert_eq!(
        keys(&data.search(&memory, "Rain", 10).unwrap()),
        ["weather/oslo"]
    );
    let found = data.search(&memory, "rainbow", 10).unwrap();
    assert_eq!(&found[0].value[..], b"sealed");
    assert_eq!(data.search(&memory, "21C", 1).unwrap().len(), 1);
    for bad in [String::new(), "x".repeat(257)] {
        assert!(matches!(
            data.search(&memory, &bad, 10),
            Err(StoreError::InvalidKey { .. })
        ));
    }
}

#[test]
fn bad_keys_and_values_are_refused() {
    let store = Store::open_in_memory().unwrap();
    let sealer = sealer();
    let data = store.agent_data(&sealer);
    let memory = agent("memory");
    for key in [
        String::new(),
        "k".repeat(257),
        "tab\there".into(),
        "nul\0".into(),
    ] {
        assert!(
            matches!(
                data.put(&memory, &key, b"v", false, at(1)),
                Err(StoreError::InvalidKey { .. })
            ),
            "{key:?}"
        );
    }
    data.put(&memory, &"k".repeat(256), b"v", false, at(1))
        .unwrap();
    data.put(&memory, "max", &vec![1; MAX_AGENT_VALUE_LEN], true, at(1))
        .unwrap();
    assert_eq!(
        data.get(&memory, "max").unwrap().unwrap().value.len(),
        MAX_AGENT_VALUE_LEN
    );
    assert!(matches!(
        data.put(
            &memory,
            "big",
            &vec![1; MAX_AGENT_VALUE_LEN + 1],
            false,
            at(1)
        ),
        Err(StoreError::TooLarge { .. })
    ));
    assert!(matches!(
        data.put(
            &memory,
            "old",
            b"v",
            false,
            std::time::UNIX_EPOCH - std::time::Duration::from_secs(1)
        ),
        Err(StoreError::TimeOutOfRange)
    ));
}

#[test]
fn usage_is_accounted_and_quotas_hold() {
    let store = Store::open_in_memory().unwrap();
    let sealer = sealer();
    let data = store.agent_data(&sealer);
    let memory = agent("memory");

    data.put(&memory, "ab", b"1234", false, at(1)).unwrap();
    assert_eq!(data.usage(&memory).unwrap(), usage(1, 6));
    data.put(&memory, "ab", b"12", false, at(1)).unwrap();
    assert_eq!(data.usage(&memory).unwrap(), usage(1, 4));
    data.put(&memory, "ab", b"12", true, at(1)).unwrap();
    assert_eq!(
        data.usage(&memory).unwrap(),
        usage(1, 4 + SEAL_OVERHEAD as u64)
    );
    data.put(&memory, "c", b"", false, at(1)).unwrap();
    assert!(data.delete(&memory, "ab").unwrap());
    assert_eq!(data.usage(&memory).unwrap(), usage(1, 1));

    // The byte quota: 64 KiB values until 16 MiB is reached.
    let value = vec![0u8; MAX_AGENT_VALUE_LEN];
    let mut stored = 0;
    let error = loop {
        match data.put(&memory, &format!("v{stored}"), &value, false, at(1)) {
            Ok(()) => stored += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(error, StoreError::LimitReached { .. }), "{error}");
    let used = data.usage(&memory).unwrap();
    assert!(used.bytes <= MAX_AGENT_BYTES, "{used:?}");
    assert!(
        used.bytes + value.len() as u64 + 8 > MAX_AGENT_BYTES,
        "{used:?}"
    );
    assert_eq!(stored, 255);
    // Shrinking a value is always allowed, and frees room.
    data.put(&memory, "v0", b"small", false, at(1)).unwrap();
    data.put(&memory, "again", &value[..1000], false, at(1))
        .unwrap();
    // Other agents have their own quota.
    data.put(&agent("other"), "k", &value, false, at(1))
        .unwrap();
    assert_eq!(data.clear(&memory).unwrap(), 257);
    assert_eq!(data.usage(&memory).unwrap(), AgentUsage::default());

    // The key quota.
    for i in 0..MAX_AGENT_KEYS {
        data.put(&memory, &format!("{i}"), b"", false, at(1))
            .unwrap();
    }
    assert!(matches!(
        data.put(&memory, "one more", b"", false, at(1)),
        Err(StoreError::LimitReached { .. })
    ));
    data.put(&memory, "0", b"replacing is fine", false, at(1))
        .unwrap();
    assert_eq!(data.usage(&memory).unwrap().keys, MAX_AGENT_KEYS);
}

fn usage(keys: u64, bytes: u64) -> AgentUsage {
    let mut usage = AgentUsage::default();
    usage.keys = keys;
    usage.bytes = bytes;
    usage
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Listing by prefix agrees with filtering every key by `starts_with`, including
    /// multi-byte characters at the end of the prefix.
    #[test]
    fn list_by_prefix_matches_a_model(
        keys in proptest::collection::btree_set("[ab/é\u{7ff}\u{10ffff}z]{1,4}", 1..30),
        prefix in "[ab/é\u{7ff}\u{10ffff}]{0,2}",
    ) {
        let store = Store::open_in_memory().unwrap();
        let sealer = sealer();
        let data = store.agent_data(&sealer);
        let memory = agent("memory");
        for key in &keys {
            data.put(&memory, key, b"", false, at(1)).unwrap();
        }
        let listed: Vec<String> = data
            .list(&memory, &prefix, None, 100)
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect();
        let expected: Vec<String> =
            keys.iter().filter(|k| k.starts_with(&prefix)).cloned().collect();
        prop_assert_eq!(listed, expected);
    }

    #[test]
    fn any_value_round_trips(
        value in proptest::collection::vec(any::<u8>(), 0..512),
        key in "[^\\p{C}]{1,20}",
        sensitive in any::<bool>(),
    ) {
        let store = Store::open_in_memory().unwrap();
        let sealer = sealer();
        let data = store.agent_data(&sealer);
        data.put(&agent("memory"), &key, &value, sensitive, at(1)).unwrap();
        let record = data.get(&agent("memory"), &key).unwrap().unwrap();
        prop_assert_eq!(&record.value[..], &value[..]);
        prop_assert_eq!(record.sensitive, sensitive);
    }
}
