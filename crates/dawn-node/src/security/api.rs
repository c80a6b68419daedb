//! The JSON documents of the admin API (`/api/trust`, `/api/policy`, `/api/audit`). Field
//! names are stable; fields are only ever added.

use dawn_identity::NodeId;
use dawn_resilience::BreakerState;
use dawn_trust::{Assignment, PolicyConfig, TrustLevel};
use serde::{Deserialize, Serialize};

/// One peer's standing, as `GET /api/trust` lists it and `PUT /api/trust/{node_id}` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PeerTrust {
    /// The peer.
    pub node_id: NodeId,
    /// Its trust level now.
    pub level: TrustLevel,
    /// Its score in `[0, 1]` (0.5 for a peer nothing is known about), recommendations
    /// included.
    pub score: f64,
    /// The level the operator assigned (`trusted`, `bootstrap`, `untrusted`), if any.
    pub assigned: Option<Assignment>,
    /// Whether the peer is connected now.
    pub connected: bool,
    /// The state of the circuit breaker in front of dials to the peer: `closed`, `open`
    /// (dials refused for a while after repeated failures) or `half_open` (one trial dial).
    pub breaker: BreakerState,
}

/// `GET /api/trust`: every peer the node tracks or knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrustList {
    /// The peers, by node id.
    pub peers: Vec<PeerTrust>,
    /// Inbound gossip frames dropped so far because a peer exceeded its rate limit
    /// (`resilience.rate_limit`).
    pub gossip_frames_dropped: u64,
    /// Requests to this node's agents refused so far because a peer exceeded its request
    /// limit (`resilience.call_limit`).
    #[serde(default)]
    pub agent_requests_dropped: u64,
}

/// The body of `PUT /api/trust/{node_id}`.
///
/// `level` is `trusted`, `bootstrap` or `untrusted` to assign that level, or `unknown` to
/// remove the operator's assignment (the peer's level then follows its score). `verified` is
/// earned by behaviour and cannot be assigned. `reset: true` also forgives the peer: its score
/// goes back to the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TrustUpdate {
    /// The level to assign, or `unknown` to remove the assignment.
    pub level: TrustLevel,
    /// Reset the peer's score to the baseline as well.
    #[serde(default)]
    pub reset: bool,
}

impl TrustUpdate {
    /// An update assigning `level`.
    #[must_use]
    pub const fn new(level: TrustLevel) -> Self {
        Self {
            level,
            reset: false,
        }
    }
}

/// `GET /api/policy` (and the answer of `PUT /api/policy`): the policy in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PolicyView {
    /// The policy, in its configuration form (`levels`, `deny`, `allow`); `PUT /api/policy`
    /// takes the same document.
    pub policy: PolicyConfig,
    /// SHA-256 fingerprint of the policy (64 hex digits), as audit entries name it.
    pub fingerprint: String,
    /// Where it comes from: `config` (the config file or the built-in default) or `api` (set
    /// with `PUT /api/policy`, kept across restarts until the config file's policy changes).
    pub source: String,
}

/// `GET /api/audit?after=SEQ&limit=N`: audit entries in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditPage {
    /// The entries, as the JSON objects of `dawn audit export` (`seq`, `timestamp_ms`,
    /// `kind`, `peer`, `agent`, `tool`, `details`, `prev_hash`, `signature`).
    pub entries: Vec<serde_json::Value>,
    /// The `seq` the next entry of the log will get.
    pub next_seq: u64,
}
