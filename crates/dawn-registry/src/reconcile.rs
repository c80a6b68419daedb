//! Range-based set reconciliation (Meyer, "Range-Based Set Reconciliation", 2023; the
//! scheme of Negentropy) over the directory's owners.
//!
//! Each owner is one item: its 32-byte id as the key, and a 128-bit hash of its manifest
//! version, manifest id and missing entries. A range of the key space has a fingerprint: the
//! number of owners in it and the wrapping sum of their hashes. Two nodes compare the
//! fingerprint of the whole key space; where fingerprints differ, the side that received them
//! splits the range into `fanout` parts (by its own owners) and sends their fingerprints, or,
//! when it holds at most `leaf` owners there, lists them. A list ends the exchange for its
//! range: the receiver pushes the updates the other lacks and asks for those it lacks. The
//! messages carry no session state, so every step is a pure function of the message and the
//! directory.
//!
//! The cost is `O(d · log(n / d))` fingerprints for `d` differing owners among `n`, instead of
//! `O(n)` for a full exchange of summaries; see the crate's README for measured bytes.

use crate::message::{Item, Mode, Need, Range, pad};
use crate::state::{Directory, Key, OwnerState};

/// The whole key space.
pub(crate) const fn full_range() -> Range {
    Range {
        lower: Vec::new(),
        upper: None,
    }
}

/// The owners in `range`, in key order.
pub(crate) fn owners_in<'a>(
    dir: &'a Directory,
    range: &Range,
) -> impl Iterator<Item = (&'a Key, &'a OwnerState)> + use<'a> {
    let lower = pad(&range.lower);
    let upper = range.upper.as_deref().map(pad);
    dir.owners()
        .range(lower..)
        .take_while(move |(key, _)| upper.is_none_or(|u| **key < u))
        .map(|(key, state)| (key, state.as_ref()))
}

/// `(count, sum)` of `range`.
pub(crate) fn fingerprint(dir: &Directory, range: &Range) -> (u32, u128) {
    if range.lower.is_empty() && range.upper.is_none() {
        let (count, sum) = dir.fingerprint();
        return (u32::try_from(count).unwrap_or(u32::MAX), sum);
    }
    owners_in(dir, range).fold((0u32, 0u128), |(count, sum), (_, state)| {
        (count.saturating_add(1), sum.wrapping_add(state.item_hash()))
    })
}

/// The summary of one owner, as sent in a list.
pub(crate) fn item(key: &Key, state: &OwnerState) -> Item {
    Item {
        owner: *key,
        version: state.manifest().version(),
        manifest: *state.manifest().id(),
        missing: state.missing().to_vec(),
    }
}

/// The shortest bound `b` with `a < pad(b) <= key_b`: `key_b` up to and including the first
/// byte where it differs from `a`.
fn separator(a: &Key, b: &Key) -> Vec<u8> {
    let differ = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(31);
    b.get(..=differ).map(<[u8]>::to_vec).unwrap_or_default()
}

/// `range` split into up to `fanout` parts of nearly equal numbers of this node's owners,
/// each with its fingerprint. The parts cover `range` exactly.
pub(crate) fn split(dir: &Directory, range: &Range, fanout: usize) -> Vec<(Range, Mode)> {
    let owners: Vec<(&Key, &OwnerState)> = owners_in(dir, range).collect();
    let n = owners.len();
    let parts = fanout.clamp(1, n.max(1));
    let mut out = Vec::with_capacity(parts);
    let mut lower = range.lower.clone();
    let mut start = 0;
    for part in 1..=parts {
        let end = n * part / parts;
        if end == start {
            continue;
        }
        let slice = owners.get(start..end).unwrap_or_default();
        let upper = if part == parts {
            range.upper.clone()
        } else {
            match (owners.get(end - 1), owners.get(end)) {
                (Some((a, _)), Some((b, _))) => Some(separator(a, b)),
                _ => range.upper.clone(),
            }
        };
        let count = u32::try_from(slice.len()).unwrap_or(u32::MAX);
        let sum = slice
            .iter()
            .fold(0u128, |sum, (_, s)| sum.wrapping_add(s.item_hash()));
        let next_lower = upper.clone().unwrap_or_default();
        out.push((
            Range {
                lower: std::mem::take(&mut lower),
                upper,
            },
            Mode::Fingerprint { count, sum },
        ));
        lower = next_lower;
        start = end;
    }
    out
}

/// What to send an owner's peer: "you have this version (if any) and lack these dots".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Push {
    pub(crate) owner: Key,
    pub(crate) version: Option<u64>,
    pub(crate) missing: Vec<u64>,
}

/// The outcome of comparing a peer's list for a range with this node's owners there.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) pushes: Vec<Push>,
    pub(crate) needs: Vec<Need>,
}

/// Compares a peer's complete list of owners in `range` with ours.
pub(crate) fn compare(dir: &Directory, range: &Range, theirs: &[Item]) -> Comparison {
    let mut out = Comparison::default();
    let lower = pad(&range.lower);
    let upper = range.upper.as_deref().map(pad);
    let in_range = |key: &Key| *key >= lower && upper.is_none_or(|u| *key < u);
    for t in theirs.iter().filter(|t| in_range(&t.owner)) {
        let Some(ours) = dir.get(&t.owner) else {
            out.needs.push(Need {
                owner: t.owner,
                version: None,
                missing: Vec::new(),
            });
            continue;
        };
        let manifest = ours.manifest();
        match t.version.cmp(&manifest.version()) {
            std::cmp::Ordering::Greater => out.needs.push(Need {
                owner: t.owner,
                version: Some(manifest.version()),
                missing: ours.missing().to_vec(),
            }),
            std::cmp::Ordering::Less => out.pushes.push(Push {
                owner: t.owner,
                version: Some(t.version),
                missing: t.missing.clone(),
            }),
            std::cmp::Ordering::Equal if t.manifest != *manifest.id() => {
                // The owner signed two manifests of one version: both sides send theirs in
                // full and both keep the same winner.
                out.pushes.push(Push {
                    owner: t.owner,
                    version: None,
                    missing: Vec::new(),
                });
                out.needs.push(Need {
                    owner: t.owner,
                    version: None,
                    missing: Vec::new(),
                });
            }
            std::cmp::Ordering::Equal => {
                if t.missing.iter().any(|dot| ours.slot(*dot).is_some()) {
                    out.pushes.push(Push {
                        owner: t.owner,
                        version: Some(t.version),
                        missing: t.missing.clone(),
                    });
                }
                if !ours.missing().is_empty() && ours.missing() != t.missing.as_slice() {
                    out.needs.push(Need {
                        owner: t.owner,
                        version: Some(manifest.version()),
                        missing: ours.missing().to_vec(),
                    });
                }
            }
        }
    }
    for (key, _) in owners_in(dir, range) {
        if theirs.iter().all(|t| t.owner != *key) {
            out.pushes.push(Push {
                owner: *key,
                version: None,
                missing: Vec::new(),
            });
        }
    }
    out
}

/// The entries of `state` a peer with `version` lacking `missing` does not have.
pub(crate) fn entries_for(state: &OwnerState, version: Option<u64>, missing: &[u64]) -> Vec<u64> {
    let mut dots: Vec<u64> = state
        .slots()
        .map(|slot| slot.dot)
        .filter(|dot| version.is_none_or(|v| *dot > v) || missing.contains(dot))
        .collect();
    dots.sort_unstable();
    dots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_is_the_shortest_prefix_between_two_keys() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        a[0] = 1;
        a[1] = 9;
        b[0] = 1;
        b[1] = 10;
        let s = separator(&a, &b);
        assert_eq!(s, [1, 10]);
        assert!(pad(&s) > a && pad(&s) <= b);
        b[0] = 2;
        assert_eq!(separator(&a, &b), [2]);
    }
}
