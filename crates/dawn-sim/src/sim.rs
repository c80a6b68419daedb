//! The simulator: an event queue, a virtual clock and a model of the network between nodes.

use std::cmp::Ordering;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::mem;
use std::time::{Duration, Instant};

use dawn_identity::NodeId;

use crate::action::{Action, ChurnEvent, InputFn, RestartFn};
use crate::config::{Churn, ConfigError, SimConfig, check_bandwidth, check_loss};
use crate::protocol::Protocol;
use crate::rng::{SimRng, duration_nanos, fold, mix64};
use crate::stats::{Counters, Traffic};

/// The latest virtual time, in nanoseconds after the epoch: about 100 years. Every scheduled
/// time saturates here, so virtual time can never overflow an `Instant`.
const MAX_TIME: u64 = 100 * 365 * 24 * 3600 * 1_000_000_000;

/// No timer pending.
const NO_TIMER: u64 = u64::MAX;

/// Domain separation of the simulator's random streams, so that (for example) turning on
/// jitter does not change which messages are lost.
const LOSS_STREAM: u64 = 0x6c6f_7373;
const JITTER_STREAM: u64 = 0x6a69_7474;
const SCENARIO_STREAM: u64 = 0x7363_656e;

/// Trace record kinds.
const T_DELIVER: u64 = 1;
const T_LOSS: u64 = 2;
const T_PARTITIONED: u64 = 3;
const T_DOWN: u64 = 4;
const T_UNKNOWN: u64 = 5;
const T_TIMEOUT: u64 = 6;
const T_CRASH: u64 = 7;
const T_RESTART: u64 = 8;
const T_PARTITION: u64 = 9;
const T_HEAL: u64 = 10;
const T_SET_LOSS: u64 = 11;
const T_INPUT: u64 = 12;
const T_ADD: u64 = 13;

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
    /// More than `u32::MAX` nodes.
    #[error("a simulation holds at most 2^32 - 1 nodes")]
    TooManyNodes,
    /// A parameter (loss rate, bandwidth, churn) is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// One queued event, ordered by time and then by the order it was scheduled in, so that
/// simultaneous events run in a reproducible order.
#[derive(Debug, Clone, Copy)]
struct Entry {
    time: u64,
    seq: u64,
    event: EventRef,
}

#[derive(Debug, Clone, Copy)]
enum EventRef {
    /// Deliver the in-flight message in this slot.
    Deliver(usize),
    /// The node's timer, valid only if `generation` still matches.
    Timer { node: u32, generation: u32 },
    /// Run the scheduled action in this slot.
    Action(usize),
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest entry.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// A message on the wire.
struct InFlight<M> {
    from: u32,
    to: u32,
    /// The receiver's incarnation when the message was sent: a crash in between loses it.
    incarnation: u32,
    bytes: u64,
    message: M,
}

/// What the simulator keeps per node besides the protocol itself: 40 bytes.
#[derive(Debug, Clone, Copy)]
struct NodeState {
    /// When the node's egress link is free again.
    egress_free_at: u64,
    /// Egress bytes per second; 0 is unlimited.
    egress_rate: u64,
    /// The earliest pending timer event, or `NO_TIMER`.
    timer_at: u64,
    timer_generation: u32,
    incarnation: u32,
    /// Partition group; messages only flow within a group.
    group: u32,
    up: bool,
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

/// Slots reused through a free list, so that the heap holds small entries.
struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Slab<T> {
    const fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    fn insert(&mut self, value: T) -> usize {
        if let Some(index) = self.free.pop()
            && let Some(slot) = self.slots.get_mut(index)
        {
            *slot = Some(value);
            return index;
        }
        self.slots.push(Some(value));
        self.slots.len() - 1
    }

    fn take(&mut self, index: usize) -> Option<T> {
        let value = self.slots.get_mut(index)?.take();
        if value.is_some() {
            self.free.push(index);
        }
        value
    }
}

/// Hashes public-key bytes for the id-to-index map. Fixed (no random state), and the map is
/// only ever looked up, never iterated, so it cannot make a run nondeterministic.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = fold(self.0, u64::from_le_bytes(word));
        }
    }
}

type IdMap = HashMap<[u8; 32], u32, BuildHasherDefault<KeyHasher>>;

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
pub struct Sim<P: Protocol> {
    config: SimConfig,
    epoch: Instant,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Entry>,
    messages: Slab<InFlight<P::Message>>,
    actions: Slab<Scheduled<P>>,
    ids: Vec<NodeId>,
    index: IdMap,
    protocols: Vec<Option<P>>,
    nodes: Vec<NodeState>,
    counters: Vec<Counters>,
    totals: Counters,
    events: Vec<(u64, u32, P::Event)>,
    factories: Vec<Factory<P>>,
    /// Transmits drained from a protocol before they are sent; kept to reuse its allocation.
    outbox: Vec<(NodeId, P::Message)>,
    loss_rng: SimRng,
    jitter_rng: SimRng,
    scenario_rng: SimRng,
    trace: u64,
    in_flight: usize,
    events_processed: u64,
}

impl<P: Protocol> Sim<P> {
    /// An empty network at virtual time zero.
    ///
    /// # Errors
    /// [`ConfigError`] if a parameter is out of range (see [`SimConfig::validate`]).
    pub fn new(config: SimConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let seed = config.seed;
        Ok(Self {
            loss_rng: SimRng::new(mix64(seed ^ LOSS_STREAM)),
            jitter_rng: SimRng::new(mix64(seed ^ JITTER_STREAM)),
            scenario_rng: SimRng::new(mix64(seed ^ SCENARIO_STREAM)),
            config,
            epoch: Instant::now(),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            messages: Slab::new(),
            actions: Slab::new(),
            ids: Vec::new(),
            index: IdMap::default(),
            protocols: Vec::new(),
            nodes: Vec::new(),
            counters: Vec::new(),
            totals: Counters::default(),
            events: Vec::new(),
            factories: Vec::new(),
            outbox: Vec::new(),
            trace: 0,
            in_flight: 0,
            events_processed: 0,
        })
    }

    /// The configuration, with the loss rate as last set.
    #[must_use]
    pub const fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The seed of this run.
    #[must_use]
    pub const fn seed(&self) -> u64 {
        self.config.seed
    }

    /// The current virtual time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.instant(self.now)
    }

    /// Virtual time elapsed since the simulation was created.
    #[must_use]
    pub const fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    /// The `Instant` that stands for virtual time zero.
    #[must_use]
    pub const fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Adds a running node, then drains its first transmits and reads its timer.
    ///
    /// Nodes added while a partition is in force join the group of unlisted nodes.
    ///
    /// # Errors
    /// [`SimError::DuplicateNode`] if `id` is already in the simulation,
    /// [`SimError::TooManyNodes`] beyond `u32::MAX` nodes.
    pub fn add_node(&mut self, id: NodeId, protocol: P) -> Result<(), SimError> {
        let node = u32::try_from(self.ids.len()).map_err(|_| SimError::TooManyNodes)?;
        match self.index.entry(*id.as_bytes()) {
            MapEntry::Occupied(_) => return Err(SimError::DuplicateNode(Box::new(id))),
            MapEntry::Vacant(slot) => {
                slot.insert(node);
            }
        }
        self.ids.push(id);
        self.protocols.push(Some(protocol));
        self.nodes.push(NodeState {
            egress_free_at: 0,
            egress_rate: self.config.bandwidth.unwrap_or(0),
            timer_at: NO_TIMER,
            timer_generation: 0,
            incarnation: 0,
            group: 0,
            up: true,
        });
        self.counters.push(Counters::default());
        self.trace_record(T_ADD, u64::from(node), 0);
        self.after_input(node);
        Ok(())
    }

    /// How many nodes were added (running or not).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no node was added.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Every node id, in the order the nodes were added.
    #[must_use]
    pub fn node_ids(&self) -> &[NodeId] {
        &self.ids
    }

    /// Whether `id` was added.
    #[must_use]
    pub fn contains(&self, id: &NodeId) -> bool {
        self.index.contains_key(id.as_bytes())
    }

    /// Whether `id` is running (false for crashed and unknown nodes).
    #[must_use]
    pub fn is_up(&self, id: &NodeId) -> bool {
        self.index_of(id)
            .ok()
            .and_then(|node| self.nodes.get(node as usize))
            .is_some_and(|state| state.up)
    }

    /// The protocol instance of a running node, to inspect its state.
    #[must_use]
    pub fn node(&self, id: &NodeId) -> Option<&P> {
        let node = self.index_of(id).ok()?;
        self.protocols.get(node as usize)?.as_ref()
    }

    /// Every node with its protocol instance (`None` while crashed), in the order added.
    pub fn nodes(&self) -> impl Iterator<Item = (&NodeId, Option<&P>)> {
        self.ids
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
        let node = self.index_of(&id)?;
        let now = self.now();
        let protocol = self
            .protocols
            .get_mut(node as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| SimError::NodeDown(Box::new(id)))?;
        let result = input(protocol, now);
        self.trace_record(T_INPUT, u64::from(node), 0);
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
        let node = self.index_of(&id)?;
        Ok(self.crash_index(node))
    }

    /// Restarts a node with a fresh instance (crashing it first if it is running), then
    /// drains the new instance's transmits and reads its timer.
    ///
    /// # Errors
    /// [`SimError::UnknownNode`].
    pub fn restart(&mut self, id: NodeId, protocol: P) -> Result<(), SimError> {
        let node = self.index_of(&id)?;
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
        let assignment = self.resolve_groups(groups.iter().map(AsRef::as_ref))?;
        self.apply_partition(&assignment);
        Ok(())
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        for state in &mut self.nodes {
            state.group = 0;
        }
        self.trace_record(T_HEAL, 0, 0);
    }

    /// Whether a message from `a` to `b` would cross a partition now.
    ///
    /// # Errors
    /// [`SimError::UnknownNode`].
    pub fn is_partitioned(&self, a: &NodeId, b: &NodeId) -> Result<bool, SimError> {
        let a = self.index_of(a)?;
        let b = self.index_of(b)?;
        Ok(self.group(a) != self.group(b))
    }

    /// Changes the loss rate for messages sent from now on.
    ///
    /// # Errors
    /// [`ConfigError::Loss`] unless `loss` is in `[0, 1]`.
    pub fn set_loss(&mut self, loss: f64) -> Result<(), ConfigError> {
        check_loss(loss)?;
        self.config.loss = loss;
        self.trace_record(T_SET_LOSS, loss.to_bits(), 0);
        Ok(())
    }

    /// Sets one node's egress bandwidth in bytes per second (`None`: unlimited), overriding
    /// [`SimConfig::bandwidth`] for it.
    ///
    /// # Errors
    /// [`SimError::UnknownNode`], or [`ConfigError::ZeroBandwidth`] for `Some(0)`.
    pub fn set_bandwidth(&mut self, id: NodeId, bandwidth: Option<u64>) -> Result<(), SimError> {
        check_bandwidth(bandwidth)?;
        let node = self.index_of(&id)?;
        if let Some(state) = self.nodes.get_mut(node as usize) {
            state.egress_rate = bandwidth.unwrap_or(0);
        }
        Ok(())
    }

    /// The base latency of the link between two nodes (the same both ways, fixed for the
    /// run; jitter comes on top).
    ///
    /// # Errors
    /// [`SimError::UnknownNode`].
    pub fn link_latency(&self, a: &NodeId, b: &NodeId) -> Result<Duration, SimError> {
        let a = self.index_of(a)?;
        let b = self.index_of(b)?;
        Ok(Duration::from_nanos(self.config.latency.link_nanos(
            self.config.seed,
            a,
            b,
        )))
    }

    /// Schedules `action` at virtual time `at` (now, if `at` has passed). Actions at the same
    /// time run in the order they were scheduled, after everything already queued for then.
    ///
    /// # Errors
    /// [`SimError::UnknownNode`] or [`SimError::PartitionOverlap`] for a bad node list,
    /// [`ConfigError::Loss`] for a bad loss rate; nothing is scheduled on error.
    pub fn schedule(&mut self, at: Instant, action: Action<P>) -> Result<(), SimError> {
        let scheduled = match action {
            Action::Crash(id) => Scheduled::Crash(self.index_of(&id)?),
            Action::Restart(id, protocol) => Scheduled::Restart(self.index_of(&id)?, protocol),
            Action::RestartWith(id, build) => Scheduled::RestartWith(self.index_of(&id)?, build),
            Action::Partition(groups) => {
                Scheduled::Partition(self.resolve_groups(groups.iter().map(Vec::as_slice))?)
            }
            Action::Heal => Scheduled::Heal,
            Action::SetLoss(loss) => {
                check_loss(loss)?;
                Scheduled::SetLoss(loss)
            }
            Action::Input(id, input) => Scheduled::Input(self.index_of(&id)?, input),
        };
        let at = self.nanos_of(at).max(self.now);
        let slot = self.actions.insert(scheduled);
        self.push(at, EventRef::Action(slot));
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
            .map(|id| self.index_of(id))
            .collect::<Result<Vec<u32>, SimError>>()?;
        excluded.sort_unstable();
        let mut eligible: Vec<u32> = (0..self.ids.len())
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
        let start = self.now.saturating_add(duration_nanos(churn.start));
        let span = duration_nanos(churn.span);
        let mut plan = Vec::with_capacity(count);
        for node in eligible {
            let Some(id) = self.id(node) else {
                continue;
            };
            let offset = if span == u64::MAX {
                self.scenario_rng.next_u64()
            } else {
                self.scenario_rng.below(span + 1)
            };
            let crash_at = start.saturating_add(offset).min(MAX_TIME);
            let slot = self.actions.insert(Scheduled::Crash(node));
            self.push(crash_at, EventRef::Action(slot));
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
                self.push(at, EventRef::Action(slot));
            }
            plan.push(ChurnEvent {
                node: id,
                crash_at: self.instant(crash_at),
                restart_at: restart_at.map(|at| self.instant(at)),
            });
        }
        Ok(plan)
    }

    /// Runs the next event, advancing the clock to it. Returns `false` if nothing is queued.
    pub fn step(&mut self) -> bool {
        let Some(entry) = self.queue.pop() else {
            return false;
        };
        self.now = self.now.max(entry.time);
        self.events_processed += 1;
        match entry.event {
            EventRef::Deliver(slot) => self.deliver(slot),
            EventRef::Timer { node, generation } => self.fire_timer(node, generation),
            EventRef::Action(slot) => self.run_action(slot),
        }
        true
    }

    /// Runs every event up to and including `deadline`, then sets the clock to `deadline`
    /// (if it is later than now).
    pub fn run_until(&mut self, deadline: Instant) {
        let target = self.nanos_of(deadline);
        self.run_to(target);
    }

    /// Runs for `duration` of virtual time.
    pub fn run_for(&mut self, duration: Duration) {
        let target = self
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
        self.run_bounded(max, |sim| sim.queue.is_empty())
    }

    /// Runs until no message is in flight, but for at most `max` of virtual time. Returns
    /// whether that happened; if not, the clock stands at `now + max`.
    pub fn run_until_quiet(&mut self, max: Duration) -> bool {
        self.run_bounded(max, |sim| sim.in_flight == 0)
    }

    /// When the next queued event is due, if any.
    #[must_use]
    pub fn next_event_at(&self) -> Option<Instant> {
        self.queue.peek().map(|entry| self.instant(entry.time))
    }

    /// How many messages are on the wire.
    #[must_use]
    pub const fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// How many events are queued (deliveries, timers, actions, including superseded timers).
    #[must_use]
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// How many events have run since the start.
    #[must_use]
    pub const fn events_processed(&self) -> u64 {
        self.events_processed
    }

    /// Takes the protocol events recorded so far, oldest first, with the time and the node
    /// that produced them. Empty if [`SimConfig::record_events`] is off.
    pub fn drain_events(&mut self) -> impl Iterator<Item = (Instant, NodeId, P::Event)> + '_ {
        let epoch = self.epoch;
        let ids = &self.ids;
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
        &self.totals
    }

    /// One node's counters: what it sent and what became of it, what it received.
    #[must_use]
    pub fn node_stats(&self, id: &NodeId) -> Option<&Counters> {
        let node = self.index_of(id).ok()?;
        self.counters.get(node as usize)
    }

    /// A digest of everything that happened so far: every delivery and drop with its time,
    /// endpoints and size, every timeout, crash, restart, partition and input. Two runs with
    /// the same digest took the same course.
    #[must_use]
    pub const fn trace_digest(&self) -> u64 {
        self.trace
    }

    /// The scenario RNG, seeded from the simulation's seed: draw from it to build topologies
    /// and workloads that are reproducible with the run. (Churn draws from it too; the network
    /// model has its own streams, so drawing here never changes which messages are lost.)
    pub const fn rng(&mut self) -> &mut SimRng {
        &mut self.scenario_rng
    }

    // ---- internals ----

    fn index_of(&self, id: &NodeId) -> Result<u32, SimError> {
        self.index
            .get(id.as_bytes())
            .copied()
            .ok_or_else(|| SimError::UnknownNode(Box::new(*id)))
    }

    /// The id of a node index (indices only come from `index`, so this is always `Some`).
    fn id(&self, node: u32) -> Option<NodeId> {
        self.ids.get(node as usize).copied()
    }

    fn group(&self, node: u32) -> u32 {
        self.nodes.get(node as usize).map_or(0, |state| state.group)
    }

    fn instant(&self, time: u64) -> Instant {
        instant_at(self.epoch, time)
    }

    fn nanos_of(&self, at: Instant) -> u64 {
        duration_nanos(at.saturating_duration_since(self.epoch)).min(MAX_TIME)
    }

    fn push(&mut self, time: u64, event: EventRef) {
        let seq = self.seq;
        self.seq += 1;
        self.queue.push(Entry {
            time: time.min(MAX_TIME),
            seq,
            event,
        });
    }

    fn run_to(&mut self, target: u64) {
        while self.queue.peek().is_some_and(|entry| entry.time <= target) {
            self.step();
        }
        self.now = self.now.max(target);
    }

    fn run_bounded(&mut self, max: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let limit = self.now.saturating_add(duration_nanos(max)).min(MAX_TIME);
        loop {
            if done(self) {
                return true;
            }
            match self.queue.peek() {
                Some(entry) if entry.time <= limit => {
                    self.step();
                }
                _ => {
                    self.now = self.now.max(limit);
                    return false;
                }
            }
        }
    }

    fn trace_record(&mut self, kind: u64, a: u64, b: u64) {
        self.trace = fold(fold(self.trace, self.now), kind << 56 ^ a << 24 ^ b);
    }

    /// Counts a message in one node's counters and in the totals.
    fn count(&mut self, node: u32, bytes: u64, field: fn(&mut Counters) -> &mut Traffic) {
        if let Some(counters) = self.counters.get_mut(node as usize) {
            field(counters).add(bytes);
        }
        field(&mut self.totals).add(bytes);
    }

    /// Drains a node's transmits and events and re-reads its timer.
    fn after_input(&mut self, node: u32) {
        let mut outbox = mem::take(&mut self.outbox);
        let Some(protocol) = self
            .protocols
            .get_mut(node as usize)
            .and_then(Option::as_mut)
        else {
            self.outbox = outbox;
            return;
        };
        while let Some(transmit) = protocol.poll_transmit() {
            outbox.push(transmit);
        }
        if self.config.record_events {
            while let Some(event) = protocol.poll_event() {
                self.events.push((self.now, node, event));
            }
        } else {
            while protocol.poll_event().is_some() {}
        }
        let deadline = protocol.poll_timeout();
        for (to, message) in outbox.drain(..) {
            self.send(node, &to, message);
        }
        self.outbox = outbox;
        if let Some(deadline) = deadline {
            self.arm_timer(node, deadline);
        }
    }

    fn send(&mut self, from: u32, to: &NodeId, message: P::Message) {
        let bytes = P::wire_size(&message) as u64;
        self.count(from, bytes, |c| &mut c.sent);
        let Some(&to) = self.index.get(to.as_bytes()) else {
            self.count(from, bytes, |c| &mut c.dropped_unknown);
            self.trace_record(T_UNKNOWN, u64::from(from), bytes);
            return;
        };
        let depart = self.egress(from, bytes);
        let (sender, receiver) = (from as usize, to as usize);
        let (Some(sender), Some(receiver)) = (self.nodes.get(sender), self.nodes.get(receiver))
        else {
            return;
        };
        let pair = u64::from(from) << 32 | u64::from(to);
        if sender.group != receiver.group {
            self.count(from, bytes, |c| &mut c.dropped_partition);
            self.trace_record(T_PARTITIONED, pair, bytes);
            return;
        }
        if !receiver.up {
            self.count(from, bytes, |c| &mut c.dropped_down);
            self.trace_record(T_DOWN, pair, bytes);
            return;
        }
        let incarnation = receiver.incarnation;
        if self.config.loss > 0.0 && self.loss_rng.chance(self.config.loss) {
            self.count(from, bytes, |c| &mut c.dropped_loss);
            self.trace_record(T_LOSS, pair, bytes);
            return;
        }
        let mut latency = self.config.latency.link_nanos(self.config.seed, from, to);
        let jitter = duration_nanos(self.config.jitter);
        if jitter > 0 {
            latency += self.jitter_rng.below(jitter + 1);
        }
        let slot = self.messages.insert(InFlight {
            from,
            to,
            incarnation,
            bytes,
            message,
        });
        self.push(depart.saturating_add(latency), EventRef::Deliver(slot));
        self.in_flight += 1;
    }

    /// Queues `bytes` on the sender's egress link; returns when they have left.
    fn egress(&mut self, from: u32, bytes: u64) -> u64 {
        let now = self.now;
        let Some(state) = self.nodes.get_mut(from as usize) else {
            return now;
        };
        if state.egress_rate == 0 {
            return now;
        }
        let start = state.egress_free_at.max(now);
        let busy = (u128::from(bytes) * 1_000_000_000).div_ceil(u128::from(state.egress_rate));
        let busy = u64::try_from(busy).unwrap_or(u64::MAX);
        state.egress_free_at = start.saturating_add(busy).min(MAX_TIME);
        state.egress_free_at
    }

    fn deliver(&mut self, slot: usize) {
        let Some(flight) = self.messages.take(slot) else {
            return;
        };
        self.in_flight -= 1;
        let InFlight {
            from,
            to,
            incarnation,
            bytes,
            message,
        } = flight;
        let pair = u64::from(from) << 32 | u64::from(to);
        let (Some(sender), Some(receiver)) =
            (self.nodes.get(from as usize), self.nodes.get(to as usize))
        else {
            return;
        };
        if sender.group != receiver.group {
            self.count(from, bytes, |c| &mut c.dropped_partition);
            self.trace_record(T_PARTITIONED, pair, bytes);
            return;
        }
        if !receiver.up || receiver.incarnation != incarnation {
            self.count(from, bytes, |c| &mut c.dropped_down);
            self.trace_record(T_DOWN, pair, bytes);
            return;
        }
        let now = self.now();
        let Some(from_id) = self.id(from) else {
            return;
        };
        let Some(protocol) = self.protocols.get_mut(to as usize).and_then(Option::as_mut) else {
            return;
        };
        protocol.handle_message(now, from_id, message);
        self.count(to, bytes, |c| &mut c.delivered);
        self.trace_record(T_DELIVER, pair, bytes);
        self.after_input(to);
    }

    /// Makes sure a timer event is queued no later than `deadline`. An earlier one that is
    /// already queued is kept: when it fires, the deadline is read again.
    fn arm_timer(&mut self, node: u32, deadline: Instant) {
        let at = self.nanos_of(deadline).max(self.now);
        let Some(state) = self.nodes.get_mut(node as usize) else {
            return;
        };
        if state.timer_at <= at {
            return;
        }
        state.timer_generation = state.timer_generation.wrapping_add(1);
        state.timer_at = at;
        let generation = state.timer_generation;
        self.push(at, EventRef::Timer { node, generation });
    }

    fn fire_timer(&mut self, node: u32, generation: u32) {
        let Some(state) = self.nodes.get_mut(node as usize) else {
            return;
        };
        if state.timer_generation != generation || !state.up {
            return;
        }
        state.timer_at = NO_TIMER;
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
            self.arm_timer(node, deadline);
            return;
        }
        protocol.handle_timeout(now);
        if let Some(counters) = self.counters.get_mut(node as usize) {
            counters.timeouts += 1;
        }
        self.totals.timeouts += 1;
        self.trace_record(T_TIMEOUT, u64::from(node), 0);
        self.after_input(node);
    }

    fn crash_index(&mut self, node: u32) -> bool {
        let Some(state) = self.nodes.get_mut(node as usize) else {
            return false;
        };
        if !state.up {
            return false;
        }
        state.up = false;
        state.incarnation = state.incarnation.wrapping_add(1);
        state.timer_generation = state.timer_generation.wrapping_add(1);
        state.timer_at = NO_TIMER;
        state.egress_free_at = 0;
        if let Some(slot) = self.protocols.get_mut(node as usize) {
            *slot = None;
        }
        self.trace_record(T_CRASH, u64::from(node), 0);
        true
    }

    fn restart_index(&mut self, node: u32, protocol: P) {
        self.crash_index(node);
        let (Some(state), Some(slot)) = (
            self.nodes.get_mut(node as usize),
            self.protocols.get_mut(node as usize),
        ) else {
            return;
        };
        state.up = true;
        *slot = Some(protocol);
        self.trace_record(T_RESTART, u64::from(node), 0);
        self.after_input(node);
    }

    fn resolve_groups<'a>(
        &self,
        groups: impl Iterator<Item = &'a [NodeId]>,
    ) -> Result<Vec<(u32, u32)>, SimError> {
        let mut assignment = Vec::new();
        for (group, members) in groups.enumerate() {
            // Group 0 is everyone not listed.
            let group = u32::try_from(group + 1).map_err(|_| SimError::TooManyNodes)?;
            for id in members {
                assignment.push((self.index_of(id)?, group, id));
            }
        }
        assignment.sort_unstable_by_key(|&(node, group, _)| (node, group));
        assignment.dedup_by_key(|&mut (node, group, _)| (node, group));
        if let Some(pair) = assignment.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(SimError::PartitionOverlap(Box::new(*pair[0].2)));
        }
        Ok(assignment
            .into_iter()
            .map(|(node, group, _)| (node, group))
            .collect())
    }

    fn apply_partition(&mut self, assignment: &[(u32, u32)]) {
        for state in &mut self.nodes {
            state.group = 0;
        }
        for &(node, group) in assignment {
            if let Some(state) = self.nodes.get_mut(node as usize) {
                state.group = group;
            }
        }
        self.trace_record(T_PARTITION, assignment.len() as u64, 0);
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
                if let Some(id) = self.id(node) {
                    let protocol = build(id, self.now());
                    self.restart_index(node, protocol);
                }
            }
            Scheduled::ChurnRestart(node, factory) => {
                let down = self.nodes.get(node as usize).is_some_and(|state| !state.up);
                let (id, now) = (self.id(node), self.now());
                if down
                    && let Some(id) = id
                    && let Some(factory) = self.factories.get_mut(factory)
                {
                    let protocol = factory(id, now);
                    self.restart_index(node, protocol);
                }
            }
            Scheduled::Partition(assignment) => self.apply_partition(&assignment),
            Scheduled::Heal => self.heal(),
            Scheduled::SetLoss(loss) => {
                self.config.loss = loss;
                self.trace_record(T_SET_LOSS, loss.to_bits(), 0);
            }
            Scheduled::Input(node, input) => {
                let now = self.now();
                if let Some(protocol) = self
                    .protocols
                    .get_mut(node as usize)
                    .and_then(Option::as_mut)
                {
                    input(protocol, now);
                    self.trace_record(T_INPUT, u64::from(node), 0);
                    self.after_input(node);
                }
            }
        }
    }
}

fn instant_at(epoch: Instant, time: u64) -> Instant {
    // `time` is at most MAX_TIME (about 100 years), which every platform's `Instant` holds.
    epoch
        .checked_add(Duration::from_nanos(time))
        .unwrap_or(epoch)
}
