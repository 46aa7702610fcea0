//! Tokens: `<base64(wire blob)>:<base64(signature)>` (PROTOCOL.md §2).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::DecodeSliceError;
use base64::Engine as _;
use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
use ed25519_dalek::Signature;
use sha2::Sha512;

use crate::error::{Error, Result};
use crate::key::{truncate, PrivateKey, PublicKey, BLOB_LEN};

/// Length of the base64 of a 51-byte wire blob.
const BLOB_B64_LEN: usize = BLOB_LEN.div_ceil(3) * 4;
/// Length of the base64 of a 64-byte signature.
const SIG_B64_LEN: usize = 88;
/// Length of a well-formed token.
pub const TOKEN_LEN: usize = BLOB_B64_LEN + 1 + SIG_B64_LEN;

/// A signed token: who signed, and the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    key: PublicKey,
    signature: Signature,
}

impl Token {
    /// Signs `challenge` with `key`.
    pub fn sign(key: &PrivateKey, challenge: &[u8]) -> Token {
        Token {
            key: key.public_key(),
            signature: key.sign(challenge),
        }
    }

    /// Reads a token, with or without a leading `Bearer `.
    pub fn parse(text: &str) -> Result<Token> {
        Token::parse_with(text, decode_key)
    }

    /// [`Token::parse`], taking the key from `cache` when it holds it: for
    /// many tokens of the same few keys (`olm-verify --lines`).
    pub fn parse_cached(text: &str, cache: &mut KeyCache) -> Result<Token> {
        Token::parse_with(text, |b64| cache.key(b64))
    }

    fn parse_with(text: &str, key_for: impl FnOnce(&str) -> Result<PublicKey>) -> Result<Token> {
        let text = text.strip_prefix("Bearer ").unwrap_or(text).trim();
        if text.is_empty() {
            return Err(Error::TokenFormat("the token is empty".into()));
        }
        let (key, sig) = text.split_once(':').ok_or_else(|| {
            Error::TokenFormat("there is no signature part (expected KEY:SIGNATURE)".into())
        })?;
        let key = key_for(key)?;
        let not_base64 = || Error::TokenFormat("the signature part is not base64".into());
        // Decoded on the stack; only an over-long part takes the slow path,
        // to say how long it is.
        let mut bytes = [0u8; 66];
        let n = match STANDARD.decode_slice(sig, &mut bytes) {
            Ok(n) => n,
            Err(DecodeSliceError::OutputSliceTooSmall) => {
                let n = STANDARD.decode(sig).map_err(|_| not_base64())?.len();
                return Err(signature_length(n));
            }
            Err(_) => return Err(not_base64()),
        };
        let sig: [u8; 64] = bytes[..n].try_into().map_err(|_| signature_length(n))?;
        Ok(Token {
            key,
            signature: Signature::from_bytes(&sig),
        })
    }

    /// Reads an `Authorization` header value or a whole header line
    /// (`Authorization: …`), with or without `Bearer`.
    pub fn from_header(header: &str) -> Result<Token> {
        Token::parse(header_value(header))
    }

    /// [`Token::from_header`] with a [`KeyCache`].
    pub fn from_header_cached(header: &str, cache: &mut KeyCache) -> Result<Token> {
        Token::parse_cached(header_value(header), cache)
    }

    /// Checks the signature over `challenge`.
    pub fn verify(&self, challenge: &[u8]) -> Result<()> {
        self.key.verify(challenge, &self.signature)
    }

    /// The signer's public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The raw signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

/// The token in a header line or value.
fn header_value(header: &str) -> &str {
    let value = match header.split_once(':') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("authorization") => value,
        _ => header,
    };
    strip_bearer(value.trim())
}

fn signature_length(n: usize) -> Error {
    Error::TokenFormat(format!(
        "the signature is {n} bytes, an Ed25519 signature is 64"
    ))
}

/// Decodes the key half of a token (base64 of the wire blob).
fn decode_key(b64: &str) -> Result<PublicKey> {
    let not_base64 = || Error::TokenFormat("the key part is not base64".into());
    let mut blob = [0u8; BLOB_LEN + 3];
    match STANDARD.decode_slice(b64, &mut blob) {
        Ok(n) => PublicKey::from_blob(&blob[..n]),
        // Longer than any Ed25519 blob: from_blob says what it is instead.
        Err(DecodeSliceError::OutputSliceTooSmall) => {
            PublicKey::from_blob(&STANDARD.decode(b64).map_err(|_| not_base64())?)
        }
        Err(_) => Err(not_base64()),
    }
}

/// Public keys already decoded, by the key half of the token (its base64).
///
/// Decoding a key decompresses a curve point, which costs about a fifth of
/// verifying a signature in a batch; tokens in bulk mostly come from a few
/// keys. Holds the last [`KeyCache::CAPACITY`] distinct keys; a key half
/// that does not decode is never held, so errors are the same as without it.
#[derive(Default)]
pub struct KeyCache {
    entries: Vec<(String, PublicKey)>,
    next: usize,
}

impl KeyCache {
    /// How many keys a cache holds.
    pub const CAPACITY: usize = 16;

    /// An empty cache.
    pub fn new() -> Self {
        KeyCache::default()
    }

    /// The key whose blob's base64 is `b64`.
    pub fn key(&mut self, b64: &str) -> Result<PublicKey> {
        if let Some((_, key)) = self.entries.iter().find(|(s, _)| s == b64) {
            return Ok(*key);
        }
        let key = decode_key(b64)?;
        if self.entries.len() < Self::CAPACITY {
            self.entries.push((b64.to_string(), key));
        } else {
            self.entries[self.next] = (b64.to_string(), key);
            self.next = (self.next + 1) % Self::CAPACITY;
        }
        Ok(key)
    }
}

fn strip_bearer(value: &str) -> &str {
    match value.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => value[7..].trim_start(),
        _ => value,
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; TOKEN_LEN];
        let n = encode_token(&self.key.blob(), &self.signature, &mut buf);
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
    }
}

/// Shows the signer only: a token is a credential that ollama.com accepts
/// while its `ts` is fresh, so it stays out of debug output and logs.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Token(signed by {}, signature redacted)",
            self.key.fingerprint()
        )
    }
}

impl std::str::FromStr for Token {
    type Err = Error;
    fn from_str(s: &str) -> Result<Token> {
        Token::parse(s)
    }
}

fn encode_token(blob: &[u8; BLOB_LEN], sig: &Signature, out: &mut [u8; TOKEN_LEN]) -> usize {
    let a = STANDARD
        .encode_slice(blob, &mut out[..BLOB_B64_LEN])
        .unwrap_or(0);
    out[a] = b':';
    let b = STANDARD
        .encode_slice(sig.to_bytes(), &mut out[a + 1..])
        .unwrap_or(0);
    a + 1 + b
}

/// Signs many challenges with one key, reusing the encoded key half and the
/// expanded secret.
///
/// This is the hot path of `olm-sign --lines`: no allocation per token, and
/// per token only what Ed25519 itself needs (two SHA-512 passes over the
/// challenge and one fixed-base multiplication).
pub struct Signer<'k> {
    key: &'k PrivateKey,
    /// Zeroizes on drop (ed25519-dalek's `zeroize` feature).
    expanded: ExpandedSecretKey,
    prefix: [u8; BLOB_B64_LEN + 1],
}

impl<'k> Signer<'k> {
    /// Prepares to sign with `key`.
    pub fn new(key: &'k PrivateKey) -> Self {
        let mut prefix = [0u8; BLOB_B64_LEN + 1];
        let n = STANDARD
            .encode_slice(key.public_key().blob(), &mut prefix[..BLOB_B64_LEN])
            .unwrap_or(0);
        prefix[n] = b':';
        Signer {
            key,
            expanded: key.expanded(),
            prefix,
        }
    }

    /// Signs `challenge`: the same signature as [`PrivateKey::sign`].
    pub fn sign(&self, challenge: &[u8]) -> Signature {
        // The verifying key is the one derived from this secret, so the
        // hazmat function's one requirement (a matching pair) holds.
        raw_sign::<Sha512>(&self.expanded, challenge, self.key.verifying_key())
    }

    /// Appends the token for `challenge` to `out` (no newline).
    pub fn sign_into(&self, challenge: &[u8], out: &mut Vec<u8>) {
        let sig = self.sign(challenge).to_bytes();
        let mut b64 = [0u8; SIG_B64_LEN];
        let n = STANDARD.encode_slice(sig, &mut b64).unwrap_or(0);
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(&b64[..n]);
    }
}

/// Shortened, printable form of an untrusted token for messages.
pub fn describe(text: &str) -> String {
    truncate(text, 24)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PrivateKey {
        PrivateKey::from_seed(&[1u8; 32], "").expect("seed")
    }

    #[test]
    fn sign_parse_verify_round_trip() {
        let k = key();
        let t = Token::sign(&k, b"POST,/api/me?ts=1");
        let s = t.to_string();
        assert_eq!(s.len(), TOKEN_LEN);
        let back = Token::parse(&s).expect("parse");
        assert_eq!(back, t);
        back.verify(b"POST,/api/me?ts=1").expect("verifies");
        assert_eq!(back.verify(b"POST,/api/me?ts=2"), Err(Error::BadSignature));
    }

    #[test]
    fn debug_does_not_show_the_token() {
        let t = Token::sign(&key(), b"x");
        let shown = format!("{t:?}");
        let (_, sig) = t
            .to_string()
            .split_once(':')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .expect("colon");
        assert!(!shown.contains(&sig[..20]), "{shown}");
        assert!(shown.contains("SHA256:"), "{shown}");
    }

    #[test]
    fn signer_matches_token_display() {
        let k = key();
        let signer = Signer::new(&k);
        let mut out = Vec::new();
        signer.sign_into(b"abc", &mut out);
        assert_eq!(out, Token::sign(&k, b"abc").to_string().into_bytes());
    }

    #[test]
    fn signer_signs_like_the_key() {
        let k = key();
        let signer = Signer::new(&k);
        for msg in [&b""[..], b"abc", &[0xffu8; 300]] {
            assert_eq!(signer.sign(msg), k.sign(msg));
            k.public_key()
                .verify(msg, &signer.sign(msg))
                .expect("verifies");
        }
    }

    #[test]
    fn cached_parse_matches_parse() {
        let mut cache = KeyCache::new();
        let keys: Vec<PrivateKey> = (0..KeyCache::CAPACITY as u8 + 2)
            .map(|n| PrivateKey::from_seed(&[n; 32], "").expect("seed"))
            .collect();
        for round in 0..3u8 {
            for k in &keys {
                let t = Token::sign(k, &[round]).to_string();
                let (kpart, spart) = t.split_once(':').expect("colon");
                let long_sig = format!("{t}AAAA");
                let cases = [
                    t.clone(),
                    format!("{kpart}:{}", &spart[..84]),
                    format!("{kpart}:{}", &spart[1..]),
                    long_sig,
                    format!("{kpart}AAAA:{spart}"),
                    format!("{}:{spart}", &kpart[2..]),
                ];
                for text in &cases {
                    assert_eq!(
                        Token::parse_cached(text, &mut cache),
                        Token::parse(text),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn bearer_and_header_forms() {
        let k = key();
        let t = Token::sign(&k, b"x").to_string();
        assert!(Token::parse(&format!("Bearer {t}")).is_ok());
        assert!(Token::from_header(&format!("Authorization: Bearer {t}")).is_ok());
        assert!(Token::from_header(&format!("authorization: {t}")).is_ok());
        assert!(Token::from_header(&t).is_ok());
    }

    #[test]
    fn malformed_tokens_say_why() {
        let k = key();
        let t = Token::sign(&k, b"x").to_string();
        let (kpart, spart) = t.split_once(':').expect("colon");
        let cases = [
            ("", "empty"),
            (kpart, "no signature part"),
            (&t[..t.len() - 4], "bytes"),
            ("not base64!:AAAA", "key part is not base64"),
        ];
        for (input, want) in cases {
            let err = Token::parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err}");
        }
        let bad_sig = format!("{kpart}:{}", &spart[1..]);
        assert!(Token::parse(&bad_sig).is_err());
    }
}
