# Dawn's everyday recipes. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Run a node on the embedded default (data dir under your user data directory).
demo:
    cargo run --release --bin dawn-node

# The whole test suite: the README's test command.
test *ARGS:
    scripts/test {{ARGS}}

# Everything CI checks (fmt, clippy, docs, fuzz build, deny, tests).
ci:
    bash .ci/run

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# Licences, advisories, bans and sources (installs cargo-deny once).
deny:
    command -v cargo-deny >/dev/null || cargo install cargo-deny --locked
    cargo deny check

# Run one fuzz target on nightly with libFuzzer, e.g. `just fuzz frame 60`.
fuzz TARGET SECONDS="60":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    cargo +nightly fuzz run {{TARGET}} -- -max_total_time={{SECONDS}}

# List the fuzz targets.
fuzz-list:
    cargo +nightly fuzz list

# Criterion benchmarks of one crate, e.g. `just bench dawn-crypto`.
bench CRATE:
    cargo bench -p {{CRATE}}
