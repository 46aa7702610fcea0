//! olm-whoami: ask ollama.com which account the device key is connected to.

use std::process::ExitCode;

use clap::Parser;
use libauth::account::{self, KeyUse, Whoami};
use libauth::cli::{self, CliError, KeyArgs, NetArgs};
use libauth::{connect_url, ConnectForm};

const TOOL: &str = "olm-whoami";

/// Check that the device key is signed in to ollama.com (signed POST /api/me).
///
/// Prints the account's name, email and plan and exits 0; when the key is
/// not connected, prints the URL that connects it and exits 1.
#[derive(Parser, Debug)]
#[command(name = TOOL, version, after_help = "\
Examples:
  olm-whoami                                  name, email, plan of the stored key
  olm-whoami --json | jq -r .email            the whole account object
  olm-whoami -k ci.key --timeout 5            a CI key, a short deadline
  olm-whoami || { olm-connect-url --qr; exit 1; }   a CI step's sign-in check

Exit status: 0 signed in; 1 not signed in (the connect URL is on stdout;
or no stored key at all) or ollama.com could not be reached; 2 bad flags
or an unreadable key.")]
struct Cli {
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    net: NetArgs,
    /// Print the server's account object as one line of JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args: Cli = cli::parse(TOOL);
    cli::run(TOOL, || run(args))
}

fn run(args: Cli) -> anyhow::Result<()> {
    // The base URL is checked before the key is read or anything is sent.
    let base = args.net.base_url()?;
    let client = args.net.client()?;
    let key = account::signing_key(&args.key, KeyUse::Whoami)?;
    let answer = account::whoami(&client, &key)
        .map_err(|e| anyhow::Error::from(e).context("cannot tell whether this key is signed in"))?;
    match answer {
        Whoami::SignedIn(user) => {
            if args.json {
                let line =
                    serde_json::to_string(&serde_json::Value::Object(user.object().clone()))?;
                cli::print_line(&line)?;
            } else {
                for (label, value) in [
                    ("name", user.name()),
                    ("email", user.email()),
                    ("plan", user.plan()),
                ] {
                    if let Some(v) = value {
                        cli::print_line(&format!("{label}: {v}"))?;
                    }
                }
            }
            Ok(())
        }
        Whoami::NotSignedIn { signin_url } => {
            let public = key.public_key();
            let url = signin_url.unwrap_or_else(|| {
                let name = gethostname::gethostname().to_string_lossy().into_owned();
                connect_url(&base, &name, &public, ConnectForm::Server)
            });
            cli::print_line(&url)?;
            Err(CliError::failed(format!(
                "You are not signed in to ollama.com: {} answered 401 for key {}",
                client.server(),
                public.fingerprint()
            ))
            .hint("open the URL above in a browser signed in to ollama.com, then run olm-whoami again")
            .into())
        }
    }
}
