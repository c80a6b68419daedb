//! `AgentAddr`: where an agent lives on the mesh, `<node_id>:<agent_id>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::agent_id::{AGENT_ID_MAX_LEN, AgentId, AgentIdError};
use crate::node_id::{NODE_ID_TEXT_LEN, NodeId, NodeIdError};

/// The longest text form of an [`AgentAddr`]: 52 + 1 + 64 = 117 characters.
pub const AGENT_ADDR_MAX_TEXT_LEN: usize = NODE_ID_TEXT_LEN + 1 + AGENT_ID_MAX_LEN;

/// An [`AgentAddr`] could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentAddrError {
    /// There is no `:` between the node id and the agent id.
    #[error("an agent address is <node_id>:<agent_id>, but there is no ':'")]
    MissingSeparator,
    /// Nothing before the `:`.
    #[error("the node id before ':' is empty")]
    EmptyNodeId,
    /// Nothing after the `:`.
    #[error("the agent id after ':' is empty")]
    EmptyAgentId,
    /// A second `:` (agent ids never contain one).
    #[error("an agent address has exactly one ':', found another at byte {position}")]
    ExtraSeparator {
        /// Byte offset of the second `:` in the input.
        position: usize,
    },
    /// The part before the `:` is not a node id.
    #[error("bad node id in agent address: {0}")]
    NodeId(#[source] NodeIdError),
    /// The part after the `:` is not an agent id.
    #[error("bad agent id in agent address: {0}")]
    AgentId(#[source] AgentIdError),
}

/// The address of an agent on the mesh: the node that hosts it and its name there.
///
/// # Text form
///
/// `<node_id>:<agent_id>`, for example
/// `hr5kzmqbmzs2mf6ytjbhz2iw3jzxhqz4ltkb3e7b6dsrxlfdqnaa:weather`: the 52-character
/// [`NodeId`], one `:`, then the [`AgentId`]. Parsing accepts an uppercase node id (as
/// [`NodeId`] does); display is always the canonical lowercase form, at most
/// [`AGENT_ADDR_MAX_TEXT_LEN`] characters.
///
/// serde encodes the text form in human-readable formats and the pair `(NodeId, AgentId)` in
/// binary ones (32 raw bytes, then the length-prefixed name in postcard), validating both when
/// decoding.
///
/// ```
/// use dawn_identity::{AgentAddr, AgentAddrError};
///
/// let text = "hr5kzmqbmzs2mf6ytjbhz2iw3jzxhqz4ltkb3e7b6dsrxlfdqnaa:weather";
/// let addr: AgentAddr = text.parse()?;
/// assert_eq!(addr.agent().as_str(), "weather");
/// assert_eq!(addr.to_string(), text);
/// assert_eq!("weather".parse::<AgentAddr>(), Err(AgentAddrError::MissingSeparator));
/// # Ok::<(), AgentAddrError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentAddr {
    node: NodeId,
    agent: AgentId,
}

impl AgentAddr {
    /// The address of `agent` on `node`.
    #[must_use]
    pub const fn new(node: NodeId, agent: AgentId) -> Self {
        Self { node, agent }
    }

    /// The node that hosts the agent.
    #[must_use]
    pub const fn node(&self) -> &NodeId {
        &self.node
    }

    /// The agent's name on its node.
    #[must_use]
    pub const fn agent(&self) -> &AgentId {
        &self.agent
    }

    /// Splits the address into its node and agent.
    #[must_use]
    pub fn into_parts(self) -> (NodeId, AgentId) {
        (self.node, self.agent)
    }

    /// A short form for logs: [`NodeId::fmt_short`], `:`, then the agent id.
    #[must_use]
    pub fn fmt_short(&self) -> String {
        format!("{}:{}", self.node.fmt_short(), self.agent)
    }
}

impl FromStr for AgentAddr {
    type Err = AgentAddrError;

    /// Parses `<node_id>:<agent_id>`. Total: any input yields a value or a typed error.
    fn from_str(s: &str) -> Result<Self, AgentAddrError> {
        let (node, agent) = s.split_once(':').ok_or(AgentAddrError::MissingSeparator)?;
        if node.is_empty() {
            return Err(AgentAddrError::EmptyNodeId);
        }
        if agent.is_empty() {
            return Err(AgentAddrError::EmptyAgentId);
        }
        if let Some(offset) = agent.find(':') {
            return Err(AgentAddrError::ExtraSeparator {
                position: node.len() + 1 + offset,
            });
        }
        let node = node.parse().map_err(AgentAddrError::NodeId)?;
        let agent = agent.parse().map_err(AgentAddrError::AgentId)?;
        Ok(Self { node, agent })
    }
}

impl fmt::Display for AgentAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.agent)
    }
}

impl fmt::Debug for AgentAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentAddr({})", self.fmt_short())
    }
}

impl Serialize for AgentAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            (&self.node, &self.agent).serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for AgentAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            let (node, agent) = <(NodeId, AgentId)>::deserialize(deserializer)?;
            Ok(Self { node, agent })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dawn_crypto::SigningKey;

    fn node(seed: u8) -> NodeId {
        SigningKey::from_bytes(&[seed; 32]).verifying_key().into()
    }

    #[test]
    fn text_round_trip() {
        let addr = AgentAddr::new(node(1), "weather".parse().unwrap());
        let text = addr.to_string();
        assert_eq!(text, format!("{}:weather", node(1)));
        assert_eq!(text.parse::<AgentAddr>().unwrap(), addr);
        // An uppercase node id is accepted and displayed canonically.
        let upper = format!("{}:weather", node(1).to_string().to_ascii_uppercase());
        assert_eq!(upper.parse::<AgentAddr>().unwrap().to_string(), text);
        assert_eq!(
            format!("{addr:?}"),
            format!("AgentAddr({}:weather)", node(1).fmt_short())
        );
        let (n, a) = addr.into_parts();
        assert_eq!((n, a.as_str()), (node(1), "weather"));
    }

    #[test]
    fn every_malformation_has_its_error() {
        let n = node(2).to_string();
        let parse = |s: &str| s.parse::<AgentAddr>();
        assert_eq!(parse(""), Err(AgentAddrError::MissingSeparator));
        assert_eq!(parse(&n), Err(AgentAddrError::MissingSeparator));
        assert_eq!(parse(":agent"), Err(AgentAddrError::EmptyNodeId));
        assert_eq!(parse(":"), Err(AgentAddrError::EmptyNodeId));
        assert_eq!(parse(&format!("{n}:")), Err(AgentAddrError::EmptyAgentId));
        assert_eq!(
            parse(&format!("{n}:a:b")),
            Err(AgentAddrError::ExtraSeparator { position: 54 })
        );
        assert_eq!(
            parse(&format!("{n}::")),
            Err(AgentAddrError::ExtraSeparator { position: 53 })
        );
        assert_eq!(
            parse("abc:agent"),
            Err(AgentAddrError::NodeId(NodeIdError::Length(3)))
        );
        assert_eq!(
            parse(&format!("{n}:-agent")),
            Err(AgentAddrError::AgentId(AgentIdError::BadFirstChar {
                ch: '-'
            }))
        );
        let message = parse("abc:agent").unwrap_err().to_string();
        assert!(message.contains("bad node id"), "{message}");
        assert!(message.contains("got 3 characters"), "{message}");
    }

    #[test]
    fn serde_binary_is_the_pair_and_validates() {
        let addr = AgentAddr::new(node(3), "echo".parse().unwrap());
        let bytes = postcard::to_allocvec(&addr).unwrap();
        let mut expected = node(3).as_bytes().to_vec();
        expected.extend_from_slice(b"\x04echo");
        assert_eq!(bytes, expected);
        assert_eq!(postcard::from_bytes::<AgentAddr>(&bytes).unwrap(), addr);
        let mut bad = bytes.clone();
        bad[33] = b'E';
        assert!(postcard::from_bytes::<AgentAddr>(&bad).is_err());
        assert!(postcard::from_bytes::<AgentAddr>(&bytes[..33]).is_err());
    }

    #[test]
    fn longest_address_fits_the_bound() {
        let addr = AgentAddr::new(node(4), "z".repeat(AGENT_ID_MAX_LEN).parse().unwrap());
        assert_eq!(addr.to_string().len(), AGENT_ADDR_MAX_TEXT_LEN);
    }
}
