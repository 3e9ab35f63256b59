//! Restore: rebuild history from the hosters alone (config + master key), verifying every shard's
//! Merkle root, every frame's AEAD tag, the manifest chain, and each segment's blocks against its
//! manifest (count, first/last hash, parent-hash chain, Merkle root of block hashes).

use std::fs;
use std::io::Write;
use std::path::Path;

use futures::stream::{self, StreamExt};

use crate::error::{ArchiveError, Result};
use crate::log::segment_file_name;
use crate::manifest::Manifest;
use crate::record::{parse_segment, BlockRecord};
use crate::remote::{ReadReport, RemoteArchive, SegmentMeta};

/// Segments fetched and decoded ahead of the one being verified and written. One is enough to
/// overlap hoster I/O with verification; each costs ~2x a segment of memory (shards + plaintext),
/// and the RSS bound is 256 MiB whatever the history size.
pub const RESTORE_SEGMENTS_INFLIGHT: usize = 1;

/// How restored history is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreFormat {
    /// `DIR/segments/<id>.seg`: byte-identical copies of the sealed segment files.
    Segments,
    /// `DIR/blocks/<number>.block` (+ `.justification`): one file per block in the range.
    Blocks,
}

/// What a restore did.
#[derive(Clone, Debug, Default)]
pub struct RestoreReport {
    pub segments: u64,
    pub blocks: u64,
    pub bytes: u64,
    pub shards_read: u64,
    pub segments_reconstructed: u64,
    /// Shard problems met and routed around: (segment, shard, hoster, reason).
    pub shard_failures: Vec<(u64, usize, String, String)>,
    pub first_block: Option<u64>,
    pub last_block: Option<u64>,
    /// Segments that could not be restored (everything else was): the restore went on past them.
    pub lost: Vec<LostSegment>,
}

/// A segment a restore could not rebuild, with the blocks it held as far as is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostSegment {
    pub segment: u64,
    /// First and last block numbers (from its manifest, or from its neighbours' when its
    /// metadata is gone too; `None` where nothing tells).
    pub first_block: Option<u64>,
    pub last_block: Option<u64>,
    pub reason: String,
}

impl std::fmt::Display for LostSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |n: Option<u64>| n.map_or_else(|| "?".to_string(), |n| n.to_string());
        write!(
            f,
            "segment {} (blocks {}..={}): {}",
            self.segment,
            show(self.first_block),
            show(self.last_block),
            self.reason
        )
    }
}

/// Checks a decoded segment's blocks against its manifest and the previous segment's last hash.
pub fn verify_segment_blocks(
    meta: &SegmentMeta,
    plaintext: &[u8],
    prev_last_hash: Option<[u8; 32]>,
) -> Result<Vec<BlockRecord>> {
    let m = &meta.manifest;
    let corrupt = |reason: String| ArchiveError::SegmentCorrupt {
        segment: m.segment,
        reason,
    };
    let (header, records) = parse_segment(plaintext)
        .map_err(|(offset, reason)| corrupt(format!("at byte {offset}: {reason}")))?;
    if header.segment != m.segment || header.first_number != m.first_number {
        return Err(corrupt("segment header disagrees with the manifest".into()));
    }
    if records.len() as u64 != m.block_count() {
        return Err(corrupt(format!(
            "{} blocks, the manifest says {}",
            records.len(),
            m.block_count()
        )));
    }
    let mut prev = prev_last_hash.or(Some(header.prev_hash).filter(|_| m.segment > 0));
    let mut hashes = Vec::with_capacity(records.len());
    for (i, (_, rec)) in records.iter().enumerate() {
        let expect = m.first_number + i as u64;
        if rec.number != expect {
            return Err(corrupt(format!(
                "block {} found where block {expect} belongs",
                rec.number
            )));
        }
        if let Some(p) = prev {
            if rec.parent_hash != p {
                return Err(corrupt(format!(
                    "block {} does not link to its parent",
                    rec.number
                )));
            }
        }
        prev = Some(rec.hash);
        hashes.push(rec.hash);
    }
    if hashes.first() != Some(&m.first_hash) || hashes.last() != Some(&m.last_hash) {
        return Err(corrupt(
            "first/last block hash differ from the manifest".into(),
        ));
    }
    if prover::merkle_root(&hashes) != m.blocks_root {
        return Err(corrupt(
            "block-hash Merkle root differs from the manifest".into(),
        ));
    }
    Ok(records.into_iter().map(|(_, r)| r).collect())
}

/// Restores blocks `from..=to` (all when None) into `out_dir`. `progress` is called after each
/// segment with (segments done, segments total, plaintext bytes done). A segment that cannot be
/// rebuilt (metadata gone, too few good shards, failing verification) does not stop the restore:
/// everything else is restored and the lost segments are listed in `RestoreReport::lost`.
pub async fn restore(
    remote: &RemoteArchive,
    from: Option<u64>,
    to: Option<u64>,
    out_dir: &Path,
    format: RestoreFormat,
    mut progress: impl FnMut(u64, u64, u64),
) -> Result<RestoreReport> {
    let scan = remote.manifest_scan().await?;
    let in_range = |first: Option<u64>, last: Option<u64>| {
        from.is_none_or(|f| last.is_none_or(|l| l >= f))
            && to.is_none_or(|t| first.is_none_or(|b| b <= t))
    };
    let mut report = RestoreReport::default();
    for (segment, reason) in &scan.missing {
        let (first, last) = scan.missing_blocks(*segment);
        if in_range(first, last) {
            report.lost.push(LostSegment {
                segment: *segment,
                first_block: first,
                last_block: last,
                reason: reason.clone(),
            });
        }
    }
    let wanted: Vec<SegmentMeta> = scan
        .metas
        .into_iter()
        .filter(|s| in_range(Some(s.manifest.first_number), Some(s.manifest.last_number)))
        .collect();
    let sub = match format {
        RestoreFormat::Segments => "segments",
        RestoreFormat::Blocks => "blocks",
    };
    let dir = out_dir.join(sub);
    fs::create_dir_all(&dir).map_err(|e| ArchiveError::io("create output directory", &dir, e))?;
    let total = wanted.len() as u64;
    let mut fetched = stream::iter(wanted)
        .map(|meta| async move {
            let read = remote.read_segment(&meta).await;
            (meta, read)
        })
        .buffered(RESTORE_SEGMENTS_INFLIGHT);
    // The previous segment's last hash comes from its (authenticated) manifest, so blocks stay
    // linked across a segment whose shards were lost.
    let mut prev: Option<Manifest> = None;
    let mut done = 0u64;
    while let Some((meta, read)) = fetched.next().await {
        let m = meta.manifest.clone();
        let prev_last = prev
            .as_ref()
            .filter(|p| p.segment + 1 == m.segment)
            .map(|p| p.last_hash);
        prev = Some(m.clone());
        done += 1;
        let outcome = match read {
            Ok((plain, r)) => verify_segment_blocks(&meta, &plain, prev_last)
                .and_then(|records| {
                    write_segment(&dir, m.segment, format, from, to, &plain, records)
                })
                .map(|counted| (counted, plain.len() as u64, r)),
            Err(e) => Err(e),
        };
        match outcome {
            Ok((counted, bytes, read)) => report.add_segment(&m, counted, bytes, read),
            Err(e) => {
                tracing::warn!(segment = m.segment, error = %e, "segment lost; restore goes on");
                report.lost.push(LostSegment {
                    segment: m.segment,
                    first_block: Some(m.first_number),
                    last_block: Some(m.last_number),
                    reason: e.to_string(),
                });
            }
        }
        progress(done, total, report.bytes);
    }
    report.lost.sort_by_key(|l| l.segment);
    Ok(report)
}

/// Block numbers written for one segment: (count, first, last).
type Counted = (u64, Option<u64>, Option<u64>);

/// Writes one verified segment in the chosen format; returns which blocks in range it wrote.
fn write_segment(
    dir: &Path,
    segment: u64,
    format: RestoreFormat,
    from: Option<u64>,
    to: Option<u64>,
    plain: &[u8],
    records: Vec<BlockRecord>,
) -> Result<Counted> {
    let mut counted: Counted = (0, None, None);
    if format == RestoreFormat::Segments {
        write_atomically(&dir.join(segment_file_name(segment)), plain)?;
    }
    for r in records {
        if from.is_some_and(|f| r.number < f) || to.is_some_and(|t| r.number > t) {
            continue;
        }
        if format == RestoreFormat::Blocks {
            write_atomically(&dir.join(format!("{:012}.block", r.number)), &r.block)?;
            if let Some(j) = &r.justification {
                write_atomically(&dir.join(format!("{:012}.justification", r.number)), j)?;
            }
        }
        counted.0 += 1;
        counted.1.get_or_insert(r.number);
        counted.2 = Some(r.number);
    }
    Ok(counted)
}

impl RestoreReport {
    fn add_segment(&mut self, m: &Manifest, counted: Counted, bytes: u64, read: ReadReport) {
        self.blocks += counted.0;
        if self.first_block.is_none() {
            self.first_block = counted.1;
        }
        self.last_block = counted.2.or(self.last_block);
        self.segments += 1;
        self.bytes += bytes;
        self.shards_read += read.shards_read as u64;
        if read.reconstructed {
            self.segments_reconstructed += 1;
        }
        for (i, h, r) in read.failures {
            self.shard_failures.push((m.segment, i, h, r));
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| ArchiveError::io("create", &tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| ArchiveError::io("write", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| ArchiveError::io("rename", path, e))
}
