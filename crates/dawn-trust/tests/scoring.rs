//! The trust table: scores, decay, levels and their events, recommendations, memory bounds
//! and persistence.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use dawn_crypto::SigningKey;
use dawn_identity::NodeId;
use dawn_trust::{
    Assignment, ChangeCause, Observation, PeerSnapshot, RecommendError, TrustChanged, TrustConfig,
    TrustError, TrustLevel, TrustTable,
};

const T0: u64 = 1_700_000_000_000;
const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

fn node(seed: u8) -> NodeId {
    SigningKey::from_bytes(&[seed; 32]).verifying_key().into()
}

fn table() -> TrustTable {
    TrustTable::new(TrustConfig::default()).unwrap()
}

fn events(table: &mut TrustTable) -> Vec<TrustChanged> {
    std::iter::from_fn(|| table.poll_event()).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Records a valid message every second from `from` for `secs` seconds; returns when the peer
/// first became Verified, if it did.
fn behave(table: &mut TrustTable, peer: &NodeId, from: u64, secs: u64) -> Option<u64> {
    let mut verified_at = None;
    for s in 0..secs {
        let now = from + s * SECOND;
        if table.record(now, peer, Observation::ValidMessage) == TrustLevel::Verified
            && verified_at.is_none()
        {
            verified_at = Some(now);
        }
    }
    verified_at
}

#[test]
fn unknown_peers_sit_at_the_baseline() {
    let t = table();
    assert_eq!(t.score(T0, &node(1)), 0.5);
    assert_eq!(t.level(&node(1)), TrustLevel::Unknown);
    assert_eq!(t.relative_score(T0, &node(1)), 0.0);
    assert!(t.is_empty());
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn an_invalid_signature_halves_the_score_and_two_make_a_peer_untrusted() {
    let mut t = table();
    let peer = node(1);
    assert_eq!(
        t.record(T0, &peer, Observation::InvalidSignature),
        TrustLevel::Unknown
    );
    assert!(close(t.score(T0, &peer), 0.25));
    assert!(events(&mut t).is_empty());
    assert_eq!(
        t.record(T0, &peer, Observation::InvalidSignature),
        TrustLevel::Untrusted
    );
    assert!(close(t.score(T0, &peer), 0.125));
    let changes = events(&mut t);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].peer, peer);
    assert_eq!(changes[0].old_level, TrustLevel::Unknown);
    assert_eq!(changes[0].new_level, TrustLevel::Untrusted);
    assert_eq!(
        changes[0].cause,
        ChangeCause::Observation(Observation::InvalidSignature)
    );
    assert!(close(changes[0].score, 0.125));
    assert!(close(t.relative_score(T0, &peer), -0.75));
}

#[test]
fn every_penalty_falls_by_its_documented_fraction() {
    for (obs, fraction) in [
        (Observation::Timeout, 0.02),
        (Observation::Future, 0.02),
        (Observation::Stale, 0.05),
        (Observation::Flooding, 0.15),
        (Observation::Replay, 0.30),
        (Observation::Malformed, 0.30),
        (Observation::ProtocolViolation, 0.40),
        (Observation::InvalidSignature, 0.50),
    ] {
        let mut t = table();
        t.record(T0, &node(1), obs);
        assert!(
            close(t.score(T0, &node(1)), 0.5 * (1.0 - fraction)),
            "{obs}: {}",
            t.score(T0, &node(1))
        );
    }
}

#[test]
fn the_rise_is_slow_however_many_messages_a_peer_sends() {
    let mut t = table();
    let peer = node(1);
    t.record(T0, &peer, Observation::HandshakeCompleted);
    // Ten thousand valid messages at once buy the burst (0.05) and no more.
    for _ in 0..10_000 {
        t.record(T0, &peer, Observation::ValidMessage);
    }
    assert!(close(t.score(T0, &peer), 0.55), "{}", t.score(T0, &peer));
    assert_eq!(t.level(&peer), TrustLevel::Unknown);

    // One valid message a second: Verified (0.6) after about half an hour of good behaviour
    // (the budget refills at 0.1 an hour), not before 25 minutes.
    let verified = behave(&mut t, &peer, T0 + SECOND, 3600).expect("verified within the hour");
    let waited = verified - T0;
    assert!(
        (25 * MINUTE..35 * MINUTE).contains(&waited),
        "verified after {} s",
        waited / SECOND
    );
    let changes = events(&mut t);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].old_level, changes[0].new_level, changes[0].cause),
        (
            TrustLevel::Unknown,
            TrustLevel::Verified,
            ChangeCause::Observation(Observation::ValidMessage)
        )
    );
    // After the hour the score is below 0.65 and it never reaches 1 in a day.
    assert!(t.score(T0 + HOUR, &peer) < 0.65);
    behave(&mut t, &peer, T0 + HOUR, 2000);
    assert!(t.score(T0 + HOUR + 2000 * SECOND, &peer) < 0.75);
}

#[test]
fn without_a_handshake_a_peer_is_never_verified() {
    let mut t = table();
    let peer = node(1);
    assert_eq!(behave(&mut t, &peer, T0, 7200), None);
    assert!(t.score(T0 + 2 * HOUR, &peer) > 0.6);
    assert_eq!(t.level(&peer), TrustLevel::Unknown);
    // The handshake makes it Verified at once: the score was already earned.
    assert_eq!(
        t.record(T0 + 2 * HOUR, &peer, Observation::HandshakeCompleted),
        TrustLevel::Verified
    );
}

#[test]
fn a_penalty_costs_a_trusted_score_much_more_than_a_reward_gives() {
    let mut t = table();
    let peer = node(1);
    t.record(T0, &peer, Observation::HandshakeCompleted);
    behave(&mut t, &peer, T0, 4 * 3600);
    let now = T0 + 4 * HOUR;
    let before = t.score(now, &peer);
    assert!(before > 0.75, "{before}");
    assert_eq!(t.level(&peer), TrustLevel::Verified);
    t.record(now, &peer, Observation::InvalidSignature);
    assert!(close(t.score(now, &peer), before / 2.0));
    assert_eq!(t.level(&peer), TrustLevel::Unknown);
    // The penalty emptied the gain budget: an immediate flood of good messages buys nothing.
    for _ in 0..100 {
        t.record(now, &peer, Observation::ValidMessage);
    }
    assert!(close(t.score(now, &peer), before / 2.0));
}

#[test]
fn scores_decay_toward_the_baseline_with_the_half_life() {
    let mut t = table();
    let low = node(1);
    let high = node(2);
    t.record(T0, &low, Observation::InvalidSignature);
    t.record(T0, &low, Observation::InvalidSignature); // 0.125
    behave(&mut t, &high, T0 - 5 * HOUR, 5 * 3600); // well above the baseline
    let high_start = t.score(T0, &high);
    assert!(high_start > 0.8, "{high_start}");

    // One half-life halves the distance to the baseline.
    assert!(close(t.score(T0 + DAY, &low), 0.5 - 0.375 / 2.0));
    assert!(close(
        t.score(T0 + DAY, &high),
        0.5 + (high_start - 0.5) / 2.0
    ));
    // Monotone, never overshooting, and at the baseline after long idleness.
    let mut last_low = 0.0;
    let mut last_high = 1.0;
    for day in 0..=30 {
        let now = T0 + day * DAY;
        let (l, h) = (t.score(now, &low), t.score(now, &high));
        assert!(l >= last_low && l <= 0.5, "day {day}: {l}");
        assert!(h <= last_high && h >= 0.5, "day {day}: {h}");
        (last_low, last_high) = (l, h);
    }
    assert!((t.score(T0 + 30 * DAY, &low) - 0.5).abs() < 1e-6);
    assert!((t.score(T0 + 30 * DAY, &high) - 0.5).abs() < 1e-6);
}

#[test]
fn decay_lifts_an_automatic_untrusted_at_the_sweep_after_the_crossing() {
    let mut t = table();
    let peer = node(1);
    t.record(T0, &peer, Observation::InvalidSignature);
    t.record(T0, &peer, Observation::InvalidSignature); // 0.125: Untrusted
    events(&mut t);
    assert_eq!(t.poll_timeout(), Some(T0 + MINUTE));
    // 0.5 - 0.375 * 2^(-t / 24 h) reaches the exit threshold 0.25 after 14.04 hours.
    t.handle_timeout(T0 + 14 * HOUR);
    assert_eq!(t.level(&peer), TrustLevel::Untrusted);
    assert!(events(&mut t).is_empty());
    assert_eq!(t.poll_timeout(), Some(T0 + 14 * HOUR + MINUTE));
    // Calling early does nothing.
    t.handle_timeout(T0 + 14 * HOUR + 30 * SECOND);
    t.handle_timeout(T0 + 14 * HOUR + 10 * MINUTE);
    let changes = events(&mut t);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].old_level, changes[0].new_level, changes[0].cause),
        (
            TrustLevel::Untrusted,
            TrustLevel::Unknown,
            ChangeCause::Decay
        )
    );
}

#[test]
fn untrusted_has_hysteresis() {
    let mut t = table();
    let peer = node(1);
    // 0.5 * 0.6 * 0.6 = 0.18: Untrusted.
    t.record(T0, &peer, Observation::ProtocolViolation);
    t.record(T0, &peer, Observation::ProtocolViolation);
    assert_eq!(t.level(&peer), TrustLevel::Untrusted);
    // Decay to about 0.22 (above 0.2, below the exit at 0.25): still Untrusted.
    let now = T0 + 4 * HOUR;
    let score = t.score(now, &peer);
    assert!(score > 0.2 && score < 0.25, "{score}");
    t.handle_timeout(now);
    assert_eq!(t.level(&peer), TrustLevel::Untrusted);
}

#[test]
fn verified_ends_when_an_idle_score_decays_below_the_exit() {
    let mut t = table();
    let peer = node(1);
    t.record(T0, &peer, Observation::HandshakeCompleted);
    behave(&mut t, &peer, T0, 3600).unwrap();
    events(&mut t);
    let idle_from = T0 + 3600 * SECOND;
    let s = t.score(idle_from, &peer);
    assert!((0.6..0.7).contains(&s), "{s}");
    // The score falls below 0.55 after log2((s - 0.5) / 0.05) half-lives.
    let crossing = ((s - 0.5) / 0.05).log2() * DAY as f64;
    t.handle_timeout(idle_from + crossing as u64 - MINUTE);
    assert_eq!(t.level(&peer), TrustLevel::Verified);
    t.handle_timeout(idle_from + crossing as u64 + MINUTE);
    assert_eq!(t.level(&peer), TrustLevel::Unknown);
    let changes = events(&mut t);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].cause, ChangeCause::Decay);
}

#[test]
fn a_clock_stepping_back_changes_nothing() {
    let mut t = table();
    let peer = node(1);
    t.record(T0, &peer, Observation::InvalidSignature);
    let later = t.score(T0 + DAY, &peer);
    t.record(T0 + DAY, &peer, Observation::Timeout);
    let after = t.score(T0 + DAY, &peer);
    assert!(close(after, later * 0.98));
    // An input dated before the last one counts as no time passing.
    t.record(T0, &peer, Observation::Timeout);
    assert!(close(t.score(T0, &peer), after * 0.98));
    assert!(close(t.score(T0 + DAY, &peer), after * 0.98));
}

#[test]
fn operator_assignments_set_levels_and_misbehaviour_still_demotes() {
    let mut t = table();
    let peer = node(1);
    assert_eq!(
        t.assign(T0, &peer, Some(Assignment::Trusted)).unwrap(),
        TrustLevel::Trusted
    );
    assert_eq!(t.assignment(&peer), Some(Assignment::Trusted));
    assert_eq!(events(&mut t)[0].cause, ChangeCause::Assignment);
    // Good behaviour does not change an assigned level...
    behave(&mut t, &peer, T0, 100);
    assert_eq!(t.level(&peer), TrustLevel::Trusted);
    // ...forged signatures do, and the operator can forgive.
    t.record(T0, &peer, Observation::InvalidSignature);
    t.record(T0, &peer, Observation::InvalidSignature);
    t.record(T0, &peer, Observation::InvalidSignature);
    assert_eq!(t.level(&peer), TrustLevel::Untrusted);
    assert_eq!(t.reset(T0, &peer), TrustLevel::Trusted);
    assert!(close(t.score(T0, &peer), 0.5));
    let causes: Vec<_> = events(&mut t).iter().map(|e| e.cause).collect();
    assert_eq!(
        causes,
        [
            ChangeCause::Observation(Observation::InvalidSignature),
            ChangeCause::Reset
        ]
    );
    // An operator's Untrusted holds whatever the score.
    t.assign(T0, &peer, Some(Assignment::Untrusted)).unwrap();
    behave(&mut t, &peer, T0, 7200);
    assert_eq!(t.level(&peer), TrustLevel::Untrusted);
    // Removing the assignment leaves the level to the score.
    t.record(T0 + 2 * HOUR, &peer, Observation::HandshakeCompleted);
    assert_eq!(
        t.assign(T0 + 2 * HOUR, &peer, None).unwrap(),
        TrustLevel::Verified
    );
    assert_eq!(t.stats().assigned, 0);
}

#[test]
fn assignments_are_bounded() {
    let config = TrustConfig {
        max_assigned: 2,
        ..TrustConfig::default()
    };
    let mut t = TrustTable::new(config).unwrap();
    t.assign(T0, &node(1), Some(Assignment::Trusted)).unwrap();
    t.assign(T0, &node(2), Some(Assignment::Bootstrap)).unwrap();
    assert_eq!(
        t.assign(T0, &node(3), Some(Assignment::Trusted)),
        Err(TrustError::TooManyAssigned { max: 2 })
    );
    // Changing an existing assignment is not one more.
    t.assign(T0, &node(2), Some(Assignment::Untrusted)).unwrap();
    t.assign(T0, &node(1), None).unwrap();
    t.assign(T0, &node(3), Some(Assignment::Trusted)).unwrap();
    assert_eq!(t.stats().assigned, 2);
}

#[test]
fn recommendations_are_weighted_capped_and_counted_per_peer() {
    let mut t = table();
    let subject = node(10);
    for r in 1..=5 {
        t.assign(T0, &node(r), Some(Assignment::Trusted)).unwrap();
    }
    // A recommender at the baseline (0.5) adds 0.1 * 0.5.
    t.recommend(T0, &node(1), &subject).unwrap();
    assert!(close(t.score(T0, &subject), 0.55));
    assert!(close(t.own_score(T0, &subject), 0.5));
    t.recommend(T0, &node(2), &subject).unwrap();
    assert!(close(t.score(T0, &subject), 0.60));
    // The total is capped at 0.15.
    t.recommend(T0, &node(3), &subject).unwrap();
    t.recommend(T0, &node(4), &subject).unwrap();
    assert!(close(t.score(T0, &subject), 0.65));
    // At most four recommenders count.
    assert_eq!(
        t.recommend(T0, &node(5), &subject),
        Err(RecommendError::TooManyRecommenders { max: 4 })
    );
    // Renewing is not a new recommendation.
    t.recommend(T0, &node(4), &subject).unwrap();
    assert_eq!(t.stats().recommendations, 4);
    // No handshake: a high score alone does not make it Verified.
    assert_eq!(t.level(&subject), TrustLevel::Unknown);
}

#[test]
fn a_penalised_recommender_counts_for_less_then_nothing() {
    let mut t = table();
    let (r, subject) = (node(1), node(10));
    t.assign(T0, &r, Some(Assignment::Trusted)).unwrap();
    t.recommend(T0, &r, &subject).unwrap();
    assert!(close(t.score(T0, &subject), 0.55));
    t.record(T0, &r, Observation::InvalidSignature); // r: 0.25
    assert!(close(t.score(T0, &subject), 0.525));
    t.record(T0, &r, Observation::InvalidSignature); // r: 0.125, Untrusted
    assert_eq!(t.level(&r), TrustLevel::Untrusted);
    assert!(close(t.score(T0, &subject), 0.5));
}

#[test]
fn recommendations_can_make_a_peer_verified_and_losing_them_undoes_it() {
    let mut t = table();
    let (r1, r2, subject) = (node(1), node(2), node(10));
    t.assign(T0, &r1, Some(Assignment::Trusted)).unwrap();
    t.assign(T0, &r2, Some(Assignment::Trusted)).unwrap();
    events(&mut t);
    t.record(T0, &subject, Observation::HandshakeCompleted); // own 0.51
    t.recommend(T0, &r1, &subject).unwrap();
    assert_eq!(t.level(&subject), TrustLevel::Unknown);
    assert_eq!(
        t.recommend(T0, &r2, &subject).unwrap(),
        TrustLevel::Verified
    ); // 0.61
    let changes = events(&mut t);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].cause, ChangeCause::Recommendation);
    // r2's standing falls: 0.585, then 0.56 (r2 Untrusted): still above the exit (0.55).
    t.record(T0, &r2, Observation::InvalidSignature);
    t.record(T0, &r2, Observation::InvalidSignature);
    assert!(close(t.score(T0, &subject), 0.56));
    assert_eq!(t.level(&subject), TrustLevel::Verified);
    events(&mut t);
    // r1 loses its assignment: its recommendations are withdrawn and the subject is Unknown.
    t.assign(T0, &r1, None).unwrap();
    assert!(close(t.score(T0, &subject), 0.51));
    assert_eq!(t.level(&subject), TrustLevel::Unknown);
    let changes = events(&mut t);
    assert!(
        changes.iter().any(|e| e.peer == subject
            && e.new_level == TrustLevel::Unknown
            && e.cause == ChangeCause::Recommendation),
        "{changes:?}"
    );
}

#[test]
fn recommendations_are_one_hop_and_never_lift_untrusted() {
    let mut t = table();
    let (r, a, b) = (node(1), node(2), node(3));
    t.assign(T0, &r, Some(Assignment::Trusted)).unwrap();
    // a is recommended and Verified, but cannot pass it on.
    t.record(T0, &a, Observation::HandshakeCompleted);
    t.recommend(T0, &r, &a).unwrap();
    behave(&mut t, &a, T0, 60);
    assert_eq!(t.level(&a), TrustLevel::Verified);
    assert_eq!(
        t.recommend(T0, &a, &b),
        Err(RecommendError::NotTrusted {
            level: TrustLevel::Verified
        })
    );
    assert_eq!(
        t.recommend(T0, &b, &a),
        Err(RecommendError::NotTrusted {
            level: TrustLevel::Unknown
        })
    );
    assert_eq!(
        t.recommend(T0, &r, &r),
        Err(RecommendError::SelfRecommendation)
    );
    // A recommended peer that misbehaves is Untrusted: hearsay does not outvote evidence.
    // Own score about 0.55 * 0.5 * 0.85 * 0.85 = 0.199, recommendation 0.05 on top.
    t.record(T0, &a, Observation::InvalidSignature);
    t.record(T0, &a, Observation::Flooding);
    t.record(T0, &a, Observation::Flooding);
    assert!(t.own_score(T0, &a) < 0.2);
    assert!(t.score(T0, &a) > 0.2);
    assert_eq!(t.level(&a), TrustLevel::Untrusted);
    t.withdraw(T0, &r, &a);
    assert_eq!(
        t.recommend(T0, &r, &a),
        Err(RecommendError::SubjectUntrusted)
    );
    // Assigned peers are not recommended.
    t.assign(T0, &b, Some(Assignment::Bootstrap)).unwrap();
    assert_eq!(
        t.recommend(T0, &r, &b),
        Err(RecommendError::SubjectAssigned)
    );
}

#[test]
fn recommendations_fade_and_expire() {
    let mut t = table();
    let (r, subject) = (node(1), node(10));
    t.assign(T0, &r, Some(Assignment::Trusted)).unwrap();
    t.recommend(T0, &r, &subject).unwrap();
    assert!(close(t.score(T0 + DAY, &subject), 0.525));
    assert_eq!(t.stats().recommendations, 1);
    t.handle_timeout(T0 + 8 * DAY);
    assert_eq!(t.stats().recommendations, 0);
    assert!(close(t.score(T0 + 8 * DAY, &subject), 0.5));
    // The slot is free again, and a renewal restores the weight.
    t.recommend(T0 + 8 * DAY, &r, &subject).unwrap();
    assert!(close(t.score(T0 + 8 * DAY, &subject), 0.55));
}

#[test]
fn a_recommender_may_only_recommend_so_many() {
    let config = TrustConfig {
        max_recommendations_by_peer: 2,
        ..TrustConfig::default()
    };
    let mut t = TrustTable::new(config).unwrap();
    let r = node(1);
    t.assign(T0, &r, Some(Assignment::Trusted)).unwrap();
    t.recommend(T0, &r, &node(2)).unwrap();
    t.recommend(T0, &r, &node(3)).unwrap();
    assert_eq!(
        t.recommend(T0, &r, &node(4)),
        Err(RecommendError::RecommenderLimit { max: 2 })
    );
    assert!(t.withdraw(T0, &r, &node(2)));
    assert!(!t.withdraw(T0, &r, &node(2)));
    t.recommend(T0, &r, &node(4)).unwrap();
}

#[test]
fn eviction_takes_least_recently_seen_unknown_peers_first_and_never_assigned_ones() {
    let config = TrustConfig {
        max_peers: 3,
        ..TrustConfig::default()
    };
    let mut t = TrustTable::new(config).unwrap();
    let trusted = node(100);
    t.assign(T0, &trusted, Some(Assignment::Trusted)).unwrap();
    // Two Verified peers and one Untrusted.
    let (v1, v2, bad) = (node(1), node(2), node(3));
    for v in [v1, v2] {
        t.record(T0 - 2 * HOUR, &v, Observation::HandshakeCompleted);
        behave(&mut t, &v, T0 - 2 * HOUR, 3600);
        assert_eq!(t.level(&v), TrustLevel::Verified);
    }
    t.record(T0 - HOUR, &v2, Observation::ValidMessage); // v2 seen later than v1
    t.record(T0 - HOUR, &bad, Observation::InvalidSignature);
    t.record(T0 - HOUR, &bad, Observation::InvalidSignature);
    events(&mut t);
    assert_eq!(t.len(), 4);

    // A newcomer evicts the least recently seen Verified peer (no Unknown to evict)...
    t.record(T0, &node(4), Observation::ValidMessage);
    assert_eq!(t.level(&v1), TrustLevel::Unknown);
    assert!(!t.peers().any(|p| *p == v1));
    let changes = events(&mut t);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].peer, changes[0].new_level, changes[0].cause),
        (v1, TrustLevel::Unknown, ChangeCause::Evicted)
    );
    // ...the next one evicts the Unknown newcomer, not v2 or the Untrusted peer.
    t.record(T0 + 1, &node(5), Observation::ValidMessage);
    assert!(!t.peers().any(|p| *p == node(4)));
    assert!(events(&mut t).is_empty());
    assert_eq!(t.level(&v2), TrustLevel::Verified);
    assert_eq!(t.level(&bad), TrustLevel::Untrusted);
    assert_eq!(t.level(&trusted), TrustLevel::Trusted);
    assert_eq!(t.stats().evictions, 2);

    // A flood of new identities never pushes out the assigned peer, and memory stays bounded.
    for seed in 0..200u8 {
        let mut s = [seed; 32];
        s[0] = 0xee;
        let peer: NodeId = SigningKey::from_bytes(&s).verifying_key().into();
        t.record(T0 + 10, &peer, Observation::ValidMessage);
        assert!(t.len() <= 4);
    }
    assert_eq!(t.level(&trusted), TrustLevel::Trusted);
    assert_eq!(t.level(&v2), TrustLevel::Verified);
    assert_eq!(t.level(&bad), TrustLevel::Untrusted);
}

#[test]
fn forgetting_a_peer_reports_the_change() {
    let mut t = table();
    let peer = node(1);
    t.assign(T0, &peer, Some(Assignment::Bootstrap)).unwrap();
    events(&mut t);
    assert!(t.forget(T0, &peer));
    assert!(!t.forget(T0, &peer));
    let changes = events(&mut t);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].old_level, changes[0].new_level, changes[0].cause),
        (
            TrustLevel::Bootstrap,
            TrustLevel::Unknown,
            ChangeCause::Forgotten
        )
    );
    assert_eq!(t.stats().assigned, 0);
}

#[test]
fn the_event_queue_is_bounded() {
    let config = TrustConfig {
        max_events: 3,
        ..TrustConfig::default()
    };
    let mut t = TrustTable::new(config).unwrap();
    for seed in 1..=5 {
        t.assign(T0, &node(seed), Some(Assignment::Trusted))
            .unwrap();
    }
    assert_eq!(t.stats().events_dropped, 2);
    let peers: Vec<_> = events(&mut t).iter().map(|e| e.peer).collect();
    assert_eq!(peers, [node(3), node(4), node(5)]);
}

#[test]
fn snapshots_restore_the_same_scores_levels_and_recommendations() {
    let mut t = table();
    let (r, a, b, c) = (node(1), node(2), node(3), node(4));
    t.assign(T0, &r, Some(Assignment::Trusted)).unwrap();
    t.record(T0, &a, Observation::HandshakeCompleted);
    behave(&mut t, &a, T0, 2000);
    t.record(T0, &b, Observation::InvalidSignature);
    t.record(T0, &b, Observation::InvalidSignature);
    t.record(T0, &c, Observation::HandshakeCompleted);
    t.recommend(T0, &r, &c).unwrap();

    events(&mut t);
    // Restore in an order where the subject comes before its recommender.
    let mut restored = table();
    for peer in [c, b, a, r] {
        let bytes = t.snapshot(&peer).unwrap().encode().unwrap();
        let snapshot = PeerSnapshot::decode(&bytes).unwrap();
        assert_eq!(restored.restore(&snapshot).unwrap(), t.level(&peer));
    }
    assert!(
        std::iter::from_fn(|| restored.poll_event())
            .next()
            .is_none()
    );
    let later = T0 + 3 * HOUR;
    for peer in [r, a, b, c] {
        assert_eq!(restored.level(&peer), t.level(&peer));
        assert!(close(restored.score(later, &peer), t.score(later, &peer)));
    }
    assert_eq!(restored.stats().recommendations, 1);
    assert_eq!(restored.stats().assigned, 1);
    // Both tables go on identically.
    for table in [&mut t, &mut restored] {
        table.record(later, &a, Observation::Malformed);
        table.handle_timeout(later + DAY);
    }
    assert_eq!(events(&mut t), events(&mut restored));
    // Restoring twice replaces, it does not duplicate.
    restored.restore(&t.snapshot(&c).unwrap()).unwrap();
    assert_eq!(restored.stats().recommendations, 1);
    assert_eq!(restored.len(), 4);
}

#[test]
fn same_inputs_give_same_events() {
    let run = || {
        let mut t = table();
        t.assign(T0, &node(9), Some(Assignment::Trusted)).unwrap();
        let mut out = Vec::new();
        for step in 0..3000u64 {
            let peer = node((step % 7) as u8 + 1);
            let obs = match step % 13 {
                0 => Observation::InvalidSignature,
                1 => Observation::HandshakeCompleted,
                2 if step % 5 == 0 => Observation::Replay,
                _ => Observation::ValidMessage,
            };
            let now = T0 + step * 10 * SECOND;
            t.record(now, &peer, obs);
            if step % 50 == 0 {
                let _ = t.recommend(now, &node(9), &peer);
            }
            t.handle_timeout(now);
            out.extend(std::iter::from_fn(|| t.poll_event()));
        }
        out
    };
    let first = run();
    assert!(!first.is_empty());
    assert_eq!(first, run());
}

#[test]
fn config_is_validated_and_reads_from_toml() {
    let config: TrustConfig = toml::from_str("half_life_secs = 3600\nmax_peers = 10").unwrap();
    assert_eq!(config.half_life_secs, 3600);
    assert_eq!(config.baseline, 0.5);
    TrustTable::new(config).unwrap();
    let err = toml::from_str::<TrustConfig>("half_life = 3600").unwrap_err();
    assert!(err.to_string().contains("half_life"), "{err}");
    let bad: TrustConfig = toml::from_str("verified_at = 0.5").unwrap();
    let err = TrustTable::new(bad).unwrap_err().to_string();
    assert!(err.contains("verified_exit"), "{err}");
}
