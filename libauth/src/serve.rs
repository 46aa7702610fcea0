//! `olm-verify --serve`: an HTTP server that answers whether a request is
//! signed by a listed key, for nginx's `auth_request` (or anything that asks
//! the same way), and optionally stands in for ollama.com ([`crate::standin`]).
//!
//! Every request gets `200` when its `Authorization` verifies against
//! `METHOD,<request-URI>` (from `X-Original-Method` / `X-Original-URI` when
//! present: believed from loopback peers only, unless
//! [`Config::trust_original_headers`]; sent twice, `400`), the signer is
//! listed and `ts` is fresh; otherwise `401` with
//! `{"error":"unauthorized"}`. A token already accepted within the skew
//! window is refused (replay). The authorized keys are re-read when the file
//! changes.
//!
//! The HTTP layer ([`crate::http`]) is small and bounded: request heads over
//! [`Limits::max_head`] get `431`, bodies over [`Limits::max_body`] `413`;
//! each connection has its own thread (at most [`Limits::max_connections`])
//! and a deadline, so a slow client holds only its own thread.
//!
//! Logs: one line per request on stderr (peer, method, URI, status, key
//! fingerprint, reason); never a token. This module and [`crate::cli`] are
//! the only parts of libauth that write to stderr.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::authorized_keys::{is_private_key_error, AuthorizedKeys, FileStamp};
use crate::base::BaseUrl;
use crate::error::{Error, Result};
use crate::fsutil::{self, Replace};
use crate::http::{linger, read_request, write_response, OriginalHeaders, ReadFail};

pub use crate::http::{Limits, Request, Response};
use crate::key::{truncate, PublicKey};
use crate::standin;
use crate::verify::{self, Reason, ReplayCache, SignedRequest};

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
    /// Believe `X-Original-Method` / `X-Original-URI` from any peer. By
    /// default they are believed only from loopback peers (nginx on this
    /// machine); from others a request carrying them gets `400`.
    pub trust_original_headers: bool,
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
    /// Whether [`Keys::store`] may write the file: false while it exists
    /// but could not be read (a private key given by mistake, a file
    /// others can write…), so a stand-in never overwrites what it cannot read.
    writable: bool,
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
        match AuthorizedKeys::load_with_text(path) {
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
                self.writable = true;
            }
            Err(e) => {
                let why = if is_private_key_error(&e) {
                    format!("{} {e} (use its .pub file)", self.shown)
                } else {
                    format!("cannot read {}: {e}", self.shown)
                };
                log(&format!(
                    "{why}; refusing every request until it can be read"
                ));
                self.keys = AuthorizedKeys::default();
                self.text.clear();
                // A file that is gone may be made anew; one that is there
                // but unreadable is left alone.
                self.writable = matches!(
                    e,
                    Error::Io {
                        kind: io::ErrorKind::NotFound,
                        ..
                    }
                );
            }
        }
    }

    /// Replaces the list with `text`: written atomically (mode 0600) when
    /// there is a file, then re-read.
    /// Refused while the file is there but cannot be read.
    pub fn store(&mut self, text: String) -> Result<()> {
        if let Some(path) = &self.path {
            if !self.writable {
                return Err(Error::Io {
                    kind: io::ErrorKind::PermissionDenied,
                    message: "it cannot be read as an authorized_keys file, so it is left alone"
                        .into(),
                });
            }
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
    /// The base URL clients reach this server at (`http://HOST:PORT`);
    /// `None` when it listens beyond loopback (no `http` base URL then).
    pub base: Option<BaseUrl>,
    /// The port it listens on (stand-in endpoints check `Host` against it).
    pub port: u16,
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

    /// The full check of a signed request: a readable token by a listed
    /// signer (looked up first, so an unlisted key costs no signature
    /// check), its signature over the request, a fresh `ts` and, with
    /// [`Replays::Refuse`], not a token already accepted. Returns the token, the signer's authorized_keys
    /// comment, or the reason and (when the token could be read) its key.
    pub fn check(
        &self,
        req: &Request,
        replays: Replays,
    ) -> std::result::Result<(SignedRequest, String), Refusal> {
        if req.authorization_repeated {
            return Err(Box::new((
                Reason::MalformedToken("more than one Authorization header".into()),
                None,
            )));
        }
        let auth = req
            .authorization
            .as_deref()
            .ok_or_else(|| Box::new((Reason::Missing, None)))?;
        // The cheap check first: an unlisted key is refused without
        // verifying anything (a signature proves nothing for it anyway).
        let token = verify::parse_token(auth).map_err(|r| Box::new((r, None)))?;
        let key = *token.public_key();
        let now = verify::now();
        let comment = {
            let keys = self.keys();
            let entry = verify::authorize(&keys.keys, &keys.shown, &key, now)
                .map_err(|r| Box::new((r, Some(key))))?;
            entry.comment.clone()
        };
        let signed = verify::verify_request(auth, &req.method, &req.uri, now, self.max_skew)
            .map_err(|r| Box::new((r, Some(key))))?;
        if replays == Replays::Refuse {
            self.replay
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .check_and_remember(signed.token.signature(), signed.ts, now)
                .map_err(|r| Box::new((r, Some(key))))?;
        }
        Ok((signed, comment))
    }
}

/// Whether [`State::check`] refuses a token it has already accepted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Replays {
    /// The verifier's rule: a token is good once within the skew window.
    Refuse,
    /// ollama.com's rule, kept by the stand-in's endpoints: Ollama signs
    /// whole seconds, so the same call twice in one second repeats a token.
    Allow,
}

/// The verifier's answer to a request that is not a stand-in endpoint.
pub fn verify_only(state: &State, req: &Request) -> Response {
    match state.check(req, Replays::Refuse) {
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
    trust_original_headers: bool,
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
        if config.stand_in && !local.ip().is_loopback() {
            log(&format!(
                "warning: the stand-in listens on {local}, beyond this machine: \
                 anyone who reaches it can connect a key (/connect has no sign-in)"
            ));
        }
        let url = format!("http://{local}");
        let mut keys = Keys {
            path,
            shown,
            keys: AuthorizedKeys::default(),
            text: String::new(),
            stamp: None,
            loaded: false,
            writable: false,
        };
        keys.refresh();
        if config.stand_in && keys.path.is_some() && !keys.keys.entries().is_empty() {
            log(&format!(
                "warning: {} already lists {} key(s); the stand-in adds a key for anyone \
                 who can reach /connect: never give it the file of a real --serve deployment",
                keys.shown,
                keys.keys.entries().len()
            ));
        }
        let state = Arc::new(State {
            base: BaseUrl::parse(&url).ok(),
            port: local.port(),
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
            trust_original_headers: config.trust_original_headers,
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
            let trust = self.trust_original_headers;
            let spawned = thread::Builder::new()
                .name("olm-verify-conn".into())
                .spawn(move || {
                    let _guard = guard;
                    serve_connection(stream, &state, &limits, trust);
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
        let stopper = self.stop_on_signal()?;
        self.run(&stopper)
    }

    /// A [`Stopper`] triggered by SIGTERM or SIGINT from now on. Call it
    /// before telling anyone the server is up (the URL line), so a signal
    /// sent right after is not lost to the default action; then
    /// [`Server::run`] with it.
    pub fn stop_on_signal(&self) -> Result<Stopper> {
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
        Ok(stopper)
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

/// `s` with anything but visible ASCII replaced by `?`: a method comes
/// from a header and must not break the log line.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// Whether `ip` is this machine (including IPv4 loopback mapped into IPv6).
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Writes one log line on stderr (errors ignored: logging must not stop
/// the server).
pub fn log(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "olm-verify: {line}");
}

fn serve_connection(mut stream: TcpStream, state: &State, limits: &Limits, trust: bool) {
    let peer_addr = stream.peer_addr().ok();
    let peer = peer_addr
        .map(|a| a.to_string())
        .unwrap_or_else(|| "?".into());
    // nginx's auth_request sets X-Original-*; only a proxy on this machine
    // (or any peer, when told so) is believed to.
    let original = if trust || peer_addr.is_some_and(|a| is_loopback(a.ip())) {
        OriginalHeaders::Trust
    } else {
        OriginalHeaders::Refuse
    };
    let _ = stream.set_write_timeout(Some(limits.io_timeout));
    let (req, head_only) = match read_request(&mut stream, limits, original) {
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
        truncate(&printable(&req.method), 16),
        truncate(&req.uri, 200),
        resp.status,
        resp.fingerprint.as_deref().unwrap_or("-"),
        resp.note
    ));
    let _ = write_response(&stream, &resp, head_only);
}
