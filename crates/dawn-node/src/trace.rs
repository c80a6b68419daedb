//! Request ids and the span convention that ties one request's log lines together across
//! nodes.
//!
//! A request that crosses the mesh (an agent call, a registry sync) gets a [`RequestId`] on
//! the node where it starts. That node handles it inside [`RequestId::span`] and sends the
//! id's 16 bytes ([`RequestId::to_bytes`]) in the stream's preamble; the receiving node reads
//! them back with [`RequestId::from_bytes`] and handles its side inside a span made the same
//! way. Both nodes' log lines then carry the same `dawn.req_id` field (and each names the
//! other as `peer`), so one search over all nodes' JSON logs finds the whole request.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use dawn_identity::NodeId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::api::Direction;

/// The span field that carries a [`RequestId`]: `dawn.req_id`.
pub const REQUEST_ID_FIELD: &str = "dawn.req_id";

/// The name of the spans made by [`RequestId::span`]: `dawn.node.request`.
pub const REQUEST_SPAN: &str = "dawn.node.request";

/// A text request id was not 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestIdError {
    /// The text is not 32 characters long.
    #[error("a request id is 32 hex digits, not {0} characters")]
    Length(usize),
    /// A character is not a lowercase hex digit.
    #[error("a request id is lowercase hex digits (0-9, a-f) only")]
    Digit,
}

/// The id of one request, the same on every node it touches: 16 bytes, written as 32
/// lowercase hex digits (in logs, JSON and its [`Display`](fmt::Display) form).
///
/// Ids are random, so two nodes never need to agree on a counter. They identify; they are
/// not secrets and authorise nothing.
///
/// ```
/// use dawn_node::{Direction, RequestId};
///
/// let id = RequestId::new();
/// // The caller puts these 16 bytes in the stream preamble...
/// let wire = id.to_bytes();
/// // ...and the callee reads the same id back.
/// let received = RequestId::from_bytes(wire);
/// assert_eq!(received, id);
/// assert_eq!(id.to_string().parse::<RequestId>(), Ok(id));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId([u8; 16]);

impl RequestId {
    /// Length of the binary form, in bytes.
    pub const LEN: usize = 16;

    /// A new random id. Should the operating system's random source fail, a process-unique
    /// id is made from the clock and a counter instead, so this never fails.
    #[must_use]
    pub fn new() -> Self {
        let mut bytes = [0u8; Self::LEN];
        if dawn_crypto::fill_random(&mut bytes).is_err() {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let count = NEXT.fetch_add(1, Ordering::Relaxed);
            let (high, low) = bytes.split_at_mut(8);
            high.copy_from_slice(&nanos.to_le_bytes()[..8]);
            low.copy_from_slice(&count.to_be_bytes());
        }
        Self(bytes)
    }

    /// The id from its 16-byte binary form (as read from a stream preamble). Every 16 bytes
    /// are a valid id.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// The 16-byte binary form, to write into a stream preamble.
    #[must_use]
    pub const fn to_bytes(self) -> [u8; Self::LEN] {
        self.0
    }

    /// A span for this node's side of the request, named `dawn.node.request`, with the
    /// fields `dawn.req_id` (this id), `peer` (the other node, short form), `op` (what the
    /// request does, e.g. `"agent_call"`) and `direction` (`outbound` on the node that sent
    /// the request, `inbound` on the node that serves it).
    ///
    /// Enter it (or `.instrument(span)` the future) around all the work for the request, so
    /// every log line inside carries the fields; other spans inside nest under it.
    ///
    /// The span has level ERROR, although it marks no error: a span is recorded only when
    /// the log filter enables its level, and this one must be, so that the warnings and
    /// errors of a request keep its id under a `warn` or `error` filter too.
    #[must_use]
    pub fn span(self, peer: &NodeId, op: &'static str, direction: Direction) -> tracing::Span {
        tracing::error_span!(
            "dawn.node.request",
            dawn.req_id = %self,
            peer = %peer.fmt_short(),
            op,
            direction = direction.as_str(),
        )
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

impl FromStr for RequestId {
    type Err = RequestIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 2 * Self::LEN {
            return Err(RequestIdError::Length(text.chars().count()));
        }
        let digit = |b: u8| match b {
            b'0'..=b'9' => Ok(b - b'0'),
            b'a'..=b'f' => Ok(b - b'a' + 10),
            _ => Err(RequestIdError::Digit),
        };
        let mut bytes = [0u8; Self::LEN];
        for (out, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let [hi, lo] = pair else {
                return Err(RequestIdError::Digit);
            };
            *out = (digit(*hi)? << 4) | digit(*lo)?;
        }
        Ok(Self(bytes))
    }
}

/// Serialized as its text form in every format; binary preambles use
/// [`RequestId::to_bytes`].
impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_are_random_and_print_as_hex() {
        let (a, b) = (RequestId::new(), RequestId::new());
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 32);
        assert!(
            text.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(
            RequestId::from_bytes([0xab; 16]).to_string(),
            "ab".repeat(16)
        );
    }

    #[test]
    fn bad_text_is_refused() {
        assert_eq!("".parse::<RequestId>(), Err(RequestIdError::Length(0)));
        assert_eq!(
            "ab".repeat(17).parse::<RequestId>(),
            Err(RequestIdError::Length(34))
        );
        assert_eq!(
            "AB".repeat(16).parse::<RequestId>(),
            Err(RequestIdError::Digit)
        );
        assert_eq!(
            format!("{}g", "0".repeat(31)).parse::<RequestId>(),
            Err(RequestIdError::Digit)
        );
        // 32 bytes, but not 32 characters: no panic on a char boundary.
        let text = format!("é{}", "0".repeat(30));
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<RequestId>(), Err(RequestIdError::Digit));
    }

    #[test]
    fn json_is_the_text_form() {
        let id = RequestId::from_bytes(*b"0123456789abcdef");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<RequestId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<RequestId>("\"xyz\"").is_err());
    }

    proptest! {
        #[test]
        fn text_and_bytes_round_trip(bytes in any::<[u8; 16]>()) {
            let id = RequestId::from_bytes(bytes);
            prop_assert_eq!(id.to_string().parse::<RequestId>(), Ok(id));
            prop_assert_eq!(RequestId::from_bytes(id.to_bytes()), id);
        }

        #[test]
        fn arbitrary_text_parses_to_its_own_spelling_or_not_at_all(text in "\\PC{0,40}") {
            if let Ok(id) = text.parse::<RequestId>() {
                prop_assert_eq!(id.to_string(), text);
            }
        }
    }
}
