//! Synthetic ingest: the node-plugin's synthetic Substrate chain appended to the archive in batches,
//! sealed segments dispersed as they fill. Stands in for a node until the node integration lands.

use anyhow::{Context, Result};
use archiver::{Archive, BlockRecord, StateChange};
use node_plugin::SyntheticChain;

/// Marker string embedded in every synthetic block: tests grep hosters' disks for it.
pub const SYNTHETIC_MARKER: &[u8] = b"POA-ARCHIVER-PLAINTEXT-MARKER";
/// Blocks appended per batch: one fsync and one catalog write per batch.
const INGEST_BATCH_BLOCKS: usize = 64;
/// State slots the synthetic chain updates round-robin (a stand-in for balances).
const SYNTHETIC_STATE_SLOTS: u64 = 64;

/// What an ingest run did.
#[derive(Debug, Default)]
pub struct IngestReport {
    pub blocks: u64,
    pub bytes: u64,
    pub segments_dispersed: u64,
    pub under_replicated: Vec<u64>,
}

fn to_record(b: node_plugin::SyntheticBlock) -> BlockRecord {
    let slot = b.number % SYNTHETIC_STATE_SLOTS;
    BlockRecord {
        changes: vec![
            StateChange {
                key: b"synthetic/head".to_vec(),
                value: Some(b.number.to_le_bytes().to_vec()),
            },
            StateChange {
                key: format!("synthetic/slot/{slot}").into_bytes(),
                value: Some(b.hash.to_vec()),
            },
        ],
        number: b.number,
        hash: b.hash,
        parent_hash: b.parent_hash,
        block: b.block,
        justification: b.justification,
    }
}

/// Appends synthetic blocks until `blocks` more are appended or `bytes` more bytes (whichever is
/// given), continuing the chain from the archive's last block. `ack` gets the last block number of
/// every batch that returned (= durable). With `flush`, the tail segment is sealed and everything
/// dispersed at the end.
pub async fn ingest_synthetic(
    archive: &mut Archive,
    seed: u64,
    blocks: Option<u64>,
    bytes: Option<u64>,
    flush: bool,
    disperse: bool,
    mut ack: impl FnMut(u64, u64),
) -> Result<IngestReport> {
    let mut chain = match archive.log().last() {
        Some((n, h)) => SyntheticChain::resume(seed, SYNTHETIC_MARKER, n + 1, h),
        None => SyntheticChain::new(seed, SYNTHETIC_MARKER),
    };
    let mut report = IngestReport::default();
    // Dispersal runs in the background while appends go on; one pass at a time.
    let disperser = archive.disperser();
    let mut inflight: Option<tokio::task::JoinHandle<archiver::Result<archiver::DispersalReport>>> =
        None;
    let collect = |report: &mut IngestReport, d: archiver::DispersalReport| {
        report.segments_dispersed += d.segments.len() as u64;
        report.under_replicated.extend(d.under_replicated);
    };
    let done = |r: &IngestReport| {
        blocks.is_some_and(|b| r.blocks >= b) || bytes.is_some_and(|b| r.bytes >= b)
    };
    while !done(&report) {
        let mut batch = Vec::with_capacity(INGEST_BATCH_BLOCKS);
        while batch.len() < INGEST_BATCH_BLOCKS {
            let rec = to_record(chain.next_block());
            report.bytes += rec.block.len() as u64;
            report.blocks += 1;
            batch.push(rec);
            if done(&report) {
                break;
            }
        }
        let summary = archive
            .log_mut()
            .append_batch(&batch)
            .context("append blocks")?;
        if let Some(last) = batch.last() {
            ack(last.number, report.bytes);
        }
        if !disperse || summary.sealed.is_empty() {
            continue;
        }
        if let Some(handle) = inflight.take_if(|h| h.is_finished()) {
            let d = handle
                .await
                .context("dispersal task")?
                .context("disperse sealed segments")?;
            collect(&mut report, d);
        }
        if inflight.is_none() {
            let d = disperser.clone();
            inflight = Some(tokio::spawn(async move { d.disperse_pending().await }));
        }
    }
    if let Some(handle) = inflight.take() {
        let d = handle
            .await
            .context("dispersal task")?
            .context("disperse sealed segments")?;
        collect(&mut report, d);
    }
    if flush {
        archive
            .log_mut()
            .seal_active()
            .context("seal the open segment")?;
    }
    if disperse {
        let d = archive
            .disperse_pending()
            .await
            .context("disperse sealed segments")?;
        collect(&mut report, d);
    }
    Ok(report)
}
