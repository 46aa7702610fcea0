#![no_main]
//! Fuzz target `token`: see `checks::token`.

#[allow(dead_code)]
#[path = "../src/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::token(data));
