//! The append-only block log: finalized blocks appended to segment files, sealed at a size
//! threshold, indexed in the local store, and recovered after a crash.
//!
//! Order of writes for one append batch: record bytes to the segment file (fsynced under
//! `Durability::Fsync`), then one atomic RocksDB batch (catalog, hash index, state changes, their
//! state-history index entries while the index is caught up, log head).
//! A crash between the two leaves records beyond the catalog's end; `open` replays them. A crash in
//! the middle of a record leaves a torn tail; `open` truncates it. So every block whose append
//! returned is present exactly once after any crash.
//!
//! A failed write, fsync or commit poisons the handle: the file, the catalog and the in-memory
//! head may disagree, so every later call fails with [`ArchiveError::Poisoned`] until the log is
//! reopened ([`BlockLog::reopen`]), which recovers as after a crash.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Durability;
use crate::error::{short_hex, ArchiveError, Result};
use crate::fs::{FileLayer, OsFiles, SegmentFile};
use crate::record::{
    scan_record, BlockRecord, RecordScan, SegmentHeader, RECORD_BYTES_MAX, SEGMENT_HEADER_BYTES,
};
use crate::store::{Batch, Location, LogHead, SealedSegment, Store};

/// Read size while replaying a segment tail: large enough for sequential disk throughput.
const REPLAY_READ_BYTES: usize = 4 * 1024 * 1024;
/// Read size while hashing a sealed segment or rewriting a replayed tail.
const COPY_CHUNK_BYTES: usize = 1024 * 1024;
/// Appended bytes kept in memory before they are written out mid-batch (memory bound).
const FLUSH_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// What an append did with one block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    New,
    /// The same (number, hash) was already archived: nothing written.
    Duplicate,
}

/// Result of an append batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendSummary {
    pub appended: u64,
    pub duplicates: u64,
    pub bytes: u64,
    /// Segments sealed during this batch.
    pub sealed: Vec<u64>,
}

struct ActiveSegment {
    id: u64,
    file: Box<dyn SegmentFile>,
    /// Bytes durable in the file and covered by the catalog.
    len: u64,
}

/// The local append-only log.
pub struct BlockLog {
    dir: PathBuf,
    store: Arc<Store>,
    segment_size_bytes: u64,
    durability: Durability,
    head: LogHead,
    active: Option<ActiveSegment>,
    files: Arc<dyn FileLayer>,
    /// The first failure of a write, fsync or commit: set, the handle refuses all work.
    poisoned: Option<String>,
}

impl std::fmt::Debug for BlockLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockLog")
            .field("dir", &self.dir)
            .field("head", &self.head)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

pub fn segment_file_name(segment: u64) -> String {
    format!("{segment:010}.seg")
}

impl BlockLog {
    /// Opens the log in `dir`, recovering from any crash: replays records beyond the catalog's end
    /// and truncates a torn tail.
    pub fn open(
        dir: &Path,
        store: Arc<Store>,
        segment_size_bytes: u64,
        durability: Durability,
    ) -> Result<Self> {
        Self::open_with(
            dir,
            store,
            segment_size_bytes,
            durability,
            Arc::new(OsFiles),
        )
    }

    /// [`open`](Self::open) over another file layer (fault injection in tests).
    pub fn open_with(
        dir: &Path,
        store: Arc<Store>,
        segment_size_bytes: u64,
        durability: Durability,
        files: Arc<dyn FileLayer>,
    ) -> Result<Self> {
        files
            .create_dir_all(dir)
            .map_err(|e| ArchiveError::io("create segment directory", dir, e))?;
        let head = store.log_head()?;
        let mut log = Self {
            dir: dir.to_path_buf(),
            store,
            segment_size_bytes,
            durability,
            head,
            active: None,
            files,
            poisoned: None,
        };
        if let Some((id, end)) = head.active {
            log.recover_active(id, end)?;
        }
        // A crash between a seal's file sync and its store write leaves a full active segment.
        if log
            .active
            .as_ref()
            .is_some_and(|a| a.len >= segment_size_bytes)
        {
            log.seal_active()?;
        }
        Ok(log)
    }

    /// Drops this handle's open segment and opens the log again with the same store and file
    /// layer, recovering as after a crash. What a poisoned handle needs before further work; on
    /// failure the handle stays (or becomes) poisoned.
    pub fn reopen(&mut self) -> Result<()> {
        self.active = None;
        match Self::open_with(
            &self.dir,
            self.store.clone(),
            self.segment_size_bytes,
            self.durability,
            self.files.clone(),
        ) {
            Ok(fresh) => {
                *self = fresh;
                Ok(())
            }
            Err(e) => {
                self.poisoned.get_or_insert_with(|| e.to_string());
                Err(e)
            }
        }
    }

    /// What failed first when the handle is poisoned (None while healthy).
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    fn check_healthy(&self) -> Result<()> {
        match &self.poisoned {
            None => Ok(()),
            Some(cause) => Err(ArchiveError::Poisoned {
                dir: self.dir.clone(),
                cause: cause.clone(),
            }),
        }
    }

    /// Poisons the handle when `r` is a failure of a write, fsync or commit.
    fn poison_on_error<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            if self.poisoned.is_none() {
                tracing::error!(dir = %self.dir.display(), error = %e, "block log poisoned: reopen to recover");
                self.poisoned = Some(e.to_string());
            }
        }
        r
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn segment_path(&self, segment: u64) -> PathBuf {
        self.dir.join(segment_file_name(segment))
    }

    /// Last appended block.
    pub fn last(&self) -> Option<(u64, [u8; 32])> {
        self.head.last
    }

    pub fn head(&self) -> LogHead {
        self.head
    }

    fn recover_active(&mut self, id: u64, catalog_end: u64) -> Result<()> {
        let path = self.segment_path(id);
        let file = self
            .files
            .open(&path)
            .map_err(|e| ArchiveError::io("open active segment", &path, e))?;
        let file_len = file
            .size()
            .map_err(|e| ArchiveError::io("stat active segment", &path, e))?;
        if file_len < catalog_end {
            return Err(ArchiveError::SegmentFileCorrupt {
                path,
                offset: file_len,
                reason: format!(
                    "file ends at {file_len} but the catalog indexes blocks up to byte {catalog_end}: acknowledged blocks are missing (was durability = \"os\" used across a power loss?)"
                ),
            });
        }
        read_header(file.as_ref(), &path)?;

        // Replay whole records past the catalog's end; stop at the first torn or invalid one.
        let mut valid_end = catalog_end;
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_start = catalog_end;
        let mut eof = false;
        let mut batch = Batch::default();
        let mut head = self.head;
        loop {
            let rel = (valid_end - buf_start) as usize;
            match scan_record(&buf[rel..]) {
                RecordScan::Complete { record, len } => {
                    if self.check_sequence(&head, &record).is_err() {
                        tracing::warn!(
                            segment = id,
                            offset = valid_end,
                            "replay stopped: record out of sequence"
                        );
                        break;
                    }
                    let loc = Location {
                        segment: id,
                        offset: valid_end,
                        len: len as u32,
                        hash: record.hash,
                    };
                    self.index_record(&mut batch, &record, &loc)?;
                    head.last = Some((record.number, record.hash));
                    valid_end += len as u64;
                }
                RecordScan::Incomplete if !eof => {
                    // Keep the unconsumed tail, read more.
                    buf.drain(..rel);
                    buf_start = valid_end;
                    let want = REPLAY_READ_BYTES.max(
                        crate::record::record_len_prefix(&buf)
                            .unwrap_or(0)
                            .min(RECORD_BYTES_MAX),
                    );
                    let old = buf.len();
                    buf.resize(old + want, 0);
                    let read_at = buf_start + old as u64;
                    let n = read_full_at(file.as_ref(), &mut buf[old..], read_at)
                        .map_err(|e| ArchiveError::io("read active segment", &path, e))?;
                    buf.truncate(old + n);
                    if n == 0 {
                        eof = true;
                    }
                }
                RecordScan::Incomplete => break,
                RecordScan::Invalid(reason) => {
                    tracing::warn!(segment = id, offset = valid_end, %reason, "truncating invalid tail");
                    break;
                }
            }
        }
        if valid_end != catalog_end {
            tracing::info!(
                segment = id,
                replayed_bytes = valid_end - catalog_end,
                "replayed records past the catalog"
            );
            // These bytes may be readable only from the page cache of a write whose fsync failed
            // (the kernel then marks the pages clean): write them again and sync before indexing.
            rewrite_range(file.as_ref(), catalog_end, valid_end)
                .and_then(|_| file.sync_data())
                .map_err(|e| ArchiveError::io("rewrite replayed records", &path, e))?;
        }
        if file_len > valid_end {
            tracing::warn!(
                segment = id,
                torn_bytes = file_len - valid_end,
                "truncating torn tail"
            );
            file.set_len(valid_end)
                .map_err(|e| ArchiveError::io("truncate torn tail", &path, e))?;
            file.sync_all()
                .map_err(|e| ArchiveError::io("sync truncated segment", &path, e))?;
        }
        head.active = Some((id, valid_end));
        self.store.put_log_head(&mut batch, &head)?;
        self.files.commit(&self.store, batch, true)?;
        self.head = head;
        self.active = Some(ActiveSegment {
            id,
            file,
            len: valid_end,
        });
        Ok(())
    }

    fn check_sequence(&self, head: &LogHead, rec: &BlockRecord) -> Result<()> {
        if let Some((last_n, last_h)) = head.last {
            if rec.number != last_n + 1 {
                return Err(ArchiveError::Gap {
                    number: rec.number,
                    hash: short_hex(&rec.hash),
                    expected: last_n + 1,
                    last_number: last_n,
                    last_hash: short_hex(&last_h),
                });
            }
            if rec.parent_hash != last_h {
                return Err(ArchiveError::ParentMismatch {
                    number: rec.number,
                    hash: short_hex(&rec.hash),
                    parent: short_hex(&rec.parent_hash),
                    prev_number: last_n,
                    prev_hash: short_hex(&last_h),
                });
            }
        }
        Ok(())
    }

    /// Catalogs a record and applies its state changes; indexes them into the state history in
    /// the same batch when the index has caught up (else the backfill will).
    fn index_record(&self, batch: &mut Batch, rec: &BlockRecord, loc: &Location) -> Result<()> {
        let history = self.store.index_caught_up(batch, rec.number)?;
        self.store.put_location(batch, rec.number, loc)?;
        for change in &rec.changes {
            self.store
                .put_state(batch, &change.key, change.value.as_deref())?;
        }
        if history {
            self.store
                .index_state_changes(batch, rec.number, &rec.changes)?;
        }
        Ok(())
    }

    /// Is this (number, hash) already archived? Errors when the number is archived with another hash.
    fn duplicate(&self, rec: &BlockRecord) -> Result<bool> {
        let Some((last_n, _)) = self.head.last else {
            return Ok(false);
        };
        if rec.number > last_n {
            return Ok(false);
        }
        match self.store.location(rec.number)? {
            Some(loc) if loc.hash == rec.hash => Ok(true),
            Some(loc) => Err(ArchiveError::Conflict {
                number: rec.number,
                existing: short_hex(&loc.hash),
                new: short_hex(&rec.hash),
            }),
            // Below the first archived block: not ours to accept out of order.
            None => Err(ArchiveError::Gap {
                number: rec.number,
                hash: short_hex(&rec.hash),
                expected: last_n + 1,
                last_number: last_n,
                last_hash: short_hex(&self.head.last.map(|l| l.1).unwrap_or_default()),
            }),
        }
    }

    fn ensure_active(&mut self, first_number: u64) -> Result<()> {
        if self.active.is_some() {
            return Ok(());
        }
        let id = self.head.next_segment;
        let path = self.segment_path(id);
        let header = SegmentHeader {
            segment: id,
            first_number,
            prev_hash: self.head.last.map(|l| l.1).unwrap_or([0; 32]),
        };
        // A leftover file with this id can only be from a crash before it was registered: replace it.
        let file = self
            .files
            .create(&path)
            .map_err(|e| ArchiveError::io("create segment", &path, e))?;
        file.write_all_at(&header.encode(), 0)
            .map_err(|e| ArchiveError::io("write segment header", &path, e))?;
        file.sync_all()
            .map_err(|e| ArchiveError::io("sync segment header", &path, e))?;
        self.files
            .sync_dir(&self.dir)
            .map_err(|e| ArchiveError::io("sync directory", &self.dir, e))?;
        let mut head = self.head;
        head.next_segment = id + 1;
        head.active = Some((id, SEGMENT_HEADER_BYTES as u64));
        let mut batch = Batch::default();
        self.store.put_log_head(&mut batch, &head)?;
        self.files.commit(&self.store, batch, true)?;
        self.head = head;
        self.active = Some(ActiveSegment {
            id,
            file,
            len: SEGMENT_HEADER_BYTES as u64,
        });
        Ok(())
    }

    /// Appends one block. See [`append_batch`](Self::append_batch).
    pub fn append(&mut self, rec: &BlockRecord) -> Result<Appended> {
        let summary = self.append_batch(std::slice::from_ref(rec))?;
        Ok(if summary.appended == 1 {
            Appended::New
        } else {
            Appended::Duplicate
        })
    }

    /// Appends blocks in order. Blocks already archived with the same hash are skipped; a gap, a
    /// parent-hash mismatch or a conflicting hash stops the batch with an error naming both blocks
    /// (the blocks before it are appended). When the call returns Ok, every block is durable.
    /// A failed write, fsync or commit poisons the handle (see the module docs).
    pub fn append_batch(&mut self, records: &[BlockRecord]) -> Result<AppendSummary> {
        self.check_healthy()?;
        let mut summary = AppendSummary::default();
        let mut buf: Vec<u8> = Vec::new();
        let mut batch = Batch::default();
        let mut head = self.head;
        let mut pending = 0usize;
        let mut result = Ok(());
        for rec in records {
            match self.duplicate(rec) {
                Ok(true) => {
                    summary.duplicates += 1;
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            if let Err(e) = self
                .check_sequence(&head, rec)
                .and_then(|_| rec.check_limits())
            {
                result = Err(e);
                break;
            }
            if self.active.is_none() {
                let created = self.ensure_active(rec.number);
                self.poison_on_error(created)?;
                head = self.head;
            }
            let (active_id, active_len) = match &self.active {
                Some(a) => (a.id, a.len),
                None => return Err(ArchiveError::Codec("no active segment".into())),
            };
            let offset = active_len + buf.len() as u64;
            let start = buf.len();
            rec.encode_into(&mut buf);
            let len = buf.len() - start;
            let loc = Location {
                segment: active_id,
                offset,
                len: len as u32,
                hash: rec.hash,
            };
            self.index_record(&mut batch, rec, &loc)?;
            head.last = Some((rec.number, rec.hash));
            head.active = Some((active_id, offset + len as u64));
            pending += 1;
            summary.appended += 1;
            summary.bytes += len as u64;
            // Also flush large batches early so memory stays bounded.
            if offset + len as u64 >= self.segment_size_bytes || buf.len() >= FLUSH_BUFFER_BYTES {
                let flushed = self.flush(&mut buf, &mut batch, &head);
                self.poison_on_error(flushed)?;
                pending = 0;
                if offset + len as u64 >= self.segment_size_bytes {
                    let sealed = self.seal_active_inner();
                    summary.sealed.push(self.poison_on_error(sealed)?);
                    head = self.head;
                }
            }
        }
        if pending > 0 {
            let flushed = self.flush(&mut buf, &mut batch, &head);
            self.poison_on_error(flushed)?;
        }
        result.map(|_| summary)
    }

    fn flush(&mut self, buf: &mut Vec<u8>, batch: &mut Batch, head: &LogHead) -> Result<()> {
        let dir = self.dir.clone();
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        let path = dir.join(segment_file_name(active.id));
        active
            .file
            .write_all_at(buf, active.len)
            .map_err(|e| ArchiveError::io("append to segment", &path, e))?;
        if self.durability == Durability::Fsync {
            active
                .file
                .sync_data()
                .map_err(|e| ArchiveError::io("sync segment", &path, e))?;
        }
        self.store.put_log_head(batch, head)?;
        self.files
            .commit(&self.store, std::mem::take(batch), false)?;
        active.len += buf.len() as u64;
        buf.clear();
        self.head = *head;
        Ok(())
    }

    /// Seals the open segment even if it is below the size threshold (e.g. at shutdown or before a
    /// demo restore). Returns the sealed id, or None when no segment is open or it holds no block.
    pub fn seal_active(&mut self) -> Result<Option<u64>> {
        self.check_healthy()?;
        match &self.active {
            Some(a) if a.len > SEGMENT_HEADER_BYTES as u64 => {
                let sealed = self.seal_active_inner();
                self.poison_on_error(sealed).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Seals the open segment. The segment stays open in memory until its sealed record is
    /// committed, so a failure leaves it where recovery finds it.
    fn seal_active_inner(&mut self) -> Result<u64> {
        let Some(active) = self.active.as_ref() else {
            return Err(ArchiveError::Codec("seal without an open segment".into()));
        };
        let path = self.segment_path(active.id);
        active
            .file
            .sync_all()
            .map_err(|e| ArchiveError::io("sync sealed segment", &path, e))?;
        let first = read_header(active.file.as_ref(), &path)?.first_number;
        let last = self.head.last.map(|l| l.0).unwrap_or(first);
        let hashes = self.store.hashes_in(first, last)?;
        let segment_hash = hash_segment(active.file.as_ref(), active.len)
            .map_err(|e| ArchiveError::io("hash segment", &path, e))?;
        let sealed = SealedSegment {
            segment: active.id,
            first_number: first,
            last_number: last,
            first_hash: hashes.first().copied().unwrap_or_default(),
            last_hash: hashes.last().copied().unwrap_or_default(),
            bytes: active.len,
            segment_hash,
            blocks_root: prover::merkle_root(&hashes),
        };
        let mut head = self.head;
        head.active = None;
        let mut batch = Batch::default();
        self.store.put_sealed(&mut batch, &sealed)?;
        self.store.put_log_head(&mut batch, &head)?;
        self.files.commit(&self.store, batch, true)?;
        self.head = head;
        self.active = None;
        tracing::debug!(
            segment = sealed.segment,
            first,
            last,
            bytes = sealed.bytes,
            "sealed segment"
        );
        Ok(sealed.segment)
    }

    /// Reads a block from the local log.
    pub fn get(&self, number: u64) -> Result<Option<BlockRecord>> {
        self.check_healthy()?;
        let Some(loc) = self.store.location(number)? else {
            return Ok(None);
        };
        let path = self.segment_path(loc.segment);
        read_record_at(&path, &loc, number)?
            .map(Some)
            .ok_or_else(|| {
                ArchiveError::io(
                    "open segment",
                    &path,
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                )
            })
    }

    /// Re-reads every local segment file and checks it against the catalog: records valid,
    /// numbers and parent hashes continuous, each block indexed once at its offset, sealed segments'
    /// hashes unchanged. Returns the number of blocks checked.
    pub fn verify(&self) -> Result<u64> {
        self.check_healthy()?;
        let mut blocks = 0u64;
        let mut prev: Option<(u64, [u8; 32])> = None;
        // Files below this were deleted on purpose once the hosters held them (verified).
        let pruned = self.store.local_segments_pruned_below()?;
        for id in 0..self.head.next_segment {
            let path = self.segment_path(id);
            let sealed = self.store.sealed(id)?;
            if id < pruned {
                if let Some(s) = &sealed {
                    prev = Some((s.last_number, s.last_hash));
                }
                continue;
            }
            let len_limit = match (&sealed, self.head.active) {
                (Some(s), _) => s.bytes,
                (None, Some((a, end))) if a == id => end,
                (None, _) => {
                    return Err(ArchiveError::SegmentCorrupt {
                        segment: id,
                        reason: "neither sealed nor open".into(),
                    })
                }
            };
            let mut bytes =
                fs::read(&path).map_err(|e| ArchiveError::io("read segment", &path, e))?;
            if (bytes.len() as u64) < len_limit {
                return Err(ArchiveError::SegmentFileCorrupt {
                    path,
                    offset: bytes.len() as u64,
                    reason: format!("shorter than the {len_limit} bytes recorded"),
                });
            }
            bytes.truncate(len_limit as usize);
            if let Some(s) = &sealed {
                if *blake3::hash(&bytes).as_bytes() != s.segment_hash {
                    return Err(ArchiveError::SegmentFileCorrupt {
                        path,
                        offset: 0,
                        reason: "sealed segment's content hash changed".into(),
                    });
                }
            }
            let (_, records) =
                crate::record::parse_segment(&bytes).map_err(|(offset, reason)| {
                    ArchiveError::SegmentFileCorrupt {
                        path: path.clone(),
                        offset,
                        reason,
                    }
                })?;
            for (offset, rec) in records {
                if let Some((pn, ph)) = prev {
                    if rec.number != pn + 1 || rec.parent_hash != ph {
                        return Err(ArchiveError::SegmentFileCorrupt {
                            path,
                            offset,
                            reason: format!("block {} does not follow block {pn}", rec.number),
                        });
                    }
                }
                match self.store.location(rec.number)? {
                    Some(loc)
                        if loc.segment == id && loc.offset == offset && loc.hash == rec.hash => {}
                    other => {
                        return Err(ArchiveError::SegmentFileCorrupt {
                            path,
                            offset,
                            reason: format!(
                                "block {} catalog entry disagrees: {other:?}",
                                rec.number
                            ),
                        })
                    }
                }
                prev = Some((rec.number, rec.hash));
                blocks += 1;
            }
        }
        if prev != self.head.last {
            return Err(ArchiveError::DbCorrupt {
                context: "verify",
                reason: format!(
                    "log ends at {prev:?} but the head says {:?}",
                    self.head.last
                ),
            });
        }
        Ok(blocks)
    }
}

/// pread until `buf` is full or EOF; returns bytes read.
fn read_full_at(file: &dyn SegmentFile, buf: &mut [u8], mut at: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], at)?;
        if n == 0 {
            break;
        }
        done += n;
        at += n as u64;
    }
    Ok(done)
}

/// Reads block `number`'s record from a segment file at its catalog location and checks it is
/// that block. None when the file does not exist (e.g. pruned after dispersal).
pub(crate) fn read_record_at(
    path: &Path,
    loc: &Location,
    number: u64,
) -> Result<Option<BlockRecord>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ArchiveError::io("open segment", path, e)),
    };
    let mut buf = vec![0u8; loc.len as usize];
    file.read_exact_at(&mut buf, loc.offset)
        .map_err(|e| ArchiveError::io("read block", path, e))?;
    let corrupt = |reason: String| ArchiveError::SegmentFileCorrupt {
        path: path.to_path_buf(),
        offset: loc.offset,
        reason,
    };
    match scan_record(&buf) {
        RecordScan::Complete { record, .. }
            if record.number == number && record.hash == loc.hash =>
        {
            Ok(Some(record))
        }
        RecordScan::Complete { .. } => Err(corrupt(format!(
            "catalog entry of block {number} points at another block"
        ))),
        RecordScan::Incomplete => Err(corrupt(format!("block {number} truncated"))),
        RecordScan::Invalid(reason) => Err(corrupt(format!("block {number}: {reason}"))),
    }
}

/// BLAKE3 of the first `len` bytes of a file.
pub fn hash_file(path: &Path, len: u64) -> Result<[u8; 32]> {
    let file = File::open(path).map_err(|e| ArchiveError::io("open segment", path, e))?;
    let mut hasher = blake3::Hasher::new();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file).take(len);
    hasher
        .update_reader(&mut reader)
        .map_err(|e| ArchiveError::io("hash segment", path, e))?;
    Ok(*hasher.finalize().as_bytes())
}

/// Reads and checks a segment file's header.
fn read_header(file: &dyn SegmentFile, path: &Path) -> Result<SegmentHeader> {
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    let n = read_full_at(file, &mut header, 0)
        .map_err(|e| ArchiveError::io("read segment header", path, e))?;
    SegmentHeader::decode(&header[..n]).map_err(|reason| ArchiveError::SegmentFileCorrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason,
    })
}

/// BLAKE3 of the first `len` bytes of an open segment.
fn hash_segment(file: &dyn SegmentFile, len: u64) -> std::io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; COPY_CHUNK_BYTES];
    let mut at = 0u64;
    while at < len {
        let want = (len - at).min(COPY_CHUNK_BYTES as u64) as usize;
        let n = read_full_at(file, &mut buf[..want], at)?;
        if n < want {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(*hasher.finalize().as_bytes())
}

/// Writes `from..to` of a file again with the bytes it reads there.
fn rewrite_range(file: &dyn SegmentFile, from: u64, to: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; COPY_CHUNK_BYTES.min((to - from) as usize)];
    let mut at = from;
    while at < to {
        let want = (to - at).min(buf.len() as u64) as usize;
        let n = read_full_at(file, &mut buf[..want], at)?;
        if n < want {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        file.write_all_at(&buf[..n], at)?;
        at += n as u64;
    }
    Ok(())
}
