//! olm-keygen: make an Ed25519 device key, or print a key's public line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use libauth::cli::{self, CliError, KeyArgs};
use libauth::fsutil::{self, Replace};
use libauth::store::{self, Backend, Store};
use libauth::{Error, PrivateKey};

const TOOL: &str = "olm-keygen";

/// Make an Ed25519 device key in OpenSSH format, as Ollama does.
///
/// Without -o, the new private key goes to stdout (refused when stdout is a
/// terminal). With -o FILE, it is written to FILE (mode 0600) and its public
/// line to FILE.pub (0644), each through a temporary file, fsync and rename,
/// and an existing FILE is kept unless --force. With -y, olm-keygen prints
/// the public key line of a private key instead, like ssh-keygen -y.
#[derive(Parser, Debug)]
#[command(name = TOOL, version, after_help = "\
Examples:
  olm-keygen -o ~/.ollama/id_ed25519      # write a key and its .pub, print the public line
  olm-keygen | olm-store put              # make a key straight into the store
  olm-keygen -y -k ~/.ollama/id_ed25519   # print a key's public line
  olm-keygen -y -k key | olm-connect-url --name box")]
struct Cli {
    /// Write the key to FILE (mode 0600, atomically) and FILE.pub (0644);
    /// `-` is stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace an existing FILE.
    #[arg(long, requires = "output")]
    force: bool,
    /// A comment stored in the key (Ollama writes none).
    #[arg(short = 'C', long, value_name = "TEXT", default_value = "")]
    comment: String,
    /// Print the public key line of a private key (stdin, or -k FILE).
    #[arg(short = 'y', long = "public", conflicts_with_all = ["output", "comment"])]
    public: bool,
    #[command(flatten)]
    key: KeyArgs,
}

fn main() -> ExitCode {
    let args: Cli = cli::parse(TOOL);
    cli::run(TOOL, || run(args))
}

fn run(args: Cli) -> anyhow::Result<()> {
    if args.public {
        let key = if args.key.is_explicit() {
            cli::load_key(&args.key)?
        } else {
            cli::refuse_terminal_stdin(
                "a private key",
                "`olm-keygen -y < KEYFILE`, or name the key with -k FILE",
            )?;
            let bytes = cli::read_stdin(fsutil::KEY_FILE_LIMIT)?;
            PrivateKey::from_openssh(&bytes).map_err(|e| CliError::about("stdin", e))?
        };
        cli::print_line(&key.public_key().to_line())?;
        return Ok(());
    }
    if args.key.is_explicit() {
        return Err(
            CliError::bad_input("-k, --key-env and --backend go with -y")
                .hint("to store a new key: olm-keygen | olm-store put")
                .into(),
        );
    }
    let key = PrivateKey::generate()?;
    let key = if args.comment.is_empty() {
        key
    } else {
        key.with_comment(&args.comment)
    };
    match &args.output {
        Some(path) if path.as_os_str() != "-" => write_files(path, &key, args.force),
        _ => {
            cli::refuse_secret_to_terminal(
                "a private key",
                "redirect it: `olm-keygen > FILE`, `olm-keygen -o FILE`, or `olm-keygen | olm-store put`",
            )?;
            let mut out = std::io::stdout().lock();
            out.write_all(key.to_openssh()?.as_bytes())?;
            out.flush()?;
            Ok(())
        }
    }
}

fn write_files(path: &Path, key: &PrivateKey, force: bool) -> anyhow::Result<()> {
    // Where Ollama keeps its key, the store writes it: it makes ~/.ollama
    // (0700) when missing and takes the lock other writers take.
    if is_the_ollama_key(path) {
        let store = Store::open(Backend::File).map_err(cli::store_error)?;
        store.put_key(key, force).map_err(|e| match e {
            Error::Occupied { .. } => CliError::bad_input(format!(
                "{} already exists; not replacing a key",
                cli::quote(path)
            ))
            .hint("pick another file, or add --force to replace it (keep a copy first)"),
            other => cli::store_error(other),
        })?;
    } else {
        let shown = cli::quote(path);
        let replace = if force {
            Replace::Allow
        } else {
            Replace::Never
        };
        fsutil::write_key_pair(path, key, replace).map_err(|e| match e {
            Error::Exists => {
                CliError::bad_input(format!("{shown} already exists; not replacing a key"))
                    .hint("pick another file, or add --force to replace it")
            }
            Error::At { location, error } if *error == Error::Exists => {
                CliError::bad_input(format!("{location} already exists; not replacing it"))
                    .hint("remove it, pick another file, or add --force")
            }
            other => {
                let missing_folder = matches!(
                    &other,
                    Error::Io {
                        kind: std::io::ErrorKind::NotFound,
                        ..
                    }
                );
                let err = CliError::about(&shown, other);
                if missing_folder {
                    err.hint("create the folder first (`mkdir -p`), or pick another file")
                } else {
                    err
                }
            }
        })?;
    }
    cli::print_line(&key.public_key().to_line())?;
    Ok(())
}

/// Whether `path` is `$HOME/.ollama/id_ed25519`.
fn is_the_ollama_key(path: &Path) -> bool {
    store::ollama_dir()
        .map(|dir| path == dir.join(store::KEY_FILE))
        .unwrap_or(false)
}
