//! The directory as a delta-state CRDT: an add-wins observed-remove map from owner to that
//! owner's agents, built on dots and a causal context.
//!
//! Per owner the state is its winning [`Manifest`] (the causal context `1..=version` and the
//! live dots with their entry hashes) and the entries this node holds for live dots. The join
//! of two states keeps the winning manifest (higher version; between two of one version the
//! greater signature) and the union of entries that it lists. For an owner that only ever
//! signs one manifest per version and never revives a dot (every honest owner: its counter
//! only grows) this is the classic join of dot stores: an entry survives unless the other
//! side's context covers its dot without holding it. The join is commutative, associative
//! and idempotent, so any delivery order of any deltas converges (`tests` below check it with
//! proptest).
//!
//! Removals need no tombstones: a removed dot is simply absent from a newer manifest.
//! Concurrent add and remove cannot lose the add, because an add always takes a fresh dot
//! that no earlier context covers (add wins).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::Bytes;
use dawn_identity::{AgentId, NodeId};
use sha2::{Digest as _, Sha256};

use crate::manifest::{Manifest, entry_hash};
use crate::record::{AgentRecord, check_encoded};

/// An owner's key in the directory: its id's 32 bytes (the order of [`NodeId`]).
pub(crate) type Key = [u8; 32];

/// One stored entry: a live dot of its owner and the record it holds.
///
/// The record is kept as its encoding (what is forwarded and stored, shared with the message
/// it came in when that was small) and decoded when first read: a node holds one per agent
/// of the whole mesh and reads few of them.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) dot: u64,
    pub(crate) agent_id: AgentId,
    pub(crate) bytes: Bytes,
    record: OnceLock<Option<Box<AgentRecord>>>,
}

impl Slot {
    /// The record; `None` only if bytes that decoded when stored fail to decode now, which
    /// does not happen.
    pub(crate) fn record(&self) -> Option<&AgentRecord> {
        self.record
            .get_or_init(|| AgentRecord::decode(&self.bytes).ok().map(Box::new))
            .as_deref()
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        // The bytes determine the record; whether it was decoded yet does not matter.
        self.dot == other.dot && self.bytes == other.bytes
    }
}

impl Eq for Slot {}

/// Everything held about one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnerState {
    manifest: Manifest,
    /// The visible agents: entries for live dots, sorted by agent id (a vector: most owners
    /// have one or two). If an owner lists two live dots for one agent id, only the higher
    /// is kept and the lower is *shadowed*.
    entries: Vec<Slot>,
    /// Live dots without an entry that this node wants (ascending).
    missing: Vec<u64>,
    /// Live dots whose entry this node will not store: over capacity, shadowed, or the
    /// owner signed an invalid record. Never requested, so a full node does not fetch them
    /// again and again.
    refused: Vec<u64>,
    item_hash: u128,
    bytes: usize,
}

impl OwnerState {
    pub(crate) fn owner(&self) -> &NodeId {
        self.manifest.owner()
    }

    pub(crate) const fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub(crate) fn missing(&self) -> &[u64] {
        &self.missing
    }

    pub(crate) const fn item_hash(&self) -> u128 {
        self.item_hash
    }

    /// The stored entries, by agent id.
    pub(crate) fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.entries.iter()
    }

    pub(crate) fn slot(&self, dot: u64) -> Option<&Slot> {
        self.entries.iter().find(|s| s.dot == dot)
    }

    /// The visible agents in id order.
    pub(crate) fn agents(&self) -> impl Iterator<Item = &AgentRecord> {
        self.entries.iter().filter_map(Slot::record)
    }

    pub(crate) fn agent(&self, id: &AgentId) -> Option<&AgentRecord> {
        let i = self.entries.binary_search_by(|s| s.agent_id.cmp(id)).ok()?;
        self.entries.get(i)?.record()
    }

    /// Recomputes the derived fields after the manifest or the entries changed.
    fn refresh(&mut self) {
        self.entries.shrink_to_fit();
        let held: Vec<u64> = self.entries.iter().map(|s| s.dot).collect();
        self.missing = self
            .manifest
            .live()
            .iter()
            .map(|l| l.dot)
            .filter(|dot| !held.contains(dot) && !self.refused.contains(dot))
            .collect();
        self.bytes = self.manifest.encoded().len()
            + self.entries.iter().map(|s| s.bytes.len()).sum::<usize>();
        self.item_hash = item_hash(self.manifest.digest(), &self.missing);
    }
}

/// The hash an owner contributes to range fingerprints: it changes with the manifest and
/// with the set of entries this node still lacks, so two nodes that hold the same manifest
/// but different entries still see a difference and exchange them. For a complete owner it
/// is the first 16 bytes of the manifest's SHA-256 (which covers the owner and version).
pub(crate) fn item_hash(digest: &[u8; 32], missing: &[u64]) -> u128 {
    let mut first = [0u8; 16];
    if missing.is_empty() {
        first.copy_from_slice(&digest[..16]);
    } else {
        let mut hasher = Sha256::new();
        hasher.update(digest);
        for dot in missing {
            hasher.update(dot.to_be_bytes());
        }
        first.copy_from_slice(&hasher.finalize()[..16]);
    }
    u128::from_le_bytes(first)
}

/// Capacity limits applied while merging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_owners: usize,
    pub(crate) max_total_bytes: usize,
}

impl Limits {
    /// No limits: for this node's own state (and tests).
    pub(crate) const UNLIMITED: Self = Self {
        max_owners: usize::MAX,
        max_total_bytes: usize::MAX,
    };
}

/// What happened to the manifest of a merged update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManifestOutcome {
    /// A new owner.
    New,
    /// It replaced the one held.
    Replaced,
    /// It is the one held.
    Same,
    /// The one held wins over it.
    Older,
    /// A new owner, but the directory is full.
    RefusedOwner,
}

/// What a merge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MergeOutcome {
    pub(crate) manifest: ManifestOutcome,
    /// Two different manifests of the same version met: the owner signed twice.
    pub(crate) equivocation: bool,
    /// Entries newly stored.
    pub(crate) stored: usize,
    /// Entries that matched a live dot but were not stored for lack of room.
    pub(crate) refused: usize,
    /// Entries that matched a live dot's hash but do not decode as a valid record: the owner
    /// signed garbage.
    pub(crate) invalid: usize,
    /// The owner's visible agents changed.
    pub(crate) changed: bool,
    /// The timestamp of the manifest held before, if the owner was known and it was
    /// replaced (to re-index expiry).
    pub(crate) replaced_issued_ms: Option<u64>,
    /// Entries of the (winning) manifest still missing afterwards.
    pub(crate) missing: usize,
}

/// The whole directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Directory {
    /// Boxed: a map node then holds 11 small entries instead of 11 whole states.
    owners: BTreeMap<Key, Box<OwnerState>>,
    total_bytes: usize,
    agents: usize,
    /// Wrapping sum of every owner's item hash: the fingerprint of the whole key space.
    sum: u128,
}

impl Directory {
    pub(crate) const fn owners(&self) -> &BTreeMap<Key, Box<OwnerState>> {
        &self.owners
    }

    pub(crate) fn get(&self, key: &Key) -> Option<&OwnerState> {
        self.owners.get(key).map(AsRef::as_ref)
    }

    pub(crate) const fn total_bytes(&self) -> usize {
        self.total_bytes
    }

    pub(crate) const fn agent_count(&self) -> usize {
        self.agents
    }

    /// `(owners, sum of item hashes)` over the whole directory.
    pub(crate) fn fingerprint(&self) -> (usize, u128) {
        (self.owners.len(), self.sum)
    }

    /// Merges one owner's manifest and some entries (`(dot, encoded record)`). The manifest
    /// must be verified (or be the one held); entries that do not match a live dot of the
    /// winning manifest are ignored. `checked` says the entries are known to match
    /// `manifest`'s hashes, which spares hashing them again if it wins.
    pub(crate) fn merge(
        &mut self,
        manifest: Manifest,
        entries: &[(u64, Bytes)],
        checked: bool,
        limits: Limits,
    ) -> MergeOutcome {
        let key = *manifest.owner().as_bytes();
        let mut outcome = MergeOutcome {
            manifest: ManifestOutcome::Same,
            equivocation: false,
            stored: 0,
            refused: 0,
            invalid: 0,
            changed: false,
            replaced_issued_ms: None,
            missing: 0,
        };
        let mut replacement = None;
        let state = match self.owners.get_mut(&key) {
            Some(state) => {
                if state.manifest.id() != manifest.id() {
                    outcome.equivocation = state.manifest.version() == manifest.version();
                    if manifest.supersedes(&state.manifest) {
                        outcome.manifest = ManifestOutcome::Replaced;
                        outcome.replaced_issued_ms = Some(state.manifest.issued_ms());
                        replacement = Some(manifest);
                    } else {
                        outcome.manifest = ManifestOutcome::Older;
                    }
                }
                let useful = replacement.is_some()
                    || entries.iter().any(|(dot, _)| state.missing.contains(dot));
                if !useful {
                    outcome.missing = state.missing.len();
                    return outcome;
                }
                state
            }
            None => {
                if self.owners.len() >= limits.max_owners {
                    outcome.manifest = ManifestOutcome::RefusedOwner;
                    return outcome;
                }
                outcome.manifest = ManifestOutcome::New;
                // Counted in the totals only after `refresh` below.
                let state = OwnerState {
                    missing: manifest.live().iter().map(|l| l.dot).collect(),
                    manifest,
                    entries: Vec::new(),
                    refused: Vec::new(),
                    item_hash: 0,
                    bytes: 0,
                };
                self.owners.entry(key).or_insert(Box::new(state))
            }
        };

        // Withdraw the owner's share of the totals, change it, add it back.
        self.total_bytes -= state.bytes;
        self.agents -= state.entries.len();
        self.sum = self.sum.wrapping_sub(state.item_hash);
        // Dots name entries, so the dots in agent order say what is visible.
        let old_visible: Vec<u64> = state.entries.iter().map(|s| s.dot).collect();

        if let Some(manifest) = replacement {
            // An entry stays if the new manifest lists its dot with the hash the old one
            // listed (entries were checked against the old one).
            let old = &state.manifest;
            state.entries.retain(|slot| {
                let hash = manifest.hash_of(slot.dot);
                hash.is_some() && hash == old.hash_of(slot.dot)
            });
            state.refused.retain(|dot| manifest.hash_of(*dot).is_some());
            state.manifest = manifest;
            state.refresh();
        }

        let trusted = checked
            && matches!(
                outcome.manifest,
                ManifestOutcome::New | ManifestOutcome::Replaced
            );
        let mut held = self.total_bytes + state.bytes;
        for (dot, bytes) in entries {
            if !state.missing.contains(dot) {
                continue;
            }
            let Some(want) = state.manifest.hash_of(*dot) else {
                continue;
            };
            if !trusted && *want != entry_hash(state.manifest.owner(), *dot, bytes) {
                continue;
            }
            state.missing.retain(|d| d != dot);
            let Ok(agent_id) = check_encoded(bytes) else {
                outcome.invalid += 1;
                state.refused.push(*dot);
                continue;
            };
            if held.saturating_add(bytes.len()) > limits.max_total_bytes {
                outcome.refused += 1;
                state.refused.push(*dot);
                continue;
            }
            let slot = Slot {
                dot: *dot,
                agent_id,
                bytes: bytes.clone(),
                record: OnceLock::new(),
            };
            match state
                .entries
                .binary_search_by(|s| s.agent_id.cmp(&slot.agent_id))
            {
                // The owner lists this agent twice: the higher dot wins, on every node.
                Ok(i) => {
                    let Some(other) = state.entries.get_mut(i) else {
                        continue;
                    };
                    if other.dot > slot.dot {
                        state.refused.push(slot.dot);
                    } else {
                        state.refused.push(other.dot);
                        held = held - other.bytes.len() + slot.bytes.len();
                        *other = slot;
                        outcome.stored += 1;
                    }
                }
                Err(i) => {
                    held += slot.bytes.len();
                    state.entries.insert(i, slot);
                    outcome.stored += 1;
                }
            }
        }
        state.refresh();
        outcome.changed = !state.entries.iter().map(|s| s.dot).eq(old_visible);
        outcome.missing = state.missing.len();

        self.total_bytes += state.bytes;
        self.agents += state.entries.len();
        self.sum = self.sum.wrapping_add(state.item_hash);
        outcome
    }

    /// Drops an owner and everything held about it.
    pub(crate) fn remove(&mut self, key: &Key) -> Option<Box<OwnerState>> {
        let state = self.owners.remove(key)?;
        self.total_bytes -= state.bytes;
        self.agents -= state.entries.len();
        self.sum = self.sum.wrapping_sub(state.item_hash);
        Some(state)
    }

    /// Joins a whole other state into this one (what delivering all its deltas does).
    #[cfg(test)]
    pub(crate) fn join(&mut self, other: &Self, limits: Limits) {
        for state in other.owners.values() {
            let entries: Vec<(u64, Bytes)> =
                state.slots().map(|s| (s.dot, s.bytes.clone())).collect();
            self.merge(state.manifest.clone(), &entries, false, limits);
        }
    }
}

#[cfg(test)]
mod tests;
