//! `AgentId` and `AgentAddr`: text and serde round trips, and parsers that take anything.

#![allow(clippy::unwrap_used, clippy::panic)]

use dawn_crypto::SigningKey;
use dawn_identity::{
    AGENT_ADDR_MAX_TEXT_LEN, AGENT_ID_MAX_LEN, AgentAddr, AgentAddrError, AgentId, AgentIdError,
    NodeId,
};
use proptest::prelude::*;

fn agent_id() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,63}"
}

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 32]>().prop_map(|seed| SigningKey::from_bytes(&seed).verifying_key().into())
}

fn agent_addr() -> impl Strategy<Value = AgentAddr> {
    (node_id(), agent_id()).prop_map(|(node, agent)| AgentAddr::new(node, agent.parse().unwrap()))
}

proptest! {
    #[test]
    fn agent_id_text_round_trip(text in agent_id()) {
        let id: AgentId = text.parse().unwrap();
        prop_assert_eq!(id.as_str(), text.as_str());
        prop_assert_eq!(id.to_string(), text.clone());
        prop_assert_eq!(AgentId::try_from(text.clone()).unwrap(), id.clone());
        prop_assert!(text.len() <= AGENT_ID_MAX_LEN);
    }

    #[test]
    fn agent_id_serde_round_trip(text in agent_id()) {
        let id: AgentId = text.parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        prop_assert_eq!(&json, &format!("\"{text}\""));
        prop_assert_eq!(serde_json::from_str::<AgentId>(&json).unwrap(), id.clone());
        let bytes = postcard::to_allocvec(&id).unwrap();
        prop_assert_eq!(postcard::from_bytes::<AgentId>(&bytes).unwrap(), id);
    }

    #[test]
    fn agent_id_parser_is_total_and_exact(text in any::<String>()) {
        match text.parse::<AgentId>() {
            Ok(id) => prop_assert_eq!(id.as_str(), text.as_str()),
            Err(AgentIdError::Empty) => prop_assert!(text.is_empty()),
            Err(AgentIdError::TooLong { len }) => {
                prop_assert_eq!(len, text.chars().count());
                prop_assert!(len > AGENT_ID_MAX_LEN);
            }
            Err(AgentIdError::BadChar { ch, position }) => {
                prop_assert_eq!(text.chars().nth(position), Some(ch));
            }
            Err(AgentIdError::BadFirstChar { ch }) => {
                prop_assert_eq!(text.chars().next(), Some(ch));
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
        // Serde agrees with the parser.
        let json = serde_json::to_string(&text).unwrap();
        prop_assert_eq!(
            serde_json::from_str::<AgentId>(&json).is_ok(),
            text.parse::<AgentId>().is_ok()
        );
    }

    #[test]
    fn agent_addr_text_round_trip(addr in agent_addr()) {
        let text = addr.to_string();
        prop_assert!(text.len() <= AGENT_ADDR_MAX_TEXT_LEN);
        prop_assert_eq!(text.parse::<AgentAddr>().unwrap(), addr.clone());
        let (node, agent) = addr.into_parts();
        prop_assert_eq!(text, format!("{node}:{agent}"));
    }

    #[test]
    fn agent_addr_serde_round_trip(addr in agent_addr()) {
        let json = serde_json::to_string(&addr).unwrap();
        prop_assert_eq!(&json, &format!("\"{addr}\""));
        prop_assert_eq!(serde_json::from_str::<AgentAddr>(&json).unwrap(), addr.clone());
        let bytes = postcard::to_allocvec(&addr).unwrap();
        prop_assert_eq!(postcard::from_bytes::<AgentAddr>(&bytes).unwrap(), addr);
    }

    #[test]
    fn agent_addr_parser_is_total(text in any::<String>()) {
        if let Ok(addr) = text.parse::<AgentAddr>() {
            // Only the node id's case may differ from the canonical form.
            prop_assert_eq!(addr.to_string(), text.to_ascii_lowercase());
        }
    }

    #[test]
    fn near_miss_addresses_get_typed_errors(
        addr in agent_addr(),
        position in any::<proptest::sample::Index>(),
        insert in prop_oneof![Just(':'), Just('A'), Just(' '), Just('é'), any::<char>()],
    ) {
        let mut text: Vec<char> = addr.to_string().chars().collect();
        text.insert(position.index(text.len() + 1), insert);
        let text: String = text.into_iter().collect();
        match text.parse::<AgentAddr>() {
            Ok(parsed) => prop_assert_eq!(parsed.to_string(), text.to_ascii_lowercase()),
            Err(AgentAddrError::ExtraSeparator { position }) => {
                prop_assert_eq!(text.as_bytes().get(position), Some(&b':'));
            }
            Err(
                AgentAddrError::NodeId(_)
                | AgentAddrError::AgentId(_)
                | AgentAddrError::EmptyNodeId
                | AgentAddrError::EmptyAgentId,
            ) => {}
            Err(other) => prop_assert!(false, "unexpected {other:?} for {text:?}"),
        }
    }

    #[test]
    fn binary_decoders_take_anything(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = postcard::from_bytes::<AgentId>(&bytes);
        let _ = postcard::from_bytes::<AgentAddr>(&bytes);
    }
}
