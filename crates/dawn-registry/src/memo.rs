//! A memo of manifest signatures that verified, shared by registries in one process.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest as _, Sha256};

use crate::manifest::Manifest;

/// Remembers which manifests' signatures verified, for simulations and tests that run many
/// registries in one process: each distinct manifest is then verified once per process
/// instead of once per registry.
///
/// Verification is a pure function of the manifest's bytes, and the memo is keyed by a
/// SHA-256 over everything the signature covers and the signature itself, so sharing a memo
/// changes no outcome, only the CPU time spent. A single node gains nothing from one and
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
    capacity: usize,
}

impl VerifyMemo {
    /// An empty memo holding at most `capacity` manifests (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                verified: BTreeSet::new(),
                capacity: capacity.max(1),
            })),
        }
    }

    /// How many manifests it remembers.
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
        let mut hasher = Sha256::new();
        hasher.update(manifest.envelope().signing_input());
        hasher.update(manifest.envelope().signature().as_bytes());
        hasher.finalize().into()
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
