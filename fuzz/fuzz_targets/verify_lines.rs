#![no_main]
//! Fuzz target `verify_lines`: see `checks::verify_lines`.

#[allow(dead_code)]
#[path = "../src/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::verify_lines(data));
