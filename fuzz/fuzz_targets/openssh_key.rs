#![no_main]
//! Fuzz target `openssh_key`: see `checks::openssh_key`.

#[allow(dead_code)]
#[path = "../src/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::openssh_key(data));
