//! The manifest: an owner's signed statement of which of its dots are live.
//!
//! An owner numbers every change it makes with the next value of one counter (a *dot*). Its
//! manifest at version `v` says "I have issued every dot up to `v`, and of those exactly these
//! are live, with these entry hashes". That is the owner's causal context (compressed to a
//! single number, since only the owner writes its entries) together with the keys of its dot
//! store, signed once. A dot at or below `v` that the manifest does not list was removed, so
//! a removal needs no tombstone, and any node can forward the manifest and the entries it
//! lists on the owner's behalf: the signature covers the hashes, the hashes cover the
//! entries.

use bytes::Bytes;
use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_wire::{EnvelopeError, PayloadError, SignedEnvelope, decode_payload, encode_payload};
use sha2::{Digest as _, Sha256};

use crate::message::MAX_AGENTS_PER_OWNER;

/// The topic of every manifest envelope: no other Dawn signature covers it.
pub(crate) const MANIFEST_TOPIC: &str = "dawn/registry/manifest";

/// The domain-separation prefix of an entry hash.
const ENTRY_DOMAIN: &[u8; 22] = b"dawn/registry/entry/v1";

/// Length of an entry hash.
pub(crate) const ENTRY_HASH_LEN: usize = 32;

/// An entry hash: SHA-256 over the domain, the owner, the dot and the record's encoding.
pub(crate) type EntryHash = [u8; ENTRY_HASH_LEN];

/// A manifest's identity: the first 16 bytes of SHA-256 over its signature and owner. Two
/// manifests with the same id are the same manifest (Ed25519 signatures are deterministic,
/// and a signature names its message).
pub(crate) type ManifestId = [u8; 16];

/// A manifest is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The envelope does not decode.
    #[error("manifest envelope: {0}")]
    Envelope(#[source] EnvelopeError),
    /// The envelope's topic is not the manifest topic.
    #[error("envelope is not a registry manifest")]
    Topic,
    /// The list of live dots does not decode.
    #[error("manifest body: {0}")]
    Body(#[source] PayloadError),
    /// Live dots are not strictly ascending.
    #[error("live dots are not strictly ascending")]
    NotSorted,
    /// A live dot is above the manifest's version.
    #[error("live dot {dot} is above the manifest version {version}")]
    DotAboveVersion {
        /// The dot.
        dot: u64,
        /// The version.
        version: u64,
    },
    /// More live dots than any owner may have.
    #[error("{count} live dots; the maximum is {MAX_AGENTS_PER_OWNER}")]
    TooManyDots {
        /// How many.
        count: usize,
    },
}

/// One live dot of a manifest and the hash of the entry it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LiveDot {
    pub(crate) dot: u64,
    pub(crate) hash: EntryHash,
}

/// A decoded manifest. Its signature is checked separately
/// ([`verify`](Self::verify), or in a batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    envelope: SignedEnvelope,
    live: Vec<LiveDot>,
    encoded: Bytes,
    id: ManifestId,
}

impl Manifest {
    /// Signs a manifest as `key`'s node.
    pub(crate) fn sign(
        key: &SigningKey,
        version: u64,
        issued_ms: u64,
        live: Vec<LiveDot>,
    ) -> Result<Self, ManifestError> {
        let body: Vec<(u64, EntryHash)> = live.iter().map(|l| (l.dot, l.hash)).collect();
        let payload = encode_payload(&body).map_err(ManifestError::Body)?;
        let envelope = SignedEnvelope::sign(key, MANIFEST_TOPIC, issued_ms, version, payload)
            .map_err(ManifestError::Envelope)?;
        let encoded = Bytes::from(envelope.encode().map_err(ManifestError::Envelope)?);
        Self::from_parts(envelope, live, encoded)
    }

    /// Decodes and checks the structure (not the signature).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let envelope = SignedEnvelope::decode(bytes).map_err(ManifestError::Envelope)?;
        if envelope.topic() != MANIFEST_TOPIC {
            return Err(ManifestError::Topic);
        }
        let body: Vec<(u64, EntryHash)> =
            decode_payload(envelope.payload()).map_err(ManifestError::Body)?;
        let live = body
            .into_iter()
            .map(|(dot, hash)| LiveDot { dot, hash })
            .collect();
        Self::from_parts(envelope, live, Bytes::copy_from_slice(bytes))
    }

    fn from_parts(
        envelope: SignedEnvelope,
        live: Vec<LiveDot>,
        encoded: Bytes,
    ) -> Result<Self, ManifestError> {
        if live.len() > MAX_AGENTS_PER_OWNER {
            return Err(ManifestError::TooManyDots { count: live.len() });
        }
        if live.windows(2).any(|w| w[0].dot >= w[1].dot) {
            return Err(ManifestError::NotSorted);
        }
        let version = envelope.sequence();
        if let Some(last) = live.last()
            && last.dot > version
        {
            return Err(ManifestError::DotAboveVersion {
                dot: last.dot,
                version,
            });
        }
        let mut hasher = Sha256::new();
        hasher.update(envelope.signature().as_bytes());
        hasher.update(envelope.origin().as_bytes());
        let digest = hasher.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Ok(Self {
            envelope,
            live,
            encoded,
            id,
        })
    }

    /// Checks the owner's signature.
    pub(crate) fn verify(&self) -> Result<(), EnvelopeError> {
        self.envelope.verify()
    }

    pub(crate) const fn envelope(&self) -> &SignedEnvelope {
        &self.envelope
    }

    pub(crate) const fn owner(&self) -> &NodeId {
        self.envelope.origin()
    }

    /// The owner's counter when it signed: every dot up to it has been issued.
    pub(crate) const fn version(&self) -> u64 {
        self.envelope.sequence()
    }

    /// The owner's wall clock when it signed, in milliseconds since the Unix epoch.
    pub(crate) const fn issued_ms(&self) -> u64 {
        self.envelope.timestamp_ms()
    }

    pub(crate) fn live(&self) -> &[LiveDot] {
        &self.live
    }

    pub(crate) const fn encoded(&self) -> &Bytes {
        &self.encoded
    }

    pub(crate) const fn id(&self) -> &ManifestId {
        &self.id
    }

    /// The hash the manifest lists for `dot`, if `dot` is live.
    pub(crate) fn hash_of(&self, dot: u64) -> Option<&EntryHash> {
        self.live
            .binary_search_by_key(&dot, |l| l.dot)
            .ok()
            .and_then(|i| self.live.get(i))
            .map(|l| &l.hash)
    }

    /// Whether this manifest wins over `other`, a manifest of the same owner: the higher
    /// version wins, and between two different manifests of one version (an owner that
    /// signed twice) the one with the greater signature bytes, so every node picks the same.
    pub(crate) fn supersedes(&self, other: &Self) -> bool {
        match self.version().cmp(&other.version()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => {
                self.envelope.signature().as_bytes() > other.envelope.signature().as_bytes()
            }
        }
    }
}

/// The hash that binds an entry to its owner and dot.
pub(crate) fn entry_hash(owner: &NodeId, dot: u64, record: &[u8]) -> EntryHash {
    let mut hasher = Sha256::new();
    hasher.update(ENTRY_DOMAIN);
    hasher.update(owner.as_bytes());
    hasher.update(dot.to_be_bytes());
    hasher.update(record);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn live(dots: &[u64]) -> Vec<LiveDot> {
        dots.iter()
            .map(|&dot| LiveDot {
                dot,
                hash: [u8::try_from(dot % 251).unwrap(); 32],
            })
            .collect()
    }

    #[test]
    fn signs_decodes_and_verifies() {
        let m = Manifest::sign(&key(), 10, 1_000, live(&[3, 7])).unwrap();
        m.verify().unwrap();
        let back = Manifest::decode(m.encoded()).unwrap();
        assert_eq!(back, m);
        back.verify().unwrap();
        assert_eq!(back.version(), 10);
        assert_eq!(back.issued_ms(), 1_000);
        assert_eq!(back.hash_of(7), Some(&[7; 32]));
        assert_eq!(back.hash_of(5), None);
    }

    #[test]
    fn structure_is_checked() {
        assert_eq!(
            Manifest::sign(&key(), 5, 0, live(&[3, 3])),
            Err(ManifestError::NotSorted)
        );
        assert_eq!(
            Manifest::sign(&key(), 5, 0, live(&[6])),
            Err(ManifestError::DotAboveVersion { dot: 6, version: 5 })
        );
        let many: Vec<u64> = (1..=u64::try_from(MAX_AGENTS_PER_OWNER).unwrap() + 1).collect();
        assert!(matches!(
            Manifest::sign(&key(), 1000, 0, live(&many)),
            Err(ManifestError::TooManyDots { .. })
        ));
        let other = SignedEnvelope::sign(&key(), "dawn/other", 0, 1, Bytes::new()).unwrap();
        assert_eq!(
            Manifest::decode(&other.encode().unwrap()),
            Err(ManifestError::Topic)
        );
    }

    #[test]
    fn higher_version_wins_and_ties_break_the_same_everywhere() {
        let a = Manifest::sign(&key(), 10, 1, live(&[1])).unwrap();
        let b = Manifest::sign(&key(), 11, 1, live(&[1])).unwrap();
        assert!(b.supersedes(&a) && !a.supersedes(&b));
        let c = Manifest::sign(&key(), 10, 2, live(&[1])).unwrap();
        assert_ne!(a.id(), c.id());
        assert!(a.supersedes(&c) != c.supersedes(&a));
        assert!(!a.supersedes(&a));
    }
}
