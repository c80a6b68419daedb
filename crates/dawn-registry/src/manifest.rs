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

use std::sync::Arc;

use bytes::Bytes;
use dawn_crypto::{PUBLIC_KEY_LEN, SIGNATURE_LEN, Signature, SigningKey};
use dawn_identity::{NodeId, NodeIdError};
use dawn_wire::{
    ENVELOPE_DOMAIN, ENVELOPE_VERSION, EnvelopeError, MAX_ENVELOPE_LEN, PayloadError,
    SignedEnvelope,
};
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

/// A manifest's identity: the first 16 bytes of SHA-256 over its encoding.
pub(crate) type ManifestId = [u8; 16];

/// A manifest is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The envelope could not be built (when signing; it does not happen).
    #[error("manifest envelope: {0}")]
    Envelope(#[source] EnvelopeError),
    /// The envelope is longer than [`MAX_ENVELOPE_LEN`](dawn_wire::MAX_ENVELOPE_LEN).
    #[error("manifest envelope of {len} bytes is too long")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// The envelope's version byte is not one this build knows.
    #[error("unknown envelope version {0}")]
    Version(u8),
    /// The envelope does not decode (malformed, trailing bytes, not canonical).
    #[error("manifest envelope: {0}")]
    Encoding(#[source] PayloadError),
    /// The owner is not a valid Ed25519 public key.
    #[error("manifest owner: {0}")]
    Owner(#[source] NodeIdError),
    /// The envelope's topic is not the manifest topic.
    #[error("envelope is not a registry manifest")]
    Topic,
    /// The list of live dots is not a whole number of 40-byte dots.
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
/// ([`verify`](Self::verify), or in a batch with [`Manifest::envelope`]).
///
/// Only the parsed fields and the encoding are kept (the encoding is what is forwarded and
/// stored, and what the signature is checked on), since a node holds one per owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    owner: Arc<NodeId>,
    version: u64,
    issued_ms: u64,
    live: Box<[LiveDot]>,
    encoded: Bytes,
    digest: [u8; 32],
}

impl Manifest {
    /// Signs a manifest as `key`'s node.
    pub(crate) fn sign(
        key: &SigningKey,
        version: u64,
        issued_ms: u64,
        live: Vec<LiveDot>,
    ) -> Result<Self, ManifestError> {
        let mut payload = Vec::with_capacity(live.len() * LIVE_DOT_LEN);
        for l in &live {
            payload.extend_from_slice(&l.dot.to_be_bytes());
            payload.extend_from_slice(&l.hash);
        }
        let envelope = SignedEnvelope::sign(key, MANIFEST_TOPIC, issued_ms, version, payload)
            .map_err(ManifestError::Envelope)?;
        let encoded = Bytes::from(envelope.encode().map_err(ManifestError::Envelope)?);
        let owner = Arc::new(*envelope.origin());
        Self::from_parts(owner, version, issued_ms, live, encoded)
    }

    /// Decodes and checks the structure (not the signature). Keeps `bytes` as the encoding
    /// without copying; `resolve` turns the owner's key bytes into its id (a registry
    /// returns the id it already holds, to spare a point decompression).
    pub(crate) fn decode(bytes: Bytes, resolve: &mut dyn Resolve) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(ManifestError::TooLarge { len: bytes.len() });
        }
        let fields = parse_envelope(&bytes)?;
        if fields.topic != MANIFEST_TOPIC.as_bytes() {
            return Err(ManifestError::Topic);
        }
        let chunks = fields.payload.chunks_exact(LIVE_DOT_LEN);
        if !chunks.remainder().is_empty() {
            return Err(ManifestError::Body(PayloadError::Malformed {
                detail: format!("live dots of {} bytes", fields.payload.len()),
            }));
        }
        if chunks.len() > MAX_AGENTS_PER_OWNER {
            return Err(ManifestError::TooManyDots {
                count: chunks.len(),
            });
        }
        let live = chunks
            .filter_map(|c| {
                let (dot, hash) = c.split_first_chunk::<8>()?;
                Some(LiveDot {
                    dot: u64::from_be_bytes(*dot),
                    hash: hash.try_into().ok()?,
                })
            })
            .collect();
        let owner = resolve
            .resolve(fields.origin)
            .map_err(ManifestError::Owner)?;
        Self::from_parts(owner, fields.sequence, fields.timestamp_ms, live, bytes)
    }

    fn from_parts(
        owner: Arc<NodeId>,
        version: u64,
        issued_ms: u64,
        live: Vec<LiveDot>,
        encoded: Bytes,
    ) -> Result<Self, ManifestError> {
        if live.len() > MAX_AGENTS_PER_OWNER {
            return Err(ManifestError::TooManyDots { count: live.len() });
        }
        if live.windows(2).any(|w| w[0].dot >= w[1].dot) {
            return Err(ManifestError::NotSorted);
        }
        if let Some(last) = live.last()
            && last.dot > version
        {
            return Err(ManifestError::DotAboveVersion {
                dot: last.dot,
                version,
            });
        }
        let digest = Sha256::digest(&encoded).into();
        Ok(Self {
            owner,
            version,
            issued_ms,
            live: live.into_boxed_slice(),
            encoded,
            digest,
        })
    }

    /// What the owner's signature covers and the signature: dawn-wire's envelope signing
    /// input (see [`SignedEnvelope::signing_input`]), rebuilt from the encoding so that the
    /// owner's key, already decoded, is not decompressed again.
    pub(crate) fn signed_parts(&self) -> Result<(Vec<u8>, Signature), ManifestError> {
        let fields = parse_envelope(&self.encoded)?;
        let topic_len = u8::try_from(fields.topic.len()).map_err(|_| ManifestError::Topic)?;
        let payload_len =
            u32::try_from(fields.payload.len()).map_err(|_| ManifestError::TooLarge {
                len: self.encoded.len(),
            })?;
        let mut input = Vec::with_capacity(
            ENVELOPE_DOMAIN.len() + 1 + fields.topic.len() + 32 + 8 + 8 + 4 + fields.payload.len(),
        );
        input.extend_from_slice(ENVELOPE_DOMAIN);
        input.push(topic_len);
        input.extend_from_slice(fields.topic);
        input.extend_from_slice(fields.origin);
        input.extend_from_slice(&fields.timestamp_ms.to_be_bytes());
        input.extend_from_slice(&fields.sequence.to_be_bytes());
        input.extend_from_slice(&payload_len.to_be_bytes());
        input.extend_from_slice(fields.payload);
        Ok((input, Signature::from_bytes(*fields.signature)))
    }

    /// Checks the owner's signature.
    pub(crate) fn verify(&self) -> bool {
        self.signed_parts()
            .is_ok_and(|(input, signature)| self.owner.verify(&input, &signature).is_ok())
    }

    pub(crate) fn owner(&self) -> &NodeId {
        &self.owner
    }

    /// The owner's id, shared.
    pub(crate) fn owner_arc(&self) -> &Arc<NodeId> {
        &self.owner
    }

    /// The owner's counter when it signed: every dot up to it has been issued.
    pub(crate) const fn version(&self) -> u64 {
        self.version
    }

    /// The owner's wall clock when it signed, in milliseconds since the Unix epoch.
    pub(crate) const fn issued_ms(&self) -> u64 {
        self.issued_ms
    }

    pub(crate) fn live(&self) -> &[LiveDot] {
        &self.live
    }

    pub(crate) const fn encoded(&self) -> &Bytes {
        &self.encoded
    }

    /// The first 16 bytes of SHA-256 over the encoding: two manifests with the same id are
    /// the same manifest.
    pub(crate) fn id(&self) -> &ManifestId {
        self.digest.first_chunk().unwrap_or(&[0; 16])
    }

    /// SHA-256 over the encoding (which determines every signed field and the signature).
    pub(crate) const fn digest(&self) -> &[u8; 32] {
        &self.digest
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
    /// signed twice) the one with the greater id, so every node picks the same.
    pub(crate) fn supersedes(&self, other: &Self) -> bool {
        (self.version, &self.digest) > (other.version, &other.digest)
    }
}

/// Turns an owner's key bytes into its [`NodeId`].
pub(crate) trait Resolve {
    fn resolve(&mut self, key: &[u8; PUBLIC_KEY_LEN]) -> Result<Arc<NodeId>, NodeIdError>;
}

/// Resolves by decompressing the key, every time.
pub(crate) struct Decompress;

impl Resolve for Decompress {
    fn resolve(&mut self, key: &[u8; PUBLIC_KEY_LEN]) -> Result<Arc<NodeId>, NodeIdError> {
        NodeId::from_bytes(key).map(Arc::new)
    }
}

/// Length of one live dot in a manifest's payload: the dot (8 bytes, big-endian) and the
/// entry hash.
const LIVE_DOT_LEN: usize = 8 + ENTRY_HASH_LEN;

/// The fields of an encoded [`SignedEnvelope`].
struct EnvelopeFields<'a> {
    origin: &'a [u8; PUBLIC_KEY_LEN],
    timestamp_ms: u64,
    sequence: u64,
    topic: &'a [u8],
    payload: &'a [u8],
    signature: &'a [u8; SIGNATURE_LEN],
}

/// Reads dawn-wire's envelope encoding (`[version]`, origin, timestamp and sequence as
/// varints, topic and payload as length-prefixed byte strings, 64-byte signature) as strictly
/// as [`SignedEnvelope::decode`] does, without decompressing the origin's key: a manifest
/// from an owner already known then costs no curve arithmetic. [`Manifest::envelope`]
/// decodes it with dawn-wire when the signature is checked.
fn parse_envelope(bytes: &[u8]) -> Result<EnvelopeFields<'_>, ManifestError> {
    let mut r = Reader { bytes };
    match r.take(1)? {
        [ENVELOPE_VERSION] => {}
        [other] => return Err(ManifestError::Version(*other)),
        _ => return Err(Reader::short()),
    }
    let origin = r.take_array::<PUBLIC_KEY_LEN>()?;
    let timestamp_ms = r.varint()?;
    let sequence = r.varint()?;
    let topic_len = r.len()?;
    let topic = r.take(topic_len)?;
    let payload_len = r.len()?;
    let payload = r.take(payload_len)?;
    let signature = r.take_array::<SIGNATURE_LEN>()?;
    if !r.bytes.is_empty() {
        return Err(ManifestError::Encoding(PayloadError::TrailingBytes {
            count: r.bytes.len(),
        }));
    }
    Ok(EnvelopeFields {
        origin,
        timestamp_ms,
        sequence,
        topic,
        payload,
        signature,
    })
}

/// A cursor over bytes that refuses anything but postcard's canonical encoding.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn short() -> ManifestError {
        ManifestError::Encoding(PayloadError::Malformed {
            detail: "envelope cut short".into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        if n > self.bytes.len() {
            return Err(Self::short());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<&'a [u8; N], ManifestError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or_else(Self::short)?;
        self.bytes = rest;
        Ok(head)
    }

    /// A LEB128 `u64` as postcard writes it: at most 10 bytes, no redundant high bytes.
    fn varint(&mut self) -> Result<u64, ManifestError> {
        let mut value = 0u64;
        for i in 0..10 {
            let [byte] = self.take(1)? else {
                return Err(Self::short());
            };
            let byte = *byte;
            let bits = u64::from(byte & 0x7f);
            if i == 9 && byte > 1 {
                return Err(ManifestError::Encoding(PayloadError::Malformed {
                    detail: "varint overflows u64".into(),
                }));
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                if byte == 0 && i > 0 {
                    return Err(ManifestError::Encoding(PayloadError::NonCanonical));
                }
                return Ok(value);
            }
        }
        Err(ManifestError::Encoding(PayloadError::Malformed {
            detail: "varint longer than 10 bytes".into(),
        }))
    }

    fn len(&mut self) -> Result<usize, ManifestError> {
        let len = self.varint()?;
        usize::try_from(len).map_err(|_| Self::short())
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
        assert!(m.verify());
        let back = Manifest::decode(m.encoded().clone(), &mut Decompress).unwrap();
        // The same fields as dawn-wire's own decoder reads.
        let envelope = SignedEnvelope::decode(m.encoded()).unwrap();
        assert_eq!(envelope.origin(), back.owner());
        assert_eq!(envelope.sequence(), back.version());
        assert_eq!(envelope.timestamp_ms(), back.issued_ms());
        assert_eq!(back, m);
        assert!(back.verify());
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
            Manifest::decode(Bytes::from(other.encode().unwrap()), &mut Decompress),
            Err(ManifestError::Topic)
        );
    }

    /// The hand-written envelope reader accepts exactly what dawn-wire's decoder accepts
    /// (for the manifest topic and a well-formed list of dots), with the same fields.
    #[test]
    fn the_envelope_reader_agrees_with_dawn_wire() {
        let m = Manifest::sign(&key(), 1 << 40, 1_700_000_000_000, live(&[3, 7])).unwrap();
        let good = m.encoded().to_vec();
        let mut inputs = vec![good.clone(), Vec::new(), good[..good.len() - 1].to_vec()];
        for i in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= flip;
                inputs.push(bad);
            }
        }
        let mut longer = good.clone();
        longer.push(0);
        inputs.push(longer);
        // An over-long varint for the timestamp (its last byte padded with a zero byte).
        let mut overlong = good[..33].to_vec();
        let ts_end = 33 + good[33..].iter().position(|b| b & 0x80 == 0).unwrap();
        overlong.extend_from_slice(&good[33..ts_end]);
        overlong.push(good[ts_end] | 0x80);
        overlong.push(0);
        overlong.extend_from_slice(&good[ts_end + 1..]);
        inputs.push(overlong);
        let mut accepted = 0;
        for input in inputs {
            let ours = Manifest::decode(Bytes::from(input.clone()), &mut Decompress);
            let theirs = SignedEnvelope::decode(&input);
            match (&ours, &theirs) {
                (Ok(m), Ok(e)) => {
                    accepted += 1;
                    let (input, signature) = m.signed_parts().unwrap();
                    assert_eq!(input, e.signing_input());
                    assert_eq!(&signature, e.signature());
                    assert_eq!(m.verify(), e.verify().is_ok());
                    assert_eq!(
                        (m.owner(), m.version(), m.issued_ms()),
                        (e.origin(), e.sequence(), e.timestamp_ms())
                    );
                }
                (Err(_), Err(_)) => {}
                (Err(_), Ok(e)) => assert!(
                    e.topic() != MANIFEST_TOPIC || e.payload().len() % LIVE_DOT_LEN != 0 || {
                        // Structurally fine for dawn-wire, but the dots are out of order.
                        let dots: Vec<u64> = e
                            .payload()
                            .chunks(LIVE_DOT_LEN)
                            .map(|c| u64::from_be_bytes(c[..8].try_into().unwrap()))
                            .collect();
                        dots.windows(2).any(|w| w[0] >= w[1]) || dots.last() > Some(&e.sequence())
                    },
                    "refused what dawn-wire accepts: {ours:?}"
                ),
                (Ok(_), Err(e)) => panic!("accepted what dawn-wire refuses: {e}"),
            }
        }
        assert!(accepted > 1, "a flip in the signature still decodes");
    }

    #[test]
    fn higher_version_wins_and_ties_break_the_same_everywhere() {
        let a = Manifest::sign(&key(), 10, 1, live(&[1])).unwrap();
        let b = Manifest::sign(&key(), 11, 1, live(&[1])).unwrap();
        assert!(b.supersedes(&a) && !a.supersedes(&b));
        let c = Manifest::sign(&key(), 10, 2, live(&[1])).unwrap();
        assert_ne!(a.id(), c.id());
        assert_ne!(a.digest(), c.digest());
        assert!(a.supersedes(&c) != c.supersedes(&a));
        assert!(!a.supersedes(&a));
    }
}
