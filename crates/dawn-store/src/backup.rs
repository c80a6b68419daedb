//! Online backup to a file, and restoring a database from one.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tracing::{info, instrument, warn};

use crate::error::{StoreError, classify};
use crate::header;
use crate::migrations::{APPLICATION_ID, SCHEMA_VERSION};
use crate::store::Store;

/// How long a backup or restore waits for a lock it needs.
const LOCK_WAIT: Duration = Duration::from_secs(5);

impl Store {
    /// Writes a consistent copy of the whole database to a new file at `path`, with SQLite's
    /// online backup API, while the store stays in use.
    ///
    /// The copy is read through a second, read-only connection in one read transaction: it
    /// is the database as of one commit, and writers carry on meanwhile (write-ahead logging
    /// lets readers and a writer run together). It is written beside `path` under a temporary
    /// name, switched to a rollback journal (so the backup is one self-contained file),
    /// checked with `PRAGMA integrity_check`, synced, and only then renamed to `path`: a
    /// file at `path` is always a complete backup. Sealed rows stay sealed; restoring needs
    /// the same node key to read them.
    ///
    /// # Errors
    /// [`StoreError::BackupTargetExists`] if `path` exists, [`StoreError::Io`] if the
    /// directory cannot be written, [`StoreError::Corrupt`] if the copy fails its check (the
    /// source is damaged), or an SQLite failure. Nothing is left at `path` on error.
    #[instrument(name = "dawn_store.backup.backup_to", skip_all, fields(path = %path.as_ref().display()))]
    pub fn backup_to(&self, path: impl AsRef<Path>) -> Result<(), StoreError> {
        let path = path.as_ref();
        let io_err = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        if fs::symlink_metadata(path).is_ok() {
            return Err(StoreError::BackupTargetExists {
                path: path.to_owned(),
            });
        }
        let partial = partial_path(path);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .map_err(io_err)?;
        let result = self.copy_to(&partial).and_then(|()| {
            File::open(&partial)
                .and_then(|f| f.sync_all())
                .map_err(io_err)?;
            // Another backup may have claimed `path` meanwhile; never replace it.
            if fs::symlink_metadata(path).is_ok() {
                return Err(StoreError::BackupTargetExists {
                    path: path.to_owned(),
                });
            }
            fs::rename(&partial, path).map_err(io_err)?;
            sync_dir(path);
            Ok(())
        });
        if result.is_err() {
            let _ = fs::remove_file(&partial);
        }
        if result.is_ok() {
            info!("backup written");
        }
        result
    }

    /// Copies the database into the empty file at `dest` and checks the copy.
    fn copy_to(&self, dest: &Path) -> Result<(), StoreError> {
        let err = |op| move |e| classify(dest, op, e);
        let mut dst = Connection::open_with_flags(
            dest,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err("opening the backup file"))?;
        match self.path() {
            Some(source) => {
                let src = Connection::open_with_flags(
                    source,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| classify(source, "opening the database for a backup", e))?;
                src.busy_timeout(LOCK_WAIT)
                    .map_err(|e| classify(source, "setting the busy timeout", e))?;
                copy_all(&src, &mut dst).map_err(|e| classify(source, "backing up", e))?;
            }
            // An in-memory database has no file to open again; copy under the lock.
            None => {
                let src = self.lock();
                copy_all(&src, &mut dst).map_err(err("backing up"))?;
            }
        }
        let mode: String = dst
            .query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))
            .map_err(err("switching the backup to a rollback journal"))?;
        if !mode.eq_ignore_ascii_case("delete") {
            warn!(mode, "the backup kept another journal mode");
        }
        integrity_check(&dst, dest)?;
        dst.close()
            .map_err(|(_, e)| classify(dest, "closing the backup file", e))
    }

    /// Replaces the database at `db_path` with the backup at `backup_path` (made by
    /// [`backup_to`](Self::backup_to)), or creates it there. No store may have `db_path`
    /// open.
    ///
    /// The backup is checked first, read-only: it must be a Dawn database (its
    /// `application_id`), at a schema version this build knows (an older one is upgraded by
    /// the next [`Store::open`]), and pass `PRAGMA integrity_check`. The target must be
    /// absent, empty or a Dawn database, and is then locked exclusively (SQLite's
    /// `locking_mode = EXCLUSIVE`): if any connection has it open, nothing happens. The copy
    /// runs in one transaction of SQLite's backup API with `synchronous = FULL`, so the target
    /// ends up wholly restored or as it was; its write-ahead log, if any, is folded in first.
    ///
    /// # Errors
    /// - [`StoreError::Io`]: the backup does not exist or a file cannot be opened.
    /// - [`StoreError::NotSqlite`], [`StoreError::Corrupt`], [`StoreError::ForeignDatabase`],
    ///   [`StoreError::SchemaTooNew`] naming the backup: it fails a check.
    /// - [`StoreError::ForeignDatabase`], [`StoreError::NotSqlite`] or
    ///   [`StoreError::Corrupt`] naming the target: it is not a Dawn database to replace
    ///   (move it aside first).
    /// - [`StoreError::RestoreTargetInUse`]: the target is open or locked.
    /// - [`StoreError::Sqlite`]: the copy failed; the target is unchanged.
    #[instrument(name = "dawn_store.backup.restore_from", skip_all, fields(
        backup = %backup_path.as_ref().display(),
        db = %db_path.as_ref().display(),
    ))]
    pub fn restore_from(
        backup_path: impl AsRef<Path>,
        db_path: impl AsRef<Path>,
    ) -> Result<(), StoreError> {
        let (backup_path, db_path) = (backup_path.as_ref(), db_path.as_ref());
        let backup = open_backup(backup_path)?;
        header::check(db_path)?;
        let existed = fs::symlink_metadata(db_path).is_ok();
        let result = restore_into(&backup, db_path);
        if result.is_err() && !existed {
            // Leave no empty file behind where there was none.
            let _ = fs::remove_file(db_path);
        }
        result
    }
}

/// Locks the target, checks it is Dawn's to replace, and copies the backup into it.
fn restore_into(backup: &Connection, db_path: &Path) -> Result<(), StoreError> {
    let target_err = |op| move |e| classify(db_path, op, e);
    let mut target = Connection::open_with_flags(
        db_path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(target_err("opening the restore target"))?;
    harden(&target).map_err(target_err("hardening the connection"))?;
    target
        .busy_timeout(Duration::ZERO)
        .map_err(target_err("setting the busy timeout"))?;
    // Exclusive locking mode keeps every lock this connection takes until it closes, so
    // once the exclusive transaction below begins, no other connection can read or write
    // the target until the restore is over. If one has it open now, beginning fails.
    let _: String = target
        .query_row("PRAGMA locking_mode = EXCLUSIVE", [], |row| row.get(0))
        .map_err(target_err("locking the restore target"))?;
    // Any lock found busy from here on means another connection has the target open.
    let in_use = |op| {
        move |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::RestoreTargetInUse {
                    path: db_path.to_owned(),
                }
            }
            _ => classify(db_path, op, e),
        }
    };
    target
        .execute_batch("BEGIN EXCLUSIVE")
        .map_err(in_use("locking the restore target"))?;
    let owner = read_owner(&target).map_err(in_use("reading the restore target"));
    target
        .execute_batch("COMMIT")
        .map_err(in_use("locking the restore target"))?;
    let (application_id, _, objects) = owner?;
    target
        .pragma_update(None, "synchronous", "FULL")
        .map_err(in_use("setting synchronous"))?;
    if application_id != APPLICATION_ID && (application_id != 0 || objects > 0) {
        return Err(StoreError::ForeignDatabase {
            path: db_path.to_owned(),
            application_id,
        });
    }

    copy_all(backup, &mut target).map_err(target_err("restoring"))?;
    target
        .close()
        .map_err(|(_, e)| classify(db_path, "closing the restored database", e))?;
    sync_dir(db_path);
    info!("database restored");
    Ok(())
}

/// Opens and checks a backup, read-only.
fn open_backup(path: &Path) -> Result<Connection, StoreError> {
    let meta = fs::metadata(path).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        source,
    })?;
    if meta.len() == 0 {
        return Err(StoreError::NotSqlite {
            path: path.to_owned(),
        });
    }
    header::check(path)?;
    let err = |op| move |e| classify(path, op, e);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err("opening the backup"))?;
    harden(&conn).map_err(err("hardening the connection"))?;
    conn.busy_timeout(LOCK_WAIT)
        .map_err(err("setting the busy timeout"))?;
    let (application_id, version, _) = read_owner(&conn).map_err(err("reading the backup"))?;
    if application_id != APPLICATION_ID {
        return Err(StoreError::ForeignDatabase {
            path: path.to_owned(),
            application_id,
        });
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    integrity_check(&conn, path)?;
    Ok(conn)
}

/// The same hardening [`Store::open`] applies: a file from elsewhere cannot run SQL with side
/// effects from its schema.
fn harden(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    Ok(())
}

/// `application_id`, `user_version` and the number of schema objects.
fn read_owner(conn: &Connection) -> rusqlite::Result<(u32, u32, i64)> {
    let application_id: i32 = conn.query_row("PRAGMA application_id", [], |row| row.get(0))?;
    let version: i32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let objects: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
    Ok((
        application_id.cast_unsigned(),
        version.cast_unsigned(),
        objects,
    ))
}

/// `PRAGMA integrity_check`; anything but "ok" is corruption of `path`.
fn integrity_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| classify(path, "checking integrity", e);
    let mut stmt = conn.prepare("PRAGMA integrity_check(10)").map_err(err)?;
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

/// Copies every page of `src` into `dst` in one step: one read transaction on the source
/// (a consistent snapshot) and one write transaction on the destination (all or nothing).
/// Retries while a lock it needs is briefly held elsewhere.
fn copy_all(src: &Connection, dst: &mut Connection) -> rusqlite::Result<()> {
    let backup = Backup::new(src, dst)?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        // `-1` copies everything in one step, so anything but `Done` means a lock was busy.
        if backup.step(-1)? == StepResult::Done {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some("the database stayed locked during the backup".to_owned()),
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// `<path>.partial-<random>`, beside `path`.
fn partial_path(path: &Path) -> PathBuf {
    let mut random = [0u8; 4];
    let _ = dawn_crypto::fill_random(&mut random);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".partial-{:08x}", u32::from_le_bytes(random)));
    PathBuf::from(name)
}

/// Syncs the directory holding `path`, so a rename or a new file survives a power cut.
/// Best effort: not every platform can open a directory.
fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all())
        && e.kind() != io::ErrorKind::Unsupported
    {
        warn!(error = %e, dir = %dir.display(), "syncing the directory failed");
    }
}
