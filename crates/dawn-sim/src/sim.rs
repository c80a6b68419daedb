//! The simulator: drives protocol instances over the modelled network.

use std::time::{Duration, Instant};

use dawn_identity::NodeId;

use crate::action::{Action, ChurnEvent, InputFn, RestartFn};
use crate::config::{Churn, ConfigError, SimConfig, check_bandwidth, check_loss};
use crate::net::{Arrival, Event, MAX_TIME, Net, Slab, T_INPUT, T_SET_LOSS, T_TIMEOUT, instant_at};
use crate::protocol::Protocol;
use crate::rng::{SimRng, duration_nanos, mix64};
use crate::stats::Counters;

/// Domain separation of the scenario stream from the network's streams.
const SCENARIO_STREAM: u64 = 0x7363_656e;

/// An operation on a [`Sim`] could not be carried out.
///
/// Node ids are boxed to keep the error small (a `NodeId` is 192 bytes).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// No node with this id was added.
    #[error("unknown node {}", .0.fmt_short())]
    UnknownNode(Box<NodeId>),
    /// A node with this id was already added.
    #[error("node {} was already added", .0.fmt_short())]
    DuplicateNode(Box<NodeId>),
    /// The node is crashed, so it has no state to give input to.
    #[error("node {} is down", .0.fmt_short())]
    NodeDown(Box<NodeId>),
    /// A partition names this node in two different groups.
    #[error("node {} is in more than one partition group", .0.fmt_short())]
    PartitionOverlap(Box<NodeId>),
    /// More than `u32::MAX` nodes (or partition groups).
    #[error("a simulation holds at most 2^32 - 1 nodes")]
    TooManyNodes,
    /// A parameter (loss rate, bandwidth, churn) is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A scheduled action with its node ids resolved to indices.
enum Scheduled<P> {
    Crash(u32),
    Restart(u32, P),
    RestartWith(u32, RestartFn<P>),
    /// Restart from churn factory number `.1`, only if the node is down.
    ChurnRestart(u32, usize),
    Partition(Vec<(u32, u32)>),
    Heal,
    SetLoss(f64),
    Input(u32, InputFn<P>),
}

/// A builder of restarted instances for churn.
type Factory<P> = Box<dyn FnMut(NodeId, Instant) -> P>;

/// A deterministic network of simulated nodes running protocol `P`.
///
/// Time is virtual: it jumps from event to event, and a run depends only on the
/// [`SimConfig`] (including its seed) and the calls made. See the [crate docs](crate) for an
/// example.
///
/// # The network model
///
/// A message sent at time `t` leaves its sender when the sender's egress link is free and the
/// message has been serialised (`wire_size / bandwidth`, if a bandwidth is set), then arrives
/// after the link's latency plus jitter. It is dropped, and counted in [`Counters`], if the
/// destination is unknown, if sender and receiver are on different sides of a partition (when
/// sent or on arrival), if the receiver is down when it is sent or on arrival or crashed in
/// between, or with probability `loss`. Drops are silent to the protocol, like lost datagrams.
///
/// # Cost
///
/// Per node the simulator keeps its id, a 40-byte network state and a 104-byte counter
/// block, plus the protocol instance; per message in flight, 24 bytes in the queue and the
/// message itself.
pub struct Sim<P: Protocol> {
    net: Net<P::Message>,
    protocols: Vec<Option<P>>,
    actions: Slab<Scheduled<P>>,
    events: Vec<(u64, u32, P::Event)>,
    factories: Vec<Factory<P>>,
    scenario_rng: SimRng,
    events_processed: u64,
}

impl<P: Protocol> Sim<P> {
    /// An empty network at virtual time zero.
    ///
    /// # Errors
    /// [`ConfigError`] if a parameter is out of range (see [`SimConfig::validate`]).
    pub fn new(config: SimConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            scenario_rng: SimRng::new(mix64(config.seed ^ SCENARIO_STREAM)),
            net: Net::new(config),
            protocols: Vec::new(),
            actions: Slab::new(),
            events: Vec::new(),
            factories: Vec::new(),
            events_processed: 0,
        })
    }

    /// The configuration, with the loss rate as last set.
    #[must_use]
    pub const fn config(&self) -> &SimConfig {
        &self.net.config
    }

    /// The seed of this run.
    #[must_use]
    pub const fn seed(&self) -> u64 {
        self.net.config.seed
    }

    /// The current virtual time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.net.instant(self.net.now)
    }

    /// Virtual time elapsed since the simulation was created.
    #[must_use]
    pub const fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.net.now)
    }

    /// The `Instant` that stands for virtual time zero.
    #[must_use]
    pub const fn epoch(&self) -> Instant {
        self.net.epoch
    }

    /// Adds a running node, then drains its first transmits and events and reads its timer.
    ///
    /// Nodes added while a partition is in force join the group of unlisted nodes.
    ///
    /// # Errors
    /// [`SimError::DuplicateNode`] if `id` is already in the simulation,
    /// [`SimError::TooManyNodes`] beyond `u32::MAX` nodes.
    pub fn add_node(&mut self, id: NodeId, protocol: P) -> Result<(), SimError> {
        let node = self.net.add(id)?;
        self.protocols.push(Some(protocol));
        self.after_input(node);
        Ok(())
    }

    /// How many nodes were added (running or not).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.net.ids.len()
    }

    /// Whether no node was added.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.net.ids.is_empty()
    }

    /// Every node id, in the order the nodes were added.
    #[must_use]
    pub fn node_ids(&self) -> &[NodeId] {
        &self.net.ids
    }

    /// Whether `id` was added.
    #[must_use]
    pub fn contains(&self, id: &NodeId) -> bool {
        self.net.index_of(id).is_ok()
    }

    /// Whether `id` is running (false for crashed and unknown nodes).
    #[must_use]
    pub fn is_up(&self, id: &NodeId) -> bool {
        self.net.index_of(id).is_ok_and(|node| self.net.is_up(node))
    }

    /// The protocol instance of a running node, to inspect its state.
    #[must_use]
    pub fn node(&self, id: &NodeId) -> Option<&P> {
        let node = self.net.index_of(id).ok()?;
        self.protocols.get(node as usize)?.as_ref()
    }

    /// Every node with its protocol instance (`None` while crashed), in the order added.
    pub fn nodes(&self) -> impl Iterator<Item = (&NodeId, Option<&P>)> {
        self.net
            .ids
            .iter()
            .zip(self.protocols.iter().map(Option::as_ref))
    }

    /// Gives a running node application input at the current time (join, broadcast, ...),
    /// then drains its transmits and events and reads its timer.
    ///
    /// # Errors
    /// [`SimError::UnknownNode`], or [`SimError::NodeDown`] if the node is crashed.
    pub fn with_node<R>(
        &mut self,
        id: NodeId,
        input: impl FnOnce(&mut P, Instant) -> R,
    ) -> Result<R, SimError> {
        let node = self.net.index_of(&id)?;
        let now = self.now();
        let protocol = self
            .protocols
            .get_mut(node as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| SimError::NodeDown(Box::new(id)))?;
        let result = input(protocol, now);
        self.net.trace_record(T_INPUT, u64::from(node), 0);
        self.after_input(node);
        Ok(result)
    }

    /// Crashes a node: its protocol state is dropped, its timer cancelled, and messages in
    /// flight to it are lost. Returns whether it was running (crashing a crashed node does
    /// nothing).
    ///
    /// # Errors
    /// [`SimError::UnknownNode`].
    pub fn crash(&mut self, id: NodeId) -> Result<bool, SimError> {
        let node = self.net.index_of(&id)?;
        Ok(self.crash_index(node))
    }

    /// Restarts a node with a fresh instance (crashing it first if it is running), then
    /// drains the new instance's transmits and events and reads its timer.
    ///
    /// # Errors
    /// [`SimError::UnknownNode`].
    pub fn restart(&mut self, id: NodeId, protocol: P) -> Result<(), SimError> {
        let node = self.net.index_of(&id)?;
        self.restart_index(node, protocol);
        Ok(())
    }

    /// Splits the network: each listed group can only talk within itself, and every node not
    /// listed forms one more group. Replaces any earlier partition. Messages already in flight
    /// across the new boundaries are lost when they arrive.
    ///
    /// `partition(&[vec![a]])` isolates `a` from everyone else.
    ///
    /// # Errors
    /// [`SimError::UnknownNode`], or [`SimError::PartitionOverlap`] if a node is listed in two
    /// groups. Nothing changes on error.
    pub fn partition<G: AsRef<[NodeId]>>(&mut self, groups: &[G]) -> Result<(), SimError> {
        let assignment = self.net.resolve_groups(groups.iter().map(AsRef::as_ref))?;
        self.net.apply_partition(&assignment);
        Ok(())
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        self.net.heal();
    }

    /// Whether a message from `a` to `b` would cross a partition now.
    ///
    /// # Errors
    /// [`SimError::UnknownNode`].
    pub fn is_partitioned(&self, a: &NodeId, b: &NodeId) -> Result<bool, SimError> {
        let a = self.net.index_of(a)?;
        let b = self.net.index_of(b)?;
        Ok(self.net.group(a) != self.net.group(b))
    }

    /// Changes the loss rate for messages sent from now on.
    ///
    /// # Errors
    /// [`ConfigError::Loss`] unless `loss` is in `[0, 1]`.
    pub fn set_loss(&mut self, loss: f64) -> Result<(), ConfigError> {
        check_loss(loss)?;
        self.net.config.loss = loss;
        self.net.trace_record(T_SET_LOSS, loss.to_bits(), 0);
        Ok(())
    }

    /// Sets one node's egress bandwidth in bytes per second (`None`: unlimited), overriding
    /// [`SimConfig::bandwidth`] for it.
    ///
    /// # Errors
    /// [`SimError::UnknownNode`], or [`ConfigError::ZeroBandwidth`] for `Some(0)`.
    pub fn set_bandwidth(&mut self, id: NodeId, bandwidth: Option<u64>) -> Result<(), SimError> {
        check_bandwidth(bandwidth)?;
        let node = self.net.index_of(&id)?;
        self.net.set_egress_rate(node, bandwidth);
        Ok(())
    }

    /// The base latency of the link between two nodes (the same both ways, fixed for the
    /// run; jitter comes on top).
    ///
    /// # Errors
    /// [`SimError::UnknownNode`].
    pub fn link_latency(&self, a: &NodeId, b: &NodeId) -> Result<Duration, SimError> {
        let a = self.net.index_of(a)?;
        let b = self.net.index_of(b)?;
        Ok(self.net.link_latency(a, b))
    }

    /// Schedules `action` at virtual time `at` (now, if `at` has passed). Actions at the same
    /// time run in the order they were scheduled, after everything already queued for then.
    ///
    /// # Errors
    /// [`SimError::UnknownNode`] or [`SimError::PartitionOverlap`] for a bad node list,
    /// [`ConfigError::Loss`] for a bad loss rate; nothing is scheduled on error.
    pub fn schedule(&mut self, at: Instant, action: Action<P>) -> Result<(), SimError> {
        let net = &self.net;
        let scheduled = match action {
            Action::Crash(id) => Scheduled::Crash(net.index_of(&id)?),
            Action::Restart(id, protocol) => Scheduled::Restart(net.index_of(&id)?, protocol),
            Action::RestartWith(id, build) => Scheduled::RestartWith(net.index_of(&id)?, build),
            Action::Partition(groups) => {
                Scheduled::Partition(net.resolve_groups(groups.iter().map(Vec::as_slice))?)
            }
            Action::Heal => Scheduled::Heal,
            Action::SetLoss(loss) => {
                check_loss(loss)?;
                Scheduled::SetLoss(loss)
            }
            Action::Input(id, input) => Scheduled::Input(net.index_of(&id)?, input),
        };
        let at = self.net.nanos_of(at);
        let slot = self.actions.insert(scheduled);
        self.net.push(at.max(self.net.now), Event::Action(slot));
        Ok(())
    }

    /// Schedules churn: picks `churn.fraction` of the nodes (not in `churn.exclude`) with the
    /// simulation's scenario RNG, crashes each at a uniform time in
    /// `[now + start, now + start + span]` and, unless `downtime` is `None`, restarts it after
    /// a uniform downtime with an instance from `factory` — provided it is still down then.
    /// Returns the plan, in the order the nodes were picked.
    ///
    /// # Errors
    /// [`ConfigError`] for a bad fraction or downtime range, [`SimError::UnknownNode`] for an
    /// unknown excluded node; nothing is scheduled on error.
    pub fn schedule_churn(
        &mut self,
        churn: &Churn,
        factory: impl FnMut(NodeId, Instant) -> P + 'static,
    ) -> Result<Vec<ChurnEvent>, SimError> {
        churn.validate()?;
        let mut excluded = churn
            .exclude
            .iter()
            .map(|id| self.net.index_of(id))
            .collect::<Result<Vec<u32>, SimError>>()?;
        excluded.sort_unstable();
        let mut eligible: Vec<u32> = (0..self.net.ids.len())
            .filter_map(|node| u32::try_from(node).ok())
            .filter(|node| excluded.binary_search(node).is_err())
            .collect();
        // The fraction is in [0, 1], so the product is in [0, len] and the cast is exact.
        let count = ((churn.fraction * eligible.len() as f64).round() as usize).min(eligible.len());
        for picked in 0..count {
            let other = picked + self.scenario_rng.index(eligible.len() - picked);
            eligible.swap(picked, other);
        }
        eligible.truncate(count);

        let factory_index = self.factories.len();
        self.factories.push(Box::new(factory));
        let start = self.net.now.saturating_add(duration_nanos(churn.start));
        let span = duration_nanos(churn.span);
        let mut plan = Vec::with_capacity(count);
        for node in eligible {
            let Some(id) = self.net.id(node) else {
                continue;
            };
            let offset = if span == u64::MAX {
                self.scenario_rng.next_u64()
            } else {
                self.scenario_rng.below(span + 1)
            };
            let crash_at = start.saturating_add(offset).min(MAX_TIME);
            let slot = self.actions.insert(Scheduled::Crash(node));
            self.net.push(crash_at, Event::Action(slot));
            let restart_at = churn.downtime.as_ref().map(|range| {
                let down = self
                    .scenario_rng
                    .duration_between(*range.start(), *range.end());
                crash_at.saturating_add(duration_nanos(down)).min(MAX_TIME)
            });
            if let Some(at) = restart_at {
                let slot = self
                    .actions
                    .insert(Scheduled::ChurnRestart(node, factory_index));
                self.net.push(at, Event::Action(slot));
            }
            plan.push(ChurnEvent {
                node: id,
                crash_at: self.net.instant(crash_at),
                restart_at: restart_at.map(|at| self.net.instant(at)),
            });
        }
        Ok(plan)
    }

    /// Runs the next event, advancing the clock to it. Returns `false` if nothing is queued.
    pub fn step(&mut self) -> bool {
        let Some(event) = self.net.pop() else {
            return false;
        };
        self.events_processed += 1;
        match event {
            Event::Deliver(slot) => self.deliver(slot),
            Event::Timer { node, generation } => self.fire_timer(node, generation),
            Event::Action(slot) => self.run_action(slot),
        }
        true
    }

    /// Runs every event up to and including `deadline`, then sets the clock to `deadline`
    /// (if it is later than now).
    pub fn run_until(&mut self, deadline: Instant) {
        let target = self.net.nanos_of(deadline);
        self.run_to(target);
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        let target = self
            .net
            .now
            .saturating_add(duration_nanos(duration))
            .min(MAX_TIME);
        self.run_to(target);
    }

    /// Runs until nothing is queued (no message in flight, no timer, no scheduled action),
    /// but for at most `max` of virtual time. Returns whether the network went idle; if not,
    /// the clock stands at `now + max`. A protocol with a periodic timer never goes idle: see
    /// [`run_until_quiet`](Self::run_until_quiet).
    pub fn run_until_idle(&mut self, max: Duration) -> bool {
        self.run_bounded(max, |sim| sim.net.pending() == 0)
    }

    /// Runs until no message is in flight, but for at most `max` of virtual time. Returns
    /// whether that happened; if not, the clock stands at `now + max`.
    pub fn run_until_quiet(&mut self, max: Duration) -> bool {
        self.run_bounded(max, |sim| sim.net.in_flight == 0)
    }

    /// When the next queued event is due, if any.
    #[must_use]
    pub fn next_event_at(&self) -> Option<Instant> {
        self.net.next_time().map(|time| self.net.instant(time))
    }

    /// How many messages are on the wire.
    #[must_use]
    pub const fn in_flight(&self) -> usize {
        self.net.in_flight
    }

    /// How many events are queued (deliveries, timers, actions, including superseded timers).
    #[must_use]
    pub fn pending(&self) -> usize {
        self.net.pending()
    }

    /// How many events have run since the start.
    #[must_use]
    pub const fn events_processed(&self) -> u64 {
        self.events_processed
    }

    /// Takes the protocol events recorded so far, oldest first, with the time and the node
    /// that produced them. Empty if [`SimConfig::record_events`] is off.
    pub fn drain_events(&mut self) -> impl Iterator<Item = (Instant, NodeId, P::Event)> + '_ {
        let epoch = self.net.epoch;
        let ids = &self.net.ids;
        self.events
            .drain(..)
            .filter_map(move |(time, node, event)| {
                let id = *ids.get(node as usize)?;
                Some((instant_at(epoch, time), id, event))
            })
    }

    /// Counters summed over all nodes.
    #[must_use]
    pub const fn stats(&self) -> &Counters {
        &self.net.totals
    }

    /// One node's counters: what it sent and what became of it, what it received.
    #[must_use]
    pub fn node_stats(&self, id: &NodeId) -> Option<&Counters> {
        let node = self.net.index_of(id).ok()?;
        self.net.counters.get(node as usize)
    }

    /// A digest of everything that happened so far: every delivery and drop with its time,
    /// endpoints and size, every timeout, crash, restart, partition and input. Two runs with
    /// the same digest took the same course.
    #[must_use]
    pub const fn trace_digest(&self) -> u64 {
        self.net.trace
    }

    /// The scenario RNG, seeded from the simulation's seed: draw from it to build topologies
    /// and workloads that are reproducible with the run. (Churn draws from it too; the network
    /// model has its own streams, so drawing here never changes which messages are lost.)
    pub const fn rng(&mut self) -> &mut SimRng {
        &mut self.scenario_rng
    }

    fn run_to(&mut self, target: u64) {
        while self.net.next_time().is_some_and(|time| time <= target) {
            self.step();
        }
        self.net.now = self.net.now.max(target);
    }

    fn run_bounded(&mut self, max: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let limit = self
            .net
            .now
            .saturating_add(duration_nanos(max))
            .min(MAX_TIME);
        loop {
            if done(self) {
                return true;
            }
            match self.net.next_time() {
                Some(time) if time <= limit => {
                    self.step();
                }
                _ => {
                    self.net.now = self.net.now.max(limit);
                    return false;
                }
            }
        }
    }

    /// Drains a node's transmits (straight onto the network) and events, and re-reads its
    /// timer.
    fn after_input(&mut self, node: u32) {
        let Some(protocol) = self
            .protocols
            .get_mut(node as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        while let Some((to, message)) = protocol.poll_transmit() {
            let bytes = P::wire_size(&message) as u64;
            self.net.send(node, &to, bytes, message);
        }
        if self.net.config.record_events {
            while let Some(event) = protocol.poll_event() {
                self.events.push((self.net.now, node, event));
            }
        } else {
            while protocol.poll_event().is_some() {}
        }
        if let Some(deadline) = protocol.poll_timeout() {
            let at = self.net.nanos_of(deadline);
            self.net.arm_timer(node, at);
        }
    }

    fn deliver(&mut self, slot: usize) {
        let Some(Arrival { from, to, message }) = self.net.arrive(slot) else {
            return;
        };
        let (Some(from), Some(protocol)) = (
            self.net.id(from),
            self.protocols.get_mut(to as usize).and_then(Option::as_mut),
        ) else {
            return;
        };
        protocol.handle_message(self.net.instant(self.net.now), from, message);
        self.after_input(to);
    }

    fn fire_timer(&mut self, node: u32, generation: u32) {
        if !self.net.timer_due(node, generation) {
            return;
        }
        let now = self.now();
        let Some(protocol) = self
            .protocols
            .get_mut(node as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        let Some(deadline) = protocol.poll_timeout() else {
            return;
        };
        if deadline > now {
            // Superseded by a later deadline: wait for that one.
            let at = self.net.nanos_of(deadline);
            self.net.arm_timer(node, at);
            return;
        }
        protocol.handle_timeout(now);
        if let Some(counters) = self.net.counters.get_mut(node as usize) {
            counters.timeouts += 1;
        }
        self.net.totals.timeouts += 1;
        self.net.trace_record(T_TIMEOUT, u64::from(node), 0);
        self.after_input(node);
    }

    fn crash_index(&mut self, node: u32) -> bool {
        if !self.net.crash(node) {
            return false;
        }
        if let Some(slot) = self.protocols.get_mut(node as usize) {
            *slot = None;
        }
        true
    }

    fn restart_index(&mut self, node: u32, protocol: P) {
        self.crash_index(node);
        let Some(slot) = self.protocols.get_mut(node as usize) else {
            return;
        };
        *slot = Some(protocol);
        self.net.revive(node);
        self.after_input(node);
    }

    fn run_action(&mut self, slot: usize) {
        let Some(action) = self.actions.take(slot) else {
            return;
        };
        match action {
            Scheduled::Crash(node) => {
                self.crash_index(node);
            }
            Scheduled::Restart(node, protocol) => self.restart_index(node, protocol),
            Scheduled::RestartWith(node, build) => {
                if let Some(id) = self.net.id(node) {
                    let protocol = build(id, self.now());
                    self.restart_index(node, protocol);
                }
            }
            Scheduled::ChurnRestart(node, factory) => {
                let down = !self.net.is_up(node);
                let (id, now) = (self.net.id(node), self.now());
                if down
                    && let Some(id) = id
                    && let Some(factory) = self.factories.get_mut(factory)
                {
                    let protocol = factory(id, now);
                    self.restart_index(node, protocol);
                }
            }
            Scheduled::Partition(assignment) => self.net.apply_partition(&assignment),
            Scheduled::Heal => self.net.heal(),
            Scheduled::SetLoss(loss) => {
                self.net.config.loss = loss;
                self.net.trace_record(T_SET_LOSS, loss.to_bits(), 0);
            }
            Scheduled::Input(node, input) => {
                let now = self.now();
                if let Some(protocol) = self
                    .protocols
                    .get_mut(node as usize)
                    .and_then(Option::as_mut)
                {
                    input(protocol, now);
                    self.net.trace_record(T_INPUT, u64::from(node), 0);
                    self.after_input(node);
                }
            }
        }
    }
}
