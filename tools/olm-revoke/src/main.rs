//! olm-revoke: sign a device key out of ollama.com, then remove it locally.

use std::process::ExitCode;

use clap::Parser;
use libauth::account::{self, KeyUse, SignOut};
use libauth::cli::{self, CliError, KeyArgs, NetArgs};
use libauth::local::{self, HOST_ENV};
use libauth::store::Removal;
use libauth::{Client, Error, LocalHost, PrivateKey, PublicKey, RemoteFailure};

const TOOL: &str = "olm-revoke";

/// Sign out of ollama.com: disconnect the device key (signed
/// DELETE /api/user/keys/<encodedKey>), then remove it from every local
/// store that holds it.
///
/// The local key is removed only after ollama.com answered 200; on any other
/// answer, a timeout or no connection it is left exactly as it was.
#[derive(Parser, Debug)]
#[command(name = TOOL, version, after_help = "\
Examples:
  olm-revoke                          sign out the stored key and remove it
  olm-revoke -k old.key               rotation: disconnect the old key only
  olm-revoke --keep-local             disconnect, keep the key files
  olm-revoke --local-only             remove the local key, ask nobody
  olm-revoke --server                 ask the local Ollama (OLLAMA_HOST) to sign out

Exit status: 0 signed out; 1 not signed in, ollama.com said no or could not be
reached (the local key is unchanged), or no local key; 2 bad flags or key.")]
struct Cli {
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    net: NetArgs,
    /// Disconnect the key on ollama.com but keep it locally.
    #[arg(long, conflicts_with_all = ["local_only", "server"])]
    keep_local: bool,
    /// Remove the local key without calling ollama.com.
    #[arg(long, conflicts_with_all = ["server", "base"])]
    local_only: bool,
    /// Ask the local Ollama server (OLLAMA_HOST) to sign out: POST /api/signout.
    /// The server signs its own key out, so no key, store or base URL can be
    /// named (with OLLAMA_AUTH the request is signed with the stored key, as
    /// Ollama's client does).
    #[arg(
        long,
        conflicts_with_all = ["key", "key_env", "backend", "base", "keep_local", "local_only"]
    )]
    server: bool,
}

fn main() -> ExitCode {
    let args: Cli = cli::parse(TOOL);
    cli::run(TOOL, || run(args))
}

fn run(args: Cli) -> anyhow::Result<()> {
    if args.server {
        return server_signout(&args);
    }
    // The base URL is checked before the key is read or anything is sent.
    let client = if args.local_only {
        None
    } else {
        Some(args.net.client()?)
    };
    let key = account::signing_key(&args.key, KeyUse::Revoke)?;
    let public = key.public_key();
    if let Some(client) = client {
        disconnect(&client, &key)?;
        if args.keep_local {
            libauth::eprint_line!("{TOOL}: --keep-local: the local key was left in place");
            return Ok(());
        }
    }
    remove_local(&args.key, &public, args.local_only)
}

/// Asks ollama.com to disconnect `key`; `Ok` only after a `200`.
fn disconnect(client: &Client, key: &PrivateKey) -> anyhow::Result<()> {
    let fingerprint = key.public_key().fingerprint();
    match account::disconnect(client, key) {
        Ok(SignOut::SignedOut) => {
            cli::print_line("Signed out from ollama.com")?;
            libauth::eprint_line!(
                "{TOOL}: {} disconnected key {fingerprint}",
                client.server()
            );
            Ok(())
        }
        Ok(SignOut::NotSignedIn) => Err(CliError::failed(format!(
            "You are not signed in to ollama.com: {} answered 401 for key {fingerprint}; the local key was left as it was",
            client.server()
        ))
        .hint("there is no session to end; to remove the local key anyway, run olm-revoke --local-only")
        .into()),
        Err(e) => Err(anyhow::Error::from(e).context(format!(
            "could not sign out key {fingerprint}; the local key was left as it was"
        ))),
    }
}

/// Removes `public` from every local backend, one stderr line each.
fn remove_local(args: &KeyArgs, public: &PublicKey, local_only: bool) -> anyhow::Result<()> {
    let mut removed = 0;
    let mut failures = Vec::new();
    for (backend, location, outcome) in account::remove_everywhere(public) {
        match outcome {
            Ok(Removal::Removed) => {
                removed += 1;
                libauth::eprint_line!("{TOOL}: removed key from {backend} backend ({location})");
            }
            Ok(Removal::NotHeld) => libauth::eprint_line!("{TOOL}: {backend} backend: not held"),
            Err(e) if account::backend_unavailable(&e) => {
                libauth::eprint_line!(
                    "{TOOL}: {backend} backend: not available here, nothing to remove"
                );
            }
            Err(e) => {
                libauth::eprint_line!("{TOOL}: {backend} backend: could not remove the key: {e}");
                failures.push(format!("{backend} backend ({location})"));
            }
        }
    }
    if let Some(path) = &args.key {
        libauth::eprint_line!(
            "{TOOL}: {} (named with -k) was left as it is; delete it yourself when done",
            cli::quote(path)
        );
    }
    if !failures.is_empty() {
        return Err(CliError::failed(format!(
            "could not remove key {} from {}",
            public.fingerprint(),
            failures.join(", ")
        ))
        .into());
    }
    if removed == 0 && local_only {
        return Err(CliError::failed(format!(
            "no local backend holds key {}; nothing was removed",
            public.fingerprint()
        ))
        .into());
    }
    if local_only {
        cli::print_line("Removed the local key")?;
    }
    Ok(())
}

/// `--server`: `POST /api/signout` to the local Ollama, which signs out its
/// own key.
fn server_signout(args: &Cli) -> anyhow::Result<()> {
    let host = LocalHost::from_env().map_err(|e| CliError::about(HOST_ENV, e))?;
    if let Some(port) = host.ignored_port() {
        libauth::eprint_line!(
            "{TOOL}: warning: {HOST_ENV}: port {port:?} is not a number from 0 to 65535; using {}, as Ollama does",
            host.port()
        );
    }
    let client = Client::local(&host).with_timeouts(args.net.timeouts());
    // Ollama's client signs its requests with OLLAMA_AUTH on, and always
    // to ollama.com.
    let key = if host.signs_requests(local::use_auth()) {
        Some(account::signing_key(&args.key, KeyUse::LocalSignOut)?)
    } else {
        None
    };
    let server = client.server().to_string();
    match account::local_signout(&client, key.as_ref()) {
        Ok(SignOut::SignedOut) => {
            cli::print_line("Signed out from ollama.com")?;
            libauth::eprint_line!("{TOOL}: the local Ollama server at {server} signed its key out");
            Ok(())
        }
        Ok(SignOut::NotSignedIn) => Err(CliError::failed(format!(
            "You are not signed in to ollama.com: the local Ollama server at {server} answered 401"
        ))
        .into()),
        Err(Error::Remote {
            failure: RemoteFailure::Refused,
            ..
        }) => Err(CliError::failed(format!(
            "the local Ollama server at {server} is not running (connection refused)"
        ))
        .hint("start it with `ollama serve`, or point OLLAMA_HOST at it")
        .into()),
        Err(Error::Remote {
            failure: RemoteFailure::Status { status: 404, .. },
            ..
        }) => Err(CliError::failed(format!(
            "the local Ollama server at {server} answered 404 to POST /api/signout"
        ))
        .hint("an older Ollama may lack /api/signout: upgrade Ollama, or run olm-revoke without --server (it signs the key out of ollama.com itself)")
        .into()),
        Err(e) => Err(anyhow::Error::from(e).context("the local Ollama server could not sign out")),
    }
}
