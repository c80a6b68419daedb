//! Dawn's MCP layer (layer 3): agents, the calls between them, and the mesh gateway.
//!
//! An *agent* is an MCP server: an [`rmcp`] [`ServerHandler`](rmcp::ServerHandler). This
//! crate knows agents and the MCP message flow but not sockets: the node gives it streams
//! (a QUIC bidirectional stream from a peer, an in-process pipe from itself) and it runs MCP
//! sessions over them.
//!
//! - **Hosting** ([`AgentHost`], [`Agent`], [`AgentInfo`]): a node's agents, added and
//!   removed at runtime. [`AgentHost::serve_stream`] is the callee side of every stream:
//!   it reads the [`OpenAgent`] preamble, answers [`OpenReply`], then runs the session.
//!   [`AgentHost::describe`] summarises an agent for the mesh directory, in process.
//! - **Enforcement** ([`AccessPolicy`], [`Caller`], [`Action`]): consulted when a stream
//!   opens an agent and on every request after that; a denied tool call never reaches the
//!   agent and the caller gets `permission denied: peer <id> may not call tool <tool> of
//!   agent <agent>` with code [`codes::DENIED`].
//! - **Calling** ([`connect_agent`], [`AgentClient`], [`CallError`]): the caller side; every
//!   request has a deadline, and dropping a request cancels it at the agent (MCP
//!   `notifications/cancelled`). Every [`CallError`] maps to an MCP error and to a
//!   `dawn_resilience::ErrorCode` with its HTTP status.
//! - **Gateway** ([`MeshGateway`], [`AgentProxy`], [`Mesh`]): one MCP server for the whole
//!   mesh, with tools named `<agent>.<tool>.<node prefix>` ([`qualified_tool_name`]) and
//!   listings cached; and a proxy that forwards everything to one agent.
//! - **Built-in agents**: [`EchoAgent`], [`MemoryAgent`] (over a [`MemoryBackend`]),
//!   [`DirectoryAgent`] (over a [`DirectorySource`]), [`GuideAgent`] (prompts).
//!
//! Sessions speak MCP `2025-11-25` (the `initialize` handshake) and `2026-07-28` (
//! `server/discover` and self-contained requests); the host serves both on the same stream
//! protocol, and [`AgentClient`] speaks either ([`McpVersion`]).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use dawn_mcp::{
//!     Agent, AgentHost, Caller, EchoAgent, HostConfig, InMemoryBackend, LocalOnly, MemoryAgent,
//!     connect_agent,
//! };
//! use tokio::time::Instant;
//!
//! // The callee: a host with two agents that serves peers nothing (LocalOnly).
//! let host = AgentHost::new(Arc::new(LocalOnly), HostConfig::default());
//! host.add("echo".parse()?, Agent::shared(EchoAgent::new()))?;
//! let memory = MemoryAgent::new(Arc::new(InMemoryBackend::default()));
//! host.add("memory".parse()?, Agent::shared(memory))?;
//!
//! // A stream, as the transport would hand one over (here an in-process pipe).
//! let (caller_end, callee_end) = tokio::io::duplex(64 * 1024);
//! let served = host.clone();
//! tokio::spawn(async move {
//!     let (read, write) = tokio::io::split(callee_end);
//!     served.serve_stream(Caller::Local, read, write).await
//! });
//!
//! // The caller.
//! let (read, write) = tokio::io::split(caller_end);
//! let deadline = Instant::now() + Duration::from_secs(5);
//! let echo = connect_agent(read, write, &"echo".parse()?, deadline).await?;
//! let args = serde_json::json!({ "message": "hello" });
//! let reply = echo.call_tool("chat", args.as_object().cloned(), deadline).await?;
//! assert!(reply.content[0].as_text().is_some_and(|t| t.text.starts_with("Hello!")));
//!
//! // The directory entry of the memory agent, without a network.
//! let info = host.describe(&"memory".parse()?, deadline).await?;
//! assert!(info.has_tool("put"));
//! # Ok(()) }
//! ```
//!
//! # Status
//!
//! The preamble encoding (version 1, message types `0x0300` and `0x0301`) is pinned by
//! golden files in `tests/golden/`; the MCP error codes in [`codes`] and the qualified tool
//! name scheme are API. The crate's `README.md` has the wiring for a node and measured
//! figures.

mod agent;
mod agents;
mod client;
mod error;
mod gateway;
mod host;
mod policy;
mod preamble;
mod text;

/// The `_meta` key under which a caller may give a tool call its request id (1 to 64 ASCII
/// alphanumerics or `-`); the serving host logs the call in a `dawn_mcp.host.request` span
/// with that id as `dawn.req_id`, so one call can be followed across both nodes' logs.
pub const REQUEST_ID_META: &str = "dawn/requestId";

pub use crate::agent::{
    Agent, AgentInfo, AgentInfoError, MAX_AGENT_DESCRIPTION_LEN, MAX_AGENT_NAME_LEN,
    MAX_INFO_ITEM_LEN, MAX_INFO_ITEMS,
};
pub use crate::agents::directory::{
    DirectoryAgent, DirectoryEntry, DirectorySource, MAX_DIRECTORY_RESULTS,
};
pub use crate::agents::echo::{EchoAgent, MAX_ECHO_LEN};
pub use crate::agents::guide::{GuideAgent, MAX_SUMMARIZE_LEN};
pub use crate::agents::memory::{
    InMemoryBackend, MAX_KEY_LEN, MAX_LISTED_KEYS, MAX_QUERY_LEN, MAX_SEARCH_RESULTS,
    MAX_VALUE_LEN, MEMORY_URI_PREFIX, MemoryAgent, MemoryBackend, MemoryEntry, MemoryError,
    MemoryKey,
};
pub use crate::client::{
    AgentClient, AgentListing, ClientOptions, DEFAULT_MAX_MESSAGE_LEN, MAX_LISTED_ITEMS,
    McpVersion, connect_agent, connect_agent_with,
};
pub use crate::error::{CallError, codes};
pub use crate::gateway::{
    AgentProxy, GatewayConfig, MAX_TOOL_NAME_LEN, Mesh, MeshGateway, NODE_PREFIX_LEN, OpenFuture,
    qualified_tool_name,
};
pub use crate::host::{AddAgentError, AgentHost, HostConfig, ServeError};
pub use crate::policy::{AccessPolicy, Action, AllowAll, Caller, Denied, LocalOnly};
pub use crate::preamble::{
    MAX_PREAMBLE_LEN, MAX_REFUSAL_MESSAGE_LEN, OPEN_AGENT_TYPE, OPEN_REPLY_TYPE, OpenAgent,
    OpenReply, PREAMBLE_VERSION, PreambleError, RefuseCode, STREAM_PROTOCOL,
};
