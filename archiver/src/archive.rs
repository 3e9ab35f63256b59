//! The archive as a validator runs it: the local block log plus dispersal of sealed segments to the
//! hosters, status and repair. Restore from hosters alone is in `restore`.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::codec::{self, EncodedSegment, SegmentIdentity};
use crate::config::{ArchiveConfig, Compression};
use crate::error::{ArchiveError, Result};
use crate::fs::{FileLayer, OsFiles};
use crate::history::HistoryReader;
use crate::hosters::{HosterSet, ShardHost};
use crate::keys::MasterKey;
use crate::log::{segment_file_name, BlockLog};
use crate::manifest::{
    seal_head, seal_manifest_record, seal_placement_record, Head, Manifest, Placement,
    COMPRESSION_NONE, COMPRESSION_ZSTD,
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

/// Segments one repair rebuilds at once: each holds its k+m shards in memory (48 MiB at the
/// default 32 MiB segments and 4+2), and three keep reads, decoding and uploads overlapping on
/// two cores without raising RSS past the node's bound.
pub const REPAIR_SEGMENTS_IN_FLIGHT: usize = 3;

/// Metadata records checked at once by a scrub: small values, latency-bound.
pub const SCRUB_CONCURRENCY: usize = 32;

/// What a metadata self-check found and did.
#[derive(Clone, Debug, Default)]
pub struct ScrubReport {
    pub segments_checked: u64,
    pub records_checked: u64,
    /// (hoster, segment, record) written again because the hoster did not hold it.
    pub republished: Vec<(String, u64, &'static str)>,
    /// (hoster, segment, record) present but not the bytes the local store seals (damaged or
    /// tampered) and refused rewriting (write-once); readers skip it, other hosters hold copies.
    /// A damaged placement is superseded by a new generation instead.
    pub damaged: Vec<(String, u64, &'static str)>,
    /// Segments whose placement was published again under a new generation.
    pub placements_superseded: Vec<u64>,
    /// (hoster, why) for hosters that could not be checked; checked on the next scrub.
    pub unreachable: Vec<(String, String)>,
}

/// Segments the state-index backfill keeps cached: it reads pruned segments in order, so one
/// suffices; two leave room for a segment a little over the size threshold.
pub const BACKFILL_CACHE_SEGMENTS: usize = 2;

/// Names of the metadata records of one segment, for reports.
const RECORD_KINDS: [&str; 3] = ["manifest", "placement", "head"];

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
    /// Hosters that get no new shard (lost or draining; set by the operations layer).
    avoided: std::sync::RwLock<Vec<String>>,
    /// Reads the records the state-index backfill indexes (local log, else the hosters).
    backfill_reader: HistoryReader,
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
        let store = Store::open(&cfg.layout().db())?;
        store.check_master_key(&key.check_value())?;
        let log = BlockLog::open_with(
            &cfg.layout().segments(),
            store,
            cfg.segment_size_bytes,
            cfg.durability,
            files,
        )?;
        let key = Arc::new(key);
        let remote = RemoteArchive::new(key.clone(), hosters);
        let backfill_reader = HistoryReader::new(
            log.store().clone(),
            log.dir().to_path_buf(),
            remote.clone(),
            BACKFILL_CACHE_SEGMENTS * cfg.segment_size_bytes as usize,
        );
        let disperser = Disperser {
            inner: Arc::new(DisperserInner {
                segments_dir: log.dir().to_path_buf(),
                store: log.store().clone(),
                remote,
                backfill_reader,
                pool: ShardPool::default(),
                lock: tokio::sync::Mutex::new(()),
                avoided: std::sync::RwLock::default(),
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

    /// See [`Disperser::scrub_metadata`].
    pub async fn scrub_metadata(&self, segments: std::ops::Range<u64>) -> Result<ScrubReport> {
        self.disperser.scrub_metadata(segments).await
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
    /// The archive's store (the writer's handle).
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    pub fn hosters(&self) -> &HosterSet {
        self.inner.remote.hosters()
    }

    pub fn remote(&self) -> &RemoteArchive {
        &self.inner.remote
    }

    pub fn config(&self) -> &ArchiveConfig {
        &self.inner.cfg
    }

    /// Indexes archived blocks the state index does not cover yet, up to `steps` bounded steps
    /// (see [`crate::state_index::backfill_state_index`]).
    pub async fn backfill_state_index(
        &self,
        steps: usize,
    ) -> Result<crate::state_index::BackfillProgress> {
        crate::state_index::backfill_state_index(
            &self.inner.backfill_reader,
            steps,
            crate::state_index::BACKFILL_STEP_BYTES,
        )
        .await
    }

    /// Hosters that must get no new shard from dispersal or repair (lost or draining). A hoster
    /// in this list that holds shards keeps them until they are moved.
    pub fn set_avoided(&self, mut hosters: Vec<String>) {
        hosters.sort();
        hosters.dedup();
        if let Ok(mut a) = self.inner.avoided.write() {
            *a = hosters;
        }
    }

    pub fn avoided(&self) -> Vec<String> {
        self.inner
            .avoided
            .read()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// Holds off every dispersal, repair and read-back pass while the guard lives (orphan GC
    /// must not race an upload whose placement is not recorded yet).
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.lock.lock().await
    }

    /// Rebuilds shards `lost` of dispersed segment `segment` from k others and stores them on
    /// hosters holding none of its shards (never an avoided one); records and publishes the new
    /// placement. Returns the shards stored again, with their new hosters.
    pub async fn repair_shards(
        &self,
        segment: u64,
        lost: &[usize],
    ) -> Result<Vec<(usize, String)>> {
        let jobs = [(segment, lost.to_vec())];
        let mut done = self.repair_many(&jobs).await;
        done.pop().map_or(Ok(Vec::new()), |(_, r)| r)
    }

    /// [`repair_shards`](Self::repair_shards) for many segments under one hold of the dispersal
    /// lock, `REPAIR_SEGMENTS_IN_FLIGHT` at a time (one segment's reads, decoding and uploads
    /// leave both the network and the cores idle part of the time). Results in any order.
    pub async fn repair_many(
        &self,
        jobs: &[(u64, Vec<usize>)],
    ) -> Vec<(u64, Result<Vec<(usize, String)>>)> {
        let _one_at_a_time = self.inner.lock.lock().await;
        // Futures built before the stream: a closure inside it would make this future not
        // provably `Send` for the service task that runs it.
        let mut work = Vec::with_capacity(jobs.len());
        for (segment, lost) in jobs {
            work.push(async move { (*segment, self.repair_one(*segment, lost).await) });
        }
        futures::stream::iter(work)
            .buffer_unordered(REPAIR_SEGMENTS_IN_FLIGHT)
            .collect()
            .await
    }

    /// Moves shard `shard` of `segment` from its hoster to `to` (a copy checked against the
    /// manifest's part hashes, stored under the next version's name), then records and publishes
    /// the new placement. The old copy becomes an orphan for GC. Rebalancing uses it.
    pub async fn move_shard(&self, segment: u64, shard: usize, to: &str) -> Result<()> {
        let _one_at_a_time = self.inner.lock.lock().await;
        let (manifest, before) = self.local_meta(segment)?;
        let moving = |reason: String| ArchiveError::ShardCorrupt {
            segment,
            shard,
            hoster: reason,
        };
        let from = before
            .hosters
            .get(shard)
            .cloned()
            .flatten()
            .ok_or_else(|| moving("none".into()))?;
        if before.hosters.iter().flatten().any(|h| h == to) {
            return Err(moving(format!("{to} already holds a shard of the segment")));
        }
        let (Some(src), Some(dst)) = (self.hosters().get(&from), self.hosters().get(to)) else {
            return Err(moving(format!("{from} or {to} is not configured")));
        };
        let key = &self.inner.key;
        let name = manifest.shard_storage_key_at(key, shard, before.version(shard));
        let bytes = timed(src.get_shard(&name, manifest.shard_bytes))
            .await
            .map_err(|e| moving(format!("{from}: {e}")))?
            .ok_or_else(|| moving(format!("{from}: missing")))?;
        if !codec::damaged_parts(&manifest, shard, &bytes, &[]).is_empty() {
            return Err(moving(format!("{from}: fails its part hashes")));
        }
        let mut placement = before.clone();
        placement.versions[shard] = before.version(shard) + 1;
        placement.hosters[shard] = Some(to.to_string());
        let new_name = manifest.shard_storage_key_at(key, shard, placement.versions[shard]);
        timed(dst.put_shard(&new_name, &bytes))
            .await
            .map_err(|e| moving(format!("{to}: {e}")))?;
        let remote_gen = match self.inner.remote.segment_meta_opt(segment).await {
            Ok(Some(meta)) => meta.placement.generation,
            _ => before.generation,
        };
        placement.generation = before.generation.max(remote_gen) + 1;
        self.publish(&manifest, &placement).await?;
        let mut batch = Batch::default();
        self.inner.store.put_placement(&mut batch, &placement)?;
        self.inner.store.commit_synced(batch)
    }

    async fn repair_one(&self, segment: u64, lost: &[usize]) -> Result<Vec<(usize, String)>> {
        let (manifest, placement) = self.local_meta(segment)?;
        let total = manifest.shards_total();
        let lost: Vec<usize> = lost.iter().copied().filter(|&i| i < total).collect();
        let (_, repaired) = self.repair_segment(&manifest, placement, &lost).await?;
        let short = lost.len() - repaired.len();
        let mut batch = Batch::default();
        self.inner.store.put_short(
            &mut batch,
            segment,
            (short > 0).then_some((total - short, total)),
        )?;
        self.inner.store.commit(batch)?;
        Ok(repaired)
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
        let mut placement = Placement::empty(segment, n);
        let order = self
            .hosters()
            .placement_order(segment, &self.avoided(), &[]);
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
                let key = manifest.shard_storage_key_at(&self.inner.key, i, placement.version(i));
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

    /// Replicates a segment's encrypted manifest, its placement (this generation) and its head
    /// record to every reachable hoster. Every record is written once under its own name and
    /// seals deterministically, so a retry rewrites identical bytes. At least m+1 copies are
    /// required so that any m lost hosters leave one.
    async fn publish(&self, manifest: &Manifest, placement: &Placement) -> Result<()> {
        let records = Arc::new(self.metadata_records(manifest, placement)?);
        let mut set = JoinSet::new();
        for h in self.inner.remote.hosters().all() {
            let (h, records) = (h.clone(), records.clone());
            set.spawn(async move {
                for (name, bytes) in records.iter() {
                    timed(h.put_meta(name, bytes)).await?;
                }
                Ok::<(), crate::hosters::HostError>(())
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

    /// The (name, bytes) of every metadata record a hoster should hold for this segment: its
    /// manifest, the given placement generation, and its head record.
    fn metadata_records(
        &self,
        manifest: &Manifest,
        placement: &Placement,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let key = &self.inner.key;
        let head = Head {
            last_segment: manifest.segment,
            manifest_hash: manifest.hash(),
        };
        Ok(vec![
            (
                key.manifest_storage_key(manifest.segment),
                seal_manifest_record(key, manifest)?,
            ),
            (
                key.placement_storage_key(manifest.segment, placement.generation),
                seal_placement_record(key, placement)?,
            ),
            (
                key.head_storage_key(manifest.segment),
                seal_head(key, &head)?,
            ),
        ])
    }

    /// Metadata self-check: every reachable hoster must hold every dispersed segment's manifest,
    /// current placement and head record, byte for byte as the local store seals them. Missing
    /// records are written again; a damaged placement is superseded by a new generation.
    pub async fn scrub_metadata(&self, segments: std::ops::Range<u64>) -> Result<ScrubReport> {
        let end = segments.end.min(self.store().dispersed_next()?);
        let mut report = ScrubReport::default();
        let mut expected = Vec::new();
        for segment in segments.start..end {
            let (manifest, placement) = self.local_meta(segment)?;
            expected.push((segment, self.metadata_records(&manifest, &placement)?));
            report.segments_checked += 1;
        }
        let mut checks: Vec<RecordToCheck> = Vec::new();
        for h in self.hosters().all() {
            if let Err(e) = timed(h.ping()).await {
                report
                    .unreachable
                    .push((h.name().to_string(), e.to_string()));
                continue;
            }
            for (segment, records) in &expected {
                for (kind, (name, bytes)) in RECORD_KINDS.iter().zip(records) {
                    checks.push((h.clone(), *segment, *kind, name.clone(), bytes.clone()));
                }
            }
        }
        let supersede = check_records(checks, &mut report).await;
        // Only publishing a new placement generation needs the dispersal lock: the reads above
        // run beside dispersal, and a generation a repair adds meanwhile is re-read here.
        let _one_at_a_time = self.inner.lock.lock().await;
        for segment in supersede {
            let (manifest, mut placement) = self.local_meta(segment)?;
            placement.generation += 1;
            self.publish(&manifest, &placement).await?;
            let mut batch = Batch::default();
            self.inner.store.put_placement(&mut batch, &placement)?;
            self.inner.store.commit_synced(batch)?;
            report.placements_superseded.push(segment);
        }
        Ok(report)
    }

    /// The locally stored manifest and placement of a dispersed segment.
    fn local_meta(&self, segment: u64) -> Result<(Manifest, Placement)> {
        let manifest =
            self.store()
                .manifest(segment)?
                .ok_or_else(|| ArchiveError::ManifestChain {
                    segment,
                    reason: "dispersed but no manifest stored locally".into(),
                })?;
        let placement =
            self.store()
                .placement(segment)?
                .ok_or_else(|| ArchiveError::PlacementCorrupt {
                    segment,
                    reason: "missing".into(),
                })?;
        Ok((manifest, placement))
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
            let (manifest, placement) = self.local_meta(segment)?;
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
            let (manifest, placement) = self.local_meta(segment)?;
            report.segments_checked += 1;
            let mut lost = self.lost_shards(&manifest, &placement, verify).await;
            for &(_, i) in suspect.iter().filter(|(seg, _)| *seg == segment) {
                if i < manifest.shards_total() && !lost.contains(&i) {
                    lost.push(i);
                }
            }
            report.shards_checked += manifest.shards_total() as u64;
            let total = manifest.shards_total();
            let short = if lost.is_empty() {
                None
            } else {
                match self.repair_segment(&manifest, placement, &lost).await {
                    Ok((_, repaired)) => {
                        let short = lost.len() - repaired.len();
                        for (i, h) in repaired {
                            report.repaired.push((segment, i, h));
                        }
                        (short > 0).then(|| {
                            report.still_under_replicated.push((
                                segment,
                                format!("{short} shard(s) found no eligible hoster (distinct, up, not holding a shard of this segment)"),
                            ));
                            (total - short, total)
                        })
                    }
                    Err(e) => {
                        report.still_under_replicated.push((segment, e.to_string()));
                        Some((total - lost.len(), total))
                    }
                }
            };
            let mut batch = Batch::default();
            self.inner.store.put_short(&mut batch, segment, short)?;
            self.inner.store.commit(batch)?;
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
            let key = manifest.shard_storage_key_at(&self.inner.key, i, placement.version(i));
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
        for &i in lost {
            placement.hosters[i] = None;
            // A new name for every rebuild: the damaged copy's write-once name may be taken on
            // the hoster that gets the rebuilt shard (it may be the same hoster).
            placement.versions[i] = before.version(i) + 1;
        }
        // Targets first: a segment with nowhere to go costs no read.
        let order = self.repair_targets(segment, &placement, &before);
        if order.is_empty() {
            return Ok((before, Vec::new()));
        }
        let shards = self.rebuild_shards(manifest, &before, lost).await?;
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
                placement.versions[i] = before.version(i);
            }
        }
        if placement != before {
            self.supersede_placement(manifest, &mut placement, &before)
                .await?;
        }
        Ok((placement, repaired))
    }

    /// Reads k shards' worth once (each part checked against its hash, so a shard with a few
    /// rotten parts still lends its intact ones) and rebuilds the `lost` shards, each checked
    /// against its root.
    async fn rebuild_shards(
        &self,
        manifest: &Manifest,
        placement: &Placement,
        lost: &[usize],
    ) -> Result<Vec<Arc<Vec<u8>>>> {
        let meta = SegmentMeta {
            manifest: manifest.clone(),
            placement: placement.clone(),
        };
        let fetched = self.inner.remote.fetch_parts(&meta, false).await?;
        let rebuilt_manifest = manifest.clone();
        let shards = tokio::task::spawn_blocking(move || -> Result<Vec<Option<Vec<u8>>>> {
            let (mut shards, damaged) = (fetched.shards, fetched.damaged);
            codec::reconstruct_parts(&rebuilt_manifest, &mut shards, &damaged, false)?;
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
                    segment: manifest.segment,
                    shard: i,
                    hoster: "reconstruction".into(),
                });
            }
        }
        Ok(shards
            .into_iter()
            .map(|s| Arc::new(s.unwrap_or_default()))
            .collect())
    }

    /// Where rebuilt shards may go, best first: hosters holding no shard of the segment, spreading
    /// domains; then, as a last resort, the hosters that lost or corrupted one; never an avoided
    /// or a down hoster.
    fn repair_targets(
        &self,
        segment: u64,
        placement: &Placement,
        before: &Placement,
    ) -> Vec<Arc<dyn ShardHost>> {
        let holders: Vec<String> = placement.hosters.iter().flatten().cloned().collect();
        let domains: Vec<String> = holders
            .iter()
            .filter_map(|n| self.hosters().get(n).map(|h| h.domain().to_string()))
            .collect();
        let avoided = self.avoided();
        let mut exclude = holders.clone();
        exclude.extend(before.hosters.iter().flatten().cloned());
        exclude.extend(avoided.iter().cloned());
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
            .filter(|h| {
                !h.is_down()
                    && !avoided.iter().any(|a| a == h.name())
                    && !order.iter().any(|o| o.name() == h.name())
            })
            .collect();
        order.extend(fallback);
        order
    }

    /// Publishes `placement` as the next generation past every one any hoster holds (names are
    /// write-once, and an interrupted repair may have published the next generation with other
    /// contents), then records it.
    async fn supersede_placement(
        &self,
        manifest: &Manifest,
        placement: &mut Placement,
        before: &Placement,
    ) -> Result<()> {
        let remote_gen = match self.inner.remote.segment_meta_opt(manifest.segment).await {
            Ok(Some(meta)) => meta.placement.generation,
            _ => before.generation,
        };
        placement.generation = before.generation.max(remote_gen) + 1;
        self.publish(manifest, placement).await?;
        let mut batch = Batch::default();
        self.inner.store.put_placement(&mut batch, placement)?;
        self.inner.store.commit_synced(batch)
    }
}

/// (hoster, segment, record kind, name, expected bytes): one record a scrub checks.
type RecordToCheck = (Arc<dyn ShardHost>, u64, &'static str, Vec<u8>, Vec<u8>);

/// One metadata record on one hoster, as a scrub saw it.
enum RecordCheck {
    Intact,
    Republished,
    Damaged,
    Failed(String),
}

/// Runs the record checks and fills `report` (one unreachable entry per hoster); returns the
/// segments whose placement record was found damaged.
async fn check_records(
    checks: Vec<RecordToCheck>,
    report: &mut ScrubReport,
) -> std::collections::BTreeSet<u64> {
    // Futures built before the stream: a closure inside the stream would make this future not
    // provably `Send` for the maintenance task that runs it.
    let checks: Vec<_> = checks
        .into_iter()
        .map(|(h, segment, kind, name, bytes)| async move {
            let verdict = check_record(h.as_ref(), &name, &bytes).await;
            (h.name().to_string(), segment, kind, verdict)
        })
        .collect();
    let outcomes: Vec<_> = futures::stream::iter(checks)
        .buffer_unordered(SCRUB_CONCURRENCY)
        .collect()
        .await;
    let mut supersede = std::collections::BTreeSet::new();
    for (hoster, segment, kind, verdict) in outcomes {
        report.records_checked += 1;
        match verdict {
            RecordCheck::Intact => {}
            RecordCheck::Republished => report.republished.push((hoster, segment, kind)),
            RecordCheck::Damaged => {
                if kind == "placement" {
                    supersede.insert(segment);
                }
                report.damaged.push((hoster, segment, kind));
            }
            RecordCheck::Failed(e) => {
                if !report.unreachable.iter().any(|(h, _)| *h == hoster) {
                    report.unreachable.push((hoster, e));
                }
            }
        }
    }
    supersede
}

/// Compares a hoster's copy of a record with the expected bytes; writes it when missing, and
/// tries to when damaged (a write-once namespace refuses, and the record stays damaged).
async fn check_record(h: &dyn ShardHost, name: &[u8], bytes: &[u8]) -> RecordCheck {
    match timed(h.get_meta(name)).await {
        Ok(Some(found)) if found == bytes => RecordCheck::Intact,
        Ok(Some(_)) => match timed(h.put_meta(name, bytes)).await {
            Ok(()) => RecordCheck::Republished,
            Err(_) => RecordCheck::Damaged,
        },
        Ok(None) => match timed(h.put_meta(name, bytes)).await {
            Ok(()) => RecordCheck::Republished,
            Err(e) => RecordCheck::Failed(e.to_string()),
        },
        Err(e) => RecordCheck::Failed(e.to_string()),
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
