//! What travels on a bidirectional stream: a header frame naming the stream's kind and
//! protocol, then length-prefixed frames ([`dawn_wire`] framing).
//!
//! ```text
//! header frame   u32 BE length | kind (1 byte) | protocol name (ASCII, 0..=64 bytes)
//! request        header(kind 1) | one frame: request body                   | FIN
//! response       one frame: status (1 byte) | body or error message         | FIN
//! raw stream     header(kind 2) | whatever the protocol speaks, both ways
//! hello          header(kind 0) | one frame: Message::Hello (each way)      | FIN
//! ```

use bytes::Bytes;
use dawn_wire::{FRAME_HEADER_LEN, FrameError, decode_frame_header};
use quinn::{ReadError, ReadExactError, RecvStream, SendStream, WriteError};

/// The longest protocol name, in bytes.
pub const MAX_PROTOCOL_LEN: usize = 64;

/// Longest header frame payload: the kind byte and the longest protocol name.
pub(crate) const MAX_HEADER_LEN: usize = 1 + MAX_PROTOCOL_LEN;

/// Response status: the handler answered; the body follows.
pub(crate) const STATUS_OK: u8 = 0;
/// Response status: the handler failed; a UTF-8 message follows.
pub(crate) const STATUS_HANDLER_ERROR: u8 = 1;
/// Longest handler error message sent back to the requester, in bytes.
pub(crate) const MAX_ERROR_MESSAGE_LEN: usize = 1024;

/// What a bidirectional stream carries, named by its first frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// The connection's `Hello` exchange (the first stream the dialer opens).
    Hello,
    /// One request frame, one response frame.
    Request,
    /// A raw stream handed to the protocol's handler.
    Stream,
}

impl StreamKind {
    const fn byte(self) -> u8 {
        match self {
            Self::Hello => 0,
            Self::Request => 1,
            Self::Stream => 2,
        }
    }

    const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Hello),
            1 => Some(Self::Request),
            2 => Some(Self::Stream),
            _ => None,
        }
    }
}

/// A protocol name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolNameError {
    /// The name is empty.
    #[error("a protocol name must not be empty")]
    Empty,
    /// The name is longer than [`MAX_PROTOCOL_LEN`] bytes.
    #[error("protocol name of {0} bytes exceeds the maximum of {MAX_PROTOCOL_LEN}")]
    TooLong(usize),
    /// The name has a character outside printable ASCII without spaces (`!`..=`~`).
    #[error("a protocol name is printable ASCII without spaces")]
    InvalidCharacter,
}

/// Checks a protocol name: 1 to [`MAX_PROTOCOL_LEN`] bytes of printable ASCII, no spaces
/// (for example `dawn/gossip/1`).
pub(crate) fn validate_protocol(name: &str) -> Result<(), ProtocolNameError> {
    if name.is_empty() {
        return Err(ProtocolNameError::Empty);
    }
    if name.len() > MAX_PROTOCOL_LEN {
        return Err(ProtocolNameError::TooLong(name.len()));
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ProtocolNameError::InvalidCharacter);
    }
    Ok(())
}

/// Appends the header frame for a stream of `kind` speaking `protocol` (already validated,
/// empty for [`StreamKind::Hello`]).
pub(crate) fn encode_header(kind: StreamKind, protocol: &str, out: &mut Vec<u8>) {
    let len = 1 + protocol.len().min(MAX_PROTOCOL_LEN);
    // `len` is at most 65, so the cast cannot truncate.
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.push(kind.byte());
    out.extend_from_slice(&protocol.as_bytes()[..len - 1]);
}

/// Appends the 4-byte header of a frame whose payload is `len` bytes.
pub(crate) fn push_frame_header(
    len: usize,
    max: usize,
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let too_large = FrameError::TooLarge { len, max };
    if len > max {
        return Err(too_large);
    }
    let len = u32::try_from(len).map_err(|_| too_large)?;
    out.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

/// A stream's first frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeaderError {
    /// The header frame was too long, had an unknown kind or an invalid protocol name.
    #[error("malformed stream header")]
    Malformed,
    /// The stream ended (or was reset) before the header was complete.
    #[error("stream ended before its header: {0}")]
    Read(#[from] ReadExactError),
}

/// Reads and checks a stream's header frame.
pub(crate) async fn read_header(
    recv: &mut RecvStream,
) -> Result<(StreamKind, String), HeaderError> {
    let mut len = [0u8; FRAME_HEADER_LEN];
    recv.read_exact(&mut len).await?;
    let len = decode_frame_header(len, MAX_HEADER_LEN).map_err(|_| HeaderError::Malformed)?;
    let mut payload = [0u8; MAX_HEADER_LEN];
    let payload = payload.get_mut(..len).ok_or(HeaderError::Malformed)?;
    recv.read_exact(payload).await?;
    decode_header(payload).ok_or(HeaderError::Malformed)
}

/// Parses a header frame's payload.
pub(crate) fn decode_header(payload: &[u8]) -> Option<(StreamKind, String)> {
    let (&kind, protocol) = payload.split_first()?;
    let kind = StreamKind::from_byte(kind)?;
    let protocol = std::str::from_utf8(protocol).ok()?;
    match kind {
        StreamKind::Hello if protocol.is_empty() => {}
        StreamKind::Hello => return None,
        StreamKind::Request | StreamKind::Stream => validate_protocol(protocol).ok()?,
    }
    Some((kind, protocol.to_owned()))
}

/// A frame could not be read from or written to a stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameIoError {
    /// The frame is larger than the limit (declared by the peer, or offered by the caller).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// Reading failed: the peer reset the stream or the connection was lost.
    #[error("read failed: {0}")]
    Read(#[from] ReadError),
    /// Writing failed: the peer stopped the stream or the connection was lost.
    #[error("write failed: {0}")]
    Write(#[from] WriteError),
}

impl From<ReadExactError> for FrameIoError {
    fn from(error: ReadExactError) -> Self {
        match error {
            ReadExactError::FinishedEarly(_) => Self::Truncated,
            ReadExactError::ReadError(error) => Self::Read(error),
        }
    }
}

/// Writes one length-prefixed frame to a raw stream.
///
/// # Errors
/// [`FrameIoError::Frame`] if `payload` is longer than `max` (nothing is written), or
/// [`FrameIoError::Write`].
pub async fn write_frame(
    send: &mut SendStream,
    payload: &[u8],
    max: usize,
) -> Result<(), FrameIoError> {
    let mut header = Vec::with_capacity(FRAME_HEADER_LEN);
    push_frame_header(payload.len(), max, &mut header)?;
    send.write_all(&header).await?;
    send.write_all(payload).await?;
    Ok(())
}

/// Reads one length-prefixed frame from a raw stream; `Ok(None)` if the stream ended cleanly
/// between frames.
///
/// The declared length is checked against `max` before any payload is buffered.
///
/// # Errors
/// [`FrameIoError::Frame`] for an oversized frame, [`FrameIoError::Truncated`] if the stream
/// ends inside a frame, [`FrameIoError::Read`].
pub async fn read_frame(recv: &mut RecvStream, max: usize) -> Result<Option<Bytes>, FrameIoError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    let mut filled = 0;
    while filled < FRAME_HEADER_LEN {
        let rest = header.get_mut(filled..).unwrap_or_default();
        match recv.read(rest).await? {
            Some(n) => filled += n,
            None if filled == 0 => return Ok(None),
            None => return Err(FrameIoError::Truncated),
        }
    }
    let len = decode_frame_header(header, max)?;
    let mut payload = vec![0u8; len];
    recv.read_exact(&mut payload).await?;
    Ok(Some(Bytes::from(payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_are_short_printable_ascii() {
        validate_protocol("dawn/gossip/1").unwrap();
        validate_protocol(&"x".repeat(MAX_PROTOCOL_LEN)).unwrap();
        assert_eq!(validate_protocol(""), Err(ProtocolNameError::Empty));
        assert_eq!(
            validate_protocol(&"x".repeat(MAX_PROTOCOL_LEN + 1)),
            Err(ProtocolNameError::TooLong(MAX_PROTOCOL_LEN + 1))
        );
        for bad in ["a b", "a\nb", "é", "a\u{0}"] {
            assert_eq!(
                validate_protocol(bad),
                Err(ProtocolNameError::InvalidCharacter)
            );
        }
    }

    #[test]
    fn headers_round_trip_and_garbage_is_refused() {
        for (kind, protocol) in [
            (StreamKind::Hello, ""),
            (StreamKind::Request, "echo/1"),
            (StreamKind::Stream, "dawn/mcp/1"),
        ] {
            let mut out = Vec::new();
            encode_header(kind, protocol, &mut out);
            let len = decode_frame_header(out[..4].try_into().unwrap(), MAX_HEADER_LEN).unwrap();
            assert_eq!(len, out.len() - 4);
            assert_eq!(decode_header(&out[4..]), Some((kind, protocol.to_owned())));
        }
        assert_eq!(decode_header(&[]), None);
        assert_eq!(decode_header(&[3, b'x']), None);
        assert_eq!(decode_header(&[0, b'x']), None);
        assert_eq!(decode_header(&[1]), None);
        assert_eq!(decode_header(&[1, 0xff]), None);
        assert_eq!(decode_header(&[2, b' ']), None);
    }

    #[test]
    fn frame_headers_respect_the_limit() {
        let mut out = Vec::new();
        push_frame_header(5, 5, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 5]);
        assert_eq!(
            push_frame_header(6, 5, &mut out),
            Err(FrameError::TooLarge { len: 6, max: 5 })
        );
        assert_eq!(out.len(), 4);
    }
}
