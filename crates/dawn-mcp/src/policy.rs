//! Who may do what with an agent: the callee-side enforcement hook.

use std::fmt;
use std::time::Duration;

use dawn_identity::{AgentId, NodeId};

/// Who is talking to an agent.
///
/// [`Caller::Peer`] is another node, authenticated by the transport (the `NodeId` is the
/// peer's TLS key). [`Caller::Local`] is this node itself: its HTTP gateway, its CLI, an
/// in-process test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Caller {
    /// This node itself.
    Local,
    /// Another node, authenticated by the transport.
    Peer(NodeId),
}

impl Caller {
    /// The peer's node id, or `None` for [`Caller::Local`].
    #[must_use]
    pub const fn node(&self) -> Option<&NodeId> {
        match self {
            Self::Local => None,
            Self::Peer(node) => Some(node),
        }
    }
}

impl fmt::Display for Caller {
    /// `local caller` or `peer <short node id>`: the subject of a denial message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("local caller"),
            Self::Peer(node) => write!(f, "peer {}", node.fmt_short()),
        }
    }
}

/// What a caller wants to do with an agent; an [`AccessPolicy`] decides.
///
/// Borrowed from the request being checked, so a check allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action<'a> {
    /// Open an MCP session with the agent (checked once per stream, before MCP starts).
    Open,
    /// Call the named tool (`tools/call`).
    CallTool(&'a str),
    /// Read the resource at this URI (`resources/read`, `resources/subscribe`,
    /// `skills/get`, `resources/directory/read`).
    ReadResource(&'a str),
    /// Get the named prompt (`prompts/get`).
    GetPrompt(&'a str),
    /// List what the agent offers (`tools/list`, `resources/list`,
    /// `resources/templates/list`, `prompts/list`, `completion/complete`,
    /// `subscriptions/listen`, `skills/list`).
    List,
    /// A request outside the MCP core (a custom method, or one this version does not
    /// know), by its method name.
    Other(&'a str),
}

/// An [`AccessPolicy`] refused an action.
///
/// The reason is for the caller and the logs; the error the caller sees always starts with
/// the stable text `permission denied: <caller> may not <action> of agent <agent>`.
///
/// A denial can instead say that the caller is over its rate limit
/// ([`Denied::rate_limited`]): the caller then gets a rate-limit error (`rate_limit.exceeded`,
/// HTTP 429) that says when to retry, not `permission denied`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Denied {
    reason: Option<String>,
    retry_after: Option<Duration>,
}

impl Denied {
    /// A denial with a reason for the caller (for example `not trusted`).
    #[must_use]
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: Some(reason.into()),
            retry_after: None,
        }
    }

    /// The caller sent more requests than it may: it may try again after `retry_after`.
    #[must_use]
    pub const fn rate_limited(retry_after: Duration) -> Self {
        Self {
            reason: None,
            retry_after: Some(retry_after),
        }
    }

    /// How long the caller should wait, for a [`Denied::rate_limited`] denial.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// A denial that gives no reason.
    #[must_use]
    pub const fn without_reason() -> Self {
        Self {
            reason: None,
            retry_after: None,
        }
    }

    /// The reason, if one was given.
    #[must_use]
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}

/// Decides whether a caller may do something with an agent; consulted by the callee.
///
/// [`AgentHost`](crate::AgentHost) asks it once when a stream opens an agent
/// ([`Action::Open`]) and again for every request in the session, tool calls included, so a
/// policy change takes effect on the next request. A denied request never reaches the
/// agent: the caller gets an MCP error with code [`DENIED`](crate::codes::DENIED) and a
/// message such as `permission denied: peer x6kt3abc2d may not call tool put of agent
/// memory`.
///
/// `check` runs on the request path: it must be quick and must not block (the node's
/// implementation consults its trust scores in memory and appends to its audit log).
///
/// ```
/// use dawn_identity::AgentId;
/// use dawn_mcp::{AccessPolicy, Action, Caller, Denied};
///
/// /// Peers may use the `echo` agent; only this node may use the others.
/// struct EchoForEveryone;
///
/// impl AccessPolicy for EchoForEveryone {
///     fn check(&self, caller: &Caller, agent: &AgentId, _action: Action<'_>) -> Result<(), Denied> {
///         match caller {
///             Caller::Local => Ok(()),
///             Caller::Peer(_) if agent.as_str() == "echo" => Ok(()),
///             Caller::Peer(_) => Err(Denied::new("only echo is public")),
///         }
///     }
/// }
/// ```
pub trait AccessPolicy: Send + Sync + 'static {
    /// `Ok(())` if `caller` may perform `action` on `agent`.
    ///
    /// # Errors
    /// [`Denied`] to refuse.
    fn check(&self, caller: &Caller, agent: &AgentId, action: Action<'_>) -> Result<(), Denied>;
}

/// A policy that allows everything: for tests and single-user setups.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl AccessPolicy for AllowAll {
    fn check(&self, _caller: &Caller, _agent: &AgentId, _action: Action<'_>) -> Result<(), Denied> {
        Ok(())
    }
}

/// A policy that allows this node and refuses every peer.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOnly;

impl AccessPolicy for LocalOnly {
    fn check(&self, caller: &Caller, _agent: &AgentId, _action: Action<'_>) -> Result<(), Denied> {
        match caller {
            Caller::Local => Ok(()),
            Caller::Peer(_) => Err(Denied::new("this node serves its agents to itself only")),
        }
    }
}

/// The text a caller sees for a denial: `permission denied: <caller> may not <action> of
/// agent <agent>[: <reason>]`.
pub(crate) fn denial_message(
    caller: &Caller,
    agent: &AgentId,
    action: Action<'_>,
    denied: &Denied,
) -> String {
    if let Some(after) = denied.retry_after {
        return format!(
            "rate limited: {caller} sent more requests to agent {agent} than it may; retry in \
             {} ms",
            after.as_millis().max(1)
        );
    }
    let what = match action {
        Action::Open => format!("open agent {agent}"),
        Action::CallTool(tool) => format!("call tool {} of agent {agent}", clip(tool)),
        Action::ReadResource(uri) => format!("read resource {} of agent {agent}", clip(uri)),
        Action::GetPrompt(name) => format!("get prompt {} of agent {agent}", clip(name)),
        Action::List => format!("list the offerings of agent {agent}"),
        Action::Other(method) => format!("send {} to agent {agent}", clip(method)),
    };
    match denied.reason() {
        Some(reason) => format!(
            "permission denied: {caller} may not {what}: {}",
            clip(reason)
        ),
        None => format!("permission denied: {caller} may not {what}"),
    }
}

/// Names echoed in a denial come from the caller: keep them short.
fn clip(text: &str) -> String {
    crate::text::truncate(text, 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeId {
        dawn_crypto::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .into()
    }

    #[test]
    fn denial_messages_name_caller_action_and_agent() {
        let agent: AgentId = "memory".parse().unwrap();
        let peer = Caller::Peer(node());
        let short = node().fmt_short();
        assert_eq!(
            denial_message(
                &peer,
                &agent,
                Action::CallTool("put"),
                &Denied::without_reason()
            ),
            format!("permission denied: peer {short} may not call tool put of agent memory")
        );
        assert_eq!(
            denial_message(&Caller::Local, &agent, Action::Open, &Denied::new("closed")),
            "permission denied: local caller may not open agent memory: closed"
        );
        let long = "x".repeat(1000);
        assert!(
            denial_message(&peer, &agent, Action::GetPrompt(&long), &Denied::default()).len() < 300
        );
    }

    #[test]
    fn local_only_refuses_peers() {
        let agent: AgentId = "echo".parse().unwrap();
        assert!(
            LocalOnly
                .check(&Caller::Local, &agent, Action::Open)
                .is_ok()
        );
        assert!(
            LocalOnly
                .check(&Caller::Peer(node()), &agent, Action::Open)
                .is_err()
        );
    }
}
