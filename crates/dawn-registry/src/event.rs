//! What the core hands back to its driver: transmits, events and counters.

use bytes::Bytes;
use dawn_identity::NodeId;

/// The gossip topic the node publishes [`Transmit::Broadcast`] payloads on, and delivers to
/// [`Registry::handle_message`](crate::Registry::handle_message) with the gossip origin as
/// `from`.
pub const GOSSIP_TOPIC: &str = "dawn/registry";

/// The stream protocol the node carries [`Transmit::Send`] payloads on, delivering each
/// received payload to [`Registry::handle_message`](crate::Registry::handle_message) with
/// the sending peer as `from`.
pub const STREAM_PROTOCOL: &str = "dawn/registry/1";

/// A message for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transmit {
    /// Publish `payload` to the whole mesh on [`GOSSIP_TOPIC`]. It is this node's own change
    /// (a delta signed by this node as the owner); receivers must be told the gossip origin
    /// as `from`, since a delta is only accepted from its owner.
    Broadcast {
        /// An encoded registry message.
        payload: Bytes,
    },
    /// Send `payload` to one peer over [`STREAM_PROTOCOL`] (reconciliation). The peer is one
    /// the driver reported with [`peer_up`](crate::Registry::peer_up), or the sender of the
    /// message being answered.
    Send {
        /// The peer.
        to: NodeId,
        /// An encoded registry message.
        payload: Bytes,
    },
}

impl Transmit {
    /// The encoded message.
    #[must_use]
    pub const fn payload(&self) -> &Bytes {
        match self {
            Self::Broadcast { payload } | Self::Send { payload, .. } => payload,
        }
    }
}

/// Something the node should know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The visible agents of `owner` changed (added, updated or removed; `owner` may be this
    /// node). Several changes of one owner between two polls give one event.
    Changed {
        /// The owner whose agents changed.
        owner: NodeId,
    },
    /// `owner`'s newest manifest is older than the owner TTL: the node left for good and
    /// its agents were dropped.
    Expired {
        /// The owner that expired.
        owner: NodeId,
    },
    /// A peer sent something no honest peer sends. The node turns these into trust
    /// penalties; the core has already dropped the offending data.
    Misbehaviour {
        /// The peer to blame: the sender of the message, or for what only an owner can sign
        /// (two manifests of one version, a future date, too many agents, an invalid
        /// record) the owner.
        peer: NodeId,
        /// What it did.
        kind: MisbehaviourKind,
    },
}

/// What a misbehaving peer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MisbehaviourKind {
    /// Bytes that are not a valid registry message (undecodable, over a bound, malformed
    /// manifest or ranges).
    Malformed,
    /// A manifest whose owner signature does not verify: a forgery, or corrupted data
    /// forwarded without checking.
    InvalidSignature,
    /// A delta about another node's agents: broadcast deltas must come from their owner.
    NotOwner,
    /// An entry that does not match the hash its accompanying manifest lists for it.
    InvalidEntry,
    /// The owner signed two different manifests with one version number (or a previous
    /// incarnation of the node did, having lost its state).
    Equivocation,
    /// The owner signed a manifest dated further in the future than the allowed clock skew.
    /// May be clock trouble rather than malice; weigh it lightly.
    Future,
    /// The owner's manifest lists more agents than this node allows.
    OverLimit,
    /// The owner signed a record that does not decode or breaks the record bounds.
    InvalidRecord,
}

/// Counters since the core started. All saturate rather than wrap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages given to [`handle_message`](crate::Registry::handle_message).
    pub messages_received: u64,
    /// Deltas broadcast by this node (its own changes and heartbeats).
    pub deltas_sent: u64,
    /// Reconciliations this node started.
    pub rounds_started: u64,
    /// Reconciliation messages sent (fingerprints, lists, requests).
    pub reconcile_messages_sent: u64,
    /// Bytes of reconciliation messages sent.
    pub reconcile_bytes_sent: u64,
    /// Update messages sent in reconciliation.
    pub update_messages_sent: u64,
    /// Bytes of update messages sent in reconciliation.
    pub update_bytes_sent: u64,
    /// Manifests whose signature was checked.
    pub signatures_verified: u64,
    /// Manifests adopted (new owners or newer versions).
    pub manifests_adopted: u64,
    /// Entries stored.
    pub entries_stored: u64,
    /// Manifests ignored because their owner had expired by this node's clock.
    pub expired_ignored: u64,
    /// Updates about new owners refused because the directory holds `max_owners`.
    pub refused_owners: u64,
    /// Entries not stored because the directory holds `max_total_bytes`.
    pub refused_entries: u64,
    /// Owners expired.
    pub expired: u64,
    /// Reconciliation messages ignored for going past `max_rounds`.
    pub rounds_exceeded: u64,
    /// Misbehaviour events raised (including those dropped from a full queue).
    pub misbehaviours: u64,
    /// Transmits dropped because the queue was full.
    pub transmits_dropped: u64,
    /// Events dropped because the queue was full.
    pub events_dropped: u64,
    /// Times this node found a manifest of its own, signed by an earlier incarnation, at or
    /// above its counter, and moved its counter past it.
    pub self_heals: u64,
}
