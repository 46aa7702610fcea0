//! The account calls of PROTOCOL.md §5: who is signed in (`POST /api/me`),
//! disconnecting a device key (`DELETE /api/user/keys/<encodedKey>`), and
//! asking the local Ollama server to sign out (`POST /api/signout`).
//!
//! Each call returns what the server said in a type; every answer the
//! protocol does not list (any other status, a redirect, a body that is not
//! JSON, a network failure) is an [`Error::Remote`], which callers treat as
//! "nothing changed".

use crate::client::{clean_text, Client, RemoteFailure, Response};
use crate::error::{Error, Result};
use crate::key::PrivateKey;

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
    let resp = client.signed(key, "POST", "/api/me")?;
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
    let resp = client.signed(key, "DELETE", &key_path(&key.public_key()))?;
    sign_out_answer(client, &resp)
}

/// `POST /api/signout` to the local Ollama server, which disconnects its
/// own key. Signed with `key` when given (`OLLAMA_AUTH`).
pub fn local_signout(client: &Client, key: Option<&PrivateKey>) -> Result<SignOut> {
    let resp = match key {
        Some(k) => client.signed(k, "POST", "/api/signout")?,
        None => client.send("POST", "/api/signout", None)?,
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
}
