//! Settings of a [`Transport`](crate::Transport).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dawn_identity::NodeId;
use dawn_wire::{Capabilities, MAX_FRAME_LEN, PROTOCOL_VERSION};

/// The node's trust policy, asked about every inbound peer right after the TLS handshake has
/// authenticated it and before the `Hello`.
///
/// A refused peer's connection is closed with [`CloseCode::Refused`](crate::CloseCode) and
/// the reason, which the dialer sees as [`ConnectError::Refused`](crate::ConnectError).
/// Closures `Fn(&NodeId, SocketAddr) -> Result<(), Refusal>` are policies.
pub trait AcceptPolicy: Send + Sync + 'static {
    /// Whether to talk to `peer`, which authenticated from `remote`.
    ///
    /// # Errors
    /// A [`Refusal`] to close the connection.
    fn check(&self, peer: &NodeId, remote: SocketAddr) -> Result<(), Refusal>;
}

impl<F> AcceptPolicy for F
where
    F: Fn(&NodeId, SocketAddr) -> Result<(), Refusal> + Send + Sync + 'static,
{
    fn check(&self, peer: &NodeId, remote: SocketAddr) -> Result<(), Refusal> {
        self(peer, remote)
    }
}

/// A trust policy's decision not to talk to a peer, with the reason sent to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused: {reason}")]
pub struct Refusal {
    reason: String,
}

impl Refusal {
    /// Longest reason sent to the peer, in bytes; longer reasons are cut.
    pub const MAX_REASON_LEN: usize = 256;

    /// A refusal with a short reason for the peer (cut at [`Refusal::MAX_REASON_LEN`] bytes).
    #[must_use]
    pub fn new(reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        truncate_utf8(&mut reason, Self::MAX_REASON_LEN);
        Self { reason }
    }

    /// The reason sent to the peer.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary.
pub(crate) fn truncate_utf8(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Settings of a [`Transport`](crate::Transport). Start from [`TransportConfig::default`] and
/// change what you need.
///
/// ```
/// use std::time::Duration;
/// use dawn_transport::TransportConfig;
///
/// let mut config = TransportConfig::default();
/// config.idle_timeout = Duration::from_secs(60);
/// config.max_connections_per_ip = 4;
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Time allowed for the TLS handshake and the `Hello` exchange together, per address
    /// tried. Default 10 s.
    pub handshake_timeout: Duration,
    /// A connection with no traffic for this long is closed (QUIC idle timeout; the smaller of
    /// the two peers' values applies). Default 30 s.
    pub idle_timeout: Duration,
    /// Send a keep-alive this often on idle connections so they survive NAT bindings and the
    /// idle timeout for as long as the peer is alive; `None` lets idle connections time out.
    /// Default 10 s.
    pub keep_alive_interval: Option<Duration>,
    /// Deadline of [`Connection::request`](crate::Connection::request). Default 30 s.
    pub request_timeout: Duration,
    /// Time an inbound stream has to send its header before it is reset. Default 10 s.
    pub stream_header_timeout: Duration,
    /// Longest time [`Transport::close`](crate::Transport::close) waits for closed
    /// connections to drain (quinn keeps each one for three probe timeouts to repeat its
    /// `CONNECTION_CLOSE` if the peer missed it). Connections still draining then finish in
    /// the background. Zero returns as soon as everything is closed and cancelled. Default
    /// 500 ms.
    pub close_timeout: Duration,
    /// Most connections (inbound, outbound and handshaking) at once. Default 1024.
    pub max_connections: usize,
    /// Most inbound connections (including handshaking ones) from one IP address. Default 8.
    pub max_connections_per_ip: usize,
    /// Most bidirectional streams a peer may have open on one connection at once; further
    /// streams wait for flow control. Default 256.
    pub max_streams_per_connection: u32,
    /// Largest frame payload accepted or sent (request, response, raw-stream frames), at most
    /// [`MAX_FRAME_LEN`]. Default [`MAX_FRAME_LEN`] (1 MiB).
    pub max_frame_len: usize,
    /// Capabilities announced in the `Hello`. Default none.
    pub capabilities: Capabilities,
    /// Software name announced in the `Hello`: printable ASCII, at most 64 bytes. Default
    /// `dawn/<version>`.
    pub software: String,
    /// How many [`TransportEvent`](crate::TransportEvent)s a slow subscriber may fall behind
    /// before it misses some. Default 1024.
    pub event_capacity: usize,
    /// The trust policy for inbound peers; `None` accepts every authenticated peer. Can be
    /// replaced later with [`Transport::set_accept_policy`](crate::Transport::set_accept_policy).
    pub accept_policy: Option<Arc<dyn AcceptPolicy>>,
    /// Protocol versions offered in the `Hello`; only tests change it.
    pub(crate) versions: (u16, u16),
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            keep_alive_interval: Some(Duration::from_secs(10)),
            request_timeout: Duration::from_secs(30),
            stream_header_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_millis(500),
            max_connections: 1024,
            max_connections_per_ip: 8,
            max_streams_per_connection: 256,
            max_frame_len: MAX_FRAME_LEN,
            capabilities: Capabilities::EMPTY,
            software: concat!("dawn/", env!("CARGO_PKG_VERSION")).to_owned(),
            event_capacity: 1024,
            accept_policy: None,
            versions: (PROTOCOL_VERSION, PROTOCOL_VERSION),
        }
    }
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConfig")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("keep_alive_interval", &self.keep_alive_interval)
            .field("request_timeout", &self.request_timeout)
            .field("stream_header_timeout", &self.stream_header_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field(
                "max_streams_per_connection",
                &self.max_streams_per_connection,
            )
            .field("max_frame_len", &self.max_frame_len)
            .field("capabilities", &self.capabilities)
            .field("software", &self.software)
            .field("event_capacity", &self.event_capacity)
            .field("accept_policy", &self.accept_policy.as_ref().map(|_| "..."))
            .finish_non_exhaustive()
    }
}

/// A [`TransportConfig`] value is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_frame_len` is 0 or above [`MAX_FRAME_LEN`].
    #[error("max_frame_len must be 1..={MAX_FRAME_LEN}, got {0}")]
    FrameLen(usize),
    /// A limit that must be positive is 0.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A timeout is zero or too long for QUIC (about 2^62 microseconds at most).
    #[error("{0} must be positive and representable by QUIC")]
    Timeout(&'static str),
    /// The software string or version range is not a valid `Hello`.
    #[error("invalid hello settings: {0}")]
    Hello(#[from] dawn_wire::HelloError),
}

impl TransportConfig {
    /// Checks every value.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frame_len == 0 || self.max_frame_len > MAX_FRAME_LEN {
            return Err(ConfigError::FrameLen(self.max_frame_len));
        }
        for (name, value) in [
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("event_capacity", self.event_capacity),
            (
                "max_streams_per_connection",
                usize::try_from(self.max_streams_per_connection).unwrap_or(usize::MAX),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        for (name, value) in [
            ("handshake_timeout", self.handshake_timeout),
            ("idle_timeout", self.idle_timeout),
            ("request_timeout", self.request_timeout),
            ("stream_header_timeout", self.stream_header_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Timeout(name));
            }
        }
        if quinn::IdleTimeout::try_from(self.idle_timeout).is_err() {
            return Err(ConfigError::Timeout("idle_timeout"));
        }
        if self.keep_alive_interval.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::Timeout("keep_alive_interval"));
        }
        let (min_version, max_version) = self.versions;
        let probe = dawn_wire::Hello {
            min_version,
            max_version,
            node_id: dawn_crypto::SigningKey::from_bytes(&[1; 32])
                .verifying_key()
                .into(),
            capabilities: self.capabilities,
            software: self.software.clone(),
        };
        probe.validate()?;
        Ok(())
    }

    /// The quinn transport parameters these settings imply.
    pub(crate) fn quic(&self) -> quinn::TransportConfig {
        let mut quic = quinn::TransportConfig::default();
        quic.max_idle_timeout(quinn::IdleTimeout::try_from(self.idle_timeout).ok())
            .keep_alive_interval(self.keep_alive_interval)
            .max_concurrent_bidi_streams(quinn::VarInt::from_u32(self.max_streams_per_connection))
            .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
            .datagram_receive_buffer_size(None);
        // Bound what one peer can make us buffer: a few maximum frames per connection, and
        // never so little that small frame limits starve raw streams.
        let window = self
            .max_frame_len
            .saturating_mul(crate::connection::INBOUND_BUDGET_FRAMES)
            .max(4 << 20);
        let window = u32::try_from(window).unwrap_or(u32::MAX);
        quic.receive_window(quinn::VarInt::from_u32(window));
        quic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_values_are_named() {
        TransportConfig::default().validate().unwrap();
        let config = TransportConfig {
            max_frame_len: MAX_FRAME_LEN + 1,
            ..TransportConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::FrameLen(MAX_FRAME_LEN + 1))
        );
        let config = TransportConfig {
            max_connections_per_ip: 0,
            ..TransportConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::Zero("max_connections_per_ip"))
        );
        let config = TransportConfig {
            request_timeout: Duration::ZERO,
            ..TransportConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::Timeout("request_timeout"))
        );
        let config = TransportConfig {
            software: "bad\nname".to_owned(),
            ..TransportConfig::default()
        };
        assert!(matches!(config.validate(), Err(ConfigError::Hello(_))));
        let config = TransportConfig {
            versions: (2, 1),
            ..TransportConfig::default()
        };
        assert!(matches!(config.validate(), Err(ConfigError::Hello(_))));
    }

    #[test]
    fn refusal_reasons_are_cut_on_a_character_boundary() {
        let refusal = Refusal::new("é".repeat(200));
        assert!(refusal.reason().len() <= Refusal::MAX_REASON_LEN);
        assert_eq!(refusal.reason().chars().count(), 128);
    }
}
