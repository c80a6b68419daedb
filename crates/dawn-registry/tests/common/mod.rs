//! The registry core on `dawn-sim`: an adapter implementing `dawn_sim::Protocol`, and the
//! measured scenario shared by the integration test and `examples/sim.rs`.
//!
//! Scenario (all times simulated; links 10–50 ms, fixed per link):
//!
//! 1. **Register**: every node registers agent `a` at a random time in the first 2 s.
//! 2. **Partition** at 3 s: the nodes split into two random groups (half each by default).
//! 3. **Change** from 3.5 s to 6.5 s: every node makes one random change at a random time:
//!    removes `a`, updates `a`, or registers `b`.
//! 4. **Heal** at 7 s, then run until every node holds the same directory (checked every
//!    10 ms of simulated time), and 2 s more to measure the cost of staying in sync.
//!
//! Broadcasts are modelled as the gossip layer's job done perfectly: a node's
//! `Transmit::Broadcast` is sent to every other node directly (so it crosses no partition).
//! Reconciliation runs between each node and its neighbours on a ring with random chords
//! (about 6 each), told to the registry with `peer_up`.
//!
//! All registries share one [`VerifyMemo`], so each distinct manifest signature is verified
//! once per process instead of once per node: verification is deterministic, so this changes
//! no outcome, only the CPU time of a 1,000-node run in a debug build.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dawn_identity::{AgentId, NodeId};
use dawn_registry::{
    AgentRecord, Event, Registry, RegistryConfig, ToolSummary, Transmit, VerifyMemo,
};
use dawn_sim::{Action, LatencyModel, Protocol, Sim, SimConfig, SimRng, derive_seed};
use dawn_wire::FRAME_HEADER_LEN;

/// The wall-clock time every simulated node believes the simulation started at.
pub const UNIX_START_MS: u64 = 1_700_000_000_000;

/// A datagram: a registry message, and whether it is a broadcast copy.
#[derive(Debug, Clone)]
pub struct Msg {
    pub broadcast: bool,
    pub bytes: Bytes,
}

/// One simulated node: a registry, plus what the scenario measures.
pub struct Node {
    pub registry: Registry,
    me: NodeId,
    all: Rc<[NodeId]>,
    /// A broadcast being handed out, one copy per poll: the payload and the next index.
    fanout: Option<(Bytes, usize)>,
    outbox: VecDeque<(NodeId, Msg)>,
    now: Instant,
    /// When the node's visible directory last changed.
    pub last_change: Option<Instant>,
    pub misbehaviours: u64,
    /// Bytes this node put on the wire as broadcast copies.
    pub broadcast_bytes: u64,
}

impl Node {
    pub fn new(registry: Registry, all: Rc<[NodeId]>, now: Instant) -> Self {
        Self {
            me: *registry.node_id(),
            registry,
            all,
            fanout: None,
            outbox: VecDeque::new(),
            now,
            last_change: None,
            misbehaviours: 0,
            broadcast_bytes: 0,
        }
    }
}

impl Protocol for Node {
    type Message = Msg;
    type Event = ();

    fn handle_message(&mut self, now: Instant, from: NodeId, message: Msg) {
        self.now = now;
        let _ = self.registry.handle_bytes(now, from, &message.bytes);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.registry.handle_timeout(now);
    }

    fn poll_transmit(&mut self) -> Option<(NodeId, Msg)> {
        loop {
            if let Some(next) = self.outbox.pop_front() {
                return Some(next);
            }
            if let Some((payload, index)) = &mut self.fanout {
                while let Some(id) = self.all.get(*index) {
                    *index += 1;
                    if *id != self.me {
                        self.broadcast_bytes += payload.len() as u64;
                        let msg = Msg {
                            broadcast: true,
                            bytes: payload.clone(),
                        };
                        return Some((*id, msg));
                    }
                }
                self.fanout = None;
            }
            match self.registry.poll_transmit()? {
                Transmit::Broadcast { payload } => self.fanout = Some((payload, 0)),
                Transmit::Send { to, payload } => {
                    return Some((
                        to,
                        Msg {
                            broadcast: false,
                            bytes: payload,
                        },
                    ));
                }
                _ => {}
            }
        }
    }

    fn poll_event(&mut self) -> Option<()> {
        while let Some(event) = self.registry.poll_event() {
            match event {
                Event::Changed { .. } | Event::Expired { .. } => self.last_change = Some(self.now),
                Event::Misbehaviour { .. } => self.misbehaviours += 1,
                _ => {}
            }
        }
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.registry.poll_timeout()
    }

    fn wire_size(message: &Msg) -> usize {
        message.bytes.len() + FRAME_HEADER_LEN
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub nodes: usize,
    pub seed: u64,
    pub loss: f64,
    /// Random chords per node on the reconciliation ring.
    pub chords: usize,
    /// Fraction of the nodes in the first partition group.
    pub split: f64,
    pub register_over: Duration,
    pub partition_at: Duration,
    pub changes_from: Duration,
    pub changes_over: Duration,
    pub heal_at: Duration,
    /// Longest wait for convergence after the heal.
    pub max_wait: Duration,
    /// How long to keep running once converged, to measure the cost of staying in sync.
    pub idle: Duration,
    pub config: RegistryConfig,
}

impl Scenario {
    pub fn new(nodes: usize, seed: u64) -> Self {
        Self {
            nodes,
            seed,
            loss: 0.0,
            chords: 2,
            split: 0.5,
            register_over: Duration::from_secs(2),
            partition_at: Duration::from_secs(3),
            changes_from: Duration::from_millis(3500),
            changes_over: Duration::from_secs(3),
            heal_at: Duration::from_secs(7),
            max_wait: Duration::from_secs(30),
            idle: Duration::from_secs(2),
            config: RegistryConfig::default(),
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: Scenario,
    /// Time from the heal until every node held the same directory.
    pub converged_after_heal: Option<Duration>,
    /// Whether that directory is exactly every node's own agents.
    pub correct: bool,
    pub agents: usize,
    pub owners: usize,
    /// Owners whose agents changed during the partition.
    pub changed_owners: usize,
    /// Owner updates the nodes lacked at the heal, all nodes together: for each node, the
    /// owners of the other half (every owner changed during the partition).
    pub lacked_updates: u64,
    /// Reconciliation bytes (fingerprints, lists, requests) and update bytes sent from the
    /// heal until convergence, all nodes together.
    pub reconcile_bytes: u64,
    pub update_bytes: u64,
    /// Bytes per node per second spent reconciling once in sync.
    pub idle_bytes_per_node_s: f64,
    /// Broadcast copies' bytes over the whole run, all nodes together.
    pub broadcast_bytes: u64,
    /// Bytes of one node's exported state at the end: a whole-state transfer.
    pub state_bytes: usize,
    pub misbehaviours: u64,
    pub signatures_verified: u64,
    pub sim_messages: u64,
    pub trace: u64,
}

impl Report {
    /// One line of figures.
    pub fn line(&self) -> String {
        let s = &self.scenario;
        let converged = self.converged_after_heal.map_or_else(
            || "never".to_owned(),
            |d| format!("{:.2}s", d.as_secs_f64()),
        );
        let per_update =
            (self.reconcile_bytes + self.update_bytes) as f64 / self.lacked_updates.max(1) as f64;
        format!(
            "nodes={} seed={} loss={} agents={} owners={} converged_after_heal={} correct={} \
             lacked_updates={} heal_reconcile_bytes={} heal_update_bytes={} \
             bytes_per_lacked_update={:.0} whole_state_bytes_per_node={} \
             idle_bytes_per_node_s={:.1} broadcast_bytes={} misbehaviours={} \
             signatures_verified={} sim_messages={}",
            s.nodes,
            s.seed,
            s.loss,
            self.agents,
            self.owners,
            converged,
            self.correct,
            self.lacked_updates,
            self.reconcile_bytes,
            self.update_bytes,
            per_update,
            self.state_bytes,
            self.idle_bytes_per_node_s,
            self.broadcast_bytes,
            self.misbehaviours,
            self.signatures_verified,
            self.sim_messages,
        )
    }
}

fn record(id: &str, version: u64) -> AgentRecord {
    let mut r = AgentRecord::new(id.parse::<AgentId>().unwrap(), format!("Agent {id}"));
    r.description = format!("a simulated agent, version {version}");
    r.tools.push(ToolSummary {
        name: "run".into(),
        description: "does its job".into(),
    });
    r.version = version;
    r
}

fn sent_bytes(sim: &Sim<Node>) -> (u64, u64) {
    sim.nodes()
        .filter_map(|(_, n)| n)
        .map(|n| {
            let s = n.registry.stats();
            (s.reconcile_bytes_sent, s.update_bytes_sent)
        })
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
}

fn converged(sim: &Sim<Node>) -> bool {
    let mut digests = sim
        .nodes()
        .filter_map(|(_, n)| n)
        .map(|n| n.registry.state_digest());
    let Some(first) = digests.next() else {
        return true;
    };
    digests.all(|d| d == first)
}

/// Runs the scenario.
pub fn run(s: &Scenario) -> Report {
    let mut sim: Sim<Node> = Sim::new(SimConfig {
        seed: s.seed,
        latency: LatencyModel::Uniform {
            min: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
        loss: s.loss,
        record_events: false,
        ..SimConfig::default()
    })
    .unwrap();
    let t0 = sim.now();
    let ids: Vec<NodeId> = (0..s.nodes as u64).map(dawn_sim::node_id).collect();
    let all: Rc<[NodeId]> = Rc::from(ids.clone());
    let memo = VerifyMemo::new(1 << 20);
    for (i, id) in ids.iter().enumerate() {
        let registry = Registry::new(
            dawn_sim::signing_key(i as u64),
            s.config.clone(),
            derive_seed(s.seed, i as u64),
            t0,
            UNIX_START_MS,
        )
        .unwrap()
        .with_verify_memo(memo.clone());
        sim.add_node(*id, Node::new(registry, all.clone(), t0))
            .unwrap();
    }
    let graph = dawn_sim::ring_with_chords(s.nodes, s.chords, sim.rng());
    for (i, peers) in graph.iter().enumerate() {
        let peers: Vec<NodeId> = peers.iter().map(|&p| ids[p]).collect();
        sim.with_node(ids[i], |node, now| {
            for p in peers {
                node.registry.peer_up(now, p);
            }
        })
        .unwrap();
    }

    let mut rng = SimRng::new(derive_seed(s.seed, u64::MAX));
    // Phase 1: everyone registers `a`.
    for id in &ids {
        let at = t0 + rng.duration_between(Duration::ZERO, s.register_over);
        sim.schedule(
            at,
            Action::input(*id, |node: &mut Node, now| {
                node.registry.upsert_local(now, record("a", 1)).unwrap();
            }),
        )
        .unwrap();
    }
    // Phase 2: a partition, and one change per node.
    let mut shuffled = ids.clone();
    rng.shuffle(&mut shuffled);
    let first = ((s.nodes as f64) * s.split).round() as usize;
    let first = first.min(s.nodes);
    let group: Vec<NodeId> = shuffled[..first].to_vec();
    let lacked_updates = 2 * (first as u64) * (s.nodes - first) as u64;
    sim.schedule(t0 + s.partition_at, Action::Partition(vec![group]))
        .unwrap();
    for id in &ids {
        let at = t0 + s.changes_from + rng.duration_between(Duration::ZERO, s.changes_over);
        let change = rng.below(3);
        sim.schedule(
            at,
            Action::input(*id, move |node: &mut Node, now| {
                let r = &mut node.registry;
                match change {
                    0 => {
                        r.remove_local(now, &"a".parse().unwrap()).unwrap();
                    }
                    1 => r.upsert_local(now, record("a", 2)).unwrap(),
                    _ => r.upsert_local(now, record("b", 1)).unwrap(),
                }
            }),
        )
        .unwrap();
    }
    let heal = t0 + s.heal_at;
    sim.schedule(heal, Action::Heal).unwrap();

    sim.run_until(heal);
    let before = sent_bytes(&sim);
    let mut converged_after_heal = None;
    let mut t = heal;
    while t < heal + s.max_wait {
        t += Duration::from_millis(10);
        sim.run_until(t);
        if converged(&sim) {
            converged_after_heal = Some(t - heal);
            break;
        }
    }
    let after = sent_bytes(&sim);
    sim.run_until(t + s.idle);
    let idle = sent_bytes(&sim);
    let idle_bytes = (idle.0 + idle.1) - (after.0 + after.1);

    // The truth: every node's own agents.
    let mut expected: Vec<(NodeId, AgentRecord)> = Vec::new();
    let mut changed_owners = 0;
    for (id, node) in sim.nodes() {
        let node = node.unwrap();
        let mine: Vec<AgentRecord> = node.registry.local_agents().cloned().collect();
        if mine != [record("a", 1)] {
            changed_owners += 1;
        }
        expected.extend(mine.into_iter().map(|r| (*id, r)));
    }
    let first_node = sim.node(&ids[0]).unwrap();
    expected.sort_by(|a, b| (a.0, &a.1.agent_id).cmp(&(b.0, &b.1.agent_id)));
    let held: Vec<(NodeId, AgentRecord)> = first_node
        .registry
        .agents()
        .map(|(o, r)| (o, r.clone()))
        .collect();
    let correct = converged(&sim) && held == expected;
    let nodes: Vec<&Node> = sim.nodes().filter_map(|(_, n)| n).collect();
    Report {
        scenario: s.clone(),
        converged_after_heal,
        correct,
        agents: first_node.registry.len(),
        owners: first_node.registry.owner_count(),
        changed_owners,
        lacked_updates,
        reconcile_bytes: after.0 - before.0,
        update_bytes: after.1 - before.1,
        idle_bytes_per_node_s: idle_bytes as f64 / s.nodes as f64 / s.idle.as_secs_f64(),
        broadcast_bytes: nodes.iter().map(|n| n.broadcast_bytes).sum(),
        state_bytes: first_node.registry.export_state().unwrap().len(),
        misbehaviours: nodes.iter().map(|n| n.misbehaviours).sum(),
        signatures_verified: nodes
            .iter()
            .map(|n| n.registry.stats().signatures_verified)
            .sum(),
        sim_messages: sim.stats().sent.messages,
        trace: sim.trace_digest(),
    }
}
