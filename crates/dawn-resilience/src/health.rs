//! Health aggregation: components report their status, and the worst of them, with stale
//! reports counted against them, answers `/healthz` and `/readyz`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::code::{ErrorCode, HasErrorCode};
use crate::config::{ConfigError, duration, millis};
use crate::time;

/// Most components a [`Health`] tracks.
pub const MAX_COMPONENTS: usize = 64;

/// Longest component name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Longest reason kept, in bytes; longer ones are cut.
pub const MAX_REASON_LEN: usize = 256;

/// Longest staleness TTL accepted: one day.
const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How well something is working, from best to worst (the order is `Ord`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Working as it should.
    Healthy,
    /// Working, but impaired (fewer peers than wanted, a breaker open).
    Degraded,
    /// Not working.
    Unhealthy,
}

impl Status {
    /// `"healthy"`, `"degraded"` or `"unhealthy"`, as in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a component's status can make the whole node unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Importance {
    /// The node cannot work without it: its status counts in full, and unhealthy means not
    /// ready.
    Required,
    /// The node works without it: at worst it makes the node degraded.
    Optional,
}

/// Defaults for components registered with [`Health::register`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// A report older than this is stale. Default 30 s: components report every few
    /// seconds, so a stale one has stopped (a stuck task, a dead actor).
    #[serde(rename = "ttl_ms", with = "millis")]
    pub ttl: Duration,
    /// What a stale (or never made) report counts as: `degraded` or `unhealthy`. Default
    /// `unhealthy`: silence from a component is not evidence that it works.
    pub stale_status: Status,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            stale_status: Status::Unhealthy,
        }
    }
}

impl HealthConfig {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ConfigError::Zero`] or [`ConfigError::TooLarge`] for a TTL outside (0, 1 day];
    /// [`ConfigError::Inconsistent`] if `stale_status` is `healthy`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        duration("health.ttl_ms", self.ttl, MAX_TTL)?;
        stale_status(self.stale_status)
    }
}

fn stale_status(status: Status) -> Result<(), ConfigError> {
    if status == Status::Healthy {
        return Err(ConfigError::Inconsistent(
            "health.stale_status must be degraded or unhealthy",
        ));
    }
    Ok(())
}

/// A [`Health`] call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// The name is empty, too long, or has a character outside `a-z0-9_.-`.
    #[error("a component name is 1 to {MAX_NAME_LEN} characters of a-z, 0-9, '_', '.', '-': {0:?}")]
    InvalidName(String),
    /// A component of that name is already registered.
    #[error("component {0:?} is already registered")]
    Duplicate(String),
    /// [`MAX_COMPONENTS`] are registered already.
    #[error("at most {MAX_COMPONENTS} components can be registered")]
    TooMany,
    /// No component of that name is registered.
    #[error("no component {0:?} is registered")]
    Unknown(String),
    /// The component's TTL or stale status is not acceptable.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl HasErrorCode for HealthError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidName(_) | Self::Duplicate(_) | Self::TooMany | Self::Unknown(_) => {
                ErrorCode::InternalError
            }
            Self::Config(_) => ErrorCode::ConfigInvalid,
        }
    }
}

/// The last report of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Report {
    status: Status,
    reason: String,
    at: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Component {
    importance: Importance,
    ttl: Option<Duration>,
    stale_status: Status,
    last: Option<Report>,
}

impl Component {
    /// `(status, stale, reason, age)` at `now`.
    fn effective(&self, now: Instant) -> (Status, bool, &str, Option<Duration>) {
        match &self.last {
            None => (self.stale_status, true, "no report yet", None),
            Some(report) => {
                let age = time::since(report.at, now);
                let stale = self.ttl.is_some_and(|ttl| age > ttl);
                let status = if stale {
                    report.status.max(self.stale_status)
                } else {
                    report.status
                };
                (status, stale, &report.reason, Some(age))
            }
        }
    }

    /// What this component contributes to the overall status.
    fn contribution(&self, now: Instant) -> Status {
        let status = self.effective(now).0;
        match self.importance {
            Importance::Required => status,
            Importance::Optional => status.min(Status::Degraded),
        }
    }
}

/// Health of the node, aggregated from its components' reports.
///
/// Each component (the transport, the store, gossip, ...) is registered as required or
/// optional and reports a [`Status`] with a reason now and then. A report older than the
/// component's TTL is stale and counts as the configured stale status (or worse, if it was
/// worse). The overall status is the worst of the required components; optional ones can
/// make it degraded but never unhealthy. The node is *ready* when no required component is
/// unhealthy.
///
/// ```
/// use std::time::{Duration, Instant};
/// use dawn_resilience::{Health, HealthConfig, Importance, Status};
///
/// let mut health = Health::new(HealthConfig::default())?;
/// health.register("store", Importance::Required)?;
/// health.register("gossip", Importance::Optional)?;
/// let now = Instant::now();
/// health.report(now, "store", Status::Healthy, "open")?;
/// health.report(now, "gossip", Status::Unhealthy, "no neighbours")?;
/// let report = health.snapshot(now);
/// assert_eq!(report.status, Status::Degraded); // optional components only degrade
/// assert!(report.ready);
/// let json = serde_json::to_value(&report)?;
/// assert_eq!(json["status"], "degraded");
/// assert_eq!(json["components"]["gossip"]["reason"], "no neighbours");
///
/// // Thirty seconds without a report from the store: stale, so unhealthy and not ready.
/// let later = now + Duration::from_secs(31);
/// assert_eq!(health.status(later), Status::Unhealthy);
/// assert!(!health.is_ready(later));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Health {
    config: HealthConfig,
    components: BTreeMap<String, Component>,
}

impl Health {
    /// No components yet (healthy and ready).
    ///
    /// # Errors
    /// As [`HealthConfig::validate`].
    pub fn new(config: HealthConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            components: BTreeMap::new(),
        })
    }

    /// Registers a component with the configured TTL and stale status. Until it reports, it
    /// counts as stale.
    ///
    /// # Errors
    /// [`HealthError::InvalidName`], [`HealthError::Duplicate`] or [`HealthError::TooMany`].
    pub fn register(&mut self, name: &str, importance: Importance) -> Result<(), HealthError> {
        let (ttl, stale) = (self.config.ttl, self.config.stale_status);
        self.register_with(name, importance, Some(ttl), stale)
    }

    /// Registers a component with its own TTL (`None`: its reports never go stale, for a
    /// component that reports only when something changes) and stale status.
    ///
    /// # Errors
    /// As [`Health::register`], and [`HealthError::Config`] for a TTL outside (0, 1 day] or a
    /// stale status of `healthy`.
    pub fn register_with(
        &mut self,
        name: &str,
        importance: Importance,
        ttl: Option<Duration>,
        stale: Status,
    ) -> Result<(), HealthError> {
        validate_name(name)?;
        if let Some(ttl) = ttl {
            duration("health.ttl_ms", ttl, MAX_TTL)?;
        }
        stale_status(stale)?;
        if self.components.contains_key(name) {
            return Err(HealthError::Duplicate(name.to_owned()));
        }
        if self.components.len() >= MAX_COMPONENTS {
            return Err(HealthError::TooMany);
        }
        self.components.insert(
            name.to_owned(),
            Component {
                importance,
                ttl,
                stale_status: stale,
                last: None,
            },
        );
        Ok(())
    }

    /// Removes a component. Returns whether it was registered.
    pub fn deregister(&mut self, name: &str) -> bool {
        self.components.remove(name).is_some()
    }

    /// Records `name`'s status at `now`, with a reason for people (cut to
    /// [`MAX_REASON_LEN`] bytes).
    ///
    /// A report stamped earlier than the one already held is ignored: reports from
    /// concurrent tasks may arrive out of order, and the latest observation wins.
    ///
    /// # Errors
    /// [`HealthError::Unknown`] if no such component is registered.
    pub fn report(
        &mut self,
        now: Instant,
        name: &str,
        status: Status,
        reason: &str,
    ) -> Result<(), HealthError> {
        let Some(component) = self.components.get_mut(name) else {
            return Err(HealthError::Unknown(
                name.chars().take(MAX_NAME_LEN).collect(),
            ));
        };
        if component.last.as_ref().is_some_and(|last| last.at > now) {
            return Ok(());
        }
        component.last = Some(Report {
            status,
            reason: truncated(reason, MAX_REASON_LEN),
            at: now,
        });
        Ok(())
    }

    /// The overall status at `now`.
    #[must_use]
    pub fn status(&self, now: Instant) -> Status {
        self.components
            .values()
            .map(|c| c.contribution(now))
            .max()
            .unwrap_or(Status::Healthy)
    }

    /// Whether the node is ready at `now`: no required component is unhealthy.
    #[must_use]
    pub fn is_ready(&self, now: Instant) -> bool {
        self.components.values().all(|c| {
            c.importance == Importance::Optional || c.effective(now).0 != Status::Unhealthy
        })
    }

    /// Everything at `now`, shaped for a JSON endpoint.
    #[must_use]
    pub fn snapshot(&self, now: Instant) -> HealthReport {
        let components = self
            .components
            .iter()
            .map(|(name, c)| {
                let (status, stale, reason, age) = c.effective(now);
                let report = ComponentReport {
                    status,
                    required: c.importance == Importance::Required,
                    stale,
                    reason: reason.to_owned(),
                    age_ms: age.map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
                };
                (name.clone(), report)
            })
            .collect();
        HealthReport {
            status: self.status(now),
            ready: self.is_ready(now),
            components,
        }
    }
}

/// The state of the node at one instant, for `/healthz` and `/readyz`:
/// `{"status": "degraded", "ready": true, "components": {"gossip": {...}}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// The overall status.
    pub status: Status,
    /// Whether no required component is unhealthy.
    pub ready: bool,
    /// Every component, by name.
    pub components: BTreeMap<String, ComponentReport>,
}

impl HealthReport {
    /// The HTTP status for `/healthz`: 200 unless the node is unhealthy, then 503.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        if self.status == Status::Unhealthy {
            503
        } else {
            200
        }
    }

    /// The HTTP status for `/readyz`: 200 when ready, else 503.
    #[must_use]
    pub const fn ready_http_status(&self) -> u16 {
        if self.ready { 200 } else { 503 }
    }
}

/// One component in a [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ComponentReport {
    /// Its status, counting staleness.
    pub status: Status,
    /// Whether it is required.
    pub required: bool,
    /// Whether its last report is older than its TTL, or it never reported.
    pub stale: bool,
    /// The reason given with its last report.
    pub reason: String,
    /// Milliseconds since its last report; `None` if it never reported.
    pub age_ms: Option<u64>,
}

fn validate_name(name: &str) -> Result<(), HealthError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(HealthError::InvalidName(
            name.chars().take(MAX_NAME_LEN).collect(),
        ))
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        let mut h = Health::new(HealthConfig::default()).unwrap();
        for bad in ["", "Store", "a b", "é", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(matches!(
                h.register(bad, Importance::Required),
                Err(HealthError::InvalidName(_))
            ));
        }
        h.register("store.v1_x-y", Importance::Required).unwrap();
        assert_eq!(
            h.register("store.v1_x-y", Importance::Optional),
            Err(HealthError::Duplicate("store.v1_x-y".into()))
        );
        assert_eq!(
            h.report(Instant::now(), "nope", Status::Healthy, ""),
            Err(HealthError::Unknown("nope".into()))
        );
        assert!(h.deregister("store.v1_x-y"));
        assert!(!h.deregister("store.v1_x-y"));
    }

    #[test]
    fn registrations_are_bounded() {
        let mut h = Health::new(HealthConfig::default()).unwrap();
        for i in 0..MAX_COMPONENTS {
            h.register(&format!("c{i}"), Importance::Optional).unwrap();
        }
        assert_eq!(
            h.register("one-more", Importance::Optional),
            Err(HealthError::TooMany)
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut h = Health::new(HealthConfig::default()).unwrap();
        assert!(matches!(
            h.register_with("a", Importance::Required, None, Status::Healthy),
            Err(HealthError::Config(ConfigError::Inconsistent(_)))
        ));
        assert!(matches!(
            h.register_with(
                "a",
                Importance::Required,
                Some(Duration::ZERO),
                Status::Degraded
            ),
            Err(HealthError::Config(ConfigError::Zero(_)))
        ));
        let c = HealthConfig {
            stale_status: Status::Healthy,
            ..HealthConfig::default()
        };
        assert!(Health::new(c).is_err());
        assert_eq!(
            HealthError::Config(ConfigError::Zero("x")).code(),
            ErrorCode::ConfigInvalid
        );
    }

    #[test]
    fn reasons_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_REASON_LEN);
        let cut = truncated(&long, MAX_REASON_LEN);
        assert!(cut.len() <= MAX_REASON_LEN);
        assert!(long.starts_with(&cut));
        assert_eq!(truncated("ok", 10), "ok");
    }
}
