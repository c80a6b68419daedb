//! Gossip messages, their type numbers and their strict postcard encoding.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use dawn_crypto::PUBLIC_KEY_LEN;
use dawn_identity::{NodeId, NodeIdError};
use dawn_wire::{
    EnvelopeError, MAX_TOPIC_LEN, Message, PayloadError, SignedEnvelope, Subsystem, decode_payload,
    encode_payload,
};
use sha2::{Digest as _, Sha256};

/// Length of a [`MessageId`] in bytes.
pub const MESSAGE_ID_LEN: usize = 32;

/// The most nodes one [`GossipMessage::Shuffle`] or [`GossipMessage::ShuffleReply`] carries.
pub const MAX_SHUFFLE_NODES: usize = 32;
/// The most entries one [`GossipMessage::IHave`] carries.
pub const MAX_IHAVE_ENTRIES: usize = 256;
/// The most ids one [`GossipMessage::Graft`] carries.
pub const MAX_GRAFT_IDS: usize = 64;
/// The most ids one [`GossipMessage::Digest`] carries.
pub const MAX_DIGEST_IDS: usize = 1024;
/// The most ids one [`GossipMessage::Request`] carries.
pub const MAX_REQUEST_IDS: usize = 64;

/// The identity of a broadcast message: SHA-256 over the envelope's signing input followed by
/// its 64-byte signature.
///
/// It names one exact envelope: a forged copy (same fields, another signature) gets another
/// id, so a forger cannot make receivers drop the real message as a duplicate. Receivers
/// compute it themselves; ids on the wire (in `IHave`, `Graft`, `Digest`, `Request`) only
/// say what to ask for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId([u8; MESSAGE_ID_LEN]);

impl MessageId {
    /// The id of `envelope`.
    #[must_use]
    pub fn of(envelope: &SignedEnvelope) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(envelope.signing_input());
        hasher.update(envelope.signature().as_bytes());
        Self(hasher.finalize().into())
    }

    /// An id from its 32 bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; MESSAGE_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; MESSAGE_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId(")?;
        for byte in self.0.iter().take(6) {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

/// A topic name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// Empty, or longer than [`MAX_TOPIC_LEN`] bytes.
    #[error("topic of {len} bytes; a topic has 1 to {MAX_TOPIC_LEN} bytes")]
    Length {
        /// Its length in bytes.
        len: usize,
    },
    /// A character outside visible ASCII (`!` to `~`).
    #[error("topic has characters outside visible ASCII")]
    Characters,
}

/// A broadcast topic: 1 to 64 bytes of visible ASCII, the same rule as a
/// [`SignedEnvelope`]'s topic (the envelope carries it and its signature covers it).
///
/// Cheap to clone (shared).
///
/// ```
/// use dawn_gossip::Topic;
///
/// let topic = Topic::new("dawn/registry/delta")?;
/// assert_eq!(topic.as_str(), "dawn/registry/delta");
/// assert!(Topic::new("has space").is_err());
/// # Ok::<(), dawn_gossip::TopicError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

impl Topic {
    /// Validates a topic name.
    ///
    /// # Errors
    /// [`TopicError::Length`] or [`TopicError::Characters`].
    pub fn new(name: &str) -> Result<Self, TopicError> {
        if name.is_empty() || name.len() > MAX_TOPIC_LEN {
            return Err(TopicError::Length { len: name.len() });
        }
        if !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TopicError::Characters);
        }
        Ok(Self(Arc::from(name)))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic({:?})", &*self.0)
    }
}

/// One announcement in an [`GossipMessage::IHave`]: a message the sender has, and after how
/// many hops it got it (used to prefer shorter paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IHaveEntry {
    /// The message.
    pub id: MessageId,
    /// Hops from the origin to the sender of the announcement.
    pub hops: u16,
}

/// A message between two gossip cores.
///
/// Membership (HyParView, `0x0100..=0x010F`), broadcast (Plumtree, `0x0110..=0x011F`) and
/// anti-entropy (`0x0120..=0x012F`). Each variant has a fixed type number in the
/// [`Subsystem::Gossip`] range ([`GossipMessage::kind`]) and travels as
/// [`Message::Protocol`]`{ kind, payload }` with a strict postcard body; the crate's README
/// lists the bodies byte by byte.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GossipMessage {
    /// `0x0100`: the sender is new and asks the receiver to be its first neighbour.
    Join,
    /// `0x0101`: a random walk announcing `joiner`; where it ends, the node asks the joiner
    /// to be its neighbour.
    ForwardJoin {
        /// The node that joined.
        joiner: NodeId,
        /// Remaining walk length.
        ttl: u8,
    },
    /// `0x0102`: the sender asks to become the receiver's neighbour. A high-priority request
    /// (the sender has no neighbour left, or re-links after a failure) is always accepted,
    /// evicting someone if need be; a low-priority one only if the receiver has room.
    Neighbor {
        /// Whether the receiver must accept.
        high_priority: bool,
    },
    /// `0x0103`: the answer to `Join` or `Neighbor`.
    NeighborReply {
        /// Whether the sender added the receiver to its active view.
        accepted: bool,
    },
    /// `0x0104`: the sender dropped the receiver from its active view.
    Disconnect {
        /// `false` when the sender is shutting down: do not keep it as a passive peer.
        alive: bool,
    },
    /// `0x0105`: a random walk carrying a sample of `origin`'s views; where it ends, the node
    /// answers `origin` directly with a sample of its own passive view.
    Shuffle {
        /// The node that started the shuffle.
        origin: NodeId,
        /// Remaining walk length.
        ttl: u8,
        /// `origin` and a sample of its active and passive views.
        nodes: Vec<NodeId>,
    },
    /// `0x0106`: the answer to a `Shuffle`: a sample of the answering node's passive view.
    ShuffleReply {
        /// The sample.
        nodes: Vec<NodeId>,
    },
    /// `0x0107`: nothing to say; keeps an idle link's failure detector quiet.
    KeepAlive,
    /// `0x0110`: eager push of a broadcast message along the tree.
    Gossip {
        /// Hops from the origin to the sender (0 when the sender is the origin).
        hops: u16,
        /// The origin-signed message.
        envelope: SignedEnvelope,
    },
    /// `0x0111`: lazy push: ids of messages the sender has, for one topic.
    IHave {
        /// The topic of every entry.
        topic: Topic,
        /// The announcements.
        entries: Vec<IHaveEntry>,
    },
    /// `0x0112`: make the receiver push this topic eagerly to the sender again, and send the
    /// listed messages (possibly none).
    Graft {
        /// The topic.
        topic: Topic,
        /// Messages the sender misses.
        ids: Vec<MessageId>,
    },
    /// `0x0113`: stop pushing this topic eagerly to the sender; announce instead.
    Prune {
        /// The topic.
        topic: Topic,
    },
    /// `0x0120`: anti-entropy: ids of recent messages the sender has.
    Digest {
        /// Whether the receiver should answer with its own digest.
        respond: bool,
        /// The ids.
        ids: Vec<MessageId>,
    },
    /// `0x0121`: anti-entropy: send me these messages.
    Request {
        /// The ids.
        ids: Vec<MessageId>,
    },
    /// `0x0122`: anti-entropy: a message sent because it was requested (does not change the
    /// broadcast tree).
    Response {
        /// Hops from the origin to the sender.
        hops: u16,
        /// The origin-signed message.
        envelope: SignedEnvelope,
    },
}

/// A gossip message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The wire message is not a [`Message::Protocol`] in the gossip range.
    #[error("type number {0:#06x} is not a gossip message")]
    NotGossip(u16),
    /// A type number in the gossip range that this build does not know.
    #[error("unknown gossip message type {0:#06x}")]
    UnknownKind(u16),
    /// The body is not a strict, canonical postcard encoding of the type's body.
    #[error("malformed body of gossip message {kind:#06x}: {error}")]
    Body {
        /// The type number.
        kind: u16,
        /// What was wrong.
        #[source]
        error: PayloadError,
    },
    /// A node id in the body is not a valid Ed25519 key.
    #[error("invalid node id: {0}")]
    NodeId(#[source] NodeIdError),
    /// A topic in the body is not a valid topic.
    #[error("invalid topic: {0}")]
    Topic(#[source] TopicError),
    /// The embedded envelope does not decode.
    #[error("invalid envelope: {0}")]
    Envelope(#[source] EnvelopeError),
    /// A list is longer than the protocol allows.
    #[error("{what} has {len} items, at most {max} allowed")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// A gossip message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The envelope would not encode.
    #[error("envelope: {0}")]
    Envelope(#[source] EnvelopeError),
    /// postcard refused the body.
    #[error("body: {0}")]
    Body(#[source] PayloadError),
    /// A list is longer than the protocol allows (the receiver would refuse it).
    #[error("{what} has {len} items, at most {max} allowed")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// The type numbers, in [`Subsystem::Gossip`]'s range. Never reused.
impl GossipMessage {
    /// Type number of [`GossipMessage::Join`].
    pub const KIND_JOIN: u16 = 0x0100;
    /// Type number of [`GossipMessage::ForwardJoin`].
    pub const KIND_FORWARD_JOIN: u16 = 0x0101;
    /// Type number of [`GossipMessage::Neighbor`].
    pub const KIND_NEIGHBOR: u16 = 0x0102;
    /// Type number of [`GossipMessage::NeighborReply`].
    pub const KIND_NEIGHBOR_REPLY: u16 = 0x0103;
    /// Type number of [`GossipMessage::Disconnect`].
    pub const KIND_DISCONNECT: u16 = 0x0104;
    /// Type number of [`GossipMessage::Shuffle`].
    pub const KIND_SHUFFLE: u16 = 0x0105;
    /// Type number of [`GossipMessage::ShuffleReply`].
    pub const KIND_SHUFFLE_REPLY: u16 = 0x0106;
    /// Type number of [`GossipMessage::KeepAlive`].
    pub const KIND_KEEP_ALIVE: u16 = 0x0107;
    /// Type number of [`GossipMessage::Gossip`].
    pub const KIND_GOSSIP: u16 = 0x0110;
    /// Type number of [`GossipMessage::IHave`].
    pub const KIND_IHAVE: u16 = 0x0111;
    /// Type number of [`GossipMessage::Graft`].
    pub const KIND_GRAFT: u16 = 0x0112;
    /// Type number of [`GossipMessage::Prune`].
    pub const KIND_PRUNE: u16 = 0x0113;
    /// Type number of [`GossipMessage::Digest`].
    pub const KIND_DIGEST: u16 = 0x0120;
    /// Type number of [`GossipMessage::Request`].
    pub const KIND_REQUEST: u16 = 0x0121;
    /// Type number of [`GossipMessage::Response`].
    pub const KIND_RESPONSE: u16 = 0x0122;

    /// Every type number this crate defines, ascending.
    pub const KINDS: [u16; 15] = [
        Self::KIND_JOIN,
        Self::KIND_FORWARD_JOIN,
        Self::KIND_NEIGHBOR,
        Self::KIND_NEIGHBOR_REPLY,
        Self::KIND_DISCONNECT,
        Self::KIND_SHUFFLE,
        Self::KIND_SHUFFLE_REPLY,
        Self::KIND_KEEP_ALIVE,
        Self::KIND_GOSSIP,
        Self::KIND_IHAVE,
        Self::KIND_GRAFT,
        Self::KIND_PRUNE,
        Self::KIND_DIGEST,
        Self::KIND_REQUEST,
        Self::KIND_RESPONSE,
    ];
}

/// Postcard layouts; field order is the wire order.
mod wire {
    use serde::{Deserialize, Serialize};

    use super::PUBLIC_KEY_LEN;

    pub(super) type Id = [u8; super::MESSAGE_ID_LEN];
    pub(super) type Key = [u8; PUBLIC_KEY_LEN];

    #[derive(Serialize, Deserialize)]
    pub(super) struct ForwardJoin {
        pub(super) joiner: Key,
        pub(super) ttl: u8,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct Shuffle {
        pub(super) origin: Key,
        pub(super) ttl: u8,
        pub(super) nodes: Vec<Key>,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct Carried<'a> {
        pub(super) hops: u16,
        #[serde(borrow, with = "super::byte_string")]
        pub(super) envelope: &'a [u8],
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct IHave<'a> {
        pub(super) topic: &'a str,
        pub(super) entries: Vec<(Id, u16)>,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct TopicIds<'a> {
        pub(super) topic: &'a str,
        pub(super) ids: Vec<Id>,
    }

    #[derive(Serialize, Deserialize)]
    pub(super) struct Digest {
        pub(super) respond: bool,
        pub(super) ids: Vec<Id>,
    }
}

/// `&[u8]` as a postcard byte string (varint length, then the bytes) and borrowed on decode.
mod byte_string {
    use std::fmt;

    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        bytes: &&[u8],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<&'de [u8], D::Error> {
        struct Borrowed;
        impl<'de> Visitor<'de> for Borrowed {
            type Value = &'de [u8];
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_borrowed_bytes<E: Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(v)
            }
        }
        deserializer.deserialize_bytes(Borrowed)
    }
}

fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), DecodeError> {
    if len > max {
        return Err(DecodeError::TooMany { what, len, max });
    }
    Ok(())
}

fn check_encode_len(what: &'static str, len: usize, max: usize) -> Result<(), EncodeError> {
    if len > max {
        return Err(EncodeError::TooMany { what, len, max });
    }
    Ok(())
}

fn node_ids(keys: &[wire::Key]) -> Result<Vec<NodeId>, DecodeError> {
    keys.iter()
        .map(|key| NodeId::from_bytes(key).map_err(DecodeError::NodeId))
        .collect()
}

fn message_ids(ids: Vec<wire::Id>) -> Vec<MessageId> {
    ids.into_iter().map(MessageId).collect()
}

fn raw_ids(ids: &[MessageId]) -> Vec<wire::Id> {
    ids.iter().map(|id| id.0).collect()
}

fn raw_keys(nodes: &[NodeId]) -> Vec<wire::Key> {
    nodes.iter().map(|node| *node.as_bytes()).collect()
}

impl GossipMessage {
    /// This message's type number.
    #[must_use]
    pub const fn kind(&self) -> u16 {
        match self {
            Self::Join => Self::KIND_JOIN,
            Self::ForwardJoin { .. } => Self::KIND_FORWARD_JOIN,
            Self::Neighbor { .. } => Self::KIND_NEIGHBOR,
            Self::NeighborReply { .. } => Self::KIND_NEIGHBOR_REPLY,
            Self::Disconnect { .. } => Self::KIND_DISCONNECT,
            Self::Shuffle { .. } => Self::KIND_SHUFFLE,
            Self::ShuffleReply { .. } => Self::KIND_SHUFFLE_REPLY,
            Self::KeepAlive => Self::KIND_KEEP_ALIVE,
            Self::Gossip { .. } => Self::KIND_GOSSIP,
            Self::IHave { .. } => Self::KIND_IHAVE,
            Self::Graft { .. } => Self::KIND_GRAFT,
            Self::Prune { .. } => Self::KIND_PRUNE,
            Self::Digest { .. } => Self::KIND_DIGEST,
            Self::Request { .. } => Self::KIND_REQUEST,
            Self::Response { .. } => Self::KIND_RESPONSE,
        }
    }

    /// Whether the message carries a broadcast payload (`Gossip` or `Response`): the messages
    /// that count towards relative message redundancy.
    #[must_use]
    pub const fn carries_payload(&self) -> bool {
        matches!(self, Self::Gossip { .. } | Self::Response { .. })
    }

    /// Encodes the body (without the wire header): strict postcard, as listed in the README.
    ///
    /// # Errors
    /// [`EncodeError::TooMany`] for a list over its protocol limit, [`EncodeError::Envelope`]
    /// or [`EncodeError::Body`] if encoding fails (it does not for well-formed values).
    pub fn encode_body(&self) -> Result<Vec<u8>, EncodeError> {
        let body = match self {
            Self::Join | Self::KeepAlive => encode_payload(&()),
            Self::ForwardJoin { joiner, ttl } => encode_payload(&wire::ForwardJoin {
                joiner: *joiner.as_bytes(),
                ttl: *ttl,
            }),
            Self::Neighbor {
                high_priority: flag,
            }
            | Self::NeighborReply { accepted: flag }
            | Self::Disconnect { alive: flag } => encode_payload(flag),
            Self::Shuffle { origin, ttl, nodes } => {
                check_encode_len("shuffle nodes", nodes.len(), MAX_SHUFFLE_NODES)?;
                encode_payload(&wire::Shuffle {
                    origin: *origin.as_bytes(),
                    ttl: *ttl,
                    nodes: raw_keys(nodes),
                })
            }
            Self::ShuffleReply { nodes } => {
                check_encode_len("shuffle nodes", nodes.len(), MAX_SHUFFLE_NODES)?;
                encode_payload(&raw_keys(nodes))
            }
            Self::Gossip { hops, envelope } | Self::Response { hops, envelope } => {
                let envelope = envelope.encode().map_err(EncodeError::Envelope)?;
                encode_payload(&wire::Carried {
                    hops: *hops,
                    envelope: &envelope,
                })
            }
            Self::IHave { topic, entries } => {
                check_encode_len("ihave entries", entries.len(), MAX_IHAVE_ENTRIES)?;
                encode_payload(&wire::IHave {
                    topic: topic.as_str(),
                    entries: entries.iter().map(|e| (e.id.0, e.hops)).collect(),
                })
            }
            Self::Graft { topic, ids } => {
                check_encode_len("graft ids", ids.len(), MAX_GRAFT_IDS)?;
                encode_payload(&wire::TopicIds {
                    topic: topic.as_str(),
                    ids: raw_ids(ids),
                })
            }
            Self::Prune { topic } => encode_payload(topic.as_str()),
            Self::Digest { respond, ids } => {
                check_encode_len("digest ids", ids.len(), MAX_DIGEST_IDS)?;
                encode_payload(&wire::Digest {
                    respond: *respond,
                    ids: raw_ids(ids),
                })
            }
            Self::Request { ids } => {
                check_encode_len("request ids", ids.len(), MAX_REQUEST_IDS)?;
                encode_payload(&raw_ids(ids))
            }
        };
        body.map_err(EncodeError::Body)
    }

    /// Decodes the body of a message of type `kind`: strictly (exact length, canonical
    /// varints), with every node id, topic, envelope and list length validated. Safe on
    /// arbitrary bytes; signatures are *not* checked here.
    ///
    /// # Errors
    /// [`DecodeError::NotGossip`] or [`DecodeError::UnknownKind`] for the type number, else
    /// the first problem found in the body.
    pub fn decode_body(kind: u16, body: &[u8]) -> Result<Self, DecodeError> {
        if Subsystem::of(kind) != Some(Subsystem::Gossip) {
            return Err(DecodeError::NotGossip(kind));
        }
        let malformed = |error| DecodeError::Body { kind, error };
        let message = match kind {
            Self::KIND_JOIN => {
                decode_payload::<()>(body).map_err(malformed)?;
                Self::Join
            }
            Self::KIND_KEEP_ALIVE => {
                decode_payload::<()>(body).map_err(malformed)?;
                Self::KeepAlive
            }
            Self::KIND_FORWARD_JOIN => {
                let w: wire::ForwardJoin = decode_payload(body).map_err(malformed)?;
                Self::ForwardJoin {
                    joiner: NodeId::from_bytes(&w.joiner).map_err(DecodeError::NodeId)?,
                    ttl: w.ttl,
                }
            }
            Self::KIND_NEIGHBOR => Self::Neighbor {
                high_priority: decode_payload(body).map_err(malformed)?,
            },
            Self::KIND_NEIGHBOR_REPLY => Self::NeighborReply {
                accepted: decode_payload(body).map_err(malformed)?,
            },
            Self::KIND_DISCONNECT => Self::Disconnect {
                alive: decode_payload(body).map_err(malformed)?,
            },
            Self::KIND_SHUFFLE => {
                let w: wire::Shuffle = decode_payload(body).map_err(malformed)?;
                // Count before validating: each key costs a curve-point decompression.
                check_len("shuffle nodes", w.nodes.len(), MAX_SHUFFLE_NODES)?;
                Self::Shuffle {
                    origin: NodeId::from_bytes(&w.origin).map_err(DecodeError::NodeId)?,
                    ttl: w.ttl,
                    nodes: node_ids(&w.nodes)?,
                }
            }
            Self::KIND_SHUFFLE_REPLY => {
                let keys: Vec<wire::Key> = decode_payload(body).map_err(malformed)?;
                check_len("shuffle nodes", keys.len(), MAX_SHUFFLE_NODES)?;
                Self::ShuffleReply {
                    nodes: node_ids(&keys)?,
                }
            }
            Self::KIND_GOSSIP | Self::KIND_RESPONSE => {
                let w: wire::Carried<'_> = decode_payload(body).map_err(malformed)?;
                let envelope = SignedEnvelope::decode(w.envelope).map_err(DecodeError::Envelope)?;
                if kind == Self::KIND_GOSSIP {
                    Self::Gossip {
                        hops: w.hops,
                        envelope,
                    }
                } else {
                    Self::Response {
                        hops: w.hops,
                        envelope,
                    }
                }
            }
            Self::KIND_IHAVE => {
                let w: wire::IHave<'_> = decode_payload(body).map_err(malformed)?;
                check_len("ihave entries", w.entries.len(), MAX_IHAVE_ENTRIES)?;
                Self::IHave {
                    topic: Topic::new(w.topic).map_err(DecodeError::Topic)?,
                    entries: w
                        .entries
                        .into_iter()
                        .map(|(id, hops)| IHaveEntry {
                            id: MessageId(id),
                            hops,
                        })
                        .collect(),
                }
            }
            Self::KIND_GRAFT => {
                let w: wire::TopicIds<'_> = decode_payload(body).map_err(malformed)?;
                check_len("graft ids", w.ids.len(), MAX_GRAFT_IDS)?;
                Self::Graft {
                    topic: Topic::new(w.topic).map_err(DecodeError::Topic)?,
                    ids: message_ids(w.ids),
                }
            }
            Self::KIND_PRUNE => {
                let topic: &str = decode_payload(body).map_err(malformed)?;
                Self::Prune {
                    topic: Topic::new(topic).map_err(DecodeError::Topic)?,
                }
            }
            Self::KIND_DIGEST => {
                let w: wire::Digest = decode_payload(body).map_err(malformed)?;
                check_len("digest ids", w.ids.len(), MAX_DIGEST_IDS)?;
                Self::Digest {
                    respond: w.respond,
                    ids: message_ids(w.ids),
                }
            }
            Self::KIND_REQUEST => {
                let ids: Vec<wire::Id> = decode_payload(body).map_err(malformed)?;
                check_len("request ids", ids.len(), MAX_REQUEST_IDS)?;
                Self::Request {
                    ids: message_ids(ids),
                }
            }
            other => return Err(DecodeError::UnknownKind(other)),
        };
        Ok(message)
    }

    /// The wire message carrying this gossip message:
    /// [`Message::Protocol`]`{ kind: self.kind(), payload: body }`.
    ///
    /// # Errors
    /// As [`encode_body`](Self::encode_body).
    pub fn to_wire(&self) -> Result<Message, EncodeError> {
        Ok(Message::Protocol {
            kind: self.kind(),
            payload: Bytes::from(self.encode_body()?),
        })
    }

    /// The gossip message inside a wire message.
    ///
    /// # Errors
    /// [`DecodeError::NotGossip`] if `message` is not a [`Message::Protocol`] in the gossip
    /// range, else as [`decode_body`](Self::decode_body).
    pub fn from_wire(message: &Message) -> Result<Self, DecodeError> {
        match message {
            Message::Protocol { kind, payload } => Self::decode_body(*kind, payload),
            other => Err(DecodeError::NotGossip(other.type_number())),
        }
    }

    /// An estimate of the encoded size in bytes, for queue accounting (exact for the
    /// fixed-size messages, within a few bytes for the others); cheaper than encoding.
    #[must_use]
    pub fn approx_len(&self) -> usize {
        const HEADER: usize = 3;
        HEADER
            + match self {
                Self::Join | Self::KeepAlive => 0,
                Self::ForwardJoin { .. } => PUBLIC_KEY_LEN + 1,
                Self::Neighbor { .. } | Self::NeighborReply { .. } | Self::Disconnect { .. } => 1,
                Self::Shuffle { nodes, .. } => PUBLIC_KEY_LEN + 2 + nodes.len() * PUBLIC_KEY_LEN,
                Self::ShuffleReply { nodes } => 1 + nodes.len() * PUBLIC_KEY_LEN,
                Self::Gossip { envelope, .. } | Self::Response { envelope, .. } => {
                    envelope_len(envelope) + 6
                }
                Self::IHave { topic, entries } => {
                    topic.as_str().len() + 3 + entries.len() * (MESSAGE_ID_LEN + 2)
                }
                Self::Graft { topic, ids } => topic.as_str().len() + 3 + ids.len() * MESSAGE_ID_LEN,
                Self::Prune { topic } => topic.as_str().len() + 1,
                Self::Digest { ids, .. } => 3 + ids.len() * MESSAGE_ID_LEN,
                Self::Request { ids } => 2 + ids.len() * MESSAGE_ID_LEN,
            }
    }
}

/// Upper bound of an envelope's encoding: version, origin, two varints of at most 10 bytes,
/// two length prefixes of at most 3 bytes (topic, payload below 2^21), signature.
pub(crate) fn envelope_len(envelope: &SignedEnvelope) -> usize {
    1 + PUBLIC_KEY_LEN + 10 + 10 + 3 + envelope.topic().len() + 3 + envelope.payload().len() + 64
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_crypto::SigningKey;

    fn node(seed: u8) -> NodeId {
        SigningKey::from_bytes(&[seed; 32]).verifying_key().into()
    }

    fn envelope() -> SignedEnvelope {
        SignedEnvelope::sign(
            &SigningKey::from_bytes(&[9; 32]),
            "t",
            1_700_000_000_000,
            5,
            &b"payload"[..],
        )
        .unwrap()
    }

    pub(crate) fn every_variant() -> Vec<GossipMessage> {
        let topic = Topic::new("dawn/test").unwrap();
        let id = MessageId::of(&envelope());
        vec![
            GossipMessage::Join,
            GossipMessage::ForwardJoin {
                joiner: node(1),
                ttl: 6,
            },
            GossipMessage::Neighbor {
                high_priority: true,
            },
            GossipMessage::NeighborReply { accepted: false },
            GossipMessage::Disconnect { alive: true },
            GossipMessage::Shuffle {
                origin: node(2),
                ttl: 5,
                nodes: vec![node(2), node(3)],
            },
            GossipMessage::ShuffleReply {
                nodes: vec![node(4)],
            },
            GossipMessage::KeepAlive,
            GossipMessage::Gossip {
                hops: 3,
                envelope: envelope(),
            },
            GossipMessage::IHave {
                topic: topic.clone(),
                entries: vec![IHaveEntry { id, hops: 300 }],
            },
            GossipMessage::Graft {
                topic: topic.clone(),
                ids: vec![id],
            },
            GossipMessage::Prune { topic },
            GossipMessage::Digest {
                respond: true,
                ids: vec![id, id],
            },
            GossipMessage::Request { ids: vec![id] },
            GossipMessage::Response {
                hops: 0,
                envelope: envelope(),
            },
        ]
    }

    #[test]
    fn every_variant_round_trips_through_the_wire_message() {
        let variants = every_variant();
        let kinds: Vec<u16> = variants.iter().map(GossipMessage::kind).collect();
        assert_eq!(kinds, GossipMessage::KINDS);
        for message in variants {
            let wire = message.to_wire().unwrap();
            let bytes = wire.encode().unwrap();
            let back = Message::decode(&bytes).unwrap();
            assert_eq!(GossipMessage::from_wire(&back).unwrap(), message);
            let body = message.encode_body().unwrap();
            assert!(
                message.approx_len() + 8 >= body.len() + 3,
                "{message:?}: estimate {} for {} bytes",
                message.approx_len(),
                body.len() + 3
            );
        }
    }

    #[test]
    fn kinds_are_in_the_gossip_range() {
        for kind in GossipMessage::KINDS {
            assert_eq!(Subsystem::of(kind), Some(Subsystem::Gossip));
        }
    }

    #[test]
    fn wrong_kinds_are_refused() {
        assert_eq!(
            GossipMessage::decode_body(0x0002, &[]),
            Err(DecodeError::NotGossip(0x0002))
        );
        assert_eq!(
            GossipMessage::decode_body(0x01ff, &[]),
            Err(DecodeError::UnknownKind(0x01ff))
        );
        assert_eq!(
            GossipMessage::from_wire(&Message::Ping(dawn_wire::Ping { nonce: 1 })),
            Err(DecodeError::NotGossip(0x0002))
        );
    }

    #[test]
    fn bodies_are_strict() {
        // Trailing byte after an empty body.
        assert!(matches!(
            GossipMessage::decode_body(GossipMessage::KIND_JOIN, &[0]),
            Err(DecodeError::Body { .. })
        ));
        // A bool must be 0 or 1.
        assert!(matches!(
            GossipMessage::decode_body(GossipMessage::KIND_NEIGHBOR, &[2]),
            Err(DecodeError::Body { .. })
        ));
        // Over-long varint for the hop count (3 as 0x83 0x00).
        let good = GossipMessage::Gossip {
            hops: 3,
            envelope: envelope(),
        }
        .encode_body()
        .unwrap();
        let mut bad = vec![0x83, 0x00];
        bad.extend_from_slice(&good[1..]);
        assert!(matches!(
            GossipMessage::decode_body(GossipMessage::KIND_GOSSIP, &bad),
            Err(DecodeError::Body {
                error: PayloadError::NonCanonical,
                ..
            })
        ));
    }

    #[test]
    fn list_limits_hold_both_ways() {
        let too_many = GossipMessage::Request {
            ids: vec![MessageId([0; 32]); MAX_REQUEST_IDS + 1],
        };
        assert!(matches!(
            too_many.encode_body(),
            Err(EncodeError::TooMany { .. })
        ));
        let body = encode_payload(&vec![[0u8; 32]; MAX_REQUEST_IDS + 1]).unwrap();
        assert!(matches!(
            GossipMessage::decode_body(GossipMessage::KIND_REQUEST, &body),
            Err(DecodeError::TooMany { .. })
        ));
        let keys = encode_payload(&vec![*node(1).as_bytes(); MAX_SHUFFLE_NODES + 1]).unwrap();
        assert!(matches!(
            GossipMessage::decode_body(GossipMessage::KIND_SHUFFLE_REPLY, &keys),
            Err(DecodeError::TooMany { .. })
        ));
    }

    #[test]
    fn invalid_node_ids_and_topics_are_refused() {
        let mut small_order = [0u8; 32];
        small_order[0] = 1;
        let body = encode_payload(&wire::ForwardJoin {
            joiner: small_order,
            ttl: 1,
        })
        .unwrap();
        assert!(matches!(
            GossipMessage::decode_body(GossipMessage::KIND_FORWARD_JOIN, &body),
            Err(DecodeError::NodeId(_))
        ));
        let body = encode_payload("bad topic").unwrap();
        assert!(matches!(
            GossipMessage::decode_body(GossipMessage::KIND_PRUNE, &body),
            Err(DecodeError::Topic(TopicError::Characters))
        ));
        let body = encode_payload("").unwrap();
        assert!(matches!(
            GossipMessage::decode_body(GossipMessage::KIND_PRUNE, &body),
            Err(DecodeError::Topic(TopicError::Length { len: 0 }))
        ));
    }

    #[test]
    fn message_id_names_the_exact_envelope() {
        let a = envelope();
        let b = SignedEnvelope::sign(
            &SigningKey::from_bytes(&[9; 32]),
            "t",
            1_700_000_000_000,
            5,
            &b"payloae"[..],
        )
        .unwrap();
        assert_eq!(MessageId::of(&a), MessageId::of(&a.clone()));
        assert_ne!(MessageId::of(&a), MessageId::of(&b));
        assert_eq!(MessageId::of(&a).to_string().len(), 64);
    }
}
