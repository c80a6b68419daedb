//! HKDF-SHA256 (RFC 5869).

use hkdf::Hkdf;
use sha2::Sha256;

use crate::aead::AeadKey;

/// HKDF could not produce the requested output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KdfError {
    /// More than 255 * 32 = 8160 bytes were requested from HKDF-SHA256.
    #[error("HKDF-SHA256 can produce at most 8160 bytes, {requested} were requested")]
    OutputTooLong {
        /// The number of bytes asked for.
        requested: usize,
    },
}

/// HKDF-SHA256 extract-then-expand: fills `out` with key material derived from `ikm`.
///
/// `salt` may be empty (RFC 5869 then uses a string of zeroes); `info` binds the output to its
/// purpose and should name it (for example `b"dawn/keystore/v1"`).
///
/// # Errors
/// [`KdfError::OutputTooLong`] if `out` is longer than 8160 bytes.
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), KdfError> {
    let salt = if salt.is_empty() { None } else { Some(salt) };
    Hkdf::<Sha256>::new(salt, ikm)
        .expand(info, out)
        .map_err(|_| KdfError::OutputTooLong {
            requested: out.len(),
        })
}

/// Derives a 32-byte AEAD key with HKDF-SHA256, for the common case.
#[must_use]
pub fn derive_key(salt: &[u8], ikm: &[u8], info: &[u8]) -> AeadKey {
    let mut key = [0u8; crate::aead::KEY_LEN];
    // 32 bytes is always within HKDF-SHA256's limit of 8160.
    let _ = hkdf_sha256(salt, ikm, info, &mut key);
    AeadKey::from_array(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_long_is_an_error() {
        let mut out = vec![0u8; 8161];
        assert_eq!(
            hkdf_sha256(b"", b"ikm", b"", &mut out),
            Err(KdfError::OutputTooLong { requested: 8161 })
        );
        let mut max = vec![0u8; 8160];
        hkdf_sha256(b"", b"ikm", b"", &mut max).unwrap();
    }

    #[test]
    fn info_separates_outputs() {
        let a = derive_key(b"salt", b"ikm", b"a");
        let b = derive_key(b"salt", b"ikm", b"b");
        assert_ne!(a, b);
    }
}
