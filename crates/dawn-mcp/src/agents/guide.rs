//! The `guide` agent: prompts that explain the mesh, so the prompt path has a user.

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, GetPromptResult, Implementation, PromptMessage, Role,
    ServerCapabilities, ServerConfig,
};
use rmcp::{ServerHandler, prompt, prompt_handler, prompt_router, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

/// The longest text `summarize` takes, in bytes.
pub const MAX_SUMMARIZE_LEN: usize = 64 * 1024;

/// The topics `explain` knows, with their explanations.
const TOPICS: &[(&str, &str)] = &[
    (
        "node",
        "A node is one Dawn daemon. Its identity is its Ed25519 public key, written as 52 \
         characters of base32; that key is also its TLS key, so a connection to a node proves \
         who it is.",
    ),
    (
        "agent",
        "An agent is an MCP server hosted by a node: it offers tools, resources and prompts. \
         A node hosts any number of agents, each with an id such as `echo` or `memory`.",
    ),
    (
        "address",
        "An agent's address is <node_id>:<agent_id>. Calling it opens an encrypted QUIC stream \
         to its node and runs the MCP session over that stream.",
    ),
    (
        "trust",
        "Every node decides whom it trusts. The callee checks its policy when a stream opens \
         and on every tool call, and records the decision in a tamper-evident audit log.",
    ),
    (
        "gateway",
        "A node's HTTP server exposes the whole mesh to any MCP client: one endpoint lists the \
         tools of every agent under qualified names and routes each call to the right node.",
    ),
    (
        "directory",
        "The directory is a replicated map from each node to its agents. Only a node may \
         change its own entries: every change is signed by its owner.",
    ),
];

/// Arguments of `explain`.
#[derive(Debug, Deserialize, JsonSchema)]
struct ExplainArgs {
    /// One of: node, agent, address, trust, gateway, directory.
    topic: String,
}

/// Arguments of the `summarize` prompt.
#[derive(Debug, Deserialize, JsonSchema)]
struct SummarizeArgs {
    /// The text to summarize.
    text: String,
}

/// The built-in `guide` agent.
///
/// Prompts:
/// - `introduce-mesh`: a conversation opener that explains Dawn to a model.
/// - `summarize {text}`: asks the model for a short summary of `text` (at most
///   [`MAX_SUMMARIZE_LEN`] bytes).
///
/// Tool: `explain {topic}` with topic `node`, `agent`, `address`, `trust`, `gateway` or
/// `directory`.
#[derive(Debug, Clone)]
pub struct GuideAgent {
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
}

impl Default for GuideAgent {
    fn default() -> Self {
        Self::new()
    }
}

impl GuideAgent {
    /// The agent.
    #[must_use]
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
        }
    }
}

#[tool_router]
impl GuideAgent {
    #[tool(
        description = "Explain a Dawn concept: node, agent, address, trust, gateway or directory."
    )]
    async fn explain(&self, Parameters(args): Parameters<ExplainArgs>) -> CallToolResult {
        let topic = args.topic.trim().to_lowercase();
        match TOPICS.iter().find(|(name, _)| *name == topic) {
            Some((_, text)) => CallToolResult::success(vec![ContentBlock::text(*text)]),
            None => {
                let known: Vec<&str> = TOPICS.iter().map(|(name, _)| *name).collect();
                CallToolResult::error(vec![ContentBlock::text(format!(
                    "unknown topic {:?}; try one of: {}",
                    crate::text::truncate(&args.topic, 64),
                    known.join(", ")
                ))])
            }
        }
    }
}

// `#[prompt]` adds an undocumented `pub fn <name>_prompt_attr()` for each prompt.
#[allow(missing_docs)]
#[prompt_router]
impl GuideAgent {
    /// The `introduce-mesh` prompt.
    #[prompt(
        name = "introduce-mesh",
        description = "Explains the Dawn mesh to a model, so it can use the agents on it."
    )]
    async fn introduce_mesh(&self) -> GetPromptResult {
        let concepts: Vec<String> = TOPICS
            .iter()
            .map(|(name, text)| format!("- {name}: {text}"))
            .collect();
        GetPromptResult::new(vec![
            PromptMessage::new_text(
                Role::User,
                format!(
                    "You are connected to Dawn, an end-to-end encrypted peer-to-peer mesh of AI \
                     agents. Here is how it works:\n{}\n\nUse the `directory` agent's \
                     `list_agents` tool to see who is online, then call their tools by address.",
                    concepts.join("\n")
                ),
            ),
            PromptMessage::new_text(
                Role::Assistant,
                "Understood. I will look up agents in the directory and call their tools by \
                 address.",
            ),
        ])
        .with_description("An introduction to the Dawn mesh")
    }

    /// The `summarize` prompt.
    #[prompt(
        name = "summarize",
        description = "Asks for a short summary of a text."
    )]
    async fn summarize(
        &self,
        Parameters(args): Parameters<SummarizeArgs>,
    ) -> Result<GetPromptResult, rmcp::ErrorData> {
        if args.text.len() > MAX_SUMMARIZE_LEN {
            return Err(rmcp::ErrorData::invalid_params(
                format!("the text is at most {MAX_SUMMARIZE_LEN} bytes"),
                None,
            ));
        }
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!(
                "Summarize the following text in at most three sentences, keeping names and \
                 numbers exact:\n\n{}",
                args.text
            ),
        )])
        .with_description("A request for a short summary"))
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for GuideAgent {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .build(),
        )
        .with_server_info(
            Implementation::new("guide", env!("CARGO_PKG_VERSION"))
                .with_title("Guide")
                .with_description("Prompts and explanations about the Dawn mesh."),
        )
        .with_instructions(
            "Get the `introduce-mesh` prompt first; `explain` a concept when unsure.",
        )
    }
}
