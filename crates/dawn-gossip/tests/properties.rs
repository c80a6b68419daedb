//! Property tests: message round trips, arbitrary and mutated bytes through the decoder, and
//! a core fed arbitrary message sequences that must neither panic nor outgrow its limits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use dawn_crypto::SigningKey;
use dawn_gossip::{Config, Gossip, GossipMessage, IHaveEntry, MessageId, Topic};
use dawn_identity::NodeId;
use dawn_wire::{Message, SignedEnvelope};
use proptest::prelude::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn node() -> impl Strategy<Value = NodeId> {
    (1u8..8).prop_map(|seed| key(seed).verifying_key().into())
}

fn topic() -> impl Strategy<Value = Topic> {
    "[!-~]{1,64}".prop_map(|name| Topic::new(&name).unwrap())
}

fn message_id() -> impl Strategy<Value = MessageId> {
    any::<[u8; 32]>().prop_map(MessageId::from_bytes)
}

fn envelope() -> impl Strategy<Value = SignedEnvelope> {
    (
        1u8..8,
        "[!-~]{1,64}",
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(seed, topic, timestamp, sequence, payload)| {
            SignedEnvelope::sign(&key(seed), &topic, timestamp, sequence, payload).unwrap()
        })
}

fn message() -> impl Strategy<Value = GossipMessage> {
    prop_oneof![
        Just(GossipMessage::Join),
        Just(GossipMessage::KeepAlive),
        (node(), any::<u8>()).prop_map(|(joiner, ttl)| GossipMessage::ForwardJoin { joiner, ttl }),
        any::<bool>().prop_map(|high_priority| GossipMessage::Neighbor { high_priority }),
        any::<bool>().prop_map(|accepted| GossipMessage::NeighborReply { accepted }),
        any::<bool>().prop_map(|alive| GossipMessage::Disconnect { alive }),
        (
            node(),
            any::<u8>(),
            proptest::collection::vec(node(), 0..=32)
        )
            .prop_map(|(origin, ttl, nodes)| GossipMessage::Shuffle { origin, ttl, nodes }),
        proptest::collection::vec(node(), 0..=32)
            .prop_map(|nodes| GossipMessage::ShuffleReply { nodes }),
        (any::<u16>(), envelope())
            .prop_map(|(hops, envelope)| GossipMessage::Gossip { hops, envelope }),
        (
            topic(),
            proptest::collection::vec((message_id(), any::<u16>()), 0..20)
        )
            .prop_map(|(topic, entries)| GossipMessage::IHave {
                topic,
                entries: entries
                    .into_iter()
                    .map(|(id, hops)| IHaveEntry { id, hops })
                    .collect()
            }),
        (topic(), proptest::collection::vec(message_id(), 0..20))
            .prop_map(|(topic, ids)| GossipMessage::Graft { topic, ids }),
        topic().prop_map(|topic| GossipMessage::Prune { topic }),
        (
            any::<bool>(),
            proptest::collection::vec(message_id(), 0..20)
        )
            .prop_map(|(respond, ids)| GossipMessage::Digest { respond, ids }),
        proptest::collection::vec(message_id(), 0..=64)
            .prop_map(|ids| GossipMessage::Request { ids }),
        (any::<u16>(), envelope())
            .prop_map(|(hops, envelope)| GossipMessage::Response { hops, envelope }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_message_round_trips(message in message()) {
        let wire = message.to_wire().unwrap();
        let bytes = wire.encode().unwrap();
        let back = GossipMessage::from_wire(&Message::decode(&bytes).unwrap()).unwrap();
        prop_assert_eq!(&back, &message);
        // The estimate used for queue accounting is close to the truth.
        let exact = bytes.len();
        let estimate = message.approx_len();
        prop_assert!(estimate + 16 >= exact && estimate <= exact + 32, "{} vs {}", estimate, exact);
    }

    #[test]
    fn arbitrary_bodies_never_panic_and_decode_canonically(
        kind in prop_oneof![0x0100u16..=0x0107, 0x0110u16..=0x0113, 0x0120u16..=0x0122, any::<u16>()],
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        if let Ok(message) = GossipMessage::decode_body(kind, &body) {
            prop_assert_eq!(message.kind(), kind);
            prop_assert_eq!(message.encode_body().unwrap(), body);
        }
    }

    #[test]
    fn mutated_encodings_decode_canonically_or_not_at_all(
        message in message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<Option<prop::sample::Index>>(),
    ) {
        let mut body = message.encode_body().unwrap();
        if body.is_empty() {
            body.push(0);
        }
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] ^= byte;
        }
        if let Some(cut) = cut {
            body.truncate(cut.index(body.len() + 1));
        }
        if let Ok(decoded) = GossipMessage::decode_body(message.kind(), &body) {
            prop_assert_eq!(decoded.encode_body().unwrap(), body);
        }
    }
}

/// What a peer does to the core under test, one step of a random scenario.
#[derive(Debug, Clone)]
enum Step {
    /// A message from peer number `from` (seeds 1 to 7).
    Message {
        from: u8,
        message: Box<GossipMessage>,
    },
    /// Arbitrary bytes as a gossip message of type `kind`.
    Garbage {
        from: u8,
        kind: u16,
        body: Vec<u8>,
    },
    /// Time passes, and the core's timers run.
    Wait(u16),
    PeerDown(u8),
    PeerUp(u8),
    Broadcast(Vec<u8>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1u8..8, message()).prop_map(|(from, message)| Step::Message { from, message: Box::new(message) }),
        2 => (1u8..8, 0x0100u16..=0x0122, proptest::collection::vec(any::<u8>(), 0..80))
            .prop_map(|(from, kind, body)| Step::Garbage { from, kind, body }),
        2 => (1u16..5000).prop_map(Step::Wait),
        1 => (1u8..8).prop_map(Step::PeerDown),
        1 => (1u8..8).prop_map(Step::PeerUp),
        1 => proptest::collection::vec(any::<u8>(), 0..100).prop_map(Step::Broadcast),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever peers send, in whatever order, the core does not panic, its views respect
    /// their invariants and every structure stays within its limit (small limits here, so
    /// that the caps are actually reached).
    #[test]
    fn the_core_survives_any_sequence_within_its_limits(steps in proptest::collection::vec(step(), 1..120)) {
        let mut config = Config::new();
        config.membership.active_view_capacity = 3;
        config.membership.passive_view_capacity = 4;
        config.limits.seen_capacity = 8;
        config.limits.cache_capacity = 4;
        config.limits.cache_bytes = 600;
        config.limits.missing_capacity = 8;
        config.limits.requested_capacity = 8;
        config.limits.topic_capacity = 3;
        config.limits.lazy_queue_per_peer = 5;
        config.limits.event_queue = 10;
        config.limits.transmit_queue_per_peer = 6;
        config.limits.rate_tracked_peers = 4;
        let limits = config.limits.clone();
        let t0 = Instant::now();
        let me = key(0);
        let mut core = Gossip::new(me, config, 7, t0, 1_700_000_000_000).unwrap();
        core.subscribe(t0, Topic::new("t").unwrap()).unwrap();
        let mut now = t0;
        let peer = |seed: u8| -> NodeId { key(seed).verifying_key().into() };
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Message { from, message } => core.handle_message(now, peer(from), *message),
                Step::Garbage { from, kind, body } => {
                    let _ = core.handle_wire(now, peer(from), &Message::Protocol { kind, payload: body.into() });
                }
                Step::Wait(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    core.handle_timeout(now);
                }
                Step::PeerDown(p) => core.peer_down(now, peer(p)),
                Step::PeerUp(p) => core.peer_up(now, peer(p)),
                Step::Broadcast(payload) => {
                    core.broadcast(now, &Topic::new("t").unwrap(), payload).unwrap();
                }
            }
            let sizes = core.sizes();
            prop_assert!(sizes.active <= 3);
            prop_assert!(sizes.passive <= 4);
            prop_assert!(sizes.seen <= limits.seen_capacity);
            prop_assert!(sizes.cached <= limits.cache_capacity);
            prop_assert!(sizes.cached_bytes <= limits.cache_bytes);
            prop_assert!(sizes.missing <= limits.missing_capacity);
            prop_assert!(sizes.requested <= limits.requested_capacity);
            prop_assert!(sizes.topics <= limits.topic_capacity);
            prop_assert!(sizes.events <= limits.event_queue);
            prop_assert!(sizes.rate_buckets <= limits.rate_tracked_peers);
            let active = core.active_view();
            prop_assert!(!active.contains(core.node_id()));
            for p in &active {
                prop_assert!(!core.passive_view().contains(p));
            }
            // A timer in the past would spin a driver: deadlines are never before now...
            // except those that are due, which handle_timeout clears.
            if i % 3 == 0 {
                core.handle_timeout(now);
                if let Some(t) = core.poll_timeout() {
                    prop_assert!(t > now, "timer {:?} not after now {:?}", t - t0, now - t0);
                }
            }
            // Drain like a driver does, now and then.
            if i % 5 == 0 {
                while core.poll_transmit().is_some() {}
                while core.poll_event().is_some() {}
            }
        }
    }
}
