//! A set of embedded hosters run as child processes of this binary (`archiver hoster`), each on its
//! own loopback port and data directory: what `demo` and `bench` disperse to, and what they kill.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};
use archiver::config::HosterEntry;

use crate::config_file::{self, ConfigFile};

/// Log filter of the hoster children: errors only (they run on loopback without an admin
/// password, warned about once per start, and demo/bench kill them on purpose), unless the caller
/// set `RUST_LOG`.
fn child_log_filter() -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| "error".to_owned())
}

/// One hoster child process.
pub struct HosterProcess {
    pub name: String,
    pub address: String,
    pub domain: String,
    pub data_dir: PathBuf,
    /// The hoster's challenge identity (hex public key), as it printed it.
    pub public_key: Option<String>,
    /// The hoster's admin password (handed to it in its environment, never on its command line).
    pub admin_password: String,
    /// The archive's namespace password on this hoster (private namespaces).
    pub namespace_password: String,
    child: Option<Child>,
}

impl HosterProcess {
    pub fn entry(&self) -> HosterEntry {
        HosterEntry {
            name: self.name.clone(),
            address: self.address.clone(),
            namespace: "poa-archive".into(),
            password: Some(self.namespace_password.clone()),
            admin_password: Some(self.admin_password.clone()),
            domain: self.domain.clone(),
            public_key: self.public_key.clone(),
            prover: None,
        }
    }

    /// SIGKILL, as a crashed machine would go: no flush, no goodbye.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .with_context(|| format!("kill hoster {}", self.name))?;
            child
                .wait()
                .with_context(|| format!("reap hoster {}", self.name))?;
        }
        Ok(())
    }

    /// Starts a killed hoster again on the same address and data directory.
    pub fn restart(&mut self, exe: &Path) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let mut child = Command::new(exe)
            .args(["hoster", "--listen", &self.address, "--data"])
            .arg(&self.data_dir)
            .env(config_file::ADMIN_PASSWORD_ENV, &self.admin_password)
            .env("RUST_LOG", child_log_filter())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("restart hoster process")?;
        let stdout = child.stdout.take().context("hoster stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).context("read hoster address")?;
        if !line.starts_with("listening on ") {
            let _ = child.kill();
            bail!("hoster {} did not restart (said {line:?})", self.name);
        }
        // Its identity line follows; read it so the hoster never writes into a closed pipe.
        let mut id_line = String::new();
        reader.read_line(&mut id_line).context("read hoster id")?;
        self.child = Some(child);
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for HosterProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Starts `n` hosters under `dir`, spread over `domains` failure domains (round robin), running
/// `exe hoster …` (`exe` = the `archiver` binary).
pub fn start_hosters(
    exe: &Path,
    dir: &Path,
    n: usize,
    domains: usize,
) -> Result<Vec<HosterProcess>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let data_dir = dir.join(format!("hoster-{i}"));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("create {}", data_dir.display()))?;
        let admin_password = crate::secrets::generate_password();
        let mut child = Command::new(exe)
            .args(["hoster", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data_dir)
            .env(config_file::ADMIN_PASSWORD_ENV, &admin_password)
            .env("RUST_LOG", child_log_filter())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start hoster process")?;
        let stdout = child.stdout.take().context("hoster stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).context("read hoster address")?;
        let Some(address) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            bail!("hoster {i} did not report its address (said {line:?})");
        };
        let address = address.to_string();
        let mut id_line = String::new();
        reader.read_line(&mut id_line).context("read hoster id")?;
        let public_key = id_line
            .trim()
            .strip_prefix("hoster id 0x")
            .map(str::to_string);
        out.push(HosterProcess {
            name: format!("h{i}"),
            address,
            public_key,
            domain: format!("site-{}", (b'a' + (i % domains.max(1)) as u8) as char),
            data_dir,
            admin_password,
            namespace_password: crate::secrets::generate_password(),
            child: Some(child),
        });
    }
    Ok(out)
}

/// Writes a config for a local cluster and returns its path.
pub fn write_cluster_config(
    dir: &Path,
    hosters: &[HosterProcess],
    k: usize,
    m: usize,
    segment_size_bytes: u64,
) -> Result<PathBuf> {
    let path = dir.join("archiver.toml");
    let mut archive = archiver::ArchiveConfig::new(
        "node".into(),
        hosters.iter().map(HosterProcess::entry).collect(),
    );
    archive.segment_size_bytes = segment_size_bytes;
    archive.data_shards = k;
    archive.parity_shards = m;
    let file = ConfigFile::new(
        archiver::MasterKey::generate().to_hex().to_string(),
        archive,
        archiver::ClientConfig::default(),
    );
    file.write_new(&path)?;
    Ok(path)
}

/// A running local cluster: hoster processes, the config that names them, and the archive opened on
/// it with the hosters' namespaces prepared.
pub struct LocalCluster {
    pub hosters: Vec<HosterProcess>,
    pub config: PathBuf,
    pub archive: archiver::Archive,
}

/// Name of the `archiver` binary, which the benches find beside their own.
const ARCHIVER_EXE_NAME: &str = "archiver";

/// The `archiver` binary whose `hoster` command the clusters run: this executable when it is
/// `archiver` (`demo`), else the `archiver` beside it (`archiver-bench` in the same target dir).
pub fn archiver_exe() -> Result<PathBuf> {
    let own = std::env::current_exe().context("find own executable")?;
    if own.file_stem().is_some_and(|n| n == ARCHIVER_EXE_NAME) {
        return Ok(own);
    }
    let beside = own.with_file_name(ARCHIVER_EXE_NAME);
    if !beside.exists() {
        bail!(
            "{} not found beside {}: build it with `cargo build -p archiver-cli`",
            beside.display(),
            own.display()
        );
    }
    Ok(beside)
}

/// Starts `n` hosters (the `archiver` binary's `hoster` command) over `domains` failure domains under
/// `dir`, writes a k+m config for them and opens the archive.
pub async fn start_cluster(
    dir: &Path,
    n: usize,
    domains: usize,
    k: usize,
    m: usize,
) -> Result<LocalCluster> {
    let exe = archiver_exe()?;
    let hosters = start_hosters(&exe, &dir.join("hosters"), n, domains)?;
    let config = write_cluster_config(
        dir,
        &hosters,
        k,
        m,
        archiver::config::SEGMENT_SIZE_BYTES_DEFAULT,
    )?;
    let archive = config_file::open_archive(&config)?;
    if let Some((name, e)) = archive.prepare_hosters().await.into_iter().next() {
        bail!("hoster {name} could not be prepared: {e}");
    }
    Ok(LocalCluster {
        hosters,
        config,
        archive,
    })
}
