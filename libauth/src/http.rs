//! HTTP/1.1 for `olm-verify --serve`, kept small and bounded: the request
//! head is read into a buffer of [`Limits::max_head`] bytes and parsed by
//! `httparse` (hyper's parser); a small body is read and dropped; every
//! read and write has a timeout and the whole request a deadline; every
//! response closes the connection.
//!
//! (tiny_http was considered: it buffers header lines without any bound and
//! spawns threads without limit.)

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::key::PublicKey;
use crate::verify::Reason;

/// Bounds on what one client may make the server hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request head (request line and headers), in bytes.
    pub max_head: usize,
    /// Most headers in one request.
    pub max_headers: usize,
    /// Largest request body read (and thrown away), in bytes.
    pub max_body: usize,
    /// Most connections served at once; more get `503`.
    pub max_connections: usize,
    /// Time a client has to send its whole request.
    pub request_deadline: Duration,
    /// Longest wait for one read or write.
    pub io_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_headers: 64,
            max_body: 64 * 1024,
            max_connections: 256,
            request_deadline: Duration::from_secs(10),
            io_timeout: Duration::from_secs(5),
        }
    }
}

/// A response to write.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: String,
    /// The signer's fingerprint, for the log.
    pub fingerprint: Option<String>,
    /// What happened, for the log (`ok`, or the reason).
    pub note: String,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: String, note: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "application/json; charset=utf-8",
            headers: Vec::new(),
            body,
            fingerprint: None,
            note: note.into(),
        }
    }

    /// `401` with Ollama's JSON error.
    pub fn unauthorized(reason: &Reason) -> Self {
        Self::json(
            401,
            r#"{"error":"unauthorized"}"#.to_string(),
            reason.to_string(),
        )
    }

    /// An error status with `{"error": message}`.
    pub fn error(status: u16, message: &str) -> Self {
        let body = serde_json::json!({ "error": message }).to_string();
        Self::json(status, body, message.to_string())
    }

    /// Records the signer for the log.
    pub fn signer(mut self, key: Option<&PublicKey>) -> Self {
        self.fingerprint = key.map(PublicKey::fingerprint);
        self
    }
}

/// One parsed request, as the handlers see it.
///
/// Its `Debug` never shows the `Authorization` value: a token is replayable
/// on ollama.com.
pub struct Request {
    /// The method to verify (`X-Original-Method` when present and trusted).
    pub method: String,
    /// The request-URI to verify (`X-Original-URI` when present and trusted).
    pub uri: String,
    /// The `Authorization` value, when exactly one was sent.
    pub authorization: Option<Vec<u8>>,
    /// More than one `Authorization` header was sent.
    pub authorization_repeated: bool,
    /// The `Host` header, when one was sent.
    pub host: Option<String>,
    /// The `Sec-Fetch-Site` header (sent by browsers), when one was sent.
    pub fetch_site: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("authorization_repeated", &self.authorization_repeated)
            .field("host", &self.host)
            .field("fetch_site", &self.fetch_site)
            .finish()
    }
}

/// Whether `X-Original-Method` / `X-Original-URI` are believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginalHeaders {
    /// Believed: the peer is a proxy we trust (nginx on this machine).
    Trust,
    /// Not believed: a request carrying either gets `400`.
    Refuse,
}

/// How reading a request ended, when it did not give one.
pub(crate) enum ReadFail {
    /// The client went away or sent nothing: no answer.
    Gone,
    /// Answer with this status and message, then close.
    Answer(u16, &'static str),
}

/// Reads one request head (and drains a small body) within the limits.
/// Returns the request and whether it was a HEAD request. `original` says
/// whether `X-Original-Method` / `X-Original-URI` are believed.
pub(crate) fn read_request(
    stream: &mut TcpStream,
    limits: &Limits,
    original: OriginalHeaders,
) -> std::result::Result<(Request, bool), ReadFail> {
    let deadline = Instant::now() + limits.request_deadline;
    let mut buf = vec![0u8; limits.max_head];
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(ReadFail::Answer(431, "request head too large"));
        }
        let n = read_before(stream, &mut buf[len..], deadline, limits.io_timeout)?;
        if n == 0 {
            return Err(ReadFail::Gone);
        }
        len += n;
        // A head ends with a newline: parse only when one arrived, so a
        // client sending a byte at a time costs no quadratic work.
        if !buf[len - n..len].contains(&b'\n') {
            continue;
        }
        let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf[..len]) {
            Ok(httparse::Status::Partial) => continue,
            Ok(httparse::Status::Complete(head_len)) => {
                let req = extract(&parsed, original)?;
                let head_only = parsed.method == Some("HEAD");
                let body_len = body_length(&parsed, limits)?;
                let have = len - head_len;
                drain(stream, body_len.saturating_sub(have), deadline, limits)?;
                return Ok((req, head_only));
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ReadFail::Answer(431, "too many headers"))
            }
            Err(_) => return Err(ReadFail::Answer(400, "malformed HTTP request")),
        }
    }
}

fn read_before(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    io_timeout: Duration,
) -> std::result::Result<usize, ReadFail> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ReadFail::Answer(408, "request not received in time"));
    }
    let _ = stream.set_read_timeout(Some(left.min(io_timeout)));
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ReadFail::Answer(408, "request not received in time"))
            }
            Err(_) => return Err(ReadFail::Gone),
        }
    }
}

fn body_length(
    req: &httparse::Request<'_, '_>,
    limits: &Limits,
) -> std::result::Result<usize, ReadFail> {
    let mut length: Option<usize> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ReadFail::Answer(
                411,
                "chunked request bodies are not accepted; send Content-Length",
            ));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(ReadFail::Answer(400, "bad Content-Length"))?;
            if length.is_some_and(|l| l != v) {
                return Err(ReadFail::Answer(400, "conflicting Content-Length headers"));
            }
            length = Some(v);
        }
    }
    let length = length.unwrap_or(0);
    if length > limits.max_body {
        return Err(ReadFail::Answer(413, "request body too large"));
    }
    Ok(length)
}

fn drain(
    stream: &mut TcpStream,
    mut left: usize,
    deadline: Instant,
    limits: &Limits,
) -> std::result::Result<(), ReadFail> {
    let mut scratch = [0u8; 4096];
    while left > 0 {
        let want = left.min(scratch.len());
        let n = read_before(stream, &mut scratch[..want], deadline, limits.io_timeout)?;
        if n == 0 {
            return Err(ReadFail::Gone);
        }
        left -= n;
    }
    Ok(())
}

/// The message of the `400` for `X-Original-*` headers from a peer that is
/// not trusted to set them.
pub const UNTRUSTED_ORIGINAL: &str = "X-Original-Method and X-Original-URI are only believed from a proxy on this machine (see --trust-original-headers)";

fn extract(
    req: &httparse::Request<'_, '_>,
    original: OriginalHeaders,
) -> std::result::Result<Request, ReadFail> {
    let mut method = req.method.unwrap_or("").to_string();
    let mut uri = req.path.unwrap_or("").to_string();
    let mut authorization = None;
    let mut repeated = false;
    let mut original_method: Option<String> = None;
    let mut original_uri: Option<String> = None;
    let mut host: Option<String> = None;
    let mut fetch_site: Option<String> = None;
    // A header that decides what is verified (or for whom) must come once:
    // with two, which one a proxy or we would use is anyone's guess.
    let once = |slot: &mut Option<String>, value: &[u8], what: &'static str| {
        if slot.is_some() {
            return Err(ReadFail::Answer(400, what));
        }
        *slot = Some(text(value)?);
        Ok(())
    };
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("authorization") {
            repeated |= authorization.is_some();
            authorization = Some(h.value.to_vec());
        } else if h.name.eq_ignore_ascii_case("x-original-method") {
            once(
                &mut original_method,
                h.value,
                "more than one X-Original-Method header",
            )?;
        } else if h.name.eq_ignore_ascii_case("x-original-uri") {
            once(
                &mut original_uri,
                h.value,
                "more than one X-Original-URI header",
            )?;
        } else if h.name.eq_ignore_ascii_case("host") {
            once(&mut host, h.value, "more than one Host header")?;
        } else if h.name.eq_ignore_ascii_case("sec-fetch-site") {
            once(
                &mut fetch_site,
                h.value,
                "more than one Sec-Fetch-Site header",
            )?;
        }
    }
    if original_method.is_some() || original_uri.is_some() {
        if original == OriginalHeaders::Refuse {
            return Err(ReadFail::Answer(400, UNTRUSTED_ORIGINAL));
        }
        if let Some(m) = original_method {
            method = m;
        }
        if let Some(u) = original_uri {
            uri = u;
        }
    }
    Ok(Request {
        method,
        uri,
        authorization,
        authorization_repeated: repeated,
        host,
        fetch_site,
    })
}

fn text(v: &[u8]) -> std::result::Result<String, ReadFail> {
    std::str::from_utf8(v)
        .map(|s| s.trim().to_string())
        .map_err(|_| ReadFail::Answer(400, "a header is not UTF-8"))
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// After an error answer, reads and drops what the client still sends (a
/// bounded amount, briefly), so closing does not reset the connection
/// before the client has read the answer.
pub(crate) fn linger(stream: &mut TcpStream) {
    let until = Instant::now() + Duration::from_secs(1);
    let mut scratch = [0u8; 8192];
    let mut left: usize = 1 << 20;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    while left > 0 && Instant::now() < until {
        match stream.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

pub(crate) fn write_response(
    mut stream: &TcpStream,
    resp: &Response,
    head_only: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n",
        resp.status,
        status_text(resp.status),
        resp.content_type,
        resp.body.len()
    );
    for (name, value) in &resp.headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(&resp.body);
    }
    stream.write_all(out.as_bytes())?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Sends `raw` to a fresh connection and reads it back with `limits`.
    fn read_raw(raw: &[u8], limits: &Limits) -> std::result::Result<(Request, bool), ReadFail> {
        read_raw_with(raw, limits, OriginalHeaders::Trust)
    }

    fn read_raw_with(
        raw: &[u8],
        limits: &Limits,
        original: OriginalHeaders,
    ) -> std::result::Result<(Request, bool), ReadFail> {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let raw = raw.to_vec();
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).expect("connect");
            let _ = s.write_all(&raw);
            // Keep the connection open until the server is done reading.
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        });
        let (mut stream, _) = listener.accept().expect("accept");
        let got = read_request(&mut stream, limits, original);
        drop(stream);
        client.join().expect("client");
        got
    }

    fn status(r: std::result::Result<(Request, bool), ReadFail>) -> u16 {
        match r {
            Ok(_) => 200,
            Err(ReadFail::Gone) => 0,
            Err(ReadFail::Answer(s, _)) => s,
        }
    }

    #[test]
    fn reads_requests_and_original_headers() {
        let raw = b"GET /_auth HTTP/1.1\r\nHost: x\r\nAuthorization: abc\r\n\
            X-Original-Method: POST\r\nX-Original-URI: /api/me?ts=1\r\n\
            Content-Length: 3\r\n\r\nxyz";
        let (req, head) = read_raw(raw, &Limits::default()).ok().expect("request");
        assert_eq!(req.method, "POST");
        assert_eq!(req.uri, "/api/me?ts=1");
        assert_eq!(req.authorization.as_deref(), Some(&b"abc"[..]));
        assert!(!req.authorization_repeated);
        assert_eq!(req.host.as_deref(), Some("x"));
        assert!(!head);
        // The token never shows in Debug.
        assert!(!format!("{req:?}").contains("abc"), "{req:?}");
    }

    #[test]
    fn original_headers_come_once_and_only_from_a_trusted_peer() {
        let limits = Limits::default();
        let twice_uri = b"GET /_auth HTTP/1.1\r\nX-Original-URI: /a?ts=1\r\n\
            X-Original-URI: /b?ts=1\r\n\r\n";
        assert_eq!(status(read_raw(twice_uri, &limits)), 400);
        let twice_method = b"GET /_auth HTTP/1.1\r\nX-Original-Method: GET\r\n\
            x-original-method: POST\r\n\r\n";
        assert_eq!(status(read_raw(twice_method, &limits)), 400);
        let twice_host = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
        assert_eq!(status(read_raw(twice_host, &limits)), 400);
        let once = b"GET /_auth HTTP/1.1\r\nX-Original-URI: /a?ts=1\r\n\r\n";
        let refused = read_raw_with(once, &limits, OriginalHeaders::Refuse);
        assert!(
            matches!(refused, Err(ReadFail::Answer(400, m)) if m == UNTRUSTED_ORIGINAL),
            "not refused"
        );
        let plain = b"GET /a?ts=1 HTTP/1.1\r\n\r\n";
        let (req, _) = read_raw_with(plain, &limits, OriginalHeaders::Refuse)
            .ok()
            .expect("a plain request from anywhere");
        assert_eq!(req.uri, "/a?ts=1");
    }

    #[test]
    fn bounds_heads_bodies_and_refuses_chunked() {
        let limits = Limits {
            max_head: 1024,
            max_body: 10,
            ..Limits::default()
        };
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
        assert_eq!(status(read_raw(big.as_bytes(), &limits)), 431);
        let body = b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(status(read_raw(body, &limits)), 413);
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(status(read_raw(chunked, &limits)), 411);
        let two = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(status(read_raw(two, &limits)), 400);
        assert_eq!(status(read_raw(b"\x16\x03\x01\r\n\r\n", &limits)), 400);
    }

    #[test]
    fn a_slow_client_meets_its_deadline() {
        let limits = Limits {
            request_deadline: Duration::from_millis(200),
            ..Limits::default()
        };
        assert_eq!(status(read_raw(b"GET / HTTP/1.1\r\nX: ", &limits)), 408);
    }
}
