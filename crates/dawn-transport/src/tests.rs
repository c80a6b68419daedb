//! Tests that need to misbehave below the public API: garbage on streams, hand-made hellos,
//! other protocol versions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_wire::{Capabilities, Hello, HelloError, Message, encode_frame};
use quinn::{ConnectionError, ReadError, ReadToEndError};
use tokio::sync::broadcast;

use crate::frame::{StreamKind, encode_header};
use crate::{
    AcceptError, CloseCode, ConnectError, StreamCode, Transport, TransportConfig, TransportEvent,
    quic_client_config,
};

const WAIT: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn echo(config: TransportConfig) -> Transport {
    let node = Transport::bind(SigningKey::generate().unwrap(), loopback(), config).unwrap();
    node.register_request_handler("echo/1", |_, body: Bytes| async move { Ok(body) })
        .unwrap();
    node
}

async fn inbound_failure(events: &mut broadcast::Receiver<TransportEvent>) -> AcceptError {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(TransportEvent::InboundFailed { error, .. }) = events.recv().await {
                return error;
            }
        }
    })
    .await
    .expect("an inbound failure")
}

/// Sends `bytes` on a fresh stream, finishes it, and returns how the server answered.
async fn send_raw(connection: &quinn::Connection, bytes: &[u8]) -> Result<Vec<u8>, ReadToEndError> {
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    // The server may already have stopped the stream; the answer says why.
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    recv.read_to_end(1 << 16).await
}

fn reset_code(result: Result<Vec<u8>, ReadToEndError>) -> StreamCode {
    match result {
        Err(ReadToEndError::Read(ReadError::Reset(code))) => {
            StreamCode::from_u64(code.into_inner())
        }
        other => panic!("expected a stream reset, got {other:?}"),
    }
}

fn request_header(protocol: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_header(StreamKind::Request, protocol, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_frames_reset_only_their_stream() {
    let config = TransportConfig {
        stream_header_timeout: Duration::from_millis(200),
        max_frame_len: 4096,
        ..TransportConfig::default()
    };
    let server = echo(config);
    let client = echo(TransportConfig::default());
    let connection = client
        .connect(server.node_id(), &[server.local_addr().unwrap()])
        .await
        .unwrap();
    let quic = connection.quic().clone();

    // Unknown stream kind.
    assert_eq!(
        reset_code(send_raw(&quic, &[0, 0, 0, 2, 9, b'x']).await),
        StreamCode::Malformed
    );
    // A header frame far longer than any header.
    assert_eq!(
        reset_code(send_raw(&quic, &[0, 0, 1, 0, 1]).await),
        StreamCode::Malformed
    );
    // A header cut short by the end of the stream.
    assert_eq!(
        reset_code(send_raw(&quic, &[0, 0, 0, 5, 1]).await),
        StreamCode::Malformed
    );
    // A protocol name with a space in it.
    assert_eq!(
        reset_code(send_raw(&quic, &[0, 0, 0, 4, 1, b'a', b' ', b'b']).await),
        StreamCode::Malformed
    );
    // A second hello.
    let mut hello = Vec::new();
    encode_header(StreamKind::Hello, "", &mut hello);
    assert_eq!(
        reset_code(send_raw(&quic, &hello).await),
        StreamCode::Malformed
    );

    // A request frame declaring 2 MiB against a 4 KiB limit: refused from the header alone.
    let mut oversized = request_header("echo/1");
    oversized.extend_from_slice(&(2u32 << 20).to_be_bytes());
    assert_eq!(
        reset_code(send_raw(&quic, &oversized).await),
        StreamCode::FrameTooLarge
    );
    // Declared 10 bytes, sent 3.
    let mut short = request_header("echo/1");
    short.extend_from_slice(&[0, 0, 0, 10, 1, 2, 3]);
    assert_eq!(
        reset_code(send_raw(&quic, &short).await),
        StreamCode::Malformed
    );
    // Declared 3 bytes, sent 10.
    let mut long = request_header("echo/1");
    long.extend_from_slice(&[0, 0, 0, 3]);
    long.extend_from_slice(&[7; 10]);
    assert_eq!(
        reset_code(send_raw(&quic, &long).await),
        StreamCode::Malformed
    );
    // Frame header cut short.
    let mut cut = request_header("echo/1");
    cut.extend_from_slice(&[0, 0]);
    assert_eq!(
        reset_code(send_raw(&quic, &cut).await),
        StreamCode::Malformed
    );

    // A stream that never sends its header is reset after the header timeout.
    let (mut send, mut recv) = quic.open_bi().await.unwrap();
    send.write_all(&[0]).await.unwrap();
    let silent = tokio::time::timeout(WAIT, recv.read_to_end(16))
        .await
        .unwrap();
    assert_eq!(reset_code(silent), StreamCode::Timeout);

    // Deterministic noise of many lengths.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for len in 0..64usize {
        let noise: Vec<u8> = (0..len * 7)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        // Whatever the server makes of it, it answers without closing the connection.
        let _ = send_raw(&quic, &noise).await;
    }

    // The same connection still serves a valid request, and the node is fine.
    assert!(connection.close_reason().is_none());
    assert_eq!(
        connection.request("echo/1", "alive").await.unwrap(),
        "alive"
    );
    assert_eq!(server.connections().len(), 1);
    let other = echo(TransportConfig::default());
    other
        .connect(server.node_id(), &[server.local_addr().unwrap()])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_mismatch_is_a_typed_error_and_a_clean_close() {
    let server = echo(TransportConfig::default());
    let mut server_events = server.subscribe();
    let future = TransportConfig {
        versions: (2, 3),
        ..TransportConfig::default()
    };
    let client = echo(future);

    let error = client
        .connect(server.node_id(), &[server.local_addr().unwrap()])
        .await
        .unwrap_err();
    let refused_at = tokio::time::Instant::now();
    assert!(
        matches!(
            error,
            ConnectError::Incompatible(HelloError::NoCommonVersion {
                local_min: 2,
                local_max: 3,
                remote_min: 1,
                remote_max: 1,
            })
        ),
        "{error:?}"
    );
    let failure = inbound_failure(&mut server_events).await;
    assert!(
        matches!(
            failure,
            AcceptError::Incompatible(HelloError::NoCommonVersion {
                local_min: 1,
                local_max: 1,
                remote_min: 2,
                remote_max: 3,
            })
        ),
        "{failure:?}"
    );
    // The server did not sit out its 2 s grace period: the dialer's close reached it.
    assert!(refused_at.elapsed() < Duration::from_millis(1500));
    assert!(server.connections().is_empty());
    assert!(client.connections().is_empty());
}

/// A bare quinn client speaking Dawn's TLS, for hand-made hellos.
async fn raw_client(key: &SigningKey, server: &Transport) -> (quinn::Endpoint, quinn::Connection) {
    let crypto = quic_client_config(key, server.node_id()).unwrap();
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connection = endpoint
        .connect(server.local_addr().unwrap(), "dawn")
        .unwrap()
        .await
        .unwrap();
    (endpoint, connection)
}

async fn send_hello(
    connection: &quinn::Connection,
    hello: &Hello,
) -> Result<Vec<u8>, ReadToEndError> {
    let mut bytes = Vec::new();
    encode_header(StreamKind::Hello, "", &mut bytes);
    encode_frame(
        &Message::Hello(hello.clone()).encode().unwrap(),
        512,
        &mut bytes,
    )
    .unwrap();
    send_raw(connection, &bytes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acceptor_closes_an_incompatible_dialer_that_lingers() {
    let server = echo(TransportConfig::default());
    let key = SigningKey::generate().unwrap();
    let (_endpoint, connection) = raw_client(&key, &server).await;
    let mut hello = Hello::new(key.verifying_key().into(), Capabilities::EMPTY);
    hello.min_version = 5;
    hello.max_version = 6;
    // The server answers with its own hello, so the dialer can tell what went wrong...
    let reply = send_hello(&connection, &hello).await.unwrap();
    let reply = Message::decode(&reply[4..]).unwrap();
    assert!(matches!(reply, Message::Hello(ref theirs) if theirs.node_id == server.node_id()));
    // ...and closes the connection itself when the dialer does not.
    match tokio::time::timeout(WAIT, connection.closed())
        .await
        .unwrap()
    {
        ConnectionError::ApplicationClosed(close) => {
            assert_eq!(
                CloseCode::from_u64(close.error_code.into_inner()),
                CloseCode::Incompatible
            );
            let reason = String::from_utf8_lossy(&close.reason);
            assert!(reason.contains("no common protocol version"), "{reason}");
        }
        other => panic!("expected an application close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_naming_another_node_is_a_protocol_violation() {
    let server = echo(TransportConfig::default());
    let mut server_events = server.subscribe();
    let key = SigningKey::generate().unwrap();
    let (_endpoint, connection) = raw_client(&key, &server).await;
    let someone_else: NodeId = SigningKey::generate().unwrap().verifying_key().into();
    let hello = Hello::new(someone_else, Capabilities::EMPTY);
    let _ = send_hello(&connection, &hello).await;
    match tokio::time::timeout(WAIT, connection.closed())
        .await
        .unwrap()
    {
        ConnectionError::ApplicationClosed(close) => assert_eq!(
            CloseCode::from_u64(close.error_code.into_inner()),
            CloseCode::ProtocolViolation
        ),
        other => panic!("expected an application close, got {other:?}"),
    }
    let failure = inbound_failure(&mut server_events).await;
    assert!(
        matches!(failure, AcceptError::ProtocolViolation(_)),
        "{failure:?}"
    );
    assert!(server.connections().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_that_never_says_hello_times_out() {
    let config = TransportConfig {
        handshake_timeout: Duration::from_millis(300),
        ..TransportConfig::default()
    };
    let server = echo(config);
    let mut server_events = server.subscribe();
    let key = SigningKey::generate().unwrap();
    let (_endpoint, connection) = raw_client(&key, &server).await;
    match tokio::time::timeout(WAIT, connection.closed())
        .await
        .unwrap()
    {
        ConnectionError::ApplicationClosed(close) => assert_eq!(
            CloseCode::from_u64(close.error_code.into_inner()),
            CloseCode::Timeout
        ),
        other => panic!("expected an application close, got {other:?}"),
    }
    assert!(matches!(
        inbound_failure(&mut server_events).await,
        AcceptError::Timeout
    ));
}
