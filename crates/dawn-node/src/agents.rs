//! Agents on the mesh: this node's MCP agents, the replicated directory of every node's
//! agents, calls across nodes over QUIC, and the MCP gateway.
//!
//! - **Hosting.** An [`AgentHost`] holds this node's agents (the built-in `echo`, `memory`,
//!   `directory` and `guide`, plus any the application adds). Peers reach them on
//!   [`dawn_mcp::STREAM_PROTOCOL`] streams; every session and every tool call is checked by
//!   the node's trust policy and audited ([`NodePolicy`]).
//! - **Directory.** A driver task runs the sans-IO [`Registry`]: local agents become signed
//!   deltas broadcast on gossip topic [`dawn_registry::GOSSIP_TOPIC`]; reconciliation
//!   messages travel as requests on [`dawn_registry::STREAM_PROTOCOL`]; the state is saved in
//!   the store and reloaded at start.
//! - **Calls.** [`NodeMesh`] opens agents for the gateway and the REST API: in process for
//!   this node's agents, over a QUIC stream for a peer's.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dawn_crypto::SigningKey;
use dawn_identity::{AgentAddr, AgentId, NodeId};
use dawn_mcp::{
    AccessPolicy, Action, Agent, AgentClient, AgentHost, AgentInfo, CallError, Caller, Denied,
    DirectoryAgent, DirectoryEntry, DirectorySource, EchoAgent, GatewayConfig, GuideAgent,
    HostConfig, MemoryAgent, MemoryBackend, Mesh, MeshGateway, OpenFuture, connect_agent,
};
use dawn_registry::{
    AgentRecord, Event as RegistryEvent, PromptSummary, Registry, RegistryConfig, ResourceSummary,
    ToolSummary, Transmit,
};
use dawn_store::Store;
use dawn_transport::{HandlerError, RequestContext, Transport, TransportEvent};
use dawn_trust::Permission;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, debug, info_span, warn};

use crate::events::EventKind;
use crate::node::Shared;
use crate::peers::now_unix_ms;

/// How long describing this node's own agents may take at start.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a session with a remote agent may take, dial included.
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Registry messages from peers waiting for the driver; more are refused as busy.
const INBOUND_QUEUE: usize = 256;
/// How often the directory is saved to the store when it changed.
const SAVE_INTERVAL: Duration = Duration::from_secs(10);
/// The longest the driver sleeps without looking at its timers.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Makes a built-in agent, given its id.
type MakeAgent<'a> = Box<dyn FnOnce(AgentId) -> Agent + 'a>;

/// This node's agents and its view of everyone else's.
pub(crate) struct Agents {
    core: Arc<Core>,
    gateway: MeshGateway,
    endpoints: crate::gateway::McpEndpoints,
}

/// What the gateway's [`Mesh`] needs: everything but the gateway itself.
struct Core {
    node_id: NodeId,
    host: AgentHost,
    registry: Mutex<Registry>,
    transport: Transport,
    shared: std::sync::Weak<Shared>,
    /// Wakes the driver after a local change.
    wake: Notify,
    /// Bumped on every local change; the driver saves when it moved.
    changes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents")
            .field("node_id", &self.core.node_id.fmt_short())
            .field("agents", &self.core.host.list().len())
            .finish_non_exhaustive()
    }
}

/// An agent could not be added to or removed from the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The host refused it (duplicate id, too many agents).
    #[error(transparent)]
    Host(#[from] dawn_mcp::AddAgentError),
    /// Its directory entry could not be made (it does not describe itself in time, or its
    /// summary breaks a directory bound).
    #[error("agent {agent} cannot be published: {reason}")]
    Publish {
        /// The agent.
        agent: AgentId,
        /// Why.
        reason: String,
    },
}

/// One node in [`Directory`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DirectoryNode {
    /// The node's id.
    pub node_id: NodeId,
    /// Whether it is this node.
    pub local: bool,
    /// Whether it is this node or connected to it now.
    pub online: bool,
    /// Its agents, by id.
    pub agents: Vec<DirectoryAgentInfo>,
}

/// One agent in [`Directory`]: what its node published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DirectoryAgentInfo {
    /// The agent's id on its node.
    pub agent_id: AgentId,
    /// Display name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The version its node gave it.
    pub version: u64,
    /// Its tool names.
    pub tools: Vec<String>,
    /// Its resource URIs.
    pub resources: Vec<String>,
    /// Its prompt names.
    pub prompts: Vec<String>,
}

/// The mesh directory as `GET /api/agents` shows it: every node with agents, this node
/// first, then online nodes, then by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Directory {
    /// The nodes.
    pub nodes: Vec<DirectoryNode>,
}

impl Directory {
    /// Every agent's address.
    #[must_use]
    pub fn addresses(&self) -> Vec<AgentAddr> {
        self.nodes
            .iter()
            .flat_map(|node| {
                node.agents
                    .iter()
                    .map(|agent| AgentAddr::new(node.node_id, agent.agent_id.clone()))
            })
            .collect()
    }
}

/// Everything [`start`] needs from the node.
pub(crate) struct AgentsContext {
    pub(crate) key: SigningKey,
    pub(crate) shared: Arc<Shared>,
    pub(crate) transport: Transport,
    pub(crate) store: Store,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) inbound: RegistryInbound,
    pub(crate) builtin: bool,
}

/// Registry messages that peers sent before the driver runs.
pub(crate) struct RegistryInbound(mpsc::Receiver<(NodeId, Bytes)>);

/// Registers the stream handler for agent sessions and the request handler for registry
/// reconciliation; called right after the transport is bound, before anything connects.
/// The agent host exists from here on, so a peer's early session is served.
pub(crate) fn listen(
    transport: &Transport,
    shared: &Arc<Shared>,
) -> Result<(AgentHost, RegistryInbound), crate::NodeError> {
    let policy = Arc::new(NodePolicy {
        shared: Arc::downgrade(shared),
    });
    let host = AgentHost::new(policy, HostConfig::default());
    let serving = host.clone();
    transport
        .register_stream_handler(dawn_mcp::STREAM_PROTOCOL, move |incoming| {
            let host = serving.clone();
            async move {
                let caller = Caller::Peer(incoming.peer());
                let (send, recv) = incoming.into_parts();
                if let Err(error) = host.serve_stream(caller, recv, send).await {
                    debug!(%error, %caller, "agent session refused or broken");
                }
            }
        })
        .map_err(|error| crate::NodeError::Agents(error.to_string()))?;
    let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
    let limiter = Arc::downgrade(shared);
    transport
        .register_request_handler(
            dawn_registry::STREAM_PROTOCOL,
            move |context: RequestContext, body: Bytes| {
                let tx = tx.clone();
                let limiter = limiter.clone();
                async move {
                    let peer = context.peer();
                    if let Some(shared) = limiter.upgrade()
                        && !shared.security.admit_gossip(
                            &peer,
                            body.len(),
                            crate::metrics::MessageKind::Registry,
                        )
                    {
                        return Err(HandlerError::new("rate limited"));
                    }
                    tx.try_send((peer, body))
                        .map_err(|_| HandlerError::new("registry busy"))?;
                    Ok(Bytes::new())
                }
            },
        )
        .map_err(|error| crate::NodeError::Agents(error.to_string()))?;
    Ok((host, RegistryInbound(rx)))
}

/// Starts the directory driver, loads the saved directory and publishes the built-in
/// agents.
pub(crate) async fn start(
    host: AgentHost,
    context: AgentsContext,
) -> Result<Arc<Agents>, crate::NodeError> {
    let AgentsContext {
        key,
        shared,
        transport,
        store,
        cancel,
        tasks,
        inbound,
        builtin,
    } = context;
    let node_id = shared.node_id;
    let now = Instant::now();
    let seed = u64::from_le_bytes(rand_seed());
    let sealer_key = key.clone();
    let mut registry = Registry::new(key, RegistryConfig::new(), seed, now, now_unix_ms())
        .map_err(|error| crate::NodeError::Agents(error.to_string()))?;
    let loading = store.clone();
    let saved = tokio::task::spawn_blocking(move || loading.registry().load())
        .await
        .ok()
        .and_then(|loaded| match loaded {
            Ok(saved) => saved,
            Err(error) => {
                warn!(%error, "could not load the saved directory");
                None
            }
        });
    if let Some(bytes) = saved {
        match registry.import_state(Instant::now(), &bytes) {
            Ok(report) => debug!(?report, "loaded the saved directory"),
            Err(error) => warn!(%error, "the saved directory is unusable; starting empty"),
        }
    }
    let core = Arc::new(Core {
        node_id,
        host,
        registry: Mutex::new(registry),
        transport: transport.clone(),
        shared: Arc::downgrade(&shared),
        wake: Notify::new(),
        changes: std::sync::atomic::AtomicU64::new(1),
    });
    let gateway = MeshGateway::new(
        Arc::new(NodeMesh(Arc::clone(&core))),
        GatewayConfig::default(),
    );
    let endpoints = crate::gateway::McpEndpoints::new(gateway.clone(), shared.http_addr(), &cancel);
    let agents = Arc::new(Agents {
        core,
        gateway,
        endpoints,
    });
    if builtin {
        agents.add_builtin(&store, &sealer_key).await;
    }
    agents.forget_unhosted();
    let subscription = shared.gossip.subscribe(dawn_registry::GOSSIP_TOPIC).await;
    let driver = Arc::clone(&agents);
    let events = transport.subscribe();
    tasks.spawn(
        async move {
            match subscription {
                Ok(subscription) => {
                    driver
                        .drive(subscription, events, inbound, store, cancel)
                        .await;
                }
                Err(error) => warn!(%error, "cannot follow the registry topic"),
            }
        }
        .instrument(info_span!(parent: None, "dawn.node.registry")),
    );
    Ok(agents)
}

fn rand_seed() -> [u8; 8] {
    let mut seed = [0; 8];
    // An all-zero seed only makes reconciliation peer choice predictable.
    let _ = getrandom::fill(&mut seed);
    seed
}

impl Agents {
    /// The gateway's streamable-HTTP endpoints.
    pub(crate) fn endpoints(&self) -> &crate::gateway::McpEndpoints {
        &self.endpoints
    }

    async fn add_builtin(&self, store: &Store, key: &SigningKey) {
        let directory_source = Arc::new(RegistrySource(Arc::downgrade(&self.core)));
        let sealer = dawn_store::Sealer::from_signing_key(key);
        let builtin: [(&str, MakeAgent<'_>); 4] = [
            ("echo", Box::new(|_| Agent::shared(EchoAgent::new()))),
            (
                "memory",
                Box::new(|agent| {
                    let backend: Arc<dyn MemoryBackend> = Arc::new(StoreMemory {
                        store: store.clone(),
                        sealer,
                        agent,
                    });
                    Agent::shared(MemoryAgent::new(backend))
                }),
            ),
            (
                "directory",
                Box::new(|_| Agent::shared(DirectoryAgent::new(directory_source))),
            ),
            ("guide", Box::new(|_| Agent::shared(GuideAgent::new()))),
        ];
        for (id, make) in builtin {
            let Ok(id) = id.parse::<AgentId>() else {
                continue;
            };
            let agent = make(id.clone());
            if let Err(error) = self.add(id.clone(), agent).await {
                warn!(agent = %id, %error, "could not add a built-in agent");
            }
        }
    }

    /// Withdraws the agents the saved directory lists for this node but that it no longer
    /// hosts (an application adds its own again after start).
    fn forget_unhosted(&self) {
        let hosted = self.core.host.list();
        let stale: Vec<AgentId> = self
            .core
            .registry()
            .local_agents()
            .map(|record| record.agent_id.clone())
            .filter(|id| !hosted.contains(id))
            .collect();
        for id in stale {
            debug!(agent = %id, "withdrawing an agent this node no longer hosts");
            let _ = self.core.registry().remove_local(Instant::now(), &id);
        }
        self.core.changed();
    }

    /// Adds `agent` as `id` and publishes it in the mesh directory.
    pub(crate) async fn add(&self, id: AgentId, agent: Agent) -> Result<(), AgentError> {
        self.core.host.add(id.clone(), agent)?;
        let deadline = tokio::time::Instant::now() + DESCRIBE_TIMEOUT;
        let info = match self.core.host.describe(&id, deadline).await {
            Ok(info) => info,
            Err(error) => {
                self.core.host.remove(&id);
                return Err(AgentError::Publish {
                    agent: id,
                    reason: error.to_string(),
                });
            }
        };
        let version = self.core.changes.load(std::sync::atomic::Ordering::Relaxed);
        let record = record_from(&info, version);
        let result = self.core.registry().upsert_local(Instant::now(), record);
        if let Err(error) = result {
            self.core.host.remove(&id);
            return Err(AgentError::Publish {
                agent: id,
                reason: error.to_string(),
            });
        }
        self.core.changed();
        Ok(())
    }

    /// Removes agent `id` from this node and from the directory; whether it was there.
    pub(crate) fn remove(&self, id: &AgentId) -> bool {
        let hosted = self.core.host.remove(id).is_some();
        let published = self
            .core
            .registry()
            .remove_local(Instant::now(), id)
            .unwrap_or(false);
        if hosted || published {
            self.core.changed();
        }
        hosted || published
    }

    /// The mesh directory.
    pub(crate) fn directory(&self) -> Directory {
        self.core.directory()
    }

    /// Opens a session with the agent at `addr` (pooled by the gateway).
    pub(crate) async fn client(
        &self,
        addr: &AgentAddr,
        deadline: tokio::time::Instant,
    ) -> Result<AgentClient, CallError> {
        self.gateway.client(addr, deadline).await
    }

    /// Runs the directory until `cancel` fires, then saves it.
    async fn drive(
        self: Arc<Self>,
        mut subscription: crate::gossip::Subscription,
        mut events: broadcast::Receiver<TransportEvent>,
        RegistryInbound(mut inbound): RegistryInbound,
        store: Store,
        cancel: CancellationToken,
    ) {
        let core = &self.core;
        for connection in core.transport.connections() {
            core.registry().peer_up(Instant::now(), connection.peer());
        }
        let mut saved = 0;
        let mut save_timer = tokio::time::interval(SAVE_INTERVAL);
        save_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.flush().await;
            let wake_at = core
                .registry()
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + MAX_SLEEP)
                .min(Instant::now() + MAX_SLEEP);
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep_until(wake_at.into()) => {
                    core.registry().handle_timeout(Instant::now());
                }
                () = core.wake.notified() => {}
                delivery = subscription.recv() => {
                    let Some(delivery) = delivery else { break };
                    let result = core.registry().handle_bytes(
                        Instant::now(),
                        delivery.origin,
                        &delivery.payload,
                    );
                    if let Err(error) = result {
                        debug!(peer = %delivery.origin.fmt_short(), %error, "registry delta refused");
                    }
                }
                message = inbound.recv() => {
                    let Some((peer, payload)) = message else { break };
                    let result = core.registry().handle_bytes(Instant::now(), peer, &payload);
                    if let Err(error) = result {
                        debug!(peer = %peer.fmt_short(), %error, "registry message refused");
                    }
                }
                event = events.recv() => match event {
                    Ok(TransportEvent::Connected(connection)) => {
                        core.registry().peer_up(Instant::now(), connection.peer());
                    }
                    Ok(TransportEvent::Disconnected { peer, .. }) => {
                        if core.transport.connection(&peer).is_none() {
                            core.registry().peer_down(&peer);
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        for connection in core.transport.connections() {
                            core.registry().peer_up(Instant::now(), connection.peer());
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = save_timer.tick() => {
                    let changes = core.changes.load(std::sync::atomic::Ordering::Relaxed);
                    if changes != saved {
                        saved = changes;
                        core.save(&store).await;
                    }
                }
            }
        }
        core.save(&store).await;
    }

    /// Sends what the registry wants sent and acts on its events.
    async fn flush(&self) {
        let core = &self.core;
        let Some(shared) = core.shared.upgrade() else {
            return;
        };
        loop {
            let transmit = core.registry().poll_transmit();
            let Some(transmit) = transmit else { break };
            match transmit {
                Transmit::Broadcast { payload } => {
                    if let Err(error) = shared
                        .gossip
                        .broadcast(dawn_registry::GOSSIP_TOPIC, payload)
                        .await
                    {
                        debug!(%error, "could not broadcast a registry delta");
                    }
                }
                Transmit::Send { to, payload } => {
                    if let Some(connection) = core.transport.connection(&to) {
                        tokio::spawn(async move {
                            if let Err(error) = connection
                                .request(dawn_registry::STREAM_PROTOCOL, payload)
                                .await
                            {
                                debug!(peer = %to.fmt_short(), %error, "registry message not delivered");
                            }
                        });
                    }
                }
                _ => {}
            }
        }
        let mut changed = false;
        loop {
            let event = core.registry().poll_event();
            let Some(event) = event else { break };
            match event {
                RegistryEvent::Changed { .. } | RegistryEvent::Expired { .. } => changed = true,
                RegistryEvent::Misbehaviour { peer, kind } => {
                    debug!(peer = %peer.fmt_short(), ?kind, "registry misbehaviour");
                    let gossip_kind = match kind {
                        dawn_registry::MisbehaviourKind::InvalidSignature
                        | dawn_registry::MisbehaviourKind::NotOwner
                        | dawn_registry::MisbehaviourKind::InvalidEntry
                        | dawn_registry::MisbehaviourKind::Equivocation => {
                            dawn_gossip::MisbehaviourKind::InvalidSignature
                        }
                        dawn_registry::MisbehaviourKind::Future => {
                            dawn_gossip::MisbehaviourKind::Future
                        }
                        _ => dawn_gossip::MisbehaviourKind::Malformed,
                    };
                    shared.security.misbehaviour(&peer, gossip_kind);
                }
                _ => {}
            }
        }
        if changed {
            core.changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.gateway.invalidate();
            let directory = core.directory();
            shared
                .metrics
                .set_registry_size(directory.nodes.iter().map(|n| n.agents.len()).sum());
            shared.events.publish(EventKind::Agents, &directory);
        }
    }
}

impl crate::Node {
    fn agents_running(&self) -> Result<&Arc<Agents>, crate::NodeError> {
        self.shared()
            .agents
            .get()
            .ok_or(crate::NodeError::AgentsUnavailable)
    }

    /// Adds an MCP agent to this node as `id` and publishes it in the mesh directory, so
    /// every node can call it as `<this node's id>:<id>` (subject to each call's trust
    /// check on this node).
    ///
    /// # Errors
    /// [`AgentError`] if the id is taken, the host is full, or the agent does not describe
    /// itself within 5 s; [`NodeError::AgentsUnavailable`](crate::NodeError::AgentsUnavailable)
    /// while the node starts or stops.
    pub async fn add_agent(&self, id: AgentId, agent: Agent) -> Result<(), crate::NodeError> {
        self.agents_running()?
            .add(id, agent)
            .await
            .map_err(|error| crate::NodeError::Agents(error.to_string()))
    }

    /// Removes agent `id` from this node and from the mesh directory; whether it was there.
    pub fn remove_agent(&self, id: &AgentId) -> bool {
        self.agents_running().is_ok_and(|agents| agents.remove(id))
    }

    /// The mesh directory: every node's published agents, as this node knows them.
    #[must_use]
    pub fn directory(&self) -> Directory {
        self.agents_running()
            .map(|agents| agents.directory())
            .unwrap_or_default()
    }

    /// An MCP session with the agent at `addr`, on this node or any other: in process for
    /// this node's agents, over a QUIC stream otherwise. Sessions are pooled and shared.
    ///
    /// # Errors
    /// [`CallError`]: unknown node or agent, unreachable, timed out, refused or denied by the
    /// agent's node.
    pub async fn agent_client(&self, addr: &AgentAddr) -> Result<AgentClient, CallError> {
        let agents = self
            .agents_running()
            .map_err(|error| CallError::Unreachable {
                reason: error.to_string(),
            })?;
        agents
            .client(addr, tokio::time::Instant::now() + OPEN_TIMEOUT)
            .await
    }
}

impl Core {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
    }

    fn online(&self, node: &NodeId) -> bool {
        *node == self.node_id || self.transport.connection(node).is_some()
    }

    fn directory(&self) -> Directory {
        let registry = self.registry();
        let mut nodes: Vec<DirectoryNode> = Vec::new();
        for owner in registry.owners() {
            let agents: Vec<DirectoryAgentInfo> = registry
                .agents_of(&owner)
                .map(|record| DirectoryAgentInfo {
                    agent_id: record.agent_id.clone(),
                    name: record.name.clone(),
                    description: record.description.clone(),
                    version: record.version,
                    tools: record.tools.iter().map(|t| t.name.clone()).collect(),
                    resources: record.resources.iter().map(|r| r.uri.clone()).collect(),
                    prompts: record.prompts.iter().map(|p| p.name.clone()).collect(),
                })
                .collect();
            if agents.is_empty() {
                continue;
            }
            nodes.push(DirectoryNode {
                node_id: owner,
                local: owner == self.node_id,
                online: false,
                agents,
            });
        }
        drop(registry);
        for node in &mut nodes {
            node.online = self.online(&node.node_id);
        }
        nodes.sort_by(|a, b| {
            b.local
                .cmp(&a.local)
                .then(b.online.cmp(&a.online))
                .then(a.node_id.cmp(&b.node_id))
        });
        Directory { nodes }
    }

    async fn save(&self, store: &Store) {
        let bytes = match self.registry().export_state() {
            Ok(bytes) => bytes,
            Err(error) => {
                warn!(%error, "could not export the directory");
                return;
            }
        };
        let store = store.clone();
        let result = tokio::task::spawn_blocking(move || store.registry().save(&bytes)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(%error, "could not save the directory"),
            Err(error) => warn!(%error, "could not save the directory"),
        }
    }

    async fn open(
        self: Arc<Self>,
        addr: AgentAddr,
        deadline: tokio::time::Instant,
    ) -> Result<AgentClient, CallError> {
        let node = *addr.node();
        if node == self.node_id {
            return self
                .host
                .connect(Caller::Local, addr.agent(), deadline)
                .await;
        }
        let connection = match self.transport.connection(&node) {
            Some(connection) => connection,
            None => {
                let addrs = self
                    .shared
                    .upgrade()
                    .map(|shared| shared.table().addresses(&node))
                    .unwrap_or_default();
                if addrs.is_empty() && self.registry().agents_of(&node).next().is_none() {
                    return Err(CallError::UnknownNode(node));
                }
                if addrs.is_empty() {
                    return Err(CallError::Unreachable {
                        reason: format!("no known address for node {}", node.fmt_short()),
                    });
                }
                let dial = self.transport.connect(node, &addrs);
                match tokio::time::timeout_at(deadline, dial).await {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(error)) => {
                        return Err(CallError::Unreachable {
                            reason: error.to_string(),
                        });
                    }
                    Err(_) => return Err(CallError::TimedOut),
                }
            }
        };
        let (send, recv) = match connection.open_stream(dawn_mcp::STREAM_PROTOCOL).await {
            Ok(stream) => stream,
            Err(error) => {
                return Err(CallError::Unreachable {
                    reason: error.to_string(),
                });
            }
        };
        connect_agent(recv, send, addr.agent(), deadline).await
    }
}

/// The node's [`Mesh`] for the gateway: the directory's agents, opened in process or over
/// QUIC.
struct NodeMesh(Arc<Core>);

impl Mesh for NodeMesh {
    fn agents(&self) -> Vec<AgentAddr> {
        let core = &self.0;
        let registry = core.registry();
        let addrs: Vec<AgentAddr> = registry
            .agents()
            .map(|(node, record)| AgentAddr::new(node, record.agent_id.clone()))
            .collect();
        drop(registry);
        addrs
            .into_iter()
            .filter(|addr| core.online(addr.node()))
            .collect()
    }

    fn open(&self, addr: &AgentAddr, deadline: tokio::time::Instant) -> OpenFuture {
        Box::pin(Arc::clone(&self.0).open(addr.clone(), deadline))
    }
}

/// The `directory` agent's view of the registry.
struct RegistrySource(std::sync::Weak<Core>);

impl DirectorySource for RegistrySource {
    fn agents(&self) -> Vec<DirectoryEntry> {
        let Some(core) = self.0.upgrade() else {
            return Vec::new();
        };
        let entries: Vec<(NodeId, AgentInfo)> = core
            .registry()
            .agents()
            .map(|(node, record)| (node, info_from(record)))
            .collect();
        entries
            .into_iter()
            .map(|(node, info)| {
                let online = core.online(&node);
                DirectoryEntry::new(node, info, online)
            })
            .collect()
    }
}

/// The node's access policy for its agents: the trust policy, audited.
pub(crate) struct NodePolicy {
    shared: std::sync::Weak<Shared>,
}

impl AccessPolicy for NodePolicy {
    fn check(&self, caller: &Caller, agent: &AgentId, action: Action<'_>) -> Result<(), Denied> {
        let Caller::Peer(peer) = caller else {
            // The node itself: its gateway and UI, which the HTTP server already limits
            // to loopback (or an operator-opened address).
            return Ok(());
        };
        let Some(shared) = self.shared.upgrade() else {
            return Err(Denied::new("the node is shutting down"));
        };
        // The request limit comes first: a flood is refused before the policy decides or
        // the audit log is written.
        shared
            .security
            .admit_call(peer)
            .map_err(Denied::rate_limited)?;
        let (permission, tool) = match action {
            Action::CallTool(tool) => (Permission::CallTools, Some(tool)),
            Action::Open | Action::List | Action::ReadResource(_) | Action::GetPrompt(_) => {
                (Permission::ReadAgents, None)
            }
            _ => (Permission::CallTools, None),
        };
        shared
            .security
            .authorize(*peer, permission, agent, tool)
            .map_err(|denied| Denied::new(denied.to_string()))
    }
}

/// The built-in `memory` agent's entries, kept in the store's agent data (values in the
/// clear, so that `search` can look inside them).
struct StoreMemory {
    store: Store,
    sealer: dawn_store::Sealer,
    agent: AgentId,
}

fn memory_error(error: impl std::fmt::Display) -> dawn_mcp::MemoryError {
    dawn_mcp::MemoryError::Backend(error.to_string())
}

fn memory_entry(record: dawn_store::AgentRecord) -> Option<dawn_mcp::MemoryEntry> {
    let key = dawn_mcp::MemoryKey::new(&record.key).ok()?;
    Some(dawn_mcp::MemoryEntry {
        key,
        value: String::from_utf8_lossy(&record.value).into_owned(),
    })
}

impl MemoryBackend for StoreMemory {
    fn put(&self, key: &dawn_mcp::MemoryKey, value: &str) -> Result<(), dawn_mcp::MemoryError> {
        self.store
            .agent_data(&self.sealer)
            .put(
                &self.agent,
                key.as_str(),
                value.as_bytes(),
                false,
                std::time::SystemTime::now(),
            )
            .map_err(memory_error)
    }

    fn get(&self, key: &dawn_mcp::MemoryKey) -> Result<Option<String>, dawn_mcp::MemoryError> {
        let record = self
            .store
            .agent_data(&self.sealer)
            .get(&self.agent, key.as_str())
            .map_err(memory_error)?;
        Ok(record.map(|record| String::from_utf8_lossy(&record.value).into_owned()))
    }

    fn delete(&self, key: &dawn_mcp::MemoryKey) -> Result<bool, dawn_mcp::MemoryError> {
        self.store
            .agent_data(&self.sealer)
            .delete(&self.agent, key.as_str())
            .map_err(memory_error)
    }

    fn search(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<dawn_mcp::MemoryEntry>, dawn_mcp::MemoryError> {
        let found = self
            .store
            .agent_data(&self.sealer)
            .search(&self.agent, query, limit)
            .map_err(memory_error)?;
        Ok(found.into_iter().filter_map(memory_entry).collect())
    }

    fn keys(&self, limit: usize) -> Result<Vec<dawn_mcp::MemoryKey>, dawn_mcp::MemoryError> {
        let records = self
            .store
            .agent_data(&self.sealer)
            .list(&self.agent, "", None, limit)
            .map_err(memory_error)?;
        Ok(records
            .into_iter()
            .filter_map(|record| dawn_mcp::MemoryKey::new(&record.key).ok())
            .collect())
    }
}

/// The directory record for an agent's self-description, cut to the directory's bounds.
fn record_from(info: &AgentInfo, version: u64) -> AgentRecord {
    use dawn_registry::{
        MAX_DESCRIPTION_LEN, MAX_NAME_LEN, MAX_SUMMARIES, MAX_SUMMARY_DESCRIPTION_LEN,
        MAX_SUMMARY_NAME_LEN, MAX_URI_LEN,
    };
    let mut record = AgentRecord::new(info.agent_id.clone(), cut(&info.name, MAX_NAME_LEN));
    record.description = cut(&info.description, MAX_DESCRIPTION_LEN);
    record.version = version;
    record.tools = info
        .tools
        .iter()
        .take(MAX_SUMMARIES)
        .map(|(name, description)| ToolSummary {
            name: cut(name, MAX_SUMMARY_NAME_LEN),
            description: cut(description, MAX_SUMMARY_DESCRIPTION_LEN),
        })
        .collect();
    record.resources = info
        .resources
        .iter()
        .take(MAX_SUMMARIES)
        .map(|(uri, name)| ResourceSummary {
            uri: cut(uri, MAX_URI_LEN),
            name: cut(name, MAX_SUMMARY_NAME_LEN),
        })
        .collect();
    record.prompts = info
        .prompts
        .iter()
        .take(MAX_SUMMARIES)
        .map(|(name, description)| PromptSummary {
            name: cut(name, MAX_SUMMARY_NAME_LEN),
            description: cut(description, MAX_SUMMARY_DESCRIPTION_LEN),
        })
        .collect();
    fit(&mut record);
    record
}

/// Shrinks `record` until its whole encoding is within the directory's bound: shorter item
/// descriptions first, then fewer prompts, resources and tools (the agent itself still
/// lists everything over MCP).
fn fit(record: &mut AgentRecord) {
    let mut limit = dawn_registry::MAX_SUMMARY_DESCRIPTION_LEN;
    while matches!(
        record.validate(),
        Err(dawn_registry::RecordError::TooLarge { .. })
    ) {
        if limit > 16 {
            limit /= 2;
            for tool in &mut record.tools {
                tool.description = cut(&tool.description, limit);
            }
            for prompt in &mut record.prompts {
                prompt.description = cut(&prompt.description, limit);
            }
        } else if record.prompts.pop().is_none()
            && record.resources.pop().is_none()
            && record.tools.pop().is_none()
        {
            break;
        }
    }
}

/// An agent's summary as the `directory` agent shows it.
fn info_from(record: &AgentRecord) -> AgentInfo {
    let mut info = AgentInfo::new(record.agent_id.clone(), &record.name, &record.description);
    info.tools = record
        .tools
        .iter()
        .map(|t| (t.name.clone(), t.description.clone()))
        .collect();
    info.resources = record
        .resources
        .iter()
        .map(|r| (r.uri.clone(), r.name.clone()))
        .collect();
    info.prompts = record
        .prompts
        .iter()
        .map(|p| (p.name.clone(), p.description.clone()))
        .collect();
    info
}

/// `text` cut to at most `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_respects_character_boundaries() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("abc", 10), "abc");
    }

    #[test]
    fn records_are_cut_to_the_directory_bounds() {
        let mut info = AgentInfo::new("big".parse().unwrap(), "Big", "");
        info.description = "x".repeat(dawn_registry::MAX_DESCRIPTION_LEN * 2);
        info.tools = (0..dawn_registry::MAX_SUMMARIES + 5)
            .map(|i| (format!("tool{i}"), "d".repeat(10_000)))
            .collect();
        let record = record_from(&info, 7);
        record.validate().unwrap();
        assert!(!record.tools.is_empty());
        assert!(record.tools.len() <= dawn_registry::MAX_SUMMARIES);
        assert_eq!(record.version, 7);
        let back = info_from(&record);
        assert_eq!(back.tools.len(), record.tools.len());
        // A small agent is published whole.
        let mut small = AgentInfo::new("small".parse().unwrap(), "Small", "does little");
        small.tools = vec![("one".into(), "the first".into())];
        let record = record_from(&small, 1);
        assert_eq!(record.tools[0].description, "the first");
    }
}
