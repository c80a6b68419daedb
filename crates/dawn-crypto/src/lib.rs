//! Dawn's cryptographic primitives, layer 0 of the workspace.
//!
//! Every other Dawn crate gets its cryptography from here, so this crate is small, has no I/O
//! and wraps audited implementations (the dalek curves and RustCrypto) behind types that make
//! the safe choice the easy one:
//!
//! - **Ed25519** ([`SigningKey`], [`VerifyingKey`], [`Signature`]): keys from the OS CSPRNG,
//!   *strict* verification only (non-canonical encodings, small-order keys and small-order `R`
//!   are rejected; the equation is RFC 8032's cofactored one), and [`verify_batch`], which
//!   accepts exactly the signatures that single verification accepts and on failure reports
//!   *which* signatures are bad.
//! - **X25519** ([`X25519SecretKey`], [`X25519PublicKey`]) with a contributory check on every
//!   shared secret.
//! - **HKDF-SHA256** ([`hkdf_sha256`], [`derive_key`]).
//! - **AEAD** ([`Aead`], [`AeadSuite`]): ChaCha20-Poly1305 (the default) or AES-256-GCM, chosen
//!   by name at run time.
//! - **Sealed boxes** ([`seal`], [`open`]): authenticated public-key encryption of a payload to
//!   one recipient, bound to sender, recipient and purpose.
//!
//! Secret material zeroizes on drop, never prints (`Debug` is redacted) and compares in
//! constant time.
//!
//! # Example
//!
//! ```
//! use dawn_crypto::{AeadSuite, SigningKey, X25519SecretKey, open, seal};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let alice = SigningKey::generate()?;
//! let sig = alice.sign(b"hello");
//! alice.verifying_key().verify(b"hello", &sig)?;
//!
//! let sender = X25519SecretKey::generate()?;
//! let recipient = X25519SecretKey::generate()?;
//! let boxed = seal(
//!     &sender,
//!     &recipient.public_key(),
//!     b"dawn/example",
//!     AeadSuite::default(),
//!     b"for your eyes only",
//! )?;
//! let plain = open(&recipient, &sender.public_key(), b"dawn/example", &boxed)?;
//! assert_eq!(&plain[..], b"for your eyes only");
//! # Ok(()) }
//! ```
//!
//! # Status
//!
//! The wire layout of sealed boxes (`v1`) and the HKDF labels are pinned by known-answer tests;
//! changing either is a protocol change.

mod aead;
mod batch;
mod ct;
mod ed25519;
mod kdf;
mod rng;
mod sealed;
mod x25519;

pub use crate::aead::{
    Aead, AeadError, AeadKey, AeadSuite, KEY_LEN as AEAD_KEY_LEN, NONCE_LEN, TAG_LEN, UnknownSuite,
};
pub use crate::batch::{BatchError, verify_batch};
pub use crate::ct::ct_eq;
pub use crate::ed25519::{
    KeyError, PUBLIC_KEY_LEN, SECRET_KEY_LEN, SIGNATURE_LEN, Signature, SignatureError, SigningKey,
    VerifyingKey,
};
pub use crate::kdf::{KdfError, derive_key, hkdf_sha256};
pub use crate::rng::{RngError, fill_random};
pub use crate::sealed::{SEAL_OVERHEAD, SealError, open, seal, seal_with_ephemeral};
pub use crate::x25519::{DhError, SharedSecret, X25519PublicKey, X25519SecretKey};
