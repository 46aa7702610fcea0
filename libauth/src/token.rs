//! Tokens: `<base64(wire blob)>:<base64(signature)>` (PROTOCOL.md §2).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::Signature;

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
        let text = text.strip_prefix("Bearer ").unwrap_or(text).trim();
        if text.is_empty() {
            return Err(Error::TokenFormat("the token is empty".into()));
        }
        let (key, sig) = text.split_once(':').ok_or_else(|| {
            Error::TokenFormat("there is no signature part (expected KEY:SIGNATURE)".into())
        })?;
        let blob = STANDARD
            .decode(key)
            .map_err(|_| Error::TokenFormat("the key part is not base64".into()))?;
        let key = PublicKey::from_blob(&blob)?;
        let sig = STANDARD
            .decode(sig)
            .map_err(|_| Error::TokenFormat("the signature part is not base64".into()))?;
        let sig: [u8; 64] = sig.as_slice().try_into().map_err(|_| {
            Error::TokenFormat(format!(
                "the signature is {} bytes, an Ed25519 signature is 64",
                sig.len()
            ))
        })?;
        Ok(Token {
            key,
            signature: Signature::from_bytes(&sig),
        })
    }

    /// Reads an `Authorization` header value or a whole header line
    /// (`Authorization: …`), with or without `Bearer`.
    pub fn from_header(header: &str) -> Result<Token> {
        let value = match header.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("authorization") => value,
            _ => header,
        };
        let value = value.trim();
        let value = strip_bearer(value);
        Token::parse(value)
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

/// Signs many challenges with one key, reusing the encoded key half.
///
/// This is the hot path of `olm-sign --lines`: no allocation per token.
pub struct Signer<'k> {
    key: &'k PrivateKey,
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
        Signer { key, prefix }
    }

    /// Appends the token for `challenge` to `out` (no newline).
    pub fn sign_into(&self, challenge: &[u8], out: &mut Vec<u8>) {
        let sig = self.key.sign(challenge).to_bytes();
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
