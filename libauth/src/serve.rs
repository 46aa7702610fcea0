//! `olm-verify --serve`: an HTTP server that answers whether a request is
//! signed by a listed key, for nginx's `auth_request` (or anything that asks
//! the same way), and optionally stands in for ollama.com ([`crate::standin`]).
//!
//! Every request gets `200` when its `Authorization` verifies against
//! `METHOD,<request-URI>` (from `X-Original-Method` / `X-Original-URI` when
//! present), the signer is listed and `ts` is fresh; otherwise `401` with
//! `{"error":"unauthorized"}`. A token already accepted within the skew
//! window is refused (replay). The authorized keys are re-read when the file
//! changes.
//!
//! The HTTP layer is deliberately small: `httparse` (hyper's parser) reads
//! the request head from a bounded buffer, each connection has its own thread
//! (at most [`Limits::max_connections`]), a deadline for its head and a
//! timeout on every read and write, and every response closes the
//! connection. So a huge header gets `431`, a large body `413`, and a slow
//! client holds only its own thread until its deadline. (tiny_http was
//! considered: it buffers header lines without any bound and spawns threads
//! without limit.)
//!
//! Logs: one line per request on stderr (peer, method, URI, status, key
//! fingerprint, reason); never a token. This module and [`crate::cli`] are
//! the only parts of libauth that write to stderr.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::authorized_keys::{AuthorizedKeys, FileStamp};
use crate::error::{Error, Result};
use crate::fsutil::{self, Replace};
use crate::key::{truncate, PublicKey};
use crate::standin;
use crate::verify::{self, Reason, ReplayCache, SignedRequest};

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

/// What `olm-verify --serve` was asked to do.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on, e.g. `127.0.0.1:0`.
    pub addr: String,
    /// The authorized_keys file; required unless `stand_in`, where keys are
    /// kept in memory when it is `None`.
    pub authorized_keys: Option<PathBuf>,
    /// Also serve ollama.com's endpoints ([`crate::standin`]).
    pub stand_in: bool,
    /// Allowed distance of `ts` from the clock, in seconds.
    pub max_skew: u64,
    /// Bounds per client.
    pub limits: Limits,
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

/// The authorized keys as last read, and where from.
#[derive(Debug)]
pub struct Keys {
    /// The file; `None` for an in-memory stand-in.
    pub path: Option<PathBuf>,
    /// The file as messages show it.
    pub shown: String,
    /// The parsed keys.
    pub keys: AuthorizedKeys,
    /// The text they were parsed from (for in-memory edits).
    pub text: String,
    stamp: Option<FileStamp>,
    loaded: bool,
}

impl Keys {
    /// Re-reads the file when it changed since the last read. An unreadable
    /// file counts as empty (every request is refused) and is logged once.
    pub fn refresh(&mut self) {
        let Some(path) = &self.path else { return };
        let stamp = FileStamp::of(path);
        if self.loaded && stamp == self.stamp {
            return;
        }
        self.stamp = stamp;
        self.loaded = true;
        match AuthorizedKeys::load(path).and_then(|k| {
            let text = std::fs::read_to_string(path)?;
            Ok((k, text))
        }) {
            Ok((keys, text)) => {
                log(&format!(
                    "loaded {} key(s) from {}",
                    keys.entries().len(),
                    self.shown
                ));
                for bad in keys.bad_lines() {
                    log(&format!(
                        "warning: {} line {}: {}",
                        self.shown, bad.line, bad.why
                    ));
                }
                self.keys = keys;
                self.text = text;
            }
            Err(e) => {
                log(&format!(
                    "cannot read {}: {e}; refusing every request until it can be read",
                    self.shown
                ));
                self.keys = AuthorizedKeys::default();
                self.text.clear();
            }
        }
    }

    /// Replaces the list with `text`: written atomically (mode 0600) when
    /// there is a file, then re-read.
    pub fn store(&mut self, text: String) -> Result<()> {
        if let Some(path) = &self.path {
            fsutil::write_atomic(path, text.as_bytes(), 0o600, Replace::Allow)?;
            self.stamp = FileStamp::of(path);
        }
        self.keys = AuthorizedKeys::parse(&text);
        self.text = text;
        Ok(())
    }
}

/// Why [`State::check`] refused, and the token's key when it could be read.
pub type Refusal = Box<(Reason, Option<PublicKey>)>;

/// What every connection shares.
#[derive(Debug)]
pub struct State {
    /// The base URL clients reach this server at (`http://HOST:PORT`).
    pub base: String,
    /// Allowed skew, seconds.
    pub max_skew: u64,
    /// Whether ollama.com's endpoints are served.
    pub stand_in: bool,
    keys: Mutex<Keys>,
    replay: Mutex<ReplayCache>,
}

impl State {
    /// The authorized keys, re-read if the file changed.
    pub fn keys(&self) -> MutexGuard<'_, Keys> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.refresh();
        keys
    }

    /// The full check of a signed request: signature over the request,
    /// fresh `ts`, listed signer, not a replay. Returns the token, the
    /// signer's authorized_keys comment, or the reason and (when the token
    /// could be read) its key.
    pub fn check(
        &self,
        authorization: Option<&[u8]>,
        method: &str,
        uri: &str,
    ) -> std::result::Result<(SignedRequest, String), Refusal> {
        let auth = authorization.ok_or_else(|| Box::new((Reason::Missing, None)))?;
        let now = verify::now();
        let signed =
            verify::verify_request(auth, method, uri, now, self.max_skew).map_err(|r| {
                let key = verify::parse_token(auth).ok().map(|t| *t.public_key());
                Box::new((r, key))
            })?;
        let key = *signed.token.public_key();
        let comment = {
            let keys = self.keys();
            let entry = verify::authorize(&keys.keys, &keys.shown, &key)
                .map_err(|r| Box::new((r, Some(key))))?;
            entry.comment.clone()
        };
        self.replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check_and_remember(signed.token.signature(), signed.ts, now)
            .map_err(|r| Box::new((r, Some(key))))?;
        Ok((signed, comment))
    }
}

/// One parsed request, as the handlers see it.
#[derive(Debug)]
pub struct Request {
    /// The method to verify (`X-Original-Method` when present).
    pub method: String,
    /// The request-URI to verify (`X-Original-URI` when present).
    pub uri: String,
    /// The `Authorization` value, when exactly one was sent.
    pub authorization: Option<Vec<u8>>,
    /// More than one `Authorization` header was sent.
    pub authorization_repeated: bool,
}

/// The verifier's answer to a request that is not a stand-in endpoint.
pub fn verify_only(state: &State, req: &Request) -> Response {
    if req.authorization_repeated {
        return Response::unauthorized(&Reason::MalformedToken(
            "more than one Authorization header".into(),
        ));
    }
    match state.check(req.authorization.as_deref(), &req.method, &req.uri) {
        Ok((signed, _)) => {
            let key = *signed.token.public_key();
            let mut r = Response::json(200, "{}".into(), "ok").signer(Some(&key));
            r.headers.push(("X-Olm-Key", key.fingerprint()));
            r
        }
        Err(refusal) => {
            let (reason, key) = *refusal;
            Response::unauthorized(&reason).signer(key.as_ref())
        }
    }
}

/// A bound server, not yet answering.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
    limits: Limits,
    url: String,
}

impl Server {
    /// Checks the configuration, reads the keys (creating the file for a
    /// stand-in) and binds the address.
    pub fn bind(config: &Config) -> Result<Server> {
        let path = config.authorized_keys.clone();
        if path.is_none() && !config.stand_in {
            return Err(Error::Request(
                "--serve needs --authorized-keys FILE (only listed keys get in)".into(),
            ));
        }
        let shown = match &path {
            Some(p) => format!("{:?}", p.display().to_string()),
            None => "the stand-in's key list".to_string(),
        };
        let named = |e: Error, what: &str| Error::Io {
            kind: match &e {
                Error::Io { kind, .. } => *kind,
                _ => io::ErrorKind::InvalidData,
            },
            message: format!("{what} {shown}: {e}"),
        };
        if let (Some(p), true) = (&path, config.stand_in) {
            match fsutil::write_atomic(p, b"", 0o600, Replace::Never) {
                Ok(()) | Err(Error::Exists) => {}
                Err(e) => return Err(named(e, "cannot create")),
            }
        }
        if let Some(p) = &path {
            // Fail now, at start, when the file cannot be read at all.
            AuthorizedKeys::load(p).map_err(|e| named(e, "cannot read"))?;
        }
        let listener = TcpListener::bind(&config.addr).map_err(|e| Error::Io {
            kind: e.kind(),
            message: format!("cannot listen on {}: {e}", config.addr),
        })?;
        let local = listener.local_addr()?;
        let url = format!("http://{local}");
        let mut keys = Keys {
            path,
            shown,
            keys: AuthorizedKeys::default(),
            text: String::new(),
            stamp: None,
            loaded: false,
        };
        keys.refresh();
        let state = Arc::new(State {
            base: url.clone(),
            max_skew: config.max_skew,
            stand_in: config.stand_in,
            keys: Mutex::new(keys),
            replay: Mutex::new(ReplayCache::new(
                config.max_skew,
                ReplayCache::DEFAULT_CAPACITY,
            )),
        });
        Ok(Server {
            listener,
            state,
            limits: config.limits.clone(),
            url,
        })
    }

    /// `http://IP:PORT`, the address the server listens on.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A handle that stops [`Server::run`] from another thread.
    pub fn stopper(&self) -> Result<Stopper> {
        let mut addr = self.listener.local_addr()?;
        // Connecting to 0.0.0.0 or [::] means the local host.
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
            IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
            _ => {}
        }
        Ok(Stopper {
            flag: Arc::new(AtomicBool::new(false)),
            addr,
        })
    }

    /// Answers requests until `stopper` is triggered, then waits (a few
    /// seconds at most) for the requests under way.
    pub fn run(self, stopper: &Stopper) -> Result<()> {
        let active = Arc::new(AtomicUsize::new(0));
        for conn in self.listener.incoming() {
            if stopper.flag.load(Ordering::SeqCst) {
                break;
            }
            let stream = match conn {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    log(&format!("accept failed: {e}"));
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            if active.load(Ordering::SeqCst) >= self.limits.max_connections {
                let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
                let _ = write_response(
                    &stream,
                    &Response::error(503, "too many connections"),
                    false,
                );
                continue;
            }
            active.fetch_add(1, Ordering::SeqCst);
            let guard = ActiveGuard(Arc::clone(&active));
            let state = Arc::clone(&self.state);
            let limits = self.limits.clone();
            let spawned = thread::Builder::new()
                .name("olm-verify-conn".into())
                .spawn(move || {
                    let _guard = guard;
                    serve_connection(stream, &state, &limits);
                });
            if let Err(e) = spawned {
                log(&format!("cannot start a thread: {e}"));
            }
        }
        log("shutting down");
        let until = Instant::now() + Duration::from_secs(5);
        while active.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// [`Server::run`] until SIGTERM or SIGINT.
    pub fn run_until_signal(self) -> Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stopper = self.stopper()?;
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
        let waker = stopper.clone();
        thread::Builder::new()
            .name("olm-verify-signals".into())
            .spawn(move || {
                if signals.forever().next().is_some() {
                    waker.stop();
                }
            })?;
        self.run(&stopper)
    }
}

/// Stops a running [`Server`].
#[derive(Clone, Debug)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl Stopper {
    /// Asks the server to stop accepting and return.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Writes one log line on stderr (errors ignored: logging must not stop
/// the server).
pub fn log(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "olm-verify: {line}");
}

/// How reading a request ended, when it did not give one.
enum ReadFail {
    /// The client went away or sent nothing: no answer.
    Gone,
    /// Answer with this status and message, then close.
    Answer(u16, &'static str),
}

fn serve_connection(mut stream: TcpStream, state: &State, limits: &Limits) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let _ = stream.set_write_timeout(Some(limits.io_timeout));
    let (req, head_only) = match read_request(&mut stream, limits) {
        Ok(r) => r,
        Err(ReadFail::Gone) => return,
        Err(ReadFail::Answer(status, message)) => {
            let resp = Response::error(status, message);
            log(&format!("{peer} - - {status} - {message}"));
            if write_response(&stream, &resp, false).is_ok() {
                linger(&mut stream);
            }
            return;
        }
    };
    let resp = if state.stand_in {
        standin::route(state, &req)
    } else {
        verify_only(state, &req)
    };
    log(&format!(
        "{peer} {} {:?} {} {} {}",
        truncate(&req.method, 16),
        truncate(&req.uri, 200),
        resp.status,
        resp.fingerprint.as_deref().unwrap_or("-"),
        resp.note
    ));
    let _ = write_response(&stream, &resp, head_only);
}

/// Reads one request head (and drains a small body) within the limits.
/// Returns the request and whether it was a HEAD request.
fn read_request(
    stream: &mut TcpStream,
    limits: &Limits,
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
                let req = extract(&parsed)?;
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

fn extract(req: &httparse::Request<'_, '_>) -> std::result::Result<Request, ReadFail> {
    let mut method = req.method.unwrap_or("").to_string();
    let mut uri = req.path.unwrap_or("").to_string();
    let mut authorization = None;
    let mut repeated = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("authorization") {
            repeated |= authorization.is_some();
            authorization = Some(h.value.to_vec());
        } else if h.name.eq_ignore_ascii_case("x-original-method") {
            method = text(h.value)?;
        } else if h.name.eq_ignore_ascii_case("x-original-uri") {
            uri = text(h.value)?;
        }
    }
    Ok(Request {
        method,
        uri,
        authorization,
        authorization_repeated: repeated,
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
        404 => "Not Found",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// After an error answer, reads and drops what the client still sends (a
/// bounded amount, briefly), so closing does not reset the connection
/// before the client has read the answer.
fn linger(stream: &mut TcpStream) {
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

fn write_response(mut stream: &TcpStream, resp: &Response, head_only: bool) -> io::Result<()> {
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
