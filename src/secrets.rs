//! Secrets the `archiver` command reads: never from its command line (`/proc/PID/cmdline` is
//! world-readable), only from files that nobody else can read, or from the environment of a
//! supervising process.

use std::path::Path;

use anyhow::Result;
use zeroize::Zeroizing;

/// Reads a one-line secret from a private file (`zdb_backend::secret`'s rules).
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>> {
    Ok(Zeroizing::new(zdb_backend::secret::read_secret_file(path)?))
}

/// A fresh random password for a hoster namespace: 128 bits, hex.
pub fn generate_password() -> String {
    use rand::RngCore;
    let mut bytes = Zeroizing::new([0u8; 16]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    hex::encode(bytes.as_ref())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_files_must_be_private_and_errors_never_show_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin");
        std::fs::write(&path, "s3cret-value\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = format!("{:#}", read_secret_file(&path).unwrap_err());
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret_file(&path).unwrap().as_str(), "s3cret-value");
        assert_ne!(generate_password(), generate_password());
        assert_eq!(generate_password().len(), 32);
    }
}
