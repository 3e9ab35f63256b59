//! The stateless history gateway: history served from the hosters alone (config + master key, no
//! data directory). It reads the manifest chain and each dispersed segment through the verified
//! read path (`RemoteArchive`, as restore and sync do) into a derived, disposable catalog — a
//! `Store` in a cache directory holding what the writer's store would (catalog, hash index,
//! sealed segments, manifests, placements, current state, the state-history index) — and follows
//! new segments as the writer disperses them. Blocks of the writer's open (undispersed) segment
//! are not visible until it is dispersed. Read-only towards the hosters and lock-free there, so
//! any number of gateways can run from one config.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use crate::error::{ArchiveError, Result};
use crate::history::HistoryReader;
use crate::keys::MasterKey;
use crate::manifest::Manifest;
use crate::metrics::ArchiveMetrics;
use crate::record::SEGMENT_HEADER_BYTES;
use crate::remote::{verify_link, RemoteArchive, SegmentMeta};
use crate::restore::verify_segment_blocks;
use crate::store::{Batch, Location, LogHead, SealedSegment, Store};

/// How often a gateway asks the hosters whether the next segment was dispersed: new history
/// shows up within this (plus one segment read) of its dispersal, at two small metadata reads per
/// hoster per poll.
pub const GATEWAY_POLL_INTERVAL_MS: u64 = 2_000;
/// Segments read from the hosters at once while cataloging: the next one is fetched while the
/// current one is checked and indexed, and memory stays near two segments whatever the history.
pub const GATEWAY_SEGMENTS_INFLIGHT: usize = 2;
/// The catalog's RocksDB inside the cache directory.
const CATALOG_DIR: &str = "catalog";
/// Beside it: the catalog layout version it was built with. Derived and disposable, a catalog of
/// another version is deleted and rebuilt from the hosters rather than migrated.
const CATALOG_VERSION_FILE: &str = "catalog.version";
/// 1: catalog, hash index, state, sealed segments, manifests, placements, watermarks; 2: plus
/// the state-history index (`specs/state-index.md`). Bump when any of those changes.
pub const CATALOG_VERSION: u32 = 2;
/// Name prefix of a default (per-run) cache directory; the archive identity follows.
const CACHE_DIR_PREFIX: &str = "archiver-gateway-";
/// Key-derivation context of the archive identity that names default cache directories.
const IDENTITY_CONTEXT: &str = "poa-archiver gateway cache directory v1";

/// What cataloging did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CatalogReport {
    pub segments: u64,
    pub blocks: u64,
    /// Wall time from the first read to the last commit.
    pub secs: f64,
}

/// Counters a server or a bench reads.
#[derive(Debug, Default)]
pub struct GatewayStats {
    pub segments_cataloged: AtomicU64,
    pub blocks_cataloged: AtomicU64,
    /// Time spent reading, checking and indexing segments, microseconds.
    pub catalog_micros: AtomicU64,
}

/// Where the catalog lives: a per-run directory removed on drop, or one the operator keeps.
#[derive(Debug)]
enum CacheDir {
    Fresh(tempfile::TempDir),
    Kept(PathBuf),
}

impl CacheDir {
    fn path(&self) -> &Path {
        match self {
            Self::Fresh(t) => t.path(),
            Self::Kept(p) => p,
        }
    }
}

/// A stateless gateway over the archive the config's hosters hold.
pub struct Gateway {
    store: Arc<Store>,
    remote: RemoteArchive,
    reader: Arc<HistoryReader>,
    /// One catalog writer at a time (the first catch-up and the follow loop).
    building: tokio::sync::Mutex<()>,
    pub stats: GatewayStats,
    // Last: the directory goes after the store that lives in it.
    dir: CacheDir,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("dir", &self.dir).finish()
    }
}

/// A short, non-secret name of the archive `key` opens (names default cache directories).
pub fn archive_identity(key: &MasterKey) -> String {
    hex::encode(&blake3::derive_key(IDENTITY_CONTEXT, &key.check_value())[..8])
}

/// The base of default cache directories: `$XDG_CACHE_HOME` when set, else the temp dir.
pub fn default_cache_base() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(std::env::temp_dir)
}

impl Gateway {
    /// Opens (or creates) the catalog in `cache_dir`, else in a fresh private directory under
    /// [`default_cache_base`] named by the archive identity and removed when the gateway drops.
    /// A kept directory must be private (0700) and belong to this archive.
    pub fn open(
        remote: RemoteArchive,
        cache_dir: Option<&Path>,
        cache_bytes: usize,
        metrics: Option<ArchiveMetrics>,
    ) -> Result<Self> {
        let dir = match cache_dir {
            Some(p) => CacheDir::Kept(private_dir(p)?),
            None => fresh_dir(&archive_identity(remote.key()))?,
        };
        let store = Store::open(&current_catalog(dir.path())?)?;
        store
            .check_master_key(&remote.key().check_value())
            .map_err(|e| match e {
                ArchiveError::WrongMasterKey { .. } => ArchiveError::Config {
                    field: "cache_dir".into(),
                    reason: format!(
                        "{} holds the catalog of another archive; use another directory or delete it",
                        dir.path().display()
                    ),
                },
                other => other,
            })?;
        // Segment files are never local here: the watermark below sends every read to the cache
        // or the hosters, so this directory is never read.
        let mut reader = HistoryReader::new(
            store.clone(),
            dir.path().into(),
            remote.clone(),
            cache_bytes,
        );
        if let Some(m) = metrics {
            reader = reader.with_metrics(m);
        }
        Ok(Self {
            store,
            remote,
            reader: Arc::new(reader),
            building: tokio::sync::Mutex::new(()),
            stats: GatewayStats::default(),
            dir,
        })
    }

    /// The catalog directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The derived catalog (what `rpc::Backend` and the mount read).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Blocks by number: the segment cache, else the hosters.
    pub fn reader(&self) -> &Arc<HistoryReader> {
        &self.reader
    }

    /// Segments cataloged so far (the next one to catalog).
    pub fn segments(&self) -> Result<u64> {
        self.store.dispersed_next()
    }

    /// Catalogs every segment the hosters hold beyond the catalog, in order: the newest head
    /// names how far to read; manifests past it are probed too (the freshest head may sit on a
    /// hoster that is down). Stops at the first segment that cannot be read, with its error;
    /// everything before it stays cataloged.
    pub async fn catch_up(&self) -> Result<CatalogReport> {
        let _writer = self.building.lock().await;
        let next = self.store.dispersed_next()?;
        let upto = match self.remote.head().await {
            Ok(head) => head.last_segment,
            // Hosters answer but hold no head under this key: nothing dispersed yet.
            Err(ArchiveError::NoMetadata { reachable, .. }) if reachable > 0 => next,
            Err(e) => return Err(e),
        };
        let started = Instant::now();
        let mut report = CatalogReport::default();
        if upto >= next {
            self.catalog_range(next, upto, &mut report).await?;
        }
        self.catalog_probing(&mut report).await?;
        if report.segments > 0 {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.flush())
                .await
                .map_err(|e| ArchiveError::Task(e.to_string()))??;
        }
        report.secs = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// One poll: when the next segment's manifest is on the hosters, catalogs it and whatever
    /// followed it. Cheap when nothing is new (two metadata reads per hoster).
    pub async fn poll(&self) -> Result<CatalogReport> {
        let next = self.store.dispersed_next()?;
        if self.remote.segment_meta_opt(next).await?.is_none() {
            return Ok(CatalogReport::default());
        }
        self.catch_up().await
    }

    /// Polls every `interval_ms` until the task is aborted; failures are logged and retried.
    pub fn spawn_follow(self: &Arc<Self>, interval_ms: u64) -> tokio::task::JoinHandle<()> {
        let gateway = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match gateway.poll().await {
                    Ok(r) if r.segments > 0 => tracing::info!(
                        segments = r.segments,
                        blocks = r.blocks,
                        "gateway cataloged newly dispersed segments"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "gateway: following the hosters (retrying)")
                    }
                }
            }
        })
    }

    /// Catalogs segments `first..=last`, reading ahead `GATEWAY_SEGMENTS_INFLIGHT`; a segment
    /// no reachable hoster has metadata for ends the range quietly (dispersal still under way).
    async fn catalog_range(&self, first: u64, last: u64, report: &mut CatalogReport) -> Result<()> {
        let mut reads = stream::iter(first..=last)
            .map(|segment| {
                let remote = self.remote.clone();
                AbortOnDrop(tokio::spawn(
                    async move { read_segment(&remote, segment).await },
                ))
            })
            .buffered(GATEWAY_SEGMENTS_INFLIGHT);
        while let Some(joined) = reads.next().await {
            let read = joined.map_err(|e| ArchiveError::Task(e.to_string()))?;
            let Some((meta, plain, started)) = read? else {
                break;
            };
            self.catalog(meta, plain, started, report).await?;
        }
        Ok(())
    }

    /// Catalogs segments one by one for as long as the hosters hold the next one.
    async fn catalog_probing(&self, report: &mut CatalogReport) -> Result<()> {
        loop {
            let next = self.store.dispersed_next()?;
            match read_segment(&self.remote, next).await? {
                Some((meta, plain, started)) => self.catalog(meta, plain, started, report).await?,
                None => return Ok(()),
            }
        }
    }

    /// Checks one segment against the chain and commits its catalog entries (one batch, so a
    /// crash leaves it cataloged whole or not at all), then offers it to the segment cache.
    async fn catalog(
        &self,
        meta: SegmentMeta,
        plain: Vec<u8>,
        started: Instant,
        report: &mut CatalogReport,
    ) -> Result<()> {
        let store = self.store.clone();
        let segment = meta.manifest.segment;
        let plain = Arc::new(plain);
        let blocks = {
            let plain = plain.clone();
            tokio::task::spawn_blocking(move || catalog_segment(&store, &meta, &plain))
                .await
                .map_err(|e| ArchiveError::Task(e.to_string()))??
        };
        self.reader.cache_segment(segment, plain);
        let micros = started.elapsed().as_micros() as u64;
        self.stats
            .segments_cataloged
            .fetch_add(1, Ordering::Relaxed);
        self.stats
            .blocks_cataloged
            .fetch_add(blocks, Ordering::Relaxed);
        self.stats
            .catalog_micros
            .fetch_add(micros, Ordering::Relaxed);
        report.segments += 1;
        report.blocks += blocks;
        Ok(())
    }
}

/// A spawned read that stops when its handle is dropped: a catch-up that ends early (an error,
/// the gateway shutting down) leaves no segment read running behind it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = std::result::Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Segment `segment`'s metadata and verified plaintext, with when its read started; `None` when
/// no reachable hoster has its manifest (not dispersed yet).
async fn read_segment(
    remote: &RemoteArchive,
    segment: u64,
) -> Result<Option<(SegmentMeta, Vec<u8>, Instant)>> {
    let started = Instant::now();
    let Some(meta) = remote.segment_meta_opt(segment).await? else {
        return Ok(None);
    };
    let (plain, _) = remote.read_segment(&meta).await?;
    Ok(Some((meta, plain, started)))
}

/// Verifies `meta` follows the catalog's last manifest and its blocks match it, then writes what
/// the writer's store holds for a dispersed, locally pruned segment. Returns the block count.
fn catalog_segment(store: &Store, meta: &SegmentMeta, plain: &[u8]) -> Result<u64> {
    let m = &meta.manifest;
    let next = store.dispersed_next()?;
    let prev: Option<Manifest> = match next {
        0 => None,
        n => Some(
            store
                .manifest(n - 1)?
                .ok_or_else(|| ArchiveError::DbCorrupt {
                    context: "gateway catalog",
                    reason: format!("segment {} is cataloged without its manifest", n - 1),
                })?,
        ),
    };
    if m.segment != next {
        return Err(ArchiveError::ManifestChain {
            segment: m.segment,
            reason: format!("the catalog expects segment {next} next"),
        });
    }
    verify_link(prev.as_ref(), m)?;
    let records = verify_segment_blocks(meta, plain, prev.map(|p| p.last_hash))?;
    let mut batch = Batch::default();
    let mut offset = SEGMENT_HEADER_BYTES as u64;
    for rec in &records {
        let len = rec.encoded_len() as u64;
        let loc = Location {
            segment: m.segment,
            offset,
            len: len as u32,
            hash: rec.hash,
        };
        store.put_location(&mut batch, rec.number, &loc)?;
        for change in &rec.changes {
            store.put_state(&mut batch, &change.key, change.value.as_deref())?;
        }
        store.index_state_changes(&mut batch, rec.number, &rec.changes)?;
        offset += len;
    }
    if offset != plain.len() as u64 {
        return Err(ArchiveError::SegmentCorrupt {
            segment: m.segment,
            reason: format!("records end at byte {offset} of {}", plain.len()),
        });
    }
    put_segment_records(store, &mut batch, meta)?;
    store.commit(batch)?;
    Ok(records.len() as u64)
}

/// The segment's sealed record, manifest, placement and the watermarks that make it the newest
/// dispersed, locally pruned segment with no open one after it.
fn put_segment_records(store: &Store, batch: &mut Batch, meta: &SegmentMeta) -> Result<()> {
    let m = &meta.manifest;
    store.put_sealed(
        batch,
        &SealedSegment {
            segment: m.segment,
            first_number: m.first_number,
            last_number: m.last_number,
            first_hash: m.first_hash,
            last_hash: m.last_hash,
            bytes: m.segment_bytes,
            segment_hash: m.segment_hash,
            blocks_root: m.blocks_root,
        },
    )?;
    store.put_manifest(batch, m)?;
    store.put_placement(batch, &meta.placement)?;
    store.put_dispersed_next(batch, m.segment + 1)?;
    store.put_local_segments_pruned_below(batch, m.segment + 1)?;
    let head = LogHead {
        last: Some((m.last_number, m.last_hash)),
        next_segment: m.segment + 1,
        active: None,
    };
    store.put_log_head(batch, &head)
}

/// Creates `path` as a private directory, or checks an existing one is private: the catalog
/// holds decrypted chain state and manifests.
fn private_dir(path: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let io = |context, e| ArchiveError::io(context, path, e);
    if !path.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| io("create cache directory", e))?;
    }
    let meta = std::fs::metadata(path).map_err(|e| io("inspect cache directory", e))?;
    if !meta.is_dir() {
        return Err(ArchiveError::Config {
            field: "cache_dir".into(),
            reason: format!("{} is not a directory", path.display()),
        });
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(ArchiveError::Config {
            field: "cache_dir".into(),
            reason: format!(
                "{} is readable by other users (the catalog holds decrypted chain data); chmod 700 it",
                path.display()
            ),
        });
    }
    Ok(path.to_path_buf())
}

/// The catalog directory under `dir`, emptied first when it was built with another
/// `CATALOG_VERSION` (or none); the version is recorded before the catalog is (re)built.
fn current_catalog(dir: &Path) -> Result<PathBuf> {
    let catalog = dir.join(CATALOG_DIR);
    let version_file = dir.join(CATALOG_VERSION_FILE);
    let wanted = CATALOG_VERSION.to_string();
    let found = std::fs::read_to_string(&version_file).ok();
    if found.as_deref().map(str::trim) != Some(wanted.as_str()) {
        if catalog.exists() {
            tracing::warn!(dir = %catalog.display(), ?found, "gateway catalog of another version: rebuilding it");
            std::fs::remove_dir_all(&catalog)
                .map_err(|e| ArchiveError::io("remove outdated catalog", &catalog, e))?;
        }
        std::fs::write(&version_file, &wanted)
            .map_err(|e| ArchiveError::io("write catalog version", &version_file, e))?;
    }
    Ok(catalog)
}

/// A new 0700 directory under the default base, named by the archive identity.
fn fresh_dir(identity: &str) -> Result<CacheDir> {
    use std::os::unix::fs::PermissionsExt as _;
    let base = default_cache_base();
    std::fs::create_dir_all(&base)
        .map_err(|e| ArchiveError::io("create cache base directory", &base, e))?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("{CACHE_DIR_PREFIX}{identity}-"))
        .tempdir_in(&base)
        .map_err(|e| ArchiveError::io("create cache directory in", &base, e))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| ArchiveError::io("make private", dir.path(), e))?;
    Ok(CacheDir::Fresh(dir))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::{BlockRecord, StateChange};

    fn record(number: u64, parent: [u8; 32]) -> BlockRecord {
        let block = vec![number as u8; 900];
        BlockRecord {
            number,
            hash: *blake3::hash(&[&number.to_le_bytes()[..], &parent, &block].concat()).as_bytes(),
            parent_hash: parent,
            block,
            justification: number.is_multiple_of(3).then(|| vec![7; 40]),
            changes: vec![
                StateChange {
                    key: format!("k{}", number % 4).into_bytes(),
                    value: Some(number.to_le_bytes().to_vec()),
                },
                StateChange {
                    key: b"gone".to_vec(),
                    value: number.is_multiple_of(2).then(|| vec![1]),
                },
            ],
        }
    }

    /// A writer archive on in-memory hosters with `blocks` appended and dispersed (segments of
    /// about 10 blocks), every local segment file pruned.
    struct Writer {
        _dir: tempfile::TempDir,
        archive: crate::Archive,
        parent: [u8; 32],
        next: u64,
        remote: RemoteArchive,
        hosts: Vec<Arc<crate::testing::MemoryHost>>,
    }

    impl Writer {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let (hosts, entries, set) = crate::testing::memory_hosters(6);
            let mut cfg = crate::ArchiveConfig::new(dir.path().join("data"), entries);
            (cfg.data_shards, cfg.parity_shards) = (4, 2);
            cfg.durability = crate::Durability::Os;
            cfg.segment_size_bytes = crate::config::SEGMENT_SIZE_BYTES_MIN;
            let key = MasterKey::from_bytes([9; 32]);
            let remote = RemoteArchive::new(Arc::new(MasterKey::from_bytes([9; 32])), set.clone());
            let archive = crate::Archive::open(cfg, key, set).unwrap();
            Self {
                _dir: dir,
                archive,
                parent: [0; 32],
                next: 0,
                remote,
                hosts,
            }
        }

        /// Appends `n` blocks, seals and disperses what sealed.
        async fn append(&mut self, n: u64, seal: bool) {
            for _ in 0..n {
                let r = record(self.next, self.parent);
                self.parent = r.hash;
                self.next += 1;
                self.archive.log_mut().append(&r).unwrap();
            }
            if seal {
                self.archive.log_mut().seal_active().unwrap();
            }
            self.archive.disperse_pending().await.unwrap();
        }
    }

    /// From the hosters alone the catalog holds what the writer's store does for every dispersed
    /// block (locations, hashes, current state, manifests), blocks read back byte for byte, and
    /// segments dispersed later are picked up by a poll; the open segment stays invisible.
    #[tokio::test]
    async fn catalogs_from_the_hosters_and_follows_new_segments() {
        let mut w = Writer::new();
        w.append(250, true).await;
        let dir = tempfile::tempdir().unwrap();
        let gw =
            Gateway::open(w.remote.clone(), Some(&dir.path().join("c")), 1 << 20, None).unwrap();
        let r = gw.catch_up().await.unwrap();
        let writer_store = w.archive.store().clone();
        let sealed = writer_store.sealed_all().unwrap();
        assert_eq!(r.segments, sealed.len() as u64);
        assert_eq!(r.blocks, 250);
        assert!(sealed.len() > 3, "{} segments", sealed.len());
        for n in [0u64, 1, 17, 123, 249] {
            assert_eq!(
                gw.store().location(n).unwrap(),
                writer_store.location(n).unwrap()
            );
            let got = gw.reader().block(n).await.unwrap().unwrap();
            assert_eq!(got, record_at(&w, n).await);
        }
        for k in [&b"k0"[..], b"k1", b"k2", b"k3", b"gone"] {
            assert_eq!(gw.store().state(k).unwrap(), writer_store.state(k).unwrap());
        }
        assert_eq!(
            gw.store().log_head().unwrap().last,
            writer_store.log_head().unwrap().last
        );
        assert_eq!(
            gw.store().manifest(1).unwrap(),
            writer_store.manifest(1).unwrap()
        );
        assert_eq!(gw.store().sealed_all().unwrap(), sealed);

        // New blocks: the open segment's are not visible; once dispersed, a poll shows them.
        w.append(40, false).await;
        assert_eq!(gw.poll().await.unwrap().segments, 0);
        assert!(gw.store().location(289).unwrap().is_none());
        w.append(0, true).await;
        let r = gw.poll().await.unwrap();
        assert!(r.segments >= 1 && r.blocks >= 40, "{r:?}");
        assert_eq!(
            gw.store().location(289).unwrap(),
            writer_store.location(289).unwrap()
        );
        assert_eq!(
            gw.reader().block(289).await.unwrap().unwrap(),
            record_at(&w, 289).await
        );
        // A cleared cache and two hosters down: blocks still come from the other four.
        gw.reader().clear_cache();
        w.hosts[0].set_down(true);
        w.hosts[3].set_down(true);
        assert_eq!(
            gw.reader().block(5).await.unwrap().unwrap(),
            record_at(&w, 5).await
        );
    }

    /// With more than m hosters down a new segment cannot be read: cataloging stops before it
    /// with an error naming it, what was cataloged stays, and a later poll picks it up.
    #[tokio::test]
    async fn an_unreadable_segment_waits_for_the_next_poll() {
        let mut w = Writer::new();
        w.append(100, true).await;
        let dir = tempfile::tempdir().unwrap();
        let gw = Gateway::open(w.remote.clone(), Some(&dir.path().join("c")), 0, None).unwrap();
        gw.catch_up().await.unwrap();
        let before = gw.segments().unwrap();
        w.append(60, true).await;
        for h in &w.hosts[..3] {
            h.set_down(true);
        }
        let e = gw.poll().await.unwrap_err();
        assert!(
            matches!(e, ArchiveError::NotEnoughShards { segment, .. } if segment == before),
            "{e}"
        );
        assert_eq!(gw.segments().unwrap(), before);
        assert!(gw.store().location(99).unwrap().is_some());
        assert!(gw.store().location(100).unwrap().is_none());
        for h in &w.hosts[..3] {
            h.set_down(false);
        }
        let r = gw.poll().await.unwrap();
        assert_eq!(r.blocks, 60, "{r:?}");
        assert_eq!(
            gw.reader().block(159).await.unwrap().unwrap(),
            record_at(&w, 159).await
        );
    }

    async fn record_at(w: &Writer, n: u64) -> BlockRecord {
        let reader = HistoryReader::new(
            w.archive.store().clone(),
            w.archive.log().dir().to_path_buf(),
            w.remote.clone(),
            1 << 20,
        );
        reader.block(n).await.unwrap().unwrap()
    }

    /// A kept cache directory resumes where it stopped, refuses another archive's catalog and a
    /// directory other users can read; a default one is private and goes away with the gateway.
    #[tokio::test]
    async fn cache_directories_resume_are_private_and_refuse_another_archive() {
        use std::os::unix::fs::PermissionsExt as _;
        let mut w = Writer::new();
        w.append(60, true).await;
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept");
        let first = {
            let gw = Gateway::open(w.remote.clone(), Some(&kept), 1 << 20, None).unwrap();
            gw.catch_up().await.unwrap()
        };
        assert!(first.segments > 0);
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        w.append(30, true).await;
        let gw = Gateway::open(w.remote.clone(), Some(&kept), 1 << 20, None).unwrap();
        let second = gw.catch_up().await.unwrap();
        assert_eq!(
            second.blocks, 30,
            "resumed after the {} cataloged",
            first.blocks
        );
        drop(gw);

        // A catalog of another layout version is rebuilt from scratch.
        std::fs::write(kept.join(CATALOG_VERSION_FILE), "0").unwrap();
        let gw = Gateway::open(w.remote.clone(), Some(&kept), 1 << 20, None).unwrap();
        assert_eq!(gw.segments().unwrap(), 0);
        assert_eq!(gw.catch_up().await.unwrap().blocks, 90);
        drop(gw);

        let other = RemoteArchive::new(
            Arc::new(MasterKey::from_bytes([1; 32])),
            w.remote.hosters().clone(),
        );
        let e = Gateway::open(other, Some(&kept), 1 << 20, None).unwrap_err();
        assert!(e.to_string().contains("another archive"), "{e}");

        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = Gateway::open(w.remote.clone(), Some(&open), 1 << 20, None).unwrap_err();
        assert!(e.to_string().contains("chmod 700"), "{e}");

        let gw = Gateway::open(w.remote.clone(), None, 1 << 20, None).unwrap();
        let fresh = gw.dir().to_path_buf();
        let name = fresh.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&format!(
                "{CACHE_DIR_PREFIX}{}-",
                archive_identity(w.remote.key())
            )),
            "{name}"
        );
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(gw.catch_up().await.unwrap().blocks, 90);
        drop(gw);
        assert!(!fresh.exists());
    }
}
