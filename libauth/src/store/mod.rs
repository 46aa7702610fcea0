//! The credential store: where the device key and an API key live.
//!
//! Two backends behind one [`Store`]:
//!
//! - [`Backend::File`] (the default): `$HOME/.ollama/id_ed25519` and
//!   `id_ed25519.pub`, byte-compatible with Ollama, which reads and writes
//!   the same files; the API key in `$HOME/.ollama/olm-api-key` (`0600`).
//!   Writes are atomic and serialised by a lock file, see [`file`].
//! - [`Backend::Keyring`]: the operating system's secret store (macOS
//!   Keychain, Windows Credential Manager, the Secret Service on Linux),
//!   entries `olm`/`device-key` and `olm`/`api-key`. Nothing touches it
//!   unless it is selected, so tools reading a key file start fast.

mod file;
mod keyring;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::key::{PrivateKey, PublicKey};

pub use self::file::{API_KEY_FILE, KEY_FILE, LOCK_FILE};
pub use self::keyring::{API_KEY_USER, KEY_USER, SERVICE};

/// The environment variable that picks the backend when `--backend` is not given.
pub const BACKEND_ENV: &str = "OLM_BACKEND";

/// Which secret store holds the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// `$HOME/.ollama/id_ed25519`, where Ollama keeps its key.
    #[default]
    File,
    /// The operating system's secret store.
    Keyring,
}

impl Backend {
    /// Every backend, in the order [`remove_everywhere`] looks at them.
    pub const ALL: [Backend; 2] = [Backend::File, Backend::Keyring];

    /// The backend a `--backend` flag names, else `OLM_BACKEND`, else
    /// [`Backend::File`]. An unknown name is [`Error::Backend`].
    pub fn from_flag_or_env(flag: Option<&str>) -> Result<Backend> {
        if let Some(name) = flag {
            return name.parse();
        }
        match std::env::var(BACKEND_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(Backend::File),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(Error::Backend(format!("{BACKEND_ENV} (not UTF-8)")))
            }
        }
    }

    /// The name used on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Keyring => "keyring",
        }
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        // Case does not matter: `--backend KEYRING`, `OLM_BACKEND=File`.
        match s.trim().to_ascii_lowercase().as_str() {
            "file" => Ok(Backend::File),
            "keyring" => Ok(Backend::Keyring),
            _ => Err(Error::Backend(crate::key::truncate(s.trim(), 40))),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`Store::put_key`] and [`Store::put_api_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The item was written (new, replaced with force, or repaired: a `.pub`
    /// that did not match, or loose permissions on the same key).
    Stored,
    /// The same item was already there; nothing changed.
    Unchanged,
}

/// What [`remove_everywhere`] did in one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The backend held the key; it is gone.
    Removed,
    /// The backend held no key, or another one (left alone).
    NotHeld,
}

/// An ollama.com API key (`OLLAMA_API_KEY`), sent as `Authorization: Bearer <key>`.
///
/// A secret: the text zeroizes on drop and `Debug` does not show it.
#[derive(Clone)]
pub struct ApiKey(Zeroizing<String>);

/// The longest API key olm accepts (real ones are well under 100 bytes).
pub const API_KEY_LIMIT: usize = 4096;

impl ApiKey {
    /// Reads an API key from text: the first line, white space trimmed. It
    /// must be non-empty visible ASCII without spaces, at most
    /// [`API_KEY_LIMIT`] bytes.
    pub fn new(text: &str) -> Result<ApiKey> {
        let line = text.lines().next().unwrap_or_default().trim();
        if line.is_empty() {
            return Err(Error::ApiKeyFormat("the input is empty".into()));
        }
        if line.len() > API_KEY_LIMIT {
            return Err(Error::TooLarge {
                limit: API_KEY_LIMIT,
            });
        }
        // Before the character check: a PEM label holds spaces, and "it
        // contains white space" would hide what the input really is.
        if line.starts_with("-----BEGIN") {
            return Err(Error::ApiKeyFormat(
                "this looks like a private key; store it without --api-key".into(),
            ));
        }
        if let Some(bad) = line.chars().find(|c| !c.is_ascii_graphic()) {
            let what = if bad.is_whitespace() {
                "white space".to_string()
            } else if bad.is_ascii() {
                "a control character".to_string()
            } else {
                "a non-ASCII character".to_string()
            };
            return Err(Error::ApiKeyFormat(format!("it contains {what}")));
        }
        Ok(ApiKey(Zeroizing::new(line.to_string())))
    }

    /// The key itself, for an `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `Bearer <key>`, the `Authorization` header's value.
    pub fn authorization(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("Bearer {}", self.expose()))
    }

    /// Whether two API keys are the same.
    pub fn same(&self, other: &ApiKey) -> bool {
        self.expose() == other.expose()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// One thing wrong with a stored item, for [`Store::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file or keyring entry concerned.
    pub location: String,
    /// What is wrong.
    pub what: String,
    /// How to fix it, where there is an obvious way.
    pub fix: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.what)?;
        if let Some(fix) = &self.fix {
            write!(f, " (fix: {fix})")?;
        }
        Ok(())
    }
}

/// What a backend holds and what is wrong with it.
#[derive(Debug, Clone)]
pub struct Status {
    /// The backend looked at.
    pub backend: Backend,
    /// Where the device key is (see [`Store::location`]).
    pub location: String,
    /// Whether there is a key item at all, readable or not.
    pub key_present: bool,
    /// The stored key's public half, when the key could be read.
    pub public_key: Option<PublicKey>,
    /// Whether [`Store::get_key`] hands the key out: it was read and is not
    /// refused (e.g. for loose permissions, which `status` then lists as a
    /// problem with the same words and fix as `get`'s error).
    pub usable: bool,
    /// The stored key's comment (empty for keys Ollama makes).
    pub comment: String,
    /// Where the public key file is (file backend only).
    pub public_file: Option<String>,
    /// Where the API key is.
    pub api_key_location: String,
    /// Whether an API key is stored (readable or not).
    pub api_key_present: bool,
    /// Everything wrong: loose permissions, a `.pub` naming another key,
    /// empty or damaged items.
    pub problems: Vec<Problem>,
    /// Things worth knowing that are not wrong (e.g. no `.pub` file).
    pub notes: Vec<String>,
}

impl Status {
    /// A readable key and no problem.
    pub fn is_healthy(&self) -> bool {
        self.public_key.is_some() && self.usable && self.problems.is_empty()
    }
}

/// The message of an [`Error::At`] without its location, for a [`Problem`],
/// which carries the location itself.
pub(crate) fn without_location(e: Error) -> String {
    match e {
        Error::At { error, .. } => error.to_string(),
        other => other.to_string(),
    }
}

enum Inner {
    File(file::FileStore),
    Keyring(self::keyring::KeyringStore),
}

/// One backend of the credential store, opened.
///
/// Opening is cheap and touches nothing: files are read and the keyring is
/// contacted only when an item is asked for.
pub struct Store {
    inner: Inner,
}

impl Store {
    /// Opens `backend`. The file backend needs `HOME` ([`Error::NoHome`]);
    /// the keyring backend fails on a platform without an OS keyring.
    pub fn open(backend: Backend) -> Result<Store> {
        let inner = match backend {
            Backend::File => Inner::File(file::FileStore::new(ollama_dir()?)),
            Backend::Keyring => Inner::Keyring(self::keyring::KeyringStore::new()?),
        };
        Ok(Store { inner })
    }

    /// The file backend over another folder than `$HOME/.ollama`
    /// (e.g. `/usr/share/ollama/.ollama`, or a test's temporary folder).
    pub fn file_in(dir: impl Into<PathBuf>) -> Store {
        Store {
            inner: Inner::File(file::FileStore::new(dir.into())),
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::File(_) => Backend::File,
            Inner::Keyring(_) => Backend::Keyring,
        }
    }

    /// Where the device key is, as messages show it: a quoted file path
    /// (as `cli::quote` quotes paths), or `keyring service olm, user
    /// device-key`. [`Status::location`] is the plain path, for listings.
    pub fn location(&self) -> String {
        match &self.inner {
            Inner::File(f) => crate::cli::quote(&f.key_path()),
            Inner::Keyring(k) => k.location(KEY_USER),
        }
    }

    /// The device key's file (file backend); `None` for the keyring.
    pub fn key_file(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::File(f) => Some(f.key_path()),
            Inner::Keyring(_) => None,
        }
    }

    /// The API key's file (file backend); `None` for the keyring.
    pub fn api_key_file(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::File(f) => Some(f.api_key_path()),
            Inner::Keyring(_) => None,
        }
    }

    /// Where the API key is, as messages show it (see [`Store::location`]).
    pub fn api_key_location(&self) -> String {
        match &self.inner {
            Inner::File(f) => crate::cli::quote(&f.api_key_path()),
            Inner::Keyring(k) => k.location(API_KEY_USER),
        }
    }

    /// The stored device key; `None` when there is none. A key file that
    /// group or others may read is refused ([`Error::LoosePermissions`]
    /// inside [`Error::At`]), as ssh does.
    pub fn get_key(&self) -> Result<Option<PrivateKey>> {
        match &self.inner {
            Inner::File(f) => f.get_key(),
            Inner::Keyring(k) => k.get_key(),
        }
    }

    /// Stores `key`. The same key again changes nothing
    /// ([`PutOutcome::Unchanged`]); a different or damaged key already
    /// stored is [`Error::Occupied`] unless `force`.
    pub fn put_key(&self, key: &PrivateKey, force: bool) -> Result<PutOutcome> {
        match &self.inner {
            Inner::File(f) => f.put_key(key, force),
            Inner::Keyring(k) => k.put_key(key, force),
        }
    }

    /// Removes the stored key (for the file backend, both files); true when
    /// something was removed.
    pub fn delete_key(&self) -> Result<bool> {
        match &self.inner {
            Inner::File(f) => f.delete_key(),
            Inner::Keyring(k) => k.delete(KEY_USER),
        }
    }

    /// The stored API key; `None` when there is none.
    pub fn get_api_key(&self) -> Result<Option<ApiKey>> {
        match &self.inner {
            Inner::File(f) => f.get_api_key(),
            Inner::Keyring(k) => k.get_api_key(),
        }
    }

    /// Stores an API key; replacing a different one needs `force`.
    pub fn put_api_key(&self, key: &ApiKey, force: bool) -> Result<PutOutcome> {
        match &self.inner {
            Inner::File(f) => f.put_api_key(key, force),
            Inner::Keyring(k) => k.put_api_key(key, force),
        }
    }

    /// Removes the stored API key; true when there was one.
    pub fn delete_api_key(&self) -> Result<bool> {
        match &self.inner {
            Inner::File(f) => f.delete_api_key(),
            Inner::Keyring(k) => k.delete(API_KEY_USER),
        }
    }

    /// What this backend holds and what is wrong with it.
    pub fn status(&self) -> Result<Status> {
        match &self.inner {
            Inner::File(f) => f.status(),
            Inner::Keyring(k) => k.status(),
        }
    }

    /// Removes the device key when it is `key`; leaves another key, and the
    /// API key, alone.
    pub fn remove_key_if(&self, key: &PublicKey) -> Result<Removal> {
        match &self.inner {
            Inner::File(f) => f.remove_key_if(key),
            Inner::Keyring(k) => k.remove_key_if(key),
        }
    }
}

/// Removes `key` from every backend that holds it (file and keyring),
/// leaving other keys and API keys alone; one entry per backend looked at.
/// A backend that cannot be reached (no Secret Service) gives an error
/// value for its entry.
pub fn remove_everywhere(key: &PublicKey) -> Vec<(Backend, Result<Removal>)> {
    Backend::ALL
        .iter()
        .map(|&b| (b, Store::open(b).and_then(|s| s.remove_key_if(key))))
        .collect()
}

/// `$HOME/.ollama`.
pub fn ollama_dir() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".ollama"))
        .ok_or(Error::NoHome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names() {
        assert_eq!("file".parse::<Backend>(), Ok(Backend::File));
        assert_eq!("keyring".parse::<Backend>(), Ok(Backend::Keyring));
        assert_eq!("KEYRING".parse::<Backend>(), Ok(Backend::Keyring));
        assert_eq!(" File ".parse::<Backend>(), Ok(Backend::File));
        assert_eq!(
            "Vault".parse::<Backend>(),
            Err(Error::Backend("Vault".into()))
        );
        assert_eq!(
            "vault".parse::<Backend>(),
            Err(Error::Backend("vault".into()))
        );
        assert_eq!(Backend::Keyring.to_string(), "keyring");
        assert_eq!(
            Backend::from_flag_or_env(Some("keyring")),
            Ok(Backend::Keyring)
        );
    }

    #[test]
    fn pub_file_is_one_line() {
        let k = PrivateKey::from_seed(&[1u8; 32], "a\nb").expect("seed");
        let text = k.public_file_text();
        assert_eq!(text, format!("{} a b\n", k.public_key().to_line()));
        let plain = PrivateKey::from_seed(&[1u8; 32], "").expect("seed");
        assert_eq!(
            plain.public_file_text(),
            format!("{}\n", k.public_key().to_line())
        );
    }

    #[test]
    fn api_keys_are_checked_and_not_shown() {
        let k = ApiKey::new("  abc123.XYZ_-\nsecond line\n").expect("key");
        assert_eq!(k.expose(), "abc123.XYZ_-");
        assert_eq!(k.authorization().as_str(), "Bearer abc123.XYZ_-");
        assert!(!format!("{k:?}").contains("abc123"));
        assert!(matches!(ApiKey::new("\n"), Err(Error::ApiKeyFormat(_))));
        assert!(matches!(ApiKey::new("a b"), Err(Error::ApiKeyFormat(_))));
        assert!(matches!(ApiKey::new("a\u{7}"), Err(Error::ApiKeyFormat(_))));
        // Named for what it is, not for the spaces in its PEM label.
        let err = ApiKey::new("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n").unwrap_err();
        assert!(
            err.to_string().contains("looks like a private key"),
            "{err}"
        );
        let long = "a".repeat(API_KEY_LIMIT + 1);
        assert!(matches!(ApiKey::new(&long), Err(Error::TooLarge { .. })));
    }
}
