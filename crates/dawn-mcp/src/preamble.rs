//! The stream preamble: which agent a stream is for, and whether the callee accepts it.
//!
//! A stream that carries an MCP session starts with one frame from the caller naming the
//! agent ([`OpenAgent`]) and one frame back ([`OpenReply`]); after an
//! [`OpenReply::Accepted`] the rest of the stream is the MCP session (newline-delimited
//! JSON-RPC, as on stdio).

use std::io;
use std::time::Duration;

use bytes::Bytes;
use dawn_identity::{AgentId, AgentIdError};
use dawn_wire::{
    FRAME_HEADER_LEN, FrameError, Message, PayloadError, WireError, decode_frame_header,
    decode_payload, encode_frame, encode_payload,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The transport protocol name under which a node accepts MCP streams.
///
/// The node registers its stream handler for it
/// (`transport.register_stream_handler(STREAM_PROTOCOL, ...)`) and opens streams with it
/// (`connection.open_stream(STREAM_PROTOCOL)`).
pub const STREAM_PROTOCOL: &str = "dawn/mcp/1";

/// The preamble version this build speaks.
pub const PREAMBLE_VERSION: u8 = 1;

/// Message type number of [`OpenAgent`] (in `dawn-wire`'s `dawn-mcp` range).
pub const OPEN_AGENT_TYPE: u16 = 0x0300;

/// Message type number of [`OpenReply`].
pub const OPEN_REPLY_TYPE: u16 = 0x0301;

/// The longest preamble frame payload either side accepts, in bytes.
pub const MAX_PREAMBLE_LEN: usize = 512;

/// The longest refusal message carried by [`OpenReply::Refused`], in bytes; longer messages
/// are cut when encoded.
pub const MAX_REFUSAL_MESSAGE_LEN: usize = 256;

/// A preamble could not be read, written or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreambleError {
    /// Reading or writing the stream failed, or it ended before a whole frame arrived.
    #[error("stream error during the preamble: {0}")]
    Io(#[from] io::Error),
    /// The other side did not finish its preamble frame in time.
    #[error("no preamble within {0:?}")]
    TimedOut(Duration),
    /// The frame is larger than [`MAX_PREAMBLE_LEN`].
    #[error("preamble frame: {0}")]
    Frame(#[from] FrameError),
    /// The frame is not a valid Dawn message.
    #[error("preamble message: {0}")]
    Wire(#[from] WireError),
    /// The message is not the preamble message expected here.
    #[error("expected message type {expected:#06x}, got {got:#06x}")]
    UnexpectedType {
        /// The type expected.
        expected: u16,
        /// The type received.
        got: u16,
    },
    /// The message is empty: not even a version byte.
    #[error("empty preamble message")]
    Empty,
    /// The caller speaks a preamble version this build does not.
    #[error("preamble version {0} is not supported (this node speaks {PREAMBLE_VERSION})")]
    UnsupportedVersion(u8),
    /// The body does not decode.
    #[error("malformed preamble: {0}")]
    Malformed(#[from] PayloadError),
    /// The agent id is not valid.
    #[error("bad agent id in preamble: {0}")]
    AgentId(#[from] AgentIdError),
    /// A refusal message is longer than [`MAX_REFUSAL_MESSAGE_LEN`].
    #[error("refusal message of {0} bytes is too long")]
    MessageTooLong(usize),
}

/// The first frame of an MCP stream: the caller names the agent it wants.
///
/// # Encoding
///
/// A Dawn frame (4-byte big-endian length, at most [`MAX_PREAMBLE_LEN`]) carrying a Dawn
/// message of type [`OPEN_AGENT_TYPE`] whose body is `[version: u8][postcard(agent_id:
/// str)]`. The version byte comes first and outside postcard so that a callee can refuse a
/// version it does not know without decoding the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAgent {
    /// The preamble version; [`PREAMBLE_VERSION`] when built by [`OpenAgent::new`].
    pub version: u8,
    /// The agent the caller wants to talk to.
    pub agent: AgentId,
}

#[derive(Serialize, Deserialize)]
struct OpenAgentWire<'a> {
    agent: &'a str,
}

impl OpenAgent {
    /// A preamble of this build's version for `agent`.
    #[must_use]
    pub const fn new(agent: AgentId) -> Self {
        Self {
            version: PREAMBLE_VERSION,
            agent,
        }
    }

    /// The whole frame: length header and message.
    ///
    /// # Errors
    /// Never in practice (an agent id is at most 64 bytes); typed for safety.
    pub fn to_frame(&self) -> Result<Vec<u8>, PreambleError> {
        let mut body = vec![self.version];
        body.extend(encode_payload(&OpenAgentWire {
            agent: self.agent.as_str(),
        })?);
        frame(OPEN_AGENT_TYPE, body)
    }

    /// Decodes a frame's payload (the message, without the length header).
    ///
    /// A pure function of its input; safe on arbitrary bytes.
    ///
    /// # Errors
    /// [`PreambleError::UnsupportedVersion`] for a version other than
    /// [`PREAMBLE_VERSION`] (checked before the rest is decoded), and the decoding errors.
    pub fn from_message(message: &[u8]) -> Result<Self, PreambleError> {
        let body = protocol_body(message, OPEN_AGENT_TYPE)?;
        let Some((&version, rest)) = body.split_first() else {
            return Err(PreambleError::Empty);
        };
        if version != PREAMBLE_VERSION {
            return Err(PreambleError::UnsupportedVersion(version));
        }
        let wire: OpenAgentWire<'_> = decode_payload(rest)?;
        Ok(Self {
            version,
            agent: AgentId::try_from(wire.agent)?,
        })
    }
}

/// Why a callee refused a stream, as carried by [`OpenReply::Refused`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefuseCode {
    /// No agent with that id on this node (wire number 1).
    UnknownAgent,
    /// The access policy refused the caller (2).
    Denied,
    /// Too many sessions, in total or for this caller (3).
    Busy,
    /// The preamble version is not supported (4).
    UnsupportedVersion,
    /// The preamble did not decode (5).
    Malformed,
    /// The node is shutting down (6).
    ShuttingDown,
    /// The caller sent more requests than its rate limit allows (7).
    RateLimited,
    /// A code this build does not know, from a newer peer. Decoding only produces it for
    /// numbers not listed above.
    Other(u16),
}

impl RefuseCode {
    /// The number on the wire.
    #[must_use]
    pub const fn number(self) -> u16 {
        match self {
            Self::UnknownAgent => 1,
            Self::Denied => 2,
            Self::Busy => 3,
            Self::UnsupportedVersion => 4,
            Self::Malformed => 5,
            Self::ShuttingDown => 6,
            Self::RateLimited => 7,
            Self::Other(number) => number,
        }
    }

    /// The code for a wire number.
    #[must_use]
    pub const fn from_number(number: u16) -> Self {
        match number {
            1 => Self::UnknownAgent,
            2 => Self::Denied,
            3 => Self::Busy,
            4 => Self::UnsupportedVersion,
            5 => Self::Malformed,
            6 => Self::ShuttingDown,
            7 => Self::RateLimited,
            other => Self::Other(other),
        }
    }
}

/// The callee's answer to an [`OpenAgent`].
///
/// # Encoding
///
/// A Dawn frame carrying a Dawn message of type [`OPEN_REPLY_TYPE`] whose body is
/// `[version: u8][postcard(reply)]`, where the reply is the postcard enum `Accepted` (tag 0)
/// or `Refused { code: u16, message: str }` (tag 1). The version is the callee's
/// [`PREAMBLE_VERSION`], so a caller refused for its version learns which one to speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenReply {
    /// The callee accepted; the MCP session starts right after this frame.
    Accepted,
    /// The callee refused; it closes the stream after this frame.
    Refused {
        /// Why, for programs.
        code: RefuseCode,
        /// Why, for people (at most [`MAX_REFUSAL_MESSAGE_LEN`] bytes).
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
enum OpenReplyWire<'a> {
    Accepted,
    Refused { code: u16, message: &'a str },
}

impl OpenReply {
    /// A refusal; the message is cut to [`MAX_REFUSAL_MESSAGE_LEN`] bytes.
    #[must_use]
    pub fn refused(code: RefuseCode, message: impl AsRef<str>) -> Self {
        Self::Refused {
            code,
            message: crate::text::truncate(message.as_ref(), MAX_REFUSAL_MESSAGE_LEN),
        }
    }

    /// The whole frame: length header and message.
    ///
    /// # Errors
    /// [`PreambleError::MessageTooLong`] for a refusal message longer than
    /// [`MAX_REFUSAL_MESSAGE_LEN`] (build refusals with [`OpenReply::refused`]).
    pub fn to_frame(&self) -> Result<Vec<u8>, PreambleError> {
        let wire = match self {
            Self::Accepted => OpenReplyWire::Accepted,
            Self::Refused { code, message } => {
                if message.len() > MAX_REFUSAL_MESSAGE_LEN {
                    return Err(PreambleError::MessageTooLong(message.len()));
                }
                OpenReplyWire::Refused {
                    code: code.number(),
                    message,
                }
            }
        };
        let mut body = vec![PREAMBLE_VERSION];
        body.extend(encode_payload(&wire)?);
        frame(OPEN_REPLY_TYPE, body)
    }

    /// Decodes a frame's payload (the message, without the length header).
    ///
    /// A pure function of its input; safe on arbitrary bytes. The version byte is not
    /// checked: a callee that refuses a version still answers in a form every version reads.
    ///
    /// # Errors
    /// The decoding errors; [`PreambleError::MessageTooLong`] for an over-long refusal.
    pub fn from_message(message: &[u8]) -> Result<Self, PreambleError> {
        let body = protocol_body(message, OPEN_REPLY_TYPE)?;
        let Some((_version, rest)) = body.split_first() else {
            return Err(PreambleError::Empty);
        };
        match decode_payload::<OpenReplyWire<'_>>(rest)? {
            OpenReplyWire::Accepted => Ok(Self::Accepted),
            OpenReplyWire::Refused { code, message } => {
                if message.len() > MAX_REFUSAL_MESSAGE_LEN {
                    return Err(PreambleError::MessageTooLong(message.len()));
                }
                Ok(Self::Refused {
                    code: RefuseCode::from_number(code),
                    message: message.to_owned(),
                })
            }
        }
    }
}

/// Wraps `body` as a Dawn message of type `kind` in a frame.
fn frame(kind: u16, body: Vec<u8>) -> Result<Vec<u8>, PreambleError> {
    let message = Message::Protocol {
        kind,
        payload: Bytes::from(body),
    }
    .encode_with_limit(MAX_PREAMBLE_LEN)?;
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + message.len());
    encode_frame(&message, MAX_PREAMBLE_LEN, &mut out)?;
    Ok(out)
}

/// The body of a Dawn message that must be of type `expected`.
fn protocol_body(message: &[u8], expected: u16) -> Result<Bytes, PreambleError> {
    match Message::decode_with_limit(message, MAX_PREAMBLE_LEN)? {
        Message::Protocol { kind, payload } if kind == expected => Ok(payload),
        other => Err(PreambleError::UnexpectedType {
            expected,
            got: other.type_number(),
        }),
    }
}

/// Reads one preamble frame's payload, refusing anything over [`MAX_PREAMBLE_LEN`] before
/// reading it.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Vec<u8>, PreambleError> {
    let mut header = [0; FRAME_HEADER_LEN];
    reader.read_exact(&mut header).await?;
    let len = decode_frame_header(header, MAX_PREAMBLE_LEN)?;
    let mut payload = vec![0; len];
    reader.read_exact(&mut payload).await?;
    Ok(payload)
}

/// Writes a whole frame and flushes it.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &[u8],
) -> Result<(), PreambleError> {
    writer.write_all(frame).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(text: &str) -> AgentId {
        text.parse().unwrap()
    }

    fn payload(frame: &[u8]) -> &[u8] {
        &frame[FRAME_HEADER_LEN..]
    }

    #[test]
    fn open_agent_round_trips_and_pins_its_layout() {
        let open = OpenAgent::new(agent("echo"));
        let frame = open.to_frame().unwrap();
        // [len=9][format 1][type 0x0300][version 1][len 4]"echo"
        assert_eq!(frame, [0, 0, 0, 9, 1, 3, 0, 1, 4, b'e', b'c', b'h', b'o']);
        assert_eq!(OpenAgent::from_message(payload(&frame)).unwrap(), open);
    }

    #[test]
    fn an_unknown_version_is_reported_before_the_body() {
        let mut frame = OpenAgent::new(agent("echo")).to_frame().unwrap();
        frame[7] = 2;
        frame.truncate(8);
        assert!(matches!(
            OpenAgent::from_message(payload(&frame)),
            Err(PreambleError::UnsupportedVersion(2))
        ));
    }

    #[test]
    fn bad_agent_ids_and_wrong_types_are_refused() {
        // "Echo" is not an agent id (uppercase).
        let bytes = [1, 3, 0, 1, 4, b'E', b'c', b'h', b'o'];
        assert!(matches!(
            OpenAgent::from_message(&bytes),
            Err(PreambleError::AgentId(_))
        ));
        let reply = OpenReply::Accepted.to_frame().unwrap();
        assert!(matches!(
            OpenAgent::from_message(payload(&reply)),
            Err(PreambleError::UnexpectedType {
                expected: OPEN_AGENT_TYPE,
                got: OPEN_REPLY_TYPE
            })
        ));
        assert!(matches!(
            OpenAgent::from_message(&[1, 3, 0]),
            Err(PreambleError::Empty)
        ));
        // Trailing bytes after the agent id.
        assert!(matches!(
            OpenAgent::from_message(&[1, 3, 0, 1, 1, b'a', 0]),
            Err(PreambleError::Malformed(_))
        ));
    }

    #[test]
    fn replies_round_trip() {
        for reply in [
            OpenReply::Accepted,
            OpenReply::refused(RefuseCode::Busy, "too many sessions"),
            OpenReply::refused(RefuseCode::Other(999), ""),
        ] {
            let frame = reply.to_frame().unwrap();
            assert_eq!(OpenReply::from_message(payload(&frame)).unwrap(), reply);
        }
        assert_eq!(
            OpenReply::Accepted.to_frame().unwrap(),
            [0, 0, 0, 5, 1, 3, 1, 1, 0]
        );
    }

    #[test]
    fn refusal_messages_are_bounded() {
        let reply = OpenReply::refused(RefuseCode::Denied, "x".repeat(10_000));
        let frame = reply.to_frame().unwrap();
        assert!(frame.len() <= FRAME_HEADER_LEN + MAX_PREAMBLE_LEN);
        let long = OpenReply::Refused {
            code: RefuseCode::Denied,
            message: "x".repeat(MAX_REFUSAL_MESSAGE_LEN + 1),
        };
        assert!(matches!(
            long.to_frame(),
            Err(PreambleError::MessageTooLong(_))
        ));
    }

    #[test]
    fn refuse_codes_round_trip_through_numbers() {
        for number in 0..=20 {
            assert_eq!(RefuseCode::from_number(number).number(), number);
        }
    }

    #[tokio::test]
    async fn oversized_frames_are_refused_before_reading() {
        let mut bytes: &[u8] = &[0, 0, 16, 0, 1, 2, 3];
        assert!(matches!(
            read_frame(&mut bytes).await,
            Err(PreambleError::Frame(FrameError::TooLarge { .. }))
        ));
        let mut short: &[u8] = &[0, 0, 0, 9, 1];
        assert!(matches!(
            read_frame(&mut short).await,
            Err(PreambleError::Io(_))
        ));
    }
}
