//! The built-in agents, each through a real rmcp client over an in-process stream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::sync::Arc;

use common::{args, id, node, soon, text};
use dawn_mcp::{
    Agent, AgentHost, AgentInfo, AllowAll, CallError, Caller, DirectoryAgent, DirectoryEntry,
    DirectorySource, GuideAgent, HostConfig, InMemoryBackend, MAX_ECHO_LEN, MemoryAgent,
};
use rmcp::model::{ErrorCode, ResourceContents};
use serde_json::json;

fn host() -> AgentHost {
    let host = AgentHost::new(Arc::new(AllowAll), HostConfig::default());
    host.add(
        id("memory"),
        Agent::shared(MemoryAgent::new(Arc::new(InMemoryBackend::default()))),
    )
    .unwrap();
    host.add(id("guide"), Agent::shared(GuideAgent::new()))
        .unwrap();
    host.add(id("echo"), Agent::shared(dawn_mcp::EchoAgent::new()))
        .unwrap();
    host
}

#[tokio::test]
async fn echo_refuses_oversized_text_as_a_tool_error() {
    let echo = host()
        .connect(Caller::Local, &id("echo"), soon())
        .await
        .unwrap();
    let result = echo
        .call_tool(
            "echo",
            args(json!({ "text": "x".repeat(MAX_ECHO_LEN + 1) })),
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(text(&result).contains("at most"));
    // Arguments that do not match the schema are a tool error the model can read.
    let bad = echo
        .call_tool("echo", args(json!({ "txt": 1 })), soon())
        .await
        .unwrap();
    assert_eq!(bad.is_error, Some(true));
    assert!(
        text(&bad).contains("missing field `text`"),
        "{}",
        text(&bad)
    );
    // An unknown tool is a protocol error (HTTP 400).
    let error = echo.call_tool("nope", None, soon()).await.unwrap_err();
    assert!(
        matches!(&error, CallError::Agent(e) if e.code == ErrorCode::INVALID_PARAMS),
        "{error}"
    );
    assert_eq!(
        dawn_resilience::HasErrorCode::code(&error).http_status(),
        400
    );
}

#[tokio::test]
async fn memory_stores_searches_and_serves_entries_as_resources() {
    let host = host();
    let memory = host
        .connect(Caller::Local, &id("memory"), soon())
        .await
        .unwrap();
    let put = |key: &str, value: &str| {
        let memory = memory.clone();
        let arguments = args(json!({ "key": key, "value": value }));
        async move { memory.call_tool("put", arguments, soon()).await.unwrap() }
    };
    assert_eq!(
        text(&put("notes/today", "Buy oat milk").await),
        "stored notes/today (12 bytes)"
    );
    put("notes/tomorrow", "Call Ada about the relay").await;
    put("recipe", "Oat porridge").await;

    let got = memory
        .call_tool("get", args(json!({ "key": "recipe" })), soon())
        .await
        .unwrap();
    assert_eq!(text(&got), "Oat porridge");
    let missing = memory
        .call_tool("get", args(json!({ "key": "nope" })), soon())
        .await
        .unwrap();
    assert_eq!(missing.is_error, Some(true));

    let found = memory
        .call_tool("search", args(json!({ "query": "OAT" })), soon())
        .await
        .unwrap();
    let entries = found.structured_content.as_ref().unwrap()["entries"]
        .as_array()
        .unwrap()
        .clone();
    let keys: Vec<&str> = entries.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["notes/today", "recipe"]);
    let limited = memory
        .call_tool("search", args(json!({ "query": "", "limit": 1 })), soon())
        .await
        .unwrap();
    assert_eq!(
        limited.structured_content.unwrap()["entries"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let resources = memory.list_resources(soon()).await.unwrap();
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "memory://notes/today",
            "memory://notes/tomorrow",
            "memory://recipe"
        ]
    );
    let read = memory
        .read_resource("memory://notes/tomorrow", soon())
        .await
        .unwrap();
    assert!(matches!(
        &read.contents[..],
        [ResourceContents::TextResourceContents { text, .. }] if text == "Call Ada about the relay"
    ));
    let error = memory
        .read_resource("memory://nope", soon())
        .await
        .unwrap_err();
    assert!(matches!(&error, CallError::Agent(_)), "{error}");
    assert!(
        memory
            .read_resource("file:///etc/passwd", soon())
            .await
            .is_err()
    );

    let deleted = memory
        .call_tool("delete", args(json!({ "key": "recipe" })), soon())
        .await
        .unwrap();
    assert_eq!(text(&deleted), "deleted recipe");
    assert_eq!(memory.list_resources(soon()).await.unwrap().len(), 2);

    let bad = memory
        .call_tool(
            "put",
            args(json!({ "key": "../etc", "value": "x" })),
            soon(),
        )
        .await
        .unwrap();
    assert_eq!(bad.is_error, Some(true));
    assert!(text(&bad).starts_with("invalid key"), "{}", text(&bad));

    let info = host.describe(&id("memory"), soon()).await.unwrap();
    assert_eq!(info.tools.len(), 4);
    assert_eq!(info.resources.len(), 2);
}

#[tokio::test]
async fn a_memory_backend_failure_is_a_readable_tool_error() {
    let host = AgentHost::new(Arc::new(AllowAll), HostConfig::default());
    host.add(
        id("memory"),
        Agent::shared(MemoryAgent::new(Arc::new(InMemoryBackend::new(1)))),
    )
    .unwrap();
    let memory = host
        .connect(Caller::Local, &id("memory"), soon())
        .await
        .unwrap();
    memory
        .call_tool("put", args(json!({ "key": "a", "value": "1" })), soon())
        .await
        .unwrap();
    let full = memory
        .call_tool("put", args(json!({ "key": "b", "value": "2" })), soon())
        .await
        .unwrap();
    assert_eq!(full.is_error, Some(true));
    assert!(text(&full).contains("full"), "{}", text(&full));
}

struct FixedDirectory(Vec<DirectoryEntry>);

impl DirectorySource for FixedDirectory {
    fn agents(&self) -> Vec<DirectoryEntry> {
        self.0.clone()
    }
}

fn info(agent: &str, name: &str, tools: &[&str]) -> AgentInfo {
    let mut info = AgentInfo::new(id(agent), name, &format!("{name} agent"));
    info.tools = tools
        .iter()
        .map(|t| ((*t).to_owned(), format!("does {t}")))
        .collect();
    info
}

#[tokio::test]
async fn directory_lists_and_finds_agents() {
    let source = FixedDirectory(vec![
        DirectoryEntry::new(
            node(1),
            info("weather", "Weather", &["forecast", "alerts"]),
            false,
        ),
        DirectoryEntry::new(node(2), info("echo", "Echo", &["echo", "chat"]), true),
        DirectoryEntry::new(
            node(3),
            info("translator", "Translator", &["translate", "chat"]),
            true,
        ),
    ]);
    let host = AgentHost::new(Arc::new(AllowAll), HostConfig::default());
    host.add(
        id("directory"),
        Agent::shared(DirectoryAgent::new(Arc::new(source))),
    )
    .unwrap();
    let directory = host
        .connect(Caller::Local, &id("directory"), soon())
        .await
        .unwrap();

    let all = directory
        .call_tool("list_agents", None, soon())
        .await
        .unwrap();
    let listed = &all.structured_content.as_ref().unwrap()["agents"];
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["echo", "translator", "weather"], "online first");
    assert_eq!(listed[0]["address"], format!("{}:echo", node(2)));
    assert!(text(&all).contains("(offline)"));

    let some = directory
        .call_tool("list_agents", args(json!({ "query": "FORECAST" })), soon())
        .await
        .unwrap();
    assert_eq!(some.structured_content.unwrap()["total"], 1);

    let found = directory
        .call_tool("find_tool", args(json!({ "name": "chat" })), soon())
        .await
        .unwrap();
    let matches = found.structured_content.unwrap()["matches"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(matches.len(), 2);
    assert!(
        matches
            .iter()
            .all(|m| m["exact"] == true && m["tool"] == "chat")
    );
    let none = directory
        .call_tool("find_tool", args(json!({ "name": "fly" })), soon())
        .await
        .unwrap();
    assert!(text(&none).starts_with("no agent offers"));
}

#[tokio::test]
async fn guide_serves_prompts_and_a_tool() {
    let host = host();
    let guide = host
        .connect(Caller::Local, &id("guide"), soon())
        .await
        .unwrap();
    let mut prompts: Vec<String> = guide
        .list_prompts(soon())
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    prompts.sort();
    assert_eq!(prompts, ["introduce-mesh", "summarize"]);
    let intro = guide
        .get_prompt("introduce-mesh", None, soon())
        .await
        .unwrap();
    assert_eq!(intro.messages.len(), 2);
    let summary = guide
        .get_prompt(
            "summarize",
            args(json!({ "text": "Dawn is a mesh." })),
            soon(),
        )
        .await
        .unwrap();
    let first = serde_json::to_value(&summary.messages[0]).unwrap();
    assert!(
        first["content"]["text"]
            .as_str()
            .unwrap()
            .ends_with("Dawn is a mesh.")
    );
    let missing = guide
        .get_prompt("summarize", None, soon())
        .await
        .unwrap_err();
    assert!(matches!(missing, CallError::Agent(_)), "{missing}");
    let unknown = guide.get_prompt("nope", None, soon()).await.unwrap_err();
    assert!(matches!(unknown, CallError::Agent(_)), "{unknown}");

    let explained = guide
        .call_tool("explain", args(json!({ "topic": "Address" })), soon())
        .await
        .unwrap();
    assert!(text(&explained).contains("<node_id>:<agent_id>"));
    let unknown = guide
        .call_tool("explain", args(json!({ "topic": "x" })), soon())
        .await
        .unwrap();
    assert_eq!(unknown.is_error, Some(true));

    let info = host.describe(&id("guide"), soon()).await.unwrap();
    assert_eq!(info.prompts.len(), 2);
    assert_eq!(info.tools.len(), 1);
}
