//! Golden encodings: every gossip message's wire bytes (header and body) are pinned in
//! `tests/golden/*.hex`.
//!
//! A failure here means an encoding changed. If that is deliberate (a protocol change: a new
//! type number, since numbers are never reused), regenerate the files with
//! `DAWN_BLESS=1 cargo test -p dawn-gossip --test golden` and commit them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::fmt::Write as _;

use dawn_crypto::SigningKey;
use dawn_gossip::{GossipMessage, IHaveEntry, MessageId, Topic};
use dawn_identity::NodeId;
use dawn_wire::{Message, SignedEnvelope};

const TIMESTAMP: u64 = 1_700_000_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn node(seed: u8) -> NodeId {
    key(seed).verifying_key().into()
}

fn envelope() -> SignedEnvelope {
    SignedEnvelope::sign(
        &key(7),
        "dawn/registry/delta",
        TIMESTAMP,
        42,
        &b"add agent echo"[..],
    )
    .unwrap()
}

fn topic() -> Topic {
    Topic::new("dawn/registry/delta").unwrap()
}

fn id(byte: u8) -> MessageId {
    MessageId::from_bytes([byte; 32])
}

/// Every message type, with the name of its golden file and a description.
fn cases() -> Vec<(&'static str, &'static str, GossipMessage)> {
    vec![
        ("join", "Join (0x0100), empty body", GossipMessage::Join),
        (
            "forward_join",
            "ForwardJoin (0x0101): joiner = key of [2; 32], ttl 6",
            GossipMessage::ForwardJoin {
                joiner: node(2),
                ttl: 6,
            },
        ),
        (
            "neighbor",
            "Neighbor (0x0102): high priority",
            GossipMessage::Neighbor {
                high_priority: true,
            },
        ),
        (
            "neighbor_reply",
            "NeighborReply (0x0103): refused",
            GossipMessage::NeighborReply { accepted: false },
        ),
        (
            "disconnect",
            "Disconnect (0x0104): alive",
            GossipMessage::Disconnect { alive: true },
        ),
        (
            "shuffle",
            "Shuffle (0x0105): origin [3; 32], ttl 5, nodes [3; 32] and [4; 32]",
            GossipMessage::Shuffle {
                origin: node(3),
                ttl: 5,
                nodes: vec![node(3), node(4)],
            },
        ),
        (
            "shuffle_reply",
            "ShuffleReply (0x0106): nodes [5; 32]",
            GossipMessage::ShuffleReply {
                nodes: vec![node(5)],
            },
        ),
        (
            "keep_alive",
            "KeepAlive (0x0107), empty body",
            GossipMessage::KeepAlive,
        ),
        (
            "gossip",
            "Gossip (0x0110): hops 300, the envelope of dawn-wire's golden envelope.hex",
            GossipMessage::Gossip {
                hops: 300,
                envelope: envelope(),
            },
        ),
        (
            "ihave",
            "IHave (0x0111): topic dawn/registry/delta, ([0x11; 32], 2 hops), ([0x22; 32], 200 hops)",
            GossipMessage::IHave {
                topic: topic(),
                entries: vec![
                    IHaveEntry {
                        id: id(0x11),
                        hops: 2,
                    },
                    IHaveEntry {
                        id: id(0x22),
                        hops: 200,
                    },
                ],
            },
        ),
        (
            "graft",
            "Graft (0x0112): topic dawn/registry/delta, ids [0x33; 32]",
            GossipMessage::Graft {
                topic: topic(),
                ids: vec![id(0x33)],
            },
        ),
        (
            "prune",
            "Prune (0x0113): topic dawn/registry/delta",
            GossipMessage::Prune { topic: topic() },
        ),
        (
            "digest",
            "Digest (0x0120): respond, ids [0x44; 32] and [0x55; 32]",
            GossipMessage::Digest {
                respond: true,
                ids: vec![id(0x44), id(0x55)],
            },
        ),
        (
            "request",
            "Request (0x0121): ids [0x66; 32]",
            GossipMessage::Request {
                ids: vec![id(0x66)],
            },
        ),
        (
            "response",
            "Response (0x0122): hops 0, the envelope of dawn-wire's golden envelope.hex",
            GossipMessage::Response {
                hops: 0,
                envelope: envelope(),
            },
        ),
    ]
}

/// Compares `bytes` with the golden file `name`, or rewrites it under `DAWN_BLESS=1`.
fn golden(name: &str, description: &str, bytes: &[u8]) -> Option<String> {
    dawn_golden::check(env!("CARGO_MANIFEST_DIR"), name, description, bytes)
}

#[test]
fn every_message_encodes_to_its_golden_bytes() {
    let mut failures = String::new();
    for (name, description, message) in cases() {
        let bytes = message.to_wire().unwrap().encode().unwrap();
        if let Some(failure) = golden(name, description, &bytes) {
            writeln!(failures, "{failure}").unwrap();
        }
        // The golden bytes decode back to the same message.
        let decoded = GossipMessage::from_wire(&Message::decode(&bytes).unwrap()).unwrap();
        assert_eq!(decoded, message, "{name}");
    }
    assert!(failures.is_empty(), "{failures}");
}

/// The body of a `Gossip` carries dawn-wire's envelope encoding unchanged.
#[test]
fn gossip_body_embeds_the_envelope_bytes() {
    let envelope = envelope();
    let body = GossipMessage::Gossip {
        hops: 1,
        envelope: envelope.clone(),
    }
    .encode_body()
    .unwrap();
    let inner = envelope.encode().unwrap();
    // hops (varint 1), envelope length (varint, 2 bytes here), envelope bytes.
    assert_eq!(body[0], 1);
    let len = inner.len();
    assert!((128..16_384).contains(&len));
    assert_eq!(body[1], (len as u8 & 0x7f) | 0x80);
    assert_eq!(body[2], (len >> 7) as u8);
    assert_eq!(&body[3..], inner.as_slice());
}

/// Type numbers are part of the wire format: pinned here as well.
#[test]
fn type_numbers_are_stable() {
    let kinds: Vec<(&str, u16)> = cases()
        .into_iter()
        .map(|(name, _, message)| (name, message.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("join", 0x0100),
            ("forward_join", 0x0101),
            ("neighbor", 0x0102),
            ("neighbor_reply", 0x0103),
            ("disconnect", 0x0104),
            ("shuffle", 0x0105),
            ("shuffle_reply", 0x0106),
            ("keep_alive", 0x0107),
            ("gossip", 0x0110),
            ("ihave", 0x0111),
            ("graft", 0x0112),
            ("prune", 0x0113),
            ("digest", 0x0120),
            ("request", 0x0121),
            ("response", 0x0122),
        ]
    );
}
