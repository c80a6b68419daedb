//! `docs/configuration.md` against the configuration types: every key is documented, every
//! documented default is the real default, and every environment variable is the one that
//! overrides that key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use dawn_node::{Config, ConfigError, ENV_OVERRIDES};

/// One row of a key table in the reference.
#[derive(Debug)]
struct Row {
    key: String,
    default: String,
    env: String,
}

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows of every `| Key | Type | Default | Env | Meaning |` table.
fn rows(doc: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in doc.lines() {
        let cells: Vec<&str> = line
            .trim()
            .strip_prefix('|')
            .and_then(|l| l.strip_suffix('|'))
            .map(|l| l.split('|').map(str::trim).collect())
            .unwrap_or_default();
        if cells.len() < 5 {
            in_table = false;
            continue;
        }
        if cells[0] == "Key" && cells[2] == "Default" && cells[3] == "Env" {
            in_table = true;
            continue;
        }
        if !in_table || cells[0].starts_with("---") {
            continue;
        }
        let key = cells[0]
            .strip_prefix('`')
            .and_then(|k| k.strip_suffix('`'))
            .unwrap_or_else(|| panic!("a key is written `section.key`: {line}"));
        rows.push(Row {
            key: key.to_owned(),
            default: cells[2].to_owned(),
            env: cells[3].to_owned(),
        });
    }
    rows
}

/// `section.key` for every `# key = value` and `# Example: key = value` line of the commented
/// default file, and `section.table` for the `[section.table]`/`[[section.table]]` examples.
fn template_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in Config::default_toml().lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let Some(comment) = line.strip_prefix('#') else {
            continue;
        };
        let example = comment.trim();
        if let Some(table) = example
            .strip_prefix('[')
            .map(|t| t.trim_start_matches('[').trim_end_matches(']'))
        {
            keys.insert(table.to_owned());
            continue;
        }
        if comment.starts_with("   ") {
            // A line inside an example table.
            continue;
        }
        let assignment = example.strip_prefix("Example: ").unwrap_or(example);
        if let Some((key, _)) = assignment.split_once(" = ")
            && !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            keys.insert(format!("{section}.{key}"));
        }
    }
    keys
}

/// Leaf keys of a serde-serializable section, as `prefix.path.key`.
fn leaves(prefix: &str, value: &serde_json::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                leaves(&format!("{prefix}.{key}"), value, out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

fn literal(cell: &str) -> Option<&str> {
    cell.strip_prefix('`')?.strip_suffix('`')
}

/// Every configuration key: the commented default file's, and every field the types of the
/// larger sections serialise (not only those the default file shows).
fn config_keys() -> BTreeSet<String> {
    let mut keys = template_keys();
    leaves(
        "resilience",
        &serde_json::to_value(dawn_resilience::ResilienceConfig::default()).unwrap(),
        &mut keys,
    );
    leaves(
        "trust",
        &serde_json::to_value(dawn_trust::TrustConfig::default()).unwrap(),
        &mut keys,
    );
    keys
}

#[test]
fn every_key_of_the_config_is_documented() {
    let documented: BTreeSet<String> = rows(&doc()).into_iter().map(|r| r.key).collect();
    let expected = config_keys();
    assert!(expected.contains("node.listen") && expected.contains("telemetry.otlp_endpoint"));
    let missing: Vec<&String> = expected.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "keys missing from docs/configuration.md: {missing:?}"
    );
}

#[test]
fn documented_defaults_are_the_real_defaults() {
    let keys = config_keys();
    let mut checked = 0;
    for row in rows(&doc()) {
        let Some(value) = literal(&row.default) else {
            // A default in words ("none", "the user's data directory").
            assert!(
                keys.contains(&row.key),
                "{} is documented but is not a configuration key",
                row.key
            );
            continue;
        };
        let text = as_toml(&row.key, value);
        let parsed = Config::from_toml_str(&text, None)
            .unwrap_or_else(|e| panic!("{}: the documented default {value} fails: {e}", row.key));
        assert_eq!(
            parsed,
            Config::default(),
            "{}: {value} is not the default",
            row.key
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} defaults checked");
}

/// `a.b.c = v` as TOML: `[a.b]` then `c = v`.
fn as_toml(key: &str, value: &str) -> String {
    let (section, name) = key.rsplit_once('.').unwrap();
    format!("[{section}]\n{name} = {value}\n")
}

#[test]
fn environment_variables_match_their_keys() {
    let doc = doc();
    let rows = rows(&doc);
    let by_key: BTreeMap<&str, &Row> = rows.iter().map(|r| (r.key.as_str(), r)).collect();
    for (var, key) in ENV_OVERRIDES {
        let row = by_key
            .get(key)
            .unwrap_or_else(|| panic!("{key} (overridden by {var}) is not documented"));
        assert_eq!(literal(&row.env), Some(*var), "the Env column of {key}");
    }
    for row in &rows {
        if let Some(var) = literal(&row.env) {
            assert!(
                ENV_OVERRIDES.contains(&(var, row.key.as_str())),
                "{var} is documented for {} but does not override it",
                row.key
            );
        } else {
            assert_eq!(row.env, "-", "{}: Env is `VAR` or -", row.key);
        }
    }
    // The variables the binaries read themselves are documented too.
    for var in ["DAWN_CONFIG", "DAWN_PASSPHRASE", "DAWN_NODE", "RUST_LOG"] {
        assert!(doc.contains(&format!("`{var}`")), "{var} is not documented");
    }
}

#[test]
fn telemetry_endpoint_is_validated_by_name() {
    let ok = Config::from_toml_str(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\n",
        None,
    )
    .unwrap();
    assert_eq!(
        ok.telemetry.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4318/v1/traces")
    );
    let empty = Config::from_toml_str("[telemetry]\notlp_endpoint = \"\"\n", None).unwrap();
    assert_eq!(empty.telemetry.otlp_endpoint, None);

    let long = format!(
        "http://collector/{}",
        "a".repeat(dawn_node::MAX_OTLP_ENDPOINT_LEN)
    );
    for bad in [
        "https://collector:4318",
        "collector:4318",
        "http:///v1/traces",
        "http://coll ector:4318",
        long.as_str(),
    ] {
        let text = format!("[telemetry]\notlp_endpoint = {bad:?}\n");
        match Config::from_toml_str(&text, None) {
            Err(ConfigError::Invalid { key, .. }) => {
                assert_eq!(key, "telemetry.otlp_endpoint", "{bad}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    let mut config = Config::default();
    let err = config
        .apply_env([("DAWN_OTLP_ENDPOINT".into(), "ftp://x".into())])
        .unwrap_err();
    assert!(err.to_string().starts_with("DAWN_OTLP_ENDPOINT: "), "{err}");
    config
        .apply_env([("DAWN_OTLP_ENDPOINT".into(), "http://[::1]:4318".into())])
        .unwrap();
    assert_eq!(
        config.telemetry.otlp_endpoint.as_deref(),
        Some("http://[::1]:4318")
    );
}
