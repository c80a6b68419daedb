#![no_main]
//! Fuzz target `agent_addr`: see [`dawn_fuzz::TARGETS`] for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dawn_fuzz::run("agent_addr", data));
