#![no_main]
//! Fuzz target `keystore`: see [`dawn_fuzz::TARGETS`] for what it checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| dawn_fuzz::run("keystore", data));
