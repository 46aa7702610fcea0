//! Every input a fuzz target once failed on (`tests/fuzz-regressions/`),
//! and the fuzzers' seeds, through the checks the fuzzers run.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        root.join("fuzz-regressions").join(target),
        root.join("..").join("fuzz").join("seeds").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        files.extend(entries.map(|e| e.expect("entry").path()));
    }
    files.sort();
    files
}

fn run_all(target: &str, check: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no inputs for fuzz target {target}");
    for file in files {
        let data = std::fs::read(&file).expect("read input");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: {} fails again", file.display());
    }
}

#[test]
fn openssh_key_inputs() {
    run_all("openssh_key", checks::openssh_key);
}

#[test]
fn token_inputs() {
    run_all("token", checks::token);
}

#[test]
fn request_inputs() {
    run_all("request", checks::request);
}

#[test]
fn authorized_keys_inputs() {
    run_all("authorized_keys", checks::authorized_keys);
}

#[test]
fn verify_lines_inputs() {
    run_all("verify_lines", checks::verify_lines);
}

#[test]
fn ssh_key_label_errors_do_not_quote_the_file() {
    // The fuzzer's finding, spelled out: a damaged key whose cipher-name
    // field holds key-like text; the message must not repeat it.
    let mut body = b"openssh-key-v1\0".to_vec();
    let label = b"SECRETSECRETSECRETSECRET";
    body.extend_from_slice(&(label.len() as u32).to_be_bytes());
    body.extend_from_slice(label);
    body.extend_from_slice(&[0; 64]);
    let text = checks::armor(&body);
    let err = libauth::PrivateKey::from_openssh(&text).unwrap_err();
    assert!(!err.to_string().contains("SECRET"), "{err}");
    checks::openssh_key(&[&[1u8][..], &body].concat());
}
