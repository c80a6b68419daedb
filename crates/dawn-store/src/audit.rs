//! The audit log repository: the node's signed, hash-chained audit entries, append-only.

use std::collections::VecDeque;

use dawn_trust::{AuditDecodeError, AuditEntry, ChainHead};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};
use tracing::{debug, warn};

use crate::error::StoreError;
use crate::store::Store;

/// The most entries one [`AuditRepo::range`] call returns; ask again from the next `seq` for
/// more. [`AuditRepo::iter_all`] pages by the same amount.
pub const MAX_AUDIT_RANGE: usize = 1024;

const TABLE: &str = "audit_log";
const COLUMNS: &str = "seq, timestamp_ms, kind, peer, entry";

/// Reads and appends to the `audit_log` table. Get one from [`Store::audit`].
///
/// The table holds each entry's exact signed encoding (what
/// [`AuditEntry::encode`](dawn_trust::AuditEntry::encode) returns) beside copies of its `seq`,
/// timestamp, kind and peer for indexing. There is no way to change or remove an entry: the
/// API has none, and triggers in the schema refuse `UPDATE` and `DELETE`.
///
/// # Durability
///
/// Every append is committed with `PRAGMA synchronous = FULL`, whatever
/// [`StoreOptions::synchronous`](crate::StoreOptions::synchronous) is: the store switches the
/// setting on its one connection for the append's transaction and back afterwards (the
/// pragma applies per connection, to the next commit). So when an append returns `Ok`, the
/// entry (and every commit before it) has been synced to disk and survives a power cut, not
/// only a crash of the process.
///
/// # Chain
///
/// An entry is only stored if it continues the stored log: `seq` must be the next number (0
/// for the first) and `prev_hash` the hash of the last stored entry. After a restart, or after
/// an append failed, continue with `AuditChain::resume(store.audit().head()?)`.
/// Signatures are not checked here: run
/// [`dawn_trust::verify_chain`] over [`iter_all`](Self::iter_all) for that.
#[derive(Debug, Clone, Copy)]
pub struct AuditRepo<'a> {
    store: &'a Store,
}

impl<'a> AuditRepo<'a> {
    pub(crate) const fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Appends `entry`, durably (see [Durability](Self#durability)).
    ///
    /// # Errors
    /// [`StoreError::AuditOutOfSequence`] or [`StoreError::AuditBrokenLink`] if it does not
    /// continue the stored log, [`StoreError::TimeOutOfRange`] for a timestamp beyond
    /// `i64::MAX` milliseconds, [`StoreError::InvalidRow`] if the last stored entry is damaged,
    /// or an SQLite failure. Nothing is written on error.
    pub fn append(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.append_rows(vec![(entry.clone(), entry.encode())])
    }

    /// Appends an entry given as its encoding, durably. The bytes are decoded first (limits
    /// checked, not the signature) and stored exactly as given.
    ///
    /// # Errors
    /// [`StoreError::InvalidAuditEntry`] if the bytes do not decode; otherwise as
    /// [`append`](Self::append).
    pub fn append_encoded(&self, bytes: &[u8]) -> Result<(), StoreError> {
        let entry = AuditEntry::decode(bytes).map_err(StoreError::InvalidAuditEntry)?;
        self.append_rows(vec![(entry, bytes.to_vec())])
    }

    /// Appends several consecutive entries in one transaction: all or none, and one sync to
    /// disk for all of them, which is much cheaper than one [`append`](Self::append) each.
    ///
    /// # Errors
    /// As [`append`](Self::append), for the first entry that does not continue the log.
    pub fn append_batch(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        self.append_rows(entries.iter().map(|e| (e.clone(), e.encode())).collect())
    }

    fn append_rows(&self, rows: Vec<(AuditEntry, Vec<u8>)>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut conn = self.store.lock();
        let err = self.store.err("appending to the audit log");
        self.store.with_full_sync(&mut conn, |conn| {
            let tx = conn.transaction().map_err(&err)?;
            let mut head = read_head(&tx).map_err(&err)??;
            {
                let mut insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO audit_log ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
                    ))
                    .map_err(&err)?;
                for (entry, bytes) in &rows {
                    if entry.seq() != head.next_seq {
                        return Err(StoreError::AuditOutOfSequence {
                            expected: head.next_seq,
                            found: entry.seq(),
                        });
                    }
                    if entry.prev_hash() != &head.last_hash {
                        return Err(StoreError::AuditBrokenLink { seq: entry.seq() });
                    }
                    let seq =
                        i64::try_from(entry.seq()).map_err(|_| StoreError::AuditOutOfSequence {
                            expected: head.next_seq,
                            found: entry.seq(),
                        })?;
                    let timestamp = i64::try_from(entry.timestamp_ms())
                        .map_err(|_| StoreError::TimeOutOfRange)?;
                    let peer = entry.subject().peer().map(|p| p.as_bytes().as_slice());
                    insert
                        .execute(params![seq, timestamp, entry.kind().code(), peer, bytes])
                        .map_err(&err)?;
                    head = ChainHead::after(entry);
                }
            }
            tx.commit().map_err(&err)?;
            debug!(
                next_seq = head.next_seq,
                appended = rows.len(),
                "audit appended"
            );
            Ok(())
        })
    }

    /// Where the stored chain stands: the `seq` and `prev_hash` the next entry must have.
    /// [`ChainHead::GENESIS`] for an empty log. Pass it to `AuditChain::resume`.
    ///
    /// # Errors
    /// [`StoreError::InvalidRow`] if the last entry is damaged, or an SQLite failure.
    pub fn head(&self) -> Result<ChainHead, StoreError> {
        let conn = self.store.lock();
        read_head(&conn).map_err(self.store.err("reading the audit log head"))?
    }

    /// The last stored entry, if any: the tail to continue the chain from after a restart
    /// (`ChainHead::after(&last)`, or simply [`head`](Self::head)).
    ///
    /// # Errors
    /// [`StoreError::InvalidRow`] if it is damaged, or an SQLite failure.
    pub fn last(&self) -> Result<Option<AuditEntry>, StoreError> {
        let conn = self.store.lock();
        read_last(&conn)
            .map_err(self.store.err("reading the last audit entry"))?
            .transpose()
    }

    /// The entry with sequence number `seq`, if stored.
    ///
    /// # Errors
    /// [`StoreError::InvalidRow`] if it is damaged, or an SQLite failure.
    pub fn get(&self, seq: u64) -> Result<Option<AuditEntry>, StoreError> {
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(None);
        };
        let conn = self.store.lock();
        let err = self.store.err("reading an audit entry");
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM audit_log WHERE seq = ?1"))
            .map_err(&err)?
            .query_row([seq], decode_row)
            .optional()
            .map_err(&err)?
            .transpose()
    }

    /// Up to `limit` entries (at most [`MAX_AUDIT_RANGE`]) from `from_seq` on, in order.
    ///
    /// # Errors
    /// [`StoreError::InvalidRow`] if a returned row is damaged (its bytes do not decode, or
    /// its indexed columns disagree with them), or an SQLite failure.
    pub fn range(&self, from_seq: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let Ok(from) = i64::try_from(from_seq) else {
            return Ok(Vec::new());
        };
        let limit = limit.min(MAX_AUDIT_RANGE);
        let conn = self.store.lock();
        let err = self.store.err("reading audit entries");
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq >= ?1 ORDER BY seq LIMIT ?2"
            ))
            .map_err(&err)?;
        let rows = stmt
            .query_map(params![from, sql_limit(limit)], decode_row)
            .map_err(&err)?;
        let mut entries = Vec::with_capacity(limit);
        for row in rows {
            entries.push(row.map_err(&err)??);
        }
        Ok(entries)
    }

    /// How many entries are stored.
    ///
    /// # Errors
    /// An SQLite failure.
    pub fn count(&self) -> Result<u64, StoreError> {
        let conn = self.store.lock();
        let err = self.store.err("counting audit entries");
        let n: i64 = conn
            .prepare_cached("SELECT count(*) FROM audit_log")
            .map_err(&err)?
            .query_row([], |row| row.get(0))
            .map_err(&err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Every stored entry's exact bytes, in `seq` order, for [`dawn_trust::verify_chain`] or
    /// an export. Reads [`MAX_AUDIT_RANGE`] rows at a time, taking the connection only for
    /// each page, so the store stays usable and memory stays bounded however long the log
    /// is; entries appended meanwhile are included.
    ///
    /// The iterator never ends early without saying so: a row whose indexed columns disagree
    /// with its signed bytes (changed behind the store's back), or a page that cannot be read
    /// (an I/O error, a damaged page), comes out as an **empty** item, which `verify_chain`
    /// reports as malformed at that position, and the cause is logged. So verification over
    /// this iterator fails at the first tampered row, whichever column was edited, and never
    /// passes over a log it could not read to the end.
    ///
    /// ```
    /// # use dawn_crypto::SigningKey;
    /// # use dawn_identity::NodeId;
    /// # use dawn_trust::{AuditChain, AuditKind, Subject, verify_chain};
    /// # let key = SigningKey::from_bytes(&[1; 32]);
    /// # let node = NodeId::from(key.verifying_key());
    /// let store = dawn_store::Store::open_in_memory()?;
    /// let mut chain = AuditChain::resume(store.audit().head()?);
    /// let entry = chain.append(&key, 1_700_000_000_000, AuditKind::NodeStarted, Subject::none(), "");
    /// store.audit().append(&entry)?;
    /// assert_eq!(verify_chain(&node, store.audit().iter_all())?.entries, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn iter_all(&self) -> AuditIter {
        AuditIter {
            store: self.store.clone(),
            next_seq: 0,
            page: VecDeque::new(),
            done: false,
        }
    }
}

/// The entries of the audit log, as their stored bytes, from [`AuditRepo::iter_all`].
///
/// Owns a handle to the store, so it can be sent to a blocking thread.
#[derive(Debug)]
pub struct AuditIter {
    store: Store,
    next_seq: i64,
    page: VecDeque<Vec<u8>>,
    done: bool,
}

impl AuditIter {
    /// Reads the next page into `self.page`; marks the iterator done after the last row.
    fn fill(&mut self) {
        let conn = self.store.lock();
        let result = (|| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq >= ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let mut rows = stmt.query(params![self.next_seq, sql_limit(MAX_AUDIT_RANGE)])?;
            let mut read = 0;
            while let Some(row) = rows.next()? {
                read += 1;
                let seq: i64 = row.get(0)?;
                let bytes = match row.get_ref(4)? {
                    ValueRef::Blob(bytes) => bytes.to_vec(),
                    _ => Vec::new(),
                };
                match check_row(row, &bytes)? {
                    // Undecodable bytes go to the verifier as they are: it names the fault.
                    Ok(_) | Err(RowFault::Undecodable(_)) => self.page.push_back(bytes),
                    Err(RowFault::Mismatch(detail)) => {
                        warn!(seq, %detail, "audit row disagrees with its signed entry");
                        self.page.push_back(Vec::new());
                    }
                }
                match seq.checked_add(1) {
                    Some(next) => self.next_seq = next,
                    None => self.done = true,
                }
            }
            if read < MAX_AUDIT_RANGE {
                self.done = true;
            }
            Ok::<_, rusqlite::Error>(())
        })();
        if let Err(e) = result {
            warn!(error = %e, next_seq = self.next_seq, "reading the audit log failed");
            self.page.push_back(Vec::new());
            self.done = true;
        }
    }
}

impl Iterator for AuditIter {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.page.is_empty() && !self.done {
            self.fill();
        }
        self.page.pop_front()
    }
}

/// Why a row is not a faithful copy of an entry.
enum RowFault {
    /// The entry bytes do not decode.
    Undecodable(AuditDecodeError),
    /// The bytes decode but the indexed columns say otherwise.
    Mismatch(String),
}

/// Decodes `bytes` (the row's `entry`) and checks the row's other columns against it. The
/// outer error is SQLite's.
fn check_row(row: &Row<'_>, bytes: &[u8]) -> rusqlite::Result<Result<AuditEntry, RowFault>> {
    let entry = match AuditEntry::decode(bytes) {
        Ok(entry) => entry,
        Err(e) => return Ok(Err(RowFault::Undecodable(e))),
    };
    let expect_int = |value: ValueRef<'_>, want: u64, name: &str| match value {
        ValueRef::Integer(n) if u64::try_from(n) == Ok(want) => Ok(()),
        other => Err(format!("{name} column is {other:?}, the entry says {want}")),
    };
    let peer = entry.subject().peer().map(|p| p.as_bytes().as_slice());
    let (seq, timestamp, kind, stored_peer) = (
        row.get_ref(0)?,
        row.get_ref(1)?,
        row.get_ref(2)?,
        row.get_ref(3)?,
    );
    let checked = expect_int(seq, entry.seq(), "seq")
        .and_then(|()| expect_int(timestamp, entry.timestamp_ms(), "timestamp_ms"))
        .and_then(|()| expect_int(kind, u64::from(entry.kind().code()), "kind"))
        .and_then(|()| match (stored_peer, peer) {
            (ValueRef::Null, None) => Ok(()),
            (ValueRef::Blob(stored), Some(peer)) if stored == peer => Ok(()),
            _ => Err("peer column disagrees with the entry".to_owned()),
        });
    Ok(checked.map(|()| entry).map_err(RowFault::Mismatch))
}

/// Reads one row of [`COLUMNS`] as an entry. The outer error is SQLite's, the inner one a
/// damaged row.
fn decode_row(row: &Row<'_>) -> rusqlite::Result<Result<AuditEntry, StoreError>> {
    let seq: rusqlite::types::Value = row.get(0)?;
    let ValueRef::Blob(bytes) = row.get_ref(4)? else {
        return Ok(Err(StoreError::InvalidRow {
            table: TABLE,
            detail: format!("entry of seq {seq:?} is not a blob"),
        }));
    };
    let bytes = bytes.to_vec();
    Ok(check_row(row, &bytes)?.map_err(|fault| {
        let detail = match fault {
            RowFault::Undecodable(e) => format!("entry of seq {seq:?} does not decode: {e}"),
            RowFault::Mismatch(detail) => format!("entry of seq {seq:?}: {detail}"),
        };
        StoreError::InvalidRow {
            table: TABLE,
            detail,
        }
    }))
}

fn read_last(conn: &Connection) -> rusqlite::Result<Option<Result<AuditEntry, StoreError>>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT 1"
    ))?
    .query_row([], decode_row)
    .optional()
}

fn read_head(conn: &Connection) -> rusqlite::Result<Result<ChainHead, StoreError>> {
    Ok(match read_last(conn)? {
        None => Ok(ChainHead::GENESIS),
        Some(last) => last.map(|entry| ChainHead::after(&entry)),
    })
}

/// SQLite's LIMIT is an i64; anything larger means "no limit" anyway.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
