//! Replay protection for signed envelopes: a timestamp window and per-origin sequence windows.

use std::collections::{BTreeSet, HashMap};

use dawn_crypto::PUBLIC_KEY_LEN;
use dawn_identity::NodeId;

use crate::envelope::SignedEnvelope;

/// How many sequence numbers per millisecond of start time a [`Sequencer`] reserves.
const SEQUENCES_PER_MS: u64 = 1 << 10;

/// Bits per bitmap word.
const WORD: u64 = u64::BITS as u64;

/// The smallest and largest sequence windows a [`ReplayGuard`] keeps, in bits.
const MIN_WINDOW: u32 = 64;
const MAX_WINDOW: u32 = 1 << 16;

/// Hands out the sequence numbers a node puts in the envelopes it signs.
///
/// Numbers grow by one per envelope, which keeps them dense for the receivers' sequence
/// windows. The first is the start time in milliseconds times 1024, so a restarted node starts
/// above every number it used before, without storing a counter, as long as it signed fewer
/// than 1024 envelopes per millisecond on average and its clock did not go back.
///
/// Use one `Sequencer` per signing key, shared by every topic.
///
/// ```
/// use dawn_wire::Sequencer;
///
/// let mut sequencer = Sequencer::new(1_700_000_000_000);
/// let first = sequencer.next_sequence();
/// assert_eq!(sequencer.next_sequence(), first + 1);
/// assert!(Sequencer::new(1_700_000_000_001).next_sequence() > first + 1000);
/// ```
#[derive(Debug, Clone)]
pub struct Sequencer {
    next: u64,
}

impl Sequencer {
    /// A sequencer for a process that started at `now_ms` (milliseconds since the Unix epoch).
    #[must_use]
    pub const fn new(now_ms: u64) -> Self {
        Self {
            next: now_ms.saturating_mul(SEQUENCES_PER_MS),
        }
    }

    /// The next sequence number.
    pub const fn next_sequence(&mut self) -> u64 {
        let sequence = self.next;
        self.next = self.next.saturating_add(1);
        sequence
    }
}

/// The tuning of a [`ReplayGuard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayConfig {
    /// How far in the past a timestamp may be, in milliseconds: older envelopes are
    /// [`ReplayVerdict::Stale`]. Default 10 minutes.
    pub max_age_ms: u64,
    /// How far in the future a timestamp may be (clock skew), in milliseconds: later envelopes
    /// are [`ReplayVerdict::Future`]. Default 1 minute.
    pub max_future_ms: u64,
    /// How many sequence numbers below the highest seen per origin are still told apart, in
    /// bits. Rounded up to a multiple of 64 and clamped to `64..=65536`. Default 1024.
    pub window: u32,
    /// How many origins are tracked at most (at least 1). Default 10 000: about 3.2 MB with
    /// the default window (measured 318 bytes per origin; 198 with a 64-bit window).
    pub max_origins: usize,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            max_age_ms: 10 * 60 * 1000,
            max_future_ms: 60 * 1000,
            window: 1024,
            max_origins: 10_000,
        }
    }
}

/// What a [`ReplayGuard`] makes of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum ReplayVerdict {
    /// Not seen before and within the windows: process it.
    Fresh,
    /// Seen before, or too far below the origin's highest sequence number to tell.
    Replay,
    /// Older than the timestamp window, or from an origin the guard no longer tracks and no
    /// newer than what it forgot about that origin.
    Stale,
    /// Timestamped further in the future than the allowed clock skew.
    Future,
}

impl ReplayVerdict {
    /// Whether the envelope should be processed.
    #[must_use]
    pub const fn is_fresh(self) -> bool {
        matches!(self, Self::Fresh)
    }
}

/// An origin's public key bytes.
type OriginKey = [u8; PUBLIC_KEY_LEN];

#[derive(Debug)]
struct OriginState {
    /// Highest sequence number accepted.
    highest: u64,
    /// Ring of bits: sequence `s` lives at bit `s % 64` of word `(s / 64) % words`.
    bitmap: Box<[u64]>,
    /// Newest timestamp accepted; the eviction order.
    newest_ms: u64,
    /// Timestamps below this are refused: the guard's floor when this origin was (re)admitted.
    floor_ms: u64,
}

/// Rejects replayed, stale and future-dated envelopes, in bounded memory.
///
/// Sans-IO: it has no clock; every call takes `now_ms` (milliseconds since the Unix epoch).
///
/// # Checks
///
/// 1. **Timestamp window**: `now - max_age <= timestamp <= now + max_future`, else
///    [`Stale`](ReplayVerdict::Stale) or [`Future`](ReplayVerdict::Future).
/// 2. **Sequence window** per origin, as in IPsec and WireGuard: the highest sequence number
///    accepted and a bitmap of the `window` numbers below it. A number above the highest
///    slides the window; one inside it is fresh once; one below it is a
///    [`Replay`](ReplayVerdict::Replay) (the guard can no longer tell).
///
/// # Bounded memory, and why forgetting is safe
///
/// At most `max_origins` origins are tracked. To admit a new one when full, the guard forgets
/// the origin whose newest accepted timestamp is oldest and raises its *floor* above that
/// timestamp: from then on, an envelope from an origin it does not track is accepted only if
/// its timestamp is at or above the floor, and an origin admitted later keeps the floor of its
/// admission. Every envelope the guard ever accepted from a forgotten origin has a timestamp at
/// or below that origin's newest, hence below the floor, so it can never be accepted again.
/// The price is that a genuinely new envelope older than the floor is refused as stale;
/// evicting the oldest origin keeps the floor as low as possible, and once the floor falls out
/// of the timestamp window it costs nothing. [`prune`](Self::prune) drops origins
/// that have gone quiet for longer than the window, which is free for the same reason.
///
/// Call [`accept`](Self::accept) only for envelopes whose signature verified: otherwise a
/// forger could advance an honest origin's window and get its real envelopes refused.
///
/// ```
/// use dawn_crypto::SigningKey;
/// use dawn_wire::{ReplayConfig, ReplayGuard, ReplayVerdict, SignedEnvelope};
///
/// # fn main() -> Result<(), dawn_wire::EnvelopeError> {
/// let now = 1_700_000_000_000;
/// let key = SigningKey::from_bytes(&[7; 32]);
/// let envelope = SignedEnvelope::sign(&key, "dawn/example", now, 1, &b"hi"[..])?;
/// envelope.verify()?;
///
/// let mut guard = ReplayGuard::new(ReplayConfig::default());
/// assert_eq!(guard.accept(now, &envelope), ReplayVerdict::Fresh);
/// assert_eq!(guard.accept(now, &envelope), ReplayVerdict::Replay);
/// assert_eq!(guard.accept(now + 3_600_000, &envelope), ReplayVerdict::Stale);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReplayGuard {
    config: ReplayConfig,
    words: usize,
    /// Keyed by the origin's key bytes: a `NodeId` also holds the decompressed curve point,
    /// six times the size, which would dominate the guard's memory.
    origins: HashMap<OriginKey, OriginState>,
    /// `(newest_ms, origin)` for every tracked origin: the eviction order.
    by_age: BTreeSet<(u64, OriginKey)>,
    /// Timestamps below this are refused from origins not tracked: one more than the newest
    /// timestamp of any origin forgotten.
    floor_ms: u64,
}

impl ReplayGuard {
    /// A guard with `config` (the window and origin cap normalised as documented on
    /// [`ReplayConfig`]).
    #[must_use]
    pub fn new(mut config: ReplayConfig) -> Self {
        let window = config.window.clamp(MIN_WINDOW, MAX_WINDOW);
        config.window = window.div_ceil(MIN_WINDOW) * MIN_WINDOW;
        config.max_origins = config.max_origins.max(1);
        // One more word than the window needs, so that the whole window fits whatever the
        // highest number's offset within its word.
        let words = usize::try_from(u64::from(config.window) / WORD + 1).unwrap_or(usize::MAX);
        Self {
            config,
            words,
            origins: HashMap::new(),
            by_age: BTreeSet::new(),
            floor_ms: 0,
        }
    }

    /// The configuration in force (normalised).
    #[must_use]
    pub const fn config(&self) -> &ReplayConfig {
        &self.config
    }

    /// How many origins are tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    /// Whether no origin is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// Timestamps below this are refused from origins the guard does not track: one more than
    /// the newest timestamp accepted from any origin it forgot (0 if it forgot none).
    #[must_use]
    pub const fn floor_ms(&self) -> u64 {
        self.floor_ms
    }

    /// What [`accept`](Self::accept) would answer, without recording anything.
    pub fn check(&self, now_ms: u64, envelope: &SignedEnvelope) -> ReplayVerdict {
        self.check_parts(
            now_ms,
            envelope.origin(),
            envelope.timestamp_ms(),
            envelope.sequence(),
        )
    }

    /// Judges a *verified* envelope and, if it is fresh, records it.
    pub fn accept(&mut self, now_ms: u64, envelope: &SignedEnvelope) -> ReplayVerdict {
        self.accept_parts(
            now_ms,
            envelope.origin(),
            envelope.timestamp_ms(),
            envelope.sequence(),
        )
    }

    /// [`check`](Self::check) for anything else signed with an origin, a timestamp and a
    /// sequence number.
    pub fn check_parts(
        &self,
        now_ms: u64,
        origin: &NodeId,
        timestamp_ms: u64,
        sequence: u64,
    ) -> ReplayVerdict {
        if let Some(verdict) = self.check_time(now_ms, timestamp_ms) {
            return verdict;
        }
        match self.origins.get(origin.as_bytes()) {
            Some(state) => self.check_sequence(state, timestamp_ms, sequence),
            None if timestamp_ms < self.admission_floor() => ReplayVerdict::Stale,
            None => ReplayVerdict::Fresh,
        }
    }

    /// [`accept`](Self::accept) for anything else signed with an origin, a timestamp and a
    /// sequence number.
    pub fn accept_parts(
        &mut self,
        now_ms: u64,
        origin: &NodeId,
        timestamp_ms: u64,
        sequence: u64,
    ) -> ReplayVerdict {
        let verdict = self.check_parts(now_ms, origin, timestamp_ms, sequence);
        if verdict != ReplayVerdict::Fresh {
            return verdict;
        }
        let key = *origin.as_bytes();
        if !self.origins.contains_key(&key) {
            if self.origins.len() >= self.config.max_origins {
                self.evict_oldest();
            }
            let state = OriginState {
                highest: sequence,
                bitmap: vec![0; self.words].into_boxed_slice(),
                newest_ms: timestamp_ms,
                floor_ms: self.floor_ms,
            };
            self.origins.insert(key, state);
            self.by_age.insert((timestamp_ms, key));
        }
        let words = self.words;
        let Some(state) = self.origins.get_mut(&key) else {
            return verdict;
        };
        record(state, words, sequence);
        if timestamp_ms > state.newest_ms {
            self.by_age.remove(&(state.newest_ms, key));
            state.newest_ms = timestamp_ms;
            self.by_age.insert((timestamp_ms, key));
        }
        verdict
    }

    /// Forgets origins whose newest accepted timestamp has fallen out of the timestamp window;
    /// everything they could replay is stale anyway. Returns how many were forgotten.
    ///
    /// Optional (memory is bounded without it); call it now and then, e.g. once a minute.
    pub fn prune(&mut self, now_ms: u64) -> usize {
        let oldest_allowed = now_ms.saturating_sub(self.config.max_age_ms);
        let mut forgotten = 0;
        while let Some(&(newest_ms, origin)) = self.by_age.first() {
            if newest_ms >= oldest_allowed {
                break;
            }
            self.forget(newest_ms, &origin);
            forgotten += 1;
        }
        forgotten
    }

    fn check_time(&self, now_ms: u64, timestamp_ms: u64) -> Option<ReplayVerdict> {
        if timestamp_ms < now_ms.saturating_sub(self.config.max_age_ms) {
            Some(ReplayVerdict::Stale)
        } else if timestamp_ms > now_ms.saturating_add(self.config.max_future_ms) {
            Some(ReplayVerdict::Future)
        } else {
            None
        }
    }

    fn check_sequence(
        &self,
        state: &OriginState,
        timestamp_ms: u64,
        sequence: u64,
    ) -> ReplayVerdict {
        if timestamp_ms < state.floor_ms {
            return ReplayVerdict::Stale;
        }
        if sequence > state.highest {
            return ReplayVerdict::Fresh;
        }
        if state.highest - sequence >= u64::from(self.config.window) {
            return ReplayVerdict::Replay;
        }
        let (word, bit) = position(sequence, self.words);
        match state.bitmap.get(word) {
            Some(bits) if bits & bit == 0 => ReplayVerdict::Fresh,
            _ => ReplayVerdict::Replay,
        }
    }

    /// The floor a new origin would face: the current floor, raised above the oldest origin's
    /// newest timestamp if admitting one more origin would evict it.
    fn admission_floor(&self) -> u64 {
        if self.origins.len() < self.config.max_origins {
            return self.floor_ms;
        }
        match self.by_age.first() {
            Some(&(newest_ms, _)) => self.floor_ms.max(newest_ms.saturating_add(1)),
            None => self.floor_ms,
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(&(newest_ms, origin)) = self.by_age.first() {
            self.forget(newest_ms, &origin);
        }
    }

    fn forget(&mut self, newest_ms: u64, origin: &OriginKey) {
        self.by_age.remove(&(newest_ms, *origin));
        self.origins.remove(origin);
        self.floor_ms = self.floor_ms.max(newest_ms.saturating_add(1));
    }
}

/// Marks `sequence` as seen, sliding the window first if it is a new highest.
fn record(state: &mut OriginState, words: usize, sequence: u64) {
    if sequence > state.highest {
        let old_block = state.highest / WORD;
        let new_block = sequence / WORD;
        let advanced = new_block - old_block;
        if advanced >= words as u64 {
            state.bitmap.fill(0);
        } else {
            // Clear the words the window slides onto: they held numbers a whole ring ago.
            for block in old_block + 1..=new_block {
                let (word, _) = position(block * WORD, words);
                if let Some(bits) = state.bitmap.get_mut(word) {
                    *bits = 0;
                }
            }
        }
        state.highest = sequence;
    }
    let (word, bit) = position(sequence, words);
    if let Some(bits) = state.bitmap.get_mut(word) {
        *bits |= bit;
    }
}

/// The word index and bit mask of `sequence` in a ring of `words` words.
fn position(sequence: u64, words: usize) -> (usize, u64) {
    let block = sequence / WORD;
    // `words` is at least 2, and the remainder is below it, so both conversions are exact.
    let word = usize::try_from(block % words as u64).unwrap_or(0);
    (word, 1 << (sequence % WORD))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_crypto::SigningKey;

    const NOW: u64 = 1_700_000_000_000;

    fn node(seed: u64) -> NodeId {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[31] = 0xAA;
        SigningKey::from_bytes(&bytes).verifying_key().into()
    }

    fn guard(window: u32, max_origins: usize) -> ReplayGuard {
        ReplayGuard::new(ReplayConfig {
            max_age_ms: 10_000,
            max_future_ms: 1_000,
            window,
            max_origins,
        })
    }

    #[test]
    fn timestamp_window_edges() {
        let mut g = guard(64, 10);
        let a = node(1);
        assert_eq!(
            g.accept_parts(NOW, &a, NOW - 10_001, 1),
            ReplayVerdict::Stale
        );
        assert_eq!(
            g.accept_parts(NOW, &a, NOW + 1_001, 2),
            ReplayVerdict::Future
        );
        assert_eq!(
            g.accept_parts(NOW, &a, NOW - 10_000, 3),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            g.accept_parts(NOW, &a, NOW + 1_000, 4),
            ReplayVerdict::Fresh
        );
        // Near the ends of the clock nothing overflows.
        assert_eq!(g.check_parts(0, &a, 0, 5), ReplayVerdict::Fresh);
        assert_eq!(
            g.check_parts(u64::MAX, &a, u64::MAX, 5),
            ReplayVerdict::Fresh
        );
    }

    #[test]
    fn sequence_window_accepts_each_number_once_in_any_order() {
        let mut g = guard(128, 10);
        let a = node(2);
        assert_eq!(g.config().window, 128);
        for seq in [1000u64, 990, 999, 1001, 874, 1100] {
            assert_eq!(
                g.accept_parts(NOW, &a, NOW, seq),
                ReplayVerdict::Fresh,
                "{seq}"
            );
            assert_eq!(
                g.accept_parts(NOW, &a, NOW, seq),
                ReplayVerdict::Replay,
                "{seq}"
            );
        }
        assert_eq!(g.check_parts(NOW, &a, NOW, 873), ReplayVerdict::Replay);
        // 1100 - 128 = 972 is the first number outside the window.
        assert_eq!(g.check_parts(NOW, &a, NOW, 972), ReplayVerdict::Replay);
        assert_eq!(g.check_parts(NOW, &a, NOW, 973), ReplayVerdict::Fresh);
        // 990 and 999 were seen and are still inside the window.
        assert_eq!(g.check_parts(NOW, &a, NOW, 990), ReplayVerdict::Replay);
        assert_eq!(g.check_parts(NOW, &a, NOW, 1099), ReplayVerdict::Fresh);
        // A big jump clears the window.
        assert_eq!(
            g.accept_parts(NOW, &a, NOW, 1_000_000),
            ReplayVerdict::Fresh
        );
        assert_eq!(g.check_parts(NOW, &a, NOW, 999_999), ReplayVerdict::Fresh);
        assert_eq!(g.check_parts(NOW, &a, NOW, 1100), ReplayVerdict::Replay);
        // Origins have separate windows.
        assert_eq!(
            g.accept_parts(NOW, &node(3), NOW, 1100),
            ReplayVerdict::Fresh
        );
    }

    #[test]
    fn window_slides_word_by_word_without_forgetting_recent_numbers() {
        let mut g = guard(64, 1);
        let a = node(4);
        for seq in 0..1000u64 {
            assert_eq!(
                g.accept_parts(NOW, &a, NOW, seq),
                ReplayVerdict::Fresh,
                "{seq}"
            );
            for back in 0..64.min(seq + 1) {
                assert_eq!(
                    g.check_parts(NOW, &a, NOW, seq - back),
                    ReplayVerdict::Replay,
                    "{seq} - {back}"
                );
            }
        }
    }

    #[test]
    fn config_is_normalised() {
        let g = guard(100, 0);
        assert_eq!(g.config().window, 128);
        assert_eq!(g.config().max_origins, 1);
        assert_eq!(guard(1, 1).config().window, 64);
        assert_eq!(guard(u32::MAX, 1).config().window, 1 << 16);
    }

    #[test]
    fn eviction_bounds_memory_and_blocks_replays_of_forgotten_origins() {
        let mut g = guard(64, 3);
        for i in 0..3 {
            assert_eq!(
                g.accept_parts(NOW, &node(i), NOW - 5_000 + i, 10),
                ReplayVerdict::Fresh
            );
        }
        assert_eq!(g.len(), 3);
        // A fourth origin evicts node(0), the one with the oldest newest timestamp.
        assert_eq!(g.accept_parts(NOW, &node(9), NOW, 1), ReplayVerdict::Fresh);
        assert_eq!(g.len(), 3);
        assert_eq!(g.floor_ms(), NOW - 5_000 + 1);
        // node(0)'s old envelope is still inside the timestamp window but is refused.
        assert_eq!(
            g.accept_parts(NOW, &node(0), NOW - 5_000, 10),
            ReplayVerdict::Stale
        );
        // A newer one is accepted and node(0) is tracked again, keeping the floor.
        assert_eq!(
            g.accept_parts(NOW, &node(0), NOW - 4_000, 11),
            ReplayVerdict::Fresh
        );
        assert_eq!(g.len(), 3);
        assert_eq!(
            g.accept_parts(NOW, &node(0), NOW - 5_000, 9),
            ReplayVerdict::Stale
        );
        // Thousands of origins later the map is still capped.
        for i in 100..2100 {
            let _ = g.accept_parts(NOW, &node(i), NOW, 1);
        }
        assert_eq!(g.len(), 3);
        assert_eq!(g.by_age.len(), 3);
    }

    #[test]
    fn new_origin_refused_by_floor_does_not_evict() {
        let mut g = guard(64, 1);
        assert_eq!(g.accept_parts(NOW, &node(1), NOW, 1), ReplayVerdict::Fresh);
        // Admitting node(2) would raise the floor to NOW + 1, above its own timestamp.
        assert_eq!(
            g.accept_parts(NOW, &node(2), NOW - 1, 1),
            ReplayVerdict::Stale
        );
        assert_eq!(g.len(), 1);
        assert_eq!(g.check_parts(NOW, &node(1), NOW, 1), ReplayVerdict::Replay);
    }

    #[test]
    fn prune_forgets_only_quiet_origins() {
        let mut g = guard(64, 10);
        assert_eq!(
            g.accept_parts(NOW, &node(1), NOW - 9_000, 1),
            ReplayVerdict::Fresh
        );
        assert_eq!(g.accept_parts(NOW, &node(2), NOW, 1), ReplayVerdict::Fresh);
        assert_eq!(g.prune(NOW), 0);
        assert_eq!(g.prune(NOW + 2_000), 1);
        assert_eq!(g.len(), 1);
        // The forgotten envelope is stale by the clock anyway, and stays refused.
        assert_eq!(
            g.check_parts(NOW + 2_000, &node(1), NOW - 9_000, 1),
            ReplayVerdict::Stale
        );
        assert!(!g.is_empty());
    }

    #[test]
    fn check_does_not_record() {
        let mut g = guard(64, 10);
        let env =
            SignedEnvelope::sign(&SigningKey::from_bytes(&[1; 32]), "t", NOW, 5, &b""[..]).unwrap();
        assert_eq!(g.check(NOW, &env), ReplayVerdict::Fresh);
        assert_eq!(g.check(NOW, &env), ReplayVerdict::Fresh);
        assert!(g.is_empty());
        assert!(g.accept(NOW, &env).is_fresh());
        assert_eq!(g.check(NOW, &env), ReplayVerdict::Replay);
    }

    #[test]
    fn sequencer_is_dense_and_restart_safe() {
        let mut s = Sequencer::new(NOW);
        let first = s.next_sequence();
        assert_eq!(first, NOW * 1024);
        assert_eq!(s.next_sequence(), first + 1);
        let mut restarted = Sequencer::new(NOW + 1);
        assert!(restarted.next_sequence() >= first + 1024);
        let mut end = Sequencer::new(u64::MAX);
        assert_eq!(end.next_sequence(), u64::MAX);
        assert_eq!(end.next_sequence(), u64::MAX);
    }
}
