//! Key rotation: a statement, signed by both keys, that a node moved from one key to another,
//! and the rule for following a chain of them.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use data_encoding::HEXLOWER;
use dawn_crypto::{SIGNATURE_LEN, Signature, SigningKey};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::node_id::NodeId;

/// The domain separator that starts every signed rotation statement.
pub const ROTATION_DOMAIN: &[u8] = b"dawn/key-rotation/v1";

/// The longest rotation reason, in bytes of UTF-8.
pub const ROTATION_REASON_MAX_LEN: usize = 256;

/// The longest encoded [`RotationStatement`] that [`RotationStatement::decode`] reads. The
/// largest valid statement takes 473 bytes.
pub const ROTATION_STATEMENT_MAX_LEN: usize = 512;

/// The most statements [`follow_rotations`] accepts at once.
pub const ROTATION_CHAIN_MAX_LEN: usize = 1024;

/// A rotation statement is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// The old and the new key are the same.
    #[error("a rotation must change the key: old and new node ids are equal")]
    SameKey,
    /// The reason is present but empty (leave it out instead).
    #[error("a rotation reason, when given, must not be empty")]
    ReasonEmpty,
    /// The reason is longer than [`ROTATION_REASON_MAX_LEN`] bytes.
    #[error("a rotation reason is at most {ROTATION_REASON_MAX_LEN} bytes, got {len}")]
    ReasonTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The reason contains a control character (a newline, an escape), which could forge
    /// lines in a log.
    #[error("a rotation reason must not contain control characters, found {ch:?}")]
    ReasonControlChar {
        /// The offending character.
        ch: char,
    },
    /// The old key's signature does not verify (the new key's does).
    #[error("the old key's signature on the rotation statement is invalid")]
    OldSignature,
    /// The new key's signature does not verify (the old key's does).
    #[error("the new key's signature on the rotation statement is invalid")]
    NewSignature,
    /// Neither signature verifies.
    #[error("neither signature on the rotation statement is valid")]
    BothSignatures,
}

/// A rotation statement could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationCodecError {
    /// The input is longer than [`ROTATION_STATEMENT_MAX_LEN`]; it was not parsed.
    #[error("a rotation statement is at most {ROTATION_STATEMENT_MAX_LEN} bytes, got {len}")]
    TooLong {
        /// The input's length.
        len: usize,
    },
    /// The bytes are not a postcard-encoded statement.
    #[error("malformed rotation statement: {0}")]
    Malformed(#[source] postcard::Error),
    /// Bytes remain after the statement.
    #[error("{count} bytes after the rotation statement")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The statement decoded but breaks a rule (equal keys, a bad reason).
    #[error(transparent)]
    Invalid(#[from] RotationError),
}

/// A chain of rotations could not be followed. Statements are named by their index in the
/// slice given to [`follow_rotations`], so a caller can find and drop the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RotationChainError {
    /// More than [`ROTATION_CHAIN_MAX_LEN`] statements were given.
    #[error("at most {ROTATION_CHAIN_MAX_LEN} rotation statements are followed, got {count}")]
    TooManyStatements {
        /// How many were given.
        count: usize,
    },
    /// Two different statements rotate away from the same key: the holder of that key (or
    /// someone who stole it) signed two successors.
    #[error("fork: rotation statements {first} and {second} both leave the same key")]
    Fork {
        /// The index of one statement.
        first: usize,
        /// The index of the other.
        second: usize,
    },
    /// A statement on the chain does not verify.
    #[error("rotation statement {index} is invalid: {source}")]
    Invalid {
        /// The statement's index.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: RotationError,
    },
    /// A statement's sequence number is not its position on the chain.
    #[error("rotation statement {index} has sequence {found}, expected {expected}")]
    OutOfSequence {
        /// The statement's index.
        index: usize,
        /// Its position on the chain, from 1.
        expected: u64,
        /// The sequence number it carries.
        found: u64,
    },
    /// The chain comes back to a key it already left.
    #[error("cycle: rotation statement {index} returns to an earlier key")]
    Cycle {
        /// The index of the statement that closes the cycle.
        index: usize,
    },
    /// A statement is not reachable from the first key: a statement before it is missing,
    /// or it belongs to another node.
    #[error("gap: rotation statement {index} does not continue the chain")]
    Disconnected {
        /// The statement's index.
        index: usize,
    },
}

/// A node's statement that it moved from the key `old` to the key `new`.
///
/// Signed by **both** keys over the same domain-separated message: the old key's signature
/// authorises the move, the new key's proves that the node holds it (so nobody can rotate
/// "to" a key that is not theirs). Neither signature alone is enough; [`verify`] says which
/// one failed.
///
/// The message signed is
///
/// ```text
/// "dawn/key-rotation/v1" || old (32) || new (32) || sequence (u64 BE) || issued_at (u64 BE)
///     || 0x00                                   if there is no reason
///     || 0x01 || len (u16 BE) || reason (UTF-8) otherwise
/// ```
///
/// `sequence` is the statement's position in the node's chain of rotations, 1 for the first
/// move away from the original key; `issued_at` is the signer's clock in seconds since the
/// Unix epoch, informational only. A statement is valid by construction apart from its
/// signatures: the keys differ and the optional reason is 1 to 256 bytes without control
/// characters.
///
/// ```
/// use dawn_crypto::SigningKey;
/// use dawn_identity::{NodeId, RotationStatement, follow_rotations};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (k0, k1) = (SigningKey::generate()?, SigningKey::generate()?);
/// let statement = RotationStatement::sign(&k0, &k1, 1, 1_700_000_000, Some("scheduled"))?;
/// statement.verify()?;
///
/// let bytes = statement.encode()?;
/// let decoded = RotationStatement::decode(&bytes)?;
/// let history = follow_rotations(NodeId::from(k0.verifying_key()), &[decoded])?;
/// assert_eq!(history.current(), NodeId::from(k1.verifying_key()));
/// # Ok(()) }
/// ```
///
/// [`verify`]: RotationStatement::verify
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireStatement")]
pub struct RotationStatement {
    old: NodeId,
    new: NodeId,
    sequence: u64,
    issued_at: u64,
    reason: Option<String>,
    #[serde(serialize_with = "signature_serde::serialize")]
    old_signature: Signature,
    #[serde(serialize_with = "signature_serde::serialize")]
    new_signature: Signature,
}

/// The decoded form before validation.
#[derive(Deserialize)]
struct WireStatement {
    old: NodeId,
    new: NodeId,
    sequence: u64,
    issued_at: u64,
    reason: Option<String>,
    #[serde(deserialize_with = "signature_serde::deserialize")]
    old_signature: Signature,
    #[serde(deserialize_with = "signature_serde::deserialize")]
    new_signature: Signature,
}

impl TryFrom<WireStatement> for RotationStatement {
    type Error = RotationError;

    fn try_from(wire: WireStatement) -> Result<Self, RotationError> {
        check_fields(&wire.old, &wire.new, wire.reason.as_deref())?;
        Ok(Self {
            old: wire.old,
            new: wire.new,
            sequence: wire.sequence,
            issued_at: wire.issued_at,
            reason: wire.reason,
            old_signature: wire.old_signature,
            new_signature: wire.new_signature,
        })
    }
}

fn check_fields(old: &NodeId, new: &NodeId, reason: Option<&str>) -> Result<(), RotationError> {
    if old == new {
        return Err(RotationError::SameKey);
    }
    if let Some(reason) = reason {
        if reason.is_empty() {
            return Err(RotationError::ReasonEmpty);
        }
        if reason.len() > ROTATION_REASON_MAX_LEN {
            return Err(RotationError::ReasonTooLong { len: reason.len() });
        }
        if let Some(ch) = reason.chars().find(|c| c.is_control()) {
            return Err(RotationError::ReasonControlChar { ch });
        }
    }
    Ok(())
}

fn signed_message(
    old: &NodeId,
    new: &NodeId,
    sequence: u64,
    issued_at: u64,
    reason: Option<&str>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(ROTATION_DOMAIN.len() + 83 + ROTATION_REASON_MAX_LEN);
    out.extend_from_slice(ROTATION_DOMAIN);
    out.extend_from_slice(old.as_bytes());
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&issued_at.to_be_bytes());
    match reason {
        None => out.push(0),
        Some(reason) => {
            out.push(1);
            // Checked to be at most 256 bytes before any statement exists.
            let len = u16::try_from(reason.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(reason.as_bytes());
        }
    }
    out
}

impl RotationStatement {
    /// Signs a rotation from `old` to `new` with both keys.
    ///
    /// # Errors
    /// [`RotationError::SameKey`] if the keys are equal, or a `Reason*` variant if `reason`
    /// is empty, longer than 256 bytes or holds a control character.
    pub fn sign(
        old: &SigningKey,
        new: &SigningKey,
        sequence: u64,
        issued_at: u64,
        reason: Option<&str>,
    ) -> Result<Self, RotationError> {
        let old_id = NodeId::from(old.verifying_key());
        let new_id = NodeId::from(new.verifying_key());
        check_fields(&old_id, &new_id, reason)?;
        let message = signed_message(&old_id, &new_id, sequence, issued_at, reason);
        Ok(Self {
            old: old_id,
            new: new_id,
            sequence,
            issued_at,
            reason: reason.map(str::to_owned),
            old_signature: old.sign(&message),
            new_signature: new.sign(&message),
        })
    }

    /// Checks both signatures (strict Ed25519).
    ///
    /// # Errors
    /// [`RotationError::OldSignature`], [`RotationError::NewSignature`] or
    /// [`RotationError::BothSignatures`], saying which did not verify.
    pub fn verify(&self) -> Result<(), RotationError> {
        let message = signed_message(
            &self.old,
            &self.new,
            self.sequence,
            self.issued_at,
            self.reason.as_deref(),
        );
        let old_ok = self.old.verify(&message, &self.old_signature).is_ok();
        let new_ok = self.new.verify(&message, &self.new_signature).is_ok();
        match (old_ok, new_ok) {
            (true, true) => Ok(()),
            (false, true) => Err(RotationError::OldSignature),
            (true, false) => Err(RotationError::NewSignature),
            (false, false) => Err(RotationError::BothSignatures),
        }
    }

    /// The key the node moves away from.
    #[must_use]
    pub const fn old_id(&self) -> NodeId {
        self.old
    }

    /// The key the node moves to.
    #[must_use]
    pub const fn new_id(&self) -> NodeId {
        self.new
    }

    /// The statement's position in the node's chain of rotations, from 1.
    #[must_use]
    pub const fn sequence(&self) -> u64 {
        self.sequence
    }

    /// When the signer says it signed, in seconds since the Unix epoch (informational).
    #[must_use]
    pub const fn issued_at(&self) -> u64 {
        self.issued_at
    }

    /// Why the key was rotated, if the signer said.
    #[must_use]
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The old key's signature.
    #[must_use]
    pub const fn old_signature(&self) -> &Signature {
        &self.old_signature
    }

    /// The new key's signature.
    #[must_use]
    pub const fn new_signature(&self) -> &Signature {
        &self.new_signature
    }

    /// Encodes the statement with postcard (at most 473 bytes).
    ///
    /// # Errors
    /// [`RotationCodecError::Malformed`] if postcard fails, which it does not for this type.
    pub fn encode(&self) -> Result<Vec<u8>, RotationCodecError> {
        postcard::to_allocvec(self).map_err(RotationCodecError::Malformed)
    }

    /// Decodes a postcard-encoded statement, refusing input longer than
    /// [`ROTATION_STATEMENT_MAX_LEN`] and trailing bytes. Does **not** check the signatures:
    /// call [`verify`](Self::verify) (or [`follow_rotations`]).
    ///
    /// # Errors
    /// A [`RotationCodecError`]; never panics, whatever the input.
    pub fn decode(bytes: &[u8]) -> Result<Self, RotationCodecError> {
        if bytes.len() > ROTATION_STATEMENT_MAX_LEN {
            return Err(RotationCodecError::TooLong { len: bytes.len() });
        }
        let (wire, rest) = postcard::take_from_bytes::<WireStatement>(bytes)
            .map_err(RotationCodecError::Malformed)?;
        if !rest.is_empty() {
            return Err(RotationCodecError::TrailingBytes { count: rest.len() });
        }
        Ok(Self::try_from(wire)?)
    }
}

/// The keys a node has had, from the first to the current, as established by
/// [`follow_rotations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationHistory {
    first: NodeId,
    later: Vec<NodeId>,
}

impl RotationHistory {
    /// The key the chain starts from.
    #[must_use]
    pub const fn first(&self) -> NodeId {
        self.first
    }

    /// The node's current key: the last one on the chain.
    #[must_use]
    pub fn current(&self) -> NodeId {
        self.later.last().copied().unwrap_or(self.first)
    }

    /// How many rotations the chain holds.
    #[must_use]
    pub fn rotations(&self) -> usize {
        self.later.len()
    }

    /// Every key in order, the first one included.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        std::iter::once(self.first).chain(self.later.iter().copied())
    }

    /// Whether `id` was ever this node's key.
    #[must_use]
    pub fn contains(&self, id: &NodeId) -> bool {
        self.first == *id || self.later.contains(id)
    }
}

/// Follows a node from its first key to its current one.
///
/// `statements` may come in any order (as gossip delivers them) and may repeat; every one of
/// them must lie on the single path that starts at `first`. Each statement on the path is
/// verified, and the `n`-th must carry sequence number `n`.
///
/// # Errors
/// [`RotationChainError::Fork`] if two different statements leave the same key,
/// [`RotationChainError::Invalid`] if a signature fails, [`RotationChainError::OutOfSequence`],
/// [`RotationChainError::Cycle`] if the path returns to a key,
/// [`RotationChainError::Disconnected`] if a statement is not reachable from `first` (a gap),
/// [`RotationChainError::TooManyStatements`] beyond [`ROTATION_CHAIN_MAX_LEN`].
pub fn follow_rotations(
    first: NodeId,
    statements: &[RotationStatement],
) -> Result<RotationHistory, RotationChainError> {
    if statements.len() > ROTATION_CHAIN_MAX_LEN {
        return Err(RotationChainError::TooManyStatements {
            count: statements.len(),
        });
    }
    let mut by_old: BTreeMap<NodeId, (usize, &RotationStatement)> = BTreeMap::new();
    for (index, statement) in statements.iter().enumerate() {
        match by_old.entry(statement.old) {
            Entry::Vacant(slot) => {
                slot.insert((index, statement));
            }
            Entry::Occupied(slot) if slot.get().1 == statement => {}
            Entry::Occupied(slot) => {
                return Err(RotationChainError::Fork {
                    first: slot.get().0,
                    second: index,
                });
            }
        }
    }
    let mut seen = BTreeSet::from([first]);
    let mut later = Vec::new();
    let mut current = first;
    let mut expected: u64 = 1;
    while let Some((index, statement)) = by_old.remove(&current) {
        statement
            .verify()
            .map_err(|source| RotationChainError::Invalid { index, source })?;
        if statement.sequence != expected {
            return Err(RotationChainError::OutOfSequence {
                index,
                expected,
                found: statement.sequence,
            });
        }
        if !seen.insert(statement.new) {
            return Err(RotationChainError::Cycle { index });
        }
        later.push(statement.new);
        current = statement.new;
        expected = expected.saturating_add(1);
    }
    // Report the earliest stray statement, whatever the map's order.
    if let Some(index) = by_old.values().map(|(index, _)| *index).min() {
        return Err(RotationChainError::Disconnected { index });
    }
    Ok(RotationHistory { first, later })
}

/// Signatures as bytes: raw in binary formats, lowercase hex in human-readable ones.
mod signature_serde {
    use super::*;

    pub(super) fn serialize<S: Serializer>(sig: &Signature, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&HEXLOWER.encode(sig.as_bytes()))
        } else {
            s.serialize_bytes(sig.as_bytes())
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Signature, D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(SignatureVisitor)
        } else {
            d.deserialize_bytes(SignatureVisitor)
        }
    }

    struct SignatureVisitor;

    impl<'de> Visitor<'de> for SignatureVisitor {
        type Value = Signature;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a {SIGNATURE_LEN}-byte Ed25519 signature")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Signature, E> {
            Signature::try_from_slice(v).map_err(|_| E::invalid_length(v.len(), &self))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Signature, E> {
            if v.len() != 2 * SIGNATURE_LEN {
                return Err(E::invalid_length(v.len(), &self));
            }
            let bytes = HEXLOWER
                .decode(v.as_bytes())
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))?;
            self.visit_bytes(&bytes)
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
            let mut bytes = [0u8; SIGNATURE_LEN];
            for (i, slot) in bytes.iter_mut().enumerate() {
                *slot = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(i, &self))?;
            }
            if seq.next_element::<u8>()?.is_some() {
                return Err(de::Error::invalid_length(SIGNATURE_LEN + 1, &self));
            }
            Ok(Signature::from_bytes(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn id(seed: u8) -> NodeId {
        key(seed).verifying_key().into()
    }

    fn rotate(from: u8, to: u8, sequence: u64) -> RotationStatement {
        RotationStatement::sign(&key(from), &key(to), sequence, 1_700_000_000, None).unwrap()
    }

    #[test]
    fn sign_verify_and_accessors() {
        let st = RotationStatement::sign(&key(1), &key(2), 1, 42, Some("lost laptop")).unwrap();
        st.verify().unwrap();
        assert_eq!(st.old_id(), id(1));
        assert_eq!(st.new_id(), id(2));
        assert_eq!(st.sequence(), 1);
        assert_eq!(st.issued_at(), 42);
        assert_eq!(st.reason(), Some("lost laptop"));
        assert_ne!(st.old_signature(), st.new_signature());
    }

    #[test]
    fn verify_says_which_signature_failed() {
        let st = rotate(1, 2, 1);
        let swap = |old: Signature, new: Signature| RotationStatement {
            old_signature: old,
            new_signature: new,
            ..st.clone()
        };
        let junk = Signature::from_bytes([0; 64]);
        assert_eq!(
            swap(junk, st.new_signature).verify(),
            Err(RotationError::OldSignature)
        );
        assert_eq!(
            swap(st.old_signature, junk).verify(),
            Err(RotationError::NewSignature)
        );
        assert_eq!(
            swap(junk, junk).verify(),
            Err(RotationError::BothSignatures)
        );
        // Swapped signatures verify under neither key.
        assert_eq!(
            swap(st.new_signature, st.old_signature).verify(),
            Err(RotationError::BothSignatures)
        );
        // Every signed field is covered.
        let changed = [
            RotationStatement {
                sequence: 2,
                ..st.clone()
            },
            RotationStatement {
                issued_at: 1,
                ..st.clone()
            },
            RotationStatement {
                reason: Some("x".into()),
                ..st.clone()
            },
            RotationStatement {
                new: id(3),
                ..st.clone()
            },
        ];
        for bad in changed {
            assert!(bad.verify().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signed_message_is_domain_separated_and_pinned() {
        let message = signed_message(&id(1), &id(2), 1, 2, Some("ab"));
        assert!(message.starts_with(b"dawn/key-rotation/v1"));
        assert_eq!(message.len(), 20 + 32 + 32 + 8 + 8 + 1 + 2 + 2);
        assert_eq!(
            &message[84..100],
            &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]
        );
        assert_eq!(&message[100..], &[1, 0, 2, b'a', b'b']);
        let none = signed_message(&id(1), &id(2), 1, 2, None);
        assert_eq!(none.last(), Some(&0));
        // A plain signature by the key over the same fields, without the domain, is refused.
        let st = rotate(1, 2, 1);
        let bare = &signed_message(&id(1), &id(2), 1, 1_700_000_000, None)[20..];
        let forged = RotationStatement {
            old_signature: key(1).sign(bare),
            new_signature: key(2).sign(bare),
            ..st
        };
        assert_eq!(forged.verify(), Err(RotationError::BothSignatures));
    }

    #[test]
    fn rules_are_enforced_when_signing() {
        assert_eq!(
            RotationStatement::sign(&key(1), &key(1), 1, 0, None),
            Err(RotationError::SameKey)
        );
        assert_eq!(
            RotationStatement::sign(&key(1), &key(2), 1, 0, Some("")),
            Err(RotationError::ReasonEmpty)
        );
        assert_eq!(
            RotationStatement::sign(&key(1), &key(2), 1, 0, Some(&"r".repeat(257))),
            Err(RotationError::ReasonTooLong { len: 257 })
        );
        assert!(RotationStatement::sign(&key(1), &key(2), 1, 0, Some(&"r".repeat(256))).is_ok());
        assert_eq!(
            RotationStatement::sign(&key(1), &key(2), 1, 0, Some("a\nforged log line")),
            Err(RotationError::ReasonControlChar { ch: '\n' })
        );
    }

    #[test]
    fn codec_round_trip_and_bounds() {
        let st =
            RotationStatement::sign(&key(1), &key(2), u64::MAX, u64::MAX, Some(&"é".repeat(128)))
                .unwrap();
        let bytes = st.encode().unwrap();
        assert_eq!(bytes.len(), 473, "the documented maximum");
        assert_eq!(RotationStatement::decode(&bytes).unwrap(), st);
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            RotationStatement::decode(&long),
            Err(RotationCodecError::TrailingBytes { count: 1 })
        ));
        long.resize(ROTATION_STATEMENT_MAX_LEN + 1, 0);
        assert!(matches!(
            RotationStatement::decode(&long),
            Err(RotationCodecError::TooLong { len: 513 })
        ));
        for cut in 0..bytes.len() {
            assert!(matches!(
                RotationStatement::decode(&bytes[..cut]),
                Err(RotationCodecError::Malformed(_))
            ));
        }
    }

    #[test]
    fn decode_enforces_the_rules() {
        // A statement with equal keys, encoded by hand: it must not decode.
        let st = rotate(1, 2, 1);
        let mut bytes = st.encode().unwrap();
        bytes[32..64].copy_from_slice(id(1).as_bytes());
        assert!(matches!(
            RotationStatement::decode(&bytes),
            Err(RotationCodecError::Invalid(RotationError::SameKey))
        ));
        assert!(postcard::from_bytes::<RotationStatement>(&bytes).is_err());
    }

    #[test]
    fn chain_is_followed_in_any_order() {
        let chain = [rotate(1, 2, 1), rotate(2, 3, 2), rotate(3, 4, 3)];
        let history = follow_rotations(id(1), &chain).unwrap();
        assert_eq!(history.current(), id(4));
        assert_eq!(history.first(), id(1));
        assert_eq!(history.rotations(), 3);
        assert_eq!(
            history.ids().collect::<Vec<_>>(),
            [id(1), id(2), id(3), id(4)]
        );
        assert!(history.contains(&id(3)));
        assert!(!history.contains(&id(5)));
        let shuffled = [
            chain[2].clone(),
            chain[0].clone(),
            chain[1].clone(),
            chain[0].clone(),
        ];
        assert_eq!(follow_rotations(id(1), &shuffled).unwrap(), history);
        let none = follow_rotations(id(1), &[]).unwrap();
        assert_eq!(none.current(), id(1));
        assert_eq!(none.rotations(), 0);
    }

    #[test]
    fn chain_faults_are_named() {
        assert_eq!(
            follow_rotations(id(1), &[rotate(1, 2, 1), rotate(1, 3, 1)]),
            Err(RotationChainError::Fork {
                first: 0,
                second: 1
            })
        );
        assert_eq!(
            follow_rotations(id(1), &[rotate(1, 2, 1), rotate(3, 4, 3)]),
            Err(RotationChainError::Disconnected { index: 1 })
        );
        assert_eq!(
            follow_rotations(id(1), &[rotate(1, 2, 1), rotate(2, 3, 3)]),
            Err(RotationChainError::OutOfSequence {
                index: 1,
                expected: 2,
                found: 3
            })
        );
        assert_eq!(
            follow_rotations(id(1), &[rotate(1, 2, 1), rotate(2, 1, 2)]),
            Err(RotationChainError::Cycle { index: 1 })
        );
        assert_eq!(
            follow_rotations(id(1), &[rotate(1, 2, 1), rotate(2, 3, 2), rotate(3, 2, 3)]),
            Err(RotationChainError::Cycle { index: 2 })
        );
        let mut bad = rotate(1, 2, 1);
        bad.new_signature = Signature::from_bytes([0; 64]);
        assert_eq!(
            follow_rotations(id(1), &[bad]),
            Err(RotationChainError::Invalid {
                index: 0,
                source: RotationError::NewSignature
            })
        );
        let many = vec![rotate(1, 2, 1); ROTATION_CHAIN_MAX_LEN + 1];
        assert_eq!(
            follow_rotations(id(1), &many),
            Err(RotationChainError::TooManyStatements {
                count: ROTATION_CHAIN_MAX_LEN + 1
            })
        );
    }
}
