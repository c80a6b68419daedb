//! The registry's state as bytes for the node's store, and back.
//!
//! ```text
//! [format version: u8 = 1]
//! postcard: list of owners, in id order, each
//!     manifest   byte string: the owner's signed manifest envelope
//!     entries    list of (dot: varint, record: byte string), ascending dots
//! ```
//!
//! The same layout as a reconciliation `Updates` body, so a stored state is exactly what the
//! mesh would send a node that has nothing. Importing trusts nothing in it: every manifest's
//! signature and every entry's hash are checked again.

use std::time::Instant;

use bytes::Bytes;
use dawn_wire::{PayloadError, decode_payload, encode_payload};

use super::{ImportReport, LocalEntry, Registry, Resolver, Source};
use crate::manifest::{Manifest, Resolve, entry_hash};
use crate::message::{DecodeError, MAX_AGENTS_PER_OWNER, Raw, Update, wire};
use crate::record::AgentRecord;

/// Version of the state encoding; the first byte of [`Registry::export_state`]'s output.
pub const STATE_FORMAT_VERSION: u8 = 1;

/// The longest state [`Registry::import_state`] accepts: 1 GiB.
pub const MAX_STATE_LEN: usize = 1 << 30;

/// A stored state could not be encoded or imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The bytes are longer than [`MAX_STATE_LEN`].
    #[error("state of {len} bytes exceeds the maximum of {MAX_STATE_LEN}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// There were no bytes.
    #[error("empty state")]
    Empty,
    /// The first byte names a format this build does not know.
    #[error("unknown state format version {0}")]
    UnknownVersion(u8),
    /// The body does not decode (malformed, trailing bytes, not canonical).
    #[error("malformed state: {0}")]
    Body(#[source] PayloadError),
    /// An owner's manifest or entry list is malformed.
    #[error("malformed owner in state: {0}")]
    Owner(#[source] DecodeError),
    /// The state could not be encoded (it does not happen).
    #[error("cannot encode the state: {0}")]
    Encode(#[source] PayloadError),
}

impl Registry {
    /// The whole directory, this node's own agents included, as versioned bytes for the
    /// node's store (see the module layout above). [`import_state`](Self::import_state)
    /// reads it back.
    ///
    /// # Errors
    /// [`StateError::Encode`], which does not happen for a state the registry built.
    pub fn export_state(&self) -> Result<Vec<u8>, StateError> {
        let owners: Vec<wire::Update<'_>> = self
            .dir
            .owners()
            .values()
            .map(|state| {
                let mut entries: Vec<wire::Entry<'_>> = state
                    .slots()
                    .map(|slot| wire::Entry {
                        dot: slot.dot,
                        record: Raw(&slot.bytes),
                    })
                    .collect();
                entries.sort_unstable_by_key(|e| e.dot);
                wire::Update {
                    manifest: Raw(state.manifest().encoded()),
                    entries,
                }
            })
            .collect();
        let body = encode_payload(&owners).map_err(StateError::Encode)?;
        let mut out = Vec::with_capacity(body.len() + 1);
        out.push(STATE_FORMAT_VERSION);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Merges a state written by [`export_state`](Self::export_state) (typically this node's,
    /// at start-up) into the directory. Every manifest signature and entry hash is checked;
    /// owners that fail, break this node's limits or have expired are skipped and counted.
    /// If the state holds this node's own manifest and this node has published nothing newer
    /// (the case at start-up), its agents become local agents again and are re-published
    /// with a fresh manifest.
    ///
    /// The directory is a CRDT, so importing is a merge: it may follow messages already
    /// handled, and importing the same state twice changes nothing the second time.
    ///
    /// # Errors
    /// [`StateError`] if the bytes are not a well-formed state; nothing is imported then.
    pub fn import_state(&mut self, now: Instant, bytes: &[u8]) -> Result<ImportReport, StateError> {
        if bytes.len() > MAX_STATE_LEN {
            return Err(StateError::TooLarge { len: bytes.len() });
        }
        let (&version, body) = bytes.split_first().ok_or(StateError::Empty)?;
        if version != STATE_FORMAT_VERSION {
            return Err(StateError::UnknownVersion(version));
        }
        let owners: Vec<wire::Update<'_>> = decode_payload(body).map_err(StateError::Body)?;
        let mut updates = Vec::with_capacity(owners.len());
        let mut resolver = Resolver {
            dir: &self.dir,
            memo: self.memo.as_ref(),
        };
        for owner in &owners {
            updates.push(decode_owner(owner, &mut resolver).map_err(StateError::Owner)?);
        }

        let mut report = ImportReport::default();
        let (own, others): (Vec<Update>, Vec<Update>) = updates
            .into_iter()
            .partition(|u| u.manifest.owner() == &self.me);
        let (applied, _) = self.apply(now, self.me, others, Source::Import);
        report.owners = applied.adopted;
        report.entries = applied.stored;
        report.expired = applied.expired;
        report.rejected = applied.rejected;
        for update in own {
            let owner = *update.manifest.owner();
            let held = self
                .dir
                .get(owner.as_bytes())
                .map(|s| s.manifest().version());
            if held.is_some_and(|v| v >= update.manifest.version()) {
                // This node has moved on since the state was written.
                continue;
            }
            let valid = self.verify_manifests(&[Some(&update.manifest)]);
            let entries_match = update.entries.iter().all(|(dot, bytes)| {
                update.manifest.hash_of(*dot) == Some(&entry_hash(&owner, *dot, bytes))
            });
            if valid.first() == Some(&true) && entries_match {
                report.owners += 1;
                report.entries += self.restore_own(now, &update);
            } else {
                report.rejected += 1;
            }
        }
        Ok(report)
    }

    /// Makes the agents of this node's own stored manifest local again and publishes them
    /// under a fresh manifest. Returns how many were restored.
    fn restore_own(&mut self, now: Instant, update: &Update) -> usize {
        self.counter = self.counter.max(update.manifest.version());
        let mut restored = 0;
        for (dot, bytes) in &update.entries {
            let Ok(record) = AgentRecord::decode(bytes) else {
                continue;
            };
            if self.local.contains_key(&record.agent_id)
                || self.local.len() >= self.config.max_agents_per_owner
            {
                continue;
            }
            self.local.insert(
                record.agent_id,
                LocalEntry {
                    dot: *dot,
                    bytes: bytes.clone(),
                    hash: entry_hash(&self.me, *dot, bytes),
                },
            );
            restored += 1;
        }
        let all: Vec<(u64, Bytes)> = self
            .local
            .values()
            .map(|e| (e.dot, e.bytes.clone()))
            .collect();
        if !all.is_empty() {
            self.counter = self.counter.saturating_add(1);
            if self.publish(now, &all).is_err() {
                tracing::debug!("registry: cannot re-sign the restored manifest");
            }
        }
        restored
    }
}

/// An owner of a stored state, structurally checked.
fn decode_owner(
    owner: &wire::Update<'_>,
    resolve: &mut dyn Resolve,
) -> Result<Update, DecodeError> {
    let manifest = Manifest::decode(Bytes::copy_from_slice(owner.manifest.0), resolve)
        .map_err(DecodeError::Manifest)?;
    if owner.entries.len() > MAX_AGENTS_PER_OWNER {
        return Err(DecodeError::TooMany {
            what: "entries",
            len: owner.entries.len(),
            max: MAX_AGENTS_PER_OWNER,
        });
    }
    let mut entries: Vec<(u64, Bytes)> = Vec::with_capacity(owner.entries.len());
    for e in &owner.entries {
        if entries.last().is_some_and(|(dot, _)| *dot >= e.dot) {
            return Err(DecodeError::DuplicateEntry(e.dot));
        }
        entries.push((e.dot, Bytes::copy_from_slice(e.record.0)));
    }
    Ok(Update { manifest, entries })
}
