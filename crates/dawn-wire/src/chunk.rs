//! Chunking: messages larger than a frame, split and put back together in bounded memory.

use std::collections::{BTreeMap, HashMap};

use bytes::{Bytes, BytesMut};

use crate::frame::MAX_FRAME_LEN;

/// The most bytes one chunk carries: a frame less room for the message header and the chunk's
/// own fields, so that a [`Message::Chunk`](crate::Message::Chunk) always fits one frame.
pub const MAX_CHUNK_LEN: usize = MAX_FRAME_LEN - 64;

/// Memory charged per stored chunk on top of its bytes, so that many tiny chunks cannot
/// exhaust memory under the byte budget.
const PIECE_OVERHEAD: usize = 64;

/// A chunk is inconsistent, or a limit was reached.
///
/// Errors about one message (everything but [`ChunkError::TooManyIncomplete`] and the
/// splitting errors) also drop that message's chunks received so far: a sender whose chunks
/// disagree will not repair them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The index is not below the count (or the count is 0).
    #[error("chunk index {index} is not below the chunk count {count}")]
    IndexOutOfRange {
        /// The chunk's index.
        index: u32,
        /// The chunk count it declares.
        count: u32,
    },
    /// A chunk carries more than [`MAX_CHUNK_LEN`] bytes.
    #[error("chunk of {len} bytes exceeds the maximum of {MAX_CHUNK_LEN}")]
    ChunkTooLarge {
        /// Its length.
        len: usize,
    },
    /// The counts and lengths cannot add up: more bytes than the total, an empty chunk of a
    /// non-empty message, more chunks than bytes, or all chunks received with fewer bytes than
    /// the total.
    #[error("message {message_id}: chunk lengths do not add up to the total of {total_len}")]
    LengthMismatch {
        /// The message.
        message_id: u64,
        /// The total length its chunks declare.
        total_len: u32,
    },
    /// Chunks of one message disagree on the chunk count or the total length.
    #[error("message {message_id}: chunks disagree on the count or total length")]
    Inconsistent {
        /// The message.
        message_id: u64,
    },
    /// The same index arrived twice with different bytes.
    #[error("message {message_id}: chunk {index} arrived twice with different bytes")]
    ConflictingDuplicate {
        /// The message.
        message_id: u64,
        /// The chunk index.
        index: u32,
    },
    /// The message is longer than the reassembler accepts.
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    MessageTooLarge {
        /// The declared total length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Too many messages are incomplete already; the chunk was dropped.
    #[error("{max} messages are already being reassembled")]
    TooManyIncomplete {
        /// The limit.
        max: usize,
    },
    /// Buffering the chunk would exceed the budget of bytes held for incomplete messages.
    #[error("reassembly budget of {max} bytes exhausted")]
    BudgetExceeded {
        /// The budget.
        max: usize,
    },
    /// [`split`] was asked for chunks of 0 bytes or more than [`MAX_CHUNK_LEN`].
    #[error("chunk length {len} is not in 1..={MAX_CHUNK_LEN}")]
    InvalidChunkLen {
        /// The requested length.
        len: usize,
    },
}

/// One piece of a message too large for a frame.
///
/// A chunk is consistent on its own by construction (index below count, at most
/// [`MAX_CHUNK_LEN`] bytes, never more bytes than the total, at least one byte unless the
/// message is empty); a [`Reassembler`] checks that chunks agree with each other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chunk {
    message_id: u64,
    index: u32,
    count: u32,
    total_len: u32,
    bytes: Bytes,
}

impl Chunk {
    /// A chunk; [`split`] makes them for you.
    ///
    /// # Errors
    /// [`ChunkError::IndexOutOfRange`], [`ChunkError::ChunkTooLarge`] or
    /// [`ChunkError::LengthMismatch`] if the chunk contradicts itself.
    pub fn new(
        message_id: u64,
        index: u32,
        count: u32,
        total_len: u32,
        bytes: Bytes,
    ) -> Result<Self, ChunkError> {
        if index >= count {
            return Err(ChunkError::IndexOutOfRange { index, count });
        }
        if bytes.len() > MAX_CHUNK_LEN {
            return Err(ChunkError::ChunkTooLarge { len: bytes.len() });
        }
        let total = u64::from(total_len);
        let len = bytes.len() as u64;
        // Every chunk of a non-empty message carries a byte, so there are no more chunks than
        // bytes; an empty message is a single empty chunk.
        let consistent = if total == 0 {
            count == 1 && len == 0
        } else {
            len >= 1 && len <= total && u64::from(count) <= total
        };
        if !consistent {
            return Err(ChunkError::LengthMismatch {
                message_id,
                total_len,
            });
        }
        Ok(Self {
            message_id,
            index,
            count,
            total_len,
            bytes,
        })
    }

    /// The message this chunk belongs to, numbered by the sender.
    #[must_use]
    pub const fn message_id(&self) -> u64 {
        self.message_id
    }

    /// Position of this chunk, from 0.
    #[must_use]
    pub const fn index(&self) -> u32 {
        self.index
    }

    /// How many chunks the message has.
    #[must_use]
    pub const fn count(&self) -> u32 {
        self.count
    }

    /// The length of the whole message.
    #[must_use]
    pub const fn total_len(&self) -> u32 {
        self.total_len
    }

    /// This chunk's bytes.
    #[must_use]
    pub const fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

/// Splits `data` into chunks of `chunk_len` bytes (the last may be shorter), all tagged with
/// `message_id`, which must not repeat among the sender's incomplete messages.
///
/// # Errors
/// [`ChunkError::InvalidChunkLen`] unless `chunk_len` is in `1..=MAX_CHUNK_LEN`,
/// [`ChunkError::MessageTooLarge`] if `data` is longer than `u32::MAX` bytes.
pub fn split(message_id: u64, data: Bytes, chunk_len: usize) -> Result<Vec<Chunk>, ChunkError> {
    if chunk_len == 0 || chunk_len > MAX_CHUNK_LEN {
        return Err(ChunkError::InvalidChunkLen { len: chunk_len });
    }
    let too_large = ChunkError::MessageTooLarge {
        len: data.len(),
        max: u32::MAX as usize,
    };
    let total_len = u32::try_from(data.len()).map_err(|_| too_large.clone())?;
    let count = u32::try_from(data.len().div_ceil(chunk_len).max(1)).map_err(|_| too_large)?;
    let mut chunks = Vec::with_capacity(count as usize);
    let mut offset = 0;
    for index in 0..count {
        let end = offset + chunk_len.min(data.len() - offset);
        chunks.push(Chunk::new(
            message_id,
            index,
            count,
            total_len,
            data.slice(offset..end),
        )?);
        offset = end;
    }
    Ok(chunks)
}

/// The limits of a [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// The longest message accepted, in bytes. Default 16 MiB.
    pub max_message_len: usize,
    /// The most bytes held for incomplete messages at once (each chunk is charged 64 bytes on
    /// top of its length). Default 32 MiB.
    pub max_buffered: usize,
    /// The most messages incomplete at once. Default 8.
    pub max_incomplete: usize,
    /// How long a message may take to arrive, from its first chunk, in milliseconds. Default
    /// 30 seconds.
    pub timeout_ms: u64,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        Self {
            max_message_len: 16 << 20,
            max_buffered: 32 << 20,
            max_incomplete: 8,
            timeout_ms: 30_000,
        }
    }
}

#[derive(Debug)]
struct Partial {
    count: u32,
    total_len: u32,
    pieces: BTreeMap<u32, Bytes>,
    received: u64,
    charged: usize,
    deadline_ms: u64,
}

/// Puts chunked messages back together, sans-IO, in bounded memory and time.
///
/// Use one per peer connection (message ids are the sender's). Chunks may arrive in any order
/// and interleaved between messages; an exact duplicate of a chunk still waiting is ignored,
/// but the reassembler keeps no memory of completed messages: a chunk arriving after its
/// message completed starts a new incomplete message (which expires), and a repeated
/// single-chunk message is delivered again. Dropping whole repeated messages is the job of
/// signatures and a [`ReplayGuard`](crate::ReplayGuard). Memory is bounded by
/// [`ReassemblyLimits`]; an incomplete message is dropped when its time is up (call
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout), or let the
/// next [`push`](Self::push) do it).
///
/// ```
/// use bytes::Bytes;
/// use dawn_wire::{ReassemblyLimits, Reassembler, split};
///
/// # fn main() -> Result<(), dawn_wire::ChunkError> {
/// let data = Bytes::from(vec![7u8; 10_000]);
/// let mut chunks = split(1, data.clone(), 4096)?;
/// chunks.reverse();
///
/// let mut reassembler = Reassembler::new(ReassemblyLimits::default());
/// let mut done = None;
/// for chunk in chunks {
///     done = reassembler.push(0, chunk)?;
/// }
/// assert_eq!(done, Some(data));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Reassembler {
    limits: ReassemblyLimits,
    partials: HashMap<u64, Partial>,
    buffered: usize,
}

impl Reassembler {
    /// A reassembler with `limits`.
    #[must_use]
    pub fn new(limits: ReassemblyLimits) -> Self {
        Self {
            limits,
            partials: HashMap::new(),
            buffered: 0,
        }
    }

    /// The limits in force.
    #[must_use]
    pub const fn limits(&self) -> &ReassemblyLimits {
        &self.limits
    }

    /// Bytes currently charged against [`ReassemblyLimits::max_buffered`].
    #[must_use]
    pub const fn buffered(&self) -> usize {
        self.buffered
    }

    /// How many messages are incomplete.
    #[must_use]
    pub fn incomplete(&self) -> usize {
        self.partials.len()
    }

    /// Adds a chunk received at `now_ms`; returns the whole message once its last chunk is in.
    ///
    /// Expired messages are dropped first.
    ///
    /// # Errors
    /// [`ChunkError::MessageTooLarge`], [`ChunkError::Inconsistent`],
    /// [`ChunkError::ConflictingDuplicate`], [`ChunkError::LengthMismatch`] (each also drops the
    /// message's chunks so far), [`ChunkError::TooManyIncomplete`] or
    /// [`ChunkError::BudgetExceeded`].
    pub fn push(&mut self, now_ms: u64, chunk: Chunk) -> Result<Option<Bytes>, ChunkError> {
        self.handle_timeout(now_ms);
        let Chunk {
            message_id,
            index,
            count,
            total_len,
            bytes,
        } = chunk;
        let total = total_len as usize;
        if total > self.limits.max_message_len {
            self.drop_message(message_id);
            return Err(ChunkError::MessageTooLarge {
                len: total,
                max: self.limits.max_message_len,
            });
        }
        let Some(partial) = self.partials.get_mut(&message_id) else {
            return self.start(now_ms, message_id, index, count, total_len, bytes);
        };
        if partial.count != count || partial.total_len != total_len {
            self.drop_message(message_id);
            return Err(ChunkError::Inconsistent { message_id });
        }
        if let Some(existing) = partial.pieces.get(&index) {
            if *existing == bytes {
                return Ok(None);
            }
            self.drop_message(message_id);
            return Err(ChunkError::ConflictingDuplicate { message_id, index });
        }
        let received = partial.received + bytes.len() as u64;
        let missing = u64::from(count) - partial.pieces.len() as u64 - 1;
        // Each chunk still missing carries at least one byte.
        if received + missing > u64::from(total_len)
            || (missing == 0 && received != u64::from(total_len))
        {
            self.drop_message(message_id);
            return Err(ChunkError::LengthMismatch {
                message_id,
                total_len,
            });
        }
        let cost = bytes.len() + PIECE_OVERHEAD;
        if self.buffered + cost > self.limits.max_buffered {
            self.drop_message(message_id);
            return Err(ChunkError::BudgetExceeded {
                max: self.limits.max_buffered,
            });
        }
        partial.pieces.insert(index, bytes);
        partial.received = received;
        partial.charged += cost;
        self.buffered += cost;
        if missing > 0 {
            return Ok(None);
        }
        let Some(partial) = self.partials.remove(&message_id) else {
            return Ok(None);
        };
        self.buffered -= partial.charged;
        let mut whole = BytesMut::with_capacity(total);
        for piece in partial.pieces.values() {
            whole.extend_from_slice(piece);
        }
        Ok(Some(whole.freeze()))
    }

    /// Drops every incomplete message whose time is up at `now_ms`; returns how many.
    pub fn handle_timeout(&mut self, now_ms: u64) -> usize {
        let before = self.partials.len();
        let mut freed = 0;
        self.partials.retain(|_, partial| {
            let keep = partial.deadline_ms > now_ms;
            if !keep {
                freed += partial.charged;
            }
            keep
        });
        self.buffered -= freed;
        before - self.partials.len()
    }

    /// When the next incomplete message expires, if any: call
    /// [`handle_timeout`](Self::handle_timeout) then.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.partials.values().map(|p| p.deadline_ms).min()
    }

    fn start(
        &mut self,
        now_ms: u64,
        message_id: u64,
        index: u32,
        count: u32,
        total_len: u32,
        bytes: Bytes,
    ) -> Result<Option<Bytes>, ChunkError> {
        if count == 1 {
            // `Chunk::new` guarantees index 0 and, for one chunk, the bytes are the message if
            // their length is the total.
            if bytes.len() as u64 != u64::from(total_len) {
                return Err(ChunkError::LengthMismatch {
                    message_id,
                    total_len,
                });
            }
            return Ok(Some(bytes));
        }
        if self.partials.len() >= self.limits.max_incomplete {
            return Err(ChunkError::TooManyIncomplete {
                max: self.limits.max_incomplete,
            });
        }
        let cost = bytes.len() + PIECE_OVERHEAD;
        if self.buffered + cost > self.limits.max_buffered {
            return Err(ChunkError::BudgetExceeded {
                max: self.limits.max_buffered,
            });
        }
        let received = bytes.len() as u64;
        let mut pieces = BTreeMap::new();
        pieces.insert(index, bytes);
        self.partials.insert(
            message_id,
            Partial {
                count,
                total_len,
                pieces,
                received,
                charged: cost,
                deadline_ms: now_ms.saturating_add(self.limits.timeout_ms),
            },
        );
        self.buffered += cost;
        Ok(None)
    }

    fn drop_message(&mut self, message_id: u64) {
        if let Some(partial) = self.partials.remove(&message_id) {
            self.buffered -= partial.charged;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Bytes {
        (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>().into()
    }

    fn small_limits() -> ReassemblyLimits {
        ReassemblyLimits {
            max_message_len: 1000,
            max_buffered: 2000,
            max_incomplete: 2,
            timeout_ms: 100,
        }
    }

    #[test]
    fn split_shapes() {
        let chunks = split(9, data(10), 4).unwrap();
        let lens: Vec<_> = chunks.iter().map(|c| c.bytes().len()).collect();
        assert_eq!(lens, [4, 4, 2]);
        assert!(chunks.iter().all(|c| c.count() == 3 && c.total_len() == 10));
        assert!(chunks.iter().all(|c| c.message_id() == 9));
        let empty = split(1, Bytes::new(), 4).unwrap();
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].count(), 1);
        assert_eq!(
            split(1, data(3), 0),
            Err(ChunkError::InvalidChunkLen { len: 0 })
        );
        assert_eq!(
            split(1, data(3), MAX_CHUNK_LEN + 1),
            Err(ChunkError::InvalidChunkLen {
                len: MAX_CHUNK_LEN + 1
            })
        );
    }

    #[test]
    fn chunk_new_rejects_self_contradiction() {
        let b = Bytes::from_static(b"abc");
        assert_eq!(
            Chunk::new(1, 2, 2, 6, b.clone()),
            Err(ChunkError::IndexOutOfRange { index: 2, count: 2 })
        );
        assert_eq!(
            Chunk::new(1, 0, 0, 6, b.clone()),
            Err(ChunkError::IndexOutOfRange { index: 0, count: 0 })
        );
        let mismatch = Err(ChunkError::LengthMismatch {
            message_id: 1,
            total_len: 2,
        });
        assert_eq!(Chunk::new(1, 0, 1, 2, b.clone()), mismatch);
        assert_eq!(Chunk::new(1, 0, 3, 2, Bytes::from_static(b"a")), mismatch);
        assert_eq!(Chunk::new(1, 0, 2, 2, Bytes::new()), mismatch);
        assert!(Chunk::new(1, 0, 2, 0, Bytes::new()).is_err());
        assert!(Chunk::new(1, 0, 1, 0, Bytes::new()).is_ok());
        assert_eq!(
            Chunk::new(1, 0, 1, u32::MAX, Bytes::from(vec![0; MAX_CHUNK_LEN + 1])),
            Err(ChunkError::ChunkTooLarge {
                len: MAX_CHUNK_LEN + 1
            })
        );
    }

    #[test]
    fn reassembles_interleaved_messages_and_ignores_exact_duplicates() {
        let mut r = Reassembler::new(small_limits());
        let a = split(1, data(25), 10).unwrap();
        let b = split(2, data(7), 3).unwrap();
        assert_eq!(r.push(0, a[2].clone()), Ok(None));
        assert_eq!(r.push(0, b[1].clone()), Ok(None));
        assert_eq!(r.push(0, a[2].clone()), Ok(None));
        assert_eq!(r.push(0, a[0].clone()), Ok(None));
        assert_eq!(r.push(0, b[0].clone()), Ok(None));
        assert_eq!(r.incomplete(), 2);
        assert_eq!(r.push(0, a[1].clone()), Ok(Some(data(25))));
        assert_eq!(r.push(0, b[2].clone()), Ok(Some(data(7))));
        assert_eq!(r.incomplete(), 0);
        assert_eq!(r.buffered(), 0);
        // Single-chunk messages pass straight through.
        assert_eq!(
            r.push(0, split(3, data(5), 10).unwrap()[0].clone()),
            Ok(Some(data(5)))
        );
        assert_eq!(
            r.push(0, split(4, Bytes::new(), 10).unwrap()[0].clone()),
            Ok(Some(Bytes::new()))
        );
    }

    #[test]
    fn inconsistent_chunks_are_typed_errors_and_drop_the_message() {
        let mut r = Reassembler::new(small_limits());
        let a = split(1, data(20), 10).unwrap();
        r.push(0, a[0].clone()).unwrap();
        // Same id, a different count.
        let other = Chunk::new(1, 1, 3, 20, data(5)).unwrap();
        assert_eq!(
            r.push(0, other),
            Err(ChunkError::Inconsistent { message_id: 1 })
        );
        assert_eq!((r.incomplete(), r.buffered()), (0, 0));

        r.push(0, a[0].clone()).unwrap();
        let forged = Chunk::new(1, 0, 2, 20, Bytes::from(vec![0xff; 10])).unwrap();
        assert_eq!(
            r.push(0, forged),
            Err(ChunkError::ConflictingDuplicate {
                message_id: 1,
                index: 0
            })
        );
        assert_eq!(r.incomplete(), 0);

        // Lengths that cannot add up: 10 + 9 < 20 once both chunks are in.
        r.push(0, a[0].clone()).unwrap();
        let short = Chunk::new(1, 1, 2, 20, data(9)).unwrap();
        assert_eq!(
            r.push(0, short),
            Err(ChunkError::LengthMismatch {
                message_id: 1,
                total_len: 20
            })
        );
        // ...or 15 + 10 > 20 before they are.
        let c = split(2, data(30), 15).unwrap();
        let d = Chunk::new(2, 1, 2, 30, data(15)).unwrap();
        r.push(0, d).unwrap();
        let too_long = Chunk::new(2, 0, 2, 30, data(16)).unwrap();
        assert!(matches!(
            r.push(0, too_long),
            Err(ChunkError::LengthMismatch { .. })
        ));
        assert_eq!(r.push(0, c[0].clone()), Ok(None));
        assert_eq!((r.incomplete(), r.buffered()), (1, 15 + PIECE_OVERHEAD));
    }

    #[test]
    fn limits_bound_memory() {
        let mut r = Reassembler::new(small_limits());
        assert_eq!(
            r.push(0, split(1, data(1001), 500).unwrap()[0].clone()),
            Err(ChunkError::MessageTooLarge {
                len: 1001,
                max: 1000
            })
        );
        r.push(0, split(1, data(20), 10).unwrap()[0].clone())
            .unwrap();
        r.push(0, split(2, data(20), 10).unwrap()[0].clone())
            .unwrap();
        assert_eq!(
            r.push(0, split(3, data(20), 10).unwrap()[0].clone()),
            Err(ChunkError::TooManyIncomplete { max: 2 })
        );
        // Budget: 2000 bytes with 64 per chunk; 1000-byte messages of 1-byte chunks run out.
        let mut r = Reassembler::new(small_limits());
        let many = split(7, data(1000), 1).unwrap();
        let mut result = Ok(None);
        for chunk in many {
            result = r.push(0, chunk);
            if result.is_err() {
                break;
            }
            assert!(r.buffered() <= 2000);
        }
        assert_eq!(result, Err(ChunkError::BudgetExceeded { max: 2000 }));
        assert_eq!((r.incomplete(), r.buffered()), (0, 0));
    }

    #[test]
    fn incomplete_messages_expire() {
        let mut r = Reassembler::new(small_limits());
        let a = split(1, data(20), 10).unwrap();
        assert_eq!(r.poll_timeout(), None);
        r.push(1_000, a[0].clone()).unwrap();
        assert_eq!(r.poll_timeout(), Some(1_100));
        assert_eq!(r.handle_timeout(1_099), 0);
        assert_eq!(r.handle_timeout(1_100), 1);
        assert_eq!((r.incomplete(), r.buffered()), (0, 0));
        // The late second half starts a new incomplete message rather than completing.
        assert_eq!(r.push(1_200, a[1].clone()), Ok(None));
        // And a push after the deadline expires it first.
        assert_eq!(r.push(1_300, a[0].clone()), Ok(None));
        assert_eq!(r.incomplete(), 1);
    }
}
