//! olm-store: keep the device key and an API key in a file or the OS keyring.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use libauth::cli::{self, CliError};
use libauth::fsutil::KEY_FILE_LIMIT;
use libauth::store::{ApiKey, Backend, PutOutcome, Status, Store};
use libauth::PrivateKey;

const TOOL: &str = "olm-store";

/// Keep the device key (and an API key) where Ollama looks, or in the OS keyring.
#[derive(Parser, Debug)]
#[command(name = TOOL, version, after_help = "\
Backends (--backend, else OLM_BACKEND, else file):
  file     ~/.ollama/id_ed25519 (0600) and id_ed25519.pub (0644), where Ollama
           keeps its key; the API key in ~/.ollama/olm-api-key (0600)
  keyring  the OS secret store (macOS Keychain, Windows Credential Manager,
           Linux Secret Service), service olm, users device-key and api-key

Examples:
  olm-keygen | olm-store put | olm-connect-url       make, store and connect a key
  olm-store get | olm-store --backend keyring put    copy the Ollama key into the keychain
  olm-store get --public                             the public key line
  olm-store status                                   where the key is, its fingerprint, problems
  printf %s \"$KEY\" | olm-store put --api-key         keep an ollama.com API key
  curl -H \"$(olm-sign --api-key)\" https://ollama.com/api/tags")]
struct Cli {
    /// The store: file (~/.ollama, the default) or keyring (the OS secret
    /// store). Default: OLM_BACKEND, else file.
    #[arg(long, global = true, value_name = "file|keyring")]
    backend: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Store the private key read on stdin and print its public key line.
    Put {
        /// Replace a different (or damaged) key that is already stored.
        #[arg(long)]
        force: bool,
        /// Store an API key (stdin's first line) instead of the device key.
        #[arg(long)]
        api_key: bool,
    },
    /// Print the stored private key (never to a terminal).
    Get {
        /// Print the public key line instead.
        #[arg(long, conflicts_with = "api_key")]
        public: bool,
        /// Print the stored API key instead (never to a terminal).
        #[arg(long)]
        api_key: bool,
    },
    /// Remove the stored key (for the file backend, both files); exit 1 when there was none.
    Delete {
        /// Remove the stored API key instead.
        #[arg(long)]
        api_key: bool,
    },
    /// Say where the key is, its fingerprint and public key line, and any
    /// problem; exit 1 when there is no usable key or something is wrong.
    Status,
}

fn main() -> ExitCode {
    let args: Cli = cli::parse(TOOL);
    cli::run(TOOL, || run(args))
}

fn run(args: Cli) -> anyhow::Result<()> {
    let store = cli::open_store(args.backend.as_deref())?;
    match args.command {
        Command::Put { force, api_key } if api_key => put_api_key(&store, force),
        Command::Put { force, .. } => put(&store, force),
        Command::Get { api_key: true, .. } => get_api_key(&store),
        Command::Get { public, .. } => get(&store, public),
        Command::Delete { api_key } => delete(&store, api_key),
        Command::Status => status(&store),
    }
}

fn note(message: &str) {
    let _ = writeln!(io::stderr().lock(), "{TOOL}: {message}");
}

fn put(store: &Store, force: bool) -> anyhow::Result<()> {
    cli::refuse_terminal_stdin(
        "the private key",
        "`olm-keygen | olm-store put`, or `olm-store put < ~/.ollama/id_ed25519`",
    )?;
    let bytes = cli::read_stdin(KEY_FILE_LIMIT)?;
    let key = PrivateKey::from_openssh(&bytes).map_err(|e| CliError::about("stdin", e))?;
    let outcome = store
        .put_key(&key, force)
        .map_err(|e| occupied(store, e, Item::Key))?;
    match outcome {
        PutOutcome::Stored => note(&format!("stored the key in {}", store.location())),
        PutOutcome::Unchanged => note(&format!(
            "{} already holds this key; nothing changed",
            store.location()
        )),
    }
    cli::print_line(&key.public_key().to_line())?;
    Ok(())
}

fn put_api_key(store: &Store, force: bool) -> anyhow::Result<()> {
    cli::refuse_terminal_stdin(
        "the API key",
        "`printf %s \"$OLLAMA_API_KEY\" | olm-store put --api-key`, or `olm-store put --api-key < FILE`",
    )?;
    let text = cli::read_stdin_text(64 * 1024)?;
    let key = ApiKey::new(&text).map_err(|e| CliError::about("stdin", e))?;
    match store
        .put_api_key(&key, force)
        .map_err(|e| occupied(store, e, Item::ApiKey))?
    {
        PutOutcome::Stored => note(&format!(
            "stored the API key in {}",
            store.api_key_location()
        )),
        PutOutcome::Unchanged => note(&format!(
            "{} already holds this API key; nothing changed",
            store.api_key_location()
        )),
    }
    Ok(())
}

/// Which item a `put` was for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Item {
    Key,
    ApiKey,
}

/// A store error; when the place is taken, the hint says how to keep a copy
/// of what is there before `--force`: `olm-store get [--api-key] > backup`
/// for a readable item, a copy of the file for a damaged one.
fn occupied(store: &Store, err: libauth::Error, item: Item) -> CliError {
    if !matches!(err, libauth::Error::Occupied { .. }) {
        return cli::store_error(err);
    }
    let (readable, file, get) = match item {
        Item::Key => (store.get_key().is_ok(), store.key_file(), "get"),
        Item::ApiKey => (
            store.get_api_key().is_ok(),
            store.api_key_file(),
            "get --api-key",
        ),
    };
    let hint = match (readable, file) {
        (true, _) => format!(
            "add --force to replace it; keep a copy first if you may need it again (`olm-store{} {get} > backup`)",
            flag(store)
        ),
        (false, Some(path)) => {
            let mut backup = path.as_os_str().to_owned();
            backup.push(".bak");
            format!(
                "add --force to replace it; it cannot be read, so copy the file first if you may need it again (`cp -p {} {}`)",
                cli::quote(&path),
                cli::quote(std::path::Path::new(&backup))
            )
        }
        (false, None) => "add --force to replace it; it cannot be read, so copy it with the keyring's own tool first if you may need it again".to_string(),
    };
    cli::store_error(err).hint(hint)
}

/// ` --backend keyring` when that is the store, so hints can be pasted.
fn flag(store: &Store) -> &'static str {
    match store.backend() {
        Backend::File => "",
        Backend::Keyring => " --backend keyring",
    }
}

fn nothing_stored(what: &str, location: &str, hint: &str) -> anyhow::Error {
    CliError::failed(format!("no {what} in {location}"))
        .hint(hint.to_string())
        .into()
}

fn get(store: &Store, public: bool) -> anyhow::Result<()> {
    if !public {
        cli::refuse_secret_to_terminal(
            "a private key",
            "redirect it: `olm-store get > FILE`, `olm-store get | olm-store --backend keyring put`; or print the public line with `olm-store get --public`",
        )?;
    }
    let Some(key) = store.get_key().map_err(cli::store_error)? else {
        return Err(nothing_stored(
            "key",
            &store.location(),
            &format!("make one with `olm-keygen | olm-store{} put`", flag(store)),
        ));
    };
    if public {
        cli::print_line(&key.public_key().to_line())?;
    } else {
        let mut out = io::stdout().lock();
        out.write_all(key.to_openssh()?.as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

fn get_api_key(store: &Store) -> anyhow::Result<()> {
    cli::refuse_secret_to_terminal(
        "an API key",
        "use it in a pipeline: `curl -H \"$(olm-sign --api-key)\" URL`, or `export OLLAMA_API_KEY=$(olm-store get --api-key)`",
    )?;
    let Some(key) = store.get_api_key().map_err(cli::store_error)? else {
        return Err(nothing_stored(
            "API key",
            &store.api_key_location(),
            &format!(
                "put one with `olm-store{} put --api-key < FILE`",
                flag(store)
            ),
        ));
    };
    cli::print_line(key.expose())?;
    Ok(())
}

fn delete(store: &Store, api_key: bool) -> anyhow::Result<()> {
    if api_key {
        if !store.delete_api_key().map_err(cli::store_error)? {
            return Err(nothing_stored(
                "API key",
                &store.api_key_location(),
                "nothing to delete",
            ));
        }
        note(&format!(
            "removed the API key from {}",
            store.api_key_location()
        ));
        return Ok(());
    }
    if !store.delete_key().map_err(cli::store_error)? {
        return Err(nothing_stored(
            "key",
            &store.location(),
            "nothing to delete; the other backend may hold one (--backend file|keyring)",
        ));
    }
    note(&format!("removed the key from {}", store.location()));
    Ok(())
}

fn status(store: &Store) -> anyhow::Result<()> {
    let st = store.status().map_err(cli::store_error)?;
    print_status(&st)?;
    if !st.key_present {
        return Err(nothing_stored(
            "key",
            &store.location(),
            &format!(
                "make one with `olm-keygen | olm-store{} put`, or look in the other backend (--backend file|keyring)",
                flag(store)
            ),
        ));
    }
    if !st.problems.is_empty() {
        let n = st.problems.len();
        let first = &st.problems[0];
        // Errors quote paths; the listing above shows them plain.
        let location = match st.backend {
            Backend::File => cli::quote(std::path::Path::new(&first.location)),
            Backend::Keyring => first.location.clone(),
        };
        let mut err = CliError::failed(format!(
            "{n} problem{} with the stored credentials: {location}: {}",
            if n == 1 { "" } else { "s" },
            first.what
        ));
        if let Some(fix) = &first.fix {
            err = err.hint(fix.clone());
        }
        return Err(err.into());
    }
    Ok(())
}

fn print_status(st: &Status) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "backend: {}", st.backend)?;
    writeln!(out, "key: {}", st.location)?;
    match &st.public_key {
        Some(k) => {
            writeln!(out, "public key: {}", k.to_line())?;
            writeln!(out, "fingerprint: {}", k.fingerprint())?;
            if !st.comment.is_empty() {
                writeln!(out, "comment: {}", st.comment)?;
            }
        }
        None if st.key_present => writeln!(out, "public key: unreadable (see problems)")?,
        None => writeln!(out, "public key: none (no key stored)")?,
    }
    if st.key_present {
        // What `olm-store get` and the signing tools would do with it.
        let usable = if st.usable {
            "yes"
        } else {
            "no, olm refuses it (see problems)"
        };
        writeln!(out, "usable: {usable}")?;
    }
    if let Some(p) = &st.public_file {
        writeln!(out, "public key file: {p}")?;
    }
    if st.api_key_present {
        writeln!(out, "api key: stored in {}", st.api_key_location)?;
    } else {
        writeln!(out, "api key: none ({})", st.api_key_location)?;
    }
    for n in &st.notes {
        writeln!(out, "note: {n}")?;
    }
    for p in &st.problems {
        writeln!(out, "problem: {}: {}", p.location, p.what)?;
        if let Some(fix) = &p.fix {
            writeln!(out, "  fix: {fix}")?;
        }
    }
    out.flush()
}
