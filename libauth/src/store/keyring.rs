//! The keyring backend: the operating system's secret store through the
//! `keyring` crate (macOS Keychain, Windows Credential Manager, the Secret
//! Service on Linux and the BSDs).
//!
//! Two entries, service [`SERVICE`]: user [`KEY_USER`] holds the device
//! key as OpenSSH text, user [`API_KEY_USER`] the API key. Nothing here
//! runs until the backend is selected; on Linux a D-Bus connection is
//! opened per operation, not at start-up.

use ::keyring::{Entry, Error as KeyringError};
use zeroize::{Zeroize, Zeroizing};

use super::{without_location, ApiKey, Backend, Problem, PutOutcome, Removal, Status};
use crate::error::{Error, Result};
use crate::key::{PrivateKey, PublicKey};

/// The keyring service name of olm's entries.
pub const SERVICE: &str = "olm";
/// The keyring user of the device key entry.
pub const KEY_USER: &str = "device-key";
/// The keyring user of the API key entry.
pub const API_KEY_USER: &str = "api-key";

/// Whether this build has an OS keyring for this platform.
const SUPPORTED: bool = cfg!(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "macos",
    target_os = "windows",
));

pub(crate) struct KeyringStore;

/// Turns the keyring crate's error into ours; never includes secret bytes
/// (`BadEncoding`'s bytes are dropped, zeroized).
fn convert(e: KeyringError) -> Error {
    match e {
        KeyringError::PlatformFailure(inner) => {
            let detail = inner.to_string();
            if is_unavailable(&*inner) {
                Error::NoSecretService {
                    detail: unavailable_detail(&detail),
                }
            } else {
                Error::Keyring(detail)
            }
        }
        KeyringError::NoStorageAccess(inner) => Error::Keyring(format!(
            "access refused (is the keyring locked?): {inner}"
        )),
        KeyringError::BadEncoding(mut bytes) => {
            bytes.zeroize();
            Error::Keyring("the stored item is not UTF-8 text".into())
        }
        KeyringError::Ambiguous(items) => Error::Keyring(format!(
            "{} items match service {SERVICE}; remove the extras (e.g. `secret-tool clear service {SERVICE}`)",
            items.len()
        )),
        other => Error::Keyring(other.to_string()),
    }
}

/// Whether a platform failure means "there is no secret store to talk to".
///
/// Decided by type along the error's source chain: the Secret Service
/// client's `Unavailable` (no session bus address, no bus socket), D-Bus's
/// `ServiceUnknown` (nobody owns `org.freedesktop.secrets`), an I/O error
/// saying a socket is missing or refuses connections. Only when none of
/// these types is found is the message looked at ([`unavailable_text`]).
fn is_unavailable(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if typed_unavailable(e) {
            return true;
        }
        next = e.source();
    }
    unavailable_text(&err.to_string())
}

fn typed_unavailable(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return matches!(
            io.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        );
    }
    secret_service_unavailable(e)
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
fn secret_service_unavailable(e: &(dyn std::error::Error + 'static)) -> bool {
    use secret_service::Error as Ss;
    use zbus::fdo::Error as Fdo;
    fn zbus_unavailable(z: &zbus::Error) -> bool {
        match z {
            zbus::Error::Address(_) | zbus::Error::InterfaceNotFound => true,
            zbus::Error::MethodError(name, _, _) => {
                name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown"
            }
            zbus::Error::FDO(f) => matches!(**f, Fdo::ServiceUnknown(_)),
            _ => false,
        }
    }
    if let Some(ss) = e.downcast_ref::<Ss>() {
        return match ss {
            Ss::Unavailable => true,
            Ss::ZbusFdo(f) => matches!(f, Fdo::ServiceUnknown(_)),
            Ss::Zbus(z) => zbus_unavailable(z),
            _ => false,
        };
    }
    if let Some(z) = e.downcast_ref::<zbus::Error>() {
        return zbus_unavailable(z);
    }
    matches!(e.downcast_ref::<Fdo>(), Some(Fdo::ServiceUnknown(_)))
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd")))]
fn secret_service_unavailable(_: &(dyn std::error::Error + 'static)) -> bool {
    false
}

/// The last resort of [`is_unavailable`]: a platform error whose type olm
/// cannot see (another platform's or another client's), recognised by the
/// standard D-Bus error names and messages it carries.
fn unavailable_text(detail: &str) -> bool {
    [
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "DBUS_SESSION_BUS_ADDRESS",
        "was not provided by any .service files",
    ]
    .iter()
    .any(|needle| detail.contains(needle))
}

fn unavailable_detail(detail: &str) -> String {
    if cfg!(target_os = "linux") {
        format!(
            "no Secret Service answers on the D-Bus session bus ({detail}); on Linux the keyring backend needs one, e.g. gnome-keyring-daemon or KeePassXC"
        )
    } else {
        detail.to_string()
    }
}

impl KeyringStore {
    pub(crate) fn new() -> Result<Self> {
        if !SUPPORTED {
            return Err(Error::NoSecretService {
                detail: "olm has no OS keyring support on this platform".into(),
            });
        }
        Ok(KeyringStore)
    }

    pub(crate) fn location(&self, user: &str) -> String {
        format!("keyring service {SERVICE}, user {user}")
    }

    fn entry(&self, user: &str) -> Result<Entry> {
        Entry::new(SERVICE, user).map_err(convert)
    }

    /// The entry's text; `None` when there is none.
    fn read(&self, user: &str) -> Result<Option<Zeroizing<String>>> {
        match self.entry(user)?.get_password() {
            Ok(text) => Ok(Some(Zeroizing::new(text))),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(self.at(user, convert(e))),
        }
    }

    fn write(&self, user: &str, text: &str) -> Result<()> {
        self.entry(user)?
            .set_password(text)
            .map_err(|e| self.at(user, convert(e)))
    }

    fn at(&self, user: &str, error: Error) -> Error {
        match error {
            // Say plainly that the store is missing, without a location in front.
            e @ Error::NoSecretService { .. } => e,
            e => Error::At {
                location: self.location(user),
                error: Box::new(e),
            },
        }
    }

    pub(crate) fn delete(&self, user: &str) -> Result<bool> {
        match self.entry(user)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(KeyringError::NoEntry) => Ok(false),
            Err(e) => Err(self.at(user, convert(e))),
        }
    }

    pub(crate) fn get_key(&self) -> Result<Option<PrivateKey>> {
        let Some(text) = self.read(KEY_USER)? else {
            return Ok(None);
        };
        PrivateKey::from_openssh(text.as_bytes())
            .map(Some)
            .map_err(|e| self.at(KEY_USER, e))
    }

    pub(crate) fn put_key(&self, key: &PrivateKey, force: bool) -> Result<PutOutcome> {
        if let Some(text) = self.read(KEY_USER)? {
            match PrivateKey::from_openssh(text.as_bytes()) {
                Ok(old) if old.same_key(key) => return Ok(PutOutcome::Unchanged),
                Ok(old) if !force => {
                    return Err(Error::Occupied {
                        location: self.location(KEY_USER),
                        what: format!("another key ({})", old.public_key().fingerprint()),
                    })
                }
                Err(e) if !force => {
                    return Err(Error::Occupied {
                        location: self.location(KEY_USER),
                        what: format!("an entry olm cannot read ({e})"),
                    })
                }
                _ => {}
            }
        }
        self.write(KEY_USER, &key.to_openssh()?)?;
        Ok(PutOutcome::Stored)
    }

    pub(crate) fn remove_key_if(&self, key: &PublicKey) -> Result<Removal> {
        let Some(text) = self.read(KEY_USER)? else {
            return Ok(Removal::NotHeld);
        };
        match PrivateKey::from_openssh(text.as_bytes()) {
            Ok(stored) if stored.public_key() == *key => {
                self.delete(KEY_USER)?;
                Ok(Removal::Removed)
            }
            _ => Ok(Removal::NotHeld),
        }
    }

    pub(crate) fn get_api_key(&self) -> Result<Option<ApiKey>> {
        let Some(text) = self.read(API_KEY_USER)? else {
            return Ok(None);
        };
        ApiKey::new(&text)
            .map(Some)
            .map_err(|e| self.at(API_KEY_USER, e))
    }

    pub(crate) fn put_api_key(&self, key: &ApiKey, force: bool) -> Result<PutOutcome> {
        if let Some(text) = self.read(API_KEY_USER)? {
            match ApiKey::new(&text) {
                Ok(old) if old.same(key) => return Ok(PutOutcome::Unchanged),
                _ if !force => {
                    return Err(Error::Occupied {
                        location: self.location(API_KEY_USER),
                        what: "another API key".into(),
                    })
                }
                _ => {}
            }
        }
        self.write(API_KEY_USER, key.expose())?;
        Ok(PutOutcome::Stored)
    }

    pub(crate) fn status(&self) -> Result<Status> {
        let mut status = Status {
            backend: Backend::Keyring,
            location: self.location(KEY_USER),
            key_present: false,
            public_key: None,
            usable: false,
            comment: String::new(),
            public_file: None,
            api_key_location: self.location(API_KEY_USER),
            api_key_present: false,
            problems: Vec::new(),
            notes: Vec::new(),
        };
        let fix = "olm-store --backend keyring put --force < KEYFILE, or delete it: olm-store --backend keyring delete";
        match self.read(KEY_USER) {
            Ok(None) => {}
            Err(e @ Error::NoSecretService { .. }) => return Err(e),
            Err(e) => {
                status.key_present = true;
                status.problems.push(Problem {
                    location: status.location.clone(),
                    what: without_location(e),
                    fix: None,
                });
            }
            Ok(Some(text)) => {
                status.key_present = true;
                match PrivateKey::from_openssh(text.as_bytes()) {
                    Ok(k) => {
                        status.public_key = Some(k.public_key());
                        status.usable = true;
                        status.comment = k.comment().to_string();
                    }
                    Err(e) => status.problems.push(Problem {
                        location: status.location.clone(),
                        what: format!("the stored key is damaged or unusable: {e}"),
                        fix: Some(fix.into()),
                    }),
                }
            }
        }
        match self.read(API_KEY_USER) {
            Ok(None) => {}
            Err(e) => {
                status.api_key_present = true;
                status.problems.push(Problem {
                    location: status.api_key_location.clone(),
                    what: without_location(e),
                    fix: None,
                });
            }
            Ok(Some(text)) => {
                status.api_key_present = true;
                if let Err(e) = ApiKey::new(&text) {
                    status.problems.push(Problem {
                        location: status.api_key_location.clone(),
                        what: e.to_string(),
                        fix: Some(
                            "olm-store --backend keyring put --api-key --force < FILE".into(),
                        ),
                    });
                }
            }
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_is_recognised_by_type() {
        use std::io;
        assert!(is_unavailable(&io::Error::from(
            io::ErrorKind::ConnectionRefused
        )));
        assert!(is_unavailable(&io::Error::from(io::ErrorKind::NotFound)));
        assert!(!is_unavailable(&io::Error::other("disk on fire")));
        #[cfg(target_os = "linux")]
        {
            assert!(is_unavailable(&secret_service::Error::Unavailable));
            assert!(is_unavailable(&secret_service::Error::ZbusFdo(
                zbus::fdo::Error::ServiceUnknown("org.freedesktop.secrets".into())
            )));
            assert!(!is_unavailable(&secret_service::Error::Locked));
            assert!(matches!(
                convert(KeyringError::PlatformFailure(Box::new(
                    secret_service::Error::Unavailable
                ))),
                Error::NoSecretService { .. }
            ));
        }
        // Another client's error, known only by its D-Bus name.
        assert!(is_unavailable(&io::Error::other(
            "org.freedesktop.DBus.Error.ServiceUnknown: nobody owns it"
        )));
    }
}
