//! olm-verify end to end: every vector, requests against the clock,
//! authorized keys, `--lines`, and the HTTP server (verifier and stand-in)
//! under good, bad and hostile clients.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libauth::{ApiRequest, PrivateKey, Token};
use olm_tests::{vectors, vectors_dir, Sandbox};

fn s<'a>(v: &'a serde_json::Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

fn load(name: &str) -> PrivateKey {
    let bytes = std::fs::read(vectors_dir().join("keys").join(name)).expect("key file");
    PrivateKey::from_openssh(&bytes).expect("vector key")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs `METHOD uri` at `ts`: the request-URI to send and its token.
fn signed(key: &PrivateKey, method: &str, uri: &str, ts: u64) -> (String, String) {
    let req = ApiRequest::new(method, uri, ts).expect("request");
    let token = Token::sign(key, req.challenge().as_bytes()).to_string();
    (req.request_uri(), token)
}

fn auth(token: &str) -> Vec<String> {
    vec![format!("Authorization: {token}")]
}

/// The reason olm-verify must give for each `invalid_tokens` row.
fn expected_reason(why: &str) -> &'static str {
    match why {
        "challenge differs" | "signature by another key" => {
            "signature does not match this challenge"
        }
        "no signature part" => "malformed token: there is no signature part",
        "truncated signature" => "malformed token: the signature",
        "key part not base64" => "malformed token: the key part is not base64",
        "empty" => "malformed token: the token is empty",
        other => panic!("a new invalid_tokens row ({other}): add its reason here"),
    }
}

fn public_line(v: &serde_json::Value, key: &str) -> String {
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| s(k, "name") == key)
        .map(|k| s(k, "public_key").to_string())
        .expect("key in vectors")
}

#[test]
fn every_vector_token_verifies_and_every_invalid_one_says_why() {
    let v = vectors();
    let sandbox = Sandbox::new();
    let mut lines = Vec::new();
    let mut expected = Vec::new();
    let tokens = v["tokens"].as_array().unwrap();
    assert!(!tokens.is_empty());
    for t in tokens {
        let challenge = STANDARD.decode(s(t, "challenge_b64")).unwrap();
        let out = sandbox.run("olm-verify", ["--token", s(t, "token")], &challenge);
        let want = public_line(&v, s(t, "key"));
        assert_eq!(out.assert_code(0).text(), format!("{want}\n"), "{t}");
        // The same as a header line, with Bearer.
        let header = format!("Authorization: Bearer {}", s(t, "token"));
        let out = sandbox.run("olm-verify", ["--header", &header], &challenge);
        out.assert_code(0);
        lines.extend_from_slice(format!("{}\t", s(t, "token")).as_bytes());
        lines.extend_from_slice(&challenge);
        lines.push(b'\n');
        expected.push(format!("ok {want}"));
    }
    let invalid = v["invalid_tokens"].as_array().unwrap();
    assert!(!invalid.is_empty());
    for t in invalid {
        let reason = expected_reason(s(t, "why"));
        let out = sandbox.run(
            "olm-verify",
            ["--token", s(t, "token")],
            s(t, "challenge").as_bytes(),
        );
        out.assert_error(1, "olm-verify", reason);
        lines.extend_from_slice(format!("{}\t{}\n", s(t, "token"), s(t, "challenge")).as_bytes());
        expected.push(format!("bad {reason}"));
    }
    // Keys that are not usable ssh-ed25519 keys, and a bad signature
    // encoding, each with its reason.
    let sig = STANDARD.encode([7u8; 64]);
    let rsa = STANDARD.encode(b"\0\0\0\x07ssh-rsa\0\0\0\x03\x01\x00\x01");
    let mut identity = b"\0\0\0\x0bssh-ed25519\0\0\0\x20".to_vec();
    identity.push(1);
    identity.extend_from_slice(&[0u8; 31]);
    let identity = STANDARD.encode(identity);
    // R = the identity, s = 0: the cofactored (ZIP-215) equation holds for
    // every message under the identity key, so only the weak-key refusal
    // stops this forgery, alone and in a batch.
    let mut forged = [0u8; 64];
    forged[0] = 1;
    let forged = STANDARD.encode(forged);
    for (token, reason) in [
        (
            format!("{rsa}:{sig}"),
            "not an ssh-ed25519 key: the key is \"ssh-rsa\"",
        ),
        (
            format!("{identity}:{sig}"),
            "not an ssh-ed25519 key: the key is a weak (small-order) point",
        ),
        (
            format!("{identity}:{forged}"),
            "not an ssh-ed25519 key: the key is a weak (small-order) point",
        ),
        (
            format!("{}:%%%", public_line(&v, "k1").split(' ').nth(1).unwrap()),
            "malformed token: the signature part is not base64",
        ),
    ] {
        let out = sandbox.run("olm-verify", ["--token", &token], b"x");
        out.assert_error(1, "olm-verify", reason);
        lines.extend_from_slice(format!("{token}\tx\n").as_bytes());
        expected.push(format!("bad {reason}"));
    }
    // All of them at once through --lines: one verdict per line, in order.
    let out = sandbox.run("olm-verify", ["--lines"], &lines);
    out.assert_code(1);
    let got = out.lines();
    assert_eq!(got.len(), expected.len(), "{}", out.text());
    for (g, e) in got.iter().zip(&expected) {
        assert!(g.starts_with(e.as_str()), "{g:?} does not start with {e:?}");
    }
    // Only the good ones: exit 0.
    let good: Vec<u8> = lines
        .split_inclusive(|&b| b == b'\n')
        .take(tokens.len())
        .flatten()
        .copied()
        .collect();
    let out = sandbox.run("olm-verify", ["--lines"], &good);
    assert_eq!(out.assert_code(0).lines().len(), tokens.len());
}

#[test]
fn requests_are_rebuilt_and_checked_against_the_clock() {
    let sandbox = Sandbox::new();
    let key_path = sandbox.vector_key("k1");
    let k1 = load("k1");
    let line = k1.public_key().to_line();
    // A request signed by olm-sign, checked by olm-verify -X.
    let out = sandbox.run(
        "olm-sign",
        [
            "-k",
            key_path.to_str().unwrap(),
            "-X",
            "GET",
            "/api/tags?b=2&a=1",
            "--format",
            "json",
        ],
        b"",
    );
    let json: serde_json::Value = serde_json::from_slice(&out.assert_code(0).stdout).unwrap();
    let uri = json["request_uri"].as_str().unwrap();
    let header = format!("Authorization: {}", json["authorization"].as_str().unwrap());
    let out = sandbox.run("olm-verify", ["--header", &header, "-X", "GET", uri], b"");
    assert_eq!(out.assert_code(0).text(), format!("{line}\n"));
    // An absolute URL works too; the method is case-insensitive.
    let url = format!("http://127.0.0.1:9{uri}");
    let out = sandbox.run("olm-verify", ["--header", &header, "-X", "get", &url], b"");
    out.assert_code(0);
    // Another method: refused, and the message shows the challenge rebuilt.
    let out = sandbox.run("olm-verify", ["--header", &header, "-X", "POST", uri], b"");
    out.assert_error(
        1,
        "olm-verify",
        &format!("signature does not match this challenge (challenge was \"POST,{uri}\")"),
    );

    // ts too old, in the future, and allowed by --max-skew.
    let t = now();
    let (old_uri, old_token) = signed(&k1, "GET", "/api/tags", t - 1000);
    let out = sandbox.run(
        "olm-verify",
        ["--token", &old_token, "-X", "GET", &old_uri],
        b"",
    );
    out.assert_error(1, "olm-verify", "s old (max skew 300 s)");
    assert!(out.stderr.contains(&format!("ts {} is ", t - 1000)));
    let out = sandbox.run(
        "olm-verify",
        [
            "--token",
            &old_token,
            "-X",
            "GET",
            &old_uri,
            "--max-skew",
            "5000",
        ],
        b"",
    );
    out.assert_code(0);
    let (new_uri, new_token) = signed(&k1, "GET", "/api/tags", t + 1000);
    let out = sandbox.run(
        "olm-verify",
        ["--token", &new_token, "-X", "GET", &new_uri],
        b"",
    );
    out.assert_error(1, "olm-verify", "s in the future (max skew 300 s)");

    // A request-URI without ts cannot carry a signature: bad input.
    let out = sandbox.run(
        "olm-verify",
        ["--token", &new_token, "-X", "GET", "/api/tags"],
        b"",
    );
    out.assert_error(2, "olm-verify", "no ts");

    // The API vectors, via -X with a skew wide enough for their old ts.
    let v = vectors();
    for t in v["tokens"].as_array().unwrap() {
        let challenge = s(t, "challenge");
        let Some((method, uri)) = challenge.split_once(',') else {
            continue;
        };
        if !uri.contains("ts=") {
            continue;
        }
        let out = sandbox.run(
            "olm-verify",
            [
                "--token",
                s(t, "token"),
                "-X",
                method,
                uri,
                "--max-skew",
                "4000000000",
            ],
            b"",
        );
        out.assert_code(0);
    }
    // No token at all: usage.
    sandbox
        .run("olm-verify", ["-X", "GET", "/x?ts=1"], b"")
        .assert_error(2, "olm-verify", "no token");
}

#[test]
fn authorized_keys_limit_who_may_sign() {
    let sandbox = Sandbox::new();
    let k1 = load("k1");
    let k2 = load("k2");
    let ak = sandbox.path("authorized_keys");
    std::fs::write(
        &ak,
        format!(
            "# who may use the local Ollama\n\n\
             no-pty,environment=\"A=b c\" {} alice@laptop\n\
             ssh-rsa AAAAB3NzaC1yc2E= bob\n\
             this line is broken\n",
            k1.public_key().to_line()
        ),
    )
    .unwrap();
    let ak_s = ak.to_str().unwrap();
    let t = now();
    let (uri, tok1) = signed(&k1, "POST", "/api/me", t);
    let out = sandbox.run(
        "olm-verify",
        [
            "--token",
            &tok1,
            "-X",
            "POST",
            &uri,
            "--authorized-keys",
            ak_s,
        ],
        b"",
    );
    out.assert_code(0);
    // The broken line is reported with its number, and does not stop the check.
    assert!(out.stderr.contains("line 5"), "{}", out.stderr);
    let (uri2, tok2) = signed(&k2, "POST", "/api/me", t);
    let out = sandbox.run(
        "olm-verify",
        [
            "--token",
            &tok2,
            "-X",
            "POST",
            &uri2,
            "--authorized-keys",
            ak_s,
        ],
        b"",
    );
    out.assert_error(
        1,
        "olm-verify",
        &format!("key {} is not in", k2.public_key().fingerprint()),
    );
    // --lines with the file.
    let input = format!("{tok1}\tPOST,{uri}\n{tok2}\tPOST,{uri2}\n");
    let out = sandbox.run(
        "olm-verify",
        ["--lines", "--authorized-keys", ak_s],
        input.as_bytes(),
    );
    out.assert_code(1);
    let lines = out.lines();
    assert_eq!(lines[0], format!("ok {}", k1.public_key().to_line()));
    assert!(lines[1].starts_with("bad key SHA256:"), "{}", lines[1]);
    // An unreadable file is bad input.
    let missing = sandbox.path("missing");
    sandbox
        .run(
            "olm-verify",
            [
                "--token",
                &tok1,
                "-X",
                "POST",
                &uri,
                "--authorized-keys",
                missing.to_str().unwrap(),
            ],
            b"",
        )
        .assert_error(2, "olm-verify", "missing");
}

#[test]
fn authorized_keys_options_never_grant_more_than_the_line_says() {
    let sandbox = Sandbox::new();
    let [k1, k2, k3] = ["k1", "k2", "k3"].map(load);
    let k4 = PrivateKey::from_seed(&[4; 32], "").unwrap();
    let ak = sandbox.path("authorized_keys");
    std::fs::write(
        &ak,
        format!(
            "cert-authority {}\n\
             from=\"127.0.0.1\" {}\n\
             expiry-time=\"20200101Z\" {} old\n\
             restrict,expiry-time=\"20990101\" {} fine\n",
            k1.public_key().to_line(),
            k2.public_key().to_line(),
            k3.public_key().to_line(),
            k4.public_key().to_line(),
        ),
    )
    .unwrap();
    let ak_s = ak.to_str().unwrap();
    let t = now();
    let check = |k: &PrivateKey| {
        let (uri, tok) = signed(k, "GET", "/api/tags", t);
        sandbox.run(
            "olm-verify",
            [
                "--token",
                &tok,
                "-X",
                "GET",
                &uri,
                "--authorized-keys",
                ak_s,
            ],
            b"",
        )
    };
    let out = check(&k1);
    out.assert_error(1, "olm-verify", "is not in");
    assert!(
        out.stderr
            .contains("line 1: cert-authority keys are not supported"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("line 2: from= cannot be enforced"),
        "{}",
        out.stderr
    );
    check(&k2).assert_error(1, "olm-verify", "is not in");
    check(&k3).assert_error(
        1,
        "olm-verify",
        &format!(
            "key {} has expired in {ak_s:?} (expiry-time)",
            k3.public_key().fingerprint()
        ),
    );
    assert_eq!(
        check(&k4).assert_code(0).text(),
        format!("{}\n", k4.public_key().to_line())
    );
    // The server says the same.
    let server = sandbox.serve(&["--authorized-keys", ak_s]);
    for (k, want) in [(&k1, 401), (&k2, 401), (&k3, 401), (&k4, 200)] {
        let (uri, tok) = signed(k, "GET", "/api/tags", t);
        assert_eq!(server.request("GET", &uri, &auth(&tok)).0, want);
    }
    let log = server.log();
    assert!(log.contains("has expired"), "{log}");
    assert!(
        log.contains("line 1: cert-authority keys are not supported"),
        "{log}"
    );
}

#[test]
fn lines_bound_memory_and_keep_order() {
    let sandbox = Sandbox::new();
    let k1 = load("k1");
    let mut input = Vec::new();
    let mut want = Vec::new();
    // More than one batch, with bad ones scattered.
    for i in 0..200 {
        let c = format!("challenge {i}");
        let t = Token::sign(&k1, c.as_bytes()).to_string();
        if i % 37 == 5 {
            input.extend_from_slice(format!("{t}\tchallenge {}\n", i + 1).as_bytes());
            want.push("bad signature does not match this challenge".to_string());
        } else {
            input.extend_from_slice(format!("{t}\t{c}\n").as_bytes());
            want.push(format!("ok {}", k1.public_key().to_line()));
        }
    }
    input.extend_from_slice(&vec![b'A'; 200_000]);
    input.push(b'\n');
    want.push("bad malformed line: longer than 65536 bytes".into());
    input.extend_from_slice(b"\xff\xfe\tx\n");
    want.push("bad malformed token: the token is not ASCII text".into());
    let out = sandbox.run("olm-verify", ["--lines"], &input);
    out.assert_code(1);
    assert_eq!(out.lines(), want);
    // Empty input: nothing to say, all fine.
    let out = sandbox.run("olm-verify", ["--lines"], b"");
    assert_eq!(out.assert_code(0).text(), "");
}

fn authorized(sandbox: &Sandbox, keys: &[&PrivateKey]) -> std::path::PathBuf {
    let ak = sandbox.path("authorized_keys");
    let text: String = keys
        .iter()
        .map(|k| format!("{} test\n", k.public_key().to_line()))
        .collect();
    std::fs::write(&ak, text).unwrap();
    ak
}

#[test]
fn server_lets_signed_requests_in_and_keeps_the_rest_out() {
    let sandbox = Sandbox::new();
    let k1 = load("k1");
    let k2 = load("k2");
    let ak = authorized(&sandbox, &[&k1]);
    let server = sandbox.serve(&["--authorized-keys", ak.to_str().unwrap()]);
    let t = now();

    let (uri, tok) = signed(&k1, "GET", "/api/tags", t);
    let (status, _) = server.request("GET", &uri, &auth(&tok));
    assert_eq!(status, 200);
    // The same token again: a replay.
    let (status, body) = server.request("GET", &uri, &auth(&tok));
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"error":"unauthorized"}"#)
    );
    // Two different requests in the same second are not replays
    // (olm-whoami then olm-revoke).
    let (uri_a, tok_a) = signed(&k1, "POST", "/api/me", t);
    let (uri_b, tok_b) = signed(&k1, "DELETE", "/api/user/keys/abc", t);
    assert_eq!(server.request("POST", &uri_a, &auth(&tok_a)).0, 200);
    assert_eq!(server.request("DELETE", &uri_b, &auth(&tok_b)).0, 200);
    // Bearer works.
    let (uri, tok) = signed(&k1, "GET", "/api/ps", t);
    assert_eq!(
        server
            .request("GET", &uri, &[format!("Authorization: Bearer {tok}")])
            .0,
        200
    );
    // As nginx's auth_request asks: the original request in headers.
    let (uri, tok) = signed(&k1, "POST", "/api/chat?stream=false", t);
    let mut headers = auth(&tok);
    headers.push("X-Original-Method: POST".into());
    headers.push(format!("X-Original-URI: {uri}"));
    assert_eq!(server.request("GET", "/_auth", &headers).0, 200);
    // ... and a token for another request is refused there.
    let (uri2, _) = signed(&k1, "POST", "/api/generate", t);
    let headers = vec![
        format!("Authorization: {tok}"),
        "X-Original-Method: POST".into(),
        format!("X-Original-URI: {uri2}"),
    ];
    assert_eq!(server.request("GET", "/_auth", &headers).0, 401);

    // Unsigned, garbage, stale, future, unlisted, two tokens.
    assert_eq!(server.request("GET", &uri, &[]).0, 401);
    assert_eq!(server.request("GET", &uri, &auth("hello")).0, 401);
    let (old_uri, old_tok) = signed(&k1, "GET", "/api/tags", t - 3600);
    assert_eq!(server.request("GET", &old_uri, &auth(&old_tok)).0, 401);
    let (new_uri, new_tok) = signed(&k1, "GET", "/api/tags", t + 3600);
    assert_eq!(server.request("GET", &new_uri, &auth(&new_tok)).0, 401);
    let (uri2, tok2) = signed(&k2, "GET", "/api/tags", t);
    assert_eq!(server.request("GET", &uri2, &auth(&tok2)).0, 401);
    let (uri3, tok3) = signed(&k1, "GET", "/api/version", t);
    let mut two = auth(&tok3);
    two.push(format!("Authorization: {tok3}"));
    assert_eq!(server.request("GET", &uri3, &two).0, 401);

    let log = server.log();
    for needle in [
        "replayed token",
        "no Authorization header",
        "malformed token",
        "s old (max skew 300 s)",
        "s in the future",
        &format!("key {} is not in", k2.public_key().fingerprint()),
        "more than one Authorization header",
        &k1.public_key().fingerprint(),
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    // One line per request, and never a token.
    assert!(!log.contains(tok.split(':').nth(1).unwrap()), "{log}");
    assert!(!log.contains(&k1.public_key().blob_base64()), "{log}");
    assert_eq!(server.terminate(), 0);
}

#[test]
fn server_survives_garbage_and_slow_clients() {
    let sandbox = Sandbox::new();
    let k1 = load("k1");
    let ak = authorized(&sandbox, &[&k1]);
    let server = sandbox.serve(&["--authorized-keys", ak.to_str().unwrap()]);
    let good = |path: &str| {
        let (uri, tok) = signed(&k1, "GET", path, now());
        server.request("GET", &uri, &auth(&tok)).0
    };

    // Slow clients: half-open requests held while good ones are answered.
    let mut slow = Vec::new();
    for i in 0..8 {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        s.write_all(format!("GET /api/tags?ts={i} HTTP/1.1\r\nHost: x\r\nX-Slow: ").as_bytes())
            .unwrap();
        slow.push(s);
    }
    // And some that connect and say nothing.
    for _ in 0..4 {
        slow.push(TcpStream::connect(&server.addr).unwrap());
    }
    assert_eq!(good("/api/tags"), 200);

    // A huge header: 431, not unbounded memory.
    let huge = format!(
        "GET /api/tags?ts=1 HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    assert_eq!(server.send(huge.as_bytes()).0, 431);
    // Too many headers.
    let mut many = String::from("GET / HTTP/1.1\r\n");
    for i in 0..500 {
        many.push_str(&format!("X-{i}: y\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(server.send(many.as_bytes()).0, 431);
    // A body larger than the limit.
    let big_body = "POST /api/me?ts=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n";
    assert_eq!(server.send(big_body.as_bytes()).0, 413);
    // A small body is read and thrown away; the answer is the usual one.
    let (uri, tok) = signed(&k1, "POST", "/api/me", now());
    let with_body = format!(
        "POST {uri} HTTP/1.1\r\nHost: x\r\nAuthorization: {tok}\r\nContent-Length: 5\r\n\r\nhello"
    );
    assert_eq!(server.send(with_body.as_bytes()).0, 200);
    // Not HTTP at all (a TLS ClientHello), and random bytes.
    assert_eq!(
        server
            .send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")
            .0,
        400
    );
    let noise: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let (status, _) = server.send(&noise);
    assert!(status == 400 || status == 0, "{status}");
    // Binary tokens: bytes a header may carry (obs-text), and NUL, which it may not.
    let mut binary = b"GET /api/tags?ts=1 HTTP/1.1\r\nHost: x\r\nAuthorization: ".to_vec();
    binary.extend_from_slice(b"\xff\xfe\x80AAAA:\xc3\x28");
    binary.extend_from_slice(b"\r\n\r\n");
    assert_eq!(server.send(&binary).0, 401);
    let mut nul = b"GET /api/tags?ts=1 HTTP/1.1\r\nHost: x\r\nAuthorization: ".to_vec();
    nul.extend_from_slice(b"AAAA\x00BBBB\r\n\r\n");
    let (status, _) = server.send(&nul);
    assert!(status == 400 || status == 401, "{status}");
    // A long token is just malformed.
    let long = format!("Authorization: {}:{}", "A".repeat(8000), "B".repeat(4000));
    assert_eq!(server.request("GET", "/api/tags?ts=1", &[long]).0, 401);

    // Through all that, good requests still get in.
    assert_eq!(good("/api/ps"), 200);
    drop(slow);
    assert_eq!(good("/api/version"), 200);
    assert!(!server.log().contains("panicked"));
    assert_eq!(server.terminate(), 0);
}

#[test]
fn server_rereads_authorized_keys_when_they_change() {
    let sandbox = Sandbox::new();
    let k1 = load("k1");
    let ak = sandbox.path("authorized_keys");
    std::fs::write(&ak, "# nobody yet\n").unwrap();
    let server = sandbox.serve(&["--authorized-keys", ak.to_str().unwrap()]);
    let try_k1 = |path: &str| {
        let (uri, tok) = signed(&k1, "GET", path, now());
        server.request("GET", &uri, &auth(&tok)).0
    };
    assert_eq!(try_k1("/a"), 401);
    // Replaced atomically, as editors and config management do.
    let tmp = sandbox.path("ak.new");
    std::fs::write(&tmp, format!("{} me\n", k1.public_key().to_line())).unwrap();
    std::fs::rename(&tmp, &ak).unwrap();
    assert_eq!(try_k1("/b"), 200);
    // Rewritten in place (different length): noticed too.
    std::fs::write(&ak, "# revoked everyone\n\n").unwrap();
    assert_eq!(try_k1("/c"), 401);
    // Deleted: nobody gets in, and the server keeps running.
    std::fs::remove_file(&ak).unwrap();
    assert_eq!(try_k1("/d"), 401);
    std::fs::write(&ak, format!("{}\n", k1.public_key().to_line())).unwrap();
    assert_eq!(try_k1("/e"), 200);
    // Opened to others: refused; closed again: counts again.
    std::fs::set_permissions(&ak, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(try_k1("/f"), 401);
    std::fs::set_permissions(&ak, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(try_k1("/g"), 200);
    let log = server.log();
    assert!(log.contains("loaded 1 key(s)"), "{log}");
    assert!(log.contains("cannot read"), "{log}");
    assert_eq!(server.terminate(), 0);
}

/// `METHOD URI` with the given Host line (or none) and extra headers.
fn with_host(
    server: &olm_tests::serve::Served,
    method: &str,
    uri: &str,
    host: Option<&str>,
    headers: &[String],
) -> u16 {
    let mut raw = format!("{method} {uri} HTTP/1.1\r\n");
    if let Some(h) = host {
        raw.push_str(&format!("Host: {h}\r\n"));
    }
    for h in headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    server.send(raw.as_bytes()).0
}

#[test]
fn stand_in_answers_only_this_machine_and_no_other_site() {
    let sandbox = Sandbox::new();
    let k1 = load("k1");
    let ak = sandbox.path("ak");
    let server = sandbox.serve(&["--stand-in", "--authorized-keys", ak.to_str().unwrap()]);
    let port = server.addr.rsplit_once(':').unwrap().1.to_string();
    let connect = format!("/connect?name=web&key={}", k1.public_key().encoded());
    // DNS rebinding: a name that resolves here but is not this machine's.
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!("localhost.evil.example:{port}"),
        "127.0.0.1:1".to_string(),
    ] {
        assert_eq!(
            with_host(&server, "GET", &connect, Some(&host), &[]),
            421,
            "{host}"
        );
    }
    assert_eq!(with_host(&server, "GET", &connect, None, &[]), 400);
    // Another site's page (a link, an image): refused by the browser's word.
    for site in ["cross-site", "same-site"] {
        let h = [format!("Sec-Fetch-Site: {site}")];
        assert_eq!(
            with_host(&server, "GET", &connect, Some(&server.addr), &h),
            403
        );
    }
    assert_eq!(
        std::fs::read_to_string(&ak).unwrap(),
        "",
        "nothing was added"
    );
    let (uri, tok) = signed(&k1, "POST", "/api/me", now());
    assert_eq!(
        with_host(&server, "POST", &uri, Some("evil.example"), &auth(&tok)),
        421
    );
    // Opened by the user (Sec-Fetch-Site: none), by name or address: fine.
    let h = ["Sec-Fetch-Site: none".to_string()];
    let localhost = format!("localhost:{port}");
    assert_eq!(
        with_host(&server, "GET", &connect, Some(&localhost), &h),
        200
    );
    assert_eq!(
        with_host(&server, "POST", &uri, Some(&server.addr), &auth(&tok)),
        200
    );
    // The plain verifier's paths do not look at Host (nginx names its upstream).
    let (uri, tok) = signed(&k1, "GET", "/api/tags", now());
    assert_eq!(
        with_host(&server, "GET", &uri, Some("upstream"), &auth(&tok)),
        200
    );
    // Removing a key that is not listed says so.
    let k2 = load("k2");
    let (uri, tok) = signed(
        &k1,
        "DELETE",
        &format!("/api/user/keys/{}", k2.public_key().encoded()),
        now(),
    );
    assert_eq!(server.request("DELETE", &uri, &auth(&tok)).0, 401);
    let log = server.log();
    assert!(
        log.contains(&format!(
            "key {} is not connected",
            k2.public_key().fingerprint()
        )),
        "{log}"
    );
}

#[test]
fn a_stand_in_warns_when_its_file_already_lists_keys() {
    let sandbox = Sandbox::new();
    let ak = authorized(&sandbox, &[&load("k1")]);
    let server = sandbox.serve(&["--stand-in", "--authorized-keys", ak.to_str().unwrap()]);
    let log = server.log();
    assert!(
        log.contains("already lists 1 key(s)")
            && log.contains("never give it the file of a real --serve deployment"),
        "{log}"
    );
    let fresh = sandbox.path("fresh");
    let server = sandbox.serve(&["--stand-in", "--authorized-keys", fresh.to_str().unwrap()]);
    assert!(!server.log().contains("already lists"), "{}", server.log());
}

#[test]
fn original_headers_are_taken_once() {
    let sandbox = Sandbox::new();
    let k1 = load("k1");
    let k2 = load("k2");
    let ak = authorized(&sandbox, &[&k1]);
    let server = sandbox.serve(&["--authorized-keys", ak.to_str().unwrap()]);
    let (uri, tok) = signed(&k1, "GET", "/api/tags", now());
    let mut headers = auth(&tok);
    headers.push(format!("X-Original-URI: {uri}"));
    headers.push("X-Original-URI: /api/other?ts=1".into());
    assert_eq!(server.request("GET", "/_auth", &headers).0, 400);
    let mut headers = auth(&tok);
    headers.push("X-Original-Method: GET".into());
    headers.push("X-Original-Method: POST".into());
    headers.push(format!("X-Original-URI: {uri}"));
    assert_eq!(server.request("GET", "/_auth", &headers).0, 400);
    // Once each: believed (the peer is this machine).
    let mut headers = auth(&tok);
    headers.push("X-Original-Method: GET".into());
    headers.push(format!("X-Original-URI: {uri}"));
    assert_eq!(server.request("GET", "/_auth", &headers).0, 200);
    // An unlisted key is refused for that, even with a bad signature.
    let (uri2, _) = signed(&k2, "GET", "/api/tags", now());
    let (_, tok2) = signed(&k2, "GET", "/api/other", now());
    assert_eq!(server.request("GET", &uri2, &auth(&tok2)).0, 401);
    let log = server.log();
    assert!(log.contains("more than one X-Original-URI header"), "{log}");
    assert!(
        log.contains("more than one X-Original-Method header"),
        "{log}"
    );
    assert!(
        log.contains(&format!("key {} is not in", k2.public_key().fingerprint())),
        "{log}"
    );
}

#[test]
fn stand_in_connects_answers_me_and_revokes() {
    let sandbox = Sandbox::new();
    let k1 = load("k1");
    let ak = sandbox.path("stand-in").join("authorized_keys");
    std::fs::create_dir(sandbox.path("stand-in")).unwrap();
    let server = sandbox.serve(&["--stand-in", "--authorized-keys", ak.to_str().unwrap()]);
    // The file is created, owner-only.
    let mode = std::fs::metadata(&ak).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let encoded = k1.public_key().encoded();
    let me = || {
        let (uri, tok) = signed(&k1, "POST", "/api/me", now());
        server.request("POST", &uri, &auth(&tok))
    };

    // Not connected: 401 with a sign-in URL for this key on this server.
    let (status, body) = me();
    assert_eq!(status, 401);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"], "unauthorized");
    assert_eq!(
        json["signin_url"],
        format!("{}/connect?name=device&key={encoded}", server.url)
    );

    // Connect, as a browser would; twice changes nothing.
    let connect = format!("/connect?name=ci%20box&key={encoded}");
    let (status, body) = server.request("GET", &connect, &[]);
    assert_eq!(status, 200);
    assert!(body.contains("connected ci box"), "{body}");
    let (status, _) = server.request("GET", &connect, &[]);
    assert_eq!(status, 200);
    assert_eq!(
        std::fs::read_to_string(&ak).unwrap(),
        format!("{} ci box\n", k1.public_key().to_line())
    );
    let mode = std::fs::metadata(&ak).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A bad key is refused.
    assert_eq!(
        server.request("GET", "/connect?name=x&key=AAAA", &[]).0,
        400
    );

    // Signed in now.
    let (status, body) = me();
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["name"], "ci box");
    for field in ["id", "email", "plan"] {
        assert!(json[field].is_string(), "{field} in {json}");
    }
    // Like ollama.com, the account endpoints take the same token twice:
    // Ollama signs whole seconds, so two calls in one second repeat it.
    let (uri, tok) = signed(&k1, "POST", "/api/me", now());
    assert_eq!(server.request("POST", &uri, &auth(&tok)).0, 200);
    assert_eq!(server.request("POST", &uri, &auth(&tok)).0, 200);
    // Other paths verify as the plain server does, replays refused.
    let (uri, tok) = signed(&k1, "GET", "/api/tags", now());
    assert_eq!(server.request("GET", &uri, &auth(&tok)).0, 200);
    assert_eq!(server.request("GET", &uri, &auth(&tok)).0, 401);

    // Revoke: the key leaves the file; then /api/me is 401 again.
    let (uri, tok) = signed(&k1, "DELETE", &format!("/api/user/keys/{encoded}"), now());
    let (status, body) = server.request("DELETE", &uri, &auth(&tok));
    assert_eq!((status, body.as_str()), (200, "{}"));
    assert_eq!(std::fs::read_to_string(&ak).unwrap(), "");
    assert_eq!(me().0, 401);
    let (uri, tok) = signed(&k1, "DELETE", &format!("/api/user/keys/{encoded}"), now());
    assert_eq!(server.request("DELETE", &uri, &auth(&tok)).0, 401);
    assert_eq!(server.terminate(), 0);
}

#[test]
fn stand_in_without_a_file_keeps_keys_in_memory() {
    let sandbox = Sandbox::new();
    let k2 = load("k2");
    let server = sandbox.serve(&["--stand-in"]);
    let me = || {
        let (uri, tok) = signed(&k2, "POST", "/api/me", now());
        server.request("POST", &uri, &auth(&tok)).0
    };
    assert_eq!(me(), 401);
    let connect = format!("/connect?key={}", k2.public_key().encoded());
    assert_eq!(server.request("GET", &connect, &[]).0, 200);
    assert_eq!(me(), 200);
    assert_eq!(server.terminate(), 0);
}

#[test]
fn stand_in_works_with_olm_sign_and_curl() {
    if !olm_tests::have("curl") {
        olm_tests::skipped!("SKIPPED stand_in_works_with_olm_sign_and_curl: curl is not installed");
        return;
    }
    let sandbox = Sandbox::new();
    let key = sandbox.vector_key("k1");
    let k = key.to_str().unwrap();
    let ak = sandbox.path("ak");
    let server = sandbox.serve(&["--stand-in", "--authorized-keys", ak.to_str().unwrap()]);
    let url = &server.url;
    let script = format!(
        "connect=$(olm-keygen -y -k {k} | olm-connect-url --base {url} --name pipeline)\n\
         curl -sS -o /dev/null -w '%{{http_code}}\\n' \"$connect\"\n\
         olm-sign -k {k} -X POST /api/me --base {url} --format curl | curl -sS -K -\n"
    );
    let out = sandbox.sh(&script);
    out.assert_code(0);
    let lines = out.lines();
    assert_eq!(lines[0], "200", "{}", out.text());
    let me: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(me["name"], "pipeline");
}

#[test]
fn serve_usage_errors() {
    let sandbox = Sandbox::new();
    sandbox
        .run("olm-verify", ["--serve", "127.0.0.1:0"], b"")
        .assert_error(2, "olm-verify", "--authorized-keys");
    let out = sandbox.run("olm-verify", ["--stand-in"], b"");
    out.assert_code(2);
    let ak = sandbox.path("ak");
    std::fs::write(&ak, "").unwrap();
    sandbox
        .run(
            "olm-verify",
            [
                "--serve",
                "256.0.0.1:0",
                "--authorized-keys",
                ak.to_str().unwrap(),
            ],
            b"",
        )
        .assert_error(2, "olm-verify", "256.0.0.1:0");
    // Stopping: SIGTERM exits 0 even while a slow client is connected.
    let server = sandbox.serve(&["--authorized-keys", ak.to_str().unwrap()]);
    let _slow = TcpStream::connect(&server.addr).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(server.terminate(), 0);
}

/// A copy of vector key k1's private key file, mode 0600, at `name`.
fn private_key_file(sandbox: &Sandbox, name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let path = sandbox.path(name);
    let bytes = std::fs::read(vectors_dir().join("keys/k1")).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (path, bytes)
}

/// Asserts that no line of the private key file shows up in `text`.
#[track_caller]
fn assert_no_key_bytes(key: &[u8], text: &str) {
    for line in String::from_utf8_lossy(key).lines() {
        let body = line.trim();
        if body.starts_with("-----") || body.len() < 8 {
            continue;
        }
        assert!(!text.contains(&body[..8]), "key bytes leaked: {text}");
    }
}

#[test]
fn a_private_key_as_authorized_keys_is_refused_and_left_alone() {
    let sandbox = Sandbox::new();
    let (pem, bytes) = private_key_file(&sandbox, "id_ed25519");
    let pem_s = pem.to_str().unwrap();
    let k1 = load("k1");
    let (uri, tok) = signed(&k1, "POST", "/api/me", now());
    let want = format!("{pem_s:?} is a private key, not an authorized_keys file");
    let hint = format!("hint: use \"{pem_s}.pub\"");
    for args in [
        vec![
            "--token",
            &tok,
            "-X",
            "POST",
            &uri,
            "--authorized-keys",
            pem_s,
        ],
        vec!["--lines", "--authorized-keys", pem_s],
        vec!["--serve", "127.0.0.1:0", "--authorized-keys", pem_s],
        vec![
            "--serve",
            "127.0.0.1:0",
            "--stand-in",
            "--authorized-keys",
            pem_s,
        ],
    ] {
        let out = sandbox.run("olm-verify", &args, b"");
        out.assert_error(2, "olm-verify", &want);
        assert!(out.stderr.contains(&hint), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("warning"), "{}", out.stderr);
        assert_no_key_bytes(&bytes, &out.stderr);
        assert!(out.stdout.is_empty(), "{args:?} started: {}", out.text());
    }
    assert_eq!(
        std::fs::read(&pem).unwrap(),
        bytes,
        "the key file is untouched"
    );
}

#[test]
fn a_stand_in_never_writes_into_a_file_it_cannot_read() {
    let sandbox = Sandbox::new();
    let ak = sandbox.path("ak");
    let server = sandbox.serve(&["--stand-in", "--authorized-keys", ak.to_str().unwrap()]);
    // The file is swapped for a private key while the stand-in runs.
    let (pem, bytes) = private_key_file(&sandbox, "key");
    std::fs::rename(&pem, &ak).unwrap();
    let encoded = load("k2").public_key().encoded();
    let (status, _) = server.request("GET", &format!("/connect?name=x&key={encoded}"), &[]);
    assert_eq!(status, 500);
    assert_eq!(
        std::fs::read(&ak).unwrap(),
        bytes,
        "the key file is untouched"
    );
    let log = server.log();
    assert!(
        log.contains("is a private key, not an authorized_keys file"),
        "{log}"
    );
    assert_no_key_bytes(&bytes, &log);
    // Once it is gone, /connect may make the file anew.
    std::fs::remove_file(&ak).unwrap();
    let (status, _) = server.request("GET", &format!("/connect?name=x&key={encoded}"), &[]);
    assert_eq!(status, 200);
    assert!(std::fs::read_to_string(&ak)
        .unwrap()
        .contains("ssh-ed25519 "));
    assert_eq!(server.terminate(), 0);
}

#[test]
fn bad_lines_are_reported_without_their_content() {
    let sandbox = Sandbox::new();
    let k1 = load("k1");
    let ak = sandbox.path("ak");
    std::fs::write(
        &ak,
        format!(
            "SeCrEtStUfF here\nssh-ed25519 SeCrEtStUfF\n{}\n",
            k1.public_key().to_line()
        ),
    )
    .unwrap();
    let ak_s = ak.to_str().unwrap();
    let (uri, tok) = signed(&k1, "GET", "/x", now());
    let out = sandbox.run(
        "olm-verify",
        [
            "--token",
            &tok,
            "-X",
            "GET",
            &uri,
            "--authorized-keys",
            ak_s,
        ],
        b"",
    );
    out.assert_code(0);
    assert!(!out.stderr.contains("SeCrEt"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "warning: {ak_s:?} line 1: not a key line (no key type where one was expected)"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("line 2: not a key line (the key is not valid base64)"),
        "{}",
        out.stderr
    );
    let server = sandbox.serve(&["--authorized-keys", ak_s]);
    let log = server.log();
    assert!(log.contains("line 2: not a key line"), "{log}");
    assert!(!log.contains("SeCrEt"), "{log}");
    assert_eq!(server.terminate(), 0);
}

#[test]
fn a_missing_or_open_authorized_keys_file_says_how_to_fix_it() {
    let sandbox = Sandbox::new();
    let k1 = load("k1");
    let (uri, tok) = signed(&k1, "GET", "/x", now());
    let missing = sandbox.path("nonexist");
    let m = missing.to_str().unwrap();
    for args in [
        vec!["--token", &tok, "-X", "GET", &uri, "--authorized-keys", m],
        vec!["--serve", "127.0.0.1:0", "--authorized-keys", m],
    ] {
        let out = sandbox.run("olm-verify", &args, b"");
        out.assert_error(
            2,
            "olm-verify",
            &format!("{m:?}: no such authorized keys file"),
        );
        assert!(
            out.stderr
                .contains(&format!("hint: list who may sign there, one public key line each: cat ~/.ollama/id_ed25519.pub >> {m:?}")),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("os error"), "{}", out.stderr);
    }
    let ak = sandbox.path("ak");
    std::fs::write(&ak, format!("{}\n", k1.public_key().to_line())).unwrap();
    std::fs::set_permissions(&ak, std::fs::Permissions::from_mode(0o664)).unwrap();
    let a = ak.to_str().unwrap();
    let out = sandbox.run(
        "olm-verify",
        ["--token", &tok, "-X", "GET", &uri, "--authorized-keys", a],
        b"",
    );
    out.assert_error(
        2,
        "olm-verify",
        &format!("{a:?}: permissions 0664 let other users add keys"),
    );
    assert!(
        out.stderr.ends_with(&format!("\nhint: chmod go-w {a:?}\n")),
        "{}",
        out.stderr
    );
}

#[test]
fn stdin_on_a_terminal_is_refused_not_awaited() {
    if !olm_tests::have("script") || !olm_tests::have("timeout") {
        olm_tests::skipped!("SKIPPED stdin_on_a_terminal_is_refused_not_awaited: script or timeout is not installed");
        return;
    }
    let sandbox = Sandbox::new();
    for (cmd, needle) in [
        (
            "olm-verify --lines",
            "stdin is a terminal; pipe TOKEN<TAB>CHALLENGE lines in",
        ),
        (
            "olm-verify --token x:y",
            "stdin is a terminal; pipe the challenge (the exact signed bytes) in",
        ),
    ] {
        // `script` gives the command a pseudo-terminal as stdin; `timeout`
        // ends it (rc=124) if it waits for typing instead.
        let out = sandbox.sh(&format!(
            "timeout 10 script -qec '{cmd}; echo \"rc=$?\"' /dev/null < /dev/null"
        ));
        let text = out.text();
        assert!(text.contains(needle), "{cmd}: {text}");
        assert!(text.contains("hint: "), "{cmd}: {text}");
        assert!(text.contains("rc=2"), "{cmd}: {text}");
    }
}
