//! Length-prefixed frames: how bytes on a stream become separate messages.
//!
//! A frame is a 4-byte big-endian payload length followed by that many payload bytes. Every
//! reader has a hard maximum payload length, checked against the header before a single
//! payload byte is buffered, so a peer cannot make us allocate more than one frame's worth.

use bytes::{Buf, Bytes, BytesMut};

/// The default hard maximum length of one frame's payload: 1 MiB.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// Length of a frame header: the payload length as a big-endian `u32`.
pub const FRAME_HEADER_LEN: usize = 4;

/// A frame could not be encoded or decoded.
///
/// Every decoding error is fatal for the stream it came from: the reader no longer knows where
/// the next frame starts, so the stream must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The payload is longer than the maximum the reader (or writer) accepts.
    #[error("frame payload of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The payload length that was declared or offered.
        len: usize,
        /// The maximum in force.
        max: usize,
    },
    /// [`FrameDecoder::push`] was called while the decoder already held a whole maximum-size
    /// frame's worth of bytes: the caller must drain [`FrameDecoder::next_frame`] between
    /// pushes.
    #[error(
        "frame decoder holds {buffered} undelivered bytes (limit {limit}); drain frames before pushing more"
    )]
    BufferFull {
        /// Bytes held when the push was attempted.
        buffered: usize,
        /// The most the decoder holds before it refuses more input.
        limit: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame with {buffered} bytes left over")]
    Truncated {
        /// Bytes of the incomplete frame that were received.
        buffered: usize,
    },
}

/// Appends one frame carrying `payload` to `out`.
///
/// # Errors
/// [`FrameError::TooLarge`] if `payload` is longer than `max` (or than `u32::MAX`); `out` is
/// then left unchanged.
pub fn encode_frame(payload: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let too_large = FrameError::TooLarge {
        len: payload.len(),
        max,
    };
    if payload.len() > max {
        return Err(too_large);
    }
    let len = u32::try_from(payload.len()).map_err(|_| too_large)?;
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Reads a frame header and returns the payload length that follows it.
///
/// For readers that pull exact byte counts from a stream (`read_exact` the header, check it,
/// then `read_exact` the payload) instead of using a [`FrameDecoder`].
///
/// # Errors
/// [`FrameError::TooLarge`] if the declared length exceeds `max`.
pub fn decode_frame_header(
    header: [u8; FRAME_HEADER_LEN],
    max: usize,
) -> Result<usize, FrameError> {
    let declared = u32::from_be_bytes(header);
    // On a 16-bit target a u32 might not fit a usize; saturating keeps the check honest.
    let len = usize::try_from(declared).unwrap_or(usize::MAX);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Splits a byte stream into frames, sans-IO: push bytes as they arrive, pull whole frames.
///
/// Memory is bounded: each header is checked against `max` before its payload is buffered,
/// and [`push`](Self::push) refuses input while the decoder already holds
/// `FRAME_HEADER_LEN + max` undelivered bytes. A caller that drains
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)` after every push never sees
/// [`FrameError::BufferFull`], whatever the size of its reads.
///
/// After an error the decoder stays failed and returns the same error from every call: the
/// stream is out of sync and must be closed.
///
/// ```
/// use dawn_wire::{FrameDecoder, MAX_FRAME_LEN, encode_frame};
///
/// # fn main() -> Result<(), dawn_wire::FrameError> {
/// let mut stream = Vec::new();
/// encode_frame(b"hello", MAX_FRAME_LEN, &mut stream)?;
/// encode_frame(b"world", MAX_FRAME_LEN, &mut stream)?;
///
/// let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
/// let mut frames = Vec::new();
/// for piece in stream.chunks(3) {
///     decoder.push(piece)?;
///     while let Some(frame) = decoder.next_frame()? {
///         frames.push(frame);
///     }
/// }
/// decoder.finish()?;
/// assert_eq!(frames, [&b"hello"[..], &b"world"[..]]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    max: usize,
    buffer: BytesMut,
    /// Payload length of the frame at the front of `buffer`, once its header has been read.
    pending: Option<usize>,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that accepts payloads of at most `max` bytes.
    #[must_use]
    pub fn new(max: usize) -> Self {
        Self {
            max,
            buffer: BytesMut::new(),
            pending: None,
            failed: None,
        }
    }

    /// The maximum payload length this decoder accepts.
    #[must_use]
    pub const fn max(&self) -> usize {
        self.max
    }

    /// The most undelivered bytes the decoder holds before [`push`](Self::push) refuses input.
    #[must_use]
    pub const fn buffer_limit(&self) -> usize {
        self.max.saturating_add(FRAME_HEADER_LEN)
    }

    /// Bytes received but not yet returned as frames (including a consumed header).
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buffer.len()
            + if self.pending.is_some() {
                FRAME_HEADER_LEN
            } else {
                0
            }
    }

    /// Appends bytes read from the stream.
    ///
    /// # Errors
    /// [`FrameError::BufferFull`] if the decoder already holds [`buffer_limit`] undelivered
    /// bytes (nothing is appended), or the error the decoder failed with earlier.
    ///
    /// [`buffer_limit`]: Self::buffer_limit
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let buffered = self.buffered();
        if buffered >= self.buffer_limit() && !bytes.is_empty() {
            return Err(FrameError::BufferFull {
                buffered,
                limit: self.buffer_limit(),
            });
        }
        self.buffer.extend_from_slice(bytes);
        Ok(())
    }

    /// Returns the next complete frame's payload, or `Ok(None)` if more bytes are needed.
    ///
    /// Call it until it returns `Ok(None)` after every [`push`](Self::push).
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] as soon as a header declares more than the maximum, even
    /// before the payload arrives.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let len = match self.pending {
            Some(len) => len,
            None => {
                let Some(header) = self.buffer.get(..FRAME_HEADER_LEN) else {
                    return Ok(None);
                };
                let mut array = [0u8; FRAME_HEADER_LEN];
                array.copy_from_slice(header);
                let len = decode_frame_header(array, self.max).inspect_err(|&error| {
                    self.fail(error);
                })?;
                self.buffer.advance(FRAME_HEADER_LEN);
                self.pending = Some(len);
                len
            }
        };
        if self.buffer.len() < len {
            // No reservation for the declared length: memory follows the bytes that actually
            // arrive, so four bytes of header cannot make us allocate a whole frame.
            return Ok(None);
        }
        self.pending = None;
        Ok(Some(self.buffer.split_to(len).freeze()))
    }

    /// Declares the end of the stream.
    ///
    /// # Errors
    /// [`FrameError::Truncated`] if bytes of an incomplete frame are left over, or the error
    /// the decoder failed with earlier. Frames still undelivered count as left over: drain
    /// [`next_frame`](Self::next_frame) first.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        match self.buffered() {
            0 => Ok(()),
            buffered => Err(FrameError::Truncated { buffered }),
        }
    }

    fn fail(&mut self, error: FrameError) {
        self.failed = Some(error);
        self.buffer = BytesMut::new();
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for payload in payloads {
            encode_frame(payload, MAX_FRAME_LEN, &mut out).unwrap();
        }
        out
    }

    fn drain(decoder: &mut FrameDecoder) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            out.push(frame);
        }
        out
    }

    #[test]
    fn header_is_big_endian_length() {
        let mut out = vec![0xaa];
        encode_frame(b"abc", 16, &mut out).unwrap();
        assert_eq!(out, [0xaa, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(decode_frame_header([0, 0, 1, 0], 256), Ok(256));
        assert_eq!(
            decode_frame_header([0, 0, 1, 1], 256),
            Err(FrameError::TooLarge { len: 257, max: 256 })
        );
    }

    #[test]
    fn encode_refuses_oversized_payload_and_leaves_output_alone() {
        let mut out = vec![1, 2];
        assert_eq!(
            encode_frame(&[0u8; 17], 16, &mut out),
            Err(FrameError::TooLarge { len: 17, max: 16 })
        );
        assert_eq!(out, [1, 2]);
        encode_frame(&[0u8; 16], 16, &mut out).unwrap();
        assert_eq!(out.len(), 2 + 4 + 16);
    }

    #[test]
    fn decodes_byte_by_byte_and_all_at_once() {
        let stream = frames(&[b"one", b"", b"three"]);
        let mut whole = FrameDecoder::new(MAX_FRAME_LEN);
        whole.push(&stream).unwrap();
        let all = drain(&mut whole);
        assert_eq!(all, [&b"one"[..], b"", b"three"]);
        whole.finish().unwrap();

        let mut slow = FrameDecoder::new(MAX_FRAME_LEN);
        let mut got = Vec::new();
        for byte in &stream {
            slow.push(std::slice::from_ref(byte)).unwrap();
            got.extend(drain(&mut slow));
        }
        assert_eq!(got, all);
        slow.finish().unwrap();
    }

    #[test]
    fn oversized_header_fails_before_payload_arrives_and_stays_failed() {
        let mut decoder = FrameDecoder::new(8);
        decoder.push(&[0, 0, 0, 9]).unwrap();
        let error = FrameError::TooLarge { len: 9, max: 8 };
        assert_eq!(decoder.next_frame(), Err(error));
        assert_eq!(decoder.next_frame(), Err(error));
        assert_eq!(decoder.push(b"more"), Err(error));
        assert_eq!(decoder.finish(), Err(error));
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn truncated_stream_is_reported() {
        let stream = frames(&[b"abcdef"]);
        let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
        decoder.push(&stream[..7]).unwrap();
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.finish(), Err(FrameError::Truncated { buffered: 7 }));
        decoder.push(&stream[7..]).unwrap();
        assert_eq!(decoder.next_frame().unwrap().unwrap(), &b"abcdef"[..]);
        decoder.finish().unwrap();
    }

    #[test]
    fn refuses_input_while_a_full_frame_is_undrained() {
        let mut decoder = FrameDecoder::new(4);
        let stream = frames(&[b"abcd", b"efgh"]);
        // One push of any size is accepted...
        decoder.push(&stream).unwrap();
        // ...but more input without draining is not: 16 bytes held, limit 8.
        assert_eq!(
            decoder.push(b"x"),
            Err(FrameError::BufferFull {
                buffered: 16,
                limit: 8
            })
        );
        assert_eq!(drain(&mut decoder), [&b"abcd"[..], b"efgh"]);
        decoder.push(&[0, 0]).unwrap();
        assert_eq!(decoder.next_frame(), Ok(None));
    }

    #[test]
    fn draining_caller_never_hits_buffer_full() {
        let payloads: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; usize::from(i) % 9]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let stream = frames(&refs);
        let mut decoder = FrameDecoder::new(8);
        let mut got = Vec::new();
        for piece in stream.chunks(37) {
            decoder.push(piece).unwrap();
            got.extend(drain(&mut decoder));
        }
        assert_eq!(got, payloads);
    }
}
