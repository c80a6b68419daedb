//! Strict postcard: one encoding per value, nothing left over.

use std::fmt;

use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A message body (or a later crate's payload) could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The bytes are not a postcard encoding of the expected type (cut short, a bad varint,
    /// invalid UTF-8, an out-of-range tag...).
    #[error("malformed body: {detail}")]
    Malformed {
        /// What postcard reported.
        detail: String,
    },
    /// The body decoded but bytes were left after it.
    #[error("{count} trailing bytes after the body")]
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
    /// The body decoded but is not the canonical (shortest) encoding of its value, e.g. a
    /// varint with redundant continuation bytes. Refused so that every value has exactly one
    /// encoding.
    #[error("body is not canonically encoded")]
    NonCanonical,
    /// The value could not be serialized.
    #[error("value cannot be encoded: {detail}")]
    Encode {
        /// What postcard reported.
        detail: String,
    },
}

/// Encodes `value` with postcard, the way every Dawn message body is encoded.
///
/// Later crates use this for the payloads of their
/// [`Message::Protocol`](crate::Message::Protocol) messages so that they follow the same rules
/// as the core messages.
///
/// # Errors
/// [`PayloadError::Encode`] if serde refuses the value (e.g. a sequence of unknown length).
pub fn encode_payload<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), PayloadError> {
    postcard::to_extend(value, std::mem::take(out))
        .map(|vec| *out = vec)
        .map_err(|e| PayloadError::Encode {
            detail: e.to_string(),
        })
}

/// Decodes a postcard body strictly: every byte must be used and the encoding must be
/// canonical, so a value has exactly one encoding.
///
/// Strings and byte strings of `T` may borrow from `bytes`; their lengths are bounded by
/// `bytes.len()`, but any semantic bound (a name of at most 64 bytes...) is the caller's to
/// check on the decoded value.
///
/// # Errors
/// [`PayloadError::Malformed`], [`PayloadError::TrailingBytes`] or
/// [`PayloadError::NonCanonical`].
pub fn decode_payload<'a, T>(bytes: &'a [u8]) -> Result<T, PayloadError>
where
    T: Deserialize<'a> + Serialize,
{
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| PayloadError::Malformed {
            detail: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(PayloadError::TrailingBytes { count: rest.len() });
    }
    // Postcard accepts over-long varints; they are the only way a decodable body can be longer
    // than the value's canonical encoding, so equal sizes mean canonical bytes.
    match postcard::experimental::serialized_size(&value) {
        Ok(size) if size == bytes.len() => Ok(value),
        _ => Err(PayloadError::NonCanonical),
    }
}

/// A byte string borrowed from the input, encoded as postcard bytes (a varint length, then
/// the bytes), without serde's element-by-element treatment of `&[u8]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawBytes<'a>(pub(crate) &'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawBytes<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BorrowedBytes<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for BorrowedBytes<'a> {
            type Value = RawBytes<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a borrowed byte string")
            }

            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<Self::Value, E> {
                Ok(RawBytes(v))
            }
        }

        deserializer.deserialize_bytes(BorrowedBytes(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample<'a> {
        number: u32,
        name: &'a str,
    }

    #[test]
    fn round_trips_and_rejects_trailing_and_overlong() {
        let value = Sample {
            number: 5,
            name: "x",
        };
        let bytes = encode_payload(&value).unwrap();
        assert_eq!(bytes, [5, 1, b'x']);
        assert_eq!(decode_payload::<Sample<'_>>(&bytes).unwrap(), value);

        assert_eq!(
            decode_payload::<Sample<'_>>(&[5, 1, b'x', 0]),
            Err(PayloadError::TrailingBytes { count: 1 })
        );
        // 5 spelled as a two-byte varint.
        assert_eq!(
            decode_payload::<Sample<'_>>(&[0x85, 0x00, 1, b'x']),
            Err(PayloadError::NonCanonical)
        );
        assert!(matches!(
            decode_payload::<Sample<'_>>(&[5, 2, b'x']),
            Err(PayloadError::Malformed { .. })
        ));
        assert!(matches!(
            decode_payload::<Sample<'_>>(&[5, 1, 0xff]),
            Err(PayloadError::Malformed { .. })
        ));
    }
}
