//! The in-process archive plugin: the node hands it each finalized block (with its state
//! changes), it appends to the archive log, and a background task disperses sealed segments,
//! reads them back and verifies them, and only then raises the prune watermark.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use archiver::record::{BlockRecord, StateChange};
use archiver::{Archive, Disperser, HistoryReader};
use tokio::sync::Notify;

use crate::chain_db::BlockBytes;
use crate::node::{FinalityPlugin, FinalizedBlock};

/// How often the background task retries a stalled dispersal or verification: short enough that
/// pruning resumes within seconds once hosters return, long enough not to spin on dead hosters.
pub const MAINTENANCE_RETRY_MS: u64 = 1_000;

/// Knobs of the plugin.
#[derive(Clone, Debug)]
pub struct ArchivePluginOptions {
    /// Verified segments kept as local files for fast reads (older ones are read from hosters).
    pub keep_local_segments: u64,
    /// Bound of the history read cache.
    pub history_cache_bytes: usize,
}

impl Default for ArchivePluginOptions {
    fn default() -> Self {
        Self {
            keep_local_segments: 2,
            history_cache_bytes: archiver::history::HISTORY_CACHE_BYTES_DEFAULT,
        }
    }
}

/// What the background task last saw (for status and tests).
#[derive(Clone, Debug, Default)]
pub struct MaintenanceStatus {
    pub passes: u64,
    pub last_error: Option<String>,
    pub watermark: u64,
}

/// Shared view of a running plugin.
#[derive(Clone)]
pub struct ArchivePluginHandle {
    pub reader: Arc<HistoryReader>,
    pub watermark: Arc<AtomicU64>,
    pub status: Arc<Mutex<MaintenanceStatus>>,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for ArchivePluginHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchivePluginHandle")
            .field("watermark", &self.watermark.load(Ordering::Relaxed))
            .finish()
    }
}

impl ArchivePluginHandle {
    /// Asks the background task for a pass now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn status(&self) -> MaintenanceStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The plugin the node owns.
pub struct ArchivePlugin {
    archive: Archive,
    handle: ArchivePluginHandle,
    task: tokio::task::JoinHandle<()>,
    rt: tokio::runtime::Handle,
}

impl std::fmt::Debug for ArchivePlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchivePlugin").finish()
    }
}

impl Drop for ArchivePlugin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ArchivePlugin {
    /// Starts the background maintenance on `rt` and returns the plugin and its handle.
    pub fn start(
        archive: Archive,
        rt: &tokio::runtime::Handle,
        opts: ArchivePluginOptions,
    ) -> (Self, ArchivePluginHandle) {
        let reader = Arc::new(HistoryReader::new(
            archive.store().clone(),
            archive.log().dir().to_path_buf(),
            archive.remote().clone(),
            opts.history_cache_bytes,
        ));
        let disperser = archive.disperser();
        let initial = disperser.safe_prune_watermark().unwrap_or(0);
        let handle = ArchivePluginHandle {
            reader,
            watermark: Arc::new(AtomicU64::new(initial)),
            status: Arc::new(Mutex::new(MaintenanceStatus {
                watermark: initial,
                ..Default::default()
            })),
            wake: Arc::new(Notify::new()),
        };
        let task = rt.spawn(maintain(
            disperser,
            handle.clone(),
            opts.keep_local_segments,
        ));
        handle.wake();
        (
            Self {
                archive,
                handle: handle.clone(),
                task,
                rt: rt.clone(),
            },
            handle,
        )
    }

    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// The archive, for a follower that appends itself (see `follow::ArchiveSink`).
    pub fn archive_mut(&mut self) -> &mut Archive {
        &mut self.archive
    }

    /// A block whose local segment file was pruned, read from the hosters. Runs on a thread of
    /// its own, as the caller (the node, opening) may be on a runtime thread; the runtime must be
    /// multi-threaded (the binary's is) so that its drivers run while this thread waits.
    fn block_from_hosters(&self, number: u64) -> Result<Option<BlockRecord>, String> {
        let reader = self.handle.reader.clone();
        let rt = self.rt.clone();
        std::thread::scope(|s| {
            s.spawn(move || rt.block_on(reader.block(number)))
                .join()
                .map_err(|_| format!("reading block {number} from the hosters panicked"))?
                .map_err(|e| format!("read block {number} from the hosters: {e}"))
        })
    }
}

/// Appends `record`; when that poisons the log (a failed write, fsync or commit), reopens it —
/// recovering as after a crash — and appends once more on the fresh handle, never on the old one.
pub fn append_restarting(
    log: &mut archiver::BlockLog,
    records: &[BlockRecord],
) -> archiver::Result<archiver::AppendSummary> {
    if log.poisoned().is_some() {
        log.reopen()?;
    }
    match log.append_batch(records) {
        Err(e) if log.poisoned().is_some() => {
            tracing::warn!(error = %e, "archive log failed; reopening it and appending again");
            log.reopen()?;
            log.append_batch(records)
        }
        other => other,
    }
}

/// Segments whose metadata one scrub checks on every hoster: the whole archive is covered over
/// (segments / this) scrubs, each a few small reads per record and hoster.
pub const METADATA_SCRUB_SEGMENTS_PER_PASS: u64 = 64;
/// How often the maintenance loop scrubs metadata (missing manifest, placement and head records
/// are written again): often enough that an owner's deletion is healed within minutes, rarely
/// enough that the reads cost nothing next to dispersal.
pub const METADATA_SCRUB_INTERVAL_MS: u64 = 60_000;

/// Where the next metadata scrub starts, and when the last one ran.
#[derive(Default)]
struct ScrubCursor {
    next: u64,
    last: Option<std::time::Instant>,
}

impl ScrubCursor {
    /// One scrub window if the interval passed; a window past the end starts over at 0.
    async fn step(&mut self, disperser: &Disperser) -> archiver::Result<()> {
        let due = self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(METADATA_SCRUB_INTERVAL_MS));
        if !due {
            return Ok(());
        }
        self.last = Some(std::time::Instant::now());
        let window = self.next..self.next + METADATA_SCRUB_SEGMENTS_PER_PASS;
        let report = disperser.scrub_metadata(window).await?;
        if !report.republished.is_empty() || !report.damaged.is_empty() {
            tracing::warn!(
                republished = report.republished.len(),
                damaged = report.damaged.len(),
                "metadata scrub found records missing or damaged on hosters"
            );
        }
        self.next = if report.segments_checked < METADATA_SCRUB_SEGMENTS_PER_PASS {
            0
        } else {
            self.next + METADATA_SCRUB_SEGMENTS_PER_PASS
        };
        Ok(())
    }
}

async fn maintain(disperser: Disperser, handle: ArchivePluginHandle, keep: u64) {
    let mut scrub = ScrubCursor::default();
    loop {
        let _ = tokio::time::timeout(
            Duration::from_millis(MAINTENANCE_RETRY_MS),
            handle.wake.notified(),
        )
        .await;
        let mut error = None;
        if let Err(e) = disperser.disperse_pending().await {
            tracing::warn!(error = %e, "dispersal stalled; pruning waits");
            error = Some(format!("disperse: {e}"));
        }
        if let Err(e) = disperser.verify_dispersed().await {
            tracing::warn!(error = %e, "read-back verification failed; pruning waits");
            error.get_or_insert(format!("verify: {e}"));
        }
        if let Err(e) = scrub.step(&disperser).await {
            tracing::warn!(error = %e, "metadata scrub failed");
            error.get_or_insert(format!("metadata scrub: {e}"));
        }
        let watermark = match disperser.safe_prune_watermark() {
            Ok(w) => w,
            Err(e) => {
                error.get_or_insert(format!("watermark: {e}"));
                handle.watermark.load(Ordering::SeqCst)
            }
        };
        handle.watermark.store(watermark, Ordering::SeqCst);
        if let Err(e) = disperser.prune_local_segments(keep) {
            error.get_or_insert(format!("prune local segments: {e}"));
        }
        if let Ok(mut s) = handle.status.lock() {
            s.passes += 1;
            s.last_error = error;
            s.watermark = watermark;
        }
    }
}

impl FinalityPlugin for ArchivePlugin {
    fn next_needed(&self) -> u64 {
        self.archive.log().last().map_or(0, |(n, _)| n + 1)
    }

    fn on_finalized(&mut self, b: &FinalizedBlock<'_>) -> Result<(), String> {
        let record = BlockRecord {
            number: b.number,
            hash: b.hash,
            parent_hash: b.parent_hash,
            block: b.block.to_vec(),
            justification: b.justifications.map(<[u8]>::to_vec),
            changes: b
                .changes
                .iter()
                .map(|(k, v)| StateChange {
                    key: k.clone(),
                    value: Some(v.clone()),
                })
                .collect(),
        };
        let summary = append_restarting(self.archive.log_mut(), std::slice::from_ref(&record))
            .map_err(|e| format!("append block {}: {e}", b.number))?;
        if !summary.sealed.is_empty() {
            self.handle.wake();
        }
        Ok(())
    }

    fn prune_watermark(&self) -> u64 {
        self.handle.watermark.load(Ordering::SeqCst)
    }

    fn held_block(&self, number: u64) -> Result<Option<BlockBytes>, String> {
        let log = self.archive.log();
        if log.last().is_none_or(|(last, _)| number > last) {
            return Ok(None);
        }
        let record = match log.get(number) {
            Ok(r) => r,
            // Its local segment file was pruned once the hosters held it (the history reader
            // tries the local file first, then the hosters).
            Err(_) => self.block_from_hosters(number)?,
        };
        Ok(record.map(|r| (r.block, r.justification)))
    }
}
