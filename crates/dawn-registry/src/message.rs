//! Registry messages, their type numbers and their strict postcard encoding.
//!
//! Every message is a [`dawn_wire::Message::Protocol`] in the registry's range: `[1]` (wire
//! format version), the type number (big-endian), then the postcard body. Decoding is strict
//! (canonical, nothing left over) and every list and byte string is bounded.

use std::fmt;

use bytes::Bytes;
use dawn_wire::{
    MAX_MESSAGE_LEN, MESSAGE_HEADER_LEN, Message, PayloadError, Subsystem, WireError,
    decode_payload, encode_payload,
};
use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::manifest::{Manifest, ManifestError, Resolve};

/// Most live agents an owner's manifest may list, whatever the configuration.
pub const MAX_AGENTS_PER_OWNER: usize = 256;
/// Most owners one range of a reconciliation message may list.
pub const MAX_ITEMS: usize = 256;
/// Most ranges in one reconciliation message.
pub const MAX_RANGES: usize = 4096;
/// Most owners one reconciliation message may ask updates for.
pub const MAX_NEEDS: usize = 1024;
/// Most owner updates in one message.
pub const MAX_UPDATES: usize = 4096;
/// Longest range bound: a prefix of a 32-byte node id.
pub(crate) const MAX_BOUND_LEN: usize = 32;

/// What a registry message is, read from its header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// Type `0x0200`: an owner's own change, broadcast on the registry topic.
    Delta,
    /// Type `0x0201`: a step of digest reconciliation (fingerprints, owner lists, requests).
    Reconcile,
    /// Type `0x0202`: owner updates sent during reconciliation.
    Updates,
}

impl MessageKind {
    /// Type number of [`MessageKind::Delta`].
    pub const TYPE_DELTA: u16 = 0x0200;
    /// Type number of [`MessageKind::Reconcile`].
    pub const TYPE_RECONCILE: u16 = 0x0201;
    /// Type number of [`MessageKind::Updates`].
    pub const TYPE_UPDATES: u16 = 0x0202;

    /// The kind of an encoded message, from its three header bytes; `None` if they are not a
    /// registry message header. Cheap: for metrics and routing, not validation.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [dawn_wire::WIRE_FORMAT_VERSION, hi, lo, ..] => {
                Self::from_type(u16::from_be_bytes([*hi, *lo]))
            }
            _ => None,
        }
    }

    const fn from_type(kind: u16) -> Option<Self> {
        match kind {
            Self::TYPE_DELTA => Some(Self::Delta),
            Self::TYPE_RECONCILE => Some(Self::Reconcile),
            Self::TYPE_UPDATES => Some(Self::Updates),
            _ => None,
        }
    }

    /// The type number.
    #[must_use]
    pub const fn type_number(self) -> u16 {
        match self {
            Self::Delta => Self::TYPE_DELTA,
            Self::Reconcile => Self::TYPE_RECONCILE,
            Self::Updates => Self::TYPE_UPDATES,
        }
    }
}

/// Bytes from a peer are not a valid registry message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The wire message header or framing is invalid.
    #[error("wire message: {0}")]
    Wire(#[source] WireError),
    /// A valid wire message, but not in the registry's type range or of an unknown type.
    #[error("type {0:#06x} is not a registry message")]
    NotRegistry(u16),
    /// The body does not decode (malformed, trailing bytes, not canonical).
    #[error("body of type {kind:#06x}: {error}")]
    Body {
        /// The type number.
        kind: u16,
        /// What was wrong.
        #[source]
        error: PayloadError,
    },
    /// A list is longer than its bound.
    #[error("{what} lists {len} elements; the maximum is {max}")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A range bound is longer than a node id, a range is empty or reversed, or ranges
    /// overlap or are out of order.
    #[error("invalid range bounds")]
    Range,
    /// An id or hash has the wrong length.
    #[error("{what} of {len} bytes has the wrong length")]
    FieldLength {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A manifest inside the message is malformed.
    #[error("manifest: {0}")]
    Manifest(#[source] ManifestError),
    /// An entry's dot is listed twice in one update.
    #[error("entry dot {0} appears twice in one update")]
    DuplicateEntry(u64),
}

/// A message could not be encoded (it does not happen for messages the registry builds).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode a registry message: {0}")]
pub(crate) struct EncodeError(String);

/// A byte string borrowed from the input, encoded as postcard bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raw<'a>(pub(crate) &'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Borrowed<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for Borrowed<'a> {
            type Value = Raw<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a borrowed byte string")
            }

            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> Result<Self::Value, E> {
                Ok(Raw(v))
            }
        }

        deserializer.deserialize_bytes(Borrowed(std::marker::PhantomData))
    }
}

/// Postcard layouts: field order is wire order, frozen by the golden files.
pub(crate) mod wire {
    use serde::{Deserialize, Serialize};

    use super::Raw;

    #[derive(Serialize, Deserialize)]
    pub(crate) struct Entry<'a> {
        pub(crate) dot: u64,
        #[serde(borrow)]
        pub(crate) record: Raw<'a>,
    }

    #[derive(Serialize, Deserialize)]
    pub(crate) struct Update<'a> {
        #[serde(borrow)]
        pub(crate) manifest: Raw<'a>,
        #[serde(borrow)]
        pub(crate) entries: Vec<Entry<'a>>,
    }

    /// Ids and hashes travel as byte strings rather than arrays: serde would treat an
    /// array as 32 separate elements.
    #[derive(Serialize, Deserialize)]
    pub(crate) struct Item<'a> {
        #[serde(borrow)]
        pub(crate) owner: Raw<'a>,
        pub(crate) version: u64,
        #[serde(borrow)]
        pub(crate) manifest: Raw<'a>,
        pub(crate) missing: Vec<u64>,
    }

    #[derive(Serialize, Deserialize)]
    pub(crate) enum Mode<'a> {
        Fingerprint {
            count: u32,
            #[serde(borrow)]
            sum: Raw<'a>,
        },
        #[serde(borrow)]
        Items(Vec<Item<'a>>),
    }

    #[derive(Serialize, Deserialize)]
    pub(crate) struct Range<'a> {
        #[serde(borrow)]
        pub(crate) lower: Raw<'a>,
        #[serde(borrow)]
        pub(crate) upper: Option<Raw<'a>>,
        #[serde(borrow)]
        pub(crate) mode: Mode<'a>,
    }

    #[derive(Serialize, Deserialize)]
    pub(crate) struct Need<'a> {
        #[serde(borrow)]
        pub(crate) owner: Raw<'a>,
        pub(crate) version: Option<u64>,
        pub(crate) missing: Vec<u64>,
    }

    #[derive(Serialize, Deserialize)]
    pub(crate) struct Reconcile<'a> {
        pub(crate) round: u8,
        #[serde(borrow)]
        pub(crate) ranges: Vec<Range<'a>>,
        #[serde(borrow)]
        pub(crate) needs: Vec<Need<'a>>,
    }
}

/// One owner's manifest and some of the entries it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Update {
    pub(crate) manifest: Manifest,
    /// `(dot, encoded record)`, dots distinct.
    pub(crate) entries: Vec<(u64, Bytes)>,
}

impl Update {
    /// Encoded size, close enough for packing messages.
    pub(crate) fn approx_len(&self) -> usize {
        self.manifest.encoded().len()
            + 4
            + self
                .entries
                .iter()
                .map(|(_, r)| r.len() + 13)
                .sum::<usize>()
    }
}

/// A range of the owner key space: `lower <= key < upper` where a bound is a key prefix
/// padded with zeros and `upper = None` is the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) lower: Vec<u8>,
    pub(crate) upper: Option<Vec<u8>>,
}

/// A summary of one owner in a range list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) owner: [u8; 32],
    pub(crate) version: u64,
    pub(crate) manifest: [u8; 16],
    pub(crate) missing: Vec<u64>,
}

/// What a range of a reconciliation message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The sender's fingerprint of the range: number of owners and sum of item hashes.
    Fingerprint { count: u32, sum: u128 },
    /// The sender's complete list of owners in the range.
    Items(Vec<Item>),
}

/// A request for one owner's update: "I have this version (if any) and lack these dots".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Need {
    pub(crate) owner: [u8; 32],
    pub(crate) version: Option<u64>,
    pub(crate) missing: Vec<u64>,
}

/// A step of reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reconcile {
    pub(crate) round: u8,
    pub(crate) ranges: Vec<(Range, Mode)>,
    pub(crate) needs: Vec<Need>,
}

/// A decoded registry message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegistryMessage {
    Delta(Box<Update>),
    Reconcile(Reconcile),
    Updates(Vec<Update>),
}

fn update_wire(update: &Update) -> wire::Update<'_> {
    wire::Update {
        manifest: Raw(update.manifest.encoded()),
        entries: update
            .entries
            .iter()
            .map(|(dot, record)| wire::Entry {
                dot: *dot,
                record: Raw(record),
            })
            .collect(),
    }
}

/// Messages up to this size are kept by reference when stored (a delta is shared by every
/// slice taken from it); larger ones are copied piece by piece, so that one surviving entry
/// cannot keep a whole reconciliation message alive.
const SHARE_MAX: usize = 16 * 1024;

fn update_from_wire(
    w: &wire::Update<'_>,
    body: &Bytes,
    resolve: &mut dyn Resolve,
) -> Result<Update, DecodeError> {
    let share = body.len() <= SHARE_MAX;
    let piece = |raw: &[u8]| {
        if share {
            body.slice_ref(raw)
        } else {
            Bytes::copy_from_slice(raw)
        }
    };
    let manifest = Manifest::decode(piece(w.manifest.0), resolve).map_err(DecodeError::Manifest)?;
    check_len("entries", w.entries.len(), MAX_AGENTS_PER_OWNER)?;
    let mut entries: Vec<(u64, Bytes)> = Vec::with_capacity(w.entries.len());
    for e in &w.entries {
        if entries.iter().any(|(dot, _)| *dot == e.dot) {
            return Err(DecodeError::DuplicateEntry(e.dot));
        }
        entries.push((e.dot, piece(e.record.0)));
    }
    Ok(Update { manifest, entries })
}

/// A byte string that must be exactly `N` bytes long.
fn fixed<const N: usize>(what: &'static str, raw: Raw<'_>) -> Result<[u8; N], DecodeError> {
    raw.0.try_into().map_err(|_| DecodeError::FieldLength {
        what,
        len: raw.0.len(),
    })
}

const fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), DecodeError> {
    if len > max {
        return Err(DecodeError::TooMany { what, len, max });
    }
    Ok(())
}

/// Pads a bound to a full key.
pub(crate) fn pad(bound: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    let n = bound.len().min(32);
    key[..n].copy_from_slice(&bound[..n]);
    key
}

fn check_range(lower: &[u8], upper: Option<&[u8]>) -> Result<(), DecodeError> {
    if lower.len() > MAX_BOUND_LEN || upper.is_some_and(|u| u.len() > MAX_BOUND_LEN) {
        return Err(DecodeError::Range);
    }
    if let Some(upper) = upper
        && pad(upper) <= pad(lower)
    {
        return Err(DecodeError::Range);
    }
    Ok(())
}

impl RegistryMessage {
    pub(crate) const fn kind(&self) -> MessageKind {
        match self {
            Self::Delta(_) => MessageKind::Delta,
            Self::Reconcile(_) => MessageKind::Reconcile,
            Self::Updates(_) => MessageKind::Updates,
        }
    }

    /// The full wire encoding: dawn-wire header, then the postcard body.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let body = match self {
            Self::Delta(update) => encode_payload(&update_wire(update)),
            Self::Updates(updates) => {
                let list: Vec<wire::Update<'_>> = updates.iter().map(update_wire).collect();
                encode_payload(&list)
            }
            Self::Reconcile(r) => {
                let sums: Vec<[u8; 16]> = r
                    .ranges
                    .iter()
                    .map(|(_, mode)| match mode {
                        Mode::Fingerprint { sum, .. } => sum.to_le_bytes(),
                        Mode::Items(_) => [0; 16],
                    })
                    .collect();
                let ranges = r
                    .ranges
                    .iter()
                    .zip(&sums)
                    .map(|((range, mode), sum)| wire::Range {
                        lower: Raw(&range.lower),
                        upper: range.upper.as_deref().map(Raw),
                        mode: match mode {
                            Mode::Fingerprint { count, .. } => wire::Mode::Fingerprint {
                                count: *count,
                                sum: Raw(sum),
                            },
                            Mode::Items(items) => wire::Mode::Items(
                                items
                                    .iter()
                                    .map(|i| wire::Item {
                                        owner: Raw(&i.owner),
                                        version: i.version,
                                        manifest: Raw(&i.manifest),
                                        missing: i.missing.clone(),
                                    })
                                    .collect(),
                            ),
                        },
                    })
                    .collect();
                let needs = r
                    .needs
                    .iter()
                    .map(|n| wire::Need {
                        owner: Raw(&n.owner),
                        version: n.version,
                        missing: n.missing.clone(),
                    })
                    .collect();
                encode_payload(&wire::Reconcile {
                    round: r.round,
                    ranges,
                    needs,
                })
            }
        }
        .map_err(|e| EncodeError(e.to_string()))?;
        Message::Protocol {
            kind: self.kind().type_number(),
            payload: Bytes::from(body),
        }
        .encode()
        .map_err(|e| EncodeError(e.to_string()))
    }

    /// Decodes a whole wire message, strictly and within every bound.
    #[cfg(test)]
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_bytes(
            &Bytes::copy_from_slice(bytes),
            &mut crate::manifest::Decompress,
        )
    }

    /// As [`decode`](Self::decode); what it keeps (manifests, records) refers to `bytes`
    /// rather than copying it, for small messages. `resolve` turns owner keys into ids.
    pub(crate) fn decode_bytes(
        bytes: &Bytes,
        resolve: &mut dyn Resolve,
    ) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(DecodeError::Wire(WireError::TooLarge {
                len: bytes.len(),
                max: MAX_MESSAGE_LEN,
            }));
        }
        // dawn-wire checks the header; the body is then taken from `bytes` itself, so that
        // it is not copied and can be shared.
        let header = bytes.get(..MESSAGE_HEADER_LEN).unwrap_or(bytes);
        let kind = match Message::decode(header).map_err(DecodeError::Wire)? {
            Message::Protocol { kind, .. } => kind,
            other => return Err(DecodeError::NotRegistry(other.type_number())),
        };
        if Subsystem::of(kind) != Some(Subsystem::Registry) {
            return Err(DecodeError::NotRegistry(kind));
        }
        let payload = bytes.slice(MESSAGE_HEADER_LEN.min(bytes.len())..);
        let body = |error| DecodeError::Body { kind, error };
        match MessageKind::from_type(kind) {
            Some(MessageKind::Delta) => {
                let w: wire::Update<'_> = decode_payload(&payload).map_err(body)?;
                let update = update_from_wire(&w, &payload, resolve)?;
                Ok(Self::Delta(Box::new(update)))
            }
            Some(MessageKind::Updates) => {
                let list: Vec<wire::Update<'_>> = decode_payload(&payload).map_err(body)?;
                check_len("updates", list.len(), MAX_UPDATES)?;
                let mut updates = Vec::with_capacity(list.len());
                for w in &list {
                    updates.push(update_from_wire(w, &payload, resolve)?);
                }
                Ok(Self::Updates(updates))
            }
            Some(MessageKind::Reconcile) => {
                let w: wire::Reconcile<'_> = decode_payload(&payload).map_err(body)?;
                Ok(Self::Reconcile(reconcile_from_wire(w)?))
            }
            None => Err(DecodeError::NotRegistry(kind)),
        }
    }
}

fn reconcile_from_wire(w: wire::Reconcile<'_>) -> Result<Reconcile, DecodeError> {
    check_len("ranges", w.ranges.len(), MAX_RANGES)?;
    check_len("needs", w.needs.len(), MAX_NEEDS)?;
    let mut ranges = Vec::with_capacity(w.ranges.len());
    // Ranges ascend and do not overlap, so answering a message visits each owner at most
    // once however many ranges it names.
    let mut floor: Option<[u8; 32]> = Some([0; 32]);
    for r in w.ranges {
        check_range(r.lower.0, r.upper.map(|u| u.0))?;
        match floor {
            Some(f) if pad(r.lower.0) >= f => {}
            _ => return Err(DecodeError::Range),
        }
        floor = r.upper.map(|u| pad(u.0));
        let mode = match r.mode {
            wire::Mode::Fingerprint { count, sum } => Mode::Fingerprint {
                count,
                sum: u128::from_le_bytes(fixed("sum", sum)?),
            },
            wire::Mode::Items(items) => {
                check_len("items", items.len(), MAX_ITEMS)?;
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    check_len("missing", i.missing.len(), MAX_AGENTS_PER_OWNER)?;
                    out.push(Item {
                        owner: fixed("owner", i.owner)?,
                        version: i.version,
                        manifest: fixed("manifest id", i.manifest)?,
                        missing: i.missing,
                    });
                }
                Mode::Items(out)
            }
        };
        ranges.push((
            Range {
                lower: r.lower.0.to_vec(),
                upper: r.upper.map(|u| u.0.to_vec()),
            },
            mode,
        ));
    }
    let mut needs = Vec::with_capacity(w.needs.len());
    for n in w.needs {
        check_len("missing", n.missing.len(), MAX_AGENTS_PER_OWNER)?;
        needs.push(Need {
            owner: fixed("owner", n.owner)?,
            version: n.version,
            missing: n.missing,
        });
    }
    Ok(Reconcile {
        round: w.round,
        ranges,
        needs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_pad_and_ranges_are_checked() {
        assert_eq!(pad(&[1, 2])[..3], [1, 2, 0]);
        assert!(check_range(&[1], Some(&[1, 0])).is_err());
        assert!(check_range(&[1], Some(&[1, 1])).is_ok());
        assert!(check_range(&[0; 33], None).is_err());
    }

    #[test]
    fn kind_is_read_from_the_header() {
        let r = RegistryMessage::Reconcile(Reconcile {
            round: 0,
            ranges: vec![],
            needs: vec![],
        });
        let bytes = r.encode().unwrap();
        assert_eq!(MessageKind::of(&bytes), Some(MessageKind::Reconcile));
        assert_eq!(RegistryMessage::decode(&bytes).unwrap(), r);
        assert_eq!(MessageKind::of(&[1, 0x01, 0x00]), None);
        assert_eq!(MessageKind::of(&[1]), None);
    }

    #[test]
    fn other_subsystems_are_refused() {
        let bytes = Message::Protocol {
            kind: 0x0100,
            payload: Bytes::new(),
        }
        .encode()
        .unwrap();
        assert_eq!(
            RegistryMessage::decode(&bytes),
            Err(DecodeError::NotRegistry(0x0100))
        );
        let unknown = Message::Protocol {
            kind: 0x02ff,
            payload: Bytes::new(),
        }
        .encode()
        .unwrap();
        assert_eq!(
            RegistryMessage::decode(&unknown),
            Err(DecodeError::NotRegistry(0x02ff))
        );
    }
}
