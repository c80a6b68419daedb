//! The node's in-memory view of its peers: what `GET /api/peers` shows and what the dialers
//! read. The store holds the durable copy; this table is rebuilt from it at start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use dawn_identity::NodeId;

use crate::api::{Direction, PeerInfo};

/// Most peers remembered; past this the longest-unseen disconnected peer is forgotten.
pub(crate) const MAX_KNOWN_PEERS: usize = 4096;

/// Most addresses remembered per peer, most recent first.
pub(crate) const MAX_ADDRS_PER_PEER: usize = 8;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug, Clone)]
struct Entry {
    addresses: Vec<SocketAddr>,
    /// The transport's id of the pooled connection, if one is up. The transport keeps one
    /// connection per peer and reports a replaced one only through the new one's arrival.
    connection: Option<u64>,
    direction: Option<Direction>,
    first_seen_unix_ms: u64,
    last_seen_unix_ms: Option<u64>,
    failures: u32,
    bootstrap: bool,
}

impl Entry {
    fn new(now: u64) -> Self {
        Self {
            addresses: Vec::new(),
            connection: None,
            direction: None,
            first_seen_unix_ms: now,
            last_seen_unix_ms: None,
            failures: 0,
            bootstrap: false,
        }
    }

    fn add_address(&mut self, addr: SocketAddr) {
        self.addresses.retain(|a| *a != addr);
        self.addresses.insert(0, addr);
        self.addresses.truncate(MAX_ADDRS_PER_PEER);
    }
}

/// A durable peer record, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerRecord {
    pub(crate) node_id: NodeId,
    pub(crate) addresses: Vec<SocketAddr>,
    pub(crate) first_seen_unix_ms: u64,
    pub(crate) last_seen_unix_ms: Option<u64>,
    pub(crate) failures: u32,
}

/// What a change to the table means for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The peer's record after the change.
    pub(crate) record: PeerRecord,
    /// A peer forgotten to make room, to delete from the store too.
    pub(crate) evicted: Option<NodeId>,
}

#[derive(Debug)]
pub(crate) struct PeerTable {
    own_id: NodeId,
    peers: HashMap<NodeId, Entry>,
    capacity: usize,
}

impl PeerTable {
    pub(crate) fn new(own_id: NodeId) -> Self {
        Self::with_capacity(own_id, MAX_KNOWN_PEERS)
    }

    pub(crate) fn with_capacity(own_id: NodeId, capacity: usize) -> Self {
        Self {
            own_id,
            peers: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds records loaded from the store (the node itself is skipped). Returns how many were
    /// taken.
    pub(crate) fn load(&mut self, records: impl IntoIterator<Item = PeerRecord>) -> usize {
        let mut taken = 0;
        for record in records {
            if record.node_id == self.own_id || self.peers.len() >= self.capacity {
                continue;
            }
            let mut addresses = record.addresses;
            addresses.truncate(MAX_ADDRS_PER_PEER);
            self.peers.insert(
                record.node_id,
                Entry {
                    addresses,
                    connection: None,
                    direction: None,
                    first_seen_unix_ms: record.first_seen_unix_ms,
                    last_seen_unix_ms: record.last_seen_unix_ms,
                    failures: record.failures,
                    bootstrap: false,
                },
            );
            taken += 1;
        }
        taken
    }

    /// Marks a peer as a bootstrap peer, adding it with `addrs` if it is new.
    pub(crate) fn add_bootstrap(
        &mut self,
        id: NodeId,
        addrs: &[SocketAddr],
        now: u64,
    ) -> Option<Change> {
        if id == self.own_id {
            return None;
        }
        let evicted = self.make_room(id);
        let entry = self.peers.entry(id).or_insert_with(|| Entry::new(now));
        entry.bootstrap = true;
        for addr in addrs.iter().rev() {
            entry.add_address(*addr);
        }
        Some(Change {
            record: record(id, entry),
            evicted,
        })
    }

    /// Connection `connection` to `id` came up (and replaced any earlier one). `None` for the
    /// node itself and for a connection already recorded.
    pub(crate) fn connected(
        &mut self,
        id: NodeId,
        connection: u64,
        direction: Direction,
        remote: SocketAddr,
        now: u64,
    ) -> Option<Change> {
        if id == self.own_id {
            return None;
        }
        if self
            .peers
            .get(&id)
            .is_some_and(|e| e.connection == Some(connection))
        {
            // Already recorded: the dialler and the event stream both report a new connection.
            return None;
        }
        let evicted = self.make_room(id);
        let entry = self.peers.entry(id).or_insert_with(|| Entry::new(now));
        entry.connection = Some(connection);
        entry.direction = Some(direction);
        entry.last_seen_unix_ms = Some(now);
        entry.failures = 0;
        entry.add_address(remote);
        Some(Change {
            record: record(id, entry),
            evicted,
        })
    }

    /// Connection `connection` to `id` went down. A connection that is not the current one
    /// (already replaced) changes nothing.
    pub(crate) fn disconnected(&mut self, id: NodeId, connection: u64, now: u64) -> Option<Change> {
        let entry = self.peers.get_mut(&id)?;
        if entry.connection != Some(connection) {
            return None;
        }
        entry.connection = None;
        entry.direction = None;
        entry.last_seen_unix_ms = Some(now);
        Some(Change {
            record: record(id, entry),
            evicted: None,
        })
    }

    /// A dial to `id` failed.
    pub(crate) fn dial_failed(&mut self, id: NodeId) -> Option<Change> {
        let entry = self.peers.get_mut(&id)?;
        entry.failures = entry.failures.saturating_add(1);
        Some(Change {
            record: record(id, entry),
            evicted: None,
        })
    }

    /// Every peer with a connection up, and that connection's id.
    pub(crate) fn connections(&self) -> Vec<(NodeId, u64)> {
        self.peers
            .iter()
            .filter_map(|(id, e)| e.connection.map(|c| (*id, c)))
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn is_connected(&self, id: &NodeId) -> bool {
        self.peers.get(id).is_some_and(|e| e.connection.is_some())
    }

    pub(crate) fn addresses(&self, id: &NodeId) -> Vec<SocketAddr> {
        self.peers
            .get(id)
            .map(|e| e.addresses.clone())
            .unwrap_or_default()
    }

    /// Peers worth redialling after a restart: known, not bootstrap (those have their own
    /// dialers), with at least one address, most recently seen first.
    pub(crate) fn redial_candidates(&self, max_failures: u32) -> Vec<NodeId> {
        let mut ids: Vec<(Option<u64>, NodeId)> = self
            .peers
            .iter()
            .filter(|(_, e)| !e.bootstrap && !e.addresses.is_empty() && e.failures < max_failures)
            .map(|(id, e)| (e.last_seen_unix_ms, *id))
            .collect();
        ids.sort_by(|a, b| b.cmp(a));
        ids.into_iter().map(|(_, id)| id).collect()
    }

    pub(crate) fn connected_count(&self) -> usize {
        self.peers
            .values()
            .filter(|e| e.connection.is_some())
            .count()
    }

    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// Every peer, connected first, then by node id.
    pub(crate) fn snapshot(&self, now: u64) -> Vec<PeerInfo> {
        let mut peers: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(id, e)| PeerInfo {
                node_id: *id,
                addresses: e.addresses.clone(),
                connected: e.connection.is_some(),
                direction: e.direction,
                first_seen_unix_ms: e.first_seen_unix_ms,
                last_seen_unix_ms: if e.connection.is_some() {
                    Some(now)
                } else {
                    e.last_seen_unix_ms
                },
                failures: e.failures,
                bootstrap: e.bootstrap,
                view: None,
                trust_level: None,
                trust_score: None,
            })
            .collect();
        peers.sort_by(|a, b| {
            b.connected
                .cmp(&a.connected)
                .then(a.node_id.cmp(&b.node_id))
        });
        peers
    }

    /// Forgets the longest-unseen disconnected, non-bootstrap peer if the table is full and
    /// `incoming` is new.
    fn make_room(&mut self, incoming: NodeId) -> Option<NodeId> {
        if self.peers.len() < self.capacity || self.peers.contains_key(&incoming) {
            return None;
        }
        let victim = self
            .peers
            .iter()
            .filter(|(_, e)| e.connection.is_none() && !e.bootstrap)
            .min_by_key(|(id, e)| (e.last_seen_unix_ms, **id))
            .map(|(id, _)| *id)?;
        self.peers.remove(&victim);
        Some(victim)
    }
}

fn record(id: NodeId, entry: &Entry) -> PeerRecord {
    PeerRecord {
        node_id: id,
        addresses: entry.addresses.clone(),
        first_seen_unix_ms: entry.first_seen_unix_ms,
        last_seen_unix_ms: entry.last_seen_unix_ms,
        failures: entry.failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_crypto::SigningKey;

    fn id(seed: u8) -> NodeId {
        SigningKey::from_bytes(&[seed; 32]).verifying_key().into()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn connect_disconnect_and_failures() {
        let mut table = PeerTable::new(id(0));
        assert!(
            table
                .connected(id(0), 1, Direction::Inbound, addr(1), 5)
                .is_none()
        );
        table.add_bootstrap(id(1), &[addr(7600)], 10).unwrap();
        table.dial_failed(id(1)).unwrap();
        let change = table.dial_failed(id(1)).unwrap();
        assert_eq!(change.record.failures, 2);
        assert!(!table.is_connected(&id(1)));

        let change = table
            .connected(id(1), 1, Direction::Outbound, addr(7600), 20)
            .unwrap();
        assert_eq!(change.record.failures, 0);
        assert_eq!(change.record.last_seen_unix_ms, Some(20));
        assert!(
            table
                .connected(id(1), 1, Direction::Outbound, addr(7600), 21)
                .is_none()
        );
        table
            .connected(id(2), 2, Direction::Inbound, addr(9000), 30)
            .unwrap();
        assert_eq!(table.connected_count(), 2);

        let snapshot = table.snapshot(99);
        assert_eq!(snapshot.len(), 2);
        assert!(
            snapshot
                .iter()
                .all(|p| p.connected && p.last_seen_unix_ms == Some(99))
        );
        let two = snapshot.iter().find(|p| p.node_id == id(2)).unwrap();
        assert_eq!(two.direction, Some(Direction::Inbound));
        assert_eq!(two.addresses, vec![addr(9000)]);
        assert_eq!(two.first_seen_unix_ms, 30);

        table.disconnected(id(2), 2, 40).unwrap();
        let snapshot = table.snapshot(99);
        assert_eq!(snapshot[0].node_id, id(1), "connected peers come first");
        let two = snapshot.iter().find(|p| p.node_id == id(2)).unwrap();
        assert!(!two.connected);
        assert_eq!(two.direction, None);
        assert_eq!(two.last_seen_unix_ms, Some(40));
        assert_eq!(table.redial_candidates(10), vec![id(2)]);
        assert!(table.redial_candidates(0).is_empty());
    }

    #[test]
    fn a_replaced_connection_closing_changes_nothing() {
        let mut table = PeerTable::new(id(0));
        table.connected(id(1), 1, Direction::Outbound, addr(1), 1);
        // The transport replaced connection 1 with 2 (a duplicate tie-break).
        table.connected(id(1), 2, Direction::Inbound, addr(1), 2);
        assert!(table.disconnected(id(1), 1, 3).is_none());
        assert!(table.is_connected(&id(1)));
        assert_eq!(table.snapshot(5)[0].direction, Some(Direction::Inbound));
        assert_eq!(table.connections(), vec![(id(1), 2)]);
        table.disconnected(id(1), 2, 4).unwrap();
        assert!(!table.is_connected(&id(1)));
        assert!(table.disconnected(id(1), 2, 5).is_none());
        assert_eq!(table.connected_count(), 0);
    }

    #[test]
    fn addresses_are_bounded_and_most_recent_first() {
        let mut table = PeerTable::new(id(0));
        for port in 1..=20 {
            table.connected(
                id(1),
                u64::from(port),
                Direction::Inbound,
                addr(port),
                u64::from(port),
            );
        }
        table.connected(id(1), 99, Direction::Inbound, addr(15), 21);
        let addrs = table.addresses(&id(1));
        assert_eq!(addrs.len(), MAX_ADDRS_PER_PEER);
        assert_eq!(addrs[0], addr(15));
        assert_eq!(addrs[1], addr(20));
        assert_eq!(addrs.iter().filter(|a| **a == addr(15)).count(), 1);
    }

    #[test]
    fn a_full_table_forgets_the_longest_unseen_disconnected_peer() {
        let mut table = PeerTable::with_capacity(id(0), 3);
        table.add_bootstrap(id(1), &[addr(1)], 1);
        table.connected(id(2), 2, Direction::Inbound, addr(2), 2);
        table.disconnected(id(2), 2, 3);
        table.connected(id(3), 3, Direction::Inbound, addr(3), 4);
        table.disconnected(id(3), 3, 5);
        let change = table
            .connected(id(4), 4, Direction::Inbound, addr(4), 6)
            .unwrap();
        // id(1) is bootstrap and never seen, but bootstrap peers are kept.
        assert_eq!(change.evicted, Some(id(2)));
        assert_eq!(table.len(), 3);
        // With only connected or bootstrap peers left, newcomers are still admitted.
        table.connected(id(3), 5, Direction::Inbound, addr(3), 7);
        let change = table
            .connected(id(5), 6, Direction::Inbound, addr(5), 8)
            .unwrap();
        assert_eq!(change.evicted, None);
        assert_eq!(table.len(), 4);
    }

    #[test]
    fn load_skips_self_and_respects_capacity() {
        let mut table = PeerTable::with_capacity(id(0), 2);
        let rec = |seed| PeerRecord {
            node_id: id(seed),
            addresses: vec![addr(u16::from(seed))],
            first_seen_unix_ms: 1,
            last_seen_unix_ms: Some(2),
            failures: 3,
        };
        assert_eq!(table.load([rec(0), rec(1), rec(2), rec(3)]), 2);
        let snapshot = table.snapshot(10);
        assert_eq!(snapshot.len(), 2);
        assert!(snapshot.iter().all(|p| p.failures == 3 && !p.connected));
    }
}
