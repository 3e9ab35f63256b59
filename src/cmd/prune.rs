//! `archiver prune`: deletes local segment files the hosters provably hold. It opens the archive
//! itself, so it cannot run while a node or follower holds it.

use std::path::Path;

use anyhow::{Context, Result};
use archiver_cli::config_file::open_archive;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 0)]
    keep_local_segments: u64,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    let archive = open_archive(config)?;
    // The maintenance pass the operations service runs (disperse, verify, prune), once. Segments
    // verified before a failing one are pruned all the same: the watermark only ever covers
    // segments whose read-back succeeded.
    let report =
        archiver::ops::maintain_once(&archive.disperser(), None, a.keep_local_segments).await;
    let store = archive.store();
    let pruned = store
        .local_segments_pruned_below()
        .context("read watermark")?;
    println!("local segment files below {pruned} deleted");
    if let Some(e) = report.errors.first() {
        anyhow::bail!("{e}");
    }
    println!(
        "verified segments below {}",
        store.verified_next().context("read watermark")?
    );
    Ok(())
}
