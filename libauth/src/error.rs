//! The one error type of libauth.
//!
//! Variants carry no key bytes and no file contents, only what a user needs to
//! read: which value was wrong and how. Binaries add the file or host name
//! as context and map [`Error::exit_code`] to the process status.

use std::io;

/// Result alias used throughout libauth.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything libauth can refuse or fail at.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The key input was empty or held only white space.
    #[error("no key found: the input is empty")]
    KeyEmpty,
    /// A PEM block whose line breaks were lost (a CI secret pasted flat).
    #[error("not an OpenSSH private key: its line breaks are missing")]
    KeyFlattened,
    /// The input is not an OpenSSH private key; the string says what is wrong.
    #[error("not an OpenSSH private key: {0}")]
    KeyFormat(String),
    /// The key is protected by a passphrase, which olm does not support.
    #[error("the private key is protected by a passphrase, which olm does not support")]
    KeyEncrypted,
    /// The key is of another algorithm than Ed25519.
    #[error("{0} keys are not supported: Ollama uses ssh-ed25519 keys only")]
    KeyType(String),
    /// A public key line or wire blob could not be read.
    #[error("not an ssh-ed25519 public key: {0}")]
    PublicKeyFormat(String),
    /// A token is not of the form `KEY:SIGNATURE`; the string says why.
    #[error("malformed token: {0}")]
    TokenFormat(String),
    /// The token's signature does not match the challenge.
    #[error("signature does not match this challenge")]
    BadSignature,
    /// A challenge or request could not be built from the given values.
    #[error("{0}")]
    Request(String),
    /// A base URL broke Ollama's rules for `OLLAMA_CLOUD_BASE_URL`.
    #[error("bad base URL {url:?}: {why}")]
    BaseUrl {
        /// The URL as given.
        url: String,
        /// Which rule it broke.
        why: String,
    },
    /// An input was larger than olm reads.
    #[error("input is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A private key file can be read by other users.
    #[error(
        "permissions {mode:04o} are too open: a private key must be readable by its owner only"
    )]
    LoosePermissions {
        /// The file's permission bits.
        mode: u32,
    },
    /// A file that should be written already exists and holds something else.
    #[error("already exists")]
    Exists,
    /// A request to a server (ollama.com, a stand-in, the local Ollama) got
    /// no usable answer: which server, and what happened.
    #[error("{server}: {failure}")]
    Remote {
        /// The server, `scheme://host[:port]`.
        server: String,
        /// What went wrong.
        failure: crate::client::RemoteFailure,
    },
    /// `HOME` is not set, so the file store has no `~/.ollama` folder.
    #[error("HOME is not set, so there is no ~/.ollama folder")]
    NoHome,
    /// `--backend` or `OLM_BACKEND` named a store olm does not have.
    #[error("unknown backend {0:?}: expected file or keyring")]
    Backend(String),
    /// The store already holds a different key (or API key, or a damaged
    /// one) and replacing it was not asked for.
    #[error("{location} already holds {what}; not replacing it")]
    Occupied {
        /// Where: a file, or a keyring entry.
        location: String,
        /// What is there, e.g. `another key (SHA256:…)`.
        what: String,
    },
    /// No OS secret store answers (on Linux: no Secret Service on the
    /// session bus).
    #[error("the OS keyring is not available: {detail}")]
    NoSecretService {
        /// What the platform said.
        detail: String,
    },
    /// The OS secret store refused or failed; the text is the platform's.
    #[error("the OS keyring failed: {0}")]
    Keyring(String),
    /// Text that is not an API key.
    #[error("not an API key: {0}")]
    ApiKeyFormat(String),
    /// A stored item is wrong: where it is and what is wrong with it.
    #[error("{location}: {error}")]
    At {
        /// A file (quoted) or a keyring entry.
        location: String,
        /// What is wrong.
        error: Box<Error>,
    },
    /// Writing a file failed (a read-only or full disk, no permission): the
    /// operation failed, exit 1. Only the kind and the OS's text are kept.
    #[error("{message}")]
    WriteFailed {
        /// The kind of the underlying error.
        kind: io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
    /// An operating-system I/O error; only its kind and text are kept.
    #[error("{message}")]
    Io {
        /// The kind of the underlying error.
        kind: io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io {
            kind: e.kind(),
            message: plain_io_message(&e),
        }
    }
}

/// The OS message without Rust's ` (os error N)` suffix, starting lower
/// case, to read well after `FILE: `. tempfile adds `at path "<temporary
/// file>"`, a name gone by the time anyone reads it: that goes too.
fn plain_io_message(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let text = text.split(" at path ").next().unwrap_or(text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if chars.clone().next().is_some_and(char::is_lowercase) => {
            first.to_lowercase().chain(chars).collect()
        }
        _ => text.to_string(),
    }
}

/// How a failure is reported to the shell, per `CLI.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// Exit status 1: the operation was refused or failed.
    Failed = 1,
    /// Exit status 2: usage or bad input.
    BadInput = 2,
}

impl Error {
    /// The exit status this error maps to.
    pub fn exit_kind(&self) -> ExitKind {
        match self {
            Error::BadSignature
            | Error::WriteFailed { .. }
            | Error::Occupied { .. }
            | Error::NoSecretService { .. }
            | Error::Keyring(_) => ExitKind::Failed,
            Error::At { error, .. } => error.exit_kind(),
            Error::Remote { .. } => ExitKind::Failed,
            Error::Io { kind, .. } if *kind == io::ErrorKind::BrokenPipe => ExitKind::Failed,
            _ => ExitKind::BadInput,
        }
    }

    /// A line of advice for the user, where there is an obvious fix.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::KeyEncrypted => {
                Some("remove the passphrase from a copy with `ssh-keygen -p -N '' -f COPY`, or make a new key with `olm-keygen`")
            }
            Error::KeyType(_) => Some("make an Ed25519 key with `olm-keygen` or `ssh-keygen -t ed25519 -N ''`"),
            Error::KeyEmpty => Some("make a key with `olm-keygen`, or check that the right key was given"),
            Error::KeyFlattened => Some("keep the key's newlines: store the whole file in the secret, and pass it as \"$VAR\" (quoted)"),
            Error::LoosePermissions { .. } => Some("run `chmod 600` on the key file"),
            Error::Remote {
                failure: crate::client::RemoteFailure::TimedOut { .. },
                ..
            } => Some("check the network, or allow more time with --timeout SECONDS"),
            Error::NoHome => Some("set HOME, or name a key with -k FILE"),
            Error::Backend(_) => Some("use --backend file or --backend keyring (or OLM_BACKEND=file|keyring)"),
            Error::Occupied { .. } => Some("add --force to replace it; keep a copy first if you may need it again (`olm-store get > backup`)"),
            Error::NoSecretService { .. } => Some(
                "start a Secret Service in this session (gnome-keyring-daemon, KeePassXC), or keep the key in a file with --backend file",
            ),
            Error::Keyring(_) => Some("check that the keyring is unlocked, or use --backend file"),
            Error::At { error, .. } => error.hint(),
            _ => None,
        }
    }
}
