//! Plumtree: eager push along a tree per topic, lazy `IHave` announcements, graft and prune;
//! and digest-based anti-entropy for nodes that missed messages.

use std::collections::BTreeMap;
use std::time::Instant;

use dawn_identity::NodeId;
use dawn_wire::{ReplayVerdict, SignedEnvelope};

use super::{Cached, Gossip, JITTER, Missing, TopicState};
use crate::event::{Event, MisbehaviourKind};
use crate::message::{
    GossipMessage, IHaveEntry, MAX_GRAFT_IDS, MAX_IHAVE_ENTRIES, MAX_REQUEST_IDS, MessageId, Topic,
    envelope_len,
};
use crate::score::PeerScore;

impl<S: PeerScore> Gossip<S> {
    /// Records and pushes a message this node signed.
    pub(super) fn originate(
        &mut self,
        now: Instant,
        topic: &Topic,
        envelope: SignedEnvelope,
    ) -> MessageId {
        let id = MessageId::of(&envelope);
        // Our own guard learns it too, so a copy coming back is recognised.
        let _ = self.replay.accept(envelope.timestamp_ms(), &envelope);
        self.remember(now, id);
        self.touch_topic(now, topic);
        self.cache_insert(now, id, &envelope, 0, None);
        self.stats.broadcasts = self.stats.broadcasts.saturating_add(1);
        self.forward(now, id, topic, &envelope, 0, None, true);
        id
    }

    /// A `Gossip` (`eager`) or `Response` (`!eager`) message.
    pub(super) fn on_payload(
        &mut self,
        now: Instant,
        from: NodeId,
        sent_hops: u16,
        envelope: SignedEnvelope,
        eager: bool,
    ) {
        self.stats.payloads_received = self.stats.payloads_received.saturating_add(1);
        if eager {
            // Only neighbours push; a former one learns it is not one any more. The message
            // itself is signed, so it is still taken.
            self.require_neighbor(now, from);
        }
        let hops = sent_hops.saturating_add(1);
        let id = MessageId::of(&envelope);
        let Ok(topic) = Topic::new(envelope.topic()) else {
            // Envelopes enforce the same rule; kept for the day the two diverge.
            self.misbehaviour(from, MisbehaviourKind::Malformed);
            return;
        };
        if self.seen.contains_key(&id) {
            self.stats.duplicates = self.stats.duplicates.saturating_add(1);
            // A duplicate along the tree means the link is redundant for this topic. The
            // prune goes out even if the sender is lazy here already: it pushed eagerly, so
            // it does not know.
            if eager && self.is_active(&from) {
                self.set_lazy(now, &topic, from);
                self.send(now, from, GossipMessage::Prune { topic });
            }
            return;
        }
        if envelope.verify().is_err() {
            self.misbehaviour(from, MisbehaviourKind::InvalidSignature);
            return;
        }
        let verdict = self.replay.accept(self.unix_ms(now), &envelope);
        if verdict != ReplayVerdict::Fresh {
            // Refused from anyone: stop chasing it, but judge the sender first.
            let solicited =
                !eager || self.missing.contains_key(&id) || self.requested.contains_key(&id);
            self.cancel_missing(&id);
            self.requested.remove(&id);
            let kind = match verdict {
                // An answer to our own graft or request may be a message we saw and forgot;
                // only unsolicited pushes of old envelopes are held against the sender.
                ReplayVerdict::Replay if solicited => return,
                ReplayVerdict::Replay => MisbehaviourKind::Replay,
                ReplayVerdict::Stale => MisbehaviourKind::Stale,
                ReplayVerdict::Fresh | ReplayVerdict::Future => MisbehaviourKind::Future,
            };
            self.misbehaviour(from, kind);
            return;
        }
        self.remember(now, id);
        self.cancel_missing(&id);
        self.requested.remove(&id);
        let subscribed = self.touch_topic(now, &topic);
        let parent = (eager && self.is_active(&from)).then_some(from);
        self.cache_insert(now, id, &envelope, hops, parent);
        if parent.is_some() {
            self.set_eager(&topic, from);
        }
        if subscribed {
            self.stats.delivered = self.stats.delivered.saturating_add(1);
            self.emit(Event::Delivered {
                topic: topic.clone(),
                origin: *envelope.origin(),
                message_id: id,
                payload: envelope.payload().clone(),
                hops,
                timestamp_ms: envelope.timestamp_ms(),
            });
        }
        // A message recovered by anti-entropy is only announced: neighbours that lack it
        // graft it, and those that have it are not sent a duplicate that would prune the
        // tree.
        self.forward(now, id, &topic, &envelope, hops, Some(from), eager);
    }

    pub(super) fn on_ihave(
        &mut self,
        now: Instant,
        from: NodeId,
        topic: &Topic,
        entries: &[IHaveEntry],
    ) {
        if !self.require_neighbor(now, from) {
            return;
        }
        let b = &self.config.broadcast;
        let (timeout, threshold) = (b.ihave_timeout, b.optimization_threshold);
        let l = &self.config.limits;
        let (missing_cap, announcers_cap) = (l.missing_capacity, l.announcers_per_message);
        for entry in entries {
            if self.seen.contains_key(&entry.id) {
                if threshold > 0 {
                    self.optimize(now, from, topic, entry, threshold);
                }
                continue;
            }
            if let Some(missing) = self.missing.get_mut(&entry.id) {
                if missing.announcers.len() < announcers_cap && !missing.announcers.contains(&from)
                {
                    missing.announcers.push(from);
                }
                continue;
            }
            if self.missing.len() >= missing_cap {
                self.stats.announcements_dropped =
                    self.stats.announcements_dropped.saturating_add(1);
                continue;
            }
            let deadline = now + timeout;
            self.missing.insert(
                entry.id,
                Missing {
                    topic: topic.clone(),
                    announcers: vec![from],
                    deadline,
                },
            );
            self.missing_timers.insert((deadline, entry.id));
        }
    }

    /// Plumtree's optimisation: an announcement of a message we already have, over a path
    /// `threshold` hops shorter than the one it came by, swaps the tree edge.
    fn optimize(
        &mut self,
        now: Instant,
        from: NodeId,
        topic: &Topic,
        entry: &IHaveEntry,
        threshold: u16,
    ) {
        let Some(cached) = self.cache.get_mut(&entry.id) else {
            return;
        };
        let Some(parent) = cached.parent else {
            return;
        };
        let offered = entry.hops.saturating_add(1);
        if parent == from || offered.saturating_add(threshold) > cached.hops {
            return;
        }
        cached.hops = offered;
        cached.parent = Some(from);
        self.set_eager(topic, from);
        self.send(
            now,
            from,
            GossipMessage::Graft {
                topic: topic.clone(),
                ids: Vec::new(),
            },
        );
        if self.is_active(&parent) && self.set_lazy(now, topic, parent) {
            self.send(
                now,
                parent,
                GossipMessage::Prune {
                    topic: topic.clone(),
                },
            );
        }
    }

    pub(super) fn on_graft(
        &mut self,
        now: Instant,
        from: NodeId,
        topic: &Topic,
        ids: &[MessageId],
    ) {
        if !self.require_neighbor(now, from) {
            return;
        }
        self.touch_topic(now, topic);
        self.set_eager(topic, from);
        for id in ids {
            if let Some(cached) = self.cache.get(id) {
                let message = GossipMessage::Gossip {
                    hops: cached.hops,
                    envelope: cached.envelope.clone(),
                };
                self.send(now, from, message);
            }
        }
    }

    pub(super) fn on_prune(&mut self, now: Instant, from: NodeId, topic: &Topic) {
        if self.require_neighbor(now, from) {
            self.set_lazy(now, topic, from);
        }
    }

    pub(super) fn on_digest(
        &mut self,
        now: Instant,
        from: NodeId,
        respond: bool,
        ids: &[MessageId],
    ) {
        if !self.require_neighbor(now, from) {
            return;
        }
        let request_timeout = self.config.broadcast.request_timeout;
        let cap = self.config.limits.requested_capacity;
        let mut want = Vec::new();
        for id in ids {
            // The order queue also holds answered requests until they expire, so it is the
            // one to bound.
            if want.len() >= MAX_REQUEST_IDS || self.requested_order.len() >= cap {
                break;
            }
            if self.seen.contains_key(id)
                || self.requested.contains_key(id)
                || self.missing.contains_key(id)
            {
                continue;
            }
            let deadline = now + request_timeout;
            self.requested.insert(*id, deadline);
            self.requested_order.push_back((deadline, *id));
            want.push(*id);
        }
        if !want.is_empty() {
            self.send(now, from, GossipMessage::Request { ids: want });
        }
        if respond {
            let ids = self.digest(now);
            self.send(
                now,
                from,
                GossipMessage::Digest {
                    respond: false,
                    ids,
                },
            );
        }
    }

    pub(super) fn on_request(&mut self, now: Instant, from: NodeId, ids: &[MessageId]) {
        if !self.require_neighbor(now, from) {
            return;
        }
        for id in ids {
            if let Some(cached) = self.cache.get(id) {
                let message = GossipMessage::Response {
                    hops: cached.hops,
                    envelope: cached.envelope.clone(),
                };
                self.send(now, from, message);
            }
        }
    }

    /// A new link we asked for: compare digests at once, so that a node coming back from a
    /// partition or a restart catches up without waiting for the periodic exchange.
    pub(super) fn neighbor_up_exchange(&mut self, now: Instant, peer: NodeId) {
        let ids = self.digest(now);
        self.send(now, peer, GossipMessage::Digest { respond: true, ids });
    }

    /// Drops a former neighbour from every topic's lazy set and the announcement queue.
    pub(super) fn forget_neighbor(&mut self, peer: &NodeId) {
        for state in self.topics.values_mut() {
            state.lazy.retain(|p| p != peer);
        }
        if let Some(entries) = self.lazy.remove(peer) {
            self.lazy_len = self.lazy_len.saturating_sub(entries.len());
        }
    }

    // ---------------------------------------------------------------- timers

    /// Announced messages whose eager copy did not come: graft the next announcer.
    pub(super) fn missing_timeouts(&mut self, now: Instant) {
        let graft_timeout = self.config.broadcast.graft_timeout;
        let mut grafts: BTreeMap<(NodeId, Topic), Vec<MessageId>> = BTreeMap::new();
        while let Some(&(deadline, id)) = self.missing_timers.first() {
            if deadline > now {
                break;
            }
            self.missing_timers.pop_first();
            let Some(missing) = self.missing.get_mut(&id) else {
                continue;
            };
            if missing.deadline != deadline {
                continue;
            }
            let mut next = None;
            while !missing.announcers.is_empty() {
                let candidate = missing.announcers.remove(0);
                if self.active.iter().any(|a| a.id == candidate) {
                    next = Some(candidate);
                    break;
                }
            }
            match next {
                Some(peer) => {
                    grafts
                        .entry((peer, missing.topic.clone()))
                        .or_default()
                        .push(id);
                    missing.deadline = now + graft_timeout;
                    self.missing_timers.insert((missing.deadline, id));
                }
                None => {
                    // Nobody left to ask; anti-entropy will find it if it still matters.
                    self.missing.remove(&id);
                }
            }
        }
        for ((peer, topic), ids) in grafts {
            self.touch_topic(now, &topic);
            self.set_eager(&topic, peer);
            for chunk in ids.chunks(MAX_GRAFT_IDS) {
                let message = GossipMessage::Graft {
                    topic: topic.clone(),
                    ids: chunk.to_vec(),
                };
                self.send(now, peer, message);
            }
        }
    }

    /// Sends the batched announcements, one `IHave` per peer and topic.
    pub(super) fn flush_ihave(&mut self, now: Instant) {
        self.next_flush = None;
        self.lazy_len = 0;
        for (peer, entries) in std::mem::take(&mut self.lazy) {
            if !self.is_active(&peer) {
                continue;
            }
            let mut by_topic: BTreeMap<Topic, Vec<IHaveEntry>> = BTreeMap::new();
            for (topic, entry) in entries {
                by_topic.entry(topic).or_default().push(entry);
            }
            for (topic, entries) in by_topic {
                for chunk in entries.chunks(MAX_IHAVE_ENTRIES) {
                    let message = GossipMessage::IHave {
                        topic: topic.clone(),
                        entries: chunk.to_vec(),
                    };
                    self.send(now, peer, message);
                }
            }
        }
    }

    pub(super) fn anti_entropy(&mut self, now: Instant) {
        let interval = self.config.broadcast.anti_entropy_interval;
        self.next_anti_entropy = Some(now + self.rng.jitter(interval, JITTER));
        self.replay.prune(self.unix_ms(now));
        let peers = self.active_view();
        if let Some(peer) = self.rng.choose(&peers) {
            let ids = self.digest(now);
            self.send(now, peer, GossipMessage::Digest { respond: true, ids });
        }
    }

    // ---------------------------------------------------------------- state

    /// Pushes a message on: eagerly to the topic's eager peers (if `eager`), as an
    /// announcement to the others; never back to `except`.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        now: Instant,
        id: MessageId,
        topic: &Topic,
        envelope: &SignedEnvelope,
        hops: u16,
        except: Option<NodeId>,
        eager: bool,
    ) {
        if hops >= self.config.broadcast.max_hops {
            return;
        }
        let lazy = self
            .topics
            .get(topic)
            .map(|t| t.lazy.clone())
            .unwrap_or_default();
        for peer in self.active_view() {
            if Some(peer) == except {
                continue;
            }
            if eager && !lazy.contains(&peer) {
                let message = GossipMessage::Gossip {
                    hops,
                    envelope: envelope.clone(),
                };
                self.send(now, peer, message);
            } else {
                self.queue_ihave(now, peer, topic, IHaveEntry { id, hops });
            }
        }
    }

    fn queue_ihave(&mut self, now: Instant, peer: NodeId, topic: &Topic, entry: IHaveEntry) {
        let cap = self.config.limits.lazy_queue_per_peer;
        let queue = self.lazy.entry(peer).or_default();
        if queue.len() >= cap {
            self.stats.lazy_dropped = self.stats.lazy_dropped.saturating_add(1);
            return;
        }
        queue.push((topic.clone(), entry));
        self.lazy_len += 1;
        if self.next_flush.is_none() {
            self.next_flush = Some(now + self.config.broadcast.ihave_batch_delay);
        }
    }

    /// The ids to put in a digest: cached messages older than the minimum age, the newest
    /// half of the limit and a random selection of the rest.
    fn digest(&mut self, now: Instant) -> Vec<MessageId> {
        let b = &self.config.broadcast;
        let (min_age, max) = (b.anti_entropy_min_age, b.max_digest_ids);
        let eligible: Vec<MessageId> = self
            .cache_order
            .iter()
            .rev()
            .filter(|id| {
                self.cache
                    .get(id)
                    .is_some_and(|c| c.received_at + min_age <= now)
            })
            .copied()
            .collect();
        if eligible.len() <= max {
            return eligible;
        }
        let newest = max / 2;
        let (head, rest) = eligible.split_at(newest);
        let mut ids = head.to_vec();
        ids.extend(self.rng.sample(rest, max - newest));
        ids
    }

    fn remember(&mut self, now: Instant, id: MessageId) {
        while self.seen.len() >= self.config.limits.seen_capacity {
            let Some((_, old)) = self.seen_order.pop_front() else {
                break;
            };
            self.seen.remove(&old);
        }
        self.seen.insert(id, now);
        self.seen_order.push_back((now, id));
    }

    fn cache_insert(
        &mut self,
        now: Instant,
        id: MessageId,
        envelope: &SignedEnvelope,
        hops: u16,
        parent: Option<NodeId>,
    ) {
        let l = &self.config.limits;
        let (count_cap, bytes_cap) = (l.cache_capacity, l.cache_bytes);
        let size = envelope_len(envelope);
        if size > bytes_cap {
            return;
        }
        while self.cache.len() >= count_cap || self.cache_bytes + size > bytes_cap {
            if self.cache_order.is_empty() {
                break;
            }
            self.evict_cached_front();
        }
        self.cache.insert(
            id,
            Cached {
                envelope: envelope.clone(),
                hops,
                parent,
                received_at: now,
                size,
            },
        );
        self.cache_order.push_back(id);
        self.cache_bytes += size;
    }

    pub(super) fn evict_cached_front(&mut self) {
        if let Some(id) = self.cache_order.pop_front()
            && let Some(cached) = self.cache.remove(&id)
        {
            self.cache_bytes = self.cache_bytes.saturating_sub(cached.size);
        }
    }

    fn cancel_missing(&mut self, id: &MessageId) {
        if let Some(missing) = self.missing.remove(id) {
            self.missing_timers.remove(&(missing.deadline, *id));
        }
    }

    /// Marks the topic used; returns whether it is subscribed. Creates its state if there
    /// is room (evicting the least recently used unsubscribed topic).
    fn touch_topic(&mut self, now: Instant, topic: &Topic) -> bool {
        if let Some(state) = self.topics.get_mut(topic) {
            state.last_used = now;
            return state.subscribed;
        }
        if self.make_topic_room() {
            self.topics.insert(
                topic.clone(),
                TopicState {
                    lazy: Vec::new(),
                    subscribed: false,
                    last_used: now,
                },
            );
        }
        false
    }

    /// Frees a topic slot if the table is full. Returns whether there is room.
    pub(super) fn make_topic_room(&mut self) -> bool {
        if self.topics.len() < self.config.limits.topic_capacity {
            return true;
        }
        let victim = self
            .topics
            .iter()
            .filter(|(_, s)| !s.subscribed)
            .min_by_key(|(_, s)| s.last_used)
            .map(|(t, _)| t.clone());
        match victim {
            Some(topic) => {
                self.topics.remove(&topic);
                true
            }
            None => false,
        }
    }

    /// Makes `peer` lazy for `topic`; returns whether it was eager.
    fn set_lazy(&mut self, now: Instant, topic: &Topic, peer: NodeId) -> bool {
        if !self.is_active(&peer) {
            return false;
        }
        self.touch_topic(now, topic);
        match self.topics.get_mut(topic) {
            Some(state) if !state.lazy.contains(&peer) => {
                state.lazy.push(peer);
                true
            }
            _ => false,
        }
    }

    /// Makes `peer` eager for `topic`.
    fn set_eager(&mut self, topic: &Topic, peer: NodeId) {
        if let Some(state) = self.topics.get_mut(topic) {
            state.lazy.retain(|p| *p != peer);
        }
    }
}
