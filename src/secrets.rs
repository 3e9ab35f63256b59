//! Secrets the `archiver` command reads: never from its command line (`/proc/PID/cmdline` is
//! world-readable), only from files that nobody else can read, or from the environment of a
//! supervising process.

use std::path::Path;

use anyhow::{bail, Result};
use zeroize::Zeroizing;

/// Reads a one-line secret from a private file (`zdb_backend::secret`'s rules).
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>> {
    Ok(Zeroizing::new(zdb_backend::secret::read_secret_file(path)?))
}

/// Where child processes (and scripts) pass `archiver hoster` its admin password.
pub const HOSTER_ADMIN_PASSWORD_ENV: &str = crate::config_file::ADMIN_PASSWORD_ENV;
/// Where `archiver prover` takes the namespace password when no file is given.
pub const PROVER_PASSWORD_ENV: &str = "ARCHIVER_PROVER_PASSWORD";

/// A secret from a 0600 file or an environment variable, never from the command line. Errors
/// name the file or the variable, never the secret.
pub fn secret_from(file: Option<&Path>, env: &str) -> Result<Option<String>> {
    let from_env = std::env::var_os(env);
    match (file, from_env) {
        (Some(_), Some(_)) => bail!("give the secret either in a file or in {env}, not both"),
        (Some(path), None) => Ok(Some(zdb_backend::secret::read_secret_file(path)?)),
        (None, Some(value)) => match value.into_string() {
            Ok(s) if !s.is_empty() => Ok(Some(s)),
            Ok(_) => bail!("{env} is set but empty"),
            Err(_) => bail!("{env} is not UTF-8 text"),
        },
        (None, None) => Ok(None),
    }
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
