//! Signs every line of a file alone, one `Token` at a time, the way a single
//! `olm-sign` call does: `sign_each KEYFILE CHALLENGES > tokens`.
//!
//! `make bench` compares this with `olm-sign --lines` byte for byte, so the
//! bulk path (reused buffers, one encoded key half) is checked against the
//! plain one over every challenge it times.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [key, challenges] = args.as_slice() else {
        eprintln!("usage: sign_each KEYFILE CHALLENGES");
        return ExitCode::from(2);
    };
    let key = match libauth::cli::load_key_file(key.as_ref()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("sign_each: {e:#}");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read(challenges) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sign_each: {challenges}: {e}");
            return ExitCode::from(2);
        }
    };
    let body = text.strip_suffix(b"\n").unwrap_or(&text);
    let mut out = BufWriter::new(io::stdout().lock());
    let lines = body
        .split(|&b| b == b'\n')
        .take(if text.is_empty() { 0 } else { usize::MAX });
    for line in lines {
        let token = libauth::Token::sign(&key, line);
        if writeln!(out, "{token}").is_err() {
            return ExitCode::from(1);
        }
    }
    if out.flush().is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
