//! The gossip core on `dawn-sim`: an adapter implementing `dawn_sim::Protocol`, and the
//! measured scenarios shared by the integration tests and `examples/sim.rs`.
//!
//! Scenario, in order (all times simulated, links uniform 10–50 ms, fixed per link):
//!
//! 1. **Join**: node `i` joins at `i × join_spacing` through up to 3 random earlier nodes.
//! 2. **Settle** for `settle`.
//! 3. **Warm-up**: `warmup` broadcasts from the sender, one per `interval`: the first floods
//!    every link and prunes the redundant ones, the next ones run on the settled tree.
//! 4. **Measured**: `measured` broadcasts, one per `interval`; each is followed for
//!    `interval` (and the run ends `tail` after the last one).
//!
//! Optional faults: `--churn P` crashes a fraction `P` of the nodes (never the sender) at
//! uniform times over the measured phase and restarts each after 1–5 s with empty state (it
//! joins again and catches up by anti-entropy); `--partition` splits the nodes into two
//! random halves for `partition_for` after the warm-up, has one node in each half broadcast
//! `measured` messages during the split, and measures how long after the heal the last node
//! gets the last of them.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dawn_gossip::{Config, Event, Gossip, GossipMessage, MessageId, Topic};
use dawn_identity::NodeId;
use dawn_sim::{Action, Churn, LatencyModel, Protocol, Sim, SimConfig, derive_seed};
use dawn_wire::FRAME_HEADER_LEN;

/// The wall-clock time every simulated node believes the simulation started at.
pub const UNIX_START_MS: u64 = 1_700_000_000_000;

/// The topic every scenario broadcasts on.
pub fn topic() -> Topic {
    Topic::new("dawn/sim").unwrap()
}

/// A gossip core as a simulated node, counting the payload-carrying messages it receives
/// per message id (for RMR).
pub struct SimNode {
    pub gossip: Gossip,
    pub payloads: BTreeMap<MessageId, u32>,
}

impl SimNode {
    /// Node `index` of a run with `seed`, created at `now` in a simulation started at `epoch`.
    pub fn new(index: u64, seed: u64, config: &Config, now: Instant, epoch: Instant) -> Self {
        let key = dawn_sim::signing_key(index);
        let unix_ms = UNIX_START_MS + u64::try_from((now - epoch).as_millis()).unwrap();
        let mut gossip =
            Gossip::new(key, config.clone(), derive_seed(seed, index), now, unix_ms).unwrap();
        gossip.subscribe(now, topic()).unwrap();
        Self {
            gossip,
            payloads: BTreeMap::new(),
        }
    }
}

impl Protocol for SimNode {
    type Message = GossipMessage;
    type Event = Event;

    fn handle_message(&mut self, now: Instant, from: NodeId, message: GossipMessage) {
        if let GossipMessage::Gossip { envelope, .. } | GossipMessage::Response { envelope, .. } =
            &message
        {
            *self.payloads.entry(MessageId::of(envelope)).or_default() += 1;
        }
        self.gossip.handle_message(now, from, message);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.gossip.handle_timeout(now);
    }

    fn poll_transmit(&mut self) -> Option<(NodeId, GossipMessage)> {
        self.gossip.poll_transmit().map(|t| (t.to, t.message))
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.gossip.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.gossip.poll_timeout()
    }

    fn wire_size(message: &GossipMessage) -> usize {
        message.approx_len() + FRAME_HEADER_LEN
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub nodes: usize,
    pub seed: u64,
    pub loss: f64,
    pub churn: f64,
    pub partition: bool,
    pub config: Config,
    pub join_spacing: Duration,
    pub settle: Duration,
    pub warmup: usize,
    pub measured: usize,
    pub interval: Duration,
    pub tail: Duration,
    pub partition_for: Duration,
    pub payload_len: usize,
}

impl Scenario {
    pub fn new(nodes: usize, seed: u64) -> Self {
        // Joins spread over about 5 s at any size, at least 1 ms apart.
        let spacing_us = (5_000_000 / nodes.max(1)).clamp(1_000, 10_000) as u64;
        Self {
            nodes,
            seed,
            loss: 0.0,
            churn: 0.0,
            partition: false,
            config: Config::new(),
            join_spacing: Duration::from_micros(spacing_us),
            settle: Duration::from_secs(10),
            warmup: 3,
            measured: 5,
            interval: Duration::from_secs(1),
            tail: Duration::from_secs(5),
            partition_for: Duration::from_secs(20),
            payload_len: 256,
        }
    }
}

/// Figures of one broadcast.
#[derive(Debug, Clone)]
pub struct Broadcast {
    pub id: MessageId,
    pub origin: NodeId,
    pub at: Instant,
    /// Live nodes other than the origin that got it / live nodes other than the origin.
    pub delivered: usize,
    pub live: usize,
    /// Highest hop count of a delivery (last-delivery hops).
    pub ldh: u16,
    /// Payload-carrying messages received for it, by every node, duplicates included.
    pub receptions: u64,
    /// Time from the broadcast until 99 % / 100 % of the live nodes had it.
    pub t99: Option<Duration>,
    pub t100: Option<Duration>,
    /// Time of the last delivery to a live node.
    pub last: Option<Instant>,
}

impl Broadcast {
    pub fn ratio(&self) -> f64 {
        self.delivered as f64 / self.live.max(1) as f64
    }

    /// Relative message redundancy: receptions / (nodes reached - 1) - 1, where the nodes
    /// reached include the origin.
    pub fn rmr(&self) -> f64 {
        self.receptions as f64 / self.delivered.max(1) as f64 - 1.0
    }
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: Scenario,
    pub broadcasts: Vec<Broadcast>,
    /// For `--partition`: time from the heal until every live node had every message
    /// broadcast during the split.
    pub converged_after_heal: Option<Duration>,
    pub sim_time: Duration,
    pub messages: u64,
    pub bytes: u64,
    pub misbehaviours: u64,
    /// Messages and bytes each node sends per second once the overlay is idle.
    pub idle: (f64, f64),
    /// The simulator's digest of every delivery, drop and timeout: equal digests, equal runs.
    pub trace: u64,
}

impl Report {
    pub fn min_ratio(&self) -> f64 {
        self.broadcasts
            .iter()
            .map(Broadcast::ratio)
            .fold(1.0, f64::min)
    }

    pub fn max_ldh(&self) -> u16 {
        self.broadcasts.iter().map(|b| b.ldh).max().unwrap_or(0)
    }

    pub fn max_rmr(&self) -> f64 {
        self.broadcasts
            .iter()
            .map(Broadcast::rmr)
            .fold(0.0, f64::max)
    }

    pub fn mean_rmr(&self) -> f64 {
        let n = self.broadcasts.len().max(1) as f64;
        self.broadcasts.iter().map(Broadcast::rmr).sum::<f64>() / n
    }

    pub fn max_t99(&self) -> Option<Duration> {
        self.broadcasts.iter().map(|b| b.t99).max().flatten()
    }

    pub fn max_t100(&self) -> Option<Duration> {
        if self.broadcasts.iter().any(|b| b.t100.is_none()) {
            return None;
        }
        self.broadcasts.iter().filter_map(|b| b.t100).max()
    }

    /// The one-line summary the example prints.
    pub fn line(&self) -> String {
        let s = &self.scenario;
        let ms =
            |d: Option<Duration>| d.map_or("never".to_owned(), |d| format!("{}ms", d.as_millis()));
        let mut line = format!(
            "nodes={} seed={} loss={} churn={} delivery={:.4} ldh={} rmr={:.4} (mean {:.4}) t99={} t100={}",
            s.nodes,
            s.seed,
            s.loss,
            s.churn,
            self.min_ratio(),
            self.max_ldh(),
            self.max_rmr(),
            self.mean_rmr(),
            ms(self.max_t99()),
            ms(self.max_t100()),
        );
        if s.partition {
            line.push_str(&format!(
                " heal_converged={}",
                ms(self.converged_after_heal)
            ));
        }
        line.push_str(&format!(
            " broadcasts={} idle={:.1}msg/s,{:.0}B/s per node sim_time={:.1}s msgs={} bytes={} misbehaviour={}",
            self.broadcasts.len(),
            self.idle.0,
            self.idle.1,
            self.sim_time.as_secs_f64(),
            self.messages,
            self.bytes,
            self.misbehaviours
        ));
        line
    }
}

fn bootstrap_for(sim: &mut Sim<SimNode>, ids: &[NodeId], below: usize) -> Vec<NodeId> {
    let mut picked = BTreeSet::new();
    let want = below.min(3);
    while picked.len() < want {
        picked.insert(sim.rng().index(below));
    }
    picked.into_iter().map(|i| ids[i]).collect()
}

/// Runs a scenario and measures it.
pub fn run(s: &Scenario) -> Report {
    let sim_config = SimConfig {
        seed: s.seed,
        latency: LatencyModel::Uniform {
            min: Duration::from_millis(10),
            max: Duration::from_millis(50),
        },
        loss: s.loss,
        ..SimConfig::default()
    };
    let mut sim: Sim<SimNode> = Sim::new(sim_config).unwrap();
    let epoch = sim.epoch();
    let ids: Vec<NodeId> = (0..s.nodes as u64).map(dawn_sim::node_id).collect();
    for (i, id) in ids.iter().enumerate() {
        sim.add_node(*id, SimNode::new(i as u64, s.seed, &s.config, epoch, epoch))
            .unwrap();
    }

    // 1. Joins.
    for i in 1..s.nodes {
        let bootstrap = bootstrap_for(&mut sim, &ids, i);
        let at = epoch + s.join_spacing * i as u32;
        sim.schedule(
            at,
            Action::input(ids[i], move |node: &mut SimNode, now| {
                node.gossip.join(now, &bootstrap);
            }),
        )
        .unwrap();
    }
    let joined = epoch + s.join_spacing * s.nodes as u32;
    // 2. Settle; the last 5 s of it measure the idle cost (keepalives, digests, shuffles).
    let quiet = Duration::from_secs(5).min(s.settle);
    sim.run_until(joined + s.settle - quiet);
    let idle_before = sim.stats().sent;
    sim.run_for(quiet);
    let idle_after = sim.stats().sent;
    let per_node_s = (s.nodes as f64 * quiet.as_secs_f64()).max(1.0);
    let idle = (
        (idle_after.messages - idle_before.messages) as f64 / per_node_s,
        (idle_after.bytes - idle_before.bytes) as f64 / per_node_s,
    );
    let _ = sim.drain_events().count();

    let sender = ids[sim.rng().index(s.nodes)];
    let payload = vec![0x5a; s.payload_len];
    let topic = topic();
    let broadcast = |sim: &mut Sim<SimNode>, from: NodeId, seq: usize| -> (MessageId, Instant) {
        let mut body = payload.clone();
        body[..8].copy_from_slice(&(seq as u64).to_be_bytes());
        let topic = topic.clone();
        sim.with_node(from, move |node, now| {
            (node.gossip.broadcast(now, &topic, body).unwrap(), now)
        })
        .unwrap()
    };

    // 3. Warm-up.
    for seq in 0..s.warmup {
        broadcast(&mut sim, sender, seq);
        sim.run_for(s.interval);
    }
    let _ = sim.drain_events().count();

    let mut sent: Vec<(MessageId, NodeId, Instant)> = Vec::new();
    let mut heal_at = None;
    if s.partition {
        let mut order: Vec<usize> = (0..s.nodes).collect();
        sim.rng().shuffle(&mut order);
        let half: Vec<NodeId> = order[..s.nodes / 2].iter().map(|&i| ids[i]).collect();
        let other: Vec<NodeId> = order[s.nodes / 2..].iter().map(|&i| ids[i]).collect();
        let senders = [half[0], other[0]];
        sim.partition(&[half, other]).unwrap();
        let split_at = sim.now();
        // Let failure detection run, then broadcast on both sides.
        sim.run_for(Duration::from_secs(5));
        for seq in 0..s.measured {
            for (side, from) in senders.iter().enumerate() {
                let (id, at) = broadcast(&mut sim, *from, 1000 + 2 * seq + side);
                sent.push((id, *from, at));
            }
            sim.run_for(s.interval);
        }
        sim.run_until(split_at + s.partition_for);
        sim.heal();
        heal_at = Some(sim.now());
        sim.run_for(Duration::from_secs(30));
    } else {
        if s.churn > 0.0 {
            let seed = s.seed;
            let config = s.config.clone();
            let all = ids.clone();
            let mut picker = dawn_sim::SimRng::new(derive_seed(seed, u64::MAX));
            let index_of: BTreeMap<NodeId, u64> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| (*id, i as u64))
                .collect();
            let churn = Churn {
                exclude: vec![sender],
                ..Churn::new(
                    s.churn,
                    s.interval * s.measured as u32,
                    Duration::from_secs(1)..=Duration::from_secs(5),
                )
            };
            sim.schedule_churn(&churn, move |id, now| {
                let index = index_of[&id];
                let mut node = SimNode::new(index, seed ^ 0xc4, &config, now, epoch);
                let bootstrap: Vec<NodeId> = (0..3)
                    .map(|_| all[picker.index(all.len())])
                    .filter(|b| *b != id)
                    .collect();
                node.gossip.join(now, &bootstrap);
                node
            })
            .unwrap();
        }
        for seq in 0..s.measured {
            let (id, at) = broadcast(&mut sim, sender, 100 + seq);
            sent.push((id, sender, at));
            sim.run_for(s.interval);
        }
        if s.churn > 0.0 {
            // Restarted nodes catch up by anti-entropy.
            sim.run_for(Duration::from_secs(20));
        }
        sim.run_for(s.tail);
    }

    // Collect deliveries.
    let wanted: BTreeSet<MessageId> = sent.iter().map(|(id, _, _)| *id).collect();
    let mut deliveries: BTreeMap<MessageId, BTreeMap<NodeId, (Instant, u16)>> = BTreeMap::new();
    let mut misbehaviours = 0;
    for (at, node, event) in sim.drain_events() {
        match event {
            Event::Delivered {
                message_id, hops, ..
            } if wanted.contains(&message_id) => {
                deliveries
                    .entry(message_id)
                    .or_default()
                    .entry(node)
                    .or_insert((at, hops));
            }
            Event::Misbehaviour { .. } => misbehaviours += 1,
            _ => {}
        }
    }
    let live: BTreeSet<NodeId> = ids.iter().copied().filter(|id| sim.is_up(id)).collect();
    let mut broadcasts = Vec::new();
    for (id, origin, at) in &sent {
        let got = deliveries.remove(id).unwrap_or_default();
        let live_others = live.iter().filter(|n| *n != origin).count();
        let mut times: Vec<Instant> = got
            .iter()
            .filter(|(n, _)| live.contains(*n))
            .map(|(_, (t, _))| *t)
            .collect();
        times.sort();
        let need99 = (live_others as f64 * 0.99).ceil() as usize;
        let t99 = times.get(need99.saturating_sub(1)).map(|t| *t - *at);
        let t100 = (times.len() == live_others)
            .then(|| times.last().map(|t| *t - *at))
            .flatten();
        let receptions = sim
            .nodes()
            .filter_map(|(_, node)| node)
            .map(|node| u64::from(node.payloads.get(id).copied().unwrap_or(0)))
            .sum();
        broadcasts.push(Broadcast {
            id: *id,
            origin: *origin,
            at: *at,
            delivered: times.len(),
            live: live_others,
            ldh: got.values().map(|(_, h)| *h).max().unwrap_or(0),
            receptions,
            t99,
            t100,
            last: times.last().copied(),
        });
    }
    let converged_after_heal = heal_at.and_then(|heal| {
        if broadcasts.iter().any(|b| b.delivered < b.live) {
            return None;
        }
        let last = broadcasts.iter().filter_map(|b| b.last).max()?;
        Some(last.saturating_duration_since(heal))
    });
    let stats = sim.stats();
    Report {
        scenario: s.clone(),
        broadcasts,
        converged_after_heal,
        sim_time: sim.elapsed(),
        messages: stats.sent.messages,
        bytes: stats.sent.bytes,
        misbehaviours,
        idle,
        trace: sim.trace_digest(),
    }
}
