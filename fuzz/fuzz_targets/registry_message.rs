#![no_main]
//! Fuzz target `registry_message`: see [`dawn_fuzz::TARGETS`] for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dawn_fuzz::run("registry_message", data));
