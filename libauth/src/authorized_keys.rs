//! `authorized_keys` files: who may sign.
//!
//! The format is OpenSSH's (`sshd(8)`, AUTHORIZED_KEYS FILE FORMAT): one key
//! per line, `[options] keytype base64 [comment]`; blank lines and lines
//! starting with `#` are ignored. Options are a comma-separated list without
//! spaces except inside double quotes. Only `ssh-ed25519` entries matter to
//! olm; lines of other key types are skipped. A line that cannot be read is
//! kept as a [`BadLine`] with its number, so a server can log it.
//!
//! Options never grant more than the line says:
//! - `expiry-time="YYYYMMDD[HHMM[SS]][Z]"` is kept: the key stops counting
//!   at that time, read as UTC (sshd reads it as the machine's local time
//!   unless it ends in `Z`; write the `Z` and both agree);
//! - a line with `cert-authority` (a CA key, not a signer), `from=` (olm
//!   cannot know the client's address behind a proxy) or `command=` (the
//!   key may only run that command) is skipped, with a [`BadLine`] saying
//!   why; so is one with an option sshd does not know;
//! - ssh's permission options (`restrict`, `no-pty`, `no-port-forwarding`,
//!   `permitopen=`, `environment=` …) do not concern signed HTTP requests
//!   and are accepted as they are.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::key::{shown_algorithm, PublicKey, ALGORITHM};

/// The largest authorized_keys file olm reads (about 40,000 keys).
pub const FILE_LIMIT: usize = 4 * 1024 * 1024;

/// The message (after the quoted file name) of the error [`AuthorizedKeys::load`]
/// returns for a file that holds a PEM block, such as a private key: its
/// lines are never echoed, and nothing may ever be appended to it.
pub const PRIVATE_KEY_FILE: &str = "is a private key, not an authorized_keys file";

/// The message (after the quoted file name) of the error for a file others
/// can write to; the fix is `chmod go-w FILE`.
pub const WRITABLE_BY_OTHERS: &str = "let other users add keys";

/// Whether `err` (from [`AuthorizedKeys::load`]) says the file is a private
/// key (or another PEM file) rather than an authorized_keys file.
pub fn is_private_key_error(err: &Error) -> bool {
    matches!(err, Error::Io { kind: io::ErrorKind::InvalidData, message } if message == PRIVATE_KEY_FILE)
}

/// Whether `err` (from [`AuthorizedKeys::load`]) says other users can write
/// the file.
pub fn is_writable_by_others_error(err: &Error) -> bool {
    matches!(err, Error::Io { kind: io::ErrorKind::PermissionDenied, message } if message.ends_with(WRITABLE_BY_OTHERS))
}

/// Whether `text` holds a PEM block (`-----BEGIN …`): a private key or a
/// certificate given where an authorized_keys file was expected.
pub fn holds_pem(text: &str) -> bool {
    text.lines()
        .any(|l| l.trim_start().starts_with("-----BEGIN"))
}

/// One `ssh-ed25519` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: PublicKey,
    /// The comment after the key (may be empty).
    pub comment: String,
    /// 1-based line number in the file.
    pub line: usize,
    /// From `expiry-time=`: the Unix time (seconds, UTC) from which the key
    /// no longer counts.
    pub expires: Option<u64>,
}

impl Entry {
    /// Whether the entry has expired at Unix time `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|t| now >= t)
    }
}

/// A line that is neither blank, a comment, nor a readable key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it; never the line's content (the file may hold
    /// a secret by mistake), at most an algorithm name.
    pub why: String,
}

/// The parsed keys of an authorized_keys file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizedKeys {
    entries: Vec<Entry>,
    bad: Vec<BadLine>,
    /// Key bytes → index of its first entry, so a lookup costs the same
    /// for one key or ten thousand.
    index: HashMap<[u8; 32], usize>,
}

impl AuthorizedKeys {
    /// Parses the text of an authorized_keys file.
    pub fn parse(text: &str) -> Self {
        let mut keys = AuthorizedKeys::default();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            match parse_line(raw) {
                Line::Skip => {}
                Line::Key(found) => {
                    let (key, comment, expires) = *found;
                    keys.index
                        .entry(*key.as_bytes())
                        .or_insert(keys.entries.len());
                    keys.entries.push(Entry {
                        key,
                        comment,
                        line,
                        expires,
                    });
                }
                Line::Bad(why) => keys.bad.push(BadLine { line, why }),
            }
        }
        keys
    }

    /// Reads and parses `path` (at most [`FILE_LIMIT`] bytes, UTF-8).
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with_text(path).map(|(keys, _)| keys)
    }

    /// [`AuthorizedKeys::load`], also returning the text that was parsed.
    pub fn load_with_text(path: &Path) -> Result<(Self, String)> {
        let file = fs::File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(Error::Io {
                kind: io::ErrorKind::IsADirectory,
                message: "is a directory, not an authorized_keys file".into(),
            });
        }
        // As sshd's StrictModes: a file others can write lets them add a key.
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(Error::Io {
                kind: io::ErrorKind::PermissionDenied,
                message: format!(
                    "permissions {:04o} {WRITABLE_BY_OTHERS}",
                    meta.permissions().mode() & 0o7777
                ),
            });
        }
        let bytes = fsutil::read_limited(file, FILE_LIMIT)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::Io {
            kind: io::ErrorKind::InvalidData,
            message: "is not UTF-8 text".into(),
        })?;
        if holds_pem(text) {
            return Err(Error::Io {
                kind: io::ErrorKind::InvalidData,
                message: PRIVATE_KEY_FILE.into(),
            });
        }
        Ok((Self::parse(text), text.to_string()))
    }

    /// The entry for `key`, if listed (the first line listing it counts;
    /// see [`Entry::expired`]).
    pub fn find(&self, key: &PublicKey) -> Option<&Entry> {
        self.index
            .get(key.as_bytes())
            .and_then(|&i| self.entries.get(i))
    }

    /// Whether `key` is listed.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.find(key).is_some()
    }

    /// The `ssh-ed25519` entries, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Lines that could not be read.
    pub fn bad_lines(&self) -> &[BadLine] {
        &self.bad
    }
}

/// A key-format reason (from `key.rs`) as a message may show it: a quoted
/// name taken from the input (a token, a key line) (`the key is "…", not ssh-ed25519`) is kept only when it looks like
/// an algorithm name, so no Authorization bytes reach a log.
pub(crate) fn without_content(why: String) -> String {
    let Some((before, rest)) = why.split_once('"') else {
        return why;
    };
    let Some((quoted, after)) = rest.split_once('"') else {
        return "the key is not ssh-ed25519".into();
    };
    match shown_algorithm(quoted) {
        Some(alg) => format!("{before}\"{alg}\"{after}"),
        None => format!("{}{}", before.trim_end(), after.replacen(',', "", 1)),
    }
}

/// What identifies a version of a file, to notice that it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    /// Permissions too: a `chmod go-w` makes a refused file usable.
    mode: u32,
}

impl FileStamp {
    /// The stamp of `path` now; `None` when it cannot be read.
    pub fn of(path: &Path) -> Option<Self> {
        let m = fs::metadata(path).ok()?;
        Some(FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            mode: m.mode(),
        })
    }
}

/// Returns `text` with `ssh-ed25519 … comment` appended, or `None` when
/// `key` is already listed (so nothing changes).
pub fn with_key_added(text: &str, key: &PublicKey, comment: &str) -> Option<String> {
    if AuthorizedKeys::parse(text).contains(key) {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 120);
    out.push_str(text);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&key.to_line());
    let comment = clean_comment(comment);
    if !comment.is_empty() {
        out.push(' ');
        out.push_str(&comment);
    }
    out.push('\n');
    Some(out)
}

/// Returns `text` without the lines that list `key`, or `None` when it is
/// not listed. Every other line is kept as it was.
pub fn with_key_removed(text: &str, key: &PublicKey) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut removed = false;
    for raw in text.split_inclusive('\n') {
        let line = raw.trim_end_matches(['\n', '\r']);
        if matches!(parse_line(line), Line::Key(found) if &found.0 == key) {
            removed = true;
        } else {
            out.push_str(raw);
        }
    }
    removed.then_some(out)
}

/// A comment safe to put on one authorized_keys line: control characters
/// become `?`, at most 200 characters.
pub fn clean_comment(comment: &str) -> String {
    comment
        .trim()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(200)
        .collect()
}

enum Line {
    Skip,
    Key(Box<(PublicKey, String, Option<u64>)>),
    Bad(String),
}

fn is_key_type(word: &str) -> bool {
    word.starts_with("ssh-") || word.starts_with("ecdsa-") || word.starts_with("sk-")
}

fn parse_line(raw: &str) -> Line {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Line::Skip;
    }
    let (options, rest) = if is_key_type(first_word(line)) {
        ("", line)
    } else {
        match skip_options(line) {
            Some(rest) if is_key_type(first_word(rest)) => {
                (line[..line.len() - rest.len()].trim_end(), rest)
            }
            Some(_) | None => {
                return Line::Bad("not a key line (no key type where one was expected)".into())
            }
        }
    };
    let keytype = first_word(rest);
    if keytype != ALGORITHM {
        return Line::Skip;
    }
    let after_type = rest[keytype.len()..].trim_start();
    let blob = first_word(after_type);
    if blob.is_empty() {
        return Line::Bad("not a key line (the key field is missing)".into());
    }
    match parse_blob(blob) {
        Ok(key) => match read_options(options) {
            Ok(expires) => Line::Key(Box::new((
                key,
                after_type[blob.len()..].trim().to_string(),
                expires,
            ))),
            Err(why) => Line::Bad(why),
        },
        Err(why) => Line::Bad(format!("not a key line ({why})")),
    }
}

/// Reads the base64 key field; the reason on failure holds no line content.
fn parse_blob(b64: &str) -> std::result::Result<PublicKey, String> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    let bytes = zeroize::Zeroizing::new(
        STANDARD
            .decode(b64)
            .map_err(|_| "the key is not valid base64".to_string())?,
    );
    // The blob's algorithm name is shown only when it looks like one.
    let name = bytes
        .get(..4)
        .and_then(|l| <[u8; 4]>::try_from(l).ok())
        .map(|l| u32::from_be_bytes(l) as usize)
        .and_then(|len| bytes.get(4..4usize.checked_add(len)?));
    match name {
        None => return Err("the key blob is truncated".into()),
        Some(n) if n != ALGORITHM.as_bytes() => {
            return Err(
                match std::str::from_utf8(n).ok().and_then(shown_algorithm) {
                    Some(alg) => format!("the key blob is {alg}, not {ALGORITHM}"),
                    None => format!("the key blob is not {ALGORITHM}"),
                },
            )
        }
        Some(_) => {}
    }
    PublicKey::from_blob(&bytes).map_err(|e| match e {
        // Every other reason from_blob gives is fixed text.
        Error::PublicKeyFormat(why) => why,
        other => other.to_string(),
    })
}

/// ssh's permission options: nothing to do with signed HTTP requests.
const PERMISSIONS: &[&str] = &[
    "agent-forwarding",
    "environment",
    "no-agent-forwarding",
    "no-port-forwarding",
    "no-pty",
    "no-touch-required",
    "no-user-rc",
    "no-x11-forwarding",
    "permitlisten",
    "permitopen",
    "port-forwarding",
    "principals",
    "pty",
    "restrict",
    "tunnel",
    "user-rc",
    "verify-required",
    "x11-forwarding",
];

/// Reads an options field: the expiry time it sets, or why the line is
/// skipped (naming only options olm knows, never the line's content).
fn read_options(options: &str) -> std::result::Result<Option<u64>, String> {
    let mut expires: Option<u64> = None;
    for option in split_options(options) {
        let (name, value) = match option.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (option, None),
        };
        let name = name.to_ascii_lowercase();
        match (name.as_str(), value) {
            ("cert-authority", None) => {
                return Err("cert-authority keys are not supported".into())
            }
            ("from", Some(_)) => {
                return Err(
                    "from= cannot be enforced (the client's address is unknown behind a proxy); the key is skipped"
                        .into(),
                )
            }
            ("command", Some(_)) => {
                return Err(
                    "command= keys may only run that command; the key is skipped".into(),
                )
            }
            ("expiry-time", Some(v)) => {
                let t = parse_expiry(v.trim_matches('"')).ok_or_else(|| {
                    "expiry-time must be \"YYYYMMDD[HHMM[SS]][Z]\"; the key is skipped"
                        .to_string()
                })?;
                // Two expiry times: the earlier counts.
                expires = Some(expires.map_or(t, |e| e.min(t)));
            }
            (n, _) if PERMISSIONS.contains(&n) => {}
            (n, _) => {
                return Err(match shown_algorithm(n) {
                    Some(n) => format!("unknown option {n}; the key is skipped"),
                    None => "unknown option; the key is skipped".into(),
                })
            }
        }
    }
    Ok(expires)
}

/// The characters of an options field that stand outside double quotes
/// (`\"` escapes a quote inside them), with their byte offsets: where
/// sshd lets a comma end an option and white space end the field.
fn unquoted(options: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let (mut in_quotes, mut escaped) = (false, false);
    options.char_indices().filter(move |&(_, c)| {
        if escaped {
            escaped = false;
            return false;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            _ => return !in_quotes,
        }
        false
    })
}

/// Splits an options field at the commas outside double quotes.
fn split_options(options: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, _) in unquoted(options).filter(|&(_, c)| c == ',') {
        out.push(&options[start..i]);
        start = i + 1;
    }
    out.push(&options[start..]);
    out.retain(|o| !o.is_empty());
    out
}

/// `YYYYMMDD[HHMM[SS]]`, optionally ending in `Z`, as UTC Unix seconds.
fn parse_expiry(v: &str) -> Option<u64> {
    let v = v.strip_suffix(['Z', 'z']).unwrap_or(v);
    if !matches!(v.len(), 8 | 12 | 14) || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| v.get(r).map_or(Some(0), |s| s.parse::<u64>().ok());
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(8..10)?, num(10..12)?, num(12..14)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if year < 1970
        || !(1..=12).contains(&month)
        || day == 0
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days_before_year: u64 = (1970..year)
        .map(|y| {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                366
            } else {
                365
            }
        })
        .sum();
    let days_before_month: u64 = month_days[..(month - 1) as usize].iter().sum();
    let days = days_before_year + days_before_month + day - 1;
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

fn first_word(s: &str) -> &str {
    s.split_ascii_whitespace().next().unwrap_or("")
}

/// Skips the options field (spaces allowed only inside double quotes, `\"`
/// escapes a quote) and the white space after it.
fn skip_options(line: &str) -> Option<&str> {
    unquoted(line)
        .find(|&(_, c)| c.is_ascii_whitespace())
        .map(|(i, _)| line[i..].trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as STANDARD_B64;
    use base64::Engine as _;

    const K1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIN1vBU/y4xOtTPdcrtyDAvPqiYVhxhqpehCzdTXR32wE";
    const K2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIKX6Kh6NHgHImXzbK45wimFx6wlR6dPuqmxTg3JIeVdo";

    fn key(b64: &str) -> PublicKey {
        PublicKey::from_blob_base64(b64).expect("key")
    }

    #[test]
    fn reads_keys_options_comments_and_other_types() {
        let text = format!(
            "# a comment\n\n   \nssh-ed25519 {K1} alice@host\n\
             ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ bob\n\
             no-pty,environment=\"A=b c\",RESTRICT ssh-ed25519 {K2} carol\n\
             ssh-ed25519 !!!notbase64\n\
             garbage line here\n"
        );
        let keys = AuthorizedKeys::parse(&text);
        assert_eq!(keys.entries().len(), 2);
        assert_eq!(keys.entries()[0].comment, "alice@host");
        assert_eq!(keys.entries()[0].line, 4);
        assert_eq!(keys.entries()[1].key, key(K2));
        assert_eq!(keys.entries()[1].comment, "carol");
        assert_eq!(keys.entries()[1].line, 6);
        assert!(keys.contains(&key(K1)));
        let bad: Vec<usize> = keys.bad_lines().iter().map(|b| b.line).collect();
        assert_eq!(bad, vec![7, 8]);
        assert!(keys.bad_lines()[0].why.contains("base64"));
    }

    #[test]
    fn options_never_grant_more_than_the_line_says() {
        let text = format!(
            "cert-authority ssh-ed25519 {K1} ca\n\
             from=\"10.0.0.1\" ssh-ed25519 {K1} from\n\
             command=\"echo hi, there\",no-pty ssh-ed25519 {K1} cmd\n\
             no-pty,bogus-option ssh-ed25519 {K1} bogus\n\
             expiry-time=\"2024\" ssh-ed25519 {K1} badtime\n\
             restrict,expiry-time=\"20300101\",expiry-time=\"202001021030Z\" ssh-ed25519 {K1} two\n\
             expiry-time=\"20991231235959\" ssh-ed25519 {K2} later\n"
        );
        let keys = AuthorizedKeys::parse(&text);
        let bad: Vec<(usize, &str)> = keys
            .bad_lines()
            .iter()
            .map(|b| (b.line, b.why.as_str()))
            .collect();
        assert_eq!(
            bad,
            vec![
                (1, "cert-authority keys are not supported"),
                (2, "from= cannot be enforced (the client's address is unknown behind a proxy); the key is skipped"),
                (3, "command= keys may only run that command; the key is skipped"),
                (4, "unknown option bogus-option; the key is skipped"),
                (5, "expiry-time must be \"YYYYMMDD[HHMM[SS]][Z]\"; the key is skipped"),
            ]
        );
        // The first line that lists K1 and counts: the earlier time, UTC.
        let k1 = keys.find(&key(K1)).expect("listed");
        assert_eq!(k1.comment, "two");
        assert_eq!(k1.expires, Some(1_577_961_000)); // 2020-01-02T10:30:00Z
        assert!(k1.expired(1_577_961_000) && !k1.expired(1_577_960_999));
        let k2 = keys.find(&key(K2)).expect("listed");
        assert_eq!(k2.expires, Some(4_102_444_799)); // 2099-12-31T23:59:59Z
        assert_eq!(parse_expiry("19700101"), Some(0));
        assert_eq!(parse_expiry("20240229"), Some(1_709_164_800));
        assert_eq!(parse_expiry("20230229"), None);
        assert_eq!(parse_expiry("20241301"), None);
        assert_eq!(parse_expiry("2024010112"), None);
    }

    #[test]
    fn adds_once_and_removes() {
        let k1 = key(K1);
        let k2 = key(K2);
        let text = "# keep me\nssh-ed25519 X broken";
        let added = with_key_added(text, &k1, "my\nhost").expect("added");
        assert_eq!(
            added,
            format!("# keep me\nssh-ed25519 X broken\nssh-ed25519 {K1} my?host\n")
        );
        assert_eq!(with_key_added(&added, &k1, "again"), None);
        let both = with_key_added(&added, &k2, "").expect("added");
        let without = with_key_removed(&both, &k1).expect("removed");
        assert_eq!(
            without,
            format!("# keep me\nssh-ed25519 X broken\nssh-ed25519 {K2}\n")
        );
        assert_eq!(with_key_removed(&without, &k1), None);
    }

    #[test]
    fn loads_files_and_refuses_directories() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("ak");
        fs::write(&p, format!("ssh-ed25519 {K1}\n")).expect("write");
        let keys = AuthorizedKeys::load(&p).expect("load");
        assert!(keys.contains(&key(K1)));
        assert!(AuthorizedKeys::load(dir.path()).is_err());
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).expect("chmod");
        let err = AuthorizedKeys::load(&p).unwrap_err();
        assert!(is_writable_by_others_error(&err), "{err}");
        assert_eq!(err.to_string(), "permissions 0666 let other users add keys");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(AuthorizedKeys::load(&dir.path().join("missing")).is_err());
        let s1 = FileStamp::of(&p).expect("stamp");
        fsutil::write_atomic(&p, b"", 0o600, fsutil::Replace::Allow).expect("replace");
        assert_ne!(FileStamp::of(&p), Some(s1));
        let s2 = FileStamp::of(&p).expect("stamp");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).expect("chmod");
        assert_ne!(FileStamp::of(&p), Some(s2), "a chmod is a change");
    }

    #[test]
    fn refuses_private_keys_and_never_echoes_lines() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("id_ed25519");
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n";
        fs::write(&p, pem).expect("write");
        let err = AuthorizedKeys::load(&p).unwrap_err();
        assert!(is_private_key_error(&err), "{err}");
        assert!(!err.to_string().contains("b3Bl"), "{err}");
        // Whatever a line holds, its reason shows none of it.
        let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ";
        let foreign = STANDARD_B64.encode(b"\x00\x00\x00\x0bssh-mystery\x00\x00\x00\x01x");
        let weird = STANDARD_B64.encode(b"\x00\x00\x00\x06SeCrEt\x00\x00\x00\x01x");
        let text = format!(
            "{secret} more\nssh-ed25519 {secret}\nssh-ed25519 {foreign}\nssh-ed25519 {weird}\nfrom=\"{secret}\" ssh-ed25519\n"
        );
        let keys = AuthorizedKeys::parse(&text);
        let why: Vec<&str> = keys.bad_lines().iter().map(|b| b.why.as_str()).collect();
        // (An options field naming a secret never shows it.)
        assert_eq!(
            why,
            vec![
                "not a key line (no key type where one was expected)",
                "not a key line (the key is not valid base64)",
                "not a key line (the key blob is ssh-mystery, not ssh-ed25519)",
                "not a key line (the key blob is not ssh-ed25519)",
                "not a key line (the key field is missing)",
            ]
        );
        assert_eq!(
            shown_algorithm("sk-ssh-ed25519@openssh.com"),
            Some("sk-ssh-ed25519@openssh.com")
        );
        assert_eq!(shown_algorithm("Ssh"), None);
        assert_eq!(shown_algorithm(&"a".repeat(41)), None);
        assert_eq!(shown_algorithm(""), None);
    }
}
