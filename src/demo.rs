//! `archiver demo`: the whole story on one machine with no external server — 6 embedded hosters
//! (4+2), synthetic Substrate history ingested and dispersed, 2 hosters killed, the history restored
//! from the hosters alone into a fresh directory and compared byte for byte.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cluster;
use crate::config_file;
use crate::ingest::{self, SYNTHETIC_MARKER};

const MIB: u64 = 1024 * 1024;

/// Counts files under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Result<usize> {
    let mut hits = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("list {}", d.display()))? {
            let entry = entry.with_context(|| format!("list {}", d.display()))?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes =
                    std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits += 1;
                }
            }
        }
    }
    Ok(hits)
}

pub async fn run(mib: u64, dir: Option<PathBuf>) -> Result<()> {
    let tmp;
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
            d
        }
        None => {
            tmp = tempfile::tempdir().context("create work directory")?;
            tmp.path().to_path_buf()
        }
    };
    println!("work directory: {}", dir.display());
    let cluster::LocalCluster {
        mut hosters,
        config,
        mut archive,
    } = cluster::start_cluster(&dir, 6, 3, 4, 2).await?;
    println!(
        "started 6 embedded hosters on loopback: {}",
        hosters
            .iter()
            .map(|h| format!("{}@{} ({})", h.name, h.address, h.domain))
            .collect::<Vec<_>>()
            .join(", ")
    );

    println!("ingesting {mib} MiB of synthetic Substrate blocks (4 data + 2 parity shards per segment)...");
    let started = Instant::now();
    let report = ingest::ingest_synthetic(
        &mut archive,
        7,
        None,
        Some(mib * MIB),
        true,
        true,
        |_, _| {},
    )
    .await?;
    let ingest_secs = started.elapsed().as_secs_f64();
    let status = archive.status().await.context("collect status")?;
    println!(
        "  {} blocks, {:.1} MB in {:.2} s = {:.0} MB/s; {} segments dispersed, {} under-replicated",
        report.blocks,
        report.bytes as f64 / 1e6,
        ingest_secs,
        report.bytes as f64 / 1e6 / ingest_secs,
        status.segments_dispersed,
        status.under_replicated.len()
    );
    let stored: u64 = status.hosters.iter().filter_map(|h| h.stored_bytes).sum();

    let killed: Vec<String> = [0usize, 1]
        .iter()
        .map(|&i| {
            hosters[i].kill()?;
            Ok(format!("{} ({})", hosters[i].name, hosters[i].domain))
        })
        .collect::<Result<_>>()?;
    println!("killed 2 hosters with SIGKILL: {}", killed.join(", "));

    let out = dir.join("restored");
    println!(
        "restoring the whole history from the 4 surviving hosters into {} ...",
        out.display()
    );
    // A fresh machine: only the config file (master key + hoster list), no local data.
    let (restored, restore_secs) = config_file::restore_fresh(&config, &out).await?;

    let mut compared = 0u64;
    for sealed in archive.store().sealed_all()? {
        let original = std::fs::read(archive.log().segment_path(sealed.segment))
            .with_context(|| format!("read local segment {}", sealed.segment))?;
        let copy_path = out
            .join("segments")
            .join(archiver::log::segment_file_name(sealed.segment));
        let copy =
            std::fs::read(&copy_path).with_context(|| format!("read {}", copy_path.display()))?;
        if original != copy {
            bail!(
                "restored segment {} differs from the original",
                sealed.segment
            );
        }
        compared += original.len() as u64;
    }
    let leaks = files_containing(&dir.join("hosters"), SYNTHETIC_MARKER)?;
    println!(
        "  {} blocks in {} segments, {:.1} MB in {:.2} s = {:.0} MB/s; {} segments rebuilt from parity",
        restored.blocks,
        restored.segments,
        restored.bytes as f64 / 1e6,
        restore_secs,
        restored.bytes as f64 / 1e6 / restore_secs,
        restored.segments_reconstructed
    );
    println!();
    println!("report");
    println!("  blocks archived      {}", report.blocks);
    println!(
        "  history              {:.1} MB in {} segments",
        report.bytes as f64 / 1e6,
        restored.segments
    );
    println!(
        "  stored on hosters    {:.1} MB ({:.2}x, survives any 2 of 6 hosters lost)",
        stored as f64 / 1e6,
        stored as f64 / compared.max(1) as f64
    );
    println!(
        "  ingest               {:.0} MB/s",
        report.bytes as f64 / 1e6 / ingest_secs
    );
    println!("  killed               {}", killed.join(", "));
    println!(
        "  restore (2 down)     {:.0} MB/s",
        restored.bytes as f64 / 1e6 / restore_secs
    );
    println!(
        "  byte-identical       {} of {} segment bytes",
        compared, compared
    );
    println!(
        "  plaintext on hosters {} files contain the block marker",
        leaks
    );
    if leaks != 0 {
        bail!("plaintext marker found on hoster disks");
    }
    for h in &mut hosters {
        h.kill()?;
    }
    Ok(())
}
