//! olm-connect-url: print the URL that connects a key to an ollama.com account.

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};

use clap::Parser;
use libauth::cli::{self, CliError, KeyArgs};
use libauth::{connect_url, ConnectForm, PrivateKey, PublicKey};

const TOOL: &str = "olm-connect-url";

/// Print the ollama.com connect URL for a device key.
///
/// Opening the URL while signed in to ollama.com attaches the key to the
/// account, after which the device's signed requests are accepted. The key
/// is a public key line, a .pub file's content or a private key on stdin
/// (when stdin is not a terminal), -k FILE, --key-env NAME, or the store
/// (--backend: ~/.ollama/id_ed25519 by default, or the OS keyring).
#[derive(Parser, Debug)]
#[command(name = TOOL, version, after_help = "\
Examples:
  olm-connect-url                                    # the URL for the stored key
  olm-keygen -y -k key | olm-connect-url --name ci-runner
  olm-connect-url --qr < ~/.ollama/id_ed25519.pub    # scan it with a phone
  ssh box cat .ollama/id_ed25519.pub | olm-connect-url --name box --open")]
struct Cli {
    #[command(flatten)]
    key: KeyArgs,
    /// The device name shown on ollama.com (default: this host's name).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Base URL (default: OLLAMA_CLOUD_BASE_URL, else https://ollama.com).
    #[arg(long, value_name = "URL")]
    base: Option<String>,
    /// The desktop app's form: query-escaped name and &launch=true.
    #[arg(long)]
    app: bool,
    /// Also draw the URL as a QR code on stderr.
    #[arg(long)]
    qr: bool,
    /// Also open the URL in a browser when a display is there.
    #[arg(long)]
    open: bool,
}

fn main() -> ExitCode {
    let args: Cli = cli::parse(TOOL);
    cli::run(TOOL, || run(args))
}

fn run(args: Cli) -> anyhow::Result<()> {
    let base = cli::base_url(args.base.as_deref())?;
    let key = public_key(&args.key)?;
    let name = match args.name {
        Some(n) if n.is_empty() => return Err(CliError::bad_input("--name is empty").into()),
        Some(n) => n,
        None => gethostname::gethostname().to_string_lossy().into_owned(),
    };
    let form = if args.app {
        ConnectForm::App
    } else {
        ConnectForm::Server
    };
    let url = connect_url(&base, &name, &key, form);
    cli::print_line(&url)?;
    if args.qr {
        draw_qr(&url)?;
    }
    if args.open {
        open_browser(&url);
    }
    Ok(())
}

/// The key from -k/--key-env, else from stdin when something is piped in,
/// else the stored key. A pipe that brings nothing is an error, not a
/// reason to fall back: `ssh box cat key.pub | olm-connect-url` must never
/// print this machine's URL when ssh failed.
fn public_key(args: &KeyArgs) -> anyhow::Result<PublicKey> {
    if args.is_explicit() || !cli::stdin_is_piped() {
        return Ok(cli::load_key(args)?.public_key());
    }
    let text = cli::read_stdin_text(libauth::fsutil::KEY_FILE_LIMIT)?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(CliError::bad_input(
            "stdin is empty: expected a public key line or a private key",
        )
        .hint("pipe a key in (`olm-keygen -y -k KEY | olm-connect-url`), or run with no stdin for the stored key")
        .into());
    }
    if trimmed.starts_with("-----BEGIN") {
        let key = PrivateKey::from_openssh(trimmed.as_bytes())
            .map_err(|e| CliError::about("stdin", e))?;
        return Ok(key.public_key());
    }
    let lines: Vec<&str> = trimmed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if lines.len() > 1 {
        return Err(CliError::bad_input(format!(
            "stdin holds {} lines; give one public key line",
            lines.len()
        ))
        .hint("e.g. `olm-connect-url < ~/.ollama/id_ed25519.pub`")
        .into());
    }
    let line = lines.first().copied().unwrap_or_default();
    PublicKey::from_line(line).map_err(|e| CliError::about("stdin", e).into())
}

fn draw_qr(url: &str) -> anyhow::Result<()> {
    let code = qrcode::QrCode::new(url.as_bytes())
        .map_err(|e| CliError::failed(format!("cannot draw a QR code: {e}")))?;
    let art = code
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build();
    let mut err = std::io::stderr().lock();
    writeln!(err, "{art}")?;
    Ok(())
}

/// Opens a browser where there is a display; otherwise says so (the URL is
/// already on stdout to copy).
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        Some("open")
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        Some("xdg-open")
    } else {
        None
    };
    let Some(opener) = opener else {
        cli::note(
            TOOL,
            "no display here; open the URL above on another device",
        );
        return;
    };
    let spawned = Command::new(opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if spawned.is_err() {
        cli::note(
            TOOL,
            format!("could not run {opener}; open the URL above yourself"),
        );
    }
}
