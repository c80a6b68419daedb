//! Authenticated encryption with associated data, one type for both suites.

use std::fmt;
use std::str::FromStr;

use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::rng::{RngError, random_array};

/// Key length in bytes for every suite.
pub const KEY_LEN: usize = 32;
/// Nonce length in bytes for every suite.
pub const NONCE_LEN: usize = 12;
/// Authentication tag length in bytes for every suite.
pub const TAG_LEN: usize = 16;

/// An AEAD operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AeadError {
    /// The ciphertext, nonce, associated data or key did not authenticate. Which one is
    /// deliberately not said.
    #[error("AEAD authentication failed")]
    Authentication,
    /// The plaintext or associated data exceeds the suite's limit.
    #[error("AEAD input too long for the suite")]
    TooLong,
}

/// A suite name was not recognised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown AEAD suite {0:?}; expected \"chacha20-poly1305\" or \"aes-256-gcm\"")]
pub struct UnknownSuite(pub String);

/// The AEAD algorithms Dawn speaks. Both take a 32-byte key, a 12-byte nonce and add a 16-byte
/// tag, so they are interchangeable everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AeadSuite {
    /// ChaCha20-Poly1305 (RFC 8439): the default, fast everywhere, constant-time in software.
    #[default]
    ChaCha20Poly1305,
    /// AES-256-GCM (NIST SP 800-38D): for deployments that require it; fastest with AES-NI.
    Aes256Gcm,
}

impl AeadSuite {
    /// Every suite, in identifier order.
    pub const ALL: [Self; 2] = [Self::ChaCha20Poly1305, Self::Aes256Gcm];

    /// The suite's name in configuration and logs.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
            Self::Aes256Gcm => "aes-256-gcm",
        }
    }

    /// The suite's one-byte identifier in Dawn's binary formats.
    #[must_use]
    pub const fn id(self) -> u8 {
        match self {
            Self::ChaCha20Poly1305 => 1,
            Self::Aes256Gcm => 2,
        }
    }

    /// The suite with this one-byte identifier, if any.
    #[must_use]
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::ChaCha20Poly1305),
            2 => Some(Self::Aes256Gcm),
            _ => None,
        }
    }
}

impl fmt::Display for AeadSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AeadSuite {
    type Err = UnknownSuite;

    /// Parses a suite name, ignoring ASCII case, `-` and `_`.
    fn from_str(s: &str) -> Result<Self, UnknownSuite> {
        let folded: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match folded.as_str() {
            "chacha20poly1305" => Ok(Self::ChaCha20Poly1305),
            "aes256gcm" => Ok(Self::Aes256Gcm),
            _ => Err(UnknownSuite(s.to_owned())),
        }
    }
}

/// A 32-byte symmetric key. Zeroized on drop, redacted in `Debug`, compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AeadKey([u8; KEY_LEN]);

impl AeadKey {
    /// Generates a key from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`RngError`] if the operating system cannot provide randomness.
    pub fn generate() -> Result<Self, RngError> {
        Ok(Self(random_array()?))
    }

    /// Wraps 32 key bytes.
    #[must_use]
    pub const fn from_array(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl PartialEq for AeadKey {
    fn eq(&self, other: &Self) -> bool {
        crate::ct_eq(&self.0, &other.0)
    }
}

impl Eq for AeadKey {}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AeadKey(<redacted>)")
    }
}

#[derive(Clone)]
enum Cipher {
    ChaCha(ChaCha20Poly1305),
    Aes(Box<Aes256Gcm>),
}

/// A keyed AEAD of either suite.
///
/// The caller owns nonce uniqueness: never encrypt two messages under one key with the same
/// nonce. Dawn's own protocols either use a fresh key per message (sealed boxes) or a counter.
#[derive(Clone)]
pub struct Aead {
    suite: AeadSuite,
    cipher: Cipher,
}

impl Aead {
    /// Keys a cipher of the given suite.
    #[must_use]
    pub fn new(suite: AeadSuite, key: &AeadKey) -> Self {
        let cipher = match suite {
            AeadSuite::ChaCha20Poly1305 => Cipher::ChaCha(ChaCha20Poly1305::new(&key.0.into())),
            AeadSuite::Aes256Gcm => Cipher::Aes(Box::new(Aes256Gcm::new(&key.0.into()))),
        };
        Self { suite, cipher }
    }

    /// The suite this cipher runs.
    #[must_use]
    pub fn suite(&self) -> AeadSuite {
        self.suite
    }

    /// Encrypts `plaintext`, returning `ciphertext || tag` (`plaintext.len() + 16` bytes).
    ///
    /// # Errors
    /// [`AeadError::TooLong`] if the input exceeds the suite's limit (about 256 GiB).
    pub fn encrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, AeadError> {
        let mut buffer = Vec::with_capacity(plaintext.len() + TAG_LEN);
        buffer.extend_from_slice(plaintext);
        self.encrypt_in_place(nonce, aad, &mut buffer)?;
        Ok(buffer)
    }

    /// Decrypts `ciphertext || tag`.
    ///
    /// # Errors
    /// [`AeadError::Authentication`] if anything was altered or the key, nonce or `aad` differ.
    pub fn decrypt(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, AeadError> {
        let mut buffer = ciphertext.to_vec();
        self.decrypt_in_place(nonce, aad, &mut buffer)?;
        Ok(buffer)
    }

    /// Encrypts `buffer` in place and appends the tag.
    ///
    /// # Errors
    /// As [`Aead::encrypt`].
    pub fn encrypt_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut Vec<u8>,
    ) -> Result<(), AeadError> {
        let nonce = (*nonce).into();
        let result = match &self.cipher {
            Cipher::ChaCha(c) => c.encrypt_in_place(&nonce, aad, buffer),
            Cipher::Aes(c) => c.encrypt_in_place(&nonce, aad, buffer),
        };
        result.map_err(|_| AeadError::TooLong)
    }

    /// Checks the tag at the end of `buffer`, then decrypts in place and truncates the tag.
    /// On failure `buffer` is cleared, so no unauthenticated plaintext is ever observable.
    ///
    /// # Errors
    /// As [`Aead::decrypt`].
    pub fn decrypt_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut Vec<u8>,
    ) -> Result<(), AeadError> {
        let nonce = (*nonce).into();
        let result = match &self.cipher {
            Cipher::ChaCha(c) => c.decrypt_in_place(&nonce, aad, buffer),
            Cipher::Aes(c) => c.decrypt_in_place(&nonce, aad, buffer),
        };
        result.map_err(|_| {
            buffer.clear();
            AeadError::Authentication
        })
    }
}

impl fmt::Debug for Aead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aead")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_names_round_trip() {
        for suite in AeadSuite::ALL {
            assert_eq!(suite.name().parse::<AeadSuite>().unwrap(), suite);
            assert_eq!(AeadSuite::from_id(suite.id()), Some(suite));
        }
        assert_eq!(
            "ChaCha20_Poly1305".parse::<AeadSuite>().unwrap(),
            AeadSuite::ChaCha20Poly1305
        );
        assert_eq!(
            "AES-256-GCM".parse::<AeadSuite>().unwrap(),
            AeadSuite::Aes256Gcm
        );
        assert!("aes-128-gcm".parse::<AeadSuite>().is_err());
        assert_eq!(AeadSuite::from_id(0), None);
        assert_eq!(AeadSuite::default(), AeadSuite::ChaCha20Poly1305);
    }

    #[test]
    fn tamper_fails_and_clears_buffer() {
        for suite in AeadSuite::ALL {
            let aead = Aead::new(suite, &AeadKey::from_array([3; 32]));
            let nonce = [1u8; NONCE_LEN];
            let ct = aead.encrypt(&nonce, b"aad", b"plaintext").unwrap();
            assert_eq!(ct.len(), 9 + TAG_LEN);
            for i in 0..ct.len() {
                let mut bad = ct.clone();
                bad[i] ^= 1;
                assert_eq!(
                    aead.decrypt_in_place(&nonce, b"aad", &mut bad),
                    Err(AeadError::Authentication)
                );
                assert!(bad.is_empty());
            }
            assert!(aead.decrypt(&nonce, b"aaD", &ct).is_err());
            assert!(aead.decrypt(&[2u8; NONCE_LEN], b"aad", &ct).is_err());
            assert!(aead.decrypt(&nonce, b"aad", &ct[..TAG_LEN - 1]).is_err());
        }
    }

    #[test]
    fn key_debug_redacts() {
        assert_eq!(
            format!("{:?}", AeadKey::from_array([1; 32])),
            "AeadKey(<redacted>)"
        );
    }
}
