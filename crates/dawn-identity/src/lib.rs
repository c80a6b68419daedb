//! Dawn identities, layer 1 of the workspace.
//!
//! A node is its Ed25519 public key: [`NodeId`]. This crate gives that key a stable text form,
//! names the agents a node hosts ([`AgentId`], [`AgentAddr`]), keeps the node's secret key on
//! disk encrypted (the keystore) and lets a node move to a new key with a statement its peers can
//! verify (key rotation).
//!
//! - **Names**: [`NodeId`] (52 characters of lowercase base32), [`AgentId`] (1 to 64 characters
//!   of `a-z0-9-_.`), [`AgentAddr`] (`<node_id>:<agent_id>`). All are valid by construction,
//!   parse with typed errors and validate when deserialised.
//! - **Keystore**: [`save_key`] and [`load_key`] keep the secret key in a small versioned file,
//!   encrypted with an AEAD under a key derived from a [`Passphrase`] by Argon2id, written
//!   atomically with mode 0600, refused on load if others may read it. [`KeyFile`] is the same
//!   format without the disk: [`KeyFile::decode`] parses bytes and never runs the KDF.
//!   A development mode without a passphrase exists, is marked in the file and must be asked
//!   for by name ([`Unlock::DevMode`]).
//! - **Rotation**: a [`RotationStatement`] signed by the old and the new key moves a node to a
//!   new key; [`follow_rotations`] follows a chain of them and refuses forks, cycles and gaps.
//!
//! # Example
//!
//! ```
//! use dawn_crypto::SigningKey;
//! use dawn_identity::{
//!     AgentAddr, KdfParams, NodeId, Passphrase, SealOptions, Unlock, WriteMode, load_key,
//!     save_key,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = SigningKey::generate()?;
//! let node = NodeId::from(key.verifying_key());
//! let addr: AgentAddr = format!("{node}:weather").parse()?;
//! assert_eq!(addr.node(), &node);
//!
//! let dir = std::env::temp_dir().join(format!("dawn-identity-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("node.key");
//! let passphrase = Passphrase::new("correct horse battery staple")?;
//! // Keep the default KDF parameters in real use; this example wants to be quick.
//! let options = SealOptions::new(KdfParams::insecure_fast(), Default::default());
//! save_key(&path, &key, &passphrase, &options, WriteMode::CreateNew)?;
//! let loaded = load_key(&path, &Unlock::Passphrase(passphrase))?;
//! assert_eq!(loaded, key);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
//!
//! # Status
//!
//! The text forms, the key file format (version 1) and the rotation statement encoding are
//! pinned by tests; changing any of them is a format change. The crate's README documents
//! them byte by byte.

mod agent_addr;
mod agent_id;
mod keyfile;
mod keystore;
mod node_id;
mod passphrase;
mod rotation;

pub use crate::agent_addr::{AGENT_ADDR_MAX_TEXT_LEN, AgentAddr, AgentAddrError};
pub use crate::agent_id::{AGENT_ID_MAX_LEN, AgentId, AgentIdError};
pub use crate::keyfile::{
    KEY_FILE_MAGIC, KEY_FILE_MAX_LEN, KEY_FILE_VERSION, KdfParams, KdfParamsError,
    KeyDerivationError, KeyFile, KeyFileError, KeyProtection, OpenKeyError, SealKeyError,
    SealOptions, Unlock,
};
pub use crate::keystore::{
    KeystoreError, WriteMode, load_key, read_key_file, save_key, save_key_unprotected,
    write_key_file,
};
pub use crate::node_id::{NODE_ID_TEXT_LEN, NodeId, NodeIdError};
pub use crate::passphrase::{PASSPHRASE_MAX_LEN, Passphrase, PassphraseError};
pub use crate::rotation::{
    ROTATION_CHAIN_MAX_LEN, ROTATION_DOMAIN, ROTATION_REASON_MAX_LEN, ROTATION_STATEMENT_MAX_LEN,
    RotationChainError, RotationCodecError, RotationError, RotationHistory, RotationStatement,
    follow_rotations,
};
