//! Calling an agent over a given stream: the caller's side of the preamble, then an rmcp
//! client session.

use std::fmt;
use std::sync::Arc;

use dawn_identity::AgentId;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation, JsonObject,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, Prompt, ProtocolVersion, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ServerPeerInfo, Tool,
};
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt, Peer, RoleClient, RunningService, ServiceError,
};
use rmcp::transport::async_rw::AsyncRwTransport;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};
use tracing::debug;

use crate::error::CallError;
use crate::preamble::{self, OpenAgent, OpenReply, RefuseCode};

/// The default bound on one MCP message (one JSON-RPC line), in bytes, each way.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 4 * 1024 * 1024;

/// The most pages an [`AgentClient`] follows when it lists everything.
const MAX_LIST_PAGES: usize = 32;

/// The most items an [`AgentClient`] collects when it lists everything.
pub const MAX_LISTED_ITEMS: usize = 4096;

/// The MCP protocol generation an [`AgentClient`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum McpVersion {
    /// `2025-11-25`: the `initialize` handshake, then a stateful session.
    V2025_11_25,
    /// `2026-07-28`: `server/discover`, then self-contained requests with their own `_meta`.
    #[default]
    V2026_07_28,
}

impl McpVersion {
    /// The protocol version string.
    #[must_use]
    pub fn protocol_version(self) -> ProtocolVersion {
        match self {
            Self::V2025_11_25 => ProtocolVersion::V_2025_11_25,
            Self::V2026_07_28 => ProtocolVersion::V_2026_07_28,
        }
    }
}

/// How [`connect_agent_with`] sets up the session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The protocol generation to speak (default [`McpVersion::V2026_07_28`]).
    pub version: McpVersion,
    /// The longest MCP message accepted from the agent (default
    /// [`DEFAULT_MAX_MESSAGE_LEN`]); longer ones are dropped.
    pub max_message_len: usize,
    /// The name this client gives in `clientInfo` (default `dawn-mcp`).
    pub client_name: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            version: McpVersion::default(),
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            client_name: "dawn-mcp".to_owned(),
        }
    }
}

/// Opens the agent `agent` on a stream to its node and starts an MCP client session, giving
/// up at `deadline`.
///
/// Writes the [`OpenAgent`] preamble, reads the [`OpenReply`], and on acceptance runs the
/// rmcp client over the rest of the stream ([`McpVersion::V2026_07_28`]; see
/// [`connect_agent_with`] for other options). The session lives as long as some clone of
/// the returned [`AgentClient`].
///
/// # Errors
/// [`CallError::UnknownAgent`], [`CallError::Denied`] or [`CallError::Refused`] when the
/// callee refuses; [`CallError::TimedOut`] at the deadline; [`CallError::Closed`] or
/// [`CallError::Protocol`] when the stream breaks or speaks nonsense.
pub async fn connect_agent<R, W>(
    reader: R,
    writer: W,
    agent: &AgentId,
    deadline: Instant,
) -> Result<AgentClient, CallError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    connect_agent_with(reader, writer, agent, deadline, &ClientOptions::default()).await
}

/// [`connect_agent`] with [`ClientOptions`].
///
/// # Errors
/// As [`connect_agent`].
pub async fn connect_agent_with<R, W>(
    mut reader: R,
    mut writer: W,
    agent: &AgentId,
    deadline: Instant,
    options: &ClientOptions,
) -> Result<AgentClient, CallError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let preamble = async {
        let frame = OpenAgent::new(agent.clone())
            .to_frame()
            .map_err(protocol_error)?;
        preamble::write_frame(&mut writer, &frame)
            .await
            .map_err(stream_error)?;
        let reply = preamble::read_frame(&mut reader)
            .await
            .map_err(stream_error)?;
        OpenReply::from_message(&reply).map_err(protocol_error)
    };
    match timeout_at(deadline, preamble).await {
        Err(_) => return Err(CallError::TimedOut),
        Ok(Err(error)) => return Err(error),
        Ok(Ok(OpenReply::Accepted)) => {}
        Ok(Ok(OpenReply::Refused { code, message })) => {
            return Err(match code {
                RefuseCode::UnknownAgent => CallError::UnknownAgent(agent.clone()),
                RefuseCode::Denied => CallError::Denied { message },
                RefuseCode::RateLimited => CallError::RateLimited {
                    message,
                    retry_after: None,
                },
                code => CallError::Refused {
                    code,
                    reason: message,
                },
            });
        }
    }
    let transport = AsyncRwTransport::<RoleClient, _, _>::new_client(reader, writer)
        .with_max_line_length(options.max_message_len);
    let lifecycle = match options.version {
        McpVersion::V2025_11_25 => ClientLifecycleMode::Initialize,
        McpVersion::V2026_07_28 => ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28, ProtocolVersion::V_2025_11_25],
        },
    };
    let config = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(options.client_name.clone(), env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(options.version.protocol_version());
    let running =
        match timeout_at(deadline, config.serve_with_lifecycle(transport, lifecycle)).await {
            Err(_) => return Err(CallError::TimedOut),
            Ok(Err(error)) => {
                return Err(CallError::Protocol {
                    detail: format!("MCP handshake failed: {error}"),
                });
            }
            Ok(Ok(running)) => running,
        };
    debug!(agent = %agent, "mcp session open");
    Ok(AgentClient {
        inner: Arc::new(ClientInner {
            agent: agent.clone(),
            running,
        }),
    })
}

fn stream_error(error: preamble::PreambleError) -> CallError {
    match error {
        preamble::PreambleError::Io(error) => CallError::Unreachable {
            reason: format!("stream failed during the preamble: {error}"),
        },
        other => protocol_error(other),
    }
}

fn protocol_error(error: preamble::PreambleError) -> CallError {
    CallError::Protocol {
        detail: error.to_string(),
    }
}

/// What an agent offers, as its MCP listings return it ([`AgentClient::listing`]).
///
/// Serializes to the MCP JSON shapes (`{"tools": [{"name", "description", "inputSchema",
/// ...}], "resources": [{"uri", "name", ...}], "prompts": [{"name", "arguments", ...}]}`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct AgentListing {
    /// The tools.
    pub tools: Vec<Tool>,
    /// The resources.
    pub resources: Vec<Resource>,
    /// The prompts.
    pub prompts: Vec<Prompt>,
}

struct ClientInner {
    agent: AgentId,
    running: RunningService<RoleClient, ClientConfig>,
}

/// An MCP client session with one agent.
///
/// Cheap to clone; clones share the session, which closes when the last clone is dropped.
/// Requests may run concurrently. Every request takes a deadline: when it passes, the
/// request is cancelled and [`CallError::TimedOut`] returned. Dropping a request's future
/// before it completes cancels the request too: the agent gets MCP
/// `notifications/cancelled` and its handler is stopped.
#[derive(Clone)]
pub struct AgentClient {
    inner: Arc<ClientInner>,
}

impl fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentClient")
            .field("agent", &self.inner.agent)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl AgentClient {
    /// The agent this session talks to.
    #[must_use]
    pub fn agent(&self) -> &AgentId {
        &self.inner.agent
    }

    /// What the agent said about itself when the session opened (protocol version,
    /// capabilities, name, instructions).
    #[must_use]
    pub fn server_info(&self) -> Option<Arc<ServerPeerInfo>> {
        self.peer().peer_info()
    }

    /// Whether the session has ended (the stream closed or the agent went away).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.peer().is_transport_closed()
    }

    /// The rmcp peer, for requests this type does not wrap (no deadline is applied).
    #[must_use]
    pub fn peer(&self) -> &Peer<RoleClient> {
        self.inner.running.peer()
    }

    /// Everything the agent offers, for a live view such as the node's
    /// `GET /api/agents/{node_id}/{agent_id}`: its tools, resources and prompts (each list
    /// empty when the agent does not declare that capability).
    ///
    /// # Errors
    /// [`CallError`] of any of the listings.
    pub async fn listing(&self, deadline: Instant) -> Result<AgentListing, CallError> {
        let capabilities = self
            .server_info()
            .map(|info| info.capabilities.clone())
            .unwrap_or_default();
        let tools = if capabilities.tools.is_some() {
            self.list_tools(deadline).await?
        } else {
            Vec::new()
        };
        let resources = if capabilities.resources.is_some() {
            self.list_resources(deadline).await?
        } else {
            Vec::new()
        };
        let prompts = if capabilities.prompts.is_some() {
            self.list_prompts(deadline).await?
        } else {
            Vec::new()
        };
        Ok(AgentListing {
            tools,
            resources,
            prompts,
        })
    }

    /// Every tool of the agent (all pages, at most [`MAX_LISTED_ITEMS`]).
    ///
    /// # Errors
    /// [`CallError`]; see the type's docs.
    pub async fn list_tools(&self, deadline: Instant) -> Result<Vec<Tool>, CallError> {
        self.list_all(deadline, |peer, cursor| async move {
            let page = peer.list_tools(cursor).await?;
            Ok((page.tools, page.next_cursor))
        })
        .await
    }

    /// Calls a tool with JSON object arguments (`None` for none).
    ///
    /// A tool that runs and fails returns `Ok` with `is_error: Some(true)`; `Err` means the
    /// call itself failed (unknown tool, invalid arguments, denied, unreachable...).
    ///
    /// # Errors
    /// [`CallError`]; an agent that answers with an MRTR `input_required` or a task is a
    /// [`CallError::Protocol`] here (use [`AgentClient::call_tool_raw`] to see those).
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
        deadline: Instant,
    ) -> Result<CallToolResult, CallError> {
        let mut params = CallToolRequestParams::new(name.to_owned());
        params.arguments = arguments;
        match self.call_tool_raw(params, deadline).await? {
            CallToolResponse::Complete(result) => Ok(result),
            _ => Err(CallError::Protocol {
                detail: "the agent asked for input or started a task; not supported here".into(),
            }),
        }
    }

    /// Sends `tools/call` as given and returns whatever the agent answers, MRTR and task
    /// results included (for proxies).
    ///
    /// # Errors
    /// [`CallError`].
    pub async fn call_tool_raw(
        &self,
        params: CallToolRequestParams,
        deadline: Instant,
    ) -> Result<CallToolResponse, CallError> {
        self.request(deadline, self.peer().call_tool_once(params))
            .await
    }

    /// Every resource of the agent (all pages, at most [`MAX_LISTED_ITEMS`]).
    ///
    /// # Errors
    /// [`CallError`].
    pub async fn list_resources(&self, deadline: Instant) -> Result<Vec<Resource>, CallError> {
        self.list_all(deadline, |peer, cursor| async move {
            let page = peer.list_resources(cursor).await?;
            Ok((page.resources, page.next_cursor))
        })
        .await
    }

    /// Reads a resource.
    ///
    /// # Errors
    /// [`CallError`]; an MRTR `input_required` answer is a [`CallError::Protocol`] here.
    pub async fn read_resource(
        &self,
        uri: &str,
        deadline: Instant,
    ) -> Result<ReadResourceResult, CallError> {
        match self
            .read_resource_raw(ReadResourceRequestParams::new(uri.to_owned()), deadline)
            .await?
        {
            ReadResourceResponse::Complete(result) => Ok(result),
            _ => Err(CallError::Protocol {
                detail: "the agent asked for input to read a resource; not supported here".into(),
            }),
        }
    }

    /// Sends `resources/read` as given and returns whatever the agent answers.
    ///
    /// # Errors
    /// [`CallError`].
    pub async fn read_resource_raw(
        &self,
        params: ReadResourceRequestParams,
        deadline: Instant,
    ) -> Result<ReadResourceResponse, CallError> {
        self.request(deadline, self.peer().read_resource_once(params))
            .await
    }

    /// Every prompt of the agent (all pages, at most [`MAX_LISTED_ITEMS`]).
    ///
    /// # Errors
    /// [`CallError`].
    pub async fn list_prompts(&self, deadline: Instant) -> Result<Vec<Prompt>, CallError> {
        self.list_all(deadline, |peer, cursor| async move {
            let page = peer.list_prompts(cursor).await?;
            Ok((page.prompts, page.next_cursor))
        })
        .await
    }

    /// Gets a prompt with its arguments (`None` for none).
    ///
    /// # Errors
    /// [`CallError`]; an MRTR `input_required` answer is a [`CallError::Protocol`] here.
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
        deadline: Instant,
    ) -> Result<GetPromptResult, CallError> {
        let mut params = GetPromptRequestParams::new(name.to_owned());
        params.arguments = arguments;
        match self.get_prompt_raw(params, deadline).await? {
            GetPromptResponse::Complete(result) => Ok(result),
            _ => Err(CallError::Protocol {
                detail: "the agent asked for input to build a prompt; not supported here".into(),
            }),
        }
    }

    /// Sends `prompts/get` as given and returns whatever the agent answers.
    ///
    /// # Errors
    /// [`CallError`].
    pub async fn get_prompt_raw(
        &self,
        params: GetPromptRequestParams,
        deadline: Instant,
    ) -> Result<GetPromptResponse, CallError> {
        self.request(deadline, self.peer().get_prompt_once(params))
            .await
    }

    /// One page of `tools/list`, as the agent answers it (for proxies).
    ///
    /// # Errors
    /// [`CallError`].
    pub async fn list_tools_page(
        &self,
        params: Option<PaginatedRequestParams>,
        deadline: Instant,
    ) -> Result<ListToolsResult, CallError> {
        self.request(deadline, self.peer().list_tools(params)).await
    }

    /// One page of `resources/list` (for proxies).
    ///
    /// # Errors
    /// [`CallError`].
    pub async fn list_resources_page(
        &self,
        params: Option<PaginatedRequestParams>,
        deadline: Instant,
    ) -> Result<ListResourcesResult, CallError> {
        self.request(deadline, self.peer().list_resources(params))
            .await
    }

    /// One page of `resources/templates/list` (for proxies).
    ///
    /// # Errors
    /// [`CallError`].
    pub async fn list_resource_templates_page(
        &self,
        params: Option<PaginatedRequestParams>,
        deadline: Instant,
    ) -> Result<ListResourceTemplatesResult, CallError> {
        self.request(deadline, self.peer().list_resource_templates(params))
            .await
    }

    /// One page of `prompts/list` (for proxies).
    ///
    /// # Errors
    /// [`CallError`].
    pub async fn list_prompts_page(
        &self,
        params: Option<PaginatedRequestParams>,
        deadline: Instant,
    ) -> Result<ListPromptsResult, CallError> {
        self.request(deadline, self.peer().list_prompts(params))
            .await
    }

    /// Closes the session now rather than when the last clone is dropped.
    pub fn close(&self) {
        self.inner.running.cancellation_token().cancel();
    }

    /// Runs one request until `deadline`. rmcp sends `notifications/cancelled` when the
    /// request future is dropped unfinished, which is what happens at the deadline and when
    /// the caller drops this future.
    async fn request<T>(
        &self,
        deadline: Instant,
        request: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, CallError> {
        match timeout_at(deadline, request).await {
            Err(_) => Err(CallError::TimedOut),
            Ok(result) => result.map_err(CallError::from_service),
        }
    }

    /// Follows pages until the end, [`MAX_LIST_PAGES`] pages or [`MAX_LISTED_ITEMS`] items.
    async fn list_all<T, F, Fut>(&self, deadline: Instant, page: F) -> Result<Vec<T>, CallError>
    where
        F: Fn(Peer<RoleClient>, Option<PaginatedRequestParams>) -> Fut,
        Fut: Future<Output = Result<(Vec<T>, Option<String>), ServiceError>>,
    {
        let mut items = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_LIST_PAGES {
            let params =
                cursor.map(|cursor| PaginatedRequestParams::default().with_cursor(Some(cursor)));
            let (mut batch, next) = self
                .request(deadline, page(self.peer().clone(), params))
                .await?;
            batch.truncate(MAX_LISTED_ITEMS.saturating_sub(items.len()));
            items.append(&mut batch);
            match next {
                Some(next) if items.len() < MAX_LISTED_ITEMS => cursor = Some(next),
                _ => break,
            }
        }
        Ok(items)
    }
}
