//! olm-keygen, olm-sign and olm-connect-url as a user runs them: the
//! pipelines of the README, interop with ssh-keygen and curl, refusals.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;

use libauth::{ApiRequest, PrivateKey, Token};
use olm_tests::Sandbox;

/// Whether `program` is installed; if not, says SKIPPED (a failure in CI).
fn have(program: &str) -> bool {
    let found = olm_tests::have(program);
    if !found {
        olm_tests::skipped!(
            "SKIPPED: {program} is not installed (apt-get install openssh-client curl util-linux)"
        );
    }
    found
}

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keygen_sign_curl_pipeline() {
    let sb = Sandbox::new();
    let out =
        sb.sh("olm-keygen -o k && olm-sign -k k -X POST /api/me --ts 1700000000 --format curl");
    out.assert_code(0);
    let lines = out.lines();
    let public = &lines[0];
    assert!(
        public.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"),
        "{public}"
    );
    assert_eq!(
        lines[1],
        "url = \"https://ollama.com/api/me?ts=1700000000\""
    );
    assert_eq!(lines[2], "request = \"POST\"");
    let header = lines[3]
        .strip_prefix("header = \"Authorization: ")
        .unwrap()
        .strip_suffix('"')
        .unwrap();
    let token = Token::parse(header).unwrap();
    token.verify(b"POST,/api/me?ts=1700000000").unwrap();
    assert_eq!(&token.public_key().to_line(), public);
    assert_eq!(mode(&sb.path("k")), 0o600);
    assert_eq!(mode(&sb.path("k.pub")), 0o644);
    assert_eq!(
        fs::read_to_string(sb.path("k.pub")).unwrap(),
        format!("{public}\n")
    );
}

#[test]
fn printf_pipeline_signs_exact_bytes() {
    let sb = Sandbox::new();
    sb.sh("olm-keygen -o k >/dev/null").assert_code(0);
    let key = PrivateKey::from_openssh(&fs::read(sb.path("k")).unwrap()).unwrap();
    let out = sb.sh("printf 'POST,/api/me?ts=1' | olm-sign -k k");
    out.assert_code(0);
    assert_eq!(
        out.text(),
        format!("{}\n", Token::sign(&key, b"POST,/api/me?ts=1"))
    );
    assert!(
        out.stderr.is_empty(),
        "no note without a newline: {}",
        out.stderr
    );
    // echo adds a newline: it is signed, and a note says so.
    let out = sb.sh("echo 'POST,/api/me?ts=1' | olm-sign -k k");
    assert_eq!(
        out.assert_code(0).text(),
        format!("{}\n", Token::sign(&key, b"POST,/api/me?ts=1\n"))
    );
    assert!(out.stderr.contains("newline"), "{}", out.stderr);
}

#[test]
fn public_line_into_connect_url() {
    let sb = Sandbox::new();
    let out =
        sb.sh("olm-keygen -o k >/dev/null && olm-keygen -y -k k | olm-connect-url --name box");
    out.assert_code(0);
    let key = PrivateKey::from_openssh(&fs::read(sb.path("k")).unwrap()).unwrap();
    assert_eq!(
        out.text(),
        format!(
            "https://ollama.com/connect?name=box&key={}\n",
            key.public_key().encoded()
        )
    );
    // The .pub file and the private key give the same URL; so does the default key.
    let from_pub = sb.sh("olm-connect-url --name box < k.pub");
    assert_eq!(from_pub.assert_code(0).text(), out.text());
    let from_priv = sb.sh("olm-connect-url --name box < k");
    assert_eq!(from_priv.assert_code(0).text(), out.text());
    fs::create_dir_all(sb.ollama_key().parent().unwrap()).unwrap();
    fs::copy(sb.path("k"), sb.ollama_key()).unwrap();
    fs::set_permissions(sb.ollama_key(), fs::Permissions::from_mode(0o600)).unwrap();
    let default = sb.sh("olm-connect-url --name box </dev/null");
    assert_eq!(default.assert_code(0).text(), out.text());
    let app = sb.sh("olm-connect-url --name 'my box' --app < k.pub");
    assert!(app.assert_code(0).text().contains("name=my+box&key="));
    assert!(app.text().trim_end().ends_with("&launch=true"));
}

#[test]
fn keygen_refuses_to_overwrite() {
    let sb = Sandbox::new();
    sb.sh("olm-keygen -o k >/dev/null").assert_code(0);
    let before = fs::read(sb.path("k")).unwrap();
    let out = sb.run("olm-keygen", ["-o", "k"], b"");
    out.assert_error(2, "olm-keygen", "\"k\" already exists");
    assert!(out.stderr.contains("hint: "), "{}", out.stderr);
    assert_eq!(
        fs::read(sb.path("k")).unwrap(),
        before,
        "the key is untouched"
    );
    // --force replaces it, atomically, with a new key and matching .pub.
    let out = sb.run("olm-keygen", ["-o", "k", "--force"], b"");
    out.assert_code(0);
    let after = fs::read(sb.path("k")).unwrap();
    assert_ne!(after, before);
    let key = PrivateKey::from_openssh(&after).unwrap();
    assert_eq!(out.text(), format!("{}\n", key.public_key()));
    assert_eq!(
        fs::read_to_string(sb.path("k.pub")).unwrap(),
        format!("{}\n", key.public_key())
    );
}

#[test]
fn keygen_refuses_a_terminal() {
    if !have("script") {
        return;
    }
    let sb = Sandbox::new();
    // `script` gives olm-keygen a pseudo-terminal as stdout.
    let out = sb.sh("script -qec olm-keygen /dev/null; echo \"status=$?\"");
    let text = out.text();
    assert!(
        text.contains("refusing to write a private key to a terminal"),
        "{text}"
    );
    assert!(text.contains("status=2"), "{text}");
    assert!(
        !text.contains("PRIVATE KEY-----"),
        "no key on the terminal: {text}"
    );
}

#[test]
fn ssh_keygen_reads_our_keys() {
    if !have("ssh-keygen") {
        return;
    }
    let sb = Sandbox::new();
    let ours = sb.sh("olm-keygen -o k");
    ours.assert_code(0);
    let theirs = sb.run("ssh-keygen", ["-y", "-f", "k"], b"");
    theirs.assert_code(0);
    assert_eq!(theirs.text().trim_end(), ours.text().trim_end());
    // A key on stdout, saved by the shell, works just as well.
    sb.sh("olm-keygen > k2 && chmod 600 k2").assert_code(0);
    let theirs = sb.run("ssh-keygen", ["-y", "-f", "k2"], b"");
    let ours = sb.run("olm-keygen", ["-y", "-k", "k2"], b"");
    assert_eq!(
        theirs.assert_code(0).text().trim_end(),
        ours.assert_code(0).text().trim_end()
    );
}

#[test]
fn we_read_ssh_keygen_keys_with_and_without_comment() {
    if !have("ssh-keygen") {
        return;
    }
    let sb = Sandbox::new();
    for (file, comment) in [("plain", ""), ("commented", "user@host")] {
        sb.run(
            "ssh-keygen",
            ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file],
            b"",
        )
        .assert_code(0);
        let theirs = fs::read_to_string(sb.path(&format!("{file}.pub"))).unwrap();
        let ours = sb.run("olm-keygen", ["-y", "-k", file], b"");
        let line: Vec<&str> = theirs.split_whitespace().take(2).collect();
        assert_eq!(
            ours.assert_code(0).text(),
            format!("{}\n", line.join(" ")),
            "{file}"
        );
        let signed = sb.run("olm-sign", ["-k", file], b"GET,/api/tags?ts=0");
        let token = Token::parse(signed.assert_code(0).text().trim()).unwrap();
        token.verify(b"GET,/api/tags?ts=0").unwrap();
    }
}

#[test]
fn refusals_name_the_file() {
    let sb = Sandbox::new();
    let out = sb.run("olm-sign", ["-k", "missing"], b"x");
    out.assert_error(2, "olm-sign", "\"missing\"");
    fs::write(sb.path("empty"), b"").unwrap();
    fs::set_permissions(sb.path("empty"), fs::Permissions::from_mode(0o600)).unwrap();
    let out = sb.run("olm-sign", ["-k", "empty"], b"x");
    out.assert_error(2, "olm-sign", "\"empty\": no key found");
    let key = sb.vector_key("k1");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let out = sb.run("olm-sign", ["-k", key.to_str().unwrap()], b"x");
    out.assert_error(2, "olm-sign", "too open");
    assert!(out.stderr.contains("hint: chmod 600"), "{}", out.stderr);
    // No HOME key: the message says where it looked.
    let out = sb.run("olm-sign", Vec::<&str>::new(), b"x");
    out.assert_error(2, "olm-sign", ".ollama/id_ed25519");
    let out = sb.run("olm-sign", ["--format", "curl", "-k", "k1"], b"x");
    out.assert_error(2, "olm-sign", "--format curl needs a request");
    let out = sb.run("olm-sign", ["-X", "GET", "no-slash", "-k", "k1"], b"");
    out.assert_error(2, "olm-sign", "must start with /");
    let out = sb.run(
        "olm-sign",
        ["-X", "GET", "/x", "--base", "http://example.com"],
        b"",
    );
    out.assert_error(2, "olm-sign", "http is allowed only for loopback");
    let out = sb.run("olm-sign", ["--no-such-flag"], b"");
    out.assert_error(2, "olm-sign", "--no-such-flag");
    let out = sb.run(
        "olm-connect-url",
        ["--name", "x"],
        b"ssh-rsa AAAAB3NzaC1yc2E\n",
    );
    out.assert_error(2, "olm-connect-url", "not ssh-ed25519");
}

#[test]
fn key_env_for_ci_secrets() {
    let sb = Sandbox::new();
    let key = fs::read_to_string(sb.vector_key("k1")).unwrap();
    let mut cmd = sb.cmd("olm-sign");
    cmd.args(["--key-env", "OLM_TEST_KEY"])
        .env("OLM_TEST_KEY", &key);
    let out = olm_tests::run_with_stdin(cmd, b"POST,/api/me?ts=1700000000");
    let expected = &olm_tests::vectors()["tokens"][0]["token"];
    assert_eq!(
        out.assert_code(0).text().trim_end(),
        expected.as_str().unwrap()
    );
    let out = sb.run("olm-sign", ["--key-env", "OLM_UNSET_VAR"], b"x");
    out.assert_error(2, "olm-sign", "OLM_UNSET_VAR is not set");
}

/// `olm-sign --format curl | curl -K -` sends the signed request: a local
/// listener records what curl sent, and the signature checks out.
#[test]
fn curl_sends_what_olm_sign_signed() {
    if !have("curl") {
        return;
    }
    let sb = Sandbox::new();
    let key_path = sb.vector_key("k2");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push(line.trim_end().to_string());
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .unwrap();
        let _ = reader.read(&mut [0u8; 1]);
        head
    });
    let script = format!(
        "olm-sign -k {} -X GET '/api/tags?b=2&a=1' --base http://127.0.0.1:{port} --format curl | curl -sS -K -",
        key_path.display()
    );
    let out = sb.sh(&script);
    assert_eq!(out.assert_code(0).text(), "ok");
    let head = server.join().unwrap();
    let request_line = &head[0];
    let uri = request_line
        .strip_prefix("GET ")
        .unwrap()
        .strip_suffix(" HTTP/1.1")
        .unwrap();
    let auth = head
        .iter()
        .find_map(|h| h.strip_prefix("Authorization: "))
        .expect("Authorization header sent");
    let (challenge, ts) = ApiRequest::received("GET", uri).unwrap();
    assert!(uri.starts_with("/api/tags?a=1&b=2&ts="), "{uri}");
    assert!(ts > 1_700_000_000);
    Token::parse(auth)
        .unwrap()
        .verify(challenge.as_bytes())
        .unwrap();
}
