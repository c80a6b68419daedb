//! A node's life: start, identity, data directory, peering, restarts, shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{bootstrap_to, builder, connected_to, eventually, start};
use dawn_node::{DB_FILE_NAME, Direction, KeyState, NodeError, Passphrase, inspect_key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_and_restart_keep_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let id = node.node_id();
    assert_ne!(node.quic_addr().port(), 0, "the bound port is reported");
    let http = node.http_addr().unwrap();
    assert_ne!(http.port(), 0);
    assert!(http.ip().is_loopback());
    let status = node.status();
    assert_eq!(status.node_id, id);
    assert_eq!(status.listen_addrs, vec![node.quic_addr()]);
    assert_eq!(status.http_addr, Some(http));
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.peer_count, 0);
    assert_eq!(
        inspect_key(dir.path()).unwrap(),
        KeyState::Unprotected { node_id: id }
    );
    node.shutdown().await.unwrap();

    // The store was flushed and closed: SQLite removed its write-ahead log.
    assert!(dir.path().join(DB_FILE_NAME).exists());
    let wal = dir.path().join(format!("{DB_FILE_NAME}-wal"));
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "WAL left behind"
    );

    let again = start(dir.path()).await;
    assert_eq!(again.node_id(), id, "a restart keeps the node id");
    again.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_data_dir_runs_one_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let err = builder(dir.path()).start().await.unwrap_err();
    assert!(matches!(err, NodeError::DataDirInUse { .. }), "{err}");
    assert!(
        err.to_string().contains("in use by another dawn-node"),
        "{err}"
    );
    node.shutdown().await.unwrap();
    // Released on shutdown.
    start(dir.path()).await.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_key_is_never_silently_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let pass = Passphrase::new("correct horse battery staple").unwrap();
    let node = builder(dir.path())
        .passphrase(pass.clone())
        .start()
        .await
        .unwrap();
    let id = node.node_id();
    node.shutdown().await.unwrap();
    assert_eq!(
        inspect_key(dir.path()).unwrap(),
        KeyState::Protected { node_id: id }
    );

    let err = builder(dir.path()).start().await.unwrap_err();
    assert!(matches!(err, NodeError::PassphraseRequired { .. }), "{err}");
    assert!(err.to_string().contains("DAWN_PASSPHRASE"), "{err}");

    let wrong = Passphrase::new("wrong").unwrap();
    let err = builder(dir.path())
        .passphrase(wrong)
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wrong passphrase"), "{err}");

    // The failures did not leave the directory locked or the key changed.
    let node = builder(dir.path()).passphrase(pass).start().await.unwrap();
    assert_eq!(node.node_id(), id);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_fail_start_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = builder(dir.path())
        .http(Some(taken.local_addr().unwrap()))
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::HttpBind { .. }), "{err}");
    // Nothing was left locked.
    start(dir.path()).await.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_peer_through_bootstrap_within_a_second() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path()).await;
    let b = builder(dir_b.path())
        .bootstrap([bootstrap_to(&a)])
        .start()
        .await
        .unwrap();
    let took = eventually(
        Duration::from_secs(1),
        "both nodes to list each other",
        || connected_to(&a, &b) && connected_to(&b, &a),
    )
    .await;
    eprintln!("peered in {took:?}");

    let on_b = b
        .peers()
        .into_iter()
        .find(|p| p.node_id == a.node_id())
        .unwrap();
    assert_eq!(on_b.direction, Some(Direction::Outbound));
    assert!(on_b.bootstrap);
    assert_eq!(on_b.addresses, vec![a.quic_addr()]);
    assert_eq!(on_b.failures, 0);
    assert!(on_b.last_seen_unix_ms.is_some());

    // The accepting side records the dialer with the address it was seen at.
    let on_a = a
        .peers()
        .into_iter()
        .find(|p| p.node_id == b.node_id())
        .unwrap();
    assert_eq!(on_a.direction, Some(Direction::Inbound));
    assert!(!on_a.bootstrap);
    assert_eq!(on_a.addresses, vec![b.quic_addr()]);
    assert_eq!(a.status().peer_count, 1);
    assert_eq!(b.status().known_peer_count, 1);

    let b_id = b.node_id();
    b.shutdown().await.unwrap();
    eventually(Duration::from_secs(5), "A to see B leave", || {
        !a.peers().iter().any(|p| p.node_id == b_id && p.connected)
    })
    .await;
    let on_a = a.peers().into_iter().find(|p| p.node_id == b_id).unwrap();
    assert_eq!(on_a.direction, None);
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_bootstrap_peer_is_reconnected() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path()).await;
    let a_id = a.node_id();
    let a_addr = a.quic_addr();
    let b = builder(dir_b.path())
        .bootstrap([bootstrap_to(&a)])
        .start()
        .await
        .unwrap();
    eventually(Duration::from_secs(2), "first connection", || {
        connected_to(&b, &a)
    })
    .await;

    a.shutdown().await.unwrap();
    eventually(Duration::from_secs(5), "B to see A go", || {
        !b.peers().iter().any(|p| p.node_id == a_id && p.connected)
    })
    .await;
    // Let B fail a few dials against the closed port.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let a = builder(dir_a.path()).listen(a_addr).start().await.unwrap();
    assert_eq!(a.node_id(), a_id);
    let took = eventually(Duration::from_secs(15), "the reconnect", || {
        connected_to(&a, &b) && connected_to(&b, &a)
    })
    .await;
    eprintln!("reconnected in {took:?}");
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_peers_are_redialled_after_a_restart() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path()).await;
    let b = start(dir_b.path()).await;
    b.connect(a.node_id(), &[a.quic_addr()]).await.unwrap();
    eventually(Duration::from_secs(2), "the connection", || {
        connected_to(&a, &b) && connected_to(&b, &a)
    })
    .await;
    b.shutdown().await.unwrap();

    // B comes back without any bootstrap list: its store remembers A.
    let b = start(dir_b.path()).await;
    let known = b.peers();
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].node_id, a.node_id());
    assert!(known[0].last_seen_unix_ms.is_some());
    eventually(Duration::from_secs(5), "the redial", || {
        connected_to(&a, &b) && connected_to(&b, &a)
    })
    .await;
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_dials_are_counted_and_reported() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path()).await;
    let b = start(dir_b.path()).await;
    // B's address with A's id: the handshake refuses the wrong key.
    let err = a.connect(a.node_id(), &[b.quic_addr()]).await.unwrap_err();
    assert!(matches!(err, NodeError::Connect { .. }), "{err}");
    let impostor = dawn_crypto::SigningKey::from_bytes(&[9; 32])
        .verifying_key()
        .into();
    let err = a.connect(impostor, &[b.quic_addr()]).await.unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
    assert!(!connected_to(&a, &b));
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_failures_back_off_and_are_recorded() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A node that is gone: its port is closed.
    let gone = start(dir_a.path()).await;
    let target = bootstrap_to(&gone);
    gone.shutdown().await.unwrap();

    let mut transport = dawn_node::TransportConfig::default();
    transport.handshake_timeout = Duration::from_millis(200);
    let b = builder(dir_b.path())
        .transport_config(transport)
        .bootstrap([target.clone()])
        .start()
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "three failed dials", || {
        b.peers()
            .iter()
            .any(|p| p.node_id == target.node_id() && p.failures >= 3)
    })
    .await;
    let peer = b.peers().into_iter().next().unwrap();
    assert!(!peer.connected);
    assert!(peer.bootstrap);
    assert_eq!(peer.last_seen_unix_ms, None);
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dialler_alone_brings_a_restarted_peer_back() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path()).await;
    let (a_id, a_addr) = (a.node_id(), a.quic_addr());
    let b = builder(dir_b.path())
        .bootstrap([bootstrap_to(&a)])
        .start()
        .await
        .unwrap();
    eventually(Duration::from_secs(2), "first connection", || {
        connected_to(&b, &a)
    })
    .await;
    a.shutdown().await.unwrap();

    // A comes back with its identity but without its database: it does not know B, so only
    // B's backoff loop can reconnect them.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir_a.path().join(format!("{DB_FILE_NAME}{suffix}")));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = builder(dir_a.path()).listen(a_addr).start().await.unwrap();
    assert_eq!(a.node_id(), a_id);
    assert!(a.peers().is_empty());
    let took = eventually(Duration::from_secs(15), "B to redial A", || {
        connected_to(&a, &b) && connected_to(&b, &a)
    })
    .await;
    eprintln!("redialled in {took:?}");
    let on_b = b.peers().into_iter().find(|p| p.node_id == a_id).unwrap();
    assert_eq!(on_b.direction, Some(Direction::Outbound));
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}
