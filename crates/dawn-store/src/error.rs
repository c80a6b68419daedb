//! The store's error type.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use dawn_trust::AuditDecodeError;
use rusqlite::ErrorCode;

/// Anything that can go wrong opening or using a [`Store`](crate::Store).
///
/// The variants an operator can act on at start-up ([`NotSqlite`](Self::NotSqlite),
/// [`ForeignDatabase`](Self::ForeignDatabase), [`Corrupt`](Self::Corrupt),
/// [`SchemaTooNew`](Self::SchemaTooNew)) all mean the file was left exactly as it was found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or read: a missing directory, missing
    /// permissions, or something other than a regular file at the path.
    #[error("cannot open the database at {}: {source}", path.display())]
    Io {
        /// The database path.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not an SQLite database (or is encrypted). It was not modified.
    #[error("{} is not an SQLite database; it was left untouched", path.display())]
    NotSqlite {
        /// The database path.
        path: PathBuf,
    },
    /// The file is an SQLite database that belongs to another application. It was not modified.
    #[error(
        "{} is an SQLite database of another application (application_id {application_id:#010x}); \
         it was left untouched",
        path.display()
    )]
    ForeignDatabase {
        /// The database path.
        path: PathBuf,
        /// The `application_id` found in the file's header (0 if unset).
        application_id: u32,
    },
    /// The database is damaged: a bad header, a truncated file, or a failed integrity check.
    /// Restore it from a backup or move it aside; the store never repairs or recreates it.
    #[error("the database at {} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The database path.
        path: PathBuf,
        /// What SQLite or the header check reported.
        detail: String,
    },
    /// The database was written by a newer build of Dawn whose schema this build does not
    /// know. It was not modified; run a newer build or use another data directory.
    #[error(
        "the database at {} has schema version {found}, newer than this build's {supported}; \
         it was left untouched",
        path.display()
    )]
    SchemaTooNew {
        /// The database path.
        path: PathBuf,
        /// The schema version recorded in the file.
        found: u32,
        /// The newest schema version this build knows ([`SCHEMA_VERSION`](crate::SCHEMA_VERSION)).
        supported: u32,
    },
    /// SQLite refused to switch the database to write-ahead logging (for example on a file
    /// system without shared memory support).
    #[error("cannot use write-ahead logging for {} (journal mode stayed {mode})", path.display())]
    WalUnavailable {
        /// The database path.
        path: PathBuf,
        /// The journal mode SQLite reported instead of `wal`.
        mode: String,
    },
    /// Applying the schema migrations failed; the database is left at its previous version
    /// because migrations run in one transaction.
    #[error("migrating {} to schema version {target} failed: {source}", path.display())]
    Migration {
        /// The database path.
        path: PathBuf,
        /// The schema version the store tried to reach.
        target: u32,
        /// The underlying failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// An SQLite call failed for a reason other than corruption (for example the database
    /// stayed locked by another process for longer than the busy timeout, or the disk is full).
    #[error("{op} failed: {source}")]
    Sqlite {
        /// What the store was doing.
        op: &'static str,
        /// The SQLite error.
        #[source]
        source: SqliteError,
    },
    /// A row read back from the database does not hold a valid value (for example a peer id
    /// that is not an Ed25519 public key, or a malformed address). The row is left in place.
    #[error("invalid row in table {table}: {detail}")]
    InvalidRow {
        /// The table the row is in.
        table: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// More addresses were given for one peer than the store keeps.
    #[error("a peer may have at most {max} addresses, got {count}")]
    TooManyAddresses {
        /// How many were given.
        count: usize,
        /// The limit, [`MAX_PEER_ADDRS`](crate::MAX_PEER_ADDRS).
        max: usize,
    },
    /// An address cannot be dialled, so it is not stored.
    #[error("{addr} is not a dialable address: {reason}")]
    InvalidAddress {
        /// The rejected address.
        addr: SocketAddr,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A time before 1970 or too far in the future to record in milliseconds.
    #[error("time is outside the range the store records (1970 onwards, in i64 milliseconds)")]
    TimeOutOfRange,
    /// An audit entry given to [`AuditRepo::append_encoded`](crate::AuditRepo::append_encoded)
    /// does not decode. Nothing was written.
    #[error("invalid audit entry: {0}")]
    InvalidAuditEntry(#[source] AuditDecodeError),
    /// An audit entry does not continue the stored log: its `seq` is not the next one. The
    /// caller's chain ran ahead of what was persisted (an earlier append failed) or behind it
    /// (another writer appended); resume it from [`AuditRepo::head`](crate::AuditRepo::head).
    /// Nothing was written.
    #[error("audit entry {found} does not continue the stored log, which expects {expected} next")]
    AuditOutOfSequence {
        /// The `seq` the log expects next.
        expected: u64,
        /// The `seq` of the entry given.
        found: u64,
    },
    /// An audit entry has the next `seq` but its `prev_hash` is not the hash of the last
    /// stored entry: it belongs to another chain. Nothing was written.
    #[error("audit entry {seq} does not chain to the last stored entry")]
    AuditBrokenLink {
        /// The entry's `seq`.
        seq: u64,
    },
    /// A sealed value did not open: it was altered, copied from another row, or sealed with
    /// another node key. The row is left in place; no part of it is returned.
    #[error("cannot decrypt the value of {key} in table {table}: wrong key, or tampered or moved")]
    Decrypt {
        /// The table the value is in.
        table: &'static str,
        /// The row's key: printable text as it is, anything else as hex (cut to 64 bytes).
        key: String,
    },
    /// The operating system could not supply random bytes for a nonce. Nothing was written.
    #[error("no randomness for encryption: {0}")]
    Randomness(#[source] dawn_crypto::RngError),
    /// A trust record does not encode, or what it encodes does not decode back (a score
    /// outside `[0, 1]`, duplicate recommenders). Nothing was written.
    #[error("invalid trust record: {0}")]
    InvalidTrustRecord(#[source] dawn_trust::RestoreError),
    /// A key (a setting's name, an agent data key) is empty, too long or holds characters
    /// it may not.
    #[error("invalid {what}: {reason}")]
    InvalidKey {
        /// What kind of key.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value is larger than the store keeps. Nothing was written.
    #[error("{what} of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Writing would go past a count or size quota. Nothing was written.
    #[error("{what} would exceed its limit of {max}")]
    LimitReached {
        /// What is limited.
        what: &'static str,
        /// The limit.
        max: u64,
    },
    /// [`Store::backup_to`](crate::Store::backup_to) was given a path that already exists;
    /// a backup never overwrites a file.
    #[error("{} already exists; a backup never overwrites a file", path.display())]
    BackupTargetExists {
        /// The backup path.
        path: PathBuf,
    },
    /// [`Store::restore_from`](crate::Store::restore_from) found the target database open or
    /// locked by a store or another SQLite connection. Close the node first. The target was
    /// not modified.
    #[error("{} is open or locked by another connection; stop the node before restoring", path.display())]
    RestoreTargetInUse {
        /// The target database path.
        path: PathBuf,
    },
    /// A setting could not be converted to or from JSON.
    #[error("setting {key:?} is not valid JSON for the requested type: {detail}")]
    InvalidJson {
        /// The setting's name.
        key: String,
        /// What serde_json said.
        detail: String,
    },
}

/// An error reported by SQLite, kept opaque so the SQLite binding is not part of Dawn's API.
#[derive(Debug)]
pub struct SqliteError(rusqlite::Error);

impl SqliteError {
    /// Whether the database was locked by another connection for longer than the busy
    /// timeout; retrying later may succeed.
    #[must_use]
    pub fn is_busy(&self) -> bool {
        matches!(
            self.0.sqlite_error_code(),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        )
    }

    /// Whether the disk or the database's size limit is full.
    #[must_use]
    pub fn is_full(&self) -> bool {
        matches!(self.0.sqlite_error_code(), Some(ErrorCode::DiskFull))
    }
}

impl fmt::Display for SqliteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for SqliteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Turns an SQLite error into a [`StoreError`], so that corruption found at any time (not only
/// at open) is reported as [`StoreError::Corrupt`] rather than as a generic failure.
pub(crate) fn classify(path: &Path, op: &'static str, err: rusqlite::Error) -> StoreError {
    if is_corruption(&err) {
        StoreError::Corrupt {
            path: path.to_owned(),
            detail: format!("{op}: {err}"),
        }
    } else {
        StoreError::Sqlite {
            op,
            source: SqliteError(err),
        }
    }
}

/// Whether SQLite found the file damaged.
pub(crate) fn is_corruption(err: &rusqlite::Error) -> bool {
    // The header magic is checked before SQLite sees a file, so "not a database" from SQLite
    // means a damaged SQLite file rather than some other kind of file.
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}
