//! Trust enforcement on real nodes over real QUIC on 127.0.0.1: refusal at the handshake,
//! penalties for forged gossip, the admin API, the audit log across restarts and offline
//! verification, the inbound rate limit and readiness.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut as _, BytesMut};
use common::{bootstrap_to, builder, eventually, loopback, start};
use dawn_crypto::SigningKey;
use dawn_gossip::GossipMessage;
use dawn_node::{
    AdminToken, AuditEntry, AuditKind, NodeId, OfflineError, ResilienceConfig, TrustLevel,
    TrustUpdate, verify_audit_log,
};
use dawn_transport::{Transport, TransportConfig, write_frame};
use dawn_trust::verify_chain;
use dawn_wire::SignedEnvelope;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A response: status and body.
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request with an optional JSON body and extra headers.
async fn http(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let length = if body.is_empty() && method == "GET" {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}{length}Connection: close\r\n\r\n{body}"
    );
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        body: body.to_owned(),
    }
}

const JSON: &str = "Content-Type: application/json\r\n";

fn kinds_for(log: &[AuditEntry], peer: &NodeId) -> Vec<AuditKind> {
    log.iter()
        .filter(|e| e.subject().peer() == Some(peer))
        .map(AuditEntry::kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_is_refused_at_the_handshake_and_the_refusal_is_audited() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path()).await;
    let b = start(dir_b.path()).await;
    let trust = a
        .set_trust(b.node_id(), TrustUpdate::new(TrustLevel::Untrusted))
        .await
        .unwrap();
    assert_eq!(trust.level, TrustLevel::Untrusted);

    let err = b
        .connect(a.node_id(), &[a.quic_addr()])
        .await
        .expect_err("A must refuse B");
    assert!(err.to_string().contains("refused"), "{err}");
    assert!(!common::connected_to(&a, &b));

    let log = a.audit_entries(None, 1000).await.unwrap();
    let refusal = log
        .iter()
        .find(|e| e.kind() == AuditKind::ConnectionRefused)
        .expect("the refusal is audited");
    assert_eq!(refusal.subject().peer(), Some(&b.node_id()));
    assert!(
        refusal.details().contains("the peer is untrusted"),
        "{}",
        refusal.details()
    );
    assert_eq!(
        kinds_for(&log, &b.node_id()),
        [
            AuditKind::TrustAssigned,
            AuditKind::TrustChanged,
            AuditKind::ConnectionRefused
        ]
    );

    // Trusted again, B gets in, and that is audited too.
    a.set_trust(b.node_id(), TrustUpdate::new(TrustLevel::Trusted))
        .await
        .unwrap();
    b.connect(a.node_id(), &[a.quic_addr()]).await.unwrap();
    eventually(Duration::from_secs(5), "the accepted connection", || {
        common::connected_to(&a, &b)
    })
    .await;
    let log = a.audit_entries(None, 1000).await.unwrap();
    assert!(
        kinds_for(&log, &b.node_id()).contains(&AuditKind::ConnectionAccepted),
        "{:?}",
        kinds_for(&log, &b.node_id())
    );
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

/// A gossip frame carrying an envelope whose signature does not verify.
fn forged_gossip(key: &SigningKey, sequence: u64) -> bytes::Bytes {
    let now = dawn_trust::unix_ms(std::time::SystemTime::now());
    let envelope = SignedEnvelope::sign(key, "dawn/test", now, sequence, &b"forged"[..]).unwrap();
    let mut encoded = envelope.encode().unwrap();
    let last = encoded.len() - 1;
    encoded[last] ^= 0x01; // the last byte of the signature
    let envelope = SignedEnvelope::decode(&encoded).unwrap();
    assert!(envelope.verify().is_err());
    let message = GossipMessage::Gossip { hops: 0, envelope };
    let body = message.encode_body().unwrap();
    let mut frame = BytesMut::new();
    frame.put_u8(0x00);
    frame.put_u16(message.kind());
    frame.put_slice(&body);
    frame.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_forged_gossip_loses_trust_and_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path()).await;
    let key = SigningKey::from_bytes(&[42; 32]);
    let attacker = Transport::bind(key.clone(), loopback(), TransportConfig::default()).unwrap();
    let connection = attacker
        .connect(a.node_id(), &[a.quic_addr()])
        .await
        .unwrap();
    let me = attacker.node_id();
    eventually(Duration::from_secs(5), "A to see the attacker", || {
        a.peers().iter().any(|p| p.node_id == me && p.connected)
    })
    .await;
    let before = a.trust(&me);
    assert_eq!(before.level, TrustLevel::Unknown);

    let (mut send, _recv) = connection
        .open_stream(dawn_node::GOSSIP_PROTOCOL)
        .await
        .unwrap();
    for sequence in 1..=2 {
        write_frame(&mut send, &forged_gossip(&key, sequence), 1 << 20)
            .await
            .unwrap();
    }
    let closed = tokio::time::timeout(Duration::from_secs(5), connection.closed()).await;
    assert!(closed.is_ok(), "A must disconnect the attacker");

    let after = a.trust(&me);
    assert_eq!(after.level, TrustLevel::Untrusted);
    assert!(
        after.score < 0.2 && after.score < before.score,
        "{} -> {}",
        before.score,
        after.score
    );
    // It cannot come back.
    assert!(
        attacker
            .connect(a.node_id(), &[a.quic_addr()])
            .await
            .is_err()
    );

    let log = a.audit_entries(None, 1000).await.unwrap();
    let kinds = kinds_for(&log, &me);
    assert_eq!(
        kinds.first(),
        Some(&AuditKind::ConnectionAccepted),
        "{kinds:?}"
    );
    let change = log
        .iter()
        .find(|e| e.kind() == AuditKind::TrustChanged && e.subject().peer() == Some(&me))
        .unwrap();
    assert!(
        change
            .details()
            .starts_with("unknown -> untrusted (observed invalid_signature)"),
        "{}",
        change.details()
    );
    assert!(
        kinds
            .iter()
            .filter(|k| **k == AuditKind::ConnectionRefused)
            .count()
            >= 2,
        "the disconnection and the refused reconnection: {kinds:?}"
    );
    assert!(a.status().gossip.misbehaviours >= 2);
    attacker.close("done").await;
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_api_trust_changes_the_level_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path()).await;
    let http_addr = a.http_addr().unwrap();
    let peer: NodeId = SigningKey::from_bytes(&[7; 32]).verifying_key().into();
    let path = format!("/api/trust/{peer}");

    let reply = http(http_addr, "PUT", &path, JSON, r#"{"level":"trusted"}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let json = reply.json();
    assert_eq!(json["level"], "trusted");
    assert_eq!(json["assigned"], "trusted");
    assert_eq!(json["breaker"], "closed");
    assert_eq!(a.trust(&peer).level, TrustLevel::Trusted);

    let list = http(http_addr, "GET", "/api/trust", "", "").await.json();
    let entry = list["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["node_id"] == peer.to_string())
        .unwrap()
        .clone();
    assert_eq!(entry["level"], "trusted");
    assert!(entry["score"].as_f64().is_some());

    // The change is on disk and in the log by the time the PUT answered.
    let audit = http(http_addr, "GET", "/api/audit?after=0&limit=10", "", "")
        .await
        .json();
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries[0]["seq"], 1);
    assert_eq!(entries[0]["kind"], "trust_assigned");
    assert_eq!(entries[0]["peer"], peer.to_string());
    assert_eq!(entries[1]["kind"], "trust_changed");
    assert_eq!(audit["next_seq"], 3);

    // Bad requests are refused with the reason.
    for (body, headers, status) in [
        (r#"{"level":"verified"}"#, JSON, 400),
        (r#"{"level":"friend"}"#, JSON, 400),
        (r#"{"level":"trusted","extra":1}"#, JSON, 400),
        (
            r#"{"level":"trusted"}"#,
            "Content-Type: text/plain\r\n",
            415,
        ),
    ] {
        let reply = http(http_addr, "PUT", &path, headers, body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert!(reply.json()["error"]["message"].is_string());
    }
    let reply = http(
        http_addr,
        "PUT",
        "/api/trust/nope",
        JSON,
        r#"{"level":"trusted"}"#,
    )
    .await;
    assert_eq!(reply.status, 400);
    let reply = http(http_addr, "DELETE", &path, "", "").await;
    assert_eq!(reply.status, 405);
    let reply = http(http_addr, "GET", "/api/audit?limit=5000", "", "").await;
    assert_eq!(reply.status, 400);

    // The policy: read, a bad one refused naming the rule, a good one in force and audited.
    let policy = http(http_addr, "GET", "/api/policy", "", "").await.json();
    assert_eq!(policy["source"], "config");
    let bad = r#"{"allow":[{"permissions":["connect"],"agents":["weather"]}]}"#;
    let reply = http(http_addr, "PUT", "/api/policy", JSON, bad).await;
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("allow[0]"), "{}", reply.body);
    let good = r#"{"levels":{"verified":["connect","read_agents","write_registry","call_tools"]}}"#;
    let reply = http(http_addr, "PUT", "/api/policy", JSON, good).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["source"], "api");
    assert_ne!(reply.json()["fingerprint"], policy["fingerprint"]);
    let log = a.audit_entries(None, 1000).await.unwrap();
    assert_eq!(log.last().unwrap().kind(), AuditKind::PolicyChanged);

    // /api/peers entries carry the trust level and score.
    let peers = http(http_addr, "GET", "/api/peers", "", "").await;
    assert_eq!(peers.status, 200);
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_loopback_or_the_token() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Bound to every interface, reached over loopback only.
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let open = builder(dir_a.path()).http(Some(any)).start().await.unwrap();
    let port = open.http_addr().unwrap().port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let reply = http(addr, "GET", "/api/trust", "", "").await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.body.contains("admin.token_file"), "{}", reply.body);
    // Health stays public.
    assert_eq!(http(addr, "GET", "/healthz", "", "").await.status, 200);
    open.shutdown().await.unwrap();

    let token = AdminToken::new("an-admin-token-for-tests").unwrap();
    let guarded = builder(dir_b.path())
        .http(Some(any))
        .admin_token(token)
        .start()
        .await
        .unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], guarded.http_addr().unwrap().port()).into();
    assert_eq!(http(addr, "GET", "/api/policy", "", "").await.status, 401);
    let wrong = "Authorization: Bearer an-admin-token-for-test\r\n";
    assert_eq!(
        http(addr, "GET", "/api/policy", wrong, "").await.status,
        401
    );
    let right = "Authorization: Bearer an-admin-token-for-tests\r\n";
    assert_eq!(
        http(addr, "GET", "/api/policy", right, "").await.status,
        200
    );
    guarded.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_chain_survives_a_restart_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let peer: NodeId = SigningKey::from_bytes(&[7; 32]).verifying_key().into();
    let a = start(dir.path()).await;
    let node = a.node_id();
    a.set_trust(peer, TrustUpdate::new(TrustLevel::Trusted))
        .await
        .unwrap();
    a.shutdown().await.unwrap();

    let a = start(dir.path()).await;
    // The level survived in the trust records.
    assert_eq!(a.trust(&peer).level, TrustLevel::Trusted);
    a.set_trust(peer, TrustUpdate::new(TrustLevel::Untrusted))
        .await
        .unwrap();
    // Verifiable while the node runs...
    let running = verify_audit_log(dir.path()).unwrap();
    assert_eq!(running.node_id, node);
    let log = a.audit_entries(None, 1000).await.unwrap();
    a.shutdown().await.unwrap();

    let kinds: Vec<AuditKind> = log.iter().map(AuditEntry::kind).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::NodeStarted,
            AuditKind::TrustAssigned,
            AuditKind::TrustChanged,
            AuditKind::NodeStopped,
            AuditKind::NodeStarted,
            AuditKind::TrustAssigned,
            AuditKind::TrustChanged,
        ]
    );
    let seqs: Vec<u64> = log.iter().map(AuditEntry::seq).collect();
    assert_eq!(seqs, (0..7).collect::<Vec<_>>());
    assert_eq!(verify_chain(&node, &log).unwrap().entries, 7);
    // ...and once stopped, with the last node_stopped entry.
    let stopped = verify_audit_log(dir.path()).unwrap();
    assert_eq!((stopped.entries, stopped.next_seq), (8, 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_edited_in_an_audit_row_is_found_at_that_entry() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path()).await;
    for seed in 1..=3u8 {
        let peer: NodeId = SigningKey::from_bytes(&[seed; 32]).verifying_key().into();
        a.set_trust(peer, TrustUpdate::new(TrustLevel::Trusted))
            .await
            .unwrap();
    }
    a.shutdown().await.unwrap();
    assert_eq!(verify_audit_log(dir.path()).unwrap().entries, 8);

    let db = rusqlite::Connection::open(dir.path().join(dawn_node::DB_FILE_NAME)).unwrap();
    let mut entry: Vec<u8> = db
        .query_row("SELECT entry FROM audit_log WHERE seq = 3", [], |row| {
            row.get(0)
        })
        .unwrap();
    // A byte of the details text: still decodes, no longer verifies.
    let at = entry.len() - 64 - 32 - 2;
    entry[at] ^= 0x01;
    db.execute_batch("DROP TRIGGER audit_log_no_update")
        .unwrap();
    db.execute("UPDATE audit_log SET entry = ?1 WHERE seq = 3", [&entry])
        .unwrap();
    drop(db);

    match verify_audit_log(dir.path()) {
        Err(OfflineError::Tampered(fault)) => {
            assert_eq!(fault.position(), 3, "{fault}");
            assert!(fault.to_string().contains("entry 3"), "{fault}");
        }
        other => panic!("expected the tampered entry, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_gossip_frames_is_dropped_and_costs_trust() {
    let dir = tempfile::tempdir().unwrap();
    let mut resilience = ResilienceConfig::default();
    resilience.rate_limit.messages_per_sec = 5;
    resilience.rate_limit.message_burst = 5;
    let a = builder(dir.path())
        .resilience_config(resilience)
        .start()
        .await
        .unwrap();
    let key = SigningKey::from_bytes(&[43; 32]);
    let flooder = Transport::bind(key, loopback(), TransportConfig::default()).unwrap();
    let connection = flooder
        .connect(a.node_id(), &[a.quic_addr()])
        .await
        .unwrap();
    let me = flooder.node_id();
    let (mut send, _recv) = connection
        .open_stream(dawn_node::GOSSIP_PROTOCOL)
        .await
        .unwrap();
    // Keep-alives: valid, harmless, and far more than 5 a second.
    let message = GossipMessage::KeepAlive;
    let mut frame = BytesMut::new();
    frame.put_u8(0x00);
    frame.put_u16(message.kind());
    frame.put_slice(&message.encode_body().unwrap());
    let frame = frame.freeze();
    for _ in 0..400 {
        if write_frame(&mut send, &frame, 1 << 20).await.is_err() {
            break;
        }
    }
    eventually(Duration::from_secs(10), "the flood to be dropped", || {
        a.trust_list().gossip_frames_dropped >= 300
    })
    .await;
    let trust = a.trust(&me);
    assert!(trust.score < 0.5, "a flood costs trust: {}", trust.score);
    flooder.close("done").await;
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_a_node_whose_every_breaker_is_open() {
    let (dir_gone, dir_a) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let gone = start(dir_gone.path()).await;
    let target = bootstrap_to(&gone);
    gone.shutdown().await.unwrap();

    let mut resilience = ResilienceConfig::default();
    resilience.breaker.consecutive_failures = 2;
    resilience.breaker.open = Duration::from_secs(60);
    resilience.breaker.max_open = Duration::from_secs(60);
    let mut transport = TransportConfig::default();
    transport.handshake_timeout = Duration::from_millis(200);
    let a = builder(dir_a.path())
        .transport_config(transport)
        .resilience_config(resilience)
        .bootstrap([target.clone()])
        .start()
        .await
        .unwrap();
    let http_addr = a.http_addr().unwrap();
    // Before the peer's dials have failed twice, the node is ready... (or already not: the
    // dials are fast; what matters is where it ends up).
    eventually(Duration::from_secs(10), "the breaker to open", || {
        !a.readiness().ready
    })
    .await;
    let reply = http(http_addr, "GET", "/readyz", "", "").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let json = reply.json();
    assert_eq!(json["ready"], false);
    assert_eq!(json["reasons"][0], "every peer's circuit breaker is open");
    assert_eq!(json["health"]["components"]["peers"]["status"], "degraded");
    assert_eq!(json["health"]["components"]["store"]["status"], "healthy");
    // Liveness is not readiness: the process is fine.
    let health = http(http_addr, "GET", "/healthz", "", "").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "degraded");
    assert_eq!(
        a.trust(&target.node_id()).breaker,
        dawn_resilience::BreakerState::Open
    );
    // /metrics says the same: one open breaker (counted on the node's 1 s tick) and the
    // transition that opened it.
    let mut metrics = String::new();
    eventually(
        Duration::from_secs(10),
        "/metrics to count the open breaker",
        || {
            metrics = a.metrics().encode().unwrap();
            metrics
                .lines()
                .any(|l| l == r#"dawn_breakers{state="open"} 1"#)
        },
    )
    .await;
    assert!(
        metrics.lines().any(
            |l| l.starts_with(r#"dawn_breaker_transitions_total{to="open""#) && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
    a.shutdown().await.unwrap();

    // A node with no peers at all is ready.
    let dir = tempfile::tempdir().unwrap();
    let lonely = start(dir.path()).await;
    let reply = http(lonely.http_addr().unwrap(), "GET", "/readyz", "", "").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["reasons"], serde_json::json!([]));
    lonely.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_policy_is_kept_until_the_configured_one_changes() {
    let dir = tempfile::tempdir().unwrap();
    let runtime: dawn_node::PolicyConfig =
        serde_json::from_str(r#"{"levels":{"unknown":["connect"]}}"#).unwrap();
    let a = start(dir.path()).await;
    let set = a.set_policy(runtime.clone()).await.unwrap();
    assert_eq!(set.source, "api");
    a.shutdown().await.unwrap();

    // Same configuration: the policy set at run time is still in force.
    let a = start(dir.path()).await;
    let view = a.policy();
    assert_eq!((view.source.as_str(), &view.policy), ("api", &runtime));
    a.shutdown().await.unwrap();

    // The configured policy changed: it wins.
    let configured: dawn_node::PolicyConfig =
        serde_json::from_str(r#"{"deny":[{"permissions":["admin"]}]}"#).unwrap();
    let a = builder(dir.path())
        .policy(dawn_node::Policy::from_config(configured.clone()).unwrap())
        .start()
        .await
        .unwrap();
    let view = a.policy();
    assert_eq!(
        (view.source.as_str(), &view.policy),
        ("config", &configured)
    );
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_running_restores_the_trust_and_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let spare = tempfile::tempdir().unwrap();
    let backup_file = spare.path().join("dawn.backup");
    let peer: NodeId = SigningKey::from_bytes(&[7; 32]).verifying_key().into();

    let a = start(dir.path()).await;
    a.set_trust(peer, TrustUpdate::new(TrustLevel::Trusted))
        .await
        .unwrap();
    // Online: the node keeps running.
    dawn_node::backup(dir.path(), &backup_file).unwrap();
    let at_backup = a.audit_entries(None, 1000).await.unwrap().len();
    assert!(matches!(
        dawn_node::backup(dir.path(), &backup_file),
        Err(OfflineError::Store(_))
    ));
    a.set_trust(peer, TrustUpdate::new(TrustLevel::Untrusted))
        .await
        .unwrap();
    // Not while the node runs.
    assert!(matches!(
        dawn_node::restore(dir.path(), &backup_file),
        Err(OfflineError::NodeRunning { .. })
    ));
    a.shutdown().await.unwrap();

    dawn_node::restore(dir.path(), &backup_file).unwrap();
    let verified = verify_audit_log(dir.path()).unwrap();
    assert_eq!(verified.entries, at_backup as u64);
    let a = start(dir.path()).await;
    assert_eq!(a.trust(&peer).level, TrustLevel::Trusted);
    // The chain goes on from the restored head.
    a.shutdown().await.unwrap();
    let after = verify_audit_log(dir.path()).unwrap();
    assert_eq!(after.entries, at_backup as u64 + 2);
}
