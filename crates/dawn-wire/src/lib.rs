//! Dawn's wire format, layer 2 of the workspace.
//!
//! Everything two Dawn nodes say to each other passes through this crate:
//!
//! - **Frames** ([`encode_frame`], [`FrameDecoder`]): a 4-byte big-endian length, then the
//!   payload, with a hard maximum checked before anything is buffered.
//! - **Messages** ([`Message`]): `[format version][type number]` and a strict postcard body.
//!   Unknown versions and types are typed errors; later crates carry their own payloads in
//!   [`Message::Protocol`] under the type numbers their [`Subsystem`] owns.
//! - **The handshake** ([`Hello`], [`Capabilities`], [`negotiate`]).
//! - **Signed envelopes** ([`SignedEnvelope`]): a payload signed by its origin node over a
//!   domain-separated encoding, for messages other nodes forward; batch verification names the
//!   bad ones.
//! - **Replay protection** ([`ReplayGuard`], [`Sequencer`]): a timestamp window and a
//!   per-origin sliding window of sequence numbers, in bounded memory.
//! - **Chunking** ([`split`], [`Reassembler`]): messages larger than a frame, put back
//!   together within limits of memory and time.
//! - **Fuzz entry points** ([`fuzz_frames`], [`fuzz_message`], [`fuzz_envelope`],
//!   [`fuzz_reassembly`]): each decoder over arbitrary bytes, checking its promises.
//!
//! The crate is sans-IO: no sockets, no clock, no threads; whatever needs the time takes
//! `now_ms`. Every decoder is a pure function of its input, bounded, and never panics.
//!
//! The byte layouts, the registry of type numbers and the limits are in the crate's
//! `README.md`.
//!
//! # Example
//!
//! ```
//! use dawn_wire::{
//!     Capabilities, FrameDecoder, Hello, MAX_FRAME_LEN, Message, Ping, encode_frame, negotiate,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node_id = dawn_crypto::SigningKey::from_bytes(&[1; 32]).verifying_key().into();
//! let hello = Hello::new(node_id, Capabilities::GOSSIP | Capabilities::MCP);
//!
//! // Sender: message -> bytes -> frame.
//! let mut stream = Vec::new();
//! for message in [Message::Hello(hello.clone()), Message::Ping(Ping { nonce: 1 })] {
//!     encode_frame(&message.encode()?, MAX_FRAME_LEN, &mut stream)?;
//! }
//!
//! // Receiver: bytes as they arrive -> frames -> messages.
//! let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
//! decoder.push(&stream)?;
//! let mut versions = Vec::new();
//! while let Some(frame) = decoder.next_frame()? {
//!     match Message::decode(&frame)? {
//!         Message::Hello(theirs) => versions.push(negotiate(&hello, &theirs)?),
//!         Message::Ping(ping) => assert_eq!(ping.nonce, 1),
//!         other => return Err(format!("unexpected {other:?}").into()),
//!     }
//! }
//! assert_eq!(versions, [dawn_wire::PROTOCOL_VERSION]);
//! # Ok(()) }
//! ```
//!
//! # Status
//!
//! Wire format version 1, protocol version 1. The encoding of every message is pinned by golden
//! files in `tests/golden/`; changing one is a protocol change.

mod chunk;
mod codec;
mod envelope;
mod frame;
mod fuzz;
mod hello;
mod message;
mod replay;

pub use crate::chunk::{Chunk, ChunkError, MAX_CHUNK_LEN, Reassembler, ReassemblyLimits, split};
pub use crate::codec::{PayloadError, decode_payload, encode_payload};
pub use crate::envelope::{
    ENVELOPE_DOMAIN, ENVELOPE_VERSION, EnvelopeBatchError, EnvelopeError, MAX_ENVELOPE_LEN,
    MAX_ENVELOPE_PAYLOAD_LEN, MAX_TOPIC_LEN, SignedEnvelope,
};
pub use crate::frame::{
    FRAME_HEADER_LEN, FrameDecoder, FrameError, MAX_FRAME_LEN, decode_frame_header, encode_frame,
};
pub use crate::fuzz::{FuzzFailure, fuzz_envelope, fuzz_frames, fuzz_message, fuzz_reassembly};
pub use crate::hello::{
    Capabilities, Hello, HelloError, MAX_SOFTWARE_LEN, PROTOCOL_VERSION, negotiate,
};
pub use crate::message::{
    MAX_MESSAGE_LEN, MESSAGE_HEADER_LEN, Message, Ping, Pong, Subsystem, WIRE_FORMAT_VERSION,
    WireError,
};
pub use crate::replay::{ReplayConfig, ReplayGuard, ReplayVerdict, Sequencer};
