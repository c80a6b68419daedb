//! Property tests: round trips for every wire type, decoders on arbitrary bytes, chunking in
//! any order, and the replay guard against a simple model.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashSet;

use bytes::Bytes;
use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_wire::{
    Capabilities, Chunk, FrameDecoder, Hello, MAX_SOFTWARE_LEN, Message, Ping, Pong, Reassembler,
    ReassemblyLimits, ReplayConfig, ReplayGuard, ReplayVerdict, SignedEnvelope, Subsystem,
    encode_frame, fuzz_envelope, fuzz_frames, fuzz_message, fuzz_reassembly, split,
};
use proptest::prelude::*;

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 32]>().prop_map(|seed| SigningKey::from_bytes(&seed).verifying_key().into())
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        1..=u16::MAX,
        any::<u16>(),
        node_id(),
        any::<u64>(),
        proptest::string::string_regex(&format!("[ -~]{{0,{MAX_SOFTWARE_LEN}}}")).unwrap(),
    )
        .prop_map(|(min, spread, node_id, caps, software)| Hello {
            min_version: min,
            max_version: min.saturating_add(spread),
            node_id,
            capabilities: Capabilities(caps),
            software,
        })
}

fn protocol_kind() -> impl Strategy<Value = u16> {
    let ranges: Vec<_> = Subsystem::ALL
        .into_iter()
        .filter(|s| *s != Subsystem::Core)
        .map(|s| s.types())
        .collect();
    proptest::sample::select(ranges).prop_flat_map(|range| range)
}

fn chunk() -> impl Strategy<Value = Chunk> {
    (
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..300),
        1..64usize,
        any::<prop::sample::Index>(),
    )
        .prop_map(|(id, data, chunk_len, pick)| {
            let chunks = split(id, data.into(), chunk_len).unwrap();
            chunks[pick.index(chunks.len())].clone()
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        hello().prop_map(Message::Hello),
        any::<u64>().prop_map(|nonce| Message::Ping(Ping { nonce })),
        any::<u64>().prop_map(|nonce| Message::Pong(Pong { nonce })),
        chunk().prop_map(Message::Chunk),
        (
            protocol_kind(),
            proptest::collection::vec(any::<u8>(), 0..2000)
        )
            .prop_map(|(kind, payload)| Message::Protocol {
                kind,
                payload: payload.into(),
            }),
    ]
}

fn envelope() -> impl Strategy<Value = SignedEnvelope> {
    (
        any::<[u8; 32]>(),
        "[!-~]{1,64}",
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..1000),
    )
        .prop_map(|(seed, topic, timestamp, sequence, payload)| {
            SignedEnvelope::sign(
                &SigningKey::from_bytes(&seed),
                &topic,
                timestamp,
                sequence,
                payload,
            )
            .unwrap()
        })
}

/// A valid encoding with a few bytes changed, cut or appended: closer to the decoders'
/// interesting paths than uniformly random bytes.
fn mutate(bytes: Vec<u8>, edits: Vec<(prop::sample::Index, u8, u8)>) -> Vec<u8> {
    let mut bytes = bytes;
    for (at, value, op) in edits {
        if bytes.is_empty() {
            bytes.push(value);
            continue;
        }
        let i = at.index(bytes.len());
        match op % 4 {
            0 => bytes[i] = value,
            1 => bytes[i] ^= 1 << (value % 8),
            2 => bytes.truncate(i),
            _ => bytes.insert(i, value),
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, u8, u8)>> {
    proptest::collection::vec(any::<(prop::sample::Index, u8, u8)>(), 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn message_round_trip(message in message()) {
        let bytes = message.encode().unwrap();
        prop_assert_eq!(Message::decode(&bytes).unwrap(), message);
    }

    #[test]
    fn envelope_round_trip_and_verify(envelope in envelope()) {
        let bytes = envelope.encode().unwrap();
        let decoded = SignedEnvelope::decode(&bytes).unwrap();
        decoded.verify().unwrap();
        prop_assert_eq!(decoded, envelope);
    }

    #[test]
    fn frames_round_trip_in_any_pieces(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..20),
        cuts in proptest::collection::vec(1..50usize, 1..20),
    ) {
        let mut stream = Vec::new();
        for payload in &payloads {
            encode_frame(payload, 100, &mut stream).unwrap();
        }
        let mut decoder = FrameDecoder::new(100);
        let mut got = Vec::new();
        let mut rest = &stream[..];
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at((*cut).min(rest.len()));
            rest = tail;
            decoder.push(piece).unwrap();
            while let Some(frame) = decoder.next_frame().unwrap() {
                got.push(frame.to_vec());
            }
        }
        decoder.finish().unwrap();
        prop_assert_eq!(got, payloads);
    }

    #[test]
    fn arbitrary_bytes_never_break_a_decoder(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzz_frames(&data).unwrap();
        fuzz_message(&data).unwrap();
        fuzz_envelope(&data).unwrap();
        fuzz_reassembly(&data).unwrap();
    }

    #[test]
    fn mutated_messages_never_break_the_decoder(message in message(), edits in edits()) {
        fuzz_message(&mutate(message.encode().unwrap(), edits)).unwrap();
    }

    #[test]
    fn mutated_envelopes_never_break_the_decoder(envelope in envelope(), edits in edits()) {
        let bytes = mutate(envelope.encode().unwrap(), edits);
        fuzz_envelope(&bytes).unwrap();
        // A change anywhere but in the encoding's varint spelling is refused or fails to
        // verify: no mutation yields a different envelope that verifies.
        if let Ok(decoded) = SignedEnvelope::decode(&bytes)
            && decoded.verify().is_ok()
        {
            prop_assert_eq!(decoded, envelope);
        }
    }

    #[test]
    fn chunks_reassemble_in_any_order_with_duplicates(
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        chunk_len in 1..700usize,
        order in any::<u64>(),
        duplicates in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let data = Bytes::from(data);
        let mut chunks = split(3, data.clone(), chunk_len).unwrap();
        for index in &duplicates {
            let copy = chunks[index.index(chunks.len())].clone();
            chunks.push(copy);
        }
        // A deterministic shuffle from the seed.
        let mut state = order | 1;
        for i in (1..chunks.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunks.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut reassembler = Reassembler::new(ReassemblyLimits::default());
        let mut delivered = Vec::new();
        for chunk in chunks {
            if let Some(whole) = reassembler.push(0, chunk).unwrap() {
                delivered.push(whole);
            }
        }
        // Duplicates arriving after completion start a new message that never completes
        // (unless the message is a single chunk, which is then delivered again).
        prop_assert!(!delivered.is_empty());
        prop_assert!(delivered.iter().all(|d| *d == data));
    }

    #[test]
    fn replay_guard_matches_a_model(
        sequences in proptest::collection::vec(0..400u64, 1..300),
        window_words in 1..4u32,
    ) {
        let window = window_words * 64;
        let mut guard = ReplayGuard::new(ReplayConfig { window, ..ReplayConfig::default() });
        let origin: NodeId = SigningKey::from_bytes(&[1; 32]).verifying_key().into();
        let mut seen = HashSet::new();
        let mut highest: Option<u64> = None;
        for seq in sequences {
            let expected = match highest {
                Some(h) if seq <= h && h - seq >= u64::from(window) => ReplayVerdict::Replay,
                _ if seen.contains(&seq) => ReplayVerdict::Replay,
                _ => ReplayVerdict::Fresh,
            };
            let got = guard.accept_parts(1_000_000, &origin, 1_000_000, seq);
            prop_assert_eq!(got, expected, "sequence {}", seq);
            if got == ReplayVerdict::Fresh {
                seen.insert(seq);
                highest = Some(highest.map_or(seq, |h| h.max(seq)));
            }
        }
    }

    #[test]
    fn replay_guard_stays_bounded_and_never_accepts_twice(
        events in proptest::collection::vec((0..40u8, 0..20u64, 0..2000u64), 1..400),
    ) {
        let config = ReplayConfig { max_age_ms: 1000, max_future_ms: 100, window: 64, max_origins: 5 };
        let mut guard = ReplayGuard::new(config);
        let keys: Vec<NodeId> = (0..40u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]).verifying_key().into())
            .collect();
        let mut accepted = HashSet::new();
        let now = 10_000;
        // Everything twice: the second pass is a replay of the first.
        let twice = events.iter().chain(&events).copied();
        for (who, seq, age) in twice {
            let timestamp = now - age;
            let verdict = guard.accept_parts(now, &keys[usize::from(who)], timestamp, seq);
            if verdict.is_fresh() {
                // Whatever was forgotten, an accepted (origin, timestamp, sequence) never comes
                // back as fresh.
                prop_assert!(accepted.insert((who, timestamp, seq)), "{:?} accepted twice", (who, timestamp, seq));
            }
            prop_assert!(guard.len() <= 5);
        }
    }
}
