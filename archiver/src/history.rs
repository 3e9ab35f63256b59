//! The archive's read path for single blocks: the local log while its segment file is kept, else
//! the segment fetched from the hosters (verified like a restore) into a bounded cache. Concurrent
//! readers of one segment share a single reconstruction. The history RPC and the mount read here.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::error::{ArchiveError, Result};
use crate::log::segment_file_name;
use crate::metrics::ArchiveMetrics;
use crate::record::{scan_record, BlockRecord, RecordScan};
use crate::remote::{RemoteArchive, SegmentMeta};
use crate::store::{Location, Store};

/// Default bound of the segment cache: a few default-size segments, far below a validator's RAM.
pub const HISTORY_CACHE_BYTES_DEFAULT: usize = 256 * 1024 * 1024;
/// Segments rebuilt from the hosters at once; later readers of other segments wait. A rebuild
/// holds about 2.5 segments (k+m shards and the plaintext): two keep both cores busy while a
/// flood of requests for different pruned segments stays near 5 segments of memory, not one
/// rebuild per request in the validator's own process.
pub const HISTORY_REBUILDS_MAX: usize = 2;

type Shared = Arc<OnceCell<std::result::Result<Arc<Vec<u8>>, String>>>;

/// Counters a server or a bench reads.
#[derive(Debug, Default)]
pub struct HistoryStats {
    pub local_reads: AtomicU64,
    pub cache_hits: AtomicU64,
    /// Segments reconstructed from the hosters.
    pub remote_segments: AtomicU64,
}

/// Reads archived blocks wherever they are.
pub struct HistoryReader {
    store: Arc<Store>,
    segments_dir: PathBuf,
    remote: RemoteArchive,
    cache_bytes_max: usize,
    cache: Mutex<Lru>,
    inflight: Mutex<HashMap<u64, Shared>>,
    /// `HISTORY_REBUILDS_MAX` permits, one per rebuild from the hosters.
    rebuilds: tokio::sync::Semaphore,
    pub stats: HistoryStats,
    /// Cache hits, misses and bytes, when the process exports metrics.
    metrics: Option<ArchiveMetrics>,
}

impl std::fmt::Debug for HistoryReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryReader")
            .field("segments_dir", &self.segments_dir)
            .field("cache_bytes_max", &self.cache_bytes_max)
            .finish()
    }
}

/// Least-recently-used segments, newest at the back; small (cache / segment size entries).
#[derive(Default)]
struct Lru {
    entries: VecDeque<(u64, Arc<Vec<u8>>)>,
    bytes: usize,
}

impl Lru {
    fn get(&mut self, segment: u64) -> Option<Arc<Vec<u8>>> {
        let at = self.entries.iter().position(|(s, _)| *s == segment)?;
        let entry = self.entries.remove(at)?;
        let data = entry.1.clone();
        self.entries.push_back(entry);
        Some(data)
    }

    fn put(&mut self, segment: u64, data: Arc<Vec<u8>>, max: usize) {
        if data.len() > max || self.entries.iter().any(|(s, _)| *s == segment) {
            return;
        }
        while self.bytes + data.len() > max {
            match self.entries.pop_front() {
                Some((_, old)) => self.bytes -= old.len(),
                None => break,
            }
        }
        self.bytes += data.len();
        self.entries.push_back((segment, data));
    }
}

impl HistoryReader {
    pub fn new(
        store: Arc<Store>,
        segments_dir: PathBuf,
        remote: RemoteArchive,
        cache_bytes_max: usize,
    ) -> Self {
        Self {
            store,
            segments_dir,
            remote,
            cache_bytes_max,
            cache: Mutex::new(Lru::default()),
            inflight: Mutex::new(HashMap::new()),
            rebuilds: tokio::sync::Semaphore::new(HISTORY_REBUILDS_MAX),
            stats: HistoryStats::default(),
            metrics: None,
        }
    }

    /// Also counts cache hits and misses, and the cache's bytes, into `metrics`.
    pub fn with_metrics(mut self, metrics: ArchiveMetrics) -> Self {
        metrics.set_cache_bytes(self.cached_bytes());
        self.metrics = Some(metrics);
        self
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn remote(&self) -> &RemoteArchive {
        &self.remote
    }

    /// Bytes held by the segment cache now (never above the bound given to `new`).
    pub fn cached_bytes(&self) -> usize {
        self.cache.lock().map(|c| c.bytes).unwrap_or(0)
    }

    /// The bound given to `new`.
    pub fn cache_bytes_max(&self) -> usize {
        self.cache_bytes_max
    }

    /// Drops every cached segment (benchmarks measure cold reads this way).
    pub fn clear_cache(&self) {
        if let Ok(mut c) = self.cache.lock() {
            *c = Lru::default();
        }
        if let Some(m) = &self.metrics {
            m.set_cache_bytes(0);
        }
    }

    /// Keeps a segment's verified plaintext in the cache (within its bound), as if just read
    /// from the hosters: the gateway's catalog builder hands over what it already fetched.
    pub fn cache_segment(&self, segment: u64, data: Arc<Vec<u8>>) {
        if let Ok(mut c) = self.cache.lock() {
            c.put(segment, data, self.cache_bytes_max);
            if let Some(m) = &self.metrics {
                m.set_cache_bytes(c.bytes);
            }
        }
    }

    /// The archived block `number`, or None when the archive has no such block.
    pub async fn block(&self, number: u64) -> Result<Option<BlockRecord>> {
        let Some(loc) = self.store.location(number)? else {
            return Ok(None);
        };
        if loc.segment >= self.store.local_segments_pruned_below()? {
            let path = self.segments_dir.join(segment_file_name(loc.segment));
            // None when the file is gone (pruned meanwhile): read from the hosters instead.
            if let Some(rec) = crate::log::read_record_at(&path, &loc, number)? {
                self.stats.local_reads.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(rec));
            }
        }
        let segment = self.segment(loc.segment).await?;
        let start = loc.offset as usize;
        let bytes = segment
            .get(start..start + loc.len as usize)
            .ok_or_else(|| ArchiveError::SegmentCorrupt {
                segment: loc.segment,
                reason: format!("block {number} lies beyond the segment's end"),
            })?;
        check_record(bytes, number, &loc).map(Some)
    }

    /// A segment's verified plaintext from the cache or the hosters. Concurrent callers for the
    /// same segment wait for one reconstruction.
    pub async fn segment(&self, segment: u64) -> Result<Arc<Vec<u8>>> {
        if let Some(hit) = self.cache.lock().ok().and_then(|mut c| c.get(segment)) {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = &self.metrics {
                m.cache_hit();
            }
            return Ok(hit);
        }
        if let Some(m) = &self.metrics {
            m.cache_miss();
        }
        let cell: Shared = {
            let mut inflight = self
                .inflight
                .lock()
                .map_err(|_| ArchiveError::Task("history in-flight map poisoned".into()))?;
            inflight.entry(segment).or_default().clone()
        };
        let result = cell
            .get_or_init(|| async {
                let fetched = self.fetch(segment).await;
                if let Ok(data) = &fetched {
                    self.stats.remote_segments.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut c) = self.cache.lock() {
                        c.put(segment, data.clone(), self.cache_bytes_max);
                        if let Some(m) = &self.metrics {
                            m.set_cache_bytes(c.bytes);
                        }
                    }
                }
                fetched.map_err(|e| e.to_string())
            })
            .await
            .clone();
        if let Ok(mut inflight) = self.inflight.lock() {
            if inflight
                .get(&segment)
                .is_some_and(|c| Arc::ptr_eq(c, &cell))
            {
                inflight.remove(&segment);
            }
        }
        result.map_err(|reason| ArchiveError::SegmentCorrupt { segment, reason })
    }

    async fn fetch(&self, segment: u64) -> Result<Arc<Vec<u8>>> {
        let _permit = self
            .rebuilds
            .acquire()
            .await
            .map_err(|_| ArchiveError::Task("history rebuild limiter closed".into()))?;
        // Another waiter may have put it in the cache while this one waited for a permit.
        if let Some(hit) = self.cache.lock().ok().and_then(|mut c| c.get(segment)) {
            return Ok(hit);
        }
        // The local manifest is authoritative (it was checked when written); the hosters'
        // placement may be newer after a repair, so prefer theirs when it is for the same manifest.
        let meta = match (
            self.store.manifest(segment)?,
            self.store.placement(segment)?,
        ) {
            (Some(manifest), Some(placement)) => {
                match self.remote.segment_meta_opt(segment).await {
                    Ok(Some(r)) if r.manifest == manifest => r,
                    _ => SegmentMeta {
                        manifest,
                        placement,
                    },
                }
            }
            _ => self.remote.segment_meta(segment).await?,
        };
        let (plain, _) = self.remote.read_segment(&meta).await?;
        Ok(Arc::new(plain))
    }
}

fn check_record(bytes: &[u8], number: u64, loc: &Location) -> Result<BlockRecord> {
    let bad = |reason: String| ArchiveError::SegmentCorrupt {
        segment: loc.segment,
        reason,
    };
    match scan_record(bytes) {
        RecordScan::Complete { record, .. }
            if record.number == number && record.hash == loc.hash =>
        {
            Ok(record)
        }
        RecordScan::Complete { record, .. } => Err(bad(format!(
            "catalog entry of block {number} points at block {}",
            record.number
        ))),
        RecordScan::Incomplete => Err(bad(format!("block {number} truncated"))),
        RecordScan::Invalid(reason) => Err(bad(format!("block {number}: {reason}"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lru_stays_within_its_bound() {
        let mut lru = Lru::default();
        for s in 0..10u64 {
            lru.put(s, Arc::new(vec![0; 40]), 100);
            assert!(lru.bytes <= 100);
        }
        assert_eq!(lru.entries.len(), 2);
        assert!(lru.get(9).is_some());
        assert!(lru.get(0).is_none());
        lru.put(99, Arc::new(vec![0; 101]), 100);
        assert!(lru.get(99).is_none());
    }

    fn record(number: u64, parent: [u8; 32]) -> BlockRecord {
        let block = vec![number as u8; 1_000];
        BlockRecord {
            number,
            hash: *blake3::hash(&[&number.to_le_bytes()[..], &parent, &block].concat()).as_bytes(),
            parent_hash: parent,
            block,
            justification: None,
            changes: vec![],
        }
    }

    /// A pruned segment read twice: one miss (rebuilt from the hosters), then one hit.
    #[tokio::test]
    async fn metrics_count_cache_hits_misses_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (_hosts, entries, set) = crate::testing::memory_hosters(6);
        let mut cfg = crate::ArchiveConfig::new(dir.path().join("data"), entries);
        (cfg.data_shards, cfg.parity_shards) = (4, 2);
        cfg.durability = crate::Durability::Os;
        let mut archive =
            crate::Archive::open(cfg, crate::MasterKey::from_bytes([7; 32]), set).unwrap();
        let mut parent = [0; 32];
        for n in 0..5 {
            let r = record(n, parent);
            parent = r.hash;
            archive.log_mut().append(&r).unwrap();
        }
        archive.log_mut().seal_active().unwrap();
        archive.disperse_pending().await.unwrap();
        let disperser = archive.disperser();
        assert_eq!(disperser.verify_dispersed().await.unwrap(), 1);
        assert_eq!(disperser.prune_local_segments(0).unwrap(), 1);

        let registry = prometheus::Registry::new();
        let metrics = crate::metrics::ArchiveMetrics::register(&registry).unwrap();
        let reader = HistoryReader::new(
            archive.store().clone(),
            archive.log().dir().to_path_buf(),
            archive.remote().clone(),
            HISTORY_CACHE_BYTES_DEFAULT,
        )
        .with_metrics(metrics);
        for _ in 0..2 {
            assert_eq!(reader.block(3).await.unwrap().unwrap().number, 3);
        }
        let value = |name: &str| -> f64 {
            let text = prometheus::TextEncoder::new()
                .encode_to_string(&registry.gather())
                .unwrap();
            let line = text.lines().find(|l| l.split(' ').next() == Some(name));
            line.and_then(|l| l.split(' ').nth(1))
                .unwrap()
                .parse()
                .unwrap()
        };
        assert_eq!(value("archiver_history_cache_misses_total"), 1.0);
        assert_eq!(value("archiver_history_cache_hits_total"), 1.0);
        assert_eq!(
            value("archiver_history_cache_bytes"),
            reader.cached_bytes() as f64
        );
        assert!(reader.cached_bytes() > 0);
        reader.clear_cache();
        assert_eq!(value("archiver_history_cache_bytes"), 0.0);
    }
}
