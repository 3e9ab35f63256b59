//! `archiver ingest`: appends synthetic Substrate blocks and disperses them (demos, benchmarks,
//! crash tests; a real chain is archived by `node` or `follow`).

use std::path::Path;

use anyhow::Result;
use archiver_cli::config_file::open_archive;

#[derive(clap::Args)]
pub struct Args {
    /// Number of blocks to append.
    #[arg(long, value_name = "N")]
    synthetic: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Seal the open segment at the end, so everything is dispersed.
    #[arg(long)]
    flush: bool,
    /// Only append; leave dispersal to `archiver disperse`.
    #[arg(long)]
    no_disperse: bool,
    /// Print `acked <number>` after every durable batch (crash tests read this).
    #[arg(long)]
    print_acks: bool,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    let mut archive = open_archive(config)?;
    if !a.no_disperse {
        for (name, e) in archive.prepare_hosters().await {
            tracing::warn!(hoster = %name, error = %e, "hoster not prepared");
        }
    }
    let started = std::time::Instant::now();
    let report = archiver_cli::ingest::ingest_synthetic(
        &mut archive,
        a.seed,
        Some(a.synthetic),
        None,
        a.flush,
        !a.no_disperse,
        |n, _| {
            if a.print_acks {
                archiver_cli::announce(format_args!("acked {n}"));
            }
        },
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ingested {} blocks, {:.1} MB in {:.2} s ({:.0} MB/s); {} segments dispersed{}",
        report.blocks,
        report.bytes as f64 / 1e6,
        secs,
        report.bytes as f64 / 1e6 / secs.max(1e-9),
        report.segments_dispersed,
        if report.under_replicated.is_empty() {
            String::new()
        } else {
            format!(", under-replicated: {:?}", report.under_replicated)
        }
    );
    Ok(())
}
