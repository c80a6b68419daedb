//! The registry snapshot repository: the agent registry's latest state, as one blob.

use rusqlite::OptionalExtension;

use crate::error::StoreError;
use crate::store::Store;

/// The largest registry snapshot the store keeps (64 MiB).
pub const MAX_REGISTRY_SNAPSHOT_LEN: usize = 64 * 1024 * 1024;

/// Reads and writes the `registry_snapshot` table. Get one from [`Store::registry`].
///
/// The table holds one blob: the registry serialises itself (and versions its own encoding);
/// the store keeps the latest, so a restarted node starts from what it knew instead of an
/// empty directory. [`save`](Self::save) replaces it in one statement: a reader sees the old
/// snapshot or the new one, never a mix.
#[derive(Debug, Clone, Copy)]
pub struct RegistryRepo<'a> {
    store: &'a Store,
}

impl<'a> RegistryRepo<'a> {
    pub(crate) const fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Replaces the stored snapshot with `bytes`.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] beyond [`MAX_REGISTRY_SNAPSHOT_LEN`], or an SQLite failure.
    pub fn save(&self, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.len() > MAX_REGISTRY_SNAPSHOT_LEN {
            return Err(StoreError::TooLarge {
                what: "registry snapshot",
                len: bytes.len(),
                max: MAX_REGISTRY_SNAPSHOT_LEN,
            });
        }
        let conn = self.store.lock();
        let err = self.store.err("saving the registry snapshot");
        conn.prepare_cached(
            "INSERT INTO registry_snapshot (id, data) VALUES (1, ?1) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data",
        )
        .map_err(&err)?
        .execute([bytes])
        .map_err(&err)?;
        Ok(())
    }

    /// The stored snapshot, if one was saved.
    ///
    /// # Errors
    /// An SQLite failure.
    pub fn load(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.store.lock();
        let err = self.store.err("loading the registry snapshot");
        conn.prepare_cached("SELECT data FROM registry_snapshot WHERE id = 1")
            .map_err(&err)?
            .query_row([], |row| row.get(0))
            .optional()
            .map_err(&err)
    }

    /// Forgets the stored snapshot. Returns whether there was one.
    ///
    /// # Errors
    /// An SQLite failure.
    pub fn clear(&self) -> Result<bool, StoreError> {
        let conn = self.store.lock();
        let err = self.store.err("clearing the registry snapshot");
        let removed = conn
            .prepare_cached("DELETE FROM registry_snapshot")
            .map_err(&err)?
            .execute([])
            .map_err(&err)?;
        Ok(removed > 0)
    }
}
