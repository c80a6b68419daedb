//! How the node's trust in a peer reaches peer selection and eviction.

use std::rc::Rc;
use std::sync::Arc;

use dawn_identity::NodeId;

/// The node's opinion of a peer, consulted whenever the gossip core chooses or evicts one.
///
/// Scores are in `[-1.0, 1.0]`: `0.0` is neutral (a peer nobody knows anything about),
/// positive is trusted, negative is suspect. Values outside the range are clamped and `NaN`
/// counts as neutral, so a buggy scorer cannot break the core.
///
/// The core uses scores in four places:
///
/// - **Refusal**: a peer scoring below [`Config::min_peer_score`](crate::Config) is never
///   admitted to either view, and its join and neighbour requests are refused.
/// - **Active eviction**: when a view is full and a peer must make room, the lowest-scoring
///   active peer goes (ties broken at random).
/// - **Promotion**: to replace a lost neighbour, the core draws two passive peers at random
///   and asks the better one ("power of two choices": trusted peers are preferred without
///   every node converging on the same few).
/// - **Passive eviction**: likewise, the worse of two random passive peers makes room.
///
/// The trust crate implements this trait; until then [`NeutralScore`] scores everyone 0.
///
/// ```
/// use dawn_gossip::PeerScore;
/// use dawn_identity::NodeId;
///
/// /// Trusts one peer, is neutral about the rest.
/// struct FavourOne(NodeId);
///
/// impl PeerScore for FavourOne {
///     fn score(&self, peer: &NodeId) -> f64 {
///         if *peer == self.0 { 1.0 } else { 0.0 }
///     }
/// }
/// ```
pub trait PeerScore {
    /// The score of `peer`, in `[-1.0, 1.0]`; `0.0` is neutral.
    fn score(&self, peer: &NodeId) -> f64;
}

/// Scores every peer `0.0`: selection is uniformly random and nobody is refused (unless
/// `min_peer_score` is above 0).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NeutralScore;

impl PeerScore for NeutralScore {
    fn score(&self, _peer: &NodeId) -> f64 {
        0.0
    }
}

impl<T: PeerScore + ?Sized> PeerScore for Box<T> {
    fn score(&self, peer: &NodeId) -> f64 {
        (**self).score(peer)
    }
}

impl<T: PeerScore + ?Sized> PeerScore for Arc<T> {
    fn score(&self, peer: &NodeId) -> f64 {
        (**self).score(peer)
    }
}

impl<T: PeerScore + ?Sized> PeerScore for Rc<T> {
    fn score(&self, peer: &NodeId) -> f64 {
        (**self).score(peer)
    }
}

/// A score clamped into `[-1, 1]`, `NaN` as neutral.
pub(crate) fn sanitize(score: f64) -> f64 {
    if score.is_nan() {
        0.0
    } else {
        score.clamp(-1.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_clamps_and_neutralises_nan() {
        assert_eq!(sanitize(f64::NAN), 0.0);
        assert_eq!(sanitize(5.0), 1.0);
        assert_eq!(sanitize(-5.0), -1.0);
        assert_eq!(sanitize(f64::NEG_INFINITY), -1.0);
        assert_eq!(sanitize(0.25), 0.25);
    }
}
