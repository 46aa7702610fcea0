//! Base URLs of ollama.com or a stand-in, under Ollama's rules (§5).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::error::{Error, Result};

/// The default base URL.
pub const DEFAULT_BASE: &str = "https://ollama.com";

/// The environment variable that replaces [`DEFAULT_BASE`].
pub const BASE_ENV: &str = "OLLAMA_CLOUD_BASE_URL";

/// A checked base URL: scheme, host and optional port; `https` unless the
/// host is loopback. Displayed without a trailing slash.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BaseUrl {
    scheme: String,
    /// Host as written, with brackets for IPv6.
    host: String,
    port: Option<u16>,
}

impl BaseUrl {
    /// Checks `url` against the rules: scheme and host (and port) only; no
    /// user info, path, query or fragment; `http` only for loopback hosts.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| Error::BaseUrl {
            url: crate::key::truncate(url, 80),
            why: why.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("it needs a scheme, e.g. https://ollama.com"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(bad(
                "the scheme must be https (or http for a loopback host)",
            ));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err(bad("user info is not allowed"));
        }
        if rest.contains('/') {
            return Err(bad("a path is not allowed; give scheme and host only"));
        }
        if rest.contains('?') || rest.contains('#') {
            return Err(bad("a query or fragment is not allowed"));
        }
        let (host, port) =
            split_host_port(rest).ok_or_else(|| bad("the host or port is malformed"))?;
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad("the port is malformed"))?),
            None => None,
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        if host.contains(':') && !host.starts_with('[') {
            return Err(bad(
                "an IPv6 address needs brackets, e.g. http://[::1]:8080",
            ));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
        {
            return Err(bad("the host holds characters a host name cannot"));
        }
        let base = BaseUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        };
        if base.scheme == "http" && !base.is_loopback() {
            return Err(bad("http is allowed only for loopback hosts; use https"));
        }
        Ok(base)
    }

    /// `--base` if given, else `OLLAMA_CLOUD_BASE_URL`, else ollama.com.
    pub fn from_flag_or_env(flag: Option<&str>) -> Result<Self> {
        match flag {
            Some(f) => Self::parse(f),
            None => match std::env::var(BASE_ENV) {
                Ok(v) if !v.is_empty() => Self::parse(&v),
                _ => Self::parse(DEFAULT_BASE),
            },
        }
    }

    /// Whether the host is `localhost` or a loopback address
    /// ([`is_loopback_host`]).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port: explicit, else the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
            .unwrap_or(if self.scheme == "https" { 443 } else { 80 })
    }

    /// `base + path_and_query`.
    pub fn join(&self, request_uri: &str) -> String {
        format!("{self}{request_uri}")
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// Splits `host[:port]`: `[v6]` and `[v6]:port` (the brackets kept, the
/// address checked), `host` and `host:port`; a bare IPv6 address (several
/// colons, no brackets) comes back whole, without a port. The port is
/// returned as written, for the caller to check. `None` when malformed:
/// unbalanced brackets, a bracketed non-IPv6 address, or text after `]`
/// that is not `:port`. Shared by [`BaseUrl`] and
/// [`crate::local::LocalHost`].
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        host[1..end].parse::<Ipv6Addr>().ok()?;
        return match rest.strip_prefix(':') {
            Some(p) => Some((host, Some(p))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    if s.contains(['[', ']']) {
        return None;
    }
    if s.matches(':').count() > 1 {
        return Some((s, None));
    }
    match s.split_once(':') {
        Some((h, p)) => Some((h, Some(p))),
        None => Some((s, None)),
    }
}

/// Whether `host` (IPv6 in brackets or not) is this machine: exactly
/// `localhost` (any case) or a loopback address (127.0.0.0/8, `::1`).
/// A `*.localhost` name is not: it is resolved like any other name and may
/// point anywhere.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// Splits an absolute URL into its base and request-URI (`/` if none).
pub fn split_absolute(url: &str) -> Result<(BaseUrl, String)> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| Error::BaseUrl {
        url: crate::key::truncate(url, 80),
        why: "not an absolute URL".into(),
    })?;
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    let base = BaseUrl::parse(&format!("{scheme}://{}", &rest[..cut]))?;
    let mut uri = rest[cut..].to_string();
    if !uri.starts_with('/') {
        uri.insert(0, '/');
    }
    Ok((base, uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_rules() {
        assert_eq!(
            BaseUrl::parse("https://ollama.com")
                .expect("ok")
                .to_string(),
            "https://ollama.com"
        );
        assert_eq!(
            BaseUrl::parse("https://ollama.com/")
                .expect("ok")
                .to_string(),
            "https://ollama.com"
        );
        assert_eq!(
            BaseUrl::parse("http://127.0.0.1:8080").expect("ok").port(),
            8080
        );
        assert!(BaseUrl::parse("http://localhost").is_ok());
        assert!(BaseUrl::parse("http://[::1]:9").is_ok());
        assert!(BaseUrl::parse("http://LocalHost:1").is_ok());
        assert!(BaseUrl::parse("http://127.8.9.10").is_ok());
    }

    #[test]
    fn only_this_machine_is_loopback() {
        // A *.localhost name is resolved like any other and may be anywhere.
        for bad in [
            "http://evil.localhost",
            "http://evil.localhost:8080",
            "http://localhost.evil.example",
            "http://[::ffff:10.0.0.1]",
            "http://[box]",
            "http://::1",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(is_loopback_host("LOCALHOST"));
        assert!(is_loopback_host("[::1]"));
        assert!(is_loopback_host("::1"));
        assert!(is_loopback_host("127.0.0.2"));
        assert!(!is_loopback_host("a.localhost"));
        assert!(!is_loopback_host("[127.0.0.1"));
    }

    #[test]
    fn refuses_the_rest() {
        for bad in [
            "ollama.com",
            "ftp://ollama.com",
            "http://ollama.com",
            "http://10.0.0.1",
            "https://u:p@ollama.com",
            "https://ollama.com/api",
            "https://ollama.com?x=1",
            "https://ollama.com#f",
            "https://ollama.com:99999",
            "https://",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn splits_absolute_urls() {
        let (b, u) = split_absolute("https://ollama.com/api/me?x=1").expect("ok");
        assert_eq!(b.to_string(), "https://ollama.com");
        assert_eq!(u, "/api/me?x=1");
        let (_, u) = split_absolute("http://localhost:1").expect("ok");
        assert_eq!(u, "/");
    }
}
