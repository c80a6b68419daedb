//! Opening the database and sharing its connection.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tracing::{info, instrument, warn};

use crate::agent_data::AgentDataRepo;
use crate::audit::AuditRepo;
use crate::error::{StoreError, classify, is_corruption};
use crate::header;
use crate::migrations::{APPLICATION_ID, SCHEMA_VERSION, migrations};
use crate::peers::PeerRepo;
use crate::registry::RegistryRepo;
use crate::sealer::Sealer;
use crate::settings::SettingsRepo;
use crate::trust::TrustRepo;

/// How hard SQLite works to make a commit survive a power cut (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// `NORMAL`: with write-ahead logging a commit survives a crash of the process; a power
    /// cut or kernel crash may lose the last commits but never corrupts the database. The
    /// WAL is synced at checkpoints only, so commits are cheap.
    #[default]
    Normal,
    /// `FULL`: every commit is synced to disk before it returns, so it survives a power cut
    /// too. Choose this when losing the latest rows is unacceptable (for example an audit log
    /// that must never lose a recorded decision); commits then cost one `fsync` each.
    Full,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// What [`Store::open_with`] verifies before using an existing database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IntegrityCheck {
    /// `PRAGMA quick_check`: reads every page and checks the b-tree structure, but not that
    /// indexes agree with their tables. Linear in the database size; see the README for
    /// measured figures. The default.
    #[default]
    Quick,
    /// `PRAGMA integrity_check`: [`Quick`](Self::Quick) plus index and constraint checks.
    Full,
    /// Only the header checks, which every open does. Damage is then found when a damaged
    /// page is read, still as [`StoreError::Corrupt`].
    Skip,
}

/// Settings for [`Store::open_with`]. `StoreOptions::default()` is what [`Store::open`] uses.
///
/// ```
/// use std::time::Duration;
/// use dawn_store::{StoreOptions, Synchronous};
///
/// let options = StoreOptions::default()
///     .with_synchronous(Synchronous::Full)
///     .with_busy_timeout(Duration::from_secs(10));
/// assert_eq!(options.synchronous, Synchronous::Full);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Durability of each commit. Default [`Synchronous::Normal`].
    pub synchronous: Synchronous,
    /// How long a statement waits for another connection's lock before failing with a busy
    /// error. Default 5 seconds.
    pub busy_timeout: Duration,
    /// What to verify when opening an existing database. Default [`IntegrityCheck::Quick`].
    pub integrity_check: IntegrityCheck,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            integrity_check: IntegrityCheck::Quick,
        }
    }
}

impl StoreOptions {
    /// Sets [`synchronous`](Self::synchronous).
    #[must_use]
    pub const fn with_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets [`busy_timeout`](Self::busy_timeout).
    #[must_use]
    pub const fn with_busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// Sets [`integrity_check`](Self::integrity_check).
    #[must_use]
    pub const fn with_integrity_check(mut self, integrity_check: IntegrityCheck) -> Self {
        self.integrity_check = integrity_check;
        self
    }
}

/// A node's database: one SQLite file in write-ahead-logging mode, at the newest schema.
///
/// # Concurrency
///
/// A `Store` is a cheap handle (`Clone + Send + Sync`) to one SQLite connection behind a
/// mutex. Every operation takes the lock, runs one statement or one transaction, and releases
/// it, so operations from many threads are serialised and each is atomic. Calls block on disk
/// I/O: from async code, run them on a blocking thread (`tokio::task::spawn_blocking` with a
/// clone of the `Store`). Operations are short (tens of microseconds for a peer update, see the
/// README), so one connection is not the bottleneck of a node.
///
/// Several processes may open the same file (SQLite's own locking keeps it consistent; a
/// writer waits up to [`StoreOptions::busy_timeout`]), but a node is meant to own its file.
///
/// If a thread panics while holding the connection, any open transaction is rolled back and
/// the next caller carries on: nothing half-written is ever committed.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    path: PathBuf,
    in_memory: bool,
    synchronous: Synchronous,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database at `path` with [`StoreOptions::default()`], creating the file if it
    /// does not exist (its directory must exist).
    ///
    /// # Errors
    /// See [`Store::open_with`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, &StoreOptions::default())
    }

    /// Opens the database at `path`, creating the file if it does not exist (its directory
    /// must exist), and brings its schema up to [`SCHEMA_VERSION`].
    ///
    /// An existing file is checked, read-only, before anything is written to it: its header,
    /// that it is a Dawn database, its schema version and (per
    /// [`StoreOptions::integrity_check`]) its pages. Only then is it switched to write-ahead
    /// logging and migrated, in one transaction. The store never deletes, truncates or
    /// recreates a file.
    ///
    /// # Errors
    /// - [`StoreError::Io`]: the path cannot be read or is not a regular file.
    /// - [`StoreError::NotSqlite`]: the file is not an SQLite database (left untouched).
    /// - [`StoreError::ForeignDatabase`]: an SQLite database of another application (left
    ///   untouched).
    /// - [`StoreError::Corrupt`]: the header or the integrity check found damage (left
    ///   untouched).
    /// - [`StoreError::SchemaTooNew`]: written by a newer build (left untouched).
    /// - [`StoreError::WalUnavailable`]: the file system cannot do write-ahead logging.
    /// - [`StoreError::Migration`]: a migration failed (the schema stays where it was).
    /// - [`StoreError::Sqlite`]: any other SQLite failure, such as a lock held too long.
    #[instrument(name = "dawn_store.store.open", skip_all, fields(path = %path.as_ref().display()))]
    pub fn open_with(path: impl AsRef<Path>, options: &StoreOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        header::check(path)?;
        // No URI parsing: the path is a path, whatever characters it holds.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| classify(path, "opening the database file", e))?;
        Self::init(conn, path.to_owned(), false, options)
    }

    /// Opens a fresh database in memory, at the newest schema; for tests and tools. It is
    /// gone when the last clone of the `Store` is dropped.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] or [`StoreError::Migration`] if SQLite cannot set it up (for
    /// example out of memory).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory()
            .map_err(|e| classify(&path, "opening an in-memory database", e))?;
        Self::init(conn, path, true, &StoreOptions::default())
    }

    fn init(
        mut conn: Connection,
        path: PathBuf,
        in_memory: bool,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        let err = |op| {
            let path = &path;
            move |e| classify(path, op, e)
        };
        conn.busy_timeout(options.busy_timeout)
            .map_err(err("setting the busy timeout"))?;
        // SQLite's hardening for applications: no writable_schema tricks, and no SQL functions
        // with side effects run from within the schema (triggers, views) of a tampered file.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(err("enabling defensive mode"))?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)
            .map_err(err("distrusting the schema"))?;

        // Read-only inspection: nothing below writes until the file is known to be ours, at a
        // version we understand, and intact.
        let application_id: i32 = conn
            .query_row("PRAGMA application_id", [], |row| row.get(0))
            .map_err(err("reading the application id"))?;
        let application_id = application_id.cast_unsigned();
        let found = conn
            .query_row("PRAGMA user_version", [], |row| row.get::<_, i32>(0))
            .map_err(err("reading the schema version"))?
            .cast_unsigned();
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(err("reading the schema"))?;
        let fresh = application_id == 0 && found == 0 && objects == 0;
        if !fresh && application_id != APPLICATION_ID {
            warn!(application_id, "not a Dawn database");
            return Err(StoreError::ForeignDatabase {
                path,
                application_id,
            });
        }
        if found > SCHEMA_VERSION {
            warn!(
                found,
                supported = SCHEMA_VERSION,
                "schema is newer than this build"
            );
            return Err(StoreError::SchemaTooNew {
                path,
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if !fresh {
            check_integrity(&conn, &path, options.integrity_check)?;
        }

        if !in_memory {
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .map_err(err("enabling write-ahead logging"))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::WalUnavailable { path, mode });
            }
        }
        conn.pragma_update(None, "synchronous", options.synchronous.pragma_value())
            .map_err(err("setting synchronous"))?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(err("enabling foreign keys"))?;
        // Writers take the write lock when they begin, so a transaction never fails half-way
        // because another connection upgraded first.
        conn.set_transaction_behavior(TransactionBehavior::Immediate);

        if found < SCHEMA_VERSION {
            migrations().to_latest(&mut conn).map_err(|e| match e {
                rusqlite_migration::Error::RusqliteError { err, .. } if is_corruption(&err) => {
                    classify(&path, "migrating the schema", err)
                }
                other => StoreError::Migration {
                    path: path.clone(),
                    target: SCHEMA_VERSION,
                    source: Box::new(other),
                },
            })?;
            info!(from = found, to = SCHEMA_VERSION, "schema migrated");
        }

        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                path,
                in_memory,
                synchronous: options.synchronous,
            }),
        })
    }

    /// The database file, or `None` for an in-memory store.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        (!self.inner.in_memory).then_some(self.inner.path.as_path())
    }

    /// The schema version of the open database; [`SCHEMA_VERSION`] once open.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] or [`StoreError::Corrupt`] if it cannot be read.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let conn = self.lock();
        conn.query_row("PRAGMA user_version", [], |row| row.get::<_, i32>(0))
            .map(i32::cast_unsigned)
            .map_err(self.err("reading the schema version"))
    }

    /// Verifies the whole database now (for a health check or an operator's command). Holds
    /// the connection for the duration, which is linear in the database size.
    /// [`IntegrityCheck::Skip`] checks nothing.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] with SQLite's findings (at most 10) if the check fails.
    pub fn integrity_check(&self, check: IntegrityCheck) -> Result<(), StoreError> {
        let conn = self.lock();
        check_integrity(&conn, &self.inner.path, check)
    }

    /// The peer repository.
    #[must_use]
    pub const fn peers(&self) -> PeerRepo<'_> {
        PeerRepo::new(self)
    }

    /// The audit log repository. Its appends are synced to disk (`synchronous = FULL`)
    /// whatever [`StoreOptions::synchronous`] says.
    #[must_use]
    pub const fn audit(&self) -> AuditRepo<'_> {
        AuditRepo::new(self)
    }

    /// The trust record repository; records are sealed and opened with `sealer` (built from
    /// the node's key).
    #[must_use]
    pub const fn trust<'a>(&'a self, sealer: &'a Sealer) -> TrustRepo<'a> {
        TrustRepo::new(self, sealer)
    }

    /// The settings repository (values in the clear).
    #[must_use]
    pub const fn settings(&self) -> SettingsRepo<'_> {
        SettingsRepo::new(self)
    }

    /// The agent data repository; sensitive values are sealed and opened with `sealer`
    /// (built from the node's key).
    #[must_use]
    pub const fn agent_data<'a>(&'a self, sealer: &'a Sealer) -> AgentDataRepo<'a> {
        AgentDataRepo::new(self, sealer)
    }

    /// The registry snapshot repository.
    #[must_use]
    pub const fn registry(&self) -> RegistryRepo<'_> {
        RegistryRepo::new(self)
    }

    /// Takes the connection. A panic while it was held cannot have committed anything (a
    /// `rusqlite::Transaction` rolls back on drop), so the lock is taken back rather than
    /// poisoning every later call; a transaction left open by hand is rolled back.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        self.inner.conn.lock().unwrap_or_else(|poisoned| {
            self.inner.conn.clear_poison();
            let conn = poisoned.into_inner();
            if !conn.is_autocommit()
                && let Err(e) = conn.execute_batch("ROLLBACK")
            {
                warn!(error = %e, "rolling back after a panic failed");
            }
            conn
        })
    }

    /// Runs `f` on the connection with `PRAGMA synchronous = FULL`, then puts the store's own
    /// setting back. `PRAGMA synchronous` is a per-connection setting that SQLite applies to
    /// the next commit, so every commit `f` makes is synced to disk before it returns, while
    /// the rest of the store keeps its cheaper default. If putting the setting back fails the
    /// connection stays at `FULL`, which is only slower, so `f`'s result stands.
    pub(crate) fn with_full_sync<T>(
        &self,
        conn: &mut Connection,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let default = self.inner.synchronous;
        if default != Synchronous::Full {
            conn.pragma_update(None, "synchronous", Synchronous::Full.pragma_value())
                .map_err(self.err("setting synchronous"))?;
        }
        let result = f(conn);
        if default != Synchronous::Full
            && let Err(e) = conn.pragma_update(None, "synchronous", default.pragma_value())
        {
            warn!(error = %e, "restoring the synchronous setting failed; staying at FULL");
        }
        result
    }

    /// Maps an SQLite error from operation `op` on this store.
    pub(crate) fn err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| classify(&self.inner.path, op, e)
    }
}

/// Runs `check`; anything but a single "ok" row is corruption.
fn check_integrity(
    conn: &Connection,
    path: &Path,
    check: IntegrityCheck,
) -> Result<(), StoreError> {
    let sql = match check {
        IntegrityCheck::Quick => "PRAGMA quick_check(10)",
        IntegrityCheck::Full => "PRAGMA integrity_check(10)",
        IntegrityCheck::Skip => return Ok(()),
    };
    let err = |e| classify(path, "checking integrity", e);
    let mut stmt = conn.prepare(sql).map_err(err)?;
    let findings = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    if findings.len() == 1 && findings.first().is_some_and(|f| f == "ok") {
        return Ok(());
    }
    warn!(?findings, "integrity check failed");
    Err(StoreError::Corrupt {
        path: path.to_owned(),
        detail: findings.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn full_sync_holds_inside_and_the_default_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        for (default, code) in [(Synchronous::Normal, 1), (Synchronous::Full, 2)] {
            let options = StoreOptions::default().with_synchronous(default);
            let store = Store::open_with(dir.path().join(format!("{code}.db")), &options).unwrap();
            let mut conn = store.lock();
            assert_eq!(synchronous(&conn), code);
            let inside = store
                .with_full_sync(&mut conn, |conn| Ok(synchronous(conn)))
                .unwrap();
            assert_eq!(inside, 2, "FULL (2) inside, default {default:?}");
            assert_eq!(synchronous(&conn), code);
            // An error from the closure is returned and the default still comes back.
            let failed: Result<(), _> =
                store.with_full_sync(&mut conn, |_| Err(StoreError::TimeOutOfRange));
            assert!(matches!(failed, Err(StoreError::TimeOutOfRange)));
            assert_eq!(synchronous(&conn), code);
        }
    }
}
