//! olm-sign: sign a challenge or an API request with the device key.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use libauth::base::{split_absolute, BaseUrl};
use libauth::cli::{self, CliError, KeyArgs};
use libauth::client::unix_now;
use libauth::lines::{self, Line};
use libauth::{ApiKey, ApiRequest, Challenge, PrivateKey, RegistryChallenge, Signer, Token};
use serde_json::json;
use zeroize::Zeroizing;

const TOOL: &str = "olm-sign";

/// The most stdin bytes signed in one challenge (and per line with --lines).
const INPUT_LIMIT: usize = 1024 * 1024;

/// Sign challenges and API requests the way Ollama does.
///
/// With no mode flag, olm-sign signs stdin's exact bytes and prints the
/// token, KEY:SIGNATURE. -X METHOD URI builds Ollama's challenge itself (ts
/// set in the query, the query encoded as Ollama's Go code does) and signs
/// it; --lines signs every stdin line; --registry signs a registry token
/// request; --api-key sends an API key instead of signing. The key comes
/// from -k FILE, --key-env NAME, or the store (--backend: ~/.ollama/id_ed25519
/// by default, or the OS keyring).
///
/// Stdin is read up to 1 MiB (with --lines, up to 1 MiB per line); more is
/// refused with exit status 2.
#[derive(Parser, Debug)]
#[command(name = TOOL, version, after_help = "\
Examples:
  printf 'POST,/api/me?ts=1700000000' | olm-sign -k key  # exact bytes; printf adds no newline
  olm-sign -X POST /api/me --format curl | curl -K -      # sign a request, send it
  olm-sign --lines < challenges.txt > tokens.txt          # one token per line
  olm-sign --api-key -X GET /api/tags --format curl | curl -K -   # the same with an API key")]
struct Cli {
    #[command(flatten)]
    key: KeyArgs,
    /// Build the API challenge for METHOD and URI (a path, or an absolute URL).
    #[arg(short = 'X', long = "request", num_args = 2, value_names = ["METHOD", "URI"], conflicts_with_all = ["lines", "registry"])]
    request: Option<Vec<String>>,
    /// The ts to sign, in Unix seconds (default: now); with -X or --registry.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(..=i64::MAX as u64))]
    ts: Option<u64>,
    /// What to print [default: token; header with --api-key].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Base URL for curl and json output (default: OLLAMA_CLOUD_BASE_URL, else https://ollama.com).
    #[arg(long, value_name = "URL")]
    base: Option<String>,
    /// Send `Authorization: Bearer <token>` in header, curl and json output.
    #[arg(long)]
    bearer: bool,
    /// Sign every stdin line (without its newline); print one token per line.
    #[arg(long, conflicts_with = "registry")]
    lines: bool,
    /// Build a registry token request from a WWW-Authenticate header value.
    #[arg(long, value_name = "CHALLENGE")]
    registry: Option<String>,
    /// Send an API key instead of signing: `Authorization: Bearer <key>`,
    /// the key from OLLAMA_API_KEY, else the store (--backend).
    #[arg(long, conflicts_with_all = ["lines", "registry", "bearer", "ts", "key", "key_env"])]
    api_key: bool,
}

impl Cli {
    /// The output format: as given, else `token` (`header` with --api-key).
    fn format(&self) -> Format {
        self.format.unwrap_or(if self.api_key {
            Format::Header
        } else {
            Format::Token
        })
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// The token alone.
    Token,
    /// `Authorization: <token>`.
    Header,
    /// A config for `curl -K -`.
    Curl,
    /// One JSON object.
    Json,
}

fn main() -> ExitCode {
    let args: Cli = cli::parse(TOOL);
    cli::run(TOOL, || run(args))
}

fn run(args: Cli) -> anyhow::Result<()> {
    if args.ts.is_some() && args.request.is_none() && args.registry.is_none() {
        return Err(
            CliError::bad_input("--ts goes with -X METHOD URI or --registry")
                .hint("stdin is signed as it is: put the ts in the bytes you pipe in")
                .into(),
        );
    }
    if args.api_key {
        return api_key_header(&args);
    }
    if args.lines {
        if !matches!(args.format(), Format::Token | Format::Header) {
            return Err(CliError::bad_input("--lines prints tokens or headers only")
                .hint("use --format token or --format header")
                .into());
        }
        cli::refuse_terminal_stdin(
            "the challenges, one per line,",
            "olm-sign --lines < challenges.txt",
        )?;
        let key = cli::load_key(&args.key)?;
        return sign_lines(&key, args.format() == Format::Header, args.bearer);
    }
    if let Some((method, uri)) = args.method_and_uri()? {
        return sign_request(&args, &method, uri);
    }
    if let Some(header) = &args.registry {
        return sign_registry(&args, header);
    }
    sign_stdin(&args)
}

impl Cli {
    /// `-X METHOD URI`, checked for the order a hurried user may swap.
    fn method_and_uri(&self) -> anyhow::Result<Option<(String, &str)>> {
        let Some(request) = &self.request else {
            return Ok(None);
        };
        let [method, uri] = request.as_slice() else {
            return Err(CliError::bad_input("-X takes METHOD and URI").into());
        };
        if method.starts_with('/') || method.contains("://") {
            return Err(CliError::bad_input(format!(
                "-X takes METHOD then URI; {:?} looks like the URI",
                shorten(method)
            ))
            .hint(format!(
                "-X {} {}",
                uri.to_ascii_uppercase(),
                shorten(method)
            ))
            .into());
        }
        Ok(Some((method.to_ascii_uppercase(), uri)))
    }

    /// Where a request goes: its base (from an absolute URI, else `--base`,
    /// `OLLAMA_CLOUD_BASE_URL`, ollama.com) and its request-URI. The base is
    /// only worked out when the output needs a URL.
    fn target(&self, uri: &str, need_base: bool) -> anyhow::Result<(Option<BaseUrl>, String)> {
        if uri.contains("://") {
            if self.base.is_some() {
                return Err(CliError::bad_input(
                    "give the base either in the URL or with --base, not both",
                )
                .into());
            }
            let (base, uri) = split_absolute(uri).map_err(|e| CliError::about("the URL", e))?;
            return Ok((Some(base), uri));
        }
        // A --base given is checked even when unused: it is the user's word.
        let base = if need_base || self.base.is_some() {
            Some(cli::base_url(self.base.as_deref())?)
        } else {
            None
        };
        Ok((base, uri.to_string()))
    }

    /// Whether the output holds a URL.
    fn needs_url(&self) -> bool {
        matches!(self.format(), Format::Curl | Format::Json)
    }
}

fn shorten(s: &str) -> String {
    s.chars().take(60).collect()
}

/// `--api-key`: the Bearer header for an API key, in header, curl or json
/// form. Nothing is signed and no `ts` is added: API keys are sent as is.
fn api_key_header(args: &Cli) -> anyhow::Result<()> {
    let format = args.format();
    if format == Format::Token {
        return Err(
            CliError::bad_input("--api-key prints a header, not a token")
                .hint("use --format header, curl or json")
                .into(),
        );
    }
    let request = match args.method_and_uri()? {
        Some((method, uri)) => {
            let (base, uri) = args.target(uri, true)?;
            // Checked as a signed request would be; the URI is sent unchanged.
            ApiRequest::new(&method, &uri, 0)
                .map_err(|e| CliError::about(format!("{method} {}", shorten(&uri)), e))?;
            let url = base.map(|b| b.join(&uri)).unwrap_or_default();
            Some((method, uri, url))
        }
        None if format == Format::Header => None,
        None => {
            return Err(CliError::bad_input(format!(
                "--format {} needs a request: -X METHOD URI",
                if format == Format::Curl {
                    "curl"
                } else {
                    "json"
                }
            ))
            .hint("e.g. olm-sign --api-key -X GET /api/tags --format curl | curl -K -")
            .into())
        }
    };
    let key = load_api_key(args)?;
    cli::refuse_secret_to_terminal(
        "an API key",
        "use it in a pipeline: `curl -H \"$(olm-sign --api-key)\" URL`, or `olm-sign --api-key -X GET /api/tags --format curl | curl -K -`",
    )?;
    let auth = key.authorization();
    let header = Zeroizing::new(format!("Authorization: {}", auth.as_str()));
    let out = match (format, request) {
        (Format::Curl, Some((method, _, url))) => cli::curl_config(&url, &method, &header),
        (Format::Json, Some((method, uri, url))) => Zeroizing::new(
            json!({
                "method": method,
                "request_uri": uri,
                "url": url,
                "authorization": auth.as_str(),
            })
            .to_string(),
        ),
        _ => header,
    };
    cli::print_line(&out)?;
    Ok(())
}

/// The API key from OLLAMA_API_KEY, else from the store.
fn load_api_key(args: &Cli) -> anyhow::Result<ApiKey> {
    if let Some(value) = std::env::var_os("OLLAMA_API_KEY").filter(|v| !v.is_empty()) {
        let text = Zeroizing::new(
            value
                .to_str()
                .map(str::to_string)
                .ok_or_else(|| CliError::bad_input("OLLAMA_API_KEY is not UTF-8"))?,
        );
        return ApiKey::new(&text).map_err(|e| CliError::about("OLLAMA_API_KEY", e).into());
    }
    let store = cli::open_store(args.key.backend.as_deref())?;
    match store.get_api_key().map_err(cli::store_error)? {
        Some(k) => Ok(k),
        None => Err(CliError::bad_input(format!(
            "no API key: OLLAMA_API_KEY is not set and {} holds none",
            store.api_key_location()
        ))
        .hint(
            "put one in the store with `olm-store put --api-key < FILE`, or export OLLAMA_API_KEY",
        )
        .into()),
    }
}

fn authorization(token: &Token, bearer: bool) -> String {
    if bearer {
        format!("Bearer {token}")
    } else {
        token.to_string()
    }
}

fn sign_stdin(args: &Cli) -> anyhow::Result<()> {
    if args.format() == Format::Curl {
        return Err(CliError::bad_input("--format curl needs a request to send")
            .hint("use -X METHOD URI, e.g. olm-sign -X POST /api/me --format curl")
            .into());
    }
    cli::refuse_terminal_stdin(
        "the bytes to sign",
        "printf 'POST,/api/me?ts=1700000000' | olm-sign, or build the challenge with -X METHOD URI",
    )?;
    let key = cli::load_key(&args.key)?;
    let input = cli::read_stdin(INPUT_LIMIT)?;
    if input.last() == Some(&b'\n') {
        cli::note(
            TOOL,
            "the input ends with a newline, which is signed too (use printf, not echo)",
        );
    }
    let token = Token::sign(&key, &input);
    let auth = authorization(&token, args.bearer);
    let out = match args.format() {
        Format::Header => format!("Authorization: {auth}"),
        Format::Json => json!({
            "challenge": String::from_utf8_lossy(&input),
            "token": token.to_string(),
            "authorization": auth,
        })
        .to_string(),
        Format::Token | Format::Curl => token.to_string(),
    };
    cli::print_line(&out)?;
    Ok(())
}

fn sign_request(args: &Cli, method: &str, uri: &str) -> anyhow::Result<()> {
    let (base, uri) = args.target(uri, args.needs_url())?;
    let ts = args.ts.unwrap_or_else(unix_now);
    let request = ApiRequest::new(method, &uri, ts)
        .map_err(|e| CliError::about(format!("{method} {}", shorten(&uri)), e))?;
    let key = cli::load_key(&args.key)?;
    let challenge = request.challenge();
    let token = Token::sign(&key, challenge.as_bytes());
    let url = base
        .map(|b| b.join(&request.request_uri()))
        .unwrap_or_default();
    let details = json!({
        "request_uri": request.request_uri(),
        "ts": request.ts(),
        "challenge": String::from_utf8_lossy(challenge.as_bytes()),
    });
    print_signed(args, &token, request.method(), &url, details)
}

fn sign_registry(args: &Cli, header: &str) -> anyhow::Result<()> {
    let challenge =
        RegistryChallenge::parse(header).map_err(|e| CliError::about("--registry", e))?;
    let key = cli::load_key(&args.key)?;
    let mut nonce = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let ts = args.ts.unwrap_or_else(unix_now);
    let url = challenge
        .url(ts, &nonce)
        .map_err(|e| CliError::about("--registry", e))?;
    let signed: Challenge = RegistryChallenge::challenge_for(&url);
    let token = Token::sign(&key, signed.as_bytes());
    if args.format() == Format::Token || args.format() == Format::Header {
        cli::print_line(&url)?;
    }
    let details = json!({
        "ts": ts,
        "challenge": String::from_utf8_lossy(signed.as_bytes()),
    });
    print_signed(args, &token, "GET", &url, details)
}

/// Prints a signed request in the chosen format; `details` are the json
/// fields beyond method, url, token and authorization.
fn print_signed(
    args: &Cli,
    token: &Token,
    method: &str,
    url: &str,
    details: serde_json::Value,
) -> anyhow::Result<()> {
    let auth = authorization(token, args.bearer);
    let out = match args.format() {
        Format::Token => token.to_string(),
        Format::Header => format!("Authorization: {auth}"),
        Format::Curl => {
            cli::curl_config(url, method, &format!("Authorization: {auth}")).to_string()
        }
        Format::Json => {
            let mut obj = json!({
                "method": method,
                "url": url,
                "token": token.to_string(),
                "authorization": auth,
            });
            if let (Some(obj), serde_json::Value::Object(more)) = (obj.as_object_mut(), details) {
                obj.extend(more);
            }
            obj.to_string()
        }
    };
    cli::print_line(&out)?;
    Ok(())
}

/// Signs each stdin line; one token (or header) per output line.
fn sign_lines(key: &PrivateKey, header: bool, bearer: bool) -> anyhow::Result<()> {
    let signer = Signer::new(key);
    let stdin = io::stdin().lock();
    let mut reader = io::BufReader::with_capacity(64 * 1024, stdin);
    let mut out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    let mut line = Vec::with_capacity(256);
    let mut buf = Vec::with_capacity(256);
    let mut number = 0u64;
    loop {
        number += 1;
        match lines::read_line(&mut reader, &mut line, INPUT_LIMIT)? {
            Line::End => break,
            Line::TooLong => {
                return Err(CliError::bad_input(format!(
                    "stdin line {number}: the line is longer than the limit of {INPUT_LIMIT} bytes"
                ))
                .into())
            }
            Line::Read => {}
        }
        buf.clear();
        if header {
            buf.extend_from_slice(b"Authorization: ");
        }
        if bearer {
            buf.extend_from_slice(b"Bearer ");
        }
        signer.sign_into(&line, &mut buf);
        buf.push(b'\n');
        out.write_all(&buf)?;
    }
    out.flush()?;
    Ok(())
}
