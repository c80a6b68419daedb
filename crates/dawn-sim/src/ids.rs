//! Deterministic node identities for simulations.

use dawn_crypto::{SECRET_KEY_LEN, SigningKey};
use dawn_identity::NodeId;

use crate::rng::{SplitMix, mix64};

/// Domain separation: simulated keys never collide with keys derived elsewhere the same way.
const KEY_DOMAIN: u64 = 0x6461_776e_2d73_696d; // "dawn-sim"

/// The signing key of simulated node number `index`: the same on every run and platform.
///
/// These keys are derived from a public counter and protect nothing; they exist so that a
/// simulated core can sign its messages with a real key. Never use them outside tests.
#[must_use]
pub fn signing_key(index: u64) -> SigningKey {
    // `mix64` is a bijection, so distinct indices start distinct streams and therefore get
    // distinct first words: no two simulated nodes share a key.
    let mut stream = SplitMix::new(mix64(KEY_DOMAIN ^ index));
    let mut seed = [0u8; SECRET_KEY_LEN];
    for chunk in seed.chunks_exact_mut(8) {
        chunk.copy_from_slice(&stream.next_u64().to_le_bytes());
    }
    SigningKey::from_bytes(&seed)
}

/// The [`NodeId`] of simulated node number `index`: the public key of
/// [`signing_key(index)`](signing_key).
#[must_use]
pub fn node_id(index: u64) -> NodeId {
    signing_key(index).verifying_key().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        assert_eq!(node_id(0), node_id(0));
        assert_eq!(node_id(12_345), signing_key(12_345).verifying_key().into());
        let ids: std::collections::BTreeSet<NodeId> = (0..2000).map(node_id).collect();
        assert_eq!(ids.len(), 2000);
    }

    #[test]
    fn keys_sign_for_their_ids() {
        let key = signing_key(3);
        let sig = key.sign(b"hello");
        assert!(node_id(3).verify(b"hello", &sig).is_ok());
        assert!(node_id(4).verify(b"hello", &sig).is_err());
    }
}
