//! The keystore: a node's key file on disk, written atomically and read defensively.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use dawn_crypto::SigningKey;
use zeroize::Zeroizing;

use crate::keyfile::{
    KEY_FILE_MAX_LEN, KeyFile, KeyFileError, OpenKeyError, SealKeyError, SealOptions, Unlock,
};
use crate::passphrase::Passphrase;

/// Whether writing a key file may replace one that is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Fail with [`KeystoreError::AlreadyExists`] if the path exists (the default): a node's
    /// identity is never lost to a mistaken `init`.
    #[default]
    CreateNew,
    /// Replace an existing file atomically (for a passphrase change or a key rotation).
    /// Readers see the old file or the new one, never a mix.
    Replace,
}

/// A keystore operation failed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// There is no key file at the path.
    #[error("no key file at {}", path.display())]
    NotFound {
        /// The key file's path.
        path: PathBuf,
    },
    /// A file already exists where a new key was to be written with
    /// [`WriteMode::CreateNew`]. It was left untouched.
    #[error(
        "{} already exists; refusing to overwrite a key file (replace it explicitly if you \
         mean to)",
        path.display()
    )]
    AlreadyExists {
        /// The key file's path.
        path: PathBuf,
    },
    /// The path is a directory, a device or something else that is not a regular file.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The key file's path.
        path: PathBuf,
    },
    /// The key file is readable or writable by group or others, so the key may already be
    /// exposed; it is refused until the mode is fixed.
    #[error(
        "key file {} has mode {mode:03o}: it must be accessible by its owner only. \
         Fix it with: chmod 600 {}",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The key file's path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is larger than any key file ([`KEY_FILE_MAX_LEN`]); it was not read whole.
    #[error(
        "{} is {len} bytes, larger than any key file ({KEY_FILE_MAX_LEN} bytes)",
        path.display()
    )]
    TooLarge {
        /// The key file's path.
        path: PathBuf,
        /// Its size in bytes.
        len: u64,
    },
    /// The file could not be decoded: truncated, corrupted, not a key file, and so on.
    #[error("{}: {source}", path.display())]
    Format {
        /// The key file's path.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: KeyFileError,
    },
    /// The file decoded but the key could not be recovered: wrong passphrase, protection
    /// mismatch.
    #[error("{}: {source}", path.display())]
    Open {
        /// The key file's path.
        path: PathBuf,
        /// Why it did not open.
        #[source]
        source: OpenKeyError,
    },
    /// The key could not be encrypted.
    #[error("{}: {source}", path.display())]
    Seal {
        /// The key file's path.
        path: PathBuf,
        /// Why sealing failed.
        #[source]
        source: SealKeyError,
    },
    /// An operating system call failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// The path involved (the key file, its directory or the temporary file).
        path: PathBuf,
        /// What was being done, for example "write" or "rename".
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl KeystoreError {
    fn io(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io {
            path,
            action,
            source,
        }
    }
}

/// Loads the node's secret key from `path`.
///
/// Reads the file (refusing one that group or others may access, or that is larger than
/// [`KEY_FILE_MAX_LEN`]), decodes it with [`KeyFile::decode`] and opens it with
/// [`KeyFile::open`]. Never writes: a failed load leaves the file as it was.
///
/// # Errors
/// [`KeystoreError::NotFound`], [`KeystoreError::InsecurePermissions`] (the message tells the
/// operator to `chmod 600`), [`KeystoreError::Format`] for a damaged or foreign file,
/// [`KeystoreError::Open`] for a wrong passphrase or a protection mismatch, and
/// [`KeystoreError::Io`] or [`KeystoreError::NotAFile`] otherwise.
pub fn load_key(path: &Path, unlock: &Unlock) -> Result<SigningKey, KeystoreError> {
    let file = read_key_file(path)?;
    let key = file.open(unlock).map_err(|source| KeystoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    if file.is_dev_mode() {
        tracing::warn!(
            path = %path.display(),
            node = %file.node_id().fmt_short(),
            "loaded an UNPROTECTED key file (development mode): anyone who can read it can \
             impersonate this node"
        );
    }
    Ok(key)
}

/// Encrypts `key` under `passphrase` and writes it to `path` atomically with mode 0600 (see
/// [`write_key_file`]).
///
/// Runs the KDF once, which takes about a quarter of a second with the default parameters.
///
/// # Errors
/// [`KeystoreError::AlreadyExists`] if `path` exists and `mode` is
/// [`WriteMode::CreateNew`]; [`KeystoreError::Seal`] or [`KeystoreError::Io`] otherwise.
pub fn save_key(
    path: &Path,
    key: &SigningKey,
    passphrase: &Passphrase,
    options: &SealOptions,
    mode: WriteMode,
) -> Result<(), KeystoreError> {
    // Fail fast, before spending a KDF run; the write itself re-checks atomically.
    if mode == WriteMode::CreateNew {
        refuse_existing(path)?;
    }
    let file = KeyFile::seal(key, passphrase, options).map_err(|source| KeystoreError::Seal {
        path: path.to_owned(),
        source,
    })?;
    write_key_file(path, &file, mode)
}

/// Writes `key` to `path` **unprotected**, in the clear (development mode).
///
/// # Warning
/// Anyone who can read the file, a backup of it or the disk can impersonate the node. For
/// throwaway development and test nodes only; see [`KeyFile::unprotected`]. Loading it back
/// requires [`Unlock::DevMode`].
///
/// # Errors
/// As [`write_key_file`].
pub fn save_key_unprotected(
    path: &Path,
    key: &SigningKey,
    mode: WriteMode,
) -> Result<(), KeystoreError> {
    tracing::warn!(
        path = %path.display(),
        "writing an UNPROTECTED key file (development mode): the key is stored in the clear"
    );
    write_key_file(path, &KeyFile::unprotected(key), mode)
}

/// Reads and decodes the key file at `path`, without opening it: enough to learn the node id
/// and how the key is protected.
///
/// On Unix, a file with any permission bit for group or others is refused. The file is
/// checked through the opened handle, so the check and the read concern the same file.
///
/// # Errors
/// As [`load_key`], except [`KeystoreError::Open`].
pub fn read_key_file(path: &Path) -> Result<KeyFile, KeystoreError> {
    // Opening a FIFO would block; refuse anything that is not a regular file first.
    match fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            return Err(KeystoreError::NotAFile {
                path: path.to_owned(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(KeystoreError::NotFound {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(KeystoreError::io(path, "inspect")(e)),
    }
    let file = File::open(path).map_err(KeystoreError::io(path, "open"))?;
    let meta = file
        .metadata()
        .map_err(KeystoreError::io(path, "inspect"))?;
    if !meta.is_file() {
        return Err(KeystoreError::NotAFile {
            path: path.to_owned(),
        });
    }
    check_permissions(path, &meta)?;
    let limit = KEY_FILE_MAX_LEN as u64;
    if meta.len() > limit {
        return Err(KeystoreError::TooLarge {
            path: path.to_owned(),
            len: meta.len(),
        });
    }
    // The size is checked again while reading, in case the file grew in between.
    let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_FILE_MAX_LEN + 1));
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(KeystoreError::io(path, "read"))?;
    if bytes.len() > KEY_FILE_MAX_LEN {
        return Err(KeystoreError::TooLarge {
            path: path.to_owned(),
            len: bytes.len() as u64,
        });
    }
    KeyFile::decode(&bytes).map_err(|source| KeystoreError::Format {
        path: path.to_owned(),
        source,
    })
}

/// Writes an encoded key file to `path`, atomically and durably.
///
/// A temporary file is created in the same directory with mode 0600 from the start (Unix),
/// written, flushed to disk (`fsync`), then published under `path` and the directory is
/// flushed too. A crash leaves either the old state or the new file, never a partial key.
///
/// With [`WriteMode::CreateNew`] the file is published with a hard link, which fails if
/// `path` exists, so an existing file is never replaced even by a concurrent writer. (On a
/// file system without hard links it falls back to checking, then renaming.) With
/// [`WriteMode::Replace`] it is renamed over `path`.
///
/// # Errors
/// [`KeystoreError::AlreadyExists`] under [`WriteMode::CreateNew`] if `path` exists,
/// [`KeystoreError::NotAFile`] if `path` names no file (ends in `..`, is a root),
/// [`KeystoreError::Io`] if the directory is missing or not writable, or the disk fails.
pub fn write_key_file(path: &Path, file: &KeyFile, mode: WriteMode) -> Result<(), KeystoreError> {
    let Some(name) = path.file_name() else {
        return Err(KeystoreError::NotAFile {
            path: path.to_owned(),
        });
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if mode == WriteMode::CreateNew {
        refuse_existing(path)?;
    }
    let bytes = file.encode();
    let mut temp = TempFile::create(dir, name)?;
    temp.file
        .write_all(&bytes)
        .map_err(KeystoreError::io(&temp.path, "write"))?;
    temp.file
        .sync_all()
        .map_err(KeystoreError::io(&temp.path, "flush to disk"))?;
    match mode {
        WriteMode::Replace => {
            fs::rename(&temp.path, path).map_err(KeystoreError::io(path, "rename into place"))?;
            temp.published();
        }
        WriteMode::CreateNew => {
            publish_new(&temp.path, path)?;
            // The key is in place; the temporary name is now a second link to it.
            temp.remove();
        }
    }
    sync_dir(dir)
}

fn refuse_existing(path: &Path) -> Result<(), KeystoreError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Err(KeystoreError::AlreadyExists {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(KeystoreError::io(path, "inspect")(e)),
    }
}

/// Links `temp` to `path` only if `path` does not exist.
fn publish_new(temp: &Path, path: &Path) -> Result<(), KeystoreError> {
    match fs::hard_link(temp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(KeystoreError::AlreadyExists {
            path: path.to_owned(),
        }),
        Err(_) => {
            // No hard links here (some network and FAT file systems): check, then rename.
            // Only a concurrent writer in the instant between the two could be overwritten.
            refuse_existing(path)?;
            fs::rename(temp, path).map_err(KeystoreError::io(path, "rename into place"))
        }
    }
}

/// A temporary file that removes itself unless published.
struct TempFile {
    path: PathBuf,
    file: File,
    keep: bool,
}

impl TempFile {
    /// Creates `.<name>.<pid>.<n>.tmp` in `dir`, exclusively (never following or reusing an
    /// existing name) and, on Unix, with mode 0600 from the first instant.
    fn create(dir: &Path, name: &std::ffi::OsStr) -> Result<Self, KeystoreError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut last_error = None;
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut temp_name = OsString::from(".");
            temp_name.push(name);
            temp_name.push(format!(".{}.{n}.tmp", std::process::id()));
            let path = dir.join(temp_name);
            let mut options = OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(&path) {
                Ok(file) => {
                    let temp = Self {
                        path,
                        file,
                        keep: false,
                    };
                    // The umask may have removed bits from 0600; make it exactly 0600 so the
                    // owner can read it back.
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt;
                        temp.file
                            .set_permissions(fs::Permissions::from_mode(0o600))
                            .map_err(KeystoreError::io(&temp.path, "set permissions on"))?;
                    }
                    return Ok(temp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
                Err(e) => return Err(KeystoreError::io(&path, "create")(e)),
            }
        }
        Err(KeystoreError::Io {
            path: dir.to_owned(),
            action: "create a temporary file in",
            source: last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)),
        })
    }

    /// The file now lives under its final name; nothing to clean up.
    fn published(mut self) {
        self.keep = true;
    }

    /// Removes the temporary name now, reporting (but not failing on) an error.
    fn remove(mut self) {
        self.keep = true;
        if let Err(error) = fs::remove_file(&self.path) {
            tracing::warn!(
                path = %self.path.display(),
                %error,
                "could not remove a temporary copy of the key file; delete it by hand"
            );
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &fs::Metadata) -> Result<(), KeystoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeystoreError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _meta: &fs::Metadata) -> Result<(), KeystoreError> {
    // Windows ACLs are not Unix modes; the file inherits its directory's ACL.
    Ok(())
}

/// Makes a rename or link in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), KeystoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(KeystoreError::io(dir, "flush to disk the directory"))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), KeystoreError> {
    // Windows cannot open a directory as a file; the rename is already durable there.
    Ok(())
}
