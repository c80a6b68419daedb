//! Dawn's MCP layer: agents, the stream preamble and the mesh gateway.

mod agent;
mod agents;
mod client;
mod error;
mod gateway;
mod host;
mod policy;
mod preamble;
mod text;

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
    AgentClient, ClientOptions, DEFAULT_MAX_MESSAGE_LEN, MAX_LISTED_ITEMS, McpVersion,
    connect_agent, connect_agent_with,
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
