//! Small HTTP servers on 127.0.0.1 that misbehave on purpose: the failure
//! modes of ollama.com (a 500, a dropped connection, no answer, a redirect,
//! an oversized or slow body), and a fake of the *local* Ollama server.
//!
//! The well-behaved ollama.com stand-in is `olm-verify --stand-in`; these
//! are only for what goes wrong. Every server records the requests it got.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A request as the fake server received it.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`, `DELETE`, …
    pub method: String,
    /// The request-URI as sent (path and query).
    pub uri: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake server does with every request.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answers with this status and JSON body.
    Answer(u16, String),
    /// Reads the request, then closes the connection without a word.
    Drop,
    /// Reads the request and never answers (holds the connection open).
    Silent,
    /// Answers `302` with this `Location`.
    Redirect(String),
    /// Answers `200` with a body of this many bytes.
    Huge(usize),
    /// Answers `200` announcing 1000 bytes, then sends one byte a second.
    SlowBody,
    /// Writes a plain-HTTP answer as soon as a client connects, without
    /// reading anything (what a TLS client meets at a plain-HTTP port).
    Plaintext,
}

/// A fake server listening on `127.0.0.1:<free port>` until the test ends.
pub struct FakeServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeServer {
    /// Starts a server that does `behaviour` with every request.
    pub fn start(behaviour: Behaviour) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let behaviour = behaviour.clone();
                let seen = Arc::clone(&seen);
                thread::spawn(move || serve(stream, &behaviour, &seen));
            }
        });
        FakeServer { addr, requests }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn serve(mut stream: TcpStream, behaviour: &Behaviour, seen: &Mutex<Vec<Request>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if let Behaviour::Plaintext = behaviour {
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        let _ = stream.flush();
        thread::sleep(Duration::from_secs(1));
        return;
    }
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    seen.lock().expect("lock").push(request);
    match behaviour {
        Behaviour::Answer(status, body) => {
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Behaviour::Drop => {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        Behaviour::Silent => thread::sleep(Duration::from_secs(30)),
        Behaviour::Redirect(location) => {
            let _ = write!(
                stream,
                "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        Behaviour::Huge(n) => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
            );
            let chunk = vec![b' '; 64 * 1024];
            let mut left = *n;
            while left > 0 {
                let k = left.min(chunk.len());
                if stream.write_all(&chunk[..k]).is_err() {
                    return;
                }
                left -= k;
            }
        }
        Behaviour::Plaintext => {}
        Behaviour::SlowBody => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
            );
            for _ in 0..30 {
                if stream.write_all(b" ").is_err() {
                    return;
                }
                thread::sleep(Duration::from_secs(1));
            }
        }
    }
    let _ = stream.flush();
}

/// Reads a request head (and ignores any body); `None` if the client left.
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 64 * 1024 || stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let uri = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length.min(1 << 20)];
    stream.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        uri,
        headers,
    })
}
