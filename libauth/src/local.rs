//! The local Ollama server's address, from `OLLAMA_HOST` as Ollama reads it
//! (PROTOCOL.md §7): `host:port` without a scheme is allowed, the default is
//! `http://127.0.0.1:11434`.

use std::fmt;
use std::net::IpAddr;

use crate::error::{Error, Result};

/// The environment variable naming the local server.
pub const HOST_ENV: &str = "OLLAMA_HOST";

/// The default local server.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:11434";

/// Ollama's port, used when `OLLAMA_HOST` names a host without scheme and
/// port.
pub const DEFAULT_PORT: u16 = 11434;

/// Where the local Ollama server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalHost {
    scheme: &'static str,
    /// Host, IPv6 in brackets.
    host: String,
    port: u16,
    /// The path after the port, kept as Ollama keeps it (for a server behind
    /// a reverse proxy): empty, or `/…` without a trailing slash.
    path: String,
}

impl LocalHost {
    /// Reads `OLLAMA_HOST`, else the default.
    pub fn from_env() -> Result<Self> {
        match std::env::var(HOST_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v),
            _ => Self::parse(DEFAULT_HOST),
        }
    }

    /// Parses a value as Ollama does: a scheme is optional (`http` when
    /// missing); the port defaults to 11434 without a scheme, else to the
    /// scheme's port; a path is kept (requests go to `<host><path>/api/…`,
    /// as Ollama's `envconfig.Host()` has it); `0.0.0.0` and `::` (listen on
    /// every address) mean this machine, so they become loopback.
    ///
    /// Errors do not name `OLLAMA_HOST`: the caller says where the value
    /// came from.
    pub fn parse(value: &str) -> Result<Self> {
        let bad = |why: &str| Error::BaseUrl {
            url: crate::key::truncate(value, 80),
            why: why.to_string(),
        };
        let value = value.trim();
        let (scheme, rest, default_port) = match value.split_once("://") {
            None => ("http", value, DEFAULT_PORT),
            Some((s, rest)) => match s.to_ascii_lowercase().as_str() {
                "http" => ("http", rest, 80),
                "https" => ("https", rest, 443),
                _ => return Err(bad("the scheme must be http or https")),
            },
        };
        let hostport = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let after = &rest[hostport.len()..];
        let path = after
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .trim_end_matches('/');
        if !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:@".contains(&b))
        {
            return Err(bad("the path holds characters a URL path cannot"));
        }
        if hostport.contains('@') {
            return Err(bad("user info is not allowed"));
        }
        let (host, port) = split(hostport).ok_or_else(|| bad("the host or port is malformed"))?;
        let host = if host.is_empty() {
            "127.0.0.1".to_string()
        } else {
            host.to_ascii_lowercase()
        };
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
        {
            return Err(bad("the host holds characters a host name cannot"));
        }
        let host = match host.as_str() {
            "0.0.0.0" => "127.0.0.1".to_string(),
            "[::]" | "::" => "[::1]".to_string(),
            _ if host.contains(':') && !host.starts_with('[') => format!("[{host}]"),
            _ => host,
        };
        Ok(LocalHost {
            scheme,
            host,
            port: port.unwrap_or(default_port),
            path: path.to_string(),
        })
    }

    /// Whether the host is `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        if self.host == "localhost" || self.host.ends_with(".localhost") {
            return true;
        }
        self.host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
    }
}

fn split(s: &str) -> Option<(&str, Option<u16>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    // A bare IPv6 address has several colons and no port.
    if s.matches(':').count() > 1 {
        return s.parse::<std::net::Ipv6Addr>().ok().map(|_| (s, None));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
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
        assert_eq!(shown("box:2/a/b?q=1"), "http://box:2/a/b");
        assert_eq!(shown("http://box/"), "http://box:80");
        assert_eq!(shown("[::1]:5"), "http://[::1]:5");
        assert_eq!(shown("::1"), "http://[::1]:11434");
        assert_eq!(shown("[::]"), "http://[::1]:11434");
        assert!(LocalHost::parse("0.0.0.0").expect("ok").is_loopback());
        assert!(!LocalHost::parse("box").expect("ok").is_loopback());
    }

    #[test]
    fn refuses_nonsense() {
        for bad in ["ftp://x", "u@box:1", "box:99999", "box:x", "a b", "box/a b"] {
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
