//! The node's security: whom it trusts ([`TrustTable`]), what each peer may do ([`Policy`]),
//! the signed, hash-chained audit log of every decision ([`AuditChain`], persisted in the
//! store), and the resilience state (dial retries, breakers, inbound rate limits, health).
//!
//! Enforcement points, each audited:
//!
//! - **Connection accept**: the transport asks [`AcceptGate`] about every authenticated
//!   inbound peer before the `Hello`; a peer the policy does not allow to `connect` (every
//!   Untrusted peer) is refused during the handshake. Outbound connections to such a peer are
//!   closed as soon as they come up, and they are not dialled.
//! - **Gossip intake**: misbehaviour the gossip core reports (invalid signatures, replays,
//!   malformed or stale messages, floods) and frames over the per-peer rate limit become trust
//!   penalties; a peer that falls to Untrusted is disconnected.
//! - **Agent calls**: [`Security::authorize`] decides and audits every tool call a peer makes.
//!
//! Audit entries are queued in order to one writer task, which stores them in batches; admin
//! changes wait until their entries are on disk before they answer.

mod api;
mod options;
mod persist;
mod resilience;
mod writer;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use dawn_crypto::SigningKey;
use dawn_gossip::MisbehaviourKind;
use dawn_identity::{AgentId, NodeId};
use dawn_resilience::{ErrorCode, HasErrorCode, RetryError, Status};
use dawn_store::{Sealer, Store, StoreError};
use dawn_transport::{AcceptPolicy, Connection, Refusal, Transport, TransportConfig};
use dawn_trust::{
    Assignment, AuditChain, AuditEntry, AuditKind, ChangeCause, Observation, PeerSnapshot,
    Permission, Policy, PolicyConfig, Request, Subject, TrustChanged, TrustConfigError, TrustError,
    TrustLevel, TrustTable, unix_ms,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::config::BootstrapPeer;
use crate::metrics::MessageKind;
use crate::node::{Node, NodeBuilder};

pub use self::api::{AuditPage, PeerTrust, PolicyView, TrustList, TrustUpdate};
pub use self::options::{
    AdminConfig, AdminToken, AdminTokenError, MAX_ADMIN_TOKEN_LEN, MIN_ADMIN_TOKEN_LEN,
};
pub(crate) use self::options::{RawAdmin, RawSecurity, SecurityOptions, apply_sections};
pub use self::resilience::Readiness;
use self::resilience::{Admission, Resilience};
use self::writer::{Queue, QueueError, Write};

/// How long an admin change waits for its audit entries to reach the disk.
const DURABLE_WAIT: Duration = Duration::from_secs(5);

/// How often the security task runs (trust sweeps, breaker timeouts, summaries).
const TICK: Duration = Duration::from_secs(1);

/// Trust records of peers whose score changed are saved this often (level changes at once).
const FLUSH_EVERY_TICKS: u32 = 10;

/// Most entries one `GET /api/audit` returns.
pub const MAX_AUDIT_PAGE: usize = 1000;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// The security state could not be set up, or an admin change could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// The `[trust]` configuration is invalid.
    #[error("trust configuration: {0}")]
    TrustConfig(#[from] TrustConfigError),
    /// The `[resilience]` configuration is invalid.
    #[error("resilience configuration: {0}")]
    Resilience(#[from] dawn_resilience::ConfigError),
    /// The admin token could not be read or is not acceptable.
    #[error(transparent)]
    AdminToken(#[from] AdminTokenError),
    /// The audit log or the trust records could not be read or written.
    #[error("security store: {0}")]
    Store(#[from] StoreError),
    /// The trust table refused the change (too many assigned peers).
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// A policy given at run time is invalid; the message names the rule at fault.
    #[error("policy: {0}")]
    Policy(#[from] dawn_trust::PolicyError),
    /// The level cannot be assigned by the operator.
    #[error(
        "{0} cannot be assigned: it is earned by behaviour; assign unknown to remove an assignment"
    )]
    NotAssignable(TrustLevel),
    /// The change was made, but its audit entry is not on disk yet (the store is failing) or
    /// the node is stopping.
    #[error("the change was made but not yet recorded in the audit log: {reason}")]
    NotRecorded {
        /// Why.
        reason: String,
    },
    /// A blocking task failed.
    #[error("a security task failed: {0}")]
    Task(String),
}

impl HasErrorCode for SecurityError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::TrustConfig(_) | Self::Resilience(_) | Self::AdminToken(_) => {
                ErrorCode::ConfigInvalid
            }
            Self::Store(_) | Self::NotRecorded { .. } => ErrorCode::StorageUnavailable,
            Self::Trust(_) => ErrorCode::RequestConflict,
            Self::NotAssignable(_) | Self::Policy(_) => ErrorCode::RequestInvalid,
            Self::Task(_) => ErrorCode::InternalError,
        }
    }
}

impl From<QueueError> for SecurityError {
    fn from(error: QueueError) -> Self {
        Self::NotRecorded {
            reason: error.to_string(),
        }
    }
}

/// A peer's request was refused by the node's callee-side check of agent calls (the trust
/// policy, with every tool call audited).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// The policy does not allow it; the text explains which rule decided, e.g. `peer
    /// abcdefghij may not call_tools on shell/exec: denied by deny[0] ("no shell")`.
    #[error("{0}")]
    Policy(String),
    /// The decision could not be recorded in the audit log (its queue is full, or the node is
    /// stopping), so the request is refused rather than left unaudited.
    #[error("refused: the audit log cannot record the decision now")]
    AuditUnavailable,
}

impl HasErrorCode for Denied {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Policy(_) => ErrorCode::AuthDenied,
            Self::AuditUnavailable => ErrorCode::InternalOverloaded,
        }
    }
}

/// Why the node will not dial a peer now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DialBlocked {
    /// The policy does not let the peer connect (it is Untrusted).
    Refused,
    /// The peer's circuit breaker is open; try again after this long.
    Breaker(Duration),
}

/// Where the policy in force comes from.
#[derive(Debug, Clone)]
struct PolicyState {
    current: Arc<Policy>,
    /// The policy of the configuration (file or default); the runtime one replaces it until
    /// the configuration changes.
    configured: Arc<Policy>,
    from_api: bool,
}

/// Most distinct denials (and peers over the request limit) coalesced per second; beyond
/// it, denials are audited one by one and refusals summed up without a peer.
const MAX_COALESCED: usize = 4096;

/// What makes two denials the same for coalescing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DenialKey {
    peer: NodeId,
    permission: Permission,
    agent: AgentId,
    tool: Option<String>,
}

/// The trust table, and which peers' records changed since they were last saved.
#[derive(Debug)]
struct TrustState {
    table: TrustTable,
    dirty: BTreeSet<NodeId>,
}

/// What a trust event means once the lock is released.
#[derive(Debug)]
struct Settled {
    change: TrustChanged,
    snapshot: Option<PeerSnapshot>,
}

/// The node's trust, policy, audit and resilience state. One per node, in
/// [`Shared::security`](crate::node::Shared).
#[derive(Debug)]
pub(crate) struct Security {
    node_id: NodeId,
    key: SigningKey,
    store: Store,
    /// The node's transport, attached once bound (before anything can connect).
    transport: OnceLock<Transport>,
    trust: Mutex<TrustState>,
    policy: RwLock<PolicyState>,
    chain: Mutex<AuditChain>,
    queue: Queue,
    /// Decisions whose entries could not be queued, by kind, for a summary entry.
    suppressed: Mutex<BTreeMap<u16, u64>>,
    /// Denials audited in this second, with how often each was repeated since.
    denials: Mutex<HashMap<DenialKey, u64>>,
    /// Agent requests refused by the rate limit in this second, by peer.
    calls_refused: Mutex<HashMap<NodeId, u64>>,
    /// Refused agent requests of peers beyond [`MAX_COALESCED`].
    calls_refused_other: AtomicU64,
    resilience: Arc<Resilience>,
    admin_token: Option<AdminToken>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The node's metrics, attached once the shared state exists: audit entries are counted.
    metrics: OnceLock<crate::metrics::Metrics>,
}

impl Security {
    /// Counts audit entries in `metrics` from now on.
    pub(crate) fn attach_metrics(&self, metrics: &crate::metrics::Metrics) {
        let _ = self.metrics.set(metrics.clone());
        self.resilience.attach_metrics(metrics);
    }

    fn count_audit_entry(&self) {
        if let Some(metrics) = self.metrics.get() {
            metrics.inc_audit_entries();
        }
    }

    /// Loads the audit head, the trust records and a policy set at run time from the store,
    /// starts the writer and records `node_started`.
    pub(crate) async fn open(
        key: SigningKey,
        store: Store,
        options: SecurityOptions,
        bootstrap: &[BootstrapPeer],
    ) -> Result<Arc<Self>, SecurityError> {
        let node_id = NodeId::from(key.verifying_key());
        let admin_token = match (&options.admin_token, &options.admin_token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => Some(AdminToken::read_file(path)?),
            (None, None) => None,
        };
        let mut table = TrustTable::new(options.trust.clone())?;
        let resilience = Arc::new(Resilience::new(options.resilience.clone())?);
        let sealer = Sealer::from_signing_key(&key);
        let loaded = {
            let (store, sealer) = (store.clone(), sealer.clone());
            tokio::task::spawn_blocking(move || persist::load(&store, &sealer))
                .await
                .map_err(|e| SecurityError::Task(e.to_string()))??
        };
        let mut restored = 0usize;
        for snapshot in &loaded.trust {
            match table.restore(snapshot) {
                Ok(_) => restored += 1,
                Err(error) => {
                    warn!(peer = %snapshot.peer.fmt_short(), %error, "trust record not restored");
                }
            }
        }
        let configured = Arc::new(options.policy.clone());
        let (current, from_api) = match loaded.policy {
            Some((policy, base)) if &base == configured.fingerprint() => (Arc::new(policy), true),
            _ => (Arc::clone(&configured), false),
        };
        let now = Instant::now();
        resilience.report(resilience::STORE, Status::Healthy, "opened", now);
        resilience.report(
            resilience::TRANSPORT,
            Status::Unhealthy,
            "not bound yet",
            now,
        );
        let (queue, writer) = writer::start(store.clone(), sealer, Arc::clone(&resilience));
        let writer =
            tokio::spawn(writer.instrument(info_span!(parent: None, "dawn.node.security.writer")));
        let security = Arc::new(Self {
            node_id,
            key,
            store,
            transport: OnceLock::new(),
            trust: Mutex::new(TrustState {
                table,
                dirty: BTreeSet::new(),
            }),
            policy: RwLock::new(PolicyState {
                current,
                configured,
                from_api,
            }),
            chain: Mutex::new(AuditChain::resume(loaded.head)),
            queue,
            suppressed: Mutex::new(BTreeMap::new()),
            denials: Mutex::new(HashMap::new()),
            calls_refused: Mutex::new(HashMap::new()),
            calls_refused_other: AtomicU64::new(0),
            resilience,
            admin_token,
            writer: Mutex::new(Some(writer)),
            metrics: OnceLock::new(),
        });
        let policy = security.policy();
        security.audit(
            AuditKind::NodeStarted,
            Subject::none(),
            &format!(
                "node started; {restored} trust records restored; policy {} ({})",
                short_fingerprint(policy.fingerprint()),
                if from_api {
                    "set through the admin API"
                } else {
                    "from the configuration"
                }
            ),
        );
        // Bootstrap peers are infrastructure: the level says so unless the operator chose
        // another one.
        for peer in bootstrap {
            let id = peer.node_id();
            if id == node_id {
                continue;
            }
            let assigned = lock(&security.trust).table.assignment(&id);
            if assigned.is_none() {
                let result = security.assign_now(
                    id,
                    Some(Assignment::Bootstrap),
                    "bootstrap peer in the configuration",
                );
                if let Err(error) = result {
                    warn!(peer = %id.fmt_short(), %error, "cannot mark the bootstrap peer");
                }
            }
        }
        Ok(security)
    }

    /// A security state over an in-memory store with the default options, for unit tests.
    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    pub(crate) async fn for_tests(key: SigningKey) -> Arc<Self> {
        let store = Store::open_in_memory().unwrap();
        Self::open(key, store, SecurityOptions::default(), &[])
            .await
            .unwrap()
    }

    /// Gives the security state the node's bound transport, to close connections with.
    pub(crate) fn attach(&self, transport: &Transport) {
        let bound = transport.local_addr().map_or_else(
            |e| format!("no local address: {e}"),
            |addr| format!("listening on {addr}"),
        );
        let status = if transport.local_addr().is_ok() {
            Status::Healthy
        } else {
            Status::Unhealthy
        };
        self.resilience
            .report(resilience::TRANSPORT, status, &bound, Instant::now());
        let _ = self.transport.set(transport.clone());
    }

    /// Logs whether the admin API is served on the HTTP address the node bound.
    pub(crate) fn note_http(&self, addr: SocketAddr) {
        match (&self.admin_token, addr.ip().is_loopback()) {
            (Some(_), _) => info!(%addr, "admin API requires the admin token"),
            (None, true) => debug!(%addr, "admin API served to loopback callers"),
            (None, false) => warn!(
                %addr,
                "admin API off: HTTP is not bound to loopback and no admin token is set \
                 (admin.token_file)"
            ),
        }
    }

    fn connected(&self, peer: &NodeId) -> bool {
        self.transport
            .get()
            .is_some_and(|t| t.connection(peer).is_some())
    }

    fn disconnect(&self, peer: &NodeId) {
        if let Some(transport) = self.transport.get() {
            transport.disconnect(peer, "refused by the trust policy");
        }
    }

    /// Starts the periodic task: trust sweeps, breaker timeouts, summaries of suppressed
    /// entries and saving changed trust records.
    pub(crate) fn spawn_ticker(self: &Arc<Self>, tasks: &TaskTracker, cancel: CancellationToken) {
        let weak = Arc::downgrade(self);
        tasks.spawn(
            async move {
                let mut interval = tokio::time::interval(TICK);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut ticks: u32 = 0;
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        _ = interval.tick() => {}
                    }
                    let Some(security) = weak.upgrade() else {
                        return;
                    };
                    ticks = ticks.wrapping_add(1);
                    security.tick(ticks.is_multiple_of(FLUSH_EVERY_TICKS));
                }
            }
            .instrument(info_span!(parent: None, "dawn.node.security")),
        );
    }

    fn tick(&self, flush: bool) {
        let now = now_ms();
        let settled = {
            let mut state = lock(&self.trust);
            state.table.handle_timeout(now);
            drain(&mut state)
        };
        self.apply(settled);
        self.resilience.tick(Instant::now());
        self.write_coalesced();
        self.write_summaries();
        if flush {
            self.flush_dirty();
        }
    }

    /// Records, saves and waits for everything outstanding, then stops the writer. Called by
    /// [`Node::shutdown`] before the store closes.
    pub(crate) async fn close(&self) {
        self.write_coalesced();
        self.write_summaries();
        self.flush_dirty();
        let stopped = self
            .audit_durable(AuditKind::NodeStopped, Subject::none(), "node stopped")
            .await;
        if let Err(error) = stopped {
            warn!(%error, "the node_stopped entry was not recorded");
        }
        self.queue.close();
        let writer = lock(&self.writer).take();
        if let Some(writer) = writer
            && tokio::time::timeout(DURABLE_WAIT, writer).await.is_err()
        {
            warn!("the security writer did not finish in time");
        }
        self.resilience.report(
            resilience::TRANSPORT,
            Status::Unhealthy,
            "closed",
            Instant::now(),
        );
    }

    // ----- audit -------------------------------------------------------------------------

    /// Appends an entry without waiting: it is queued in order and written within
    /// milliseconds. If the queue is full the entry is not made (the chain stays intact) and
    /// counted for a summary entry; returns whether it was queued.
    fn audit(&self, kind: AuditKind, subject: Subject, details: &str) -> bool {
        let mut chain = lock(&self.chain);
        let before = chain.head();
        let entry = chain.append(&self.key, now_ms(), kind, subject, details);
        match self.queue.try_push(Write::Audit(entry)) {
            Ok(_) => {
                self.count_audit_entry();
                true
            }
            Err(error) => {
                *chain = AuditChain::resume(before);
                drop(chain);
                let mut suppressed = lock(&self.suppressed);
                let count = suppressed.entry(kind.code()).or_default();
                *count = count.saturating_add(1);
                debug!(%error, kind = kind.as_str(), "audit entry not queued");
                false
            }
        }
    }

    /// Appends an entry and waits until it is on disk.
    async fn audit_durable(
        &self,
        kind: AuditKind,
        subject: Subject,
        details: &str,
    ) -> Result<u64, SecurityError> {
        let slot = self.queue.reserve().await?;
        let ticket = {
            let mut chain = lock(&self.chain);
            let entry = chain.append(&self.key, now_ms(), kind, subject, details);
            let seq = entry.seq();
            let ticket = self.queue.push(slot, Write::Audit(entry));
            drop(chain);
            (ticket, seq)
        };
        self.count_audit_entry();
        self.queue.durable(ticket.0, DURABLE_WAIT).await?;
        Ok(ticket.1)
    }

    /// Writes one entry per kind of decision that could not be recorded one by one.
    fn write_summaries(&self) {
        let pending: Vec<(u16, u64)> = std::mem::take(&mut *lock(&self.suppressed))
            .into_iter()
            .collect();
        for (code, count) in pending {
            let Some(kind) = AuditKind::from_code(code) else {
                continue;
            };
            let details = format!(
                "{count} further {kind} decisions were not recorded one by one: the audit queue \
                 was full"
            );
            if !self.audit(kind, Subject::none(), &details) {
                // Counted again by `audit`; add the earlier ones back.
                let mut suppressed = lock(&self.suppressed);
                let entry = suppressed.entry(code).or_default();
                *entry = entry.saturating_add(count);
            }
        }
    }

    /// Whether a denial is a repeat of one already audited in this second: then it is only
    /// counted, and [`Security::write_summaries`] records the count in one entry. The first
    /// denial of each (peer, permission, agent, tool) in a second is audited in full.
    fn coalesce_denial(
        &self,
        caller: NodeId,
        permission: Permission,
        agent: &AgentId,
        tool: Option<&str>,
    ) -> bool {
        let key = DenialKey {
            peer: caller,
            permission,
            agent: agent.clone(),
            tool: tool.map(str::to_owned),
        };
        let mut denials = lock(&self.denials);
        if let Some(repeats) = denials.get_mut(&key) {
            *repeats = repeats.saturating_add(1);
            return true;
        }
        if denials.len() < MAX_COALESCED {
            denials.insert(key, 0);
        }
        false
    }

    /// Writes the per-second summaries: repeated denials and requests refused by the rate
    /// limit, one entry per peer (and agent and tool, for denials).
    fn write_coalesced(&self) {
        let denials = std::mem::take(&mut *lock(&self.denials));
        for (key, repeats) in denials {
            if repeats == 0 {
                continue;
            }
            let kind = if key.permission == Permission::CallTools {
                AuditKind::ToolCallDenied
            } else {
                AuditKind::RequestDenied
            };
            let mut subject = Subject::none().with_peer(key.peer).with_agent(key.agent);
            if let Some(tool) = &key.tool {
                subject = subject.with_tool(tool);
            }
            let details = format!(
                "denied {repeats} more times in the last second, as in the entry before \
                 ({} requests)",
                key.permission
            );
            self.audit(kind, subject, &details);
        }
        let refused = std::mem::take(&mut *lock(&self.calls_refused));
        let limit = self.resilience.call_limit();
        for (peer, count) in refused {
            let details = format!(
                "{count} agent requests refused in the last second: over the request limit of \
                 {} per second (burst {})",
                limit.requests_per_sec, limit.request_burst
            );
            self.audit(
                AuditKind::RequestDenied,
                Subject::none().with_peer(peer),
                &details,
            );
        }
        let other = self.calls_refused_other.swap(0, Ordering::Relaxed);
        if other > 0 {
            let details = format!(
                "{other} agent requests of further peers refused in the last second: over the \
                 request limit"
            );
            self.audit(AuditKind::RequestDenied, Subject::none(), &details);
        }
    }

    /// Waits until every audit entry made so far is on disk.
    pub(crate) async fn sync(&self) -> Result<(), SecurityError> {
        let slot = self.queue.reserve().await?;
        // An empty trust write is a marker: the queue is FIFO.
        let ticket = self.queue.push(slot, Write::Barrier);
        self.queue.durable(ticket, DURABLE_WAIT).await?;
        Ok(())
    }

    /// Up to `limit` stored entries with `seq > after` (from the first entry without
    /// `after`), and the `seq` the next entry will get.
    pub(crate) async fn audit_entries(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, u64), SecurityError> {
        let from = match after {
            Some(seq) => seq.saturating_add(1),
            None => 0,
        };
        let limit = limit.min(MAX_AUDIT_PAGE);
        let store = self.store.clone();
        let entries = tokio::task::spawn_blocking(move || store.audit().range(from, limit))
            .await
            .map_err(|e| SecurityError::Task(e.to_string()))??;
        let next_seq = lock(&self.chain).head().next_seq;
        Ok((entries, next_seq))
    }

    // ----- trust -------------------------------------------------------------------------

    /// The policy in force.
    pub(crate) fn policy(&self) -> Arc<Policy> {
        Arc::clone(
            &self
                .policy
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .current,
        )
    }

    /// The policy, its fingerprint and where it comes from.
    pub(crate) fn policy_view(&self) -> PolicyView {
        let state = self.policy.read().unwrap_or_else(PoisonError::into_inner);
        PolicyView {
            policy: state.current.config().clone(),
            fingerprint: crate::gossip::hex(state.current.fingerprint()),
            source: if state.from_api { "api" } else { "config" }.to_owned(),
        }
    }

    /// A peer's level and score now.
    pub(crate) fn standing(&self, peer: &NodeId) -> (TrustLevel, f64) {
        let state = lock(&self.trust);
        (state.table.level(peer), state.table.score(now_ms(), peer))
    }

    /// A peer's standing for the admin API.
    pub(crate) fn peer_trust(&self, peer: &NodeId) -> PeerTrust {
        let state = lock(&self.trust);
        PeerTrust {
            node_id: *peer,
            level: state.table.level(peer),
            score: state.table.score(now_ms(), peer),
            assigned: state.table.assignment(peer),
            connected: self.connected(peer),
            breaker: self.resilience.breaker_state(peer, Instant::now()),
        }
    }

    /// Every tracked peer and every peer in `known`, by node id.
    pub(crate) fn trust_list(&self, known: impl IntoIterator<Item = NodeId>) -> TrustList {
        let ids: BTreeSet<NodeId> = {
            let state = lock(&self.trust);
            state.table.peers().copied().chain(known).collect()
        };
        TrustList {
            peers: ids
                .iter()
                .filter(|id| **id != self.node_id)
                .map(|id| self.peer_trust(id))
                .collect(),
            gossip_frames_dropped: self.resilience.dropped(),
            agent_requests_dropped: self.resilience.calls_dropped(),
        }
    }

    /// Whether the policy lets `peer` do `permission` (no agent or tool), with the reason.
    fn decide(&self, peer: &NodeId, permission: Permission) -> (bool, String) {
        let level = lock(&self.trust).table.level(peer);
        let request = Request::new(peer, level, permission);
        let decision = self.policy().decide(&request);
        (decision.allowed, decision.explain(&request))
    }

    /// Records an observation of `peer` and acts on any level change.
    fn observe(&self, peer: &NodeId, observation: Observation) {
        let settled = {
            let mut state = lock(&self.trust);
            state.table.record(now_ms(), peer, observation);
            state.dirty.insert(*peer);
            drain(&mut state)
        };
        self.apply(settled);
    }

    /// Audits, saves and enforces level changes (without waiting for the disk); returns the
    /// last write's ticket.
    fn apply(&self, settled: Vec<Settled>) {
        for item in settled {
            let change = item.change;
            let details = describe_change(&change);
            self.audit(
                AuditKind::TrustChanged,
                Subject::none().with_peer(change.peer),
                &details,
            );
            info!(peer = %change.peer.fmt_short(), %details, "trust level changed");
            let write = match item.snapshot {
                Some(snapshot) => Write::Trust(snapshot),
                None => Write::ForgetTrust(change.peer),
            };
            if self.queue.try_push(write).is_err() {
                lock(&self.trust).dirty.insert(change.peer);
            }
            self.enforce(&change.peer);
        }
    }

    /// Closes the connection to `peer` if the policy no longer lets it connect.
    fn enforce(&self, peer: &NodeId) {
        let (allowed, reason) = self.decide(peer, Permission::Connect);
        if !allowed && self.connected(peer) {
            let details = format!("connection closed: {reason}");
            self.audit(
                AuditKind::ConnectionRefused,
                Subject::none().with_peer(*peer),
                &details,
            );
            info!(peer = %peer.fmt_short(), %reason, "disconnecting a peer the policy refuses");
            self.disconnect(peer);
        }
    }

    /// Saves the records of peers whose score changed.
    fn flush_dirty(&self) {
        let pending: Vec<(NodeId, Option<PeerSnapshot>)> = {
            let mut state = lock(&self.trust);
            let dirty = std::mem::take(&mut state.dirty);
            dirty
                .into_iter()
                .map(|peer| (peer, state.table.snapshot(&peer)))
                .collect()
        };
        for (peer, snapshot) in pending {
            let write = match snapshot {
                Some(snapshot) => Write::Trust(snapshot),
                None => Write::ForgetTrust(peer),
            };
            if self.queue.try_push(write).is_err() {
                lock(&self.trust).dirty.insert(peer);
            }
        }
    }

    /// Assigns a level without waiting for the disk (start-up).
    fn assign_now(
        &self,
        peer: NodeId,
        assignment: Option<Assignment>,
        why: &str,
    ) -> Result<(), SecurityError> {
        let (settled, snapshot) = {
            let mut state = lock(&self.trust);
            state.table.assign(now_ms(), &peer, assignment)?;
            let snapshot = state.table.snapshot(&peer);
            (drain(&mut state), snapshot)
        };
        self.audit(
            AuditKind::TrustAssigned,
            Subject::none().with_peer(peer),
            &format!("{}: {why}", assignment_text(assignment)),
        );
        if let Some(snapshot) = snapshot
            && self.queue.try_push(Write::Trust(snapshot)).is_err()
        {
            lock(&self.trust).dirty.insert(peer);
        }
        self.apply(settled);
        Ok(())
    }

    /// The operator assigns `update.level` to `peer` (or removes the assignment with
    /// `unknown`); returns once the change and its audit entries are on disk.
    pub(crate) async fn set_trust(
        &self,
        peer: NodeId,
        update: &TrustUpdate,
    ) -> Result<PeerTrust, SecurityError> {
        let assignment = match update.level {
            TrustLevel::Trusted => Some(Assignment::Trusted),
            TrustLevel::Bootstrap => Some(Assignment::Bootstrap),
            TrustLevel::Untrusted => Some(Assignment::Untrusted),
            TrustLevel::Unknown => None,
            other => return Err(SecurityError::NotAssignable(other)),
        };
        let now = now_ms();
        let (before, settled, snapshot) = {
            let mut state = lock(&self.trust);
            let before = state.table.level(&peer);
            state.table.assign(now, &peer, assignment)?;
            if update.reset {
                state.table.reset(now, &peer);
            }
            let snapshot = state.table.snapshot(&peer);
            (before, drain(&mut state), snapshot)
        };
        let mut details = format!(
            "operator {} (level was {before})",
            assignment_text(assignment)
        );
        if update.reset {
            details.push_str("; score reset to the baseline");
        }
        self.audit_durable(
            AuditKind::TrustAssigned,
            Subject::none().with_peer(peer),
            &details,
        )
        .await?;
        if let Some(snapshot) = snapshot {
            let slot = self.queue.reserve().await?;
            self.queue.push(slot, Write::Trust(snapshot));
        }
        self.apply(settled);
        // The level changes and any disconnection above are on disk before the answer.
        self.sync().await?;
        Ok(self.peer_trust(&peer))
    }

    /// Replaces the policy in force; returns once the change is on disk. Peers the new policy
    /// does not let connect are disconnected.
    pub(crate) async fn set_policy(&self, policy: Policy) -> Result<PolicyView, SecurityError> {
        let policy = Arc::new(policy);
        let (old, configured) = {
            let mut state = self.policy.write().unwrap_or_else(PoisonError::into_inner);
            let old = Arc::clone(&state.current);
            state.current = Arc::clone(&policy);
            state.from_api = true;
            (old, *state.configured.fingerprint())
        };
        let slot = self.queue.reserve().await?;
        self.queue.push(
            slot,
            Write::Policy {
                policy: policy.config().clone(),
                configured,
            },
        );
        let config = policy.config();
        let details = format!(
            "policy {} replaced by {} through the admin API ({} deny and {} allow rules)",
            short_fingerprint(old.fingerprint()),
            short_fingerprint(policy.fingerprint()),
            config.deny.len(),
            config.allow.len(),
        );
        self.audit_durable(AuditKind::PolicyChanged, Subject::none(), &details)
            .await?;
        let connected = self
            .transport
            .get()
            .map(Transport::connections)
            .unwrap_or_default();
        for connection in connected {
            self.enforce(&connection.peer());
        }
        self.sync().await?;
        Ok(self.policy_view())
    }

    // ----- enforcement points ------------------------------------------------------------

    /// The transport's accept check for an authenticated inbound peer.
    fn check_accept(&self, peer: &NodeId, remote: SocketAddr) -> Result<(), Refusal> {
        let (allowed, reason) = self.decide(peer, Permission::Connect);
        if allowed {
            return Ok(());
        }
        self.audit(
            AuditKind::ConnectionRefused,
            Subject::none().with_peer(*peer),
            &format!("inbound from {remote} refused: {reason}"),
        );
        debug!(peer = %peer.fmt_short(), %remote, %reason, "inbound connection refused");
        Err(Refusal::new("refused by the trust policy"))
    }

    /// A connection came up (either direction): the peer proved its key. Audited; an
    /// outbound connection to a peer the policy refuses is closed at once.
    pub(crate) fn on_connected(&self, connection: &Connection) {
        let peer = connection.peer();
        let inbound = connection.direction() == dawn_transport::Direction::Inbound;
        let (allowed, reason) = self.decide(&peer, Permission::Connect);
        let direction = if inbound {
            "inbound from"
        } else {
            "outbound to"
        };
        if !allowed {
            self.audit(
                AuditKind::ConnectionRefused,
                Subject::none().with_peer(peer),
                &format!("{direction} {} closed: {reason}", connection.remote_addr()),
            );
            self.disconnect(&peer);
            return;
        }
        self.audit(
            AuditKind::ConnectionAccepted,
            Subject::none().with_peer(peer),
            &format!("{direction} {}: {reason}", connection.remote_addr()),
        );
        self.observe(&peer, Observation::HandshakeCompleted);
    }

    /// The gossip core reported misbehaviour by `peer`: a trust penalty.
    pub(crate) fn misbehaviour(&self, peer: &NodeId, kind: MisbehaviourKind) {
        let observation = match kind {
            MisbehaviourKind::InvalidSignature => Observation::InvalidSignature,
            MisbehaviourKind::Replay => Observation::Replay,
            MisbehaviourKind::Stale => Observation::Stale,
            MisbehaviourKind::Future => Observation::Future,
            MisbehaviourKind::Flooding => Observation::Flooding,
            _ => Observation::Malformed,
        };
        self.observe(peer, observation);
    }

    /// A gossip frame from `peer` could not be decoded at all: a trust penalty.
    pub(crate) fn malformed(&self, peer: &NodeId) {
        self.observe(peer, Observation::Malformed);
    }

    /// Counts an inbound gossip frame or registry request (`kind`) against `peer`'s rate
    /// limits; `false` means drop it. A peer whose frames keep being dropped is penalised for
    /// flooding.
    pub(crate) fn admit_gossip(&self, peer: &NodeId, len: usize, kind: MessageKind) -> bool {
        match self.resilience.admit(*peer, len, Instant::now()) {
            Admission::Accept => true,
            Admission::Drop {
                which, penalise, ..
            } => {
                if let Some(metrics) = self.metrics.get() {
                    metrics.inc_rate_limit_drop(kind, which);
                }
                if penalise {
                    self.observe(peer, Observation::Flooding);
                }
                false
            }
        }
    }

    /// Counts a request of `peer` to an agent hosted here (open, list, call, read) against
    /// its request limit (`resilience.call_limit`), before the policy decides or anything is
    /// audited.
    ///
    /// Over the limit, the request is refused at once with the wait until it would pass, and
    /// without an audit entry of its own: the refusals are counted per peer and summed up in
    /// one `request_denied` entry per peer and second. Every 64th refusal is a flooding
    /// penalty, so a peer that keeps flooding loses its trust and is disconnected.
    ///
    /// # Errors
    /// The wait before a request of `peer` would pass.
    pub(crate) fn admit_call(&self, peer: &NodeId) -> Result<(), Duration> {
        let (which, retry_after, penalise) = match self.resilience.admit_call(*peer, Instant::now())
        {
            Admission::Accept => return Ok(()),
            Admission::Drop {
                which,
                retry_after,
                penalise,
            } => (which, retry_after, penalise),
        };
        if let Some(metrics) = self.metrics.get() {
            metrics.inc_rate_limit_drop(MessageKind::AgentCall, which);
        }
        {
            let mut refused = lock(&self.calls_refused);
            if refused.len() < MAX_COALESCED || refused.contains_key(peer) {
                let count = refused.entry(*peer).or_default();
                *count = count.saturating_add(1);
            } else {
                self.calls_refused_other.fetch_add(1, Ordering::Relaxed);
            }
        }
        if penalise {
            self.observe(peer, Observation::Flooding);
        }
        Err(retry_after.unwrap_or(TICK))
    }

    /// Decides and audits a request by `caller` to use `agent` (and `tool`, for
    /// `call_tools`): the callee-side check of an agent call.
    ///
    /// Every tool call is audited, allowed (`tool_call_allowed`) or denied
    /// (`tool_call_denied`); other permissions are audited when denied (`request_denied`).
    /// A decision that cannot be audited (the audit queue is full) is a denial.
    ///
    /// # Errors
    /// [`Denied`] with the policy's explanation, or [`Denied::AuditUnavailable`].
    pub(crate) fn authorize(
        &self,
        caller: NodeId,
        permission: Permission,
        agent: &AgentId,
        tool: Option<&str>,
    ) -> Result<(), Denied> {
        let level = lock(&self.trust).table.level(&caller);
        let mut request = Request::new(&caller, level, permission);
        if permission.takes_agent() {
            request = request.with_agent(agent);
        }
        if permission.takes_tool()
            && let Some(tool) = tool
        {
            request = request.with_tool(tool);
        }
        let decision = self.policy().decide(&request);
        let explanation = decision.explain(&request);
        let mut subject = Subject::none().with_peer(caller).with_agent(agent.clone());
        if let Some(tool) = tool {
            subject = subject.with_tool(tool);
        }
        let kind = match (permission, decision.allowed) {
            (Permission::CallTools, true) => Some(AuditKind::ToolCallAllowed),
            (Permission::CallTools, false) => Some(AuditKind::ToolCallDenied),
            (_, false) => Some(AuditKind::RequestDenied),
            (_, true) => None,
        };
        let coalesced = !decision.allowed && self.coalesce_denial(caller, permission, agent, tool);
        if let Some(kind) = kind
            && !coalesced
            && !self.audit(kind, subject, &explanation)
        {
            return Err(Denied::AuditUnavailable);
        }
        if decision.allowed {
            Ok(())
        } else {
            Err(Denied::Policy(explanation))
        }
    }

    // ----- resilience --------------------------------------------------------------------

    /// Whether the node may dial `peer` now.
    pub(crate) fn dial_allowed(&self, peer: &NodeId) -> Result<(), DialBlocked> {
        if !self.decide(peer, Permission::Connect).0 {
            return Err(DialBlocked::Refused);
        }
        self.resilience
            .allow(peer, Instant::now())
            .map_err(|open| DialBlocked::Breaker(open.retry_after))
    }

    /// A dial or call to `peer` succeeded or failed (feeds its circuit breaker).
    pub(crate) fn record_outcome(&self, peer: &NodeId, success: bool) {
        self.resilience.record(peer, success, Instant::now());
    }

    /// A retry schedule for a series of dials to one peer (`None`: never give up); a new
    /// series earns the shared budget a fraction of a retry.
    pub(crate) fn dial_retry(
        &self,
        max_attempts: Option<u32>,
    ) -> Result<dawn_resilience::Retry, dawn_resilience::ConfigError> {
        let now = Instant::now();
        self.resilience.deposit(now);
        self.resilience.dial_retry(max_attempts, now)
    }

    /// How long a dialler waits before asking again about a bootstrap peer the policy
    /// refuses: the retry cap.
    pub(crate) fn retry_cap(&self) -> Duration {
        self.resilience.retry_cap()
    }

    /// A new series of dials starts (after a connection was up): it earns the budget.
    pub(crate) fn dial_series(&self) {
        self.resilience.deposit(Instant::now());
    }

    /// The wait before the next dial after a failure, within the shared retry budget.
    pub(crate) fn next_dial_delay(
        &self,
        retry: &mut dawn_resilience::Retry,
    ) -> Result<Duration, RetryError> {
        self.resilience.next_delay(retry, Instant::now())
    }

    /// `GET /healthz`: the health report.
    pub(crate) fn health(&self) -> dawn_resilience::HealthReport {
        self.resilience.health(Instant::now()).0
    }

    /// `GET /readyz`.
    pub(crate) fn readiness(&self) -> Readiness {
        self.resilience.readiness(Instant::now())
    }

    /// The admin token, if one is configured.
    pub(crate) const fn admin_token(&self) -> Option<&AdminToken> {
        self.admin_token.as_ref()
    }
}

/// Drains the table's events, with each peer's record encoded for the store.
fn drain(state: &mut TrustState) -> Vec<Settled> {
    let mut settled = Vec::new();
    while let Some(change) = state.table.poll_event() {
        state.dirty.remove(&change.peer);
        settled.push(Settled {
            snapshot: state.table.snapshot(&change.peer),
            change,
        });
    }
    settled
}

fn describe_change(change: &TrustChanged) -> String {
    let cause = match change.cause {
        ChangeCause::Observation(observation) => format!("observed {observation}"),
        other => other.to_string(),
    };
    format!(
        "{} -> {} ({cause}); score {:.3}",
        change.old_level, change.new_level, change.score
    )
}

fn assignment_text(assignment: Option<Assignment>) -> String {
    match assignment {
        Some(assignment) => format!("assigned {assignment}"),
        None => "removed the assignment".to_owned(),
    }
}

fn short_fingerprint(fingerprint: &[u8; 32]) -> String {
    crate::gossip::hex(fingerprint.get(..8).unwrap_or_default())
}

/// The transport's accept policy: asks the node's [`Security`] once it exists (until then,
/// during the microseconds of start-up, every peer is refused), then any policy the embedder
/// set in the [`TransportConfig`].
#[derive(Clone)]
pub(crate) struct AcceptGate {
    security: Arc<OnceLock<Weak<Security>>>,
    next: Option<Arc<dyn AcceptPolicy>>,
}

impl std::fmt::Debug for AcceptGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptGate")
            .field("ready", &self.security.get().is_some())
            .finish_non_exhaustive()
    }
}

impl AcceptGate {
    /// Puts a gate in front of `config`'s accept policy; returns the gate to open with
    /// [`AcceptGate::open`] once the security state exists.
    pub(crate) fn install(config: &mut TransportConfig) -> Self {
        let gate = Self {
            security: Arc::new(OnceLock::new()),
            next: config.accept_policy.take(),
        };
        config.accept_policy = Some(Arc::new(gate.clone()));
        gate
    }

    /// Lets the gate ask `security`.
    pub(crate) fn open(&self, security: &Arc<Security>) {
        let _ = self.security.set(Arc::downgrade(security));
    }
}

impl AcceptPolicy for AcceptGate {
    fn check(&self, peer: &NodeId, remote: SocketAddr) -> Result<(), Refusal> {
        let Some(security) = self.security.get().and_then(Weak::upgrade) else {
            return Err(Refusal::new("the node is starting or stopping"));
        };
        security.check_accept(peer, remote)?;
        match &self.next {
            Some(next) => next.check(peer, remote),
            None => Ok(()),
        }
    }
}

impl NodeBuilder {
    /// The trust scoring model (the `[trust]` section; see `dawn_trust::TrustConfig`).
    pub fn trust_config(mut self, config: dawn_trust::TrustConfig) -> Self {
        self.security.trust = config;
        self
    }

    /// The permission policy the node starts with (the `[policy]` section). A policy set later
    /// through the admin API replaces it, and is kept across restarts until this one changes.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.security.policy = policy;
        self
    }

    /// Retries, rate limits, circuit breakers and health (the `[resilience]` section).
    /// [`NodeBuilder::reconnect_backoff`] sets the retry base and cap in it.
    pub fn resilience_config(mut self, config: dawn_resilience::ResilienceConfig) -> Self {
        self.security.resilience = config;
        self
    }

    /// The admin token: admin requests must carry `Authorization: Bearer <token>`, and the
    /// admin API is served on a non-loopback HTTP address only with one.
    pub fn admin_token(mut self, token: AdminToken) -> Self {
        self.security.admin_token = Some(token);
        self
    }
}

impl Node {
    /// `peer`'s trust level, score, assignment and whether it is connected.
    #[must_use]
    pub fn trust(&self, peer: &NodeId) -> PeerTrust {
        self.shared().security.peer_trust(peer)
    }

    /// Every peer the node tracks or knows, with its trust standing (`GET /api/trust`).
    #[must_use]
    pub fn trust_list(&self) -> TrustList {
        let known: Vec<NodeId> = self.peers().iter().map(|p| p.node_id).collect();
        self.shared().security.trust_list(known)
    }

    /// Assigns a trust level to `peer` (`PUT /api/trust/{node_id}`): `trusted`, `bootstrap`
    /// or `untrusted`, or `unknown` to remove the assignment. Returns once the change and its
    /// audit entries are on disk. A peer that may no longer connect is disconnected.
    ///
    /// # Errors
    /// [`SecurityError::NotAssignable`] for `verified`, [`SecurityError::Trust`] when too many
    /// peers are assigned, [`SecurityError::NotRecorded`] when the store does not confirm the
    /// audit entry in time (the change stands).
    pub async fn set_trust(
        &self,
        peer: NodeId,
        update: TrustUpdate,
    ) -> Result<PeerTrust, SecurityError> {
        self.shared().security.set_trust(peer, &update).await
    }

    /// The permission policy in force (`GET /api/policy`).
    #[must_use]
    pub fn policy(&self) -> PolicyView {
        self.shared().security.policy_view()
    }

    /// Replaces the permission policy (`PUT /api/policy`); returns once the change is on disk.
    /// Connected peers the new policy does not let connect are disconnected.
    ///
    /// # Errors
    /// [`SecurityError::Policy`] naming the rule at fault for an invalid policy;
    /// [`SecurityError::NotRecorded`] when the store does not confirm the change in time (it
    /// stands).
    pub async fn set_policy(&self, policy: PolicyConfig) -> Result<PolicyView, SecurityError> {
        let policy = Policy::from_config(policy)?;
        self.shared().security.set_policy(policy).await
    }

    /// Up to `limit` (at most [`MAX_AUDIT_PAGE`]) audit entries with `seq > after` (from the
    /// first without `after`), as stored.
    ///
    /// # Errors
    /// [`SecurityError::Store`] if the log cannot be read (a damaged row, a failing disk).
    pub async fn audit_entries(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, SecurityError> {
        let security = &self.shared().security;
        security.sync().await?;
        Ok(security.audit_entries(after, limit).await?.0)
    }

    /// Whether the node is ready (`GET /readyz`), and why not.
    #[must_use]
    pub fn readiness(&self) -> Readiness {
        self.shared().security.readiness()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_trust::verify_chain;

    fn id(seed: u8) -> NodeId {
        SigningKey::from_bytes(&[seed; 32]).verifying_key().into()
    }

    async fn entries(security: &Security) -> Vec<AuditEntry> {
        security.sync().await.unwrap();
        security
            .audit_entries(None, MAX_AUDIT_PAGE)
            .await
            .unwrap()
            .0
    }

    fn kinds(entries: &[AuditEntry]) -> Vec<AuditKind> {
        entries.iter().map(AuditEntry::kind).collect()
    }

    #[tokio::test]
    async fn an_unknown_peer_is_denied_tool_calls_until_trusted_and_both_are_audited() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let node = NodeId::from(key.verifying_key());
        let security = Security::for_tests(key).await;
        let (peer, agent) = (id(2), AgentId::try_from("weather").unwrap());

        let denied = security
            .authorize(peer, Permission::CallTools, &agent, Some("forecast"))
            .unwrap_err();
        assert_eq!(denied.code(), ErrorCode::AuthDenied);
        assert_eq!(
            denied.to_string(),
            format!(
                "peer {} may not call_tools on weather/forecast: denied: not granted to unknown \
                 peers by default",
                peer.fmt_short()
            )
        );
        // Reading the directory is allowed and not audited.
        security
            .authorize(peer, Permission::ReadAgents, &agent, None)
            .unwrap();

        let trust = security
            .set_trust(peer, &TrustUpdate::new(TrustLevel::Trusted))
            .await
            .unwrap();
        assert_eq!(trust.level, TrustLevel::Trusted);
        security
            .authorize(peer, Permission::CallTools, &agent, Some("forecast"))
            .unwrap();
        // Nobody is an admin by default; the denial is audited as a request.
        assert!(matches!(
            security.authorize(peer, Permission::Admin, &agent, None),
            Err(Denied::Policy(_))
        ));

        let log = entries(&security).await;
        assert_eq!(
            kinds(&log),
            [
                AuditKind::NodeStarted,
                AuditKind::ToolCallDenied,
                AuditKind::TrustAssigned,
                AuditKind::TrustChanged,
                AuditKind::ToolCallAllowed,
                AuditKind::RequestDenied,
            ]
        );
        let denied = &log[1];
        assert_eq!(denied.subject().peer(), Some(&peer));
        assert_eq!(denied.subject().agent(), Some(&agent));
        assert_eq!(denied.subject().tool(), Some("forecast"));
        assert!(
            log[3]
                .details()
                .starts_with("unknown -> trusted (operator assignment)")
        );
        assert_eq!(verify_chain(&node, &log).unwrap().entries, 6);
    }

    #[tokio::test]
    async fn deny_rules_name_themselves_and_untrusted_peers_get_nothing() {
        let security = Security::for_tests(SigningKey::from_bytes(&[1; 32])).await;
        let (friend, foe) = (id(2), id(3));
        let policy: PolicyConfig = toml::from_str(
            r#"
            [[deny]]
            name = "no shell"
            permissions = ["call_tools"]
            agents = ["shell"]
            "#,
        )
        .unwrap();
        security
            .set_policy(Policy::from_config(policy).unwrap())
            .await
            .unwrap();
        security
            .set_trust(friend, &TrustUpdate::new(TrustLevel::Trusted))
            .await
            .unwrap();
        let shell = AgentId::try_from("shell").unwrap();
        let err = security
            .authorize(friend, Permission::CallTools, &shell, Some("exec"))
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("denied by deny[0] (\"no shell\")"),
            "{err}"
        );

        security
            .set_trust(foe, &TrustUpdate::new(TrustLevel::Untrusted))
            .await
            .unwrap();
        let weather = AgentId::try_from("weather").unwrap();
        for permission in Permission::ALL {
            let err = security
                .authorize(foe, permission, &weather, Some("forecast"))
                .unwrap_err();
            assert!(err.to_string().ends_with("the peer is untrusted"), "{err}");
        }
        assert!(
            security
                .check_accept(&foe, "127.0.0.1:9".parse().unwrap())
                .is_err()
        );
        assert!(
            security
                .check_accept(&friend, "127.0.0.1:9".parse().unwrap())
                .is_ok()
        );
        assert_eq!(security.dial_allowed(&foe), Err(DialBlocked::Refused));
        let log = entries(&security).await;
        assert_eq!(log.last().unwrap().kind(), AuditKind::ConnectionRefused);
        assert!(log.iter().any(|e| e.kind() == AuditKind::PolicyChanged));
    }

    #[tokio::test]
    async fn verified_cannot_be_assigned_and_unknown_removes_an_assignment() {
        let security = Security::for_tests(SigningKey::from_bytes(&[1; 32])).await;
        let peer = id(2);
        let err = security
            .set_trust(peer, &TrustUpdate::new(TrustLevel::Verified))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            SecurityError::NotAssignable(TrustLevel::Verified)
        ));
        security
            .set_trust(peer, &TrustUpdate::new(TrustLevel::Untrusted))
            .await
            .unwrap();
        let back = security
            .set_trust(peer, &TrustUpdate::new(TrustLevel::Unknown))
            .await
            .unwrap();
        assert_eq!((back.level, back.assigned), (TrustLevel::Unknown, None));
    }

    #[tokio::test]
    async fn two_invalid_signatures_make_a_peer_untrusted() {
        let security = Security::for_tests(SigningKey::from_bytes(&[1; 32])).await;
        let peer = id(2);
        security.misbehaviour(&peer, MisbehaviourKind::InvalidSignature);
        assert_eq!(security.standing(&peer).0, TrustLevel::Unknown);
        security.misbehaviour(&peer, MisbehaviourKind::InvalidSignature);
        let (level, score) = security.standing(&peer);
        assert_eq!(level, TrustLevel::Untrusted);
        assert!(score < 0.2, "{score}");
        let log = entries(&security).await;
        let change = log.last().unwrap();
        assert_eq!(change.kind(), AuditKind::TrustChanged);
        assert!(
            change
                .details()
                .starts_with("unknown -> untrusted (observed invalid_signature)"),
            "{}",
            change.details()
        );
    }
}
