//! Dawn identities, layer 1 of the workspace.
//!
//! A node is its Ed25519 public key: [`NodeId`]. This crate gives that key a stable text form,
//! names the agents a node hosts ([`AgentId`], [`AgentAddr`]), keeps the node's secret key on
//! disk encrypted (the keystore) and lets a node move to a new key with a statement its peers can
//! verify (key rotation).

mod agent_addr;
mod agent_id;
mod node_id;

pub use crate::agent_addr::{AGENT_ADDR_MAX_TEXT_LEN, AgentAddr, AgentAddrError};
pub use crate::agent_id::{AGENT_ID_MAX_LEN, AgentId, AgentIdError};
pub use crate::node_id::{NODE_ID_TEXT_LEN, NodeId, NodeIdError};
