//! Parameters of the gossip core, with defaults and the reasons for them.

use std::time::Duration;

use dawn_wire::ReplayConfig;

use crate::message::{MAX_DIGEST_IDS, MAX_SHUFFLE_NODES};

/// HyParView membership parameters.
///
/// The defaults are the paper's (Leitão, Pereira, Rodrigues, DSN 2007) for networks of up to
/// some 10^4–10^5 nodes: an active view of `log10(n) + c` and a passive view about six times
/// larger, which in their experiments kept a 10,000-node overlay connected with 80 % of the
/// nodes failing at once.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipConfig {
    /// Neighbours kept (the active view): the links every broadcast travels. Default 5.
    pub active_view_capacity: usize,
    /// Peers known but not linked (the passive view), the pool replacements come from.
    /// Default 30.
    pub passive_view_capacity: usize,
    /// Active random walk length (ARWL): how far a `ForwardJoin` travels. Default 6.
    pub active_random_walk_length: u8,
    /// Passive random walk length (PRWL): the hop at which a `ForwardJoin` also leaves the
    /// joiner in a passive view; at most `active_random_walk_length`. Default 3.
    pub passive_random_walk_length: u8,
    /// How often a node shuffles its passive view with a random walk (jittered ±25 %).
    /// Default 10 s: passive views stay fresh under churn for a few bytes per second.
    pub shuffle_interval: Duration,
    /// How many active peers a shuffle carries. Default 3.
    pub shuffle_active_count: usize,
    /// How many passive peers a shuffle carries. Default 4.
    pub shuffle_passive_count: usize,
    /// An idle link carries a `KeepAlive` this often. Default 1 s.
    pub keepalive_interval: Duration,
    /// A neighbour heard nothing from for this long is considered failed (in addition to the
    /// transport's [`peer_down`](crate::Gossip::peer_down)). Default 4 s: four keepalives, so
    /// a 1 % loss rate practically never fails a live link.
    pub neighbor_timeout: Duration,
    /// How long a `Join` or `Neighbor` request waits for its answer (it may need a dial).
    /// Default 2 s.
    pub request_timeout: Duration,
    /// After every passive peer refused or failed, wait this long before trying them again.
    /// Default 1 s.
    pub fill_backoff: Duration,
    /// How many failed neighbours are remembered and retried with a high-priority
    /// `Neighbor` request, so that an overlay split by a partition joins up again when it
    /// heals. Default 16.
    pub lost_capacity: usize,
    /// First retry of a failed neighbour; doubles with each attempt. Default 1 s.
    pub lost_retry_initial: Duration,
    /// Longest wait between retries. Default 30 s.
    pub lost_retry_max: Duration,
    /// Retries before a failed neighbour is forgotten. Default 10 (about 3 minutes).
    pub lost_retry_attempts: u8,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            active_view_capacity: 5,
            passive_view_capacity: 30,
            active_random_walk_length: 6,
            passive_random_walk_length: 3,
            shuffle_interval: Duration::from_secs(10),
            shuffle_active_count: 3,
            shuffle_passive_count: 4,
            keepalive_interval: Duration::from_secs(1),
            neighbor_timeout: Duration::from_secs(4),
            request_timeout: Duration::from_secs(2),
            fill_backoff: Duration::from_secs(1),
            lost_capacity: 16,
            lost_retry_initial: Duration::from_secs(1),
            lost_retry_max: Duration::from_secs(30),
            lost_retry_attempts: 10,
        }
    }
}

/// Plumtree broadcast and anti-entropy parameters.
///
/// Timers are sized for links of tens to a few hundred milliseconds: an `IHave` only leads to
/// a graft if the eager copy is later than the announcement by more than `ihave_timeout`, which
/// on a settled tree happens only after a loss or a failure.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastConfig {
    /// `IHave` announcements to a peer are batched for this long. Default 20 ms: one
    /// announcement message per peer per burst, at a delay well below `ihave_timeout`.
    pub ihave_batch_delay: Duration,
    /// How long an announced, missing message waits for its eager copy before the node grafts
    /// the announcer. Default 400 ms: above the spread between the fastest and slowest path
    /// on a settled tree over links of up to 50 ms, so steady-state broadcasts cause no
    /// grafts, and short enough that a loss is repaired within half a second.
    pub ihave_timeout: Duration,
    /// After a graft, how long before the next announcer is grafted. Default 300 ms.
    pub graft_timeout: Duration,
    /// Plumtree's tree optimisation: when an announcement arrives with a path at least this
    /// many hops shorter than the eager one, the node grafts the announcer and prunes the
    /// eager sender. 0 disables it. Default 4.
    pub optimization_threshold: u16,
    /// A message that has travelled this many hops is delivered but not forwarded (a time
    /// to live in hops; replays are also bounded in time by the replay window). Default 64.
    pub max_hops: u16,
    /// How often a node sends a digest of its recent message ids to a random neighbour, which
    /// answers with its own; each side then requests what it lacks. Default 2 s (jittered
    /// ±25 %). A new neighbour gets a digest at once.
    pub anti_entropy_interval: Duration,
    /// Messages younger than this are left out of digests: they are probably still on their
    /// way along the tree, and requesting them would only duplicate them. Default 1 s.
    pub anti_entropy_min_age: Duration,
    /// The most ids in one digest: the newest half of the eligible messages and a random
    /// selection of the rest, so repeated exchanges cover a larger cache. Default 256
    /// (8 KiB); at most [`MAX_DIGEST_IDS`].
    pub max_digest_ids: usize,
    /// How long a requested message is not requested again. Default 2 s.
    pub request_timeout: Duration,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        Self {
            ihave_batch_delay: Duration::from_millis(20),
            ihave_timeout: Duration::from_millis(400),
            graft_timeout: Duration::from_millis(300),
            optimization_threshold: 4,
            max_hops: 64,
            anti_entropy_interval: Duration::from_secs(2),
            anti_entropy_min_age: Duration::from_secs(1),
            max_digest_ids: 256,
            request_timeout: Duration::from_secs(2),
        }
    }
}

/// Hard caps on every queue, cache and map of the core. Each has an eviction rule, listed in
/// the crate's README; whatever a peer sends, the core's memory stays below the sum of these.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Message ids remembered for deduplication. Oldest forgotten first (also after
    /// `seen_ttl`); a forgotten message that comes back is caught by the replay guard.
    /// Default 16,384 (about 1 MiB).
    pub seen_capacity: usize,
    /// How long a message id is remembered. Default 10 minutes, the replay window.
    pub seen_ttl: Duration,
    /// Messages kept to answer grafts and requests. Oldest evicted first. Default 1,024.
    pub cache_capacity: usize,
    /// Bytes of message payload kept in the cache. Oldest evicted first. Default 16 MiB.
    pub cache_bytes: usize,
    /// How long a message stays in the cache: the horizon of catching up. Default 2 minutes.
    pub cache_ttl: Duration,
    /// Announced messages waiting for their eager copy. New announcements are ignored when
    /// full (anti-entropy still finds the messages). Default 1,024.
    pub missing_capacity: usize,
    /// Announcers remembered per missing message (grafted in turn). Default 4.
    pub announcers_per_message: usize,
    /// Message ids requested and not yet answered. New requests are not made when full.
    /// Default 1,024.
    pub requested_capacity: usize,
    /// Topics with broadcast state. Subscribed topics are never evicted; the least recently
    /// used other topic is. Default 256.
    pub topic_capacity: usize,
    /// Pending `IHave` entries per peer. New entries are dropped when full (anti-entropy
    /// still covers them). Default 1,024.
    pub lazy_queue_per_peer: usize,
    /// Outgoing messages queued for one peer and not yet taken by
    /// [`poll_transmit`](crate::Gossip::poll_transmit). New messages are dropped when full.
    /// Default 1,024.
    pub transmit_queue_per_peer: usize,
    /// Bytes queued for one peer. Default 8 MiB.
    pub transmit_bytes_per_peer: usize,
    /// Outgoing messages queued for all peers together. Default 65,536.
    pub transmit_queue_total: usize,
    /// Bytes queued for all peers together. Default 64 MiB.
    pub transmit_bytes_total: usize,
    /// Events not yet taken by [`poll_event`](crate::Gossip::poll_event). New events are
    /// dropped (and counted) when full. Default 4,096.
    pub event_queue: usize,
    /// Messages per second accepted from one peer; the excess is dropped and reported as
    /// [`MisbehaviourKind::Flooding`](crate::MisbehaviourKind::Flooding) (at most once per
    /// second per peer). Default 1,000, far above what an honest neighbour sends.
    pub inbound_rate: f64,
    /// Burst allowance of the inbound rate. Default 2,000 messages.
    pub inbound_burst: f64,
    /// Peers whose inbound rate is tracked. When full, a peer whose bucket is full again
    /// (idle long enough) is forgotten, which changes nothing; if none is, messages from new
    /// peers are dropped until one is. Default 4,096.
    pub rate_tracked_peers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            seen_capacity: 16_384,
            seen_ttl: Duration::from_secs(600),
            cache_capacity: 1_024,
            cache_bytes: 16 << 20,
            cache_ttl: Duration::from_secs(120),
            missing_capacity: 1_024,
            announcers_per_message: 4,
            requested_capacity: 1_024,
            topic_capacity: 256,
            lazy_queue_per_peer: 1_024,
            transmit_queue_per_peer: 1_024,
            transmit_bytes_per_peer: 8 << 20,
            transmit_queue_total: 65_536,
            transmit_bytes_total: 64 << 20,
            event_queue: 4_096,
            inbound_rate: 1_000.0,
            inbound_burst: 2_000.0,
            rate_tracked_peers: 4_096,
        }
    }
}

/// Everything the gossip core can be tuned with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// HyParView.
    pub membership: MembershipConfig,
    /// Plumtree and anti-entropy.
    pub broadcast: BroadcastConfig,
    /// Caps on memory.
    pub limits: Limits,
    /// The replay window applied to every broadcast (`dawn_wire`'s defaults: 10 minutes
    /// back, 1 minute ahead, 1,024 sequence numbers, 10,000 origins).
    pub replay: ReplayConfig,
    /// Peers whose [`PeerScore`](crate::PeerScore) is below this are refused. Default -0.5.
    pub min_peer_score: f64,
}

impl Config {
    /// The defaults: see each field.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            membership: MembershipConfig::default(),
            broadcast: BroadcastConfig::default(),
            limits: Limits::default(),
            replay: ReplayConfig::default(),
            min_peer_score: -0.5,
        }
    }
}

impl Config {
    /// Checks that the parameters make sense together.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad parameter.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let m = &self.membership;
        let b = &self.broadcast;
        let l = &self.limits;
        let positive = [
            ("membership.active_view_capacity", m.active_view_capacity),
            ("membership.passive_view_capacity", m.passive_view_capacity),
            ("limits.seen_capacity", l.seen_capacity),
            ("limits.cache_capacity", l.cache_capacity),
            ("limits.cache_bytes", l.cache_bytes),
            ("limits.missing_capacity", l.missing_capacity),
            ("limits.announcers_per_message", l.announcers_per_message),
            ("limits.requested_capacity", l.requested_capacity),
            ("limits.topic_capacity", l.topic_capacity),
            ("limits.lazy_queue_per_peer", l.lazy_queue_per_peer),
            ("limits.transmit_queue_per_peer", l.transmit_queue_per_peer),
            ("limits.transmit_bytes_per_peer", l.transmit_bytes_per_peer),
            ("limits.transmit_queue_total", l.transmit_queue_total),
            ("limits.transmit_bytes_total", l.transmit_bytes_total),
            ("limits.event_queue", l.event_queue),
            ("limits.rate_tracked_peers", l.rate_tracked_peers),
            ("broadcast.max_hops", usize::from(b.max_hops)),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        let durations = [
            ("membership.shuffle_interval", m.shuffle_interval),
            ("membership.keepalive_interval", m.keepalive_interval),
            ("membership.neighbor_timeout", m.neighbor_timeout),
            ("membership.request_timeout", m.request_timeout),
            ("membership.fill_backoff", m.fill_backoff),
            ("membership.lost_retry_initial", m.lost_retry_initial),
            ("broadcast.ihave_timeout", b.ihave_timeout),
            ("broadcast.graft_timeout", b.graft_timeout),
            ("broadcast.anti_entropy_interval", b.anti_entropy_interval),
            ("broadcast.request_timeout", b.request_timeout),
            ("limits.seen_ttl", l.seen_ttl),
            ("limits.cache_ttl", l.cache_ttl),
        ];
        for (name, value) in durations {
            if value.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        if m.passive_random_walk_length > m.active_random_walk_length {
            return Err(ConfigError::Inconsistent(
                "passive_random_walk_length exceeds active_random_walk_length",
            ));
        }
        if m.neighbor_timeout <= m.keepalive_interval {
            return Err(ConfigError::Inconsistent(
                "neighbor_timeout must exceed keepalive_interval",
            ));
        }
        if m.lost_retry_max < m.lost_retry_initial {
            return Err(ConfigError::Inconsistent(
                "lost_retry_max is below lost_retry_initial",
            ));
        }
        let capped = [
            (
                "membership.shuffle_active_count + shuffle_passive_count + 1",
                m.shuffle_active_count + m.shuffle_passive_count + 1,
                MAX_SHUFFLE_NODES,
            ),
            ("broadcast.max_digest_ids", b.max_digest_ids, MAX_DIGEST_IDS),
        ];
        for (name, value, max) in capped {
            if value > max {
                return Err(ConfigError::AboveProtocolLimit { name, value, max });
            }
        }
        let rates = [
            ("limits.inbound_rate", l.inbound_rate),
            ("limits.inbound_burst", l.inbound_burst),
        ];
        for (name, value) in rates {
            if !(value.is_finite() && value >= 1.0) {
                return Err(ConfigError::Rate(name));
            }
        }
        if !(-1.0..=1.0).contains(&self.min_peer_score) {
            return Err(ConfigError::Score);
        }
        Ok(())
    }
}

/// A [`Config`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A capacity, count or duration that must be positive is zero.
    #[error("{0} must be positive")]
    Zero(&'static str),
    /// Two parameters contradict each other.
    #[error("inconsistent parameters: {0}")]
    Inconsistent(&'static str),
    /// A parameter exceeds what one protocol message may carry.
    #[error("{name} is {value}, above the protocol limit of {max}")]
    AboveProtocolLimit {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: usize,
        /// The limit.
        max: usize,
    },
    /// A rate is not a finite number of at least 1.
    #[error("{0} must be a finite number of at least 1")]
    Rate(&'static str),
    /// `min_peer_score` is outside `[-1, 1]` or not a number.
    #[error("min_peer_score must be within [-1, 1]")]
    Score,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::new().validate().unwrap();
        assert_eq!(Config::new().min_peer_score, -0.5);
    }

    #[test]
    fn bad_parameters_are_named() {
        let mut c = Config::new();
        c.membership.active_view_capacity = 0;
        assert_eq!(
            c.validate(),
            Err(ConfigError::Zero("membership.active_view_capacity"))
        );

        let mut c = Config::new();
        c.membership.passive_random_walk_length = 7;
        assert!(matches!(c.validate(), Err(ConfigError::Inconsistent(_))));

        let mut c = Config::new();
        c.broadcast.max_digest_ids = MAX_DIGEST_IDS + 1;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::AboveProtocolLimit { .. })
        ));

        let mut c = Config::new();
        c.limits.inbound_rate = f64::NAN;
        assert_eq!(c.validate(), Err(ConfigError::Rate("limits.inbound_rate")));

        let mut c = Config::new();
        c.min_peer_score = f64::NAN;
        assert_eq!(c.validate(), Err(ConfigError::Score));

        let mut c = Config::new();
        c.broadcast.ihave_timeout = Duration::ZERO;
        assert_eq!(
            c.validate(),
            Err(ConfigError::Zero("broadcast.ihave_timeout"))
        );
    }
}
