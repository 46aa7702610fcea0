//! A small HTTP client for ollama.com (or a stand-in) and for the local
//! Ollama server, built to fail safe:
//!
//! - the base URL follows Ollama's rules ([`BaseUrl`]), checked before any
//!   byte is sent;
//! - every request to ollama.com is signed as §3a says
//!   (`Authorization: <token>` for `METHOD,PATH?ts=TS`);
//! - connect and overall timeouts, so a server that never answers is an
//!   error after a few seconds, not a hang;
//! - redirects are never followed: a `3xx` is an error naming where it
//!   pointed, so the `Authorization` header can't reach another host;
//! - response bodies are read up to a limit ([`BODY_LIMIT`]);
//! - `{"error":…, "signin_url":…}` bodies are parsed, and their text shown
//!   with control characters removed.
//!
//! The HTTP agent (and with it TLS) is made only when a request is sent, so
//! tools that never reach the network don't pay for it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::base::BaseUrl;
use crate::challenge::ApiRequest;
use crate::error::{Error, Result};
use crate::key::PrivateKey;
use crate::local::LocalHost;
use crate::token::Token;

/// Default time allowed to set up a connection (DNS, TCP, TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time allowed for a whole request, answer included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest response body read; more is an error.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Longest server-supplied text (an `error` field) shown to a user.
const SHOWN_TEXT_LIMIT: usize = 200;

/// Connect and overall timeouts of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Time allowed to connect (DNS, TCP, TLS).
    pub connect: Duration,
    /// Time allowed for the whole request.
    pub overall: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: DEFAULT_CONNECT_TIMEOUT,
            overall: DEFAULT_TIMEOUT,
        }
    }
}

impl Timeouts {
    /// The defaults with the overall timeout set to `overall`; the connect
    /// timeout never exceeds it.
    pub fn with_overall(overall: Duration) -> Self {
        Timeouts {
            connect: DEFAULT_CONNECT_TIMEOUT.min(overall),
            overall,
        }
    }
}

/// Parses a timeout flag: a positive number of seconds (fractions allowed),
/// at most an hour.
pub fn parse_seconds(text: &str) -> Result<Duration> {
    let bad = || {
        Error::Request(format!(
            "{:?} is not a number of seconds above 0 and at most 3600",
            crate::key::truncate(text, 24)
        ))
    };
    let secs: f64 = text.trim().parse().map_err(|_| bad())?;
    if !secs.is_finite() || secs <= 0.0 || secs > 3600.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Formats a duration for a message: `5 s`, `0.5 s`.
pub fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// What went wrong with a request, for [`Error::Remote`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteFailure {
    /// Nothing listens at the address.
    Refused,
    /// The host name did not resolve.
    HostNotFound,
    /// A timeout expired; `during` says which phase.
    TimedOut {
        /// The timeout that expired.
        after: Duration,
        /// `connecting` or `waiting for the answer`.
        during: &'static str,
    },
    /// The connection closed before a complete answer came.
    Dropped,
    /// TLS failed (certificate, handshake); the text says how.
    Tls(String),
    /// Another network error; the text says what.
    Network(String),
    /// The answer was a redirect, which is never followed.
    Redirect {
        /// The HTTP status.
        status: u16,
        /// Where it pointed (scheme and host only, or `nowhere`).
        to: String,
    },
    /// An HTTP status the call does not expect.
    Status {
        /// The HTTP status.
        status: u16,
        /// The server's `error` text, if it sent one.
        message: Option<String>,
    },
    /// The body was larger than [`BODY_LIMIT`].
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The answer was not what the server should send.
    BadAnswer(String),
}

impl fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteFailure::Refused => f.write_str("connection refused (nothing is listening there)"),
            RemoteFailure::HostNotFound => f.write_str("host name not found"),
            RemoteFailure::TimedOut { after, during } => {
                write!(f, "timed out after {} {during}", show_duration(*after))
            }
            RemoteFailure::Dropped => {
                f.write_str("the connection closed before a complete answer came")
            }
            RemoteFailure::Tls(why) => write!(f, "TLS failed: {why}"),
            RemoteFailure::Network(why) => write!(f, "network error: {why}"),
            RemoteFailure::Redirect { status, to } => write!(
                f,
                "answered HTTP {status}, a redirect to {to}, which olm does not follow (a signed request goes to one host only)"
            ),
            RemoteFailure::Status { status, message } => {
                write!(f, "answered HTTP {status}")?;
                if let Some(reason) = reason_phrase(*status) {
                    write!(f, " {reason}")?;
                }
                match message {
                    Some(m) => write!(f, ": {m:?}"),
                    None => Ok(()),
                }
            }
            RemoteFailure::TooLarge { limit } => {
                write!(f, "the answer is larger than the limit of {limit} bytes")
            }
            RemoteFailure::BadAnswer(why) => write!(f, "unexpected answer: {why}"),
        }
    }
}

fn reason_phrase(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => return None,
    })
}

/// A server's answer: status and body (at most [`BODY_LIMIT`] bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status (never `3xx`: redirects are errors).
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// The fields of an error body, `{"error":…, "signin_url":…}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorBody {
    /// `error`, cleaned for display.
    pub error: Option<String>,
    /// `signin_url`, when it is a plain `http(s)` URL.
    pub signin_url: Option<String>,
}

impl Response {
    /// Reads the body as an error body; anything else gives empty fields.
    pub fn error_body(&self) -> ErrorBody {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&self.body) else {
            return ErrorBody::default();
        };
        let text = |k: &str| map.get(k).and_then(|v| v.as_str());
        ErrorBody {
            error: text("error").map(clean_text).filter(|s| !s.is_empty()),
            signin_url: text("signin_url")
                .filter(|u| is_plain_url(u))
                .map(str::to_string),
        }
    }

    /// The body as a JSON object.
    pub fn json_object(
        &self,
    ) -> std::result::Result<serde_json::Map<String, serde_json::Value>, String> {
        match serde_json::from_slice(&self.body) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err("the body is JSON but not an object".into()),
            Err(e) => Err(format!("the body is not JSON ({e})")),
        }
    }

    /// The failure to report for this answer when its status was not
    /// expected.
    pub fn unexpected(&self) -> RemoteFailure {
        RemoteFailure::Status {
            status: self.status,
            message: self.error_body().error,
        }
    }
}

/// Server-supplied text made safe to print: control characters removed,
/// at most [`SHOWN_TEXT_LIMIT`] characters.
pub fn clean_text(s: &str) -> String {
    let cleaned: String = s.chars().filter(|c| !c.is_control()).collect();
    crate::key::truncate(cleaned.trim(), SHOWN_TEXT_LIMIT)
}

/// Whether `u` is an `http(s)` URL with nothing a terminal could misread:
/// no white space or control characters, at most 2048 bytes.
pub fn is_plain_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && u.len() <= 2048
        && u.bytes().all(|b| b.is_ascii_graphic())
}

/// The HTTP methods the client sends (every request has an empty body).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`, with an empty body.
    Post,
    /// `DELETE`.
    Delete,
}

impl Method {
    /// The method as it appears on the request line and in a challenge.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where requests go: a checked base URL of ollama.com or the local server.
#[derive(Clone, Debug)]
struct Origin {
    /// `scheme://host[:port]`, no trailing slash.
    url: String,
    loopback: bool,
}

/// A client for one server. Cheap to make: nothing is set up until a
/// request is sent.
#[derive(Clone, Debug)]
pub struct Client {
    origin: Origin,
    timeouts: Timeouts,
    body_limit: usize,
}

impl Client {
    /// A client for ollama.com or a stand-in at `base`.
    pub fn new(base: &BaseUrl) -> Self {
        Client {
            origin: Origin {
                url: base.to_string(),
                loopback: base.is_loopback(),
            },
            timeouts: Timeouts::default(),
            body_limit: BODY_LIMIT,
        }
    }

    /// A client for the local Ollama server at `host` (`OLLAMA_HOST`).
    pub fn local(host: &LocalHost) -> Self {
        Client {
            origin: Origin {
                url: host.to_string(),
                loopback: host.is_loopback(),
            },
            timeouts: Timeouts::default(),
            body_limit: BODY_LIMIT,
        }
    }

    /// Sets the timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets the body limit (tests use small ones).
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// The server as messages name it, e.g. `https://ollama.com`.
    pub fn server(&self) -> &str {
        &self.origin.url
    }

    /// An [`Error::Remote`] about this server.
    pub fn error(&self, failure: RemoteFailure) -> Error {
        Error::Remote {
            server: self.origin.url.clone(),
            failure,
        }
    }

    fn agent(&self) -> ureq::Agent {
        // A loopback server is reached directly; anything else honours
        // HTTPS_PROXY / ALL_PROXY / NO_PROXY, as Ollama does.
        let proxy = if self.origin.loopback {
            None
        } else {
            ureq::Proxy::try_from_env()
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .save_redirect_history(false)
            .proxy(proxy)
            .timeout_global(Some(self.timeouts.overall))
            .timeout_resolve(Some(self.timeouts.connect))
            .timeout_connect(Some(self.timeouts.connect))
            .user_agent(format!("olm/{}", env!("CARGO_PKG_VERSION")))
            .build();
        ureq::Agent::new_with_config(config)
    }

    /// Sends `METHOD request_uri` with an optional `Authorization` value and
    /// an empty body. Any status but a redirect is returned; a redirect and
    /// every network failure are [`Error::Remote`].
    pub fn send(
        &self,
        method: Method,
        request_uri: &str,
        authorization: Option<&str>,
    ) -> Result<Response> {
        if !request_uri.starts_with('/') {
            return Err(Error::Request(format!(
                "the request-URI {:?} does not start with /",
                crate::key::truncate(request_uri, 60)
            )));
        }
        let url = format!("{}{request_uri}", self.origin.url);
        let agent = self.agent();
        let result = match method {
            Method::Get => with_auth(agent.get(&url), authorization).call(),
            Method::Delete => with_auth(agent.delete(&url), authorization).call(),
            Method::Post => with_auth(agent.post(&url), authorization).send_empty(),
        };
        let mut resp = result.map_err(|e| self.error(self.failure(e)))?;
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            let to = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(location_origin)
                .unwrap_or_else(|| "nowhere".to_string());
            return Err(self.error(RemoteFailure::Redirect { status, to }));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(self.body_limit as u64)
            .read_to_vec()
            .map_err(|e| self.error(self.failure(e)))?;
        Ok(Response { status, body })
    }

    /// Sends a request signed with `key` as §3a says: `ts` is now.
    pub fn signed(&self, key: &PrivateKey, method: Method, path: &str) -> Result<Response> {
        self.signed_at(key, method, path, unix_now())
    }

    /// [`Client::signed`] with a given `ts`.
    pub fn signed_at(
        &self,
        key: &PrivateKey,
        method: Method,
        path: &str,
        ts: u64,
    ) -> Result<Response> {
        let request = ApiRequest::new(method.as_str(), path, ts)?;
        let token = Token::sign(key, request.challenge().as_bytes());
        self.send(method, &request.request_uri(), Some(&token.to_string()))
    }

    /// Maps ureq's error to what a user reads.
    fn failure(&self, err: ureq::Error) -> RemoteFailure {
        use std::io::ErrorKind as K;
        match err {
            ureq::Error::Timeout(t) => {
                let connecting = matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve);
                if connecting {
                    RemoteFailure::TimedOut {
                        after: self.timeouts.connect,
                        during: "connecting",
                    }
                } else {
                    RemoteFailure::TimedOut {
                        after: self.timeouts.overall,
                        during: "waiting for the answer",
                    }
                }
            }
            ureq::Error::HostNotFound => RemoteFailure::HostNotFound,
            ureq::Error::BodyExceedsLimit(_) => RemoteFailure::TooLarge {
                limit: self.body_limit,
            },
            ureq::Error::Io(e) => match e.kind() {
                K::ConnectionRefused => RemoteFailure::Refused,
                K::TimedOut | K::WouldBlock => RemoteFailure::TimedOut {
                    after: self.timeouts.overall,
                    during: "waiting for the answer",
                },
                K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                    RemoteFailure::Dropped
                }
                // rustls reports a failed handshake or record as InvalidData.
                K::InvalidData => RemoteFailure::Tls(clean_text(&e.to_string())),
                _ => match e.into_inner() {
                    // ureq wraps its own errors (limits, timeouts) in io errors.
                    Some(inner) => match inner.downcast::<ureq::Error>() {
                        Ok(u) => self.failure(*u),
                        Err(other) => RemoteFailure::Network(clean_text(&other.to_string())),
                    },
                    None => RemoteFailure::Network("I/O error".into()),
                },
            },
            ureq::Error::Tls(why) => RemoteFailure::Tls(why.to_string()),
            ureq::Error::Rustls(e) => RemoteFailure::Tls(clean_text(&e.to_string())),
            ureq::Error::Protocol(e) => {
                let text = e.to_string();
                if text.contains("EOF") || text.contains("closed") {
                    RemoteFailure::Dropped
                } else {
                    RemoteFailure::BadAnswer(format!(
                        "not a valid HTTP answer ({})",
                        clean_text(&text)
                    ))
                }
            }
            ureq::Error::LargeResponseHeader(_, limit) => {
                RemoteFailure::BadAnswer(format!("the headers are larger than {limit} bytes"))
            }
            ureq::Error::ConnectionFailed => RemoteFailure::Network("connection failed".into()),
            ureq::Error::ConnectProxyFailed(why) => {
                RemoteFailure::Network(format!("the proxy refused: {}", clean_text(&why)))
            }
            other => RemoteFailure::Network(clean_text(&other.to_string())),
        }
    }
}

fn with_auth<B>(
    req: ureq::RequestBuilder<B>,
    authorization: Option<&str>,
) -> ureq::RequestBuilder<B> {
    let req = req.header("Accept", "application/json");
    match authorization {
        Some(a) => req.header("Authorization", a),
        None => req,
    }
}

/// `scheme://host[:port]` of a `Location` value, or `the same host (PATH)`
/// for a relative one; cleaned for display.
fn location_origin(location: &str) -> String {
    let location = clean_text(location);
    match location.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let authority = &rest[..end];
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => format!("the same host ({})", crate::key::truncate(&location, 60)),
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it): the one
/// clock of libauth, for `ts` values and freshness checks.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_and_refuse() {
        assert_eq!(parse_seconds("5").expect("5"), Duration::from_secs(5));
        assert_eq!(
            parse_seconds("0.5").expect("0.5"),
            Duration::from_millis(500)
        );
        for bad in ["0", "-1", "x", "", "inf", "NaN", "3601"] {
            assert!(parse_seconds(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(show_duration(Duration::from_secs(5)), "5 s");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn connect_timeout_never_exceeds_overall() {
        let t = Timeouts::with_overall(Duration::from_secs(1));
        assert_eq!(t.connect, Duration::from_secs(1));
        let t = Timeouts::with_overall(Duration::from_secs(60));
        assert_eq!(t.connect, DEFAULT_CONNECT_TIMEOUT);
    }

    #[test]
    fn error_bodies_are_read_and_cleaned() {
        let r = Response {
            status: 401,
            body: br#"{"error":"unauthorized\u001b[31m","signin_url":"https://ollama.com/connect?name=a&key=b"}"#.to_vec(),
        };
        let e = r.error_body();
        assert_eq!(e.error.as_deref(), Some("unauthorized[31m"));
        assert_eq!(
            e.signin_url.as_deref(),
            Some("https://ollama.com/connect?name=a&key=b")
        );
        let r = Response {
            status: 401,
            body: br#"{"signin_url":"javascript:alert(1)"}"#.to_vec(),
        };
        assert_eq!(r.error_body(), ErrorBody::default());
        let r = Response {
            status: 500,
            body: b"<html>oops</html>".to_vec(),
        };
        assert_eq!(
            r.unexpected(),
            RemoteFailure::Status {
                status: 500,
                message: None
            }
        );
        assert_eq!(
            r.unexpected().to_string(),
            "answered HTTP 500 Internal Server Error"
        );
    }

    #[test]
    fn locations_show_only_their_origin() {
        assert_eq!(
            location_origin("https://user:pw@evil.example:8443/steal?x=1"),
            "https://evil.example:8443"
        );
        assert_eq!(location_origin("/api/me"), "the same host (/api/me)");
    }

    #[test]
    fn requests_must_be_paths() {
        let base = BaseUrl::parse("http://127.0.0.1:9").expect("base");
        let c = Client::new(&base);
        assert!(matches!(
            c.send(Method::Get, "api/me", None),
            Err(Error::Request(_))
        ));
    }

    #[test]
    fn methods_are_written_as_http_writes_them() {
        assert_eq!(Method::Get.as_str(), "GET");
        assert_eq!(Method::Post.to_string(), "POST");
        assert_eq!(Method::Delete.as_str(), "DELETE");
    }
}
