#![no_main]
//! Fuzz target `authorized_keys`: see `checks::authorized_keys`.

#[allow(dead_code)]
#[path = "../src/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::authorized_keys(data));
