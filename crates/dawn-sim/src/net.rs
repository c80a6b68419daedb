//! The network half of the simulator: clock, event queue, per-node network state, the
//! latency, loss, bandwidth and partition model, counters and the trace digest.
//!
//! It knows nothing of protocol instances, so the simulator can hand a message to the network
//! while it holds a protocol instance mutably: transmits go straight from `poll_transmit` to
//! the queue without being copied through a buffer.

use std::cmp::Ordering;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use dawn_identity::NodeId;

use crate::config::SimConfig;
use crate::rng::{SimRng, duration_nanos, fold, mix64};
use crate::sim::SimError;
use crate::stats::{Counters, Traffic};

/// The latest virtual time, in nanoseconds after the epoch: about 100 years. Every scheduled
/// time saturates here, so virtual time can never overflow an `Instant`.
pub(crate) const MAX_TIME: u64 = 100 * 365 * 24 * 3600 * 1_000_000_000;

/// No timer pending.
const NO_TIMER: u64 = u64::MAX;

/// Domain separation of the network's random streams, so that (for example) turning on
/// jitter does not change which messages are lost.
const LOSS_STREAM: u64 = 0x6c6f_7373;
const JITTER_STREAM: u64 = 0x6a69_7474;

/// Trace record kinds.
pub(crate) const T_DELIVER: u64 = 1;
const T_LOSS: u64 = 2;
const T_PARTITIONED: u64 = 3;
const T_DOWN: u64 = 4;
const T_UNKNOWN: u64 = 5;
pub(crate) const T_TIMEOUT: u64 = 6;
const T_CRASH: u64 = 7;
pub(crate) const T_RESTART: u64 = 8;
const T_PARTITION: u64 = 9;
const T_HEAL: u64 = 10;
pub(crate) const T_SET_LOSS: u64 = 11;
pub(crate) const T_INPUT: u64 = 12;
pub(crate) const T_ADD: u64 = 13;

/// What a queued entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Deliver the in-flight message in this slot.
    Deliver(usize),
    /// A node's timer, valid only if its generation still matches.
    Timer {
        /// The node index.
        node: u32,
        /// The timer generation when it was armed (30 bits).
        generation: u32,
    },
    /// Run the scheduled action in this slot.
    Action(usize),
}

const TAG_SHIFT: u32 = 62;
const TAG_DELIVER: u64 = 0;
const TAG_TIMER: u64 = 1;
const TAG_ACTION: u64 = 2;
const PAYLOAD_MASK: u64 = (1 << TAG_SHIFT) - 1;
/// Timer generations wrap at 2^30; a stale timer that matched by wrap-around would only
/// make the simulator re-read the deadline, which is harmless.
const GENERATION_MASK: u32 = (1 << 30) - 1;

impl Event {
    /// Packs the event into one word, to keep heap entries at 24 bytes.
    fn pack(self) -> u64 {
        match self {
            Self::Deliver(slot) => TAG_DELIVER << TAG_SHIFT | (slot as u64 & PAYLOAD_MASK),
            Self::Timer { node, generation } => {
                TAG_TIMER << TAG_SHIFT
                    | u64::from(generation & GENERATION_MASK) << 32
                    | u64::from(node)
            }
            Self::Action(slot) => TAG_ACTION << TAG_SHIFT | (slot as u64 & PAYLOAD_MASK),
        }
    }

    fn unpack(word: u64) -> Self {
        let payload = word & PAYLOAD_MASK;
        match word >> TAG_SHIFT {
            TAG_DELIVER => Self::Deliver(payload as usize),
            TAG_TIMER => Self::Timer {
                node: payload as u32,
                generation: (payload >> 32) as u32,
            },
            _ => Self::Action(payload as usize),
        }
    }
}

/// One queued event, ordered by time and then by the order it was queued in, so that
/// simultaneous events run in a reproducible order.
#[derive(Debug, Clone, Copy)]
struct Entry {
    time: u64,
    seq: u64,
    event: u64,
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
pub(crate) struct NodeState {
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

/// Slots reused through a free list, so that heap entries stay small.
pub(crate) struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> usize {
        if let Some(index) = self.free.pop()
            && let Some(slot) = self.slots.get_mut(index)
        {
            *slot = Some(value);
            return index;
        }
        self.slots.push(Some(value));
        self.slots.len() - 1
    }

    pub(crate) fn take(&mut self, index: usize) -> Option<T> {
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

/// A message that survived the network and reaches its receiver now.
pub(crate) struct Arrival<M> {
    pub(crate) from: u32,
    pub(crate) to: u32,
    pub(crate) message: M,
}

/// The network: everything but the protocol instances.
pub(crate) struct Net<M> {
    pub(crate) config: SimConfig,
    pub(crate) epoch: Instant,
    /// Virtual time in nanoseconds since `epoch`.
    pub(crate) now: u64,
    seq: u64,
    queue: BinaryHeap<Entry>,
    messages: Slab<InFlight<M>>,
    pub(crate) ids: Vec<NodeId>,
    index: IdMap,
    nodes: Vec<NodeState>,
    pub(crate) counters: Vec<Counters>,
    pub(crate) totals: Counters,
    loss_rng: SimRng,
    jitter_rng: SimRng,
    pub(crate) trace: u64,
    pub(crate) in_flight: usize,
}

impl<M> Net<M> {
    /// An empty network; `config` must be valid.
    pub(crate) fn new(config: SimConfig) -> Self {
        let seed = config.seed;
        Self {
            loss_rng: SimRng::new(mix64(seed ^ LOSS_STREAM)),
            jitter_rng: SimRng::new(mix64(seed ^ JITTER_STREAM)),
            config,
            epoch: Instant::now(),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            messages: Slab::new(),
            ids: Vec::new(),
            index: IdMap::default(),
            nodes: Vec::new(),
            counters: Vec::new(),
            totals: Counters::default(),
            trace: 0,
            in_flight: 0,
        }
    }

    /// Registers a running node; returns its index.
    pub(crate) fn add(&mut self, id: NodeId) -> Result<u32, SimError> {
        let node = u32::try_from(self.ids.len()).map_err(|_| SimError::TooManyNodes)?;
        match self.index.entry(*id.as_bytes()) {
            MapEntry::Occupied(_) => return Err(SimError::DuplicateNode(Box::new(id))),
            MapEntry::Vacant(slot) => {
                slot.insert(node);
            }
        }
        self.ids.push(id);
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
        Ok(node)
    }

    pub(crate) fn index_of(&self, id: &NodeId) -> Result<u32, SimError> {
        self.index
            .get(id.as_bytes())
            .copied()
            .ok_or_else(|| SimError::UnknownNode(Box::new(*id)))
    }

    /// The id of a node index (indices only come from `index`, so this is always `Some`).
    pub(crate) fn id(&self, node: u32) -> Option<NodeId> {
        self.ids.get(node as usize).copied()
    }

    pub(crate) fn is_up(&self, node: u32) -> bool {
        self.nodes.get(node as usize).is_some_and(|state| state.up)
    }

    pub(crate) fn group(&self, node: u32) -> u32 {
        self.nodes.get(node as usize).map_or(0, |state| state.group)
    }

    pub(crate) fn set_egress_rate(&mut self, node: u32, bandwidth: Option<u64>) {
        if let Some(state) = self.nodes.get_mut(node as usize) {
            state.egress_rate = bandwidth.unwrap_or(0);
        }
    }

    pub(crate) fn link_latency(&self, a: u32, b: u32) -> Duration {
        Duration::from_nanos(self.config.latency.link_nanos(self.config.seed, a, b))
    }

    pub(crate) fn instant(&self, time: u64) -> Instant {
        instant_at(self.epoch, time)
    }

    pub(crate) fn nanos_of(&self, at: Instant) -> u64 {
        duration_nanos(at.saturating_duration_since(self.epoch)).min(MAX_TIME)
    }

    pub(crate) fn push(&mut self, time: u64, event: Event) {
        let seq = self.seq;
        self.seq += 1;
        self.queue.push(Entry {
            time: time.min(MAX_TIME),
            seq,
            event: event.pack(),
        });
    }

    /// Takes the earliest event and advances the clock to it.
    pub(crate) fn pop(&mut self) -> Option<Event> {
        let entry = self.queue.pop()?;
        self.now = self.now.max(entry.time);
        Some(Event::unpack(entry.event))
    }

    pub(crate) fn next_time(&self) -> Option<u64> {
        self.queue.peek().map(|entry| entry.time)
    }

    pub(crate) fn pending(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn trace_record(&mut self, kind: u64, a: u64, b: u64) {
        self.trace = fold(fold(self.trace, self.now), kind << 56 ^ a << 24 ^ b);
    }

    /// Counts a message in one node's counters and in the totals.
    fn count(&mut self, node: u32, bytes: u64, field: fn(&mut Counters) -> &mut Traffic) {
        if let Some(counters) = self.counters.get_mut(node as usize) {
            field(counters).add(bytes);
        }
        field(&mut self.totals).add(bytes);
    }

    /// Puts a message from node `from` on the wire, or drops and counts it.
    pub(crate) fn send(&mut self, from: u32, to: &NodeId, bytes: u64, message: M) {
        self.count(from, bytes, |c| &mut c.sent);
        let Some(&to) = self.index.get(to.as_bytes()) else {
            self.count(from, bytes, |c| &mut c.dropped_unknown);
            self.trace_record(T_UNKNOWN, u64::from(from), bytes);
            return;
        };
        let depart = self.egress(from, bytes);
        let (Some(sender), Some(receiver)) =
            (self.nodes.get(from as usize), self.nodes.get(to as usize))
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
        self.push(depart.saturating_add(latency), Event::Deliver(slot));
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

    /// Takes the message in `slot` off the wire: `Some` if its receiver gets it now (counted
    /// as delivered), `None` if it is dropped (counted) or was already taken.
    pub(crate) fn arrive(&mut self, slot: usize) -> Option<Arrival<M>> {
        let flight = self.messages.take(slot)?;
        self.in_flight -= 1;
        let InFlight {
            from,
            to,
            incarnation,
            bytes,
            message,
        } = flight;
        let pair = u64::from(from) << 32 | u64::from(to);
        let sender = self.nodes.get(from as usize)?;
        let receiver = self.nodes.get(to as usize)?;
        if sender.group != receiver.group {
            self.count(from, bytes, |c| &mut c.dropped_partition);
            self.trace_record(T_PARTITIONED, pair, bytes);
            return None;
        }
        if !receiver.up || receiver.incarnation != incarnation {
            self.count(from, bytes, |c| &mut c.dropped_down);
            self.trace_record(T_DOWN, pair, bytes);
            return None;
        }
        self.count(to, bytes, |c| &mut c.delivered);
        self.trace_record(T_DELIVER, pair, bytes);
        Some(Arrival { from, to, message })
    }

    /// Makes sure a timer event is queued no later than `at`. An earlier one that is already
    /// queued is kept: when it fires, the deadline is read again.
    pub(crate) fn arm_timer(&mut self, node: u32, at: u64) {
        let at = at.max(self.now);
        let Some(state) = self.nodes.get_mut(node as usize) else {
            return;
        };
        if state.timer_at <= at {
            return;
        }
        state.timer_generation = state.timer_generation.wrapping_add(1) & GENERATION_MASK;
        state.timer_at = at;
        let generation = state.timer_generation;
        self.push(at, Event::Timer { node, generation });
    }

    /// Whether a popped timer event is current (the node is up and has not re-armed or
    /// crashed since); if so, the node has no timer queued any more.
    pub(crate) fn timer_due(&mut self, node: u32, generation: u32) -> bool {
        let Some(state) = self.nodes.get_mut(node as usize) else {
            return false;
        };
        if state.timer_generation != generation || !state.up {
            return false;
        }
        state.timer_at = NO_TIMER;
        true
    }

    /// Marks a node down; returns whether it was up. Its messages in flight will be lost.
    pub(crate) fn crash(&mut self, node: u32) -> bool {
        let Some(state) = self.nodes.get_mut(node as usize) else {
            return false;
        };
        if !state.up {
            return false;
        }
        state.up = false;
        state.incarnation = state.incarnation.wrapping_add(1);
        state.timer_generation = state.timer_generation.wrapping_add(1) & GENERATION_MASK;
        state.timer_at = NO_TIMER;
        state.egress_free_at = 0;
        self.trace_record(T_CRASH, u64::from(node), 0);
        true
    }

    /// Marks a crashed node up again.
    pub(crate) fn revive(&mut self, node: u32) {
        if let Some(state) = self.nodes.get_mut(node as usize) {
            state.up = true;
        }
        self.trace_record(T_RESTART, u64::from(node), 0);
    }

    /// Resolves partition groups to `(node, group)` pairs, group 0 being the unlisted nodes.
    pub(crate) fn resolve_groups<'a>(
        &self,
        groups: impl Iterator<Item = &'a [NodeId]>,
    ) -> Result<Vec<(u32, u32)>, SimError> {
        let mut assignment = Vec::new();
        for (group, members) in groups.enumerate() {
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

    pub(crate) fn apply_partition(&mut self, assignment: &[(u32, u32)]) {
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

    pub(crate) fn heal(&mut self) {
        for state in &mut self.nodes {
            state.group = 0;
        }
        self.trace_record(T_HEAL, 0, 0);
    }
}

pub(crate) fn instant_at(epoch: Instant, time: u64) -> Instant {
    // `time` is at most MAX_TIME (about 100 years), which every platform's `Instant` holds.
    epoch
        .checked_add(Duration::from_nanos(time))
        .unwrap_or(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pack_and_unpack() {
        for event in [
            Event::Deliver(0),
            Event::Deliver(123_456_789),
            Event::Action(7),
            Event::Timer {
                node: u32::MAX,
                generation: GENERATION_MASK,
            },
            Event::Timer {
                node: 5,
                generation: 0,
            },
        ] {
            assert_eq!(Event::unpack(event.pack()), event);
        }
        assert_eq!(size_of::<Entry>(), 24);
        assert_eq!(size_of::<NodeState>(), 40);
    }

    #[test]
    fn the_queue_orders_by_time_then_insertion() {
        let mut net: Net<()> = Net::new(SimConfig::default());
        net.push(20, Event::Action(1));
        net.push(10, Event::Action(2));
        net.push(20, Event::Action(3));
        net.push(10, Event::Action(4));
        let order: Vec<Event> = std::iter::from_fn(|| net.pop()).collect();
        assert_eq!(
            order,
            [2, 4, 1, 3].map(Event::Action).to_vec(),
            "ties break by insertion order"
        );
        assert_eq!(net.now, 20);
    }
}
