//! Dawn's gossip core, layer 3 of the workspace: HyParView membership and Plumtree broadcast
//! as a sans-IO state machine.
//!
//! - **Membership** ([HyParView]): a small *active view* of neighbours (5) that every
//!   broadcast travels over, and a larger *passive view* (30) to replace them from. Joins
//!   spread by random walks, passive views are refreshed by shuffles, failed neighbours are
//!   detected (keepalives, or the transport's [`Gossip::peer_down`]), replaced at once, and
//!   retried later so that an overlay split by a partition joins up again when it heals.
//!   Peer selection and eviction consult a [`PeerScore`] supplied by the node.
//! - **Broadcast** ([Plumtree]), per [`Topic`]: messages are pushed eagerly along a spanning
//!   tree and announced lazily (`IHave`) on the other links; a duplicate prunes a link from
//!   the tree, a missing message grafts one back. Every message is an origin-signed
//!   [`SignedEnvelope`](dawn_wire::SignedEnvelope), deduplicated by [`MessageId`], checked
//!   against a replay window, and forwarded at most [`BroadcastConfig::max_hops`] times.
//! - **Anti-entropy**: neighbours periodically exchange digests of recent message ids and
//!   fetch what they lack from each other's bounded caches, so a node that was away, or a
//!   half of a healed partition, catches up.
//! - **Bounded memory**: every queue, cache and map has a hard cap and an eviction rule
//!   ([`Limits`]); a flooding peer is rate-limited. Invalid signatures, replays, malformed
//!   messages and floods are dropped and reported as [`Event::Misbehaviour`], which the node
//!   turns into trust penalties.
//!
//! The core has no sockets, threads, clock or randomness of its own (like `quinn-proto`):
//! the driver passes `now` into every input, drains [`Gossip::poll_transmit`] and
//! [`Gossip::poll_event`] after each, and calls [`Gossip::handle_timeout`] at
//! [`Gossip::poll_timeout`]. Given the same seed and inputs it produces the same outputs.
//! Messages travel as [`dawn_wire::Message::Protocol`] with type numbers `0x0100..=0x0122`
//! ([`GossipMessage::to_wire`], [`GossipMessage::from_wire`]).
//!
//! [HyParView]: https://asc.di.fct.unl.pt/~jleitao/pdf/dsn07-leitao.pdf
//! [Plumtree]: https://asc.di.fct.unl.pt/~jleitao/pdf/srds07-leitao.pdf
//!
//! # Example
//!
//! Two nodes, driven by hand (a real driver moves [`Transmit`]s over QUIC):
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! use dawn_crypto::SigningKey;
//! use dawn_gossip::{Config, Event, Gossip, Topic};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let start = Instant::now();
//! let unix_ms = 1_700_000_000_000;
//! let mut a = Gossip::new(SigningKey::from_bytes(&[1; 32]), Config::new(), 1, start, unix_ms)?;
//! let mut b = Gossip::new(SigningKey::from_bytes(&[2; 32]), Config::new(), 2, start, unix_ms)?;
//! let topic = Topic::new("dawn/example")?;
//! b.subscribe(start, topic.clone())?;
//!
//! // b joins through a, then a broadcasts.
//! b.join(start, &[*a.node_id()]);
//! let mut now = start;
//! let mut delivered = Vec::new();
//! for round in 0..10 {
//!     if round == 3 {
//!         a.broadcast(now, &topic, &b"hello"[..])?;
//!     }
//!     now += Duration::from_millis(20);
//!     // Deliver everything in flight, both ways.
//!     while let Some(t) = a.poll_transmit() {
//!         b.handle_message(now, *a.node_id(), t.message);
//!     }
//!     while let Some(t) = b.poll_transmit() {
//!         a.handle_message(now, *b.node_id(), t.message);
//!     }
//!     while let Some(event) = b.poll_event() {
//!         if let Event::Delivered { payload, hops, .. } = event {
//!             delivered.push((payload, hops));
//!         }
//!     }
//!     while a.poll_event().is_some() {}
//! }
//! assert_eq!(delivered, [(bytes::Bytes::from_static(b"hello"), 1)]);
//! assert_eq!(a.active_view(), [*b.node_id()]);
//! # Ok(()) }
//! ```
//!
//! # Status
//!
//! Message type numbers and bodies are pinned by golden files (`tests/golden/`); changing one
//! is a protocol change. The crate's README has the byte layouts, the parameters and their
//! defaults, every limit with its eviction rule, and the measured figures.

mod config;
mod event;
mod gossip;
mod message;
mod rng;
mod score;

pub use crate::config::{BroadcastConfig, Config, ConfigError, Limits, MembershipConfig};
pub use crate::event::{Event, MisbehaviourKind, Sizes, Stats, Transmit};
pub use crate::gossip::{BroadcastError, Gossip, SubscribeError};
pub use crate::message::{
    DecodeError, EncodeError, GossipMessage, IHaveEntry, MAX_DIGEST_IDS, MAX_GRAFT_IDS,
    MAX_IHAVE_ENTRIES, MAX_REQUEST_IDS, MAX_SHUFFLE_NODES, MESSAGE_ID_LEN, MessageId, Topic,
    TopicError,
};
pub use crate::score::{NeutralScore, PeerScore};
