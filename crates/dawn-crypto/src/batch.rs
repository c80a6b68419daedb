//! Batch verification of Ed25519 signatures that names the bad ones.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity as _, VartimeMultiscalarMul as _};
use sha2::{Digest as _, Sha512};

use crate::ed25519::{Prepared, Signature, VerifyingKey};

/// Sub-batches at or below this size are checked one signature at a time: a batch equation
/// costs about half a single verification per signature plus a fixed overhead, so bisecting
/// further gains nothing.
const LEAF: usize = 4;

/// Domain separation for the batch coefficients.
const LABEL: &[u8] = b"dawn/ed25519-batch/v1";

/// Some signatures in a batch did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} of the batch's signatures failed verification", .invalid.len())]
pub struct BatchError {
    invalid: Vec<usize>,
}

impl BatchError {
    /// Indices (into the slice given to [`verify_batch`]) of the signatures that failed, in
    /// ascending order. Every index not listed verified.
    #[must_use]
    pub fn invalid(&self) -> &[usize] {
        &self.invalid
    }
}

/// Verifies many `(message, signature, key)` triples at once.
///
/// Accepts exactly the signatures that [`VerifyingKey::verify`] accepts: it applies the same
/// strict encoding checks to each signature, then checks the same cofactored equation for the
/// whole batch as one random linear combination, in roughly half the time for large batches.
/// (A batch of the cofactorless equation could not promise this; see
/// [`VerifyingKey::verify`].) When the batch fails, it bisects to find which signatures are
/// bad, so one forged signature costs its sender, not every honest signer in the batch.
///
/// The 128-bit random coefficients of the batch equation are derived from a hash of every
/// input, so the result is deterministic, and inputs that cancel out cannot be chosen in
/// advance: each attempt to slip a bad signature through succeeds with probability about
/// 2^-127.
///
/// # Errors
/// [`BatchError`] listing the index of every signature that failed.
pub fn verify_batch(items: &[(&[u8], &Signature, &VerifyingKey)]) -> Result<(), BatchError> {
    let mut invalid = Vec::new();
    let mut indices = Vec::with_capacity(items.len());
    let mut prepared = Vec::with_capacity(items.len());
    for (index, (message, signature, key)) in items.iter().enumerate() {
        match Prepared::new(key, message, signature) {
            Some(p) => {
                indices.push(index);
                prepared.push(p);
            }
            None => invalid.push(index),
        }
    }
    let coefficients = coefficients(items, &indices, &prepared);
    bisect(&indices, &prepared, &coefficients, &mut invalid);
    if invalid.is_empty() {
        Ok(())
    } else {
        invalid.sort_unstable();
        Err(BatchError { invalid })
    }
}

/// One 128-bit coefficient per prepared signature, from a transcript of every `R || S`, `A`
/// and challenge (which covers the message) in the batch.
fn coefficients(
    items: &[(&[u8], &Signature, &VerifyingKey)],
    indices: &[usize],
    prepared: &[Prepared],
) -> Vec<Scalar> {
    let mut transcript = Sha512::new();
    transcript.update(LABEL);
    transcript.update((prepared.len() as u64).to_le_bytes());
    for (&index, p) in indices.iter().zip(prepared) {
        if let Some((_, signature, key)) = items.get(index) {
            transcript.update(signature.as_bytes());
            transcript.update(key.as_bytes());
        }
        transcript.update(p.k.as_bytes());
    }
    let seed = transcript.finalize();
    (0..prepared.len())
        .map(|i| {
            let block = Sha512::new()
                .chain_update(seed)
                .chain_update((i as u64).to_le_bytes())
                .finalize();
            let mut z = [0u8; 32];
            z[..16].copy_from_slice(&block[..16]);
            // Never zero, which would leave a signature unchecked.
            z[0] |= 1;
            Scalar::from_bytes_mod_order(z)
        })
        .collect()
}

/// Checks `prepared` (with `indices` into the caller's slice and one coefficient each),
/// pushing the index of every signature that fails onto `invalid`.
fn bisect(
    indices: &[usize],
    prepared: &[Prepared],
    coefficients: &[Scalar],
    invalid: &mut Vec<usize>,
) {
    if prepared.is_empty() {
        return;
    }
    if prepared.len() <= LEAF {
        for (index, p) in indices.iter().zip(prepared) {
            if !p.equation_holds() {
                invalid.push(*index);
            }
        }
        return;
    }
    if batch_equation_holds(prepared, coefficients) {
        return;
    }
    let mid = prepared.len() / 2;
    let (indices_l, indices_r) = indices.split_at(mid);
    let (prepared_l, prepared_r) = prepared.split_at(mid);
    let (coefficients_l, coefficients_r) = coefficients.split_at(mid);
    bisect(indices_l, prepared_l, coefficients_l, invalid);
    bisect(indices_r, prepared_r, coefficients_r, invalid);
}

/// Whether `[8](sum z_i R_i + sum (z_i k_i) A_i - (sum z_i S_i) B)` is the identity, which for
/// random `z_i` holds (but for a negligible chance) only if every signature's equation does.
fn batch_equation_holds(prepared: &[Prepared], coefficients: &[Scalar]) -> bool {
    let mut scalars = Vec::with_capacity(2 * prepared.len() + 1);
    let mut points = Vec::with_capacity(2 * prepared.len() + 1);
    let mut basepoint_coefficient = Scalar::ZERO;
    for (p, z) in prepared.iter().zip(coefficients) {
        basepoint_coefficient += z * p.s;
        scalars.push(*z);
        points.push(Some(p.r));
        scalars.push(z * p.k);
        points.push(Some(p.a));
    }
    scalars.push(-basepoint_coefficient);
    points.push(Some(ED25519_BASEPOINT_POINT));
    EdwardsPoint::optional_multiscalar_mul(&scalars, points)
        .is_some_and(|sum| sum.mul_by_cofactor().is_identity())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;

    fn corpus(n: usize) -> (Vec<Vec<u8>>, Vec<Signature>, Vec<VerifyingKey>) {
        let mut messages = Vec::new();
        let mut signatures = Vec::new();
        let mut keys = Vec::new();
        for i in 0..n {
            let key = SigningKey::from_bytes(&[(i % 251) as u8 + 1; 32]);
            let message = format!("message {i}").into_bytes();
            signatures.push(key.sign(&message));
            keys.push(key.verifying_key());
            messages.push(message);
        }
        (messages, signatures, keys)
    }

    fn run(
        messages: &[Vec<u8>],
        signatures: &[Signature],
        keys: &[VerifyingKey],
    ) -> Result<(), BatchError> {
        let items: Vec<_> = (0..messages.len())
            .map(|i| (messages[i].as_slice(), &signatures[i], &keys[i]))
            .collect();
        verify_batch(&items)
    }

    #[test]
    fn all_valid() {
        let (m, s, k) = corpus(100);
        run(&m, &s, &k).unwrap();
        run(&[], &[], &[]).unwrap();
    }

    #[test]
    fn names_each_bad_signature() {
        let (mut m, mut s, k) = corpus(257);
        m[3] = b"tampered".to_vec();
        s[100] = s[101];
        let mut bytes = s[256].to_bytes();
        bytes[63] |= 0x80; // non-canonical S
        s[256] = Signature::from_bytes(bytes);
        let err = run(&m, &s, &k).unwrap_err();
        assert_eq!(err.invalid(), &[3, 100, 256]);
    }

    #[test]
    fn every_signature_bad() {
        let (m, mut s, k) = corpus(20);
        s.rotate_left(1);
        let err = run(&m, &s, &k).unwrap_err();
        assert_eq!(err.invalid(), (0..20).collect::<Vec<_>>().as_slice());
    }
}
