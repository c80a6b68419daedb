//! A memo of manifest signatures that verified, shared by registries in one process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use dawn_identity::{NodeId, NodeIdError};

use crate::manifest::Manifest;

/// Remembers which manifests' signatures verified (and the owner ids decoded from them), for
/// simulations and tests that run many registries in one process: each distinct manifest is
/// then verified once per process instead of once per registry, and each owner's public key
/// decompressed once.
///
/// Verification and decompression are pure functions of the bytes, and the memo is keyed by
/// a SHA-256 over the manifest's (canonical) encoding, signature included, and by the key
/// bytes, so sharing a memo changes no outcome, only the CPU time and memory spent. A single node gains nothing from one and
/// should not use it. Cloning shares the memo. When it holds `capacity` manifests it forgets
/// them all and starts again.
///
/// ```
/// use dawn_registry::VerifyMemo;
///
/// let memo = VerifyMemo::new(100_000);
/// assert!(memo.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct VerifyMemo {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    verified: BTreeSet<[u8; 32]>,
    /// Owner ids already decompressed and validated, by key bytes.
    ids: BTreeMap<[u8; 32], Arc<NodeId>>,
    capacity: usize,
}

impl VerifyMemo {
    /// An empty memo holding at most `capacity` manifests (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                verified: BTreeSet::new(),
                ids: BTreeMap::new(),
                capacity: capacity.max(1),
            })),
        }
    }

    /// How many manifests it remembers as verified.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().verified.len()
    }

    /// Whether it remembers none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The set stays consistent whatever a panicking holder was doing.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn key(manifest: &Manifest) -> [u8; 32] {
        // The encoding is strict, so it determines the signed fields and the signature.
        *manifest.digest()
    }

    /// The owner id of `key`, decompressed once per process.
    pub(crate) fn node_id(&self, key: &[u8; 32]) -> Result<Arc<NodeId>, NodeIdError> {
        if let Some(id) = self.lock().ids.get(key) {
            return Ok(Arc::clone(id));
        }
        let id = Arc::new(NodeId::from_bytes(key)?);
        let mut inner = self.lock();
        if inner.ids.len() >= inner.capacity {
            inner.ids.clear();
        }
        inner.ids.insert(*key, Arc::clone(&id));
        Ok(id)
    }

    pub(crate) fn contains(&self, key: &[u8; 32]) -> bool {
        self.lock().verified.contains(key)
    }

    pub(crate) fn insert(&self, key: [u8; 32]) {
        let mut inner = self.lock();
        if inner.verified.len() >= inner.capacity {
            inner.verified.clear();
        }
        inner.verified.insert(key);
    }
}
