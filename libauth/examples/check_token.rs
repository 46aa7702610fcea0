//! Checks a token against a challenge with libauth alone:
//! `check_token TOKEN CHALLENGE` prints the signer's public key line.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [token, challenge] = args.as_slice() else {
        eprintln!("usage: check_token TOKEN CHALLENGE");
        return ExitCode::from(2);
    };
    match libauth::Token::parse(token).and_then(|t| t.verify(challenge.as_bytes()).map(|()| t)) {
        Ok(t) => {
            println!("valid: signed by {}", t.public_key());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("invalid: {e}");
            ExitCode::from(1)
        }
    }
}
