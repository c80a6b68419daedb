//! A peer's trust record in a form the store can persist.

use dawn_identity::NodeId;
use dawn_wire::{PayloadError, decode_payload, encode_payload};
use serde::{Deserialize, Serialize};

use crate::level::Assignment;

/// Version of the [`PeerSnapshot`] encoding; its first byte.
pub const SNAPSHOT_VERSION: u8 = 1;

/// The most recommendations a snapshot may carry, whatever the configuration.
const MAX_SNAPSHOT_RECOMMENDATIONS: usize = 64;

/// The longest encoded snapshot accepted by [`PeerSnapshot::decode`].
pub const MAX_SNAPSHOT_LEN: usize = 4096;

/// One recommendation a peer received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The peer that vouched.
    pub recommender: NodeId,
    /// When it last did, in Unix milliseconds.
    pub at_ms: u64,
}

/// Everything a [`TrustTable`](crate::TrustTable) knows about one peer, from
/// [`TrustTable::snapshot`](crate::TrustTable::snapshot), for
/// [`TrustTable::restore`](crate::TrustTable::restore) after a restart.
///
/// The store may keep it as columns (the fields are public) or as one blob
/// ([`encode`](Self::encode), a versioned strict-postcard encoding pinned by a golden test).
/// The level is not stored: it follows from the flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerSnapshot {
    /// The peer.
    pub peer: NodeId,
    /// Its own score (without recommendations) at `updated_ms`, in `[0, 1]`.
    pub score: f64,
    /// When `score` and `gain_tokens` were computed, in Unix milliseconds.
    pub updated_ms: u64,
    /// Its gain budget at `updated_ms`.
    pub gain_tokens: f64,
    /// The last time anything was recorded about it, in Unix milliseconds.
    pub last_seen_ms: u64,
    /// Whether it ever completed a handshake.
    pub handshake: bool,
    /// The operator's assignment.
    pub assigned: Option<Assignment>,
    /// Whether it is automatically Untrusted.
    pub auto_untrusted: bool,
    /// Whether it is automatically Verified.
    pub verified: bool,
    /// The recommendations it received.
    pub recommended_by: Vec<Recommendation>,
}

/// A snapshot could not be decoded or restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The encoding is longer than [`MAX_SNAPSHOT_LEN`].
    #[error("snapshot of {len} bytes exceeds the maximum of {MAX_SNAPSHOT_LEN}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// The first byte names an unknown version.
    #[error("unknown snapshot version {0}")]
    UnknownVersion(u8),
    /// The bytes are not a canonical snapshot encoding.
    #[error("malformed snapshot: {0}")]
    Body(#[source] PayloadError),
    /// The score or gain budget is not a number in `[0, 1]`.
    #[error("snapshot score or gain budget is not a number from 0 to 1")]
    Score,
    /// A recommendation names the peer itself or appears twice.
    #[error("snapshot recommendations name the peer itself or one recommender twice")]
    Recommendations,
    /// More recommendations than the table allows per peer.
    #[error("snapshot carries more recommendations than allowed ({max})")]
    TooManyRecommenders {
        /// The limit.
        max: usize,
    },
    /// Restoring would assign more peers than the table allows.
    #[error("cannot restore more than {max} assigned peers")]
    TooManyAssigned {
        /// The configured maximum.
        max: usize,
    },
}

/// The encoded layout: the version first, then the snapshot.
#[derive(Serialize, Deserialize)]
struct SnapshotWire {
    version: u8,
    snapshot: PeerSnapshot,
}

impl PeerSnapshot {
    /// Encodes the snapshot: `[version = 1]` then the fields in declaration order, in strict
    /// postcard (scores as little-endian `f64`).
    ///
    /// # Errors
    /// [`RestoreError::Body`] if serde refuses the value (it does not for a snapshot taken
    /// from a table).
    pub fn encode(&self) -> Result<Vec<u8>, RestoreError> {
        encode_payload(&SnapshotWire {
            version: SNAPSHOT_VERSION,
            snapshot: self.clone(),
        })
        .map_err(RestoreError::Body)
    }

    /// Decodes and checks a snapshot.
    ///
    /// # Errors
    /// [`RestoreError`] naming what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, RestoreError> {
        if bytes.len() > MAX_SNAPSHOT_LEN {
            return Err(RestoreError::TooLarge { len: bytes.len() });
        }
        match bytes.first() {
            Some(&SNAPSHOT_VERSION) => {}
            Some(&other) => return Err(RestoreError::UnknownVersion(other)),
            None => {
                return Err(RestoreError::Body(PayloadError::Malformed {
                    detail: "empty".to_owned(),
                }));
            }
        }
        let wire: SnapshotWire = decode_payload(bytes).map_err(RestoreError::Body)?;
        wire.snapshot.check()?;
        Ok(wire.snapshot)
    }

    /// The checks every table-made snapshot passes.
    pub(crate) fn check(&self) -> Result<(), RestoreError> {
        let unit = |x: f64| (0.0..=1.0).contains(&x);
        if !unit(self.score) || !unit(self.gain_tokens) {
            return Err(RestoreError::Score);
        }
        if self.recommended_by.len() > MAX_SNAPSHOT_RECOMMENDATIONS {
            return Err(RestoreError::TooManyRecommenders {
                max: MAX_SNAPSHOT_RECOMMENDATIONS,
            });
        }
        for (i, r) in self.recommended_by.iter().enumerate() {
            if r.recommender == self.peer
                || self
                    .recommended_by
                    .iter()
                    .take(i)
                    .any(|other| other.recommender == r.recommender)
            {
                return Err(RestoreError::Recommendations);
            }
        }
        Ok(())
    }
}
