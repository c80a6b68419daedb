//! Unit tests of the core: HyParView invariants, Plumtree repair, anti-entropy and the
//! adversarial cases, with a tiny in-test network driver (fixed latency, virtual time).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_wire::{Message, SignedEnvelope};

use super::*;
use crate::config::Config;
use crate::event::{Event, MisbehaviourKind};
use crate::message::{GossipMessage, IHaveEntry, MessageId, Topic};
use crate::score::PeerScore;

const UNIX: u64 = 1_700_000_000_000;

/// Scores from a table, neutral for everyone else.
#[derive(Debug, Default, Clone)]
struct Scores(BTreeMap<NodeId, f64>);

impl PeerScore for Scores {
    fn score(&self, peer: &NodeId) -> f64 {
        self.0.get(peer).copied().unwrap_or(0.0)
    }
}

type Node = Gossip<Scores>;

fn key(i: u64) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i + 1).to_le_bytes());
    SigningKey::from_bytes(&seed)
}

fn id(i: u64) -> NodeId {
    key(i).verifying_key().into()
}

fn topic() -> Topic {
    Topic::new("dawn/test").unwrap()
}

fn node_with(i: u64, config: Config, t0: Instant) -> Node {
    let mut node = Gossip::with_scorer(key(i), config, i, t0, UNIX, Scores::default()).unwrap();
    node.subscribe(t0, topic()).unwrap();
    node
}

fn node(i: u64, t0: Instant) -> Node {
    node_with(i, Config::new(), t0)
}

fn transmits(node: &mut Node) -> Vec<Transmit> {
    std::iter::from_fn(|| node.poll_transmit()).collect()
}

fn events(node: &mut Node) -> Vec<Event> {
    std::iter::from_fn(|| node.poll_event()).collect()
}

fn delivered(events: &[Event]) -> Vec<Bytes> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Delivered { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

fn misbehaviour(events: &[Event]) -> Vec<(NodeId, MisbehaviourKind)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Misbehaviour { peer, kind } => Some((*peer, *kind)),
            _ => None,
        })
        .collect()
}

fn signed(origin: u64, timestamp_ms: u64, sequence: u64, payload: &'static [u8]) -> SignedEnvelope {
    SignedEnvelope::sign(&key(origin), "dawn/test", timestamp_ms, sequence, payload).unwrap()
}

/// A network of cores with a fixed one-way latency, run in virtual time.
struct Net {
    now: Instant,
    latency: Duration,
    nodes: BTreeMap<NodeId, Node>,
    in_flight: Vec<(Instant, u64, NodeId, NodeId, GossipMessage)>,
    seq: u64,
    events: Vec<(Instant, NodeId, Event)>,
    /// Payload-carrying messages received, per node.
    payloads: BTreeMap<NodeId, u64>,
}

impl Net {
    fn new(count: u64, config: &Config) -> Self {
        let now = Instant::now();
        let mut net = Self {
            now,
            latency: Duration::from_millis(10),
            nodes: BTreeMap::new(),
            in_flight: Vec::new(),
            seq: 0,
            events: Vec::new(),
            payloads: BTreeMap::new(),
        };
        for i in 0..count {
            net.nodes.insert(id(i), node_with(i, config.clone(), now));
        }
        net
    }

    /// Node `i` joins through node 0 at the current time.
    fn join_all(&mut self, spacing: Duration) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let first = id(0);
        for joiner in ids.into_iter().filter(|n| *n != first) {
            self.input(joiner, |node, now| node.join(now, &[first]));
            self.run_for(spacing);
        }
    }

    fn input<R>(&mut self, at: NodeId, f: impl FnOnce(&mut Node, Instant) -> R) -> R {
        let now = self.now;
        let node = self.nodes.get_mut(&at).unwrap();
        let r = f(node, now);
        self.pump(at);
        r
    }

    fn pump(&mut self, at: NodeId) {
        let Some(node) = self.nodes.get_mut(&at) else {
            return;
        };
        while let Some(t) = node.poll_transmit() {
            self.seq += 1;
            self.in_flight
                .push((self.now + self.latency, self.seq, at, t.to, t.message));
        }
        while let Some(e) = node.poll_event() {
            self.events.push((self.now, at, e));
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next_message = self.in_flight.iter().map(|m| (m.0, m.1)).min();
            let next_timer = self
                .nodes
                .iter()
                .filter_map(|(id, n)| n.poll_timeout().map(|t| (t, *id)))
                .min();
            let t_message = next_message.map(|m| m.0);
            let t_timer = next_timer.map(|t| t.0);
            let next = match (t_message, t_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if t_message == Some(next) {
                let key = next_message.unwrap();
                let pos = self
                    .in_flight
                    .iter()
                    .position(|m| (m.0, m.1) == key)
                    .unwrap();
                let (_, _, from, to, message) = self.in_flight.swap_remove(pos);
                if message.carries_payload() {
                    *self.payloads.entry(to).or_default() += 1;
                }
                if let Some(node) = self.nodes.get_mut(&to) {
                    let now = self.now;
                    node.handle_message(now, from, message);
                    self.pump(to);
                }
            } else if let Some((_, at)) = next_timer {
                let now = self.now;
                self.nodes.get_mut(&at).unwrap().handle_timeout(now);
                self.pump(at);
            }
        }
        self.now = end;
    }

    /// Crashes a node: its state goes, messages to it are lost.
    fn crash(&mut self, at: NodeId) {
        self.nodes.remove(&at);
        self.in_flight.retain(|m| m.3 != at);
    }

    fn node(&self, at: &NodeId) -> &Node {
        &self.nodes[at]
    }

    fn broadcast(&mut self, from: NodeId, payload: &'static [u8]) -> MessageId {
        self.input(from, |node, now| {
            node.broadcast(now, &topic(), payload).unwrap()
        })
    }

    fn deliveries(&self, id: &MessageId) -> BTreeSet<NodeId> {
        self.events
            .iter()
            .filter_map(|(_, n, e)| match e {
                Event::Delivered { message_id, .. } if message_id == id => Some(*n),
                _ => None,
            })
            .collect()
    }

    fn neighbor_ups(&self) -> usize {
        self.events
            .iter()
            .filter(|(_, _, e)| matches!(e, Event::NeighborUp(_)))
            .count()
    }

    fn assert_views_sound(&self) {
        let capacity = Config::new().membership.active_view_capacity;
        for (me, node) in &self.nodes {
            let active = node.active_view();
            assert!(active.len() <= capacity, "active view over capacity");
            assert!(node.passive_view().len() <= Config::new().membership.passive_view_capacity);
            assert!(!active.contains(me) && !node.passive_view().contains(me));
            for peer in &active {
                assert!(!node.passive_view().contains(peer), "in both views");
                if let Some(other) = self.nodes.get(peer) {
                    assert!(
                        other.active_view().contains(me),
                        "asymmetric link {me:?} -> {peer:?}"
                    );
                }
            }
        }
    }

    fn connected(&self) -> bool {
        let Some(start) = self.nodes.keys().next().copied() else {
            return true;
        };
        let mut seen = BTreeSet::from([start]);
        let mut todo = vec![start];
        while let Some(n) = todo.pop() {
            for peer in self.nodes[&n].active_view() {
                if self.nodes.contains_key(&peer) && seen.insert(peer) {
                    todo.push(peer);
                }
            }
        }
        seen.len() == self.nodes.len()
    }
}

/// Makes `a` and `b` neighbours by hand (b joins through a).
fn link(a: &mut Node, b: &mut Node, now: Instant) {
    b.join(now, &[*a.node_id()]);
    for _ in 0..4 {
        for t in transmits(b) {
            if t.to == *a.node_id() {
                a.handle_message(now, *b.node_id(), t.message);
            }
        }
        for t in transmits(a) {
            if t.to == *b.node_id() {
                b.handle_message(now, *a.node_id(), t.message);
            }
        }
    }
    let _ = events(a);
    let _ = events(b);
    assert!(a.active_view().contains(b.node_id()));
    assert!(b.active_view().contains(a.node_id()));
}

// ------------------------------------------------------------------------------ HyParView

#[test]
fn join_links_both_sides_and_reports_neighbours() {
    let t0 = Instant::now();
    let mut a = node(0, t0);
    let mut b = node(1, t0);
    b.join(t0, &[*a.node_id()]);
    let out = transmits(&mut b);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].message, GossipMessage::Join);
    assert!(
        b.active_view().is_empty(),
        "only added once the contact answers"
    );
    a.handle_message(t0, *b.node_id(), GossipMessage::Join);
    assert_eq!(a.active_view(), [*b.node_id()]);
    assert_eq!(events(&mut a), [Event::NeighborUp(*b.node_id())]);
    let replies = transmits(&mut a);
    assert_eq!(
        replies[0].message,
        GossipMessage::NeighborReply { accepted: true }
    );
    b.handle_message(t0, *a.node_id(), replies[0].message.clone());
    assert_eq!(b.active_view(), [*a.node_id()]);
    assert_eq!(events(&mut b), [Event::NeighborUp(*a.node_id())]);
    // The side that asked opens an anti-entropy exchange.
    assert!(matches!(
        transmits(&mut b).as_slice(),
        [Transmit {
            message: GossipMessage::Digest { respond: true, .. },
            ..
        }]
    ));
}

#[test]
fn views_are_bounded_symmetric_and_connected_after_many_joins() {
    let mut net = Net::new(40, &Config::new());
    net.join_all(Duration::from_millis(50));
    net.run_for(Duration::from_secs(30));
    net.assert_views_sound();
    assert!(net.connected());
    let full = net
        .nodes
        .values()
        .filter(|n| n.active_view().len() >= 4)
        .count();
    assert!(full >= 36, "only {full} of 40 nodes have 4+ neighbours");
    for node in net.nodes.values() {
        assert!(!node.active_view().is_empty());
        assert!(
            node.passive_view().len() >= 5,
            "shuffles fill passive views"
        );
    }
}

#[test]
fn failed_neighbour_is_detected_and_replaced_from_the_passive_view() {
    let mut net = Net::new(30, &Config::new());
    net.join_all(Duration::from_millis(50));
    net.run_for(Duration::from_secs(20));
    let victim = id(7);
    let neighbours = net.node(&victim).active_view();
    assert!(!neighbours.is_empty());
    let before: BTreeMap<NodeId, (Vec<NodeId>, Vec<NodeId>)> = neighbours
        .iter()
        .map(|n| {
            let node = net.node(n);
            (*n, (node.active_view(), node.passive_view().to_vec()))
        })
        .collect();
    net.crash(victim);
    let crashed_at = net.now;
    net.run_for(Duration::from_secs(8));
    let mut refilled = 0;
    let mut from_passive = 0;
    for (n, (active_before, passive_before)) in &before {
        let node = net.node(n);
        let active = node.active_view();
        assert!(!active.contains(&victim), "{n:?} still links the dead node");
        let down_at = net
            .events
            .iter()
            .find(|(_, at, e)| at == n && *e == Event::NeighborDown(victim))
            .map(|(t, _, _)| *t)
            .expect("NeighborDown reported");
        assert!(
            down_at - crashed_at
                <= Config::new().membership.neighbor_timeout + Duration::from_millis(300)
        );
        assert!(
            active.len() + 1 >= active_before.len(),
            "view shrank by more than the victim: {} -> {}",
            active_before.len(),
            active.len()
        );
        refilled += usize::from(active.len() >= active_before.len());
        from_passive += active
            .iter()
            .filter(|p| !active_before.contains(p) && passive_before.contains(p))
            .count();
    }
    assert!(refilled * 2 >= before.len(), "most views refilled");
    assert!(from_passive > 0, "replacements come from the passive views");
    net.assert_views_sound();
    assert!(net.connected());
}

#[test]
fn peer_down_replaces_the_neighbour_at_once_from_the_passive_view() {
    let t0 = Instant::now();
    let mut a = node(0, t0);
    let capacity = Config::new().membership.active_view_capacity as u64;
    for i in 1..=capacity {
        a.handle_message(t0, id(i), GossipMessage::Join);
    }
    let spare = id(50);
    a.peer_up(t0, spare);
    assert_eq!(a.passive_view(), [spare]);
    let _ = transmits(&mut a);
    let _ = events(&mut a);
    a.peer_down(t0, id(2));
    assert_eq!(events(&mut a), [Event::NeighborDown(id(2))]);
    // Still has neighbours: a low-priority request to the passive peer, at once.
    assert_eq!(
        transmits(&mut a),
        [Transmit {
            to: spare,
            message: GossipMessage::Neighbor {
                high_priority: false
            }
        }]
    );
    a.handle_message(t0, spare, GossipMessage::NeighborReply { accepted: true });
    assert_eq!(a.active_view().len(), capacity as usize);
    assert!(a.active_view().contains(&spare));
    // The lost neighbour is retried later with a high-priority request.
    a.handle_timeout(t0 + Duration::from_secs(2));
    assert!(transmits(&mut a).contains(&Transmit {
        to: id(2),
        message: GossipMessage::Neighbor {
            high_priority: true
        }
    }));
}

#[test]
fn a_node_left_alone_asks_with_high_priority() {
    let t0 = Instant::now();
    let mut a = node(0, t0);
    a.handle_message(t0, id(1), GossipMessage::Join);
    a.handle_message(t0, id(2), GossipMessage::Disconnect { alive: true });
    let _ = transmits(&mut a);
    a.peer_down(t0, id(1));
    let out = transmits(&mut a);
    assert!(out.contains(&Transmit {
        to: id(2),
        message: GossipMessage::Neighbor {
            high_priority: true
        }
    }));
}

#[test]
fn keepalive_to_a_former_neighbour_makes_the_link_symmetric_again() {
    let t0 = Instant::now();
    let mut a = node(0, t0);
    let mut b = node(1, t0);
    link(&mut a, &mut b, t0);
    // b forgets a without a (lost) Disconnect reaching it.
    b.peer_down(t0, *a.node_id());
    let _ = transmits(&mut b);
    let _ = events(&mut b);
    assert!(!b.active_view().contains(a.node_id()));
    a.handle_timeout(t0 + Duration::from_secs(1));
    let keepalive = transmits(&mut a)
        .into_iter()
        .find(|t| t.message == GossipMessage::KeepAlive)
        .expect("idle link gets a keepalive");
    let t1 = t0 + Duration::from_secs(1);
    b.handle_message(t1, *a.node_id(), keepalive.message);
    let reply = transmits(&mut b);
    assert!(reply.iter().any(|t| t.to == *a.node_id()
        && t.message == GossipMessage::Disconnect { alive: true }));
    a.handle_message(t1, *b.node_id(), GossipMessage::Disconnect { alive: true });
    assert!(a.active_view().is_empty());
    assert_eq!(a.passive_view(), [*b.node_id()]);
}

#[test]
fn eviction_takes_the_lowest_score_and_refuses_bad_peers() {
    let t0 = Instant::now();
    let mut hub = node(0, t0);
    let capacity = Config::new().membership.active_view_capacity as u64;
    for i in 1..=capacity {
        hub.handle_message(t0, id(i), GossipMessage::Join);
    }
    assert_eq!(hub.active_view().len(), capacity as usize);
    hub.scorer_mut().0.insert(id(3), -0.4);
    hub.scorer_mut().0.insert(id(99), -0.9);
    let _ = transmits(&mut hub);
    let _ = events(&mut hub);
    // A high-priority request forces an eviction: the suspect peer goes.
    hub.handle_message(
        t0,
        id(50),
        GossipMessage::Neighbor {
            high_priority: true,
        },
    );
    assert!(hub.active_view().contains(&id(50)));
    assert!(!hub.active_view().contains(&id(3)));
    assert!(
        transmits(&mut hub)
            .iter()
            .any(|t| t.to == id(3) && t.message == GossipMessage::Disconnect { alive: true })
    );
    // A peer below the minimum score is refused outright.
    hub.handle_message(t0, id(99), GossipMessage::Join);
    assert!(!hub.active_view().contains(&id(99)));
    assert!(!hub.passive_view().contains(&id(99)));
    assert!(
        transmits(&mut hub).iter().any(
            |t| t.to == id(99) && t.message == GossipMessage::NeighborReply { accepted: false }
        )
    );
}

#[test]
fn low_priority_requests_need_room() {
    let t0 = Instant::now();
    let mut hub = node(0, t0);
    let capacity = Config::new().membership.active_view_capacity as u64;
    for i in 1..=capacity {
        hub.handle_message(t0, id(i), GossipMessage::Join);
    }
    let _ = transmits(&mut hub);
    hub.handle_message(
        t0,
        id(60),
        GossipMessage::Neighbor {
            high_priority: false,
        },
    );
    assert!(!hub.active_view().contains(&id(60)));
    assert!(
        transmits(&mut hub).iter().any(
            |t| t.to == id(60) && t.message == GossipMessage::NeighborReply { accepted: false }
        )
    );
}

#[test]
fn shuffle_replies_are_only_taken_when_asked_for() {
    let t0 = Instant::now();
    let mut a = node(0, t0);
    a.handle_message(
        t0,
        id(1),
        GossipMessage::ShuffleReply {
            nodes: vec![id(2), id(3)],
        },
    );
    assert!(a.passive_view().is_empty());
}

// ------------------------------------------------------------------------------ Plumtree

#[test]
fn duplicate_prunes_the_sender_and_it_then_gets_announcements() {
    let t0 = Instant::now();
    let mut n = node(0, t0);
    let (a, b) = (id(1), id(2));
    n.handle_message(t0, a, GossipMessage::Join);
    n.handle_message(t0, b, GossipMessage::Join);
    let _ = transmits(&mut n);
    let _ = events(&mut n);
    let envelope = signed(9, UNIX, 1, b"one");
    n.handle_message(
        t0,
        a,
        GossipMessage::Gossip {
            hops: 0,
            envelope: envelope.clone(),
        },
    );
    assert_eq!(delivered(&events(&mut n)), [Bytes::from_static(b"one")]);
    let out = transmits(&mut n);
    assert!(
        out.iter()
            .any(|t| t.to == b && matches!(t.message, GossipMessage::Gossip { hops: 1, .. })),
        "forwarded eagerly to the other neighbour"
    );
    assert!(!out.iter().any(|t| t.to == a && t.message.carries_payload()));
    // The same message from b: a duplicate, so b is pruned for this topic.
    n.handle_message(t0, b, GossipMessage::Gossip { hops: 3, envelope });
    assert!(delivered(&events(&mut n)).is_empty());
    assert_eq!(
        transmits(&mut n),
        [Transmit {
            to: b,
            message: GossipMessage::Prune { topic: topic() }
        }]
    );
    assert_eq!(n.lazy_peers(&topic()), [b]);
    assert_eq!(n.eager_peers(&topic()), [a]);
    // Next message: eager to a, only announced to b after the batch delay.
    let id2 = n.broadcast(t0, &topic(), &b"two"[..]).unwrap();
    let out = transmits(&mut n);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, a);
    n.handle_timeout(t0 + Config::new().broadcast.ihave_batch_delay);
    assert_eq!(
        transmits(&mut n),
        [Transmit {
            to: b,
            message: GossipMessage::IHave {
                topic: topic(),
                entries: vec![IHaveEntry { id: id2, hops: 0 }]
            }
        }]
    );
}

#[test]
fn prune_received_makes_the_link_lazy() {
    let t0 = Instant::now();
    let mut n = node(0, t0);
    n.handle_message(t0, id(1), GossipMessage::Join);
    n.handle_message(t0, id(1), GossipMessage::Prune { topic: topic() });
    assert_eq!(n.lazy_peers(&topic()), [id(1)]);
    n.handle_message(
        t0,
        id(1),
        GossipMessage::Graft {
            topic: topic(),
            ids: vec![],
        },
    );
    assert!(n.lazy_peers(&topic()).is_empty());
}

#[test]
fn ihave_timeout_grafts_the_announcer_then_the_next_one() {
    let t0 = Instant::now();
    let mut n = node(0, t0);
    let (a, b) = (id(1), id(2));
    n.handle_message(t0, a, GossipMessage::Join);
    n.handle_message(t0, b, GossipMessage::Join);
    n.handle_message(t0, a, GossipMessage::Prune { topic: topic() });
    n.handle_message(t0, b, GossipMessage::Prune { topic: topic() });
    let _ = transmits(&mut n);
    let envelope = signed(9, UNIX, 1, b"late");
    let mid = MessageId::of(&envelope);
    for peer in [a, b] {
        n.handle_message(
            t0,
            peer,
            GossipMessage::IHave {
                topic: topic(),
                entries: vec![IHaveEntry { id: mid, hops: 2 }],
            },
        );
    }
    let broadcast = Config::new().broadcast;
    // Nothing before the timeout.
    n.handle_timeout(t0 + broadcast.ihave_timeout - Duration::from_millis(1));
    assert!(
        !transmits(&mut n)
            .iter()
            .any(|t| matches!(t.message, GossipMessage::Graft { .. }))
    );
    let t1 = t0 + broadcast.ihave_timeout;
    n.handle_timeout(t1);
    let graft = GossipMessage::Graft {
        topic: topic(),
        ids: vec![mid],
    };
    assert!(transmits(&mut n).contains(&Transmit {
        to: a,
        message: graft.clone()
    }));
    assert_eq!(
        n.lazy_peers(&topic()),
        [b],
        "the grafted peer is eager again"
    );
    // a does not answer: after the graft timeout, b is asked.
    n.handle_timeout(t1 + broadcast.graft_timeout);
    assert!(transmits(&mut n).contains(&Transmit {
        to: b,
        message: graft
    }));
    // b's answer is delivered, and the message is no longer missing.
    n.handle_message(t1, b, GossipMessage::Gossip { hops: 2, envelope });
    assert_eq!(delivered(&events(&mut n)), [Bytes::from_static(b"late")]);
    assert_eq!(n.sizes().missing, 0);
}

#[test]
fn graft_is_answered_from_the_cache() {
    let t0 = Instant::now();
    let mut n = node(0, t0);
    n.handle_message(t0, id(1), GossipMessage::Join);
    let mid = n.broadcast(t0, &topic(), &b"kept"[..]).unwrap();
    let _ = transmits(&mut n);
    n.handle_message(
        t0,
        id(1),
        GossipMessage::Graft {
            topic: topic(),
            ids: vec![mid, MessageId::from_bytes([7; 32])],
        },
    );
    let out = transmits(&mut n);
    assert_eq!(out.len(), 1);
    match &out[0].message {
        GossipMessage::Gossip { hops: 0, envelope } => {
            assert_eq!(MessageId::of(envelope), mid);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn broadcast_reaches_everyone_and_the_tree_settles() {
    let mut net = Net::new(30, &Config::new());
    net.join_all(Duration::from_millis(50));
    net.run_for(Duration::from_secs(10));
    // The first broadcast floods every link and prunes the redundant ones.
    let mut ups_at_previous = net.neighbor_ups();
    let first = net.broadcast(id(3), b"warm-up");
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.deliveries(&first).len(), 29);
    let pruned: u64 = net.nodes.values().map(|n| n.stats().prunes_sent).sum();
    assert!(pruned > 0);
    for round in 0..3 {
        let ups_now = net.neighbor_ups();
        let before: u64 = net.payloads.values().sum();
        let next = net.broadcast(id(3), b"settled");
        net.run_for(Duration::from_secs(1));
        assert_eq!(net.deliveries(&next).len(), 29);
        // Its own broadcast is never delivered to the origin.
        assert!(!net.deliveries(&next).contains(&id(3)));
        let received = net.payloads.values().sum::<u64>() - before;
        // On a settled tree every node gets exactly one copy. A link made after the
        // previous broadcast passed starts eager and costs at most one duplicate each way
        // (each link is two `NeighborUp` events).
        let ups = (net.neighbor_ups() - ups_at_previous) as u64;
        assert!(
            received <= 29 + ups,
            "round {round}: {received} copies, {ups} new link ends"
        );
        ups_at_previous = ups_now;
    }
    // The eager links now form a spanning tree: symmetric, n - 1 edges, connected.
    let mut edges = BTreeSet::new();
    for (n, node) in &net.nodes {
        for peer in node.eager_peers(&topic()) {
            assert!(
                net.node(&peer).eager_peers(&topic()).contains(n),
                "asymmetric"
            );
            edges.insert((*n.min(&peer), *n.max(&peer)));
        }
    }
    assert_eq!(edges.len(), 29);
}

#[test]
fn tree_is_repaired_after_a_node_crash() {
    let mut net = Net::new(40, &Config::new());
    net.join_all(Duration::from_millis(50));
    net.run_for(Duration::from_secs(10));
    let sender = id(0);
    for payload in [&b"a"[..], b"b"] {
        net.broadcast(sender, payload);
        net.run_for(Duration::from_secs(1));
    }
    // Crash the node with the most eager links other than the sender: an inner tree node.
    let victim = *net
        .nodes
        .iter()
        .filter(|(n, _)| **n != sender)
        .max_by_key(|(_, node)| node.eager_peers(&topic()).len())
        .unwrap()
        .0;
    assert!(net.node(&victim).eager_peers(&topic()).len() >= 2);
    net.crash(victim);
    // Broadcast at once, before anyone notices the crash: the subtree is reached through
    // announcements and grafts.
    let right_after = net.broadcast(sender, b"c");
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.deliveries(&right_after).len(), 38);
    let later = net.broadcast(sender, b"d");
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.deliveries(&later).len(), 38);
    let grafts: u64 = net.nodes.values().map(|n| n.stats().grafts_sent).sum();
    assert!(grafts > 0, "repair went through grafts");
}

#[test]
fn anti_entropy_fetches_what_a_neighbour_missed() {
    let t0 = Instant::now();
    let mut a = node(0, t0);
    let mut b = node(1, t0);
    let mid = a
        .broadcast(t0, &topic(), &b"while you were away"[..])
        .unwrap();
    let _ = transmits(&mut a);
    let t1 = t0 + Duration::from_secs(2);
    // b joins later; linking starts a digest exchange that finds the message.
    b.join(t1, &[*a.node_id()]);
    let mut got = Vec::new();
    for _ in 0..6 {
        for t in transmits(&mut b) {
            a.handle_message(t1, *b.node_id(), t.message);
        }
        for t in transmits(&mut a) {
            b.handle_message(t1, *a.node_id(), t.message);
        }
        got.extend(delivered(&events(&mut b)));
    }
    assert_eq!(got, [Bytes::from_static(b"while you were away")]);
    assert!(b.has_seen(&mid));
}

#[test]
fn digest_requests_only_what_is_missing() {
    let t0 = Instant::now();
    let mut n = node(0, t0);
    n.handle_message(t0, id(1), GossipMessage::Join);
    let known = n.broadcast(t0, &topic(), &b"known"[..]).unwrap();
    let _ = transmits(&mut n);
    let unknown = MessageId::from_bytes([3; 32]);
    n.handle_message(
        t0,
        id(1),
        GossipMessage::Digest {
            respond: false,
            ids: vec![known, unknown],
        },
    );
    assert_eq!(
        transmits(&mut n),
        [Transmit {
            to: id(1),
            message: GossipMessage::Request { ids: vec![unknown] }
        }]
    );
    // Asked once: a second digest does not repeat the request while it is outstanding.
    n.handle_message(
        t0,
        id(1),
        GossipMessage::Digest {
            respond: false,
            ids: vec![unknown],
        },
    );
    assert!(transmits(&mut n).is_empty());
}

#[test]
fn messages_beyond_max_hops_are_delivered_but_not_forwarded() {
    let t0 = Instant::now();
    let mut n = node(0, t0);
    n.handle_message(t0, id(1), GossipMessage::Join);
    n.handle_message(t0, id(2), GossipMessage::Join);
    let _ = transmits(&mut n);
    let max = Config::new().broadcast.max_hops;
    n.handle_message(
        t0,
        id(1),
        GossipMessage::Gossip {
            hops: max - 1,
            envelope: signed(9, UNIX, 1, b"far"),
        },
    );
    assert_eq!(delivered(&events(&mut n)), [Bytes::from_static(b"far")]);
    assert!(
        !transmits(&mut n)
            .iter()
            .any(|t| t.message.carries_payload())
    );
}

// ------------------------------------------------------------------------------ adversarial

/// An envelope whose payload was changed after signing.
fn forged() -> SignedEnvelope {
    let good = signed(9, UNIX, 1, b"genuine");
    let mut bytes = good.encode().unwrap();
    let pos = bytes.windows(7).position(|w| w == b"genuine").unwrap();
    bytes[pos] = b'G';
    SignedEnvelope::decode(&bytes).unwrap()
}

#[test]
fn invalid_signature_is_reported_and_never_delivered_or_forwarded() {
    let t0 = Instant::now();
    let mut n = node(0, t0);
    let (attacker, honest) = (id(1), id(2));
    n.handle_message(t0, attacker, GossipMessage::Join);
    n.handle_message(t0, honest, GossipMessage::Join);
    let _ = transmits(&mut n);
    let _ = events(&mut n);
    let forged = forged();
    for _ in 0..3 {
        n.handle_message(
            t0,
            attacker,
            GossipMessage::Gossip {
                hops: 0,
                envelope: forged.clone(),
            },
        );
    }
    let ev = events(&mut n);
    assert!(delivered(&ev).is_empty());
    assert_eq!(
        misbehaviour(&ev),
        vec![(attacker, MisbehaviourKind::InvalidSignature); 3]
    );
    assert!(
        !transmits(&mut n)
            .iter()
            .any(|t| t.message.carries_payload())
    );
    assert!(!n.has_seen(&MessageId::of(&forged)));
    // The genuine message still gets through afterwards.
    n.handle_message(
        t0,
        honest,
        GossipMessage::Gossip {
            hops: 0,
            envelope: signed(9, UNIX, 1, b"genuine"),
        },
    );
    assert_eq!(delivered(&events(&mut n)), [Bytes::from_static(b"genuine")]);
}

#[test]
fn replays_stale_and_future_envelopes_are_reported() {
    let t0 = Instant::now();
    let mut config = Config::new();
    // A tiny dedup memory, so that a replay gets past it to the replay window.
    config.limits.seen_capacity = 1;
    let mut n = node_with(0, config, t0);
    let peer = id(1);
    n.handle_message(t0, peer, GossipMessage::Join);
    let _ = transmits(&mut n);
    let _ = events(&mut n);
    let push = |envelope| GossipMessage::Gossip { hops: 0, envelope };

    let first = signed(9, UNIX, 5, b"first");
    n.handle_message(t0, peer, push(first.clone()));
    assert_eq!(delivered(&events(&mut n)), [Bytes::from_static(b"first")]);
    // Push something else so that the dedup memory forgets `first`.
    n.handle_message(t0, peer, push(signed(9, UNIX, 6, b"second")));
    let _ = events(&mut n);
    assert!(!n.has_seen(&MessageId::of(&first)));

    // The same envelope again, and another one under the same sequence number.
    n.handle_message(t0, peer, push(first));
    n.handle_message(t0, peer, push(signed(9, UNIX, 5, b"equivocation")));
    // Older than the replay window (10 minutes), and too far ahead (over 1 minute).
    n.handle_message(t0, peer, push(signed(9, UNIX - 11 * 60_000, 1, b"old")));
    n.handle_message(t0, peer, push(signed(8, UNIX + 2 * 60_000, 1, b"ahead")));
    let ev = events(&mut n);
    assert!(delivered(&ev).is_empty());
    assert_eq!(
        misbehaviour(&ev),
        [
            (peer, MisbehaviourKind::Replay),
            (peer, MisbehaviourKind::Replay),
            (peer, MisbehaviourKind::Stale),
            (peer, MisbehaviourKind::Future),
        ]
    );
}

#[test]
fn requested_and_grafted_replays_are_dropped_without_blame() {
    let t0 = Instant::now();
    let mut config = Config::new();
    config.limits.seen_capacity = 1;
    let ihave_timeout = config.broadcast.ihave_timeout;
    let mut n = node_with(0, config, t0);
    let peer = id(1);
    n.handle_message(t0, peer, GossipMessage::Join);
    let first = signed(9, UNIX, 5, b"first");
    let push = |envelope| GossipMessage::Gossip { hops: 0, envelope };
    n.handle_message(t0, peer, push(first.clone()));
    n.handle_message(t0, peer, push(signed(9, UNIX, 6, b"x")));
    let _ = events(&mut n);
    assert!(!n.has_seen(&MessageId::of(&first)));
    // Answer to a request.
    n.handle_message(
        t0,
        peer,
        GossipMessage::Response {
            hops: 0,
            envelope: first.clone(),
        },
    );
    // Answer to a graft: announced, grafted after the timeout, then pushed.
    n.handle_message(
        t0,
        peer,
        GossipMessage::IHave {
            topic: topic(),
            entries: vec![IHaveEntry {
                id: MessageId::of(&first),
                hops: 0,
            }],
        },
    );
    n.handle_timeout(t0 + ihave_timeout);
    assert!(
        transmits(&mut n)
            .iter()
            .any(|t| matches!(t.message, GossipMessage::Graft { .. }))
    );
    n.handle_message(t0 + ihave_timeout, peer, push(first));
    let ev = events(&mut n);
    assert!(delivered(&ev).is_empty());
    assert!(misbehaviour(&ev).is_empty(), "{ev:?}");
    assert_eq!(
        n.sizes().missing,
        0,
        "a refused message is no longer chased"
    );
}

#[test]
fn garbage_is_reported_as_malformed() {
    let t0 = Instant::now();
    let mut n = node(0, t0);
    let peer = id(1);
    let garbage = [
        Message::Protocol {
            kind: GossipMessage::KIND_GOSSIP,
            payload: Bytes::from_static(&[0xff, 0xff, 0xff]),
        },
        Message::Protocol {
            kind: GossipMessage::KIND_NEIGHBOR,
            payload: Bytes::from_static(&[7]),
        },
        Message::Protocol {
            kind: 0x01ee,
            payload: Bytes::new(),
        },
        Message::Ping(dawn_wire::Ping { nonce: 1 }),
    ];
    for message in &garbage {
        assert!(n.handle_wire(t0, peer, message).is_err());
    }
    let ev = events(&mut n);
    assert_eq!(
        misbehaviour(&ev),
        vec![(peer, MisbehaviourKind::Malformed); garbage.len()]
    );
    assert!(n.active_view().is_empty() && transmits(&mut n).is_empty());
    // A well-formed wire message goes through.
    n.handle_wire(t0, peer, &GossipMessage::Join.to_wire().unwrap())
        .unwrap();
    assert_eq!(n.active_view(), [peer]);
}

#[test]
fn forged_envelope_in_wire_bytes_is_caught_too() {
    let t0 = Instant::now();
    let mut n = node(0, t0);
    let wire = GossipMessage::Gossip {
        hops: 0,
        envelope: forged(),
    }
    .to_wire()
    .unwrap();
    let bytes = wire.encode().unwrap();
    let decoded = Message::decode(&bytes).unwrap();
    n.handle_wire(t0, id(1), &decoded).unwrap();
    assert_eq!(
        misbehaviour(&events(&mut n)),
        [(id(1), MisbehaviourKind::InvalidSignature)]
    );
}

#[test]
fn a_flooding_peer_is_rate_limited_and_memory_stays_capped() {
    let t0 = Instant::now();
    let mut config = Config::new();
    config.limits.inbound_rate = 100.0;
    config.limits.inbound_burst = 200.0;
    config.limits.missing_capacity = 64;
    config.limits.requested_capacity = 32;
    config.limits.topic_capacity = 4;
    let limits = config.limits.clone();
    let mut n = node_with(0, config, t0);
    let flooder = id(1);
    n.handle_message(t0, flooder, GossipMessage::Join);
    let _ = transmits(&mut n);
    let mut accepted_before = n.stats().messages_received;
    let mut now = t0;
    for round in 0u32..50 {
        now += Duration::from_millis(100);
        for i in 0u32..100 {
            let seed = round * 1000 + i;
            let mut raw = [0u8; 32];
            raw[..4].copy_from_slice(&seed.to_be_bytes());
            let topic = Topic::new(&format!("flood/{}", seed % 50)).unwrap();
            n.handle_message(
                now,
                flooder,
                GossipMessage::IHave {
                    topic: topic.clone(),
                    entries: vec![IHaveEntry {
                        id: MessageId::from_bytes(raw),
                        hops: 1,
                    }],
                },
            );
            raw[31] = 1;
            n.handle_message(
                now,
                flooder,
                GossipMessage::Digest {
                    respond: true,
                    ids: vec![MessageId::from_bytes(raw)],
                },
            );
        }
        // The driver drains, as it should; memory must stay bounded regardless.
        let _ = transmits(&mut n);
        let sizes = n.sizes();
        assert!(sizes.missing <= limits.missing_capacity);
        assert!(sizes.requested <= limits.requested_capacity);
        assert!(sizes.topics <= limits.topic_capacity);
        n.handle_timeout(now);
    }
    let accepted = n.stats().messages_received - accepted_before;
    // 5 s at 100/s plus the burst of 200, of 10,000 sent.
    assert!(accepted <= 5 * 100 + 200 + 10, "accepted {accepted}");
    assert!(n.stats().rate_limited > 9_000);
    let flood_reports = misbehaviour(&events(&mut n))
        .into_iter()
        .filter(|(p, k)| *p == flooder && *k == MisbehaviourKind::Flooding)
        .count();
    assert!((1..=6).contains(&flood_reports), "{flood_reports} reports");
    accepted_before = n.stats().messages_received;
    // An honest peer is unaffected by the flooder's bucket.
    n.handle_message(now, id(2), GossipMessage::Join);
    assert_eq!(n.stats().messages_received, accepted_before + 1);
}

#[test]
fn caches_and_queues_stay_capped_when_the_driver_stops_draining() {
    let t0 = Instant::now();
    let mut config = Config::new();
    config.limits.seen_capacity = 100;
    config.limits.cache_capacity = 50;
    config.limits.cache_bytes = 20_000;
    config.limits.event_queue = 30;
    config.limits.transmit_queue_per_peer = 40;
    config.limits.lazy_queue_per_peer = 25;
    config.limits.inbound_rate = 1e6;
    config.limits.inbound_burst = 1e6;
    let limits = config.limits.clone();
    let mut n = node_with(0, config, t0);
    let (a, b, c) = (id(1), id(2), id(3));
    for peer in [a, b, c] {
        n.handle_message(t0, peer, GossipMessage::Join);
    }
    n.handle_message(t0, b, GossipMessage::Prune { topic: topic() });
    // Valid, distinct, signed messages from an origin that floods through neighbour a,
    // while nobody drains transmits or events.
    let origin = key(9);
    for seq in 0..400u64 {
        let envelope =
            SignedEnvelope::sign(&origin, "dawn/test", UNIX, seq, vec![0u8; 300]).unwrap();
        n.handle_message(t0, a, GossipMessage::Gossip { hops: 0, envelope });
        let sizes = n.sizes();
        assert!(sizes.seen <= limits.seen_capacity);
        assert!(sizes.cached <= limits.cache_capacity);
        assert!(sizes.cached_bytes <= limits.cache_bytes);
        assert!(sizes.events <= limits.event_queue);
        assert!(sizes.transmits <= 3 * limits.transmit_queue_per_peer);
        assert!(sizes.lazy_entries <= limits.lazy_queue_per_peer);
    }
    let stats = n.stats();
    assert!(stats.events_dropped > 0);
    assert!(stats.transmits_dropped > 0);
    assert!(stats.lazy_dropped > 0);
    assert_eq!(stats.delivered, 400, "counted even when the queue was full");
}
