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

use bytes::Bytes;
use dawn_identity::{AgentId, NodeId};
use sha2::{Digest as _, Sha256};

use crate::manifest::{Manifest, ManifestId, entry_hash};
use crate::record::AgentRecord;

/// An owner's key in the directory: its id's 32 bytes (the order of [`NodeId`]).
pub(crate) type Key = [u8; 32];

/// One entry: a dot of its owner and the record it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) bytes: Bytes,
    pub(crate) record: AgentRecord,
}

/// Everything held about one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnerState {
    owner: NodeId,
    manifest: Manifest,
    /// Entries for live dots, by dot.
    entries: BTreeMap<u64, Entry>,
    /// Live dots without an entry that this node wants (ascending).
    missing: Vec<u64>,
    /// Live dots whose entry this node will not store: over capacity, or the owner signed an
    /// invalid record. Never requested, so a full node does not fetch them again and again.
    refused: Vec<u64>,
    /// The visible agents: for each agent id, the highest live dot holding it.
    visible: BTreeMap<AgentId, u64>,
    item_hash: u128,
    bytes: usize,
}

impl OwnerState {
    pub(crate) const fn owner(&self) -> &NodeId {
        &self.owner
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

    pub(crate) fn entries(&self) -> impl Iterator<Item = (u64, &Entry)> {
        self.entries.iter().map(|(dot, e)| (*dot, e))
    }

    pub(crate) fn entry(&self, dot: u64) -> Option<&Entry> {
        self.entries.get(&dot)
    }

    /// The visible agents in id order.
    pub(crate) fn agents(&self) -> impl Iterator<Item = &AgentRecord> {
        self.visible
            .values()
            .filter_map(|dot| self.entries.get(dot).map(|e| &e.record))
    }

    pub(crate) fn agent(&self, id: &AgentId) -> Option<&AgentRecord> {
        self.visible
            .get(id)
            .and_then(|dot| self.entries.get(dot))
            .map(|e| &e.record)
    }

    /// Recomputes the derived fields after the manifest or the entries changed.
    fn refresh(&mut self) {
        self.missing = self
            .manifest
            .live()
            .iter()
            .map(|l| l.dot)
            .filter(|dot| !self.entries.contains_key(dot) && !self.refused.contains(dot))
            .collect();
        self.visible.clear();
        for (dot, entry) in &self.entries {
            // Ascending dots: a later dot for the same agent replaces an earlier one.
            self.visible.insert(entry.record.agent_id.clone(), *dot);
        }
        self.bytes = self.manifest.encoded().len()
            + self.entries.values().map(|e| e.bytes.len()).sum::<usize>();
        self.item_hash = item_hash(
            &self.owner,
            self.manifest.version(),
            self.manifest.id(),
            &self.missing,
        );
    }
}

/// The hash an owner contributes to range fingerprints: it changes with the manifest and
/// with the set of entries this node still lacks, so two nodes that hold the same manifest
/// but different entries still see a difference and exchange them.
pub(crate) fn item_hash(owner: &NodeId, version: u64, id: &ManifestId, missing: &[u64]) -> u128 {
    let mut hasher = Sha256::new();
    hasher.update(owner.as_bytes());
    hasher.update(version.to_be_bytes());
    hasher.update(id);
    for dot in missing {
        hasher.update(dot.to_be_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

/// Capacity limits applied while merging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_owners: usize,
    pub(crate) max_total_bytes: usize,
}

impl Limits {
    #[cfg(test)]
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
}

/// The whole directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Directory {
    owners: BTreeMap<Key, OwnerState>,
    total_bytes: usize,
    agents: usize,
    /// Wrapping sum of every owner's item hash: the fingerprint of the whole key space.
    sum: u128,
}

impl Directory {
    pub(crate) fn owners(&self) -> &BTreeMap<Key, OwnerState> {
        &self.owners
    }

    pub(crate) fn get(&self, key: &Key) -> Option<&OwnerState> {
        self.owners.get(key)
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

    /// Merges one owner's manifest and some entries. The manifest must be verified (or be
    /// the one held); entries that do not match a live dot of the winning manifest are
    /// ignored.
    pub(crate) fn merge(
        &mut self,
        manifest: Manifest,
        entries: &[(u64, Bytes)],
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
        };
        let state = match self.owners.get_mut(&key) {
            Some(state) => {
                if state.manifest.id() != manifest.id() {
                    outcome.equivocation = state.manifest.version() == manifest.version();
                    outcome.manifest = if manifest.supersedes(&state.manifest) {
                        ManifestOutcome::Replaced
                    } else {
                        ManifestOutcome::Older
                    };
                }
                let useful = outcome.manifest == ManifestOutcome::Replaced
                    || entries.iter().any(|(dot, _)| state.missing.contains(dot));
                if !useful {
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
                    owner: *manifest.owner(),
                    manifest: manifest.clone(),
                    entries: BTreeMap::new(),
                    missing: manifest.live().iter().map(|l| l.dot).collect(),
                    refused: Vec::new(),
                    visible: BTreeMap::new(),
                    item_hash: 0,
                    bytes: 0,
                };
                self.owners.entry(key).or_insert(state)
            }
        };

        // Withdraw the owner's share of the totals, change it, add it back.
        self.total_bytes -= state.bytes;
        self.agents -= state.visible.len();
        self.sum = self.sum.wrapping_sub(state.item_hash);
        let old_visible = std::mem::take(&mut state.visible);

        if outcome.manifest == ManifestOutcome::Replaced {
            let owner = state.owner;
            state.entries.retain(|dot, e| {
                manifest.hash_of(*dot) == Some(&entry_hash(&owner, *dot, &e.bytes))
            });
            state.refused.retain(|dot| manifest.hash_of(*dot).is_some());
            state.manifest = manifest;
            state.refresh();
        }

        let mut held = self.total_bytes
            + state.manifest.encoded().len()
            + state.entries.values().map(|e| e.bytes.len()).sum::<usize>();
        for (dot, bytes) in entries {
            if !state.missing.contains(dot) {
                continue;
            }
            let Some(want) = state.manifest.hash_of(*dot) else {
                continue;
            };
            if *want != entry_hash(&state.owner, *dot, bytes) {
                continue;
            }
            state.missing.retain(|d| d != dot);
            let Ok(record) = AgentRecord::decode(bytes) else {
                outcome.invalid += 1;
                state.refused.push(*dot);
                continue;
            };
            if held.saturating_add(bytes.len()) > limits.max_total_bytes {
                outcome.refused += 1;
                state.refused.push(*dot);
                continue;
            }
            held += bytes.len();
            state.entries.insert(
                *dot,
                Entry {
                    bytes: bytes.clone(),
                    record,
                },
            );
            outcome.stored += 1;
        }
        state.refresh();
        outcome.changed = old_visible != state.visible;

        self.total_bytes += state.bytes;
        self.agents += state.visible.len();
        self.sum = self.sum.wrapping_add(state.item_hash);
        outcome
    }

    /// Drops an owner and everything held about it.
    pub(crate) fn remove(&mut self, key: &Key) -> Option<OwnerState> {
        let state = self.owners.remove(key)?;
        self.total_bytes -= state.bytes;
        self.agents -= state.visible.len();
        self.sum = self.sum.wrapping_sub(state.item_hash);
        Some(state)
    }

    /// Joins a whole other state into this one (what delivering all its deltas does).
    #[cfg(test)]
    pub(crate) fn join(&mut self, other: &Self, limits: Limits) {
        for state in other.owners.values() {
            let entries: Vec<(u64, Bytes)> = state
                .entries
                .iter()
                .map(|(dot, e)| (*dot, e.bytes.clone()))
                .collect();
            self.merge(state.manifest.clone(), &entries, limits);
        }
    }
}

#[cfg(test)]
mod tests;
