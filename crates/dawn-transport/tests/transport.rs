//! End-to-end tests on loopback: authentication, pooling, requests, raw streams, limits, idle
//! timeout and shutdown, through the public API only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_transport::{
    AcceptError, BindError, CloseCode, ConnectError, ConnectionError, Direction, FrameIoError,
    HandlerError, IncomingStream, ReadError, Refusal, RegisterError, RequestError, StreamCode,
    Transport, TransportConfig, TransportEvent, read_frame, write_frame,
};
use dawn_wire::Capabilities;
use tokio::sync::broadcast;
use tokio::task::{JoinHandle, JoinSet};

const WAIT: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn bind(config: TransportConfig) -> Transport {
    Transport::bind(SigningKey::generate().unwrap(), loopback(), config).unwrap()
}

fn echo(config: TransportConfig) -> Transport {
    let node = bind(config);
    node.register_request_handler("echo/1", |_ctx, body: Bytes| async move { Ok(body) })
        .unwrap();
    node
}

fn addr(node: &Transport) -> Vec<SocketAddr> {
    vec![node.local_addr().unwrap()]
}

/// A node id nobody holds the key of.
fn nobody() -> NodeId {
    SigningKey::generate().unwrap().verifying_key().into()
}

/// Polls `check` until it holds, failing the test after [`WAIT`].
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Takes one datagram from `budget`, if any is left.
fn spend(budget: &AtomicUsize) -> bool {
    budget
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// A UDP relay between one client and `upstream` that passes a budget of datagrams each way
/// and drops the rest, so that either side seems to vanish once its budget is spent.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicUsize>,
    down: Arc<AtomicUsize>,
    from_upstream: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Passes at most `up` datagrams to `upstream` and `down` back to the client.
    async fn start(upstream: SocketAddr, up: usize, down: usize) -> Self {
        let socket = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
        let addr = socket.local_addr().unwrap();
        let up = Arc::new(AtomicUsize::new(up));
        let down = Arc::new(AtomicUsize::new(down));
        let from_upstream = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (up, down, from_upstream) = (up.clone(), down.clone(), from_upstream.clone());
            async move {
                let mut client = None;
                let mut buf = vec![0; 1 << 16];
                while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                    let datagram = &buf[..len];
                    if from == upstream {
                        from_upstream.fetch_add(1, Ordering::SeqCst);
                        if let Some(client) = client
                            && spend(&down)
                        {
                            let _ = socket.send_to(datagram, client).await;
                        }
                    } else {
                        client = Some(from);
                        if spend(&up) {
                            let _ = socket.send_to(datagram, upstream).await;
                        }
                    }
                }
            }
        });
        Self {
            addr,
            up,
            down,
            from_upstream,
            task,
        }
    }

    /// Drops everything from now on, both ways.
    fn cut(&self) {
        self.up.store(0, Ordering::SeqCst);
        self.down.store(0, Ordering::SeqCst);
    }

    /// Datagrams received from upstream so far, passed on or dropped.
    fn heard_from_upstream(&self) -> usize {
        self.from_upstream.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits for the first event matching `pick`, failing the test after [`WAIT`].
async fn wait_for<T>(
    events: &mut broadcast::Receiver<TransportEvent>,
    mut pick: impl FnMut(TransportEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event channel closed"),
            }
        }
    })
    .await
    .expect("expected event did not arrive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_authenticate_each_other() {
    let server = echo(TransportConfig::default());
    let mut server_events = server.subscribe();
    let mut config = TransportConfig::default();
    config.capabilities = Capabilities::GOSSIP | Capabilities::MCP;
    let client = bind(config);

    let connection = client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();
    assert_eq!(connection.peer(), server.node_id());
    assert_eq!(connection.direction(), Direction::Outbound);
    assert_eq!(connection.protocol_version(), dawn_wire::PROTOCOL_VERSION);
    assert_eq!(connection.remote_addr(), server.local_addr().unwrap());

    let inbound = wait_for(&mut server_events, |event| match event {
        TransportEvent::Connected(connection) => Some(connection),
        _ => None,
    })
    .await;
    assert_eq!(inbound.peer(), client.node_id());
    assert_eq!(inbound.direction(), Direction::Inbound);
    assert_eq!(
        inbound.peer_capabilities(),
        Capabilities::GOSSIP | Capabilities::MCP
    );
    assert!(inbound.peer_hello().software.starts_with("dawn/"));
    assert_eq!(
        server.connection(&client.node_id()).unwrap().id(),
        inbound.id()
    );

    // The server can use the inbound connection for its own requests.
    client
        .register_request_handler("whoami/1", |ctx, _| async move {
            Ok(Bytes::from(ctx.peer().to_string()))
        })
        .unwrap();
    let answer = inbound.request("whoami/1", Bytes::new()).await.unwrap();
    assert_eq!(answer, server.node_id().to_string());

    let reply = connection.request("echo/1", "ping").await.unwrap();
    assert_eq!(reply, "ping");
    client.close("done").await;
    server.close("done").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialing_the_wrong_node_id_fails_during_the_handshake() {
    let server = echo(TransportConfig::default());
    let mut server_events = server.subscribe();
    let client = bind(TransportConfig::default());
    let impostor_expected: NodeId = SigningKey::generate().unwrap().verifying_key().into();

    let error = client
        .connect(impostor_expected, &addr(&server))
        .await
        .unwrap_err();
    match error {
        ConnectError::PeerMismatch {
            expected,
            presented,
        } => {
            assert_eq!(expected, impostor_expected);
            assert_eq!(presented, server.node_id());
        }
        other => panic!("expected PeerMismatch, got {other:?}"),
    }
    assert!(client.connections().is_empty());
    // The server saw a failed handshake, never an established connection.
    let failure = wait_for(&mut server_events, |event| match event {
        TransportEvent::InboundFailed { error, .. } => Some(error),
        TransportEvent::Connected(_) => panic!("the server must not establish the connection"),
        _ => None,
    })
    .await;
    assert!(matches!(failure, AcceptError::Handshake(_)), "{failure:?}");
    assert!(server.connections().is_empty());

    // Dialing the right id still works.
    let connection = client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();
    assert_eq!(connection.peer(), server.node_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trust_policy_can_refuse_a_node_at_accept_time() {
    let blocked = SigningKey::generate().unwrap();
    let blocked_id: NodeId = blocked.verifying_key().into();
    let mut config = TransportConfig::default();
    config.accept_policy = Some(Arc::new(move |peer: &NodeId, _remote: SocketAddr| {
        if *peer == blocked_id {
            Err(Refusal::new("not trusted"))
        } else {
            Ok(())
        }
    }));
    let server = echo(config);
    let mut server_events = server.subscribe();

    let client = Transport::bind(blocked, loopback(), TransportConfig::default()).unwrap();
    let error = client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap_err();
    match error {
        ConnectError::Refused { code, reason } => {
            assert_eq!(code, CloseCode::Refused);
            assert_eq!(reason, "not trusted");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    let failure = wait_for(&mut server_events, |event| match event {
        TransportEvent::InboundFailed { error, .. } => Some(error),
        _ => None,
    })
    .await;
    match failure {
        AcceptError::Refused { peer, refusal } => {
            assert_eq!(peer, blocked_id);
            assert_eq!(refusal.reason(), "not trusted");
        }
        other => panic!("expected a policy refusal, got {other:?}"),
    }
    assert!(server.connections().is_empty());

    // Another node is welcome; and replacing the policy at run time takes effect.
    let friend = bind(TransportConfig::default());
    friend
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();
    server.set_accept_policy(Some(Arc::new(|_: &NodeId, _: SocketAddr| {
        Err(Refusal::new("closed for maintenance"))
    })));
    let late = bind(TransportConfig::default());
    let error = late
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ConnectError::Refused { reason, .. } if reason == "closed for maintenance"),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_share_one_connection() {
    let server = echo(TransportConfig::default());
    let client = bind(TransportConfig::default());
    let server_id = server.node_id();
    let addrs = addr(&server);

    let mut tasks = JoinSet::new();
    for i in 0..1000u32 {
        let client = client.clone();
        let addrs = addrs.clone();
        tasks.spawn(async move {
            let connection = client.connect(server_id, &addrs).await.unwrap();
            let body = Bytes::from(format!("request {i} {}", "x".repeat((i % 300) as usize)));
            let reply = connection.request("echo/1", body.clone()).await.unwrap();
            assert_eq!(reply, body);
            connection.id()
        });
    }
    let mut ids = Vec::new();
    while let Some(id) = tasks.join_next().await {
        ids.push(id.unwrap());
    }
    assert_eq!(ids.len(), 1000);
    assert!(
        ids.iter().all(|&id| id == ids[0]),
        "every request used one connection"
    );
    assert_eq!(client.connections().len(), 1);
    assert_eq!(server.connections().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_share_the_pooled_connection_and_concurrent_dials_collapse() {
    let server = echo(TransportConfig::default());
    let mut server_events = server.subscribe();
    let client = bind(TransportConfig::default());
    let mut client_events = client.subscribe();
    let addrs = addr(&server);

    let mut dials = JoinSet::new();
    for _ in 0..16 {
        let client = client.clone();
        let addrs = addrs.clone();
        let server_id = server.node_id();
        dials.spawn(async move { client.connect(server_id, &addrs).await.unwrap().id() });
    }
    let mut ids = Vec::new();
    while let Some(id) = dials.join_next().await {
        ids.push(id.unwrap());
    }
    assert!(ids.iter().all(|&id| id == ids[0]), "{ids:?}");

    // A later caller gets the same connection without dialing.
    let again = client.connect(server.node_id(), &addrs).await.unwrap();
    assert_eq!(again.id(), ids[0]);
    // Even with no addresses at all, since the pool already has the peer.
    let pooled = client.connect(server.node_id(), &[]).await.unwrap();
    assert_eq!(pooled.id(), ids[0]);

    // Exactly one connection came up on each side.
    wait_for(&mut client_events, |event| {
        matches!(event, TransportEvent::Connected(_)).then_some(())
    })
    .await;
    wait_for(&mut server_events, |event| {
        matches!(event, TransportEvent::Connected(_)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        client_events.try_recv().is_err(),
        "a second connection came up"
    );
    assert!(
        server_events.try_recv().is_err(),
        "a second connection came up"
    );
    assert_eq!(server.connections().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dials_in_both_directions_settle_on_one_connection() {
    for _ in 0..5 {
        let a = echo(TransportConfig::default());
        let b = echo(TransportConfig::default());
        let (a_addrs, b_addrs) = (addr(&a), addr(&b));
        let (from_a, from_b) = tokio::join!(
            a.connect(b.node_id(), &b_addrs),
            b.connect(a.node_id(), &a_addrs),
        );
        let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
        assert_eq!(from_a.peer(), b.node_id());
        assert_eq!(from_b.peer(), a.node_id());
        // Both nodes settle on the same connection: outbound on one side, inbound on the
        // other.
        let settled = tokio::time::timeout(WAIT, async {
            loop {
                let on_a = a.connection(&b.node_id());
                let on_b = b.connection(&a.node_id());
                if let (Some(on_a), Some(on_b)) = (on_a, on_b)
                    && on_a.direction() != on_b.direction()
                {
                    return (on_a, on_b);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let (on_a, on_b) = settled.expect("both nodes settle on one connection");
        // When both dials really crossed, the one dialed by the smaller node id won.
        if from_a.direction() == Direction::Outbound && from_b.direction() == Direction::Outbound {
            let a_wins = a.node_id() < b.node_id();
            let expected = if a_wins {
                Direction::Outbound
            } else {
                Direction::Inbound
            };
            assert_eq!(on_a.direction(), expected);
        }
        assert_eq!(on_a.request("echo/1", "x").await.unwrap(), "x");
        assert_eq!(on_b.request("echo/1", "y").await.unwrap(), "y");
        // The loser, if a caller got it, is closed rather than left dangling.
        for (connection, pooled) in [(&from_a, &on_a), (&from_b, &on_b)] {
            if connection.id() != pooled.id() {
                tokio::time::timeout(WAIT, connection.closed())
                    .await
                    .unwrap();
            }
        }
        a.close("done").await;
        b.close("done").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_and_the_connection_keeps_serving() {
    let mut small = TransportConfig::default();
    small.max_frame_len = 1024;
    let server = echo(small);
    let client = bind(TransportConfig::default());
    let connection = client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();

    // The peer's limit is smaller than ours: it resets the stream.
    let error = connection
        .request("echo/1", vec![7u8; 4096])
        .await
        .unwrap_err();
    assert!(
        matches!(error, RequestError::Rejected(StreamCode::FrameTooLarge)),
        "{error:?}"
    );
    // Our own limit is checked before anything is sent.
    let error = connection
        .request("echo/1", vec![0u8; dawn_wire::MAX_FRAME_LEN + 1])
        .await
        .unwrap_err();
    assert!(matches!(error, RequestError::TooLarge { .. }), "{error:?}");
    // A response larger than the requester accepts is an error too, not a crash.
    let mut tiny = TransportConfig::default();
    tiny.max_frame_len = 16;
    let tiny_client = bind(tiny);
    let tiny_connection = tiny_client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();
    server
        .register_request_handler("big/1", |_, _| async { Ok(Bytes::from(vec![1u8; 100])) })
        .unwrap();
    let error = tiny_connection.request("big/1", "x").await.unwrap_err();
    assert!(
        matches!(error, RequestError::ResponseTooLarge { max: 16 }),
        "{error:?}"
    );

    // Same connection, still healthy.
    assert!(!connection.is_closed());
    assert_eq!(connection.request("echo/1", "ok").await.unwrap(), "ok");
    assert_eq!(
        client.connect(server.node_id(), &[]).await.unwrap().id(),
        connection.id()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_make_a_node_buffer_more_than_a_few_frames() {
    // With 1 KiB frames a connection may hold 8 KiB of request bodies awaiting an answer:
    // the ninth full-size request waits (flow control holds the sender) until one finishes.
    let mut config = TransportConfig::default();
    config.max_frame_len = 1024;
    let server = bind(config);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    {
        let (running, peak, gate) = (Arc::clone(&running), Arc::clone(&peak), Arc::clone(&gate));
        server
            .register_request_handler("hold/1", move |_, body| {
                let (running, peak, gate) =
                    (Arc::clone(&running), Arc::clone(&peak), Arc::clone(&gate));
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    let _permit = gate.acquire().await.unwrap();
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(body)
                }
            })
            .unwrap();
    }
    let client = bind(TransportConfig::default());
    let connection = client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();
    let mut requests = JoinSet::new();
    for _ in 0..20 {
        let connection = connection.clone();
        requests.spawn(async move { connection.request("hold/1", vec![1u8; 1024]).await });
    }
    // Let every request reach the server, then release the handlers one at a time.
    tokio::time::timeout(WAIT, async {
        while running.load(Ordering::SeqCst) < 8 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(running.load(Ordering::SeqCst), 8);
    gate.add_permits(20);
    while let Some(result) = requests.join_next().await {
        assert_eq!(result.unwrap().unwrap().len(), 1024);
    }
    assert_eq!(peak.load(Ordering::SeqCst), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_unknown_protocols_and_deadlines_are_typed() {
    let server = echo(TransportConfig::default());
    server
        .register_request_handler("fail/1", |_, _| async {
            Err(HandlerError::new("no such agent"))
        })
        .unwrap();
    server
        .register_request_handler("slow/1", |_, body| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(body)
        })
        .unwrap();
    assert_eq!(
        server.register_request_handler("echo/1", |_, body| async move { Ok(body) }),
        Err(RegisterError::Duplicate("echo/1".into()))
    );
    assert!(matches!(
        server.register_request_handler("bad name", |_, body| async move { Ok(body) }),
        Err(RegisterError::Protocol(_))
    ));

    let client = bind(TransportConfig::default());
    let connection = client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();
    let error = connection.request("fail/1", "x").await.unwrap_err();
    assert!(
        matches!(&error, RequestError::Handler(message) if message == "no such agent"),
        "{error:?}"
    );
    let error = connection.request("nobody/1", "x").await.unwrap_err();
    assert!(
        matches!(error, RequestError::Rejected(StreamCode::UnknownProtocol)),
        "{error:?}"
    );
    let error = connection
        .request_with_timeout("slow/1", "x", Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(error, RequestError::Timeout(_)), "{error:?}");
    let error = connection.request("", "x").await.unwrap_err();
    assert!(matches!(error, RequestError::Protocol(_)), "{error:?}");
    // An empty request and an empty response are fine.
    assert_eq!(
        connection.request("echo/1", Bytes::new()).await.unwrap(),
        ""
    );

    assert!(server.remove_request_handler("fail/1"));
    let error = connection.request("fail/1", "x").await.unwrap_err();
    assert!(matches!(
        error,
        RequestError::Rejected(StreamCode::UnknownProtocol)
    ));
    assert_eq!(
        connection.request("echo/1", "still").await.unwrap(),
        "still"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_streams_reach_their_handler() {
    let server = bind(TransportConfig::default());
    server
        .register_stream_handler("frames/1", |stream: IncomingStream| async move {
            let peer = stream.peer();
            assert_eq!(stream.protocol(), "frames/1");
            let (mut send, mut recv) = stream.into_parts();
            let mut count = 0u32;
            while let Ok(Some(frame)) = read_frame(&mut recv, 1024).await {
                count += 1;
                let mut reply = frame.to_vec();
                reply.extend_from_slice(peer.fmt_short().as_bytes());
                if write_frame(&mut send, &reply, 1024).await.is_err() {
                    return;
                }
            }
            let _ = write_frame(&mut send, &count.to_be_bytes(), 1024).await;
            let _ = send.finish();
        })
        .unwrap();
    let client = bind(TransportConfig::default());
    let connection = client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();

    let (mut send, mut recv) = connection.open_stream("frames/1").await.unwrap();
    for word in ["one", "two", "three"] {
        write_frame(&mut send, word.as_bytes(), 1024).await.unwrap();
        let reply = read_frame(&mut recv, 1024).await.unwrap().unwrap();
        assert_eq!(reply, format!("{word}{}", client.node_id().fmt_short()));
    }
    send.finish().unwrap();
    let count = read_frame(&mut recv, 1024).await.unwrap().unwrap();
    assert_eq!(count[..], 3u32.to_be_bytes());
    assert!(read_frame(&mut recv, 1024).await.unwrap().is_none());

    // No handler for this protocol: the peer resets the stream.
    let (mut send, mut recv) = connection.open_stream("nobody/1").await.unwrap();
    let _ = write_frame(&mut send, b"hello?", 1024).await;
    let error = read_frame(&mut recv, 1024).await.unwrap_err();
    match error {
        FrameIoError::Read(ReadError::Reset(code)) => {
            assert_eq!(
                StreamCode::from_u64(code.into_inner()),
                StreamCode::UnknownProtocol
            );
        }
        other => panic!("expected a reset, got {other:?}"),
    }
    assert!(!connection.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_are_enforced() {
    let mut config = TransportConfig::default();
    config.max_connections_per_ip = 1;
    let server = echo(config);
    let first = bind(TransportConfig::default());
    let second = bind(TransportConfig::default());

    let mut limit_events = server.subscribe();
    let connection = first
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();
    let error = second
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ConnectError::ConnectionRefused),
        "{error:?}"
    );
    wait_for(&mut limit_events, |event| match event {
        TransportEvent::InboundFailed {
            error: AcceptError::ConnectionLimit,
            ..
        } => Some(()),
        _ => None,
    })
    .await;

    // Once the first connection is gone, the address has room again.
    let mut server_events = server.subscribe();
    connection.close("making room");
    wait_for(&mut server_events, |event| {
        matches!(event, TransportEvent::Disconnected { .. }).then_some(())
    })
    .await;
    let mut connected = None;
    for _ in 0..50 {
        match second.connect(server.node_id(), &addr(&server)).await {
            Ok(connection) => {
                connected = Some(connection);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(connected.is_some(), "the slot was not released");

    // The total limit applies to dials too.
    let mut config = TransportConfig::default();
    config.max_connections = 1;
    let client = bind(config);
    let other = echo(TransportConfig::default());
    let other2 = echo(TransportConfig::default());
    client
        .connect(other.node_id(), &addr(&other))
        .await
        .unwrap();
    let error = client
        .connect(other2.node_id(), &addr(&other2))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ConnectError::ConnectionLimit { max: 1 }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_time_out_and_the_pool_redials() {
    let mut config = TransportConfig::default();
    config.idle_timeout = Duration::from_millis(300);
    config.keep_alive_interval = None;
    let server = echo(config.clone());
    let client = bind(config);
    let mut events = client.subscribe();

    let first = client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();
    let reason = wait_for(&mut events, |event| match event {
        TransportEvent::Disconnected {
            peer,
            connection_id,
            reason,
        } => {
            assert_eq!(peer, server.node_id());
            assert_eq!(connection_id, first.id());
            Some(reason)
        }
        _ => None,
    })
    .await;
    assert_eq!(reason, ConnectionError::TimedOut);
    assert!(first.is_closed());
    assert!(client.connection(&server.node_id()).is_none());

    let second = client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();
    assert_ne!(second.id(), first.id());
    assert_eq!(second.request("echo/1", "again").await.unwrap(), "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnecting_a_peer_reports_it_to_subscribers() {
    let server = echo(TransportConfig::default());
    let client = bind(TransportConfig::default());
    let connection = client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();
    let mut events = client.subscribe();
    assert!(client.disconnect(&server.node_id(), "refused by policy"));
    let (peer, id, reason) = wait_for(&mut events, |event| match event {
        TransportEvent::Disconnected {
            peer,
            connection_id,
            reason,
        } => Some((peer, connection_id, reason)),
        _ => None,
    })
    .await;
    assert_eq!((peer, id), (server.node_id(), connection.id()));
    assert_eq!(reason, ConnectionError::LocallyClosed);
    assert!(client.connection(&server.node_id()).is_none());
    // Only once: nothing is pooled any more.
    assert!(!client.disconnect(&server.node_id(), "again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_holds_an_idle_connection_open() {
    let mut config = TransportConfig::default();
    config.idle_timeout = Duration::from_millis(1000);
    config.keep_alive_interval = Some(Duration::from_millis(200));
    let server = echo(config.clone());
    let client = bind(config);
    let connection = client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();
    // Three idle timeouts without a single request.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(!connection.is_closed());
    assert_eq!(
        client.connect(server.node_id(), &[]).await.unwrap().id(),
        connection.id()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_close_tells_the_peers() {
    let server = echo(TransportConfig::default());
    let client = bind(TransportConfig::default());
    let connection = client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&handled);
    server
        .register_request_handler("count/1", move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(Bytes::new()) }
        })
        .unwrap();
    connection.request("count/1", "").await.unwrap();
    assert_eq!(handled.load(Ordering::SeqCst), 1);

    tokio::time::timeout(WAIT, server.close("maintenance"))
        .await
        .expect("close finishes");
    match tokio::time::timeout(WAIT, connection.closed())
        .await
        .unwrap()
    {
        ConnectionError::ApplicationClosed(close) => {
            assert_eq!(
                CloseCode::from_u64(close.error_code.into_inner()),
                CloseCode::Shutdown
            );
            assert_eq!(&close.reason[..], b"maintenance");
        }
        other => panic!("expected an application close, got {other:?}"),
    }
    assert!(server.connections().is_empty());
    let error = server
        .connect(client.node_id(), &addr(&client))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectError::Closed), "{error:?}");
    // Nobody gets in any more.
    let mut quick = TransportConfig::default();
    quick.handshake_timeout = Duration::from_millis(500);
    let late = bind(quick);
    assert!(
        late.connect(server.node_id(), &addr(&server))
            .await
            .is_err()
    );
    client.close("bye").await;
}

/// Settings under which a handshake to a peer that never finishes it would run for a minute.
fn patient() -> TransportConfig {
    let mut config = TransportConfig::default();
    config.handshake_timeout = Duration::from_secs(60);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_cancels_dials_and_handshakes_and_is_prompt() {
    let node = echo(patient());
    let mut events = node.subscribe();

    // A peer that vanished after connecting: nothing gets through any more, either way.
    let gone = echo(TransportConfig::default());
    let gone_relay = Relay::start(gone.local_addr().unwrap(), usize::MAX, usize::MAX).await;
    let vanished = node
        .connect(gone.node_id(), &[gone_relay.addr])
        .await
        .unwrap();
    vanished
        .request("echo/1", Bytes::from_static(b"hi"))
        .await
        .unwrap();
    gone_relay.cut();

    // A dial to an address where a socket is bound but nothing ever answers, and one to a peer
    // that vanishes mid-handshake: it gets our first packet and we get its first answer.
    let silent = std::net::UdpSocket::bind(loopback()).unwrap();
    let half = echo(TransportConfig::default());
    let half_relay = Relay::start(half.local_addr().unwrap(), 1, 1).await;
    let mut dials = JoinSet::new();
    for (peer, addr) in [
        (nobody(), silent.local_addr().unwrap()),
        (half.node_id(), half_relay.addr),
    ] {
        let node = node.clone();
        dials.spawn(async move { (node.connect(peer, &[addr]).await, Instant::now()) });
    }
    // A peer that vanishes mid-handshake while dialing us: only its first packet arrives.
    let dialer = bind(patient());
    let inbound_relay = Relay::start(node.local_addr().unwrap(), 1, 0).await;
    let inbound = tokio::spawn({
        let (dialer, id, addr) = (dialer.clone(), node.node_id(), inbound_relay.addr);
        async move { dialer.connect(id, &[addr]).await }
    });
    eventually("all three handshakes under way", || {
        node.dials_in_flight() == 2
            && half_relay.heard_from_upstream() > 0
            && inbound_relay.heard_from_upstream() > 0
    })
    .await;

    let started = Instant::now();
    node.close("bye").await;
    let took = started.elapsed();
    // Waiting for the handshakes would take a minute, and quinn's drain of the silent dial
    // alone about 3 s; close is bounded by `close_timeout` (500 ms).
    assert!(took < Duration::from_secs(1), "close took {took:?}");
    assert_eq!(node.dials_in_flight(), 0, "no dial outlives close");
    while let Some(joined) = dials.join_next().await {
        let (result, ended) = joined.unwrap();
        assert!(matches!(result, Err(ConnectError::Closed)), "{result:?}");
        let after = ended.saturating_duration_since(started);
        assert!(
            after < Duration::from_secs(1),
            "the caller waited {after:?}"
        );
    }
    let error = wait_for(&mut events, |event| match event {
        TransportEvent::InboundFailed { remote, error } if remote == inbound_relay.addr => {
            Some(error)
        }
        _ => None,
    })
    .await;
    assert!(matches!(error, AcceptError::Closed), "{error:?}");
    assert!(matches!(
        tokio::time::timeout(WAIT, vanished.closed()).await.unwrap(),
        ConnectionError::LocallyClosed
    ));
    inbound.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_nobody_waits_for_is_cancelled() {
    let node = bind(patient());
    let silent = std::net::UdpSocket::bind(loopback()).unwrap();
    let dead = vec![silent.local_addr().unwrap()];
    let peer = nobody();

    // The only caller gives up: the dial ends with it, not a minute later.
    let gave_up = tokio::time::timeout(Duration::from_millis(200), node.connect(peer, &dead)).await;
    assert!(gave_up.is_err(), "nothing answers");
    eventually("the abandoned dial to end", || node.dials_in_flight() == 0).await;

    // Two callers share one dial, which lasts as long as either of them waits.
    let first = tokio::spawn({
        let (node, dead) = (node.clone(), dead.clone());
        async move { node.connect(peer, &dead).await }
    });
    let second = tokio::spawn({
        let (node, dead) = (node.clone(), dead.clone());
        async move { node.connect(peer, &dead).await }
    });
    eventually("the shared dial", || node.dials_in_flight() == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.abort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(node.dials_in_flight(), 1, "the second caller still waits");
    assert!(!second.is_finished());
    second.abort();
    eventually("the dial to end with its last caller", || {
        node.dials_in_flight() == 0
    })
    .await;

    // Nothing stale is left: a new dial to that peer starts afresh, others work.
    let retry = tokio::time::timeout(Duration::from_millis(100), node.connect(peer, &dead)).await;
    assert!(retry.is_err(), "nothing answers");
    let server = echo(TransportConfig::default());
    node.connect(server.node_id(), &addr(&server))
        .await
        .unwrap();
    eventually("every dial to end", || node.dials_in_flight() == 0).await;

    let started = Instant::now();
    node.close("bye").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "close took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_is_idempotent_and_safe_to_call_concurrently() {
    let server = echo(TransportConfig::default());
    let client = bind(TransportConfig::default());
    let connection = client
        .connect(server.node_id(), &addr(&server))
        .await
        .unwrap();

    let mut closes = JoinSet::new();
    for reason in ["first", "second", "third"] {
        let server = server.clone();
        closes.spawn(async move { server.close(reason).await });
    }
    tokio::time::timeout(WAIT, closes.join_all())
        .await
        .expect("every close returns");
    match tokio::time::timeout(WAIT, connection.closed())
        .await
        .unwrap()
    {
        ConnectionError::ApplicationClosed(close) => {
            assert_eq!(
                CloseCode::from_u64(close.error_code.into_inner()),
                CloseCode::Shutdown
            );
            assert!(
                [&b"first"[..], b"second", b"third"].contains(&&close.reason[..]),
                "one call's reason: {:?}",
                close.reason
            );
        }
        other => panic!("expected an application close, got {other:?}"),
    }
    // Once more, after the fact: nothing left to do.
    tokio::time::timeout(WAIT, server.close("again"))
        .await
        .expect("a repeated close returns");
    assert!(server.connections().is_empty());
    assert!(matches!(
        server.connect(client.node_id(), &addr(&client)).await,
        Err(ConnectError::Closed)
    ));
    client.close("bye").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_dial_arguments_are_typed_errors() {
    let node = bind(TransportConfig::default());
    let other: NodeId = SigningKey::generate().unwrap().verifying_key().into();
    assert!(matches!(
        node.connect(node.node_id(), &addr(&node)).await,
        Err(ConnectError::SelfDial)
    ));
    assert!(matches!(
        node.connect(other, &[]).await,
        Err(ConnectError::NoAddresses)
    ));
    // Two dead addresses: both are tried and both failures reported.
    let mut quick = TransportConfig::default();
    quick.handshake_timeout = Duration::from_millis(300);
    let client = bind(quick);
    let dead: Vec<SocketAddr> = vec![
        "127.0.0.1:9".parse().unwrap(),
        "127.0.0.1:10".parse().unwrap(),
    ];
    match client.connect(other, &dead).await {
        Err(ConnectError::AllFailed(failures)) => {
            assert_eq!(failures.len(), 2);
            assert_eq!(failures[0].0, dead[0]);
        }
        other => panic!("expected AllFailed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_timeout_of_duration_max_means_never() {
    let mut never = TransportConfig::default();
    never.handshake_timeout = Duration::MAX;
    let server = echo(never.clone());
    let client = bind(never);
    let connection = tokio::time::timeout(WAIT, client.connect(server.node_id(), &addr(&server)))
        .await
        .expect("the dial finishes")
        .unwrap();
    let reply = connection
        .request("echo/1", Bytes::from_static(b"still here"))
        .await
        .unwrap();
    assert_eq!(reply, "still here");
    client.close("done").await;
    server.close("done").await;
}

#[test]
fn bind_needs_a_runtime_and_a_valid_config() {
    let error = Transport::bind(
        SigningKey::generate().unwrap(),
        loopback(),
        TransportConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(error, BindError::NoRuntime), "{error:?}");
    let mut config = TransportConfig::default();
    config.max_frame_len = 0;
    let error = Transport::bind(SigningKey::generate().unwrap(), loopback(), config).unwrap_err();
    assert!(matches!(error, BindError::Config(_)), "{error:?}");
}
