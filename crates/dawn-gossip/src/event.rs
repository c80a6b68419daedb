//! What the core hands back to its driver: transmits, events and counters.

use bytes::Bytes;
use dawn_identity::NodeId;

use crate::message::{GossipMessage, MessageId, Topic};

/// A message for the driver to send.
///
/// `to` may be a peer the node has no connection with (a join contact, a passive peer asked
/// to become a neighbour, the origin of a shuffle): **a transmit to an unconnected peer means
/// "dial it"**. The core never emits a separate dial event; a driver that cannot reach `to`
/// drops the message and may call [`Gossip::peer_down`](crate::Gossip::peer_down), and the
/// core's own timeouts cover the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The peer to send to.
    pub to: NodeId,
    /// What to send; [`GossipMessage::to_wire`] gives the wire message.
    pub message: GossipMessage,
}

/// Something the application or the node should know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A broadcast message on a subscribed topic arrived for the first time (its signature
    /// verified and the replay window accepted it). The node's own broadcasts are not
    /// delivered back to it.
    Delivered {
        /// The topic.
        topic: Topic,
        /// The node that signed it.
        origin: NodeId,
        /// Its id.
        message_id: MessageId,
        /// The payload.
        payload: Bytes,
        /// Links it travelled from the origin to this node.
        hops: u16,
        /// The origin's clock when it signed, in milliseconds since the Unix epoch.
        timestamp_ms: u64,
    },
    /// A peer joined the active view: the node should keep a connection to it.
    NeighborUp(NodeId),
    /// A peer left the active view: the node may close the connection unless something else
    /// uses it.
    NeighborDown(NodeId),
    /// A peer sent something no honest peer sends. The node turns these into trust
    /// penalties; the core has already dropped the offending message.
    Misbehaviour {
        /// The peer that sent it (not necessarily the origin of a forwarded envelope).
        peer: NodeId,
        /// What it did.
        kind: MisbehaviourKind,
    },
}

/// What a misbehaving peer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MisbehaviourKind {
    /// Bytes that are not a valid gossip message (undecodable, non-canonical, lists over the
    /// protocol limits, invalid node ids or topics, a malformed envelope).
    Malformed,
    /// A broadcast envelope whose signature does not verify.
    InvalidSignature,
    /// An envelope the replay window has already accepted (same origin and sequence), pushed
    /// as new: a replay, or an origin that signed two messages with one sequence number.
    /// Envelopes sent in answer to this node's own grafts and requests are dropped silently
    /// instead.
    Replay,
    /// An envelope older than the replay window (or than what the window forgot).
    Stale,
    /// An envelope dated further in the future than the allowed clock skew. May be clock
    /// trouble rather than malice; weigh it lightly.
    Future,
    /// More messages than the inbound rate allows; the excess was dropped. Reported at most
    /// once per second per peer.
    Flooding,
}

/// Counters since the core started. All saturate rather than wrap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages accepted by [`handle_message`](crate::Gossip::handle_message) (after rate
    /// limiting).
    pub messages_received: u64,
    /// Payload-carrying messages (`Gossip`, `Response`) received, duplicates included.
    pub payloads_received: u64,
    /// Payload-carrying messages received that were already known.
    pub duplicates: u64,
    /// Messages delivered to the application.
    pub delivered: u64,
    /// Messages broadcast by this node.
    pub broadcasts: u64,
    /// Payload-carrying messages queued for sending.
    pub payloads_sent: u64,
    /// `IHave` messages sent.
    pub ihaves_sent: u64,
    /// `Graft` messages sent.
    pub grafts_sent: u64,
    /// `Prune` messages sent.
    pub prunes_sent: u64,
    /// `Request` messages sent (anti-entropy).
    pub requests_sent: u64,
    /// Misbehaviour events raised (including those dropped from a full event queue).
    pub misbehaviours: u64,
    /// Messages dropped by the inbound rate limit.
    pub rate_limited: u64,
    /// Transmits dropped because a send queue was full.
    pub transmits_dropped: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
    /// `IHave` entries dropped because a peer's lazy queue was full.
    pub lazy_dropped: u64,
    /// Announcements ignored because the missing-message table was full.
    pub announcements_dropped: u64,
    /// Neighbours declared failed (timeout or `peer_down`).
    pub neighbor_failures: u64,
}

/// How full every bounded structure of the core is right now: each is at most the
/// corresponding [`Limits`](crate::Limits) value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sizes {
    /// Active view.
    pub active: usize,
    /// Passive view.
    pub passive: usize,
    /// Outstanding join and neighbour requests.
    pub pending: usize,
    /// Failed neighbours awaiting a retry.
    pub lost: usize,
    /// Remembered message ids.
    pub seen: usize,
    /// Cached messages.
    pub cached: usize,
    /// Bytes of cached messages.
    pub cached_bytes: usize,
    /// Announced messages awaiting their eager copy.
    pub missing: usize,
    /// Requests remembered (answered ones too, until their timeout), bounded by
    /// `Limits::requested_capacity`.
    pub requested: usize,
    /// Topics with state.
    pub topics: usize,
    /// Queued `IHave` entries, all peers together.
    pub lazy_entries: usize,
    /// Queued transmits.
    pub transmits: usize,
    /// Bytes of queued transmits (estimated).
    pub transmit_bytes: usize,
    /// Queued events.
    pub events: usize,
    /// Peers with an inbound rate bucket.
    pub rate_buckets: usize,
    /// Origins tracked by the replay guard.
    pub replay_origins: usize,
}
