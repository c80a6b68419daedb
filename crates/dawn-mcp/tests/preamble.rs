//! The stream preamble's encodings: pinned by golden files, round-tripped by property tests,
//! and decoded from arbitrary bytes without panicking.
//!
//! After a deliberate format change (with a `PREAMBLE_VERSION` bump), regenerate the files
//! with `DAWN_BLESS=1 cargo test -p dawn-mcp --test preamble` and commit them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use dawn_identity::AgentId;
use dawn_mcp::{MAX_REFUSAL_MESSAGE_LEN, OpenAgent, OpenReply, RefuseCode};
use dawn_wire::FRAME_HEADER_LEN as HEADER;
use proptest::prelude::*;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn golden_encodings() {
    let cases: [(&str, &str, Vec<u8>); 4] = [
        (
            "open_agent",
            "OpenAgent { version: 1, agent: \"weather-2.eu_west\" } as a frame",
            OpenAgent::new("weather-2.eu_west".parse().unwrap())
                .to_frame()
                .unwrap(),
        ),
        (
            "reply_accepted",
            "OpenReply::Accepted as a frame",
            OpenReply::Accepted.to_frame().unwrap(),
        ),
        (
            "reply_refused_denied",
            "OpenReply::Refused { code: Denied, message: \"permission denied: ...\" } as a frame",
            OpenReply::refused(
                RefuseCode::Denied,
                "permission denied: peer x6kt3abc2d may not open agent memory",
            )
            .to_frame()
            .unwrap(),
        ),
        (
            "reply_refused_busy",
            "OpenReply::Refused { code: Busy, message: \"\" } as a frame",
            OpenReply::refused(RefuseCode::Busy, "").to_frame().unwrap(),
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(name, description, bytes)| {
            dawn_golden::check(MANIFEST, name, description, bytes)
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn agent_id() -> impl Strategy<Value = AgentId> {
    "[a-z0-9][a-z0-9._-]{0,63}".prop_map(|s| s.parse().unwrap())
}

fn refuse_code() -> impl Strategy<Value = RefuseCode> {
    any::<u16>().prop_map(RefuseCode::from_number)
}

proptest! {
    #[test]
    fn open_agent_round_trips(agent in agent_id()) {
        let open = OpenAgent::new(agent);
        let frame = open.to_frame().unwrap();
        prop_assert_eq!(OpenAgent::from_message(&frame[HEADER..]).unwrap(), open);
    }

    #[test]
    fn replies_round_trip(code in refuse_code(), message in "\\PC{0,80}") {
        let reply = OpenReply::refused(code, &message);
        let frame = reply.to_frame().unwrap();
        prop_assert_eq!(OpenReply::from_message(&frame[HEADER..]).unwrap(), reply);
    }

    #[test]
    fn long_refusals_are_cut_to_the_bound(message in "\\PC{200,400}") {
        let reply = OpenReply::refused(RefuseCode::Denied, &message);
        let OpenReply::Refused { message: cut, .. } = &reply else { unreachable!() };
        prop_assert!(cut.len() <= MAX_REFUSAL_MESSAGE_LEN);
        prop_assert!(reply.to_frame().is_ok());
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = OpenAgent::from_message(&bytes);
        let _ = OpenReply::from_message(&bytes);
    }

    #[test]
    fn mutated_preambles_decode_to_their_one_encoding_or_not_at_all(
        agent in agent_id(),
        index in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let frame = OpenAgent::new(agent).to_frame().unwrap();
        let mut message = frame[HEADER..].to_vec();
        let at = index.index(message.len());
        message[at] = byte;
        if let Ok(decoded) = OpenAgent::from_message(&message) {
            let again = decoded.to_frame().unwrap();
            prop_assert_eq!(&again[HEADER..], &message[..]);
        }
    }
}
