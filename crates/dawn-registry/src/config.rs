//! Parameters of the registry core, with defaults and the reasons for them.

use std::time::Duration;

use crate::message::{MAX_AGENTS_PER_OWNER, MAX_ITEMS};

/// The smallest `max_message_len`: one largest record with its manifest always fits.
pub(crate) const MIN_MESSAGE_LEN: usize = 64 * 1024;

/// A configuration value is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value is outside the range it must be in.
    #[error("{field} = {value} is out of range ({allowed})")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value given, formatted.
        value: String,
        /// The allowed range, in words.
        allowed: &'static str,
    },
}

/// The tuning of a [`Registry`](crate::Registry). `RegistryConfig::default()` suits a mesh of
/// up to some 10,000 nodes; [`validate`](Self::validate) says what may be changed how far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Most owners (nodes) held, this node included. Updates about further owners are
    /// refused (counted in [`Stats::refused_owners`](crate::Stats::refused_owners)) until
    /// some expire. Default 10,000.
    pub max_owners: usize,
    /// Most agents one owner may list, this node included; a manifest listing more is
    /// refused as misbehaviour of its owner. At most
    /// [`MAX_AGENTS_PER_OWNER`](crate::MAX_AGENTS_PER_OWNER). Default 64.
    pub max_agents_per_owner: usize,
    /// Most bytes of encoded records and manifests held, all owners together. Records that
    /// would go over are not stored (counted in
    /// [`Stats::refused_entries`](crate::Stats::refused_entries)). Default 64 MiB.
    pub max_total_bytes: usize,
    /// How often this node re-signs its manifest with a fresh timestamp even when nothing
    /// changed: the heartbeat that keeps its agents from expiring elsewhere. Default 10 min.
    pub refresh_interval: Duration,
    /// An owner whose newest manifest is older than this (by its own signed timestamp and
    /// this node's clock) has left for good: its agents are dropped
    /// ([`Event::Expired`](crate::Event::Expired)) and its old manifests refused from then
    /// on. At least twice `refresh_interval`. Default 1 h (six missed heartbeats).
    pub owner_ttl: Duration,
    /// How far in the future a manifest may be dated (clock skew between nodes). Later ones
    /// are refused and reported ([`MisbehaviourKind::Future`](crate::MisbehaviourKind)).
    /// Default 5 min.
    pub max_clock_skew: Duration,
    /// How often this node starts a reconciliation with a random peer (jittered ±25 %).
    /// In sync, a round is one message of about 30 bytes. Default 1 s.
    pub reconcile_interval: Duration,
    /// After a round that found differences, the next round starts this soon, with another
    /// peer, so that news from a healed partition spreads epidemically rather than once
    /// per `reconcile_interval`. Default 50 ms.
    pub reconcile_burst_delay: Duration,
    /// Into how many parts a range whose fingerprints differ is split. 2 to 64; default 16.
    pub reconcile_fanout: usize,
    /// A range with at most this many owners is sent as a list instead of being split.
    /// 1 to 256; default 16.
    pub reconcile_leaf: usize,
    /// Most messages one reconciliation may take, both directions together; a peer that
    /// keeps it going longer is ignored. 2 to 255; default 32.
    pub max_rounds: u8,
    /// Largest message this node sends, in bytes; updates larger than this travel in several
    /// messages. 64 KiB to 1 MiB; default 256 KiB.
    pub max_message_len: usize,
    /// Most bytes of updates sent in answer to one reconciliation message; the rest follows in
    /// later rounds. At least `max_message_len`; default 1 MiB.
    pub max_push_bytes: usize,
    /// Most transmits queued for the driver; further ones are dropped and counted. Default
    /// 4,096.
    pub transmit_capacity: usize,
    /// Most events queued for the driver; further ones are dropped and counted. Default 1,024.
    pub event_capacity: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            max_owners: 10_000,
            max_agents_per_owner: 64,
            max_total_bytes: 64 * 1024 * 1024,
            refresh_interval: Duration::from_secs(10 * 60),
            owner_ttl: Duration::from_secs(60 * 60),
            max_clock_skew: Duration::from_secs(5 * 60),
            reconcile_interval: Duration::from_secs(1),
            reconcile_burst_delay: Duration::from_millis(50),
            reconcile_fanout: 16,
            reconcile_leaf: 16,
            max_rounds: 32,
            max_message_len: 256 * 1024,
            max_push_bytes: 1024 * 1024,
            transmit_capacity: 4096,
            event_capacity: 1024,
        }
    }
}

impl RegistryConfig {
    /// The defaults.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks every value against its allowed range.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] naming the first value out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |field, value: String, allowed| {
            Err(ConfigError::OutOfRange {
                field,
                value,
                allowed,
            })
        };
        if self.max_owners == 0 {
            return fail("max_owners", self.max_owners.to_string(), "at least 1");
        }
        if !(1..=MAX_AGENTS_PER_OWNER).contains(&self.max_agents_per_owner) {
            return fail(
                "max_agents_per_owner",
                self.max_agents_per_owner.to_string(),
                "1 to 256",
            );
        }
        if self.max_total_bytes < MIN_MESSAGE_LEN {
            return fail(
                "max_total_bytes",
                self.max_total_bytes.to_string(),
                "at least 64 KiB",
            );
        }
        if self.refresh_interval < Duration::from_secs(1) {
            return fail(
                "refresh_interval",
                format!("{:?}", self.refresh_interval),
                "at least 1 s",
            );
        }
        if self.owner_ttl < self.refresh_interval.saturating_mul(2) {
            return fail(
                "owner_ttl",
                format!("{:?}", self.owner_ttl),
                "at least twice refresh_interval",
            );
        }
        if self.reconcile_interval < Duration::from_millis(10) {
            return fail(
                "reconcile_interval",
                format!("{:?}", self.reconcile_interval),
                "at least 10 ms",
            );
        }
        if self.reconcile_burst_delay > self.reconcile_interval {
            return fail(
                "reconcile_burst_delay",
                format!("{:?}", self.reconcile_burst_delay),
                "at most reconcile_interval",
            );
        }
        if !(2..=64).contains(&self.reconcile_fanout) {
            return fail(
                "reconcile_fanout",
                self.reconcile_fanout.to_string(),
                "2 to 64",
            );
        }
        if !(1..=MAX_ITEMS).contains(&self.reconcile_leaf) {
            return fail(
                "reconcile_leaf",
                self.reconcile_leaf.to_string(),
                "1 to 256",
            );
        }
        if self.max_rounds < 2 {
            return fail("max_rounds", self.max_rounds.to_string(), "2 to 255");
        }
        if !(MIN_MESSAGE_LEN..=dawn_wire::MAX_MESSAGE_LEN).contains(&self.max_message_len) {
            return fail(
                "max_message_len",
                self.max_message_len.to_string(),
                "64 KiB to 1 MiB",
            );
        }
        if self.max_push_bytes < self.max_message_len {
            return fail(
                "max_push_bytes",
                self.max_push_bytes.to_string(),
                "at least max_message_len",
            );
        }
        if self.transmit_capacity < 16 || self.event_capacity == 0 {
            return fail(
                "transmit_capacity / event_capacity",
                format!("{} / {}", self.transmit_capacity, self.event_capacity),
                "at least 16 / at least 1",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        RegistryConfig::default().validate().unwrap();
        let bad = [
            RegistryConfig {
                max_owners: 0,
                ..RegistryConfig::default()
            },
            RegistryConfig {
                max_agents_per_owner: MAX_AGENTS_PER_OWNER + 1,
                ..RegistryConfig::default()
            },
            RegistryConfig {
                owner_ttl: Duration::from_secs(60),
                ..RegistryConfig::default()
            },
            RegistryConfig {
                reconcile_fanout: 1,
                ..RegistryConfig::default()
            },
            RegistryConfig {
                reconcile_leaf: 0,
                ..RegistryConfig::default()
            },
            RegistryConfig {
                max_message_len: dawn_wire::MAX_MESSAGE_LEN + 1,
                ..RegistryConfig::default()
            },
            RegistryConfig {
                max_push_bytes: 1,
                ..RegistryConfig::default()
            },
            RegistryConfig {
                reconcile_burst_delay: Duration::from_secs(2),
                ..RegistryConfig::default()
            },
        ];
        let fields: Vec<_> = bad
            .iter()
            .map(|c| match c.validate() {
                Err(ConfigError::OutOfRange { field, .. }) => field,
                Ok(()) => "valid",
            })
            .collect();
        assert_eq!(
            fields,
            [
                "max_owners",
                "max_agents_per_owner",
                "owner_ttl",
                "reconcile_fanout",
                "reconcile_leaf",
                "max_message_len",
                "max_push_bytes",
                "reconcile_burst_delay"
            ]
        );
    }
}
