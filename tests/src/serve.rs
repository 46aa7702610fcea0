//! Running `olm-verify --serve` in tests, and a raw HTTP client that can send
//! anything (garbage included) to 127.0.0.1.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Sandbox;

/// A running `olm-verify --serve`, stopped (SIGKILL) when dropped.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: PathBuf,
}

impl Sandbox {
    /// Starts `olm-verify --serve 127.0.0.1:0 ARGS…` and waits for its URL
    /// line. Its stderr (the request log) goes to a file, see [`Served::log`].
    pub fn serve(&self, args: &[&str]) -> Served {
        let log = self.path(&format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut c: Command = self.cmd("olm-verify");
        c.args(["--serve", "127.0.0.1:0"]).args(args);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).expect("log file"));
        let mut child = c.spawn().expect("spawn olm-verify --serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read URL line");
        let url = line.trim().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "no URL line from olm-verify --serve; stderr: {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        let addr = url.trim_start_matches("http://").to_string();
        Served {
            child,
            url,
            addr,
            log,
        }
    }
}

impl Served {
    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (10 s at most) for the exit code.
    pub fn terminate(mut self) -> i32 {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code().unwrap_or(-1);
            }
            assert!(Instant::now() < until, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a raw request; see [`http`].
    pub fn send(&self, request: &[u8]) -> (u16, String) {
        http(&self.addr, request)
    }

    /// `METHOD URI` with the given extra header lines (each without CRLF).
    pub fn request(&self, method: &str, uri: &str, headers: &[String]) -> (u16, String) {
        let mut raw = format!("{method} {uri} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for h in headers {
            raw.push_str(h);
            raw.push_str("\r\n");
        }
        raw.push_str("\r\n");
        self.send(raw.as_bytes())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `request` to `addr`, reads the whole response (the server closes
/// the connection), and returns the status and body. A connection closed
/// without a response gives status 0.
pub fn http(addr: &str, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    // The server may answer (and close) before reading everything we send.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

/// Status and body of a raw HTTP response (`0` when there is none).
pub fn parse_response(buf: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(buf);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
