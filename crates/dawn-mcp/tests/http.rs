//! The gateway behind rmcp's Streamable HTTP service, as the node serves it: both protocol
//! versions, DNS-rebinding protection, and the single-agent proxy. Requests go straight into
//! the tower service, without a socket.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{id, node};
use dawn_identity::{AgentAddr, NodeId};
use dawn_mcp::{
    Agent, AgentHost, AllowAll, Caller, EchoAgent, GatewayConfig, HostConfig, Mesh, MeshGateway,
    OpenFuture, qualified_tool_name,
};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio::time::Instant;

/// One node with the echo agent.
struct OneNode {
    node: NodeId,
    host: AgentHost,
}

impl Mesh for OneNode {
    fn agents(&self) -> Vec<AgentAddr> {
        self.host
            .list()
            .into_iter()
            .map(|agent| AgentAddr::new(self.node, agent))
            .collect()
    }

    fn open(&self, addr: &AgentAddr, deadline: Instant) -> OpenFuture {
        let host = self.host.clone();
        let agent = addr.agent().clone();
        Box::pin(async move { host.connect(Caller::Local, &agent, deadline).await })
    }
}

fn gateway() -> (MeshGateway, NodeId) {
    let host = AgentHost::new(Arc::new(AllowAll), HostConfig::default());
    host.add(id("echo"), Agent::shared(EchoAgent::new()))
        .unwrap();
    let node = node(1);
    let mesh = Arc::new(OneNode { node, host });
    (MeshGateway::new(mesh, GatewayConfig::default()), node)
}

/// The configuration the README recommends for a node serving `localhost:7777`.
fn config() -> StreamableHttpServerConfig {
    StreamableHttpServerConfig::default()
        .with_allowed_hosts(["localhost", "127.0.0.1", "::1"])
        .with_allowed_origins(["http://localhost:7777", "http://127.0.0.1:7777"])
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    messages: Vec<Value>,
}

async fn post<S: rmcp::ServerHandler + Send + 'static>(
    service: &StreamableHttpService<S, LocalSessionManager>,
    host: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> Reply {
    let mut request = Request::post("/mcp")
        .header("host", host)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = service.handle(request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .expect("the response body ends")
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    let messages = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .chain(text.trim_start().starts_with('{').then_some(text.as_ref()))
        .filter_map(|data| serde_json::from_str(data.trim()).ok())
        .collect();
    Reply {
        status,
        headers,
        messages,
    }
}

fn result(reply: &Reply) -> &Value {
    reply
        .messages
        .iter()
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
        .unwrap_or_else(|| panic!("no response in {:?}", reply.messages))
}

#[tokio::test]
async fn a_2025_11_25_client_gets_a_session() {
    let (gateway, node) = gateway();
    let service = StreamableHttpService::new(
        move || Ok(gateway.clone()),
        Arc::new(LocalSessionManager::default()),
        config(),
    );
    let init = post(
        &service,
        "localhost:7777",
        &[],
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}),
    )
    .await;
    assert_eq!(init.status, StatusCode::OK);
    assert_eq!(result(&init)["result"]["protocolVersion"], "2025-11-25");
    let session = init.headers["mcp-session-id"].to_str().unwrap().to_owned();
    let with_session = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    let initialized = post(
        &service,
        "localhost:7777",
        &with_session,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(initialized.status, StatusCode::ACCEPTED);
    let list = post(
        &service,
        "localhost:7777",
        &with_session,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    let names: Vec<&str> = result(&list)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let echo = qualified_tool_name(&AgentAddr::new(node, id("echo")), "echo").unwrap();
    assert!(names.contains(&echo.as_str()), "{names:?}");
    let call = post(
        &service,
        "localhost:7777",
        &with_session,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": echo, "arguments": {"text": "over http"}}}),
    )
    .await;
    assert_eq!(result(&call)["result"]["content"][0]["text"], "over http");
}

#[tokio::test]
async fn a_2026_07_28_client_is_served_statelessly() {
    let (gateway, node) = gateway();
    let service = StreamableHttpService::new(
        move || Ok(gateway.clone()),
        Arc::new(LocalSessionManager::default()),
        config(),
    );
    let echo = qualified_tool_name(&AgentAddr::new(node, id("echo")), "echo").unwrap();
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let call = post(
        &service,
        "127.0.0.1:7777",
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", echo.as_str()),
        ],
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": echo, "arguments": {"text": "stateless"}, "_meta": meta}}),
    )
    .await;
    assert_eq!(call.status, StatusCode::OK, "{:?}", call.messages);
    assert!(call.headers.get("mcp-session-id").is_none());
    assert_eq!(result(&call)["result"]["content"][0]["text"], "stateless");
    assert_eq!(result(&call)["result"]["resultType"], "complete");
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_refused() {
    let (gateway, _) = gateway();
    let service = StreamableHttpService::new(
        move || Ok(gateway.clone()),
        Arc::new(LocalSessionManager::default()),
        config(),
    );
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}});
    let rebound = post(&service, "attacker.example:7777", &[], init.clone()).await;
    assert_eq!(rebound.status, StatusCode::FORBIDDEN);
    let cross_origin = post(
        &service,
        "localhost:7777",
        &[("origin", "https://attacker.example")],
        init.clone(),
    )
    .await;
    assert_eq!(cross_origin.status, StatusCode::FORBIDDEN);
    let same_origin = post(
        &service,
        "localhost:7777",
        &[("origin", "http://localhost:7777")],
        init,
    )
    .await;
    assert_eq!(same_origin.status, StatusCode::OK);
}

#[tokio::test]
async fn the_agent_proxy_serves_one_agent_per_path() {
    let (gateway, node) = gateway();
    // The node builds a service per request for /mcp/{node_id}/{agent_id}, sharing one
    // session manager.
    let sessions = Arc::new(LocalSessionManager::default());
    let addr = AgentAddr::new(node, id("echo"));
    let service = StreamableHttpService::new(
        move || Ok(gateway.agent_proxy(addr.clone())),
        sessions,
        config(),
    );
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let call = post(
        &service,
        "localhost",
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "chat"),
        ],
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "chat", "arguments": {"message": "hi"}, "_meta": meta}}),
    )
    .await;
    let reply = result(&call)["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reply.starts_with("Hello!"), "{reply}");
}
