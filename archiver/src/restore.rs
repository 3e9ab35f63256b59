//! Restore: rebuild history from the hosters alone (config + master key), verifying every shard's
//! Merkle root, every frame's AEAD tag, the manifest chain, and each segment's blocks against its
//! manifest (count, first/last hash, parent-hash chain, Merkle root of block hashes).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures::stream::{self, StreamExt};

use crate::error::{ArchiveError, Result};
use crate::log::segment_file_name;
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
/// segment with (segments done, segments total, plaintext bytes done).
pub async fn restore(
    remote: &RemoteArchive,
    from: Option<u64>,
    to: Option<u64>,
    out_dir: &Path,
    format: RestoreFormat,
    mut progress: impl FnMut(u64, u64, u64),
) -> Result<RestoreReport> {
    let chain = remote.manifest_chain().await?;
    let wanted: Vec<SegmentMeta> = chain
        .into_iter()
        .filter(|s| {
            from.is_none_or(|f| s.manifest.last_number >= f)
                && to.is_none_or(|t| s.manifest.first_number <= t)
        })
        .collect();
    let sub = match format {
        RestoreFormat::Segments => "segments",
        RestoreFormat::Blocks => "blocks",
    };
    let dir = out_dir.join(sub);
    fs::create_dir_all(&dir).map_err(|e| ArchiveError::io("create output directory", &dir, e))?;
    let total = wanted.len() as u64;
    let mut report = RestoreReport::default();
    let mut fetched = stream::iter(wanted)
        .map(|meta| async move {
            let read = remote.read_segment(&meta).await;
            read.map(|(plain, r)| (meta, plain, r))
        })
        .buffered(RESTORE_SEGMENTS_INFLIGHT);
    let mut prev_last: Option<[u8; 32]> = None;
    while let Some(item) = fetched.next().await {
        let (meta, plain, read): (SegmentMeta, Vec<u8>, ReadReport) = item?;
        let m = &meta.manifest;
        // Linked across segments once a previous one was restored (None for the first).
        let records = verify_segment_blocks(&meta, &plain, prev_last)?;
        prev_last = Some(m.last_hash);
        match format {
            RestoreFormat::Segments => {
                write_atomically(&dir.join(segment_file_name(m.segment)), &plain)?;
                for r in &records {
                    if from.is_none_or(|f| r.number >= f) && to.is_none_or(|t| r.number <= t) {
                        report.blocks += 1;
                        report.first_block.get_or_insert(r.number);
                        report.last_block = Some(r.number);
                    }
                }
            }
            RestoreFormat::Blocks => {
                for r in records {
                    if from.is_some_and(|f| r.number < f) || to.is_some_and(|t| r.number > t) {
                        continue;
                    }
                    write_atomically(&dir.join(format!("{:012}.block", r.number)), &r.block)?;
                    if let Some(j) = &r.justification {
                        write_atomically(&dir.join(format!("{:012}.justification", r.number)), j)?;
                    }
                    report.blocks += 1;
                    report.first_block.get_or_insert(r.number);
                    report.last_block = Some(r.number);
                }
            }
        }
        report.segments += 1;
        report.bytes += plain.len() as u64;
        report.shards_read += read.shards_read as u64;
        if read.reconstructed {
            report.segments_reconstructed += 1;
        }
        for (i, h, r) in read.failures {
            report.shard_failures.push((m.segment, i, h, r));
        }
        progress(report.segments, total, report.bytes);
    }
    Ok(report)
}

fn write_atomically(path: &PathBuf, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| ArchiveError::io("create", &tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| ArchiveError::io("write", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| ArchiveError::io("rename", path, e))
}
