//! Error codes: one stable vocabulary that every crate's typed errors map to, for API
//! responses, logs and metrics.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest [`ErrorBody::message`] built by [`ErrorBody::from_error`], in bytes.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// The family an [`ErrorCode`] belongs to: the part of its string form before the dot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Family {
    /// A peer or address could not be reached, or a connection failed.
    Network,
    /// A rate limit refused the call.
    RateLimit,
    /// A circuit breaker refused the call.
    Breaker,
    /// Retries gave up.
    Retry,
    /// Authentication or authorisation failed.
    Auth,
    /// A peer sent something the protocol does not allow.
    Protocol,
    /// An HTTP API request was refused.
    Request,
    /// An agent could not be found or failed.
    Agent,
    /// The local database failed.
    Storage,
    /// The configuration is invalid.
    Config,
    /// A bug or a local resource problem.
    Internal,
}

impl Family {
    /// Every family, in numeric order.
    pub const ALL: &'static [Self] = &[
        Self::Network,
        Self::RateLimit,
        Self::Breaker,
        Self::Retry,
        Self::Auth,
        Self::Protocol,
        Self::Request,
        Self::Agent,
        Self::Storage,
        Self::Config,
        Self::Internal,
    ];

    /// The stable string form, e.g. `rate_limit`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::RateLimit => "rate_limit",
            Self::Breaker => "breaker",
            Self::Retry => "retry",
            Self::Auth => "auth",
            Self::Protocol => "protocol",
            Self::Request => "request",
            Self::Agent => "agent",
            Self::Storage => "storage",
            Self::Config => "config",
            Self::Internal => "internal",
        }
    }

    /// The stable number: an [`ErrorCode`]'s number is `family * 1000 + n`.
    #[must_use]
    pub const fn number(self) -> u16 {
        match self {
            Self::Network => 1,
            Self::RateLimit => 2,
            Self::Breaker => 3,
            Self::Retry => 4,
            Self::Auth => 5,
            Self::Protocol => 6,
            Self::Request => 7,
            Self::Agent => 8,
            Self::Storage => 9,
            Self::Config => 10,
            Self::Internal => 11,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares the codes once, with every property, so the table cannot drift between methods.
macro_rules! error_codes {
    ($(
        $(#[$doc:meta])*
        $variant:ident = ($text:literal, $number:literal, $family:ident, $retryable:literal, $http:literal),
    )*) => {
        /// A stable, machine-readable error code.
        ///
        /// Every typed error in Dawn maps to one of these (through [`HasErrorCode`]), so API
        /// responses, logs and metrics speak one vocabulary. Each code has a string form
        /// (`rate_limit.exceeded`, which is what serde writes), a number (`2001`), a
        /// [`Family`], whether retrying the same call later may succeed, and the HTTP status
        /// an API answers with. All of these are API: they are pinned by a test and only ever
        /// added to.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in numeric order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)*];

            /// The stable string form, `family.reason`.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)* }
            }

            /// The stable number, `family * 1000 + n`.
            #[must_use]
            pub const fn number(self) -> u16 {
                match self { $(Self::$variant => $number,)* }
            }

            /// The family.
            #[must_use]
            pub const fn family(self) -> Family {
                match self { $(Self::$variant => Family::$family,)* }
            }

            /// Whether the same call may succeed if retried later (after `retry_after`, when
            /// the error gives one). `false` means retrying unchanged is pointless.
            #[must_use]
            pub const fn is_retryable(self) -> bool {
                match self { $(Self::$variant => $retryable,)* }
            }

            /// The HTTP status an API answers with.
            #[must_use]
            pub const fn http_status(self) -> u16 {
                match self { $(Self::$variant => $http,)* }
            }
        }
    };
}

error_codes! {
    /// No address of the peer answered.
    NetworkUnreachable = ("network.unreachable", 1001, Network, true, 502),
    /// The peer did not answer in time.
    NetworkTimeout = ("network.timeout", 1002, Network, true, 504),
    /// An established connection closed or reset.
    NetworkConnectionLost = ("network.connection_lost", 1003, Network, true, 502),
    /// The handshake failed: the peer is not the node expected, or TLS failed.
    NetworkHandshakeFailed = ("network.handshake_failed", 1004, Network, false, 502),
    /// A connection limit was reached.
    NetworkConnectionLimit = ("network.connection_limit", 1005, Network, true, 503),
    /// A rate limit is exhausted for now.
    RateLimitExceeded = ("rate_limit.exceeded", 2001, RateLimit, true, 429),
    /// The call is larger than a rate limit's burst, so it can never pass.
    RateLimitTooLarge = ("rate_limit.too_large", 2002, RateLimit, false, 413),
    /// The circuit breaker for the peer is open.
    BreakerOpen = ("breaker.open", 3001, Breaker, true, 503),
    /// Every allowed attempt failed.
    RetryExhausted = ("retry.exhausted", 4001, Retry, false, 503),
    /// The time allowed for retries ran out.
    RetryDeadline = ("retry.deadline", 4002, Retry, false, 504),
    /// The retry budget is spent: too many retries across all calls.
    RetryBudget = ("retry.budget", 4003, Retry, true, 503),
    /// The caller is not authenticated.
    AuthUnauthenticated = ("auth.unauthenticated", 5001, Auth, false, 401),
    /// The caller is authenticated but not allowed to do this.
    AuthDenied = ("auth.denied", 5002, Auth, false, 403),
    /// A signature does not verify.
    AuthInvalidSignature = ("auth.invalid_signature", 5003, Auth, false, 401),
    /// The key or identity was revoked.
    AuthRevoked = ("auth.revoked", 5004, Auth, false, 403),
    /// A message could not be decoded.
    ProtocolMalformed = ("protocol.malformed", 6001, Protocol, false, 400),
    /// The peer speaks a protocol version this node does not.
    ProtocolUnsupportedVersion = ("protocol.unsupported_version", 6002, Protocol, false, 400),
    /// A message is larger than the protocol allows.
    ProtocolTooLarge = ("protocol.too_large", 6003, Protocol, false, 413),
    /// A message was seen before (replay).
    ProtocolReplayed = ("protocol.replayed", 6004, Protocol, false, 409),
    /// A message is valid but not expected in this state.
    ProtocolUnexpected = ("protocol.unexpected", 6005, Protocol, false, 400),
    /// The HTTP request is invalid (bad JSON, bad parameter).
    RequestInvalid = ("request.invalid", 7001, Request, false, 400),
    /// Nothing at this path or with this id.
    RequestNotFound = ("request.not_found", 7002, Request, false, 404),
    /// The path exists but not with this method.
    RequestMethodNotAllowed = ("request.method_not_allowed", 7003, Request, false, 405),
    /// The request body is too large.
    RequestTooLarge = ("request.too_large", 7004, Request, false, 413),
    /// The request was sent to the wrong host (DNS rebinding protection).
    RequestMisdirected = ("request.misdirected", 7005, Request, false, 421),
    /// The request conflicts with the current state.
    RequestConflict = ("request.conflict", 7006, Request, false, 409),
    /// No such agent on the mesh.
    AgentNotFound = ("agent.not_found", 8001, Agent, false, 404),
    /// The agent exists but cannot take calls now.
    AgentUnavailable = ("agent.unavailable", 8002, Agent, true, 503),
    /// The agent answered with an error.
    AgentFailed = ("agent.failed", 8003, Agent, false, 502),
    /// The database is busy or cannot be opened.
    StorageUnavailable = ("storage.unavailable", 9001, Storage, true, 503),
    /// The database holds data that does not decode or verify.
    StorageCorrupt = ("storage.corrupt", 9002, Storage, false, 500),
    /// The disk is full.
    StorageFull = ("storage.full", 9003, Storage, false, 507),
    /// The node's configuration is invalid.
    ConfigInvalid = ("config.invalid", 10001, Config, false, 500),
    /// A bug: an invariant did not hold.
    InternalError = ("internal.error", 11001, Internal, false, 500),
    /// The node is shutting down.
    InternalShuttingDown = ("internal.shutting_down", 11002, Internal, true, 503),
    /// A local queue or resource is full.
    InternalOverloaded = ("internal.overloaded", 11003, Internal, true, 503),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string is not a known [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0:?}")]
pub struct UnknownErrorCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, UnknownErrorCode> {
        Self::ALL
            .iter()
            .copied()
            .find(|code| code.as_str() == s)
            .ok_or_else(|| UnknownErrorCode(s.chars().take(64).collect()))
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An error that has an [`ErrorCode`].
///
/// Every crate's public error types implement it, so the node can answer an API call, log a
/// failure or count it in a metric without knowing the crate it came from.
///
/// ```
/// use dawn_resilience::{ErrorCode, HasErrorCode};
///
/// #[derive(Debug, thiserror::Error)]
/// enum DialError {
///     #[error("no address answered")]
///     Unreachable,
///     #[error("the peer is not who we expected")]
///     WrongPeer,
/// }
///
/// impl HasErrorCode for DialError {
///     fn code(&self) -> ErrorCode {
///         match self {
///             Self::Unreachable => ErrorCode::NetworkUnreachable,
///             Self::WrongPeer => ErrorCode::NetworkHandshakeFailed,
///         }
///     }
/// }
///
/// assert_eq!(DialError::Unreachable.code().as_str(), "network.unreachable");
/// ```
pub trait HasErrorCode {
    /// The code for this error.
    fn code(&self) -> ErrorCode;

    /// How long to wait before the same call may succeed, when the error knows (a rate limit,
    /// an open breaker). `None` by default.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// The JSON body of an API error: `{"code": "rate_limit.exceeded", "message": "...",
/// "retry_after_ms": 250}` (`retry_after_ms` only when known).
///
/// Deserializing a body whose code this version does not know fails; a client older than
/// the node it talks to should treat that as `internal.error` and use the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorBody {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// When the call may be retried, in milliseconds (rounded up), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorBody {
    /// A body with a code and a message, without `retry_after_ms`.
    #[must_use]
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// The body for an error: its code, its `Display` text (cut to [`MAX_MESSAGE_LEN`] bytes)
    /// and its `retry_after`.
    #[must_use]
    pub fn from_error<E: HasErrorCode + fmt::Display + ?Sized>(error: &E) -> Self {
        let mut message = error.to_string();
        truncate(&mut message, MAX_MESSAGE_LEN);
        let body = Self::new(error.code(), message);
        match error.retry_after() {
            Some(after) => body.with_retry_after(after),
            None => body,
        }
    }

    /// Sets `retry_after_ms`, rounding up to whole milliseconds so that a client that waits
    /// that long is not refused again for being early.
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after_ms = Some(ceil_div(after.as_nanos(), 1_000_000));
        self
    }

    /// The HTTP status to answer with (the code's).
    #[must_use]
    pub const fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// The value of an HTTP `Retry-After` header, in whole seconds rounded up, if known.
    #[must_use]
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_ms.map(|ms| ceil_div(u128::from(ms), 1000))
    }
}

/// `ceil(n / d)` as a `u64`, saturating.
fn ceil_div(n: u128, d: u128) -> u64 {
    u64::try_from(n.div_ceil(d)).unwrap_or(u64::MAX)
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut with `…`.
fn truncate(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let ellipsis = '…';
    let mut end = max.saturating_sub(ellipsis.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push(ellipsis);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_rejects_unknown() {
        for &code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
            assert_eq!(code.to_string(), code.as_str());
        }
        assert!("network".parse::<ErrorCode>().is_err());
        assert!("Network.Unreachable".parse::<ErrorCode>().is_err());
        let long = "x".repeat(10_000);
        let err = long.parse::<ErrorCode>().unwrap_err();
        assert_eq!(err.0.len(), 64);
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        let mut text = "é".repeat(600);
        truncate(&mut text, MAX_MESSAGE_LEN);
        assert!(text.len() <= MAX_MESSAGE_LEN);
        assert!(text.ends_with('…'));
        let mut short = String::from("short");
        truncate(&mut short, MAX_MESSAGE_LEN);
        assert_eq!(short, "short");
    }

    #[test]
    fn retry_after_rounds_up() {
        let body = ErrorBody::new(ErrorCode::RateLimitExceeded, "slow down")
            .with_retry_after(Duration::from_micros(1_001));
        assert_eq!(body.retry_after_ms, Some(2));
        assert_eq!(body.retry_after_secs(), Some(1));
        let body = body.with_retry_after(Duration::from_millis(2_000));
        assert_eq!(body.retry_after_secs(), Some(2));
        let body = body.with_retry_after(Duration::MAX);
        assert_eq!(body.retry_after_ms, Some(u64::MAX));
        assert_eq!(body.retry_after_secs(), Some(u64::MAX / 1000 + 1));
    }
}
