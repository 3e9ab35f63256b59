//! `HistoryFs`: the mount's state over an `archiver::HistoryReader` and what each node holds
//! (block records, sizes, snapshots of the changing files), which the `fuser` callbacks serve.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use archiver::manifest::{Manifest, Placement};
use archiver::{BlockRecord, HistoryReader};
use fuser::{Errno, FileAttr};

use crate::cache::{self, CurrentSegment, RecentRecords, SizeCache, Snapshots};
use crate::layout::{self, Node};
use crate::tree::{self, Stamps};
use crate::view::{StoreReading, View, ViewCell};

/// What a chain knows how to show: the decoded header of a block, a manifest. The archive and
/// this crate are chain-agnostic; the CLI passes the chain's presenter.
pub trait Presenter: Send + Sync + 'static {
    /// `blocks/…/<n>.json`: the decoded header (number, hash, parent, state root, digest,
    /// extrinsic count, justification present). Must be a pure function of the record.
    fn block_json(&self, rec: &BlockRecord) -> Vec<u8>;
    /// `segments/<id>/manifest.json`.
    fn manifest_json(&self, manifest: &Manifest, placement: Option<&Placement>) -> Vec<u8>;
}

/// Counters `mount-stats.json` shows.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub block_reads: AtomicU64,
    pub bytes_served: AtomicU64,
    pub read_errors: AtomicU64,
    pub read_aheads: AtomicU64,
}

/// The filesystem. Every callback answers from the archive's store (a secondary, read-only
/// beside the writer) and its `HistoryReader`; nothing is written anywhere.
pub struct HistoryFs {
    reader: Arc<HistoryReader>,
    presenter: Arc<dyn Presenter>,
    rt: tokio::runtime::Handle,
    view: ViewCell,
    sizes: SizeCache,
    recent: RecentRecords<BlockRecord>,
    snapshots: Snapshots,
    current_segment: CurrentSegment,
    stamps: Stamps,
    pub(crate) counters: Counters,
    /// Set in `init` when the kernel opens files without asking (see there).
    pub(crate) no_open: bool,
}

impl std::fmt::Debug for HistoryFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryFs")
            .field("reader", &self.reader)
            .finish()
    }
}

/// A file's bytes, borrowed where they already exist.
pub(crate) enum Content {
    Static(&'static [u8]),
    Owned(Vec<u8>),
    Shared(Arc<Vec<u8>>),
    Block(Arc<BlockRecord>),
}

impl Content {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Content::Static(b) => b,
            Content::Owned(b) => b,
            Content::Shared(b) => b,
            Content::Block(rec) => &rec.block,
        }
    }
}

impl HistoryFs {
    /// A view over `reader`; `rt` runs the reader's async reads (FUSE calls arrive on the mount's
    /// own threads, which block on it).
    pub fn new(
        reader: Arc<HistoryReader>,
        presenter: Arc<dyn Presenter>,
        rt: tokio::runtime::Handle,
    ) -> Self {
        let now = SystemTime::now();
        let (uid, gid) = owner_ids();
        let fs = Self {
            reader,
            presenter,
            rt,
            view: ViewCell::new(now),
            sizes: SizeCache::new(),
            recent: RecentRecords::new(),
            snapshots: Snapshots::new(),
            current_segment: CurrentSegment::default(),
            stamps: Stamps {
                mounted_at: now,
                uid,
                gid,
            },
            counters: Counters::default(),
            no_open: false,
        };
        fs.view();
        fs
    }

    /// The current view, re-read from the store when older than `REFRESH_INTERVAL_MS`.
    pub(crate) fn view(&self) -> View {
        let store = self.reader.store();
        self.view
            .get(Instant::now(), |prev| StoreReading::read(store, prev))
    }

    pub(crate) fn in_range(&self, n: u64) -> bool {
        self.view()
            .range
            .is_some_and(|(first, head)| (first..=head).contains(&n))
    }

    /// The child `name` of directory `parent`, if it exists now.
    pub(crate) fn child(&self, parent: Node, name: &str) -> Option<Node> {
        let store = self.reader.store();
        tree::child(&self.view(), parent, name, |hash| {
            store.number_by_hash(hash).ok().flatten()
        })
    }

    /// Lists directory `node` from `offset`; see `tree::list`.
    pub(crate) fn list(&self, node: Node, offset: u64, add: impl FnMut(u64, Node, &str) -> bool) {
        let store = self.reader.store();
        let hashes = |first, last| match store.hashes_in(first, last) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "mount: cannot list by-hash");
                None
            }
        };
        tree::list(&self.view(), node, offset, hashes, add);
    }

    /// The attributes of `node` and their TTL. Size and mtime come from the same view.
    pub(crate) fn attr(&self, node: Node) -> Result<(FileAttr, Duration), Errno> {
        let view = self.view();
        let size = match node {
            n if n.is_dir() => 0,
            Node::Readme => crate::mount::README.len() as u64,
            Node::Head => self.keep_snapshot(node, view.head_json.clone()).len() as u64,
            Node::Stats | Node::Manifest(_) => self.snapshot(node)?.len() as u64,
            Node::Scale(n) => self.size_of(n, false)?,
            Node::Json(n) => self.size_of(n, true)?,
            Node::Hash(n) => layout::symlink_target(n).len() as u64,
            _ => return Err(Errno::ENOENT),
        };
        Ok(tree::attr(
            node,
            size,
            &view,
            &self.stamps,
            SystemTime::now(),
        ))
    }

    /// The whole content of a file node.
    pub(crate) fn content(&self, node: Node) -> Result<Content, Errno> {
        Ok(match node {
            Node::Readme => Content::Static(crate::mount::README.as_bytes()),
            Node::Head | Node::Stats | Node::Manifest(_) => {
                Content::Shared(self.last_snapshot(node)?)
            }
            // The record's own bytes: no copy on the read path.
            Node::Scale(n) => Content::Block(self.block(n)?),
            Node::Json(n) => {
                let rec = self.block(n)?;
                let json = self.presenter.block_json(&rec);
                self.sizes
                    .remember(n, rec.block.len() as u64, Some(json.len() as u64));
                Content::Owned(json)
            }
            Node::Hash(n) => Content::Owned(layout::symlink_target(n).into_bytes()),
            _ => return Err(Errno::EISDIR),
        })
    }

    fn block(&self, n: u64) -> Result<Arc<BlockRecord>, Errno> {
        if let Some(hit) = self.recent.get(n) {
            return Ok(hit);
        }
        match self.rt.block_on(self.reader.block(n)) {
            Ok(Some(rec)) => {
                self.counters.block_reads.fetch_add(1, Ordering::Relaxed);
                self.read_ahead_after(n);
                let rec = Arc::new(rec);
                self.recent.put(n, rec.clone());
                Ok(rec)
            }
            Ok(None) => Err(Errno::ENOENT),
            Err(e) => {
                // The caller sees EIO; the log says which block and why (hosters down, a shard
                // that fails its root, …).
                self.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(block = n, error = %e, "mount: cannot read block");
                Err(Errno::EIO)
            }
        }
    }

    /// Starts rebuilding the segments after block `n`'s, when they are on the hosters: a reader
    /// going through the blocks in order (`cat`, `cp -r`, `grep -r`, `rsync`) then finds the
    /// next segments ready (their shard fetches overlap the decoding of the current one) instead
    /// of waiting for each reconstruction. Which ones: `cache::read_ahead_segments`. The store
    /// is consulted only when a read crosses into another segment.
    fn read_ahead_after(&self, n: u64) {
        if self.current_segment.holds(n) {
            return;
        }
        let store = self.reader.store();
        let Ok(Some(loc)) = store.location(n) else {
            return;
        };
        let Ok(Some(manifest)) = store.manifest(loc.segment) else {
            // Not dispersed yet: read from the local log, nothing to read ahead.
            return;
        };
        self.current_segment
            .enter(loc.segment, manifest.first_number, manifest.last_number);
        let ahead = cache::read_ahead_segments(
            loc.segment,
            manifest.segment_bytes,
            self.reader.cache_bytes_max(),
            store.local_segments_pruned_below().unwrap_or(0),
        );
        for next in ahead {
            // Once per segment crossing; one already cached or in flight costs a lookup.
            self.counters.read_aheads.fetch_add(1, Ordering::Relaxed);
            let reader = self.reader.clone();
            self.rt.spawn(async move {
                if let Err(e) = reader.segment(next).await {
                    tracing::debug!(segment = next, error = %e, "mount: read-ahead failed");
                }
            });
        }
    }

    /// Length of block `n`'s `.scale` (`json` false) or `.json` file. The JSON is rendered only
    /// when its own size is asked for, so listing and reading `.scale` files never pays for it.
    fn size_of(&self, n: u64, json: bool) -> Result<u64, Errno> {
        if let Some(size) = self.sizes.get(n, json) {
            return Ok(size);
        }
        let rec = self.block(n)?;
        let json_len = json.then(|| self.presenter.block_json(&rec).len() as u64);
        let (scale, json_len) = self.sizes.remember(n, rec.block.len() as u64, json_len);
        Ok(if json { json_len.unwrap_or(0) } else { scale })
    }

    fn manifest_bytes(&self, s: u64) -> Result<Vec<u8>, Errno> {
        let store = self.reader.store();
        let manifest = store
            .manifest(s)
            .map_err(|e| {
                tracing::warn!(segment = s, error = %e, "mount: cannot read manifest");
                Errno::EIO
            })?
            .ok_or(Errno::ENOENT)?;
        let placement = store.placement(s).ok().flatten();
        let mut bytes = self.presenter.manifest_json(&manifest, placement.as_ref());
        if bytes.last() != Some(&b'\n') {
            bytes.push(b'\n');
        }
        Ok(bytes)
    }

    fn stats_bytes(&self) -> Vec<u8> {
        let s = &self.reader.stats;
        let json = serde_json::json!({
            "cacheBytes": self.reader.cached_bytes(),
            "cacheBytesMax": self.reader.cache_bytes_max(),
            "segmentsFetched": s.remote_segments.load(Ordering::Relaxed),
            "segmentCacheHits": s.cache_hits.load(Ordering::Relaxed),
            "localReads": s.local_reads.load(Ordering::Relaxed),
            "blockReads": self.counters.block_reads.load(Ordering::Relaxed),
            "bytesServed": self.counters.bytes_served.load(Ordering::Relaxed),
            "readErrors": self.counters.read_errors.load(Ordering::Relaxed),
            "readAheadsStarted": self.counters.read_aheads.load(Ordering::Relaxed),
            "sizeCacheEntries": self.sizes.len(),
        });
        let mut bytes = serde_json::to_vec_pretty(&json).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Fresh content of a changing file, kept as the snapshot its reads serve.
    fn snapshot(&self, node: Node) -> Result<Arc<Vec<u8>>, Errno> {
        let bytes = match node {
            Node::Head => self.view().head_json,
            Node::Stats => Arc::new(self.stats_bytes()),
            Node::Manifest(s) => Arc::new(self.manifest_bytes(s)?),
            _ => return Err(Errno::EINVAL),
        };
        Ok(self.keep_snapshot(node, bytes))
    }

    fn keep_snapshot(&self, node: Node, bytes: Arc<Vec<u8>>) -> Arc<Vec<u8>> {
        self.snapshots.keep(node.ino(), bytes)
    }

    fn last_snapshot(&self, node: Node) -> Result<Arc<Vec<u8>>, Errno> {
        match self.snapshots.get(node.ino()) {
            Some(s) => Ok(s),
            None => self.snapshot(node),
        }
    }
}

/// (uid, gid) of this process. std has no getuid and unsafe code is denied: /proc/self
/// belongs to our uid and gid.
fn owner_ids() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").map_or((0, 0), |m| (m.uid(), m.gid()))
}

/// The part of `bytes` a read at `offset` of up to `size` bytes returns (empty past the end).
pub fn read_window(bytes: &[u8], offset: u64, size: u32) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let end = start.saturating_add(size as usize).min(bytes.len());
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_window_clips_to_the_content() {
        let bytes = b"0123456789";
        assert_eq!(read_window(bytes, 0, 4), b"0123");
        assert_eq!(read_window(bytes, 8, 4), b"89");
        assert_eq!(read_window(bytes, 10, 4), b"");
        assert_eq!(read_window(bytes, u64::MAX, u32::MAX), b"");
        assert_eq!(read_window(bytes, 3, 0), b"");
        assert_eq!(read_window(b"", 0, 4096), b"");
    }

    #[test]
    fn files_are_owned_by_the_mounting_process() {
        use std::os::unix::fs::MetadataExt as _;
        // A file this process creates carries its uid and gid: every node of the mount shows
        // the same, so the kernel's default_permissions check grants the mounting user reads.
        let created = tempfile::tempfile()
            .and_then(|f| f.metadata())
            .map(|m| (m.uid(), m.gid()));
        assert_eq!(created.ok(), Some(owner_ids()));
    }

    #[test]
    fn content_borrows_what_exists() {
        assert_eq!(Content::Static(b"abc").bytes(), b"abc");
        assert_eq!(Content::Shared(Arc::new(b"xy".to_vec())).bytes(), b"xy");
        assert_eq!(Content::Owned(Vec::new()).bytes(), b"");
    }
}
