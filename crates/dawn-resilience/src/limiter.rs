//! `RateLimiter`: per-peer message and byte limits with a hard cap on tracked peers.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bucket::{BucketParams, BucketState, Rate};
use crate::code::{ErrorCode, HasErrorCode};
use crate::config::{ConfigError, at_most, positive};
use crate::evict::make_room;

/// Most keys a [`RateLimiter`] may be configured to track.
pub const MAX_TRACKED_KEYS: usize = 1 << 24;

/// Parameters of a [`RateLimiter`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Messages a peer may send per second, sustained. Default 1,000 (the gossip core's own
    /// inbound limit, so this one only bites on traffic gossip does not see).
    pub messages_per_sec: u64,
    /// Messages a peer may send at once after being quiet. Default 500: a burst is what a
    /// flooder gets through before its drops start to cost it trust.
    pub message_burst: u64,
    /// Bytes a peer may send per second, sustained. Default 4 MiB/s.
    pub bytes_per_sec: u64,
    /// Bytes a peer may send at once after being quiet. Default 8 MiB; it must be at least the
    /// largest frame a peer may send (1 MiB in `dawn-wire`), or such frames never pass.
    pub byte_burst: u64,
    /// Most peers tracked at once. Default 4,096 (four times the transport's default
    /// connection limit, so a connected peer is practically never evicted).
    pub max_keys: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            messages_per_sec: 1_000,
            message_burst: 500,
            bytes_per_sec: 4 << 20,
            byte_burst: 8 << 20,
            max_keys: 4_096,
        }
    }
}

impl RateLimitConfig {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ConfigError::Zero`] for a zero rate, burst or `max_keys`;
    /// [`ConfigError::TooLarge`] for `max_keys` above [`MAX_TRACKED_KEYS`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.params().map(|_| ())
    }

    fn params(&self) -> Result<(BucketParams, BucketParams), ConfigError> {
        let messages = BucketParams::new(
            Rate::per_second(self.messages_per_sec),
            self.message_burst,
            "rate_limit.messages_per_sec",
            "rate_limit.message_burst",
        )?;
        let bytes = BucketParams::new(
            Rate::per_second(self.bytes_per_sec),
            self.byte_burst,
            "rate_limit.bytes_per_sec",
            "rate_limit.byte_burst",
        )?;
        positive("rate_limit.max_keys", self.max_keys as u128)?;
        at_most(
            "rate_limit.max_keys",
            self.max_keys as u128,
            MAX_TRACKED_KEYS as u128,
        )?;
        Ok((messages, bytes))
    }
}

/// Parameters of the per-peer limit on requests to a node's agents (tool calls, listings,
/// reads): a [`RateLimiter`] that counts requests only, since their size is bounded where they
/// are decoded.
///
/// Apart from [`RateLimitConfig`] because its defaults differ: a peer that sends more than
/// a few hundred agent requests a second is flooding, while gossip relays carry a whole
/// mesh's traffic.
///
/// ```
/// use dawn_resilience::CallLimitConfig;
///
/// let config: CallLimitConfig = serde_json::from_str(r#"{"requests_per_sec": 50}"#)?;
/// assert_eq!((config.requests_per_sec, config.request_burst), (50, 200));
/// assert_eq!(config.rate_limit()?.messages_per_sec, 50);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallLimitConfig {
    /// Requests a peer may send per second, sustained. Default 500.
    pub requests_per_sec: u64,
    /// Requests a peer may send at once after being quiet. Default 200: every request in a
    /// burst is served in full (and audited), so the burst is what a flooder gets before the
    /// limit bites.
    pub request_burst: u64,
    /// Most peers tracked at once. Default 4,096.
    pub max_keys: usize,
}

impl Default for CallLimitConfig {
    fn default() -> Self {
        Self {
            requests_per_sec: 500,
            request_burst: 200,
            max_keys: 4_096,
        }
    }
}

impl CallLimitConfig {
    /// The same limit as a [`RateLimitConfig`] whose byte limit never binds (check requests
    /// with a size of 0).
    ///
    /// # Errors
    /// [`ConfigError`] for a zero rate, burst or `max_keys`, or too many keys; the
    /// parameter is named `call_limit.*`.
    pub fn rate_limit(&self) -> Result<RateLimitConfig, ConfigError> {
        positive(
            "call_limit.requests_per_sec",
            u128::from(self.requests_per_sec),
        )?;
        positive("call_limit.request_burst", u128::from(self.request_burst))?;
        positive("call_limit.max_keys", self.max_keys as u128)?;
        at_most(
            "call_limit.max_keys",
            self.max_keys as u128,
            MAX_TRACKED_KEYS as u128,
        )?;
        let config = RateLimitConfig {
            messages_per_sec: self.requests_per_sec,
            message_burst: self.request_burst,
            bytes_per_sec: 1 << 30,
            byte_burst: 1 << 30,
            max_keys: self.max_keys,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// As [`CallLimitConfig::rate_limit`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.rate_limit().map(|_| ())
    }
}

/// Which of a peer's two limits refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Limit {
    /// Messages per second.
    Messages,
    /// Bytes per second.
    Bytes,
}

impl Limit {
    /// `"messages"` or `"bytes"`, for logs and metric labels.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Messages => "messages",
            Self::Bytes => "bytes",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`RateLimiter::check`] was refused; nothing was counted against the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimited {
    /// The peer is over its limit now.
    #[error("{which} rate limit exceeded; retry in {retry_after:?}")]
    Exceeded {
        /// The limit that refused (the one with the longer wait if both did).
        which: Limit,
        /// How long until the same call would pass, if the peer sends nothing else.
        retry_after: Duration,
    },
    /// The message is larger than the byte burst, so it can never pass.
    #[error("a message of {requested} bytes is larger than the byte burst of {burst}")]
    TooLarge {
        /// The message's size in bytes.
        requested: u64,
        /// The byte burst.
        burst: u64,
    },
}

impl RateLimited {
    /// How long to wait, or `None` if waiting cannot help.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Exceeded { retry_after, .. } => Some(*retry_after),
            Self::TooLarge { .. } => None,
        }
    }
}

impl HasErrorCode for RateLimited {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Exceeded { .. } => ErrorCode::RateLimitExceeded,
            Self::TooLarge { .. } => ErrorCode::RateLimitTooLarge,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        Self::retry_after(self)
    }
}

/// One peer's two buckets.
#[derive(Debug, Clone, Copy)]
struct Entry {
    messages: BucketState,
    bytes: BucketState,
}

impl Entry {
    /// Takes one message and `bytes` bytes at `now`, or nothing. `bytes` must be within the
    /// byte burst (the caller checks), so a refusal is always a finite wait.
    fn take(
        &mut self,
        messages: &BucketParams,
        byte_params: &BucketParams,
        now: Instant,
        bytes: u64,
    ) -> Result<(), RateLimited> {
        self.messages.refill(messages, now);
        self.bytes.refill(byte_params, now);
        match (
            self.messages.wait(messages, 1),
            self.bytes.wait(byte_params, bytes),
        ) {
            (Ok(m), Ok(b)) => {
                self.messages.take_units(m);
                self.bytes.take_units(b);
                Ok(())
            }
            (m, b) => Err(refusal(m.err(), b.err())),
        }
    }
}

/// Per-peer inbound limits: every key has a messages-per-second and a bytes-per-second
/// [token bucket](crate::TokenBucket), and a call must fit both.
///
/// At most `max_keys` keys are tracked. To admit a new key when full, the limiter first
/// forgets every key whose buckets are both full: a key that comes back restarts full, which
/// is exactly the state it was forgotten in, so this loses nothing. Only if that frees too
/// little does it forget the least recently active keys, which then restart with a full burst
/// they had not earned back yet. That gift is at most one burst, no more than a brand-new
/// peer gets, so forcing evictions gains an attacker nothing that a fresh identity would not;
/// and with `max_keys` well above the transport's connection limit, the peers forgotten this
/// way are ones that are no longer connected.
///
/// ```
/// use std::time::{Duration, Instant};
/// use dawn_resilience::{Limit, RateLimitConfig, RateLimited, RateLimiter};
///
/// let mut config = RateLimitConfig::default();
/// config.messages_per_sec = 2;
/// config.message_burst = 2;
/// let mut limiter = RateLimiter::new(config)?;
/// let t0 = Instant::now();
/// limiter.check(t0, "peer-a", 100)?;
/// limiter.check(t0, "peer-a", 100)?;
/// assert_eq!(
///     limiter.check(t0, "peer-a", 100),
///     Err(RateLimited::Exceeded { which: Limit::Messages, retry_after: Duration::from_millis(500) })
/// );
/// limiter.check(t0, "peer-b", 100)?; // every peer has its own buckets
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RateLimiter<K> {
    messages: BucketParams,
    bytes: BucketParams,
    max_keys: usize,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// An empty limiter.
    ///
    /// # Errors
    /// As [`RateLimitConfig::validate`].
    pub fn new(config: RateLimitConfig) -> Result<Self, ConfigError> {
        let (messages, bytes) = config.params()?;
        Ok(Self {
            messages,
            bytes,
            max_keys: config.max_keys,
            entries: HashMap::new(),
        })
    }

    /// Counts one message of `bytes` bytes from `key` at `now`, or refuses it.
    ///
    /// The call is atomic: it either takes one message token and `bytes` byte tokens, or
    /// takes nothing.
    ///
    /// # Errors
    /// [`RateLimited::Exceeded`] with the wait if either bucket is short;
    /// [`RateLimited::TooLarge`] if `bytes` exceeds the byte burst.
    pub fn check(&mut self, now: Instant, key: K, bytes: u64) -> Result<(), RateLimited> {
        if bytes > self.bytes.burst() {
            return Err(RateLimited::TooLarge {
                requested: bytes,
                burst: self.bytes.burst(),
            });
        }
        let (messages, byte_params) = (self.messages, self.bytes);
        // One hash lookup for a known key; the insertion path pays for the second.
        if let Some(entry) = self.entries.get_mut(&key) {
            return entry.take(&messages, &byte_params, now, bytes);
        }
        make_room(
            &mut self.entries,
            self.max_keys,
            |e| e.messages.is_full(&messages, now) && e.bytes.is_full(&byte_params, now),
            |e| e.messages.last(),
        );
        self.entries
            .entry(key)
            .or_insert_with(|| Entry {
                messages: BucketState::full(&messages),
                bytes: BucketState::full(&byte_params),
            })
            .take(&messages, &byte_params, now, bytes)
    }

    /// Whole tokens `key` has at `now`: `(messages, bytes)`. An untracked key has full
    /// buckets.
    #[must_use]
    pub fn available(&self, now: Instant, key: &K) -> (u64, u64) {
        match self.entries.get(key) {
            Some(e) => (
                e.messages.available(&self.messages, now),
                e.bytes.available(&self.bytes, now),
            ),
            None => (self.messages.burst(), self.bytes.burst()),
        }
    }

    /// Forgets `key` (it restarts full). Returns whether it was tracked.
    pub fn remove(&mut self, key: &K) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Forgets every key whose buckets are full at `now`, which loses nothing; a node may
    /// call it now and then to return memory.
    pub fn sweep(&mut self, now: Instant) {
        let (messages, bytes) = (self.messages, self.bytes);
        self.entries
            .retain(|_, e| !(e.messages.is_full(&messages, now) && e.bytes.is_full(&bytes, now)));
    }

    /// Keys tracked now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most keys tracked at once.
    #[must_use]
    pub const fn max_keys(&self) -> usize {
        self.max_keys
    }
}

/// The refusal for a check where at least one bucket said no: the longer wait wins.
fn refusal(messages: Option<Duration>, bytes: Option<Duration>) -> RateLimited {
    match (messages, bytes) {
        (Some(m), Some(b)) if b > m => RateLimited::Exceeded {
            which: Limit::Bytes,
            retry_after: b,
        },
        (None, Some(b)) => RateLimited::Exceeded {
            which: Limit::Bytes,
            retry_after: b,
        },
        (m, _) => RateLimited::Exceeded {
            which: Limit::Messages,
            retry_after: m.unwrap_or_default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mps: u64, mb: u64, bps: u64, bb: u64, keys: usize) -> RateLimitConfig {
        RateLimitConfig {
            messages_per_sec: mps,
            message_burst: mb,
            bytes_per_sec: bps,
            byte_burst: bb,
            max_keys: keys,
        }
    }

    #[test]
    fn bad_config_is_named() {
        assert_eq!(
            RateLimiter::<u32>::new(config(0, 1, 1, 1, 1)).err(),
            Some(ConfigError::Zero("rate_limit.messages_per_sec"))
        );
        assert_eq!(
            RateLimiter::<u32>::new(config(1, 1, 1, 0, 1)).err(),
            Some(ConfigError::Zero("rate_limit.byte_burst"))
        );
        assert_eq!(
            RateLimiter::<u32>::new(config(1, 1, 1, 1, 0)).err(),
            Some(ConfigError::Zero("rate_limit.max_keys"))
        );
        assert!(matches!(
            RateLimiter::<u32>::new(config(1, 1, 1, 1, MAX_TRACKED_KEYS + 1)),
            Err(ConfigError::TooLarge { .. })
        ));
    }

    #[test]
    fn refusal_names_the_longer_wait() {
        let ms = Duration::from_millis;
        let empty = Some;
        assert_eq!(
            refusal(empty(ms(5)), empty(ms(9))),
            RateLimited::Exceeded {
                which: Limit::Bytes,
                retry_after: ms(9)
            }
        );
        assert_eq!(
            refusal(empty(ms(9)), empty(ms(5))),
            RateLimited::Exceeded {
                which: Limit::Messages,
                retry_after: ms(9)
            }
        );
        assert_eq!(
            refusal(None, empty(ms(1))),
            RateLimited::Exceeded {
                which: Limit::Bytes,
                retry_after: ms(1)
            }
        );
    }
}
