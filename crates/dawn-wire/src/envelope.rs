//! Signed envelopes: a payload its origin vouches for, which other nodes can forward.

use bytes::Bytes;
use dawn_crypto::{PUBLIC_KEY_LEN, Signature, SigningKey, verify_batch};
use dawn_identity::{NodeId, NodeIdError};
use serde::{Deserialize, Serialize};

use crate::codec::{PayloadError, RawBytes, decode_payload, encode_into};
use crate::frame::MAX_FRAME_LEN;

/// Version of the envelope encoding; the first byte of every encoded envelope.
pub const ENVELOPE_VERSION: u8 = 1;

/// The domain-separation prefix of every envelope's signing input.
///
/// No other Dawn signature starts with these bytes, so an envelope signature can never be
/// replayed as any other kind of signature, or the reverse.
pub const ENVELOPE_DOMAIN: &[u8; 16] = b"dawn/envelope/v1";

/// The longest topic, in bytes.
pub const MAX_TOPIC_LEN: usize = 64;

/// The longest payload an envelope carries: a frame less 4 KiB, so that an envelope and the
/// message that carries it fit in one frame.
pub const MAX_ENVELOPE_PAYLOAD_LEN: usize = MAX_FRAME_LEN - 4096;

/// The longest encoded envelope accepted by [`SignedEnvelope::decode`].
pub const MAX_ENVELOPE_LEN: usize = MAX_FRAME_LEN;

/// An envelope could not be built, encoded, decoded or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The encoded envelope is longer than [`MAX_ENVELOPE_LEN`].
    #[error("envelope of {len} bytes exceeds the maximum of {MAX_ENVELOPE_LEN}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// There were no bytes at all.
    #[error("empty envelope")]
    Empty,
    /// The first byte names an envelope version this build does not know.
    #[error("unknown envelope version {0}")]
    UnknownVersion(u8),
    /// The bytes are not a well-formed, canonical envelope encoding.
    #[error("malformed envelope: {0}")]
    Body(#[source] PayloadError),
    /// The origin is not a valid Ed25519 public key.
    #[error("invalid origin: {0}")]
    InvalidOrigin(#[source] NodeIdError),
    /// The topic is empty or longer than [`MAX_TOPIC_LEN`] bytes.
    #[error("topic of {len} bytes; a topic has 1 to {MAX_TOPIC_LEN} bytes")]
    TopicLength {
        /// Its length in bytes.
        len: usize,
    },
    /// The topic has a character outside visible ASCII (`!` to `~`).
    #[error("topic has characters outside visible ASCII")]
    TopicCharacters,
    /// The payload is longer than [`MAX_ENVELOPE_PAYLOAD_LEN`].
    #[error("payload of {len} bytes exceeds the maximum of {MAX_ENVELOPE_PAYLOAD_LEN}")]
    PayloadTooLarge {
        /// Its length.
        len: usize,
    },
    /// The signature does not verify under the origin's key.
    #[error("envelope signature does not verify")]
    BadSignature,
}

/// Some envelopes of a batch failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} of the batch's envelopes failed verification", .invalid.len())]
pub struct EnvelopeBatchError {
    invalid: Vec<usize>,
}

impl EnvelopeBatchError {
    /// Indices (into the slice given to [`SignedEnvelope::verify_batch`]) of the envelopes
    /// whose signatures failed, ascending. Every index not listed verified.
    #[must_use]
    pub fn invalid(&self) -> &[usize] {
        &self.invalid
    }
}

/// A payload signed by the node it comes from, for messages that other nodes forward
/// (gossip, registry deltas, consensus votes).
///
/// The signature covers the origin, a topic naming what the payload is, a timestamp, a
/// sequence number and the payload, under a domain-separated encoding (see
/// [`SignedEnvelope::signing_input`]). Pair it with a [`ReplayGuard`](crate::ReplayGuard) to
/// drop stale and replayed envelopes.
///
/// An envelope is always well formed (valid origin key, bounded topic and payload) but its
/// signature is only checked by [`verify`](Self::verify) or
/// [`verify_batch`](Self::verify_batch): decoding does not verify.
///
/// ```
/// use dawn_crypto::SigningKey;
/// use dawn_wire::SignedEnvelope;
///
/// # fn main() -> Result<(), dawn_wire::EnvelopeError> {
/// let key = SigningKey::from_bytes(&[7; 32]);
/// let envelope = SignedEnvelope::sign(&key, "dawn/example", 1_700_000_000_000, 1, &b"hi"[..])?;
/// let received = SignedEnvelope::decode(&envelope.encode()?)?;
/// received.verify()?;
/// assert_eq!(received.payload(), &b"hi"[..]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEnvelope {
    origin: NodeId,
    timestamp_ms: u64,
    sequence: u64,
    topic: String,
    payload: Bytes,
    signature: Signature,
}

/// The postcard layout of an envelope; field order is the wire order.
#[derive(Serialize, Deserialize)]
struct EnvelopeWire<'a> {
    version: u8,
    origin: [u8; PUBLIC_KEY_LEN],
    timestamp_ms: u64,
    sequence: u64,
    topic: &'a str,
    #[serde(borrow)]
    payload: RawBytes<'a>,
    /// `R` and `S`: serde has no impls for 64-byte arrays, two 32-byte halves encode the same.
    signature: ([u8; 32], [u8; 32]),
}

impl SignedEnvelope {
    /// Signs `payload` as `key`'s node.
    ///
    /// `timestamp_ms` is the signer's wall clock in milliseconds since the Unix epoch;
    /// `sequence` must grow with every envelope the node signs (see
    /// [`Sequencer`](crate::Sequencer)).
    ///
    /// # Errors
    /// [`EnvelopeError::TopicLength`], [`EnvelopeError::TopicCharacters`] or
    /// [`EnvelopeError::PayloadTooLarge`].
    pub fn sign(
        key: &SigningKey,
        topic: &str,
        timestamp_ms: u64,
        sequence: u64,
        payload: impl Into<Bytes>,
    ) -> Result<Self, EnvelopeError> {
        let payload = payload.into();
        check_topic(topic)?;
        check_payload(&payload)?;
        let origin = NodeId::from(key.verifying_key());
        let input = signing_input(&origin, topic, timestamp_ms, sequence, &payload);
        Ok(Self {
            origin,
            timestamp_ms,
            sequence,
            topic: topic.to_owned(),
            payload,
            signature: key.sign(&input),
        })
    }

    /// The node that signed the envelope (once verified).
    #[must_use]
    pub const fn origin(&self) -> &NodeId {
        &self.origin
    }

    /// The signer's clock when it signed, in milliseconds since the Unix epoch.
    #[must_use]
    pub const fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// The signer's sequence number.
    #[must_use]
    pub const fn sequence(&self) -> u64 {
        self.sequence
    }

    /// What the payload is, e.g. `dawn/registry/delta`.
    #[must_use]
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The signed payload.
    #[must_use]
    pub const fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The Ed25519 signature over [`signing_input`](Self::signing_input).
    #[must_use]
    pub const fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The exact bytes the signature covers:
    ///
    /// ```text
    /// "dawn/envelope/v1"            16 bytes, ENVELOPE_DOMAIN
    /// topic length                  1 byte (1..=64)
    /// topic                         that many bytes, visible ASCII
    /// origin                        32 bytes, Ed25519 public key
    /// timestamp_ms                  8 bytes, u64 big-endian
    /// sequence                      8 bytes, u64 big-endian
    /// payload length                4 bytes, u32 big-endian
    /// payload                       that many bytes
    /// ```
    ///
    /// Every variable-length field is length-prefixed, so no two distinct envelopes share a
    /// signing input.
    #[must_use]
    pub fn signing_input(&self) -> Vec<u8> {
        signing_input(
            &self.origin,
            &self.topic,
            self.timestamp_ms,
            self.sequence,
            &self.payload,
        )
    }

    /// Checks the signature (strict Ed25519).
    ///
    /// # Errors
    /// [`EnvelopeError::BadSignature`].
    pub fn verify(&self) -> Result<(), EnvelopeError> {
        self.origin
            .verify(&self.signing_input(), &self.signature)
            .map_err(|_| EnvelopeError::BadSignature)
    }

    /// Checks many envelopes' signatures at once, about twice as fast as one by one for large
    /// batches, and names the bad ones so one forger cannot get honest envelopes dropped.
    ///
    /// # Errors
    /// [`EnvelopeBatchError`] listing the index of every envelope that failed.
    pub fn verify_batch(envelopes: &[Self]) -> Result<(), EnvelopeBatchError> {
        let inputs: Vec<Vec<u8>> = envelopes.iter().map(Self::signing_input).collect();
        let items: Vec<_> = envelopes
            .iter()
            .zip(&inputs)
            .map(|(envelope, input)| {
                (
                    input.as_slice(),
                    &envelope.signature,
                    envelope.origin.verifying_key(),
                )
            })
            .collect();
        verify_batch(&items).map_err(|error| EnvelopeBatchError {
            invalid: error.invalid().to_vec(),
        })
    }

    /// Encodes the envelope: `[version = 1]` then the postcard fields origin (32 bytes),
    /// timestamp (varint), sequence (varint), topic (varint length + bytes), payload (varint
    /// length + bytes), signature (64 bytes).
    ///
    /// # Errors
    /// [`EnvelopeError::Body`] if postcard fails, which it does not for a well-formed
    /// envelope.
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        let mut out = Vec::with_capacity(self.payload.len() + self.topic.len() + 128);
        encode_into(&self.to_wire(), &mut out).map_err(EnvelopeError::Body)?;
        Ok(out)
    }

    /// Decodes an envelope without verifying its signature: a pure function of its input,
    /// safe on arbitrary bytes (a fuzz target). Call [`verify`](Self::verify) next.
    ///
    /// # Errors
    /// [`EnvelopeError::TooLarge`], [`EnvelopeError::Empty`],
    /// [`EnvelopeError::UnknownVersion`], [`EnvelopeError::Body`] (malformed, trailing bytes,
    /// non-canonical), [`EnvelopeError::InvalidOrigin`], or a topic or payload error.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(EnvelopeError::TooLarge { len: bytes.len() });
        }
        match bytes.first() {
            None => return Err(EnvelopeError::Empty),
            Some(&ENVELOPE_VERSION) => {}
            Some(&other) => return Err(EnvelopeError::UnknownVersion(other)),
        }
        let wire: EnvelopeWire<'_> = decode_payload(bytes).map_err(EnvelopeError::Body)?;
        Self::from_wire(&wire)
    }

    fn to_wire(&self) -> EnvelopeWire<'_> {
        let bytes = self.signature.as_bytes();
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        let (r_half, s_half) = bytes.split_at(32);
        r.copy_from_slice(r_half);
        s.copy_from_slice(s_half);
        EnvelopeWire {
            version: ENVELOPE_VERSION,
            origin: *self.origin.as_bytes(),
            timestamp_ms: self.timestamp_ms,
            sequence: self.sequence,
            topic: &self.topic,
            payload: RawBytes(&self.payload),
            signature: (r, s),
        }
    }

    fn from_wire(wire: &EnvelopeWire<'_>) -> Result<Self, EnvelopeError> {
        let origin = NodeId::from_bytes(&wire.origin).map_err(EnvelopeError::InvalidOrigin)?;
        check_topic(wire.topic)?;
        check_payload(wire.payload.0)?;
        let (r, s) = &wire.signature;
        let mut signature = [0u8; 64];
        let (r_half, s_half) = signature.split_at_mut(32);
        r_half.copy_from_slice(r);
        s_half.copy_from_slice(s);
        Ok(Self {
            origin,
            timestamp_ms: wire.timestamp_ms,
            sequence: wire.sequence,
            topic: wire.topic.to_owned(),
            payload: Bytes::copy_from_slice(wire.payload.0),
            signature: Signature::from_bytes(signature),
        })
    }
}

fn check_topic(topic: &str) -> Result<(), EnvelopeError> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(EnvelopeError::TopicLength { len: topic.len() });
    }
    if !topic.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EnvelopeError::TopicCharacters);
    }
    Ok(())
}

fn check_payload(payload: &[u8]) -> Result<(), EnvelopeError> {
    if payload.len() > MAX_ENVELOPE_PAYLOAD_LEN {
        return Err(EnvelopeError::PayloadTooLarge { len: payload.len() });
    }
    Ok(())
}

/// See [`SignedEnvelope::signing_input`]; callers have checked the topic and payload bounds,
/// so the length prefixes cannot truncate.
fn signing_input(
    origin: &NodeId,
    topic: &str,
    timestamp_ms: u64,
    sequence: u64,
    payload: &[u8],
) -> Vec<u8> {
    let topic_len = u8::try_from(topic.len()).unwrap_or(u8::MAX);
    let payload_len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut input = Vec::with_capacity(
        ENVELOPE_DOMAIN.len() + 1 + topic.len() + PUBLIC_KEY_LEN + 8 + 8 + 4 + payload.len(),
    );
    input.extend_from_slice(ENVELOPE_DOMAIN);
    input.push(topic_len);
    input.extend_from_slice(topic.as_bytes());
    input.extend_from_slice(origin.as_bytes());
    input.extend_from_slice(&timestamp_ms.to_be_bytes());
    input.extend_from_slice(&sequence.to_be_bytes());
    input.extend_from_slice(&payload_len.to_be_bytes());
    input.extend_from_slice(payload);
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn envelope(seed: u8, sequence: u64, payload: &'static [u8]) -> SignedEnvelope {
        SignedEnvelope::sign(&key(seed), "dawn/test", 1_000, sequence, payload).unwrap()
    }

    #[test]
    fn sign_verify_encode_decode() {
        let env = envelope(1, 42, b"payload");
        env.verify().unwrap();
        assert_eq!(env.origin(), &NodeId::from(key(1).verifying_key()));
        let bytes = env.encode().unwrap();
        assert_eq!(bytes[0], ENVELOPE_VERSION);
        let back = SignedEnvelope::decode(&bytes).unwrap();
        assert_eq!(back, env);
        back.verify().unwrap();
    }

    #[test]
    fn signing_input_layout() {
        let env = envelope(2, 0x0102, b"xy");
        let input = env.signing_input();
        let mut want = b"dawn/envelope/v1".to_vec();
        want.push(9);
        want.extend_from_slice(b"dawn/test");
        want.extend_from_slice(env.origin().as_bytes());
        want.extend_from_slice(&1_000u64.to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]);
        want.extend_from_slice(&[0, 0, 0, 2, b'x', b'y']);
        assert_eq!(input, want);
    }

    #[test]
    fn any_changed_field_breaks_the_signature() {
        let env = envelope(3, 7, b"payload");
        let variants = [
            SignedEnvelope {
                origin: key(4).verifying_key().into(),
                ..env.clone()
            },
            SignedEnvelope {
                timestamp_ms: 1_001,
                ..env.clone()
            },
            SignedEnvelope {
                sequence: 8,
                ..env.clone()
            },
            SignedEnvelope {
                topic: "dawn/tesT".to_owned(),
                ..env.clone()
            },
            SignedEnvelope {
                payload: Bytes::from_static(b"paylo4d"),
                ..env.clone()
            },
        ];
        for bad in variants {
            assert_eq!(bad.verify(), Err(EnvelopeError::BadSignature));
        }
    }

    #[test]
    fn bounds_are_enforced_when_signing() {
        let k = key(5);
        assert_eq!(
            SignedEnvelope::sign(&k, "", 0, 0, Bytes::new()),
            Err(EnvelopeError::TopicLength { len: 0 })
        );
        assert_eq!(
            SignedEnvelope::sign(&k, &"t".repeat(65), 0, 0, Bytes::new()),
            Err(EnvelopeError::TopicLength { len: 65 })
        );
        assert_eq!(
            SignedEnvelope::sign(&k, "a topic", 0, 0, Bytes::new()),
            Err(EnvelopeError::TopicCharacters)
        );
        assert_eq!(
            SignedEnvelope::sign(&k, "t", 0, 0, vec![0; MAX_ENVELOPE_PAYLOAD_LEN + 1]),
            Err(EnvelopeError::PayloadTooLarge {
                len: MAX_ENVELOPE_PAYLOAD_LEN + 1
            })
        );
        SignedEnvelope::sign(&k, &"t".repeat(64), 0, 0, vec![0; MAX_ENVELOPE_PAYLOAD_LEN])
            .unwrap()
            .verify()
            .unwrap();
    }

    #[test]
    fn decode_errors_are_typed() {
        let bytes = envelope(6, 1, b"p").encode().unwrap();
        assert_eq!(SignedEnvelope::decode(&[]), Err(EnvelopeError::Empty));
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(
            SignedEnvelope::decode(&v2),
            Err(EnvelopeError::UnknownVersion(2))
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            SignedEnvelope::decode(&trailing),
            Err(EnvelopeError::Body(PayloadError::TrailingBytes {
                count: 1
            }))
        );
        assert!(matches!(
            SignedEnvelope::decode(&bytes[..bytes.len() - 1]),
            Err(EnvelopeError::Body(PayloadError::Malformed { .. }))
        ));
        let mut weak = bytes.clone();
        weak[1..33].copy_from_slice(&{
            let mut identity = [0u8; 32];
            identity[0] = 1;
            identity
        });
        assert!(matches!(
            SignedEnvelope::decode(&weak),
            Err(EnvelopeError::InvalidOrigin(_))
        ));
        // Topic "dawn/test" sits after version, origin and two one-byte varints (1 000 takes
        // two bytes).
        let topic_at = 1 + 32 + 2 + 1;
        assert_eq!(bytes[topic_at], 9);
        let mut spaced = bytes.clone();
        spaced[topic_at + 1] = b' ';
        assert_eq!(
            SignedEnvelope::decode(&spaced),
            Err(EnvelopeError::TopicCharacters)
        );
        assert_eq!(
            SignedEnvelope::decode(&vec![1; MAX_ENVELOPE_LEN + 1]),
            Err(EnvelopeError::TooLarge {
                len: MAX_ENVELOPE_LEN + 1
            })
        );
    }

    #[test]
    fn batch_names_the_bad_envelopes() {
        let mut batch: Vec<_> = (0..10u8)
            .map(|i| envelope(i + 1, u64::from(i), b"ok"))
            .collect();
        SignedEnvelope::verify_batch(&batch).unwrap();
        batch[3].sequence += 1;
        batch[8].payload = Bytes::from_static(b"forged");
        let error = SignedEnvelope::verify_batch(&batch).unwrap_err();
        assert_eq!(error.invalid(), [3, 8]);
        SignedEnvelope::verify_batch(&[]).unwrap();
    }
}
