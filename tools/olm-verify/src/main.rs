//! olm-verify: check Ollama-signed tokens and requests, on the command line
//! or as an HTTP auth server (`--serve`), optionally standing in for
//! ollama.com (`--stand-in`).

use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use libauth::authorized_keys::{self, AuthorizedKeys};
use libauth::base::split_absolute;
use libauth::cli::{self, CliError};
use libauth::serve::{Config, Limits, Server};
use libauth::verify::{self, Reason, DEFAULT_MAX_SKEW};

const TOOL: &str = "olm-verify";

/// The most stdin bytes read as one challenge.
const INPUT_LIMIT: usize = 1024 * 1024;

/// Verify Ollama-signed tokens and requests.
#[derive(Parser, Debug)]
#[command(name = TOOL, version, after_help = "\
Examples:
  printf 'POST,/api/me?ts=1700000000' | olm-verify --token \"$token\"
  ts=$(date +%s); h=$(olm-sign -X GET /api/tags --ts $ts --format header)
  olm-verify --header \"$h\" -X GET \"/api/tags?ts=$ts\"
  olm-verify --token \"$token\" -X GET \"/api/tags?ts=$ts\" --authorized-keys ~/.ssh/authorized_keys
  paste tokens.txt challenges.txt | olm-verify --lines      # ok KEYLINE / bad REASON per line
  olm-verify --serve 127.0.0.1:8181 --authorized-keys /etc/olm/authorized_keys
  olm-verify --serve 127.0.0.1:0 --stand-in --authorized-keys ./authorized_keys")]
struct Cli {
    /// The token to check (`KEY:SIGNATURE`, `Bearer` allowed).
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["header", "lines", "serve"])]
    token: Option<String>,
    /// The token as an `Authorization: …` header line (or its value).
    #[arg(long, value_name = "HEADER", conflicts_with_all = ["lines", "serve"])]
    header: Option<String>,
    /// Rebuild the challenge from a request (`METHOD,<request-URI>`) and check
    /// its `ts` against the clock, instead of reading the challenge on stdin.
    /// URI is the request-URI as sent (with `ts`), or an absolute URL.
    #[arg(short = 'X', long = "request", num_args = 2, value_names = ["METHOD", "URI"], conflicts_with_all = ["lines", "serve"])]
    request: Option<Vec<String>>,
    /// How far `ts` may be from the clock, either way, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_MAX_SKEW)]
    max_skew: u64,
    /// Also require the signer to be listed in FILE (authorized_keys lines;
    /// only ssh-ed25519 keys count; expiry-time= is enforced, as UTC; lines
    /// with cert-authority, from= or command= are skipped with a warning).
    #[arg(long, value_name = "FILE")]
    authorized_keys: Option<PathBuf>,
    /// Read `TOKEN<TAB>CHALLENGE` lines on stdin; print `ok <public key line>`
    /// or `bad <reason>` for each, in order. Exit 1 if any is bad.
    #[arg(long)]
    lines: bool,
    /// Run an HTTP verifier on ADDR (e.g. 127.0.0.1:8181; port 0 picks one).
    /// Prints its URL on stdout once listening; logs on stderr.
    #[arg(long, value_name = "ADDR")]
    serve: Option<String>,
    /// With --serve: also answer ollama.com's /connect, /api/me and
    /// DELETE /api/user/keys/… over the authorized keys file (kept in memory
    /// without one), for development.
    #[arg(long, requires = "serve")]
    stand_in: bool,
    /// With --serve: believe X-Original-Method / X-Original-URI from any
    /// peer, not only from this machine (for a proxy on another host; then
    /// only that proxy may reach the verifier).
    #[arg(long, requires = "serve")]
    trust_original_headers: bool,
}

fn main() -> ExitCode {
    let args: Cli = cli::parse(TOOL);
    cli::run(TOOL, || run(args))
}

fn run(args: Cli) -> anyhow::Result<()> {
    if let Some(addr) = &args.serve {
        return serve(&args, addr);
    }
    let keys = match &args.authorized_keys {
        Some(path) => Some((load_keys(path)?, cli::quote(path))),
        None => None,
    };
    let keys = keys.as_ref().map(|(k, shown)| (k, shown.as_str()));
    if args.lines {
        cli::refuse_terminal_stdin(
            "TOKEN<TAB>CHALLENGE lines",
            "paste tokens.txt challenges.txt | olm-verify --lines",
        )?;
        let mut input = BufReader::with_capacity(64 * 1024, io::stdin().lock());
        let mut output = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
        let all_ok = verify::run_lines(&mut input, &mut output, keys)?;
        if !all_ok {
            // The verdicts say why; the status says that some were bad.
            return Err(CliError::failed("some tokens did not verify (see the bad lines)").into());
        }
        return Ok(());
    }
    let token =
        match (&args.token, &args.header) {
            (Some(t), None) => t.as_str(),
            (None, Some(h)) => h.as_str(),
            _ => return Err(CliError::bad_input("no token to verify")
                .hint(
                    "give --token TOKEN or --header 'Authorization: …', or use --lines or --serve",
                )
                .into()),
        };
    let key = match &args.request {
        Some(request) => {
            let [method, uri] = request.as_slice() else {
                return Err(CliError::bad_input("-X takes METHOD and URI").into());
            };
            let uri = if uri.contains("://") {
                split_absolute(uri)
                    .map_err(|e| CliError::about("the URL", e))?
                    .1
            } else {
                uri.clone()
            };
            let method = method.to_ascii_uppercase();
            verify::verify_request(
                token.as_bytes(),
                &method,
                &uri,
                verify::now(),
                args.max_skew,
            )
            .map_err(refused)?
            .token
        }
        None => {
            cli::refuse_terminal_stdin(
                "the challenge (the exact signed bytes)",
                "printf '…' | olm-verify --token …, or use -X METHOD URI instead of stdin",
            )?;
            let challenge = cli::read_stdin(INPUT_LIMIT)?;
            verify::verify_token(token.as_bytes(), &challenge).map_err(refused)?
        }
    };
    let key = *key.public_key();
    if let Some((list, shown)) = keys {
        verify::authorize(list, shown, &key, verify::now()).map_err(refused)?;
    }
    cli::print_line(&key.to_line())?;
    Ok(())
}

fn load_keys(path: &Path) -> anyhow::Result<AuthorizedKeys> {
    let keys = AuthorizedKeys::load(path).map_err(|e| keys_error(path, e))?;
    for bad in keys.bad_lines() {
        libauth::eprint_line!(
            "{TOOL}: warning: {} line {}: {}",
            cli::quote(path),
            bad.line,
            bad.why
        );
    }
    Ok(keys)
}

/// Why the authorized keys file cannot be used, with the fix as a hint.
fn keys_error(path: &Path, err: libauth::Error) -> CliError {
    let shown = cli::quote(path);
    if authorized_keys::is_private_key_error(&err) {
        let mut public = path.as_os_str().to_owned();
        public.push(".pub");
        return CliError::bad_input(format!("{shown} {}", authorized_keys::PRIVATE_KEY_FILE))
            .hint(format!("use {}", cli::quote(Path::new(&public))));
    }
    if authorized_keys::is_writable_by_others_error(&err) {
        return CliError::about(&shown, err).hint(format!("chmod go-w {shown}"));
    }
    if matches!(
        err,
        libauth::Error::Io {
            kind: io::ErrorKind::NotFound,
            ..
        }
    ) {
        return CliError::bad_input(format!("{shown}: no such authorized keys file")).hint(
            format!(
                "list who may sign there, one public key line each: cat ~/.ollama/id_ed25519.pub >> {shown}"
            ),
        );
    }
    CliError::about(&shown, err)
}

/// A refusal as the user reads it: exit 1, with a hint where one helps.
fn refused(reason: Reason) -> anyhow::Error {
    let hint = match &reason {
        Reason::BadRequest(_) => return CliError::bad_input(reason.to_string())
            .hint(
                "give the request-URI as sent, with its ts, e.g. -X GET '/api/tags?ts=1700000000'",
            )
            .into(),
        Reason::BadSignature { challenge: None } => {
            Some("the challenge on stdin must be the exact bytes signed (printf, not echo)")
        }
        Reason::TooOld { .. } | Reason::InFuture { .. } => {
            Some("sign a fresh request, check both clocks, or allow more with --max-skew")
        }
        Reason::NotAuthorized { .. } => {
            Some("add the signer's public key line to the authorized keys file")
        }
        Reason::Expired { .. } => {
            Some("the line's expiry-time has passed; renew it in the authorized keys file")
        }
        _ => None,
    };
    let err = CliError::failed(reason.to_string());
    match hint {
        Some(h) => err.hint(h).into(),
        None => err.into(),
    }
}

fn serve(args: &Cli, addr: &str) -> anyhow::Result<()> {
    let config = Config {
        addr: addr.to_string(),
        authorized_keys: args.authorized_keys.clone(),
        stand_in: args.stand_in,
        max_skew: args.max_skew,
        limits: Limits::default(),
        trust_original_headers: args.trust_original_headers,
    };
    if config.authorized_keys.is_none() && !config.stand_in {
        return Err(CliError::bad_input(
            "--serve needs --authorized-keys FILE: only the keys listed there get in",
        )
        .hint("add --authorized-keys FILE, or --stand-in to try it out")
        .into());
    }
    if let Some(path) = &config.authorized_keys {
        // Check the file now, for a clear message; the stand-in makes a
        // missing one, the plain verifier refuses to start without it.
        match AuthorizedKeys::load(path) {
            Ok(_) => {}
            Err(libauth::Error::Io {
                kind: io::ErrorKind::NotFound,
                ..
            }) if config.stand_in => {}
            Err(e) => return Err(keys_error(path, e).into()),
        }
    }
    // libauth's error carries its exit status and hint (cli::run).
    let server = Server::bind(&config)?;
    // Signals are caught before the URL is out: a script may stop the
    // server as soon as it has read it.
    let stopper = server.stop_on_signal()?;
    // The one line on stdout: scripts read the port from it.
    cli::print_line(server.url())?;
    server.run(&stopper)?;
    Ok(())
}
