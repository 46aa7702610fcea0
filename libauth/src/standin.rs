//! `olm-verify --serve --stand-in`: ollama.com's device-key endpoints
//! (PROTOCOL.md §4–5) over a local authorized_keys file, so every olm
//! pipeline can be tried with no account and no network.
//!
//! - `GET /connect?name=NAME&key=ENCODED` adds `ssh-ed25519 AAAA… NAME` to
//!   the file (atomically, once) and answers a short page, `connected NAME`;
//! - `POST /api/me`, signed by a listed key: the "account", as JSON with
//!   `id`, `email`, `name` (the key's comment) and `plan`; else `401`
//!   `{"error":"unauthorized","signin_url":…}`;
//! - `DELETE /api/user/keys/<encodedKey>`, signed by a listed key: removes
//!   that key, `200 {}`; `401` when the signer or that key is not listed;
//! - anything else: verified as by [`crate::serve::verify_only`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::authorized_keys::{clean_comment, with_key_added, with_key_removed};
use crate::base::BaseUrl;
use crate::challenge::parse_query;
use crate::connect::{connect_url, ConnectForm};
use crate::key::PublicKey;
use crate::serve::{verify_only, Replays, Request, Response, State};
use crate::verify::Reason;

/// The device name used in a `signin_url` when none is known.
pub const DEFAULT_NAME: &str = "device";

/// Answers `req` as ollama.com would, or as the plain verifier.
pub fn route(state: &State, req: &Request) -> Response {
    let (path, query) = match req.uri.split_once('?') {
        Some((p, q)) => (p, q),
        None => (req.uri.as_str(), ""),
    };
    match (req.method.as_str(), path) {
        ("GET", "/connect") => connect(state, query),
        ("POST", "/api/me") => me(state, req),
        ("DELETE", p) if p.starts_with("/api/user/keys/") => {
            delete_key(state, req, &p["/api/user/keys/".len()..])
        }
        _ => verify_only(state, req),
    }
}

/// Decodes an `encodedKey`: base64url (padding tolerated) of a public key line.
pub fn decode_key(encoded: &str) -> Option<PublicKey> {
    let bytes = URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')).ok()?;
    let line = String::from_utf8(bytes).ok()?;
    PublicKey::from_line(&line).ok()
}

fn connect(state: &State, query: &str) -> Response {
    let Ok(params) = parse_query(query) else {
        return Response::error(400, "the query cannot be read");
    };
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(key) = get("key").and_then(decode_key) else {
        return Response::error(
            400,
            "key= must be base64url of an ssh-ed25519 public key line",
        );
    };
    let name = clean_comment(get("name").unwrap_or(DEFAULT_NAME));
    let name = if name.is_empty() {
        DEFAULT_NAME.to_string()
    } else {
        name
    };
    let mut keys = state.keys();
    let note = match with_key_added(&keys.text, &key, &name) {
        None => "already connected",
        Some(text) => match keys.store(text) {
            Ok(()) => "connected",
            Err(e) => {
                return Response::error(500, &format!("cannot write {}: {e}", keys.shown))
                    .signer(Some(&key))
            }
        },
    };
    drop(keys);
    let escaped = html_escape(&name);
    Response {
        status: 200,
        content_type: "text/html; charset=utf-8",
        headers: Vec::new(),
        body: format!("<!doctype html>\n<title>olm stand-in</title>\n<p>connected {escaped}</p>\n"),
        fingerprint: Some(key.fingerprint()),
        note: format!("{note} {name:?}"),
    }
}

fn me(state: &State, req: &Request) -> Response {
    match state.check(req, Replays::Allow) {
        Ok((signed, comment)) => {
            let key = *signed.token.public_key();
            Response::json(200, account(&key, &comment).to_string(), "ok").signer(Some(&key))
        }
        Err(refusal) => {
            let (reason, key) = *refusal;
            signin_required(state, &reason, key.as_ref())
        }
    }
}

fn delete_key(state: &State, req: &Request, encoded: &str) -> Response {
    let (signed, _) = match state.check(req, Replays::Allow) {
        Ok(ok) => ok,
        Err(refusal) => {
            let (reason, key) = *refusal;
            return Response::unauthorized(&reason).signer(key.as_ref());
        }
    };
    let signer = *signed.token.public_key();
    let Some(target) = decode_key(encoded) else {
        return Response::error(
            400,
            "the key in the path must be base64url of an ssh-ed25519 public key line",
        )
        .signer(Some(&signer));
    };
    let mut keys = state.keys();
    let Some(text) = with_key_removed(&keys.text, &target) else {
        let reason = format!("key {} is not connected", target.fingerprint());
        drop(keys);
        let mut r = Response::unauthorized(&Reason::BadRequest(reason.clone()));
        r.note = reason;
        return r.signer(Some(&signer));
    };
    if let Err(e) = keys.store(text) {
        return Response::error(500, &format!("cannot write {}: {e}", keys.shown))
            .signer(Some(&signer));
    }
    let mut r = Response::json(
        200,
        "{}".into(),
        format!("removed {}", target.fingerprint()),
    );
    r.fingerprint = Some(signer.fingerprint());
    r
}

/// The made-up account of `key`: stable, derived from the key.
fn account(key: &PublicKey, comment: &str) -> serde_json::Value {
    let digest = Sha256::digest(key.blob());
    let id: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let name = if comment.is_empty() {
        format!("user-{}", &id[..8])
    } else {
        comment.to_string()
    };
    let local: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    serde_json::json!({
        "id": id,
        "email": format!("{local}@stand-in.invalid"),
        "name": name,
        "plan": "free",
    })
}

fn signin_required(state: &State, reason: &Reason, key: Option<&PublicKey>) -> Response {
    let mut body = serde_json::json!({ "error": "unauthorized" });
    if let (Some(k), Ok(base)) = (key, BaseUrl::parse(&state.base)) {
        body["signin_url"] = connect_url(&base, DEFAULT_NAME, k, ConnectForm::Server).into();
    }
    Response::json(401, body.to_string(), reason.to_string()).signer(key)
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::PrivateKey;

    #[test]
    fn decodes_encoded_keys_and_makes_stable_accounts() {
        let k = PrivateKey::from_seed(&[9; 32], "")
            .expect("seed")
            .public_key();
        assert_eq!(decode_key(&k.encoded()), Some(k));
        assert_eq!(decode_key("!!"), None);
        let a = account(&k, "Jane's box");
        assert_eq!(a, account(&k, "Jane's box"));
        assert_eq!(a["name"], "Jane's box");
        assert_eq!(a["email"], "jane-s-box@stand-in.invalid");
        assert!(account(&k, "")["name"]
            .as_str()
            .expect("name")
            .starts_with("user-"));
        assert_eq!(html_escape("<a&b>"), "&lt;a&amp;b&gt;");
    }
}
