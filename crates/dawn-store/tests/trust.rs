//! Trust records: sealed at rest, bound to their row, readable only with the node's key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{db_path, node, raw};
use dawn_crypto::SigningKey;
use dawn_store::{SEAL_OVERHEAD, Sealer, Store, StoreError};
use dawn_trust::{Assignment, Observation, PeerSnapshot, Recommendation, TrustConfig, TrustTable};
use proptest::prelude::*;

fn sealer() -> Sealer {
    Sealer::from_signing_key(&SigningKey::from_bytes(&[5; 32]))
}

/// Snapshots from a real trust table, so the shape is what the node will store.
fn snapshots(n: u64) -> Vec<PeerSnapshot> {
    let mut table = TrustTable::new(TrustConfig::default()).unwrap();
    let now = 1_700_000_000_000;
    for i in 0..n {
        table.record(now + i, &node(i), Observation::HandshakeCompleted);
        if i % 2 == 0 {
            table.record(now + i, &node(i), Observation::InvalidSignature);
        }
    }
    (0..n).map(|i| table.snapshot(&node(i)).unwrap()).collect()
}

fn rich_snapshot() -> PeerSnapshot {
    PeerSnapshot {
        peer: node(100),
        score: 0.625,
        updated_ms: 1_700_000_000_123,
        gain_tokens: 0.25,
        last_seen_ms: 1_700_000_000_456,
        handshake: true,
        assigned: Some(Assignment::Bootstrap),
        auto_untrusted: false,
        verified: true,
        recommended_by: vec![
            Recommendation {
                recommender: node(101),
                at_ms: 5,
            },
            Recommendation {
                recommender: node(102),
                at_ms: 6,
            },
        ],
    }
}

#[test]
fn records_round_trip_and_are_replaced() {
    let store = Store::open_in_memory().unwrap();
    let sealer = sealer();
    let trust = store.trust(&sealer);
    assert_eq!(trust.all().unwrap(), vec![]);
    assert_eq!(trust.get(&node(0)).unwrap(), None);

    let mut all = snapshots(5);
    trust.put_many(&all).unwrap();
    trust.put(&rich_snapshot()).unwrap();
    all.push(rich_snapshot());
    all.sort_by(|a, b| a.peer.as_bytes().cmp(b.peer.as_bytes()));
    assert_eq!(trust.all().unwrap(), all);
    assert_eq!(trust.count().unwrap(), 6);
    assert_eq!(trust.get(&node(100)).unwrap(), Some(rich_snapshot()));

    let mut changed = rich_snapshot();
    changed.score = 0.0;
    changed.assigned = None;
    trust.put(&changed).unwrap();
    assert_eq!(trust.get(&node(100)).unwrap(), Some(changed));
    assert_eq!(trust.count().unwrap(), 6);

    assert!(trust.delete(&node(100)).unwrap());
    assert!(!trust.delete(&node(100)).unwrap());
    assert_eq!(trust.get(&node(100)).unwrap(), None);
    assert_eq!(trust.count().unwrap(), 5);
}

#[test]
fn records_are_not_stored_in_the_clear() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    let snapshot = rich_snapshot();
    store.trust(&sealer()).put(&snapshot).unwrap();

    let encoded = snapshot.encode().unwrap();
    let stored: Vec<u8> = raw(&path)
        .query_row("SELECT record FROM trust_records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored.len(), encoded.len() + SEAL_OVERHEAD);
    // Not the encoding, nor any 8-byte window of it (the scores are distinctive f64s).
    for window in encoded.windows(8) {
        assert!(!stored.windows(8).any(|w| w == window));
    }
    // The whole file holds no trace of them either.
    drop(store);
    let file = std::fs::read(&path).unwrap();
    let score = 0.625f64.to_le_bytes();
    assert!(!file.windows(8).any(|w| w == score));
}

#[test]
fn a_record_moved_to_another_row_does_not_open() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    let sealer = sealer();
    store.trust(&sealer).put_many(&snapshots(2)).unwrap();
    let conn = raw(&path);
    conn.execute(
        "UPDATE trust_records SET record = (SELECT record FROM trust_records WHERE peer = ?1) \
         WHERE peer = ?2",
        [node(0).as_bytes().as_slice(), node(1).as_bytes().as_slice()],
    )
    .unwrap();
    match store.trust(&sealer).get(&node(1)) {
        Err(StoreError::Decrypt { table, key }) => {
            assert_eq!(table, "trust_records");
            assert_eq!(key, node(1).to_string());
        }
        other => panic!("expected Decrypt, got {other:?}"),
    }
    store.trust(&sealer).get(&node(0)).unwrap().unwrap();
    assert!(matches!(
        store.trust(&sealer).all(),
        Err(StoreError::Decrypt { .. })
    ));
    // The bad row can still be removed.
    assert!(store.trust(&sealer).delete(&node(1)).unwrap());
    assert_eq!(store.trust(&sealer).all().unwrap().len(), 1);
}

#[test]
fn any_changed_byte_or_another_key_fails_with_a_typed_error() {
    let (_dir, path) = db_path();
    let store = Store::open(&path).unwrap();
    store.trust(&sealer()).put(&rich_snapshot()).unwrap();
    let conn = raw(&path);
    let original: Vec<u8> = conn
        .query_row("SELECT record FROM trust_records", [], |r| r.get(0))
        .unwrap();

    let other = Sealer::from_secret(&[6; 32]);
    assert!(matches!(
        store.trust(&other).get(&node(100)),
        Err(StoreError::Decrypt { .. })
    ));

    for i in 0..original.len() {
        let mut bytes = original.clone();
        bytes[i] ^= 0x80;
        conn.execute("UPDATE trust_records SET record = ?1", [&bytes])
            .unwrap();
        assert!(
            matches!(
                store.trust(&sealer()).get(&node(100)),
                Err(StoreError::Decrypt { .. })
            ),
            "byte {i}"
        );
    }
}

#[test]
fn invalid_snapshots_are_refused_before_writing() {
    let store = Store::open_in_memory().unwrap();
    let sealer = sealer();
    let good = rich_snapshot();
    let mut bad_score = rich_snapshot();
    bad_score.peer = node(200);
    bad_score.score = 1.5;
    let mut self_recommended = rich_snapshot();
    self_recommended.recommended_by[0].recommender = self_recommended.peer;
    let mut nan = rich_snapshot();
    nan.gain_tokens = f64::NAN;

    for bad in [bad_score, self_recommended, nan] {
        assert!(matches!(
            store.trust(&sealer).put_many(&[good.clone(), bad]),
            Err(StoreError::InvalidTrustRecord(_))
        ));
    }
    assert_eq!(store.trust(&sealer).count().unwrap(), 0);
}

#[test]
fn records_survive_reopening_with_the_same_node_key() {
    let (_dir, path) = db_path();
    let written = snapshots(20);
    {
        let store = Store::open(&path).unwrap();
        store.trust(&sealer()).put_many(&written).unwrap();
    }
    let store = Store::open(&path).unwrap();
    // A fresh sealer from the same key bytes.
    let again = Sealer::from_secret(&[5; 32]);
    let mut expected = written;
    expected.sort_by(|a, b| a.peer.as_bytes().cmp(b.peer.as_bytes()));
    assert_eq!(store.trust(&again).all().unwrap(), expected);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_valid_snapshot_round_trips(
        seed in 0u64..1_000,
        score in 0.0f64..=1.0,
        tokens in 0.0f64..=1.0,
        updated in any::<u64>(),
        seen in any::<u64>(),
        flags in any::<[bool; 3]>(),
        assigned in proptest::option::of(prop::sample::select(Assignment::ALL.to_vec())),
        recommenders in proptest::collection::btree_set(1_000u64..1_100, 0..8),
    ) {
        let snapshot = PeerSnapshot {
            peer: node(seed),
            score,
            updated_ms: updated,
            gain_tokens: tokens,
            last_seen_ms: seen,
            handshake: flags[0],
            assigned,
            auto_untrusted: flags[1],
            verified: flags[2],
            recommended_by: recommenders
                .into_iter()
                .map(|r| Recommendation { recommender: node(r), at_ms: r })
                .collect(),
        };
        let store = Store::open_in_memory().unwrap();
        let sealer = sealer();
        store.trust(&sealer).put(&snapshot).unwrap();
        prop_assert_eq!(store.trust(&sealer).get(&node(seed)).unwrap(), Some(snapshot));
    }
}
