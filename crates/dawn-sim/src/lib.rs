//! A deterministic network simulator for Dawn's sans-IO protocol cores (layer 3, used by
//! their tests and benchmarks only).
//!
//! A protocol core implements [`Protocol`]: it takes messages and timeouts with the current
//! time and is polled for datagrams, events and its next deadline. [`Sim`] runs any number of
//! instances — 10,000 fit comfortably in one process — over a modelled network:
//!
//! - **Virtual time.** An event queue (a binary heap keyed by time and sequence number, so that
//!   ties break the same way every run) jumps from event to event; nothing sleeps.
//! - **Latency** per link from a [`LatencyModel`] (fixed, uniform, normal, log-normal), fixed
//!   for the run and derived from the seed, plus optional per-message jitter.
//! - **Loss** per message, **bandwidth** as a per-node egress queue, **partitions** that start
//!   and heal, node **crash** and **restart**, and random **churn**
//!   ([`Sim::schedule_churn`]); any of them can be [scheduled](Sim::schedule) for later.
//! - **Counters** ([`Counters`]) per node and in total: messages and bytes sent, delivered and
//!   dropped by loss, partition, a node being down or an unknown destination.
//! - **Determinism.** The same [`SimConfig::seed`] and the same calls give the same run, bit
//!   for bit: [`Sim::trace_digest`] summarises every delivery and drop with its time. Node
//!   identities are real [`NodeId`]s from [`node_id`], the same on every run.
//!
//! # Example
//!
//! Flood a broadcast over a random graph of 200 nodes with [`Flood`], the crate's toy
//! protocol, and watch it arrive everywhere:
//!
//! ```
//! use std::time::Duration;
//! use dawn_sim::{Flood, LatencyModel, Sim, SimConfig, node_id, ring_with_chords};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SimConfig {
//!     seed: 42,
//!     latency: LatencyModel::Uniform {
//!         min: Duration::from_millis(10),
//!         max: Duration::from_millis(50),
//!     },
//!     loss: 0.01,
//!     ..SimConfig::default()
//! };
//! let mut sim = Sim::new(config)?;
//! let ids: Vec<_> = (0..200).map(node_id).collect();
//! let graph = ring_with_chords(ids.len(), 3, sim.rng());
//! for (id, peers) in ids.iter().zip(&graph) {
//!     sim.add_node(*id, Flood::new(peers.iter().map(|&p| ids[p]).collect()))?;
//! }
//!
//! sim.with_node(ids[0], |node, _now| node.broadcast(1, 1024))?;
//! assert!(sim.run_until_idle(Duration::from_secs(60)));
//!
//! let reached = sim.drain_events().filter(|(_, _, delivery)| delivery.id == 1).count();
//! assert!(reached > 190); // 1% loss may cut off a few poorly connected nodes
//! let stats = sim.stats();
//! assert_eq!(stats.sent.messages, stats.delivered.messages + stats.dropped().messages);
//! println!("reached {reached} nodes by {:?}", sim.elapsed());
//! # Ok(()) }
//! ```
//!
//! # Writing a protocol for the simulator
//!
//! Take time only from the `now` arguments and randomness only from a seed given at
//! construction ([`derive_seed`] gives each node its own); never iterate a `HashMap` with a
//! random hasher. A core written that way runs unchanged under the real I/O driver.
//!
//! # Status
//!
//! The trace digest and the mapping from seed to latencies and losses may change between
//! versions of this crate; within one version a seed reproduces a run exactly, on every
//! platform (sampling uses no platform maths library).

mod action;
mod config;
mod flood;
mod ids;
mod latency;
mod net;
mod protocol;
mod rng;
mod sim;
mod stats;

pub use dawn_identity::NodeId;

pub use crate::action::{Action, ChurnEvent, InputFn, RestartFn};
pub use crate::config::{Churn, ConfigError, SimConfig};
pub use crate::flood::{FLOOD_HEADER_LEN, Flood, FloodDelivery, FloodMessage, ring_with_chords};
pub use crate::ids::{node_id, signing_key};
pub use crate::latency::{LatencyModel, MAX_LATENCY, MAX_LOG_NORMAL_SIGMA};
pub use crate::protocol::Protocol;
pub use crate::rng::{SimRng, derive_seed};
pub use crate::sim::{Sim, SimError};
pub use crate::stats::{Counters, Traffic};
