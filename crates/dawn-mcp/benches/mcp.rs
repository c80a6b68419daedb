//! dawn-mcp benchmarks:
//!
//! - `mcp::call_tool/path=in_process`: the `echo` agent's `call_tool` called directly, with
//!   rmcp's routing and argument decoding but no transport (the baseline);
//! - `mcp::call_tool/path=stream`: the same call through an `AgentClient` over an
//!   in-process stream served by `AgentHost::serve_stream` (JSON-RPC encoding both ways,
//!   the access policy, the session task), what a peer's call costs minus QUIC;
//! - `mcp::call_tool/path=gateway`: the same call through `MeshGateway::call_tool` (listing
//!   cache lookup and a pooled session);
//! - `mcp::open_session/version=*`: opening a session on a stream (preamble and MCP
//!   handshake).
//!
//! Under `cargo bench` the stream/in-process ratio is measured again, interleaved, and
//! printed. Run with `cargo bench -p dawn-mcp --bench mcp -- --warm-up-time 1
//! --measurement-time 3`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dawn_identity::{AgentAddr, AgentId, NodeId};
use dawn_mcp::{
    Agent, AgentClient, AgentHost, AllowAll, CallError, Caller, ClientOptions, EchoAgent,
    GatewayConfig, HostConfig, McpVersion, Mesh, MeshGateway, OpenFuture, connect_agent_with,
    qualified_tool_name,
};
use rmcp::ServerHandler;
use rmcp::model::{CallToolRequestParams, JsonObject, NumberOrString};
use rmcp::service::{RequestContext, RoleServer, serve_directly};
use tokio::runtime::Runtime;
use tokio::time::Instant;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn arguments() -> JsonObject {
    serde_json::json!({ "text": "hello, mesh" })
        .as_object()
        .cloned()
        .unwrap()
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn echo_id() -> AgentId {
    "echo".parse().unwrap()
}

fn host() -> AgentHost {
    let host = AgentHost::new(Arc::new(AllowAll), HostConfig::default());
    host.add(echo_id(), Agent::shared(EchoAgent::new()))
        .unwrap();
    host
}

/// A request context for calling a handler directly: rmcp builds one per request from its
/// session's peer, so borrow the peer of a session served on an idle pipe.
fn context(rt: &Runtime) -> RequestContext<RoleServer> {
    rt.block_on(async {
        let (_client_end, server_end) = tokio::io::duplex(1024);
        let running = serve_directly(EchoAgent::new(), server_end, None);
        let peer = running.peer().clone();
        std::mem::forget(running);
        RequestContext::new(NumberOrString::Number(1), peer)
    })
}

async fn in_process(agent: &EchoAgent, context: &RequestContext<RoleServer>) {
    let params = CallToolRequestParams::new("echo").with_arguments(arguments());
    let result = agent.call_tool(params, context.clone()).await.unwrap();
    black_box(result);
}

async fn over_stream(client: &AgentClient) {
    let result = client
        .call_tool("echo", Some(arguments()), deadline())
        .await
        .unwrap();
    black_box(result);
}

struct LocalMesh {
    node: NodeId,
    host: AgentHost,
}

impl Mesh for LocalMesh {
    fn agents(&self) -> Vec<AgentAddr> {
        vec![AgentAddr::new(self.node, echo_id())]
    }

    fn open(&self, addr: &AgentAddr, deadline: Instant) -> OpenFuture {
        let host = self.host.clone();
        let agent = addr.agent().clone();
        Box::pin(async move { host.connect(Caller::Local, &agent, deadline).await })
    }
}

fn call_tool(c: &mut Criterion) {
    let rt = runtime();
    let agent = EchoAgent::new();
    let ctx = context(&rt);
    let host = host();
    let client = rt
        .block_on(host.connect(Caller::Local, &echo_id(), deadline()))
        .unwrap();
    let node: NodeId = dawn_crypto::SigningKey::from_bytes(&[1; 32])
        .verifying_key()
        .into();
    let gateway = MeshGateway::new(
        Arc::new(LocalMesh {
            node,
            host: host.clone(),
        }),
        GatewayConfig::default(),
    );
    let qualified = qualified_tool_name(&AgentAddr::new(node, echo_id()), "echo").unwrap();

    let mut group = c.benchmark_group("mcp::call_tool");
    group.bench_function(BenchmarkId::from_parameter("path=in_process"), |b| {
        b.iter(|| rt.block_on(in_process(&agent, &ctx)));
    });
    group.bench_function(BenchmarkId::from_parameter("path=stream"), |b| {
        b.iter(|| rt.block_on(over_stream(&client)));
    });
    group.bench_function(BenchmarkId::from_parameter("path=gateway"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let result: Result<_, CallError> = gateway
                    .call_tool(&qualified, Some(arguments()), deadline())
                    .await;
                black_box(result.unwrap());
            });
        });
    });
    group.finish();

    // The ratio, measured again with the two interleaved so that both see the same load.
    // Only under `cargo bench`: listing and test mode print nothing of their own.
    if std::env::args().any(|arg| arg == "--bench") {
        const CALLS: u32 = 2_000;
        let mut direct = Vec::new();
        let mut stream = Vec::new();
        for _ in 0..5 {
            let start = StdInstant::now();
            rt.block_on(async {
                for _ in 0..CALLS {
                    in_process(&agent, &ctx).await;
                }
            });
            direct.push(start.elapsed() / CALLS);
            let start = StdInstant::now();
            rt.block_on(async {
                for _ in 0..CALLS {
                    over_stream(&client).await;
                }
            });
            stream.push(start.elapsed() / CALLS);
        }
        direct.sort();
        stream.sort();
        println!(
            "mcp::call_tool: in process {:?}, over a stream {:?}, ratio {:.1}x (medians of 5 \
             interleaved runs of {CALLS} calls)",
            direct[2],
            stream[2],
            stream[2].as_secs_f64() / direct[2].as_secs_f64()
        );
    }
}

fn open_session(c: &mut Criterion) {
    let rt = runtime();
    let host = host();
    let mut group = c.benchmark_group("mcp::open_session");
    for (name, version) in [
        ("version=2025-11-25", McpVersion::V2025_11_25),
        ("version=2026-07-28", McpVersion::V2026_07_28),
    ] {
        let mut options = ClientOptions::default();
        options.version = version;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let (client_end, host_end) = tokio::io::duplex(64 * 1024);
                    let host = host.clone();
                    tokio::spawn(async move {
                        let (read, write) = tokio::io::split(host_end);
                        let _ = host.serve_stream(Caller::Local, read, write).await;
                    });
                    let (read, write) = tokio::io::split(client_end);
                    let client = connect_agent_with(read, write, &echo_id(), deadline(), &options)
                        .await
                        .unwrap();
                    black_box(client);
                });
            });
        });
    }
    group.finish();
}

criterion_group!(benches, call_tool, open_session);
criterion_main!(benches);
