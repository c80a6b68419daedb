//! The keystore on a real file system: atomic, private, never clobbering, and loud about
//! every failure.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use dawn_crypto::{AeadSuite, SigningKey};
use dawn_identity::{
    KdfParams, KeyFileError, KeystoreError, OpenKeyError, Passphrase, SealOptions, Unlock,
    WriteMode, load_key, read_key_file, save_key, save_key_unprotected,
};
use tempfile::TempDir;

fn fast() -> SealOptions {
    SealOptions::new(KdfParams::insecure_fast(), AeadSuite::default())
}

fn passphrase() -> Passphrase {
    Passphrase::new("correct horse battery staple").unwrap()
}

fn unlock() -> Unlock {
    Unlock::Passphrase(passphrase())
}

/// A temporary directory holding a freshly saved key file.
fn saved() -> (TempDir, PathBuf, SigningKey) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    let key = SigningKey::generate().unwrap();
    save_key(&path, &key, &passphrase(), &fast(), WriteMode::CreateNew).unwrap();
    (dir, path, key)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn write_private(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn round_trip_with_mode_0600_and_no_leftovers() {
    let (dir, path, key) = saved();
    assert_eq!(load_key(&path, &unlock()).unwrap(), key);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(dir_entries(dir.path()), ["node.key"]);
    let file = read_key_file(&path).unwrap();
    assert_eq!(file.node_id(), key.verifying_key().into());
    assert!(!file.is_dev_mode());
}

#[test]
fn write_key_file_publishes_a_decoded_file_and_refuses_a_root() {
    let (dir, path, key) = saved();
    let bytes = fs::read(&path).unwrap();
    let file = dawn_identity::KeyFile::decode(&bytes).unwrap();
    let copy = dir.path().join("copy.key");
    dawn_identity::write_key_file(&copy, &file, WriteMode::CreateNew).unwrap();
    assert_eq!(fs::read(&copy).unwrap(), bytes);
    assert_eq!(load_key(&copy, &unlock()).unwrap(), key);
    assert!(matches!(
        dawn_identity::write_key_file(Path::new("/"), &file, WriteMode::CreateNew),
        Err(KeystoreError::NotAFile { .. })
    ));
}

#[test]
fn real_default_parameters_round_trip() {
    // RFC 9106's second recommended option, 64 MiB and 3 passes, exercised once for real.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    let key = SigningKey::generate().unwrap();
    let started = Instant::now();
    save_key(
        &path,
        &key,
        &passphrase(),
        &SealOptions::default(),
        WriteMode::CreateNew,
    )
    .unwrap();
    let saved_in = started.elapsed();
    let started = Instant::now();
    assert_eq!(load_key(&path, &unlock()).unwrap(), key);
    let loaded_in = started.elapsed();
    eprintln!("default KDF parameters: save {saved_in:?}, load {loaded_in:?}");
    let file = read_key_file(&path).unwrap();
    assert_eq!(
        file.protection(),
        dawn_identity::KeyProtection::Passphrase {
            suite: AeadSuite::ChaCha20Poly1305,
            kdf: KdfParams::new(65536, 3, 4).unwrap(),
        }
    );
}

#[test]
fn wrong_passphrase_is_its_own_error_and_changes_nothing() {
    let (_dir, path, _key) = saved();
    let before = fs::read(&path).unwrap();
    let wrong = Unlock::Passphrase(Passphrase::new("correct horse battery stapl").unwrap());
    let error = load_key(&path, &wrong).unwrap_err();
    assert!(
        matches!(
            error,
            KeystoreError::Open {
                source: OpenKeyError::WrongPassphrase,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("wrong passphrase"), "{error}");
    assert!(error.to_string().contains("node.key"), "{error}");
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn every_truncation_is_reported_and_the_file_is_left_alone() {
    let (_dir, path, _key) = saved();
    let full = fs::read(&path).unwrap();
    for len in 0..full.len() {
        write_private(&path, &full[..len]);
        let error = load_key(&path, &unlock()).unwrap_err();
        assert!(
            matches!(
                error,
                KeystoreError::Format {
                    source: KeyFileError::Truncated { actual, .. },
                    ..
                } if actual == len
            ),
            "length {len}: {error:?}"
        );
        assert_eq!(fs::read(&path).unwrap(), &full[..len], "length {len}");
    }
}

#[test]
fn every_single_byte_corruption_is_reported() {
    let (_dir, path, _key) = saved();
    let full = fs::read(&path).unwrap();
    for position in 0..full.len() {
        let mut damaged = full.clone();
        damaged[position] ^= 0xff;
        write_private(&path, &damaged);
        let error = load_key(&path, &unlock()).unwrap_err();
        let KeystoreError::Format { source, .. } = &error else {
            panic!("byte {position}: {error:?}");
        };
        let expected = match position {
            0..8 => matches!(source, KeyFileError::NotAKeyFile),
            8 => matches!(source, KeyFileError::UnsupportedVersion(_)),
            9 => matches!(source, KeyFileError::UnknownProtection(_)),
            _ => matches!(source, KeyFileError::Corrupted),
        };
        assert!(expected, "byte {position}: {source:?}");
        assert_eq!(fs::read(&path).unwrap(), damaged, "byte {position}");
    }
}

#[test]
fn group_or_world_access_is_refused_with_the_fix() {
    let (_dir, path, key) = saved();
    for bad in [
        0o644,
        0o640,
        0o604,
        0o620,
        0o602,
        0o660,
        0o666,
        0o700 | 0o010,
    ] {
        fs::set_permissions(&path, fs::Permissions::from_mode(bad)).unwrap();
        let error = load_key(&path, &unlock()).unwrap_err();
        assert!(
            matches!(error, KeystoreError::InsecurePermissions { mode, .. } if mode == bad),
            "{bad:o}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("chmod 600"), "{message}");
        assert!(message.contains(&format!("{bad:03o}")), "{message}");
        assert!(read_key_file(&path).is_err());
    }
    for good in [0o600, 0o400, 0o700] {
        fs::set_permissions(&path, fs::Permissions::from_mode(good)).unwrap();
        assert_eq!(load_key(&path, &unlock()).unwrap(), key, "{good:o}");
    }
}

#[test]
fn create_new_never_clobbers() {
    let (dir, path, key) = saved();
    let before = fs::read(&path).unwrap();
    let other = SigningKey::generate().unwrap();
    let error = save_key(&path, &other, &passphrase(), &fast(), WriteMode::CreateNew).unwrap_err();
    assert!(
        matches!(error, KeystoreError::AlreadyExists { .. }),
        "{error:?}"
    );
    let error = save_key_unprotected(&path, &other, WriteMode::CreateNew).unwrap_err();
    assert!(
        matches!(error, KeystoreError::AlreadyExists { .. }),
        "{error:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(load_key(&path, &unlock()).unwrap(), key);
    assert_eq!(dir_entries(dir.path()), ["node.key"]);

    // A dangling symlink counts as existing: nothing is written through it.
    let link = dir.path().join("link.key");
    let target = dir.path().join("elsewhere.key");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let error = save_key(&link, &other, &passphrase(), &fast(), WriteMode::CreateNew).unwrap_err();
    assert!(
        matches!(error, KeystoreError::AlreadyExists { .. }),
        "{error:?}"
    );
    assert!(!target.exists());
}

#[test]
fn replace_is_explicit_and_atomic() {
    let (dir, path, _key) = saved();
    let new_key = SigningKey::generate().unwrap();
    let new_passphrase = Passphrase::new("a new passphrase").unwrap();
    save_key(
        &path,
        &new_key,
        &new_passphrase,
        &fast(),
        WriteMode::Replace,
    )
    .unwrap();
    assert_eq!(
        load_key(&path, &Unlock::Passphrase(new_passphrase)).unwrap(),
        new_key
    );
    assert_eq!(mode(&path), 0o600);
    assert_eq!(dir_entries(dir.path()), ["node.key"]);
}

#[test]
fn replace_tightens_a_loose_mode() {
    let (_dir, path, key) = saved();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    save_key(&path, &key, &passphrase(), &fast(), WriteMode::Replace).unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn dev_mode_is_explicit_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let dev = dir.path().join("dev.key");
    let key = SigningKey::generate().unwrap();
    save_key_unprotected(&dev, &key, WriteMode::CreateNew).unwrap();
    assert_eq!(mode(&dev), 0o600);
    assert!(read_key_file(&dev).unwrap().is_dev_mode());
    assert_eq!(load_key(&dev, &Unlock::DevMode).unwrap(), key);
    let error = load_key(&dev, &unlock()).unwrap_err();
    assert!(
        matches!(
            error,
            KeystoreError::Open {
                source: OpenKeyError::NotProtected,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("NOT encrypted"), "{error}");

    let (_dir, protected, _key) = saved();
    let error = load_key(&protected, &Unlock::DevMode).unwrap_err();
    assert!(
        matches!(
            error,
            KeystoreError::Open {
                source: OpenKeyError::PassphraseRequired,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn missing_odd_and_oversized_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.key");
    assert!(matches!(
        load_key(&missing, &unlock()),
        Err(KeystoreError::NotFound { .. })
    ));
    assert!(matches!(
        load_key(dir.path(), &unlock()),
        Err(KeystoreError::NotAFile { .. })
    ));
    let big = dir.path().join("big.key");
    write_private(&big, &vec![0u8; 5000]);
    assert!(matches!(
        load_key(&big, &unlock()),
        Err(KeystoreError::TooLarge { len: 5000, .. })
    ));
    let foreign = dir.path().join("id_ed25519");
    write_private(&foreign, b"-----BEGIN OPENSSH PRIVATE KEY-----\n");
    assert!(matches!(
        load_key(&foreign, &unlock()),
        Err(KeystoreError::Format {
            source: KeyFileError::NotAKeyFile,
            ..
        })
    ));
    let key = SigningKey::generate().unwrap();
    let nowhere = dir.path().join("no-such-dir").join("node.key");
    assert!(matches!(
        save_key(&nowhere, &key, &passphrase(), &fast(), WriteMode::CreateNew),
        Err(KeystoreError::Io { .. })
    ));
}
