//! Golden encodings: every wire type's bytes are pinned in `tests/golden/*.hex`.
//!
//! A failure here means an encoding changed. If that is deliberate (a protocol change, with a
//! version bump where old nodes would misread the new bytes), regenerate the files with
//! `DAWN_BLESS=1 cargo test -p dawn-wire --test golden` and commit them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::fmt::Write as _;
use std::path::PathBuf;

use bytes::Bytes;
use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_wire::{
    Capabilities, Chunk, FrameDecoder, Hello, MAX_FRAME_LEN, Message, Ping, Pong, SignedEnvelope,
    encode_frame,
};

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

/// Compares `bytes` with the golden file `name`, or rewrites it under `DAWN_BLESS=1`.
fn golden(name: &str, description: &str, bytes: &[u8]) -> Option<String> {
    dawn_golden::check(env!("CARGO_MANIFEST_DIR"), name, description, bytes)
}

fn messages() -> Vec<(&'static str, &'static str, Message)> {
    vec![
        (
            "message_hello",
            "Message::Hello, versions 1..=1, GOSSIP | MCP, software dawn/0.1.0, node key [1; 32]",
            Message::Hello(Hello {
                min_version: 1,
                max_version: 1,
                node_id: node(1),
                capabilities: Capabilities::GOSSIP | Capabilities::MCP,
                software: "dawn/0.1.0".to_owned(),
            }),
        ),
        (
            "message_hello_range",
            "Message::Hello, versions 1..=300, every named capability and bit 63, empty software",
            Message::Hello(Hello {
                min_version: 1,
                max_version: 300,
                node_id: node(2),
                capabilities: Capabilities::GOSSIP
                    | Capabilities::REGISTRY
                    | Capabilities::MCP
                    | Capabilities::RELAY
                    | Capabilities::CONSENSUS
                    | Capabilities(1 << 63),
                software: String::new(),
            }),
        ),
        (
            "message_ping",
            "Message::Ping, nonce 0x0123456789abcdef",
            Message::Ping(Ping {
                nonce: 0x0123_4567_89ab_cdef,
            }),
        ),
        (
            "message_pong",
            "Message::Pong, nonce 1",
            Message::Pong(Pong { nonce: 1 }),
        ),
        (
            "message_chunk",
            "Message::Chunk, message 7, chunk 1 of 3, total 10, bytes 'efgh'",
            Message::Chunk(Chunk::new(7, 1, 3, 10, Bytes::from_static(b"efgh")).unwrap()),
        ),
        (
            "message_protocol",
            "Message::Protocol, kind 0x0201 (registry), payload 'delta'",
            Message::Protocol {
                kind: 0x0201,
                payload: Bytes::from_static(b"delta"),
            },
        ),
        (
            "message_protocol_envelope",
            "Message::Protocol, kind 0x0100 (gossip), payload: the envelope of envelope.hex",
            Message::Protocol {
                kind: 0x0100,
                payload: envelope().encode().unwrap().into(),
            },
        ),
    ]
}

#[test]
fn encodings_match_golden_files() {
    let mut failures = Vec::new();
    for (name, description, message) in messages() {
        let bytes = message.encode().unwrap();
        failures.extend(golden(name, description, &bytes));
        // The pinned bytes also decode to the value.
        assert_eq!(Message::decode(&bytes).unwrap(), message, "{name}");
    }

    let env = envelope();
    let bytes = env.encode().unwrap();
    failures.extend(golden(
        "envelope",
        "SignedEnvelope: key [7; 32], topic dawn/registry/delta, t 1700000000000, seq 42, 'add agent echo'",
        &bytes,
    ));
    let decoded = SignedEnvelope::decode(&bytes).unwrap();
    decoded.verify().unwrap();
    assert_eq!(decoded, env);
    failures.extend(golden(
        "envelope_signing_input",
        "The bytes envelope.hex's signature covers",
        &env.signing_input(),
    ));
    let empty = SignedEnvelope::sign(&key(8), "t", 0, 0, Bytes::new()).unwrap();
    failures.extend(golden(
        "envelope_minimal",
        "SignedEnvelope: key [8; 32], topic t, t 0, seq 0, empty payload",
        &empty.encode().unwrap(),
    ));

    let mut frames = Vec::new();
    encode_frame(b"dawn", MAX_FRAME_LEN, &mut frames).unwrap();
    encode_frame(b"", MAX_FRAME_LEN, &mut frames).unwrap();
    let ping = Message::Ping(Ping { nonce: 1 }).encode().unwrap();
    encode_frame(&ping, MAX_FRAME_LEN, &mut frames).unwrap();
    failures.extend(golden(
        "frames",
        "Three frames: 'dawn', empty, Message::Ping nonce 1",
        &frames,
    ));
    let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
    decoder.push(&frames).unwrap();
    assert_eq!(&decoder.next_frame().unwrap().unwrap()[..], b"dawn");

    if !failures.is_empty() {
        let mut report = String::from(
            "wire encodings changed; if deliberate, rerun with DAWN_BLESS=1 and commit tests/golden\n",
        );
        for failure in failures {
            writeln!(report, "{failure}").unwrap();
        }
        panic!("{report}");
    }
}

#[test]
fn golden_files_all_belong_to_a_case() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut known: Vec<String> = messages().iter().map(|(n, ..)| n.to_string()).collect();
    known.extend(
        [
            "envelope",
            "envelope_signing_input",
            "envelope_minimal",
            "frames",
        ]
        .map(String::from),
    );
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let stem = name.strip_suffix(".hex").unwrap_or(&name);
        assert!(known.iter().any(|k| k == stem), "stray golden file {name}");
    }
}
