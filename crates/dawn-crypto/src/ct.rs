//! Constant-time comparison.

use subtle::ConstantTimeEq;

/// Compares two byte strings in time that depends only on their lengths, never on their
/// contents.
///
/// Use it wherever at least one side is secret (keys, MACs, tokens). Strings of different
/// lengths compare unequal; lengths are not considered secret.
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn equal_and_unequal() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret!"));
    }
}
