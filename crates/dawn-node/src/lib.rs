//! The Dawn node, layer 5 of the workspace.

mod api;
mod config;
mod error;
mod http;
mod identity;
mod node;
mod peers;

pub use crate::api::{ApiError, ApiErrorBody, Direction, NodeStatus, PeerInfo, PeerList};
pub use crate::config::{
    BootstrapPeer, BootstrapPeerError, Config, ConfigError, DEFAULT_HTTP, DEFAULT_LISTEN,
    ENV_OVERRIDES, HttpConfig, IdentityConfig, LogConfig, LogFormat, MAX_BOOTSTRAP_PEERS,
    MAX_CONFIG_LEN, NodeConfig, default_config_path, default_data_dir,
};
pub use crate::error::NodeError;
pub use crate::identity::{KEY_FILE_NAME, KeyState, inspect_key, key_path, read_passphrase_file};
pub use crate::node::{DB_FILE_NAME, LOCK_FILE_NAME, Node, NodeBuilder};
pub use dawn_identity::{NodeId, Passphrase};
pub use dawn_transport::TransportConfig;
