//! Read-only FUSE view of the archived chain history (`archiver mount`): blocks as files, nested so
//! no directory is huge, decoded headers beside them, manifests and the finalized head, read
//! through the archive's read path (`archiver::HistoryReader`: the local log while a segment is
//! kept, else the segment rebuilt from the hosters into a bounded cache, one reconstruction per
//! segment however many readers wait for it).
//!
//! API boundary: [`HistoryFs`] (the filesystem over a `HistoryReader` and a [`Presenter`] for the
//! chain-specific JSON), [`mount`] (mounts it, refusing a stale mountpoint with the command that
//! clears it). The crate never writes to the archive and knows no chain format.

pub mod layout;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use archiver::manifest::{Manifest, Placement};
use archiver::{BlockRecord, HistoryReader};
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
};

use layout::Node;

/// How often (at most) the view re-reads the archive's store for new blocks and segments: new
/// blocks appear within this long of being archived, and a busy `ls` does not turn into a store
/// catch-up per call.
pub const REFRESH_INTERVAL_MS: u64 = 200;
/// How long the kernel may cache names and attributes of things that never change (block files,
/// manifests, symlinks): archived blocks are immutable.
const IMMUTABLE_TTL: Duration = Duration::from_secs(3600);
/// Directories and `head.json` change as blocks are archived.
const CHANGING_TTL: Duration = Duration::from_millis(REFRESH_INTERVAL_MS);
/// Block file sizes remembered (number → `.scale` and `.json` lengths) so `ls -l` and `stat` do
/// not rebuild a block per call; ~40 bytes each, so the bound is ~8 MiB, outside `--cache-mib`.
pub const SIZE_CACHE_ENTRIES_MAX: usize = 200_000;
/// Hashes fetched per catalog read while listing `by-hash/`: one RocksDB scan per batch.
const BY_HASH_BATCH: u64 = 512;
/// Snapshots of changing files kept (one per manifest read lately, head.json, stats).
const SNAPSHOTS_MAX: usize = 1_024;
/// Decoded block records kept for the next callback (a lookup's size, then the read).
const RECENT_RECORDS_MAX: usize = 16;
/// Segments rebuilt ahead of a sequential reader: two keep both cores busy (one decoding, one
/// fetching shards) without holding much of the cache.
const READ_AHEAD_SEGMENTS_MAX: u64 = 2;
/// FUSE worker threads: reads of different segments proceed while one waits on the hosters.
pub const MOUNT_THREADS: usize = 4;

/// What a chain knows how to show: the decoded header of a block, a manifest. The archive and
/// this crate are chain-agnostic; the CLI passes the chain's presenter.
pub trait Presenter: Send + Sync + 'static {
    /// `blocks/…/<n>.json`: the decoded header (number, hash, parent, state root, digest,
    /// extrinsic count, justification present). Must be a pure function of the record.
    fn block_json(&self, rec: &BlockRecord) -> Vec<u8>;
    /// `segments/<id>/manifest.json`.
    fn manifest_json(&self, manifest: &Manifest, placement: Option<&Placement>) -> Vec<u8>;
}

/// Why a mount could not start; each names its path.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(
        "{path} is a stale mount (its filesystem process died): clear it with `fusermount3 -u {path}` (or `umount -l {path}` as root), then mount again"
    )]
    StaleMount { path: String },
    #[error("mountpoint {path}: {source}")]
    Mountpoint {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mountpoint {path} is not a directory")]
    NotADirectory { path: String },
    #[error("mounting {path}: {source} (needs /dev/fuse and fusermount3, from the fuse3 package)")]
    Mount {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Counters `mount-stats.json` shows.
#[derive(Debug, Default)]
struct Counters {
    block_reads: AtomicU64,
    bytes_served: AtomicU64,
    read_errors: AtomicU64,
    read_aheads: AtomicU64,
}

/// What the archive holds right now, refreshed at most every `REFRESH_INTERVAL_MS`.
#[derive(Clone, Debug)]
struct View {
    /// First and last archived block numbers, if any.
    range: Option<(u64, u64)>,
    /// Segments with a manifest (dispersed).
    segments: u64,
    refreshed: Instant,
    changed: SystemTime,
    head_json: Arc<Vec<u8>>,
}

/// The filesystem. Every callback answers from the archive's store (a secondary, read-only
/// beside the writer) and its `HistoryReader`; nothing is written anywhere.
pub struct HistoryFs {
    reader: Arc<HistoryReader>,
    presenter: Arc<dyn Presenter>,
    rt: tokio::runtime::Handle,
    view: Mutex<View>,
    /// Block number → (`.scale` length, `.json` length once rendered).
    sizes: Mutex<HashMap<u64, (u64, Option<u64>)>>,
    mounted_at: SystemTime,
    uid: u32,
    gid: u32,
    counters: Counters,
    readme: Vec<u8>,
    /// Blocks decoded last: a `stat` then a `read` of one file (and the `.json` beside it) decode
    /// the record once.
    recent: Mutex<std::collections::VecDeque<(u64, Arc<BlockRecord>)>>,
    /// The content of head.json, mount-stats.json and manifests as last sized by a getattr:
    /// reads serve it, so what a reader gets matches the size it was told.
    snapshots: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
    /// Set in `init` when the kernel opens files without asking (see there).
    no_open: bool,
    /// The segment of the block read last, with its block range: read-ahead looks at the store
    /// only when a read crosses into another segment.
    current_segment: Mutex<Option<(u64, u64, u64)>>,
}

impl std::fmt::Debug for HistoryFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryFs")
            .field("reader", &self.reader)
            .finish()
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
            view: Mutex::new(View {
                range: None,
                segments: 0,
                // Forces the first refresh.
                refreshed: Instant::now()
                    .checked_sub(Duration::from_secs(3600))
                    .unwrap_or_else(Instant::now),
                changed: now,
                head_json: Arc::new(Vec::new()),
            }),
            sizes: Mutex::new(HashMap::new()),
            mounted_at: now,
            uid,
            gid,
            counters: Counters::default(),
            readme: README.as_bytes().to_vec(),
            recent: Mutex::new(std::collections::VecDeque::new()),
            snapshots: Mutex::new(HashMap::new()),
            no_open: false,
            current_segment: Mutex::new(None),
        };
        fs.view();
        fs
    }

    /// The current view, re-read from the store when older than `REFRESH_INTERVAL_MS`.
    fn view(&self) -> View {
        // A panicked callback may have poisoned it; the view is plain data, so keep serving.
        let mut v = self
            .view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if v.refreshed.elapsed() < Duration::from_millis(REFRESH_INTERVAL_MS) {
            return v.clone();
        }
        let store = self.reader.store();
        if let Err(e) = store.catch_up() {
            tracing::warn!(error = %e, "mount: cannot refresh the archive store");
        }
        let head = store.log_head().ok().and_then(|h| h.last);
        let first = store.first_number().ok().flatten();
        let segments = store.dispersed_next().unwrap_or(v.segments);
        let range = match (first, head) {
            (Some(f), Some((h, _))) if f <= h => Some((f, h)),
            _ => None,
        };
        if range != v.range || segments != v.segments {
            v.changed = SystemTime::now();
        }
        v.range = range;
        v.segments = segments;
        v.refreshed = Instant::now();
        let json = serde_json::json!({
            "number": range.map(|(_, h)| h),
            "hash": head.map(|(_, h)| format!("0x{}", hex::encode(h))),
            "firstNumber": range.map(|(f, _)| f),
            "segmentsDispersed": segments,
            "localSegmentsPrunedBelow": store.local_segments_pruned_below().ok(),
        });
        let mut bytes = serde_json::to_vec_pretty(&json).unwrap_or_default();
        bytes.push(b'\n');
        if bytes != *v.head_json {
            // head.json's mtime: the kernel drops its cached pages when it moves.
            v.changed = SystemTime::now();
            v.head_json = Arc::new(bytes);
        }
        v.clone()
    }

    fn block(&self, n: u64) -> Result<Arc<BlockRecord>, Errno> {
        if let Some(hit) = self
            .recent
            .lock()
            .ok()
            .and_then(|r| r.iter().find(|(m, _)| *m == n).map(|(_, rec)| rec.clone()))
        {
            return Ok(hit);
        }
        match self.rt.block_on(self.reader.block(n)) {
            Ok(Some(rec)) => {
                self.counters.block_reads.fetch_add(1, Ordering::Relaxed);
                self.read_ahead_after(n);
                let rec = Arc::new(rec);
                if let Ok(mut r) = self.recent.lock() {
                    if r.len() >= RECENT_RECORDS_MAX {
                        r.pop_front();
                    }
                    r.push_back((n, rec.clone()));
                }
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
    /// of waiting for each reconstruction. Up to `READ_AHEAD_SEGMENTS_MAX` ahead, and only as many
    /// as the cache holds beside the current one and one more, so read-ahead never evicts what
    /// is being read. The store is consulted only when a read crosses into another segment.
    fn read_ahead_after(&self, n: u64) {
        let same = self
            .current_segment
            .lock()
            .ok()
            .and_then(|c| *c)
            .is_some_and(|(_, first, last)| (first..=last).contains(&n));
        if same {
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
        if let Ok(mut c) = self.current_segment.lock() {
            *c = Some((loc.segment, manifest.first_number, manifest.last_number));
        }
        let pruned_below = store.local_segments_pruned_below().unwrap_or(0);
        let segment_bytes = (manifest.segment_bytes as usize).max(1);
        let fit = (self.reader.cache_bytes_max() / segment_bytes).saturating_sub(2);
        let ahead = (READ_AHEAD_SEGMENTS_MAX as usize).min(fit) as u64;
        for next in loc.segment + 1..=loc.segment + ahead {
            if next >= pruned_below {
                break;
            }
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
        let known = self.sizes.lock().ok().and_then(|m| m.get(&n).copied());
        match (known, json) {
            (Some((scale, _)), false) => return Ok(scale),
            (Some((_, Some(j))), true) => return Ok(j),
            _ => {}
        }
        let rec = self.block(n)?;
        let json_len = json.then(|| self.presenter.block_json(&rec).len() as u64);
        let (scale, json_len) = self.remember_sizes(n, &rec, json_len);
        Ok(if json { json_len.unwrap_or(0) } else { scale })
    }

    fn remember_sizes(
        &self,
        n: u64,
        rec: &BlockRecord,
        json_len: Option<u64>,
    ) -> (u64, Option<u64>) {
        let scale = rec.block.len() as u64;
        let mut sizes = (scale, json_len);
        if let Ok(mut m) = self.sizes.lock() {
            if m.len() >= SIZE_CACHE_ENTRIES_MAX {
                // Sizes are cheap to recompute from a cached segment: start over rather than
                // track recency for 200,000 entries.
                m.clear();
            }
            let entry = m.entry(n).or_insert(sizes);
            if entry.1.is_none() {
                entry.1 = json_len;
            }
            sizes = *entry;
        }
        sizes
    }

    fn in_range(&self, n: u64) -> bool {
        self.view()
            .range
            .is_some_and(|(first, head)| (first..=head).contains(&n))
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
            "sizeCacheEntries": self.sizes.lock().map(|m| m.len()).unwrap_or(0),
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
        if let Ok(mut m) = self.snapshots.lock() {
            if m.len() >= SNAPSHOTS_MAX {
                m.clear();
            }
            m.insert(node.ino(), bytes.clone());
        }
        bytes
    }

    fn last_snapshot(&self, node: Node) -> Result<Arc<Vec<u8>>, Errno> {
        match self
            .snapshots
            .lock()
            .ok()
            .and_then(|m| m.get(&node.ino()).cloned())
        {
            Some(s) => Ok(s),
            None => self.snapshot(node),
        }
    }

    /// The whole content of a file node.
    fn content(&self, node: Node) -> Result<Content, Errno> {
        Ok(match node {
            Node::Readme => Content::Owned(self.readme.clone()),
            Node::Head | Node::Stats | Node::Manifest(_) => {
                Content::Shared(self.last_snapshot(node)?)
            }
            // The record's own bytes: no copy on the read path.
            Node::Scale(n) => Content::Block(self.block(n)?),
            Node::Json(n) => {
                let rec = self.block(n)?;
                let json = self.presenter.block_json(&rec);
                self.remember_sizes(n, &rec, Some(json.len() as u64));
                Content::Owned(json)
            }
            Node::Hash(n) => Content::Owned(layout::symlink_target(n).into_bytes()),
            _ => return Err(Errno::EISDIR),
        })
    }

    fn attr(&self, node: Node) -> Result<(FileAttr, Duration), Errno> {
        let view = self.view();
        let (kind, size, perm, ttl, time) = match node {
            n if n.is_dir() => (
                FileType::Directory,
                0,
                0o555,
                CHANGING_TTL,
                if matches!(n, Node::SegmentDir(_)) {
                    self.mounted_at
                } else {
                    view.changed
                },
            ),
            Node::Readme => (
                FileType::RegularFile,
                self.readme.len() as u64,
                0o444,
                IMMUTABLE_TTL,
                self.mounted_at,
            ),
            // Size and mtime from the same view: a refresh in between cannot pair new bytes
            // with the old mtime (the kernel would keep the old pages).
            Node::Head => (
                FileType::RegularFile,
                self.keep_snapshot(node, view.head_json.clone()).len() as u64,
                0o444,
                Duration::ZERO,
                view.changed,
            ),
            // Always a new mtime: the kernel drops whatever pages it had.
            Node::Stats | Node::Manifest(_) => (
                FileType::RegularFile,
                self.snapshot(node)?.len() as u64,
                0o444,
                Duration::ZERO,
                SystemTime::now(),
            ),
            Node::Scale(n) | Node::Json(n) => {
                let size = self.size_of(n, matches!(node, Node::Json(_)))?;
                (
                    FileType::RegularFile,
                    size,
                    0o444,
                    IMMUTABLE_TTL,
                    self.mounted_at,
                )
            }
            Node::Hash(n) => (
                FileType::Symlink,
                layout::symlink_target(n).len() as u64,
                0o777,
                IMMUTABLE_TTL,
                self.mounted_at,
            ),
            _ => return Err(Errno::ENOENT),
        };
        Ok((
            FileAttr {
                ino: INodeNo(node.ino()),
                size,
                blocks: size.div_ceil(512),
                atime: time,
                mtime: time,
                ctime: time,
                crtime: time,
                kind,
                perm,
                nlink: if kind == FileType::Directory { 2 } else { 1 },
                uid: self.uid,
                gid: self.gid,
                rdev: 0,
                blksize: 4096,
                flags: 0,
            },
            ttl,
        ))
    }

    /// The child `name` of `parent`, if it exists now.
    fn child(&self, parent: Node, name: &str) -> Option<Node> {
        let view = self.view();
        let (first, head) = view.range.unwrap_or((1, 0));
        let has_blocks = view.range.is_some();
        match parent {
            Node::Root => Some(match name {
                layout::README_NAME => Node::Readme,
                layout::HEAD_NAME => Node::Head,
                layout::STATS_NAME => Node::Stats,
                layout::BLOCKS_NAME => Node::Blocks,
                layout::BY_HASH_NAME => Node::ByHash,
                layout::SEGMENTS_NAME => Node::Segments,
                _ => return None,
            }),
            Node::Blocks => {
                let t = layout::parse_dir_name(name)?;
                (has_blocks && layout::mids_in_top(t, first, head).is_some())
                    .then_some(Node::Top(t))
            }
            Node::Top(top) => {
                let mid = layout::parse_dir_name(name)?;
                (has_blocks
                    && mid < layout::BLOCKS_PER_DIR
                    && layout::blocks_in_dir(top, mid, first, head).is_some())
                .then_some(Node::Mid { top, mid })
            }
            Node::Mid { top, mid } => {
                let (n, json) = layout::parse_block_file_name(name)?;
                (has_blocks && layout::dir_of(n) == (top, mid) && (first..=head).contains(&n))
                    .then_some(if json { Node::Json(n) } else { Node::Scale(n) })
            }
            Node::ByHash => {
                let hash = layout::parse_hash_name(name)?;
                let n = self.reader.store().number_by_hash(&hash).ok()??;
                (first..=head).contains(&n).then_some(Node::Hash(n))
            }
            Node::Segments => {
                let s: u64 = name.parse().ok()?;
                (s.to_string() == name && s < view.segments).then_some(Node::SegmentDir(s))
            }
            Node::SegmentDir(s) => (name == layout::MANIFEST_NAME).then_some(Node::Manifest(s)),
            _ => None,
        }
    }

    /// Lists `node` from entry index `offset` (0 = "."), filling `reply` until it is full.
    /// Entries are computed from their index, so a directory of millions lists lazily, a
    /// buffer at a time.
    fn list(&self, node: Node, parent: Node, offset: u64, reply: &mut ReplyDirectory) {
        let view = self.view();
        let (first, head) = view.range.unwrap_or((1, 0));
        let has_blocks = view.range.is_some();
        let mut i = offset;
        // Returns false when the buffer is full.
        let mut add = |i: u64, child: Node, name: &str| -> bool {
            let kind = match child {
                c if c.is_dir() => FileType::Directory,
                Node::Hash(_) => FileType::Symlink,
                _ => FileType::RegularFile,
            };
            !reply.add(INodeNo(child.ino()), i + 1, kind, name)
        };
        if i == 0 {
            if !add(0, node, ".") {
                return;
            }
            i = 1;
        }
        if i == 1 {
            if !add(1, parent, "..") {
                return;
            }
            i = 2;
        }
        let j = i - 2;
        match node {
            Node::Root => {
                let entries = [
                    (Node::Readme, layout::README_NAME),
                    (Node::Head, layout::HEAD_NAME),
                    (Node::Blocks, layout::BLOCKS_NAME),
                    (Node::ByHash, layout::BY_HASH_NAME),
                    (Node::Segments, layout::SEGMENTS_NAME),
                    (Node::Stats, layout::STATS_NAME),
                ];
                for (k, (child, name)) in entries.iter().enumerate().skip(j as usize) {
                    if !add(k as u64 + 2, *child, name) {
                        return;
                    }
                }
            }
            Node::Blocks if has_blocks => {
                let (lo, hi) = (
                    first / layout::BLOCKS_PER_TOP,
                    head / layout::BLOCKS_PER_TOP,
                );
                for t in (lo + j)..=hi {
                    if !add(t - lo + 2, Node::Top(t), &layout::dir_name(t)) {
                        return;
                    }
                }
            }
            Node::Top(top) if has_blocks => {
                let Some((lo, hi)) = layout::mids_in_top(top, first, head) else {
                    return;
                };
                for mid in (lo + j)..=hi {
                    if !add(mid - lo + 2, Node::Mid { top, mid }, &layout::dir_name(mid)) {
                        return;
                    }
                }
            }
            Node::Mid { top, mid } if has_blocks => {
                let Some((lo, hi)) = layout::blocks_in_dir(top, mid, first, head) else {
                    return;
                };
                let count = (hi - lo + 1) * 2;
                for k in j..count {
                    let n = lo + k / 2;
                    let json = k % 2 == 1;
                    let child = if json { Node::Json(n) } else { Node::Scale(n) };
                    if !add(k + 2, child, &layout::block_file_name(n, json)) {
                        return;
                    }
                }
            }
            Node::ByHash if has_blocks => {
                let mut n = first + j;
                while n <= head {
                    let last = (n + BY_HASH_BATCH - 1).min(head);
                    let hashes = match self.reader.store().hashes_in(n, last) {
                        Ok(h) => h,
                        Err(e) => {
                            tracing::warn!(error = %e, "mount: cannot list by-hash");
                            return;
                        }
                    };
                    for (k, h) in hashes.iter().enumerate() {
                        let b = n + k as u64;
                        let name = format!("0x{}", hex::encode(h));
                        if !add(b - first + 2, Node::Hash(b), &name) {
                            return;
                        }
                    }
                    n = last + 1;
                }
            }
            Node::Segments => {
                for s in j..view.segments {
                    if !add(s + 2, Node::SegmentDir(s), &s.to_string()) {
                        return;
                    }
                }
            }
            Node::SegmentDir(s) if j == 0 => {
                let _ = add(2, Node::Manifest(s), layout::MANIFEST_NAME);
            }
            _ => {}
        }
    }

    fn parent_of(node: Node) -> Node {
        match node {
            Node::Top(_) => Node::Blocks,
            Node::Mid { top, .. } => Node::Top(top),
            Node::SegmentDir(_) => Node::Segments,
            _ => Node::Root,
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

fn node_of(ino: INodeNo) -> Result<Node, Errno> {
    Node::from_ino(ino.0).ok_or(Errno::ENOENT)
}

impl Filesystem for HistoryFs {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        // Zero-message opens: files are then opened and closed by the kernel alone, with their
        // pages kept, so a hot read of a block file costs no round trip to this process. Files
        // whose content changes (head.json, mount-stats.json, manifests) stay correct because
        // their attributes never stay cached (TTL 0) and each getattr gives a new mtime when the
        // content changed, which makes the kernel drop their pages (`auto_inval_data`).
        let caps = config.capabilities();
        if caps.contains(fuser::InitFlags::FUSE_NO_OPEN_SUPPORT)
            && config
                .add_capabilities(fuser::InitFlags::FUSE_AUTO_INVAL_DATA)
                .is_ok()
        {
            self.no_open = true;
        }
        Ok(())
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing is ever written: the kernel stops sending flushes after this answer.
        reply.error(Errno::ENOSYS);
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = node_of(parent).and_then(|p| {
            if !p.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            let name = name.to_str().ok_or(Errno::ENOENT)?;
            self.child(p, name).ok_or(Errno::ENOENT)
        });
        match found.and_then(|node| self.attr(node)) {
            Ok((attr, ttl)) => reply.entry(&ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match node_of(ino).and_then(|n| self.attr(n)) {
            Ok((attr, ttl)) => reply.attr(&ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match node_of(ino) {
            Ok(Node::Hash(n)) if self.in_range(n) => {
                reply.data(layout::symlink_target(n).as_bytes())
            }
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if self.no_open && flags.acc_mode() == OpenAccMode::O_RDONLY {
            // See `init`: the kernel opens files itself from now on (writes are refused by the
            // read-only mount before they get here).
            return reply.error(Errno::ENOSYS);
        }
        if flags.acc_mode() != OpenAccMode::O_RDONLY
            || flags.0 & (libc::O_TRUNC | libc::O_APPEND | libc::O_CREAT) != 0
        {
            return reply.error(Errno::EROFS);
        }
        match node_of(ino) {
            // Immutable: the kernel may keep their pages between opens (hot reads never reach
            // us again).
            Ok(Node::Scale(_) | Node::Json(_) | Node::Readme) => {
                reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE)
            }
            // Content changes: no page cache; reads serve the snapshot the last stat sized.
            Ok(Node::Head | Node::Stats | Node::Manifest(_)) => {
                reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO)
            }
            Ok(n) if n.is_dir() => reply.error(Errno::EISDIR),
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match node_of(ino).and_then(|n| self.content(n)) {
            Ok(content) => {
                let window = read_window(content.bytes(), offset, size);
                self.counters
                    .bytes_served
                    .fetch_add(window.len() as u64, Ordering::Relaxed);
                reply.data(window);
            }
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match node_of(ino) {
            Ok(n) if n.is_dir() => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match node_of(ino) {
            Ok(n) if n.is_dir() => {
                self.list(n, Self::parent_of(n), offset, &mut reply);
                reply.ok();
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let files = self
            .view()
            .range
            .map_or(0, |(first, head)| (head - first + 1) * 2);
        reply.statfs(0, 0, 0, files, 0, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if mask.contains(AccessFlags::W_OK) {
            return reply.error(Errno::EROFS);
        }
        match node_of(ino) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    // Every change is refused with EROFS. The mount is also read-only at the kernel (`ro`), which
    // answers most of these itself; these are for the paths that still reach us.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }
}

/// A file's bytes, borrowed where they already exist.
enum Content {
    Owned(Vec<u8>),
    Shared(Arc<Vec<u8>>),
    Block(Arc<BlockRecord>),
}

impl Content {
    fn bytes(&self) -> &[u8] {
        match self {
            Content::Owned(b) => b,
            Content::Shared(b) => b,
            Content::Block(rec) => &rec.block,
        }
    }
}

/// The README at the mount's root.
const README: &str = "\
This is a read-only view of an archived Proof-of-Authority chain history (`archiver mount`).

head.json            the last archived (finalized) block: number, hash; first archived block;
                     segments dispersed to the hosters
blocks/TTT/MMM/      block N lives in blocks/<N / 1000000>/<(N / 1000) % 1000>/, so no directory
                     holds more than 1,000 blocks
  NNNNNNNNN.scale    the block's bytes exactly as archived (SCALE-encoded for Substrate chains)
  NNNNNNNNN.json     its decoded header: number, hash, parent, state root, extrinsics root,
                     digest, extrinsic count, whether a justification is present
by-hash/0x<hash>     a symlink to the block's .scale file
segments/<id>/manifest.json
                     the segment's manifest: block range, blocks root, shard roots, placement
mount-stats.json     the mount's cache and read counters

Blocks whose segment files were pruned from local disk are fetched from the shard hosters when
read (any m of the k+m hosters may be down) and verified as in a restore; a bounded cache
(--cache-mib) keeps recent segments. New blocks appear as they are archived. Every write is
refused (EROFS). Unmount with Ctrl-C or SIGTERM to `archiver mount`.
";

/// A mounted view; dropping it unmounts.
pub struct Mounted {
    session: fuser::BackgroundSession,
    path: PathBuf,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted").field("path", &self.path).finish()
    }
}

impl Mounted {
    /// Unmounts and waits for the filesystem threads to end.
    pub fn unmount(self) -> std::io::Result<()> {
        self.session.umount_and_join()
    }

    /// Unmounts with `fusermount3 -u` unless processes still use the mount: then the mount
    /// keeps serving and comes back with fusermount3's reason (e.g. "Device or resource busy"),
    /// instead of being left half torn down.
    pub fn try_unmount(self) -> Result<(), Box<(Self, String)>> {
        match std::process::Command::new("fusermount3")
            .arg("-u")
            .arg(&self.path)
            .output()
        {
            Ok(out) if out.status.success() => {
                // The kernel ended the connection: the session thread returns.
                let _ = self.session.join();
                Ok(())
            }
            Ok(out) => {
                let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
                Err(Box::new((self, why)))
            }
            Err(e) => Err(Box::new((self, format!("running fusermount3: {e}")))),
        }
    }

    /// Whether the filesystem has ended: someone unmounted it from outside.
    pub fn is_finished(&self) -> bool {
        self.session.guard.is_finished()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether `path` is a mountpoint whose filesystem process is gone ("Transport endpoint is not
/// connected").
pub fn is_stale_mount(path: &Path) -> bool {
    matches!(std::fs::metadata(path), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN))
}

/// Mounts `fs` read-only at `mountpoint`.
pub fn mount(fs: HistoryFs, mountpoint: &Path) -> Result<Mounted, MountError> {
    let path = mountpoint.display().to_string();
    match std::fs::metadata(mountpoint) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(MountError::StaleMount { path })
        }
        Err(source) => return Err(MountError::Mountpoint { path, source }),
        Ok(m) if !m.is_dir() => return Err(MountError::NotADirectory { path }),
        Ok(_) => {}
    }
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("poa-archive".into()),
        fuser::MountOption::Subtype("archiver".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoExec,
    ];
    config.n_threads = Some(MOUNT_THREADS);
    let session =
        fuser::spawn_mount(fs, mountpoint, &config).map_err(|source| MountError::Mount {
            path: path.clone(),
            source,
        })?;
    Ok(Mounted {
        session,
        path: mountpoint.to_path_buf(),
    })
}
