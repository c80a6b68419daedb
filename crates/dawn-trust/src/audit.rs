//! The audit log core: signed entries, each chained to the one before by its hash.

use std::fmt;

use data_encoding::HEXLOWER;
use dawn_crypto::{PUBLIC_KEY_LEN, Signature, SignatureError, SigningKey};
use dawn_identity::{AgentId, AgentIdError, NodeId, NodeIdError};
use dawn_wire::{PayloadError, decode_payload};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::policy::{MAX_TOOL_NAME_LEN, truncate};

/// The domain-separation prefix of every audit entry's signing input. No other Dawn signature
/// starts with these 13 bytes.
pub const AUDIT_DOMAIN: &[u8; 13] = b"dawn/audit/v1";

/// Version of the entry encoding; the first byte of every encoded entry.
pub const AUDIT_VERSION: u8 = 1;

/// The longest `details` text, in bytes; [`AuditChain::append`] cuts longer text at a
/// character boundary.
pub const MAX_DETAILS_LEN: usize = 1024;

/// The longest encoded entry: every field at its maximum (see the README's layout).
pub const MAX_AUDIT_ENTRY_LEN: usize = 1374;

/// The longest JSON line [`AuditEntry::from_json_line`] reads.
pub const MAX_AUDIT_JSON_LEN: usize = 16 * 1024;

/// The `prev_hash` of the first entry of a chain.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// How many entries [`verify_chain`] checks with one batch verification.
const VERIFY_CHUNK: usize = 1024;

/// What an audit entry records. Each kind has a fixed number in the encoding (never the
/// variant's position) and a `snake_case` name in the JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditKind {
    /// 1: the node started (details: version, policy fingerprint).
    NodeStarted,
    /// 2: the node stopped cleanly.
    NodeStopped,
    /// 3: a peer's connection was accepted.
    ConnectionAccepted,
    /// 4: a peer's connection was refused (details: why).
    ConnectionRefused,
    /// 5: a peer's trust level changed (details: old and new level, score, cause).
    TrustChanged,
    /// 6: the operator assigned a level to a peer or removed one.
    TrustAssigned,
    /// 7: a peer's permissions were changed by hand.
    PermissionChanged,
    /// 8: the policy was replaced (details: old and new fingerprint).
    PolicyChanged,
    /// 9: a tool call was allowed (subject: caller, agent, tool).
    ToolCallAllowed,
    /// 10: a tool call was denied (details: the decision's explanation).
    ToolCallDenied,
    /// 11: another request was denied (reading agents, writing the registry, admin).
    RequestDenied,
    /// 12: the node's key was rotated; the subject's peer is the new key, and the entries
    /// after this one are signed by it.
    KeyRotated,
}

impl AuditKind {
    /// Every kind, in code order.
    pub const ALL: [Self; 12] = [
        Self::NodeStarted,
        Self::NodeStopped,
        Self::ConnectionAccepted,
        Self::ConnectionRefused,
        Self::TrustChanged,
        Self::TrustAssigned,
        Self::PermissionChanged,
        Self::PolicyChanged,
        Self::ToolCallAllowed,
        Self::ToolCallDenied,
        Self::RequestDenied,
        Self::KeyRotated,
    ];

    /// The kind's number in the encoding.
    #[must_use]
    pub const fn code(self) -> u16 {
        match self {
            Self::NodeStarted => 1,
            Self::NodeStopped => 2,
            Self::ConnectionAccepted => 3,
            Self::ConnectionRefused => 4,
            Self::TrustChanged => 5,
            Self::TrustAssigned => 6,
            Self::PermissionChanged => 7,
            Self::PolicyChanged => 8,
            Self::ToolCallAllowed => 9,
            Self::ToolCallDenied => 10,
            Self::RequestDenied => 11,
            Self::KeyRotated => 12,
        }
    }

    /// The kind with this number, if any.
    #[must_use]
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// The kind's name, as in the JSON form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NodeStarted => "node_started",
            Self::NodeStopped => "node_stopped",
            Self::ConnectionAccepted => "connection_accepted",
            Self::ConnectionRefused => "connection_refused",
            Self::TrustChanged => "trust_changed",
            Self::TrustAssigned => "trust_assigned",
            Self::PermissionChanged => "permission_changed",
            Self::PolicyChanged => "policy_changed",
            Self::ToolCallAllowed => "tool_call_allowed",
            Self::ToolCallDenied => "tool_call_denied",
            Self::RequestDenied => "request_denied",
            Self::KeyRotated => "key_rotated",
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whom an entry is about: a peer, an agent, a tool, any combination or none.
///
/// ```
/// use dawn_trust::Subject;
///
/// # let peer = dawn_identity::NodeId::from(dawn_crypto::SigningKey::from_bytes(&[1; 32]).verifying_key());
/// let subject = Subject::none()
///     .with_peer(peer)
///     .with_agent("weather".parse()?)
///     .with_tool("forecast");
/// assert_eq!(subject.tool(), Some("forecast"));
/// # Ok::<(), dawn_identity::AgentIdError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Subject {
    peer: Option<NodeId>,
    agent: Option<AgentId>,
    tool: Option<String>,
}

impl Subject {
    /// About nothing in particular (a node start, a policy change).
    #[must_use]
    pub const fn none() -> Self {
        Self {
            peer: None,
            agent: None,
            tool: None,
        }
    }

    /// The subject, about `peer`.
    #[must_use]
    pub fn with_peer(self, peer: NodeId) -> Self {
        Self {
            peer: Some(peer),
            ..self
        }
    }

    /// The subject, about `agent`.
    #[must_use]
    pub fn with_agent(self, agent: AgentId) -> Self {
        Self {
            agent: Some(agent),
            ..self
        }
    }

    /// The subject, about `tool`, cut to [`MAX_TOOL_NAME_LEN`] bytes at a character
    /// boundary: the name may come from a peer, and the entry must be written all the same.
    #[must_use]
    pub fn with_tool(self, tool: &str) -> Self {
        Self {
            tool: Some(truncate(tool, MAX_TOOL_NAME_LEN).to_owned()),
            ..self
        }
    }

    /// The peer, if any.
    #[must_use]
    pub const fn peer(&self) -> Option<&NodeId> {
        self.peer.as_ref()
    }

    /// The agent, if any.
    #[must_use]
    pub const fn agent(&self) -> Option<&AgentId> {
        self.agent.as_ref()
    }

    /// The tool, if any.
    #[must_use]
    pub fn tool(&self) -> Option<&str> {
        self.tool.as_deref()
    }
}

/// An audit entry could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditDecodeError {
    /// There were no bytes.
    #[error("empty audit entry")]
    Empty,
    /// The encoding is longer than [`MAX_AUDIT_ENTRY_LEN`].
    #[error("audit entry of {len} bytes exceeds the maximum of {MAX_AUDIT_ENTRY_LEN}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// The first byte names a version this build does not know.
    #[error("unknown audit entry version {0}")]
    UnknownVersion(u8),
    /// The bytes are not a canonical entry encoding.
    #[error("malformed audit entry: {0}")]
    Body(#[source] PayloadError),
    /// The kind number is not assigned.
    #[error("unknown audit entry kind {0}")]
    UnknownKind(u16),
    /// The subject's peer is not a valid node id.
    #[error("invalid subject peer: {0}")]
    Peer(#[source] NodeIdError),
    /// The subject's agent is not a valid agent id.
    #[error("invalid subject agent: {0}")]
    Agent(#[source] AgentIdError),
    /// The subject's tool is longer than [`MAX_TOOL_NAME_LEN`] bytes.
    #[error("subject tool of {len} bytes exceeds the maximum of {MAX_TOOL_NAME_LEN}")]
    ToolTooLong {
        /// Its length.
        len: usize,
    },
    /// The details are longer than [`MAX_DETAILS_LEN`] bytes.
    #[error("details of {len} bytes exceed the maximum of {MAX_DETAILS_LEN}")]
    DetailsTooLong {
        /// Their length.
        len: usize,
    },
}

/// An audit entry's JSON line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditJsonError {
    /// The line is longer than [`MAX_AUDIT_JSON_LEN`].
    #[error("JSON line of {len} bytes exceeds the maximum of {MAX_AUDIT_JSON_LEN}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// The line is not a JSON audit entry (bad syntax, a missing or unknown field).
    #[error("invalid JSON audit entry: {0}")]
    Json(String),
    /// `prev_hash` or `signature` is not lowercase hex of the right length.
    #[error("`{field}` must be {len} lowercase hex digits")]
    Hex {
        /// The field.
        field: &'static str,
        /// The number of hex digits it needs.
        len: usize,
    },
    /// The fields exceed an entry's limits.
    #[error(transparent)]
    Entry(#[from] AuditDecodeError),
}

/// One record of the audit log: what happened, when, to whom, chained to the previous record
/// by its hash and signed by the node.
///
/// Entries are made by [`AuditChain::append`] and read back with [`AuditEntry::decode`] or
/// [`AuditEntry::from_json_line`]; an entry is always within the limits, but its signature and
/// place in the chain are only checked by [`verify_chain`].
///
/// # Encoding
///
/// Strict postcard, fields in this order (the README gives it byte by byte):
/// `version: u8 = 1`, `seq: u64`, `timestamp_ms: u64`, `kind: u16`,
/// `peer: Option<[u8; 32]>`, `agent: Option<str>`, `tool: Option<str>`, `details: str`,
/// `prev_hash: [u8; 32]`, `signature: [u8; 64]`. The signature is the last 64 bytes; it
/// covers [`signing_input`](Self::signing_input): `"dawn/audit/v1"`, the signer's
/// `NodeId`, then every encoded byte before the signature. The entry's
/// [`hash`](Self::hash), which the next entry carries as `prev_hash`, is SHA-256 over the
/// whole encoding, signature included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    seq: u64,
    timestamp_ms: u64,
    kind: AuditKind,
    subject: Subject,
    details: String,
    prev_hash: [u8; 32],
    signature: Signature,
}

/// The postcard layout of an entry, for decoding; field order is the wire order.
#[derive(Serialize, Deserialize)]
struct EntryWire<'a> {
    version: u8,
    seq: u64,
    timestamp_ms: u64,
    kind: u16,
    peer: Option<[u8; PUBLIC_KEY_LEN]>,
    #[serde(borrow)]
    agent: Option<&'a str>,
    #[serde(borrow)]
    tool: Option<&'a str>,
    details: &'a str,
    prev_hash: [u8; 32],
    /// `R` and `S`: serde has no impls for 64-byte arrays; two halves encode the same.
    signature: ([u8; 32], [u8; 32]),
}

/// The JSON-lines form of an entry.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEntry {
    seq: u64,
    timestamp_ms: u64,
    kind: AuditKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peer: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool: Option<String>,
    details: String,
    prev_hash: String,
    signature: String,
}

/// Appends `value` as an unsigned LEB128 varint, as postcard does.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends a postcard string: varint length, then the bytes.
fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

impl AuditEntry {
    /// The entry's sequence number: 0 for the first entry, then one more for each.
    #[must_use]
    pub const fn seq(&self) -> u64 {
        self.seq
    }

    /// When the entry was made, in Unix milliseconds (the node's clock; not checked to grow).
    #[must_use]
    pub const fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// What it records.
    #[must_use]
    pub const fn kind(&self) -> AuditKind {
        self.kind
    }

    /// Whom it is about.
    #[must_use]
    pub const fn subject(&self) -> &Subject {
        &self.subject
    }

    /// Free text, at most [`MAX_DETAILS_LEN`] bytes.
    #[must_use]
    pub fn details(&self) -> &str {
        &self.details
    }

    /// The [`hash`](Self::hash) of the previous entry; [`GENESIS_HASH`] for the first.
    #[must_use]
    pub const fn prev_hash(&self) -> &[u8; 32] {
        &self.prev_hash
    }

    /// The node's Ed25519 signature over [`signing_input`](Self::signing_input).
    #[must_use]
    pub const fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The entry's encoding (see [`AuditEntry`]), at most [`MAX_AUDIT_ENTRY_LEN`] bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.encode_unsigned();
        out.extend_from_slice(self.signature.as_bytes());
        out
    }

    /// Every encoded byte before the signature.
    fn encode_unsigned(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.details.len());
        out.push(AUDIT_VERSION);
        put_varint(&mut out, self.seq);
        put_varint(&mut out, self.timestamp_ms);
        put_varint(&mut out, u64::from(self.kind.code()));
        match &self.subject.peer {
            Some(peer) => {
                out.push(1);
                out.extend_from_slice(peer.as_bytes());
            }
            None => out.push(0),
        }
        for text in [
            self.subject.agent.as_ref().map(AgentId::as_str),
            self.subject.tool.as_deref(),
        ] {
            match text {
                Some(text) => {
                    out.push(1);
                    put_str(&mut out, text);
                }
                None => out.push(0),
            }
        }
        put_str(&mut out, &self.details);
        out.extend_from_slice(&self.prev_hash);
        out
    }

    /// Decodes an entry, checking its limits (not its signature or chain).
    ///
    /// # Errors
    /// [`AuditDecodeError`] naming what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Self, AuditDecodeError> {
        if bytes.len() > MAX_AUDIT_ENTRY_LEN {
            return Err(AuditDecodeError::TooLarge { len: bytes.len() });
        }
        match bytes.first() {
            None => return Err(AuditDecodeError::Empty),
            Some(&AUDIT_VERSION) => {}
            Some(&other) => return Err(AuditDecodeError::UnknownVersion(other)),
        }
        let wire: EntryWire<'_> = decode_payload(bytes).map_err(AuditDecodeError::Body)?;
        let kind =
            AuditKind::from_code(wire.kind).ok_or(AuditDecodeError::UnknownKind(wire.kind))?;
        let peer = wire
            .peer
            .map(|bytes| NodeId::from_bytes(&bytes))
            .transpose()
            .map_err(AuditDecodeError::Peer)?;
        let agent = wire
            .agent
            .map(str::parse::<AgentId>)
            .transpose()
            .map_err(AuditDecodeError::Agent)?;
        let (r, s) = wire.signature;
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&r);
        signature[32..].copy_from_slice(&s);
        let entry = Self {
            seq: wire.seq,
            timestamp_ms: wire.timestamp_ms,
            kind,
            subject: Subject {
                peer,
                agent,
                tool: wire.tool.map(str::to_owned),
            },
            details: wire.details.to_owned(),
            prev_hash: wire.prev_hash,
            signature: Signature::from_bytes(signature),
        };
        entry.check_limits()?;
        Ok(entry)
    }

    fn check_limits(&self) -> Result<(), AuditDecodeError> {
        if let Some(tool) = &self.subject.tool
            && tool.len() > MAX_TOOL_NAME_LEN
        {
            return Err(AuditDecodeError::ToolTooLong { len: tool.len() });
        }
        if self.details.len() > MAX_DETAILS_LEN {
            return Err(AuditDecodeError::DetailsTooLong {
                len: self.details.len(),
            });
        }
        Ok(())
    }

    /// SHA-256 of the entry's [encoding](Self::encode): what the next entry carries as
    /// `prev_hash`.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }

    /// The bytes `signer` signs: `"dawn/audit/v1"` (13 bytes), the signer's `NodeId`
    /// (32 bytes), then the entry's encoding without the trailing 64-byte signature.
    #[must_use]
    pub fn signing_input(&self, signer: &NodeId) -> Vec<u8> {
        signing_input(signer, &self.encode_unsigned())
    }

    /// Checks the entry's signature as `signer`'s (strict Ed25519). [`verify_chain`] checks
    /// the whole chain, faster.
    ///
    /// # Errors
    /// [`SignatureError::Invalid`].
    pub fn verify_signature(&self, signer: &NodeId) -> Result<(), SignatureError> {
        signer.verify(&self.signing_input(signer), &self.signature)
    }

    /// The entry as one line of JSON (no newline), for export:
    ///
    /// ```json
    /// {"seq":0,"timestamp_ms":1700000000000,"kind":"tool_call_denied","peer":"<node id>",
    ///  "agent":"shell","tool":"exec","details":"…","prev_hash":"<64 hex>","signature":"<128 hex>"}
    /// ```
    ///
    /// (on one line). `peer`, `agent` and `tool` are left out when absent. The line holds
    /// every field, so [`from_json_line`](Self::from_json_line) gives back the same entry and
    /// an exported log can be verified.
    ///
    /// # Errors
    /// [`AuditJsonError::Json`] if serialization fails (it does not for a valid entry).
    pub fn to_json_line(&self) -> Result<String, AuditJsonError> {
        serde_json::to_string(&JsonEntry {
            seq: self.seq,
            timestamp_ms: self.timestamp_ms,
            kind: self.kind,
            peer: self.subject.peer,
            agent: self.subject.agent.clone(),
            tool: self.subject.tool.clone(),
            details: self.details.clone(),
            prev_hash: HEXLOWER.encode(&self.prev_hash),
            signature: HEXLOWER.encode(self.signature.as_bytes()),
        })
        .map_err(|e| AuditJsonError::Json(e.to_string()))
    }

    /// Reads an entry from its JSON line (surrounding whitespace is ignored).
    ///
    /// # Errors
    /// [`AuditJsonError`] naming what is wrong.
    pub fn from_json_line(line: &str) -> Result<Self, AuditJsonError> {
        if line.len() > MAX_AUDIT_JSON_LEN {
            return Err(AuditJsonError::TooLong { len: line.len() });
        }
        let json: JsonEntry =
            serde_json::from_str(line.trim()).map_err(|e| AuditJsonError::Json(e.to_string()))?;
        let prev_hash: [u8; 32] = decode_hex(&json.prev_hash, "prev_hash")?;
        let signature: [u8; 64] = decode_hex(&json.signature, "signature")?;
        let entry = Self {
            seq: json.seq,
            timestamp_ms: json.timestamp_ms,
            kind: json.kind,
            subject: Subject {
                peer: json.peer,
                agent: json.agent,
                tool: json.tool,
            },
            details: json.details,
            prev_hash,
            signature: Signature::from_bytes(signature),
        };
        entry.check_limits()?;
        Ok(entry)
    }
}

fn decode_hex<const N: usize>(text: &str, field: &'static str) -> Result<[u8; N], AuditJsonError> {
    let error = AuditJsonError::Hex { field, len: 2 * N };
    if text.len() != 2 * N {
        return Err(error);
    }
    HEXLOWER
        .decode(text.as_bytes())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(error)
}

fn signing_input(signer: &NodeId, unsigned: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(AUDIT_DOMAIN.len() + PUBLIC_KEY_LEN + unsigned.len());
    input.extend_from_slice(AUDIT_DOMAIN);
    input.extend_from_slice(signer.as_bytes());
    input.extend_from_slice(unsigned);
    input
}

/// Where a chain stands: the sequence number the next entry gets and the hash it must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHead {
    /// The next entry's `seq`.
    pub next_seq: u64,
    /// The next entry's `prev_hash`: the hash of the last entry.
    pub last_hash: [u8; 32],
}

impl ChainHead {
    /// The head of an empty chain.
    pub const GENESIS: Self = Self {
        next_seq: 0,
        last_hash: GENESIS_HASH,
    };

    /// The head after `entry`.
    #[must_use]
    pub fn after(entry: &AuditEntry) -> Self {
        Self {
            next_seq: entry.seq.saturating_add(1),
            last_hash: entry.hash(),
        }
    }
}

impl Default for ChainHead {
    fn default() -> Self {
        Self::GENESIS
    }
}

/// Makes audit entries: numbers them, chains each to the last and signs it.
///
/// Pure: it keeps only the [`ChainHead`] and writes nothing; the caller persists every entry
/// [`append`](Self::append) returns, in order. After a restart (or if persisting failed),
/// continue with [`AuditChain::resume`] from the last entry persisted.
///
/// ```
/// use dawn_crypto::SigningKey;
/// use dawn_identity::NodeId;
/// use dawn_trust::{AuditChain, AuditKind, Subject, verify_chain};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let key = SigningKey::from_bytes(&[7; 32]);
/// let node = NodeId::from(key.verifying_key());
/// let mut chain = AuditChain::new();
/// let log: Vec<Vec<u8>> = (0..3)
///     .map(|i| {
///         chain
///             .append(&key, 1_700_000_000_000 + i, AuditKind::NodeStarted, Subject::none(), "")
///             .encode()
///     })
///     .collect();
/// let verified = verify_chain(&node, &log)?;
/// assert_eq!(verified.entries, 3);
///
/// let mut tampered = log.clone();
/// tampered[1][5] ^= 1;
/// assert_eq!(verify_chain(&node, &tampered).unwrap_err().position(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditChain {
    head: ChainHead,
}

impl AuditChain {
    /// A new, empty chain.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            head: ChainHead::GENESIS,
        }
    }

    /// A chain that continues from `head` (e.g. [`ChainHead::after`] the last persisted
    /// entry).
    #[must_use]
    pub const fn resume(head: ChainHead) -> Self {
        Self { head }
    }

    /// Where the chain stands.
    #[must_use]
    pub const fn head(&self) -> ChainHead {
        self.head
    }

    /// Makes, signs and returns the next entry, and advances the chain.
    ///
    /// `now_ms` is the wall clock in Unix milliseconds; `details` longer than
    /// [`MAX_DETAILS_LEN`] bytes is cut at a character boundary (an entry is always written).
    /// To record a key rotation, append [`AuditKind::KeyRotated`] with the *old* key and the
    /// new `NodeId` as the subject's peer, then sign later entries with the new key.
    pub fn append(
        &mut self,
        key: &SigningKey,
        now_ms: u64,
        kind: AuditKind,
        subject: Subject,
        details: &str,
    ) -> AuditEntry {
        let signer = NodeId::from(key.verifying_key());
        let mut entry = AuditEntry {
            seq: self.head.next_seq,
            timestamp_ms: now_ms,
            kind,
            subject,
            details: truncate(details, MAX_DETAILS_LEN).to_owned(),
            prev_hash: self.head.last_hash,
            signature: Signature::from_bytes([0; 64]),
        };
        let unsigned = entry.encode_unsigned();
        entry.signature = key.sign(&signing_input(&signer, &unsigned));
        self.head = ChainHead::after(&entry);
        entry
    }
}

/// Something [`verify_chain`] can read an entry from: an [`AuditEntry`] or its encoding
/// (`Vec<u8>`, `&[u8]`), owned or borrowed. Sealed.
pub trait AuditItem: sealed::Sealed {}

mod sealed {
    use super::{AuditDecodeError, AuditEntry};

    /// The entry and its encoding.
    pub trait Sealed {
        fn into_parts(self) -> Result<(AuditEntry, Vec<u8>), AuditDecodeError>;
    }

    impl Sealed for AuditEntry {
        fn into_parts(self) -> Result<(AuditEntry, Vec<u8>), AuditDecodeError> {
            let bytes = self.encode();
            Ok((self, bytes))
        }
    }

    impl Sealed for &AuditEntry {
        fn into_parts(self) -> Result<(AuditEntry, Vec<u8>), AuditDecodeError> {
            Ok((self.clone(), self.encode()))
        }
    }

    impl Sealed for Vec<u8> {
        fn into_parts(self) -> Result<(AuditEntry, Vec<u8>), AuditDecodeError> {
            Ok((AuditEntry::decode(&self)?, self))
        }
    }

    impl Sealed for &Vec<u8> {
        fn into_parts(self) -> Result<(AuditEntry, Vec<u8>), AuditDecodeError> {
            Ok((AuditEntry::decode(self)?, self.clone()))
        }
    }

    impl Sealed for &[u8] {
        fn into_parts(self) -> Result<(AuditEntry, Vec<u8>), AuditDecodeError> {
            Ok((AuditEntry::decode(self)?, self.to_vec()))
        }
    }
}

impl AuditItem for AuditEntry {}
impl AuditItem for &AuditEntry {}
impl AuditItem for Vec<u8> {}
impl AuditItem for &Vec<u8> {}
impl AuditItem for &[u8] {}

/// A chain failed verification. Each variant names the first entry at fault by its position
/// (0-based, in the order given) and, where it could be read, its `seq`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditVerifyError {
    /// The entry could not be decoded: its bytes were changed or cut.
    #[error("audit entry at position {position} is malformed: {source}")]
    Malformed {
        /// Its position.
        position: u64,
        /// What is wrong with it.
        source: AuditDecodeError,
    },
    /// The signature does not verify under the node's key: the entry was modified, or signed
    /// by another key.
    #[error(
        "audit entry {seq} (position {position}) was tampered with: its signature does not verify"
    )]
    BadSignature {
        /// Its position.
        position: u64,
        /// Its (claimed) sequence number.
        seq: u64,
    },
    /// The entry's `seq` is beyond the expected one and the expected entry is nowhere later in
    /// the log: entries `expected_seq..found_seq` are missing (deleted).
    #[error("audit entries {expected_seq}..{found_seq} are missing before position {position}")]
    Missing {
        /// The position where the gap is.
        position: u64,
        /// The first missing `seq`.
        expected_seq: u64,
        /// The `seq` found in its place.
        found_seq: u64,
    },
    /// The entry's `seq` is not the expected one, and the log holds the expected entry
    /// elsewhere (later), or this `seq` came already: entries were reordered or duplicated.
    #[error(
        "audit entries are out of order at position {position}: expected seq \
         {expected_seq}, found {found_seq}"
    )]
    Reordered {
        /// The position of the first entry out of place.
        position: u64,
        /// The `seq` expected there.
        expected_seq: u64,
        /// The `seq` found there.
        found_seq: u64,
    },
    /// The entry is validly signed and in sequence, but its `prev_hash` is not the hash of the
    /// entry before it: that entry was replaced by another validly signed one (re-signed with
    /// the node's key), or this one was.
    #[error(
        "audit entry {seq} (position {position}) does not chain to the entry before it: one \
         of the two was replaced and re-signed"
    )]
    BrokenLink {
        /// Its position.
        position: u64,
        /// Its sequence number.
        seq: u64,
    },
}

impl AuditVerifyError {
    /// The position (0-based) of the first entry at fault.
    #[must_use]
    pub const fn position(&self) -> u64 {
        match self {
            Self::Malformed { position, .. }
            | Self::BadSignature { position, .. }
            | Self::Missing { position, .. }
            | Self::Reordered { position, .. }
            | Self::BrokenLink { position, .. } => *position,
        }
    }
}

/// A chain that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedChain {
    /// How many entries were checked.
    pub entries: u64,
    /// Where the chain stands after them: pass it to [`verify_chain_from`] to check entries
    /// appended later, or to [`AuditChain::resume`].
    pub head: ChainHead,
    /// The key the last entry was signed with (the starting key, unless rotated).
    pub signer: NodeId,
}

/// Verifies a whole audit log, from its first entry (`seq` 0, `prev_hash` all zeros), signed
/// by `node` (following [`AuditKind::KeyRotated`] entries to later keys).
///
/// Checks that every entry decodes, is signed by the node, has the next `seq` and carries the
/// hash of the entry before it, and reports the *first* entry that fails: tampered
/// ([`Malformed`](AuditVerifyError::Malformed),
/// [`BadSignature`](AuditVerifyError::BadSignature)), deleted
/// ([`Missing`](AuditVerifyError::Missing)), moved or duplicated
/// ([`Reordered`](AuditVerifyError::Reordered)) or replaced by a re-signed entry
/// ([`BrokenLink`](AuditVerifyError::BrokenLink)).
///
/// Signatures are checked in batches of 1024 with [`dawn_crypto::verify_batch`], about 2.5
/// times as fast as one by one; a failing batch is bisected to find the bad entry. Memory
/// stays bounded by one batch however long the log is.
///
/// # Errors
/// [`AuditVerifyError`] for the first entry at fault.
pub fn verify_chain<I>(node: &NodeId, entries: I) -> Result<VerifiedChain, AuditVerifyError>
where
    I: IntoIterator,
    I::Item: AuditItem,
{
    Walk::new(*node, ChainHead::GENESIS, true).run(entries)
}

/// Like [`verify_chain`], for the entries that follow `head` (from an earlier
/// [`VerifiedChain`], or a checkpoint of a log whose older entries were pruned).
///
/// # Errors
/// [`AuditVerifyError`] for the first entry at fault; positions count from the first entry
/// given.
pub fn verify_chain_from<I>(
    node: &NodeId,
    head: ChainHead,
    entries: I,
) -> Result<VerifiedChain, AuditVerifyError>
where
    I: IntoIterator,
    I::Item: AuditItem,
{
    Walk::new(*node, head, true).run(entries)
}

/// Like [`verify_chain`], but checks each signature on its own: the baseline the batch
/// verification is measured against, with the same results.
///
/// # Errors
/// [`AuditVerifyError`] for the first entry at fault.
pub fn verify_chain_one_by_one<I>(
    node: &NodeId,
    entries: I,
) -> Result<VerifiedChain, AuditVerifyError>
where
    I: IntoIterator,
    I::Item: AuditItem,
{
    Walk::new(*node, ChainHead::GENESIS, false).run(entries)
}

/// A structural fault found without checking signatures.
enum Fault {
    Malformed(AuditDecodeError),
    Seq { expected: u64, found: u64 },
    Link,
}

type Parts = Result<(AuditEntry, Vec<u8>), AuditDecodeError>;

/// The state of a verification walking along a chain.
struct Walk {
    signer: NodeId,
    head: ChainHead,
    position: u64,
    batched: bool,
}

impl Walk {
    const fn new(signer: NodeId, head: ChainHead, batched: bool) -> Self {
        Self {
            signer,
            head,
            position: 0,
            batched,
        }
    }

    fn run<I>(mut self, entries: I) -> Result<VerifiedChain, AuditVerifyError>
    where
        I: IntoIterator,
        I::Item: AuditItem,
    {
        let mut rest = entries.into_iter().map(sealed::Sealed::into_parts);
        loop {
            let chunk: Vec<Parts> = rest.by_ref().take(VERIFY_CHUNK).collect();
            if chunk.is_empty() {
                return Ok(VerifiedChain {
                    entries: self.position,
                    head: self.head,
                    signer: self.signer,
                });
            }
            self.check_chunk(&chunk, &mut rest)?;
        }
    }

    /// Checks one chunk; on success, advances past it.
    fn check_chunk(
        &mut self,
        chunk: &[Parts],
        rest: &mut dyn Iterator<Item = Parts>,
    ) -> Result<(), AuditVerifyError> {
        // Pass 1, in order: decoding, sequence and links, and the key each entry must be
        // signed with; stop at the first structural fault.
        let mut head = self.head;
        let mut signer = self.signer;
        let mut signed: Vec<(&AuditEntry, &[u8], NodeId)> = Vec::with_capacity(chunk.len());
        let mut fault: Option<(usize, Fault)> = None;
        for (i, parts) in chunk.iter().enumerate() {
            let (entry, bytes) = match parts {
                Ok((entry, bytes)) => (entry, bytes),
                Err(error) => {
                    fault = Some((i, Fault::Malformed(error.clone())));
                    break;
                }
            };
            signed.push((entry, bytes, signer));
            if entry.seq != head.next_seq {
                fault = Some((
                    i,
                    Fault::Seq {
                        expected: head.next_seq,
                        found: entry.seq,
                    },
                ));
                break;
            }
            if entry.prev_hash != head.last_hash {
                fault = Some((i, Fault::Link));
                break;
            }
            head = ChainHead {
                next_seq: entry.seq.saturating_add(1),
                last_hash: Sha256::digest(bytes).into(),
            };
            if entry.kind == AuditKind::KeyRotated
                && let Some(next) = entry.subject.peer
            {
                signer = next;
            }
        }
        // Pass 2: the signatures of every entry up to and including a structurally faulty
        // one (a bad signature there says more: the entry itself was changed).
        let bad = self.first_bad_signature(&signed);
        let at = |i: usize| self.position.saturating_add(i as u64);
        match (bad, fault) {
            (Some(b), fault) if fault.as_ref().is_none_or(|(f, _)| b <= *f) => {
                let seq = signed.get(b).map_or(0, |(entry, _, _)| entry.seq);
                Err(AuditVerifyError::BadSignature {
                    position: at(b),
                    seq,
                })
            }
            (_, Some((f, Fault::Malformed(source)))) => Err(AuditVerifyError::Malformed {
                position: at(f),
                source,
            }),
            (_, Some((f, Fault::Link))) => Err(AuditVerifyError::BrokenLink {
                position: at(f),
                seq: signed.get(f).map_or(0, |(entry, _, _)| entry.seq),
            }),
            (_, Some((f, Fault::Seq { expected, found }))) => {
                let later = chunk
                    .iter()
                    .skip(f + 1)
                    .map(|parts| parts.as_ref().ok().map(|(entry, _)| entry.seq))
                    .chain(rest.map(|parts| parts.ok().map(|(entry, _)| entry.seq)));
                let reordered = found < expected || later.flatten().any(|seq| seq == expected);
                let (position, expected_seq, found_seq) = (at(f), expected, found);
                Err(if reordered {
                    AuditVerifyError::Reordered {
                        position,
                        expected_seq,
                        found_seq,
                    }
                } else {
                    AuditVerifyError::Missing {
                        position,
                        expected_seq,
                        found_seq,
                    }
                })
            }
            (_, None) => {
                self.head = head;
                self.signer = signer;
                self.position = at(chunk.len());
                Ok(())
            }
        }
    }

    /// The index of the first entry whose signature fails.
    fn first_bad_signature(&self, signed: &[(&AuditEntry, &[u8], NodeId)]) -> Option<usize> {
        let inputs: Vec<Vec<u8>> = signed
            .iter()
            .map(|(_, bytes, signer)| {
                let unsigned = bytes
                    .get(..bytes.len().saturating_sub(64))
                    .unwrap_or_default();
                signing_input(signer, unsigned)
            })
            .collect();
        if self.batched {
            let items: Vec<_> = signed
                .iter()
                .zip(&inputs)
                .map(|((entry, _, signer), input)| {
                    (input.as_slice(), &entry.signature, signer.verifying_key())
                })
                .collect();
            dawn_crypto::verify_batch(&items)
                .err()
                .and_then(|error| error.invalid().first().copied())
        } else {
            signed
                .iter()
                .zip(&inputs)
                .position(|((entry, _, signer), input)| {
                    signer.verify(input, &entry.signature).is_err()
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_encoder_agrees_with_postcard() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let peer = NodeId::from(SigningKey::from_bytes(&[4; 32]).verifying_key());
        let mut chain = AuditChain::resume(ChainHead {
            next_seq: 300,
            last_hash: [9; 32],
        });
        for subject in [
            Subject::none(),
            Subject::none().with_peer(peer),
            Subject::none()
                .with_peer(peer)
                .with_agent("weather".parse().unwrap())
                .with_tool("forecast"),
        ] {
            let entry = chain.append(
                &key,
                u64::MAX,
                AuditKind::KeyRotated,
                subject.clone(),
                &"é".repeat(200),
            );
            let (r, s) = entry.signature.as_bytes().split_at(32);
            let wire = EntryWire {
                version: AUDIT_VERSION,
                seq: entry.seq,
                timestamp_ms: entry.timestamp_ms,
                kind: entry.kind.code(),
                peer: subject.peer.map(|p| *p.as_bytes()),
                agent: subject.agent.as_ref().map(AgentId::as_str),
                tool: subject.tool.as_deref(),
                details: &entry.details,
                prev_hash: entry.prev_hash,
                signature: (r.try_into().unwrap(), s.try_into().unwrap()),
            };
            assert_eq!(entry.encode(), dawn_wire::encode_payload(&wire).unwrap());
            assert_eq!(AuditEntry::decode(&entry.encode()).unwrap(), entry);
        }
    }

    #[test]
    fn largest_entry_is_exactly_the_maximum() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let peer = NodeId::from(key.verifying_key());
        let mut chain = AuditChain::resume(ChainHead {
            next_seq: u64::MAX,
            last_hash: [0xff; 32],
        });
        let entry = chain.append(
            &key,
            u64::MAX,
            AuditKind::KeyRotated,
            Subject::none()
                .with_peer(peer)
                .with_agent("a".repeat(64).parse().unwrap())
                .with_tool(&"t".repeat(500)),
            &"d".repeat(5000),
        );
        assert_eq!(
            entry.subject().tool().map(str::len),
            Some(MAX_TOOL_NAME_LEN)
        );
        assert_eq!(entry.details().len(), MAX_DETAILS_LEN);
        assert_eq!(entry.encode().len(), MAX_AUDIT_ENTRY_LEN);
        AuditEntry::decode(&entry.encode()).unwrap();
    }

    #[test]
    fn kinds_have_distinct_codes_and_names() {
        for (i, kind) in AuditKind::ALL.iter().enumerate() {
            assert_eq!(usize::from(kind.code()), i + 1);
            assert_eq!(AuditKind::from_code(kind.code()), Some(*kind));
            assert_eq!(
                serde_json::to_string(kind).unwrap(),
                format!("\"{}\"", kind.as_str())
            );
        }
        assert_eq!(AuditKind::from_code(0), None);
        assert_eq!(AuditKind::from_code(13), None);
    }
}
