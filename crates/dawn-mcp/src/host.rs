//! `AgentHost`: the agents a node hosts, served over streams it is given.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use dawn_identity::AgentId;
use rmcp::ErrorData;
use rmcp::model::{
    ClientCapabilities, ClientConfig, ClientNotification, ClientRequest, Implementation,
    ProtocolVersion, ServerConfig, ServerResult,
};
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt, DynService, NotificationContext, RequestContext,
    RoleClient, RoleServer, ServerInitializeError, Service, serve_server_with_ct,
};
use rmcp::transport::async_rw::AsyncRwTransport;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, debug_span, warn};

use crate::REQUEST_ID_META;
use crate::agent::{Agent, AgentInfo, MAX_INFO_ITEMS, info_item};
use crate::client::{AgentClient, DEFAULT_MAX_MESSAGE_LEN, connect_agent};
use crate::error::{CallError, denied_error, rate_limited_error, timed_out_error};
use crate::policy::{AccessPolicy, Action, Caller, denial_message};
use crate::preamble::{self, OpenAgent, OpenReply, PreambleError, RefuseCode};

/// Bytes buffered each way by the in-process pipes of [`AgentHost::connect`].
const DUPLEX_BUFFER: usize = 64 * 1024;

/// Limits and timeouts of an [`AgentHost`].
///
/// Start from [`HostConfig::default`] and change fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HostConfig {
    /// The most agents the host holds (default 256).
    pub max_agents: usize,
    /// The most sessions open at once, all callers together (default 1024).
    pub max_sessions: usize,
    /// The most sessions one caller may have open at once (default 32).
    pub max_sessions_per_caller: usize,
    /// How long a caller has to send its preamble (default 10 s), and the host to send
    /// its answer.
    pub handshake_timeout: Duration,
    /// The longest one request may run in an agent before it is cancelled and the caller
    /// told [`codes::TIMED_OUT`](crate::codes::TIMED_OUT) (default 60 s).
    pub request_timeout: Duration,
    /// The longest MCP message accepted from a caller, in bytes (default 4 MiB); longer
    /// ones are dropped.
    pub max_message_len: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            max_agents: 256,
            max_sessions: 1024,
            max_sessions_per_caller: 32,
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
        }
    }
}

/// An agent could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddAgentError {
    /// An agent with this id is already registered; remove it first.
    #[error("an agent {0} is already registered")]
    Duplicate(AgentId),
    /// The host holds [`HostConfig::max_agents`] agents already.
    #[error("the host already holds its maximum of {0} agents")]
    Full(usize),
}

/// A stream could not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The caller's preamble was missing, late or malformed (the caller was told when
    /// possible).
    #[error("preamble: {0}")]
    Preamble(#[from] PreambleError),
    /// The host refused the stream and told the caller why.
    #[error("refused ({code:?}): {message}")]
    Refused {
        /// The code sent to the caller.
        code: RefuseCode,
        /// The message sent to the caller.
        message: String,
    },
    /// The MCP handshake failed (the caller sent something other than a handshake).
    #[error("MCP handshake: {0}")]
    Handshake(#[source] Box<ServerInitializeError>),
}

struct Entry {
    agent: Agent,
    /// Cancelled when the agent is removed: ends its sessions.
    stop: CancellationToken,
}

#[derive(Default)]
struct SessionCounts {
    total: usize,
    per_caller: HashMap<Caller, usize>,
}

struct HostInner {
    policy: Arc<dyn AccessPolicy>,
    config: HostConfig,
    agents: RwLock<BTreeMap<AgentId, Entry>>,
    sessions: Mutex<SessionCounts>,
    shutdown: CancellationToken,
}

/// The agents a node hosts, and the callee side of every MCP stream.
///
/// Cheap to clone (an `Arc`). Agents are added and removed at runtime; removing one ends
/// its open sessions. [`AgentHost::serve_stream`] serves one stream the node was given
/// (a QUIC stream from a peer, an in-process pipe from the node's own gateway): it reads the
/// preamble, admits or refuses the caller, then runs the MCP session until the stream ends,
/// consulting the [`AccessPolicy`] at open and on every request.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use dawn_mcp::{Agent, AgentHost, AllowAll, Caller, EchoAgent, HostConfig};
/// use tokio::time::Instant;
///
/// let host = AgentHost::new(Arc::new(AllowAll), HostConfig::default());
/// host.add("echo".parse()?, Agent::shared(EchoAgent::new()))?;
///
/// let deadline = Instant::now() + Duration::from_secs(5);
/// let echo = host.connect(Caller::Local, &"echo".parse()?, deadline).await?;
/// let args = serde_json::json!({ "text": "hi" });
/// let result = echo.call_tool("echo", args.as_object().cloned(), deadline).await?;
/// assert_eq!(result.content[0].as_text().map(|t| t.text.as_str()), Some("hi"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AgentHost {
    inner: Arc<HostInner>,
}

impl fmt::Debug for AgentHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentHost")
            .field("agents", &self.list())
            .finish_non_exhaustive()
    }
}

impl AgentHost {
    /// A host with no agents, enforcing `policy`.
    #[must_use]
    pub fn new(policy: Arc<dyn AccessPolicy>, config: HostConfig) -> Self {
        Self {
            inner: Arc::new(HostInner {
                policy,
                config,
                agents: RwLock::new(BTreeMap::new()),
                sessions: Mutex::new(SessionCounts::default()),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// The host's configuration.
    #[must_use]
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Registers `agent` under `id`.
    ///
    /// # Errors
    /// [`AddAgentError::Duplicate`] if the id is taken, [`AddAgentError::Full`] at
    /// [`HostConfig::max_agents`].
    pub fn add(&self, id: AgentId, agent: Agent) -> Result<(), AddAgentError> {
        let mut agents = self
            .inner
            .agents
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if agents.contains_key(&id) {
            return Err(AddAgentError::Duplicate(id));
        }
        if agents.len() >= self.inner.config.max_agents {
            return Err(AddAgentError::Full(self.inner.config.max_agents));
        }
        debug!(agent = %id, "agent added");
        agents.insert(
            id,
            Entry {
                agent,
                stop: self.inner.shutdown.child_token(),
            },
        );
        Ok(())
    }

    /// Removes the agent `id` and ends its open sessions; returns it, if it was there.
    pub fn remove(&self, id: &AgentId) -> Option<Agent> {
        let entry = self
            .inner
            .agents
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)?;
        entry.stop.cancel();
        debug!(agent = %id, "agent removed");
        Some(entry.agent)
    }

    /// The ids of the registered agents, in order.
    #[must_use]
    pub fn list(&self) -> Vec<AgentId> {
        self.inner
            .agents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// The agent registered under `id`.
    #[must_use]
    pub fn get(&self, id: &AgentId) -> Option<Agent> {
        self.entry(id).map(|(agent, _)| agent)
    }

    /// The number of MCP sessions open now.
    #[must_use]
    pub fn session_count(&self) -> usize {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    /// Ends every session and refuses new ones ([`RefuseCode::ShuttingDown`]).
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// The agent's summary for the mesh directory, from its own MCP listings, in process
    /// (no network, no access policy), giving up at `deadline`.
    ///
    /// # Errors
    /// [`CallError::UnknownAgent`]; [`CallError::TimedOut`]; any error of the listing.
    pub async fn describe(&self, id: &AgentId, deadline: Instant) -> Result<AgentInfo, CallError> {
        let (agent, _) = self
            .entry(id)
            .ok_or_else(|| CallError::UnknownAgent(id.clone()))?;
        describe_agent(&agent, id, deadline, &self.inner.config).await
    }

    /// [`AgentHost::describe`] for every agent; agents that fail are left out (and logged).
    pub async fn describe_all(&self, deadline: Instant) -> Vec<AgentInfo> {
        let mut infos = Vec::new();
        for id in self.list() {
            match self.describe(&id, deadline).await {
                Ok(info) => infos.push(info),
                Err(error) => warn!(agent = %id, %error, "cannot describe agent"),
            }
        }
        infos
    }

    /// Opens agent `agent` for `caller` over an in-process pipe and returns the client end:
    /// exactly what a stream from that caller would get (preamble, policy, limits), without
    /// a network. The node uses it for its own gateway (`Caller::Local`); tests use it to
    /// play peers.
    ///
    /// # Errors
    /// As [`connect_agent`].
    pub async fn connect(
        &self,
        caller: Caller,
        agent: &AgentId,
        deadline: Instant,
    ) -> Result<AgentClient, CallError> {
        let (client_end, host_end) = tokio::io::duplex(DUPLEX_BUFFER);
        let (host_read, host_write) = tokio::io::split(host_end);
        let host = self.clone();
        tokio::spawn(async move {
            if let Err(error) = host.serve_stream(caller, host_read, host_write).await {
                debug!(%error, "in-process session ended with an error");
            }
        });
        let (client_read, client_write) = tokio::io::split(client_end);
        connect_agent(client_read, client_write, agent, deadline).await
    }

    /// Serves one stream from `caller` until it ends: the preamble, then the MCP session.
    ///
    /// `reader` and `writer` are the two halves of the stream, e.g. a QUIC bidirectional
    /// stream's `RecvStream` and `SendStream`. Returns when the session ends (the caller
    /// closed the stream, the agent was removed, the host shut down).
    ///
    /// # Errors
    /// [`ServeError`]: the stream was refused or broke before the session started. Errors
    /// after the handshake end the session quietly; they are the caller's to see.
    pub async fn serve_stream<R, W>(
        &self,
        caller: Caller,
        mut reader: R,
        mut writer: W,
    ) -> Result<(), ServeError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let config = &self.inner.config;
        let handshake = config.handshake_timeout;
        let span =
            debug_span!("dawn_mcp.host.serve", caller = %caller, agent = tracing::field::Empty);
        let open = match timeout(handshake, preamble::read_frame(&mut reader)).await {
            Err(_) => return Err(PreambleError::TimedOut(handshake).into()),
            Ok(Err(error @ PreambleError::Io(_))) => return Err(error.into()),
            Ok(Err(error)) => {
                refuse(
                    &mut writer,
                    RefuseCode::Malformed,
                    &error.to_string(),
                    handshake,
                )
                .await;
                return Err(error.into());
            }
            Ok(Ok(payload)) => match OpenAgent::from_message(&payload) {
                Ok(open) => open,
                Err(error) => {
                    let code = match error {
                        PreambleError::UnsupportedVersion(_) => RefuseCode::UnsupportedVersion,
                        _ => RefuseCode::Malformed,
                    };
                    refuse(&mut writer, code, &error.to_string(), handshake).await;
                    return Err(error.into());
                }
            },
        };
        span.record("agent", open.agent.as_str());
        let (agent, stop, slot) = match self.admit(caller, &open.agent) {
            Ok(admitted) => admitted,
            Err((code, message)) => {
                debug!(parent: &span, ?code, %message, "stream refused");
                refuse(&mut writer, code, &message, handshake).await;
                return Err(ServeError::Refused { code, message });
            }
        };
        let accepted = OpenReply::Accepted.to_frame()?;
        match timeout(handshake, preamble::write_frame(&mut writer, &accepted)).await {
            Err(_) => return Err(PreambleError::TimedOut(handshake).into()),
            Ok(result) => result?,
        }
        let session = Session {
            inner: agent.session(),
            guard: Some(Guard {
                caller,
                agent: open.agent,
                policy: Arc::clone(&self.inner.policy),
            }),
            request_timeout: config.request_timeout,
        };
        let transport = AsyncRwTransport::<RoleServer, _, _>::new_server(reader, writer)
            .with_max_line_length(config.max_message_len);
        // No timeout here: a 2026-07-28 client may sit between `server/discover` and its
        // first request for as long as it likes, like any idle session. Idle sessions are
        // bounded by the per-caller session limit and the transport's idle timeout.
        let serve = serve_server_with_ct(session, transport, stop.child_token());
        let running = match serve.instrument(span.clone()).await {
            Ok(running) => running,
            // The caller left, the agent was removed or the host shut down before the
            // session began: an ordinary end.
            Err(ServerInitializeError::ConnectionClosed(_) | ServerInitializeError::Cancelled) => {
                debug!(parent: &span, "session ended before it began");
                return Ok(());
            }
            Err(error) => return Err(ServeError::Handshake(Box::new(error))),
        };
        debug!(parent: &span, "session open");
        let quit = running.waiting().await;
        debug!(parent: &span, ?quit, "session closed");
        drop(slot);
        Ok(())
    }

    fn entry(&self, id: &AgentId) -> Option<(Agent, CancellationToken)> {
        self.inner
            .agents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .map(|entry| (entry.agent.clone(), entry.stop.clone()))
    }

    /// Decides whether `caller` may open `agent` now.
    fn admit(
        &self,
        caller: Caller,
        agent: &AgentId,
    ) -> Result<(Agent, CancellationToken, SessionSlot), (RefuseCode, String)> {
        if self.inner.shutdown.is_cancelled() {
            return Err((RefuseCode::ShuttingDown, "the node is shutting down".into()));
        }
        let Some((handler, stop)) = self.entry(agent) else {
            return Err((
                RefuseCode::UnknownAgent,
                format!("no agent {agent} on this node"),
            ));
        };
        if let Err(denied) = self.inner.policy.check(&caller, agent, Action::Open) {
            let code = if denied.retry_after().is_some() {
                RefuseCode::RateLimited
            } else {
                RefuseCode::Denied
            };
            return Err((code, denial_message(&caller, agent, Action::Open, &denied)));
        }
        let slot = SessionSlot::take(&self.inner, caller).ok_or_else(|| {
            (
                RefuseCode::Busy,
                "too many MCP sessions; try again later".to_owned(),
            )
        })?;
        Ok((handler, stop, slot))
    }
}

/// Sends a refusal, best effort: the caller may already be gone.
async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut W,
    code: RefuseCode,
    message: &str,
    limit: Duration,
) {
    let Ok(frame) = OpenReply::refused(code, message).to_frame() else {
        return;
    };
    if let Ok(Err(error)) = timeout(limit, preamble::write_frame(writer, &frame)).await {
        debug!(%error, "could not send refusal");
    }
}

/// One admitted session, counted until dropped.
struct SessionSlot {
    host: Arc<HostInner>,
    caller: Caller,
}

impl SessionSlot {
    fn take(host: &Arc<HostInner>, caller: Caller) -> Option<Self> {
        let mut counts = host.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = counts.per_caller.get(&caller).copied().unwrap_or(0);
        if counts.total >= host.config.max_sessions || mine >= host.config.max_sessions_per_caller {
            return None;
        }
        counts.total += 1;
        counts.per_caller.insert(caller, mine + 1);
        Some(Self {
            host: Arc::clone(host),
            caller,
        })
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut counts = self
            .host
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(mine) = counts.per_caller.get_mut(&self.caller) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                counts.per_caller.remove(&self.caller);
            }
        }
    }
}

/// Who the session's requests are checked for; `None` for the host's own introspection.
struct Guard {
    caller: Caller,
    agent: AgentId,
    policy: Arc<dyn AccessPolicy>,
}

/// An agent's handler for one session, wrapped so that every request is checked against
/// the policy, bounded in time and stopped when the caller cancels it.
struct Session {
    inner: Box<dyn DynService<RoleServer>>,
    guard: Option<Guard>,
    request_timeout: Duration,
}

/// The action a request performs, for the policy; `None` for session housekeeping
/// (initialize, discover, ping, logging level, task follow-ups).
fn action_of(request: &ClientRequest) -> Option<Action<'_>> {
    Some(match request {
        ClientRequest::CallToolRequest(r) => Action::CallTool(&r.params.name),
        ClientRequest::ReadResourceRequest(r) => Action::ReadResource(&r.params.uri),
        ClientRequest::SubscribeRequest(r) => Action::ReadResource(&r.params.uri),
        ClientRequest::GetSkillRequest(r) => Action::ReadResource(&r.params.uri),
        ClientRequest::ReadResourceDirectoryRequest(r) => Action::ReadResource(&r.params.uri),
        ClientRequest::GetPromptRequest(r) => Action::GetPrompt(&r.params.name),
        ClientRequest::ListToolsRequest(_)
        | ClientRequest::ListResourcesRequest(_)
        | ClientRequest::ListResourceTemplatesRequest(_)
        | ClientRequest::ListPromptsRequest(_)
        | ClientRequest::CompleteRequest(_)
        | ClientRequest::SubscriptionsListenRequest(_)
        | ClientRequest::ListSkillsRequest(_) => Action::List,
        ClientRequest::PingRequest(_)
        | ClientRequest::InitializeRequest(_)
        | ClientRequest::DiscoverRequest(_)
        | ClientRequest::SetLevelRequest(_)
        | ClientRequest::UnsubscribeRequest(_)
        | ClientRequest::GetTaskRequest(_)
        | ClientRequest::UpdateTaskRequest(_)
        | ClientRequest::CancelTaskRequest(_) => return None,
        other => Action::Other(other.method()),
    })
}

/// The request id a caller put in a request's `_meta` under [`REQUEST_ID_META`], if it is a
/// sane one (1 to 64 ASCII alphanumerics or `-`). rmcp moves a request's `_meta` into its
/// context before the handler sees it, so it is read from there.
fn request_id_of(meta: &rmcp::model::RequestMetaObject) -> Option<&str> {
    let id = meta.0.get(REQUEST_ID_META)?.as_str()?;
    let sane =
        (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    sane.then_some(id)
}

impl Service<RoleServer> for Session {
    async fn handle_request(
        &self,
        request: ClientRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        // A tool call that carries the caller's request id is logged under it, so one call
        // can be followed across both nodes' logs.
        let span = match (request_id_of(&context.meta), &self.guard, &request) {
            (Some(id), Some(guard), ClientRequest::CallToolRequest(call)) => {
                let span = tracing::info_span!(
                    "dawn_mcp.host.request",
                    dawn.req_id = %id,
                    caller = %guard.caller,
                    agent = %guard.agent,
                    tool = %call.params.name,
                );
                span.in_scope(|| tracing::info!("agent tool call received"));
                span
            }
            _ => tracing::Span::none(),
        };
        self.handle_checked(request, context).instrument(span).await
    }

    async fn handle_notification(
        &self,
        notification: ClientNotification,
        context: NotificationContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        DynService::handle_notification(self.inner.as_ref(), notification, context).await
    }

    fn get_info(&self) -> ServerConfig {
        DynService::get_info(self.inner.as_ref())
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        DynService::supported_protocol_versions(self.inner.as_ref())
    }
}

impl Session {
    async fn handle_checked(
        &self,
        request: ClientRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        if let Some(guard) = &self.guard
            && let Some(action) = action_of(&request)
            && let Err(denied) = guard.policy.check(&guard.caller, &guard.agent, action)
        {
            let message = denial_message(&guard.caller, &guard.agent, action, &denied);
            debug!(caller = %guard.caller, agent = %guard.agent, %message, "request denied");
            if let Some(after) = denied.retry_after() {
                return Err(rate_limited_error(message, after));
            }
            return Err(denied_error(message, denied.reason()));
        }
        // A subscription lasts as long as the caller wants it; everything else is bounded.
        let bounded = !matches!(request, ClientRequest::SubscriptionsListenRequest(_));
        let cancelled = context.ct.clone();
        let handle = DynService::handle_request(self.inner.as_ref(), request, context);
        let limit = self.request_timeout;
        let work = async move {
            if bounded {
                timeout(limit, handle)
                    .await
                    .unwrap_or_else(|_| Err(timed_out_error(limit)))
            } else {
                handle.await
            }
        };
        // Dropping the handler's future is what stops it: rmcp only cancels a token.
        tokio::select! {
            result = work => result,
            () = cancelled.cancelled() => {
                Err(ErrorData::internal_error("request cancelled by the caller", None))
            }
        }
    }
}

/// Lists an agent's offerings over an in-process session that skips the preamble and the
/// policy.
async fn describe_agent(
    agent: &Agent,
    id: &AgentId,
    deadline: Instant,
    config: &HostConfig,
) -> Result<AgentInfo, CallError> {
    let (client_end, host_end) = tokio::io::duplex(DUPLEX_BUFFER);
    let session = Session {
        inner: agent.session(),
        guard: None,
        request_timeout: config.request_timeout,
    };
    let stop = CancellationToken::new();
    let serve_stop = stop.clone();
    tokio::spawn(async move {
        let (read, write) = tokio::io::split(host_end);
        let transport = AsyncRwTransport::<RoleServer, _, _>::new_server(read, write);
        if let Ok(running) = serve_server_with_ct(session, transport, serve_stop).await {
            let _ = running.waiting().await;
        }
    });
    let _stop_on_return = stop.drop_guard();
    let (read, write) = tokio::io::split(client_end);
    let transport = AsyncRwTransport::<RoleClient, _, _>::new_client(read, write);
    let config = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("dawn-mcp-describe", env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(ProtocolVersion::V_2025_11_25);
    let running = timeout_at(
        deadline,
        config.serve_with_lifecycle(transport, ClientLifecycleMode::Initialize),
    )
    .await
    .map_err(|_| CallError::TimedOut)?
    .map_err(|error| CallError::Protocol {
        detail: format!("MCP handshake failed: {error}"),
    })?;
    let peer = running.peer().clone();
    let info = peer.peer_info();
    let capabilities = info
        .as_ref()
        .map(|info| info.capabilities.clone())
        .unwrap_or_default();
    let implementation = info.as_ref().and_then(|info| info.server_info.clone());
    let name = implementation
        .as_ref()
        .map(|server| server.title.clone().unwrap_or_else(|| server.name.clone()))
        .unwrap_or_else(|| id.to_string());
    let description = implementation
        .as_ref()
        .and_then(|server| server.description.clone())
        .or_else(|| info.as_ref().and_then(|info| info.instructions.clone()))
        .unwrap_or_default();
    let mut summary = AgentInfo::new(id.clone(), &name, &description);
    if capabilities.tools.is_some() {
        let tools = within(deadline, peer.list_all_tools()).await?;
        summary.tools = tools
            .iter()
            .take(MAX_INFO_ITEMS)
            .map(|tool| info_item(&tool.name, tool.description.as_deref().unwrap_or_default()))
            .collect();
    }
    if capabilities.resources.is_some() {
        let resources = within(deadline, peer.list_all_resources()).await?;
        summary.resources = resources
            .iter()
            .take(MAX_INFO_ITEMS)
            .map(|resource| info_item(&resource.uri, &resource.name))
            .collect();
    }
    if capabilities.prompts.is_some() {
        let prompts = within(deadline, peer.list_all_prompts()).await?;
        summary.prompts = prompts
            .iter()
            .take(MAX_INFO_ITEMS)
            .map(|prompt| {
                info_item(
                    &prompt.name,
                    prompt.description.as_deref().unwrap_or_default(),
                )
            })
            .collect();
    }
    Ok(summary)
}

/// Runs an rmcp request until `deadline`.
async fn within<T>(
    deadline: Instant,
    request: impl Future<Output = Result<T, rmcp::ServiceError>>,
) -> Result<T, CallError> {
    timeout_at(deadline, request)
        .await
        .map_err(|_| CallError::TimedOut)?
        .map_err(CallError::from_service)
}

#[cfg(test)]
mod tests {
    use rmcp::model::RequestMetaObject;
    use serde_json::Value;

    use super::request_id_of;
    use crate::REQUEST_ID_META;

    fn meta(value: Value) -> RequestMetaObject {
        let mut meta = RequestMetaObject::new();
        meta.0.insert(REQUEST_ID_META.to_owned(), value);
        meta
    }

    #[test]
    fn only_sane_request_ids_are_logged() {
        let id = "7410e1328e521086100cfd9da5a279b7";
        assert_eq!(request_id_of(&meta(Value::from(id))), Some(id));
        assert_eq!(request_id_of(&RequestMetaObject::new()), None);
        for bad in [
            Value::from(""),
            Value::from("x".repeat(65)),
            Value::from("new\nline"),
            Value::from("a b"),
            Value::from(42),
        ] {
            assert_eq!(request_id_of(&meta(bad.clone())), None, "{bad}");
        }
    }
}
