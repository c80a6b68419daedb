//! Circuit breakers: stop calling a peer that keeps failing, probe it after a cool-down, and
//! resume when it answers.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::code::{ErrorCode, HasErrorCode};
use crate::config::{ConfigError, at_most, duration, millis, positive};
use crate::evict::make_room;
use crate::limiter::MAX_TRACKED_KEYS;
use crate::time;

/// Slots of the sliding window: the window moves in steps of `window / WINDOW_SLOTS`.
const WINDOW_SLOTS: usize = 10;

/// Shortest window accepted (one millisecond per slot).
const MIN_WINDOW: Duration = Duration::from_millis(WINDOW_SLOTS as u64);

/// Longest window accepted.
const MAX_WINDOW: Duration = Duration::from_secs(60 * 60);

/// Longest cool-down or trial timeout accepted.
const MAX_OPEN: Duration = Duration::from_secs(24 * 60 * 60);

/// Most trial calls in half-open accepted.
const MAX_TRIALS: u32 = 1000;

/// Events a single [`Breaker`] keeps before dropping the oldest.
const BREAKER_EVENTS: usize = 32;

/// Events [`Breakers`] keeps before dropping the oldest.
pub const MAX_BREAKER_EVENTS: usize = 4096;

/// Parameters of a circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Opens after this many failures in a row. Default 5.
    pub consecutive_failures: u32,
    /// Opens when at least this percentage of the calls in the window failed... Default 50.
    pub failure_percent: u32,
    /// ...and the window holds at least this many calls. Default 20.
    pub min_calls: u32,
    /// The sliding window the failure ratio is measured over (in ten steps). Default 30 s.
    #[serde(rename = "window_ms", with = "millis")]
    pub window: Duration,
    /// How long the breaker stays open after its first trip. Default 5 s.
    #[serde(rename = "open_ms", with = "millis")]
    pub open: Duration,
    /// The cool-down doubles with every trip until the breaker closes again, up to this.
    /// Default 5 minutes.
    #[serde(rename = "max_open_ms", with = "millis")]
    pub max_open: Duration,
    /// Trial calls allowed once the cool-down is over (half-open); the breaker closes when
    /// all of them succeed and re-opens at the first failure. Default 1.
    pub half_open_trials: u32,
    /// A trial that has not reported this long after the last trial was allowed counts as a
    /// failure, so a lost outcome cannot leave the breaker half-open for ever. Default 10 s.
    #[serde(rename = "trial_timeout_ms", with = "millis")]
    pub trial_timeout: Duration,
    /// Most peers tracked by [`Breakers`]. Default 4,096.
    pub max_keys: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_percent: 50,
            min_calls: 20,
            window: Duration::from_secs(30),
            open: Duration::from_secs(5),
            max_open: Duration::from_secs(300),
            half_open_trials: 1,
            trial_timeout: Duration::from_secs(10),
            max_keys: 4_096,
        }
    }
}

impl BreakerConfig {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ConfigError::Zero`] for any zero count or duration; [`ConfigError::TooLarge`] for a
    /// `failure_percent` above 100, a window above an hour (or below 10 ms), a cool-down or
    /// trial timeout above a day, more than 1,000 trials or keys above
    /// [`MAX_TRACKED_KEYS`]; [`ConfigError::Inconsistent`] if `open > max_open`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive(
            "breaker.consecutive_failures",
            u128::from(self.consecutive_failures),
        )?;
        positive("breaker.failure_percent", u128::from(self.failure_percent))?;
        at_most(
            "breaker.failure_percent",
            u128::from(self.failure_percent),
            100,
        )?;
        positive("breaker.min_calls", u128::from(self.min_calls))?;
        duration("breaker.window_ms", self.window, MAX_WINDOW)?;
        if self.window < MIN_WINDOW {
            return Err(ConfigError::Inconsistent(
                "breaker.window_ms must be at least 10 ms",
            ));
        }
        duration("breaker.open_ms", self.open, MAX_OPEN)?;
        duration("breaker.max_open_ms", self.max_open, MAX_OPEN)?;
        if self.open > self.max_open {
            return Err(ConfigError::Inconsistent(
                "breaker.open_ms is above breaker.max_open_ms",
            ));
        }
        positive(
            "breaker.half_open_trials",
            u128::from(self.half_open_trials),
        )?;
        at_most(
            "breaker.half_open_trials",
            u128::from(self.half_open_trials),
            u128::from(MAX_TRIALS),
        )?;
        duration("breaker.trial_timeout_ms", self.trial_timeout, MAX_OPEN)?;
        positive("breaker.max_keys", self.max_keys as u128)?;
        at_most(
            "breaker.max_keys",
            self.max_keys as u128,
            MAX_TRACKED_KEYS as u128,
        )
    }

    /// The cool-down after the `trips`th trip in a row (1 for the first).
    fn cooldown(&self, trips: u32) -> Duration {
        let factor = 1u128
            .checked_shl(trips.saturating_sub(1))
            .unwrap_or(u128::MAX);
        let nanos = self.open.as_nanos().saturating_mul(factor);
        time::from_nanos(nanos.min(self.max_open.as_nanos()))
    }

    /// Nanoseconds per window step (the window is at most an hour, so this fits a `u64`).
    fn slot_nanos(&self) -> u64 {
        let window = u64::try_from(self.window.as_nanos()).unwrap_or(u64::MAX);
        (window / WINDOW_SLOTS as u64).max(1)
    }
}

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls pass; failures are counted.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// A limited number of trial calls pass to probe the peer.
    HalfOpen,
}

impl BreakerState {
    /// `"closed"`, `"open"` or `"half_open"`, for logs and metric labels.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// Closed to open: this many failures in a row.
    ConsecutiveFailures {
        /// Failures in a row.
        failures: u32,
    },
    /// Closed to open: too many of the calls in the window failed.
    FailureRatio {
        /// Failures in the window.
        failures: u32,
        /// Calls in the window.
        calls: u32,
    },
    /// Open to half-open: the cool-down is over.
    CooldownElapsed,
    /// Half-open to open: a trial call failed.
    TrialFailed,
    /// Half-open to open: a trial call did not report in time.
    TrialTimeout,
    /// Half-open to closed: every trial call succeeded.
    TrialsSucceeded,
}

impl Cause {
    /// A short stable name for logs and metric labels, e.g. `consecutive_failures`.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::ConsecutiveFailures { .. } => "consecutive_failures",
            Self::FailureRatio { .. } => "failure_ratio",
            Self::CooldownElapsed => "cooldown_elapsed",
            Self::TrialFailed => "trial_failed",
            Self::TrialTimeout => "trial_timeout",
            Self::TrialsSucceeded => "trials_succeeded",
        }
    }
}

/// A breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateChange {
    /// The state before.
    pub from: BreakerState,
    /// The state after.
    pub to: BreakerState,
    /// When it happened (for a cool-down that ended between calls, the instant it ended).
    pub at: Instant,
    /// Why.
    pub cause: Cause,
    /// When `to` is [`BreakerState::Open`]: how long it stays open.
    pub cooldown: Option<Duration>,
}

/// A state change of one key's breaker in [`Breakers`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerEvent<K> {
    /// The key (peer) whose breaker changed.
    pub key: K,
    /// The change.
    pub change: StateChange,
}

/// Leave to make one call, from [`Breaker::allow`]. Report its outcome with
/// `record_success` or `record_failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "report the call's outcome with record_success or record_failure"]
pub struct Permit {
    trial: bool,
}

impl Permit {
    /// Whether this is a half-open trial call, whose outcome decides whether the breaker
    /// closes.
    #[must_use]
    pub const fn is_trial(&self) -> bool {
        self.trial
    }
}

/// The breaker refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker open; retry in {retry_after:?}")]
#[non_exhaustive]
pub struct BreakerOpen {
    /// How long at least until the breaker may allow a call: the rest of the cool-down, or
    /// of the trial timeout when every half-open trial is taken.
    pub retry_after: Duration,
}

impl HasErrorCode for BreakerOpen {
    fn code(&self) -> ErrorCode {
        ErrorCode::BreakerOpen
    }

    fn retry_after(&self) -> Option<Duration> {
        Some(self.retry_after)
    }
}

/// Calls and failures in one step of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Slot {
    step: u64,
    successes: u32,
    failures: u32,
}

/// Outcomes over the last `window`, in [`WINDOW_SLOTS`] steps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    origin: Option<Instant>,
    slots: [Slot; WINDOW_SLOTS],
}

impl Window {
    const fn new() -> Self {
        Self {
            origin: None,
            slots: [Slot {
                step: 0,
                successes: 0,
                failures: 0,
            }; WINDOW_SLOTS],
        }
    }

    fn step(&mut self, config: &BreakerConfig, now: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(now);
        Self::step_from(origin, config, now)
    }

    fn step_from(origin: Instant, config: &BreakerConfig, now: Instant) -> u64 {
        let elapsed = u64::try_from(time::since(origin, now).as_nanos()).unwrap_or(u64::MAX);
        elapsed / config.slot_nanos()
    }

    fn record(&mut self, config: &BreakerConfig, now: Instant, failed: bool) {
        let step = self.step(config, now);
        // `WINDOW_SLOTS` is 10, so the remainder is a valid index.
        let index = usize::try_from(step % WINDOW_SLOTS as u64).unwrap_or(0);
        if let Some(slot) = self.slots.get_mut(index) {
            if slot.step != step {
                *slot = Slot {
                    step,
                    ..Slot::default()
                };
            }
            if failed {
                slot.failures = slot.failures.saturating_add(1);
            } else {
                slot.successes = slot.successes.saturating_add(1);
            }
        }
    }

    /// `(failures, calls)` in the window ending at `now`.
    fn counts(&self, config: &BreakerConfig, now: Instant) -> (u32, u32) {
        let Some(origin) = self.origin else {
            return (0, 0);
        };
        let current = Self::step_from(origin, config, now);
        let oldest = current.saturating_sub(WINDOW_SLOTS as u64 - 1);
        self.slots
            .iter()
            .filter(|s| (oldest..=current).contains(&s.step))
            .fold((0u32, 0u32), |(f, c), s| {
                (
                    f.saturating_add(s.failures),
                    c.saturating_add(s.failures).saturating_add(s.successes),
                )
            })
    }

    fn clear(&mut self) {
        *self = Self::new();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        issued: u32,
        succeeded: u32,
        last_issue: Option<Instant>,
    },
}

/// The state machine of one breaker; the parameters live with its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Core {
    inner: Inner,
    consecutive: u32,
    trips: u32,
    window: Window,
    last_used: Option<Instant>,
}

impl Core {
    const fn new() -> Self {
        Self {
            inner: Inner::Closed,
            consecutive: 0,
            trips: 0,
            window: Window::new(),
            last_used: None,
        }
    }

    const fn public_state(inner: Inner) -> BreakerState {
        match inner {
            Inner::Closed => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// When the next time-driven transition is due, if any.
    fn deadline(&self, config: &BreakerConfig) -> Option<Instant> {
        match self.inner {
            Inner::Closed => None,
            Inner::Open { until } => Some(until),
            Inner::HalfOpen {
                issued,
                succeeded,
                last_issue: Some(at),
            } if issued > succeeded => time::add(at, config.trial_timeout),
            Inner::HalfOpen { .. } => None,
        }
    }

    fn state(&self, config: &BreakerConfig, now: Instant) -> BreakerState {
        let mut copy = self.clone();
        copy.advance(config, now, &mut |_| {});
        Self::public_state(copy.inner)
    }

    /// Applies the transitions that time alone causes, up to `now`.
    fn advance(
        &mut self,
        config: &BreakerConfig,
        now: Instant,
        emit: &mut impl FnMut(StateChange),
    ) {
        loop {
            let Some(due) = self.deadline(config) else {
                return;
            };
            if now < due {
                return;
            }
            match self.inner {
                Inner::Open { .. } => {
                    self.inner = Inner::HalfOpen {
                        issued: 0,
                        succeeded: 0,
                        last_issue: None,
                    };
                    emit(StateChange {
                        from: BreakerState::Open,
                        to: BreakerState::HalfOpen,
                        at: due,
                        cause: Cause::CooldownElapsed,
                        cooldown: None,
                    });
                }
                Inner::HalfOpen { .. } => self.trip(config, due, Cause::TrialTimeout, emit),
                Inner::Closed => return,
            }
        }
    }

    fn trip(
        &mut self,
        config: &BreakerConfig,
        at: Instant,
        cause: Cause,
        emit: &mut impl FnMut(StateChange),
    ) {
        let from = Self::public_state(self.inner);
        self.trips = self.trips.saturating_add(1);
        let cooldown = config.cooldown(self.trips);
        // An instant a day past any real clock reading is representable; if it were not,
        // staying open until `at` (half-opening at once) is the harmless fallback.
        let until = time::add(at, cooldown).unwrap_or(at);
        self.inner = Inner::Open { until };
        self.consecutive = 0;
        self.window.clear();
        emit(StateChange {
            from,
            to: BreakerState::Open,
            at,
            cause,
            cooldown: Some(cooldown),
        });
    }

    fn touch(&mut self, now: Instant) {
        self.last_used = Some(self.last_used.map_or(now, |t| t.max(now)));
    }

    fn allow(
        &mut self,
        config: &BreakerConfig,
        now: Instant,
        emit: &mut impl FnMut(StateChange),
    ) -> Result<Permit, BreakerOpen> {
        self.touch(now);
        self.advance(config, now, emit);
        match &mut self.inner {
            Inner::Closed => Ok(Permit { trial: false }),
            Inner::Open { until } => Err(BreakerOpen {
                retry_after: time::since(now, *until),
            }),
            Inner::HalfOpen {
                issued, last_issue, ..
            } => {
                if *issued < config.half_open_trials {
                    *issued += 1;
                    *last_issue = Some(last_issue.map_or(now, |t| t.max(now)));
                    Ok(Permit { trial: true })
                } else {
                    let due = last_issue
                        .and_then(|at| time::add(at, config.trial_timeout))
                        .unwrap_or(now);
                    Err(BreakerOpen {
                        retry_after: time::since(now, due),
                    })
                }
            }
        }
    }

    fn record_success(
        &mut self,
        config: &BreakerConfig,
        now: Instant,
        emit: &mut impl FnMut(StateChange),
    ) {
        self.touch(now);
        self.advance(config, now, emit);
        match &mut self.inner {
            Inner::Closed => {
                self.consecutive = 0;
                self.window.record(config, now, false);
            }
            // A call allowed before the breaker opened; it says nothing about the trials.
            Inner::Open { .. } => {}
            Inner::HalfOpen {
                issued, succeeded, ..
            } => {
                // Only trials count; a success with no trial outstanding is a straggler.
                if *succeeded < *issued {
                    *succeeded += 1;
                }
                if *succeeded >= config.half_open_trials {
                    self.inner = Inner::Closed;
                    self.trips = 0;
                    self.consecutive = 0;
                    self.window.clear();
                    emit(StateChange {
                        from: BreakerState::HalfOpen,
                        to: BreakerState::Closed,
                        at: now,
                        cause: Cause::TrialsSucceeded,
                        cooldown: None,
                    });
                }
            }
        }
    }

    fn record_failure(
        &mut self,
        config: &BreakerConfig,
        now: Instant,
        emit: &mut impl FnMut(StateChange),
    ) {
        self.touch(now);
        self.advance(config, now, emit);
        match self.inner {
            Inner::Closed => {
                self.consecutive = self.consecutive.saturating_add(1);
                self.window.record(config, now, true);
                if self.consecutive >= config.consecutive_failures {
                    let failures = self.consecutive;
                    self.trip(config, now, Cause::ConsecutiveFailures { failures }, emit);
                    return;
                }
                let (failures, calls) = self.window.counts(config, now);
                if calls >= config.min_calls
                    && u64::from(failures) * 100
                        >= u64::from(config.failure_percent) * u64::from(calls)
                {
                    self.trip(config, now, Cause::FailureRatio { failures, calls }, emit);
                }
            }
            Inner::Open { .. } => {}
            // Any failure while probing re-opens, with a longer cool-down.
            Inner::HalfOpen { .. } => self.trip(config, now, Cause::TrialFailed, emit),
        }
    }

    /// Whether forgetting this breaker changes nothing but the successes in its window.
    fn is_pristine(&self, config: &BreakerConfig, now: Instant) -> bool {
        self.inner == Inner::Closed
            && self.consecutive == 0
            && self.trips == 0
            && self.window.counts(config, now).0 == 0
    }

    const fn is_tripped(&self) -> bool {
        !matches!(self.inner, Inner::Closed)
    }
}

/// A circuit breaker for one peer or dependency.
///
/// Closed, it lets calls through and opens after `consecutive_failures` failures in a row, or
/// when `failure_percent` of at least `min_calls` calls in the sliding `window` failed. Open,
/// it refuses calls for a cool-down that doubles with every trip in a row (from `open` up to
/// `max_open`). Then it is half-open: `half_open_trials` calls may pass; when all of them
/// succeed it closes, and the first failure re-opens it. Transitions that time alone causes
/// (cool-down over, trial timed out) happen at the next call or at [`Breaker::handle_timeout`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use dawn_resilience::{Breaker, BreakerConfig, BreakerState};
///
/// let mut config = BreakerConfig::default();
/// config.consecutive_failures = 2;
/// let mut breaker = Breaker::new(config)?;
/// let t0 = Instant::now();
/// for _ in 0..2 {
///     let _permit = breaker.allow(t0)?;
///     breaker.record_failure(t0);
/// }
/// assert_eq!(breaker.state(t0), BreakerState::Open);
/// assert_eq!(breaker.allow(t0).unwrap_err().retry_after, Duration::from_secs(5));
///
/// let later = t0 + Duration::from_secs(5);
/// let permit = breaker.allow(later)?; // half-open: one trial
/// assert!(permit.is_trial());
/// breaker.record_success(later);
/// assert_eq!(breaker.state(later), BreakerState::Closed);
/// let changes: Vec<_> = std::iter::from_fn(|| breaker.poll_event()).map(|c| c.to).collect();
/// assert_eq!(changes, [BreakerState::Open, BreakerState::HalfOpen, BreakerState::Closed]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    core: Core,
    events: VecDeque<StateChange>,
}

impl Breaker {
    /// A closed breaker.
    ///
    /// # Errors
    /// As [`BreakerConfig::validate`].
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            core: Core::new(),
            events: VecDeque::new(),
        })
    }

    /// Asks to make a call at `now`.
    ///
    /// # Errors
    /// [`BreakerOpen`] while open, or while half-open with every trial taken.
    pub fn allow(&mut self, now: Instant) -> Result<Permit, BreakerOpen> {
        self.core
            .allow(&self.config, now, &mut queue(&mut self.events))
    }

    /// The call allowed earlier succeeded at `now`.
    pub fn record_success(&mut self, now: Instant) {
        self.core
            .record_success(&self.config, now, &mut queue(&mut self.events));
    }

    /// The call allowed earlier failed at `now`.
    pub fn record_failure(&mut self, now: Instant) {
        self.core
            .record_failure(&self.config, now, &mut queue(&mut self.events));
    }

    /// The state at `now`, counting transitions that time alone causes.
    #[must_use]
    pub fn state(&self, now: Instant) -> BreakerState {
        self.core.state(&self.config, now)
    }

    /// When the next time-driven transition is due (cool-down over, trial timed out); call
    /// [`Breaker::handle_timeout`] then if the state change should be reported promptly.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.deadline(&self.config)
    }

    /// Applies the transitions due by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core
            .advance(&self.config, now, &mut queue(&mut self.events));
    }

    /// The next state change, oldest first; call after every other method until `None`. The
    /// last 32 are kept.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<StateChange> {
        self.events.pop_front()
    }

    /// The parameters.
    #[must_use]
    pub const fn config(&self) -> &BreakerConfig {
        &self.config
    }
}

/// A sink that keeps the last [`BREAKER_EVENTS`] changes of a single breaker.
fn queue(events: &mut VecDeque<StateChange>) -> impl FnMut(StateChange) + '_ {
    |change| {
        push_bounded(events, change, BREAKER_EVENTS);
    }
}

/// Appends to a bounded queue, dropping the oldest; returns whether one was dropped.
fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, cap: usize) -> bool {
    let dropped = queue.len() >= cap && queue.pop_front().is_some();
    queue.push_back(item);
    dropped
}

/// Circuit breakers for many keys (peers), with a bound on how many are tracked.
///
/// A key that was never recorded, or was forgotten, is closed. When `max_keys` is reached,
/// breakers that are closed with no recent failure are forgotten first (they are equal to a
/// new one but for the successes in their window); then the least recently used, closed ones
/// before tripped ones, so a tripped breaker is forgotten only when too few closed ones are
/// left to free a batch of `max_keys / 16`.
///
/// ```
/// use std::time::Instant;
/// use dawn_resilience::{BreakerConfig, BreakerState, Breakers};
///
/// let mut config = BreakerConfig::default();
/// config.consecutive_failures = 1;
/// let mut breakers = Breakers::new(config)?;
/// let now = Instant::now();
/// breakers.record_failure(now, &"peer-a");
/// assert!(breakers.allow(now, &"peer-a").is_err());
/// assert!(breakers.allow(now, &"peer-b").is_ok());
/// let event = breakers.poll_event().unwrap();
/// assert_eq!((event.key, event.change.to), ("peer-a", BreakerState::Open));
/// assert_eq!(breakers.tripped(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Breakers<K> {
    config: BreakerConfig,
    entries: HashMap<K, Core>,
    events: VecDeque<BreakerEvent<K>>,
    dropped: u64,
    tripped: usize,
}

impl<K: Hash + Eq + Clone> Breakers<K> {
    /// No breakers yet.
    ///
    /// # Errors
    /// As [`BreakerConfig::validate`].
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            entries: HashMap::new(),
            events: VecDeque::new(),
            dropped: 0,
            tripped: 0,
        })
    }

    /// Asks to make a call to `key` at `now`.
    ///
    /// # Errors
    /// [`BreakerOpen`] while `key`'s breaker is open, or half-open with every trial taken.
    pub fn allow(&mut self, now: Instant, key: &K) -> Result<Permit, BreakerOpen> {
        let Some(core) = self.entries.get_mut(key) else {
            return Ok(Permit { trial: false });
        };
        let mut sink = Sink {
            key,
            events: &mut self.events,
            dropped: &mut self.dropped,
            tripped: &mut self.tripped,
        };
        core.allow(&self.config, now, &mut |c| sink.push(c))
    }

    /// A call to `key` succeeded at `now`.
    pub fn record_success(&mut self, now: Instant, key: &K) {
        self.record(now, key, false);
    }

    /// A call to `key` failed at `now`.
    pub fn record_failure(&mut self, now: Instant, key: &K) {
        self.record(now, key, true);
    }

    fn record(&mut self, now: Instant, key: &K, failed: bool) {
        // One hash lookup for a known key; the insertion path pays for the second.
        if let Some(core) = self.entries.get_mut(key) {
            let mut sink = Sink {
                key,
                events: &mut self.events,
                dropped: &mut self.dropped,
                tripped: &mut self.tripped,
            };
            Self::apply(core, &self.config, now, failed, &mut sink);
            return;
        }
        let before = self.entries.len();
        let config = &self.config;
        make_room(
            &mut self.entries,
            config.max_keys,
            |core| core.is_pristine(config, now),
            |core| (core.is_tripped(), core.last_used),
        );
        if self.entries.len() < before {
            self.tripped = self.entries.values().filter(|c| c.is_tripped()).count();
        }
        let core = self.entries.entry(key.clone()).or_insert_with(Core::new);
        let mut sink = Sink {
            key,
            events: &mut self.events,
            dropped: &mut self.dropped,
            tripped: &mut self.tripped,
        };
        Self::apply(core, &self.config, now, failed, &mut sink);
    }

    fn apply(
        core: &mut Core,
        config: &BreakerConfig,
        now: Instant,
        failed: bool,
        sink: &mut Sink<'_, K>,
    ) {
        if failed {
            core.record_failure(config, now, &mut |c| sink.push(c));
        } else {
            core.record_success(config, now, &mut |c| sink.push(c));
        }
    }

    /// `key`'s state at `now` (closed if untracked).
    #[must_use]
    pub fn state(&self, now: Instant, key: &K) -> BreakerState {
        self.entries
            .get(key)
            .map_or(BreakerState::Closed, |core| core.state(&self.config, now))
    }

    /// Applies every time-driven transition due by `now`, so their events are reported
    /// promptly. It visits every key; once a second is plenty.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (key, core) in &mut self.entries {
            let mut sink = Sink {
                key,
                events: &mut self.events,
                dropped: &mut self.dropped,
                tripped: &mut self.tripped,
            };
            core.advance(&self.config, now, &mut |c| sink.push(c));
        }
    }

    /// The next state change, oldest first; call after every other method until `None`. The
    /// last [`MAX_BREAKER_EVENTS`] are kept; [`Breakers::dropped_events`] counts the rest.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<BreakerEvent<K>> {
        self.events.pop_front()
    }

    /// Events dropped because nobody polled them in time.
    #[must_use]
    pub const fn dropped_events(&self) -> u64 {
        self.dropped
    }

    /// How many tracked breakers are in `state` at `now` (untracked keys are closed and not
    /// counted). It visits every key.
    #[must_use]
    pub fn count(&self, now: Instant, state: BreakerState) -> usize {
        self.entries
            .values()
            .filter(|core| core.state(&self.config, now) == state)
            .count()
    }

    /// Breakers not closed (open or half-open): a health signal.
    #[must_use]
    pub const fn tripped(&self) -> usize {
        self.tripped
    }

    /// Forgets `key`'s breaker (it is closed again). Returns whether it was tracked.
    pub fn remove(&mut self, key: &K) -> bool {
        match self.entries.remove(key) {
            Some(core) => {
                if core.is_tripped() {
                    self.tripped = self.tripped.saturating_sub(1);
                }
                true
            }
            None => false,
        }
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

    /// The parameters.
    #[must_use]
    pub const fn config(&self) -> &BreakerConfig {
        &self.config
    }
}

/// Where one key's state changes go: the shared queue and the tripped count.
struct Sink<'a, K> {
    key: &'a K,
    events: &'a mut VecDeque<BreakerEvent<K>>,
    dropped: &'a mut u64,
    tripped: &'a mut usize,
}

impl<K: Clone> Sink<'_, K> {
    fn push(&mut self, change: StateChange) {
        match (change.from, change.to) {
            (BreakerState::Closed, to) if to != BreakerState::Closed => *self.tripped += 1,
            (from, BreakerState::Closed) if from != BreakerState::Closed => {
                *self.tripped = self.tripped.saturating_sub(1);
            }
            _ => {}
        }
        let event = BreakerEvent {
            key: self.key.clone(),
            change,
        };
        if push_bounded(self.events, event, MAX_BREAKER_EVENTS) {
            *self.dropped = self.dropped.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_config_is_named() {
        type Change = fn(&mut BreakerConfig);
        let cases: [(Change, &str); 6] = [
            (
                |c| c.consecutive_failures = 0,
                "breaker.consecutive_failures",
            ),
            (|c| c.failure_percent = 0, "breaker.failure_percent"),
            (|c| c.min_calls = 0, "breaker.min_calls"),
            (|c| c.open = Duration::ZERO, "breaker.open_ms"),
            (|c| c.half_open_trials = 0, "breaker.half_open_trials"),
            (|c| c.max_keys = 0, "breaker.max_keys"),
        ];
        for (change, name) in cases {
            let mut c = BreakerConfig::default();
            change(&mut c);
            assert_eq!(c.validate(), Err(ConfigError::Zero(name)));
        }
        let c = BreakerConfig {
            failure_percent: 101,
            ..BreakerConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::TooLarge { .. })));
        let c = BreakerConfig {
            open: Duration::from_secs(600),
            ..BreakerConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::Inconsistent(_))));
        let c = BreakerConfig {
            window: Duration::from_millis(9),
            ..BreakerConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::Inconsistent(_))));
        let c = BreakerConfig {
            half_open_trials: MAX_TRIALS + 1,
            ..BreakerConfig::default()
        };
        assert!(Breaker::new(c).is_err());
    }

    #[test]
    fn cooldown_doubles_and_caps() {
        let c = BreakerConfig::default();
        assert_eq!(c.cooldown(1), Duration::from_secs(5));
        assert_eq!(c.cooldown(2), Duration::from_secs(10));
        assert_eq!(c.cooldown(7), Duration::from_secs(300));
        assert_eq!(c.cooldown(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn window_forgets_old_steps() {
        let c = BreakerConfig::default(); // 30 s in 3 s steps
        let t0 = Instant::now();
        let mut w = Window::new();
        w.record(&c, t0, true);
        w.record(&c, t0 + Duration::from_secs(1), false);
        assert_eq!(w.counts(&c, t0 + Duration::from_secs(2)), (1, 2));
        assert_eq!(w.counts(&c, t0 + Duration::from_secs(29)), (1, 2));
        assert_eq!(w.counts(&c, t0 + Duration::from_secs(30)), (0, 0));
        // A slot reused after a full turn starts from zero.
        w.record(&c, t0 + Duration::from_secs(30), false);
        assert_eq!(w.counts(&c, t0 + Duration::from_secs(30)), (0, 1));
    }

    #[test]
    fn push_bounded_drops_the_oldest() {
        let mut q = VecDeque::new();
        assert!(!push_bounded(&mut q, 1, 2));
        assert!(!push_bounded(&mut q, 2, 2));
        assert!(push_bounded(&mut q, 3, 2));
        assert_eq!(q, [2, 3]);
    }
}
