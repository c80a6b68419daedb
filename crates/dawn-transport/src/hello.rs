//! The `Hello` exchange that follows the TLS handshake on every connection.
//!
//! The dialer opens the first bidirectional stream, sends its [`Hello`] and finishes; the
//! acceptor answers with its own on the same stream, *even when the versions do not match*, so
//! the dialer learns both ranges and gets a precise error. Both sides then [`negotiate`]. On
//! an incompatible pair the dialer closes the connection with [`CloseCode::Incompatible`] and
//! the reason; the acceptor waits briefly for that close and then closes itself.

use std::time::Duration;

use dawn_identity::NodeId;
use dawn_wire::{Hello, HelloError, Message, encode_frame, negotiate};
use quinn::{ConnectionError, ReadError, ReadExactError, RecvStream, WriteError};

use crate::codes::CloseCode;
use crate::frame::{FrameIoError, HeaderError, StreamKind, encode_header, read_frame, read_header};

/// Longest encoded `Hello` accepted: a hello is about 110 bytes.
const MAX_HELLO_LEN: usize = 512;

/// How long an acceptor waits for an incompatible dialer to close before closing itself.
const INCOMPATIBLE_GRACE: Duration = Duration::from_secs(2);

/// What went wrong in a `Hello` exchange (mapped onto `ConnectError` / `AcceptError`).
#[derive(Debug)]
pub(crate) enum HelloFailure {
    /// No common protocol version; the connection is closed with
    /// [`CloseCode::Incompatible`].
    Incompatible(HelloError),
    /// The peer sent something that is not a valid `Hello` exchange; the connection is closed
    /// with [`CloseCode::ProtocolViolation`].
    Violation(String),
    /// The peer closed the connection with an application code.
    ClosedByPeer { code: CloseCode, reason: String },
    /// The connection failed for another reason.
    Connection(ConnectionError),
}

impl From<ConnectionError> for HelloFailure {
    fn from(error: ConnectionError) -> Self {
        match error {
            ConnectionError::ApplicationClosed(close) => Self::ClosedByPeer {
                code: CloseCode::from_u64(close.error_code.into_inner()),
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            other => Self::Connection(other),
        }
    }
}

impl From<WriteError> for HelloFailure {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::ConnectionLost(error) => error.into(),
            other => Self::Violation(format!("hello stream write failed: {other}")),
        }
    }
}

impl From<ReadError> for HelloFailure {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::ConnectionLost(error) => error.into(),
            other => Self::Violation(format!("hello stream read failed: {other}")),
        }
    }
}

impl From<ReadExactError> for HelloFailure {
    fn from(error: ReadExactError) -> Self {
        match error {
            ReadExactError::ReadError(error) => error.into(),
            ReadExactError::FinishedEarly(_) => Self::Violation("hello stream ended early".into()),
        }
    }
}

impl From<FrameIoError> for HelloFailure {
    fn from(error: FrameIoError) -> Self {
        match error {
            FrameIoError::Read(error) => error.into(),
            FrameIoError::Write(error) => error.into(),
            other => Self::Violation(format!("bad hello frame: {other}")),
        }
    }
}

impl From<HeaderError> for HelloFailure {
    fn from(error: HeaderError) -> Self {
        match error {
            HeaderError::Read(error) => error.into(),
            HeaderError::Malformed => Self::Violation("malformed hello stream header".into()),
        }
    }
}

/// Closes `connection` for a protocol violation and returns the failure.
fn violation(connection: &quinn::Connection, reason: String) -> HelloFailure {
    connection.close(CloseCode::ProtocolViolation.varint(), reason.as_bytes());
    HelloFailure::Violation(reason)
}

/// Encodes the hello stream's opening: header frame and one frame with our `Hello`.
fn encode_hello(local: &Hello, with_header: bool) -> Result<Vec<u8>, HelloFailure> {
    let message = Message::Hello(local.clone())
        .encode()
        .map_err(|e| HelloFailure::Violation(format!("cannot encode our hello: {e}")))?;
    let mut out = Vec::with_capacity(message.len() + 16);
    if with_header {
        encode_header(StreamKind::Hello, "", &mut out);
    }
    encode_frame(&message, MAX_HELLO_LEN, &mut out)
        .map_err(|e| HelloFailure::Violation(format!("cannot frame our hello: {e}")))?;
    Ok(out)
}

/// Reads the peer's `Hello` frame and checks that it names the authenticated node.
async fn read_hello(
    connection: &quinn::Connection,
    recv: &mut RecvStream,
    authenticated: NodeId,
) -> Result<Hello, HelloFailure> {
    let Some(frame) = read_frame(recv, MAX_HELLO_LEN).await? else {
        return Err(violation(
            connection,
            "hello stream ended without a hello".into(),
        ));
    };
    let hello = match Message::decode(&frame) {
        Ok(Message::Hello(hello)) => hello,
        Ok(other) => {
            let reason = format!(
                "expected a hello, got message type {:#06x}",
                other.type_number()
            );
            return Err(violation(connection, reason));
        }
        Err(error) => return Err(violation(connection, format!("invalid hello: {error}"))),
    };
    if hello.node_id != authenticated {
        let reason = format!(
            "hello names {} but the TLS key is {}",
            hello.node_id.fmt_short(),
            authenticated.fmt_short()
        );
        return Err(violation(connection, reason));
    }
    Ok(hello)
}

/// The dialer's half: send our hello, read theirs, negotiate. Returns the peer's hello and the
/// protocol version.
pub(crate) async fn dial(
    connection: &quinn::Connection,
    local: &Hello,
    peer: NodeId,
) -> Result<(Hello, u16), HelloFailure> {
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(&encode_hello(local, true)?).await?;
    // The stream may already be reset by an impatient peer; its reply still tells us why.
    let _ = send.finish();
    let remote = read_hello(connection, &mut recv, peer).await?;
    match negotiate(local, &remote) {
        Ok(version) => Ok((remote, version)),
        Err(error) => {
            connection.close(
                CloseCode::Incompatible.varint(),
                error.to_string().as_bytes(),
            );
            Err(HelloFailure::Incompatible(error))
        }
    }
}

/// The acceptor's half: read the dialer's hello from the first stream, answer with ours,
/// negotiate.
pub(crate) async fn accept(
    connection: &quinn::Connection,
    local: &Hello,
    peer: NodeId,
) -> Result<(Hello, u16), HelloFailure> {
    let (mut send, mut recv) = connection.accept_bi().await?;
    let (kind, _) = read_header(&mut recv).await?;
    if kind != StreamKind::Hello {
        return Err(violation(
            connection,
            "the first stream must carry the hello".into(),
        ));
    }
    let remote = read_hello(connection, &mut recv, peer).await?;
    send.write_all(&encode_hello(local, false)?).await?;
    let _ = send.finish();
    match negotiate(local, &remote) {
        Ok(version) => Ok((remote, version)),
        Err(error) => {
            // Give the dialer the chance to read our hello and close with its own reason.
            let _ = tokio::time::timeout(INCOMPATIBLE_GRACE, connection.closed()).await;
            connection.close(
                CloseCode::Incompatible.varint(),
                error.to_string().as_bytes(),
            );
            Err(HelloFailure::Incompatible(error))
        }
    }
}
