//! Files: atomic writes and careful reads of key files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

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

/// Reads a private key file: refuses directories, files over
/// [`KEY_FILE_LIMIT`], and files that group or others may read (as ssh does).
/// The buffer zeroizes on drop.
pub fn read_private_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let file = OpenOptions::new().read(true).open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(Error::Io {
            kind: io::ErrorKind::IsADirectory,
            message: "is a directory, not a key file".into(),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::LoosePermissions { mode });
    }
    read_limited(file, KEY_FILE_LIMIT)
}

/// Reads at most `limit` bytes; more is [`Error::TooLarge`].
///
/// The buffer is allocated once, for `limit + 1` bytes: a growing `Vec`
/// would leave copies of what it held (a key) behind in freed memory. The
/// allocation is not touched until read into, so it costs no memory.
pub fn read_limited(reader: impl Read, limit: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(limit.saturating_add(1)));
    reader.take(limit as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > limit {
        return Err(Error::TooLarge { limit });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

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
                Error::Io {
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
        assert_eq!(
            read_private_file(&p).unwrap_err(),
            Error::LoosePermissions { mode: 0o644 }
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(&*read_private_file(&p).expect("read"), b"x");
        fs::write(&p, vec![b'a'; KEY_FILE_LIMIT + 1]).expect("write");
        assert!(matches!(read_private_file(&p), Err(Error::TooLarge { .. })));
        assert!(read_private_file(dir.path()).is_err());
    }
}
