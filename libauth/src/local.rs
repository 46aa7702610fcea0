//! The local Ollama server's address, from `OLLAMA_HOST` as Ollama's
//! `envconfig.Host()` reads it (PROTOCOL.md §7), and whether Ollama's client
//! signs requests to it (`OLLAMA_AUTH`, or the host `ollama.com`).
//!
//! What olm does as Ollama does: quotes and spaces around the value are
//! removed; the scheme defaults to `http` and the port to 11434 (80 for
//! `http://`, 443 for `https://`); a port that is not a number in
//! 0..=65535 is replaced by that default (see [`LocalHost::ignored_port`]);
//! the bare value `ollama.com` means `https://ollama.com:443`; a path is
//! kept, escaped and cleaned as Go's `url.JoinPath` does (a `?` or `#` in
//! it is part of the path); `0.0.0.0` and `::` (listen on every address)
//! mean this machine, as `envconfig.ConnectableHost()` has it.
//!
//! Deliberate differences, each a value Ollama's client would fail on or
//! misuse: a scheme other than http or https, user info (`user@host`), and
//! a host that is not a name or an IP address (spaces, brackets around a
//! name) are refused with an error instead of a request that cannot work.

use std::fmt;
use std::net::IpAddr;

use crate::base::{is_loopback_host, split_host_port};
use crate::error::{Error, Result};

/// The environment variable naming the local server.
pub const HOST_ENV: &str = "OLLAMA_HOST";

/// The environment variable that makes Ollama's client sign its requests
/// to the local server.
pub const AUTH_ENV: &str = "OLLAMA_AUTH";

/// The default local server.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:11434";

/// Ollama's port, used when `OLLAMA_HOST` names a host without scheme and
/// port.
pub const DEFAULT_PORT: u16 = 11434;

/// A variable's value as Ollama's `envconfig.Var` reads it: surrounding
/// white space, then surrounding `"` and `'`, removed.
pub fn env_value(raw: &str) -> &str {
    raw.trim().trim_matches(['"', '\''])
}

/// A boolean variable as Ollama's `envconfig.Bool` reads it: unset or empty
/// is false; Go's `strconv.ParseBool` words decide; anything else is true.
pub fn env_bool(raw: Option<&str>) -> bool {
    match raw.map(env_value) {
        None | Some("") => false,
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
        Some(_) => true,
    }
}

/// `OLLAMA_AUTH` as Ollama reads it ([`env_bool`]).
pub fn use_auth() -> bool {
    env_bool(std::env::var(AUTH_ENV).ok().as_deref())
}

/// Where the local Ollama server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalHost {
    scheme: &'static str,
    /// Host, IPv6 in brackets.
    host: String,
    port: u16,
    /// The path after the port, kept as Ollama keeps it (for a server behind
    /// a reverse proxy): empty, or `/…` escaped and cleaned, without a
    /// trailing slash.
    path: String,
    /// A port that was not a number in 0..=65535 and was replaced by the
    /// default, as Ollama does.
    ignored_port: Option<String>,
}

impl LocalHost {
    /// Reads `OLLAMA_HOST`, else the default.
    pub fn from_env() -> Result<Self> {
        Self::parse(&std::env::var(HOST_ENV).unwrap_or_default())
    }

    /// Parses a value as Ollama's `envconfig.Host()` does (see the module
    /// documentation); an empty value is the default server.
    ///
    /// Errors do not name `OLLAMA_HOST`: the caller says where the value
    /// came from.
    pub fn parse(value: &str) -> Result<Self> {
        let bad = |why: &str| Error::BaseUrl {
            url: crate::key::truncate(value, 80),
            why: why.to_string(),
        };
        let value = env_value(value).trim();
        let (scheme, rest, default_port) = match value.split_once("://") {
            None if value == "ollama.com" => ("https", "ollama.com:443", 443),
            None => ("http", value, DEFAULT_PORT),
            // Go compares the scheme as written: `HTTP://` keeps 11434.
            Some(("http", rest)) => ("http", rest, 80),
            Some(("https", rest)) => ("https", rest, 443),
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => ("http", rest, DEFAULT_PORT),
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => ("https", rest, DEFAULT_PORT),
            Some(_) => return Err(bad("the scheme must be http or https")),
        };
        let (hostport, path) = match rest.split_once('/') {
            Some((hp, path)) => (hp, clean_path(path)),
            None => (rest, String::new()),
        };
        if hostport.contains('@') {
            return Err(bad("user info is not allowed"));
        }
        let (host, port) =
            split_host_port(hostport).ok_or_else(|| bad("the host or port is malformed"))?;
        let (port, ignored_port) = match port {
            None => (default_port, None),
            Some(p) => match p.parse::<i64>() {
                Ok(n) if (0..=65535).contains(&n) => (n as u16, None),
                _ => (default_port, Some(crate::key::truncate(p, 16))),
            },
        };
        let host = host.to_ascii_lowercase();
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
        {
            return Err(bad("the host holds characters a host name cannot"));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let host = match bare.parse::<IpAddr>() {
            // Listening on every address means this machine.
            Ok(IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1".to_string(),
            Ok(IpAddr::V6(ip)) if ip.is_unspecified() => "[::1]".to_string(),
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            Ok(IpAddr::V4(ip)) => ip.to_string(),
            Err(_) if host.contains(':') => {
                return Err(bad("the host holds several colons but is no IPv6 address"))
            }
            Err(_) if host.is_empty() => "127.0.0.1".to_string(),
            Err(_) => host,
        };
        Ok(LocalHost {
            scheme,
            host,
            port,
            path,
            ignored_port,
        })
    }

    /// Whether the host is `localhost` or a loopback address (a
    /// `*.localhost` name is not).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }

    /// The host (IPv6 in brackets, lowercase).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port: given, else the scheme's default (11434 without a scheme).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A port given but not usable (not a number in 0..=65535): Ollama
    /// warns and uses the default port instead, and so does olm. The caller
    /// should warn too.
    pub fn ignored_port(&self) -> Option<&str> {
        self.ignored_port.as_deref()
    }

    /// Whether Ollama's client signs its requests to this server: with
    /// `OLLAMA_AUTH` on, or when the host is `ollama.com`.
    pub fn signs_requests(&self, use_auth: bool) -> bool {
        use_auth || self.host == "ollama.com"
    }
}

/// A path from `OLLAMA_HOST` as Go's `url.JoinPath` sends it: escaped as a
/// URL path (only letters, digits, `-._~$&+,/:;=@` are kept; `?`, `#`, `%`
/// and the rest become `%XX`), then cleaned (`//`, `.` and `..` resolved,
/// no trailing slash). Empty or `/…`.
fn clean_path(raw: &str) -> String {
    let mut escaped = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b) {
            escaped.push(char::from(b));
        } else {
            escaped.push_str(&format!("%{b:02X}"));
        }
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in escaped.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    segments.iter().map(|s| format!("/{s}")).collect()
}

impl fmt::Display for LocalHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}:{}{}",
            self.scheme, self.host, self.port, self.path
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(v: &str) -> String {
        LocalHost::parse(v).expect(v).to_string()
    }

    #[test]
    fn reads_ollama_host_as_ollama_does() {
        assert_eq!(shown(""), "http://127.0.0.1:11434");
        assert_eq!(shown(DEFAULT_HOST), "http://127.0.0.1:11434");
        assert_eq!(shown("127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(shown("localhost"), "http://localhost:11434");
        assert_eq!(shown("0.0.0.0"), "http://127.0.0.1:11434");
        assert_eq!(shown("0.0.0.0:9"), "http://127.0.0.1:9");
        assert_eq!(shown(":7"), "http://127.0.0.1:7");
        assert_eq!(shown("http://box"), "http://box:80");
        assert_eq!(shown("https://box/x"), "https://box:443/x");
        assert_eq!(
            shown("http://127.0.0.1:1/ollama/"),
            "http://127.0.0.1:1/ollama"
        );
        assert_eq!(shown("http://box/"), "http://box:80");
        assert_eq!(shown("[::1]:5"), "http://[::1]:5");
        assert_eq!(shown("::1"), "http://[::1]:11434");
        assert_eq!(shown("[::]"), "http://[::1]:11434");
        assert_eq!(shown("[::]:4"), "http://[::1]:4");
        assert!(LocalHost::parse("0.0.0.0").expect("ok").is_loopback());
        assert!(!LocalHost::parse("box").expect("ok").is_loopback());
    }

    #[test]
    fn trims_quotes_and_spaces_as_envconfig_var() {
        // Ollama's envconfig tests: extra space, quotes, both.
        assert_eq!(shown(" 1.2.3.4 "), "http://1.2.3.4:11434");
        assert_eq!(shown("\"1.2.3.4\""), "http://1.2.3.4:11434");
        assert_eq!(shown(" \" 1.2.3.4 \" "), "http://1.2.3.4:11434");
        assert_eq!(shown("'1.2.3.4'"), "http://1.2.3.4:11434");
        assert_eq!(shown("'http://box:5/p'"), "http://box:5/p");
    }

    #[test]
    fn a_bad_port_falls_back_to_the_default() {
        for (value, want, ignored) in [
            (":66000", "http://127.0.0.1:11434", "66000"),
            (":-1", "http://127.0.0.1:11434", "-1"),
            ("box:x", "http://box:11434", "x"),
            ("box:", "http://box:11434", ""),
            ("https://box:99999", "https://box:443", "99999"),
            ("http://box:x/p", "http://box:80/p", "x"),
        ] {
            let h = LocalHost::parse(value).expect(value);
            assert_eq!(h.to_string(), want, "{value}");
            assert_eq!(h.ignored_port(), Some(ignored), "{value}");
        }
        assert_eq!(LocalHost::parse(":0").expect("0").ignored_port(), None);
        assert_eq!(shown(":0"), "http://127.0.0.1:0");
    }

    #[test]
    fn bare_ollama_com_is_https() {
        let h = LocalHost::parse("ollama.com").expect("ok");
        assert_eq!(h.to_string(), "https://ollama.com:443");
        assert!(h.signs_requests(false));
        assert_eq!(shown("http://ollama.com"), "http://ollama.com:80");
        assert_eq!(shown("ollama.com:8080"), "http://ollama.com:8080");
        assert!(!LocalHost::parse("box").expect("ok").signs_requests(false));
        assert!(LocalHost::parse("box").expect("ok").signs_requests(true));
    }

    #[test]
    fn schemes_are_compared_as_go_compares_them() {
        assert_eq!(shown("HTTP://box"), "http://box:11434");
        assert_eq!(shown("HTTPS://box:1"), "https://box:1");
    }

    #[test]
    fn paths_are_escaped_and_cleaned_as_join_path_does() {
        assert_eq!(shown("box:2/a/b?q=1"), "http://box:2/a/b%3Fq=1");
        assert_eq!(shown("box:2/a b#f"), "http://box:2/a%20b%23f");
        assert_eq!(shown("box/a%20b"), "http://box:11434/a%2520b");
        assert_eq!(shown("box//a/./b/../c//"), "http://box:11434/a/c");
        assert_eq!(shown("box/../../x"), "http://box:11434/x");
        assert_eq!(shown("box/$&+,:;=@-_.~"), "http://box:11434/$&+,:;=@-_.~");
    }

    #[test]
    fn loopback_is_exactly_this_machine() {
        for (v, want) in [
            ("localhost", true),
            ("LOCALHOST:1", true),
            ("127.1.2.3", true),
            ("[::1]", true),
            ("evil.localhost", false),
            ("10.0.0.1", false),
        ] {
            assert_eq!(LocalHost::parse(v).expect(v).is_loopback(), want, "{v}");
        }
    }

    #[test]
    fn env_values_read_as_ollama_reads_them() {
        assert_eq!(env_value("  \"'x'\" "), "x");
        assert!(!env_bool(None));
        for off in ["", " ", "0", "'0'", "\"false\"", " F "] {
            assert!(!env_bool(Some(off)), "{off:?} is on");
        }
        for on in ["1", "true", "yes", "'on'", "2"] {
            assert!(env_bool(Some(on)), "{on:?} is off");
        }
    }

    #[test]
    fn refuses_nonsense() {
        for bad in ["ftp://x", "u@box:1", "a b", "[box]:1", "a:b:c", "[::1"] {
            assert!(LocalHost::parse(bad).is_err(), "{bad} accepted");
        }
        // The caller names the variable; the message does not repeat it.
        let err = LocalHost::parse("garbage value").unwrap_err().to_string();
        assert_eq!(
            err,
            "bad base URL \"garbage value\": the host holds characters a host name cannot"
        );
    }
}
