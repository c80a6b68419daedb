//! The mesh gateway and the single-agent proxy, over two simulated nodes (two in-process
//! `AgentHost`s), driven by a real rmcp client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{FnPolicy, SlowAgent, SlowProbe, args, id, node, soon, text};
use dawn_identity::{AgentAddr, AgentId, NodeId};
use dawn_mcp::{
    Action, Agent, AgentHost, AllowAll, CallError, Caller, Denied, EchoAgent, GatewayConfig,
    GuideAgent, HostConfig, InMemoryBackend, MemoryAgent, Mesh, MeshGateway, NODE_PREFIX_LEN,
    OpenFuture, codes, qualified_tool_name,
};
use rmcp::model::{CallToolRequestParams, ClientConfig, ReadResourceRequestParams};
use rmcp::service::{RoleClient, RunningService};
use rmcp::{ServerHandler, ServiceExt, serve_server};
use serde_json::json;
use tokio::time::Instant;

/// Nodes simulated by hosts; the gateway runs on `me`.
struct TestMesh {
    me: NodeId,
    nodes: HashMap<NodeId, AgentHost>,
    /// In the directory but not reachable.
    ghosts: Vec<AgentAddr>,
    opens: AtomicUsize,
    down: Mutex<HashSet<NodeId>>,
}

impl Mesh for TestMesh {
    fn agents(&self) -> Vec<AgentAddr> {
        let mut all: Vec<AgentAddr> = self
            .nodes
            .iter()
            .flat_map(|(node, host)| {
                host.list()
                    .into_iter()
                    .map(|agent| AgentAddr::new(*node, agent))
            })
            .collect();
        all.extend(self.ghosts.iter().cloned());
        all
    }

    fn open(&self, addr: &AgentAddr, deadline: Instant) -> OpenFuture {
        self.opens.fetch_add(1, Ordering::SeqCst);
        let node = *addr.node();
        let agent = addr.agent().clone();
        let host = self.nodes.get(&node).cloned();
        let down = self.down.lock().unwrap().contains(&node);
        let caller = if node == self.me {
            Caller::Local
        } else {
            Caller::Peer(self.me)
        };
        Box::pin(async move {
            match host {
                _ if down => Err(CallError::Unreachable {
                    reason: "down".into(),
                }),
                None => Err(CallError::UnknownNode(node)),
                Some(host) => host.connect(caller, &agent, deadline).await,
            }
        })
    }
}

struct World {
    mesh: Arc<TestMesh>,
    gateway: MeshGateway,
    a: NodeId,
    b: NodeId,
    b_lists: Arc<AtomicUsize>,
    probe: SlowProbe,
}

/// Node A (the gateway's own) hosts echo and guide; node B hosts echo, memory and slow, and
/// refuses peers the memory agent's `delete`.
fn world(config: GatewayConfig) -> World {
    let (a, b) = (node(1), node(2));
    let host_a = AgentHost::new(Arc::new(AllowAll), HostConfig::default());
    host_a
        .add(id("echo"), Agent::shared(EchoAgent::new()))
        .unwrap();
    host_a
        .add(id("guide"), Agent::shared(GuideAgent::new()))
        .unwrap();
    let b_lists = Arc::new(AtomicUsize::new(0));
    let lists = Arc::clone(&b_lists);
    let policy = FnPolicy::new(move |caller: &Caller, _: &AgentId, action: Action<'_>| {
        if action == Action::List {
            lists.fetch_add(1, Ordering::SeqCst);
        }
        match (caller, action) {
            (Caller::Peer(_), Action::CallTool("delete")) => {
                Err(Denied::new("peers may not delete"))
            }
            _ => Ok(()),
        }
    });
    let host_b = AgentHost::new(policy, HostConfig::default());
    host_b
        .add(id("echo"), Agent::shared(EchoAgent::new()))
        .unwrap();
    host_b
        .add(
            id("memory"),
            Agent::shared(MemoryAgent::new(Arc::new(InMemoryBackend::default()))),
        )
        .unwrap();
    let probe = SlowProbe::default();
    host_b
        .add(id("slow"), Agent::shared(SlowAgent::new(probe.clone())))
        .unwrap();
    let ghost = AgentAddr::new(node(3), id("lost"));
    let mesh = Arc::new(TestMesh {
        me: a,
        nodes: HashMap::from([(a, host_a), (b, host_b)]),
        ghosts: vec![ghost],
        opens: AtomicUsize::new(0),
        down: Mutex::default(),
    });
    let gateway = MeshGateway::new(mesh.clone(), config);
    World {
        mesh,
        gateway,
        a,
        b,
        b_lists,
        probe,
    }
}

fn name(node: NodeId, agent: &str, tool: &str) -> String {
    qualified_tool_name(&AgentAddr::new(node, id(agent)), tool).unwrap()
}

/// Serves `handler` to a real rmcp client over an in-process pipe.
async fn serve<H: ServerHandler>(handler: H) -> RunningService<RoleClient, ClientConfig> {
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Ok(running) = serve_server(handler, server_end).await {
            let _ = running.waiting().await;
        }
    });
    ClientConfig::default().serve(client_end).await.unwrap()
}

#[tokio::test]
async fn the_gateway_lists_every_agent_under_collision_free_names() {
    let w = world(GatewayConfig::default());
    let client = serve(w.gateway.clone()).await;
    let tools = client.list_all_tools().await.unwrap();
    let names: HashSet<String> = tools.iter().map(|t| t.name.to_string()).collect();
    for expected in [
        name(w.a, "echo", "echo"),
        name(w.a, "echo", "chat"),
        name(w.a, "guide", "explain"),
        name(w.b, "echo", "echo"),
        name(w.b, "memory", "put"),
        name(w.b, "slow", "sleep"),
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert_eq!(names.len(), tools.len(), "names are unique");
    assert_eq!(tools.len(), 2 + 1 + 2 + 4 + 1);
    let prefix = &w.b.to_string()[..NODE_PREFIX_LEN];
    assert_eq!(name(w.b, "echo", "chat"), format!("echo.chat.{prefix}"));
    let described = tools
        .iter()
        .find(|t| t.name == name(w.b, "memory", "put"))
        .unwrap();
    assert!(
        described
            .description
            .as_deref()
            .unwrap()
            .starts_with(&format!("[memory on {prefix}] "))
    );
    assert!(
        described.input_schema.contains_key("properties"),
        "schemas are passed through"
    );
}

#[tokio::test]
async fn calls_are_routed_to_the_right_node() {
    let w = world(GatewayConfig::default());
    let client = serve(w.gateway.clone()).await;
    let put = CallToolRequestParams::new(name(w.b, "memory", "put"))
        .with_arguments(args(json!({ "key": "k", "value": "on b" })).unwrap());
    let stored = client.call_tool(put).await.unwrap();
    assert_eq!(text(&stored), "stored k (4 bytes)");
    // It landed on node B: B's memory agent has it.
    let b = w.mesh.nodes[&w.b]
        .connect(Caller::Local, &id("memory"), soon())
        .await
        .unwrap();
    let got = b
        .call_tool("get", args(json!({ "key": "k" })), soon())
        .await
        .unwrap();
    assert_eq!(text(&got), "on b");
    // The typed API routes the same way.
    let echoed = w
        .gateway
        .call_tool(
            &name(w.a, "echo", "echo"),
            args(json!({ "text": "on a" })),
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(text(&echoed), "on a");
}

#[tokio::test]
async fn a_remote_denial_comes_back_as_a_denial() {
    let w = world(GatewayConfig::default());
    let client = serve(w.gateway.clone()).await;
    let delete = CallToolRequestParams::new(name(w.b, "memory", "delete"))
        .with_arguments(args(json!({ "key": "k" })).unwrap());
    let error = client.call_tool(delete).await.unwrap_err();
    let rmcp::ServiceError::McpError(error) = error else {
        panic!("expected an MCP error, got {error}");
    };
    assert_eq!(error.code, codes::DENIED);
    assert_eq!(
        error.message,
        format!(
            "permission denied: peer {} may not call tool delete of agent memory: peers may not delete",
            w.a.fmt_short()
        )
    );
    let typed = w
        .gateway
        .call_tool(
            &name(w.b, "memory", "delete"),
            args(json!({ "key": "k" })),
            soon(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        dawn_resilience::HasErrorCode::code(&typed).http_status(),
        403
    );
}

#[tokio::test]
async fn unknown_names_are_invalid_params() {
    let w = world(GatewayConfig::default());
    let error = w
        .gateway
        .call_tool("nope.nope.nope", None, soon())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, CallError::Agent(e) if e.code == rmcp::model::ErrorCode::INVALID_PARAMS),
        "{error}"
    );
}

#[tokio::test]
async fn listings_are_cached_and_sessions_pooled() {
    let w = world(GatewayConfig::default());
    let first = w.gateway.tools().await;
    let opens = w.mesh.opens.load(Ordering::SeqCst);
    // Five real agents and the ghost.
    assert_eq!(opens, 6);
    assert_eq!(w.b_lists.load(Ordering::SeqCst), 3);
    let again = w.gateway.tools().await;
    assert_eq!(first.len(), again.len());
    assert_eq!(
        w.b_lists.load(Ordering::SeqCst),
        3,
        "a fresh listing asks nobody"
    );
    for _ in 0..3 {
        w.gateway
            .call_tool(
                &name(w.b, "echo", "echo"),
                args(json!({ "text": "x" })),
                soon(),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        w.mesh.opens.load(Ordering::SeqCst),
        opens,
        "calls reuse the listing's sessions"
    );
    w.gateway.invalidate();
    w.gateway.tools().await;
    assert_eq!(w.b_lists.load(Ordering::SeqCst), 6, "invalidate asks again");
}

#[tokio::test]
async fn listings_expire_after_their_ttl() {
    let mut config = GatewayConfig::default();
    config.listing_ttl = Duration::from_millis(50);
    let w = world(config);
    w.gateway.tools().await;
    assert_eq!(w.b_lists.load(Ordering::SeqCst), 3);
    tokio::time::sleep(Duration::from_millis(80)).await;
    w.gateway.tools().await;
    assert_eq!(w.b_lists.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn an_unreachable_node_keeps_its_last_listing_and_fails_calls_cleanly() {
    let mut config = GatewayConfig::default();
    config.listing_ttl = Duration::from_millis(20);
    let w = world(config);
    let before = w.gateway.tools().await.len();
    w.mesh.down.lock().unwrap().insert(w.b);
    // Drop B's pooled sessions, as a dead connection would.
    for agent in ["echo", "memory", "slow"] {
        w.gateway
            .client(&AgentAddr::new(w.b, id(agent)), soon())
            .await
            .unwrap()
            .close();
    }
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(
        w.gateway.tools().await.len(),
        before,
        "stale listings are kept"
    );
    let error = w
        .gateway
        .call_tool(
            &name(w.b, "echo", "echo"),
            args(json!({ "text": "x" })),
            soon(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Unreachable { .. }), "{error}");
    assert_eq!(
        dawn_resilience::HasErrorCode::code(&error).http_status(),
        502
    );
}

#[tokio::test]
async fn cancelling_a_routed_call_cancels_it_at_the_remote_agent() {
    let w = world(GatewayConfig::default());
    let client = serve(w.gateway.clone()).await;
    let sleep = CallToolRequestParams::new(name(w.b, "slow", "sleep"))
        .with_arguments(args(json!({ "ms": 30_000 })).unwrap());
    let call = tokio::spawn({
        let peer = client.peer().clone();
        async move { peer.call_tool(sleep).await }
    });
    w.probe.wait_for(|p| p.started() == 1).await;
    call.abort();
    w.probe.wait_for(|p| p.dropped() == 1).await;
    assert_eq!(w.probe.finished(), 0);
}

#[tokio::test]
async fn the_proxy_forwards_tools_resources_and_prompts_of_one_agent() {
    let w = world(GatewayConfig::default());
    let memory = serve(w.gateway.agent_proxy(AgentAddr::new(w.b, id("memory")))).await;
    let info = memory.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "memory");
    let tools = memory.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 4);
    let put = CallToolRequestParams::new("put")
        .with_arguments(args(json!({ "key": "note", "value": "proxied" })).unwrap());
    memory.call_tool(put).await.unwrap();
    let resources = memory.list_all_resources().await.unwrap();
    assert_eq!(resources[0].uri, "memory://note");
    let read = memory
        .read_resource(ReadResourceRequestParams::new("memory://note"))
        .await
        .unwrap();
    assert_eq!(read.contents.len(), 1);
    let delete = CallToolRequestParams::new("delete")
        .with_arguments(args(json!({ "key": "note" })).unwrap());
    let rmcp::ServiceError::McpError(denied) = memory.call_tool(delete).await.unwrap_err() else {
        panic!("expected an MCP error");
    };
    assert_eq!(denied.code, codes::DENIED);

    let guide = serve(w.gateway.agent_proxy(AgentAddr::new(w.a, id("guide")))).await;
    let prompts = guide.list_all_prompts().await.unwrap();
    assert_eq!(prompts.len(), 2);
    let intro = guide
        .get_prompt(rmcp::model::GetPromptRequestParams::new("introduce-mesh"))
        .await
        .unwrap();
    assert_eq!(intro.messages.len(), 2);

    let lost = serve(w.gateway.agent_proxy(AgentAddr::new(node(3), id("lost")))).await;
    let rmcp::ServiceError::McpError(unknown) = lost.list_tools(None).await.unwrap_err() else {
        panic!("expected an MCP error");
    };
    assert_eq!(unknown.code, codes::UNKNOWN_NODE);
}

#[tokio::test]
async fn the_gateway_serves_both_protocol_versions() {
    let w = world(GatewayConfig::default());
    // A 2026-07-28 client through the host machinery: the gateway is just another agent.
    let front = AgentHost::new(Arc::new(AllowAll), HostConfig::default());
    front
        .add(id("mesh"), Agent::shared(w.gateway.clone()))
        .unwrap();
    for version in [
        dawn_mcp::McpVersion::V2025_11_25,
        dawn_mcp::McpVersion::V2026_07_28,
    ] {
        let mut options = dawn_mcp::ClientOptions::default();
        options.version = version;
        let (client, _) = common::open(&front, Caller::Local, "mesh", &options).await;
        let client = client.unwrap();
        assert_eq!(
            client.server_info().unwrap().protocol_version,
            version.protocol_version()
        );
        let result = client
            .call_tool(
                &name(w.b, "echo", "echo"),
                args(json!({ "text": "v" })),
                soon(),
            )
            .await
            .unwrap();
        assert_eq!(text(&result), "v");
    }
}

#[tokio::test]
async fn a_listing_shows_what_the_agent_declares_in_mcp_json() {
    let w = world(GatewayConfig::default());
    let guide = w
        .gateway
        .client(&AgentAddr::new(w.a, id("guide")), soon())
        .await
        .unwrap();
    let listing = guide.listing(soon()).await.unwrap();
    assert_eq!(
        (
            listing.tools.len(),
            listing.resources.len(),
            listing.prompts.len()
        ),
        (1, 0, 2)
    );
    let json = serde_json::to_value(&listing).unwrap();
    assert!(json["tools"][0]["inputSchema"].is_object(), "{json}");
    let summarize = json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "summarize")
        .unwrap();
    assert_eq!(summarize["arguments"][0]["name"], "text");
    assert_eq!(summarize["arguments"][0]["required"], true);
}
