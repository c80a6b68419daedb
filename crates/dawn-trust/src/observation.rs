//! What the node saw a peer do, and what each observation does to its score.

use std::fmt;

/// Something the node observed a peer do, fed to [`TrustTable::record`](crate::TrustTable).
///
/// Each observation has a fixed, documented [`Effect`] (see [`Observation::effect`]):
///
/// | Observation | Effect | Why this weight |
/// |---|---|---|
/// | `HandshakeCompleted` | reward 0.02 | proved its key; required for `Verified` |
/// | `ValidMessage` | reward 0.01 | ordinary good behaviour; gains are rate-limited anyway |
/// | `Timeout` | penalty 0.02 | usually the network, rarely malice |
/// | `Future` | penalty 0.02 | a timestamp too far ahead: often a wrong clock |
/// | `Stale` | penalty 0.05 | an old message pushed as new |
/// | `Flooding` | penalty 0.15 | more traffic than the rate limit allows |
/// | `Replay` | penalty 0.30 | a message already seen, pushed again |
/// | `Malformed` | penalty 0.30 | bytes that are not a valid message |
/// | `ProtocolViolation` | penalty 0.40 | valid messages in a forbidden order or context |
/// | `InvalidSignature` | penalty 0.50 | a forged or corrupted signature |
///
/// A reward `w` moves the score a fraction `w` of the way to 1 (`s += w * (1 - s)`), limited
/// by the peer's gain budget; a penalty `p` removes a fraction `p` of it (`s *= 1 - p`) and
/// empties the gain budget. See the crate's README for the whole model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Observation {
    /// The peer completed a handshake: it proved it holds its key.
    HandshakeCompleted,
    /// A valid, useful message (a verified envelope, a correct answer).
    ValidMessage,
    /// The peer did not answer in time.
    Timeout,
    /// A message dated further in the future than the allowed clock skew.
    Future,
    /// A message older than the replay window, pushed as new.
    Stale,
    /// More messages than the inbound rate limit allows.
    Flooding,
    /// A message the replay guard had already accepted.
    Replay,
    /// Bytes that do not decode as a valid message.
    Malformed,
    /// A well-formed message that breaks the protocol (wrong state, forbidden request).
    ProtocolViolation,
    /// A signature that does not verify.
    InvalidSignature,
}

/// What an [`Observation`] does to a score.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Effect {
    /// Moves the score this fraction of the way to 1 (within the gain budget).
    Reward(f64),
    /// Removes this fraction of the score and empties the gain budget.
    Penalty(f64),
}

impl Observation {
    /// Every observation, rewards first, then penalties from lightest to heaviest.
    pub const ALL: [Self; 10] = [
        Self::HandshakeCompleted,
        Self::ValidMessage,
        Self::Timeout,
        Self::Future,
        Self::Stale,
        Self::Flooding,
        Self::Replay,
        Self::Malformed,
        Self::ProtocolViolation,
        Self::InvalidSignature,
    ];

    /// The observation's effect on the score; the weights are part of the documented model.
    #[must_use]
    pub const fn effect(self) -> Effect {
        match self {
            Self::HandshakeCompleted => Effect::Reward(0.02),
            Self::ValidMessage => Effect::Reward(0.01),
            Self::Timeout | Self::Future => Effect::Penalty(0.02),
            Self::Stale => Effect::Penalty(0.05),
            Self::Flooding => Effect::Penalty(0.15),
            Self::Replay | Self::Malformed => Effect::Penalty(0.30),
            Self::ProtocolViolation => Effect::Penalty(0.40),
            Self::InvalidSignature => Effect::Penalty(0.50),
        }
    }

    /// Whether this observation is a penalty.
    #[must_use]
    pub const fn is_penalty(self) -> bool {
        matches!(self.effect(), Effect::Penalty(_))
    }

    /// A stable name for logs and audit details, e.g. `invalid_signature`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HandshakeCompleted => "handshake_completed",
            Self::ValidMessage => "valid_message",
            Self::Timeout => "timeout",
            Self::Future => "future",
            Self::Stale => "stale",
            Self::Flooding => "flooding",
            Self::Replay => "replay",
            Self::Malformed => "malformed",
            Self::ProtocolViolation => "protocol_violation",
            Self::InvalidSignature => "invalid_signature",
        }
    }
}

impl fmt::Display for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_in_range_and_penalties_are_ordered() {
        let mut last_penalty = 0.0;
        for obs in Observation::ALL {
            match obs.effect() {
                Effect::Reward(w) => {
                    assert!(w > 0.0 && w < 0.1, "{obs}");
                    assert!(!obs.is_penalty());
                }
                Effect::Penalty(p) => {
                    assert!(p > 0.0 && p < 1.0, "{obs}");
                    assert!(p >= last_penalty, "{obs} is out of order");
                    last_penalty = p;
                    assert!(obs.is_penalty());
                }
            }
        }
        // The invalid signature is the heaviest penalty and the signature of a forger.
        assert_eq!(Observation::InvalidSignature.effect(), Effect::Penalty(0.5));
    }
}
