//! Trust levels and the operator's assignments.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How far this node trusts a peer; what a peer may do follows from it through the
/// [`Policy`](crate::Policy).
///
/// | Level | Set by | Meaning |
/// |---|---|---|
/// | `Untrusted` | the operator, or automatically when the peer's own score falls below [`TrustConfig::untrusted_below`](crate::TrustConfig) | refused everything |
/// | `Unknown` | default for every peer | may connect and read the directory |
/// | `Verified` | automatically: completed a handshake and scored at least [`TrustConfig::verified_at`](crate::TrustConfig) | behaved for a while |
/// | `Trusted` | the operator only | vouched for by the operator; may recommend peers |
/// | `Bootstrap` | the operator only (the bootstrap list) | infrastructure the node joins through |
///
/// The derived ordering is the declaration order above, so levels can key ordered maps; it is
/// not a ranking of permissions (a `Bootstrap` peer may do less than a `Trusted` one): ask the
/// policy what a level may do.
///
/// Text and serde form: `untrusted`, `unknown`, `verified`, `trusted`, `bootstrap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustLevel {
    /// Refused everything: set by the operator, or automatic after misbehaviour.
    Untrusted,
    /// Nothing known yet: the level of every peer the table has no record of.
    Unknown,
    /// Completed a handshake and behaved for a while.
    Verified,
    /// Vouched for by the operator.
    Trusted,
    /// A bootstrap node named by the operator.
    Bootstrap,
}

impl TrustLevel {
    /// Every level, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::Untrusted,
        Self::Unknown,
        Self::Verified,
        Self::Trusted,
        Self::Bootstrap,
    ];

    /// The level's text form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Untrusted => "untrusted",
            Self::Unknown => "unknown",
            Self::Verified => "verified",
            Self::Trusted => "trusted",
            Self::Bootstrap => "bootstrap",
        }
    }

    /// A distinct bit per level, for compact level sets.
    pub(crate) const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for TrustLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level or assignment name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?}; expected one of {expected}")]
pub struct ParseLevelError {
    what: &'static str,
    name: String,
    expected: &'static str,
}

impl FromStr for TrustLevel {
    type Err = ParseLevelError;

    fn from_str(s: &str) -> Result<Self, ParseLevelError> {
        Self::ALL
            .into_iter()
            .find(|level| level.as_str() == s)
            .ok_or_else(|| ParseLevelError {
                what: "trust level",
                name: s.to_owned(),
                expected: "untrusted, unknown, verified, trusted, bootstrap",
            })
    }
}

/// A level the operator sets for a peer by hand or in the configuration; the other levels
/// (`Unknown`, `Verified`) are only ever derived from behaviour.
///
/// An assignment stays until the operator removes it and is never evicted from the table.
/// One thing overrides it: a peer assigned `Trusted` or `Bootstrap` whose own score falls
/// below the Untrusted threshold is treated as `Untrusted` all the same (a trusted key that
/// sends forged signatures is the worst case, not an exception); the operator can forgive it
/// with [`TrustTable::reset`](crate::TrustTable::reset).
///
/// Text and serde form: `trusted`, `bootstrap`, `untrusted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// The operator vouches for the peer.
    Trusted,
    /// The peer is one of the node's bootstrap nodes.
    Bootstrap,
    /// The operator refuses the peer, whatever its score.
    Untrusted,
}

impl Assignment {
    /// Every assignment.
    pub const ALL: [Self; 3] = [Self::Trusted, Self::Bootstrap, Self::Untrusted];

    /// The level this assignment gives.
    #[must_use]
    pub const fn level(self) -> TrustLevel {
        match self {
            Self::Trusted => TrustLevel::Trusted,
            Self::Bootstrap => TrustLevel::Bootstrap,
            Self::Untrusted => TrustLevel::Untrusted,
        }
    }

    /// The assignment's text form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        self.level().as_str()
    }
}

impl fmt::Display for Assignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Assignment {
    type Err = ParseLevelError;

    fn from_str(s: &str) -> Result<Self, ParseLevelError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| ParseLevelError {
                what: "assignment",
                name: s.to_owned(),
                expected: "trusted, bootstrap, untrusted",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for level in TrustLevel::ALL {
            assert_eq!(level.to_string().parse::<TrustLevel>().unwrap(), level);
        }
        for a in Assignment::ALL {
            assert_eq!(a.to_string().parse::<Assignment>().unwrap(), a);
            assert_eq!(a.as_str(), a.level().as_str());
        }
        let err = "Trusted".parse::<TrustLevel>().unwrap_err().to_string();
        assert!(
            err.contains("\"Trusted\"") && err.contains("bootstrap"),
            "{err}"
        );
        assert!("verified".parse::<Assignment>().is_err());
    }

    #[test]
    fn bits_are_distinct() {
        let all = TrustLevel::ALL.iter().fold(0u8, |acc, l| {
            assert_eq!(acc & l.bit(), 0);
            acc | l.bit()
        });
        assert_eq!(all, 0b1_1111);
    }
}
