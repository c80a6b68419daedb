//! X25519 Diffie-Hellman.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::rng::{RngError, random_array};

/// A Diffie-Hellman exchange produced no usable secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DhError {
    /// The peer's public key is a low-order point, so the shared secret is all zeroes and an
    /// attacker who chose the point knows it.
    #[error("peer's X25519 key is a low-order point; the exchange is not contributory")]
    NonContributory,
}

/// An X25519 secret key. Zeroized on drop, redacted in `Debug`.
#[derive(Clone)]
pub struct X25519SecretKey(x25519_dalek::StaticSecret);

impl X25519SecretKey {
    /// Generates a new key from the operating system's CSPRNG.
    ///
    /// # Errors
    /// [`RngError`] if the operating system cannot provide randomness.
    pub fn generate() -> Result<Self, RngError> {
        let bytes = Zeroizing::new(random_array::<32>()?);
        Ok(Self::from_bytes(&bytes))
    }

    /// Builds a key from 32 bytes. Clamping (RFC 7748 section 5) happens on use, so any 32
    /// bytes are a valid key.
    #[must_use]
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(x25519_dalek::StaticSecret::from(*bytes))
    }

    /// Returns the 32 secret bytes, in a buffer that zeroizes when dropped.
    #[must_use]
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key for this secret.
    #[must_use]
    pub fn public_key(&self) -> X25519PublicKey {
        X25519PublicKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }

    /// Computes the shared secret with `peer`, refusing a non-contributory result.
    ///
    /// # Errors
    /// [`DhError::NonContributory`] if `peer` is a low-order point.
    pub fn diffie_hellman(&self, peer: &X25519PublicKey) -> Result<SharedSecret, DhError> {
        let shared = self
            .0
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer.0));
        if !shared.was_contributory() {
            return Err(DhError::NonContributory);
        }
        Ok(SharedSecret(shared.to_bytes()))
    }
}

impl fmt::Debug for X25519SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X25519SecretKey")
            .field("public", &self.public_key())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An X25519 public key (a Montgomery u-coordinate).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct X25519PublicKey([u8; 32]);

impl X25519PublicKey {
    /// Wraps 32 bytes. Every value is accepted here; low-order points are caught when used, by
    /// [`X25519SecretKey::diffie_hellman`].
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32-byte encoding.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for X25519PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "X25519PublicKey(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// The result of an X25519 exchange. Zeroized on drop, redacted in `Debug`.
///
/// Feed it to a KDF ([`crate::hkdf_sha256`]); never use it as a key directly.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret([u8; 32]);

impl SharedSecret {
    /// The raw 32-byte shared secret.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_agrees() {
        let a = X25519SecretKey::generate().unwrap();
        let b = X25519SecretKey::generate().unwrap();
        let ab = a.diffie_hellman(&b.public_key()).unwrap();
        let ba = b.diffie_hellman(&a.public_key()).unwrap();
        assert_eq!(ab.as_bytes(), ba.as_bytes());
    }

    #[test]
    fn refuses_low_order_peer() {
        let a = X25519SecretKey::generate().unwrap();
        for low in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            assert_eq!(
                a.diffie_hellman(&X25519PublicKey::from_bytes(low))
                    .map(|_| ()),
                Err(DhError::NonContributory)
            );
        }
    }

    #[test]
    fn debug_redacts() {
        let a = X25519SecretKey::from_bytes(&[9u8; 32]);
        assert!(format!("{a:?}").contains("<redacted>"));
        let s = a.diffie_hellman(&a.public_key()).unwrap();
        assert_eq!(format!("{s:?}"), "SharedSecret(<redacted>)");
    }
}
