//! Dawn's agent registry, layer 3 of the workspace: a directory of every node's agents that
//! every node replicates, as a sans-IO state machine.
//!
//! - **A CRDT with owners.** The directory is a delta-state, add-wins observed-remove map
//!   from [`NodeId`](dawn_identity::NodeId) to that node's [`AgentRecord`]s, built on dots
//!   and a causal context. Only a node changes its own entries: every change is covered by
//!   the owner's signature (a *manifest* listing its live dots and the hash of each entry),
//!   so a Byzantine peer can lie about nothing but itself, and any node can forward any
//!   owner's data. Merging is commutative, associative and idempotent; removals need no
//!   tombstones and are never lost, whatever the delivery order.
//! - **Deltas by broadcast.** Each local change is one small signed delta for the gossip
//!   layer to broadcast ([`Transmit::Broadcast`]); a delta about another node's agents is
//!   refused and reported ([`Event::Misbehaviour`]).
//! - **Anti-entropy by digests.** Peers reconcile with range-based set reconciliation over
//!   the owners: fingerprints of key ranges, split where they differ, so a node back from a
//!   partition exchanges bytes in proportion to what differs, not to the directory's size
//!   ([`Transmit::Send`]).
//! - **Expiry.** Owners re-sign their manifest periodically (a heartbeat); an owner silent
//!   for longer than the TTL has left for good and its agents disappear
//!   ([`Event::Expired`]).
//! - **Bounded.** Records, owners, agents per owner, total bytes and queues all have limits
//!   ([`RegistryConfig`], the `MAX_*` constants); malformed input gets a typed error and a
//!   misbehaviour event, never a panic.
//! - **Persistence.** [`Registry::export_state`] gives versioned bytes for the node's store;
//!   [`Registry::import_state`] checks every signature again on the way back.
//!
//! The core has no sockets, threads, clock or randomness of its own: the driver passes `now`
//! into every input, drains [`Registry::poll_transmit`] and [`Registry::poll_event`] after
//! each, and calls [`Registry::handle_timeout`] at [`Registry::poll_timeout`]. Broadcasts go
//! out on the gossip topic [`GOSSIP_TOPIC`] and come back in with the gossip origin as
//! `from`; reconciliation messages travel on the stream protocol [`STREAM_PROTOCOL`].
//!
//! [`fuzz_decode`] drives every decoder over arbitrary bytes for a fuzz target;
//! [`VerifyMemo`] lets the registries of one simulation share signature checks.
//!
//! # Example
//!
//! Two nodes, driven by hand (a real driver carries broadcasts over gossip and sends over
//! QUIC streams):
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! use dawn_crypto::SigningKey;
//! use dawn_registry::{AgentRecord, Registry, RegistryConfig, Transmit};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = Instant::now();
//! let unix_ms = 1_700_000_000_000;
//! let key_a = SigningKey::from_bytes(&[1; 32]);
//! let key_b = SigningKey::from_bytes(&[2; 32]);
//! let mut a = Registry::new(key_a, RegistryConfig::new(), 1, now, unix_ms)?;
//! let mut b = Registry::new(key_b, RegistryConfig::new(), 2, now, unix_ms)?;
//!
//! // a registers an agent; its delta is broadcast and b merges it.
//! a.upsert_local(now, AgentRecord::new("weather".parse()?, "Weather"))?;
//! while let Some(transmit) = a.poll_transmit() {
//!     if let Transmit::Broadcast { payload } = transmit {
//!         b.handle_message(now, *a.node_id(), &payload)?;
//!     }
//! }
//! let addr = format!("{}:weather", a.node_id()).parse()?;
//! assert_eq!(b.get(&addr).map(|r| r.name.as_str()), Some("Weather"));
//!
//! // b was away when a removed it; reconciliation brings b up to date.
//! a.remove_local(now, &"weather".parse()?)?;
//! while a.poll_transmit().is_some() {} // this broadcast is lost
//! b.peer_up(now, *a.node_id());
//! for _ in 0..4 {
//!     while let Some(Transmit::Send { payload, .. }) = b.poll_transmit() {
//!         a.handle_message(now, *b.node_id(), &payload)?;
//!     }
//!     while let Some(Transmit::Send { payload, .. }) = a.poll_transmit() {
//!         b.handle_message(now, *a.node_id(), &payload)?;
//!     }
//! }
//! assert!(b.get(&addr).is_none());
//! assert_eq!(a.state_digest(), b.state_digest());
//! # let _ = Duration::ZERO;
//! # Ok(()) }
//! ```
//!
//! # Status
//!
//! Message type numbers `0x0200..=0x0202` ([`MessageKind`]) and the state format
//! ([`STATE_FORMAT_VERSION`]) are pinned by golden files (`tests/golden/`); changing one is a
//! protocol change. The CRDT laws are property-tested, and a 1,000-node simulation with a
//! partition and a heal runs in the test suite. The crate's README has the design, the wire
//! format, the limits and measured figures.

mod config;
mod event;
mod fuzz;
mod manifest;
mod memo;
mod message;
mod reconcile;
mod record;
mod registry;
mod rng;
mod state;

pub use crate::config::{ConfigError, RegistryConfig};
pub use crate::event::{Event, GOSSIP_TOPIC, MisbehaviourKind, STREAM_PROTOCOL, Stats, Transmit};
pub use crate::fuzz::{FuzzFailure, fuzz_decode};
pub use crate::manifest::ManifestError;
pub use crate::memo::VerifyMemo;
pub use crate::message::{
    DecodeError, MAX_AGENTS_PER_OWNER, MAX_ITEMS, MAX_NEEDS, MAX_RANGES, MAX_UPDATES, MessageKind,
};
pub use crate::record::{
    AgentRecord, MAX_DESCRIPTION_LEN, MAX_NAME_LEN, MAX_RECORD_LEN, MAX_SUMMARIES,
    MAX_SUMMARY_DESCRIPTION_LEN, MAX_SUMMARY_NAME_LEN, MAX_URI_LEN, PromptSummary, RecordError,
    ResourceSummary, ToolSummary,
};
pub use crate::registry::{
    ImportReport, MAX_STATE_LEN, MessageError, Registry, RegistryError, STATE_FORMAT_VERSION,
    StateError,
};
