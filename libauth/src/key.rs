//! Ed25519 device keys: OpenSSH private keys, public key lines, fingerprints.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::hazmat::ExpandedSecretKey;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::{Algorithm, LineEnding};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The SSH algorithm name of Ed25519 keys.
pub const ALGORITHM: &str = "ssh-ed25519";

/// Length of the SSH wire blob of an Ed25519 public key:
/// `string "ssh-ed25519"` then `string <32 bytes>`.
pub const BLOB_LEN: usize = 4 + 11 + 4 + 32;

/// An Ed25519 private key as Ollama keeps it in `~/.ollama/id_ed25519`.
///
/// The secret zeroizes on drop and is never printed by `Debug`.
pub struct PrivateKey {
    signing: SigningKey,
    /// The parsed OpenSSH key, kept so that writing it back gives the same
    /// bytes (comment and check integers included).
    openssh: ssh_key::PrivateKey,
}

impl PrivateKey {
    /// Makes a new random key from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let openssh = ssh_key::PrivateKey::random(&mut rand_core::OsRng, Algorithm::Ed25519)
            .map_err(|e| Error::KeyFormat(e.to_string()))?;
        Self::from_ssh_key(openssh)
    }

    /// Reads an OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    ///
    /// Empty input, other formats, other algorithms and passphrase-protected
    /// keys are refused, each with its own [`Error`].
    pub fn from_openssh(text: &[u8]) -> Result<Self> {
        let trimmed = text.trim_ascii();
        if trimmed.is_empty() {
            return Err(Error::KeyEmpty);
        }
        if let Some(kind) = foreign_pem(trimmed) {
            return Err(kind);
        }
        if trimmed.starts_with(BEGIN)
            && (!trimmed.contains(&b'\n') || trimmed[BEGIN.len()..].starts_with(b"\\n"))
        {
            // Base64 right after the label on one line, or literal `\n`s: a
            // key whose line breaks were lost on the way (CI secrets).
            return Err(Error::KeyFlattened);
        }
        if !trimmed.starts_with(BEGIN) {
            if trimmed.starts_with(b"ssh-") || trimmed.starts_with(b"ecdsa-") {
                return Err(Error::KeyFormat(
                    "this is a public key; a private key is needed".into(),
                ));
            }
            return Err(Error::KeyFormat(
                "it does not start with -----BEGIN OPENSSH PRIVATE KEY-----".into(),
            ));
        }
        // Like ssh-keygen, read the first key and ignore what follows its END
        // line (a second key, a stray comment).
        let trimmed = match find(trimmed, END) {
            Some(at) => &trimmed[..at + END.len()],
            None => {
                return Err(Error::KeyFormat(format!(
                    "damaged or truncated: it has no {} line",
                    String::from_utf8_lossy(END)
                )))
            }
        };
        let openssh = ssh_key::PrivateKey::from_openssh(trimmed).map_err(|e| {
            // ssh-key cannot read some algorithms at all (ECDSA, DSA without
            // their features): name them from the key's public half.
            match sniff_algorithm(trimmed) {
                Some(label) if label != ALGORITHM && !matches!(e, ssh_key::Error::Encrypted) => {
                    Error::KeyType(label.to_string())
                }
                _ => describe_ssh_error(&e),
            }
        })?;
        Self::from_ssh_key(openssh)
    }

    fn from_ssh_key(openssh: ssh_key::PrivateKey) -> Result<Self> {
        if openssh.is_encrypted() {
            return Err(Error::KeyEncrypted);
        }
        let signing = match openssh.key_data() {
            KeypairData::Ed25519(pair) => {
                // One fixed-base multiplication derives the public half;
                // comparing it with the stored one is then a byte compare.
                // (`SigningKey::try_from(pair)` also decompresses the stored
                // half to compare points: 3% of a whole `olm-sign` call.)
                let signing = SigningKey::from(&pair.private);
                if signing.verifying_key().as_bytes() != pair.public.as_ref() {
                    return Err(Error::KeyFormat(
                        "its public and private halves do not match".into(),
                    ));
                }
                signing
            }
            KeypairData::Encrypted(_) => return Err(Error::KeyEncrypted),
            _ => return Err(Error::KeyType(algorithm_label(&openssh.algorithm()))),
        };
        Ok(PrivateKey { signing, openssh })
    }

    /// Builds a key from a 32-byte Ed25519 seed, with a comment.
    pub fn from_seed(seed: &[u8; 32], comment: &str) -> Result<Self> {
        let signing = SigningKey::from_bytes(seed);
        let pair = Ed25519Keypair::from(&signing);
        let openssh = ssh_key::PrivateKey::new(KeypairData::Ed25519(pair), comment)
            .map_err(|e| Error::KeyFormat(e.to_string()))?;
        Ok(PrivateKey { signing, openssh })
    }

    /// The key in OpenSSH format, as `ssh-keygen` writes it (LF line endings).
    pub fn to_openssh(&self) -> Result<Zeroizing<String>> {
        // Cannot fail for a key we parsed or made; if it ever did, callers
        // must not write an empty "key" over a good one, hence a Result.
        self.openssh
            .to_openssh(LineEnding::LF)
            .map_err(|_| Error::KeyFormat("the key could not be encoded".into()))
    }

    /// The same key with another comment.
    pub fn with_comment(&self, comment: &str) -> Self {
        let mut openssh = self.openssh.clone();
        openssh.set_comment(comment);
        PrivateKey {
            signing: self.signing.clone(),
            openssh,
        }
    }

    /// The key's comment (empty for keys Ollama makes).
    pub fn comment(&self) -> &str {
        self.openssh.comment()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key(), None)
    }

    /// Signs `message` (deterministic Ed25519, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }

    /// The secret expanded once (SHA-512 of the seed), for signing many
    /// messages; ed25519-dalek's `sign` expands it again for every one.
    pub(crate) fn expanded(&self) -> ExpandedSecretKey {
        ExpandedSecretKey::from(self.signing.as_bytes())
    }

    /// The verifying key derived from the secret (never read from a file).
    pub(crate) fn verifying_key(&self) -> &VerifyingKey {
        self.signing.as_ref()
    }

    /// The `.pub` file's text, as `ssh-keygen` writes it: the public key line,
    /// the comment (control characters made spaces, so it stays one line),
    /// and a newline.
    pub fn public_file_text(&self) -> String {
        let mut line = self.public_key().to_line();
        if !self.comment().is_empty() {
            line.push(' ');
            line.extend(
                self.comment()
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c }),
            );
        }
        line.push('\n');
        line
    }

    /// Whether two keys hold the same secret.
    pub fn same_key(&self, other: &PrivateKey) -> bool {
        // The copies are secrets too: zeroized when compared.
        let mine = Zeroizing::new(self.signing.to_bytes());
        let theirs = Zeroizing::new(other.signing.to_bytes());
        *mine == *theirs
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

const BEGIN: &[u8] = b"-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &[u8] = b"-----END OPENSSH PRIVATE KEY-----";

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Recognises PEM blocks of other formats so the message can name them.
fn foreign_pem(text: &[u8]) -> Option<Error> {
    let labels: [(&[u8], Error); 5] = [
        (
            b"-----BEGIN RSA PRIVATE KEY-----",
            Error::KeyType("RSA".into()),
        ),
        (
            b"-----BEGIN EC PRIVATE KEY-----",
            Error::KeyType("ECDSA".into()),
        ),
        (
            b"-----BEGIN DSA PRIVATE KEY-----",
            Error::KeyType("DSA".into()),
        ),
        (
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----",
            Error::KeyEncrypted,
        ),
        (
            b"-----BEGIN PRIVATE KEY-----",
            Error::KeyFormat(
                "this is a PKCS#8 key; olm reads OpenSSH keys (`ssh-keygen -p -f FILE` converts)"
                    .into(),
            ),
        ),
    ];
    labels
        .into_iter()
        .find(|(label, _)| text.starts_with(label))
        .map(|(_, e)| e)
}

/// The algorithm of an OpenSSH private key, read from its public half, as
/// one of a fixed list of names (never text from the file).
fn sniff_algorithm(text: &[u8]) -> Option<&'static str> {
    let body: Vec<u8> = text
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|l| !l.starts_with(b"-----"))
        .flatten()
        .copied()
        .collect();
    let body = Zeroizing::new(body);
    let bin = Zeroizing::new(STANDARD.decode(&*body).ok()?);
    let rest = bin.strip_prefix(b"openssh-key-v1\0")?;
    let (_cipher, rest) = read_string(rest)?;
    let (_kdf, rest) = read_string(rest)?;
    let (_kdf_options, rest) = read_string(rest)?;
    let rest = rest.get(4..)?;
    let (public, _) = read_string(rest)?;
    let (name, _) = read_string(public)?;
    let label = match name {
        b"ssh-ed25519" => ALGORITHM,
        b"ssh-rsa" => "RSA",
        b"ssh-dss" => "DSA",
        b"ecdsa-sha2-nistp256" | b"ecdsa-sha2-nistp384" | b"ecdsa-sha2-nistp521" => "ECDSA",
        b"sk-ssh-ed25519@openssh.com" => "sk-ssh-ed25519@openssh.com (security key)",
        b"sk-ecdsa-sha2-nistp256@openssh.com" => {
            "sk-ecdsa-sha2-nistp256@openssh.com (security key)"
        }
        _ => return None,
    };
    Some(label)
}

/// A name for `alg` that holds nothing read from the file: an unknown
/// algorithm's name is file content, so it is not repeated.
fn algorithm_label(alg: &Algorithm) -> String {
    match alg {
        Algorithm::Rsa { .. } => "RSA".into(),
        Algorithm::Ecdsa { .. } => "ECDSA".into(),
        Algorithm::Dsa => "DSA".into(),
        Algorithm::SkEd25519 | Algorithm::SkEcdsaSha2NistP256 => alg.as_str().to_string(),
        _ => "unknown-algorithm".into(),
    }
}

/// Turns ssh-key's error into ours with a fixed message: ssh-key's own
/// messages may quote decoded file content (an "invalid label" repeats the
/// bytes it read, which in a damaged key can be secret), so none is kept.
fn describe_ssh_error(e: &ssh_key::Error) -> Error {
    let why = match e {
        ssh_key::Error::Encrypted => return Error::KeyEncrypted,
        ssh_key::Error::AlgorithmUnknown => return Error::KeyType("unknown-algorithm".into()),
        ssh_key::Error::AlgorithmUnsupported { algorithm } => {
            return Error::KeyType(algorithm_label(algorithm))
        }
        ssh_key::Error::Crypto => "its check integers do not match (damaged?)".to_string(),
        ssh_key::Error::PublicKey => "its public and private halves do not match".to_string(),
        ssh_key::Error::Version { number } => format!("unsupported key format version {number}"),
        ssh_key::Error::TrailingData { remaining } => {
            format!("damaged: {remaining} unexpected bytes after the key")
        }
        ssh_key::Error::Encoding(_) | ssh_key::Error::FormatEncoding => {
            "damaged or truncated (its encoding is malformed)".to_string()
        }
        _ => "damaged or truncated".to_string(),
    };
    Error::KeyFormat(why)
}

/// An Ed25519 public key.
///
/// Signatures are checked by ZIP-215 rules (see [`PublicKey::verify`]). A
/// key read from bytes is decoded once for ed25519-dalek (fingerprints,
/// weakness) and once for ed25519-zebra (verification); a key derived from
/// a private key skips the second decoding (signing never needs it: 4% of
/// an `olm-sign` call) and decodes it if ever asked to verify.
#[derive(Clone, Copy)]
pub struct PublicKey(VerifyingKey, Option<ed25519_zebra::VerificationKey>);

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for PublicKey {}

impl std::hash::Hash for PublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PublicKey {
    /// Reads an authorized_keys-style line: `ssh-ed25519 AAAA… [comment]`.
    pub fn from_line(line: &str) -> Result<Self> {
        let mut fields = line.split_ascii_whitespace();
        let alg = fields
            .next()
            .ok_or_else(|| Error::PublicKeyFormat("the line is empty".into()))?;
        if alg != ALGORITHM {
            return Err(Error::PublicKeyFormat(match shown_algorithm(alg) {
                Some(name) => format!("the line starts with {name:?}, not {ALGORITHM}"),
                None => format!("the line does not start with {ALGORITHM}"),
            }));
        }
        let blob = fields
            .next()
            .ok_or_else(|| Error::PublicKeyFormat("the key field is missing".into()))?;
        let key = Self::from_blob_base64(blob)?;
        Ok(key)
    }

    /// Reads the base64 wire blob (the second field of a public key line).
    pub fn from_blob_base64(b64: &str) -> Result<Self> {
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| Error::PublicKeyFormat("the key is not valid base64".into()))?;
        Self::from_blob(&bytes)
    }

    /// Reads the SSH wire blob: `string "ssh-ed25519"`, `string key`.
    pub fn from_blob(blob: &[u8]) -> Result<Self> {
        let (name, rest) = read_string(blob)
            .ok_or_else(|| Error::PublicKeyFormat("the key blob is truncated".into()))?;
        if name != ALGORITHM.as_bytes() {
            let shown = std::str::from_utf8(name).ok().and_then(shown_algorithm);
            return Err(Error::PublicKeyFormat(match shown {
                Some(name) => format!("the key is {name:?}, not {ALGORITHM}"),
                None => format!("the key is not {ALGORITHM}"),
            }));
        }
        let (point, rest) = read_string(rest)
            .ok_or_else(|| Error::PublicKeyFormat("the key blob is truncated".into()))?;
        if !rest.is_empty() {
            return Err(Error::PublicKeyFormat(
                "the key blob has trailing bytes".into(),
            ));
        }
        let point: &[u8; 32] = point.try_into().map_err(|_| {
            Error::PublicKeyFormat(format!("the key is {} bytes, expected 32", point.len()))
        })?;
        Self::from_bytes(point)
    }

    /// Wraps a raw 32-byte public key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let invalid = || Error::PublicKeyFormat("the key is not a valid Ed25519 point".into());
        let dalek = VerifyingKey::from_bytes(bytes).map_err(|_| invalid())?;
        // ed25519-zebra has no constructor from a point: it decompresses
        // the same bytes, which ed25519-dalek just found valid.
        let zebra = ed25519_zebra::VerificationKey::try_from(*bytes).map_err(|_| invalid())?;
        Ok(PublicKey(dalek, Some(zebra)))
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The SSH wire blob (RFC 4253 §6.6, RFC 8709).
    pub fn blob(&self) -> [u8; BLOB_LEN] {
        let mut out = [0u8; BLOB_LEN];
        out[..4].copy_from_slice(&11u32.to_be_bytes());
        out[4..15].copy_from_slice(ALGORITHM.as_bytes());
        out[15..19].copy_from_slice(&32u32.to_be_bytes());
        out[19..].copy_from_slice(self.0.as_bytes());
        out
    }

    /// Standard base64 of the wire blob: the first half of a token.
    pub fn blob_base64(&self) -> String {
        STANDARD.encode(self.blob())
    }

    /// The public key line, `ssh-ed25519 <base64 blob>`, no comment.
    pub fn to_line(&self) -> String {
        format!("{ALGORITHM} {}", self.blob_base64())
    }

    /// base64url (no padding) of the public key line: the `key` of a
    /// connect URL and the `encodedKey` of `DELETE /api/user/keys/…`.
    pub fn encoded(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.to_line())
    }

    /// `SHA256:…` fingerprint, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.blob());
        format!("SHA256:{}", STANDARD_NO_PAD.encode(digest))
    }

    /// Checks `signature` over `message` by ZIP-215 rules, and refuses
    /// weak (small-order) keys.
    ///
    /// ZIP-215 (ed25519-zebra) checks the cofactored equation
    /// `[8][s]B = [8]R + [8][k]A` and requires a canonical `s < ℓ`. It is
    /// what batch verification checks too, so single and batch verification
    /// (`olm-verify --lines`) give the same verdict by construction.
    ///
    /// Ollama's Go server (`crypto/ed25519`) checks the cofactorless
    /// equation: a signature its key's owner crafted with a small-order
    /// component in `R` may pass here and not there. Neither rule lets
    /// anyone else forge or alter a token. ZIP-215 alone would accept any
    /// signature under a small-order key (the cofactor clears it, so anyone
    /// could "sign"): such keys are refused here, whatever the path.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<()> {
        if self.0.is_weak() {
            return Err(Error::BadSignature);
        }
        let zebra = match self.1 {
            Some(zebra) => zebra,
            None => ed25519_zebra::VerificationKey::try_from(self.0.to_bytes())
                .map_err(|_| Error::BadSignature)?,
        };
        zebra
            .verify(signature, message)
            .map_err(|_| Error::BadSignature)
    }

    /// The underlying ed25519-dalek key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_line())
    }
}

/// An algorithm name as messages may show it: only when it looks like one
/// (`^[a-z][a-z0-9.@-]{0,39}$`), so no other input (a pasted private key
/// line, a file's content) ever reaches a message or a log.
pub fn shown_algorithm(name: &str) -> Option<&str> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '@' | '-'));
    (first_ok && rest_ok && name.len() <= 40).then_some(name)
}

fn read_string(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let rest = &buf[4..];
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

/// Shortens untrusted text before it goes into a message, which shows it
/// with `{:?}`: the cut counts each character as escaped (`\u{7}` is six),
/// so the quoted form stays within `max` characters plus `…`.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    let mut shown = 0;
    let mut out = String::new();
    for c in s.chars() {
        shown += c.escape_debug().count();
        if shown > max {
            out.push('…');
            return out;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = include_str!("../../tests/vectors/keys/k1");
    const K1_PUB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN1vBU/y4xOtTPdcrtyDAvPqiYVhxhqpehCzdTXR32wE";

    #[test]
    fn reads_vector_key_and_derives_its_line() {
        let key = PrivateKey::from_openssh(K1.as_bytes()).expect("k1 parses");
        assert_eq!(key.public_key().to_line(), K1_PUB);
        assert!(key
            .public_key()
            .blob_base64()
            .starts_with("AAAAC3NzaC1lZDI1NTE5AAAAI"));
    }

    #[test]
    fn writes_back_the_same_bytes() {
        let key = PrivateKey::from_openssh(K1.as_bytes()).expect("k1 parses");
        assert_eq!(key.to_openssh().expect("encode").as_str(), K1);
    }

    #[test]
    fn generated_key_round_trips() {
        let key = PrivateKey::generate().expect("generate");
        let again = PrivateKey::from_openssh(key.to_openssh().expect("encode").as_bytes())
            .expect("reparse");
        assert!(key.same_key(&again));
        assert_eq!(key.public_key(), again.public_key());
    }

    #[test]
    fn refuses_empty_and_foreign_input() {
        assert_eq!(PrivateKey::from_openssh(b"").unwrap_err(), Error::KeyEmpty);
        assert_eq!(
            PrivateKey::from_openssh(b" \n\t").unwrap_err(),
            Error::KeyEmpty
        );
        assert_eq!(
            PrivateKey::from_openssh(b"-----BEGIN RSA PRIVATE KEY-----\nabc\n").unwrap_err(),
            Error::KeyType("RSA".into())
        );
        assert!(matches!(
            PrivateKey::from_openssh(K1_PUB.as_bytes()).unwrap_err(),
            Error::KeyFormat(_)
        ));
        let truncated = &K1.as_bytes()[..K1.len() / 2];
        assert!(matches!(
            PrivateKey::from_openssh(truncated).unwrap_err(),
            Error::KeyFormat(_)
        ));
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let key = PrivateKey::from_seed(&[7u8; 32], "").expect("seed");
        let shown = format!("{key:?}");
        assert!(shown.contains("ssh-ed25519 AAAA"));
        assert!(!shown.contains(&STANDARD.encode([7u8; 32])));
        assert!(!shown.contains("0707"));
    }

    #[test]
    fn public_line_parsing() {
        let k = PublicKey::from_line(&format!("{K1_PUB} user@host")).expect("line");
        assert_eq!(k.to_line(), K1_PUB);
        assert!(PublicKey::from_line("ssh-rsa AAAAB3NzaC1yc2E").is_err());
        assert!(PublicKey::from_line("ssh-ed25519").is_err());
        assert!(PublicKey::from_line("ssh-ed25519 !!!").is_err());
        // A blob that names another algorithm is refused with its name.
        let rsa_blob = STANDARD.encode(b"\0\0\0\x07ssh-rsa\0\0\0\x01\x01");
        let err = PublicKey::from_line(&format!("ssh-ed25519 {rsa_blob}")).unwrap_err();
        assert!(err.to_string().contains("ssh-rsa"), "{err}");
    }

    #[test]
    fn truncation_bounds_the_escaped_form() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc…");
        let bells = "\u{7}".repeat(100);
        let shown = format!("{:?}", truncate(&bells, 40));
        assert!(shown.chars().count() <= 40 + 3, "{shown}");
    }

    #[test]
    fn derived_and_parsed_keys_verify_alike() {
        let key = PrivateKey::from_seed(&[9; 32], "").expect("seed");
        let derived = key.public_key();
        let parsed = PublicKey::from_line(&derived.to_line()).expect("line");
        assert_eq!(derived, parsed);
        let sig = key.sign(b"m");
        for pk in [derived, parsed] {
            assert_eq!(pk.verify(b"m", &sig), Ok(()));
            assert_eq!(pk.verify(b"n", &sig), Err(Error::BadSignature));
        }
        // s + l: the same point equation, but s is not canonical.
        let mut bytes = sig.to_bytes();
        let mut carry = 0u16;
        let l: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        for (b, l) in bytes[32..].iter_mut().zip(l) {
            let sum = u16::from(*b) + u16::from(l) + carry;
            *b = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0, "s + l fits in 32 bytes");
        let high = Signature::from_bytes(&bytes);
        assert_eq!(parsed.verify(b"m", &high), Err(Error::BadSignature));
    }

    #[test]
    fn fingerprint_has_ssh_keygen_shape() {
        let k = PublicKey::from_line(K1_PUB).expect("line");
        let fp = k.fingerprint();
        assert!(fp.starts_with("SHA256:"));
        assert_eq!(fp.len(), 7 + 43);
    }
}
