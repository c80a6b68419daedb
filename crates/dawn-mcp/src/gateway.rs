//! The mesh gateway: one MCP server in front of every agent on the mesh, and a proxy in
//! front of one.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dawn_identity::{AgentAddr, NODE_ID_TEXT_LEN};
use futures_util::stream::{self, StreamExt};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
    Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::client::AgentClient;
use crate::error::CallError;

/// The future [`Mesh::open`] returns.
pub type OpenFuture = Pin<Box<dyn Future<Output = Result<AgentClient, CallError>> + Send>>;

/// The mesh as the gateway sees it; the node implements it.
///
/// ```text
/// agents(): every online agent in the directory, this node's included
/// open(addr, deadline):
///     addr on this node  -> host.connect(Caller::Local, agent, deadline)
///     addr on a peer     -> transport.connect(node) -> connection.open_stream(STREAM_PROTOCOL)
///                           -> connect_agent(recv, send, agent, deadline)
/// ```
pub trait Mesh: Send + Sync + 'static {
    /// The agents to expose, local and remote.
    fn agents(&self) -> Vec<AgentAddr>;

    /// Opens an MCP session with the agent at `addr`, giving up at `deadline`.
    fn open(&self, addr: &AgentAddr, deadline: Instant) -> OpenFuture;
}

/// How many characters of the node id a qualified tool name carries.
///
/// 10 base32 characters (50 bits), like `NodeId::fmt_short`. Two nodes sharing a prefix is
/// not a security problem: names that collide are detected and left out, never routed to
/// the wrong node.
pub const NODE_PREFIX_LEN: usize = 10;

/// The longest tool name MCP allows.
pub const MAX_TOOL_NAME_LEN: usize = 128;

/// The name under which [`MeshGateway`] exposes `tool` of the agent at `addr`, or `None`
/// if there is none.
///
/// The scheme is `<agent_id>.<tool>.<node prefix>`, the prefix being the first
/// [`NODE_PREFIX_LEN`] characters of the node id: `echo.chat.hr5kzmqbmz`. It reads well
/// (agent and tool first), stays within MCP's tool-name rules (1 to 128 characters of
/// `A-Z a-z 0-9 _ - .`) and is stable: the same tool has the same name on every listing and
/// on every node's gateway. `None` when `tool` is empty, has a character outside those
/// rules, or the result would be longer than [`MAX_TOOL_NAME_LEN`]; the gateway leaves such
/// tools out and logs them. Since agent ids and tool names may both contain `.`, two
/// different tools can in principle produce the same name; the gateway detects that and
/// leaves every tool of a colliding name out, so a name never routes ambiguously.
#[must_use]
pub fn qualified_tool_name(addr: &AgentAddr, tool: &str) -> Option<String> {
    if tool.is_empty()
        || !tool
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return None;
    }
    let node = addr.node().to_string();
    let prefix = node.get(..NODE_PREFIX_LEN.min(NODE_ID_TEXT_LEN))?;
    let name = format!("{}.{tool}.{prefix}", addr.agent());
    (name.len() <= MAX_TOOL_NAME_LEN).then_some(name)
}

/// Limits and timings of a [`MeshGateway`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// How long a tool listing is reused before the agents are asked again (default 5 s).
    pub listing_ttl: Duration,
    /// How long one agent may take to open and list its tools (default 3 s); slower agents
    /// are left out of that listing (or keep their previous listing).
    pub listing_timeout: Duration,
    /// How long a routed call may take (default 60 s).
    pub call_timeout: Duration,
    /// How many agents are asked for their tools at once (default 16).
    pub listing_concurrency: usize,
    /// The most agents exposed (default 1024).
    pub max_agents: usize,
    /// The most open sessions kept for reuse (default 64).
    pub max_pooled_sessions: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listing_ttl: Duration::from_secs(5),
            listing_timeout: Duration::from_secs(3),
            call_timeout: Duration::from_secs(60),
            listing_concurrency: 16,
            max_agents: 1024,
            max_pooled_sessions: 64,
        }
    }
}

/// Where a qualified tool name leads.
#[derive(Debug, Clone)]
struct Route {
    addr: AgentAddr,
    tool: String,
}

/// The mesh's tools under their qualified names, and where each leads.
#[derive(Debug, Default)]
struct ToolTable {
    tools: Vec<Tool>,
    routes: HashMap<String, Route>,
}

struct Listing {
    fetched: Instant,
    tools: Arc<Vec<Tool>>,
}

#[derive(Default)]
struct State {
    listings: HashMap<AgentAddr, Listing>,
    table: Option<(Instant, Arc<ToolTable>)>,
    pool: HashMap<AgentAddr, AgentClient>,
}

struct Shared {
    mesh: Arc<dyn Mesh>,
    config: GatewayConfig,
    state: Mutex<State>,
    /// Held while the listing is refreshed, so concurrent listers wait for one refresh.
    refresh: tokio::sync::Mutex<()>,
}

/// One MCP server for the whole mesh: lists the tools of every agent under qualified names
/// ([`qualified_tool_name`]) and routes each call to the agent's node through [`Mesh`].
///
/// Cheap to clone; clones share the listing cache and the session pool, so an HTTP server
/// can hand a clone to every MCP session. Listings are cached for
/// [`GatewayConfig::listing_ttl`], per agent, so listing the mesh is not a round trip to
/// every agent per request; sessions to agents are kept open (at most
/// [`GatewayConfig::max_pooled_sessions`]) and reused.
#[derive(Clone)]
pub struct MeshGateway {
    shared: Arc<Shared>,
}

impl fmt::Debug for MeshGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshGateway")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl MeshGateway {
    /// A gateway over `mesh`.
    #[must_use]
    pub fn new(mesh: Arc<dyn Mesh>, config: GatewayConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                mesh,
                config,
                state: Mutex::new(State::default()),
                refresh: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The gateway's configuration.
    #[must_use]
    pub fn config(&self) -> &GatewayConfig {
        &self.shared.config
    }

    /// A proxy for the one agent at `addr`, sharing this gateway's session pool.
    #[must_use]
    pub fn agent_proxy(&self, addr: AgentAddr) -> AgentProxy {
        AgentProxy {
            gateway: self.clone(),
            addr,
        }
    }

    /// Forgets every cached listing (for example when the directory changed), so the next
    /// listing asks the agents again.
    pub fn invalidate(&self) {
        let mut state = self.state();
        state.listings.clear();
        state.table = None;
    }

    /// Every tool on the mesh under its qualified name, descriptions prefixed with
    /// `[<agent> on <node prefix>]`.
    pub async fn tools(&self) -> Vec<Tool> {
        self.table().await.tools.clone()
    }

    /// Calls the tool exposed as `qualified` (a name from [`MeshGateway::tools`]).
    ///
    /// # Errors
    /// [`CallError::Agent`] with MCP invalid-params for a name that is not on the current
    /// listing; otherwise the call's errors.
    pub async fn call_tool(
        &self,
        qualified: &str,
        arguments: Option<rmcp::model::JsonObject>,
        deadline: Instant,
    ) -> Result<rmcp::model::CallToolResult, CallError> {
        let route = self.route(qualified).await?;
        let client = self.client(&route.addr, deadline).await?;
        let result = client.call_tool(&route.tool, arguments, deadline).await;
        self.forget_if_closed(&route.addr, &client, &result);
        result
    }

    /// A session with the agent at `addr`: a pooled one if it is still open, else a new one
    /// from [`Mesh::open`] (which is then pooled). The node's REST endpoints use this too.
    ///
    /// # Errors
    /// Whatever [`Mesh::open`] fails with.
    pub async fn client(
        &self,
        addr: &AgentAddr,
        deadline: Instant,
    ) -> Result<AgentClient, CallError> {
        if let Some(client) = self.state().pool.get(addr)
            && !client.is_closed()
        {
            return Ok(client.clone());
        }
        let client = self.shared.mesh.open(addr, deadline).await?;
        let mut state = self.state();
        if state.pool.len() >= self.shared.config.max_pooled_sessions
            && !state.pool.contains_key(addr)
        {
            let victim = state
                .pool
                .iter()
                .find(|(_, client)| client.is_closed())
                .or_else(|| state.pool.iter().next())
                .map(|(addr, _)| addr.clone());
            if let Some(victim) = victim {
                state.pool.remove(&victim);
            }
        }
        if self.shared.config.max_pooled_sessions > 0 {
            state.pool.insert(addr.clone(), client.clone());
        }
        Ok(client)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops a pooled session that turned out to be closed, so the next call opens anew.
    fn forget_if_closed<T>(
        &self,
        addr: &AgentAddr,
        client: &AgentClient,
        result: &Result<T, CallError>,
    ) {
        if matches!(result, Err(CallError::Closed)) || client.is_closed() {
            let mut state = self.state();
            if state.pool.get(addr).is_some_and(AgentClient::is_closed)
                || matches!(result, Err(CallError::Closed))
            {
                state.pool.remove(addr);
            }
        }
    }

    async fn route(&self, qualified: &str) -> Result<Route, CallError> {
        self.table()
            .await
            .routes
            .get(qualified)
            .cloned()
            .ok_or_else(|| {
                CallError::Agent(ErrorData::invalid_params(
                    format!(
                        "no tool {} on the mesh; list the tools again",
                        crate::text::truncate(qualified, MAX_TOOL_NAME_LEN)
                    ),
                    None,
                ))
            })
    }

    /// The current table, refreshed if older than the TTL.
    async fn table(&self) -> Arc<ToolTable> {
        if let Some(table) = self.fresh_table() {
            return table;
        }
        let _refreshing = self.shared.refresh.lock().await;
        if let Some(table) = self.fresh_table() {
            return table;
        }
        let table = Arc::new(self.refresh().await);
        self.state().table = Some((Instant::now(), Arc::clone(&table)));
        table
    }

    fn fresh_table(&self) -> Option<Arc<ToolTable>> {
        let state = self.state();
        let (built, table) = state.table.as_ref()?;
        (built.elapsed() < self.shared.config.listing_ttl).then(|| Arc::clone(table))
    }

    /// Asks every agent whose listing is stale for its tools, then builds the table.
    async fn refresh(&self) -> ToolTable {
        let config = &self.shared.config;
        let mut agents = self.shared.mesh.agents();
        agents.sort();
        agents.dedup();
        if agents.len() > config.max_agents {
            warn!(
                agents = agents.len(),
                max = config.max_agents,
                "too many agents; exposing the first"
            );
            agents.truncate(config.max_agents);
        }
        let stale: Vec<AgentAddr> = {
            let state = self.state();
            agents
                .iter()
                .filter(|addr| {
                    state
                        .listings
                        .get(*addr)
                        .is_none_or(|listing| listing.fetched.elapsed() >= config.listing_ttl)
                })
                .cloned()
                .collect()
        };
        let fetched: Vec<(AgentAddr, Result<Vec<Tool>, CallError>)> = stream::iter(stale)
            .map(|addr| async move {
                let deadline = Instant::now() + self.shared.config.listing_timeout;
                let result = match self.client(&addr, deadline).await {
                    Ok(client) => {
                        let result = client.list_tools(deadline).await;
                        self.forget_if_closed(&addr, &client, &result);
                        result
                    }
                    Err(error) => Err(error),
                };
                (addr, result)
            })
            .buffer_unordered(config.listing_concurrency.max(1))
            .collect()
            .await;
        let now = Instant::now();
        let mut state = self.state();
        for (addr, result) in fetched {
            match result {
                Ok(tools) => {
                    state.listings.insert(
                        addr,
                        Listing {
                            fetched: now,
                            tools: Arc::new(tools),
                        },
                    );
                }
                Err(error) => {
                    // Keep a previous listing: a node that is slow once keeps its tools.
                    warn!(agent = %addr.fmt_short(), %error, "cannot list the agent's tools");
                }
            }
        }
        state
            .listings
            .retain(|addr, _| agents.binary_search(addr).is_ok());
        state
            .pool
            .retain(|addr, _| agents.binary_search(addr).is_ok());
        let listed: Vec<(AgentAddr, Arc<Vec<Tool>>)> = agents
            .iter()
            .filter_map(|addr| {
                state
                    .listings
                    .get(addr)
                    .map(|listing| (addr.clone(), Arc::clone(&listing.tools)))
            })
            .collect();
        drop(state);
        build_table(&listed)
    }
}

/// Qualifies every tool, leaving out invalid and colliding names.
fn build_table(listed: &[(AgentAddr, Arc<Vec<Tool>>)]) -> ToolTable {
    let mut by_name: BTreeMap<String, Vec<(AgentAddr, &Tool)>> = BTreeMap::new();
    for (addr, tools) in listed {
        for tool in tools.iter() {
            match qualified_tool_name(addr, &tool.name) {
                Some(name) => by_name.entry(name).or_default().push((addr.clone(), tool)),
                None => debug!(
                    agent = %addr.fmt_short(),
                    tool = %crate::text::truncate(&tool.name, MAX_TOOL_NAME_LEN),
                    "tool left out of the gateway: its qualified name would break MCP's rules"
                ),
            }
        }
    }
    let mut table = ToolTable::default();
    for (name, mut entries) in by_name {
        if entries.len() > 1 {
            warn!(name = %name, count = entries.len(), "qualified tool names collide; leaving them out");
            continue;
        }
        let Some((addr, tool)) = entries.pop() else {
            continue;
        };
        let node = addr.node().to_string();
        let prefix = node.get(..NODE_PREFIX_LEN).unwrap_or_default();
        let mut exposed = tool.clone();
        exposed.name = name.clone().into();
        exposed.description = Some(
            format!(
                "[{} on {prefix}] {}",
                addr.agent(),
                tool.description.as_deref().unwrap_or_default()
            )
            .into(),
        );
        table.tools.push(exposed);
        table.routes.insert(
            name,
            Route {
                addr,
                tool: tool.name.to_string(),
            },
        );
    }
    table
}

/// Runs a forwarded request until the caller cancels it (dropping the request future sends
/// the agent `notifications/cancelled`) and turns its error into an MCP error.
async fn forward<T>(
    context: &RequestContext<RoleServer>,
    request: impl Future<Output = Result<T, CallError>>,
) -> Result<T, ErrorData> {
    tokio::select! {
        result = request => result.map_err(|error| error.to_mcp_error()),
        () = context.ct.cancelled() => {
            Err(ErrorData::internal_error("request cancelled by the caller", None))
        }
    }
}

impl ServerHandler for MeshGateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("dawn-mesh", env!("CARGO_PKG_VERSION"))
                    .with_title("Dawn mesh")
                    .with_description("Every agent on the Dawn mesh, through this node."),
            )
            .with_instructions(
                "Tools are named <agent>.<tool>.<node>: the agent's id, its tool, and the \
                 first characters of the id of the node that hosts it. Each description starts \
                 with [<agent> on <node>].",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools().await))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        let state = self.state();
        let (_, table) = state.table.as_ref()?;
        table.tools.iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let deadline = Instant::now() + self.shared.config.call_timeout;
        let call = async {
            let route = self.route(&request.name).await?;
            let client = self.client(&route.addr, deadline).await?;
            let mut forwarded = request.clone();
            forwarded.name = route.tool.clone().into();
            let result = client.call_tool_raw(forwarded, deadline).await;
            self.forget_if_closed(&route.addr, &client, &result);
            result
        };
        forward(&context, call).await
    }
}

/// An MCP server that forwards everything to one agent on the mesh: what the node serves at
/// `/mcp/<node_id>/<agent_id>`.
///
/// Tools, resources, resource templates and prompts are forwarded as they are (pagination,
/// MRTR `input_required` and errors included); cancellation by the client cancels the
/// forwarded request. Built by [`MeshGateway::agent_proxy`]; cheap to clone.
#[derive(Clone)]
pub struct AgentProxy {
    gateway: MeshGateway,
    addr: AgentAddr,
}

impl fmt::Debug for AgentProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl AgentProxy {
    /// The agent this proxy forwards to.
    #[must_use]
    pub fn addr(&self) -> &AgentAddr {
        &self.addr
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.gateway.shared.config.call_timeout
    }

    async fn client(&self, deadline: Instant) -> Result<AgentClient, CallError> {
        self.gateway.client(&self.addr, deadline).await
    }
}

impl ServerHandler for AgentProxy {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(
            Implementation::new(self.addr.agent().to_string(), env!("CARGO_PKG_VERSION"))
                .with_title(format!(
                    "{} on {}",
                    self.addr.agent(),
                    self.addr.node().fmt_short()
                )),
        )
        .with_instructions(format!(
            "The agent {} on the Dawn mesh, reached through this node.",
            self.addr
        ))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let deadline = self.deadline();
        forward(&context, async {
            self.client(deadline)
                .await?
                .list_tools_page(request, deadline)
                .await
        })
        .await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let deadline = self.deadline();
        forward(&context, async {
            let client = self.client(deadline).await?;
            let result = client.call_tool_raw(request, deadline).await;
            self.gateway.forget_if_closed(&self.addr, &client, &result);
            result
        })
        .await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let deadline = self.deadline();
        forward(&context, async {
            self.client(deadline)
                .await?
                .list_resources_page(request, deadline)
                .await
        })
        .await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let deadline = self.deadline();
        forward(&context, async {
            self.client(deadline)
                .await?
                .list_resource_templates_page(request, deadline)
                .await
        })
        .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let deadline = self.deadline();
        forward(&context, async {
            self.client(deadline)
                .await?
                .read_resource_raw(request, deadline)
                .await
        })
        .await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let deadline = self.deadline();
        forward(&context, async {
            self.client(deadline)
                .await?
                .list_prompts_page(request, deadline)
                .await
        })
        .await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let deadline = self.deadline();
        forward(&context, async {
            self.client(deadline)
                .await?
                .get_prompt_raw(request, deadline)
                .await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_identity::NodeId;

    fn addr(seed: u8, agent: &str) -> AgentAddr {
        let node: NodeId = dawn_crypto::SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .into();
        AgentAddr::new(node, agent.parse().unwrap())
    }

    #[test]
    fn qualified_names_follow_the_scheme_and_mcp_rules() {
        let a = addr(1, "echo");
        let prefix = &a.node().to_string()[..NODE_PREFIX_LEN];
        assert_eq!(
            qualified_tool_name(&a, "chat").as_deref(),
            Some(format!("echo.chat.{prefix}").as_str())
        );
        assert_eq!(qualified_tool_name(&a, ""), None);
        assert_eq!(qualified_tool_name(&a, "has space"), None);
        assert_eq!(qualified_tool_name(&a, "naïve"), None);
        // 64-character agent id + 52-character tool + 2 dots + 10 = 128: allowed.
        let long = addr(1, &"a".repeat(64));
        assert_eq!(
            qualified_tool_name(&long, &"t".repeat(52)).map(|n| n.len()),
            Some(MAX_TOOL_NAME_LEN)
        );
        assert_eq!(qualified_tool_name(&long, &"t".repeat(53)), None);
    }

    fn tool(name: &str) -> Tool {
        Tool::new(name.to_owned(), "d", Arc::new(serde_json::Map::new()))
    }

    #[test]
    fn colliding_names_are_left_out_and_others_routed() {
        // Agent "a.b" with tool "c" and agent "a" with tool "b.c" on the same node collide.
        let x = addr(1, "a.b");
        let y = addr(1, "a");
        let z = addr(2, "a");
        let table = build_table(&[
            (x.clone(), Arc::new(vec![tool("c")])),
            (
                y.clone(),
                Arc::new(vec![tool("b.c"), tool("d"), tool("bad name")]),
            ),
            (z.clone(), Arc::new(vec![tool("d")])),
        ]);
        let names: Vec<&str> = table.tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        for (name, route) in &table.routes {
            assert_eq!(
                qualified_tool_name(&route.addr, &route.tool).as_deref(),
                Some(name.as_str())
            );
            assert_eq!(route.tool, "d");
        }
        assert!(table.tools.iter().all(|t| {
            t.description
                .as_deref()
                .is_some_and(|d| d.starts_with("[a on "))
        }));
    }
}
