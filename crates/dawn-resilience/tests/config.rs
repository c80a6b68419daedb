//! The `[resilience]` section of a node's TOML configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use dawn_resilience::{ConfigError, ResilienceConfig, Status};

#[test]
fn a_partial_toml_section_fills_in_defaults() {
    let text = r#"
        [retry]
        base_ms = 100
        max_attempts = 8

        [rate_limit]
        messages_per_sec = 50
        message_burst = 100

        [breaker]
        half_open_trials = 3

        [health]
        stale_status = "degraded"
    "#;
    let config: ResilienceConfig = toml::from_str(text).unwrap();
    config.validate().unwrap();
    assert_eq!(config.retry.base, Duration::from_millis(100));
    assert_eq!(config.retry.cap, Duration::from_secs(30));
    assert_eq!(config.retry.max_attempts, Some(8));
    assert_eq!(config.retry.max_elapsed, None);
    assert_eq!(config.rate_limit.messages_per_sec, 50);
    assert_eq!(config.rate_limit.byte_burst, 8 << 20);
    assert_eq!(config.breaker.half_open_trials, 3);
    assert_eq!(config.health.stale_status, Status::Degraded);
    assert_eq!(config.retry_budget, Default::default());
}

#[test]
fn defaults_round_trip_through_toml() {
    let config = ResilienceConfig::default();
    let text = toml::to_string(&config).unwrap();
    assert!(text.contains("base_ms = 250"), "{text}");
    assert!(!text.contains("max_attempts"), "None is left out: {text}");
    let back: ResilienceConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, config);
}

#[test]
fn typos_and_bad_values_are_errors() {
    assert!(toml::from_str::<ResilienceConfig>("[retry]\nbase = 100\n").is_err());
    assert!(toml::from_str::<ResilienceConfig>("[breaker]\nopen_ms = -1\n").is_err());
    assert!(toml::from_str::<ResilienceConfig>("[health]\nstale_status = \"fine\"\n").is_err());
    let config: ResilienceConfig = toml::from_str("[breaker]\nopen_ms = 600000\n").unwrap();
    assert!(matches!(
        config.validate(),
        Err(ConfigError::Inconsistent(_))
    ));
    let config: ResilienceConfig = toml::from_str("[retry_budget]\nmax_tokens = 0\n").unwrap();
    assert_eq!(
        config.validate(),
        Err(ConfigError::Zero("retry_budget.max_tokens"))
    );
    assert_eq!(
        config.validate().unwrap_err().to_string(),
        "retry_budget.max_tokens must be positive"
    );
}
