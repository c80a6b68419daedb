//! Encryption at rest: values sealed with keys derived from the node's secret key.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use dawn_crypto::{Aead, AeadSuite, NONCE_LEN, SigningKey, TAG_LEN, derive_key, fill_random};
use zeroize::Zeroizing;

use crate::error::StoreError;

/// Version of the sealed-value layout; the first byte of every sealed value, and part of
/// what its tag authenticates.
pub const SEALED_VERSION: u8 = 1;

/// Bytes a sealed value adds to its plaintext: the version byte, the 12-byte nonce and the
/// 16-byte tag.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// The longest plaintext [`Sealer::seal`] accepts (16 MiB); every repository's own limit is
/// far below it.
pub const MAX_SEALED_PLAINTEXT: usize = 16 * 1024 * 1024;

/// The HKDF salt of every at-rest key.
const KDF_SALT: &[u8] = b"dawn/store/v1";

/// The prefix of every sealed value's associated data.
const AAD_DOMAIN: &[u8] = b"dawn/store/v1/sealed";

/// What a sealed value is for. Each purpose has its own key, derived from the node secret
/// with its own HKDF label, so a value sealed for one purpose never opens as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SealPurpose {
    /// Peer trust records ([`TrustRepo`](crate::TrustRepo)). Label `dawn/store/v1/trust`.
    Trust,
    /// Confidential payloads that accompany audit entries. Label
    /// `dawn/store/v1/audit-payload`.
    AuditPayload,
    /// Agents' sensitive values ([`AgentDataRepo`](crate::AgentDataRepo)). Label
    /// `dawn/store/v1/agent-data`.
    AgentData,
    /// Secret node settings. Label `dawn/store/v1/settings`.
    Settings,
}

impl SealPurpose {
    /// Every purpose.
    pub const ALL: [Self; 4] = [
        Self::Trust,
        Self::AuditPayload,
        Self::AgentData,
        Self::Settings,
    ];

    /// The HKDF `info` label its key is derived with.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Trust => "dawn/store/v1/trust",
            Self::AuditPayload => "dawn/store/v1/audit-payload",
            Self::AgentData => "dawn/store/v1/agent-data",
            Self::Settings => "dawn/store/v1/settings",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Trust => 0,
            Self::AuditPayload => 1,
            Self::AgentData => 2,
            Self::Settings => 3,
        }
    }
}

/// Seals values before they reach SQL and opens them after, with keys derived from the
/// node's secret key.
///
/// - **Keys**: one AES-256-GCM key per [`SealPurpose`], `HKDF-SHA256(salt = "dawn/store/v1",
///   ikm = node secret, info = purpose label)`. The keys live in the cipher state only, which
///   zeroizes on drop (the derived key bytes are wiped as soon as the cipher is keyed).
/// - **Layout**: `version (1 byte) || nonce (12 bytes, random) || ciphertext || tag (16)`,
///   [`SEAL_OVERHEAD`] bytes more than the plaintext.
/// - **Binding**: the associated data is `"dawn/store/v1/sealed"`, the version byte, then the
///   table name and the row key, each length-prefixed. A sealed value copied to another row
///   or table, or to another purpose, fails to open. The version byte is the *layout's*
///   version, stored in the value, not the database's `user_version`, so a later migration
///   of an unrelated table never makes old values unreadable.
/// - **Nonces** are 96 random bits from the OS for every seal. A key may seal about 2^32
///   values before a repeated nonce becomes a real risk (NIST SP 800-38D); the store writes
///   orders of magnitude fewer.
///
/// A `Sealer` is cheap to clone (the keys are shared) and prints nothing secret.
///
/// ```
/// use dawn_store::{SealPurpose, Sealer, StoreError};
///
/// let sealer = Sealer::from_secret(&[7; 32]);
/// let sealed = sealer.seal(SealPurpose::AgentData, "notes", b"row-1", b"secret")?;
/// let plain = sealer.open(SealPurpose::AgentData, "notes", b"row-1", &sealed)?;
/// assert_eq!(&plain[..], b"secret");
/// // Moved to another row, it no longer opens.
/// assert!(matches!(
///     sealer.open(SealPurpose::AgentData, "notes", b"row-2", &sealed),
///     Err(StoreError::Decrypt { .. })
/// ));
/// # Ok::<(), StoreError>(())
/// ```
#[derive(Clone)]
pub struct Sealer {
    ciphers: Arc<[Aead; 4]>,
}

impl Sealer {
    /// Derives the at-rest keys from the node's 32-byte secret key (its Ed25519 seed).
    #[must_use]
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        let cipher = |purpose: SealPurpose| {
            // `AeadKey` zeroizes on drop, right after keying the cipher.
            let key = derive_key(KDF_SALT, secret, purpose.label().as_bytes());
            Aead::new(AeadSuite::Aes256Gcm, &key)
        };
        Self {
            ciphers: Arc::new(SealPurpose::ALL.map(cipher)),
        }
    }

    /// Derives the at-rest keys from the node's signing key.
    #[must_use]
    pub fn from_signing_key(key: &SigningKey) -> Self {
        Self::from_secret(&key.to_bytes())
    }

    fn cipher(&self, purpose: SealPurpose) -> &Aead {
        // `index` is below 4 for every purpose.
        &self.ciphers[purpose.index()]
    }

    /// Seals `plaintext` for row `key` of `table`.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] for more than [`MAX_SEALED_PLAINTEXT`] bytes,
    /// [`StoreError::Randomness`] if the OS has no random bytes for the nonce.
    pub fn seal(
        &self,
        purpose: SealPurpose,
        table: &'static str,
        key: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let too_large = || StoreError::TooLarge {
            what: "sealed value",
            len: plaintext.len(),
            max: MAX_SEALED_PLAINTEXT,
        };
        if plaintext.len() > MAX_SEALED_PLAINTEXT {
            return Err(too_large());
        }
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce).map_err(StoreError::Randomness)?;
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.push(SEALED_VERSION);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.cipher(purpose)
            .encrypt_in_place(&nonce, &aad(table, key), &mut body)
            .map_err(|_| too_large())?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens a value [`seal`](Self::seal)ed for row `key` of `table`. The plaintext is wiped
    /// from memory when the returned buffer is dropped.
    ///
    /// # Errors
    /// [`StoreError::Decrypt`] if the value is too short, of an unknown version, was altered,
    /// belongs to another row, table or purpose, or was sealed with another node's key.
    /// Nothing of an unauthenticated value is ever returned.
    pub fn open(
        &self,
        purpose: SealPurpose,
        table: &'static str,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let fail = || StoreError::Decrypt {
            table,
            key: describe_key(key),
        };
        let (&version, rest) = sealed.split_first().ok_or_else(fail)?;
        if version != SEALED_VERSION || rest.len() < NONCE_LEN + TAG_LEN {
            return Err(fail());
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| fail())?;
        let mut plain = Zeroizing::new(body.to_vec());
        self.cipher(purpose)
            .decrypt_in_place(&nonce, &aad(table, key), &mut plain)
            .map_err(|_| fail())?;
        Ok(plain)
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

/// The associated data binding a sealed value to its row.
fn aad(table: &str, key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 7 + table.len() + key.len());
    aad.extend_from_slice(AAD_DOMAIN);
    aad.push(SEALED_VERSION);
    // Table names are short constants and row keys are bounded by every repository, so the
    // lengths fit; saturating keeps the encoding total anyway.
    aad.extend_from_slice(&u16::try_from(table.len()).unwrap_or(u16::MAX).to_be_bytes());
    aad.extend_from_slice(table.as_bytes());
    aad.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
    aad.extend_from_slice(key);
    aad
}

/// A row key for an error message: printable text as it is, anything else in hex, cut to
/// 64 bytes either way.
pub(crate) fn describe_key(key: &[u8]) -> String {
    const MAX: usize = 64;
    let shown = key.get(..MAX).unwrap_or(key);
    let mut out = match std::str::from_utf8(shown) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => {
            let mut hex = String::with_capacity(2 + shown.len() * 2);
            hex.push_str("0x");
            for b in shown {
                let _ = write!(hex, "{b:02x}");
            }
            hex
        }
    };
    if key.len() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sealer() -> Sealer {
        Sealer::from_secret(&[1; 32])
    }

    #[test]
    fn layout_is_version_nonce_ciphertext_tag() {
        let sealed = sealer()
            .seal(SealPurpose::Trust, "t", b"k", b"hello")
            .unwrap();
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(sealed[0], SEALED_VERSION);
        assert_ne!(&sealed[1 + NONCE_LEN..1 + NONCE_LEN + 5], b"hello");
    }

    #[test]
    fn nonces_are_fresh_for_every_seal() {
        let a = sealer().seal(SealPurpose::Trust, "t", b"k", b"x").unwrap();
        let b = sealer().seal(SealPurpose::Trust, "t", b"k", b"x").unwrap();
        assert_ne!(a[1..1 + NONCE_LEN], b[1..1 + NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn keys_follow_the_secret_and_the_purpose() {
        let sealed = sealer()
            .seal(SealPurpose::Trust, "t", b"k", b"value")
            .unwrap();
        assert_eq!(
            &sealer()
                .open(SealPurpose::Trust, "t", b"k", &sealed)
                .unwrap()[..],
            b"value"
        );
        let other = Sealer::from_secret(&[2; 32]);
        assert!(other.open(SealPurpose::Trust, "t", b"k", &sealed).is_err());
        for purpose in SealPurpose::ALL {
            if purpose != SealPurpose::Trust {
                assert!(sealer().open(purpose, "t", b"k", &sealed).is_err());
            }
        }
        // The signing key constructor uses the same secret.
        let from_key = Sealer::from_signing_key(&SigningKey::from_bytes(&[1; 32]));
        from_key
            .open(SealPurpose::Trust, "t", b"k", &sealed)
            .unwrap();
    }

    #[test]
    fn labels_are_distinct_and_versioned() {
        for (i, a) in SealPurpose::ALL.iter().enumerate() {
            assert!(a.label().starts_with("dawn/store/v1/"));
            assert_eq!(a.index(), i);
            for b in &SealPurpose::ALL[i + 1..] {
                assert_ne!(a.label(), b.label());
            }
        }
    }

    #[test]
    fn the_key_derivation_is_pinned() {
        // A change here makes every sealed value in the field unreadable.
        let key = derive_key(KDF_SALT, &[1; 32], b"dawn/store/v1/trust");
        let aead = Aead::new(AeadSuite::Aes256Gcm, &key);
        let nonce = [0u8; NONCE_LEN];
        let expected = aead.encrypt(&nonce, &aad("t", b"k"), b"pinned").unwrap();
        let mut sealed = vec![SEALED_VERSION];
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&expected);
        assert_eq!(
            &sealer()
                .open(SealPurpose::Trust, "t", b"k", &sealed)
                .unwrap()[..],
            b"pinned"
        );
        assert_eq!(
            aad("tb", b"key"),
            [
                &b"dawn/store/v1/sealed"[..],
                &[1, 0, 2],
                b"tb",
                &[0, 0, 0, 3],
                b"key"
            ]
            .concat()
        );
    }

    #[test]
    fn table_and_key_boundaries_are_unambiguous() {
        let sealed = sealer().seal(SealPurpose::Trust, "ab", b"c", b"v").unwrap();
        assert!(
            sealer()
                .open(SealPurpose::Trust, "a", b"bc", &sealed)
                .is_err()
        );
    }

    #[test]
    fn too_large_plaintext_is_refused() {
        let big = vec![0u8; MAX_SEALED_PLAINTEXT + 1];
        assert!(matches!(
            sealer().seal(SealPurpose::Trust, "t", b"k", &big),
            Err(StoreError::TooLarge { .. })
        ));
    }

    #[test]
    fn decrypt_errors_name_table_and_key_but_no_secret() {
        match sealer().open(SealPurpose::Settings, "settings", b"policy", b"") {
            Err(StoreError::Decrypt { table, key }) => {
                assert_eq!(table, "settings");
                assert_eq!(key, "policy");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(describe_key(&[0, 255]), "0x00ff");
        assert_eq!(describe_key(&[b'a'; 70]).chars().count(), 65);
        assert_eq!(format!("{:?}", sealer()), "Sealer(<redacted>)");
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(
            plain in proptest::collection::vec(any::<u8>(), 0..2048),
            key in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let sealed = sealer().seal(SealPurpose::AgentData, "t", &key, &plain).unwrap();
            prop_assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
            let opened = sealer().open(SealPurpose::AgentData, "t", &key, &sealed).unwrap();
            prop_assert_eq!(&opened[..], &plain[..]);
        }

        #[test]
        fn any_change_fails_to_open(
            plain in proptest::collection::vec(any::<u8>(), 0..64),
            index in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut sealed = sealer().seal(SealPurpose::AgentData, "t", b"k", &plain).unwrap();
            let i = index.index(sealed.len());
            sealed[i] ^= 1 << bit;
            let opened = sealer().open(SealPurpose::AgentData, "t", b"k", &sealed);
            prop_assert!(
                matches!(opened, Err(StoreError::Decrypt { .. })),
                "changed byte {} opened",
                i
            );
        }

        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = sealer().open(SealPurpose::Trust, "t", b"k", &bytes);
        }
    }
}
