//! Application error codes Dawn puts on the wire: why a connection closed, why a stream was
//! reset.

use std::fmt;

use quinn::VarInt;

/// Why a connection was closed, as sent in the QUIC `CONNECTION_CLOSE` frame (application
/// error code), next to a human-readable reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// Closed on purpose by the application ([`Connection::close`](crate::Connection::close)).
    Normal,
    /// The node is shutting down ([`Transport::close`](crate::Transport::close)).
    Shutdown,
    /// The two nodes have no protocol version in common (see the reason for both ranges).
    Incompatible,
    /// The peer broke the connection protocol: a malformed or missing `Hello`, or a `Hello`
    /// naming a node other than the one that authenticated.
    ProtocolViolation,
    /// The node's trust policy refused the peer.
    Refused,
    /// Another connection between the same two nodes is kept instead of this one.
    Duplicate,
    /// The `Hello` exchange did not finish in time.
    Timeout,
    /// A code this build does not know.
    Other(u32),
}

impl CloseCode {
    /// The numeric code on the wire.
    #[must_use]
    pub const fn to_u32(self) -> u32 {
        match self {
            Self::Normal => 0,
            Self::Shutdown => 1,
            Self::Incompatible => 2,
            Self::ProtocolViolation => 3,
            Self::Refused => 4,
            Self::Duplicate => 5,
            Self::Timeout => 6,
            Self::Other(code) => code,
        }
    }

    /// The code for a number from the wire; unknown numbers become [`CloseCode::Other`].
    #[must_use]
    pub fn from_u64(code: u64) -> Self {
        match code {
            0 => Self::Normal,
            1 => Self::Shutdown,
            2 => Self::Incompatible,
            3 => Self::ProtocolViolation,
            4 => Self::Refused,
            5 => Self::Duplicate,
            6 => Self::Timeout,
            other => Self::Other(u32::try_from(other).unwrap_or(u32::MAX)),
        }
    }

    pub(crate) fn varint(self) -> VarInt {
        VarInt::from_u32(self.to_u32())
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Normal => f.write_str("normal close"),
            Self::Shutdown => f.write_str("node shutting down"),
            Self::Incompatible => f.write_str("incompatible protocol versions"),
            Self::ProtocolViolation => f.write_str("protocol violation"),
            Self::Refused => f.write_str("refused by trust policy"),
            Self::Duplicate => f.write_str("duplicate connection"),
            Self::Timeout => f.write_str("hello timed out"),
            Self::Other(code) => write!(f, "unknown close code {code}"),
        }
    }
}

/// Why a stream was reset or stopped, as sent in `RESET_STREAM` / `STOP_SENDING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamCode {
    /// The side that opened the stream gave up on it (timeout, or the caller went away).
    Cancelled,
    /// No handler is registered for the protocol the stream names.
    UnknownProtocol,
    /// A frame declared more bytes than the receiver accepts.
    FrameTooLarge,
    /// The stream header or a frame was malformed, or the stream ended too early.
    Malformed,
    /// The stream header did not arrive in time.
    Timeout,
    /// The receiving node is shutting down or its handler went away.
    Unavailable,
    /// A code this build does not know (higher layers may use their own on raw streams).
    Other(u32),
}

impl StreamCode {
    /// The numeric code on the wire.
    #[must_use]
    pub const fn to_u32(self) -> u32 {
        match self {
            Self::Cancelled => 1,
            Self::UnknownProtocol => 2,
            Self::FrameTooLarge => 3,
            Self::Malformed => 4,
            Self::Timeout => 5,
            Self::Unavailable => 6,
            Self::Other(code) => code,
        }
    }

    /// The code for a number from the wire; unknown numbers become [`StreamCode::Other`].
    #[must_use]
    pub fn from_u64(code: u64) -> Self {
        match code {
            1 => Self::Cancelled,
            2 => Self::UnknownProtocol,
            3 => Self::FrameTooLarge,
            4 => Self::Malformed,
            5 => Self::Timeout,
            6 => Self::Unavailable,
            other => Self::Other(u32::try_from(other).unwrap_or(u32::MAX)),
        }
    }

    /// The code as a QUIC variable-length integer, for
    /// [`SendStream::reset`](crate::SendStream::reset) and
    /// [`RecvStream::stop`](crate::RecvStream::stop).
    #[must_use]
    pub const fn varint(self) -> VarInt {
        VarInt::from_u32(self.to_u32())
    }
}

impl fmt::Display for StreamCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cancelled => f.write_str("cancelled"),
            Self::UnknownProtocol => f.write_str("unknown protocol"),
            Self::FrameTooLarge => f.write_str("frame too large"),
            Self::Malformed => f.write_str("malformed stream"),
            Self::Timeout => f.write_str("stream header timed out"),
            Self::Unavailable => f.write_str("unavailable"),
            Self::Other(code) => write!(f, "stream code {code}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_kept() {
        for code in 0..10u64 {
            assert_eq!(u64::from(CloseCode::from_u64(code).to_u32()), code);
            assert_eq!(u64::from(StreamCode::from_u64(code).to_u32()), code);
        }
        assert_eq!(CloseCode::from_u64(u64::MAX), CloseCode::Other(u32::MAX));
        assert_eq!(StreamCode::from_u64(77), StreamCode::Other(77));
        assert_eq!(StreamCode::FrameTooLarge.varint().into_inner(), 3);
    }
}
