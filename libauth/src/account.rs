//! The account calls of PROTOCOL.md §5: who is signed in (`POST /api/me`),
//! disconnecting a device key (`DELETE /api/user/keys/<encodedKey>`), and
//! asking the local Ollama server to sign out (`POST /api/signout`); and
//! the local side of both: which key signs ([`signing_key`]) and removing
//! it from every store afterwards ([`remove_everywhere`]).
//!
//! Each call returns what the server said in a type; every answer the
//! protocol does not list (any other status, a redirect, a body that is not
//! JSON, a network failure) is an [`Error::Remote`], which callers treat as
//! "nothing changed".

use crate::cli::{self, CliError, KeyArgs};
use crate::client::{clean_text, Client, Method, RemoteFailure, Response};
use crate::error::{Error, Result};
use crate::key::{PrivateKey, PublicKey};
use crate::store::{self, Backend, Removal, Store};

/// The account `POST /api/me` describes: the server's JSON object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    object: serde_json::Map<String, serde_json::Value>,
}

impl User {
    /// A user from the server's object.
    pub fn from_object(object: serde_json::Map<String, serde_json::Value>) -> Self {
        User { object }
    }

    fn field(&self, name: &str) -> Option<String> {
        match self.object.get(name)? {
            serde_json::Value::String(s) => Some(clean_text(s)).filter(|s| !s.is_empty()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// `name`, cleaned for display.
    pub fn name(&self) -> Option<String> {
        self.field("name")
    }

    /// `email`, cleaned for display.
    pub fn email(&self) -> Option<String> {
        self.field("email")
    }

    /// `plan`, cleaned for display.
    pub fn plan(&self) -> Option<String> {
        self.field("plan")
    }

    /// The whole object, as the server sent it.
    pub fn object(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.object
    }
}

/// What `POST /api/me` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Whoami {
    /// `200`: the key is connected to this account.
    SignedIn(User),
    /// `401`: the key is not connected; the server's `signin_url`, if any.
    NotSignedIn {
        /// Where to connect the key, as the server gave it.
        signin_url: Option<String>,
    },
}

/// What a sign-out call said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignOut {
    /// `200`: the key is no longer connected.
    SignedOut,
    /// `401`: the key was not connected (no active session).
    NotSignedIn,
}

/// `POST /api/me`, signed with `key`.
pub fn whoami(client: &Client, key: &PrivateKey) -> Result<Whoami> {
    let resp = client.signed(key, Method::Post, "/api/me")?;
    match resp.status {
        200 => resp
            .json_object()
            .map(|o| Whoami::SignedIn(User::from_object(o)))
            .map_err(|why| client.error(RemoteFailure::BadAnswer(why))),
        401 => Ok(Whoami::NotSignedIn {
            signin_url: resp.error_body().signin_url,
        }),
        _ => Err(client.error(resp.unexpected())),
    }
}

/// The path that disconnects `key`: `/api/user/keys/<encodedKey>`.
pub fn key_path(key: &crate::key::PublicKey) -> String {
    format!("/api/user/keys/{}", key.encoded())
}

/// `DELETE /api/user/keys/<encodedKey>`, signed with the key itself.
pub fn disconnect(client: &Client, key: &PrivateKey) -> Result<SignOut> {
    let resp = client.signed(key, Method::Delete, &key_path(&key.public_key()))?;
    sign_out_answer(client, &resp)
}

/// `POST /api/signout` to the local Ollama server, which disconnects its
/// own key. Signed with `key` when given (`OLLAMA_AUTH`).
pub fn local_signout(client: &Client, key: Option<&PrivateKey>) -> Result<SignOut> {
    let resp = match key {
        Some(k) => client.signed(k, Method::Post, "/api/signout")?,
        None => client.send(Method::Post, "/api/signout", None)?,
    };
    sign_out_answer(client, &resp)
}

fn sign_out_answer(client: &Client, resp: &Response) -> Result<SignOut> {
    match resp.status {
        200 | 204 => Ok(SignOut::SignedOut),
        401 => Ok(SignOut::NotSignedIn),
        _ => Err::<SignOut, Error>(client.error(resp.unexpected())),
    }
}

/// What the device key is wanted for: the words of the failure when there
/// is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUse {
    /// `POST /api/me`: no key means this device is not signed in.
    Whoami,
    /// Disconnecting the key: there is nothing to revoke.
    Revoke,
    /// Signing `POST /api/signout` to the local server (`OLLAMA_AUTH`, or
    /// the host is ollama.com), as Ollama's client does.
    LocalSignOut,
}

/// The key that signs: `-k`/`--key-env` (exit 2 when unreadable, as
/// [`cli::load_key`]), else the stored one. No stored key is a failure
/// (exit 1) that says which backend and where olm looked, worded for `use_`.
pub fn signing_key(args: &KeyArgs, use_: KeyUse) -> anyhow::Result<PrivateKey> {
    if args.key.is_some() || args.key_env.is_some() {
        return cli::load_key(args);
    }
    let store = cli::open_store(args.backend.as_deref())?;
    match store.get_key().map_err(cli::store_error)? {
        Some(key) => Ok(key),
        None => Err(missing_key(&store, use_).into()),
    }
}

fn missing_key(store: &Store, use_: KeyUse) -> CliError {
    let looked = format!(
        "looked in the {} backend ({})",
        store.backend(),
        store.location()
    );
    match use_ {
        KeyUse::Whoami => CliError::failed(format!(
            "You are not signed in to ollama.com: there is no key here; {looked}"
        ))
        .hint("make one with `olm-keygen | olm-store put`, then connect it with `olm-connect-url`"),
        KeyUse::Revoke => CliError::failed(format!("no local key to revoke: {looked}"))
            .hint("name the key with -k FILE, or pick the store with --backend file|keyring"),
        KeyUse::LocalSignOut => CliError::failed(format!(
            "no local key to sign the request to the local Ollama server with: {looked}"
        ))
        .hint(format!(
            "Ollama's client signs it because {} is on (or the host is ollama.com); unset it, or put the key in the store (OLM_BACKEND picks which)",
            crate::local::AUTH_ENV
        )),
    }
}

/// Removes `key` from every backend that holds it: the backend, where it
/// looked (a file or a keyring entry), and what happened.
pub fn remove_everywhere(key: &PublicKey) -> Vec<(Backend, String, Result<Removal>)> {
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

/// Whether `e` means a backend is not there at all (no Secret Service, no
/// HOME): nothing to remove from, not a failure.
pub fn backend_unavailable(e: &Error) -> bool {
    matches!(e, Error::NoSecretService { .. } | Error::NoHome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_fields_are_cleaned() {
        let o = serde_json::json!({"name":"Jane\u{1b}]0;x","email":"j@x","plan":"pro","id":7});
        let serde_json::Value::Object(map) = o else {
            unreachable!("an object")
        };
        let u = User::from_object(map);
        assert_eq!(u.name().as_deref(), Some("Jane]0;x"));
        assert_eq!(u.email().as_deref(), Some("j@x"));
        assert_eq!(u.plan().as_deref(), Some("pro"));
        assert_eq!(u.object()["id"], 7);
    }

    #[test]
    fn key_paths_use_the_encoded_key() {
        let key = PrivateKey::from_seed(&[1; 32], "")
            .expect("seed")
            .public_key();
        assert_eq!(key_path(&key), format!("/api/user/keys/{}", key.encoded()));
    }

    #[test]
    fn unavailable_backends_are_not_failures() {
        assert!(backend_unavailable(&Error::NoHome));
        assert!(backend_unavailable(&Error::NoSecretService {
            detail: "no bus".into()
        }));
        assert!(!backend_unavailable(&Error::Keyring("locked".into())));
    }
}
