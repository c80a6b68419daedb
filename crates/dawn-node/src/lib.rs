//! The Dawn node, layer 5 of the workspace: identity, store, transport and gossip composed into
//! a running node, with its configuration and HTTP API.
//!
//! - [`NodeBuilder`] configures a node (data directory, QUIC and HTTP addresses, bootstrap
//!   peers, key passphrase) and [`NodeBuilder::start`] runs it; [`Node`] reports its
//!   [`status`](Node::status) and [`peers`](Node::peers), [`connect`](Node::connect)s to more
//!   and [`shutdown`](Node::shutdown)s gracefully.
//! - The **identity** is created on first start in the data directory (`node.key`), encrypted
//!   with a passphrase when one is given; without one it is stored unencrypted (development
//!   mode) with a loud warning. An encrypted key without its passphrase is an error
//!   ([`NodeError::PassphraseRequired`]), never a new identity.
//! - **Peers**: bootstrap peers are dialled at start and kept connected, redialled with
//!   full-jitter exponential backoff (up to 250 ms doubling to 30 s) within a node-wide retry
//!   budget, behind a circuit breaker per peer. Every peer seen, in either direction, is
//!   recorded in the store (`dawn.db`: addresses, first and last seen, failed dials) and
//!   redialled after a restart.
//! - **Trust and audit** (`docs/security.md`): a trust level and score per peer
//!   ([`Node::trust`]), a permission [`Policy`] (`[policy]`, or [`Node::set_policy`] at run
//!   time) that refuses Untrusted peers during the QUIC handshake and keeps unknown peers away
//!   from tools; gossip misbehaviour and floods over the per-peer rate limit are trust
//!   penalties, and a peer that falls to Untrusted is disconnected. Every decision goes into a
//!   signed, hash-chained audit log in the store ([`Node::audit_entries`],
//!   [`verify_audit_log`]); trust records are sealed at rest with a key derived from the node
//!   key. [`backup`] and [`restore`] copy the database.
//! - **LAN discovery** over mDNS ([`NodeBuilder::mdns`]): the node advertises itself as
//!   [`DEFAULT_MDNS_SERVICE`] (`_dawn._udp.local.`, its [`NodeId`] and protocol version in the
//!   TXT record) and dials the Dawn nodes it finds; the QUIC handshake proves each id, and only
//!   a connection that comes up reaches the peer table. Bounded ([`MAX_DISCOVERED_PEERS`],
//!   [`MDNS_DIALS_PER_SECOND`]), goodbye packets on shutdown, counters in
//!   [`Node::mdns_stats`]. On by default in [`Config`] (`[discovery] mdns`), **off** in
//!   [`NodeBuilder::new`] so that embedded and test nodes send no multicast; never run on a
//!   loopback QUIC address. Turn it off with `mdns = false` or `DAWN_DISCOVERY_MDNS=false`.
//! - **Gossip**: a gossip actor drives the sans-IO [`dawn_gossip`] core (HyParView membership,
//!   Plumtree broadcast) over the transport, on one long-lived [`GOSSIP_PROTOCOL`] stream per
//!   peer and direction with bounded send queues; membership messages are preceded by address
//!   hints so that peers learned by id can be dialled. [`Node::subscribe`] and
//!   [`Node::broadcast`] are the application API; [`simulate`] runs many nodes in one process.
//! - **HTTP** (axum, `127.0.0.1:7601` by default): `GET /healthz` and `GET /readyz`
//!   ([`HealthReport`], [`Readiness`]), the admin API (`/api/trust`, `/api/policy`,
//!   `/api/audit`; loopback-only unless an [`AdminToken`] is set), `GET /api/status`
//!   ([`NodeStatus`]), `GET /api/peers` ([`PeerList`], with the gossip views),
//!   `POST /api/gossip/{topic}` (broadcast), `GET /api/gossip/{topic}` ([`RecentDeliveries`]),
//!   a self-contained status page at `GET /status`, and the web UI at `GET /` (agents,
//!   chat, tools and the network, live over server-sent events at `GET /api/events`). Errors
//!   are JSON ([`ApiError`]); only loopback `Host` names are answered when bound to loopback.
//! - **Chat**: mesh chat rooms over gossip topics `dawn/chat/<room>` ([`ChatMessage`]):
//!   `GET`/`POST /api/chat/{room}`, `POST /api/chat/{room}/typing`, with delivery receipts and
//!   bounded history saved in the data directory.
//! - **Configuration** ([`Config`]): a TOML file with `DAWN_*` environment overrides, every
//!   error naming its key; [`Config::default_toml`] is the commented default.
//! - **Observability**: `GET /metrics` renders the node's Prometheus metrics (OpenMetrics
//!   text, [`METRICS_CONTENT_TYPE`]): peers, connections and gossip read from the node's own
//!   counters at each scrape, the rest recorded through the [`Metrics`] handle
//!   ([`Node::metrics`]). A request that crosses nodes runs inside [`RequestId::span`] on both
//!   ends (`dawn.node.request`, field `dawn.req_id`), so both nodes' logs carry its id
//!   (`docs/runbook.md`).
//!
//! Internally the node is a set of tasks owned by the [`Node`] under one cancellation token:
//! the transport event follower, one dialler per kept peer, the HTTP server and a store
//! writer that batches SQLite writes on a blocking thread, and with discovery on, the mDNS
//! task. Spans are named `dawn.node.*` (`dawn.node.dial`, `dawn.node.events`,
//! `dawn.node.store`, `dawn.node.http`, `dawn.node.mdns`) with short peer ids.
//!
//! # Example
//!
//! Two nodes on loopback, the second bootstrapping from the first:
//!
//! ```
//! use std::time::Duration;
//! use dawn_node::{BootstrapPeer, NodeBuilder};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
//! let loopback = "127.0.0.1:0".parse()?;
//! let a = NodeBuilder::new()
//!     .data_dir(dir_a.path())
//!     .listen(loopback)
//!     .http(Some(loopback))
//!     .development_mode(true)
//!     .start()
//!     .await?;
//! let b = NodeBuilder::new()
//!     .data_dir(dir_b.path())
//!     .listen(loopback)
//!     .http(None)
//!     .development_mode(true)
//!     .bootstrap([BootstrapPeer::new(a.node_id(), a.quic_addr())])
//!     .start()
//!     .await?;
//!
//! while a.status().peer_count == 0 {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//! }
//! assert_eq!(a.peers()[0].node_id, b.node_id());
//!
//! // Gossip: b listens on a topic, a broadcasts once they are neighbours.
//! let mut deliveries = b.subscribe("dawn/example").await?;
//! while a.gossip_views().0.is_empty() {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//! }
//! a.broadcast("dawn/example", &b"hello"[..]).await?;
//! let delivery = deliveries.recv().await.ok_or("node stopped")?;
//! assert_eq!(&delivery.payload[..], b"hello");
//! assert_eq!(delivery.origin, a.node_id());
//!
//! b.shutdown().await?;
//! a.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # Status
//!
//! Peering, persistence, gossip and the HTTP API as above. The JSON field names of the HTTP
//! API are stable; fields are only ever added.

mod admin;
mod agents;
mod api;
mod chat;
mod config;
mod error;
mod events;
mod gateway;
mod gossip;
mod http;
mod identity;
mod mdns;
mod metrics;
mod node;
mod offline;
mod peers;
mod security;
mod simulate;
mod trace;
mod ui;

pub use crate::agents::{AgentError, Directory, DirectoryAgentInfo, DirectoryNode};
pub use crate::api::{
    ApiError, ApiErrorBody, BroadcastReceipt, Direction, NodeStatus, PeerInfo, PeerList,
    RecentDeliveries,
};
pub use crate::chat::{
    CHAT_HISTORY, CHAT_TOPIC_PREFIX, ChatHistory, ChatMessage, ChatRoomInfo, ChatRooms,
    DEFAULT_ROOM, MAX_NICK_CHARS, MAX_PAYLOAD_LEN, MAX_ROOM_LEN, MAX_ROOMS, MAX_TEXT_BYTES,
};
pub use crate::config::{
    BootstrapPeer, BootstrapPeerError, Config, ConfigError, DEFAULT_HTTP, DEFAULT_LISTEN,
    DiscoveryConfig, ENV_OVERRIDES, HttpConfig, IdentityConfig, LogConfig, LogFormat,
    MAX_BOOTSTRAP_PEERS, MAX_CONFIG_LEN, NodeConfig, default_config_path, default_data_dir,
};
pub use crate::config::{MAX_OTLP_ENDPOINT_LEN, TelemetryConfig};
pub use crate::error::NodeError;
pub use crate::gossip::{
    Delivery, GOSSIP_PROTOCOL, GossipError, GossipStats, INBOUND_BYTES, MAX_HINT_ADDRS,
    MAX_HINT_PEERS, MAX_LEARNED_PEERS, RECENT_DELIVERIES, SEND_QUEUE_BYTES, SEND_QUEUE_FRAMES,
    SUBSCRIBER_QUEUE, Subscription, View,
};
pub use crate::identity::{KEY_FILE_NAME, KeyState, inspect_key, key_path, read_passphrase_file};
pub use crate::mdns::{
    DEFAULT_MDNS_SERVICE, MAX_DISCOVERED_PEERS, MDNS_CONCURRENT_DIALS, MDNS_DIAL_DEFER,
    MDNS_DIAL_TIMEOUT, MDNS_DIALS_PER_SECOND, MDNS_MAX_ADDRS, MdnsAdvertError, MdnsService,
    MdnsServiceError, MdnsStats,
};
pub use crate::metrics::{CallOutcome, METRICS_CONTENT_TYPE, MessageKind, Metrics, MetricsError};
pub use crate::node::{DB_FILE_NAME, LOCK_FILE_NAME, Node, NodeBuilder};
pub use crate::offline::{
    AuditVerification, OfflineError, backup, export_audit_log, restore, verify_audit_log,
};
pub use crate::security::{
    AdminConfig, AdminToken, AdminTokenError, AuditPage, Denied, MAX_ADMIN_TOKEN_LEN,
    MAX_AUDIT_PAGE, MIN_ADMIN_TOKEN_LEN, PeerTrust, PolicyView, Readiness, SecurityError,
    TrustList, TrustUpdate,
};
pub use crate::simulate::{
    MAX_SIMULATION_NODES, MessageReport, SimulationOptions, SimulationReport, simulate,
};
pub use crate::trace::{REQUEST_ID_FIELD, REQUEST_SPAN, RequestId, RequestIdError};
pub use dawn_gossip::{Config as GossipConfig, MessageId, Topic};
pub use dawn_identity::{AgentAddr, AgentId, NodeId, Passphrase};
pub use dawn_mcp::{Agent, AgentClient, CallError};
pub use dawn_resilience::{HealthReport, ResilienceConfig};
pub use dawn_transport::TransportConfig;
pub use dawn_trust::{
    Assignment, AuditEntry, AuditKind, Permission, Policy, PolicyConfig, TrustConfig, TrustLevel,
};
