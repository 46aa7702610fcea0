//! olm-revoke and olm-whoami when things go wrong: every failure of
//! ollama.com (401, 500, a dropped connection, no answer, a redirect, an
//! oversized or slow body, nothing listening, a non-loopback http base)
//! leaves the local key byte-for-byte as it was and exits 1 with a message
//! naming the host. Plus `--server`, `--local-only` and `--keep-local`.
//!
//! Every server here is a fake on 127.0.0.1; nothing else is contacted.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;

use libauth::{ApiRequest, Token};
use olm_tests::fake::{closed_port, Behaviour, FakeServer};
use olm_tests::{vectors_dir, Out, Sandbox};

/// The two key files and their modes, to compare before and after.
#[derive(Debug, PartialEq, Eq)]
struct KeyFiles {
    private: Vec<u8>,
    private_mode: u32,
    public: Vec<u8>,
    public_mode: u32,
}

fn snapshot(sb: &Sandbox) -> KeyFiles {
    let key = sb.ollama_key();
    let public = key.with_extension("pub");
    let mode = |p: &std::path::Path| fs::metadata(p).expect("meta").permissions().mode() & 0o7777;
    KeyFiles {
        private: fs::read(&key).expect("key file"),
        private_mode: mode(&key),
        public: fs::read(&public).expect(".pub file"),
        public_mode: mode(&public),
    }
}

/// A sandbox whose `$HOME/.ollama` holds vector key k1, as Ollama writes it.
fn signed_in_home() -> Sandbox {
    let sb = Sandbox::new();
    let dir = sb.home().join(".ollama");
    fs::create_dir_all(&dir).expect("mkdir");
    let key = dir.join("id_ed25519");
    fs::copy(vectors_dir().join("keys/k1"), &key).expect("copy");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
    let public = dir.join("id_ed25519.pub");
    fs::copy(vectors_dir().join("keys/k1.pub"), &public).expect("copy");
    fs::set_permissions(&public, fs::Permissions::from_mode(0o644)).expect("chmod");
    sb
}

fn revoke(sb: &Sandbox, base: &str, extra: &[&str]) -> Out {
    let mut args = vec!["--base", base, "--timeout", "1"];
    args.extend_from_slice(extra);
    sb.run("olm-revoke", args, b"")
}

/// Asserts a request was signed as §3a says, by k1, for `method path`.
fn assert_signed(req: &olm_tests::fake::Request, method: &str, path: &str) {
    assert_eq!(req.method, method);
    let (p, _) = req.uri.split_once('?').expect("a query with ts");
    assert_eq!(p, path);
    let (challenge, _ts) = ApiRequest::received(&req.method, &req.uri).expect("challenge");
    let token =
        Token::from_header(req.header("authorization").expect("Authorization")).expect("a token");
    token
        .verify(challenge.as_bytes())
        .expect("signature verifies");
    let k1 = fs::read_to_string(vectors_dir().join("keys/k1.pub")).expect("k1.pub");
    assert!(
        k1.starts_with(&token.public_key().to_line()),
        "signed by k1"
    );
}

/// The failure modes of ollama.com, each with what stderr must say.
fn failure_modes() -> Vec<(&'static str, Behaviour, &'static str)> {
    vec![
        (
            "500",
            Behaviour::Answer(500, r#"{"error":"database on fire"}"#.into()),
            "answered HTTP 500 Internal Server Error: \"database on fire\"",
        ),
        (
            "403",
            Behaviour::Answer(403, "{}".into()),
            "answered HTTP 403",
        ),
        (
            "dropped",
            Behaviour::Drop,
            "the connection closed before a complete answer came",
        ),
        (
            "silent",
            Behaviour::Silent,
            "timed out after 1 s waiting for the answer",
        ),
        (
            "slow body",
            Behaviour::SlowBody,
            "timed out after 1 s waiting for the answer",
        ),
        (
            "oversized body",
            Behaviour::Huge(2 * 1024 * 1024),
            "the answer is larger than the limit of 1048576 bytes",
        ),
    ]
}

#[test]
fn revoke_leaves_the_key_in_every_failure_mode() {
    for (name, behaviour, says) in failure_modes() {
        let sb = signed_in_home();
        let before = snapshot(&sb);
        let server = FakeServer::start(behaviour);
        let out = revoke(&sb, &server.url(), &[]);
        out.assert_error(1, "olm-revoke", says);
        assert!(
            out.stderr.contains(&server.host_port()),
            "{name}: host not named: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("the local key was left as it was"),
            "{name}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{name}: stdout {}", out.text());
        assert_eq!(snapshot(&sb), before, "{name}: key files changed");
        let reqs = server.requests();
        assert_eq!(reqs.len(), 1, "{name}: one request, no retry");
        let k1 = libauth::PublicKey::from_line(
            &fs::read_to_string(vectors_dir().join("keys/k1.pub")).unwrap(),
        )
        .unwrap();
        assert_signed(
            &reqs[0],
            "DELETE",
            &format!("/api/user/keys/{}", k1.encoded()),
        );
    }
}

#[test]
fn revoke_on_401_says_not_signed_in_and_keeps_the_key() {
    let sb = signed_in_home();
    let before = snapshot(&sb);
    let server = FakeServer::start(Behaviour::Answer(401, r#"{"error":"unauthorized"}"#.into()));
    let out = revoke(&sb, &server.url(), &[]);
    out.assert_error(1, "olm-revoke", "You are not signed in to ollama.com");
    assert!(out.stderr.contains(&server.host_port()), "{}", out.stderr);
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);
    assert_eq!(snapshot(&sb), before);
}

#[test]
fn revoke_with_nothing_listening_keeps_the_key() {
    let sb = signed_in_home();
    let before = snapshot(&sb);
    let base = format!("http://127.0.0.1:{}", closed_port());
    let out = revoke(&sb, &base, &[]);
    out.assert_error(1, "olm-revoke", "connection refused");
    assert!(out.stderr.contains(&base), "{}", out.stderr);
    assert_eq!(snapshot(&sb), before);
}

#[test]
fn redirects_are_not_followed_and_carry_no_token() {
    let sb = signed_in_home();
    let before = snapshot(&sb);
    let elsewhere = FakeServer::start(Behaviour::Answer(200, "{}".into()));
    // "localhost" vs "127.0.0.1": another host name, same machine.
    let target = format!("http://localhost:{}/steal", elsewhere.port());
    let server = FakeServer::start(Behaviour::Redirect(target));
    for (tool, args) in [
        ("olm-revoke", vec!["--base", &server.url() as &str]),
        ("olm-whoami", vec!["--base", &server.url() as &str]),
    ] {
        let out = sb.run(tool, args, b"");
        out.assert_error(1, tool, "a redirect to http://localhost:");
        assert!(out.stderr.contains(&server.host_port()), "{}", out.stderr);
    }
    assert!(elsewhere.requests().is_empty(), "the redirect was followed");
    assert_eq!(server.requests().len(), 2);
    assert_eq!(snapshot(&sb), before);
}

#[test]
fn http_to_a_remote_host_is_refused_before_connecting() {
    let sb = signed_in_home();
    let before = snapshot(&sb);
    for tool in ["olm-revoke", "olm-whoami"] {
        // Refused while parsing: these addresses are never contacted.
        let out = sb.run(tool, ["--base", "http://10.0.0.1"], b"");
        out.assert_error(2, tool, "http is allowed only for loopback hosts");
        let mut c = sb.cmd(tool);
        c.env("OLLAMA_CLOUD_BASE_URL", "http://ollama.com");
        let out = olm_tests::run_with_stdin(c, b"");
        out.assert_error(2, tool, "OLLAMA_CLOUD_BASE_URL");
        for bad in [
            "https://ollama.com/api",
            "https://u:p@ollama.com",
            "ftp://x",
        ] {
            sb.run(tool, ["--base", bad], b"").assert_code(2);
        }
    }
    assert_eq!(snapshot(&sb), before);
}

#[test]
fn whoami_fails_with_the_host_named_in_every_failure_mode() {
    for (name, behaviour, says) in failure_modes() {
        let sb = signed_in_home();
        let server = FakeServer::start(behaviour);
        let out = sb.run(
            "olm-whoami",
            ["--base", &server.url() as &str, "--timeout", "1"],
            b"",
        );
        out.assert_error(1, "olm-whoami", says);
        assert!(
            out.stderr.contains(&server.host_port()),
            "{name}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{name}: {}", out.text());
        let reqs = server.requests();
        assert_eq!(reqs.len(), 1, "{name}");
        assert_signed(&reqs[0], "POST", "/api/me");
    }
    let sb = signed_in_home();
    let base = format!("http://127.0.0.1:{}", closed_port());
    sb.run("olm-whoami", ["--base", &base as &str], b"")
        .assert_error(1, "olm-whoami", "connection refused");
}

#[test]
fn whoami_on_401_prints_the_signin_url() {
    let sb = signed_in_home();
    let url = "https://ollama.com/connect?name=box&key=abc";
    let server = FakeServer::start(Behaviour::Answer(
        401,
        format!(r#"{{"error":"unauthorized","signin_url":"{url}"}}"#),
    ));
    let out = sb.run("olm-whoami", ["--base", &server.url() as &str], b"");
    out.assert_error(1, "olm-whoami", "You are not signed in to ollama.com");
    assert_eq!(out.lines(), vec![url.to_string()]);

    // No signin_url (or a dangerous one): the connect URL is built from the
    // key and the base, as olm-connect-url would.
    let server = FakeServer::start(Behaviour::Answer(
        401,
        r#"{"error":"unauthorized","signin_url":"javascript:x"}"#.into(),
    ));
    let out = sb.run(
        "olm-whoami",
        ["--base", &server.url() as &str, "--json"],
        b"",
    );
    out.assert_code(1);
    let expected = sb.run(
        "olm-connect-url",
        [
            "--base",
            &server.url() as &str,
            "--name",
            "n",
            "--backend",
            "file",
        ],
        b"",
    );
    let expected = expected.text();
    let key_part = expected.split("&key=").nth(1).expect("key=");
    let line = out.text();
    assert!(
        line.starts_with(&format!("{}/connect?name=", server.url())),
        "{line}"
    );
    assert!(line.ends_with(&format!("&key={key_part}")), "{line}");
}

#[test]
fn whoami_prints_the_account() {
    let sb = signed_in_home();
    let server = FakeServer::start(Behaviour::Answer(
        200,
        r#"{"id":"u1","email":"jane@example.com","name":"Jane","plan":"pro","bio":"\u001b[2J"}"#
            .into(),
    ));
    let out = sb.run("olm-whoami", ["--base", &server.url() as &str], b"");
    out.assert_code(0);
    assert_eq!(
        out.lines(),
        vec!["name: Jane", "email: jane@example.com", "plan: pro"]
    );
    let out = sb.run(
        "olm-whoami",
        ["--base", &server.url() as &str, "--json"],
        b"",
    );
    out.assert_code(0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["email"], "jane@example.com");
    assert_eq!(v["bio"], "\u{1b}[2J");
    assert!(
        !out.text().contains('\u{1b}'),
        "escape bytes reach the terminal"
    );
    // A 200 that is not a JSON object is a failure, not an account.
    let server = FakeServer::start(Behaviour::Answer(200, "[1]".into()));
    sb.run("olm-whoami", ["--base", &server.url() as &str], b"")
        .assert_error(1, "olm-whoami", "not an object");
}

#[test]
fn timeout_flags_are_checked() {
    let sb = signed_in_home();
    for bad in ["0", "-1", "soon", "99999", "NaN"] {
        let out = sb.run("olm-whoami", [format!("--timeout={bad}")], b"");
        out.assert_code(2);
        assert!(out.stderr.contains("--timeout"), "{}", out.stderr);
    }
    sb.run("olm-revoke", ["--connect-timeout", "0"], b"")
        .assert_code(2);
}

#[test]
fn revoke_without_a_local_key_says_where_it_looked() {
    let sb = Sandbox::new();
    let server = FakeServer::start(Behaviour::Answer(200, "{}".into()));
    let out = revoke(&sb, &server.url(), &[]);
    out.assert_error(1, "olm-revoke", "no local key");
    let expected = sb.ollama_key().display().to_string();
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
    assert!(
        server.requests().is_empty(),
        "nothing to sign with, nothing sent"
    );
}

#[test]
fn keep_local_and_local_only() {
    // --keep-local: disconnected, the files stay.
    let sb = signed_in_home();
    let before = snapshot(&sb);
    let server = FakeServer::start(Behaviour::Answer(200, "{}".into()));
    let out = revoke(&sb, &server.url(), &["--keep-local"]);
    out.assert_code(0);
    assert_eq!(out.lines(), vec!["Signed out from ollama.com"]);
    assert_eq!(snapshot(&sb), before);
    assert_eq!(server.requests().len(), 1);

    // --local-only: removed, nothing sent (the base is not even read).
    let out = sb.run("olm-revoke", ["--local-only"], b"");
    out.assert_code(0);
    assert!(
        out.stderr.contains("removed key from file backend"),
        "{}",
        out.stderr
    );
    assert!(!sb.ollama_key().exists());
    assert!(!sb.ollama_key().with_extension("pub").exists());
    assert_eq!(server.requests().len(), 1);
    // Again: no local key.
    sb.run("olm-revoke", ["--local-only"], b"")
        .assert_error(1, "olm-revoke", "no local key");
}

#[test]
fn a_200_removes_the_local_key() {
    let sb = signed_in_home();
    let server = FakeServer::start(Behaviour::Answer(200, "{}".into()));
    let out = revoke(&sb, &server.url(), &[]);
    out.assert_code(0);
    assert_eq!(out.lines(), vec!["Signed out from ollama.com"]);
    assert!(
        out.stderr.contains("removed key from file backend"),
        "{}",
        out.stderr
    );
    assert!(!sb.ollama_key().exists());

    // -k names another key: the stored key is not that one, so it stays.
    let sb = signed_in_home();
    let before = snapshot(&sb);
    let other = sb.vector_key("k2");
    let out = revoke(&sb, &server.url(), &["-k", other.to_str().unwrap()]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("file backend: not held"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("left as it is"), "{}", out.stderr);
    assert_eq!(snapshot(&sb), before);
    assert!(other.exists());
}

#[test]
fn server_mode_asks_the_local_ollama() {
    let sb = signed_in_home();
    let before = snapshot(&sb);
    let ollama = FakeServer::start(Behaviour::Answer(200, "null".into()));
    let mut c = sb.cmd("olm-revoke");
    // host:port without a scheme, as OLLAMA_HOST allows.
    c.arg("--server").env("OLLAMA_HOST", ollama.host_port());
    let out = olm_tests::run_with_stdin(c, b"");
    out.assert_code(0);
    assert_eq!(out.lines(), vec!["Signed out from ollama.com"]);
    let reqs = ollama.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].uri.as_str()),
        ("POST", "/api/signout")
    );
    assert!(reqs[0].header("authorization").is_none());
    assert_eq!(snapshot(&sb), before, "--server leaves local files alone");

    // OLLAMA_AUTH: the request to the local server is signed too.
    let mut c = sb.cmd("olm-revoke");
    c.arg("--server")
        .env("OLLAMA_HOST", ollama.url())
        .env("OLLAMA_AUTH", "1");
    olm_tests::run_with_stdin(c, b"").assert_code(0);
    assert_signed(&ollama.requests()[1], "POST", "/api/signout");

    // 401: not signed in.
    let ollama = FakeServer::start(Behaviour::Answer(
        401,
        r#"{"error":"you are not currently signed in"}"#.into(),
    ));
    let mut c = sb.cmd("olm-revoke");
    c.arg("--server").env("OLLAMA_HOST", ollama.host_port());
    olm_tests::run_with_stdin(c, b"").assert_error(
        1,
        "olm-revoke",
        "You are not signed in to ollama.com",
    );

    // Not running: say so, and how to start it.
    let mut c = sb.cmd("olm-revoke");
    let addr = format!("127.0.0.1:{}", closed_port());
    c.arg("--server").env("OLLAMA_HOST", &addr);
    let out = olm_tests::run_with_stdin(c, b"");
    out.assert_error(1, "olm-revoke", "is not running");
    assert!(out.stderr.contains(&addr), "{}", out.stderr);
    assert!(out.stderr.contains("ollama serve"), "{}", out.stderr);
    assert_eq!(snapshot(&sb), before);
}

#[test]
fn a_failed_tls_handshake_keeps_the_key() {
    // https to a server that speaks plain HTTP: the handshake fails.
    let sb = signed_in_home();
    let before = snapshot(&sb);
    let server = FakeServer::start(Behaviour::Plaintext);
    let base = format!("https://{}", server.host_port());
    for tool in ["olm-revoke", "olm-whoami"] {
        let out = sb.run(tool, ["--base", &base as &str, "--timeout", "2"], b"");
        out.assert_error(1, tool, "TLS failed");
        assert!(out.stderr.contains(&base), "{}", out.stderr);
    }
    assert_eq!(snapshot(&sb), before);
}

#[test]
fn server_mode_keeps_the_ollama_host_path() {
    // A local Ollama behind a reverse proxy at /ollama, as envconfig.Host() allows.
    let sb = signed_in_home();
    let ollama = FakeServer::start(Behaviour::Answer(200, "null".into()));
    let mut c = sb.cmd("olm-revoke");
    c.arg("--server")
        .env("OLLAMA_HOST", format!("{}/ollama/", ollama.url()));
    olm_tests::run_with_stdin(c, b"").assert_code(0);
    let reqs = ollama.requests();
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].uri.as_str()),
        ("POST", "/ollama/api/signout")
    );

    // Signed (OLLAMA_AUTH): as Ollama's client, the challenge is the API
    // path; the prefix is only where the request goes.
    let mut c = sb.cmd("olm-revoke");
    c.arg("--server")
        .env("OLLAMA_HOST", format!("{}/ollama", ollama.url()))
        .env("OLLAMA_AUTH", "1");
    olm_tests::run_with_stdin(c, b"").assert_code(0);
    let req = &ollama.requests()[1];
    let (path, query) = req.uri.split_once('?').expect("a query with ts");
    assert_eq!(path, "/ollama/api/signout");
    let stripped = format!("/api/signout?{query}");
    let (challenge, _ts) = ApiRequest::received("POST", &stripped).expect("challenge");
    Token::from_header(req.header("authorization").expect("Authorization"))
        .expect("a token")
        .verify(challenge.as_bytes())
        .expect("signature over the API path verifies");
}

#[test]
fn server_mode_errors_name_ollama_host_once_and_hint_at_404() {
    let sb = signed_in_home();
    let mut c = sb.cmd("olm-revoke");
    c.arg("--server").env("OLLAMA_HOST", "garbage value");
    let out = olm_tests::run_with_stdin(c, b"");
    out.assert_error(
        2,
        "olm-revoke",
        "OLLAMA_HOST: bad base URL \"garbage value\"",
    );
    assert_eq!(
        out.stderr.matches("OLLAMA_HOST").count(),
        1,
        "{}",
        out.stderr
    );

    let ollama = FakeServer::start(Behaviour::Answer(404, "404 page not found".into()));
    let mut c = sb.cmd("olm-revoke");
    c.arg("--server").env("OLLAMA_HOST", ollama.host_port());
    let out = olm_tests::run_with_stdin(c, b"");
    out.assert_error(1, "olm-revoke", "answered 404");
    assert!(
        out.stderr
            .contains("hint: an older Ollama may lack /api/signout"),
        "{}",
        out.stderr
    );
}

#[test]
fn server_mode_refuses_flags_it_would_ignore() {
    let sb = signed_in_home();
    let before = snapshot(&sb);
    let ollama = FakeServer::start(Behaviour::Answer(200, "null".into()));
    let key = sb.ollama_key();
    let key = key.to_str().unwrap();
    for extra in [
        vec!["-k", key],
        vec!["--key-env", "OLM_KEY"],
        vec!["--backend", "file"],
        vec!["--base", "http://127.0.0.1:9"],
        vec!["--keep-local"],
        vec!["--local-only"],
    ] {
        let mut c = sb.cmd("olm-revoke");
        c.arg("--server")
            .args(&extra)
            .env("OLLAMA_HOST", ollama.host_port());
        let out = olm_tests::run_with_stdin(c, b"");
        assert_eq!(out.code, 2, "{extra:?}: {}", out.stderr);
        assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
    }
    assert!(ollama.requests().is_empty(), "nothing was sent");
    assert_eq!(snapshot(&sb), before);
}

#[test]
fn server_mode_with_ollama_auth_and_no_key_says_where_it_looked() {
    // CLI.md: no local key is exit 1 naming where olm looked, --server too.
    let sb = Sandbox::new();
    let ollama = FakeServer::start(Behaviour::Answer(200, "null".into()));
    let mut c = sb.cmd("olm-revoke");
    c.arg("--server")
        .env("OLLAMA_HOST", ollama.host_port())
        .env("OLLAMA_AUTH", "1");
    let out = olm_tests::run_with_stdin(c, b"");
    out.assert_error(1, "olm-revoke", "no local key to sign the request");
    let expected = sb.ollama_key().display().to_string();
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
    assert!(out.stderr.contains("OLLAMA_AUTH"), "{}", out.stderr);
    assert!(ollama.requests().is_empty(), "nothing was sent");
}

#[test]
fn server_mode_reads_ollama_variables_as_ollama_does() {
    let sb = signed_in_home();
    let ollama = FakeServer::start(Behaviour::Answer(200, "null".into()));
    // Quotes and spaces around the values are trimmed, as envconfig.Var
    // does; a quoted false OLLAMA_AUTH is off, so nothing is signed.
    let mut c = sb.cmd("olm-revoke");
    c.arg("--server")
        .env("OLLAMA_HOST", format!(" \"{}\" ", ollama.host_port()))
        .env("OLLAMA_AUTH", "'false'");
    olm_tests::run_with_stdin(c, b"").assert_code(0);
    let reqs = ollama.requests();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].header("authorization").is_none());
}

#[test]
fn a_named_store_without_a_key_is_exit_1_naming_it() {
    // --backend file with nothing stored: "not signed in"/"nothing to
    // revoke" (exit 1), not bad input (exit 2).
    let sb = Sandbox::new();
    let server = FakeServer::start(Behaviour::Answer(200, "{}".into()));
    let expected = sb.ollama_key().display().to_string();
    let out = sb.run(
        "olm-whoami",
        ["--base", &server.url() as &str, "--backend", "file"],
        b"",
    );
    out.assert_error(1, "olm-whoami", "You are not signed in to ollama.com");
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
    let out = revoke(&sb, &server.url(), &["--backend", "file"]);
    out.assert_error(1, "olm-revoke", "no local key to revoke");
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
    assert!(server.requests().is_empty(), "nothing was sent");
}
