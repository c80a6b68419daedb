//! Rotation statements: codec round trips, decoding anything, and chains in any order.

#![allow(clippy::unwrap_used, clippy::panic)]

use dawn_crypto::SigningKey;
use dawn_identity::{
    NodeId, ROTATION_STATEMENT_MAX_LEN, RotationChainError, RotationStatement, follow_rotations,
};
use proptest::prelude::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn reason() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[^\\p{Cc}]{1,64}")
}

/// A valid chain 1 -> 2 -> ... -> len + 1.
fn chain(len: u8) -> Vec<RotationStatement> {
    (1..=len)
        .map(|i| RotationStatement::sign(&key(i), &key(i + 1), u64::from(i), 1_000, None).unwrap())
        .collect()
}

proptest! {
    #[test]
    fn codec_round_trip(
        old in any::<[u8; 32]>(),
        new in any::<[u8; 32]>(),
        sequence in any::<u64>(),
        issued_at in any::<u64>(),
        reason in reason(),
    ) {
        prop_assume!(old != new);
        let (old, new) = (SigningKey::from_bytes(&old), SigningKey::from_bytes(&new));
        let statement =
            RotationStatement::sign(&old, &new, sequence, issued_at, reason.as_deref()).unwrap();
        statement.verify().unwrap();
        let bytes = statement.encode().unwrap();
        prop_assert!(bytes.len() <= ROTATION_STATEMENT_MAX_LEN);
        let decoded = RotationStatement::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &statement);
        decoded.verify().unwrap();
        let json = serde_json::to_string(&statement).unwrap();
        prop_assert_eq!(serde_json::from_str::<RotationStatement>(&json).unwrap(), statement);
    }

    #[test]
    fn decode_takes_anything(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(statement) = RotationStatement::decode(&bytes) {
            // Random bytes decode only by chance, and then never verify.
            prop_assert!(statement.verify().is_err());
        }
    }

    #[test]
    fn a_flipped_bit_never_yields_a_valid_different_statement(
        position in any::<proptest::sample::Index>(),
        bit in 0u8..8,
    ) {
        let statement = RotationStatement::sign(&key(1), &key(2), 7, 99, Some("why")).unwrap();
        let mut bytes = statement.encode().unwrap();
        let i = position.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(decoded) = RotationStatement::decode(&bytes) {
            prop_assert!(decoded.verify().is_err() || decoded == statement);
        }
    }

    #[test]
    fn chain_order_does_not_matter(len in 1u8..12, seed in any::<u64>()) {
        let mut statements = chain(len);
        // A deterministic shuffle from the seed.
        let n = statements.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            statements.swap(i, j);
        }
        let history = follow_rotations(key(1).verifying_key().into(), &statements).unwrap();
        prop_assert_eq!(history.current(), NodeId::from(key(len + 1).verifying_key()));
        prop_assert_eq!(history.rotations(), usize::from(len));
    }

    #[test]
    fn a_missing_link_is_a_gap(len in 2u8..12, missing in any::<proptest::sample::Index>()) {
        let mut statements = chain(len);
        let gap = missing.index(statements.len());
        statements.remove(gap);
        let result = follow_rotations(key(1).verifying_key().into(), &statements);
        if gap == statements.len() {
            // The last link is missing: the chain simply ends earlier.
            prop_assert_eq!(result.unwrap().rotations(), gap);
        } else {
            prop_assert_eq!(result, Err(RotationChainError::Disconnected { index: gap }));
        }
    }
}
