//! The node key in the data directory: created on first start, loaded afterwards.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use dawn_crypto::SigningKey;
use dawn_identity::{
    KeyProtection, KeystoreError, NodeId, Passphrase, SealOptions, Unlock, WriteMode, load_key,
    read_key_file, save_key, save_key_unprotected,
};
use zeroize::Zeroizing;

use crate::error::NodeError;

/// The node key's file name inside the data directory.
pub const KEY_FILE_NAME: &str = "node.key";

/// Largest passphrase file read, in bytes.
const MAX_PASSPHRASE_FILE: u64 = 4096;

/// How the node key in a data directory is stored, as [`inspect_key`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyState {
    /// There is no key yet: the first start creates one.
    Missing,
    /// The key is stored unencrypted (development mode).
    Unprotected {
        /// Whose key it is.
        node_id: NodeId,
    },
    /// The key is encrypted under a passphrase.
    Protected {
        /// Whose key it is.
        node_id: NodeId,
    },
}

/// The key file of a data directory.
#[must_use]
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE_NAME)
}

/// Looks at the node key in `data_dir` without opening it: enough to know whether starting
/// the node will need a passphrase.
///
/// # Errors
/// [`NodeError::Keystore`] if the file exists but cannot be read or decoded.
pub fn inspect_key(data_dir: &Path) -> Result<KeyState, NodeError> {
    match read_key_file(&key_path(data_dir)) {
        Ok(file) => Ok(match file.protection() {
            KeyProtection::Unprotected => KeyState::Unprotected {
                node_id: file.node_id(),
            },
            _ => KeyState::Protected {
                node_id: file.node_id(),
            },
        }),
        Err(KeystoreError::NotFound { .. }) => Ok(KeyState::Missing),
        Err(error) => Err(error.into()),
    }
}

/// Reads a passphrase from the first line of `path` (at most 4 KiB; the line ending is not
/// part of it).
///
/// On Unix a file that group or others can read is used, with a warning in the log.
///
/// # Errors
/// [`NodeError::PassphraseFile`] if the file cannot be read or is too large,
/// [`NodeError::Passphrase`] if its first line is empty or too long.
pub fn read_passphrase_file(path: &Path) -> Result<Passphrase, NodeError> {
    let io_error = |source| NodeError::PassphraseFile {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file.metadata().map_err(io_error)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:03o}", mode & 0o777),
                "the passphrase file is readable by other users; chmod 600 it"
            );
        }
    }
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_PASSPHRASE_FILE + 1)
        .read_to_string(&mut text)
        .map_err(io_error)?;
    if text.len() as u64 > MAX_PASSPHRASE_FILE {
        return Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_PASSPHRASE_FILE} bytes; a passphrase file holds one line"),
        )));
    }
    let line = text.lines().next().unwrap_or_default();
    Passphrase::new(line.to_owned()).map_err(|source| NodeError::Passphrase {
        origin: path.display().to_string(),
        source,
    })
}

/// What [`load_or_create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyOutcome {
    Loaded,
    Created,
    /// An unprotected key was encrypted with the passphrase given.
    Encrypted,
}

/// Loads the node key at `path`, or creates it.
///
/// With a passphrase the key is (or becomes) encrypted; without one an encrypted key is an
/// error and a new key is stored unprotected (development mode).
pub(crate) fn load_or_create(
    path: &Path,
    passphrase: Option<&Passphrase>,
    development: bool,
    options: &SealOptions,
) -> Result<(SigningKey, KeyOutcome), NodeError> {
    let state = match read_key_file(path) {
        Ok(file) => Some(file.protection()),
        Err(KeystoreError::NotFound { .. }) => None,
        Err(error) => return Err(error.into()),
    };
    match (state, passphrase) {
        (None, Some(passphrase)) => {
            let key = SigningKey::generate()?;
            save_key(path, &key, passphrase, options, WriteMode::CreateNew)?;
            Ok((key, KeyOutcome::Created))
        }
        (None, None) => {
            let key = SigningKey::generate()?;
            save_key_unprotected(path, &key, WriteMode::CreateNew)?;
            warn_unprotected(path, development);
            Ok((key, KeyOutcome::Created))
        }
        (Some(KeyProtection::Unprotected), Some(passphrase)) => {
            let key = load_key(path, &Unlock::DevMode)?;
            save_key(path, &key, passphrase, options, WriteMode::Replace)?;
            tracing::warn!(
                path = %path.display(),
                "the node key was stored unencrypted; it is now encrypted with the passphrase \
                 given (the node id is unchanged)"
            );
            Ok((key, KeyOutcome::Encrypted))
        }
        (Some(KeyProtection::Unprotected), None) => {
            let key = load_key(path, &Unlock::DevMode)?;
            warn_unprotected(path, development);
            Ok((key, KeyOutcome::Loaded))
        }
        (Some(_), Some(passphrase)) => {
            let key = load_key(path, &Unlock::Passphrase(passphrase.clone()))?;
            Ok((key, KeyOutcome::Loaded))
        }
        (Some(_), None) => Err(NodeError::PassphraseRequired {
            path: path.to_owned(),
        }),
    }
}

fn warn_unprotected(path: &Path, acknowledged: bool) {
    if acknowledged {
        tracing::warn!(
            path = %path.display(),
            "development mode: the node key is stored unencrypted"
        );
    } else {
        tracing::warn!(
            path = %path.display(),
            "\n\
             ************************************************************************\n\
             * DEVELOPMENT MODE: the node key is stored UNENCRYPTED.                *\n\
             * Anyone who can read the file can impersonate this node.              *\n\
             * To encrypt it, give a passphrase (DAWN_PASSPHRASE, --passphrase-file *\n\
             * or identity.passphrase_file) and restart: the key is encrypted in    *\n\
             * place and the node id stays the same. To keep development mode and   *\n\
             * silence this banner, set identity.development = true (--dev).        *\n\
             ************************************************************************"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_crypto::AeadSuite;
    use dawn_identity::KdfParams;

    fn fast() -> SealOptions {
        SealOptions::new(KdfParams::insecure_fast(), AeadSuite::default())
    }

    #[test]
    fn created_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(inspect_key(dir.path()).unwrap(), KeyState::Missing);
        let path = key_path(dir.path());
        let (key, outcome) = load_or_create(&path, None, false, &fast()).unwrap();
        assert_eq!(outcome, KeyOutcome::Created);
        let id: NodeId = key.verifying_key().into();
        assert_eq!(
            inspect_key(dir.path()).unwrap(),
            KeyState::Unprotected { node_id: id }
        );
        let (again, outcome) = load_or_create(&path, None, true, &fast()).unwrap();
        assert_eq!(outcome, KeyOutcome::Loaded);
        assert_eq!(again, key);
    }

    #[test]
    fn encrypted_key_needs_its_passphrase_and_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path());
        let pass = Passphrase::new("correct horse").unwrap();
        let (key, outcome) = load_or_create(&path, Some(&pass), false, &fast()).unwrap();
        assert_eq!(outcome, KeyOutcome::Created);
        let id: NodeId = key.verifying_key().into();
        assert_eq!(
            inspect_key(dir.path()).unwrap(),
            KeyState::Protected { node_id: id }
        );

        let err = load_or_create(&path, None, false, &fast()).unwrap_err();
        assert!(matches!(err, NodeError::PassphraseRequired { .. }), "{err}");
        let wrong = Passphrase::new("wrong").unwrap();
        let err = load_or_create(&path, Some(&wrong), false, &fast()).unwrap_err();
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
        // Neither failure touched the key.
        let (again, _) = load_or_create(&path, Some(&pass), false, &fast()).unwrap();
        assert_eq!(again, key);
    }

    #[test]
    fn a_passphrase_encrypts_an_unprotected_key_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_path(dir.path());
        let (key, _) = load_or_create(&path, None, true, &fast()).unwrap();
        let pass = Passphrase::new("now protect it").unwrap();
        let (again, outcome) = load_or_create(&path, Some(&pass), false, &fast()).unwrap();
        assert_eq!(outcome, KeyOutcome::Encrypted);
        assert_eq!(again, key);
        assert!(matches!(
            inspect_key(dir.path()).unwrap(),
            KeyState::Protected { .. }
        ));
        assert!(load_or_create(&path, None, true, &fast()).is_err());
    }

    #[test]
    fn passphrase_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "s3cret phrase\nignored\n").unwrap();
        let from_file = read_passphrase_file(&path).unwrap();
        assert_eq!(from_file, Passphrase::new("s3cret phrase").unwrap());
        std::fs::write(&path, "line\r\n").unwrap();
        assert_eq!(
            read_passphrase_file(&path).unwrap(),
            Passphrase::new("line").unwrap()
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            read_passphrase_file(&path),
            Err(NodeError::Passphrase { .. })
        ));
        std::fs::write(&path, "x".repeat(5000)).unwrap();
        assert!(matches!(
            read_passphrase_file(&path),
            Err(NodeError::PassphraseFile { .. })
        ));
        assert!(matches!(
            read_passphrase_file(&dir.path().join("missing")),
            Err(NodeError::PassphraseFile { .. })
        ));
    }
}
