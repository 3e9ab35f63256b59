//! The in-process archive plugin: the node hands it each finalized block (with its state
//! changes), it appends to the archive log, and the archive's operations service
//! (`archiver::ops`) disperses, verifies, heals and raises the prune watermark.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use archiver::ops::{OpsHandle, OpsOptions, OpsService, OpsStatus, SystemClock};
use archiver::record::{BlockRecord, StateChange};
use archiver::{Archive, ArchiveMetrics, HistoryReader};

use crate::chain_db::BlockBytes;
use crate::node::{FinalityPlugin, FinalizedBlock};

/// Knobs of the plugin.
#[derive(Clone, Debug)]
pub struct ArchivePluginOptions {
    /// Bound of the history read cache.
    pub history_cache_bytes: usize,
    /// The operations service the plugin runs (maintenance, health, audits, repair, GC).
    pub ops: OpsOptions,
    /// Where the service and the history reader publish their figures; None: nowhere.
    pub metrics: Option<ArchiveMetrics>,
}

impl Default for ArchivePluginOptions {
    fn default() -> Self {
        Self {
            history_cache_bytes: archiver::history::HISTORY_CACHE_BYTES_DEFAULT,
            ops: OpsOptions::default(),
            metrics: None,
        }
    }
}

/// Shared view of a running plugin.
#[derive(Clone)]
pub struct ArchivePluginHandle {
    pub reader: Arc<HistoryReader>,
    pub watermark: Arc<AtomicU64>,
    pub ops: OpsHandle,
}

impl std::fmt::Debug for ArchivePluginHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchivePluginHandle")
            .field("watermark", &self.watermark.load(Ordering::Relaxed))
            .finish()
    }
}

impl ArchivePluginHandle {
    /// Asks the operations service for a pass now.
    pub fn wake(&self) {
        self.ops.wake();
    }

    pub fn status(&self) -> OpsStatus {
        self.ops.status()
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
        let mut reader = HistoryReader::new(
            archive.store().clone(),
            archive.log().dir().to_path_buf(),
            archive.remote().clone(),
            opts.history_cache_bytes,
        );
        let mut service = OpsService::for_archive(&archive, opts.ops, Arc::new(SystemClock::new()));
        if let Some(m) = opts.metrics {
            reader = reader.with_metrics(m.clone());
            service = service.with_metrics(m);
        }
        let reader = Arc::new(reader);
        let (task, ops) = service.spawn(rt);
        let handle = ArchivePluginHandle {
            reader,
            watermark: ops.watermark.clone(),
            ops,
        };
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
                    value: v.clone(),
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
