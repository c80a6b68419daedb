//! `NodeId`: a node's Ed25519 public key and its text form.

use std::fmt;
use std::str::FromStr;

use data_encoding::{Encoding, Specification};
use dawn_crypto::{KeyError, PUBLIC_KEY_LEN, Signature, SignatureError, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length of a [`NodeId`]'s text form: 32 bytes in unpadded base32.
pub const NODE_ID_TEXT_LEN: usize = 52;

/// Length of [`NodeId::fmt_short`]'s output.
const SHORT_LEN: usize = 10;

/// Lowercase RFC 4648 base32 without padding.
fn base32() -> Encoding {
    let mut spec = Specification::new();
    spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
    // Only the canonical spelling decodes: no padding, no trailing bits set.
    spec.check_trailing_bits = true;
    // The specification is constant and valid, so this cannot fail; fall back to the
    // standard alphabet rather than panic if a future data-encoding disagreed.
    spec.encoding().unwrap_or(data_encoding::BASE32_NOPAD)
}

/// A [`NodeId`] could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeIdError {
    /// The text is not 52 characters long.
    #[error("a node id is {NODE_ID_TEXT_LEN} characters of base32, got {0} characters")]
    Length(usize),
    /// The text has a character outside `a-z2-7`, or is not the canonical spelling.
    #[error("a node id uses only the characters a-z and 2-7 (lowercase base32): {0}")]
    Encoding(String),
    /// The bytes are not an acceptable Ed25519 public key.
    #[error("not a valid Ed25519 public key: {0}")]
    Key(#[from] KeyError),
}

/// A node's identity: its 32-byte Ed25519 public key, which is also its TLS key.
///
/// # Text form
///
/// Lowercase RFC 4648 base32 without padding, 52 characters from `a-z2-7`, for example
/// `x6kt...` — case-insensitive on input, always lowercase on output; there is exactly one
/// spelling per key. [`NodeId::fmt_short`] gives the first 10 characters, for logs.
///
/// A `NodeId` is valid by construction (a canonical, non-small-order curve point); serde
/// encodes it as its 32 raw bytes in binary formats and as its text form in human-readable
/// ones, and validates it when decoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(VerifyingKey);

impl NodeId {
    /// Parses 32 public-key bytes.
    ///
    /// # Errors
    /// [`NodeIdError::Key`] if the bytes are not a valid Ed25519 public key.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, NodeIdError> {
        Ok(Self(VerifyingKey::from_bytes(bytes)?))
    }

    /// The 32 public-key bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        self.0.as_bytes()
    }

    /// The Ed25519 key that verifies this node's signatures.
    #[must_use]
    pub const fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// Verifies a signature by this node (strictly; see [`VerifyingKey::verify`]).
    ///
    /// # Errors
    /// [`SignatureError::Invalid`] if it does not verify.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        self.0.verify(message, signature)
    }

    /// A short form for logs: the first 10 characters of the text form (50 bits).
    ///
    /// Unique enough to tell peers apart in a log, never enough to identify one: use the full
    /// form anywhere a node is named on purpose.
    #[must_use]
    pub fn fmt_short(&self) -> String {
        let mut text = self.to_string();
        text.truncate(SHORT_LEN);
        text
    }
}

impl From<VerifyingKey> for NodeId {
    fn from(key: VerifyingKey) -> Self {
        Self(key)
    }
}

impl From<NodeId> for VerifyingKey {
    fn from(id: NodeId) -> Self {
        id.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base32().encode(self.as_bytes()))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.fmt_short())
    }
}

impl FromStr for NodeId {
    type Err = NodeIdError;

    fn from_str(s: &str) -> Result<Self, NodeIdError> {
        if s.len() != NODE_ID_TEXT_LEN {
            return Err(NodeIdError::Length(s.chars().count()));
        }
        let lower = s.to_ascii_lowercase();
        let bytes = base32()
            .decode(lower.as_bytes())
            .map_err(|_| NodeIdError::Encoding(s.to_owned()))?;
        let array: [u8; PUBLIC_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| NodeIdError::Encoding(s.to_owned()))?;
        Self::from_bytes(&array)
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            self.as_bytes().serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            let bytes = <[u8; PUBLIC_KEY_LEN]>::deserialize(deserializer)?;
            Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_crypto::SigningKey;

    fn id(seed: u8) -> NodeId {
        SigningKey::from_bytes(&[seed; 32]).verifying_key().into()
    }

    #[test]
    fn text_round_trip_is_lowercase_and_canonical() {
        let node = id(1);
        let text = node.to_string();
        assert_eq!(text.len(), NODE_ID_TEXT_LEN);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        );
        assert_eq!(text.parse::<NodeId>().unwrap(), node);
        assert_eq!(text.to_ascii_uppercase().parse::<NodeId>().unwrap(), node);
        assert_eq!(node.fmt_short(), text[..10]);
        assert_eq!(format!("{node:?}"), format!("NodeId({})", &text[..10]));
    }

    #[test]
    fn malformed_text_gets_typed_errors() {
        assert_eq!("".parse::<NodeId>(), Err(NodeIdError::Length(0)));
        assert_eq!("abc".parse::<NodeId>(), Err(NodeIdError::Length(3)));
        let text = id(2).to_string();
        let bad_char = format!("1{}", &text[1..]);
        assert!(matches!(
            bad_char.parse::<NodeId>(),
            Err(NodeIdError::Encoding(_))
        ));
        // The 52nd character carries 4 trailing bits that must be zero.
        let mut last = text.clone().into_bytes();
        last[51] = b'7';
        let last = String::from_utf8(last).unwrap();
        if last != text {
            assert!(last.parse::<NodeId>().is_err());
        }
        // The identity point is a small-order key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            NodeId::from_bytes(&identity),
            Err(NodeIdError::Key(KeyError::SmallOrder))
        );
    }

    #[test]
    fn serde_binary_is_raw_bytes_and_validates() {
        let node = id(3);
        let bytes = postcard::to_allocvec(&node).unwrap();
        assert_eq!(bytes, node.as_bytes());
        assert_eq!(postcard::from_bytes::<NodeId>(&bytes).unwrap(), node);
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(postcard::from_bytes::<NodeId>(&identity).is_err());
    }
}
