//! The handshake: which protocol versions and features each side speaks.

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};

use dawn_identity::NodeId;

/// The protocol version this build speaks best.
///
/// Version numbers start at 1; 0 is never valid. A node advertises a range
/// (`min_version..=max_version`) in its [`Hello`] and both sides use the highest version in
/// both ranges ([`negotiate`]).
pub const PROTOCOL_VERSION: u16 = 1;

/// The longest [`Hello::software`] string accepted, in bytes.
pub const MAX_SOFTWARE_LEN: usize = 64;

/// Optional features a node offers, as a set of bits.
///
/// Bits this build does not know are kept as they are (decoded, compared, re-encoded), so a
/// newer peer's capabilities survive a trip through an older node. Capabilities say what a
/// node *offers*; they are not a permission.
///
/// ```
/// use dawn_wire::Capabilities;
///
/// let mine = Capabilities::GOSSIP | Capabilities::MCP;
/// let theirs = Capabilities::GOSSIP | Capabilities(1 << 40);
/// assert_eq!(mine & theirs, Capabilities::GOSSIP);
/// assert!(theirs.contains(Capabilities(1 << 40)));
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// No capabilities.
    pub const EMPTY: Self = Self(0);
    /// Takes part in gossip broadcast (HyParView + Plumtree).
    pub const GOSSIP: Self = Self(1 << 0);
    /// Serves and merges the agent registry.
    pub const REGISTRY: Self = Self(1 << 1);
    /// Hosts MCP agents that may be called over the mesh.
    pub const MCP: Self = Self(1 << 2);
    /// Relays traffic for nodes that cannot reach each other.
    pub const RELAY: Self = Self(1 << 3);
    /// Takes part in the consensus log as a validator or follower.
    pub const CONSENSUS: Self = Self(1 << 4);

    /// The named capabilities, with their names, in bit order.
    const NAMED: [(Self, &'static str); 5] = [
        (Self::GOSSIP, "GOSSIP"),
        (Self::REGISTRY, "REGISTRY"),
        (Self::MCP, "MCP"),
        (Self::RELAY, "RELAY"),
        (Self::CONSENSUS, "CONSENSUS"),
    ];

    /// The raw bits.
    #[must_use]
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether no bit is set.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every bit of `other` is set in `self`.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits set in both.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The bits set in either.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl BitOr for Capabilities {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl BitOrAssign for Capabilities {
    fn bitor_assign(&mut self, rhs: Self) {
        *self = self.union(rhs);
    }
}

impl BitAnd for Capabilities {
    type Output = Self;

    fn bitand(self, rhs: Self) -> Self {
        self.intersection(rhs)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Capabilities(")?;
        let mut rest = self.0;
        let mut first = true;
        for (flag, name) in Self::NAMED {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !flag.0;
            }
        }
        if rest != 0 || first {
            if !first {
                f.write_str(" | ")?;
            }
            write!(f, "{rest:#x}")?;
        }
        f.write_str(")")
    }
}

/// A [`Hello`] is unacceptable, or two hellos have nothing in common.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HelloError {
    /// The version range is empty (`min > max`) or includes the invalid version 0.
    #[error("invalid protocol version range {min}..={max}")]
    InvalidVersionRange {
        /// The advertised minimum.
        min: u16,
        /// The advertised maximum.
        max: u16,
    },
    /// The software string is longer than [`MAX_SOFTWARE_LEN`].
    #[error("software string of {len} bytes exceeds the maximum of {MAX_SOFTWARE_LEN}")]
    SoftwareTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The software string has a character outside printable ASCII (it ends up in logs).
    #[error("software string has characters outside printable ASCII")]
    SoftwareNotPrintable,
    /// The two version ranges do not overlap.
    #[error(
        "no common protocol version: we speak {local_min}..={local_max}, the peer {remote_min}..={remote_max}"
    )]
    NoCommonVersion {
        /// Our minimum.
        local_min: u16,
        /// Our maximum.
        local_max: u16,
        /// The peer's minimum.
        remote_min: u16,
        /// The peer's maximum.
        remote_max: u16,
    },
}

/// The first message on a connection, sent by both sides.
///
/// The *encoding* of `Hello` never changes between protocol versions: it is how two nodes that
/// may speak different versions find a common one. Anything a newer version needs to exchange
/// goes in messages sent after [`negotiate`].
///
/// The `node_id` must equal the key the peer authenticated with in the TLS handshake; the
/// transport checks that, not this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Oldest protocol version the sender speaks (at least 1).
    pub min_version: u16,
    /// Newest protocol version the sender speaks (at least `min_version`).
    pub max_version: u16,
    /// The sender's identity.
    pub node_id: NodeId,
    /// Features the sender offers.
    pub capabilities: Capabilities,
    /// Name and version of the sender's software, e.g. `dawn/0.1.0`: printable ASCII, at most
    /// [`MAX_SOFTWARE_LEN`] bytes. For logs and diagnostics only; never branch on it.
    pub software: String,
}

impl Hello {
    /// A hello for this build: protocol version [`PROTOCOL_VERSION`] only, software
    /// `dawn/<crate version>`.
    #[must_use]
    pub fn new(node_id: NodeId, capabilities: Capabilities) -> Self {
        Self {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            node_id,
            capabilities,
            software: concat!("dawn/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// Checks the version range and the software string.
    ///
    /// [`Message::encode`](crate::Message::encode) and
    /// [`Message::decode`](crate::Message::decode) call this, so a decoded `Hello` is always
    /// valid.
    ///
    /// # Errors
    /// [`HelloError::InvalidVersionRange`], [`HelloError::SoftwareTooLong`] or
    /// [`HelloError::SoftwareNotPrintable`].
    pub fn validate(&self) -> Result<(), HelloError> {
        check_range(self.min_version, self.max_version)?;
        check_software(&self.software)
    }
}

fn check_range(min: u16, max: u16) -> Result<(), HelloError> {
    if min == 0 || min > max {
        return Err(HelloError::InvalidVersionRange { min, max });
    }
    Ok(())
}

pub(crate) fn check_software(software: &str) -> Result<(), HelloError> {
    if software.len() > MAX_SOFTWARE_LEN {
        return Err(HelloError::SoftwareTooLong {
            len: software.len(),
        });
    }
    if !software.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(HelloError::SoftwareNotPrintable);
    }
    Ok(())
}

/// The protocol version two nodes use: the highest version both ranges contain.
///
/// Symmetric, so both sides reach the same answer without another round trip.
///
/// ```
/// use dawn_wire::{Capabilities, Hello, negotiate};
/// # let node_id = dawn_crypto::SigningKey::from_bytes(&[1; 32]).verifying_key().into();
///
/// let mut ours = Hello::new(node_id, Capabilities::GOSSIP);
/// let mut theirs = ours.clone();
/// ours.max_version = 3;
/// theirs.max_version = 2;
/// assert_eq!(negotiate(&ours, &theirs), Ok(2));
/// ```
///
/// # Errors
/// [`HelloError::NoCommonVersion`] if the ranges do not overlap,
/// [`HelloError::InvalidVersionRange`] if either range is invalid.
pub fn negotiate(local: &Hello, remote: &Hello) -> Result<u16, HelloError> {
    check_range(local.min_version, local.max_version)?;
    check_range(remote.min_version, remote.max_version)?;
    let low = local.min_version.max(remote.min_version);
    let high = local.max_version.min(remote.max_version);
    if low > high {
        return Err(HelloError::NoCommonVersion {
            local_min: local.min_version,
            local_max: local.max_version,
            remote_min: remote.min_version,
            remote_max: remote.max_version,
        });
    }
    Ok(high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_crypto::SigningKey;

    fn hello(min: u16, max: u16) -> Hello {
        let node_id = SigningKey::from_bytes(&[9; 32]).verifying_key().into();
        Hello {
            min_version: min,
            max_version: max,
            ..Hello::new(node_id, Capabilities::EMPTY)
        }
    }

    #[test]
    fn negotiates_highest_common_version_symmetrically() {
        let cases = [
            ((1, 1), (1, 1), Ok(1)),
            ((1, 5), (3, 9), Ok(5)),
            ((2, 4), (1, 2), Ok(2)),
            ((4, 7), (5, 6), Ok(6)),
        ];
        for ((a_min, a_max), (b_min, b_max), want) in cases {
            let (a, b) = (hello(a_min, a_max), hello(b_min, b_max));
            assert_eq!(negotiate(&a, &b), want);
            assert_eq!(negotiate(&b, &a), want);
        }
    }

    #[test]
    fn disjoint_or_invalid_ranges_are_typed_errors() {
        assert_eq!(
            negotiate(&hello(1, 2), &hello(3, 4)),
            Err(HelloError::NoCommonVersion {
                local_min: 1,
                local_max: 2,
                remote_min: 3,
                remote_max: 4
            })
        );
        assert_eq!(
            negotiate(&hello(1, 2), &hello(3, 2)),
            Err(HelloError::InvalidVersionRange { min: 3, max: 2 })
        );
        assert_eq!(
            negotiate(&hello(0, 2), &hello(1, 2)),
            Err(HelloError::InvalidVersionRange { min: 0, max: 2 })
        );
    }

    #[test]
    fn software_must_be_short_printable_ascii() {
        let mut h = hello(1, 1);
        assert!(h.software.starts_with("dawn/"));
        h.validate().unwrap();
        h.software = "x".repeat(MAX_SOFTWARE_LEN);
        h.validate().unwrap();
        h.software.push('x');
        assert_eq!(
            h.validate(),
            Err(HelloError::SoftwareTooLong {
                len: MAX_SOFTWARE_LEN + 1
            })
        );
        for bad in ["dawn\n", "dawn\u{1b}[31m", "dawné"] {
            h.software = bad.to_owned();
            assert_eq!(h.validate(), Err(HelloError::SoftwareNotPrintable));
        }
    }

    #[test]
    fn capabilities_keep_unknown_bits_and_print_names() {
        let caps = Capabilities::GOSSIP | Capabilities::RELAY | Capabilities(1 << 63);
        assert_eq!(caps.bits(), 1 | 8 | 1 << 63);
        assert!(caps.contains(Capabilities::RELAY));
        assert!(!caps.contains(Capabilities::MCP));
        assert_eq!(
            format!("{caps:?}"),
            "Capabilities(GOSSIP | RELAY | 0x8000000000000000)"
        );
        assert_eq!(format!("{:?}", Capabilities::EMPTY), "Capabilities(0x0)");
        assert_eq!(format!("{:?}", Capabilities::MCP), "Capabilities(MCP)");
        let mut more = Capabilities::EMPTY;
        more |= Capabilities::CONSENSUS;
        assert!(!more.is_empty());
        assert_eq!(more & caps, Capabilities::EMPTY);
    }
}
