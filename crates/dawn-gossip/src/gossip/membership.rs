//! HyParView: the active and passive views, joins, shuffles, failure detection and repair.

use std::time::Instant;

use dawn_identity::NodeId;

use super::{Active, Gossip, JITTER, Lost, Pending, PendingKind, ShufflePending};
use crate::event::Event;
use crate::message::GossipMessage;
use crate::score::PeerScore;

impl<S: PeerScore> Gossip<S> {
    // ---------------------------------------------------------------- handlers

    pub(super) fn on_join(&mut self, now: Instant, from: NodeId) {
        if self.refused(&from) {
            self.send(now, from, GossipMessage::NeighborReply { accepted: false });
            return;
        }
        self.add_active(now, from, false);
        self.send(now, from, GossipMessage::NeighborReply { accepted: true });
        let ttl = self.config.membership.active_random_walk_length;
        for peer in self.active_view() {
            if peer != from {
                self.send(now, peer, GossipMessage::ForwardJoin { joiner: from, ttl });
            }
        }
    }

    pub(super) fn on_forward_join(&mut self, now: Instant, from: NodeId, joiner: NodeId, ttl: u8) {
        if joiner == self.me || self.refused(&joiner) {
            return;
        }
        let m = &self.config.membership;
        // A walk never runs longer than ours would, whatever the sender claims.
        let ttl = ttl.min(m.active_random_walk_length);
        let prwl = m.passive_random_walk_length;
        let others: Vec<NodeId> = self
            .active
            .iter()
            .map(|a| a.id)
            .filter(|id| *id != from && *id != joiner)
            .collect();
        if ttl == 0 || others.is_empty() {
            self.request_neighbor(now, joiner, true, PendingKind::ForwardJoin);
            return;
        }
        if ttl == prwl {
            self.add_passive(joiner);
        }
        if let Some(next) = self.rng.choose(&others) {
            self.send(
                now,
                next,
                GossipMessage::ForwardJoin {
                    joiner,
                    ttl: ttl - 1,
                },
            );
        }
    }

    pub(super) fn on_neighbor(&mut self, now: Instant, from: NodeId, high: bool) {
        if self.refused(&from) {
            self.send(now, from, GossipMessage::NeighborReply { accepted: false });
            return;
        }
        let room = self.active.len() < self.config.membership.active_view_capacity;
        let accepted = self.is_active(&from) || high || room;
        if accepted {
            self.add_active(now, from, false);
        }
        self.send(now, from, GossipMessage::NeighborReply { accepted });
    }

    pub(super) fn on_neighbor_reply(&mut self, now: Instant, from: NodeId, accepted: bool) {
        let pending = self
            .pending
            .iter()
            .position(|p| p.id == from)
            .map(|pos| self.pending.swap_remove(pos));
        match (pending, accepted) {
            (Some(pending), true) => {
                let room = self.active.len() < self.config.membership.active_view_capacity;
                if self.is_active(&from) || room || pending.high {
                    self.add_active(now, from, true);
                } else {
                    // Another request was answered first and filled the view.
                    self.send(now, from, GossipMessage::Disconnect { alive: true });
                    self.add_passive(from);
                }
            }
            (Some(pending), false) => {
                self.lost.retain(|l| l.id != from);
                if pending.kind == PendingKind::Fill && !self.fill_tried.contains(&from) {
                    self.fill_tried.push(from);
                }
            }
            (None, true) => {
                // An answer to a request we gave up on, or repeated: the peer has linked us,
                // so keep the link if there is room.
                let room = self.active.len() < self.config.membership.active_view_capacity;
                if room && !self.refused(&from) {
                    self.add_active(now, from, true);
                } else if !self.is_active(&from) {
                    self.send(now, from, GossipMessage::Disconnect { alive: true });
                }
            }
            (None, false) => {}
        }
    }

    pub(super) fn on_disconnect(&mut self, _now: Instant, from: NodeId, alive: bool) {
        self.pending.retain(|p| p.id != from);
        self.remove_active(from);
        self.lost.retain(|l| l.id != from);
        if alive {
            self.add_passive(from);
        } else {
            self.passive.retain(|p| *p != from);
        }
    }

    pub(super) fn on_shuffle(
        &mut self,
        now: Instant,
        from: NodeId,
        origin: NodeId,
        ttl: u8,
        nodes: &[NodeId],
    ) {
        if origin == self.me {
            return;
        }
        let ttl = ttl.min(self.config.membership.active_random_walk_length);
        let others: Vec<NodeId> = self
            .active
            .iter()
            .map(|a| a.id)
            .filter(|id| *id != from && *id != origin)
            .collect();
        if ttl > 0
            && let Some(next) = self.rng.choose(&others)
        {
            let message = GossipMessage::Shuffle {
                origin,
                ttl: ttl - 1,
                nodes: nodes.to_vec(),
            };
            self.send(now, next, message);
            return;
        }
        let reply = self.rng.sample(&self.passive, nodes.len());
        self.send(
            now,
            origin,
            GossipMessage::ShuffleReply {
                nodes: reply.clone(),
            },
        );
        self.integrate(nodes, &reply);
    }

    pub(super) fn on_shuffle_reply(&mut self, nodes: &[NodeId]) {
        // Only an answer to our own outstanding shuffle is taken: unsolicited samples
        // would let anyone fill the passive view.
        if let Some(pending) = self.shuffle_pending.take() {
            self.integrate(nodes, &pending.sent);
        }
    }

    /// Neighbour-only traffic from a peer that is not a neighbour: tell it so, so that it
    /// drops us too (this is what makes the active view symmetric again after a lost
    /// message). Traffic from a peer we asked to be a neighbour means it accepted.
    pub(super) fn require_neighbor(&mut self, now: Instant, from: NodeId) -> bool {
        if self.is_active(&from) {
            return true;
        }
        if let Some(pos) = self.pending.iter().position(|p| p.id == from) {
            self.pending.swap_remove(pos);
            self.add_active(now, from, true);
            return true;
        }
        self.send(now, from, GossipMessage::Disconnect { alive: true });
        false
    }

    // ---------------------------------------------------------------- timers

    /// Sends keepalives on idle links and declares silent neighbours failed.
    pub(super) fn check_neighbors(&mut self, now: Instant) {
        let m = &self.config.membership;
        let keepalive = m.keepalive_interval;
        let timeout = m.neighbor_timeout;
        let mut failed = Vec::new();
        let mut idle = Vec::new();
        for active in &self.active {
            if active.last_recv + timeout <= now {
                failed.push(active.id);
            } else if active.last_sent + keepalive <= now + keepalive / 4 {
                // A little early, so that one wake-up serves every link due about now.
                idle.push(active.id);
            }
        }
        for id in failed {
            self.neighbor_failed(now, id);
        }
        for id in idle {
            self.send(now, id, GossipMessage::KeepAlive);
        }
    }

    pub(super) fn pending_timeouts(&mut self, now: Instant) {
        let mut expired = Vec::new();
        self.pending.retain(|p| {
            if p.deadline <= now {
                expired.push(p.clone());
                false
            } else {
                true
            }
        });
        for pending in expired {
            self.pending_failed(now, &pending);
        }
    }

    /// A request got no answer, or its peer went down.
    pub(super) fn pending_failed(&mut self, now: Instant, pending: &Pending) {
        match pending.kind {
            PendingKind::Join => self.add_lost(now, pending.id),
            PendingKind::Fill | PendingKind::ForwardJoin => {
                self.passive.retain(|p| *p != pending.id);
            }
            PendingKind::Retry => {}
        }
    }

    /// Asks failed neighbours whose retry is due to re-link.
    pub(super) fn retry_lost(&mut self, now: Instant) {
        let m = &self.config.membership;
        let (initial, max, attempts_max) = (
            m.lost_retry_initial,
            m.lost_retry_max,
            m.lost_retry_attempts,
        );
        let mut due = Vec::new();
        let mut keep = Vec::with_capacity(self.lost.len());
        for mut lost in std::mem::take(&mut self.lost) {
            if self.is_active(&lost.id) {
                continue;
            }
            if lost.next_retry <= now {
                due.push(lost.id);
                lost.attempts = lost.attempts.saturating_add(1);
                if lost.attempts >= attempts_max {
                    continue;
                }
                let backoff = initial
                    .saturating_mul(1u32 << u32::from(lost.attempts.min(16)))
                    .min(max);
                lost.next_retry = now + self.rng.jitter(backoff, JITTER);
            }
            keep.push(lost);
        }
        self.lost = keep;
        for id in due {
            self.request_neighbor(now, id, true, PendingKind::Retry);
        }
    }

    pub(super) fn shuffle(&mut self, now: Instant) {
        let m = &self.config.membership;
        let (interval, ka, kp, ttl) = (
            m.shuffle_interval,
            m.shuffle_active_count,
            m.shuffle_passive_count,
            m.active_random_walk_length,
        );
        self.next_shuffle = Some(now + self.rng.jitter(interval, JITTER));
        let peers = self.active_view();
        let Some(target) = self.rng.choose(&peers) else {
            return;
        };
        let others: Vec<NodeId> = peers.into_iter().filter(|id| *id != target).collect();
        let mut sent = self.rng.sample(&others, ka);
        sent.extend(self.rng.sample(&self.passive, kp));
        let mut nodes = Vec::with_capacity(sent.len() + 1);
        nodes.push(self.me);
        nodes.extend_from_slice(&sent);
        self.shuffle_pending = Some(ShufflePending { sent });
        self.send(
            now,
            target,
            GossipMessage::Shuffle {
                origin: self.me,
                ttl,
                nodes,
            },
        );
    }

    /// Keeps the active view full: asks passive peers (the better of two random ones) until
    /// the view and the outstanding requests reach the capacity.
    pub(super) fn fill_active(&mut self, now: Instant) {
        let capacity = self.config.membership.active_view_capacity;
        if self.active.len() >= capacity {
            self.fill_tried.clear();
            self.fill_resume = None;
            return;
        }
        if self.active.is_empty() {
            // Left alone: requests made while the node still had neighbours may be refused
            // for lack of room, so they are repeated as requests that cannot be.
            let upgrade: Vec<NodeId> = self
                .pending
                .iter_mut()
                .filter(|p| !p.high)
                .map(|p| {
                    p.high = true;
                    p.id
                })
                .collect();
            for peer in upgrade {
                let message = GossipMessage::Neighbor {
                    high_priority: true,
                };
                self.send(now, peer, message);
            }
        }
        if let Some(resume) = self.fill_resume {
            if now < resume {
                return;
            }
            self.fill_resume = None;
            self.fill_tried.clear();
        }
        loop {
            let outstanding = self
                .pending
                .iter()
                .filter(|p| p.kind != PendingKind::Retry)
                .count();
            if self.active.len() + outstanding >= capacity {
                return;
            }
            let candidates: Vec<NodeId> = self
                .passive
                .iter()
                .copied()
                .filter(|id| !self.is_pending(id) && !self.fill_tried.contains(id))
                .collect();
            let Some(choice) = self.better_of_two(&candidates) else {
                if !self.fill_tried.is_empty() || !self.passive.is_empty() {
                    self.fill_resume = Some(now + self.config.membership.fill_backoff);
                }
                return;
            };
            if self.fill_tried.len() >= self.config.membership.passive_view_capacity {
                self.fill_tried.clear();
            }
            self.fill_tried.push(choice);
            let high = self.active.is_empty();
            self.request_neighbor(now, choice, high, PendingKind::Fill);
        }
    }

    // ---------------------------------------------------------------- view changes

    fn request_neighbor(&mut self, now: Instant, peer: NodeId, high: bool, kind: PendingKind) {
        if peer == self.me || self.is_active(&peer) || self.is_pending(&peer) {
            return;
        }
        // Requests are bounded like everything else: a flood of walks ending here cannot
        // make the node dial without limit.
        let cap =
            2 * self.config.membership.active_view_capacity + self.config.membership.lost_capacity;
        if self.pending.len() >= cap {
            self.add_passive(peer);
            return;
        }
        self.pending.push(Pending {
            id: peer,
            deadline: now + self.config.membership.request_timeout,
            high,
            kind,
        });
        self.send(
            now,
            peer,
            GossipMessage::Neighbor {
                high_priority: high,
            },
        );
    }

    /// Adds `peer` to the active view, evicting the lowest-scoring neighbour if it is full.
    /// `initiated`: we asked (and start an anti-entropy exchange with the new neighbour).
    pub(super) fn add_active(&mut self, now: Instant, peer: NodeId, initiated: bool) {
        if peer == self.me || self.is_active(&peer) {
            return;
        }
        self.passive.retain(|p| *p != peer);
        self.lost.retain(|l| l.id != peer);
        self.pending.retain(|p| p.id != peer);
        let capacity = self.config.membership.active_view_capacity;
        while self.active.len() >= capacity {
            let Some(victim) = self.eviction_victim() else {
                break;
            };
            self.send(now, victim, GossipMessage::Disconnect { alive: true });
            self.remove_active(victim);
            self.add_passive(victim);
        }
        self.active.push(Active {
            id: peer,
            last_recv: now,
            last_sent: now,
        });
        self.start_periodic(now);
        self.emit(Event::NeighborUp(peer));
        if initiated {
            self.neighbor_up_exchange(now, peer);
        }
    }

    /// Removes `peer` from the active view and from the broadcast state of every topic.
    /// Returns whether it was a neighbour.
    pub(super) fn remove_active(&mut self, peer: NodeId) -> bool {
        let Some(pos) = self.active.iter().position(|a| a.id == peer) else {
            return false;
        };
        self.active.remove(pos);
        self.forget_neighbor(&peer);
        self.emit(Event::NeighborDown(peer));
        true
    }

    /// A neighbour stopped answering (or the transport lost it): drop it, remember it for
    /// retries, and replace it from the passive view.
    pub(super) fn neighbor_failed(&mut self, now: Instant, peer: NodeId) {
        if self.remove_active(peer) {
            self.stats.neighbor_failures = self.stats.neighbor_failures.saturating_add(1);
        }
        self.passive.retain(|p| *p != peer);
        self.add_lost(now, peer);
        self.fill_active(now);
    }

    fn add_lost(&mut self, now: Instant, peer: NodeId) {
        if self.lost.iter().any(|l| l.id == peer) {
            return;
        }
        let m = &self.config.membership;
        if self.lost.len() >= m.lost_capacity {
            // The oldest loss goes first.
            self.lost.remove(0);
        }
        let first = self.rng.jitter(m.lost_retry_initial, JITTER);
        self.lost.push(Lost {
            id: peer,
            next_retry: now + first,
            attempts: 0,
        });
    }

    /// Adds `peer` to the passive view, evicting the worse of two random passive peers if it
    /// is full.
    pub(super) fn add_passive(&mut self, peer: NodeId) {
        if peer == self.me
            || self.is_active(&peer)
            || self.passive.contains(&peer)
            || self.refused(&peer)
        {
            return;
        }
        if self.passive.len() >= self.config.membership.passive_view_capacity {
            self.evict_passive(&[]);
        }
        self.passive.push(peer);
    }

    /// Merges a shuffle sample into the passive view, evicting the peers we sent away first.
    fn integrate(&mut self, nodes: &[NodeId], sent: &[NodeId]) {
        for &node in nodes {
            if node == self.me
                || self.is_active(&node)
                || self.passive.contains(&node)
                || self.refused(&node)
            {
                continue;
            }
            if self.passive.len() >= self.config.membership.passive_view_capacity {
                self.evict_passive(sent);
            }
            self.passive.push(node);
        }
    }

    fn evict_passive(&mut self, prefer: &[NodeId]) {
        if let Some(pos) = self.passive.iter().position(|p| prefer.contains(p)) {
            self.passive.swap_remove(pos);
            return;
        }
        let a = self.rng.below(self.passive.len());
        let b = self.rng.below(self.passive.len());
        let (Some(pa), Some(pb)) = (self.passive.get(a), self.passive.get(b)) else {
            return;
        };
        let victim = if self.score(pb) < self.score(pa) {
            b
        } else {
            a
        };
        self.passive.swap_remove(victim);
    }

    /// The lowest-scoring neighbour, ties broken at random.
    fn eviction_victim(&mut self) -> Option<NodeId> {
        let scored: Vec<(NodeId, f64)> = self
            .active
            .iter()
            .map(|a| (a.id, self.score(&a.id)))
            .collect();
        let lowest = scored.iter().map(|(_, s)| *s).fold(f64::INFINITY, f64::min);
        let ties: Vec<NodeId> = scored
            .into_iter()
            .filter(|(_, s)| *s <= lowest)
            .map(|(id, _)| id)
            .collect();
        self.rng.choose(&ties)
    }

    /// The better-scoring of two random candidates ("power of two choices").
    fn better_of_two(&mut self, candidates: &[NodeId]) -> Option<NodeId> {
        let a = self.rng.choose(candidates)?;
        let b = self.rng.choose(candidates)?;
        Some(if self.score(&b) > self.score(&a) {
            b
        } else {
            a
        })
    }
}
