//! Operations on a node's data directory that do not need the node running: verifying and
//! exporting the audit log, backing the database up and restoring it. The `dawn` CLI calls
//! these (`dawn audit verify|export`, `dawn backup`, `dawn restore`).
//!
//! They read the database directly. SQLite's write-ahead log lets them read while a node
//! runs on the same directory; a restore refuses to run while one does.

use std::io::Write;
use std::path::{Path, PathBuf};

use dawn_identity::NodeId;
use dawn_store::{Store, StoreError};
use dawn_trust::{AuditEntry, AuditJsonError, AuditVerifyError, verify_chain};

use crate::error::NodeError;
use crate::identity::{KeyState, inspect_key};
use crate::node::{DB_FILE_NAME, LOCK_FILE_NAME};

/// An offline operation on a data directory failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// The data directory has no node key, so there is no node whose log to check.
    #[error("{} holds no node key (node.key); is it a Dawn data directory?", dir.display())]
    NoKey {
        /// The data directory.
        dir: PathBuf,
    },
    /// The data directory has no database.
    #[error("{} does not exist; is the data directory right?", path.display())]
    NoDatabase {
        /// The database file expected.
        path: PathBuf,
    },
    /// The node key could not be read.
    #[error(transparent)]
    Key(#[from] Box<NodeError>),
    /// The database could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log failed verification: the first entry at fault.
    #[error("the audit log does not verify: {0}")]
    Tampered(#[from] AuditVerifyError),
    /// An entry could not be written as JSON.
    #[error("audit entry {seq} cannot be exported: {source}")]
    Json {
        /// The entry.
        seq: u64,
        /// Why.
        #[source]
        source: AuditJsonError,
    },
    /// Writing the output failed.
    #[error("writing the export: {0}")]
    Io(#[source] std::io::Error),
    /// A node runs on the data directory (it holds the lock file); stop it first.
    #[error(
        "a dawn-node is running on {} (lock file {} is held); stop it before restoring",
        dir.display(),
        lock.display()
    )]
    NodeRunning {
        /// The data directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The data directory does not exist or its lock file cannot be opened.
    #[error("data directory {}: {source}", dir.display())]
    DataDir {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The result of a successful [`verify_audit_log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditVerification {
    /// The node whose log it is (from the data directory's key).
    pub node_id: NodeId,
    /// How many entries verified, from the first on.
    pub entries: u64,
    /// The `seq` the next entry would get; keep it somewhere safe to detect a cut tail later.
    pub next_seq: u64,
}

/// The node id of the key in `data_dir`.
fn node_of(data_dir: &Path) -> Result<NodeId, OfflineError> {
    match inspect_key(data_dir).map_err(Box::new)? {
        KeyState::Unprotected { node_id } | KeyState::Protected { node_id } => Ok(node_id),
        _ => Err(OfflineError::NoKey {
            dir: data_dir.to_owned(),
        }),
    }
}

/// Opens the database of `data_dir`, which must exist (opening never creates one here).
fn open_store(data_dir: &Path) -> Result<Store, OfflineError> {
    let path = data_dir.join(DB_FILE_NAME);
    if !path.is_file() {
        return Err(OfflineError::NoDatabase { path });
    }
    Ok(Store::open(&path)?)
}

/// Walks the whole audit log of the node in `data_dir`: every entry must decode, follow the
/// one before it in sequence and by hash, and carry the node's signature (following key
/// rotations). Works whether the node runs or not.
///
/// # Errors
/// [`OfflineError::Tampered`] naming the first tampered, missing or reordered entry (its
/// position and `seq`); other variants when the directory, key or database cannot be read.
pub fn verify_audit_log(data_dir: &Path) -> Result<AuditVerification, OfflineError> {
    let node_id = node_of(data_dir)?;
    let store = open_store(data_dir)?;
    let verified = verify_chain(&node_id, store.audit().iter_all())?;
    Ok(AuditVerification {
        node_id,
        entries: verified.entries,
        next_seq: verified.head.next_seq,
    })
}

/// Writes every audit entry of the node in `data_dir` to `out` as JSON lines, in order (the
/// format of `AuditEntry::to_json_line`, which reads back and verifies). Returns how many
/// were written. Does not verify: run [`verify_audit_log`] for that.
///
/// # Errors
/// [`OfflineError::Store`] if an entry cannot be read (a damaged row), [`OfflineError::Io`]
/// if writing fails.
pub fn export_audit_log(data_dir: &Path, out: &mut dyn Write) -> Result<u64, OfflineError> {
    let store = open_store(data_dir)?;
    let mut written = 0u64;
    let mut next = 0u64;
    loop {
        let page = store.audit().range(next, dawn_store::MAX_AUDIT_RANGE)?;
        let Some(last) = page.last().map(AuditEntry::seq) else {
            break;
        };
        for entry in &page {
            let line = entry.to_json_line().map_err(|source| OfflineError::Json {
                seq: entry.seq(),
                source,
            })?;
            writeln!(out, "{line}").map_err(OfflineError::Io)?;
            written += 1;
        }
        match last.checked_add(1) {
            Some(seq) => next = seq,
            None => break,
        }
    }
    out.flush().map_err(OfflineError::Io)?;
    Ok(written)
}

/// Writes a consistent copy of the database of `data_dir` to the new file `dest`, with
/// SQLite's online backup: the node may keep running (it is not paused; the copy is the
/// database as of one commit). The node key is not part of it: keep `node.key` separately.
///
/// # Errors
/// [`OfflineError::NoDatabase`] if there is no database, [`OfflineError::Store`] if `dest`
/// exists already, cannot be written, or the copy fails its integrity check.
pub fn backup(data_dir: &Path, dest: &Path) -> Result<(), OfflineError> {
    let store = open_store(data_dir)?;
    store.backup_to(dest)?;
    Ok(())
}

/// Replaces the database of `data_dir` with the backup `source` (made by [`backup`]), or
/// creates it there. Refuses while a node runs on the directory, and holds the directory's
/// lock meanwhile so that none can start. The backup is checked (a Dawn database this build
/// can read, intact) before anything is changed; the copy is all or nothing.
///
/// # Errors
/// [`OfflineError::NodeRunning`] while a node holds the lock, [`OfflineError::DataDir`] if
/// the directory is missing, [`OfflineError::Store`] if the backup fails a check or the copy
/// fails (the database is then unchanged).
pub fn restore(data_dir: &Path, source: &Path) -> Result<(), OfflineError> {
    let lock_path = data_dir.join(LOCK_FILE_NAME);
    let io = |source| OfflineError::DataDir {
        dir: data_dir.to_owned(),
        source,
    };
    if !data_dir.is_dir() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such directory",
        )));
    }
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(OfflineError::NodeRunning {
                dir: data_dir.to_owned(),
                lock: lock_path,
            });
        }
        Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
    }
    let result = Store::restore_from(source, data_dir.join(DB_FILE_NAME));
    // Closing the file releases the lock.
    drop(lock);
    Ok(result?)
}
