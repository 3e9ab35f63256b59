//! Hoster lifecycle for `archiver hosters`: adding and removing config entries (the file is
//! replaced atomically and stays 0600), and draining: the request goes to the audit store, the
//! operations service moves the shards, and `drain` watches until the hoster holds none.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use archiver::audit::AuditLog;
use archiver::ops::{OpsService, SystemClock};
use archiver::ShardHost;

use crate::config_file::{self, ConfigFile};

/// How often a waiting `drain` or `rebalance` looks again: the service acts every second.
const DRAIN_POLL_MS: u64 = 500;

/// Adds the hoster `spec` (`archiver init --hoster` syntax) to the config and prepares its
/// namespaces. Returns the entry's name.
pub async fn add(config: &Path, spec: &str) -> Result<String> {
    let entry = config_file::parse_hoster_arg(spec)?;
    let mut loaded = ConfigFile::load(config)?;
    if loaded
        .file
        .archive
        .hosters
        .iter()
        .any(|h| h.name == entry.name)
    {
        bail!("{} already names a hoster {}", config.display(), entry.name);
    }
    let host = archiver::hosters::ZdbHost::new(&entry, loaded.file.client.options());
    host.prepare()
        .await
        .with_context(|| format!("prepare the namespaces on hoster {}", entry.name))?;
    let name = entry.name.clone();
    let layout = loaded.archive.layout();
    loaded.file.archive.hosters.push(entry);
    loaded.file.replace(config)?;
    // A hoster of that name drained and removed earlier must not stay avoided.
    if let Some(log) = AuditLog::open_existing(layout.root()).context("open audit store")? {
        log.withdraw_drain(&name)
            .context("withdraw an old drain request")?;
    }
    Ok(name)
}

/// The archive as the `hosters` commands see it: its store read beside the writer (a RocksDB
/// secondary, opened once and caught up per look) and its hosters.
pub struct ArchiveView {
    view: archiver::ReadOnlyArchive,
    hosters: archiver::HosterSet,
}

impl ArchiveView {
    pub fn open(config: &Path) -> Result<Self> {
        let loaded = ConfigFile::load(config)?;
        let hosters = loaded.hoster_set();
        Ok(Self {
            view: loaded.into_read_only(1)?,
            hosters,
        })
    }

    /// Dispersed shards whose current placement names `hoster`, and how many shards the hoster
    /// itself still lists (None when it does not answer).
    pub async fn shards_on(&self, hoster: &str) -> Result<(u64, Option<u64>)> {
        self.view.catch_up().context("refresh archive store")?;
        let store = self.view.store();
        let mut placed = 0;
        for segment in 0..store.dispersed_next().context("read dispersal watermark")? {
            if let Some(p) = store.placement(segment).context("read placement")? {
                placed += p.hosters.iter().flatten().filter(|h| *h == hoster).count() as u64;
            }
        }
        let listed = match self.hosters.get(hoster) {
            Some(h) => h.list_shards().await.ok().map(|l| l.len() as u64),
            None => Some(0),
        };
        Ok((placed, listed))
    }
}

/// Asks for `hoster` to be drained, then drives or watches the drain until the hoster holds no
/// shard. `progress` gets (placed, listed) whenever they change; a hoster that does not answer
/// is never drained.
pub async fn drain(
    config: &Path,
    hoster: &str,
    timeout: Duration,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<()> {
    let loaded = ConfigFile::load(config)?;
    if !loaded.archive.hosters.iter().any(|h| h.name == hoster) {
        bail!("{} names no hoster {hoster}", config.display());
    }
    AuditLog::open(loaded.archive.layout().root())
        .context("open audit store")?
        .request_drain(hoster, now_ms())
        .context("record the drain request")?;
    let mut driver = Driver::start(config, timeout)?;
    let view = ArchiveView::open(config)?;
    let mut last = None;
    loop {
        driver.pass().await;
        let counts = view.shards_on(hoster).await?;
        if last != Some(counts) {
            progress(counts.0, counts.1);
            last = Some(counts);
        }
        if counts == (0, Some(0)) {
            return Ok(());
        }
        if !driver.wait().await {
            bail!(
                "hoster {hoster} still holds shards after {} s (the drain goes on in the running \
                 service; run `archiver hosters drain {hoster}` again to watch)",
                timeout.as_secs()
            );
        }
    }
}

/// Asks for shards to be spread evenly over the hosters that answer (after `add`), then drives
/// or watches it until the service finds nothing left to move.
pub async fn rebalance(config: &Path, timeout: Duration) -> Result<()> {
    let root = ConfigFile::load(config)?
        .archive
        .layout()
        .root()
        .to_path_buf();
    AuditLog::open(&root)
        .context("open audit store")?
        .request_rebalance(now_ms())
        .context("record the rebalance request")?;
    let mut driver = Driver::start(config, timeout)?;
    loop {
        driver.pass().await;
        let log = AuditLog::open_read_only(&root).context("open audit store")?;
        if !log
            .map(|l| l.rebalance_requested())
            .transpose()?
            .unwrap_or(false)
        {
            return Ok(());
        }
        if !driver.wait().await {
            bail!(
                "rebalance not finished after {} s (it goes on in the running service)",
                timeout.as_secs()
            );
        }
    }
}

/// Who does the work of a request: the operations service run here when no process holds the
/// archive, else the running node, follower or `serve` (this process then only watches).
struct Driver {
    inline: Option<(OpsService, archiver::Archive)>,
    until: Instant,
}

impl Driver {
    fn start(config: &Path, timeout: Duration) -> Result<Self> {
        let inline = match config_file::open_archive(config) {
            Ok(archive) => Some(inline_service(archive)),
            Err(e) if is_held_elsewhere(&e) => None,
            Err(e) => return Err(e),
        };
        Ok(Self {
            inline,
            until: Instant::now() + timeout,
        })
    }

    /// One service pass, when the service runs here.
    async fn pass(&mut self) {
        if let Some((service, _archive)) = self.inline.as_mut() {
            service.pass().await;
        }
    }

    /// Pauses until the next look; false once the time is up.
    async fn wait(&self) -> bool {
        tokio::time::sleep(Duration::from_millis(DRAIN_POLL_MS)).await;
        Instant::now() < self.until
    }
}

/// Whether opening the archive failed because another process holds its RocksDB.
fn is_held_elsewhere(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("Resource temporarily unavailable") || text.contains("lock file")
}

/// The operations service over an archive this process opened (kept open beside it).
fn inline_service(archive: archiver::Archive) -> (OpsService, archiver::Archive) {
    let mut ops = archive.config().ops.clone();
    // Drain now: no audit rounds in between, GC as soon as shards moved.
    ops.audit_interval_ms = 0;
    let service = OpsService::for_archive(&archive, ops, Arc::new(SystemClock::new()));
    (service, archive)
}

/// Removes `hoster` from the config once no placement names it.
pub async fn remove(config: &Path, hoster: &str) -> Result<()> {
    let (placed, _) = ArchiveView::open(config)?.shards_on(hoster).await?;
    if placed > 0 {
        bail!(
            "hoster {hoster} still holds {placed} shards that placements name: drain it first \
             (`archiver hosters drain {hoster}`)"
        );
    }
    let mut loaded = ConfigFile::load(config)?;
    let before = loaded.file.archive.hosters.len();
    loaded.file.archive.hosters.retain(|h| h.name != hoster);
    if loaded.file.archive.hosters.len() == before {
        bail!("{} names no hoster {hoster}", config.display());
    }
    let layout = loaded.archive.layout();
    loaded.file.replace(config)?;
    if let Some(log) = AuditLog::open_existing(layout.root()).context("open audit store")? {
        log.withdraw_drain(hoster)
            .context("withdraw the drain request")?;
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
