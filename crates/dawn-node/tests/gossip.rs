//! Gossip between real nodes on loopback: 20 nodes join through one, every broadcast reaches
//! every node, and the HTTP API broadcasts and shows the views.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use dawn_node::{Node, NodeBuilder, NodeId, TransportConfig, View};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use common::{bootstrap_to, builder, eventually, loopback};

const NODES: usize = 20;
const TOPIC: &str = "test/gossip";

fn node_builder(dir: &std::path::Path, http: bool) -> NodeBuilder {
    // Every node shares 127.0.0.1, so the per-address connection limit must fit them all.
    let mut transport = TransportConfig::default();
    transport.max_connections_per_ip = NODES * 2;
    builder(dir)
        .http(http.then(loopback))
        .transport_config(transport)
}

/// Sends one HTTP/1.1 POST and returns the status code and body.
async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_nodes_receive_every_broadcast() {
    let dirs: Vec<_> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
    let first = node_builder(dirs[0].path(), true).start().await.unwrap();
    let contact = bootstrap_to(&first);
    let mut nodes: Vec<Node> = vec![first];
    for dir in &dirs[1..] {
        let node = node_builder(dir.path(), false)
            .bootstrap([contact.clone()])
            .start()
            .await
            .unwrap();
        nodes.push(node);
    }
    let mut subscriptions = Vec::new();
    for node in &nodes {
        subscriptions.push(node.subscribe(TOPIC).await.unwrap());
    }

    // Every node finds neighbours, and not only node 0: the others were dialled at
    // addresses learned from gossip.
    eventually(
        Duration::from_secs(30),
        "every node to have a neighbour",
        || nodes.iter().all(|n| !n.gossip_views().0.is_empty()),
    )
    .await;
    let first_id = nodes[0].node_id();
    eventually(Duration::from_secs(30), "neighbours besides node 0", || {
        nodes[1..]
            .iter()
            .any(|n| n.gossip_views().0.iter().any(|p| *p != first_id))
    })
    .await;

    // Broadcasts from three origins, one of them through the HTTP API.
    let mut expected: HashMap<String, (NodeId, Vec<u8>)> = HashMap::new();
    // Keyed by the hex form, as JSON shows it.
    for origin in [0, 7, NODES - 1] {
        let payload = format!("hello from {origin}").into_bytes();
        let id = nodes[origin]
            .broadcast(TOPIC, payload.clone())
            .await
            .unwrap();
        let hex: String = id.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(id.to_string(), hex);
        expected.insert(hex, (nodes[origin].node_id(), payload));
    }
    let http = nodes[0].http_addr().unwrap();
    let path = format!("/api/gossip/{TOPIC}");
    let (status, body) = post(http, &path, "application/octet-stream", b"via http").await;
    assert_eq!(status, 202, "{body}");
    let receipt: serde_json::Value = serde_json::from_str(&body).unwrap();
    let http_id = receipt["message_id"].as_str().unwrap().to_owned();
    expected.insert(http_id.clone(), (first_id, b"via http".to_vec()));

    // Every node but the origin receives every message, once, intact.
    let receivers = subscriptions.into_iter().enumerate().map(|(i, mut sub)| {
        let own = nodes[i].node_id();
        let want: HashSet<String> = expected
            .iter()
            .filter(|(_, (origin, _))| *origin != own)
            .map(|(id, _)| id.clone())
            .collect();
        let expected = expected.clone();
        tokio::spawn(async move {
            let mut got = HashSet::new();
            while got != want {
                let delivery = sub.recv().await.unwrap();
                let id = delivery.message_id.to_string();
                let (origin, payload) = &expected[&id];
                assert_eq!(delivery.origin, *origin);
                assert_eq!(&delivery.payload[..], &payload[..]);
                assert_eq!(delivery.topic, TOPIC);
                assert!(got.insert(id), "delivered twice");
            }
        })
    });
    let all = futures_all(receivers.collect());
    tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .expect("every node receives every broadcast within 30 s");

    // The HTTP API shows the views and the recent deliveries.
    let peers = common::get(http, "/api/peers").await.json();
    let active = peers["active_view"].as_array().unwrap();
    assert!(!active.is_empty());
    assert!(
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["view"] == "active")
    );
    let recent = common::get(nodes[1].http_addr().unwrap_or(http), &path).await;
    assert_eq!(recent.status, 200);
    assert!(
        nodes[1]
            .peers()
            .iter()
            .any(|p| p.view == Some(View::Active))
    );
    let stats = nodes[1].gossip_stats();
    assert!(stats.delivered >= 4, "{stats:?}");
    assert_eq!(stats.misbehaviours, 0);

    let stops: Vec<_> = nodes
        .into_iter()
        .map(|node| tokio::spawn(node.shutdown()))
        .collect();
    for stop in stops {
        stop.await.unwrap().unwrap();
    }
}

async fn futures_all(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        handle.await.unwrap();
    }
}

#[tokio::test]
async fn http_broadcast_checks_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_builder(dir.path(), true).start().await.unwrap();
    let http = node.http_addr().unwrap();
    // A form post (no CORS preflight) is refused.
    let (status, body) = post(http, "/api/gossip/t", "text/plain", b"x").await;
    assert_eq!(status, 415, "{body}");
    // An invalid topic.
    let (status, body) = post(http, "/api/gossip/%20", "application/octet-stream", b"x").await;
    assert_eq!(status, 400, "{body}");
    // Too large a body.
    let big = vec![b'a'; 17 * 1024];
    let (status, _) = post(http, "/api/gossip/t", "application/octet-stream", &big).await;
    assert_eq!(status, 413);
    // A valid one, with no subscriber anywhere, is still accepted.
    let (status, body) = post(http, "/api/gossip/t", "application/octet-stream", b"x").await;
    assert_eq!(status, 202, "{body}");
    // Other methods are refused, naming the allowed ones.
    let put = common::request(http, "PUT", "/api/gossip/t", "").await;
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), Some("GET, HEAD, POST"));
    // GET subscribes and lists nothing yet.
    let recent = common::get(http, "/api/gossip/t").await.json();
    assert_eq!(recent["deliveries"].as_array().unwrap().len(), 0);
    // Invalid topics through the Rust API.
    assert!(node.subscribe("").await.is_err());
    assert!(node.broadcast("", &b"x"[..]).await.is_err());
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_rejoins_through_the_peers_it_remembers() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node_builder(dir_a.path(), false).start().await.unwrap();
    let b = node_builder(dir_b.path(), false)
        .bootstrap([bootstrap_to(&a)])
        .start()
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "b to join a", || {
        b.gossip_views().0.contains(&a.node_id())
    })
    .await;
    b.shutdown().await.unwrap();

    // No bootstrap peer this time: only the store knows about a.
    let b = node_builder(dir_b.path(), false).start().await.unwrap();
    let mut deliveries = b.subscribe(TOPIC).await.unwrap();
    eventually(Duration::from_secs(10), "b to rejoin a", || {
        b.gossip_views().0.contains(&a.node_id()) && a.gossip_views().0.contains(&b.node_id())
    })
    .await;
    a.broadcast(TOPIC, &b"welcome back"[..]).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&delivery.payload[..], b"welcome back");
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_gossip_frames_are_counted_and_survived() {
    use dawn_transport::{Transport, write_frame};

    let dir = tempfile::tempdir().unwrap();
    // Malformed frames cost trust, and three would make the rogue Untrusted and disconnect
    // it (tests/security.rs); here the frames are counted and the streams limited, so the
    // score never crosses the line.
    let forgiving = dawn_node::TrustConfig {
        untrusted_below: 0.0,
        untrusted_exit: 0.0,
        ..dawn_node::TrustConfig::default()
    };
    let node = node_builder(dir.path(), false)
        .trust_config(forgiving)
        .start()
        .await
        .unwrap();
    let key = dawn_crypto::SigningKey::generate().unwrap();
    let rogue = Transport::bind(key, loopback(), TransportConfig::default()).unwrap();
    let connection = rogue
        .connect(node.node_id(), &[node.quic_addr()])
        .await
        .unwrap();
    let (mut send, _recv) = connection
        .open_stream(dawn_node::GOSSIP_PROTOCOL)
        .await
        .unwrap();
    let bad: [&[u8]; 5] = [
        &[0x07],                   // unknown tag
        &[0x00, 0x01],             // message frame too short for its kind
        &[0x01, 0x00],             // address hints naming no peer
        &[0x01, 0x01, 0x00],       // truncated address hints
        &[0x00, 0x01, 0x01, 0xff], // ForwardJoin with a malformed body
    ];
    for frame in bad {
        write_frame(&mut send, frame, 1024).await.unwrap();
    }
    eventually(
        Duration::from_secs(10),
        "five misbehaviours counted",
        || node.gossip_stats().misbehaviours >= 5,
    )
    .await;
    assert_eq!(node.gossip_stats().frames_received, 5);

    // A second stream from the same peer is read; a third at once is refused.
    let (mut second, _r2) = connection
        .open_stream(dawn_node::GOSSIP_PROTOCOL)
        .await
        .unwrap();
    write_frame(&mut second, &[0x07], 1024).await.unwrap();
    eventually(Duration::from_secs(10), "the second stream read", || {
        node.gossip_stats().frames_received == 6
    })
    .await;
    let (mut third, _r3) = connection
        .open_stream(dawn_node::GOSSIP_PROTOCOL)
        .await
        .unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if write_frame(&mut third, &[0x07], 1024).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the third stream was not refused");
    assert_eq!(node.gossip_stats().frames_received, 6);

    // The node still gossips: a well-behaved peer joins and receives a broadcast.
    let dir_b = tempfile::tempdir().unwrap();
    let b = node_builder(dir_b.path(), false)
        .bootstrap([bootstrap_to(&node)])
        .start()
        .await
        .unwrap();
    let mut deliveries = b.subscribe(TOPIC).await.unwrap();
    eventually(Duration::from_secs(10), "b to join", || {
        node.gossip_views().0.contains(&b.node_id())
    })
    .await;
    node.broadcast(TOPIC, &b"still here"[..]).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&delivery.payload[..], b"still here");

    rogue.close("done").await;
    b.shutdown().await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_shuts_down_says_goodbye() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node_builder(dir_a.path(), false).start().await.unwrap();
    let b = node_builder(dir_b.path(), false)
        .bootstrap([bootstrap_to(&a)])
        .start()
        .await
        .unwrap();
    let b_id = b.node_id();
    eventually(Duration::from_secs(10), "a and b to be neighbours", || {
        a.gossip_views().0.contains(&b_id)
    })
    .await;
    b.shutdown().await.unwrap();
    // b left rather than failed: a keeps it in neither view and counts no failure.
    eventually(Duration::from_secs(5), "a to forget b", || {
        let (active, passive) = a.gossip_views();
        !active.contains(&b_id) && !passive.contains(&b_id)
    })
    .await;
    assert_eq!(a.gossip_stats().neighbor_failures, 0);
    a.shutdown().await.unwrap();
}
