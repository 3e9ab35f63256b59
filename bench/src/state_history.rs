//! Historical-state figures for `archiver bench --chain`: an archive of synthetic blocks shaped
//! like a transfer chain (per block a few ~80-byte `System.Account`-like keys with 80-byte values,
//! kept inline in the index, and an events key whose value is kept in the block), every local
//! segment pruned to the hosters; then `storage_at` latency p50/p99 for inline values, for values
//! read from a cached block and cold (segment rebuilt from the hosters, cache cleared), a
//! `storage_keys_at` page, and the index's bytes per block.

use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use archiver::{Archive, BlockRecord, HistoryReader, StateChange};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use archiver_cli::{cluster, config_file};

/// Accounts of the synthetic chain, all set in block 0 (the genesis state).
const ACCOUNTS: usize = 1000;
/// Transfers per block: each changes its sender's and receiver's account, and the fee collector.
const TRANSFERS_PER_BLOCK: usize = 2;
/// `twox128(pallet) ‖ twox128(item) ‖ blake2_128(account) ‖ account`, as `System.Account`.
const ACCOUNT_KEY_BYTES: usize = 80;
/// An encoded `AccountInfo` (four u32 counters, four u128 balances).
const ACCOUNT_INFO_BYTES: usize = 80;
/// `System.Events` bytes per transfer (withdraw, transfer, deposit, fee paid, success).
const EVENT_BYTES_PER_TRANSFER: usize = 300;
/// Extrinsic bytes per transfer in the block body (a signed v4 transfer).
const EXTRINSIC_BYTES: usize = 150;
/// Blocks per append batch (as the follower hands them over).
const APPEND_BATCH_BLOCKS: usize = 64;
/// Segment size of the bench's archive: small, so that the chain spans many pruned segments.
const SEGMENT_BYTES: u64 = 1024 * 1024;
/// History cache of the reader: larger than the whole bench archive, so "cached" is cached.
const CACHE_BYTES: usize = 256 * 1024 * 1024;
/// Samples per latency figure; cold reads rebuild a segment each, so fewer of them.
const SAMPLES: usize = 1000;
const COLD_SAMPLES: usize = 100;
/// Keys per `storage_keys_at` page (polkadot.js pages by 1000, explorers by 100).
const PAGE_KEYS: usize = 100;
const SEED: u64 = 7;

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct StateHistoryReport {
    pub blocks: u64,
    pub segments: u64,
    pub record_bytes_per_block: f64,
    pub append_blocks_per_s: f64,
    /// `storage_at` of an account (value inline in the index): (p50, p99) in ms.
    pub inline_ms: (f64, f64),
    /// `storage_at` of the events key, its block's segment in the cache.
    pub cached_ms: (f64, f64),
    /// `storage_at` of the events key after the cache was cleared (segment from the hosters).
    pub cold_ms: (f64, f64),
    /// `storage_keys_at` of `PAGE_KEYS` account keys.
    pub keys_page_ms: (f64, f64),
    pub index_bytes: u64,
}

impl StateHistoryReport {
    pub fn index_bytes_per_block(&self) -> f64 {
        self.index_bytes as f64 / self.blocks.max(1) as f64
    }
}

impl fmt::Display for StateHistoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "historical state (storage_at) over {} blocks in {} pruned segments ({:.0} record bytes/block, {} accounts, {TRANSFERS_PER_BLOCK} transfers/block; appended with the index at {:.0} blocks/s):",
            self.blocks, self.segments, self.record_bytes_per_block, ACCOUNTS, self.append_blocks_per_s
        )?;
        let line = |f: &mut fmt::Formatter<'_>, what: &str, (p50, p99): (f64, f64)| {
            writeln!(f, "  {what}: p50 {p50:.3} ms, p99 {p99:.3} ms")
        };
        line(
            f,
            "account (80-byte value inline in the index)",
            self.inline_ms,
        )?;
        line(f, "events (value in the block), cached", self.cached_ms)?;
        line(
            f,
            "events (value in the block), cold: segment rebuilt from the hosters",
            self.cold_ms,
        )?;
        line(
            f,
            "storage_keys_at, a page of 100 account keys",
            self.keys_page_ms,
        )?;
        write!(
            f,
            "  index size: {} bytes of live SST files, {:.0} bytes/block",
            self.index_bytes,
            self.index_bytes_per_block()
        )
    }
}

/// The synthetic chain: keys and block records.
struct Chain {
    accounts: Vec<Vec<u8>>,
    events_key: Vec<u8>,
    rng: StdRng,
}

impl Chain {
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(SEED);
        let prefix: Vec<u8> = (0..32).map(|_| rng.gen()).collect();
        let mut accounts: Vec<Vec<u8>> = (0..ACCOUNTS)
            .map(|_| {
                let mut k = prefix.clone();
                k.extend((0..ACCOUNT_KEY_BYTES - 32).map(|_| rng.gen::<u8>()));
                k
            })
            .collect();
        accounts.sort();
        let events_key = (0..32).map(|_| rng.gen()).collect();
        Self {
            accounts,
            events_key,
            rng,
        }
    }

    fn account_info(&mut self, nonce: u64) -> Vec<u8> {
        let mut v = (nonce as u32).to_le_bytes().to_vec();
        v.resize(16, 0);
        v.extend((0..ACCOUNT_INFO_BYTES - 16).map(|_| self.rng.gen::<u8>()));
        v
    }

    fn record(&mut self, number: u64, parent: [u8; 32]) -> BlockRecord {
        let mut changes = Vec::new();
        if number == 0 {
            for i in 0..ACCOUNTS {
                let value = self.account_info(0);
                changes.push(StateChange {
                    key: self.accounts[i].clone(),
                    value: Some(value),
                });
            }
        } else {
            for _ in 0..TRANSFERS_PER_BLOCK {
                for _ in 0..2 {
                    let i = self.rng.gen_range(0..ACCOUNTS);
                    let value = self.account_info(number);
                    changes.push(StateChange {
                        key: self.accounts[i].clone(),
                        value: Some(value),
                    });
                }
            }
            let fees = self.account_info(number);
            changes.push(StateChange {
                key: self.accounts[0].clone(),
                value: Some(fees),
            });
        }
        let events: Vec<u8> = (0..EVENT_BYTES_PER_TRANSFER * TRANSFERS_PER_BLOCK.max(1))
            .map(|_| self.rng.gen())
            .collect();
        changes.push(StateChange {
            key: self.events_key.clone(),
            value: Some(events),
        });
        let mut block = number.to_le_bytes().to_vec();
        block.extend((0..EXTRINSIC_BYTES * TRANSFERS_PER_BLOCK).map(|_| self.rng.gen::<u8>()));
        let hash = *blake3::hash(&[&block[..], &parent].concat()).as_bytes();
        BlockRecord {
            number,
            hash,
            parent_hash: parent,
            block,
            justification: None,
            changes,
        }
    }
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    if ms.is_empty() {
        (0.0, 0.0)
    } else {
        (at(0.5), at(0.99))
    }
}

/// Runs the bench with `blocks` blocks against 6 hoster processes (4+2) in `dir` (temporary by
/// default).
pub async fn run(blocks: u64, dir: Option<PathBuf>) -> Result<StateHistoryReport> {
    let tmp = tempfile::tempdir().context("create bench directory")?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let exe = cluster::archiver_exe()?;
    let hosters = cluster::start_hosters(&exe, &dir.join("hosters"), 6, 3)?;
    let config = cluster::write_cluster_config(&dir, &hosters, 4, 2, SEGMENT_BYTES)?;
    let archive = config_file::open_archive(&config)?;
    archive.prepare_hosters().await;
    let report = measure(archive, blocks).await;
    drop(hosters);
    report
}

/// Builds the chain into `archive` (empty, its hosters prepared), disperses and prunes every
/// segment, and measures.
pub async fn measure(mut archive: Archive, blocks: u64) -> Result<StateHistoryReport> {
    ensure!(blocks >= 2, "the bench needs at least 2 blocks");
    let mut chain = Chain::new();
    let mut report = StateHistoryReport {
        blocks,
        ..Default::default()
    };
    let (mut parent, mut number, mut record_bytes) = ([0u8; 32], 0u64, 0u64);
    let started = Instant::now();
    while number < blocks {
        let end = (number + APPEND_BATCH_BLOCKS as u64).min(blocks);
        let batch: Vec<BlockRecord> = (number..end)
            .map(|n| {
                let r = chain.record(n, parent);
                parent = r.hash;
                r
            })
            .collect();
        record_bytes += archive.log_mut().append_batch(&batch)?.bytes;
        number = end;
    }
    report.append_blocks_per_s = blocks as f64 / started.elapsed().as_secs_f64().max(1e-9);
    report.record_bytes_per_block = record_bytes as f64 / blocks as f64;
    archive.log_mut().seal_active()?;
    let disperser = archive.disperser();
    disperser.disperse_pending().await?;
    disperser.verify_dispersed().await?;
    report.segments = disperser.prune_local_segments(0)?;
    let store = archive.store().clone();
    ensure!(
        store.indexed_next()? == blocks,
        "the index covers {} of {blocks} blocks",
        store.indexed_next()?
    );
    report.index_bytes = store.state_index_disk_bytes()?;
    let reader = HistoryReader::new(
        store,
        archive.log().dir().to_path_buf(),
        archive.remote().clone(),
        CACHE_BYTES,
    );
    query_latencies(&reader, &chain, blocks, &mut report).await?;
    Ok(report)
}

/// Times `f` once per sample, calling `before` first (untimed).
async fn sampled<F, Fut>(samples: usize, mut before: impl FnMut(), mut f: F) -> Result<(f64, f64)>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut ms = Vec::with_capacity(samples);
    for i in 0..samples {
        before();
        let t = Instant::now();
        f(i).await?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(percentiles(ms))
}

async fn query_latencies(
    reader: &HistoryReader,
    chain: &Chain,
    blocks: u64,
    report: &mut StateHistoryReport,
) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(SEED + 1);
    let picks: Vec<(usize, u64)> = (0..SAMPLES)
        .map(|_| (rng.gen_range(0..ACCOUNTS), rng.gen_range(1..blocks)))
        .collect();
    let events_len = EVENT_BYTES_PER_TRANSFER * TRANSFERS_PER_BLOCK.max(1);
    let account = |i: usize| {
        let (a, n) = picks[i];
        async move {
            let v = reader.storage_at(&chain.accounts[a], n).await?;
            ensure!(
                v.is_some_and(|v| v.len() == ACCOUNT_INFO_BYTES),
                "account {a} at {n}"
            );
            Ok(())
        }
    };
    let events = |i: usize| {
        let n = picks[i].1;
        async move {
            let v = reader.storage_at(&chain.events_key, n).await?;
            ensure!(v.is_some_and(|v| v.len() == events_len), "events at {n}");
            Ok(())
        }
    };
    report.inline_ms = sampled(SAMPLES, || {}, account).await?;
    // Warm the cache with every segment the samples touch, then time cached reads.
    for i in 0..SAMPLES {
        events(i).await?;
    }
    report.cached_ms = sampled(SAMPLES, || {}, events).await?;
    report.cold_ms = sampled(COLD_SAMPLES, || reader.clear_cache(), events).await?;
    let page = |i: usize| {
        let (a, n) = picks[i];
        let start = (a % 2 == 0).then(|| chain.accounts[a].as_slice());
        async move {
            let keys = reader
                .storage_keys_at(&chain.accounts[0][..32], start, PAGE_KEYS, n)
                .await?;
            ensure!(!keys.is_empty(), "no account keys at {n}");
            Ok(())
        }
    };
    report.keys_page_ms = sampled(SAMPLES, || {}, page).await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The bench over in-memory hosters: every query answered, the cold ones from the hosters,
    /// and an index size that counts entries.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn measures_over_pruned_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (_, entries, set) = archiver::testing::memory_hosters(6);
        let mut cfg = archiver::ArchiveConfig::new(dir.path().join("data"), entries);
        (cfg.data_shards, cfg.parity_shards) = (4, 2);
        cfg.segment_size_bytes = 64 * 1024;
        cfg.durability = archiver::Durability::Os;
        let archive = Archive::open(cfg, archiver::MasterKey::from_bytes([1; 32]), set).unwrap();
        let report = measure(archive, 300).await.unwrap();
        assert!(report.segments >= 3, "{report}");
        assert!(
            report.cold_ms.0 > 0.0 && report.inline_ms.0 > 0.0,
            "{report}"
        );
        // At least the genesis accounts' keys and entries.
        assert!(
            report.index_bytes > (ACCOUNTS * ACCOUNT_KEY_BYTES) as u64 / 4,
            "{report}"
        );
        assert!(report.to_string().contains("bytes/block"));
    }
}
