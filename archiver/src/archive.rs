//! The archive as a validator runs it: the local block log plus dispersal of sealed segments to the
//! hosters, status and repair. Restore from hosters alone is in `restore`.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::codec::{self, EncodedSegment, SegmentIdentity};
use crate::config::{ArchiveConfig, Compression};
use crate::error::{ArchiveError, Result};
use crate::fs::{FileLayer, OsFiles};
use crate::hosters::{HosterSet, ShardHost};
use crate::keys::MasterKey;
use crate::log::{segment_file_name, BlockLog};
use crate::manifest::{
    seal_head, seal_metadata, Head, Manifest, Placement, COMPRESSION_NONE, COMPRESSION_ZSTD,
};
use crate::remote::{timed, RemoteArchive, SegmentMeta};
use crate::store::{Batch, SealedSegment, Store};

/// Encoded segments queued between the encoder and the uploader. Each holds (k+m)/k × the segment
/// size; one queued + one encoding + one uploading keeps the disperser's memory near
/// 3 × 1.5 × 32 MiB for the default config while both cores stay busy.
pub const DISPERSAL_QUEUE_SEGMENTS: usize = 1;

/// Shard buffers kept for reuse between segments: one segment's worth. Fresh memory costs a page
/// fault per 4 KiB, as much as a codec stage on a VM; more kept buffers would only raise RSS.
pub type ShardPool = Arc<std::sync::Mutex<Vec<Vec<u8>>>>;

/// What one dispersal pass did.
#[derive(Clone, Debug, Default)]
pub struct DispersalReport {
    pub segments: Vec<u64>,
    pub bytes_plain: u64,
    pub bytes_stored: u64,
    /// Segments stored with fewer than k+m shards.
    pub under_replicated: Vec<u64>,
}

/// What a repair pass did.
#[derive(Clone, Debug, Default)]
pub struct RepairReport {
    pub segments_checked: u64,
    pub shards_checked: u64,
    /// (segment, shard, new hoster)
    pub repaired: Vec<(u64, usize, String)>,
    /// Segments still short of k+m shards (no eligible hoster, or a failure).
    pub still_under_replicated: Vec<(u64, String)>,
}

/// A local archive bound to its hosters.
pub struct Archive {
    log: BlockLog,
    disperser: Disperser,
}

/// Moves sealed segments to the hosters and keeps them there (dispersal, repair). Cheap to clone
/// and independent of the log, so dispersal can run in the background while blocks are appended.
/// One dispersal or repair runs at a time.
#[derive(Clone)]
pub struct Disperser {
    inner: Arc<DisperserInner>,
}

struct DisperserInner {
    cfg: ArchiveConfig,
    key: Arc<MasterKey>,
    store: Arc<Store>,
    segments_dir: std::path::PathBuf,
    remote: RemoteArchive,
    pool: ShardPool,
    lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Disperser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Disperser")
    }
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive").field("log", &self.log).finish()
    }
}

impl Archive {
    /// Opens (or creates) the local archive in `cfg.data_dir`, recovering the log after a crash.
    pub fn open(cfg: ArchiveConfig, key: MasterKey, hosters: HosterSet) -> Result<Self> {
        Self::open_with_files(cfg, key, hosters, Arc::new(OsFiles))
    }

    /// [`open`](Self::open) with the log's writes going through `files` (fault injection).
    pub fn open_with_files(
        cfg: ArchiveConfig,
        key: MasterKey,
        hosters: HosterSet,
        files: Arc<dyn FileLayer>,
    ) -> Result<Self> {
        cfg.validate()?;
        let store = Store::open(&cfg.data_dir.join("db"))?;
        store.check_master_key(&key.check_value())?;
        let log = BlockLog::open_with(
            &cfg.data_dir.join("segments"),
            store,
            cfg.segment_size_bytes,
            cfg.durability,
            files,
        )?;
        let key = Arc::new(key);
        let disperser = Disperser {
            inner: Arc::new(DisperserInner {
                segments_dir: log.dir().to_path_buf(),
                store: log.store().clone(),
                remote: RemoteArchive::new(key.clone(), hosters),
                pool: ShardPool::default(),
                lock: tokio::sync::Mutex::new(()),
                cfg,
                key,
            }),
        };
        Ok(Self { log, disperser })
    }

    pub fn config(&self) -> &ArchiveConfig {
        &self.disperser.inner.cfg
    }

    /// A handle that disperses and repairs independently of appends.
    pub fn disperser(&self) -> Disperser {
        self.disperser.clone()
    }

    /// See [`Disperser::prepare_hosters`].
    pub async fn prepare_hosters(&self) -> Vec<(String, String)> {
        self.disperser.prepare_hosters().await
    }

    /// See [`Disperser::pending_dispersal`].
    pub fn pending_dispersal(&self) -> Result<Vec<SealedSegment>> {
        self.disperser.pending_dispersal()
    }

    /// See [`Disperser::disperse_pending`].
    pub async fn disperse_pending(&self) -> Result<DispersalReport> {
        self.disperser.disperse_pending().await
    }

    /// See [`Disperser::repair`].
    pub async fn repair(&self, verify: bool) -> Result<RepairReport> {
        self.disperser.repair(verify).await
    }

    /// See [`Disperser::repair_with`].
    pub async fn repair_with(
        &self,
        verify: bool,
        suspect: &[(u64, usize)],
    ) -> Result<RepairReport> {
        self.disperser.repair_with(verify, suspect).await
    }

    pub fn log(&self) -> &BlockLog {
        &self.log
    }

    pub fn log_mut(&mut self) -> &mut BlockLog {
        &mut self.log
    }

    pub fn store(&self) -> &Arc<Store> {
        self.log.store()
    }

    pub fn remote(&self) -> &RemoteArchive {
        &self.disperser.inner.remote
    }

    pub fn hosters(&self) -> &HosterSet {
        self.disperser.inner.remote.hosters()
    }
}

impl Disperser {
    fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    fn hosters(&self) -> &HosterSet {
        self.inner.remote.hosters()
    }

    /// Creates the namespaces on every reachable hoster. Returns the hosters that failed.
    pub async fn prepare_hosters(&self) -> Vec<(String, String)> {
        let mut set = JoinSet::new();
        for h in self.inner.remote.hosters().all() {
            let h = h.clone();
            set.spawn(async move { (h.name().to_string(), timed(h.prepare()).await) });
        }
        let mut failed = Vec::new();
        while let Some(Ok((name, res))) = set.join_next().await {
            if let Err(e) = res {
                failed.push((name, e.to_string()));
            }
        }
        failed
    }

    /// Sealed segments not yet dispersed, in order.
    pub fn pending_dispersal(&self) -> Result<Vec<SealedSegment>> {
        let next = self.inner.store.dispersed_next()?;
        Ok(self
            .store()
            .sealed_all()?
            .into_iter()
            .filter(|s| s.segment >= next)
            .collect())
    }

    /// Disperses every sealed, undispersed segment, in order: encode (on a blocking thread, one
    /// segment ahead) → upload shards in parallel → replicate metadata → record locally.
    /// Stops at the first segment that cannot be stored; earlier ones stay dispersed.
    pub async fn disperse_pending(&self) -> Result<DispersalReport> {
        let _one_at_a_time = self.inner.lock.lock().await;
        let pending = self.pending_dispersal()?;
        let mut report = DispersalReport::default();
        if pending.is_empty() {
            return Ok(report);
        }
        let (tx, mut rx) = mpsc::channel::<Result<EncodedSegment>>(DISPERSAL_QUEUE_SEGMENTS);
        let key = self.inner.key.clone();
        let (k, m) = (self.inner.cfg.data_shards, self.inner.cfg.parity_shards);
        let compression = self.inner.cfg.compression;
        let paths: Vec<_> = pending
            .iter()
            .map(|s| {
                (
                    *s,
                    self.inner.segments_dir.join(segment_file_name(s.segment)),
                )
            })
            .collect();
        let pool = self.inner.pool.clone();
        let encoder = tokio::task::spawn_blocking(move || {
            for (sealed, path) in paths {
                let started = std::time::Instant::now();
                let buffers = pool
                    .lock()
                    .map(|mut p| std::mem::take(&mut *p))
                    .unwrap_or_default();
                let res = encode_sealed(&key, &sealed, &path, k, m, compression, buffers);
                tracing::debug!(
                    segment = sealed.segment,
                    encode_ms = started.elapsed().as_millis() as u64,
                    "encoded"
                );
                let failed = res.is_err();
                if tx.blocking_send(res).is_err() || failed {
                    break;
                }
            }
        });
        let result = async {
            while let Some(encoded) = rx.recv().await {
                let encoded = encoded?;
                let segment = encoded.manifest.segment;
                let plain = encoded.manifest.segment_bytes;
                let stored = encoded.manifest.shard_bytes;
                let started = std::time::Instant::now();
                let placed = self.store_encoded(encoded).await?;
                tracing::debug!(
                    segment,
                    store_ms = started.elapsed().as_millis() as u64,
                    "stored"
                );
                report.segments.push(segment);
                report.bytes_plain += plain;
                report.bytes_stored += stored * placed as u64;
                if placed < k + m {
                    report.under_replicated.push(segment);
                }
            }
            Ok::<(), ArchiveError>(())
        }
        .await;
        drop(rx);
        encoder
            .await
            .map_err(|e| ArchiveError::Task(format!("encoder: {e}")))?;
        result.map(|_| report)
    }

    /// Uploads one encoded segment and records it. Returns how many shards were placed.
    async fn store_encoded(&self, encoded: EncodedSegment) -> Result<usize> {
        let EncodedSegment {
            mut manifest,
            shards,
        } = encoded;
        let segment = manifest.segment;
        manifest.prev_manifest_hash = match segment {
            0 => [0; 32],
            s => self
                .store()
                .manifest(s - 1)?
                .ok_or_else(|| ArchiveError::ManifestChain {
                    segment,
                    reason: format!("segment {} has no manifest yet", s - 1),
                })?
                .hash(),
        };
        let n = shards.len();
        let k = manifest.data_shards as usize;
        let needed = k + self.inner.cfg.min_parity;
        let shards: Vec<Arc<Vec<u8>>> = shards.into_iter().map(Arc::new).collect();
        let mut placement = Placement {
            segment,
            generation: 0,
            hosters: vec![None; n],
        };
        let order = self.hosters().placement_order(segment, &[], &[]);
        let started = std::time::Instant::now();
        let failures = self
            .upload(&manifest, &shards, &mut placement, order, (0..n).collect())
            .await;
        tracing::debug!(
            segment,
            upload_ms = started.elapsed().as_millis() as u64,
            "uploaded"
        );
        let placed = placement.placed();
        if let Ok(mut pool) = self.inner.pool.lock() {
            for shard in shards {
                if pool.len() < n {
                    if let Ok(buf) = Arc::try_unwrap(shard) {
                        pool.push(buf);
                    }
                }
            }
        }
        if placed < needed {
            return Err(ArchiveError::DispersalFailed {
                segment,
                landed: placed,
                needed,
                detail: failures.join("; "),
            });
        }
        self.publish(&manifest, &placement).await?;
        let mut batch = Batch::default();
        self.inner.store.put_manifest(&mut batch, &manifest)?;
        self.inner.store.put_placement(&mut batch, &placement)?;
        self.inner
            .store
            .put_dispersed_next(&mut batch, segment + 1)?;
        self.inner.store.commit_synced(batch)?;
        if placed < n {
            tracing::warn!(
                segment,
                placed,
                total = n,
                "segment stored under-replicated"
            );
        }
        Ok(placed)
    }

    /// Uploads the shards `todo` to hosters taken from `order` (each hoster at most once), moving
    /// to the next hoster in `order` when an upload fails. Fills `placement`; returns failures.
    async fn upload(
        &self,
        manifest: &Manifest,
        shards: &[Arc<Vec<u8>>],
        placement: &mut Placement,
        order: Vec<Arc<dyn ShardHost>>,
        mut todo: Vec<usize>,
    ) -> Vec<String> {
        let mut failures = Vec::new();
        let mut hosters = order.into_iter();
        while !todo.is_empty() {
            let mut set = JoinSet::new();
            let mut out_of_hosters = false;
            for i in todo.drain(..) {
                let Some(h) = hosters.next() else {
                    out_of_hosters = true;
                    continue;
                };
                let key =
                    self.inner
                        .key
                        .shard_storage_key(manifest.segment, &manifest.segment_hash, i);
                let data = shards[i].clone();
                set.spawn(async move {
                    let res = timed(h.put_shard(&key, &data)).await;
                    (i, h.name().to_string(), res)
                });
            }
            while let Some(joined) = set.join_next().await {
                let Ok((i, name, res)) = joined else { continue };
                match res {
                    Ok(()) => placement.hosters[i] = Some(name),
                    Err(e) => {
                        failures.push(format!("shard {i} to {name}: {e}"));
                        todo.push(i);
                    }
                }
            }
            if out_of_hosters {
                break;
            }
        }
        failures
    }

    /// Replicates a segment's encrypted manifest + placement, and the head record, to every
    /// reachable hoster. At least m+1 copies are required so that any m lost hosters leave one.
    async fn publish(&self, manifest: &Manifest, placement: &Placement) -> Result<()> {
        let record = Arc::new(seal_metadata(&self.inner.key, manifest, placement)?);
        let head = Arc::new(seal_head(
            &self.inner.key,
            &Head {
                last_segment: manifest.segment,
                manifest_hash: manifest.hash(),
            },
        )?);
        let meta_key = self.inner.key.manifest_storage_key(manifest.segment);
        let head_key = self.inner.key.head_storage_key();
        let mut set = JoinSet::new();
        for h in self.inner.remote.hosters().all() {
            let (h, record, head) = (h.clone(), record.clone(), head.clone());
            let (meta_key, head_key) = (meta_key.clone(), head_key.clone());
            set.spawn(async move {
                timed(h.put_meta(&meta_key, &record)).await?;
                timed(h.put_meta(&head_key, &head)).await
            });
        }
        let mut stored = 0;
        while let Some(res) = set.join_next().await {
            if matches!(res, Ok(Ok(()))) {
                stored += 1;
            }
        }
        let needed = (manifest.parity_shards as usize + 1).min(self.inner.remote.hosters().len());
        if stored < needed {
            return Err(ArchiveError::MetadataReplication {
                segment: manifest.segment,
                stored,
                needed,
            });
        }
        Ok(())
    }

    /// The read-back check that pruning waits for. For each dispersed segment not yet verified, in
    /// order: its manifest must come back from the hosters identical to the local one, and every
    /// one of its k+m shards must be read back and match its Merkle root. A segment failing the
    /// check gets one repair attempt (rebuild lost shards on other hosters) and is checked again on
    /// the next call. Returns the new `verified_next`: segments below it may be pruned locally.
    pub async fn verify_dispersed(&self) -> Result<u64> {
        let store = self.store().clone();
        let mut next = store.verified_next()?;
        let dispersed = store.dispersed_next()?;
        while next < dispersed {
            let _one_at_a_time = self.inner.lock.lock().await;
            let segment = next;
            let manifest = store
                .manifest(segment)?
                .ok_or_else(|| ArchiveError::ManifestChain {
                    segment,
                    reason: "dispersed but no manifest stored locally".into(),
                })?;
            let placement =
                store
                    .placement(segment)?
                    .ok_or_else(|| ArchiveError::PlacementCorrupt {
                        segment,
                        reason: "missing".into(),
                    })?;
            let remote = self.inner.remote.segment_meta(segment).await?;
            if remote.manifest != manifest {
                return Err(ArchiveError::ManifestChain {
                    segment,
                    reason: "the manifest read back from the hosters differs from the local one"
                        .into(),
                });
            }
            let lost = self.lost_shards(&manifest, &placement, true).await;
            if !lost.is_empty() {
                let repaired = self
                    .repair_segment(&manifest, placement, &lost)
                    .await
                    .map(|(_, r)| r.len())
                    .unwrap_or(0);
                return Err(ArchiveError::SegmentCorrupt {
                    segment,
                    reason: format!(
                        "read-back found {} of {} shards lost or failing their roots ({repaired} rebuilt elsewhere; checked again next pass)",
                        lost.len(),
                        manifest.shards_total()
                    ),
                });
            }
            next = segment + 1;
            let mut batch = Batch::default();
            store.put_verified_next(&mut batch, next)?;
            store.commit_synced(batch)?;
            tracing::debug!(segment, "read back and verified");
        }
        Ok(next)
    }

    /// Deletes local segment files that the hosters provably hold (verified), keeping the newest
    /// `keep` verified ones for fast local reads. Returns the first segment still kept locally.
    pub fn prune_local_segments(&self, keep: u64) -> Result<u64> {
        let store = self.store();
        let from = store.local_segments_pruned_below()?;
        let until = store.verified_next()?.saturating_sub(keep);
        if until <= from {
            return Ok(from);
        }
        // Record first, delete after: a crash in between leaves files that are merely unused,
        // never a catalog pointing at local files that are gone without the record saying so.
        let mut batch = Batch::default();
        store.put_local_segments_pruned_below(&mut batch, until)?;
        store.commit_synced(batch)?;
        for segment in from..until {
            let path = self.inner.segments_dir.join(segment_file_name(segment));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ArchiveError::io("delete pruned segment", &path, e)),
            }
        }
        Ok(until)
    }

    /// First block that is not yet safe to delete anywhere but the archive: every block below it
    /// lies in a sealed segment that was dispersed, read back and verified (see
    /// [`verify_dispersed`](Self::verify_dispersed)).
    pub fn safe_prune_watermark(&self) -> Result<u64> {
        let verified = self.store().verified_next()?;
        if verified == 0 {
            return Ok(0);
        }
        Ok(self
            .store()
            .sealed(verified - 1)?
            .map_or(0, |s| s.last_number + 1))
    }

    /// Brings every dispersed segment back to k+m shards: a shard counts as lost when its hoster is
    /// unknown, down, or no longer has it (or, with `verify`, returns bytes failing the Merkle root).
    /// Lost shards are rebuilt from k good ones and stored on hosters holding no shard of the
    /// segment, spreading domains; the new placement is recorded and replicated.
    pub async fn repair(&self, verify: bool) -> Result<RepairReport> {
        self.repair_with(verify, &[]).await
    }

    /// [`repair`](Self::repair), also treating `suspect` shards (segment, shard) as lost: shards
    /// that failed a storage challenge are rebuilt elsewhere even if their hoster still has bytes.
    pub async fn repair_with(
        &self,
        verify: bool,
        suspect: &[(u64, usize)],
    ) -> Result<RepairReport> {
        let _one_at_a_time = self.inner.lock.lock().await;
        let mut report = RepairReport::default();
        let next = self.inner.store.dispersed_next()?;
        for segment in 0..next {
            let manifest =
                self.inner
                    .store
                    .manifest(segment)?
                    .ok_or_else(|| ArchiveError::ManifestChain {
                        segment,
                        reason: "dispersed but no manifest stored locally".into(),
                    })?;
            let placement = self.inner.store.placement(segment)?.ok_or_else(|| {
                ArchiveError::PlacementCorrupt {
                    segment,
                    reason: "missing".into(),
                }
            })?;
            report.segments_checked += 1;
            let mut lost = self.lost_shards(&manifest, &placement, verify).await;
            for &(_, i) in suspect.iter().filter(|(seg, _)| *seg == segment) {
                if i < manifest.shards_total() && !lost.contains(&i) {
                    lost.push(i);
                }
            }
            report.shards_checked += manifest.shards_total() as u64;
            if lost.is_empty() {
                continue;
            }
            match self.repair_segment(&manifest, placement, &lost).await {
                Ok((_, repaired)) => {
                    let short = lost.len() - repaired.len();
                    for (i, h) in repaired {
                        report.repaired.push((segment, i, h));
                    }
                    if short > 0 {
                        report.still_under_replicated.push((
                            segment,
                            format!("{short} shard(s) found no eligible hoster (distinct, up, not holding a shard of this segment)"),
                        ));
                    }
                }
                Err(e) => report.still_under_replicated.push((segment, e.to_string())),
            }
        }
        Ok(report)
    }

    async fn lost_shards(
        &self,
        manifest: &Manifest,
        placement: &Placement,
        verify: bool,
    ) -> Vec<usize> {
        let mut set = JoinSet::new();
        let mut lost = Vec::new();
        for (i, holder) in placement.hosters.iter().enumerate() {
            let Some(h) = holder
                .as_ref()
                .and_then(|n| self.inner.remote.hosters().get(n))
                .cloned()
            else {
                lost.push(i);
                continue;
            };
            let key = self
                .inner
                .key
                .shard_storage_key(manifest.segment, &manifest.segment_hash, i);
            let manifest = manifest.clone();
            set.spawn(async move {
                let ok = if verify {
                    match timed(h.get_shard(&key, manifest.shard_bytes)).await {
                        Ok(Some(bytes)) => tokio::task::spawn_blocking(move || {
                            codec::shard_matches(&manifest, i, &bytes)
                        })
                        .await
                        .unwrap_or(false),
                        _ => false,
                    }
                } else {
                    matches!(
                        timed(h.has_shard(&key, manifest.shard_bytes)).await,
                        Ok(true)
                    )
                };
                (i, ok)
            });
        }
        while let Some(Ok((i, ok))) = set.join_next().await {
            if !ok {
                lost.push(i);
            }
        }
        lost.sort_unstable();
        lost
    }

    async fn repair_segment(
        &self,
        manifest: &Manifest,
        mut placement: Placement,
        lost: &[usize],
    ) -> Result<(Placement, Vec<(usize, String)>)> {
        let segment = manifest.segment;
        let before = placement.clone();
        // Read from the shards believed good (the lost ones are excluded from the read).
        let mut readable = placement.clone();
        for &i in lost {
            readable.hosters[i] = None;
        }
        let meta = SegmentMeta {
            manifest: manifest.clone(),
            placement: readable,
        };
        let (mut shards, _) = self.inner.remote.fetch_shards(&meta, false).await?;
        let rebuilt_manifest = manifest.clone();
        let shards = tokio::task::spawn_blocking(move || -> Result<Vec<Option<Vec<u8>>>> {
            codec::reconstruct(&rebuilt_manifest, &mut shards, false)?;
            Ok(shards)
        })
        .await
        .map_err(|e| ArchiveError::Task(e.to_string()))??;
        for &i in lost {
            let ok = shards[i]
                .as_ref()
                .is_some_and(|s| codec::shard_matches(manifest, i, s));
            if !ok {
                return Err(ArchiveError::ShardCorrupt {
                    segment,
                    shard: i,
                    hoster: "reconstruction".into(),
                });
            }
        }
        let shards: Vec<Arc<Vec<u8>>> = shards
            .into_iter()
            .map(|s| Arc::new(s.unwrap_or_default()))
            .collect();
        for &i in lost {
            placement.hosters[i] = None;
        }
        let holders: Vec<String> = placement.hosters.iter().flatten().cloned().collect();
        let domains: Vec<String> = holders
            .iter()
            .filter_map(|n| {
                self.inner
                    .remote
                    .hosters()
                    .get(n)
                    .map(|h| h.domain().to_string())
            })
            .collect();
        // Hosters that just lost or corrupted a shard of this segment go last: other hosters first.
        let mut exclude = holders.clone();
        exclude.extend(before.hosters.iter().flatten().cloned());
        let mut order: Vec<Arc<dyn ShardHost>> = self
            .hosters()
            .placement_order(segment, &exclude, &domains)
            .into_iter()
            .filter(|h| !h.is_down())
            .collect();
        let fallback: Vec<Arc<dyn ShardHost>> = self
            .hosters()
            .placement_order(segment, &holders, &domains)
            .into_iter()
            .filter(|h| !h.is_down() && !order.iter().any(|o| o.name() == h.name()))
            .collect();
        order.extend(fallback);
        let failures = self
            .upload(manifest, &shards, &mut placement, order, lost.to_vec())
            .await;
        if !failures.is_empty() {
            tracing::warn!(segment, ?failures, "some repair uploads failed");
        }
        let repaired: Vec<(usize, String)> = lost
            .iter()
            .filter_map(|&i| placement.hosters[i].clone().map(|h| (i, h)))
            .collect();
        // A shard that found no new home keeps its old entry: its hoster may only be down for a
        // while, and restore should still try it when it is back.
        for &i in lost {
            if placement.hosters[i].is_none() {
                placement.hosters[i] = before.hosters[i].clone();
            }
        }
        if placement != before {
            placement.generation += 1;
            self.publish(manifest, &placement).await?;
            let mut batch = Batch::default();
            self.inner.store.put_placement(&mut batch, &placement)?;
            self.inner.store.commit_synced(batch)?;
        }
        Ok((placement, repaired))
    }
}

/// Reads a sealed segment file and encodes it (blocking: run on a blocking thread).
fn encode_sealed(
    key: &MasterKey,
    sealed: &SealedSegment,
    path: &Path,
    k: usize,
    m: usize,
    compression: Compression,
    buffers: Vec<Vec<u8>>,
) -> Result<EncodedSegment> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| ArchiveError::io("open sealed segment", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| ArchiveError::io("stat sealed segment", path, e))?
        .len();
    if len != sealed.bytes {
        return Err(ArchiveError::SegmentFileCorrupt {
            path: path.to_path_buf(),
            offset: len.min(sealed.bytes),
            reason: format!("sealed at {} bytes but the file has {len}", sealed.bytes),
        });
    }
    let mut id = SegmentIdentity {
        segment: sealed.segment,
        first_number: sealed.first_number,
        last_number: sealed.last_number,
        first_hash: sealed.first_hash,
        last_hash: sealed.last_hash,
        blocks_root: sealed.blocks_root,
        segment_hash: sealed.segment_hash,
        segment_bytes: sealed.bytes,
        compression: COMPRESSION_NONE,
        payload_bytes: sealed.bytes,
    };
    let mut reader = HashingReader {
        inner: std::io::BufReader::with_capacity(1 << 20, file),
        hasher: blake3::Hasher::new(),
    };
    let encoded = match compression {
        Compression::None => codec::encode_segment(key, &id, k, m, &mut reader, buffers)?,
        Compression::Zstd => {
            let mut plain = Vec::with_capacity(sealed.bytes as usize);
            reader
                .read_to_end(&mut plain)
                .map_err(|e| ArchiveError::io("read sealed segment", path, e))?;
            let packed = codec::compress(sealed.segment, &plain)?;
            id.compression = COMPRESSION_ZSTD;
            id.payload_bytes = packed.len() as u64;
            codec::encode_segment(key, &id, k, m, &mut packed.as_slice(), buffers)?
        }
    };
    // The file must still be what was sealed: bit rot on the local disk must not be dispersed.
    if *reader.hasher.finalize().as_bytes() != sealed.segment_hash {
        return Err(ArchiveError::SegmentFileCorrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: "content no longer matches the hash recorded when it was sealed".into(),
        });
    }
    Ok(encoded)
}

/// Hashes what passes through, so the plaintext is checked in the same pass that encrypts it.
struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: std::io::Read> std::io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
