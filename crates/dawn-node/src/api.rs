//! The JSON documents of the HTTP API. Field names are stable: clients (the `dawn` CLI,
//! scripts) rely on them, so fields are only ever added.

use std::net::SocketAddr;

use dawn_identity::NodeId;
use dawn_trust::TrustLevel;
use serde::{Deserialize, Serialize};

use crate::gossip::{Delivery, GossipStats, View};
use dawn_gossip::MessageId;

/// `GET /api/status`: who this node is and how it is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeStatus {
    /// This node's identity (52 characters of base32).
    pub node_id: NodeId,
    /// The `dawn-node` version, e.g. `0.1.0`.
    pub version: String,
    /// Whole seconds since the node started.
    pub uptime_secs: u64,
    /// The QUIC addresses the node listens on (UDP), as bound (no port 0).
    pub listen_addrs: Vec<SocketAddr>,
    /// The HTTP API address, as bound; `None` when the node serves no HTTP.
    pub http_addr: Option<SocketAddr>,
    /// Peers with a live connection.
    pub peer_count: usize,
    /// Peers the node knows of, connected or not.
    pub known_peer_count: usize,
    /// The gossip driver's counters.
    #[serde(default)]
    pub gossip: GossipStats,
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Direction {
    /// The peer dialled us.
    Inbound,
    /// We dialled the peer.
    Outbound,
}

impl Direction {
    /// `"inbound"` or `"outbound"`, as in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// One entry of `GET /api/peers`: what this node knows about a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The peer's identity.
    pub node_id: NodeId,
    /// Addresses the peer was reached at or dialled from, most recent first.
    pub addresses: Vec<SocketAddr>,
    /// Whether a connection is up now.
    pub connected: bool,
    /// Who opened the current connection; `None` when not connected.
    pub direction: Option<Direction>,
    /// When the node first saw the peer (milliseconds since the Unix epoch).
    pub first_seen_unix_ms: u64,
    /// When the peer was last connected (milliseconds since the Unix epoch): now, while
    /// connected; `None` if it never was.
    pub last_seen_unix_ms: Option<u64>,
    /// Failed dials since the last successful connection.
    pub failures: u32,
    /// Whether the peer is in this node's bootstrap list (kept connected at all times).
    pub bootstrap: bool,
    /// The gossip view the peer is in (`"active"`: a neighbour; `"passive"`: a stand-by), or
    /// `None`.
    #[serde(default)]
    pub view: Option<View>,
    /// The peer's trust level on this node (`untrusted`, `unknown`, `verified`, `trusted`,
    /// `bootstrap`); `None` only from a node that does not report it.
    #[serde(default)]
    pub trust_level: Option<TrustLevel>,
    /// The peer's trust score in `[0, 1]`; `None` only from a node that does not report it.
    #[serde(default)]
    pub trust_score: Option<f64>,
}

/// `GET /api/peers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PeerList {
    /// Every known peer, connected ones first, then by node id.
    pub peers: Vec<PeerInfo>,
    /// The gossip active view: the node's neighbours.
    #[serde(default)]
    pub active_view: Vec<NodeId>,
    /// The gossip passive view.
    #[serde(default)]
    pub passive_view: Vec<NodeId>,
}

/// `POST /api/gossip/{topic}`: the broadcast message's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BroadcastReceipt {
    /// The topic.
    pub topic: String,
    /// The message id (64 hex digits in JSON).
    #[serde(with = "crate::gossip::message_id_serde")]
    pub message_id: MessageId,
}

/// `GET /api/gossip/{topic}`: recent deliveries, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecentDeliveries {
    /// The topic.
    pub topic: String,
    /// At most [`RECENT_DELIVERIES`](crate::RECENT_DELIVERIES) deliveries (all topics share
    /// the buffer).
    pub deliveries: Vec<Delivery>,
}

/// The body of every HTTP error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiError {
    /// What went wrong.
    pub error: ApiErrorBody,
}

/// The inside of [`ApiError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiErrorBody {
    /// A stable, machine-readable code: `not_found`, `method_not_allowed`,
    /// `payload_too_large`, `misdirected_request` or `internal`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
}

impl ApiError {
    /// An error with a code and message.
    #[must_use]
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ApiErrorBody {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}
