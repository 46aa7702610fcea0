//! What each fuzz target checks, shared with `tests/tests/fuzz_regressions.rs`
//! (which includes this file), so a crashing input kept as a regression test
//! runs through exactly the checks that found it.
//!
//! Every check: the parser must not panic, must not take unbounded memory,
//! and where it accepts its input, what it prints must read back the same.
//! Error messages stay short and never echo key material.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libauth::base::split_absolute;
use libauth::challenge::parse_ts;
use libauth::{
    connect_url, ApiRequest, BaseUrl, ConnectForm, PrivateKey, PublicKey, RegistryChallenge, Token,
};

/// The longest error message a parser may produce: enough to name a value,
/// too short to echo an input.
const MESSAGE_LIMIT: usize = 400;

fn short_message(e: &libauth::Error) -> String {
    let msg = e.to_string();
    assert!(msg.len() <= MESSAGE_LIMIT, "message too long: {msg}");
    msg
}

/// The public key of RFC 8032's first test vector.
pub fn rfc8032_key() -> PublicKey {
    PublicKey::from_bytes(&[
        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07,
        0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07,
        0x51, 0x1a,
    ])
    .expect("RFC 8032 test key")
}

/// Wraps bytes as an OpenSSH PEM block, so the fuzzer reaches the binary
/// decoder behind the armor.
pub fn armor(body: &[u8]) -> Vec<u8> {
    let b64 = STANDARD.encode(body);
    let mut out = b"-----BEGIN OPENSSH PRIVATE KEY-----\n".to_vec();
    for chunk in b64.as_bytes().chunks(70) {
        out.extend_from_slice(chunk);
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END OPENSSH PRIVATE KEY-----\n");
    out
}

/// `openssh_key`: the first byte picks raw text (even) or armored binary
/// (odd); the key must parse, or fail with a short message that holds no
/// line of the input; a parsed key writes back to a key that parses the same.
pub fn openssh_key(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        armor(rest)
    };
    match PrivateKey::from_openssh(&text) {
        Ok(key) => {
            let written = key.to_openssh().expect("a key olm read encodes");
            let again = PrivateKey::from_openssh(written.as_bytes())
                .expect("a key olm read writes back to a key olm reads");
            assert!(key.same_key(&again));
            assert_eq!(key.public_key(), again.public_key());
            let line = key.public_key().to_line();
            assert_eq!(
                PublicKey::from_line(&line).expect("own line"),
                key.public_key()
            );
            let token = Token::sign(&key, rest);
            token.verify(rest).expect("own signature verifies");
        }
        Err(e) => {
            let msg = short_message(&e);
            // Key material is base64: no run of 16 base64 characters in the
            // message may come from the input.
            for run in base64_runs(&msg) {
                assert!(
                    !contains(&text, run.as_bytes()),
                    "message echoes input: {msg}"
                );
            }
        }
    }
    public_key_line(rest);
}

/// Maximal runs of 16 or more base64 characters in `msg`.
pub fn base64_runs(msg: &str) -> Vec<&str> {
    msg.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c)))
        .filter(|r| r.len() >= 16)
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Public key lines and wire blobs: accepted ones print back the same key.
pub fn public_key_line(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        match PublicKey::from_line(text) {
            Ok(k) => assert_eq!(PublicKey::from_line(&k.to_line()).expect("own line"), k),
            Err(e) => {
                short_message(&e);
            }
        }
    }
    if let Ok(k) = PublicKey::from_blob(data) {
        assert_eq!(k.blob().as_slice(), data, "a blob reads back byte for byte");
    }
}

/// `token`: the first line is a token or `Authorization` header, the rest
/// the challenge. A parsed token prints back to itself; verifying it
/// against anything never panics.
pub fn token(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (first, challenge) = text.split_once('\n').unwrap_or((&text, ""));
    for parsed in [Token::parse(first), Token::from_header(first)] {
        match parsed {
            Ok(t) => {
                let shown = t.to_string();
                assert_eq!(shown.len(), libauth::token::TOKEN_LEN);
                assert_eq!(Token::parse(&shown).expect("own token"), t);
                assert_eq!(
                    Token::from_header(&format!("Authorization: Bearer {shown}"))
                        .expect("own header"),
                    t
                );
                let _ = t.verify(challenge.as_bytes());
            }
            Err(e) => {
                short_message(&e);
            }
        }
    }
}

/// `request`: newline-separated METHOD, URI, registry challenge, base URL.
/// A built request's URI rebuilds to itself and reads back (as a verifier
/// would) to the same challenge and ts; base URLs print back to themselves.
pub fn request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.splitn(4, '\n');
    let method = fields.next().unwrap_or_default();
    let uri = fields.next().unwrap_or_default();
    let header = fields.next().unwrap_or_default();
    let base = fields.next().unwrap_or_default();
    let ts = 1_700_000_000;

    match ApiRequest::new(method, uri, ts) {
        Ok(req) => {
            let ru = req.request_uri();
            let again = ApiRequest::new(method, &ru, ts).expect("own request URI rebuilds");
            assert_eq!(again.request_uri(), ru, "encoding is idempotent");
            let (challenge, got_ts) =
                ApiRequest::received(req.method(), &ru).expect("own request URI reads back");
            assert_eq!(challenge, req.challenge());
            assert_eq!(got_ts, ts);
        }
        Err(e) => {
            short_message(&e);
        }
    }
    if let Err(e) = ApiRequest::received(method, uri) {
        short_message(&e);
    }
    let _ = parse_ts(uri);

    match RegistryChallenge::parse(header) {
        Ok(rc) => {
            if let Ok(url) = rc.url(ts, &[7; 16]) {
                let _ = RegistryChallenge::challenge_for(&url);
                let _ = split_absolute(&url);
            }
        }
        Err(e) => {
            short_message(&e);
        }
    }

    match BaseUrl::parse(base) {
        Ok(b) => {
            let shown = b.to_string();
            assert_eq!(BaseUrl::parse(&shown).expect("own base"), b);
            let key = rfc8032_key();
            for form in [ConnectForm::Server, ConnectForm::App] {
                let url = connect_url(&b, header, &key, form);
                assert!(url.starts_with(&shown));
            }
            let _ = b.port();
        }
        Err(e) => {
            short_message(&e);
        }
    }
    match split_absolute(base) {
        Ok((_, uri)) => assert!(uri.starts_with('/')),
        Err(e) => {
            short_message(&e);
        }
    }
}

/// `authorized_keys`: the whole input is a file's text. Parsing never
/// panics; every entry and bad line has a line number in the file; adding a
/// key then finds it, and removing it again leaves every other entry as it
/// was.
pub fn authorized_keys(data: &[u8]) {
    use libauth::authorized_keys::{
        clean_comment, with_key_added, with_key_removed, AuthorizedKeys,
    };
    let text = String::from_utf8_lossy(data);
    let parsed = AuthorizedKeys::parse(&text);
    let lines = text.lines().count();
    for e in parsed.entries() {
        assert!(e.line >= 1 && e.line <= lines, "entry line {}", e.line);
    }
    for b in parsed.bad_lines() {
        assert!(b.line >= 1 && b.line <= lines, "bad line {}", b.line);
        assert!(b.why.len() <= MESSAGE_LIMIT, "message too long: {}", b.why);
    }
    let key = rfc8032_key();
    let comment = text.lines().next().unwrap_or_default();
    let cleaned = clean_comment(comment);
    assert!(cleaned.chars().count() <= 200);
    assert!(!cleaned.chars().any(char::is_control));
    let others = |keys: &AuthorizedKeys| -> Vec<(String, String)> {
        keys.entries()
            .iter()
            .filter(|e| e.key != key)
            .map(|e| (e.key.to_line(), e.comment.clone()))
            .collect()
    };
    match with_key_added(&text, &key, comment) {
        None => assert!(parsed.contains(&key)),
        Some(added) => {
            assert!(!parsed.contains(&key));
            let after = AuthorizedKeys::parse(&added);
            assert!(after.contains(&key), "an added key is found");
            assert_eq!(others(&after), others(&parsed), "adding keeps the rest");
            let removed = with_key_removed(&added, &key).expect("the added key is removed");
            let again = AuthorizedKeys::parse(&removed);
            assert!(!again.contains(&key));
            assert_eq!(others(&again), others(&parsed), "removing keeps the rest");
        }
    }
    if let Some(removed) = with_key_removed(&text, &key) {
        let again = AuthorizedKeys::parse(&removed);
        assert!(!again.contains(&key), "every line of the key is removed");
        assert_eq!(others(&again), others(&parsed));
    }
}

/// `verify_lines`: the input is `olm-verify --lines` input. Every input
/// line gets exactly one verdict line, in order, `ok …` or `bad …`, with no
/// control character; each verdict is the one the line gets alone (batch
/// and single verification agree).
pub fn verify_lines(data: &[u8]) {
    use libauth::verify::{run_lines, verify_token, LINE_LIMIT};
    let mut out = Vec::new();
    let all_ok = run_lines(&mut &data[..], &mut out, None).expect("in-memory I/O");
    let mut inputs: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if data.is_empty() || data.ends_with(b"\n") {
        inputs.pop();
    }
    assert!(
        out.is_empty() || out.ends_with(b"\n"),
        "verdicts end with a newline"
    );
    let verdicts: Vec<&[u8]> = if out.is_empty() {
        Vec::new()
    } else {
        out[..out.len() - 1].split(|&b| b == b'\n').collect()
    };
    assert_eq!(verdicts.len(), inputs.len(), "one verdict per line");
    for (line, verdict) in inputs.iter().zip(&verdicts) {
        let ok = verdict.starts_with(b"ok ");
        assert!(ok || verdict.starts_with(b"bad "), "verdict shape");
        assert!(
            !verdict.iter().any(|b| b.is_ascii_control()),
            "control character in a verdict"
        );
        if line.len() <= LINE_LIMIT {
            if let Some(tab) = line.iter().position(|&b| b == b'\t') {
                // Batches and single checks follow the same ZIP-215 rules
                // (cofactored equation, canonical s, weak keys refused), so
                // the verdict is the one the line gets alone.
                let alone = verify_token(&line[..tab], &line[tab + 1..]).is_ok();
                assert_eq!(ok, alone, "batch and single verdicts differ");
            } else {
                assert!(!ok);
            }
        }
    }
    assert_eq!(all_ok, verdicts.iter().all(|v| v.starts_with(b"ok ")));
}
