//! The `archiver` config file (TOML): master key, archive parameters, client tuning and hosters.
//! Unknown keys are refused so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use archiver::config::{ArchiveConfig, ClientConfig, HosterEntry};
use archiver::MasterKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::secrets::read_secret_file;

/// The whole file: the master key, the archive's own settings (`archiver::ArchiveConfig`, flattened
/// to the top level, with its defaults) and the client tuning (`[client]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigFile {
    /// 64 hex digits. Everything (segment keys, storage key names, metadata key) derives from it:
    /// whoever has it can read the archive, whoever loses it cannot.
    pub master_key: String,
    /// Segment size, k+m, durability, compression, hosters; `data_dir` is relative to the config
    /// file when relative.
    #[serde(flatten)]
    pub archive: ArchiveConfig,
    #[serde(default)]
    pub client: ClientConfig,
    /// Keys neither of the above knows. serde's `deny_unknown_fields` does not combine with
    /// `flatten`, so they are collected here and refused after parsing.
    #[serde(flatten, skip_serializing)]
    unknown: BTreeMap<String, toml::Value>,
}

/// A loaded, validated config.
pub struct Loaded {
    pub file: ConfigFile,
    pub archive: ArchiveConfig,
    pub key: MasterKey,
}

impl ConfigFile {
    /// A config to write: the key, the archive's settings and the client tuning.
    pub fn new(master_key: String, archive: ArchiveConfig, client: ClientConfig) -> Self {
        Self {
            master_key,
            archive,
            client,
            unknown: BTreeMap::new(),
        }
    }

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
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            // serde buffers flattened values, so an error inside the archive settings comes
            // without its key's position; the same text read as `ArchiveConfig` alone (which
            // skips the keys it does not know) locates it.
            let located = toml::from_str::<ArchiveConfig>(text)
                .err()
                .filter(|e| on_one_line(text, e))
                .unwrap_or(e);
            redacted_parse_error(path, text, &located)
        })?;
        if let Some(key) = file.unknown.keys().next() {
            // Only the key is named: its value may be a misplaced secret.
            bail!(
                "parse config {}: unknown key `{key}` (a typo would otherwise fall back to a default)",
                path.display()
            );
        }
        let key = MasterKey::from_hex(&file.master_key)
            .with_context(|| format!("config {}: master_key", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut archive = file.archive.clone();
        if archive.data_dir.is_relative() {
            archive.data_dir = base.join(&file.archive.data_dir);
        }
        archive
            .validate()
            .and_then(|()| file.client.validate())
            .with_context(|| format!("config {}", path.display()))?;
        Ok(Loaded { file, archive, key })
    }

    /// Writes the config with mode 0600 (it holds the master key). Refuses to overwrite.
    pub fn write_new(&self, path: &Path) -> Result<()> {
        self.write_to(path)
            .with_context(|| format!("create config {} (it must not exist yet)", path.display()))?;
        sync_parent(path)
    }

    /// Replaces the config at `path` with this one atomically: written to a private file beside
    /// it, synced, renamed over it. A crash leaves the old file or the new one, never half of one.
    pub fn replace(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("toml.new");
        let _ = std::fs::remove_file(&tmp);
        self.write_to(&tmp)
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("replace config {}", path.display()))?;
        sync_parent(path)
    }

    /// Writes a new file of mode 0600 (refusing an existing one) and syncs it.
    fn write_to(&self, path: &Path) -> Result<()> {
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
            .context("create file")?;
        f.write_all(header.as_bytes())
            .and_then(|_| f.write_all(text.as_bytes()))
            .and_then(|_| f.sync_all())
            .with_context(|| format!("write config {}", path.display()))
    }
}

/// The master key exists nowhere else: the file and its name must survive a power cut.
fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("sync directory {}", dir.display()))
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
        namespace: archiver::config::NAMESPACE_DEFAULT.into(),
        password: None,
        admin_password: std::env::var(ADMIN_PASSWORD_ENV)
            .ok()
            .filter(|p| !p.is_empty()),
        domain: archiver::config::DOMAIN_DEFAULT.into(),
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

/// Whether a TOML error points at one value (its span lies on one line) rather than a table.
fn on_one_line(text: &str, e: &toml::de::Error) -> bool {
    e.span()
        .and_then(|span| text.get(span))
        .is_some_and(|spanned| !spanned.contains('\n'))
}

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

impl Loaded {
    /// The archive opened read-only beside its writer (a RocksDB secondary: no lock taken), with a
    /// history read cache of `cache_mib`; the view keeps the key (`remote().key()`).
    pub fn into_read_only(self, cache_mib: usize) -> Result<archiver::ReadOnlyArchive> {
        self.into_read_only_with(cache_mib, None)
    }

    /// [`into_read_only`](Self::into_read_only), the reader's cache counted into `metrics`.
    pub fn into_read_only_with(
        self,
        cache_mib: usize,
        metrics: Option<archiver::ArchiveMetrics>,
    ) -> Result<archiver::ReadOnlyArchive> {
        let hosters = self.hoster_set();
        archiver::ReadOnlyArchive::open_with_metrics(
            &self.archive,
            std::sync::Arc::new(self.key),
            hosters,
            cache_mib.saturating_mul(1024 * 1024),
            metrics,
        )
        .context("open archive store (read-only)")
    }
}

/// [`Loaded::into_read_only`] of the config at `config`: what mount, rpc and the benches read.
pub fn open_read_only(config: &Path, cache_mib: usize) -> Result<archiver::ReadOnlyArchive> {
    ConfigFile::load(config)?.into_read_only(cache_mib)
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
    use std::path::PathBuf;

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
        let file = ConfigFile::new(
            MasterKey::generate().to_hex().to_string(),
            ArchiveConfig::new("data".into(), hosters),
            ClientConfig::default(),
        );
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

    /// The flattened archive settings keep the refusals and the defaults of one place: a typo at
    /// the top or in a table is named, a bad value names its key and never a secret, and what is
    /// left out takes `archiver::config`'s defaults.
    #[test]
    fn flattened_config_refuses_typos_names_bad_values_and_takes_the_one_set_of_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let hosters: String = (0..6)
            .map(|i| {
                format!("[[hosters]]\nname = \"h{i}\"\naddress = \"127.0.0.1:{}\"\npassword = \"hunter{i}\"\n", 9000 + i)
            })
            .collect();
        let base = format!("master_key = \"{}\"\ndata_dir = \"d\"\n", "ab".repeat(32));
        let load = |text: String| ConfigFile::load(&write(dir.path(), &text));

        let loaded = load(format!("{base}{hosters}")).unwrap();
        assert_eq!(loaded.archive, {
            let mut c = ArchiveConfig::new(dir.path().join("d"), loaded.archive.hosters.clone());
            c.data_dir = dir.path().join("d");
            c
        });
        assert_eq!(loaded.file.client, ClientConfig::default());
        assert_eq!(
            loaded.archive.hosters[0].namespace,
            archiver::config::NAMESPACE_DEFAULT
        );
        assert_eq!(
            loaded.file.client.options().request_timeout_ms,
            archiver::config::REQUEST_TIMEOUT_MS_DEFAULT
        );

        let err = format!(
            "{:#}",
            load(format!("{base}min_parit = 1\n{hosters}"))
                .err()
                .unwrap()
        );
        assert!(err.contains("unknown key `min_parit`"), "{err}");
        let err = format!(
            "{:#}",
            load(format!("{base}[client]\nrequest_timeout = 5\n{hosters}"))
                .err()
                .unwrap()
        );
        assert!(err.contains("request_timeout"), "{err}");
        let err = format!(
            "{:#}",
            load(format!("{base}{hosters}colour = \"red\"\n"))
                .err()
                .unwrap()
        );
        assert!(err.contains("colour") && !err.contains("hunter"), "{err}");
        let err = format!(
            "{:#}",
            load(format!("{base}data_shards = \"four\"\n{hosters}"))
                .err()
                .unwrap()
        );
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains("abab") && !err.contains("hunter"), "{err}");
        let err = format!(
            "{:#}",
            load(format!(
                "{base}[client]\nconnections_per_hoster = 0\n{hosters}"
            ))
            .err()
            .unwrap()
        );
        assert!(err.contains("client.connections_per_hoster"), "{err}");

        // What `init` writes loads back to the same config.
        let path = dir.path().join("again.toml");
        loaded.file.write_new(&path).unwrap();
        let again = ConfigFile::load(&path).unwrap();
        assert_eq!(again.archive, loaded.archive);
        assert_eq!(again.file.client, loaded.file.client);
    }
}
