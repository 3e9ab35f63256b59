//! The `archiver` config file (TOML): master key, archive parameters, client tuning and hosters.
//! Unknown keys are refused so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use archiver::config::{ArchiveConfig, Compression, Durability, HosterEntry};
use archiver::MasterKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::secrets::read_secret_file;

/// Client tuning for 0-db hosters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// TCP connections per hoster: 0-db answers one request per connection at a time, so this is
    /// the per-hoster parallelism.
    #[serde(default = "default_connections")]
    pub connections_per_hoster: usize,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// After a failure a hoster is skipped (calls fail at once) for this long before one retry.
    #[serde(default = "default_down_retry")]
    pub down_retry_ms: u64,
}

fn default_connections() -> usize {
    4
}
fn default_connect_timeout() -> u64 {
    2_000
}
fn default_request_timeout() -> u64 {
    30_000
}
fn default_down_retry() -> u64 {
    5_000
}

impl Default for ClientSection {
    fn default() -> Self {
        Self {
            connections_per_hoster: default_connections(),
            connect_timeout_ms: default_connect_timeout(),
            request_timeout_ms: default_request_timeout(),
            down_retry_ms: default_down_retry(),
        }
    }
}

impl ClientSection {
    pub fn options(&self) -> zdb_backend::ClientOptions {
        zdb_backend::ClientOptions {
            connections_max: self.connections_per_hoster,
            connect_timeout_ms: self.connect_timeout_ms,
            request_timeout_ms: self.request_timeout_ms,
            down_retry_ms: self.down_retry_ms,
        }
    }
}

fn default_segment_size() -> u64 {
    archiver::config::SEGMENT_SIZE_BYTES_DEFAULT
}
fn default_k() -> usize {
    4
}
fn default_m() -> usize {
    2
}
fn default_min_parity() -> usize {
    1
}

/// The whole file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// 64 hex digits. Everything (segment keys, storage key names, metadata key) derives from it:
    /// whoever has it can read the archive, whoever loses it cannot.
    pub master_key: String,
    /// Local data directory; relative paths are relative to the config file.
    pub data_dir: PathBuf,
    #[serde(default = "default_segment_size")]
    pub segment_size_bytes: u64,
    #[serde(default = "default_k")]
    pub data_shards: usize,
    #[serde(default = "default_m")]
    pub parity_shards: usize,
    #[serde(default = "default_min_parity")]
    pub min_parity: usize,
    #[serde(default)]
    pub durability: Durability,
    /// "none" (default) or "zstd": compress each segment before encryption.
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub client: ClientSection,
    #[serde(default)]
    pub hosters: Vec<HosterEntry>,
}

/// A loaded, validated config.
pub struct Loaded {
    pub file: ConfigFile,
    pub archive: ArchiveConfig,
    pub key: MasterKey,
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<Loaded> {
        use std::io::Read as _;
        let mut text = Zeroizing::new(String::new());
        zdb_backend::secret::open_private(path)
            .with_context(|| format!("config {} holds the master key", path.display()))?
            .read_to_string(&mut text)
            .with_context(|| format!("read config {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` names the file in errors and anchors a relative
    /// `data_dir`. Split from [`load`](Self::load) so the fuzz targets reach it without a file.
    pub fn parse(text: &str, path: &Path) -> Result<Loaded> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| redacted_parse_error(path, text, &e))?;
        let key = MasterKey::from_hex(&file.master_key)
            .with_context(|| format!("config {}: master_key", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let data_dir = if file.data_dir.is_relative() {
            base.join(&file.data_dir)
        } else {
            file.data_dir.clone()
        };
        let archive = ArchiveConfig {
            data_dir,
            segment_size_bytes: file.segment_size_bytes,
            data_shards: file.data_shards,
            parity_shards: file.parity_shards,
            min_parity: file.min_parity,
            durability: file.durability,
            compression: file.compression,
            hosters: file.hosters.clone(),
        };
        archive
            .validate()
            .with_context(|| format!("config {}", path.display()))?;
        if file.client.connections_per_hoster == 0 {
            bail!(
                "config {}: client.connections_per_hoster must be at least 1",
                path.display()
            );
        }
        Ok(Loaded { file, archive, key })
    }

    /// Writes the config with mode 0600 (it holds the master key). Refuses to overwrite.
    pub fn write_new(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = toml::to_string_pretty(self).context("serialize config")?;
        let header =
            "# archiver config. Keep this file private: master_key opens the whole archive.\n\
                      # Reference: README.md, section \"Configuration\".\n\n";
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("create config {} (it must not exist yet)", path.display()))?;
        f.write_all(header.as_bytes())
            .and_then(|_| f.write_all(text.as_bytes()))
            .and_then(|_| f.sync_all())
            .with_context(|| format!("write config {}", path.display()))?;
        // The master key exists nowhere else: the file and its name must survive a power cut.
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("sync directory {}", dir.display()))?;
        Ok(())
    }
}

/// Environment variable holding the admin password of the hosters named on `archiver init`'s
/// command line (the same variable `archiver hoster` reads): secrets never go on a command line.
pub const ADMIN_PASSWORD_ENV: &str = "ARCHIVER_HOSTER_ADMIN_PASSWORD";

const HOSTER_ARG_FORM: &str = "name=host:port[,domain=D][,namespace=N][,admin-file=PATH][,password-file=PATH][,key=HOSTER_ID][,prover=host:port]";

/// Parses a `--hoster` argument of `archiver init`. Secrets come from private files
/// (`admin-file=`, `password-file=`) or, for the admin password, from `ARCHIVER_HOSTER_ADMIN_PASSWORD`;
/// a namespace password not given is generated. Passwords written on the command line are refused.
pub fn parse_hoster_arg(s: &str) -> Result<HosterEntry> {
    let mut parts = s.split(',');
    let first = parts.next().unwrap_or_default();
    let Some((name, address)) = first.split_once('=') else {
        bail!("hoster argument: expected {HOSTER_ARG_FORM}");
    };
    let mut entry = HosterEntry {
        name: name.into(),
        address: address.into(),
        namespace: "poa-archive".into(),
        password: None,
        admin_password: std::env::var(ADMIN_PASSWORD_ENV)
            .ok()
            .filter(|p| !p.is_empty()),
        domain: "default".into(),
        public_key: None,
        prover: None,
    };
    for p in parts {
        match p.split_once('=') {
            Some(("domain", v)) => entry.domain = v.into(),
            Some(("namespace", v)) => entry.namespace = v.into(),
            Some(("admin-file", v)) => {
                entry.admin_password = Some(read_secret_file(Path::new(v))?.to_string())
            }
            Some(("password-file", v)) => {
                entry.password = Some(read_secret_file(Path::new(v))?.to_string())
            }
            Some(("password" | "admin", _)) => bail!(
                "hoster {name}: passwords are not taken on the command line (other users can \
                 read it); use admin-file=PATH / password-file=PATH (mode 0600) or \
                 {ADMIN_PASSWORD_ENV}"
            ),
            Some(("key", v)) => entry.public_key = Some(v.into()),
            Some(("prover", v)) => entry.prover = Some(v.into()),
            _ => bail!("hoster {name}: unknown option {p:?}; expected {HOSTER_ARG_FORM}"),
        }
    }
    if entry.password.is_none() {
        entry.password = Some(crate::secrets::generate_password());
    }
    Ok(entry)
}

/// Config keys whose values are secrets: a parse error on their line shows no text of it.
const SECRET_CONFIG_KEYS: [&str; 3] = ["master_key", "password", "admin_password"];

/// A TOML error without the offending text when that text may be a secret: the line and the key
/// only (serde and toml quote the value or the whole line in their messages).
fn redacted_parse_error(path: &Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let Some(span) = e.span() else {
        return anyhow::anyhow!("parse config {}: {}", path.display(), e.message());
    };
    let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or_default();
    let key = line.split('=').next().unwrap_or_default().trim();
    if SECRET_CONFIG_KEYS.contains(&key) || line.contains("master_key") {
        anyhow::anyhow!(
            "parse config {}: line {line_no} ({key}): invalid value (not shown: it is a secret)",
            path.display()
        )
    } else {
        anyhow::anyhow!(
            "parse config {}: line {line_no}: {}",
            path.display(),
            e.message()
        )
    }
}

impl Loaded {
    /// The configured hosters, reached over the 0-db protocol with the configured client options.
    pub fn hoster_set(&self) -> archiver::HosterSet {
        archiver::HosterSet::from_config(&self.archive.hosters, &self.file.client.options())
    }
}

/// Opens the local archive a config describes (recovering its log after a crash).
pub fn open_archive(config: &Path) -> Result<archiver::Archive> {
    let loaded = ConfigFile::load(config)?;
    let hosters = loaded.hoster_set();
    archiver::Archive::open(loaded.archive, loaded.key, hosters).context("open archive")
}

/// What a fresh machine has: the archive as its hosters hold it, reached with the config alone
/// (no local data directory is touched).
pub fn open_remote(config: &Path) -> Result<archiver::RemoteArchive> {
    let loaded = ConfigFile::load(config)?;
    let hosters = loaded.hoster_set();
    Ok(archiver::RemoteArchive::new(
        std::sync::Arc::new(loaded.key),
        hosters,
    ))
}

/// Restores the whole history into `out` as a fresh machine would (config alone), timed.
pub async fn restore_fresh(config: &Path, out: &Path) -> Result<(archiver::RestoreReport, f64)> {
    let remote = open_remote(config)?;
    let started = std::time::Instant::now();
    let report = archiver::restore(
        &remote,
        None,
        None,
        out,
        archiver::RestoreFormat::Segments,
        |_, _, _| {},
    )
    .await
    .context("restore")?;
    Ok((report, started.elapsed().as_secs_f64()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("c.toml");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    #[test]
    fn init_writes_private_loadable_config_and_typos_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let hosters = (0..6)
            .map(|i| {
                parse_hoster_arg(&format!("h{i}=127.0.0.1:{},domain=d{}", 9000 + i, i % 3)).unwrap()
            })
            .collect();
        let file = ConfigFile {
            master_key: MasterKey::generate().to_hex().to_string(),
            data_dir: "data".into(),
            segment_size_bytes: default_segment_size(),
            data_shards: 4,
            parity_shards: 2,
            min_parity: 1,
            durability: Durability::Fsync,
            compression: Compression::None,
            client: ClientSection::default(),
            hosters,
        };
        let path = dir.path().join("archiver.toml");
        file.write_new(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(file.write_new(&path).is_err(), "never overwrites a key");
        let loaded = ConfigFile::load(&path).unwrap();
        assert_eq!(loaded.archive.data_dir, dir.path().join("data"));

        let text = std::fs::read_to_string(&path).unwrap();
        let typo = write(dir.path(), &text.replace("parity_shards", "parity_shard"));
        let err = format!("{:#}", ConfigFile::load(&typo).err().unwrap());
        assert!(err.contains("parity_shard"), "{err}");
        let bad_key = write(dir.path(), &text.replace(&file.master_key, "00ff"));
        let err = format!("{:#}", ConfigFile::load(&bad_key).err().unwrap());
        assert!(err.contains("master_key"), "{err}");
        assert!(parse_hoster_arg("h1=1.2.3.4:5,colour=red").is_err());
    }

    /// No secret on a command line, in an error message, or in a file others can read.
    #[test]
    fn secrets_stay_out_of_arguments_errors_and_readable_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let err = format!(
            "{:#}",
            parse_hoster_arg("h1=1.2.3.4:5,password=hunter2").unwrap_err()
        );
        assert!(
            err.contains("password-file") && !err.contains("hunter2"),
            "{err}"
        );
        assert!(parse_hoster_arg("h1=1.2.3.4:5,admin=hunter2").is_err());
        let generated = parse_hoster_arg("h1=1.2.3.4:5").unwrap();
        assert_eq!(generated.password.as_deref().map(str::len), Some(32));

        let secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeZ";
        let broken = format!("master_key = \"{secret}\" extra\ndata_dir = \"d\"\n");
        let path = write(dir.path(), &broken);
        let err = format!("{:#}", ConfigFile::load(&path).err().unwrap());
        assert!(err.contains("line 1") && !err.contains(secret), "{err}");

        let ok = format!("master_key = \"{}\"\ndata_dir = \"d\"\n", "ab".repeat(32));
        let path = write(dir.path(), &ok);
        // Mode 0600 passes the check (what fails then is only the missing hosters).
        let err = format!("{:#}", ConfigFile::load(&path).err().unwrap());
        assert!(!err.contains("chmod") && !err.contains("abab"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = format!("{:#}", ConfigFile::load(&path).err().unwrap());
        assert!(err.contains("chmod 600") && !err.contains("abab"), "{err}");
    }
}
