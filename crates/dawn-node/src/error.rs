//! `NodeError`: why a node could not start or an operation on it failed.

use std::net::SocketAddr;
use std::path::PathBuf;

use dawn_identity::{KeystoreError, NodeId, PassphraseError};
use dawn_store::StoreError;
use dawn_transport::{BindError, ConnectError};

use crate::config::ConfigError;

/// A node could not start, or an operation on a running node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be created or used.
    #[error("data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another node is running on the same data directory.
    #[error(
        "data directory {} is in use by another dawn-node (lock file {} is held); stop that \
         node or use another --data-dir",
        path.display(),
        lock.display()
    )]
    DataDirInUse {
        /// The directory.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The node key is encrypted and no passphrase was supplied.
    #[error(
        "the node key {} is encrypted and no passphrase was given: set DAWN_PASSPHRASE, use \
         --passphrase-file (identity.passphrase_file), or start dawn-node on a terminal to be \
         asked",
        path.display()
    )]
    PassphraseRequired {
        /// The key file.
        path: PathBuf,
    },
    /// The passphrase file could not be read.
    #[error("passphrase file {}: {source}", path.display())]
    PassphraseFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The passphrase (from a file, the environment or a prompt) is not acceptable.
    #[error("{origin}: {source}")]
    Passphrase {
        /// Where it came from, e.g. `DAWN_PASSPHRASE` or the file's path.
        origin: String,
        /// What is wrong with it.
        #[source]
        source: PassphraseError,
    },
    /// The operating system gave no randomness for a new node key.
    #[error("cannot generate a node key: {0}")]
    Rng(#[from] dawn_crypto::RngError),
    /// The key file could not be read, opened or written (wrong passphrase, bad permissions,
    /// damaged file).
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The database could not be opened or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The QUIC endpoint could not be bound.
    #[error("cannot listen for QUIC on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: BindError,
    },
    /// The agent layer could not start (its handlers could not be registered).
    #[error("cannot start the agents: {0}")]
    Agents(String),
    /// The node is still starting or already stopping: its agents are not available.
    #[error("the node's agents are not running")]
    AgentsUnavailable,
    /// The HTTP server could not be bound.
    #[error("cannot serve HTTP on {addr}: {source}")]
    HttpBind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A dial failed.
    #[error("cannot connect to {}: {source}", peer.fmt_short())]
    Connect {
        /// The peer (boxed, like the cause, to keep the error small).
        peer: Box<NodeId>,
        /// Why (boxed: a connect error carries node ids and is large).
        #[source]
        source: Box<ConnectError>,
    },
    /// A host name could not be resolved to any address.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host and port.
        host: String,
        /// Why.
        reason: String,
    },
    /// A background task failed unexpectedly (it panicked or was cancelled by the runtime).
    #[error("a node task failed: {0}")]
    Task(String),
    /// The gossip configuration is invalid.
    #[error("gossip configuration: {0}")]
    Gossip(#[source] dawn_gossip::ConfigError),
    /// The trust, policy or audit state could not be set up (a bad `[trust]` or
    /// `[resilience]` section, an unreadable admin token, a damaged audit log).
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    /// A simulation could not run (see [`simulate`](crate::simulate)).
    #[error("simulation: {0}")]
    Simulation(String),
}
