//! Shared harness for Dawn's fuzz targets.
//!
//! Each target is a function from arbitrary bytes to `Ok(())` or a description of the property
//! that broke. The libFuzzer binaries in `fuzz_targets/` call [`run`], which panics on a broken
//! property (the signal a fuzzer needs); `tests/seeds.rs` replays the committed seed corpora
//! and a deterministic stream of random inputs through the same functions on stable Rust, so
//! every `scripts/test` run exercises every target.

/// A fuzz target: its name (as `cargo fuzz run <name>`), the check, and what it covers.
pub struct Target {
    /// The name of the binary under `fuzz_targets/` and of its seed folder under `seeds/`.
    pub name: &'static str,
    /// Drives one decoder over the input; `Err` names the broken property.
    pub check: fn(&[u8]) -> Result<(), String>,
    /// What the target covers.
    pub about: &'static str,
}

/// Every fuzz target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "frame",
        check: |d| dawn_wire::fuzz_frames(d).map_err(|e| e.to_string()),
        about: "dawn-wire FrameDecoder fed arbitrary bytes in arbitrary pieces",
    },
    Target {
        name: "message",
        check: |d| dawn_wire::fuzz_message(d).map_err(|e| e.to_string()),
        about: "dawn-wire Message::decode; whatever decodes re-encodes identically",
    },
    Target {
        name: "envelope",
        check: |d| dawn_wire::fuzz_envelope(d).map_err(|e| e.to_string()),
        about: "dawn-wire SignedEnvelope::decode + verify; batch agrees with single",
    },
    Target {
        name: "chunk_reassembly",
        check: |d| dawn_wire::fuzz_reassembly(d).map_err(|e| e.to_string()),
        about: "dawn-wire Reassembler over arbitrary chunk sequences; memory stays bounded",
    },
    Target {
        name: "agent_addr",
        check: agent_addr,
        about: "dawn-identity AgentAddr parsing; what parses displays back identically",
    },
    Target {
        name: "registry_message",
        check: |d| dawn_registry::fuzz_decode(d).map_err(|e| e.to_string()),
        about: "dawn-registry messages (deltas, updates, reconciliation): bounded decode, \
                canonical re-encoding, no verified data from unsigned bytes",
    },
    Target {
        name: "keystore",
        check: keystore,
        about: "dawn-identity KeyFile::decode (no KDF run); what decodes re-encodes identically",
    },
];

fn agent_addr(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(addr) = text.parse::<dawn_identity::AgentAddr>() else {
        return Ok(());
    };
    let shown = addr.to_string();
    // Node ids parse case-insensitively and always display in lowercase.
    if !shown.eq_ignore_ascii_case(text) {
        return Err(format!("{text:?} parsed but displays as {shown:?}"));
    }
    match shown.parse::<dawn_identity::AgentAddr>() {
        Ok(again) if again == addr => Ok(()),
        other => Err(format!("{shown:?} does not parse back: {other:?}")),
    }
}

fn keystore(data: &[u8]) -> Result<(), String> {
    let Ok(file) = dawn_identity::KeyFile::decode(data) else {
        return Ok(());
    };
    let encoded = file.encode();
    if encoded.as_slice() != data {
        return Err("a decoded key file re-encodes differently".into());
    }
    if file.is_dev_mode() {
        // The only file openable without a KDF run: it opens to exactly the key it names, or a
        // crafted file whose seed and public key disagree is refused as such.
        match file.open(&dawn_identity::Unlock::DevMode) {
            Ok(key) if dawn_identity::NodeId::from(key.verifying_key()) == file.node_id() => {}
            Ok(_) => return Err("dev-mode file opens to another key than it names".into()),
            Err(dawn_identity::OpenKeyError::KeyMismatch) => {}
            Err(e) => return Err(format!("dev-mode file fails to open with {e}")),
        }
    }
    Ok(())
}

/// Runs the named target on `data`, panicking if a property breaks (or the name is unknown).
#[allow(clippy::panic)]
pub fn run(name: &str, data: &[u8]) {
    let Some(target) = TARGETS.iter().find(|t| t.name == name) else {
        panic!("no fuzz target named {name}");
    };
    if let Err(broken) = (target.check)(data) {
        panic!("{name}: {broken}");
    }
}
