//! The local side of a sign-out: which key to revoke, and removing it from
//! every store afterwards (`libauth::store`).

use libauth::cli::{self, CliError, KeyArgs};
use libauth::store::{self, Backend, Removal, Store};
use libauth::{Error, PrivateKey, PublicKey};

/// The key to revoke: `-k`/`--key-env`, else the stored one. No stored key
/// is a failure (exit 1) that says where olm looked.
pub fn load(args: &KeyArgs) -> anyhow::Result<PrivateKey> {
    if args.is_explicit() {
        return cli::load_key(args);
    }
    let store = cli::open_store(args.backend.as_deref())?;
    match store.get_key().map_err(cli::store_error)? {
        Some(key) => Ok(key),
        None => Err(CliError::failed(format!(
            "no local key to revoke: looked in the {} backend ({})",
            store.backend(),
            store.location()
        ))
        .hint("name the key with -k FILE, or pick the store with --backend file|keyring")
        .into()),
    }
}

/// Removes `key` from every backend that holds it: backend, where it
/// looked, and what happened.
pub fn remove_everywhere(key: &PublicKey) -> Vec<(Backend, String, libauth::Result<Removal>)> {
    store::remove_everywhere(key)
        .into_iter()
        .map(|(backend, outcome)| {
            let location = Store::open(backend)
                .map(|s| s.location())
                .unwrap_or_else(|_| backend.to_string());
            (backend, location, outcome)
        })
        .collect()
}

/// Whether `e` means the backend is not there at all (no Secret Service,
/// no HOME): nothing to remove from, not a failure.
pub fn is_unavailable(e: &Error) -> bool {
    matches!(e, Error::NoSecretService { .. } | Error::NoHome)
}
