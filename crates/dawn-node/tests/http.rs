//! The HTTP API on a real bound server: stable JSON, the status page, typed errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{bootstrap_to, builder, connected_to, eventually, get, request, start};
use dawn_node::{ApiError, NodeStatus, PeerList};

fn keys(value: &serde_json::Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_status_and_peers_have_stable_fields() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path()).await;
    let b = builder(dir_b.path())
        .bootstrap([bootstrap_to(&a)])
        .start()
        .await
        .unwrap();
    eventually(Duration::from_secs(2), "peering", || connected_to(&a, &b)).await;
    let http = a.http_addr().unwrap();

    let health = get(http, "/healthz").await;
    assert_eq!(health.status, 200);
    let health = health.json();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["ready"], true);
    assert_eq!(health["components"]["store"]["status"], "healthy");

    let status = get(http, "/api/status").await;
    assert_eq!(status.status, 200);
    assert_eq!(status.header("content-type"), Some("application/json"));
    assert_eq!(status.header("cache-control"), Some("no-store"));
    let json = status.json();
    assert_eq!(
        keys(&json),
        [
            "node_id",
            "version",
            "uptime_secs",
            "listen_addrs",
            "http_addr",
            "peer_count",
            "known_peer_count",
            "gossip"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(json["node_id"], a.node_id().to_string());
    assert_eq!(json["listen_addrs"][0], a.quic_addr().to_string());
    assert_eq!(json["http_addr"], http.to_string());
    assert_eq!(json["peer_count"], 1);
    let typed: NodeStatus = serde_json::from_value(json).unwrap();
    assert_eq!(typed.node_id, a.node_id());

    let peers = get(http, "/api/peers").await;
    assert_eq!(peers.status, 200);
    let json = peers.json();
    let entry = &json["peers"][0];
    assert_eq!(
        keys(entry),
        [
            "node_id",
            "addresses",
            "connected",
            "direction",
            "first_seen_unix_ms",
            "last_seen_unix_ms",
            "failures",
            "bootstrap",
            "view",
            "trust_level",
            "trust_score"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(entry["node_id"], b.node_id().to_string());
    assert_eq!(entry["connected"], true);
    assert_eq!(entry["direction"], "inbound");
    assert_eq!(entry["addresses"][0], b.quic_addr().to_string());
    assert_eq!(entry["failures"], 0);
    // A peer that just connected is unknown, near the baseline score.
    assert_eq!(entry["trust_level"], "unknown");
    assert!(entry["trust_score"].as_f64().unwrap() >= 0.5);
    let typed: PeerList = serde_json::from_value(json).unwrap();
    assert_eq!(typed.peers.len(), 1);

    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_is_self_contained_and_shows_the_node() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path()).await;
    let b = builder(dir_b.path())
        .bootstrap([bootstrap_to(&a)])
        .start()
        .await
        .unwrap();
    eventually(Duration::from_secs(2), "peering", || connected_to(&a, &b)).await;

    let page = get(a.http_addr().unwrap(), "/status").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(page.body.contains(&a.node_id().to_string()));
    assert!(page.body.contains(&b.node_id().to_string()));
    assert!(page.body.contains("connected (inbound)"));
    assert!(
        page.body
            .contains(&format!("--bootstrap {}@{}", a.node_id(), a.quic_addr()))
    );
    // No external assets: nothing is loaded from anywhere.
    for needle in ["<script", "src=", "http://", "https://", "@import"] {
        assert!(!page.body.contains(needle), "page contains {needle:?}");
    }
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed_json() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let http = node.http_addr().unwrap();
    let error = |response: &common::Response| -> ApiError {
        serde_json::from_str(&response.body).unwrap_or_else(|e| panic!("{e}: {}", response.body))
    };

    let missing = get(http, "/api/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(error(&missing).error.code, "not_found");
    assert!(error(&missing).error.message.contains("/api/nope"));

    let post = request(http, "POST", "/api/status", "Content-Length: 0\r\n").await;
    assert_eq!(post.status, 405);
    assert_eq!(error(&post).error.code, "method_not_allowed");
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    let big = request(http, "POST", "/api/status", "Content-Length: 1000000\r\n").await;
    assert_eq!(big.status, 413);
    assert_eq!(error(&big).error.code, "payload_too_large");

    // A page on another origin reaching 127.0.0.1 through DNS rebinding carries its own Host.
    let rebound = request(http, "GET", "/api/status", "Host: attacker.example:80\r\n").await;
    assert_eq!(rebound.status, 421);
    assert_eq!(error(&rebound).error.code, "misdirected_request");
    let local = request(http, "GET", "/api/status", "Host: localhost\r\n").await;
    assert_eq!(local.status, 200);

    let head = request(http, "HEAD", "/healthz", "").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_http_when_disabled_and_shutdown_closes_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let node = builder(dir.path()).http(None).start().await.unwrap();
    assert_eq!(node.http_addr(), None);
    assert_eq!(node.status().http_addr, None);
    node.shutdown().await.unwrap();

    let node = start(dir.path()).await;
    let http = node.http_addr().unwrap();
    node.shutdown().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(http).await.is_err(),
        "HTTP still answering"
    );
}
