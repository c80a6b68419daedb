//! Entry points for fuzz targets: each drives a decoder over arbitrary bytes and checks the
//! properties it promises.
//!
//! They never panic; a broken property is returned as a [`FuzzFailure`], which the fuzz
//! target turns into a crash (`fuzz_message(data).unwrap()`). The property tests run them on
//! random input too.

use bytes::Bytes;

use crate::chunk::{Chunk, Reassembler, ReassemblyLimits};
use crate::envelope::SignedEnvelope;
use crate::frame::{FrameDecoder, FrameError, encode_frame};
use crate::message::Message;

/// A decoder broke one of its promises on some input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fuzz property violated: {0}")]
pub struct FuzzFailure(String);

fn ensure(condition: bool, what: impl FnOnce() -> String) -> Result<(), FuzzFailure> {
    if condition {
        Ok(())
    } else {
        Err(FuzzFailure(what()))
    }
}

/// Feeds a [`FrameDecoder`] arbitrary bytes in arbitrary pieces.
///
/// Input: `[max / 4][piece length selector][bytes...]...`. Checks that no frame exceeds the
/// maximum, that a caller who drains is never refused, that buffering stays bounded and that
/// re-encoding the frames reproduces the stream consumed.
///
/// # Errors
/// [`FuzzFailure`] if a property does not hold.
pub fn fuzz_frames(data: &[u8]) -> Result<(), FuzzFailure> {
    let Some((&max_selector, mut rest)) = data.split_first() else {
        return Ok(());
    };
    let max = usize::from(max_selector) * 4;
    let mut decoder = FrameDecoder::new(max);
    let mut consumed = Vec::new();
    let mut reencoded = Vec::new();
    while let Some((&selector, tail)) = rest.split_first() {
        let take = (usize::from(selector) % 64).min(tail.len());
        let (piece, tail) = tail.split_at(take);
        rest = tail;
        match decoder.push(piece) {
            Ok(()) => consumed.extend_from_slice(piece),
            Err(FrameError::BufferFull { .. }) => {
                return Err(FuzzFailure("a draining caller was refused input".into()));
            }
            Err(_) => return Ok(()),
        }
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    ensure(frame.len() <= max, || {
                        format!("frame of {} > {max}", frame.len())
                    })?;
                    encode_frame(&frame, max, &mut reencoded)
                        .map_err(|e| FuzzFailure(format!("re-encoding a frame: {e}")))?;
                }
                Ok(None) => break,
                Err(FrameError::TooLarge { .. }) => return Ok(()),
                Err(e) => return Err(FuzzFailure(format!("unexpected error {e}"))),
            }
        }
        ensure(decoder.buffered() < decoder.buffer_limit(), || {
            format!("{} bytes buffered after draining", decoder.buffered())
        })?;
    }
    let delivered = consumed.len() - decoder.buffered();
    ensure(consumed.get(..delivered) == Some(&reencoded[..]), || {
        "re-encoded frames differ from the stream".into()
    })?;
    ensure(
        decoder.finish().is_ok() == (decoder.buffered() == 0),
        || "finish disagrees with buffered".into(),
    )
}

/// Decodes arbitrary bytes as a [`Message`]; whatever decodes must re-encode to exactly the
/// same bytes (one encoding per message).
///
/// # Errors
/// [`FuzzFailure`] if a property does not hold.
pub fn fuzz_message(data: &[u8]) -> Result<(), FuzzFailure> {
    let Ok(message) = Message::decode(data) else {
        return Ok(());
    };
    let encoded = message
        .encode()
        .map_err(|e| FuzzFailure(format!("decoded message does not encode: {e}")))?;
    ensure(encoded == data, || {
        format!("{message:?} decoded from bytes it does not encode to")
    })
}

/// Decodes arbitrary bytes as a [`SignedEnvelope`] and verifies it; whatever decodes must
/// re-encode to the same bytes, and batch verification must agree with single verification.
///
/// # Errors
/// [`FuzzFailure`] if a property does not hold.
pub fn fuzz_envelope(data: &[u8]) -> Result<(), FuzzFailure> {
    let Ok(envelope) = SignedEnvelope::decode(data) else {
        return Ok(());
    };
    let encoded = envelope
        .encode()
        .map_err(|e| FuzzFailure(format!("decoded envelope does not encode: {e}")))?;
    ensure(encoded == data, || "envelope re-encodes differently".into())?;
    let single = envelope.verify().is_ok();
    let batch = SignedEnvelope::verify_batch(std::slice::from_ref(&envelope)).is_ok();
    ensure(single == batch, || {
        format!("verify says {single}, verify_batch says {batch}")
    })
}

/// Limits small enough for a fuzzer to reach.
const FUZZ_LIMITS: ReassemblyLimits = ReassemblyLimits {
    max_message_len: 4096,
    max_buffered: 8192,
    max_incomplete: 4,
    timeout_ms: 1_000,
};

/// Header of one chunk record in [`fuzz_reassembly`]'s input.
const RECORD_HEADER: usize = 8;

/// Feeds a [`Reassembler`] a sequence of arbitrary chunks.
///
/// Input: records of `[time step u8][message id u8][index u8][count u8][total u16 BE]
/// [reserved u8][length u8][bytes]`. Checks that memory stays within the limits and that every
/// message delivered has the length its chunks declared; each valid chunk also round-trips
/// through [`Message::Chunk`].
///
/// # Errors
/// [`FuzzFailure`] if a property does not hold.
pub fn fuzz_reassembly(data: &[u8]) -> Result<(), FuzzFailure> {
    let mut reassembler = Reassembler::new(FUZZ_LIMITS);
    let mut now = 0u64;
    let mut rest = data;
    while let Some((header, tail)) = rest.split_first_chunk::<RECORD_HEADER>() {
        let [step, id, index, count, total_hi, total_lo, _, len] = *header;
        let take = usize::from(len).min(tail.len());
        let (bytes, tail) = tail.split_at(take);
        rest = tail;
        now += u64::from(step) * 16;
        let total_len = u32::from(u16::from_be_bytes([total_hi, total_lo]));
        let Ok(chunk) = Chunk::new(
            u64::from(id),
            u32::from(index),
            u32::from(count),
            total_len,
            Bytes::copy_from_slice(bytes),
        ) else {
            continue;
        };
        let message = Message::Chunk(chunk.clone());
        let round_trip = message.encode().ok().and_then(|b| Message::decode(&b).ok());
        ensure(round_trip.as_ref() == Some(&message), || {
            format!("{message:?} does not round-trip")
        })?;
        if let Ok(Some(whole)) = reassembler.push(now, chunk) {
            ensure(whole.len() as u64 == u64::from(total_len), || {
                format!("delivered {} bytes, declared {total_len}", whole.len())
            })?;
            ensure(whole.len() <= FUZZ_LIMITS.max_message_len, || {
                "delivered a message over the limit".into()
            })?;
        }
        ensure(reassembler.buffered() <= FUZZ_LIMITS.max_buffered, || {
            format!("{} bytes buffered", reassembler.buffered())
        })?;
        ensure(
            reassembler.incomplete() <= FUZZ_LIMITS.max_incomplete,
            || format!("{} incomplete messages", reassembler.incomplete()),
        )?;
    }
    reassembler.handle_timeout(u64::MAX);
    ensure(
        reassembler.incomplete() == 0 && reassembler.buffered() == 0,
        || "state left after every message expired".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::MAX_FRAME_LEN;
    use crate::message::Ping;

    #[test]
    fn entry_points_accept_valid_and_invalid_input() {
        let mut stream = vec![255];
        let mut frames = Vec::new();
        encode_frame(b"abc", MAX_FRAME_LEN, &mut frames).unwrap();
        for byte in frames {
            stream.extend([1, byte]);
        }
        fuzz_frames(&stream).unwrap();
        fuzz_frames(&[0, 63, 0, 0, 0, 1]).unwrap();
        fuzz_frames(&[]).unwrap();

        let ping = Message::Ping(Ping { nonce: 300 }).encode().unwrap();
        fuzz_message(&ping).unwrap();
        fuzz_message(&[1, 0, 2, 0xac, 0x82, 0]).unwrap();

        let key = dawn_crypto::SigningKey::from_bytes(&[3; 32]);
        let env = SignedEnvelope::sign(&key, "t", 1, 2, &b"x"[..]).unwrap();
        fuzz_envelope(&env.encode().unwrap()).unwrap();
        fuzz_envelope(b"garbage").unwrap();

        // Message 1 in two chunks, out of order.
        let records = [
            [0, 1, 1, 2, 0, 4, 0, 2, b'c', b'd'],
            [1, 1, 0, 2, 0, 4, 0, 2, b'a', b'b'],
        ]
        .concat();
        fuzz_reassembly(&records).unwrap();
    }
}
