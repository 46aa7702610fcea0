//! The local side of a sign-out: which key, and removing it afterwards.
//!
//! The file backend only (`$HOME/.ollama/id_ed25519` and `.pub`); the
//! `store` branch's `libauth::store` replaces this module with every backend.

use std::fs;
use std::io;

use libauth::cli::{self, CliError, KeyArgs};
use libauth::{Error, PrivateKey, PublicKey};

/// What removing did in one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The backend held the key; it is gone.
    Removed,
    /// The backend held no key, or another one (left alone).
    NotHeld,
}

/// The key to revoke: `-k`/`--key-env`, else the stored one. No stored key
/// is a failure (exit 1) that says where olm looked.
pub fn load(args: &KeyArgs) -> anyhow::Result<PrivateKey> {
    if args.is_explicit() {
        return cli::load_key(args);
    }
    let path = cli::default_key_path()?;
    if !path.exists() {
        return Err(CliError::failed(format!(
            "no local key to revoke: looked in the file backend ({})",
            cli::quote(&path)
        ))
        .hint("name the key with -k FILE")
        .into());
    }
    cli::load_key_file(&path)
}

/// Removes `key` from every backend that holds it: (backend, location, outcome).
pub fn remove_everywhere(key: &PublicKey) -> Vec<(&'static str, String, Result<Removal, Error>)> {
    let path = match cli::default_key_path() {
        Ok(p) => p,
        Err(e) => {
            return vec![(
                "file",
                "$HOME/.ollama".into(),
                Err(Error::Request(e.to_string())),
            )]
        }
    };
    let outcome = (|| {
        let held = match cli::load_key_file(&path) {
            Ok(k) => k.public_key() == *key,
            Err(_) if !path.exists() => false,
            Err(_) => false,
        };
        if !held {
            return Ok(Removal::NotHeld);
        }
        fs::remove_file(&path)?;
        match fs::remove_file(path.with_extension("pub")) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        Ok(Removal::Removed)
    })();
    vec![("file", path.display().to_string(), outcome)]
}

/// Whether `e` means the backend is not there at all (not a failure).
pub fn is_unavailable(_e: &Error) -> bool {
    false
}
