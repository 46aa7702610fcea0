//! Connect URLs: what a browser opens to attach a key to an account (§4).

use crate::base::BaseUrl;
use crate::challenge::{percent_encode_into, query_escape_into};
use crate::key::PublicKey;

/// Which client's URL to build.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ConnectForm {
    /// The server's form: name percent-encoded (RFC 3986 unreserved kept).
    #[default]
    Server,
    /// The desktop app's form: name query-escaped, `&launch=true` added.
    App,
}

/// Builds `<base>/connect?name=…&key=…` for `key`.
pub fn connect_url(base: &BaseUrl, name: &str, key: &PublicKey, form: ConnectForm) -> String {
    let mut url = format!("{base}/connect?name=");
    match form {
        ConnectForm::Server => percent_encode_into(name, &mut url),
        ConnectForm::App => query_escape_into(name, &mut url),
    }
    url.push_str("&key=");
    url.push_str(&key.encoded());
    if form == ConnectForm::App {
        url.push_str("&launch=true");
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_per_form() {
        let key = crate::key::PrivateKey::from_seed(&[3; 32], "")
            .expect("seed")
            .public_key();
        let base = BaseUrl::parse("https://ollama.com").expect("base");
        let s = connect_url(&base, "a b&c", &key, ConnectForm::Server);
        assert!(
            s.starts_with("https://ollama.com/connect?name=a%20b%26c&key="),
            "{s}"
        );
        let a = connect_url(&base, "a b&c", &key, ConnectForm::App);
        assert!(
            a.starts_with("https://ollama.com/connect?name=a+b%26c&key="),
            "{a}"
        );
        assert!(a.ends_with("&launch=true"));
    }
}
