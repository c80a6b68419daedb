//! Error codes are API: their string forms, numbers, families, retryability and HTTP statuses
//! are pinned here. Adding a code means adding a row; changing a row is a breaking change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dawn_resilience::{
    Breaker, BreakerConfig, ErrorBody, ErrorCode, Family, HasErrorCode, Limit, RateLimitConfig,
    RateLimited, RetryError,
};

/// `(string, number, family, retryable, http status)` for every code, in numeric order.
const TABLE: &[(&str, u16, &str, bool, u16)] = &[
    ("network.unreachable", 1001, "network", true, 502),
    ("network.timeout", 1002, "network", true, 504),
    ("network.connection_lost", 1003, "network", true, 502),
    ("network.handshake_failed", 1004, "network", false, 502),
    ("network.connection_limit", 1005, "network", true, 503),
    ("rate_limit.exceeded", 2001, "rate_limit", true, 429),
    ("rate_limit.too_large", 2002, "rate_limit", false, 413),
    ("breaker.open", 3001, "breaker", true, 503),
    ("retry.exhausted", 4001, "retry", false, 503),
    ("retry.deadline", 4002, "retry", false, 504),
    ("retry.budget", 4003, "retry", true, 503),
    ("auth.unauthenticated", 5001, "auth", false, 401),
    ("auth.denied", 5002, "auth", false, 403),
    ("auth.invalid_signature", 5003, "auth", false, 401),
    ("auth.revoked", 5004, "auth", false, 403),
    ("protocol.malformed", 6001, "protocol", false, 400),
    ("protocol.unsupported_version", 6002, "protocol", false, 400),
    ("protocol.too_large", 6003, "protocol", false, 413),
    ("protocol.replayed", 6004, "protocol", false, 409),
    ("protocol.unexpected", 6005, "protocol", false, 400),
    ("request.invalid", 7001, "request", false, 400),
    ("request.not_found", 7002, "request", false, 404),
    ("request.method_not_allowed", 7003, "request", false, 405),
    ("request.too_large", 7004, "request", false, 413),
    ("request.misdirected", 7005, "request", false, 421),
    ("request.conflict", 7006, "request", false, 409),
    ("agent.not_found", 8001, "agent", false, 404),
    ("agent.unavailable", 8002, "agent", true, 503),
    ("agent.failed", 8003, "agent", false, 502),
    ("storage.unavailable", 9001, "storage", true, 503),
    ("storage.corrupt", 9002, "storage", false, 500),
    ("storage.full", 9003, "storage", false, 507),
    ("config.invalid", 10001, "config", false, 500),
    ("internal.error", 11001, "internal", false, 500),
    ("internal.shutting_down", 11002, "internal", true, 503),
    ("internal.overloaded", 11003, "internal", true, 503),
];

#[test]
fn every_code_matches_the_pinned_table() {
    assert_eq!(ErrorCode::ALL.len(), TABLE.len(), "a code is missing a row");
    for (&code, &(text, number, family, retryable, http)) in ErrorCode::ALL.iter().zip(TABLE) {
        assert_eq!(code.as_str(), text);
        assert_eq!(code.number(), number, "{text}");
        assert_eq!(code.family().as_str(), family, "{text}");
        assert_eq!(code.is_retryable(), retryable, "{text}");
        assert_eq!(code.http_status(), http, "{text}");
        assert_eq!(text.parse::<ErrorCode>().unwrap(), code);
    }
}

#[test]
fn families_are_pinned_and_match_prefixes_and_numbers() {
    let families: Vec<(&str, u16)> = Family::ALL
        .iter()
        .map(|f| (f.as_str(), f.number()))
        .collect();
    assert_eq!(
        families,
        [
            ("network", 1),
            ("rate_limit", 2),
            ("breaker", 3),
            ("retry", 4),
            ("auth", 5),
            ("protocol", 6),
            ("request", 7),
            ("agent", 8),
            ("storage", 9),
            ("config", 10),
            ("internal", 11),
        ]
    );
    for &code in ErrorCode::ALL {
        let (prefix, reason) = code.as_str().split_once('.').unwrap();
        assert_eq!(prefix, code.family().as_str());
        assert!(!reason.is_empty() && reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        assert_eq!(code.number() / 1000, code.family().number());
    }
}

#[test]
fn strings_and_numbers_are_unique_and_ordered() {
    let strings: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let numbers: HashSet<_> = ErrorCode::ALL.iter().map(|c| c.number()).collect();
    assert_eq!(strings.len(), ErrorCode::ALL.len());
    assert_eq!(numbers.len(), ErrorCode::ALL.len());
    assert!(
        ErrorCode::ALL
            .windows(2)
            .all(|w| w[0].number() < w[1].number())
    );
}

#[test]
fn serde_uses_the_string_form_and_refuses_unknown_codes() {
    let json = serde_json::to_string(&ErrorCode::AuthDenied).unwrap();
    assert_eq!(json, r#""auth.denied""#);
    let back: ErrorCode = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ErrorCode::AuthDenied);
    assert!(serde_json::from_str::<ErrorCode>(r#""auth.maybe""#).is_err());
    assert!(serde_json::from_str::<ErrorCode>("5002").is_err());
}

#[test]
fn error_body_json_shape_is_pinned() {
    let limited = RateLimited::Exceeded {
        which: Limit::Bytes,
        retry_after: Duration::from_micros(1_500),
    };
    let body = ErrorBody::from_error(&limited);
    assert_eq!(body.http_status(), 429);
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        serde_json::json!({
            "code": "rate_limit.exceeded",
            "message": "bytes rate limit exceeded; retry in 1.5ms",
            "retry_after_ms": 2,
        })
    );

    let body = ErrorBody::new(ErrorCode::RequestNotFound, "no such peer");
    assert_eq!(
        serde_json::to_string(&body).unwrap(),
        r#"{"code":"request.not_found","message":"no such peer"}"#
    );
    let back: ErrorBody =
        serde_json::from_str(r#"{"code":"request.not_found","message":"x"}"#).unwrap();
    assert_eq!(back.retry_after_ms, None);
}

#[test]
fn this_crates_errors_map_to_their_codes() {
    let config = BreakerConfig {
        consecutive_failures: 1,
        ..BreakerConfig::default()
    };
    let mut breaker = Breaker::new(config).unwrap();
    let now = Instant::now();
    breaker.record_failure(now);
    let open = breaker.allow(now).unwrap_err();
    let body = ErrorBody::from_error(&open);
    assert_eq!(body.code, ErrorCode::BreakerOpen);
    assert_eq!(body.retry_after_ms, Some(5000));
    assert_eq!(body.http_status(), 503);

    let budget = RetryError::Budget {
        retry_after: Duration::from_secs(1),
    };
    let body = ErrorBody::from_error(&budget);
    assert_eq!(body.code.as_str(), "retry.budget");
    assert_eq!(body.retry_after_ms, Some(1000));
    assert_eq!(body.retry_after_secs(), Some(1));
    assert_eq!(RetryError::Exhausted { attempts: 2 }.retry_after(), None);

    let config_error = RateLimitConfig {
        max_keys: 0,
        ..RateLimitConfig::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(config_error.code(), ErrorCode::ConfigInvalid);
    assert_eq!(
        ErrorBody::from_error(&config_error).message,
        "rate_limit.max_keys must be positive"
    );
}

#[test]
fn long_messages_are_cut() {
    #[derive(Debug)]
    struct Loud;
    impl std::fmt::Display for Loud {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&"a".repeat(5000))
        }
    }
    impl HasErrorCode for Loud {
        fn code(&self) -> ErrorCode {
            ErrorCode::InternalError
        }
    }
    let body = ErrorBody::from_error(&Loud);
    assert!(body.message.len() <= dawn_resilience::MAX_MESSAGE_LEN);
    assert!(body.message.ends_with('…'));
    assert_eq!(body.retry_after_ms, None);
}
