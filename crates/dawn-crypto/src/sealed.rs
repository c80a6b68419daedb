//! Sealed boxes: authenticated public-key encryption to one recipient.
//!
//! # Construction (`v1`)
//!
//! The sender draws an ephemeral X25519 key `e` and computes two exchanges with the recipient's
//! key `R`: `dh_e = X25519(e, R)` (forward secrecy against a later leak of the sender's key) and
//! `dh_s = X25519(s, R)` (authenticates the sender: only the holder of `s` or `r` can compute
//! it). Then
//!
//! ```text
//! info  = "dawn/sealed-box/v1" || suite || E || S || R || u64be(len(purpose)) || purpose
//! okm   = HKDF-SHA256(salt = "", ikm = dh_e || dh_s, info, 44 bytes)
//! key   = okm[0..32], nonce = okm[32..44]
//! box   = 0x01 || suite || E || AEAD(key, nonce, aad = 0x01 || suite || E, plaintext)
//! ```
//!
//! so the key binds the sender `S`, the recipient `R`, the ephemeral key and the purpose
//! string: a box opened with the wrong expected sender, by the wrong recipient, or for another
//! purpose fails authentication. This is the shape of HPKE's `AuthEncap` (RFC 9180) with
//! Dawn's own labels. Each box has a fresh key, so the derived nonce is never reused.

use zeroize::Zeroizing;

use crate::aead::{Aead, AeadError, AeadKey, AeadSuite, KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::kdf::hkdf_sha256;
use crate::rng::RngError;
use crate::x25519::{DhError, X25519PublicKey, X25519SecretKey};

const VERSION: u8 = 1;
const LABEL: &[u8] = b"dawn/sealed-box/v1";
const HEADER_LEN: usize = 2 + 32;

/// Bytes a sealed box adds to its plaintext: version, suite, ephemeral key and tag.
pub const SEAL_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Sealing or opening a box failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The box is shorter than the fixed overhead.
    #[error("sealed box truncated: {len} bytes, at least {SEAL_OVERHEAD} required")]
    Truncated {
        /// The length that was given.
        len: usize,
    },
    /// The box's format version is not one this build can open.
    #[error("sealed box version {0} is not supported (this build opens version {VERSION})")]
    UnsupportedVersion(u8),
    /// The box names an AEAD suite this build does not know.
    #[error("sealed box names unknown AEAD suite id {0}")]
    UnknownSuite(u8),
    /// A key exchange was not contributory (a low-order public key was supplied).
    #[error(transparent)]
    KeyExchange(#[from] DhError),
    /// The box was altered, or the sender, recipient or purpose do not match.
    #[error("sealed box failed to authenticate")]
    Authentication,
    /// The plaintext exceeds the AEAD's limit.
    #[error("plaintext too long to seal")]
    TooLong,
    /// No randomness for the ephemeral key.
    #[error(transparent)]
    Rng(#[from] RngError),
}

/// Seals `plaintext` from `sender` to `recipient` for `purpose`.
///
/// `purpose` names what the box is for (for example `b"dawn/relay/v1"`); the recipient must name
/// the same purpose to open it, so a box made for one protocol cannot be replayed into another.
///
/// # Errors
/// [`SealError::KeyExchange`] if `recipient` is a low-order point, [`SealError::Rng`] if no
/// ephemeral key can be drawn, [`SealError::TooLong`] for plaintexts beyond the AEAD limit.
pub fn seal(
    sender: &X25519SecretKey,
    recipient: &X25519PublicKey,
    purpose: &[u8],
    suite: AeadSuite,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let ephemeral = X25519SecretKey::generate()?;
    seal_with_ephemeral(&ephemeral, sender, recipient, purpose, suite, plaintext)
}

/// [`seal`] with a caller-chosen ephemeral key, for known-answer tests only.
#[doc(hidden)]
pub fn seal_with_ephemeral(
    ephemeral: &X25519SecretKey,
    sender: &X25519SecretKey,
    recipient: &X25519PublicKey,
    purpose: &[u8],
    suite: AeadSuite,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let ephemeral_public = ephemeral.public_key();
    let dh_e = ephemeral.diffie_hellman(recipient)?;
    let dh_s = sender.diffie_hellman(recipient)?;
    let (aead, nonce) = schedule(
        suite,
        &ephemeral_public,
        &sender.public_key(),
        recipient,
        dh_e.as_bytes(),
        dh_s.as_bytes(),
        purpose,
    );

    let mut out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
    out.push(VERSION);
    out.push(suite.id());
    out.extend_from_slice(ephemeral_public.as_bytes());
    let mut body = Vec::with_capacity(plaintext.len() + TAG_LEN);
    body.extend_from_slice(plaintext);
    aead.encrypt_in_place(&nonce, &out, &mut body)
        .map_err(|_| SealError::TooLong)?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens a box that `sender` sealed to `recipient` for `purpose`.
///
/// # Errors
/// [`SealError::Truncated`], [`SealError::UnsupportedVersion`] or [`SealError::UnknownSuite`]
/// for a malformed box; [`SealError::KeyExchange`] for a low-order ephemeral or sender key;
/// [`SealError::Authentication`] if any byte was changed or the sender, recipient or purpose
/// differ from those it was sealed with.
pub fn open(
    recipient: &X25519SecretKey,
    sender: &X25519PublicKey,
    purpose: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(SealError::Truncated { len: sealed.len() });
    }
    let (header, body) = sealed.split_at(HEADER_LEN);
    if header[0] != VERSION {
        return Err(SealError::UnsupportedVersion(header[0]));
    }
    let suite = AeadSuite::from_id(header[1]).ok_or(SealError::UnknownSuite(header[1]))?;
    let mut ephemeral = [0u8; 32];
    ephemeral.copy_from_slice(&header[2..HEADER_LEN]);
    let ephemeral = X25519PublicKey::from_bytes(ephemeral);

    let dh_e = recipient.diffie_hellman(&ephemeral)?;
    let dh_s = recipient.diffie_hellman(sender)?;
    let (aead, nonce) = schedule(
        suite,
        &ephemeral,
        sender,
        &recipient.public_key(),
        dh_e.as_bytes(),
        dh_s.as_bytes(),
        purpose,
    );
    let mut plaintext = body.to_vec();
    aead.decrypt_in_place(&nonce, header, &mut plaintext)
        .map_err(|e| match e {
            AeadError::Authentication => SealError::Authentication,
            AeadError::TooLong => SealError::TooLong,
        })?;
    Ok(plaintext)
}

fn schedule(
    suite: AeadSuite,
    ephemeral: &X25519PublicKey,
    sender: &X25519PublicKey,
    recipient: &X25519PublicKey,
    dh_e: &[u8; 32],
    dh_s: &[u8; 32],
    purpose: &[u8],
) -> (Aead, [u8; NONCE_LEN]) {
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(dh_e);
    ikm[32..].copy_from_slice(dh_s);

    let mut info = Vec::with_capacity(LABEL.len() + 1 + 96 + 8 + purpose.len());
    info.extend_from_slice(LABEL);
    info.push(suite.id());
    info.extend_from_slice(ephemeral.as_bytes());
    info.extend_from_slice(sender.as_bytes());
    info.extend_from_slice(recipient.as_bytes());
    info.extend_from_slice(&(purpose.len() as u64).to_be_bytes());
    info.extend_from_slice(purpose);

    let mut okm = Zeroizing::new([0u8; KEY_LEN + NONCE_LEN]);
    // 44 bytes is always within HKDF-SHA256's limit of 8160.
    let _ = hkdf_sha256(&[], &ikm[..], &info, &mut okm[..]);
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&okm[..KEY_LEN]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&okm[KEY_LEN..]);
    (Aead::new(suite, &AeadKey::from_array(key)), nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (X25519SecretKey, X25519SecretKey) {
        (
            X25519SecretKey::generate().unwrap(),
            X25519SecretKey::generate().unwrap(),
        )
    }

    #[test]
    fn round_trip_both_suites() {
        let (s, r) = keys();
        for suite in AeadSuite::ALL {
            let boxed = seal(&s, &r.public_key(), b"p", suite, b"hello").unwrap();
            assert_eq!(boxed.len(), 5 + SEAL_OVERHEAD);
            assert_eq!(boxed[1], suite.id());
            assert_eq!(open(&r, &s.public_key(), b"p", &boxed).unwrap(), b"hello");
        }
    }

    #[test]
    fn every_byte_is_authenticated() {
        let (s, r) = keys();
        let boxed = seal(&s, &r.public_key(), b"p", AeadSuite::default(), b"payload").unwrap();
        for i in 0..boxed.len() {
            let mut bad = boxed.clone();
            bad[i] ^= 0x40;
            let err = open(&r, &s.public_key(), b"p", &bad).unwrap_err();
            match i {
                0 => assert_eq!(err, SealError::UnsupportedVersion(0x41)),
                1 => assert_eq!(err, SealError::UnknownSuite(0x41)),
                _ => assert!(
                    matches!(err, SealError::Authentication | SealError::KeyExchange(_)),
                    "byte {i}: {err:?}"
                ),
            }
        }
    }

    #[test]
    fn binds_sender_recipient_and_purpose() {
        let (s, r) = keys();
        let (mallory, other) = keys();
        let boxed = seal(&s, &r.public_key(), b"p", AeadSuite::default(), b"x").unwrap();
        assert_eq!(
            open(&r, &mallory.public_key(), b"p", &boxed),
            Err(SealError::Authentication)
        );
        assert_eq!(
            open(&other, &s.public_key(), b"p", &boxed),
            Err(SealError::Authentication)
        );
        assert_eq!(
            open(&r, &s.public_key(), b"q", &boxed),
            Err(SealError::Authentication)
        );
    }

    #[test]
    fn truncated_and_low_order() {
        let (s, r) = keys();
        assert_eq!(
            open(&r, &s.public_key(), b"p", &[1u8; SEAL_OVERHEAD - 1]),
            Err(SealError::Truncated {
                len: SEAL_OVERHEAD - 1
            })
        );
        assert_eq!(
            seal(
                &s,
                &X25519PublicKey::from_bytes([0; 32]),
                b"p",
                AeadSuite::default(),
                b""
            ),
            Err(SealError::KeyExchange(DhError::NonContributory))
        );
    }
}
