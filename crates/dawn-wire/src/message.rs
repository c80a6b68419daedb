//! Messages: a small fixed header naming the format and type, then a postcard body.

use std::ops::RangeInclusive;

use bytes::Bytes;
use dawn_crypto::PUBLIC_KEY_LEN;
use dawn_identity::{NodeId, NodeIdError};
use serde::{Deserialize, Serialize};

use crate::chunk::{Chunk, ChunkError};
use crate::codec::{PayloadError, RawBytes, decode_payload, encode_into};
use crate::frame::MAX_FRAME_LEN;
use crate::hello::{Capabilities, Hello, HelloError};

/// Version of the message encoding itself: the header layout and the use of postcard.
///
/// Distinct from the negotiated [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION): this byte only
/// changes if the way every message is laid out changes, and a node that sees a value it does
/// not know gets [`WireError::UnknownFormatVersion`] instead of garbage.
pub const WIRE_FORMAT_VERSION: u8 = 1;

/// Length of a message header: the format version (1 byte) and the type number (`u16`,
/// big-endian).
pub const MESSAGE_HEADER_LEN: usize = 3;

/// The default maximum length of one encoded message: the default frame maximum, since one
/// frame carries one message.
pub const MAX_MESSAGE_LEN: usize = MAX_FRAME_LEN;

/// Who owns a range of message type numbers.
///
/// Type numbers are part of the wire format and never reused. The core types live in this
/// crate; every other range belongs to one crate, which defines the numbers inside it and
/// carries its payloads in [`Message::Protocol`]. Numbers outside every range are unassigned
/// and decode to [`WireError::UnknownType`].
///
/// | Range             | Owner                                       |
/// |-------------------|---------------------------------------------|
/// | `0x0000`          | reserved, never valid                       |
/// | `0x0001..=0x00FF` | core (`dawn-wire`): hello, ping, pong, chunk |
/// | `0x0100..=0x01FF` | `dawn-gossip`                               |
/// | `0x0200..=0x02FF` | `dawn-registry`                             |
/// | `0x0300..=0x03FF` | `dawn-mcp`                                  |
/// | `0x0400..=0x04FF` | `dawn-consensus`                            |
/// | `0x0500..=0x05FF` | `dawn-trust`                                |
/// | `0x0600..=0x06FF` | `dawn-relay`                                |
/// | `0x0700..=0x07FF` | `dawn-resilience`                           |
/// | `0x0800..=0x08FF` | `dawn-biometrics`                           |
/// | `0x0900..=0xEFFF` | unassigned                                  |
/// | `0xF000..=0xFFFE` | experimental, private to a deployment       |
/// | `0xFFFF`          | reserved, never valid                       |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Subsystem {
    /// This crate's own messages.
    Core,
    /// Gossip broadcast.
    Gossip,
    /// The agent registry CRDT.
    Registry,
    /// MCP calls between nodes.
    Mcp,
    /// The BFT consensus log.
    Consensus,
    /// Trust scores and attestations.
    Trust,
    /// Relay control.
    Relay,
    /// Resilience (health, backoff, circuit state).
    Resilience,
    /// Liveness attestations.
    Biometrics,
    /// Experiments private to one deployment; never assigned to a crate.
    Experimental,
}

impl Subsystem {
    /// Every subsystem, in type-number order.
    pub const ALL: [Self; 10] = [
        Self::Core,
        Self::Gossip,
        Self::Registry,
        Self::Mcp,
        Self::Consensus,
        Self::Trust,
        Self::Relay,
        Self::Resilience,
        Self::Biometrics,
        Self::Experimental,
    ];

    /// The type numbers this subsystem owns.
    #[must_use]
    pub const fn types(self) -> RangeInclusive<u16> {
        match self {
            Self::Core => 0x0001..=0x00FF,
            Self::Gossip => 0x0100..=0x01FF,
            Self::Registry => 0x0200..=0x02FF,
            Self::Mcp => 0x0300..=0x03FF,
            Self::Consensus => 0x0400..=0x04FF,
            Self::Trust => 0x0500..=0x05FF,
            Self::Relay => 0x0600..=0x06FF,
            Self::Resilience => 0x0700..=0x07FF,
            Self::Biometrics => 0x0800..=0x08FF,
            Self::Experimental => 0xF000..=0xFFFE,
        }
    }

    /// The subsystem that owns `type_number`, or `None` if it is reserved or unassigned.
    #[must_use]
    pub fn of(type_number: u16) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|subsystem| subsystem.types().contains(&type_number))
    }
}

/// A liveness probe; the peer answers with a [`Pong`] carrying the same nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ping {
    /// Chosen by the sender, echoed in the [`Pong`].
    pub nonce: u64,
}

/// The answer to a [`Ping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pong {
    /// The nonce of the [`Ping`] answered.
    pub nonce: u64,
}

impl Pong {
    /// The answer to `ping`.
    #[must_use]
    pub const fn reply_to(ping: &Ping) -> Self {
        Self { nonce: ping.nonce }
    }
}

/// A message could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The encoded message is longer than the limit.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// Too short to hold a message header.
    #[error("message of {len} bytes is shorter than its {MESSAGE_HEADER_LEN}-byte header")]
    Truncated {
        /// Its length.
        len: usize,
    },
    /// The message encoding is a version this build does not know.
    #[error("unknown wire format version {0}")]
    UnknownFormatVersion(u8),
    /// The type number is reserved, unassigned, or a core type this build does not know.
    #[error("unknown message type {0:#06x}")]
    UnknownType(u16),
    /// [`Message::Protocol`] was given a type number that is not in a subsystem's range (see
    /// [`Subsystem`]).
    #[error("type {0:#06x} does not belong to a protocol subsystem")]
    NotAProtocolType(u16),
    /// The body of a known message type did not decode.
    #[error("message type {type_number:#06x}: {error}")]
    Body {
        /// The message type.
        type_number: u16,
        /// What was wrong with the body.
        #[source]
        error: PayloadError,
    },
    /// A node id in the message is not a valid Ed25519 public key.
    #[error("invalid node id: {0}")]
    NodeId(#[source] NodeIdError),
    /// A [`Hello`] is invalid.
    #[error("invalid hello: {0}")]
    Hello(#[from] HelloError),
    /// A [`Chunk`] contradicts itself.
    #[error("invalid chunk: {0}")]
    Chunk(#[from] ChunkError),
}

/// A message: what one frame carries.
///
/// # Encoding
///
/// ```text
/// [format version: u8 = 1][type number: u16 big-endian][body]
/// ```
///
/// The body of a core type is its postcard encoding; the body of [`Message::Protocol`] is its
/// payload as is. Decoding is strict: unknown format versions and type numbers are typed
/// errors, the body must be used up exactly and be canonically encoded, and every string
/// and byte string is bounded. See [`Subsystem`] for the registry of type numbers.
///
/// ```
/// use dawn_wire::{Message, Ping};
///
/// # fn main() -> Result<(), dawn_wire::WireError> {
/// let bytes = Message::Ping(Ping { nonce: 7 }).encode()?;
/// assert_eq!(bytes, [1, 0x00, 0x02, 7]);
/// assert_eq!(Message::decode(&bytes)?, Message::Ping(Ping { nonce: 7 }));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// Type `0x0001`: the handshake, first on every connection.
    Hello(Hello),
    /// Type `0x0002`: a liveness probe.
    Ping(Ping),
    /// Type `0x0003`: the answer to a ping.
    Pong(Pong),
    /// Type `0x0004`: a piece of a message too large for one frame (see
    /// [`Reassembler`](crate::Reassembler)).
    Chunk(Chunk),
    /// A message of another crate: `kind` is a type number in that crate's [`Subsystem`]
    /// range and `payload` is its body, which that crate decodes (typically with
    /// [`decode_payload`](crate::decode_payload)).
    Protocol {
        /// The type number, outside the core range.
        kind: u16,
        /// The body, opaque to this crate.
        payload: Bytes,
    },
}

/// The type numbers of the core messages.
impl Message {
    /// Type number of [`Message::Hello`].
    pub const TYPE_HELLO: u16 = 0x0001;
    /// Type number of [`Message::Ping`].
    pub const TYPE_PING: u16 = 0x0002;
    /// Type number of [`Message::Pong`].
    pub const TYPE_PONG: u16 = 0x0003;
    /// Type number of [`Message::Chunk`].
    pub const TYPE_CHUNK: u16 = 0x0004;
}

/// How a [`Hello`] is laid out in postcard: the field order is frozen forever.
#[derive(Serialize, Deserialize)]
struct HelloWire<'a> {
    min_version: u16,
    max_version: u16,
    node_id: [u8; PUBLIC_KEY_LEN],
    capabilities: u64,
    software: &'a str,
}

/// How a [`Chunk`] is laid out in postcard.
#[derive(Serialize, Deserialize)]
struct ChunkWire<'a> {
    message_id: u64,
    index: u32,
    count: u32,
    total_len: u32,
    #[serde(borrow)]
    bytes: RawBytes<'a>,
}

impl Message {
    /// This message's type number.
    #[must_use]
    pub const fn type_number(&self) -> u16 {
        match self {
            Self::Hello(_) => Self::TYPE_HELLO,
            Self::Ping(_) => Self::TYPE_PING,
            Self::Pong(_) => Self::TYPE_PONG,
            Self::Chunk(_) => Self::TYPE_CHUNK,
            Self::Protocol { kind, .. } => *kind,
        }
    }

    /// Encodes the message; the result is at most [`MAX_MESSAGE_LEN`] bytes.
    ///
    /// # Errors
    /// [`WireError::TooLarge`], [`WireError::Hello`] for an invalid hello,
    /// [`WireError::NotAProtocolType`] for a [`Message::Protocol`] with a core or unassigned
    /// type number.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        self.encode_with_limit(MAX_MESSAGE_LEN)
    }

    /// Encodes the message with a limit other than [`MAX_MESSAGE_LEN`], for messages that
    /// travel in [chunks](crate::split) rather than in one frame.
    ///
    /// # Errors
    /// As [`Message::encode`].
    pub fn encode_with_limit(&self, max: usize) -> Result<Vec<u8>, WireError> {
        let type_number = self.type_number();
        let mut out = Vec::with_capacity(16);
        out.push(WIRE_FORMAT_VERSION);
        out.extend_from_slice(&type_number.to_be_bytes());
        let body = |error| WireError::Body { type_number, error };
        match self {
            Self::Hello(hello) => {
                hello.validate()?;
                let wire = HelloWire {
                    min_version: hello.min_version,
                    max_version: hello.max_version,
                    node_id: *hello.node_id.as_bytes(),
                    capabilities: hello.capabilities.bits(),
                    software: &hello.software,
                };
                encode_into(&wire, &mut out).map_err(body)?;
            }
            Self::Ping(ping) => encode_into(ping, &mut out).map_err(body)?,
            Self::Pong(pong) => encode_into(pong, &mut out).map_err(body)?,
            Self::Chunk(chunk) => {
                let wire = ChunkWire {
                    message_id: chunk.message_id(),
                    index: chunk.index(),
                    count: chunk.count(),
                    total_len: chunk.total_len(),
                    bytes: RawBytes(chunk.bytes()),
                };
                encode_into(&wire, &mut out).map_err(body)?;
            }
            Self::Protocol { kind, payload } => {
                if !is_protocol_type(*kind) {
                    return Err(WireError::NotAProtocolType(*kind));
                }
                let len = MESSAGE_HEADER_LEN.saturating_add(payload.len());
                if len > max {
                    return Err(WireError::TooLarge { len, max });
                }
                out.extend_from_slice(payload);
            }
        }
        if out.len() > max {
            return Err(WireError::TooLarge {
                len: out.len(),
                max,
            });
        }
        Ok(out)
    }

    /// Decodes one message of at most [`MAX_MESSAGE_LEN`] bytes, typically a frame's payload.
    ///
    /// A pure function of its input, safe on arbitrary bytes (a fuzz target).
    ///
    /// # Errors
    /// [`WireError::TooLarge`], [`WireError::Truncated`], [`WireError::UnknownFormatVersion`],
    /// [`WireError::UnknownType`], [`WireError::Body`] for a malformed, over-long or
    /// non-canonical body, [`WireError::NodeId`] or [`WireError::Hello`] for invalid fields.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        Self::decode_with_limit(bytes, MAX_MESSAGE_LEN)
    }

    /// Decodes one message with a limit other than [`MAX_MESSAGE_LEN`], e.g. one put back
    /// together by a [`Reassembler`](crate::Reassembler).
    ///
    /// # Errors
    /// As [`Message::decode`].
    pub fn decode_with_limit(bytes: &[u8], max: usize) -> Result<Self, WireError> {
        if bytes.len() > max {
            return Err(WireError::TooLarge {
                len: bytes.len(),
                max,
            });
        }
        let Some((&[version, hi, lo], body)) = bytes.split_first_chunk::<MESSAGE_HEADER_LEN>()
        else {
            return Err(WireError::Truncated { len: bytes.len() });
        };
        if version != WIRE_FORMAT_VERSION {
            return Err(WireError::UnknownFormatVersion(version));
        }
        let type_number = u16::from_be_bytes([hi, lo]);
        let strict = |error| WireError::Body { type_number, error };
        match type_number {
            Self::TYPE_HELLO => {
                let wire: HelloWire<'_> = decode_payload(body).map_err(strict)?;
                let hello = Hello {
                    min_version: wire.min_version,
                    max_version: wire.max_version,
                    node_id: NodeId::from_bytes(&wire.node_id).map_err(WireError::NodeId)?,
                    capabilities: Capabilities(wire.capabilities),
                    software: wire.software.to_owned(),
                };
                hello.validate()?;
                Ok(Self::Hello(hello))
            }
            Self::TYPE_PING => Ok(Self::Ping(decode_payload(body).map_err(strict)?)),
            Self::TYPE_PONG => Ok(Self::Pong(decode_payload(body).map_err(strict)?)),
            Self::TYPE_CHUNK => {
                let wire: ChunkWire<'_> = decode_payload(body).map_err(strict)?;
                let chunk = Chunk::new(
                    wire.message_id,
                    wire.index,
                    wire.count,
                    wire.total_len,
                    Bytes::copy_from_slice(wire.bytes.0),
                )?;
                Ok(Self::Chunk(chunk))
            }
            kind if is_protocol_type(kind) => Ok(Self::Protocol {
                kind,
                payload: Bytes::copy_from_slice(body),
            }),
            unknown => Err(WireError::UnknownType(unknown)),
        }
    }
}

impl From<Hello> for Message {
    fn from(hello: Hello) -> Self {
        Self::Hello(hello)
    }
}

impl From<Ping> for Message {
    fn from(ping: Ping) -> Self {
        Self::Ping(ping)
    }
}

impl From<Pong> for Message {
    fn from(pong: Pong) -> Self {
        Self::Pong(pong)
    }
}

impl From<Chunk> for Message {
    fn from(chunk: Chunk) -> Self {
        Self::Chunk(chunk)
    }
}

/// Whether `kind` belongs to a subsystem other than the core.
fn is_protocol_type(kind: u16) -> bool {
    matches!(Subsystem::of(kind), Some(owner) if owner != Subsystem::Core)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_crypto::SigningKey;

    fn node(seed: u8) -> NodeId {
        SigningKey::from_bytes(&[seed; 32]).verifying_key().into()
    }

    fn hello() -> Hello {
        Hello {
            min_version: 1,
            max_version: 2,
            node_id: node(1),
            capabilities: Capabilities::GOSSIP | Capabilities(1 << 50),
            software: "dawn/test".to_owned(),
        }
    }

    #[test]
    fn registry_ranges_are_disjoint_and_ordered() {
        let mut previous_end = 0u16;
        for subsystem in Subsystem::ALL {
            let range = subsystem.types();
            assert!(*range.start() > previous_end, "{subsystem:?}");
            assert_eq!(Subsystem::of(*range.start()), Some(subsystem));
            assert_eq!(Subsystem::of(*range.end()), Some(subsystem));
            previous_end = *range.end();
        }
        assert_eq!(Subsystem::of(0), None);
        assert_eq!(Subsystem::of(0xFFFF), None);
        assert_eq!(Subsystem::of(0x0900), None);
        assert_eq!(Subsystem::of(0xEFFF), None);
    }

    #[test]
    fn core_messages_round_trip() {
        for message in [
            Message::Hello(hello()),
            Message::Ping(Ping { nonce: u64::MAX }),
            Message::Pong(Pong::reply_to(&Ping { nonce: 0 })),
            Message::Chunk(Chunk::new(5, 1, 3, 9, Bytes::from_static(b"abc")).unwrap()),
            Message::Protocol {
                kind: 0x0101,
                payload: Bytes::from_static(b"gossip"),
            },
            Message::Protocol {
                kind: 0xF000,
                payload: Bytes::new(),
            },
        ] {
            let bytes = message.encode().unwrap();
            assert_eq!(bytes[0], WIRE_FORMAT_VERSION);
            assert_eq!(
                u16::from_be_bytes([bytes[1], bytes[2]]),
                message.type_number()
            );
            assert_eq!(Message::decode(&bytes).unwrap(), message);
        }
    }

    #[test]
    fn header_errors_are_typed() {
        assert_eq!(Message::decode(&[]), Err(WireError::Truncated { len: 0 }));
        assert_eq!(
            Message::decode(&[1, 0]),
            Err(WireError::Truncated { len: 2 })
        );
        assert_eq!(
            Message::decode(&[2, 0, 2, 0]),
            Err(WireError::UnknownFormatVersion(2))
        );
        for unknown in [0x0000, 0x0005, 0x00FF, 0x0900, 0xEFFF, 0xFFFF] {
            let [hi, lo] = u16::to_be_bytes(unknown);
            assert_eq!(
                Message::decode(&[1, hi, lo, 0]),
                Err(WireError::UnknownType(unknown))
            );
        }
        assert_eq!(
            Message::decode(&vec![1; MAX_MESSAGE_LEN + 1]),
            Err(WireError::TooLarge {
                len: MAX_MESSAGE_LEN + 1,
                max: MAX_MESSAGE_LEN
            })
        );
    }

    #[test]
    fn bodies_are_strict() {
        assert_eq!(
            Message::decode(&[1, 0, 2, 7, 0]),
            Err(WireError::Body {
                type_number: 2,
                error: PayloadError::TrailingBytes { count: 1 }
            })
        );
        assert_eq!(
            Message::decode(&[1, 0, 3, 0x87, 0x00]),
            Err(WireError::Body {
                type_number: 3,
                error: PayloadError::NonCanonical
            })
        );
        assert!(matches!(
            Message::decode(&[1, 0, 2]),
            Err(WireError::Body {
                type_number: 2,
                error: PayloadError::Malformed { .. }
            })
        ));
    }

    #[test]
    fn invalid_hello_fields_are_typed_errors() {
        let good = Message::Hello(hello()).encode().unwrap();
        // The node id starts after header (3) + two one-byte varints.
        let mut bad_key = good.clone();
        bad_key[5..37].copy_from_slice(&{
            let mut identity = [0u8; 32];
            identity[0] = 1;
            identity
        });
        assert!(matches!(
            Message::decode(&bad_key),
            Err(WireError::NodeId(NodeIdError::Key(_)))
        ));
        let mut bad_range = good.clone();
        bad_range[3] = 3;
        assert_eq!(
            Message::decode(&bad_range),
            Err(WireError::Hello(HelloError::InvalidVersionRange {
                min: 3,
                max: 2
            }))
        );
        let mut long = hello();
        long.software = "a".repeat(65);
        assert_eq!(
            Message::Hello(long.clone()).encode(),
            Err(WireError::Hello(HelloError::SoftwareTooLong { len: 65 }))
        );
        // An over-long software string on the wire is refused after decoding, typed.
        long.software.truncate(64);
        let mut bytes = Message::Hello(long).encode().unwrap();
        let len_at = bytes.len() - 65;
        bytes[len_at] = 65;
        bytes.push(b'a');
        assert_eq!(
            Message::decode(&bytes),
            Err(WireError::Hello(HelloError::SoftwareTooLong { len: 65 }))
        );
    }

    #[test]
    fn self_contradicting_chunk_is_a_typed_error() {
        let good = Message::Chunk(Chunk::new(5, 1, 3, 9, Bytes::from_static(b"abc")).unwrap())
            .encode()
            .unwrap();
        assert_eq!(good, [1, 0, 4, 5, 1, 3, 9, 3, b'a', b'b', b'c']);
        let mut bad = good.clone();
        bad[4] = 3;
        assert_eq!(
            Message::decode(&bad),
            Err(WireError::Chunk(ChunkError::IndexOutOfRange {
                index: 3,
                count: 3
            }))
        );
    }

    #[test]
    fn protocol_kind_must_be_outside_core() {
        for kind in [0x0000, 0x0001, 0x0050, 0x0900, 0xFFFF] {
            assert_eq!(
                Message::Protocol {
                    kind,
                    payload: Bytes::new()
                }
                .encode(),
                Err(WireError::NotAProtocolType(kind))
            );
        }
        let big = Message::Protocol {
            kind: 0x0200,
            payload: Bytes::from(vec![0; MAX_MESSAGE_LEN - MESSAGE_HEADER_LEN + 1]),
        };
        assert_eq!(
            big.encode(),
            Err(WireError::TooLarge {
                len: MAX_MESSAGE_LEN + 1,
                max: MAX_MESSAGE_LEN
            })
        );
        let bytes = big.encode_with_limit(2 * MAX_MESSAGE_LEN).unwrap();
        assert_eq!(
            Message::decode_with_limit(&bytes, 2 * MAX_MESSAGE_LEN).unwrap(),
            big
        );
    }
}
