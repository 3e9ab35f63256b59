//! `archiver status`: hosters, segments and watermarks, and the storage audits' table.

use std::path::Path;

use anyhow::{Context, Result};
use archiver_cli::config_file::open_archive;

/// Failed challenges `status --json` lists with their evidence: enough to act on, short enough
/// to read (the audit store keeps them all).
const STATUS_FAILURES_SHOWN: usize = 10;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    json: bool,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    let archive = open_archive(config)?;
    let s = archive.status().await.context("collect status")?;
    let audit = archiver::audit::AuditLog::open_read_only(&archive.config().data_dir)
        .context("open audit store")?;
    if a.json {
        let mut v = serde_json::to_value(&s).context("encode status")?;
        if let Some(a) = &audit {
            v["audit"] = serde_json::json!({
                "hosters": a.summary().context("read audit results")?,
                "markedForRepair": a.marked().context("read repair marks")?.len(),
                "recentFailures": a.failures(STATUS_FAILURES_SHOWN).context("read audit results")?,
            });
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&v).context("encode status")?
        );
    } else {
        print_status(&s);
        if let Some(a) = &audit {
            archiver_cli::challenge::print_audit_summary(a)?;
        }
    }
    Ok(())
}

fn print_status(s: &archiver::Status) {
    println!("redundancy: {}+{}", s.data_shards, s.parity_shards);
    println!("hosters:");
    for h in &s.hosters {
        println!(
            "  {:<12} {:<10} {:<4} {:>12} shards {:>6}{}",
            h.name,
            h.domain,
            if h.up { "up" } else { "DOWN" },
            h.stored_bytes
                .map_or("-".into(), |b| format!("{:.1} MB", b as f64 / 1e6)),
            h.shards_placed,
            h.error
                .as_ref()
                .map_or(String::new(), |e| format!("  ({e})"))
        );
    }
    println!(
        "segments: {} sealed, {} dispersed, {} pending, {} under-replicated",
        s.segments_sealed,
        s.segments_dispersed,
        s.segments_pending,
        s.under_replicated.len()
    );
    for (seg, placed, total) in &s.under_replicated {
        println!("  segment {seg}: {placed}/{total} shards placed (run `archiver repair`)");
    }
    let w = &s.watermarks;
    let show = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
    println!(
        "watermarks: appended {}, sealed {}, dispersed {}; local segment files deleted below segment {}",
        show(w.appended),
        show(w.sealed),
        show(w.dispersed),
        w.local_segments_pruned_below
    );
}
