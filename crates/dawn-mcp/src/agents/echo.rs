//! The `echo` agent: says back what it is told; the simplest agent to try the mesh with.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

/// The longest text `echo` and `chat` accept, in bytes.
pub const MAX_ECHO_LEN: usize = 64 * 1024;

/// Arguments of `echo`.
#[derive(Debug, Deserialize, JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

/// Arguments of `chat`.
#[derive(Debug, Deserialize, JsonSchema)]
struct ChatArgs {
    /// What you say to the agent.
    message: String,
}

/// The built-in `echo` agent.
///
/// Tools:
/// - `echo {text}`: returns `text` unchanged.
/// - `chat {message}`: answers conversationally, the way the web UI's chat window talks to
///   agents: `help` (or `?`) lists what it can do, a greeting is answered, anything else is
///   echoed as `Echo: <message>`.
///
/// Texts over [`MAX_ECHO_LEN`] bytes get a tool error rather than an echo.
#[derive(Debug, Clone)]
pub struct EchoAgent {
    tool_router: ToolRouter<Self>,
}

impl Default for EchoAgent {
    fn default() -> Self {
        Self::new()
    }
}

#[tool_router]
impl EchoAgent {
    /// The agent.
    #[must_use]
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Returns the text it is given, unchanged.")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> CallToolResult {
        match too_long(&args.text) {
            Some(error) => error,
            None => CallToolResult::success(vec![ContentBlock::text(args.text)]),
        }
    }

    #[tool(
        description = "Talk to the echo agent. It answers 'help' with what it can do and echoes anything else."
    )]
    async fn chat(&self, Parameters(args): Parameters<ChatArgs>) -> CallToolResult {
        if let Some(error) = too_long(&args.message) {
            return error;
        }
        CallToolResult::success(vec![ContentBlock::text(reply(&args.message))])
    }
}

fn too_long(text: &str) -> Option<CallToolResult> {
    (text.len() > MAX_ECHO_LEN).then(|| {
        CallToolResult::error(vec![ContentBlock::text(format!(
            "the text is {} bytes; the echo agent takes at most {MAX_ECHO_LEN}",
            text.len()
        ))])
    })
}

/// The echo agent's side of a conversation.
fn reply(message: &str) -> String {
    let trimmed = message.trim();
    let lower = trimmed.to_lowercase();
    match lower.as_str() {
        "" => "Say something and I will say it back. Type 'help' to see what I can do.".to_owned(),
        "help" | "?" | "/help" => "I am the echo agent of this Dawn node. I can:\n\
             - echo {text}: send your text back unchanged\n\
             - chat {message}: talk with me; I repeat what you say\n\
             Try calling me from another node on the mesh: the answer comes back over an \
             end-to-end encrypted QUIC stream."
            .to_owned(),
        "hi" | "hello" | "hey" => {
            "Hello! I am the echo agent. Type 'help' to see what I can do.".to_owned()
        }
        _ => format!("Echo: {trimmed}"),
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for EchoAgent {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("echo", env!("CARGO_PKG_VERSION"))
                    .with_title("Echo")
                    .with_description("Says back what it is told; try 'help' in a chat."),
            )
            .with_instructions("Call `chat` with a message, or `echo` with a text.")
    }
}

#[cfg(test)]
mod tests {
    use super::reply;

    #[test]
    fn chat_replies() {
        assert!(reply("help").contains("echo {text}"));
        assert!(reply(" HELP ").contains("chat {message}"));
        assert!(reply("hello").starts_with("Hello!"));
        assert_eq!(reply("  the weather  "), "Echo: the weather");
        assert!(reply("").contains("help"));
    }
}
