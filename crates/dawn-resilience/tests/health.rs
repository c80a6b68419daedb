//! Health aggregation: precedence, staleness and the JSON shape of `/healthz`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use dawn_resilience::{Health, HealthConfig, Importance, Status};

const SEC: Duration = Duration::from_secs(1);

fn health() -> Health {
    let mut h = Health::new(HealthConfig::default()).unwrap(); // TTL 30 s, stale = unhealthy
    h.register("transport", Importance::Required).unwrap();
    h.register("store", Importance::Required).unwrap();
    h.register("gossip", Importance::Optional).unwrap();
    h
}

fn report_all(h: &mut Health, now: Instant, status: Status) {
    for name in ["transport", "store", "gossip"] {
        h.report(now, name, status, "ok").unwrap();
    }
}

#[test]
fn nothing_registered_is_healthy_and_ready() {
    let h = Health::new(HealthConfig::default()).unwrap();
    let now = Instant::now();
    assert_eq!(h.status(now), Status::Healthy);
    assert!(h.is_ready(now));
    let json = serde_json::to_value(h.snapshot(now)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"status": "healthy", "ready": true, "components": {}})
    );
}

#[test]
fn components_that_never_reported_are_stale() {
    let h = health();
    let now = Instant::now();
    let report = h.snapshot(now);
    assert_eq!(report.status, Status::Unhealthy);
    assert!(!report.ready);
    let store = &report.components["store"];
    assert!(store.stale);
    assert_eq!(store.reason, "no report yet");
    assert_eq!(store.age_ms, None);
    assert_eq!(report.http_status(), 503);
    assert_eq!(report.ready_http_status(), 503);
}

#[test]
fn overall_is_the_worst_required_component() {
    let mut h = health();
    let now = Instant::now();
    report_all(&mut h, now, Status::Healthy);
    assert_eq!(h.status(now), Status::Healthy);
    h.report(now, "store", Status::Degraded, "slow disk")
        .unwrap();
    assert_eq!(h.status(now), Status::Degraded);
    assert!(h.is_ready(now));
    h.report(now, "transport", Status::Unhealthy, "cannot bind")
        .unwrap();
    assert_eq!(h.status(now), Status::Unhealthy);
    assert!(!h.is_ready(now));
    h.report(now, "transport", Status::Healthy, "bound")
        .unwrap();
    assert_eq!(h.status(now), Status::Degraded);
}

#[test]
fn optional_components_only_degrade() {
    let mut h = health();
    let now = Instant::now();
    report_all(&mut h, now, Status::Healthy);
    h.report(now, "gossip", Status::Unhealthy, "no neighbours")
        .unwrap();
    let report = h.snapshot(now);
    assert_eq!(report.status, Status::Degraded);
    assert!(report.ready);
    assert_eq!(report.http_status(), 200);
    assert_eq!(report.ready_http_status(), 200);
    // The component itself is shown as it is.
    assert_eq!(report.components["gossip"].status, Status::Unhealthy);
}

#[test]
fn a_report_goes_stale_after_its_ttl() {
    let mut h = health();
    let t0 = Instant::now();
    report_all(&mut h, t0, Status::Healthy);
    assert_eq!(
        h.status(t0 + 30 * SEC),
        Status::Healthy,
        "exactly the TTL is fresh"
    );
    let late = t0 + 30 * SEC + Duration::from_millis(1);
    let report = h.snapshot(late);
    assert_eq!(report.status, Status::Unhealthy);
    let store = &report.components["store"];
    assert!(store.stale);
    assert_eq!(store.reason, "ok", "the last reason is kept");
    assert_eq!(store.age_ms, Some(30_001));
    // A fresh report clears it.
    report_all(&mut h, late, Status::Healthy);
    assert_eq!(h.status(late), Status::Healthy);
}

#[test]
fn staleness_can_count_as_degraded_and_never_improves_a_status() {
    let config = HealthConfig {
        ttl: 10 * SEC,
        stale_status: Status::Degraded,
    };
    let mut h = Health::new(config).unwrap();
    h.register("store", Importance::Required).unwrap();
    let t0 = Instant::now();
    h.report(t0, "store", Status::Healthy, "open").unwrap();
    assert_eq!(h.status(t0 + 11 * SEC), Status::Degraded);
    assert!(h.is_ready(t0 + 11 * SEC));
    h.report(t0, "store", Status::Unhealthy, "corrupt").unwrap();
    assert_eq!(
        h.status(t0 + 11 * SEC),
        Status::Unhealthy,
        "stale is not better"
    );
}

#[test]
fn per_component_ttls_and_components_that_never_go_stale() {
    let mut h = Health::new(HealthConfig::default()).unwrap();
    h.register_with("config", Importance::Required, None, Status::Unhealthy)
        .unwrap();
    h.register_with(
        "peers",
        Importance::Optional,
        Some(2 * SEC),
        Status::Degraded,
    )
    .unwrap();
    let t0 = Instant::now();
    h.report(t0, "config", Status::Healthy, "loaded").unwrap();
    h.report(t0, "peers", Status::Healthy, "3 connected")
        .unwrap();
    let much_later = t0 + Duration::from_secs(365 * 24 * 3600);
    let report = h.snapshot(t0 + 3 * SEC);
    assert!(!report.components["config"].stale);
    assert!(report.components["peers"].stale);
    assert_eq!(report.status, Status::Degraded);
    assert_eq!(h.status(much_later), Status::Degraded);
    assert!(h.is_ready(much_later));
}

#[test]
fn json_shape_is_pinned() {
    let mut h = health();
    let t0 = Instant::now();
    report_all(&mut h, t0, Status::Healthy);
    h.report(t0 + SEC, "gossip", Status::Degraded, "2 of 5 neighbours")
        .unwrap();
    let report = h.snapshot(t0 + 2 * SEC);
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        serde_json::json!({
            "status": "degraded",
            "ready": true,
            "components": {
                "gossip": {
                    "status": "degraded",
                    "required": false,
                    "stale": false,
                    "reason": "2 of 5 neighbours",
                    "age_ms": 1000
                },
                "store": {
                    "status": "healthy",
                    "required": true,
                    "stale": false,
                    "reason": "ok",
                    "age_ms": 2000
                },
                "transport": {
                    "status": "healthy",
                    "required": true,
                    "stale": false,
                    "reason": "ok",
                    "age_ms": 2000
                }
            }
        })
    );
    let back: dawn_resilience::HealthReport =
        serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(back, report);
}

#[test]
fn long_reasons_are_cut_and_the_latest_report_wins() {
    let mut h = health();
    let t0 = Instant::now();
    let reason = "x".repeat(10_000);
    h.report(t0 + 5 * SEC, "store", Status::Healthy, &reason)
        .unwrap();
    let report = h.snapshot(t0);
    assert_eq!(
        report.components["store"].reason.len(),
        dawn_resilience::MAX_REASON_LEN
    );
    assert_eq!(report.components["store"].age_ms, Some(0));
    // An older report arriving late does not replace the newer one.
    h.report(t0, "store", Status::Unhealthy, "stale news")
        .unwrap();
    assert_eq!(
        h.snapshot(t0 + 5 * SEC).components["store"].status,
        Status::Healthy
    );
    h.report(t0 + 6 * SEC, "store", Status::Degraded, "newer")
        .unwrap();
    assert_eq!(h.snapshot(t0 + 6 * SEC).components["store"].reason, "newer");
}
