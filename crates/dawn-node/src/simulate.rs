//! `dawn simulate`: real nodes on loopback in one process, joined through one of them, and
//! broadcasts timed from several origins.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dawn_gossip::MessageId;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::config::BootstrapPeer;
use crate::error::NodeError;
use crate::node::{Node, NodeBuilder};
use dawn_transport::TransportConfig;

/// Most nodes one simulation starts.
pub const MAX_SIMULATION_NODES: usize = 500;

/// The topic simulated broadcasts use.
const TOPIC: &str = "dawn/simulate";

/// How long the views must stay unchanged to count as settled.
const SETTLED_FOR: Duration = Duration::from_millis(500);

/// What [`simulate`] does.
#[derive(Debug, Clone)]
#[must_use]
pub struct SimulationOptions {
    /// Nodes to start (2..=[`MAX_SIMULATION_NODES`]).
    pub nodes: usize,
    /// Chooses the broadcasting nodes; a random seed when `None`.
    pub seed: Option<u64>,
    /// Broadcasts to make, each from a different node where possible.
    pub messages: usize,
    /// Longest wait for the views to settle.
    pub settle_timeout: Duration,
    /// Longest wait for every node to receive every broadcast.
    pub delivery_timeout: Duration,
}

impl SimulationOptions {
    /// `nodes` nodes, 5 broadcasts, 20 s to settle and 20 s to deliver.
    pub const fn new(nodes: usize) -> Self {
        Self {
            nodes,
            seed: None,
            messages: 5,
            settle_timeout: Duration::from_secs(20),
            delivery_timeout: Duration::from_secs(20),
        }
    }
}

/// What one broadcast reached.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageReport {
    /// Index of the broadcasting node.
    pub origin: usize,
    /// Nodes that received it (the origin excluded).
    pub delivered: usize,
    /// Nodes that should have (every node but the origin).
    pub expected: usize,
    /// Median delivery latency.
    pub p50: Duration,
    /// 99th-percentile delivery latency.
    pub p99: Duration,
    /// Slowest delivery.
    pub max: Duration,
    /// Largest hop count seen.
    pub max_hops: u16,
}

/// The outcome of [`simulate`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SimulationReport {
    /// Nodes started.
    pub nodes: usize,
    /// The seed that chose the origins.
    pub seed: u64,
    /// Time to start every node.
    pub startup: Duration,
    /// Time from the last start until the views settled (or the settle timeout).
    pub settle: Duration,
    /// Whether every node had at least one neighbour when broadcasting began.
    pub settled: bool,
    /// Mean active-view size when broadcasting began.
    pub mean_active: f64,
    /// Mean and largest number of open connections per node when broadcasting began (node 0,
    /// everyone's bootstrap peer, included).
    pub connections: (f64, usize),
    /// One entry per broadcast.
    pub messages: Vec<MessageReport>,
    /// Deliveries over all broadcasts, and how many were expected.
    pub totals: (usize, usize),
}

impl SimulationReport {
    /// Whether every node received every broadcast.
    #[must_use]
    pub fn complete(&self) -> bool {
        self.totals.0 == self.totals.1
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl fmt::Display for SimulationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} nodes (seed {}): started in {:.0} ms, views settled in {:.0} ms{}, mean active view {:.1}, connections per node mean {:.1} max {}",
            self.nodes,
            self.seed,
            ms(self.startup),
            ms(self.settle),
            if self.settled { "" } else { " (not settled)" },
            self.mean_active,
            self.connections.0,
            self.connections.1,
        )?;
        for (i, m) in self.messages.iter().enumerate() {
            writeln!(
                f,
                "message {} from node {}: {}/{} nodes, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, max hops {}",
                i + 1,
                m.origin,
                m.delivered,
                m.expected,
                ms(m.p50),
                ms(m.p99),
                ms(m.max),
                m.max_hops,
            )?;
        }
        writeln!(
            f,
            "delivered {}/{} ({})",
            self.totals.0,
            self.totals.1,
            if self.complete() {
                "complete"
            } else {
                "INCOMPLETE"
            }
        )
    }
}

/// A tiny deterministic generator for choosing origins.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Deletes the simulation's data directories when dropped.
struct TempRoot(PathBuf);

impl Drop for TempRoot {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            debug!(%error, "could not remove the simulation's data");
        }
    }
}

type Arrivals = Arc<Mutex<HashMap<MessageId, Vec<(Instant, u16)>>>>;

/// Starts `options.nodes` real nodes on 127.0.0.1 (ephemeral ports, development-mode keys,
/// data in a temporary directory, no HTTP), every node bootstrapping from node 0; waits until
/// every node has a neighbour and the views stop changing; broadcasts from several nodes;
/// measures who received what, how fast; and shuts everything down.
///
/// # Errors
/// [`NodeError::Config`]-like failures to start a node ([`NodeError`]), or an out-of-range
/// node count ([`NodeError::Simulation`]).
pub async fn simulate(options: SimulationOptions) -> Result<SimulationReport, NodeError> {
    if options.nodes < 2 || options.nodes > MAX_SIMULATION_NODES {
        return Err(NodeError::Simulation(format!(
            "--nodes must be 2..={MAX_SIMULATION_NODES}, got {}",
            options.nodes
        )));
    }
    let seed = match options.seed {
        Some(seed) => seed,
        None => {
            let mut bytes = [0u8; 8];
            let _ = dawn_crypto::fill_random(&mut bytes);
            u64::from_le_bytes(bytes)
        }
    };
    let mut tag = [0u8; 6];
    let _ = dawn_crypto::fill_random(&mut tag);
    let root = TempRoot(std::env::temp_dir().join(format!(
        "dawn-simulate-{}-{}",
        std::process::id(),
        crate::gossip::hex(&tag)
    )));
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    // Every node shares one IP address here, so the per-address limit must fit them all.
    let mut transport = TransportConfig::default();
    transport.max_connections_per_ip = options.nodes.saturating_mul(2);
    let builder = |i: usize| {
        NodeBuilder::new()
            .data_dir(root.0.join(format!("node-{i}")))
            .listen(loopback)
            .http(None)
            .development_mode(true)
            .reconnect_backoff(Duration::from_millis(100), Duration::from_secs(2))
            .transport_config(transport.clone())
    };

    let started = Instant::now();
    let mut nodes: Vec<Node> = Vec::with_capacity(options.nodes);
    let result = async {
        let first = builder(0).start().await?;
        let contact = BootstrapPeer::new(first.node_id(), first.quic_addr());
        nodes.push(first);
        for i in 1..options.nodes {
            let node = builder(i).bootstrap([contact.clone()]).start().await?;
            nodes.push(node);
        }
        Ok::<_, NodeError>(())
    }
    .await;
    let startup = started.elapsed();
    let report = match result {
        Ok(()) => run(&nodes, &options, seed, startup).await,
        Err(error) => Err(error),
    };
    shutdown_all(nodes).await;
    drop(root);
    report
}

async fn run(
    nodes: &[Node],
    options: &SimulationOptions,
    seed: u64,
    startup: Duration,
) -> Result<SimulationReport, NodeError> {
    let arrivals: Arrivals = Arc::new(Mutex::new(HashMap::new()));
    let mut listeners: Vec<JoinHandle<()>> = Vec::with_capacity(nodes.len());
    for node in nodes {
        let mut subscription = node
            .subscribe(TOPIC)
            .await
            .map_err(|e| NodeError::Simulation(e.to_string()))?;
        let arrivals = Arc::clone(&arrivals);
        listeners.push(tokio::spawn(async move {
            while let Some(delivery) = subscription.recv().await {
                let at = Instant::now();
                arrivals
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(delivery.message_id)
                    .or_default()
                    .push((at, delivery.hops));
            }
        }));
    }

    // Settle: every node has a neighbour and no view changed for a while.
    let settle_started = Instant::now();
    let mut last: Vec<Vec<_>> = Vec::new();
    let mut stable_since = Instant::now();
    let settled = loop {
        let views: Vec<Vec<_>> = nodes
            .iter()
            .map(|n| {
                let mut active = n.gossip_views().0;
                active.sort();
                active
            })
            .collect();
        let all_linked = views.iter().all(|v| !v.is_empty());
        if views != last {
            last = views;
            stable_since = Instant::now();
        } else if all_linked && stable_since.elapsed() >= SETTLED_FOR {
            break true;
        }
        if settle_started.elapsed() >= options.settle_timeout {
            warn!("views did not settle in time; broadcasting anyway");
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let settle = settle_started.elapsed();
    let mean_active = last.iter().map(Vec::len).sum::<usize>() as f64 / nodes.len() as f64;
    let counts: Vec<usize> = nodes.iter().map(|n| n.status().peer_count).collect();
    let connections = (
        counts.iter().sum::<usize>() as f64 / nodes.len() as f64,
        counts.iter().copied().max().unwrap_or(0),
    );

    // Broadcast from distinct origins chosen by the seed.
    let mut rng = SplitMix(seed);
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    for i in (1..order.len()).rev() {
        let j = usize::try_from(rng.next() % (i as u64 + 1)).unwrap_or(0);
        order.swap(i, j);
    }
    let mut sent: Vec<(usize, MessageId, Instant)> = Vec::with_capacity(options.messages);
    for k in 0..options.messages {
        let origin = order.get(k % order.len()).copied().unwrap_or(0);
        let Some(node) = nodes.get(origin) else {
            continue;
        };
        let at = Instant::now();
        let payload = Bytes::from(format!("simulated message {k} from node {origin}"));
        let id = node
            .broadcast(TOPIC, payload)
            .await
            .map_err(|e| NodeError::Simulation(e.to_string()))?;
        sent.push((origin, id, at));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Wait for everything to arrive, or the deadline.
    let expected = nodes.len() - 1;
    let deadline = Instant::now() + options.delivery_timeout;
    loop {
        let complete = {
            let arrivals = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
            sent.iter()
                .all(|(_, id, _)| arrivals.get(id).is_some_and(|a| a.len() >= expected))
        };
        if complete || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for listener in &listeners {
        listener.abort();
    }

    let arrivals = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
    let mut messages = Vec::with_capacity(sent.len());
    let mut total = 0;
    for (origin, id, at) in &sent {
        let mut latencies: Vec<Duration> = Vec::new();
        let mut max_hops = 0;
        for (arrived, hops) in arrivals.get(id).map(Vec::as_slice).unwrap_or_default() {
            latencies.push(arrived.saturating_duration_since(*at));
            max_hops = max_hops.max(*hops);
        }
        latencies.sort();
        total += latencies.len();
        messages.push(MessageReport {
            origin: *origin,
            delivered: latencies.len(),
            expected,
            p50: percentile(&latencies, 50),
            p99: percentile(&latencies, 99),
            max: latencies.last().copied().unwrap_or_default(),
            max_hops,
        });
    }
    Ok(SimulationReport {
        nodes: nodes.len(),
        seed,
        startup,
        settle,
        settled,
        mean_active,
        connections,
        totals: (total, expected * sent.len()),
        messages,
    })
}

/// The `p`th percentile (nearest rank) of sorted values.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted
        .get(rank - 1)
        .or(sorted.last())
        .copied()
        .unwrap_or_default()
}

async fn shutdown_all(nodes: Vec<Node>) {
    let handles: Vec<JoinHandle<()>> = nodes
        .into_iter()
        .map(|node| {
            tokio::spawn(async move {
                if let Err(error) = node.shutdown().await {
                    warn!(%error, "a simulated node did not shut down cleanly");
                }
            })
        })
        .collect();
    for handle in handles {
        let _ = handle.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99), Duration::from_millis(99));
        assert_eq!(percentile(&v[..1], 99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }

    #[tokio::test]
    async fn node_counts_are_bounded() {
        for n in [0, 1, MAX_SIMULATION_NODES + 1] {
            assert!(matches!(
                simulate(SimulationOptions::new(n)).await,
                Err(NodeError::Simulation(_))
            ));
        }
    }
}
