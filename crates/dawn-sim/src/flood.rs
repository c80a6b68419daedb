//! A naive flooding protocol: the simulator's own test load, and a baseline to compare real
//! dissemination protocols against.

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use dawn_identity::NodeId;

use crate::protocol::Protocol;
use crate::rng::SimRng;

/// Bytes of a [`FloodMessage`] on the wire besides its payload: id, hop count, payload length.
pub const FLOOD_HEADER_LEN: usize = 16;

/// A flooded broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FloodMessage {
    /// The broadcast's id, unique per broadcast.
    pub id: u64,
    /// How many links it has crossed.
    pub hops: u32,
    /// Size of the (simulated) payload in bytes.
    pub payload_len: u32,
}

/// A broadcast reached a node for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FloodDelivery {
    /// The broadcast's id.
    pub id: u64,
    /// How many links it crossed to get here (0 at its origin).
    pub hops: u32,
}

/// Floods every broadcast to all neighbours the first time it is seen.
///
/// Deliberately simple: no timers, no repair, `O(degree)` messages per node per broadcast.
/// It is what the simulator's tests and benchmarks run, and the cost a smarter protocol
/// (Plumtree) should beat.
#[derive(Debug, Clone, Default)]
pub struct Flood {
    neighbours: Vec<NodeId>,
    seen: BTreeSet<u64>,
    /// Forwards waiting to be polled, by neighbour position (a `NodeId` is 192 bytes; this
    /// keeps the queue at 24 bytes an entry).
    outbox: VecDeque<(usize, FloodMessage)>,
    deliveries: VecDeque<FloodDelivery>,
}

impl Flood {
    /// A node that forwards to `neighbours`.
    #[must_use]
    pub const fn new(neighbours: Vec<NodeId>) -> Self {
        Self {
            neighbours,
            seen: BTreeSet::new(),
            outbox: VecDeque::new(),
            deliveries: VecDeque::new(),
        }
    }

    /// Starts broadcast `id` with a payload of `payload_len` bytes from this node. Does
    /// nothing if this node has already seen `id`.
    pub fn broadcast(&mut self, id: u64, payload_len: u32) {
        let message = FloodMessage {
            id,
            hops: 0,
            payload_len,
        };
        self.accept(None, message);
    }

    /// The neighbours this node forwards to.
    #[must_use]
    pub fn neighbours(&self) -> &[NodeId] {
        &self.neighbours
    }

    /// Whether this node has seen broadcast `id`.
    #[must_use]
    pub fn has_seen(&self, id: u64) -> bool {
        self.seen.contains(&id)
    }

    fn accept(&mut self, from: Option<NodeId>, message: FloodMessage) {
        if !self.seen.insert(message.id) {
            return;
        }
        self.deliveries.push_back(FloodDelivery {
            id: message.id,
            hops: message.hops,
        });
        let forward = FloodMessage {
            hops: message.hops.saturating_add(1),
            ..message
        };
        for (position, peer) in self.neighbours.iter().enumerate() {
            if Some(peer) != from.as_ref() {
                self.outbox.push_back((position, forward));
            }
        }
    }
}

impl Protocol for Flood {
    type Message = FloodMessage;
    type Event = FloodDelivery;

    fn handle_message(&mut self, _now: Instant, from: NodeId, message: FloodMessage) {
        self.accept(Some(from), message);
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<(NodeId, FloodMessage)> {
        loop {
            let (position, message) = self.outbox.pop_front()?;
            if let Some(peer) = self.neighbours.get(position) {
                return Some((*peer, message));
            }
        }
    }

    fn poll_event(&mut self) -> Option<FloodDelivery> {
        self.deliveries.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn wire_size(message: &FloodMessage) -> usize {
        FLOOD_HEADER_LEN + message.payload_len as usize
    }
}

/// A connected random graph on `n` nodes: a ring, plus `chords` random links from every node,
/// all links both ways. Returns each node's sorted neighbour indices. Average degree is about
/// `2 + 2 * chords`.
#[must_use]
pub fn ring_with_chords(n: usize, chords: usize, rng: &mut SimRng) -> Vec<Vec<usize>> {
    fn link(adjacency: &mut [BTreeSet<usize>], a: usize, b: usize) {
        if a != b {
            if let Some(set) = adjacency.get_mut(a) {
                set.insert(b);
            }
            if let Some(set) = adjacency.get_mut(b) {
                set.insert(a);
            }
        }
    }
    let mut adjacency: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for node in 0..n {
        link(&mut adjacency, node, (node + 1) % n);
        for _ in 0..chords {
            let other = rng.index(n);
            link(&mut adjacency, node, other);
        }
    }
    adjacency
        .into_iter()
        .map(|set| set.into_iter().collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_id;

    #[test]
    fn floods_once_and_not_back_to_the_sender() {
        let (a, b, c) = (node_id(0), node_id(1), node_id(2));
        let mut flood = Flood::new(vec![a, c]);
        let now = Instant::now();
        let message = FloodMessage {
            id: 9,
            hops: 2,
            payload_len: 100,
        };
        flood.handle_message(now, a, message);
        assert_eq!(flood.poll_event(), Some(FloodDelivery { id: 9, hops: 2 }));
        let forwarded = flood.poll_transmit().unwrap();
        assert_eq!(forwarded.0, c);
        assert_eq!(forwarded.1.hops, 3);
        assert_eq!(Flood::wire_size(&forwarded.1), 116);
        assert_eq!(flood.poll_transmit(), None);
        flood.handle_message(now, b, message);
        assert_eq!(flood.poll_event(), None);
        assert_eq!(flood.poll_transmit(), None);
        assert!(flood.has_seen(9));
        assert_eq!(flood.neighbours(), &[a, c]);
    }

    #[test]
    fn ring_with_chords_is_connected_and_symmetric() {
        let mut rng = SimRng::new(1);
        let graph = ring_with_chords(500, 2, &mut rng);
        for (node, peers) in graph.iter().enumerate() {
            assert!(!peers.contains(&node));
            for &peer in peers {
                assert!(graph[peer].contains(&node));
            }
        }
        let mut reached = vec![false; graph.len()];
        let mut stack = vec![0];
        while let Some(node) = stack.pop() {
            if !std::mem::replace(&mut reached[node], true) {
                stack.extend(&graph[node]);
            }
        }
        assert!(reached.iter().all(|&r| r));
        let edges: usize = graph.iter().map(Vec::len).sum();
        assert!(edges > 500 * 5 && edges <= 500 * 6, "{edges}");
    }
}
