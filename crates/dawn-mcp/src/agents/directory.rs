//! The `directory` agent: who is on the mesh and what they can do.

use std::fmt;
use std::sync::Arc;

use dawn_identity::NodeId;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::agent::AgentInfo;

/// The most agents one answer of the `directory` agent lists.
pub const MAX_DIRECTORY_RESULTS: usize = 100;

/// The longest query the `directory` agent accepts, in bytes.
const MAX_QUERY_LEN: usize = 256;

/// One agent in the mesh directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The node that hosts the agent.
    pub node: NodeId,
    /// The agent's published summary.
    pub info: AgentInfo,
    /// Whether the node is reachable now.
    pub online: bool,
}

impl DirectoryEntry {
    /// An entry.
    #[must_use]
    pub const fn new(node: NodeId, info: AgentInfo, online: bool) -> Self {
        Self { node, info, online }
    }

    /// `<node_id>:<agent_id>`, the agent's address on the mesh.
    #[must_use]
    pub fn address(&self) -> String {
        format!("{}:{}", self.node, self.info.agent_id)
    }

    fn matches(&self, query: &str) -> bool {
        let info = &self.info;
        contains(info.agent_id.as_str(), query)
            || contains(&info.name, query)
            || contains(&info.description, query)
            || info.tools.iter().any(|(name, _)| contains(name, query))
    }

    fn to_json(&self) -> Value {
        json!({
            "address": self.address(),
            "node_id": self.node.to_string(),
            "agent_id": self.info.agent_id.as_str(),
            "name": self.info.name,
            "description": self.info.description,
            "online": self.online,
            "tools": self.info.tools.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
        })
    }
}

fn contains(text: &str, query: &str) -> bool {
    text.to_lowercase().contains(query)
}

/// Where the `directory` agent reads the mesh registry from; the node implements it over
/// its replicated directory.
pub trait DirectorySource: Send + Sync + 'static {
    /// Every known agent, local and remote, online or not.
    fn agents(&self) -> Vec<DirectoryEntry>;
}

/// Arguments of `list_agents`.
#[derive(Debug, Deserialize, JsonSchema)]
struct ListArgs {
    /// Only agents whose id, name, description or tool names contain this text (ignoring
    /// case).
    query: Option<String>,
}

/// Arguments of `find_tool`.
#[derive(Debug, Deserialize, JsonSchema)]
struct FindArgs {
    /// A tool name, or part of one (ignoring case).
    name: String,
}

/// The built-in `directory` agent.
///
/// Tools:
/// - `list_agents {query?}`: the agents on the mesh, online first, as text lines and as
///   `structuredContent` (`{"agents": [{address, node_id, agent_id, name, description,
///   online, tools}], "total": n}`).
/// - `find_tool {name}`: the agents offering a tool whose name contains `name`, exact
///   matches first, with the address to call.
///
/// At most [`MAX_DIRECTORY_RESULTS`] agents per answer; `total` says how many matched.
#[derive(Clone)]
pub struct DirectoryAgent {
    source: Arc<dyn DirectorySource>,
    tool_router: ToolRouter<Self>,
}

impl fmt::Debug for DirectoryAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DirectoryAgent { .. }")
    }
}

fn query_too_long(query: &str) -> Option<CallToolResult> {
    (query.len() > MAX_QUERY_LEN).then(|| {
        CallToolResult::error(vec![ContentBlock::text(format!(
            "a query is at most {MAX_QUERY_LEN} bytes"
        ))])
    })
}

#[tool_router]
impl DirectoryAgent {
    /// The agent over `source`.
    #[must_use]
    pub fn new(source: Arc<dyn DirectorySource>) -> Self {
        Self {
            source,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "List the agents on the Dawn mesh, optionally only those matching a query."
    )]
    async fn list_agents(&self, Parameters(args): Parameters<ListArgs>) -> CallToolResult {
        let query = args.query.unwrap_or_default();
        if let Some(error) = query_too_long(&query) {
            return error;
        }
        let query = query.to_lowercase();
        let mut entries: Vec<DirectoryEntry> = self
            .source
            .agents()
            .into_iter()
            .filter(|entry| query.is_empty() || entry.matches(&query))
            .collect();
        entries.sort_by(|a, b| {
            b.online
                .cmp(&a.online)
                .then_with(|| a.info.agent_id.cmp(&b.info.agent_id))
                .then_with(|| a.node.cmp(&b.node))
        });
        let total = entries.len();
        entries.truncate(MAX_DIRECTORY_RESULTS);
        let mut lines: Vec<String> = entries
            .iter()
            .map(|entry| {
                let tools: Vec<&str> = entry.info.tools.iter().map(|(n, _)| n.as_str()).collect();
                format!(
                    "{} — {} ({}): {}{}",
                    entry.address(),
                    entry.info.name,
                    if entry.online { "online" } else { "offline" },
                    entry.info.description,
                    if tools.is_empty() {
                        String::new()
                    } else {
                        format!(" [tools: {}]", tools.join(", "))
                    }
                )
            })
            .collect();
        if lines.is_empty() {
            lines.push("no agents match".to_owned());
        } else if total > entries.len() {
            lines.push(format!("… and {} more", total - entries.len()));
        }
        let mut result = CallToolResult::success(vec![ContentBlock::text(lines.join("\n"))]);
        result.structured_content = Some(json!({
            "agents": entries.iter().map(DirectoryEntry::to_json).collect::<Vec<_>>(),
            "total": total,
        }));
        result
    }

    #[tool(description = "Find the agents on the mesh that offer a tool, by (part of) its name.")]
    async fn find_tool(&self, Parameters(args): Parameters<FindArgs>) -> CallToolResult {
        if let Some(error) = query_too_long(&args.name) {
            return error;
        }
        let wanted = args.name.to_lowercase();
        let mut hits: Vec<(bool, bool, String, String, String)> = Vec::new();
        for entry in self.source.agents() {
            for (tool, description) in &entry.info.tools {
                let lower = tool.to_lowercase();
                if lower.contains(&wanted) {
                    hits.push((
                        lower == wanted,
                        entry.online,
                        entry.address(),
                        tool.clone(),
                        description.clone(),
                    ));
                }
            }
        }
        hits.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.cmp(&a.1))
                .then_with(|| a.2.cmp(&b.2))
        });
        let total = hits.len();
        hits.truncate(MAX_DIRECTORY_RESULTS);
        let text = if hits.is_empty() {
            format!("no agent offers a tool matching {:?}", args.name)
        } else {
            hits.iter()
                .map(|(_, online, address, tool, description)| {
                    format!(
                        "{tool} at {address}{}: {description}",
                        if *online { "" } else { " (offline)" }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = Some(json!({
            "matches": hits.iter().map(|(exact, online, address, tool, description)| json!({
                "address": address, "tool": tool, "description": description,
                "online": online, "exact": exact,
            })).collect::<Vec<_>>(),
            "total": total,
        }));
        result
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DirectoryAgent {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("directory", env!("CARGO_PKG_VERSION"))
                    .with_title("Directory")
                    .with_description("Who is on the mesh and what they can do."),
            )
            .with_instructions(
                "Use `list_agents` to see the agents on the mesh and `find_tool` to find who \
                 offers a tool. Addresses are <node_id>:<agent_id>.",
            )
    }
}
