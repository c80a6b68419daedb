//! `CallError`: why calling an agent failed, and how that looks to MCP and HTTP clients.

use std::borrow::Cow;

use dawn_identity::{AgentId, NodeId};
use dawn_resilience::{ErrorCode, HasErrorCode};
use rmcp::ServiceError;
use rmcp::model::{ErrorCode as McpCode, ErrorData};
use serde_json::{Value, json};

use crate::preamble::RefuseCode;

/// The JSON-RPC error codes Dawn uses in MCP responses.
///
/// They sit at the top of the range JSON-RPC leaves to implementations
/// (`-32000..=-32099`), away from the codes MCP itself assigns there. Every error with one
/// of these codes also carries `data.dawnCode`, the [`ErrorCode`] string
/// (`auth.denied`, ...), so clients can branch on either.
pub mod codes {
    use rmcp::model::ErrorCode;

    /// The access policy refused the request (`auth.denied`, HTTP 403).
    pub const DENIED: ErrorCode = ErrorCode(-32090);
    /// No such agent on the node (`agent.not_found`, HTTP 404).
    pub const UNKNOWN_AGENT: ErrorCode = ErrorCode(-32091);
    /// No such node on the mesh (`agent.not_found`, HTTP 404).
    pub const UNKNOWN_NODE: ErrorCode = ErrorCode(-32092);
    /// The agent's node could not be reached (`network.unreachable`, HTTP 502).
    pub const UNREACHABLE: ErrorCode = ErrorCode(-32093);
    /// The request ran out of time (`network.timeout`, HTTP 504).
    pub const TIMED_OUT: ErrorCode = ErrorCode(-32094);
    /// The agent's node refused the session, e.g. busy (`agent.unavailable`, HTTP 503).
    pub const REFUSED: ErrorCode = ErrorCode(-32095);
    /// The agent's side broke the protocol (`agent.failed`, HTTP 502).
    pub const PROTOCOL: ErrorCode = ErrorCode(-32096);
    /// The session closed before the answer arrived (`network.connection_lost`, HTTP 502).
    pub const CLOSED: ErrorCode = ErrorCode(-32097);
    /// The caller is over its rate limit at the agent's node (`rate_limit.exceeded`, HTTP
    /// 429); `data.retryAfterMs` says when to try again.
    pub const RATE_LIMITED: ErrorCode = ErrorCode(-32098);
}

/// Calling an agent failed.
///
/// Every variant maps to an MCP error ([`CallError::to_mcp_error`], codes in [`codes`]) and
/// to a Dawn [`ErrorCode`] ([`HasErrorCode`]) whose HTTP status the node answers with:
///
/// | Variant          | MCP code             | `ErrorCode`                   | HTTP |
/// |------------------|----------------------|-------------------------------|------|
/// | `UnknownNode`    | [`codes::UNKNOWN_NODE`]  | `agent.not_found`         | 404  |
/// | `UnknownAgent`   | [`codes::UNKNOWN_AGENT`] | `agent.not_found`         | 404  |
/// | `Unreachable`    | [`codes::UNREACHABLE`]   | `network.unreachable`     | 502  |
/// | `TimedOut`       | [`codes::TIMED_OUT`]     | `network.timeout`         | 504  |
/// | `Refused`        | [`codes::REFUSED`]       | by [`RefuseCode`]: rate limited is `rate_limit.exceeded` (429), busy is `agent.unavailable` (503), shutting down `internal.shutting_down` (503), a version or malformed preamble `protocol.unsupported_version` / `protocol.malformed` | 503/400 |
/// | `Denied`         | [`codes::DENIED`]        | `auth.denied`             | 403  |
/// | `RateLimited`    | [`codes::RATE_LIMITED`]  | `rate_limit.exceeded`     | 429  |
/// | `Agent`          | the agent's own          | invalid params: `request.invalid` (400); method or resource not found: `request.not_found` (404); else `agent.failed` (502) | |
/// | `Closed`         | [`codes::CLOSED`]        | `network.connection_lost` | 502  |
/// | `Protocol`       | [`codes::PROTOCOL`]      | `agent.failed`            | 502  |
///
/// A Dawn error that comes back over MCP (a remote node's denial, say) turns back into the
/// same variant ([`CallError::from_mcp_error`]), so a gateway forwards a remote `403` as a
/// `403`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The node is not on the mesh (not in the directory, no address).
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// The node has no agent with this id.
    #[error("no agent {0} on that node")]
    UnknownAgent(AgentId),
    /// The node could not be reached.
    #[error("the agent's node is unreachable: {reason}")]
    Unreachable {
        /// What failed (dial error, stream reset...).
        reason: String,
    },
    /// The deadline passed before the answer arrived; the request was cancelled.
    #[error("the call timed out")]
    TimedOut,
    /// The agent's node refused the session.
    #[error("the agent's node refused the session ({code:?}): {reason}")]
    Refused {
        /// Why, for programs.
        code: RefuseCode,
        /// Why, for people.
        reason: String,
    },
    /// The access policy of the agent's node refused the caller.
    #[error("{message}")]
    Denied {
        /// `permission denied: <caller> may not <action> of agent <agent>[: <reason>]`.
        message: String,
    },
    /// The agent's node refused the request: the caller sent more requests than its rate
    /// limit allows.
    #[error("{message}")]
    RateLimited {
        /// `rate limited: <caller> sent more requests to agent <agent> than it may; ...`.
        message: String,
        /// When the same request may pass, if the node said.
        retry_after: Option<std::time::Duration>,
    },
    /// The agent answered with an MCP error (unknown tool, invalid arguments...).
    #[error("the agent answered with an error: {0}")]
    Agent(ErrorData),
    /// The session closed before the answer arrived.
    #[error("the session with the agent closed")]
    Closed,
    /// The other side broke the MCP or preamble protocol.
    #[error("protocol error: {detail}")]
    Protocol {
        /// What was wrong.
        detail: String,
    },
}

impl CallError {
    /// The MCP error for this failure, with a code from [`codes`] (or the agent's own error
    /// for [`CallError::Agent`]) and `data.dawnCode` set to the [`ErrorCode`] string.
    #[must_use]
    pub fn to_mcp_error(&self) -> ErrorData {
        let (code, extra) = match self {
            Self::Agent(error) => return error.clone(),
            Self::UnknownNode(node) => (codes::UNKNOWN_NODE, json!({ "node": node.to_string() })),
            Self::UnknownAgent(agent) => (codes::UNKNOWN_AGENT, json!({ "agent": agent.as_str() })),
            Self::Unreachable { .. } => (codes::UNREACHABLE, json!({})),
            Self::TimedOut => (codes::TIMED_OUT, json!({})),
            Self::Refused { code, .. } => (codes::REFUSED, json!({ "refuseCode": code.number() })),
            Self::Denied { .. } => (codes::DENIED, json!({})),
            Self::RateLimited { retry_after, .. } => (
                codes::RATE_LIMITED,
                retry_after.map_or_else(
                    || json!({}),
                    |after| json!({ "retryAfterMs": retry_after_ms(after) }),
                ),
            ),
            Self::Closed => (codes::CLOSED, json!({})),
            Self::Protocol { .. } => (codes::PROTOCOL, json!({})),
        };
        let mut data = extra;
        if let Value::Object(map) = &mut data {
            map.insert("dawnCode".into(), Value::from(self.code().as_str()));
        }
        ErrorData::new(code, self.to_string(), Some(data))
    }

    /// The failure an MCP error describes: Dawn's codes (see [`codes`]) become their
    /// variant again, anything else is [`CallError::Agent`].
    #[must_use]
    pub fn from_mcp_error(error: ErrorData) -> Self {
        let field = |name: &str| {
            error
                .data
                .as_ref()
                .and_then(|data| data.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let message = error.message.to_string();
        match error.code {
            codes::DENIED => Self::Denied { message },
            codes::RATE_LIMITED => Self::RateLimited {
                message,
                retry_after: error
                    .data
                    .as_ref()
                    .and_then(|data| data.get("retryAfterMs"))
                    .and_then(Value::as_u64)
                    .map(std::time::Duration::from_millis),
            },
            codes::UNKNOWN_AGENT => match field("agent").and_then(|a| a.parse().ok()) {
                Some(agent) => Self::UnknownAgent(agent),
                None => Self::Agent(error),
            },
            codes::UNKNOWN_NODE => match field("node").and_then(|n| n.parse().ok()) {
                Some(node) => Self::UnknownNode(node),
                None => Self::Agent(error),
            },
            codes::UNREACHABLE => Self::Unreachable { reason: message },
            codes::TIMED_OUT => Self::TimedOut,
            codes::REFUSED => {
                let number = error
                    .data
                    .as_ref()
                    .and_then(|data| data.get("refuseCode"))
                    .and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok());
                match number {
                    Some(number) => Self::Refused {
                        code: RefuseCode::from_number(number),
                        reason: message,
                    },
                    None => Self::Agent(error),
                }
            }
            codes::CLOSED => Self::Closed,
            codes::PROTOCOL => Self::Protocol { detail: message },
            _ => Self::Agent(error),
        }
    }

    /// The failure of an rmcp request.
    pub(crate) fn from_service(error: ServiceError) -> Self {
        match error {
            ServiceError::McpError(error) => Self::from_mcp_error(error),
            ServiceError::Timeout { .. } => Self::TimedOut,
            ServiceError::TransportClosed
            | ServiceError::TransportSend(_)
            | ServiceError::Cancelled { .. } => Self::Closed,
            other => Self::Protocol {
                detail: other.to_string(),
            },
        }
    }
}

impl HasErrorCode for CallError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownNode(_) | Self::UnknownAgent(_) => ErrorCode::AgentNotFound,
            Self::Unreachable { .. } => ErrorCode::NetworkUnreachable,
            Self::TimedOut => ErrorCode::NetworkTimeout,
            Self::Refused { code, .. } => match code {
                RefuseCode::UnknownAgent => ErrorCode::AgentNotFound,
                RefuseCode::Denied => ErrorCode::AuthDenied,
                RefuseCode::UnsupportedVersion => ErrorCode::ProtocolUnsupportedVersion,
                RefuseCode::Malformed => ErrorCode::ProtocolMalformed,
                RefuseCode::ShuttingDown => ErrorCode::InternalShuttingDown,
                RefuseCode::RateLimited => ErrorCode::RateLimitExceeded,
                RefuseCode::Busy | RefuseCode::Other(_) => ErrorCode::AgentUnavailable,
            },
            Self::Denied { .. } => ErrorCode::AuthDenied,
            Self::RateLimited { .. } => ErrorCode::RateLimitExceeded,
            Self::Agent(error) => match error.code {
                McpCode::INVALID_PARAMS => ErrorCode::RequestInvalid,
                McpCode::METHOD_NOT_FOUND | McpCode::RESOURCE_NOT_FOUND => {
                    ErrorCode::RequestNotFound
                }
                _ => ErrorCode::AgentFailed,
            },
            Self::Closed => ErrorCode::NetworkConnectionLost,
            Self::Protocol { .. } => ErrorCode::AgentFailed,
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Whole milliseconds, rounded up so that a caller that waits that long is not early.
fn retry_after_ms(after: std::time::Duration) -> u64 {
    u64::try_from(after.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// The MCP error a callee answers with when a caller is over its rate limit.
pub(crate) fn rate_limited_error(message: String, after: std::time::Duration) -> ErrorData {
    ErrorData::new(
        codes::RATE_LIMITED,
        message,
        Some(json!({
            "dawnCode": ErrorCode::RateLimitExceeded.as_str(),
            "retryAfterMs": retry_after_ms(after),
        })),
    )
}

/// The MCP error a callee answers with when its request deadline passes.
pub(crate) fn timed_out_error(after: std::time::Duration) -> ErrorData {
    ErrorData::new(
        codes::TIMED_OUT,
        Cow::Owned(format!("the agent did not answer within {after:?}")),
        Some(json!({ "dawnCode": ErrorCode::NetworkTimeout.as_str() })),
    )
}

/// The MCP error a callee answers with when the policy refuses a request.
pub(crate) fn denied_error(message: String, reason: Option<&str>) -> ErrorData {
    let mut data = json!({ "dawnCode": ErrorCode::AuthDenied.as_str() });
    if let (Some(reason), Value::Object(map)) = (reason, &mut data) {
        map.insert("reason".into(), Value::from(reason));
    }
    ErrorData::new(codes::DENIED, message, Some(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeId {
        dawn_crypto::SigningKey::from_bytes(&[3; 32])
            .verifying_key()
            .into()
    }

    fn all() -> Vec<CallError> {
        vec![
            CallError::UnknownNode(node()),
            CallError::UnknownAgent("echo".parse().unwrap()),
            CallError::Unreachable {
                reason: "no route".into(),
            },
            CallError::TimedOut,
            CallError::Refused {
                code: RefuseCode::Busy,
                reason: "busy".into(),
            },
            CallError::Denied {
                message: "permission denied: local caller may not open agent echo".into(),
            },
            CallError::RateLimited {
                message: "rate limited: slow down".into(),
                retry_after: Some(std::time::Duration::from_millis(7)),
            },
            CallError::Closed,
            CallError::Protocol {
                detail: "bad".into(),
            },
        ]
    }

    #[test]
    fn dawn_errors_survive_a_trip_through_mcp() {
        for error in all() {
            let mcp = error.to_mcp_error();
            assert_eq!(
                mcp.data
                    .as_ref()
                    .and_then(|d| d.get("dawnCode"))
                    .and_then(Value::as_str),
                Some(error.code().as_str()),
                "{error}"
            );
            let back = CallError::from_mcp_error(mcp);
            assert_eq!(back.code(), error.code(), "{error} came back as {back}");
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&error),
                "{error} came back as {back}"
            );
        }
    }

    #[test]
    fn http_statuses_match_the_agent_api_contract() {
        let denied = CallError::Denied {
            message: String::new(),
        };
        assert_eq!(denied.code().as_str(), "auth.denied");
        assert_eq!(denied.code().http_status(), 403);
        assert_eq!(CallError::UnknownNode(node()).code().http_status(), 404);
        assert_eq!(
            CallError::UnknownAgent("a".parse().unwrap())
                .code()
                .http_status(),
            404
        );
        assert_eq!(
            CallError::Unreachable {
                reason: String::new()
            }
            .code()
            .http_status(),
            502
        );
        assert_eq!(CallError::TimedOut.code().http_status(), 504);
        let bad_args = CallError::Agent(ErrorData::invalid_params("bad", None));
        assert_eq!(bad_args.code().http_status(), 400);
        let failed = CallError::Agent(ErrorData::internal_error("boom", None));
        assert_eq!(failed.code().http_status(), 502);
    }

    #[test]
    fn foreign_errors_and_malformed_dawn_errors_stay_agent_errors() {
        let foreign = ErrorData::invalid_params("nope", None);
        assert!(matches!(
            CallError::from_mcp_error(foreign.clone()),
            CallError::Agent(e) if e == foreign
        ));
        let no_agent = ErrorData::new(codes::UNKNOWN_AGENT, "x", None);
        assert!(matches!(
            CallError::from_mcp_error(no_agent),
            CallError::Agent(_)
        ));
    }
}
