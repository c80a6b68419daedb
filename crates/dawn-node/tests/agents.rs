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

/// Starts B from `b`, then A bootstrapped to B, and waits until A's directory has B's
/// built-in agents.
async fn pair(dir_a: &std::path::Path, b: dawn_node::NodeBuilder) -> (Node, Node) {
    let b = b.start().await.unwrap();
    let a = builder(dir_a)
        .bootstrap([bootstrap_to(&b)])
        .start()
        .await
        .unwrap();
    eventually(LIMIT, "A to learn B's agents", || {
        has_agents_of(&a, b.node_id(), 4)
    })
    .await;
    (a, b)
}

/// `a`'s MCP client for `b`'s echo agent.
async fn echo_client(a: &Node, b: &Node) -> dawn_node::AgentClient {
    a.agent_client(&dawn_node::AgentAddr::new(
        b.node_id(),
        "echo".parse().unwrap(),
    ))
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_peers_tool_call_is_denied_and_audited_until_the_operator_trusts_it() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = pair(dir_a.path(), builder(dir_b.path())).await;
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
    let (a, b) = pair(dir_a.path(), builder(dir_b.path())).await;
    let b_id = b.node_id();
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

/// The count in a per-second summary entry (`... {count} agent requests refused ...` or
/// `denied {count} more times ...`).
fn summary_count(details: &str, before: &str, after: &str) -> Option<u64> {
    let rest = details.strip_prefix(before)?;
    rest.split_once(after)?.0.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_request_limit_gets_429s_is_cut_off_and_leaves_a_bounded_audit_trail() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut resilience = dawn_node::ResilienceConfig::default();
    resilience.call_limit.requests_per_sec = 10;
    resilience.call_limit.request_burst = 10;
    let (a, b) = pair(
        dir_a.path(),
        builder(dir_b.path()).resilience_config(resilience),
    )
    .await;
    trust(&b, &a).await;
    let http = a.http_addr().unwrap();
    let path = format!("/api/agents/{}/echo/tools/echo", b.node_id());

    // Through A's JSON API, one call after another: the burst passes, then B answers with
    // a typed rate-limit error that A's gateway passes on as 429 with Retry-After. 30
    // requests are far fewer than the 64 refusals that cost trust.
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..30 {
        let reply = common::post_json(http, &path, &json!({"text": "hi"})).await;
        if reply.status == 429 && limited.is_none() {
            limited = Some((reply.header("retry-after").map(str::to_owned), reply.json()));
        }
        statuses.push(reply.status);
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert_eq!(statuses.first(), Some(&200), "{statuses:?}");
    let (retry_after, body) = limited.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    assert_eq!(body["error"]["code"], "rate_limit.exceeded", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("rate limited: peer "), "{message}");
    assert_eq!(
        retry_after.as_deref(),
        Some("1"),
        "Retry-After rounds up to 1 s"
    );
    let allowed_by_http = statuses.iter().filter(|s| **s == 200).count();

    // Let A's bucket fill again, so that opening the session passes.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Now A floods B's echo from eight tasks: B refuses what is over the limit cheaply,
    // every 64 refusals cost A trust, and A, although assigned Trusted, falls to Untrusted
    // and is disconnected.
    let client = echo_client(&a, &b).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let client = client.clone();
        tasks.spawn(async move {
            let (mut ok, mut limited, mut cut_off) = (0u64, 0u64, 0u64);
            let text = json!({"text": "flood"}).as_object().cloned();
            for _ in 0..150 {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                match client.call_tool("echo", text.clone(), deadline).await {
                    Ok(_) => ok += 1,
                    Err(dawn_node::CallError::RateLimited { retry_after, .. }) => {
                        assert!(retry_after.is_some_and(|d| d <= Duration::from_millis(101)));
                        limited += 1;
                    }
                    // Once B disconnects A, the session is gone.
                    Err(
                        dawn_node::CallError::Closed
                        | dawn_node::CallError::Unreachable { .. }
                        | dawn_node::CallError::TimedOut
                        | dawn_node::CallError::Refused { .. },
                    ) => {
                        cut_off += 1;
                        break;
                    }
                    Err(other) => panic!("unexpected error during the flood: {other}"),
                }
            }
            (ok, limited, cut_off)
        });
    }
    let (mut ok, mut refused) = (0u64, 0u64);
    while let Some(result) = tasks.join_next().await {
        let (o, l, _) = result.unwrap();
        ok += o;
        refused += l;
    }
    assert!(
        refused >= 200,
        "only {refused} of the flood refused ({ok} served)"
    );
    assert!(ok < refused / 4, "{ok} served against {refused} refused");
    eventually(LIMIT, "B to cut A off", || {
        let view = b.trust(&a.node_id());
        // The peer list (the UI's network view) agrees with the trust list.
        view.level == TrustLevel::Untrusted && !view.connected && !common::connected_to(&b, &a)
    })
    .await;
    assert!(b.trust_list().agent_requests_dropped >= refused);
    let metrics = common::get(b.http_addr().unwrap(), "/metrics").await.body;
    let drops: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"dawn_rate_limit_drops_total{kind="agent_call",limit="messages"} "#)
        })
        .unwrap_or_else(|| panic!("no agent_call drops in /metrics:\n{metrics}"))
        .parse()
        .unwrap();
    assert!(drops >= refused as f64, "{drops} < {refused}");

    // The audit trail: every served call is one `tool_call_allowed` entry, the refused ones
    // are summed up in at most one entry per second, and the sums add up.
    let dropped = b.trust_list().agent_requests_dropped;
    let mut summed = 0;
    let mut summaries = 0;
    eventually(
        LIMIT,
        "the refusals to be summed up in the audit log",
        || {
            let audit = futures_block(b.audit_entries(None, 1_000)).unwrap();
            let mine: Vec<_> = audit
                .iter()
                .filter(|e| e.subject().peer() == Some(&a.node_id()))
                .collect();
            summed = mine
                .iter()
                .filter(|e| e.kind() == AuditKind::RequestDenied)
                .filter_map(|e| summary_count(e.details(), "", " agent requests refused"))
                .sum::<u64>();
            summaries = mine
                .iter()
                .filter(|e| e.kind() == AuditKind::RequestDenied)
                .count();
            let allowed = mine
                .iter()
                .filter(|e| e.kind() == AuditKind::ToolCallAllowed)
                .count();
            // The listing when the pooled session opened is a request too; it is not audited.
            assert!(allowed as u64 <= ok + allowed_by_http as u64 + 1);
            summed == dropped
        },
    )
    .await;
    assert!(
        summaries <= 20,
        "{summaries} summary entries for {dropped} refusals"
    );
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

/// Runs a future to completion from synchronous code inside the multi-threaded runtime.
fn futures_block<F: Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_denials_are_audited_once_a_second_with_a_count_that_adds_up() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = pair(dir_a.path(), builder(dir_b.path())).await;
    // A is unknown to B: it may list B's agents but not call them.
    let client = echo_client(&a, &b).await;
    const CALLS: u64 = 120;
    for _ in 0..CALLS {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let error = client
            .call_tool("echo", json!({"text": "x"}).as_object().cloned(), deadline)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, dawn_node::CallError::Denied { message } if message.starts_with("permission denied")),
            "{error}"
        );
    }
    // Every denial is accounted for: the first of each second in full, the rest as a count
    // in one entry after it.
    let mut entries = 0;
    eventually(LIMIT, "the denials to add up in B's audit log", || {
        let audit = futures_block(b.audit_entries(None, 1_000)).unwrap();
        let denied: Vec<_> = audit
            .iter()
            .filter(|e| {
                e.kind() == AuditKind::ToolCallDenied
                    && e.subject().peer() == Some(&a.node_id())
                    && e.subject().tool() == Some("echo")
            })
            .collect();
        entries = denied.len();
        let total: u64 = denied
            .iter()
            .map(|e| summary_count(e.details(), "denied ", " more times").unwrap_or(1))
            .sum();
        assert!(total <= CALLS, "{total} denials recorded for {CALLS} calls");
        total == CALLS
    })
    .await;
    assert!(
        (entries as u64) < CALLS / 2,
        "{entries} audit entries for {CALLS} identical denials"
    );
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}
