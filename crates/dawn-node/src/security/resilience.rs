//! The node's resilience state: the shared retry budget, per-peer circuit breakers, the
//! per-peer inbound gossip and agent-request rate limits and the health components, all from
//! `dawn-resilience`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use dawn_identity::NodeId;
use dawn_resilience::{
    BreakerOpen, BreakerState, Breakers, ConfigError, Health, HealthReport, Importance, Limit,
    RateLimited, RateLimiter, ResilienceConfig, Retry, RetryBudget, RetryError, RetryPolicy,
    Status,
};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

/// Health component: the store (required; unhealthy while writes fail).
pub(crate) const STORE: &str = "store";
/// Health component: the QUIC endpoint (required; unhealthy once closed).
pub(crate) const TRANSPORT: &str = "transport";
/// Health component: the peers' circuit breakers (optional: degraded while any is open).
pub(crate) const PEERS: &str = "peers";

/// A peer whose gossip frames or agent requests keep being dropped by the rate limit is
/// penalised once per this many drops.
pub(crate) const FLOOD_PENALTY_DROPS: u64 = 64;

/// Most peers whose drop counts are kept; beyond it the counts start over.
const MAX_DROP_COUNTS: usize = 4096;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What an inbound rate limit decided about one gossip frame or agent request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Handle it.
    Accept,
    /// Drop it: `which` limit refused, and the same message would pass after `retry_after`
    /// (`None`: never, it is larger than the burst). `penalise`: the peer's messages keep
    /// being dropped, so it is flooding.
    Drop {
        which: Limit,
        retry_after: Option<Duration>,
        penalise: bool,
    },
}

/// One per-peer limit and what it dropped.
#[derive(Debug)]
struct Limited {
    what: &'static str,
    limiter: Mutex<RateLimiter<NodeId>>,
    drops: Mutex<HashMap<NodeId, u64>>,
    dropped_total: AtomicU64,
}

impl Limited {
    fn new(what: &'static str, limiter: RateLimiter<NodeId>) -> Self {
        Self {
            what,
            limiter: Mutex::new(limiter),
            drops: Mutex::new(HashMap::new()),
            dropped_total: AtomicU64::new(0),
        }
    }

    fn admit(&self, peer: NodeId, len: usize, now: Instant) -> Admission {
        let result = lock(&self.limiter).check(now, peer, u64::try_from(len).unwrap_or(u64::MAX));
        let Err(limited) = result else {
            return Admission::Accept;
        };
        self.dropped_total.fetch_add(1, Ordering::Relaxed);
        let mut drops = lock(&self.drops);
        if drops.len() >= MAX_DROP_COUNTS && !drops.contains_key(&peer) {
            drops.clear();
        }
        let count = drops.entry(peer).or_default();
        *count = count.saturating_add(1);
        let which = match limited {
            RateLimited::Exceeded { which, .. } => which,
            _ => Limit::Bytes,
        };
        debug!(peer = %peer.fmt_short(), limit = %which, drops = *count, what = self.what, "dropped by the rate limit");
        // A message larger than the byte burst can never pass: always a penalty.
        let penalise = matches!(limited, RateLimited::TooLarge { .. })
            || (*count).is_multiple_of(FLOOD_PENALTY_DROPS);
        Admission::Drop {
            which,
            retry_after: limited.retry_after(),
            penalise,
        }
    }
}

/// `GET /readyz`: whether the node can do its work, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Readiness {
    /// Whether the node is ready: the store is writable, the transport is bound, and not every
    /// peer's circuit breaker is open.
    pub ready: bool,
    /// Why it is not ready (empty when it is).
    pub reasons: Vec<String>,
    /// The health report behind it (`status`, `ready`, `components`), as `GET /healthz`
    /// shows it.
    pub health: HealthReport,
}

/// The resilience state shared by the node's tasks.
#[derive(Debug)]
pub(crate) struct Resilience {
    config: ResilienceConfig,
    budget: Mutex<RetryBudget>,
    breakers: Mutex<Breakers<NodeId>>,
    gossip: Limited,
    calls: Limited,
    health: Mutex<Health>,
    /// The node's metrics, once attached: breaker states and transitions are exported.
    metrics: OnceLock<crate::metrics::Metrics>,
}

impl Resilience {
    pub(crate) fn new(config: ResilienceConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut health = Health::new(config.health.clone())?;
        // Store and transport report when something changes, so their reports never go stale;
        // the peers component is computed afresh whenever the health is read.
        for (name, importance) in [
            (STORE, Importance::Required),
            (TRANSPORT, Importance::Required),
            (PEERS, Importance::Optional),
        ] {
            health
                .register_with(name, importance, None, Status::Unhealthy)
                .map_err(|_| ConfigError::Inconsistent("health components"))?;
        }
        Ok(Self {
            budget: Mutex::new(RetryBudget::new(config.retry_budget.clone())?),
            breakers: Mutex::new(Breakers::new(config.breaker.clone())?),
            gossip: Limited::new("gossip", RateLimiter::new(config.rate_limit.clone())?),
            calls: Limited::new(
                "agent request",
                RateLimiter::new(config.call_limit.rate_limit()?)?,
            ),
            health: Mutex::new(health),
            metrics: OnceLock::new(),
            config,
        })
    }

    /// Exports breaker states and transitions to `metrics` from now on.
    pub(crate) fn attach_metrics(&self, metrics: &crate::metrics::Metrics) {
        let _ = self.metrics.set(metrics.clone());
    }

    /// The per-peer agent-request limit in force.
    pub(crate) const fn call_limit(&self) -> &dawn_resilience::CallLimitConfig {
        &self.config.call_limit
    }

    /// A retry schedule for one peer's dials, seeded from the OS so that peers that lost each
    /// other at the same moment do not redial in step. `max_attempts` bounds the attempts for
    /// peers that are given up eventually.
    ///
    /// # Errors
    /// [`ConfigError`] if `max_attempts` is `Some(0)`.
    pub(crate) fn dial_retry(
        &self,
        max_attempts: Option<u32>,
        now: Instant,
    ) -> Result<Retry, ConfigError> {
        let mut seed = [0u8; 8];
        if dawn_crypto::fill_random(&mut seed).is_err() {
            // Without OS randomness the clock still spreads peers apart a little.
            seed = crate::peers::now_unix_ms()
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .to_le_bytes();
        }
        let policy = RetryPolicy {
            max_attempts,
            ..self.config.retry.clone()
        };
        Retry::new(policy, u64::from_le_bytes(seed), now)
    }

    /// The longest wait between dials.
    pub(crate) fn retry_cap(&self) -> Duration {
        self.config.retry.cap
    }

    /// A new series of dials to a peer starts: it earns the budget a fraction of a retry.
    pub(crate) fn deposit(&self, now: Instant) {
        lock(&self.budget).deposit(now);
    }

    /// The wait before the next dial after a failure, within the shared retry budget.
    pub(crate) fn next_delay(
        &self,
        retry: &mut Retry,
        now: Instant,
    ) -> Result<Duration, RetryError> {
        let mut budget = lock(&self.budget);
        retry.next_delay_within(now, &mut budget)
    }

    /// Whether a dial or call to `peer` may go ahead now.
    pub(crate) fn allow(&self, peer: &NodeId, now: Instant) -> Result<(), BreakerOpen> {
        lock(&self.breakers).allow(now, peer).map(|_| ())
    }

    /// A dial or call to `peer` succeeded or failed.
    pub(crate) fn record(&self, peer: &NodeId, success: bool, now: Instant) {
        let mut breakers = lock(&self.breakers);
        if success {
            breakers.record_success(now, peer);
        } else {
            breakers.record_failure(now, peer);
        }
        self.breaker_events(&mut breakers);
    }

    /// The breaker state of `peer`.
    pub(crate) fn breaker_state(&self, peer: &NodeId, now: Instant) -> BreakerState {
        lock(&self.breakers).state(now, peer)
    }

    /// Applies the breakers' timed transitions and the limiter's sweep; called every second.
    pub(crate) fn tick(&self, now: Instant) {
        {
            let mut breakers = lock(&self.breakers);
            breakers.handle_timeout(now);
            self.breaker_events(&mut breakers);
            if let Some(metrics) = self.metrics.get() {
                for state in [
                    BreakerState::Closed,
                    BreakerState::Open,
                    BreakerState::HalfOpen,
                ] {
                    metrics.set_breaker_count(state, breakers.count(now, state));
                }
            }
        }
        lock(&self.gossip.limiter).sweep(now);
        lock(&self.calls.limiter).sweep(now);
    }

    /// Counts one inbound gossip frame of `len` bytes against `peer`'s limits.
    pub(crate) fn admit(&self, peer: NodeId, len: usize, now: Instant) -> Admission {
        self.gossip.admit(peer, len, now)
    }

    /// Counts one request of `peer` to an agent hosted here against its request limit.
    pub(crate) fn admit_call(&self, peer: NodeId, now: Instant) -> Admission {
        self.calls.admit(peer, 0, now)
    }

    /// Inbound gossip frames dropped by the rate limit so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.gossip.dropped_total.load(Ordering::Relaxed)
    }

    /// Agent requests refused by the rate limit so far.
    pub(crate) fn calls_dropped(&self) -> u64 {
        self.calls.dropped_total.load(Ordering::Relaxed)
    }

    /// Records a component's status.
    pub(crate) fn report(&self, component: &str, status: Status, reason: &str, now: Instant) {
        let mut health = lock(&self.health);
        if health.report(now, component, status, reason).is_err() {
            debug!(component, "unknown health component");
        }
    }

    /// The health report, with the peers component brought up to date.
    pub(crate) fn health(&self, now: Instant) -> (HealthReport, bool) {
        let (tripped, tracked) = {
            let mut breakers = lock(&self.breakers);
            breakers.handle_timeout(now);
            self.breaker_events(&mut breakers);
            (breakers.tripped(), breakers.len())
        };
        let all_open = tracked > 0 && tripped >= tracked;
        let (status, reason) = if tripped == 0 {
            (
                Status::Healthy,
                format!("no open circuit breaker ({tracked} tracked)"),
            )
        } else {
            (
                Status::Degraded,
                format!("{tripped} of {tracked} peer circuit breakers are open"),
            )
        };
        let mut health = lock(&self.health);
        let _ = health.report(now, PEERS, status, &reason);
        (health.snapshot(now), all_open)
    }

    /// `GET /readyz`.
    pub(crate) fn readiness(&self, now: Instant) -> Readiness {
        let (health, all_open) = self.health(now);
        let mut reasons: Vec<String> = health
            .components
            .iter()
            .filter(|(_, c)| c.required && c.status == Status::Unhealthy)
            .map(|(name, c)| format!("{name}: {}", c.reason))
            .collect();
        if all_open {
            reasons.push("every peer's circuit breaker is open".to_owned());
        }
        Readiness {
            ready: reasons.is_empty(),
            reasons,
            health,
        }
    }
}

impl Resilience {
    /// Logs and counts the breakers' state changes.
    fn breaker_events(&self, breakers: &mut Breakers<NodeId>) {
        while let Some(event) = breakers.poll_event() {
            if let Some(metrics) = self.metrics.get() {
                metrics.record_breaker_transition(&event.change);
            }
            info!(
            peer = %event.key.fmt_short(),
            from = event.change.from.as_str(),
            to = event.change.to.as_str(),
                cause = event.change.cause.as_str(),
                "circuit breaker changed state"
            );
        }
    }
}
