//! `archiver repair`: brings every segment back to k+m shards on live hosters, rebuilding the
//! shards audits marked too, after a self-check of the hosters' metadata.

use std::path::Path;

use anyhow::{Context, Result};
use archiver_cli::config_file::open_archive;

#[derive(clap::Args)]
pub struct Args {
    /// Read every shard and check its Merkle root (scrub), not just its presence.
    #[arg(long)]
    verify: bool,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    let archive = open_archive(config)?;
    // Shards that failed a storage challenge are rebuilt elsewhere too.
    let audit = archiver::audit::AuditLog::open_existing(&archive.config().data_dir)
        .context("open audit store")?;
    let marked = match &audit {
        Some(a) => a.marked().context("read repair marks")?,
        None => Vec::new(),
    };
    let suspect: Vec<(u64, usize)> = marked.iter().map(|(s, i, _)| (*s, *i)).collect();
    let scrub = archive
        .scrub_metadata(0..u64::MAX)
        .await
        .context("check the hosters' metadata")?;
    print_scrub(&scrub);
    let r = archive
        .repair_with(a.verify, &suspect)
        .await
        .context("repair")?;
    if let Some(a) = &audit {
        for (seg, shard, _) in &r.repaired {
            if suspect.contains(&(*seg, *shard)) {
                a.unmark(*seg, *shard).context("clear repair mark")?;
            }
        }
    }
    print_repair(&r);
    if r.still_under_replicated.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} segments remain under-replicated",
            r.still_under_replicated.len()
        )
    }
}

/// One line, then each shard moved and each segment left short.
fn print_repair(r: &archiver::RepairReport) {
    println!(
        "checked {} segments ({} shards); repaired {} shards; still under-replicated: {}",
        r.segments_checked,
        r.shards_checked,
        r.repaired.len(),
        r.still_under_replicated.len()
    );
    for (seg, shard, hoster) in &r.repaired {
        println!("  segment {seg} shard {shard} -> {hoster}");
    }
    for (seg, why) in &r.still_under_replicated {
        println!("  segment {seg}: {why}");
    }
}

/// What a metadata self-check found, one line plus one per problem.
fn print_scrub(r: &archiver::ScrubReport) {
    println!(
        "metadata: {} records of {} segments checked; {} re-published, {} damaged, {} placements superseded",
        r.records_checked,
        r.segments_checked,
        r.republished.len(),
        r.damaged.len(),
        r.placements_superseded.len()
    );
    for (hoster, segment, what) in &r.republished {
        println!("  re-published {what} of segment {segment} on {hoster}");
    }
    for (hoster, segment, what) in &r.damaged {
        println!("  damaged {what} of segment {segment} on {hoster} (write-once: left, other copies serve)");
    }
    for (hoster, why) in r.unreachable.iter().take(10) {
        println!("  not checked on {hoster}: {why}");
    }
}
