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
//!
//! The stand-in is for development on one machine: `/connect` has no
//! sign-in, so whoever can reach it can list a key. Its endpoints answer
//! only requests whose `Host` names this machine (`localhost`, `*.localhost`
//! or an IP address; the port, when given, must be the server's): a web page
//! cannot reach them through a DNS name it controls (DNS rebinding), `421`
//! otherwise. `/connect` also refuses (`403`) a browser's cross-site
//! request (`Sec-Fetch-Site: cross-site` or `same-site`), so a page cannot
//! list a key with a link or an image; opening the URL yourself works.
//! The stand-in has one implicit account: any listed key may remove any
//! other (on ollama.com, a key may remove its own account's keys).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::authorized_keys::{clean_comment, with_key_added, with_key_removed};
use crate::challenge::parse_query;
use crate::connect::{connect_url, ConnectForm};
use crate::key::PublicKey;
use crate::serve::{verify_only, Replays, Request, Response, State};
use crate::verify::Reason;

/// Why a stand-in endpoint refuses a request's `Host`, or `None` when it
/// names this machine: `localhost`, `*.localhost` or an IP address, with no
/// port or `port`. A name that only resolves here (DNS rebinding) fails.
pub fn host_problem(host: Option<&str>, port: u16) -> Option<(u16, &'static str)> {
    let Some(host) = host else {
        return Some((400, "a Host header is required"));
    };
    let (name, given_port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Some((400, "the Host header cannot be read"));
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Some((
                421,
                "the stand-in answers only requests for this machine (Host)",
            ));
        }
        match after {
            "" => (v6, None),
            p => match p.strip_prefix(':') {
                Some(p) => (v6, Some(p)),
                None => return Some((400, "the Host header cannot be read")),
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    let name = name.to_ascii_lowercase();
    let local = name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::IpAddr>().is_ok()
        || host.starts_with('[');
    if !local {
        return Some((
            421,
            "the stand-in answers only requests for this machine (Host)",
        ));
    }
    match given_port {
        Some(p) if p.parse::<u16>().ok() != Some(port) => Some((
            421,
            "the stand-in answers only requests for its own port (Host)",
        )),
        _ => None,
    }
}

/// The device name used in a `signin_url` when none is known.
pub const DEFAULT_NAME: &str = "device";

/// Answers `req` as ollama.com would, or as the plain verifier.
pub fn route(state: &State, req: &Request) -> Response {
    let (path, query) = match req.uri.split_once('?') {
        Some((p, q)) => (p, q),
        None => (req.uri.as_str(), ""),
    };
    let stand_in_endpoint = matches!(
        (req.method.as_str(), path),
        ("GET", "/connect") | ("POST", "/api/me")
    ) || (req.method == "DELETE" && path.starts_with("/api/user/keys/"));
    if stand_in_endpoint {
        if let Some((status, message)) = host_problem(req.host.as_deref(), state.port) {
            return Response::error(status, message);
        }
    }
    match (req.method.as_str(), path) {
        ("GET", "/connect") => {
            // A browser says where a request comes from: refuse one made
            // by another site's page (a link, an image, a script).
            match req.fetch_site.as_deref().map(str::to_ascii_lowercase) {
                Some(site) if site == "cross-site" || site == "same-site" => Response::error(
                    403,
                    "/connect refuses requests made by other sites' pages; open the URL yourself",
                ),
                _ => connect(state, query),
            }
        }
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
        drop(keys);
        let reason = Reason::NotConnected {
            fingerprint: target.fingerprint(),
        };
        return Response::unauthorized(&reason).signer(Some(&signer));
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
    if let (Some(k), Some(base)) = (key, &state.base) {
        body["signin_url"] = connect_url(base, DEFAULT_NAME, k, ConnectForm::Server).into();
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

    #[test]
    fn only_hosts_naming_this_machine_reach_the_stand_in() {
        for ok in [
            "127.0.0.1:8181",
            "127.0.0.1",
            "localhost:8181",
            "LOCALHOST",
            "app.localhost:8181",
            "[::1]:8181",
            "[::1]",
            "10.1.2.3:8181",
        ] {
            assert_eq!(host_problem(Some(ok), 8181), None, "{ok}");
        }
        for (bad, status) in [
            ("evil.example:8181", 421),
            ("evil.example", 421),
            ("localhost.evil.example:8181", 421),
            ("127.0.0.1:8182", 421),
            ("localhost:x", 421),
            ("[::1", 400),
            ("[::1]x", 400),
        ] {
            assert_eq!(
                host_problem(Some(bad), 8181).map(|(s, _)| s),
                Some(status),
                "{bad}"
            );
        }
        assert_eq!(host_problem(None, 8181).map(|(s, _)| s), Some(400));
    }
}
