//! The registry core: local changes, deltas, reconciliation and expiry, driven sans-IO.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dawn_crypto::{Signature, SigningKey, VerifyingKey, verify_batch};
use dawn_identity::{AgentAddr, AgentId, NodeId, NodeIdError};
use tracing::{debug, trace};

use crate::config::{ConfigError, RegistryConfig};
use crate::event::{Event, MisbehaviourKind, Stats, Transmit};
use crate::manifest::{EntryHash, LiveDot, Manifest, ManifestError, Resolve, entry_hash};
use crate::memo::VerifyMemo;
use crate::message::{
    DecodeError, MAX_NEEDS, MAX_RANGES, MessageKind, Mode, Need, Reconcile, RegistryMessage, Update,
};
use crate::reconcile::{compare, entries_for, fingerprint, full_range, item, owners_in, split};
use crate::record::{AgentRecord, RecordError};
use crate::rng::Rng;
use crate::state::{Directory, Key, Limits, ManifestOutcome};

mod persist;

pub use self::persist::{MAX_STATE_LEN, STATE_FORMAT_VERSION, StateError};

/// Spread of the jitter on periodic work (±25 %).
const JITTER: f64 = 0.25;

/// Sequence numbers reserved per millisecond of start time, as in
/// [`dawn_wire::Sequencer`]: a node that restarts without its state starts its counter above
/// every value it used before, unless it made more than 1024 changes per millisecond.
const COUNTER_PER_MS: u64 = 1 << 10;

/// A local change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The record breaks a bound.
    #[error("invalid record: {0}")]
    Record(#[from] RecordError),
    /// This node already lists `max_agents_per_owner` agents.
    #[error("this node already lists the maximum of {max} agents")]
    TooManyAgents {
        /// The configured maximum.
        max: usize,
    },
    /// The manifest could not be signed (it does not happen for a valid configuration).
    #[error("cannot sign the manifest: {0}")]
    Manifest(#[from] ManifestError),
}

/// A message from a peer was refused, in whole or in part. The valid parts of a message
/// (other owners' updates in the same batch) are still applied; every refusal is also
/// reported as [`Event::Misbehaviour`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The bytes are not a valid registry message.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// A delta about another node's agents: deltas are only accepted from their owner.
    #[error("delta about another node's agents")]
    NotOwner,
    /// A manifest's signature does not verify.
    #[error("manifest with an invalid signature")]
    InvalidSignature,
    /// An entry does not match the hash its manifest lists.
    #[error("entry that does not match its manifest")]
    InvalidEntry,
}

/// What [`Registry::import_state`] restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Owners whose manifest was adopted (new, or newer than the one held).
    pub owners: usize,
    /// Entries stored.
    pub entries: usize,
    /// Owners skipped because their manifest had expired.
    pub expired: usize,
    /// Owners skipped because their signature did not verify, their entries did not match,
    /// or they break this node's limits.
    pub rejected: usize,
}

/// One of this node's own agents.
#[derive(Debug, Clone)]
struct LocalEntry {
    dot: u64,
    bytes: Bytes,
    hash: EntryHash,
}

/// What [`Registry::apply`] did with a batch of updates.
#[derive(Debug, Clone, Copy, Default)]
struct Applied {
    adopted: usize,
    stored: usize,
    expired: usize,
    rejected: usize,
}

/// Where updates came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A broadcast delta from its owner.
    Broadcast,
    /// Reconciliation with a peer.
    Reconcile,
    /// The node's own stored state.
    Import,
}

/// The agent registry of one node: a signed, delta-state CRDT directory of every node's
/// agents, kept in sync by broadcast deltas and digest reconciliation, as a deterministic
/// state machine without I/O.
///
/// # Driving it
///
/// The driver (the node's registry actor, or a simulator):
///
/// 1. feeds inputs: the application's [`upsert_local`](Self::upsert_local) and
///    [`remove_local`](Self::remove_local); [`handle_message`](Self::handle_message) for every
///    payload received on the registry gossip topic (with the gossip origin as `from`) or
///    stream protocol (with the peer as `from`); [`peer_up`](Self::peer_up) and
///    [`peer_down`](Self::peer_down) as connections come and go; and
///    [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout);
/// 2. after **every** input, drains [`poll_transmit`](Self::poll_transmit) and
///    [`poll_event`](Self::poll_event) until they return `None`, and re-arms its timer.
///
/// Time enters only as `now` (and the wall clock once, at construction), randomness only
/// from the seed, so the same inputs give the same outputs.
///
/// # Memory
///
/// At most `max_owners` owners, `max_agents_per_owner` agents each, every record at most
/// [`MAX_RECORD_LEN`](crate::MAX_RECORD_LEN) bytes and `max_total_bytes` in all; the output
/// queues are bounded too ([`RegistryConfig`]).
///
/// # Cloning
///
/// A clone is an independent copy of the whole state (records and manifests are shared
/// immutable bytes, so it is cheap), for tests and benchmarks that fork a run. Both copies
/// hold the same key: never let two of them publish, or the owner equivocates.
#[derive(Clone)]
pub struct Registry {
    me: NodeId,
    key: SigningKey,
    config: RegistryConfig,
    rng: Rng,
    epoch: Instant,
    epoch_unix_ms: u64,
    dir: Directory,
    memo: Option<VerifyMemo>,

    // This node as an owner.
    counter: u64,
    local: BTreeMap<AgentId, LocalEntry>,
    next_refresh: Option<Instant>,

    // Reconciliation.
    peers: BTreeSet<NodeId>,
    next_round: Option<Instant>,
    burst: Option<(Instant, Option<NodeId>)>,

    // Expiry: `(issued_ms, owner)` of every owner's manifest.
    expiry: BTreeSet<(u64, Key)>,

    // Output.
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    changed: BTreeSet<NodeId>,
    stats: Stats,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("me", &self.me)
            .field("owners", &self.dir.owners().len())
            .field("agents", &self.dir.agent_count())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry for the node whose key is `key`.
    ///
    /// `seed` drives every random choice (a fresh random value in production, a fixed one in
    /// tests). `now` and `unix_ms` anchor the clock: `unix_ms` is the wall time, in
    /// milliseconds since the Unix epoch, at the instant `now`; manifest timestamps and
    /// expiry are computed from them and later `now` values.
    ///
    /// # Errors
    /// [`ConfigError`] if `config` does not [validate](RegistryConfig::validate).
    pub fn new(
        key: SigningKey,
        config: RegistryConfig,
        seed: u64,
        now: Instant,
        unix_ms: u64,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            me: NodeId::from(key.verifying_key()),
            key,
            config,
            rng: Rng::new(seed),
            epoch: now,
            epoch_unix_ms: unix_ms,
            dir: Directory::default(),
            memo: None,
            counter: unix_ms.saturating_mul(COUNTER_PER_MS),
            local: BTreeMap::new(),
            next_refresh: None,
            peers: BTreeSet::new(),
            next_round: None,
            burst: None,
            expiry: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            changed: BTreeSet::new(),
            stats: Stats::default(),
        })
    }

    /// Shares `memo` of verified manifests with other registries of this process (see
    /// [`VerifyMemo`]: for simulations; it changes no outcome).
    #[must_use]
    pub fn with_verify_memo(mut self, memo: VerifyMemo) -> Self {
        self.memo = Some(memo);
        self
    }

    /// This node's id.
    #[must_use]
    pub const fn node_id(&self) -> &NodeId {
        &self.me
    }

    /// The configuration in force.
    #[must_use]
    pub const fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Counters since construction.
    #[must_use]
    pub const fn stats(&self) -> &Stats {
        &self.stats
    }

    // ------------------------------------------------------------------------ reading

    /// Every visible agent with its owner, by owner then agent id.
    pub fn agents(&self) -> impl Iterator<Item = (NodeId, &AgentRecord)> {
        self.dir
            .owners()
            .values()
            .flat_map(|state| state.agents().map(|record| (*state.owner(), record)))
    }

    /// The visible agents of `owner`, by agent id.
    pub fn agents_of(&self, owner: &NodeId) -> impl Iterator<Item = &AgentRecord> {
        self.dir
            .get(owner.as_bytes())
            .into_iter()
            .flat_map(|state| state.agents())
    }

    /// Every owner held (including owners whose agents have all been removed, until they
    /// expire), in id order.
    pub fn owners(&self) -> impl Iterator<Item = NodeId> {
        self.dir.owners().values().map(|state| *state.owner())
    }

    /// The agent at `addr`, if visible.
    #[must_use]
    pub fn get(&self, addr: &AgentAddr) -> Option<&AgentRecord> {
        self.dir.get(addr.node().as_bytes())?.agent(addr.agent())
    }

    /// How many agents are visible.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.dir.agent_count()
    }

    /// Whether no agent is visible.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.dir.agent_count() == 0
    }

    /// How many owners are held.
    #[must_use]
    pub fn owner_count(&self) -> usize {
        self.dir.owners().len()
    }

    /// Bytes of manifests and records held, the figure `max_total_bytes` bounds.
    #[must_use]
    pub const fn held_bytes(&self) -> usize {
        self.dir.total_bytes()
    }

    /// A 32-byte digest of the whole replicated state (every owner's manifest and which of
    /// its entries are missing). Two registries with equal digests hold the same directory;
    /// computed incrementally, so it is cheap to compare across a whole simulation.
    #[must_use]
    pub fn state_digest(&self) -> [u8; 32] {
        let (count, sum) = self.dir.fingerprint();
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(&sum.to_le_bytes());
        out[16..24].copy_from_slice(&(count as u64).to_le_bytes());
        out
    }

    // ------------------------------------------------------------------------ local changes

    /// Adds this node's agent `record`, or replaces the record of the agent with the same id.
    /// The change is visible at once and broadcast (drain
    /// [`poll_transmit`](Self::poll_transmit)). A record identical to the one held changes
    /// nothing.
    ///
    /// # Errors
    /// [`RegistryError::Record`] if the record breaks a bound,
    /// [`RegistryError::TooManyAgents`] if this node already lists `max_agents_per_owner`
    /// other agents.
    pub fn upsert_local(&mut self, now: Instant, record: AgentRecord) -> Result<(), RegistryError> {
        let bytes = Bytes::from(record.encode()?);
        match self.local.get(&record.agent_id) {
            Some(held) if held.bytes == bytes => return Ok(()),
            Some(_) => {}
            None if self.local.len() >= self.config.max_agents_per_owner => {
                return Err(RegistryError::TooManyAgents {
                    max: self.config.max_agents_per_owner,
                });
            }
            None => {}
        }
        self.counter = self.counter.saturating_add(1);
        let dot = self.counter;
        let hash = entry_hash(&self.me, dot, &bytes);
        self.local.insert(
            record.agent_id,
            LocalEntry {
                dot,
                bytes: bytes.clone(),
                hash,
            },
        );
        self.publish(now, &[(dot, bytes)])?;
        Ok(())
    }

    /// Removes this node's agent `agent`. Returns whether it was listed; the removal is
    /// visible at once and broadcast.
    ///
    /// # Errors
    /// [`RegistryError::Manifest`] if the manifest cannot be signed (it does not happen).
    pub fn remove_local(&mut self, now: Instant, agent: &AgentId) -> Result<bool, RegistryError> {
        if self.local.remove(agent).is_none() {
            return Ok(false);
        }
        self.counter = self.counter.saturating_add(1);
        self.publish(now, &[])?;
        Ok(true)
    }

    /// This node's own agents, by id.
    pub fn local_agents(&self) -> impl Iterator<Item = &AgentRecord> {
        self.agents_of(&self.me)
    }

    /// Signs a manifest of the local agents at the current counter, merges it and broadcasts
    /// it with `new_entries`.
    fn publish(&mut self, now: Instant, new_entries: &[(u64, Bytes)]) -> Result<(), ManifestError> {
        let mut live: Vec<LiveDot> = self
            .local
            .values()
            .map(|e| LiveDot {
                dot: e.dot,
                hash: e.hash,
            })
            .collect();
        live.sort_unstable_by_key(|l| l.dot);
        let issued_ms = self.unix_ms(now);
        let manifest = Manifest::sign(&self.key, self.counter, issued_ms, live)?;
        let all: Vec<(u64, Bytes)> = self
            .local
            .values()
            .map(|e| (e.dot, e.bytes.clone()))
            .collect();
        let own = Limits::UNLIMITED;
        let outcome = self.dir.merge(manifest.clone(), &all, true, own);
        let old_issued = match outcome.manifest {
            ManifestOutcome::Replaced => outcome.replaced_issued_ms,
            _ => None,
        };
        self.reindex_expiry(*self.me.as_bytes(), old_issued, Some(issued_ms));
        if outcome.changed {
            self.changed.insert(self.me);
        }
        let update = Update {
            manifest,
            entries: new_entries.to_vec(),
        };
        for part in pack(vec![update], self.config.max_message_len, usize::MAX) {
            for u in part {
                if let Ok(bytes) = RegistryMessage::Delta(Box::new(u)).encode() {
                    self.stats.deltas_sent = self.stats.deltas_sent.saturating_add(1);
                    self.queue(Transmit::Broadcast {
                        payload: Bytes::from(bytes),
                    });
                }
            }
        }
        self.next_refresh = if self.local.is_empty() {
            None
        } else {
            Some(now + self.config.refresh_interval)
        };
        Ok(())
    }

    // ------------------------------------------------------------------------ network

    /// A peer that speaks the registry protocol is connected: it becomes a reconciliation
    /// partner, and a reconciliation with it starts now (cheap if in sync: a node back from a
    /// partition fetches only what it lacks).
    pub fn peer_up(&mut self, now: Instant, peer: NodeId) {
        if peer == self.me {
            return;
        }
        self.peers.insert(peer);
        self.start_round(peer);
        if self.next_round.is_none() {
            self.next_round = Some(now + self.rng.jitter(self.config.reconcile_interval, JITTER));
        }
    }

    /// A peer went away: no more reconciliation with it.
    pub fn peer_down(&mut self, peer: &NodeId) {
        self.peers.remove(peer);
        if self.peers.is_empty() {
            self.next_round = None;
            self.burst = None;
        }
    }

    /// The reconciliation partners, in id order.
    pub fn peers(&self) -> impl Iterator<Item = &NodeId> {
        self.peers.iter()
    }

    /// Handles a registry message from `from`: the gossip origin for a payload received on
    /// [`GOSSIP_TOPIC`](crate::GOSSIP_TOPIC), the peer for one received on
    /// [`STREAM_PROTOCOL`](crate::STREAM_PROTOCOL). Then drain the `poll_*` methods.
    ///
    /// Bytes are decoded within bounds; nothing panics on any input.
    ///
    /// # Errors
    /// [`MessageError`] for the first thing refused. Valid parts of the message are applied
    /// all the same, and every refusal is also an [`Event::Misbehaviour`].
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: NodeId,
        bytes: &[u8],
    ) -> Result<(), MessageError> {
        self.handle_bytes(now, from, &Bytes::copy_from_slice(bytes))
    }

    /// As [`handle_message`](Self::handle_message), for a driver that holds the payload as
    /// [`Bytes`]: small messages are then stored without copying (every registry of a
    /// simulation that receives one broadcast shares its bytes).
    ///
    /// # Errors
    /// As [`handle_message`](Self::handle_message).
    pub fn handle_bytes(
        &mut self,
        now: Instant,
        from: NodeId,
        bytes: &Bytes,
    ) -> Result<(), MessageError> {
        self.stats.messages_received = self.stats.messages_received.saturating_add(1);
        if from == self.me {
            return Ok(());
        }
        let mut resolver = Resolver {
            dir: &self.dir,
            memo: self.memo.as_ref(),
        };
        let message = match RegistryMessage::decode_bytes(bytes, &mut resolver) {
            Ok(message) => message,
            Err(error) => {
                debug!(peer = %from.fmt_short(), %error, "registry: malformed message");
                self.misbehaviour(from, MisbehaviourKind::Malformed);
                return Err(MessageError::Decode(error));
            }
        };
        match message {
            RegistryMessage::Delta(update) => {
                if *update.manifest.owner() != from {
                    self.misbehaviour(from, MisbehaviourKind::NotOwner);
                    return Err(MessageError::NotOwner);
                }
                let (_, error) = self.apply(now, from, vec![*update], Source::Broadcast);
                error.map_or(Ok(()), Err)
            }
            RegistryMessage::Updates(updates) => {
                let (_, error) = self.apply(now, from, updates, Source::Reconcile);
                error.map_or(Ok(()), Err)
            }
            RegistryMessage::Reconcile(reconcile) => {
                self.answer(from, reconcile);
                Ok(())
            }
        }
    }

    /// Verifies and merges owner updates from `from`. Returns what happened and the first
    /// thing refused as `from`'s misbehaviour.
    fn apply(
        &mut self,
        now: Instant,
        from: NodeId,
        updates: Vec<Update>,
        source: Source,
    ) -> (Applied, Option<MessageError>) {
        let mut applied = Applied::default();
        let now_ms = self.unix_ms(now);
        let ttl = duration_ms(self.config.owner_ttl);
        let skew = duration_ms(self.config.max_clock_skew);
        let mut first_error = None;
        let mut note = |e: MessageError| {
            if first_error.is_none() {
                first_error = Some(e);
            }
        };

        // Sort out what is worth verifying.
        let mut candidates = Vec::with_capacity(updates.len());
        for update in updates {
            let owner = *update.manifest.owner();
            let issued = update.manifest.issued_ms();
            if issued.saturating_add(ttl) <= now_ms && owner != self.me {
                self.stats.expired_ignored = self.stats.expired_ignored.saturating_add(1);
                applied.expired += 1;
                continue;
            }
            if issued > now_ms.saturating_add(skew) {
                applied.rejected += 1;
                if self.verified(&update.manifest) {
                    self.misbehaviour(owner, MisbehaviourKind::Future);
                } else {
                    if source != Source::Import {
                        self.misbehaviour(from, MisbehaviourKind::InvalidSignature);
                    }
                    note(MessageError::InvalidSignature);
                }
                continue;
            }
            let held = self.dir.get(owner.as_bytes()).map(|s| s.manifest());
            let same = held.is_some_and(|h| h.id() == update.manifest.id());
            let adoptable = if owner == self.me {
                !same && update.manifest.version() >= self.counter
            } else {
                held.is_none_or(|h| !same && update.manifest.supersedes(h))
            };
            if owner == self.me && !adoptable {
                continue;
            }
            candidates.push((update, adoptable, same));
        }

        let manifests: Vec<Option<&Manifest>> = candidates
            .iter()
            .map(|(update, adoptable, _)| adoptable.then_some(&update.manifest))
            .collect();
        let valid = self.verify_manifests(&manifests);

        let mut learned = false;
        for (i, (mut update, adoptable, same)) in candidates.into_iter().enumerate() {
            let owner = *update.manifest.owner();
            if valid.get(i) == Some(&false) {
                debug!(peer = %from.fmt_short(), owner = %owner.fmt_short(), "registry: bad manifest signature");
                applied.rejected += 1;
                if source != Source::Import {
                    self.misbehaviour(from, MisbehaviourKind::InvalidSignature);
                }
                note(MessageError::InvalidSignature);
                continue;
            }
            if owner == self.me {
                self.self_heal(now, &update.manifest);
                continue;
            }
            // The manifest is authentic: check that the entries sent with it are the ones
            // it lists.
            if adoptable || same {
                let before = update.entries.len();
                update.entries.retain(|(dot, bytes)| {
                    update.manifest.hash_of(*dot) == Some(&entry_hash(&owner, *dot, bytes))
                });
                if update.entries.len() != before {
                    if source != Source::Import {
                        self.misbehaviour(from, MisbehaviourKind::InvalidEntry);
                    }
                    note(MessageError::InvalidEntry);
                }
                if update.manifest.live().len() > self.config.max_agents_per_owner {
                    applied.rejected += 1;
                    self.misbehaviour(owner, MisbehaviourKind::OverLimit);
                    continue;
                }
            }
            let issued = update.manifest.issued_ms();
            // Entries sent with an authentic manifest were checked against it just above.
            let checked = adoptable || same;
            let outcome = self
                .dir
                .merge(update.manifest, &update.entries, checked, self.limits());
            match outcome.manifest {
                ManifestOutcome::New | ManifestOutcome::Replaced => {
                    applied.adopted += 1;
                    learned = true;
                    self.stats.manifests_adopted = self.stats.manifests_adopted.saturating_add(1);
                    self.reindex_expiry(
                        *owner.as_bytes(),
                        outcome.replaced_issued_ms,
                        Some(issued),
                    );
                }
                ManifestOutcome::RefusedOwner => {
                    applied.rejected += 1;
                    self.stats.refused_owners = self.stats.refused_owners.saturating_add(1);
                }
                ManifestOutcome::Same | ManifestOutcome::Older => {}
            }
            if outcome.equivocation {
                self.misbehaviour(owner, MisbehaviourKind::Equivocation);
            }
            if outcome.invalid > 0 {
                self.misbehaviour(owner, MisbehaviourKind::InvalidRecord);
            }
            if outcome.stored > 0 {
                learned = true;
                applied.stored += outcome.stored;
            }
            self.stats.entries_stored = self
                .stats
                .entries_stored
                .saturating_add(outcome.stored as u64);
            self.stats.refused_entries = self
                .stats
                .refused_entries
                .saturating_add(outcome.refused as u64);
            if outcome.changed {
                self.changed.insert(owner);
            }
            let incomplete = outcome.missing > 0;
            if incomplete && source != Source::Import {
                // Fetch what a missed delta carried without waiting for the next round.
                self.schedule_burst(now, None);
            }
        }
        if learned && source == Source::Reconcile {
            // News from a peer is likely news to others: pass it on quickly.
            self.schedule_burst(now, Some(from));
        }
        trace!(
            peer = %from.fmt_short(),
            adopted = applied.adopted,
            stored = applied.stored,
            "registry: applied updates"
        );
        (applied, first_error)
    }

    /// A manifest of this node signed by an earlier incarnation (that lost its state) is at
    /// or above the counter: move past it and publish the current state over it.
    fn self_heal(&mut self, now: Instant, manifest: &Manifest) {
        let held = self.dir.get(self.me.as_bytes()).map(|s| *s.manifest().id());
        if held.as_ref() == Some(manifest.id()) || manifest.version() < self.counter {
            return;
        }
        self.stats.self_heals = self.stats.self_heals.saturating_add(1);
        self.counter = manifest.version().saturating_add(1);
        let all: Vec<(u64, Bytes)> = self
            .local
            .values()
            .map(|e| (e.dot, e.bytes.clone()))
            .collect();
        if self.publish(now, &all).is_err() {
            debug!("registry: cannot re-sign the manifest");
        }
    }

    /// Checks the signatures of the manifests given (`None`: nothing to check, counts as
    /// valid) in one batch, skipping those the memo knows. `true` for each valid one.
    fn verify_manifests(&mut self, manifests: &[Option<&Manifest>]) -> Vec<bool> {
        let to_verify: Vec<usize> = manifests
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_some_and(|m| !self.memo_has(m)))
            .map(|(i, _)| i)
            .collect();
        let mut valid = vec![true; manifests.len()];
        if to_verify.is_empty() {
            return valid;
        }
        // Rebuilding what was signed cannot fail for a manifest that decoded; if it did, the
        // manifest is invalid.
        let mut checked = Vec::with_capacity(to_verify.len());
        let mut parts = Vec::with_capacity(to_verify.len());
        for &i in &to_verify {
            let manifest = manifests.get(i).copied().flatten();
            match manifest.map(|m| (m, m.signed_parts())) {
                Some((m, Ok((input, signature)))) => {
                    checked.push(i);
                    parts.push((input, signature, m.owner().verifying_key()));
                }
                _ => {
                    if let Some(slot) = valid.get_mut(i) {
                        *slot = false;
                    }
                }
            }
        }
        self.stats.signatures_verified = self
            .stats
            .signatures_verified
            .saturating_add(parts.len() as u64);
        let items: Vec<(&[u8], &Signature, &VerifyingKey)> = parts
            .iter()
            .map(|(input, signature, key)| (input.as_slice(), signature, *key))
            .collect();
        if let Err(error) = verify_batch(&items) {
            for &j in error.invalid() {
                if let Some(slot) = checked.get(j).and_then(|&i| valid.get_mut(i)) {
                    *slot = false;
                }
            }
        }
        if let Some(memo) = &self.memo {
            for &i in &to_verify {
                if valid.get(i) == Some(&true)
                    && let Some(m) = manifests.get(i).copied().flatten()
                {
                    memo.insert(VerifyMemo::key(m));
                }
            }
        }
        valid
    }

    fn verified(&self, manifest: &Manifest) -> bool {
        self.memo_has(manifest) || manifest.verify()
    }

    fn memo_has(&self, manifest: &Manifest) -> bool {
        self.memo
            .as_ref()
            .is_some_and(|memo| memo.contains(&VerifyMemo::key(manifest)))
    }

    const fn limits(&self) -> Limits {
        Limits {
            max_owners: self.config.max_owners,
            max_total_bytes: self.config.max_total_bytes,
        }
    }

    /// Answers one reconciliation step from `from`.
    fn answer(&mut self, from: NodeId, reconcile: Reconcile) {
        if reconcile.round >= self.config.max_rounds {
            self.stats.rounds_exceeded = self.stats.rounds_exceeded.saturating_add(1);
            return;
        }
        let leaf = self.config.reconcile_leaf;
        let fanout = self.config.reconcile_fanout;
        let budget = self.config.max_message_len;
        let mut ranges = Vec::new();
        let mut size = 16;
        let mut needs: Vec<Need> = Vec::new();
        let mut pushes = Vec::new();
        for (range, mode) in reconcile.ranges {
            match mode {
                Mode::Fingerprint { count, sum } => {
                    let (ours, our_sum) = fingerprint(&self.dir, &range);
                    if ours == count && our_sum == sum {
                        continue;
                    }
                    let answer = if count == 0 {
                        pushes.extend(owners_in(&self.dir, &range).map(|(key, _)| {
                            crate::reconcile::Push {
                                owner: *key,
                                version: None,
                                missing: Vec::new(),
                            }
                        }));
                        continue;
                    } else if (ours as usize) <= leaf {
                        let items = owners_in(&self.dir, &range)
                            .map(|(key, state)| item(key, state))
                            .collect();
                        vec![(range, Mode::Items(items))]
                    } else {
                        split(&self.dir, &range, fanout)
                    };
                    for (range, mode) in answer {
                        let len = range_len(&range, &mode);
                        if size + len > budget || ranges.len() >= MAX_RANGES {
                            break;
                        }
                        size += len;
                        ranges.push((range, mode));
                    }
                }
                Mode::Items(theirs) => {
                    let comparison = compare(&self.dir, &range, &theirs);
                    pushes.extend(comparison.pushes);
                    needs.extend(comparison.needs);
                }
            }
        }
        for need in reconcile.needs {
            if let Some(state) = self.dir.get(&need.owner) {
                let ours = state.manifest().version();
                if need.version.is_some_and(|v| v > ours) {
                    continue;
                }
                pushes.push(crate::reconcile::Push {
                    owner: need.owner,
                    version: need.version,
                    missing: need.missing,
                });
            }
        }
        self.push(from, pushes);
        needs.truncate(MAX_NEEDS);
        while !needs.is_empty() && size + needs.len() * 48 > budget {
            needs.pop();
        }
        if !ranges.is_empty() || !needs.is_empty() {
            let message = RegistryMessage::Reconcile(Reconcile {
                round: reconcile.round.saturating_add(1),
                ranges,
                needs,
            });
            self.send(from, &message);
        }
    }

    /// Sends `from` the updates it lacks, within `max_push_bytes`.
    fn push(&mut self, to: NodeId, pushes: Vec<crate::reconcile::Push>) {
        if pushes.is_empty() {
            return;
        }
        let mut updates = Vec::with_capacity(pushes.len());
        let mut total = 0usize;
        for push in pushes {
            let Some(state) = self.dir.get(&push.owner) else {
                continue;
            };
            let dots = entries_for(state, push.version, &push.missing);
            if dots.is_empty() && push.version == Some(state.manifest().version()) {
                continue;
            }
            let entries: Vec<(u64, Bytes)> = dots
                .into_iter()
                .filter_map(|dot| Some((dot, state.slot(dot)?.bytes.clone())))
                .collect();
            let update = Update {
                manifest: state.manifest().clone(),
                entries,
            };
            total += update.approx_len();
            updates.push(update);
            if total >= self.config.max_push_bytes {
                break;
            }
        }
        for part in pack(
            updates,
            self.config.max_message_len,
            self.config.max_push_bytes,
        ) {
            self.send(to, &RegistryMessage::Updates(part));
        }
    }

    fn send(&mut self, to: NodeId, message: &RegistryMessage) {
        let Ok(bytes) = message.encode() else {
            return;
        };
        let len = bytes.len() as u64;
        match message.kind() {
            MessageKind::Reconcile => {
                self.stats.reconcile_messages_sent =
                    self.stats.reconcile_messages_sent.saturating_add(1);
                self.stats.reconcile_bytes_sent =
                    self.stats.reconcile_bytes_sent.saturating_add(len);
            }
            MessageKind::Updates => {
                self.stats.update_messages_sent = self.stats.update_messages_sent.saturating_add(1);
                self.stats.update_bytes_sent = self.stats.update_bytes_sent.saturating_add(len);
            }
            MessageKind::Delta => {}
        }
        self.queue(Transmit::Send {
            to,
            payload: Bytes::from(bytes),
        });
    }

    /// Starts a reconciliation with `peer`: the fingerprint of the whole key space.
    fn start_round(&mut self, peer: NodeId) {
        self.stats.rounds_started = self.stats.rounds_started.saturating_add(1);
        let range = full_range();
        let (count, sum) = fingerprint(&self.dir, &range);
        let message = RegistryMessage::Reconcile(Reconcile {
            round: 0,
            ranges: vec![(range, Mode::Fingerprint { count, sum })],
            needs: Vec::new(),
        });
        self.send(peer, &message);
    }

    fn schedule_burst(&mut self, now: Instant, avoid: Option<NodeId>) {
        if self.peers.is_empty() || self.burst.is_some() {
            return;
        }
        self.burst = Some((now + self.config.reconcile_burst_delay, avoid));
    }

    /// A random peer, other than `avoid` if there is another.
    fn pick_peer(&mut self, avoid: Option<NodeId>) -> Option<NodeId> {
        let candidates: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|p| Some(**p) != avoid)
            .copied()
            .collect();
        if candidates.is_empty() {
            return self.peers.iter().next().copied();
        }
        candidates.get(self.rng.below(candidates.len())).copied()
    }

    // ------------------------------------------------------------------------ time

    /// The deadline has passed: heartbeat, expire owners, start reconciliations as due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_refresh.is_some_and(|t| t <= now) {
            self.counter = self.counter.saturating_add(1);
            if self.publish(now, &[]).is_err() {
                debug!("registry: cannot re-sign the manifest");
            }
        }
        self.expire(now);
        if let Some((at, avoid)) = self.burst
            && at <= now
        {
            self.burst = None;
            if let Some(peer) = self.pick_peer(avoid) {
                self.start_round(peer);
            }
        }
        if self.next_round.is_some_and(|t| t <= now) {
            if let Some(peer) = self.pick_peer(None) {
                self.start_round(peer);
                self.next_round =
                    Some(now + self.rng.jitter(self.config.reconcile_interval, JITTER));
            } else {
                self.next_round = None;
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, if at all.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self.expiry.first().map(|(issued, _)| {
            self.instant_at(issued.saturating_add(duration_ms(self.config.owner_ttl)))
        });
        [
            self.next_refresh,
            expiry,
            self.burst.map(|(at, _)| at),
            self.next_round,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn expire(&mut self, now: Instant) {
        let now_ms = self.unix_ms(now);
        let ttl = duration_ms(self.config.owner_ttl);
        while let Some(&(issued, key)) = self.expiry.first() {
            if issued.saturating_add(ttl) > now_ms {
                break;
            }
            self.expiry.remove(&(issued, key));
            let Some(state) = self.dir.remove(&key) else {
                continue;
            };
            let owner = *state.owner();
            if owner == self.me {
                // This node stopped heartbeating because it lists no agent: its empty
                // manifest has served its purpose everywhere.
                continue;
            }
            self.stats.expired = self.stats.expired.saturating_add(1);
            self.changed.remove(&owner);
            self.event(Event::Expired { owner });
        }
    }

    fn reindex_expiry(&mut self, key: Key, old: Option<u64>, new: Option<u64>) {
        if let Some(old) = old {
            self.expiry.remove(&(old, key));
        }
        if let Some(new) = new {
            self.expiry.insert((new, key));
        }
    }

    /// The wall clock at `now`, in milliseconds since the Unix epoch.
    fn unix_ms(&self, now: Instant) -> u64 {
        match now.checked_duration_since(self.epoch) {
            Some(after) => self.epoch_unix_ms.saturating_add(duration_ms(after)),
            None => self
                .epoch_unix_ms
                .saturating_sub(duration_ms(self.epoch.saturating_duration_since(now))),
        }
    }

    /// The instant at which the wall clock reads `unix_ms`.
    fn instant_at(&self, unix_ms: u64) -> Instant {
        let after = Duration::from_millis(unix_ms.saturating_sub(self.epoch_unix_ms));
        self.epoch.checked_add(after).unwrap_or(self.epoch)
    }

    // ------------------------------------------------------------------------ output

    /// The next message to send; drain it after every input.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event; drain it after every input.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        self.changed
            .pop_first()
            .map(|owner| Event::Changed { owner })
    }

    fn queue(&mut self, transmit: Transmit) {
        if self.transmits.len() >= self.config.transmit_capacity {
            self.stats.transmits_dropped = self.stats.transmits_dropped.saturating_add(1);
            return;
        }
        self.transmits.push_back(transmit);
    }

    fn event(&mut self, event: Event) {
        if self.events.len() >= self.config.event_capacity {
            self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
            return;
        }
        self.events.push_back(event);
    }

    fn misbehaviour(&mut self, peer: NodeId, kind: MisbehaviourKind) {
        self.stats.misbehaviours = self.stats.misbehaviours.saturating_add(1);
        self.event(Event::Misbehaviour { peer, kind });
    }
}

/// Resolves owner keys to ids: the id held for a known owner, else the memo's, else a fresh
/// decompression.
pub(crate) struct Resolver<'a> {
    pub(crate) dir: &'a Directory,
    pub(crate) memo: Option<&'a VerifyMemo>,
}

impl Resolve for Resolver<'_> {
    fn resolve(&mut self, key: &[u8; 32]) -> Result<Arc<NodeId>, NodeIdError> {
        if let Some(state) = self.dir.get(key) {
            return Ok(Arc::clone(state.manifest().owner_arc()));
        }
        match self.memo {
            Some(memo) => memo.node_id(key),
            None => NodeId::from_bytes(key).map(Arc::new),
        }
    }
}

/// A duration in whole milliseconds, saturating.
fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An estimate of a range's encoded size.
fn range_len(range: &crate::message::Range, mode: &Mode) -> usize {
    let bounds = range.lower.len() + range.upper.as_ref().map_or(1, |u| u.len() + 2) + 1;
    bounds
        + match mode {
            Mode::Fingerprint { .. } => 22,
            Mode::Items(items) => {
                3 + items
                    .iter()
                    .map(|i| 60 + 10 * i.missing.len())
                    .sum::<usize>()
            }
        }
}

/// Packs updates into messages of at most about `max_len` bytes, splitting an owner whose
/// entries do not fit into several updates that each carry its manifest; stops once `budget`
/// bytes are packed.
pub(crate) fn pack(updates: Vec<Update>, max_len: usize, budget: usize) -> Vec<Vec<Update>> {
    let room = max_len.saturating_sub(64);
    let mut out = Vec::new();
    let mut current: Vec<Update> = Vec::new();
    let mut current_len = 0;
    let mut total = 0;
    for update in updates {
        let manifest_len = update.manifest.encoded().len() + 8;
        let mut part = Update {
            manifest: update.manifest.clone(),
            entries: Vec::new(),
        };
        let mut part_len = manifest_len;
        for (dot, bytes) in update.entries {
            let len = bytes.len() + 13;
            if !part.entries.is_empty() && part_len + len > room {
                flush_part(
                    &mut out,
                    &mut current,
                    &mut current_len,
                    part,
                    part_len,
                    room,
                );
                part = Update {
                    manifest: update.manifest.clone(),
                    entries: Vec::new(),
                };
                part_len = manifest_len;
            }
            part.entries.push((dot, bytes));
            part_len += len;
        }
        total += part_len;
        flush_part(
            &mut out,
            &mut current,
            &mut current_len,
            part,
            part_len,
            room,
        );
        if total >= budget {
            break;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn flush_part(
    out: &mut Vec<Vec<Update>>,
    current: &mut Vec<Update>,
    current_len: &mut usize,
    part: Update,
    part_len: usize,
    room: usize,
) {
    if !current.is_empty() && *current_len + part_len > room {
        out.push(std::mem::take(current));
        *current_len = 0;
    }
    *current_len += part_len;
    current.push(part);
}
