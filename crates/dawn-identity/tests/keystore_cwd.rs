//! A key file named without a directory lands in the current directory. This is its own test
//! binary because it changes the process's working directory.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use dawn_crypto::SigningKey;
use dawn_identity::{Unlock, WriteMode, load_key, save_key_unprotected};

#[test]
fn bare_file_name_uses_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let key = SigningKey::generate().unwrap();
    save_key_unprotected(Path::new("node.key"), &key, WriteMode::CreateNew).unwrap();
    assert!(dir.path().join("node.key").is_file());
    assert_eq!(
        load_key(Path::new("node.key"), &Unlock::DevMode).unwrap(),
        key
    );
}
