//! `NodeBuilder` and `Node`: identity, store and transport composed into a running node.

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dawn_gossip::{Config as GossipConfig, MessageId};
use dawn_identity::{NodeId, Passphrase, SealOptions};
use dawn_resilience::RetryError;
use dawn_store::Store;
use dawn_transport::{Connection, Transport, TransportConfig, TransportEvent};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::api::{Direction, NodeStatus, PeerInfo};
use crate::config::{BootstrapPeer, Config, DEFAULT_HTTP, DEFAULT_LISTEN};
use crate::error::NodeError;
use crate::gossip::{self, GossipContext, GossipError, GossipShared, GossipStats, Subscription};
use crate::http;
use crate::identity::{KeyOutcome, key_path, load_or_create};
use crate::mdns::{self, Discovery, MdnsContext, MdnsService, MdnsStats};
use crate::metrics::Metrics;
use crate::peers::{Change, MAX_KNOWN_PEERS, PeerRecord, PeerTable, now_unix_ms};
use crate::security::{AcceptGate, DialBlocked, Security, SecurityOptions};

/// The database's file name inside the data directory.
pub const DB_FILE_NAME: &str = "dawn.db";

/// The lock file that keeps two nodes off one data directory.
pub const LOCK_FILE_NAME: &str = "node.lock";

/// A known (non-bootstrap) peer is given up after this many failed dials in a row.
const MAX_REDIAL_FAILURES: u32 = 8;

/// At most this many known peers are redialled at start.
const MAX_REDIALS: usize = 64;

/// Most addresses tried per dial.
const MAX_DIAL_ADDRS: usize = 16;

/// Peers unseen for this long and failing are pruned from the store at start.
const PRUNE_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long shutdown waits for each stage (HTTP, transport, tasks) before moving on. The
/// transport bounds its own close by `TransportConfig::close_timeout` (500 ms by default), so
/// for it this is only a safety net.
const SHUTDOWN_STAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Pending store writes; past this, event handling waits for the store.
const STORE_QUEUE: usize = 1024;

/// State shared by the node's tasks and the HTTP handlers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) node_id: NodeId,
    started: Instant,
    pub(crate) listen_addrs: Vec<SocketAddr>,
    http_addr: OnceLock<SocketAddr>,
    peers: Mutex<PeerTable>,
    pub(crate) gossip: GossipShared,
    /// Server-sent events for the web UI; any module may publish.
    pub(crate) events: crate::events::EventHub,
    /// The mesh chat rooms.
    pub(crate) chat: crate::chat::ChatHub,
    /// Recorded into by every module; `GET /metrics` renders it.
    pub(crate) metrics: Metrics,
    /// Trust, policy, the audit log and the resilience state (`crate::security`).
    pub(crate) security: Arc<Security>,
    /// This node's agents, the mesh directory and the MCP gateway (`crate::agents`); set
    /// once the directory driver runs.
    pub(crate) agents: OnceLock<Arc<crate::agents::Agents>>,
}

impl Shared {
    pub(crate) fn new(
        node_id: NodeId,
        listen_addrs: Vec<SocketAddr>,
        gossip: GossipShared,
        security: Arc<Security>,
    ) -> Self {
        Self {
            node_id,
            started: Instant::now(),
            listen_addrs,
            http_addr: OnceLock::new(),
            peers: Mutex::new(PeerTable::new(node_id)),
            gossip,
            events: crate::events::EventHub::new(),
            chat: crate::chat::ChatHub::new(),
            metrics: Metrics::new(),
            security,
            agents: OnceLock::new(),
        }
    }

    /// The bound HTTP address, once the server is bound.
    pub(crate) fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr.get().copied()
    }

    /// The peer table; a panic elsewhere never makes it unusable.
    pub(crate) fn table(&self) -> MutexGuard<'_, PeerTable> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn status(&self) -> NodeStatus {
        let table = self.table();
        NodeStatus {
            node_id: self.node_id,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_secs: self.started.elapsed().as_secs(),
            listen_addrs: self.listen_addrs.clone(),
            http_addr: self.http_addr.get().copied(),
            peer_count: table.connected_count(),
            known_peer_count: table.len(),
            gossip: self.gossip.stats(),
        }
    }

    pub(crate) fn peers(&self) -> Vec<PeerInfo> {
        let mut peers = self.table().snapshot(now_unix_ms());
        for peer in &mut peers {
            peer.view = self.gossip.view_of(&peer.node_id);
            let (level, score) = self.security.standing(&peer.node_id);
            peer.trust_level = Some(level);
            peer.trust_score = Some(score);
        }
        peers
    }
}

/// Configures and starts a [`Node`].
///
/// The defaults are the embedded default: data under [`default_data_dir`], QUIC on
/// [`DEFAULT_LISTEN`], HTTP on [`DEFAULT_HTTP`], no bootstrap peers, and without a passphrase
/// a development-mode key (with a loud warning in the log).
///
/// LAN discovery over mDNS is **off** in a builder from [`NodeBuilder::new`], so that embedded
/// and test nodes never send multicast unless asked to ([`NodeBuilder::mdns`]); a builder
/// [`from_config`](NodeBuilder::from_config) follows `discovery.mdns`, which is on by default.
///
/// [`default_data_dir`]: crate::default_data_dir
#[derive(Debug, Clone)]
#[must_use]
pub struct NodeBuilder {
    data_dir: Option<PathBuf>,
    listen: SocketAddr,
    bootstrap: Vec<BootstrapPeer>,
    http: Option<SocketAddr>,
    passphrase: Option<Passphrase>,
    development: bool,
    seal_options: SealOptions,
    /// Trust, policy, resilience and admin settings (`crate::security`).
    pub(crate) security: SecurityOptions,
    transport: TransportConfig,
    gossip: GossipConfig,
    mdns: bool,
    mdns_service: MdnsService,
    builtin_agents: bool,
}

impl Default for NodeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeBuilder {
    /// A builder with the embedded defaults.
    pub fn new() -> Self {
        Self {
            data_dir: None,
            listen: DEFAULT_LISTEN,
            bootstrap: Vec::new(),
            http: Some(DEFAULT_HTTP),
            passphrase: None,
            development: false,
            seal_options: SealOptions::default(),
            security: SecurityOptions::default(),
            transport: TransportConfig::default(),
            gossip: GossipConfig::new(),
            mdns: false,
            mdns_service: MdnsService::default(),
            builtin_agents: true,
        }
    }

    /// A builder from a [`Config`]: data directory, listen addresses, bootstrap peers,
    /// `identity.development` and `[discovery]`. The passphrase is not read here: see
    /// [`read_passphrase_file`](crate::read_passphrase_file) and [`NodeBuilder::passphrase`].
    ///
    /// # Errors
    /// [`NodeError::Config`] if the data directory is unset and the platform has no default.
    pub fn from_config(config: &Config) -> Result<Self, NodeError> {
        Ok(Self::new()
            .data_dir(config.data_dir()?)
            .listen(config.node.listen)
            .bootstrap(config.node.bootstrap.iter().cloned())
            .http(Some(config.http.listen))
            .development_mode(config.identity.development)
            .mdns(config.discovery.mdns)
            .mdns_service(config.discovery.service.clone())
            .security_options(SecurityOptions::from_config(config)))
    }

    fn security_options(mut self, options: SecurityOptions) -> Self {
        self.security = options;
        self
    }

    /// Where the key (`node.key`), the database (`dawn.db`) and the lock file live. Created
    /// (mode 0700) if missing.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The QUIC (UDP) listen address; port 0 picks a free port.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Adds bootstrap peers: dialled at start and kept connected, redialled with capped,
    /// jittered exponential backoff whenever the connection drops.
    pub fn bootstrap(mut self, peers: impl IntoIterator<Item = BootstrapPeer>) -> Self {
        for peer in peers {
            if !self.bootstrap.contains(&peer) {
                self.bootstrap.push(peer);
            }
        }
        self
    }

    /// The HTTP API address (port 0 picks a free port), or `None` for no HTTP server.
    pub fn http(mut self, addr: Option<SocketAddr>) -> Self {
        self.http = addr;
        self
    }

    /// The passphrase that encrypts the node key. A new key is created encrypted; an
    /// existing unencrypted key is encrypted in place.
    pub fn passphrase(mut self, passphrase: Passphrase) -> Self {
        self.passphrase = Some(passphrase);
        self
    }

    /// Acknowledges development mode: without a passphrase the key is stored unencrypted
    /// anyway, and this only turns the loud warning into a short one.
    pub fn development_mode(mut self, acknowledged: bool) -> Self {
        self.development = acknowledged;
        self
    }

    /// How a new key is encrypted (Argon2id cost, AEAD suite). Tests use cheap parameters.
    pub fn seal_options(mut self, options: SealOptions) -> Self {
        self.seal_options = options;
        self
    }

    /// Reconnect backoff: the base and the cap of the retry schedule (defaults 250 ms and
    /// 30 s, `resilience.retry`). The n-th retry waits a random time up to
    /// `min(max, min * 2^n)` (full jitter), within the node's retry budget.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        self.security.resilience.retry.base = min;
        self.security.resilience.retry.cap = max.max(min);
        self
    }

    /// Transport settings (timeouts, limits); the defaults suit most nodes.
    pub fn transport_config(mut self, config: TransportConfig) -> Self {
        self.transport = config;
        self
    }

    /// Gossip settings (view sizes, timers, limits); the defaults suit most nodes.
    pub fn gossip_config(mut self, config: GossipConfig) -> Self {
        self.gossip = config;
        self
    }

    /// LAN discovery over mDNS: advertise the node and dial the Dawn nodes found on the local
    /// network (see [`MdnsStats`] and the crate docs). Off unless set here or by
    /// [`NodeBuilder::from_config`]; never run when the QUIC address is loopback.
    pub fn mdns(mut self, enabled: bool) -> Self {
        self.mdns = enabled;
        self
    }

    /// Whether the node hosts the built-in agents `echo`, `memory`, `directory` and `guide`
    /// (default on).
    pub fn builtin_agents(mut self, enabled: bool) -> Self {
        self.builtin_agents = enabled;
        self
    }

    /// The DNS-SD service type for mDNS discovery (default
    /// [`DEFAULT_MDNS_SERVICE`](crate::DEFAULT_MDNS_SERVICE)).
    pub fn mdns_service(mut self, service: MdnsService) -> Self {
        self.mdns_service = service;
        self
    }

    /// Starts the node: locks the data directory, loads or creates the key, opens the store,
    /// binds QUIC and HTTP, and starts dialling bootstrap and known peers.
    ///
    /// Returns once everything is bound; connections come up in the background.
    ///
    /// # Errors
    /// [`NodeError`]: the data directory is unusable or in use, the key cannot be opened
    /// ([`NodeError::PassphraseRequired`] for an encrypted key without a passphrase), the
    /// store cannot be opened, or an address cannot be bound.
    pub async fn start(self) -> Result<Node, NodeError> {
        let span = info_span!("dawn.node.start");
        self.start_inner().instrument(span).await
    }

    async fn start_inner(self) -> Result<Node, NodeError> {
        let data_dir = match self.data_dir.clone() {
            Some(dir) => dir,
            None => Config::default().data_dir()?,
        };
        let passphrase = self.passphrase.clone();
        let development = self.development;
        let seal_options = self.seal_options;
        let dir = data_dir.clone();
        let (lock, key, outcome, store, records) = blocking(move || {
            let lock = prepare_data_dir(&dir)?;
            let (key, outcome) = load_or_create(
                &key_path(&dir),
                passphrase.as_ref(),
                development,
                &seal_options,
            )?;
            let store = Store::open(dir.join(DB_FILE_NAME))?;
            let now = SystemTime::now();
            if let Some(cutoff) = now.checked_sub(PRUNE_AFTER)
                && let Err(error) = store.peers().prune(cutoff, 1)
            {
                warn!(%error, "could not prune old peers");
            }
            let records = store.peers().list(MAX_KNOWN_PEERS)?;
            Ok::<_, NodeError>((lock, key, outcome, store, records))
        })
        .await??;
        let node_id: NodeId = key.verifying_key().into();
        match outcome {
            KeyOutcome::Created => info!(node = %node_id, "created a new node identity"),
            KeyOutcome::Loaded | KeyOutcome::Encrypted => {
                debug!(node = %node_id, "loaded the node identity");
            }
        }

        let gossip_key = key.clone();
        let agents_key = key.clone();
        let security = Security::open(
            key.clone(),
            store.clone(),
            self.security.clone(),
            &self.bootstrap,
        )
        .await?;
        // Every inbound peer is checked against the trust policy during the handshake.
        let mut transport_config = self.transport.clone();
        AcceptGate::install(&mut transport_config).open(&security);
        let transport = Transport::bind(key, self.listen, transport_config).map_err(|source| {
            NodeError::Bind {
                addr: self.listen,
                source,
            }
        })?;
        security.attach(&transport);
        let quic_addr = match transport.local_addr() {
            Ok(addr) => addr,
            Err(source) => {
                transport.close("start failed").await;
                return Err(NodeError::Bind {
                    addr: self.listen,
                    source: source.into(),
                });
            }
        };
        // The gossip stream handler goes in before anything can connect.
        let cancel = CancellationToken::new();
        let gossip_inbound = gossip::listen(&transport, cancel.clone());
        let (gossip_shared, gossip_commands) = GossipShared::new();
        let shared = Arc::new(Shared::new(
            node_id,
            vec![quic_addr],
            gossip_shared,
            Arc::clone(&security),
        ));
        shared.metrics.attach(&shared);
        security.attach_metrics(&shared.metrics);
        let (agent_host, registry_inbound) = match crate::agents::listen(&transport, &shared) {
            Ok(listening) => listening,
            Err(error) => {
                transport.close("start failed").await;
                return Err(error);
            }
        };
        let loaded = shared.table().load(records.into_iter().map(from_store));

        let http_listener = match self.http {
            Some(addr) => match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => Some(listener),
                Err(source) => {
                    transport.close("start failed").await;
                    return Err(NodeError::HttpBind { addr, source });
                }
            },
            None => None,
        };
        let http_addr = match &http_listener {
            Some(listener) => match listener.local_addr() {
                Ok(addr) => Some(addr),
                Err(source) => {
                    transport.close("start failed").await;
                    return Err(NodeError::HttpBind {
                        addr: self.http.unwrap_or(DEFAULT_HTTP),
                        source,
                    });
                }
            },
            None => None,
        };
        if let Some(addr) = http_addr {
            security.note_http(addr);
            let _ = shared.http_addr.set(addr);
        }

        let tasks = TaskTracker::new();
        let (store_tx, store_rx) = mpsc::channel(STORE_QUEUE);
        let agents_store = store.clone();
        let writer = tokio::spawn(
            store_writer(store, store_rx).instrument(info_span!(parent: None, "dawn.node.store")),
        );
        let inner = Arc::new(Inner {
            shared: Arc::clone(&shared),
            transport: transport.clone(),
            store: store_tx,
            cancel: cancel.clone(),
            tasks: tasks.clone(),
        });
        security.spawn_ticker(&tasks, cancel.clone());

        // Subscribe before anything can connect, so no event is missed.
        let events = transport.subscribe();
        let gossip_events = transport.subscribe();
        tasks.spawn(
            Arc::clone(&inner)
                .run_events(events)
                .instrument(info_span!(parent: None, "dawn.node.events")),
        );
        let http_task = match http_listener.zip(http_addr) {
            Some((listener, addr)) => {
                let router = http::router(Arc::clone(&shared), addr);
                Some(tokio::spawn(http::serve(listener, router, cancel.clone())))
            }
            None => None,
        };

        let now = now_unix_ms();
        for peer in &self.bootstrap {
            let addrs: Vec<SocketAddr> = peer.socket_addr().into_iter().collect();
            let change = shared.table().add_bootstrap(peer.node_id(), &addrs, now);
            if let Some(change) = change {
                inner.persist_known(change).await;
            }
        }
        for peer in self.bootstrap.iter().filter(|p| p.node_id() != node_id) {
            inner.spawn_maintainer(Target::Bootstrap(peer.clone()));
        }
        let redials: Vec<NodeId> = {
            let table = shared.table();
            let mut ids = table.redial_candidates(MAX_REDIAL_FAILURES);
            ids.truncate(MAX_REDIALS);
            ids
        };
        for id in &redials {
            inner.spawn_maintainer(Target::Known(*id));
        }
        let join: Vec<NodeId> = self
            .bootstrap
            .iter()
            .map(BootstrapPeer::node_id)
            .filter(|id| *id != node_id)
            .chain(redials.iter().copied())
            .collect();
        let started = gossip::start(GossipContext {
            key: gossip_key,
            config: self.gossip.clone(),
            transport: transport.clone(),
            shared: Arc::clone(&shared),
            cancel: cancel.clone(),
            tasks: tasks.clone(),
            events: gossip_events,
            commands: gossip_commands,
            inbound: gossip_inbound,
            join,
        });
        if let Err(error) = started {
            cancel.cancel();
            transport.close("start failed").await;
            return Err(NodeError::Gossip(error));
        }
        let agents = crate::agents::start(
            agent_host,
            crate::agents::AgentsContext {
                key: agents_key,
                shared: Arc::clone(&shared),
                transport: transport.clone(),
                store: agents_store,
                cancel: cancel.clone(),
                tasks: tasks.clone(),
                inbound: registry_inbound,
                builtin: self.builtin_agents,
            },
        )
        .await;
        match agents {
            Ok(agents) => {
                let _ = shared.agents.set(agents);
            }
            Err(error) => {
                cancel.cancel();
                transport.close("start failed").await;
                return Err(error);
            }
        }
        crate::chat::start(&shared, &tasks, &cancel, &data_dir);
        crate::events::spawn_peer_watch(Arc::clone(&shared), &tasks, cancel.clone());
        let discovery = if self.mdns {
            mdns::start(MdnsContext {
                node_id,
                local: quic_addr,
                service: self.mdns_service.clone(),
                transport: transport.clone(),
                cancel: cancel.clone(),
                tasks: tasks.clone(),
            })
        } else {
            None
        };

        info!(
            node = %node_id,
            quic = %quic_addr,
            http = ?http_addr,
            data_dir = %data_dir.display(),
            bootstrap = self.bootstrap.len(),
            known_peers = loaded,
            redialling = redials.len(),
            mdns = discovery.is_some(),
            "node started"
        );
        Ok(Node {
            inner,
            data_dir,
            discovery,
            http_task,
            writer: Some(writer),
            lock: Some(lock),
        })
    }
}

/// A running Dawn node.
///
/// Stop it with [`Node::shutdown`], which closes connections and flushes the store; dropping
/// a `Node` stops its tasks and closes its connections abruptly.
///
/// ```no_run
/// use dawn_node::NodeBuilder;
///
/// # async fn run() -> Result<(), dawn_node::NodeError> {
/// let node = NodeBuilder::new()
///     .data_dir("/tmp/dawn-example")
///     .listen("127.0.0.1:0".parse().unwrap())
///     .http(Some("127.0.0.1:0".parse().unwrap()))
///     .start()
///     .await?;
/// println!("{} listening on {}", node.node_id(), node.quic_addr());
/// node.shutdown().await
/// # }
/// ```
#[derive(Debug)]
pub struct Node {
    inner: Arc<Inner>,
    data_dir: PathBuf,
    discovery: Option<Discovery>,
    http_task: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    lock: Option<File>,
}

impl Node {
    /// The state shared with the node's tasks, for modules that add to `Node`.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// This node's identity.
    #[must_use]
    pub fn node_id(&self) -> NodeId {
        self.inner.shared.node_id
    }

    /// The bound QUIC (UDP) address, with the real port when started on port 0.
    #[must_use]
    pub fn quic_addr(&self) -> SocketAddr {
        self.inner
            .shared
            .listen_addrs
            .first()
            .copied()
            .unwrap_or(DEFAULT_LISTEN)
    }

    /// The bound HTTP address, if the node serves HTTP.
    #[must_use]
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.inner.shared.http_addr.get().copied()
    }

    /// The data directory.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The node's status, as `GET /api/status` shows it.
    #[must_use]
    pub fn status(&self) -> NodeStatus {
        self.inner.shared.status()
    }

    /// Every known peer, connected first, as `GET /api/peers` shows them.
    #[must_use]
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.inner.shared.peers()
    }

    /// Subscribes to a gossip topic: deliveries of messages broadcast on it by other nodes
    /// arrive on the returned [`Subscription`] (this node's own broadcasts are not delivered
    /// back). Subscribing again to the same topic gives another receiver.
    ///
    /// # Errors
    /// [`GossipError`]: invalid topic name, too many topics, or the node is stopping.
    pub async fn subscribe(&self, topic: &str) -> Result<Subscription, GossipError> {
        self.inner.shared.gossip.subscribe(topic).await
    }

    /// Broadcasts `payload` on `topic` to every node subscribed to it, signed with the node
    /// key. Returns the message's id.
    ///
    /// # Errors
    /// [`GossipError`]: invalid topic name, payload too large, or the node is stopping.
    pub async fn broadcast(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
    ) -> Result<MessageId, GossipError> {
        self.inner
            .shared
            .gossip
            .broadcast(topic, payload.into())
            .await
    }

    /// The gossip active view (neighbours) and passive view.
    #[must_use]
    pub fn gossip_views(&self) -> (Vec<NodeId>, Vec<NodeId>) {
        self.inner.shared.gossip.views()
    }

    /// The gossip driver's counters.
    #[must_use]
    pub fn gossip_stats(&self) -> GossipStats {
        self.inner.shared.gossip.stats()
    }

    /// The node's metrics, as `GET /metrics` renders them: record into it, or
    /// [`encode`](Metrics::encode) it without HTTP.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.inner.shared.metrics
    }

    /// The counters of LAN discovery over mDNS, or `None` when it is not running (off, a
    /// loopback QUIC address, or no mDNS daemon could start).
    #[must_use]
    pub fn mdns_stats(&self) -> Option<MdnsStats> {
        self.discovery.as_ref().map(Discovery::stats)
    }

    /// The transport, for protocols layered on top (request handlers, raw streams).
    #[must_use]
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// Dials `peer` at `addrs` now (or returns at once if already connected).
    ///
    /// The peer is recorded in the store, so it is redialled after a restart; the connection
    /// stays up until either side closes it. For a peer that must stay connected, use a
    /// bootstrap peer.
    ///
    /// # Errors
    /// [`NodeError::Connect`] if the dial fails (the failure is counted for the peer).
    pub async fn connect(&self, peer: NodeId, addrs: &[SocketAddr]) -> Result<(), NodeError> {
        let span = info_span!("dawn.node.dial", peer = %peer.fmt_short());
        async {
            let addrs: Vec<SocketAddr> = addrs.iter().copied().take(MAX_DIAL_ADDRS).collect();
            match self.inner.transport.connect(peer, &addrs).await {
                Ok(connection) => {
                    self.inner.shared.security.record_outcome(&peer, true);
                    self.inner.on_connected(&connection).await;
                    Ok(())
                }
                Err(source) => {
                    self.inner.shared.security.record_outcome(&peer, false);
                    self.inner.on_dial_failed(peer, &addrs).await;
                    Err(NodeError::Connect {
                        peer: Box::new(peer),
                        source: Box::new(source),
                    })
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Shuts down gracefully: stops dialling and serving HTTP, closes every connection with a
    /// shutdown code, records the peers' last-seen times, and flushes and closes the store.
    ///
    /// # Errors
    /// [`NodeError::Task`] if a background task panicked; the node is stopped regardless.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        let span = info_span!("dawn.node.shutdown", node = %self.node_id().fmt_short());
        self.shutdown_inner().instrument(span).await
    }

    async fn shutdown_inner(&mut self) -> Result<(), NodeError> {
        info!("shutting down");
        // mDNS goodbye first, so LAN peers stop dialling before the connections close.
        if let Some(discovery) = self.discovery.take() {
            discovery.stop().await;
        }
        let inner = Arc::clone(&self.inner);
        // Tell the gossip neighbours first, while the transport is still up.
        inner.shared.gossip.leave().await;
        inner.cancel.cancel();
        inner.tasks.close();
        let mut failure = None;
        if let Some(mut http) = self.http_task.take() {
            match tokio::time::timeout(SHUTDOWN_STAGE_TIMEOUT, &mut http).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => failure = Some(error.to_string()),
                Err(_) => {
                    warn!("HTTP requests still running after the grace period; closing them");
                    http.abort();
                }
            }
        }
        if tokio::time::timeout(
            SHUTDOWN_STAGE_TIMEOUT,
            inner.transport.close("node shutting down"),
        )
        .await
        .is_err()
        {
            warn!("the transport did not close in time");
        }
        if tokio::time::timeout(SHUTDOWN_STAGE_TIMEOUT, inner.tasks.wait())
            .await
            .is_err()
        {
            warn!("node tasks did not stop in time");
        }
        // The transport reports no disconnects once closed; record them here.
        let now = now_unix_ms();
        let changes: Vec<Change> = {
            let mut table = inner.shared.table();
            table
                .connections()
                .into_iter()
                .filter_map(|(id, connection)| table.disconnected(id, connection, now))
                .collect()
        };
        for change in changes {
            inner.persist_seen(change, now).await;
        }
        // The audit log's last entry and the trust records, before the store closes.
        inner.shared.security.close().await;
        let (done_tx, done_rx) = oneshot::channel();
        if inner.store.send(StoreOp::Close(done_tx)).await.is_ok() {
            let _ = done_rx.await;
        }
        if let Some(writer) = self.writer.take()
            && let Err(error) = writer.await
        {
            failure = Some(error.to_string());
        }
        // Closing the file releases the lock.
        drop(self.lock.take());
        info!("node stopped");
        match failure {
            Some(error) => Err(NodeError::Task(error)),
            None => Ok(()),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.inner.cancel.cancel();
    }
}

/// Creates the data directory (0700) and takes its lock.
fn prepare_data_dir(dir: &Path) -> Result<File, NodeError> {
    let io = |source| NodeError::DataDir {
        path: dir.to_owned(),
        source,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io)?;
    let lock_path = dir.join(LOCK_FILE_NAME);
    let mut lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(NodeError::DataDirInUse {
                path: dir.to_owned(),
                lock: lock_path,
            });
        }
        Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
    }
    // The pid helps an operator find the holder; failing to write it is harmless.
    let _ = lock
        .set_len(0)
        .and_then(|()| writeln!(lock, "{}", std::process::id()));
    Ok(lock)
}

/// Runs blocking work (files, SQLite, Argon2id) off the async runtime.
async fn blocking<T, F>(work: F) -> Result<T, NodeError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| NodeError::Task(e.to_string()))
}

fn to_system_time(unix_ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(unix_ms)
}

fn to_unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_store(record: dawn_store::PeerRecord) -> PeerRecord {
    PeerRecord {
        node_id: record.id,
        addresses: record.addrs,
        first_seen_unix_ms: to_unix_ms(record.first_seen),
        last_seen_unix_ms: record.last_seen.map(to_unix_ms),
        failures: record.failures,
    }
}

/// Addresses the store accepts: dialable ones.
fn storable(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    addrs
        .iter()
        .copied()
        .filter(|a| a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_multicast())
        .take(dawn_store::MAX_PEER_ADDRS)
        .collect()
}

/// A write for the store task.
#[derive(Debug)]
enum StoreOp {
    /// The peer is reachable at these addresses (creates it if new).
    Known { id: NodeId, addrs: Vec<SocketAddr> },
    /// A successful contact at this time.
    Seen { id: NodeId, at: SystemTime },
    /// A failed dial at this time.
    Failed { id: NodeId, at: SystemTime },
    /// The peer was forgotten.
    Forget { id: NodeId },
    /// Write everything queued, close the database, then answer.
    Close(oneshot::Sender<()>),
}

/// Applies store writes in order, in batches, on a blocking thread.
async fn store_writer(store: Store, mut rx: mpsc::Receiver<StoreOp>) {
    let mut store = Some(store);
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, 64).await > 0 {
        let close = batch.iter().position(|op| matches!(op, StoreOp::Close(_)));
        let mut reply = None;
        if let Some(index) = close {
            if let StoreOp::Close(tx) = batch.remove(index) {
                reply = Some(tx);
            }
            // Nothing is queued after a close.
            batch.truncate(index);
        }
        let ops = std::mem::take(&mut batch);
        let closing = reply.is_some();
        let Some(current) = store.take() else { break };
        let result = tokio::task::spawn_blocking(move || {
            apply(&current, ops);
            if closing {
                // Dropping the last handle closes SQLite, which checkpoints the WAL.
                drop(current);
                None
            } else {
                Some(current)
            }
        })
        .await;
        match result {
            Ok(next) => store = next,
            Err(error) => {
                warn!(%error, "store task failed; peer changes are no longer saved");
                return;
            }
        }
        if let Some(reply) = reply {
            debug!("store flushed and closed");
            let _ = reply.send(());
            return;
        }
    }
}

fn apply(store: &Store, ops: Vec<StoreOp>) {
    let peers = store.peers();
    for op in ops {
        let result = match &op {
            StoreOp::Known { id, addrs } => peers.upsert(id, addrs, SystemTime::now()),
            StoreOp::Seen { id, at } => peers.record_success(id, *at).map(|_| ()),
            StoreOp::Failed { id, at } => peers.record_failure(id, *at).map(|_| ()),
            StoreOp::Forget { id } => peers.remove(id).map(|_| ()),
            StoreOp::Close(_) => Ok(()),
        };
        if let Err(error) = result {
            warn!(%error, ?op, "could not save a peer change");
        }
    }
}

/// Whom a maintainer keeps connected.
#[derive(Debug, Clone)]
enum Target {
    /// A configured bootstrap peer: redialled forever, its host resolved at each attempt.
    Bootstrap(BootstrapPeer),
    /// A peer known from the store: redialled until it fails too often in a row.
    Known(NodeId),
}

impl Target {
    fn node_id(&self) -> NodeId {
        match self {
            Self::Bootstrap(peer) => peer.node_id(),
            Self::Known(id) => *id,
        }
    }
}

/// What the node's tasks share.
#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    transport: Transport,
    store: mpsc::Sender<StoreOp>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Inner {
    async fn persist(&self, op: StoreOp) {
        if self.store.send(op).await.is_err() {
            debug!("store closed; change not saved");
        }
    }

    async fn persist_known(&self, change: Change) {
        if let Some(evicted) = change.evicted {
            self.persist(StoreOp::Forget { id: evicted }).await;
        }
        let addrs = storable(&change.record.addresses);
        self.persist(StoreOp::Known {
            id: change.record.node_id,
            addrs,
        })
        .await;
    }

    async fn persist_seen(&self, change: Change, now: u64) {
        let id = change.record.node_id;
        self.persist_known(change).await;
        self.persist(StoreOp::Seen {
            id,
            at: to_system_time(now),
        })
        .await;
    }

    async fn on_connected(&self, connection: &Connection) {
        let peer = connection.peer();
        let direction = match connection.direction() {
            dawn_transport::Direction::Inbound => Direction::Inbound,
            _ => Direction::Outbound,
        };
        let now = now_unix_ms();
        let change = self.shared.table().connected(
            peer,
            connection.id(),
            direction,
            connection.remote_addr(),
            now,
        );
        if let Some(change) = change {
            info!(
                peer = %peer.fmt_short(),
                direction = direction.as_str(),
                addr = %connection.remote_addr(),
                "peer connected"
            );
            // Audited; a peer the trust policy refuses is disconnected again.
            self.shared.security.on_connected(connection);
            self.persist_seen(change, now).await;
        }
    }

    async fn on_disconnected(&self, peer: NodeId, connection: u64, reason: &str) {
        let now = now_unix_ms();
        let change = self.shared.table().disconnected(peer, connection, now);
        if let Some(change) = change {
            info!(peer = %peer.fmt_short(), %reason, "peer disconnected");
            self.persist_seen(change, now).await;
        }
    }

    async fn on_dial_failed(&self, peer: NodeId, addrs: &[SocketAddr]) {
        let change = self.shared.table().dial_failed(peer);
        let Some(change) = change else { return };
        if change.record.addresses.is_empty() && !addrs.is_empty() {
            // Remember where we tried, so the failure count has a row to live in.
            self.persist(StoreOp::Known {
                id: peer,
                addrs: storable(addrs),
            })
            .await;
        } else {
            self.persist_known(change).await;
        }
        self.persist(StoreOp::Failed {
            id: peer,
            at: SystemTime::now(),
        })
        .await;
    }

    /// Follows the transport's connection events into the peer table and the store.
    async fn run_events(self: Arc<Self>, mut events: broadcast::Receiver<TransportEvent>) {
        loop {
            let event = tokio::select! {
                () = self.cancel.cancelled() => break,
                event = events.recv() => event,
            };
            match event {
                Ok(TransportEvent::Connected(connection)) => self.on_connected(&connection).await,
                Ok(TransportEvent::Disconnected {
                    peer,
                    connection_id,
                    reason,
                }) => {
                    self.on_disconnected(peer, connection_id, &reason.to_string())
                        .await;
                }
                Ok(TransportEvent::InboundFailed { remote, error }) => {
                    debug!(%remote, %error, "inbound connection failed");
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    warn!(
                        missed,
                        "fell behind the transport's events; resynchronising"
                    );
                    self.resync().await;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    }

    /// Rebuilds the connected state of the table from the transport's pool.
    async fn resync(&self) {
        let pooled = self.transport.connections();
        for connection in &pooled {
            self.on_connected(connection).await;
        }
        let stale: Vec<(NodeId, u64)> = self
            .shared
            .table()
            .connections()
            .into_iter()
            .filter(|(id, c)| !pooled.iter().any(|p| p.peer() == *id && p.id() == *c))
            .collect();
        for (id, connection) in stale {
            self.on_disconnected(id, connection, "closed while events were missed")
                .await;
        }
    }

    fn spawn_maintainer(self: &Arc<Self>, target: Target) {
        let span = info_span!(parent: None, "dawn.node.dial", peer = %target.node_id().fmt_short());
        self.tasks
            .spawn(Arc::clone(self).maintain(target).instrument(span));
    }

    /// Keeps one peer connected: waits while a connection is up, dials when none is, and
    /// after failures backs off with full jitter within the node's retry budget. A peer whose
    /// circuit breaker is open is not dialled until it half-opens; a peer the trust policy
    /// refuses is not dialled at all.
    async fn maintain(self: Arc<Self>, target: Target) {
        let peer = target.node_id();
        let persistent = matches!(target, Target::Bootstrap(_));
        let security = Arc::clone(&self.shared.security);
        let limit = (!persistent).then_some(MAX_REDIAL_FAILURES);
        let mut retry = match security.dial_retry(limit) {
            Ok(retry) => retry,
            Err(error) => {
                warn!(%error, "no retry schedule; not dialling the peer");
                return;
            }
        };
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            if let Some(connection) = self.transport.connection(&peer) {
                tokio::select! {
                    () = self.cancel.cancelled() => return,
                    _ = connection.closed() => {}
                }
                // A new series of dials: the retry starts over and earns the budget.
                retry.reset(Instant::now());
                security.dial_series();
                continue;
            }
            let blocked = match security.dial_allowed(&peer) {
                Ok(()) => None,
                Err(DialBlocked::Breaker(retry_after)) => Some(retry_after),
                Err(DialBlocked::Refused) if persistent => Some(self.shared.security.retry_cap()),
                Err(DialBlocked::Refused) => {
                    info!("the trust policy refuses the peer; not dialling it");
                    return;
                }
            };
            if let Some(wait) = blocked {
                debug!(
                    retry_in_ms = wait.as_millis(),
                    "not dialling the peer for now"
                );
                tokio::select! {
                    () = self.cancel.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            let addrs = self.dial_addrs(&target).await;
            let result = tokio::select! {
                () = self.cancel.cancelled() => return,
                result = self.transport.connect(peer, &addrs) => result,
            };
            match result {
                Ok(connection) => {
                    security.record_outcome(&peer, true);
                    debug!(attempts = retry.failures() + 1, "dial succeeded");
                    self.on_connected(&connection).await;
                }
                Err(error) => {
                    security.record_outcome(&peer, false);
                    self.on_dial_failed(peer, &addrs).await;
                    let wait = loop {
                        match security.next_dial_delay(&mut retry) {
                            Ok(wait) => break wait,
                            // A bootstrap peer is never given up: wait for the budget.
                            Err(RetryError::Budget { retry_after }) if persistent => {
                                tokio::select! {
                                    () = self.cancel.cancelled() => return,
                                    () = tokio::time::sleep(retry_after) => {}
                                }
                            }
                            Err(stop) => {
                                info!(%error, %stop, "giving up on the peer until the next start");
                                return;
                            }
                        }
                    };
                    debug!(%error, failures = retry.failures(), retry_in_ms = wait.as_millis(), "dial failed");
                    tokio::select! {
                        () = self.cancel.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Addresses to try: a bootstrap peer's configured address (resolved now), then the
    /// addresses the peer was last seen at.
    async fn dial_addrs(&self, target: &Target) -> Vec<SocketAddr> {
        let mut addrs = Vec::new();
        if let Target::Bootstrap(peer) = target {
            match peer.socket_addr() {
                Some(addr) => addrs.push(addr),
                None => match tokio::net::lookup_host((peer.host(), peer.port())).await {
                    Ok(resolved) => addrs.extend(resolved.take(MAX_DIAL_ADDRS)),
                    Err(error) => {
                        debug!(host = peer.host(), %error, "cannot resolve the bootstrap host");
                    }
                },
            }
        }
        for addr in self.shared.table().addresses(&target.node_id()) {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        addrs.truncate(MAX_DIAL_ADDRS);
        addrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storable_drops_undialable_addresses() {
        let addrs: Vec<SocketAddr> = ["0.0.0.0:1", "127.0.0.1:0", "224.0.0.1:5", "127.0.0.1:5"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(storable(&addrs), vec!["127.0.0.1:5".parse().unwrap()]);
    }

    #[test]
    fn a_data_dir_is_locked_by_one_node() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        let lock = prepare_data_dir(&sub).unwrap();
        assert!(matches!(
            prepare_data_dir(&sub),
            Err(NodeError::DataDirInUse { .. })
        ));
        drop(lock);
        prepare_data_dir(&sub).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&sub).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }
}
