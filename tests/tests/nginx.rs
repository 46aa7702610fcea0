//! A real deployment: nginx in front of a stub upstream, with `auth_request`
//! pointed at `olm-verify --serve`. Requests signed with
//! `olm-sign --format curl | curl -K -` get through; unsigned, replayed,
//! stale and unlisted ones get 401 and never reach the upstream.
//!
//! The nginx configuration here is the README's snippet, plus what a
//! throwaway instance needs (prefix, pid, temp paths). Without nginx the test
//! says SKIPPED loudly; `.ci/run` installs it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use olm_tests::Sandbox;

fn find_nginx() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// A stub upstream on 127.0.0.1: answers every request `200` with the
/// `X-Olm-Key` header it received, and counts requests.
fn stub_upstream() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let text = String::from_utf8_lossy(&head);
            let key = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .starts_with("x-olm-key:")
                        .then(|| l[10..].trim().to_string())
                })
                .unwrap_or_default();
            let body = format!("upstream ok {key}");
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx in the foreground, stopped when dropped.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(nginx: &Path, dir: &Path, port: u16, verify_port: u16, upstream: u16) -> Nginx {
    for sub in ["logs", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    // As root, nginx's workers would switch to `nobody`, who cannot enter
    // the test's private temp folder; keep them as root for this test.
    let user = if root { "user root;" } else { "" };
    let d = dir.display();
    let conf = format!(
        r#"{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;

    server {{
        listen 127.0.0.1:{port};

        # --- the README's snippet ---
        location / {{
            auth_request /_olm_auth;
            auth_request_set $olm_key $upstream_http_x_olm_key;
            proxy_set_header X-Olm-Key $olm_key;
            error_page 401 = @olm_unauthorized;
            proxy_pass http://127.0.0.1:{upstream};
        }}
        location = /_olm_auth {{
            internal;
            proxy_pass http://127.0.0.1:{verify_port};
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}
        location @olm_unauthorized {{
            default_type application/json;
            return 401 '{{"error":"unauthorized"}}';
        }}
        # --- end ---
    }}
}}
"#
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(nginx)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .args(["-e", "stderr", "-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("logs/stderr.log")).unwrap())
        .spawn()
        .expect("start nginx");
    let mut guard = Nginx(child);
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return guard;
        }
        if let Ok(Some(status)) = guard.0.try_wait() {
            panic!(
                "nginx exited ({status}): {}",
                std::fs::read_to_string(dir.join("logs/stderr.log")).unwrap_or_default()
            );
        }
        assert!(Instant::now() < until, "nginx did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn nginx_auth_request_in_front_of_an_upstream() {
    let Some(nginx) = find_nginx() else {
        olm_tests::skipped!(
            "SKIPPED nginx_auth_request_in_front_of_an_upstream: nginx is not installed \
             (apt-get install nginx-light; .ci/run does)"
        );
        return;
    };
    if Command::new("curl").arg("--version").output().is_err() {
        olm_tests::skipped!(
            "SKIPPED nginx_auth_request_in_front_of_an_upstream: curl is not installed \
             (apt-get install curl; .ci/run does)"
        );
        return;
    }
    let sandbox = Sandbox::new();
    let k1 = sandbox.vector_key("k1");
    let k2 = sandbox.vector_key("k2");
    let ak = sandbox.path("authorized_keys");
    let line = sandbox.run("olm-keygen", ["-y", "-k", k1.to_str().unwrap()], b"");
    std::fs::write(
        &ak,
        format!("{} allowed\n", line.assert_code(0).text().trim()),
    )
    .unwrap();
    let verifier = sandbox.serve(&["--authorized-keys", ak.to_str().unwrap()]);
    let verify_port: u16 = verifier.addr.rsplit(':').next().unwrap().parse().unwrap();
    let (upstream, hits) = stub_upstream();
    let port = free_port();
    let dir = sandbox.path("nginx");
    let _nginx = start_nginx(&nginx, &dir, port, verify_port, upstream);

    let base = format!("http://127.0.0.1:{port}");
    let k1 = k1.to_str().unwrap();
    let k2 = k2.to_str().unwrap();
    let curl = "curl -sS --noproxy '*' -K - -w ' %{http_code}\\n'";
    let script = format!(
        r#"
set -e
# 1. signed: through to the upstream, which learns the signer's fingerprint
olm-sign -k {k1} -X GET /api/tags --base {base} --format curl | {curl}
# 2. a query, re-encoded and sorted as Ollama does
olm-sign -k {k1} -X POST '/api/chat?b=2&a=1' --base {base} --format curl | {curl}
# 3. unsigned
curl -sS --noproxy '*' -w ' %{{http_code}}\n' "{base}/api/tags?ts=$(date +%s)"
# 4. the same signed request twice: the second is a replay
cfg=$(olm-sign -k {k1} -X GET /api/ps --base {base} --format curl)
printf '%s\n' "$cfg" | {curl}
printf '%s\n' "$cfg" | {curl}
# 5. stale: signed an hour ago
olm-sign -k {k1} -X GET /api/tags --ts $(( $(date +%s) - 3600 )) --base {base} --format curl | {curl}
# 6. a key that is not listed
olm-sign -k {k2} -X GET /api/tags --base {base} --format curl | {curl}
# 7. Bearer, as some Ollama components send it
olm-sign -k {k1} -X GET /api/version --bearer --base {base} --format curl | {curl}
"#
    );
    let out = sandbox.sh(&script);
    let nginx_log = std::fs::read_to_string(dir.join("logs/stderr.log")).unwrap_or_default();
    out.assert_code(0);
    let lines = out.lines();
    let statuses: Vec<&str> = lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["200", "200", "401", "200", "401", "401", "401", "200"],
        "responses:\n{}\nverifier log:\n{}\nnginx log:\n{nginx_log}",
        out.text(),
        verifier.log()
    );
    // The upstream saw only the four signed, listed, fresh requests, each
    // with the signer's fingerprint.
    let fp = {
        let k = libauth::PrivateKey::from_openssh(&std::fs::read(k1).unwrap()).unwrap();
        k.public_key().fingerprint()
    };
    assert!(
        lines[0].starts_with(&format!("upstream ok {fp}")),
        "{}",
        lines[0]
    );
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    assert!(
        lines[2].contains(r#"{"error":"unauthorized"}"#),
        "{}",
        lines[2]
    );
    let log = verifier.log();
    for needle in [
        "replayed token",
        "no Authorization header",
        "s old (max skew 300 s)",
        "is not in",
    ] {
        assert!(
            log.contains(needle),
            "verifier log lacks {needle:?}:\n{log}"
        );
    }
}
