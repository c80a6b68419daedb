//! The agents' HTTP face: the MCP gateway (streamable HTTP at `/mcp` for the whole mesh and
//! `/mcp/{node_id}/{agent_id}` for one agent) and the JSON API the web UI and `dawn` use
//! (`/api/agents...`).
//!
//! The gateway keeps rmcp's DNS-rebinding protection: the `Host` header must name the
//! address the node serves on (loopback names by default). Opening it to a LAN means binding
//! `http.listen` to a LAN address; that address is then allowed as a host too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use dawn_identity::{AgentAddr, AgentId, NodeId};
use dawn_mcp::{AgentProxy, CallError, MeshGateway};
use rmcp::model::{CallToolRequestParams, CallToolResponse, RequestMetaObject};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug};

use crate::api::{ApiError, Direction};
use crate::http::AppState;
use crate::metrics::CallOutcome;
use crate::trace::RequestId;

/// How long one call through the JSON API may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Single-agent MCP endpoints kept (each holds its sessions); the oldest is dropped beyond.
const MAX_AGENT_ENDPOINTS: usize = 64;
/// Largest MCP request body accepted by the gateway.
const MAX_MCP_BODY: usize = 4 * 1024 * 1024;

type GatewayService = StreamableHttpService<MeshGateway, LocalSessionManager>;
type AgentService = StreamableHttpService<AgentProxy, LocalSessionManager>;

/// The gateway's HTTP services, made once the agents run.
pub(crate) struct McpEndpoints {
    config: StreamableHttpServerConfig,
    mesh: GatewayService,
    gateway: MeshGateway,
    agents: Mutex<HashMap<AgentAddr, (AgentService, Instant)>>,
}

impl McpEndpoints {
    /// Endpoints over `gateway`, ended when `cancel` fires, accepting `Host` names for
    /// `http` (the address the node serves HTTP on).
    pub(crate) fn new(
        gateway: MeshGateway,
        http: Option<SocketAddr>,
        cancel: &CancellationToken,
    ) -> Self {
        let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        if let Some(addr) = http
            && !addr.ip().is_loopback()
            && !addr.ip().is_unspecified()
        {
            hosts.push(addr.ip().to_string());
        }
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(hosts)
            .with_cancellation_token(cancel.child_token())
            .with_max_request_body_bytes(MAX_MCP_BODY);
        let served = gateway.clone();
        let mesh = StreamableHttpService::new(
            move || Ok(served.clone()),
            Arc::new(LocalSessionManager::default()),
            config.clone(),
        );
        Self {
            config,
            mesh,
            gateway,
            agents: Mutex::new(HashMap::new()),
        }
    }

    fn agent(&self, addr: &AgentAddr) -> AgentService {
        let mut agents = self.agents.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((service, used)) = agents.get_mut(addr) {
            *used = Instant::now();
            return service.clone();
        }
        if agents.len() >= MAX_AGENT_ENDPOINTS {
            let oldest = agents
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(addr, _)| addr.clone());
            if let Some(oldest) = oldest {
                agents.remove(&oldest);
            }
        }
        let proxy = self.gateway.agent_proxy(addr.clone());
        let service = StreamableHttpService::new(
            move || Ok(proxy.clone()),
            Arc::new(LocalSessionManager::default()),
            self.config.clone(),
        );
        agents.insert(addr.clone(), (service.clone(), Instant::now()));
        service
    }
}

/// The routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/mcp", any(mcp_mesh))
        .route("/mcp/{node_id}/{agent_id}", any(mcp_agent))
        .route("/api/agents", get(directory))
        .route("/api/agents/{node_id}/{agent_id}", get(describe))
        .route(
            "/api/agents/{node_id}/{agent_id}/tools/{tool}",
            post(call_tool),
        )
        .route(
            "/api/agents/{node_id}/{agent_id}/resources/read",
            post(read_resource),
        )
        .route(
            "/api/agents/{node_id}/{agent_id}/prompts/{name}",
            post(get_prompt),
        )
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(ApiError::new(code, message))).into_response()
}

fn boxed_error(status: StatusCode, code: &str, message: impl Into<String>) -> Box<Response> {
    Box::new(error(status, code, message))
}

fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the node's agents are not running yet",
    )
}

/// A call failure as an HTTP error: its Dawn error code and the matching status.
fn call_error(failure: &CallError) -> Response {
    let code = dawn_resilience::HasErrorCode::code(failure);
    let status = match failure {
        CallError::UnknownNode(_) | CallError::UnknownAgent(_) => StatusCode::NOT_FOUND,
        CallError::Denied { .. } => StatusCode::FORBIDDEN,
        CallError::TimedOut => StatusCode::GATEWAY_TIMEOUT,
        CallError::Agent(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_GATEWAY),
    };
    let code = match failure {
        CallError::Denied { .. } => "auth.denied",
        _ => code.as_str(),
    };
    let mut response = error(status, code, failure.to_string());
    if let Some(after) = dawn_resilience::HasErrorCode::retry_after(failure) {
        // Whole seconds, rounded up: the header has no finer unit.
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    response
}

/// The agent address in a request path (a boxed error response keeps the `Result` small).
fn parse_addr(node_id: &str, agent_id: &str) -> Result<AgentAddr, Box<Response>> {
    let node: NodeId = node_id.parse().map_err(|e| {
        boxed_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid node id: {e}"),
        )
    })?;
    let agent: AgentId = agent_id.parse().map_err(|e| {
        boxed_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("invalid agent id: {e}"),
        )
    })?;
    Ok(AgentAddr::new(node, agent))
}

fn outcome_of(result: &Result<Value, CallError>) -> CallOutcome {
    match result {
        Ok(_) | Err(CallError::Agent(_)) => CallOutcome::Ok,
        Err(CallError::Denied { .. }) => CallOutcome::Denied,
        Err(CallError::TimedOut) => CallOutcome::Timeout,
        Err(
            CallError::UnknownNode(_) | CallError::UnknownAgent(_) | CallError::Unreachable { .. },
        ) => CallOutcome::Unreachable,
        Err(_) => CallOutcome::Error,
    }
}

async fn mcp_mesh(State(state): State<AppState>, request: Request) -> Response {
    let Some(agents) = state.shared.agents.get() else {
        return unavailable();
    };
    let service = agents.endpoints().mesh.clone();
    service.handle(request).await.map(Body::new).into_response()
}

async fn mcp_agent(
    State(state): State<AppState>,
    Path((node_id, agent_id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let addr = match parse_addr(&node_id, &agent_id) {
        Ok(addr) => addr,
        Err(response) => return *response,
    };
    let Some(agents) = state.shared.agents.get() else {
        return unavailable();
    };
    let service = agents.endpoints().agent(&addr);
    service.handle(request).await.map(Body::new).into_response()
}

async fn directory(State(state): State<AppState>) -> Response {
    let Some(agents) = state.shared.agents.get() else {
        return unavailable();
    };
    axum::Json(agents.directory()).into_response()
}

async fn describe(
    State(state): State<AppState>,
    Path((node_id, agent_id)): Path<(String, String)>,
) -> Response {
    let addr = match parse_addr(&node_id, &agent_id) {
        Ok(addr) => addr,
        Err(response) => return *response,
    };
    let Some(agents) = state.shared.agents.get() else {
        return unavailable();
    };
    let deadline = Instant::now() + CALL_TIMEOUT;
    let result = async {
        let client = agents.client(&addr, deadline).await?;
        let listing = client.listing(deadline).await?;
        Ok::<_, CallError>(json!({
            "node_id": addr.node().to_string(),
            "agent_id": addr.agent().as_str(),
            "tools": listing.tools,
            "resources": listing.resources,
            "prompts": listing.prompts,
        }))
    }
    .await;
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(error) => call_error(&error),
    }
}

/// A JSON object from a request body: an empty body is `{}`.
fn object_body(body: &Bytes) -> Result<Map<String, Value>, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(boxed_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body must be a JSON object",
        )),
        Err(e) => Err(boxed_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body is not JSON: {e}"),
        )),
    }
}

async fn call_tool(
    State(state): State<AppState>,
    Path((node_id, agent_id, tool)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let addr = match parse_addr(&node_id, &agent_id) {
        Ok(addr) => addr,
        Err(response) => return *response,
    };
    let arguments = match object_body(&body) {
        Ok(arguments) => arguments,
        Err(response) => return *response,
    };
    let Some(agents) = state.shared.agents.get() else {
        return unavailable();
    };
    let started = Instant::now();
    let deadline = started + CALL_TIMEOUT;
    // One id for the call on both nodes: it travels in the request's `_meta`, and the
    // agent's node logs the call under it.
    let request_id = RequestId::new();
    let span = request_id.span(addr.node(), "agent_call", Direction::Outbound);
    let result = async {
        tracing::info!(agent = %addr, %tool, "agent tool call sent");
        let client = agents.client(&addr, deadline).await?;
        let mut params = CallToolRequestParams::new(tool.clone());
        params.arguments = Some(arguments);
        let mut meta = RequestMetaObject::new();
        meta.0.insert(
            dawn_mcp::REQUEST_ID_META.to_owned(),
            Value::String(request_id.to_string()),
        );
        params.meta = Some(meta);
        match client.call_tool_raw(params, deadline).await? {
            CallToolResponse::Complete(result) => {
                serde_json::to_value(result).map_err(|e| CallError::Protocol {
                    detail: e.to_string(),
                })
            }
            _ => Err(CallError::Protocol {
                detail: "the agent asked for input or started a task; not supported here".into(),
            }),
        }
    }
    .instrument(span)
    .await;
    let took = started.elapsed();
    state
        .shared
        .metrics
        .record_agent_call(Direction::Outbound, outcome_of(&result), took);
    debug!(agent = %addr, %tool, ok = result.is_ok(), ?took, "tool call through the API");
    match result {
        Ok(result) => axum::Json(json!({
            "result": result,
            "elapsed_ms": took.as_secs_f64() * 1000.0,
        }))
        .into_response(),
        Err(error) => call_error(&error),
    }
}

#[derive(Deserialize)]
struct ReadBody {
    uri: String,
}

async fn read_resource(
    State(state): State<AppState>,
    Path((node_id, agent_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let addr = match parse_addr(&node_id, &agent_id) {
        Ok(addr) => addr,
        Err(response) => return *response,
    };
    let Ok(ReadBody { uri }) = serde_json::from_slice::<ReadBody>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body must be {\"uri\": \"...\"}",
        );
    };
    let Some(agents) = state.shared.agents.get() else {
        return unavailable();
    };
    let deadline = Instant::now() + CALL_TIMEOUT;
    let result = async {
        let client = agents.client(&addr, deadline).await?;
        client.read_resource(&uri, deadline).await
    }
    .await;
    match result {
        Ok(result) => axum::Json(result).into_response(),
        Err(error) => call_error(&error),
    }
}

#[derive(Deserialize, Default)]
struct PromptBody {
    #[serde(default)]
    arguments: Option<Map<String, Value>>,
}

async fn get_prompt(
    State(state): State<AppState>,
    Path((node_id, agent_id, name)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let addr = match parse_addr(&node_id, &agent_id) {
        Ok(addr) => addr,
        Err(response) => return *response,
    };
    let prompt: PromptBody = if body.iter().all(u8::is_ascii_whitespace) {
        PromptBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(prompt) => prompt,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the body must be {{\"arguments\": {{...}}}}: {e}"),
                );
            }
        }
    };
    let Some(agents) = state.shared.agents.get() else {
        return unavailable();
    };
    let deadline = Instant::now() + CALL_TIMEOUT;
    let result = async {
        let client = agents.client(&addr, deadline).await?;
        client.get_prompt(&name, prompt.arguments, deadline).await
    }
    .await;
    match result {
        Ok(result) => axum::Json(result).into_response(),
        Err(error) => call_error(&error),
    }
}
