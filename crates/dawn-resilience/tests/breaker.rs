//! Circuit breakers: the whole state machine on a fake clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use dawn_resilience::{
    Breaker, BreakerConfig, BreakerOpen, BreakerState, Breakers, Cause, MAX_BREAKER_EVENTS,
    StateChange,
};

const SEC: Duration = Duration::from_secs(1);

fn config() -> BreakerConfig {
    BreakerConfig {
        consecutive_failures: 3,
        failure_percent: 50,
        min_calls: 10,
        window: Duration::from_secs(10),
        open: Duration::from_secs(5),
        max_open: Duration::from_secs(40),
        half_open_trials: 2,
        trial_timeout: Duration::from_secs(2),
        max_keys: 16,
    }
}

fn events(b: &mut Breaker) -> Vec<(BreakerState, BreakerState, Cause)> {
    std::iter::from_fn(|| b.poll_event())
        .map(|c| (c.from, c.to, c.cause))
        .collect()
}

fn fail(b: &mut Breaker, now: Instant, times: usize) {
    for _ in 0..times {
        let _permit = b.allow(now).unwrap();
        b.record_failure(now);
    }
}

#[test]
fn full_cycle_closed_open_half_open_closed() {
    use BreakerState::{Closed, HalfOpen, Open};
    let mut b = Breaker::new(config()).unwrap();
    let t0 = Instant::now();
    assert_eq!(b.state(t0), Closed);
    assert_eq!(b.poll_timeout(), None);

    fail(&mut b, t0, 3);
    assert_eq!(b.state(t0), Open);
    let changes: Vec<StateChange> = std::iter::from_fn(|| b.poll_event()).collect();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].cause, Cause::ConsecutiveFailures { failures: 3 });
    assert_eq!(changes[0].cooldown, Some(5 * SEC));
    assert_eq!(changes[0].at, t0);

    // Open: refused with the rest of the cool-down.
    assert_eq!(b.allow(t0 + SEC).unwrap_err().retry_after, 4 * SEC);
    assert_eq!(b.poll_timeout(), Some(t0 + 5 * SEC));
    assert!(b.allow(t0 + 5 * SEC - Duration::from_nanos(1)).is_err());

    // Half-open: exactly two trials, then refusals until they report.
    let t1 = t0 + 5 * SEC;
    assert_eq!(b.state(t1), HalfOpen);
    let first = b.allow(t1).unwrap();
    let second = b.allow(t1).unwrap();
    assert!(first.is_trial() && second.is_trial());
    let refused: BreakerOpen = b.allow(t1).unwrap_err();
    assert_eq!(refused.retry_after, 2 * SEC, "until the trials time out");
    b.record_success(t1);
    assert_eq!(b.state(t1), HalfOpen, "one of two trials is not enough");
    assert!(
        b.allow(t1).is_err(),
        "the trial limit counts trials handed out"
    );
    b.record_success(t1);
    assert_eq!(b.state(t1), Closed);
    assert!(!b.allow(t1).unwrap().is_trial());
    assert_eq!(
        events(&mut b),
        [
            (Open, HalfOpen, Cause::CooldownElapsed),
            (HalfOpen, Closed, Cause::TrialsSucceeded),
        ]
    );
}

#[test]
fn a_success_resets_the_consecutive_count() {
    let c = BreakerConfig {
        min_calls: 1_000,
        ..config()
    };
    let mut b = Breaker::new(c).unwrap();
    let t0 = Instant::now();
    for _ in 0..5 {
        fail(&mut b, t0, 2);
        let _permit = b.allow(t0).unwrap();
        b.record_success(t0);
    }
    assert_eq!(
        b.state(t0),
        BreakerState::Closed,
        "never 3 failures in a row"
    );
    assert_eq!(b.poll_event(), None);
    fail(&mut b, t0, 3);
    assert_eq!(
        b.poll_event().unwrap().cause,
        Cause::ConsecutiveFailures { failures: 3 }
    );
}

#[test]
fn the_failure_ratio_trips_without_a_run_of_failures() {
    // Fail, fail, succeed, ...: never 3 in a row, but by the 10th call 7 of 10 failed.
    let mut b = Breaker::new(config()).unwrap();
    let t0 = Instant::now();
    for _ in 0..3 {
        fail(&mut b, t0, 2);
        let _permit = b.allow(t0).unwrap();
        b.record_success(t0);
    }
    assert_eq!(
        b.state(t0),
        BreakerState::Closed,
        "9 calls are below min_calls"
    );
    fail(&mut b, t0, 1);
    assert_eq!(
        b.poll_event().unwrap().cause,
        Cause::FailureRatio {
            failures: 7,
            calls: 10
        }
    );
}

#[test]
fn the_ratio_needs_min_calls() {
    let c = BreakerConfig {
        consecutive_failures: 1_000,
        min_calls: 10,
        ..config()
    };
    let mut b = Breaker::new(c).unwrap();
    let t0 = Instant::now();
    fail(&mut b, t0, 9);
    assert_eq!(
        b.state(t0),
        BreakerState::Closed,
        "9 calls are below min_calls"
    );
    fail(&mut b, t0, 1);
    assert_eq!(b.state(t0), BreakerState::Open);

    // At exactly the percentage: 5 failures of 10 calls trips at 50 %.
    let mut b = Breaker::new(BreakerConfig {
        consecutive_failures: 1_000,
        ..config()
    })
    .unwrap();
    for _ in 0..5 {
        let _p = b.allow(t0).unwrap();
        b.record_success(t0);
    }
    fail(&mut b, t0, 4);
    assert_eq!(b.state(t0), BreakerState::Closed, "4 of 9");
    fail(&mut b, t0, 1);
    assert_eq!(b.state(t0), BreakerState::Open, "5 of 10");
}

#[test]
fn old_failures_slide_out_of_the_window() {
    let c = BreakerConfig {
        consecutive_failures: 1_000,
        ..config()
    };
    let mut b = Breaker::new(c).unwrap();
    let t0 = Instant::now();
    fail(&mut b, t0, 9);
    // Ten seconds later the window (10 s, 1 s steps) no longer holds them.
    let later = t0 + 10 * SEC;
    fail(&mut b, later, 9);
    assert_eq!(b.state(later), BreakerState::Closed);
    fail(&mut b, later, 1);
    assert_eq!(b.state(later), BreakerState::Open);
}

#[test]
fn repeated_trips_double_the_cool_down_up_to_the_cap_and_closing_resets_it() {
    let mut b = Breaker::new(config()).unwrap();
    let mut now = Instant::now();
    fail(&mut b, now, 3);
    let mut cooldowns = vec![b.poll_event().unwrap().cooldown.unwrap()];
    for _ in 0..5 {
        now += *cooldowns.last().unwrap();
        let _trial = b.allow(now).unwrap();
        b.record_failure(now);
        let changes: Vec<StateChange> = std::iter::from_fn(|| b.poll_event()).collect();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[1].cause, Cause::TrialFailed);
        assert_eq!(changes[1].from, BreakerState::HalfOpen);
        cooldowns.push(changes[1].cooldown.unwrap());
        assert_eq!(
            b.allow(now).unwrap_err().retry_after,
            *cooldowns.last().unwrap()
        );
    }
    assert_eq!(
        cooldowns,
        [5, 10, 20, 40, 40, 40].map(Duration::from_secs).to_vec()
    );

    // Closing resets the growth: the next trip is 5 s again.
    now += 40 * SEC;
    for _ in 0..2 {
        let _trial = b.allow(now).unwrap();
        b.record_success(now);
    }
    assert_eq!(b.state(now), BreakerState::Closed);
    fail(&mut b, now, 3);
    let last = std::iter::from_fn(|| b.poll_event()).last().unwrap();
    assert_eq!(last.cooldown, Some(5 * SEC));
}

#[test]
fn a_trial_that_never_reports_re_opens_the_breaker() {
    let mut b = Breaker::new(config()).unwrap();
    let t0 = Instant::now();
    fail(&mut b, t0, 3);
    let t1 = t0 + 5 * SEC;
    let _lost = b.allow(t1).unwrap();
    assert_eq!(b.poll_timeout(), Some(t1 + 2 * SEC));
    assert_eq!(b.state(t1 + 2 * SEC), BreakerState::Open);
    b.handle_timeout(t1 + 2 * SEC);
    let changes: Vec<StateChange> = std::iter::from_fn(|| b.poll_event()).collect();
    let last = changes.last().unwrap();
    assert_eq!(last.cause, Cause::TrialTimeout);
    assert_eq!(last.at, t1 + 2 * SEC);
    assert_eq!(last.cooldown, Some(10 * SEC));
    assert_eq!(b.poll_timeout(), Some(t1 + 12 * SEC));
}

#[test]
fn a_breaker_left_alone_after_its_cool_down_is_half_open() {
    // Nobody touches the breaker for a minute after it opened: the cool-down ended at 5 s;
    // the half-open period waits for a trial, so the breaker is simply half-open.
    let mut b = Breaker::new(config()).unwrap();
    let t0 = Instant::now();
    fail(&mut b, t0, 3);
    let _ = b.poll_event();
    let later = t0 + 60 * SEC;
    assert!(b.allow(later).unwrap().is_trial());
    let change = b.poll_event().unwrap();
    assert_eq!(change.to, BreakerState::HalfOpen);
    assert_eq!(change.at, t0 + 5 * SEC, "stamped when the cool-down ended");
}

#[test]
fn outcomes_of_calls_allowed_before_opening_do_not_count() {
    let mut b = Breaker::new(config()).unwrap();
    let t0 = Instant::now();
    let _stragglers = [b.allow(t0).unwrap(), b.allow(t0).unwrap()];
    fail(&mut b, t0, 3);
    let _ = b.poll_event();
    // Open: a straggler's success neither closes nor extends anything.
    b.record_success(t0 + SEC);
    b.record_failure(t0 + SEC);
    assert_eq!(b.state(t0 + SEC), BreakerState::Open);
    assert_eq!(b.poll_timeout(), Some(t0 + 5 * SEC));
    // Half-open with no trial handed out: a straggler's success is not a trial.
    let t1 = t0 + 5 * SEC;
    b.record_success(t1);
    b.record_success(t1);
    assert_eq!(b.state(t1), BreakerState::HalfOpen);
}

fn keyed() -> Breakers<u32> {
    Breakers::new(BreakerConfig {
        consecutive_failures: 1,
        ..config()
    })
    .unwrap()
}

#[test]
fn keyed_breakers_are_independent_and_report_their_key() {
    let mut bs = keyed();
    let t0 = Instant::now();
    assert!(bs.allow(t0, &1).is_ok());
    assert!(bs.is_empty(), "allowing an unknown key tracks nothing");
    bs.record_failure(t0, &1);
    assert!(bs.allow(t0, &1).is_err());
    assert!(bs.allow(t0, &2).is_ok());
    assert_eq!(bs.state(t0, &1), BreakerState::Open);
    assert_eq!(bs.state(t0, &2), BreakerState::Closed);
    assert_eq!(bs.tripped(), 1);
    let event = bs.poll_event().unwrap();
    assert_eq!(event.key, 1);
    assert_eq!(event.change.to, BreakerState::Open);

    // Recovery through the keyed API.
    let t1 = t0 + 5 * SEC;
    bs.handle_timeout(t1);
    assert_eq!(bs.poll_event().unwrap().change.to, BreakerState::HalfOpen);
    assert_eq!(bs.tripped(), 1, "half-open is still tripped");
    for _ in 0..2 {
        assert!(bs.allow(t1, &1).unwrap().is_trial());
        bs.record_success(t1, &1);
    }
    assert_eq!(bs.state(t1, &1), BreakerState::Closed);
    assert_eq!(bs.tripped(), 0);
    assert!(bs.remove(&1));
    assert!(!bs.remove(&1));
}

#[test]
fn keyed_breakers_stay_bounded_and_keep_open_ones() {
    let mut bs = keyed(); // max_keys 16
    let t0 = Instant::now();
    // Four peers trip.
    for key in 0..4 {
        bs.record_failure(t0, &key);
    }
    // Many healthy peers come and go.
    for key in 100..1_000 {
        bs.record_success(t0 + SEC, &key);
        assert!(bs.len() <= 16);
    }
    for key in 0..4 {
        assert_eq!(bs.state(t0 + SEC, &key), BreakerState::Open, "peer {key}");
    }
    assert_eq!(bs.tripped(), 4);

    // When only open breakers are left, the least recently used of them go.
    let mut bs = keyed();
    for key in 0..16 {
        bs.record_failure(t0 + SEC * key, &key);
    }
    bs.record_failure(t0 + 20 * SEC, &99);
    assert_eq!(bs.len(), 16);
    assert_eq!(
        bs.state(t0 + 20 * SEC, &0),
        BreakerState::Closed,
        "forgotten"
    );
    assert_eq!(bs.tripped(), 16);
}

#[test]
fn unpolled_events_are_bounded_and_counted() {
    let mut bs = Breakers::new(BreakerConfig {
        consecutive_failures: 1,
        max_keys: 10_000,
        ..config()
    })
    .unwrap();
    let t0 = Instant::now();
    let n = MAX_BREAKER_EVENTS as u32 + 10;
    for key in 0..n {
        bs.record_failure(t0, &key);
    }
    assert_eq!(bs.dropped_events(), 10);
    let kept: Vec<u32> = std::iter::from_fn(|| bs.poll_event())
        .map(|e| e.key)
        .collect();
    assert_eq!(kept.len(), MAX_BREAKER_EVENTS);
    assert_eq!(kept[0], 10, "the oldest were dropped");
}
