//! The transport: one quinn endpoint, a pool of authenticated connections, inbound dispatch.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_wire::{Hello, HelloError};
use quinn::{ConnectionError, TransportErrorCode};
use rustls::pki_types::CertificateDer;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::AbortHandle;
use tokio::time::{Instant, timeout_at};
use tracing::{Instrument, debug, debug_span, info, info_span, trace, warn};

use crate::codes::CloseCode;
use crate::config::{AcceptPolicy, ConfigError, Refusal, TransportConfig};
use crate::connection::{Connection, Direction, Established, serve_stream};
use crate::handler::{HandlerError, IncomingStream, RegisterError, RequestContext, Router};
use crate::hello::{self, HelloFailure};
use crate::limits::{Limits, Permit};
use crate::tls::{self, Presented, SERVER_NAME, TlsError, node_id_from_spki};

/// A [`Transport`] could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The UDP socket could not be bound or set up.
    #[error("cannot bind the UDP socket: {0}")]
    Io(#[from] io::Error),
    /// The TLS configuration could not be built from the key.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Called outside a tokio runtime.
    #[error("Transport::bind must be called from within a tokio runtime")]
    NoRuntime,
}

/// A dial failed.
#[derive(Debug, Clone, thiserror::Error)]
// A `NodeId` carries its decompressed point; errors are the cold path, boxing would only make
// matching on them clumsier.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum ConnectError {
    /// No address to try.
    #[error("no address to dial")]
    NoAddresses,
    /// The node tried to dial itself.
    #[error("a node cannot dial itself")]
    SelfDial,
    /// The transport is closed.
    #[error("the transport is closed")]
    Closed,
    /// This node is at its connection limit.
    #[error("connection limit of {max} reached")]
    ConnectionLimit {
        /// The limit in force.
        max: usize,
    },
    /// quinn refused to start the dial (for example an unusable address).
    #[error("cannot start the dial: {0}")]
    Endpoint(#[from] quinn::ConnectError),
    /// The peer authenticated with a different key than the one dialed: refused during the
    /// TLS handshake.
    #[error("expected peer {expected} but it presented {presented}")]
    PeerMismatch {
        /// The node that was dialed.
        expected: NodeId,
        /// The node that answered.
        presented: NodeId,
    },
    /// The peer did not present an Ed25519 raw public key (an X.509 certificate, another
    /// algorithm, or garbage).
    #[error("the peer did not present an Ed25519 raw public key")]
    InvalidPeerKey,
    /// The peer is at its connection limit and refused the connection.
    #[error("the peer refused the connection (at its connection limit)")]
    ConnectionRefused,
    /// The handshake and `Hello` did not finish within the handshake timeout.
    #[error("the handshake timed out")]
    Timeout,
    /// The QUIC or TLS handshake failed for another reason.
    #[error("handshake failed: {0}")]
    Handshake(ConnectionError),
    /// The two nodes have no protocol version in common; the connection was closed with
    /// [`CloseCode::Incompatible`].
    #[error("incompatible peer: {0}")]
    Incompatible(HelloError),
    /// The peer closed the connection during setup with an application code: its trust
    /// policy refused this node ([`CloseCode::Refused`]), it is shutting down, and so on.
    #[error("the peer closed the connection ({code}): {reason}")]
    Refused {
        /// The peer's close code.
        code: CloseCode,
        /// The peer's reason.
        reason: String,
    },
    /// The peer broke the `Hello` protocol; the connection was closed with
    /// [`CloseCode::ProtocolViolation`].
    #[error("protocol violation: {0}")]
    ProtocolViolation(String),
    /// Every address failed; the error for each, in the order tried.
    #[error("all {} addresses failed", .0.len())]
    AllFailed(Vec<(SocketAddr, Self)>),
}

impl ConnectError {
    /// Whether trying another address cannot help.
    fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Closed | Self::SelfDial | Self::ConnectionLimit { .. } | Self::NoAddresses
        )
    }

    fn from_hello(failure: HelloFailure) -> Self {
        match failure {
            HelloFailure::Incompatible(error) => Self::Incompatible(error),
            HelloFailure::Violation(reason) => Self::ProtocolViolation(reason),
            HelloFailure::ClosedByPeer { code, reason } => Self::Refused { code, reason },
            HelloFailure::Connection(ConnectionError::LocallyClosed) => Self::Closed,
            HelloFailure::Connection(error) => Self::Handshake(error),
        }
    }

    fn from_handshake(error: ConnectionError) -> Self {
        match error {
            ConnectionError::ConnectionClosed(close)
                if close.error_code == TransportErrorCode::CONNECTION_REFUSED =>
            {
                Self::ConnectionRefused
            }
            ConnectionError::ApplicationClosed(close) => Self::Refused {
                code: CloseCode::from_u64(close.error_code.into_inner()),
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            ConnectionError::LocallyClosed => Self::Closed,
            other => Self::Handshake(other),
        }
    }
}

/// An inbound connection failed before it was established (reported as
/// [`TransportEvent::InboundFailed`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The QUIC or TLS handshake failed (including a client without a valid raw public key).
    #[error("handshake failed: {0}")]
    Handshake(ConnectionError),
    /// The handshake and `Hello` did not finish within the handshake timeout.
    #[error("the handshake timed out")]
    Timeout,
    /// The client's key is not an Ed25519 raw public key.
    #[error("the peer did not present an Ed25519 raw public key")]
    InvalidPeerKey,
    /// The trust policy refused the authenticated peer.
    #[error("peer {peer} refused by the trust policy: {refusal}")]
    Refused {
        /// The refused node.
        peer: NodeId,
        /// The policy's refusal.
        refusal: Refusal,
    },
    /// No common protocol version.
    #[error("incompatible peer: {0}")]
    Incompatible(HelloError),
    /// The peer broke the `Hello` protocol.
    #[error("protocol violation: {0}")]
    ProtocolViolation(String),
    /// The peer closed the connection during setup.
    #[error("the peer closed the connection ({code}): {reason}")]
    ClosedByPeer {
        /// The peer's close code.
        code: CloseCode,
        /// The peer's reason.
        reason: String,
    },
    /// The transport is closing.
    #[error("the transport is closed")]
    Closed,
    /// Refused before the handshake: this node is at its total or per-address connection
    /// limit.
    #[error("connection limit reached")]
    ConnectionLimit,
}

impl AcceptError {
    fn from_hello(failure: HelloFailure) -> Self {
        match failure {
            HelloFailure::Incompatible(error) => Self::Incompatible(error),
            HelloFailure::Violation(reason) => Self::ProtocolViolation(reason),
            HelloFailure::ClosedByPeer { code, reason } => Self::ClosedByPeer { code, reason },
            HelloFailure::Connection(error) => Self::from_handshake(error),
        }
    }

    fn from_handshake(error: ConnectionError) -> Self {
        match error {
            ConnectionError::LocallyClosed => Self::Closed,
            other => Self::Handshake(other),
        }
    }
}

/// Something the node's peer table wants to know, from [`Transport::subscribe`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TransportEvent {
    /// A connection was established and pooled (it replaces any earlier one to that peer).
    Connected(Connection),
    /// A pooled connection closed; the peer has no pooled connection until the next dial or
    /// inbound connection.
    Disconnected {
        /// The peer.
        peer: NodeId,
        /// The closed connection's [`Connection::id`].
        connection_id: u64,
        /// Why it closed.
        reason: ConnectionError,
    },
    /// An inbound connection attempt failed.
    InboundFailed {
        /// Where it came from.
        remote: SocketAddr,
        /// Why it failed.
        error: AcceptError,
    },
}

/// The result every caller of an in-flight dial waits for.
type DialResult = Option<Result<Connection, ConnectError>>;

/// A dial in flight, shared by every caller of [`Transport::connect`] for its peer.
struct Dial {
    /// Callers subscribe here; the dial task publishes its result here, and ends early once
    /// nobody is subscribed any more.
    results: watch::Sender<DialResult>,
    /// The dial task, cancelled by [`Transport::close`].
    task: AbortHandle,
}

#[derive(Default)]
struct Pool {
    closed: bool,
    peers: HashMap<NodeId, Connection>,
    dials: HashMap<NodeId, Dial>,
}

impl Pool {
    /// Forgets the dial publishing on `results` if it is still the one registered for `peer`.
    fn remove_dial(&mut self, peer: &NodeId, results: &watch::Sender<DialResult>) {
        if self
            .dials
            .get(peer)
            .is_some_and(|dial| dial.results.same_channel(results))
        {
            self.dials.remove(peer);
        }
    }
}

/// A dial task's entry in the pool, removed when the task ends however it ends: the entry
/// holds a sender, so callers would otherwise wait for a result that never comes.
struct Registration<'a> {
    pool: &'a Mutex<Pool>,
    peer: NodeId,
    results: &'a watch::Sender<DialResult>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        lock(self.pool).remove_dial(&self.peer, self.results);
    }
}

/// Counts the running tasks of one kind, so that [`Transport::close`] can wait for them.
#[derive(Default)]
struct TaskCount {
    running: AtomicUsize,
    idle: Notify,
}

/// One running task in a [`TaskCount`]; moved into the task, so it is counted until the task
/// finishes or is aborted.
struct Running(Arc<TaskCount>);

impl TaskCount {
    fn enter(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::AcqRel);
        Running(Arc::clone(self))
    }

    fn get(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Waits until no task is running.
    async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registered before the check, so a task ending in between still wakes us.
            notified.as_mut().enable();
            if self.get() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

struct Inner {
    node_id: NodeId,
    endpoint: quinn::Endpoint,
    config: TransportConfig,
    /// Client TLS with our key; each dial clones it with a verifier for the expected peer.
    client_tls: rustls::ClientConfig,
    quic_transport: Arc<quinn::TransportConfig>,
    local_hello: Hello,
    router: Arc<Router>,
    events: broadcast::Sender<TransportEvent>,
    pool: Mutex<Pool>,
    /// Dial tasks, one per peer being dialed.
    dial_tasks: Arc<TaskCount>,
    /// Inbound handshakes (TLS, policy, `Hello`).
    accept_tasks: Arc<TaskCount>,
    next_connection_id: AtomicU64,
    limits: Arc<Limits>,
    policy: RwLock<Option<Arc<dyn AcceptPolicy>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.endpoint
            .close(CloseCode::Shutdown.varint(), b"transport dropped");
    }
}

/// A node's QUIC transport: one UDP socket, TLS bound to the node key, a pool with one
/// connection per peer, and handlers for what peers open.
///
/// Cheap to clone. Call [`Transport::close`] to shut down gracefully; dropping the last
/// handle closes the endpoint abruptly.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("node_id", &self.inner.node_id)
            .field("local_addr", &self.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// The authenticated key of a connection's peer.
fn peer_id(quic: &quinn::Connection) -> Option<NodeId> {
    let identity = quic.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    match certs.as_slice() {
        [only] => node_id_from_spki(only),
        _ => None,
    }
}

fn lock(pool: &Mutex<Pool>) -> MutexGuard<'_, Pool> {
    pool.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The instant `after` from now; for a timeout too long for the clock (`Duration::MAX` as
/// "never"), one thirty years away, as tokio does for its own timers.
fn deadline_after(after: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(after).unwrap_or(now + FAR)
}

impl Transport {
    /// Binds a UDP socket on `addr` and starts the transport with the node key `key`.
    ///
    /// Must be called from within a tokio runtime (quinn spawns its driver on it).
    ///
    /// # Errors
    /// [`BindError`]: invalid configuration, socket error, no runtime.
    pub fn bind(
        key: SigningKey,
        addr: SocketAddr,
        config: TransportConfig,
    ) -> Result<Self, BindError> {
        config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(BindError::NoRuntime);
        }
        let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
        let socket = std::net::UdpSocket::bind(addr)?;
        let socket = runtime.wrap_udp_socket(socket)?;
        Self::with_socket(&key, socket, runtime, config)
    }

    /// Starts the transport on any [`quinn::AsyncUdpSocket`]: a plain UDP socket today, a
    /// socket that also carries relayed datagrams tomorrow. The relay path plugs in here.
    fn with_socket(
        key: &SigningKey,
        socket: Arc<dyn quinn::AsyncUdpSocket>,
        runtime: Arc<dyn quinn::Runtime>,
        config: TransportConfig,
    ) -> Result<Self, BindError> {
        let node_id: NodeId = key.verifying_key().into();
        let quic_transport = Arc::new(config.quic());
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(tls::quic_server_config(key)?));
        server
            .transport_config(Arc::clone(&quic_transport))
            .max_incoming(config.max_connections);
        let client_tls = tls::rustls_client_config(key)?;
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            runtime,
        )?;
        let (min_version, max_version) = config.versions;
        let local_hello = Hello {
            min_version,
            max_version,
            node_id,
            capabilities: config.capabilities,
            software: config.software.clone(),
        };
        let (events, _) = broadcast::channel(config.event_capacity);
        let limits = Arc::new(Limits::new(
            config.max_connections,
            config.max_connections_per_ip,
        ));
        let policy = RwLock::new(config.accept_policy.clone());
        let inner = Arc::new(Inner {
            node_id,
            endpoint: endpoint.clone(),
            config,
            client_tls,
            quic_transport,
            local_hello,
            router: Arc::new(Router::default()),
            events,
            pool: Mutex::new(Pool::default()),
            dial_tasks: Arc::default(),
            accept_tasks: Arc::default(),
            next_connection_id: AtomicU64::new(1),
            limits,
            policy,
        });
        let span = info_span!("transport", node = %node_id.fmt_short());
        tokio::spawn(accept_loop(Arc::downgrade(&inner), endpoint).instrument(span));
        info!(node = %node_id.fmt_short(), addr = ?inner.endpoint.local_addr().ok(), "transport bound");
        Ok(Self { inner })
    }

    /// This node's identity (the public half of the key it was bound with).
    #[must_use]
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// The address the socket is bound to (with the real port when bound to port 0).
    ///
    /// # Errors
    /// The socket's I/O error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.endpoint.local_addr()
    }

    /// The configuration the transport runs with.
    #[must_use]
    pub fn config(&self) -> &TransportConfig {
        &self.inner.config
    }

    /// Subscribes to connection events. Each subscriber sees every event from now on, unless
    /// it falls more than [`TransportConfig::event_capacity`] events behind (then
    /// `recv` reports how many it missed).
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<TransportEvent> {
        self.inner.events.subscribe()
    }

    /// Replaces the trust policy for inbound peers (`None` accepts every authenticated peer).
    /// Existing connections are not re-checked: [`Transport::disconnect`] them if needed.
    pub fn set_accept_policy(&self, policy: Option<Arc<dyn AcceptPolicy>>) {
        *self
            .inner
            .policy
            .write()
            .unwrap_or_else(PoisonError::into_inner) = policy;
    }

    /// Registers the handler for requests naming `protocol`.
    ///
    /// The handler runs on its own task per request; its `Ok` is the response body (at most
    /// the frame limit), its `Err` is sent back as
    /// [`RequestError::Handler`](crate::RequestError::Handler).
    ///
    /// # Errors
    /// [`RegisterError`]: invalid name, or a request handler already registered for it.
    pub fn register_request_handler<F, Fut>(
        &self,
        protocol: &str,
        handler: F,
    ) -> Result<(), RegisterError>
    where
        F: Fn(RequestContext, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, HandlerError>> + Send + 'static,
    {
        self.inner.router.add_request(
            protocol,
            Arc::new(move |context, body| Box::pin(handler(context, body))),
        )
    }

    /// Registers the handler for raw streams naming `protocol`; it owns the stream from then
    /// on (the MCP layer runs sessions this way).
    ///
    /// # Errors
    /// [`RegisterError`]: invalid name, or a stream handler already registered for it.
    pub fn register_stream_handler<F, Fut>(
        &self,
        protocol: &str,
        handler: F,
    ) -> Result<(), RegisterError>
    where
        F: Fn(IncomingStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.inner
            .router
            .add_stream(protocol, Arc::new(move |stream| Box::pin(handler(stream))))
    }

    /// Removes the request handler for `protocol`; returns whether there was one.
    pub fn remove_request_handler(&self, protocol: &str) -> bool {
        self.inner.router.remove_request(protocol)
    }

    /// Removes the stream handler for `protocol`; returns whether there was one.
    pub fn remove_stream_handler(&self, protocol: &str) -> bool {
        self.inner.router.remove_stream(protocol)
    }

    /// The pooled connection to `peer`, if one is open.
    #[must_use]
    pub fn connection(&self, peer: &NodeId) -> Option<Connection> {
        lock(&self.inner.pool)
            .peers
            .get(peer)
            .filter(|c| !c.is_closed())
            .cloned()
    }

    /// Every open pooled connection.
    #[must_use]
    pub fn connections(&self) -> Vec<Connection> {
        lock(&self.inner.pool)
            .peers
            .values()
            .filter(|c| !c.is_closed())
            .cloned()
            .collect()
    }

    /// Closes the pooled connection to `peer` with [`CloseCode::Normal`] and `reason`;
    /// returns whether there was one.
    ///
    /// Subscribers get [`TransportEvent::Disconnected`] (reason
    /// [`ConnectionError::LocallyClosed`]) as for any other pooled connection that closes.
    pub fn disconnect(&self, peer: &NodeId, reason: &str) -> bool {
        let connection = lock(&self.inner.pool).peers.remove(peer);
        connection.is_some_and(|connection| {
            connection.close(reason);
            // Removed from the pool here, so the connection's own watcher does not report it.
            debug!(peer = %peer.fmt_short(), %reason, "disconnected locally");
            let _ = self.inner.events.send(TransportEvent::Disconnected {
                peer: *peer,
                connection_id: connection.id(),
                reason: ConnectionError::LocallyClosed,
            });
            true
        })
    }

    /// The connection to `peer`: the pooled one if open, otherwise a new dial trying `addrs`
    /// in order.
    ///
    /// Concurrent calls for the same peer share one dial (later callers' `addrs` are not
    /// used). Each address gets [`TransportConfig::handshake_timeout`] for the TLS handshake,
    /// which refuses any key but `peer`'s, and the `Hello` exchange. The dial runs on its own
    /// task for as long as any caller waits for it: when the last one gives up (its future is
    /// dropped, for example by a timeout) the dial is cancelled, and [`Transport::close`]
    /// cancels every dial.
    ///
    /// When both nodes dial each other at the same moment, both keep the connection dialed by
    /// the smaller node id; the one returned here may then be closed with
    /// [`CloseCode::Duplicate`] shortly after, and calling `connect` again returns the survivor
    /// from the pool. Long-lived users should re-`connect` when a request fails with a closed
    /// connection (it is cheap while the peer is pooled).
    ///
    /// # Errors
    /// [`ConnectError`]; with several addresses that all failed,
    /// [`ConnectError::AllFailed`] lists each one's error.
    pub async fn connect(
        &self,
        peer: NodeId,
        addrs: &[SocketAddr],
    ) -> Result<Connection, ConnectError> {
        if peer == self.inner.node_id {
            return Err(ConnectError::SelfDial);
        }
        let mut waiter = {
            let mut pool = lock(&self.inner.pool);
            if pool.closed {
                return Err(ConnectError::Closed);
            }
            if let Some(connection) = pool.peers.get(&peer).filter(|c| !c.is_closed()) {
                return Ok(connection.clone());
            }
            match pool.dials.get(&peer) {
                Some(dial) => dial.results.subscribe(),
                None => {
                    if addrs.is_empty() {
                        return Err(ConnectError::NoAddresses);
                    }
                    let (results, waiter) = watch::channel(None);
                    let running = self.inner.dial_tasks.enter();
                    let span = info_span!("transport.connect", peer = %peer.fmt_short());
                    // Spawned under the pool lock: the task cannot look for its entry before
                    // it is there.
                    let task = tokio::spawn(
                        Arc::clone(&self.inner)
                            .dial_task(peer, addrs.to_vec(), results.clone(), running)
                            .instrument(span),
                    );
                    pool.dials.insert(
                        peer,
                        Dial {
                            results,
                            task: task.abort_handle(),
                        },
                    );
                    waiter
                }
            }
        };
        match waiter.wait_for(Option::is_some).await {
            Ok(result) => result.clone().unwrap_or(Err(ConnectError::Closed)),
            Err(_) => Err(ConnectError::Closed),
        }
    }

    /// How many dials are running: one per peer being dialed, however many callers of
    /// [`Transport::connect`] wait for it. A dial ends when it succeeds or fails, when nobody
    /// waits for it any more, or when the transport closes.
    #[must_use]
    pub fn dials_in_flight(&self) -> usize {
        self.inner.dial_tasks.get()
    }

    /// Shuts down gracefully: refuses new connections and dials, closes every connection and
    /// every handshake in progress with [`CloseCode::Shutdown`] and `reason` (the
    /// `CONNECTION_CLOSE` goes out at once), cancels every dial (its callers get
    /// [`ConnectError::Closed`]), drops the handlers, and waits for the closed connections to
    /// drain.
    ///
    /// Returns when every connection has drained or after
    /// [`TransportConfig::close_timeout`] (default 500 ms), whichever comes first. Without
    /// that bound a handshake to a peer that never answered would hold it for about 3 s (quinn
    /// drains a closed connection for three probe timeouts, estimated from a 333 ms initial
    /// RTT when nothing was ever measured). Connections still draining then finish in the
    /// background while the runtime runs; the UDP socket is released once they have and the
    /// last handle is dropped.
    ///
    /// Idempotent and safe to call concurrently: only the first call's `reason` is sent, and
    /// every call returns under the same bound.
    pub async fn close(&self, reason: &str) {
        let first = {
            let mut pool = lock(&self.inner.pool);
            if pool.closed {
                None
            } else {
                pool.closed = true;
                let connections: Vec<Connection> = pool.peers.drain().map(|(_, c)| c).collect();
                let dials: Vec<Dial> = pool.dials.drain().map(|(_, d)| d).collect();
                Some((connections, dials))
            }
        };
        if let Some((connections, dials)) = first {
            for connection in &connections {
                connection.close_with(CloseCode::Shutdown, reason);
            }
            // Also closes the connections still handshaking, inbound and outbound.
            self.inner
                .endpoint
                .close(CloseCode::Shutdown.varint(), reason.as_bytes());
            for dial in dials {
                dial.task.abort();
                dial.results.send_replace(Some(Err(ConnectError::Closed)));
            }
            self.inner.router.clear();
            debug!(
                connections = connections.len(),
                "closing: connections closed, dials cancelled"
            );
        }
        let inner = &self.inner;
        let drained = tokio::time::timeout(inner.config.close_timeout, async {
            inner.dial_tasks.idle().await;
            inner.accept_tasks.idle().await;
            inner.endpoint.wait_idle().await;
        })
        .await
        .is_ok();
        if drained {
            info!(node = %inner.node_id.fmt_short(), "transport closed");
        } else {
            info!(
                node = %inner.node_id.fmt_short(),
                draining = inner.endpoint.open_connections(),
                "transport closed; connections still draining in the background"
            );
        }
    }
}

impl Inner {
    /// Runs one shared dial and publishes its result on `results`; gives up as soon as nobody
    /// is subscribed to `results` any more.
    async fn dial_task(
        self: Arc<Self>,
        peer: NodeId,
        addrs: Vec<SocketAddr>,
        results: watch::Sender<DialResult>,
        _running: Running,
    ) {
        // However the task ends (aborted, or a bug that panics), callers are not left waiting.
        let registration = Registration {
            pool: &self.pool,
            peer,
            results: &results,
        };
        let dial = self.dial(peer, &addrs);
        tokio::pin!(dial);
        let result = loop {
            tokio::select! {
                result = &mut dial => break result,
                () = results.closed() => {
                    // Callers subscribe under the pool lock, so none can join after this
                    // check; one that joined since the wake-up keeps the dial going.
                    let mut pool = lock(&self.pool);
                    if results.receiver_count() == 0 {
                        pool.remove_dial(&peer, &results);
                        drop(pool);
                        debug!("nobody waits for the dial any more; cancelled");
                        return;
                    }
                }
            }
        };
        match &result {
            Ok(connection) => debug!(id = connection.id(), "connected"),
            Err(error) => debug!(%error, "dial failed"),
        }
        drop(registration);
        results.send_replace(Some(result));
    }

    async fn dial(
        self: &Arc<Self>,
        peer: NodeId,
        addrs: &[SocketAddr],
    ) -> Result<Connection, ConnectError> {
        let mut failures = Vec::new();
        for &addr in addrs {
            match self.dial_addr(peer, addr).await {
                Ok(connection) => return Ok(connection),
                Err(ConnectError::Refused {
                    code: CloseCode::Duplicate,
                    reason,
                }) => {
                    // Both nodes dialed at once and the peer kept the other connection, which
                    // is established here or about to be.
                    if let Some(connection) = self.await_pooled(peer).await {
                        return Ok(connection);
                    }
                    failures.push((
                        addr,
                        ConnectError::Refused {
                            code: CloseCode::Duplicate,
                            reason,
                        },
                    ));
                }
                Err(error) if error.is_final() => return Err(error),
                Err(error) => {
                    debug!(%addr, %error, "address failed");
                    failures.push((addr, error));
                }
            }
        }
        if failures.len() == 1
            && let Some((_, error)) = failures.pop()
        {
            return Err(error);
        }
        Err(ConnectError::AllFailed(failures))
    }

    /// The pooled connection to `peer`, waiting up to the handshake timeout for one to appear.
    async fn await_pooled(&self, peer: NodeId) -> Option<Connection> {
        let mut events = self.events.subscribe();
        let pooled = lock(&self.pool)
            .peers
            .get(&peer)
            .filter(|c| !c.is_closed())
            .cloned();
        if pooled.is_some() {
            return pooled;
        }
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(TransportEvent::Connected(connection)) if connection.peer() == peer => {
                        return Some(connection);
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        };
        tokio::time::timeout(self.config.handshake_timeout, wait)
            .await
            .ok()
            .flatten()
    }

    async fn dial_addr(
        self: &Arc<Self>,
        peer: NodeId,
        addr: SocketAddr,
    ) -> Result<Connection, ConnectError> {
        let permit = self
            .limits
            .outbound()
            .ok_or(ConnectError::ConnectionLimit {
                max: self.config.max_connections,
            })?;
        let deadline = deadline_after(self.config.handshake_timeout);
        let (crypto, verifier) =
            tls::client_config_for(&self.client_tls, peer).map_err(|error| {
                warn!(%error, "cannot build the client TLS configuration");
                ConnectError::InvalidPeerKey
            })?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(Arc::clone(&self.quic_transport));
        let connecting = self
            .endpoint
            .connect_with(client, addr, SERVER_NAME)
            .map_err(|error| match error {
                quinn::ConnectError::EndpointStopping => ConnectError::Closed,
                other => ConnectError::Endpoint(other),
            })?;
        let quic = match timeout_at(deadline, connecting).await {
            Err(_) => return Err(ConnectError::Timeout),
            Ok(Err(error)) => {
                return Err(match verifier.mismatch() {
                    Some(Presented::Other(presented)) => ConnectError::PeerMismatch {
                        expected: peer,
                        presented,
                    },
                    Some(Presented::Invalid) => ConnectError::InvalidPeerKey,
                    None => ConnectError::from_handshake(error),
                });
            }
            Ok(Ok(quic)) => quic,
        };
        // The verifier already refused every other key; this guards against a future change
        // there silently turning into an impersonation.
        if peer_id(&quic) != Some(peer) {
            quic.close(CloseCode::ProtocolViolation.varint(), b"unexpected key");
            return Err(ConnectError::InvalidPeerKey);
        }
        let (peer_hello, version) =
            match timeout_at(deadline, hello::dial(&quic, &self.local_hello, peer)).await {
                Err(_) => {
                    quic.close(CloseCode::Timeout.varint(), b"hello timed out");
                    return Err(ConnectError::Timeout);
                }
                Ok(Err(failure)) => return Err(ConnectError::from_hello(failure)),
                Ok(Ok(hello)) => hello,
            };
        let connection = self.new_connection(quic, peer, Direction::Outbound, version, peer_hello);
        self.establish(connection, permit)
            .ok_or(ConnectError::Closed)
    }

    async fn accept(self: Arc<Self>, incoming: quinn::Incoming, permit: Permit) {
        let remote = incoming.remote_address();
        match self.accept_inner(incoming, permit).await {
            Ok(connection) => {
                debug!(peer = %connection.peer().fmt_short(), id = connection.id(), "accepted")
            }
            Err(error) => {
                debug!(%error, "inbound connection failed");
                let _ = self
                    .events
                    .send(TransportEvent::InboundFailed { remote, error });
            }
        }
    }

    async fn accept_inner(
        self: &Arc<Self>,
        incoming: quinn::Incoming,
        permit: Permit,
    ) -> Result<Connection, AcceptError> {
        let deadline = deadline_after(self.config.handshake_timeout);
        let connecting = incoming.accept().map_err(AcceptError::Handshake)?;
        let quic = match timeout_at(deadline, connecting).await {
            Err(_) => return Err(AcceptError::Timeout),
            Ok(Err(error)) => return Err(AcceptError::from_handshake(error)),
            Ok(Ok(quic)) => quic,
        };
        let Some(peer) = peer_id(&quic) else {
            quic.close(CloseCode::ProtocolViolation.varint(), b"invalid key");
            return Err(AcceptError::InvalidPeerKey);
        };
        tracing::Span::current().record("peer", tracing::field::display(peer.fmt_short()));
        let policy = self
            .policy
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(policy) = policy
            && let Err(refusal) = policy.check(&peer, quic.remote_address())
        {
            debug!(peer = %peer.fmt_short(), %refusal, "refused by policy");
            quic.close(CloseCode::Refused.varint(), refusal.reason().as_bytes());
            return Err(AcceptError::Refused { peer, refusal });
        }
        let (peer_hello, version) =
            match timeout_at(deadline, hello::accept(&quic, &self.local_hello, peer)).await {
                Err(_) => {
                    quic.close(CloseCode::Timeout.varint(), b"hello timed out");
                    return Err(AcceptError::Timeout);
                }
                Ok(Err(failure)) => return Err(AcceptError::from_hello(failure)),
                Ok(Ok(hello)) => hello,
            };
        let connection = self.new_connection(quic, peer, Direction::Inbound, version, peer_hello);
        self.establish(connection, permit)
            .ok_or(AcceptError::Closed)
    }

    /// Wraps a connection that passed the handshake and the `Hello` exchange, with this
    /// transport's id counter and limits.
    fn new_connection(
        &self,
        quic: quinn::Connection,
        peer: NodeId,
        direction: Direction,
        version: u16,
        peer_hello: Hello,
    ) -> Connection {
        Connection::new(Established {
            id: self.next_connection_id.fetch_add(1, Ordering::Relaxed),
            quic,
            local: self.node_id,
            peer,
            direction,
            version,
            peer_hello,
            max_frame_len: self.config.max_frame_len,
            request_timeout: self.config.request_timeout,
        })
    }

    /// Pools a new connection and starts serving it; returns the connection callers should
    /// use for the peer (the new one, or an older one that wins the duplicate tie-break).
    ///
    /// When two connections join the same two nodes, both nodes keep the one dialed by the
    /// node with the smaller id, so they agree without talking; between two connections from
    /// the same dialer the newer wins. The loser is closed with [`CloseCode::Duplicate`].
    fn establish(self: &Arc<Self>, connection: Connection, permit: Permit) -> Option<Connection> {
        let peer = connection.peer();
        let (winner, loser) = {
            let mut pool = lock(&self.pool);
            if pool.closed {
                drop(pool);
                connection.close_with(CloseCode::Shutdown, "transport closed");
                return None;
            }
            match pool.peers.get(&peer).filter(|c| !c.is_closed()).cloned() {
                Some(existing) => {
                    if keeps_new(existing.dialer(), connection.dialer()) {
                        pool.peers.insert(peer, connection.clone());
                        (connection.clone(), Some(existing))
                    } else {
                        (existing, Some(connection.clone()))
                    }
                }
                None => {
                    pool.peers.insert(peer, connection.clone());
                    (connection.clone(), None)
                }
            }
        };
        let span = debug_span!("transport.conn", peer = %peer.fmt_short(), id = connection.id());
        tokio::spawn(
            drive(
                Arc::downgrade(self),
                Arc::clone(&self.router),
                connection.clone(),
                self.config.stream_header_timeout,
                permit,
            )
            .instrument(span),
        );
        if let Some(loser) = loser {
            debug!(peer = %peer.fmt_short(), kept = winner.id(), closed = loser.id(), "duplicate connection");
            loser.close_with(CloseCode::Duplicate, "duplicate connection");
        }
        if winner.id() == connection.id() {
            let _ = self.events.send(TransportEvent::Connected(connection));
        }
        Some(winner)
    }

    /// Forgets a closed connection if it is still the pooled one.
    fn forget(&self, connection: &Connection, reason: ConnectionError) {
        let peer = connection.peer();
        let removed = {
            let mut pool = lock(&self.pool);
            let pooled = pool.peers.get(&peer).map(Connection::id);
            if pooled == Some(connection.id()) {
                pool.peers.remove(&peer);
                true
            } else {
                false
            }
        };
        if removed {
            debug!(peer = %peer.fmt_short(), %reason, "disconnected");
            let _ = self.events.send(TransportEvent::Disconnected {
                peer,
                connection_id: connection.id(),
                reason,
            });
        }
    }
}

/// Whether a new connection replaces the pooled one to the same peer, given who dialed each.
///
/// Both nodes decide alike without talking: the connection dialed by the smaller node id wins;
/// between two from the same dialer (it lost the old one and dialed again) the newer wins.
fn keeps_new(existing_dialer: NodeId, new_dialer: NodeId) -> bool {
    new_dialer <= existing_dialer
}

/// Accepts inbound connection attempts until the endpoint closes.
async fn accept_loop(inner: Weak<Inner>, endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        let Some(inner) = inner.upgrade() else {
            incoming.refuse();
            break;
        };
        let remote = incoming.remote_address();
        let Some(permit) = inner.limits.inbound(remote.ip()) else {
            debug!(%remote, "connection limit reached, refusing");
            incoming.refuse();
            let _ = inner.events.send(TransportEvent::InboundFailed {
                remote,
                error: AcceptError::ConnectionLimit,
            });
            continue;
        };
        let span = debug_span!("transport.accept", %remote, peer = tracing::field::Empty);
        let running = inner.accept_tasks.enter();
        tokio::spawn(
            async move {
                inner.accept(incoming, permit).await;
                drop(running);
            }
            .instrument(span),
        );
    }
    trace!("accept loop ended");
}

/// Serves the streams a peer opens on one connection until it closes.
async fn drive(
    inner: Weak<Inner>,
    router: Arc<Router>,
    connection: Connection,
    header_timeout: Duration,
    permit: Permit,
) {
    let reason = loop {
        match connection.quic().accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(serve_stream(
                    connection.clone(),
                    Arc::clone(&router),
                    send,
                    recv,
                    header_timeout,
                ));
            }
            Err(error) => break error,
        }
    };
    drop(permit);
    if let Some(inner) = inner.upgrade() {
        inner.forget(&connection, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_nodes_keep_the_connection_dialed_by_the_smaller_id() {
        let mut ids: Vec<NodeId> = (1..=2u8)
            .map(|seed| SigningKey::from_bytes(&[seed; 32]).verifying_key().into())
            .collect();
        ids.sort();
        let (small, large) = (ids[0], ids[1]);
        // Whichever connection a node pooled first, both end up with the small node's.
        assert!(keeps_new(large, small));
        assert!(!keeps_new(small, large));
        // A redial by the same node replaces its old connection.
        assert!(keeps_new(small, small));
        assert!(keeps_new(large, large));
    }
}
