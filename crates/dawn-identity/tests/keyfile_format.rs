//! The key file format in memory: golden files made by an independent implementation, and
//! decoding of damaged or arbitrary bytes.

#![allow(clippy::unwrap_used, clippy::panic)]

use dawn_crypto::{AeadSuite, SigningKey};
use dawn_identity::{
    KEY_FILE_MAGIC, KdfParams, KeyFile, KeyFileError, KeyProtection, NodeId, OpenKeyError,
    Passphrase, SealOptions, Unlock,
};
use proptest::prelude::*;

/// The seed in the golden files: bytes 0x40..0x60.
fn golden_key() -> SigningKey {
    let seed: [u8; 32] = std::array::from_fn(|i| 0x40 + i as u8);
    SigningKey::from_bytes(&seed)
}

fn golden(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text.trim()).unwrap()
}

fn golden_passphrase() -> Unlock {
    Unlock::Passphrase(Passphrase::new("dawn golden passphrase").unwrap())
}

/// Files written by tests/golden/make_golden.py (Python `cryptography`), so the format as
/// documented, not merely as implemented, is what this crate reads.
#[test]
fn opens_golden_files_from_an_independent_implementation() {
    let key = golden_key();
    for (text, suite) in [
        (
            include_str!("golden/protected-chacha20-poly1305.hex"),
            AeadSuite::ChaCha20Poly1305,
        ),
        (
            include_str!("golden/protected-aes-256-gcm.hex"),
            AeadSuite::Aes256Gcm,
        ),
    ] {
        let bytes = golden(text);
        let file = KeyFile::decode(&bytes).unwrap();
        assert_eq!(file.node_id(), NodeId::from(key.verifying_key()));
        assert_eq!(
            file.protection(),
            KeyProtection::Passphrase {
                suite,
                kdf: KdfParams::new(32, 3, 4).unwrap()
            }
        );
        assert!(!file.is_dev_mode());
        assert_eq!(file.open(&golden_passphrase()).unwrap(), key);
        // Decoding is canonical: re-encoding gives the same bytes.
        assert_eq!(*file.encode(), bytes);
    }
    let bytes = golden(include_str!("golden/unprotected.hex"));
    let file = KeyFile::decode(&bytes).unwrap();
    assert!(file.is_dev_mode());
    assert_eq!(file.open(&Unlock::DevMode).unwrap(), key);
    assert_eq!(*file.encode(), bytes);
}

fn expected_error_for_damage_at(position: usize, replaced: u8) -> KeyFileError {
    match position {
        0..8 => KeyFileError::NotAKeyFile,
        8 => KeyFileError::UnsupportedVersion(replaced),
        9 if replaced == 0 => KeyFileError::TrailingBytes {
            expected: 106,
            actual: 163,
        },
        9 => KeyFileError::UnknownProtection(replaced),
        _ => KeyFileError::Corrupted,
    }
}

#[test]
fn every_single_byte_change_is_a_typed_error() {
    let bytes = golden(include_str!("golden/protected-chacha20-poly1305.hex"));
    for position in 0..bytes.len() {
        for value in 0..=u8::MAX {
            if value == bytes[position] {
                continue;
            }
            let mut damaged = bytes.clone();
            damaged[position] = value;
            assert_eq!(
                KeyFile::decode(&damaged).unwrap_err(),
                expected_error_for_damage_at(position, value),
                "byte {position} set to {value:#04x}"
            );
        }
    }
}

#[test]
fn every_truncation_is_a_typed_error() {
    for text in [
        include_str!("golden/protected-aes-256-gcm.hex"),
        include_str!("golden/unprotected.hex"),
    ] {
        let bytes = golden(text);
        for len in 0..bytes.len() {
            let expected = if len < 10 { 10 } else { bytes.len() };
            assert_eq!(
                KeyFile::decode(&bytes[..len]).unwrap_err(),
                KeyFileError::Truncated {
                    expected,
                    actual: len
                },
                "length {len}"
            );
        }
    }
}

#[test]
fn wrong_passphrase_is_distinct_from_damage() {
    let file = KeyFile::decode(&golden(include_str!("golden/protected-aes-256-gcm.hex"))).unwrap();
    let wrong = Unlock::Passphrase(Passphrase::new("dawn golden passphrasE").unwrap());
    assert_eq!(
        file.open(&wrong).unwrap_err(),
        OpenKeyError::WrongPassphrase
    );
}

#[test]
fn seal_round_trip_through_bytes() {
    let key = SigningKey::generate().unwrap();
    let passphrase = Passphrase::new("hunter2 hunter2").unwrap();
    for suite in AeadSuite::ALL {
        let options = SealOptions::new(KdfParams::new(64, 2, 2).unwrap(), suite);
        let bytes = KeyFile::seal(&key, &passphrase, &options).unwrap().encode();
        assert_eq!(bytes[..8], KEY_FILE_MAGIC);
        let file = KeyFile::decode(&bytes).unwrap();
        assert_eq!(
            file.open(&Unlock::Passphrase(passphrase.clone())).unwrap(),
            key
        );
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = KeyFile::decode(&bytes);
    }

    #[test]
    fn magic_prefixed_bytes_never_panic(
        version in prop_oneof![Just(1u8), any::<u8>()],
        protection in prop_oneof![Just(0u8), Just(1u8), any::<u8>()],
        tail in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = KEY_FILE_MAGIC.to_vec();
        bytes.push(version);
        bytes.push(protection);
        bytes.extend_from_slice(&tail);
        // Random bytes cannot carry a valid SHA-256 checksum.
        prop_assert!(KeyFile::decode(&bytes).is_err());
    }

    #[test]
    fn unprotected_round_trip(seed in any::<[u8; 32]>()) {
        let key = SigningKey::from_bytes(&seed);
        let bytes = KeyFile::unprotected(&key).encode();
        let file = KeyFile::decode(&bytes).unwrap();
        prop_assert_eq!(file.node_id(), NodeId::from(key.verifying_key()));
        prop_assert_eq!(file.open(&Unlock::DevMode).unwrap(), key);
    }
}
