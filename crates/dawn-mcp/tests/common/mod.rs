//! Shared helpers of the integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dawn_identity::{AgentId, NodeId};
use dawn_mcp::{
    AccessPolicy, Action, Agent, AgentClient, AgentHost, Caller, ClientOptions, Denied, EchoAgent,
    HostConfig, ServeError, connect_agent_with,
};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub fn node(seed: u8) -> NodeId {
    dawn_crypto::SigningKey::from_bytes(&[seed; 32])
        .verifying_key()
        .into()
}

pub fn id(text: &str) -> AgentId {
    text.parse().unwrap()
}

pub fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

pub fn args(value: serde_json::Value) -> Option<rmcp::model::JsonObject> {
    value.as_object().cloned()
}

pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("")
}

/// A host with `echo` and `slow`, enforcing `policy`.
pub fn host_with(policy: Arc<dyn AccessPolicy>, config: HostConfig) -> (AgentHost, SlowProbe) {
    let host = AgentHost::new(policy, config);
    host.add(id("echo"), Agent::shared(EchoAgent::new()))
        .unwrap();
    let probe = SlowProbe::default();
    host.add(id("slow"), Agent::shared(SlowAgent::new(probe.clone())))
        .unwrap();
    (host, probe)
}

/// Serves one stream of `host` for `caller` over a duplex and connects to `agent` on it.
pub async fn open(
    host: &AgentHost,
    caller: Caller,
    agent: &str,
    options: &ClientOptions,
) -> (
    Result<AgentClient, dawn_mcp::CallError>,
    JoinHandle<Result<(), ServeError>>,
) {
    let (client_end, host_end) = tokio::io::duplex(64 * 1024);
    let host = host.clone();
    let served = tokio::spawn(async move {
        let (read, write) = tokio::io::split(host_end);
        host.serve_stream(caller, read, write).await
    });
    let (read, write) = tokio::io::split(client_end);
    let client = connect_agent_with(read, write, &id(agent), soon(), options).await;
    (client, served)
}

/// Counts how calls of [`SlowAgent`]'s `sleep` tool ended.
#[derive(Debug, Clone, Default)]
pub struct SlowProbe {
    pub started: Arc<AtomicUsize>,
    pub finished: Arc<AtomicUsize>,
    pub dropped: Arc<AtomicUsize>,
}

impl SlowProbe {
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }
    pub fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Waits until `check` holds, for at most 5 s.
    pub async fn wait_for(&self, check: impl Fn(&Self) -> bool) {
        let until = Instant::now() + Duration::from_secs(5);
        while !check(self) {
            assert!(Instant::now() < until, "condition not reached: {self:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Counts a sleep that was dropped before it finished.
struct DropProbe {
    probe: SlowProbe,
    done: bool,
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        if !self.done {
            self.probe.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SleepArgs {
    /// Milliseconds to sleep.
    pub ms: u64,
}

/// A test agent whose one tool takes as long as it is asked to.
#[derive(Debug, Clone)]
pub struct SlowAgent {
    probe: SlowProbe,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl SlowAgent {
    pub fn new(probe: SlowProbe) -> Self {
        Self {
            probe,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Sleeps for ms milliseconds.")]
    async fn sleep(&self, Parameters(args): Parameters<SleepArgs>) -> CallToolResult {
        self.probe.started.fetch_add(1, Ordering::SeqCst);
        let mut guard = DropProbe {
            probe: self.probe.clone(),
            done: false,
        };
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        guard.done = true;
        self.probe.finished.fetch_add(1, Ordering::SeqCst);
        CallToolResult::success(vec![ContentBlock::text(format!("slept {} ms", args.ms))])
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SlowAgent {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// A policy from a closure, recording every check.
pub struct FnPolicy<F> {
    pub decide: F,
    pub checks: Arc<std::sync::Mutex<Vec<String>>>,
}

impl<F> FnPolicy<F>
where
    F: Fn(&Caller, &AgentId, Action<'_>) -> Result<(), Denied> + Send + Sync + 'static,
{
    pub fn new(decide: F) -> Arc<Self> {
        Arc::new(Self {
            decide,
            checks: Arc::default(),
        })
    }

    pub fn checks(&self) -> Vec<String> {
        self.checks.lock().unwrap().clone()
    }
}

impl<F> AccessPolicy for FnPolicy<F>
where
    F: Fn(&Caller, &AgentId, Action<'_>) -> Result<(), Denied> + Send + Sync + 'static,
{
    fn check(&self, caller: &Caller, agent: &AgentId, action: Action<'_>) -> Result<(), Denied> {
        self.checks
            .lock()
            .unwrap()
            .push(format!("{caller} {agent} {action:?}"));
        (self.decide)(caller, agent, action)
    }
}
