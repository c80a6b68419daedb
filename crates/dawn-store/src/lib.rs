//! Dawn's per-node database, layer 4 of the workspace.
//!
//! Each node keeps its durable state in one SQLite file (the bundled SQLite, so every build
//! has the same version): known peers, the audit log, trust records, settings, agent data and
//! the registry snapshot (the consensus write-ahead log is to come). Protocol cores never open
//! files; the node hands their data to a typed repository here.
//!
//! - [`Store::open`] creates or opens the file, checks it, switches it to write-ahead logging
//!   and applies the schema migrations. A file that is not SQLite, belongs to another
//!   application, is damaged, or was written by a newer build is refused with a typed error
//!   and left byte-for-byte as it was; the store never deletes or recreates a database.
//! - [`Store::peers`] gives the [`PeerRepo`]: peers by [`NodeId`](dawn_identity::NodeId),
//!   with their addresses, first and last contact and failure count.
//! - [`Store::audit`] gives the [`AuditRepo`]: dawn-trust's signed, hash-chained audit
//!   entries, append-only, each append synced to disk (`synchronous = FULL`) before it
//!   returns, refused unless it continues the stored chain; [`AuditRepo::iter_all`] feeds
//!   `dawn_trust::verify_chain`.
//! - [`Sealer`] seals values at rest: AES-256-GCM under keys derived from the node key with
//!   HKDF-SHA256 per [`SealPurpose`], bound to table and row. [`Store::trust`] (every record
//!   sealed) and [`Store::agent_data`] (sensitive values sealed) take one.
//! - [`Store::settings`] and [`Store::registry`]: small named values and the registry's
//!   snapshot blob, in the clear.
//! - [`Store::backup_to`] copies the live database to a checked, self-contained file;
//!   [`Store::restore_from`] puts one back, refusing a target that is in use.
//!
//! A [`Store`] is `Clone + Send + Sync`; every call blocks briefly on the one connection, so
//! async code calls it from `spawn_blocking`. The store never reads the clock: callers pass
//! `now`.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use dawn_crypto::SigningKey;
//! use dawn_identity::NodeId;
//! use dawn_store::Store;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("node.db"))?;
//! let peer: NodeId = SigningKey::from_bytes(&[7; 32]).verifying_key().into();
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//!
//! store.peers().upsert(&peer, &["192.0.2.1:4433".parse()?], now)?;
//! store.peers().record_failure(&peer, now)?;
//!
//! let record = store.peers().get(&peer)?.ok_or("peer missing")?;
//! assert_eq!(record.failures, 1);
//! assert_eq!(record.last_seen, None);
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! The schema version is SQLite's `user_version`, one per migration; [`SCHEMA_VERSION`] is the
//! newest this build knows. Migrations are append-only; the crate README describes the policy
//! for adding tables.
//!
//! Sealed records:
//!
//! ```
//! # use std::time::{Duration, UNIX_EPOCH};
//! use dawn_crypto::SigningKey;
//! use dawn_store::{Sealer, Store};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node_key = SigningKey::from_bytes(&[1; 32]);
//! let sealer = Sealer::from_signing_key(&node_key);
//! let store = Store::open_in_memory()?;
//! let agent = "memory".parse()?;
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//!
//! store.agent_data(&sealer).put(&agent, "token", b"s3cret", true, now)?;
//! let record = store.agent_data(&sealer).get(&agent, "token")?.ok_or("missing")?;
//! assert_eq!(&record.value[..], b"s3cret");
//! # Ok(()) }
//! ```
//!
//! # Status
//!
//! Peers, audit log, trust records, settings, agent data, registry snapshot, backup and
//! restore. The on-disk schema is pinned by a golden test (`tests/golden/schema.sql`); the
//! audit entry and snapshot encodings belong to dawn-trust, the sealed-value layout to
//! [`Sealer`] (version [`SEALED_VERSION`]).

mod agent_data;
mod audit;
mod backup;
mod error;
mod header;
mod migrations;
mod peers;
mod registry;
mod sealer;
mod settings;
mod store;
mod time;
mod trust;

pub use crate::agent_data::{
    AgentDataRepo, AgentRecord, AgentUsage, MAX_AGENT_BYTES, MAX_AGENT_KEY_LEN, MAX_AGENT_KEYS,
    MAX_AGENT_LIST, MAX_AGENT_SEARCH_LEN, MAX_AGENT_VALUE_LEN,
};
pub use crate::audit::{AuditIter, AuditRepo, MAX_AUDIT_RANGE};
pub use crate::error::{SqliteError, StoreError};
pub use crate::migrations::SCHEMA_VERSION;
pub use crate::peers::{MAX_PEER_ADDRS, PeerRecord, PeerRepo};
pub use crate::registry::{MAX_REGISTRY_SNAPSHOT_LEN, RegistryRepo};
pub use crate::sealer::{MAX_SEALED_PLAINTEXT, SEAL_OVERHEAD, SEALED_VERSION, SealPurpose, Sealer};
pub use crate::settings::{MAX_SETTING_KEY_LEN, MAX_SETTING_VALUE_LEN, MAX_SETTINGS, SettingsRepo};
pub use crate::store::{IntegrityCheck, Store, StoreOptions, Synchronous};
pub use crate::trust::TrustRepo;
