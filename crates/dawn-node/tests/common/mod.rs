//! Helpers shared by the integration tests: nodes on loopback, a tiny HTTP client, polling.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use dawn_crypto::AeadSuite;
use dawn_identity::{KdfParams, SealOptions};
use dawn_node::{BootstrapPeer, Node, NodeBuilder};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A builder for a test node: loopback, ephemeral ports, quick key derivation and backoff.
pub fn builder(dir: &Path) -> NodeBuilder {
    NodeBuilder::new()
        .data_dir(dir)
        .listen(loopback())
        .http(Some(loopback()))
        .development_mode(true)
        .seal_options(SealOptions::new(
            KdfParams::insecure_fast(),
            AeadSuite::default(),
        ))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
}

pub async fn start(dir: &Path) -> Node {
    builder(dir).start().await.unwrap()
}

pub fn bootstrap_to(node: &Node) -> BootstrapPeer {
    BootstrapPeer::new(node.node_id(), node.quic_addr())
}

/// Polls `check` every 10 ms until it holds or `limit` passes; returns the time it took.
pub async fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn connected_to(node: &Node, peer: &Node) -> bool {
    node.peers()
        .iter()
        .any(|p| p.node_id == peer.node_id() && p.connected)
}

/// A response from [`request`].
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends one raw HTTP/1.1 request and reads the whole response (the server closes).
pub async fn request(addr: SocketAddr, method: &str, path: &str, extra_headers: &str) -> Response {
    request_with_body(addr, method, path, extra_headers, "").await
}

/// `POST`s `body` as JSON.
pub async fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Response {
    let body = body.to_string();
    let headers = format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    request_with_body(addr, "POST", path, &headers, &body).await
}

/// [`request`] with a body after the head (give its `Content-Length` in `extra_headers`).
pub async fn request_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra_headers: &str,
    body: &str,
) -> Response {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
    let host = if extra_headers.to_ascii_lowercase().contains("host:") {
        String::new()
    } else {
        format!("Host: {addr}\r\n")
    };
    let text =
        format!("{method} {path} HTTP/1.1\r\n{host}{extra_headers}Connection: close\r\n\r\n{body}");
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, "").await
}
