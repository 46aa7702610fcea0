//! Command-line plumbing shared by every `olm-*` tool: one place that turns
//! an error into a message and an exit status, the key flags, and guards.
//!
//! Libraries should not print; this module is the exception, used only by
//! the binaries' `main`.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use zeroize::Zeroizing;

use crate::error::{Error, ExitKind};
use crate::fsutil;
use crate::generate;
use crate::key::PrivateKey;
use crate::store::{Backend, Store, BACKEND_ENV};

/// An error a binary raises itself, with its exit status and an optional hint.
#[derive(Debug)]
pub struct CliError {
    kind: ExitKind,
    message: String,
    hint: Option<String>,
}

impl CliError {
    /// Usage or bad input: exit 2.
    pub fn bad_input(message: impl Into<String>) -> Self {
        CliError {
            kind: ExitKind::BadInput,
            message: message.into(),
            hint: None,
        }
    }

    /// Refused or failed: exit 1.
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            kind: ExitKind::Failed,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a `hint:` line.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Wraps a libauth error with the file or value it concerns.
    pub fn about(what: impl fmt::Display, err: Error) -> Self {
        CliError {
            kind: err.exit_kind(),
            hint: err.hint().map(str::to_string),
            message: format!("{what}: {err}"),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Runs a tool's body and turns its outcome into the process status:
/// `0` on success or a broken pipe, otherwise one `TOOL: error:` line, an
/// optional `hint:` line, and `1` or `2`.
pub fn run(tool: &str, body: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(tool, &err),
    }
}

fn report(tool: &str, err: &anyhow::Error) -> ExitCode {
    let mut kind = None;
    let mut hint = None;
    for cause in err.chain() {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::BrokenPipe {
                return ExitCode::SUCCESS;
            }
        }
        if let Some(Error::Io {
            kind: io::ErrorKind::BrokenPipe,
            ..
        }) = cause.downcast_ref::<Error>()
        {
            return ExitCode::SUCCESS;
        }
        if let Some(c) = cause.downcast_ref::<CliError>() {
            kind = kind.or(Some(c.kind));
            hint = hint.or(c.hint.clone());
        }
        if let Some(e) = cause.downcast_ref::<Error>() {
            kind = kind.or(Some(e.exit_kind()));
            hint = hint.or(e.hint().map(str::to_string));
        }
    }
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "{tool}: error: {}", one_line(&format!("{err:#}")));
    if let Some(h) = hint {
        let _ = writeln!(stderr, "hint: {h}");
    }
    ExitCode::from(kind.unwrap_or(ExitKind::BadInput) as u8)
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Parses the command line; on a usage error prints clap's message prefixed
/// with the tool's name and exits `2`; `--help` and `--version` exit `0`.
pub fn parse<T: clap::Parser>(tool: &str) -> T {
    parse_from(tool, std::env::args_os())
}

/// [`parse`] over given arguments.
pub fn parse_from<T: clap::Parser>(
    tool: &str,
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> T {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if args.get(1).is_some_and(|a| a == generate::FLAG) {
        std::process::exit(generate_for::<T>(tool, &args[2..]));
    }
    // clap repeats a bad argument in its message: never let that be a key.
    if args
        .iter()
        .skip(1)
        .any(|a| looks_like_a_secret(&a.to_string_lossy()))
    {
        let _ = writeln!(
            io::stderr(),
            "{tool}: error: an argument looks like a private key; it is not repeated here\n\
             hint: pass a key with -k FILE, --key-env NAME or on stdin, never as an argument"
        );
        std::process::exit(2);
    }
    match T::try_parse_from(args) {
        Ok(t) => t,
        Err(e) => {
            use clap::error::ErrorKind as K;
            match e.kind() {
                K::DisplayHelp | K::DisplayVersion => {
                    let _ = e.print();
                    std::process::exit(0);
                }
                K::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = writeln!(
                        io::stderr(),
                        "{tool}: error: a command is needed\nhint: see `{tool} --help`"
                    );
                    std::process::exit(2);
                }
                _ => {
                    let _ = write!(
                        io::stderr(),
                        "{}",
                        usage_error(tool, &e.render().to_string())
                    );
                    std::process::exit(2);
                }
            }
        }
    }
}

/// clap's error as CLI.md wants it: one `TOOL: error:` line, then one
/// `hint:` line (clap's own tip where it has one).
fn usage_error(tool: &str, rendered: &str) -> String {
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("error: bad usage");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let hint = lines
        .find_map(|l| l.strip_prefix("tip: "))
        .map(str::to_string)
        .unwrap_or_else(|| format!("see `{tool} --help`"));
    format!("{tool}: error: {first}\nhint: {hint}\n")
}

/// `TOOL --generate WHAT`: writes a man page or a completion script for the
/// tool on stdout (see [`generate`]); returns the exit status.
fn generate_for<T: clap::CommandFactory>(tool: &str, rest: &[OsString]) -> i32 {
    let names: Vec<&str> = generate::Artifact::ALL.iter().map(|a| a.name()).collect();
    let artifact = match rest {
        [one] => one.to_str().and_then(generate::Artifact::from_name),
        _ => None,
    };
    let Some(artifact) = artifact else {
        let _ = writeln!(
            io::stderr(),
            "{tool}: error: {} takes one of: {}",
            generate::FLAG,
            names.join(", ")
        );
        return 2;
    };
    let mut out = io::stdout().lock();
    match generate::write(artifact, T::command(), &mut out) {
        Ok(()) => 0,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            let _ = writeln!(io::stderr(), "{tool}: error: stdout: {e}");
            1
        }
    }
}

/// Where a private key comes from: `-k FILE`, `--key-env NAME`, or the store
/// (`--backend`, else `OLM_BACKEND`, else the file `~/.ollama/id_ed25519`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KeyArgs {
    /// Read the private key from FILE (OpenSSH format, mode 0600).
    #[arg(
        short = 'k',
        long = "key",
        value_name = "FILE",
        conflicts_with = "key_env"
    )]
    pub key: Option<PathBuf>,
    /// Read the private key from the environment variable NAME (a CI secret).
    #[arg(long = "key-env", value_name = "NAME")]
    pub key_env: Option<String>,
    /// Without -k or --key-env, take the key from this store: file
    /// (~/.ollama/id_ed25519, the default) or keyring (the OS secret store).
    /// Default: OLM_BACKEND, else file.
    #[arg(long, value_name = "file|keyring")]
    pub backend: Option<String>,
}

impl KeyArgs {
    /// Whether the user named a key explicitly: `-k`, `--key-env`, or a
    /// store with `--backend` (rather than, say, a key piped on stdin).
    pub fn is_explicit(&self) -> bool {
        self.key.is_some() || self.key_env.is_some() || self.backend.is_some()
    }
}

/// The default key file: `$HOME/.ollama/id_ed25519`.
pub fn default_key_path() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            CliError::bad_input("HOME is not set, so there is no default key")
                .hint("name a key with -k FILE")
        })?;
    Ok(Path::new(&home).join(".ollama").join("id_ed25519"))
}

/// Turns a libauth error into a CLI error, with a `chmod 600 FILE` hint for
/// a key file others can read.
pub fn store_error(err: Error) -> CliError {
    let hint = match &err {
        Error::At { location, error } if matches!(**error, Error::LoosePermissions { .. }) => {
            Some(format!("chmod 600 {location}"))
        }
        Error::At { location, error }
            if matches!(
                **error,
                Error::Io {
                    kind: io::ErrorKind::PermissionDenied,
                    ..
                } | Error::WriteFailed {
                    kind: io::ErrorKind::PermissionDenied,
                    ..
                }
            ) =>
        {
            Some(format!(
                "check who owns {location} and its folder (`ls -ld`); files made by `sudo ollama …` belong to root"
            ))
        }
        other => other.hint().map(str::to_string),
    };
    CliError {
        kind: err.exit_kind(),
        message: err.to_string(),
        hint,
    }
}

/// Opens the store `--backend` (else `OLM_BACKEND`, else file) names.
/// Touches nothing yet: the keyring is contacted only when asked for an item.
pub fn open_store(backend: Option<&str>) -> anyhow::Result<Store> {
    let backend = Backend::from_flag_or_env(backend).map_err(|e| {
        let what = if backend.is_some() {
            "--backend"
        } else {
            BACKEND_ENV
        };
        CliError::about(what, e)
    })?;
    Ok(Store::open(backend).map_err(store_error)?)
}

/// The device key from the store the flags pick; a missing key is an
/// error naming where olm looked.
pub fn load_stored_key(backend: Option<&str>) -> anyhow::Result<PrivateKey> {
    let store = open_store(backend)?;
    match store.get_key().map_err(store_error)? {
        Some(key) => Ok(key),
        None => Err(
            CliError::bad_input(format!("no key in {}", store.location()))
                .hint(match store.backend() {
                    Backend::File => "make one with `olm-keygen | olm-store put`, or name one with -k FILE (or --backend keyring)",
                    Backend::Keyring => "put one there with `olm-keygen | olm-store --backend keyring put`, or name one with -k FILE",
                })
                .into(),
        ),
    }
}

/// Loads the private key the flags name: `--key-env`, `-k`, else the store.
pub fn load_key(args: &KeyArgs) -> anyhow::Result<PrivateKey> {
    if let Some(name) = &args.key_env {
        return load_key_env(name);
    }
    match &args.key {
        Some(path) => load_key_file(path),
        None => load_stored_key(args.backend.as_deref()),
    }
}

/// Reads a key from the environment variable `name`. A NAME that is not a
/// variable name (say, the key itself, `--key-env "$KEY"`) is refused
/// without being repeated.
pub fn load_key_env(name: &str) -> anyhow::Result<PrivateKey> {
    let valid = name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(CliError::bad_input(
            "--key-env takes the NAME of an environment variable (letters, digits, _), not a value",
        )
        .hint("e.g. --key-env OLLAMA_KEY with OLLAMA_KEY holding the key file's text")
        .into());
    }
    let value = Zeroizing::new(std::env::var(name).map_err(|_| {
        CliError::bad_input(format!(
            "environment variable {name} is not set or not UTF-8"
        ))
        .hint(format!("export {name}=\"$(cat KEYFILE)\", or use -k FILE"))
    })?);
    PrivateKey::from_openssh(value.as_bytes())
        .map_err(|e| CliError::about(format!("environment variable {name}"), e).into())
}

/// Reads and parses a private key file, naming it in every error. What the
/// file holds is judged first, its permissions second, so a `.pub` or an
/// empty file is called that rather than given a `chmod` hint.
pub fn load_key_file(path: &Path) -> anyhow::Result<PrivateKey> {
    let shown = quote(path);
    let file = fsutil::read_private_file(path).map_err(|e| {
        let not_found = matches!(
            &e,
            Error::Io {
                kind: io::ErrorKind::NotFound,
                ..
            }
        );
        let err = CliError::about(&shown, e);
        if not_found {
            err.hint("check the path, or make a key there with `olm-keygen -o FILE`")
        } else {
            err
        }
    })?;
    let key = PrivateKey::from_openssh(&file.bytes).map_err(|e| CliError::about(&shown, e))?;
    file.check_mode()
        .map_err(|e| CliError::about(&shown, e).hint(format!("chmod 600 {shown}")))?;
    Ok(key)
}

/// Reads all of stdin, up to `limit` bytes.
pub fn read_stdin(limit: usize) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    fsutil::read_limited(io::stdin().lock(), limit).map_err(|e| CliError::about("stdin", e).into())
}

/// Whether something was piped or redirected into stdin: a pipe, a socket
/// or a regular file. A terminal or a device (`< /dev/null`, as CI jobs
/// often run) is not.
pub fn stdin_is_piped() -> bool {
    use std::os::unix::fs::FileTypeExt;
    if stdin_is_terminal() {
        return false;
    }
    match std::fs::metadata("/dev/stdin") {
        Ok(meta) => {
            let t = meta.file_type();
            t.is_fifo() || t.is_socket() || t.is_file()
        }
        // Without /dev/stdin, assume what is not a terminal was piped.
        Err(_) => true,
    }
}

/// Whether stdin is a terminal (nothing piped in).
pub fn stdin_is_terminal() -> bool {
    io::stdin().is_terminal()
}

/// Refuses to wait for input a user would have to type: stdin is a
/// terminal where data (`what`) is expected to be piped in.
pub fn refuse_terminal_stdin(what: &str, example: &str) -> anyhow::Result<()> {
    if stdin_is_terminal() {
        return Err(
            CliError::bad_input(format!("stdin is a terminal; pipe {what} in"))
                .hint(example.to_string())
                .into(),
        );
    }
    Ok(())
}

/// Refuses to go on when stdout is a terminal and `what` is a secret.
pub fn refuse_secret_to_terminal(what: &str, redirect: &str) -> anyhow::Result<()> {
    if io::stdout().is_terminal() {
        return Err(
            CliError::bad_input(format!("refusing to write {what} to a terminal"))
                .hint(redirect.to_string())
                .into(),
        );
    }
    Ok(())
}

/// A path as messages show it: quoted, so odd names stay readable. A
/// "path" that holds a key (`-k "$(cat key)"`) is never repeated.
pub fn quote(path: &Path) -> String {
    let text = path.display().to_string();
    if looks_like_a_secret(&text) {
        return "(a value that looks like a key, not a file name; not shown)".into();
    }
    format!("{text:?}")
}

/// Whether an argument is key material rather than a name: it holds a PEM
/// private-key label.
fn looks_like_a_secret(text: &str) -> bool {
    text.contains("PRIVATE KEY")
}

/// Writes `line` and a newline to stdout.
pub fn print_line(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Reads all of stdin as text, up to `limit` bytes. It may hold a private
/// key, so the buffer zeroizes on drop.
pub fn read_stdin_text(limit: usize) -> anyhow::Result<Zeroizing<String>> {
    let bytes = read_stdin(limit)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CliError::bad_input("stdin: the input is not UTF-8 text"))?;
    Ok(Zeroizing::new(text.to_string()))
}

/// Writes one line to stderr. Unlike `eprintln!`, which panics when stderr
/// is a closed pipe (`cmd 2>&1 | head -1`), a failed write is ignored.
/// Use it through [`crate::eprint_line!`].
pub fn eprint_line(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args);
    let _ = err.write_all(b"\n");
}

/// `eprintln!` that cannot panic: a line on stderr, a failed write ignored.
#[macro_export]
macro_rules! eprint_line {
    ($($arg:tt)*) => {
        $crate::cli::eprint_line(::std::format_args!($($arg)*))
    };
}

/// Writes `TOOL: note: MESSAGE` to stderr. Unlike `eprintln!`, a closed or
/// broken stderr is ignored rather than a panic.
pub fn note(tool: &str, message: impl fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "{tool}: note: {message}");
}

/// Flags of the tools that talk to ollama.com: `--base`, `--timeout`,
/// `--connect-timeout`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NetArgs {
    /// Base URL of ollama.com or a stand-in (default: OLLAMA_CLOUD_BASE_URL,
    /// else https://ollama.com); scheme and host only, http for loopback only.
    #[arg(long, value_name = "URL")]
    pub base: Option<String>,
    /// Give up on a request after SECONDS (default 15).
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,
    /// Give up connecting after SECONDS (default 5, never more than --timeout).
    #[arg(long = "connect-timeout", value_name = "SECONDS", value_parser = parse_timeout)]
    pub connect_timeout: Option<std::time::Duration>,
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    crate::client::parse_seconds(s).map_err(|e| match e {
        Error::Request(why) => why,
        other => other.to_string(),
    })
}

/// The base URL: `--base` (the flag's value), else `OLLAMA_CLOUD_BASE_URL`,
/// else ollama.com; an error names whichever was wrong.
pub fn base_url(flag: Option<&str>) -> anyhow::Result<crate::BaseUrl> {
    let what = if flag.is_some() {
        "--base"
    } else {
        crate::base::BASE_ENV
    };
    crate::BaseUrl::from_flag_or_env(flag).map_err(|e| CliError::about(what, e).into())
}

/// A curl config (`curl -K -`) for one request. It holds a credential, so
/// it zeroizes on drop.
pub fn curl_config(url: &str, method: &str, header: &str) -> Zeroizing<String> {
    let quote = |s: &str| {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    };
    let header = Zeroizing::new(quote(header));
    Zeroizing::new(format!(
        "url = {}\nrequest = {}\nheader = {}",
        quote(url),
        quote(method),
        header.as_str()
    ))
}

impl NetArgs {
    /// The base URL: `--base`, else `OLLAMA_CLOUD_BASE_URL`, else ollama.com.
    /// Checked here, before anything is sent.
    pub fn base_url(&self) -> anyhow::Result<crate::BaseUrl> {
        base_url(self.base.as_deref())
    }

    /// The timeouts the flags ask for.
    pub fn timeouts(&self) -> crate::Timeouts {
        let mut t = match self.timeout {
            Some(overall) => crate::Timeouts::with_overall(overall),
            None => crate::Timeouts::default(),
        };
        if let Some(c) = self.connect_timeout {
            t.connect = c.min(t.overall);
        }
        t
    }

    /// A client for the base URL with these timeouts (no connection yet).
    pub fn client(&self) -> anyhow::Result<crate::Client> {
        Ok(crate::Client::new(&self.base_url()?).with_timeouts(self.timeouts()))
    }
}
