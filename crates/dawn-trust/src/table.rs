//! The trust table: per-peer scores, levels and recommendations, without I/O.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use dawn_identity::NodeId;

use crate::config::{TrustConfig, TrustConfigError};
use crate::level::{Assignment, TrustLevel};
use crate::observation::{Effect, Observation};
use crate::snapshot::{PeerSnapshot, Recommendation, RestoreError};

/// Milliseconds in an hour, for the gain budget's refill rate.
const HOUR_MS: f64 = 3_600_000.0;

/// A recommendation whose weight has decayed below `2^-MAX_RECOMMENDATION_HALF_LIVES` is
/// dropped at the next sweep, freeing its slot.
const MAX_RECOMMENDATION_HALF_LIVES: f64 = 8.0;

/// Why a peer's level changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChangeCause {
    /// An observation recorded with [`TrustTable::record`].
    Observation(Observation),
    /// The operator assigned a level or removed an assignment ([`TrustTable::assign`]).
    Assignment,
    /// The operator reset the peer's score ([`TrustTable::reset`]).
    Reset,
    /// A recommendation was made or withdrawn, or a recommender's standing changed.
    Recommendation,
    /// Time passed: the score decayed across a threshold (found by
    /// [`TrustTable::handle_timeout`]).
    Decay,
    /// The table was full and the peer's record was evicted; it is Unknown again.
    Evicted,
    /// The operator removed the peer's record ([`TrustTable::forget`]).
    Forgotten,
}

impl fmt::Display for ChangeCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Observation(obs) => write!(f, "observed {obs}"),
            Self::Assignment => f.write_str("operator assignment"),
            Self::Reset => f.write_str("operator reset"),
            Self::Recommendation => f.write_str("recommendation"),
            Self::Decay => f.write_str("decay"),
            Self::Evicted => f.write_str("evicted"),
            Self::Forgotten => f.write_str("forgotten"),
        }
    }
}

/// A peer's trust level changed; the node records it in the audit log.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct TrustChanged {
    /// The peer.
    pub peer: NodeId,
    /// Its level before.
    pub old_level: TrustLevel,
    /// Its level now.
    pub new_level: TrustLevel,
    /// Its score (own score plus recommendations) when the level changed.
    pub score: f64,
    /// What changed it.
    pub cause: ChangeCause,
}

/// Counters and sizes of a [`TrustTable`]. Counters saturate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustStats {
    /// Peers tracked now, assigned or not.
    pub tracked: usize,
    /// Operator-assigned peers tracked now.
    pub assigned: usize,
    /// Recommendations held now.
    pub recommendations: usize,
    /// Observations recorded.
    pub observations: u64,
    /// Records evicted to make room.
    pub evictions: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
}

/// An operator action on the table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// [`TrustConfig::max_assigned`] peers are already assigned a level.
    #[error("cannot assign more than {max} peers; remove an assignment first")]
    TooManyAssigned {
        /// The configured maximum.
        max: usize,
    },
}

/// A recommendation was refused. None of these is the recommender's fault alone; the node may
/// log them but need not penalise anyone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecommendError {
    /// A peer cannot recommend itself.
    #[error("a peer cannot recommend itself")]
    SelfRecommendation,
    /// Only `Trusted` peers may recommend; this one is not.
    #[error("only trusted peers may recommend others; the recommender is {level}")]
    NotTrusted {
        /// The recommender's level.
        level: TrustLevel,
    },
    /// The subject has a level assigned by the operator, which recommendations cannot change.
    #[error("the recommended peer has an operator-assigned level")]
    SubjectAssigned,
    /// The subject is Untrusted; recommendations never lift a peer out of Untrusted.
    #[error("the recommended peer is untrusted")]
    SubjectUntrusted,
    /// The subject already has [`TrustConfig::max_recommenders_per_peer`] recommenders.
    #[error("the recommended peer already has the most recommenders counted ({max})")]
    TooManyRecommenders {
        /// The configured maximum.
        max: usize,
    },
    /// The recommender already recommends [`TrustConfig::max_recommendations_by_peer`] peers.
    #[error("the recommender already recommends the most peers allowed ({max})")]
    RecommenderLimit {
        /// The configured maximum.
        max: usize,
    },
}

/// Everything the table knows about one peer.
#[derive(Debug, Clone)]
struct Record {
    /// The peer's own score (without recommendations) at `updated_ms`.
    own: f64,
    /// When `own` and `tokens` were last brought up to date.
    updated_ms: u64,
    /// The gain budget at `updated_ms`.
    tokens: f64,
    /// The last time anything was recorded about the peer.
    last_seen_ms: u64,
    /// Whether the peer ever completed a handshake.
    handshake: bool,
    /// The operator's assignment, if any.
    assigned: Option<Assignment>,
    /// Automatic Untrusted (hysteresis state).
    auto_untrusted: bool,
    /// Automatic Verified (hysteresis state).
    verified: bool,
    /// The level as of the last evaluation.
    level: TrustLevel,
    /// Who recommends this peer, and when they last did.
    recommended_by: Vec<(NodeId, u64)>,
    /// The key under which the record sits in the eviction index, if it does.
    indexed: Option<(u8, u64)>,
}

impl Record {
    fn new(config: &TrustConfig, now_ms: u64) -> Self {
        Self {
            own: config.baseline,
            updated_ms: now_ms,
            tokens: config.gain_burst,
            last_seen_ms: now_ms,
            handshake: false,
            assigned: None,
            auto_untrusted: false,
            verified: false,
            level: TrustLevel::Unknown,
            recommended_by: Vec::new(),
            indexed: None,
        }
    }

    /// The level that the flags give.
    fn derived_level(&self) -> TrustLevel {
        match self.assigned {
            Some(Assignment::Untrusted) => TrustLevel::Untrusted,
            _ if self.auto_untrusted => TrustLevel::Untrusted,
            Some(assignment) => assignment.level(),
            None if self.verified => TrustLevel::Verified,
            None => TrustLevel::Unknown,
        }
    }

    /// Where the record belongs in the eviction index: unassigned peers only, Unknown first,
    /// then Verified, then Untrusted, least recently seen first within each.
    fn eviction_key(&self) -> Option<(u8, u64)> {
        if self.assigned.is_some() {
            return None;
        }
        let class = match self.level {
            TrustLevel::Unknown => 0,
            TrustLevel::Verified => 1,
            _ => 2,
        };
        Some((class, self.last_seen_ms))
    }
}

/// `2^(-elapsed / half_life)`: how much of a deviation from the baseline survives `elapsed`.
fn survival(config: &TrustConfig, elapsed_ms: u64) -> f64 {
    (-(elapsed_ms as f64) / config.half_life_ms()).exp2()
}

/// The record's own score at `now_ms`, decayed toward the baseline.
fn own_at(config: &TrustConfig, record: &Record, now_ms: u64) -> f64 {
    let elapsed = now_ms.saturating_sub(record.updated_ms);
    config.baseline + (record.own - config.baseline) * survival(config, elapsed)
}

/// The record's gain budget at `now_ms`, refilled.
fn tokens_at(config: &TrustConfig, record: &Record, now_ms: u64) -> f64 {
    let elapsed = now_ms.saturating_sub(record.updated_ms) as f64;
    (record.tokens + config.gain_per_hour * elapsed / HOUR_MS).min(config.gain_burst)
}

/// The trust table: what this node thinks of every peer it has dealt with.
///
/// A sans-IO state machine in the manner of `quinn-proto`: it has no clock, no timers and no
/// threads. Every input takes `now_ms`, the wall clock in milliseconds since the Unix epoch
/// (the unit `dawn-wire` and the store use; [`unix_ms`](crate::unix_ms) converts a
/// `SystemTime`). Decay is computed lazily from `now_ms`, so the same inputs always give the
/// same scores and events. A `now_ms` earlier than a peer's last update counts as no time
/// passing: a clock stepping back never undoes decay or refills a gain budget twice.
///
/// - Feed it what peers do: [`record`](Self::record) an [`Observation`].
/// - Let the operator decide: [`assign`](Self::assign), [`reset`](Self::reset),
///   [`forget`](Self::forget).
/// - Let trusted peers vouch for others: [`recommend`](Self::recommend).
/// - Ask: [`score`](Self::score), [`level`](Self::level).
/// - Drain [`poll_event`](Self::poll_event) after every input and audit each
///   [`TrustChanged`]; call [`handle_timeout`](Self::handle_timeout) at
///   [`poll_timeout`](Self::poll_timeout) so that changes due to decay alone are found.
///
/// Memory is bounded: at most [`TrustConfig::max_peers`] unassigned and
/// [`TrustConfig::max_assigned`] assigned peers, a bounded number of recommendations each, and
/// at most [`TrustConfig::max_events`] undelivered events.
///
/// ```
/// use dawn_crypto::SigningKey;
/// use dawn_identity::NodeId;
/// use dawn_trust::{Observation, TrustConfig, TrustLevel, TrustTable};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let peer = NodeId::from(SigningKey::from_bytes(&[1; 32]).verifying_key());
/// let mut table = TrustTable::new(TrustConfig::default())?;
/// let now = 1_700_000_000_000;
/// table.record(now, &peer, Observation::HandshakeCompleted);
/// assert_eq!(table.level(&peer), TrustLevel::Unknown);
///
/// // Two forged signatures: the score falls from 0.5 below 0.2.
/// table.record(now, &peer, Observation::InvalidSignature);
/// table.record(now, &peer, Observation::InvalidSignature);
/// assert_eq!(table.level(&peer), TrustLevel::Untrusted);
/// let event = table.poll_event().ok_or("no event")?;
/// assert_eq!((event.old_level, event.new_level), (TrustLevel::Unknown, TrustLevel::Untrusted));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TrustTable {
    config: TrustConfig,
    peers: BTreeMap<NodeId, Record>,
    /// Unassigned peers in eviction order: (class, last seen, peer).
    eviction: BTreeSet<(u8, u64, NodeId)>,
    /// Recommender -> the peers it recommends.
    recommends: BTreeMap<NodeId, BTreeSet<NodeId>>,
    assigned: usize,
    events: VecDeque<TrustChanged>,
    next_sweep_ms: Option<u64>,
    stats: TrustStats,
}

impl TrustTable {
    /// An empty table.
    ///
    /// # Errors
    /// [`TrustConfigError`] if the configuration is invalid.
    pub fn new(config: TrustConfig) -> Result<Self, TrustConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            peers: BTreeMap::new(),
            eviction: BTreeSet::new(),
            recommends: BTreeMap::new(),
            assigned: 0,
            events: VecDeque::new(),
            next_sweep_ms: None,
            stats: TrustStats::default(),
        })
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &TrustConfig {
        &self.config
    }

    /// Records an observation of `peer` and returns its level afterwards.
    ///
    /// Starts tracking the peer if it is new (at the baseline score), evicting the least
    /// recently seen unassigned peer if the table is full. A level change is queued as a
    /// [`TrustChanged`] event, as are changes it causes to the peers this one recommends.
    pub fn record(&mut self, now_ms: u64, peer: &NodeId, observation: Observation) -> TrustLevel {
        self.stats.observations = self.stats.observations.saturating_add(1);
        self.ensure(now_ms, *peer);
        let config = &self.config;
        if let Some(record) = self.peers.get_mut(peer) {
            materialise(config, record, now_ms);
            match observation.effect() {
                Effect::Reward(weight) => {
                    let gain = (weight * (1.0 - record.own)).min(record.tokens).max(0.0);
                    record.own = (record.own + gain).min(1.0);
                    record.tokens -= gain;
                }
                Effect::Penalty(fraction) => {
                    record.own = (record.own * (1.0 - fraction)).max(0.0);
                    record.tokens = 0.0;
                }
            }
            if observation == Observation::HandshakeCompleted {
                record.handshake = true;
            }
            record.last_seen_ms = record.last_seen_ms.max(now_ms);
        }
        self.evaluate_with_subjects(now_ms, peer, ChangeCause::Observation(observation))
    }

    /// The peer's score at `now_ms`: its own score decayed toward the baseline, plus what
    /// recommendations add, in `[0, 1]`. The baseline for a peer the table does not track.
    #[must_use]
    pub fn score(&self, now_ms: u64, peer: &NodeId) -> f64 {
        match self.peers.get(peer) {
            Some(record) => self.total(record, now_ms),
            None => self.config.baseline,
        }
    }

    /// The peer's own score at `now_ms`, without recommendations: what the Untrusted
    /// threshold is compared with, and what weighs the peer's own recommendations.
    #[must_use]
    pub fn own_score(&self, now_ms: u64, peer: &NodeId) -> f64 {
        match self.peers.get(peer) {
            Some(record) => own_at(&self.config, record, now_ms),
            None => self.config.baseline,
        }
    }

    /// The score mapped to `[-1, 1]` with the baseline at 0 (`-1` is a score of 0, `+1` a
    /// score of 1), the convention of the gossip core's `PeerScore`.
    #[must_use]
    pub fn relative_score(&self, now_ms: u64, peer: &NodeId) -> f64 {
        let score = self.score(now_ms, peer);
        let baseline = self.config.baseline;
        // The validated thresholds keep the baseline strictly inside (0, 1).
        if score >= baseline {
            (score - baseline) / (1.0 - baseline)
        } else {
            (score - baseline) / baseline
        }
    }

    /// The peer's level as of the last input that concerned it (or the last sweep): `Unknown`
    /// for a peer the table does not track.
    #[must_use]
    pub fn level(&self, peer: &NodeId) -> TrustLevel {
        self.peers
            .get(peer)
            .map_or(TrustLevel::Unknown, |record| record.level)
    }

    /// The operator's assignment for the peer, if any.
    #[must_use]
    pub fn assignment(&self, peer: &NodeId) -> Option<Assignment> {
        self.peers.get(peer).and_then(|record| record.assigned)
    }

    /// Sets (`Some`) or removes (`None`) the operator's assignment for `peer`, returning its
    /// level afterwards.
    ///
    /// Assigning a level clears the recommendations the peer had received: an assigned level
    /// does not depend on them. Removing a `Trusted` assignment withdraws the recommendations
    /// the peer had made.
    ///
    /// # Errors
    /// [`TrustError::TooManyAssigned`] when assigning one more peer than
    /// [`TrustConfig::max_assigned`] allows.
    pub fn assign(
        &mut self,
        now_ms: u64,
        peer: &NodeId,
        assignment: Option<Assignment>,
    ) -> Result<TrustLevel, TrustError> {
        let previous = self.assignment(peer);
        match assignment {
            Some(assignment) => {
                if previous.is_none() {
                    if self.assigned >= self.config.max_assigned {
                        return Err(TrustError::TooManyAssigned {
                            max: self.config.max_assigned,
                        });
                    }
                    if !self.peers.contains_key(peer) {
                        self.insert(now_ms, *peer);
                    }
                    self.assigned += 1;
                }
                self.clear_received_recommendations(peer);
                if let Some(record) = self.peers.get_mut(peer) {
                    record.assigned = Some(assignment);
                }
            }
            None => {
                if previous.is_none() {
                    return Ok(self.level(peer));
                }
                self.assigned = self.assigned.saturating_sub(1);
                if let Some(record) = self.peers.get_mut(peer) {
                    record.assigned = None;
                }
            }
        }
        if assignment != Some(Assignment::Trusted) && previous == Some(Assignment::Trusted) {
            self.withdraw_all_by(now_ms, peer);
        }
        self.reindex(peer);
        let level = self.evaluate_with_subjects(now_ms, peer, ChangeCause::Assignment);
        self.enforce_capacity(peer);
        Ok(level)
    }

    /// Forgives a peer: its own score goes back to the baseline and its gain budget is full,
    /// as if it were new (a handshake it completed still counts). Keeps its assignment and
    /// recommendations. Returns its level afterwards; does nothing for an untracked peer.
    pub fn reset(&mut self, now_ms: u64, peer: &NodeId) -> TrustLevel {
        let config = &self.config;
        let Some(record) = self.peers.get_mut(peer) else {
            return TrustLevel::Unknown;
        };
        record.own = config.baseline;
        record.tokens = config.gain_burst;
        record.updated_ms = record.updated_ms.max(now_ms);
        record.auto_untrusted = false;
        record.verified = false;
        self.evaluate_with_subjects(now_ms, peer, ChangeCause::Reset)
    }

    /// Removes everything known about `peer`, assignment included, and the recommendations it
    /// made or received. Returns whether it was tracked. Queues an event if its level was not
    /// `Unknown`.
    pub fn forget(&mut self, now_ms: u64, peer: &NodeId) -> bool {
        self.remove(now_ms, peer, ChangeCause::Forgotten)
    }

    /// Records that `recommender` vouches for `subject`, or renews an earlier recommendation.
    ///
    /// Recommendations are one hop only and bounded:
    ///
    /// - only a peer whose level is `Trusted` may recommend, and only while it is `Trusted`:
    ///   a recommender that is penalised into `Untrusted` or loses its assignment stops
    ///   counting at once;
    /// - each adds at most [`TrustConfig::recommendation_weight`] times the recommender's
    ///   current own score, so a penalised recommender's word weighs less, and its weight
    ///   halves every [`TrustConfig::half_life_secs`] unless renewed;
    /// - together they add at most [`TrustConfig::recommendation_cap`], from at most
    ///   [`TrustConfig::max_recommenders_per_peer`] recommenders;
    /// - they raise the score (and can make a peer `Verified`), but never lift a peer out of
    ///   `Untrusted` (which looks at the own score only), never change an assigned level, and
    ///   never make the subject a recommender: recommendations do not chain.
    ///
    /// # Errors
    /// [`RecommendError`] saying why the recommendation was refused.
    pub fn recommend(
        &mut self,
        now_ms: u64,
        recommender: &NodeId,
        subject: &NodeId,
    ) -> Result<TrustLevel, RecommendError> {
        if recommender == subject {
            return Err(RecommendError::SelfRecommendation);
        }
        let level = self.level(recommender);
        if level != TrustLevel::Trusted {
            return Err(RecommendError::NotTrusted { level });
        }
        let mut renewal = false;
        if let Some(record) = self.peers.get(subject) {
            if record.assigned.is_some() {
                return Err(RecommendError::SubjectAssigned);
            }
            if record.level == TrustLevel::Untrusted {
                return Err(RecommendError::SubjectUntrusted);
            }
            renewal = record.recommended_by.iter().any(|(r, _)| r == recommender);
        }
        if !renewal {
            let held = self
                .peers
                .get(subject)
                .map_or(0, |r| r.recommended_by.len());
            if held >= self.config.max_recommenders_per_peer {
                return Err(RecommendError::TooManyRecommenders {
                    max: self.config.max_recommenders_per_peer,
                });
            }
            let made = self.recommends.get(recommender).map_or(0, BTreeSet::len);
            if made >= self.config.max_recommendations_by_peer {
                return Err(RecommendError::RecommenderLimit {
                    max: self.config.max_recommendations_by_peer,
                });
            }
        }
        self.ensure(now_ms, *subject);
        if let Some(record) = self.peers.get_mut(subject) {
            match record
                .recommended_by
                .iter_mut()
                .find(|(r, _)| r == recommender)
            {
                Some((_, at)) => *at = (*at).max(now_ms),
                None => {
                    record.recommended_by.push((*recommender, now_ms));
                    self.stats.recommendations += 1;
                }
            }
        }
        self.recommends
            .entry(*recommender)
            .or_default()
            .insert(*subject);
        Ok(self.evaluate(now_ms, subject, ChangeCause::Recommendation))
    }

    /// Withdraws `recommender`'s recommendation of `subject`; returns whether there was one.
    pub fn withdraw(&mut self, now_ms: u64, recommender: &NodeId, subject: &NodeId) -> bool {
        let removed = self.unlink(recommender, subject);
        if removed {
            self.evaluate(now_ms, subject, ChangeCause::Recommendation);
        }
        removed
    }

    /// Finds the level changes that time alone caused (a penalised peer's score decaying back
    /// above the Untrusted threshold, an idle peer's falling below the Verified one), and
    /// drops recommendations that have decayed to nothing. Events are queued as usual.
    ///
    /// Call it when [`poll_timeout`](Self::poll_timeout)'s deadline is reached; calling it
    /// earlier does nothing. Every peer is re-evaluated, so a sweep costs time in proportion
    /// to the table's size (about 10 ms for 10 000 peers; see the README).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        match self.next_sweep_ms {
            Some(due) if due <= now_ms => {}
            _ => return,
        }
        self.next_sweep_ms = Some(now_ms.saturating_add(self.config.sweep_interval_ms()));
        let expiry = (self.config.half_life_ms() * MAX_RECOMMENDATION_HALF_LIVES) as u64;
        let peers: Vec<NodeId> = self.peers.keys().copied().collect();
        for peer in &peers {
            let expired: Vec<NodeId> = self.peers.get(peer).map_or_else(Vec::new, |record| {
                record
                    .recommended_by
                    .iter()
                    .filter(|(_, at)| now_ms.saturating_sub(*at) >= expiry)
                    .map(|(r, _)| *r)
                    .collect()
            });
            for recommender in &expired {
                self.unlink(recommender, peer);
            }
            self.evaluate_with_subjects(now_ms, peer, ChangeCause::Decay);
        }
        if self.peers.is_empty() {
            self.next_sweep_ms = None;
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, in Unix
    /// milliseconds; `None` while the table is empty.
    ///
    /// Call it after every input: the deadline appears when the first peer is tracked.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.next_sweep_ms
    }

    /// The next level change, oldest first. Drain it after every input and every
    /// [`handle_timeout`](Self::handle_timeout).
    #[must_use]
    pub fn poll_event(&mut self) -> Option<TrustChanged> {
        self.events.pop_front()
    }

    /// Counters and sizes.
    #[must_use]
    pub fn stats(&self) -> TrustStats {
        TrustStats {
            tracked: self.peers.len(),
            assigned: self.assigned,
            ..self.stats.clone()
        }
    }

    /// How many peers are tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The tracked peers, in `NodeId` order.
    pub fn peers(&self) -> impl Iterator<Item = &NodeId> + '_ {
        self.peers.keys()
    }

    /// Everything the table knows about `peer`, in a form the store can persist and
    /// [`restore`](Self::restore) can load.
    #[must_use]
    pub fn snapshot(&self, peer: &NodeId) -> Option<PeerSnapshot> {
        self.peers.get(peer).map(|record| PeerSnapshot {
            peer: *peer,
            score: record.own,
            updated_ms: record.updated_ms,
            gain_tokens: record.tokens,
            last_seen_ms: record.last_seen_ms,
            handshake: record.handshake,
            assigned: record.assigned,
            auto_untrusted: record.auto_untrusted,
            verified: record.verified,
            recommended_by: record
                .recommended_by
                .iter()
                .map(|&(recommender, at_ms)| Recommendation { recommender, at_ms })
                .collect(),
        })
    }

    /// Loads a peer's record saved with [`snapshot`](Self::snapshot), replacing any record the
    /// table has for it, and returns its level. Queues no event: the level is the one it had.
    ///
    /// Recommendations may name recommenders not yet restored; they count once those are
    /// `Trusted`. A restored unassigned peer may evict another if the table is full.
    ///
    /// # Errors
    /// [`RestoreError`] for a snapshot no table could have produced, or one more assigned
    /// peer than [`TrustConfig::max_assigned`] allows.
    pub fn restore(&mut self, snapshot: &PeerSnapshot) -> Result<TrustLevel, RestoreError> {
        snapshot.check()?;
        let peer = snapshot.peer;
        let was_assigned = self.assignment(&peer).is_some();
        if snapshot.assigned.is_some() && !was_assigned && self.assigned >= self.config.max_assigned
        {
            return Err(RestoreError::TooManyAssigned {
                max: self.config.max_assigned,
            });
        }
        if snapshot.recommended_by.len() > self.config.max_recommenders_per_peer {
            return Err(RestoreError::TooManyRecommenders {
                max: self.config.max_recommenders_per_peer,
            });
        }
        // Recommendations the peer made stay: their subjects may have been restored first.
        self.take_record(&peer);
        let record = Record {
            own: snapshot.score,
            updated_ms: snapshot.updated_ms,
            tokens: snapshot.gain_tokens.min(self.config.gain_burst),
            last_seen_ms: snapshot.last_seen_ms,
            handshake: snapshot.handshake,
            assigned: snapshot.assigned,
            auto_untrusted: snapshot.auto_untrusted,
            verified: snapshot.verified && snapshot.handshake,
            level: TrustLevel::Unknown,
            recommended_by: snapshot
                .recommended_by
                .iter()
                .map(|r| (r.recommender, r.at_ms))
                .collect(),
            indexed: None,
        };
        let level = record.derived_level();
        for (recommender, _) in &record.recommended_by {
            self.recommends
                .entry(*recommender)
                .or_default()
                .insert(peer);
        }
        self.stats.recommendations += record.recommended_by.len();
        if record.assigned.is_some() {
            self.assigned += 1;
        }
        self.peers.insert(peer, Record { level, ..record });
        self.reindex(&peer);
        self.schedule_sweep(snapshot.last_seen_ms);
        self.enforce_capacity(&peer);
        Ok(level)
    }

    // ---- internals ------------------------------------------------------------------------

    /// The total score of a record: own plus recommendations, clamped.
    fn total(&self, record: &Record, now_ms: u64) -> f64 {
        (own_at(&self.config, record, now_ms) + self.bonus(record, now_ms)).clamp(0.0, 1.0)
    }

    /// What the record's recommendations add at `now_ms`.
    fn bonus(&self, record: &Record, now_ms: u64) -> f64 {
        let sum: f64 = record
            .recommended_by
            .iter()
            .filter_map(|(recommender, at)| {
                let r = self.peers.get(recommender)?;
                (r.level == TrustLevel::Trusted).then(|| {
                    self.config.recommendation_weight
                        * own_at(&self.config, r, now_ms).max(0.0)
                        * survival(&self.config, now_ms.saturating_sub(*at))
                })
            })
            .sum();
        sum.min(self.config.recommendation_cap)
    }

    /// Tracks `peer` if it is not tracked yet, making room first.
    fn ensure(&mut self, now_ms: u64, peer: NodeId) {
        if self.peers.contains_key(&peer) {
            return;
        }
        while self.peers.len().saturating_sub(self.assigned) >= self.config.max_peers {
            if !self.evict_one(now_ms) {
                break;
            }
        }
        self.insert(now_ms, peer);
    }

    /// Inserts a fresh record without checking capacity.
    fn insert(&mut self, now_ms: u64, peer: NodeId) {
        self.peers.insert(peer, Record::new(&self.config, now_ms));
        self.reindex(&peer);
        self.schedule_sweep(now_ms);
    }

    fn schedule_sweep(&mut self, now_ms: u64) {
        if self.next_sweep_ms.is_none() {
            self.next_sweep_ms = Some(now_ms.saturating_add(self.config.sweep_interval_ms()));
        }
    }

    /// Evicts unassigned peers until there are at most `max_peers`, sparing `keep`.
    fn enforce_capacity(&mut self, keep: &NodeId) {
        while self.peers.len().saturating_sub(self.assigned) > self.config.max_peers {
            let victim = self
                .eviction
                .iter()
                .find(|(_, _, peer)| peer != keep)
                .map(|(_, _, peer)| *peer);
            match victim {
                Some(victim) => {
                    let now = self.peers.get(&victim).map_or(0, |r| r.last_seen_ms);
                    self.remove(now, &victim, ChangeCause::Evicted);
                    self.stats.evictions = self.stats.evictions.saturating_add(1);
                }
                None => break,
            }
        }
    }

    /// Evicts the first peer in eviction order; false if there is none.
    fn evict_one(&mut self, now_ms: u64) -> bool {
        let Some(&(_, _, victim)) = self.eviction.first() else {
            return false;
        };
        self.remove(now_ms, &victim, ChangeCause::Evicted);
        self.stats.evictions = self.stats.evictions.saturating_add(1);
        true
    }

    /// Removes a record and every recommendation to or from it; queues an event if its level
    /// was not Unknown.
    fn remove(&mut self, now_ms: u64, peer: &NodeId, cause: ChangeCause) -> bool {
        let Some(old_level) = self.peers.get(peer).map(|r| r.level) else {
            return false;
        };
        let subjects = self.detach(peer);
        if old_level != TrustLevel::Unknown {
            self.push_event(TrustChanged {
                peer: *peer,
                old_level,
                new_level: TrustLevel::Unknown,
                score: self.config.baseline,
                cause,
            });
        }
        for subject in subjects {
            self.evaluate(now_ms, &subject, ChangeCause::Recommendation);
        }
        true
    }

    /// Takes a record out of every structure, returning the peers it recommended (whose
    /// levels may need re-evaluating).
    fn detach(&mut self, peer: &NodeId) -> Vec<NodeId> {
        if !self.take_record(peer) {
            return Vec::new();
        }
        let subjects: Vec<NodeId> = self
            .recommends
            .remove(peer)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        for subject in &subjects {
            if let Some(s) = self.peers.get_mut(subject) {
                let before = s.recommended_by.len();
                s.recommended_by.retain(|(r, _)| r != peer);
                self.stats.recommendations = self
                    .stats
                    .recommendations
                    .saturating_sub(before - s.recommended_by.len());
            }
        }
        subjects
    }

    /// Takes a record out of the map and the eviction index and drops the recommendations it
    /// received; the ones it made stay. False if there was no record.
    fn take_record(&mut self, peer: &NodeId) -> bool {
        let Some(record) = self.peers.remove(peer) else {
            return false;
        };
        if let Some((class, seen)) = record.indexed {
            self.eviction.remove(&(class, seen, *peer));
        }
        if record.assigned.is_some() {
            self.assigned = self.assigned.saturating_sub(1);
        }
        for (recommender, _) in &record.recommended_by {
            self.forget_link(recommender, peer);
        }
        self.stats.recommendations = self
            .stats
            .recommendations
            .saturating_sub(record.recommended_by.len());
        true
    }

    /// Removes `recommender -> subject` from the reverse index.
    fn forget_link(&mut self, recommender: &NodeId, subject: &NodeId) {
        if let Some(set) = self.recommends.get_mut(recommender) {
            set.remove(subject);
            if set.is_empty() {
                self.recommends.remove(recommender);
            }
        }
    }

    /// Removes one recommendation in both directions; true if it existed.
    fn unlink(&mut self, recommender: &NodeId, subject: &NodeId) -> bool {
        self.forget_link(recommender, subject);
        let Some(record) = self.peers.get_mut(subject) else {
            return false;
        };
        let before = record.recommended_by.len();
        record.recommended_by.retain(|(r, _)| r != recommender);
        let removed = before != record.recommended_by.len();
        if removed {
            self.stats.recommendations = self.stats.recommendations.saturating_sub(1);
        }
        removed
    }

    /// Drops every recommendation `peer` received.
    fn clear_received_recommendations(&mut self, peer: &NodeId) {
        let recommenders: Vec<NodeId> = self
            .peers
            .get(peer)
            .map(|r| r.recommended_by.iter().map(|(id, _)| *id).collect())
            .unwrap_or_default();
        for recommender in &recommenders {
            self.unlink(recommender, peer);
        }
    }

    /// Drops every recommendation `recommender` made, re-evaluating the subjects.
    fn withdraw_all_by(&mut self, now_ms: u64, recommender: &NodeId) {
        let subjects: Vec<NodeId> = self
            .recommends
            .get(recommender)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for subject in &subjects {
            self.unlink(recommender, subject);
            self.evaluate(now_ms, subject, ChangeCause::Recommendation);
        }
    }

    /// Puts the record where it belongs in the eviction index.
    fn reindex(&mut self, peer: &NodeId) {
        let Some(record) = self.peers.get_mut(peer) else {
            return;
        };
        let wanted = record.eviction_key();
        if wanted == record.indexed {
            return;
        }
        if let Some((class, seen)) = record.indexed {
            self.eviction.remove(&(class, seen, *peer));
        }
        if let Some((class, seen)) = wanted {
            self.eviction.insert((class, seen, *peer));
        }
        record.indexed = wanted;
    }

    /// Re-evaluates `peer`, then the peers it recommends (whose bonus depends on its level
    /// and own score).
    fn evaluate_with_subjects(
        &mut self,
        now_ms: u64,
        peer: &NodeId,
        cause: ChangeCause,
    ) -> TrustLevel {
        let level = self.evaluate(now_ms, peer, cause);
        let subjects: Vec<NodeId> = self
            .recommends
            .get(peer)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for subject in &subjects {
            self.evaluate(now_ms, subject, ChangeCause::Recommendation);
        }
        level
    }

    /// Brings `peer`'s level in line with its score at `now_ms`, queueing an event if it
    /// changed.
    fn evaluate(&mut self, now_ms: u64, peer: &NodeId, cause: ChangeCause) -> TrustLevel {
        let Some(record) = self.peers.get(peer) else {
            return TrustLevel::Unknown;
        };
        let own = own_at(&self.config, record, now_ms);
        let total = (own + self.bonus(record, now_ms)).clamp(0.0, 1.0);
        let config = &self.config;
        let Some(record) = self.peers.get_mut(peer) else {
            return TrustLevel::Unknown;
        };
        if own < config.untrusted_below {
            record.auto_untrusted = true;
        } else if record.auto_untrusted && own >= config.untrusted_exit {
            record.auto_untrusted = false;
        }
        if !record.handshake || record.auto_untrusted {
            record.verified = false;
        } else if total >= config.verified_at {
            record.verified = true;
        } else if total < config.verified_exit {
            record.verified = false;
        }
        let old_level = record.level;
        let new_level = record.derived_level();
        record.level = new_level;
        self.reindex(peer);
        if old_level != new_level {
            tracing::debug!(
                peer = %peer.fmt_short(),
                old = %old_level,
                new = %new_level,
                score = total,
                %cause,
                "trust level changed"
            );
            self.push_event(TrustChanged {
                peer: *peer,
                old_level,
                new_level,
                score: total,
                cause,
            });
        }
        new_level
    }

    fn push_event(&mut self, event: TrustChanged) {
        if self.events.len() >= self.config.max_events {
            self.events.pop_front();
            self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
        }
        self.events.push_back(event);
    }
}

/// Decays the record's score and refills its budget up to `now_ms`.
fn materialise(config: &TrustConfig, record: &mut Record, now_ms: u64) {
    if now_ms > record.updated_ms {
        record.own = own_at(config, record, now_ms);
        record.tokens = tokens_at(config, record, now_ms);
        record.updated_ms = now_ms;
    }
}
