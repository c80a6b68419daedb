//! Agents on the mesh with real nodes on loopback: the directory replicates, an MCP client
//! (rmcp's own, over streamable HTTP) on one node's gateway lists and calls agents of two
//! others, and the callee's trust policy decides and audits every call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{bootstrap_to, builder, eventually};
use dawn_node::{AuditKind, Node, NodeId, TrustLevel, TrustUpdate};
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const LIMIT: Duration = Duration::from_secs(20);

/// POSTs `body` as JSON and returns the status and the JSON answer.
async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn has_agents_of(node: &Node, owner: NodeId, count: usize) -> bool {
    node.directory()
        .nodes
        .iter()
        .any(|n| n.node_id == owner && n.agents.len() >= count)
}

async fn trust(callee: &Node, caller: &Node) {
    callee
        .set_trust(caller.node_id(), TrustUpdate::new(TrustLevel::Trusted))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_client_on_one_gateway_lists_and_calls_agents_of_two_other_nodes() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = builder(dirs[0].path()).start().await.unwrap();
    let b = builder(dirs[1].path())
        .bootstrap([bootstrap_to(&a)])
        .start()
        .await
        .unwrap();
    let c = builder(dirs[2].path())
        .bootstrap([bootstrap_to(&a)])
        .start()
        .await
        .unwrap();
    // B and C let A's gateway call their tools; unknown peers may only read.
    trust(&b, &a).await;
    trust(&c, &a).await;
    eventually(LIMIT, "A's directory to list B's and C's agents", || {
        has_agents_of(&a, b.node_id(), 4) && has_agents_of(&a, c.node_id(), 4)
    })
    .await;

    let url = format!("http://{}/mcp", a.http_addr().unwrap());
    let client = ClientConfig::default()
        .serve(StreamableHttpClientTransport::from_uri(url))
        .await
        .unwrap();
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    let on = |node: &Node| format!("echo.echo.{}", &node.node_id().to_string()[..10]);
    for node in [&a, &b, &c] {
        assert!(
            names.contains(&on(node).as_str()),
            "{} missing from {names:?}",
            on(node)
        );
    }
    for node in [&b, &c] {
        let mut params = CallToolRequestParams::new(on(node));
        params.arguments = Some(
            json!({"text": "across the mesh"})
                .as_object()
                .unwrap()
                .clone(),
        );
        let result = client.call_tool(params).await.unwrap();
        assert_ne!(result.is_error, Some(true), "{result:?}");
        let text = serde_json::to_string(&result.content).unwrap();
        assert!(text.contains("across the mesh"), "{text}");
    }
    // A call of a tool that exists nowhere is an MCP error, not a hang.
    let missing = client
        .call_tool(CallToolRequestParams::new("echo.nothing.aaaaaaaaaa"))
        .await;
    assert!(
        missing.is_err() || missing.as_ref().unwrap().is_error == Some(true),
        "{missing:?}"
    );
    client.cancel().await.unwrap();

    // The single-agent endpoint serves B's echo under its own names.
    let url = format!("http://{}/mcp/{}/echo", a.http_addr().unwrap(), b.node_id());
    let single = ClientConfig::default()
        .serve(StreamableHttpClientTransport::from_uri(url))
        .await
        .unwrap();
    let tools = single.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "echo"), "{tools:?}");
    single.cancel().await.unwrap();

    for node in [c, b, a] {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_peers_tool_call_is_denied_and_audited_until_the_operator_trusts_it() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = builder(dir_a.path()).start().await.unwrap();
    let b = builder(dir_b.path())
        .bootstrap([bootstrap_to(&a)])
        .start()
        .await
        .unwrap();
    eventually(LIMIT, "A to learn B's agents", || {
        has_agents_of(&a, b.node_id(), 4)
    })
    .await;
    let http = a.http_addr().unwrap();
    let path = format!("/api/agents/{}/echo/tools/echo", b.node_id());

    // Unknown peers may list (read the directory) but not call.
    let (status, listing) = common::get(http, &format!("/api/agents/{}/echo", b.node_id()))
        .await
        .json()
        .as_object()
        .map(|o| (200, Value::Object(o.clone())))
        .unwrap();
    assert_eq!(status, 200);
    assert!(listing["tools"].as_array().unwrap().len() >= 2, "{listing}");
    let (status, body) = post_json(http, &path, &json!({"text": "hello"})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "auth.denied", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{body}"
    );
    let audit = b.audit_entries(None, 1000).await.unwrap();
    assert!(
        audit.iter().any(|e| e.kind() == AuditKind::ToolCallDenied
            && e.subject().peer() == Some(&a.node_id())
            && e.subject().tool() == Some("echo")),
        "no tool_call_denied entry for A in B's audit log"
    );

    // The operator of B trusts A: the same call goes through, and is audited as allowed.
    trust(&b, &a).await;
    let (status, body) = post_json(http, &path, &json!({"text": "hello"})).await;
    assert_eq!(status, 200, "{body}");
    let text = body["result"]["content"].to_string();
    assert!(text.contains("hello"), "{body}");
    let audit = b.audit_entries(None, 1000).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.kind() == AuditKind::ToolCallAllowed && e.subject().tool() == Some("echo")),
        "no tool_call_allowed entry in B's audit log"
    );

    // Bad addresses get typed errors.
    let (status, body) = post_json(
        http,
        &format!("/api/agents/{}/nobody/tools/echo", b.node_id()),
        &json!({}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) =
        post_json(http, "/api/agents/not-a-node/echo/tools/echo", &json!({})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_json(http, &path, &json!(["not", "an", "object"])).await;
    assert_eq!(status, 400, "{body}");

    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_survives_a_restart_and_the_memory_agent_persists() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = builder(dir_a.path()).start().await.unwrap();
    let b = builder(dir_b.path())
        .bootstrap([bootstrap_to(&a)])
        .start()
        .await
        .unwrap();
    let b_id = b.node_id();
    eventually(LIMIT, "A to learn B's agents", || {
        has_agents_of(&a, b_id, 4)
    })
    .await;
    let http = a.http_addr().unwrap();
    let local = a.node_id();
    let (status, body) = post_json(
        http,
        &format!("/api/agents/{local}/memory/tools/put"),
        &json!({"key": "greeting", "value": "hello from before the restart"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();

    // A comes back alone: B's agents are still in its directory (offline), and its memory
    // still holds the note.
    let a = builder(dir_a.path()).start().await.unwrap();
    let directory = a.directory();
    let b_entry = directory
        .nodes
        .iter()
        .find(|n| n.node_id == b_id)
        .expect("B's agents survive A's restart");
    assert!(!b_entry.online);
    assert!(
        b_entry
            .agents
            .iter()
            .any(|agent| agent.agent_id.as_str() == "echo")
    );
    let http = a.http_addr().unwrap();
    let (status, body) = post_json(
        http,
        &format!("/api/agents/{local}/memory/tools/get"),
        &json!({"key": "greeting"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["result"]
            .to_string()
            .contains("hello from before the restart"),
        "{body}"
    );
    // Calling an offline node's agent fails clearly instead of hanging.
    let (status, body) = post_json(
        http,
        &format!("/api/agents/{b_id}/echo/tools/echo"),
        &json!({"text": "anyone?"}),
    )
    .await;
    assert!((502..=504).contains(&status), "{status} {body}");
    a.shutdown().await.unwrap();
}
