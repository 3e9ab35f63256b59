//! `archiver bench`: ingest and restore throughput through embedded hosters (4+2 over 6, 16+4 over
//! 20), degraded restore with m hosters killed, peak RSS, and the codec's single-stage limits
//! measured in the same run, printed with ratios against them and against the targets.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use archiver_cli::{cluster, config_file, ingest};

const MIB: u64 = 1024 * 1024;
/// Bytes per single-stage measurement: large enough to leave the caches, small next to the RSS bound.
const STAGE_BYTES: usize = 64 * 1024 * 1024;
const TARGET_MBPS: f64 = 500.0;
const TARGET_RSS_MIB: f64 = 256.0;
const TARGET_DEGRADED_RATIO: f64 = 1.3;

/// Peak resident set size of this process so far (VmHWM), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes per second of the synthetic chain generator (part of every ingest figure here).
fn synthetic_rate(bytes: u64) -> f64 {
    let mut chain = node_plugin::SyntheticChain::new(1, ingest::SYNTHETIC_MARKER);
    let t = Instant::now();
    let mut done = 0u64;
    while done < bytes {
        done += chain.next_block().block.len() as u64;
    }
    done as f64 / t.elapsed().as_secs_f64().max(1e-9)
}

/// Bytes per second of writing a new file through the page cache (no fsync), as hosters and the
/// log do.
fn disk_write_rate(dir: &std::path::Path, bytes: usize) -> Result<f64> {
    use std::io::Write;
    let path = dir.join("disk-write-probe");
    let chunk = vec![0x5Au8; 1 << 20];
    let t = Instant::now();
    let mut f =
        std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
    for _ in 0..bytes / chunk.len() {
        f.write_all(&chunk)
            .with_context(|| format!("write {}", path.display()))?;
    }
    drop(f);
    let rate = bytes as f64 / t.elapsed().as_secs_f64().max(1e-9);
    std::fs::remove_file(&path).with_context(|| format!("remove {}", path.display()))?;
    Ok(rate)
}

struct RunFigures {
    label: String,
    ingest_mbps: f64,
    blocks_per_s: f64,
    restore_mbps: f64,
    degraded_mbps: f64,
}

async fn run_one(
    root: &std::path::Path,
    mib: u64,
    k: usize,
    m: usize,
    n: usize,
    domains: usize,
) -> Result<RunFigures> {
    let dir = root.join(format!("run-{k}-{m}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let cluster::LocalCluster {
        mut hosters,
        config,
        mut archive,
    } = cluster::start_cluster(&dir, n, domains, k, m).await?;
    let started = Instant::now();
    let report = ingest::ingest_synthetic(
        &mut archive,
        11,
        None,
        Some(mib * MIB),
        true,
        true,
        |_, _| {},
    )
    .await?;
    let ingest_secs = started.elapsed().as_secs_f64();
    let mb = report.bytes as f64 / 1e6;
    drop(archive);

    let restore = |label: &'static str| {
        let config = config.clone();
        let out = dir.join(label);
        async move {
            let (r, secs) = config_file::restore_fresh(&config, &out)
                .await
                .with_context(|| format!("restore ({label})"))?;
            std::fs::remove_dir_all(&out).with_context(|| format!("remove {}", out.display()))?;
            Ok::<f64, anyhow::Error>(r.bytes as f64 / 1e6 / secs)
        }
    };
    let restore_mbps = restore("restored-healthy").await?;
    for h in hosters.iter_mut().take(m) {
        h.kill()?;
    }
    let degraded_mbps = restore("restored-degraded").await?;
    for h in &mut hosters {
        h.kill()?;
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    Ok(RunFigures {
        label: format!("{k}+{m} over {n} hosters"),
        ingest_mbps: mb / ingest_secs,
        blocks_per_s: report.blocks as f64 / ingest_secs,
        restore_mbps,
        degraded_mbps,
    })
}

pub async fn run(mib: u64, dir: Option<PathBuf>, stages_only: bool) -> Result<()> {
    let tmp;
    let root = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().context("create work directory")?;
            tmp.path().to_path_buf()
        }
    };
    println!("archiver bench: {mib} MiB of synthetic blocks per run, embedded hosters as child processes on loopback, durability fsync");
    let mut runs = Vec::new();
    let configs: &[(usize, usize, usize, usize)] = if stages_only {
        &[]
    } else {
        &[(4, 2, 6, 3), (16, 4, 20, 4)]
    };
    for &(k, m, n, domains) in configs {
        let r = run_one(&root, mib, k, m, n, domains).await?;
        println!(
            "  {:<22} ingest {:>6.0} MB/s ({:>6.0} blocks/s)   restore {:>6.0} MB/s   with {m} hosters down {:>6.0} MB/s",
            r.label, r.ingest_mbps, r.blocks_per_s, r.restore_mbps, r.degraded_mbps
        );
        runs.push((k, m, r));
    }
    let rss = peak_rss_bytes().unwrap_or(0) as f64 / MIB as f64;
    let stages = tokio::task::spawn_blocking(|| crate::stages::measure(STAGE_BYTES))
        .await
        .context("measure stages")?;
    let generator = synthetic_rate(STAGE_BYTES as u64);
    let disk = disk_write_rate(&root, STAGE_BYTES).context("measure disk writes")?;
    let gb = |x: f64| x / 1e9;
    println!("single-stage limits (one core, same run):");
    println!("  AES-256-GCM            {:>6.2} GB/s", gb(stages.aes_gcm));
    println!("  Reed-Solomon 4+2       {:>6.2} GB/s", gb(stages.rs_4_2));
    println!("  Reed-Solomon 16+4      {:>6.2} GB/s", gb(stages.rs_16_4));
    println!(
        "  BLAKE3 chunk tree      {:>6.2} GB/s",
        gb(stages.merkle_chunks)
    );
    println!("  BLAKE3                 {:>6.2} GB/s", gb(stages.blake3));
    println!("  memcpy                 {:>6.2} GB/s", gb(stages.memcpy));
    println!("  new-file write         {:>6.2} GB/s  (what the log and every co-located hoster pay per byte)", gb(disk));
    println!("  synthetic generator    {:>6.2} GB/s", gb(generator));
    println!("ratios:");
    for (k, m, r) in &runs {
        println!(
            "  {:<22} part hashes (BLAKE3 over every shard byte) take {:>4.1}% of the codec's per-byte cost",
            r.label,
            100.0 * stages.part_hash_share(*k, *m)
        );
        let bound = stages.codec_bound(*k, *m) / 1e6;
        // Every ingested byte is written as a new file once by the log and (k+m)/k times by the
        // hosters, which share this machine's disk here (in production they are elsewhere).
        let disk_bound = disk / 1e6 / (1.0 + (*k + *m) as f64 / *k as f64);
        println!(
            "  {:<22} codec bound {:>5.0} MB/s/core, disk bound {:>5.0} MB/s; ingest {:>4.0}% of the lower, {:>4.2}x target {TARGET_MBPS:.0}; restore {:>4.2}x target; degraded/healthy time {:>4.2}x (target <= {TARGET_DEGRADED_RATIO})",
            r.label,
            bound,
            disk_bound,
            100.0 * r.ingest_mbps / bound.min(disk_bound),
            r.ingest_mbps / TARGET_MBPS,
            r.restore_mbps / TARGET_MBPS,
            r.restore_mbps / r.degraded_mbps.max(1e-9),
        );
    }
    println!(
        "peak RSS {:.0} MiB (target <= {TARGET_RSS_MIB:.0} MiB); 0-stor_v2 on the same workload: 67 MB/s store, 924 MB RSS",
        rss
    );
    Ok(())
}
