//! The trust repository: each peer's trust record, encrypted at rest.

use dawn_identity::NodeId;
use dawn_trust::PeerSnapshot;
use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, Row, params};
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::sealer::{SealPurpose, Sealer, describe_key};
use crate::store::Store;

const TABLE: &str = "trust_records";

/// Reads and writes the `trust_records` table. Get one from [`Store::trust`].
///
/// A record is dawn-trust's [`PeerSnapshot`] (score, gain budget, last contact, the operator's
/// assignment, automatic flags, recommendations), stored as its versioned encoding sealed by
/// the [`Sealer`] under [`SealPurpose::Trust`] and bound to the peer's id: only the id is in the
/// clear, and a record copied to another peer's row does not open. Every snapshot is checked
/// (encoded, then decoded back) before it is written, so what is stored always reads back.
#[derive(Debug, Clone, Copy)]
pub struct TrustRepo<'a> {
    store: &'a Store,
    sealer: &'a Sealer,
}

impl<'a> TrustRepo<'a> {
    pub(crate) const fn new(store: &'a Store, sealer: &'a Sealer) -> Self {
        Self { store, sealer }
    }

    /// Stores `snapshot` as the record of `snapshot.peer`, replacing any earlier one.
    ///
    /// # Errors
    /// [`StoreError::InvalidTrustRecord`] if the snapshot does not encode or would not decode
    /// (a score outside `[0, 1]`, duplicate recommenders, too many of them),
    /// [`StoreError::Randomness`], or an SQLite failure. Nothing is written on error.
    pub fn put(&self, snapshot: &PeerSnapshot) -> Result<(), StoreError> {
        self.put_many(std::slice::from_ref(snapshot))
    }

    /// [`put`](Self::put) for many snapshots in one transaction: all are written or none.
    ///
    /// # Errors
    /// As [`put`](Self::put); every snapshot is checked and sealed before anything is written.
    pub fn put_many(&self, snapshots: &[PeerSnapshot]) -> Result<(), StoreError> {
        let rows = snapshots
            .iter()
            .map(|snapshot| Ok((snapshot.peer, self.seal(snapshot)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut conn = self.store.lock();
        let err = self.store.err("storing trust records");
        let tx = conn.transaction().map_err(&err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO trust_records (peer, record) VALUES (?1, ?2) \
                     ON CONFLICT (peer) DO UPDATE SET record = excluded.record",
                )
                .map_err(&err)?;
            for (peer, record) in &rows {
                stmt.execute(params![peer.as_bytes(), record])
                    .map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    /// The record of `peer`, if any.
    ///
    /// # Errors
    /// [`StoreError::Decrypt`] if the record does not open with this node's key (altered,
    /// moved from another row, or sealed by another key), [`StoreError::InvalidRow`] if it
    /// opens but does not decode, or an SQLite failure.
    pub fn get(&self, peer: &NodeId) -> Result<Option<PeerSnapshot>, StoreError> {
        let conn = self.store.lock();
        let err = self.store.err("reading a trust record");
        let row = conn
            .prepare_cached("SELECT peer, record FROM trust_records WHERE peer = ?1")
            .map_err(&err)?
            .query_row([peer.as_bytes()], raw_row)
            .optional()
            .map_err(&err)?;
        drop(conn);
        row.map(|(peer, record)| self.open(&peer, &record))
            .transpose()
    }

    /// Every stored record, in peer id order. The trust table that writes them bounds how
    /// many there are.
    ///
    /// # Errors
    /// As [`get`](Self::get), for the first record that fails.
    pub fn all(&self) -> Result<Vec<PeerSnapshot>, StoreError> {
        let conn = self.store.lock();
        let err = self.store.err("reading trust records");
        let mut stmt = conn
            .prepare_cached("SELECT peer, record FROM trust_records ORDER BY peer")
            .map_err(&err)?;
        let rows = stmt
            .query_map([], raw_row)
            .map_err(&err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&err)?;
        drop(stmt);
        drop(conn);
        rows.iter()
            .map(|(peer, record)| self.open(peer, record))
            .collect()
    }

    /// Forgets the record of `peer`. Returns whether there was one.
    ///
    /// # Errors
    /// An SQLite failure.
    pub fn delete(&self, peer: &NodeId) -> Result<bool, StoreError> {
        let conn = self.store.lock();
        let err = self.store.err("deleting a trust record");
        let removed = conn
            .prepare_cached("DELETE FROM trust_records WHERE peer = ?1")
            .map_err(&err)?
            .execute([peer.as_bytes()])
            .map_err(&err)?;
        Ok(removed > 0)
    }

    /// How many records are stored.
    ///
    /// # Errors
    /// An SQLite failure.
    pub fn count(&self) -> Result<u64, StoreError> {
        let conn = self.store.lock();
        let err = self.store.err("counting trust records");
        let n: i64 = conn
            .prepare_cached("SELECT count(*) FROM trust_records")
            .map_err(&err)?
            .query_row([], |row| row.get(0))
            .map_err(&err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn seal(&self, snapshot: &PeerSnapshot) -> Result<Vec<u8>, StoreError> {
        let encoded = Zeroizing::new(snapshot.encode().map_err(StoreError::InvalidTrustRecord)?);
        // What is stored must read back: decoding applies the checks a restore applies.
        PeerSnapshot::decode(&encoded).map_err(StoreError::InvalidTrustRecord)?;
        self.sealer.seal(
            SealPurpose::Trust,
            TABLE,
            snapshot.peer.as_bytes(),
            &encoded,
        )
    }

    fn open(&self, peer: &[u8], record: &[u8]) -> Result<PeerSnapshot, StoreError> {
        let plain = self
            .sealer
            .open(SealPurpose::Trust, TABLE, peer, record)
            .map_err(|e| match (e, node_id(peer)) {
                (StoreError::Decrypt { table, .. }, Some(id)) => StoreError::Decrypt {
                    table,
                    key: id.to_string(),
                },
                (other, _) => other,
            })?;
        let snapshot = PeerSnapshot::decode(&plain).map_err(|e| StoreError::InvalidRow {
            table: TABLE,
            detail: format!("record of {}: {e}", describe_key(peer)),
        })?;
        // The tag binds the record to its row, so this only fails for a record that was
        // sealed for the wrong peer by this node itself.
        if snapshot.peer.as_bytes().as_slice() != peer {
            return Err(StoreError::InvalidRow {
                table: TABLE,
                detail: format!("record of {} names another peer", describe_key(peer)),
            });
        }
        Ok(snapshot)
    }
}

/// The peer id stored in a row, if it is one.
fn node_id(bytes: &[u8]) -> Option<NodeId> {
    NodeId::from_bytes(&bytes.try_into().ok()?).ok()
}

/// The raw `(peer, record)` blobs of a row.
fn raw_row(row: &Row<'_>) -> rusqlite::Result<(Vec<u8>, Vec<u8>)> {
    let blob = |value: ValueRef<'_>| match value {
        ValueRef::Blob(bytes) => bytes.to_vec(),
        _ => Vec::new(),
    };
    Ok((blob(row.get_ref(0)?), blob(row.get_ref(1)?)))
}
