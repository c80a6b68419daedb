//! The gossip core: one state machine for membership (HyParView), broadcast (Plumtree) and
//! anti-entropy, driven sans-IO.

mod membership;
mod plumtree;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_wire::{EnvelopeError, MAX_ENVELOPE_PAYLOAD_LEN, ReplayGuard, Sequencer, SignedEnvelope};
use tracing::trace;

use crate::config::{Config, ConfigError};
use crate::event::{Event, MisbehaviourKind, Sizes, Stats, Transmit};
use crate::message::{DecodeError, GossipMessage, IHaveEntry, MessageId, Topic};
use crate::rng::Rng;
use crate::score::{NeutralScore, PeerScore, sanitize};

/// Spread of the jitter on periodic work (±25 %).
const JITTER: f64 = 0.25;
/// At most one flooding report per peer per this long.
const FLOOD_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// A broadcast could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BroadcastError {
    /// The payload is larger than an envelope may carry.
    #[error("payload of {len} bytes exceeds the maximum of {MAX_ENVELOPE_PAYLOAD_LEN}")]
    PayloadTooLarge {
        /// Its length.
        len: usize,
    },
    /// Signing the envelope failed.
    #[error("cannot sign the envelope: {0}")]
    Envelope(#[source] EnvelopeError),
}

/// A topic could not be subscribed to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// Every topic slot holds a subscribed topic (see `Limits::topic_capacity`).
    #[error("already subscribed to the maximum of {0} topics")]
    TooManyTopics(usize),
}

#[derive(Debug, Clone)]
struct Active {
    id: NodeId,
    last_recv: Instant,
    last_sent: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PendingKind {
    /// We sent `Join` to a contact.
    Join,
    /// A `ForwardJoin` ended here; we asked the joiner.
    ForwardJoin,
    /// Replacing a neighbour from the passive view.
    Fill,
    /// Retrying a failed neighbour.
    Retry,
}

#[derive(Debug, Clone)]
struct Pending {
    id: NodeId,
    deadline: Instant,
    high: bool,
    kind: PendingKind,
}

#[derive(Debug, Clone)]
struct Lost {
    id: NodeId,
    next_retry: Instant,
    attempts: u8,
}

#[derive(Debug, Clone)]
struct ShufflePending {
    sent: Vec<NodeId>,
}

#[derive(Debug, Clone)]
struct TopicState {
    /// Active peers this topic is pushed to lazily (`IHave`); every other active peer is
    /// eager. Always a subset of the active view.
    lazy: Vec<NodeId>,
    subscribed: bool,
    last_used: Instant,
}

#[derive(Debug, Clone)]
struct Cached {
    envelope: SignedEnvelope,
    hops: u16,
    /// Who sent it to us eagerly (`None` for our own and requested messages).
    parent: Option<NodeId>,
    received_at: Instant,
    size: usize,
}

#[derive(Debug, Clone)]
struct Missing {
    topic: Topic,
    announcers: Vec<NodeId>,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, Default)]
struct Queued {
    count: usize,
    bytes: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    reported: Option<Instant>,
}

impl Bucket {
    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }

    fn level(&self, now: Instant, rate: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * rate).min(burst)
    }
}

/// The gossip core of one node: HyParView membership, Plumtree broadcast per topic and
/// digest-based anti-entropy, as a deterministic state machine without I/O.
///
/// # Driving it
///
/// The driver (the node's gossip actor, or a simulator) owns the core and:
///
/// 1. feeds it inputs: [`handle_message`](Self::handle_message) (or
///    [`handle_wire`](Self::handle_wire) for undecoded wire messages),
///    [`handle_timeout`](Self::handle_timeout), [`peer_up`](Self::peer_up),
///    [`peer_down`](Self::peer_down), and the application's [`join`](Self::join),
///    [`subscribe`](Self::subscribe), [`broadcast`](Self::broadcast),
///    [`leave`](Self::leave);
/// 2. after **every** input, drains [`poll_transmit`](Self::poll_transmit) and
///    [`poll_event`](Self::poll_event) until they return `None`, and re-arms its timer with
///    [`poll_timeout`](Self::poll_timeout).
///
/// Time only enters as the `now` arguments and randomness only from the seed given to
/// [`new`](Self::new), so the same inputs always give the same outputs.
///
/// # Memory
///
/// Every queue, cache and map has a hard cap from [`Limits`](crate::Limits) and a documented
/// eviction rule; [`sizes`](Self::sizes) reports how full each is. A driver that stops
/// draining gets dropped transmits and events (counted in [`stats`](Self::stats)), never
/// unbounded growth.
pub struct Gossip<S = NeutralScore> {
    me: NodeId,
    key: SigningKey,
    config: Config,
    scorer: S,
    rng: Rng,
    epoch: Instant,
    epoch_unix_ms: u64,
    sequencer: Sequencer,
    replay: ReplayGuard,

    // Membership.
    active: Vec<Active>,
    passive: Vec<NodeId>,
    pending: Vec<Pending>,
    lost: Vec<Lost>,
    fill_tried: Vec<NodeId>,
    fill_resume: Option<Instant>,
    shuffle_pending: Option<ShufflePending>,
    next_shuffle: Option<Instant>,

    // Broadcast.
    topics: BTreeMap<Topic, TopicState>,
    seen: BTreeMap<MessageId, Instant>,
    seen_order: VecDeque<(Instant, MessageId)>,
    cache: BTreeMap<MessageId, Cached>,
    cache_order: VecDeque<MessageId>,
    cache_bytes: usize,
    missing: BTreeMap<MessageId, Missing>,
    missing_timers: BTreeSet<(Instant, MessageId)>,
    requested: BTreeMap<MessageId, Instant>,
    requested_order: VecDeque<(Instant, MessageId)>,
    lazy: BTreeMap<NodeId, Vec<(Topic, IHaveEntry)>>,
    lazy_len: usize,
    next_flush: Option<Instant>,
    next_anti_entropy: Option<Instant>,

    // Output.
    transmits: VecDeque<Transmit>,
    queued: BTreeMap<NodeId, Queued>,
    queued_bytes: usize,
    events: VecDeque<Event>,
    buckets: BTreeMap<NodeId, Bucket>,
    stats: Stats,
}

impl<S> std::fmt::Debug for Gossip<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gossip")
            .field("me", &self.me)
            .field("active", &self.active.len())
            .field("passive", &self.passive.len())
            .field("topics", &self.topics.len())
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl Gossip<NeutralScore> {
    /// A core for the node whose key is `key`, scoring every peer neutrally.
    ///
    /// `seed` drives every random choice (use a fresh random value in production, a fixed
    /// one in tests). `now` and `unix_ms` anchor the clock: `unix_ms` is the wall time, in
    /// milliseconds since the Unix epoch, at the instant `now`; envelope timestamps and the
    /// replay window are computed from them and later `now` values.
    ///
    /// # Errors
    /// [`ConfigError`] if `config` does not [validate](Config::validate).
    pub fn new(
        key: SigningKey,
        config: Config,
        seed: u64,
        now: Instant,
        unix_ms: u64,
    ) -> Result<Self, ConfigError> {
        Self::with_scorer(key, config, seed, now, unix_ms, NeutralScore)
    }
}

impl<S: PeerScore> Gossip<S> {
    /// As [`new`](Gossip::new), with `scorer` consulted for peer selection and eviction.
    ///
    /// # Errors
    /// [`ConfigError`] if `config` does not [validate](Config::validate).
    pub fn with_scorer(
        key: SigningKey,
        config: Config,
        seed: u64,
        now: Instant,
        unix_ms: u64,
        scorer: S,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let me = NodeId::from(key.verifying_key());
        Ok(Self {
            me,
            key,
            replay: ReplayGuard::new(config.replay),
            config,
            scorer,
            rng: Rng::new(seed),
            epoch: now,
            epoch_unix_ms: unix_ms,
            sequencer: Sequencer::new(unix_ms),
            active: Vec::new(),
            passive: Vec::new(),
            pending: Vec::new(),
            lost: Vec::new(),
            fill_tried: Vec::new(),
            fill_resume: None,
            shuffle_pending: None,
            next_shuffle: None,
            topics: BTreeMap::new(),
            seen: BTreeMap::new(),
            seen_order: VecDeque::new(),
            cache: BTreeMap::new(),
            cache_order: VecDeque::new(),
            cache_bytes: 0,
            missing: BTreeMap::new(),
            missing_timers: BTreeSet::new(),
            requested: BTreeMap::new(),
            requested_order: VecDeque::new(),
            lazy: BTreeMap::new(),
            lazy_len: 0,
            next_flush: None,
            next_anti_entropy: None,
            transmits: VecDeque::new(),
            queued: BTreeMap::new(),
            queued_bytes: 0,
            events: VecDeque::new(),
            buckets: BTreeMap::new(),
            stats: Stats::default(),
        })
    }

    /// This node's id.
    #[must_use]
    pub const fn node_id(&self) -> &NodeId {
        &self.me
    }

    /// The configuration in force.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// The peer scorer.
    #[must_use]
    pub const fn scorer(&self) -> &S {
        &self.scorer
    }

    /// The peer scorer, to update the scores it holds.
    pub const fn scorer_mut(&mut self) -> &mut S {
        &mut self.scorer
    }

    /// The active view: the current neighbours.
    #[must_use]
    pub fn active_view(&self) -> Vec<NodeId> {
        self.active.iter().map(|a| a.id).collect()
    }

    /// The passive view: known peers that are not neighbours.
    #[must_use]
    pub fn passive_view(&self) -> &[NodeId] {
        &self.passive
    }

    /// The neighbours a message on `topic` is pushed to eagerly (the broadcast tree's edges
    /// at this node).
    #[must_use]
    pub fn eager_peers(&self, topic: &Topic) -> Vec<NodeId> {
        let lazy = self.topics.get(topic).map(|t| t.lazy.as_slice());
        self.active
            .iter()
            .map(|a| a.id)
            .filter(|id| !lazy.is_some_and(|l| l.contains(id)))
            .collect()
    }

    /// The neighbours only told about messages on `topic` (`IHave`).
    #[must_use]
    pub fn lazy_peers(&self, topic: &Topic) -> Vec<NodeId> {
        self.topics
            .get(topic)
            .map(|t| t.lazy.clone())
            .unwrap_or_default()
    }

    /// Whether the message is known (delivered, relayed or broadcast here, and not yet
    /// forgotten).
    #[must_use]
    pub fn has_seen(&self, id: &MessageId) -> bool {
        self.seen.contains_key(id)
    }

    /// Whether the application subscribed to `topic`.
    #[must_use]
    pub fn is_subscribed(&self, topic: &Topic) -> bool {
        self.topics.get(topic).is_some_and(|t| t.subscribed)
    }

    /// Counters since construction.
    #[must_use]
    pub const fn stats(&self) -> &Stats {
        &self.stats
    }

    /// How full every bounded structure is.
    #[must_use]
    pub fn sizes(&self) -> Sizes {
        Sizes {
            active: self.active.len(),
            passive: self.passive.len(),
            pending: self.pending.len(),
            lost: self.lost.len(),
            seen: self.seen.len(),
            cached: self.cache.len(),
            cached_bytes: self.cache_bytes,
            missing: self.missing.len(),
            requested: self.requested_order.len(),
            topics: self.topics.len(),
            lazy_entries: self.lazy_len,
            transmits: self.transmits.len(),
            transmit_bytes: self.queued_bytes,
            events: self.events.len(),
            rate_buckets: self.buckets.len(),
            replay_origins: self.replay.len(),
        }
    }

    // ---------------------------------------------------------------- application inputs

    /// Joins the overlay through `bootstrap` (peers the node knows how to reach): sends a
    /// `Join` to one of them, chosen at random, and keeps the others as passive peers to fall
    /// back on. Calling it again (e.g. after losing every neighbour) joins again.
    pub fn join(&mut self, now: Instant, bootstrap: &[NodeId]) {
        let mut contacts: Vec<NodeId> = bootstrap
            .iter()
            .copied()
            .filter(|id| *id != self.me && !self.refused(id))
            .collect();
        contacts.sort_unstable();
        contacts.dedup();
        self.start_periodic(now);
        let Some(contact) = self.rng.choose(&contacts) else {
            return;
        };
        for id in contacts.iter().filter(|id| **id != contact) {
            self.add_passive(*id);
        }
        if !self.is_active(&contact) && !self.is_pending(&contact) {
            self.pending.push(Pending {
                id: contact,
                deadline: now + self.config.membership.request_timeout,
                high: true,
                kind: PendingKind::Join,
            });
            self.send(now, contact, GossipMessage::Join);
        }
    }

    /// Leaves the overlay: tells every neighbour (`Disconnect { alive: false }`) and forgets
    /// the views. Caches are kept; [`join`](Self::join) again to come back.
    pub fn leave(&mut self, now: Instant) {
        for id in self.active_view() {
            self.send(now, id, GossipMessage::Disconnect { alive: false });
            self.remove_active(id);
        }
        self.pending.clear();
        self.lost.clear();
        self.passive.clear();
        self.fill_tried.clear();
        self.shuffle_pending = None;
        self.next_shuffle = None;
        self.next_anti_entropy = None;
    }

    /// Subscribes to `topic`: its messages are delivered as [`Event::Delivered`]. Returns
    /// whether the subscription is new. (Every node relays every topic; subscribing only
    /// decides delivery.)
    ///
    /// # Errors
    /// [`SubscribeError::TooManyTopics`] if every topic slot holds a subscribed topic.
    pub fn subscribe(&mut self, now: Instant, topic: Topic) -> Result<bool, SubscribeError> {
        if let Some(state) = self.topics.get_mut(&topic) {
            let new = !state.subscribed;
            state.subscribed = true;
            return Ok(new);
        }
        if !self.make_topic_room() {
            return Err(SubscribeError::TooManyTopics(
                self.config.limits.topic_capacity,
            ));
        }
        self.topics.insert(
            topic,
            TopicState {
                lazy: Vec::new(),
                subscribed: true,
                last_used: now,
            },
        );
        Ok(true)
    }

    /// Stops delivering `topic` (the node still relays it). Returns whether it was
    /// subscribed.
    pub fn unsubscribe(&mut self, topic: &Topic) -> bool {
        self.topics
            .get_mut(topic)
            .is_some_and(|state| std::mem::replace(&mut state.subscribed, false))
    }

    /// Signs `payload` as this node and broadcasts it on `topic`. Returns its id. The node's
    /// own broadcasts are not delivered back to it.
    ///
    /// # Errors
    /// [`BroadcastError::PayloadTooLarge`] above [`MAX_ENVELOPE_PAYLOAD_LEN`].
    pub fn broadcast(
        &mut self,
        now: Instant,
        topic: &Topic,
        payload: impl Into<Bytes>,
    ) -> Result<MessageId, BroadcastError> {
        let payload = payload.into();
        if payload.len() > MAX_ENVELOPE_PAYLOAD_LEN {
            return Err(BroadcastError::PayloadTooLarge { len: payload.len() });
        }
        let timestamp_ms = self.unix_ms(now);
        let sequence = self.sequencer.next_sequence();
        let envelope =
            SignedEnvelope::sign(&self.key, topic.as_str(), timestamp_ms, sequence, payload)
                .map_err(BroadcastError::Envelope)?;
        Ok(self.originate(now, topic, envelope))
    }

    // ---------------------------------------------------------------- network inputs

    /// Handles a message from `from`. Call it for every gossip message the transport
    /// delivers, then drain the `poll_*` methods.
    pub fn handle_message(&mut self, now: Instant, from: NodeId, message: GossipMessage) {
        if from == self.me || !self.admit(now, from) {
            return;
        }
        self.dispatch(now, from, message);
    }

    /// Decodes a wire message from `from` and handles it. A message that does not decode is
    /// dropped and reported as [`MisbehaviourKind::Malformed`]; the decoding error is also
    /// returned for logging.
    ///
    /// # Errors
    /// The [`DecodeError`] of a malformed message.
    pub fn handle_wire(
        &mut self,
        now: Instant,
        from: NodeId,
        message: &dawn_wire::Message,
    ) -> Result<(), DecodeError> {
        if from == self.me || !self.admit(now, from) {
            return Ok(());
        }
        match GossipMessage::from_wire(message) {
            Ok(message) => {
                self.dispatch(now, from, message);
                Ok(())
            }
            Err(error) => {
                self.misbehaviour(from, MisbehaviourKind::Malformed);
                Err(error)
            }
        }
    }

    /// The transport connected to `peer` (either side dialled). A failed neighbour that
    /// comes back is asked to re-link at once; any other peer becomes a passive peer.
    pub fn peer_up(&mut self, now: Instant, peer: NodeId) {
        if peer == self.me {
            return;
        }
        if let Some(lost) = self.lost.iter_mut().find(|l| l.id == peer) {
            lost.next_retry = now;
            self.retry_lost(now);
        } else if !self.is_active(&peer) {
            self.add_passive(peer);
        }
        self.fill_active(now);
    }

    /// The transport lost its connection to `peer`, or could not dial it. A neighbour is
    /// replaced from the passive view (and retried later); a pending request to it fails.
    pub fn peer_down(&mut self, now: Instant, peer: NodeId) {
        if self.is_active(&peer) {
            self.neighbor_failed(now, peer);
        }
        if let Some(pos) = self.pending.iter().position(|p| p.id == peer) {
            let pending = self.pending.swap_remove(pos);
            self.pending_failed(now, &pending);
        }
        self.fill_active(now);
    }

    /// Runs every timer that is due. Call it when the instant from
    /// [`poll_timeout`](Self::poll_timeout) is reached (calling it early or late is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
        self.missing_timeouts(now);
        if self.next_flush.is_some_and(|t| t <= now) {
            self.flush_ihave(now);
        }
        self.check_neighbors(now);
        self.pending_timeouts(now);
        self.retry_lost(now);
        if self.next_shuffle.is_some_and(|t| t <= now) {
            self.shuffle(now);
        }
        if self.next_anti_entropy.is_some_and(|t| t <= now) {
            self.anti_entropy(now);
        }
        self.fill_active(now);
    }

    // ---------------------------------------------------------------- outputs

    /// The next message to send. Call it after every input until it returns `None`; a
    /// transmit to a peer without a connection asks the driver to dial it (see
    /// [`Transmit`]).
    #[must_use = "transmits that are not sent are lost"]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let transmit = self.transmits.pop_front()?;
        let size = transmit.message.approx_len();
        self.queued_bytes = self.queued_bytes.saturating_sub(size);
        if let Some(queued) = self.queued.get_mut(&transmit.to) {
            queued.count = queued.count.saturating_sub(1);
            queued.bytes = queued.bytes.saturating_sub(size);
            if queued.count == 0 {
                self.queued.remove(&transmit.to);
            }
        }
        Some(transmit)
    }

    /// The next event for the application. Call it after every input until it returns
    /// `None`.
    #[must_use = "events that are not handled are lost"]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, or `None` if no
    /// timer is armed. Ask again after every input: inputs arm timers.
    #[must_use = "a core whose timeouts are not run stops repairing and maintaining itself"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let m = &self.config.membership;
        let l = &self.config.limits;
        let mut deadlines: Vec<Instant> = Vec::with_capacity(16);
        deadlines.extend(self.seen_order.front().map(|(t, _)| *t + l.seen_ttl));
        deadlines.extend(
            self.cache_order
                .front()
                .and_then(|id| self.cache.get(id))
                .map(|c| c.received_at + l.cache_ttl),
        );
        deadlines.extend(self.requested_order.front().map(|(t, _)| *t));
        deadlines.extend(self.missing_timers.first().map(|(t, _)| *t));
        deadlines.extend(self.next_flush);
        deadlines.extend(self.next_shuffle);
        deadlines.extend(self.next_anti_entropy);
        for active in &self.active {
            deadlines.push(active.last_sent + m.keepalive_interval);
            deadlines.push(active.last_recv + m.neighbor_timeout);
        }
        deadlines.extend(self.pending.iter().map(|p| p.deadline));
        deadlines.extend(self.lost.iter().map(|l| l.next_retry));
        if self.active.len() < m.active_view_capacity {
            deadlines.extend(self.fill_resume);
        }
        deadlines.into_iter().min()
    }

    // ---------------------------------------------------------------- internals

    fn dispatch(&mut self, now: Instant, from: NodeId, message: GossipMessage) {
        self.stats.messages_received = self.stats.messages_received.saturating_add(1);
        trace!(peer = %from.fmt_short(), kind = message.kind(), "gossip.recv");
        if let Some(active) = self.active.iter_mut().find(|a| a.id == from) {
            active.last_recv = now;
        }
        match message {
            GossipMessage::Join => self.on_join(now, from),
            GossipMessage::ForwardJoin { joiner, ttl } => {
                self.on_forward_join(now, from, joiner, ttl);
            }
            GossipMessage::Neighbor { high_priority } => {
                self.on_neighbor(now, from, high_priority);
            }
            GossipMessage::NeighborReply { accepted } => {
                self.on_neighbor_reply(now, from, accepted);
            }
            GossipMessage::Disconnect { alive } => self.on_disconnect(now, from, alive),
            GossipMessage::Shuffle { origin, ttl, nodes } => {
                self.on_shuffle(now, from, origin, ttl, &nodes);
            }
            GossipMessage::ShuffleReply { nodes } => self.on_shuffle_reply(&nodes),
            GossipMessage::KeepAlive => {
                self.require_neighbor(now, from);
            }
            GossipMessage::Gossip { hops, envelope } => {
                self.on_payload(now, from, hops, envelope, true);
            }
            GossipMessage::Response { hops, envelope } => {
                self.on_payload(now, from, hops, envelope, false);
            }
            GossipMessage::IHave { topic, entries } => {
                self.on_ihave(now, from, &topic, &entries);
            }
            GossipMessage::Graft { topic, ids } => self.on_graft(now, from, &topic, &ids),
            GossipMessage::Prune { topic } => self.on_prune(now, from, &topic),
            GossipMessage::Digest { respond, ids } => self.on_digest(now, from, respond, &ids),
            GossipMessage::Request { ids } => self.on_request(now, from, &ids),
        }
        self.fill_active(now);
    }

    /// The inbound rate limit: a token bucket per peer.
    fn admit(&mut self, now: Instant, from: NodeId) -> bool {
        let rate = self.config.limits.inbound_rate;
        let burst = self.config.limits.inbound_burst;
        if !self.buckets.contains_key(&from) {
            if self.buckets.len() >= self.config.limits.rate_tracked_peers {
                // A full bucket carries no information: forgetting it changes nothing.
                let idle = self
                    .buckets
                    .iter()
                    .find(|(_, b)| b.level(now, rate, burst) >= burst)
                    .map(|(id, _)| *id);
                match idle {
                    Some(id) => {
                        self.buckets.remove(&id);
                    }
                    None => {
                        self.stats.rate_limited = self.stats.rate_limited.saturating_add(1);
                        return false;
                    }
                }
            }
            self.buckets.insert(
                from,
                Bucket {
                    tokens: burst,
                    at: now,
                    reported: None,
                },
            );
        }
        let Some(bucket) = self.buckets.get_mut(&from) else {
            return false;
        };
        bucket.refill(now, rate, burst);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return true;
        }
        self.stats.rate_limited = self.stats.rate_limited.saturating_add(1);
        let report = bucket
            .reported
            .is_none_or(|at| now >= at + FLOOD_REPORT_INTERVAL);
        if report {
            bucket.reported = Some(now);
            self.misbehaviour(from, MisbehaviourKind::Flooding);
        }
        false
    }

    /// Queues a transmit, unless the peer's or the total queue is full.
    fn send(&mut self, now: Instant, to: NodeId, message: GossipMessage) {
        let limits = &self.config.limits;
        let size = message.approx_len();
        let queued = self.queued.get(&to).copied().unwrap_or_default();
        if queued.count >= limits.transmit_queue_per_peer
            || self.transmits.len() >= limits.transmit_queue_total
            || queued.bytes + size > limits.transmit_bytes_per_peer
            || self.queued_bytes + size > limits.transmit_bytes_total
        {
            self.stats.transmits_dropped = self.stats.transmits_dropped.saturating_add(1);
            return;
        }
        let entry = self.queued.entry(to).or_default();
        entry.count += 1;
        entry.bytes += size;
        self.queued_bytes += size;
        if let Some(active) = self.active.iter_mut().find(|a| a.id == to) {
            active.last_sent = now;
        }
        match &message {
            GossipMessage::Gossip { .. } | GossipMessage::Response { .. } => {
                self.stats.payloads_sent = self.stats.payloads_sent.saturating_add(1);
            }
            GossipMessage::IHave { .. } => {
                self.stats.ihaves_sent = self.stats.ihaves_sent.saturating_add(1);
            }
            GossipMessage::Graft { .. } => {
                self.stats.grafts_sent = self.stats.grafts_sent.saturating_add(1);
            }
            GossipMessage::Prune { .. } => {
                self.stats.prunes_sent = self.stats.prunes_sent.saturating_add(1);
            }
            GossipMessage::Request { .. } => {
                self.stats.requests_sent = self.stats.requests_sent.saturating_add(1);
            }
            _ => {}
        }
        self.transmits.push_back(Transmit { to, message });
    }

    fn emit(&mut self, event: Event) {
        if self.events.len() >= self.config.limits.event_queue {
            self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
            return;
        }
        self.events.push_back(event);
    }

    fn misbehaviour(&mut self, peer: NodeId, kind: MisbehaviourKind) {
        self.stats.misbehaviours = self.stats.misbehaviours.saturating_add(1);
        trace!(peer = %peer.fmt_short(), ?kind, "gossip.misbehaviour");
        self.emit(Event::Misbehaviour { peer, kind });
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.epoch).as_millis();
        self.epoch_unix_ms
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    fn score(&self, peer: &NodeId) -> f64 {
        sanitize(self.scorer.score(peer))
    }

    fn refused(&self, peer: &NodeId) -> bool {
        self.score(peer) < self.config.min_peer_score
    }

    fn is_active(&self, peer: &NodeId) -> bool {
        self.active.iter().any(|a| a.id == *peer)
    }

    fn is_pending(&self, peer: &NodeId) -> bool {
        self.pending.iter().any(|p| p.id == *peer)
    }

    fn start_periodic(&mut self, now: Instant) {
        if self.next_shuffle.is_none() {
            let d = self
                .rng
                .jitter(self.config.membership.shuffle_interval, JITTER);
            self.next_shuffle = Some(now + d);
        }
        if self.next_anti_entropy.is_none() {
            let d = self
                .rng
                .jitter(self.config.broadcast.anti_entropy_interval, JITTER);
            self.next_anti_entropy = Some(now + d);
        }
    }

    /// Forgets what has outlived its time to live.
    fn expire(&mut self, now: Instant) {
        let l = &self.config.limits;
        while let Some(&(at, id)) = self.seen_order.front() {
            if at + l.seen_ttl > now {
                break;
            }
            self.seen_order.pop_front();
            self.seen.remove(&id);
        }
        let cache_ttl = l.cache_ttl;
        while let Some(id) = self.cache_order.front().copied() {
            match self.cache.get(&id) {
                Some(c) if c.received_at + cache_ttl > now => break,
                _ => self.evict_cached_front(),
            }
        }
        while let Some(&(deadline, id)) = self.requested_order.front() {
            if deadline > now {
                break;
            }
            self.requested_order.pop_front();
            if self.requested.get(&id) == Some(&deadline) {
                self.requested.remove(&id);
            }
        }
    }
}
