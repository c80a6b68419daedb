//! Handlers the node registers for inbound streams, by protocol name.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use dawn_identity::NodeId;
use quinn::{RecvStream, SendStream};

use crate::config::truncate_utf8;
use crate::connection::Connection;
use crate::frame::{MAX_ERROR_MESSAGE_LEN, ProtocolNameError, validate_protocol};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub(crate) type RequestHandler =
    Arc<dyn Fn(RequestContext, Bytes) -> BoxFuture<Result<Bytes, HandlerError>> + Send + Sync>;
pub(crate) type StreamHandler = Arc<dyn Fn(IncomingStream) -> BoxFuture<()> + Send + Sync>;

/// Who sent an inbound request, and over which connection.
#[derive(Debug, Clone)]
pub struct RequestContext {
    connection: Connection,
    protocol: Arc<str>,
}

impl RequestContext {
    pub(crate) fn new(connection: Connection, protocol: Arc<str>) -> Self {
        Self {
            connection,
            protocol,
        }
    }

    /// The authenticated node that sent the request.
    #[must_use]
    pub fn peer(&self) -> NodeId {
        self.connection.peer()
    }

    /// The connection the request arrived on.
    #[must_use]
    pub const fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The protocol the request named.
    #[must_use]
    pub fn protocol(&self) -> &str {
        &self.protocol
    }
}

/// An inbound raw stream for a protocol the node registered with
/// [`Transport::register_stream_handler`](crate::Transport::register_stream_handler).
///
/// The header frame has been read; everything after it belongs to the protocol. Dropping the
/// streams finishes the send side and stops the receive side.
#[derive(Debug)]
pub struct IncomingStream {
    connection: Connection,
    protocol: Arc<str>,
    send: SendStream,
    recv: RecvStream,
}

impl IncomingStream {
    pub(crate) fn new(
        connection: Connection,
        protocol: Arc<str>,
        send: SendStream,
        recv: RecvStream,
    ) -> Self {
        Self {
            connection,
            protocol,
            send,
            recv,
        }
    }

    /// The authenticated node that opened the stream.
    #[must_use]
    pub fn peer(&self) -> NodeId {
        self.connection.peer()
    }

    /// The connection the stream belongs to.
    #[must_use]
    pub const fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The protocol the stream named.
    #[must_use]
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// The two halves of the stream.
    #[must_use]
    pub fn into_parts(self) -> (SendStream, RecvStream) {
        (self.send, self.recv)
    }
}

/// A request handler failed; the message (at most 1 KiB) is sent back to the requester as
/// [`RequestError::Handler`](crate::RequestError::Handler).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    message: String,
}

impl HandlerError {
    /// An error with a message for the requester; cut at 1 KiB.
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        let mut message = message.into();
        truncate_utf8(&mut message, MAX_ERROR_MESSAGE_LEN);
        Self { message }
    }

    /// The message sent to the requester.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A handler could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The protocol name is not acceptable.
    #[error(transparent)]
    Protocol(#[from] ProtocolNameError),
    /// A handler of the same kind is already registered for the protocol.
    #[error("a handler for protocol {0:?} is already registered")]
    Duplicate(String),
}

/// The protocol -> handler tables, shared by every connection.
#[derive(Default)]
pub(crate) struct Router {
    requests: RwLock<HashMap<Arc<str>, RequestHandler>>,
    streams: RwLock<HashMap<Arc<str>, StreamHandler>>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let requests = self.requests.read().unwrap_or_else(PoisonError::into_inner);
        let streams = self.streams.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Router")
            .field("requests", &requests.keys().collect::<Vec<_>>())
            .field("streams", &streams.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn insert<H>(
    table: &RwLock<HashMap<Arc<str>, H>>,
    protocol: &str,
    handler: H,
) -> Result<(), RegisterError> {
    validate_protocol(protocol)?;
    let mut table = table.write().unwrap_or_else(PoisonError::into_inner);
    match table.entry(Arc::from(protocol)) {
        Entry::Occupied(_) => Err(RegisterError::Duplicate(protocol.to_owned())),
        Entry::Vacant(slot) => {
            slot.insert(handler);
            Ok(())
        }
    }
}

fn lookup<H: Clone>(table: &RwLock<HashMap<Arc<str>, H>>, protocol: &str) -> Option<(Arc<str>, H)> {
    let table = table.read().unwrap_or_else(PoisonError::into_inner);
    table
        .get_key_value(protocol)
        .map(|(name, handler)| (Arc::clone(name), handler.clone()))
}

impl Router {
    pub(crate) fn add_request(
        &self,
        protocol: &str,
        handler: RequestHandler,
    ) -> Result<(), RegisterError> {
        insert(&self.requests, protocol, handler)
    }

    pub(crate) fn add_stream(
        &self,
        protocol: &str,
        handler: StreamHandler,
    ) -> Result<(), RegisterError> {
        insert(&self.streams, protocol, handler)
    }

    pub(crate) fn remove_request(&self, protocol: &str) -> bool {
        let mut table = self
            .requests
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        table.remove(protocol).is_some()
    }

    pub(crate) fn remove_stream(&self, protocol: &str) -> bool {
        let mut table = self.streams.write().unwrap_or_else(PoisonError::into_inner);
        table.remove(protocol).is_some()
    }

    pub(crate) fn request(&self, protocol: &str) -> Option<(Arc<str>, RequestHandler)> {
        lookup(&self.requests, protocol)
    }

    pub(crate) fn stream(&self, protocol: &str) -> Option<(Arc<str>, StreamHandler)> {
        lookup(&self.streams, protocol)
    }

    /// Drops every handler (on shutdown, so handlers that hold the transport let it go).
    pub(crate) fn clear(&self) {
        self.requests
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.streams
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
