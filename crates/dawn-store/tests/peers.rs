//! The peer repository against a real database file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{SocketAddr, SocketAddrV6};
use std::time::{Duration, UNIX_EPOCH};

use common::{at, db_path, node, raw};
use dawn_store::{MAX_PEER_ADDRS, Store, StoreError};
use proptest::prelude::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn file_store() -> (tempfile::TempDir, Store) {
    let (dir, path) = db_path();
    (dir, Store::open(path).unwrap())
}

#[test]
fn upsert_and_get_round_trip_many_addresses() {
    let (_dir, store) = file_store();
    let peers = store.peers();
    let addrs: Vec<SocketAddr> = (0..MAX_PEER_ADDRS)
        .map(|i| match i % 3 {
            0 => addr(&format!("192.0.2.{}:{}", i + 1, 4000 + i)),
            1 => addr(&format!("[2001:db8::{:x}]:{}", i + 1, 4000 + i)),
            _ => SocketAddr::V6(SocketAddrV6::new(
                format!("fe80::{:x}", i + 1).parse().unwrap(),
                u16::try_from(4000 + i).unwrap(),
                0,
                u32::try_from(i).unwrap(),
            )),
        })
        .collect();
    peers.upsert(&node(1), &addrs, at(1_000)).unwrap();

    let record = peers.get(&node(1)).unwrap().unwrap();
    assert_eq!(record.id, node(1));
    assert_eq!(record.addrs, addrs);
    assert_eq!(record.first_seen, at(1_000));
    assert_eq!(record.last_seen, None);
    assert_eq!(record.failures, 0);
    assert_eq!(record.last_failure, None);
    assert_eq!(peers.get(&node(2)).unwrap(), None);
}

#[test]
fn upsert_replaces_addresses_and_keeps_history() {
    let (_dir, store) = file_store();
    let peers = store.peers();
    peers
        .upsert(&node(1), &[addr("192.0.2.1:1")], at(10))
        .unwrap();
    peers.record_failure(&node(1), at(20)).unwrap();
    peers
        .upsert(
            &node(1),
            &[addr("192.0.2.2:2"), addr("192.0.2.2:2")],
            at(30),
        )
        .unwrap();

    let record = peers.get(&node(1)).unwrap().unwrap();
    assert_eq!(record.addrs, vec![addr("192.0.2.2:2")]);
    assert_eq!(record.first_seen, at(10));
    assert_eq!(record.failures, 1);
    assert_eq!(record.last_failure, Some(at(20)));

    peers.upsert(&node(1), &[], at(40)).unwrap();
    assert!(peers.get(&node(1)).unwrap().unwrap().addrs.is_empty());
}

#[test]
fn bad_input_is_rejected_and_nothing_is_written() {
    let (_dir, store) = file_store();
    let peers = store.peers();
    let too_many = vec![addr("192.0.2.1:1"); MAX_PEER_ADDRS + 1];
    assert!(matches!(
        peers.upsert(&node(1), &too_many, at(1)),
        Err(StoreError::TooManyAddresses { count, max }) if count == MAX_PEER_ADDRS + 1 && max == MAX_PEER_ADDRS
    ));
    assert!(matches!(
        peers.upsert(&node(1), &[addr("192.0.2.1:1"), addr("0.0.0.0:1")], at(1)),
        Err(StoreError::InvalidAddress { .. })
    ));
    let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
    assert!(matches!(
        peers.upsert(&node(1), &[], before_epoch),
        Err(StoreError::TimeOutOfRange)
    ));
    // One bad entry in a batch writes nothing.
    let batch = vec![
        (node(2), vec![addr("192.0.2.2:2")]),
        (node(3), vec![addr("224.0.0.1:2")]),
    ];
    assert!(matches!(
        peers.upsert_many(&batch, at(1)),
        Err(StoreError::InvalidAddress { .. })
    ));
    assert_eq!(peers.count().unwrap(), 0);
}

#[test]
fn failures_count_up_and_success_resets_them() {
    let (_dir, store) = file_store();
    let peers = store.peers();
    peers
        .upsert(&node(1), &[addr("192.0.2.1:1")], at(0))
        .unwrap();
    assert_eq!(peers.record_failure(&node(1), at(10)).unwrap(), Some(1));
    assert_eq!(peers.record_failure(&node(1), at(20)).unwrap(), Some(2));
    // A late report does not move last_failure backwards.
    assert_eq!(peers.record_failure(&node(1), at(15)).unwrap(), Some(3));
    let record = peers.get(&node(1)).unwrap().unwrap();
    assert_eq!((record.failures, record.last_failure), (3, Some(at(20))));

    assert!(peers.record_success(&node(1), at(100)).unwrap());
    assert!(peers.record_success(&node(1), at(50)).unwrap());
    let record = peers.get(&node(1)).unwrap().unwrap();
    assert_eq!(record.failures, 0);
    assert_eq!(record.last_seen, Some(at(100)));
    assert_eq!(record.last_failure, Some(at(20)));

    // Unknown peers are reported, not created.
    assert_eq!(peers.record_failure(&node(9), at(1)).unwrap(), None);
    assert!(!peers.record_success(&node(9), at(1)).unwrap());
    assert_eq!(peers.count().unwrap(), 1);
}

#[test]
fn failure_count_saturates() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    store.peers().upsert(&node(1), &[], at(0)).unwrap();
    raw(&path)
        .execute("UPDATE peers SET failures = 4294967295", [])
        .unwrap();
    assert_eq!(
        store.peers().record_failure(&node(1), at(1)).unwrap(),
        Some(u32::MAX)
    );
}

#[test]
fn list_puts_recently_reached_peers_first_and_honours_the_limit() {
    let (_dir, store) = file_store();
    let peers = store.peers();
    for i in 1..=5 {
        peers.upsert(&node(i), &[], at(0)).unwrap();
    }
    peers.record_success(&node(2), at(100)).unwrap();
    peers.record_success(&node(4), at(200)).unwrap();
    peers.record_failure(&node(1), at(300)).unwrap();
    peers.record_failure(&node(1), at(300)).unwrap();
    peers.record_failure(&node(3), at(300)).unwrap();

    let order: Vec<_> = peers.list(10).unwrap().into_iter().map(|p| p.id).collect();
    assert_eq!(order, vec![node(4), node(2), node(5), node(3), node(1)]);
    assert_eq!(peers.list(2).unwrap().len(), 2);
    assert!(peers.list(0).unwrap().is_empty());
}

#[test]
fn list_by_id_pages_through_everything_in_order() {
    let (_dir, store) = file_store();
    let peers = store.peers();
    let all: Vec<_> = (0..25).map(|i| (node(i), vec![])).collect();
    peers.upsert_many(&all, at(0)).unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = peers.list_by_id(after.as_ref(), 10).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        after = page.last().map(|p| p.id);
        seen.extend(page.into_iter().map(|p| p.id));
    }
    let mut expected: Vec<_> = all.iter().map(|(id, _)| *id).collect();
    expected.sort_by_key(|id| *id.as_bytes());
    assert_eq!(seen, expected);
}

#[test]
fn prune_removes_only_stale_failing_peers() {
    let (_dir, store) = file_store();
    let peers = store.peers();
    // 1: reached long ago, failing since.  2: reached recently.  3: never reached, old,
    // failing.  4: never reached, recent, failing.  5: reached long ago, not failing.
    for i in 1..=3 {
        peers.upsert(&node(i), &[], at(100)).unwrap();
    }
    peers.upsert(&node(4), &[], at(5_000)).unwrap();
    peers.upsert(&node(5), &[], at(100)).unwrap();
    peers.record_success(&node(1), at(200)).unwrap();
    peers.record_success(&node(2), at(4_000)).unwrap();
    peers.record_success(&node(5), at(200)).unwrap();
    for i in [1, 3, 4] {
        for _ in 0..3 {
            peers.record_failure(&node(i), at(6_000)).unwrap();
        }
    }

    assert_eq!(peers.prune(at(1_000), 4).unwrap(), 0);
    assert_eq!(peers.prune(at(1_000), 3).unwrap(), 2);
    let mut left: Vec<_> = peers.list(10).unwrap().into_iter().map(|p| p.id).collect();
    left.sort_by_key(|id| *id.as_bytes());
    let mut expected = vec![node(2), node(4), node(5)];
    expected.sort_by_key(|id| *id.as_bytes());
    assert_eq!(left, expected);

    // By age alone.
    assert_eq!(peers.prune(at(1_000), 0).unwrap(), 1);
    assert!(peers.get(&node(5)).unwrap().is_none());
    assert_eq!(peers.count().unwrap(), 2);
}

#[test]
fn remove_forgets_a_peer() {
    let (_dir, store) = file_store();
    let peers = store.peers();
    peers.upsert(&node(1), &[], at(0)).unwrap();
    assert!(peers.remove(&node(1)).unwrap());
    assert!(!peers.remove(&node(1)).unwrap());
    assert_eq!(peers.get(&node(1)).unwrap(), None);
}

#[test]
fn a_row_with_an_invalid_node_id_is_a_typed_error() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    store.peers().upsert(&node(1), &[], at(0)).unwrap();
    // The identity point: 32 bytes, but a small-order key no NodeId can hold.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    raw(&path)
        .execute(
            "INSERT INTO peers (id, addrs, first_seen) VALUES (?1, '', 0)",
            [&identity[..]],
        )
        .unwrap();
    match store.peers().list(10) {
        Err(StoreError::InvalidRow { table, detail }) => {
            assert_eq!(table, "peers");
            assert!(detail.contains("0100000000"), "{detail}");
        }
        other => panic!("expected InvalidRow, got {other:?}"),
    }
    // The good row is still readable on its own.
    assert!(store.peers().get(&node(1)).unwrap().is_some());
}

#[test]
fn a_row_with_a_malformed_address_is_a_typed_error() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    for bad in ["not-an-address", "192.0.2.1:0", "192.0.2.1:1  192.0.2.1:2"] {
        raw(&path)
            .execute(
                "INSERT OR REPLACE INTO peers (id, addrs, first_seen) VALUES (?1, ?2, 0)",
                rusqlite::params![&node(1).as_bytes()[..], bad],
            )
            .unwrap();
        assert!(
            matches!(
                store.peers().get(&node(1)),
                Err(StoreError::InvalidRow { .. })
            ),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn the_schema_rejects_rows_no_store_would_write() {
    let (_dir, path) = db_path();
    drop(Store::open(&path).unwrap());
    let conn = raw(&path);
    for sql in [
        "INSERT INTO peers (id, addrs, first_seen) VALUES (x'00', '', 0)",
        "INSERT INTO peers (id, addrs, first_seen) VALUES (zeroblob(32), '', -1)",
        "INSERT INTO peers (id, addrs, first_seen, failures) VALUES (zeroblob(32), '', 0, -1)",
        "INSERT INTO peers (id, addrs, first_seen) VALUES (zeroblob(32), x'00', 0)",
        "INSERT INTO peers (id, addrs, first_seen) VALUES (zeroblob(32), '', 1.5)",
        "INSERT INTO peers (id, addrs, first_seen) VALUES ('text id', '', 0)",
    ] {
        assert!(conn.execute(sql, []).is_err(), "{sql}");
    }
}

fn valid_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (1u8..=223, any::<[u8; 3]>(), 1u16..)
            .prop_map(|(a, [b, c, d], port)| SocketAddr::from(([a, b, c, d], port))),
        (0x2000u16..0x3fff, any::<[u16; 7]>(), 1u16.., any::<u32>()).prop_map(
            |(head, tail, port, scope)| {
                let mut s = [0u16; 8];
                s[0] = head;
                s[1..].copy_from_slice(&tail);
                SocketAddr::V6(SocketAddrV6::new(s.into(), port, 0, scope))
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn peers_round_trip(
        entries in proptest::collection::vec(
            (any::<u64>(), proptest::collection::hash_set(valid_addr(), 0..=MAX_PEER_ADDRS), 0u64..1 << 50, 0u32..20),
            1..20,
        )
    ) {
        let store = Store::open_in_memory().unwrap();
        let peers = store.peers();
        let mut expected = std::collections::BTreeMap::new();
        for (seed, addrs, ms, failures) in entries {
            let addrs: Vec<SocketAddr> = addrs.into_iter().collect();
            peers.upsert(&node(seed), &addrs, at(ms)).unwrap();
            for _ in 0..failures {
                peers.record_failure(&node(seed), at(ms + 1)).unwrap();
            }
            let first_seen = expected.get(&seed).map_or(ms, |(_, first, _)| *first);
            let total = expected.get(&seed).map_or(0, |(_, _, f)| *f) + failures;
            expected.insert(seed, (addrs, first_seen, total));
        }
        prop_assert_eq!(peers.count().unwrap(), expected.len() as u64);
        for (seed, (addrs, first_seen, failures)) in expected {
            let record = peers.get(&node(seed)).unwrap().unwrap();
            prop_assert_eq!(record.addrs, addrs);
            prop_assert_eq!(record.first_seen, at(first_seen));
            prop_assert_eq!(record.failures, failures);
        }
    }
}
