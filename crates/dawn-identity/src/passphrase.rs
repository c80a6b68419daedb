//! `Passphrase`: the secret that unlocks a key file, held in memory that is wiped on drop.

use std::fmt;

use zeroize::Zeroizing;

/// The longest accepted passphrase, in bytes of UTF-8.
pub const PASSPHRASE_MAX_LEN: usize = 1024;

/// A passphrase was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PassphraseError {
    /// The passphrase is empty. An unprotected key is a deliberate choice: see
    /// [`Unlock::DevMode`](crate::Unlock::DevMode).
    #[error("the passphrase is empty; to keep a key without one, use development mode explicitly")]
    Empty,
    /// The passphrase is longer than [`PASSPHRASE_MAX_LEN`] bytes.
    #[error("a passphrase is at most {PASSPHRASE_MAX_LEN} bytes, got {len}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
}

/// The passphrase that protects a key file.
///
/// Held in a buffer that is overwritten with zeroes when dropped (also when construction
/// fails); `Debug` never prints it. It is used byte for byte as UTF-8, without Unicode
/// normalisation or trimming: strip the newline that `read_line` leaves before building one.
///
/// ```
/// use dawn_identity::{Passphrase, PassphraseError};
///
/// let passphrase = Passphrase::new("correct horse battery staple")?;
/// assert_eq!(format!("{passphrase:?}"), "Passphrase(<redacted>)");
/// assert_eq!(Passphrase::new(""), Err(PassphraseError::Empty));
/// # Ok::<(), PassphraseError>(())
/// ```
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Takes ownership of `passphrase` (no copy is made when given a `String`).
    ///
    /// # Errors
    /// [`PassphraseError::Empty`] or [`PassphraseError::TooLong`]; the rejected text is
    /// zeroized all the same.
    pub fn new(passphrase: impl Into<String>) -> Result<Self, PassphraseError> {
        let text = Zeroizing::new(passphrase.into());
        if text.is_empty() {
            return Err(PassphraseError::Empty);
        }
        if text.len() > PASSPHRASE_MAX_LEN {
            return Err(PassphraseError::TooLong { len: text.len() });
        }
        Ok(Self(text))
    }

    /// The passphrase's bytes, for the key derivation.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl TryFrom<String> for Passphrase {
    type Error = PassphraseError;

    fn try_from(passphrase: String) -> Result<Self, PassphraseError> {
        Self::new(passphrase)
    }
}

impl PartialEq for Passphrase {
    fn eq(&self, other: &Self) -> bool {
        dawn_crypto::ct_eq(self.as_bytes(), other.as_bytes())
    }
}

impl Eq for Passphrase {}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced() {
        assert_eq!(Passphrase::new(""), Err(PassphraseError::Empty));
        assert!(Passphrase::new("x".repeat(PASSPHRASE_MAX_LEN)).is_ok());
        assert_eq!(
            Passphrase::new("x".repeat(PASSPHRASE_MAX_LEN + 1)),
            Err(PassphraseError::TooLong {
                len: PASSPHRASE_MAX_LEN + 1
            })
        );
        // Used byte for byte: no trimming.
        let padded = Passphrase::try_from(String::from(" pw\n")).unwrap();
        assert_eq!(padded.as_bytes(), b" pw\n");
        assert_ne!(padded, Passphrase::new("pw").unwrap());
    }

    #[test]
    fn debug_redacts() {
        let text = format!("{:?}", Passphrase::new("hunter2").unwrap());
        assert!(!text.contains("hunter2"), "{text}");
    }
}
