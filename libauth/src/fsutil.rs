//! Files: atomic writes and careful reads of key files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::key::PrivateKey;

/// The largest key file olm reads; real ones are about 400 bytes.
pub const KEY_FILE_LIMIT: usize = 64 * 1024;

/// Whether [`write_atomic`] may replace an existing file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Replace {
    /// Fail with [`Error::Exists`] when the file exists (checked atomically).
    Never,
    /// Replace the file in one rename.
    Allow,
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder
/// with `mode`, fsync, then rename (or link, for [`Replace::Never`]), then
/// fsync of the folder. Readers see the old file or the new one, never half.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, replace: Replace) -> Result<()> {
    write_atomic_io(path, bytes, mode, replace).map_err(|e| match e {
        // A write that fails (read-only or full disk, no permission) is an
        // operation that failed, not bad input: exit 1.
        Error::Io { kind, message } => Error::WriteFailed { kind, message },
        other => other,
    })
}

fn write_atomic_io(path: &Path, bytes: &[u8], mode: u32, replace: Replace) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".olm-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    // The umask may have narrowed the mode; set it exactly.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    match replace {
        Replace::Allow => {
            tmp.persist(path).map_err(|e| Error::from(e.error))?;
        }
        Replace::Never => {
            tmp.persist_noclobber(path).map_err(|e| {
                if e.error.kind() == io::ErrorKind::AlreadyExists {
                    Error::Exists
                } else {
                    Error::from(e.error)
                }
            })?;
        }
    }
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Writes a key pair as `ssh-keygen -f PATH` does: the private key at `path`
/// (0600) and its `.pub` beside it (0644), each atomically, key first.
/// With [`Replace::Never`], an existing key or `.pub` is left alone and
/// [`Error::Exists`] says which; a folder in the way or a missing parent
/// folder is refused before anything is written.
pub fn write_key_pair(path: &Path, key: &PrivateKey, replace: Replace) -> Result<()> {
    let pub_path = pub_path(path);
    if path.is_dir() {
        return Err(Error::Io {
            kind: io::ErrorKind::IsADirectory,
            message: "is a directory; give a file name for the key".into(),
        });
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(Error::Io {
                kind: io::ErrorKind::NotFound,
                message: format!(
                    "its folder {:?} does not exist",
                    parent.display().to_string()
                ),
            });
        }
    }
    if replace == Replace::Never && pub_path.exists() && !path.exists() {
        return Err(Error::At {
            location: format!("{:?}", pub_path.display().to_string()),
            error: Box::new(Error::Exists),
        });
    }
    let text = key.to_openssh()?;
    write_atomic(path, text.as_bytes(), 0o600, replace)?;
    write_atomic(
        &pub_path,
        key.public_file_text().as_bytes(),
        0o644,
        Replace::Allow,
    )
}

/// `PATH.pub`.
pub fn pub_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// A private key file's bytes (zeroized on drop), and its permission bits
/// when the file is a regular file that group or others may read.
pub struct PrivateFile {
    /// The file's content.
    pub bytes: Zeroizing<Vec<u8>>,
    /// `Some(mode)` when others may read it.
    pub loose_mode: Option<u32>,
}

impl PrivateFile {
    /// Refuses a key that others may read, as ssh does. Called after the
    /// content was found to be a key, so that a `.pub` or an empty file is
    /// named for what it is rather than given a `chmod` hint.
    pub fn check_mode(&self) -> Result<()> {
        match self.loose_mode {
            Some(mode) => Err(Error::LoosePermissions { mode }),
            None => Ok(()),
        }
    }
}

/// Reads a private key file: refuses directories and files over
/// [`KEY_FILE_LIMIT`]; notes the mode of a regular file others may read.
/// Pipes (`-k <(pass show key)`) and devices have no meaningful mode.
pub fn read_private_file(path: &Path) -> Result<PrivateFile> {
    let file = OpenOptions::new().read(true).open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(Error::Io {
            kind: io::ErrorKind::IsADirectory,
            message: "is a directory, not a key file".into(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    let loose_mode = (meta.is_file() && mode & 0o077 != 0).then_some(mode);
    Ok(PrivateFile {
        bytes: read_limited(file, KEY_FILE_LIMIT)?,
        loose_mode,
    })
}

/// Reads at most `limit` bytes; more is [`Error::TooLarge`].
///
/// A growing `Vec` would leave copies of what it held (a key) behind in
/// freed memory, so the buffer grows by hand: a new zeroizing buffer twice
/// the size, the bytes copied over, the old one zeroized as it is dropped.
/// (Allocating `limit + 1` bytes up front did the same, but `Zeroizing`
/// clears the whole capacity on drop: for the 1 MiB stdin limit that was a
/// 1 MiB memset and 256 page faults, more than half of a single
/// `olm-verify --token` call, and a fifth of `olm-sign`'s.)
pub fn read_limited(mut reader: impl Read, limit: usize) -> Result<Zeroizing<Vec<u8>>> {
    const FIRST: usize = 4096;
    let most = limit.saturating_add(1);
    let mut buf = Zeroizing::new(Vec::with_capacity(FIRST.min(most)));
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= most {
                break;
            }
            let mut bigger = Zeroizing::new(Vec::with_capacity(
                buf.capacity().saturating_mul(2).min(most),
            ));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        let filled = buf.len();
        let room = buf.capacity() - filled;
        buf.resize(filled + room, 0);
        match reader.read(&mut buf[filled..]) {
            Ok(0) => {
                buf.truncate(filled);
                break;
            }
            Ok(n) => buf.truncate(filled + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(filled),
            Err(e) => return Err(e.into()),
        }
    }
    if buf.len() > limit {
        return Err(Error::TooLarge { limit });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most 1000 bytes per read, as a pipe may.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(out.len()).min(1000);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn reads_up_to_the_limit_and_no_further() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        for limit in [0, 1, 4095, 4096, 4097, 8192, 10_000, 20_000, 30_000] {
            for len in [0, 1, 4096, 4097, 10_000, 20_000] {
                let got = read_limited(Trickle(&data[..len]), limit);
                if len <= limit {
                    assert_eq!(&got.expect("fits")[..], &data[..len], "{limit} {len}");
                } else {
                    assert_eq!(got, Err(Error::TooLarge { limit }), "{limit} {len}");
                }
            }
        }
    }

    #[test]
    fn atomic_write_sets_mode_and_refuses_existing() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("k");
        write_atomic(&p, b"one", 0o600, Replace::Never).expect("write");
        assert_eq!(
            fs::metadata(&p).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            write_atomic(&p, b"two", 0o600, Replace::Never),
            Err(Error::Exists)
        );
        assert_eq!(fs::read(&p).expect("read"), b"one");
        write_atomic(&p, b"two", 0o644, Replace::Allow).expect("replace");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        assert_eq!(
            fs::metadata(&p).expect("meta").permissions().mode() & 0o777,
            0o644
        );
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[test]
    fn errors_do_not_name_temporary_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let err = write_atomic(
            &dir.path().join("gone").join("k"),
            b"x",
            0o600,
            Replace::Never,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::WriteFailed {
                    kind: io::ErrorKind::NotFound,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains(".olm-"), "{err}");
    }

    #[test]
    fn private_reads_check_mode_and_size() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("k");
        fs::write(&p, b"x").expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        let loose = read_private_file(&p).expect("read");
        assert_eq!(&*loose.bytes, b"x");
        assert_eq!(
            loose.check_mode(),
            Err(Error::LoosePermissions { mode: 0o644 })
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_private_file(&p).expect("read").check_mode(), Ok(()));
        fs::write(&p, vec![b'a'; KEY_FILE_LIMIT + 1]).expect("write");
        assert!(matches!(read_private_file(&p), Err(Error::TooLarge { .. })));
        assert!(read_private_file(dir.path()).is_err());
        // A device has no mode to check: /dev/null reads as empty.
        let null = read_private_file(Path::new("/dev/null")).expect("read");
        assert!(null.bytes.is_empty());
        assert_eq!(null.check_mode(), Ok(()));
    }
}
