//! An authenticated connection to a peer: requests, raw streams, and serving what the peer
//! opens.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dawn_identity::NodeId;
use dawn_wire::{Capabilities, FRAME_HEADER_LEN, FrameError, Hello, decode_frame_header};
use quinn::{
    ConnectionError, ReadError, ReadExactError, ReadToEndError, RecvStream, SendStream, WriteError,
};
use tokio::sync::Semaphore;
use tracing::{Instrument, debug, debug_span, trace};

use crate::codes::{CloseCode, StreamCode};
use crate::frame::{
    HeaderError, ProtocolNameError, STATUS_HANDLER_ERROR, STATUS_OK, StreamKind, encode_header,
    push_frame_header, read_header, validate_protocol,
};
use crate::handler::{IncomingStream, RequestContext, Router};

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// This node dialed the peer.
    Outbound,
    /// The peer dialed this node.
    Inbound,
}

/// A request failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The protocol name is not acceptable.
    #[error(transparent)]
    Protocol(#[from] ProtocolNameError),
    /// The request body is larger than the frame limit; nothing was sent.
    #[error("request of {len} bytes exceeds the frame limit of {max}")]
    TooLarge {
        /// The body's length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// No response before the deadline; the stream was reset with [`StreamCode::Cancelled`].
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The peer reset or stopped the stream: unknown protocol, oversized or malformed frame,
    /// or its node is going away.
    #[error("the peer rejected the request: {0}")]
    Rejected(StreamCode),
    /// The peer's handler failed, with its message.
    #[error("the peer's handler failed: {0}")]
    Handler(String),
    /// The response was not a valid response frame.
    #[error("malformed response")]
    MalformedResponse,
    /// The response is larger than the frame limit.
    #[error("response exceeds the frame limit of {max} bytes")]
    ResponseTooLarge {
        /// The limit in force.
        max: usize,
    },
    /// The connection is gone (closed, timed out, reset).
    #[error("connection lost: {0}")]
    Connection(#[from] ConnectionError),
}

impl From<WriteError> for RequestError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Stopped(code) => Self::Rejected(StreamCode::from_u64(code.into_inner())),
            WriteError::ConnectionLost(error) => Self::Connection(error),
            // Neither can happen on a stream we just opened without 0-RTT.
            WriteError::ClosedStream | WriteError::ZeroRttRejected => {
                Self::Rejected(StreamCode::Cancelled)
            }
        }
    }
}

impl From<ReadError> for RequestError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Reset(code) => Self::Rejected(StreamCode::from_u64(code.into_inner())),
            ReadError::ConnectionLost(error) => Self::Connection(error),
            ReadError::ClosedStream
            | ReadError::IllegalOrderedRead
            | ReadError::ZeroRttRejected => Self::MalformedResponse,
        }
    }
}

/// A raw stream could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The protocol name is not acceptable.
    #[error(transparent)]
    Protocol(#[from] ProtocolNameError),
    /// The peer stopped the stream before its header was sent.
    #[error("the peer rejected the stream: {0}")]
    Rejected(StreamCode),
    /// The connection is gone.
    #[error("connection lost: {0}")]
    Connection(#[from] ConnectionError),
}

impl From<WriteError> for StreamError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Stopped(code) => Self::Rejected(StreamCode::from_u64(code.into_inner())),
            WriteError::ConnectionLost(error) => Self::Connection(error),
            WriteError::ClosedStream | WriteError::ZeroRttRejected => {
                Self::Rejected(StreamCode::Cancelled)
            }
        }
    }
}

struct Inner {
    id: u64,
    quic: quinn::Connection,
    local: NodeId,
    peer: NodeId,
    direction: Direction,
    version: u16,
    peer_hello: Hello,
    max_frame_len: usize,
    request_timeout: Duration,
    /// Bytes of inbound request bodies this connection may hold at once (read but not yet
    /// answered), so a peer cannot make us buffer a frame per stream.
    inbound_budget: Arc<Semaphore>,
}

/// How many maximum-size request bodies one connection may have buffered at once.
pub(crate) const INBOUND_BUDGET_FRAMES: usize = 8;

/// An authenticated, `Hello`-negotiated connection to one peer.
///
/// Cheap to clone; every clone is the same connection. The [`Transport`](crate::Transport)
/// pools one per peer and hands the same one to every caller; both sides may open requests and
/// streams on it.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.inner.peer)
            .field("remote", &self.remote_addr())
            .field("direction", &self.inner.direction)
            .field("version", &self.inner.version)
            .field("id", &self.id())
            .finish()
    }
}

/// What a [`Connection`] is made of once the handshake and `Hello` have succeeded.
pub(crate) struct Established {
    pub(crate) id: u64,
    pub(crate) quic: quinn::Connection,
    pub(crate) local: NodeId,
    pub(crate) peer: NodeId,
    pub(crate) direction: Direction,
    pub(crate) version: u16,
    pub(crate) peer_hello: Hello,
    pub(crate) max_frame_len: usize,
    pub(crate) request_timeout: Duration,
}

/// Resets a request stream if the request future is dropped before it finished (deadline or
/// caller gone), so the peer stops working on it.
struct CancelOnDrop {
    send: SendStream,
    recv: RecvStream,
    done: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.send.reset(StreamCode::Cancelled.varint());
            let _ = self.recv.stop(StreamCode::Cancelled.varint());
        }
    }
}

impl Connection {
    pub(crate) fn new(parts: Established) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: parts.id,
                quic: parts.quic,
                local: parts.local,
                peer: parts.peer,
                direction: parts.direction,
                version: parts.version,
                peer_hello: parts.peer_hello,
                max_frame_len: parts.max_frame_len,
                request_timeout: parts.request_timeout,
                inbound_budget: Arc::new(Semaphore::new(
                    parts.max_frame_len.saturating_mul(INBOUND_BUDGET_FRAMES),
                )),
            }),
        }
    }

    /// The authenticated peer.
    #[must_use]
    pub fn peer(&self) -> NodeId {
        self.inner.peer
    }

    /// The peer's current address.
    #[must_use]
    pub fn remote_addr(&self) -> SocketAddr {
        self.inner.quic.remote_address()
    }

    /// Which side dialed.
    #[must_use]
    pub fn direction(&self) -> Direction {
        self.inner.direction
    }

    /// The protocol version the two nodes negotiated.
    #[must_use]
    pub fn protocol_version(&self) -> u16 {
        self.inner.version
    }

    /// The capabilities the peer announced.
    #[must_use]
    pub fn peer_capabilities(&self) -> Capabilities {
        self.inner.peer_hello.capabilities
    }

    /// The peer's whole `Hello` (version range, capabilities, software name).
    #[must_use]
    pub fn peer_hello(&self) -> &Hello {
        &self.inner.peer_hello
    }

    /// This connection's number, unique for the lifetime of the [`Transport`](crate::Transport)
    /// (never reused), e.g. to match a [`TransportEvent::Disconnected`](crate::TransportEvent).
    #[must_use]
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Current round-trip time estimate.
    #[must_use]
    pub fn rtt(&self) -> Duration {
        self.inner.quic.rtt()
    }

    /// Why the connection closed, or `None` while it is open.
    #[must_use]
    pub fn close_reason(&self) -> Option<ConnectionError> {
        self.inner.quic.close_reason()
    }

    /// Whether the connection is closed.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.close_reason().is_some()
    }

    /// Waits until the connection closes and says why.
    pub async fn closed(&self) -> ConnectionError {
        self.inner.quic.closed().await
    }

    /// Closes the connection with [`CloseCode::Normal`] and `reason` (cut at 256 bytes).
    /// Streams in flight fail; the pool forgets the connection and the next
    /// [`Transport::connect`](crate::Transport::connect) dials again.
    pub fn close(&self, reason: &str) {
        self.close_with(CloseCode::Normal, reason);
    }

    pub(crate) fn close_with(&self, code: CloseCode, reason: &str) {
        let reason = reason.as_bytes();
        let reason = reason.get(..256).unwrap_or(reason);
        self.inner.quic.close(code.varint(), reason);
    }

    /// The node that dialed this connection.
    pub(crate) fn dialer(&self) -> NodeId {
        match self.inner.direction {
            Direction::Outbound => self.inner.local,
            Direction::Inbound => self.inner.peer,
        }
    }

    pub(crate) fn quic(&self) -> &quinn::Connection {
        &self.inner.quic
    }

    pub(crate) fn max_frame_len(&self) -> usize {
        self.inner.max_frame_len
    }

    /// Sends a request for `protocol` and waits for the response, within the transport's
    /// request timeout.
    ///
    /// The request runs on its own bidirectional stream, so any number may be in flight;
    /// streams beyond the peer's concurrency limit wait for a slot.
    ///
    /// # Errors
    /// [`RequestError`]: bad protocol name, oversized body, deadline, rejection or handler
    /// failure at the peer, malformed response, lost connection.
    pub async fn request(
        &self,
        protocol: &str,
        body: impl Into<Bytes>,
    ) -> Result<Bytes, RequestError> {
        self.request_with_timeout(protocol, body, self.inner.request_timeout)
            .await
    }

    /// [`Connection::request`] with an explicit deadline.
    ///
    /// # Errors
    /// As [`Connection::request`].
    pub async fn request_with_timeout(
        &self,
        protocol: &str,
        body: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, RequestError> {
        let body = body.into();
        validate_protocol(protocol)?;
        let max = self.inner.max_frame_len;
        let mut head = Vec::with_capacity(2 * FRAME_HEADER_LEN + 1 + protocol.len());
        encode_header(StreamKind::Request, protocol, &mut head);
        push_frame_header(body.len(), max, &mut head).map_err(|_| RequestError::TooLarge {
            len: body.len(),
            max,
        })?;
        match tokio::time::timeout(timeout, self.exchange(Bytes::from(head), body)).await {
            Ok(result) => result,
            Err(_) => Err(RequestError::Timeout(timeout)),
        }
    }

    async fn exchange(&self, head: Bytes, body: Bytes) -> Result<Bytes, RequestError> {
        let (send, recv) = self.inner.quic.open_bi().await?;
        let mut stream = CancelOnDrop {
            send,
            recv,
            done: false,
        };
        stream.send.write_all_chunks(&mut [head, body]).await?;
        // Finishing only fails if the stream is already closed, which the write would have
        // reported.
        let _ = stream.send.finish();
        let max = self.inner.max_frame_len;
        let limit = FRAME_HEADER_LEN + 1 + max;
        let response = match stream.recv.read_to_end(limit).await {
            Ok(response) => response,
            Err(ReadToEndError::TooLong) => return Err(RequestError::ResponseTooLarge { max }),
            Err(ReadToEndError::Read(error)) => return Err(error.into()),
        };
        stream.done = true;
        parse_response(response, max)
    }

    /// Opens a raw bidirectional stream for `protocol`; the peer hands it to the handler it
    /// registered with [`Transport::register_stream_handler`](crate::Transport::register_stream_handler).
    ///
    /// Only the header frame has been written when this returns. If the peer has no handler
    /// for the protocol it resets the stream with [`StreamCode::UnknownProtocol`], which shows
    /// on the next read or write. [`read_frame`](crate::read_frame) and
    /// [`write_frame`](crate::write_frame) speak Dawn framing on the stream, but the protocol
    /// may use any format.
    ///
    /// # Errors
    /// [`StreamError`]: bad protocol name, lost connection, stream stopped by the peer.
    pub async fn open_stream(
        &self,
        protocol: &str,
    ) -> Result<(SendStream, RecvStream), StreamError> {
        validate_protocol(protocol)?;
        let (mut send, recv) = self.inner.quic.open_bi().await?;
        let mut head = Vec::with_capacity(FRAME_HEADER_LEN + 1 + protocol.len());
        encode_header(StreamKind::Stream, protocol, &mut head);
        send.write_all(&head).await?;
        Ok((send, recv))
    }
}

/// Parses `[len][status][body]`.
fn parse_response(response: Vec<u8>, max: usize) -> Result<Bytes, RequestError> {
    let Some((&header, _)) = response.split_first_chunk::<FRAME_HEADER_LEN>() else {
        return Err(RequestError::MalformedResponse);
    };
    let len = match decode_frame_header(header, max.saturating_add(1)) {
        Ok(len) => len,
        Err(FrameError::TooLarge { .. }) => return Err(RequestError::ResponseTooLarge { max }),
        Err(_) => return Err(RequestError::MalformedResponse),
    };
    if len == 0 || len != response.len() - FRAME_HEADER_LEN {
        return Err(RequestError::MalformedResponse);
    }
    let status = response.get(FRAME_HEADER_LEN).copied();
    let body = Bytes::from(response).slice(FRAME_HEADER_LEN + 1..);
    match status {
        Some(STATUS_OK) => Ok(body),
        Some(STATUS_HANDLER_ERROR) => Err(RequestError::Handler(
            String::from_utf8_lossy(&body).into_owned(),
        )),
        _ => Err(RequestError::MalformedResponse),
    }
}

/// Refuses an inbound stream with `code` in both directions.
fn reject(send: &mut SendStream, recv: &mut RecvStream, code: StreamCode) {
    let _ = send.reset(code.varint());
    let _ = recv.stop(code.varint());
}

/// Serves one stream the peer opened: reads its header and dispatches it.
pub(crate) async fn serve_stream(
    connection: Connection,
    router: Arc<Router>,
    mut send: SendStream,
    mut recv: RecvStream,
    header_timeout: Duration,
) {
    let span =
        debug_span!("transport.stream", peer = %connection.peer().fmt_short(), id = %send.id());
    async move {
        let header = tokio::time::timeout(header_timeout, read_header(&mut recv)).await;
        let (kind, protocol) = match header {
            Ok(Ok(header)) => header,
            Ok(Err(HeaderError::Malformed)) => {
                debug!("malformed stream header");
                return reject(&mut send, &mut recv, StreamCode::Malformed);
            }
            Ok(Err(HeaderError::Read(error))) => {
                trace!(%error, "stream ended before its header");
                return reject(&mut send, &mut recv, StreamCode::Malformed);
            }
            Err(_) => {
                debug!("stream header timed out");
                return reject(&mut send, &mut recv, StreamCode::Timeout);
            }
        };
        match kind {
            StreamKind::Request => {
                let Some((protocol, handler)) = router.request(&protocol) else {
                    debug!(protocol, "request for unknown protocol");
                    return reject(&mut send, &mut recv, StreamCode::UnknownProtocol);
                };
                serve_request(connection, protocol, handler, send, recv).await;
            }
            StreamKind::Stream => {
                let Some((protocol, handler)) = router.stream(&protocol) else {
                    debug!(protocol, "stream for unknown protocol");
                    return reject(&mut send, &mut recv, StreamCode::UnknownProtocol);
                };
                handler(IncomingStream::new(connection, protocol, send, recv)).await;
            }
            StreamKind::Hello => {
                debug!("second hello stream");
                reject(&mut send, &mut recv, StreamCode::Malformed);
            }
        }
    }
    .instrument(span)
    .await;
}

async fn serve_request(
    connection: Connection,
    protocol: Arc<str>,
    handler: crate::handler::RequestHandler,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let max = connection.max_frame_len();
    let mut header = [0u8; FRAME_HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(_)) => {
            return reject(&mut send, &mut recv, StreamCode::Malformed);
        }
        Err(ReadExactError::ReadError(error)) => {
            trace!(%error, "request stream failed");
            return reject(&mut send, &mut recv, StreamCode::Cancelled);
        }
    }
    let len = match decode_frame_header(header, max) {
        Ok(len) => len,
        Err(error) => {
            debug!(%error, "oversized request");
            return reject(&mut send, &mut recv, StreamCode::FrameTooLarge);
        }
    };
    // Wait for room in the connection's budget before buffering the body; meanwhile QUIC flow
    // control holds the peer back. `len` is at most the frame limit, below the budget.
    let budget = Arc::clone(&connection.inner.inbound_budget);
    let Ok(_reserved) = budget
        .acquire_many_owned(u32::try_from(len).unwrap_or(u32::MAX))
        .await
    else {
        return reject(&mut send, &mut recv, StreamCode::Unavailable);
    };
    let body =
        match tokio::time::timeout(connection.inner.request_timeout, recv.read_to_end(len)).await {
            Err(_) => {
                debug!("request body timed out");
                return reject(&mut send, &mut recv, StreamCode::Timeout);
            }
            Ok(Ok(body)) if body.len() == len => Bytes::from(body),
            Ok(Ok(_) | Err(ReadToEndError::TooLong)) => {
                debug!("request frame length does not match the stream");
                return reject(&mut send, &mut recv, StreamCode::Malformed);
            }
            Ok(Err(ReadToEndError::Read(error))) => {
                trace!(%error, "request stream failed");
                return reject(&mut send, &mut recv, StreamCode::Cancelled);
            }
        };
    let context = RequestContext::new(connection, protocol);
    let (status, payload) = match handler(context, body).await {
        Ok(response) if response.len() <= max => (STATUS_OK, response),
        Ok(response) => {
            debug!(
                len = response.len(),
                "handler response exceeds the frame limit"
            );
            let message = format!(
                "response of {} bytes exceeds the frame limit",
                response.len()
            );
            (STATUS_HANDLER_ERROR, Bytes::from(message))
        }
        Err(error) => (
            STATUS_HANDLER_ERROR,
            Bytes::from(error.message().to_owned()),
        ),
    };
    let mut head = Vec::with_capacity(FRAME_HEADER_LEN + 1);
    // The status byte rides in the frame: a response frame may be one byte over the limit.
    if push_frame_header(payload.len() + 1, max.saturating_add(1), &mut head).is_err() {
        return reject(&mut send, &mut recv, StreamCode::FrameTooLarge);
    }
    head.push(status);
    if let Err(error) = send
        .write_all_chunks(&mut [Bytes::from(head), payload])
        .await
    {
        trace!(%error, "response write failed");
        return;
    }
    let _ = send.finish();
}
