//! `Agent`: a registered MCP server handler, and `AgentInfo`: its summary for the directory.

use std::fmt;
use std::sync::Arc;

use dawn_identity::AgentId;
use rmcp::ServerHandler;
use rmcp::service::{DynService, RoleServer, ServiceExt};
use serde::{Deserialize, Serialize};

use crate::text::truncate;

/// The longest [`AgentInfo::name`], in bytes.
pub const MAX_AGENT_NAME_LEN: usize = 64;
/// The longest [`AgentInfo::description`], in bytes.
pub const MAX_AGENT_DESCRIPTION_LEN: usize = 512;
/// The most tools, resources or prompts an [`AgentInfo`] lists (each list separately).
pub const MAX_INFO_ITEMS: usize = 128;
/// The longest name, URI or description of one item in an [`AgentInfo`], in bytes.
pub const MAX_INFO_ITEM_LEN: usize = 256;

/// Builds one server handler for each MCP session.
type MakeSession = dyn Fn() -> Box<dyn DynService<RoleServer>> + Send + Sync;

/// An agent: an rmcp [`ServerHandler`] that an [`AgentHost`](crate::AgentHost) serves.
///
/// An `Agent` is a factory: every MCP session (every stream that opens the agent) gets a
/// handler from it. [`Agent::shared`] hands every session the same handler behind an `Arc`
/// (state shared by all callers: a memory store, a directory); [`Agent::per_session`] builds
/// a fresh handler per session (state private to one conversation). Cloning an `Agent` is
/// cheap and clones the factory, not the handler.
///
/// ```
/// use dawn_mcp::{Agent, EchoAgent};
///
/// let echo = Agent::shared(EchoAgent::new());
/// let per_session = Agent::per_session(EchoAgent::new);
/// # let _ = (echo, per_session);
/// ```
#[derive(Clone)]
pub struct Agent {
    make: Arc<MakeSession>,
}

impl Agent {
    /// One handler shared by every session.
    #[must_use]
    pub fn shared<H: ServerHandler>(handler: H) -> Self {
        let handler = Arc::new(handler);
        Self {
            make: Arc::new(move || Arc::clone(&handler).into_dyn()),
        }
    }

    /// A new handler for every session, built by `make`.
    #[must_use]
    pub fn per_session<H, F>(make: F) -> Self
    where
        H: ServerHandler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        Self {
            make: Arc::new(move || make().into_dyn()),
        }
    }

    /// A handler for a new session.
    pub(crate) fn session(&self) -> Box<dyn DynService<RoleServer>> {
        (self.make)()
    }
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Agent { .. }")
    }
}

/// What an agent offers, in brief: the entry a node publishes in the mesh directory.
///
/// Built by [`AgentHost::describe`](crate::AgentHost::describe) from the agent's own MCP
/// listings, in process. Every field is bounded ([`MAX_AGENT_NAME_LEN`],
/// [`MAX_AGENT_DESCRIPTION_LEN`], [`MAX_INFO_ITEMS`] items of at most [`MAX_INFO_ITEM_LEN`]
/// bytes per field) so an entry stays small enough to gossip; [`AgentInfo::validate`] checks
/// an entry received from elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The agent's id on its node.
    pub agent_id: AgentId,
    /// A display name (the server's title or name).
    pub name: String,
    /// What the agent is for (the server's description or instructions).
    pub description: String,
    /// `(name, description)` of each tool.
    pub tools: Vec<(String, String)>,
    /// `(uri, name)` of each resource.
    pub resources: Vec<(String, String)>,
    /// `(name, description)` of each prompt.
    pub prompts: Vec<(String, String)>,
}

/// An [`AgentInfo`] exceeds a bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentInfoError {
    /// A text field is longer than its bound.
    #[error("{field} is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A list has more than [`MAX_INFO_ITEMS`] items.
    #[error("{field} lists {count} items, more than the {MAX_INFO_ITEMS} allowed")]
    TooMany {
        /// Which list.
        field: &'static str,
        /// How many items.
        count: usize,
    },
}

impl AgentInfo {
    /// An entry with the given texts, cut to their bounds, and no items.
    #[must_use]
    pub fn new(agent_id: AgentId, name: &str, description: &str) -> Self {
        Self {
            agent_id,
            name: truncate(name, MAX_AGENT_NAME_LEN),
            description: truncate(description, MAX_AGENT_DESCRIPTION_LEN),
            tools: Vec::new(),
            resources: Vec::new(),
            prompts: Vec::new(),
        }
    }

    /// Checks every bound, for an entry that came from elsewhere.
    ///
    /// # Errors
    /// The first bound exceeded.
    pub fn validate(&self) -> Result<(), AgentInfoError> {
        check_len("name", &self.name, MAX_AGENT_NAME_LEN)?;
        check_len("description", &self.description, MAX_AGENT_DESCRIPTION_LEN)?;
        for (field, items) in [
            ("tools", &self.tools),
            ("resources", &self.resources),
            ("prompts", &self.prompts),
        ] {
            if items.len() > MAX_INFO_ITEMS {
                return Err(AgentInfoError::TooMany {
                    field,
                    count: items.len(),
                });
            }
            for (a, b) in items {
                check_len(field, a, MAX_INFO_ITEM_LEN)?;
                check_len(field, b, MAX_INFO_ITEM_LEN)?;
            }
        }
        Ok(())
    }

    /// Whether the agent has a tool with this exact name.
    #[must_use]
    pub fn has_tool(&self, name: &str) -> bool {
        self.tools.iter().any(|(tool, _)| tool == name)
    }
}

fn check_len(field: &'static str, text: &str, max: usize) -> Result<(), AgentInfoError> {
    if text.len() > max {
        return Err(AgentInfoError::TooLong {
            field,
            len: text.len(),
            max,
        });
    }
    Ok(())
}

/// Cuts a listed pair to the [`AgentInfo`] bounds.
pub(crate) fn info_item(a: &str, b: &str) -> (String, String) {
    (
        truncate(a, MAX_INFO_ITEM_LEN),
        truncate(b, MAX_INFO_ITEM_LEN),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_cuts_to_bounds_and_validate_checks_them() {
        let id: AgentId = "a".parse().unwrap();
        let mut info = AgentInfo::new(id, &"n".repeat(500), &"d".repeat(5000));
        assert!(info.name.len() <= MAX_AGENT_NAME_LEN);
        assert!(info.description.len() <= MAX_AGENT_DESCRIPTION_LEN);
        assert_eq!(info.validate(), Ok(()));
        info.tools = vec![info_item("t", "d"); MAX_INFO_ITEMS + 1];
        assert!(matches!(
            info.validate(),
            Err(AgentInfoError::TooMany { field: "tools", .. })
        ));
        info.tools = vec![("t".into(), "x".repeat(MAX_INFO_ITEM_LEN + 1))];
        assert!(matches!(
            info.validate(),
            Err(AgentInfoError::TooLong { field: "tools", .. })
        ));
        info.tools = vec![info_item("echo", "x")];
        assert!(info.has_tool("echo"));
        assert!(!info.has_tool("ech"));
    }
}
