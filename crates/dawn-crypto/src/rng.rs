//! The operating system's CSPRNG.

/// The operating system refused to provide random bytes.
///
/// This is rare (an early-boot system without entropy, a sandbox that forbids `getrandom`), but
/// a key must never be made from anything weaker, so it is surfaced rather than papered over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RngError(getrandom::Error);

/// Fills `dest` with bytes from the operating system's CSPRNG.
///
/// # Errors
/// [`RngError`] if the operating system cannot provide randomness.
pub fn fill_random(dest: &mut [u8]) -> Result<(), RngError> {
    getrandom::fill(dest).map_err(RngError)
}

/// Returns `N` random bytes from the operating system's CSPRNG.
pub(crate) fn random_array<const N: usize>() -> Result<[u8; N], RngError> {
    let mut out = [0u8; N];
    fill_random(&mut out)?;
    Ok(out)
}
