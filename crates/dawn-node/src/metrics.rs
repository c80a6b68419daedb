//! Prometheus metrics: the [`Metrics`] handle that the node's modules record into, and
//! `GET /metrics`, which renders them in the OpenMetrics text format.
//!
//! Two kinds of families live here. Those whose numbers the node already keeps (peers,
//! connections, gossip counters) are read when scraped, so that nothing is counted twice and
//! no hot path pays for a metric. The others (agent calls, registry size, rate-limit drops,
//! breakers, audit entries, non-gossip traffic) are recorded through [`Metrics`] by the code
//! that knows about them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dawn_resilience::{BreakerState, Limit, StateChange};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::api::{ApiError, Direction};
use crate::http::AppState;
use crate::node::Shared;
use crate::peers::now_unix_ms;

/// The `Content-Type` of `GET /metrics`: OpenMetrics 1.0 text, which Prometheus scrapes
/// natively.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the agent-call latency histogram, in seconds: 1 ms doubling to about
/// 33 s (16 buckets, then `+Inf`).
fn call_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 16)
}

/// Rendering the metrics failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A metric could not be written as text (a metric family broke the encoder's rules).
    #[error("cannot encode the metrics: {0}")]
    Encode(#[from] std::fmt::Error),
}

/// What a message or a byte count belongs to, the `kind` label of the traffic families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// Gossip frames (broadcasts, membership). Counted by the gossip driver itself: do not
    /// record these.
    Gossip,
    /// Agent-registry deltas and anti-entropy digests.
    Registry,
    /// Agent calls (MCP over a QUIC stream), requests and responses.
    AgentCall,
    /// Consensus votes and proposals.
    Consensus,
    /// Traffic carried for other nodes by a relay.
    Relay,
    /// Anything else.
    Other,
}

impl MessageKind {
    const ALL: [Self; 6] = [
        Self::Gossip,
        Self::Registry,
        Self::AgentCall,
        Self::Consensus,
        Self::Relay,
        Self::Other,
    ];

    /// The label value: `gossip`, `registry`, `agent_call`, `consensus`, `relay` or `other`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gossip => "gossip",
            Self::Registry => "registry",
            Self::AgentCall => "agent_call",
            Self::Consensus => "consensus",
            Self::Relay => "relay",
            Self::Other => "other",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Gossip => 0,
            Self::Registry => 1,
            Self::AgentCall => 2,
            Self::Consensus => 3,
            Self::Relay => 4,
            Self::Other => 5,
        }
    }
}

/// How an agent call ended, the `outcome` label of the agent-call families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallOutcome {
    /// The agent answered (an MCP error result still counts as answered).
    Ok,
    /// The call failed on the way or at the agent (stream reset, malformed response, handler
    /// failure).
    Error,
    /// No answer before the deadline.
    Timeout,
    /// Refused by a trust or policy decision, on either node.
    Denied,
    /// Refused by a rate limit.
    RateLimited,
    /// Refused because the peer's circuit breaker is open.
    BreakerOpen,
    /// The agent or its node could not be found or reached.
    Unreachable,
}

impl CallOutcome {
    const ALL: [Self; 7] = [
        Self::Ok,
        Self::Error,
        Self::Timeout,
        Self::Denied,
        Self::RateLimited,
        Self::BreakerOpen,
        Self::Unreachable,
    ];

    /// The label value: `ok`, `error`, `timeout`, `denied`, `rate_limited`, `breaker_open`
    /// or `unreachable`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Denied => "denied",
            Self::RateLimited => "rate_limited",
            Self::BreakerOpen => "breaker_open",
            Self::Unreachable => "unreachable",
        }
    }
}

const fn direction_index(direction: Direction) -> usize {
    match direction {
        Direction::Inbound => 0,
        Direction::Outbound => 1,
    }
}

const DIRECTIONS: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

/// The state changes a breaker can make, as `(to, cause)` label values.
const BREAKER_TRANSITIONS: [(&str, &str); 6] = [
    ("open", "consecutive_failures"),
    ("open", "failure_ratio"),
    ("open", "trial_failed"),
    ("open", "trial_timeout"),
    ("half_open", "cooldown_elapsed"),
    ("closed", "trials_succeeded"),
];

type Labels2 = [(&'static str, &'static str); 2];
type Labels1 = [(&'static str, &'static str); 1];

/// The node's metrics. A cheap handle (an `Arc` inside): clone it into whatever records.
///
/// Every method is lock-free or takes a short uncontended lock, never blocks on I/O, and
/// may be called from any thread or task. Label values come only from the enums of this
/// module and of `dawn_resilience`, so no input from a peer can create a new time series.
///
/// ```
/// use std::time::Duration;
/// use dawn_node::{CallOutcome, Direction, Metrics};
///
/// let metrics = Metrics::new();
/// metrics.record_agent_call(Direction::Outbound, CallOutcome::Ok, Duration::from_millis(12));
/// metrics.set_registry_size(42);
/// let text = metrics.encode()?;
/// assert!(text.contains(r#"dawn_agent_calls_total{direction="outbound",outcome="ok"} 1"#));
/// assert!(text.contains("dawn_registry_agents 42"));
/// # Ok::<(), dawn_node::MetricsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    scraped: Arc<Scraped>,
    agent_calls: Family<Labels2, Counter>,
    agent_call_duration: Family<Labels2, Histogram, fn() -> Histogram>,
    registry_agents: Gauge,
    local_agents: Gauge,
    breakers: Family<Labels1, Gauge>,
    breaker_transitions: Family<Labels2, Counter>,
    audit_entries: Counter,
}

/// What the scrape-time collector reads: the node (once attached) and the traffic counters
/// recorded by modules other than gossip.
#[derive(Debug, Default)]
struct Scraped {
    node: OnceLock<Weak<Shared>>,
    messages: [[AtomicU64; 2]; MessageKind::ALL.len()],
    bytes: [[AtomicU64; 2]; MessageKind::ALL.len()],
    /// Drops by `(kind, limit)`; the keys are `'static` label values, so the map is bounded
    /// by the number of label combinations.
    rate_limit_drops: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all at zero. A node makes its own (see
    /// [`Node::metrics`](crate::Node::metrics)); this is for tests and embedding.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let scraped = Arc::new(Scraped::default());
        registry.register_collector(Box::new(NodeCollector {
            scraped: Arc::clone(&scraped),
        }));

        let agent_calls = Family::<Labels2, Counter>::default();
        registry.register(
            "dawn_agent_calls",
            "Agent calls by direction (outbound: made by this node, inbound: served) and outcome",
            agent_calls.clone(),
        );
        let agent_call_duration: Family<Labels2, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(call_buckets()));
        registry.register_with_unit(
            "dawn_agent_call_duration",
            "Agent call latency by direction and outcome, from the first byte sent to the last \
             byte received",
            Unit::Seconds,
            agent_call_duration.clone(),
        );
        let registry_agents = Gauge::default();
        registry.register(
            "dawn_registry_agents",
            "Agents in this node's copy of the mesh-wide agent registry",
            registry_agents.clone(),
        );
        let local_agents = Gauge::default();
        registry.register(
            "dawn_local_agents",
            "Agents hosted by this node",
            local_agents.clone(),
        );
        let breakers = Family::<Labels1, Gauge>::default();
        registry.register(
            "dawn_breakers",
            "Per-peer circuit breakers by state",
            breakers.clone(),
        );
        let breaker_transitions = Family::<Labels2, Counter>::default();
        registry.register(
            "dawn_breaker_transitions",
            "Circuit breaker state changes by new state and cause",
            breaker_transitions.clone(),
        );
        let audit_entries = Counter::default();
        registry.register(
            "dawn_audit_entries",
            "Entries appended to the audit log",
            audit_entries.clone(),
        );
        // Every series exists from the start, at zero, so that dashboards and rate() see a
        // family before its first event.
        for direction in DIRECTIONS {
            for outcome in CallOutcome::ALL {
                let labels = [
                    ("direction", direction.as_str()),
                    ("outcome", outcome.as_str()),
                ];
                let _ = agent_calls.get_or_create(&labels);
                let _ = agent_call_duration.get_or_create(&labels);
            }
        }
        for state in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
        ] {
            let _ = breakers.get_or_create(&[("state", state.as_str())]);
        }
        for (to, cause) in BREAKER_TRANSITIONS {
            let _ = breaker_transitions.get_or_create(&[("to", to), ("cause", cause)]);
        }
        Self {
            inner: Arc::new(Inner {
                registry,
                scraped,
                agent_calls,
                agent_call_duration,
                registry_agents,
                local_agents,
                breakers,
                breaker_transitions,
                audit_entries,
            }),
        }
    }

    /// Lets the scrape read the node's own numbers. Held weakly: the node owns its metrics.
    pub(crate) fn attach(&self, node: &Arc<Shared>) {
        let _ = self.inner.scraped.node.set(Arc::downgrade(node));
    }

    /// Records one agent call: `dawn_agent_calls_total{direction, outcome}` and
    /// `dawn_agent_call_duration_seconds{direction, outcome}`. `Outbound` is a call this node
    /// made, `Inbound` one it served for a peer.
    pub fn record_agent_call(&self, direction: Direction, outcome: CallOutcome, took: Duration) {
        let labels = [
            ("direction", direction.as_str()),
            ("outcome", outcome.as_str()),
        ];
        self.inner.agent_calls.get_or_create(&labels).inc();
        self.inner
            .agent_call_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Sets `dawn_registry_agents`: agents in the node's copy of the registry, all nodes.
    pub fn set_registry_size(&self, agents: usize) {
        self.inner.registry_agents.set(saturating_i64(agents));
    }

    /// Sets `dawn_local_agents`: agents hosted by this node.
    pub fn set_local_agents(&self, agents: usize) {
        self.inner.local_agents.set(saturating_i64(agents));
    }

    /// Counts one message dropped by a rate limit: `dawn_rate_limit_drops_total{kind, limit}`
    /// (`limit` is `messages` or `bytes`). The gossip core's own drops are already counted.
    pub fn inc_rate_limit_drop(&self, kind: MessageKind, limit: Limit) {
        let mut drops = self
            .inner
            .scraped
            .rate_limit_drops
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = drops.entry((kind.as_str(), limit.as_str())).or_insert(0);
        *count = count.saturating_add(1);
    }

    /// Sets `dawn_breakers{state}`: how many per-peer breakers are in `state` now. Call it
    /// for each state after a change (or on a timer).
    pub fn set_breaker_count(&self, state: BreakerState, count: usize) {
        self.inner
            .breakers
            .get_or_create(&[("state", state.as_str())])
            .set(saturating_i64(count));
    }

    /// Counts a breaker state change: `dawn_breaker_transitions_total{to, cause}`.
    pub fn record_breaker_transition(&self, change: &StateChange) {
        self.inner
            .breaker_transitions
            .get_or_create(&[("to", change.to.as_str()), ("cause", change.cause.as_str())])
            .inc();
    }

    /// Counts one entry appended to the audit log: `dawn_audit_entries_total`.
    pub fn inc_audit_entries(&self) {
        self.inner.audit_entries.inc();
    }

    /// Counts one message of `kind` and its size: `dawn_messages_total{kind, direction}` and
    /// `dawn_traffic_bytes_total{kind, direction}`. Count the bytes the module itself reads
    /// or writes (frame bodies); gossip is counted by the gossip driver, not here.
    pub fn record_message(&self, kind: MessageKind, direction: Direction, bytes: usize) {
        let (k, d) = (kind.index(), direction_index(direction));
        let scraped = &self.inner.scraped;
        if let Some(counter) = scraped.messages.get(k).and_then(|row| row.get(d)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(counter) = scraped.bytes.get(k).and_then(|row| row.get(d)) {
            counter.fetch_add(u64::try_from(bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
    }

    /// Renders every family in the OpenMetrics text format ([`METRICS_CONTENT_TYPE`]),
    /// ending with `# EOF`: exactly what `GET /metrics` answers.
    ///
    /// # Errors
    /// [`MetricsError::Encode`] if a family cannot be encoded (not expected: every name and
    /// label here is fixed).
    pub fn encode(&self) -> Result<String, MetricsError> {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)?;
        Ok(text)
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Reads the node's own numbers at each scrape.
#[derive(Debug)]
struct NodeCollector {
    scraped: Arc<Scraped>,
}

/// One counter family without labels.
fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

/// One gauge family, one sample per label set.
fn gauges<const N: usize>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: &[([(&'static str, &str); N], i64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

/// One counter family, one sample per label set.
fn counters(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: &[(Labels2, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let node = self.scraped.node.get().and_then(Weak::upgrade);
        let gossip = node
            .as_ref()
            .map(|node| node.gossip.stats())
            .unwrap_or_default();

        // Traffic: gossip from the driver's counters, everything else as recorded.
        let traffic = |table: &[[AtomicU64; 2]; MessageKind::ALL.len()], gossip_in, gossip_out| {
            let mut samples = Vec::with_capacity(MessageKind::ALL.len() * 2);
            for kind in MessageKind::ALL {
                for direction in DIRECTIONS {
                    let recorded = table
                        .get(kind.index())
                        .and_then(|row| row.get(direction_index(direction)))
                        .map_or(0, |c| c.load(Ordering::Relaxed));
                    let from_gossip = match (kind, direction) {
                        (MessageKind::Gossip, Direction::Inbound) => gossip_in,
                        (MessageKind::Gossip, _) => gossip_out,
                        _ => 0,
                    };
                    samples.push((
                        [("kind", kind.as_str()), ("direction", direction.as_str())],
                        recorded.saturating_add(from_gossip),
                    ));
                }
            }
            samples
        };
        counters(
            &mut encoder,
            "dawn_messages",
            "Messages received (inbound) and sent (outbound) by kind.",
            None,
            &traffic(
                &self.scraped.messages,
                gossip.frames_received,
                gossip.frames_sent,
            ),
        )?;
        counters(
            &mut encoder,
            "dawn_traffic",
            "Message bytes received (inbound) and sent (outbound) by kind: frame bodies, \
             without framing and QUIC overhead.",
            Some(&Unit::Bytes),
            &traffic(
                &self.scraped.bytes,
                gossip.bytes_received,
                gossip.bytes_sent,
            ),
        )?;

        let mut drops: BTreeMap<(&'static str, &'static str), u64> = self
            .scraped
            .rate_limit_drops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let gossip_drops = drops
            .entry((MessageKind::Gossip.as_str(), Limit::Messages.as_str()))
            .or_insert(0);
        *gossip_drops = gossip_drops.saturating_add(gossip.rate_limited);
        let drops: Vec<(Labels2, u64)> = drops
            .into_iter()
            .map(|((kind, limit), n)| ([("kind", kind), ("limit", limit)], n))
            .collect();
        counters(
            &mut encoder,
            "dawn_rate_limit_drops",
            "Messages dropped by a rate limit, by kind and by the limit that refused them.",
            None,
            &drops,
        )?;

        let gossip_counters = [
            (
                "dawn_gossip_deliveries",
                "Gossip messages delivered to this node's subscribers.",
                gossip.delivered,
            ),
            (
                "dawn_gossip_duplicates",
                "Gossip messages received again after they were already known.",
                gossip.duplicates,
            ),
            (
                "dawn_gossip_broadcasts",
                "Gossip messages this node broadcast.",
                gossip.broadcasts,
            ),
            (
                "dawn_gossip_send_dropped",
                "Gossip frames dropped because a peer's send queue was full.",
                gossip.send_dropped,
            ),
            (
                "dawn_gossip_misbehaviours",
                "Misbehaviour seen from gossip peers (malformed frames, bad signatures, \
                 replays, floods).",
                gossip.misbehaviours,
            ),
            (
                "dawn_gossip_neighbor_failures",
                "Gossip neighbours lost without a goodbye.",
                gossip.neighbor_failures,
            ),
            (
                "dawn_gossip_addresses_learned",
                "Peer addresses learned from gossip address hints.",
                gossip.addresses_learned,
            ),
        ];
        for (name, help, value) in gossip_counters {
            counter(&mut encoder, name, help, value)?;
        }

        let Some(node) = node else {
            return Ok(());
        };
        let status = node.status();
        let node_id = status.node_id.to_string();
        gauges(
            &mut encoder,
            "dawn_node_info",
            "This node's identity and version; always 1.",
            None,
            &[(
                [
                    ("node_id", node_id.as_str()),
                    ("version", status.version.as_str()),
                ],
                1,
            )],
        )?;
        let metric = encoder.encode_descriptor(
            "dawn_uptime",
            "Time since the node started.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(status.uptime_secs).unwrap_or(i64::MAX)).encode(metric)?;
        gauges(
            &mut encoder,
            "dawn_peers",
            "Peers by state: connected now, or known (connected or not).",
            None,
            &[
                ([("state", "connected")], saturating_i64(status.peer_count)),
                (
                    [("state", "known")],
                    saturating_i64(status.known_peer_count),
                ),
            ],
        )?;
        let (mut inbound, mut outbound) = (0usize, 0usize);
        for peer in node.table().snapshot(now_unix_ms()) {
            match peer.direction.filter(|_| peer.connected) {
                Some(Direction::Inbound) => inbound += 1,
                Some(Direction::Outbound) => outbound += 1,
                None => {}
            }
        }
        gauges(
            &mut encoder,
            "dawn_connections",
            "Live peer connections by which side opened them.",
            None,
            &[
                ([("direction", "inbound")], saturating_i64(inbound)),
                ([("direction", "outbound")], saturating_i64(outbound)),
            ],
        )?;
        let (active, passive) = node.gossip.views();
        gauges(
            &mut encoder,
            "dawn_gossip_view_peers",
            "Peers in the gossip active view (neighbours) and passive view.",
            None,
            &[
                ([("view", "active")], saturating_i64(active.len())),
                ([("view", "passive")], saturating_i64(passive.len())),
            ],
        )?;
        Ok(())
    }
}

/// `GET /metrics`, merged into the node's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>) -> Response {
    let mut response = match state.shared.metrics.encode() {
        Ok(text) => {
            let mut response = text.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(METRICS_CONTENT_TYPE),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "cannot render the metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(ApiError::new("internal", error.to_string())),
            )
                .into_response()
        }
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn recorded_values_show_up_once_each() {
        let metrics = Metrics::new();
        metrics.record_message(MessageKind::AgentCall, Direction::Outbound, 100);
        metrics.record_message(MessageKind::AgentCall, Direction::Outbound, 50);
        metrics.record_message(MessageKind::Registry, Direction::Inbound, 7);
        metrics.inc_rate_limit_drop(MessageKind::AgentCall, Limit::Bytes);
        metrics.inc_rate_limit_drop(MessageKind::AgentCall, Limit::Bytes);
        metrics.inc_audit_entries();
        metrics.set_breaker_count(BreakerState::Open, 3);
        metrics.set_local_agents(2);
        let text = metrics.encode().unwrap();
        let expect = [
            (
                r#"dawn_messages_total{kind="agent_call",direction="outbound"}"#,
                "2",
            ),
            (
                r#"dawn_traffic_bytes_total{kind="agent_call",direction="outbound"}"#,
                "150",
            ),
            (
                r#"dawn_traffic_bytes_total{kind="registry",direction="inbound"}"#,
                "7",
            ),
            (
                r#"dawn_messages_total{kind="gossip",direction="inbound"}"#,
                "0",
            ),
            (
                r#"dawn_rate_limit_drops_total{kind="agent_call",limit="bytes"}"#,
                "2",
            ),
            (
                r#"dawn_rate_limit_drops_total{kind="gossip",limit="messages"}"#,
                "0",
            ),
            ("dawn_audit_entries_total", "1"),
            (r#"dawn_breakers{state="open"}"#, "3"),
            ("dawn_local_agents", "2"),
            ("dawn_registry_agents", "0"),
        ];
        for (series, value) in expect {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        // Every family is described once, and the exposition is complete.
        for family in [
            "dawn_messages",
            "dawn_agent_calls",
            "dawn_gossip_duplicates",
        ] {
            let line = format!("# TYPE {family} counter\n");
            assert_eq!(text.matches(&line).count(), 1, "{family}");
        }
        assert!(text.ends_with("# EOF\n"));
        // Without a node there are no node gauges, and nothing fails.
        assert!(!text.contains("dawn_peers"));
    }

    #[test]
    fn call_latency_lands_in_the_right_bucket() {
        let metrics = Metrics::new();
        metrics.record_agent_call(
            Direction::Inbound,
            CallOutcome::Timeout,
            Duration::from_millis(3),
        );
        let text = metrics.encode().unwrap();
        let labels = r#"direction="inbound",outcome="timeout""#;
        let bucket = |le: &str| {
            sample(
                &text,
                &format!("dawn_agent_call_duration_seconds_bucket{{le=\"{le}\",{labels}}}"),
            )
        };
        assert_eq!(bucket("0.002"), Some("0"));
        assert_eq!(bucket("0.004"), Some("1"));
        assert_eq!(bucket("+Inf"), Some("1"));
        assert_eq!(
            sample(
                &text,
                &format!("dawn_agent_call_duration_seconds_count{{{labels}}}")
            ),
            Some("1")
        );
    }

    #[test]
    fn label_values_are_the_documented_ones() {
        let kinds: Vec<&str> = MessageKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "gossip",
                "registry",
                "agent_call",
                "consensus",
                "relay",
                "other"
            ]
        );
        for (i, kind) in MessageKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
        assert_eq!(CallOutcome::BreakerOpen.as_str(), "breaker_open");
    }
}
