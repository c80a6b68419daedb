//! Dawn's trust core, layer 3 of the workspace: whom this node trusts, what each peer may do,
//! and a tamper-evident record of every security decision.
//!
//! - **Scores and levels** ([`TrustTable`]): every peer has a score in `[0, 1]` that rises
//!   slowly with valid behaviour, falls sharply on invalid signatures, replays, malformed
//!   frames and protocol violations ([`Observation`]), and decays toward a baseline with a
//!   half-life. Its [`TrustLevel`] follows from the operator's [`Assignment`] and score
//!   thresholds (automatic `Untrusted` and `Verified`, with hysteresis). Trusted peers may
//!   recommend others: one hop, weighted by the recommender's score, capped. Level changes
//!   come out of [`TrustTable::poll_event`] as [`TrustChanged`] for the audit log.
//! - **Permissions** ([`Policy`]): [`Permission`]s granted per level, per peer, per agent and
//!   per tool, with deny rules beating allow rules beating level defaults; every
//!   [`Decision`] names the rule that made it. The default policy is safe: unknown peers may
//!   connect and read the directory, not call tools. A policy deserializes from TOML
//!   ([`PolicyConfig`]) with errors that name the bad entry.
//! - **Audit log** ([`AuditChain`], [`AuditEntry`], [`verify_chain`]): entries numbered,
//!   chained by SHA-256 and signed by the node over a domain-separated encoding;
//!   verification batches signatures and reports the first tampered, missing, reordered or
//!   re-signed entry. Entries export as JSON lines.
//!
//! The crate is sans-IO: no sockets, files, threads or clock. Time enters as `now_ms`, the
//! wall clock in **milliseconds since the Unix epoch** (`u64`), the unit `dawn-wire` and the
//! store use; [`unix_ms`] converts a `SystemTime`. The node persists what this crate returns
//! ([`PeerSnapshot`], encoded [`AuditEntry`]s) and feeds it back after a restart.
//!
//! The model's constants, the default policy and the audit entry layout byte by byte are in
//! the crate's `README.md`.
//!
//! # Example
//!
//! ```
//! use dawn_crypto::SigningKey;
//! use dawn_identity::NodeId;
//! use dawn_trust::{
//!     AuditChain, AuditKind, Observation, Permission, Policy, Request, Subject, TrustConfig,
//!     TrustLevel, TrustTable, verify_chain,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node_key = SigningKey::from_bytes(&[1; 32]);
//! let node = NodeId::from(node_key.verifying_key());
//! let peer = NodeId::from(SigningKey::from_bytes(&[2; 32]).verifying_key());
//! let now = 1_700_000_000_000;
//!
//! let mut table = TrustTable::new(TrustConfig::default())?;
//! let policy = Policy::default();
//! let mut audit = AuditChain::new();
//! let mut log = Vec::new();
//!
//! // A peer connects and asks to call a tool.
//! table.record(now, &peer, Observation::HandshakeCompleted);
//! let request = Request::new(&peer, table.level(&peer), Permission::CallTools)
//!     .with_tool("forecast");
//! let decision = policy.decide(&request);
//! assert!(!decision.allowed);
//! log.push(audit.append(
//!     &node_key,
//!     now,
//!     AuditKind::ToolCallDenied,
//!     Subject::none().with_peer(peer).with_tool("forecast"),
//!     &decision.explain(&request),
//! ));
//!
//! // It then forges signatures and becomes Untrusted; the change is audited too.
//! table.record(now, &peer, Observation::InvalidSignature);
//! table.record(now, &peer, Observation::InvalidSignature);
//! while let Some(change) = table.poll_event() {
//!     assert_eq!(change.new_level, TrustLevel::Untrusted);
//!     let details = format!("{} -> {} ({})", change.old_level, change.new_level, change.cause);
//!     log.push(audit.append(
//!         &node_key,
//!         now,
//!         AuditKind::TrustChanged,
//!         Subject::none().with_peer(change.peer),
//!         &details,
//!     ));
//! }
//! assert_eq!(verify_chain(&node, &log)?.entries, 2);
//! # Ok(()) }
//! ```
//!
//! # Status
//!
//! The audit entry encoding (version 1) and the peer snapshot encoding (version 1) are pinned
//! by golden files in `tests/golden/`; changing either is a format change.

mod audit;
mod config;
mod level;
mod observation;
mod permission;
mod policy;
mod snapshot;
mod table;
mod time;

pub use crate::audit::{
    AUDIT_DOMAIN, AUDIT_VERSION, AuditChain, AuditDecodeError, AuditEntry, AuditItem,
    AuditJsonError, AuditKind, AuditVerifyError, ChainHead, GENESIS_HASH, MAX_AUDIT_ENTRY_LEN,
    MAX_AUDIT_JSON_LEN, MAX_DETAILS_LEN, Subject, VerifiedChain, verify_chain, verify_chain_from,
    verify_chain_one_by_one,
};
pub use crate::config::{TrustConfig, TrustConfigError};
pub use crate::level::{Assignment, ParseLevelError, TrustLevel};
pub use crate::observation::{Effect, Observation};
pub use crate::permission::{ParsePermissionError, Permission, PermissionSet};
pub use crate::policy::{
    Decision, DecisionReason, LevelDefaults, MAX_POLICY_RULES, MAX_RULE_LIST_LEN,
    MAX_RULE_NAME_LEN, MAX_TOOL_NAME_LEN, Policy, PolicyConfig, PolicyError, Request, RuleConfig,
    RuleList, RuleRef,
};
pub use crate::snapshot::{
    MAX_SNAPSHOT_LEN, PeerSnapshot, Recommendation, RestoreError, SNAPSHOT_VERSION,
};
pub use crate::table::{
    ChangeCause, RecommendError, TrustChanged, TrustError, TrustStats, TrustTable,
};
pub use crate::time::unix_ms;
