//! `GET /metrics` on real nodes, parsed with an independent Prometheus text-format parser
//! (`prometheus-parse`): the families an operator's dashboards rely on are there, typed, and
//! their values follow what the nodes do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use common::{bootstrap_to, builder, connected_to, eventually, get, request, start};
use dawn_node::{CallOutcome, Direction, METRICS_CONTENT_TYPE, MessageKind};
use dawn_resilience::{BreakerState, Limit};
use prometheus_parse::{Sample, Scrape, Value};

/// One scrape: the raw text and what the parser made of it.
struct Metrics {
    text: String,
    samples: Vec<Sample>,
}

async fn scrape(http: SocketAddr) -> Metrics {
    let response = get(http, "/metrics").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("content-type"), Some(METRICS_CONTENT_TYPE));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let text = response.body;
    assert!(
        text.ends_with("# EOF\n"),
        "an OpenMetrics exposition ends with # EOF"
    );
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let Scrape { samples, .. } = Scrape::parse(lines).unwrap();
    assert!(!samples.is_empty());
    Metrics { text, samples }
}

impl Metrics {
    /// The `# TYPE` of every family.
    fn types(&self) -> BTreeMap<&str, &str> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .collect()
    }

    /// The value of the one sample named `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{name}{labels:?}: {} samples in\n{}",
            found.len(),
            self.text
        );
        match &found[0].value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name} is not a scalar: {other:?}"),
        }
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let found = self
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no histogram {name}{labels:?} in\n{}", self.text));
        let Value::Histogram(buckets) = &found.value else {
            panic!("{name} is not a histogram: {:?}", found.value);
        };
        buckets.iter().map(|b| (b.less_than, b.count)).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn families_are_present_typed_and_follow_the_nodes() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Without agents, so that the only gossip is this test's own (agents publish their
    // directory entries over gossip).
    let a = builder(dir_a.path())
        .builtin_agents(false)
        .start()
        .await
        .unwrap();
    let http = a.http_addr().unwrap();

    // Alone: no peers, nothing gossiped.
    let before = scrape(http).await;
    let types = before.types();
    let expected = [
        ("dawn_node_info", "gauge"),
        ("dawn_uptime_seconds", "gauge"),
        ("dawn_peers", "gauge"),
        ("dawn_connections", "gauge"),
        ("dawn_gossip_view_peers", "gauge"),
        ("dawn_messages", "counter"),
        ("dawn_traffic_bytes", "counter"),
        ("dawn_gossip_deliveries", "counter"),
        ("dawn_gossip_duplicates", "counter"),
        ("dawn_gossip_broadcasts", "counter"),
        ("dawn_gossip_send_dropped", "counter"),
        ("dawn_gossip_misbehaviours", "counter"),
        ("dawn_gossip_neighbor_failures", "counter"),
        ("dawn_gossip_addresses_learned", "counter"),
        ("dawn_rate_limit_drops", "counter"),
        ("dawn_agent_calls", "counter"),
        ("dawn_agent_call_duration_seconds", "histogram"),
        ("dawn_registry_agents", "gauge"),
        ("dawn_local_agents", "gauge"),
        ("dawn_breakers", "gauge"),
        ("dawn_breaker_transitions", "counter"),
        ("dawn_audit_entries", "counter"),
    ];
    for (family, kind) in expected {
        assert_eq!(types.get(family), Some(&kind), "family {family}");
    }
    // Only dawn_ families, so a dashboard can select them all by prefix.
    assert!(types.keys().all(|f| f.starts_with("dawn_")), "{types:?}");
    let node_id = a.node_id().to_string();
    assert_eq!(
        before.value("dawn_node_info", &[("node_id", &node_id)]),
        1.0
    );
    assert_eq!(before.value("dawn_peers", &[("state", "connected")]), 0.0);
    assert_eq!(before.value("dawn_peers", &[("state", "known")]), 0.0);
    let gossip_out = [("kind", "gossip"), ("direction", "outbound")];
    assert_eq!(before.value("dawn_messages_total", &gossip_out), 0.0);
    assert_eq!(before.value("dawn_traffic_bytes_total", &gossip_out), 0.0);

    // A second node joins and a message goes around.
    let b = builder(dir_b.path())
        .builtin_agents(false)
        .bootstrap([bootstrap_to(&a)])
        .start()
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "peering", || connected_to(&a, &b)).await;
    let mut deliveries = b.subscribe("dawn/metrics").await.unwrap();
    eventually(Duration::from_secs(5), "gossip neighbours", || {
        !a.gossip_views().0.is_empty() && !b.gossip_views().0.is_empty()
    })
    .await;
    a.broadcast("dawn/metrics", &b"hello"[..]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), deliveries.recv())
        .await
        .unwrap()
        .unwrap();

    let broadcasts_before = a.gossip_stats().broadcasts;
    let after = scrape(http).await;
    let broadcasts_after = a.gossip_stats().broadcasts;
    assert_eq!(after.value("dawn_peers", &[("state", "connected")]), 1.0);
    assert_eq!(after.value("dawn_peers", &[("state", "known")]), 1.0);
    // b dialled a.
    assert_eq!(
        after.value("dawn_connections", &[("direction", "inbound")]),
        1.0
    );
    assert_eq!(
        after.value("dawn_connections", &[("direction", "outbound")]),
        0.0
    );
    assert_eq!(
        after.value("dawn_gossip_view_peers", &[("view", "active")]),
        1.0
    );
    // Ours, and whatever the node's own modules (the agent registry) broadcast: the counter
    // is the driver's own.
    let broadcasts = after.value("dawn_gossip_broadcasts_total", &[]);
    // The accepted connection was audited, and counted.
    assert!(after.value("dawn_audit_entries_total", &[]) >= 1.0);
    assert!(broadcasts >= 1.0);
    assert!(
        (broadcasts_before as f64..=broadcasts_after as f64).contains(&broadcasts),
        "{broadcasts_before} <= {broadcasts} <= {broadcasts_after}"
    );
    let sent = after.value("dawn_messages_total", &gossip_out);
    let bytes_sent = after.value("dawn_traffic_bytes_total", &gossip_out);
    assert!(sent >= 2.0, "join and broadcast frames, got {sent}");
    assert!(
        bytes_sent > sent,
        "every frame has bytes: {bytes_sent} bytes in {sent} frames"
    );
    let gossip_in = [("kind", "gossip"), ("direction", "inbound")];
    assert!(after.value("dawn_messages_total", &gossip_in) >= 1.0);
    // The counters are the node's own.
    assert_eq!(
        after.value("dawn_messages_total", &gossip_in),
        a.gossip_stats().frames_received as f64
    );
    let delivered_before = b.gossip_stats().delivered;
    let b_metrics = scrape(b.http_addr().unwrap()).await;
    let delivered_after = b.gossip_stats().delivered;
    let delivered = b_metrics.value("dawn_gossip_deliveries_total", &[]);
    assert!(delivered >= 1.0, "b received the broadcast");
    assert!(
        (delivered_before as f64..=delivered_after as f64).contains(&delivered),
        "{delivered_before} <= {delivered} <= {delivered_after}"
    );
    assert_eq!(
        b_metrics.value("dawn_connections", &[("direction", "outbound")]),
        1.0
    );
    assert!(after.value("dawn_uptime_seconds", &[]) >= 0.0);

    // Values recorded through the handle, by the modules that know them.
    let metrics = a.metrics();
    metrics.record_agent_call(
        Direction::Outbound,
        CallOutcome::Ok,
        Duration::from_millis(30),
    );
    metrics.record_agent_call(
        Direction::Outbound,
        CallOutcome::Ok,
        Duration::from_millis(300),
    );
    metrics.record_agent_call(
        Direction::Inbound,
        CallOutcome::Denied,
        Duration::from_micros(200),
    );
    metrics.set_registry_size(7);
    metrics.set_local_agents(2);
    metrics.inc_rate_limit_drop(MessageKind::AgentCall, Limit::Messages);
    metrics.set_breaker_count(BreakerState::Open, 1);
    metrics.set_breaker_count(BreakerState::Closed, 4);
    // The node counts its own audit entries too: measure the two added here on top.
    let audited = scrape(http).await.value("dawn_audit_entries_total", &[]);
    metrics.inc_audit_entries();
    metrics.inc_audit_entries();
    metrics.record_message(MessageKind::AgentCall, Direction::Outbound, 1200);

    let recorded = scrape(http).await;
    let ok_out = [("direction", "outbound"), ("outcome", "ok")];
    assert_eq!(recorded.value("dawn_agent_calls_total", &ok_out), 2.0);
    assert_eq!(
        recorded.value(
            "dawn_agent_calls_total",
            &[("direction", "inbound"), ("outcome", "denied")]
        ),
        1.0
    );
    let buckets = recorded.histogram("dawn_agent_call_duration_seconds", &ok_out);
    let at = |le: f64| {
        buckets
            .iter()
            .find(|(bound, _)| *bound == le || (*bound - le).abs() < 1e-9)
            .map(|(_, count)| *count)
    };
    assert_eq!(at(0.016), Some(0.0));
    assert_eq!(at(0.032), Some(1.0));
    assert_eq!(at(0.512), Some(2.0));
    assert_eq!(at(f64::INFINITY), Some(2.0));
    assert_eq!(recorded.value("dawn_registry_agents", &[]), 7.0);
    assert_eq!(recorded.value("dawn_local_agents", &[]), 2.0);
    assert_eq!(
        recorded.value(
            "dawn_rate_limit_drops_total",
            &[("kind", "agent_call"), ("limit", "messages")]
        ),
        1.0
    );
    assert_eq!(recorded.value("dawn_breakers", &[("state", "open")]), 1.0);
    assert_eq!(recorded.value("dawn_breakers", &[("state", "closed")]), 4.0);
    assert_eq!(
        recorded.value("dawn_audit_entries_total", &[]),
        audited + 2.0
    );
    let call_out = [("kind", "agent_call"), ("direction", "outbound")];
    assert_eq!(recorded.value("dawn_messages_total", &call_out), 1.0);
    assert_eq!(
        recorded.value("dawn_traffic_bytes_total", &call_out),
        1200.0
    );
    // Recording other kinds leaves gossip's numbers alone.
    assert!(recorded.value("dawn_messages_total", &gossip_out) >= sent);

    // b leaves: a sees it.
    b.shutdown().await.unwrap();
    eventually(Duration::from_secs(5), "disconnect", || {
        a.status().peer_count == 0
    })
    .await;
    let gone = scrape(http).await;
    assert_eq!(gone.value("dawn_peers", &[("state", "connected")]), 0.0);
    assert_eq!(gone.value("dawn_peers", &[("state", "known")]), 1.0);
    assert_eq!(
        gone.value("dawn_connections", &[("direction", "inbound")]),
        0.0
    );
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_is_read_only_and_follows_the_api_rules() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path()).await;
    let http = a.http_addr().unwrap();

    let head = request(http, "HEAD", "/metrics", "").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    let post = request(http, "POST", "/metrics", "Content-Length: 0\r\n").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.json()["error"]["code"], "method_not_allowed");

    // The API's DNS-rebinding guard covers /metrics too.
    let rebound = request(http, "GET", "/metrics", "Host: evil.example\r\n").await;
    assert_eq!(rebound.status, 421);

    // Label values never come from peers or requests: the set of series is fixed.
    let series = |m: &Metrics| -> BTreeSet<String> {
        m.text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_owned()))
            .filter(|s| !s.starts_with("dawn_uptime"))
            .collect()
    };
    let first = series(&scrape(http).await);
    let _ = get(http, "/metrics?kind=evil").await;
    let _ = get(http, "/api/gossip/some-topic").await;
    assert_eq!(series(&scrape(http).await), first);
    a.shutdown().await.unwrap();
}
