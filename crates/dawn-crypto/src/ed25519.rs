//! Ed25519 signatures with strict verification.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity as _;
use ed25519_dalek::Signer as _;
use sha2::{Digest as _, Sha512};
use zeroize::Zeroizing;

use crate::rng::{RngError, random_array};
use crate::x25519::{X25519PublicKey, X25519SecretKey};

/// Length in bytes of an Ed25519 secret key (the seed).
pub const SECRET_KEY_LEN: usize = 32;
/// Length in bytes of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length in bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// A public key could not be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The input had the wrong number of bytes.
    #[error("expected {expected} key bytes, got {actual}")]
    Length {
        /// The length the key type requires.
        expected: usize,
        /// The length that was supplied.
        actual: usize,
    },
    /// The bytes are not the canonical encoding of a point on the curve.
    #[error("key bytes are not a canonical curve point encoding")]
    Encoding,
    /// The point has small order: any signature would "verify" under it, so it is refused.
    #[error("key is a small-order (weak) point")]
    SmallOrder,
}

/// A signature did not verify.
///
/// Deliberately carries no detail: the reason a forgery failed is of no use to an honest caller
/// and of some use to an attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature is malformed or does not match the message and key.
    #[error("signature verification failed")]
    Invalid,
}

/// An Ed25519 secret key.
///
/// Zeroized on drop; `Debug` prints only the public half; equality is constant-time.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// Generates a new key from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`RngError`] if the operating system cannot provide randomness.
    pub fn generate() -> Result<Self, RngError> {
        let seed = Zeroizing::new(random_array::<SECRET_KEY_LEN>()?);
        Ok(Self::from_bytes(&seed))
    }

    /// Builds a key from its 32-byte seed (RFC 8032 "private key").
    #[must_use]
    pub fn from_bytes(seed: &[u8; SECRET_KEY_LEN]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// Returns the 32-byte seed, in a buffer that zeroizes when dropped.
    #[must_use]
    pub fn to_bytes(&self) -> Zeroizing<[u8; SECRET_KEY_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// Returns the public half of this key.
    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// Signs `message` (pure Ed25519, RFC 8032 section 5.1.6).
    #[must_use]
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }

    /// Converts this signing key to the X25519 secret key of the same Montgomery scalar, the
    /// counterpart of [`VerifyingKey::to_x25519`].
    ///
    /// This lets a node's single Ed25519 identity also receive [sealed boxes](crate::seal):
    /// reusing one key for Ed25519 and an X25519 KEM is analysed as secure by Thormarker,
    /// "On using the same key pair for Ed25519 and an X25519 based KEM" (ePrint 2021/509).
    #[must_use]
    pub fn to_x25519(&self) -> X25519SecretKey {
        X25519SecretKey::from_bytes(&Zeroizing::new(self.0.to_scalar_bytes()))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.verifying_key())
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        crate::ct_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for SigningKey {}

/// An Ed25519 public key, valid by construction.
///
/// A `VerifyingKey` is always the canonical encoding of a point that is *not* of small order;
/// [`VerifyingKey::from_bytes`] refuses anything else. Ordering and hashing follow the 32-byte
/// encoding.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// Parses a 32-byte public key.
    ///
    /// # Errors
    /// [`KeyError::Encoding`] for bytes that are not the canonical encoding of a curve point,
    /// [`KeyError::SmallOrder`] for one of the eight small-order points.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, KeyError> {
        // Decompression reduces y modulo p and accepts x = 0 with the sign bit set, so either
        // would be a second spelling of a key. A byte comparison is far cheaper than
        // recompressing.
        if !is_canonical_point_encoding(bytes) {
            return Err(KeyError::Encoding);
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::Encoding)?;
        if key.is_weak() {
            return Err(KeyError::SmallOrder);
        }
        Ok(Self(key))
    }

    /// Parses a public key from a slice, checking its length first.
    ///
    /// # Errors
    /// [`KeyError::Length`] if `bytes` is not 32 bytes long, otherwise as
    /// [`VerifyingKey::from_bytes`].
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let array: &[u8; PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| KeyError::Length {
            expected: PUBLIC_KEY_LEN,
            actual: bytes.len(),
        })?;
        Self::from_bytes(array)
    }

    /// The 32-byte encoding.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        self.0.as_bytes()
    }

    /// The 32-byte encoding, by value.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.to_bytes()
    }

    /// Verifies `signature` over `message` strictly.
    ///
    /// Strict means RFC 8032 section 5.1.7 to the letter, plus the checks that make
    /// verification unambiguous: `S` must be canonical (`S < L`), `R` (like the key) must be
    /// canonically encoded and not of small order, and the group equation is the cofactored
    /// `[8][S]B = [8]R + [8][k]A` that the RFC states. Exactly one signature spelling verifies
    /// for a given `R`, so signatures cannot be mauled into other valid ones.
    ///
    /// The cofactored equation is what lets [`crate::verify_batch`] accept exactly the same
    /// signatures: with the cofactorless `[S]B = R + [k]A`, a signer who puts a small-order
    /// component into `R` or into their own key can make signatures that batch verification
    /// accepts and single verification rejects, or the other way round, depending on the
    /// batch's random coefficients ("Taming the many EdDSAs", Chalkias, Garillot and
    /// Nikolaenko, 2020). Signatures from honest signers satisfy both equations.
    ///
    /// # Errors
    /// [`SignatureError::Invalid`] if the signature does not verify.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        match Prepared::new(self, message, signature) {
            Some(prepared) if prepared.equation_holds() => Ok(()),
            _ => Err(SignatureError::Invalid),
        }
    }

    /// The X25519 public key of the same Montgomery point, the counterpart of
    /// [`SigningKey::to_x25519`]: anyone who knows a node's Ed25519 key can seal to it.
    #[must_use]
    pub fn to_x25519(&self) -> X25519PublicKey {
        X25519PublicKey::from_bytes(self.0.to_montgomery().to_bytes())
    }
}

/// A signature whose encodings passed the strict checks, parsed for the group equation.
pub(crate) struct Prepared {
    /// The commitment point `R`.
    pub(crate) r: EdwardsPoint,
    /// The response scalar `S`, canonical.
    pub(crate) s: Scalar,
    /// The challenge `k = SHA-512(R || A || M) mod L`.
    pub(crate) k: Scalar,
    /// The signer's key `A`.
    pub(crate) a: EdwardsPoint,
}

impl Prepared {
    /// Applies every check that does not need the group equation: `S < L`, `R` canonically
    /// encoded and not of small order (the key was checked when it was parsed). `None` if any
    /// fails.
    pub(crate) fn new(key: &VerifyingKey, message: &[u8], signature: &Signature) -> Option<Self> {
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(signature.s_bytes()))?;
        let r_bytes = signature.r_bytes();
        if !is_canonical_point_encoding(&r_bytes) {
            return None;
        }
        let r = CompressedEdwardsY(r_bytes).decompress()?;
        if r.is_small_order() {
            return None;
        }
        let digest: [u8; 64] = Sha512::new()
            .chain_update(r_bytes)
            .chain_update(key.as_bytes())
            .chain_update(message)
            .finalize()
            .into();
        Some(Self {
            r,
            s,
            k: Scalar::from_bytes_mod_order_wide(&digest),
            a: key.0.to_edwards(),
        })
    }

    /// Whether `[8]([S]B - [k]A - R)` is the identity.
    pub(crate) fn equation_holds(&self) -> bool {
        let sb_minus_ka =
            EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &-self.a, &self.s);
        (sb_minus_ka - self.r).mul_by_cofactor().is_identity()
    }
}

/// Whether `bytes` is the canonical encoding of a point (RFC 8032 section 5.1.3): the `y`
/// coordinate is below `p = 2^255 - 19`, and the sign bit is clear where `x = 0` (the two
/// points `y = 1` and `y = p - 1`). Decompression alone accepts both kinds of alternative
/// spelling; this check costs no field arithmetic, unlike re-compressing the point.
pub(crate) fn is_canonical_point_encoding(bytes: &[u8; 32]) -> bool {
    let sign = bytes[31] >> 7 == 1;
    let top = bytes[31] & 0x7f;
    // Little-endian p is ed ff .. ff 7f: y >= p exactly when every byte above the lowest is
    // at its maximum and the lowest is at least 0xed.
    let high_is_max = top == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff);
    if high_is_max && bytes[0] >= 0xed {
        return false;
    }
    if sign {
        let y_is_one = bytes[0] == 1 && top == 0 && bytes[1..31].iter().all(|&b| b == 0);
        let y_is_minus_one = high_is_max && bytes[0] == 0xec;
        if y_is_one || y_is_minus_one {
            return false;
        }
    }
    true
}

impl Hash for VerifyingKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for VerifyingKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for VerifyingKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl TryFrom<&[u8]> for VerifyingKey {
    type Error = KeyError;

    fn try_from(bytes: &[u8]) -> Result<Self, KeyError> {
        Self::try_from_slice(bytes)
    }
}

/// An Ed25519 signature: 64 bytes, `R || S`.
///
/// Any 64 bytes make a `Signature`; validity is decided by [`VerifyingKey::verify`] and
/// [`crate::verify_batch`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    /// Wraps 64 signature bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; SIGNATURE_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses a signature from a slice, checking its length.
    ///
    /// # Errors
    /// [`KeyError::Length`] if `bytes` is not 64 bytes long.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let array: [u8; SIGNATURE_LEN] = bytes.try_into().map_err(|_| KeyError::Length {
            expected: SIGNATURE_LEN,
            actual: bytes.len(),
        })?;
        Ok(Self(array))
    }

    /// The 64-byte encoding.
    #[must_use]
    pub const fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0
    }

    /// The 64-byte encoding, borrowed.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }

    /// The `R` half (the commitment point encoding).
    pub(crate) fn r_bytes(&self) -> [u8; 32] {
        let mut r = [0u8; 32];
        r.copy_from_slice(&self.0[..32]);
        r
    }

    /// The `S` half (the response scalar encoding).
    pub(crate) fn s_bytes(&self) -> [u8; 32] {
        let mut s = [0u8; 32];
        s.copy_from_slice(&self.0[32..]);
        s
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let key = SigningKey::generate().unwrap();
        let sig = key.sign(b"message");
        key.verifying_key().verify(b"message", &sig).unwrap();
        assert_eq!(
            key.verifying_key().verify(b"messagE", &sig),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn debug_redacts_secret() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let text = format!("{key:?}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.contains("0707070707"), "{text}");
    }

    #[test]
    fn rejects_small_order_keys() {
        // The identity point (y = 1) and the point of order 2 (y = -1) among the eight
        // small-order points.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            VerifyingKey::from_bytes(&identity),
            Err(KeyError::SmallOrder)
        );
        let order2 = {
            // y = p - 1 = 2^255 - 20
            let mut b = [0xffu8; 32];
            b[0] = 0xec;
            b[31] = 0x7f;
            b
        };
        assert_eq!(VerifyingKey::from_bytes(&order2), Err(KeyError::SmallOrder));
    }

    #[test]
    fn rejects_non_canonical_key_encoding() {
        // y = p + 1 is a non-canonical spelling of the identity (y = 1).
        let mut b = [0xffu8; 32];
        b[0] = 0xee;
        b[31] = 0x7f;
        assert_eq!(VerifyingKey::from_bytes(&b), Err(KeyError::Encoding));
    }

    #[test]
    fn canonical_y_boundary() {
        // p - 1 (canonical), p and p + 1 (non-canonical), with and without the sign bit.
        let mut p_minus_1 = [0xffu8; 32];
        p_minus_1[0] = 0xec;
        p_minus_1[31] = 0x7f;
        assert!(is_canonical_point_encoding(&p_minus_1));
        let mut p = p_minus_1;
        p[0] = 0xed;
        assert!(!is_canonical_point_encoding(&p));
        p[31] |= 0x80;
        assert!(!is_canonical_point_encoding(&p));
        let mut p_plus_1 = p_minus_1;
        p_plus_1[0] = 0xee;
        assert!(!is_canonical_point_encoding(&p_plus_1));
        assert!(is_canonical_point_encoding(&[0u8; 32]));
        let mut y2 = [0u8; 32];
        y2[0] = 2;
        y2[31] = 0x80;
        assert!(is_canonical_point_encoding(&y2));
        // y = p - 1 and y = 1 have x = 0: the sign bit makes a second spelling.
        let mut minus_one_signed = p_minus_1;
        minus_one_signed[31] |= 0x80;
        assert!(!is_canonical_point_encoding(&minus_one_signed));
        assert_eq!(
            VerifyingKey::from_bytes(&minus_one_signed),
            Err(KeyError::Encoding)
        );
        let mut one_signed = [0u8; 32];
        one_signed[0] = 1;
        one_signed[31] = 0x80;
        assert!(!is_canonical_point_encoding(&one_signed));
    }

    #[test]
    fn canonical_check_agrees_with_recompression() {
        // For every valid key, the cheap check and a full recompression agree.
        for seed in 0..64u8 {
            let key = SigningKey::from_bytes(&[seed; 32]).verifying_key();
            let bytes = key.to_bytes();
            assert!(is_canonical_point_encoding(&bytes));
            assert_eq!(VerifyingKey::from_bytes(&bytes), Ok(key));
            assert_eq!(key.0.to_edwards().compress().to_bytes(), bytes);
        }
    }

    #[test]
    fn rejects_wrong_lengths() {
        assert_eq!(
            VerifyingKey::try_from_slice(&[0u8; 31]),
            Err(KeyError::Length {
                expected: 32,
                actual: 31
            })
        );
        assert!(Signature::try_from_slice(&[0u8; 63]).is_err());
    }

    #[test]
    fn rejects_non_canonical_s() {
        let key = SigningKey::from_bytes(&[1u8; 32]);
        let sig = key.sign(b"m");
        // Add the group order L to S: same value mod L, different bytes.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut bytes = sig.to_bytes();
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = u16::from(bytes[32 + i]) + u16::from(L[i]) + carry;
            bytes[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        let mauled = Signature::from_bytes(bytes);
        assert_eq!(
            key.verifying_key().verify(b"m", &mauled),
            Err(SignatureError::Invalid)
        );
    }

    /// The byte-level canonicity check must agree with "decompresses and re-compresses to the
    /// same bytes" on every encoding where they could differ.
    #[test]
    fn canonical_encoding_check_matches_recompression() {
        let reference = |bytes: &[u8; 32]| {
            CompressedEdwardsY(*bytes)
                .decompress()
                .is_some_and(|p| p.compress().as_bytes() == bytes)
        };
        let mut cases = Vec::new();
        // y = p + i for i in 0..19 (every y >= p), y = p - 1 - i, y = i, each with both signs.
        for i in 0u8..19 {
            let mut above = [0xffu8; 32];
            above[0] = 0xed + i;
            above[31] = 0x7f;
            let mut below = [0xffu8; 32];
            below[0] = 0xec - i;
            below[31] = 0x7f;
            let mut small = [0u8; 32];
            small[0] = i;
            cases.extend([above, below, small]);
        }
        for i in 0u8..64 {
            cases.push(SigningKey::from_bytes(&[i; 32]).verifying_key().to_bytes());
            cases.push(SigningKey::from_bytes(&[i; 32]).sign(&[i]).r_bytes());
        }
        let (mut canonical, mut non_canonical) = (0, 0);
        for mut bytes in cases {
            for sign in [0u8, 0x80] {
                bytes[31] = (bytes[31] & 0x7f) | sign;
                if CompressedEdwardsY(bytes).decompress().is_some() {
                    let expected = reference(&bytes);
                    assert_eq!(
                        is_canonical_point_encoding(&bytes),
                        expected,
                        "{bytes:02x?}"
                    );
                    if expected {
                        canonical += 1;
                    } else {
                        non_canonical += 1;
                    }
                }
            }
        }
        // The cases must include the decodable non-canonical spellings, not only valid keys.
        assert!(
            canonical > 100 && non_canonical >= 20,
            "{canonical} {non_canonical}"
        );
    }

    #[test]
    fn x25519_conversion_agrees() {
        let key = SigningKey::generate().unwrap();
        assert_eq!(
            key.to_x25519().public_key(),
            key.verifying_key().to_x25519()
        );
    }
}
