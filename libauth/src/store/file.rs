//! The file backend: `~/.ollama/id_ed25519` and `.pub`, as Ollama keeps them.
//!
//! Safety rules, each tested below:
//! - every write is atomic (temporary file in the same folder, fsync,
//!   rename, fsync of the folder: [`fsutil::write_atomic`]); key and API
//!   key files `0600`, `.pub` `0644`;
//! - replacing the key: a `.pub` that does not name the new key is removed
//!   first, then the key renamed into place, then the new `.pub` written, so
//!   a crash at any point leaves the old key with its own (or no) `.pub`, or
//!   the new key with its own (or no) `.pub`, never a key beside another
//!   key's `.pub`;
//! - files are opened without blocking (a FIFO in the folder is refused, not
//!   waited on) and must be regular files; a symbolic link to a key file is
//!   followed only when the link and its target have the same owner (a
//!   dotfiles manager's link), never to another user's file (root looking
//!   at a service's folder must not read `/etc/shadow` through it); the lock
//!   file is never followed through a link; writes replace a link, never
//!   its target (rename), and temporary files are made with `O_EXCL`;
//! - writers take an exclusive lock on [`LOCK_FILE`], so two `put`s never
//!   interleave and the `.pub` always matches the key once they are done;
//!   `status` takes a shared lock, so it never sees a write half done;
//! - a different (or damaged) key is replaced only with `force`; the same
//!   key again changes nothing;
//! - the folder is created `0700` when olm creates it; an existing one is
//!   left as it is.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{without_location, ApiKey, Backend, Problem, PutOutcome, Removal, Status};
use crate::cli::quote as quoted;
use crate::error::{Error, Result};
use crate::fsutil::{self, Replace, KEY_FILE_LIMIT};
use crate::key::{PrivateKey, PublicKey};

/// The private key's file name, as Ollama names it.
pub const KEY_FILE: &str = "id_ed25519";
/// Where the file backend keeps an API key (one line, mode `0600`).
pub const API_KEY_FILE: &str = "olm-api-key";
/// The lock file that serialises writers.
pub const LOCK_FILE: &str = ".olm-store.lock";

/// Writes a file atomically: [`fsutil::write_atomic`], or a test's stand-in.
type Writer = dyn Fn(&Path, &[u8], u32, Replace) -> Result<()>;

/// What to do about an empty or damaged key file.
const NEW_KEY_FIX: &str =
    "restore it from a backup, or make a new key: olm-keygen | olm-store put --force (then connect it again)";

/// Temporary files older than this, left in the folder by a writer that was
/// killed before its rename, are removed by the next writer. Younger ones
/// may belong to a writer outside the lock (`olm-keygen -o`) and are kept.
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// A file's bytes and permission bits.
struct Raw {
    bytes: Zeroizing<Vec<u8>>,
    mode: u32,
    uid: u32,
}

/// What the `.pub` file says about a key.
enum PubState {
    Missing,
    Matches,
    Other(Box<PublicKey>),
    Damaged(String),
}

/// An exclusive or shared lock on [`LOCK_FILE`], released on drop.
struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(&self.0);
    }
}

pub(crate) struct FileStore {
    dir: PathBuf,
}

fn at(path: &Path, error: Error) -> Error {
    Error::At {
        location: quoted(path),
        error: Box::new(error),
    }
}

fn is_loose(mode: u32) -> bool {
    mode & 0o077 != 0
}

/// A refusal to use a store file that is not what olm keeps there.
fn refused(message: String) -> Error {
    Error::Io {
        kind: io::ErrorKind::InvalidInput,
        message,
    }
}

/// Whether an open with `O_NOFOLLOW` failed because the path is a link
/// (`ELOOP` on Linux, `EMLINK` on FreeBSD).
fn is_link_refusal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::EMLINK))
}

/// Refuses an opened handle that is not a regular file (a FIFO, device,
/// socket or folder).
fn require_regular(meta: &fs::Metadata) -> Result<()> {
    if meta.is_file() {
        Ok(())
    } else {
        Err(refused(
            "is not a regular file (a FIFO, device, socket or folder); olm keeps only plain files here".into(),
        ))
    }
}

/// Opens a store file for reading: without blocking (a FIFO is refused,
/// not waited on), a regular file only, checked on the opened handle. A
/// symbolic link is followed only when the link and the file it leads to
/// have the same owner; a link to another user's file is refused. `None`
/// when there is no such file.
fn open_regular(path: &Path) -> Result<Option<File>> {
    let open = |extra: libc::c_int| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | extra)
            .open(path)
    };
    let file = match open(libc::O_NOFOLLOW) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if is_link_refusal(&e) => {
            // A symbolic link: whoever made it owns it. Follow it only to a
            // file of the same owner; checked on the handle, so a link
            // swapped in between cannot lead elsewhere unnoticed.
            let link = fs::symlink_metadata(path).map_err(Error::from)?;
            let file = open(0).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    refused("is a symbolic link to a missing file".into())
                } else {
                    e.into()
                }
            })?;
            let target = file.metadata()?;
            if target.uid() != link.uid() {
                return Err(refused(format!(
                    "is a symbolic link (owned by uid {}) to a file of another owner (uid {}); olm does not follow it",
                    link.uid(),
                    target.uid()
                )));
            }
            file
        }
        Err(e) => return Err(e.into()),
    };
    require_regular(&file.metadata()?)?;
    Ok(Some(file))
}

impl FileStore {
    pub(crate) fn new(dir: PathBuf) -> Self {
        FileStore { dir }
    }

    pub(crate) fn key_path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    pub(crate) fn pub_path(&self) -> PathBuf {
        self.dir.join(format!("{KEY_FILE}.pub"))
    }

    pub(crate) fn api_key_path(&self) -> PathBuf {
        self.dir.join(API_KEY_FILE)
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    /// Creates the folder `0700` when it is missing (not its parents: a
    /// missing HOME is an error, not something to make).
    fn ensure_dir(&self) -> Result<()> {
        match DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => {
                // The umask may have narrowed the mode; set it exactly.
                fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| at(&self.dir, e.into()))?;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && self.dir.is_dir() => {
                self.check_dir_link()
            }
            Err(e) => Err(at(&self.dir, e.into())),
        }
    }

    /// A folder that is a symbolic link is used only when the link and the
    /// folder it leads to have the same owner (a dotfiles manager's link),
    /// never another user's folder (`/etc`). A missing folder is fine.
    fn check_dir_link(&self) -> Result<()> {
        let link = match fs::symlink_metadata(&self.dir) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(at(&self.dir, e.into())),
        };
        if !link.file_type().is_symlink() {
            return Ok(());
        }
        let target = fs::metadata(&self.dir).map_err(|e| at(&self.dir, e.into()))?;
        if target.uid() != link.uid() {
            return Err(at(
                &self.dir,
                refused(format!(
                    "is a symbolic link (owned by uid {}) to a folder of another owner (uid {}); olm does not follow it",
                    link.uid(),
                    target.uid()
                )),
            ));
        }
        Ok(())
    }

    /// Takes the writers' lock, creating the lock file (and the folder) as needed.
    fn lock_exclusive(&self) -> Result<Lock> {
        self.ensure_dir()?;
        let path = self.lock_path();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // Never through a link (it would create or touch its target),
            // never waiting on a FIFO.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| at(&path, Self::lock_open_error(e)))?;
        file.metadata()
            .map_err(Error::from)
            .and_then(|m| require_regular(&m))
            .map_err(|e| at(&path, e))?;
        fs4::FileExt::lock(&file).map_err(|e| at(&path, e.into()))?;
        Ok(Lock(file))
    }

    fn lock_open_error(e: io::Error) -> Error {
        if is_link_refusal(&e) {
            refused("is a symbolic link; olm never follows one for its lock file".into())
        } else {
            e.into()
        }
    }

    /// Removes temporary files (`.olm-XXXXXX`, see [`fsutil::write_atomic`])
    /// that killed writers left behind; best effort, call with the lock held.
    fn sweep_orphans(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = std::time::SystemTime::now();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let is_temp = name.len() == ".olm-".len() + 6
                && name.starts_with(".olm-")
                && name[5..].bytes().all(|b| b.is_ascii_alphanumeric());
            if !is_temp {
                continue;
            }
            let old = entry
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .and_then(|m| m.modified().ok())
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= ORPHAN_AGE);
            if old {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// A shared lock when the lock file exists (readers never create it, so
    /// `status` works on a folder it cannot write); `Ok(None)` when there is
    /// none or it cannot be opened; an error when it is a link or not a
    /// regular file (never followed, never waited on).
    fn lock_shared(&self) -> Result<Option<Lock>> {
        let path = self.lock_path();
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if is_link_refusal(&e) => return Err(at(&path, Self::lock_open_error(e))),
            Err(_) => return Ok(None),
        };
        let meta = file.metadata().map_err(|e| at(&path, e.into()))?;
        require_regular(&meta).map_err(|e| at(&path, e))?;
        Ok(fs4::FileExt::lock_shared(&file).ok().map(|()| Lock(file)))
    }

    /// Reads a file with its mode and owner; `None` when it does not exist.
    /// See [`open_regular`] for what is refused.
    fn inspect(path: &Path) -> Result<Option<Raw>> {
        let Some(file) = open_regular(path).map_err(|e| at(path, e))? else {
            return Ok(None);
        };
        let meta = file.metadata().map_err(|e| at(path, e.into()))?;
        let bytes = fsutil::read_limited(file, KEY_FILE_LIMIT).map_err(|e| at(path, e))?;
        Ok(Some(Raw {
            bytes,
            mode: meta.permissions().mode() & 0o777,
            uid: meta.uid(),
        }))
    }

    /// Reads a secret file, refusing loose permissions as ssh does.
    fn read_secret(path: &Path) -> Result<Option<Raw>> {
        let raw = Self::inspect(path)?;
        if let Some(r) = &raw {
            if is_loose(r.mode) {
                return Err(at(path, Error::LoosePermissions { mode: r.mode }));
            }
        }
        Ok(raw)
    }

    fn pub_state(&self, key: &PublicKey) -> PubState {
        let path = self.pub_path();
        let raw = match Self::inspect(&path) {
            Ok(Some(r)) => r,
            Ok(None) => return PubState::Missing,
            Err(e) => return PubState::Damaged(e.to_string()),
        };
        let text = String::from_utf8_lossy(&raw.bytes);
        if crate::authorized_keys::holds_pem(&text) {
            // Never a word of it in a message: it may be the private key.
            return PubState::Damaged(
                "it holds a private key (or another PEM block), not a public key line".into(),
            );
        }
        let line = text.lines().next().unwrap_or_default();
        if line.trim().is_empty() {
            return PubState::Damaged("the file is empty".into());
        }
        match PublicKey::from_line(line) {
            Ok(k) if k == *key => PubState::Matches,
            Ok(k) => PubState::Other(Box::new(k)),
            Err(Error::PublicKeyFormat(why)) => {
                PubState::Damaged(crate::authorized_keys::without_content(why))
            }
            Err(e) => PubState::Damaged(e.to_string()),
        }
    }

    fn write_pub(&self, key: &PrivateKey, write: &Writer) -> Result<()> {
        let path = self.pub_path();
        write(
            &path,
            key.public_file_text().as_bytes(),
            0o644,
            Replace::Allow,
        )
        .map_err(|e| Error::At {
            location: format!(
                "{} (the private key is stored; its .pub is not)",
                quoted(&path)
            ),
            error: Box::new(e),
        })
    }

    pub(crate) fn get_key(&self) -> Result<Option<PrivateKey>> {
        self.check_dir_link()?;
        let path = self.key_path();
        let Some(raw) = Self::read_secret(&path)? else {
            return Ok(None);
        };
        PrivateKey::from_openssh(&raw.bytes)
            .map(Some)
            .map_err(|e| at(&path, e))
    }

    pub(crate) fn put_key(&self, key: &PrivateKey, force: bool) -> Result<PutOutcome> {
        self.put_key_with(key, force, &fsutil::write_atomic)
    }

    /// Removes a `.pub` that does not name `key`, then syncs the folder, so
    /// that `key` can be renamed into place with no stale `.pub` beside it.
    /// Call with the lock held.
    fn remove_stale_pub(&self, key: &PublicKey) -> Result<()> {
        if matches!(self.pub_state(key), PubState::Matches | PubState::Missing) {
            return Ok(());
        }
        let path = self.pub_path();
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(at(&path, e.into())),
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| at(&self.dir, e.into()))
    }

    /// [`Self::put_key`] with the writer of the key and `.pub` files given,
    /// so tests can make either fail.
    fn put_key_with(&self, key: &PrivateKey, force: bool, write: &Writer) -> Result<PutOutcome> {
        let _lock = self.lock_exclusive()?;
        self.sweep_orphans();
        let path = self.key_path();
        let (replace, old) = match Self::inspect(&path)? {
            None => (Replace::Never, None),
            Some(raw) => match PrivateKey::from_openssh(&raw.bytes) {
                Ok(old) if old.same_key(key) => return self.repair(&old, &raw),
                Ok(old) if !force => {
                    return Err(Error::Occupied {
                        location: quoted(&path),
                        what: format!("another key ({})", old.public_key().fingerprint()),
                    })
                }
                Err(e) if !force => {
                    return Err(Error::Occupied {
                        location: quoted(&path),
                        what: format!("a key file olm cannot read ({e})"),
                    })
                }
                Ok(old) => (Replace::Allow, Some(old)),
                Err(_) => (Replace::Allow, None),
            },
        };
        // The old .pub goes first: a crash from here on leaves the old key
        // without a .pub, or the new key without one, never a mismatch.
        let text = key.to_openssh()?;
        self.remove_stale_pub(&key.public_key())?;
        if let Err(e) = write(&path, text.as_bytes(), 0o600, replace) {
            // The old key is still in place (a full or read-only disk): give
            // it its .pub back, best effort (the space it held is free).
            if let Some(old) = &old {
                let _ = self.write_pub(old, write);
            }
            return Err(match e {
                // Someone outside olm's lock (Ollama?) made the file just now.
                Error::Exists => Error::Occupied {
                    location: quoted(&path),
                    what: "a key written just now by another program".into(),
                },
                other => at(&path, other),
            });
        }
        self.write_pub(key, write)?;
        Ok(PutOutcome::Stored)
    }

    /// The same key is stored: fix loose permissions and a `.pub` that does
    /// not match, keeping the stored bytes (and comment) as they are.
    fn repair(&self, stored: &PrivateKey, raw: &Raw) -> Result<PutOutcome> {
        let mut outcome = PutOutcome::Unchanged;
        if is_loose(raw.mode) {
            let path = self.key_path();
            fsutil::write_atomic(&path, &raw.bytes, 0o600, Replace::Allow)
                .map_err(|e| at(&path, e))?;
            outcome = PutOutcome::Stored;
        }
        if !matches!(self.pub_state(&stored.public_key()), PubState::Matches) {
            self.write_pub(stored, &fsutil::write_atomic)?;
            outcome = PutOutcome::Stored;
        }
        Ok(outcome)
    }

    pub(crate) fn delete_key(&self) -> Result<bool> {
        if !self.dir.is_dir() {
            return Ok(false);
        }
        let _lock = self.lock_exclusive()?;
        self.remove_key_files()
    }

    /// Removes the key, then its `.pub`; call with the lock held.
    fn remove_key_files(&self) -> Result<bool> {
        let mut removed = false;
        for path in [self.key_path(), self.pub_path()] {
            match fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(at(&path, e.into())),
            }
        }
        if removed {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| at(&self.dir, e.into()))?;
        }
        Ok(removed)
    }

    pub(crate) fn remove_key_if(&self, key: &PublicKey) -> Result<Removal> {
        if !self.key_path().exists() {
            return Ok(Removal::NotHeld);
        }
        let _lock = self.lock_exclusive()?;
        let Some(raw) = Self::inspect(&self.key_path())? else {
            return Ok(Removal::NotHeld);
        };
        match PrivateKey::from_openssh(&raw.bytes) {
            Ok(stored) if stored.public_key() == *key => {
                self.remove_key_files()?;
                Ok(Removal::Removed)
            }
            _ => Ok(Removal::NotHeld),
        }
    }

    pub(crate) fn get_api_key(&self) -> Result<Option<ApiKey>> {
        self.check_dir_link()?;
        let path = self.api_key_path();
        let Some(raw) = Self::read_secret(&path)? else {
            return Ok(None);
        };
        parse_api_key(&raw.bytes)
            .map(Some)
            .map_err(|e| at(&path, e))
    }

    pub(crate) fn put_api_key(&self, key: &ApiKey, force: bool) -> Result<PutOutcome> {
        let _lock = self.lock_exclusive()?;
        self.sweep_orphans();
        let path = self.api_key_path();
        let replace = match Self::inspect(&path)? {
            None => Replace::Never,
            Some(raw) => match parse_api_key(&raw.bytes) {
                Ok(old) if old.same(key) && !is_loose(raw.mode) => {
                    return Ok(PutOutcome::Unchanged)
                }
                Ok(old) if old.same(key) => Replace::Allow,
                _ if !force => {
                    return Err(Error::Occupied {
                        location: quoted(&path),
                        what: "another API key".into(),
                    })
                }
                _ => Replace::Allow,
            },
        };
        let text = Zeroizing::new(format!("{}\n", key.expose()));
        fsutil::write_atomic(&path, text.as_bytes(), 0o600, replace).map_err(|e| at(&path, e))?;
        Ok(PutOutcome::Stored)
    }

    pub(crate) fn delete_api_key(&self) -> Result<bool> {
        if !self.dir.is_dir() {
            return Ok(false);
        }
        let _lock = self.lock_exclusive()?;
        let path = self.api_key_path();
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(at(&path, e.into())),
        }
    }

    pub(crate) fn status(&self) -> Result<Status> {
        self.check_dir_link()?;
        let key_path = self.key_path();
        let pub_path = self.pub_path();
        let mut status = Status {
            backend: Backend::File,
            location: key_path.display().to_string(),
            key_present: false,
            public_key: None,
            usable: false,
            comment: String::new(),
            public_file: Some(pub_path.display().to_string()),
            api_key_location: self.api_key_path().display().to_string(),
            api_key_present: false,
            problems: Vec::new(),
            notes: Vec::new(),
        };
        let problem = |path: &Path, what: String, fix: Option<String>| Problem {
            location: path.display().to_string(),
            what,
            fix,
        };
        let _lock = match self.lock_shared() {
            Ok(lock) => lock,
            Err(e) => {
                let lock_path = self.lock_path();
                status.problems.push(problem(
                    &lock_path,
                    without_location(e),
                    Some(format!("rm {}", quoted(&lock_path))),
                ));
                None
            }
        };
        match Self::inspect(&key_path) {
            Ok(None) => {}
            Err(e) => {
                status.key_present = true;
                // A link to another user's file, a FIFO, a folder: say how
                // to put a plain file there.
                let fix = matches!(
                    &e,
                    Error::At { error, .. } if matches!(**error, Error::Io { kind: io::ErrorKind::InvalidInput, .. })
                )
                .then(|| format!("put a plain key file of yours there: remove {} and restore the key from a backup, or make a new one (olm-keygen | olm-store put)", quoted(&key_path)));
                status
                    .problems
                    .push(problem(&key_path, without_location(e), fix));
            }
            Ok(Some(raw)) => {
                status.key_present = true;
                match PrivateKey::from_openssh(&raw.bytes) {
                    Err(Error::KeyEmpty) => status.problems.push(problem(
                        &key_path,
                        "the file is empty (Ollama says `ssh: no key found`)".into(),
                        Some(NEW_KEY_FIX.into()),
                    )),
                    Err(e) => status.problems.push(problem(
                        &key_path,
                        format!("the key is damaged or unusable: {e}"),
                        Some(NEW_KEY_FIX.into()),
                    )),
                    Ok(key) => {
                        let public = key.public_key();
                        status.public_key = Some(public);
                        status.comment = key.comment().to_string();
                        if is_loose(raw.mode) {
                            // The very words `olm-store get` says, and its hint.
                            status.problems.push(problem(
                                &key_path,
                                format!(
                                    "{}; olm and ssh refuse to use it",
                                    Error::LoosePermissions { mode: raw.mode }
                                ),
                                Some(format!("chmod 600 {}", quoted(&key_path))),
                            ));
                        } else {
                            status.usable = true;
                        }
                        if let Ok(dir) = fs::metadata(&self.dir) {
                            if dir.uid() != raw.uid {
                                status.notes.push(format!(
                                    "{} is owned by uid {}, its folder by uid {}: a program running as the folder's owner (Ollama) cannot read it",
                                    key_path.display(),
                                    raw.uid,
                                    dir.uid()
                                ));
                            }
                        }
                        match self.pub_state(&public) {
                            PubState::Matches => {}
                            PubState::Missing => status.notes.push(format!(
                                "{} is missing (Ollama does not need it; `olm-store get | olm-store put` writes it)",
                                pub_path.display()
                            )),
                            PubState::Other(other) => status.problems.push(problem(
                                &pub_path,
                                format!(
                                    "names another key ({}), not the private key's ({})",
                                    other.fingerprint(),
                                    public.fingerprint()
                                ),
                                Some("olm-store get | olm-store put (rewrites the .pub from the key)".into()),
                            )),
                            PubState::Damaged(why) => status.problems.push(problem(
                                &pub_path,
                                format!("not a public key file: {why}"),
                                Some("olm-store get | olm-store put (rewrites the .pub from the key)".into()),
                            )),
                        }
                    }
                }
            }
        }
        let api_path = self.api_key_path();
        match Self::inspect(&api_path) {
            Ok(None) => {}
            Err(e) => {
                status.api_key_present = true;
                status
                    .problems
                    .push(problem(&api_path, without_location(e), None));
            }
            Ok(Some(raw)) => {
                status.api_key_present = true;
                if let Err(e) = parse_api_key(&raw.bytes) {
                    status.problems.push(problem(
                        &api_path,
                        e.to_string(),
                        Some("olm-store put --api-key --force < FILE".into()),
                    ));
                } else if is_loose(raw.mode) {
                    status.problems.push(problem(
                        &api_path,
                        format!("permissions {:04o} are too open for an API key", raw.mode),
                        Some(format!("chmod 600 {}", quoted(&api_path))),
                    ));
                }
            }
        }
        Ok(status)
    }
}

fn parse_api_key(bytes: &[u8]) -> Result<ApiKey> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::ApiKeyFormat("the file is not UTF-8 text".into()))?;
    ApiKey::new(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;
    use std::sync::Arc;

    const K1: &str = include_str!("../../../tests/vectors/keys/k1");
    const K2: &str = include_str!("../../../tests/vectors/keys/k2");

    fn key(text: &str) -> PrivateKey {
        PrivateKey::from_openssh(text.as_bytes()).expect("vector key")
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    fn store() -> (tempfile::TempDir, FileStore) {
        let tmp = tempfile::tempdir().expect("tmp");
        let s = FileStore::new(tmp.path().join(".ollama"));
        (tmp, s)
    }

    #[test]
    fn put_writes_ollama_files_with_modes() {
        let (_tmp, s) = store();
        let k = key(K1);
        assert_eq!(s.put_key(&k, false), Ok(PutOutcome::Stored));
        assert_eq!(mode(&s.dir), 0o700);
        assert_eq!(mode(&s.key_path()), 0o600);
        assert_eq!(mode(&s.pub_path()), 0o644);
        assert_eq!(fs::read_to_string(s.key_path()).expect("key"), K1);
        let pub_text = fs::read_to_string(s.pub_path()).expect("pub");
        assert_eq!(pub_text, k.public_file_text());
        assert!(s.get_key().expect("get").expect("some").same_key(&k));
        // Same key again: nothing changes, not even the inode.
        let ino = std::os::unix::fs::MetadataExt::ino(&fs::metadata(s.key_path()).unwrap());
        assert_eq!(s.put_key(&k, false), Ok(PutOutcome::Unchanged));
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(s.key_path()).unwrap()),
            ino
        );
        // Only the key, the .pub and the lock file are left: no temporaries.
        let mut names: Vec<String> = fs::read_dir(&s.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [LOCK_FILE, KEY_FILE, "id_ed25519.pub"]);
    }

    #[test]
    fn existing_folder_mode_is_left_alone() {
        let (_tmp, s) = store();
        DirBuilder::new().mode(0o755).create(&s.dir).unwrap();
        fs::set_permissions(&s.dir, fs::Permissions::from_mode(0o755)).unwrap();
        s.put_key(&key(K1), false).unwrap();
        assert_eq!(mode(&s.dir), 0o755);
    }

    #[test]
    fn different_key_needs_force() {
        let (_tmp, s) = store();
        s.put_key(&key(K1), false).unwrap();
        let err = s.put_key(&key(K2), false).unwrap_err();
        assert!(matches!(err, Error::Occupied { .. }), "{err}");
        assert!(err.to_string().contains("SHA256:"), "{err}");
        assert_eq!(fs::read_to_string(s.key_path()).unwrap(), K1);
        assert_eq!(s.put_key(&key(K2), true), Ok(PutOutcome::Stored));
        assert_eq!(fs::read_to_string(s.key_path()).unwrap(), K2);
        assert_eq!(
            fs::read_to_string(s.pub_path()).unwrap(),
            key(K2).public_file_text()
        );
    }

    #[test]
    fn damaged_or_empty_key_needs_force_too() {
        let (_tmp, s) = store();
        s.ensure_dir().unwrap();
        for bad in ["", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n"] {
            fs::write(s.key_path(), bad).unwrap();
            let err = s.put_key(&key(K1), false).unwrap_err();
            assert!(matches!(err, Error::Occupied { .. }), "{err}");
            assert_eq!(fs::read_to_string(s.key_path()).unwrap(), bad);
        }
        assert_eq!(s.put_key(&key(K1), true), Ok(PutOutcome::Stored));
    }

    #[test]
    fn put_repairs_same_key_with_bad_pub_or_mode() {
        let (_tmp, s) = store();
        s.put_key(&key(K1), false).unwrap();
        fs::write(s.pub_path(), key(K2).public_file_text()).unwrap();
        fs::set_permissions(s.key_path(), fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(s.put_key(&key(K1), false), Ok(PutOutcome::Stored));
        assert_eq!(mode(&s.key_path()), 0o600);
        assert_eq!(
            fs::read_to_string(s.pub_path()).unwrap(),
            key(K1).public_file_text()
        );
        assert!(s.status().unwrap().is_healthy());
    }

    #[test]
    fn failed_write_leaves_the_old_key_byte_for_byte() {
        let (_tmp, s) = store();
        s.put_key(&key(K1), false).unwrap();
        let before = fs::read(s.key_path()).unwrap();
        let before_pub = fs::read(s.pub_path()).unwrap();
        // A writer that dies half way: a partial temporary file, no rename.
        let crash = |path: &Path, bytes: &[u8], _mode: u32, _r: Replace| -> Result<()> {
            let tmp = path.with_file_name(".olm-crash");
            fs::write(&tmp, &bytes[..bytes.len() / 2])?;
            fs::remove_file(&tmp)?;
            Err(Error::Io {
                kind: io::ErrorKind::StorageFull,
                message: "No space left on device".into(),
            })
        };
        let err = s.put_key_with(&key(K2), true, &crash).unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert_eq!(fs::read(s.key_path()).unwrap(), before);
        // The old key's .pub was removed before the key's rename: the old
        // key is left with no .pub, never with another key's.
        assert!(!s.pub_path().exists(), "{before_pub:?}");
        let st = s.status().unwrap();
        assert!(st.is_healthy(), "{st:?}");
        assert_eq!(st.public_key, Some(key(K1).public_key()));
    }

    /// A writer that fails for the `.pub` only: the crash point between the
    /// key's rename and the `.pub`'s.
    fn pub_fails(path: &Path, bytes: &[u8], mode: u32, r: Replace) -> Result<()> {
        if path.extension().is_some_and(|e| e == "pub") {
            return Err(Error::Io {
                kind: io::ErrorKind::StorageFull,
                message: "No space left on device".into(),
            });
        }
        fsutil::write_atomic(path, bytes, mode, r)
    }

    /// Every crash point of a replacement leaves a key with its own `.pub`
    /// or none: never the new key beside the old key's `.pub`.
    #[test]
    fn replacing_never_leaves_the_old_pub_beside_the_new_key() {
        let (_tmp, s) = store();
        s.put_key(&key(K1), false).unwrap();
        let err = s.put_key_with(&key(K2), true, &pub_fails).unwrap_err();
        assert!(err.to_string().contains(".pub is not"), "{err}");
        assert_eq!(fs::read_to_string(s.key_path()).unwrap(), K2);
        assert!(
            matches!(s.pub_state(&key(K2).public_key()), PubState::Missing),
            "the old key's .pub must be gone"
        );
        let st = s.status().unwrap();
        assert!(st.is_healthy(), "{st:?}");
        // Putting the key again writes its .pub.
        assert_eq!(s.put_key(&key(K2), false), Ok(PutOutcome::Stored));
        assert_eq!(
            fs::read_to_string(s.pub_path()).unwrap(),
            key(K2).public_file_text()
        );
        // A first key beside a stray .pub of another key: the same.
        fs::remove_file(s.key_path()).unwrap();
        let err = s.put_key_with(&key(K1), false, &pub_fails).unwrap_err();
        assert!(err.to_string().contains(".pub is not"), "{err}");
        assert!(!s.pub_path().exists());
    }

    #[test]
    fn a_folder_at_the_pub_is_refused_before_the_key_is_written() {
        let (_tmp, s) = store();
        s.ensure_dir().unwrap();
        fs::create_dir(s.pub_path()).unwrap();
        let err = s.put_key(&key(K1), false).unwrap_err();
        assert!(err.to_string().contains("id_ed25519.pub"), "{err}");
        assert!(!s.key_path().exists());
        fs::remove_dir(s.pub_path()).unwrap();
        assert_eq!(s.put_key(&key(K1), false), Ok(PutOutcome::Stored));
        assert!(s.status().unwrap().is_healthy());
    }

    fn mkfifo(path: &Path) {
        let ok = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs")
            .success();
        assert!(ok, "mkfifo {path:?}");
    }

    /// Runs `f` on another thread; fails (instead of hanging the test run)
    /// when it does not return within a minute.
    fn returns<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{what} blocked"))
    }

    #[test]
    fn fifos_are_refused_not_waited_on() {
        for name in [KEY_FILE, "id_ed25519.pub", LOCK_FILE, API_KEY_FILE] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join(".ollama");
            let s = FileStore::new(dir.clone());
            if name != KEY_FILE {
                s.put_key(&key(K1), false).unwrap();
            }
            s.ensure_dir().unwrap();
            let _ = fs::remove_file(dir.join(name));
            mkfifo(&dir.join(name));
            let d = dir.clone();
            let st = returns("status", move || FileStore::new(d).status()).unwrap();
            assert!(!st.is_healthy(), "{name}: {st:?}");
            let p = st
                .problems
                .iter()
                .find(|p| p.location.ends_with(name))
                .unwrap_or_else(|| panic!("{name}: {st:?}"));
            assert!(p.what.contains("not a regular file"), "{p:?}");
            let d = dir.clone();
            let put = returns("put", move || FileStore::new(d).put_key(&key(K1), true));
            if name == API_KEY_FILE || name.ends_with(".pub") {
                // Not the key's own file: a .pub that is no public key file
                // is replaced (the rename replaces the FIFO itself).
                assert!(put.is_ok(), "{put:?}");
            } else {
                let err = put.unwrap_err().to_string();
                assert!(err.contains("not a regular file"), "{name}: {err}");
            }
            let d = dir.clone();
            let get = returns("get", move || FileStore::new(d).get_key());
            assert_eq!(get.is_ok(), name != KEY_FILE, "{name}: {get:?}");
        }
    }

    #[test]
    fn the_lock_file_is_never_followed() {
        let (tmp, s) = store();
        s.ensure_dir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::os::unix::fs::symlink(&elsewhere, s.dir.join(LOCK_FILE)).unwrap();
        let err = s.put_key(&key(K1), false).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(!elsewhere.exists(), "put created the link's target");
        assert!(!s.key_path().exists());
        let st = s.status().unwrap();
        assert!(
            st.problems.iter().any(|p| p.location.ends_with(LOCK_FILE)
                && p.fix.as_deref().is_some_and(|f| f.starts_with("rm "))),
            "{st:?}"
        );
        // An existing target is neither truncated nor locked through it.
        fs::write(&elsewhere, "precious").unwrap();
        assert!(s.put_key(&key(K1), false).is_err());
        assert!(s.delete_key().is_err());
        assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "precious");
    }

    #[test]
    fn links_are_followed_to_own_files_only() {
        let (tmp, s) = store();
        s.ensure_dir().unwrap();
        // A dotfiles manager's links: same owner, read through, and a
        // write replaces the link, never the file it leads to.
        let kept = tmp.path().join("dotfiles-key");
        fs::write(&kept, K1).unwrap();
        fs::set_permissions(&kept, fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&kept, s.key_path()).unwrap();
        assert!(s.get_key().unwrap().unwrap().same_key(&key(K1)));
        assert!(s.status().unwrap().usable);
        s.put_key(&key(K2), true).unwrap();
        assert_eq!(fs::read_to_string(&kept).unwrap(), K1);
        assert!(!fs::symlink_metadata(s.key_path())
            .unwrap()
            .file_type()
            .is_symlink());
        // A link to a missing file.
        fs::remove_file(s.key_path()).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("gone"), s.key_path()).unwrap();
        let err = s.get_key().unwrap_err().to_string();
        assert!(err.contains("missing file"), "{err}");
    }

    /// Root looking at a service user's folder: a link there to a file of
    /// another owner (`/etc/shadow`) is not followed, and not quoted.
    #[test]
    fn links_to_another_owners_file_are_refused() {
        if !is_root() {
            eprintln!("SKIPPED links_to_another_owners_file_are_refused: needs root to chown");
            return;
        }
        let (tmp, s) = store();
        s.put_key(&key(K1), false).unwrap();
        let secret = tmp.path().join("shadow");
        fs::write(&secret, "root:$6$secret-hash:19000::::::\n").unwrap();
        // The link belongs to "the service user" (nobody), the file to root.
        for name in [KEY_FILE, "id_ed25519.pub"] {
            let link = s.dir.join(name);
            fs::remove_file(&link).unwrap();
            std::os::unix::fs::symlink(&secret, &link).unwrap();
            std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
        }
        let err = s.get_key().unwrap_err().to_string();
        assert!(err.contains("another owner"), "{err}");
        let st = s.status().unwrap();
        let all = format!("{st:?}");
        assert!(
            !all.contains("secret-hash") && !all.contains("root:"),
            "{all}"
        );
        assert!(!st.usable);
        assert!(st.problems[0].what.contains("another owner"), "{st:?}");
        // put refuses it even with --force; once the links are removed, a
        // key is stored beside, and the file they led to is untouched.
        let err = s.put_key(&key(K2), true).unwrap_err().to_string();
        assert!(err.contains("another owner"), "{err}");
        s.delete_key().unwrap();
        s.put_key(&key(K2), false).unwrap();
        assert_eq!(
            fs::read_to_string(&secret).unwrap(),
            "root:$6$secret-hash:19000::::::\n"
        );
        assert!(s.status().unwrap().is_healthy());
    }

    #[test]
    fn a_linked_folder_of_another_owner_is_not_used() {
        if !is_root() {
            eprintln!("SKIPPED a_linked_folder_of_another_owner_is_not_used: needs root to chown");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let other = tmp.path().join("etc");
        fs::create_dir(&other).unwrap();
        let link = tmp.path().join(".ollama");
        std::os::unix::fs::symlink(&other, &link).unwrap();
        let s = FileStore::new(link.clone());
        // Same owner (a dotfiles link): used.
        s.put_key(&key(K1), false).unwrap();
        assert!(s.get_key().unwrap().is_some());
        // The link made by another user (the service user): refused.
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
        for err in [
            s.put_key(&key(K2), true).unwrap_err(),
            s.get_key().unwrap_err(),
            s.status().unwrap_err(),
            s.delete_key().unwrap_err(),
        ] {
            assert!(err.to_string().contains("another owner"), "{err}");
        }
        assert_eq!(fs::read_to_string(other.join(KEY_FILE)).unwrap(), K1);
    }

    fn is_root() -> bool {
        // The owner of a file we just made is our effective uid.
        let tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.as_file().metadata().unwrap().uid() == 0
    }

    #[test]
    fn loose_key_is_refused_and_reported() {
        let (_tmp, s) = store();
        s.put_key(&key(K1), false).unwrap();
        fs::set_permissions(s.key_path(), fs::Permissions::from_mode(0o644)).unwrap();
        let err = s.get_key().unwrap_err();
        assert!(
            matches!(&err, Error::At { error, .. } if **error == Error::LoosePermissions { mode: 0o644 }),
            "{err}"
        );
        let st = s.status().unwrap();
        assert_eq!(st.public_key, Some(key(K1).public_key()));
        assert!(!st.usable && !st.is_healthy());
        assert_eq!(st.problems.len(), 1);
        // The same words as get's error.
        let Error::At { error, .. } = err else {
            unreachable!()
        };
        assert!(st.problems[0].what.starts_with(&error.to_string()));
        assert!(st.problems[0].what.contains("0644"), "{:?}", st.problems);
        assert!(st.problems[0]
            .fix
            .as_deref()
            .unwrap()
            .starts_with("chmod 600"));
    }

    #[test]
    fn status_names_damaged_empty_and_mismatched_files() {
        let (_tmp, s) = store();
        let st = s.status().unwrap();
        assert!(!st.key_present && !st.is_healthy());
        s.put_key(&key(K1), false).unwrap();
        assert!(s.status().unwrap().is_healthy());
        fs::write(s.pub_path(), key(K2).public_file_text()).unwrap();
        let st = s.status().unwrap();
        assert!(st.problems[0].location.ends_with(".pub"));
        assert!(st.problems[0].what.contains("another key"));
        fs::write(s.pub_path(), "garbage\n").unwrap();
        assert!(s.status().unwrap().problems[0]
            .what
            .contains("not a public key"));
        fs::remove_file(s.pub_path()).unwrap();
        let st = s.status().unwrap();
        assert!(st.is_healthy() && st.notes.len() == 1, "{st:?}");
        fs::write(s.key_path(), "").unwrap();
        let st = s.status().unwrap();
        assert!(st.key_present && st.public_key.is_none());
        assert!(st.problems[0].what.contains("empty"), "{st:?}");
        fs::write(s.key_path(), &K1[..K1.len() / 2]).unwrap();
        let st = s.status().unwrap();
        assert!(st.problems[0].what.contains("damaged"), "{st:?}");
        assert!(st.problems[0].location.ends_with(KEY_FILE));
    }

    #[test]
    fn delete_removes_both_files_and_reports_nothing_twice() {
        let (_tmp, s) = store();
        assert_eq!(s.delete_key(), Ok(false));
        assert!(!s.dir.exists(), "delete must not create the folder");
        s.put_key(&key(K1), false).unwrap();
        s.put_api_key(&ApiKey::new("abc").unwrap(), false).unwrap();
        assert_eq!(s.delete_key(), Ok(true));
        assert!(!s.key_path().exists() && !s.pub_path().exists());
        assert_eq!(s.delete_key(), Ok(false));
        assert!(s.get_api_key().unwrap().is_some(), "the API key stays");
    }

    #[test]
    fn remove_key_if_leaves_other_keys() {
        let (_tmp, s) = store();
        s.put_key(&key(K1), false).unwrap();
        assert_eq!(s.remove_key_if(&key(K2).public_key()), Ok(Removal::NotHeld));
        assert!(s.key_path().exists());
        assert_eq!(s.remove_key_if(&key(K1).public_key()), Ok(Removal::Removed));
        assert!(!s.key_path().exists() && !s.pub_path().exists());
        assert_eq!(s.remove_key_if(&key(K1).public_key()), Ok(Removal::NotHeld));
    }

    #[test]
    fn api_key_round_trip() {
        let (_tmp, s) = store();
        assert!(s.get_api_key().unwrap().is_none());
        let a = ApiKey::new("one.abc").unwrap();
        let b = ApiKey::new("two.def").unwrap();
        assert_eq!(s.put_api_key(&a, false), Ok(PutOutcome::Stored));
        assert_eq!(mode(&s.api_key_path()), 0o600);
        assert_eq!(s.put_api_key(&a, false), Ok(PutOutcome::Unchanged));
        assert!(matches!(
            s.put_api_key(&b, false),
            Err(Error::Occupied { .. })
        ));
        assert_eq!(s.get_api_key().unwrap().unwrap().expose(), "one.abc");
        assert_eq!(s.put_api_key(&b, true), Ok(PutOutcome::Stored));
        assert_eq!(s.get_api_key().unwrap().unwrap().expose(), "two.def");
        fs::set_permissions(s.api_key_path(), fs::Permissions::from_mode(0o640)).unwrap();
        assert!(s.get_api_key().is_err());
        assert_eq!(s.delete_api_key(), Ok(true));
        assert_eq!(s.delete_api_key(), Ok(false));
    }

    #[test]
    fn writers_sweep_old_orphans_only() {
        let (_tmp, s) = store();
        s.put_key(&key(K1), false).unwrap();
        let old = s.dir.join(".olm-AbC123");
        let young = s.dir.join(".olm-XyZ789");
        let other = s.dir.join(".olm-keepme-too");
        for p in [&old, &young, &other] {
            fs::write(p, "half a key").unwrap();
        }
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for p in [&old, &other] {
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
        }
        s.put_key(&key(K1), false).unwrap();
        assert!(!old.exists(), "an old orphan is removed");
        assert!(
            young.exists(),
            "a young temporary file may be another writer's"
        );
        assert!(other.exists(), "only tempfile's own names are touched");
        assert!(s.key_path().exists() && s.dir.join(LOCK_FILE).exists());
    }

    /// Many threads put different keys with force at once; afterwards the
    /// key parses whole and the .pub names it.
    #[test]
    fn concurrent_writers_leave_matching_pub() {
        let (_tmp, s) = store();
        let s = Arc::new(s);
        let keys: Vec<String> = (0..8)
            .map(|_| {
                PrivateKey::generate()
                    .unwrap()
                    .to_openssh()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let keys = Arc::new(keys);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = Arc::clone(&s);
                let keys = Arc::clone(&keys);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let k = key(&keys[(t + i) % keys.len()]);
                        s.put_key(&k, true).expect("put");
                        // Every read in between sees a whole key.
                        let got = s.get_key().expect("get").expect("some");
                        assert!(keys.iter().any(|text| key(text).same_key(&got)));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let st = s.status().unwrap();
        assert!(st.is_healthy(), "{st:?}");
        let stored = s.get_key().unwrap().unwrap();
        assert_eq!(
            fs::read_to_string(s.pub_path()).unwrap(),
            stored.public_file_text()
        );
    }
}
