//! Every vector of `tests/vectors/`, byte for byte, through the library and
//! through the built binaries.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libauth::{
    connect_url, ApiRequest, BaseUrl, ConnectForm, PrivateKey, PublicKey, RegistryChallenge, Token,
};
use olm_tests::{vectors, vectors_dir, Sandbox};

fn s<'a>(v: &'a serde_json::Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {field} missing in {v}"))
}

fn list<'a>(name: &str, v: &'a serde_json::Value) -> &'a Vec<serde_json::Value> {
    let l = v[name]
        .as_array()
        .unwrap_or_else(|| panic!("vectors.{name} missing"));
    assert!(!l.is_empty(), "vectors.{name} is empty");
    l
}

fn load(name: &str) -> PrivateKey {
    let bytes = std::fs::read(vectors_dir().join("keys").join(name)).expect("key file");
    PrivateKey::from_openssh(&bytes).expect("vector key parses")
}

#[test]
fn keys_public_lines_and_encoded_keys() {
    let v = vectors();
    let sandbox = Sandbox::new();
    for k in list("keys", &v) {
        let name = s(k, "name");
        let key = load(name);
        assert_eq!(key.public_key().to_line(), s(k, "public_key"), "{name}");
        assert_eq!(key.public_key().encoded(), s(k, "encoded_key"), "{name}");
        // The .pub file (comment or not) names the same key.
        let pub_text = std::fs::read_to_string(
            vectors_dir()
                .join(s(k, "private_key_file"))
                .with_extension("pub"),
        )
        .expect(".pub");
        assert_eq!(
            PublicKey::from_line(&pub_text).expect("pub line").to_line(),
            s(k, "public_key")
        );
        // Writing the key back gives the file ssh-keygen wrote.
        let file =
            std::fs::read_to_string(vectors_dir().join(s(k, "private_key_file"))).expect("key");
        assert_eq!(
            key.to_openssh().unwrap().as_str(),
            file,
            "{name} round trip"
        );
        // olm-keygen -y, from stdin and from -k.
        let out = sandbox.run("olm-keygen", ["-y"], file.as_bytes());
        out.assert_code(0);
        assert_eq!(out.text(), format!("{}\n", s(k, "public_key")));
        let path = sandbox.vector_key(name);
        let out = sandbox.run(
            "olm-keygen",
            ["-y", "-k"]
                .map(Into::into)
                .into_iter()
                .chain([path.into_os_string()]),
            b"",
        );
        assert_eq!(
            out.assert_code(0).text(),
            format!("{}\n", s(k, "public_key"))
        );
    }
}

#[test]
fn tokens_byte_for_byte() {
    let v = vectors();
    let sandbox = Sandbox::new();
    for t in list("tokens", &v) {
        let key = load(s(t, "key"));
        let challenge = STANDARD
            .decode(s(t, "challenge_b64"))
            .expect("challenge_b64");
        assert_eq!(
            challenge,
            s(t, "challenge").as_bytes(),
            "challenge text repeats the bytes"
        );
        let token = Token::sign(&key, &challenge);
        assert_eq!(token.to_string(), s(t, "token"), "library token for {t}");
        Token::parse(s(t, "token"))
            .expect("parse")
            .verify(&challenge)
            .expect("verifies");
        // olm-sign over stdin gives the same bytes.
        let path = sandbox.vector_key(s(t, "key"));
        let out = sandbox.run("olm-sign", ["-k".as_ref(), path.as_os_str()], &challenge);
        assert_eq!(
            out.assert_code(0).text(),
            format!("{}\n", s(t, "token")),
            "olm-sign for {t}"
        );
    }
}

#[test]
fn api_challenges_general_form() {
    let v = vectors();
    let sandbox = Sandbox::new();
    let key_path = sandbox.vector_key("k1");
    let key = load("k1");
    for c in list("api_challenges", &v) {
        let ts: u64 = s(c, "ts").parse().expect("ts");
        let req = ApiRequest::new(s(c, "method"), s(c, "request_uri"), ts).expect("request");
        assert_eq!(req.challenge().as_bytes(), s(c, "challenge").as_bytes());
        // olm-sign -X builds the same challenge and signs it.
        let out = sandbox.run(
            "olm-sign",
            [
                "-k",
                key_path.to_str().expect("utf8"),
                "-X",
                s(c, "method"),
                s(c, "request_uri"),
                "--ts",
                s(c, "ts"),
                "--format",
                "json",
            ],
            b"",
        );
        let json: serde_json::Value =
            serde_json::from_slice(&out.assert_code(0).stdout).expect("json");
        assert_eq!(json["challenge"], s(c, "challenge"));
        assert_eq!(
            json["token"],
            Token::sign(&key, s(c, "challenge").as_bytes()).to_string()
        );
        assert_eq!(
            json["url"],
            format!(
                "https://ollama.com{}",
                &s(c, "challenge")[s(c, "method").len() + 1..]
            )
        );
    }
}

#[test]
fn registry_challenges() {
    let v = vectors();
    for r in list("registry_challenges", &v) {
        let header = format!(
            "Bearer realm=\"{}\",service=\"{}\",scope=\"{}\"",
            s(r, "realm"),
            s(r, "service"),
            s(r, "scope")
        );
        let parsed = RegistryChallenge::parse(&header).expect("parse");
        let nonce_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s(r, "nonce"))
            .expect("nonce");
        let nonce: [u8; 16] = nonce_bytes.as_slice().try_into().expect("16 bytes");
        let url = parsed
            .url(s(r, "ts").parse().expect("ts"), &nonce)
            .expect("url");
        assert_eq!(
            RegistryChallenge::challenge_for(&url).as_bytes(),
            s(r, "challenge").as_bytes()
        );
    }
}

#[test]
fn connect_urls_server_form() {
    let v = vectors();
    let sandbox = Sandbox::new();
    let base = BaseUrl::parse("https://ollama.com").expect("base");
    for c in list("connect_urls", &v) {
        let key = load(s(c, "key")).public_key();
        assert_eq!(
            connect_url(&base, s(c, "name"), &key, ConnectForm::Server),
            s(c, "url")
        );
        let line = format!("{}\n", key.to_line());
        let out = sandbox.run("olm-connect-url", ["--name", s(c, "name")], line.as_bytes());
        assert_eq!(out.assert_code(0).text(), format!("{}\n", s(c, "url")));
    }
}

#[test]
fn invalid_tokens_are_refused() {
    let v = vectors();
    for t in list("invalid_tokens", &v) {
        let verdict =
            Token::parse(s(t, "token")).and_then(|tok| tok.verify(s(t, "challenge").as_bytes()));
        assert!(
            verdict.is_err(),
            "{} must not verify ({})",
            s(t, "token"),
            s(t, "why")
        );
    }
}
