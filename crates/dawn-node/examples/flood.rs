//! What a flooding peer costs an honest one: three real nodes on loopback, B the node under
//! attack, A an honest peer calling B's echo tool 200 times a second, C a peer that floods B
//! at full speed, one way after another:
//!
//! | Phase | C does | What should protect A |
//! |---|---|---|
//! | `unloaded` | nothing | (the baseline; measured again at the end as `unloaded_after`) |
//! | `cpu_control` | keeps its thread busy without sending anything | (the control: what sharing the machine's cores with a busy flooder costs A by itself) |
//! | `gossip` | broadcasts 512-byte messages on a topic B follows, 4 at a time | B's per-peer gossip rate limits (`[resilience] rate_limit`, the gossip core's `inbound_rate`), the bounded inbound byte budget and send queues |
//! | `registry` | sends undecodable registry requests (`dawn/registry/1`), 64 at a time | the same per-peer limit (`admit_gossip`), the 256-message registry queue, a trust penalty for each message that does not decode |
//! | `calls` | opens 40 MCP sessions to B's echo and keeps 4 calls in flight on each | the per-caller session limit (32) |
//! | `calls_denied` | the same, after B withdrew C's trust: every call is denied and audited | the policy check before the agent |
//! | `gossip_unknown` | floods gossip as an unknown peer | the same, starting from a lower score |
//!
//! Before each flood B forgives C (`reset`) and assigns it a level: Trusted for `gossip`,
//! `registry` and `calls`, Unknown for the last two; C is redialled and the flood starts once
//! they are connected again. A flood that costs trust (gossip and registry frames over the
//! rate limit are penalised as flooding) makes C Untrusted, assigned or not, and B cuts it
//! off: the report says after how long, and gives A's latency while C was still connected.
//! A refuses C (Untrusted on A), so that C's traffic reaches A only as B relays it.
//!
//! Per phase the report gives A's latency, C's and B's counters, the CPU time each node's
//! threads used (threads are named after their node), how late a 1 ms timer fires on each
//! node's runtime (how long a ready task waits for a worker), the growth of B's data directory
//! (the audit log grows with every call decision) and the RSS.
//!
//! ```text
//! cargo run --release -p dawn-node --example flood -- --seconds 10
//! ```
//!
//! Options: `--seconds S` per phase (default 10), `--rate R` honest calls per second (default
//! 200). Each node runs on a tokio runtime of its own (B on 2 workers, A and C on 1), as if in
//! separate processes, but all three share this process and this machine's cores: the RSS
//! figures are the whole process's, and the flooder's own CPU use is part of what A feels.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dawn_identity::{AgentAddr, AgentId, NodeId};
use dawn_node::{BootstrapPeer, Node, NodeBuilder, TrustLevel, TrustUpdate};
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

type BoxError = Box<dyn Error + Send + Sync>;

/// The topic C floods and B follows.
const FLOOD_TOPIC: &str = "bench/flood";
/// Concurrent broadcasters in C.
const BROADCASTERS: usize = 4;
/// Concurrent registry requests from C.
const REGISTRY_IN_FLIGHT: usize = 64;
/// Sessions C tries to open for the call flood (more than B allows one caller).
const FLOOD_SESSIONS: usize = 40;
/// Calls C keeps in flight on each session.
const CALLS_PER_SESSION: usize = 4;
/// The longest an honest call may take before it counts as failed.
const HONEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Quiet time after each flood, before the next phase.
const RECOVERY: Duration = Duration::from_secs(2);
/// How long the nodes get to connect and exchange their directories.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the process's RSS is sampled.
const RSS_EVERY: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Setup,
    Unloaded,
    CpuControl,
    Gossip,
    Registry,
    Calls,
    CallsDenied,
    GossipUnknown,
    UnloadedAfter,
    Recovery,
}

impl Phase {
    const MEASURED: [Self; 8] = [
        Self::Unloaded,
        Self::CpuControl,
        Self::Gossip,
        Self::Registry,
        Self::Calls,
        Self::CallsDenied,
        Self::GossipUnknown,
        Self::UnloadedAfter,
    ];

    const fn name(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Unloaded => "unloaded",
            Self::CpuControl => "cpu_control",
            Self::Gossip => "gossip",
            Self::Registry => "registry",
            Self::Calls => "calls",
            Self::CallsDenied => "calls_denied",
            Self::GossipUnknown => "gossip_unknown",
            Self::UnloadedAfter => "unloaded_after",
            Self::Recovery => "recovery",
        }
    }

    /// Whether C floods in this phase.
    const fn floods(self) -> bool {
        matches!(
            self,
            Self::Gossip | Self::Registry | Self::Calls | Self::CallsDenied | Self::GossipUnknown
        )
    }

    /// The level B assigns C before this phase's flood.
    const fn flooder_level(self) -> TrustLevel {
        match self {
            Self::CallsDenied | Self::GossipUnknown => TrustLevel::Unknown,
            _ => TrustLevel::Trusted,
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn from_index(index: usize) -> Self {
        [
            Self::Setup,
            Self::Unloaded,
            Self::CpuControl,
            Self::Gossip,
            Self::Registry,
            Self::Calls,
            Self::CallsDenied,
            Self::GossipUnknown,
            Self::UnloadedAfter,
            Self::Recovery,
        ]
        .get(index)
        .copied()
        .unwrap_or(Self::Recovery)
    }
}

struct Options {
    seconds: u64,
    rate: u64,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        seconds: 10,
        rate: 200,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match arg.as_str() {
            "--seconds" => options.seconds = number("--seconds")?,
            "--rate" => options.rate = number("--rate")?,
            other => return Err(format!("unknown argument {other}; see the example's docs")),
        }
    }
    Ok(options)
}

fn runtime(name: &str, workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("flood failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn builder(dir: &Path) -> NodeBuilder {
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    NodeBuilder::new()
        .data_dir(dir)
        .listen(loopback)
        .http(Some(loopback))
        .development_mode(true)
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) -> Result<(), BoxError> {
    let started = Instant::now();
    while !check() {
        if started.elapsed() > SETUP_TIMEOUT {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// The process's resident set size in KiB, from `/proc/self/status`.
fn rss_kib() -> u64 {
    proc_status_kib("VmRSS:")
}

/// A `kB` field of `/proc/self/status` (0 if it cannot be read).
fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One honest call: when it started, how long it took, whether it succeeded.
#[derive(Clone, Copy)]
struct Sample {
    phase: Phase,
    took: Duration,
    ok: bool,
    /// Whether C was connected to B when the call started.
    flooder_connected: bool,
}

/// What the run records as it goes.
struct Recorder {
    phase: AtomicUsize,
    samples: Mutex<Vec<Sample>>,
    /// (when, phase, RSS KiB)
    rss: Mutex<Vec<(Instant, Phase, u64)>>,
    running: AtomicBool,
    first_error: Mutex<Option<String>>,
    /// Whether C is connected to B, as last polled.
    flooder_connected: AtomicBool,
    /// How late each runtime's 1 ms timer fired: (phase, node index 0..3 for A, B, C, lateness).
    lateness: Mutex<Vec<(Phase, usize, Duration)>>,
}

impl Recorder {
    fn phase(&self) -> Phase {
        Phase::from_index(self.phase.load(Ordering::Relaxed))
    }

    fn set(&self, phase: Phase) {
        self.phase.store(phase.index(), Ordering::Relaxed);
    }
}

/// A's loop: calls B's echo `rate` times a second until the run ends.
async fn honest(a: Arc<Node>, b: NodeId, rate: u64, recorder: Arc<Recorder>) {
    let addr = AgentAddr::new(b, "echo".parse::<AgentId>().expect("an agent id"));
    let arguments: Map<String, Value> = json!({"text": "an honest call"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / u32::try_from(rate).unwrap_or(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut client = None;
    while recorder.running.load(Ordering::Relaxed) {
        tick.tick().await;
        let phase = recorder.phase();
        let flooder_connected = recorder.flooder_connected.load(Ordering::Relaxed);
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + HONEST_TIMEOUT;
        let result: Result<(), String> = async {
            if client.is_none() {
                client = Some(a.agent_client(&addr).await.map_err(|e| e.to_string())?);
            }
            let session = client.as_ref().ok_or("no session")?;
            match session
                .call_tool("echo", Some(arguments.clone()), deadline)
                .await
            {
                Ok(result) if result.is_error != Some(true) => Ok(()),
                Ok(result) => Err(format!("tool error: {:?}", result.content)),
                Err(error) => {
                    client = None;
                    Err(error.to_string())
                }
            }
        }
        .await;
        let took = started.elapsed();
        if let Err(error) = &result {
            let mut first = recorder.first_error.lock().expect("a lock");
            if first.is_none() {
                *first = Some(format!("{}: {error}", phase.name()));
            }
        }
        recorder.samples.lock().expect("a lock").push(Sample {
            phase,
            took,
            ok: result.is_ok(),
            flooder_connected,
        });
    }
}

/// Measures how late a 1 ms sleep wakes up on this runtime: how long a task that becomes
/// ready waits for a worker.
async fn probe(node: usize, recorder: Arc<Recorder>) {
    let period = Duration::from_millis(1);
    while recorder.running.load(Ordering::Relaxed) {
        let phase = recorder.phase();
        let started = Instant::now();
        tokio::time::sleep(period).await;
        let late = started.elapsed().saturating_sub(period);
        recorder
            .lateness
            .lock()
            .expect("a lock")
            .push((phase, node, late));
    }
}

/// p99 and max lateness of `node`'s runtime in `phase`, in milliseconds.
fn lateness(recorder: &Recorder, phase: Phase, node: usize) -> (f64, f64) {
    let mut late: Vec<Duration> = recorder
        .lateness
        .lock()
        .expect("a lock")
        .iter()
        .filter(|(p, n, _)| *p == phase && *n == node)
        .map(|(_, _, d)| *d)
        .collect();
    if late.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    late.sort_unstable();
    let rank = ((late.len() as f64) * 0.99).ceil() as usize;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(late[rank.clamp(1, late.len()) - 1]),
        ms(late[late.len() - 1]),
    )
}

/// Counters of one flood.
#[derive(Default)]
struct FloodCount {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Calls B refused with its per-peer request limit (`rate_limit.exceeded`).
    rate_limited: AtomicU64,
    refused_sessions: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl FloodCount {
    fn record<E: std::fmt::Display>(&self, result: Result<(), E>) {
        match result {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().expect("a lock");
                if first.is_none() {
                    *first = Some(error.to_string());
                }
            }
        }
    }
}

/// Starts C's flood of `phase` on C's runtime; it runs until `stop` is set.
fn start_flood(
    rt: &Runtime,
    phase: Phase,
    c: &Arc<Node>,
    b: NodeId,
    stop: &Arc<AtomicBool>,
    count: &Arc<FloodCount>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    match phase {
        Phase::Gossip | Phase::GossipUnknown => {
            for task in 0..BROADCASTERS {
                let (c, stop, count) = (Arc::clone(c), Arc::clone(stop), Arc::clone(count));
                tasks.push(rt.spawn(async move {
                    let mut payload = vec![b'x'; 512];
                    let mut n: u64 = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        payload[..16]
                            .copy_from_slice(&[task as u64, n].map(u64::to_le_bytes).concat());
                        let result = c.broadcast(FLOOD_TOPIC, payload.clone()).await;
                        count.record(result.map(|_| ()));
                        if n.is_multiple_of(64) {
                            tokio::task::yield_now().await;
                        }
                    }
                }));
            }
        }
        Phase::CpuControl => {
            let stop = Arc::clone(stop);
            tasks.push(rt.spawn(async move {
                let mut x: u64 = 1;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005) ^ 1);
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        Phase::Registry => {
            for task in 0..REGISTRY_IN_FLIGHT {
                let (c, stop, count) = (Arc::clone(c), Arc::clone(stop), Arc::clone(count));
                tasks.push(rt.spawn(async move {
                    let garbage = Bytes::from(vec![0xA5; 200 + task]);
                    while !stop.load(Ordering::Relaxed) {
                        let Some(connection) = c.transport().connection(&b) else {
                            count.record(Err("not connected"));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        };
                        let result = connection
                            .request(dawn_registry::STREAM_PROTOCOL, garbage.clone())
                            .await;
                        count.record(result.map(|_| ()));
                    }
                }));
            }
        }
        Phase::Calls | Phase::CallsDenied => {
            let (c, stop, count) = (Arc::clone(c), Arc::clone(stop), Arc::clone(count));
            let handle = rt.handle().clone();
            tasks.push(rt.spawn(async move {
                let echo: AgentId = "echo".parse().expect("an agent id");
                let mut sessions = Vec::new();
                for _ in 0..FLOOD_SESSIONS {
                    let Some(connection) = c.transport().connection(&b) else {
                        count.record(Err("not connected"));
                        break;
                    };
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                    let opened = match connection.open_stream(dawn_mcp::STREAM_PROTOCOL).await {
                        Ok((send, recv)) => dawn_mcp::connect_agent(recv, send, &echo, deadline)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(error) => Err(error.to_string()),
                    };
                    match opened {
                        Ok(session) => sessions.push(session),
                        Err(_) => {
                            count.refused_sessions.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                let arguments: Map<String, Value> = json!({"text": "flood"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                let mut callers = Vec::new();
                for session in &sessions {
                    for _ in 0..CALLS_PER_SESSION {
                        let (session, stop, count, arguments) = (
                            session.clone(),
                            Arc::clone(&stop),
                            Arc::clone(&count),
                            arguments.clone(),
                        );
                        callers.push(handle.spawn(async move {
                            while !stop.load(Ordering::Relaxed) {
                                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                                let result = session
                                    .call_tool("echo", Some(arguments.clone()), deadline)
                                    .await;
                                let broken = matches!(
                                    result,
                                    Err(dawn_mcp::CallError::Closed
                                        | dawn_mcp::CallError::Unreachable { .. })
                                );
                                // A flooder does not back off: it sends again at once.
                                if matches!(result, Err(dawn_mcp::CallError::RateLimited { .. })) {
                                    count.rate_limited.fetch_add(1, Ordering::Relaxed);
                                    continue;
                                }
                                count.record(result.map(|_| ()));
                                if broken {
                                    break;
                                }
                            }
                        }));
                    }
                }
                for caller in callers {
                    let _ = caller.await;
                }
                for session in sessions {
                    session.close();
                }
            }));
        }
        _ => {}
    }
    tasks
}

/// The counters that a flood moves (B's, and what reaches A and leaves C).
#[derive(Clone, Copy, Default)]
struct Counters {
    /// Gossip frames A received (from B's relaying, A refusing C).
    honest_frames: u64,
    /// Of them, dropped by A's per-peer rate limit.
    honest_dropped: u64,
    frames_received: u64,
    gossip_core_rate_limited: u64,
    node_rate_limited: u64,
    misbehaviours: u64,
    delivered: u64,
    flooder_send_dropped: u64,
    flooder_broadcasts: u64,
    /// Agent requests B refused with its per-peer request limit.
    node_calls_refused: u64,
    /// Entries in B's audit log.
    audit_entries: u64,
}

fn counters(a: &Node, b: &Node, c: &Node) -> Counters {
    let stats = b.gossip_stats();
    let flooder = c.gossip_stats();
    Counters {
        honest_frames: a.gossip_stats().frames_received,
        honest_dropped: a.trust_list().gossip_frames_dropped,
        frames_received: stats.frames_received,
        gossip_core_rate_limited: stats.rate_limited,
        node_rate_limited: b.trust_list().gossip_frames_dropped,
        misbehaviours: stats.misbehaviours,
        delivered: stats.delivered,
        flooder_send_dropped: flooder.send_dropped,
        flooder_broadcasts: flooder.broadcasts,
        node_calls_refused: b.trust_list().agent_requests_dropped,
        audit_entries: b
            .metrics()
            .encode()
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("dawn_audit_entries_total "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .map_or(0, |n| n as u64),
    }
}

/// Latency figures of one phase, in microseconds.
struct Latency {
    count: usize,
    failed: usize,
    p50: f64,
    p99: f64,
    mean: f64,
    max: f64,
}

fn latency(samples: &[Sample], phase: Phase, connected_only: bool) -> Latency {
    let of_phase = |s: &&Sample| s.phase == phase && (!connected_only || s.flooder_connected);
    let mut ok: Vec<Duration> = samples
        .iter()
        .filter(of_phase)
        .filter(|s| s.ok)
        .map(|s| s.took)
        .collect();
    let failed = samples.iter().filter(of_phase).filter(|s| !s.ok).count();
    ok.sort_unstable();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| {
        if ok.is_empty() {
            return f64::NAN;
        }
        let rank = ((ok.len() as f64) * q).ceil() as usize;
        micros(ok[rank.clamp(1, ok.len()) - 1])
    };
    let total: Duration = ok.iter().sum();
    Latency {
        count: ok.len() + failed,
        failed,
        p50: at(0.50),
        p99: at(0.99),
        mean: if ok.is_empty() {
            f64::NAN
        } else {
            micros(total) / ok.len() as f64
        },
        max: ok.last().copied().map_or(f64::NAN, micros),
    }
}

/// What one phase did, for the report.
struct PhaseReport {
    phase: Phase,
    seconds: f64,
    flood_ok: u64,
    flood_failed: u64,
    flood_rate_limited: u64,
    refused_sessions: u64,
    flood_error: Option<String>,
    delta: Counters,
    rss_before: u64,
    rss_peak: u64,
    rss_after: u64,
    c_standing: String,
    /// A's view of B after the phase.
    b_standing: String,
    cutoff: Option<Duration>,
    /// How long C took to be connected (and a gossip neighbour) again before the flood.
    reconnected: Option<Duration>,
    /// Cores used by A, B, C and the rest of the process during the phase.
    cpu: Vec<f64>,
    /// How much B's data directory grew during the phase.
    disk_grew: u64,
}

struct Nodes {
    a: Arc<Node>,
    b: Arc<Node>,
    c: Arc<Node>,
}

fn start_nodes(rts: [&Runtime; 3], dirs: [&Path; 3]) -> Result<Nodes, BoxError> {
    let [rt_a, rt_b, rt_c] = rts;
    let [dir_a, dir_b, dir_c] = dirs;
    let b = rt_b.block_on(builder(dir_b).start())?;
    let to_b = BootstrapPeer::new(b.node_id(), b.quic_addr());
    let a = rt_a.block_on(builder(dir_a).bootstrap([to_b.clone()]).start())?;
    let c = rt_c.block_on(builder(dir_c).bootstrap([to_b]).start())?;
    rt_b.block_on(async {
        b.set_trust(a.node_id(), TrustUpdate::new(TrustLevel::Trusted))
            .await?;
        b.set_trust(c.node_id(), TrustUpdate::new(TrustLevel::Trusted))
            .await?;
        Ok::<_, BoxError>(())
    })?;
    let b_id = b.node_id();
    let lists_echo = |node: &Node| {
        node.directory()
            .nodes
            .iter()
            .any(|n| n.node_id == b_id && n.agents.iter().any(|x| x.agent_id.as_str() == "echo"))
    };
    wait_for("A and C to list B's echo", || {
        lists_echo(&a) && lists_echo(&c)
    })?;
    Ok(Nodes {
        a: Arc::new(a),
        b: Arc::new(b),
        c: Arc::new(c),
    })
}

/// Gets C ready for `phase`: B forgives it (`reset`) and assigns its level, and C is
/// connected to B (and its gossip neighbour, for gossip floods) again. Returns how long that
/// took, or `None` for a phase without a flood.
fn prepare(
    phase: Phase,
    rt_b: &Runtime,
    rt_c: &Runtime,
    b: &Node,
    c: &Node,
) -> Result<Option<Duration>, BoxError> {
    if !phase.floods() {
        return Ok(None);
    }
    let started = Instant::now();
    let mut update = TrustUpdate::new(phase.flooder_level());
    update.reset = true;
    rt_b.block_on(b.set_trust(c.node_id(), update))?;
    let (b_id, c_id, b_addr) = (b.node_id(), c.node_id(), b.quic_addr());
    while c.transport().connection(&b_id).is_none() {
        if started.elapsed() > SETUP_TIMEOUT {
            return Err("C did not reconnect to B".into());
        }
        // C's own dialler redials too; this only saves its backoff.
        let _ = rt_c.block_on(c.connect(b_id, &[b_addr]));
        std::thread::sleep(Duration::from_millis(20));
    }
    if matches!(phase, Phase::Gossip | Phase::GossipUnknown) {
        wait_for("C and B to be gossip neighbours again", || {
            c.gossip_views().0.contains(&b_id) && b.gossip_views().0.contains(&c_id)
        })?;
    }
    Ok(Some(started.elapsed()))
}

#[allow(clippy::too_many_lines)]
fn run(options: &Options) -> Result<(), BoxError> {
    let (rt_a, rt_b, rt_c) = (
        runtime("node-a", 1),
        runtime("node-b", 2),
        runtime("node-c", 1),
    );
    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    let setup_started = Instant::now();
    let rss_start = rss_kib();
    let Nodes { a, b, c } = start_nodes(
        [&rt_a, &rt_b, &rt_c],
        [dirs[0].path(), dirs[1].path(), dirs[2].path()],
    )?;
    let (b_id, c_id) = (b.node_id(), c.node_id());
    rt_a.block_on(a.set_trust(c_id, TrustUpdate::new(TrustLevel::Untrusted)))?;
    let mut deliveries = rt_b.block_on(b.subscribe(FLOOD_TOPIC))?;
    let drained = Arc::new(AtomicU64::new(0));
    {
        let drained = Arc::clone(&drained);
        rt_b.spawn(async move {
            while deliveries.recv().await.is_some() {
                drained.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    wait_for("C and B to be gossip neighbours", || {
        c.gossip_views().0.contains(&b_id)
    })?;

    let recorder = Arc::new(Recorder {
        phase: AtomicUsize::new(Phase::Setup.index()),
        samples: Mutex::new(Vec::new()),
        rss: Mutex::new(Vec::new()),
        running: AtomicBool::new(true),
        first_error: Mutex::new(None),
        flooder_connected: AtomicBool::new(true),
        lateness: Mutex::new(Vec::new()),
    });
    for (node, rt) in [&rt_a, &rt_b, &rt_c].into_iter().enumerate() {
        rt.spawn(probe(node, Arc::clone(&recorder)));
    }
    let sampler = {
        let recorder = Arc::clone(&recorder);
        std::thread::spawn(move || {
            while recorder.running.load(Ordering::Relaxed) {
                let sample = (Instant::now(), recorder.phase(), rss_kib());
                recorder.rss.lock().expect("a lock").push(sample);
                std::thread::sleep(RSS_EVERY);
            }
        })
    };
    let honest_task = rt_a.spawn(honest(
        Arc::clone(&a),
        b_id,
        options.rate,
        Arc::clone(&recorder),
    ));
    // Warm up: the honest session opens and the caches fill.
    std::thread::sleep(Duration::from_secs(2));
    let setup = setup_started.elapsed();

    let phase_len = Duration::from_secs(options.seconds);
    let mut reports = Vec::new();
    for phase in Phase::MEASURED {
        let reconnected = prepare(phase, &rt_b, &rt_c, &b, &c)?;
        let before = counters(&a, &b, &c);
        let rss_before = rss_kib();
        let cpu_before = cpu_seconds();
        let disk_before = dir_bytes(dirs[1].path());
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(FloodCount::default());
        recorder.set(phase);
        let started = Instant::now();
        let tasks = start_flood(&rt_c, phase, &c, b_id, &stop, &count);
        let mut cutoff = None;
        while started.elapsed() < phase_len {
            std::thread::sleep(Duration::from_millis(10));
            let connected = c.transport().connection(&b_id).is_some();
            recorder
                .flooder_connected
                .store(connected, Ordering::Relaxed);
            if !connected && cutoff.is_none() {
                cutoff = Some(started.elapsed());
            }
        }
        stop.store(true, Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64();
        let cpu_after = cpu_seconds();
        let cpu: Vec<f64> = cpu_after
            .iter()
            .zip(cpu_before)
            .map(|(after, before)| (after - before) / seconds)
            .collect();
        let disk_grew = dir_bytes(dirs[1].path()).saturating_sub(disk_before);
        rt_c.block_on(async {
            for task in tasks {
                let abort = task.abort_handle();
                if tokio::time::timeout(Duration::from_secs(10), task)
                    .await
                    .is_err()
                {
                    eprintln!("a flood task of {} did not stop in time", phase.name());
                    abort.abort();
                }
            }
        });
        let delta = {
            let after = counters(&a, &b, &c);
            Counters {
                honest_frames: after.honest_frames - before.honest_frames,
                honest_dropped: after.honest_dropped - before.honest_dropped,
                frames_received: after.frames_received - before.frames_received,
                gossip_core_rate_limited: after.gossip_core_rate_limited
                    - before.gossip_core_rate_limited,
                node_rate_limited: after.node_rate_limited - before.node_rate_limited,
                misbehaviours: after.misbehaviours - before.misbehaviours,
                delivered: after.delivered - before.delivered,
                flooder_send_dropped: after.flooder_send_dropped - before.flooder_send_dropped,
                flooder_broadcasts: after.flooder_broadcasts - before.flooder_broadcasts,
                node_calls_refused: after.node_calls_refused - before.node_calls_refused,
                audit_entries: after.audit_entries - before.audit_entries,
            }
        };
        let c_standing = standing(&b, &c_id);
        let b_standing = standing(&a, &b_id);
        recorder.set(Phase::Recovery);
        let rss_peak = recorder
            .rss
            .lock()
            .expect("a lock")
            .iter()
            .filter(|(_, p, _)| *p == phase)
            .map(|(_, _, kib)| *kib)
            .max()
            .unwrap_or(0);
        std::thread::sleep(RECOVERY);
        reports.push(PhaseReport {
            phase,
            seconds,
            flood_ok: count.ok.load(Ordering::Relaxed),
            flood_failed: count.failed.load(Ordering::Relaxed),
            flood_rate_limited: count.rate_limited.load(Ordering::Relaxed),
            refused_sessions: count.refused_sessions.load(Ordering::Relaxed),
            flood_error: count.first_error.lock().expect("a lock").clone(),
            delta,
            rss_before,
            rss_peak,
            rss_after: rss_kib(),
            c_standing,
            b_standing,
            cutoff,
            reconnected,
            cpu,
            disk_grew,
        });
    }
    recorder.running.store(false, Ordering::Relaxed);
    rt_a.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(10), honest_task).await;
    });
    let _ = sampler.join();

    let samples = recorder.samples.lock().expect("a lock").clone();
    let unloaded = latency(&samples, Phase::Unloaded, false);
    println!(
        "flood: 3 nodes on 127.0.0.1 in one process (B 2 tokio workers, A and C 1 each); A \
         calls B's echo {} times/s; {} s per phase; setup {:.1} s; RSS at start {} MiB",
        options.rate,
        options.seconds,
        setup.as_secs_f64(),
        rss_start / 1024
    );
    println!(
        "{:<26} {:>6} {:>5} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}",
        "A's calls to B (phase)",
        "calls",
        "fail",
        "p50 us",
        "p99 us",
        "mean us",
        "max us",
        "p50 x",
        "p99 x"
    );
    let row = |label: String, l: &Latency| {
        println!(
            "{label:<26} {:>6} {:>5} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>7.2} {:>7.2}",
            l.count,
            l.failed,
            l.p50,
            l.p99,
            l.mean,
            l.max,
            l.p50 / unloaded.p50,
            l.p99 / unloaded.p99,
        );
    };
    for phase in Phase::MEASURED {
        row(phase.name().to_owned(), &latency(&samples, phase, false));
        if phase.floods() {
            let connected = latency(&samples, phase, true);
            if connected.count > 0 {
                row("  while C connected".to_owned(), &connected);
            }
        }
    }
    println!();
    for report in &reports {
        let d = report.delta;
        let rate = |n: u64| n as f64 / report.seconds;
        println!("[{}] {:.1} s", report.phase.name(), report.seconds);
        if let Some(reconnected) = report.reconnected {
            println!(
                "  before: B forgave C and assigned it {}; C was connected again after {:.2} s",
                report.phase.flooder_level(),
                reconnected.as_secs_f64()
            );
        }
        match report.phase {
            Phase::Gossip | Phase::GossipUnknown => println!(
                "  C broadcast {} msgs ({:.0}/s; {} refused by C's node); C's send queue \
                 dropped {} frames",
                report.flood_ok,
                rate(report.flood_ok),
                report.flood_failed,
                d.flooder_send_dropped,
            ),
            Phase::Registry => println!(
                "  C's registry requests: {} answered ok ({:.0}/s), {} refused or failed \
                 ({:.0}/s)",
                report.flood_ok,
                rate(report.flood_ok),
                report.flood_failed,
                rate(report.flood_failed),
            ),
            Phase::Calls | Phase::CallsDenied => println!(
                "  C's sessions: {} of {FLOOD_SESSIONS} refused at open; calls: {} ok \
                 ({:.0}/s), {} refused by B's request limit ({:.0}/s; B counted {}), {} failed \
                 otherwise ({:.0}/s)",
                report.refused_sessions,
                report.flood_ok,
                rate(report.flood_ok),
                report.flood_rate_limited,
                rate(report.flood_rate_limited),
                d.node_calls_refused,
                report.flood_failed,
                rate(report.flood_failed),
            ),
            _ => {}
        }
        if let Some(error) = &report.flood_error {
            println!("  C's first failure: {error}");
        }
        if report.phase.floods() {
            println!(
                "  B: gossip frames received {} ({:.0}/s), dropped by the node's per-peer limit \
                 {}, by the gossip core's limit {}, misbehaviours {}, delivered {}",
                d.frames_received,
                rate(d.frames_received),
                d.node_rate_limited,
                d.gossip_core_rate_limited,
                d.misbehaviours,
                d.delivered,
            );
            println!("  B's view of C after the phase: {}", report.c_standing);
            println!(
                "  A: gossip frames received (relayed by B) {}, dropped by A's per-peer limit {}; \
                 A's view of B: {}",
                d.honest_frames, d.honest_dropped, report.b_standing
            );
            match report.cutoff {
                Some(cutoff) => println!(
                    "  C was cut off by B {:.2} s into the flood",
                    cutoff.as_secs_f64()
                ),
                None => println!("  C stayed connected throughout"),
            }
        }
        let core = |i: usize| report.cpu.get(i).copied().unwrap_or(0.0);
        println!(
            "  CPU (cores): A {:.2}, B {:.2}, C {:.2}, rest {:.2}; B's data directory grew {} KiB; \
             B's audit log grew {} entries",
            core(0),
            core(1),
            core(2),
            core(3),
            report.disk_grew / 1024,
            report.delta.audit_entries,
        );
        let late: Vec<(f64, f64)> = (0..3)
            .map(|node| lateness(&recorder, report.phase, node))
            .collect();
        println!(
            "  timer lateness p99/max (ms): A {:.1}/{:.1}, B {:.1}/{:.1}, C {:.1}/{:.1}",
            late[0].0, late[0].1, late[1].0, late[1].1, late[2].0, late[2].1
        );
        println!(
            "  RSS (whole process): before {} MiB, peak during {} MiB, {} s after {} MiB",
            report.rss_before / 1024,
            report.rss_peak / 1024,
            RECOVERY.as_secs(),
            report.rss_after / 1024
        );
    }
    if let Some(error) = recorder.first_error.lock().expect("a lock").as_ref() {
        println!("A's first failed call: {error}");
    }
    let metrics = b.metrics().encode().unwrap_or_default();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("dawn_rate_limit_drops_total"))
    {
        println!("B /metrics: {line}");
    }
    println!(
        "B's trust list: gossip_frames_dropped {}, agent_requests_dropped {} (the node's \
         per-peer limits, all phases)",
        b.trust_list().gossip_frames_dropped,
        b.trust_list().agent_requests_dropped
    );
    // The goal is judged on each flood phase's p99 over the whole phase, against the lower
    // (stricter) of the two unloaded p99s of this run. While C is connected the window
    // holds a few dozen calls, so its "p99" is their maximum: reported beside it, not judged.
    let after = latency(&samples, Phase::UnloadedAfter, false);
    let baseline = unloaded.p99.min(after.p99);
    let floods: Vec<Phase> = Phase::MEASURED
        .into_iter()
        .filter(|phase| phase.floods())
        .collect();
    let worst_of = |connected_only: bool| {
        floods
            .iter()
            .map(|phase| {
                let l = latency(&samples, *phase, connected_only);
                (*phase, if l.count > 0 { l.p99 / baseline } else { 0.0 })
            })
            .fold((Phase::Unloaded, 0.0_f64), |worst, next| {
                if next.1 > worst.1 { next } else { worst }
            })
    };
    let worst = worst_of(false);
    let window = worst_of(true);
    println!(
        "goal: p99 of each flood phase within 2x of the unloaded p99 ({:.0} us, the lower of \
         unloaded and unloaded_after): {} (worst: {} at {:.2}x); over the calls made while C was \
         connected (a few dozen: about their slowest), at most {:.2}x ({})",
        baseline,
        if worst.1 <= 2.0 { "met" } else { "MISSED" },
        worst.0.name(),
        worst.1,
        window.1,
        window.0.name(),
    );
    println!(
        "B's subscriber took {} flood deliveries; peak RSS (VmHWM) {} MiB",
        drained.load(Ordering::Relaxed),
        hwm_kib() / 1024
    );

    let (a, b, c) = (
        Arc::into_inner(a).ok_or("A is still shared")?,
        Arc::into_inner(b).ok_or("B is still shared")?,
        Arc::into_inner(c).ok_or("C is still shared")?,
    );
    rt_c.block_on(c.shutdown())?;
    rt_a.block_on(a.shutdown())?;
    rt_b.block_on(b.shutdown())?;
    Ok(())
}

/// `node`'s view of `peer`: level, score, whether assigned and connected.
fn standing(node: &Node, peer: &NodeId) -> String {
    let standing = node.trust(peer);
    format!(
        "{} (score {:.2}{}), {}",
        standing.level,
        standing.score,
        if standing.assigned.is_some() {
            ", assigned"
        } else {
            ""
        },
        if standing.connected {
            "connected"
        } else {
            "disconnected"
        }
    )
}

/// CPU seconds used so far by the threads of A, B and C (named `node-a`...) and by the rest
/// of the process, from `/proc/self/task/*/stat`. Threads that already ended are not counted.
fn cpu_seconds() -> [f64; 4] {
    let mut seconds = [0.0; 4];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return seconds;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // Fields 14 and 15 of stat (utime, stime), in clock ticks of 1/100 s.
        let used = (ticks(11) + ticks(12)) / 100.0;
        let slot = match name {
            n if n.starts_with("node-a") => 0,
            n if n.starts_with("node-b") => 1,
            n if n.starts_with("node-c") => 2,
            _ => 3,
        };
        seconds[slot] += used;
    }
    seconds
}

/// Bytes of the files in `dir` (B's database, its WAL and the rest).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn hwm_kib() -> u64 {
    proc_status_kib("VmHWM:")
}
