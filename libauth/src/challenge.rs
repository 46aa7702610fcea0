//! Challenges: the exact bytes a token signs (PROTOCOL.md §3).

use std::fmt::Write as _;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The bytes that a token signs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Challenge(Vec<u8>);

impl Challenge {
    /// Takes arbitrary bytes as a challenge, as `olm-sign` does with stdin.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Challenge(bytes.into())
    }

    /// The bytes to sign.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One query parameter: a decoded key and value.
pub type Param = (String, String);

/// An API request as Ollama signs it (§3a): method, path and query, with `ts`
/// set in the query.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ApiRequest {
    method: String,
    path: String,
    /// Sorted by key (stable, so a key's values keep their order).
    query: Vec<Param>,
    ts: u64,
}

impl ApiRequest {
    /// Builds the request for `METHOD` and `uri` (a path with an optional
    /// query), setting (replacing) `ts`.
    pub fn new(method: &str, uri: &str, ts: u64) -> Result<Self> {
        let method = check_method(method)?;
        let (path, raw_query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        check_path(path)?;
        let mut query = match raw_query {
            Some(q) => parse_query(q)?,
            None => Vec::new(),
        };
        query.retain(|(k, _)| k != "ts");
        query.push(("ts".to_string(), ts.to_string()));
        query.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(ApiRequest {
            method,
            path: path.to_string(),
            query,
            ts,
        })
    }

    /// Reads a request exactly as received (`METHOD` and request-URI), for a
    /// verifier: the challenge is rebuilt from the bytes as they came, and
    /// `ts` is read from the query.
    pub fn received(method: &str, request_uri: &str) -> Result<(Challenge, u64)> {
        check_method(method)?;
        let (path, query) = request_uri
            .split_once('?')
            .ok_or_else(|| Error::Request("the request has no query, so no ts".into()))?;
        check_path(path)?;
        let params = parse_query(query)?;
        let mut ts_values = params.iter().filter(|(k, _)| k == "ts");
        let ts = match (ts_values.next(), ts_values.next()) {
            (Some((_, v)), None) => parse_ts(v)?,
            (None, _) => return Err(Error::Request("the request has no ts parameter".into())),
            (Some(_), Some(_)) => {
                return Err(Error::Request("the request has more than one ts".into()))
            }
        };
        let mut bytes = Vec::with_capacity(method.len() + 1 + request_uri.len());
        bytes.extend_from_slice(method.as_bytes());
        bytes.push(b',');
        bytes.extend_from_slice(request_uri.as_bytes());
        Ok((Challenge(bytes), ts))
    }

    /// The method, e.g. `POST`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The `ts` in the query.
    pub fn ts(&self) -> u64 {
        self.ts
    }

    /// The request-URI: path, `?`, query encoded as Go's `url.Values.Encode`.
    pub fn request_uri(&self) -> String {
        let mut out = String::with_capacity(self.path.len() + 32);
        out.push_str(&self.path);
        out.push('?');
        out.push_str(&encode_query(&self.query));
        out
    }

    /// The challenge: `METHOD,request-URI`.
    pub fn challenge(&self) -> Challenge {
        Challenge(format!("{},{}", self.method, self.request_uri()).into_bytes())
    }
}

/// Parses and checks a Unix time in whole seconds.
pub fn parse_ts(v: &str) -> Result<u64> {
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Request(format!(
            "ts {:?} is not a Unix time in whole seconds",
            crate::key::truncate(v, 24)
        )));
    }
    v.parse()
        .map_err(|_| Error::Request(format!("ts {v:?} is out of range")))
}

fn check_method(method: &str) -> Result<String> {
    // RFC 9110 token characters; anything else would not survive HTTP.
    let ok = !method.is_empty()
        && method.len() <= 32
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(method.to_string())
    } else {
        Err(Error::Request(format!(
            "{:?} is not an HTTP method",
            crate::key::truncate(method, 24)
        )))
    }
}

fn check_path(path: &str) -> Result<()> {
    if !path.starts_with('/') {
        return Err(Error::Request(format!(
            "the path {:?} must start with /",
            crate::key::truncate(path, 40)
        )));
    }
    if path.contains('#') {
        return Err(Error::Request(
            "the URI holds a fragment (#…), which is never sent to a server; leave it out".into(),
        ));
    }
    if let Some(c) = path.chars().find(|c| !c.is_ascii_graphic()) {
        let how = match c {
            ' ' => "percent-encode it as %20".to_string(),
            c if c.is_ascii() => format!("percent-encode it as %{:02X}", c as u32),
            _ => "percent-encode its UTF-8 bytes (%XX each)".to_string(),
        };
        return Err(Error::Request(format!("the path holds {c:?}: {how}")));
    }
    Ok(())
}

/// Parses a query as Go's `url.ParseQuery`: `&`-separated, `+` is a space,
/// `%XX` escapes; `;` is refused as Go does.
pub fn parse_query(q: &str) -> Result<Vec<Param>> {
    let mut out = Vec::new();
    for part in q.split('&') {
        if part.is_empty() {
            continue;
        }
        if part.contains(';') {
            return Err(Error::Request("the query holds a semicolon".into()));
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((query_unescape(k)?, query_unescape(v)?));
    }
    Ok(out)
}

fn query_unescape(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                // Two hex digits exactly, as Go's unhex: from_str_radix alone
                // would also take a sign ("%+1").
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        Error::Request(format!("bad %-escape in {:?}", crate::key::truncate(s, 40)))
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Error::Request("the query is not UTF-8 once decoded".into()))
}

/// Encodes a query as Go's `url.Values.Encode` does: sorted keys, each key's
/// values in order, `QueryEscape` on both sides. The input must be sorted.
pub fn encode_query(params: &[Param]) -> String {
    let mut out = String::new();
    for (k, v) in params {
        if !out.is_empty() {
            out.push('&');
        }
        query_escape_into(k, &mut out);
        out.push('=');
        query_escape_into(v, &mut out);
    }
    out
}

/// Go's `url.QueryEscape`: unreserved bytes stay, space becomes `+`, all
/// else `%XX` (upper case).
pub fn query_escape_into(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

/// RFC 3986 percent-encoding of every byte outside the unreserved set.
pub fn percent_encode_into(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

/// `base64(hex(sha256("")))`: the body digest field of every registry
/// challenge, since the body is always empty.
pub const EMPTY_BODY_DIGEST: &str =
    "ZTNiMGM0NDI5OGZjMWMxNDlhZmJmNGM4OTk2ZmI5MjQyN2FlNDFlNDY0OWI5MzRjYTQ5NTk5MWI3ODUyYjg1NQ==";

/// A registry's `WWW-Authenticate: Bearer realm=…,service=…,scope=…` (§3b).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RegistryChallenge {
    realm: String,
    service: String,
    scope: String,
}

impl RegistryChallenge {
    /// Reads the header value (with or without `Bearer `).
    pub fn parse(header: &str) -> Result<Self> {
        let header = header.trim();
        let header = header
            .strip_prefix("WWW-Authenticate:")
            .map(str::trim)
            .unwrap_or(header);
        let header = header.strip_prefix("Bearer ").unwrap_or(header);
        let realm = auth_param(header, "realm")
            .ok_or_else(|| Error::Request("the challenge has no realm=\"…\"".into()))?;
        let shown = crate::key::truncate(realm, 80);
        let (scheme, rest) = realm
            .split_once("://")
            .ok_or_else(|| Error::Request(format!("the realm {shown:?} is not an absolute URL")))?;
        if scheme != "https" && scheme != "http" || rest.is_empty() || rest.starts_with('/') {
            return Err(Error::Request(format!(
                "the realm {shown:?} is not an http(s) URL"
            )));
        }
        if realm.contains('#') || realm.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(Error::Request(format!(
                "the realm {shown:?} holds characters a URL cannot"
            )));
        }
        // The token request carries a signature: the same rules as a base
        // URL (https unless loopback, no user info), checked before signing.
        crate::base::split_absolute(realm.split('?').next().unwrap_or(realm))?;
        Ok(RegistryChallenge {
            realm: realm.to_string(),
            service: auth_param(header, "service")
                .unwrap_or_default()
                .to_string(),
            scope: auth_param(header, "scope").unwrap_or_default().to_string(),
        })
    }

    /// The URL to fetch the registry token from, with the given `ts` and
    /// 16-byte nonce.
    pub fn url(&self, ts: u64, nonce: &[u8; 16]) -> Result<String> {
        let (base, raw_query) = match self.realm.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (self.realm.as_str(), None),
        };
        let mut query = match raw_query {
            Some(q) => parse_query(q)?,
            None => Vec::new(),
        };
        query.push(("service".into(), self.service.clone()));
        for s in self.scope.split(' ') {
            query.push(("scope".into(), s.to_string()));
        }
        query.push(("ts".into(), ts.to_string()));
        query.push(("nonce".into(), URL_SAFE_NO_PAD.encode(nonce)));
        query.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Ok(format!("{base}?{}", encode_query(&query)))
    }

    /// The challenge for `url` (as returned by [`RegistryChallenge::url`]).
    pub fn challenge_for(url: &str) -> Challenge {
        Challenge(format!("GET,{url},{EMPTY_BODY_DIGEST}").into_bytes())
    }
}

/// `base64(hex(sha256(body)))`, the last field of a registry challenge.
pub fn body_digest(body: &[u8]) -> String {
    let hex: String = Sha256::digest(body).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    STANDARD.encode(hex)
}

/// Ollama's `getValue`: the text between `key="` and the next `"`.
fn auth_param<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("{key}=\"");
    let mut search = header;
    loop {
        let at = search.find(&needle)?;
        // Only match at a parameter boundary, so `realm` does not match `xrealm`.
        let boundary = at == 0 || matches!(search.as_bytes()[at - 1], b',' | b' ');
        let rest = &search[at + needle.len()..];
        if boundary {
            return rest.find('"').map(|end| &rest[..end]);
        }
        search = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form() {
        let r = ApiRequest::new("POST", "/api/me", 1700000000).expect("req");
        assert_eq!(r.challenge().as_bytes(), b"POST,/api/me?ts=1700000000");
    }

    #[test]
    fn general_form_sorts_and_replaces_ts() {
        let r = ApiRequest::new("GET", "/x?z=1&ts=5&a=b+c&a=%2F&k", 9).expect("req");
        assert_eq!(r.request_uri(), "/x?a=b+c&a=%2F&k=&ts=9&z=1");
    }

    #[test]
    fn bad_requests_are_refused() {
        assert!(ApiRequest::new("", "/x", 1).is_err());
        assert!(ApiRequest::new("GET X", "/x", 1).is_err());
        assert!(ApiRequest::new("GET", "x", 1).is_err());
        assert!(ApiRequest::new("GET", "/a b", 1).is_err());
        assert!(ApiRequest::new("GET", "/a?b=%zz", 1).is_err());
        assert!(ApiRequest::new("GET", "/a?b=1;c=2", 1).is_err());
        // Go's unhex takes two hex digits, no sign (found while writing the fuzz targets).
        assert!(ApiRequest::new("GET", "/a?b=%+1", 1).is_err());
        assert!(ApiRequest::new("GET", "/a?b=%-1", 1).is_err());
        assert!(ApiRequest::new("GET", "/a?b=%4", 1).is_err());
        assert!(ApiRequest::new("GET", "/a?b=%4a", 1).is_ok());
    }

    #[test]
    fn received_keeps_bytes_and_reads_ts() {
        let (c, ts) = ApiRequest::received("GET", "/api/tags?b=2&ts=7&a=1").expect("ok");
        assert_eq!(c.as_bytes(), b"GET,/api/tags?b=2&ts=7&a=1");
        assert_eq!(ts, 7);
        assert!(ApiRequest::received("GET", "/api/tags").is_err());
        assert!(ApiRequest::received("GET", "/api/tags?ts=1&ts=2").is_err());
        assert!(ApiRequest::received("GET", "/api/tags?ts=-1").is_err());
    }

    #[test]
    fn empty_body_digest_is_computed() {
        assert_eq!(body_digest(b""), EMPTY_BODY_DIGEST);
    }

    #[test]
    fn auth_params() {
        let h = r#"Bearer realm="https://r/t",service="registry",scope="a b""#;
        let c = RegistryChallenge::parse(h).expect("parse");
        let url = c.url(1, &[0; 16]).expect("url");
        assert_eq!(
            url,
            "https://r/t?nonce=AAAAAAAAAAAAAAAAAAAAAA&scope=a&scope=b&service=registry&ts=1"
        );
        assert!(RegistryChallenge::parse(r#"Bearer service="x""#).is_err());
        assert!(RegistryChallenge::parse(r#"Bearer realm="ftp://x""#).is_err());
    }
}
