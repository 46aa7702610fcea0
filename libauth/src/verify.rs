//! Verdicts on signed tokens: the logic `olm-verify` shares between its
//! command line, `--lines` and the HTTP server.
//!
//! A token is refused for exactly one [`Reason`], whose text is what users
//! read (in an error, a `bad …` line, a server log). The checks run in a fixed
//! order: the token's form, the request's form, the signature, `ts` against the
//! clock, the authorized keys, and last the replay cache (so only tokens that
//! passed everything else are remembered). The server
//! ([`crate::serve::State::check`]) looks the signer up right after reading
//! the token, so an unlisted key costs no signature check.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io;

use ed25519_dalek::Signature;
use rand_core::{CryptoRng, RngCore};

use crate::authorized_keys::{AuthorizedKeys, Entry};
use crate::challenge::ApiRequest;
use crate::error::Error;
use crate::key::{truncate, PublicKey};
use crate::lines::Line;
use crate::token::{KeyCache, Token};

/// The default `--max-skew`: how far `ts` may be from the clock, in seconds.
pub const DEFAULT_MAX_SKEW: u64 = 300;

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The request carried no `Authorization` header.
    Missing,
    /// The token is not `KEY:SIGNATURE` in base64; the string says why.
    MalformedToken(String),
    /// The key half is not a usable ssh-ed25519 key; the string says why.
    NotEd25519(String),
    /// The signature does not verify; with the challenge when it was rebuilt
    /// from a request (so a user can compare it with what they signed).
    BadSignature {
        /// The rebuilt challenge, as text.
        challenge: Option<String>,
    },
    /// The request cannot carry a signed challenge (no `ts`, bad method, …).
    BadRequest(String),
    /// `ts` is further in the past than the skew allows.
    TooOld {
        /// The request's `ts`.
        ts: u64,
        /// Seconds between `ts` and now.
        age: u64,
        /// The allowed skew.
        max_skew: u64,
    },
    /// `ts` is further in the future than the skew allows.
    InFuture {
        /// The request's `ts`.
        ts: u64,
        /// Seconds between now and `ts`.
        ahead: u64,
        /// The allowed skew.
        max_skew: u64,
    },
    /// The signer is not listed in the authorized keys file.
    NotAuthorized {
        /// The signer's `SHA256:` fingerprint.
        fingerprint: String,
        /// The file, as messages show it.
        file: String,
    },
    /// The signer's line in the authorized keys file has expired
    /// (`expiry-time=`).
    Expired {
        /// The signer's `SHA256:` fingerprint.
        fingerprint: String,
        /// The file, as messages show it.
        file: String,
    },
    /// The same token was already accepted within the skew window.
    Replayed,
    /// Too many tokens are remembered to check for replay; refused to be safe.
    ReplayCacheFull,
    /// A `--lines` input line is not `TOKEN<TAB>CHALLENGE`.
    MalformedLine(String),
    /// The stand-in was asked to remove a key that is not listed.
    NotConnected {
        /// The key's `SHA256:` fingerprint.
        fingerprint: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => f.write_str("no Authorization header"),
            Reason::MalformedToken(why) => write!(f, "malformed token: {why}"),
            Reason::NotEd25519(why) => write!(f, "not an ssh-ed25519 key: {why}"),
            Reason::BadSignature { challenge: None } => {
                f.write_str("signature does not match this challenge")
            }
            Reason::BadSignature { challenge: Some(c) } => write!(
                f,
                "signature does not match this challenge (challenge was {:?})",
                truncate(c, 300)
            ),
            Reason::BadRequest(why) => write!(f, "bad request: {why}"),
            Reason::TooOld { ts, age, max_skew } => {
                write!(f, "ts {ts} is {age} s old (max skew {max_skew} s)")
            }
            Reason::InFuture {
                ts,
                ahead,
                max_skew,
            } => write!(
                f,
                "ts {ts} is {ahead} s in the future (max skew {max_skew} s)"
            ),
            Reason::NotAuthorized { fingerprint, file } => {
                write!(f, "key {fingerprint} is not in {file}")
            }
            Reason::Expired { fingerprint, file } => {
                write!(f, "key {fingerprint} has expired in {file} (expiry-time)")
            }
            Reason::Replayed => f.write_str("replayed token"),
            Reason::ReplayCacheFull => {
                f.write_str("too many recent tokens to check for replay; try again later")
            }
            Reason::MalformedLine(why) => write!(f, "malformed line: {why}"),
            Reason::NotConnected { fingerprint } => {
                write!(f, "key {fingerprint} is not connected")
            }
        }
    }
}

impl std::error::Error for Reason {}

impl From<Error> for Reason {
    fn from(e: Error) -> Self {
        match e {
            Error::TokenFormat(why) => Reason::MalformedToken(why),
            Error::PublicKeyFormat(why) => {
                Reason::NotEd25519(crate::authorized_keys::without_content(why))
            }
            Error::BadSignature => Reason::BadSignature { challenge: None },
            Error::Request(why) => Reason::BadRequest(why),
            other => Reason::MalformedToken(other.to_string()),
        }
    }
}

/// The current Unix time in whole seconds (one clock for all of libauth).
pub use crate::client::unix_now as now;

/// Reads a token (or an `Authorization` value, `Bearer` or not) from bytes
/// and refuses weak (small-order) keys, which no honest signer has.
pub fn parse_token(text: &[u8]) -> Result<Token, Reason> {
    TokenReader::default().parse(text)
}

/// Parses tokens in bulk ([`verify_many_with`], [`run_lines`]): each distinct
/// key is decoded ([`KeyCache`]) and checked for weakness once, which takes
/// about a fifth off the cost of a token in a batch. The verdicts are
/// [`parse_token`]'s.
#[derive(Default)]
pub struct TokenReader {
    keys: KeyCache,
    /// Keys already found not weak (at most `KeyCache::CAPACITY`).
    strong: Vec<PublicKey>,
}

impl TokenReader {
    /// Parses one token, as [`parse_token`] does.
    pub fn parse(&mut self, text: &[u8]) -> Result<Token, Reason> {
        let text = std::str::from_utf8(text)
            .map_err(|_| Reason::MalformedToken("the token is not ASCII text".into()))?;
        if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(Reason::MalformedToken(format!(
                "the token holds the control character {c:?}"
            )));
        }
        let token = Token::from_header_cached(text, &mut self.keys)?;
        let key = token.public_key();
        if !self.strong.contains(key) {
            if key.verifying_key().is_weak() {
                return Err(Reason::NotEd25519(
                    "the key is a weak (small-order) point".into(),
                ));
            }
            if self.strong.len() == KeyCache::CAPACITY {
                self.strong.remove(0);
            }
            self.strong.push(*key);
        }
        Ok(token)
    }
}

/// Checks a token over exact challenge bytes (ZIP-215 rules, weak keys
/// refused: see [`PublicKey::verify`]).
pub fn verify_token(text: &[u8], challenge: &[u8]) -> Result<Token, Reason> {
    let token = parse_token(text)?;
    token.verify(challenge)?;
    Ok(token)
}

/// Checks `ts` against `now`: at most `max_skew` seconds either way.
pub fn check_ts(ts: u64, now: u64, max_skew: u64) -> Result<(), Reason> {
    if now > ts && now - ts > max_skew {
        return Err(Reason::TooOld {
            ts,
            age: now - ts,
            max_skew,
        });
    }
    if ts > now && ts - now > max_skew {
        return Err(Reason::InFuture {
            ts,
            ahead: ts - now,
            max_skew,
        });
    }
    Ok(())
}

/// A token that verified against a request, with the request's `ts`.
///
/// Its `Debug` shows the signer's fingerprint, never the token (a token is
/// replayable on ollama.com within its skew window).
#[derive(Clone)]
pub struct SignedRequest {
    /// The token.
    pub token: Token,
    /// The `ts` from the request's query.
    pub ts: u64,
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("key", &self.token.public_key().fingerprint())
            .field("token", &"<redacted>")
            .field("ts", &self.ts)
            .finish()
    }
}

/// Checks an `Authorization` value against `METHOD,<request-URI as
/// received>` (PROTOCOL.md §3a) and `ts` against `now`.
///
/// A token that cannot be read is refused before the request is looked at;
/// a token whose signature does not match names the rebuilt challenge.
pub fn verify_request(
    authorization: &[u8],
    method: &str,
    request_uri: &str,
    now: u64,
    max_skew: u64,
) -> Result<SignedRequest, Reason> {
    let token = parse_token(authorization)?;
    let (challenge, ts) = ApiRequest::received(method, request_uri)?;
    token
        .verify(challenge.as_bytes())
        .map_err(|_| Reason::BadSignature {
            challenge: Some(String::from_utf8_lossy(challenge.as_bytes()).into_owned()),
        })?;
    check_ts(ts, now, max_skew)?;
    Ok(SignedRequest { token, ts })
}

/// Requires `key` to be listed in `keys` (read from `file`, as shown), by
/// a line that has not expired at Unix time `now`.
pub fn authorize<'a>(
    keys: &'a AuthorizedKeys,
    file: &str,
    key: &PublicKey,
    now: u64,
) -> Result<&'a Entry, Reason> {
    let entry = keys.find(key).ok_or_else(|| Reason::NotAuthorized {
        fingerprint: key.fingerprint(),
        file: file.to_string(),
    })?;
    if entry.expired(now) {
        return Err(Reason::Expired {
            fingerprint: key.fingerprint(),
            file: file.to_string(),
        });
    }
    Ok(entry)
}

/// Tokens accepted recently, to refuse a second use (replay).
///
/// Keyed by the 64-byte signature: under ZIP-215 rules the hash binds the
/// exact bytes of `R` and the key and `s` must be canonical, so nobody
/// without the secret can alter a seen token (re-encode `R`, add torsion to
/// it, add `ℓ` to `s`) and have it verify again.
/// An entry lives until its `ts` is older than the skew window, after which
/// the `ts` check refuses the token anyway. Memory is bounded by
/// `capacity`; when full, new tokens are refused
/// ([`Reason::ReplayCacheFull`]) rather than let a replay through.
#[derive(Debug)]
pub struct ReplayCache {
    window: u64,
    capacity: usize,
    seen: HashMap<[u8; 64], u64>,
    by_expiry: BTreeSet<(u64, [u8; 64])>,
}

impl ReplayCache {
    /// The default capacity: 250,000 tokens (over 800 requests a second
    /// with the default skew), about 50 MiB at most.
    pub const DEFAULT_CAPACITY: usize = 250_000;

    /// A cache for tokens valid `window` seconds either side of their `ts`.
    pub fn new(window: u64, capacity: usize) -> Self {
        ReplayCache {
            window,
            capacity,
            seen: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// Remembers `signature` (of a token with `ts`), or refuses it when it
    /// was seen already.
    pub fn check_and_remember(
        &mut self,
        signature: &Signature,
        ts: u64,
        now: u64,
    ) -> Result<(), Reason> {
        self.purge(now);
        let sig = signature.to_bytes();
        if self.seen.contains_key(&sig) {
            return Err(Reason::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(Reason::ReplayCacheFull);
        }
        let expiry = ts.saturating_add(self.window);
        self.seen.insert(sig, expiry);
        self.by_expiry.insert((expiry, sig));
        Ok(())
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no token is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn purge(&mut self, now: u64) {
        while let Some(&(expiry, sig)) = self.by_expiry.first() {
            if expiry >= now {
                break;
            }
            self.by_expiry.pop_first();
            self.seen.remove(&sig);
        }
    }
}

/// How many `--lines` items are verified in one batch. Measured with
/// callgrind over 2,000 lines of one key (with ed25519-dalek's batch, on the
/// same curve25519-dalek multiscalar multiplication ed25519-zebra uses):
/// 64 → 168k instructions a line, 256 → 151k, 1024 → 133k (Straus gives way
/// to Pippenger above 190 points). 256 lines are about one 64 KiB read
/// buffer, and bound the work a failed batch redoes one by one.
pub const BATCH_SIZE: usize = 256;

/// The operating system's generator, read 4 KiB at a time: a batch takes
/// 16 bytes of random weight per signature, one `getrandom` call each
/// without the buffer. Every byte comes from the OS and is used once.
struct BufferedOsRng {
    buf: [u8; 4096],
    used: usize,
}

impl Default for BufferedOsRng {
    fn default() -> Self {
        BufferedOsRng {
            buf: [0; 4096],
            used: 4096,
        }
    }
}

impl RngCore for BufferedOsRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let mut dest = dest;
        while !dest.is_empty() {
            if self.used == self.buf.len() {
                rand_core::OsRng.fill_bytes(&mut self.buf);
                self.used = 0;
            }
            let n = dest.len().min(self.buf.len() - self.used);
            dest[..n].copy_from_slice(&self.buf[self.used..self.used + n]);
            self.buf[self.used..self.used + n].fill(0);
            self.used += n;
            dest = &mut dest[n..];
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for BufferedOsRng {}

/// Verifies many `(token, challenge)` pairs, in order, one verdict each.
///
/// With `batch`, tokens that parse are checked together with ZIP-215 batch
/// verification (ed25519-zebra: the cofactored equation with random 128-bit
/// weights); when the batch fails, each is checked alone to find which ones
/// are bad. Without `batch`, each is checked alone. The verdicts are the
/// same either way, by construction: single verification
/// ([`PublicKey::verify`]) checks the same cofactored equation and the same
/// canonical `s`, so a torsion component in `R` or the key, which a
/// cofactorless batch could let through at random, is cleared by the
/// cofactor on both paths alike. Weak (small-order) keys are refused by
/// [`TokenReader::parse`] before any batch. A caller that saw a batch fail
/// does better checking the next items one by one (see [`run_lines`]).
pub fn verify_many(items: &[(&[u8], &[u8])], batch: bool) -> Vec<Result<PublicKey, Reason>> {
    verify_many_with(items, batch, &mut TokenReader::default())
}

/// [`verify_many`], parsing with `reader` (kept from one call to the next).
pub fn verify_many_with(
    items: &[(&[u8], &[u8])],
    batch: bool,
    reader: &mut TokenReader,
) -> Vec<Result<PublicKey, Reason>> {
    let mut out: Vec<Result<PublicKey, Reason>> = Vec::with_capacity(items.len());
    let mut parsed: Vec<(usize, Token)> = Vec::with_capacity(items.len());
    for (i, (token, _)) in items.iter().enumerate() {
        match reader.parse(token) {
            Ok(t) => {
                out.push(Ok(*t.public_key()));
                parsed.push((i, t));
            }
            Err(r) => out.push(Err(r)),
        }
    }
    if batch && parsed.len() >= 2 {
        let mut verifier = ed25519_zebra::batch::Verifier::new();
        for (i, t) in &parsed {
            let key = ed25519_zebra::VerificationKeyBytes::from(*t.public_key().as_bytes());
            verifier.queue((key, *t.signature(), items[*i].1));
        }
        if verifier.verify(BufferedOsRng::default()).is_ok() {
            parsed.clear();
        }
    }
    for (i, token) in &parsed {
        if let Err(e) = token.verify(items[*i].1) {
            out[*i] = Err(e.into());
        }
    }
    out
}

/// The longest `--lines` input line read; longer lines get a `bad` verdict.
pub const LINE_LIMIT: usize = 64 * 1024;

/// `olm-verify --lines`: reads `TOKEN<TAB>CHALLENGE` lines from `input` and
/// writes one verdict per line to `output`, in order: `ok <public key line>`
/// or `bad <reason>`. With `keys` (and the file as shown), signers must be
/// listed. Returns whether every line was `ok`.
///
/// Lines are verified [`BATCH_SIZE`] at a time, in batches while they
/// verify, one by one after a batch failed (see [`verify_many`]).
///
/// The challenge is every byte after the first TAB, up to (not including)
/// the `\n`. Lines over [`LINE_LIMIT`] bytes are `bad` and skipped, so
/// memory stays bounded whatever the input.
pub fn run_lines(
    input: &mut impl io::BufRead,
    output: &mut impl io::Write,
    keys: Option<(&AuthorizedKeys, &str)>,
) -> io::Result<bool> {
    let mut all_ok = true;
    let mut batch = true;
    let mut reader = TokenReader::default();
    let mut lines: Vec<Result<Vec<u8>, Reason>> = Vec::with_capacity(BATCH_SIZE);
    loop {
        lines.clear();
        while lines.len() < BATCH_SIZE {
            match read_line(input, LINE_LIMIT)? {
                None => break,
                Some(l) => lines.push(l),
            }
        }
        if lines.is_empty() {
            break;
        }
        // Split the well-formed lines, verify them as one batch.
        let mut items: Vec<(&[u8], &[u8])> = Vec::with_capacity(lines.len());
        let mut slots: Vec<Result<usize, Reason>> = Vec::with_capacity(lines.len());
        for line in &lines {
            match line {
                Err(r) => slots.push(Err(r.clone())),
                Ok(bytes) => match bytes.iter().position(|&b| b == b'\t') {
                    None => slots.push(Err(Reason::MalformedLine(
                        "no TAB between token and challenge".into(),
                    ))),
                    Some(tab) => {
                        slots.push(Ok(items.len()));
                        items.push((&bytes[..tab], &bytes[tab + 1..]));
                    }
                },
            }
        }
        let verdicts = verify_many_with(&items, batch, &mut reader);
        // Batches pay while nearly everything verifies; after a failed one,
        // check one by one until a whole chunk verifies again.
        let signatures_ok = verdicts
            .iter()
            .all(|v| !matches!(v, Err(Reason::BadSignature { .. })));
        batch = signatures_ok;
        let mut out = Vec::with_capacity(lines.len() * 80);
        let now = now();
        for slot in slots {
            let verdict = slot
                .and_then(|i| verdicts[i].clone())
                .and_then(|key| match keys {
                    Some((list, file)) => authorize(list, file, &key, now).map(|_| key),
                    None => Ok(key),
                });
            match verdict {
                Ok(key) => {
                    out.extend_from_slice(b"ok ");
                    out.extend_from_slice(key.to_line().as_bytes());
                }
                Err(reason) => {
                    all_ok = false;
                    out.extend_from_slice(b"bad ");
                    out.extend_from_slice(reason.to_string().replace(['\n', '\r'], " ").as_bytes());
                }
            }
            out.push(b'\n');
        }
        output.write_all(&out)?;
    }
    output.flush()?;
    Ok(all_ok)
}

/// Reads one line without its `\n`: `None` at the end of input, `Err` for a
/// line over `limit` bytes (whose rest is skipped, never held).
fn read_line(
    input: &mut impl io::BufRead,
    limit: usize,
) -> io::Result<Option<Result<Vec<u8>, Reason>>> {
    let mut line = Vec::new();
    match crate::lines::read_line(input, &mut line, limit)? {
        Line::End => Ok(None),
        Line::Read => Ok(Some(Ok(line))),
        Line::TooLong => {
            crate::lines::skip_line(input)?;
            Ok(Some(Err(Reason::MalformedLine(format!(
                "longer than {limit} bytes"
            )))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::PrivateKey;

    #[test]
    fn key_reasons_show_no_token_bytes() {
        use crate::authorized_keys::without_content;
        assert_eq!(
            without_content("the key is \"ssh-rsa\", not ssh-ed25519".into()),
            "the key is \"ssh-rsa\", not ssh-ed25519"
        );
        assert_eq!(
            without_content("the key is \"SeCrEt\\u{1b}x\", not ssh-ed25519".into()),
            "the key is not ssh-ed25519"
        );
        assert_eq!(
            without_content("the key blob is truncated".into()),
            "the key blob is truncated"
        );
    }

    fn key(n: u8) -> PrivateKey {
        PrivateKey::from_seed(&[n; 32], "").expect("seed")
    }

    #[test]
    fn reasons_read_as_documented() {
        let r = Reason::TooOld {
            ts: 1700000000,
            age: 512,
            max_skew: 300,
        };
        assert_eq!(r.to_string(), "ts 1700000000 is 512 s old (max skew 300 s)");
        let r = Reason::BadSignature {
            challenge: Some("GET,/x?ts=1".into()),
        };
        assert_eq!(
            r.to_string(),
            "signature does not match this challenge (challenge was \"GET,/x?ts=1\")"
        );
        assert_eq!(Reason::Replayed.to_string(), "replayed token");
    }

    #[test]
    fn ts_skew_both_ways() {
        assert!(check_ts(1000, 1000, 0).is_ok());
        assert!(check_ts(700, 1000, 300).is_ok());
        assert!(check_ts(1300, 1000, 300).is_ok());
        assert!(matches!(
            check_ts(699, 1000, 300),
            Err(Reason::TooOld { age: 301, .. })
        ));
        assert!(matches!(
            check_ts(1301, 1000, 300),
            Err(Reason::InFuture { ahead: 301, .. })
        ));
    }

    #[test]
    fn requests_verify_with_their_reason() {
        let k = key(1);
        let req = ApiRequest::new("GET", "/api/tags", 1000).expect("req");
        let token = Token::sign(&k, req.challenge().as_bytes()).to_string();
        let uri = req.request_uri();
        let ok = verify_request(token.as_bytes(), "GET", &uri, 1010, 300).expect("valid");
        assert_eq!(ok.ts, 1000);
        let bearer = format!("Bearer {token}");
        assert!(verify_request(bearer.as_bytes(), "GET", &uri, 1000, 300).is_ok());
        assert!(matches!(
            verify_request(token.as_bytes(), "POST", &uri, 1000, 300),
            Err(Reason::BadSignature { challenge: Some(c) }) if c == "POST,/api/tags?ts=1000"
        ));
        assert!(matches!(
            verify_request(token.as_bytes(), "GET", &uri, 2000, 300),
            Err(Reason::TooOld { .. })
        ));
        assert!(matches!(
            verify_request(token.as_bytes(), "GET", "/api/tags", 1000, 300),
            Err(Reason::BadRequest(_))
        ));
        assert!(matches!(
            verify_request(b"\xff\xfe", "GET", &uri, 1000, 300),
            Err(Reason::MalformedToken(_))
        ));
    }

    #[test]
    fn weak_keys_are_refused() {
        // The identity point: a small-order key that "verifies" anything
        // under lax rules.
        let mut blob = key(1).public_key().blob();
        blob[19..].copy_from_slice(&{
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        });
        let pk = PublicKey::from_blob(&blob).expect("decodes");
        let text = format!("{}:{}", pk.blob_base64(), "A".repeat(86) + "==");
        assert!(matches!(
            parse_token(text.as_bytes()),
            Err(Reason::NotEd25519(_))
        ));
        // A reader that has seen it, and good keys around it, still refuses it.
        let mut reader = TokenReader::default();
        let good = Token::sign(&key(2), b"x").to_string();
        for _ in 0..3 {
            assert!(reader.parse(good.as_bytes()).is_ok());
            assert!(matches!(
                reader.parse(text.as_bytes()),
                Err(Reason::NotEd25519(_))
            ));
        }
    }

    #[test]
    fn a_reader_parses_as_parse_token_does() {
        let mut reader = TokenReader::default();
        // More keys than the caches hold, each twice, good and damaged.
        for round in 0..2 {
            for n in 0..(KeyCache::CAPACITY as u8 + 3) {
                let t = Token::sign(&key(n), &[n, round]).to_string();
                let (k, sig) = t.split_once(':').expect("colon");
                let bad_sig = format!("{k}:{}", &sig[4..]);
                let bad_key = format!("{}:{sig}", &k[1..]);
                let header = format!("Authorization: Bearer {t}");
                for text in [&t, &bad_sig, &bad_key, &header] {
                    assert_eq!(
                        reader.parse(text.as_bytes()),
                        parse_token(text.as_bytes()),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn replay_cache_refuses_seconds_uses_and_forgets_old_ones() {
        let mut cache = ReplayCache::new(300, 2);
        let k = key(2);
        let a = k.sign(b"a");
        let b = k.sign(b"b");
        let c = k.sign(b"c");
        cache.check_and_remember(&a, 1000, 1000).expect("first");
        assert_eq!(
            cache.check_and_remember(&a, 1000, 1001),
            Err(Reason::Replayed)
        );
        cache.check_and_remember(&b, 1100, 1001).expect("b");
        assert_eq!(
            cache.check_and_remember(&c, 1000, 1002),
            Err(Reason::ReplayCacheFull)
        );
        // a expires after 1300; then c fits.
        cache.check_and_remember(&c, 1301, 1301).expect("c");
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn batches_agree_with_single_verification() {
        let keys: Vec<PrivateKey> = (1..=5).map(key).collect();
        let challenges: Vec<Vec<u8>> = (0..10).map(|i| format!("c{i}").into_bytes()).collect();
        let mut tokens: Vec<Vec<u8>> = challenges
            .iter()
            .enumerate()
            .map(|(i, c)| Token::sign(&keys[i % 5], c).to_string().into_bytes())
            .collect();
        let items: Vec<(&[u8], &[u8])> = tokens
            .iter()
            .zip(&challenges)
            .map(|(t, c)| (t.as_slice(), c.as_slice()))
            .collect();
        assert!(verify_many(&items, true).iter().all(Result::is_ok));
        // Swap two tokens and break a third: exactly those are refused.
        tokens.swap(2, 3);
        tokens[7] = b"junk".to_vec();
        let items: Vec<(&[u8], &[u8])> = tokens
            .iter()
            .zip(&challenges)
            .map(|(t, c)| (t.as_slice(), c.as_slice()))
            .collect();
        let verdicts = verify_many(&items, true);
        assert_eq!(verdicts, verify_many(&items, false));
        for (i, v) in verdicts.iter().enumerate() {
            match i {
                2 | 3 => assert_eq!(v, &Err(Reason::BadSignature { challenge: None })),
                7 => assert!(matches!(v, Err(Reason::MalformedToken(_)))),
                _ => assert_eq!(v, &Ok(keys[i % 5].public_key())),
            }
        }
    }

    /// A token by the key of `seed` over `msg` whose `R` carries the
    /// order-2 point: `R' = rB + T`, `s = r + H(R',A,M)·a`. Only the key's
    /// owner can make it. Under cofactorless rules (`verify_strict`, Go's
    /// crypto/ed25519) it is refused while a cofactorless batch accepts it
    /// whenever its random weight is even; under ZIP-215 the cofactor clears
    /// `T` and both single and batch verification accept it.
    fn torsioned_token(seed: u8, msg: &[u8]) -> String {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
        use curve25519_dalek::edwards::CompressedEdwardsY;
        use curve25519_dalek::scalar::Scalar;
        use curve25519_dalek::traits::IsIdentity as _;
        use sha2::{Digest, Sha512};
        let h = Sha512::digest([seed; 32]);
        let mut a_bytes = [0u8; 32];
        a_bytes.copy_from_slice(&h[..32]);
        a_bytes[0] &= 248;
        a_bytes[31] &= 127;
        a_bytes[31] |= 64;
        let a = Scalar::from_bytes_mod_order(a_bytes);
        let public = key(seed).public_key();
        assert_eq!((B * a).compress().to_bytes(), *public.as_bytes());
        let r = Scalar::from_hash(Sha512::new().chain_update(&h[32..]).chain_update(msg));
        let mut t_bytes = [0xffu8; 32];
        t_bytes[0] = 0xec;
        t_bytes[31] = 0x7f;
        let t = CompressedEdwardsY(t_bytes).decompress().expect("T");
        assert!(t.is_small_order() && !t.is_identity());
        let big_r = (B * r + t).compress();
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(big_r.as_bytes())
                .chain_update(public.as_bytes())
                .chain_update(msg),
        );
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        format!("{}:{}", public.blob_base64(), STANDARD.encode(sig))
    }

    #[test]
    fn batches_and_single_verification_agree_on_torsioned_signatures() {
        let evil = torsioned_token(7, b"GET,/api/tags?ts=1");
        // The owner's torsioned signature holds under the cofactored
        // equation: single verification accepts it...
        assert_eq!(
            verify_token(evil.as_bytes(), b"GET,/api/tags?ts=1").map(|t| *t.public_key()),
            Ok(key(7).public_key())
        );
        // ...but not over another challenge.
        assert_eq!(
            verify_token(evil.as_bytes(), b"GET,/api/tags?ts=2").map(|_| ()),
            Err(Reason::BadSignature { challenge: None })
        );
        // Every batch gives the same verdict, wherever it sits (a
        // cofactorless batch would accept it only half the time).
        let honest: Vec<(Vec<u8>, Vec<u8>)> = (0..6u8)
            .map(|i| {
                let c = format!("c{i}").into_bytes();
                (Token::sign(&key(i + 1), &c).to_string().into_bytes(), c)
            })
            .collect();
        for round in 0..20 {
            let pos = round % (honest.len() + 1);
            let mut items: Vec<(&[u8], &[u8])> = honest
                .iter()
                .map(|(t, c)| (t.as_slice(), c.as_slice()))
                .collect();
            items.insert(pos, (evil.as_bytes(), b"GET,/api/tags?ts=1"));
            let verdicts = verify_many(&items, true);
            assert_eq!(verdicts, verify_many(&items, false));
            assert!(
                verdicts.iter().all(Result::is_ok),
                "round {round}: {verdicts:?}"
            );
            // Over the wrong challenge it is refused, alone and batched,
            // and the honest items around it still pass.
            items[pos].1 = b"GET,/api/tags?ts=2";
            let verdicts = verify_many(&items, true);
            assert_eq!(verdicts, verify_many(&items, false));
            for (i, v) in verdicts.iter().enumerate() {
                assert_eq!(v.is_ok(), i != pos, "round {round}, item {i}: {v:?}");
            }
        }
        // Through --lines too: the same verdict in every position.
        for pos in 0..4 {
            let mut input = Vec::new();
            for i in 0..4 {
                if i == pos {
                    input.extend_from_slice(evil.as_bytes());
                    input.extend_from_slice(b"\tGET,/api/tags?ts=1\n");
                } else {
                    let c = format!("line{i}");
                    let t = Token::sign(&key(3), c.as_bytes());
                    input.extend_from_slice(format!("{t}\t{c}\n").as_bytes());
                }
            }
            let mut out = Vec::new();
            assert!(run_lines(&mut &input[..], &mut out, None).expect("io"));
            let text = String::from_utf8(out).expect("utf8");
            assert_eq!(text.lines().count(), 4);
            assert!(text.lines().all(|l| l.starts_with("ok ")), "{pos}: {text}");
        }
    }

    /// The identity key (`01 00…00`) with the all-identity signature
    /// (`R` = identity, `s` = 0): `[8][0]B = [8]R + [8][k]A` holds for
    /// every message, so ZIP-215 alone would accept it.
    fn identity_forgery() -> String {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        let mut point = [0u8; 32];
        point[0] = 1;
        let mut blob = key(1).public_key().blob();
        blob[19..].copy_from_slice(&point);
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&point);
        format!("{}:{}", STANDARD.encode(blob), STANDARD.encode(sig))
    }

    #[test]
    fn small_order_keys_are_refused_single_and_batched() {
        let forged = identity_forgery();
        let msg: &[u8] = b"GET,/api/tags?ts=1";
        // The equation itself holds (this is what ZIP-215 alone accepts)...
        let mut point = [0u8; 32];
        point[0] = 1;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&point);
        let sig = Signature::from_bytes(&sig);
        let zebra = ed25519_zebra::VerificationKey::try_from(point).expect("a point");
        assert!(zebra.verify(&sig, msg).is_ok());
        // ...and every path here refuses it.
        let pk = PublicKey::from_bytes(&point).expect("decodes");
        assert_eq!(pk.verify(msg, &sig), Err(Error::BadSignature));
        assert!(matches!(
            verify_token(forged.as_bytes(), msg),
            Err(Reason::NotEd25519(_))
        ));
        let good: Vec<(String, Vec<u8>)> = (0..4u8)
            .map(|i| {
                let c = format!("c{i}").into_bytes();
                (Token::sign(&key(i + 1), &c).to_string(), c)
            })
            .collect();
        for pos in 0..=good.len() {
            let mut items: Vec<(&[u8], &[u8])> = good
                .iter()
                .map(|(t, c)| (t.as_bytes(), c.as_slice()))
                .collect();
            items.insert(pos, (forged.as_bytes(), msg));
            let verdicts = verify_many(&items, true);
            assert_eq!(verdicts, verify_many(&items, false));
            for (i, v) in verdicts.iter().enumerate() {
                assert_eq!(v.is_ok(), i != pos, "{pos}, item {i}: {v:?}");
            }
            // An all-forged batch too.
            let all = vec![(forged.as_bytes(), msg); 3];
            assert!(verify_many(&all, true).iter().all(Result::is_err));
        }
    }

    #[test]
    fn lines_give_one_verdict_each_in_order() {
        let k = key(3);
        let good = Token::sign(&k, b"a\tb").to_string();
        let mut input = Vec::new();
        input.extend_from_slice(format!("{good}\ta\tb\n").as_bytes());
        input.extend_from_slice(b"no tab here\n");
        input.extend_from_slice(&vec![b'x'; LINE_LIMIT + 10]);
        input.push(b'\n');
        input.extend_from_slice(format!("{good}\ta\tc").as_bytes());
        let mut out = Vec::new();
        let ok = run_lines(&mut &input[..], &mut out, None).expect("io");
        assert!(!ok);
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines[0], format!("ok {}", k.public_key().to_line()));
        assert_eq!(
            lines[1],
            "bad malformed line: no TAB between token and challenge"
        );
        assert_eq!(
            lines[2],
            format!("bad malformed line: longer than {LINE_LIMIT} bytes")
        );
        assert_eq!(lines[3], "bad signature does not match this challenge");
        // Listed keys only.
        let listed = AuthorizedKeys::parse("");
        let mut out = Vec::new();
        let line = format!("{good}\ta\tb\n");
        let ok = run_lines(&mut line.as_bytes(), &mut out, Some((&listed, "ak"))).expect("io");
        assert!(!ok);
        assert!(String::from_utf8(out)
            .expect("utf8")
            .starts_with("bad key SHA256:"));
    }
}
