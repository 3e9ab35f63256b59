//! Secrets read from files the operator controls (never from a command line, where every local
//! user sees them in `ps`): the file must be private to its owner, as ssh demands of its keys.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Permission bits a secret file must not have: any access by group or others.
pub const SECRET_FILE_FORBIDDEN_MODE_BITS: u32 = 0o077;

/// Longest secret accepted: 0-db's passwords are far shorter (admin ≤ 128, namespace ≤ 63
/// bytes); the bound only stops a wrong path (a log, a disk image) from being read whole.
pub const SECRET_BYTES_MAX: u64 = 4096;

/// Why a secret file was refused. Never carries the file's content.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "secret file {path} has mode {mode:04o}: it must be 0600 or stricter (chmod 600 {path})"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("secret file {path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("secret file {path} is larger than {SECRET_BYTES_MAX} bytes")]
    TooLarge { path: PathBuf },
    #[error("secret file {path} is empty")]
    Empty { path: PathBuf },
    #[error("secret file {path} is not UTF-8 text")]
    NotText { path: PathBuf },
}

/// Opens a file that holds secrets: a regular file that group and others cannot access (mode
/// 0600 or stricter). The mode is checked on the opened file, so a file swapped after the check
/// is not read.
pub fn open_private(path: &Path) -> Result<std::fs::File, SecretFileError> {
    let read_err = |source| SecretFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(SecretFileError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & SECRET_FILE_FORBIDDEN_MODE_BITS != 0 {
        return Err(SecretFileError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(file)
}

/// Reads a secret from `path` (opened with [`open_private`]): one line, a trailing newline
/// dropped.
pub fn read_secret_file(path: &Path) -> Result<String, SecretFileError> {
    let read_err = |source| SecretFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = open_private(path)?;
    let mut bytes = Vec::new();
    file.take(SECRET_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > SECRET_BYTES_MAX {
        return Err(SecretFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let mut text = String::from_utf8(bytes).map_err(|_| SecretFileError::NotText {
        path: path.to_path_buf(),
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(SecretFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn write(dir: &Path, name: &str, content: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn private_file_is_read_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "pw", b"s3cret\n", 0o600);
        assert_eq!(read_secret_file(&path).unwrap(), "s3cret");
        let path = write(dir.path(), "pw2", b"s3cret", 0o400);
        assert_eq!(read_secret_file(&path).unwrap(), "s3cret");
    }

    #[test]
    fn readable_by_others_is_refused_naming_path_and_mode_not_content() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let path = write(dir.path(), "pw", b"hunter2-secret\n", mode);
            let e = read_secret_file(&path).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, SecretFileError::Permissions { mode: m, .. } if m == mode));
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains(&format!("{mode:04o}")), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[test]
    fn empty_missing_and_huge_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(dir.path(), "empty", b"\n", 0o600);
        assert!(matches!(
            read_secret_file(&empty),
            Err(SecretFileError::Empty { .. })
        ));
        assert!(matches!(
            read_secret_file(&dir.path().join("missing")),
            Err(SecretFileError::Read { .. })
        ));
        let huge = write(dir.path(), "huge", &[b'a'; 5000], 0o600);
        assert!(matches!(
            read_secret_file(&huge),
            Err(SecretFileError::TooLarge { .. })
        ));
        assert!(matches!(
            read_secret_file(dir.path()),
            Err(SecretFileError::NotAFile { .. }) | Err(SecretFileError::Permissions { .. })
        ));
    }
}
